/* jwks_parse.c - JWKS JSON -> an immutable, refcounted key set.
 *
 * cjose imports RSA/EC/oct keys but checks nothing about fitness (cjose
 * 0.6.2: 1024-bit RSA accepted, JWK alg/use ignored), so
 * every member is validated here first and keys are built from their decoded
 * public parts only; private members make us refuse the key outright. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include "jwt/internal.h"

#define MAX_RSA_BYTES 1024          /* 8192-bit moduli; bigger is a DoS on verify */
#define MIN_RSA_BITS 2048          /* Envoy accepts less; a deliberate difference */
#define MAX_OCT_BYTES 1024

static atomic_ullong mg_jwks_gen_counter;

/* Decode a base64url JWK member. Key material comes from a trusted JWKS, so
 * trailing '=' is tolerated here (unlike in tokens). */
static int b64u_member(json_t *o, const char *name, uint8_t **out, size_t *outlen,
                       size_t maxlen)
{
    json_t *v = json_object_get(o, name);
    const char *s;
    size_t n;
    if (!json_is_string(v))
        return -1;
    s = json_string_value(v);
    n = json_string_length(v);
    if (n == 0 || n > maxlen * 4 / 3 + 4)
        return -1;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || (c == '=' && i + 2 >= n)))
            return -1;
    }
    if (mg_base64_decode(s, n, true, out, outlen) < 0)
        return -1;
    if (*outlen == 0 || *outlen > maxlen) {
        free(*out);
        *out = NULL;
        return -1;
    }
    return 0;
}

bool mg_jwk_alg_fits(const char *alg, enum mg_kty kty, int crv_bits)
{
    switch (kty) {
    case MG_KTY_RSA:
        return !strcmp(alg, "RS256") || !strcmp(alg, "RS384") || !strcmp(alg, "RS512") ||
               !strcmp(alg, "PS256") || !strcmp(alg, "PS384") || !strcmp(alg, "PS512");
    case MG_KTY_EC:
        return (crv_bits == 256 && !strcmp(alg, "ES256")) ||
               (crv_bits == 384 && !strcmp(alg, "ES384")) ||
               (crv_bits == 521 && !strcmp(alg, "ES512"));
    case MG_KTY_OKP:
        return crv_bits == 25519 && !strcmp(alg, "EdDSA");
    case MG_KTY_OCT:
        return !strcmp(alg, "HS256") || !strcmp(alg, "HS384") || !strcmp(alg, "HS512");
    }
    return false;
}

static bool has_any(json_t *o, const char *const *names)
{
    for (; *names; names++)
        if (json_object_get(o, *names))
            return true;
    return false;
}

static void jwk_free(struct mg_jwk *k)
{
    free(k->kid);
    free(k->alg);
    if (k->cj)
        cjose_jwk_release(k->cj);
    EVP_PKEY_free(k->pk);
}

static int bit_length(const uint8_t *p, size_t n)
{
    size_t i = 0;
    while (i < n && p[i] == 0)
        i++;
    if (i == n)
        return 0;
    int bits = (int)(n - i - 1) * 8;
    for (uint8_t b = p[i]; b; b >>= 1)
        bits++;
    return bits;
}

/* An RSA public key from its big-endian modulus and exponent (from a JWK or
 * a certificate). Takes ownership of n and e. */
static const char *rsa_from_ne(uint8_t *n, size_t nlen, uint8_t *e, size_t elen, struct mg_jwk *k)
{
    cjose_err cerr;
    int ebits = bit_length(e, elen);
    /* jwt_verify_lib takes e = 3 or 65537 only (any other exponent is a
     * parse error and the key is skipped), and an even modulus cannot be a
     * product of two odd primes. */
    if (!((ebits == 2 && e[elen - 1] == 3) || (ebits == 17 && e[elen - 1] == 1 && e[elen - 2] == 0 &&
                                               e[elen - 3] == 1))) {
        free(n);
        free(e);
        return "RSA [e] is neither 3 nor 65537";
    }
    if ((n[nlen - 1] & 1) == 0) {
        free(n);
        free(e);
        return "RSA [n] is even";
    }
    k->bits = bit_length(n, nlen);
    if (k->bits < MIN_RSA_BITS) {
        free(n);
        free(e);
        return "RSA key shorter than 2048 bits; refused";
    }
    cjose_jwk_rsa_keyspec spec = {.e = e, .elen = elen, .n = n, .nlen = nlen};
    k->cj = cjose_jwk_create_RSA_spec(&spec, &cerr);
    free(n);
    free(e);
    return k->cj ? NULL : "RSA key rejected by cjose";
}

