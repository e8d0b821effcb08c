/* jwt.c - compact-JWS parsing and verification against a key set, in the
 * steps and with the answers of Envoy's jwt_verify_lib (see jwt.h): parse,
 * time, audiences (the issuer is the caller's), then the signature (cjose for
 * RSA/EC/HMAC after our own fitness checks, OpenSSL for Ed25519). */
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
    case MG_JWT_IAT_NOT_INTEGER: return "Jwt payload [iat] field is not an integer";
    case MG_JWT_IAT_OUT_OF_RANGE: return "Jwt payload [iat] field is not a positive 64 bit integer";
    case MG_JWT_NBF_OUT_OF_RANGE: return "Jwt payload [nbf] field is not a positive 64 bit integer";
    case MG_JWT_EXP_OUT_OF_RANGE: return "Jwt payload [exp] field is not a positive 64 bit integer";
    case MG_JWT_JTI_NOT_STRING: return "Jwt payload [jti] field is not a string";
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
    free(j->compact);
    free(j->sig);
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
    dst->compact = NULL;
    dst->signed_len = 0;
    dst->sig = NULL;
    dst->siglen = 0;
}

/* Decode one base64url section as absl's WebSafeBase64Unescape does: the
 * URL-safe alphabet only ('+' and '/' are errors), '=' padding optional but,
 * when present, completing a multiple of 4. */
static int b64u_section(const char *s, size_t n, uint8_t **out, size_t *outlen)
{
    size_t pad = 0;
    while (n && s[n - 1] == '=' && pad < 2)
        n--, pad++;
    if (n == 0 || n % 4 == 1 || (pad && (n + pad) % 4))
        return -1;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return -1;
    }
    return mg_base64_decode(s, n, true, out, outlen);
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

/* A NumericDate claim (RFC 7519: any JSON number of seconds) read as
 * jwt_verify_lib reads it: absent is fine, a non-number is "not an
 * integer", a negative number or one >= 2^64 is "out of range", a fraction
 * is dropped. Values past INT64_MAX are kept as INT64_MAX (the far future). */
enum num_result { NUM_ABSENT, NUM_OK, NUM_WRONG_TYPE, NUM_OUT_OF_RANGE };

static enum num_result get_numeric_date(json_t *pl, const char *name, int64_t *val)
{
    json_t *v = json_object_get(pl, name);
    if (!v)
        return NUM_ABSENT;
    if (json_is_integer(v)) {
        if (json_integer_value(v) < 0)
            return NUM_OUT_OF_RANGE;
        *val = (int64_t)json_integer_value(v);
        return NUM_OK;
    }
    if (!json_is_real(v))
        return NUM_WRONG_TYPE;
    double d = json_real_value(v);
    if (!(d >= 0) || d >= 18446744073709551616.0)
        return NUM_OUT_OF_RANGE;
    *val = d >= 9223372036854775807.0 ? INT64_MAX : (int64_t)d;
    return NUM_OK;
}

/* The payload's claims into *out, with jwt_verify_lib's type checks in its
 * order. Returns MG_JWT_OK or the error. */
static enum mg_jwt_error read_claims(const uint8_t *pl, size_t pllen, struct mg_jwt *out)
{
    static const struct {
        const char *name;
        enum mg_jwt_error wrong_type, out_of_range;
    } dates[] = {
        {"iat", MG_JWT_IAT_NOT_INTEGER, MG_JWT_IAT_OUT_OF_RANGE},
        {"nbf", MG_JWT_NBF_NOT_INTEGER, MG_JWT_NBF_OUT_OF_RANGE},
        {"exp", MG_JWT_EXP_NOT_INTEGER, MG_JWT_EXP_OUT_OF_RANGE},
    };
    json_error_t jerr;
    json_t *o = json_loadb((const char *)pl, pllen, JSON_REJECT_DUPLICATES, &jerr), *v;
    /* An integer beyond 64 bits is a number to Envoy (JSON numbers are
     * doubles there), so it is read again as one: "exp" of 1e20 written
     * out is out of range, not invalid JSON. */
    if (!o)
        o = json_loadb((const char *)pl, pllen, JSON_REJECT_DUPLICATES | JSON_DECODE_INT_AS_REAL,
                       &jerr);
    if (!o)
        return MG_JWT_PAYLOAD_BAD_JSON;
    out->payload = o;
    if (!json_is_object(o))
        return MG_JWT_PAYLOAD_BAD_JSON;
    if ((v = json_object_get(o, "iss")) && !(out->iss = json_string_value(v)))
        return MG_JWT_ISS_NOT_STRING;
    if ((v = json_object_get(o, "sub")) && !(out->sub = json_string_value(v)))
        return MG_JWT_SUB_NOT_STRING;
    for (size_t i = 0; i < MG_ARRAY_LEN(dates); i++) {
        int64_t t = 0;
        switch (get_numeric_date(o, dates[i].name, &t)) {
        case NUM_ABSENT: break;
        case NUM_WRONG_TYPE: return dates[i].wrong_type;
        case NUM_OUT_OF_RANGE: return dates[i].out_of_range;
        case NUM_OK:
            if (i == 1)
                out->has_nbf = true, out->nbf = t;
            else if (i == 2)
                out->has_exp = t != 0, out->exp = t;    /* exp 0: never expires (Envoy) */
            break;
        }
    }
    if ((v = json_object_get(o, "jti")) && !(out->jti = json_string_value(v)))
        return MG_JWT_JTI_NOT_STRING;
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
    return MG_JWT_OK;
}

