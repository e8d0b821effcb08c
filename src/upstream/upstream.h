/* upstream.h - upstream clusters (ServiceEntry endpoints + DestinationRule
 * policy), per-worker connection pools, balancing, and the HTTP/1.1 client
 * (upstream.c) and HTTP/2 client (upstream_h2.c) behind one set of entry
 * points: the functions below serve either, by the request's stream.
 *
 * A cluster is compiled into the snapshot and read-only; its per-worker
 * runtime state (`rt[worker id]`) is touched only by that worker, so no
 * lock is taken on the request path. */
#ifndef MG_UPSTREAM_H
#define MG_UPSTREAM_H
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <openssl/ssl.h>
#include <event2/buffer.h>
#include "config/config.h"
#include "base/diag.h"

struct mg_request;
struct mg_worker;
struct mg_uconn;
struct mg_up2_conn;
struct event;

/* Upstream protocol: HTTP/2 is required for ports of protocol HTTP2/GRPC
 * (h2c by prior knowledge, ALPN h2 only over TLS); preferred with
 * h2UpgradePolicy UPGRADE or useClientProtocol (ALPN h2,http/1.1 over TLS,
 * falling back to HTTP/1.1 when the server does not pick h2). */
enum mg_up_h2 { MG_UP_H1 = 0, MG_UP_H2_PREFER, MG_UP_H2_REQUIRED };

struct mg_endpoint {
    struct sockaddr_storage sa;         /* valid when resolved */
    socklen_t salen;
    bool resolved;                      /* false: `address` is a DNS name */
    char *address;
    uint16_t port;
    char *label;                        /* "address:port" for logs */
};

struct mg_cluster_rt {                  /* one worker's view of a cluster */
    struct mg_uconn *idle;              /* idle keep-alive connections */
    size_t n_open;                      /* connections open (idle + busy + connecting) */
    size_t n_pending;                   /* requests waiting for a connection */
    struct mg_request **pending;        /* FIFO ring, capacity max_pending */
    size_t pend_head, pend_cap;
    size_t rr;
    uint32_t *active;                   /* per endpoint in-flight requests (LEAST_REQUEST) */
    struct event *kick;                 /* re-check the instance-wide limit while requests wait */
    struct mg_cluster *kick_cl;
    struct mg_worker *kick_w;
    struct mg_up2_conn *h2;             /* HTTP/2 connections (upstream_h2.c) */
    bool h2_fallback;                   /* a TLS server did not pick h2: HTTP/1.1 here */
};

struct mg_cluster {
    char *name;                         /* outbound|port|subset|host */
    const char *stat_name;              /* name, interned (metrics outlive snapshots) */
    char *host, *subset;
    uint16_t port;
    struct mg_endpoint *eps;
    size_t n_eps;
    enum mg_lb_simple lb;
    uint64_t max_connections;           /* 0 = unlimited */
    uint64_t max_pending;               /* 0 = unlimited (bounded by a hard cap) */
    uint64_t max_requests_per_conn;     /* 0 = unlimited; 1 = no keep-alive */
    int64_t connect_timeout_ms;
    int64_t idle_timeout_ms;
    SSL_CTX *tls;                       /* NULL = plaintext */
    char *sni;
    char **sans;
    size_t n_sans;
    bool insecure;
    enum mg_up_h2 h2;                   /* plain-HTTP ports: MG_UP_H1 unless upgraded */
    bool use_client_protocol;           /* HTTP/2 downstream -> HTTP/2 upstream (PREFER) */
    uint64_t max_streams_per_conn;      /* http.maxConcurrentStreams; 0 = the peer's limit */
    uint64_t max_requests;              /* http.http2MaxRequests (concurrent); 0 = unlimited */
    atomic_ulong g_active;              /* HTTP/2 streams in flight, instance-wide */
    /* Limits hold per proxy instance (as Envoy's circuit breakers): these two
     * are shared by the workers; they change only on connect/close and when
     * a request has to queue, never on the plain request path. */
    atomic_ulong g_open, g_pending;
    int n_workers;
    struct mg_cluster_rt *rt;           /* [n_workers] */
};

/* Build the cluster for destination (host, port, subset) from the
 * ServiceEntries and DestinationRules of cfg. Returns NULL (and a warning in
 * d) when no ServiceEntry knows the host: such routes answer 503. An
 * unusable TLS setting is an error in d. */
struct mg_cluster *mg_cluster_build(const struct mg_config *cfg, const struct mg_destination *dst,
                                    int n_workers, struct mg_diags *d);
void mg_cluster_free(struct mg_cluster *cl);

/* Send r upstream (r->dest->cluster, r->uh, r->up_path...). Reuses an idle
 * connection of this worker or opens one (or queues within the pool
 * limits). Outcomes reach the request through its down ops and
 * mg_request_upstream_failed(). */
void mg_upstream_start(struct mg_request *r);

/* Request body (downstream codec side). The body goes to the connection
 * only once it is established (so connect failures can still be retried):
 * wait for ops->body_resume. Payload bytes are framed for the upstream here
 * (chunked stays chunked). */
bool mg_upstream_body_ready(struct mg_request *r);       /* connected, not above watermark */
void mg_upstream_body_data(struct mg_request *r, struct evbuffer *src, size_t n);
void mg_upstream_body_end(struct mg_request *r);        /* last chunk for chunked bodies */

/* Downstream drained below its watermark: resume reading the response. */
void mg_upstream_resume(struct mg_request *r);

/* Detach the request (finished, reset, timed out). The connection goes back
 * to the pool only when the exchange completed cleanly and keep-alive is
 * allowed; otherwise it is closed. Safe with r->uc == NULL. */
void mg_upstream_detach(struct mg_request *r, bool clean);

/* Close this worker's idle connections of every cluster of snapshot `clusters`
 * (on snapshot switch and shutdown). */
void mg_upstream_close_idle(struct mg_cluster **clusters, size_t n, int worker_id);

/* Client context for a DestinationRule's tls (SIMPLE or MUTUAL): trust from
 * caCertificates, else MeshConfig caCertificates; verification off with
 * insecureSkipVerify. ISTIO_MUTUAL is refused (err set). NULL on failure
 * (tls_client.c). */
SSL_CTX *mg_tls_client_ctx_new(const struct mg_config *c, const struct mg_client_tls *t,
                               char *err, size_t errlen);

#endif
