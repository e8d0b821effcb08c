/* h1_server.c - HTTP/1.1 downstream codec: strict head parsing, keep-alive
 * and pipelining (one request at a time, in order), request bodies streamed
 * to the upstream, responses streamed back (re-framed for the client's
 * version), header / idle timeouts, local replies.
 *
 * Work that would re-enter the upstream from inside its own callbacks (the
 * next pipelined request) is deferred through `next_ev`. */
#include <event2/buffer.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "config/config.h"
#include "http/http.h"
#include "net/types.h"
#include "http1/http1.h"
#include "snapshot/snapshot.h"
#include "upstream/upstream.h"

#define H1_HIGH_WM (256 * 1024)

/* P_TUNNEL: an upgrade the upstream accepted (101): bytes both ways
 * between the client and the upstream connection until either ends. */
enum { P_HEAD, P_BODY, P_WAIT, P_CLOSING, P_TUNNEL };

/* A tunnel reads a side only while the other side's output is below this. */
#define TUN_HIGH_WM (256 * 1024)

struct h1s {
    struct mg_conn *c;
    /* The request (h->active) or the one just ended, whose memory stays
     * until the deferred next_cb: code still on the stack that ended it may
     * read it. An idle keep-alive connection holds none (1.2 KB less). */
    struct mg_request *r;
    bool active;
    int phase;
    int minor;
    bool keep_alive;
    bool close_after;
    bool resp_chunked;
    bool resp_nobody;
    bool continue_sent;
    bool saw_bytes;                     /* part of the next head has arrived */
    bool peer_eof;                      /* client half-closed: finish what it sent, then close */
    unsigned nreq;
    uint64_t remaining;
    struct mg_h1_chunked ck;
    struct event *timer;
    struct event *next_ev;
    struct evbuffer_cb_entry *stall_cb; /* watching the output drain (stall_watch) */
    size_t max_head;
    struct mg_io *up;                   /* P_TUNNEL: the upstream connection (upstream's) */
    bool up_flush;                      /* P_TUNNEL: the client ended; last bytes to the upstream */
};

static void h1_process(struct h1s *h);

/* The request's memory: the one kept since the last request, or new. */
static struct mg_request *req_new(struct h1s *h)
{
    if (!h->r)
        h->r = mg_xmalloc(sizeof(*h->r));
    return h->r;
}

/* The request is over: logged and its resources released (the memory
 * stays, see `r`). */
static void req_end(struct h1s *h)
{
    if (!h->active)
        return;
    mg_request_finish(h->r);
    mg_request_release(h->r);
    h->active = false;
}

static void h1_ops_abort(struct mg_request *r);

static struct evbuffer *out_of(struct h1s *h)
{
    return mg_io_get_output(h->c->io);
}

static void arm_timer(struct h1s *h, int64_t ms)
{
    if (ms <= 0) {
        evtimer_del(h->timer);
        return;
    }
    struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000) };
    evtimer_add(h->timer, &tv);
}

/* A response the client stops taking must not hold the connection, nor
 * the upstream one behind it, forever: while the output is backed up
 * (above the watermark, or a last response waiting to be flushed before
 * the close) every byte the socket takes re-arms the timer for the idle
 * timeout, and the timer firing cuts the exchange (timer_cb), as Envoy's
 * stream idle timeout does and the HTTP/2 codec does per stream. The
 * watch is an output callback only while backed up, so the usual path
 * pays nothing. */
static void out_drained_cb(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
    (void)buf;
    struct h1s *h = arg;
    if (info->n_deleted && (h->phase == P_WAIT || h->phase == P_CLOSING))
        arm_timer(h, h->c->snap->cfg->proxy.timeout_idle_ms);
}

static void stall_watch(struct h1s *h, bool on)
{
    if (!h->c->io) {
        h->stall_cb = NULL;             /* went with the transport's output */
        return;
    }
    if (on == (h->stall_cb != NULL))
        return;
    if (on) {
        h->stall_cb = evbuffer_add_cb(out_of(h), out_drained_cb, h);
        if (h->phase == P_WAIT || h->phase == P_CLOSING)
            arm_timer(h, h->c->snap->cfg->proxy.timeout_idle_ms);
        return;
    }
    evbuffer_remove_cb_entry(out_of(h), h->stall_cb);
    h->stall_cb = NULL;
    if (h->phase == P_WAIT || h->phase == P_CLOSING)
        evtimer_del(h->timer);
}

