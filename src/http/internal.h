/* http/internal.h - what only http/ uses: the HTTP/2 stream and its limits. */
#ifndef MG_HTTP_INTERNAL_H
#define MG_HTTP_INTERNAL_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <nghttp2/nghttp2.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include "http/http.h"

/* state shared by the HTTP/2 codec's files (h2_server.c: the
 * session, I/O and down ops; h2_request.c: header block -> request). Not
 * for use outside the codec. */
struct mg_h2_conn;

struct mg_h2_stream {
    struct mg_h2_stream *prev, *next;
    struct mg_h2_conn *h;
    int32_t id;
    struct mg_request r;
    /* header block */
    size_t hbytes;                      /* name + value + 32 per field (RFC 7541 4.1) */
    size_t nfields;
    bool hdr_over;                      /* over the size or count limit: 431 */
    bool hdr_reset;                     /* far over it: reset, the block not delivered further */
    const char *bad;                    /* malformed: reason, answered 400 */
    const char *p_method, *p_path, *p_authority, *p_scheme, *p_protocol;
    const char *host_hdr;
    struct mg_kv *hv;
    size_t nh, caph;
    size_t cookie_at;                   /* index of the first cookie field (SIZE_MAX = none) */
    bool has_cl;
    uint64_t cl;
    /* progress */
    bool ready;                         /* header block complete, not started yet */
    bool running;                       /* handed to the phases */
    bool remote_end;                    /* END_STREAM received */
    bool discard;                       /* answered: request body is consumed and dropped */
    bool body_end_sent;
    int body_end_attempt;
    uint64_t body_recv;
    struct evbuffer *reqbuf;            /* received, not yet taken by the upstream */
    struct event *body_ev;              /* per-stream body idle bound (NULL until armed) */
    /* response */
    struct evbuffer *resp;
    bool resp_submitted, resp_eof, deferred, want_resume, end_sent, aborted;
    /* answered before the request ended: RST_STREAM(NO_ERROR) once the
     * client acknowledged a PING sent after the response (h2_server.c) */
    bool rst_wait;                      /* needs the reset */
    bool rst_armed;                     /* covered by the PING in flight */
};

struct mg_h2_conn {
    struct mg_conn *c;
    nghttp2_session *ng;
    struct mg_h2_stream *streams;
    size_t n_streams;
    struct event *pump_ev;
    struct event *idle_ev;
    struct event *hdr_ev;               /* a header block must complete in time */
    size_t max_hdr;
    unsigned hdr_refused;               /* header blocks that crossed the limit */
    bool read_paused;
    bool closing;                       /* waiting for the output to flush */
    bool dead;                          /* torn down */
    bool fatal;                         /* nghttp2 gave up: close now */
    bool goaway;                        /* the final GOAWAY was submitted */
    bool draining;                      /* shutdown notice sent, final GOAWAY pending */
    bool stale_served;                  /* the one stream allowed after a reload was opened */
    bool rst_ping;                      /* a PING for the streams rst_armed is in flight */
    /* Client stream ids: the highest seen in a HEADERS frame, and the ids it
     * skipped (never opened, so closed: RFC 9113 5.1.1), as ranges in
     * ascending order, grown on demand up to MG_H2_MAX_SKIPPED (most
     * clients skip none: no allocation then) */
    int32_t max_client_id;
    int32_t (*skipped)[2];
    unsigned n_skipped, cap_skipped;
};

/* Gaps in a connection's client stream ids that are remembered (8 octets
 * each): a HEADERS on a skipped id ends the connection with PROTOCOL_ERROR
 * as long as its gap is among the first MG_H2_MAX_SKIPPED; later gaps are
 * left to nghttp2, which ignores a HEADERS on an id it does not know. */
#define MG_H2_MAX_SKIPPED 1024

/* The codec's down ops (h2_server.c). */
extern const struct mg_down_ops mg_h2_ops;

/* Store one request header field of stream s (names as received; the
 * limits were checked by the caller). Marks s->bad for a malformed field.
 * Returns 0 (nghttp2 callback convention). */
int mg_h2_take_field(struct mg_h2_stream *s, const char *name, size_t namelen, const char *value,
                     size_t valuelen);

/* Fill the request attributes of s from its header block as received so
 * far (method, target, headers, authority, body framing). */
void mg_h2_fill_request(struct mg_h2_stream *s);

/* The header block of s is complete: fill the request, answer 431/400/405
 * when it must be refused, else run the phases (http/http.h). */
void mg_h2_start_stream(struct mg_h2_stream *s);

