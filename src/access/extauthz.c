/* extauthz.c - one HTTP ext_authz check per call, on the worker's base.
 *
 * The call owns a plain mg_io and a deadline timer. Whatever ends it
 * (answer, error, timeout) goes through finish(), which frees everything
 * before it calls the completion, so the completion may release the
 * request (and with it anything that pointed at the call). A failure
 * detected inside mg_extauthz_start is reported through a zero-delay timer:
 * the caller never sees its completion run before start returned. */
#include "access/internal.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <event2/buffer.h>
#include <event2/dns.h>
#include <event2/event.h>
#include "net/types.h"
#include "http1/http1.h"
#include "http/types.h"
#include "upstream/upstream.h"

/* Checks in flight on this worker thread (each holds a socket): beyond the
 * bound a check fails at once, as Envoy's cluster circuit breaker would. */
static _Thread_local unsigned inflight;

struct mg_extauthz_call {
    struct mg_request *r;
    const struct mg_ext_provider *p;
    mg_extauthz_done_fn done;
    struct mg_io *io;
    struct event *timer;
    struct mg_dns_req *dnsreq;          /* endpoint given by name */
    uint16_t port;                      /* ... and its port */
    bool failed_early;                  /* the timer reports this error */
    const char *early_error;
};

bool mg_extauthz_header_listed(const struct mg_slist *patterns, const char *name)
{
    size_t nl = strlen(name);
    for (size_t i = 0; i < patterns->n; i++) {
        const char *p = patterns->v[i];
        size_t pl = strlen(p);
        if (pl == 0)
            continue;
        if (p[pl - 1] == '*' && pl > 1) {
            if (nl >= pl - 1 && mg_strncasecmp(name, p, pl - 1) == 0)
                return true;
        } else if (p[0] == '*' && pl > 1) {
            if (nl >= pl - 1 && mg_strcasecmp(name + nl - (pl - 1), p + 1) == 0)
                return true;
        } else if (mg_strcasecmp(name, p) == 0) {
            return true;
        }
    }
    return false;
}

/* Headers that would change the check request's framing or target; they
 * are never copied into it whatever includeRequestHeadersInCheck says. */
static bool framing_header(const char *n)
{
    static const char *const skip[] = { "host", "content-length", "transfer-encoding",
                                        "connection", "keep-alive", "proxy-connection", "te",
                                        "trailer", "upgrade", "expect", "authorization" };
    for (size_t i = 0; i < MG_ARRAY_LEN(skip); i++)
        if (strcmp(n, skip[i]) == 0)
            return true;
    return false;
}

static void call_free(struct mg_extauthz_call *c)
{
    inflight--;
    if (c->dnsreq)
        mg_dns_cancel(c->dnsreq);       /* its callback does not run */
    if (c->io)
        mg_io_free(c->io);
    if (c->timer)
        event_free(c->timer);
    free(c);
}

static void finish(struct mg_extauthz_call *c, struct mg_extauthz_result *res)
{
    struct mg_request *r = c->r;
    mg_extauthz_done_fn done = c->done;
    call_free(c);
    done(r, res);
}

static void finish_error(struct mg_extauthz_call *c, const char *why)
{
    struct mg_extauthz_result res;
    memset(&res, 0, sizeof(res));
    res.verdict = MG_EXTAUTHZ_ERROR;
    res.error = why;
    finish(c, &res);
}

static void keep_headers(struct mg_extauthz_call *c, const struct mg_h1_response *h,
                         const struct mg_slist *list, bool all_when_empty,
                         struct mg_extauthz_result *res)
{
    for (size_t i = 0; i < h->n_headers && res->n_headers < MG_EXTAUTHZ_MAX_HEADERS; i++) {
        char *name = mg_arena_strndup(&c->r->arena, h->headers[i].name, h->headers[i].name_len);
        mg_lower(name);
        if (strcmp(name, "content-length") == 0 || strcmp(name, "transfer-encoding") == 0 ||
            strcmp(name, "content-type") == 0 || strcmp(name, "host") == 0 ||
            mg_h1_is_hop_by_hop(name, strlen(name)))
            continue;
        if (list->n ? !mg_extauthz_header_listed(list, name) : !all_when_empty)
            continue;
        res->headers[res->n_headers].key = name;
        res->headers[res->n_headers++].value =
            mg_arena_strndup(&c->r->arena, h->headers[i].value, h->headers[i].value_len);
    }
}