static void close_when_flushed(struct h1s *h)
{
    h->phase = P_CLOSING;
    evtimer_del(h->timer);
    if (!h->c->io || evbuffer_get_length(out_of(h)) == 0) {
        mg_conn_close_lingering(h->c);
    } else {
        mg_io_disable(h->c->io, EV_READ);
        stall_watch(h, true);           /* the last response must leave too */
    }
}

/* The request is over (response complete or refused): next one or close. */
static void end_request(struct h1s *h)
{
    stall_watch(h, false);
    req_end(h);
    if (h->close_after || h->c->closing ||
        (h->peer_eof && (!h->c->io || evbuffer_get_length(mg_io_get_input(h->c->io)) == 0))) {
        close_when_flushed(h);
        return;
    }
    h->phase = P_HEAD;
    h->saw_bytes = false;
    arm_timer(h, h->c->snap->cfg->proxy.timeout_idle_ms);
    mg_io_enable(h->c->io, EV_READ);
    event_active(h->next_ev, EV_TIMEOUT, 0);
}

/* "HTTP/1.1 100 Continue" and the end of that interim head. */
static void add_continue(struct evbuffer *o)
{
    char b[64];
    struct mg_h1_out w;
    mg_h1_out_init(&w, b, sizeof(b));
    mg_h1_put_status_line(&w, 1, 100);
    mg_h1_put_end(&w);
    evbuffer_add(o, b, w.len);
}

/* ---- down ops ---- */

static void op_continue(struct mg_request *r)
{
    struct h1s *h = r->codec;
    if (h->continue_sent || h->minor < 1 || !h->c->io)
        return;
    h->continue_sent = true;
    add_continue(out_of(h));
}

/* Response heads are assembled with plain copies into one contiguous region
 * of the output, a small body behind them: the transport then writes a
 * full TLS record straight from that chain, without joining pieces. */
#define H1_SMALL_BODY 16384

static void put_fields(struct mg_h1_out *w, const struct mg_kv *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        mg_h1_put_field(w, v[i].key, v[i].value);
}

/* A relayed response: framing and connection as op_resp_head decided. */
static void put_resp_head(const struct h1s *h, const struct mg_request *r, struct mg_h1_out *w)
{
    mg_h1_put_status_line(w, h->minor, r->status);
    put_fields(w, r->resp_h, r->n_resp_h);
    if (!h->resp_nobody) {
        if (r->resp_body == MG_BODY_LENGTH)
            mg_h1_put_content_length(w, r->resp_cl);
        else if (r->resp_body == MG_BODY_NONE)
            mg_h1_put_content_length(w, 0);
        else if (h->resp_chunked)
            mg_h1_put_field(w, "transfer-encoding", "chunked");
    }
    if (h->close_after)
        mg_h1_put_field(w, "connection", "close");
    else if (h->minor == 0)
        mg_h1_put_field(w, "connection", "keep-alive");
    mg_h1_put_end(w);
}

/* A local reply of bl body bytes (text/plain when not empty). */
static void put_local_head(const struct h1s *h, const struct mg_request *r, size_t bl,
                           struct mg_h1_out *w)
{
    mg_h1_put_status_line(w, h->minor < 0 ? 1 : h->minor, r->status);
    mg_h1_put_content_length(w, bl);
    if (bl)
        mg_h1_put_field(w, "content-type", "text/plain");
    put_fields(w, r->local_h, r->n_local_h);
    if (h->close_after)
        mg_h1_put_field(w, "connection", "close");
    mg_h1_put_end(w);
}

/* Append the head (a local reply of bl body bytes when `local`) in one
 * contiguous piece: measured by a first run of the same writer calls, then
 * written into space reserved at the end of the output, with `extra` more
 * bytes free behind it so that a small body can join it. */
static void add_head(struct h1s *h, const struct mg_request *r, bool local, size_t bl, size_t extra)
{
    struct evbuffer *o = out_of(h);
    struct mg_h1_out w;
    struct evbuffer_iovec v;
    mg_h1_out_init(&w, NULL, 0);
    if (local)
        put_local_head(h, r, bl, &w);
    else
        put_resp_head(h, r, &w);
    evbuffer_expand(o, w.len + extra);
    if (evbuffer_reserve_space(o, (ev_ssize_t)w.len, &v, 1) != 1)
        return;
    mg_h1_out_init(&w, v.iov_base, v.iov_len);
    if (local)
        put_local_head(h, r, bl, &w);
    else
        put_resp_head(h, r, &w);
    v.iov_len = w.len <= w.cap ? w.len : 0;
    evbuffer_commit_space(o, &v, 1);
}

