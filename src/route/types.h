/* route/types.h - compiled routes as the snapshot holds them and later steps
 * read them (the upstream's destination and retry policy, the access log's
 * route name). Types only; compiling and matching are in route/route.h. */
#ifndef MG_ROUTE_TYPES_H
#define MG_ROUTE_TYPES_H
#include <regex.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "config/config.h"

struct mg_cluster;

/* A compiled StringMatch (regex: POSIX ERE, anchored as a full match the way
 * Envoy's RE2 safe_regex is). */
struct mg_csm {
    enum mg_smatch_kind kind;
    const char *value;
    regex_t *re;
};

struct mg_chdr {                        /* compiled header / query matcher */
    const char *name;
    struct mg_csm m;
    /* a JWT claim route (@request.auth.claims...): the claim path, matched
     * against the verified token's payload; NULL for a header */
    char **claim;
    size_t n_claim;
};

struct mg_cmatch {                      /* compiled HTTPMatchRequest */
    const struct mg_http_match *cfg;
    struct mg_csm uri, method, authority, scheme;
    struct mg_chdr *headers, *without, *query;
    size_t n_headers, n_without, n_query;
};

struct mg_wdest {                       /* weighted destination */
    const struct mg_route_dest *cfg;
    struct mg_cluster *cluster;         /* NULL = no such service (503) */
    int weight;
};

struct mg_route {
    bool claims;                        /* a match reads JWT claims */
    const struct mg_http_route *cfg;
    const struct mg_virtual_service *vs;
    const char *name;                   /* route name, else VS name */
    struct mg_cmatch *matches;
    size_t n_matches;
    struct mg_wdest *dests;
    size_t n_dests;
    int total_weight;
    regex_t *rewrite_re;                /* uriRegexRewrite.match */
    /* corsPolicy (cfg->cors.present): the compiled origins and the
     * response header values joined once ("GET, POST"), NULL = not sent */
    struct mg_csm *cors_origins;
    size_t n_cors_origins;
    char *cors_methods, *cors_headers, *cors_expose, *cors_max_age;
    /* mirrors (cfg->mirrors): where copies go (cluster NULL = no such
     * service: none sent) and the share of requests, 0..100 */
    struct mg_wdest *mirrors;
    double *mirror_pct;
    size_t n_mirrors;
};

struct mg_vhost {
    char *host;                         /* lower-case pattern: exact, *.suffix or * */
    struct mg_route **routes;
    size_t n_routes;
};

struct mg_route_table {
    struct mg_vhost *v;
    size_t n;
};

#endif
