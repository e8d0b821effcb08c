/* proxy_proto.c - the PROXY protocol header (HAProxy's proxy-protocol.txt,
 * versions 1 and 2) that an L4 load balancer puts in front of a
 * connection to carry the client's address. Pure: bytes in, verdict out;
 * conn.c reads the bytes off the socket (never more than the header, so
 * the TLS ClientHello or the HTTP request behind it stays in the socket).
 *
 * Strict on purpose: whoever may send this header decides the client
 * address every policy on remote.ip sees, so anything the specification
 * does not allow is refused rather than guessed at. */
#include "net/net.h"
#include <string.h>
#include <arpa/inet.h>
#include <sys/socket.h>

static const unsigned char v2_sig[12] = {
    0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a,
};
static const char v1_sig[] = "PROXY ";

/* v1's longest line: "PROXY TCP6 " + 2 x 39 + 2 x 5 + 3 spaces + CRLF. */
#define PP_V1_MAX 107

static enum mg_pp_status bad(struct mg_pp_header *h, const char *why)
{
    h->error = why;
    return MG_PP_BAD;
}

/* Which version the first n bytes start, if any: 1, 2, 0 = not yet known
 * (a prefix of both is impossible: they differ in the first byte), -1 = no
 * PROXY header. */
static int version_of(const unsigned char *b, size_t n)
{
    if (n == 0)
        return 0;
    if (b[0] == v1_sig[0]) {
        size_t k = n < 6 ? n : 6;
        return memcmp(b, v1_sig, k) == 0 ? (n >= 6 ? 1 : 0) : -1;
    }
    if (b[0] == v2_sig[0]) {
        size_t k = n < 12 ? n : 12;
        return memcmp(b, v2_sig, k) == 0 ? (n >= 12 ? 2 : 0) : -1;
    }
    return -1;
}

size_t mg_pp_wanted(const unsigned char *b, size_t n)
{
    int v = version_of(b, n);
    if (v < 0)
        return 0;
    if (v == 2 || (v == 0 && b[0] == v2_sig[0])) {
        if (n < 16)
            return n;
        size_t total = 16 + ((size_t)b[14] << 8 | b[15]);
        return n < total ? n : total;
    }
    /* v1: everything up to and including the first CRLF (or LF, which the
     * parser then refuses) is the header's */
    for (size_t i = 0; i < n; i++)
        if (b[i] == '\n')
            return i + 1;
    return n;
}

/* A decimal port: 1 to 5 digits, no leading zero (except "0" itself). */
static bool v1_port(const char *s, size_t n, uint16_t *out)
{
    if (n == 0 || n > 5 || (n > 1 && s[0] == '0'))
        return false;
    unsigned v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    if (v > 65535)
        return false;
    *out = (uint16_t)v;
    return true;
}

static bool v1_ip(const char *s, size_t n, int family, struct mg_addr *a)
{
    char tmp[64];
    if (n == 0 || n >= sizeof(tmp))
        return false;
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    memset(a, 0, sizeof(*a));
    if (inet_pton(family, tmp, a->ip) != 1)
        return false;
    a->family = family;
    if (family == AF_INET6) {
        /* v4-mapped addresses are v4, as everywhere else (base.h) */
        static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
        if (memcmp(a->ip, mapped, 12) == 0) {
            memmove(a->ip, a->ip + 12, 4);
            memset(a->ip + 4, 0, 12);
            a->family = AF_INET;
        }
    }
    return true;
}

static enum mg_pp_status parse_v1(const unsigned char *b, size_t n, struct mg_pp_header *h)
{
    size_t end = 0;
    while (end < n && b[end] != '\n')
        end++;
    if (end == n)
        return n >= PP_V1_MAX ? bad(h, "v1 line too long") : MG_PP_MORE;
    if (end + 1 > PP_V1_MAX)
        return bad(h, "v1 line too long");
    if (end == 0 || b[end - 1] != '\r')
        return bad(h, "v1 line not ended by CRLF");
    h->version = 1;
    h->len = end + 1;
    const char *s = (const char *)b + 6, *e = (const char *)b + end - 1;
    /* fields separated by exactly one space, none empty */
    const char *f[6];
    size_t fl[6], nf = 0;
    const char *p = s;
    while (p <= e && nf < 6) {
        const char *q = p;
        while (q < e && *q != ' ')
            q++;
        f[nf] = p;
        fl[nf++] = (size_t)(q - p);
        if (q == e)
            break;
        p = q + 1;
    }
    if (nf == 0 || fl[0] == 0)
        return bad(h, "v1 without a protocol");
    if (fl[0] == 7 && memcmp(f[0], "UNKNOWN", 7) == 0) {
        /* the balancer does not know the client: the socket's addresses
         * stand (the rest of the line may be anything and is ignored) */
        h->local = true;
        return MG_PP_DONE;
    }
    int family;
    if (fl[0] == 4 && memcmp(f[0], "TCP4", 4) == 0)
        family = AF_INET;
    else if (fl[0] == 4 && memcmp(f[0], "TCP6", 4) == 0)
        family = AF_INET6;
    else
        return bad(h, "v1 protocol is not TCP4, TCP6 or UNKNOWN");
    if (nf != 5)
        return bad(h, "v1 wants protocol, two addresses and two ports");
    for (size_t i = 1; i < 5; i++)
        if (fl[i] == 0)
            return bad(h, "v1 field empty (two spaces)");
    if (f[4] + fl[4] != e)
        return bad(h, "v1 trailing bytes");
    if (!v1_ip(f[1], fl[1], family, &h->src) || !v1_ip(f[2], fl[2], family, &h->dst))
        return bad(h, "v1 address does not match its protocol");
    if (!v1_port(f[3], fl[3], &h->src.port) || !v1_port(f[4], fl[4], &h->dst.port))
        return bad(h, "v1 port is not a decimal 0..65535");
    return MG_PP_DONE;
}

