/* mg_h2flood - HTTP/2 abuse client for the end-to-end tests (26-h2-abuse.sh).
 *
 *   mg_h2flood --port P [--host NAME] [--linger S] MODE [ARGS]
 *     rapid N           N times HEADERS (a GET) + RST_STREAM(CANCEL), in one
 *                       burst; then reads until the server closes or is
 *                       silent for S s (--linger, default 2). Prints "goaway <error code> last
 *                       <stream id>" per GOAWAY, "responses <n>" (HEADERS
 *                       frames seen), "resets <n>" and "closed" or "open".
 *     continuation N    one HEADERS without END_HEADERS followed by N
 *                       CONTINUATION frames; prints as for rapid.
 *     stall             one HEADERS without END_HEADERS, then silence;
 *                       prints as for rapid.
 *     ping N            N PINGs without reading the acks; prints "pings <n>"
 *                       (how many the server took), then as for rapid.
 *     noread PATH S     one GET PATH, then S seconds without reading (no
 *                       WINDOW_UPDATE either), then as for rapid.
 *     open N PATH       N GET PATH streams at once, before the server's
 *                       SETTINGS arrive; prints as for rapid plus "resets
 *                       <n>" (RST_STREAM frames seen).
 *     ids ID,ID,...     a GET /echo (HEADERS END_STREAM|END_HEADERS) on
 *                       each stream id in the order given, in one write;
 *                       prints as for rapid.
 *     headers N K BIG   N GET /echo requests on one connection, request K
 *                       (0-based) with an extra header of BIG bytes; prints
 *                       "stream <i> status <code>" or "stream <i> reset
 *                       <error code>" per request, in request order.
 *     request METHOD PATH [NAME VALUE]...
 *                       one request exactly as given (:scheme https except
 *                       for CONNECT, no :path when PATH is "", :authority =
 *                       --host unless given as a NAME; the client does no HTTP
 *                       validation), then a GET /echo on the same
 *                       connection; prints as for headers.
 *     slowbody PATH S   one POST PATH (content-length 100) with 3 bytes of
 *                       body and no END_STREAM, then a PING every 0.25 s for
 *                       S s (the connection is never silent, the stream is);
 *                       prints "stream 1 status <code> after <ms>", "stream
 *                       1 reset <code> after <ms>" or "stream 1 none", then
 *                       "goaway <code>" if one came and "closed" or "open".
 *     seq N MS PATH     N GET PATH one after another on one connection,
 *                       MS ms apart; prints "request <i> status <code>",
 *                       "request <i> reset", "request <i> refused" (GOAWAY
 *                       before it) or "request <i> closed" per request.
 *     body SPLIT PATH SPEC
 *                       one POST PATH on stream 1 made of the frames in
 *                       SPEC, comma separated: h (HEADERS, no
 *                       content-length), H (the same with END_STREAM), lN
 *                       (HEADERS with content-length N), dN (DATA of N
 *                       bytes), DN (DATA of N bytes with END_STREAM), T
 *                       (trailers with END_STREAM). SPLIT says how they are
 *                       written: one (everything in one write), two (the
 *                       first frame, 50 ms later the rest), last (all but
 *                       the last frame, 50 ms later the last one), frames
 *                       (one write per frame, 50 ms apart) or bytes (one
 *                       write per byte, 0.2 ms apart). Prints "status <code>", "reset
 *                       <code>" or "none", then "body_length <n>" as the
 *                       echo upstream reported it (-1 if not found).
 *     hpack N           HPACK amplification: a GET (stream 1) that puts one
 *                       4 KB field in the server's dynamic table, then N GET
 *                       header blocks (streams 3, 5, ...) each filling a
 *                       HEADERS and 8 CONTINUATION frames of 16 KB with
 *                       1-byte references to that field (147,456 fields,
 *                       600 MB decoded, per block). Prints "blocks <n>" (how
 *                       many were written before the server stopped
 *                       reading), "answered <n>" (abusive streams that got
 *                       HEADERS or RST_STREAM), "first <status>" (stream 1's
 *                       status), "goaway <code> last <id>" per GOAWAY and
 *                       "closed" or "open".
 * The floods write raw frames (HPACK literals without indexing); the
 * headers mode uses an nghttp2 client session. TLS with ALPN h2 to
 * 127.0.0.1, SNI = --host (default app.example.com), no verification
 * (a test client). Exit status: 0 when the connection ran to its end, 1 on
 * a usage or connection error. Each run is bounded by an alarm. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <sys/time.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nghttp2/nghttp2.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static SSL *tls_connect(int port, const char *host)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        perror("connect");
        return NULL;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_alpn_protos(ctx, (const unsigned char *)"\x02h2", 3);
    SSL *ssl = SSL_new(ctx);
    SSL_CTX_free(ctx);                  /* the SSL keeps its own reference */
    SSL_set_tlsext_host_name(ssl, host);
    SSL_set_fd(ssl, fd);
    if (SSL_connect(ssl) != 1) {
        ERR_print_errors_fp(stderr);
        return NULL;
    }
    const unsigned char *alpn = NULL;
    unsigned int alen = 0;
    SSL_get0_alpn_selected(ssl, &alpn, &alen);
    if (alen != 2 || memcmp(alpn, "h2", 2) != 0) {
        fprintf(stderr, "server did not select h2\n");
        return NULL;
    }
    return ssl;
}