static const char *parse_rsa(json_t *o, struct mg_jwk *k)
{
    static const char *const priv[] = {"d", "p", "q", "dp", "dq", "qi", "oth", NULL};
    uint8_t *n = NULL, *e = NULL;
    size_t nlen, elen;
    if (has_any(o, priv))
        return "RSA key carries private members; refused";
    if (b64u_member(o, "n", &n, &nlen, MAX_RSA_BYTES) < 0)
        return "RSA [n] missing, not base64url, or larger than 8192 bits";
    if (b64u_member(o, "e", &e, &elen, 8) < 0) {
        free(n);
        return "RSA [e] missing or malformed";
    }
    return rsa_from_ne(n, nlen, e, elen, k);
}

/* A coordinate of `want` bytes: a shorter one is a big-endian number with
 * its leading zero bytes left out (jwt_verify_lib reads it so), a longer
 * one may only have extra leading zeros. */
static int ec_coord(json_t *o, const char *name, size_t want, uint8_t *out)
{
    uint8_t *b = NULL;
    size_t n, skip = 0;
    if (b64u_member(o, name, &b, &n, want + 8) < 0)
        return -1;
    while (n - skip > want && b[skip] == 0)
        skip++;
    if (n - skip > want) {
        free(b);
        return -1;
    }
    memset(out, 0, want);
    memcpy(out + want - (n - skip), b + skip, n - skip);
    free(b);
    return 0;
}

static const char *parse_ec(json_t *o, struct mg_jwk *k)
{
    static const char *const priv[] = {"d", NULL};
    json_t *cv = json_object_get(o, "crv");
    const char *crv = json_string_value(cv);
    const char *alg = json_string_value(json_object_get(o, "alg"));
    uint8_t x[66], y[66];
    size_t want;
    cjose_jwk_ec_curve c;
    cjose_err cerr;
    if (has_any(o, priv))
        return "EC key carries a private member; refused";
    if (cv && !crv)
        return "[crv] field is not string for an EC key";
    if (!crv) {
        /* RFC 7518 requires crv; jwt_verify_lib takes the curve the alg
         * names, or P-256 when neither is given. Unambiguous: the point
         * must still lie on that curve. */
        if (!alg)
            crv = "P-256";
        else if (!strcmp(alg, "ES256"))
            crv = "P-256";
        else if (!strcmp(alg, "ES384"))
            crv = "P-384";
        else if (!strcmp(alg, "ES512"))
            crv = "P-521";
        else
            return "[alg] is not started with [ES] for an EC key";
    }
    if (!strcmp(crv, "P-256"))
        c = CJOSE_JWK_EC_P_256, k->crv_bits = 256, want = 32;
    else if (!strcmp(crv, "P-384"))
        c = CJOSE_JWK_EC_P_384, k->crv_bits = 384, want = 48;
    else if (!strcmp(crv, "P-521"))
        c = CJOSE_JWK_EC_P_521, k->crv_bits = 521, want = 66;
    else
        return "EC [crv] not supported";
    if (ec_coord(o, "x", want, x) < 0 || ec_coord(o, "y", want, y) < 0)
        return "EC [x] or [y] missing, malformed or longer than the curve size";
    cjose_jwk_ec_keyspec spec = {.crv = c, .x = x, .xlen = want, .y = y, .ylen = want};
    k->cj = cjose_jwk_create_EC_spec(&spec, &cerr);
    /* cjose builds the point with EC_KEY_set_public_key_affine_coordinates,
     * which refuses points off the curve. */
    return k->cj ? NULL : "EC point rejected (not on the curve)";
}

static const char *parse_okp(json_t *o, struct mg_jwk *k)
{
    static const char *const priv[] = {"d", NULL};
    const char *crv = json_string_value(json_object_get(o, "crv"));
    uint8_t *x = NULL;
    size_t xlen;
    if (has_any(o, priv))
        return "OKP key carries a private member; refused";
    if (!crv || strcmp(crv, "Ed25519"))
        return "OKP [crv] missing or not Ed25519";
    if (b64u_member(o, "x", &x, &xlen, 32) < 0 || xlen != 32) {
        free(x);
        return "OKP [x] missing or not 32 bytes";
    }
    k->crv_bits = 25519;
    k->pk = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, x, xlen);
    free(x);
    return k->pk ? NULL : "OKP key rejected by OpenSSL";
}

