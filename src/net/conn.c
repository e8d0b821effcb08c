/* conn.c - downstream connections: creation (TLS or plain), handshake
 * timeout, peer identity, the ALPN switch, and a refcounted end of life.
 *
 * The worker list holds one reference; callbacks that may close the
 * connection hold another for their duration, so the memory (and the codec
 * state) is released only when nothing on the stack still uses it. */
#include "net/net.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <event2/buffer.h>
#include <openssl/err.h>
#include "http/types.h"
#include "log/log.h"
#include "snapshot/snapshot.h"

/* A connection whose port expects a PROXY protocol header, until the
 * header is read: the socket is watched edge-triggered and peeked, so that
 * nothing but the header itself is taken off it and a client that trickles
 * bytes costs one wakeup per arrival, never a busy loop. */
struct mg_pp_read {
    struct event *ev;
    int fd;
    bool trusted;                       /* the peer may send a header */
    unsigned char buf[MG_PP_MAX];
};

static void pp_free(struct mg_conn *c)
{
    if (!c->pp)
        return;
    event_free(c->pp->ev);
    free(c->pp);
    c->pp = NULL;
}

atomic_ulong mg_cx_active_total;

static void conn_release(struct mg_conn *c)
{
    if (c->codec_free)
        c->codec_free(c);
    struct mg_worker *w = c->w;
    mg_snapshot_unref(c->snap);
    free(c->id);
    free(c);
    mg_worker_conn_gone(w);
}

static void conn_close(struct mg_conn *c)
{
    if (c->pp) {                        /* still reading a PROXY header: no transport yet */
        close(c->pp->fd);
        pp_free(c);
    } else if (c->closing && !c->io) {
        return;
    }
    bool first = !c->closing || c->io;
    c->closing = true;
    if (c->io) {
        if (c->ssl && c->handshake_done)
            mg_io_shutdown(c->io);      /* close_notify once, best effort: mg_io_free sends none */
        mg_io_free(c->io);              /* frees the SSL too (never SSL_free it ourselves) */
        c->io = NULL;
        c->ssl = NULL;
    }
    if (!first)
        return;
    struct mg_worker *w = c->w;
    if (c->prev)
        c->prev->next = c->next;
    else if (w->conns == c)
        w->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
    w->n_conns--;
    atomic_fetch_sub_explicit(&w->metrics->cx_active, 1, memory_order_relaxed);
    atomic_fetch_sub_explicit(&mg_cx_active_total, 1, memory_order_relaxed);
    mg_conn_unref(c);                   /* the list's reference */
}

/* Lingering close: after an error reply the client may still be sending
 * (an oversized head, an unread body). Closing with unread bytes makes the
 * kernel send RST, and the client can lose the reply; so half-close, read
 * and drop for a bounded time, then close. */
#define LINGER_MAX_BYTES (1024 * 1024)

static void linger_read_cb(struct mg_io *io, void *arg)
{
    struct mg_conn *c = arg;
    struct evbuffer *in = mg_io_get_input(io);
    c->linger_bytes += evbuffer_get_length(in);
    evbuffer_drain(in, evbuffer_get_length(in));
    if (c->linger_bytes > LINGER_MAX_BYTES)
        mg_conn_close(c);
}

static void linger_event_cb(struct mg_io *io, short what, void *arg)
{
    (void)io;
    (void)what;
    mg_conn_close(arg);
}

static void conn_close_lingering(struct mg_conn *c)
{
    if (!c->io || c->ssl) {
        mg_conn_close(c);
        return;
    }
    evutil_socket_t fd = mg_io_getfd(c->io);
    if (fd < 0 || shutdown(fd, SHUT_WR) < 0) {
        mg_conn_close(c);
        return;
    }
    struct timeval tv = { 2, 0 };
    mg_io_setcb(c->io, linger_read_cb, NULL, linger_event_cb, c);
    mg_io_setwatermark(c->io, EV_READ, 0, 0);
    mg_io_set_timeouts(c->io, &tv, NULL);
    mg_io_enable(c->io, EV_READ);
    linger_read_cb(c->io, c);
}

static const struct mg_conn_ops conn_ops = {
    .close = conn_close,
    .close_lingering = conn_close_lingering,
    .release = conn_release,
};

