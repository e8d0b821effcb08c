/* mg_mmdb_write - write a small MaxMind DB (format 2.0, IPv6 tree, 24-bit
 * records) for the tests, so that no database download is needed.
 *
 *   mg_mmdb_write OUT NETWORK=CC,ASN ...
 *
 * NETWORK is an IPv4 or IPv6 CIDR (IPv4 goes to ::a.b.c.d/96+len, where
 * libmaxminddb looks IPv4 up in an IPv6 tree), CC a country code written
 * as country.iso_code ("-" = none), ASN written as
 * autonomous_system_number (0 = none). A longer network inside a shorter
 * one overrides it there, whatever the order on the command line. Reserved networks (127/8, 10/8, ...) are
 * written like any other, which is what the loopback tests need. */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { EMPTY, NODE, DATA };
struct rec { int kind; uint32_t v; };
struct node { struct rec r[2]; };

static struct node *nodes;
static size_t n_nodes, cap_nodes;
static unsigned char data[1 << 16];
static size_t data_len;

static void die(const char *m, const char *a)
{
    fprintf(stderr, "mg_mmdb_write: %s%s%s\n", m, a ? ": " : "", a ? a : "");
    exit(1);
}

static uint32_t new_node(struct rec fill)
{
    if (n_nodes == cap_nodes) {
        cap_nodes = cap_nodes ? cap_nodes * 2 : 64;
        nodes = realloc(nodes, cap_nodes * sizeof(*nodes));
        if (!nodes)
            die("out of memory", NULL);
    }
    nodes[n_nodes].r[0] = nodes[n_nodes].r[1] = fill;
    return (uint32_t)n_nodes++;
}

static void insert(const uint8_t ip[16], int plen, uint32_t off)
{
    uint32_t n = 0;
    for (int d = 0; d < plen; d++) {
        int b = (ip[d / 8] >> (7 - d % 8)) & 1;
        if (d == plen - 1) {
            nodes[n].r[b] = (struct rec){ DATA, off };
            return;
        }
        if (nodes[n].r[b].kind != NODE) {
            uint32_t c = new_node(nodes[n].r[b]);    /* the covering value stays below */
            nodes[n].r[b] = (struct rec){ NODE, c };
        }
        n = nodes[n].r[b].v;
    }
}

/* ---- the data format: a control byte (type, size), extended types in a
 * second byte, big-endian payloads ---- */
static void put(unsigned char **p, size_t *len, size_t cap, const void *b, size_t n)
{
    if (*len + n > cap)
        die("data too large", NULL);
    memcpy(*p + *len, b, n);
    *len += n;
}

struct out { unsigned char *b; size_t len, cap; };

static void ctrl(struct out *o, int type, size_t size)
{
    unsigned char c[3];
    size_t n = 0;
    unsigned sz = size < 29 ? (unsigned)size : 29;
    if (size >= 29 + 256)
        die("field too large", NULL);
    c[n++] = (unsigned char)(((type <= 7 ? type : 0) << 5) | sz);
    if (type > 7)
        c[n++] = (unsigned char)(type - 7);
    if (size >= 29)
        c[n++] = (unsigned char)(size - 29);
    put(&o->b, &o->len, o->cap, c, n);
}

static void str(struct out *o, const char *s)
{
    ctrl(o, 2, strlen(s));
    put(&o->b, &o->len, o->cap, s, strlen(s));
}

static void uint_(struct out *o, int type, uint64_t v)
{
    unsigned char b[8];
    size_t n = 0;
    for (int i = 7; i >= 0; i--)
        if (n || (v >> (i * 8)) & 0xff)
            b[n++] = (unsigned char)(v >> (i * 8));
    ctrl(o, type, n);
    put(&o->b, &o->len, o->cap, b, n);
}

static uint32_t add_data(const char *cc, uint32_t asn)
{
    struct out o = { data, data_len, sizeof(data) };
    uint32_t off = (uint32_t)data_len;
    ctrl(&o, 7, (size_t)(!!cc + !!asn));
    if (cc) {
        str(&o, "country");
        ctrl(&o, 7, 1);
        str(&o, "iso_code");
        str(&o, cc);
    }
    if (asn) {
        str(&o, "autonomous_system_number");
        uint_(&o, 6, asn);
    }
    data_len = o.len;
    return off;
}

