/* mg_upstream.c - the test upstream for meshgate's end-to-end tests.
 *
 * One thread, one libevent base, HTTP/1.1 with keep-alive, optional TLS and
 * client certificates. Its HTTP parsing is its own (deliberately not the
 * gateway's parser, so a gateway bug cannot hide behind the same code) and
 * lenient where the gateway is strict: it reports what it got.
 *
 *   mg_upstream [--listen 127.0.0.1:PORT] [--port-file F] [--name NAME]
 *               [--tls-cert F --tls-key F [--client-ca F [--client-cert-optional]]]
 *               [--serve DIR] [--h2] [--status NNN] [--expect-proxy] [--log-headers]
 *
 * Paths:
 *   /echo, anything else   200, JSON describing the request (see echo_json)
 *   /slow?ms=N             the same after N ms (at most 60000)
 *   /close[?rst=1]         close the connection without answering (RST with rst=1)
 *   /status/NNN            status NNN (200..599) with the JSON body (none for 204/304)
 *   /bytes/N[?chunked=1]   N bytes of 'a'..'z', streamed (Content-Length or chunked)
 *   /file/REL              DIR/REL from --serve (.json as application/json)
 *   /ws...                 with Upgrade: websocket and a Sec-WebSocket-Key: 101, then an
 *                          RFC 6455 frame echo (mg_upstream_ws.c)
 *   /stream... (HTTP/2)    200 at once, each DATA chunk echoed as it arrives
 * Any path accepts ?resp-header=Name:Value (repeatable, %-decoded) to add
 * response headers. Request bodies of any size stream into a SHA-256.
 * --h2 adds HTTP/2 (mg_upstream_h2.c): ALPN h2 over TLS, prior knowledge
 * (h2c) in plain text; HTTP/1.1 stays available on the same port.
 * --status NNN answers every request (HTTP/1.1 and HTTP/2), whatever its
 * path, with status NNN and the echo body (an unhealthy endpoint).
 * --expect-proxy reads a PROXY protocol header (v1 or v2, net/'s strict
 * parser) off each connection before TLS or HTTP, and the echo reports it
 * as "proxy" ("v1", "v2", "v2-local"; null when the connection came
 * without one) with "proxy_source" and "proxy_destination"; a malformed
 * header closes the connection.
 * --log-headers logs each HTTP/1.1 request's headers after its line. */
#include "autoconfig.h"
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include "upstream.h"
#include "net/net.h"

static bool token_in_list(const char *v, const char *tok)
{
    size_t tl = strlen(tok);
    const char *p = v;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        const char *e = p;
        while (*e && *e != ',')
            e++;
        const char *t = e;
        while (t > p && (t[-1] == ' ' || t[-1] == '\t'))
            t--;
        if ((size_t)(t - p) == tl && mg_strncasecmp(p, tok, tl) == 0)
            return true;
        p = e;
    }
    return false;
}

/* ---------------------------------------------------------------- conns */

void mg_up_request_reset(struct conn *c)
{
    free(c->rq.method);
    free(c->rq.target);
    c->rq.method = c->rq.target = NULL;
    mg_buf_free(&c->rq.headers_json);
    c->rq.nheaders = c->rq.head_bytes = 0;
    c->chunked = c->has_cl = c->conn_close = c->conn_keepalive = c->expect_continue = false;
    c->content_length = c->remaining = c->rq.body_len = 0;
    c->send_left = 0;
    c->send_chunked = false;
    free(c->ws_key);
    c->ws_key = NULL;
    c->ws_v13 = false;
    EVP_DigestInit_ex(c->rq.sha, EVP_sha256(), NULL);
    c->st = S_LINE;
}

void mg_up_conn_free(struct conn *c, bool abrupt)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        c->srv->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    if (c->timer)
        event_free(c->timer);
    if (c->h2)
        mg_up_h2_free(c);
    if (c->tls && !abrupt) {
        /* bufferevent_free sends no close_notify */
        SSL *ssl = bufferevent_openssl_get_ssl(c->bev);
        if (ssl)
            SSL_shutdown(ssl);
    }
    bufferevent_free(c->bev);
    free(c->rq.method);
    free(c->rq.target);
    free(c->ws_key);
    mg_buf_free(&c->rq.headers_json);
    EVP_MD_CTX_free(c->rq.sha);
    free(c);
}

