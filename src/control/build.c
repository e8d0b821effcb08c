/* build.c - compile a loaded configuration into a generation the data
 * plane can use without further checks: every error is found here, on the
 * main thread, so a reload either yields a complete snapshot or nothing.
 * The builder is the one place that names every step: it compiles routes,
 * clusters, policies and inbound ports, and puts on each port the codec
 * entries net/ calls, so that net/ names no protocol. */
#include "control/control.h"
#include <stdlib.h>
#include <string.h>
#include "access/access.h"
#include "egress/egress.h"
#include "http/http.h"
#include "route/route.h"
#include "l4/l4.h"
#include "log/log.h"
#include "sidecar/sidecar.h"
#include "net/net.h"
#include "upstream/upstream.h"
#include "base/base.h"

static bool streq0(const char *a, const char *b)
{
    if (!a || !b)
        return a == b;
    return strcmp(a, b) == 0;
}

static struct mg_port *port_get(struct mg_snapshot *s, uint16_t number, size_t cap)
{
    for (size_t i = 0; i < s->n_ports; i++)
        if (s->ports[i].number == number)
            return &s->ports[i];
    if (s->n_ports == cap)
        return NULL;
    struct mg_port *p = &s->ports[s->n_ports++];
    memset(p, 0, sizeof(*p));
    p->number = number;
    return p;
}

static bool server_passthrough(const struct mg_server *sv)
{
    if (sv->protocol == MG_PROTO_TLS)
        return sv->tls.mode == MG_TLS_PASSTHROUGH;
    return sv->protocol == MG_PROTO_HTTPS && sv->tls.has_mode && sv->tls.mode == MG_TLS_PASSTHROUGH;
}

static bool server_terminates(const struct mg_server *sv)
{
    if (sv->protocol == MG_PROTO_HTTPS)
        return !server_passthrough(sv);
    if (sv->protocol == MG_PROTO_TLS)
        return sv->tls.mode != MG_TLS_PASSTHROUGH && sv->tls.mode != MG_TLS_AUTO_PASSTHROUGH;
    return false;
}

static bool server_is_http(const struct mg_server *sv)
{
    switch (sv->protocol) {
    case MG_PROTO_HTTP: case MG_PROTO_HTTPS: case MG_PROTO_HTTP2: case MG_PROTO_GRPC:
    case MG_PROTO_GRPC_WEB: case MG_PROTO_UNSET:
        return true;
    default:
        return false;
    }
}

/* Proxy.spec.egress.denyResolvedCidrs for the names the forward proxy's
 * absolute-form requests resolve (the dynamic cluster's hosts, DNS
 * entries' names and hostname endpoints): the address one resolved to
 * must lie outside the denied ranges, whatever the entry's location. */
static const char *forward_resolved_refused(struct mg_request *r, const struct sockaddr *sa)
{
    struct mg_addr a;
    if (!r->conn->port->forward || mg_addr_from_sockaddr(&a, sa) != 0 ||
        !mg_egress_resolved_denied(r->snap->egress, a.family, a.ip))
        return NULL;
    mg_metrics_egress_refused(r->conn->w->metrics, mg_egress_entrance_name(MG_EGRESS_FORWARD_HTTP),
                              mg_egress_reason_name(MG_EGRESS_RESOLVED_DENIED));
    return mg_egress_log_reason(MG_EGRESS_FORWARD_HTTP, MG_EGRESS_RESOLVED_DENIED);
}

/* The same ranges for the clusters of Gateway routes (HTTP/1.1 and HTTP/2
 * pools) whose destination is a MESH_EXTERNAL ServiceEntry resolved by DNS
 * (c->external_dns): its names are outside hosts, and an answer pointing
 * into the metadata service or the cluster's own ranges is the rebinding
 * this guards against. MESH_INTERNAL entries and STATIC addresses are
 * mesh members or written by the operator: a route may lead there on
 * purpose, so they are not checked. Refused as the forward proxy refuses
 * an absolute-form request: 403, egress_route_resolved_denied, counted. */
static const char *route_resolved_refused(struct mg_request *r, const struct sockaddr *sa)
{
    struct mg_addr a;
    if (mg_addr_from_sockaddr(&a, sa) != 0 || !mg_egress_resolved_denied(r->snap->egress, a.family, a.ip))
        return NULL;
    mg_metrics_egress_refused(r->conn->w->metrics, mg_egress_entrance_name(MG_EGRESS_ROUTE),
                              mg_egress_reason_name(MG_EGRESS_RESOLVED_DENIED));
    return mg_egress_log_reason(MG_EGRESS_ROUTE, MG_EGRESS_RESOLVED_DENIED);
}

static void cluster_guard(const struct mg_snapshot *s, struct mg_cluster *c)
{
    const struct mg_proxy *px = &s->cfg->proxy;
    if (px->egress_deny_cidrs.n && px->outbound_bind && *px->outbound_bind)
        c->resolved_refused = forward_resolved_refused;
}