/* Try to complete from what has arrived; eof = the provider closed. */
static void try_parse(struct mg_extauthz_call *c, bool eof)
{
    struct evbuffer *in = mg_io_get_input(c->io);
    size_t len = evbuffer_get_length(in);
    if (len > MG_EXTAUTHZ_MAX_RESPONSE) {
        finish_error(c, "ext_authz answer too large");
        return;
    }
    const char *buf = len ? (const char *)evbuffer_pullup(in, (ev_ssize_t)len) : "";
    struct mg_h1_response h;
    size_t off = 0;
    ssize_t hl;
    for (;;) {
        hl = mg_h1_parse_response(buf + off, len - off, NULL, c->r->method, strlen(c->r->method), &h);
        if (hl > 0 && h.status >= 100 && h.status < 200) {
            if (h.status == 101) {
                finish_error(c, "ext_authz answered 101");
                return;
            }
            off += (size_t)hl;          /* interim answer: the real one follows */
            continue;
        }
        break;
    }
    if (hl < 0) {
        finish_error(c, "malformed ext_authz answer");
        return;
    }
    if (hl == 0) {
        if (eof)
            finish_error(c, "ext_authz closed before answering");
        return;
    }
    size_t body_off = off + (size_t)hl, avail = len - body_off, blen = 0;
    const char *body = buf + body_off;
    switch (h.body) {
    case MG_H1_BODY_NONE:
        break;
    case MG_H1_BODY_LENGTH:
        if (h.content_length > MG_EXTAUTHZ_MAX_RESPONSE) {
            finish_error(c, "ext_authz answer too large");
            return;
        }
        if (avail < h.content_length) {
            if (eof)
                finish_error(c, "ext_authz answer truncated");
            return;
        }
        blen = (size_t)h.content_length;
        break;
    case MG_H1_BODY_UNTIL_CLOSE:
        if (!eof)
            return;
        blen = avail;
        break;
    case MG_H1_BODY_CHUNKED: {
        /* decode into the arena; the bytes are bounded by the 64 KiB cap */
        struct mg_h1_chunked ck;
        mg_h1_chunked_init(&ck);
        char *out = mg_arena_alloc(&c->r->arena, avail + 1);
        size_t pos = 0, o = 0;
        for (;;) {
            size_t n = 0;
            enum mg_chunk_step st = mg_h1_chunked_step(&ck, body + pos, avail - pos, &n);
            if (st == MG_CHUNK_ERROR) {
                finish_error(c, "malformed ext_authz answer body");
                return;
            }
            if (st == MG_CHUNK_NEED_MORE) {
                if (eof)
                    finish_error(c, "ext_authz answer truncated");
                return;
            }
            if (st == MG_CHUNK_DATA) {
                memcpy(out + o, body + pos, n);
                o += n;
            }
            pos += n;
            if (st == MG_CHUNK_DONE)
                break;
        }
        body = out;
        blen = o;
        break;
    }
    }
    struct mg_extauthz_result res;
    memset(&res, 0, sizeof(res));
    if (h.status == 200) {
        res.verdict = MG_EXTAUTHZ_ALLOW;
        keep_headers(c, &h, &c->p->headers_to_upstream_on_allow, false, &res);
    } else if (h.status >= 500) {
        /* Envoy: a 5xx from the authorization service is an error, not a verdict */
        res.verdict = MG_EXTAUTHZ_ERROR;
        res.error = "ext_authz answered 5xx";
    } else {
        res.verdict = MG_EXTAUTHZ_DENY;
        res.status = h.status;
        res.body = mg_arena_strndup(&c->r->arena, body, blen);
        keep_headers(c, &h, &c->p->headers_to_downstream_on_deny, true, &res);
    }
    finish(c, &res);
}

static void read_cb(struct mg_io *io, void *arg)
{
    (void)io;
    try_parse(arg, false);
}

static void event_cb(struct mg_io *io, short what, void *arg)
{
    (void)io;
    struct mg_extauthz_call *c = arg;
    if (what & MG_IO_CONNECTED)
        return;
    if (what & MG_IO_EOF) {
        try_parse(c, true);
        return;
    }
    finish_error(c, "ext_authz connection failed");
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct mg_extauthz_call *c = arg;
    finish_error(c, c->failed_early ? c->early_error : "ext_authz timeout");
}

static void fail_soon(struct mg_extauthz_call *c, const char *why)
{
    c->failed_early = true;
    c->early_error = why;
    if (c->io) {
        mg_io_free(c->io);
        c->io = NULL;
    }
    struct timeval now = { 0, 0 };
    evtimer_add(c->timer, &now);
}

