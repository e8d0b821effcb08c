/* passthrough.c - SNI peek and TCP splice for PASSTHROUGH servers. The
 * ClientHello stays in the input buffer and is the first thing the
 * upstream receives, so the client's TLS session is end to end. */
#include "passthrough.h"
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include "access.h"
#include "accesslog.h"
#include "conn.h"
#include "policy/attrs.h"
#include "policy/policy.h"
#include "request.h"
#include "router.h"
#include "snapshot.h"
#include "upstream.h"
#include "util.h"
#include "worker.h"

#define PT_MAX_HELLO (16384 + 5)
#define PT_HIGH_WM (256 * 1024)

static unsigned get16(const unsigned char *p)
{
    return (unsigned)p[0] << 8 | p[1];
}

int mg_tls_sni_peek(const unsigned char *buf, size_t len, char *sni, size_t snilen)
{
    if (len >= 1 && buf[0] != 0x16)
        return -1;                      /* not a handshake record */
    if (len < 5)
        return 0;
    size_t rec = get16(buf + 3);
    if (buf[1] != 3 || rec < 4 || rec > 16384)
        return -1;
    if (len < 5 + rec)
        return 0;
    const unsigned char *p = buf + 5, *end = buf + 5 + rec;
    if (p[0] != 1)                      /* ClientHello */
        return -1;
    size_t hl = (size_t)p[1] << 16 | (size_t)p[2] << 8 | p[3];
    p += 4;
    if (hl > (size_t)(end - p))
        return -1;                      /* a ClientHello spread over records: refuse */
    end = p + hl;
    if (end - p < 34)
        return -1;
    p += 34;                            /* version, random */
    if (p >= end || (size_t)(end - p) < 1u + p[0])
        return -1;
    p += 1 + p[0];                      /* session id */
    if (end - p < 2 || (size_t)(end - p) < 2u + get16(p))
        return -1;
    p += 2 + get16(p);                  /* cipher suites */
    if (p >= end || (size_t)(end - p) < 1u + p[0])
        return -1;
    p += 1 + p[0];                      /* compression */
    sni[0] = '\0';
    if (p == end)
        return 1;                       /* no extensions */
    if (end - p < 2)
        return -1;
    size_t el = get16(p);
    p += 2;
    if (el > (size_t)(end - p))
        return -1;
    end = p + el;
    /* server_name as BoringSSL (Envoy's tls_inspector) and OpenSSL take it:
     * one extension holding exactly one host_name. A list with more names,
     * another name type or a second extension is refused, not read for its
     * first host_name: the backend may read a different entry than the one
     * routed on. */
    bool seen_sni = false;
    while (end - p >= 4) {
        unsigned type = get16(p), l = get16(p + 2);
        p += 4;
        if (l > (size_t)(end - p))
            return -1;
        if (type == 0) {
            if (seen_sni || l < 5 || get16(p) != l - 2 || p[2] != 0)
                return -1;
            size_t nl = get16(p + 3);
            const unsigned char *q = p + 5;
            if (nl == 0 || nl != l - 5u || nl >= snilen || memchr(q, '\0', nl))
                return -1;
            memcpy(sni, q, nl);
            sni[nl] = '\0';
            mg_lower(sni);
            seen_sni = true;
        }
        p += l;
    }
    return p == end ? 1 : -1;
}

const struct mg_tls_route_c *mg_passthrough_route(const struct mg_port *p, const char *sni)
{
    size_t sl = strlen(sni);
    if (!sl)
        return NULL;
    for (size_t i = 0; i < p->n_tls_routes; i++) {
        const struct mg_tls_route *tr = p->tls_routes[i]->cfg;
        for (size_t m = 0; m < tr->n_match; m++) {
            const struct mg_tls_match *tm = &tr->match[m];
            if (tm->port && tm->port != p->number)
                continue;
            for (size_t h = 0; h < tm->sni_hosts.n; h++)
                if (mg_host_match(tm->sni_hosts.v[h], sni, sl))
                    return p->tls_routes[i];
        }
    }
    return NULL;
}

struct pt {
    struct mg_conn *c;
    struct bufferevent *up;
    bool down_eof, up_eof;
    bool logged, connected;
    const struct mg_tls_route_c *route;
    const struct mg_wdest *dest;
    char upstream_host[64];
    uint64_t rx, tx;                    /* bytes from the client / to the client */
    int64_t start_ms, start_wall_us;
    const char *reason;                 /* refused by authorization: why (access log) */
    const char *policy;                 /* the policy that decided */
};

/* One access log line per tunnel, in the request line format with the HTTP
 * fields empty (as Envoy logs TCP proxy connections). */
