/* jwt.c - strict compact-JWS verification against a key set.
 *
 * Order matters for safety: the token's shape and header are checked first,
 * the signature is verified (cjose for RSA/EC/HMAC after our own fitness
 * checks, OpenSSL for Ed25519), and only then is the payload parsed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "jwt/internal.h"

const char *mg_jwt_error_str(enum mg_jwt_error e)
{
    switch (e) {
    case MG_JWT_OK: return "OK";
    case MG_JWT_MISSING: return "Jwt is missing";
    case MG_JWT_NOT_YET_VALID: return "Jwt not yet valid";
    case MG_JWT_EXPIRED: return "Jwt is expired";
    case MG_JWT_BAD_FORMAT:
        return "Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections";
    case MG_JWT_HEADER_BAD_BASE64: return "Jwt header is an invalid Base64url encoded";
    case MG_JWT_HEADER_BAD_JSON: return "Jwt header is an invalid JSON";
    case MG_JWT_HEADER_BAD_ALG: return "Jwt header [alg] field is required and must be a string";
    case MG_JWT_HEADER_NOT_IMPLEMENTED_ALG: return "Jwt header [alg] is not supported";
    case MG_JWT_HEADER_BAD_KID: return "Jwt header [kid] field is not a string";
    case MG_JWT_PAYLOAD_BAD_BASE64: return "Jwt payload is an invalid Base64url encoded";
    case MG_JWT_PAYLOAD_BAD_JSON: return "Jwt payload is an invalid JSON";
    case MG_JWT_ISS_NOT_STRING: return "Jwt payload [iss] field is not a string";
    case MG_JWT_SUB_NOT_STRING: return "Jwt payload [sub] field is not a string";
    case MG_JWT_NBF_NOT_INTEGER: return "Jwt payload [nbf] field is not an integer";
    case MG_JWT_EXP_NOT_INTEGER: return "Jwt payload [exp] field is not an integer";
    case MG_JWT_AUD_NOT_STRING: return "Jwt payload [aud] field is not a string or string list";
    case MG_JWT_SIGNATURE_BAD_BASE64: return "Jwt signature is an invalid Base64url encoded";
    case MG_JWT_ED25519_SIG_LENGTH: return "Jwt ED25519 signature is wrong length";
    case MG_JWT_UNKNOWN_ISSUER: return "Jwt issuer is not configured";
    case MG_JWT_AUDIENCE_NOT_ALLOWED: return "Audiences in Jwt are not allowed";
    case MG_JWT_VERIFICATION_FAIL: return "Jwt verification fails";
    case MG_JWT_MULTIPLE_TOKENS: return "Found multiple Jwt tokens";
    case MG_JWKS_NO_VALID_KEYS: return "Jwks doesn't have any valid public key";
    case MG_JWKS_KID_ALG_MISMATCH: return "Jwks doesn't have key to match kid or alg from Jwt";
    case MG_JWKS_FETCH_FAIL: return "Jwks remote fetch is failed";
    }
    return "Jwt verification fails";
}

void mg_jwt_clear(struct mg_jwt *j)
{
    if (j->payload)
        json_decref(j->payload);
    free(j->aud);
    free(j->payload_b64);
    free(j->kid);
    memset(j, 0, sizeof *j);
}

void mg_jwt_copy(struct mg_jwt *dst, const struct mg_jwt *src)
{
    *dst = *src;
    if (src->payload)
        json_incref(src->payload);
    if (src->n_aud) {
        dst->aud = mg_xcalloc(src->n_aud, sizeof *dst->aud);
        memcpy(dst->aud, src->aud, src->n_aud * sizeof *dst->aud);
    } else {
        dst->aud = NULL;
    }
    dst->payload_b64 = src->payload_b64 ? mg_xstrdup(src->payload_b64) : NULL;
    dst->kid = src->kid ? mg_xstrdup(src->kid) : NULL;
}

/* base64url without padding: the only encoding a compact JWS may use. */
static bool b64u_strict(const char *s, size_t n)
{
    if (n == 0 || n % 4 == 1)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return false;
    }
    return true;
}

static bool alg_supported(const char *a)
{
    static const char *const algs[] = {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
                                       "ES256", "ES384", "ES512", "HS256", "HS384", "HS512",
                                       "EdDSA", NULL};
    for (const char *const *p = algs; *p; p++)
        if (!strcmp(a, *p))
            return true;
    return false;
}

static int ecdsa_sig_len(const char *alg)
{
    return !strcmp(alg, "ES256") ? 64 : !strcmp(alg, "ES384") ? 96 : 132;
}

