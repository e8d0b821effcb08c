/* proxy_header.c - the PROXY protocol header (HAProxy's proxy-protocol.txt,
 * versions 1 and 2) a cluster with DestinationRule
 * trafficPolicy.proxyProtocol sends first on each new upstream connection,
 * as Envoy's upstream proxy_protocol transport socket does: the downstream
 * client as the source (the PROXY protocol client when the downstream came
 * with one), the address it connected to as the destination.
 *
 * The writers are pure. Over TLS the header must precede the ClientHello,
 * yet libevent gives the SSL its socket BIO only inside
 * mg_io_connect and starts the handshake from the event loop
 * once the socket is writable; so a small write filter goes between the SSL
 * and that socket BIO right after the connect call, and writes the header
 * ahead of the SSL's first bytes. (net/ keeps the parser.) */
#include "upstream/upstream.h"
#include "upstream/internal.h"
#include <arpa/inet.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/bio.h>
#include "net/types.h"
#include "base/base.h"

static const unsigned char v2_sig[12] = {
    0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a,
};

/* The family both addresses are written in, and their 16-byte forms: IPv4
 * when both are, else IPv6 with an IPv4 address as ::ffff:a.b.c.d (a
 * header has one family for both, and a client over IPv4 may have reached
 * an IPv6 address of a dual-stack listener). 0: an address is missing. */
static int common_family(const struct mg_addr *src, const struct mg_addr *dst, uint8_t s[16],
                         uint8_t d[16])
{
    if (!src || !dst || (src->family != AF_INET && src->family != AF_INET6) ||
        (dst->family != AF_INET && dst->family != AF_INET6))
        return 0;
    if (src->family == AF_INET && dst->family == AF_INET) {
        memcpy(s, src->ip, 4);
        memcpy(d, dst->ip, 4);
        return AF_INET;
    }
    const struct mg_addr *a[2] = { src, dst };
    uint8_t *o[2] = { s, d };
    for (int i = 0; i < 2; i++) {
        if (a[i]->family == AF_INET6) {
            memcpy(o[i], a[i]->ip, 16);
        } else {
            memset(o[i], 0, 10);
            o[i][10] = o[i][11] = 0xff;
            memcpy(o[i] + 12, a[i]->ip, 4);
        }
    }
    return AF_INET6;
}

size_t mg_pp_write_v1(const struct mg_addr *src, const struct mg_addr *dst, char *out, size_t cap)
{
    uint8_t s[16], d[16];
    int fam = common_family(src, dst, s, d);
    int n;
    if (!fam) {
        n = snprintf(out, cap, "PROXY UNKNOWN\r\n");
    } else {
        char st[INET6_ADDRSTRLEN], dt[INET6_ADDRSTRLEN];
        if (!inet_ntop(fam, s, st, sizeof(st)) || !inet_ntop(fam, d, dt, sizeof(dt)))
            return 0;
        n = snprintf(out, cap, "PROXY %s %s %s %u %u\r\n", fam == AF_INET ? "TCP4" : "TCP6", st, dt,
                     src->port, dst->port);
    }
    return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

size_t mg_pp_write_v2(const struct mg_addr *src, const struct mg_addr *dst, unsigned char *out,
                      size_t cap)
{
    uint8_t s[16], d[16];
    int fam = common_family(src, dst, s, d);
    size_t alen = fam == AF_INET ? 12 : fam == AF_INET6 ? 36 : 0;
    if (cap < 16 + alen)
        return 0;
    memcpy(out, v2_sig, sizeof(v2_sig));
    /* version 2; PROXY, or LOCAL when there is no address to tell */
    out[12] = fam ? 0x21 : 0x20;
    out[13] = fam == AF_INET ? 0x11 : fam == AF_INET6 ? 0x21 : 0x00;     /* family, STREAM */
    out[14] = 0;
    out[15] = (unsigned char)alen;
    unsigned char *a = out + 16;
    size_t il = fam == AF_INET ? 4 : 16;
    if (fam) {
        memcpy(a, s, il);
        memcpy(a + il, d, il);
        a[2 * il] = (unsigned char)(src->port >> 8);
        a[2 * il + 1] = (unsigned char)src->port;
        a[2 * il + 2] = (unsigned char)(dst->port >> 8);
        a[2 * il + 3] = (unsigned char)dst->port;
    }
    return 16 + alen;
}

void mg_pp_key_set(struct mg_pp_key *k, const struct mg_cluster *cl, const struct mg_conn *down)
{
    memset(k, 0, sizeof(*k));
    if (!cl->proxy_protocol || !down)
        return;
    k->on = true;
    k->src = down->client;
    k->dst = down->client_dst;
}

static bool addr_same(const struct mg_addr *a, const struct mg_addr *b)
{
    return a->family == b->family && a->port == b->port &&
           memcmp(a->ip, b->ip, a->family == AF_INET ? 4 : 16) == 0;
}

bool mg_pp_key_fits(const struct mg_pp_key *k, const struct mg_conn *down)
{
    return !k->on || (down && addr_same(&k->src, &down->client) &&
                      addr_same(&k->dst, &down->client_dst));
}

size_t mg_upstream_pp_header(const struct mg_cluster *cl, const struct mg_conn *down,
                             unsigned char *out, size_t cap)
{
    if (!cl || !cl->proxy_protocol || !down)
        return 0;
    if (cl->proxy_protocol == 2)
        return mg_pp_write_v2(&down->client, &down->client_dst, out, cap);
    return mg_pp_write_v1(&down->client, &down->client_dst, (char *)out, cap);
}

/* ---- the write filter under an SSL ---- */

struct pp_prefix {
    size_t len, off;
    unsigned char b[MG_PP_OUT_MAX];
};

static int pf_write(BIO *b, const char *in, int inl)
{
    struct pp_prefix *p = BIO_get_data(b);
    BIO *next = BIO_next(b);
    BIO_clear_retry_flags(b);
    if (!next)
        return -1;
    while (p && p->off < p->len) {
        int n = BIO_write(next, p->b + p->off, (int)(p->len - p->off));
        if (n <= 0) {
            BIO_copy_next_retry(b);
            return n;
        }
        p->off += (size_t)n;
    }
    int n = BIO_write(next, in, inl);
    if (n <= 0)
        BIO_copy_next_retry(b);
    return n;
}

static int pf_read(BIO *b, char *out, int outl)
{
    BIO *next = BIO_next(b);
    BIO_clear_retry_flags(b);
    if (!next)
        return -1;
    int n = BIO_read(next, out, outl);
    if (n <= 0)
        BIO_copy_next_retry(b);
    return n;
}

/* Everything else is the socket's: flushes, BIO_get_fd (libevent closes the
 * descriptor it finds on the write BIO), pending counts. */
static long pf_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    BIO *next = BIO_next(b);
    if (cmd == BIO_CTRL_WPENDING) {
        struct pp_prefix *p = BIO_get_data(b);
        long rest = p ? (long)(p->len - p->off) : 0;
        return rest + (next ? BIO_ctrl(next, cmd, num, ptr) : 0);
    }
    return next ? BIO_ctrl(next, cmd, num, ptr) : 0;
}

