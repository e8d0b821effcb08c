/* h2_request.c - an HTTP/2 header block becomes a `struct mg_request`:
 * pseudo-headers, RFC 9113 validation (connection-specific fields, TE,
 * :path, Host against :authority), cookie crumbs joined, body framing for
 * the HTTP/1.1 upstream. The stream and connection state is http/internal.h. */
#include <string.h>
#include "http/internal.h"
#include "http1/http1.h"
#include "http/http.h"

static char *host_lower(struct mg_arena *a, const char *v)
{
    /* strip a :port (not inside [v6]) and lower-case */
    size_t n = strlen(v), end = n;
    if (n && v[0] == '[') {
        const char *rb = memchr(v, ']', n);
        end = rb ? (size_t)(rb - v) + 1 : n;
    } else {
        const char *colon = memchr(v, ':', n);
        if (colon)
            end = (size_t)(colon - v);
    }
    char *s = mg_arena_strndup(a, v, end);
    mg_lower(s);
    return s;
}

static bool connection_specific(const char *n, size_t l)
{
    static const char *const names[] = { "connection", "keep-alive", "proxy-connection",
                                         "transfer-encoding", "upgrade" };
    for (size_t i = 0; i < MG_ARRAY_LEN(names); i++)
        if (l == strlen(names[i]) && memcmp(n, names[i], l) == 0)
            return true;
    return false;
}

static void add_field(struct mg_h2_stream *s, const char *k, const char *v)
{
    struct mg_request *r = &s->r;
    if (s->nh == s->caph) {
        size_t nc = s->caph ? s->caph * 2 : 16;
        struct mg_kv *nv = mg_arena_alloc(&r->arena, nc * sizeof(*nv));
        if (s->nh)
            memcpy(nv, s->hv, s->nh * sizeof(*nv));
        s->hv = nv;
        s->caph = nc;
    }
    memset(&s->hv[s->nh], 0, sizeof(s->hv[0]));
    s->hv[s->nh].key = (char *)k;
    s->hv[s->nh++].value = (char *)v;
}

/* One request header field (not trailers, within the limits). */
int mg_h2_take_field(struct mg_h2_stream *s, const char *n, size_t namelen, const char *value,
                     size_t valuelen)
{
    struct mg_arena *a = &s->r.arena;
    if (memchr(value, '\0', valuelen) || memchr(n, '\0', namelen)) {
        s->bad = "malformed_header";
        return 0;
    }
    char *v = mg_arena_strndup(a, value, valuelen);
    if (namelen && n[0] == ':') {
        const char **slot = NULL;
        if (namelen == 7 && memcmp(n, ":method", 7) == 0)
            slot = &s->p_method;
        else if (namelen == 5 && memcmp(n, ":path", 5) == 0)
            slot = &s->p_path;
        else if (namelen == 10 && memcmp(n, ":authority", 10) == 0)
            slot = &s->p_authority;
        else if (namelen == 7 && memcmp(n, ":scheme", 7) == 0)
            slot = &s->p_scheme;
        else if (namelen == 9 && memcmp(n, ":protocol", 9) == 0)
            slot = &s->p_protocol;
        if (!slot || *slot)
            s->bad = "malformed_request";   /* unknown or repeated pseudo-header */
        else
            *slot = v;
        return 0;
    }
    for (size_t i = 0; i < namelen; i++) {
        if (n[i] >= 'A' && n[i] <= 'Z') {
            s->bad = "malformed_header";    /* RFC 9113 8.2.1: upper case is malformed */
            return 0;
        }
    }
    char *k = mg_arena_strndup(a, n, namelen);
    if (connection_specific(k, namelen) ||
        (strcmp(k, "te") == 0 && mg_strcasecmp(v, "trailers") != 0)) {
        s->bad = "connection_specific_header";   /* RFC 9113 8.2.2 */
        return 0;
    }
    if (strcmp(k, "content-length") == 0) {
        uint64_t cl = 0;
        bool ok = valuelen > 0 && valuelen <= 19;
        for (size_t i = 0; ok && i < valuelen; i++) {
            if (v[i] < '0' || v[i] > '9')
                ok = false;
            else
                cl = cl * 10 + (uint64_t)(v[i] - '0');
        }
        if (!ok || (s->has_cl && cl != s->cl)) {
            s->bad = "malformed_content_length";
            return 0;
        }
        s->has_cl = true;
        s->cl = cl;
    }
    if (strcmp(k, "host") == 0) {
        if (s->host_hdr) {
            s->bad = "duplicate_host";
            return 0;
        }
        s->host_hdr = v;
    }
    if (strcmp(k, "cookie") == 0 && s->cookie_at == SIZE_MAX)
        s->cookie_at = s->nh;
    add_field(s, k, v);
    return 0;
}

/* RFC 9113 8.2.3: cookie crumbs become one field joined with "; " for an
 * HTTP/1.1 upstream, at the place of the first one. Joined once, so many
 * crumbs cost linear, not quadratic, memory. */