/* HTTP/2 downstream codec (nghttp2 server session).
 *
 * conn.c hands a connection here when TLS ALPN selected "h2". Each stream
 * becomes one `struct mg_request` run by the same phases as HTTP/1
 * (http/http.h); responses go back as HEADERS (+ DATA through deferred data
 * providers).
 *
 * Limits, all per connection:
 *   SETTINGS_MAX_CONCURRENT_STREAMS  Proxy limits.maxConcurrentStreams
 *                                    (0 or unset = 100; nghttp2's default
 *                                    would be 2^31-1)
 *   SETTINGS_MAX_HEADER_LIST_SIZE    limits.maxRequestHeadersKb * 1024,
 *                                    enforced here (nghttp2 only announces
 *                                    it): a larger block, or more than
 *                                    MG_H1_MAX_HEADERS fields, is answered
 *                                    431 on that stream only; past twice
 *                                    that the stream is reset and the block
 *                                    no longer decoded into fields (HPACK
 *                                    references to a large table entry
 *                                    decode to megabytes); the 4th block
 *                                    over the limit ends the connection
 *                                    (GOAWAY ENHANCE_YOUR_CALM)
 *   SETTINGS_INITIAL_WINDOW_SIZE     MG_H2_STREAM_WINDOW, connection window
 *                                    MG_H2_CONN_WINDOW; WINDOW_UPDATE is
 *                                    sent only for bytes the upstream took,
 *                                    so buffered request bodies never
 *                                    exceed MG_H2_CONN_WINDOW
 *   SETTINGS_ENABLE_PUSH             0
 *   response bytes buffered          about MG_H2_RESP_WM per stream before
 *                                    the upstream read is paused, plus
 *                                    MG_H2_OUT_WM of encoded frames in the
 *                                    socket buffer before frames wait
 * nghttp2's own protections stay at their defaults: RST_STREAM rate limit
 * (burst 1000, 33/s, then GOAWAY), 8 CONTINUATION frames per header
 * block, 1000 queued PING/SETTINGS acks.
 *
 * Timeouts: Proxy timeouts.idle is the connection's inactivity limit (no
 * byte read, no write progress): with no stream open it sends GOAWAY
 * (NO_ERROR) and closes; with streams open they are stuck (the client
 * stopped reading or the upstream went silent) and end with flag SI, as
 * Envoy's stream idle timeout. timeouts.requestHeaders bounds a header
 * block left unfinished (GOAWAY PROTOCOL_ERROR).
 *
 * Graceful end (drain, SIGTERM): GOAWAY with last stream 2^31-1 first, the
 * final GOAWAY one second later (RFC 9113 6.8); the connection closes once
 * open streams finish and the output is flushed. */
/* Stream window: 256 KiB keeps one stream near line rate on a LAN and at
 * ~20 Mbit/s over 100 ms RTT, while 100 streams cannot pin more than the
 * connection window. */
#define MG_H2_STREAM_WINDOW (256 * 1024)
/* Connection window: the bound on request-body bytes one connection can
 * make the gateway hold (bytes not yet taken by upstreams). */
#define MG_H2_CONN_WINDOW (1024 * 1024)
/* Per-stream response buffer above which the upstream read is paused. */
#define MG_H2_RESP_WM (64 * 1024)
/* Encoded output waiting for the socket above which no frame is produced
 * and no more input is read (the client is not reading). */
#define MG_H2_OUT_WM (128 * 1024)

/* ---- gRPC (grpc.c) ---- */

/* Is `ct` (a content-type value, NULL = none) gRPC's: application/grpc
 * alone or with a +suffix or parameters (not grpc-web)? */
bool mg_grpc_content_type(const char *ct);
/* The gRPC status a local answer of HTTP `status` carries, as Envoy maps
 * them (403 -> 7, 401 -> 16, 404 -> 12, 429/502/503 -> 14, 504 -> 4,
 * anything else 2 UNKNOWN). */
int mg_grpc_status_of_http(int status);
/* Turn a local reply to a gRPC request into a trailers-only gRPC answer:
 * *status becomes 200, r->local_h gains content-type application/grpc,
 * grpc-status and (when `body` is not empty) grpc-message holding `body`
 * percent-encoded (arena); a redirect's location is dropped. The status
 * is r->grpc_status when set already (>= 0), else mapped from *status, and
 * stored there. Returns the body to send: "". */
const char *mg_grpc_shape_reply(struct mg_request *r, int *status, const char *body);
/* The gRPC status the client got: r->grpc_status when the gateway answered,
 * else for a gRPC request the upstream's grpc-status trailer (or the header
 * of a trailers-only response); -1 = none. */
int mg_grpc_response_status(const struct mg_request *r);
/* A grpc-timeout value ("100m", "2S", ...) in milliseconds, rounded up;
 * -1 when absent, malformed, or zero (no deadline, as Envoy reads it). */
int64_t mg_grpc_timeout_ms(const char *v);

#endif