/* ---------------------------------------------------------------- parse */

static int parse_request_line(struct conn *c, char *line)
{
    char *sp1 = strchr(line, ' ');
    if (!sp1)
        return -1;
    char *sp2 = strchr(sp1 + 1, ' ');
    if (!sp2 || sp1 == line || sp2 == sp1 + 1)
        return -1;
    if (strcmp(sp2 + 1, "HTTP/1.1") == 0)
        c->minor = 1;
    else if (strcmp(sp2 + 1, "HTTP/1.0") == 0)
        c->minor = 0;
    else
        return -1;
    c->rq.version = c->minor ? "HTTP/1.1" : "HTTP/1.0";
    c->rq.method = mg_xstrndup(line, (size_t)(sp1 - line));
    c->rq.target = mg_xstrndup(sp1 + 1, (size_t)(sp2 - sp1 - 1));
    return 0;
}

static int parse_header(struct conn *c, char *line, size_t n)
{
    char *colon = memchr(line, ':', n);
    if (!colon || colon == line)
        return -1;
    char *v = colon + 1, *end = line + n;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    size_t nl = (size_t)(colon - line);
    if (c->rq.nheaders++)
        mg_buf_adds(&c->rq.headers_json, ",");
    mg_buf_adds(&c->rq.headers_json, "[");
    mg_up_json_str(&c->rq.headers_json, line, nl);
    mg_buf_adds(&c->rq.headers_json, ",");
    mg_up_json_str(&c->rq.headers_json, v, (size_t)(end - v));
    mg_buf_adds(&c->rq.headers_json, "]");
    *colon = '\0';
    *end = '\0';
    if (mg_strcasecmp(line, "sec-websocket-key") == 0) {
        free(c->ws_key);
        c->ws_key = mg_xstrdup(v);
    } else if (mg_strcasecmp(line, "sec-websocket-version") == 0) {
        c->ws_v13 = strcmp(v, "13") == 0;
    } else if (mg_strcasecmp(line, "content-length") == 0) {
        uint64_t cl;
        if (mg_parse_uint(v, 0, UINT64_MAX / 2, &cl) != 0 || (c->has_cl && cl != c->content_length))
            return -1;
        c->has_cl = true;
        c->content_length = cl;
    } else if (mg_strcasecmp(line, "transfer-encoding") == 0) {
        if (token_in_list(v, "chunked"))
            c->chunked = true;
    } else if (mg_strcasecmp(line, "connection") == 0) {
        if (token_in_list(v, "close"))
            c->conn_close = true;
        if (token_in_list(v, "keep-alive"))
            c->conn_keepalive = true;
    } else if (mg_strcasecmp(line, "expect") == 0) {
        if (mg_strcasecmp(v, "100-continue") == 0)
            c->expect_continue = true;
    }
    return 0;
}

/* Hash up to c->remaining buffered body bytes without copying them. */
static void take_body(struct conn *c, struct evbuffer *in)
{
    size_t avail = evbuffer_get_length(in);
    size_t n = c->remaining < avail ? (size_t)c->remaining : avail;
    size_t left = n;
    while (left > 0) {
        struct evbuffer_iovec v[8];
        int k = evbuffer_peek(in, (ev_ssize_t)left, NULL, v, 8);
        size_t done = 0;
        for (int i = 0; i < k && i < 8 && done < left; i++) {
            size_t m = v[i].iov_len < left - done ? v[i].iov_len : left - done;
            EVP_DigestUpdate(c->rq.sha, v[i].iov_base, m);
            done += m;
        }
        evbuffer_drain(in, done);
        left -= done;
    }
    c->remaining -= n;
    c->rq.body_len += n;
}