static bool verify_ed25519(const struct mg_jwk *k, const char *input, size_t inlen,
                           const uint8_t *sig, size_t siglen)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    bool ok = false;
    if (!ctx)
        mg_oom();
    if (EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, k->pk) == 1)
        ok = EVP_DigestVerify(ctx, sig, siglen, (const unsigned char *)input, inlen) == 1;
    EVP_MD_CTX_free(ctx);
    return ok;
}

static int get_time_claim(json_t *pl, const char *name, bool *has, int64_t *val)
{
    json_t *v = json_object_get(pl, name);
    if (!v)
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return -1;
    *has = true;
    *val = (int64_t)json_integer_value(v);
    return 0;
}

/* Claims of a verified payload into *out. Returns MG_JWT_OK or the error. */
static enum mg_jwt_error read_claims(const uint8_t *pl, size_t pllen, int64_t now,
                                     struct mg_jwt *out)
{
    json_error_t jerr;
    json_t *o = json_loadb((const char *)pl, pllen, JSON_REJECT_DUPLICATES, &jerr), *v;
    if (!o)
        return MG_JWT_PAYLOAD_BAD_JSON;
    out->payload = o;
    if (!json_is_object(o))
        return MG_JWT_PAYLOAD_BAD_JSON;
    if ((v = json_object_get(o, "iss")) && !(out->iss = json_string_value(v)))
        return MG_JWT_ISS_NOT_STRING;
    if ((v = json_object_get(o, "sub")) && !(out->sub = json_string_value(v)))
        return MG_JWT_SUB_NOT_STRING;
    out->azp = json_string_value(json_object_get(o, "azp"));
    if ((v = json_object_get(o, "aud"))) {
        if (json_is_string(v)) {
            out->aud = mg_xcalloc(1, sizeof *out->aud);
            out->aud[out->n_aud++] = json_string_value(v);
        } else if (json_is_array(v)) {
            size_t n = json_array_size(v);
            out->aud = mg_xcalloc(n ? n : 1, sizeof *out->aud);
            for (size_t i = 0; i < n; i++) {
                const char *a = json_string_value(json_array_get(v, i));
                if (!a)
                    return MG_JWT_AUD_NOT_STRING;
                out->aud[out->n_aud++] = a;
            }
        } else {
            return MG_JWT_AUD_NOT_STRING;
        }
    }
    if (get_time_claim(o, "exp", &out->has_exp, &out->exp) < 0)
        return MG_JWT_EXP_NOT_INTEGER;
    if (get_time_claim(o, "nbf", &out->has_nbf, &out->nbf) < 0)
        return MG_JWT_NBF_NOT_INTEGER;
    if (out->has_nbf && out->nbf > now + MG_JWT_CLOCK_SKEW_S)
        return MG_JWT_NOT_YET_VALID;
    if (out->has_exp && out->exp < now - MG_JWT_CLOCK_SKEW_S)
        return MG_JWT_EXPIRED;
    return MG_JWT_OK;
}

/* Try every key that may have signed this token. Returns MG_JWT_OK,
 * MG_JWKS_KID_ALG_MISMATCH (no candidate) or MG_JWT_VERIFICATION_FAIL. */
static enum mg_jwt_error verify_sig(const struct mg_jwks *ks, const char *token, size_t inlen,
                                    const char *alg, const char *kid, const uint8_t *sig,
                                    size_t siglen, size_t len)
{
    cjose_jws_t *jws = NULL;
    cjose_err cerr;
    size_t candidates = 0;
    bool ok = false;

    for (size_t i = 0; i < ks->n && !ok; i++) {
        const struct mg_jwk *k = &ks->keys[i];
        if (kid && (!k->kid || strcmp(kid, k->kid)))
            continue;
        if (!mg_jwk_alg_fits(alg, k->kty, k->crv_bits))
            continue;
        if (k->alg && strcmp(k->alg, alg))
            continue;
        candidates++;
        if (k->kty == MG_KTY_OKP) {
            ok = verify_ed25519(k, token, inlen, sig, siglen);
            continue;
        }
        if (k->kty == MG_KTY_EC && siglen != (size_t)ecdsa_sig_len(alg))
            continue;
        if (!jws && !(jws = cjose_jws_import(token, len, &cerr)))
            break;
        ok = cjose_jws_verify(jws, k->cj, &cerr);
    }
    if (jws)
        cjose_jws_release(jws);
    if (!candidates)
        return MG_JWKS_KID_ALG_MISMATCH;
    return ok ? MG_JWT_OK : MG_JWT_VERIFICATION_FAIL;
}

