/* snapshot.h - one immutable, refcounted generation of compiled
 * configuration: listener ports, servers with their SSL_CTXs and route
 * tables, upstream clusters. Built on the main thread from a loaded
 * mg_config (which the snapshot then owns, shared with the generations a
 * certificate rotation compiles from it again); read by every worker
 * without locks. A connection holds a reference for its whole life, so a
 * reload never changes what an in-flight request sees. */
#ifndef MG_SNAPSHOT_H
#define MG_SNAPSHOT_H
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <openssl/ssl.h>
#include "config/config.h"
#include "base/base.h"
#include "route/types.h"
#include "geoip/geoip.h"

struct mg_port;
struct mg_conn;
struct mg_cluster;
struct mg_access;
struct mg_egress;
struct mg_inbound_port;
struct mg_inbound_set;
struct mg_model;
struct mg_ticket_keys;

struct mg_tls_route_c {                 /* a VirtualService tls[] (or tcp[]) entry */
    const struct mg_tls_route *cfg;     /* NULL for a tcp route */
    const struct mg_tcp_route *tcp;     /* NULL for a tls route */
    const struct mg_virtual_service *vs;
    struct mg_wdest *dests;
    size_t n_dests;
    int total_weight;
};

struct mg_srv {                         /* one compiled Gateway server */
    const struct mg_gateway *gw;        /* NULL for the forward proxy's (fwd_server) */
    const struct mg_server *cfg;
    struct mg_port *port;
    char **hosts;                       /* dnsName part, lower-case */
    size_t n_hosts;
    bool tls;                           /* terminates TLS (HTTPS, TLS non-passthrough) */
    bool redirect;                      /* plain HTTP with httpsRedirect */
    bool passthrough;                   /* TLS not terminated: routed by SNI (tls routes) */
    bool tcp;                           /* plain TCP server: VirtualService tcp routes */
    /* ALPN offers http/1.1 only (the forward proxy's TLS listener: CONNECT
     * and absolute-form requests are HTTP/1.1 here), else h2 too */
    bool alpn_http11_only;
    SSL_CTX *ctx;                       /* tls only */
    char *ciphers;                      /* TLS 1.2 cipher list (copied to the SSL on SNI switch) */
    unsigned char *ocsp;                /* DER OCSP response stapled when asked; NULL = none */
    size_t ocsp_len;
    unsigned char sid[32];              /* session id context (tls.c: server_sid) */
    unsigned char tls_id[32];           /* settings + certificate (tls.c: server_tls_id) */
    struct mg_route_table routes;
    char *label;                        /* "gw-ns/gw-name/index" for logs */
};

/* A destination the forward proxy serves absolute-form requests for: one
 * exact host and port of a visible ServiceEntry, with the route the request
 * path runs (no match, no rewrite; Istio's default retries) to its cluster. */
struct mg_fwd_route {
    char *host;                         /* lower-case */
    uint16_t port;
    struct mg_route route;
    struct mg_http_route cfg;
    struct mg_route_dest dest;
};

struct mg_port {                        /* one listening port */
    uint16_t number;
    bool tls;                           /* TLS handshake first */
    bool passthrough;                   /* SNI peeked, bytes spliced to the tls route */
    bool tcp;                           /* protocol TCP: spliced to the first tcp route */
    bool forward;                       /* the forward proxy (Proxy.spec.outbound.bind) */
    bool proxy_protocol;                /* a PROXY protocol header comes first (net/) */
    struct mg_srv **srv;
    size_t n_srv;
    struct mg_tls_route_c **tls_routes; /* passthrough: VS tls routes in order */
    size_t n_tls_routes;
    const char *bind_ip;                /* NULL = Proxy bindAddress (inbound ports bind their own) */
    struct mg_inbound_port *inbound;    /* sidecar inbound listener (sidecar/sidecar.h), else NULL */
    /* How a connection of this port enters its codec, set by the builder
     * (control/build.c) so that net/ names no protocol: `accept` replaces
     * net's TLS-or-plain start (the sidecar's PeerAuthentication peek);
     * `start` runs after the handshake (or at once for plain text), unless
     * ALPN chose h2 and `start_h2` is set. */
    void (*accept)(struct mg_conn *c, int fd);
    void (*start)(struct mg_conn *c);
    void (*start_h2)(struct mg_conn *c);
    /* The forward proxy port: where a connection whose first request is
     * not a CONNECT continues (the HTTP/1 codec). */
    void (*start_http)(struct mg_conn *c);
};

