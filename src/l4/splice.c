/* splice.c - the TCP byte splice of TCP/PASSTHROUGH servers and TCP inbound
 * ports (l4/l4.h). */
#include "l4/l4.h"
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include "access/access.h"
#include "log/log.h"
#include "net/types.h"
#include "policy/policy.h"
#include "http/types.h"
#include "snapshot/snapshot.h"
#include "upstream/upstream.h"
#include "base/base.h"

#define SPLICE_HIGH_WM (256 * 1024)

void mg_splice_init(struct mg_splice *s, struct mg_conn *c)
{
    struct timeval now;
    s->c = c;
    s->start_ms = mg_now_ms();
    gettimeofday(&now, NULL);
    s->start_wall_us = (int64_t)now.tv_sec * 1000000 + now.tv_usec;
}

/* One access log line per splice, in the request line format with the HTTP
 * fields empty (as Envoy logs TCP proxy connections). */
static void splice_log(struct mg_splice *s)
{
    if (s->logged)
        return;
    s->logged = true;
    struct mg_request r;
    memset(&r, 0, sizeof(r));
    r.conn = s->c;
    r.snap = s->c->snap;
    r.method = s->method ? s->method : "-";
    r.target = s->target ? s->target : "-";
    r.path = "-";
    r.authority = s->authority;
    r.status = s->status;
    r.protocol = s->method ? "HTTP/1.1" : "TCP";
    r.flags = s->connected ? "-" : s->no_route ? "NR" : s->reason ? "-" : "UF";
    r.reason = s->reason;
    r.authz_policy = s->policy;
    r.dest = s->dest;
    r.bytes_received = s->rx;
    r.bytes_sent = s->tx;
    r.start_ms = s->start_ms;
    r.start_wall_us = s->start_wall_us;
    memcpy(r.upstream_host, s->upstream_host, sizeof(r.upstream_host));
    mg_accesslog_write(&r, &s->c->snap->cfg->mesh);
}

void mg_splice_release(struct mg_splice *s)
{
    splice_log(s);
    if (s->idle) {
        event_free(s->idle);
        s->idle = NULL;
    }
    if (s->up) {
        bufferevent_free(s->up);
        s->up = NULL;
    }
}

void mg_splice_close(struct mg_splice *s)
{
    mg_splice_release(s);
    mg_conn_close(s->c);
}

bool mg_splice_drain(struct mg_splice *s)
{
    if (!s->up || mg_snapshot_recycles(s->c->snap, s->c->w->snap)) {
        mg_splice_close(s);
        return true;
    }
    return false;
}

bool mg_splice_authorize(struct mg_splice *s)
{
    struct mg_conn *c = s->c;
    const struct mg_policy_set *ps = c->snap->access ? mg_access_policies(c->snap->access) : NULL;
    if (!ps)
        return true;
    struct mg_access_conn ac = {
        .peer = c->peer,
        .local = c->local,              /* the listening port (inbound: the workload port) */
        .sni = c->sni[0] ? c->sni : NULL,
        .principal = c->ssl && c->principal[0] ? c->principal : NULL,
        .geoip = c->snap->geoip, .geo_cache = &c->geo,
    };
    struct mg_attrs at;
    mg_access_attrs(c->snap->cfg, &ac, NULL, &at);     /* TCP: no HTTP attributes */
    struct mg_authz_result res;
    mg_authz_decide(ps, &at, &res);
    s->policy = res.decided_by.policy;
    if (res.decision == MG_AUTHZ_DENY) {
        s->reason = "rbac_policy";
        return false;
    }
    if (res.custom) {
        s->policy = res.custom_match.policy;
        s->reason = "ext_authz_tcp_unsupported";
        return false;
    }
    return true;
}

/* Both directions done, or one side gone with nothing left to deliver. */
static void check_done(struct mg_splice *s)
{
    if (!s->c->bev)
        return;
    bool down_flushed = evbuffer_get_length(bufferevent_get_output(s->c->bev)) == 0;
    bool up_flushed = !s->up || evbuffer_get_length(bufferevent_get_output(s->up)) == 0;
    if ((s->up_eof && down_flushed) || (s->down_eof && up_flushed))
        mg_splice_close(s);
}

/* Move what `from` read to `to`; pause `from` while `to` is over the mark. */
static size_t relay(struct bufferevent *from, struct bufferevent *to)
{
    size_t n = evbuffer_get_length(bufferevent_get_input(from));
    evbuffer_add_buffer(bufferevent_get_output(to), bufferevent_get_input(from));
    if (evbuffer_get_length(bufferevent_get_output(to)) >= SPLICE_HIGH_WM) {
        bufferevent_disable(from, EV_READ);
        bufferevent_setwatermark(to, EV_WRITE, SPLICE_HIGH_WM / 2, 0);
    }
    return n;
}

static void down_read(struct bufferevent *bev, void *arg)
{
    struct mg_splice *s = arg;
    if (s->up && s->connected)
        s->rx += relay(bev, s->up);
}

static void up_read(struct bufferevent *bev, void *arg)
{
    struct mg_splice *s = arg;
    if (s->c->bev)
        s->tx += relay(bev, s->c->bev);
}

