/* router.h - Gateway + VirtualService match tables, compiled once per
 * snapshot (regexes included) and read-only afterwards.
 *
 * A server (one Gateway `servers[]` entry) owns a route table: one virtual
 * host per VirtualService host bound to that gateway (by `gateways:`) and
 * overlapping the server's hosts; each virtual host lists the VirtualService
 * `http` routes in order (VirtualServices in load order), first match wins. */
#ifndef MG_ROUTER_H
#define MG_ROUTER_H
#include <regex.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "config/config.h"
#include "base/diag.h"
#include "route/types.h"


/* Is `vs_host` (a VirtualService host) within `srv_host` (a server host with
 * any ns/ prefix removed)? Both may be wildcards. */
bool mg_host_overlap(const char *srv_host, const char *vs_host);

/* Does VirtualService `vs` bind to Gateway `gw` (gateways: "ns/name" or
 * "name", the latter in the VS namespace)? */
bool mg_vs_binds(const struct mg_virtual_service *vs, const struct mg_gateway *gw);

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
 * fields below (util.h mg_pseudo_header), never from `headers`. */
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
};

/* Does the string match? (NULL s = absent, never matches). */
bool mg_csm_match(const struct mg_csm *m, const char *s, size_t len, bool icase);

/* First route of `vh` whose matches accept `in` (a route without matches
 * accepts everything). NULL = no route. */
const struct mg_route *mg_router_match(const struct mg_vhost *vh, const struct mg_route_input *in);

/* Pick a destination by weight using `rnd` (any 32-bit random value). */
const struct mg_wdest *mg_route_pick(const struct mg_route *r, uint32_t rnd);

#endif
