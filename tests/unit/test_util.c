/* test_util.c - parsers in util.c. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "tap.h"
#include "base/base.h"

static void durations(void)
{
    static const struct { const char *in; int rc; int64_t ms; } cases[] = {
        {"10s", 0, 10000}, {"1.5s", 0, 1500}, {"100ms", 0, 100}, {"2m", 0, 120000},
        {"1h", 0, 3600000}, {"1h30m", 0, 5400000}, {"0s", 0, 0}, {"0", 0, 0},
        {"500us", 0, 1}, {"", -1, 0}, {"10", -1, 0}, {"-1s", -1, 0}, {"s", -1, 0},
        {"10x", -1, 0}, {"1s ", -1, 0}, {"99999999999999999h", -1, 0},
    };
    for (size_t i = 0; i < MG_ARRAY_LEN(cases); i++) {
        int64_t ms = -7;
        int rc = mg_parse_duration_ms(cases[i].in, &ms);
        ok(rc == cases[i].rc && (rc < 0 || ms == cases[i].ms), "duration '%s' -> %d %lld",
           cases[i].in, rc, (long long)ms);
    }
}

static void cidrs(void)
{
    struct mg_cidr c;
    uint8_t a4[4], a6[16];

    ok(mg_cidr_parse("10.0.0.0/8", &c) == 0 && c.family == AF_INET && c.prefix == 8, "v4 cidr");
    inet_pton(AF_INET, "10.1.2.3", a4);
    ok(mg_cidr_match(&c, AF_INET, a4), "10.1.2.3 in 10/8");
    inet_pton(AF_INET, "11.1.2.3", a4);
    ok(!mg_cidr_match(&c, AF_INET, a4), "11.1.2.3 not in 10/8");
    inet_pton(AF_INET6, "::ffff:10.9.9.9", a6);
    ok(mg_cidr_match(&c, AF_INET6, a6), "v4-mapped v6 matches v4 cidr");
    ok(mg_cidr_parse("192.168.1.7", &c) == 0 && c.prefix == 32, "single v4 address");
    ok(mg_cidr_parse("10.1.2.3/20", &c) == 0 && c.addr[2] == 0, "host bits cleared");
    ok(mg_cidr_parse("2001:db8::/32", &c) == 0 && c.family == AF_INET6, "v6 cidr");
    inet_pton(AF_INET6, "2001:db8:1::5", a6);
    ok(mg_cidr_match(&c, AF_INET6, a6), "v6 match");
    ok(mg_cidr_parse("10.0.0.0/33", &c) < 0, "prefix too long");
    ok(mg_cidr_parse("10.0.0/8", &c) < 0, "short v4");
    ok(mg_cidr_parse("300.0.0.1", &c) < 0, "bad octet");
    ok(mg_cidr_parse("1.2.3.4/", &c) < 0, "empty prefix");
    ok(mg_cidr_parse("", &c) < 0, "empty");
    ok(mg_cidr_parse("0.0.0.0/0", &c) == 0, "any v4");
    inet_pton(AF_INET, "8.8.8.8", a4);
    ok(mg_cidr_match(&c, AF_INET, a4), "0/0 matches everything v4");
}

static void misc(void)
{
    uint16_t port;
    char host[64];
    uint8_t *out;
    size_t n;
    char *e;

    ok(mg_parse_port("443", false, &port) == 0 && port == 443, "port 443");
    ok(mg_parse_port("0", false, &port) < 0, "port 0 refused");
    ok(mg_parse_port("65536", false, &port) < 0, "port 65536 refused");
    ok(mg_parse_port("+80", false, &port) < 0, "signed port refused");
    ok(mg_split_host_port("a.example.com:8443", host, sizeof host, &port) == 0 &&
       strcmp(host, "a.example.com") == 0 && port == 8443, "host:port");
    ok(mg_split_host_port("[::1]:80", host, sizeof host, &port) == 0 &&
       strcmp(host, "::1") == 0 && port == 80, "[v6]:port");
    ok(mg_split_host_port("example.com", host, sizeof host, &port) == 0 && port == 0, "host only");
    ok(mg_split_host_port("example.com:x", host, sizeof host, &port) < 0, "bad port");
    ok(mg_base64_decode("aGVsbG8", 7, true, &out, &n) == 0 && n == 5 && memcmp(out, "hello", 5) == 0,
       "base64url no padding");
    free(out);
    ok(mg_base64_decode("a$==", 4, false, &out, &n) < 0, "base64 bad char");
    e = mg_base64_encode((const uint8_t *)"hello", 5, false, true);
    is_str(e, "aGVsbG8=", "base64 encode");
    free(e);
    ok(mg_strcasecmp("Secret.COM", "secret.com") == 0, "case-insensitive compare");
    ok(mg_intern("x.yaml") == mg_intern("x.yaml"), "interned strings are shared");
    ok(mg_read_file("/nonexistent/file", 100, &n) == NULL, "missing file");
    ok(mg_read_file("/etc/passwd", 2, &n) == NULL && errno == EFBIG, "file over the cap");
}

/* The header map Envoy's matchers see: Host is :authority, and the
 * pseudo-headers are looked up by name on either protocol. */
