/* mg_h2ws.c - a WebSocket client over HTTP/2 (RFC 8441) for the tests:
 *
 *   mg_h2ws PORT CAFILE PATH [--bytes N] [--header 'name: value']...
 *
 * Connects to 127.0.0.1:PORT with TLS (SNI app.example.com, verified
 * against CAFILE, ALPN h2), checks
 * that the server offers SETTINGS_ENABLE_CONNECT_PROTOCOL, sends an
 * extended CONNECT (:protocol websocket) for PATH, and when it is answered
 * 200 sends N bytes in masked binary frames of 64 KiB while reading the
 * echo and comparing it with what it sent, then the close handshake.
 * Prints one result per line: "connect-protocol 0|1", "status NNN",
 * "echo N intact|corrupt|short", "close ok|none". Exits 0 unless the
 * connection itself failed. Bounded: 30 s in all. */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <nghttp2/nghttp2.h>
#include <openssl/ssl.h>

#define FRAME_MAX 65535             /* the 16-bit length form */

struct st {
    int fd;
    SSL *ssl;
    nghttp2_session *ng;
    int32_t id;
    int status;
    uint64_t total, sent, echoed;
    uint32_t tx_rng, rx_rng;            /* the payload is a known sequence both ways */
    bool corrupt, close_queued, close_got, stream_closed;
    uint32_t close_code;
    unsigned char stage[FRAME_MAX + 14];
    size_t stage_len, stage_off;
    unsigned char *rx;                  /* frame bytes received, not yet parsed */
    size_t rx_len, rx_cap;
};

static uint8_t next_byte(uint32_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 17;
    *x ^= *x << 5;
    return (uint8_t)*x;
}

static void stage_frame(struct st *s, unsigned char op, const unsigned char *p, size_t n, bool gen)
{
    unsigned char *f = s->stage;
    size_t h = 0;
    f[h++] = (unsigned char)(0x80 | op);
    if (n < 126) {
        f[h++] = (unsigned char)(0x80 | n);
    } else {
        f[h++] = 0x80 | 126;
        f[h++] = (unsigned char)(n >> 8);
        f[h++] = (unsigned char)n;
    }
    unsigned char mask[4] = { 0x12, 0x34, 0x56, (unsigned char)(s->sent & 0xff) };
    memcpy(f + h, mask, 4);
    h += 4;
    for (size_t i = 0; i < n; i++) {
        unsigned char b = gen ? next_byte(&s->tx_rng) : p[i];
        f[h + i] = b ^ mask[i & 3];
    }
    s->stage_len = h + n;
    s->stage_off = 0;
}

static ssize_t read_cb(nghttp2_session *ng, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
                       nghttp2_data_source *src, void *ud)
{
    (void)ng;
    (void)id;
    (void)src;
    struct st *s = ud;
    if (s->stage_off == s->stage_len) {
        if (s->sent < s->total) {
            size_t n = s->total - s->sent < FRAME_MAX ? (size_t)(s->total - s->sent) : FRAME_MAX;
            stage_frame(s, 2, NULL, n, true);
            s->sent += n;
        } else if (s->echoed >= s->total && !s->close_queued) {
            unsigned char code[2] = { 0x03, 0xe8 };     /* 1000 normal closure */
            stage_frame(s, 8, code, 2, false);
            s->close_queued = true;
        } else if (s->close_queued && s->close_got) {
            *flags |= NGHTTP2_DATA_FLAG_EOF;
            return 0;
        } else {
            return NGHTTP2_ERR_DEFERRED;
        }
    }
    size_t n = s->stage_len - s->stage_off < len ? s->stage_len - s->stage_off : len;
    memcpy(buf, s->stage + s->stage_off, n);
    s->stage_off += n;
    return (ssize_t)n;
}

