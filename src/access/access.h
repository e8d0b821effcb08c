/* access/access.h - the access phase (step 4) and request authentication:
 * compiled RequestAuthentication rules, token verification, the
 * authentication step shared with the explainer, the policy attributes and
 * the decision. */
#ifndef MG_ACCESS_ACCESS_H
#define MG_ACCESS_ACCESS_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "config/config.h"
#include "base/base.h"
#include "jwt/jwt.h"
#include "policy/policy.h"
#include "geoip/geoip.h"

/* RequestAuthentication per request (pure: no I/O, no libevent).
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

/* the access phase of the request path (step 4):
 * peer identity, request authentication and authorization (CUSTOM through
 * ext_authz, DENY, ALLOW, AUDIT, dry-run), between routing and the route
 * action.
 *
 * mg_access_build() compiles, once per snapshot on the main thread, what
 * the phase needs: the policy set for the Proxy workload and one upstream
 * cluster per HTTP ext_authz provider. Workers only read it. Per request
 * the phase fills a struct mg_attrs from the request (borrowing the
 * request's strings; the header array lives in the request arena), asks
 * mg_authz_decide(), and either continues, answers (403 "RBAC: access
 * denied"), or starts an asynchronous ext_authz check and resumes the
 * request through mg_request_resume() when it completes.
 *
 * Gateway mode: PeerAuthentication does not apply to Gateway servers (Istio
 * applies it to sidecar inbound listeners only); the servers' TLS modes
 * decide mTLS. The effective mode per port is still computed and shown in
 * /config_dump (mg_access_dump) for operators. */
struct mg_snapshot;
struct mg_request;
struct mg_policy_set;
struct mg_config;
struct mg_ra_result;

/* The compiled per-snapshot state (immutable once built). */
struct mg_access;

/* Compile for snapshot `s` (its cfg, n_workers and ports must be set).
 * Policy compile warnings and unusable ext_authz providers are added to d
 * as warnings (never errors: a CUSTOM rule whose provider is unusable fails
 * closed at run time). Never returns NULL; free with mg_access_free (which
 * accepts NULL). */
struct mg_access *mg_access_build(const struct mg_snapshot *s, struct mg_diags *d);
void mg_access_free(struct mg_access *a);

/* Main thread, before the snapshot is posted to the workers: look the
 * remote key sets of the snapshot's rules (jwksUri, OIDC discovery) up
 * through `keys` from now on, and describe them in /config_dump with
 * dump(dump_ctx, out) (control/ wires the process JWKS store in). Without
 * keys, tokens of rules with a remote key set get 401 "Jwks remote fetch is
 * failed". NULL a is ignored. */
void mg_access_use_keys(struct mg_access *a, struct mg_ra_keys keys,
                        void (*dump)(void *ctx, struct mg_buf *out), void *dump_ctx);

/* The compiled RequestAuthentication rules (borrowed; NULL for a NULL a),
 * whose remote key set URIs the JWKS store must fetch. */
const struct mg_reqauthn *mg_access_reqauthn(const struct mg_access *a);

/* The compiled policy set (borrowed, lives as long as `a`). */
const struct mg_policy_set *mg_access_policies(const struct mg_access *a);

/* Outcomes of mg_access_run. */
enum mg_access_rc {
    MG_ACCESS_CONTINUE = 0,             /* go on with the route action */
    MG_ACCESS_ANSWERED = -1,            /* a local reply was sent (401/403/...) */
    MG_ACCESS_PENDING = 1,              /* ext_authz in flight; mg_request_resume follows */
};

/* Run the access phase for r (r->snap->access must be set, r->route set).
 * Records the decision in r (authz_policy, authz_rule, authz_audit,
 * reason) for the access log and counts it in the authz metrics. On
 * PENDING the request must not be touched until the check completes: the
 * completion either replies (through mg_request_reply) or calls
 * mg_request_resume(r). */
enum mg_access_rc mg_access_run(struct mg_request *r);

/* Request authentication ahead of routing, for a virtual host whose routes
 * match JWT claims (Envoy's jwt_authn runs before the router and Istio
 * matches the claims it verified): runs what mg_access_run would run
 * first, keeps the result in r->authn for mg_access_run to use, and
 * answers a refused token (401/403) itself. Returns 0 to go on, -1 when
 * answered. Nothing happens without request authentication rules or when
 * it already ran. */
int mg_access_authenticate_early(struct mg_request *r);

/* The verified token's payload after mg_access_authenticate_early (a
 * jansson object), or NULL: no rule, no token, or not verified. */
struct json_t;
const struct json_t *mg_access_claims(const struct mg_request *r);

/* The request is being released: cancel any ext_authz call still in
 * flight (its completion will never run). Safe to call always. */
void mg_access_release(struct mg_request *r);

/* ---- the policy attributes: one builder for every caller ----
 *
 * The HTTP access phase (gateway and sidecar), the TCP/PASSTHROUGH splice
 * and `meshgate authz` all describe what they know in these two plain
 * structs and let mg_access_attrs() fill the struct mg_attrs the policy
 * module reads, so the offline answer is built exactly as the live one. It
 * lives in access/attrs.c, apart from the access phase, so the explainer
 * links it without libevent or OpenSSL. All strings are borrowed; NULL
 * means absent. */

