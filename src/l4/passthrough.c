/* passthrough.c - SNI peek and TCP splice for PASSTHROUGH servers. The
 * ClientHello stays in the input buffer and is the first thing the
 * upstream receives, so the client's TLS session is end to end. */
#include "l4/l4.h"
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include "access/access.h"
#include "egress/egress.h"
#include "log/log.h"
#include "net/types.h"
#include "policy/policy.h"
#include "http/types.h"
#include "route/route.h"
#include "snapshot/snapshot.h"
#include "upstream/upstream.h"
#include "base/base.h"
#include "net/net.h"

#define PT_MAX_HELLO MG_TLS_PEEK_MAX

int mg_tls_sni_peek(const unsigned char *buf, size_t len, char *sni, size_t snilen)
{
    struct mg_tls_hello h;
    int rc = mg_tls_hello_peek(buf, len, MG_TLS_HELLO_ROUTE, &h);
    if (rc == MG_TLS_HELLO_MORE)
        return 0;
    /* a refused hello still leaves the name read before the flaw, which
     * the access log shows as the requested server name */
    size_t n = strlen(h.sni);
    if (n >= snilen) {
        if (snilen)
            sni[0] = '\0';
        return -1;
    }
    memcpy(sni, h.sni, n + 1);
    return rc == MG_TLS_HELLO_OK ? 1 : -1;
}

const struct mg_tls_route_c *mg_passthrough_route(const struct mg_port *p, const char *sni)
{
    size_t sl = strlen(sni);
    if (!sl)
        return NULL;
    const struct mg_srv *sv = mg_port_sni_server(p, sni);
    for (size_t i = 0; i < p->n_tls_routes; i++) {
        const struct mg_tls_route *tr = p->tls_routes[i]->cfg;
        if (!tr)
            continue;
        for (size_t m = 0; m < tr->n_match; m++) {
            const struct mg_tls_match *tm = &tr->match[m];
            if (tm->port && tm->port != p->number)
                continue;
            if (!mg_match_gateways(&tm->gateways, p->tls_routes[i]->vs, sv ? sv->gw : NULL))
                continue;
            for (size_t h = 0; h < tm->sni_hosts.n; h++)
                if (mg_host_match(tm->sni_hosts.v[h], sni, sl))
                    return p->tls_routes[i];
        }
    }
    return NULL;
}

const struct mg_tls_route_c *mg_tcp_route(const struct mg_port *p, const struct mg_srv *sv)
{
    const struct mg_gateway *gw = sv ? sv->gw : NULL;
    for (size_t i = 0; i < p->n_tls_routes; i++) {
        const struct mg_tls_route_c *rc = p->tls_routes[i];
        if (!rc->tcp || !gw || !mg_vs_binds(rc->vs, gw))
            continue;
        if (!rc->tcp->n_match)
            return rc;
        for (size_t m = 0; m < rc->tcp->n_match; m++) {
            const struct mg_l4_match *lm = &rc->tcp->match[m];
            if ((!lm->port || lm->port == p->number) && mg_match_gateways(&lm->gateways, rc->vs, gw))
                return rc;
        }
    }
    return NULL;
}

uint16_t mg_passthrough_registry_port(const struct mg_wdest *wd)
{
    if (wd && wd->cfg && wd->cfg->destination.port)
        return wd->cfg->destination.port;
    if (wd && wd->cluster)
        return wd->cluster->port;
    return 0;
}

struct pt {
    struct mg_splice s;                 /* first: the splice's callbacks take &t->s */
    const struct mg_tls_route_c *route;
    char authority[300];                /* a refused tcp route's destination host:port */
    struct mg_dns_req *dnsreq;          /* resolving a DNS endpoint */
    const struct mg_cluster *cl;        /* the cluster being resolved for */
    uint16_t dial_port;                 /* the DNS endpoint's port */
    bool resolving;
};

/* No route for the SNI (or the TCP server): the log says NR and why. */
static void pt_no_route(struct pt *t)
{
    if (t->route)
        return;
    t->s.no_route = true;
    if (!t->s.reason)
        t->s.reason = t->s.c->port->tcp ? "no_tcp_route" : "no_tls_route";
}

static void pt_close(struct pt *t)
{
    pt_no_route(t);
    mg_splice_close(&t->s);
}

/* Under REGISTRY_ONLY the SNI must name a registered host on the port the
 * route leads to (the destination's, else its cluster's, else any port of
 * the entry); otherwise the connection is closed, as Envoy closes a TLS
 * connection no filter chain takes. Logged and counted. */