static int pf_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

static int pf_destroy(BIO *b)
{
    free(BIO_get_data(b));
    BIO_set_data(b, NULL);
    return 1;
}

static BIO_METHOD *pf_method;
static pthread_once_t pf_once = PTHREAD_ONCE_INIT;

static void pf_init(void)
{
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_FILTER, "meshgate PROXY header");
    if (m && BIO_meth_set_write(m, pf_write) && BIO_meth_set_read(m, pf_read) &&
        BIO_meth_set_ctrl(m, pf_ctrl) && BIO_meth_set_create(m, pf_create) &&
        BIO_meth_set_destroy(m, pf_destroy))
        pf_method = m;
    else
        BIO_meth_free(m);
}

int mg_pp_arm(const struct mg_cluster *cl, const struct mg_pp_key *k, struct mg_io *io,
              SSL *ssl)
{
    if (!k->on)
        return 0;
    struct pp_prefix *p = mg_xcalloc(1, sizeof(*p));
    p->len = cl->proxy_protocol == 2 ? mg_pp_write_v2(&k->src, &k->dst, p->b, sizeof(p->b))
                                     : mg_pp_write_v1(&k->src, &k->dst, (char *)p->b, sizeof(p->b));
    if (!p->len) {
        free(p);
        return -1;
    }
    if (!ssl) {
        /* plain text: nothing else is in the output yet */
        int rc = evbuffer_add(mg_io_get_output(io), p->b, p->len);
        free(p);
        return rc;
    }
    pthread_once(&pf_once, pf_init);
    BIO *sock = SSL_get_wbio(ssl);
    BIO *f = pf_method ? BIO_new(pf_method) : NULL;
    if (!sock || BIO_method_type(sock) != BIO_TYPE_SOCKET || !f) {
        BIO_free(f);
        free(p);
        return -1;
    }
    BIO_set_data(f, p);
    /* The write BIO is a socket BIO (mg_io reads through its own). The
     * filter's chain takes a reference to it; SSL_set0_wbio drops the
     * SSL's own: the chain remains, and SSL_free releases it (were the
     * socket BIO also the read BIO, that reference would remain as well,
     * and BIO_free_all stops at a BIO still referenced). */
    BIO_up_ref(sock);
    BIO_push(f, sock);
    SSL_set0_wbio(ssl, f);
    return 0;
}
