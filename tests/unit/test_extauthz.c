/* test_extauthz.c - the HTTP ext_authz client against a scripted server on
 * the same event base: what the check request carries (method, pathPrefix,
 * Host, every value of a repeated header, only the listed headers), and
 * how each kind of answer ends (allow with upstream headers, deny with
 * status/body/headers in every framing, 5xx, malformed, oversized, closed,
 * timeout, refused, unknown service, cancel). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/listener.h>
#include "net/net.h"
#include "access/internal.h"
#include "http/http.h"
#include "tap.h"
#include "upstream/upstream.h"

static struct event_base *base;
static struct evdns_base *dns;
static struct mg_dns *resolver;         /* the worker's cached resolver over dns */
static const char *answer;              /* what the server sends; NULL = nothing */
static size_t answer_len;
static bool close_after;
static struct mg_buf seen;              /* the check request the server received */
static struct bufferevent *srv_bev;

static bool done_called;
static struct mg_extauthz_result got;
static char got_body[128];

static void srv_read(struct bufferevent *bev, void *arg)
{
    (void)arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    size_t n = evbuffer_get_length(in);
    char *p = (char *)evbuffer_pullup(in, (ev_ssize_t)n);
    mg_buf_add(&seen, p, n);
    evbuffer_drain(in, n);
    if (!strstr(seen.p ? seen.p : "", "\r\n\r\n"))
        return;
    if (!answer && close_after) {
        bufferevent_free(bev);
        srv_bev = NULL;
        return;
    }
    if (answer)
        bufferevent_write(bev, answer, answer_len);
    if (close_after) {
        bufferevent_flush(bev, EV_WRITE, BEV_FINISHED);
        /* close once the answer is written */
        bufferevent_setwatermark(bev, EV_WRITE, 0, 0);
    }
}

static void srv_write(struct bufferevent *bev, void *arg)
{
    (void)arg;
    if (close_after && evbuffer_get_length(bufferevent_get_output(bev)) == 0 &&
        strstr(seen.p ? seen.p : "", "\r\n\r\n")) {
        bufferevent_free(bev);
        srv_bev = NULL;
    }
}

static void srv_event(struct bufferevent *bev, short what, void *arg)
{
    (void)what;
    (void)arg;
    bufferevent_free(bev);
    srv_bev = NULL;
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int len,
                      void *arg)
{
    (void)l;
    (void)sa;
    (void)len;
    (void)arg;
    srv_bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
    bufferevent_setcb(srv_bev, srv_read, srv_write, srv_event, NULL);
    bufferevent_enable(srv_bev, EV_READ | EV_WRITE);
}

static int n_overflow, n_done;

static void done_count(struct mg_request *r, const struct mg_extauthz_result *res)
{
    (void)r;
    n_done++;
    if (res->verdict == MG_EXTAUTHZ_ERROR && res->error && strcmp(res->error, "ext_authz overflow") == 0)
        n_overflow++;
}

static void done(struct mg_request *r, const struct mg_extauthz_result *res)
{
    (void)r;
    done_called = true;
    got = *res;
    snprintf(got_body, sizeof(got_body), "%s", res->body ? res->body : "");
    event_base_loopbreak(base);
}

static const char *hdr(const char *name)
{
    for (size_t i = 0; i < got.n_headers; i++)
        if (strcmp(got.headers[i].key, name) == 0)
            return got.headers[i].value;
    return NULL;
}

static char *sv_prefix[] = { "x-ext-*" };
static char *sv_include[] = { "x-user", "*-trace" };
static char *sv_deny[] = { "x-deny-*" };

struct fixture {
    struct mg_worker w;
    struct mg_conn c;
    struct mg_request r;
    struct mg_kv h[5];
    struct mg_ext_provider p;
    struct mg_endpoint ep;
    struct mg_cluster cl;
};

