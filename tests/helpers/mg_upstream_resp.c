/* mg_upstream_resp.c - the test upstream's answers: echo JSON, /slow,
 * /close, /status, /bytes, /file and ?resp-header (see mg_upstream.c for
 * the list). */
#include "autoconfig.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/x509v3.h>
#include "upstream.h"

/* ---------------------------------------------------------------- util */

void mg_up_json_str(struct mg_buf *b, const char *s, size_t n)
{
    mg_buf_adds(b, "\"");
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\')
            mg_buf_printf(b, "\\%c", c);
        else if (c < 0x20 || c >= 0x7f)   /* keeps the output valid JSON whatever arrives */
            mg_buf_printf(b, "\\u%04x", c);
        else
            mg_buf_add(b, &s[i], 1);
    }
    mg_buf_adds(b, "\"");
}

/* Percent-decode n bytes of s into a new string (invalid escapes kept). */
static char *pct_decode(const char *s, size_t n)
{
    char *out = mg_xmalloc(n + 1), *o = out;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%' && i + 2 < n && mg_hexval((unsigned char)s[i + 1]) >= 0 &&
            mg_hexval((unsigned char)s[i + 2]) >= 0) {
            *o++ = (char)(mg_hexval((unsigned char)s[i + 1]) * 16 + mg_hexval((unsigned char)s[i + 2]));
            i += 2;
        } else {
            *o++ = s[i] == '+' ? ' ' : s[i];
        }
    }
    *o = '\0';
    return out;
}

/* Find query parameter `key` in the query string q (after '?'); returns a
 * pointer to its raw value and its length, starting the search at *from so
 * repeated parameters can be walked. */
const char *mg_up_query_next(const char *q, const char *key, size_t *len, const char **from)
{
    size_t kl = strlen(key);
    const char *p = *from ? *from : q;
    while (p && *p) {
        const char *end = strchr(p, '&');
        size_t plen = end ? (size_t)(end - p) : strlen(p);
        if (plen > kl && strncmp(p, key, kl) == 0 && p[kl] == '=') {
            *len = plen - kl - 1;
            *from = end ? end + 1 : p + plen;
            return p + kl + 1;
        }
        p = end ? end + 1 : NULL;
    }
    *from = p ? p : q + strlen(q);
    return NULL;
}

static const char *reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 408: return "Request Timeout";
    case 413: return "Content Too Large";
    case 418: return "I'm a teapot";
    case 421: return "Misdirected Request";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 501: return "Not Implemented";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Status";
    }
}


/* The response is fully queued: close after it drains, or take the next
 * (possibly already buffered, pipelined) request. */
static void response_done(struct conn *c)
{
    if (!c->keepalive) {
        c->st = S_CLOSING;
        return;             /* write_cb frees the conn once the output is empty */
    }
    mg_up_request_reset(c);
    /* A pipelined request may already be buffered; a deferred read callback
     * takes it, rather than recursing once per request. */
    if (evbuffer_get_length(bufferevent_get_input(c->bev)) > 0)
        bufferevent_trigger(c->bev, EV_READ, BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
}

static void send_head(struct conn *c, int status, const char *ctype, int64_t length,
                      const char *extra)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);
    evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\n", status, reason(status));
    if (ctype)
        evbuffer_add_printf(out, "content-type: %s\r\n", ctype);
    if (length >= 0)
        evbuffer_add_printf(out, "content-length: %lld\r\n", (long long)length);
    else if (c->minor >= 1)
        evbuffer_add_printf(out, "transfer-encoding: chunked\r\n");
    else
        c->keepalive = false;   /* HTTP/1.0 has no chunked: the close delimits the body */
    evbuffer_add_printf(out, "x-upstream: %s\r\n", c->srv->name);
    if (extra)
        evbuffer_add(out, extra, strlen(extra));
    if (!c->keepalive)
        evbuffer_add_printf(out, "connection: close\r\n");
    evbuffer_add(out, "\r\n", 2);
}

/* Extra response headers from ?resp-header=Name:Value (CR/LF refused so a
 * test cannot split the response by accident). */
