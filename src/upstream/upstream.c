/* upstream.c - per-worker HTTP/1.1 client: endpoint choice, keep-alive
 * pools, connection limits with a bounded pending queue, request framing,
 * response parsing and streaming back through the request's down ops.
 *
 * Re-entrancy: a down op may end the downstream connection, which detaches
 * the request from us. A connection in one of its own callbacks is marked
 * `busy`; a detach then only marks it dead and the callback frees it on
 * the way out. */
#include "upstream/upstream.h"
#include "upstream/internal.h"
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/util.h>
#include <openssl/ssl.h>
#include "net/types.h"
#include "http1/http1.h"
#include "http/types.h"
#include "route/types.h"
#include "snapshot/snapshot.h"
#include "log/log.h"
#include "base/base.h"

#define UP_HIGH_WM (256 * 1024)
#define UP_MAX_HEAD (64 * 1024)
#define UP_HARD_PENDING 1024

/* UC_TUNNEL: the upstream answered an upgrade with 101; the connection is
 * the request's byte stream (mg_upstream_tunnel) until it is detached. */
enum { UC_CONNECTING, UC_HEAD, UC_BODY, UC_DONE, UC_IDLE, UC_TUNNEL };

struct mg_uconn {
    struct mg_uconn *next;              /* idle list */
    struct mg_cluster *cl;
    struct mg_worker *w;
    size_t ep;
    struct mg_pp_key pp;                /* whose connection it is (proxyProtocol) */
    struct mg_io *io;
    SSL *ssl;
    struct mg_request *r;
    struct mg_dns_req *dnsreq;
    uint16_t dial_port;                 /* the port a resolved name is dialled on */
    struct event *try_timer;
    int state;
    int busy;
    bool dead;
    bool reused;
    bool got_bytes;
    bool req_chunked;
    bool req_done;
    bool keep_alive;
    unsigned requests;
    enum mg_h1_body rb;
    uint64_t remaining;
    struct mg_h1_chunked ck;
    /* The dynamic cluster's connections (the forward proxy's, to many
     * hosts): the authority asked for and the address dialled. An idle one
     * is lent only to a request for the same authority whose name resolved,
     * and passed the cluster's check of resolved addresses, to that same
     * address: a connection opened for one name never serves another, even
     * at the same address. NULL key: not reusable. */
    char *dyn_key;
    struct sockaddr_storage dyn_sa;
    socklen_t dyn_salen;
};

/* Idle dynamic-cluster connections one worker keeps (over all hosts): the
 * hosts behind a forward proxy are many, so their pool is bounded. */
#define UP_DYN_IDLE_MAX 32

static void uc_read_cb(struct mg_io *io, void *arg);
static void uc_write_cb(struct mg_io *io, void *arg);
static void uc_event_cb(struct mg_io *io, short what, void *arg);
static void pool_kick(struct mg_cluster *cl, struct mg_worker *w);

static struct mg_cluster_rt *rt_of(struct mg_cluster *cl, struct mg_worker *w)
{
    return &cl->rt[w->id < cl->n_workers ? w->id : 0];
}

static void uc_free(struct mg_uconn *uc)
{
    struct mg_cluster_rt *rt = rt_of(uc->cl, uc->w);
    if (uc->dnsreq)
        mg_dns_cancel(uc->dnsreq);      /* its callback does not run */
    if (uc->try_timer)
        event_free(uc->try_timer);
    if (uc->io) {
        if (uc->ssl && uc->state != UC_CONNECTING)
            mg_io_shutdown(uc->io);     /* close_notify */
        mg_io_free(uc->io);
    }
    free(uc->dyn_key);
    if (rt->n_open)
        rt->n_open--;
    atomic_fetch_sub_explicit(&uc->cl->g_open, 1, memory_order_relaxed);
    free(uc);
}

/* Drop the connection now, or when its callback returns. */
static void uc_close(struct mg_uconn *uc)
{
    uc->r = NULL;
    if (uc->busy) {
        uc->dead = true;
        return;
    }
    struct mg_cluster *cl = uc->cl;
    struct mg_worker *w = uc->w;
    uc_free(uc);
    pool_kick(cl, w);
}

static bool has_uh(const struct mg_request *r, const char *name)
{
    for (size_t i = 0; i < r->n_uh; i++)
        if (mg_strcasecmp(r->uh[i].key, name) == 0)
            return true;
    return false;
}

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

/* RFC 6455 4.2.2: base64(SHA-1(key + GUID)), arena; NULL on failure. */
static char *ws_accept_for(struct mg_arena *a, const char *key)
{
    char cat[128];
    int n = snprintf(cat, sizeof(cat), "%s%s", key, WS_GUID);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int ml = 0;
    if (n < 0 || (size_t)n >= sizeof(cat) || !EVP_Digest(cat, (size_t)n, md, &ml, EVP_sha1(), NULL))
        return NULL;
    char *b = mg_base64_encode(md, ml, false, true);
    char *out = b ? mg_arena_strndup(a, b, strlen(b)) : NULL;
    free(b);
    return out;
}

/* The Sec-WebSocket-Key of an extended CONNECT's upgrade: 16 random bytes. */
static void ws_key_make(struct mg_request *r)
{
    unsigned char k[16];
    if (RAND_bytes(k, sizeof(k)) != 1)
        return;
    char *b = mg_base64_encode(k, sizeof(k), false, true);
    if (b)
        r->ws_key = mg_arena_strndup(&r->arena, b, strlen(b));
    free(b);
}

