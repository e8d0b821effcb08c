/* jwt.h - pure JWT verification: JWKS key sets, compact JWS verification
 * and a per-worker cache of verified tokens. No I/O, no libevent, no globals
 * other than a generation counter.
 *
 * Envoy's jwt_authn (jwt_verify_lib) decides in this order, and so do we:
 * parse the token (header, then the claims' types, then the signature's
 * encoding), the issuer, the time (60 s of skew), the audiences, and only
 * then the key lookup and the signature. A parsed but unverified token is
 * only ever used to choose the error; nothing reaches a caller as
 * authenticated before mg_jwt_check_signature() said so.
 *
 * Stricter than Envoy (cjose 0.6.2 alone is looser still: an ES256 token
 * signed with a P-384 key verifies, 1024-bit RSA keys pass): the signing
 * algorithm must fit the key's kty/crv, RSA keys must be >= 2048 bits, a
 * JWK `alg` (when present) must equal the token's alg, a JWK `use` (when
 * present) must be "sig", Ed25519 is verified with OpenSSL (cjose 0.6.2
 * cannot import OKP keys). */
#ifndef MG_JWT_H
#define MG_JWT_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include "base/base.h"

#define MG_JWKS_MAX_JSON (1024 * 1024)  /* bytes of JWKS JSON accepted */
#define MG_JWKS_MAX_KEYS 64             /* keys per JWKS (more: error) */
#define MG_JWT_MAX_TOKEN (64 * 1024)    /* bytes of one compact token */
#define MG_JWT_CLOCK_SKEW_S 60          /* Envoy's default clock skew */

/* Error classes; mg_jwt_error_str gives Envoy's jwt_authn status text. */
enum mg_jwt_error {
    MG_JWT_OK = 0,
    MG_JWT_MISSING,
    MG_JWT_NOT_YET_VALID,
    MG_JWT_EXPIRED,
    MG_JWT_BAD_FORMAT,              /* not 3 base64url parts / too large */
    MG_JWT_HEADER_BAD_BASE64,
    MG_JWT_HEADER_BAD_JSON,
    MG_JWT_HEADER_BAD_ALG,          /* alg missing or not a string */
    MG_JWT_HEADER_NOT_IMPLEMENTED_ALG,  /* includes "none" */
    MG_JWT_HEADER_BAD_KID,
    MG_JWT_PAYLOAD_BAD_BASE64,
    MG_JWT_PAYLOAD_BAD_JSON,
    MG_JWT_ISS_NOT_STRING,
    MG_JWT_SUB_NOT_STRING,
    MG_JWT_NBF_NOT_INTEGER,
    MG_JWT_EXP_NOT_INTEGER,
    MG_JWT_IAT_NOT_INTEGER,
    MG_JWT_IAT_OUT_OF_RANGE,        /* negative or >= 2^64 */
    MG_JWT_NBF_OUT_OF_RANGE,
    MG_JWT_EXP_OUT_OF_RANGE,
    MG_JWT_JTI_NOT_STRING,
    MG_JWT_AUD_NOT_STRING,
    MG_JWT_SIGNATURE_BAD_BASE64,
    MG_JWT_ED25519_SIG_LENGTH,
    MG_JWT_UNKNOWN_ISSUER,
    MG_JWT_AUDIENCE_NOT_ALLOWED,
    MG_JWT_VERIFICATION_FAIL,
    MG_JWT_MULTIPLE_TOKENS,
    MG_JWKS_NO_VALID_KEYS,
    MG_JWKS_KID_ALG_MISMATCH,
    MG_JWKS_FETCH_FAIL,
};
/* Envoy's message for an error (a static string, never NULL). */
const char *mg_jwt_error_str(enum mg_jwt_error e);

/* ---- key sets ---- */

/* Parse flags. */
#define MG_JWKS_ALLOW_OCT 1u    /* accept kty "oct" (HS*): only for inline `jwks` */

