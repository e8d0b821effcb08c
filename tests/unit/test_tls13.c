/* test_tls13.c - the TLS 1.3 record layer of base/tls13.c on its own: two
 * states with mirrored secrets seal and open each other's records for the
 * three suites; altered, replayed and oversized records are refused;
 * post-handshake messages are put together across records, KeyUpdate
 * rolls the keys both ways, anything else is refused; random bytes in
 * random pieces never crash it. (Interoperation with OpenSSL's own record
 * layer is test_io's part.) */
#include "base/tls13.h"
#include "tap.h"
#include <stdlib.h>
#include <string.h>
#include <openssl/err.h>
#include <openssl/rand.h>

static unsigned char rec[MG_TLS13_MAX_PLAIN + 64], out[MG_TLS13_MAX_CIPHER];

/* seal n bytes of p from a, open at b: the content back, its type */
static int pass(struct mg_tls13 *a, struct mg_tls13 *b, uint8_t type, const void *p, size_t n, size_t *got,
                uint8_t *gtype)
{
    memcpy(rec + 5, p, n);
    size_t l = mg_tls13_seal(a, type, rec, n);
    if (!l)
        return -1;
    size_t len;
    int e = mg_tls13_check_header(rec, &len);
    if (e || len + 5 != l)
        return -2;
    return mg_tls13_open(b, rec, rec + 5, len, out, gtype, got);
}

static void suites(void)
{
    static const struct {
        uint16_t id;
        size_t hl;
        const char *name;
    } s[] = { { 0x1301, 32, "AES-128-GCM" }, { 0x1302, 48, "AES-256-GCM" }, { 0x1303, 32, "CHACHA20-POLY1305" } };
    for (size_t i = 0; i < 3; i++) {
        unsigned char cs[48], ss[48];
        RAND_bytes(cs, sizeof(cs));
        RAND_bytes(ss, sizeof(ss));
        struct mg_tls13 *c = mg_tls13_new(s[i].id, cs, ss, s[i].hl), *sv = mg_tls13_new(s[i].id, ss, cs, s[i].hl);
        ok(c && sv, "%s: states made", s[i].name);
        if (!c || !sv)
            continue;
        static unsigned char msg[MG_TLS13_MAX_PLAIN];
        RAND_bytes(msg, sizeof(msg));
        static const size_t sizes[] = { 0, 1, 100, 4096, MG_TLS13_MAX_PLAIN };
        int good = 0;
        for (size_t k = 0; k < 5; k++) {
            size_t got = 0;
            uint8_t ty = 0;
            if (pass(c, sv, MG_TLS13_DATA, msg, sizes[k], &got, &ty) == 0 && got == sizes[k] &&
                ty == MG_TLS13_DATA && memcmp(out, msg, got) == 0)
                good++;
            if (pass(sv, c, MG_TLS13_DATA, msg, sizes[k], &got, &ty) == 0 && got == sizes[k] &&
                memcmp(out, msg, got) == 0)
                good++;
        }
        is_int(good, 10, "%s: 0 B to 16 KiB each way, intact", s[i].name);
        /* the record's length: content, type and tag */
        memcpy(rec + 5, "abc", 3);
        is_int((int)mg_tls13_seal(c, MG_TLS13_DATA, rec, 3), 5 + 3 + 1 + 16, "%s: a 3-byte record is 25 bytes", s[i].name);
        size_t len, got;
        uint8_t ty;
        mg_tls13_check_header(rec, &len);
        unsigned char copy[64];
        memcpy(copy, rec, 5 + len);
        ok(mg_tls13_open(sv, rec, rec + 5, len, out, &ty, &got) == 0, "%s: opened once", s[i].name);
        is_int(mg_tls13_open(sv, copy, copy + 5, len, out, &ty, &got), SSL_R_DECRYPTION_FAILED_OR_BAD_RECORD_MAC,
               "%s: the same record again (a replay) is refused", s[i].name);
        mg_tls13_free(c);
        mg_tls13_free(sv);
    }
    unsigned char z[48] = { 0 };
    ok(!mg_tls13_new(0x1304, z, z, 32), "a suite not handled (CCM): no state");
    ok(!mg_tls13_new(0x1302, z, z, 32), "a secret of the wrong length: no state");
}

