/* test_jwt.c - JWKS parsing, strict JWT verification, verified-token cache.
 * Tokens are signed by tests/helpers/jwt_sign.c (OpenSSL, not cjose). */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "jwt/jwt.h"
#include "jwt_sign.h"
#include "tap.h"

static int64_t now;
static EVP_PKEY *rsa, *rsa_b, *ec256, *ec256_b, *ec384, *ec521, *ed, *rsa1024;
static const uint8_t secret[] = "0123456789abcdef0123456789abcdef";

static struct mg_jwks *ks_of(unsigned flags, int n, ...)
{
    const char *jwks[16];
    char err[256];
    va_list ap;
    va_start(ap, n);
    for (int i = 0; i < n; i++)
        jwks[i] = va_arg(ap, const char *);
    va_end(ap);
    char *doc = mg_ts_jwks(jwks, (size_t)n);
    struct mg_jwks *ks = mg_jwks_parse(doc, strlen(doc), flags, err, sizeof err);
    if (!ks)
        printf("# parse: %s\n", err);
    free(doc);
    return ks;
}

static char *claims(const char *extra)
{
    return mg_xasprintf("{\"iss\":\"https://issuer.example\",\"sub\":\"alice\",\"aud\":[\"a1\",\"a2\"],"
                        "\"azp\":\"web\",\"exp\":%lld%s%s}", (long long)now + 3600,
                        extra ? "," : "", extra ? extra : "");
}

static char *tok(EVP_PKEY *k, const char *alg, const char *kid, const char *extra)
{
    char *h = mg_ts_header(alg, kid), *p = claims(extra);
    char *t = mg_ts_sign(k, secret, sizeof secret - 1, alg, h, p);
    free(h);
    free(p);
    return t;
}

static enum mg_jwt_error check(const struct mg_jwks *ks, const char *t)
{
    struct mg_jwt j;
    enum mg_jwt_error e = MG_JWT_OK;
    int rc = mg_jwt_verify(ks, t, t ? strlen(t) : 0, now, &j, &e);
    if ((rc == 0) != (e == MG_JWT_OK))
        printf("# rc %d disagrees with error %d\n", rc, e);
    mg_jwt_clear(&j);
    return e;
}

static void test_algorithms(void)
{
    char *jr = mg_ts_jwk(rsa, "r", NULL), *je1 = mg_ts_jwk(ec256, "e1", NULL),
         *je3 = mg_ts_jwk(ec384, "e3", NULL), *je5 = mg_ts_jwk(ec521, "e5", NULL),
         *jd = mg_ts_jwk(ed, "d", NULL), *jo = mg_ts_jwk_oct(secret, sizeof secret - 1, "o");
    struct mg_jwks *ks = ks_of(MG_JWKS_ALLOW_OCT, 6, jr, je1, je3, je5, jd, jo);
    static const struct { const char *alg, *kid; } cases[] = {
        {"RS256", "r"}, {"RS384", "r"}, {"RS512", "r"}, {"PS256", "r"}, {"PS384", "r"},
        {"PS512", "r"}, {"ES256", "e1"}, {"ES384", "e3"}, {"ES512", "e5"}, {"EdDSA", "d"},
        {"HS256", "o"}, {"HS384", "o"}, {"HS512", "o"},
    };
    ok(ks && mg_jwks_count(ks) == 6, "JWKS with RSA, EC x3, OKP, oct parses (6 keys)");
    for (size_t i = 0; i < MG_ARRAY_LEN(cases); i++) {
        EVP_PKEY *k = cases[i].kid[0] == 'r' ? rsa : cases[i].kid[0] == 'd' ? ed
                    : !strcmp(cases[i].kid, "e1") ? ec256 : !strcmp(cases[i].kid, "e3") ? ec384
                    : !strcmp(cases[i].kid, "e5") ? ec521 : NULL;
        char *t = tok(k, cases[i].alg, cases[i].kid, NULL);
        struct mg_jwt j;
        enum mg_jwt_error e;
        int rc = mg_jwt_verify(ks, t, strlen(t), now, &j, &e);
        ok(rc == 0 && e == MG_JWT_OK, "%s token verifies", cases[i].alg);
        if (rc == 0 && i == 0) {
            const char *d1 = strchr(t, '.'), *d2 = strchr(d1 + 1, '.');
            is_str(j.iss, "https://issuer.example", "iss claim read");
            is_str(j.sub, "alice", "sub claim read");
            is_str(j.azp, "web", "azp claim read");
            ok(j.n_aud == 2 && !strcmp(j.aud[0], "a1") && !strcmp(j.aud[1], "a2"), "aud list read");
            ok(j.has_exp && j.exp == now + 3600, "exp read");
            ok(j.payload_b64 && strlen(j.payload_b64) == (size_t)(d2 - d1 - 1) &&
               !strncmp(j.payload_b64, d1 + 1, (size_t)(d2 - d1 - 1)), "raw payload segment kept");
            is_str(j.kid, "r", "kid kept");
        }
        mg_jwt_clear(&j);
        free(t);
    }
    /* No kid in the token: every key that fits the alg is tried. */
    char *t = tok(ec384, "ES384", NULL, NULL);
    is_int(check(ks, t), MG_JWT_OK, "token without kid verifies against the fitting key");
    free(t);
    mg_jwks_unref(ks);
    free(jr), free(je1), free(je3), free(je5), free(jd), free(jo);
}

