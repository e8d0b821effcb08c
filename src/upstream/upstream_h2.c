/* upstream_h2.c - the HTTP/2 client for upstreams (nghttp2 client
 * sessions): per worker and cluster a few multiplexed connections per
 * endpoint, h2c by prior knowledge in plain text, ALPN over TLS.
 *
 * Re-entrancy, as in h2_server.c: nghttp2_session_mem_recv/_send run only
 * from the top-level callbacks here (read, write, event, pump, timers).
 * nghttp2 callbacks only store what arrived in the stream; the down ops are
 * called afterwards by mg_up2_dispatch() (upstream_h2_rx.c), from the top
 * level. A down op may detach requests (ours or others on the connection):
 * a detach only unlinks the stream, submits RST_STREAM and schedules the
 * pump; a connection is freed only when no callback of its own is running
 * (`busy`). */
#include "upstream/internal.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nghttp2/nghttp2.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <openssl/ssl.h>
#include "net/types.h"
#include "http1/http1.h"
#include "log/log.h"
#include "http/types.h"
#include "route/types.h"
#include "snapshot/snapshot.h"
#include "base/base.h"

static void conn_pump(struct mg_up2_conn *c);

static struct mg_cluster_rt *rt_of(struct mg_cluster *cl, struct mg_worker *w)
{
    return &cl->rt[w->id < cl->n_workers ? w->id : 0];
}

static void schedule(struct mg_up2_conn *c)
{
    if (c->pump_ev && !c->dead)
        event_active(c->pump_ev, EV_TIMEOUT, 0);
}

bool mg_up2_wanted(const struct mg_request *r)
{
    const struct mg_cluster *cl = r->dest->cluster;
    if (cl->h2 == MG_UP_H2_REQUIRED)
        return true;
    if (rt_of((struct mg_cluster *)cl, r->conn->w)->h2_fallback)
        return false;
    if (r->upgrade || mg_request_header(r, "upgrade") || strcmp(r->method, "CONNECT") == 0)
        return false;                   /* upgrades stay HTTP/1.1, as Envoy does */
    return cl->h2 == MG_UP_H2_PREFER ||
           (cl->use_client_protocol && r->protocol && strcmp(r->protocol, "HTTP/2") == 0);
}

/* ---- streams ---- */

static void stream_unlink(struct mg_up2_stream *s)
{
    struct mg_up2_conn *c = s->c;
    if (s->prev)
        s->prev->next = s->next;
    else
        c->streams = s->next;
    if (s->next)
        s->next->prev = s->prev;
    c->n_streams--;
}

/* Forget the request side of s and free it. The nghttp2 stream (if any)
 * no longer points at it. */
void mg_up2_stream_free(struct mg_up2_stream *s)
{
    struct mg_up2_conn *c = s->c;
    if (s->r) {
        struct mg_request *r = s->r;
        r->up2 = NULL;
        s->r = NULL;
        struct mg_cluster_rt *rt = rt_of(c->cl, c->w);
        if (rt->active[c->ep])
            rt->active[c->ep]--;
        atomic_fetch_sub_explicit(&c->cl->g_active, 1, memory_order_relaxed);
    }
    if (s->id && c->ng) {
        if (!s->closed)
            nghttp2_session_set_stream_user_data(c->ng, s->id, NULL);
        size_t left = evbuffer_get_length(s->rbuf);
        if (left)                       /* never taken downstream: give the window back */
            nghttp2_session_consume(c->ng, s->id, left);
    }
    if (s->try_timer)
        event_free(s->try_timer);
    evbuffer_free(s->body);
    evbuffer_free(s->rbuf);
    stream_unlink(s);
    free(s);
}

static void on_try_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct mg_up2_stream *s = arg;
    mg_cluster_outcome(s->c->cl, s->c->ep, MG_OD_TIMEOUT, 0);
    if (s->r)
        mg_request_upstream_failed(s->r, 504, "UT", "timeout");
}

static void start_try_timer(struct mg_up2_stream *s)
{
    const struct mg_http_route *h = s->r->route->cfg;
    if (!h->has_retries || h->retries.per_try_timeout_ms <= 0)
        return;
    s->try_timer = evtimer_new(s->c->w->base, on_try_timeout, s);
    int64_t ms = h->retries.per_try_timeout_ms;
    struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000) };
    evtimer_add(s->try_timer, &tv);
}

