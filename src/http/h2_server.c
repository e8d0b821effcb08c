/* h2_server.c - HTTP/2 downstream codec on an nghttp2 server session.
 *
 * Re-entrancy rules (nghttp2 forbids calling session_send/mem_recv from its
 * own callbacks, and upstream.c calls our down ops from inside its
 * callbacks):
 *   - nghttp2_session_mem_recv / nghttp2_session_send run only from the
 *     top-level event callbacks here (read, write, pump, timers);
 *   - down ops only change stream state, submit frames and schedule the pump
 *     event; they never send, close the connection or free a stream;
 *   - a stream (and its request) is freed only in on_stream_close, which
 *     nghttp2 calls from inside mem_recv/send, or in teardown;
 *   - streams whose headers completed are started by the pump after the
 *     input batch is processed, so a HEADERS+RST_STREAM pair that arrives
 *     together (rapid reset) never reaches an upstream. */
#include "http/internal.h"
#include <nghttp2/nghttp2.h>
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

#define H2_PEEK_IOV 16
#define H2_BODY_STEP (64 * 1024)
/* Header blocks over the header list limit a connection may send before
 * it is ended with GOAWAY (ENHANCE_YOUR_CALM). */
#define H2_HDR_REFUSALS 4

static struct evbuffer *out_of(struct mg_h2_conn *h)
{
    return mg_io_get_output(h->c->io);
}

static void kick(struct mg_h2_conn *h)
{
    if (!h->dead && h->pump_ev)
        event_active(h->pump_ev, EV_TIMEOUT, 0);
}

/* The idle timer measures inactivity: no byte read and no write progress.
 * With no stream open it ends the connection gracefully; with streams open
 * they are stuck (a client that stopped reading, an upstream that went
 * silent) and are ended as Envoy's stream idle timeout does. */
static void arm_idle(struct mg_h2_conn *h)
{
    if (h->draining || h->dead)
        return;                         /* draining: the timer counts down to the final GOAWAY */
    int64_t ms = h->c->snap->cfg->proxy.timeout_idle_ms;
    if (ms <= 0) {
        evtimer_del(h->idle_ev);
        return;
    }
    struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000) };
    evtimer_add(h->idle_ev, &tv);
}

/* ---- stream life ---- */

static struct mg_h2_stream *stream_new(struct mg_h2_conn *h, int32_t id)
{
    struct mg_h2_stream *s = mg_xcalloc(1, sizeof(*s));
    s->h = h;
    s->id = id;
    s->cookie_at = SIZE_MAX;
    s->reqbuf = evbuffer_new();
    s->resp = evbuffer_new();
    if (!s->reqbuf || !s->resp)
        abort();                        /* allocation failure policy: as mg_xmalloc */
    mg_request_init(&s->r, h->c, &mg_h2_ops, s);
    s->r.protocol = "HTTP/2";
    s->next = h->streams;
    if (h->streams)
        h->streams->prev = s;
    h->streams = s;
    h->n_streams++;
    return s;
}

/* Log (once, only for streams that became requests) and free. */
static void stream_free(struct mg_h2_conn *h, struct mg_h2_stream *s)
{
    struct mg_request *r = &s->r;
    mg_upstream_detach(r, false);
    if (s->running) {
        if (!s->end_sent && !s->aborted && strcmp(r->flags, "-") == 0)
            r->flags = "DC";            /* the client went away before the response ended */
        mg_request_finish(r);
    } else if (s->hdr_reset) {
        /* reset for its header block: logged with what was decoded of it */
        mg_h2_fill_request(s);
        r->flags = "DPE";
        r->reason = "headers_too_large";
        mg_request_finish(r);
    }
    mg_request_release(r);
    size_t left = evbuffer_get_length(s->reqbuf);
    if (left && h->ng && !h->dead)
        nghttp2_session_consume_connection(h->ng, left);   /* give the connection window back */
    evbuffer_free(s->reqbuf);
    evbuffer_free(s->resp);
    if (s->body_ev)
        event_free(s->body_ev);
    if (s->prev)
        s->prev->next = s->next;
    else
        h->streams = s->next;
    if (s->next)
        s->next->prev = s->prev;
    h->n_streams--;
    free(s);
}

/* Close everything now: every request is logged and detached from its
 * upstream, the session freed, the connection closed. Top level only. */
static void teardown(struct mg_h2_conn *h)
{
    if (h->dead)
        return;
    h->dead = true;
    while (h->streams)
        stream_free(h, h->streams);
    if (h->ng) {
        nghttp2_session_del(h->ng);
        h->ng = NULL;
    }
    if (h->idle_ev)
        evtimer_del(h->idle_ev);
    if (h->hdr_ev)
        evtimer_del(h->hdr_ev);
    if (h->pump_ev)
        event_del(h->pump_ev);
    mg_conn_close(h->c);
}

/* ---- down ops (never send, never free: see the top of the file) ---- */

static struct mg_h2_stream *live(struct mg_request *r)
{
    struct mg_h2_stream *s = r->codec;
    return s->h->dead || s->aborted ? NULL : s;
}

/* The response is complete (or refused) before the request body ended:
 * drop what is buffered and what still comes, giving the window back. */