static int fail(struct mg_jwt *out, enum mg_jwt_error *err, enum mg_jwt_error e)
{
    mg_jwt_clear(out);
    *err = e;
    return -1;
}

int mg_jwt_parse(const char *token, size_t len, struct mg_jwt *out, enum mg_jwt_error *err)
{
    const char *seg[3];
    size_t seglen[3], nseg = 0;
    uint8_t *hdr = NULL, *pl = NULL;
    size_t hdrlen, pllen;
    json_error_t jerr;
    json_t *h, *v;
    const char *alg;
    enum mg_jwt_error e;

    memset(out, 0, sizeof *out);
    if (!token || len > MG_JWT_MAX_TOKEN)
        return fail(out, err, MG_JWT_BAD_FORMAT);
    /* Split on '.', empty sections dropped: "h.p.s.", ".h.p.s" and
     * "h..p.s" are three sections to jwt_verify_lib (absl::SkipEmpty). */
    for (size_t i = 0; i < len;) {
        const char *d = memchr(token + i, '.', len - i);
        size_t e_ = d ? (size_t)(d - token) : len;
        if (e_ > i) {
            if (nseg == 3)
                return fail(out, err, MG_JWT_BAD_FORMAT);
            seg[nseg] = token + i;
            seglen[nseg++] = e_ - i;
        }
        i = e_ + 1;
    }
    if (nseg != 3)
        return fail(out, err, MG_JWT_BAD_FORMAT);

    if (b64u_section(seg[0], seglen[0], &hdr, &hdrlen) < 0)
        return fail(out, err, MG_JWT_HEADER_BAD_BASE64);
    h = json_loadb((const char *)hdr, hdrlen, JSON_REJECT_DUPLICATES, &jerr);
    free(hdr);
    if (!h || !json_is_object(h)) {
        json_decref(h);
        return fail(out, err, MG_JWT_HEADER_BAD_JSON);
    }
    alg = json_string_value(json_object_get(h, "alg"));
    if (!alg) {
        json_decref(h);
        return fail(out, err, MG_JWT_HEADER_BAD_ALG);
    }
    if (!alg_supported(alg)) {      /* "none" is never accepted */
        json_decref(h);
        return fail(out, err, MG_JWT_HEADER_NOT_IMPLEMENTED_ALG);
    }
    snprintf(out->alg, sizeof out->alg, "%s", alg);
    if ((v = json_object_get(h, "kid"))) {
        if (!json_is_string(v)) {
            json_decref(h);
            return fail(out, err, MG_JWT_HEADER_BAD_KID);
        }
        if (json_string_length(v))  /* an empty kid is no kid */
            out->kid = mg_xstrndup(json_string_value(v), json_string_length(v));
    }
    json_decref(h);

    if (b64u_section(seg[1], seglen[1], &pl, &pllen) < 0)
        return fail(out, err, MG_JWT_PAYLOAD_BAD_BASE64);
    e = read_claims(pl, pllen, out);
    free(pl);
    if (e != MG_JWT_OK)
        return fail(out, err, e);
    if (b64u_section(seg[2], seglen[2], &out->sig, &out->siglen) < 0)
        return fail(out, err, MG_JWT_SIGNATURE_BAD_BASE64);
    out->payload_b64 = mg_xstrndup(seg[1], seglen[1]);
    /* What cjose imports: the three sections, the signature unpadded. */
    size_t slen = seglen[2];
    while (slen && seg[2][slen - 1] == '=')
        slen--;
    out->compact = mg_xasprintf("%.*s.%.*s.%.*s", (int)seglen[0], seg[0], (int)seglen[1], seg[1],
                                (int)slen, seg[2]);
    out->signed_len = seglen[0] + 1 + seglen[1];
    *err = MG_JWT_OK;
    return 0;
}