char *mg_up_resp_headers(const char *target)
{
    const char *q = strchr(target, '?');
    if (!q)
        return NULL;
    struct mg_buf b = {0};
    const char *from = NULL, *v;
    size_t len;
    int n = 0;
    while (n < MAX_RESP_HEADERS && (v = mg_up_query_next(q + 1, "resp-header", &len, &from))) {
        char *h = pct_decode(v, len);
        char *colon = strchr(h, ':');
        if (colon && colon != h && !strpbrk(h, "\r\n")) {
            *colon = '\0';
            const char *val = colon + 1;
            while (*val == ' ')
                val++;
            mg_buf_printf(&b, "%s: %s\r\n", h, val);
            n++;
        }
        free(h);
    }
    return b.p;
}

static void simple_response(struct conn *c, int status, const char *body)
{
    send_head(c, status, "text/plain", (int64_t)strlen(body), NULL);
    if (strcmp(c->rq.method, "HEAD") != 0)
        evbuffer_add(bufferevent_get_output(c->bev), body, strlen(body));
    response_done(c);
}

/* A malformed request: answer and close, as any server would. */
void mg_up_bad_request(struct conn *c, int status, const char *why)
{
    fprintf(stderr, "mg_upstream[%s]: %s: %s\n", c->srv->name, c->peer, why);
    if (!c->rq.method)
        c->rq.method = mg_xstrdup("GET");
    c->keepalive = false;
    c->st = S_RESPOND;
    simple_response(c, status, why);
}

/* ---------------------------------------------------------------- echo */

static void client_cert_json(struct conn *c, struct mg_buf *b)
{
    SSL *ssl = c->tls ? bufferevent_openssl_get_ssl(c->bev) : NULL;
    const char *sni = ssl ? SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name) : NULL;
    mg_buf_printf(b, ",\"tls\":%s,\"sni\":", c->tls ? "true" : "false");
    if (sni)
        mg_up_json_str(b, sni, strlen(sni));
    else
        mg_buf_adds(b, "null");
    const unsigned char *alpn = NULL;
    unsigned alen = 0;
    if (ssl)
        SSL_get0_alpn_selected(ssl, &alpn, &alen);
    mg_buf_adds(b, ",\"alpn\":");
    if (alen)
        mg_up_json_str(b, (const char *)alpn, alen);
    else
        mg_buf_adds(b, "null");
    mg_buf_adds(b, ",\"tls_version\":");
    if (ssl)
        mg_up_json_str(b, SSL_get_version(ssl), strlen(SSL_get_version(ssl)));
    else
        mg_buf_adds(b, "null");
    X509 *peer = ssl ? SSL_get0_peer_certificate(ssl) : NULL;
    const char *uri = NULL;
    int urilen = 0, nuri = 0;
    GENERAL_NAMES *gens = peer ? X509_get_ext_d2i(peer, NID_subject_alt_name, NULL, NULL) : NULL;
    for (int i = 0; gens && i < sk_GENERAL_NAME_num(gens); i++) {
        GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
        if (g->type != GEN_URI)
            continue;
        if (nuri++ == 0) {
            uri = (const char *)ASN1_STRING_get0_data(g->d.uniformResourceIdentifier);
            urilen = ASN1_STRING_length(g->d.uniformResourceIdentifier);
        }
    }
    mg_buf_printf(b, ",\"client_cert\":%s,\"client_uri_san\":", peer ? "true" : "false");
    if (uri)
        mg_up_json_str(b, uri, (size_t)urilen);
    else
        mg_buf_adds(b, "null");
    mg_buf_printf(b, ",\"client_uri_sans\":%d", nuri);
    GENERAL_NAMES_free(gens);
}

/* {"upstream":NAME,"method":M,"path":TARGET,"version":"HTTP/1.1",
 *  "headers":[["Name","value"],...],"body_length":N,"body_sha256":HEX,
 *  "tls":bool,"sni":S|null,"alpn":S|null,"tls_version":S|null,"client_cert":bool,"client_uri_san":S|null,
 *  "client_uri_sans":N,"remote":"ip:port","connection_request":N}
 * Header pairs have no spaces, so tests can also grep '["name","value"]'. */