static void start_discard(struct mg_h2_stream *s)
{
    if (s->discard)
        return;
    s->discard = true;
    size_t n = evbuffer_get_length(s->reqbuf);
    if (n) {
        evbuffer_drain(s->reqbuf, n);
        nghttp2_session_consume(s->h->ng, s->id, n);
    }
}

static void op_continue(struct mg_request *r)
{
    struct mg_h2_stream *s = live(r);
    if (!s || s->resp_submitted)
        return;
    static const nghttp2_nv nv[] = { { (uint8_t *)":status", (uint8_t *)"100", 7, 3, 0 } };
    nghttp2_submit_headers(s->h->ng, NGHTTP2_FLAG_NONE, s->id, NULL, nv, 1, NULL);
    kick(s->h);
}

/* Upstream trailers (gRPC status): a HEADERS frame after the last DATA,
 * submitted from the data callback as nghttp2 allows. The upstream side
 * already dropped pseudo, framing and routing fields. */
static bool submit_trailers(struct mg_h2_stream *s)
{
    struct mg_request *r = &s->r;
    nghttp2_nv *nv = mg_arena_alloc(&r->arena, r->n_resp_trailers * sizeof(*nv));
    for (size_t i = 0; i < r->n_resp_trailers; i++) {
        nv[i].name = (uint8_t *)r->resp_trailers[i].key;
        nv[i].namelen = strlen(r->resp_trailers[i].key);
        nv[i].value = (uint8_t *)r->resp_trailers[i].value;
        nv[i].valuelen = strlen(r->resp_trailers[i].value);
        nv[i].flags = NGHTTP2_NV_FLAG_NONE;
    }
    return nghttp2_submit_trailer(s->h->ng, s->id, nv, r->n_resp_trailers) == 0;
}

static ssize_t data_read_cb(nghttp2_session *ng, int32_t id, uint8_t *buf, size_t len,
                            uint32_t *data_flags, nghttp2_data_source *src, void *user)
{
    (void)ng;
    (void)id;
    (void)buf;
    (void)user;
    struct mg_h2_stream *s = src->ptr;
    size_t avail = evbuffer_get_length(s->resp);
    if (!avail && !s->resp_eof) {
        s->deferred = true;
        return NGHTTP2_ERR_DEFERRED;
    }
    size_t n = avail < len ? avail : len;
    *data_flags |= NGHTTP2_DATA_FLAG_NO_COPY;
    if (s->resp_eof && n == avail) {
        *data_flags |= NGHTTP2_DATA_FLAG_EOF;
        if (s->r.n_resp_trailers && submit_trailers(s))
            *data_flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;     /* the trailers end it */
    }
    return (ssize_t)n;
}

static bool hop_by_hop(const char *n)
{
    return mg_h1_is_hop_by_hop(n, strlen(n));
}

static void nv_set(nghttp2_nv *nv, const char *k, const char *v)
{
    nv->name = (uint8_t *)k;
    nv->namelen = strlen(k);
    nv->value = (uint8_t *)v;
    nv->valuelen = strlen(v);
    nv->flags = NGHTTP2_NV_FLAG_NONE;
}

/* Submit a response head; with_body attaches the deferred data provider. */
static void submit_head(struct mg_h2_stream *s, const struct mg_kv *extra, size_t n_extra,
                        const char *cl, const char *ctype, bool with_body)
{
    struct mg_request *r = &s->r;
    size_t cap = 3 + n_extra;
    nghttp2_nv *nv = mg_arena_alloc(&r->arena, cap * sizeof(*nv));
    size_t n = 0;
    nv_set(&nv[n++], ":status", mg_arena_u64(&r->arena, (unsigned)r->status));
    for (size_t i = 0; i < n_extra; i++) {
        if (!extra[i].key || !extra[i].value || !extra[i].key[0] || extra[i].key[0] == ':')
            continue;
        char *k = mg_arena_strndup(&r->arena, extra[i].key, strlen(extra[i].key));
        mg_lower(k);                    /* route header edits may be mixed case */
        if (hop_by_hop(k) || (cl && strcmp(k, "content-length") == 0))
            continue;
        nv_set(&nv[n++], k, extra[i].value);
    }
    if (cl)
        nv_set(&nv[n++], "content-length", cl);
    if (ctype)
        nv_set(&nv[n++], "content-type", ctype);
    nghttp2_data_provider dp = { .source = { .ptr = s }, .read_callback = data_read_cb };
    s->resp_submitted = true;
    if (!with_body)
        s->resp_eof = true;
    int rv = nghttp2_submit_response(s->h->ng, s->id, nv, n, with_body ? &dp : NULL);
    if (rv != 0) {
        s->aborted = true;
        nghttp2_submit_rst_stream(s->h->ng, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_INTERNAL_ERROR);
    }
    if (!s->remote_end && !with_body)
        start_discard(s);
    kick(s->h);
}

static void body_timer_arm(struct mg_h2_stream *s);

static void op_resp_head(struct mg_request *r)
{
    struct mg_h2_stream *s = live(r);
    if (!s)
        return;
    if (r->upgrade && r->timer)
        evtimer_del(r->timer);          /* the route timeout ends with the upgrade, as Envoy's */
    bool nobody = r->is_head || r->status == 204 || r->status == 304 ||
                  r->resp_body == MG_BODY_NONE ||
                  (r->resp_body == MG_BODY_LENGTH && r->resp_cl == 0);
    const char *cl = NULL;
    if (r->resp_body == MG_BODY_LENGTH && !r->is_head && r->status != 204 && r->status != 304)
        cl = mg_arena_u64(&r->arena, (unsigned long long)r->resp_cl);
    submit_head(s, r->resp_h, r->n_resp_h, cl, NULL, !nobody);
    body_timer_arm(s);                  /* the response must keep moving too */
}

