/* test_http1.c - the strict HTTP/1 parser, chunked decoder and writer.
 *
 * Every input is parsed from an exact-size heap copy so ASan flags any read
 * past the bytes the parser was given. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "http1/http1.h"
#include "tap.h"

static struct mg_h1_request req;
static struct mg_h1_response resp;

/* Result of parsing s[0..len): the head length, 0 (incomplete), or
 * -status on error. */
static long long parse_n(const char *s, size_t len, const struct mg_h1_limits *lim)
{
    char *copy = malloc(len ? len : 1);
    memcpy(copy, s, len);
    int st = -1;
    ssize_t r = mg_h1_parse_request(copy, len, lim, &req, &st);
    long long out = r < 0 ? -(long long)st : (long long)r;
    if (r >= 0 && st != 0)
        out = -9999;                     /* status must stay 0 unless an error */
    free(copy);                          /* req points into copy: only use it in parse_ok */
    return out;
}

/* Status a complete request gets: 200 when accepted, else the error. */
static int status_of(const char *s)
{
    long long r = parse_n(s, strlen(s), NULL);
    if (r > 0)
        return 200;
    return r == 0 ? 0 : (int)-r;
}

/* Parse s (kept alive in a static buffer) so req's pointers stay valid. */
static ssize_t parse_keep(const char *s, size_t len)
{
    static char buf[65536];
    memcpy(buf, s, len);
    int st = 0;
    ssize_t r = mg_h1_parse_request(buf, len, NULL, &req, &st);
    return r < 0 ? -st : r;
}

static int span_is(const char *p, size_t n, const char *want)
{
    return p && n == strlen(want) && memcmp(p, want, n) == 0;
}

struct status_case {
    const char *name;
    const char *raw;
    size_t len;                 /* true length: some cases embed NUL bytes */
    int want;
};
#define C(name, lit, want) {name, lit, sizeof(lit) - 1, want}

