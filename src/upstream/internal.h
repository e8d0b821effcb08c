/* upstream/internal.h - what only upstream/ uses: connections, pools and
 * HTTP/2 streams. */
#ifndef MG_UPSTREAM_INTERNAL_H
#define MG_UPSTREAM_INTERNAL_H
#include <stdbool.h>
#include <stddef.h>
#include <event2/buffer.h>
#include <stdint.h>
#include <nghttp2/nghttp2.h>
#include <openssl/ssl.h>
#include <event2/dns.h>
#include "upstream/upstream.h"

/* what the HTTP/1.1 client (upstream.c) and the HTTP/2
 * client (upstream_h2.c) share. Not for use outside the upstream module.
 *
 * The public entry points of upstream.h live in upstream.c; each one hands
 * a request whose `r->up2` is set (an HTTP/2 stream) to the mg_up2_*
 * function of the same name. */
struct mg_request;
struct mg_kv;

/* Send r on an HTTP/1.1 connection of cluster cl (idle one, new one, or
 * queued within the pool limits); r->attempts is not touched. */
void mg_upstream_h1_start(struct mg_request *r, struct mg_cluster *cl);

/* Apply the route's and the destination's response header operations to
 * the arena array h[n] (capacity cap). Returns the new array (arena, may
 * be h) and stores its length in *n. */
struct mg_kv *mg_upstream_resp_ops(struct mg_request *r, struct mg_kv *h, size_t *n, size_t cap);
/* Record the upstream socket's local address in r->upstream_local when the
 * access log format asks for it (%UPSTREAM_LOCAL_ADDRESS%): one
 * getsockname() per response, only then. */
void mg_upstream_note_local(struct mg_request *r, int fd);

/* ---- PROXY protocol toward upstreams (proxy_header.c) ---- */

/* Idle connections of a proxyProtocol cluster one worker keeps (over all
 * downstream clients): each serves one client only, so their pool is
 * bounded; the least recently used goes first. */
#define UP_PP_IDLE_MAX 32

/* The downstream addresses a connection's header carried: it serves only
 * requests whose downstream connection has the same (Envoy keys its
 * connection pools by them). on = false: the cluster sends no header and
 * the connection serves anyone. */
struct mg_pp_key {
    bool on;
    struct mg_addr src, dst;
};
struct mg_conn;
void mg_pp_key_set(struct mg_pp_key *k, const struct mg_cluster *cl, const struct mg_conn *down);
/* May a connection of key k carry a request of downstream connection down? */
bool mg_pp_key_fits(const struct mg_pp_key *k, const struct mg_conn *down);
/* Arrange for k's header to be the first bytes of a new connection of cl
 * (no-op when !k->on): in plain text into io's output, which must be
 * empty; over TLS (ssl) through a write filter under the SSL, called right
 * after mg_io_connect and before the loop runs the
 * handshake. 0, or -1 (the connection must not be used). */
int mg_pp_arm(const struct mg_cluster *cl, const struct mg_pp_key *k, struct mg_io *io,
              SSL *ssl);

/* The copied request's body bytes src[0..n) (not consumed) and its end,
 * for its mirrors' copies (mirror.c). */
void mg_mirror_tee(struct mg_request *m, struct evbuffer *src, size_t n);
void mg_mirror_body_end(struct mg_request *m);

/* The retry class of a response (mg_upstream_retry_allowed): "ratelimited"
 * with x-envoy-ratelimited, "grpc-N" for a 200 carrying a non-zero
 * grpc-status (a trailers-only gRPC error), "status-NNN" for 4xx and 5xx;
 * false (nothing to retry) otherwise. */
bool mg_upstream_retry_class(int status, const char *grpc_status, bool ratelimited, char *out,
                             size_t cap);

/* ---- ISTIO_MUTUAL (mesh.c) ---- */

struct mg_worker;
/* The context a new connection of cl to endpoint ep uses: NULL for plain
 * text; for a mesh cluster the identity of the worker's newest generation
 * (snapshot.h `mesh_client`), else the cluster's own. */
SSL_CTX *mg_mesh_conn_ctx(const struct mg_cluster *cl, size_t ep, const struct mg_worker *w);
/* Make cl a mesh cluster (types.h `mesh`): the trust domain and its
 * aliases from cfg, the n identities secure naming accepts (none = any
 * identity of those trust domains). */
void mg_mesh_cluster_setup(struct mg_cluster *cl, const struct mg_config *cfg, char *const *ids, size_t n);
void mg_mesh_cluster_free(struct mg_cluster *cl);
/* Offer Istio's ALPN list for a connection of protocol mode h2. */
void mg_mesh_set_alpn(SSL *ssl, enum mg_up_h2 h2);
/* Is the selected ALPN protocol HTTP/2 (h2, or istio-h2 from a mesh server)? */
bool mg_mesh_alpn_is_h2(const unsigned char *p, unsigned int l);
/* Secure naming after the handshake of a mesh connection: NULL when the
 * server's certificate verified and names an identity cl accepts; else a
 * sentence naming the expected and the presented identity, in buf. */
const char *mg_mesh_peer_refused(const struct mg_cluster *cl, const SSL *ssl, char *buf, size_t len);

/* Record on r that its connection was refused by secure naming (`why`,
 * copied): the reason and detail its 503 is logged with. */
