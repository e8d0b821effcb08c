/* tls13.c - the records of an established TLS 1.3 client connection,
 * sealed and opened here (RFC 8446 section 5) instead of in OpenSSL's
 * record layer.
 *
 * Why: an upstream leg over ISTIO_MUTUAL adds two records per request
 * (the request out, the answer in), and OpenSSL 3.0's record layer costs
 * some 6 700 instructions for each small one, of which the AEAD itself is
 * half; the rest is the record state machine, buffer management and BIO
 * calls. Here a record is one EVP_Cipher pass over bytes already where
 * they belong. It is what kernel TLS does with the same keys, in user
 * space: OpenSSL makes the handshake and verifies everything in it; after
 * the handshake, only application data, alerts, NewSessionTicket and
 * KeyUpdate can come, and only those are handled.
 *
 * The keys: OpenSSL 3.0 has no call that hands out a connection's traffic
 * keys; the key-log callback is the one place it gives the application
 * traffic secrets. They are kept per SSL (ex_data) only from the
 * handshake to mg_tls13_take, which wipes them; the keys derived from them
 * live in the cipher contexts, and the current secret (for KeyUpdate) in
 * the record state, wiped when it is freed. Nothing is logged.
 *
 * Only client connections (the gateway's own upstream connections): a
 * client's first record after its handshake is its first application
 * record (sequence 0 both ways); a server has already sent its session
 * tickets under the new keys, with sequence numbers OpenSSL does not
 * expose. */
#include "base/tls13.h"
#include "base/base.h"
#include <pthread.h>
#include <string.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>

#define TAG_LEN 16
#define NONCE_LEN 12
#define HS_MAX (32 * 1024)              /* a post-handshake message longer is refused */

struct dir {
    EVP_CIPHER_CTX *ctx;
    unsigned char secret[EVP_MAX_MD_SIZE];
    unsigned char iv[NONCE_LEN];
    uint64_t seq;
    bool enc;
};

struct mg_tls13 {
    const EVP_CIPHER *cipher;
    const EVP_MD *md;
    size_t keylen, hashlen;
    struct dir rd, wr;
    unsigned char *hs;                  /* a handshake message that spans records */
    size_t hs_len;
    bool update_wanted;
};

/* The secrets between the key-log callback and mg_tls13_take. */
struct captured {
    unsigned char c[EVP_MAX_MD_SIZE], s[EVP_MAX_MD_SIZE];
    size_t clen, slen;
};

static int ex_idx = -1;
static const EVP_CIPHER *aes128, *aes256, *chacha;
static const EVP_MD *sha256, *sha384;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void captured_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
    (void)parent;
    (void)ad;
    (void)idx;
    (void)argl;
    (void)argp;
    if (ptr)
        OPENSSL_clear_free(ptr, sizeof(struct captured));
}

static void init(void)
{
    ex_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, captured_free);
    /* fetched once: a fetch per connection costs a lock and a lookup */
    aes128 = EVP_CIPHER_fetch(NULL, "AES-128-GCM", NULL);
    aes256 = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
    chacha = EVP_CIPHER_fetch(NULL, "ChaCha20-Poly1305", NULL);
    sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    sha384 = EVP_MD_fetch(NULL, "SHA384", NULL);
}

/* "CLIENT_TRAFFIC_SECRET_0 <client random> <secret>" and the server's */
static void keylog_cb(const SSL *cssl, const char *line)
{
    static const char cl[] = "CLIENT_TRAFFIC_SECRET_0 ", sv[] = "SERVER_TRAFFIC_SECRET_0 ";
    bool client = strncmp(line, cl, sizeof(cl) - 1) == 0;
    if (!client && strncmp(line, sv, sizeof(sv) - 1) != 0)
        return;
    if (ex_idx < 0)
        return;
    SSL *ssl = (SSL *)cssl;             /* the callback's SSL is the connection's own */
    const char *p = strchr(line + sizeof(cl) - 1, ' ');
    if (!p)
        return;
    p++;
    struct captured *k = SSL_get_ex_data(ssl, ex_idx);
    if (!k) {
        k = OPENSSL_zalloc(sizeof(*k));
        if (!k || !SSL_set_ex_data(ssl, ex_idx, k)) {
            OPENSSL_free(k);
            return;
        }
    }
    unsigned char *out = client ? k->c : k->s;
    size_t n = 0;
    for (; p[0] && p[1] && n < EVP_MAX_MD_SIZE; p += 2) {
        int hi = mg_hexval((unsigned char)p[0]), lo = mg_hexval((unsigned char)p[1]);
        if (hi < 0 || lo < 0)
            break;
        out[n++] = (unsigned char)(hi << 4 | lo);
    }
    if (client)
        k->clen = n;
    else
        k->slen = n;
}