static void put_head(const struct mg_uconn *uc, const struct mg_request *r, struct mg_h1_out *w)
{
    mg_h1_put_request_line(w, r->method, NULL, r->up_path, NULL);
    mg_h1_put_field(w, "host", r->up_authority ? r->up_authority : uc->cl->host);
    for (size_t i = 0; i < r->n_uh; i++)
        if (!r->ws_key || mg_strcasecmp(r->uh[i].key, "sec-websocket-key") != 0)
            mg_h1_put_field(w, r->uh[i].key, r->uh[i].value);
    if (r->upgrade) {                   /* the hop-by-hop pair the edge removed, ours */
        mg_h1_put_field(w, "connection", "upgrade");
        mg_h1_put_field(w, "upgrade", r->upgrade);
    }
    if (r->ws_key) {                    /* an extended CONNECT's: the handshake is ours */
        mg_h1_put_field(w, "sec-websocket-key", r->ws_key);
        if (!has_uh(r, "sec-websocket-version"))
            mg_h1_put_field(w, "sec-websocket-version", "13");
    }
    if (r->body == MG_BODY_LENGTH)
        mg_h1_put_content_length(w, r->content_length);
    else if (r->body == MG_BODY_CHUNKED)
        mg_h1_put_field(w, "transfer-encoding", "chunked");
    mg_h1_put_end(w);
}

/* The head is measured by a first run of the same writer calls, then
 * written into space reserved in one piece (no printf per header): one
 * buffer chain, one write(2) or one TLS record. */
static void write_head(struct mg_uconn *uc, struct mg_request *r)
{
    if (r->upgrade_h2 && !r->ws_key)
        ws_key_make(r);
    struct evbuffer *out = mg_io_get_output(uc->io);
    struct mg_h1_out w;
    struct evbuffer_iovec v;
    mg_h1_out_init(&w, NULL, 0);
    put_head(uc, r, &w);
    if (evbuffer_reserve_space(out, (ev_ssize_t)w.len, &v, 1) == 1) {
        mg_h1_out_init(&w, v.iov_base, v.iov_len);
        put_head(uc, r, &w);
        v.iov_len = w.len <= w.cap ? w.len : 0;
        evbuffer_commit_space(out, &v, 1);
    }
    uc->req_chunked = r->body == MG_BODY_CHUNKED;
    uc->req_done = r->body == MG_BODY_NONE;
}

static void start_try_timer(struct mg_uconn *uc, struct mg_request *r);

/* The connection is up (new or reused): send the head, let the body flow. */
static void uc_begin(struct mg_uconn *uc)
{
    struct mg_request *r = uc->r;
    uc->state = UC_HEAD;
    uc->requests++;
    uc->got_bytes = false;
    mg_io_set_timeouts(uc->io, NULL, NULL);
    start_try_timer(uc, r);
    write_head(uc, r);
    atomic_fetch_add_explicit(&uc->w->metrics->upstream_rq_total, 1, memory_order_relaxed);
    if (r->expect_continue)
        r->ops->send_continue(r);
    if (r->body != MG_BODY_NONE)
        r->ops->body_resume(r);
}

static void on_try_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct mg_uconn *uc = arg;
    struct mg_request *r = uc->r;
    mg_cluster_outcome(uc->cl, uc->ep, MG_OD_TIMEOUT, 0);
    if (r)
        mg_request_upstream_failed(r, 504, "UT", "timeout");
}

static void start_try_timer(struct mg_uconn *uc, struct mg_request *r)
{
    const struct mg_http_route *h = r->route->cfg;
    if (!h->has_retries || h->retries.per_try_timeout_ms <= 0)
        return;
    if (!uc->try_timer)
        uc->try_timer = evtimer_new(uc->w->base, on_try_timeout, uc);
    int64_t ms = h->retries.per_try_timeout_ms;
    struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000) };
    evtimer_add(uc->try_timer, &tv);
}