static void op_resp_data(struct mg_request *r, struct evbuffer *src, size_t n)
{
    struct mg_h2_stream *s = live(r);
    if (!s || s->resp_eof) {
        evbuffer_drain(src, n);
        return;
    }
    evbuffer_remove_buffer(src, s->resp, n);
    if (s->deferred) {
        s->deferred = false;
        nghttp2_session_resume_data(s->h->ng, s->id);
    }
    kick(s->h);
}

static void op_resp_end(struct mg_request *r)
{
    struct mg_h2_stream *s = r->codec;
    mg_upstream_detach(r, true);
    if (r->timer)
        evtimer_del(r->timer);          /* the route timeout covers the upstream only */
    if (!live(r))
        return;
    s->resp_eof = true;
    if (s->deferred) {
        s->deferred = false;
        nghttp2_session_resume_data(s->h->ng, s->id);
    }
    if (!r->body_done)
        start_discard(s);
    kick(s->h);
}

static bool op_resp_full(struct mg_request *r)
{
    struct mg_h2_stream *s = live(r);
    if (!s || evbuffer_get_length(s->resp) < MG_H2_RESP_WM)
        return false;
    s->want_resume = true;
    return true;
}

static void body_pump(struct mg_h2_stream *s);

static void op_body_resume(struct mg_request *r)
{
    struct mg_h2_stream *s = live(r);
    if (!s || !s->running)
        return;
    body_pump(s);
    kick(s->h);
}

static void op_local_reply(struct mg_request *r, int status, const char *body, bool close)
{
    (void)close;                        /* one stream's refusal never ends the connection */
    struct mg_h2_stream *s = r->codec;
    mg_upstream_detach(r, false);
    if (r->timer)
        evtimer_del(r->timer);
    r->status = status;
    if (!live(r) || s->resp_submitted)
        return;
    size_t bl = body ? strlen(body) : 0;
    bool with_body = bl && !r->is_head;
    if (with_body)
        evbuffer_add(s->resp, body, bl);
    s->resp_eof = true;
    submit_head(s, r->local_h, r->n_local_h, mg_arena_u64(&r->arena, bl),
                bl ? "text/plain" : NULL, with_body);
    start_discard(s);
}

static void op_abort(struct mg_request *r)
{
    struct mg_h2_stream *s = r->codec;
    mg_upstream_detach(r, false);
    if (r->timer)
        evtimer_del(r->timer);
    if (!live(r))
        return;
    s->aborted = true;                  /* s->resp stays: a DATA frame may already be sized */
    start_discard(s);
    nghttp2_submit_rst_stream(s->h->ng, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_INTERNAL_ERROR);
    kick(s->h);
}

const struct mg_down_ops mg_h2_ops = {
    .send_continue = op_continue,
    .resp_head = op_resp_head,
    .resp_data = op_resp_data,
    .resp_end = op_resp_end,
    .resp_full = op_resp_full,
    .body_resume = op_body_resume,
    .local_reply = op_local_reply,
    .abort = op_abort,
};

/* ---- request body: upstream first, then WINDOW_UPDATE ---- */

static void body_pump(struct mg_h2_stream *s)
{
    struct mg_request *r = &s->r;
    if (s->discard || r->body == MG_BODY_NONE)
        return;
    while (evbuffer_get_length(s->reqbuf) && mg_upstream_body_ready(r)) {
        size_t n = evbuffer_get_length(s->reqbuf);
        if (n > H2_BODY_STEP)
            n = H2_BODY_STEP;
        mg_upstream_body_data(r, s->reqbuf, n);
        nghttp2_session_consume(s->h->ng, s->id, n);
    }
    /* a retry on a new upstream connection needs the end marker again when
     * no byte had gone out (chunked with an empty body) */
    if (s->body_end_sent && !r->body_started && s->body_end_attempt != r->attempts)
        s->body_end_sent = false;
    if (s->remote_end && !s->body_end_sent && !evbuffer_get_length(s->reqbuf) &&
        mg_upstream_body_ready(r)) {
        s->body_end_sent = true;
        s->body_end_attempt = r->attempts;
        r->body_done = true;
        mg_upstream_body_end(r);
    }
}

/* ---- request body idle bound, per stream ---- */

static void h2_run(struct mg_h2_conn *h);
static bool h2_drain(struct mg_conn *c);

/* The connection's idle timer is re-armed by any frame (a PING, another
 * stream), so a stream that stopped moving needs its own bound, as Envoy's
 * stream idle timeout: the timer runs while the request body is expected
 * or a started response is not finished, and restarts with each DATA
 * chunk of this stream either way. A response the client never lets flow
 * (its stream window kept shut) would otherwise hold the upstream. */
static void body_timeout_cb(evutil_socket_t fd, short what, void *arg);

