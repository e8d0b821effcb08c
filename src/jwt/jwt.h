/* jwt.h - pure JWT verification: JWKS key sets, compact JWS verification
 * and a per-worker cache of verified tokens. No I/O, no libevent, no globals
 * other than a generation counter.
 *
 * Strictness (cjose 0.6.2 alone is loose: an ES256 token signed with a P-384
 * key verifies, 1024-bit RSA keys pass, the payload is readable unverified): the signing algorithm
 * must fit the key's kty/crv, RSA keys must be >= 2048 bits, a JWK `alg`
 * (when present) must equal the token's alg, a JWK `use` (when present) must
 * be "sig", Ed25519 is verified with OpenSSL (cjose 0.6.2 cannot import OKP keys), and
 * the claims are parsed only after the signature verified. */
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
 * MG_JWKS_MAX_KEYS keys). Keys that are invalid, of an unsupported type, carry
 * private members (d, p, q, ...), have use != "sig", RSA < 2048 bits, or oct
 * without MG_JWKS_ALLOW_OCT are skipped; each skip leaves a reason in
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

/* A verified token. Every pointer except payload_b64 and audiences.v points
 * into `payload` and lives as long as it. */
struct mg_jwt {
    json_t *payload;            /* the claims object (one reference owned) */
    const char *iss, *sub, *azp;    /* NULL when absent */
    const char **aud;           /* audiences (string or list), owned array */
    size_t n_aud;
    bool has_exp, has_nbf;
    int64_t exp, nbf;
    char *payload_b64;          /* the raw payload segment, owned */
    char alg[8];                /* the header alg, e.g. "RS256" */
    char *kid;                  /* header kid or NULL, owned */
};
/* Release everything a struct mg_jwt holds and zero it (safe on a zeroed one). */
void mg_jwt_clear(struct mg_jwt *j);
/* Make dst an independent holder of src's token (payload reference taken). */
void mg_jwt_copy(struct mg_jwt *dst, const struct mg_jwt *src);

/* Verify the compact JWS token[0..len) against ks at wall time `now`
 * (seconds). On success returns 0 and fills *out (caller clears it with
 * mg_jwt_clear). On failure returns -1, sets *err, and leaves *out zeroed;
 * when the failure is MG_JWKS_KID_ALG_MISMATCH and the token named a kid,
 * out->kid is still set (so the caller can ask for a refetch) and must be
 * cleared. ks NULL gives MG_JWKS_FETCH_FAIL. Never reads claims from an
 * unverified token. */
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
