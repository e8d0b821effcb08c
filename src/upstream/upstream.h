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
 * ServiceEntries (their endpoints, or the WorkloadEntries a workloadSelector
 * picks), the DestinationRules and the MeshConfig of cfg: ISTIO_MUTUAL by
 * rule or auto mTLS, with secure naming (types.h `mesh`). Returns NULL (and
 * a warning in d) when no ServiceEntry knows the host, or ISTIO_MUTUAL is
 * asked without Proxy.spec.identity: such routes answer 503. An unusable
 * TLS setting or identity is an error in d. */
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

/* Mirrors (mirror.c): send a copy of r (its head as it goes upstream, its
 * body as the codec hands it over) to each of r->route's mirrors chosen by
 * its percentage, with Host "-shadow"-suffixed; call after r's upstream
 * headers are set, before mg_upstream_start(r). The copies' responses are
 * dropped and their failures ignored; at most 256 per worker are in flight
 * and a copy whose upstream falls 1 MiB behind is dropped (both counted in
 * meshgate_mirror_requests_total). mg_upstream_body_data and
 * mg_upstream_body_end feed the copies themselves. */
void mg_mirror_start(struct mg_request *r);

/* An upgrade (r->upgrade) the upstream accepted: when it answers 101 the
 * response head reaches the codec (ops->resp_head with r->status 101) and
 * the connection becomes the request's byte stream. This returns its
 * mg_io (NULL when r has no such connection) for the caller to set
 * its own callbacks on and relay both ways; bytes the upstream sent after
 * the 101 are in its input already. It stays the upstream's: end it with
 * mg_upstream_detach(r, false). */
struct mg_io *mg_upstream_tunnel(struct mg_request *r);

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
 * insecureSkipVerify. ISTIO_MUTUAL: Proxy.spec.identity presented, its
 * rootCertificates trusted (mesh.c). NULL on failure, err set
 * (tls_client.c). */
SSL_CTX *mg_tls_client_ctx_new(const struct mg_config *c, const struct mg_client_tls *t,
                               char *err, size_t errlen);

/* The client context of ISTIO_MUTUAL: Proxy.spec.identity's chain and key
 * presented, its rootCertificates trusted, the peer's chain required. NULL
 * with err set when the identity is missing or does not load (mesh.c). */
SSL_CTX *mg_tls_mesh_client_ctx_new(const struct mg_config *c, char *err, size_t errlen);

/* May the request be tried again after a failure of class `cls`
 * ("connect-failure", "reset", "refused-stream", "timeout", "status-<status>",
 * "grpc-<status>", "ratelimited": upstream/internal.h mg_upstream_retry_class)
 * under its route's retry policy (Envoy's retryOn conditions and the numeric
 * tokens Istio makes retriable status codes)? No retry once a body byte went upstream or
 * the response started (retry.c). */
bool mg_upstream_retry_allowed(const struct mg_request *r, const char *cls);
/* Does r's route set retries.retryRemoteLocalities (a retry's endpoint is
 * drawn from the priorities not tried yet: mg_cluster_pick_retry)? */
bool mg_upstream_retry_remote(const struct mg_request *r);

/* ---- PROXY protocol toward upstreams (proxy_header.c) ----
 *
 * DestinationRule trafficPolicy.proxyProtocol: the header (HAProxy's
 * proxy-protocol.txt) goes first on every new connection of the cluster,
 * before TLS, carrying the downstream client (mg_conn.client: the PROXY
 * protocol client when the downstream came with a header, else the peer)
 * as the source and the address it connected to (mg_conn.client_dst) as
 * the destination. One family for both: IPv4 when both are, else IPv6
 * with IPv4 as ::ffff:a.b.c.d; an address missing gives v1 UNKNOWN / v2
 * LOCAL. */
#define MG_PP_OUT_MAX 108               /* v1's longest line is 107 bytes; v2 with IPv6 52 */
/* Write the header into out (cap bytes); returns its length, 0 when it
 * does not fit. v1 is text without a NUL terminator counted. */
size_t mg_pp_write_v1(const struct mg_addr *src, const struct mg_addr *dst, char *out, size_t cap);
size_t mg_pp_write_v2(const struct mg_addr *src, const struct mg_addr *dst, unsigned char *out,
                      size_t cap);
struct mg_conn;
/* The header a new connection of cl opened for downstream connection
 * `down` starts with (the TCP splices write it themselves); 0 when cl
 * sends none. */
size_t mg_upstream_pp_header(const struct mg_cluster *cl, const struct mg_conn *down,
                             unsigned char *out, size_t cap);

/* ---- the upstream side of a TCP splice (splice_tls.c) ----
 * An mg_io, not yet connected, for a splice to endpoint ep of cl:
 * plain, or TLS when the cluster originates it (DestinationRule SIMPLE or
 * MUTUAL; ISTIO_MUTUAL by rule or auto mTLS, with Istio's TCP ALPN), *ssl
 * then set. NULL on failure. After mg_io_connect, a TLS one
 * takes its PROXY protocol header (when the rule asks) from
 * mg_upstream_splice_pp_tls (0 or -1); a plain one from
 * mg_upstream_pp_header as before. Once connected, a mesh peer whose
 * identity the destination may not have is named by
 * mg_upstream_splice_refused (NULL = accepted; buf holds expected and
 * presented identities). */
struct mg_io *mg_upstream_splice_io(struct mg_cluster *cl, size_t ep, struct mg_worker *w,
                                           SSL **ssl);
int mg_upstream_splice_pp_tls(const struct mg_cluster *cl, const struct mg_conn *down,
                              struct mg_io *io, SSL *ssl);