static void refusals(void)
{
    unsigned char cs[32], ss[32];
    RAND_bytes(cs, 32);
    RAND_bytes(ss, 32);
    struct mg_tls13 *c = mg_tls13_new(0x1301, cs, ss, 32), *s = mg_tls13_new(0x1301, ss, cs, 32);
    size_t got, len;
    uint8_t ty;
    /* header bytes (authenticated as AAD), ciphertext, tag */
    static const int at[] = { 2, 4, 5, 7, 24 };
    for (size_t i = 0; i < sizeof(at) / sizeof(at[0]); i++) {
        memcpy(rec + 5, "abc", 3);
        size_t l = mg_tls13_seal(c, MG_TLS13_DATA, rec, 3);
        unsigned char copy[32];
        memcpy(copy, rec, l);
        rec[at[i]] ^= 1;
        is_int(mg_tls13_open(s, rec, rec + 5, l - 5, out, &ty, &got), SSL_R_DECRYPTION_FAILED_OR_BAD_RECORD_MAC,
               "a flipped bit at byte %d of the record is refused", at[i]);
        ok(mg_tls13_open(s, copy, copy + 5, l - 5, out, &ty, &got) == 0 && got == 3,
           "... it spent no sequence number: the genuine record then opens");
    }
    size_t l;
    static const struct {
        unsigned char h[5];
        int reason;
        const char *what;
    } hs[] = {
        { { 22, 3, 3, 0, 40 }, SSL_R_UNEXPECTED_RECORD, "an unprotected handshake record" },
        { { 21, 3, 3, 0, 2 }, SSL_R_UNEXPECTED_RECORD, "an unprotected alert" },
        { { 20, 3, 3, 0, 1 }, SSL_R_UNEXPECTED_RECORD, "a change_cipher_spec after the handshake" },
        { { 23, 3, 1, 0, 40 }, SSL_R_WRONG_VERSION_NUMBER, "legacy version 3.1" },
        { { 23, 3, 3, 0x41, 1 }, SSL_R_ENCRYPTED_LENGTH_TOO_LONG, "length 2^14 + 256 + 1" },
        { { 23, 3, 3, 0, 16 }, SSL_R_BAD_LENGTH, "length 16 (no room for the type)" },
        { { 23, 3, 3, 0x41, 0 }, 0, "length 2^14 + 256: allowed" },
    };
    for (size_t i = 0; i < sizeof(hs) / sizeof(hs[0]); i++)
        is_int(mg_tls13_check_header(hs[i].h, &len), hs[i].reason, "header: %s", hs[i].what);
    /* an all-zero inner plaintext has no content type */
    memset(rec + 5, 0, 10);
    l = mg_tls13_seal(c, 0, rec, 9);        /* nine zeros and a zero type byte */
    is_int(mg_tls13_open(s, rec, rec + 5, l - 5, out, &ty, &got), SSL_R_UNEXPECTED_MESSAGE,
           "inner plaintext all zeros (no type): refused");
    /* padding: zeros after the type are removed */
    memcpy(rec + 5, "hi\x17\0\0\0", 6);
    l = mg_tls13_seal(c, 0, rec, 5);        /* "hi", type 23, then padding zeros */
    ok(mg_tls13_open(s, rec, rec + 5, l - 5, out, &ty, &got) == 0 && got == 2 && ty == MG_TLS13_DATA &&
           memcmp(out, "hi", 2) == 0, "padding after the content type is removed");
    is_int((int)mg_tls13_seal(c, MG_TLS13_DATA, rec, MG_TLS13_MAX_PLAIN + 1), 0, "sealing more than 16 KiB: refused");
    mg_tls13_free(c);
    mg_tls13_free(s);
}