/* ---- upgraded connections (WebSocket): a tunnel after the 101 ---- */

/* The exchange is over: the access log line (101, bytes both ways, the
 * tunnel's duration), the upstream connection closed, the client's after
 * what it still has to receive. */
static void tunnel_end(struct h1s *h, const char *reason)
{
    struct mg_request *r = h->r;
    if (h->phase != P_TUNNEL)
        return;
    if (reason && !r->reason)
        r->reason = reason;
    h->up = NULL;
    mg_upstream_detach(r, false);
    h->close_after = true;
    req_end(h);
    if (h->c->io)
        mg_io_enable(h->c->io, EV_WRITE);
    close_when_flushed(h);
}

/* Move what `from` has read to `to`; stop reading `from` while `to` is
 * backed up (its write callback resumes). Returns the bytes moved. */
static size_t tun_move(struct mg_io *from, struct mg_io *to)
{
    struct evbuffer *in = mg_io_get_input(from), *out = mg_io_get_output(to);
    size_t n = evbuffer_get_length(in);
    if (n)
        evbuffer_add_buffer(out, in);
    if (evbuffer_get_length(out) >= TUN_HIGH_WM) {
        mg_io_disable(from, EV_READ);
        mg_io_setwatermark(to, EV_WRITE, TUN_HIGH_WM / 2, 0);
    }
    return n;
}

static void tun_down_to_up(struct h1s *h)
{
    size_t n = tun_move(h->c->io, h->up);
    h->r->bytes_received += n;
    if (n)
        arm_timer(h, h->c->snap->cfg->proxy.timeout_idle_ms);
}

static void tun_up_to_down(struct h1s *h)
{
    size_t n = tun_move(h->up, h->c->io);
    h->r->bytes_sent += n;
    if (n)
        arm_timer(h, h->c->snap->cfg->proxy.timeout_idle_ms);
}

static void tun_up_read(struct mg_io *io, void *arg)
{
    (void)io;
    struct h1s *h = arg;
    mg_conn_ref(h->c);
    if (h->phase == P_TUNNEL && h->c->io)
        tun_up_to_down(h);
    mg_conn_unref(h->c);
}

static void tun_up_write(struct mg_io *io, void *arg)
{
    struct h1s *h = arg;
    mg_conn_ref(h->c);
    if (h->phase == P_TUNNEL && h->c->io) {
        if (h->up_flush && evbuffer_get_length(mg_io_get_output(io)) == 0) {
            tunnel_end(h, NULL);        /* the client's last bytes went out */
        } else if (!h->up_flush) {
            mg_io_setwatermark(io, EV_WRITE, 0, 0);
            mg_io_enable(h->c->io, EV_READ);
            tun_down_to_up(h);
        }
    }
    mg_conn_unref(h->c);
}

static void tun_up_event(struct mg_io *io, short what, void *arg)
{
    (void)io;
    struct h1s *h = arg;
    mg_conn_ref(h->c);
    if (h->phase == P_TUNNEL && (what & (MG_IO_EOF | MG_IO_ERROR))) {
        if (h->c->io)
            tun_up_to_down(h);          /* what it sent last */
        tunnel_end(h, (what & MG_IO_ERROR) ? "upstream_reset" : NULL);
    }
    mg_conn_unref(h->c);
}

/* The client ended its side: its last bytes to the upstream, then the end. */
static void tun_down_eof(struct h1s *h, bool error)
{
    if (!error && h->up) {
        tun_down_to_up(h);
        if (evbuffer_get_length(mg_io_get_output(h->up))) {
            h->up_flush = true;
            mg_io_disable(h->up, EV_READ);
            mg_io_setwatermark(h->up, EV_WRITE, 0, 0);
            return;                     /* tun_up_write ends it (or the idle timer) */
        }
    }
    tunnel_end(h, error ? "downstream_reset" : NULL);
}

