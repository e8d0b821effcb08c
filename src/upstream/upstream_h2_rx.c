/* upstream_h2_rx.c - what arrives on an HTTP/2 upstream connection: the
 * nghttp2 receive callbacks store it in the stream (they never call out),
 * and the delivery pass hands it to the downstream through the down ops,
 * one op at a time, from the top level (see upstream_h2.c). */
#include "upstream/internal.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <event2/event.h>
#include "http1/http1.h"
#include "http/types.h"
#include "route/types.h"
#include "base/base.h"

static struct mg_up2_stream *stream_of(nghttp2_session *ng, int32_t id)
{
    struct mg_up2_stream *s = id ? nghttp2_session_get_stream_user_data(ng, id) : NULL;
    return s && s->r ? s : NULL;
}

ssize_t mg_up2_body_read_cb(nghttp2_session *ng, int32_t id, uint8_t *buf, size_t len,
                            uint32_t *flags, nghttp2_data_source *src, void *user)
{
    (void)src;
    (void)user;
    struct mg_up2_stream *s = stream_of(ng, id);
    if (!s)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;   /* detached: the stream is reset */
    size_t avail = evbuffer_get_length(s->body);
    if (!avail && !s->body_eof) {
        s->deferred = true;
        s->want_body = true;
        return NGHTTP2_ERR_DEFERRED;
    }
    size_t n = avail < len ? avail : len;
    if (n)
        evbuffer_remove(s->body, buf, n);
    if (s->body_eof && n == avail)
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    else if (avail - n < UP2_BODY_WM)
        s->want_body = true;
    return (ssize_t)n;
}

/* Trailers that name framing or routing fields are dropped, never merged. */
static int take_trailer(struct mg_up2_stream *s, const char *name, size_t nl, const char *value,
                        size_t vl)
{
    if (!nl || name[0] == ':' || mg_h1_is_hop_by_hop(name, nl) ||
        (nl == 14 && mg_strncasecmp(name, "content-length", 14) == 0) ||
        (nl == 4 && mg_strncasecmp(name, "host", 4) == 0))
        return 0;
    struct mg_request *r = s->r;
    if (s->nt == s->capt) {
        size_t nc = s->capt ? s->capt * 2 : 4;
        struct mg_kv *nv = mg_arena_alloc(&r->arena, nc * sizeof(*nv));
        if (s->nt)
            memcpy(nv, s->tv, s->nt * sizeof(*nv));
        s->tv = nv;
        s->capt = nc;
    }
    struct mg_kv *kv = &s->tv[s->nt++];
    memset(kv, 0, sizeof(*kv));
    kv->key = mg_arena_strndup(&r->arena, name, nl);
    mg_lower(kv->key);
    kv->value = mg_arena_strndup(&r->arena, value, vl);
    return 0;
}