static void test_key_fitness(void)
{
    char *je3 = mg_ts_jwk(ec384, "k", NULL), *jr = mg_ts_jwk(rsa, "k", NULL), *t;
    struct mg_jwks *ks3 = ks_of(0, 1, je3), *ksr = ks_of(MG_JWKS_ALLOW_OCT, 1, jr);
    char err[256];

    /* cjose would let ES256 verify with a P-384 key (cjose 0.6.2 checks no curve). */
    t = tok(ec384, "ES256", "k", NULL);
    ok(t != NULL, "ES256-labelled token signed with P-384 produced");
    is_int(check(ks3, t), MG_JWT_VERIFICATION_FAIL, "ES256 token with a P-384 key refused");
    free(t);

    /* Algorithm confusion: the RSA public key used as an HMAC secret. */
    {
        char *h = mg_ts_header("HS256", "k"), *p = claims(NULL);
        t = mg_ts_sign(NULL, (const uint8_t *)jr, strlen(jr), "HS256", h, p);
        is_int(check(ksr, t), MG_JWT_VERIFICATION_FAIL, "HS256 signed with the RSA JWK as secret refused");
        free(t);
        free(h);
        free(p);
    }
    /* alg none, with and without a signature part. */
    {
        char *h = mg_ts_header("none", "k"), *p = claims(NULL);
        t = mg_ts_sign(NULL, NULL, 0, "none", h, p);
        ok(check(ksr, t) != MG_JWT_OK, "alg none (empty signature) refused");
        char *t2 = mg_xasprintf("%sAAAA", t);
        is_int(check(ksr, t2), MG_JWT_HEADER_NOT_IMPLEMENTED_ALG, "alg none with a signature refused");
        free(t), free(t2), free(h), free(p);
    }
    /* RSA 1024 */
    {
        char *j1 = mg_ts_jwk(rsa1024, "small", NULL), *doc = mg_ts_jwks((const char *[]){j1}, 1);
        struct mg_jwks *k = mg_jwks_parse(doc, strlen(doc), 0, err, sizeof err);
        ok(!k && strstr(err, "2048"), "JWKS with only a 1024-bit RSA key refused (%s)", err);
        free(doc);
        doc = mg_ts_jwks((const char *[]){j1, jr}, 2);
        k = mg_jwks_parse(doc, strlen(doc), 0, err, sizeof err);
        ok(k && mg_jwks_count(k) == 1 && mg_jwks_n_warnings(k) == 1 &&
           strstr(mg_jwks_warning(k, 0), "2048"), "1024-bit key skipped with a warning, 2048 kept");
        t = tok(rsa1024, "RS256", "small", NULL);
        is_int(check(k, t), MG_JWKS_KID_ALG_MISMATCH, "token signed by the 1024-bit key refused");
        free(t);
        mg_jwks_unref(k);
        free(doc), free(j1);
    }
    /* JWK alg must equal the token alg. */
    {
        char *j = mg_ts_jwk(rsa, "k", "{\"alg\":\"RS384\"}");
        struct mg_jwks *k = ks_of(0, 1, j);
        t = tok(rsa, "RS256", "k", NULL);
        is_int(check(k, t), MG_JWKS_KID_ALG_MISMATCH, "JWK alg RS384 refuses an RS256 token");
        free(t);
        t = tok(rsa, "RS384", "k", NULL);
        is_int(check(k, t), MG_JWT_OK, "JWK alg RS384 accepts an RS384 token");
        free(t), free(j);
        mg_jwks_unref(k);
        j = mg_ts_jwk(rsa, "k", "{\"alg\":\"ES256\"}");
        char *doc = mg_ts_jwks((const char *[]){j}, 1);
        ok(!mg_jwks_parse(doc, strlen(doc), 0, err, sizeof err), "RSA JWK with alg ES256 refused");
        free(doc), free(j);
    }
    /* use=enc */
    {
        char *j = mg_ts_jwk(rsa, "k", "{\"use\":\"enc\"}"), *j2 = mg_ts_jwk(rsa_b, "k2", "{\"use\":\"sig\"}");
        char *doc = mg_ts_jwks((const char *[]){j, j2}, 2);
        struct mg_jwks *k = mg_jwks_parse(doc, strlen(doc), 0, err, sizeof err);
        ok(k && mg_jwks_count(k) == 1 && !mg_jwks_has_kid(k, "k") && mg_jwks_has_kid(k, "k2"),
           "use=enc key skipped, use=sig kept");
        t = tok(rsa, "RS256", "k", NULL);
        is_int(check(k, t), MG_JWKS_KID_ALG_MISMATCH, "token for the use=enc key refused");
        free(t), free(doc), free(j), free(j2);
        mg_jwks_unref(k);
    }
    /* Private members and oct outside inline jwks. */
    {
        char *j = mg_ts_jwk(ec256, "k", "{\"d\":\"AAAA\"}");
        char *doc = mg_ts_jwks((const char *[]){j}, 1);
        ok(!mg_jwks_parse(doc, strlen(doc), 0, err, sizeof err) && strstr(err, "private"),
           "EC JWK with private member d refused (%s)", err);
        free(doc), free(j);
        j = mg_ts_jwk_oct(secret, sizeof secret - 1, "o");
        doc = mg_ts_jwks((const char *[]){j}, 1);
        ok(!mg_jwks_parse(doc, strlen(doc), 0, err, sizeof err), "oct key refused for a remote JWKS");
        struct mg_jwks *k = mg_jwks_parse(doc, strlen(doc), MG_JWKS_ALLOW_OCT, err, sizeof err);
        ok(k != NULL, "oct key accepted for an inline JWKS");
        mg_jwks_unref(k);
        free(doc), free(j);
    }
    /* A kid on both sides must match; a key without kid is tried for a
     * token with one (jwt_verify_lib). */
    {
        char *j = mg_ts_jwk(ec256, NULL, NULL), *j2 = mg_ts_jwk(ec256, "mine", NULL);
        struct mg_jwks *k = ks_of(0, 1, j), *k2 = ks_of(0, 1, j2);
        t = tok(ec256, "ES256", "other", NULL);
        struct mg_jwt jw;
        enum mg_jwt_error e;
        is_int(check(k, t), MG_JWT_OK, "a key without kid verifies a token with a kid");
        ok(mg_jwt_verify(k2, t, strlen(t), now, &jw, &e) < 0 && e == MG_JWKS_KID_ALG_MISMATCH &&
           jw.kid && !strcmp(jw.kid, "other"), "unknown kid refused, kid reported for a refetch");
        mg_jwks_unref(k2);
        free(j2);
        mg_jwt_clear(&jw);
        free(t);
        t = tok(ec256, "ES256", NULL, NULL);
        is_int(check(k, t), MG_JWT_OK, "kid-less token verifies against the kid-less key");
        free(t), free(j);
        mg_jwks_unref(k);
    }
    /* Wrong key with the right kid: bad signature. */
    {
        t = tok(rsa_b, "RS256", "k", NULL);
        is_int(check(ksr, t), MG_JWT_VERIFICATION_FAIL, "token signed by another key: verification fails");
        free(t);
    }
    mg_jwks_unref(ks3);
    mg_jwks_unref(ksr);
    free(je3), free(jr);
}

