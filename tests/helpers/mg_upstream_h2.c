/* mg_upstream_h2.c - HTTP/2 for the test upstream (--h2), with nghttp2.
 *
 * Same paths and echo JSON as HTTP/1 (mg_upstream_resp.c), one response per
 * stream. The echo's "headers" list the request's pseudo-headers too
 * (":method", ":path", ":authority", ...) in arrival order, and its version
 * is "HTTP/2", so a test can tell which protocol the gateway used upstream.
 * /close drops the whole connection (no GOAWAY); /reset[?code=N] answers
 * with RST_STREAM (default INTERNAL_ERROR, 7 = REFUSED_STREAM), HTTP/2 only;
 * /goaway answers after a GOAWAY naming its stream the last one;
 * ?trailer=name:value sends one trailer field after a body. /stream answers
 * at once (200, application/grpc, no length) and echoes each DATA chunk as
 * it arrives, ending when the request ends: a bidirectional stream. */
#include "autoconfig.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <nghttp2/nghttp2.h>
#include "upstream.h"

#define H2_MAX_STREAMS 100
#define H2_MAX_HEADER_BYTES (64u * 1024)    /* nghttp2 1.52 does not enforce its own */
#define H2_OUT_HIGH (1u << 20)

struct h2s {
    struct h2 *h;
    struct h2s *prev, *next;
    int32_t id;
    struct up_req rq;
    size_t header_bytes;
    int status;                     /* for /slow: answered when the timer fires */
    struct event *timer;
    char *body;                     /* an in-memory body (echo, file) ... */
    size_t body_len, body_off;
    bool bytes;                     /* ... or /bytes/N generated on the fly */
    uint64_t bytes_left, bytes_total;
    char *trailer;                  /* ?trailer=name:value: sent after the body */
    bool streaming;                 /* /stream: echo as the request body arrives */
    bool echo_eof;                  /* ... and the request has ended */
    struct evbuffer *echo;
};

struct h2 {
    struct conn *c;
    nghttp2_session *s;
    struct h2s *streams;
    bool close_now;                 /* /close seen inside a callback */
};

/* ---------------------------------------------------------------- streams */

static struct h2s *stream_new(struct h2 *h, int32_t id)
{
    struct h2s *st = mg_xcalloc(1, sizeof *st);
    st->h = h;
    st->id = id;
    st->rq.version = "HTTP/2";
    st->rq.sha = EVP_MD_CTX_new();
    if (!st->rq.sha)
        mg_oom();
    EVP_DigestInit_ex(st->rq.sha, EVP_sha256(), NULL);
    st->rq.nreq = ++h->c->nreq;
    st->next = h->streams;
    if (st->next)
        st->next->prev = st;
    h->streams = st;
    return st;
}

static void stream_free(struct h2s *st)
{
    struct h2 *h = st->h;
    if (st->prev)
        st->prev->next = st->next;
    else
        h->streams = st->next;
    if (st->next)
        st->next->prev = st->prev;
    if (st->timer)
        event_free(st->timer);
    free(st->rq.method);
    free(st->rq.target);
    mg_buf_free(&st->rq.headers_json);
    EVP_MD_CTX_free(st->rq.sha);
    free(st->body);
    free(st->trailer);
    if (st->echo)
        evbuffer_free(st->echo);
    free(st);
}

/* ---------------------------------------------------------------- send */

/* Flush what nghttp2 has to send, up to a watermark (the write callback
 * resumes). Frees the connection when the session is over. */
static void h2_send(struct conn *c)
{
    struct h2 *h = c->h2;
    struct evbuffer *out = bufferevent_get_output(c->bev);
    while (evbuffer_get_length(out) < H2_OUT_HIGH) {
        const uint8_t *data;
        ssize_t n = nghttp2_session_mem_send(h->s, &data);
        if (n < 0) {
            mg_up_conn_free(c, true);
            return;
        }
        if (n == 0)
            break;
        evbuffer_add(out, data, (size_t)n);
    }
    if (!nghttp2_session_want_read(h->s) && !nghttp2_session_want_write(h->s) &&
        evbuffer_get_length(out) == 0)
        mg_up_conn_free(c, false);
}

