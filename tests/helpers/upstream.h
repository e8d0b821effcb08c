/* upstream.h - internals shared by the two files of the test upstream
 * (mg_upstream.c: connections, HTTP/1 parsing, main; mg_upstream_resp.c:
 * the answers; mg_upstream_h2.c: HTTP/2). Only these files include it. */
#ifndef MG_TEST_UPSTREAM_H
#define MG_TEST_UPSTREAM_H
#include <stdbool.h>
#include <stdint.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include "base/base.h"

#define MAX_LINE (64 * 1024)        /* request line, header line, chunk size line */
#define MAX_HEAD (256 * 1024)       /* all header lines of one request */
#define MAX_HEADERS 500
#define MAX_SLOW_MS 60000
#define MAX_BYTES (UINT64_C(1) << 36)
#define MAX_FILE (64u << 20)
#define MAX_RESP_HEADERS 32
#define READ_HIGH_WATER (1u << 20)  /* back-pressure while a response is pending */
#define WRITE_LOW_WATER (64u * 1024)
#define FILL_CHUNK (16u * 1024)
#define IDLE_TIMEOUT_S 120

struct server {
    struct event_base *base;
    SSL_CTX *ssl_ctx;
    const char *name;
    char *serve_dir;                /* realpath of --serve, or NULL */
    bool h2;                        /* --h2: ALPN h2 and prior-knowledge h2c */
    int status;                     /* --status NNN: every request gets it (0 = off) */
    bool expect_proxy;              /* --expect-proxy: read a PROXY protocol header first */
    bool log_headers;               /* --log-headers: each request's headers on stderr */
    struct conn *conns;             /* every live connection, freed at exit */
};

enum state {
    S_LINE, S_HEADERS, S_BODY, S_CHUNK_SIZE, S_CHUNK_DATA, S_CHUNK_END, S_TRAILERS,
    S_RESPOND,                      /* request complete, response pending or streaming */
    S_CLOSING,                      /* last response queued; free once written */
    S_WS,                           /* a WebSocket echo after the 101 (mg_upstream_ws.c) */
};

/* One request as the echo reports it (HTTP/1 connection or HTTP/2 stream). */
struct up_req {
    char *method, *target;          /* owned; target = :path for HTTP/2 */
    const char *version;            /* "HTTP/1.0", "HTTP/1.1", "HTTP/2" */
    struct mg_buf headers_json;     /* ["name","value"],... in arrival order */
    size_t nheaders, head_bytes;
    uint64_t body_len;
    EVP_MD_CTX *sha;                /* over the request body */
    unsigned long nreq;             /* 1, 2, ... on its connection */
};

struct h2;                          /* mg_upstream_h2.c */

struct conn {
    struct server *srv;
    struct conn *prev, *next;
    struct bufferevent *bev;
    struct event *timer;
    bool tls;
    char peer[64];
    /* --expect-proxy: the echo's members "proxy":"vN" (or null when the
     * connection came without a header), "proxy_source":"IP:PORT",
     * "proxy_destination":"IP:PORT"; "" without --expect-proxy */
    char proxy_json[256];
    unsigned long nreq;             /* requests seen on this connection */
    struct h2 *h2;                  /* non-NULL once the connection speaks HTTP/2 */
    bool proto_known;               /* HTTP/1 vs HTTP/2 decided */
    enum state st;
    /* the HTTP/1 request being read */
    struct up_req rq;
    int minor;
    bool chunked, has_cl, conn_close, conn_keepalive, expect_continue;
    char *ws_key;                   /* Sec-WebSocket-Key, NULL = none */
    bool ws_v13;                    /* Sec-WebSocket-Version: 13 */
    uint64_t content_length, remaining;
    /* the response */
    bool keepalive;
    uint64_t send_left, send_total;
    bool send_chunked;
};

/* Append s[0..n) as a JSON string (quotes included, non-ASCII escaped). */
void mg_up_json_str(struct mg_buf *b, const char *s, size_t n);
/* The value of a hex digit, or -1. */
/* Forget the current request and wait for the next one. */
void mg_up_request_reset(struct conn *c);
/* Unlink and free c; abrupt = no TLS close_notify (for /close and errors). */
void mg_up_conn_free(struct conn *c, bool abrupt);
/* The request (head and body) is complete: answer it. May free c (/close). */
void mg_up_dispatch(struct conn *c);
/* Answer status with a short text body and close the connection. */
void mg_up_bad_request(struct conn *c, int status, const char *why);
/* Queue more of a /bytes body (called from the write callback). */
void mg_up_fill_bytes(struct conn *c);

/* WebSocket (mg_upstream_ws.c): answer a /ws... request that carries a
 * Sec-WebSocket-Key (true: handled, the connection is an echo from now
 * on, or refused 400); read frames in state S_WS. */
bool mg_up_ws_accept(struct conn *c);
void mg_up_ws_read(struct conn *c);

/* Shared by both protocols (mg_upstream_resp.c). */
/* The echo JSON for rq on c (finalizes rq->sha). Caller frees. */
char *mg_up_echo_json(struct conn *c, struct up_req *rq);
/* "Name: value\r\n" lines from ?resp-header= in target, or NULL. Caller frees. */
char *mg_up_resp_headers(const char *target);
/* The raw value of query parameter key, walking repeats with *from (start NULL). */
const char *mg_up_query_next(const char *q, const char *key, size_t *len, const char **from);
/* Read REL under --serve: 0 with *data (caller frees), *len, *ctype; -1 = 404. */
int mg_up_file_read(struct server *srv, const char *rel, char **data, size_t *len, const char **ctype);
/* Fill dst with the /bytes pattern continuing at offset off. */
void mg_up_pattern(char *dst, size_t n, uint64_t off);

/* HTTP/2 (mg_upstream_h2.c). */
/* Does the buffered input start like an HTTP/2 client preface? 1 yes, 0 no,
 * -1 too short to tell. */
int mg_up_h2_preface(struct evbuffer *in);
/* Switch c to HTTP/2 (after ALPN h2 or a prior-knowledge preface) and feed
 * what is buffered. May free c. */
void mg_up_h2_start(struct conn *c);
/* Feed input / flush output of an HTTP/2 connection. May free c. */
void mg_up_h2_read(struct conn *c);
void mg_up_h2_write(struct conn *c);
/* Free the session and its streams (from mg_up_conn_free). */
void mg_up_h2_free(struct conn *c);

#endif