static const char *parse_oct(json_t *o, struct mg_jwk *k, unsigned flags)
{
    uint8_t *s = NULL;
    size_t slen;
    cjose_err cerr;
    if (!(flags & MG_JWKS_ALLOW_OCT))
        return "oct (HMAC) keys are only accepted from an inline jwks";
    if (b64u_member(o, "k", &s, &slen, MAX_OCT_BYTES) < 0)
        return "oct [k] missing or malformed";
    k->cj = cjose_jwk_create_oct_spec(s, slen, &cerr);
    OPENSSL_cleanse(s, slen);
    free(s);
    return k->cj ? NULL : "oct key rejected by cjose";
}

/* Fill *k from one JWK object; NULL on success, else why it was skipped. */
static const char *parse_key(json_t *o, struct mg_jwk *k, unsigned flags)
{
    const char *kty, *use, *alg, *err;
    json_t *v;
    if (!json_is_object(o))
        return "key is not a JSON object";
    kty = json_string_value(json_object_get(o, "kty"));
    if (!kty)
        return "[kty] is missing in [keys]";
    /* jwt_verify_lib ignores a kid that is not a string, and an empty one
     * is no kid: the key is tried for every token. */
    if ((v = json_object_get(o, "kid")) && json_is_string(v) && json_string_length(v))
        k->kid = mg_xstrndup(json_string_value(v), json_string_length(v));
    if ((v = json_object_get(o, "use")) && (!(use = json_string_value(v)) || strcmp(use, "sig")))
        return "[use] is not \"sig\"";
    if (!strcmp(kty, "RSA"))
        k->kty = MG_KTY_RSA, err = parse_rsa(o, k);
    else if (!strcmp(kty, "EC"))
        k->kty = MG_KTY_EC, err = parse_ec(o, k);
    else if (!strcmp(kty, "OKP"))
        k->kty = MG_KTY_OKP, err = parse_okp(o, k);
    else if (!strcmp(kty, "oct"))
        k->kty = MG_KTY_OCT, err = parse_oct(o, k, flags);
    else
        return "[kty] is not supported in [keys]";
    if (err)
        return err;
    if ((v = json_object_get(o, "alg"))) {
        if (!(alg = json_string_value(v)) || !mg_jwk_alg_fits(alg, k->kty, k->crv_bits))
            return "[alg] does not fit the key type";
        k->alg = mg_xstrdup(alg);
    }
    return NULL;
}

static void set_err(char *err, size_t errlen, const char *msg)
{
    if (err && errlen)
        snprintf(err, errlen, "%s", msg);
}

#define X509_BEGIN "-----BEGIN CERTIFICATE-----\n"
#define X509_END "\n-----END CERTIFICATE-----\n"

/* Is root the map kid -> PEM certificate (Google service-account keys)?
 * As jwt_verify_lib decides: no "keys", at least one member, every member a
 * non-empty name with a string that starts and ends like one certificate. */
static bool is_x509_map(json_t *root)
{
    const char *name;
    json_t *v;
    if (!json_is_object(root) || json_object_size(root) == 0)
        return false;
    json_object_foreach(root, name, v) {
        const char *s = json_string_value(v);
        size_t n = json_string_length(v);
        if (!*name || !s || n < strlen(X509_BEGIN) + strlen(X509_END) ||
            strncmp(s, X509_BEGIN, strlen(X509_BEGIN)) ||
            strcmp(s + n - strlen(X509_END), X509_END))
            return false;
    }
    return true;
}

/* One certificate's RSA public key (jwt_verify_lib reads only RSA from
 * this format); the certificate's dates and issuer are not looked at. */
static const char *parse_x509(const char *pem, size_t len, struct mg_jwk *k)
{
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    X509 *x = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
    EVP_PKEY *pk = x ? X509_get0_pubkey(x) : NULL;
    BIGNUM *bn = NULL, *be = NULL;
    const char *why = NULL;
    BIO_free(bio);
    if (!x) {
        ERR_clear_error();
        return "X509 parse pubkey fails";
    }
    k->kty = MG_KTY_RSA;
    if (!pk || EVP_PKEY_get_base_id(pk) != EVP_PKEY_RSA ||
        !EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_RSA_N, &bn) ||
        !EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_RSA_E, &be)) {
        why = "X509 parse pubkey internal fails: get pubkey";
    } else if (BN_num_bytes(bn) > MAX_RSA_BYTES || BN_num_bytes(be) > 8 || BN_is_zero(bn) ||
               BN_is_zero(be)) {
        why = "X509 RSA key too large or empty";
    } else {
        size_t nlen = (size_t)BN_num_bytes(bn), elen = (size_t)BN_num_bytes(be);
        uint8_t *n = mg_xmalloc(nlen), *e = mg_xmalloc(elen);
        BN_bn2bin(bn, n);
        BN_bn2bin(be, e);
        why = rsa_from_ne(n, nlen, e, elen, k);
    }
    BN_free(bn);
    BN_free(be);
    X509_free(x);
    ERR_clear_error();
    return why;
}