/* The upstream accepted the upgrade: the 101 to the client, then relay. */
static void tunnel_start(struct h1s *h)
{
    struct mg_request *r = h->r;
    struct mg_io *ub = mg_upstream_tunnel(r);
    if (!ub || !h->c->io) {
        h1_ops_abort(r);
        return;
    }
    if (r->timer)
        evtimer_del(r->timer);          /* the route timeout ends with the upgrade, as Envoy's */
    struct mg_kv *rh = mg_arena_alloc(&r->arena, (r->n_resp_h + 2) * sizeof(*rh));
    memcpy(rh, r->resp_h, r->n_resp_h * sizeof(*rh));
    rh[r->n_resp_h] = (struct mg_kv){ .key = "connection", .value = "upgrade" };
    rh[r->n_resp_h + 1] = (struct mg_kv){ .key = "upgrade", .value = (char *)r->upgrade };
    r->resp_h = rh;
    r->n_resp_h += 2;
    h->resp_nobody = true;
    h->resp_chunked = false;
    h->close_after = false;
    add_head(h, r, false, 0, 0);
    h->phase = P_TUNNEL;
    h->up = ub;
    mg_io_setcb(ub, tun_up_read, tun_up_write, tun_up_event, h);
    mg_io_setwatermark(ub, EV_READ, 0, TUN_HIGH_WM);
    mg_io_setwatermark(h->c->io, EV_READ, 0, TUN_HIGH_WM);
    mg_io_enable(ub, EV_READ | EV_WRITE);
    mg_io_enable(h->c->io, EV_READ | EV_WRITE);
    arm_timer(h, h->c->snap->cfg->proxy.timeout_idle_ms);
    tun_up_to_down(h);                  /* bytes that came with the 101 */
    tun_down_to_up(h);                  /* and those the client sent early */
}

static void op_resp_head(struct mg_request *r)
{
    struct h1s *h = r->codec;
    if (!h->c->io)
        return;
    if (r->status == 101 && r->upgrade) {
        tunnel_start(h);
        return;
    }
    if (!r->body_done)
        h->close_after = true;          /* answered before the body was read */
    size_t body_hint = r->resp_body == MG_BODY_LENGTH && r->resp_cl <= H1_SMALL_BODY ? (size_t)r->resp_cl : 0;
    h->resp_chunked = false;
    h->resp_nobody = r->is_head || r->status == 204 || r->status == 304;
    if (!h->resp_nobody && r->resp_body != MG_BODY_LENGTH && r->resp_body != MG_BODY_NONE) {
        if (h->minor >= 1)
            h->resp_chunked = true;
        else
            h->close_after = true;      /* HTTP/1.0: the body ends with the connection */
    }
    add_head(h, r, false, 0, body_hint);
}

static void op_resp_data(struct mg_request *r, struct evbuffer *src, size_t n)
{
    struct h1s *h = r->codec;
    if (!h->c->io || h->resp_nobody) {
        evbuffer_drain(src, n);
        return;
    }
    struct evbuffer *o = out_of(h);
    if (h->resp_chunked) {
        char ch[MG_H1_CHUNK_HEADER_MAX];
        evbuffer_add(o, ch, mg_h1_chunk_header(n, ch));
    }
    struct evbuffer_iovec v;
    if (n <= H1_SMALL_BODY && evbuffer_reserve_space(o, (ev_ssize_t)n, &v, 1) == 1) {
        /* copy, so that it joins the head in one TLS record (see above) */
        v.iov_len = (size_t)evbuffer_remove(src, v.iov_base, n);
        evbuffer_commit_space(o, &v, 1);
    } else {
        evbuffer_remove_buffer(src, o, n);
    }
    if (h->resp_chunked)
        evbuffer_add(o, MG_H1_CHUNK_END, sizeof(MG_H1_CHUNK_END) - 1);
    r->bytes_sent += n;
}

static void op_resp_end(struct mg_request *r)
{
    struct h1s *h = r->codec;
    if (h->resp_chunked && h->c->io)
        evbuffer_add(out_of(h), MG_H1_LAST_CHUNK, sizeof(MG_H1_LAST_CHUNK) - 1);
    if (r->resp_close && !r->body_done)
        h->close_after = true;
    mg_upstream_detach(r, true);
    end_request(h);
}

static bool op_resp_full(struct mg_request *r)
{
    struct h1s *h = r->codec;
    if (!h->c->io)
        return false;
    if (evbuffer_get_length(out_of(h)) < H1_HIGH_WM)
        return false;
    mg_io_setwatermark(h->c->io, EV_WRITE, H1_HIGH_WM / 2, 0);
    stall_watch(h, true);
    return true;
}

static void relay_body(struct h1s *h);

