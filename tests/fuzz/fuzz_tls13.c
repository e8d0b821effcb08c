/* fuzz_tls13.c - the TLS 1.3 record layer (base/tls13.c) under libFuzzer.
 * The input is a script of what an upstream sends after the handshake:
 * steps of one byte (low two bits: the kind; the rest: an inner content
 * type), a two-byte length and that many bytes.
 * - kinds 0, 1 and 3: the bytes sealed by the peer with the chosen inner
 *   type, so that the fuzzer reaches what only comes after authentication
 *   (inner types, padding, handshake messages cut across records,
 *   KeyUpdate, NewSessionTicket, the rest refused);
 * - kind 2: the bytes taken as a record as they are (header, ciphertext).
 * Checked beyond "no crash, no overread, no leak":
 * - a record the peer sealed has a valid header of the sealed length and,
 *   while the keys are in step, opens to the same type and content;
 * - a record made of input bytes never authenticates;
 * - when the receiver owes a KeyUpdate, its answer opens at the peer as a
 *   handshake record and applies there.
 * Errors end the script, as they end a connection.
 *
 * With --enable-fuzzing this is a libFuzzer target; otherwise
 * (MG_FUZZ_STANDALONE) it replays the files named on argv, or with no
 * arguments a short deterministic run over built-in scripts, printing TAP. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "base/tls13.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond, const char *what)
{
    if (!cond) {
        fprintf(stderr, "fuzz_tls13: property violated: %s\n", what);
        abort();
    }
}

static unsigned char rec[5 + MG_TLS13_MAX_PLAIN + MG_TLS13_OVERHEAD], out[MG_TLS13_MAX_CIPHER];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const unsigned char cs[32] = { 1, 2, 3 }, ss[32] = { 4, 5, 6 };
    struct mg_tls13 *c = mg_tls13_new(0x1301, cs, ss, 32), *p = mg_tls13_new(0x1301, ss, cs, 32);
    check(c && p, "states made");
    bool in_step = true;
    size_t off = 0;
    while (size - off >= 3) {
        uint8_t op = data[off];
        size_t n = (size_t)data[off + 1] << 8 | data[off + 2];
        off += 3;
        if (n > size - off)
            n = size - off;
        const uint8_t *b = data + off;
        off += n;
        uint8_t type = 0;
        size_t got = 0, len = 0;
        if ((op & 3) == 2) {
            if (n < 5 || mg_tls13_check_header(b, &len) || len > n - 5)
                break;
            check(mg_tls13_open(c, b, b + 5, len, out, &type, &got) != 0,
                  "a record made of input bytes does not authenticate");
            break;
        }
        if (n > MG_TLS13_MAX_PLAIN)
            n = MG_TLS13_MAX_PLAIN;
        uint8_t itype = op >> 2;
        memcpy(rec + 5, b, n);
        size_t l = mg_tls13_seal(p, itype, rec, n);
        check(l == n + MG_TLS13_OVERHEAD, "a sealed record's length");
        check(mg_tls13_check_header(rec, &len) == 0 && len + 5 == l, "a sealed record's header");
        int e = mg_tls13_open(c, rec, rec + 5, len, out, &type, &got);
        if (in_step && itype != 0)
            check(e == 0 && type == itype && got == n && memcmp(out, b, n) == 0,
                  "a sealed record opens as it was sealed");
        if (e)
            break;
        if (type != MG_TLS13_HANDSHAKE)
            continue;
        if (mg_tls13_handshake(c, out, got))
            break;
        /* a KeyUpdate among these bytes moved the receiver's read key, not
         * the peer's write key (they were sealed as they came) */
        in_step = false;
        if (mg_tls13_update_wanted(c)) {
            size_t kl = mg_tls13_key_update(c, rec);
            check(kl > 0 && mg_tls13_check_header(rec, &len) == 0, "our KeyUpdate sealed");
            check(mg_tls13_open(p, rec, rec + 5, len, out, &type, &got) == 0 && type == MG_TLS13_HANDSHAKE,
                  "our KeyUpdate opens at the peer");
            check(mg_tls13_handshake(p, out, got) == 0, "... and applies there");
            check(!mg_tls13_update_wanted(c), "... and is no longer owed");
        }
    }
    mg_tls13_free(c);
    mg_tls13_free(p);
    return 0;
}

#ifdef MG_FUZZ_STANDALONE
#include "standalone.h"

/* data, a ticket cut in two, data, KeyUpdate(update_requested), data */
static const uint8_t seed[] = {
    0x5c, 0, 5, 'h', 'e', 'l', 'l', 'o',
    0x58, 0, 6, 4, 0, 0, 8, 1, 2,
    0x58, 0, 6, 3, 4, 5, 6, 7, 8,
    0x5d, 0, 3, 'a', 'b', 'c',
    0x58, 0, 5, 24, 0, 0, 1, 1,
    0x5f, 0, 1, 'z',
    0x02, 0, 8, 23, 3, 3, 0, 17, 0, 0, 0,
};

int main(int argc, char **argv)
{
    static uint8_t file[1 << 20];
    if (argc > 1)
        return mg_fuzz_replay(argc, argv, file, sizeof(file));
    LLVMFuzzerTestOneInput(seed, sizeof(seed));
    printf("ok 1 - the built-in script\n");
    static uint8_t buf[sizeof(seed) + 64];
    uint32_t x = 2463534242u;
    for (int i = 0; i < 20000; i++) {
        size_t n = sizeof(seed);
        memcpy(buf, seed, n);
        for (int k = 0; k < 3; k++) {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            size_t pos = x % n;
            switch ((x >> 16) % 4) {
            case 0:
                buf[pos] ^= (uint8_t)(1u << ((x >> 8) & 7));
                break;
            case 1:
                buf[pos] = (uint8_t)(x >> 24);
                break;
            case 2:
                n = pos + 1;
                break;
            default:
                if (n < sizeof(buf)) {
                    memmove(buf + pos + 1, buf + pos, n - pos);
                    buf[pos] = (uint8_t)(x >> 8);
                    n++;
                }
            }
        }
        LLVMFuzzerTestOneInput(buf, n);
    }
    printf("ok 2 - 20000 mutated scripts\n1..2\n");
    return 0;
}
#endif