static int uc_connect(struct mg_uconn *uc, const struct sockaddr *sa, int salen)
{
    struct mg_cluster *cl = uc->cl;
    struct event_base *base = uc->w->base;
    SSL_CTX *ctx = mg_mesh_conn_ctx(cl, uc->ep, uc->w);
    if (ctx) {
        uc->ssl = SSL_new(ctx);
        if (!uc->ssl)
            return -1;
        SSL_set_tlsext_host_name(uc->ssl, cl->sni);
        if (cl->mesh)
            mg_mesh_set_alpn(uc->ssl, MG_UP_H1);  /* the name is checked after the handshake */
        else if (!cl->insecure && cl->n_sans == 0)
            SSL_set1_host(uc->ssl, cl->sni);      /* auto SAN validation against the SNI */
        uc->io = mg_io_socket_new(base, -1, uc->ssl, MG_IO_CONNECTING);
        if (!uc->io) {
            SSL_free(uc->ssl);                     /* not owned by an mg_io yet */
            uc->ssl = NULL;
            return -1;
        }
    } else {
        uc->io = mg_io_socket_new(base, -1, NULL, MG_IO_OPEN);
        if (!uc->io)
            return -1;
    }
    mg_io_setcb(uc->io, uc_read_cb, uc_write_cb, uc_event_cb, uc);
    mg_io_setwatermark(uc->io, EV_READ, 0, UP_HIGH_WM);
    struct timeval tv = { (time_t)(cl->connect_timeout_ms / 1000),
                          (suseconds_t)((cl->connect_timeout_ms % 1000) * 1000) };
    mg_io_set_timeouts(uc->io, &tv, &tv);
    mg_io_enable(uc->io, EV_READ | EV_WRITE);
    atomic_fetch_add_explicit(&uc->w->metrics->upstream_cx_total, 1, memory_order_relaxed);
    if (mg_io_connect(uc->io, sa, salen) < 0 ||
        mg_pp_arm(cl, &uc->pp, uc->io, uc->ssl) < 0)
        return -1;
    /* before the handshake: a TLS client's flights (certificate,
     * CertificateVerify, Finished) must not wait for the peer's delayed ACK */
    int one = 1;
    setsockopt(mg_io_getfd(uc->io), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return 0;
}

static void connect_failed(struct mg_uconn *uc)
{
    struct mg_request *r = uc->r;
    mg_cluster_outcome(uc->cl, uc->ep, MG_OD_CONNECT_FAILED, 0);
    if (r)
        mg_request_upstream_failed(r, 503, "UF", "connect-failure");
    else
        uc_close(uc);
}

static void uc_attach(struct mg_uconn *uc, struct mg_request *r);

/* An idle connection of the dynamic cluster kept for this authority and
 * dialled at sa, taken off the idle list; NULL when none. */
static struct mg_uconn *dyn_idle_take(struct mg_cluster *cl, struct mg_worker *w, const char *key,
                                      const struct sockaddr_storage *sa, socklen_t salen)
{
    struct mg_cluster_rt *rt = rt_of(cl, w);
    for (struct mg_uconn **pp = &rt->idle; *pp; pp = &(*pp)->next) {
        struct mg_uconn *x = *pp;
        if (x->dyn_key && mg_strcasecmp(x->dyn_key, key) == 0 && x->dyn_salen == salen &&
            memcmp(&x->dyn_sa, sa, salen) == 0) {
            *pp = x->next;
            x->next = NULL;
            return x;
        }
    }
    return NULL;
}

static size_t idle_count(const struct mg_cluster_rt *rt)
{
    size_t n = 0;
    for (const struct mg_uconn *x = rt->idle; x; x = x->next)
        n++;
    return n;
}

static void dns_cb(int err, const struct mg_addr *addrs, size_t n, void *arg)
{
    struct mg_uconn *uc = arg;
    uc->dnsreq = NULL;
    struct sockaddr_storage ss;
    socklen_t sl = err || n == 0 ? 0 : mg_addr_to_sockaddr(&addrs[0], uc->dial_port, &ss);
    if (sl == 0) {
        connect_failed(uc);
        return;
    }
    struct mg_request *r = uc->r;
    /* checked on every use: a cached answer is refused like a fresh one */
    const char *why = r && uc->cl->resolved_refused ?
        uc->cl->resolved_refused(r, (const struct sockaddr *)&ss) : NULL;
    if (why) {
        /* the name resolved into a denied range: refused, not retried */
        mg_addr_ip_str(&addrs[0], r->upstream_host, sizeof(r->upstream_host));
        mg_upstream_detach(r, false);   /* closes uc */
        r->flags = "NR";
        mg_request_reply(r, 403, "egress destination not allowed", why, !r->body_done);
        return;
    }
    if (uc->cl->dynamic && r) {
        const char *key = r->authority ? r->authority : "";
        struct mg_uconn *idle = dyn_idle_take(uc->cl, uc->w, key, &ss, sl);
        if (idle) {
            /* the same authority at the same address (just resolved and
             * checked): the request moves to the kept connection and this
             * one, not yet connected, goes */
            struct mg_cluster_rt *rt = rt_of(uc->cl, uc->w);
            if (rt->active[uc->ep])
                rt->active[uc->ep]--;
            r->uc = NULL;
            idle->reused = true;
            uc_attach(idle, r);
            uc_close(uc);
            uc_begin(idle);
            return;
        }
        uc->dyn_key = mg_xstrdup(key);
        memcpy(&uc->dyn_sa, &ss, sl);
        uc->dyn_salen = sl;
    }
    if (uc_connect(uc, (const struct sockaddr *)&ss, (int)sl) < 0)
        connect_failed(uc);
}

static void uc_attach(struct mg_uconn *uc, struct mg_request *r)
{
    uc->r = r;
    r->uc = uc;
    struct mg_cluster_rt *rt = rt_of(uc->cl, uc->w);
    rt->active[uc->ep]++;
    if (uc->ep < 64)
        r->up_tried |= (uint64_t)1 << uc->ep;
    if (uc->cl->dynamic && r->dial_host)
        snprintf(r->upstream_host, sizeof(r->upstream_host),
                 strchr(r->dial_host, ':') ? "[%s]:%u" : "%s:%u", r->dial_host, r->dial_port);
    else
        snprintf(r->upstream_host, sizeof(r->upstream_host), "%s", uc->cl->eps[uc->ep].label);
}

/* Start on a fresh connection; false when it could not even be created. */
static bool open_conn(struct mg_request *r, struct mg_cluster *cl, size_t ep)
{
    struct mg_worker *w = r->conn->w;
    struct mg_uconn *uc = mg_xcalloc(1, sizeof(*uc));
    uc->cl = cl;
    uc->w = w;
    uc->ep = ep;
    uc->state = UC_CONNECTING;
    mg_pp_key_set(&uc->pp, cl, r->conn);
    rt_of(cl, w)->n_open++;
    atomic_fetch_add_explicit(&cl->g_open, 1, memory_order_relaxed);
    uc_attach(uc, r);
    const struct mg_endpoint *e = &cl->eps[ep];
    const char *name = e->address;
    uint16_t nport = e->port;
    if (cl->dynamic) {                  /* the request names where to go */
        name = r->dial_host;
        nport = r->dial_port;
        if (!name) {
            mg_request_upstream_failed(r, 503, "UH", NULL);
            return true;
        }
    }
    int rc;
    if (e->resolved && !cl->dynamic) {
        rc = uc_connect(uc, (const struct sockaddr *)&e->sa, (int)e->salen);
    } else {
        uc->dial_port = nport;
        uc->busy++;
        /* NULL when answered synchronously (from the cache) */
        uc->dnsreq = mg_dns_resolve(w->resolver, name, AF_UNSPEC, dns_cb, uc);
        uc->busy--;
        rc = 0;
        if (uc->dead) {                 /* answered (and failed) synchronously */
            uc_free(uc);
            return true;
        }
    }
    if (rc < 0) {
        mg_request_upstream_failed(r, 503, "UF", "connect-failure");
        return true;
    }
    return true;
}

static void pending_push(struct mg_cluster_rt *rt, struct mg_request *r)
{
    if (rt->n_pending == rt->pend_cap) {
        size_t nc = rt->pend_cap ? rt->pend_cap * 2 : 16;
        struct mg_request **np = mg_xcalloc(nc, sizeof(*np));
        for (size_t i = 0; i < rt->n_pending; i++)
            np[i] = rt->pending[(rt->pend_head + i) % rt->pend_cap];
        free(rt->pending);
        rt->pending = np;
        rt->pend_cap = nc;
        rt->pend_head = 0;
    }
    rt->pending[(rt->pend_head + rt->n_pending++) % rt->pend_cap] = r;
}

static void kick_cb(evutil_socket_t fd, short what, void *arg);

/* Another worker may hold the connections: poll the shared count while
 * requests wait here (the mailbox is for snapshots, not pool events). */
static void kick_arm(struct mg_cluster *cl, struct mg_cluster_rt *rt, struct mg_worker *w)
{
    if (!rt->kick) {
        rt->kick = evtimer_new(w->base, kick_cb, rt);
        rt->kick_cl = cl;
        rt->kick_w = w;
    }
    struct timeval tv = { 0, 20000 };
    evtimer_add(rt->kick, &tv);
}

static void kick_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct mg_cluster_rt *rt = arg;
    pool_kick(rt->kick_cl, rt->kick_w);
    if (rt->n_pending)
        kick_arm(rt->kick_cl, rt, rt->kick_w);
}

