/* policy/policy.h - the policy engine: request attributes, compiled
 * AuthorizationPolicy and PeerAuthentication, the decision. */
#ifndef MG_POLICY_POLICY_H
#define MG_POLICY_POLICY_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include "base/base.h"
#include "config/config.h"

/* everything an authorization decision can read.
 *
 * The data plane fills one struct mg_attrs per HTTP request (or per TCP
 * connection) and hands it to mg_authz_decide() (policy.h). The policy module
 * only reads it: every pointer is borrowed and must stay valid for the call.
 * A NULL pointer (or family 0 for an address) means "attribute absent":
 * positive matchers on an absent attribute are false, negative ones true
 * (NOT of a false match), which is how plaintext requests lose identity. */
/* One request header. Names are lower-case. A repeated header is several
 * entries, one per value: matchers test value by value (CVE-2026-26308). The
 * strings need not be NUL terminated. */
struct mg_header {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
};

struct mg_attrs {
    /* false: TCP context (opaque port, TLS passthrough). HTTP-only fields then
     * follow the ALLOW-drops-rule / DENY-drops-field rule (1.9). */
    bool is_http;

    /* HTTP only (ignored when !is_http). */
    const char *method;                 /* as received, e.g. "GET" */
    const char *host;                   /* :authority / Host, port not stripped */
    const char *path;                   /* normalized path, no query, no fragment */
    size_t path_len;                    /* bytes of path (need not be NUL terminated) */
    /* Header conditions also see the pseudo-headers (base/base.h
     * mg_pseudo_header): :authority (= host) and :method are `host` and
     * `method` above; these two are :path (normalized path plus "?query",
     * NUL terminated) and :scheme ("http"/"https"). NULL = absent. */
    const char *path_query;
    const char *scheme;
    /* The regular header fields. A "host" entry among them is never
     * consulted: request.headers[host] is `host` above. */
    const struct mg_header *headers;
    size_t n_headers;

    /* Addresses. family 0 = absent. dest.port is the local port the
     * connection arrived on (`ports`, destination.port). */
    struct mg_addr source;              /* direct peer (ipBlocks, source.ip) */
    struct mg_addr remote;              /* original client (1.8), see mg_policy_remote_addr */
    struct mg_addr dest;                /* local address and port */

    const char *sni;                    /* downstream TLS SNI or NULL */

    /* GeoIP (MeshConfig geoipDatabase) of `source` and `remote`: the ISO
     * 3166 alpha-2 country code in upper case ("" = absent) and the
     * autonomous system number (0 = absent), as access/ looked them up.
     * source.geo.* / remote.geo.* conditions read these. */
    char source_country[3];
    uint32_t source_asn;
    char remote_country[3];
    uint32_t remote_asn;

    /* Peer identity: the verified peer certificate's URI SAN without
     * "spiffe://" (e.g. "cluster.local/ns/default/sa/sleep"); NULL when the
     * connection is not mTLS or the certificate has no URI SAN. */
    const char *peer_principal;

    /* Request authentication (a JWT that passed validation); all NULL/0 when
     * there is none. */
    const char *req_iss;                /* iss */
    const char *req_sub;                /* sub */
    const char *const *audiences;       /* aud (string or list) */
    size_t n_audiences;
    const char *presenter;              /* azp */
    const json_t *claims;               /* the verified payload (an object) */
    /* Top-level claims, besides "scope" and "permission", whose string value
     * is split on whitespace into a list (JWTRule.spaceDelimitedClaims). */
    const char *const *space_delimited_claims;
    size_t n_space_delimited_claims;
};

/* AuthorizationPolicy and PeerAuthentication, compiled once per
 * configuration snapshot and evaluated per request (Istio's
 * AuthorizationPolicy, conditions, PeerAuthentication and trust domains).
 *
 * The module is pure: no I/O, no globals, no libevent. mg_policy_compile()
 * allocates; mg_authz_decide(), mg_authz_explain() and mg_peer_authn_mode()
 * never allocate and may be called from any number of threads at once on the
 * same (immutable) set. */
/* The workload policies are scoped to (1.2). The strings are borrowed for
 * the duration of mg_policy_compile() only. */
struct mg_workload {
    const char *name;                   /* Proxy metadata.name: targetRefs to a Gateway */
    const char *namespace_;             /* NULL = "default" */
    const struct mg_kvlist *labels;     /* NULL = no labels */
};

/* Fill `w` from the config's Proxy (borrowing its strings). */
void mg_workload_from_proxy(const struct mg_proxy *p, struct mg_workload *w);

struct mg_policy_set;

/* Compile the AuthorizationPolicies and PeerAuthentications of `c` that apply
 * to workload `w` (NULL = the config's Proxy). Scoping, trust domain and
 * aliases, root namespace and ext_authz providers come from c->mesh.
 * Policies that cannot apply are not kept, so evaluation cost does not grow
 * with them. Problems that change enforcement (an unknown `when` key skips a
 * rule, an untranslatable value drops the rule of an ALLOW policy or the
 * value of a DENY policy, a CUSTOM provider that is missing) are added to `d`
 * as warnings. Never fails: the caller owns the result (mg_policy_set_free).
 * The set copies what it needs from `c` except mg_authz_result.provider,
 * which points into c->mesh. */
struct mg_policy_set *mg_policy_compile(const struct mg_config *c, const struct mg_workload *w,
                                        struct mg_diags *d);
void mg_policy_set_free(struct mg_policy_set *s);