/* The ALPN switch: the only place that decides which codec runs. */
void mg_conn_start_codec(struct mg_conn *c)
{
    const unsigned char *alpn = NULL;
    unsigned int alen = 0;
    if (c->ssl)
        SSL_get0_alpn_selected(c->ssl, &alpn, &alen);
    /* "h2" (offered when mg_tls_alpn_h2; "istio-h2" on sidecar inbound) goes
     * to the port's HTTP/2 entry; everything else, and no ALPN at all, to its
     * start entry (HTTP/1.1, or the splice of a TLS/TCP port) */
    const struct mg_port *p = c->port;
    if (p->start_h2 && ((alen == 2 && memcmp(alpn, "h2", 2) == 0) ||
                        (alen == 8 && memcmp(alpn, "istio-h2", 8) == 0)))
        p->start_h2(c);
    else
        p->start(c);
}

static void peer_identity(struct mg_conn *c)
{
    const char *sni = SSL_get_servername(c->ssl, TLSEXT_NAMETYPE_host_name);
    snprintf(c->sni, sizeof(c->sni), "%s", sni ? sni : "");
    mg_lower(c->sni);
    c->sni_srv = mg_tls_selected_server(c->ssl);
    if (!c->sni_srv && c->port->n_srv)
        c->sni_srv = c->port->srv[0];
    if (!SSL_get0_peer_certificate(c->ssl))
        return;
    struct mg_peer_id *id = c->id ? c->id : mg_xcalloc(1, sizeof(*id));
    c->id = id;
    mg_tls_peer_hash(c->ssl, id->cert_hash);
    mg_tls_peer_uri(c->ssl, id->peer_uri, sizeof(id->peer_uri));
    /* a principal only from a certificate that chain-verified, on a server
     * that verifies, with exactly one spiffe:// URI SAN (access.h) */
    mg_tls_peer_principal(c->ssl, c->sni_srv && c->sni_srv->cfg->tls.insecure_skip_verify,
                             id->principal, sizeof(id->principal));
    c->principal = id->principal;
    c->peer_uri = id->peer_uri;
    c->cert_hash = id->cert_hash;
}

static void hs_event_cb(struct mg_io *io, short what, void *arg)
{
    struct mg_conn *c = arg;
    mg_conn_ref(c);
    if (what & MG_IO_CONNECTED) {
        c->handshake_done = true;
        peer_identity(c);
        mg_conn_start_codec(c);
    } else {
        /* handshake refused, timed out or reset: nothing to log above
         * debug, a counter by reason (the first OpenSSL error says why) */
        unsigned long e = mg_io_get_ssl_error(io);
        if (c->w)
            atomic_fetch_add_explicit(
                &c->w->metrics->tls_fail[mg_tls_fail_reason(e, what & MG_IO_TIMEOUT)], 1,
                memory_order_relaxed);
        ERR_clear_error();
        mg_conn_close(c);
    }
    mg_conn_unref(c);
}

void mg_conn_start_handshake(struct mg_conn *c)
{
    int64_t ms = c->snap->cfg->proxy.timeout_handshake_ms;
    struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000) };
    mg_io_setcb(c->io, NULL, NULL, hs_event_cb, c);
    mg_io_set_timeouts(c->io, ms > 0 ? &tv : NULL, ms > 0 ? &tv : NULL);
    /* the handshake runs whatever is enabled; enabling registers the fd */
    mg_io_enable(c->io, EV_READ | EV_WRITE);
}

static SSL_CTX *initial_ctx(const struct mg_port *p)
{
    for (size_t i = 0; i < p->n_srv; i++)
        if (p->srv[i]->ctx)
            return p->srv[i]->ctx;
    return NULL;
}

static void set_addr_str(char *out, size_t n, const struct mg_addr *a)
{
    char ip[64];
    snprintf(out, n, a->family == AF_INET6 ? "[%s]:%u" : "%s:%u", mg_addr_ip_str(a, ip, sizeof(ip)),
             a->port);
}

/* The transport (an mg_io, TLS or plain, or the port's own first step)
 * on fd, and the start: the handshake, or the codec at once. On failure fd
 * is closed and so is the connection. */