static void cluster_add(struct mg_snapshot *s, struct mg_cluster *c)
{
    if (s->n_clusters == s->cap_clusters) {
        s->cap_clusters = s->cap_clusters ? s->cap_clusters * 2 : 8;
        s->clusters = mg_xrealloc(s->clusters, s->cap_clusters * sizeof(*s->clusters));
    }
    s->clusters[s->n_clusters++] = c;
}

static struct mg_cluster *cluster_get(struct mg_snapshot *s, const struct mg_destination *d,
                                      struct mg_diags *diags)
{
    for (size_t i = 0; i < s->n_clusters; i++) {
        struct mg_cluster *c = s->clusters[i];
        if (c && !c->dynamic && !c->forward && strcmp(c->host, d->host) == 0 && c->port == d->port &&
            streq0(c->subset, d->subset))
            return c;
    }
    struct mg_cluster *c = mg_cluster_build(s->cfg, d, s->n_workers, diags);
    if (!c)
        return NULL;
    if (c->external_dns && s->cfg->proxy.egress_deny_cidrs.n)
        c->resolved_refused = route_resolved_refused;
    if (s->n_clusters == s->cap_clusters) {
        s->cap_clusters = s->cap_clusters ? s->cap_clusters * 2 : 8;
        s->clusters = mg_xrealloc(s->clusters, s->cap_clusters * sizeof(*s->clusters));
    }
    s->clusters[s->n_clusters++] = c;
    return c;
}

static void vhost_add(struct mg_route_table *t, const char *host, struct mg_route *r)
{
    struct mg_vhost *vh = NULL;
    for (size_t i = 0; i < t->n; i++)
        if (strcmp(t->v[i].host, host) == 0)
            vh = &t->v[i];
    if (!vh) {
        t->v = mg_xrealloc(t->v, (t->n + 1) * sizeof(*t->v));
        vh = &t->v[t->n++];
        vh->host = mg_xstrdup(host);
        mg_lower(vh->host);
        vh->routes = NULL;
        vh->n_routes = 0;
    }
    for (size_t i = 0; i < vh->n_routes; i++)
        if (vh->routes[i] == r)
            return;
    vh->routes = mg_xrealloc(vh->routes, (vh->n_routes + 1) * sizeof(*vh->routes));
    vh->routes[vh->n_routes++] = r;
}

/* Routes are compiled once per VirtualService http entry and shared by every
 * server the VirtualService binds to. */
static int compile_routes(struct mg_snapshot *s, struct mg_diags *d)
{
    const struct mg_config *c = s->cfg;
    size_t total = 0;
    for (size_t i = 0; i < c->n_virtual_services; i++)
        total += c->virtual_services[i].n_http;
    s->routes = total ? mg_xcalloc(total, sizeof(*s->routes)) : NULL;
    int rc = 0;
    for (size_t i = 0; i < c->n_virtual_services; i++) {
        const struct mg_virtual_service *vs = &c->virtual_services[i];
        for (size_t j = 0; j < vs->n_http; j++) {
            struct mg_route *r = &s->routes[s->n_routes++];
            if (mg_route_compile(r, vs, &vs->http[j], d) < 0)
                rc = -1;
            r->name = mg_intern(r->name ? r->name : "-");
            const struct mg_http_route *h = &vs->http[j];
            r->n_dests = h->n_route;
            r->dests = h->n_route ? mg_xcalloc(h->n_route, sizeof(*r->dests)) : NULL;
            r->total_weight = 0;
            for (size_t k = 0; k < h->n_route; k++) {
                struct mg_wdest *wd = &r->dests[k];
                wd->cfg = &h->route[k];
                int w = h->route[k].weight;
                wd->weight = h->n_route == 1 ? 100 : (w < 0 ? 0 : w);
                r->total_weight += wd->weight;
                wd->cluster = cluster_get(s, &h->route[k].destination, d);
            }
            for (size_t k = 0; k < r->n_mirrors; k++)      /* mirrors (mg_route_compile) */
                r->mirrors[k].cluster = cluster_get(s, &h->mirrors[k].dest.destination, d);
        }
    }
    return rc;
}

/* The "ns/" part of a server host limits which VirtualService namespaces
 * may bind to it: "*" (or none) any, "." the Gateway's own, else that one. */
static bool host_ns_allows(const struct mg_srv *sv, size_t k, const struct mg_virtual_service *vs)
{
    const char *raw = k < sv->cfg->hosts.n ? sv->cfg->hosts.v[k] : "";
    const char *slash = strchr(raw, '/');
    if (!slash)
        return true;
    size_t nl = (size_t)(slash - raw);
    const char *vns = vs->meta.namespace_ ? vs->meta.namespace_ : "default";
    if (nl == 1 && raw[0] == '*')
        return true;
    if (nl == 1 && raw[0] == '.') {
        const char *gns = sv->gw->meta.namespace_ ? sv->gw->meta.namespace_ : "default";
        return strcmp(vns, gns) == 0;
    }
    return strlen(vns) == nl && strncmp(vns, raw, nl) == 0;
}