static int fail(struct mg_jwt *out, enum mg_jwt_error *err, enum mg_jwt_error e, bool keep_kid)
{
    char *kid = keep_kid ? out->kid : NULL;
    if (keep_kid)
        out->kid = NULL;
    mg_jwt_clear(out);
    out->kid = kid;
    *err = e;
    return -1;
}

int mg_jwt_verify(const struct mg_jwks *ks, const char *token, size_t len, int64_t now,
                  struct mg_jwt *out, enum mg_jwt_error *err)
{
    const char *d1, *d2;
    uint8_t *hdr = NULL, *pl = NULL, *sig = NULL;
    size_t hdrlen, pllen, siglen;
    json_error_t jerr;
    json_t *h, *v;
    const char *alg;
    enum mg_jwt_error e;

    memset(out, 0, sizeof *out);
    if (!token || len == 0)
        return fail(out, err, MG_JWT_MISSING, false);
    if (len > MG_JWT_MAX_TOKEN)
        return fail(out, err, MG_JWT_BAD_FORMAT, false);
    d1 = memchr(token, '.', len);
    d2 = d1 ? memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - token)) : NULL;
    if (!d1 || !d2 || memchr(d2 + 1, '.', len - (size_t)(d2 + 1 - token)) || d1 == token ||
        d2 == d1 + 1 || d2 + 1 == token + len)
        return fail(out, err, MG_JWT_BAD_FORMAT, false);

    if (!b64u_strict(token, (size_t)(d1 - token)) ||
        mg_base64_decode(token, (size_t)(d1 - token), true, &hdr, &hdrlen) < 0)
        return fail(out, err, MG_JWT_HEADER_BAD_BASE64, false);
    h = json_loadb((const char *)hdr, hdrlen, JSON_REJECT_DUPLICATES, &jerr);
    free(hdr);
    if (!h || !json_is_object(h)) {
        json_decref(h);
        return fail(out, err, MG_JWT_HEADER_BAD_JSON, false);
    }
    alg = json_string_value(json_object_get(h, "alg"));
    if (!alg) {
        json_decref(h);
        return fail(out, err, MG_JWT_HEADER_BAD_ALG, false);
    }
    if (!alg_supported(alg)) {      /* "none" is never accepted */
        json_decref(h);
        return fail(out, err, MG_JWT_HEADER_NOT_IMPLEMENTED_ALG, false);
    }
    snprintf(out->alg, sizeof out->alg, "%s", alg);
    if ((v = json_object_get(h, "kid"))) {
        if (!json_is_string(v)) {
            json_decref(h);
            return fail(out, err, MG_JWT_HEADER_BAD_KID, false);
        }
        out->kid = mg_xstrdup(json_string_value(v));
    }
    json_decref(h);

    if (!b64u_strict(d1 + 1, (size_t)(d2 - d1 - 1)))
        return fail(out, err, MG_JWT_PAYLOAD_BAD_BASE64, false);
    if (!b64u_strict(d2 + 1, len - (size_t)(d2 + 1 - token)) ||
        mg_base64_decode(d2 + 1, len - (size_t)(d2 + 1 - token), true, &sig, &siglen) < 0)
        return fail(out, err, MG_JWT_SIGNATURE_BAD_BASE64, false);
    if (!strcmp(out->alg, "EdDSA") && siglen != 64) {
        free(sig);
        return fail(out, err, MG_JWT_ED25519_SIG_LENGTH, false);
    }
    if (!ks) {
        free(sig);
        return fail(out, err, MG_JWKS_FETCH_FAIL, false);
    }
    e = verify_sig(ks, token, (size_t)(d2 - token), out->alg, out->kid, sig, siglen, len);
    free(sig);
    if (e != MG_JWT_OK)
        return fail(out, err, e, e == MG_JWKS_KID_ALG_MISMATCH);

    /* Verified: now, and only now, the claims. */
    if (mg_base64_decode(d1 + 1, (size_t)(d2 - d1 - 1), true, &pl, &pllen) < 0)
        return fail(out, err, MG_JWT_PAYLOAD_BAD_BASE64, false);
    e = read_claims(pl, pllen, now, out);
    free(pl);
    if (e != MG_JWT_OK)
        return fail(out, err, e, false);
    out->payload_b64 = mg_xstrndup(d1 + 1, (size_t)(d2 - d1 - 1));
    *err = MG_JWT_OK;
    return 0;
}