struct mg_jwks;                 /* immutable after parse, refcounted, thread-safe to share */

/* Parse a JWKS document ({"keys":[...]}, at most MG_JWKS_MAX_JSON bytes and
 * MG_JWKS_MAX_KEYS keys), or the map kid -> PEM X.509 certificate that
 * Google's service-account key URLs serve ({"KID": "-----BEGIN
 * CERTIFICATE-----\n...\n-----END CERTIFICATE-----\n", ...}: RSA keys
 * named by the map's keys, as jwt_verify_lib reads it). An EC JWK without
 * `crv` takes the curve its `alg` names, or P-256 without either (a point off
 * that curve is refused); EC coordinates shorter than the curve size are
 * read as big-endian numbers. Keys that are invalid, of an unsupported type,
 * carry private members (d, p, q, ...), have use != "sig", RSA < 2048 bits or
 * an exponent other than 3 and 65537, a JWK alg that does not fit the key's
 * type or curve, or oct without MG_JWKS_ALLOW_OCT are skipped; each skip leaves a reason in
 * mg_jwks_warning(). Returns a key set with refcount 1, or NULL with a
 * message in err (NUL terminated, truncated to errlen) when the document is
 * malformed or no key is usable. */
struct mg_jwks *mg_jwks_parse(const char *json, size_t len, unsigned flags,
                              char *err, size_t errlen);
/* Take / drop a reference (atomic; NULL is ignored). unref frees at zero. */
struct mg_jwks *mg_jwks_ref(struct mg_jwks *ks);
void mg_jwks_unref(struct mg_jwks *ks);
/* Number of usable keys. */
size_t mg_jwks_count(const struct mg_jwks *ks);
/* Process-unique id of this key set (never 0); a new parse gets a new one.
 * The verified-token cache is keyed by it. */
uint64_t mg_jwks_generation(const struct mg_jwks *ks);
/* Skip reasons collected at parse time (i < n), borrowed. */
size_t mg_jwks_n_warnings(const struct mg_jwks *ks);
const char *mg_jwks_warning(const struct mg_jwks *ks, size_t i);
/* Is there a key with this kid (the refetch-on-unknown-kid test)? */
bool mg_jwks_has_kid(const struct mg_jwks *ks, const char *kid);

/* ---- verification ---- */

/* A parsed token (verified once mg_jwt_check_signature() returned OK).
 * Every pointer except payload_b64, aud, kid and the signing fields points
 * into `payload` and lives as long as it. */
struct mg_jwt {
    json_t *payload;            /* the claims object (one reference owned) */
    const char *iss, *sub, *azp, *jti;  /* NULL when absent */
    const char **aud;           /* audiences (string or list), owned array */
    size_t n_aud;
    bool has_exp, has_nbf;      /* exp 0 is no expiry (has_exp false), as in Envoy */
    int64_t exp, nbf;           /* NumericDate, fraction dropped, capped at INT64_MAX */
    char *payload_b64;          /* the raw payload segment, owned */
    char alg[8];                /* the header alg, e.g. "RS256" */
    char *kid;                  /* header kid or NULL (an empty kid is none), owned */
    /* what the signature check needs; not kept by mg_jwt_copy */
    char *compact;              /* "header.payload.signature" without empty sections */
    size_t signed_len;          /* bytes of `compact` that are signed ("header.payload") */
    uint8_t *sig;
    size_t siglen;
};
/* Release everything a struct mg_jwt holds and zero it (safe on a zeroed one). */
void mg_jwt_clear(struct mg_jwt *j);
/* Make dst an independent holder of src's token (payload reference taken). */
void mg_jwt_copy(struct mg_jwt *dst, const struct mg_jwt *src);