static void pseudo_headers(void)
{
    const struct mg_pseudo_headers p = { "a.example.com:8443", "/x?q=1", "GET", "https" };
    const char *v = "unset";
    ok(mg_pseudo_header(&p, "host", 4, &v) && v == p.authority, "host is :authority");
    ok(mg_pseudo_header(&p, "Host", 4, &v) && v == p.authority, "... in any case");
    ok(mg_pseudo_header(&p, ":authority", 10, &v) && v == p.authority, ":authority");
    ok(mg_pseudo_header(&p, ":path", 5, &v) && v == p.path, ":path");
    ok(mg_pseudo_header(&p, ":method", 7, &v) && v == p.method, ":method");
    ok(mg_pseudo_header(&p, ":scheme", 7, &v) && v == p.scheme, ":scheme");
    ok(!mg_pseudo_header(&p, "x-host", 6, &v), "x-host is a regular field");
    ok(!mg_pseudo_header(&p, ":pathx", 6, &v) && !mg_pseudo_header(&p, "hos", 3, &v),
       "names are compared whole");
    const struct mg_pseudo_headers none = { 0 };
    v = "unset";
    ok(mg_pseudo_header(&none, "host", 4, &v) && v == NULL, "absent authority: NULL, still pseudo");
    ok(mg_pseudo_header_possible(":path", 5) && mg_pseudo_header_possible("x-a", 3),
       ":path and regular names are possible");
    ok(!mg_pseudo_header_possible(":status", 7) && !mg_pseudo_header_possible(":protocol", 9),
       ":status and :protocol are never in a request here");
}

/* The address formatter against inet_ntop: every value of each octet,
 * short buffers, IPv6 and no address. */
static void ip_strings(void)
{
    int bad = 0;
    for (int pos = 0; pos < 4; pos++)
        for (int v = 0; v < 256; v++) {
            struct mg_addr a = { .family = AF_INET, .ip = { 10, 200, 3, 47 } };
            a.ip[pos] = (uint8_t)v;
            char want[INET_ADDRSTRLEN], got[64];
            inet_ntop(AF_INET, a.ip, want, sizeof(want));
            memset(got, 'x', sizeof(got));
            if (strcmp(mg_addr_ip_str(&a, got, sizeof(got)), want) != 0)
                bad++;
        }
    is_int(bad, 0, "IPv4 strings equal inet_ntop's for every octet value");
    struct mg_addr m = { .family = AF_INET, .ip = { 255, 255, 255, 255 } };
    char b16[16];
    is_str(mg_addr_ip_str(&m, b16, sizeof(b16)), "255.255.255.255", "the longest IPv4 fits 16 bytes");
    char b8[8];
    is_str(mg_addr_ip_str(&m, b8, sizeof(b8)), "-", "a buffer too short: \"-\"");
    struct mg_addr six = { .family = AF_INET6, .ip = { 0x20, 0x01, 0x0d, 0xb8, [15] = 1 } };
    char b46[64];
    is_str(mg_addr_ip_str(&six, b46, sizeof(b46)), "2001:db8::1", "IPv6 as inet_ntop writes it");
    struct mg_addr none = { 0 };
    is_str(mg_addr_ip_str(&none, b46, sizeof(b46)), "-", "no address: \"-\"");
}

int main(void)
{
    ip_strings();
    durations();
    cidrs();
    misc();
    pseudo_headers();
    return tap_done();
}
