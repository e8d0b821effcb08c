/* reqauthn.h - RequestAuthentication per request (pure: no I/O, no libevent).
 *
 * Compile once per configuration snapshot: the RequestAuthentication
 * resources that apply to this workload (root namespace = mesh-wide, the
 * Proxy's namespace, selector subset of the Proxy labels, or targetRefs to
 * the Gateway) become one rule list sorted by issuer (Istio's order).
 *
 * Per request, the requirement is Istio's OR(P1..Pn, AND_i(Pi OR missing)):
 *   - no token in any rule's locations: pass, no principal;
 *   - a token that one rule fully validates: pass with that rule's principal
 *     (a token invalid for issuer B but valid for A passes), provided every
 *     other token any rule found verifies too (a forged token beside a
 *     valid one is never handed to the upstream);
 *   - otherwise 401 with Envoy's message (or 403 for an audience mismatch).
 * Tokens are found as Envoy's extractor finds them (the header prefix
 * anywhere in the value, query parameters percent-decoded; reqauthn.c), and
 * on success every place a token came from (header, query parameter,
 * cookie) is removed unless the accepting rule has forwardOriginalToken.
 * A CORS preflight (OPTIONS with Origin and Access-Control-Request-Method)
 * skips JWT entirely. Key sets come from the caller (struct mg_ra_keys), so
 * this module never fetches anything. */
#ifndef MG_REQAUTHN_H
#define MG_REQAUTHN_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "config/config.h"
#include "base/diag.h"
#include "jwt/jwt.h"
#include "policy/attrs.h"       /* struct mg_header, struct mg_attrs (types only) */

struct mg_reqauthn;             /* compiled rules: immutable, shared read-only */

/* Compile the RequestAuthentication resources of `c` that apply to its
 * Proxy. Inline `jwks` is parsed here (oct keys allowed); a bad inline JWKS
 * is an error in `d` (that rule then rejects every token with "Jwks doesn't
 * have any valid public key"), skipped keys are warnings. The result
 * borrows strings from `c`, so it must not outlive it (the snapshot owns
 * both). Never returns NULL; free with mg_reqauthn_free. */
struct mg_reqauthn *mg_reqauthn_compile(const struct mg_config *c, struct mg_diags *d);
void mg_reqauthn_free(struct mg_reqauthn *ra);

/* The compiled rules, for the JWKS store (register each remote URI) and for
 * the data plane (strip client-sent output headers at the edge). */
size_t mg_reqauthn_n_rules(const struct mg_reqauthn *ra);
const char *mg_reqauthn_rule_issuer(const struct mg_reqauthn *ra, size_t i);
/* The key set location of rule i: NULL for an inline jwks. *discovery is
 * set when the URI is an OIDC discovery document
 * (<issuer>/.well-known/openid-configuration) rather than a JWKS. */
const char *mg_reqauthn_rule_uri(const struct mg_reqauthn *ra, size_t i, bool *discovery,
                                 int64_t *timeout_ms);
/* Header names rule i may write (outputPayloadToHeader, outputClaimToHeaders),
 * lower-case; *n is set to the count. Borrowed. */
const char *const *mg_reqauthn_rule_output_headers(const struct mg_reqauthn *ra, size_t i,
                                                   size_t *n);

/* ---- the request, as the data plane sees it (all borrowed) ---- */

struct mg_ra_request {
    const char *method;         /* NUL terminated, e.g. "GET" */
    const char *scheme;         /* "http" / "https" (for the realm) */
    const char *authority;      /* host[:port] (for the realm) */
    const char *path;           /* path and optional "?query" */
    size_t path_len;
    /* The same array the policy attributes use: lower-case names, OWS-trimmed
     * values, a repeated header appears once per value. */
    const struct mg_header *headers;
    size_t n_headers;
};

/* How key sets are found (the JWKS store provides one for remote URIs). */
struct mg_ra_keys {
    void *ctx;
    /* A new reference to the current key set of uri, or NULL if none yet. */
    struct mg_jwks *(*get)(void *ctx, const char *uri);
    /* A token named a kid the set lacks: ask for an early refetch. May be NULL. */
    void (*kid_miss)(void *ctx, const char *uri);
};

/* ---- the outcome ---- */

enum mg_ra_status {
    MG_RA_PASS = 0,             /* no token (or CORS preflight): no principal */
    MG_RA_PASS_PRINCIPAL,       /* a rule validated the token */
    MG_RA_DENY_401,
    MG_RA_DENY_403,
};

enum mg_ra_edit_op { MG_RA_REMOVE_HEADER, MG_RA_SET_HEADER };
struct mg_ra_edit {             /* applied in order, before the request goes upstream */
    enum mg_ra_edit_op op;
    const char *name;           /* lower-case, borrowed from the compiled rules */
    char *value;                /* SET only, owned; never contains CR, LF or NUL */
};

struct mg_ra_result {
    enum mg_ra_status status;
    bool cors_bypass;           /* JWT skipped for a CORS preflight */
    int http_status;            /* 0, 401 or 403 */
    enum mg_jwt_error error;    /* why it was denied */
    const char *body;           /* mg_jwt_error_str(error) when denied */
    char *www_authenticate;     /* 401: Bearer realm="<url>", error="invalid_token" (owned) */
    /* PASS_PRINCIPAL: */
    char *principal;            /* iss "/" sub (owned) */
    struct mg_jwt jwt;          /* iss, sub, aud, azp, payload: the policy's
                                 * request.auth attributes (owned) */
    const char *issuer;         /* the rule's issuer (borrowed) */
    /* The rule's spaceDelimitedClaims besides "scope" and "permission"
     * (which are always split), as the policy attributes expect. Borrowed. */
    const char *const *space_delimited_claims;
    size_t n_space_delimited_claims;
    struct mg_ra_edit *edits;
    size_t n_edits;
    char *new_path;             /* token query parameter removed: the new path?query, or NULL */
};

/* Authenticate one request. `cache` is the worker's verified-token cache
 * (may be NULL); `now` is wall-clock seconds. Fills *out; release it with
 * mg_ra_result_free. Never fails (allocation failure aborts). */
void mg_reqauthn_eval(const struct mg_reqauthn *ra, const struct mg_ra_request *req,
                      const struct mg_ra_keys *keys, struct mg_jwt_cache *cache, int64_t now,
                      struct mg_ra_result *out);
void mg_ra_result_free(struct mg_ra_result *r);

/* Copy the request.auth attributes of a PASS_PRINCIPAL result into a
 * (req_iss, req_sub, audiences, presenter, claims, space_delimited_claims);
 * they borrow from r. Any other status clears those fields. */
void mg_reqauthn_attrs(const struct mg_ra_result *r, struct mg_attrs *a);

#endif