static void bind_routes(struct mg_snapshot *s, struct mg_srv *sv)
{
    const struct mg_config *c = s->cfg;
    size_t ri = 0;
    for (size_t i = 0; i < c->n_virtual_services; i++) {
        const struct mg_virtual_service *vs = &c->virtual_services[i];
        size_t base = ri;
        ri += vs->n_http;
        if (!mg_vs_binds(vs, sv->gw))
            continue;
        for (size_t h = 0; h < vs->hosts.n; h++) {
            const char *vh = vs->hosts.v[h];
            const char *slash = strchr(vh, '/');
            if (slash)
                vh = slash + 1;
            for (size_t k = 0; k < sv->n_hosts; k++) {
                if (!mg_host_overlap(sv->hosts[k], vh) || !host_ns_allows(sv, k, vs))
                    continue;
                /* the narrower of the two names becomes the virtual host */
                const char *name = mg_host_match(sv->hosts[k], vh, strlen(vh)) ? vh : sv->hosts[k];
                for (size_t j = 0; j < vs->n_http; j++)
                    vhost_add(&sv->routes, name, &s->routes[base + j]);
                break;
            }
        }
    }
}

/* VirtualService tls[] routes for a passthrough server: bound to its
 * gateway, with an sniHosts entry inside the server's hosts. */
static void add_l4_route(struct mg_snapshot *s, struct mg_port *p, const struct mg_virtual_service *vs,
                         const struct mg_tls_route *tr, const struct mg_tcp_route *tc,
                         const struct mg_route_dest *dests, size_t n, struct mg_diags *d)
{
    for (size_t k = 0; k < p->n_tls_routes; k++)
        if ((tr && p->tls_routes[k]->cfg == tr) || (tc && p->tls_routes[k]->tcp == tc))
            return;
    if (s->n_tls_routes == s->cap_tls_routes)
        return;
    struct mg_tls_route_c *rc = &s->tls_routes[s->n_tls_routes++];
    rc->cfg = tr;
    rc->tcp = tc;
    rc->vs = vs;
    rc->n_dests = n;
    rc->dests = n ? mg_xcalloc(n, sizeof(*rc->dests)) : NULL;
    for (size_t k = 0; k < n; k++) {
        int w = dests[k].weight;
        rc->dests[k].cfg = &dests[k];
        rc->dests[k].weight = n == 1 ? 100 : (w < 0 ? 0 : w);
        rc->total_weight += rc->dests[k].weight;
        rc->dests[k].cluster = cluster_get(s, &dests[k].destination, d);
    }
    p->tls_routes = mg_xrealloc(p->tls_routes, (p->n_tls_routes + 1) * sizeof(*p->tls_routes));
    p->tls_routes[p->n_tls_routes++] = rc;
}

/* VirtualService tcp[] routes for a TCP server (plain, or a TLS server that
 * terminates: Istio routes those by tcp routes too): bound to its gateway,
 * the first whose match (port and gateways, or none) fits the port serves
 * every connection. */
static void bind_tcp_routes(struct mg_snapshot *s, struct mg_srv *sv, struct mg_diags *d)
{
    const struct mg_config *c = s->cfg;
    for (size_t i = 0; i < c->n_virtual_services; i++) {
        const struct mg_virtual_service *vs = &c->virtual_services[i];
        if (!vs->n_tcp || !mg_vs_binds(vs, sv->gw))
            continue;
        for (size_t j = 0; j < vs->n_tcp; j++) {
            const struct mg_tcp_route *tc = &vs->tcp[j];
            bool hit = tc->n_match == 0;
            for (size_t m = 0; m < tc->n_match && !hit; m++)
                hit = (!tc->match[m].port || tc->match[m].port == sv->port->number) &&
                      mg_match_gateways(&tc->match[m].gateways, vs, sv->gw);
            if (hit)
                add_l4_route(s, sv->port, vs, NULL, tc, tc->route, tc->n_route, d);
        }
    }
}