static void parse_net(const char *s, uint8_t ip[16], int *plen)
{
    char buf[64];
    const char *slash = strchr(s, '/');
    size_t n = slash ? (size_t)(slash - s) : strlen(s);
    if (n >= sizeof(buf))
        die("bad network", s);
    memcpy(buf, s, n);
    buf[n] = '\0';
    memset(ip, 0, 16);
    if (inet_pton(AF_INET, buf, ip + 12) == 1) {
        *plen = slash ? atoi(slash + 1) : 32;
        if (*plen < 1 || *plen > 32)
            die("bad prefix", s);
        *plen += 96;
    } else if (inet_pton(AF_INET6, buf, ip) == 1) {
        *plen = slash ? atoi(slash + 1) : 128;
        if (*plen < 1 || *plen > 128)
            die("bad prefix", s);
    } else {
        die("bad network", s);
    }
}

static void rec24(FILE *f, struct rec r)
{
    uint32_t v = r.kind == NODE ? r.v : r.kind == EMPTY ? (uint32_t)n_nodes
                                                        : (uint32_t)n_nodes + 16 + r.v;
    if (v >= (1u << 24))
        die("tree too large", NULL);
    unsigned char b[3] = { (unsigned char)(v >> 16), (unsigned char)(v >> 8), (unsigned char)v };
    fwrite(b, 1, 3, f);
}

static int prefix_of(const char *s)
{
    const char *slash = strchr(s, '/');
    const char *eq = strchr(s, '=');
    int v4 = strchr(s, ':') == NULL || (eq && strchr(s, ':') > eq);
    return slash && (!eq || slash < eq) ? atoi(slash + 1) + (v4 ? 96 : 0) : 128;
}

static int by_prefix(const void *a, const void *b)
{
    return prefix_of(*(char *const *)a) - prefix_of(*(char *const *)b);
}

int main(int argc, char **argv)
{
    if (argc < 2)
        die("usage: mg_mmdb_write OUT NETWORK=CC,ASN ...", NULL);
    new_node((struct rec){ EMPTY, 0 });
    /* shorter networks first, so that a longer one is never overwritten */
    qsort(argv + 2, (size_t)(argc - 2), sizeof(char *), by_prefix);
    for (int i = 2; i < argc; i++) {
        char *eq = strchr(argv[i], '='), *comma = eq ? strchr(eq, ',') : NULL;
        if (!eq || !comma)
            die("expected NETWORK=CC,ASN", argv[i]);
        *eq = '\0';
        *comma = '\0';
        uint8_t ip[16];
        int plen;
        parse_net(argv[i], ip, &plen);
        const char *cc = strcmp(eq + 1, "-") == 0 ? NULL : eq + 1;
        uint32_t asn = (uint32_t)strtoul(comma + 1, NULL, 10);
        insert(ip, plen, add_data(cc, asn));
    }
    FILE *f = fopen(argv[1], "wb");
    if (!f)
        die("cannot write", argv[1]);
    for (size_t i = 0; i < n_nodes; i++) {
        rec24(f, nodes[i].r[0]);
        rec24(f, nodes[i].r[1]);
    }
    static const unsigned char zero[16];
    fwrite(zero, 1, 16, f);
    fwrite(data, 1, data_len, f);

    static unsigned char meta[1024];
    struct out o = { meta, 0, sizeof(meta) };
    ctrl(&o, 7, 9);
    str(&o, "binary_format_major_version"); uint_(&o, 5, 2);
    str(&o, "binary_format_minor_version"); uint_(&o, 5, 0);
    str(&o, "build_epoch"); uint_(&o, 9, (uint64_t)time(NULL));
    str(&o, "database_type"); str(&o, "meshgate-test");
    str(&o, "description"); ctrl(&o, 7, 1); str(&o, "en"); str(&o, "meshgate test networks");
    str(&o, "ip_version"); uint_(&o, 5, 6);
    str(&o, "languages"); ctrl(&o, 11, 1); str(&o, "en");
    str(&o, "node_count"); uint_(&o, 6, n_nodes);
    str(&o, "record_size"); uint_(&o, 5, 24);
    fwrite("\xAB\xCD\xEFMaxMind.com", 1, 14, f);
    fwrite(meta, 1, o.len, f);
    if (fclose(f) != 0)
        die("write failed", argv[1]);
    free(nodes);
    return 0;
}
