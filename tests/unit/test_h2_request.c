/* test_h2_request.c - HTTP/2 header block -> request (src/http/h2_request.c):
 * pseudo-headers, RFC 9113 refusals, cookie crumbs, Host vs :authority,
 * content-length, body framing. Refusals are observed through a recording
 * local_reply op; accepted blocks are checked field by field (the phases
 * themselves are not run here: mg_h2_take_field only, or start_stream on
 * blocks that must be refused). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "http/internal.h"
#include "tap.h"

static int replied;
static const char *reply_body;

static void rec_local_reply(struct mg_request *r, int status, const char *body, bool close)
{
    (void)r;
    (void)close;
    replied = status;
    reply_body = body;
}

static const struct mg_down_ops rec_ops = { .local_reply = rec_local_reply };

/* The phase runner's reply (mg_request_init is not called here): record the
 * status and answer through the codec's local_reply, as request.c does. */
static void rec_reply(struct mg_request *r, int status, const char *body, const char *reason,
                      bool close)
{
    r->status = status;
    r->reason = reason;
    r->ops->local_reply(r, status, body, close);
}

static const struct mg_request_cb rec_cb = { .reply = rec_reply };

static struct mg_h2_stream *stream(void)
{
    struct mg_h2_stream *s = calloc(1, sizeof(*s));
    s->cookie_at = SIZE_MAX;
    s->r.ops = &rec_ops;
    s->r.cb = &rec_cb;
    s->r.codec = s;
    s->r.flags = "-";
    replied = 0;
    reply_body = NULL;
    return s;
}

static void done(struct mg_h2_stream *s)
{
    mg_arena_free(&s->r.arena);
    free(s);
}

static void field(struct mg_h2_stream *s, const char *n, const char *v)
{
    mg_h2_take_field(s, n, strlen(n), v, strlen(v));
}

static void base(struct mg_h2_stream *s, const char *method, const char *path)
{
    field(s, ":method", method);
    field(s, ":scheme", "https");
    if (path)
        field(s, ":path", path);
    field(s, ":authority", "App.Example.com:8443");
}

static const char *hdr(struct mg_h2_stream *s, const char *name)
{
    for (size_t i = 0; i < s->nh; i++)
        if (strcmp(s->hv[i].key, name) == 0)
            return s->hv[i].value;
    return NULL;
}

/* Fields that make a block malformed (400), each alone on a good request. */
static void refused_field(const char *n, const char *v, const char *reason)
{
    struct mg_h2_stream *s = stream();
    base(s, "GET", "/x");
    field(s, n, v);
    is_str(s->bad, reason, "%s: %s -> %s", n, v, reason);
    mg_h2_start_stream(s);
    is_int(replied, 400, "%s: %s answered 400", n, v);
    is_str(s->r.reason, reason, "reason %s logged", reason);
    done(s);
}