static void bind_tls_routes(struct mg_snapshot *s, struct mg_srv *sv, struct mg_diags *d)
{
    const struct mg_config *c = s->cfg;
    struct mg_port *p = sv->port;
    if (sv->tcp) {
        bind_tcp_routes(s, sv, d);
        return;
    }
    for (size_t i = 0; i < c->n_virtual_services; i++) {
        const struct mg_virtual_service *vs = &c->virtual_services[i];
        if (!vs->n_tls || !mg_vs_binds(vs, sv->gw))
            continue;
        for (size_t j = 0; j < vs->n_tls; j++) {
            const struct mg_tls_route *tr = &vs->tls[j];
            bool hit = false;
            for (size_t m = 0; m < tr->n_match && !hit; m++)
                for (size_t h = 0; h < tr->match[m].sni_hosts.n && !hit &&
                     mg_match_gateways(&tr->match[m].gateways, vs, sv->gw); h++)
                    for (size_t k = 0; k < sv->n_hosts && !hit; k++)
                        hit = mg_host_overlap(sv->hosts[k], tr->match[m].sni_hosts.v[h]);
            if (hit)
                add_l4_route(s, p, vs, tr, NULL, tr->route, tr->n_route, d);
        }
    }
}

/* The parsed configuration model, kept alive as long as a generation
 * compiled from it is: a certificate rotation compiles it again instead of
 * reading the configuration files, which may hold edits nobody signalled. */
struct mg_model {
    atomic_int refs;
    struct mg_config *cfg;
};

static void model_unref(struct mg_model *m)
{
    if (!m || atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) != 1)
        return;
    mg_config_free(m->cfg);
    free(m);
}

/* The codec entries of every port: the only place that decides which code
 * a connection of a port runs, so that net/ names no protocol. */
static void set_codecs(struct mg_snapshot *s)
{
    for (size_t i = 0; i < s->n_ports; i++) {
        struct mg_port *p = &s->ports[i];
        p->accept = p->inbound ? mg_inbound_conn_start : NULL;
        p->start_h2 = NULL;
        if (p->forward) {
            p->start = mg_forward_start;                /* CONNECT tunnels to the egress registry */
            p->start_http = mg_h1_server_start;         /* absolute-form requests */
        } else if (p->passthrough || p->tcp) {
            p->start = mg_passthrough_start;            /* not HTTP: splice by SNI or tcp route */
        } else if (p->inbound && p->inbound->tcp) {
            p->start = mg_inbound_tcp_start;            /* sidecar TCP port: authorize, then splice */
        } else {
            p->start = mg_h1_server_start;
            p->start_h2 = mg_h2_server_start;
        }
    }
}

/* The last reference is gone (mg_snapshot_unref, any thread: nothing here
 * touches an event loop). */
static void snapshot_destroy(struct mg_snapshot *s)
{
    for (size_t i = 0; i < s->n_srvs; i++) {
        struct mg_srv *sv = &s->srvs[i];
        for (size_t h = 0; h < sv->n_hosts; h++)
            free(sv->hosts[h]);
        free(sv->hosts);
        if (sv->ctx)
            SSL_CTX_free(sv->ctx);
        free(sv->ciphers);
        free(sv->ocsp);
        free(sv->label);
        for (size_t v = 0; v < sv->routes.n; v++) {
            free(sv->routes.v[v].host);
            free(sv->routes.v[v].routes);
        }
        free(sv->routes.v);
    }
    free(s->srvs);
    free(s->pp_trusted);
    mg_tls_ticket_keys_free(s->ticket_keys);
    for (size_t i = 0; i < s->n_ports; i++) {
        free(s->ports[i].srv);
        free(s->ports[i].tls_routes);
    }
    for (size_t i = 0; i < s->n_tls_routes; i++)
        free(s->tls_routes[i].dests);
    free(s->tls_routes);
    free(s->ports);
    for (size_t i = 0; i < s->n_routes; i++)
        mg_route_free(&s->routes[i]);
    free(s->routes);
    for (size_t i = 0; i < s->n_clusters; i++)
        mg_cluster_free(s->clusters[i]);
    free(s->clusters);
    mg_access_free(s->access);
    mg_egress_free(s->egress);
    free(s->outbound_ip);
    for (size_t i = 0; i < s->n_fwd_routes; i++) {
        mg_route_free(&s->fwd_routes[i].route);
        free(s->fwd_routes[i].host);
    }
    free(s->fwd_routes);
    if (s->fwd_any) {
        mg_route_free(&s->fwd_any->route);
        free(s->fwd_any);
    }
    free(s->fwd_server);
    mg_inbound_free(s->inbound);
    mg_geoip_unref(s->geoip);
    free(s->spiffe_id);
    if (s->mesh_client)
        SSL_CTX_free(s->mesh_client);
    model_unref(s->model);
    free(s);
}

/* The forward proxy's own cluster for a destination: built like a Gateway
 * route's (whose diagnostics cluster_get reports once) but never shared
 * with one, so that its pooled connections all went through the forward
 * proxy's checks of resolved addresses (cluster_guard). */
static struct mg_cluster *forward_cluster(struct mg_snapshot *s, const struct mg_destination *dst,
                                          struct mg_diags *d)
{
    if (!cluster_get(s, dst, d))
        return NULL;
    struct mg_diags scratch = {0};
    struct mg_cluster *c = mg_cluster_build(s->cfg, dst, s->n_workers, &scratch);
    mg_diags_free(&scratch);
    if (!c)
        return NULL;
    c->forward = true;
    cluster_guard(s, c);
    cluster_add(s, c);
    return c;
}