const char *mg_upstream_splice_refused(const struct mg_cluster *cl, const SSL *ssl, char *buf,
                                       size_t len);

/* ---- outlier detection (outlier.c) ----
 *
 * Envoy's consecutive-error detectors as Istio configures them: an endpoint
 * is ejected when it reaches consecutive5xxErrors 5xx outcomes, or
 * consecutiveGatewayErrors gateway errors (502, 503, 504), in a row. A
 * connect failure or a reset before the response counts as a 503 and a
 * per-try timeout as a 504, unless splitExternalLocalOriginErrors counts
 * them apart (consecutiveLocalOriginFailures). The ejection is refused
 * when the ejected share, this one included, would exceed
 * maxEjectionPercent (Envoy's rule: with 2 endpoints and the default 10%
 * nothing is ejected). An ejected endpoint returns at the first interval
 * sweep once baseEjectionTime x its multiplier (times ejected, capped at
 * max(300 s, base), decreased by one per sweep once it has been back for
 * baseEjectionTime) has passed. */
enum mg_od_outcome {
    MG_OD_RESPONSE,                     /* a final response head with `status` */
    MG_OD_CONNECT_FAILED,               /* connect failure, reset before a response */
    MG_OD_TIMEOUT,                      /* no response head within the per-try timeout */
};
enum mg_od_eject { MG_OD_KEPT = 0, MG_OD_EJECT_5XX, MG_OD_EJECT_GATEWAY, MG_OD_EJECT_LOCAL };

/* The state for n endpoints under cfg; NULL when cfg is absent or turns
 * every detector off. */
struct mg_od *mg_od_new(const struct mg_outlier *cfg, size_t n, int64_t now_ms);
void mg_od_free(struct mg_od *od);
/* Count one outcome of endpoint ep; returns why it was ejected now, or
 * MG_OD_KEPT. Any thread. */
enum mg_od_eject mg_od_report(struct mg_od *od, size_t ep, enum mg_od_outcome o, int status,
                              int64_t now_ms);
static inline bool mg_od_ejected(const struct mg_od *od, size_t ep)
{
    return atomic_load_explicit(&((struct mg_od *)od)->ep[ep].ejected_at, memory_order_relaxed) != 0;
}
/* Panic (Envoy's healthy panic threshold, which Istio sets from
 * minHealthPercent): fewer endpoints in service than that share, so the
 * balancer ignores ejections. 0 never panics. */
bool mg_od_panic(const struct mg_od *od);
/* The interval sweep (one thread): returns ejected endpoints whose time is
 * up, calling back(arg, ep, ms ejected) for each, decays multipliers, and
 * sets the next sweep time. */
void mg_od_sweep(struct mg_od *od, int64_t now_ms, void (*back)(void *arg, size_t ep, int64_t ms),
                 void *arg);

/* The request path's entry: count an outcome of cl's endpoint ep (no-op
 * without outlier detection); an ejection is logged and counted. */
void mg_cluster_outcome(struct mg_cluster *cl, size_t ep, enum mg_od_outcome o, int status);
/* Choose an endpoint by the cluster's balancer (rt: this worker's view),
 * skipping ejected ones (unless in panic) and, while others remain, those
 * in `avoid` (bit i = endpoint i, the endpoints a request already tried, as
 * Istio's retries avoid previous hosts). With locality-aware balancing
 * (types.h `n_prio`, `loc_weight`) a priority is drawn first by
 * mg_locality_priority_load, then with `distribute` a locality by its
 * weight times its availability, and the endpoint among theirs; `avoid`
 * applies within them, and with priorities panic is per priority as in
 * Envoy (only while the priorities together are short of 100%
 * availability). SIZE_MAX: every endpoint is ejected (503 "no healthy
 * upstream", flag UH). */
size_t mg_cluster_pick(struct mg_cluster *cl, struct mg_cluster_rt *rt, struct mg_worker *w,
                       uint64_t avoid);
/* The same for a request whose route sets retryRemoteLocalities (`remote`):
 * the priorities of the endpoints in `avoid` count as unavailable when the
 * priority is drawn (Envoy's previous_priorities), unless that leaves none. */
size_t mg_cluster_pick_retry(struct mg_cluster *cl, struct mg_cluster_rt *rt, struct mg_worker *w,
                             uint64_t avoid, bool remote);
/* The share of new picks (percent, load[cl->n_prio], summing to 100)
 * each priority of cl takes, as Envoy's priority balancer computes it with
 * the overprovisioning factor 1.4: a priority's availability is
 * min(100, 140 x healthy / endpoints); the nearest priorities take theirs,
 * the rest spills to the next; availabilities adding up to less than 100
 * are scaled up. health = false counts every endpoint healthy. false:
 * no priority has a healthy endpoint. */
bool mg_locality_priority_load(const struct mg_cluster *cl, bool health, unsigned *load);
/* Main thread: run the sweeps that are due for the clusters of the
 * current snapshot; returns ms until the next one (-1: none). */
int64_t mg_outlier_sweep(struct mg_cluster *const *cls, size_t n);
/* Main thread, before a new snapshot takes over: a cluster of the same
 * name and the same outlier settings keeps its endpoints' state (by
 * address), so a certificate rotation or an unrelated reload does not
 * return ejected endpoints to service. */
void mg_outlier_inherit(struct mg_cluster *const *to, size_t n, struct mg_cluster *const *from,
                        size_t n_from);
/* meshgate_outlier_ejections_total{cluster} (process-wide) and
 * meshgate_outlier_ejected_endpoints{cluster} (the current snapshot). */
void mg_outlier_metrics_render(struct mg_buf *out, struct mg_cluster *const *cls, size_t n);

#endif
