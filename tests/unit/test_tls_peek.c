/* test_tls_peek.c - the ClientHello ALPN peek: real hellos from OpenSSL,
 * every truncation of one, and hand-made malformed hellos. */
#include <stdlib.h>
#include <string.h>
#include <openssl/ssl.h>
#include "../../src/net/tls_peek.h"
#include "tap.h"

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

/* A minimal hello: record + handshake header around a body whose
 * extensions block is `ext` (ext_len bytes, without its 2-byte length). */
static size_t make_hello(const unsigned char *ext, size_t ext_len, unsigned char *out)
{
    unsigned char body[512];
    size_t n = 0;
    body[n++] = 3; body[n++] = 3;                   /* legacy_version */
    memset(body + n, 0xab, 32); n += 32;            /* random */
    body[n++] = 0;                                  /* session id */
    body[n++] = 0; body[n++] = 2; body[n++] = 0x13; body[n++] = 0x01;   /* one cipher */
    body[n++] = 1; body[n++] = 0;                   /* compression: null */
    body[n++] = (unsigned char)(ext_len >> 8); body[n++] = (unsigned char)ext_len;
    memcpy(body + n, ext, ext_len); n += ext_len;
    size_t hs = n + 4;
    out[0] = 0x16; out[1] = 3; out[2] = 1;
    out[3] = (unsigned char)(hs >> 8); out[4] = (unsigned char)hs;
    out[5] = 1; out[6] = 0; out[7] = (unsigned char)(n >> 8); out[8] = (unsigned char)n;
    memcpy(out + 9, body, n);
    return 9 + n;
}