static void op_body_resume(struct mg_request *r)
{
    struct h1s *h = r->codec;
    if (h->phase != P_BODY || !h->c->io)
        return;
    mg_io_enable(h->c->io, EV_READ);
    relay_body(h);
}

static void op_local_reply(struct mg_request *r, int status, const char *body, bool close)
{
    struct h1s *h = r->codec;
    mg_upstream_detach(r, false);
    if (r->timer)
        evtimer_del(r->timer);
    r->status = status;
    if (!h->c->io) {
        end_request(h);
        return;
    }
    if (close || !r->body_done || h->c->closing)
        h->close_after = true;
    size_t bl = body ? strlen(body) : 0;
    struct evbuffer *o = out_of(h);
    add_head(h, r, true, bl, bl <= H1_SMALL_BODY ? bl : 0);
    if (bl && !r->is_head) {
        evbuffer_add(o, body, bl);
        r->bytes_sent += bl;
    }
    end_request(h);
}

static void h1_ops_abort(struct mg_request *r)
{
    struct h1s *h = r->codec;
    mg_upstream_detach(r, false);
    h->close_after = true;
    req_end(h);                         /* r is h->r: one request at a time */
    mg_conn_close(h->c);
}

static const struct mg_down_ops h1_ops = {
    .send_continue = op_continue,
    .resp_head = op_resp_head,
    .resp_data = op_resp_data,
    .resp_end = op_resp_end,
    .resp_full = op_resp_full,
    .body_resume = op_body_resume,
    .local_reply = op_local_reply,
    .abort = h1_ops_abort,
};

/* ---- request body ---- */

static void body_finished(struct h1s *h)
{
    h->r->body_done = true;
    h->r->req_end_ms = mg_now_ms();
    mg_upstream_body_end(h->r);
    h->phase = P_WAIT;
    if (h->stall_cb)                    /* the response is already backed up */
        arm_timer(h, h->c->snap->cfg->proxy.timeout_idle_ms);
    else
        evtimer_del(h->timer);          /* the body timeout ends with the body */
}

static void relay_body(struct h1s *h)
{
    struct mg_request *r = h->r;
    struct evbuffer *in = mg_io_get_input(h->c->io);
    /* Bytes to move are progress: a body that stops arriving for the idle
     * timeout is ended (timer_cb), as Envoy's stream idle timeout does, so
     * a stalled upload cannot hold the connection and an upstream forever. */
    if (h->phase == P_BODY && h->active && evbuffer_get_length(in))
        arm_timer(h, h->c->snap->cfg->proxy.timeout_idle_ms);
    while (h->phase == P_BODY && h->active) {
        if (!mg_upstream_body_ready(r))
            return;                     /* upstream's write callback resumes us */
        size_t avail = evbuffer_get_length(in);
        if (r->body == MG_BODY_LENGTH) {
            if (h->remaining == 0) {
                body_finished(h);
                return;
            }
            if (!avail)
                return;
            size_t n = avail < h->remaining ? avail : (size_t)h->remaining;
            h->remaining -= n;
            r->bytes_received += n;
            mg_upstream_body_data(r, in, n);
        } else {
            if (!avail)
                return;
            size_t want = avail < 65536 ? avail : 65536;
            const char *p = (const char *)evbuffer_pullup(in, (ev_ssize_t)want);
            size_t n = 0;
            enum mg_chunk_step st = mg_h1_chunked_step(&h->ck, p, want, &n);
            if (st == MG_CHUNK_NEED_MORE && want < 65536)
                return;
            if (st == MG_CHUNK_FRAMING) {
                evbuffer_drain(in, n);
            } else if (st == MG_CHUNK_DATA) {
                r->bytes_received += n;
                mg_upstream_body_data(r, in, n);
            } else if (st == MG_CHUNK_DONE) {
                evbuffer_drain(in, n);
                body_finished(h);
                return;
            } else {
                /* malformed chunking: the upstream saw a partial body */
                r->flags = "DPE";
                if (r->resp_started) {
                    h1_ops_abort(r);
                } else {
                    r->body_done = false;
                    mg_request_reply(r, 400, "Bad Request", "malformed_body", true);
                }
                return;
            }
        }
    }
}

/* ---- head ---- */

