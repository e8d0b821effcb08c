/* test_proxy_proto.c - the PROXY protocol header parser (net/proxy_proto.c):
 * v1 and v2 headers as HAProxy sends them, every truncation of each (never
 * DONE before the last byte, never a byte of what follows taken), the
 * bytes a TLS or HTTP client starts with, and headers the specification
 * forbids. Also the writer of the headers meshgate sends upstream
 * (upstream/proxy_header.c), read back by this parser. */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include "../../src/net/net.h"
#include "../../src/upstream/upstream.h"
#include "tap.h"

static const unsigned char sig2[12] = { 0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a };

static enum mg_pp_status parse_str(const char *s, struct mg_pp_header *h)
{
    return mg_pp_parse((const unsigned char *)s, strlen(s), h);
}

static const char *ip(const struct mg_addr *a, char *buf, size_t n)
{
    return mg_addr_ip_str(a, buf, n);
}

/* v2 header: command cmd, family/transport fp, address block addr (alen
 * bytes) then tlv (tlen bytes); returns its length. */
static size_t v2(unsigned char *out, unsigned cmd, unsigned fp, const unsigned char *addr, size_t alen,
                 const unsigned char *tlv, size_t tlen)
{
    memcpy(out, sig2, 12);
    out[12] = (unsigned char)(0x20 | cmd);
    out[13] = (unsigned char)fp;
    size_t len = alen + tlen;
    out[14] = (unsigned char)(len >> 8);
    out[15] = (unsigned char)len;
    if (alen)                           /* memcpy from NULL is undefined even for 0 bytes */
        memcpy(out + 16, addr, alen);
    if (tlen)
        memcpy(out + 16 + alen, tlv, tlen);
    return 16 + len;
}

