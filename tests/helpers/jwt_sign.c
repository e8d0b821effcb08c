/* jwt_sign.c - see jwt_sign.h. Test code: aborts on allocation failure. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/hmac.h>
#include <openssl/rsa.h>
#include "jwt_sign.h"

char *mg_ts_b64u(const void *p, size_t n)
{
    static const char al[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const uint8_t *in = p;
    char *o = malloc(n * 4 / 3 + 4), *q = o;
    size_t i;
    if (!o)
        abort();
    for (i = 0; i + 2 < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        *q++ = al[v >> 18], *q++ = al[(v >> 12) & 63], *q++ = al[(v >> 6) & 63], *q++ = al[v & 63];
    }
    if (i < n) {
        uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0);
        *q++ = al[v >> 18], *q++ = al[(v >> 12) & 63];
        if (i + 1 < n)
            *q++ = al[(v >> 6) & 63];
    }
    *q = 0;
    return o;
}

EVP_PKEY *mg_ts_genkey(const char *type)
{
    if (!strcmp(type, "rsa"))
        return EVP_RSA_gen(2048);
    if (!strcmp(type, "rsa1024"))
        return EVP_RSA_gen(1024);
    if (!strcmp(type, "rsa4096"))
        return EVP_RSA_gen(4096);
    if (!strcmp(type, "ec256"))
        return EVP_EC_gen("P-256");
    if (!strcmp(type, "ec384"))
        return EVP_EC_gen("P-384");
    if (!strcmp(type, "ec521"))
        return EVP_EC_gen("P-521");
    if (!strcmp(type, "ed25519"))
        return EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    return NULL;
}

static int ec_bits(EVP_PKEY *k)
{
    return EVP_PKEY_get_bits(k);
}

const char *mg_ts_default_alg(EVP_PKEY *k)
{
    switch (EVP_PKEY_get_base_id(k)) {
    case EVP_PKEY_RSA: return "RS256";
    case EVP_PKEY_ED25519: return "EdDSA";
    case EVP_PKEY_EC:
        return ec_bits(k) == 256 ? "ES256" : ec_bits(k) == 384 ? "ES384" : "ES512";
    }
    return NULL;
}

static char *bn_b64u(EVP_PKEY *k, const char *name, int pad)
{
    BIGNUM *bn = NULL;
    char *s;
    if (!EVP_PKEY_get_bn_param(k, name, &bn))
        return NULL;
    int n = pad ? pad : BN_num_bytes(bn);
    uint8_t *buf = malloc((size_t)n);
    if (!buf)
        abort();
    BN_bn2binpad(bn, buf, n);
    s = mg_ts_b64u(buf, (size_t)n);
    free(buf);
    BN_free(bn);
    return s;
}

static char *dump(json_t *o)
{
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    if (!s)
        abort();
    return s;
}

char *mg_ts_jwk(EVP_PKEY *k, const char *kid, const char *extra)
{
    json_t *o = json_object();
    char *a, *b;
    switch (EVP_PKEY_get_base_id(k)) {
    case EVP_PKEY_RSA:
        a = bn_b64u(k, OSSL_PKEY_PARAM_RSA_N, 0);
        b = bn_b64u(k, OSSL_PKEY_PARAM_RSA_E, 0);
        json_object_set_new(o, "kty", json_string("RSA"));
        json_object_set_new(o, "n", json_string(a));
        json_object_set_new(o, "e", json_string(b));
        free(a), free(b);
        break;
    case EVP_PKEY_EC: {
        int bits = ec_bits(k), len = (bits + 7) / 8;
        a = bn_b64u(k, OSSL_PKEY_PARAM_EC_PUB_X, len);
        b = bn_b64u(k, OSSL_PKEY_PARAM_EC_PUB_Y, len);
        json_object_set_new(o, "kty", json_string("EC"));
        json_object_set_new(o, "crv", json_string(bits == 256 ? "P-256" : bits == 384 ? "P-384"
                                                                                    : "P-521"));
        json_object_set_new(o, "x", json_string(a));
        json_object_set_new(o, "y", json_string(b));
        free(a), free(b);
        break;
    }
    case EVP_PKEY_ED25519: {
        uint8_t raw[32];
        size_t rawlen = sizeof raw;
        EVP_PKEY_get_raw_public_key(k, raw, &rawlen);
        a = mg_ts_b64u(raw, rawlen);
        json_object_set_new(o, "kty", json_string("OKP"));
        json_object_set_new(o, "crv", json_string("Ed25519"));
        json_object_set_new(o, "x", json_string(a));
        free(a);
        break;
    }
    default:
        json_decref(o);
        return NULL;
    }
    if (kid)
        json_object_set_new(o, "kid", json_string(kid));
    if (extra) {
        json_t *x = json_loads(extra, 0, NULL);
        if (x)
            json_object_update(o, x);
        json_decref(x);
    }
    return dump(o);
}

char *mg_ts_jwk_oct(const uint8_t *secret, size_t len, const char *kid)
{
    json_t *o = json_object();
    char *k = mg_ts_b64u(secret, len);
    json_object_set_new(o, "kty", json_string("oct"));
    json_object_set_new(o, "k", json_string(k));
    free(k);
    if (kid)
        json_object_set_new(o, "kid", json_string(kid));
    return dump(o);
}

char *mg_ts_jwks(const char *const *jwks, size_t n)
{
    json_t *o = json_object(), *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, json_loads(jwks[i], 0, NULL));
    json_object_set_new(o, "keys", a);
    return dump(o);
}

char *mg_ts_header(const char *alg, const char *kid)
{
    json_t *o = json_object();
    json_object_set_new(o, "alg", json_string(alg));
    json_object_set_new(o, "typ", json_string("JWT"));
    if (kid)
        json_object_set_new(o, "kid", json_string(kid));
    return dump(o);
}

static const EVP_MD *md_for(const char *alg)
{
    const char *bits = alg + 2;
    if (!strcmp(alg, "EdDSA"))
        return NULL;
    return !strcmp(bits, "256") ? EVP_sha256() : !strcmp(bits, "384") ? EVP_sha384() : EVP_sha512();
}

/* JWS ECDSA signatures are R||S, each padded to the coordinate size. */
static int der_to_raw(const uint8_t *der, size_t derlen, int clen, uint8_t *out)
{
    const uint8_t *p = der;
    ECDSA_SIG *s = d2i_ECDSA_SIG(NULL, &p, (long)derlen);
    if (!s)
        return -1;
    BN_bn2binpad(ECDSA_SIG_get0_r(s), out, clen);
    BN_bn2binpad(ECDSA_SIG_get0_s(s), out + clen, clen);
    ECDSA_SIG_free(s);
    return 0;
}