static void skipped(struct mg_jwks *ks, const char *what, const struct mg_jwk *k, const char *why)
{
    char *msg = mg_xasprintf("%s%s%s%s skipped: %s", what, k->kid ? " (kid " : "",
                             k->kid ? k->kid : "", k->kid ? ")" : "", why);
    mg_strlist_push(&ks->warnings, msg);
    free(msg);
}

struct mg_jwks *mg_jwks_parse(const char *json, size_t len, unsigned flags,
                              char *err, size_t errlen)
{
    json_error_t jerr;
    json_t *root, *keys;
    struct mg_jwks *ks;
    size_t nkeys;
    bool x509;

    if (len > MG_JWKS_MAX_JSON) {
        set_err(err, errlen, "Jwks is larger than 1 MiB");
        return NULL;
    }
    root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        set_err(err, errlen, "Jwks is an invalid JSON");
        return NULL;
    }
    keys = json_object_get(root, "keys");
    x509 = !keys && is_x509_map(root);
    if (!json_is_object(root) || (!keys && !x509)) {
        json_decref(root);
        set_err(err, errlen, "Jwks does not have [keys] field");
        return NULL;
    }
    if (!x509 && !json_is_array(keys)) {
        json_decref(root);
        set_err(err, errlen, "[keys] in Jwks is not an array");
        return NULL;
    }
    nkeys = x509 ? json_object_size(root) : json_array_size(keys);
    if (nkeys > MG_JWKS_MAX_KEYS) {
        json_decref(root);
        set_err(err, errlen, "Jwks has more than 64 keys");
        return NULL;
    }
    ks = mg_xcalloc(1, sizeof *ks);
    atomic_init(&ks->refs, 1);
    ks->gen = atomic_fetch_add(&mg_jwks_gen_counter, 1) + 1;
    ks->keys = mg_xcalloc(nkeys ? nkeys : 1, sizeof *ks->keys);
    if (x509) {
        const char *name;
        json_t *v;
        json_object_foreach(root, name, v) {
            struct mg_jwk k = {.kid = mg_xstrdup(name)};
            const char *why = parse_x509(json_string_value(v), json_string_length(v), &k);
            if (why) {
                skipped(ks, "certificate", &k, why);
                jwk_free(&k);
                continue;
            }
            ks->keys[ks->n++] = k;
        }
    }
    for (size_t i = 0; !x509 && i < nkeys; i++) {
        struct mg_jwk k = {0};
        const char *why = parse_key(json_array_get(keys, i), &k, flags);
        if (why) {
            char what[32];
            snprintf(what, sizeof what, "key %zu", i);
            skipped(ks, what, &k, why);
            jwk_free(&k);
            continue;
        }
        ks->keys[ks->n++] = k;
    }
    json_decref(root);
    if (ks->n == 0) {
        char *msg = mg_xasprintf("Jwks doesn't have any valid public key%s%s",
                                 ks->warnings.n ? ": " : "",
                                 ks->warnings.n ? ks->warnings.v[0] : "");
        set_err(err, errlen, msg);
        free(msg);
        mg_jwks_unref(ks);
        return NULL;
    }
    return ks;
}

struct mg_jwks *mg_jwks_ref(struct mg_jwks *ks)
{
    if (ks)
        atomic_fetch_add(&ks->refs, 1);
    return ks;
}

void mg_jwks_unref(struct mg_jwks *ks)
{
    if (!ks || atomic_fetch_sub(&ks->refs, 1) != 1)
        return;
    for (size_t i = 0; i < ks->n; i++)
        jwk_free(&ks->keys[i]);
    free(ks->keys);
    mg_strlist_free(&ks->warnings);
    free(ks);
}

size_t mg_jwks_count(const struct mg_jwks *ks) { return ks ? ks->n : 0; }
uint64_t mg_jwks_generation(const struct mg_jwks *ks) { return ks ? ks->gen : 0; }
size_t mg_jwks_n_warnings(const struct mg_jwks *ks) { return ks ? ks->warnings.n : 0; }

const char *mg_jwks_warning(const struct mg_jwks *ks, size_t i)
{
    return ks && i < ks->warnings.n ? ks->warnings.v[i] : NULL;
}

bool mg_jwks_has_kid(const struct mg_jwks *ks, const char *kid)
{
    if (!ks || !kid)
        return false;
    for (size_t i = 0; i < ks->n; i++)
        if (ks->keys[i].kid && !strcmp(ks->keys[i].kid, kid))
            return true;
    return false;
}