static void process(struct conn *c)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);
    for (;;) {
        if (c->st == S_WS) {
            mg_up_ws_read(c);
            return;
        }
        if (c->st == S_RESPOND || c->st == S_CLOSING)
            return;
        if (c->st == S_BODY || c->st == S_CHUNK_DATA) {
            if (c->remaining > 0 && evbuffer_get_length(in) == 0)
                return;
            take_body(c, in);
            if (c->remaining > 0)
                return;
            if (c->st == S_BODY) {
                mg_up_dispatch(c);
                return;
            }
            c->st = S_CHUNK_END;
            continue;
        }
        size_t n;
        char *line = evbuffer_readln(in, &n, EVBUFFER_EOL_CRLF);
        if (!line) {
            if (evbuffer_get_length(in) > MAX_LINE)
                mg_up_bad_request(c, c->st == S_HEADERS ? 431 : 400, "line too long");
            return;
        }
        if (n > MAX_LINE) {
            free(line);
            mg_up_bad_request(c, 400, "line too long");
            return;
        }
        int rc = 0;
        switch (c->st) {
        case S_LINE:
            if (n == 0)
                break;          /* a stray CRLF between requests is allowed */
            c->rq.nreq = ++c->nreq;
            if (parse_request_line(c, line) != 0)
                rc = 400;
            else
                c->st = S_HEADERS;
            break;
        case S_HEADERS:
            if (n > 0) {
                c->rq.head_bytes += n + 2;
                if (c->rq.head_bytes > MAX_HEAD || c->rq.nheaders >= MAX_HEADERS)
                    rc = 431;
                else if (parse_header(c, line, n) != 0)
                    rc = 400;
                break;
            }
            if (c->chunked) {
                c->st = S_CHUNK_SIZE;
            } else if (c->content_length > 0) {
                c->remaining = c->content_length;
                c->st = S_BODY;
            } else {
                free(line);
                mg_up_dispatch(c);
                return;
            }
            if (c->expect_continue && c->minor >= 1)
                evbuffer_add_printf(bufferevent_get_output(c->bev), "HTTP/1.1 100 Continue\r\n\r\n");
            break;
        case S_CHUNK_SIZE: {
            uint64_t size = 0;
            size_t i = 0;
            for (; i < n && mg_hexval((unsigned char)line[i]) >= 0; i++) {
                if (i >= 15) {
                    rc = 400;
                    break;
                }
                size = size * 16 + (uint64_t)mg_hexval((unsigned char)line[i]);
            }
            if (rc == 0 && (i == 0 || (i < n && line[i] != ';' && line[i] != ' ' && line[i] != '\t')))
                rc = 400;
            if (rc == 0) {
                c->remaining = size;
                c->st = size ? S_CHUNK_DATA : S_TRAILERS;
            }
            break;
        }
        case S_CHUNK_END:
            if (n != 0)
                rc = 400;
            else
                c->st = S_CHUNK_SIZE;
            break;
        case S_TRAILERS:
            if (n == 0) {
                free(line);
                mg_up_dispatch(c);
                return;
            }
            break;
        default:
            break;
        }
        free(line);
        if (rc) {
            mg_up_bad_request(c, rc, rc == 431 ? "headers too large" : "malformed request");
            return;
        }
    }
}

/* ---------------------------------------------------------------- events */

static void read_cb(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;
    if (c->h2) {
        mg_up_h2_read(c);
        return;
    }
    if (!c->proto_known && c->srv->h2) {
        SSL *ssl = c->tls ? bufferevent_openssl_get_ssl(bev) : NULL;
        const unsigned char *alpn = NULL;
        unsigned alen = 0;
        if (ssl)
            SSL_get0_alpn_selected(ssl, &alpn, &alen);
        int pre = c->tls ? 0 : mg_up_h2_preface(bufferevent_get_input(bev));
        if (pre < 0)
            return;             /* too few bytes to tell h2c from HTTP/1 */
        if ((alen == 2 && memcmp(alpn, "h2", 2) == 0) || pre == 1) {
            c->proto_known = true;
            mg_up_h2_start(c);
            return;
        }
    }
    c->proto_known = true;
    process(c);
}