static void handshake_messages(void)
{
    unsigned char cs[32], ss[32];
    RAND_bytes(cs, 32);
    RAND_bytes(ss, 32);
    struct mg_tls13 *c = mg_tls13_new(0x1301, cs, ss, 32), *s = mg_tls13_new(0x1301, ss, cs, 32);
    unsigned char tk[4 + 200];
    tk[0] = 4;
    tk[1] = 0;
    tk[2] = 0;
    tk[3] = 200;
    RAND_bytes(tk + 4, 200);
    is_int(mg_tls13_handshake(c, tk, sizeof(tk)), 0, "a NewSessionTicket: ignored");
    int rc = 0;
    rc |= mg_tls13_handshake(c, tk, 3);
    rc |= mg_tls13_handshake(c, tk + 3, 100);
    rc |= mg_tls13_handshake(c, tk + 103, sizeof(tk) - 103);
    is_int(rc, 0, "a NewSessionTicket in three records (3, 100, 101 bytes): put together");
    unsigned char two[2 * sizeof(tk)];
    memcpy(two, tk, sizeof(tk));
    memcpy(two + sizeof(tk), tk, sizeof(tk));
    is_int(mg_tls13_handshake(c, two, sizeof(two)), 0, "two tickets in one record");
    /* a stream of 50 tickets of random sizes cut at random places */
    static unsigned char stream[50 * (4 + 3000)];
    size_t sl = 0;
    for (int i = 0; i < 50; i++) {
        size_t b = 1 + (size_t)(rand() % 3000);
        stream[sl] = 4;
        stream[sl + 1] = 0;
        stream[sl + 2] = (unsigned char)(b >> 8);
        stream[sl + 3] = (unsigned char)b;
        sl += 4 + b;
    }
    rc = 0;
    for (size_t off = 0; off < sl;) {
        size_t n = 1 + (size_t)(rand() % 700);
        if (n > sl - off)
            n = sl - off;
        rc |= mg_tls13_handshake(c, stream + off, n);
        off += n;
    }
    is_int(rc, 0, "50 tickets of 1-3000 bytes cut at random: all taken");

    /* KeyUpdate, not requested: the sender's write key and the receiver's read key roll */
    size_t l = mg_tls13_key_update(s, rec), len, got;
    uint8_t ty;
    ok(l > 0, "KeyUpdate sealed (update_not_requested)");
    mg_tls13_check_header(rec, &len);
    ok(mg_tls13_open(c, rec, rec + 5, len, out, &ty, &got) == 0 && ty == MG_TLS13_HANDSHAKE && got == 5 &&
           out[0] == 24 && out[4] == 0, "... opened under the old key: a handshake message, KeyUpdate(0)");
    is_int(mg_tls13_handshake(c, out, got), 0, "... applied");
    ok(!mg_tls13_update_wanted(c), "... no answer wanted");
    ok(pass(s, c, MG_TLS13_DATA, "new key", 7, &got, &ty) == 0 && got == 7, "data under the next key opens");
    ok(pass(c, s, MG_TLS13_DATA, "old key", 7, &got, &ty) == 0 && got == 7, "the other direction kept its key");
    /* KeyUpdate, requested: the answer rolls our write key */
    static const unsigned char ku1[5] = { 24, 0, 0, 1, 1 };
    is_int(mg_tls13_handshake(c, ku1, 5), 0, "KeyUpdate(update_requested) from the peer");
    ok(mg_tls13_update_wanted(c), "... our answer is wanted");
    l = mg_tls13_key_update(c, rec);
    mg_tls13_check_header(rec, &len);
    ok(mg_tls13_open(s, rec, rec + 5, len, out, &ty, &got) == 0 && mg_tls13_handshake(s, out, got) == 0,
       "... our KeyUpdate opens and applies at the peer");
    ok(!mg_tls13_update_wanted(c), "... and is no longer wanted");
    ok(pass(c, s, MG_TLS13_DATA, "next", 4, &got, &ty) == 0 && got == 4, "our data under our next key opens");

    static const struct {
        unsigned char m[12];
        size_t n;
        int reason;
        const char *what;
    } bad[] = {
        { { 24, 0, 0, 1, 2 }, 5, SSL_R_BAD_KEY_UPDATE, "KeyUpdate with value 2" },
        { { 24, 0, 0, 2, 0, 0 }, 6, SSL_R_BAD_KEY_UPDATE, "KeyUpdate with two bytes" },
        { { 24, 0, 0, 1, 0, 4, 0, 0, 0 }, 9, SSL_R_NOT_ON_RECORD_BOUNDARY, "KeyUpdate not last in its record" },
        { { 13, 0, 0, 0 }, 4, SSL_R_UNEXPECTED_MESSAGE, "CertificateRequest (no post-handshake auth offered)" },
        { { 1, 0, 0, 0 }, 4, SSL_R_UNEXPECTED_MESSAGE, "a ClientHello" },
        { { 4, 0, 0x80, 1 }, 4, SSL_R_EXCESSIVE_MESSAGE_SIZE, "a 32 KiB + 1 message" },
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct mg_tls13 *t = mg_tls13_new(0x1301, cs, ss, 32);
        is_int(mg_tls13_handshake(t, bad[i].m, bad[i].n), bad[i].reason, "refused: %s", bad[i].what);
        mg_tls13_free(t);
    }
    mg_tls13_free(c);
    mg_tls13_free(s);
}

/* Random bytes in random pieces: an answer every time, no crash, no leak. */
static void noise(void)
{
    unsigned char cs[32], ss[32], buf[600];
    RAND_bytes(cs, 32);
    RAND_bytes(ss, 32);
    int errors = 0, fine = 0;
    for (int i = 0; i < 3000; i++) {
        struct mg_tls13 *t = mg_tls13_new(0x1301, cs, ss, 32);
        for (int k = 0; k < 6; k++) {
            size_t n = 1 + (size_t)(rand() % (int)sizeof(buf));
            RAND_bytes(buf, (int)n);
            if (rand() % 2)
                buf[0] = (unsigned char)(rand() % 2 ? 4 : 24);
            if (rand() % 2)
                buf[1] = buf[2] = 0;
            if (mg_tls13_handshake(t, buf, n)) {
                errors++;
                break;
            }
            fine++;
        }
        mg_tls13_free(t);
    }
    ok(errors > 0 && fine > 0, "random post-handshake bytes: %d refusals, %d pieces taken, no crash", errors, fine);
}

int main(void)
{
    srand(1);
    suites();
    refusals();
    handshake_messages();
    noise();
    return tap_done();
}