static struct mg_cluster *cl_of_pending(struct mg_cluster_rt *rt)
{
    return rt->kick_cl;
}

static void pending_remove(struct mg_cluster_rt *rt, struct mg_request *r)
{
    size_t o = 0;
    for (size_t i = 0; i < rt->n_pending; i++) {
        struct mg_request *x = rt->pending[(rt->pend_head + i) % rt->pend_cap];
        if (x != r)
            rt->pending[(rt->pend_head + o++) % rt->pend_cap] = x;
    }
    if (o < rt->n_pending)
        atomic_fetch_sub_explicit(&cl_of_pending(rt)->g_pending, rt->n_pending - o, memory_order_relaxed);
    rt->n_pending = o;
}

static void start_on(struct mg_request *r, struct mg_cluster *cl)
{
    struct mg_worker *w = r->conn->w;
    struct mg_cluster_rt *rt = rt_of(cl, w);
    size_t ep = mg_cluster_pick_retry(cl, rt, w, r->up_tried, mg_upstream_retry_remote(r));
    if (ep == SIZE_MAX) {               /* every endpoint ejected by outlier detection */
        r->flags = "UH";
        mg_request_reply(r, 503, "no healthy upstream", "no_healthy_upstream", !r->body_done);
        return;
    }
    /* reuse an idle connection to the chosen endpoint, else any idle one
     * to an endpoint in service; the dynamic cluster's are chosen once the
     * name is resolved (dns_cb) */
    struct mg_uconn *none = NULL;
    struct mg_uconn **pp = cl->dynamic ? &none : &rt->idle, **any = NULL;
    for (; *pp; pp = &(*pp)->next) {
        if (!mg_pp_key_fits(&(*pp)->pp, r->conn))
            continue;                   /* carries another client's PROXY header */
        if ((*pp)->ep == ep)
            break;
        if (!any && (!cl->od || !mg_od_ejected(cl->od, (*pp)->ep)))
            any = pp;
    }
    if (!*pp && any && cl->max_connections &&
        atomic_load_explicit(&cl->g_open, memory_order_relaxed) >= cl->max_connections)
        pp = any;
    if (*pp) {
        struct mg_uconn *uc = *pp;
        *pp = uc->next;
        uc->next = NULL;
        uc->reused = true;
        uc_attach(uc, r);
        uc_begin(uc);
        return;
    }
    if (!cl->max_connections ||
        atomic_load_explicit(&cl->g_open, memory_order_relaxed) < cl->max_connections) {
        open_conn(r, cl, ep);
        return;
    }
    if (cl->proxy_protocol && rt->idle) {
        /* at the limit with idle connections none of which may carry r
         * (other clients' PROXY headers): the least recently used one
         * gives its slot up (and the queue below never waits on them) */
        struct mg_uconn **t = &rt->idle;
        while ((*t)->next)
            t = &(*t)->next;
        struct mg_uconn *old = *t;
        *t = NULL;
        uc_free(old);
        open_conn(r, cl, ep);
        return;
    }
    uint64_t maxp = cl->max_pending ? cl->max_pending : UP_HARD_PENDING;
    if (atomic_load_explicit(&cl->g_pending, memory_order_relaxed) >= maxp ||
        rt->n_pending >= UP_HARD_PENDING) {
        r->flags = "UO";
        r->n_local_h = 0;
        r->local_h[r->n_local_h].key = (char *)"x-envoy-overloaded";
        r->local_h[r->n_local_h++].value = (char *)"true";
        mg_request_reply(r, 503, "upstream connect error or disconnect/reset before headers. "
                         "reset reason: overflow", "upstream_overflow", !r->body_done);
        return;
    }
    pending_push(rt, r);
    atomic_fetch_add_explicit(&cl->g_pending, 1, memory_order_relaxed);
    kick_arm(cl, rt, w);
}

/* The request is released: leave the pool's queue, give back or close the
 * connection (registered with the request when the upstream starts). */
static void upstream_release(struct mg_request *r)
{
    mg_upstream_detach(r, false);
}

void mg_upstream_start(struct mg_request *r)
{
    mg_request_on_release(r, upstream_release);
    r->attempts++;
    if (r->upgrade && r->dest->cluster->h2 == MG_UP_H2_REQUIRED) {
        /* an upgrade goes upstream over HTTP/1.1 only (extended CONNECT
         * toward an HTTP/2 upstream is not built): refused, never sent as
         * a plain request the upstream would answer as one */
        mg_request_reply(r, 501, "Not Implemented", "upgrade_unsupported", !r->body_done);
        return;
    }
    if (mg_up2_wanted(r)) {
        mg_up2_start(r);
        return;
    }
    start_on(r, r->dest->cluster);
}

void mg_upstream_h1_start(struct mg_request *r, struct mg_cluster *cl)
{
    start_on(r, cl);
}

static void pool_kick(struct mg_cluster *cl, struct mg_worker *w)
{
    struct mg_cluster_rt *rt = rt_of(cl, w);
    while (rt->n_pending && (rt->idle || !cl->max_connections ||
                             atomic_load_explicit(&cl->g_open, memory_order_relaxed) < cl->max_connections)) {
        struct mg_request *r = rt->pending[rt->pend_head];
        rt->pend_head = (rt->pend_head + 1) % rt->pend_cap;
        rt->n_pending--;
        atomic_fetch_sub_explicit(&cl->g_pending, 1, memory_order_relaxed);
        start_on(r, cl);
    }
    if (!rt->n_pending && rt->kick) {
        event_free(rt->kick);
        rt->kick = NULL;
    }
}