/* Number of applicable AuthorizationPolicies kept in the set (the size of
 * the trace array mg_authz_explain() fills). */
size_t mg_policy_set_count(const struct mg_policy_set *s);

enum mg_authz_decision { MG_AUTHZ_ALLOW = 0, MG_AUTHZ_DENY };

/* A matching policy: policy is "namespace.name" (owned by the set) or NULL
 * when nothing matched; rule is the 0-based index into spec.rules or -1. */
struct mg_authz_match {
    const char *policy;
    enum mg_authz_action action;
    int rule;
};

struct mg_authz_result {
    enum mg_authz_decision decision;
    /* The deciding policy: the DENY (or invalid CUSTOM) that denied, the ALLOW
     * that allowed; policy NULL for "no ALLOW policy applies" (allow) and for
     * "ALLOW policies exist, none matched" (deny). */
    struct mg_authz_match decided_by;
    const char *reason;                 /* access log: "allowed" or "rbac_policy" */

    /* A CUSTOM rule matched: the caller must ask the ext_authz provider and
     * deny when it denies (or fails without failOpen). Everything above was
     * computed as if the provider allowed. provider_name is owned by the set;
     * provider points into the config the set was compiled from. */
    bool custom;
    const char *provider_name;
    const struct mg_ext_provider *provider;
    struct mg_authz_match custom_match;

    bool audit;                         /* an AUDIT rule matched (log only) */
    struct mg_authz_match audit_match;

    /* Dry-run (istio.io/dry-run) policies: evaluated, never enforced.
     * dry_run_deny: a dry-run DENY would have denied. dry_run_allow: -1 no
     * dry-run ALLOW policy applies, 1 one matched, 0 none matched. */
    bool dry_run_deny;
    struct mg_authz_match dry_run_deny_match;
    int dry_run_allow;
    struct mg_authz_match dry_run_allow_match;
};

/* Decide as Istio does (CUSTOM, DENY, ALLOW; AUDIT marks; dry-run
 * reported only). `s` and `a` must not be NULL. `r` is fully overwritten;
 * its strings point into `s` and live as long as it. Does not allocate.
 * Only the rules the request's host, method, path and port can select
 * (plus those with no such key) are tested, in evaluation order, so the
 * first match reported is the one a scan of every rule would find. */
void mg_authz_decide(const struct mg_policy_set *s, const struct mg_attrs *a,
                     struct mg_authz_result *r);

/* One applicable policy in an explanation. */
struct mg_authz_trace {
    const char *policy;                 /* "namespace.name" */
    enum mg_authz_action action;
    bool dry_run;
    int rule;                           /* first matching rule index, -1 none */
    const char *provider;               /* CUSTOM: provider.name, else NULL */
    bool provider_invalid;              /* CUSTOM provider missing / several providers */
};

/* The same evaluation as mg_authz_decide() (same result in `r`), and also
 * the first matching rule of every applicable policy, written to
 * trace[0 .. mg_policy_set_count(s)-1] in set order (creation time, then
 * load order). trace may be NULL. */
void mg_authz_explain(const struct mg_policy_set *s, const struct mg_attrs *a,
                      struct mg_authz_result *r, struct mg_authz_trace *trace);

/* Effective PeerAuthentication mode for a local port (section 3): workload >
 * namespace > mesh, oldest creationTimestamp wins a tie (then load order),
 * root-namespace policies with a selector ignored, portLevelMtls only from the
 * selected workload policy, UNSET inherits, PERMISSIVE at the top. Never
 * returns MG_MTLS_UNSET. */
enum mg_mtls_mode mg_peer_authn_mode(const struct mg_policy_set *s, uint16_t port);

/* The PeerAuthentication policies that decided (for logs and explain):
 * "namespace.name" or NULL per level. */
void mg_peer_authn_sources(const struct mg_policy_set *s, const char **mesh,
                           const char **namespace_, const char **workload);

/* A parsed SPIFFE ID. Pointers point into the parsed string (not NUL
 * terminated at the part ends; use the lengths). */
struct mg_spiffe_id {
    const char *principal;              /* the URI without "spiffe://" (NUL terminated) */
    const char *trust_domain;
    size_t trust_domain_len;
    const char *namespace_;
    size_t namespace_len;
    const char *service_account;
    size_t service_account_len;
};

/* Strict parse of "spiffe://TD/ns/NS/sa/SA": exactly five non-empty
 * '/'-separated parts after the scheme, in that order. Returns 0, or -1 (out
 * untouched) for anything else. */
int mg_spiffe_parse(const char *uri, struct mg_spiffe_id *out);

/* The client address for remote.ip / remoteIpBlocks (1.8). Gateway
 * (is_gateway): N = num_trusted_proxies; N = 0 gives the peer, N > 0 the N-th
 * X-Forwarded-For entry from the right (the peer when there are fewer
 * entries or that entry is not an IP). Sidecar: the rightmost entry, else the
 * peer. xff may be NULL (no header); with repeated XFF headers pass them
 * joined with ','. *out gets port 0 when taken from XFF. Returns 1 when the
 * address came from XFF, 0 when it is the peer. */
int mg_policy_remote_addr(const struct mg_addr *peer, const char *xff, int num_trusted_proxies,
                          bool is_gateway, struct mg_addr *out);

/* An AS number as a source.geo.asn / remote.geo.asn value: decimal digits,
 * optionally after "AS" (any case), 1 .. 4294967295. Returns 0, or -1
 * (*out untouched). */
int mg_policy_parse_asn(const char *s, uint32_t *out);

#endif
