/* cors.c - the route's corsPolicy, as Envoy's CORS filter applies it: after
 * routing and before request authentication and authorization, so a
 * browser's preflight never needs a token. */
#include "route/route.h"
#include <string.h>
#include "http/types.h"

static bool origin_allowed(const struct mg_route *rt, const char *origin)
{
    size_t ol = strlen(origin);
    for (size_t i = 0; i < rt->n_cors_origins; i++) {
        const struct mg_csm *m = &rt->cors_origins[i];
        /* an entry that admits "*" admits every origin, as in Envoy */
        if (mg_csm_match(m, origin, ol, false) || mg_csm_match(m, "*", 1, false))
            return true;
    }
    return false;
}

static void add(struct mg_request *r, const char *k, const char *v)
{
    if (v)
        r->resp_add[r->n_resp_add++] = (struct mg_kv){ .key = (char *)k, .value = (char *)v };
}

int mg_cors_run(struct mg_request *r)
{
    const struct mg_route *rt = r->route;
    if (!rt || !rt->cfg->cors.present)
        return 0;
    const char *origin = mg_request_header(r, "origin");
    if (!origin || !*origin)
        return 0;                       /* not a cross-origin request */
    const char *acrm = mg_request_header(r, "access-control-request-method");
    bool preflight = strcmp(r->method, "OPTIONS") == 0 && acrm && *acrm;
    bool allowed = origin_allowed(rt, origin);
    if (!allowed) {
        /* the unmatched preflight goes on to the upstream (FORWARD, the
         * default) or is answered here without CORS headers (IGNORE), so
         * the browser refuses the actual request either way */
        if (preflight && rt->cfg->cors.unmatched_preflights == MG_CORS_UNMATCHED_IGNORE) {
            mg_request_reply(r, 200, "", "cors_preflight", false);
            return -1;
        }
        return 0;
    }
    r->resp_add = mg_arena_alloc(&r->arena, 6 * sizeof(*r->resp_add));
    r->n_resp_add = 0;
    add(r, "access-control-allow-origin", origin);
    if (rt->cfg->cors.allow_credentials)
        add(r, "access-control-allow-credentials", "true");
    if (!preflight) {
        add(r, "access-control-expose-headers", rt->cors_expose);
        return 0;
    }
    add(r, "access-control-allow-methods", rt->cors_methods);
    add(r, "access-control-allow-headers", rt->cors_headers);
    add(r, "access-control-max-age", rt->cors_max_age);
    mg_request_reply(r, 200, "", "cors_preflight", false);
    return -1;
}