void mg_tls13_capture(SSL_CTX *ctx)
{
    pthread_once(&once, init);
    SSL_CTX_set_keylog_callback(ctx, keylog_cb);
}

bool mg_tls13_expand_label(const EVP_MD *md, const unsigned char *secret, size_t slen, const char *label,
                           unsigned char *out, size_t outlen)
{
    size_t ll = strlen(label);
    unsigned char info[2 + 1 + 6 + 32 + 1];
    if (ll > 32 || outlen > 0xffff)
        return false;
    info[0] = (unsigned char)(outlen >> 8);
    info[1] = (unsigned char)outlen;
    info[2] = (unsigned char)(6 + ll);
    memcpy(info + 3, "tls13 ", 6);
    memcpy(info + 9, label, ll);
    info[9 + ll] = 0;                   /* an empty context */
    EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new_id(EVP_PKEY_HKDF, NULL);
    size_t got = outlen;
    bool ok = pc && EVP_PKEY_derive_init(pc) > 0 &&
              EVP_PKEY_CTX_set_hkdf_mode(pc, EVP_PKEY_HKDEF_MODE_EXPAND_ONLY) > 0 &&
              EVP_PKEY_CTX_set_hkdf_md(pc, md) > 0 &&
              EVP_PKEY_CTX_set1_hkdf_key(pc, secret, (int)slen) > 0 &&
              EVP_PKEY_CTX_add1_hkdf_info(pc, info, (int)(10 + ll)) > 0 &&
              EVP_PKEY_derive(pc, out, &got) > 0 && got == outlen;
    EVP_PKEY_CTX_free(pc);
    return ok;
}

/* The direction's key and IV from its traffic secret; sequence 0. */
static bool dir_keys(struct mg_tls13 *t, struct dir *d)
{
    unsigned char key[32];
    bool ok = mg_tls13_expand_label(t->md, d->secret, t->hashlen, "key", key, t->keylen) &&
              mg_tls13_expand_label(t->md, d->secret, t->hashlen, "iv", d->iv, NONCE_LEN) &&
              (d->ctx || (d->ctx = EVP_CIPHER_CTX_new())) &&
              EVP_CipherInit_ex2(d->ctx, t->cipher, key, NULL, d->enc, NULL) == 1;
    OPENSSL_cleanse(key, sizeof(key));
    d->seq = 0;
    return ok;
}

/* application_traffic_secret_N+1 (RFC 8446 7.2) */
static bool dir_update(struct mg_tls13 *t, struct dir *d)
{
    unsigned char next[EVP_MAX_MD_SIZE];
    if (!mg_tls13_expand_label(t->md, d->secret, t->hashlen, "traffic upd", next, t->hashlen))
        return false;
    memcpy(d->secret, next, t->hashlen);
    OPENSSL_cleanse(next, sizeof(next));
    return dir_keys(t, d);
}

struct mg_tls13 *mg_tls13_new(uint16_t suite, const unsigned char *wsecret, const unsigned char *rsecret,
                              size_t len)
{
    pthread_once(&once, init);
    const EVP_CIPHER *ci = suite == 0x1301 ? aes128 : suite == 0x1302 ? aes256 : suite == 0x1303 ? chacha : NULL;
    const EVP_MD *md = suite == 0x1302 ? sha384 : sha256;
    if (!ci || !md || len != (size_t)EVP_MD_get_size(md))
        return NULL;
    struct mg_tls13 *t = OPENSSL_zalloc(sizeof(*t));
    if (!t)
        return NULL;
    t->cipher = ci;
    t->md = md;
    t->hashlen = len;
    t->keylen = (size_t)EVP_CIPHER_get_key_length(ci);
    t->wr.enc = true;
    memcpy(t->wr.secret, wsecret, len);
    memcpy(t->rd.secret, rsecret, len);
    if (t->keylen > 32 || !dir_keys(t, &t->wr) || !dir_keys(t, &t->rd)) {
        mg_tls13_free(t);
        return NULL;
    }
    return t;
}