static void test_v1(void)
{
    struct mg_pp_header h;
    char b[64];
    const char *line = "PROXY TCP4 203.0.113.7 192.0.2.1 51234 443\r\n";
    is_int(parse_str(line, &h), MG_PP_DONE, "v1 TCP4 parses");
    is_int(h.version, 1, "... version 1");
    is_int((long long)h.len, (long long)strlen(line), "... its length is the line's");
    is_str(ip(&h.src, b, sizeof(b)), "203.0.113.7", "... client address");
    is_int(h.src.port, 51234, "... client port");
    is_str(ip(&h.dst, b, sizeof(b)), "192.0.2.1", "... destination address");
    is_int(h.dst.port, 443, "... destination port");
    ok(!h.local, "... not LOCAL");

    /* the client's first bytes right behind it are not the header's */
    char buf[128];
    snprintf(buf, sizeof(buf), "%s\x16\x03\x01", line);
    is_int(mg_pp_parse((const unsigned char *)buf, strlen(buf), &h), MG_PP_DONE, "v1 followed by a ClientHello");
    is_int((long long)h.len, (long long)strlen(line), "... stops at the CRLF");
    is_int((long long)mg_pp_wanted((const unsigned char *)buf, strlen(buf)), (long long)strlen(line),
           "... and a reader takes exactly the line");

    int bad_trunc = 0, bad_want = 0;
    for (size_t n = 0; n < strlen(line); n++) {
        if (mg_pp_parse((const unsigned char *)line, n, &h) != MG_PP_MORE)
            bad_trunc++;
        if (mg_pp_wanted((const unsigned char *)line, n) != n)
            bad_want++;
    }
    is_int(bad_trunc, 0, "every truncation of a v1 line asks for more");
    is_int(bad_want, 0, "... and every byte of it belongs to the header");

    is_int(parse_str("PROXY TCP6 2001:db8::1 2001:db8::2 1 65535\r\n", &h), MG_PP_DONE, "v1 TCP6");
    is_str(ip(&h.src, b, sizeof(b)), "2001:db8::1", "... client address");
    is_int(h.dst.port, 65535, "... port 65535");
    is_int(parse_str("PROXY TCP6 ::ffff:198.51.100.9 ::1 1000 443\r\n", &h), MG_PP_DONE,
           "v1 TCP6 with a v4-mapped client");
    is_int(h.src.family, AF_INET, "... taken as IPv4");
    is_int(parse_str("PROXY UNKNOWN\r\n", &h), MG_PP_DONE, "v1 UNKNOWN");
    ok(h.local, "... keeps the socket's addresses");
    is_int(parse_str("PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n", &h), MG_PP_DONE, "v1 UNKNOWN with addresses");

    static const struct { const char *in, *why; } bad[] = {
        { "PROXY TCP4 203.0.113.7 192.0.2.1 51234 443\n", "LF without CR" },
        { "PROXY TCP4 203.0.113.7  192.0.2.1 51234 443\r\n", "two spaces" },
        { "PROXY TCP4 203.0.113.7 192.0.2.1 51234 443 \r\n", "trailing space" },
        { "PROXY TCP4 203.0.113.7 192.0.2.1 51234\r\n", "a port missing" },
        { "PROXY TCP4 203.0.113.7 192.0.2.1 51234 443 9\r\n", "a field too many" },
        { "PROXY TCP4 2001:db8::1 192.0.2.1 51234 443\r\n", "IPv6 under TCP4" },
        { "PROXY TCP6 203.0.113.7 2001:db8::2 51234 443\r\n", "IPv4 under TCP6" },
        { "PROXY TCP4 203.0.113.7 192.0.2.1 65536 443\r\n", "port above 65535" },
        { "PROXY TCP4 203.0.113.7 192.0.2.1 051234 443\r\n", "leading zero" },
        { "PROXY TCP4 203.0.113.7 192.0.2.1 -1 443\r\n", "negative port" },
        { "PROXY TCP4 203.0.113.007 192.0.2.1 1 443\r\n", "octal-looking octet" },
        { "PROXY UDP4 203.0.113.7 192.0.2.1 1 2\r\n", "UDP" },
        { "PROXY tcp4 203.0.113.7 192.0.2.1 1 2\r\n", "lower case" },
        { "PROXY \r\n", "no protocol" },
        { "PROXY TCP4 203.0.113.7 192.0.2.1 1 2\r\0\n", "NUL in the line" },
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        size_t n = strlen(bad[i].in);
        if (strstr(bad[i].why, "NUL"))
            n = sizeof("PROXY TCP4 203.0.113.7 192.0.2.1 1 2\r\0\n") - 1;
        enum mg_pp_status st = mg_pp_parse((const unsigned char *)bad[i].in, n, &h);
        ok(st == MG_PP_BAD && h.error, "v1 refused: %s (%s)", bad[i].why, h.error ? h.error : "-");
    }
    char longline[200];
    memset(longline, '1', sizeof(longline));
    memcpy(longline, "PROXY TCP4 ", 11);
    is_int(mg_pp_parse((const unsigned char *)longline, sizeof(longline), &h), MG_PP_BAD,
           "a v1 line past 107 bytes without its end is refused");
}