char *mg_up_echo_json(struct conn *c, struct up_req *rq)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    EVP_DigestFinal_ex(rq->sha, md, &mdlen);
    struct mg_buf b = {0};
    mg_buf_adds(&b, "{\"upstream\":");
    mg_up_json_str(&b, c->srv->name, strlen(c->srv->name));
    mg_buf_adds(&b, ",\"method\":");
    mg_up_json_str(&b, rq->method, strlen(rq->method));
    mg_buf_adds(&b, ",\"path\":");
    mg_up_json_str(&b, rq->target, strlen(rq->target));
    mg_buf_printf(&b, ",\"version\":\"%s\",\"headers\":[", rq->version);
    if (rq->headers_json.p)
        mg_buf_adds(&b, rq->headers_json.p);
    mg_buf_printf(&b, "],\"body_length\":%llu,\"body_sha256\":\"",
                  (unsigned long long)rq->body_len);
    for (unsigned i = 0; i < mdlen; i++)
        mg_buf_printf(&b, "%02x", md[i]);
    mg_buf_adds(&b, "\"");
    client_cert_json(c, &b);
    if (c->proxy_json[0])
        mg_buf_printf(&b, ",%s", c->proxy_json);
    mg_buf_adds(&b, ",\"remote\":");
    mg_up_json_str(&b, c->peer, strlen(c->peer));
    mg_buf_printf(&b, ",\"connection_request\":%lu}\n", rq->nreq);
    return b.p;
}

static void respond_echo(struct conn *c, int status)
{
    char *extra = mg_up_resp_headers(c->rq.target);
    bool nobody = status == 204 || status == 304;
    char *body = nobody ? NULL : mg_up_echo_json(c, &c->rq);
    send_head(c, status, nobody ? NULL : "application/json", nobody ? -1 : (int64_t)strlen(body),
              extra);
    if (body && strcmp(c->rq.method, "HEAD") != 0)
        evbuffer_add(bufferevent_get_output(c->bev), body, strlen(body));
    free(body);
    free(extra);
    response_done(c);
}

static void slow_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    respond_echo(arg, 200);
}

/* ---------------------------------------------------------------- bytes */

void mg_up_pattern(char *dst, size_t n, uint64_t off)
{
    for (size_t i = 0; i < n; i++)
        dst[i] = (char)('a' + (off + i) % 26);
}

void mg_up_fill_bytes(struct conn *c)
{
    char chunk[FILL_CHUNK];
    struct evbuffer *out = bufferevent_get_output(c->bev);
    while (c->send_left > 0 && evbuffer_get_length(out) < 4 * WRITE_LOW_WATER) {
        size_t n = c->send_left < FILL_CHUNK ? (size_t)c->send_left : FILL_CHUNK;
        mg_up_pattern(chunk, n, c->send_total - c->send_left);
        if (c->send_chunked)
            evbuffer_add_printf(out, "%zx\r\n", n);
        evbuffer_add(out, chunk, n);
        if (c->send_chunked)
            evbuffer_add(out, "\r\n", 2);
        c->send_left -= n;
    }
    if (c->send_left == 0) {
        if (c->send_chunked)
            evbuffer_add(out, "0\r\n\r\n", 5);
        response_done(c);
    }
}

static void respond_bytes(struct conn *c, const char *arg, const char *query)
{
    uint64_t n;
    if (mg_parse_uint(arg, 0, MAX_BYTES, &n) != 0) {
        simple_response(c, 400, "bad /bytes/N\n");
        return;
    }
    const char *from = NULL, *v;
    size_t len = 0;
    bool chunked = query && (v = mg_up_query_next(query, "chunked", &len, &from)) && len == 1 && *v == '1';
    char *extra = mg_up_resp_headers(c->rq.target);
    c->send_chunked = chunked && c->minor >= 1;
    send_head(c, 200, "application/octet-stream", chunked ? -1 : (int64_t)n, extra);
    free(extra);
    if (strcmp(c->rq.method, "HEAD") == 0) {
        response_done(c);
        return;
    }
    c->send_left = c->send_total = n;
    if (n == 0 && !c->send_chunked) {
        response_done(c);
        return;
    }
    mg_up_fill_bytes(c);      /* write_cb continues until send_left is 0 */
}

/* ---------------------------------------------------------------- files */