struct mg_tls13 *mg_tls13_take(SSL *ssl)
{
    pthread_once(&once, init);
    struct captured *k = ex_idx >= 0 ? SSL_get_ex_data(ssl, ex_idx) : NULL;
    struct mg_tls13 *t = NULL;
    if (!k || SSL_is_server(ssl) || SSL_version(ssl) != TLS1_3_VERSION || SSL_has_pending(ssl))
        goto out;
    const SSL_CIPHER *c = SSL_get_current_cipher(ssl);
    if (c && k->clen == k->slen)        /* a client writes with the client's secret */
        t = mg_tls13_new(SSL_CIPHER_get_protocol_id(c), k->c, k->s, k->clen);
out:
    if (k) {
        SSL_set_ex_data(ssl, ex_idx, NULL);
        OPENSSL_clear_free(k, sizeof(*k));
    }
    if (t)
        SSL_free_buffers(ssl);          /* its record buffers: no longer used */
    return t;
}

void mg_tls13_free(struct mg_tls13 *t)
{
    if (!t)
        return;
    EVP_CIPHER_CTX_free(t->rd.ctx);
    EVP_CIPHER_CTX_free(t->wr.ctx);
    OPENSSL_free(t->hs);
    OPENSSL_clear_free(t, sizeof(*t));
}

static void nonce(const struct dir *d, unsigned char *n)
{
    memcpy(n, d->iv, NONCE_LEN);
    for (int i = 0; i < 8; i++)
        n[NONCE_LEN - 1 - i] ^= (unsigned char)(d->seq >> (8 * i));
}

size_t mg_tls13_seal(struct mg_tls13 *t, uint8_t type, unsigned char *rec, size_t n)
{
    struct dir *d = &t->wr;
    if (n > MG_TLS13_MAX_PLAIN || d->seq == UINT64_MAX)
        return 0;
    size_t inner = n + 1, len = inner + TAG_LEN;
    rec[0] = MG_TLS13_DATA;             /* opaque_type */
    rec[1] = 3;
    rec[2] = 3;
    rec[3] = (unsigned char)(len >> 8);
    rec[4] = (unsigned char)len;
    rec[5 + n] = type;
    unsigned char nc[NONCE_LEN];
    nonce(d, nc);
    int l = 0, l2 = 0;
    if (EVP_EncryptInit_ex2(d->ctx, NULL, NULL, nc, NULL) != 1 ||
        EVP_EncryptUpdate(d->ctx, NULL, &l, rec, 5) != 1 ||
        EVP_EncryptUpdate(d->ctx, rec + 5, &l, rec + 5, (int)inner) != 1 ||
        EVP_EncryptFinal_ex(d->ctx, rec + 5 + l, &l2) != 1 || (size_t)(l + l2) != inner ||
        EVP_CIPHER_CTX_ctrl(d->ctx, EVP_CTRL_AEAD_GET_TAG, TAG_LEN, rec + 5 + inner) != 1)
        return 0;
    d->seq++;
    return 5 + len;
}

int mg_tls13_check_header(const unsigned char *hdr, size_t *len)
{
    *len = (size_t)hdr[3] << 8 | hdr[4];
    if (hdr[0] != MG_TLS13_DATA)
        return SSL_R_UNEXPECTED_RECORD;  /* after the handshake every record is protected */
    if (hdr[1] != 3 || hdr[2] != 3)
        return SSL_R_WRONG_VERSION_NUMBER;
    if (*len > MG_TLS13_MAX_CIPHER)
        return SSL_R_ENCRYPTED_LENGTH_TOO_LONG;
    if (*len < 1 + TAG_LEN)
        return SSL_R_BAD_LENGTH;
    return 0;
}

int mg_tls13_open(struct mg_tls13 *t, const unsigned char *hdr, const unsigned char *ct, size_t len,
                  unsigned char *out, uint8_t *type, size_t *n)
{
    struct dir *d = &t->rd;
    if (d->seq == UINT64_MAX)
        return SSL_R_DECRYPTION_FAILED_OR_BAD_RECORD_MAC;
    size_t inner = len - TAG_LEN;
    unsigned char nc[NONCE_LEN], tag[TAG_LEN];
    nonce(d, nc);
    memcpy(tag, ct + inner, TAG_LEN);
    int l = 0, l2 = 0;
    if (EVP_DecryptInit_ex2(d->ctx, NULL, NULL, nc, NULL) != 1 ||
        EVP_DecryptUpdate(d->ctx, NULL, &l, hdr, 5) != 1 ||
        EVP_DecryptUpdate(d->ctx, out, &l, ct, (int)inner) != 1 ||
        EVP_CIPHER_CTX_ctrl(d->ctx, EVP_CTRL_AEAD_SET_TAG, TAG_LEN, tag) != 1 ||
        EVP_DecryptFinal_ex(d->ctx, out + l, &l2) != 1)
        return SSL_R_DECRYPTION_FAILED_OR_BAD_RECORD_MAC;
    d->seq++;
    /* the content type is the last non-zero byte; zeros after it are padding */
    size_t i = inner;
    while (i > 0 && out[i - 1] == 0)
        i--;
    if (i == 0)
        return SSL_R_UNEXPECTED_MESSAGE;
    if (i - 1 > MG_TLS13_MAX_PLAIN)
        return SSL_R_DATA_LENGTH_TOO_LONG;
    *type = out[i - 1];
    *n = i - 1;
    return 0;
}

