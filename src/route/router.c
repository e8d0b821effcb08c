/* router.c - VirtualService matching as Istio/Envoy do it: virtual host by
 * Host (exact, longest wildcard, "*"), then the first route whose match
 * block accepts the request (a route's match list is an OR, fields inside
 * one match are an AND). */
#include "route/route.h"
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include "base/base.h"

bool mg_host_overlap(const char *srv_host, const char *vs_host)
{
    if (mg_host_match(srv_host, vs_host, strlen(vs_host)))
        return true;
    /* a VS wildcard wider than the server host (VS *.example.com, server a.example.com) */
    return vs_host[0] == '*' && mg_host_match(vs_host, srv_host, strlen(srv_host));
}

/* Does the reference `g` ("ns/name", or "name" in the VS namespace vns)
 * name Gateway gw? */
static bool gw_ref_is(const char *g, const char *vns, const struct mg_gateway *gw)
{
    const char *gns = gw->meta.namespace_ ? gw->meta.namespace_ : "default";
    const char *slash = strchr(g, '/');
    if (slash) {
        size_t nl = (size_t)(slash - g);
        return strlen(gns) == nl && strncmp(g, gns, nl) == 0 && strcmp(slash + 1, gw->meta.name) == 0;
    }
    return strcmp(g, gw->meta.name) == 0 && strcmp(vns, gns) == 0;
}

bool mg_vs_binds(const struct mg_virtual_service *vs, const struct mg_gateway *gw)
{
    const char *vns = vs->meta.namespace_ ? vs->meta.namespace_ : "default";
    for (size_t i = 0; i < vs->gateways.n; i++)
        if (gw_ref_is(vs->gateways.v[i], vns, gw))
            return true;
    return false;
}

bool mg_match_gateways(const struct mg_slist *refs, const struct mg_virtual_service *vs,
                       const struct mg_gateway *gw)
{
    if (!refs->n)
        return true;
    const char *vns = vs && vs->meta.namespace_ ? vs->meta.namespace_ : "default";
    for (size_t i = 0; gw && i < refs->n; i++)
        if (gw_ref_is(refs->v[i], vns, gw))
            return true;
    return false;
}

/* Istio's sourceMatchHTTP: a match naming gateways applies only on one of
 * them (the VirtualService's own gateways list is overridden); otherwise
 * sourceLabels must be a subset of this proxy's labels and sourceNamespace
 * its namespace. Unknown gateway or proxy facts never match. */
static bool source_ok(const struct mg_http_match *m, const struct mg_virtual_service *vs,
                      const struct mg_route_input *in)
{
    if (m->gateways.n) {
        const char *vns = vs && vs->meta.namespace_ ? vs->meta.namespace_ : "default";
        for (size_t i = 0; in->gw && i < m->gateways.n; i++)
            if (gw_ref_is(m->gateways.v[i], vns, in->gw))
                return true;
        return false;
    }
    for (size_t i = 0; i < m->source_labels.n; i++) {
        const char *v = in->proxy_labels ? mg_kvlist_get(in->proxy_labels, m->source_labels.v[i].key) : NULL;
        if (!v || strcmp(v, m->source_labels.v[i].value) != 0)
            return false;
    }
    if (m->source_namespace)
        return in->proxy_ns && strcmp(in->proxy_ns, m->source_namespace) == 0;
    return true;
}

static int csm_compile(struct mg_csm *c, const struct mg_smatch *m, bool icase, struct mg_diags *d)
{
    c->kind = m->kind;
    c->value = m->value;
    c->re = NULL;
    if (m->kind != MG_SM_REGEX)
        return 0;
    char *anch = mg_xasprintf("^(%s)$", m->value ? m->value : "");
    c->re = mg_xmalloc(sizeof(*c->re));
    int rc = regcomp(c->re, anch, REG_EXTENDED | REG_NOSUB | (icase ? REG_ICASE : 0));
    free(anch);
    if (rc != 0) {
        free(c->re);
        c->re = NULL;
        mg_error(d, m->pos, "regex '%s' does not compile (POSIX extended syntax)", m->value);
        return -1;
    }
    return 0;
}

static void csm_free(struct mg_csm *c)
{
    if (c->re) {
        regfree(c->re);
        free(c->re);
    }
}