bool mg_upstream_body_ready(struct mg_request *r)
{
    if (r->up2)
        return mg_up2_body_ready(r);
    struct mg_uconn *uc = r->uc;
    /* an upgrade's bytes wait for the 101 */
    return uc && uc->state >= UC_HEAD && !(r->upgrade && uc->state == UC_HEAD) && uc->io &&
           evbuffer_get_length(mg_io_get_output(uc->io)) < UP_HIGH_WM;
}

void mg_upstream_body_data(struct mg_request *r, struct evbuffer *src, size_t n)
{
    if (r->shadows)
        mg_mirror_tee(r, src, n);
    if (r->up2) {
        mg_up2_body_data(r, src, n);
        return;
    }
    struct mg_uconn *uc = r->uc;
    if (!uc || !n)
        return;
    struct evbuffer *out = mg_io_get_output(uc->io);
    r->body_started = true;
    if (uc->req_chunked) {
        char ch[MG_H1_CHUNK_HEADER_MAX];
        evbuffer_add(out, ch, mg_h1_chunk_header(n, ch));
    }
    evbuffer_remove_buffer(src, out, n);
    if (uc->req_chunked)
        evbuffer_add(out, MG_H1_CHUNK_END, sizeof(MG_H1_CHUNK_END) - 1);
    /* wake up when it drains to half */
    mg_io_setwatermark(uc->io, EV_WRITE, UP_HIGH_WM / 2, 0);
}

void mg_upstream_body_end(struct mg_request *r)
{
    if (r->shadows)
        mg_mirror_body_end(r);
    if (r->up2) {
        mg_up2_body_end(r);
        return;
    }
    struct mg_uconn *uc = r->uc;
    if (!uc)
        return;
    if (uc->req_chunked)
        evbuffer_add(mg_io_get_output(uc->io), MG_H1_LAST_CHUNK, sizeof(MG_H1_LAST_CHUNK) - 1);
    uc->req_done = true;
}

void mg_upstream_resume(struct mg_request *r)
{
    if (r->up2) {
        mg_up2_resume(r);
        return;
    }
    struct mg_uconn *uc = r->uc;
    if (!uc || !uc->io || uc->state != UC_BODY)
        return;
    mg_io_enable(uc->io, EV_READ);
    /* also with nothing buffered: the pause may have come right after the
     * last byte of a Content-Length body, and only relay_body completes it */
    if (evbuffer_get_length(mg_io_get_input(uc->io)) ||
        (uc->rb == MG_H1_BODY_LENGTH && uc->remaining == 0))
        uc_read_cb(uc->io, uc);
}

void mg_upstream_detach(struct mg_request *r, bool clean)
{
    if (r->up2) {
        mg_up2_detach(r, clean);
        return;
    }
    struct mg_uconn *uc = r->uc;
    if (!uc) {
        if (r->dest && r->dest->cluster && r->conn)
            pending_remove(rt_of(r->dest->cluster, r->conn->w), r);
        return;
    }
    r->uc = NULL;
    struct mg_cluster_rt *rt = rt_of(uc->cl, uc->w);
    if (rt->active[uc->ep])
        rt->active[uc->ep]--;
    if (uc->try_timer)
        evtimer_del(uc->try_timer);
    bool reuse = clean && uc->state == UC_DONE && uc->keep_alive && uc->req_done && !uc->dead &&
                 r->snap == uc->w->snap &&
                 (!uc->cl->max_requests_per_conn || uc->requests < uc->cl->max_requests_per_conn) &&
                 (!uc->cl->dynamic || (uc->dyn_key && idle_count(rt) < UP_DYN_IDLE_MAX)) &&
                 evbuffer_get_length(mg_io_get_input(uc->io)) == 0 &&
                 /* other workers are queued on the instance-wide limit: free the slot */
                 !(uc->cl->max_connections &&
                   atomic_load_explicit(&uc->cl->g_pending, memory_order_relaxed) > rt->n_pending);
    if (!reuse) {
        uc_close(uc);
        return;
    }
    uc->r = NULL;
    uc->state = UC_IDLE;
    uc->next = rt->idle;
    rt->idle = uc;
    if (uc->pp.on && idle_count(rt) > UP_PP_IDLE_MAX) {
        /* each serves one client: the least recently used goes */
        struct mg_uconn **t = &rt->idle;
        while ((*t)->next)
            t = &(*t)->next;
        if (!(*t)->busy) {
            struct mg_uconn *old = *t;
            *t = NULL;
            uc_free(old);
        }
    }
    mg_io_enable(uc->io, EV_READ);
    struct timeval tv = { (time_t)(uc->cl->idle_timeout_ms / 1000),
                          (suseconds_t)((uc->cl->idle_timeout_ms % 1000) * 1000) };
    mg_io_set_timeouts(uc->io, uc->cl->idle_timeout_ms > 0 ? &tv : NULL, NULL);
    if (!uc->busy)
        pool_kick(uc->cl, uc->w);
}

static void idle_remove(struct mg_uconn *uc)
{
    struct mg_cluster_rt *rt = rt_of(uc->cl, uc->w);
    for (struct mg_uconn **pp = &rt->idle; *pp; pp = &(*pp)->next)
        if (*pp == uc) {
            *pp = uc->next;
            return;
        }
}

void mg_upstream_close_idle(struct mg_cluster **clusters, size_t n, int worker_id)
{
    for (size_t i = 0; i < n; i++) {
        struct mg_cluster *cl = clusters[i];
        if (!cl || worker_id >= cl->n_workers)
            continue;
        struct mg_cluster_rt *rt = &cl->rt[worker_id];
        mg_up2_close_idle(cl, worker_id);
        while (rt->idle) {
            struct mg_uconn *uc = rt->idle;
            rt->idle = uc->next;
            uc_free(uc);
        }
        if (rt->kick && !rt->n_pending) {
            event_free(rt->kick);
            rt->kick = NULL;
        }
    }
}

