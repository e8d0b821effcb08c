/* config_delegate.c - VirtualService delegation, resolved once every
 * document is read.
 *
 * A root VirtualService (one with hosts) may hand an http entry to another
 * VirtualService, its delegate, which has no hosts:
 *     http: [{match: [{uri: {prefix: /api/}}], delegate: {name: api, namespace: team}}]
 * Istio replaces that entry by the delegate's http routes, each merged with
 * it: every match of a delegate route must fit under (not conflict with)
 * some match of the root entry, and is then completed by that root match's
 * conditions; a route that fits under none is dropped with a warning. The
 * route keeps its own rewrite, timeout, retries, headers and direct
 * response, and takes the root entry's where it has none. A missing
 * delegate, or one not exported to the root's namespace, drops the entry.
 * Delegates are one level deep (a delegate's route cannot delegate again:
 * the reader refuses it). Afterwards the delegates keep no routes of their
 * own, so nothing downstream sees them. */
#include <stdlib.h>
#include <string.h>
#include "config/internal.h"

static char *dup_s(const char *s)
{
    return s ? mg_xstrdup(s) : NULL;
}

static void copy_slist(struct mg_slist *o, const struct mg_slist *in)
{
    *o = (struct mg_slist){ .n = in->n, .present = in->present };
    if (!in->n)
        return;
    o->v = mg_xcalloc(in->n, sizeof(*o->v));
    o->pos = mg_xcalloc(in->n, sizeof(*o->pos));
    for (size_t i = 0; i < in->n; i++) {
        o->v[i] = mg_xstrdup(in->v[i]);
        o->pos[i] = in->pos[i];
    }
}

/* A copy of a, then b's entries: a key of b replaces a's (Go maps.MergeCopy). */
static void merge_kvlist(struct mg_kvlist *o, const struct mg_kvlist *a, const struct mg_kvlist *b)
{
    *o = (struct mg_kvlist){ 0 };
    if (!a->n && !b->n)
        return;
    o->v = mg_xcalloc(a->n + b->n, sizeof(*o->v));
    for (size_t i = 0; i < a->n; i++)
        if (!mg_kvlist_get(b, a->v[i].key))
            o->v[o->n++] = (struct mg_kv){ mg_xstrdup(a->v[i].key), mg_xstrdup(a->v[i].value),
                                           a->v[i].pos };
    for (size_t i = 0; i < b->n; i++)
        o->v[o->n++] = (struct mg_kv){ mg_xstrdup(b->v[i].key), mg_xstrdup(b->v[i].value),
                                       b->v[i].pos };
}

static void copy_kvlist(struct mg_kvlist *o, const struct mg_kvlist *in)
{
    static const struct mg_kvlist none;
    merge_kvlist(o, &none, in);
}

static void copy_smatch(struct mg_smatch *o, const struct mg_smatch *in)
{
    *o = *in;
    o->value = dup_s(in->value);
}

static const struct mg_header_match *hm_find(const struct mg_header_match *h, size_t n,
                                             const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(h[i].name, name) == 0)
            return &h[i];
    return NULL;
}

/* root's header matches, then leaf's, a name of leaf replacing root's */
static struct mg_header_match *merge_hm(const struct mg_header_match *a, size_t na,
                                        const struct mg_header_match *b, size_t nb, size_t *n)
{
    struct mg_header_match *o = na + nb ? mg_xcalloc(na + nb, sizeof(*o)) : NULL;
    *n = 0;
    for (size_t i = 0; i < na; i++)
        if (!hm_find(b, nb, a[i].name)) {
            o[*n].name = mg_xstrdup(a[i].name);
            copy_smatch(&o[(*n)++].match, &a[i].match);
        }
    for (size_t i = 0; i < nb; i++) {
        o[*n].name = mg_xstrdup(b[i].name);
        copy_smatch(&o[(*n)++].match, &b[i].match);
    }
    return o;
}

static void copy_header_ops(struct mg_header_ops *o, const struct mg_header_ops *in)
{
    copy_kvlist(&o->set, &in->set);
    copy_kvlist(&o->add, &in->add);
    copy_slist(&o->remove, &in->remove);
}