static char *host_lower(struct mg_arena *a, const char *h, size_t n)
{
    /* strip a :port (not inside [v6]) and lower-case */
    size_t end = n;
    if (n && h[0] == '[') {
        const char *rb = memchr(h, ']', n);
        end = rb ? (size_t)(rb - h) + 1 : n;
    } else {
        const char *colon = memchr(h, ':', n);
        if (colon)
            end = (size_t)(colon - h);
    }
    char *s = mg_arena_strndup(a, h, end);
    mg_lower(s);
    return s;
}

/* Does the request's Upgrade header offer `proto` (a token of its list)? */
static bool upgrade_is(const struct mg_request *r, const char *proto)
{
    size_t pl = strlen(proto);
    for (size_t i = 0; i < r->n_h; i++) {
        if (strcmp(r->h[i].key, "upgrade") != 0)
            continue;
        const char *v = r->h[i].value;
        while (*v) {
            while (*v == ' ' || *v == '\t' || *v == ',')
                v++;
            const char *e = v;
            while (*e && *e != ',' && *e != ' ' && *e != '\t' && *e != '/')
                e++;
            if ((size_t)(e - v) == pl && mg_strncasecmp(v, proto, pl) == 0)
                return true;
            while (*e && *e != ',')
                e++;
            v = e;
        }
    }
    return false;
}

static void start_request(struct h1s *h, const char *buf, size_t hl)
{
    struct mg_request *r = req_new(h);
    mg_request_init(r, h->c, &h1_ops, h);
    h->active = true;
    h->continue_sent = false;
    h->nreq++;
    char *head = mg_arena_alloc(&r->arena, hl + 1);
    memcpy(head, buf, hl);
    head[hl] = '\0';
    evbuffer_drain(mg_io_get_input(h->c->io), hl);
    struct mg_h1_limits lim = { h->max_head, MG_H1_MAX_HEADERS };
    struct mg_h1_request *q = mg_arena_alloc(&r->arena, sizeof(*q));
    int status = 400;
    if (mg_h1_parse_request(head, hl, &lim, q, &status) != (ssize_t)hl) {
        h->minor = 1;
        mg_request_reply(r, status, "Bad Request", "malformed_request", true);
        return;
    }
    h->minor = q->minor;
    r->protocol = q->minor ? "HTTP/1.1" : "HTTP/1.0";
    r->method = mg_arena_strndup(&r->arena, q->method, q->method_len);
    r->target = mg_arena_strndup(&r->arena, q->target, q->target_len);
    r->authority = q->host ? mg_arena_strndup(&r->arena, q->host, q->host_len) : "";
    r->host = host_lower(&r->arena, r->authority, strlen(r->authority));
    r->is_head = strcmp(r->method, "HEAD") == 0;
    r->expect_continue = q->expect_continue;
    r->h = mg_arena_alloc(&r->arena, (q->n_headers ? q->n_headers : 1) * sizeof(*r->h));
    r->n_h = q->n_headers;
    for (size_t i = 0; i < q->n_headers; i++) {
        memset(&r->h[i], 0, sizeof(r->h[i]));
        r->h[i].key = mg_arena_strndup(&r->arena, q->headers[i].name, q->headers[i].name_len);
        mg_lower(r->h[i].key);
        r->h[i].value = mg_arena_strndup(&r->arena, q->headers[i].value, q->headers[i].value_len);
    }
    r->bytes_received = hl;
    h->keep_alive = q->keep_alive;
    /* a connection accepted under an older generation (a reload since)
     * serves this request on it and then closes, as Envoy drains the
     * connections of a changed listener: otherwise a keep-alive
     * connection kept the old policies, PeerAuthentication mode and
     * routes for as long as it stayed busy */
    h->close_after = !q->keep_alive || h->c->closing || mg_snapshot_recycles(h->c->snap, h->c->w->snap) ||
                     atomic_load_explicit(&h->c->w->draining, memory_order_relaxed);
    switch (q->body) {
    case MG_H1_BODY_LENGTH:
        r->body = q->content_length ? MG_BODY_LENGTH : MG_BODY_NONE;
        r->content_length = q->content_length;
        h->remaining = q->content_length;
        break;
    case MG_H1_BODY_CHUNKED:
        r->body = MG_BODY_CHUNKED;
        mg_h1_chunked_init(&h->ck);
        break;
    default:
        r->body = MG_BODY_NONE;
    }
    r->body_done = r->body == MG_BODY_NONE;
    if (r->body_done)
        r->req_end_ms = mg_now_ms();
    h->phase = r->body_done ? P_WAIT : P_BODY;
    if (q->upgrade && !q->connect && h->minor == 1 && r->body == MG_BODY_NONE &&
        strcmp(r->method, "GET") == 0 && upgrade_is(r, "websocket")) {
        /* WebSocket: routed, authenticated and authorized as any request;
         * a 101 from the upstream turns the connection into a tunnel */
        r->upgrade = "websocket";
        h->close_after = true;          /* no request follows on this connection */
    } else if (q->upgrade || q->connect) {
        /* other upgrades, and CONNECT, have no place on a gateway route */
        mg_request_reply(r, q->connect ? 405 : 501, "Not Implemented", "unsupported", true);
        return;
    }
    if (h->phase == P_BODY)
        arm_timer(h, h->c->snap->cfg->proxy.timeout_idle_ms);
    else
        evtimer_del(h->timer);
    mg_request_run(r);
}

