/* tls_peek.c - bounded ClientHello walk down to the ALPN extension (RFC
 * 8446 4.1.2, RFC 7301). Every read goes through a cursor that refuses to
 * move past the end, so truncated or lying lengths end the walk. */
#include "net/tls_peek.h"
#include <string.h>

struct cur {
    const unsigned char *p;
    size_t n;
};

static bool take(struct cur *c, size_t k, struct cur *sub)
{
    if (c->n < k)
        return false;
    if (sub) {
        sub->p = c->p;
        sub->n = k;
    }
    c->p += k;
    c->n -= k;
    return true;
}

static bool u8(struct cur *c, size_t *v)
{
    if (c->n < 1)
        return false;
    *v = c->p[0];
    return take(c, 1, NULL);
}

static bool u16(struct cur *c, size_t *v)
{
    if (c->n < 2)
        return false;
    *v = ((size_t)c->p[0] << 8) | c->p[1];
    return take(c, 2, NULL);
}

static bool u24(struct cur *c, size_t *v)
{
    if (c->n < 3)
        return false;
    *v = ((size_t)c->p[0] << 16) | ((size_t)c->p[1] << 8) | c->p[2];
    return take(c, 3, NULL);
}

/* a length-prefixed vector: prefix of `width` bytes, then that many bytes */
static bool vec(struct cur *c, int width, struct cur *sub)
{
    size_t l = 0;
    if (!(width == 1 ? u8(c, &l) : u16(c, &l)))
        return false;
    return take(c, l, sub);
}

static bool name_is(const unsigned char *p, size_t n, const char *s)
{
    return strlen(s) == n && memcmp(p, s, n) == 0;
}

bool mg_tls_alpn_is_istio(const unsigned char *p, size_t n)
{
    return name_is(p, n, "istio") || name_is(p, n, "istio-peer-exchange") ||
           name_is(p, n, "istio-http/1.0") || name_is(p, n, "istio-http/1.1") ||
           name_is(p, n, "istio-h2");
}

static int parse_alpn(struct cur ext, struct mg_tls_hello *out)
{
    struct cur list;
    if (!vec(&ext, 2, &list) || ext.n != 0 || list.n == 0)
        return -1;
    out->has_alpn = true;
    while (list.n) {
        struct cur name;
        if (!vec(&list, 1, &name) || name.n == 0)
            return -1;
        if (mg_tls_alpn_is_istio(name.p, name.n))
            out->istio = true;
        if (name_is(name.p, name.n, "h2") || name_is(name.p, name.n, "istio-h2"))
            out->h2 = true;
        if (name_is(name.p, name.n, "http/1.1") || name_is(name.p, name.n, "istio-http/1.1") ||
            name_is(name.p, name.n, "istio-http/1.0"))
            out->http11 = true;
    }
    return 1;
}

int mg_tls_hello_peek(const unsigned char *buf, size_t len, struct mg_tls_hello *out)
{
    memset(out, 0, sizeof(*out));
    if (len >= 1 && buf[0] != 0x16)                 /* not a handshake record */
        return -1;
    if (len >= 2 && buf[1] != 0x03)                 /* record version major */
        return -1;
    if (len < 5)
        return 0;
    size_t rlen = ((size_t)buf[3] << 8) | buf[4];
    if (rlen == 0 || rlen > 16384)
        return -1;
    if (len >= 6 && buf[5] != 0x01)                 /* handshake type ClientHello */
        return -1;
    if (len < 5 + rlen)
        return 0;
    struct cur rec = { buf + 5, rlen };
    size_t type = 0, hlen = 0;
    if (!u8(&rec, &type) || type != 1 || !u24(&rec, &hlen))
        return -1;
    struct cur h;
    if (!take(&rec, hlen, &h))                      /* a hello spanning records is refused */
        return -1;
    size_t comp_n = 0;
    struct cur ciphers, comp;
    if (!take(&h, 2, NULL) || !take(&h, 32, NULL) ||  /* legacy_version, random */
        !vec(&h, 1, NULL) ||                        /* legacy_session_id */
        !vec(&h, 2, &ciphers) || ciphers.n == 0 || ciphers.n % 2 ||
        !vec(&h, 1, &comp))
        return -1;
    comp_n = comp.n;
    if (comp_n == 0)
        return -1;
    if (h.n == 0)                                   /* no extensions at all */
        return 1;
    struct cur exts;
    if (!vec(&h, 2, &exts) || h.n != 0)
        return -1;
    bool seen_alpn = false;
    while (exts.n) {
        size_t etype = 0;
        struct cur body;
        if (!u16(&exts, &etype) || !vec(&exts, 2, &body))
            return -1;
        if (etype == 16) {
            if (seen_alpn || parse_alpn(body, out) < 0)
                return -1;
            seen_alpn = true;
        }
    }
    return 1;
}