static char *replace_part(const char *t, int part, const char *with)
{
    const char *d1 = strchr(t, '.'), *d2 = strchr(d1 + 1, '.');
    if (part == 0)
        return mg_xasprintf("%s%s", with, d1);
    if (part == 1)
        return mg_xasprintf("%.*s.%s%s", (int)(d1 - t), t, with, d2);
    return mg_xasprintf("%.*s.%s", (int)(d2 - t), t, with);
}

static void test_malformed_and_time(void)
{
    char *je = mg_ts_jwk(ec256, "k", NULL), *jd = mg_ts_jwk(ed, "d", NULL), *t, *b;
    struct mg_jwks *ks = ks_of(0, 2, je, jd);
    char *good = tok(ec256, "ES256", "k", NULL);
    const char *d2 = strrchr(good, '.');

    is_int(check(ks, good), MG_JWT_OK, "baseline token verifies");
    /* Flip one signature character (in the middle: always significant bits). */
    t = mg_xstrdup(good);
    t[(d2 - good) + 10] = t[(d2 - good) + 10] == 'A' ? 'B' : 'A';
    is_int(check(ks, t), MG_JWT_VERIFICATION_FAIL, "bad signature refused");
    free(t);
    /* Payload swapped: signature no longer covers it. */
    b = mg_ts_b64u("{\"iss\":\"evil\"}", 14);
    t = replace_part(good, 1, b);
    is_int(check(ks, t), MG_JWT_VERIFICATION_FAIL, "tampered payload refused");
    free(t), free(b);

    is_int(check(ks, "abc.def"), MG_JWT_BAD_FORMAT, "2 parts refused");
    t = mg_xasprintf("%s.AAAA", good);
    is_int(check(ks, t), MG_JWT_BAD_FORMAT, "4 parts refused");
    free(t);
    t = mg_xasprintf("%s=", good);
    is_int(check(ks, t), MG_JWT_SIGNATURE_BAD_BASE64, "padding in the signature refused");
    free(t);
    t = replace_part(good, 0, "eyJ!bGciOiJFUzI1NiJ9");
    is_int(check(ks, t), MG_JWT_HEADER_BAD_BASE64, "bad base64 header refused");
    free(t);
    b = mg_ts_b64u("{alg: ES256}", 12);
    t = replace_part(good, 0, b);
    is_int(check(ks, t), MG_JWT_HEADER_BAD_JSON, "header that is not JSON refused");
    free(t), free(b);
    b = mg_ts_b64u("{\"alg\":\"none\",\"alg\":\"ES256\"}", 28);
    t = replace_part(good, 0, b);
    is_int(check(ks, t), MG_JWT_HEADER_BAD_JSON, "header with a duplicate alg refused");
    free(t), free(b);
    b = mg_ts_b64u("{\"kid\":\"k\"}", 11);
    t = replace_part(good, 0, b);
    is_int(check(ks, t), MG_JWT_HEADER_BAD_ALG, "header without alg refused");
    free(t), free(b);
    t = mg_ts_sign(ec256, NULL, 0, "ES256", "{\"alg\":\"ES256\",\"kid\":\"k\"}", "not json");
    is_int(check(ks, t), MG_JWT_PAYLOAD_BAD_JSON, "signed payload that is not JSON refused");
    free(t);
    t = mg_ts_sign(ec256, NULL, 0, "ES256", "{\"alg\":\"ES256\",\"kid\":\"k\"}", "{\"exp\":\"soon\"}");
    is_int(check(ks, t), MG_JWT_EXP_NOT_INTEGER, "string exp refused");
    free(t);
    t = mg_ts_sign(ec256, NULL, 0, "ES256", "{\"alg\":\"ES256\",\"kid\":7}", "{}");
    is_int(check(ks, t), MG_JWT_HEADER_BAD_KID, "numeric kid refused");
    free(t);
    is_int(check(ks, "eyJhbGciOiJFUzI1NiJ9.e30.AAAA"), MG_JWT_VERIFICATION_FAIL,
           "garbage ES256 signature (CVE-2019-12995) refused, no crash");
    b = mg_ts_sign(ed, NULL, 0, "EdDSA", "{\"alg\":\"EdDSA\",\"kid\":\"d\"}", "{}");
    is_int(check(ks, b), MG_JWT_OK, "Ed25519 token without claims verifies");
    t = replace_part(b, 2, "AAAA");
    is_int(check(ks, t), MG_JWT_ED25519_SIG_LENGTH, "short Ed25519 signature refused");
    free(t), free(b);
    {
        size_t n = MG_JWT_MAX_TOKEN + 10;
        char *huge = mg_xmalloc(n + 1);
        memset(huge, 'A', n);
        huge[10] = '.';
        huge[20] = '.';
        huge[n] = 0;
        is_int(check(ks, huge), MG_JWT_BAD_FORMAT, "token over 64 KiB refused");
        free(huge);
    }
    is_int(check(ks, ""), MG_JWT_BAD_FORMAT, "empty token: not three sections (Envoy's answer)");
    is_int(check(NULL, good), MG_JWKS_FETCH_FAIL, "no key set yet: Jwks remote fetch is failed");
    is_str(mg_jwt_error_str(MG_JWKS_FETCH_FAIL), "Jwks remote fetch is failed", "Envoy's fetch failure text");
    is_str(mg_jwt_error_str(MG_JWT_VERIFICATION_FAIL), "Jwt verification fails", "Envoy's verification text");

    /* Time: 60 s skew either way. */
    struct { const char *claim; enum mg_jwt_error want; const char *what; } tc[] = {
        {"exp", MG_JWT_EXPIRED, "exp 61 s ago: expired"},
        {"exp", MG_JWT_OK, "exp 30 s ago: inside the skew"},
        {"nbf", MG_JWT_NOT_YET_VALID, "nbf 61 s ahead: not yet valid"},
        {"nbf", MG_JWT_OK, "nbf 30 s ahead: inside the skew"},
        {"iat", MG_JWT_OK, "iat far ahead is ignored"},
    };
    long long when[] = {now - 61, now - 30, now + 61, now + 30, now + 100000};
    for (size_t i = 0; i < MG_ARRAY_LEN(tc); i++) {
        char *p = mg_xasprintf("{\"%s\":%lld}", tc[i].claim, when[i]);
        t = mg_ts_sign(ec256, NULL, 0, "ES256", "{\"alg\":\"ES256\",\"kid\":\"k\"}", p);
        is_int(check(ks, t), tc[i].want, "%s", tc[i].what);
        free(t), free(p);
    }
    free(good), free(je), free(jd);
    mg_jwks_unref(ks);
}