static int chdrs_compile(struct mg_chdr **out, size_t *nout, const struct mg_header_match *h,
                         size_t n, struct mg_diags *d)
{
    int rc = 0;
    *out = n ? mg_xcalloc(n, sizeof(**out)) : NULL;
    *nout = n;
    for (size_t i = 0; i < n; i++) {
        struct mg_chdr *c = &(*out)[i];
        c->name = h[i].name;
        if (csm_compile(&c->m, &h[i].match, false, d) < 0)
            rc = -1;
        size_t nc = mg_claim_route_split(h[i].name, NULL, 0);
        if (nc) {
            c->claim = mg_xcalloc(nc, sizeof(*c->claim));
            c->n_claim = mg_claim_route_split(h[i].name, c->claim, nc);
        }
    }
    return rc;
}

/* "a, b, c", or NULL for an empty list */
static char *join_list(const struct mg_slist *l)
{
    if (!l->n)
        return NULL;
    struct mg_buf b = { 0 };
    for (size_t i = 0; i < l->n; i++) {
        if (i)
            mg_buf_adds(&b, ",");
        mg_buf_adds(&b, l->v[i]);
    }
    char *out = mg_xstrndup(b.p, b.len);
    mg_buf_free(&b);
    return out;
}

int mg_route_compile(struct mg_route *r, const struct mg_virtual_service *vs,
                     const struct mg_http_route *h, struct mg_diags *d)
{
    int rc = 0;
    memset(r, 0, sizeof(*r));
    r->cfg = h;
    r->vs = vs;
    r->name = h->name ? h->name : vs->meta.name;
    r->n_matches = h->n_match;
    r->matches = h->n_match ? mg_xcalloc(h->n_match, sizeof(*r->matches)) : NULL;
    for (size_t i = 0; i < h->n_match; i++) {
        const struct mg_http_match *m = &h->match[i];
        struct mg_cmatch *c = &r->matches[i];
        c->cfg = m;
        if (csm_compile(&c->uri, &m->uri, m->ignore_uri_case, d) < 0 ||
            csm_compile(&c->method, &m->method, false, d) < 0 ||
            csm_compile(&c->authority, &m->authority, true, d) < 0 ||
            csm_compile(&c->scheme, &m->scheme, true, d) < 0)
            rc = -1;
        if (chdrs_compile(&c->headers, &c->n_headers, m->headers, m->n_headers, d) < 0 ||
            chdrs_compile(&c->without, &c->n_without, m->without_headers, m->n_without_headers, d) < 0 ||
            chdrs_compile(&c->query, &c->n_query, m->query_params, m->n_query_params, d) < 0)
            rc = -1;
        for (size_t k = 0; k < c->n_headers; k++)
            r->claims |= c->headers[k].claim != NULL;
        for (size_t k = 0; k < c->n_without; k++)
            r->claims |= c->without[k].claim != NULL;
    }
    if (h->cors.present) {
        const struct mg_cors *cp = &h->cors;
        r->n_cors_origins = cp->n_allow_origins;
        r->cors_origins = cp->n_allow_origins ? mg_xcalloc(cp->n_allow_origins, sizeof(*r->cors_origins))
                                              : NULL;
        for (size_t i = 0; i < cp->n_allow_origins; i++)
            if (csm_compile(&r->cors_origins[i], &cp->allow_origins[i], false, d) < 0)
                rc = -1;
        r->cors_methods = join_list(&cp->allow_methods);
        r->cors_headers = join_list(&cp->allow_headers);
        r->cors_expose = join_list(&cp->expose_headers);
        if (cp->max_age_ms >= 0)
            r->cors_max_age = mg_xasprintf("%lld", (long long)(cp->max_age_ms / 1000));
    }
    r->n_mirrors = h->n_mirrors;
    if (h->n_mirrors) {
        r->mirrors = mg_xcalloc(h->n_mirrors, sizeof(*r->mirrors));
        r->mirror_pct = mg_xcalloc(h->n_mirrors, sizeof(*r->mirror_pct));
        for (size_t i = 0; i < h->n_mirrors; i++) {
            r->mirrors[i].cfg = &h->mirrors[i].dest;
            r->mirrors[i].weight = 100;
            r->mirror_pct[i] = h->mirrors[i].percentage.present ? h->mirrors[i].percentage.value : 100;
        }
    }
    if (h->has_rewrite && h->rewrite.regex_match) {
        r->rewrite_re = mg_xmalloc(sizeof(*r->rewrite_re));
        if (regcomp(r->rewrite_re, h->rewrite.regex_match, REG_EXTENDED) != 0) {
            free(r->rewrite_re);
            r->rewrite_re = NULL;
            mg_error(d, h->pos, "uriRegexRewrite match '%s' does not compile", h->rewrite.regex_match);
            rc = -1;
        }
    }
    return rc;
}

