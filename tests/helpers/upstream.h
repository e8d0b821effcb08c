/* upstream.h - internals shared by the two files of the test upstream
 * (mg_upstream.c: connections, parsing, main; mg_upstream_resp.c: the
 * answers). Not a library: only these two files include it. */
#ifndef MG_TEST_UPSTREAM_H
#define MG_TEST_UPSTREAM_H
#include <stdbool.h>
#include <stdint.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include "util.h"

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
    struct conn *conns;             /* every live connection, freed at exit */
};

enum state {
    S_LINE, S_HEADERS, S_BODY, S_CHUNK_SIZE, S_CHUNK_DATA, S_CHUNK_END, S_TRAILERS,
    S_RESPOND,                      /* request complete, response pending or streaming */
    S_CLOSING,                      /* last response queued; free once written */
};

struct conn {
    struct server *srv;
    struct conn *prev, *next;
    struct bufferevent *bev;
    struct event *timer;
    bool tls;
    char peer[64];
    unsigned long nreq;             /* requests seen on this connection */
    enum state st;
    /* the request being read */
    char *method, *target;
    int minor;
    struct mg_buf headers_json;     /* ["name","value"],... in arrival order */
    size_t nheaders, head_bytes;
    bool chunked, has_cl, conn_close, conn_keepalive, expect_continue;
    uint64_t content_length, remaining, body_len;
    EVP_MD_CTX *sha;
    /* the response */
    bool keepalive;
    uint64_t send_left;
    bool send_chunked;
};

/* Append s[0..n) as a JSON string (quotes included, non-ASCII escaped). */
void mg_up_json_str(struct mg_buf *b, const char *s, size_t n);
/* The value of a hex digit, or -1. */
int mg_up_hexval(char c);
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

#endif
