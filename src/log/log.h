/* log/log.h - the access log and the metrics (step 7). */
#ifndef MG_LOG_LOG_H
#define MG_LOG_LOG_H
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "config/config.h"
#include "base/base.h"

/* one line per request, Envoy-like fields, JSON or TEXT
 * (MeshConfig accessLogEncoding) or an Envoy format string
 * (accessLogFormat: %START_TIME%, %REQ(X)%, %RESPONSE_CODE%, ...).
 *
 * The log fd is process-wide and stable: reopening (SIGUSR1, reload with a
 * new path) dup2()s the new file onto it, so workers never synchronise.
 * Each line is one write() with O_APPEND. */
struct mg_request;

/* Open (or reopen on the same fd) `path`; NULL or "" turns logging off.
 * Main thread. Returns 0 or -1 (errno set; logging stays as it was). */
int mg_accesslog_open(const char *path);
/* Reopen the current path (SIGUSR1). */
int mg_accesslog_reopen(void);
void mg_accesslog_close(void);

/* Format one line for r into out (exposed for tests). */
void mg_accesslog_format(struct mg_buf *out, const struct mg_request *r,
                         const struct mg_mesh_config *mesh);
/* Format and write (worker thread); no-op when logging is off. Formats
 * into a per-thread buffer that mg_accesslog_thread_done() releases (call
 * it when a thread that wrote lines ends). */
void mg_accesslog_write(const struct mg_request *r, const struct mg_mesh_config *mesh);
void mg_accesslog_thread_done(void);

/* counters kept per worker without locks (relaxed atomics on
 * memory only that worker writes) and rendered in Prometheus text format by
 * the admin listener, which sums across workers.
 *
 * Label strings passed to mg_metrics_request must live for the process
 * (mg_intern them when the snapshot is built). */
#define MG_METRICS_SLOTS 512
#define MG_EGRESS_SLOTS 32

/* Istio's histogram buckets: istio_request_duration_milliseconds and
 * istio_request_bytes / istio_response_bytes (upper bounds; +Inf follows). */
#define MG_DUR_BUCKETS 19
#define MG_BYTES_BUCKETS 8
extern const double mg_dur_bounds[MG_DUR_BUCKETS];
extern const double mg_bytes_bounds[MG_BYTES_BUCKETS];

/* The labels of one finished request. Strings must live for the process
 * (static or mg_intern'ed); NULL becomes "unknown" (reason, flags: ""/"-"). */
struct mg_rq_key {
    int code;
    int grpc_status;                    /* grpc-status of a gRPC request, -1 = none */
    bool grpc;                          /* request_protocol "grpc", else "http" */
    bool mtls;                          /* connection_security_policy mutual_tls / none */
    bool inbound;                       /* reporter "destination" (sidecar), else "source" */
    const char *route, *dest, *reason, *principal, *flags;
};

struct mg_rq_slot {
    atomic_int used;                    /* 0 free, 1 key being written, 2 ready */
    struct mg_rq_key k;
    atomic_ulong count;
    /* per-bucket counts (not cumulative; the scrape sums), sums */
    atomic_ulong dur[MG_DUR_BUCKETS + 1], req_b[MG_BYTES_BUCKETS + 1], resp_b[MG_BYTES_BUCKETS + 1];
    atomic_ulong dur_sum, req_sum, resp_sum;
};

/* TCP proxy connections (istio_tcp_*), keyed like requests without HTTP. */
#define MG_TCP_SLOTS 64
struct mg_tcp_slot {
    atomic_int used;
    const char *dest, *principal;
    bool mtls, inbound;
    atomic_ulong opened, closed, sent, received;
};

/* What became of a PROXY protocol header (meshgate_proxy_protocol_total
 * {result}); names in metrics.c. */
enum mg_pp_result {
    MG_PPR_ACCEPTED,                    /* a client address taken */
    MG_PPR_LOCAL,                       /* LOCAL/UNKNOWN: the socket's addresses kept */
    MG_PPR_WITHOUT,                     /* no header, and allowWithoutHeader let it in */
    MG_PPR_UNTRUSTED,                   /* refused: a peer outside trustedSources */
    MG_PPR_MISSING,                     /* refused: no header where one is required */
    MG_PPR_MALFORMED,                   /* refused: a header the specification forbids */
    MG_PPR_TIMEOUT,                     /* refused: incomplete within timeouts.handshake */
    MG_PPR_N,
};
extern const char *const mg_pp_result_names[MG_PPR_N];

