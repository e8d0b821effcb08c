/* inbound_tcp.c - protocol TCP inbound ports: authorization once per
 * connection in the TCP context (istio-semantics 1.9: ALLOW rules with
 * HTTP-only fields are dropped, DENY rules lose those fields), then a plain
 * byte splice to forwardTo. A denied connection is closed with no byte sent
 * to either side. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include "access.h"
#include "accesslog.h"
#include "conn.h"
#include "inbound.h"
#include "policy/attrs.h"
#include "policy/policy.h"
#include "request.h"
#include "router.h"
#include "snapshot.h"
#include "upstream.h"
#include "worker.h"

#define TCP_HIGH_WM (256 * 1024)

struct tcp {
    struct mg_conn *c;
    struct bufferevent *up;
    const struct mg_wdest *dest;
    bool down_eof, up_eof, connected, logged;
    const char *reason;                 /* refusal reason, NULL = none */
    const char *policy;                 /* deciding policy */
    char upstream_host[64];
    uint64_t rx, tx;
    int64_t start_ms, start_wall_us;
};

static void tcp_log(struct tcp *t)
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
    r.path = "-";
    r.protocol = "TCP";
    r.flags = t->reason ? "-" : (t->connected ? "-" : "UF");
    r.reason = t->reason;
    r.authz_policy = t->policy;
    r.dest = t->dest;
    r.bytes_received = t->rx;
    r.bytes_sent = t->tx;
    r.start_ms = t->start_ms;
    r.start_wall_us = t->start_wall_us;
    memcpy(r.upstream_host, t->upstream_host, sizeof(r.upstream_host));
    mg_accesslog_write(&r, &t->c->snap->cfg->mesh);
}

static void tcp_close(struct tcp *t)
{
    tcp_log(t);
    if (t->up) {
        bufferevent_free(t->up);
        t->up = NULL;
    }
    mg_conn_close(t->c);
}

static void check_done(struct tcp *t)
{
    if (!t->c->bev)
        return;
    bool down_flushed = evbuffer_get_length(bufferevent_get_output(t->c->bev)) == 0;
    bool up_flushed = !t->up || evbuffer_get_length(bufferevent_get_output(t->up)) == 0;
    if ((t->up_eof && down_flushed) || (t->down_eof && up_flushed))
        tcp_close(t);
}

/* Move what `from` read to `to`; pause `from` while `to` is over the mark. */
static size_t move(struct bufferevent *from, struct bufferevent *to)
{
    size_t n = evbuffer_get_length(bufferevent_get_input(from));
    evbuffer_add_buffer(bufferevent_get_output(to), bufferevent_get_input(from));
    if (evbuffer_get_length(bufferevent_get_output(to)) >= TCP_HIGH_WM) {
        bufferevent_disable(from, EV_READ);
        bufferevent_setwatermark(to, EV_WRITE, TCP_HIGH_WM / 2, 0);
    }
    return n;
}

static void down_read(struct bufferevent *bev, void *arg)
{
    struct tcp *t = arg;
    if (t->up && t->connected)
        t->rx += move(bev, t->up);
}

static void up_read(struct bufferevent *bev, void *arg)
{
    struct tcp *t = arg;
    if (t->c->bev)
        t->tx += move(bev, t->c->bev);
}

static void down_write(struct bufferevent *bev, void *arg)
{
    struct tcp *t = arg;
    mg_conn_ref(t->c);
    bufferevent_setwatermark(bev, EV_WRITE, 0, 0);
    if (t->up && !t->up_eof)
        bufferevent_enable(t->up, EV_READ);
    check_done(t);
    mg_conn_unref(t->c);
}

static void up_write(struct bufferevent *bev, void *arg)
{
    struct tcp *t = arg;
    mg_conn_ref(t->c);
    bufferevent_setwatermark(bev, EV_WRITE, 0, 0);
    if (t->c->bev && !t->down_eof && t->connected)
        bufferevent_enable(t->c->bev, EV_READ);
    check_done(t);
    mg_conn_unref(t->c);
}