void mg_upstream_refused_by_name(struct mg_request *r, const char *why);

/* ---- locality-aware balancing (locality.c) ---- */

/* Set cl's endpoint priorities or locality weights (types.h `n_prio`,
 * `loc_weight`) from the localityLbSetting that applies to the
 * destination (rule dr, subset sub, service port) and cfg's Proxy
 * locality, network and labels; wes[i] is the workload behind endpoint i
 * (NULL: none). Failover applies only when the destination has outlier
 * detection (`outlier`), as in Istio; distribute applies either way. */
void mg_cluster_locality(struct mg_cluster *cl, const struct mg_config *cfg,
                         const struct mg_destination_rule *dr, const struct mg_subset *sub,
                         uint16_t port, bool outlier, const struct mg_workload_entry *const *wes);

/* ---- HTTP/2 (upstream_h2.c) ---- */

/* Should r go upstream over HTTP/2 (cluster h2 mode, useClientProtocol,
 * an earlier ALPN fallback on this worker)? */
bool mg_up2_wanted(const struct mg_request *r);
/* Start r on a multiplexed connection of this worker (reused, connecting
 * or new). Outcomes reach r through its down ops and
 * mg_request_upstream_failed(), exactly as for HTTP/1.1. */
void mg_up2_start(struct mg_request *r);
bool mg_up2_body_ready(struct mg_request *r);
void mg_up2_body_data(struct mg_request *r, struct evbuffer *src, size_t n);
void mg_up2_body_end(struct mg_request *r);
void mg_up2_resume(struct mg_request *r);
/* Detach r; its stream is reset (CANCEL) unless the exchange completed. */
void mg_up2_detach(struct mg_request *r, bool clean);
/* Close this worker's HTTP/2 connections of cl that carry no stream, and
 * stop opening streams on the others (they close when their last ends). */
void mg_up2_close_idle(struct mg_cluster *cl, int worker_id);

/* state shared by the HTTP/2 upstream client's files
 * (upstream_h2.c: connections, session, entry points; upstream_h2_rx.c:
 * nghttp2 receive callbacks and delivery to the downstream). Not for use
 * outside them. */
struct mg_snapshot;

#define UP2_OUT_WM (256 * 1024)            /* stop serialising above this much output */
#define UP2_BODY_WM (128 * 1024)           /* request body buffered per stream */
#define UP2_STREAM_WINDOW (1 << 20)        /* our receive window per stream */
#define UP2_CONN_WINDOW (16 << 20)         /* and per connection */
#define UP2_ASSUMED_STREAMS 100            /* before the peer's SETTINGS arrive */
#define UP2_MAX_RESP_HEADER_BYTES (64 * 1024)  /* nghttp2 1.52 announces no limit of its own: counted here */
#define UP2_MAX_RESP_HEADERS 200
#define UP2_DELIVER_STEP (64 * 1024)

struct mg_up2_conn;

struct mg_up2_stream {
    struct mg_up2_stream *prev, *next;  /* the connection's streams */
    struct mg_up2_conn *c;
    struct mg_request *r;
    int32_t id;                         /* 0 = not submitted yet (connecting) */
    struct event *try_timer;
    /* request body */
    struct evbuffer *body;
    bool body_eof, deferred, want_body;
    /* response */
    struct mg_kv *hv;                   /* header block being received (arena) */
    size_t nh, caph, hbytes;
    struct mg_kv *tv;                   /* trailers (arena) */
    size_t nt, capt;
    int status;
    bool head_ready, head_sent, end_seen, end_on_head, closed, malformed, want_continue;
    uint32_t err;                       /* RST_STREAM / close error code */
    struct evbuffer *rbuf;              /* received, not yet taken by the downstream */
};

struct mg_up2_conn {
    struct mg_up2_conn *next;           /* rt->h2 */
    struct mg_cluster *cl;
    struct mg_pp_key pp;                /* whose connection it is (proxyProtocol) */
    struct mg_worker *w;
    size_t ep;
    struct mg_io *io;
    SSL *ssl;
    nghttp2_session *ng;
    struct mg_dns_req *dnsreq;
    struct event *pump_ev;
    struct mg_up2_stream *streams;
    size_t n_streams;
    uint64_t n_total;                   /* streams ever opened (maxRequestsPerConnection) */
    struct mg_snapshot *snap;           /* generation it serves (own reference: the
                                         * cluster lives as long as the connection) */
    int busy;
    bool connected;
    bool retired;                       /* GOAWAY, limit reached, old snapshot: no new streams */
    bool dead;                          /* failed: free when no callback runs */
    bool fail_connect;                  /* failed before the session started */
};

/* Forget the request side of s (counters, r->up2) and free it; the nghttp2
 * stream no longer points at it and its unread window is given back
 * (upstream_h2.c). */
void mg_up2_stream_free(struct mg_up2_stream *s);

/* upstream_h2_rx.c: install the receive callbacks; the request body's data
 * provider; and the delivery pass, called at the top level only (it calls
 * down ops, which may detach any stream of c). */
void mg_up2_set_callbacks(nghttp2_session_callbacks *cbs);
ssize_t mg_up2_body_read_cb(nghttp2_session *ng, int32_t id, uint8_t *buf, size_t len,
                            uint32_t *flags, nghttp2_data_source *src, void *user);
void mg_up2_dispatch(struct mg_up2_conn *c);

#endif