enum mg_jwt_error mg_jwt_check_time(const struct mg_jwt *j, int64_t now)
{
    if (j->has_nbf && j->nbf - MG_JWT_CLOCK_SKEW_S > now)
        return MG_JWT_NOT_YET_VALID;
    if (j->has_exp && now - MG_JWT_CLOCK_SKEW_S > j->exp)
        return MG_JWT_EXPIRED;
    return MG_JWT_OK;
}

/* An audience as Envoy's CheckAudience compares it: without a leading
 * "http://" or "https://" and without one trailing '/'. */
static void aud_norm(const char *a, const char **p, size_t *n)
{
    size_t len = strlen(a), b = 0;
    if (len == 0) {
        *p = a, *n = 0;
        return;
    }
    if (!strncmp(a, "http://", 7))
        b = 7;
    else if (!strncmp(a, "https://", 8))
        b = 8;
    if (a[len - 1] == '/')
        len--;
    *p = a + b;
    *n = len > b ? len - b : 0;
}

bool mg_jwt_audience_allowed(const struct mg_jwt *j, const char *const *allowed, size_t n)
{
    if (n == 0)
        return true;            /* none configured: not checked */
    for (size_t i = 0; i < j->n_aud; i++) {
        const char *tp, *cp;
        size_t tn, cn;
        aud_norm(j->aud[i], &tp, &tn);
        for (size_t k = 0; k < n; k++) {
            aud_norm(allowed[k], &cp, &cn);
            if (tn == cn && !memcmp(tp, cp, tn))
                return true;
        }
    }
    return false;
}

enum mg_jwt_error mg_jwt_check_signature(const struct mg_jwks *ks, const struct mg_jwt *j)
{
    cjose_jws_t *jws = NULL;
    cjose_err cerr;
    size_t candidates = 0;
    bool ok = false;
    enum mg_jwt_error e = MG_JWT_VERIFICATION_FAIL;

    if (!ks)
        return MG_JWKS_FETCH_FAIL;
    if (!j->compact)
        return MG_JWT_VERIFICATION_FAIL;
    for (size_t i = 0; i < ks->n && !ok; i++) {
        const struct mg_jwk *k = &ks->keys[i];
        /* jwt_verify_lib: a kid on both sides must be equal; a key without
         * one is tried for any token, a token without one tries every key */
        if (j->kid && k->kid && strcmp(j->kid, k->kid))
            continue;
        if (k->alg && strcmp(k->alg, j->alg))
            continue;
        candidates++;
        /* A key of another type or curve than the alg names is a candidate
         * that never verifies (Envoy verifies by the key's type and may
         * accept; we do not: RFC 7518 ties each alg to one key type). */
        if (!mg_jwk_alg_fits(j->alg, k->kty, k->crv_bits))
            continue;
        if (k->kty == MG_KTY_OKP) {
            if (j->siglen != 64) {
                e = MG_JWT_ED25519_SIG_LENGTH;
                break;
            }
            ok = verify_ed25519(k, j->compact, j->signed_len, j->sig, j->siglen);
            continue;
        }
        if (k->kty == MG_KTY_EC && j->siglen != (size_t)ecdsa_sig_len(j->alg))
            continue;
        if (!jws && !(jws = cjose_jws_import(j->compact, strlen(j->compact), &cerr)))
            break;
        ok = cjose_jws_verify(jws, k->cj, &cerr);
    }
    if (jws)
        cjose_jws_release(jws);
    if (ok)
        return MG_JWT_OK;
    return candidates ? e : MG_JWKS_KID_ALG_MISMATCH;
}

int mg_jwt_verify(const struct mg_jwks *ks, const char *token, size_t len, int64_t now,
                  struct mg_jwt *out, enum mg_jwt_error *err)
{
    enum mg_jwt_error e;
    if (mg_jwt_parse(token, len, out, err) < 0)
        return -1;
    e = mg_jwt_check_time(out, now);
    if (e == MG_JWT_OK)
        e = mg_jwt_check_signature(ks, out);
    if (e == MG_JWT_OK) {
        *err = MG_JWT_OK;
        return 0;
    }
    /* keep the kid for the caller's refetch decision */
    char *kid = e == MG_JWKS_KID_ALG_MISMATCH ? out->kid : NULL;
    if (kid)
        out->kid = NULL;
    mg_jwt_clear(out);
    out->kid = kid;
    *err = e;
    return -1;
}