static void pt_log(struct pt *t)
{
    if (t->logged)
        return;
    t->logged = true;
    struct mg_request r;
    memset(&r, 0, sizeof(r));
    r.conn = t->c;
    r.snap = t->c->snap;
    r.method = "-";
    r.target = "-";
    r.protocol = "TCP";
    r.flags = t->connected || t->reason ? "-" : (t->route ? "UF" : "NR");
    r.reason = t->reason ? t->reason : t->route ? NULL : t->c->port->tcp ? "no_tcp_route" : "no_tls_route";
    r.authz_policy = t->policy;
    r.dest = t->dest;
    r.bytes_received = t->rx;
    r.bytes_sent = t->tx;
    r.start_ms = t->start_ms;
    r.start_wall_us = t->start_wall_us;
    memcpy(r.upstream_host, t->upstream_host, sizeof(r.upstream_host));
    mg_accesslog_write(&r, &t->c->snap->cfg->mesh);
}

static void pt_close(struct pt *t)
{
    pt_log(t);
    if (t->up) {
        bufferevent_free(t->up);
        t->up = NULL;
    }
    mg_conn_close(t->c);
}

/* Both directions done, or one side gone with nothing left to deliver. */
static void pt_check_done(struct pt *t)
{
    if (!t->c->bev)
        return;
    bool down_flushed = evbuffer_get_length(bufferevent_get_output(t->c->bev)) == 0;
    bool up_flushed = !t->up || evbuffer_get_length(bufferevent_get_output(t->up)) == 0;
    if ((t->up_eof && down_flushed) || (t->down_eof && up_flushed))
        pt_close(t);
}

static size_t relay(struct bufferevent *from, struct bufferevent *to)
{
    size_t n = evbuffer_get_length(bufferevent_get_input(from));
    evbuffer_add_buffer(bufferevent_get_output(to), bufferevent_get_input(from));
    if (evbuffer_get_length(bufferevent_get_output(to)) >= PT_HIGH_WM) {
        bufferevent_disable(from, EV_READ);
        bufferevent_setwatermark(to, EV_WRITE, PT_HIGH_WM / 2, 0);
    }
    return n;
}

static void down_read_cb(struct bufferevent *bev, void *arg)
{
    struct pt *t = arg;
    if (t->up)
        t->rx += relay(bev, t->up);
}

static void up_read_cb(struct bufferevent *bev, void *arg)
{
    struct pt *t = arg;
    if (t->c->bev)
        t->tx += relay(bev, t->c->bev);
}

static void down_write_cb(struct bufferevent *bev, void *arg)
{
    struct pt *t = arg;
    mg_conn_ref(t->c);
    bufferevent_setwatermark(bev, EV_WRITE, 0, 0);
    if (t->up && !t->up_eof)
        bufferevent_enable(t->up, EV_READ);
    pt_check_done(t);
    mg_conn_unref(t->c);
}

static void up_write_cb(struct bufferevent *bev, void *arg)
{
    struct pt *t = arg;
    mg_conn_ref(t->c);
    bufferevent_setwatermark(bev, EV_WRITE, 0, 0);
    if (t->c->bev && !t->down_eof)
        bufferevent_enable(t->c->bev, EV_READ);
    pt_check_done(t);
    mg_conn_unref(t->c);
}

static void down_event_cb(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    struct pt *t = arg;
    mg_conn_ref(t->c);
    if ((what & BEV_EVENT_EOF) && t->up && !(what & BEV_EVENT_ERROR)) {
        t->down_eof = true;
        t->rx += relay(t->c->bev, t->up);
        pt_check_done(t);
    } else {
        pt_close(t);
    }
    mg_conn_unref(t->c);
}

static void up_event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct pt *t = arg;
    mg_conn_ref(t->c);
    if (what & BEV_EVENT_CONNECTED) {
        t->connected = true;
        bufferevent_set_timeouts(bev, NULL, NULL);
        bufferevent_set_timeouts(t->c->bev, NULL, NULL);
        bufferevent_setcb(t->c->bev, down_read_cb, down_write_cb, down_event_cb, t);
        t->rx += relay(t->c->bev, t->up);   /* the ClientHello first */
        bufferevent_enable(t->c->bev, EV_READ | EV_WRITE);
    } else if ((what & BEV_EVENT_EOF) && !(what & BEV_EVENT_ERROR) && t->c->bev) {
        t->up_eof = true;
        t->tx += relay(bev, t->c->bev);
        pt_check_done(t);
    } else {
        pt_close(t);
    }
    mg_conn_unref(t->c);
}