/* The connection. */
struct mg_access_conn {
    struct mg_addr peer;                /* the direct peer (source.ip, ipBlocks) */
    /* The client a PROXY protocol header named (no family = the peer):
     * where remote.ip starts before X-Forwarded-For (Istio's remote_ip
     * honours the PROXY protocol, its direct_remote_ip does not). */
    struct mg_addr client;
    struct mg_addr local;               /* local address; its port is the port the
                                         * connection arrived on (inbound: the
                                         * workload port) */
    const char *sni;                    /* TLS SNI */
    const char *principal;              /* verified peer principal, the URI SAN without
                                         * "spiffe://" (mg_tls_peer_principal) */
    /* The original client when the caller knows it (the explainer's
     * --remote-ip); NULL: for HTTP taken from X-Forwarded-For as the
     * MeshConfig says (mg_policy_remote_addr), for TCP the peer. */
    const struct mg_addr *remote;
    /* GeoIP: the snapshot's database (NULL = none configured: no geo
     * attributes) and the connection's lookup cache (NULL = look up every
     * time, as the explainer does). */
    const struct mg_geoip *geoip;
    struct mg_geo_cache *geo_cache;
};

/* The HTTP request, after path normalization, the edge (route/route.h) and
 * request authentication. */
struct mg_access_req {
    const char *method;
    const char *authority;              /* :authority / Host */
    const char *path;                   /* normalized path, no query */
    size_t path_len;
    const char *path_query;             /* :path: the normalized path and "?query" */
    const char *scheme;                 /* "http" / "https" */
    const struct mg_header *headers;    /* as authorization sees them (authentication's
                                         * edits applied); lower-case names */
    size_t n_headers;
    /* The request authentication outcome: a PASS_PRINCIPAL result gives
     * request.auth.* (borrowed from it); NULL or any other status, none. */
    const struct mg_ra_result *authn;
};

/* Fill *out for a decision on connection c and request rq (NULL for a TCP
 * connection: no HTTP attributes). cfg gives the MeshConfig
 * numTrustedProxies and the Proxy mode (gateway or sidecar) for the remote
 * address. With c->geoip, the source and remote addresses are looked up
 * (source.geo.*, remote.geo.*; an address the database does not hold has
 * no geo attributes). *out borrows from c, rq and rq->authn. Allocation free except
 * for an X-Forwarded-For longer than a small stack buffer (freed before
 * returning). Never fails. */
void mg_access_attrs(const struct mg_config *cfg, const struct mg_access_conn *c,
                     const struct mg_access_req *rq, struct mg_attrs *out);

/* ---- request authentication: one step for every caller ----
 *
 * What the access phase does before authorization when RequestAuthentication
 * rules apply, run by the gateway and sidecar (access.c, with the worker's
 * token cache and the JWKS store) and by `meshgate authz` (key sets from
 * files, no cache), so the offline answer is the live one. It lives in
 * access/authn.c, apart from the access phase, so the explainer links it
 * without libevent or OpenSSL. */

struct mg_arena;
struct mg_jwt_cache;

struct mg_access_authn {
    bool ran;                           /* rules apply: mg_reqauthn_eval ran */
    struct mg_ra_result res;            /* release with mg_ra_result_free */
    /* The request headers afterwards, as authorization and the upstream see
     * them. The input array itself (borrowed) when nothing changed;
     * otherwise an array in the arena whose entries borrow from the input
     * headers and the compiled rules, with the values of set headers copied
     * into the arena (so they outlive res). Every name and value is NUL
     * terminated when the input's are. */
    const struct mg_header *headers;
    size_t n_headers;
};

/* Authenticate req (its headers lower-case and trimmed, as the policy
 * attributes carry them) against the compiled rules ra at wall-clock `now`,
 * with `keys` for remote key sets (NULL: none, 401 "Jwks remote fetch is
 * failed") and `cache` (the worker's verified-token cache, may be NULL).
 * With no rule (ra NULL or empty) nothing happens: out->ran is false,
 * out->res a PASS and out->headers the input. Otherwise the client's copies
 * of every rule's output headers (outputPayloadToHeader,
 * outputClaimToHeaders) are removed first, whatever the outcome; the
 * request is evaluated (CORS preflight bypass, 401/403 with Envoy's
 * message); and on PASS_PRINCIPAL the result's header edits are applied in
 * order: a token location removed, an output header set (replacing every
 * copy, appended last). A token query parameter removed shows as
 * out->res.new_path. Never fails (allocation failure aborts). */
void mg_access_authenticate(const struct mg_reqauthn *ra, const struct mg_ra_keys *keys,
                            struct mg_jwt_cache *cache, int64_t now,
                            const struct mg_ra_request *req, struct mg_arena *arena,
                            struct mg_access_authn *out);

/* Prometheus text for the authz counters (process-wide, all snapshots):
 * meshgate_authz_denied_total{policy}, meshgate_authz_allowed_total,
 * meshgate_ext_authz_total{result}, istio_dry_run_{allow,deny}_shadow_*.
 * Thread-safe (relaxed atomics). */
void mg_access_metrics_render(struct mg_buf *out);

/* JSON members (without braces) describing the access configuration of s:
 * "peer_authentication":{"enforced":false,"note":...,"ports":[{"port":N,
 * "mode":"STRICT"}...]},"authz_policies":N,"jwt_rules":N and, with a JWKS
 * store, "jwks":[per-URI fetch state]. Appended to out (for /config_dump). */
void mg_access_dump(struct mg_buf *out, const struct mg_snapshot *s);

#endif