static bool hop_header(const char *n, size_t l)
{
    return mg_h1_is_hop_by_hop(n, l) || (l == 14 && mg_strncasecmp(n, "content-length", 14) == 0);
}

/* Is the header name listed in one of the response's Connection headers? */
static bool conn_named(const struct mg_h1_response *resp, const char *n, size_t nl)
{
    for (size_t i = 0; i < resp->n_headers; i++) {
        const struct mg_h1_header *x = &resp->headers[i];
        if (x->name_len != 10 || mg_strncasecmp(x->name, "connection", 10) != 0)
            continue;
        const char *v = x->value, *e = x->value + x->value_len;
        while (v < e) {
            while (v < e && (*v == ' ' || *v == '\t' || *v == ','))
                v++;
            const char *t = v;
            while (t < e && *t != ',' && *t != ' ' && *t != '\t')
                t++;
            if ((size_t)(t - v) == nl && mg_strncasecmp(v, n, nl) == 0)
                return true;
            v = t;
        }
    }
    return false;
}

/* Response head into the request (arena copies), with the route's
 * response header operations. */
static void take_head(struct mg_uconn *uc, struct mg_request *r, const struct mg_h1_response *resp)
{
    size_t cap = resp->n_headers + 8, n = 0;
    struct mg_kv *h = mg_arena_alloc(&r->arena, cap * sizeof(*h));
    for (size_t i = 0; i < resp->n_headers; i++) {
        const struct mg_h1_header *x = &resp->headers[i];
        bool keep_cl = r->is_head && x->name_len == 14 && mg_strncasecmp(x->name, "content-length", 14) == 0;
        if ((hop_header(x->name, x->name_len) && !keep_cl) || conn_named(resp, x->name, x->name_len))
            continue;
        memset(&h[n], 0, sizeof(h[n]));
        h[n].key = mg_arena_strndup(&r->arena, x->name, x->name_len);
        mg_lower(h[n].key);
        h[n].value = mg_arena_strndup(&r->arena, x->value, x->value_len);
        n++;
    }
    h = mg_upstream_resp_ops(r, h, &n, cap);
    r->resp_h = h;
    r->n_resp_h = n;
    r->status = resp->status;
    r->resp_start_ms = mg_now_ms();
    mg_upstream_note_local(r, uc->io ? mg_io_getfd(uc->io) : -1);
    r->resp_cl = resp->content_length;
    r->resp_body = (enum mg_body_kind)resp->body;
    r->resp_close = !resp->keep_alive;
    uc->keep_alive = resp->keep_alive && resp->body != MG_H1_BODY_UNTIL_CLOSE;
    uc->rb = resp->body;
    uc->remaining = resp->content_length;
    mg_h1_chunked_init(&uc->ck);
}

struct mg_kv *mg_upstream_resp_ops(struct mg_request *r, struct mg_kv *h, size_t *np, size_t cap)
{
    size_t n = *np;
    const struct mg_header_ops *ops[2] = { &r->route->cfg->resp_headers,
                                           r->dest ? &r->dest->cfg->resp_headers : NULL };
    for (int k = 0; k < 2; k++) {
        if (!ops[k])
            continue;
        for (size_t i = 0; i < ops[k]->remove.n; i++) {
            size_t o = 0;
            for (size_t j = 0; j < n; j++)
                if (mg_strcasecmp(h[j].key, ops[k]->remove.v[i]) != 0)
                    h[o++] = h[j];
            n = o;
        }
        size_t extra = ops[k]->set.n + ops[k]->add.n;
        if (n + extra > cap) {
            struct mg_kv *nh = mg_arena_alloc(&r->arena, (n + extra + 8) * sizeof(*nh));
            memcpy(nh, h, n * sizeof(*nh));
            h = nh;
            cap = n + extra + 8;
        }
        for (size_t i = 0; i < ops[k]->set.n; i++) {
            size_t o = 0;
            for (size_t j = 0; j < n; j++)
                if (mg_strcasecmp(h[j].key, ops[k]->set.v[i].key) != 0)
                    h[o++] = h[j];
            n = o;
            h[n++] = ops[k]->set.v[i];
        }
        for (size_t i = 0; i < ops[k]->add.n; i++)
            h[n++] = ops[k]->add.v[i];
    }
    if (r->n_resp_add) {                /* set, replacing the upstream's own */
        struct mg_kv *nh = mg_arena_alloc(&r->arena, (n + r->n_resp_add) * sizeof(*nh));
        size_t o = 0;
        for (size_t j = 0; j < n; j++) {
            bool replaced = false;
            for (size_t i = 0; i < r->n_resp_add && !replaced; i++)
                replaced = mg_strcasecmp(h[j].key, r->resp_add[i].key) == 0;
            if (!replaced)
                nh[o++] = h[j];
        }
        for (size_t i = 0; i < r->n_resp_add; i++)
            nh[o++] = r->resp_add[i];
        h = nh;
        n = o;
    }
    *np = n;
    return h;
}

static void complete(struct mg_uconn *uc)
{
    struct mg_request *r = uc->r;
    uc->state = UC_DONE;
    if (r)
        r->ops->resp_end(r);            /* detaches (and may free r) */
}