/* ---- connection life ---- */

static void conn_free(struct mg_up2_conn *c)
{
    struct mg_cluster_rt *rt = rt_of(c->cl, c->w);
    for (struct mg_up2_conn **pp = &rt->h2; *pp; pp = &(*pp)->next)
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    while (c->streams)
        mg_up2_stream_free(c->streams);
    if (c->dnsreq)
        mg_dns_cancel(c->dnsreq);       /* its callback does not run */
    if (c->pump_ev)
        event_free(c->pump_ev);
    if (c->ng)
        nghttp2_session_del(c->ng);
    if (c->io) {
        if (c->ssl && c->connected)
            mg_io_shutdown(c->io);      /* close_notify */
        mg_io_free(c->io);
    }
    if (rt->n_open)
        rt->n_open--;
    atomic_fetch_sub_explicit(&c->cl->g_open, 1, memory_order_relaxed);
    struct mg_snapshot *snap = c->snap;
    free(c);
    mg_snapshot_unref(snap);            /* last: may free the cluster */
}

/* The connection is unusable: every stream gets its outcome (retry or an
 * answer), then the connection goes. `connect` tells a failure to connect
 * (503 UF, retryable as connect-failure) from a lost connection (503 UC
 * before headers, a truncated response after). */
static void conn_fail(struct mg_up2_conn *c, bool connect)
{
    c->retired = true;
    c->dead = true;
    c->busy++;
    for (struct mg_up2_stream *s = c->streams; s; s = c->streams) {
        struct mg_request *r = s->r;
        if (!r) {
            mg_up2_stream_free(s);
            continue;
        }
        bool head_sent = s->head_sent, submitted = s->id != 0;
        mg_up2_stream_free(s);                 /* r->up2 = NULL: the detach below is a no-op */
        if (connect || !head_sent)
            mg_cluster_outcome(c->cl, c->ep, MG_OD_CONNECT_FAILED, 0);
        if (connect)
            mg_request_upstream_failed(r, 503, "UF", "connect-failure");
        else if (!head_sent)
            mg_request_upstream_failed(r, 503, "UC", submitted ? "reset" : "connect-failure");
        else
            mg_request_upstream_failed(r, 502, "UPE", NULL);
    }
    c->busy--;
}


static void set_idle(struct mg_up2_conn *c)
{
    if (!c->io || !c->connected)
        return;
    int64_t ms = c->cl->idle_timeout_ms;
    struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000) };
    mg_io_set_timeouts(c->io, c->n_streams == 0 && ms > 0 ? &tv : NULL, NULL);
}

/* Free the connection when it is over and no callback of its own runs:
 * failed, the peer ended the session (GOAWAY, all streams done), or no
 * stream left on a retired connection or one of an older snapshot. */
static bool conn_maybe_close(struct mg_up2_conn *c)
{
    if (c->busy)
        return false;
    if (!c->dead && c->n_streams == 0 && (c->retired || c->snap != c->w->snap))
        c->dead = true;
    if (!c->dead && c->ng && !nghttp2_session_want_read(c->ng) && !nghttp2_session_want_write(c->ng))
        c->dead = true;
    if (!c->dead) {
        if (c->n_streams == 0)
            set_idle(c);
        return false;
    }
    if (c->streams)
        conn_fail(c, c->fail_connect);
    conn_free(c);
    return true;
}

static void conn_send(struct mg_up2_conn *c)
{
    struct evbuffer *out = mg_io_get_output(c->io);
    while (!c->dead && evbuffer_get_length(out) < UP2_OUT_WM) {
        const uint8_t *data;
        ssize_t n = nghttp2_session_mem_send(c->ng, &data);
        if (n < 0) {
            conn_fail(c, false);
            return;
        }
        if (n == 0)
            break;
        evbuffer_add(out, data, (size_t)n);
    }
}

/* Top level: deliver what arrived, send what is queued, close when over. */
static void conn_pump(struct mg_up2_conn *c)
{
    c->busy++;
    if (c->ng && !c->dead) {
        mg_up2_dispatch(c);
        if (!c->dead)
            conn_send(c);
        for (struct mg_up2_stream *s = c->streams; s; s = s->next)
            if (s->want_body) {         /* the send took body bytes: more next turn */
                schedule(c);
                break;
            }
    }
    c->busy--;
    conn_maybe_close(c);
}

static void pump_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    conn_pump(arg);
}