static const struct status_case request_cases[] = {
    /* line endings */
    C("bare LF line endings", "GET / HTTP/1.1\nHost: h\n\n", 400),
    C("bare LF after a header", "GET / HTTP/1.1\r\nHost: h\nX: y\r\n\r\n", 400),
    C("bare CR in request line", "GET /\r HTTP/1.1\r\nHost: h\r\n\r\n", 400),
    C("bare CR in value", "GET / HTTP/1.1\r\nHost: h\r\nX: a\rb\r\n\r\n", 400),
    C("LF LF end of head", "GET / HTTP/1.1\r\nHost: h\r\n\n", 400),
    C("empty line before request line", "\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", 400),
    /* folding and whitespace */
    C("obs-fold continuation", "GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n", 400),
    C("obs-fold with HTAB", "GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n\tb\r\n\r\n", 400),
    C("whitespace before first header", "GET / HTTP/1.1\r\n Host: h\r\n\r\n", 400),
    C("space before colon", "GET / HTTP/1.1\r\nHost : h\r\n\r\n", 400),
    C("tab before colon", "GET / HTTP/1.1\r\nHost\t: h\r\n\r\n", 400),
    C("space inside name", "GET / HTTP/1.1\r\nHost: h\r\nX Y: z\r\n\r\n", 400),
    C("invalid name char", "GET / HTTP/1.1\r\nHost: h\r\nX(y): z\r\n\r\n", 400),
    C("empty header name", "GET / HTTP/1.1\r\nHost: h\r\n: z\r\n\r\n", 400),
    C("header without colon", "GET / HTTP/1.1\r\nHost: h\r\nNoColon\r\n\r\n", 400),
    /* request line */
    C("two spaces after method", "GET  / HTTP/1.1\r\nHost: h\r\n\r\n", 400),
    C("two spaces before version", "GET /  HTTP/1.1\r\nHost: h\r\n\r\n", 400),
    C("tab separator", "GET\t/ HTTP/1.1\r\nHost: h\r\n\r\n", 400),
    C("leading space", " GET / HTTP/1.1\r\nHost: h\r\n\r\n", 400),
    C("trailing space after version", "GET / HTTP/1.1 \r\nHost: h\r\n\r\n", 400),
    C("empty method", " / HTTP/1.1\r\nHost: h\r\n\r\n", 400),
    C("lowercase method", "get / HTTP/1.1\r\nHost: h\r\n\r\n", 400),
    C("mixed-case method", "Get / HTTP/1.1\r\nHost: h\r\n\r\n", 400),
    C("method not a token", "GE@T / HTTP/1.1\r\nHost: h\r\n\r\n", 400),
    C("target with DEL", "GET /a\x7f HTTP/1.1\r\nHost: h\r\n\r\n", 400),
    C("target with high byte", "GET /\xc3\xa9 HTTP/1.1\r\nHost: h\r\n\r\n", 400),
    C("target with NUL", "GET /a\0b HTTP/1.1\r\nHost: h\r\n\r\n", 400),
    C("missing version", "GET /\r\nHost: h\r\n\r\n", 400),
    C("HTTP/0.9 style line", "GET\r\nHost: h\r\n\r\n", 400),
    C("relative target", "GET index.html HTTP/1.1\r\nHost: h\r\n\r\n", 400),
    C("asterisk with GET", "GET * HTTP/1.1\r\nHost: h\r\n\r\n", 400),
    C("unknown scheme absolute form", "GET ftp://h/x HTTP/1.1\r\nHost: h\r\n\r\n", 400),
    /* version */
    C("HTTP/2.0", "GET / HTTP/2.0\r\nHost: h\r\n\r\n", 505),
    C("HTTP/1.2", "GET / HTTP/1.2\r\nHost: h\r\n\r\n", 505),
    C("HTTP/0.9", "GET / HTTP/0.9\r\nHost: h\r\n\r\n", 505),
    C("HTTX/1.1", "GET / HTTX/1.1\r\nHost: h\r\n\r\n", 400),
    C("lowercase http/1.1", "GET / http/1.1\r\nHost: h\r\n\r\n", 400),
    C("HTTP/1.10", "GET / HTTP/1.10\r\nHost: h\r\n\r\n", 400),
    C("HTTP/11", "GET / HTTP/11\r\nHost: h\r\n\r\n", 400),
    /* Content-Length */
    C("CL and TE", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
    C("duplicate CL, equal", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", 400),
    C("duplicate CL, different", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", 400),
    C("CL comma list", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5, 5\r\n\r\n", 400),
    C("CL with plus sign", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +5\r\n\r\n", 400),
    C("CL negative", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n", 400),
    C("CL space inside", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1 0\r\n\r\n", 400),
    C("CL hex", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0x10\r\n\r\n", 400),
    C("CL empty", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: \r\n\r\n", 400),
    C("CL overflows 64 bits", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 18446744073709551616\r\n\r\n", 400),
    C("CL max 64-bit accepted", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 18446744073709551615\r\n\r\n", 200),
    /* Transfer-Encoding */
    C("TE chunked, chunked", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", 400),
    C("TE gzip, chunked", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 400),
    C("two TE headers", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
    C("TE unknown coding alone", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
    C("TE identity alone", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: identity\r\n\r\n", 501),
    C("TE empty", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: \r\n\r\n", 400),
    C("TE with parameter", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked;q=1\r\n\r\n", 400),
    C("TE on HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
    C("TE CHUNKED uppercase ok", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: CHUNKED\r\n\r\n", 200),
    /* Host */
    C("two Host headers", "GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", 400),
    C("no Host on 1.1", "GET / HTTP/1.1\r\nX: y\r\n\r\n", 400),
    C("no Host on 1.0 ok", "GET / HTTP/1.0\r\n\r\n", 200),
    C("empty Host origin-form ok", "GET / HTTP/1.1\r\nHost:\r\n\r\n", 200),
    C("empty Host absolute-form", "GET http://a.example/ HTTP/1.1\r\nHost:\r\n\r\n", 400),
    C("Host with path", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400),
    C("Host with userinfo", "GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", 400),
    C("Host with bad port", "GET / HTTP/1.1\r\nHost: a:99999\r\n\r\n", 400),
    C("Host with empty port", "GET / HTTP/1.1\r\nHost: a:\r\n\r\n", 400),
    C("Host pct-encoded ok", "GET / HTTP/1.1\r\nHost: a%2Db.example\r\n\r\n", 200),
    C("Host bad pct-encoding", "GET / HTTP/1.1\r\nHost: a%2\r\n\r\n", 400),
    C("Host empty name with port", "GET / HTTP/1.1\r\nHost: :80\r\n\r\n", 400),
    C("Host port not digits", "GET / HTTP/1.1\r\nHost: a:8x\r\n\r\n", 400),
    C("Host IPv6 bad char", "GET / HTTP/1.1\r\nHost: [::g]\r\n\r\n", 400),
    C("Host IPv6 empty", "GET / HTTP/1.1\r\nHost: []\r\n\r\n", 400),
    C("Host IPv6 unterminated", "GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", 400),
    C("Host IPv6 junk after bracket", "GET / HTTP/1.1\r\nHost: [::1]x\r\n\r\n", 400),
    C("Host IPv6 literal ok", "GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n", 200),
    C("absolute-form host mismatch", "GET http://a.example/p HTTP/1.1\r\nHost: b.example\r\n\r\n", 400),
    C("absolute-form case-insensitive", "GET http://A.Example/p HTTP/1.1\r\nHost: a.EXAMPLE\r\n\r\n", 200),
    C("absolute-form default port in target", "GET http://a.example:80/p HTTP/1.1\r\nHost: a.example\r\n\r\n", 200),
    C("absolute-form default port in Host", "GET https://a.example/p HTTP/1.1\r\nHost: a.example:443\r\n\r\n", 200),
    C("absolute-form other port", "GET http://a.example:8080/p HTTP/1.1\r\nHost: a.example\r\n\r\n", 400),
    C("absolute-form wrong default port", "GET http://a.example/p HTTP/1.1\r\nHost: a.example:443\r\n\r\n", 400),
    C("absolute-form no Host on 1.1", "GET http://a.example/p HTTP/1.1\r\n\r\n", 400),
    C("absolute-form no Host on 1.0", "GET http://a.example/p HTTP/1.0\r\n\r\n", 200),
    C("absolute-form userinfo", "GET http://u@a.example/ HTTP/1.1\r\nHost: u@a.example\r\n\r\n", 400),
    C("absolute-form empty authority", "GET http:///p HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    /* values */
    C("NUL in value", "GET / HTTP/1.1\r\nHost: h\r\nX-Role: admin\0foo\r\n\r\n", 400),
    C("CTL in value", "GET / HTTP/1.1\r\nHost: h\r\nX: a\x01" "b\r\n\r\n", 400),
    C("DEL in value", "GET / HTTP/1.1\r\nHost: h\r\nX: a\x7f\r\n\r\n", 400),
    C("HTAB inside value ok", "GET / HTTP/1.1\r\nHost: h\r\nX: a\tb\r\n\r\n", 200),
    C("obs-text in value ok", "GET / HTTP/1.1\r\nHost: h\r\nX: caf\xc3\xa9\r\n\r\n", 200),
    C("bad Connection token", "GET / HTTP/1.1\r\nHost: h\r\nConnection: a b\r\n\r\n", 400),
    /* CONNECT and OPTIONS */
    C("CONNECT authority ok", "CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n", 200),
    C("CONNECT without port", "CONNECT a.example HTTP/1.1\r\nHost: a.example\r\n\r\n", 400),
    C("CONNECT origin-form", "CONNECT / HTTP/1.1\r\nHost: a.example\r\n\r\n", 400),
    C("CONNECT absolute-form", "CONNECT http://a.example:443/ HTTP/1.1\r\nHost: a.example:443\r\n\r\n", 400),
    C("CONNECT Host mismatch", "CONNECT a.example:443 HTTP/1.1\r\nHost: b.example:443\r\n\r\n", 400),
    C("CONNECT with TE", "CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
    C("CONNECT with CL body", "CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\nContent-Length: 4\r\n\r\n", 400),
    C("CONNECT with CL 0 ok", "CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\nContent-Length: 0\r\n\r\n", 200),
    C("OPTIONS * ok", "OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n", 200),
    C("Expect other value passes", "PUT / HTTP/1.1\r\nHost: h\r\nExpect: something\r\n\r\n", 200),
};

/* Request smuggling classics: each must be refused (or, for the one valid
 * spelling, accepted as chunked). */
static const struct status_case smuggling_cases[] = {
    C("CL.TE", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 13\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nSMUGGLED", 400),
    C("TE.CL", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n8\r\nSMUGGLED\r\n0\r\n\r\n", 400),
    C("TE.TE duplicate with junk", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: x\r\n\r\n", 400),
    C("TE space before colon", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding : chunked\r\n\r\n", 400),
    C("TE xchunked", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: xchunked\r\n\r\n", 501),
    C("TE xchunked plus CL", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: xchunked\r\nContent-Length: 4\r\n\r\n", 400),
    C("TE chunked plus CL", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n", 400),
    C("TE with HTAB OWS is valid", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding:\tchunked\r\n\r\n", 200),
    C("TE line-folded", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding:\r\n chunked\r\n\r\n", 400),
    C("TE value folded after chunked", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n , identity\r\n\r\n", 400),
    C("TE with vertical tab", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding:\x0b" "chunked\r\n\r\n", 400),
    C("TE quoted", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: \"chunked\"\r\n\r\n", 400),
    C("TE with NUL", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\0\r\n\r\n", 400),
    C("CL with space before colon", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length : 5\r\n\r\nhello", 400),
    C("TE name with trailing tab", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding\t: chunked\r\n\r\n", 400),
};

static void run_status_table(const struct status_case *t, size_t n, const char *tag)
{
    for (size_t i = 0; i < n; i++) {
        long long r = parse_n(t[i].raw, t[i].len, NULL);
        int got = r > 0 ? 200 : r == 0 ? 0 : (int)-r;
        is_int(got, t[i].want, "%s: %s", tag, t[i].name);
    }
}

static void test_good_requests(void)
{
    const char *g = "GET /a?b=c HTTP/1.1\r\nHost: a.example\r\nX-Role: admin \t\r\nX-Empty:\r\n"
                    "X-Multi: one\r\nX-Multi: two\r\n\r\n";
    ssize_t r = parse_keep(g, strlen(g));
    is_int(r, (long long)strlen(g), "simple GET: head length");
    ok(span_is(req.method, req.method_len, "GET"), "method");
    ok(span_is(req.target, req.target_len, "/a?b=c"), "target");
    is_int(req.minor, 1, "minor version");
    is_int(req.n_headers, 5, "header count");
    ok(span_is(req.headers[1].value, req.headers[1].value_len, "admin"),
       "trailing SP/HTAB trimmed (CVE-2019-18802)");
    is_int(req.headers[2].value_len, 0, "empty value");
    ok(span_is(req.headers[3].value, req.headers[3].value_len, "one") &&
       span_is(req.headers[4].value, req.headers[4].value_len, "two"),
       "repeated header kept as two entries");
    ok(span_is(req.host, req.host_len, "a.example"), "host from Host");
    ok(req.keep_alive && req.body == MG_H1_BODY_NONE && !req.absolute_form && !req.connect,
       "1.1 defaults: keep-alive, no body");
    const struct mg_h1_header *h = mg_h1_find(req.headers, req.n_headers, "x-multi");
    ok(h == &req.headers[3], "mg_h1_find returns the first match, case-insensitive");
    ok(mg_h1_find(req.headers, req.n_headers, "x-none") == NULL, "mg_h1_find misses");

    const char *lead = "GET / HTTP/1.1\r\nHost:   \t h  \r\n\r\n";
    parse_keep(lead, strlen(lead));
    ok(span_is(req.host, req.host_len, "h"), "leading and trailing OWS trimmed");

    const char *cl = "POST /u HTTP/1.1\r\nHost: h\r\nContent-Length: 007\r\n\r\n1234567";
    r = parse_keep(cl, strlen(cl));
    ok(r == (ssize_t)strlen(cl) - 7 && req.body == MG_H1_BODY_LENGTH && req.content_length == 7,
       "Content-Length body (leading zeros are decimal)");
    const char *cl0 = "POST /u HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n";
    parse_keep(cl0, strlen(cl0));
    ok(req.body == MG_H1_BODY_NONE && req.content_length == 0, "Content-Length 0 = no body");
    const char *ch = "POST /u HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: Chunked\r\n\r\n";
    parse_keep(ch, strlen(ch));
    ok(req.body == MG_H1_BODY_CHUNKED, "chunked body, case-insensitive coding");
}

static void test_keep_alive(void)
{
    static const struct { const char *raw; int keep; } t[] = {
        {"GET / HTTP/1.1\r\nHost: h\r\n\r\n", 1},
        {"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n", 0},
        {"GET / HTTP/1.1\r\nHost: h\r\nConnection: CLOSE\r\n\r\n", 0},
        {"GET / HTTP/1.1\r\nHost: h\r\nConnection: foo, Close\r\n\r\n", 0},
        {"GET / HTTP/1.1\r\nHost: h\r\nConnection: foo\r\nConnection: close\r\n\r\n", 0},
        {"GET / HTTP/1.0\r\n\r\n", 0},
        {"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", 1},
        {"GET / HTTP/1.0\r\nConnection: Keep-Alive, x\r\n\r\n", 1},
        {"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n", 0},
        {"GET / HTTP/1.1\r\nHost: h\r\nConnection: ,,keep-alive,\r\n\r\n", 1},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        ssize_t r = parse_keep(t[i].raw, strlen(t[i].raw));
        ok(r > 0 && req.keep_alive == (bool)t[i].keep, "keep-alive rule %zu: %d", i, t[i].keep);
    }
}

static void test_forms_and_flags(void)
{
    const char *a = "GET http://a.example:8080/p?q HTTP/1.1\r\nHost: a.example:8080\r\n\r\n";
    ok(parse_keep(a, strlen(a)) > 0 && req.absolute_form &&
       span_is(req.host, req.host_len, "a.example:8080") &&
       span_is(req.target, req.target_len, "http://a.example:8080/p?q"),
       "absolute-form: authority becomes host, target as received");
    const char *a10 = "GET https://b.example HTTP/1.0\r\n\r\n";
    ok(parse_keep(a10, strlen(a10)) > 0 && req.absolute_form && span_is(req.host, req.host_len, "b.example"),
       "absolute-form https without path on 1.0");
    const char *c = "CONNECT db.example:5432 HTTP/1.1\r\nHost: db.example:5432\r\n\r\n";
    ok(parse_keep(c, strlen(c)) > 0 && req.connect && req.body == MG_H1_BODY_NONE &&
       span_is(req.host, req.host_len, "db.example:5432"), "CONNECT: flag, host, no body");
    const char *o = "OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n";
    ok(parse_keep(o, strlen(o)) > 0 && span_is(req.target, req.target_len, "*"), "OPTIONS *");
    const char *e = "PUT / HTTP/1.1\r\nHost: h\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n";
    ok(parse_keep(e, strlen(e)) > 0 && req.expect_continue, "Expect: 100-continue detected");
    const char *e10 = "PUT / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n";
    ok(parse_keep(e10, strlen(e10)) > 0 && !req.expect_continue, "100-continue ignored on 1.0");
    const char *eo = "PUT / HTTP/1.1\r\nHost: h\r\nExpect: other\r\n\r\n";
    ok(parse_keep(eo, strlen(eo)) > 0 && !req.expect_continue, "other Expect values: not continue");
    const char *u = "GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, HTTP2-Settings\r\n"
                    "Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n";
    ok(parse_keep(u, strlen(u)) > 0 && req.upgrade, "h2c Upgrade flagged");
    const char *u2 = "GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\r\n";
    ok(parse_keep(u2, strlen(u2)) > 0 && !req.upgrade, "Upgrade without Connection: upgrade ignored");
    const char *eh = "GET / HTTP/1.1\r\nHost:\r\n\r\n";
    ok(parse_keep(eh, strlen(eh)) > 0 && req.host != NULL && req.host_len == 0,
       "empty Host: host is empty, not NULL");
    const char *nh = "GET / HTTP/1.0\r\n\r\n";
    ok(parse_keep(nh, strlen(nh)) > 0 && req.host == NULL && req.minor == 0, "1.0 without Host: host NULL");
}

static void test_pipelined(void)
{
    const char *p = "GET /a HTTP/1.1\r\nHost: h\r\n\r\nPOST /b HTTP/1.1\r\nHost: h\r\n"
                    "Content-Length: 2\r\n\r\nhiGET /c HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n";
    size_t len = strlen(p), off = 0;
    ssize_t r = parse_keep(p, len);
    is_int(r, 28, "pipelined: first head length only");
    ok(span_is(req.target, req.target_len, "/a"), "pipelined: first target");
    off += (size_t)r;
    r = parse_keep(p + off, len - off);
    ok(r > 0 && span_is(req.target, req.target_len, "/b") && req.content_length == 2,
       "pipelined: second request parsed from the offset");
    off += (size_t)r + 2;
    r = parse_keep(p + off, len - off);
    ok(r == (ssize_t)(len - off) && span_is(req.target, req.target_len, "/c") && !req.keep_alive,
       "pipelined: third request, close");
}

/* Every strict prefix of a valid request is "incomplete", never an error. */
static void test_split_points(void)
{
    static const char *const reqs[] = {
        "GET /path?x=1 HTTP/1.1\r\nHost: a.example\r\nX-A: b \r\nConnection: keep-alive\r\n\r\n",
        "POST http://a.example/p HTTP/1.1\r\nHost: a.example\r\nTransfer-Encoding: chunked\r\n\r\n",
        "CONNECT a.example:443 HTTP/1.0\r\n\r\n",
        "OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n",
    };
    for (size_t k = 0; k < sizeof(reqs) / sizeof(reqs[0]); k++) {
        size_t len = strlen(reqs[k]);
        size_t bad = 0;
        for (size_t i = 0; i < len; i++)
            if (parse_n(reqs[k], i, NULL) != 0)
                bad++;
        is_int(bad, 0, "request %zu: all %zu prefixes incomplete", k, len);
        is_int(parse_n(reqs[k], len, NULL), (long long)len, "request %zu: complete at full length", k);
    }
    /* early rejection of input that cannot become a request line */
    is_int(parse_n("\x16\x03\x01\x02\x00", 5, NULL), -400, "TLS ClientHello on plain port: 400 at once");
    is_int(parse_n("get /", 5, NULL), -400, "lowercase method rejected before the line ends");
    is_int(parse_n("GET / HTTX", 10, NULL), -400, "bad version prefix rejected early");
    is_int(parse_n("GET / HTTP/1.1\r", 15, NULL), 0, "CR at end: incomplete");
    is_int(parse_n("GET /\rX", 7, NULL), -400, "bare CR before any LF: 400 at once");
    is_int(parse_n("GET / HTTP/1.1X", 15, NULL), -400, "overlong version rejected early");
    static char longline[400];
    memset(longline, 'a', sizeof(longline));
    memcpy(longline, "GET /", 5);
    is_int(parse_n(longline, sizeof(longline), NULL), 0, "long unfinished target: incomplete");
    int st = -1;
    is_int(mg_h1_parse_request(NULL, 0, NULL, &req, &st), 0, "NULL, 0: incomplete");
    is_int(st, 0, "NULL, 0: status 0");
    is_int(mg_h1_parse_response(NULL, 0, NULL, NULL, 0, &resp), 0, "response NULL, 0: incomplete");
}

static void test_limits(void)
{
    struct mg_h1_limits lim = {.max_head = 64, .max_headers = 3};
    char big[200];
    memset(big, 'a', sizeof(big));
    memcpy(big, "GET /", 5);
    is_int(parse_n(big, 64, &lim), 0, "64 bytes of incomplete head at max_head 64: incomplete");
    is_int(parse_n(big, 65, &lim), -431, "65 bytes without a complete head: 431");
    /* exactly max_head bytes of complete head is fine */
    char exact[64 + 1];
    const char *pre = "GET / HTTP/1.1\r\nHost: h\r\nX: ";
    size_t pl = strlen(pre);
    memcpy(exact, pre, pl);
    memset(exact + pl, 'v', 64 - pl - 4);
    memcpy(exact + 60, "\r\n\r\n", 4);
    is_int(parse_n(exact, 64, &lim), 64, "head of exactly max_head: accepted");
    struct mg_h1_limits lim63 = {.max_head = 63, .max_headers = 3};
    is_int(parse_n(exact, 64, &lim63), -431, "head one byte over max_head: 431");
    const char *h3 = "GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\n\r\n";
    const char *h4 = "GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
    struct mg_h1_limits lim2 = {.max_head = 4096, .max_headers = 3};
    is_int(parse_n(h3, strlen(h3), &lim2), (long long)strlen(h3), "3 headers at max_headers 3: ok");
    is_int(parse_n(h4, strlen(h4), &lim2), -431, "4 headers at max_headers 3: 431");
    /* the count limit is enforced before the head completes */
    is_int(parse_n(h4, strlen(h4) - 2, &lim2), -431, "too many headers: 431 before the head ends");
    /* a head ending within max_head with body bytes beyond it */
    const char *b = "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\n";
    char withbody[300];
    memset(withbody, 'x', sizeof(withbody));
    memcpy(withbody, b, strlen(b));
    struct mg_h1_limits lim3 = {.max_head = 60, .max_headers = 10};
    is_int(parse_n(withbody, sizeof(withbody), &lim3), (long long)strlen(b),
           "body bytes beyond max_head do not count");
    /* NULL limits: defaults (60 KiB, 100 headers) */
    static char huge[70 * 1024];
    memset(huge, 'a', sizeof(huge));
    memcpy(huge, "GET /", 5);
    is_int(parse_n(huge, sizeof(huge), NULL), -431, "default max_head applies");
    /* max_headers above MG_H1_MAX_HEADERS is clamped to the array size */
    static char many[16384];
    size_t off = (size_t)sprintf(many, "GET / HTTP/1.1\r\nHost: h\r\n");
    for (int i = 0; i < MG_H1_MAX_HEADERS; i++)
        off += (size_t)sprintf(many + off, "X%d: v\r\n", i);
    off += (size_t)sprintf(many + off, "\r\n");
    struct mg_h1_limits lim4 = {.max_head = 65536, .max_headers = 100000};
    is_int(parse_n(many, off, &lim4), -431, "129 headers with max_headers 100000: clamped, 431");
}

static void test_responses(void)
{
    static const struct {
        const char *raw, *method;
        long long ret;              /* head length sentinel: 1 = complete, 0, -1 */
        int status;
        enum mg_h1_body body;
        uint64_t cl;
        int keep;
    } t[] = {
        {"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", "GET", 1, 200, MG_H1_BODY_LENGTH, 5, 1},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "GET", 1, 200, MG_H1_BODY_CHUNKED, 0, 1},
        {"HTTP/1.1 200 OK\r\nServer: x\r\n\r\n", "GET", 1, 200, MG_H1_BODY_UNTIL_CLOSE, 0, 0},
        {"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", "HEAD", 1, 200, MG_H1_BODY_NONE, 5, 1},
        {"HTTP/1.1 204 No Content\r\n\r\n", "GET", 1, 204, MG_H1_BODY_NONE, 0, 1},
        {"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n", "GET", 1, 304, MG_H1_BODY_NONE, 10, 1},
        {"HTTP/1.1 100 Continue\r\n\r\n", "POST", 1, 100, MG_H1_BODY_NONE, 0, 1},
        {"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n", "GET", 1, 101, MG_H1_BODY_NONE, 0, 1},
        {"HTTP/1.1 200 Connection established\r\n\r\n", "CONNECT", 1, 200, MG_H1_BODY_NONE, 0, 1},
        {"HTTP/1.1 407 Proxy Auth\r\nContent-Length: 3\r\n\r\n", "CONNECT", 1, 407, MG_H1_BODY_LENGTH, 3, 1},
        {"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n", "GET", 1, 200, MG_H1_BODY_LENGTH, 2, 0},
        {"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\n", "GET", 1, 200, MG_H1_BODY_LENGTH, 2, 1},
        {"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", "GET", 1, 200, MG_H1_BODY_NONE, 0, 0},
        {"HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n", "GET", 1, 200, MG_H1_BODY_NONE, 0, 1},
        {"HTTP/1.1 503\r\nContent-Length: 0\r\n\r\n", "GET", 1, 503, MG_H1_BODY_NONE, 0, 1},
        {"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n", "GET", 0, 0, MG_H1_BODY_NONE, 0, 0},
        {"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", "GET", -1, 0, 0, 0, 0},
        {"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", "GET", -1, 0, 0, 0, 0},
        {"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", "GET", -1, 0, 0, 0, 0},
        {"HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\n", "GET", -1, 0, 0, 0, 0},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", "GET", -1, 0, 0, 0, 0},
        {"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "GET", -1, 0, 0, 0, 0},
        {"HTTP/1.1 200 OK\nContent-Length: 0\n\n", "GET", -1, 0, 0, 0, 0},
        {"HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n", "GET", -1, 0, 0, 0, 0},
        {"HTTP/1.1 200 OK\r\nX : a\r\n\r\n", "GET", -1, 0, 0, 0, 0},
        {"HTTP/1.1 20 OK\r\n\r\n", "GET", -1, 0, 0, 0, 0},
        {"HTTP/1.1 2000 OK\r\n\r\n", "GET", -1, 0, 0, 0, 0},
        {"HTTP/1.1 099 OK\r\n\r\n", "GET", -1, 0, 0, 0, 0},
        {"HTTP/1.1 600 OK\r\n\r\n", "GET", -1, 0, 0, 0, 0},
        {"HTTP/2.0 200 OK\r\n\r\n", "GET", -1, 0, 0, 0, 0},
        {"HTTP/1.1  200 OK\r\n\r\n", "GET", -1, 0, 0, 0, 0},
        {"HTTP/1.1 200 O\x01K\r\n\r\n", "GET", -1, 0, 0, 0, 0},
        {"http/1.1 200 OK\r\n\r\n", "GET", -1, 0, 0, 0, 0},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        size_t len = strlen(t[i].raw);
        char *copy = malloc(len);
        memcpy(copy, t[i].raw, len);
        ssize_t r = mg_h1_parse_response(copy, len, NULL, t[i].method, strlen(t[i].method), &resp);
        int good;
        if (t[i].ret == 1) {
            const char *end = strstr(t[i].raw, "\r\n\r\n");
            good = r == end + 4 - t[i].raw && resp.status == t[i].status && resp.body == t[i].body &&
                   resp.content_length == t[i].cl && resp.keep_alive == (bool)t[i].keep;
        } else {
            good = r == t[i].ret;
        }
        ok(good, "response %zu (%s): %.*s", i, t[i].method, (int)strcspn(t[i].raw, "\r\n"), t[i].raw);
        free(copy);
    }
    const char *rr = "HTTP/1.1 404 Not Found Here\r\nContent-Length: 0\r\n\r\n";
    mg_h1_parse_response(rr, strlen(rr), NULL, NULL, 0, &resp);
    ok(resp.reason_len == 14 && memcmp(resp.reason, "Not Found Here", 14) == 0 && resp.minor == 1,
       "reason phrase with spaces; NULL method treated as non-HEAD");
    /* interim 100 then the final response, parsed from the offset */
    const char *seq = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok";
    ssize_t r1 = mg_h1_parse_response(seq, strlen(seq), NULL, "POST", 4, &resp);
    ok(r1 == 25 && resp.status == 100 && resp.body == MG_H1_BODY_NONE, "interim 100: head of its own");
    ssize_t r2 = mg_h1_parse_response(seq + r1, strlen(seq) - (size_t)r1, NULL, "POST", 4, &resp);
    ok(r2 > 0 && resp.status == 201 && resp.body == MG_H1_BODY_LENGTH && resp.content_length == 2 &&
       (size_t)(r1 + r2) + 2 == strlen(seq), "final response after the interim one");
    /* every strict prefix of a valid response head is incomplete */
    const char *vr = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n";
    size_t bad = 0;
    for (size_t i = 0; i < strlen(vr); i++) {
        char *cp = malloc(i ? i : 1);
        memcpy(cp, vr, i);
        if (mg_h1_parse_response(cp, i, NULL, "GET", 3, &resp) != 0)
            bad++;
        free(cp);
    }
    is_int(bad, 0, "all prefixes of a response head: incomplete");
    struct mg_h1_limits lim = {.max_head = 32, .max_headers = 4};
    const char *lr = "HTTP/1.1 200 OK\r\nX-Long: aaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    is_int(mg_h1_parse_response(lr, strlen(lr), &lim, "GET", 3, &resp), -1, "response head over max_head: error");
}

/* ---- chunked decoder ---------------------------------------------------- */

struct dec {
    int verdict;                /* 1 done, 0 needs more, -1 error */
    size_t used;                /* bytes consumed through DONE */
    char out[4096];
    size_t outlen;
};

/* Feed body in two pieces cut at `cut` (each an exact heap copy), or one
 * byte at a time when cut == SIZE_MAX. */
static void decode(const char *body, size_t len, size_t cut, size_t max_trailer, struct dec *d)
{
    struct mg_h1_chunked c;
    mg_h1_chunked_init(&c);
    c.max_trailer = max_trailer;
    memset(d, 0, sizeof(*d));
    size_t pos = 0;
    while (pos < len) {
        size_t piece = cut == SIZE_MAX ? 1 : (pos < cut ? cut - pos : len - pos);
        if (piece == 0)
            piece = len - pos;
        char *p = malloc(piece);
        memcpy(p, body + pos, piece);
        size_t off = 0;
        while (off < piece) {
            size_t n;
            enum mg_chunk_step s = mg_h1_chunked_step(&c, p + off, piece - off, &n);
            if (s == MG_CHUNK_ERROR) {
                d->verdict = -1;
                free(p);
                return;
            }
            if (s == MG_CHUNK_DATA) {
                if (d->outlen + n <= sizeof(d->out))
                    memcpy(d->out + d->outlen, p + off, n);
                d->outlen += n;
            }
            off += n;
            if (s == MG_CHUNK_DONE) {
                d->verdict = 1;
                d->used = pos + off;
                free(p);
                return;
            }
            if (s == MG_CHUNK_NEED_MORE || n == 0)
                break;
        }
        free(p);
        pos += piece;
    }
    d->used = pos;
}

static void test_chunked_splits(void)
{
    static const struct { const char *body, *payload; } t[] = {
        {"5\r\nhello\r\n0\r\n\r\n", "hello"},
        {"3;name=value\r\nabc\r\nA;q=\"x\\\"y; z\"\r\n0123456789\r\n0;last\r\nT1: v1\r\nT2:\r\n\r\n", "abc0123456789"},
        {"1 ; a = b ;c\r\nx\r\n00\r\n\r\n", "x"},
        {"2  ;a  ;b \t= \"q\" ;c\r\nxy\r\n0\r\n\r\n", "xy"},
        {"0000000000000010\r\n0123456789abcdef\r\n0\r\n\r\n", "0123456789abcdef"},
    };
    for (size_t k = 0; k < sizeof(t) / sizeof(t[0]); k++) {
        size_t len = strlen(t[k].body), plen = strlen(t[k].payload);
        size_t bad = 0;
        struct dec d;
        for (size_t cut = 0; cut <= len; cut++) {
            decode(t[k].body, len, cut, 0, &d);
            if (d.verdict != 1 || d.used != len || d.outlen != plen || memcmp(d.out, t[k].payload, plen))
                bad++;
        }
        decode(t[k].body, len, SIZE_MAX, 0, &d);
        if (d.verdict != 1 || d.used != len || d.outlen != plen || memcmp(d.out, t[k].payload, plen))
            bad++;
        is_int(bad, 0, "chunked body %zu decodes identically at all %zu split points and bytewise", k, len + 1);
    }
    /* bytes after the body are left for the next message */
    const char *next = "2\r\nok\r\n0\r\n\r\nGET / HTTP/1.1\r\n";
    struct dec d;
    decode(next, strlen(next), 0, 0, &d);
    ok(d.verdict == 1 && d.used == 12 && d.outlen == 2, "DONE stops at the end of the body");
    /* a prefix is never an error */
    const char *b = "4;x=\"y\"\r\nWiki\r\n0\r\nA: b\r\n\r\n";
    size_t bad = 0;
    for (size_t i = 0; i < strlen(b); i++) {
        decode(b, i, SIZE_MAX, 0, &d);
        if (d.verdict != 0)
            bad++;
    }
    is_int(bad, 0, "every prefix of a chunked body: needs more, no error");
    struct mg_h1_chunked c;
    size_t n = 99;
    mg_h1_chunked_init(&c);
    is_int(mg_h1_chunked_step(&c, "", 0, &n), MG_CHUNK_NEED_MORE, "empty input: NEED_MORE");
    is_int(n, 0, "NEED_MORE consumes nothing");
    const char *one = "0\r\n\r\nrest";
    is_int(mg_h1_chunked_step(&c, one, strlen(one), &n), MG_CHUNK_DONE, "last chunk at once: DONE");
    is_int(n, 5, "DONE byte count");
    is_int(mg_h1_chunked_step(&c, "x", 1, &n), MG_CHUNK_DONE, "after DONE: still DONE");
    is_int(n, 0, "after DONE: nothing consumed");
    mg_h1_chunked_init(&c);
    const char *big = "ffffffffffffffff\r\nabc";
    mg_h1_chunked_step(&c, big, strlen(big), &n);
    is_int(n, 18, "16-digit size line consumed as framing");
    is_int(mg_h1_chunked_step(&c, big + n, 3, &n), MG_CHUNK_DATA, "max-size chunk: data");
    ok(c.remaining == UINT64_MAX - 3, "remaining tracks a 64-bit size");
}

static void test_chunked_errors(void)
{
    static char longext[5000], longtr[9000], okext[200];
    memcpy(longext, "1;", 2);
    memset(longext + 2, 'e', 4200);
    memcpy(longext + 4202, "\r\nx\r\n0\r\n\r\n", 11);
    memcpy(longtr, "0\r\nT: ", 6);
    memset(longtr + 6, 'v', 8300);
    memcpy(longtr + 8306, "\r\n\r\n", 5);
    memcpy(okext, "1;", 2);
    memset(okext + 2, 'e', 150);
    memcpy(okext + 152, "\r\nx\r\n0\r\n\r\n", 11);
    static const struct { const char *name, *body; size_t len; int verdict; } t[] = {
        {"bad hex digit", "5g\r\nhello\r\n0\r\n\r\n", sizeof("5g\r\nhello\r\n0\r\n\r\n") - 1, -1},
        {"no hex digit", "\r\n0\r\n\r\n", sizeof("\r\n0\r\n\r\n") - 1, -1},
        {"sign before size", "+5\r\nhello\r\n0\r\n\r\n", sizeof("+5\r\nhello\r\n0\r\n\r\n") - 1, -1},
        {"minus size", "-5\r\nhello\r\n0\r\n\r\n", sizeof("-5\r\nhello\r\n0\r\n\r\n") - 1, -1},
        {"leading space", " 5\r\nhello\r\n0\r\n\r\n", sizeof(" 5\r\nhello\r\n0\r\n\r\n") - 1, -1},
        {"0x prefix", "0x5\r\nhello\r\n0\r\n\r\n", sizeof("0x5\r\nhello\r\n0\r\n\r\n") - 1, -1},
        {"trailing space without ext", "5 \r\nhello\r\n0\r\n\r\n", sizeof("5 \r\nhello\r\n0\r\n\r\n") - 1, -1},
        {"17 hex digits (overlong)", "00000000000000005\r\nhello\r\n0\r\n\r\n", sizeof("00000000000000005\r\nhello\r\n0\r\n\r\n") - 1, -1},
        {"size overflows 64 bits", "10000000000000000\r\n", sizeof("10000000000000000\r\n") - 1, -1},
        {"bare LF after size", "5\nhello\r\n0\r\n\r\n", sizeof("5\nhello\r\n0\r\n\r\n") - 1, -1},
        {"bare CR after size", "5\rhello\r\n0\r\n\r\n", sizeof("5\rhello\r\n0\r\n\r\n") - 1, -1},
        {"data longer than size", "5\r\nhello!\r\n0\r\n\r\n", sizeof("5\r\nhello!\r\n0\r\n\r\n") - 1, -1},
        {"LF only after data", "5\r\nhello\n0\r\n\r\n", sizeof("5\r\nhello\n0\r\n\r\n") - 1, -1},
        {"no CRLF after data", "5\r\nhello0\r\n\r\n", sizeof("5\r\nhello0\r\n\r\n") - 1, -1},
        {"ext name missing", "5;\r\nhello\r\n0\r\n\r\n", sizeof("5;\r\nhello\r\n0\r\n\r\n") - 1, -1},
        {"ext value missing", "5;a=\r\nhello\r\n0\r\n\r\n", sizeof("5;a=\r\nhello\r\n0\r\n\r\n") - 1, -1},
        {"ext unterminated quote", "5;a=\"x\r\nhello\r\n0\r\n\r\n", sizeof("5;a=\"x\r\nhello\r\n0\r\n\r\n") - 1, -1},
        {"ext CTL in quote", "5;a=\"\x01\"\r\nhello\r\n0\r\n\r\n", sizeof("5;a=\"\x01\"\r\nhello\r\n0\r\n\r\n") - 1, -1},
        {"ext bad name char", "5;a@b\r\nhello\r\n0\r\n\r\n", sizeof("5;a@b\r\nhello\r\n0\r\n\r\n") - 1, -1},
        {"size line over 4 KiB", longext, 0, -1},
        {"ext of 150 bytes ok", okext, 0, 1},
        {"trailer over 8 KiB", longtr, 0, -1},
        {"trailer obs-fold", "0\r\nA: b\r\n c\r\n\r\n", sizeof("0\r\nA: b\r\n c\r\n\r\n") - 1, -1},
        {"trailer space before colon", "0\r\nA : b\r\n\r\n", sizeof("0\r\nA : b\r\n\r\n") - 1, -1},
        {"trailer without colon", "0\r\nAbc\r\n\r\n", sizeof("0\r\nAbc\r\n\r\n") - 1, -1},
        {"trailer NUL in value", "0\r\nA: b\0c\r\n\r\n", sizeof("0\r\nA: b\0c\r\n\r\n") - 1, -1},
        {"trailer bare LF", "0\r\nA: b\n\r\n", sizeof("0\r\nA: b\n\r\n") - 1, -1},
        {"final bare LF", "0\r\n\n", sizeof("0\r\n\n") - 1, -1},
        {"trailer framing names are just consumed", "0\r\nContent-Length: 5\r\nHost: evil\r\n\r\n", sizeof("0\r\nContent-Length: 5\r\nHost: evil\r\n\r\n") - 1, 1},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        size_t len = t[i].len ? t[i].len : strlen(t[i].body);
        struct dec a, b;
        decode(t[i].body, len, 0, 0, &a);
        decode(t[i].body, len, SIZE_MAX, 0, &b);
        ok(a.verdict == t[i].verdict && b.verdict == t[i].verdict, "chunked %s: %d", t[i].name, t[i].verdict);
    }
    struct dec d;
    const char *tr = "0\r\nA: 1234567890\r\n\r\n";
    decode(tr, strlen(tr), 0, 16, &d);
    is_int(d.verdict, -1, "max_trailer 16: a 19-byte trailer section is refused");
    decode(tr, strlen(tr), 0, 19, &d);
    is_int(d.verdict, 1, "max_trailer 19: the same section fits exactly");
    struct mg_h1_chunked c;
    size_t n;
    mg_h1_chunked_init(&c);
    mg_h1_chunked_step(&c, "z", 1, &n);
    is_int(mg_h1_chunked_step(&c, "5\r\n", 3, &n), MG_CHUNK_ERROR, "after ERROR: still ERROR");
}

/* ---- validators and serializer ------------------------------------------ */

static void test_helpers(void)
{
    ok(mg_h1_valid_name("X-Forwarded-For", 15) && !mg_h1_valid_name("", 0) &&
       !mg_h1_valid_name("a b", 3) && !mg_h1_valid_name("a:b", 3), "mg_h1_valid_name");
    ok(mg_h1_valid_value("a\tb c", 5) && mg_h1_valid_value("", 0) && !mg_h1_valid_value("a\0b", 3) &&
       !mg_h1_valid_value("a\rb", 3) && !mg_h1_valid_value("a\nb", 3), "mg_h1_valid_value");
    ok(mg_h1_is_hop_by_hop("Connection", 10) && mg_h1_is_hop_by_hop("TE", 2) &&
       mg_h1_is_hop_by_hop("transfer-encoding", 17) && mg_h1_is_hop_by_hop("Proxy-Connection", 16) &&
       !mg_h1_is_hop_by_hop("Trailers", 8) && !mg_h1_is_hop_by_hop("Host", 4) &&
       !mg_h1_is_hop_by_hop("Content-Length", 14), "mg_h1_is_hop_by_hop");

    const char *cn = "GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, X-Secret\r\n"
                     "Connection: ,  x-other \t,\r\nX-Secret: s\r\n\r\n";
    parse_keep(cn, strlen(cn));
    ok(mg_h1_connection_lists(req.headers, req.n_headers, "x-secret", 8) &&
       mg_h1_connection_lists(req.headers, req.n_headers, "X-OTHER", 7) &&
       mg_h1_connection_lists(req.headers, req.n_headers, "Keep-Alive", 10),
       "mg_h1_connection_lists finds listed names across Connection headers");
    ok(!mg_h1_connection_lists(req.headers, req.n_headers, "x-secre", 7) &&
       !mg_h1_connection_lists(req.headers, req.n_headers, "host", 4) &&
       !mg_h1_connection_lists(req.headers, req.n_headers, "", 0),
       "mg_h1_connection_lists: no prefix or empty matches");

    char buf[64];
    size_t n = mg_h1_status_line(200, buf, sizeof(buf));
    is_str(buf, "HTTP/1.1 200 OK\r\n", "status line 200");
    is_int(n, 17, "status line length");
    mg_h1_status_line(431, buf, sizeof(buf));
    is_str(buf, "HTTP/1.1 431 Request Header Fields Too Large\r\n", "status line 431");
    mg_h1_status_line(599, buf, sizeof(buf));
    is_str(buf, "HTTP/1.1 599 Unknown\r\n", "unregistered status: Unknown");
    is_int(mg_h1_status_line(200, buf, 17), 0, "cap without room for the NUL: 0");
    is_int(mg_h1_status_line(200, buf, 18), 17, "cap of length + 1: fits");
    is_int(mg_h1_status_line(99, buf, sizeof(buf)), 0, "status 99 refused");
    is_int(mg_h1_status_line(600, buf, sizeof(buf)), 0, "status 600 refused");
    is_str(mg_h1_reason(404), "Not Found", "reason 404");
    is_str(mg_h1_reason(505), "HTTP Version Not Supported", "reason 505");
    is_str(mg_h1_reason(0), "Unknown", "reason of nonsense");
    /* every status line parses back as a response */
    size_t bad = 0;
    for (int s = 100; s <= 599; s++) {
        char line[80];
        size_t l = mg_h1_status_line(s, line, sizeof(line) - 2);
        memcpy(line + l, "\r\n", 2);
        if (mg_h1_parse_response(line, l + 2, NULL, "GET", 3, &resp) != (ssize_t)(l + 2) || resp.status != s)
            bad++;
    }
    is_int(bad, 0, "all 500 status lines round-trip through the response parser");

    char ch[MG_H1_CHUNK_HEADER_MAX + 1];
    n = mg_h1_chunk_header(0, ch);
    ok(n == 3 && memcmp(ch, "0\r\n", 3) == 0, "chunk header 0");
    n = mg_h1_chunk_header(255, ch);
    ok(n == 4 && memcmp(ch, "ff\r\n", 4) == 0, "chunk header 255");
    n = mg_h1_chunk_header(UINT64_MAX, ch);
    ok(n == 18 && memcmp(ch, "ffffffffffffffff\r\n", 18) == 0, "chunk header max");
    n = mg_h1_chunk_header(0x1000, ch);
    ok(n == 6 && memcmp(ch, "1000\r\n", 6) == 0, "chunk header 0x1000");
    /* encoder output decodes back */
    char body[64];
    size_t bl = mg_h1_chunk_header(11, body);
    memcpy(body + bl, "hello world\r\n", 13);
    bl += 13;
    bl += mg_h1_chunk_header(0, body + bl);
    memcpy(body + bl, "\r\n", 2);
    bl += 2;
    struct dec d;
    decode(body, bl, 0, 0, &d);
    ok(d.verdict == 1 && d.used == bl && d.outlen == 11 && memcmp(d.out, "hello world", 11) == 0,
       "chunk_header output decodes with mg_h1_chunked_step");
}

/* The writer's cursor as text: buf NUL-terminated, or "(overflow)". */
static const char *out_text(struct mg_h1_out *w)
{
    if (w->len >= w->cap)
        return "(overflow)";
    w->buf[w->len] = '\0';
    return w->buf;
}

/* The exact bytes meshgate sends: each expected string is a head as it
 * leaves the gateway (captured on the wire), built with the calls the
 * HTTP/1 codec, the upstream client and the ext_authz client make. */
static void test_writer(void)
{
    char buf[512];
    struct mg_h1_out w;

    /* a relayed response, HTTP/1.1, closing */
    mg_h1_out_init(&w, buf, sizeof(buf));
    mg_h1_put_status_line(&w, 1, 200);
    mg_h1_put_field(&w, "content-type", "text/plain");
    mg_h1_put_field(&w, "x-resp-set", "v");
    mg_h1_put_content_length(&w, 11);
    mg_h1_put_field(&w, "connection", "close");
    mg_h1_put_end(&w);
    const char *relayed = "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nx-resp-set: v\r\n"
                          "content-length: 11\r\nconnection: close\r\n\r\n";
    is_str(out_text(&w), relayed, "relayed response head, byte for byte");
    ok(mg_h1_parse_response(buf, w.len, NULL, "GET", 3, &resp) == (ssize_t)w.len && resp.status == 200 &&
       resp.body == MG_H1_BODY_LENGTH && resp.content_length == 11 && !resp.keep_alive,
       "the strict parser reads the written head back");

    /* the same head measured on a counting cursor */
    struct mg_h1_out count;
    mg_h1_out_init(&count, NULL, 123);
    mg_h1_put_status_line(&count, 1, 200);
    mg_h1_put_field(&count, "content-type", "text/plain");
    mg_h1_put_field(&count, "x-resp-set", "v");
    mg_h1_put_content_length(&count, 11);
    mg_h1_put_field(&count, "connection", "close");
    mg_h1_put_end(&count);
    ok(count.len == strlen(relayed) && count.cap == 0, "counting cursor: exact length, cap 0");

    /* HTTP/1.0 client, keep-alive */
    mg_h1_out_init(&w, buf, sizeof(buf));
    mg_h1_put_status_line(&w, 0, 200);
    mg_h1_put_field(&w, "content-type", "text/plain");
    mg_h1_put_content_length(&w, 11);
    mg_h1_put_field(&w, "connection", "keep-alive");
    mg_h1_put_end(&w);
    is_str(out_text(&w),
           "HTTP/1.0 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 11\r\n"
           "connection: keep-alive\r\n\r\n",
           "HTTP/1.0 keep-alive response head");

    /* re-chunked body: head, two chunks, the end */
    mg_h1_out_init(&w, buf, sizeof(buf));
    mg_h1_put_status_line(&w, 1, 200);
    mg_h1_put_field(&w, "x-a", "1");
    mg_h1_put_field(&w, "transfer-encoding", "chunked");
    mg_h1_put_end(&w);
    size_t bl = w.len;
    bl += mg_h1_chunk_header(5, buf + bl);
    memcpy(buf + bl, "hello" MG_H1_CHUNK_END, 7);
    bl += 7;
    bl += mg_h1_chunk_header(6, buf + bl);
    memcpy(buf + bl, " world" MG_H1_CHUNK_END MG_H1_LAST_CHUNK, 13);
    bl += 13;
    buf[bl] = '\0';
    is_str(buf,
           "HTTP/1.1 200 OK\r\nx-a: 1\r\ntransfer-encoding: chunked\r\n\r\n"
           "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
           "chunked response, byte for byte");

    /* a local reply */
    mg_h1_out_init(&w, buf, sizeof(buf));
    mg_h1_put_status_line(&w, 1, 503);
    mg_h1_put_content_length(&w, 19);
    mg_h1_put_field(&w, "content-type", "text/plain");
    mg_h1_put_field(&w, "connection", "close");
    mg_h1_put_end(&w);
    is_str(out_text(&w),
           "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 19\r\n"
           "content-type: text/plain\r\nconnection: close\r\n\r\n",
           "local reply head");

    /* the interim answer to Expect: 100-continue */
    mg_h1_out_init(&w, buf, sizeof(buf));
    mg_h1_put_status_line(&w, 1, 100);
    mg_h1_put_end(&w);
    is_str(out_text(&w), "HTTP/1.1 100 Continue\r\n\r\n", "100 Continue");
    is_int(w.len, 25, "100 Continue is 25 bytes");

    /* a request head to an upstream */
    mg_h1_out_init(&w, buf, sizeof(buf));
    mg_h1_put_request_line(&w, "POST", NULL, "/post", NULL);
    mg_h1_put_field(&w, "host", "app.local");
    mg_h1_put_field(&w, "x-req-add", "w");
    mg_h1_put_content_length(&w, 5);
    mg_h1_put_end(&w);
    is_str(out_text(&w),
           "POST /post HTTP/1.1\r\nhost: app.local\r\nx-req-add: w\r\ncontent-length: 5\r\n\r\n",
           "upstream request head");
    ok(mg_h1_parse_request(buf, w.len, NULL, &req, &(int){ 0 }) == (ssize_t)w.len &&
       req.body == MG_H1_BODY_LENGTH && req.content_length == 5 && req.keep_alive,
       "the strict parser reads the written request back");

    /* an ext_authz check: path prefix, path and query joined */
    mg_h1_out_init(&w, buf, sizeof(buf));
    mg_h1_put_request_line(&w, "GET", "/check", "/authz/x", "q=1&r=2");
    mg_h1_put_field(&w, "host", "app.local");
    mg_h1_put_content_length(&w, 0);
    mg_h1_put_field(&w, "connection", "close");
    mg_h1_put_end(&w);
    is_str(out_text(&w),
           "GET /check/authz/x?q=1&r=2 HTTP/1.1\r\nhost: app.local\r\ncontent-length: 0\r\n"
           "connection: close\r\n\r\n",
           "ext_authz check request head");

    mg_h1_out_init(&w, buf, sizeof(buf));
    mg_h1_put_content_length(&w, UINT64_MAX);
    is_str(out_text(&w), "content-length: 18446744073709551615\r\n", "content-length of 2^64-1");
    mg_h1_out_init(&w, buf, sizeof(buf));
    mg_h1_put_status_line(&w, 1, 1000);
    mg_h1_put_status_line(&w, 1, -200);
    is_str(out_text(&w), "HTTP/1.1 500 Internal Server Error\r\nHTTP/1.1 500 Internal Server Error\r\n",
           "a status outside 100..599 is written as 500");

    /* out of room: only whole pieces, nothing past cap, exact length */
    char small[40];
    memset(small, '#', sizeof(small));
    mg_h1_out_init(&w, small, 30);
    mg_h1_put_status_line(&w, 1, 404);             /* 24 bytes: fits */
    mg_h1_put_field(&w, "x-long-name", "v");       /* would end at 40 */
    mg_h1_put_field(&w, "a", "b");                 /* 6 more: room at 24, but after a gap */
    mg_h1_put_end(&w);
    ok(w.len == 24 + 16 + 6 + 2 && w.len > w.cap, "overflow: len is the full length, above cap");
    ok(memcmp(small, "HTTP/1.1 404 Not Found\r\n", 24) == 0 && small[24] == '#' && small[29] == '#' &&
       small[39] == '#',
       "overflow: a prefix of whole pieces written, nothing after a piece left out");

    /* the reason phrases sent: named statuses, "Unknown" for the rest (the
     * peer's own phrase is never relayed) */
    static const struct { int s; const char *r; } named[] = {
        { 100, "Continue" }, { 200, "OK" }, { 201, "Created" }, { 204, "No Content" },
        { 301, "Moved Permanently" }, { 302, "Found" }, { 303, "See Other" },
        { 304, "Not Modified" }, { 307, "Temporary Redirect" }, { 308, "Permanent Redirect" },
        { 400, "Bad Request" }, { 401, "Unauthorized" }, { 403, "Forbidden" },
        { 404, "Not Found" }, { 408, "Request Timeout" }, { 413, "Payload Too Large" },
        { 421, "Misdirected Request" }, { 431, "Request Header Fields Too Large" },
        { 500, "Internal Server Error" }, { 501, "Not Implemented" }, { 502, "Bad Gateway" },
        { 503, "Service Unavailable" }, { 504, "Gateway Timeout" },
        { 505, "HTTP Version Not Supported" },
    };
    size_t wrong = 0, unknown = 0;
    for (size_t i = 0; i < sizeof(named) / sizeof(named[0]); i++)
        wrong += strcmp(mg_h1_reason(named[i].s), named[i].r) != 0;
    for (int st = 100; st <= 599; st++)
        unknown += strcmp(mg_h1_reason(st), "Unknown") == 0;
    is_int(wrong, 0, "every named status has its phrase");
    is_int(unknown, 500 - sizeof(named) / sizeof(named[0]), "every other status is Unknown");
    is_str(mg_h1_reason(202), "Unknown", "202: Unknown, as sent today");
    is_str(mg_h1_reason(405), "Unknown", "405: Unknown, as sent today");
}

int main(void)
{
    run_status_table(request_cases, sizeof(request_cases) / sizeof(request_cases[0]), "request");
    run_status_table(smuggling_cases, sizeof(smuggling_cases) / sizeof(smuggling_cases[0]), "smuggling");
    is_int(status_of("GET / HTTP/1.1\r\nHost: h\r\n\r\n"), 200, "minimal request");
    test_good_requests();
    test_keep_alive();
    test_forms_and_flags();
    test_pipelined();
    test_split_points();
    test_limits();
    test_responses();
    test_chunked_splits();
    test_chunked_errors();
    test_helpers();
    test_writer();
    return tap_done();
}
