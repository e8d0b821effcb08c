/* splice.c - the TCP byte splice of TCP/PASSTHROUGH servers and TCP inbound
 * ports (l4/l4.h). */
#include "l4/l4.h"
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <string.h>
#include <sys/time.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <openssl/ssl.h>
#include "access/access.h"
#include "log/log.h"
#include "net/types.h"
#include "policy/policy.h"
#include "http/types.h"
#include "snapshot/snapshot.h"
#include "upstream/upstream.h"
#include "base/base.h"

#define SPLICE_HIGH_WM (256 * 1024)
_Static_assert(sizeof(((struct mg_splice *)0)->pp_hdr) >= MG_PP_OUT_MAX, "PROXY header room");
/* A direction's pipe starts at the kernel's default size (64 KiB) and grows
 * to this the first time it fills (a bulk transfer): fewer calls per byte.
 * Pipe pages count against the user's pipe-user-pages-soft (64 MiB by
 * default); past it the kernel refuses the growth and the pipe keeps its
 * size. Only a pipe at least half full when the source read finds no room
 * grows, so idle and interactive tunnels keep the small size. The pipe
 * is also what one direction holds in flight: kernel memory, none of ours. */
#define SPLICE_PIPE_MAX (1024 * 1024)
/* Rounds of read+write per wakeup before yielding to other connections. */
#define SPLICE_ROUNDS 16

/* One direction of a plain-socket splice: src -> pipe -> dst. */
struct splice_dir {
    struct mg_splice *s;
    int src, dst;
    int p[2];                           /* the pipe: [0] read end, [1] write end */
    size_t len, cap;                    /* bytes in the pipe, its size */
    uint64_t *count;                    /* s->rx or s->tx */
    bool *eof_flag;                     /* s->down_eof or s->up_eof */
    struct event *rd, *wr;              /* EV_READ on src, EV_WRITE on dst (persistent) */
    bool rd_on, wr_on;
    bool eof;                           /* src ended */
    bool full;                          /* the pipe took no more: stop reading until it drains */
    bool shut;                          /* dst shut for writing after the pipe drained */
    bool grown;                         /* growth to SPLICE_PIPE_MAX tried */
};

struct mg_splice_raw {
    struct splice_dir d[2];             /* [0] client -> upstream, [1] upstream -> client */
};

void mg_splice_init(struct mg_splice *s, struct mg_conn *c)
{
    struct timeval now;
    s->c = c;
    s->start_ms = mg_now_ms();
    gettimeofday(&now, NULL);
    s->start_wall_us = (int64_t)now.tv_sec * 1000000 + now.tv_usec;
}

/* istio_tcp_* labels: the cluster, the verified peer, mTLS, the reporter */
static void tcp_metric(struct mg_splice *s, bool open)
{
    struct mg_conn *c = s->c;
    if (!c->w)
        return;
    if (c->principal[0] && !c->principal_label)
        c->principal_label = mg_intern(c->peer_uri);  /* once per connection (a lock) */
    const char *dest = s->dest && s->dest->cluster ? s->dest->cluster->stat_name : NULL;
    bool mtls = c->ssl && SSL_get0_peer_certificate(c->ssl);
    bool inbound = c->snap && c->snap->cfg->proxy.mode == MG_MODE_SIDECAR;
    if (open)
        mg_metrics_tcp_open(c->w->metrics, dest, c->principal_label, mtls, inbound);
    else
        mg_metrics_tcp_close(c->w->metrics, dest, c->principal_label, mtls, inbound, s->tx, s->rx);
}

/* One access log line per splice, in the request line format with the HTTP
 * fields empty (as Envoy logs TCP proxy connections). */
static void splice_log(struct mg_splice *s)
{
    if (s->logged)
        return;
    s->logged = true;
    if (s->connected)
        tcp_metric(s, false);
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
    if (s->up_detail[0]) {
        r.upstream_reason = s->reason;
        r.upstream_detail = s->up_detail;
    }
    mg_accesslog_write(&r, &s->c->snap->cfg->mesh);
}