static ssize_t read_body(nghttp2_session *s, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
                         nghttp2_data_source *src, void *ud)
{
    (void)s;
    (void)id;
    (void)ud;
    struct h2s *st = src->ptr;
    size_t n;
    if (st->streaming) {
        n = evbuffer_get_length(st->echo);
        if (n == 0 && !st->echo_eof)
            return NGHTTP2_ERR_DEFERRED;
        if (n > len)
            n = len;
        evbuffer_remove(st->echo, buf, n);
        if (st->echo_eof && evbuffer_get_length(st->echo) == 0)
            *flags |= NGHTTP2_DATA_FLAG_EOF;
    } else if (st->bytes) {
        n = st->bytes_left < len ? (size_t)st->bytes_left : len;
        mg_up_pattern((char *)buf, n, st->bytes_total - st->bytes_left);
        st->bytes_left -= n;
        if (st->bytes_left == 0)
            *flags |= NGHTTP2_DATA_FLAG_EOF;
    } else {
        n = st->body_len - st->body_off < len ? st->body_len - st->body_off : len;
        memcpy(buf, st->body + st->body_off, n);
        st->body_off += n;
        if (st->body_off == st->body_len)
            *flags |= NGHTTP2_DATA_FLAG_EOF;
    }
    char *colon = st->trailer ? strchr(st->trailer, ':') : NULL;
    if ((*flags & NGHTTP2_DATA_FLAG_EOF) && colon && colon != st->trailer) {
        nghttp2_nv nv = {(uint8_t *)st->trailer, (uint8_t *)colon + 1, (size_t)(colon - st->trailer),
                         strlen(colon + 1), NGHTTP2_NV_FLAG_NONE};
        if (nghttp2_submit_trailer(s, id, &nv, 1) == 0)
            *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
    }
    return (ssize_t)n;
}

#define NV(n, v) {(uint8_t *)(n), (uint8_t *)(v), strlen(n), strlen(v), NGHTTP2_NV_FLAG_NONE}

/* Submit a response: status, content type, length (or none when < 0), the
 * ?resp-header extras, and the body the stream holds (none for HEAD). */
static void submit(struct h2s *st, int status, const char *ctype, int64_t length)
{
    char sbuf[8], lbuf[24];
    snprintf(sbuf, sizeof sbuf, "%d", status);
    snprintf(lbuf, sizeof lbuf, "%lld", (long long)length);
    nghttp2_nv nv[4 + MAX_RESP_HEADERS];
    size_t n = 0;
    nv[n++] = (nghttp2_nv)NV(":status", sbuf);
    if (ctype)
        nv[n++] = (nghttp2_nv)NV("content-type", ctype);
    if (length >= 0)
        nv[n++] = (nghttp2_nv)NV("content-length", lbuf);
    nv[n++] = (nghttp2_nv)NV("x-upstream", st->h->c->srv->name);
    char *extra = mg_up_resp_headers(st->rq.target);
    for (char *line = extra, *end; line && *line && n < MG_ARRAY_LEN(nv); line = end + 2) {
        end = strstr(line, "\r\n");
        if (!end)
            break;
        *end = '\0';
        char *colon = strchr(line, ':');
        if (!colon)
            continue;
        *colon = '\0';
        mg_lower(line);     /* HTTP/2 field names are lower case */
        const char *v = colon + 1;
        while (*v == ' ')
            v++;
        nv[n++] = (nghttp2_nv)NV(line, v);
    }
    bool has_body = strcmp(st->rq.method, "HEAD") != 0 && (st->bytes ? st->bytes_left > 0 : st->body_len > 0);
    nghttp2_data_provider prd = {.source.ptr = st, .read_callback = read_body};
    nghttp2_submit_response(st->h->s, st->id, nv, n, has_body ? &prd : NULL);
    free(extra);    /* nghttp2 copied the fields */
}

static void respond_echo(struct h2s *st, int status)
{
    if (status == 204 || status == 304) {
        submit(st, status, NULL, -1);
        return;
    }
    st->body = mg_up_echo_json(st->h->c, &st->rq);
    st->body_len = strlen(st->body);
    submit(st, status, "application/json", (int64_t)st->body_len);
}

static void respond_text(struct h2s *st, int status, const char *text)
{
    st->body = mg_xstrdup(text);
    st->body_len = strlen(text);
    submit(st, status, "text/plain", (int64_t)st->body_len);
}

static void slow_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct h2s *st = arg;
    struct conn *c = st->h->c;
    respond_echo(st, 200);
    h2_send(c);             /* may free c */
}