static void join_cookies(struct mg_h2_stream *s)
{
    if (s->cookie_at == SIZE_MAX)
        return;
    size_t len = 0, n = 0;
    for (size_t i = s->cookie_at; i < s->nh; i++)
        if (strcmp(s->hv[i].key, "cookie") == 0) {
            len += strlen(s->hv[i].value) + 2;
            n++;
        }
    if (n < 2)
        return;
    char *j = mg_arena_alloc(&s->r.arena, len + 1), *p = j;
    size_t o = s->cookie_at + 1;
    for (size_t i = s->cookie_at; i < s->nh; i++) {
        if (strcmp(s->hv[i].key, "cookie") != 0) {
            s->hv[o++] = s->hv[i];
            continue;
        }
        size_t l = strlen(s->hv[i].value);
        if (p != j) {
            memcpy(p, "; ", 2);
            p += 2;
        }
        memcpy(p, s->hv[i].value, l);
        p += l;
    }
    *p = '\0';
    s->hv[s->cookie_at].value = j;
    s->nh = o;
}

/* ---- a complete header block becomes a request ---- */

static bool path_ok(const char *method, const char *path)
{
    if (!path || !path[0])
        return false;
    if (path[0] == '/')
        return true;
    return strcmp(path, "*") == 0 && strcmp(method, "OPTIONS") == 0;
}

void mg_h2_fill_request(struct mg_h2_stream *s)
{
    struct mg_request *r = &s->r;
    join_cookies(s);
    r->method = s->p_method ? s->p_method : "-";
    r->target = s->p_path ? s->p_path : "";
    r->is_head = strcmp(r->method, "HEAD") == 0;
    r->h = s->hv;
    r->n_h = s->nh;
    r->bytes_received += s->hbytes;
    const char *auth = s->p_authority ? s->p_authority : s->host_hdr;
    r->authority = auth ? auth : "";
    r->host = host_lower(&r->arena, r->authority);
    const char *ex = mg_request_header(r, "expect");
    r->expect_continue = ex && mg_strcasecmp(ex, "100-continue") == 0;
    /* Streams start after the whole input batch was processed, so DATA and
     * END_STREAM read together with the HEADERS have already arrived (and
     * wait in s->reqbuf): a stream that ended is bodiless only if no body
     * byte came, else its body would never go upstream. */
    if (s->remote_end && !s->has_cl && s->body_recv == 0) {
        r->body = MG_BODY_NONE;
    } else if (s->has_cl) {
        r->body = s->cl ? MG_BODY_LENGTH : MG_BODY_NONE;
        r->content_length = s->cl;
    } else {
        r->body = MG_BODY_CHUNKED;      /* length unknown: streamed as chunked upstream */
    }
    r->body_done = r->body == MG_BODY_NONE;
    if (r->body_done)
        s->body_end_sent = true;
}

void mg_h2_start_stream(struct mg_h2_stream *s)
{
    struct mg_request *r = &s->r;
    s->ready = false;
    s->running = true;
    mg_h2_fill_request(s);
    if (s->hdr_over) {
        mg_request_reply(r, 431, "Request Header Fields Too Large", "headers_too_large", false);
        return;
    }
    if (!s->bad && s->p_authority && s->host_hdr && mg_strcasecmp(s->p_authority, s->host_hdr) != 0)
        s->bad = "authority_host_mismatch";
    if (!s->bad && r->authority[0] == '\0')
        s->bad = "missing_authority";
    if (!s->bad && strchr(r->authority, '@'))
        s->bad = "authority_userinfo";
    if (!s->bad && strcmp(r->method, "CONNECT") == 0) {
        if (!s->p_protocol || mg_strcasecmp(s->p_protocol, "websocket") != 0) {
            /* no other tunnels on the gateway path, as for HTTP/1 */
            mg_request_reply(r, 405, "Method Not Allowed", "unsupported", false);
            return;
        }
        /* RFC 8441: a WebSocket over this stream, handled as the HTTP/1.1
         * upgrade it stands for (as Envoy does): a GET with Upgrade:
         * websocket for routing, authentication and authorization; the
         * stream's DATA both ways become the tunnel's bytes */
        r->method = "GET";
        r->upgrade = "websocket";
        r->upgrade_h2 = true;
        r->body = MG_BODY_UNTIL_CLOSE;
        r->body_done = false;
        s->body_end_sent = false;
    }
    if (!s->bad && ((s->p_protocol && !r->upgrade_h2) || !s->p_method))
        s->bad = "malformed_request";
    /* Istio answers 400 to a method that is not uppercase (as the HTTP/1
     * parser does): policies match methods case-sensitively, and a
     * backend that upper-cases "delete" would get past DENY methods. */
    for (const char *m = r->method; !s->bad && *m; m++)
        if (*m >= 'a' && *m <= 'z')
            s->bad = "malformed_method";
    if (!s->bad && !path_ok(r->method, s->p_path))
        s->bad = "malformed_path";
    if (s->bad) {
        mg_request_reply(r, 400, "Bad Request", s->bad, false);
        return;
    }
    mg_request_run(r);
}