/* One route per exact host and port of the ServiceEntries this Proxy sees,
 * so that an absolute-form request runs the request path (authorization,
 * the upstream pool, retries, the access log) to that entry's cluster.
 * Wildcard hosts and (under ALLOW_ANY) unregistered ones have no fixed
 * cluster: they take the one route to the dynamic cluster, s->fwd_any. */
static void compile_forward_routes(struct mg_snapshot *s, struct mg_diags *d)
{
    const struct mg_config *cfg = s->cfg;
    if (cfg->proxy.outbound_bind && *cfg->proxy.outbound_bind) {
        struct mg_cluster *cl = mg_cluster_build_dynamic(s->n_workers);
        cl->forward = true;
        cluster_guard(s, cl);
        cluster_add(s, cl);
        struct mg_fwd_route *fr = s->fwd_any = mg_xcalloc(1, sizeof(*fr));
        fr->host = NULL;
        fr->dest.destination.host = (char *)"*";
        fr->dest.weight = -1;
        fr->cfg.route = &fr->dest;
        fr->cfg.n_route = 1;
        fr->cfg.timeout_ms = -1;
        fr->route.cfg = &fr->cfg;
        fr->route.name = mg_intern("forward|dynamic");
        fr->route.dests = mg_xcalloc(1, sizeof(*fr->route.dests));
        fr->route.n_dests = 1;
        fr->route.total_weight = 100;
        fr->route.dests[0].cfg = &fr->dest;
        fr->route.dests[0].weight = 100;
        fr->route.dests[0].cluster = cl;
    }
    size_t n = 0;
    for (size_t i = 0; i < cfg->n_service_entries; i++)
        n += cfg->service_entries[i].hosts.n * cfg->service_entries[i].n_ports;
    if (!n)
        return;
    s->fwd_routes = mg_xcalloc(n, sizeof(*s->fwd_routes));
    for (size_t i = 0; i < cfg->n_service_entries; i++) {
        const struct mg_service_entry *se = &cfg->service_entries[i];
        if (!mg_egress_visible(cfg, se))
            continue;
        for (size_t h = 0; h < se->hosts.n; h++) {
            if (se->hosts.v[h][0] == '*' || strchr(se->hosts.v[h], '/'))
                continue;
            for (size_t k = 0; k < se->n_ports; k++) {
                char *host = mg_xstrdup(se->hosts.v[h]);
                mg_lower(host);
                if (mg_snapshot_fwd_route(s, host, se->ports[k].number)) {
                    free(host);         /* an earlier entry has it (first wins) */
                    continue;
                }
                struct mg_fwd_route *fr = &s->fwd_routes[s->n_fwd_routes++];
                fr->host = host;
                fr->port = se->ports[k].number;
                fr->dest.destination.host = fr->host;
                fr->dest.destination.port = fr->port;
                fr->dest.weight = -1;
                fr->cfg.route = &fr->dest;
                fr->cfg.n_route = 1;
                fr->cfg.timeout_ms = -1;
                fr->route.cfg = &fr->cfg;
                char name[300];
                snprintf(name, sizeof(name), "forward|%s:%u", fr->host, fr->port);
                fr->route.name = mg_intern(name);
                fr->route.dests = mg_xcalloc(1, sizeof(*fr->route.dests));
                fr->route.n_dests = 1;
                fr->route.total_weight = 100;
                fr->route.dests[0].cfg = &fr->dest;
                fr->route.dests[0].weight = 100;
                fr->route.dests[0].cluster = forward_cluster(s, &fr->dest.destination, d);
            }
        }
    }
}

/* PROXY protocol headers on the Gateway ports: every one when MeshConfig's
 * gatewayTopology.proxyProtocol is present (Istio), or those of
 * Proxy.spec.proxyProtocol (every one when it names no ports), whose
 * trustedSources are compiled here once. */
static void set_proxy_protocol(struct mg_snapshot *s, struct mg_diags *d)
{
    const struct mg_proxy_protocol *pp = &s->cfg->proxy.proxy_protocol;
    if (!pp->present && !s->cfg->mesh.proxy_protocol.present)
        return;
    if (pp->trusted_sources.n) {
        s->pp_trusted = mg_xcalloc(pp->trusted_sources.n, sizeof(*s->pp_trusted));
        for (size_t i = 0; i < pp->trusted_sources.n; i++)
            if (mg_cidr_parse(pp->trusted_sources.v[i], &s->pp_trusted[s->n_pp_trusted]) == 0)
                s->n_pp_trusted++;
    }
    s->pp_allow_without = pp->allow_without_header;
    bool all = s->cfg->mesh.proxy_protocol.present || pp->ports.n == 0;
    for (size_t i = 0; i < s->n_ports; i++) {
        bool on = all;
        for (size_t k = 0; !on && k < pp->ports.n; k++) {
            uint16_t n;
            on = mg_parse_port(pp->ports.v[k], false, &n) == 0 && n == s->ports[i].number;
        }
        s->ports[i].proxy_protocol = on;
    }
    for (size_t k = 0; k < pp->ports.n; k++) {
        uint16_t n;
        if (mg_parse_port(pp->ports.v[k], false, &n) == 0 && !mg_snapshot_port(s, n))
            mg_warning(d, pp->ports.pos[k], "proxyProtocol.ports: no Gateway server listens on port %u", n);
    }
}