static void setup(struct fixture *f, uint16_t port, const char *prefix, bool deny_list)
{
    memset(f, 0, sizeof(*f));
    f->w.base = base;
    f->w.dns = dns;
    f->w.resolver = resolver;
    f->w.rnd = 7;
    f->c.w = &f->w;
    f->c.principal = f->c.peer_uri = f->c.cert_hash = "";   /* as conn.c starts one */
    f->r.conn = &f->c;
    f->r.method = "POST";
    f->r.path = "/api/x";
    f->r.query = "q=1";
    f->r.authority = "app.example.com:8443";
    const char *kv[][2] = { { "x-user", "ok" }, { "x-user", "evil" }, { "authorization", "Bearer t" },
                            { "x-secret", "s" }, { "b3-trace", "abc" } };
    for (size_t i = 0; i < 5; i++) {
        f->h[i].key = (char *)kv[i][0];
        f->h[i].value = (char *)kv[i][1];
    }
    f->r.h = f->h;
    f->r.n_h = 5;
    f->p.name = "ext";
    f->p.type = MG_EXT_HTTP;
    f->p.timeout_ms = 2000;
    f->p.path_prefix = (char *)prefix;
    f->p.include_request_headers_in_check = (struct mg_slist){ sv_include, NULL, 2, true };
    f->p.headers_to_upstream_on_allow = (struct mg_slist){ sv_prefix, NULL, 1, true };
    if (deny_list)
        f->p.headers_to_downstream_on_deny = (struct mg_slist){ sv_deny, NULL, 1, true };
    struct sockaddr_in *sin = (struct sockaddr_in *)&f->ep.sa;
    sin->sin_family = AF_INET;
    sin->sin_port = htons(port);
    sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    f->ep.salen = sizeof(*sin);
    f->ep.resolved = true;
    f->cl.eps = &f->ep;
    f->cl.n_eps = 1;
}

/* Run one check against the scripted answer; returns the fixture for checks. */
static void run(struct fixture *f, uint16_t port, const char *ans, size_t len, bool close,
                const char *prefix, bool deny_list, int64_t timeout_ms)
{
    setup(f, port, prefix, deny_list);
    if (timeout_ms)
        f->p.timeout_ms = timeout_ms;
    answer = ans;
    answer_len = ans ? (len ? len : strlen(ans)) : 0;
    close_after = close;
    mg_buf_free(&seen);
    done_called = false;
    memset(&got, 0, sizeof(got));
    struct mg_extauthz_call *c = mg_extauthz_start(&f->r, &f->p, &f->cl, done);
    ok(c != NULL && !done_called, "start returns a call and never completes synchronously");
    struct timeval limit = { 5, 0 };
    event_base_loopexit(base, &limit);
    event_base_dispatch(base);
    ok(done_called, "completion ran");
}