/* Returns false when the connection must stop being processed. */
static bool relay_body(struct mg_uconn *uc)
{
    struct evbuffer *in = mg_io_get_input(uc->io);
    while (uc->r && uc->state == UC_BODY && !uc->dead) {
        struct mg_request *r = uc->r;
        size_t avail = evbuffer_get_length(in);
        if (r->ops->resp_full(r)) {
            mg_io_disable(uc->io, EV_READ);
            return true;
        }
        if (uc->rb == MG_H1_BODY_LENGTH) {
            if (uc->remaining == 0) {
                complete(uc);
                return true;
            }
            if (!avail)
                return true;
            size_t n = avail < uc->remaining ? avail : (size_t)uc->remaining;
            uc->remaining -= n;
            r->ops->resp_data(r, in, n);
        } else if (uc->rb == MG_H1_BODY_CHUNKED) {
            if (!avail)
                return true;
            size_t want = avail < 65536 ? avail : 65536;
            const char *p = (const char *)evbuffer_pullup(in, (ev_ssize_t)want);
            size_t n = 0;
            switch (mg_h1_chunked_step(&uc->ck, p, want, &n)) {
            case MG_CHUNK_NEED_MORE:
                if (want == 65536) {            /* framing larger than we accept */
                    mg_request_upstream_failed(r, 502, "UPE", NULL);
                    return false;
                }
                return true;
            case MG_CHUNK_FRAMING:
                evbuffer_drain(in, n);
                break;
            case MG_CHUNK_DATA:
                r->ops->resp_data(r, in, n);
                break;
            case MG_CHUNK_DONE:
                evbuffer_drain(in, n);
                complete(uc);
                return true;
            default:
                uc->keep_alive = false;
                mg_request_upstream_failed(r, 502, "UPE", NULL);
                return false;
            }
        } else if (uc->rb == MG_H1_BODY_UNTIL_CLOSE) {
            if (!avail)
                return true;
            r->ops->resp_data(r, in, avail);
        } else {
            complete(uc);
            return true;
        }
    }
    return true;
}

/* A response field's value (first of the name), NUL-terminated in a
 * thread-local buffer, or NULL: enough for short fields (grpc-status). */
static const char *h1_field(const struct mg_h1_response *resp, const char *name)
{
    static _Thread_local char v[32];
    size_t nl = strlen(name);
    for (size_t i = 0; i < resp->n_headers; i++) {
        const struct mg_h1_header *x = &resp->headers[i];
        if (x->name_len == nl && mg_strncasecmp(x->name, name, nl) == 0) {
            size_t l = x->value_len < sizeof(v) - 1 ? x->value_len : sizeof(v) - 1;
            memcpy(v, x->value, l);
            v[l] = '\0';
            return v;
        }
    }
    return NULL;
}

bool mg_upstream_retry_class(int status, const char *grpc_status, bool ratelimited, char *out,
                             size_t cap)
{
    if (ratelimited) {
        snprintf(out, cap, "ratelimited");
        return true;
    }
    uint64_t g;
    if (status == 200 && grpc_status && mg_parse_uint(grpc_status, 1, 16, &g) == 0) {
        snprintf(out, cap, "grpc-%d", (int)g);
        return true;
    }
    if (status >= 400) {
        snprintf(out, cap, "status-%d", status);
        return true;
    }
    return false;
}

static void parse_head(struct mg_uconn *uc)
{
    struct evbuffer *in = mg_io_get_input(uc->io);
    while (uc->r && uc->state == UC_HEAD && !uc->dead) {
        struct mg_request *r = uc->r;
        size_t avail = evbuffer_get_length(in);
        if (!avail)
            return;
        size_t want = avail < UP_MAX_HEAD ? avail : UP_MAX_HEAD;
        const char *p = (const char *)evbuffer_pullup(in, (ev_ssize_t)want);
        struct mg_h1_limits lim = { UP_MAX_HEAD, MG_H1_MAX_HEADERS };
        struct mg_h1_response resp;
        ssize_t hl = mg_h1_parse_response(p, want, &lim, r->method, strlen(r->method), &resp);
        if (hl == 0 && want < UP_MAX_HEAD)
            return;
        if (hl <= 0) {
            uc->keep_alive = false;
            mg_request_upstream_failed(r, 502, "UPE", NULL);
            return;
        }
        if (resp.status == 101 && r->upgrade_h2) {
            /* the gateway's own handshake: the answer must match its key */
            const char *acc = NULL, *expect = r->ws_key ? ws_accept_for(&r->arena, r->ws_key) : NULL;
            for (size_t i = 0; i < resp.n_headers; i++)
                if (resp.headers[i].name_len == 20 &&
                    mg_strncasecmp(resp.headers[i].name, "sec-websocket-accept", 20) == 0)
                    acc = mg_arena_strndup(&r->arena, resp.headers[i].value, resp.headers[i].value_len);
            if (!expect || !acc || strcmp(acc, expect) != 0) {
                uc->keep_alive = false;
                r->upstream_detail = "upstream WebSocket handshake: Sec-WebSocket-Accept does not match";
                mg_request_upstream_failed(r, 502, "UPE", NULL);
                return;
            }
            if (uc->try_timer)
                evtimer_del(uc->try_timer);
            mg_cluster_outcome(uc->cl, uc->ep, MG_OD_RESPONSE, resp.status);
            take_head(uc, r, &resp);
            size_t o = 0;               /* the HTTP/1.1 handshake's own field stays here */
            for (size_t i = 0; i < r->n_resp_h; i++)
                if (mg_strcasecmp(r->resp_h[i].key, "sec-websocket-accept") != 0)
                    r->resp_h[o++] = r->resp_h[i];
            r->n_resp_h = o;
            evbuffer_drain(in, (size_t)hl);
            /* 200 on the stream; the connection's bytes are its body both ways */
            r->status = 200;
            r->resp_body = MG_BODY_UNTIL_CLOSE;
            r->resp_cl = 0;
            r->resp_close = true;
            uc->rb = MG_H1_BODY_UNTIL_CLOSE;
            uc->keep_alive = false;
            uc->state = UC_BODY;
            r->resp_started = true;
            r->ops->resp_head(r);
            if (uc->r && !uc->dead)
                r->ops->body_resume(r);
            return;
        }
        if (resp.status == 101 && r->upgrade) {
            /* the upgrade accepted: what follows the head is the tunnel's */
            if (uc->try_timer)
                evtimer_del(uc->try_timer);
            mg_cluster_outcome(uc->cl, uc->ep, MG_OD_RESPONSE, resp.status);
            take_head(uc, r, &resp);
            evbuffer_drain(in, (size_t)hl);
            uc->state = UC_TUNNEL;
            uc->keep_alive = false;
            r->resp_started = true;
            r->ops->resp_head(r);       /* the codec takes the connection (mg_upstream_tunnel) */
            return;
        }
        if (resp.status >= 100 && resp.status < 200) {
            evbuffer_drain(in, (size_t)hl);     /* 1xx: skipped */
            continue;
        }
        if (uc->try_timer)
            evtimer_del(uc->try_timer);
        mg_cluster_outcome(uc->cl, uc->ep, MG_OD_RESPONSE, resp.status);
        {
            char cls[24];
            if (mg_upstream_retry_class(resp.status, h1_field(&resp, "grpc-status"),
                                        h1_field(&resp, "x-envoy-ratelimited") != NULL, cls,
                                        sizeof(cls)) &&
                mg_upstream_retry_allowed(r, cls)) {
                mg_request_upstream_failed(r, resp.status, "URX", cls);
                return;
            }
        }
        take_head(uc, r, &resp);
        /* An answer to a request not yet fully written: the upstream did
         * not read (all of) the body as a body, and may still parse the
         * rest as requests of its own, whose answers would go to the next
         * user of the connection. It is not reused. */
        if (!uc->req_done || evbuffer_get_length(mg_io_get_output(uc->io)))
            uc->keep_alive = false;
        evbuffer_drain(in, (size_t)hl);
        uc->state = UC_BODY;
        r->resp_started = true;
        r->ops->resp_head(r);
        if (uc->r && !uc->dead && uc->rb == MG_H1_BODY_NONE)
            complete(uc);
    }
}