static void write_cb(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;
    if (c->h2) {
        mg_up_h2_write(c);
        return;
    }
    if (c->st == S_WS) {
        bufferevent_enable(bev, EV_READ);
        mg_up_ws_read(c);
    } else if (c->st == S_RESPOND && c->send_left > 0)
        mg_up_fill_bytes(c);
    else if (c->st == S_CLOSING && evbuffer_get_length(bufferevent_get_output(bev)) == 0)
        mg_up_conn_free(c, false);
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    struct conn *c = arg;
    if ((what & BEV_EVENT_EOF) && !(what & BEV_EVENT_ERROR) &&
        (c->st == S_RESPOND || (c->st == S_CLOSING &&
                                evbuffer_get_length(bufferevent_get_output(c->bev)) > 0))) {
        /* The client half-closed after its request: finish the answer. */
        c->keepalive = false;
        bufferevent_disable(c->bev, EV_READ);
        return;
    }
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT)) {
        if ((what & BEV_EVENT_ERROR) && c->tls) {
            unsigned long e;
            while ((e = bufferevent_get_openssl_error(c->bev)))
                fprintf(stderr, "mg_upstream[%s]: %s: TLS: %s\n", c->srv->name, c->peer,
                        ERR_reason_error_string(e) ? ERR_reason_error_string(e) : "error");
        }
        mg_up_conn_free(c, (what & BEV_EVENT_EOF) == 0);
    }
}

/* The connection's transport once any PROXY header is off the socket;
 * proxy_json as struct conn's. */