/* Parse the compact JWS token[0..len) as jwt_verify_lib does: split on '.'
 * with empty sections dropped (there must be three), base64url with or
 * without '=' padding; header alg (a supported one) and kid types; payload
 * JSON and the types of iss, sub, iat, nbf, exp (numbers >= 0 and < 2^64,
 * fractions allowed), jti, aud; the signature's encoding. Nothing is
 * verified. Returns 0 and fills *out (clear it with mg_jwt_clear), or -1
 * with *err set and *out zeroed. */
int mg_jwt_parse(const char *token, size_t len, struct mg_jwt *out, enum mg_jwt_error *err);
/* nbf and exp against `now` with MG_JWT_CLOCK_SKEW_S: MG_JWT_OK,
 * MG_JWT_NOT_YET_VALID or MG_JWT_EXPIRED. */
enum mg_jwt_error mg_jwt_check_time(const struct mg_jwt *j, int64_t now);
/* Is one of the token's audiences in allowed[0..n) (none configured: yes)?
 * Both sides are compared without a leading "http://" or "https://" and
 * without one trailing '/', as Envoy's CheckAudience does. */
bool mg_jwt_audience_allowed(const struct mg_jwt *j, const char *const *allowed, size_t n);
/* The signature of a parsed token against ks: MG_JWT_OK,
 * MG_JWKS_KID_ALG_MISMATCH (no key has the token's kid, or a JWK alg other
 * than the token's), MG_JWT_VERIFICATION_FAIL, MG_JWT_ED25519_SIG_LENGTH,
 * or MG_JWKS_FETCH_FAIL when ks is NULL. A key without kid is tried for a
 * token with one; a key whose type or curve cannot make the token's alg is
 * tried and never verifies. */
enum mg_jwt_error mg_jwt_check_signature(const struct mg_jwks *ks, const struct mg_jwt *j);

/* Parse, time and signature in that order (no issuer or audience): the
 * compact JWS token[0..len) against ks at wall time `now`
 * (seconds). On success returns 0 and fills *out (caller clears it with
 * mg_jwt_clear). On failure returns -1, sets *err, and leaves *out zeroed;
 * when the failure is MG_JWKS_KID_ALG_MISMATCH and the token named a kid,
 * out->kid is still set (so the caller can ask for a refetch) and must be
 * cleared. ks NULL gives MG_JWKS_FETCH_FAIL. */
int mg_jwt_verify(const struct mg_jwks *ks, const char *token, size_t len, int64_t now,
                  struct mg_jwt *out, enum mg_jwt_error *err);

/* ---- verified-token cache (one per worker thread; not thread-safe) ---- */

#define MG_JWT_CACHE_DEFAULT 4096
#define MG_JWT_CACHE_MAX_TOKEN 8192     /* larger tokens are not cached */
#define MG_JWT_CACHE_MAX_AGE_S 300      /* tokens without exp */

struct mg_jwt_cache;
/* A cache of `entries` slots (0 = MG_JWT_CACHE_DEFAULT, capped at 1<<20). */
struct mg_jwt_cache *mg_jwt_cache_new(size_t entries);
void mg_jwt_cache_free(struct mg_jwt_cache *c);
/* A token verified earlier against this very key set (same generation), not
 * past its exp (nor MG_JWT_CACHE_MAX_AGE_S old) at `now`; NULL otherwise.
 * The result is borrowed until the next call on this cache. */
const struct mg_jwt *mg_jwt_cache_lookup(struct mg_jwt_cache *c, const struct mg_jwks *ks,
                                         const char *token, size_t len, int64_t now);
/* Remember a verified token (copies it; replaces the oldest entry of its
 * probe window when full). Tokens past exp or over MG_JWT_CACHE_MAX_TOKEN
 * are ignored. */
void mg_jwt_cache_insert(struct mg_jwt_cache *c, const struct mg_jwks *ks,
                         const char *token, size_t len, const struct mg_jwt *jwt, int64_t now);
/* Entries currently held (tests, stats). */
size_t mg_jwt_cache_count(const struct mg_jwt_cache *c);

#endif