static void test_jwks_documents(void)
{
    char err[256];
    const char *bad[] = {"not json", "[]", "{\"keys\":{}}", "{\"nokeys\":[]}", "{\"keys\":[]}",
                         "{\"keys\":[{\"kty\":\"RSA\",\"n\":\"AQAB\",\"e\":\"AQAB\"}]}",
                         "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"AAAA\",\"y\":\"AAAA\"}]}",
                         "{\"keys\":[{\"kty\":\"XYZ\"}]}"};
    for (size_t i = 0; i < MG_ARRAY_LEN(bad); i++)
        ok(!mg_jwks_parse(bad[i], strlen(bad[i]), 0, err, sizeof err), "bad JWKS %zu refused (%s)", i, err);
    /* An EC point that is not on the curve. */
    {
        char *j = mg_ts_jwk(ec256, "k", NULL), *y = strstr(j, "\"y\":\"") + 5;
        y[3] = y[3] == 'A' ? 'B' : 'A';
        char *doc = mg_ts_jwks((const char *[]){j}, 1);
        ok(!mg_jwks_parse(doc, strlen(doc), 0, err, sizeof err), "EC point off the curve refused");
        free(doc), free(j);
    }
    /* 65 keys is over the limit. */
    {
        char *j = mg_ts_jwk(ec256, NULL, NULL);
        const char *many[65];
        for (int i = 0; i < 65; i++)
            many[i] = j;
        char *doc = mg_ts_jwks(many, 65);
        ok(!mg_jwks_parse(doc, strlen(doc), 0, err, sizeof err), "65 keys refused");
        free(doc);
        doc = mg_ts_jwks(many, 64);
        struct mg_jwks *k = mg_jwks_parse(doc, strlen(doc), 0, err, sizeof err);
        ok(k && mg_jwks_count(k) == 64, "64 keys accepted");
        mg_jwks_unref(k);
        free(doc), free(j);
    }
    {
        size_t n = MG_JWKS_MAX_JSON + 1;
        char *big = mg_xmalloc(n);
        memset(big, ' ', n);
        ok(!mg_jwks_parse(big, n, 0, err, sizeof err), "JWKS over 1 MiB refused");
        free(big);
    }
    {
        char *j = mg_ts_jwk(rsa, "r", NULL);
        struct mg_jwks *a = ks_of(0, 1, j), *b = ks_of(0, 1, j);
        ok(a && b && mg_jwks_generation(a) && mg_jwks_generation(a) != mg_jwks_generation(b),
           "each parse gets its own generation");
        ok(mg_jwks_ref(a) == a, "ref returns the key set");
        mg_jwks_unref(a);
        mg_jwks_unref(a);
        mg_jwks_unref(b);
        free(j);
    }
}

