/* test_tls_peek.c - the ClientHello parser: real hellos from OpenSSL,
 * every truncation of one, and hand-made malformed hellos, read as the
 * sidecar's mesh detection reads them (ALPN) and as PASSTHROUGH routing
 * reads them (server name). */
#include <stdlib.h>
#include <string.h>
#include <openssl/ssl.h>
#include "../../src/net/net.h"
#include "tap.h"

#define MESH MG_TLS_HELLO_MESH
#define ROUTE MG_TLS_HELLO_ROUTE

/* A genuine ClientHello from OpenSSL offering `alpn` (wire format, may be
 * NULL). Returns the length written to out. */
static size_t real_hello(const unsigned char *alpn, unsigned alen, unsigned char *out, size_t cap)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    SSL *ssl = SSL_new(ctx);
    BIO *rb = BIO_new(BIO_s_mem()), *wb = BIO_new(BIO_s_mem());
    SSL_set_bio(ssl, rb, wb);
    SSL_set_tlsext_host_name(ssl, "svc.example");
    if (alpn)
        SSL_set_alpn_protos(ssl, alpn, alen);
    SSL_set_connect_state(ssl);
    SSL_do_handshake(ssl);
    int n = BIO_read(wb, out, (int)cap);
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    return n > 0 ? (size_t)n : 0;
}

/* A minimal hello: record + handshake header around a body with the given
 * cipher_suites and compression_methods lists, an extensions block holding
 * `ext` (ext_len bytes, without its 2-byte length; none at all when ext is
 * NULL) and `tail` bytes after it. */
static size_t make_body(const unsigned char *ciph, size_t nciph, const unsigned char *comp,
                        size_t ncomp, const unsigned char *ext, size_t ext_len,
                        const unsigned char *tail, size_t ntail, unsigned char *out)
{
    static unsigned char body[MG_TLS_PEEK_MAX];
    size_t n = 0;
    body[n++] = 3; body[n++] = 3;                   /* legacy_version */
    memset(body + n, 0xab, 32); n += 32;            /* random */
    body[n++] = 0;                                  /* session id */
    body[n++] = (unsigned char)(nciph >> 8); body[n++] = (unsigned char)nciph;
    memcpy(body + n, ciph, nciph); n += nciph;
    body[n++] = (unsigned char)ncomp;
    memcpy(body + n, comp, ncomp); n += ncomp;
    if (ext) {
        body[n++] = (unsigned char)(ext_len >> 8); body[n++] = (unsigned char)ext_len;
        memcpy(body + n, ext, ext_len); n += ext_len;
    }
    if (ntail) {
        memcpy(body + n, tail, ntail);
        n += ntail;
    }
    size_t hs = n + 4;
    out[0] = 0x16; out[1] = 3; out[2] = 1;
    out[3] = (unsigned char)(hs >> 8); out[4] = (unsigned char)hs;
    out[5] = 1; out[6] = 0; out[7] = (unsigned char)(n >> 8); out[8] = (unsigned char)n;
    memcpy(out + 9, body, n);
    return 9 + n;
}

static const unsigned char one_cipher[] = { 0x13, 0x01 }, null_comp[] = { 0 };

static size_t make_hello(const unsigned char *ext, size_t ext_len, unsigned char *out)
{
    return make_body(one_cipher, 2, null_comp, 1, ext ? ext : null_comp, ext_len, NULL, 0, out);
}

/* append a server_name extension to ext at *n holding the entries of
 * `spec`: "type:name" entries separated by ',' (a '0' type is host_name) */
static void add_sni(unsigned char *ext, size_t *n, const char *spec)
{
    size_t at = *n, list = at + 6, m = list;
    ext[at] = 0; ext[at + 1] = 0;                   /* server_name */
    while (*spec) {
        const char *end = strchr(spec, ',');
        size_t l = end ? (size_t)(end - spec) : strlen(spec);
        size_t nl = l - 2;
        ext[m++] = (unsigned char)(spec[0] - '0');
        ext[m++] = (unsigned char)(nl >> 8); ext[m++] = (unsigned char)nl;
        memcpy(ext + m, spec + 2, nl); m += nl;
        spec += l + (end ? 1 : 0);
    }
    size_t ll = m - list;
    ext[at + 2] = (unsigned char)((ll + 2) >> 8); ext[at + 3] = (unsigned char)(ll + 2);
    ext[at + 4] = (unsigned char)(ll >> 8); ext[at + 5] = (unsigned char)ll;
    *n = m;
}

