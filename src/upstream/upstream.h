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
#include "base/base.h"
#include "upstream/types.h"

struct mg_request;
struct mg_worker;
struct mg_uconn;
struct mg_up2_conn;
struct event;

/* Build the cluster for destination (host, port, subset) from the
 * ServiceEntries and DestinationRules of cfg. Returns NULL (and a warning in
 * d) when no ServiceEntry knows the host: such routes answer 503. An
 * unusable TLS setting is an error in d. */
struct mg_cluster *mg_cluster_build(const struct mg_config *cfg, const struct mg_destination *dst,
                                    int n_workers, struct mg_diags *d);
/* The forward proxy's dynamic cluster (upstream/types.h `dynamic`): no
 * fixed endpoint, each request names its dial_host and dial_port; plain
 * HTTP/1.1, 10 s connect timeout, no keep-alive. */
struct mg_cluster *mg_cluster_build_dynamic(int n_workers);
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

/* May the request be tried again after a failure of class `cls`
 * ("connect-failure", "reset", "refused-stream", "timeout", "5xx-<status>")
 * under its route's retry policy? No retry once a body byte went upstream or
 * the response started (retry.c). */
bool mg_upstream_retry_allowed(const struct mg_request *r, const char *cls);

#endif