/* The stream's request is complete: route it as mg_up_dispatch does. */
static void respond(struct h2s *st)
{
    struct conn *c = st->h->c;
    if (!st->rq.method)
        st->rq.method = mg_xstrdup("-");
    if (!st->rq.target)
        st->rq.target = mg_xstrdup("/");
    fprintf(stderr, "mg_upstream[%s]: %s h2 stream %d %s %s body=%llu\n", c->srv->name, c->peer,
            st->id, st->rq.method, st->rq.target, (unsigned long long)st->rq.body_len);
    char *path = mg_xstrdup(st->rq.target);
    char *query = strchr(path, '?');
    if (query)
        *query++ = '\0';
    const char *from = NULL, *v;
    size_t len = 0;
    uint64_t num;
    if (query && (v = mg_up_query_next(query, "trailer", &len, &from))) {
        st->trailer = mg_xstrndup(v, len);
        mg_lower(st->trailer);
    }
    from = NULL;                    /* the lookups below start over */
    if (c->srv->status) {           /* --status: a failing (or fixed) upstream */
        respond_echo(st, c->srv->status);
    } else if (strcmp(path, "/close") == 0) {
        st->h->close_now = true;
    } else if (strcmp(path, "/goaway") == 0) {
        /* this stream is the last one served; it is answered normally */
        nghttp2_submit_goaway(st->h->s, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_NO_ERROR, NULL, 0);
        respond_echo(st, 200);
    } else if (strcmp(path, "/reset") == 0) {
        num = NGHTTP2_INTERNAL_ERROR;
        if (query && (v = mg_up_query_next(query, "code", &len, &from))) {
            char *s = mg_xstrndup(v, len);
            if (mg_parse_uint(s, 0, 13, &num) != 0)
                num = NGHTTP2_INTERNAL_ERROR;
            free(s);
        }
        nghttp2_submit_rst_stream(st->h->s, NGHTTP2_FLAG_NONE, st->id, (uint32_t)num);
    } else if (strcmp(path, "/slow") == 0) {
        num = 0;
        if (query && (v = mg_up_query_next(query, "ms", &len, &from))) {
            char *s = mg_xstrndup(v, len);
            if (mg_parse_uint(s, 0, MAX_SLOW_MS, &num) != 0)
                num = MAX_SLOW_MS;
            free(s);
        }
        struct timeval tv = {(time_t)(num / 1000), (suseconds_t)(num % 1000) * 1000};
        st->timer = evtimer_new(c->srv->base, slow_cb, st);
        evtimer_add(st->timer, &tv);
    } else if (strncmp(path, "/status/", 8) == 0) {
        if (mg_parse_uint(path + 8, 200, 599, &num) != 0)
            respond_text(st, 400, "bad /status/NNN (200..599)\n");
        else
            respond_echo(st, (int)num);
    } else if (strncmp(path, "/bytes/", 7) == 0) {
        if (mg_parse_uint(path + 7, 0, MAX_BYTES, &num) != 0) {
            respond_text(st, 400, "bad /bytes/N\n");
        } else {
            st->bytes = true;
            st->bytes_left = st->bytes_total = num;
            submit(st, 200, "application/octet-stream", (int64_t)num);
        }
    } else if (strncmp(path, "/file/", 6) == 0) {
        const char *ct;
        if (mg_up_file_read(c->srv, path + 6, &st->body, &st->body_len, &ct) != 0)
            respond_text(st, 404, "not found\n");
        else
            submit(st, 200, ct, (int64_t)st->body_len);
    } else {
        respond_echo(st, 200);
    }
    free(path);
}

/* ---------------------------------------------------------------- callbacks */

static int on_begin_headers(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
    struct h2 *h = ud;
    if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    struct h2s *st = stream_new(h, f->hd.stream_id);
    nghttp2_session_set_stream_user_data(s, f->hd.stream_id, st);
    return 0;
}

static int on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name, size_t namelen,
                     const uint8_t *value, size_t valuelen, uint8_t flags, void *ud)
{
    (void)flags;
    (void)ud;
    struct h2s *st = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);
    if (!st)
        return 0;       /* trailers of a stream we do not know, or a push */
    st->header_bytes += namelen + valuelen + 32;
    if (st->header_bytes > H2_MAX_HEADER_BYTES)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;   /* resets the stream */
    if (namelen == 7 && memcmp(name, ":method", 7) == 0 && !st->rq.method)
        st->rq.method = mg_xstrndup((const char *)value, valuelen);
    else if (namelen == 5 && memcmp(name, ":path", 5) == 0 && !st->rq.target)
        st->rq.target = mg_xstrndup((const char *)value, valuelen);
    if (st->rq.nheaders++)
        mg_buf_adds(&st->rq.headers_json, ",");
    mg_buf_adds(&st->rq.headers_json, "[");
    mg_up_json_str(&st->rq.headers_json, (const char *)name, namelen);
    mg_buf_adds(&st->rq.headers_json, ",");
    mg_up_json_str(&st->rq.headers_json, (const char *)value, valuelen);
    mg_buf_adds(&st->rq.headers_json, "]");
    return 0;
}

static int on_data(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *data, size_t len,
                   void *ud)
{
    (void)flags;
    (void)ud;
    struct h2s *st = nghttp2_session_get_stream_user_data(s, id);
    if (st) {
        EVP_DigestUpdate(st->rq.sha, data, len);
        st->rq.body_len += len;
        if (st->streaming) {
            evbuffer_add(st->echo, data, len);
            nghttp2_session_resume_data(s, id);
        }
    }
    return 0;
}