static int write_all(SSL *ssl, const unsigned char *p, size_t n)
{
    while (n) {
        int w = SSL_write(ssl, p, (int)(n > 65536 ? 65536 : n));
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* ---- raw frames ---- */

struct out {
    unsigned char *p;
    size_t len, cap;
};

static void put(struct out *o, const void *d, size_t n)
{
    if (!n)
        return;
    if (o->len + n > o->cap) {
        o->cap = (o->len + n) * 2 + 1024;
        o->p = realloc(o->p, o->cap);
        if (!o->p)
            abort();
    }
    memcpy(o->p + o->len, d, n);
    o->len += n;
}

static void frame(struct out *o, uint8_t type, uint8_t flags, uint32_t sid, const void *pl, size_t n)
{
    unsigned char h[9] = { (unsigned char)(n >> 16), (unsigned char)(n >> 8), (unsigned char)n,
                           type, flags, (unsigned char)(sid >> 24), (unsigned char)(sid >> 16),
                           (unsigned char)(sid >> 8), (unsigned char)sid };
    put(o, h, 9);
    put(o, pl, n);
}

/* HPACK literal without indexing, new name; strings shorter than 127. */
static void lit(struct out *o, const char *name, const char *value)
{
    unsigned char b = 0;
    put(o, &b, 1);
    b = (unsigned char)strlen(name);
    put(o, &b, 1);
    put(o, name, strlen(name));
    b = (unsigned char)strlen(value);
    put(o, &b, 1);
    put(o, value, strlen(value));
}

static void request_block_path(struct out *o, const char *host, const char *path)
{
    static const unsigned char fixed[] = { 0x82, 0x87 };        /* GET, https */
    put(o, fixed, sizeof(fixed));
    if (strcmp(path, "/") == 0) {
        unsigned char b = 0x84;                                 /* :path / */
        put(o, &b, 1);
    } else {
        lit(o, ":path", path);
    }
    lit(o, ":authority", host);
}

static void request_block(struct out *o, const char *host)
{
    request_block_path(o, host, "/");
}

static void preface(struct out *o)
{
    put(o, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 24);
    frame(o, 0x4, 0, 0, NULL, 0);       /* empty SETTINGS */
}

/* Read frames until EOF, or 2 s of silence: report GOAWAY frames, count
 * response HEADERS, and say whether the server closed. */
static int linger_s = 2;

static int read_until_close(SSL *ssl)
{
    struct timeval tv = { linger_s, 0 };
    setsockopt(SSL_get_fd(ssl), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    bool timed_out = false;
    unsigned char buf[16384 + 9];
    unsigned char *acc = NULL;
    size_t alen = 0;
    long responses = 0, resets = 0;
    for (;;) {
        int n = SSL_read(ssl, buf, sizeof(buf));
        if (n <= 0) {
            int e = SSL_get_error(ssl, n);
            timed_out = n < 0 && (e == SSL_ERROR_WANT_READ ||
                                  (e == SSL_ERROR_SYSCALL && (errno == EAGAIN || errno == EWOULDBLOCK)));
            break;
        }
        acc = realloc(acc, alen + (size_t)n);
        if (!acc)
            abort();
        memcpy(acc + alen, buf, (size_t)n);
        alen += (size_t)n;
        size_t off = 0;
        while (alen - off >= 9) {
            size_t fl = ((size_t)acc[off] << 16) | ((size_t)acc[off + 1] << 8) | acc[off + 2];
            if (alen - off < 9 + fl)
                break;
            uint8_t type = acc[off + 3];
            const unsigned char *pl = acc + off + 9;
            if (type == 0x1)
                responses++;
            if (type == 0x3)
                resets++;
            if (type == 0x7 && fl >= 8) {
                uint32_t last = ((uint32_t)pl[0] << 24 | (uint32_t)pl[1] << 16 | (uint32_t)pl[2] << 8 | pl[3]) & 0x7fffffffu;
                uint32_t code = (uint32_t)pl[4] << 24 | (uint32_t)pl[5] << 16 | (uint32_t)pl[6] << 8 | pl[7];
                printf("goaway %u last %u\n", code, last);
            }
            off += 9 + fl;
        }
        memmove(acc, acc + off, alen - off);
        alen -= off;
    }
    free(acc);
    printf("responses %ld\nresets %ld\n%s\n", responses, resets, timed_out ? "open" : "closed");
    return 0;
}

static int mode_rapid(SSL *ssl, const char *host, long n)
{
    struct out o = { 0 };
    preface(&o);
    static const unsigned char cancel[4] = { 0, 0, 0, 0x8 };
    for (long i = 0; i < n; i++) {
        uint32_t sid = (uint32_t)(2 * i + 1);
        struct out hb = { 0 };
        request_block(&hb, host);
        frame(&o, 0x1, 0x5, sid, hb.p, hb.len);       /* HEADERS END_STREAM|END_HEADERS */
        frame(&o, 0x3, 0, sid, cancel, 4);             /* RST_STREAM CANCEL */
        free(hb.p);
        if (o.len > 65536) {
            if (write_all(ssl, o.p, o.len) != 0)
                break;                                 /* the server closed mid-burst */
            o.len = 0;
        }
    }
    if (o.len)
        write_all(ssl, o.p, o.len);
    free(o.p);
    return read_until_close(ssl);
}

/* N PINGs as fast as the socket takes them, reading nothing meanwhile (the
 * acks pile up on the server), then read what came. Writes give up after
 * 3 s without progress: the server stopped reading, which is a fine answer. */
static int mode_ping(SSL *ssl, long n)
{
    struct timeval tv = { 3, 0 };
    setsockopt(SSL_get_fd(ssl), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    struct out o = { 0 };
    preface(&o);
    static const unsigned char opaque[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
    long sent = 0;
    for (long i = 0; i < n; i++) {
        frame(&o, 0x6, 0, 0, opaque, 8);
        if (o.len > 65536 || i == n - 1) {
            if (write_all(ssl, o.p, o.len) != 0)
                break;
            sent = i + 1;
            o.len = 0;
        }
    }
    free(o.p);
    printf("pings %ld\n", sent);
    return read_until_close(ssl);
}

/* N requests for path at once, without waiting for the server's SETTINGS. */
static int mode_open(SSL *ssl, const char *host, long n, const char *path)
{
    if (strlen(path) > 100)
        return 1;
    struct out o = { 0 };
    preface(&o);
    for (long i = 0; i < n; i++) {
        struct out hb = { 0 };
        request_block_path(&hb, host, path);
        frame(&o, 0x1, 0x5, (uint32_t)(2 * i + 1), hb.p, hb.len);
        free(hb.p);
    }
    write_all(ssl, o.p, o.len);
    free(o.p);
    return read_until_close(ssl);
}

/* GET /echo on the given stream ids, in order (lower ids after higher
 * ones are what RFC 9113 5.1.1 makes a connection error). */
static int mode_ids(SSL *ssl, const char *host, const char *list)
{
    struct out o = { 0 };
    preface(&o);
    for (const char *p = list; *p;) {
        char *end;
        unsigned long sid = strtoul(p, &end, 10);
        if (end == p || sid == 0 || sid > 0x7fffffffUL) {
            free(o.p);
            return 1;
        }
        struct out hb = { 0 };
        request_block_path(&hb, host, "/echo");
        frame(&o, 0x1, 0x5, (uint32_t)sid, hb.p, hb.len);
        free(hb.p);
        p = *end == ',' ? end + 1 : end;
        if (*end && *end != ',') {
            free(o.p);
            return 1;
        }
    }
    write_all(ssl, o.p, o.len);
    free(o.p);
    return read_until_close(ssl);
}

/* One GET for path, then S seconds without reading (the default windows of
 * 64 KiB stay unacknowledged), then read what came. */
static int mode_noread(SSL *ssl, const char *host, const char *path, int secs)
{
    if (strlen(path) > 100 || secs < 1 || secs > 8)
        return 1;
    struct out o = { 0 };
    preface(&o);
    struct out hb = { 0 };
    request_block_path(&hb, host, path);
    frame(&o, 0x1, 0x5, 1, hb.p, hb.len);
    free(hb.p);
    write_all(ssl, o.p, o.len);
    free(o.p);
    sleep((unsigned)secs);
    return read_until_close(ssl);
}

/* HEADERS without END_HEADERS, then silence (a slowloris header block). */
static int mode_stall(SSL *ssl, const char *host)
{
    struct out o = { 0 };
    preface(&o);
    struct out hb = { 0 };
    request_block(&hb, host);
    frame(&o, 0x1, 0x1, 1, hb.p, hb.len);
    free(hb.p);
    write_all(ssl, o.p, o.len);
    free(o.p);
    return read_until_close(ssl);
}

static int mode_continuation(SSL *ssl, const char *host, long n)
{
    struct out o = { 0 };
    preface(&o);
    struct out hb = { 0 };
    request_block(&hb, host);
    frame(&o, 0x1, 0x1, 1, hb.p, hb.len);              /* HEADERS END_STREAM, no END_HEADERS */
    for (long i = 0; i < n; i++) {
        hb.len = 0;
        lit(&hb, "x-cont", "0123456789");
        frame(&o, 0x9, i == n - 1 ? 0x4 : 0, 1, hb.p, hb.len);
    }
    free(hb.p);
    write_all(ssl, o.p, o.len);
    free(o.p);
    return read_until_close(ssl);
}

/* The :status of a response header block that starts with it, as nghttp2
 * encodes it: indexed (static table 8..14), or a literal with the indexed
 * name :status and a plain or Huffman-coded 3-digit value. 0 if unknown. */
static int hpack_status(const unsigned char *pl, size_t fl)
{
    static const int st[] = { 200, 204, 206, 304, 400, 404, 500 };
    unsigned idx = pl[0] & 0x7f;
    if (pl[0] & 0x80)
        return idx >= 8 && idx <= 14 ? st[idx - 8] : 0;
    idx = (pl[0] & 0xc0) == 0x40 ? pl[0] & 0x3fu : pl[0] & 0x0fu;
    if (idx < 8 || idx > 14 || fl < 3)
        return 0;
    size_t vl = pl[1] & 0x7f;
    if (fl < 2 + vl || vl > 4)
        return 0;
    const unsigned char *v = pl + 2;
    if (!(pl[1] & 0x80))
        return vl == 3 ? atoi((const char *)v) : 0;   /* digits, then more fields */
    /* Huffman (RFC 7541 Appendix B): '0'-'2' are 5 bits 00000-00010,
     * '3'-'9' are 6 bits 011001-011111 */
    uint32_t bits = 0;
    for (size_t i = 0; i < vl; i++)
        bits = bits << 8 | v[i];
    int nbits = (int)vl * 8, pos = 0, code = 0;
    for (int d = 0; d < 3; d++) {
        if (pos + 5 > nbits)
            return 0;
        unsigned c5 = (bits >> (nbits - pos - 5)) & 0x1f;
        if (c5 <= 2) {
            code = code * 10 + (int)c5;
            pos += 5;
            continue;
        }
        if (pos + 6 > nbits)
            return 0;
        unsigned c6 = (bits >> (nbits - pos - 6)) & 0x3f;
        if (c6 < 0x19 || c6 > 0x1f)
            return 0;
        code = code * 10 + (int)(c6 - 0x19 + 3);
        pos += 6;
    }
    return code;
}

/* A POST whose body stops after 3 bytes on a connection kept busy with
 * PINGs: only a per-stream bound can end it. Reports the first HEADERS or
 * RST_STREAM on stream 1 and when it came. */
static int mode_slowbody(SSL *ssl, const char *host, const char *path, int secs, bool hold)
{
    if (strlen(path) > 100 || secs < 1 || secs > 20)
        return 1;
    struct out o = { 0 };
    struct out hb = { 0 };
    if (hold) {
        /* a GET whose response can never flow: stream windows of 1 byte,
         * never widened, while PINGs keep the connection busy */
        put(&o, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 24);
        static const unsigned char win1[6] = { 0, 4, 0, 0, 0, 1 };    /* INITIAL_WINDOW_SIZE 1 */
        frame(&o, 0x4, 0, 0, win1, 6);
        request_block_path(&hb, host, path);
        frame(&o, 0x1, 0x5, 1, hb.p, hb.len);          /* HEADERS END_STREAM|END_HEADERS */
    } else {
        preface(&o);
        static const unsigned char post[] = { 0x83, 0x87 };     /* POST, https */
        put(&hb, post, sizeof(post));
        lit(&hb, ":path", path);
        lit(&hb, ":authority", host);
        lit(&hb, "content-length", "100");
        frame(&o, 0x1, 0x4, 1, hb.p, hb.len);          /* HEADERS END_HEADERS */
        frame(&o, 0x0, 0, 1, "abc", 3);                /* DATA, no END_STREAM */
    }
    free(hb.p);
    if (write_all(ssl, o.p, o.len) != 0)
        return 1;
    struct timeval tv = { 0, 250000 };
    setsockopt(SSL_get_fd(ssl), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    struct timeval t0, t;
    gettimeofday(&t0, NULL);
    static const unsigned char opaque[8] = { 9, 9, 9, 9, 9, 9, 9, 9 };
    unsigned char buf[16384 + 9], *acc = NULL;
    size_t alen = 0;
    bool closed = false, seen = false;
    for (;;) {
        gettimeofday(&t, NULL);
        long ms = (t.tv_sec - t0.tv_sec) * 1000 + (t.tv_usec - t0.tv_usec) / 1000;
        if (ms > secs * 1000L)
            break;
        o.len = 0;
        frame(&o, 0x6, 0, 0, opaque, 8);
        if (write_all(ssl, o.p, o.len) != 0) {
            closed = true;
            break;
        }
        int n = SSL_read(ssl, buf, sizeof(buf));
        if (n <= 0) {
            int e = SSL_get_error(ssl, n);
            if (n < 0 && (e == SSL_ERROR_WANT_READ ||
                          (e == SSL_ERROR_SYSCALL && (errno == EAGAIN || errno == EWOULDBLOCK))))
                continue;
            closed = true;
            break;
        }
        acc = realloc(acc, alen + (size_t)n);
        if (!acc)
            abort();
        memcpy(acc + alen, buf, (size_t)n);
        alen += (size_t)n;
        size_t off = 0;
        while (alen - off >= 9) {
            size_t fl = ((size_t)acc[off] << 16) | ((size_t)acc[off + 1] << 8) | acc[off + 2];
            if (alen - off < 9 + fl)
                break;
            uint8_t type = acc[off + 3];
            uint32_t sid = ((uint32_t)acc[off + 5] << 24 | (uint32_t)acc[off + 6] << 16 |
                            (uint32_t)acc[off + 7] << 8 | acc[off + 8]) & 0x7fffffffu;
            const unsigned char *pl = acc + off + 9;
            if (sid == 1 && !seen && !hold && type == 0x1 && fl >= 1) {
                int code = hpack_status(pl, fl);
                printf("stream 1 status %d after %ld\n", code, ms);
                seen = true;
            }
            if (sid == 1 && hold && type == 0x1)
                printf("stream 1 headers after %ld\n", ms);
            if (sid == 1 && hold && type == 0x0 && (acc[off + 4] & 0x1))
                printf("stream 1 end after %ld\n", ms);
            if (sid == 1 && (hold || !seen) && type == 0x3 && fl >= 4) {
                printf("stream 1 reset %u after %ld\n",
                       (unsigned)((uint32_t)pl[0] << 24 | (uint32_t)pl[1] << 16 | (uint32_t)pl[2] << 8 | pl[3]), ms);
                seen = true;
            }
            if (type == 0x7 && fl >= 8)
                printf("goaway %u\n", (unsigned)((uint32_t)pl[4] << 24 | (uint32_t)pl[5] << 16 |
                                                 (uint32_t)pl[6] << 8 | pl[7]));
            off += 9 + fl;
        }
        memmove(acc, acc + off, alen - off);
        alen -= off;
    }
    free(acc);
    free(o.p);
    if (!seen)
        printf("stream 1 none\n");
    printf("%s\n", closed ? "closed" : "open");
    return 0;
}

/* Read frames until stream sid is answered (HEADERS: its status, or a
 * RST_STREAM), a GOAWAY leaves it out, or the connection ends. Returns
 * the status, -1 reset, -2 refused by GOAWAY, -3 closed or silent 5 s. */
static int seq_wait(SSL *ssl, uint32_t sid, bool *goaway_seen, uint32_t *goaway_last)
{
    static unsigned char acc[65536 + 9];
    static size_t alen;
    unsigned char buf[16384];
    for (;;) {
        size_t off = 0;
        while (alen - off >= 9) {
            size_t fl = ((size_t)acc[off] << 16) | ((size_t)acc[off + 1] << 8) | acc[off + 2];
            if (alen - off < 9 + fl)
                break;
            uint8_t type = acc[off + 3];
            uint32_t id = ((uint32_t)acc[off + 5] << 24 | (uint32_t)acc[off + 6] << 16 |
                           (uint32_t)acc[off + 7] << 8 | acc[off + 8]) & 0x7fffffffu;
            const unsigned char *pl = acc + off + 9;
            int res = 0;
            if (type == 0x7 && fl >= 8) {
                *goaway_seen = true;
                *goaway_last = ((uint32_t)pl[0] << 24 | (uint32_t)pl[1] << 16 |
                                (uint32_t)pl[2] << 8 | pl[3]) & 0x7fffffffu;
                if (*goaway_last < sid)
                    res = -2;
            }
            if (id == sid && type == 0x1 && fl >= 1)
                res = hpack_status(pl, fl);
            if (id == sid && type == 0x3)
                res = -1;
            off += 9 + fl;
            if (res) {
                memmove(acc, acc + off, alen - off);
                alen -= off;
                return res;
            }
        }
        memmove(acc, acc + off, alen - off);
        alen -= off;
        int n = SSL_read(ssl, buf, sizeof(buf));
        if (n <= 0)
            return -3;
        if (alen + (size_t)n > sizeof(acc))
            return -3;
        memcpy(acc + alen, buf, (size_t)n);
        alen += (size_t)n;
    }
}

static int mode_seq(SSL *ssl, const char *host, long n, long ms, const char *path)
{
    if (strlen(path) > 100 || n < 1 || n > 100 || ms < 0 || ms > 10000)
        return 1;
    struct timeval tv = { 5, 0 };
    setsockopt(SSL_get_fd(ssl), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    struct out o = { 0 };
    preface(&o);
    bool goaway = false, dead = false;
    uint32_t last = 0;
    for (long i = 0; i < n; i++) {
        uint32_t sid = (uint32_t)(2 * i + 1);
        const char *what = NULL;
        int st = 0;
        if (dead) {
            what = "closed";
        } else if (goaway && last < sid) {
            what = "refused";
        } else {
            struct out hb = { 0 };
            request_block_path(&hb, host, path);
            frame(&o, 0x1, 0x5, sid, hb.p, hb.len);
            free(hb.p);
            if (write_all(ssl, o.p, o.len) != 0)
                st = -3;
            else
                st = seq_wait(ssl, sid, &goaway, &last);
            o.len = 0;
            what = st == -1 ? "reset" : st == -2 ? "refused" : st == -3 ? "closed" : NULL;
            dead = st == -3;
        }
        if (what)
            printf("request %ld %s\n", i, what);
        else
            printf("request %ld status %d\n", i, st);
        fflush(stdout);
        if (i + 1 < n)
            usleep((useconds_t)ms * 1000);
    }
    free(o.p);
    return 0;
}

/* ---- hpack mode: a small block that decodes to a huge header list ---- */

/* HPACK integer with an n-bit prefix (RFC 7541 5.1); first carries the
 * representation's flag bits. */
static void hpack_int(struct out *o, unsigned char first, int n, size_t v)
{
    size_t max = ((size_t)1 << n) - 1;
    unsigned char b;
    if (v < max) {
        b = (unsigned char)(first | v);
        put(o, &b, 1);
        return;
    }
    b = (unsigned char)(first | max);
    put(o, &b, 1);
    for (v -= max; v >= 128; v >>= 7) {
        b = (unsigned char)(0x80 | (v & 0x7f));
        put(o, &b, 1);
    }
    b = (unsigned char)v;
    put(o, &b, 1);
}

static int mode_hpack(SSL *ssl, const char *host, long n)
{
    if (n < 1 || n > 1000)
        return 1;
    struct timeval tv = { 5, 0 };
    setsockopt(SSL_get_fd(ssl), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    struct out o = { 0 }, hb = { 0 };
    preface(&o);
    /* stream 1: x-a: 4000 bytes, literal with incremental indexing: the
     * entry (3 + 4000 + 32 bytes) fills the default 4096-byte table and
     * becomes dynamic index 62 */
    request_block(&hb, host);
    hpack_int(&hb, 0x40, 6, 0);
    hpack_int(&hb, 0, 7, 3);
    put(&hb, "x-a", 3);
    hpack_int(&hb, 0, 7, 4000);
    for (int i = 0; i < 4000; i++)
        put(&hb, "a", 1);
    frame(&o, 0x1, 0x5, 1, hb.p, hb.len);
    if (write_all(ssl, o.p, o.len) != 0)
        return 1;
    /* each abusive block: the usual GET fields, then 1-byte references
     * (0xbe = indexed 62) up to 9 frames of 16384 bytes, the most nghttp2
     * takes (8 CONTINUATION frames) */
    hb.len = 0;
    request_block(&hb, host);
    size_t total = 9 * 16384;
    while (hb.len < total) {
        unsigned char ref = 0xbe;
        put(&hb, &ref, 1);
    }
    long sent = 0;
    for (long i = 0; i < n; i++) {
        uint32_t sid = (uint32_t)(3 + 2 * i);
        o.len = 0;
        for (size_t off = 0, k = 0; off < total; off += 16384, k++) {
            uint8_t type = k == 0 ? 0x1 : 0x9;
            uint8_t flags = (k == 0 ? 0x1 : 0) | (off + 16384 >= total ? 0x4 : 0);
            frame(&o, type, flags, sid, hb.p + off, 16384);
        }
        if (write_all(ssl, o.p, o.len) != 0)
            break;                                      /* the server stopped reading */
        sent = i + 1;
    }
    free(hb.p);
    free(o.p);
    printf("blocks %ld\n", sent);
    fflush(stdout);
    /* what came back: stream 1's status, answers to the abusive streams,
     * GOAWAY; until the server closes or is silent for --linger s */
    tv.tv_sec = linger_s;
    setsockopt(SSL_get_fd(ssl), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    unsigned char buf[16384 + 9], *acc = NULL;
    size_t alen = 0;
    long answered = 0;
    int first = 0;
    bool closed = true;
    for (;;) {
        int r = SSL_read(ssl, buf, sizeof(buf));
        if (r <= 0) {
            int e = SSL_get_error(ssl, r);
            closed = !(r < 0 && (e == SSL_ERROR_WANT_READ ||
                                 (e == SSL_ERROR_SYSCALL && (errno == EAGAIN || errno == EWOULDBLOCK))));
            break;
        }
        acc = realloc(acc, alen + (size_t)r);
        if (!acc)
            abort();
        memcpy(acc + alen, buf, (size_t)r);
        alen += (size_t)r;
        size_t off = 0;
        while (alen - off >= 9) {
            size_t fl = ((size_t)acc[off] << 16) | ((size_t)acc[off + 1] << 8) | acc[off + 2];
            if (alen - off < 9 + fl)
                break;
            uint8_t type = acc[off + 3];
            uint32_t sid = ((uint32_t)acc[off + 5] << 24 | (uint32_t)acc[off + 6] << 16 |
                            (uint32_t)acc[off + 7] << 8 | acc[off + 8]) & 0x7fffffffu;
            const unsigned char *pl = acc + off + 9;
            if (sid == 1 && type == 0x1 && fl >= 1 && !first)
                first = hpack_status(pl, fl);
            if (sid > 1 && (type == 0x1 || type == 0x3))
                answered++;
            if (type == 0x7 && fl >= 8) {
                uint32_t last = ((uint32_t)pl[0] << 24 | (uint32_t)pl[1] << 16 |
                                 (uint32_t)pl[2] << 8 | pl[3]) & 0x7fffffffu;
                uint32_t code = (uint32_t)pl[4] << 24 | (uint32_t)pl[5] << 16 |
                                (uint32_t)pl[6] << 8 | pl[7];
                printf("goaway %u last %u\n", code, last);
            }
            off += 9 + fl;
        }
        memmove(acc, acc + off, alen - off);
        alen -= off;
    }
    free(acc);
    printf("answered %ld\nfirst %d\n%s\n", answered, first, closed ? "closed" : "open");
    return 0;
}

/* ---- body mode: a request body framed and split as told ---- */

static int body_frames(struct out *o, const char *host, const char *path, const char *spec,
                       size_t *first_end, size_t *last_start)
{
    char buf[256];
    if (strlen(spec) >= sizeof(buf))
        return -1;
    strcpy(buf, spec);
    size_t total = 0;
    *first_end = *last_start = 0;
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        long n = atol(tok + 1);
        size_t start = o->len;
        struct out hb = { 0 };
        static const unsigned char post[] = { 0x83, 0x87 };     /* POST, https */
        switch (tok[0]) {
        case 'h':
        case 'H':
        case 'l':
            put(&hb, post, sizeof(post));
            lit(&hb, ":path", path);
            lit(&hb, ":authority", host);
            lit(&hb, "content-type", "application/octet-stream");
            if (tok[0] == 'l')
                lit(&hb, "content-length", tok + 1);
            frame(o, 0x1, tok[0] == 'H' ? 0x5 : 0x4, 1, hb.p, hb.len);
            break;
        case 'T':
            lit(&hb, "x-trailer", "1");
            frame(o, 0x1, 0x5, 1, hb.p, hb.len);
            break;
        case 'd':
        case 'D': {
            /* within the default windows and the default frame size */
            if (n < 0 || n > 16384 || (total += (size_t)n) > 60000)
                return -1;
            unsigned char *d = malloc((size_t)n + 1);
            for (long i = 0; i < n; i++)
                d[i] = (unsigned char)('a' + i % 26);
            frame(o, 0x0, tok[0] == 'D' ? 0x1 : 0, 1, d, (size_t)n);
            free(d);
            break;
        }
        default:
            return -1;
        }
        free(hb.p);
        if (!*first_end)
            *first_end = o->len;
        *last_start = start;
    }
    return 0;
}

static int mode_body(SSL *ssl, const char *host, const char *split, const char *path,
                     const char *spec)
{
    if (strlen(path) > 100)
        return 1;
    struct out o = { 0 }, fr = { 0 };
    preface(&o);
    size_t first_end = 0, last_start = 0;
    if (body_frames(&fr, host, path, spec, &first_end, &last_start) != 0) {
        fprintf(stderr, "mg_h2flood: bad body spec\n");
        return 1;
    }
    int rc = 0;
    if (strcmp(split, "one") == 0) {
        put(&o, fr.p, fr.len);
        rc = write_all(ssl, o.p, o.len);
    } else if (strcmp(split, "two") == 0 || strcmp(split, "last") == 0) {
        size_t cut = split[0] == 't' ? first_end : last_start;
        put(&o, fr.p, cut);
        rc = write_all(ssl, o.p, o.len);
        usleep(50000);
        if (!rc)
            rc = write_all(ssl, fr.p + cut, fr.len - cut);
    } else if (strcmp(split, "frames") == 0) {
        rc = write_all(ssl, o.p, o.len);
        for (size_t off = 0; !rc && off < fr.len;) {
            size_t fl = ((size_t)fr.p[off] << 16 | (size_t)fr.p[off + 1] << 8 | fr.p[off + 2]) + 9;
            usleep(50000);
            rc = write_all(ssl, fr.p + off, fl);
            off += fl;
        }
    } else if (strcmp(split, "bytes") == 0) {
        rc = write_all(ssl, o.p, o.len);
        for (size_t off = 0; !rc && off < fr.len; off++) {
            usleep(200);
            rc = write_all(ssl, fr.p + off, 1);
        }
    } else {
        rc = -1;
    }
    free(o.p);
    free(fr.p);
    if (rc != 0) {
        fprintf(stderr, "mg_h2flood: write failed\n");
        return 1;
    }
    /* the response of stream 1: its status, its DATA up to END_STREAM */
    struct timeval tv = { 10, 0 };
    setsockopt(SSL_get_fd(ssl), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    unsigned char buf[16384 + 9], *acc = NULL;
    struct out body = { 0 };
    size_t alen = 0;
    int status = 0;
    long reset = -1;
    bool done = false;
    while (!done) {
        int n = SSL_read(ssl, buf, sizeof(buf));
        if (n <= 0)
            break;
        acc = realloc(acc, alen + (size_t)n);
        if (!acc)
            abort();
        memcpy(acc + alen, buf, (size_t)n);
        alen += (size_t)n;
        size_t off = 0;
        while (!done && alen - off >= 9) {
            size_t fl = ((size_t)acc[off] << 16) | ((size_t)acc[off + 1] << 8) | acc[off + 2];
            if (alen - off < 9 + fl)
                break;
            uint8_t type = acc[off + 3], flags = acc[off + 4];
            uint32_t sid = ((uint32_t)acc[off + 5] << 24 | (uint32_t)acc[off + 6] << 16 |
                            (uint32_t)acc[off + 7] << 8 | acc[off + 8]) & 0x7fffffffu;
            const unsigned char *pl = acc + off + 9;
            if (sid == 1 && type == 0x1 && fl >= 1 && (status == 0 || status == 100))
                status = hpack_status(pl, fl);
            if (sid == 1 && type == 0x0)
                put(&body, pl, fl);
            if (sid == 1 && (type == 0x0 || type == 0x1) && (flags & 0x1))
                done = true;
            if (sid == 1 && type == 0x3 && fl >= 4) {
                reset = (long)((uint32_t)pl[0] << 24 | (uint32_t)pl[1] << 16 |
                               (uint32_t)pl[2] << 8 | pl[3]);
                done = true;
            }
            if (type == 0x7 && fl >= 8)
                printf("goaway %u\n", (unsigned)((uint32_t)pl[4] << 24 | (uint32_t)pl[5] << 16 |
                                                 (uint32_t)pl[6] << 8 | pl[7]));
            off += 9 + fl;
        }
        memmove(acc, acc + off, alen - off);
        alen -= off;
    }
    free(acc);
    if (status)
        printf("status %d\n", status);
    else if (reset >= 0)
        printf("reset %ld\n", reset);
    else
        printf("none\n");
    long blen = -1;
    put(&body, "", 1);
    const char *bl = body.p ? strstr((const char *)body.p, "\"body_length\":") : NULL;
    if (bl)
        blen = atol(bl + strlen("\"body_length\":"));
    printf("body_length %ld\n", blen);
    free(body.p);
    return 0;
}

/* ---- headers mode: an nghttp2 client session ---- */

struct hm {
    SSL *ssl;
    int n, open;
    int32_t ids[64];
    int status[64];
    uint32_t reset[64];
};

static int slot_of(struct hm *m, int32_t id)
{
    for (int i = 0; i < m->n; i++)
        if (m->ids[i] == id)
            return i;
    return -1;
}

static ssize_t hm_send(nghttp2_session *s, const uint8_t *d, size_t n, int fl, void *u)
{
    (void)s;
    (void)fl;
    struct hm *m = u;
    return write_all(m->ssl, d, n) == 0 ? (ssize_t)n : NGHTTP2_ERR_CALLBACK_FAILURE;
}

static int hm_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name, size_t nl,
                     const uint8_t *value, size_t vl, uint8_t fl, void *u)
{
    (void)s;
    (void)fl;
    struct hm *m = u;
    int i = slot_of(m, f->hd.stream_id);
    if (i >= 0 && nl == 7 && memcmp(name, ":status", 7) == 0 && vl == 3)
        m->status[i] = atoi((const char *)value);
    return 0;
}

static int hm_close(nghttp2_session *s, int32_t id, uint32_t err, void *u)
{
    (void)s;
    struct hm *m = u;
    int i = slot_of(m, id);
    if (i >= 0) {
        m->reset[i] = err;
        m->open--;
    }
    return 0;
}

static nghttp2_session *hm_session(struct hm *m)
{
    nghttp2_session_callbacks *cb;
    nghttp2_session_callbacks_new(&cb);
    nghttp2_session_callbacks_set_send_callback(cb, hm_send);
    nghttp2_session_callbacks_set_on_header_callback(cb, hm_header);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, hm_close);
    nghttp2_option *opt;
    nghttp2_option_new(&opt);
    nghttp2_option_set_no_http_messaging(opt, 1);   /* send what we are told */
    nghttp2_session *s;
    nghttp2_session_client_new2(&s, cb, m, opt);
    nghttp2_option_del(opt);
    nghttp2_session_callbacks_del(cb);
    nghttp2_submit_settings(s, NGHTTP2_FLAG_NONE, NULL, 0);
    return s;
}

/* Run until every stream of m closed; print their outcomes. */
static int hm_run(struct hm *m, nghttp2_session *s)
{
    int rc = 0;
    unsigned char buf[16384];
    while (m->open > 0) {
        if (nghttp2_session_send(s) != 0) {
            rc = 1;
            break;
        }
        int r = SSL_read(m->ssl, buf, sizeof(buf));
        if (r <= 0 || nghttp2_session_mem_recv(s, buf, (size_t)r) < 0) {
            rc = 1;
            break;
        }
    }
    for (int i = 0; i < m->n; i++) {
        if (m->status[i])
            printf("stream %d status %d\n", i, m->status[i]);
        else
            printf("stream %d reset %u\n", i, m->reset[i]);
    }
    nghttp2_session_del(s);
    return rc;
}

#define NV(k, v) { (uint8_t *)(k), (uint8_t *)(v), strlen(k), strlen(v), NGHTTP2_NV_FLAG_NONE }

static int mode_request(SSL *ssl, const char *host, int argc, char **argv)
{
    if (argc < 2 || argc % 2 != 0 || argc > 40)
        return 1;
    struct hm m = { .ssl = ssl, .n = 2, .open = 2 };
    nghttp2_session *s = hm_session(&m);
    nghttp2_nv nv[24];
    size_t n = 0;
    bool has_auth = false;
    nv[n++] = (nghttp2_nv)NV(":method", argv[0]);
    if (strcmp(argv[0], "CONNECT") != 0)       /* RFC 9113 8.5: CONNECT has no :scheme */
        nv[n++] = (nghttp2_nv)NV(":scheme", "https");
    if (argv[1][0])
        nv[n++] = (nghttp2_nv)NV(":path", argv[1]);
    for (int pseudo = 1; pseudo >= 0; pseudo--) {      /* pseudo-headers first */
        for (int i = 2; i + 1 < argc; i += 2) {
            if ((argv[i][0] == ':') != pseudo)
                continue;
            has_auth = has_auth || strcmp(argv[i], ":authority") == 0;
            nv[n++] = (nghttp2_nv)NV(argv[i], argv[i + 1]);
        }
        if (pseudo && !has_auth)
            nv[n++] = (nghttp2_nv)NV(":authority", host);
    }
    m.ids[0] = nghttp2_submit_request(s, NULL, nv, n, NULL, NULL);
    nghttp2_nv ok[] = { NV(":method", "GET"), NV(":scheme", "https"), NV(":path", "/echo"),
                        NV(":authority", host) };
    m.ids[1] = nghttp2_submit_request(s, NULL, ok, 4, NULL, NULL);
    return hm_run(&m, s);
}

static int mode_headers(SSL *ssl, const char *host, int n, int big_at, long big)
{
    if (n < 1 || n > 64 || big < 1 || big > 1 << 20)
        return 1;
    struct hm m = { .ssl = ssl, .n = n, .open = n };
    nghttp2_session *s = hm_session(&m);
    char *bigv = malloc((size_t)big + 1);
    memset(bigv, 'a', (size_t)big);
    bigv[big] = '\0';
    for (int i = 0; i < n; i++) {
        nghttp2_nv nv[] = { NV(":method", "GET"), NV(":scheme", "https"), NV(":path", "/echo"),
                            NV(":authority", host), NV("x-big", bigv) };
        m.ids[i] = nghttp2_submit_request(s, NULL, nv, i == big_at ? 5 : 4, NULL, NULL);
        m.status[i] = 0;
        m.reset[i] = 0;
    }
    int rc = hm_run(&m, s);
    free(bigv);
    return rc;
}

int main(int argc, char **argv)
{
    int port = 0;
    const char *host = "app.example.com";
    int i = 1;
    for (; i + 1 < argc && argv[i][0] == '-'; i += 2) {
        if (strcmp(argv[i], "--port") == 0)
            port = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--host") == 0)
            host = argv[i + 1];
        else if (strcmp(argv[i], "--linger") == 0)
            linger_s = atoi(argv[i + 1]);
        else
            break;
    }
    if (!port || i >= argc || strlen(host) > 100) {
        fprintf(stderr, "usage: mg_h2flood --port P [--host NAME] [--linger S] rapid N | continuation N | stall | open N PATH | ids ID,ID,... | noread PATH S | slowbody PATH S | seq N MS PATH | ping N | "
                        "body SPLIT PATH SPEC | hpack N | "
                        "headers N K BIG | request METHOD PATH [NAME VALUE]...\n");
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    if (linger_s < 1 || linger_s > 8)
        linger_s = 2;
    alarm((unsigned)linger_s + 26);
    SSL *ssl = tls_connect(port, host);
    if (!ssl)
        return 1;
    const char *mode = argv[i];
    long a = i + 1 < argc ? atol(argv[i + 1]) : 0;
    int rc = 1;
    if (strcmp(mode, "rapid") == 0 && a > 0)
        rc = mode_rapid(ssl, host, a);
    else if (strcmp(mode, "open") == 0 && a > 0 && a < 100000 && i + 2 < argc)
        rc = mode_open(ssl, host, a, argv[i + 2]);
    else if (strcmp(mode, "ids") == 0 && i + 1 < argc)
        rc = mode_ids(ssl, host, argv[i + 1]);
    else if (strcmp(mode, "ping") == 0 && a > 0)
        rc = mode_ping(ssl, a);
    else if (strcmp(mode, "noread") == 0 && i + 2 < argc)
        rc = mode_noread(ssl, host, argv[i + 1], atoi(argv[i + 2]));
    else if (strcmp(mode, "slowbody") == 0 && i + 2 < argc)
        rc = mode_slowbody(ssl, host, argv[i + 1], atoi(argv[i + 2]), false);
    else if (strcmp(mode, "hold") == 0 && i + 2 < argc)
        rc = mode_slowbody(ssl, host, argv[i + 1], atoi(argv[i + 2]), true);
    else if (strcmp(mode, "seq") == 0 && i + 3 < argc)
        rc = mode_seq(ssl, host, a, atol(argv[i + 2]), argv[i + 3]);
    else if (strcmp(mode, "hpack") == 0 && a > 0)
        rc = mode_hpack(ssl, host, a);
    else if (strcmp(mode, "body") == 0 && i + 3 < argc)
        rc = mode_body(ssl, host, argv[i + 1], argv[i + 2], argv[i + 3]);
    else if (strcmp(mode, "stall") == 0)
        rc = mode_stall(ssl, host);
    else if (strcmp(mode, "continuation") == 0 && a > 0)
        rc = mode_continuation(ssl, host, a);
    else if (strcmp(mode, "request") == 0)
        rc = mode_request(ssl, host, argc - i - 1, argv + i + 1);
    else if (strcmp(mode, "headers") == 0 && i + 3 < argc)
        rc = mode_headers(ssl, host, (int)a, atoi(argv[i + 2]), atol(argv[i + 3]));
    else
        fprintf(stderr, "mg_h2flood: bad mode or arguments\n");
    fflush(stdout);
    int fd = SSL_get_fd(ssl);
    SSL_free(ssl);
    close(fd);
    return rc;
}