static void conn_begin(struct mg_conn *c, int fd)
{
    const struct mg_port *p = c->port;
    struct mg_worker *w = c->w;
    mg_conn_ref(c);
    if (p->accept) {
        /* the port's own first step makes the transport (the sidecar's
         * PeerAuthentication mode decides TLS or not) */
        p->accept(c, fd);
    } else if (p->tls) {
        SSL_CTX *ctx = initial_ctx(p);
        SSL *ssl = ctx ? SSL_new(ctx) : NULL;
        if (ssl)
            c->io = mg_io_socket_new(w->base, fd, ssl, MG_IO_ACCEPTING);
        if (!c->io) {
            if (ssl)
                SSL_free(ssl);          /* not yet owned by an mg_io */
            close(fd);
            mg_conn_close(c);
        } else {
            c->ssl = ssl;
            mg_conn_start_handshake(c);
        }
    } else {
        c->io = mg_io_socket_new(w->base, fd, NULL, MG_IO_OPEN);
        if (!c->io) {
            close(fd);
            mg_conn_close(c);
        } else {
            c->handshake_done = true;
            mg_conn_start_codec(c);
        }
    }
    mg_conn_unref(c);
}

/* A connection refused before its first byte reached a codec: one access
 * log line (protocol TCP, flag DPE, reason proxy_protocol_<result>), the
 * counter, and the close. */
static void pp_refuse(struct mg_conn *c, enum mg_pp_result res)
{
    atomic_fetch_add_explicit(&c->w->metrics->proxy_protocol[res], 1, memory_order_relaxed);
    static const char *const reasons[MG_PPR_N] = {
        [MG_PPR_UNTRUSTED] = "proxy_protocol_untrusted_source",
        [MG_PPR_MISSING] = "proxy_protocol_missing_header",
        [MG_PPR_MALFORMED] = "proxy_protocol_malformed",
        [MG_PPR_TIMEOUT] = "proxy_protocol_timeout",
    };
    struct mg_request r;
    memset(&r, 0, sizeof(r));
    struct timeval now;
    gettimeofday(&now, NULL);
    r.conn = c;
    r.snap = c->snap;
    r.method = "-";
    r.target = "-";
    r.path = "-";
    r.protocol = "TCP";
    r.flags = "DPE";
    r.reason = reasons[res];
    r.start_ms = c->start_ms;
    r.start_wall_us = (int64_t)now.tv_sec * 1000000 + now.tv_usec - (mg_now_ms() - c->start_ms) * 1000;
    mg_accesslog_write(&r, &c->snap->cfg->mesh);
    mg_conn_close(c);
}

static void pp_read_cb(evutil_socket_t fd, short what, void *arg)
{
    struct mg_conn *c = arg;
    struct mg_pp_read *pp = c->pp;
    mg_conn_ref(c);
    if (what & EV_TIMEOUT) {
        pp_refuse(c, MG_PPR_TIMEOUT);
        goto out;
    }
    ssize_t n = recv(fd, pp->buf, sizeof(pp->buf), MSG_PEEK);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        goto out;
    if (n <= 0) {                       /* gone before a byte: a balancer's TCP check */
        mg_conn_close(c);
        goto out;
    }
    struct mg_pp_header h;
    const struct mg_snapshot *s = c->snap;
    switch (mg_pp_parse(pp->buf, (size_t)n, &h)) {
    case MG_PP_MORE:
        if ((size_t)n == sizeof(pp->buf))
            pp_refuse(c, MG_PPR_MALFORMED);
        goto out;                       /* edge-triggered: woken when more arrives */
    case MG_PP_BAD:
        pp_refuse(c, pp->trusted ? MG_PPR_MALFORMED : MG_PPR_UNTRUSTED);
        goto out;
    case MG_PP_NONE:
        if (!s->pp_allow_without) {
            pp_refuse(c, MG_PPR_MISSING);
            goto out;
        }
        atomic_fetch_add_explicit(&c->w->metrics->proxy_protocol[MG_PPR_WITHOUT], 1,
                                  memory_order_relaxed);
        break;
    case MG_PP_DONE:
        /* only a trusted peer may tell us who the client is */
        if (!pp->trusted) {
            pp_refuse(c, MG_PPR_UNTRUSTED);
            goto out;
        }
        if (recv(fd, pp->buf, h.len, 0) != (ssize_t)h.len) {   /* peeked: all there */
            mg_conn_close(c);
            goto out;
        }
        if (!h.local) {
            c->client = h.src;
            c->client_dst = h.dst;
            c->proxied = true;
            set_addr_str(c->client_str, sizeof(c->client_str), &c->client);
        }
        atomic_fetch_add_explicit(&c->w->metrics->proxy_protocol[h.local ? MG_PPR_LOCAL : MG_PPR_ACCEPTED],
                                  1, memory_order_relaxed);
        break;
    }
    pp_free(c);
    conn_begin(c, fd);
out:
    mg_conn_unref(c);
}