static int on_header(nghttp2_session *ng, const nghttp2_frame *f, const uint8_t *name, size_t nl,
                     const uint8_t *value, size_t vl, uint8_t flags, void *user)
{
    (void)flags;
    (void)user;
    if (f->hd.type != NGHTTP2_HEADERS)
        return 0;
    struct mg_up2_stream *s = stream_of(ng, f->hd.stream_id);
    if (!s)
        return 0;
    s->hbytes += nl + vl + 32;          /* head and trailers share the budget */
    if (s->hbytes > UP2_MAX_RESP_HEADER_BYTES || s->nh + s->nt >= UP2_MAX_RESP_HEADERS) {
        s->malformed = !s->head_sent;
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    if (s->head_ready)
        return take_trailer(s, (const char *)name, nl, (const char *)value, vl);
    if (nl == 7 && memcmp(name, ":status", 7) == 0) {
        int st = 0;
        for (size_t i = 0; i < vl; i++)
            st = vl == 3 && value[i] >= '0' && value[i] <= '9' ? st * 10 + (value[i] - '0') : -1000;
        if (st < 100 || st > 599) {
            s->malformed = true;
            return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
        }
        s->status = st;
        return 0;
    }
    if (nl && name[0] == ':')
        return 0;
    struct mg_request *r = s->r;
    if (s->nh == s->caph) {
        size_t nc = s->caph ? s->caph * 2 : 16;
        struct mg_kv *nv = mg_arena_alloc(&r->arena, nc * sizeof(*nv));
        if (s->nh)
            memcpy(nv, s->hv, s->nh * sizeof(*nv));
        s->hv = nv;
        s->caph = nc;
    }
    struct mg_kv *kv = &s->hv[s->nh++];
    memset(kv, 0, sizeof(*kv));
    kv->key = mg_arena_strndup(&r->arena, (const char *)name, nl);
    mg_lower(kv->key);
    kv->value = mg_arena_strndup(&r->arena, (const char *)value, vl);
    return 0;
}

static int on_frame_recv(nghttp2_session *ng, const nghttp2_frame *f, void *user)
{
    struct mg_up2_conn *c = user;
    if (f->hd.type == NGHTTP2_GOAWAY) {
        c->retired = true;              /* open streams finish; refused ones retry */
        return 0;
    }
    struct mg_up2_stream *s = stream_of(ng, f->hd.stream_id);
    if (!s)
        return 0;
    bool end = f->hd.flags & NGHTTP2_FLAG_END_STREAM;
    if (f->hd.type == NGHTTP2_HEADERS && !s->head_ready) {
        if (s->status >= 100 && s->status < 200 && !end) {
            s->nh = 0;                  /* interim response: wait for the final one */
            s->hbytes = 0;
            s->status = 0;
            return 0;
        }
        if (!s->status)
            s->malformed = true;
        s->head_ready = true;
        s->end_on_head = end;
    }
    if (end && (f->hd.type == NGHTTP2_HEADERS || f->hd.type == NGHTTP2_DATA))
        s->end_seen = true;
    return 0;
}

static int on_data(nghttp2_session *ng, uint8_t flags, int32_t id, const uint8_t *data, size_t len,
                   void *user)
{
    (void)flags;
    (void)user;
    struct mg_up2_stream *s = stream_of(ng, id);
    if (!s || !s->head_ready || s->malformed) {
        nghttp2_session_consume(ng, id, len);
        return 0;
    }
    evbuffer_add(s->rbuf, data, len);
    return 0;
}

static int on_stream_close(nghttp2_session *ng, int32_t id, uint32_t err, void *user)
{
    (void)user;
    struct mg_up2_stream *s = nghttp2_session_get_stream_user_data(ng, id);
    if (s) {
        s->closed = true;
        s->err = err;
    }
    return 0;
}

/* ---- delivery to the downstream (top level) ---- */

static void take_head(struct mg_up2_stream *s)
{
    struct mg_request *r = s->r;
    size_t n = 0, cap = s->nh + 8;
    struct mg_kv *h = mg_arena_alloc(&r->arena, cap * sizeof(*h));
    bool has_cl = false;
    uint64_t cl = 0;
    for (size_t i = 0; i < s->nh; i++) {
        const char *k = s->hv[i].key;
        if (strcmp(k, "content-length") == 0) {
            if (mg_parse_uint(s->hv[i].value, 0, UINT64_MAX, &cl) == 0)
                has_cl = true;
            if (!r->is_head)
                continue;               /* the codec writes it from resp_cl */
        } else if (mg_h1_is_hop_by_hop(k, strlen(k))) {
            continue;
        }
        h[n++] = s->hv[i];
    }
    h = mg_upstream_resp_ops(r, h, &n, cap);
    r->resp_h = h;
    r->n_resp_h = n;
    r->status = s->status;
    r->resp_start_ms = mg_now_ms();
    mg_upstream_note_local(r, s->c && s->c->io ? mg_io_getfd(s->c->io) : -1);
    r->resp_close = false;
    r->resp_cl = 0;
    if (r->is_head || s->status == 204 || s->status == 304 || s->end_on_head) {
        r->resp_body = MG_BODY_NONE;
    } else if (has_cl) {
        r->resp_body = MG_BODY_LENGTH;
        r->resp_cl = cl;
    } else {
        r->resp_body = MG_BODY_CHUNKED;     /* streamed, length unknown */
    }
}

/* One step for s: at most one down op. True if one was called (s and any
 * other stream may be gone since). */
static bool deliver(struct mg_up2_stream *s)
{
    struct mg_request *r = s->r;
    struct mg_up2_conn *c = s->c;
    if (s->want_continue) {
        s->want_continue = false;
        r->ops->send_continue(r);
        return true;
    }
    if (s->want_body && !s->body_eof && evbuffer_get_length(s->body) < UP2_BODY_WM) {
        s->want_body = false;
        r->ops->body_resume(r);
        return true;
    }
    s->want_body = false;
    if (s->malformed) {
        if (!s->closed)
            nghttp2_submit_rst_stream(c->ng, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_PROTOCOL_ERROR);
        mg_up2_stream_free(s);
        mg_request_upstream_failed(r, 502, "UPE", NULL);    /* an abort once the head went */
        return true;
    }
    if (s->head_ready && !s->head_sent) {
        if (s->try_timer)
            evtimer_del(s->try_timer);
        mg_cluster_outcome(c->cl, c->ep, MG_OD_RESPONSE, s->status);
        const char *gs = NULL;
        bool rl = false;
        for (size_t i = 0; i < s->nh; i++) {
            if (strcmp(s->hv[i].key, "grpc-status") == 0)
                gs = s->hv[i].value;
            else if (strcmp(s->hv[i].key, "x-envoy-ratelimited") == 0)
                rl = true;
        }
        char cls[24];
        if (mg_upstream_retry_class(s->status, gs, rl, cls, sizeof(cls))) {
            if (mg_upstream_retry_allowed(r, cls)) {
                int st = s->status;
                mg_up2_detach(r, false);
                mg_request_upstream_failed(r, st, "URX", cls);
                return true;
            }
        }
        take_head(s);
        s->head_sent = true;
        r->resp_started = true;
        r->ops->resp_head(r);
        return true;
    }
    if (s->head_sent) {
        size_t len = evbuffer_get_length(s->rbuf);
        if (len) {
            if (r->ops->resp_full(r))
                return false;           /* mg_upstream_resume brings us back */
            size_t n = len < UP2_DELIVER_STEP ? len : UP2_DELIVER_STEP;
            nghttp2_session_consume(c->ng, s->id, n);
            r->ops->resp_data(r, s->rbuf, n);
            return true;
        }
        if (s->end_seen) {
            r->resp_trailers = s->tv;
            r->n_resp_trailers = s->nt;
            r->ops->resp_end(r);        /* detaches */
            return true;
        }
    }
    if (s->closed && !(s->end_seen && s->head_sent)) {
        const char *flags = "UR", *cls = "reset";
        int status = 503;
        if ((s->end_seen && !s->head_ready) || s->head_sent || s->err == NGHTTP2_PROTOCOL_ERROR) {
            status = 502;
            flags = "UPE";
            cls = NULL;
        } else if (s->err == NGHTTP2_REFUSED_STREAM) {
            cls = "refused-stream";
        }
        if (status == 503 && strcmp(cls, "reset") == 0)    /* refused: a graceful no */
            mg_cluster_outcome(c->cl, c->ep, MG_OD_CONNECT_FAILED, 0);
        mg_up2_stream_free(s);
        mg_request_upstream_failed(r, status, flags, cls);
        return true;
    }
    return false;
}

void mg_up2_dispatch(struct mg_up2_conn *c)
{
    bool again = true;
    for (int round = 0; again && round < 100000 && !c->dead; round++) {
        again = false;
        for (struct mg_up2_stream *s = c->streams; s; s = s->next)
            if (s->r && deliver(s)) {
                again = true;           /* the list may have changed: start over */
                break;
            }
    }
}

void mg_up2_set_callbacks(nghttp2_session_callbacks *cbs)
{
    nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
}