static enum mg_pp_status parse_v2(const unsigned char *b, size_t n, struct mg_pp_header *h)
{
    if (n < 16)
        return MG_PP_MORE;
    size_t len = (size_t)b[14] << 8 | b[15];
    if (16 + len > MG_PP_MAX)
        return bad(h, "v2 header larger than meshgate accepts");
    if (n < 16 + len)
        return MG_PP_MORE;
    h->version = 2;
    h->len = 16 + len;
    unsigned ver = b[12] >> 4, cmd = b[12] & 0x0f;
    if (ver != 2)
        return bad(h, "v2 version nibble is not 2");
    if (cmd == 0x0) {
        /* LOCAL: the balancer's own connection (a health check); the
         * address block, whatever it holds, is ignored */
        h->local = true;
        return MG_PP_DONE;
    }
    if (cmd != 0x1)
        return bad(h, "v2 command is neither LOCAL nor PROXY");
    unsigned fam = b[13] >> 4, proto = b[13] & 0x0f;
    if (fam == 0x0) {
        /* UNSPEC: a client the balancer cannot describe; the specification
         * lets the receiver use the socket's addresses, as for LOCAL */
        h->local = true;
        return MG_PP_DONE;
    }
    if (proto != 0x1)
        return bad(h, "v2 transport is not STREAM");
    const unsigned char *a = b + 16;
    size_t alen;
    if (fam == 0x1) {
        alen = 12;
        if (len < alen)
            return bad(h, "v2 address block shorter than its family");
        h->src.family = h->dst.family = AF_INET;
        memcpy(h->src.ip, a, 4);
        memcpy(h->dst.ip, a + 4, 4);
        h->src.port = (uint16_t)(a[8] << 8 | a[9]);
        h->dst.port = (uint16_t)(a[10] << 8 | a[11]);
    } else if (fam == 0x2) {
        alen = 36;
        if (len < alen)
            return bad(h, "v2 address block shorter than its family");
        static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
        for (int i = 0; i < 2; i++) {
            struct mg_addr *x = i ? &h->dst : &h->src;
            const unsigned char *ip = a + 16 * i;
            memset(x, 0, sizeof(*x));
            if (memcmp(ip, mapped, 12) == 0) {
                x->family = AF_INET;
                memcpy(x->ip, ip + 12, 4);
            } else {
                x->family = AF_INET6;
                memcpy(x->ip, ip, 16);
            }
        }
        h->src.port = (uint16_t)(a[32] << 8 | a[33]);
        h->dst.port = (uint16_t)(a[34] << 8 | a[35]);
    } else {
        return bad(h, "v2 address family is not INET or INET6");
    }
    /* TLVs: each must fit; their contents are not used (a value that
     * claims to be UTF-8 and is not once made Envoy skip ext_authz:
     * nothing here trusts them) */
    size_t o = alen;
    while (o < len) {
        if (len - o < 3)
            return bad(h, "v2 TLV truncated");
        size_t tl = (size_t)a[o + 1] << 8 | a[o + 2];
        if (len - o - 3 < tl)
            return bad(h, "v2 TLV longer than the header");
        o += 3 + tl;
    }
    return MG_PP_DONE;
}

enum mg_pp_status mg_pp_parse(const unsigned char *b, size_t n, struct mg_pp_header *h)
{
    memset(h, 0, sizeof(*h));
    switch (version_of(b, n)) {
    case -1: return MG_PP_NONE;
    case 0: return MG_PP_MORE;
    case 1: return parse_v1(b, n, h);
    default: return parse_v2(b, n, h);
    }
}