/* Proxy.spec.outbound.tls: the forward proxy's port terminates TLS before
 * it reads a CONNECT or an absolute-form request. Its one server is built
 * as a Gateway server's (the same context, client-certificate modes,
 * session id context, file watch and rotation), for every SNI and none,
 * offering http/1.1 only in ALPN. A verified client certificate then
 * gives the connection its principal, which AuthorizationPolicy sees on
 * every CONNECT and absolute-form request of the connection. */
static void add_forward_tls(struct mg_snapshot *s, struct mg_port *p, struct mg_diags *d)
{
    const struct mg_proxy *px = &s->cfg->proxy;
    struct mg_server *sc = s->fwd_server = mg_xcalloc(1, sizeof(*sc));
    sc->port = p->number;
    sc->protocol = MG_PROTO_HTTPS;
    sc->tls = px->outbound_tls;         /* shallow: the model owns the strings */
    sc->pos = px->outbound_tls.pos;
    struct mg_srv *sv = &s->srvs[s->n_srvs++];
    sv->cfg = sc;
    sv->port = p;
    sv->tls = true;
    sv->alpn_http11_only = true;
    sv->label = mg_xasprintf("%s/%s/outbound", px->meta.namespace_ ? px->meta.namespace_ : "default",
                             px->meta.name ? px->meta.name : "proxy");
    sv->hosts = mg_xcalloc(1, sizeof(char *));
    sv->hosts[sv->n_hosts++] = mg_xstrdup("*");
    p->tls = true;
    p->srv = mg_xcalloc(1, sizeof(*p->srv));
    p->srv[p->n_srv++] = sv;
    char err[256];
    sv->ctx = mg_tls_server_ctx_new(s->cfg, sc, sv, err, sizeof(err));
    if (!sv->ctx)
        mg_error(d, sc->pos, "outbound.tls: %s", err);
    else
        mg_tls_set_sni(sv->ctx, p);
}

/* The forward proxy on Proxy.spec.outbound.bind ("ip:port"): a port of its
 * own, bound on that address, plain text or (outbound.tls) TLS. */
static void add_forward_port(struct mg_snapshot *s, struct mg_diags *d)
{
    const struct mg_proxy *px = &s->cfg->proxy;
    if (!px->outbound_bind || !*px->outbound_bind)
        return;
    char ip[64];
    uint16_t port = 0;
    struct mg_addr a;
    if (mg_split_host_port(px->outbound_bind, ip, sizeof(ip), &port) != 0 || !port ||
        mg_addr_parse_ip(&a, ip) != 0) {
        mg_error(d, px->pos, "outbound.bind \"%s\": want IP:PORT", px->outbound_bind);
        return;
    }
    for (size_t i = 0; i < s->n_ports; i++)
        if (s->ports[i].number == port) {
            mg_error(d, px->pos, "outbound.bind port %u is also a Gateway or inbound port", port);
            return;
        }
    struct mg_port *p = &s->ports[s->n_ports++];
    memset(p, 0, sizeof(*p));
    p->number = port;
    p->forward = true;
    s->outbound_ip = mg_xstrdup(ip);
    p->bind_ip = s->outbound_ip;
    if (px->outbound_tls.present)
        add_forward_tls(s, p, d);
    compile_forward_routes(s, d);
}

