/* route/route.h - path normalization, the edge-header rules and
 * VirtualService routing (step 3). */
#ifndef MG_ROUTE_ROUTE_H
#define MG_ROUTE_ROUTE_H
#include <regex.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "config/config.h"
#include "base/base.h"
#include "route/types.h"

struct json_t;

/* Gateway + VirtualService match tables, compiled once per
 * snapshot (regexes included) and read-only afterwards.
 *
 * A server (one Gateway `servers[]` entry) owns a route table: one virtual
 * host per VirtualService host bound to that gateway (by `gateways:`) and
 * overlapping the server's hosts; each virtual host lists the VirtualService
 * `http` routes in order (VirtualServices in load order), first match wins. */
/* Is `vs_host` (a VirtualService host) within `srv_host` (a server host with
 * any ns/ prefix removed)? Both may be wildcards. */
bool mg_host_overlap(const char *srv_host, const char *vs_host);

/* Does VirtualService `vs` bind to Gateway `gw` (gateways: "ns/name" or
 * "name", the latter in the VS namespace)? */
bool mg_vs_binds(const struct mg_virtual_service *vs, const struct mg_gateway *gw);

/* Does a route match's own `gateways` list (tls[].match[], tcp[].match[])
 * let it apply on Gateway gw? An empty list does (the VirtualService's
 * gateways decide); otherwise one entry must name gw, so a match for
 * "mesh" (the sidecars' leg of Istio's egress-gateway pattern) never
 * applies on a gateway. gw NULL: only an empty list. */
bool mg_match_gateways(const struct mg_slist *refs, const struct mg_virtual_service *vs,
                       const struct mg_gateway *gw);

/* Compile one http route (matches and regexes). Destinations are filled by
 * the caller (snapshot). Returns 0, or -1 with an error added to d. */
int mg_route_compile(struct mg_route *r, const struct mg_virtual_service *vs,
                     const struct mg_http_route *h, struct mg_diags *d);
void mg_route_free(struct mg_route *r);

/* Pick the virtual host for `host` (lower-case, no port): exact first, then
 * the longest wildcard, then "*". NULL when none. */
const struct mg_vhost *mg_router_vhost(const struct mg_route_table *t, const char *host);

/* What a route match looks at. Headers are (name, value) pairs; a repeated
 * header is matched value by value. A header match on a pseudo-header
 * (:authority or host, :path, :method, :scheme) takes the value from the
 * fields below (base/base.h mg_pseudo_header), never from `headers`. */
struct mg_route_input {
    const char *method;
    const char *path;                   /* normalized, without query */
    const char *query;                  /* after '?', NULL = none */
    const char *path_query;             /* :path for header matches: path and "?query" */
    const char *authority;              /* Host as received (port kept) */
    const char *scheme;
    uint16_t port;                      /* listener port */
    const struct mg_kv *headers;        /* names lower-case */
    size_t n_headers;
    /* where the match is evaluated (HTTPMatchRequest gateways, sourceLabels,
     * sourceNamespace); NULL = unknown, and a match using it fails */
    const struct mg_gateway *gw;        /* the server's Gateway */
    const struct mg_kvlist *proxy_labels;
    const char *proxy_ns;
    /* the verified JWT's payload (a JSON object) for claim routes; NULL =
     * no verified token, and a claim match fails */
    const struct json_t *claims;
};

/* Does any route of vh match on JWT claims (so the token must be verified
 * before routing)? */
bool mg_vhost_has_claims(const struct mg_vhost *vh);
/* The CORS step of a request whose route r->route is set (struct
 * mg_request, http/types.h), as Envoy's CORS filter: nothing without the
 * route's corsPolicy or an Origin header. A preflight (OPTIONS with Origin
 * and Access-Control-Request-Method) from an allowed origin is answered
 * here, 200 with access-control-allow-origin (the origin), -credentials,
 * -methods, -headers and -max-age as configured, before authentication and
 * authorization; one from another origin goes on (unmatchedPreflights
 * FORWARD, the default) or gets 200 without them (IGNORE). Any other
 * request from an allowed origin goes on with r->resp_add holding
 * access-control-allow-origin, -credentials and -expose-headers for its
 * response. Returns 0 to continue, -1 when it answered. */
struct mg_request;
int mg_cors_run(struct mg_request *r);

/* The route's fault injection for request r (http/types.h), after
 * authorization: with the delay's share of requests chosen, flags "DI"
 * and `cont(r)` is called after fixedDelay (r->fault_timer, which the
 * request's release frees) - unless the abort then answers; with the
 * abort's share, the request is answered with httpStatus (or, with
 * grpcStatus, a gRPC answer carrying it) and body "fault filter abort",
 * flags "FI", reason fault_abort. Returns 0 to continue now, 1 when
 * delayed, -1 when it answered. */
int mg_fault_run(struct mg_request *r, void (*cont)(struct mg_request *r));

/* Does the string match? (NULL s = absent, never matches). */
bool mg_csm_match(const struct mg_csm *m, const char *s, size_t len, bool icase);