static void chdrs_free(struct mg_chdr *c, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        csm_free(&c[i].m);
        for (size_t k = 0; k < c[i].n_claim; k++)
            free(c[i].claim[k]);
        free(c[i].claim);
    }
    free(c);
}

bool mg_vhost_has_claims(const struct mg_vhost *vh)
{
    for (size_t i = 0; vh && i < vh->n_routes; i++)
        if (vh->routes[i]->claims)
            return true;
    return false;
}

/* A claim route as Istio compiles it (a metadata matcher on the verified
 * payload, lists matched element by element): the claim at the path must
 * be a string that matches, or a list holding one; a number, a boolean or
 * an object never matches. *present: the claim exists. */
static bool claim_match(const struct mg_route_input *in, const struct mg_chdr *h, bool *present)
{
    const json_t *v = (const json_t *)in->claims;

    for (size_t i = 0; v && i < h->n_claim; i++)
        v = json_is_object(v) ? json_object_get(v, h->claim[i]) : NULL;
    *present = v != NULL;
    if (!v)
        return false;
    if (json_is_string(v))
        return mg_csm_match(&h->m, json_string_value(v), json_string_length(v), false);
    if (json_is_array(v))
        for (size_t i = 0; i < json_array_size(v); i++) {
            const json_t *e = json_array_get(v, i);
            if (json_is_string(e) &&
                mg_csm_match(&h->m, json_string_value(e), json_string_length(e), false))
                return true;
        }
    return false;
}

void mg_route_free(struct mg_route *r)
{
    for (size_t i = 0; i < r->n_matches; i++) {
        struct mg_cmatch *c = &r->matches[i];
        csm_free(&c->uri);
        csm_free(&c->method);
        csm_free(&c->authority);
        csm_free(&c->scheme);
        chdrs_free(c->headers, c->n_headers);
        chdrs_free(c->without, c->n_without);
        chdrs_free(c->query, c->n_query);
    }
    free(r->matches);
    free(r->dests);
    for (size_t i = 0; i < r->n_cors_origins; i++)
        csm_free(&r->cors_origins[i]);
    free(r->cors_origins);
    free(r->cors_methods);
    free(r->cors_headers);
    free(r->cors_expose);
    free(r->cors_max_age);
    free(r->mirrors);
    free(r->mirror_pct);
    if (r->rewrite_re) {
        regfree(r->rewrite_re);
        free(r->rewrite_re);
    }
}

const struct mg_vhost *mg_router_vhost(const struct mg_route_table *t, const char *host)
{
    const struct mg_vhost *best = NULL, *star = NULL;
    size_t best_len = 0, hl = strlen(host);
    for (size_t i = 0; i < t->n; i++) {
        const char *p = t->v[i].host;
        if (strcmp(p, "*") == 0) {
            if (!star)
                star = &t->v[i];
        } else if (p[0] == '*') {
            size_t pl = strlen(p);
            if (pl > best_len && mg_host_match(p, host, hl)) {
                best = &t->v[i];
                best_len = pl;
            }
        } else if (mg_host_match(p, host, hl)) {
            return &t->v[i];
        }
    }
    return best ? best : star;
}

bool mg_csm_match(const struct mg_csm *m, const char *s, size_t len, bool icase)
{
    if (m->kind == MG_SM_NONE)
        return true;
    if (!s)
        return false;
    const char *v = m->value ? m->value : "";
    size_t vl = strlen(v);
    switch (m->kind) {
    case MG_SM_EXACT:
        return vl == len && (icase ? mg_strncasecmp(v, s, len) == 0 : memcmp(v, s, len) == 0);
    case MG_SM_PREFIX:
        return vl <= len && (icase ? mg_strncasecmp(v, s, vl) == 0 : memcmp(v, s, vl) == 0);
    case MG_SM_REGEX: {
        if (!m->re)
            return false;
        char tmp[1024];
        char *z = len < sizeof(tmp) ? tmp : mg_xmalloc(len + 1);
        memcpy(z, s, len);
        z[len] = '\0';
        /* an embedded NUL would make the regex see a shorter string */
        bool r = memchr(s, '\0', len) == NULL && regexec(m->re, z, 0, NULL, 0) == 0;
        if (z != tmp)
            free(z);
        return r;
    }
    default:
        return false;
    }
}