static bool header_ops_empty(const struct mg_header_ops *h)
{
    return !h->set.n && !h->add.n && !h->remove.n;
}

/* ---- conflicts (Istio's hasConflict / stringMatchConflict) ---- */

static bool sm_conflict(const struct mg_smatch *root, const struct mg_smatch *leaf)
{
    if (root->kind == MG_SM_NONE || leaf->kind == MG_SM_NONE)
        return false;
    if (root->kind == MG_SM_REGEX || leaf->kind == MG_SM_REGEX)
        return true;                    /* a regex fits under nothing and nothing under it */
    if (root->kind == MG_SM_EXACT)
        return leaf->kind != MG_SM_EXACT || strcmp(leaf->value, root->value) != 0;
    /* root is a prefix: the leaf's exact value or prefix must start with it */
    return !mg_has_prefix(leaf->value, root->value);
}

static bool hm_conflict(const struct mg_header_match *root, size_t nr,
                        const struct mg_header_match *leaf, size_t nl)
{
    for (size_t i = 0; i < nl; i++) {
        const struct mg_header_match *r = hm_find(root, nr, leaf[i].name);
        if (r && sm_conflict(&r->match, &leaf[i].match))
            return true;
    }
    return false;
}

static bool match_conflict(const struct mg_http_match *root, const struct mg_http_match *leaf)
{
    if (sm_conflict(&root->uri, &leaf->uri) || sm_conflict(&root->scheme, &leaf->scheme) ||
        sm_conflict(&root->method, &leaf->method) ||
        sm_conflict(&root->authority, &leaf->authority))
        return true;
    if (hm_conflict(root->headers, root->n_headers, leaf->headers, leaf->n_headers) ||
        hm_conflict(root->without_headers, root->n_without_headers, leaf->without_headers,
                    leaf->n_without_headers) ||
        hm_conflict(root->query_params, root->n_query_params, leaf->query_params,
                    leaf->n_query_params))
        return true;
    if (root->ignore_uri_case != leaf->ignore_uri_case)
        return true;
    if (root->port && leaf->port && root->port != leaf->port)
        return true;
    if (root->source_namespace &&
        (!leaf->source_namespace || strcmp(root->source_namespace, leaf->source_namespace) != 0))
        return true;
    for (size_t i = 0; i < leaf->source_labels.n; i++) {
        const char *v = mg_kvlist_get(&root->source_labels, leaf->source_labels.v[i].key);
        if (v && strcmp(v, leaf->source_labels.v[i].value) != 0)
            return true;
    }
    /* the root's gateways must include every gateway of the leaf */
    if (root->gateways.n && leaf->gateways.n) {
        for (size_t i = 0; i < leaf->gateways.n; i++) {
            bool found = false;
            for (size_t j = 0; j < root->gateways.n && !found; j++)
                found = strcmp(root->gateways.v[j], leaf->gateways.v[i]) == 0;
            if (!found)
                return true;
        }
    }
    return false;
}

static char *join_names(const char *root, const char *leaf)
{
    if (!leaf || !*leaf)
        return dup_s(root);
    if (!root || !*root)
        return mg_xstrdup(leaf);
    return mg_xasprintf("%s-%s", root, leaf);
}