static void body_timer_arm(struct mg_h2_stream *s)
{
    int64_t ms = s->h->c->snap->cfg->proxy.timeout_idle_ms;
    bool body_due = !s->remote_end && !s->discard;
    bool resp_due = s->r.resp_started && !s->end_sent;
    if (!s->running || s->aborted || (!body_due && !resp_due) || ms <= 0) {
        if (s->body_ev)
            evtimer_del(s->body_ev);
        return;
    }
    if (!s->body_ev) {
        s->body_ev = evtimer_new(s->h->c->w->base, body_timeout_cb, s);
        if (!s->body_ev)
            abort();                    /* allocation failure policy: as mg_xmalloc */
    }
    struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000) };
    evtimer_add(s->body_ev, &tv);
}

static void body_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct mg_h2_stream *s = arg;
    struct mg_h2_conn *h = s->h;
    struct mg_request *r = &s->r;
    if (h->dead || !s->running || s->aborted)
        return;
    bool body_due = !s->remote_end && !s->discard;
    if (!body_due && !(r->resp_started && !s->end_sent))
        return;
    if (body_due && evbuffer_get_length(s->reqbuf)) {
        body_timer_arm(s);              /* the upstream is behind, not the client */
        return;
    }
    mg_conn_ref(h->c);
    if (strcmp(r->flags, "-") == 0)
        r->flags = "SI";                /* Envoy's stream idle timeout flag */
    if (r->resp_started) {
        r->reason = "stream_idle_timeout";  /* as HTTP/1.1 logs and counts it */
        op_abort(r);
    } else {
        r->body_done = false;
        mg_request_reply(r, 408, "stream timeout", "request_body_timeout", true);
    }
    h2_run(h);
    mg_conn_unref(h->c);
}

/* ---- nghttp2 callbacks ---- */

static struct mg_h2_stream *stream_of(nghttp2_session *ng, int32_t id)
{
    return id ? nghttp2_session_get_stream_user_data(ng, id) : NULL;
}

/* RFC 9113 5.1.1: a HEADERS frame on a client stream id lower than one the
 * client already used must end the connection (PROTOCOL_ERROR). nghttp2
 * only does so when it still knows the stream; an id the client skipped is
 * dropped silently. So the ids skipped are kept here (ranges, in ascending
 * order: up to MG_H2_MAX_SKIPPED of them, see internal.h), and HEADERS on
 * one of them ends the connection. A lower id the client did open is left
 * to nghttp2: trailers may legitimately cross our RST_STREAM. */
static bool skipped_id(const struct mg_h2_conn *h, int32_t id)
{
    unsigned lo = 0, hi = h->n_skipped;
    while (lo < hi) {
        unsigned mid = lo + (hi - lo) / 2;
        if (id < h->skipped[mid][0])
            hi = mid;
        else if (id > h->skipped[mid][1])
            lo = mid + 1;
        else
            return true;
    }
    return false;
}

static void skip_ids(struct mg_h2_conn *h, int32_t from, int32_t to)
{
    if (h->n_skipped == h->cap_skipped) {
        if (h->cap_skipped >= MG_H2_MAX_SKIPPED)
            return;
        h->cap_skipped = h->cap_skipped ? 2 * h->cap_skipped : 4;
        if (h->cap_skipped > MG_H2_MAX_SKIPPED)
            h->cap_skipped = MG_H2_MAX_SKIPPED;
        h->skipped = mg_xrealloc(h->skipped, h->cap_skipped * sizeof(h->skipped[0]));
    }
    h->skipped[h->n_skipped][0] = from;
    h->skipped[h->n_skipped][1] = to;
    h->n_skipped++;
}

static int on_begin_frame(nghttp2_session *ng, const nghttp2_frame_hd *hd, void *user)
{
    struct mg_h2_conn *h = user;
    int32_t id = hd->stream_id;
    if (hd->type != NGHTTP2_HEADERS || id <= 0 || !(id & 1))
        return 0;                       /* even ids: nghttp2 refuses them itself */
    if (id > h->max_client_id) {
        int32_t lo = h->max_client_id ? h->max_client_id + 2 : 1;
        if (id > lo)
            skip_ids(h, lo, id - 2);
        h->max_client_id = id;
        return 0;
    }
    if (skipped_id(h, id)) {
        nghttp2_session_terminate_session(ng, NGHTTP2_PROTOCOL_ERROR);
        h->fatal = true;
    }
    return 0;
}

static int on_begin_headers(nghttp2_session *ng, const nghttp2_frame *f, void *user)
{
    struct mg_h2_conn *h = user;
    if (f->hd.type != NGHTTP2_HEADERS)
        return 0;
    /* only CONTINUATION may follow until the block ends, so one timer per
     * connection bounds a client that stops mid-block (slowloris) */
    int64_t ms = h->c->snap->cfg->proxy.timeout_request_headers_ms;
    if (ms > 0) {
        struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000) };
        evtimer_add(h->hdr_ev, &tv);
    }
    if (f->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    /* accepted under an older generation: one stream is still served on
     * it (as the next HTTP/1.1 request, see h1_server.c), the connection
     * drains (GOAWAY) as Envoy drains the connections of a changed
     * listener, and streams opened meanwhile are refused (retry-safe)
     * rather than judged by the old policies */
    if (mg_snapshot_recycles(h->c->snap, h->c->w->snap)) {
        if (h->stale_served) {
            nghttp2_submit_rst_stream(ng, NGHTTP2_FLAG_NONE, f->hd.stream_id, NGHTTP2_REFUSED_STREAM);
            return 0;
        }
        h->stale_served = true;
        h2_drain(h->c);
    }
    /* the gateway is draining (SIGTERM): serve this stream, and announce
     * the GOAWAY so the client opens its next ones elsewhere */
    if (!h->draining && atomic_load_explicit(&h->c->w->draining, memory_order_relaxed))
        h2_drain(h->c);
    struct mg_h2_stream *s = stream_new(h, f->hd.stream_id);
    if (nghttp2_session_set_stream_user_data(ng, f->hd.stream_id, s) != 0) {
        stream_free(h, s);              /* no stream object: no close callback would free it */
        arm_idle(h);
    }
    return 0;
}