static void put_request(const struct mg_extauthz_call *c, struct mg_h1_out *w)
{
    const struct mg_request *r = c->r;
    const struct mg_ext_provider *p = c->p;
    mg_h1_put_request_line(w, r->method, p->path_prefix, r->path, r->query);
    mg_h1_put_field(w, "host", r->authority && *r->authority ? r->authority : "-");
    mg_h1_put_content_length(w, 0);
    for (size_t i = 0; i < r->n_h; i++) {
        const char *n = r->h[i].key;
        if (strcmp(n, "authorization") == 0 ||
            (!framing_header(n) && mg_extauthz_header_listed(&p->include_request_headers_in_check, n)))
            mg_h1_put_field(w, n, r->h[i].value);
    }
    mg_h1_put_field(w, "connection", "close");
    mg_h1_put_end(w);
}

/* Measured by a first run of the same writer calls, then written in one
 * piece. */
static void write_request(struct mg_extauthz_call *c, struct evbuffer *o)
{
    struct mg_h1_out w;
    struct evbuffer_iovec v;
    mg_h1_out_init(&w, NULL, 0);
    put_request(c, &w);
    if (evbuffer_reserve_space(o, (ev_ssize_t)w.len, &v, 1) != 1)
        return;
    mg_h1_out_init(&w, v.iov_base, v.iov_len);
    put_request(c, &w);
    v.iov_len = w.len <= w.cap ? w.len : 0;
    evbuffer_commit_space(o, &v, 1);
}

static void dns_cb(int err, const struct mg_addr *addrs, size_t n, void *arg)
{
    struct mg_extauthz_call *c = arg;
    c->dnsreq = NULL;
    struct sockaddr_storage ss;
    socklen_t sl = err || n == 0 ? 0 : mg_addr_to_sockaddr(&addrs[0], c->port, &ss);
    if (sl == 0) {
        fail_soon(c, "ext_authz service name does not resolve");
        return;
    }
    if (mg_io_connect(c->io, (const struct sockaddr *)&ss, (int)sl) < 0)
        fail_soon(c, "ext_authz connection failed");
}

struct mg_extauthz_call *mg_extauthz_start(struct mg_request *r, const struct mg_ext_provider *p,
                                           struct mg_cluster *cl, mg_extauthz_done_fn done)
{
    struct mg_worker *w = r->conn->w;
    struct mg_extauthz_call *c = mg_xcalloc(1, sizeof(*c));
    c->r = r;
    c->p = p;
    c->done = done;
    c->timer = evtimer_new(w->base, timer_cb, c);
    if (!c->timer)
        mg_oom();
    inflight++;
    int64_t ms = p->timeout_ms > 0 ? p->timeout_ms : 600000;
    struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000) };
    evtimer_add(c->timer, &tv);         /* the deadline covers DNS, connect and the answer */
    if (inflight > MG_EXTAUTHZ_MAX_INFLIGHT) {
        fail_soon(c, "ext_authz overflow");
        return c;
    }
    if (!cl || cl->n_eps == 0) {
        fail_soon(c, cl ? "ext_authz service has no endpoint" : "ext_authz service unknown");
        return c;
    }
    const struct mg_endpoint *e = &cl->eps[mg_worker_rand(w) % cl->n_eps];
    c->io = mg_io_socket_new(w->base, -1, NULL, MG_IO_OPEN);
    if (!c->io) {
        fail_soon(c, "ext_authz socket");
        return c;
    }
    mg_io_setcb(c->io, read_cb, NULL, event_cb, c);
    mg_io_setwatermark(c->io, EV_READ, 0, MG_EXTAUTHZ_MAX_RESPONSE + 1);
    write_request(c, mg_io_get_output(c->io));
    mg_io_enable(c->io, EV_READ | EV_WRITE);
    if (e->resolved) {
        if (mg_io_connect(c->io, (const struct sockaddr *)&e->sa, (int)e->salen) < 0)
            fail_soon(c, "ext_authz connection failed");
        return c;
    }
    c->port = e->port;
    /* NULL when it answered at once (dns_cb already ran and did its part) */
    c->dnsreq = mg_dns_resolve(w->resolver, e->address, AF_UNSPEC, dns_cb, c);
    return c;
}

void mg_extauthz_cancel(struct mg_extauthz_call *c)
{
    if (c)
        call_free(c);
}