/* leaf completed by root (Istio's mergeHTTPMatchRequest) */
static void merge_match(struct mg_http_match *o, const struct mg_http_match *root,
                        const struct mg_http_match *leaf)
{
    memset(o, 0, sizeof(*o));
    o->name = join_names(root->name, leaf->name);
    copy_smatch(&o->uri, leaf->uri.kind ? &leaf->uri : &root->uri);
    copy_smatch(&o->scheme, leaf->scheme.kind ? &leaf->scheme : &root->scheme);
    copy_smatch(&o->method, leaf->method.kind ? &leaf->method : &root->method);
    copy_smatch(&o->authority, leaf->authority.kind ? &leaf->authority : &root->authority);
    o->headers = merge_hm(root->headers, root->n_headers, leaf->headers, leaf->n_headers,
                          &o->n_headers);
    o->without_headers = merge_hm(root->without_headers, root->n_without_headers,
                                  leaf->without_headers, leaf->n_without_headers,
                                  &o->n_without_headers);
    o->query_params = merge_hm(root->query_params, root->n_query_params, leaf->query_params,
                               leaf->n_query_params, &o->n_query_params);
    o->port = leaf->port ? leaf->port : root->port;
    o->ignore_uri_case = leaf->ignore_uri_case;
    copy_slist(&o->gateways, leaf->gateways.n ? &leaf->gateways : &root->gateways);
    merge_kvlist(&o->source_labels, &root->source_labels, &leaf->source_labels);
    o->source_namespace = dup_s(leaf->source_namespace ? leaf->source_namespace
                                                       : root->source_namespace);
    o->pos = leaf->pos;
}

static void copy_match(struct mg_http_match *o, const struct mg_http_match *in)
{
    static const struct mg_http_match none;
    merge_match(o, &none, in);
}

/* A destination host written short in the delegate names a service of the
 * delegate's namespace, not of the root's. */
static char *qualify_host(const char *h, const char *ns)
{
    if (!h || strchr(h, '.') || strchr(h, '*') || !ns)
        return dup_s(h);
    return mg_xasprintf("%s.%s.svc.cluster.local", h, ns);
}

static void copy_dests(struct mg_http_route *o, const struct mg_http_route *in, const char *ns)
{
    o->n_route = in->n_route;
    o->route = in->n_route ? mg_xcalloc(in->n_route, sizeof(*o->route)) : NULL;
    for (size_t i = 0; i < in->n_route; i++) {
        const struct mg_route_dest *s = &in->route[i];
        struct mg_route_dest *d = &o->route[i];
        *d = *s;
        d->destination.host = qualify_host(s->destination.host, ns);
        d->destination.subset = dup_s(s->destination.subset);
        copy_header_ops(&d->req_headers, &s->req_headers);
        copy_header_ops(&d->resp_headers, &s->resp_headers);
    }
}

static void copy_cors(struct mg_cors *o, const struct mg_cors *in)
{
    *o = *in;
    o->allow_origins = in->n_allow_origins ? mg_xcalloc(in->n_allow_origins, sizeof(*o->allow_origins))
                                           : NULL;
    for (size_t i = 0; i < in->n_allow_origins; i++) {
        o->allow_origins[i] = in->allow_origins[i];
        o->allow_origins[i].value = dup_s(in->allow_origins[i].value);
    }
    copy_slist(&o->allow_methods, &in->allow_methods);
    copy_slist(&o->allow_headers, &in->allow_headers);
    copy_slist(&o->expose_headers, &in->expose_headers);
}

static void copy_mirror(struct mg_mirror *o, const struct mg_mirror *in, const char *ns)
{
    *o = *in;
    o->dest.destination.host = in->dest.destination.host ? qualify_host(in->dest.destination.host, ns)
                                                         : NULL;
    o->dest.destination.subset = dup_s(in->dest.destination.subset);
    /* a mirror carries its destination only: no header operations to copy */
    memset(&o->dest.req_headers, 0, sizeof(o->dest.req_headers));
    memset(&o->dest.resp_headers, 0, sizeof(o->dest.resp_headers));
}

/* Istio's mergeHTTPRoute: fault, mirror(s) and corsPolicy are the
 * delegate route's when it has them, else the root entry's. */
static void merge_edge(struct mg_http_route *o, const struct mg_http_route *root,
                       const struct mg_http_route *leaf, const char *leaf_ns, const char *root_ns)
{
    o->fault = leaf->fault.present ? leaf->fault : root->fault;
    copy_cors(&o->cors, leaf->cors.present ? &leaf->cors : &root->cors);
    bool own = leaf->has_mirror || leaf->n_mirrors;
    const struct mg_http_route *m = own ? leaf : root;
    const char *ns = own ? leaf_ns : root_ns;
    o->has_mirror = m->has_mirror;
    if (m->has_mirror)
        copy_mirror(&o->mirror, &m->mirror, ns);
    o->mirror_percentage = m->mirror_percentage;
    o->mirror_percent = m->mirror_percent;
    o->n_mirrors = m->n_mirrors;
    o->mirrors = m->n_mirrors ? mg_xcalloc(m->n_mirrors, sizeof(*o->mirrors)) : NULL;
    for (size_t i = 0; i < m->n_mirrors; i++)
        copy_mirror(&o->mirrors[i], &m->mirrors[i], ns);
}