static int on_header(nghttp2_session *ng, const nghttp2_frame *f, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                     void *user)
{
    (void)flags;
    struct mg_h2_conn *h = user;
    struct mg_h2_stream *s = stream_of(ng, f->hd.stream_id);
    if (f->hd.type != NGHTTP2_HEADERS)
        return 0;
    if (!s)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;   /* a refused stream: no field is wanted */
    /* nghttp2 announces SETTINGS_MAX_HEADER_LIST_SIZE but does not enforce
     * it; trailers count against the same budget */
    s->hbytes += namelen + valuelen + 32;
    s->nfields++;
    bool request = f->headers.cat == NGHTTP2_HCAT_REQUEST;
    if (!s->hdr_over && (s->hbytes > h->max_hdr || s->nfields > MG_H1_MAX_HEADERS)) {
        s->hdr_over = true;
        if (++h->hdr_refused >= H2_HDR_REFUSALS) {
            /* a connection that keeps sending oversized blocks (HPACK
             * amplification: a few bytes of references to a large table
             * entry decode to megabytes) is ended as a flood is */
            nghttp2_session_terminate_session(ng, NGHTTP2_ENHANCE_YOUR_CALM);
            h->fatal = true;
            s->hdr_reset = request;
            return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
        }
    }
    /* Each field delivered costs nghttp2's validation of it, so a block far
     * over the limit is not decoded into fields any further: the stream is
     * reset (nghttp2 then only keeps its HPACK state). One moderately over
     * it is still answered 431. Oversized trailers reset the stream at once. */
    if (s->hdr_over && (!request || s->hbytes / 2 > h->max_hdr ||
                        s->nfields > 2 * MG_H1_MAX_HEADERS)) {
        s->hdr_reset = request;
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    if (s->hdr_over || s->bad || !request)
        return 0;                       /* over the limit: count, store nothing; trailers dropped */
    return mg_h2_take_field(s, (const char *)name, namelen, (const char *)value, valuelen);
}

/* The opaque data of our own PING: its ACK says the client has processed
 * every frame sent before it. */
static const uint8_t rst_ping_data[8] = { 'm', 'g', '-', 'r', 's', 't', '-', 'p' };

/* Streams answered while the client still uploads are reset only after a
 * PING round trip: a client that gets END_STREAM and RST_STREAM in one read
 * may drop the response it has not delivered yet (curl 7.88 loses the
 * headers or the body, (92) or (18)). Callable from nghttp2 callbacks. */
static void rst_ping_send(struct mg_h2_conn *h)
{
    if (h->rst_ping)
        return;                         /* the ACK handler sends the next one */
    bool any = false;
    for (struct mg_h2_stream *s = h->streams; s; s = s->next) {
        if (s->rst_wait && !s->rst_armed) {
            s->rst_armed = true;
            any = true;
        }
    }
    if (any && nghttp2_submit_ping(h->ng, NGHTTP2_FLAG_NONE, rst_ping_data) == 0)
        h->rst_ping = true;
}

static void rst_ping_acked(struct mg_h2_conn *h)
{
    h->rst_ping = false;
    for (struct mg_h2_stream *s = h->streams; s; s = s->next) {
        if (!s->rst_armed)
            continue;
        s->rst_wait = s->rst_armed = false;
        if (!s->remote_end && !nghttp2_session_get_stream_remote_close(h->ng, s->id))
            nghttp2_submit_rst_stream(h->ng, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_NO_ERROR);
    }
    rst_ping_send(h);                   /* streams answered meanwhile */
}

static int on_frame_recv(nghttp2_session *ng, const nghttp2_frame *f, void *user)
{
    struct mg_h2_conn *h = user;
    if (f->hd.type == NGHTTP2_HEADERS)
        evtimer_del(h->hdr_ev);
    if (f->hd.type == NGHTTP2_PING && (f->hd.flags & NGHTTP2_FLAG_ACK) && h->rst_ping &&
        memcmp(f->ping.opaque_data, rst_ping_data, sizeof(rst_ping_data)) == 0) {
        rst_ping_acked(h);
        return 0;
    }
    struct mg_h2_stream *s = stream_of(ng, f->hd.stream_id);
    if (!s)
        return 0;
    if (f->hd.type == NGHTTP2_HEADERS && f->headers.cat == NGHTTP2_HCAT_REQUEST)
        s->ready = true;
    if ((f->hd.type == NGHTTP2_HEADERS || f->hd.type == NGHTTP2_DATA) &&
        (f->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
        s->remote_end = true;
        s->r.req_end_ms = mg_now_ms();
        if (s->has_cl && s->body_recv != s->cl && !s->discard) {
            /* nghttp2 checks this too; never let a short body look complete */
            s->remote_end = false;
            nghttp2_submit_rst_stream(ng, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_PROTOCOL_ERROR);
        }
    }
    return 0;
}

static int on_data_chunk(nghttp2_session *ng, uint8_t flags, int32_t id, const uint8_t *data,
                         size_t len, void *user)
{
    (void)flags;
    (void)user;
    struct mg_h2_stream *s = stream_of(ng, id);
    if (!s || s->discard || s->aborted) {
        nghttp2_session_consume(ng, id, len);
        return 0;
    }
    s->body_recv += len;
    s->r.bytes_received += len;
    if (s->has_cl && s->body_recv > s->cl) {
        start_discard(s);
        nghttp2_session_consume(ng, id, len);
        nghttp2_submit_rst_stream(ng, NGHTTP2_FLAG_NONE, id, NGHTTP2_PROTOCOL_ERROR);
        return 0;
    }
    evbuffer_add(s->reqbuf, data, len);   /* bounded by the stream window */
    body_timer_arm(s);
    return 0;
}

static int on_frame_send(nghttp2_session *ng, const nghttp2_frame *f, void *user)
{
    struct mg_h2_conn *h = user;
    struct mg_h2_stream *s = stream_of(ng, f->hd.stream_id);
    if (!s || !(f->hd.flags & NGHTTP2_FLAG_END_STREAM))
        return 0;
    if (f->hd.type != NGHTTP2_DATA && f->hd.type != NGHTTP2_HEADERS)
        return 0;
    s->end_sent = true;
    /* answered while the client still sends: tell it to stop (RFC 9113
     * 8.1), once it has read the response (rst_ping_send) */
    if (!s->remote_end && !nghttp2_session_get_stream_remote_close(ng, s->id)) {
        s->rst_wait = true;
        rst_ping_send(h);
    }
    return 0;
}

static int on_stream_close(nghttp2_session *ng, int32_t id, uint32_t err, void *user)
{
    (void)err;
    struct mg_h2_conn *h = user;
    struct mg_h2_stream *s = stream_of(ng, id);
    if (!s)
        return 0;
    nghttp2_session_set_stream_user_data(ng, id, NULL);
    stream_free(h, s);
    arm_idle(h);
    return 0;
}

static ssize_t send_cb(nghttp2_session *ng, const uint8_t *data, size_t len, int flags, void *user)
{
    (void)ng;
    (void)flags;
    struct mg_h2_conn *h = user;
    if (!h->c->io)
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    if (evbuffer_get_length(out_of(h)) >= MG_H2_OUT_WM)
        return NGHTTP2_ERR_WOULDBLOCK;  /* the write callback sends the rest */
    evbuffer_add(out_of(h), data, len);
    return (ssize_t)len;
}

static int send_data_cb(nghttp2_session *ng, nghttp2_frame *f, const uint8_t *framehd,
                        size_t length, nghttp2_data_source *src, void *user)
{
    (void)ng;
    struct mg_h2_conn *h = user;
    struct mg_h2_stream *s = src->ptr;
    if (!h->c->io)
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    struct evbuffer *out = out_of(h);
    if (evbuffer_get_length(out) >= MG_H2_OUT_WM)
        return NGHTTP2_ERR_WOULDBLOCK;
    evbuffer_add(out, framehd, 9);
    size_t pad = f->data.padlen;
    if (pad) {
        uint8_t pl = (uint8_t)(pad - 1);
        evbuffer_add(out, &pl, 1);
    }
    /* small payloads are copied behind their frame header, not moved as a
     * chain of their own: the transport then writes records straight from
     * the chain instead of joining pieces in a copy */
    struct evbuffer_iovec v;
    if (length <= 16384 && evbuffer_reserve_space(out, (ev_ssize_t)length, &v, 1) == 1) {
        v.iov_len = (size_t)evbuffer_remove(s->resp, v.iov_base, length);
        evbuffer_commit_space(out, &v, 1);
    } else {
        evbuffer_remove_buffer(s->resp, out, length);
    }
    if (pad > 1) {
        static const uint8_t zeros[256];
        evbuffer_add(out, zeros, pad - 1);
    }
    s->r.bytes_sent += length;
    body_timer_arm(s);                  /* response progress */
    if (s->want_resume && evbuffer_get_length(s->resp) < MG_H2_RESP_WM / 2)
        kick(h);                        /* the pump resumes the upstream read */
    return 0;
}

/* ---- driving the session (top level only) ---- */

/* The session is over (done, or nghttp2 gave up after queueing a GOAWAY):
 * let the output reach the client, bounded by a write timeout. */
static void close_when_flushed(struct mg_h2_conn *h)
{
    if (!h->c->io || evbuffer_get_length(out_of(h)) == 0) {
        teardown(h);
        return;
    }
    if (h->closing)
        return;
    h->closing = true;
    evtimer_del(h->idle_ev);
    mg_io_disable(h->c->io, EV_READ);
    mg_io_setwatermark(h->c->io, EV_WRITE, 0, 0);
    struct timeval tv = { 5, 0 };
    mg_io_set_timeouts(h->c->io, NULL, &tv);
}

/* After input or output progress: start complete streams, move bodies,
 * resume paused upstreams, send, and close when the session is done. */
static void h2_run(struct mg_h2_conn *h)
{
    if (h->dead)
        return;
    for (struct mg_h2_stream *s = h->streams; s; s = s->next) {
        if (s->ready && !h->fatal) {    /* nothing new starts on a connection being ended */
            mg_h2_start_stream(s);
            body_timer_arm(s);
        }
        if (s->running && !s->discard)
            body_pump(s);
        if (s->want_resume && evbuffer_get_length(s->resp) < MG_H2_RESP_WM / 2) {
            s->want_resume = false;
            mg_upstream_resume(&s->r);
        }
    }
    /* also after a fatal error: the GOAWAY it queued should reach the peer */
    if (h->c->io && nghttp2_session_send(h->ng) != 0)
        h->fatal = true;
    if (h->fatal || !h->c->io ||
        (!nghttp2_session_want_read(h->ng) && !nghttp2_session_want_write(h->ng)))
        close_when_flushed(h);
}

static void read_cb(struct mg_io *io, void *arg)
{
    struct mg_h2_conn *h = arg;
    mg_conn_ref(h->c);
    arm_idle(h);
    struct evbuffer *in = mg_io_get_input(io);
    while (!h->dead && !h->fatal && !h->closing && evbuffer_get_length(in)) {
        struct evbuffer_iovec iov[H2_PEEK_IOV];
        int n = evbuffer_peek(in, -1, NULL, iov, H2_PEEK_IOV);
        if (n > H2_PEEK_IOV)
            n = H2_PEEK_IOV;
        size_t used = 0;
        for (int i = 0; i < n; i++) {
            ssize_t rv = nghttp2_session_mem_recv(h->ng, iov[i].iov_base, iov[i].iov_len);
            if (rv < 0) {
                /* bad preface, flood, too many CONTINUATIONs, protocol
                 * error: make sure a GOAWAY says why, then close */
                h->fatal = true;
                if (rv != NGHTTP2_ERR_NOMEM && rv != NGHTTP2_ERR_CALLBACK_FAILURE)
                    nghttp2_session_terminate_session(h->ng,
                        rv == NGHTTP2_ERR_FLOODED || rv == NGHTTP2_ERR_TOO_MANY_CONTINUATIONS
                            ? NGHTTP2_ENHANCE_YOUR_CALM : NGHTTP2_PROTOCOL_ERROR);
                break;
            }
            used += (size_t)rv;
        }
        evbuffer_drain(in, used);
    }
    if (!h->dead && h->c->io && evbuffer_get_length(out_of(h)) >= MG_H2_OUT_WM) {
        h->read_paused = true;          /* the client does not read: stop reading it */
        mg_io_disable(h->c->io, EV_READ);
    }
    h2_run(h);
    mg_conn_unref(h->c);
}

static void write_cb(struct mg_io *io, void *arg)
{
    struct mg_h2_conn *h = arg;
    mg_conn_ref(h->c);
    if (h->closing) {
        if (evbuffer_get_length(mg_io_get_output(io)) == 0)
            teardown(h);
    } else if (!h->dead) {
        arm_idle(h);                    /* write progress */
        if (h->read_paused && evbuffer_get_length(out_of(h)) < MG_H2_OUT_WM / 2) {
            h->read_paused = false;
            mg_io_enable(io, EV_READ);
        }
        h2_run(h);
    }
    mg_conn_unref(h->c);
}

static void event_cb(struct mg_io *io, short what, void *arg)
{
    (void)io;
    (void)what;
    struct mg_h2_conn *h = arg;
    mg_conn_ref(h->c);
    teardown(h);                        /* EOF, reset or TLS error: open streams end as DC */
    mg_conn_unref(h->c);
}

static void pump_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct mg_h2_conn *h = arg;
    mg_conn_ref(h->c);
    h2_run(h);
    mg_conn_unref(h->c);
}

static void send_goaway(struct mg_h2_conn *h)
{
    if (h->goaway || h->dead)
        return;
    h->goaway = true;
    nghttp2_submit_goaway(h->ng, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(h->ng),
                          NGHTTP2_NO_ERROR, NULL, 0);
}

static void idle_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct mg_h2_conn *h = arg;
    mg_conn_ref(h->c);
    if (!h->dead && (h->draining || h->n_streams == 0)) {
        send_goaway(h);
        h2_run(h);
    } else if (!h->dead) {
        for (struct mg_h2_stream *s = h->streams; s; s = s->next)
            if (s->running && strcmp(s->r.flags, "-") == 0) {
                s->r.flags = "SI";      /* Envoy's stream idle timeout flag */
                if (!s->r.reason)
                    s->r.reason = "stream_idle_timeout";
            }
        nghttp2_session_terminate_session(h->ng, NGHTTP2_NO_ERROR);
        h->fatal = true;
        h2_run(h);
    }
    mg_conn_unref(h->c);
}