static void h1_process(struct h1s *h)
{
    struct mg_conn *c = h->c;
    if (!c->io)
        return;
    struct evbuffer *in = mg_io_get_input(c->io);
    if (h->phase == P_BODY) {
        relay_body(h);
        return;
    }
    if (h->phase != P_HEAD)
        return;
    size_t avail = evbuffer_get_length(in);
    if (!avail)
        return;
    if (!h->saw_bytes) {
        h->saw_bytes = true;
        arm_timer(h, c->snap->cfg->proxy.timeout_request_headers_ms);
    }
    size_t want = avail < h->max_head + 1 ? avail : h->max_head + 1;
    const char *p = (const char *)evbuffer_pullup(in, (ev_ssize_t)want);
    struct mg_h1_limits lim = { h->max_head, MG_H1_MAX_HEADERS };
    struct mg_h1_request q;
    int status = 400;
    ssize_t hl = mg_h1_parse_request(p, want, &lim, &q, &status);
    if (hl == 0 && want > h->max_head) {
        hl = -1;
        status = 431;
    }
    if (hl == 0) {
        if (h->peer_eof)
            mg_conn_close(c);           /* a partial head and no more bytes coming */
        return;
    }
    if (hl < 0) {
        struct mg_request *r = req_new(h);
        mg_request_init(r, c, &h1_ops, h);
        h->active = true;
        h->minor = 1;
        r->bytes_received = want;
        mg_request_reply(r, status, status == 431 ? "Request Header Fields Too Large" : "Bad Request",
                         status == 431 ? "headers_too_large" : "malformed_request", true);
        return;
    }
    start_request(h, p, (size_t)hl);
}

static void next_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct h1s *h = arg;
    mg_conn_ref(h->c);
    h1_process(h);
    if (!h->active && h->r) {           /* between requests: nothing reads it now */
        free(h->r);
        h->r = NULL;
    }
    mg_conn_unref(h->c);
}

static void read_cb(struct mg_io *io, void *arg)
{
    (void)io;
    struct h1s *h = arg;
    mg_conn_ref(h->c);
    if (h->phase == P_TUNNEL) {
        if (h->up && !h->up_flush)
            tun_down_to_up(h);
    } else {
        h1_process(h);
    }
    mg_conn_unref(h->c);
}

static void write_cb(struct mg_io *io, void *arg)
{
    struct h1s *h = arg;
    mg_conn_ref(h->c);
    if (h->phase == P_TUNNEL) {
        if (h->up && !h->up_flush) {
            mg_io_setwatermark(io, EV_WRITE, 0, 0);
            mg_io_enable(h->up, EV_READ);
            tun_up_to_down(h);
        }
    } else if (h->phase == P_CLOSING) {
        if (evbuffer_get_length(mg_io_get_output(io)) == 0) {
            stall_watch(h, false);      /* flushed: the linger has its own bound */
            mg_conn_close_lingering(h->c);
        }
    } else if (h->active && h->r->resp_started) {
        mg_io_setwatermark(io, EV_WRITE, 0, 0);
        stall_watch(h, false);
        mg_upstream_resume(h->r);
    }
    mg_conn_unref(h->c);
}