/* Server frames are unmasked; payload checked against the sequence. */
static void parse_rx(struct st *s)
{
    size_t off = 0;
    for (;;) {
        unsigned char *f = s->rx + off;
        size_t avail = s->rx_len - off;
        if (avail < 2)
            break;
        uint64_t n = f[1] & 0x7f;
        size_t h = 2;
        if (n == 126) {
            if (avail < 4)
                break;
            n = (uint64_t)f[2] << 8 | f[3];
            h = 4;
        } else if (n == 127) {
            if (avail < 10)
                break;
            n = 0;
            for (int i = 0; i < 8; i++)
                n = n << 8 | f[2 + i];
            h = 10;
        }
        if (avail < h + n)
            break;
        int op = f[0] & 0x0f;
        if (op == 8) {
            s->close_got = true;
        } else if (op == 2) {
            for (uint64_t i = 0; i < n; i++)
                if (f[h + i] != next_byte(&s->rx_rng))
                    s->corrupt = true;
            s->echoed += n;
        }
        off += h + (size_t)n;
    }
    memmove(s->rx, s->rx + off, s->rx_len - off);
    s->rx_len -= off;
    nghttp2_session_resume_data(s->ng, s->id);
}

static int on_data(nghttp2_session *ng, uint8_t flags, int32_t id, const uint8_t *d, size_t len,
                   void *ud)
{
    (void)ng;
    (void)flags;
    struct st *s = ud;
    if (id != s->id)
        return 0;
    if (s->rx_len + len > s->rx_cap) {
        s->rx_cap = (s->rx_len + len) * 2;
        s->rx = realloc(s->rx, s->rx_cap);
        if (!s->rx)
            abort();
    }
    memcpy(s->rx + s->rx_len, d, len);
    s->rx_len += len;
    parse_rx(s);
    return 0;
}

static int on_header(nghttp2_session *ng, const nghttp2_frame *f, const uint8_t *name, size_t nl,
                     const uint8_t *value, size_t vl, uint8_t flags, void *ud)
{
    (void)ng;
    (void)flags;
    struct st *s = ud;
    if (f->hd.stream_id == s->id && nl == 7 && memcmp(name, ":status", 7) == 0) {
        char b[8] = "";
        memcpy(b, value, vl < 7 ? vl : 7);
        s->status = atoi(b);
    }
    return 0;
}

static int on_close(nghttp2_session *ng, int32_t id, uint32_t code, void *ud)
{
    (void)ng;
    struct st *s = ud;
    if (id == s->id) {
        s->stream_closed = true;
        s->close_code = code;
    }
    return 0;
}

static int on_frame(nghttp2_session *ng, const nghttp2_frame *f, void *ud)
{
    (void)ng;
    (void)ud;
    if (f->hd.type == NGHTTP2_RST_STREAM)
        printf("rst-received %u\n", f->rst_stream.error_code);
    return 0;
}

static int on_error(nghttp2_session *ng, int code, const char *msg, size_t len, void *ud)
{
    (void)ng;
    (void)code;
    (void)ud;
    fprintf(stderr, "mg_h2ws: nghttp2: %.*s\n", (int)len, msg);
    return 0;
}

static ssize_t send_cb(nghttp2_session *ng, const uint8_t *d, size_t len, int flags, void *ud)
{
    (void)ng;
    (void)flags;
    struct st *s = ud;
    int n = SSL_write(s->ssl, d, (int)len);
    return n > 0 ? n : NGHTTP2_ERR_CALLBACK_FAILURE;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: mg_h2ws PORT CAFILE PATH [--bytes N] [--header 'name: value']...\n");
        return 2;
    }
    struct st s = { .fd = -1, .tx_rng = 2463534242u, .rx_rng = 2463534242u };
    nghttp2_nv nv[32];
    size_t n = 0;