/* The merged matches of leaf under root: false when they conflict. */
static bool merge_matches(struct mg_http_route *o, const struct mg_http_route *root,
                          const struct mg_http_route *leaf)
{
    if (!root->n_match || !leaf->n_match) {
        const struct mg_http_route *from = root->n_match ? root : leaf;
        o->n_match = from->n_match;
        o->match = from->n_match ? mg_xcalloc(from->n_match, sizeof(*o->match)) : NULL;
        for (size_t i = 0; i < from->n_match; i++)
            copy_match(&o->match[i], &from->match[i]);
        return true;
    }
    o->match = mg_xcalloc(root->n_match * leaf->n_match, sizeof(*o->match));
    for (size_t i = 0; i < leaf->n_match; i++) {
        bool found = false;
        for (size_t j = 0; j < root->n_match; j++) {
            if (match_conflict(&root->match[j], &leaf->match[i]))
                continue;
            merge_match(&o->match[o->n_match++], &root->match[j], &leaf->match[i]);
            found = true;
        }
        if (!found)
            return false;
    }
    return true;
}

/* The delegate's route leaf merged with the root entry, into o (zeroed). */
static bool merge_route(struct mg_http_route *o, const struct mg_http_route *root,
                        const struct mg_http_route *leaf, const char *leaf_ns, const char *root_ns)
{
    if (!merge_matches(o, root, leaf)) {
        mg_cfg_free_http_route(o);
        memset(o, 0, sizeof(*o));
        return false;
    }
    o->name = join_names(root->name, leaf->name);
    copy_dests(o, leaf, leaf_ns);
    o->has_redirect = leaf->has_redirect;
    o->redirect = leaf->redirect;
    o->redirect.uri = dup_s(leaf->redirect.uri);
    o->redirect.authority = dup_s(leaf->redirect.authority);
    o->redirect.scheme = dup_s(leaf->redirect.scheme);
    /* a route without an action of its own takes the root entry's direct
     * response (Istio copies it whenever the delegate has none) */
    const struct mg_http_route *dr = leaf->has_direct_response || leaf->n_route ||
                                     leaf->has_redirect ? leaf : root;
    o->has_direct_response = dr->has_direct_response;
    o->direct_response.status = dr->direct_response.status;
    o->direct_response.body = dup_s(dr->direct_response.body);
    const struct mg_http_route *rw = leaf->has_rewrite ? leaf : root;
    o->has_rewrite = rw->has_rewrite;
    o->rewrite.uri = dup_s(rw->rewrite.uri);
    o->rewrite.authority = dup_s(rw->rewrite.authority);
    o->rewrite.regex_match = dup_s(rw->rewrite.regex_match);
    o->rewrite.regex_rewrite = dup_s(rw->rewrite.regex_rewrite);
    o->timeout_ms = leaf->timeout_ms >= 0 ? leaf->timeout_ms : root->timeout_ms;
    const struct mg_http_route *rt = leaf->has_retries ? leaf : root;
    o->has_retries = rt->has_retries;
    o->retries = rt->retries;
    o->retries.retry_on = dup_s(rt->retries.retry_on);
    const struct mg_http_route *hd = header_ops_empty(&leaf->req_headers) &&
                                     header_ops_empty(&leaf->resp_headers) ? root : leaf;
    copy_header_ops(&o->req_headers, &hd->req_headers);
    copy_header_ops(&o->resp_headers, &hd->resp_headers);
    merge_edge(o, root, leaf, leaf_ns, root_ns);
    o->pos = leaf->pos;
    return true;
}