static void connect_upstream(struct pt *t, const struct mg_tls_route_c *rc)
{
    struct mg_conn *c = t->c;
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
    t->dest = wd;
    struct mg_cluster *cl = wd ? wd->cluster : NULL;
    if (!cl || !cl->n_eps) {
        pt_close(t);
        return;
    }
    struct mg_cluster_rt *rt = &cl->rt[c->w->id < cl->n_workers ? c->w->id : 0];
    const struct mg_endpoint *e = &cl->eps[rt->rr++ % cl->n_eps];
    snprintf(t->upstream_host, sizeof(t->upstream_host), "%s", e->label);
    if (!e->resolved) {                 /* DNS endpoints are not spliced (yet) */
        pt_close(t);
        return;
    }
    t->up = bufferevent_socket_new(c->w->base, -1, BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
    if (!t->up) {
        pt_close(t);
        return;
    }
    bufferevent_setcb(t->up, up_read_cb, up_write_cb, up_event_cb, t);
    struct timeval tv = { (time_t)(cl->connect_timeout_ms / 1000),
                          (suseconds_t)((cl->connect_timeout_ms % 1000) * 1000) };
    bufferevent_set_timeouts(t->up, &tv, &tv);
    bufferevent_enable(t->up, EV_READ | EV_WRITE);
    bufferevent_disable(c->bev, EV_READ);   /* keep the ClientHello until connected */
    if (bufferevent_socket_connect(t->up, (const struct sockaddr *)&e->sa, (int)e->salen) < 0)
        pt_close(t);
}

static bool pt_authorize(struct pt *t);

static void peek_cb(struct bufferevent *bev, void *arg)
{
    struct pt *t = arg;
    struct mg_conn *c = t->c;
    mg_conn_ref(c);
    struct evbuffer *in = bufferevent_get_input(bev);
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
        if (!route || !pt_authorize(t))
            pt_close(t);                /* no route for this SNI (as Envoy does) or refused */
        else
            connect_upstream(t, route);
    }
    mg_conn_unref(c);
}

static void peek_event_cb(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    (void)what;
    struct pt *t = arg;
    mg_conn_ref(t->c);
    pt_close(t);
    mg_conn_unref(t->c);
}

static void pt_free(struct mg_conn *c)
{
    struct pt *t = c->codec;
    pt_log(t);
    if (t->up)
        bufferevent_free(t->up);
    free(t);
    c->codec = NULL;
}

static bool pt_drain(struct mg_conn *c)
{
    struct pt *t = c->codec;
    /* still peeking: nothing in flight; or a tunnel accepted under an
     * older generation at the reload drain deadline (worker.c): it was
     * authorized and routed by configuration that is gone */
    if (!t->up || mg_snapshot_recycles(c->snap, c->w->snap)) {
        pt_close(t);
        return true;
    }
    return false;                       /* a tunnel ends when its peers end it (or at the drain deadline) */
}

/* The gateway's AuthorizationPolicies in the TCP context, once per
 * connection before any upstream is chosen (Istio's network RBAC ahead of
 * tcp_proxy on TCP and PASSTHROUGH servers): HTTP-only fields follow the
 * ALLOW-drops-the-rule / DENY-drops-the-field translation of the policy
 * engine; no client certificate here, connection.sni is the peeked SNI.
 * CUSTOM has no TCP client, so a matching CUSTOM rule fails closed. */
static bool pt_authorize(struct pt *t)
{
    struct mg_conn *c = t->c;
    const struct mg_policy_set *ps = c->snap->access ? mg_access_policies(c->snap->access) : NULL;
    if (!ps)
        return true;
    struct mg_attrs at;
    memset(&at, 0, sizeof(at));
    at.is_http = false;
    at.source = c->peer;
    at.remote = c->peer;
    at.dest = c->local;                 /* the port the gateway listens on */
    at.sni = c->sni[0] ? c->sni : NULL;
    struct mg_authz_result res;
    mg_authz_decide(ps, &at, &res);
    t->policy = res.decided_by.policy;
    if (res.decision == MG_AUTHZ_DENY) {
        t->reason = "rbac_policy";
        return false;
    }
    if (res.custom) {
        t->policy = res.custom_match.policy;
        t->reason = "ext_authz_tcp_unsupported";
        return false;
    }
    return true;
}

void mg_passthrough_start(struct mg_conn *c)
{
    struct pt *t = mg_xcalloc(1, sizeof(*t));
    t->c = c;
    t->start_ms = mg_now_ms();
    struct timeval now;
    gettimeofday(&now, NULL);
    t->start_wall_us = (int64_t)now.tv_sec * 1000000 + now.tv_usec;
    c->codec = t;
    c->codec_free = pt_free;
    c->codec_drain = pt_drain;
    if (c->port->tcp) {
        /* TCP server: no SNI to read, the first matching tcp route takes it */
        bufferevent_setcb(c->bev, NULL, NULL, peek_event_cb, t);
        t->route = c->port->n_tls_routes ? c->port->tls_routes[0] : NULL;
        if (!t->route || !pt_authorize(t))
            pt_close(t);
        else
            connect_upstream(t, t->route);
        return;
    }
    int64_t ms = c->snap->cfg->proxy.timeout_handshake_ms;
    struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000) };
    bufferevent_setcb(c->bev, peek_cb, NULL, peek_event_cb, t);
    bufferevent_setwatermark(c->bev, EV_READ, 0, PT_MAX_HELLO);
    bufferevent_set_timeouts(c->bev, ms > 0 ? &tv : NULL, NULL);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}