static void raw_free(struct mg_splice_raw *r)
{
    for (int i = 0; i < 2; i++) {
        struct splice_dir *d = &r->d[i];
        if (d->rd)
            event_free(d->rd);
        if (d->wr)
            event_free(d->wr);
        if (d->p[0] >= 0)
            close(d->p[0]);
        if (d->p[1] >= 0)
            close(d->p[1]);
    }
    free(r);
}

void mg_splice_release(struct mg_splice *s)
{
    splice_log(s);
    if (s->raw) {
        raw_free(s->raw);
        s->raw = NULL;
    }
    if (s->idle) {
        event_free(s->idle);
        s->idle = NULL;
    }
    if (s->up) {
        mg_io_free(s->up);
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
        .client = c->client,            /* a PROXY protocol header's client (remote.ip) */
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
    if (!s->c->io)
        return;
    bool down_flushed = evbuffer_get_length(mg_io_get_output(s->c->io)) == 0;
    bool up_flushed = !s->up || evbuffer_get_length(mg_io_get_output(s->up)) == 0;
    if ((s->up_eof && down_flushed) || (s->down_eof && up_flushed))
        mg_splice_close(s);
}

/* Move what `from` read to `to`; pause `from` while `to` is over the mark. */
static size_t relay(struct mg_io *from, struct mg_io *to)
{
    size_t n = evbuffer_get_length(mg_io_get_input(from));
    evbuffer_add_buffer(mg_io_get_output(to), mg_io_get_input(from));
    if (evbuffer_get_length(mg_io_get_output(to)) >= SPLICE_HIGH_WM) {
        mg_io_disable(from, EV_READ);
        mg_io_setwatermark(to, EV_WRITE, SPLICE_HIGH_WM / 2, 0);
    }
    return n;
}

static void down_read(struct mg_io *io, void *arg)
{
    struct mg_splice *s = arg;
    if (s->up && s->connected)
        s->rx += relay(io, s->up);
}

static void up_read(struct mg_io *io, void *arg)
{
    struct mg_splice *s = arg;
    if (s->c->io)
        s->tx += relay(io, s->c->io);
}

static void down_write(struct mg_io *io, void *arg)
{
    struct mg_splice *s = arg;
    mg_conn_ref(s->c);
    mg_io_setwatermark(io, EV_WRITE, 0, 0);
    if (s->up && !s->up_eof)
        mg_io_enable(s->up, EV_READ);
    check_done(s);
    mg_conn_unref(s->c);
}

static void up_write(struct mg_io *io, void *arg)
{
    struct mg_splice *s = arg;
    mg_conn_ref(s->c);
    mg_io_setwatermark(io, EV_WRITE, 0, 0);
    if (s->c->io && !s->down_eof && s->connected)
        mg_io_enable(s->c->io, EV_READ);
    check_done(s);
    mg_conn_unref(s->c);
}

static void down_event(struct mg_io *io, short what, void *arg)
{
    (void)io;
    struct mg_splice *s = arg;
    mg_conn_ref(s->c);
    if ((what & MG_IO_EOF) && !(what & MG_IO_ERROR) && s->up && s->connected) {
        s->down_eof = true;
        s->rx += relay(s->c->io, s->up);
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


/* ---- the plain-socket path: splice(2) through a pipe per direction ----
 * A bulk tunnel through user-space buffers costs a copy in and a copy out
 * per byte and a wakeup per batch each way. Here the data
 * goes socket -> pipe -> socket in the kernel, as much per call as the pipe
 * holds, and the pipe is the back-pressure: a full pipe stops reading the
 * source (the sender's TCP window then closes), so a stalled reader costs
 * at most one pipe of kernel memory per direction and nothing in ours. */

static void dir_set(struct event *ev, bool *on, bool want)
{
    if (want == *on)
        return;
    *on = want;
    if (want)
        event_add(ev, NULL);
    else
        event_del(ev);
}

/* Move what can move now. Returns false on a socket error (the splice must
 * close). A read that finds nothing while the pipe holds bytes is taken as
 * a full pipe (a socket's pages may fill the pipe's slots before its byte
 * size): reading stops until the writer drains some, which never loses a
 * wakeup since the read event is level-triggered. */
static bool dir_pump(struct splice_dir *d)
{
    for (int round = 0; round < SPLICE_ROUNDS; round++) {
        bool moved = false, more = false;
        if (!d->eof && !d->full) {
            size_t room = d->len < d->cap ? d->cap - d->len : 0;
            ssize_t n = room
                ? splice(d->src, NULL, d->p[1], NULL, room, SPLICE_F_MOVE | SPLICE_F_NONBLOCK)
                : (errno = EAGAIN, -1);
            if (n > 0) {
                d->len += (size_t)n;
                *d->count += (uint64_t)n;
                moved = true;
                more = (size_t)n == room;       /* less: the socket is empty for now */
            } else if (n == 0) {
                d->eof = true;
                *d->eof_flag = true;
            } else if (errno == EAGAIN) {
                if (d->len > 0)
                    d->full = true;
                if (d->full && !d->grown && d->len >= d->cap / 2) {
                    d->grown = true;
                    int sz = fcntl(d->p[1], F_SETPIPE_SZ, SPLICE_PIPE_MAX);
                    if (sz > 0 && (size_t)sz > d->cap) {
                        d->cap = (size_t)sz;
                        d->full = false;
                        moved = more = true;    /* read again into the room */
                    }
                }
            } else if (errno != EINTR) {
                return false;
            }
        }
        if (d->len > 0) {
            ssize_t m = splice(d->p[0], NULL, d->dst, NULL, d->len, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
            if (m > 0) {
                d->len -= (size_t)m;
                more = more || d->full;         /* room again for a source that was held */
                d->full = false;
                moved = true;
            } else if (m < 0 && errno != EAGAIN && errno != EINTR) {
                return false;
            }
        }
        /* Another round only when the source may hold more: a read that
         * came back short means it is empty, and the level-triggered read
         * event says when it is not (one empty read per wakeup saved). */
        if (!moved || !more)
            break;
    }
    return true;
}

/* Pump one direction and settle its events; half-close dst once src ended
 * and the pipe drained; close the splice when both directions are done. */
static void dir_step(struct splice_dir *d)
{
    struct mg_splice *s = d->s;
    if (!dir_pump(d)) {
        mg_splice_close(s);
        return;
    }
    dir_set(d->rd, &d->rd_on, !d->eof && !d->full);
    dir_set(d->wr, &d->wr_on, d->len > 0);
    if (d->eof && d->len == 0 && !d->shut) {
        d->shut = true;
        shutdown(d->dst, SHUT_WR);
    }
    if (s->raw->d[0].shut && s->raw->d[1].shut)
        mg_splice_close(s);
}

static void dir_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct splice_dir *d = arg;
    struct mg_conn *c = d->s->c;
    mg_conn_ref(c);
    if (!c->io)                         /* closed under the splice (worker stop): its fd is gone */
        mg_splice_release(d->s);
    else
        dir_step(d);
    mg_conn_unref(c);
}

/* Put what the mg_io path already holds into a direction's pipe
 * (small: a ClientHello, the CONNECT answer), after xn bytes of our own
 * (the greeting, a PROXY protocol header). False when it does not fit. */
static bool dir_preload(struct splice_dir *d, struct evbuffer *buf, const void *extra, size_t xn)
{
    size_t n = evbuffer_get_length(buf);
    if (xn + n == 0)
        return true;
    if (xn + n > d->cap)
        return false;
    if (xn && write(d->p[1], extra, xn) != (ssize_t)xn)
        return false;
    const unsigned char *data = n ? evbuffer_pullup(buf, -1) : NULL;
    if (n && (!data || write(d->p[1], data, n) != (ssize_t)n))
        return false;
    evbuffer_drain(buf, n);
    d->len = xn + n;
    return true;
}

/* Move a connected splice of two plain sockets to the pipe path. False when
 * it cannot (no pipe: out of descriptors): the mg_io path goes on. */
static bool raw_start(struct mg_splice *s)
{
    struct mg_conn *c = s->c;
    if (c->ssl || s->up_ssl || mg_io_getfd(c->io) < 0)
        return false;
    struct mg_splice_raw *r = calloc(1, sizeof(*r));
    if (!r)
        return false;
    int fds[2] = { mg_io_getfd(c->io), mg_io_getfd(s->up) };
    for (int i = 0; i < 2; i++) {
        struct splice_dir *d = &r->d[i];
        d->s = s;
        d->p[0] = d->p[1] = -1;
        d->src = fds[i];
        d->dst = fds[1 - i];
        d->count = i == 0 ? &s->rx : &s->tx;
        d->eof_flag = i == 0 ? &s->down_eof : &s->up_eof;
    }
    bool ok = true;
    for (int i = 0; i < 2 && ok; i++) {
        struct splice_dir *d = &r->d[i];
        ok = pipe2(d->p, O_NONBLOCK | O_CLOEXEC) == 0;
        if (!ok)
            break;
        int sz = fcntl(d->p[1], F_GETPIPE_SZ);
        d->cap = sz > 0 ? (size_t)sz : 65536;
        d->rd = event_new(c->w->base, d->src, EV_READ | EV_PERSIST, dir_cb, d);
        d->wr = event_new(c->w->base, d->dst, EV_WRITE | EV_PERSIST, dir_cb, d);
        ok = d->rd && d->wr;
    }
    /* The client's early bytes count as received, as on the other path;
     * the greeting and the PROXY header are ours and count as nothing. */
    size_t early = ok ? evbuffer_get_length(mg_io_get_input(c->io)) : 0;
    ok = ok && evbuffer_get_length(mg_io_get_output(s->up)) == 0 &&
         evbuffer_get_length(mg_io_get_input(s->up)) == 0 &&
         dir_preload(&r->d[0], mg_io_get_input(c->io), s->pp_hdr, s->pp_len) &&
         dir_preload(&r->d[1], mg_io_get_output(c->io), s->greeting,
                     s->greeting ? strlen(s->greeting) : 0);
    if (!ok) {
        /* what a failed preload wrote into the pipe was not drained from its
         * buffer: dropping the pipe loses nothing */
        raw_free(r);
        return false;
    }
    s->rx += early;
    mg_io_disable(c->io, EV_READ | EV_WRITE);
    mg_io_disable(s->up, EV_READ | EV_WRITE);
    mg_io_setcb(c->io, NULL, NULL, NULL, NULL);
    mg_io_setcb(s->up, NULL, NULL, NULL, NULL);
    s->raw = r;
    idle_arm(s);
    dir_step(&r->d[0]);
    if (s->raw)                         /* not closed by the first step */
        dir_step(&r->d[1]);
    return true;
}

static void up_event(struct mg_io *io, short what, void *arg)
{
    struct mg_splice *s = arg;
    mg_conn_ref(s->c);
    if (what & MG_IO_CONNECTED) {
        /* secure naming: a mesh peer whose identity the destination may not
         * have is refused before a byte of the client's goes to it */
        if (s->up_ssl && mg_upstream_splice_refused(s->od_cl, s->up_ssl, s->up_detail, sizeof(s->up_detail))) {
            atomic_fetch_add_explicit(&s->c->w->metrics->upstream_secure_naming_failed, 1,
                                      memory_order_relaxed);
            s->reason = "upstream_secure_naming";
            if (s->on_connect_fail) {   /* the owner answers (the forward proxy: 503) */
                mg_io_free(s->up);
                s->up = NULL;
                s->up_ssl = NULL;
                s->on_connect_fail(s);
            } else {
                mg_splice_close(s);
            }
            mg_conn_unref(s->c);
            return;
        }
        s->connected = true;
        tcp_metric(s, true);
        /* for TCP a connection made is the success, a failed one the error */
        mg_cluster_outcome(s->od_cl, s->od_ep, MG_OD_RESPONSE, 200);
        int one = 1;
        setsockopt(mg_io_getfd(io), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        /* libevent reads and writes at most 16 KiB per call by default: a
         * bulk tunnel then spends its time in callbacks, not in copying */
        mg_io_set_max_single_read(io, SPLICE_HIGH_WM / 2);
        mg_io_set_max_single_write(io, SPLICE_HIGH_WM / 2);
        mg_io_set_max_single_read(s->c->io, SPLICE_HIGH_WM / 2);
        mg_io_set_max_single_write(s->c->io, SPLICE_HIGH_WM / 2);
        mg_io_set_timeouts(io, NULL, NULL);
        mg_io_set_timeouts(s->c->io, NULL, NULL);
        if (raw_start(s)) {
            mg_conn_unref(s->c);
            return;
        }
        if (s->greeting)
            evbuffer_add(mg_io_get_output(s->c->io), s->greeting, strlen(s->greeting));
        if (s->pp_len)                  /* before the client's first byte */
            evbuffer_add(mg_io_get_output(io), s->pp_hdr, s->pp_len);
        idle_arm(s);
        s->rx += relay(s->c->io, s->up); /* what the client sent meanwhile (a ClientHello) */
        mg_io_enable(s->c->io, EV_READ | EV_WRITE);
    } else if ((what & MG_IO_EOF) && !(what & MG_IO_ERROR) && s->c->io) {
        s->up_eof = true;
        s->tx += relay(io, s->c->io);
        check_done(s);
    } else if (!s->connected && s->on_connect_fail) {
        mg_cluster_outcome(s->od_cl, s->od_ep, MG_OD_CONNECT_FAILED, 0);
        mg_io_free(s->up);              /* and its SSL */
        s->up = NULL;
        s->up_ssl = NULL;
        s->on_connect_fail(s);
    } else {
        if (!s->connected)
            mg_cluster_outcome(s->od_cl, s->od_ep, MG_OD_CONNECT_FAILED, 0);
        mg_splice_close(s);
    }
    mg_conn_unref(s->c);
}

static void connect_up(struct mg_splice *s, const struct sockaddr *sa, socklen_t salen,
                       const char *label, int64_t timeout_ms);

void mg_splice_connect(struct mg_splice *s, struct mg_cluster *cl, const struct mg_endpoint *e)
{
    s->od_cl = cl;
    s->od_ep = (size_t)(e - cl->eps);
    s->up = mg_upstream_splice_io(cl, s->od_ep, s->c->w, &s->up_ssl);
    /* a TLS upstream takes the header under its TLS (after the connect) */
    s->pp_len = s->up_ssl ? 0 : mg_upstream_pp_header(cl, s->c, s->pp_hdr, sizeof(s->pp_hdr));
    connect_up(s, (const struct sockaddr *)&e->sa, e->salen, e->label, cl->connect_timeout_ms);
}

void mg_splice_connect_addr(struct mg_splice *s, const struct sockaddr *sa, socklen_t salen,
                            const char *label, int64_t timeout_ms)
{
    s->up = mg_io_socket_new(s->c->w->base, -1, NULL, MG_IO_OPEN);
    s->up_ssl = NULL;
    connect_up(s, sa, salen, label, timeout_ms);
}

static void connect_up(struct mg_splice *s, const struct sockaddr *sa, socklen_t salen,
                       const char *label, int64_t timeout_ms)
{
    struct mg_conn *c = s->c;
    snprintf(s->upstream_host, sizeof(s->upstream_host), "%s", label);
    if (!s->up) {
        mg_splice_close(s);
        return;
    }
    mg_io_setcb(c->io, down_read, down_write, down_event, s);
    mg_io_setcb(s->up, up_read, up_write, up_event, s);
    struct timeval tv = { (time_t)(timeout_ms / 1000), (suseconds_t)((timeout_ms % 1000) * 1000) };
    mg_io_set_timeouts(s->up, &tv, &tv);
    mg_io_enable(s->up, EV_READ | EV_WRITE);
    mg_io_disable(c->io, EV_READ);      /* client bytes wait until connected */
    mg_io_enable(c->io, EV_WRITE);
    if (mg_io_connect(s->up, sa, (int)salen) < 0 ||
        (s->up_ssl && mg_upstream_splice_pp_tls(s->od_cl, c, s->up, s->up_ssl) < 0))
        mg_splice_close(s);
}