static bool exported_to(const struct mg_virtual_service *vs, const char *ns)
{
    if (!vs->export_to.n)
        return true;                    /* the default: every namespace */
    for (size_t i = 0; i < vs->export_to.n; i++) {
        const char *e = vs->export_to.v[i];
        if (strcmp(e, "*") == 0 || strcmp(e, ns) == 0 ||
            (strcmp(e, ".") == 0 && strcmp(vs->meta.namespace_, ns) == 0))
            return true;
    }
    return false;
}

static const struct mg_virtual_service *find_delegate(const struct mg_config *c, const char *ns,
                                                      const char *name)
{
    for (size_t i = 0; i < c->n_virtual_services; i++) {
        const struct mg_virtual_service *vs = &c->virtual_services[i];
        if (!vs->hosts.n && vs->meta.name && strcmp(vs->meta.name, name) == 0 &&
            strcmp(vs->meta.namespace_, ns) == 0)
            return vs;
    }
    return NULL;
}

static void resolve_root(struct mg_config *c, struct mg_virtual_service *vs, struct mg_diags *d)
{
    size_t n = 0, cap = 0;
    struct mg_http_route *out = NULL;

    for (size_t i = 0; i < vs->n_http; i++) {
        struct mg_http_route *h = &vs->http[i];
        if (!h->delegate.present) {
            out = mg_cfg_grow(out, n, sizeof(*out));
            out[n++] = *h;              /* moved */
            memset(h, 0, sizeof(*h));
            continue;
        }
        const char *ns = h->delegate.namespace_ && *h->delegate.namespace_
                         ? h->delegate.namespace_ : vs->meta.namespace_;
        const char *name = h->delegate.name ? h->delegate.name : "";
        const struct mg_virtual_service *dv = find_delegate(c, ns, name);
        if (!dv) {
            mg_warning(d, h->delegate.pos, "delegate virtual service %s/%s of %s/%s not found; "
                       "http[%zu] routes nothing", ns, name, vs->meta.namespace_,
                       vs->meta.name, i);
            continue;
        }
        if (!exported_to(dv, vs->meta.namespace_)) {
            mg_warning(d, h->delegate.pos, "delegate virtual service %s/%s of %s/%s is not "
                       "exported to %s; http[%zu] routes nothing", ns, name,
                       vs->meta.namespace_, vs->meta.name, vs->meta.namespace_, i);
            continue;
        }
        for (size_t j = 0; j < dv->n_http; j++) {
            struct mg_http_route m = { 0 };
            if (!merge_route(&m, h, &dv->http[j], dv->meta.namespace_, vs->meta.namespace_)) {
                mg_warning(d, dv->http[j].pos, "delegate %s/%s http[%zu] conflicts with the "
                           "match of %s/%s http[%zu] (it must narrow it); the route is dropped",
                           ns, name, j, vs->meta.namespace_, vs->meta.name, i);
                continue;
            }
            out = mg_cfg_grow(out, n, sizeof(*out));
            out[n++] = m;
        }
    }
    (void)cap;
    for (size_t i = 0; i < vs->n_http; i++)
        mg_cfg_free_http_route(&vs->http[i]);
    free(vs->http);
    vs->http = out;
    vs->n_http = n;
}

void mg_cfg_resolve_delegates(struct mg_config *c, struct mg_diags *d)
{
    for (size_t i = 0; i < c->n_virtual_services; i++) {
        struct mg_virtual_service *vs = &c->virtual_services[i];
        bool root = false;
        for (size_t j = 0; j < vs->n_http && !root; j++)
            root = vs->http[j].delegate.present;
        if (vs->hosts.n && root)
            resolve_root(c, vs, d);
    }
    /* the delegates' routes now live in their roots only */
    for (size_t i = 0; i < c->n_virtual_services; i++) {
        struct mg_virtual_service *vs = &c->virtual_services[i];
        if (vs->hosts.n)
            continue;
        for (size_t j = 0; j < vs->n_http; j++)
            mg_cfg_free_http_route(&vs->http[j]);
        free(vs->http);
        vs->http = NULL;
        vs->n_http = 0;
    }
}