static bool header_any(const struct mg_route_input *in, const struct mg_chdr *h, bool *present)
{
    const struct mg_pseudo_headers ps = { in->authority, in->path_query, in->method, in->scheme };
    const char *pv;
    if (h->claim)
        return claim_match(in, h, present);
    if (mg_pseudo_header(&ps, h->name, strlen(h->name), &pv)) {
        *present = pv != NULL;
        return pv && mg_csm_match(&h->m, pv, strlen(pv), false);
    }
    *present = false;
    for (size_t i = 0; i < in->n_headers; i++) {
        if (strcmp(in->headers[i].key, h->name) != 0)
            continue;
        *present = true;
        const char *v = in->headers[i].value;
        if (mg_csm_match(&h->m, v, strlen(v), false))
            return true;
    }
    return false;
}

/* Query parameter value by name ("a=1&b=2"); a key without '=' has value "". */
static bool query_match(const char *q, const struct mg_chdr *h)
{
    size_t nl = strlen(h->name);
    while (q && *q) {
        const char *amp = strchr(q, '&');
        size_t seg = amp ? (size_t)(amp - q) : strlen(q);
        const char *eq = memchr(q, '=', seg);
        size_t kl = eq ? (size_t)(eq - q) : seg;
        if (kl == nl && memcmp(q, h->name, nl) == 0) {
            const char *v = eq ? eq + 1 : q + seg;
            size_t vl = eq ? seg - kl - 1 : 0;
            if (mg_csm_match(&h->m, v, vl, false))
                return true;
        }
        q = amp ? amp + 1 : NULL;
    }
    return false;
}

static bool cmatch_ok(const struct mg_cmatch *c, const struct mg_virtual_service *vs,
                      const struct mg_route_input *in)
{
    const struct mg_http_match *m = c->cfg;
    if (!source_ok(m, vs, in))
        return false;
    if (!mg_csm_match(&c->uri, in->path, strlen(in->path), m->ignore_uri_case))
        return false;
    if (!mg_csm_match(&c->method, in->method, strlen(in->method), false))
        return false;
    if (c->authority.kind && !mg_csm_match(&c->authority, in->authority,
                                           in->authority ? strlen(in->authority) : 0, true))
        return false;
    if (c->scheme.kind && !mg_csm_match(&c->scheme, in->scheme, in->scheme ? strlen(in->scheme) : 0, true))
        return false;
    if (m->port && m->port != in->port)
        return false;
    bool present;
    for (size_t i = 0; i < c->n_headers; i++)
        if (!header_any(in, &c->headers[i], &present))
            return false;
    for (size_t i = 0; i < c->n_without; i++) {
        /* withoutHeaders: the header must not match (absent counts as not matching;
         * an empty matcher means "header absent") */
        bool hit = header_any(in, &c->without[i], &present);
        if (c->without[i].m.kind == MG_SM_NONE ? present : hit)
            return false;
    }
    for (size_t i = 0; i < c->n_query; i++)
        if (!query_match(in->query, &c->query[i]))
            return false;
    return true;
}

const struct mg_route *mg_router_match(const struct mg_vhost *vh, const struct mg_route_input *in)
{
    for (size_t i = 0; i < vh->n_routes; i++) {
        const struct mg_route *r = vh->routes[i];
        if (r->n_matches == 0)
            return r;
        for (size_t j = 0; j < r->n_matches; j++)
            if (cmatch_ok(&r->matches[j], r->vs, in))
                return r;
    }
    return NULL;
}

const struct mg_wdest *mg_route_pick(const struct mg_route *r, uint32_t rnd)
{
    if (r->n_dests == 0)
        return NULL;
    if (r->total_weight <= 0)
        return &r->dests[0];
    uint32_t x = rnd % (uint32_t)r->total_weight;
    for (size_t i = 0; i < r->n_dests; i++) {
        if (x < (uint32_t)r->dests[i].weight)
            return &r->dests[i];
        x -= (uint32_t)r->dests[i].weight;
    }
    return &r->dests[r->n_dests - 1];
}