struct mg_snapshot {
    atomic_int refs;
    uint64_t generation;
    /* The generation whose configuration model (policies, routes, modes:
     * everything but the certificate material) this one carries. A
     * certificate rotation compiles the same model again and keeps it, so
     * connections of the previous generation are not recycled
     * (mg_snapshot_recycles); a configuration reload loads a new model and
     * takes its own generation. */
    uint64_t policy_gen;
    struct mg_config *cfg;              /* = model's, read-only */
    struct mg_model *model;             /* owns cfg; shared with rotations of it */
    char *spiffe_id;                    /* own identity (for XFCC By=) */
    /* Proxy.spec.identity as an ISTIO_MUTUAL client (NULL without one, or
     * when it does not load: the clusters that need it report why). A
     * worker's new mesh connections take it from the worker's newest
     * generation, so that after a rotation the upstream connections opened
     * for older downstream connections present the new certificate too. */
    SSL_CTX *mesh_client;
    int n_workers;
    struct mg_port *ports;
    size_t n_ports;
    struct mg_srv *srvs;
    size_t n_srvs;
    struct mg_route *routes;            /* every compiled route (owned here) */
    size_t n_routes;
    struct mg_tls_route_c *tls_routes;  /* owned */
    size_t n_tls_routes, cap_tls_routes;
    struct mg_cluster **clusters;
    size_t n_clusters, cap_clusters;
    uint16_t https_port;                /* redirect target port (0 = default 443) */
    struct mg_access *access;           /* compiled policies, ext_authz clusters (access.h) */
    struct mg_egress *egress;           /* visible ServiceEntry registry (egress/egress.h) */
    char *outbound_ip;                  /* the forward proxy port's bind address, NULL = none */
    /* PROXY protocol (ports with proxy_protocol): the peers that may send
     * a header (none = any), and whether a connection without one is let
     * through as it is */
    struct mg_ticket_keys *ticket_keys; /* Proxy.spec.tls.sessionTicketKeys, loaded; NULL = own keys */
    struct mg_cidr *pp_trusted;
    size_t n_pp_trusted;
    bool pp_allow_without;
    struct mg_fwd_route *fwd_routes;    /* absolute-form destinations of the forward proxy */
    size_t n_fwd_routes;
    /* The forward proxy's route for an allowed authority with no route of
     * its own (a wildcard entry's host; any host under ALLOW_ANY): to the
     * dynamic cluster (upstream/types.h), which dials the request's
     * dial_host. NULL without a forward proxy. */
    struct mg_fwd_route *fwd_any;
    /* Proxy.spec.outbound.tls as the one server of the forward proxy's port
     * (gw NULL, hosts "*", protocol HTTPS; its tls a shallow copy of the
     * model's, which outlives the snapshot): the TLS listener is built,
     * watched and dumped as a Gateway server's. NULL when the forward
     * proxy is plain text. */
    struct mg_server *fwd_server;
    struct mg_inbound_set *inbound;     /* sidecar inbound ports (sidecar/sidecar.h), NULL = none */
    struct mg_geoip *geoip;             /* MeshConfig geoipDatabase, opened and checked; NULL = none */
    void (*destroy)(struct mg_snapshot *s);   /* frees it all (control/build.c) */
};

/* Reference counting; the last unref frees everything through s->destroy,
 * which the builder set (any thread: the free touches no event loop). NULL
 * is ignored. */
struct mg_snapshot *mg_snapshot_ref(struct mg_snapshot *s);
void mg_snapshot_unref(struct mg_snapshot *s);

/* Must a connection that started on `old` be drained now that `cur` serves?
 * Yes after a configuration reload (new policies, routes, mTLS modes apply
 * to every later request); no when only certificate files rotated, so that
 * rotation drops no connection (as Envoy's SDS updates). */
static inline bool mg_snapshot_recycles(const struct mg_snapshot *old, const struct mg_snapshot *cur)
{
    return old != cur && old && cur && old->policy_gen != cur->policy_gen;
}

/* Do two servers of a port present the same TLS: mode, protocol bounds,
 * ciphers, certificate and chain, client-certificate requirements and trust
 * material (tls_id, a digest of all of it made when the server's context was
 * built)? A request whose Host selects another server than the SNI did is
 * answered 421 unless they do. */
static inline bool mg_srv_same_tls(const struct mg_srv *a, const struct mg_srv *b)
{
    if (a == b)
        return true;
    return a->ctx && b->ctx && memcmp(a->tls_id, b->tls_id, sizeof(a->tls_id)) == 0;
}

/* The forward proxy's route for host (lower-case) and port, NULL = none. */
const struct mg_fwd_route *mg_snapshot_fwd_route(const struct mg_snapshot *s, const char *host,
                                                 uint16_t port);

const struct mg_port *mg_snapshot_port(const struct mg_snapshot *s, uint16_t number);

/* The server of a TLS port for `sni` (NULL/"" = no SNI): exact host first,
 * then the longest wildcard, then "*"; NULL = refuse the handshake. */
struct mg_srv *mg_port_sni_server(const struct mg_port *p, const char *sni);

/* The server of a port for a request Host (lower-case, no port), same order. */
struct mg_srv *mg_port_host_server(const struct mg_port *p, const char *host);

#endif