static void conn_setup(struct server *srv, evutil_socket_t fd, const struct sockaddr *sa,
                       const char *proxy_json)
{
    struct bufferevent *bev;
    if (srv->ssl_ctx) {
        SSL *ssl = SSL_new(srv->ssl_ctx);
        if (!ssl) {
            evutil_closesocket(fd);
            return;
        }
        bev = bufferevent_openssl_socket_new(srv->base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                             BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
        if (!bev) {
            SSL_free(ssl);
            evutil_closesocket(fd);
            return;
        }
    } else {
        bev = bufferevent_socket_new(srv->base, fd, BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
        if (!bev) {
            evutil_closesocket(fd);
            return;
        }
    }
    struct conn *c = mg_xcalloc(1, sizeof *c);
    c->srv = srv;
    c->bev = bev;
    c->tls = srv->ssl_ctx != NULL;
    c->rq.sha = EVP_MD_CTX_new();
    if (!c->rq.sha)
        mg_oom();
    struct mg_addr a;
    char ip[64];
    if (mg_addr_from_sockaddr(&a, sa) == 0)
        snprintf(c->peer, sizeof c->peer, "%s:%u", mg_addr_ip_str(&a, ip, sizeof ip), a.port);
    snprintf(c->proxy_json, sizeof c->proxy_json, "%s", proxy_json ? proxy_json : "");
    c->next = srv->conns;
    if (c->next)
        c->next->prev = c;
    srv->conns = c;
    mg_up_request_reset(c);
    struct timeval idle = {IDLE_TIMEOUT_S, 0};
    bufferevent_set_timeouts(bev, &idle, &idle);
    bufferevent_setwatermark(bev, EV_READ, 0, READ_HIGH_WATER);
    bufferevent_setwatermark(bev, EV_WRITE, WRITE_LOW_WATER, 0);
    bufferevent_setcb(bev, read_cb, write_cb, event_cb, c);
    bufferevent_enable(bev, EV_READ | EV_WRITE);    /* both at once: see STYLE.md */
}

/* --expect-proxy: a connection whose first bytes are awaited. */
struct pp_wait {
    struct server *srv;
    evutil_socket_t fd;
    struct sockaddr_storage sa;
    struct event *ev;
};

static void pp_addr(char *out, size_t len, const struct mg_addr *a)
{
    char ip[64];
    snprintf(out, len, a->family == AF_INET6 ? "[%s]:%u" : "%s:%u", mg_addr_ip_str(a, ip, sizeof ip),
             a->port);
}

static void pp_read_cb(evutil_socket_t fd, short what, void *arg)
{
    struct pp_wait *pw = arg;
    unsigned char buf[MG_PP_MAX];
    char json[256] = "\"proxy\":null";
    if (what & EV_TIMEOUT)
        goto drop;
    ssize_t n = recv(fd, buf, sizeof buf, MSG_PEEK);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0)
        goto drop;
    struct mg_pp_header h;
    switch (mg_pp_parse(buf, (size_t)n, &h)) {
    case MG_PP_MORE:
        if ((size_t)n < sizeof buf)
            return;
        /* fall through */
    case MG_PP_BAD:
        fprintf(stderr, "mg_upstream[%s]: bad PROXY header: %s\n", pw->srv->name,
                h.error ? h.error : "too long");
        goto drop;
    case MG_PP_NONE:
        break;
    case MG_PP_DONE:
        if (recv(fd, buf, h.len, 0) != (ssize_t)h.len)
            goto drop;
        if (h.local) {
            snprintf(json, sizeof json, "\"proxy\":\"v%d-local\"", h.version);
        } else {
            char s[64], d[64];
            pp_addr(s, sizeof s, &h.src);
            pp_addr(d, sizeof d, &h.dst);
            snprintf(json, sizeof json,
                     "\"proxy\":\"v%d\",\"proxy_source\":\"%s\",\"proxy_destination\":\"%s\"",
                     h.version, s, d);
        }
        break;
    }
    event_free(pw->ev);
    conn_setup(pw->srv, fd, (struct sockaddr *)&pw->sa, json);
    free(pw);
    return;
drop:
    event_free(pw->ev);
    evutil_closesocket(fd);
    free(pw);
}

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen,
                      void *arg)
{
    (void)l;
    struct server *srv = arg;
    if (!srv->expect_proxy) {
        conn_setup(srv, fd, sa, NULL);
        return;
    }
    struct pp_wait *pw = mg_xcalloc(1, sizeof *pw);
    pw->srv = srv;
    pw->fd = fd;
    memcpy(&pw->sa, sa, (size_t)salen < sizeof pw->sa ? (size_t)salen : sizeof pw->sa);
    pw->ev = event_new(srv->base, fd, EV_READ | EV_PERSIST, pp_read_cb, pw);
    struct timeval tv = {IDLE_TIMEOUT_S, 0};
    if (!pw->ev || event_add(pw->ev, &tv) != 0) {
        if (pw->ev)
            event_free(pw->ev);
        evutil_closesocket(fd);
        free(pw);
    }
}

/* ---------------------------------------------------------------- main */

static int alpn_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                   const unsigned char *in, unsigned int inlen, void *arg)
{
    (void)ssl;
    const struct server *srv = arg;
    /* h2 first when enabled: the client's order does not matter */
    for (unsigned i = 0; srv->h2 && i < inlen;) {
        unsigned l = in[i];
        if (i + 1 + l > inlen)
            break;
        if (l == 2 && memcmp(in + i + 1, "h2", 2) == 0) {
            *out = in + i + 1;
            *outlen = (unsigned char)l;
            return SSL_TLSEXT_ERR_OK;
        }
        i += 1 + l;
    }
    for (unsigned i = 0; i < inlen;) {
        unsigned l = in[i];
        if (i + 1 + l > inlen)
            break;
        if (l == 8 && memcmp(in + i + 1, "http/1.1", 8) == 0) {
            *out = in + i + 1;
            *outlen = (unsigned char)l;
            return SSL_TLSEXT_ERR_OK;
        }
        i += 1 + l;
    }
    return SSL_TLSEXT_ERR_NOACK;
}