/* Compile m (the caller's reference passes to the snapshot, also on failure). */
static struct mg_snapshot *build(struct mg_model *m, int n_workers, uint64_t generation,
                                 uint64_t policy_gen, struct mg_diags *d)
{
    struct mg_config *cfg = m->cfg;
    struct mg_snapshot *s = mg_xcalloc(1, sizeof(*s));
    atomic_init(&s->refs, 1);
    s->destroy = snapshot_destroy;
    s->generation = generation;
    s->policy_gen = policy_gen;
    s->model = m;
    s->cfg = cfg;
    s->n_workers = n_workers > 0 ? n_workers : 1;
    size_t errors0 = d->errors;
    struct mg_pos nopos = { cfg->source ? mg_intern(cfg->source) : "config", 0, 0 };
    if (!cfg->proxy.present) {
        mg_error(d, nopos, "no Proxy resource: meshgate run needs exactly one");
        mg_snapshot_unref(s);
        return NULL;
    }
    s->spiffe_id = mg_config_spiffe_id(cfg);
    if (cfg->proxy.identity_cert_chain && cfg->proxy.identity_private_key &&
        cfg->proxy.identity_root_certs) {
        char err[256];
        s->mesh_client = mg_tls_mesh_client_ctx_new(cfg, err, sizeof(err));
    }
    /* Opened again for every generation (a rotation too: the file watch
     * sees a new database as it sees new certificates). A damaged file
     * fails the build, so the previous generation and its database keep
     * serving. */
    mg_config_check_geo(cfg, d);
    if (cfg->mesh.geoip_database && *cfg->mesh.geoip_database) {
        char err[512];
        s->geoip = mg_geoip_open(cfg->mesh.geoip_database, err, sizeof(err));
        if (!s->geoip)
            mg_error(d, cfg->mesh.pos, "%s", err);
    }
    size_t nsv = 0;
    for (size_t i = 0; i < cfg->n_gateways; i++)
        if (mg_selector_matches(&cfg->gateways[i].selector, &cfg->proxy.meta.labels))
            nsv += cfg->gateways[i].n_servers;
    /* one more for the forward proxy's TLS listener (add_forward_tls) */
    s->srvs = mg_xcalloc(nsv + 1, sizeof(*s->srvs));
    /* inbound.c appends its ports; the forward proxy takes one more */
    size_t nports = nsv + cfg->proxy.n_inbound + 1;
    s->ports = nports ? mg_xcalloc(nports, sizeof(*s->ports)) : NULL;
    compile_routes(s, d);
    size_t ntls = 0;
    for (size_t i = 0; i < cfg->n_virtual_services; i++)
        ntls += cfg->virtual_services[i].n_tls + cfg->virtual_services[i].n_tcp;
    s->cap_tls_routes = ntls * (nsv ? nsv : 1);
    s->tls_routes = s->cap_tls_routes ? mg_xcalloc(s->cap_tls_routes, sizeof(*s->tls_routes)) : NULL;
    uint16_t https_port = 0;
    int n_https_ports = 0;
    for (size_t i = 0; i < cfg->n_gateways; i++) {
        const struct mg_gateway *gw = &cfg->gateways[i];
        if (!mg_selector_matches(&gw->selector, &cfg->proxy.meta.labels))
            continue;
        for (size_t j = 0; j < gw->n_servers; j++) {
            const struct mg_server *sc = &gw->servers[j];
            if (!server_is_http(sc) && !server_terminates(sc) && !server_passthrough(sc) &&
                sc->protocol != MG_PROTO_TCP) {
                mg_warning(d, sc->pos, "server on port %u: protocol %s (passthrough/TCP) is not "
                           "served by this build; skipped", sc->port, mg_app_proto_name(sc->protocol));
                continue;
            }
            struct mg_srv *sv = &s->srvs[s->n_srvs++];
            sv->gw = gw;
            sv->cfg = sc;
            sv->tls = server_terminates(sc);
            sv->passthrough = server_passthrough(sc);
            /* protocol TLS terminated here (SIMPLE, MUTUAL, ISTIO_MUTUAL) is
             * TCP once decrypted: Istio routes it by tcp routes, as the
             * egress gateway's leg of sidecars' ISTIO_MUTUAL-wrapped TLS */
            sv->tcp = sc->protocol == MG_PROTO_TCP || (sc->protocol == MG_PROTO_TLS && sv->tls);
            sv->redirect = !sv->tls && sc->tls.present && sc->tls.https_redirect;
            sv->label = mg_xasprintf("%s/%s/%zu", gw->meta.namespace_ ? gw->meta.namespace_ : "default",
                                     gw->meta.name, j);
            sv->hosts = mg_xcalloc(sc->hosts.n ? sc->hosts.n : 1, sizeof(char *));
            for (size_t h = 0; h < sc->hosts.n; h++) {
                const char *v = sc->hosts.v[h];
                const char *slash = strchr(v, '/');
                sv->hosts[sv->n_hosts] = mg_xstrdup(slash ? slash + 1 : v);
                mg_lower(sv->hosts[sv->n_hosts++]);
            }
            struct mg_port *p = port_get(s, sc->port, nsv);
            if (p->n_srv && p->tls != sv->tls) {
                mg_error(d, sc->pos, "port %u mixes TLS and plain-text servers", sc->port);
                continue;
            }
            if (p->n_srv && (p->passthrough != sv->passthrough || p->tcp != sv->tcp)) {
                mg_error(d, sc->pos, "port %u mixes PASSTHROUGH or TCP servers with other servers (not supported)",
                         sc->port);
                continue;
            }
            p->tls = sv->tls;
            p->passthrough = sv->passthrough;
            p->tcp = sv->tcp;
            sv->port = p;
            p->srv = mg_xrealloc(p->srv, (p->n_srv + 1) * sizeof(*p->srv));
            p->srv[p->n_srv++] = sv;
            if (sv->tls) {
                char err[256];
                sv->ctx = mg_tls_server_ctx_new(cfg, sc, sv, err, sizeof(err));
                if (!sv->ctx)
                    mg_error(d, sc->tls.present ? sc->tls.pos : sc->pos, "server on port %u: %s",
                             sc->port, err);
                else
                    mg_tls_set_sni(sv->ctx, p);
                if (sc->protocol == MG_PROTO_HTTPS && sc->port != https_port) {
                    https_port = sc->port;
                    n_https_ports++;
                }
            }
            if (sv->passthrough || sv->tcp)
                bind_tls_routes(s, sv, d);
            else
                bind_routes(s, sv);
        }
    }
    s->https_port = (n_https_ports == 1 && https_port != 443) ? https_port : 0;
    set_proxy_protocol(s, d);           /* on the Gateway ports, the only ones so far */
    if (cfg->proxy.session_ticket_keys && *cfg->proxy.session_ticket_keys) {
        /* read with every generation (the file watch sees a new key file as
         * it sees new certificates); a broken file keeps the old keys */
        char err[512];
        s->ticket_keys = mg_tls_ticket_keys_load(cfg->proxy.session_ticket_keys, err, sizeof(err));
        if (!s->ticket_keys)
            mg_error(d, cfg->proxy.pos, "%s", err);
    }
    mg_inbound_build(s, d);
    s->access = mg_access_build(s, d);
    s->egress = mg_egress_build(cfg, d);
    add_forward_port(s, d);
    set_codecs(s);
    if (d->errors > errors0) {
        mg_snapshot_unref(s);
        return NULL;
    }
    return s;
}