/* First route of `vh` whose matches accept `in` (a route without matches
 * accepts everything). NULL = no route. */
const struct mg_route *mg_router_match(const struct mg_vhost *vh, const struct mg_route_input *in);

/* Pick a destination by weight using `rnd` (any 32-bit random value). */
const struct mg_wdest *mg_route_pick(const struct mg_route *r, uint32_t rnd);

/* request-target normalization before routing and
 * authorization (MeshConfig.pathNormalization, as Envoy's normalize_path,
 * merge_slashes and path_with_escaped_slashes_action).
 *
 * Pure and allocation free; the data plane calls it once per request, and
 * the same normalized path is used for routing, authorization and the
 * request forwarded upstream. */
/* Normalize the origin-form request target [target, target+len).
 *
 * Always: the fragment ("#..." ) is stripped; a target containing a control
 * byte, space, DEL, a byte >= 0x80 (stricter than Envoy, which would
 * re-encode it) or NUL, a path containing "%00", or a path that does not
 * start with '/' is refused. The single target "*" (OPTIONS) is returned
 * unchanged. The query ("?...") is kept byte for byte.
 *
 * Per mode, on the path only:
 *   MG_NORM_NONE: as received.
 *   MG_NORM_BASE: decode percent-encoded unreserved characters once
 *     (ALPHA DIGIT - . _ ~, hex case-insensitive; %2F and %5C stay), then
 *     '\' -> '/', then RFC 3986 dot-segment removal. Invalid escapes stay.
 *   MG_NORM_MERGE_SLASHES: BASE, then runs of '/' become one.
 *   MG_NORM_DECODE_AND_MERGE_SLASHES: first %2F -> '/' and %5C -> '\',
 *     then BASE, then merge slashes.
 *
 * out receives the normalized path followed by the original query,
 * NUL terminated; *outlen is its length without the NUL and *path_len the
 * length of the path part (what `paths` match). outcap >= len + 1 always
 * suffices (normalization never grows the target).
 * Returns 0, -1 for a request that must get 400, or -2 when outcap is too
 * small (nothing useful in out). */
int mg_path_normalize(const char *target, size_t len, enum mg_path_norm mode, char *out,
                      size_t outcap, size_t *outlen, size_t *path_len);

/* the headers a client may not send: what the proxy removes from
 * a request and sets itself before server selection, routing and
 * authorization (the README, "Headers").
 *
 * One list, one sanitising function: the data plane (http/request.c) and
 * `meshgate authz` (cmd/authz.c) both call mg_edge_sanitize(), so a policy
 * on these headers decides offline as it does live. Pure: no I/O, no
 * allocation, no libevent. */
/* Does the edge drop the client's header `name` (lower-case)? True for the
 * headers only the proxy may set (x-envoy-*, x-meshgate-*,
 * x-forwarded-client-cert, x-forwarded-proto), the hop-by-hop headers
 * (connection, keep-alive, proxy-connection, te, trailer,
 * transfer-encoding, upgrade) and any header a Connection header among
 * h[0..n) names (comma-separated tokens, case-insensitive). */
bool mg_edge_drops(const struct mg_kv *h, size_t n, const char *name);

/* What the proxy sets in their place; NULL = not set. */
struct mg_edge_own {
    const char *proto;                  /* x-forwarded-proto: "http" / "https" */
    const char *external_address;       /* x-envoy-external-address: the peer IP */
    const char *xfcc;                   /* x-forwarded-client-cert (mg_edge_xfcc) */
    /* More names only the proxy sets (lower-case): the GeoIP headers of
     * MeshConfig geoipHeaders, which the access phase fills. NULL entries
     * are skipped. */
    const char *const *drop;
    size_t n_drop;
};

/* The client's headers in[0..n) as the request continues: every header
 * mg_edge_drops() or own->drop names removed, the rest in order (but the
 * first TE that names "trailers" is kept, its value reduced to "trailers"),
 * then the proxy's own
 * x-forwarded-proto, x-envoy-external-address and x-forwarded-client-cert
 * (those `own` gives). out must not overlap in and has room for n + 3
 * entries; the entries borrow in's strings and own's. Returns the count
 * written to out. */
size_t mg_edge_sanitize(const struct mg_kv *in, size_t n, const struct mg_edge_own *own,
                        struct mg_kv *out);

/* The proxy's x-forwarded-client-cert (Istio's SANITIZE_SET) for a verified
 * client certificate: "By=<by>;Hash=<hash>;URI=<uri>", each element left
 * out when its value is NULL (and Hash and URI also when empty). `by` is
 * the proxy's own SPIFFE ID, `hash` the certificate's hex SHA-256, `uri`
 * its URI SAN (with "spiffe://"). Writes at most cap bytes, NUL terminated
 * when cap > 0, as snprintf; returns the length of the full value. */
size_t mg_edge_xfcc(char *buf, size_t cap, const char *by, const char *hash, const char *uri);

#endif