static void test_v2(void)
{
    struct mg_pp_header h;
    unsigned char buf[2048];
    char b[64];
    unsigned char a4[12] = { 203, 0, 113, 7, 192, 0, 2, 1, 0xc8, 0x22, 0x01, 0xbb };
    size_t n = v2(buf, 1, 0x11, a4, sizeof(a4), NULL, 0);
    is_int(mg_pp_parse(buf, n, &h), MG_PP_DONE, "v2 PROXY TCP4");
    is_int(h.version, 2, "... version 2");
    is_int((long long)h.len, 28, "... 28 bytes");
    is_str(ip(&h.src, b, sizeof(b)), "203.0.113.7", "... client");
    is_int(h.src.port, 51234, "... client port");
    is_int(h.dst.port, 443, "... destination port");

    int bad_trunc = 0, bad_want = 0;
    for (size_t k = 0; k < n; k++) {
        if (mg_pp_parse(buf, k, &h) != MG_PP_MORE)
            bad_trunc++;
        if (mg_pp_wanted(buf, k) != k)
            bad_want++;
    }
    is_int(bad_trunc, 0, "every truncation of a v2 header asks for more");
    is_int(bad_want, 0, "... and every byte of it belongs to the header");
    buf[n] = 0x16;
    buf[n + 1] = 0x03;
    is_int((long long)mg_pp_wanted(buf, n + 2), (long long)n, "a reader takes the header and nothing behind it");

    unsigned char a6[36] = { 0 };
    a6[0] = 0x20; a6[1] = 0x01; a6[2] = 0x0d; a6[3] = 0xb8; a6[15] = 1;
    a6[16 + 15] = 2;
    a6[32] = 0x30; a6[33] = 0x39; a6[34] = 0x01; a6[35] = 0xbb;
    unsigned char tlv[] = { 0x04, 0x00, 0x03, 'a', 'b', 'c', 0x20, 0x00, 0x00 };
    n = v2(buf, 1, 0x21, a6, sizeof(a6), tlv, sizeof(tlv));
    is_int(mg_pp_parse(buf, n, &h), MG_PP_DONE, "v2 PROXY TCP6 with TLVs");
    is_str(ip(&h.src, b, sizeof(b)), "2001:db8::1", "... client");
    is_int(h.src.port, 12345, "... client port");
    is_int((long long)h.len, (long long)n, "... TLVs included in its length");

    n = v2(buf, 0, 0x00, NULL, 0, NULL, 0);
    is_int(mg_pp_parse(buf, n, &h), MG_PP_DONE, "v2 LOCAL (a balancer's health check)");
    ok(h.local, "... keeps the socket's addresses");
    n = v2(buf, 1, 0x00, NULL, 0, NULL, 0);
    is_int(mg_pp_parse(buf, n, &h), MG_PP_DONE, "v2 PROXY UNSPEC");
    ok(h.local, "... keeps the socket's addresses");

    unsigned char tlv_bad[] = { 0x04, 0x00, 0x09, 'a' };
    unsigned char tlv_cut[] = { 0x04, 0x00 };
    struct { size_t n; const char *why; } bad[8];
    unsigned char bb[8][128];
    size_t nb = 0;
    bad[nb].n = v2(bb[nb], 1, 0x12, a4, sizeof(a4), NULL, 0), bad[nb++].why = "UDP over IPv4";
    bad[nb].n = v2(bb[nb], 1, 0x31, a4, sizeof(a4), NULL, 0), bad[nb++].why = "a UNIX socket";
    bad[nb].n = v2(bb[nb], 1, 0x11, a4, 8, NULL, 0), bad[nb++].why = "address block too short for TCP4";
    bad[nb].n = v2(bb[nb], 1, 0x21, a4, sizeof(a4), NULL, 0), bad[nb++].why = "TCP6 with a TCP4-sized block";
    bad[nb].n = v2(bb[nb], 2, 0x11, a4, sizeof(a4), NULL, 0), bad[nb++].why = "command 2";
    bad[nb].n = v2(bb[nb], 1, 0x11, a4, sizeof(a4), tlv_bad, sizeof(tlv_bad)), bad[nb++].why = "TLV past the end";
    bad[nb].n = v2(bb[nb], 1, 0x11, a4, sizeof(a4), tlv_cut, sizeof(tlv_cut)), bad[nb++].why = "TLV header cut";
    bad[nb].n = v2(bb[nb], 1, 0x11, a4, sizeof(a4), NULL, 0), bad[nb].why = "version nibble 1";
    bb[nb][12] = 0x11;
    nb++;
    for (size_t i = 0; i < nb; i++) {
        enum mg_pp_status st = mg_pp_parse(bb[i], bad[i].n, &h);
        ok(st == MG_PP_BAD && h.error, "v2 refused: %s (%s)", bad[i].why, h.error ? h.error : "-");
    }
    /* a length past what meshgate holds is refused once the head is in */
    memcpy(buf, sig2, 12);
    buf[12] = 0x21;
    buf[13] = 0x11;
    buf[14] = 0xff;
    buf[15] = 0xff;
    is_int(mg_pp_parse(buf, 16, &h), MG_PP_BAD, "a v2 length of 65535 is refused at once");
}