struct mg_snapshot *mg_snapshot_build(struct mg_config *cfg, int n_workers, uint64_t generation,
                                      struct mg_diags *d)
{
    struct mg_model *m = mg_xcalloc(1, sizeof(*m));
    atomic_init(&m->refs, 1);
    m->cfg = cfg;
    return build(m, n_workers, generation, generation, d);
}

struct mg_snapshot *mg_snapshot_rotate(const struct mg_snapshot *cur, uint64_t generation,
                                       struct mg_diags *d)
{
    atomic_fetch_add_explicit(&cur->model->refs, 1, memory_order_relaxed);
    return build(cur->model, cur->n_workers, generation, cur->policy_gen, d);
}


static void file_cb(void (*fn)(const char *, void *), void *arg, const char *path)
{
    if (path && *path)
        fn(path, arg);
}

static void client_tls_files(const struct mg_client_tls *t, void (*fn)(const char *, void *), void *arg)
{
    if (!t->present)
        return;
    file_cb(fn, arg, t->client_certificate);
    file_cb(fn, arg, t->private_key);
    file_cb(fn, arg, t->ca_certificates);
    file_cb(fn, arg, t->ca_crl);
}

void mg_snapshot_files(const struct mg_snapshot *s, void (*fn)(const char *path, void *arg), void *arg)
{
    const struct mg_config *c = s->cfg;
    file_cb(fn, arg, c->proxy.identity_cert_chain);
    file_cb(fn, arg, c->proxy.identity_private_key);
    file_cb(fn, arg, c->proxy.identity_root_certs);
    file_cb(fn, arg, c->proxy.session_ticket_keys);
    for (size_t i = 0; i < c->proxy.n_credentials; i++) {
        file_cb(fn, arg, c->proxy.credentials[i].certificate);
        file_cb(fn, arg, c->proxy.credentials[i].private_key);
        file_cb(fn, arg, c->proxy.credentials[i].ca_certificates);
        file_cb(fn, arg, c->proxy.credentials[i].ocsp_staple);   /* a renewed staple applies */
    }
    for (size_t i = 0; i < s->n_srvs; i++) {
        const struct mg_server_tls *t = &s->srvs[i].cfg->tls;
        file_cb(fn, arg, t->server_certificate);
        file_cb(fn, arg, t->private_key);
        file_cb(fn, arg, t->ca_certificates);
        file_cb(fn, arg, t->ca_crl);    /* a new revocation applies without a signal */
    }
    for (size_t i = 0; i < c->n_destination_rules; i++) {
        const struct mg_destination_rule *dr = &c->destination_rules[i];
        client_tls_files(&dr->policy.base.tls, fn, arg);
        for (size_t k = 0; k < dr->policy.n_port_level; k++)
            client_tls_files(&dr->policy.port_level[k].policy.tls, fn, arg);
        for (size_t k = 0; k < dr->n_subsets; k++)
            client_tls_files(&dr->subsets[k].policy.base.tls, fn, arg);
    }
    file_cb(fn, arg, c->mesh.ca_certificates);
    file_cb(fn, arg, c->mesh.geoip_database);
}
