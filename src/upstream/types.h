/* upstream/types.h - a compiled cluster (a destination host and port with
 * its endpoints, pool limits and client TLS) as the snapshot holds it and
 * the access log reads it. Types only; the pools and clients are in
 * upstream.h. */
#ifndef MG_UPSTREAM_TYPES_H
#define MG_UPSTREAM_TYPES_H
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <openssl/ssl.h>
#include "config/config.h"
#include "base/base.h"

struct mg_request;
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
    /* Auto mTLS left this endpoint in plain text (no
     * security.istio.io/tlsMode=istio label) while the cluster's other
     * endpoints are reached over ISTIO_MUTUAL: connections to it use no
     * TLS even though the cluster has a client context. */
    bool plain;
    uint32_t weight;                    /* the endpoint's or WorkloadEntry's weight; 1 unset */
    /* Locality-aware balancing (balance.c): the endpoint's priority (0 =
     * nearest, as Envoy numbers them), its locality group (an index of
     * the cluster's loc_weight), and `excluded` when a `distribute` rule
     * gives its locality no share (it is never picked). */
    uint8_t prio;
    uint16_t loc;
    bool excluded;
    char *locality;                     /* "region/zone/subzone" as configured, or NULL */
};

/* Most priorities a cluster uses: lower ones are folded into the last. */
#define MG_LB_MAX_PRIO 32

/* Outlier detection (DestinationRule trafficPolicy.outlierDetection), as
 * Envoy's consecutive-error detectors: one endpoint's passive health,
 * shared by every worker of the instance (relaxed atomics, no lock). The
 * counters are bumped by the worker that saw the outcome; the ejection is
 * taken by that worker with a compare-and-swap; the return to service is
 * decided by the main thread's sweep (outlier.c). */
struct mg_od_ep {
    atomic_uint c5xx, cgw, clocal;      /* consecutive 5xx / gateway / local-origin failures */
    atomic_llong ejected_at;            /* monotonic ms of the current ejection; 0 = in service */
    atomic_uint backoff;                /* ejection time multiplier (times ejected, decays) */
    int64_t back_at;                    /* main thread: when it last came back (0 = never) */
};

struct mg_od {                          /* a cluster's outlier detection */
    int c5xx, cgw, clocal;              /* thresholds; 0 = that detector is off */
    bool split;                         /* splitExternalLocalOriginErrors */
    int64_t interval_ms, base_ms, max_ms;
    int max_eject_pct, min_health_pct;
    size_t n;                           /* endpoints */
    atomic_uint n_ejected;              /* ejected now (reserved before the ejection is taken) */
    int64_t next_sweep;                 /* main thread: the next interval tick */
    struct mg_od_ep *ep;                /* [n] */
};

struct mg_cluster_rt {                  /* one worker's view of a cluster */
    struct mg_uconn *idle;              /* idle keep-alive connections */
    size_t n_open;                      /* connections open (idle + busy + connecting) */
    size_t n_pending;                   /* requests waiting for a connection */
    struct mg_request **pending;        /* FIFO ring, capacity max_pending */
    size_t pend_head, pend_cap;
    size_t rr;
    uint32_t *active;                   /* per endpoint in-flight requests (LEAST_REQUEST) */
    int64_t *cw;                        /* smooth weighted round robin state; NULL unweighted */
    uint32_t *loc_count;                /* [3 * n_locs] scratch of the locality pick */
    int64_t *loc_cw;                    /* [n_locs] smooth weighted round robin over localities */
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
    bool weighted;                      /* endpoints' weights differ (balance.c) */
    /* Locality-aware balancing (localityLbSetting, Envoy's priority and
     * locality-weighted balancers): n_prio priorities of endpoints (<= 1:
     * none), the load going to the nearest that has enough healthy
     * endpoints; n_locs localities (> 1: a locality of the priority is
     * chosen first, by the total weight of its endpoints there, or with
     * `distribute` by loc_weight[n_locs]; NULL otherwise). locality_mode
     * says which applies and why, for explanations. */
    uint8_t n_prio;
    size_t n_locs;
    uint32_t *loc_weight;
    char *locality_mode;
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
    /* ISTIO_MUTUAL (a DestinationRule's mode, or auto mTLS): `tls` presents
     * Proxy.spec.identity and trusts its rootCertificates; the SNI is
     * Envoy's outbound_.<port>_.<subset>_.<host>; the Istio ALPN tokens
     * are offered; the server's one spiffe:// URI SAN must be in a trust
     * domain of mesh_tds and, when mesh_ids is not empty, name one of
     * those identities (alias trust domains equivalent): secure naming.
     * mesh_expected is that rule spelled for the access log. */
    bool mesh;
    bool auto_mtls;                     /* chosen by auto mTLS, not by a DestinationRule */
    char **mesh_ids, **mesh_tds;
    size_t n_mesh_ids, n_mesh_tds;
    char *mesh_expected;
    const char *mesh_ids_from;          /* where mesh_ids came from, for explanations */
    enum mg_up_h2 h2;                   /* plain-HTTP ports: MG_UP_H1 unless upgraded */
    bool use_client_protocol;           /* HTTP/2 downstream -> HTTP/2 upstream (PREFER) */
    uint64_t max_streams_per_conn;      /* http.maxConcurrentStreams; 0 = the peer's limit */
    /* The forward proxy's cluster for destinations with no fixed cluster (a
     * wildcard ServiceEntry's host, an unregistered host under ALLOW_ANY):
     * one placeholder endpoint; every connection dials the request's
     * dial_host and dial_port (http/types.h), a name resolved on the
     * worker's resolver or an IP literal. Connections are kept alive per
     * authority asked for and address dialled (upstream.c: a request
     * resolves its name, passes resolved_refused, then takes an idle
     * connection kept for the same authority at that address, else opens
     * one), at most 32 idle per worker, idle_timeout_ms as other pools. */
    bool dynamic;
    bool forward;                       /* the forward proxy's own, never shared with a route */
    /* The destination is a ServiceEntry of location MESH_EXTERNAL (Istio's
     * default) resolved by DNS or DNS_ROUND_ROBIN: the names its
     * connections resolve are outside addresses, which
     * Proxy.spec.egress.denyResolvedCidrs guards on every entrance. */
    bool external_dns;
    /* Asked with each address a name of this cluster resolved to, before
     * the connect (NULL = never): a non-NULL answer is the access log
     * reason to refuse the request with 403 (the builder sets it for
     * Proxy.spec.egress.denyResolvedCidrs; it decides which requests it
     * covers and counts the refusal). */
    const char *(*resolved_refused)(struct mg_request *r, const struct sockaddr *sa);
    /* DestinationRule trafficPolicy.proxyProtocol: 0 = none, else the
     * version (1 or 2) of the PROXY protocol header that goes first on
     * every new connection, before TLS (proxy_header.c). Such a connection
     * carries one downstream client's addresses, so it serves only
     * requests of that downstream connection (as Envoy keys its pools by
     * them): idle ones are kept per client, at most UP_PP_IDLE_MAX per
     * worker. */
    int proxy_protocol;
    uint64_t max_requests;              /* http.http2MaxRequests (concurrent); 0 = unlimited */
    atomic_ulong g_active;              /* HTTP/2 streams in flight, instance-wide */
    /* Limits hold per proxy instance (as Envoy's circuit breakers): these two
     * are shared by the workers; they change only on connect/close and when
     * a request has to queue, never on the plain request path. */
    atomic_ulong g_open, g_pending;
    int n_workers;
    struct mg_cluster_rt *rt;           /* [n_workers] */
    struct mg_od *od;                   /* NULL = no outlier detection */
};

#endif