/* Why a downstream TLS handshake did not complete
 * (meshgate_tls_handshake_failures_total{reason}); names in metrics.c. */
enum mg_tls_fail {
    MG_TLSF_TIMEOUT,                    /* not done within timeouts.handshake */
    MG_TLSF_CLOSED,                     /* the client closed or reset first */
    MG_TLSF_PROTOCOL_VERSION,           /* no TLS version in common, or not TLS at all */
    MG_TLSF_NO_SHARED_CIPHER,
    MG_TLSF_NO_CLIENT_CERT,             /* MUTUAL port, no certificate sent */
    MG_TLSF_CLIENT_CERT_INVALID,        /* the client's certificate did not verify */
    MG_TLSF_PEER_ALERT,                 /* the client refused ours (unknown CA, ...) */
    MG_TLSF_HTTP_REQUEST,               /* plain HTTP sent to a TLS port */
    MG_TLSF_OTHER,
    MG_TLSF_N,
};
extern const char *const mg_tls_fail_names[MG_TLSF_N];
/* Classify from the OpenSSL error (0 = none) and the timeout flag. */
enum mg_tls_fail mg_tls_fail_reason(unsigned long ssl_err, bool timeout);

struct mg_wmetrics {
    atomic_ulong cx_total, cx_active, upstream_rq_total, upstream_cx_total;
    atomic_ulong proxy_protocol[MG_PPR_N];
    atomic_ulong tls_fail[MG_TLSF_N];
    atomic_ulong rq_dropped;            /* label set table full */
    /* request mirroring (upstream/mirror.c): copies sent, dropped (too
     * many in flight, upstream too slow), in flight now */
    atomic_ulong mirror_sent, mirror_dropped, mirror_active;
    atomic_ulong upstream_secure_naming_failed; /* mesh connections refused by secure naming */
    struct mg_rq_slot slots[MG_METRICS_SLOTS];
    struct mg_tcp_slot tcp[MG_TCP_SLOTS];
    struct mg_egress_slot {             /* egress refusals by entrance and reason */
        atomic_int used;
        const char *entrance, *reason;
        atomic_ulong count;
    } egress[MG_EGRESS_SLOTS];
};

struct mg_wmetrics *mg_metrics_new(void);
void mg_metrics_free(struct mg_wmetrics *m);

/* Count one finished request (worker thread only): istio_requests_total
 * and the three histograms. `principal` is the verified peer's SPIFFE URI;
 * `dest` a cluster stat name ("outbound|80||host"), whose host is
 * destination_service. */
void mg_metrics_request(struct mg_wmetrics *m, const struct mg_rq_key *k, uint64_t duration_ms,
                        uint64_t request_bytes, uint64_t response_bytes);

/* A TCP proxy connection to `dest` opened (worker thread only). */
void mg_metrics_tcp_open(struct mg_wmetrics *m, const char *dest, const char *principal, bool mtls,
                         bool inbound);
/* ... and closed, with the bytes it carried each way. */
void mg_metrics_tcp_close(struct mg_wmetrics *m, const char *dest, const char *principal, bool mtls,
                          bool inbound, uint64_t sent, uint64_t received);

/* Count one egress refusal (worker thread only); meshgate_egress_refused_total
 * {entrance, reason}. Both strings must live for the process (static names). */
void mg_metrics_egress_refused(struct mg_wmetrics *m, const char *entrance, const char *reason);

/* Process-wide reload counters (main thread). */
void mg_metrics_reload(bool ok);

/* meshgate_certificate_expiry_seconds{source,name,subject}: the notAfter
 * (Unix seconds) of every certificate the snapshot serves (each TLS
 * Gateway server's, the mesh identity's), so an alert can fire before one
 * lapses: `meshgate_certificate_expiry_seconds - time() < 7*86400`. */
struct mg_snapshot;
void mg_metrics_cert_expiry(struct mg_buf *out, const struct mg_snapshot *s);

/* Render everything (sums over the n per-worker sets) into out. */
void mg_metrics_render(struct mg_buf *out, struct mg_wmetrics *const *per_worker, size_t n);

#endif
