/* jwks_parse.c - JWKS JSON -> an immutable, refcounted key set.
 *
 * cjose imports RSA/EC/oct keys but checks nothing about fitness (cjose
 * 0.6.2: 1024-bit RSA accepted, JWK alg/use ignored), so
 * every member is validated here first and keys are built from their decoded
 * public parts only; private members make us refuse the key outright. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "jwt/internal.h"

#define MAX_RSA_BYTES 1024          /* 8192-bit moduli; bigger is a DoS on verify */
#define MIN_RSA_BITS 2048
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

static const char *parse_rsa(json_t *o, struct mg_jwk *k)
{
    static const char *const priv[] = {"d", "p", "q", "dp", "dq", "qi", "oth", NULL};
    uint8_t *n = NULL, *e = NULL;
    size_t nlen, elen;
    cjose_err cerr;
    if (has_any(o, priv))
        return "RSA key carries private members; refused";
    if (b64u_member(o, "n", &n, &nlen, MAX_RSA_BYTES) < 0)
        return "RSA [n] missing, not base64url, or larger than 8192 bits";
    if (b64u_member(o, "e", &e, &elen, 8) < 0) {
        free(n);
        return "RSA [e] missing or malformed";
    }
    /* e must be odd and > 1: e = 1 would make every signature its own proof. */
    if ((e[elen - 1] & 1) == 0 || bit_length(e, elen) < 2) {
        free(n);
        free(e);
        return "RSA [e] is not an odd exponent > 1";
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

static const char *parse_ec(json_t *o, struct mg_jwk *k)
{
    static const char *const priv[] = {"d", NULL};
    const char *crv = json_string_value(json_object_get(o, "crv"));
    uint8_t *x = NULL, *y = NULL;
    size_t xlen, ylen, want;
    cjose_jwk_ec_curve c;
    cjose_err cerr;
    if (has_any(o, priv))
        return "EC key carries a private member; refused";
    if (!crv)
        return "EC [crv] missing";
    if (!strcmp(crv, "P-256"))
        c = CJOSE_JWK_EC_P_256, k->crv_bits = 256, want = 32;
    else if (!strcmp(crv, "P-384"))
        c = CJOSE_JWK_EC_P_384, k->crv_bits = 384, want = 48;
    else if (!strcmp(crv, "P-521"))
        c = CJOSE_JWK_EC_P_521, k->crv_bits = 521, want = 66;
    else
        return "EC [crv] not supported";
    if (b64u_member(o, "x", &x, &xlen, want) < 0 || xlen != want ||
        b64u_member(o, "y", &y, &ylen, want) < 0 || ylen != want) {
        free(x);
        free(y);
        return "EC [x] or [y] missing or of the wrong length";
    }
    cjose_jwk_ec_keyspec spec = {.crv = c, .x = x, .xlen = xlen, .y = y, .ylen = ylen};
    k->cj = cjose_jwk_create_EC_spec(&spec, &cerr);
    free(x);
    free(y);
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
    if ((v = json_object_get(o, "kid"))) {
        if (!json_is_string(v))
            return "[kid] is not a string";
        k->kid = mg_xstrdup(json_string_value(v));
    }
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

struct mg_jwks *mg_jwks_parse(const char *json, size_t len, unsigned flags,
                              char *err, size_t errlen)
{
    json_error_t jerr;
    json_t *root, *keys;
    struct mg_jwks *ks;
    size_t nkeys;

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
    if (!json_is_object(root) || !keys) {
        json_decref(root);
        set_err(err, errlen, "Jwks does not have [keys] field");
        return NULL;
    }
    if (!json_is_array(keys)) {
        json_decref(root);
        set_err(err, errlen, "[keys] in Jwks is not an array");
        return NULL;
    }
    nkeys = json_array_size(keys);
    if (nkeys > MG_JWKS_MAX_KEYS) {
        json_decref(root);
        set_err(err, errlen, "Jwks has more than 64 keys");
        return NULL;
    }
    ks = mg_xcalloc(1, sizeof *ks);
    atomic_init(&ks->refs, 1);
    ks->gen = atomic_fetch_add(&mg_jwks_gen_counter, 1) + 1;
    ks->keys = mg_xcalloc(nkeys ? nkeys : 1, sizeof *ks->keys);
    for (size_t i = 0; i < nkeys; i++) {
        struct mg_jwk k = {0};
        const char *why = parse_key(json_array_get(keys, i), &k, flags);
        if (why) {
            char *msg = mg_xasprintf("key %zu%s%s%s skipped: %s", i, k.kid ? " (kid " : "",
                                     k.kid ? k.kid : "", k.kid ? ")" : "", why);
            mg_strlist_push(&ks->warnings, msg);
            free(msg);
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