struct mg_io *mg_upstream_tunnel(struct mg_request *r)
{
    struct mg_uconn *uc = r->up2 ? NULL : r->uc;
    if (!uc || uc->state != UC_TUNNEL || !uc->io)
        return NULL;
    mg_io_set_timeouts(uc->io, NULL, NULL);
    return uc->io;
}

static void uc_read_cb(struct mg_io *io, void *arg)
{
    (void)io;
    struct mg_uconn *uc = arg;
    uc->busy++;
    uc->got_bytes = true;
    if (uc->state == UC_IDLE) {
        /* bytes on an idle connection: the peer is confused, drop it */
        idle_remove(uc);
        uc->busy--;
        uc_close(uc);
        return;
    }
    if (uc->state == UC_HEAD)
        parse_head(uc);
    if (uc->state == UC_BODY && uc->r && !uc->dead)
        relay_body(uc);
    uc->busy--;
    if (uc->dead)
        uc_close(uc);
    else if (uc->state == UC_IDLE)
        pool_kick(uc->cl, uc->w);       /* released inside the callback: serve the queue */
}

static void uc_write_cb(struct mg_io *io, void *arg)
{
    struct mg_uconn *uc = arg;
    if (!uc->r || uc->state < UC_HEAD || uc->req_done)
        return;
    mg_io_setwatermark(io, EV_WRITE, 0, 0);
    uc->busy++;
    uc->r->ops->body_resume(uc->r);
    uc->busy--;
    if (uc->dead)
        uc_close(uc);
}

static void uc_event_cb(struct mg_io *io, short what, void *arg)
{
    struct mg_uconn *uc = arg;
    uc->busy++;
    if (what & MG_IO_CONNECTED) {
        int one = 1;                    /* request heads and bodies go out at once */
        setsockopt(mg_io_getfd(io), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        char why[768];
        if (uc->ssl && uc->cl->mesh && mg_mesh_peer_refused(uc->cl, uc->ssl, why, sizeof(why))) {
            atomic_fetch_add_explicit(&uc->w->metrics->upstream_secure_naming_failed, 1,
                                      memory_order_relaxed);
            if (uc->r)
                mg_upstream_refused_by_name(uc->r, why);
            connect_failed(uc);
        } else if (uc->ssl && uc->cl->n_sans && !uc->cl->insecure &&
            !mg_tls_peer_san_in(uc->ssl, uc->cl->sans, uc->cl->n_sans)) {
            connect_failed(uc);
        } else if (uc->r) {
            uc_begin(uc);
        }
        goto out;
    }
    if (uc->state == UC_IDLE) {
        idle_remove(uc);
        uc->busy--;
        uc_close(uc);
        return;
    }
    struct mg_request *r = uc->r;
    if (!r)
        goto out;
    if (uc->state == UC_CONNECTING) {
        connect_failed(uc);
    } else if ((what & MG_IO_EOF) && uc->state == UC_BODY && uc->rb == MG_H1_BODY_UNTIL_CLOSE) {
        uc->keep_alive = false;
        relay_body(uc);
        if (uc->r && !uc->dead)
            complete(uc);
    } else if (uc->state == UC_HEAD) {
        /* reset before a response: a reused connection that the server had
         * already closed is safe to try again */
        bool fresh_fail = uc->reused && !uc->got_bytes;
        /* (a kept-alive connection the server had closed is no sign of
         * ill health) */
        if (!fresh_fail)
            mg_cluster_outcome(uc->cl, uc->ep, (what & MG_IO_TIMEOUT) ? MG_OD_TIMEOUT
                                                                          : MG_OD_CONNECT_FAILED, 0);
        if (fresh_fail && !r->body_started)
            mg_request_upstream_failed(r, 503, "UC", "connect-failure");
        else
            mg_request_upstream_failed(r, (what & MG_IO_TIMEOUT) ? 504 : 503,
                                       (what & MG_IO_TIMEOUT) ? "UT" : "UC", "reset");
    } else {
        uc->keep_alive = false;
        mg_request_upstream_failed(r, 502, "UPE", NULL);    /* truncated response */
    }
out:
    (void)io;
    uc->busy--;
    if (uc->dead)
        uc_close(uc);
}

void mg_upstream_note_local(struct mg_request *r, int fd)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    struct mg_addr a;
    char ip[64];

    if (fd < 0 || !r->snap || !r->snap->cfg->mesh.log_upstream_local)
        return;
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) != 0 ||
        mg_addr_from_sockaddr(&a, (const struct sockaddr *)&ss) != 0)
        return;
    unsigned port = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                                             : ntohs(((struct sockaddr_in *)&ss)->sin_port);
    mg_addr_ip_str(&a, ip, sizeof(ip));
    snprintf(r->upstream_local, sizeof(r->upstream_local), a.family == AF_INET6 ? "[%s]:%u" : "%s:%u",
             ip, port);
}