int mg_up_file_read(struct server *srv, const char *rel, char **data, size_t *len,
                    const char **ctype)
{
    *data = NULL;
    if (!srv->serve_dir || !*rel || strchr(rel, '\\'))
        return -1;
    /* Refuse anything that could leave the served directory. */
    for (const char *p = rel; *p;) {
        const char *e = strchr(p, '/');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
            return -1;
        p = e ? e + 1 : p + n;
    }
    char *path = mg_xasprintf("%s/%s", srv->serve_dir, rel);
    *data = mg_read_file(path, MAX_FILE, len);
    free(path);
    if (!*data)
        return -1;
    *ctype = mg_has_suffix(rel, ".json") ? "application/json"
           : mg_has_suffix(rel, ".pem") || mg_has_suffix(rel, ".crt") ? "application/x-pem-file"
           : mg_has_suffix(rel, ".txt") ? "text/plain"
           : mg_has_suffix(rel, ".html") ? "text/html"
           : "application/octet-stream";
    return 0;
}

static void respond_file(struct conn *c, const char *rel)
{
    char *data;
    size_t len;
    const char *ct;
    if (mg_up_file_read(c->srv, rel, &data, &len, &ct) != 0) {
        simple_response(c, 404, "not found\n");
        return;
    }
    char *extra = mg_up_resp_headers(c->rq.target);
    send_head(c, 200, ct, (int64_t)len, extra);
    free(extra);
    if (strcmp(c->rq.method, "HEAD") != 0)
        evbuffer_add(bufferevent_get_output(c->bev), data, len);
    free(data);
    response_done(c);
}

/* ---------------------------------------------------------------- route */

void mg_up_dispatch(struct conn *c)
{
    c->st = S_RESPOND;
    c->keepalive = c->minor >= 1 ? !c->conn_close : c->conn_keepalive;
    fprintf(stderr, "mg_upstream[%s]: %s %s %s body=%llu\n", c->srv->name, c->peer, c->rq.method,
            c->rq.target, (unsigned long long)c->rq.body_len);
    if (c->srv->log_headers)
        fprintf(stderr, "mg_upstream[%s]: headers [%.*s]\n", c->srv->name,
                (int)c->rq.headers_json.len, c->rq.headers_json.p ? c->rq.headers_json.p : "");
    if (c->srv->status) {               /* --status: a failing (or fixed) upstream */
        respond_echo(c, c->srv->status);
        return;
    }
    if (mg_up_ws_accept(c))
        return;
    char *path = mg_xstrdup(c->rq.target);
    char *query = strchr(path, '?');
    if (query)
        *query++ = '\0';
    if (strcmp(path, "/close") == 0) {
        const char *from = NULL, *v;
        size_t len;
        if (query && (v = mg_up_query_next(query, "rst", &len, &from)) && len == 1 && *v == '1') {
            struct linger lg = {1, 0};   /* close sends RST instead of FIN */
            setsockopt(bufferevent_getfd(c->bev), SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        }
        free(path);
        mg_up_conn_free(c, true);
        return;
    }
    if (strcmp(path, "/slow") == 0) {
        const char *from = NULL, *v;
        size_t len = 0;
        uint64_t ms = 0;
        if (query && (v = mg_up_query_next(query, "ms", &len, &from))) {
            char *s = mg_xstrndup(v, len);
            if (mg_parse_uint(s, 0, MAX_SLOW_MS, &ms) != 0)
                ms = MAX_SLOW_MS;
            free(s);
        }
        free(path);
        struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
        if (!c->timer)
            c->timer = evtimer_new(c->srv->base, slow_cb, c);
        evtimer_add(c->timer, &tv);
        return;
    }
    if (strncmp(path, "/status/", 8) == 0) {
        uint64_t st;
        if (mg_parse_uint(path + 8, 200, 599, &st) != 0) {
            free(path);
            simple_response(c, 400, "bad /status/NNN (200..599)\n");
            return;
        }
        free(path);
        respond_echo(c, (int)st);
        return;
    }
    if (strncmp(path, "/bytes/", 7) == 0) {
        respond_bytes(c, path + 7, query);
        free(path);
        return;
    }
    if (strncmp(path, "/file/", 6) == 0) {
        respond_file(c, path + 6);
        free(path);
        return;
    }
    free(path);
    respond_echo(c, 200);
}