static void test_cache(void)
{
    char *je = mg_ts_jwk(ec256, "k", NULL);
    struct mg_jwks *ks = ks_of(0, 1, je), *ks2 = ks_of(0, 1, je);
    struct mg_jwt_cache *c = mg_jwt_cache_new(16);
    char *t = tok(ec256, "ES256", "k", NULL);
    struct mg_jwt j;
    enum mg_jwt_error e;
    const struct mg_jwt *hit;

    ok(!mg_jwt_cache_lookup(c, ks, t, strlen(t), now), "empty cache misses");
    ok(mg_jwt_verify(ks, t, strlen(t), now, &j, &e) == 0, "token verified for the cache");
    mg_jwt_cache_insert(c, ks, t, strlen(t), &j, now);
    mg_jwt_clear(&j);
    hit = mg_jwt_cache_lookup(c, ks, t, strlen(t), now + 10);
    ok(hit && hit->sub && !strcmp(hit->sub, "alice") && hit->n_aud == 2 &&
       !strcmp(hit->aud[1], "a2"), "cache hit returns the verified claims");
    ok(!mg_jwt_cache_lookup(c, ks, t, strlen(t) - 1, now), "a different token (prefix) misses");
    ok(!mg_jwt_cache_lookup(c, ks, t, strlen(t), now + 3600), "entry dead at the token's exp");
    is_int(mg_jwt_cache_count(c), 0, "expired entry dropped");
    mg_jwt_verify(ks, t, strlen(t), now, &j, &e);
    mg_jwt_cache_insert(c, ks, t, strlen(t), &j, now);
    mg_jwt_clear(&j);
    ok(!mg_jwt_cache_lookup(c, ks2, t, strlen(t), now), "new key set generation misses");
    is_int(mg_jwt_cache_count(c), 0, "stale-generation entry dropped");
    ok(!mg_jwt_cache_lookup(c, ks, t, strlen(t), now), "and stays dropped for the old set");
    /* Without exp: bounded by the max age. */
    {
        char *t2 = mg_ts_sign(ec256, NULL, 0, "ES256", "{\"alg\":\"ES256\",\"kid\":\"k\"}", "{\"sub\":\"x\"}");
        mg_jwt_verify(ks, t2, strlen(t2), now, &j, &e);
        mg_jwt_cache_insert(c, ks, t2, strlen(t2), &j, now);
        mg_jwt_clear(&j);
        ok(mg_jwt_cache_lookup(c, ks, t2, strlen(t2), now + MG_JWT_CACHE_MAX_AGE_S - 1) != NULL,
           "exp-less token cached");
        ok(!mg_jwt_cache_lookup(c, ks, t2, strlen(t2), now + MG_JWT_CACHE_MAX_AGE_S),
           "exp-less token dropped after the max age");
        free(t2);
    }
    /* Bounded: many distinct tokens never exceed the capacity. */
    for (int i = 0; i < 100; i++) {
        char extra[32];
        snprintf(extra, sizeof extra, "\"n\":%d", i);
        char *ti = tok(ec256, "ES256", "k", extra);
        if (mg_jwt_verify(ks, ti, strlen(ti), now, &j, &e) == 0)
            mg_jwt_cache_insert(c, ks, ti, strlen(ti), &j, now);
        mg_jwt_clear(&j);
        free(ti);
    }
    ok(mg_jwt_cache_count(c) <= 16 && mg_jwt_cache_count(c) >= 8, "cache stays bounded (%zu of 16)",
       mg_jwt_cache_count(c));
    mg_jwt_cache_free(c);
    mg_jwks_unref(ks);
    mg_jwks_unref(ks2);
    free(t), free(je);
}