#define NV(k, v) (nghttp2_nv){ (uint8_t *)(k), (uint8_t *)(v), strlen(k), strlen(v), 0 }
    nv[n++] = NV(":method", "CONNECT");
    nv[n++] = NV(":protocol", "websocket");
    nv[n++] = NV(":scheme", "http");
    nv[n++] = NV(":path", argv[3]);
    nv[n++] = NV(":authority", "app.example.com");
    nv[n++] = NV("sec-websocket-version", "13");
    for (int i = 4; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--bytes") == 0) {
            s.total = strtoull(argv[i + 1], NULL, 10);
        } else if (strcmp(argv[i], "--header") == 0 && n < 32) {
            char *c = strchr(argv[i + 1], ':');
            if (!c)
                continue;
            *c = '\0';
            char *v = c + 1;
            while (*v == ' ')
                v++;
            nv[n++] = NV(argv[i + 1], v);
        }
    }
    s.fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[1])) };
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    if (s.fd < 0 || connect(s.fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        perror("connect");
        return 1;
    }
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    static const unsigned char alpn[] = "\x02h2";
    if (!ctx || SSL_CTX_load_verify_locations(ctx, argv[2], NULL) != 1 ||
        SSL_CTX_set_alpn_protos(ctx, alpn, sizeof alpn - 1) != 0)
        return 1;
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    s.ssl = SSL_new(ctx);
    SSL_set_tlsext_host_name(s.ssl, "app.example.com");
    SSL_set1_host(s.ssl, "app.example.com");
    SSL_set_fd(s.ssl, s.fd);
    const unsigned char *sel = NULL;
    unsigned int sl = 0;
    if (SSL_connect(s.ssl) != 1 || (SSL_get0_alpn_selected(s.ssl, &sel, &sl), sl != 2)) {
        fprintf(stderr, "mg_h2ws: TLS handshake or ALPN h2 failed\n");
        return 1;
    }
    nghttp2_session_callbacks *cb;
    nghttp2_session_callbacks_new(&cb);
    nghttp2_session_callbacks_set_send_callback(cb, send_cb);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data);
    nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_close);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame);
    nghttp2_session_callbacks_set_error_callback2(cb, on_error);
    nghttp2_session_client_new(&s.ng, cb, &s);
    nghttp2_session_callbacks_del(cb);
    nghttp2_submit_settings(s.ng, NGHTTP2_FLAG_NONE, NULL, 0);
    time_t end = time(NULL) + 30;
    bool asked = false, printed = false;
    while (time(NULL) < end && !s.stream_closed) {
        if (!asked && nghttp2_session_get_remote_settings(s.ng, NGHTTP2_SETTINGS_ENABLE_CONNECT_PROTOCOL)) {
            printf("connect-protocol 1\n");
            nghttp2_data_provider dp = { .read_callback = read_cb };
            s.id = nghttp2_submit_request(s.ng, NULL, nv, n, &dp, &s);
            asked = true;
        }
        if (s.status && !printed) {
            printf("status %d\n", s.status);
            printed = true;
        }
        if (nghttp2_session_send(s.ng) != 0)
            break;
        struct pollfd p = { .fd = s.fd, .events = POLLIN };
        if (!SSL_pending(s.ssl) && poll(&p, 1, 200) <= 0)
            continue;
        uint8_t buf[65536];
        int r = SSL_read(s.ssl, buf, sizeof buf);
        if (r <= 0)
            break;
        if (nghttp2_session_mem_recv(s.ng, buf, (size_t)r) < 0)
            break;
    }
    if (!asked)
        printf("connect-protocol 0\n");
    if (s.status && !printed)
        printf("status %d\n", s.status);
    else if (!s.status)
        printf("status none\n");
    if (s.status == 200) {
        printf("echo %llu %s\n", (unsigned long long)s.echoed,
               s.corrupt ? "corrupt" : s.echoed == s.total ? "intact" : "short");
        printf("close %s\n", s.close_got ? "ok" : "none");
        if (s.close_code)
            printf("reset %u\n", s.close_code);
    }
    nghttp2_session_del(s.ng);
    free(s.rx);
    SSL_free(s.ssl);
    SSL_CTX_free(ctx);
    close(s.fd);
    return 0;
}