/* verdicts of one hello under the routing and the mesh rules */
static void verdicts(const unsigned char *ext, size_t n, int route, int mesh, const char *what)
{
    unsigned char buf[2048];
    struct mg_tls_hello h;
    size_t len = make_hello(ext, n, buf);
    is_int(mg_tls_hello_peek(buf, len, ROUTE, &h), route, "routing: %s", what);
    is_int(mg_tls_hello_peek(buf, len, MESH, &h), mesh, "mesh: %s", what);
}

/* The server name, under the routing rule (one server_name extension,
 * exactly one host_name) and without it. */
static void test_sni(void)
{
    unsigned char buf[4096], ext[1024];
    struct mg_tls_hello h;
    size_t n = real_hello(NULL, 0, buf, sizeof(buf));
    is_int(mg_tls_hello_peek(buf, n, ROUTE, &h), 1, "real hello: routing reads it");
    is_str(h.sni, "svc.example", "real hello: the SNI");
    is_int(mg_tls_hello_peek(buf, n, MESH, &h), 1, "real hello: mesh reads it");
    is_str(h.sni, "svc.example", "the SNI is reported to both readers");

    size_t e = 0;
    add_sni(ext, &e, "0:App.Example.COM");
    n = make_hello(ext, e, buf);
    is_int(mg_tls_hello_peek(buf, n, ROUTE, &h), 1, "one host_name");
    is_str(h.sni, "app.example.com", "the name is lower-cased");

    n = make_hello(NULL, 0, buf);
    is_int(mg_tls_hello_peek(buf, n, ROUTE, &h), 1, "empty extensions block");
    is_str(h.sni, "", "no server_name: no SNI");
    n = make_body(one_cipher, 2, null_comp, 1, NULL, 0, NULL, 0, buf);
    is_int(mg_tls_hello_peek(buf, n, ROUTE, &h), 1, "no extensions block at all");
    is_str(h.sni, "", "no extensions: no SNI");

    static const char *const refused[] = {
        "0:app.example.com,0:admin.internal",       /* two host_names */
        "0:admin.internal,0:app.example.com",
        "1:junk,0:app.example.com",                 /* another name type first */
        "1:app.example.com",                        /* another name type only */
        "0:",                                       /* empty name */
        "",                                         /* empty list */
    };
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        e = 0;
        add_sni(ext, &e, refused[i]);
        n = make_hello(ext, e, buf);
        is_int(mg_tls_hello_peek(buf, n, ROUTE, &h), -1, "routing refuses server_name \"%s\"", refused[i]);
        is_int(mg_tls_hello_peek(buf, n, MESH, &h), 1, "mesh reads the hello with server_name \"%s\"",
               refused[i]);
        is_str(h.sni, "", "... without a name");
    }

    /* a NUL inside the name */
    e = 0;
    add_sni(ext, &e, "0:app.example.com.evil");
    ext[6 + 3 + 15] = '\0';
    verdicts(ext, e, -1, 1, "NUL inside the name");

    /* 255 bytes is the longest name */
    char name[300] = "0:";
    memset(name + 2, 'a', 255);
    name[257] = '\0';
    e = 0;
    add_sni(ext, &e, name);
    n = make_hello(ext, e, buf);
    is_int(mg_tls_hello_peek(buf, n, ROUTE, &h), 1, "a 255-byte name");
    is_int((long long)strlen(h.sni), 255, "... is read whole");
    strcat(name, "a");
    e = 0;
    add_sni(ext, &e, name);
    verdicts(ext, e, -1, 1, "a 256-byte name");

    /* the list must fill the extension exactly */
    e = 0;
    add_sni(ext, &e, "0:app.example.com");
    ext[3]++;                                       /* extension one byte longer ... */
    ext[e++] = 0;                                   /* ... than its list */
    verdicts(ext, e, -1, 1, "server_name longer than its list");

    /* two server_name extensions: refused; the name read before the
     * second one stays in out (a refused connection is logged with it) */
    e = 0;
    add_sni(ext, &e, "0:app.example.com");
    add_sni(ext, &e, "0:admin.internal");
    n = make_hello(ext, e, buf);
    is_int(mg_tls_hello_peek(buf, n, ROUTE, &h), -1, "two server_name extensions: routing refuses");
    is_str(h.sni, "app.example.com", "... the first name stays for the log");
    is_int(mg_tls_hello_peek(buf, n, MESH, &h), 1, "two server_name extensions: mesh reads the hello");
    is_str(h.sni, "", "... without a name");
}