static bool sni_registered(struct pt *t, const struct mg_wdest *wd)
{
    struct mg_conn *c = t->s.c;
    const struct mg_egress *eg = c->snap->egress;
    if (!mg_egress_registry_only(eg))
        return true;
    struct mg_egress_verdict v;
    if (mg_egress_check(eg, c->sni, mg_passthrough_registry_port(wd), MG_EGRESS_SNI, &v))
        return true;
    mg_metrics_egress_refused(c->w->metrics, mg_egress_entrance_name(MG_EGRESS_SNI),
                              mg_egress_reason_name(v.reason));
    t->s.reason = mg_egress_log_reason(MG_EGRESS_SNI, v.reason);
    mg_splice_close(&t->s);
    return false;
}

/* The same decision for a TCP server (plain, or TLS terminated here): the
 * tcp route's destination host on the port it leads to must be registered,
 * exactly as a Gateway HTTP route's destination is checked (phase_egress in
 * http/), so that a tcp and an http route to one host agree. Refused: the
 * connection closed, logged with the destination as authority, counted. */
static bool tcp_registered(struct pt *t, const struct mg_wdest *wd)
{
    struct mg_conn *c = t->s.c;
    const struct mg_egress *eg = c->snap->egress;
    if (!mg_egress_registry_only(eg) || !wd || !wd->cfg)
        return true;                    /* no destination: closed as no route below */
    const char *host = wd->cfg->destination.host;
    uint16_t port = mg_passthrough_registry_port(wd);
    struct mg_egress_verdict v;
    if (mg_egress_check(eg, host, port, MG_EGRESS_TCP, &v))
        return true;
    mg_metrics_egress_refused(c->w->metrics, mg_egress_entrance_name(MG_EGRESS_TCP),
                              mg_egress_reason_name(v.reason));
    if (port)
        snprintf(t->authority, sizeof(t->authority), "%s:%u", host ? host : "", port);
    else
        snprintf(t->authority, sizeof(t->authority), "%s", host ? host : "");
    t->s.authority = t->authority;
    t->s.reason = mg_egress_log_reason(MG_EGRESS_TCP, v.reason);
    mg_splice_close(&t->s);
    return false;
}

static void pt_dns_cb(int err, const struct mg_addr *addrs, size_t n, void *arg)
{
    struct pt *t = arg;
    struct mg_conn *c = t->s.c;
    t->dnsreq = NULL;
    t->resolving = false;
    mg_conn_ref(c);
    struct sockaddr_storage ss;
    socklen_t sl = 0;
    if (!err && n)
        sl = mg_addr_to_sockaddr(&addrs[0], t->dial_port, &ss);
    enum mg_egress_entrance en = c->port->tcp ? MG_EGRESS_TCP : MG_EGRESS_SNI;
    if (!sl) {
        t->s.reason = "dns_resolution_failure";
        mg_splice_close(&t->s);
    } else if (t->cl->external_dns &&
               mg_egress_resolved_denied(c->snap->egress, addrs[0].family, addrs[0].ip)) {
        /* a MESH_EXTERNAL DNS name answered into denyResolvedCidrs (DNS
         * rebinding), as for a Gateway HTTP route; cached answers too */
        mg_addr_ip_str(&addrs[0], t->s.upstream_host, sizeof(t->s.upstream_host));
        mg_metrics_egress_refused(c->w->metrics, mg_egress_entrance_name(en),
                                  mg_egress_reason_name(MG_EGRESS_RESOLVED_DENIED));
        t->s.reason = mg_egress_log_reason(en, MG_EGRESS_RESOLVED_DENIED);
        mg_splice_close(&t->s);
    } else {
        char ip[64], label[80];
        mg_addr_ip_str(&addrs[0], ip, sizeof(ip));
        snprintf(label, sizeof(label), addrs[0].family == AF_INET6 ? "[%s]:%u" : "%s:%u", ip,
                 t->dial_port);
        t->s.pp_len = mg_upstream_pp_header(t->cl, c, t->s.pp_hdr, sizeof(t->s.pp_hdr));
        mg_splice_connect_addr(&t->s, (struct sockaddr *)&ss, sl, label, t->cl->connect_timeout_ms);
    }
    mg_conn_unref(c);
}