static void event_cb(struct mg_io *io, short what, void *arg)
{
    struct h1s *h = arg;
    mg_conn_ref(h->c);
    if (h->phase == P_TUNNEL) {
        tun_down_eof(h, (what & MG_IO_ERROR) != 0);
        mg_conn_unref(h->c);
        return;
    }
    if ((what & MG_IO_EOF) && !(what & MG_IO_ERROR) && h->phase != P_BODY &&
        h->phase != P_CLOSING &&
        (h->active || evbuffer_get_length(mg_io_get_input(io)) > 0)) {
        /* half-close after a complete request (printf ... | nc): answer it */
        h->peer_eof = true;
        if (!h->active)
            h1_process(h);
        mg_conn_unref(h->c);
        return;
    }
    if (h->active) {
        h->r->flags = "DC";
        mg_upstream_detach(h->r, false);
        req_end(h);
    }
    mg_conn_close(h->c);
    mg_conn_unref(h->c);
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct h1s *h = arg;
    mg_conn_ref(h->c);
    if (h->phase == P_TUNNEL) {
        /* nothing moved either way for the idle timeout */
        h->r->flags = "SI";
        tunnel_end(h, "stream_idle_timeout");
    } else if (h->phase == P_HEAD && h->saw_bytes && !h->active && h->c->io) {
        struct mg_request *r = req_new(h);
        mg_request_init(r, h->c, &h1_ops, h);
        h->active = true;
        h->minor = 1;
        mg_request_reply(r, 408, "request timeout", "request_headers_timeout", true);
    } else if (h->phase == P_BODY && h->active && h->c->io) {
        /* the request body stalled for the idle timeout */
        struct mg_request *r = h->r;
        r->flags = "DC";
        if (r->resp_started) {
            h1_ops_abort(r);
        } else {
            r->body_done = false;
            mg_request_reply(r, 408, "stream timeout", "request_body_timeout", true);
        }
    } else if (h->phase == P_WAIT && h->active && h->r->resp_started && h->c->io) {
        /* the client took nothing of a started response for the idle
         * timeout: end it on both sides (the upstream connection is
         * closed, not pooled) */
        struct mg_request *r = h->r;
        if (strcmp(r->flags, "-") == 0)
            r->flags = "SI";            /* Envoy's stream idle timeout flag */
        r->reason = "stream_idle_timeout";
        h1_ops_abort(r);
    } else {
        mg_conn_close(h->c);
    }
    mg_conn_unref(h->c);
}

static void h1_free(struct mg_conn *c)
{
    struct h1s *h = c->codec;
    stall_watch(h, false);
    if (h->active && h->phase == P_TUNNEL) {
        h->up = NULL;
        mg_upstream_detach(h->r, false);   /* its callbacks point here */
    }
    req_end(h);
    free(h->r);
    event_free(h->timer);
    event_free(h->next_ev);
    free(h);
    c->codec = NULL;
}

static bool h1_drain(struct mg_conn *c)
{
    struct h1s *h = c->codec;
    if (h->phase == P_HEAD && !h->active && !h->saw_bytes) {
        mg_conn_close(c);
        return true;
    }
    if (h->phase == P_TUNNEL) {         /* drained as TCP tunnels are: closed */
        tunnel_end(h, "drain");
        return true;
    }
    h->close_after = true;
    return false;
}

static void h1_notice(struct mg_conn *c)
{
    struct h1s *h = c->codec;
    h->close_after = true;
}

void mg_h1_server_start(struct mg_conn *c)
{
    struct h1s *h = mg_xcalloc(1, sizeof(*h));
    h->c = c;
    h->minor = 1;
    uint64_t kb = c->snap->cfg->proxy.max_request_headers_kb;
    h->max_head = (size_t)(kb ? kb : 60) * 1024;
    h->timer = evtimer_new(c->w->base, timer_cb, h);
    h->next_ev = event_new(c->w->base, -1, 0, next_cb, h);
    c->codec = h;
    c->codec_free = h1_free;
    c->codec_drain = h1_drain;
    c->codec_notice = h1_notice;
    size_t rwm = h->max_head + 1 > H1_HIGH_WM ? h->max_head + 1 : H1_HIGH_WM;
    mg_io_setwatermark(c->io, EV_READ, 0, rwm);
    mg_io_setcb(c->io, read_cb, write_cb, event_cb, h);
    mg_io_set_timeouts(c->io, NULL, NULL);
    h->phase = P_HEAD;
    arm_timer(h, c->snap->cfg->proxy.timeout_request_headers_ms);
    mg_io_enable(c->io, EV_READ | EV_WRITE);
    if (evbuffer_get_length(mg_io_get_input(c->io)))
        event_active(h->next_ev, EV_TIMEOUT, 0);
}