/* The ALPN list and the rules only the mesh reader applies: routing reads
 * the hello the way it always did, whatever the ALPN offer or the body. */
static void test_alpn_and_body(void)
{
    unsigned char buf[2048];
    struct mg_tls_hello h;

    static const unsigned char alpn[] = { 0, 16, 0, 16, 0, 14, 5, 'i', 's', 't', 'i', 'o',
                                          2, 'h', '2', 4, 'a', 'b', 'c', 'd' };
    size_t n = make_hello(alpn, sizeof(alpn), buf);
    is_int(mg_tls_hello_peek(buf, n, ROUTE, &h), 1, "ALPN hello under the routing rule");
    ok(h.alpn == buf + 9 + 2 + 32 + 1 + 4 + 2 + 2 + 6 && h.alpn_len == 14,
       "the ALPN list points at the offer in the buffer");
    ok(h.has_alpn && h.istio && h.h2 && !h.http11, "istio, h2 offered");

    static const unsigned char alpn_over[] = { 0, 16, 0, 8, 0, 6, 9, 'i', 's', 't', 'i', 'o' };
    verdicts(alpn_over, sizeof(alpn_over), 1, -1, "ALPN name past the list");
    n = make_hello(alpn_over, sizeof(alpn_over), buf);
    mg_tls_hello_peek(buf, n, ROUTE, &h);
    ok(!h.has_alpn && !h.alpn && !h.istio, "a malformed ALPN offer is not reported");
    static const unsigned char two[] = { 0, 16, 0, 8, 0, 6, 5, 'i', 's', 't', 'i', 'o',
                                         0, 16, 0, 4, 0, 2, 1, 'x' };
    verdicts(two, sizeof(two), 1, -1, "two ALPN extensions");
    n = make_hello(two, sizeof(two), buf);
    mg_tls_hello_peek(buf, n, ROUTE, &h);
    ok(!h.has_alpn && !h.istio, "two ALPN extensions: no offer reported");
    static const unsigned char empty_list[] = { 0, 16, 0, 2, 0, 0 };
    verdicts(empty_list, sizeof(empty_list), 1, -1, "empty ALPN list");

    static const unsigned char ext[] = { 0, 16, 0, 8, 0, 6, 5, 'i', 's', 't', 'i', 'o' };
    static const unsigned char odd[] = { 0x13, 0x01, 0x13 }, zero = 0;
    struct {
        size_t len;
        const char *what;
    } body[4];
    unsigned char bufs[4][2048];
    body[0].len = make_body(&zero, 0, null_comp, 1, ext, sizeof(ext), NULL, 0, bufs[0]);
    body[0].what = "empty cipher_suites";
    body[1].len = make_body(odd, 3, null_comp, 1, ext, sizeof(ext), NULL, 0, bufs[1]);
    body[1].what = "odd cipher_suites length";
    body[2].len = make_body(one_cipher, 2, &zero, 0, ext, sizeof(ext), NULL, 0, bufs[2]);
    body[2].what = "empty compression_methods";
    body[3].len = make_body(one_cipher, 2, null_comp, 1, ext, sizeof(ext), null_comp, 1, bufs[3]);
    body[3].what = "a byte after the extensions block";
    for (int i = 0; i < 4; i++) {
        is_int(mg_tls_hello_peek(bufs[i], body[i].len, ROUTE, &h), 1, "routing reads: %s", body[i].what);
        is_int(mg_tls_hello_peek(bufs[i], body[i].len, MESH, &h), -1, "mesh refuses: %s", body[i].what);
        ok(!h.istio, "... and reports no Istio offer");
    }
    /* one stray byte where the extensions block would start: both refuse */
    n = make_body(one_cipher, 2, null_comp, 1, NULL, 0, null_comp, 1, buf);
    is_int(mg_tls_hello_peek(buf, n, ROUTE, &h), -1, "routing: one byte instead of an extensions block");
    is_int(mg_tls_hello_peek(buf, n, MESH, &h), -1, "mesh: one byte instead of an extensions block");
}