/* Expect a PROXY protocol header on c before anything else. */
static void pp_begin(struct mg_conn *c, int fd)
{
    const struct mg_snapshot *s = c->snap;
    bool trusted = s->n_pp_trusted == 0;
    for (size_t i = 0; !trusted && i < s->n_pp_trusted; i++)
        trusted = mg_cidr_match(&s->pp_trusted[i], c->peer.family, c->peer.ip);
    if (!trusted && !s->pp_allow_without) {
        /* only the balancers may connect at all: no need to read */
        close(fd);
        mg_conn_ref(c);
        pp_refuse(c, MG_PPR_UNTRUSTED);
        mg_conn_unref(c);
        return;
    }
    c->pp = mg_xcalloc(1, sizeof(*c->pp));
    c->pp->fd = fd;
    c->pp->trusted = trusted;
    c->pp->ev = event_new(c->w->base, fd, EV_READ | EV_PERSIST | EV_ET, pp_read_cb, c);
    int64_t ms = s->cfg->proxy.timeout_handshake_ms;
    struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000) };
    event_add(c->pp->ev, ms > 0 ? &tv : NULL);
    /* the header may be in the socket already */
    pp_read_cb(fd, EV_READ, c);
}

void mg_conn_accept(struct mg_worker *w, const struct mg_port *p, int fd,
                    const struct sockaddr *sa, int salen)
{
    (void)salen;
    uint64_t limit = w->snap->cfg->proxy.max_connections;
    if (limit && atomic_load_explicit(&mg_cx_active_total, memory_order_relaxed) >= limit) {
        close(fd);
        return;
    }
    struct mg_conn *c = mg_xcalloc(1, sizeof(*c));
    c->principal = c->peer_uri = c->cert_hash = "";
    c->w = w;
    c->snap = mg_snapshot_ref(w->snap);
    c->port = p;
    c->refs = 1;
    c->ops = &conn_ops;
    c->start_ms = mg_now_ms();
    mg_addr_from_sockaddr(&c->peer, sa);
    struct sockaddr_storage ls;
    socklen_t ll = sizeof(ls);
    if (getsockname(fd, (struct sockaddr *)&ls, &ll) == 0)
        mg_addr_from_sockaddr(&c->local, (struct sockaddr *)&ls);
    set_addr_str(c->peer_str, sizeof(c->peer_str), &c->peer);
    set_addr_str(c->local_str, sizeof(c->local_str), &c->local);
    c->client = c->peer;
    c->client_dst = c->local;
    memcpy(c->client_str, c->peer_str, sizeof(c->client_str));
    c->next = w->conns;
    if (w->conns)
        w->conns->prev = c;
    w->conns = c;
    w->n_conns++;
    atomic_fetch_add_explicit(&w->metrics->cx_total, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&w->metrics->cx_active, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&mg_cx_active_total, 1, memory_order_relaxed);
    if (p->proxy_protocol)
        pp_begin(c, fd);
    else
        conn_begin(c, fd);
}

void mg_conn_drain_all(struct mg_worker *w)
{
    struct mg_conn *c = w->conns;
    while (c) {
        struct mg_conn *next = c->next;
        mg_conn_ref(c);
        c->closing = c->closing || false;
        if (c->codec_drain)
            c->codec_drain(c);
        mg_conn_unref(c);
        c = next;
    }
}