char *mg_ts_sign(EVP_PKEY *k, const uint8_t *secret, size_t secretlen, const char *alg,
                 const char *header, const char *payload)
{
    char *h = mg_ts_b64u(header, strlen(header)), *p = mg_ts_b64u(payload, strlen(payload));
    size_t inlen = strlen(h) + 1 + strlen(p);
    char *input = malloc(inlen + 1), *sigb = NULL, *tok;
    uint8_t sig[1024];
    size_t siglen = sizeof sig;
    int ok = 0;
    if (!input)
        abort();
    snprintf(input, inlen + 1, "%s.%s", h, p);
    free(h), free(p);
    if (!strcmp(alg, "none")) {
        siglen = 0;
        ok = 1;
    } else if (alg[0] == 'H') {
        unsigned int l = 0;
        ok = HMAC(md_for(alg), secret, (int)secretlen, (const uint8_t *)input, inlen, sig, &l) != NULL;
        siglen = l;
    } else if (k) {
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        EVP_PKEY_CTX *pctx = NULL;
        if (EVP_DigestSignInit(ctx, &pctx, md_for(alg), NULL, k) == 1) {
            if (alg[0] == 'P') {
                EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING);
                EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST);
            }
            ok = EVP_DigestSign(ctx, sig, &siglen, (const uint8_t *)input, inlen) == 1;
        }
        EVP_MD_CTX_free(ctx);
        if (ok && alg[0] == 'E' && alg[1] == 'S') {
            uint8_t raw[132], der[sizeof sig];
            int clen = (EVP_PKEY_get_bits(k) + 7) / 8;
            memcpy(der, sig, siglen);
            ok = der_to_raw(der, siglen, clen, raw) == 0;
            memcpy(sig, raw, (size_t)clen * 2);
            siglen = (size_t)clen * 2;
        }
    }
    if (!ok) {
        free(input);
        return NULL;
    }
    sigb = mg_ts_b64u(sig, siglen);
    tok = malloc(inlen + 2 + strlen(sigb));
    if (!tok)
        abort();
    sprintf(tok, "%s.%s", input, sigb);
    free(input);
    free(sigb);
    return tok;
}