/* The record: a decision is taken as soon as the bytes settle it, and is
 * final; only the first record is read. */
static void test_record(void)
{
    unsigned char buf[MG_TLS_PEEK_MAX + 64], two[4096];
    struct mg_tls_hello h;
    static const unsigned char istio[] = "\x05istio";
    size_t n = real_hello(istio, sizeof(istio) - 1, buf, sizeof(buf));

    int bad = 0;
    for (size_t k = 0; k < n; k++)
        if (mg_tls_hello_peek(buf, k, ROUTE, &h) != 0)
            bad++;
    is_int(bad, 0, "routing: every truncation asks for more bytes");

    /* bytes after the first record change nothing */
    memcpy(buf + n, "\x14\x03\x03\x00\x01\x01", 6);     /* ChangeCipherSpec */
    is_int(mg_tls_hello_peek(buf, n + 6, MESH, &h), 1, "a record after the hello is not read");
    ok(h.istio && !strcmp(h.sni, "svc.example"), "... the hello is read as alone");

    /* a hello split over two records is refused, as it always was */
    size_t hs = n - 5, cut = hs / 2;
    memcpy(two, buf, 5);
    two[3] = (unsigned char)(cut >> 8); two[4] = (unsigned char)cut;
    memcpy(two + 5, buf + 5, cut);
    memcpy(two + 5 + cut, buf, 3);
    two[5 + cut + 3] = (unsigned char)((hs - cut) >> 8); two[5 + cut + 4] = (unsigned char)(hs - cut);
    memcpy(two + 10 + cut, buf + 5 + cut, hs - cut);
    is_int(mg_tls_hello_peek(two, n + 5, ROUTE, &h), -1, "routing: hello split over two records refused");
    is_int(mg_tls_hello_peek(two, n + 5, MESH, &h), -1, "mesh: hello split over two records refused");
    is_int(mg_tls_hello_peek(two, 5 + cut - 1, ROUTE, &h), 0, "... the first record not complete: wait");

    /* early decisions, on the header bytes alone */
    static const unsigned char v2[] = { 0x16, 2 };
    is_int(mg_tls_hello_peek(v2, 2, ROUTE, &h), -1, "routing: record version major 2 at two bytes");
    static const unsigned char short_rec[] = { 0x16, 3, 1, 0, 3 };
    is_int(mg_tls_hello_peek(short_rec, 5, MESH, &h), -1, "a record too short for a handshake header");
    is_int(mg_tls_hello_peek(short_rec, 5, ROUTE, &h), -1, "... for both readers");
    static const unsigned char not_hello[] = { 0x16, 3, 1, 1, 0, 2 };
    is_int(mg_tls_hello_peek(not_hello, 6, ROUTE, &h), -1, "routing: another handshake type at six bytes");

    /* a hello filling a first record of 16384 bytes is read */
    static const unsigned char pad_head[] = { 0, 21 };
    unsigned char *ext = malloc(16384);
    size_t el = 16384 - 4 - (2 + 32 + 1 + 2 + 2 + 1 + 1 + 2) - 4;
    memcpy(ext, pad_head, 2);
    ext[2] = (unsigned char)(el >> 8); ext[3] = (unsigned char)el;
    memset(ext + 4, 0, el);
    n = make_body(one_cipher, 2, null_comp, 1, ext, el + 4, NULL, 0, buf);
    is_int((long long)n, MG_TLS_PEEK_MAX, "a hello filling the largest record");
    is_int(mg_tls_hello_peek(buf, n, MESH, &h), 1, "... is read");
    is_int(mg_tls_hello_peek(buf, n - 1, MESH, &h), 0, "... one byte short: wait");
    free(ext);
}