int main(void)
{
    base = event_base_new();
    /* no nameservers: only the test's hosts file answers */
    dns = evdns_base_new(base, 0);
    char hosts[] = "/tmp/mg-test-extauthz-hosts.XXXXXX";
    int hfd = mkstemp(hosts);
    if (hfd < 0 || write(hfd, "127.0.0.1 authz.test\n", 22) != 22) {
        printf("Bail out! hosts file\n");
        return 1;
    }
    close(hfd);
    evdns_base_load_hosts(dns, hosts);
    resolver = mg_dns_new(dns, MG_DNS_CACHE_ENTRIES);
    mg_dns_load_hosts(resolver, hosts);
    unlink(hosts);
    struct sockaddr_in sin = { 0 };
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct evconnlistener *l = evconnlistener_new_bind(base, on_accept, NULL,
                                                       LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 16,
                                                       (struct sockaddr *)&sin, sizeof(sin));
    if (!l) {
        printf("Bail out! cannot listen\n");
        return 1;
    }
    struct sockaddr_in bound;
    socklen_t bl = sizeof(bound);
    getsockname(evconnlistener_get_fd(l), (struct sockaddr *)&bound, &bl);
    uint16_t port = ntohs(bound.sin_port);
    struct fixture f;

    /* header patterns */
    struct mg_slist pat = { sv_include, NULL, 2, true };
    ok(mg_extauthz_header_listed(&pat, "x-user"), "exact pattern");
    ok(mg_extauthz_header_listed(&pat, "X-User"), "patterns are case-insensitive");
    ok(mg_extauthz_header_listed(&pat, "b3-trace"), "suffix pattern");
    ok(!mg_extauthz_header_listed(&pat, "x-users"), "exact is not a prefix");
    struct mg_slist pre = { sv_prefix, NULL, 1, true };
    ok(mg_extauthz_header_listed(&pre, "x-ext-user") && !mg_extauthz_header_listed(&pre, "x-ex"),
       "prefix pattern");

    /* allow, and what the check carried */
    run(&f, port, "HTTP/1.1 200 OK\r\nx-ext-user: alice\r\nx-other: 1\r\ncontent-length: 2\r\n\r\nok",
        0, false, "/authz", false, 0);
    is_int(got.verdict, MG_EXTAUTHZ_ALLOW, "200 allows");
    is_str(hdr("x-ext-user"), "alice", "listed header kept for the upstream");
    ok(hdr("x-other") == NULL, "unlisted header not kept");
    ok(seen.p && strncmp(seen.p, "POST /authz/api/x?q=1 HTTP/1.1\r\n", 32) == 0,
       "same method, pathPrefix + path + query");
    ok(seen.p && strstr(seen.p, "\r\nhost: app.example.com:8443\r\n"), "Host is the original authority");
    ok(seen.p && strstr(seen.p, "\r\nx-user: ok\r\n") && strstr(seen.p, "\r\nx-user: evil\r\n"),
       "every value of a repeated header (CVE-2021-32777)");
    ok(seen.p && strstr(seen.p, "\r\nauthorization: Bearer t\r\n"), "Authorization always sent");
    ok(seen.p && strstr(seen.p, "\r\nb3-trace: abc\r\n"), "suffix-listed header sent");
    ok(seen.p && !strstr(seen.p, "x-secret"), "unlisted header not sent");
    ok(seen.p && strstr(seen.p, "\r\ncontent-length: 0\r\n"), "no body in the check");
    mg_arena_free(&f.r.arena);

    /* deny, chunked body, headers to the client (list) */
    run(&f, port, "HTTP/1.1 403 Forbidden\r\nx-deny-why: nope\r\nx-other: 1\r\ncontent-type: text/html\r\n"
        "transfer-encoding: chunked\r\n\r\n3\r\nno!\r\n2\r\n!!\r\n0\r\n\r\n", 0, false, NULL, true, 0);
    is_int(got.verdict, MG_EXTAUTHZ_DENY, "403 denies");
    is_int(got.status, 403, "provider status kept");
    is_str(got_body, "no!!!", "chunked body decoded");
    is_str(hdr("x-deny-why"), "nope", "listed header for the client");
    ok(hdr("x-other") == NULL && hdr("content-type") == NULL, "unlisted and framing headers dropped");
    mg_arena_free(&f.r.arena);

    /* deny without a list: every non-framing header; body until close */
    run(&f, port, "HTTP/1.0 401 Unauthorized\r\nx-a: 1\r\n\r\nbye", 0, true, NULL, false, 0);
    is_int(got.verdict, MG_EXTAUTHZ_DENY, "401 denies");
    is_int(got.status, 401, "401 kept");
    is_str(got_body, "bye", "body read until close");
    is_str(hdr("x-a"), "1", "no list: headers forwarded to the client");
    mg_arena_free(&f.r.arena);

    /* interim 100 then the answer */
    run(&f, port, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n", 0, false,
        NULL, false, 0);
    is_int(got.verdict, MG_EXTAUTHZ_ALLOW, "interim 1xx skipped");
    mg_arena_free(&f.r.arena);

    /* an endpoint given by name, resolved by the worker's evdns (hosts file) */
    setup(&f, port, NULL, false);
    f.ep.resolved = false;
    f.ep.address = "authz.test";
    f.ep.port = port;
    answer = "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
    answer_len = strlen(answer);
    close_after = false;
    mg_buf_free(&seen);
    done_called = false;
    struct mg_extauthz_call *dc = mg_extauthz_start(&f.r, &f.p, &f.cl, done);
    ok(dc && !done_called, "name endpoint: not completed inside start");
    struct timeval dl = { 5, 0 };
    event_base_loopexit(base, &dl);
    event_base_dispatch(base);
    ok(done_called && got.verdict == MG_EXTAUTHZ_ALLOW, "name endpoint resolved and allowed");
    mg_arena_free(&f.r.arena);
    setup(&f, port, NULL, false);
    f.ep.resolved = false;
    f.ep.address = "nothing.invalid";
    f.ep.port = port;
    done_called = false;
    dc = mg_extauthz_start(&f.r, &f.p, &f.cl, done);
    ok(dc && !done_called, "unresolvable name: not completed inside start");
    event_base_loopexit(base, &dl);
    event_base_dispatch(base);
    ok(done_called && got.verdict == MG_EXTAUTHZ_ERROR, "unresolvable name: error");
    mg_arena_free(&f.r.arena);

    /* errors */
    run(&f, port, "HTTP/1.1 503 Unavailable\r\ncontent-length: 0\r\n\r\n", 0, false, NULL, false, 0);
    is_int(got.verdict, MG_EXTAUTHZ_ERROR, "5xx is an error, not a verdict");
    mg_arena_free(&f.r.arena);
    run(&f, port, "HTTP/1.1 2OO OK\r\n\r\n", 0, false, NULL, false, 0);
    is_int(got.verdict, MG_EXTAUTHZ_ERROR, "malformed status line");
    mg_arena_free(&f.r.arena);
    run(&f, port, "HTTP/1.1 403 Forbidden\r\ncontent-length: 100000\r\n\r\n", 0, false, NULL, false, 0);
    is_int(got.verdict, MG_EXTAUTHZ_ERROR, "declared body over 64 KiB refused before reading it");
    mg_arena_free(&f.r.arena);
    size_t big_len = MG_EXTAUTHZ_MAX_RESPONSE + 4096;
    char *big = malloc(big_len);
    memset(big, 'a', big_len);
    memcpy(big, "HTTP/1.0 403 Forbidden\r\n\r\n", 26);
    run(&f, port, big, big_len, false, NULL, false, 0);
    is_int(got.verdict, MG_EXTAUTHZ_ERROR, "body until close over 64 KiB");
    free(big);
    mg_arena_free(&f.r.arena);
    run(&f, port, "HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc", 0, true, NULL, false, 0);
    is_int(got.verdict, MG_EXTAUTHZ_ERROR, "truncated body");
    mg_arena_free(&f.r.arena);
    run(&f, port, NULL, 0, true, NULL, false, 0);
    is_int(got.verdict, MG_EXTAUTHZ_ERROR, "closed without an answer");
    mg_arena_free(&f.r.arena);
    run(&f, port, NULL, 0, false, NULL, false, 150);
    is_int(got.verdict, MG_EXTAUTHZ_ERROR, "no answer: timeout");
    is_str(got.error, "ext_authz timeout", "timeout reason");
    mg_arena_free(&f.r.arena);
    if (srv_bev) {
        bufferevent_free(srv_bev);
        srv_bev = NULL;
    }

    /* refused: a port nothing listens on (the listener's port after close) */
    evconnlistener_free(l);
    run(&f, port, NULL, 0, false, NULL, false, 0);
    is_int(got.verdict, MG_EXTAUTHZ_ERROR, "connection refused");
    mg_arena_free(&f.r.arena);

    /* unknown service */
    setup(&f, port, NULL, false);
    done_called = false;
    struct mg_extauthz_call *c = mg_extauthz_start(&f.r, &f.p, NULL, done);
    ok(c && !done_called, "unknown service: not completed inside start");
    struct timeval limit = { 2, 0 };
    event_base_loopexit(base, &limit);
    event_base_dispatch(base);
    ok(done_called && got.verdict == MG_EXTAUTHZ_ERROR, "unknown service: error");

    /* at most MG_EXTAUTHZ_MAX_INFLIGHT checks at once per worker */
    setup(&f, port, NULL, false);
    for (int i = 0; i < MG_EXTAUTHZ_MAX_INFLIGHT + 2; i++)
        mg_extauthz_start(&f.r, &f.p, NULL, done_count);
    struct timeval soon = { 0, 300000 };
    event_base_loopexit(base, &soon);
    event_base_dispatch(base);
    is_int(n_done, MG_EXTAUTHZ_MAX_INFLIGHT + 2, "every check completed");
    is_int(n_overflow, 2, "the checks over the bound failed as overflow");

    /* cancel: no completion, nothing leaks */
    setup(&f, port, NULL, false);
    done_called = false;
    c = mg_extauthz_start(&f.r, &f.p, &f.cl, done);
    mg_extauthz_cancel(c);
    struct timeval shortly = { 0, 200000 };
    event_base_loopexit(base, &shortly);
    event_base_dispatch(base);
    ok(!done_called, "a cancelled call never completes");

    mg_arena_free(&f.r.arena);
    mg_buf_free(&seen);
    evdns_base_free(dns, 0);
    mg_dns_free(resolver);
    event_base_free(base);
    return tap_done();
}