/* ---- requests onto the session ---- */

static void nv_set(nghttp2_nv *nv, const char *k, const char *v)
{
    nv->name = (uint8_t *)k;
    nv->namelen = strlen(k);
    nv->value = (uint8_t *)v;
    nv->valuelen = strlen(v);
    nv->flags = NGHTTP2_NV_FLAG_NONE;
}

/* Connection-specific fields have no place in HTTP/2 (RFC 9113 8.2.2). */
static bool skip_field(const char *k, const char *v)
{
    if (strcmp(k, "te") == 0)
        return mg_strcasecmp(v, "trailers") != 0;
    return mg_h1_is_hop_by_hop(k, strlen(k)) || strcmp(k, "host") == 0 ||
           strcmp(k, "content-length") == 0 || k[0] == ':' || !k[0];
}

/* Submit s on the live session; false (s untouched) when nghttp2 refuses. */
static bool stream_submit(struct mg_up2_stream *s)
{
    struct mg_request *r = s->r;
    struct mg_up2_conn *c = s->c;
    nghttp2_nv *nv = mg_arena_alloc(&r->arena, (r->n_uh + 5) * sizeof(*nv));
    size_t n = 0;
    nv_set(&nv[n++], ":method", r->method);
    nv_set(&nv[n++], ":scheme", c->ssl ? "https" : "http");
    nv_set(&nv[n++], ":authority", r->up_authority ? r->up_authority : c->cl->host);
    nv_set(&nv[n++], ":path", r->up_path);
    for (size_t i = 0; i < r->n_uh; i++) {
        if (!r->uh[i].key || !r->uh[i].value)
            continue;
        char *k = mg_arena_strndup(&r->arena, r->uh[i].key, strlen(r->uh[i].key));
        mg_lower(k);                    /* route header edits may be mixed case */
        if (skip_field(k, r->uh[i].value))
            continue;
        nv_set(&nv[n++], k, r->uh[i].value);
    }
    if (r->body == MG_BODY_LENGTH)
        nv_set(&nv[n++], "content-length", mg_arena_u64(&r->arena, (unsigned long long)r->content_length));
    nghttp2_data_provider dp = { .source = { .ptr = s }, .read_callback = mg_up2_body_read_cb };
    bool body = r->body != MG_BODY_NONE && !(r->body == MG_BODY_LENGTH && r->content_length == 0);
    if (!body)
        s->body_eof = true;
    int32_t id = nghttp2_submit_request(c->ng, NULL, nv, n, body ? &dp : NULL, s);
    if (id < 0)
        return false;
    s->id = id;
    s->want_continue = r->expect_continue;
    s->want_body = body;
    start_try_timer(s);
    atomic_fetch_add_explicit(&c->w->metrics->upstream_rq_total, 1, memory_order_relaxed);
    return true;
}

/* ---- connecting ---- */

static void bev_read_cb(struct mg_io *io, void *arg)
{
    struct mg_up2_conn *c = arg;
    if (!c->ng || c->dead)
        return;
    struct evbuffer *in = mg_io_get_input(io);
    c->busy++;
    while (!c->dead && evbuffer_get_length(in)) {
        struct evbuffer_iovec v[16];
        int k = evbuffer_peek(in, -1, NULL, v, 16);
        size_t done = 0;
        for (int i = 0; i < k && i < 16; i++) {
            ssize_t rv = nghttp2_session_mem_recv(c->ng, v[i].iov_base, v[i].iov_len);
            if (rv < 0) {
                conn_fail(c, false);
                break;
            }
            done += (size_t)rv;
        }
        if (c->dead)
            break;
        evbuffer_drain(in, done);
    }
    c->busy--;
    conn_pump(c);
}

static void bev_write_cb(struct mg_io *io, void *arg)
{
    (void)io;
    struct mg_up2_conn *c = arg;
    if (c->ng && !c->dead)
        conn_pump(c);
}

static void start_session(struct mg_up2_conn *c);