/* Every file in data/jwt/bad-jwks is a JWKS with no usable key. */
static void test_bad_jwks_files(void)
{
    char *dir = mg_xasprintf("%s/bad-jwks", MG_JWT_DATA);
    DIR *d = opendir(dir);
    struct dirent *de;
    int n = 0;
    ok(d != NULL, "data directory %s", dir);
    while (d && (de = readdir(d))) {
        char *path, *buf, err[256];
        size_t len;
        struct mg_jwks *ks;
        if (de->d_name[0] == '.')
            continue;
        path = mg_xasprintf("%s/%s", dir, de->d_name);
        buf = mg_read_file(path, MG_JWKS_MAX_JSON, &len);
        ks = buf ? mg_jwks_parse(buf, len, 0, err, sizeof err) : NULL;
        ok(buf && !ks, "%s refused (%s)", de->d_name, buf ? err : "unreadable");
        mg_jwks_unref(ks);
        free(buf);
        free(path);
        n++;
    }
    ok(n >= 10, "%d bad JWKS files checked", n);
    if (d)
        closedir(d);
    free(dir);
}

int main(void)
{
    now = (int64_t)time(NULL);
    rsa = mg_ts_genkey("rsa");
    rsa_b = mg_ts_genkey("rsa");
    rsa1024 = mg_ts_genkey("rsa1024");
    ec256 = mg_ts_genkey("ec256");
    ec256_b = mg_ts_genkey("ec256");
    ec384 = mg_ts_genkey("ec384");
    ec521 = mg_ts_genkey("ec521");
    ed = mg_ts_genkey("ed25519");
    ok(rsa && rsa_b && rsa1024 && ec256 && ec384 && ec521 && ed, "test keys generated");
    test_algorithms();
    test_key_fitness();
    test_malformed_and_time();
    test_jwks_documents();
    test_cache();
    test_bad_jwks_files();
    EVP_PKEY *all[] = {rsa, rsa_b, rsa1024, ec256, ec256_b, ec384, ec521, ed};
    for (size_t i = 0; i < MG_ARRAY_LEN(all); i++)
        EVP_PKEY_free(all[i]);
    (void)tap_plan;       /* the count is dynamic; tap_done prints the plan */
    tap_diag("done");
    return tap_done();
}