int main(void)
{
    unsigned char buf[4096];
    struct mg_tls_hello h;

    static const unsigned char istio11[] = "\x0eistio-http/1.1\x08http/1.1";
    size_t n = real_hello(istio11, sizeof(istio11) - 1, buf, sizeof(buf));
    ok(n > 50, "OpenSSL produced a ClientHello (%zu bytes)", n);
    is_int(mg_tls_hello_peek(buf, n, MESH, &h), 1, "complete hello parsed");
    ok(h.has_alpn && h.istio && h.http11 && !h.h2, "istio-http/1.1 + http/1.1: istio, http/1.1");

    /* every strict prefix needs more bytes, never a decision */
    int bad = 0;
    for (size_t k = 0; k < n; k++)
        if (mg_tls_hello_peek(buf, k, MESH, &h) != 0)
            bad++;
    is_int(bad, 0, "every truncation of the hello asks for more bytes");

    static const unsigned char plain[] = "\x02h2\x08http/1.1";
    n = real_hello(plain, sizeof(plain) - 1, buf, sizeof(buf));
    is_int(mg_tls_hello_peek(buf, n, MESH, &h), 1, "browser-like hello parsed");
    ok(h.has_alpn && !h.istio && h.h2 && h.http11, "h2,http/1.1: not istio");

    static const unsigned char ih2[] = "\x08istio-h2";
    n = real_hello(ih2, sizeof(ih2) - 1, buf, sizeof(buf));
    is_int(mg_tls_hello_peek(buf, n, MESH, &h), 1, "istio-h2 hello parsed");
    ok(h.istio && h.h2 && !h.http11, "istio-h2 means h2");

    static const unsigned char pex[] = "\x13istio-peer-exchange\x05istio";
    n = real_hello(pex, sizeof(pex) - 1, buf, sizeof(buf));
    is_int(mg_tls_hello_peek(buf, n, MESH, &h), 1, "peer-exchange hello parsed");
    ok(h.istio && !h.h2 && !h.http11, "istio-peer-exchange, istio: istio only");

    static const unsigned char near[] = "\x06istioX\x0distio-http/2";
    n = real_hello(near, sizeof(near) - 1, buf, sizeof(buf));
    is_int(mg_tls_hello_peek(buf, n, MESH, &h), 1, "look-alike tokens parsed");
    ok(!h.istio, "istioX and istio-http/2 are not Istio tokens");

    n = real_hello(NULL, 0, buf, sizeof(buf));
    is_int(mg_tls_hello_peek(buf, n, MESH, &h), 1, "hello without ALPN parsed");
    ok(!h.has_alpn && !h.istio, "no ALPN: not istio");

    /* plain text and other records */
    is_int(mg_tls_hello_peek((const unsigned char *)"GET / HTTP/1.1\r\n", 16, MESH, &h), -1, "HTTP is not TLS");
    is_int(mg_tls_hello_peek((const unsigned char *)"G", 1, MESH, &h), -1, "one plain byte decides");
    is_int(mg_tls_hello_peek((const unsigned char *)"", 0, MESH, &h), 0, "no bytes: wait");
    static const unsigned char alert[] = { 0x15, 3, 3, 0, 2, 2, 40 };
    is_int(mg_tls_hello_peek(alert, sizeof(alert), MESH, &h), -1, "alert record refused");
    static const unsigned char sh[] = { 0x16, 3, 3, 0, 4, 2, 0, 0, 0 };
    is_int(mg_tls_hello_peek(sh, sizeof(sh), MESH, &h), -1, "ServerHello refused");
    static const unsigned char big[] = { 0x16, 3, 1, 0x40, 0x01, 1 };
    is_int(mg_tls_hello_peek(big, sizeof(big), MESH, &h), -1, "record over 16384 refused");
    static const unsigned char zero[] = { 0x16, 3, 1, 0, 0 };
    is_int(mg_tls_hello_peek(zero, sizeof(zero), MESH, &h), -1, "empty record refused");
    static const unsigned char v2[] = { 0x16, 2, 0 };
    is_int(mg_tls_hello_peek(v2, sizeof(v2), MESH, &h), -1, "record version major 2 refused");

    /* hand-made hellos */
    static const unsigned char alpn_ok[] = { 0, 16, 0, 8, 0, 6, 5, 'i', 's', 't', 'i', 'o' };
    n = make_hello(alpn_ok, sizeof(alpn_ok), buf);
    is_int(mg_tls_hello_peek(buf, n, MESH, &h), 1, "hand-made hello with ALPN istio");
    ok(h.istio, "hand-made: istio");

    /* handshake length larger than the record: spans records, refused */
    n = make_hello(alpn_ok, sizeof(alpn_ok), buf);
    buf[8] = (unsigned char)(buf[8] + 1);
    is_int(mg_tls_hello_peek(buf, n, MESH, &h), -1, "handshake longer than its record refused");

    /* ALPN name length running past the extension */
    static const unsigned char alpn_over[] = { 0, 16, 0, 8, 0, 6, 9, 'i', 's', 't', 'i', 'o' };
    n = make_hello(alpn_over, sizeof(alpn_over), buf);
    is_int(mg_tls_hello_peek(buf, n, MESH, &h), -1, "ALPN name past the list refused");
    ok(!h.istio, "nothing reported for a malformed hello");

    /* zero-length ALPN name */
    static const unsigned char alpn_empty[] = { 0, 16, 0, 3, 0, 1, 0 };
    n = make_hello(alpn_empty, sizeof(alpn_empty), buf);
    is_int(mg_tls_hello_peek(buf, n, MESH, &h), -1, "empty ALPN name refused");

    /* extension length past the extensions block */
    static const unsigned char ext_over[] = { 0, 16, 0, 50, 0, 6, 5, 'i', 's', 't', 'i', 'o' };
    n = make_hello(ext_over, sizeof(ext_over), buf);
    is_int(mg_tls_hello_peek(buf, n, MESH, &h), -1, "extension longer than the block refused");

    /* two ALPN extensions */
    static const unsigned char two[] = { 0, 16, 0, 8, 0, 6, 5, 'i', 's', 't', 'i', 'o',
                                         0, 16, 0, 8, 0, 6, 5, 'i', 's', 't', 'i', 'o' };
    n = make_hello(two, sizeof(two), buf);
    is_int(mg_tls_hello_peek(buf, n, MESH, &h), -1, "duplicate ALPN extension refused");

    /* an unknown extension before ALPN is skipped */
    static const unsigned char skip[] = { 0xfa, 0xfa, 0, 2, 1, 2,
                                          0, 16, 0, 11, 0, 9, 8, 'i', 's', 't', 'i', 'o', '-', 'h', '2' };
    n = make_hello(skip, sizeof(skip), buf);
    is_int(mg_tls_hello_peek(buf, n, MESH, &h), 1, "unknown extension skipped");
    ok(h.istio && h.h2, "ALPN after an unknown extension found");

    /* random garbage after a handshake byte never crashes and never says istio */
    srand(7);
    int istio = 0;
    for (int i = 0; i < 20000; i++) {
        size_t len = (size_t)(rand() % 300);
        buf[0] = 0x16; buf[1] = 3;
        for (size_t k = 2; k < len; k++)
            buf[k] = (unsigned char)rand();
        if (len > 5)
            buf[5] = 1;
        if (mg_tls_hello_peek(buf, len, MESH, &h) == 1 && h.istio)
            istio++;
    }
    is_int(istio, 0, "random records are never Istio mTLS");
    test_sni();
    test_alpn_and_body();
    test_record();
    return tap_done();
}
