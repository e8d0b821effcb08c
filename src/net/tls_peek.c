/* tls_peek.c - bounded ClientHello walk (RFC 8446 4.1.2) down to the
 * server_name (RFC 6066 3) and ALPN (RFC 7301) extensions. Every read goes
 * through a cursor that refuses to move past the end, so truncated or
 * lying lengths end the walk. */
#include "net/net.h"
#include <string.h>
#include "base/base.h"

#define EXT_SERVER_NAME 0
#define EXT_ALPN 16

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

/* server_name body: a ServerNameList that fills it, holding exactly one
 * entry, of type host_name (0), non-empty, without NUL, short enough. */
static bool read_sni(struct cur ext, struct mg_tls_hello *out)
{
    struct cur list, name;
    size_t type = 0;
    if (!vec(&ext, 2, &list) || ext.n != 0 || !u8(&list, &type) || type != 0 ||
        !vec(&list, 2, &name) || list.n != 0 || name.n == 0 || name.n > MG_TLS_SNI_MAX ||
        memchr(name.p, '\0', name.n))
        return false;
    memcpy(out->sni, name.p, name.n);
    out->sni[name.n] = '\0';
    mg_lower(out->sni);
    return true;
}

/* ALPN body: a non-empty ProtocolNameList that fills it, of non-empty
 * names. The fields are set only once the whole list is known good. */
static bool read_alpn(struct cur ext, struct mg_tls_hello *out)
{
    struct cur list;
    if (!vec(&ext, 2, &list) || ext.n != 0 || list.n == 0)
        return false;
    bool istio = false, h2 = false, http11 = false;
    for (struct cur l = list; l.n;) {
        struct cur name;
        if (!vec(&l, 1, &name) || name.n == 0)
            return false;
        if (mg_tls_alpn_is_istio(name.p, name.n))
            istio = true;
        if (name_is(name.p, name.n, "h2") || name_is(name.p, name.n, "istio-h2"))
            h2 = true;
        if (name_is(name.p, name.n, "http/1.1") || name_is(name.p, name.n, "istio-http/1.1") ||
            name_is(name.p, name.n, "istio-http/1.0"))
            http11 = true;
    }
    out->alpn = list.p;
    out->alpn_len = list.n;
    out->has_alpn = true;
    out->istio = istio;
    out->h2 = h2;
    out->http11 = http11;
    return true;
}

static void drop_alpn(struct mg_tls_hello *out)
{
    out->alpn = NULL;
    out->alpn_len = 0;
    out->has_alpn = out->istio = out->h2 = out->http11 = false;
}

/* The handshake message inside one complete record. */
static int walk(struct cur rec, unsigned rules, struct mg_tls_hello *out)
{
    size_t type = 0, hlen = 0;
    struct cur h, ciphers, comp, exts;
    if (!u8(&rec, &type) || type != 1 || !u24(&rec, &hlen))
        return MG_TLS_HELLO_BAD;
    /* a hello spanning records is refused; bytes after it in the record
     * (another handshake message) are not ours to read */
    if (!take(&rec, hlen, &h))
        return MG_TLS_HELLO_BAD;
    if (!take(&h, 2, NULL) || !take(&h, 32, NULL) ||   /* legacy_version, random */
        !vec(&h, 1, NULL) ||                            /* legacy_session_id */
        !vec(&h, 2, &ciphers) || !vec(&h, 1, &comp))
        return MG_TLS_HELLO_BAD;
    if ((rules & MG_TLS_HELLO_BODY_RULE) && (ciphers.n == 0 || ciphers.n % 2 || comp.n == 0))
        return MG_TLS_HELLO_BAD;
    if (h.n == 0)                                       /* no extensions at all */
        return MG_TLS_HELLO_OK;
    if (!vec(&h, 2, &exts))
        return MG_TLS_HELLO_BAD;
    if ((rules & MG_TLS_HELLO_BODY_RULE) && h.n != 0)
        return MG_TLS_HELLO_BAD;
    unsigned n_sni = 0, n_alpn = 0;
    while (exts.n) {
        size_t etype = 0;
        struct cur body;
        if (!u16(&exts, &etype) || !vec(&exts, 2, &body))
            return MG_TLS_HELLO_BAD;
        if (etype == EXT_SERVER_NAME) {
            bool good = ++n_sni == 1 && read_sni(body, out);
            if (!good && (rules & MG_TLS_HELLO_SNI_RULE))
                return MG_TLS_HELLO_BAD;        /* out->sni keeps a first, good name */
            if (!good)
                out->sni[0] = '\0';
        } else if (etype == EXT_ALPN) {
            bool good = ++n_alpn == 1 && read_alpn(body, out);
            if (!good && (rules & MG_TLS_HELLO_ALPN_RULE))
                return MG_TLS_HELLO_BAD;
            if (!good)
                drop_alpn(out);
        }
    }
    return MG_TLS_HELLO_OK;
}

int mg_tls_hello_peek(const unsigned char *buf, size_t len, unsigned rules, struct mg_tls_hello *out)
{
    memset(out, 0, sizeof(*out));
    /* each header byte is judged as soon as it is there, so a stream that
     * cannot be TLS is told apart without waiting for more */
    if (len >= 1 && buf[0] != 0x16)                 /* not a handshake record */
        return MG_TLS_HELLO_BAD;
    if (len >= 2 && buf[1] != 0x03)                 /* record version major */
        return MG_TLS_HELLO_BAD;
    if (len < 5)
        return MG_TLS_HELLO_MORE;
    size_t rlen = ((size_t)buf[3] << 8) | buf[4];
    if (rlen < 4 || rlen > 16384)                   /* no room for a handshake header; over 2^14 */
        return MG_TLS_HELLO_BAD;
    if (len >= 6 && buf[5] != 0x01)                 /* handshake type ClientHello */
        return MG_TLS_HELLO_BAD;
    if (len < 5 + rlen)
        return MG_TLS_HELLO_MORE;
    return walk((struct cur){ buf + 5, rlen }, rules, out);
}