static void down_write(struct bufferevent *bev, void *arg)
{
    struct mg_splice *s = arg;
    mg_conn_ref(s->c);
    bufferevent_setwatermark(bev, EV_WRITE, 0, 0);
    if (s->up && !s->up_eof)
        bufferevent_enable(s->up, EV_READ);
    check_done(s);
    mg_conn_unref(s->c);
}

static void up_write(struct bufferevent *bev, void *arg)
{
    struct mg_splice *s = arg;
    mg_conn_ref(s->c);
    bufferevent_setwatermark(bev, EV_WRITE, 0, 0);
    if (s->c->bev && !s->down_eof && s->connected)
        bufferevent_enable(s->c->bev, EV_READ);
    check_done(s);
    mg_conn_unref(s->c);
}

static void down_event(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    struct mg_splice *s = arg;
    mg_conn_ref(s->c);
    if ((what & BEV_EVENT_EOF) && !(what & BEV_EVENT_ERROR) && s->up && s->connected) {
        s->down_eof = true;
        s->rx += relay(s->c->bev, s->up);
        check_done(s);
    } else {
        mg_splice_close(s);
    }
    mg_conn_unref(s->c);
}

/* A tunnel is idle when no byte moved either way for a whole period; one
 * timer per tunnel rather than read timeouts on each side, since a one-way
 * download keeps one side silent for as long as it runs. */
static void idle_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct mg_splice *s = arg;
    if (s->rx + s->tx != s->idle_seen) {
        s->idle_seen = s->rx + s->tx;
        return;
    }
    mg_conn_ref(s->c);
    if (!s->reason)
        s->reason = "idle_timeout";
    mg_splice_close(s);
    mg_conn_unref(s->c);
}

static void idle_arm(struct mg_splice *s)
{
    if (s->idle_ms <= 0 || s->idle)
        return;
    s->idle = event_new(s->c->w->base, -1, EV_PERSIST, idle_cb, s);
    struct timeval tv = { (time_t)(s->idle_ms / 1000), (suseconds_t)((s->idle_ms % 1000) * 1000) };
    if (s->idle)
        event_add(s->idle, &tv);
}

static void up_event(struct bufferevent *bev, short what, void *arg)
{
    struct mg_splice *s = arg;
    mg_conn_ref(s->c);
    if (what & BEV_EVENT_CONNECTED) {
        s->connected = true;
        int one = 1;
        setsockopt(bufferevent_getfd(bev), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        /* libevent reads and writes at most 16 KiB per call by default: a
         * bulk tunnel then spends its time in callbacks, not in copying */
        bufferevent_set_max_single_read(bev, SPLICE_HIGH_WM / 2);
        bufferevent_set_max_single_write(bev, SPLICE_HIGH_WM / 2);
        bufferevent_set_max_single_read(s->c->bev, SPLICE_HIGH_WM / 2);
        bufferevent_set_max_single_write(s->c->bev, SPLICE_HIGH_WM / 2);
        bufferevent_set_timeouts(bev, NULL, NULL);
        bufferevent_set_timeouts(s->c->bev, NULL, NULL);
        if (s->greeting)
            evbuffer_add(bufferevent_get_output(s->c->bev), s->greeting, strlen(s->greeting));
        idle_arm(s);
        s->rx += relay(s->c->bev, s->up);       /* what the client sent meanwhile (a ClientHello) */
        bufferevent_enable(s->c->bev, EV_READ | EV_WRITE);
    } else if ((what & BEV_EVENT_EOF) && !(what & BEV_EVENT_ERROR) && s->c->bev) {
        s->up_eof = true;
        s->tx += relay(bev, s->c->bev);
        check_done(s);
    } else if (!s->connected && s->on_connect_fail) {
        bufferevent_free(s->up);
        s->up = NULL;
        s->on_connect_fail(s);
    } else {
        mg_splice_close(s);
    }
    mg_conn_unref(s->c);
}

void mg_splice_connect(struct mg_splice *s, const struct mg_cluster *cl, const struct mg_endpoint *e)
{
    mg_splice_connect_addr(s, (const struct sockaddr *)&e->sa, e->salen, e->label,
                           cl->connect_timeout_ms);
}

void mg_splice_connect_addr(struct mg_splice *s, const struct sockaddr *sa, socklen_t salen,
                            const char *label, int64_t timeout_ms)
{
    struct mg_conn *c = s->c;
    snprintf(s->upstream_host, sizeof(s->upstream_host), "%s", label);
    s->up = bufferevent_socket_new(c->w->base, -1, BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
    if (!s->up) {
        mg_splice_close(s);
        return;
    }
    bufferevent_setcb(c->bev, down_read, down_write, down_event, s);
    bufferevent_setcb(s->up, up_read, up_write, up_event, s);
    struct timeval tv = { (time_t)(timeout_ms / 1000), (suseconds_t)((timeout_ms % 1000) * 1000) };
    bufferevent_set_timeouts(s->up, &tv, &tv);
    bufferevent_enable(s->up, EV_READ | EV_WRITE);
    bufferevent_disable(c->bev, EV_READ);       /* client bytes wait until connected */
    bufferevent_enable(c->bev, EV_WRITE);
    if (bufferevent_socket_connect(s->up, sa, (int)salen) < 0)
        mg_splice_close(s);
}