static void connect_upstream(struct pt *t, const struct mg_tls_route_c *rc)
{
    struct mg_conn *c = t->s.c;
    const struct mg_wdest *wd = NULL;
    if (rc->n_dests) {
        uint32_t x = rc->total_weight > 0 ? mg_worker_rand(c->w) % (uint32_t)rc->total_weight : 0;
        for (size_t i = 0; i < rc->n_dests && !wd; i++) {
            if (x < (uint32_t)rc->dests[i].weight || i + 1 == rc->n_dests)
                wd = &rc->dests[i];
            else
                x -= (uint32_t)rc->dests[i].weight;
        }
    }
    t->s.dest = wd;
    struct mg_cluster *cl = wd ? wd->cluster : NULL;
    if (c->port->tcp ? !tcp_registered(t, wd) : !sni_registered(t, wd))
        return;
    if (!cl || !cl->n_eps) {
        pt_close(t);
        return;
    }
    struct mg_cluster_rt *rt = &cl->rt[c->w->id < cl->n_workers ? c->w->id : 0];
    size_t ep = mg_cluster_pick(cl, rt, c->w, 0);
    if (ep == SIZE_MAX) {               /* every endpoint ejected: Envoy's UH */
        t->s.reason = "no_healthy_upstream";
        pt_close(t);
        return;
    }
    const struct mg_endpoint *e = &cl->eps[ep];
    if (!e->resolved) {
        /* a DNS endpoint: resolved on the worker's cached resolver, never
         * blocking it; the client's bytes wait in the input buffer */
        snprintf(t->s.upstream_host, sizeof(t->s.upstream_host), "%s", e->label);
        t->cl = cl;
        t->dial_port = e->port;
        mg_io_disable(c->io, EV_READ);
        t->resolving = true;
        struct mg_dns_req *rq = mg_dns_resolve(c->w->resolver, e->address, AF_UNSPEC, pt_dns_cb, t);
        if (t->resolving)               /* not answered from the cache */
            t->dnsreq = rq;
        return;
    }
    mg_splice_connect(&t->s, cl, e);    /* the ClientHello waits in the input buffer */
}

static void peek_cb(struct mg_io *io, void *arg)
{
    struct pt *t = arg;
    struct mg_conn *c = t->s.c;
    mg_conn_ref(c);
    struct evbuffer *in = mg_io_get_input(io);
    size_t len = evbuffer_get_length(in);
    size_t want = len < PT_MAX_HELLO ? len : PT_MAX_HELLO;
    const unsigned char *p = evbuffer_pullup(in, (ev_ssize_t)want);
    int rc = mg_tls_sni_peek(p, want, c->sni, sizeof(c->sni));
    if (rc < 0 || (rc == 0 && want >= PT_MAX_HELLO)) {
        pt_close(t);
    } else if (rc > 0) {
        const struct mg_tls_route_c *route = mg_port_sni_server(c->port, c->sni)
                                             ? mg_passthrough_route(c->port, c->sni) : NULL;
        t->route = route;
        if (!route || !mg_splice_authorize(&t->s))
            pt_close(t);                /* no route for this SNI (as Envoy does) or refused */
        else
            connect_upstream(t, route);
    }
    mg_conn_unref(c);
}

static void peek_event_cb(struct mg_io *io, short what, void *arg)
{
    (void)io;
    (void)what;
    struct pt *t = arg;
    struct mg_conn *c = t->s.c;
    mg_conn_ref(c);
    pt_close(t);
    mg_conn_unref(c);
}

static void pt_free(struct mg_conn *c)
{
    struct pt *t = c->codec;
    if (t->dnsreq) {
        mg_dns_cancel(t->dnsreq);       /* its callback does not run */
        t->dnsreq = NULL;
    }
    pt_no_route(t);
    mg_splice_release(&t->s);
    free(t);
    c->codec = NULL;
}

/* still peeking: nothing in flight; or a tunnel accepted under an older
 * generation at the reload drain deadline (worker.c): it was authorized and
 * routed by configuration that is gone */
static bool pt_drain(struct mg_conn *c)
{
    struct pt *t = c->codec;
    pt_no_route(t);
    return mg_splice_drain(&t->s);
}

void mg_passthrough_start(struct mg_conn *c)
{
    struct pt *t = mg_xcalloc(1, sizeof(*t));
    mg_splice_init(&t->s, c);
    c->codec = t;
    c->codec_free = pt_free;
    c->codec_drain = pt_drain;
    if (c->port->tcp) {
        /* TCP server (or TLS terminated, the handshake done): no SNI to
         * peek, the first matching tcp route takes it */
        mg_io_setcb(c->io, NULL, NULL, peek_event_cb, t);
        t->route = mg_tcp_route(c->port, c->sni_srv ? c->sni_srv : c->port->n_srv ? c->port->srv[0] : NULL);
        if (!t->route || !mg_splice_authorize(&t->s))
            pt_close(t);
        else
            connect_upstream(t, t->route);
        return;
    }
    int64_t ms = c->snap->cfg->proxy.timeout_handshake_ms;
    struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000) };
    mg_io_setcb(c->io, peek_cb, NULL, peek_event_cb, t);
    mg_io_setwatermark(c->io, EV_READ, 0, PT_MAX_HELLO);
    mg_io_set_timeouts(c->io, ms > 0 ? &tv : NULL, NULL);
    mg_io_enable(c->io, EV_READ | EV_WRITE);
}