static void down_event(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    struct tcp *t = arg;
    mg_conn_ref(t->c);
    if ((what & BEV_EVENT_EOF) && !(what & BEV_EVENT_ERROR) && t->up && t->connected) {
        t->down_eof = true;
        t->rx += move(t->c->bev, t->up);
        check_done(t);
    } else {
        tcp_close(t);
    }
    mg_conn_unref(t->c);
}

static void up_event(struct bufferevent *bev, short what, void *arg)
{
    struct tcp *t = arg;
    mg_conn_ref(t->c);
    if (what & BEV_EVENT_CONNECTED) {
        t->connected = true;
        bufferevent_set_timeouts(bev, NULL, NULL);
        bufferevent_set_timeouts(t->c->bev, NULL, NULL);
        t->rx += move(t->c->bev, t->up);        /* what the client sent meanwhile */
        bufferevent_enable(t->c->bev, EV_READ | EV_WRITE);
    } else if ((what & BEV_EVENT_EOF) && !(what & BEV_EVENT_ERROR) && t->c->bev) {
        t->up_eof = true;
        t->tx += move(bev, t->c->bev);
        check_done(t);
    } else {
        tcp_close(t);
    }
    mg_conn_unref(t->c);
}

static void tcp_free(struct mg_conn *c)
{
    struct tcp *t = c->codec;
    tcp_log(t);
    if (t->up)
        bufferevent_free(t->up);
    free(t);
    c->codec = NULL;
}

static bool tcp_drain(struct mg_conn *c)
{
    if (mg_snapshot_recycles(c->snap, c->w->snap)) {   /* the reload drain deadline (worker.c): its mTLS mode and */
        tcp_close(c->codec);            /* authorization came from configuration that is gone */
        return true;
    }
    return false;                       /* a splice ends when its peers end it (or at the deadline) */
}

/* Is the connection allowed? CUSTOM (ext_authz) has no TCP client here, so
 * a matching CUSTOM rule fails closed. */
static bool authorize(struct tcp *t)
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
    at.dest = c->local;                 /* port = the workload port (inbound.c) */
    at.sni = c->sni[0] ? c->sni : NULL;
    at.peer_principal = c->ssl && c->principal[0] ? c->principal : NULL;
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

void mg_inbound_tcp_start(struct mg_conn *c)
{
    struct tcp *t = mg_xcalloc(1, sizeof(*t));
    t->c = c;
    t->start_ms = mg_now_ms();
    struct timeval now;
    gettimeofday(&now, NULL);
    t->start_wall_us = (int64_t)now.tv_sec * 1000000 + now.tv_usec;
    c->codec = t;
    c->codec_free = tcp_free;
    c->codec_drain = tcp_drain;
    bufferevent_setcb(c->bev, down_read, down_write, down_event, t);
    if (!authorize(t)) {
        tcp_close(t);
        return;
    }
    const struct mg_srv *sv = c->port->srv[0];
    const struct mg_route *r = sv->routes.v[0].routes[0];
    t->dest = &r->dests[0];
    struct mg_cluster *cl = t->dest->cluster;
    const struct mg_endpoint *e = &cl->eps[0];
    snprintf(t->upstream_host, sizeof(t->upstream_host), "%s", e->label);
    t->up = bufferevent_socket_new(c->w->base, -1, BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
    if (!t->up) {
        tcp_close(t);
        return;
    }
    bufferevent_setcb(t->up, up_read, up_write, up_event, t);
    struct timeval tv = { (time_t)(cl->connect_timeout_ms / 1000),
                          (suseconds_t)((cl->connect_timeout_ms % 1000) * 1000) };
    bufferevent_set_timeouts(t->up, &tv, &tv);
    bufferevent_enable(t->up, EV_READ | EV_WRITE);
    bufferevent_disable(c->bev, EV_READ);       /* client bytes wait in the socket until connected */
    bufferevent_enable(c->bev, EV_WRITE);
    if (bufferevent_socket_connect(t->up, (const struct sockaddr *)&e->sa, (int)e->salen) < 0)
        tcp_close(t);
}