static void test_none(void)
{
    struct mg_pp_header h;
    static const char *const starts[] = { "\x16\x03\x01\x02\x00", "GET / HTTP/1.1\r\n", "PUT /x HTTP/1.1\r\n",
                                          "PRI * HTTP/2.0\r\n", "\r\n\r\nX", "PROXI" };
    for (size_t i = 0; i < sizeof(starts) / sizeof(starts[0]); i++) {
        is_int(parse_str(starts[i], &h), MG_PP_NONE, "no header: %zu", i);
        is_int((long long)mg_pp_wanted((const unsigned char *)starts[i], strlen(starts[i])), 0,
               "... a reader takes nothing (%zu)", i);
    }
    is_int(parse_str("PROX", &h), MG_PP_MORE, "'PROX' may still become a header");
    is_int(mg_pp_parse(sig2, 5, &h), MG_PP_MORE, "half the v2 signature may still become one");
    is_int(mg_pp_parse(sig2, 0, &h), MG_PP_MORE, "no byte yet: more");
}

/* Random bytes and random mutations of valid headers: never a crash, never
 * a length past the input, DONE only with a version. */
static void test_fuzz(void)
{
    unsigned seed = 12345;
    int odd = 0;
    unsigned char buf[MG_PP_MAX + 64];
    unsigned char a4[12] = { 203, 0, 113, 7, 192, 0, 2, 1, 0xc8, 0x22, 0x01, 0xbb };
    const char *line = "PROXY TCP4 203.0.113.7 192.0.2.1 51234 443\r\n";
    for (int i = 0; i < 200000; i++) {
        size_t n;
        seed = seed * 1103515245u + 12345u;
        if (i % 3 == 0) {
            n = v2(buf, 1, 0x11, a4, sizeof(a4), NULL, 0);
        } else if (i % 3 == 1) {
            n = strlen(line);
            memcpy(buf, line, n);
        } else {
            n = 1 + (seed >> 16) % 200;
            for (size_t k = 0; k < n; k++)
                buf[k] = (unsigned char)((seed = seed * 1103515245u + 12345u) >> 16);
        }
        int flips = 1 + (int)((seed >> 8) % 3);
        for (int f = 0; f < flips; f++) {
            seed = seed * 1103515245u + 12345u;
            buf[(seed >> 16) % n] = (unsigned char)(seed >> 4);
        }
        struct mg_pp_header h;
        enum mg_pp_status st = mg_pp_parse(buf, n, &h);
        size_t w = mg_pp_wanted(buf, n);
        if (w > n || (st == MG_PP_DONE && (h.len > n || h.len == 0 || !h.version)) ||
            (st == MG_PP_NONE && w != 0))
            odd++;
    }
    is_int(odd, 0, "200 000 mutated inputs: lengths stay inside the input");
}

static struct mg_addr addr(const char *s, uint16_t port)
{
    struct mg_addr a;
    memset(&a, 0, sizeof(a));
    mg_addr_parse_ip(&a, s);
    a.port = port;
    return a;
}