/* /stream: the response starts with the request, before its body. */
static void stream_start(struct h2s *st)
{
    const char *q = strchr(st->rq.target, '?'), *from = NULL, *v;
    size_t len = 0;
    if (q && (v = mg_up_query_next(q + 1, "trailer", &len, &from))) {
        st->trailer = mg_xstrndup(v, len);
        mg_lower(st->trailer);
    }
    fprintf(stderr, "mg_upstream[%s]: %s h2 stream %d %s %s streaming\n", st->h->c->srv->name,
            st->h->c->peer, st->id, st->rq.method, st->rq.target);
    st->streaming = true;
    st->echo = evbuffer_new();
    if (!st->echo)
        mg_oom();
    nghttp2_nv nv[] = { NV(":status", "200"), NV("content-type", "application/grpc"),
                        NV("x-upstream", st->h->c->srv->name) };
    nghttp2_data_provider prd = {.source.ptr = st, .read_callback = read_body};
    nghttp2_submit_response(st->h->s, st->id, nv, MG_ARRAY_LEN(nv), &prd);
}

static int on_frame_recv(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
    (void)ud;
    struct h2s *st = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);
    if (st && f->hd.type == NGHTTP2_HEADERS && f->headers.cat == NGHTTP2_HCAT_REQUEST &&
        st->rq.target && strncmp(st->rq.target, "/stream", 7) == 0 && !st->streaming)
        stream_start(st);
    if ((f->hd.type != NGHTTP2_HEADERS && f->hd.type != NGHTTP2_DATA) ||
        !(f->hd.flags & NGHTTP2_FLAG_END_STREAM))
        return 0;
    if (st && st->streaming) {
        st->echo_eof = true;
        nghttp2_session_resume_data(s, f->hd.stream_id);
    } else if (st && !st->h->close_now) {
        respond(st);
    }
    return 0;
}

static int on_stream_close(nghttp2_session *s, int32_t id, uint32_t code, void *ud)
{
    (void)code;
    (void)ud;
    struct h2s *st = nghttp2_session_get_stream_user_data(s, id);
    if (st) {
        nghttp2_session_set_stream_user_data(s, id, NULL);
        stream_free(st);
    }
    return 0;
}

/* ---------------------------------------------------------------- entry */

int mg_up_h2_preface(struct evbuffer *in)
{
    static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    size_t want = sizeof preface - 1, have = evbuffer_get_length(in);
    size_t n = have < want ? have : want;
    unsigned char buf[sizeof preface];
    if (evbuffer_copyout(in, buf, n) != (ev_ssize_t)n)
        return 0;
    if (memcmp(buf, preface, n) != 0)
        return 0;
    return n == want ? 1 : -1;
}

void mg_up_h2_start(struct conn *c)
{
    nghttp2_session_callbacks *cbs;
    if (nghttp2_session_callbacks_new(&cbs) != 0)
        mg_oom();
    nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
    struct h2 *h = mg_xcalloc(1, sizeof *h);
    h->c = c;
    c->h2 = h;
    int rc = nghttp2_session_server_new(&h->s, cbs, h);
    nghttp2_session_callbacks_del(cbs);
    if (rc != 0)
        mg_oom();
    nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, H2_MAX_STREAMS}};
    nghttp2_submit_settings(h->s, NGHTTP2_FLAG_NONE, iv, MG_ARRAY_LEN(iv));
    mg_up_h2_read(c);
}

void mg_up_h2_read(struct conn *c)
{
    struct h2 *h = c->h2;
    struct evbuffer *in = bufferevent_get_input(c->bev);
    while (evbuffer_get_length(in) > 0) {
        struct evbuffer_iovec v[4];
        int k = evbuffer_peek(in, -1, NULL, v, 4);
        size_t done = 0;
        for (int i = 0; i < k && i < 4; i++) {
            ssize_t r = nghttp2_session_mem_recv(h->s, v[i].iov_base, v[i].iov_len);
            if (r < 0) {
                fprintf(stderr, "mg_upstream[%s]: %s: h2: %s\n", c->srv->name, c->peer,
                        nghttp2_strerror((int)r));
                mg_up_conn_free(c, true);
                return;
            }
            done += (size_t)r;
        }
        if (h->close_now) {
            mg_up_conn_free(c, true);
            return;
        }
        evbuffer_drain(in, done);
    }
    h2_send(c);
}

void mg_up_h2_write(struct conn *c)
{
    h2_send(c);
}

void mg_up_h2_free(struct conn *c)
{
    struct h2 *h = c->h2;
    nghttp2_session_del(h->s);
    while (h->streams)
        stream_free(h->streams);
    free(h);
    c->h2 = NULL;
}