static void hdr_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct mg_h2_conn *h = arg;
    mg_conn_ref(h->c);
    if (!h->dead) {
        /* stuck inside a header block: no other frame can arrive, so the
         * whole connection is done */
        nghttp2_session_terminate_session(h->ng, NGHTTP2_PROTOCOL_ERROR);
        h->fatal = true;
        h2_run(h);
    }
    mg_conn_unref(h->c);
}

/* ---- connection hooks ---- */

static void h2_free(struct mg_conn *c)
{
    struct mg_h2_conn *h = c->codec;
    if (!h->dead) {
        h->dead = true;
        while (h->streams)
            stream_free(h, h->streams);
        if (h->ng)
            nghttp2_session_del(h->ng);
    }
    if (h->pump_ev)
        event_free(h->pump_ev);
    if (h->idle_ev)
        event_free(h->idle_ev);
    if (h->hdr_ev)
        event_free(h->hdr_ev);
    free(h->skipped);
    free(h);
    c->codec = NULL;
}

static bool h2_drain(struct mg_conn *c)
{
    struct mg_h2_conn *h = c->codec;
    if (h->dead)
        return true;
    if (!h->draining && !h->goaway) {
        /* RFC 9113 6.8: announce first (last stream 2^31-1) so requests in
         * flight towards us are not lost, then the real GOAWAY a second later */
        h->draining = true;
        nghttp2_submit_shutdown_notice(h->ng);
        struct timeval tv = { 1, 0 };
        evtimer_add(h->idle_ev, &tv);
        kick(h);
    }
    return false;
}