/* Write with version v, parse back: DONE over exactly the written bytes. */
static void roundtrip(int v, const struct mg_addr *s, const struct mg_addr *d, struct mg_pp_header *h,
                      const char *what)
{
    unsigned char b[MG_PP_OUT_MAX + 8];
    memset(b, 'x', sizeof(b));
    size_t n = v == 1 ? mg_pp_write_v1(s, d, (char *)b, MG_PP_OUT_MAX)
                      : mg_pp_write_v2(s, d, b, MG_PP_OUT_MAX);
    ok(n > 0 && mg_pp_parse(b, n + 8, h) == MG_PP_DONE && h->len == n && h->version == v,
       "writer v%d, %s: parsed back, %zu bytes", v, what, n);
}

static void test_writer(void)
{
    char o[MG_PP_OUT_MAX], x[64];
    struct mg_addr c4 = addr("192.0.2.10", 40000), g4 = addr("127.0.0.1", 8080);
    struct mg_addr c6 = addr("2001:db8::7", 51234), g6 = addr("::1", 443);
    size_t n = mg_pp_write_v1(&c4, &g4, o, sizeof(o));
    is_str(n ? (o[n] = 0, o) : NULL, "PROXY TCP4 192.0.2.10 127.0.0.1 40000 8080\r\n", "v1 TCP4 line");
    n = mg_pp_write_v1(&c6, &g6, o, sizeof(o));
    is_str(n ? (o[n] = 0, o) : NULL, "PROXY TCP6 2001:db8::7 ::1 51234 443\r\n", "v1 TCP6 line");
    unsigned char b[MG_PP_OUT_MAX];
    static const unsigned char want4[28] = {
        0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a, 0x21, 0x11, 0x00, 0x0c,
        192, 0, 2, 10, 127, 0, 0, 1, 0x9c, 0x40, 0x1f, 0x90,
    };
    n = mg_pp_write_v2(&c4, &g4, b, sizeof(b));
    ok(n == sizeof(want4) && memcmp(b, want4, n) == 0, "v2 PROXY TCP4: the 28 bytes HAProxy sends");
    struct mg_pp_header h;
    for (int v = 1; v <= 2; v++) {
        roundtrip(v, &c4, &g4, &h, "IPv4");
        is_str(ip(&h.src, x, sizeof(x)), "192.0.2.10", "... source");
        ok(h.src.port == 40000 && h.dst.port == 8080 && h.dst.family == AF_INET, "... ports, family");
        roundtrip(v, &c6, &g6, &h, "IPv6");
        is_str(ip(&h.src, x, sizeof(x)), "2001:db8::7", "... source");
        is_str(ip(&h.dst, x, sizeof(x)), "::1", "... destination");
        /* a v6 client of a v4 address (or the reverse): one family, v6,
         * the v4 one mapped (read back as v4, as everywhere else) */
        roundtrip(v, &c6, &g4, &h, "IPv6 client, IPv4 destination");
        ok(h.src.family == AF_INET6 && h.dst.family == AF_INET, "... the IPv4 side mapped and back");
        is_str(ip(&h.dst, x, sizeof(x)), "127.0.0.1", "... destination");
        roundtrip(v, &c4, &g6, &h, "IPv4 client, IPv6 destination");
        is_str(ip(&h.src, x, sizeof(x)), "192.0.2.10", "... source");
        struct mg_addr none;
        memset(&none, 0, sizeof(none));
        roundtrip(v, &none, &g4, &h, "no client address");
        ok(h.local, "... UNKNOWN / LOCAL: the receiver keeps the socket's addresses");
    }
    is_int(mg_pp_write_v1(&c6, &c6, o, 20), 0, "v1: too small a buffer writes nothing");
    is_int(mg_pp_write_v2(&c6, &c6, b, 51), 0, "v2: too small a buffer writes nothing");
    struct mg_addr l6 = addr("ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe", 65535);
    is_int(mg_pp_write_v1(&l6, &l6, o, sizeof(o)), 104, "v1: the longest line fits MG_PP_OUT_MAX");
}

int main(void)
{
    test_v1();
    test_v2();
    test_none();
    test_fuzz();
    test_writer();
    return tap_done();
}