int main(void)
{
    unsigned char buf[4096];
    struct mg_tls_hello h;

    static const unsigned char istio11[] = "\x0eistio-http/1.1\x08http/1.1";
    size_t n = real_hello(istio11, sizeof(istio11) - 1, buf, sizeof(buf));
    ok(n > 50, "OpenSSL produced a ClientHello (%zu bytes)", n);
    is_int(mg_tls_hello_peek(buf, n, &h), 1, "complete hello parsed");
    ok(h.has_alpn && h.istio && h.http11 && !h.h2, "istio-http/1.1 + http/1.1: istio, http/1.1");

    /* every strict prefix needs more bytes, never a decision */
    int bad = 0;
    for (size_t k = 0; k < n; k++)
        if (mg_tls_hello_peek(buf, k, &h) != 0)
            bad++;
    is_int(bad, 0, "every truncation of the hello asks for more bytes");

    static const unsigned char plain[] = "\x02h2\x08http/1.1";
    n = real_hello(plain, sizeof(plain) - 1, buf, sizeof(buf));
    is_int(mg_tls_hello_peek(buf, n, &h), 1, "browser-like hello parsed");
    ok(h.has_alpn && !h.istio && h.h2 && h.http11, "h2,http/1.1: not istio");

    static const unsigned char ih2[] = "\x08istio-h2";
    n = real_hello(ih2, sizeof(ih2) - 1, buf, sizeof(buf));
    is_int(mg_tls_hello_peek(buf, n, &h), 1, "istio-h2 hello parsed");
    ok(h.istio && h.h2 && !h.http11, "istio-h2 means h2");

    static const unsigned char pex[] = "\x13istio-peer-exchange\x05istio";
    n = real_hello(pex, sizeof(pex) - 1, buf, sizeof(buf));
    is_int(mg_tls_hello_peek(buf, n, &h), 1, "peer-exchange hello parsed");
    ok(h.istio && !h.h2 && !h.http11, "istio-peer-exchange, istio: istio only");

    static const unsigned char near[] = "\x06istioX\x0distio-http/2";
    n = real_hello(near, sizeof(near) - 1, buf, sizeof(buf));
    is_int(mg_tls_hello_peek(buf, n, &h), 1, "look-alike tokens parsed");
    ok(!h.istio, "istioX and istio-http/2 are not Istio tokens");

    n = real_hello(NULL, 0, buf, sizeof(buf));
    is_int(mg_tls_hello_peek(buf, n, &h), 1, "hello without ALPN parsed");
    ok(!h.has_alpn && !h.istio, "no ALPN: not istio");

    /* plain text and other records */
    is_int(mg_tls_hello_peek((const unsigned char *)"GET / HTTP/1.1\r\n", 16, &h), -1, "HTTP is not TLS");
    is_int(mg_tls_hello_peek((const unsigned char *)"G", 1, &h), -1, "one plain byte decides");
    is_int(mg_tls_hello_peek((const unsigned char *)"", 0, &h), 0, "no bytes: wait");
    static const unsigned char alert[] = { 0x15, 3, 3, 0, 2, 2, 40 };
    is_int(mg_tls_hello_peek(alert, sizeof(alert), &h), -1, "alert record refused");
    static const unsigned char sh[] = { 0x16, 3, 3, 0, 4, 2, 0, 0, 0 };
    is_int(mg_tls_hello_peek(sh, sizeof(sh), &h), -1, "ServerHello refused");
    static const unsigned char big[] = { 0x16, 3, 1, 0x40, 0x01, 1 };
    is_int(mg_tls_hello_peek(big, sizeof(big), &h), -1, "record over 16384 refused");
    static const unsigned char zero[] = { 0x16, 3, 1, 0, 0 };
    is_int(mg_tls_hello_peek(zero, sizeof(zero), &h), -1, "empty record refused");
    static const unsigned char v2[] = { 0x16, 2, 0 };
    is_int(mg_tls_hello_peek(v2, sizeof(v2), &h), -1, "record version major 2 refused");

    /* hand-made hellos */
    static const unsigned char alpn_ok[] = { 0, 16, 0, 8, 0, 6, 5, 'i', 's', 't', 'i', 'o' };
    n = make_hello(alpn_ok, sizeof(alpn_ok), buf);
    is_int(mg_tls_hello_peek(buf, n, &h), 1, "hand-made hello with ALPN istio");
    ok(h.istio, "hand-made: istio");

    /* handshake length larger than the record: spans records, refused */
    n = make_hello(alpn_ok, sizeof(alpn_ok), buf);
    buf[8] = (unsigned char)(buf[8] + 1);
    is_int(mg_tls_hello_peek(buf, n, &h), -1, "handshake longer than its record refused");

    /* ALPN name length running past the extension */
    static const unsigned char alpn_over[] = { 0, 16, 0, 8, 0, 6, 9, 'i', 's', 't', 'i', 'o' };
    n = make_hello(alpn_over, sizeof(alpn_over), buf);
    is_int(mg_tls_hello_peek(buf, n, &h), -1, "ALPN name past the list refused");
    ok(!h.istio, "nothing reported for a malformed hello");

    /* zero-length ALPN name */
    static const unsigned char alpn_empty[] = { 0, 16, 0, 3, 0, 1, 0 };
    n = make_hello(alpn_empty, sizeof(alpn_empty), buf);
    is_int(mg_tls_hello_peek(buf, n, &h), -1, "empty ALPN name refused");

    /* extension length past the extensions block */
    static const unsigned char ext_over[] = { 0, 16, 0, 50, 0, 6, 5, 'i', 's', 't', 'i', 'o' };
    n = make_hello(ext_over, sizeof(ext_over), buf);
    is_int(mg_tls_hello_peek(buf, n, &h), -1, "extension longer than the block refused");

    /* two ALPN extensions */
    static const unsigned char two[] = { 0, 16, 0, 8, 0, 6, 5, 'i', 's', 't', 'i', 'o',
                                         0, 16, 0, 8, 0, 6, 5, 'i', 's', 't', 'i', 'o' };
    n = make_hello(two, sizeof(two), buf);
    is_int(mg_tls_hello_peek(buf, n, &h), -1, "duplicate ALPN extension refused");

    /* an unknown extension before ALPN is skipped */
    static const unsigned char skip[] = { 0xfa, 0xfa, 0, 2, 1, 2,
                                          0, 16, 0, 11, 0, 9, 8, 'i', 's', 't', 'i', 'o', '-', 'h', '2' };
    n = make_hello(skip, sizeof(skip), buf);
    is_int(mg_tls_hello_peek(buf, n, &h), 1, "unknown extension skipped");
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
        if (mg_tls_hello_peek(buf, len, &h) == 1 && h.istio)
            istio++;
    }
    is_int(istio, 0, "random records are never Istio mTLS");
    return tap_done();
}