static void h2_notice(struct mg_conn *c)
{
    h2_drain(c);                        /* never closes at once: GOAWAY, then streams finish */
}

static nghttp2_session *new_session(struct mg_h2_conn *h)
{
    nghttp2_session_callbacks *cb;
    if (nghttp2_session_callbacks_new(&cb) != 0)
        return NULL;
    nghttp2_session_callbacks_set_send_callback(cb, send_cb);
    nghttp2_session_callbacks_set_send_data_callback(cb, send_data_cb);
    nghttp2_session_callbacks_set_on_begin_frame_callback(cb, on_begin_frame);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data_chunk);
    nghttp2_session_callbacks_set_on_frame_send_callback(cb, on_frame_send);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
    nghttp2_option *opt;
    if (nghttp2_option_new(&opt) != 0) {
        nghttp2_session_callbacks_del(cb);
        return NULL;
    }
    /* WINDOW_UPDATE only for bytes the upstream took (body_pump) */
    nghttp2_option_set_no_auto_window_update(opt, 1);
    /* the RST_STREAM rate limit and the CONTINUATION cap keep nghttp2's
     * defaults (nghttp2 1.52.0-1+deb12u3 has the rapid-reset and
     * CONTINUATION fixes), set explicitly so the protection is visible here */
    nghttp2_option_set_stream_reset_rate_limit(opt, 1000, 33);
    nghttp2_option_set_max_continuations(opt, 8);
    nghttp2_session *ng = NULL;
    if (nghttp2_session_server_new2(&ng, cb, h, opt) != 0)
        ng = NULL;
    nghttp2_option_del(opt);
    nghttp2_session_callbacks_del(cb);
    return ng;
}