/* One whole message: type, 24-bit length, body. */
static int hs_message(struct mg_tls13 *t, const unsigned char *m, size_t n)
{
    size_t body = n - 4;
    switch (m[0]) {
    case 4:                             /* NewSessionTicket: not kept */
        return 0;
    case 24:                            /* KeyUpdate */
        if (body != 1 || m[4] > 1)
            return SSL_R_BAD_KEY_UPDATE;
        if (!dir_update(t, &t->rd))
            return SSL_R_BAD_KEY_UPDATE;
        if (m[4] == 1)
            t->update_wanted = true;
        return 0;
    default:                            /* no post-handshake auth was offered */
        return SSL_R_UNEXPECTED_MESSAGE;
    }
}

int mg_tls13_handshake(struct mg_tls13 *t, const unsigned char *p, size_t n)
{
    if (t->hs_len) {                    /* the rest of a message begun in an earlier record */
        unsigned char *m = OPENSSL_realloc(t->hs, t->hs_len + n);
        if (!m)
            return ERR_R_MALLOC_FAILURE;
        memcpy(m + t->hs_len, p, n);
        t->hs = m;
        t->hs_len += n;
        p = t->hs;
        n = t->hs_len;
    }
    size_t off = 0;
    int rc = 0;
    while (n - off >= 4) {
        size_t ml = (size_t)p[off + 1] << 16 | (size_t)p[off + 2] << 8 | p[off + 3];
        if (ml > HS_MAX) {
            rc = SSL_R_EXCESSIVE_MESSAGE_SIZE;
            break;
        }
        if (n - off < 4 + ml)
            break;
        /* a KeyUpdate must end its record: what follows is under the new key */
        if (p[off] == 24 && off + 4 + ml != n) {
            rc = SSL_R_NOT_ON_RECORD_BOUNDARY;
            break;
        }
        if ((rc = hs_message(t, p + off, 4 + ml)))
            break;
        off += 4 + ml;
    }
    if (rc) {
        OPENSSL_free(t->hs);
        t->hs = NULL;
        t->hs_len = 0;
        return rc;
    }
    size_t rest = n - off;
    if (!rest) {
        OPENSSL_free(t->hs);
        t->hs = NULL;
        t->hs_len = 0;
        return 0;
    }
    if (p == t->hs) {
        memmove(t->hs, t->hs + off, rest);
    } else {
        unsigned char *m = OPENSSL_malloc(rest);
        if (!m)
            return ERR_R_MALLOC_FAILURE;
        memcpy(m, p + off, rest);
        OPENSSL_free(t->hs);
        t->hs = m;
    }
    t->hs_len = rest;
    return 0;
}

bool mg_tls13_update_wanted(const struct mg_tls13 *t)
{
    return t->update_wanted;
}

size_t mg_tls13_key_update(struct mg_tls13 *t, unsigned char *rec)
{
    static const unsigned char ku[5] = { 24, 0, 0, 1, 0 }; /* update_not_requested */
    memcpy(rec + 5, ku, sizeof(ku));
    size_t len = mg_tls13_seal(t, MG_TLS13_HANDSHAKE, rec, sizeof(ku));
    if (!len || !dir_update(t, &t->wr))
        return 0;
    t->update_wanted = false;
    return len;
}

size_t mg_tls13_alert(struct mg_tls13 *t, uint8_t desc, unsigned char *rec)
{
    rec[5] = desc == SSL_AD_CLOSE_NOTIFY ? SSL3_AL_WARNING : SSL3_AL_FATAL;
    rec[6] = desc;
    return mg_tls13_seal(t, MG_TLS13_ALERT, rec, 2);
}