static SSL_CTX *make_ssl_ctx(struct server *srv, const char *cert, const char *key,
                             const char *client_ca, bool optional)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx)
        return NULL;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);    /* EOF without close_notify is EOF */
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1)
        goto fail;
    if (client_ca) {
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(client_ca);
        if (!names || SSL_CTX_load_verify_locations(ctx, client_ca, NULL) != 1) {
            sk_X509_NAME_pop_free(names, X509_NAME_free);
            goto fail;
        }
        SSL_CTX_set_client_CA_list(ctx, names);
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | (optional ? 0 : SSL_VERIFY_FAIL_IF_NO_PEER_CERT),
                           NULL);
    }
    SSL_CTX_set_alpn_select_cb(ctx, alpn_cb, srv);
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

static void stop_cb(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    event_base_loopbreak(arg);
}

static int write_port_file(const char *path, unsigned port)
{
    char *tmp = mg_xasprintf("%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    int rc = -1;
    if (f) {
        /* rename makes the port appear at once, never half-written */
        rc = fprintf(f, "%u\n", port) > 0 && fclose(f) == 0 && rename(tmp, path) == 0 ? 0 : -1;
        if (rc != 0)
            unlink(tmp);
    }
    free(tmp);
    return rc;
}

static void usage(FILE *out)
{
    fputs("usage: mg_upstream [--listen 127.0.0.1:PORT] [--port-file FILE] [--name NAME]\n"
          "                   [--tls-cert FILE --tls-key FILE [--client-ca FILE [--client-cert-optional]]]\n"
          "                   [--serve DIR] [--h2] [--status NNN] [--expect-proxy]\n"
          "                   [--log-headers]\n"
          "--client-ca requires a client certificate signed by FILE; with\n"
          "--client-cert-optional one is asked for but not required.\n"
          "--h2 also speaks HTTP/2: ALPN h2 with TLS, prior knowledge (h2c) without.\n"
          "--expect-proxy reads a PROXY protocol header first (optional) and echoes it.\n"
          "--log-headers logs each request's headers (the echo's JSON list) after its line.\n"
          "PORT 0 (the default) picks a free port; --port-file receives it.\n", out);
}

int main(int argc, char **argv)
{
    const char *listen = "127.0.0.1:0", *port_file = NULL, *name = "upstream";
    const char *cert = NULL, *key = NULL, *client_ca = NULL, *serve = NULL, *status = NULL;
    bool h2 = false, cc_optional = false, expect_proxy = false, log_headers = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char **dst = NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        }
        if (strcmp(a, "--h2") == 0) {
            h2 = true;
            continue;
        }
        if (strcmp(a, "--expect-proxy") == 0) {
            expect_proxy = true;
            continue;
        }
        if (strcmp(a, "--client-cert-optional") == 0) {
            cc_optional = true;
            continue;
        }
        if (strcmp(a, "--log-headers") == 0) {
            log_headers = true;
            continue;
        }
        if (strcmp(a, "--listen") == 0) dst = &listen;
        else if (strcmp(a, "--port-file") == 0) dst = &port_file;
        else if (strcmp(a, "--name") == 0) dst = &name;
        else if (strcmp(a, "--tls-cert") == 0) dst = &cert;
        else if (strcmp(a, "--tls-key") == 0) dst = &key;
        else if (strcmp(a, "--client-ca") == 0) dst = &client_ca;
        else if (strcmp(a, "--serve") == 0) dst = &serve;
        else if (strcmp(a, "--status") == 0) dst = &status;
        if (!dst || i + 1 >= argc) {
            fprintf(stderr, "mg_upstream: %s '%s'\n", dst ? "missing value for" : "unknown argument", a);
            usage(stderr);
            return 2;
        }
        *dst = argv[++i];
    }
    if (!cert != !key || (client_ca && !cert)) {
        fprintf(stderr, "mg_upstream: --tls-cert and --tls-key go together; --client-ca needs them\n");
        return 2;
    }
    uint64_t st = 0;
    if (status && mg_parse_uint(status, 200, 599, &st) != 0) {
        fprintf(stderr, "mg_upstream: --status wants 200..599\n");
        return 2;
    }
    if (strpbrk(name, "\r\n")) {
        fprintf(stderr, "mg_upstream: bad --name\n");
        return 2;
    }
    char host[256];
    uint16_t port;
    struct mg_addr addr;
    /* util's mg_split_host_port refuses port 0, which means "pick one" here */
    const char *colon = strrchr(listen, ':');
    size_t hl = colon ? (size_t)(colon - listen) : 0;
    if (hl >= 2 && listen[0] == '[' && listen[hl - 1] == ']') {
        listen++;
        hl -= 2;
    }
    if (!colon || hl == 0 || hl >= sizeof host || mg_parse_port(colon + 1, true, &port) != 0 ||
        (memcpy(host, listen, hl), host[hl] = '\0', mg_addr_parse_ip(&addr, host) != 0)) {
        fprintf(stderr, "mg_upstream: --listen wants IP:PORT, not '%s'\n", listen);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);       /* an SSL write to a reset peer raises it */
    setvbuf(stdout, NULL, _IOLBF, 0);

    struct server srv = {.name = name, .h2 = h2, .status = (int)st, .expect_proxy = expect_proxy,
                         .log_headers = log_headers};
    if (serve && !(srv.serve_dir = realpath(serve, NULL))) {
        fprintf(stderr, "mg_upstream: --serve %s: %s\n", serve, strerror(errno));
        return 2;
    }
    if (cert && !(srv.ssl_ctx = make_ssl_ctx(&srv, cert, key, client_ca, cc_optional))) {
        fprintf(stderr, "mg_upstream: TLS setup failed: %s\n",
                ERR_reason_error_string(ERR_get_error()) ? ERR_reason_error_string(ERR_peek_last_error()) : "?");
        free(srv.serve_dir);
        return 2;
    }
    srv.base = event_base_new();
    struct sockaddr_storage ss = {0};
    socklen_t sslen;
    if (addr.family == AF_INET) {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        s4->sin_family = AF_INET;
        s4->sin_port = htons(port);
        memcpy(&s4->sin_addr, addr.ip, 4);
        sslen = sizeof *s4;
    } else {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons(port);
        memcpy(&s6->sin6_addr, addr.ip, 16);
        sslen = sizeof *s6;
    }
    struct evconnlistener *lst = srv.base ? evconnlistener_new_bind(
        srv.base, accept_cb, &srv, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC,
        128, (struct sockaddr *)&ss, (int)sslen) : NULL;
    if (!lst) {
        fprintf(stderr, "mg_upstream: cannot listen on %s:%u: %s\n", host, port, strerror(errno));
        if (srv.base)
            event_base_free(srv.base);
        SSL_CTX_free(srv.ssl_ctx);
        free(srv.serve_dir);
        return 1;
    }
    struct sockaddr_storage bound;
    socklen_t blen = sizeof bound;
    struct mg_addr ba = {0};
    getsockname(evconnlistener_get_fd(lst), (struct sockaddr *)&bound, &blen);
    mg_addr_from_sockaddr(&ba, (struct sockaddr *)&bound);
    int rc = 0;
    if (port_file && write_port_file(port_file, ba.port) != 0) {
        fprintf(stderr, "mg_upstream: cannot write %s: %s\n", port_file, strerror(errno));
        rc = 1;
    }
    struct event *sigterm = evsignal_new(srv.base, SIGTERM, stop_cb, srv.base);
    struct event *sigint = evsignal_new(srv.base, SIGINT, stop_cb, srv.base);
    if (rc == 0) {
        evsignal_add(sigterm, NULL);
        evsignal_add(sigint, NULL);
        printf("mg_upstream %s listening on %s:%u%s\n", name, host, ba.port, cert ? " (TLS)" : "");
        event_base_dispatch(srv.base);
    }
    while (srv.conns)
        mg_up_conn_free(srv.conns, false);
    event_free(sigterm);
    event_free(sigint);
    evconnlistener_free(lst);
    event_base_free(srv.base);
    SSL_CTX_free(srv.ssl_ctx);
    free(srv.serve_dir);
    return rc;
}