void mg_h2_server_start(struct mg_conn *c)
{
    struct mg_h2_conn *h = mg_xcalloc(1, sizeof(*h));
    h->c = c;
    const struct mg_proxy *px = &c->snap->cfg->proxy;
    uint64_t kb = px->max_request_headers_kb ? px->max_request_headers_kb : 60;
    h->max_hdr = (size_t)kb * 1024;
    uint64_t mcs = px->max_concurrent_streams ? px->max_concurrent_streams : 100;
    if (mcs > INT32_MAX)
        mcs = INT32_MAX;
    h->pump_ev = event_new(c->w->base, -1, 0, pump_cb, h);
    h->idle_ev = evtimer_new(c->w->base, idle_cb, h);
    h->hdr_ev = evtimer_new(c->w->base, hdr_timeout_cb, h);
    c->codec = h;
    c->codec_free = h2_free;
    c->codec_drain = h2_drain;
    c->codec_notice = h2_notice;
    h->ng = new_session(h);
    nghttp2_settings_entry iv[] = {
        { NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, (uint32_t)mcs },
        { NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, MG_H2_STREAM_WINDOW },
        { NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, (uint32_t)(h->max_hdr > UINT32_MAX ? UINT32_MAX : h->max_hdr) },
        { NGHTTP2_SETTINGS_ENABLE_PUSH, 0 },
        { NGHTTP2_SETTINGS_ENABLE_CONNECT_PROTOCOL, 1 },   /* WebSocket (RFC 8441) */
    };
    if (!h->ng || !h->pump_ev || !h->idle_ev || !h->hdr_ev ||
        nghttp2_submit_settings(h->ng, NGHTTP2_FLAG_NONE, iv, MG_ARRAY_LEN(iv)) != 0 ||
        nghttp2_session_set_local_window_size(h->ng, NGHTTP2_FLAG_NONE, 0, MG_H2_CONN_WINDOW) != 0) {
        teardown(h);
        return;
    }
    mg_io_setwatermark(c->io, EV_READ, 0, 256 * 1024);
    mg_io_setwatermark(c->io, EV_WRITE, MG_H2_OUT_WM / 2, 0);
    mg_io_setcb(c->io, read_cb, write_cb, event_cb, h);
    mg_io_set_timeouts(c->io, NULL, NULL); /* the idle timer covers a stalled peer */
    mg_io_enable(c->io, EV_READ | EV_WRITE);
    arm_idle(h);
    kick(h);                            /* our SETTINGS go out first */
    if (evbuffer_get_length(mg_io_get_input(c->io)))
        read_cb(c->io, h);
}