static void bev_event_cb(struct mg_io *io, short what, void *arg)
{
    struct mg_up2_conn *c = arg;
    c->busy++;
    if (what & MG_IO_CONNECTED) {
        int one = 1;
        setsockopt(mg_io_getfd(io), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        c->connected = true;
        char why[768];
        if (c->ssl && c->cl->mesh && mg_mesh_peer_refused(c->cl, c->ssl, why, sizeof(why))) {
            atomic_fetch_add_explicit(&c->w->metrics->upstream_secure_naming_failed, 1,
                                      memory_order_relaxed);
            for (struct mg_up2_stream *s = c->streams; s; s = s->next)
                if (s->r)
                    mg_upstream_refused_by_name(s->r, why);
            c->fail_connect = true;
            conn_fail(c, true);
        } else if (c->ssl && c->cl->n_sans && !c->cl->insecure &&
            !mg_tls_peer_san_in(c->ssl, c->cl->sans, c->cl->n_sans)) {
            c->fail_connect = true;
            conn_fail(c, true);
        } else {
            start_session(c);
        }
    } else if (!c->connected) {
        c->fail_connect = true;
        conn_fail(c, true);
    } else if ((what & MG_IO_TIMEOUT) && c->n_streams == 0) {
        c->dead = true;                 /* idle timeout */
    } else {
        conn_fail(c, false);
    }
    c->busy--;
    conn_pump(c);
}

/* ALPN said http/1.1 (or nothing) where HTTP/2 was only preferred: this
 * worker talks HTTP/1.1 to the cluster from now on, and the waiting
 * requests go that way. */
static void fall_back(struct mg_up2_conn *c)
{
    rt_of(c->cl, c->w)->h2_fallback = true;
    c->dead = true;
    while (c->streams) {
        struct mg_request *r = c->streams->r;
        mg_up2_stream_free(c->streams);
        if (r)
            mg_upstream_h1_start(r, c->cl);
    }
}

static void start_session(struct mg_up2_conn *c)
{
    if (c->ssl) {
        const unsigned char *p = NULL;
        unsigned int l = 0;
        SSL_get0_alpn_selected(c->ssl, &p, &l);
        if (!mg_mesh_alpn_is_h2(p, l)) {
            if (c->cl->h2 == MG_UP_H2_REQUIRED) {
                c->fail_connect = true;
                conn_fail(c, true);
            } else {
                fall_back(c);
            }
            return;
        }
    }
    nghttp2_session_callbacks *cbs;
    nghttp2_option *opt;
    if (nghttp2_session_callbacks_new(&cbs) != 0 || nghttp2_option_new(&opt) != 0)
        abort();                        /* allocation failure policy: as mg_xmalloc */
    mg_up2_set_callbacks(cbs);
    nghttp2_option_set_no_auto_window_update(opt, 1);
    nghttp2_option_set_peer_max_concurrent_streams(opt, UP2_ASSUMED_STREAMS);
    int rv = nghttp2_session_client_new2(&c->ng, cbs, c, opt);
    nghttp2_session_callbacks_del(cbs);
    nghttp2_option_del(opt);
    if (rv != 0) {
        c->ng = NULL;
        conn_fail(c, true);
        return;
    }
    nghttp2_settings_entry iv[] = {
        { NGHTTP2_SETTINGS_ENABLE_PUSH, 0 },
        { NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, UP2_STREAM_WINDOW },
        { NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, UP2_MAX_RESP_HEADER_BYTES },
    };
    nghttp2_submit_settings(c->ng, NGHTTP2_FLAG_NONE, iv, sizeof(iv) / sizeof(iv[0]));
    nghttp2_session_set_local_window_size(c->ng, NGHTTP2_FLAG_NONE, 0, UP2_CONN_WINDOW);
    mg_io_set_timeouts(c->io, NULL, NULL);
    mg_io_setwatermark(c->io, EV_WRITE, UP2_OUT_WM / 2, 0);
    for (struct mg_up2_stream *s = c->streams, *nx; s; s = nx) {
        nx = s->next;
        if (s->id || !s->r)
            continue;
        if (!stream_submit(s)) {
            struct mg_request *r = s->r;
            mg_up2_stream_free(s);
            mg_request_upstream_failed(r, 503, "UF", "connect-failure");
            nx = c->streams;            /* the list may have changed */
        }
    }
}

static int conn_connect(struct mg_up2_conn *c, const struct sockaddr *sa, int salen)
{
    struct mg_cluster *cl = c->cl;
    struct event_base *base = c->w->base;
    SSL_CTX *ctx = mg_mesh_conn_ctx(cl, c->ep, c->w);
    if (ctx) {
        c->ssl = SSL_new(ctx);
        if (!c->ssl)
            return -1;
        SSL_set_tlsext_host_name(c->ssl, cl->sni);
        if (!cl->insecure && cl->n_sans == 0 && !cl->mesh)
            SSL_set1_host(c->ssl, cl->sni);
        static const unsigned char h2_only[] = "\x02h2";
        static const unsigned char h2_h1[] = "\x02h2\x08http/1.1";
        if (cl->mesh)
            mg_mesh_set_alpn(c->ssl, cl->h2 == MG_UP_H2_REQUIRED ? MG_UP_H2_REQUIRED : MG_UP_H2_PREFER);
        else if (cl->h2 == MG_UP_H2_REQUIRED)
            SSL_set_alpn_protos(c->ssl, h2_only, sizeof(h2_only) - 1);
        else
            SSL_set_alpn_protos(c->ssl, h2_h1, sizeof(h2_h1) - 1);
        c->io = mg_io_socket_new(base, -1, c->ssl, MG_IO_CONNECTING);
        if (!c->io) {
            SSL_free(c->ssl);           /* not owned by an mg_io yet */
            c->ssl = NULL;
            return -1;
        }
    } else {
        c->io = mg_io_socket_new(base, -1, NULL, MG_IO_OPEN);
        if (!c->io)
            return -1;
    }
    mg_io_setcb(c->io, bev_read_cb, bev_write_cb, bev_event_cb, c);
    struct timeval tv = { (time_t)(cl->connect_timeout_ms / 1000),
                          (suseconds_t)((cl->connect_timeout_ms % 1000) * 1000) };
    mg_io_set_timeouts(c->io, &tv, &tv);
    mg_io_enable(c->io, EV_READ | EV_WRITE);
    atomic_fetch_add_explicit(&c->w->metrics->upstream_cx_total, 1, memory_order_relaxed);
    if (mg_io_connect(c->io, sa, salen) < 0 ||
        mg_pp_arm(cl, &c->pp, c->io, c->ssl) < 0)
        return -1;
    int one = 1;                        /* the handshake's flights go out at once too */
    setsockopt(mg_io_getfd(c->io), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return 0;
}

/* The name resolved into a range the cluster's guard refuses (its streams
 * are all of the entrance the guard covers: upstream/types.h): every
 * waiting request is answered 403 with the guard's reason, and the
 * connection is not made. */
static bool conn_refused(struct mg_up2_conn *c, const struct sockaddr *sa)
{
    if (!c->cl->resolved_refused || !c->streams || !c->streams->r)
        return false;
    const char *why = c->cl->resolved_refused(c->streams->r, sa);
    if (!why)
        return false;
    char ip[64] = "";
    struct mg_addr a;
    if (mg_addr_from_sockaddr(&a, sa) == 0)
        mg_addr_ip_str(&a, ip, sizeof(ip));
    c->retired = true;
    c->dead = true;
    bool first = true;
    for (struct mg_up2_stream *s = c->streams; s; s = c->streams) {
        struct mg_request *r = s->r;
        mg_up2_stream_free(s);          /* r->up2 = NULL: the release detaches nothing */
        if (!r)
            continue;
        /* the first request was counted when asked; ask (and count) the others */
        const char *rw = first ? why : c->cl->resolved_refused(r, sa);
        first = false;
        snprintf(r->upstream_host, sizeof(r->upstream_host), "%s", ip);
        r->flags = "NR";
        mg_request_reply(r, 403, "egress destination not allowed", rw ? rw : why, !r->body_done);
    }
    return true;
}

static void dns_cb(int err, const struct mg_addr *addrs, size_t n, void *arg)
{
    struct mg_up2_conn *c = arg;
    c->dnsreq = NULL;
    c->busy++;
    int rc = -1;
    struct sockaddr_storage ss;
    socklen_t sl = err || n == 0 ? 0 : mg_addr_to_sockaddr(&addrs[0], c->cl->eps[c->ep].port, &ss);
    /* checked on every use: a cached answer is refused like a fresh one */
    if (sl && conn_refused(c, (const struct sockaddr *)&ss)) {
        c->busy--;
        conn_maybe_close(c);
        return;
    }
    if (sl)
        rc = conn_connect(c, (const struct sockaddr *)&ss, (int)sl);
    if (rc < 0) {
        c->fail_connect = true;
        conn_fail(c, true);
    }
    c->busy--;
    conn_maybe_close(c);
}

/* The least recently opened connection of this worker that carries no
 * stream and belongs to another client than down (proxyProtocol), when
 * there are at least `keep` such; NULL otherwise. */
static struct mg_up2_conn *pp_idle_victim(struct mg_cluster_rt *rt, const struct mg_conn *down,
                                          size_t keep)
{
    struct mg_up2_conn *last = NULL;
    size_t n = 0;
    for (struct mg_up2_conn *x = rt->h2; x; x = x->next)
        if (x->pp.on && !x->n_streams && !x->busy && !mg_pp_key_fits(&x->pp, down)) {
            last = x;                   /* the list is newest first */
            n++;
        }
    return n >= keep ? last : NULL;
}

static struct mg_up2_conn *conn_open(struct mg_request *r, struct mg_cluster *cl, size_t ep)
{
    struct mg_worker *w = r->conn->w;
    struct mg_cluster_rt *rt = rt_of(cl, w);
    if (cl->proxy_protocol) {
        /* each serves one client: past the bound, the oldest idle one goes */
        struct mg_up2_conn *old = pp_idle_victim(rt, r->conn, UP_PP_IDLE_MAX);
        if (old)
            conn_free(old);
    }
    struct mg_up2_conn *c = mg_xcalloc(1, sizeof(*c));
    c->cl = cl;
    c->w = w;
    c->ep = ep;
    mg_pp_key_set(&c->pp, cl, r->conn);
    c->snap = mg_snapshot_ref(r->snap);
    c->pump_ev = event_new(w->base, -1, 0, pump_cb, c);
    if (!c->pump_ev)
        abort();
    rt->n_open++;
    atomic_fetch_add_explicit(&cl->g_open, 1, memory_order_relaxed);
    c->next = rt->h2;
    rt->h2 = c;
    return c;
}

/* Begin connecting (after the first stream is attached). */
static void conn_begin(struct mg_up2_conn *c)
{
    const struct mg_endpoint *e = &c->cl->eps[c->ep];
    c->busy++;
    if (e->resolved) {
        if (conn_connect(c, (const struct sockaddr *)&e->sa, (int)e->salen) < 0) {
            c->fail_connect = true;
            conn_fail(c, true);
        }
    } else {
        /* NULL when answered synchronously (from the cache) */
        c->dnsreq = mg_dns_resolve(c->w->resolver, e->address, AF_UNSPEC, dns_cb, c);
    }
    c->busy--;
    conn_maybe_close(c);
}

/* ---- the entry points (upstream/internal.h) ---- */

static uint64_t conn_capacity(const struct mg_up2_conn *c)
{
    uint64_t lim = c->ng ? nghttp2_session_get_remote_settings(c->ng, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS)
                         : UP2_ASSUMED_STREAMS;
    if (c->cl->max_streams_per_conn && c->cl->max_streams_per_conn < lim)
        lim = c->cl->max_streams_per_conn;
    return lim;
}

static bool conn_usable(const struct mg_up2_conn *c, const struct mg_request *r)
{
    return !c->dead && !c->retired && c->snap == r->snap && c->n_streams < conn_capacity(c) &&
           mg_pp_key_fits(&c->pp, r->conn);   /* not another client's PROXY header */
}

static void overflow(struct mg_request *r)
{
    r->flags = "UO";
    r->n_local_h = 0;
    r->local_h[r->n_local_h].key = (char *)"x-envoy-overloaded";
    r->local_h[r->n_local_h++].value = (char *)"true";
    mg_request_reply(r, 503, "upstream connect error or disconnect/reset before headers. "
                     "reset reason: overflow", "upstream_overflow", !r->body_done);
}

void mg_up2_start(struct mg_request *r)
{
    struct mg_cluster *cl = r->dest->cluster;
    struct mg_worker *w = r->conn->w;
    struct mg_cluster_rt *rt = rt_of(cl, w);
    if (!cl->n_eps) {
        mg_request_upstream_failed(r, 503, "UH", NULL);
        return;
    }
    if (cl->max_requests &&
        atomic_load_explicit(&cl->g_active, memory_order_relaxed) >= cl->max_requests) {
        overflow(r);
        return;
    }
    size_t ep = mg_cluster_pick_retry(cl, rt, w, r->up_tried, mg_upstream_retry_remote(r));
    if (ep == SIZE_MAX) {               /* every endpoint ejected by outlier detection */
        r->flags = "UH";
        mg_request_reply(r, 503, "no healthy upstream", "no_healthy_upstream", !r->body_done);
        return;
    }
    struct mg_up2_conn *c = NULL, *any = NULL;
    for (struct mg_up2_conn *x = rt->h2; x; x = x->next) {
        if (!conn_usable(x, r))
            continue;
        if (x->ep == ep) {
            c = x;
            break;
        }
        if (!any && (!cl->od || !mg_od_ejected(cl->od, x->ep)))
            any = x;
    }
    bool fresh = false;
    if (!c) {
        if (!cl->max_connections ||
            atomic_load_explicit(&cl->g_open, memory_order_relaxed) < cl->max_connections) {
            c = conn_open(r, cl, ep);
            fresh = true;
        } else if (any) {
            c = any;
        } else if (cl->proxy_protocol && (c = pp_idle_victim(rt, r->conn, 1))) {
            /* at the limit, an idle connection of another client gives
             * its slot up */
            conn_free(c);
            c = conn_open(r, cl, ep);
            fresh = true;
        } else {
            overflow(r);
            return;
        }
    }
    struct mg_up2_stream *s = mg_xcalloc(1, sizeof(*s));
    s->body = evbuffer_new();
    s->rbuf = evbuffer_new();
    if (!s->body || !s->rbuf)
        abort();
    s->c = c;
    s->r = r;
    r->up2 = s;
    s->next = c->streams;
    if (c->streams)
        c->streams->prev = s;
    c->streams = s;
    c->n_streams++;
    c->n_total++;
    if (cl->max_requests_per_conn && c->n_total >= cl->max_requests_per_conn)
        c->retired = true;
    rt->active[c->ep]++;
    if (c->ep < 64)
        r->up_tried |= (uint64_t)1 << c->ep;
    atomic_fetch_add_explicit(&cl->g_active, 1, memory_order_relaxed);
    snprintf(r->upstream_host, sizeof(r->upstream_host), "%s", cl->eps[c->ep].label);
    if (fresh) {
        conn_begin(c);
        return;
    }
    if (c->ng) {
        if (c->io)
            mg_io_set_timeouts(c->io, NULL, NULL); /* not idle any more */
        if (!stream_submit(s)) {
            mg_up2_stream_free(s);
            mg_request_upstream_failed(r, 503, "UF", "connect-failure");
            return;
        }
        schedule(c);
    }
}

bool mg_up2_body_ready(struct mg_request *r)
{
    struct mg_up2_stream *s = r->up2;
    return s && s->id && !s->c->dead && evbuffer_get_length(s->body) < UP2_BODY_WM;
}

void mg_up2_body_data(struct mg_request *r, struct evbuffer *src, size_t n)
{
    struct mg_up2_stream *s = r->up2;
    if (!s || !n)
        return;
    r->body_started = true;
    evbuffer_remove_buffer(src, s->body, n);
    if (s->deferred && s->id && s->c->ng) {
        s->deferred = false;
        nghttp2_session_resume_data(s->c->ng, s->id);
    }
    schedule(s->c);
}

void mg_up2_body_end(struct mg_request *r)
{
    struct mg_up2_stream *s = r->up2;
    if (!s)
        return;
    s->body_eof = true;
    if (s->deferred && s->id && s->c->ng) {
        s->deferred = false;
        nghttp2_session_resume_data(s->c->ng, s->id);
    }
    schedule(s->c);
}

void mg_up2_resume(struct mg_request *r)
{
    struct mg_up2_stream *s = r->up2;
    if (s)
        schedule(s->c);                 /* delivery happens at the top level */
}

void mg_up2_detach(struct mg_request *r, bool clean)
{
    struct mg_up2_stream *s = r->up2;
    if (!s)
        return;
    struct mg_up2_conn *c = s->c;
    bool done = clean && s->end_seen && s->closed;
    if (s->id && c->ng && !s->closed && !done)
        nghttp2_submit_rst_stream(c->ng, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_CANCEL);
    mg_up2_stream_free(s);
    if (!conn_maybe_close(c))           /* not in a callback of c: an old one goes now */
        schedule(c);
}

void mg_up2_close_idle(struct mg_cluster *cl, int worker_id)
{
    struct mg_cluster_rt *rt = &cl->rt[worker_id];
    for (struct mg_up2_conn *c = rt->h2, *nx; c; c = nx) {
        nx = c->next;
        c->retired = true;
        if (!c->n_streams && !c->busy)
            conn_free(c);
    }
}