int main(void)
{
    /* an ordinary block */
    struct mg_h2_stream *s = stream();
    base(s, "GET", "/a?b=1");
    field(s, "user-agent", "t");
    field(s, "cookie", "a=1");
    field(s, "x-a", "1");
    field(s, "cookie", "b=2");
    field(s, "cookie", "c=3");
    s->hdr_over = true;                 /* refused after the fact: the phases do not run */
    mg_h2_start_stream(s);
    is_str(s->p_method, "GET", ":method kept");
    is_str(s->p_path, "/a?b=1", ":path kept");
    is_str(s->p_authority, "App.Example.com:8443", ":authority kept");
    ok(s->bad == NULL, "ordinary block is not malformed");
    is_int((long long)s->nh, 3, "pseudo-headers are not request headers; cookies make one field");
    is_str(hdr(s, "cookie"), "a=1; b=2; c=3", "cookie crumbs joined with '; ' (RFC 9113 8.2.3)");
    is_str(s->hv[1].key, "cookie", "joined cookie keeps the first crumb's place");
    is_str(hdr(s, "x-a"), "1", "other field kept");
    is_str(s->hv[2].key, "x-a", "fields after the crumbs move up");
    done(s);

    s = stream();
    base(s, "GET", "/x");
    char want[2000] = "", crumb[16];
    for (int i = 0; i < 100; i++) {
        snprintf(crumb, sizeof(crumb), "c%d=%d", i, i);
        field(s, "cookie", crumb);
        if (i)
            strcat(want, "; ");
        strcat(want, crumb);
    }
    field(s, "x-last", "y");
    s->hdr_over = true;
    mg_h2_start_stream(s);
    is_int((long long)s->nh, 2, "100 crumbs become one field");
    is_str(hdr(s, "cookie"), want, "100 crumbs joined in order");
    is_str(hdr(s, "x-last"), "y", "field after them kept");
    done(s);

    /* RFC 9113 8.2.2 connection-specific fields, TE, and friends */
    refused_field("connection", "keep-alive", "connection_specific_header");
    refused_field("keep-alive", "5", "connection_specific_header");
    refused_field("proxy-connection", "x", "connection_specific_header");
    refused_field("transfer-encoding", "chunked", "connection_specific_header");
    refused_field("upgrade", "h2c", "connection_specific_header");
    refused_field("te", "gzip", "connection_specific_header");
    refused_field("X-Upper", "v", "malformed_header");
    refused_field(":unknown", "v", "malformed_request");
    refused_field(":path", "/again", "malformed_request");
    refused_field("content-length", "12a", "malformed_content_length");
    refused_field("content-length", "", "malformed_content_length");

    s = stream();
    base(s, "GET", "/x");
    field(s, "host", "App.Example.com:8443");
    ok(s->bad == NULL, "one Host equal to :authority is fine");
    field(s, "host", "App.Example.com:8443");
    is_str(s->bad, "duplicate_host", "a second Host is malformed");
    done(s);

    s = stream();
    base(s, "GET", "/x");
    field(s, "te", "trailers");
    ok(s->bad == NULL, "te: trailers is allowed");
    done(s);

    s = stream();
    base(s, "GET", "/x");
    mg_h2_take_field(s, "x-nul", 5, "a\0b", 3);
    is_str(s->bad, "malformed_header", "NUL inside a value is malformed");
    done(s);

    /* content-length: repeated equal values are one, different ones refused */
    s = stream();
    base(s, "POST", "/x");
    field(s, "content-length", "10");
    field(s, "content-length", "10");
    ok(s->bad == NULL && s->has_cl && s->cl == 10, "equal repeated content-length accepted");
    field(s, "content-length", "11");
    is_str(s->bad, "malformed_content_length", "different content-length refused");
    done(s);

    /* start_stream refusals */
    s = stream();
    base(s, "GET", "noslash");
    mg_h2_start_stream(s);
    is_int(replied, 400, ":path without / -> 400");
    is_str(s->r.reason, "malformed_path", "reason malformed_path");
    ok(s->running && !s->ready, "the stream counts as a request (logged)");
    done(s);

    s = stream();
    base(s, "GET", NULL);
    mg_h2_start_stream(s);
    is_int(replied, 400, "no :path -> 400");
    done(s);

    s = stream();
    base(s, "GET", "*");
    mg_h2_start_stream(s);
    is_int(replied, 400, "* for a method other than OPTIONS -> 400");
    done(s);

    s = stream();
    field(s, ":method", "CONNECT");
    field(s, ":authority", "app.example.com:443");
    mg_h2_start_stream(s);
    is_int(replied, 405, "CONNECT -> 405 (no tunnels on the gateway path)");
    done(s);

    s = stream();
    base(s, "CONNECT", "/x");
    field(s, ":protocol", "connect-udp");
    mg_h2_start_stream(s);
    is_int(replied, 405, "extended CONNECT for another protocol than websocket -> 405");
    done(s);

    s = stream();
    base(s, "GET", "/x");
    field(s, "host", "evil.example.com");
    mg_h2_start_stream(s);
    is_int(replied, 400, "Host differing from :authority -> 400");
    is_str(s->r.reason, "authority_host_mismatch", "reason authority_host_mismatch");
    done(s);

    s = stream();
    field(s, ":method", "GET");
    field(s, ":scheme", "https");
    field(s, ":path", "/x");
    mg_h2_start_stream(s);
    is_int(replied, 400, "neither :authority nor Host -> 400");
    is_str(s->r.reason, "missing_authority", "reason missing_authority");
    done(s);

    s = stream();
    field(s, ":method", "GET");
    field(s, ":scheme", "https");
    field(s, ":path", "/x");
    field(s, ":authority", "user@app.example.com");
    mg_h2_start_stream(s);
    is_int(replied, 400, "userinfo in :authority -> 400");
    done(s);

    s = stream();
    base(s, "GET", "/x");
    field(s, ":protocol", "websocket");
    mg_h2_start_stream(s);
    is_int(replied, 400, ":protocol on a GET (extended CONNECT is CONNECT only) -> 400");
    done(s);

    s = stream();
    base(s, "GET", "/x");
    s->hdr_over = true;                 /* set by on_header over the limit */
    mg_h2_start_stream(s);
    is_int(replied, 431, "over the header list limit -> 431");
    is_str(s->r.reason, "headers_too_large", "reason headers_too_large");
    is_str(s->r.method, "GET", "method known for the log line");
    done(s);

    /* body framing and request attributes (refused after the fact so the
     * phases do not run: a 431 still fills every attribute first) */
    s = stream();
    base(s, "POST", "/up");
    field(s, "content-length", "5");
    s->hdr_over = true;
    mg_h2_start_stream(s);
    is_int(s->r.body, MG_BODY_LENGTH, "content-length -> MG_BODY_LENGTH");
    is_int((long long)s->r.content_length, 5, "content length 5");
    is_str(s->r.host, "app.example.com", "host lower-cased without the port");
    is_str(s->r.authority, "App.Example.com:8443", "authority as received");
    ok(!s->r.body_done, "body not done yet");
    done(s);

    s = stream();
    base(s, "POST", "/up");
    s->hdr_over = true;
    mg_h2_start_stream(s);
    is_int(s->r.body, MG_BODY_CHUNKED, "no content-length, no END_STREAM -> streamed chunked");
    done(s);

    s = stream();
    base(s, "GET", "/x");
    s->remote_end = true;               /* END_STREAM on HEADERS */
    s->hdr_over = true;
    mg_h2_start_stream(s);
    is_int(s->r.body, MG_BODY_NONE, "END_STREAM on HEADERS -> no body");
    ok(s->r.body_done && s->body_end_sent, "no body: done at once");
    done(s);

    s = stream();
    base(s, "POST", "/up");
    s->remote_end = true;               /* HEADERS, DATA, END_STREAM in one read */
    s->body_recv = 1000;
    s->hdr_over = true;
    mg_h2_start_stream(s);
    is_int(s->r.body, MG_BODY_CHUNKED, "body and END_STREAM before the start -> still a body");
    ok(!s->r.body_done && !s->body_end_sent, "... whose end is still to be sent upstream");
    done(s);

    s = stream();
    field(s, ":method", "HEAD");
    field(s, ":scheme", "https");
    field(s, ":path", "/x");
    field(s, "host", "[::1]:8443");
    field(s, "expect", "100-continue");
    s->hdr_over = true;
    mg_h2_start_stream(s);
    is_str(s->r.authority, "[::1]:8443", "Host stands in for a missing :authority");
    is_str(s->r.host, "[::1]", "IPv6 host keeps its brackets, loses the port");
    ok(s->r.is_head, "HEAD noticed");
    ok(s->r.expect_continue, "expect: 100-continue noticed");
    done(s);

    return tap_done();
}
