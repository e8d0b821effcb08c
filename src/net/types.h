/* net/types.h - what every step of the request path shares with net/: the
 * downstream connection and the worker thread that owns it. Types and static
 * inline accessors only. What a later step asks of a connection (close it,
 * drop a reference) goes through the operations net/ sets at accept, so no
 * step calls into net/ by name. Worker threads, listeners and the accept
 * path itself are in net/net.h. */
#ifndef MG_NET_TYPES_H
#define MG_NET_TYPES_H
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <openssl/ssl.h>
#include <event2/dns.h>
#include <event2/event.h>
#include "base/base.h"
#include "geoip/geoip.h"

struct mg_snapshot;
struct mg_port;
struct mg_srv;
struct mg_wmetrics;
struct mg_jwt_cache;
struct mg_conn;
struct mg_pp_read;

/* What a codec or a later step may do to a connection (net/conn.c). */
struct mg_conn_ops {
    /* Close now: close_notify once (a peer otherwise sees an unexpected
     * EOF), free the transport, leave the worker's list. Idempotent. */
    void (*close)(struct mg_conn *c);
    /* Close after an error reply that is already flushed: half-close and
     * drop what the client still sends (bounded, 2 s) so the reply is not
     * lost to a TCP reset. TLS connections are closed at once. */
    void (*close_lingering)(struct mg_conn *c);
    /* The last reference is gone: free the codec state and the connection. */
    void (*release)(struct mg_conn *c);
};

struct mg_peer_id {
    char principal[256];
    char peer_uri[272];
    char cert_hash[65];
};

struct mg_conn {
    struct mg_conn *prev, *next;        /* worker list */
    struct mg_worker *w;
    struct mg_snapshot *snap;           /* own reference */
    const struct mg_port *port;
    struct mg_io *io;
    SSL *ssl;                           /* owned by io; NULL for plain text */
    struct mg_addr peer, local;         /* the socket's: peer = source.ip, ipBlocks */
    char peer_str[64], local_str[64];
    /* The client as far as this gateway can know it: the source of a PROXY
     * protocol header, else the peer. remote.ip falls back to it (Istio:
     * remoteIpBlocks honour the PROXY protocol, ipBlocks never do), and
     * X-Forwarded-For and the access log's remote address carry it. */
    struct mg_addr client;
    char client_str[64];
    /* The address the client connected to: a PROXY protocol header's
     * destination, else `local`. With `client`, what an upstream PROXY
     * protocol header carries (DestinationRule proxyProtocol). */
    struct mg_addr client_dst;
    bool proxied;                       /* client came from a PROXY protocol header */
    struct mg_pp_read *pp;              /* reading that header (conn.c), else NULL */
    struct mg_srv *sni_srv;             /* server chosen by SNI */
    char sni[256];
    /* A client certificate's identity: "" without one. The strings live
     * in `id`, allocated only when a peer presented a certificate (600
     * bytes a plain or server-only TLS connection does not hold). */
    const char *principal;              /* policy peer principal, mg_tls_peer_principal */
    const char *peer_uri;               /* full URI SAN */
    const char *cert_hash;              /* hex sha256 of the client cert */
    struct mg_peer_id *id;
    const char *principal_label;        /* interned peer URI for metrics (NULL = none) */
    struct mg_geo_cache geo;            /* GeoIP of the peer and the last X-Forwarded-For client */
    size_t linger_bytes;
    int refs;
    bool closing;
    bool handshake_done;
    int64_t start_ms;
    const struct mg_conn_ops *ops;      /* set by net/ at accept */
    void *codec;                        /* h1 state (or h2 later) */
    void (*codec_free)(struct mg_conn *c);
    /* graceful stop: the codec closes when idle; returns true if it closed now */
    bool (*codec_drain)(struct mg_conn *c);
    /* The gateway is draining: announce the end (HTTP/1.1 Connection: close
     * on the next response, HTTP/2 GOAWAY) without closing anything now.
     * NULL = nothing to announce (tunnels). */
    void (*codec_notice)(struct mg_conn *c);
};

struct mg_lfd {                         /* a listening socket handed to a worker */
    uint16_t port;
    int fd;
};

struct mg_wlistener {
    uint16_t port;
    int fd;
    struct event *ev;                   /* accept readiness */
    struct event *retry;                /* EMFILE back-off */
    struct mg_worker *w;
};

struct mg_worker {
    int id;
    pthread_t thread;
    struct event_base *base;
    struct evdns_base *dns;
    struct mg_dns *resolver;            /* dns with an answer cache (base.h) */
    struct event *mbox;
    pthread_mutex_t mu;                 /* guards the mail fields only */
    struct mg_snapshot *mail_snap;
    struct mg_lfd *mail_fds;
    size_t mail_n;
    bool mail_stop;
    bool mail_drain;                    /* tell every connection the gateway is draining */
    int64_t drain_ms;

    struct mg_snapshot *snap;           /* current generation (own ref) */
    struct mg_wlistener **ls;           /* each allocated alone: events point at them */
    size_t n_ls;
    struct mg_conn *conns;              /* all live downstream connections */
    size_t n_conns;
    bool stopping;
    /* Set by the main thread on SIGTERM, before accept stops: every
     * response from now on ends its connection (HTTP/1.1 Connection:
     * close, HTTP/2 GOAWAY), so clients move to the other instances a load
     * balancer still sends to. */
    atomic_bool draining;
    struct event *drain_timer;
    struct event *stale_timer;          /* drain deadline of connections from older generations */
    struct mg_wmetrics *metrics;
    struct mg_jwt_cache *jwt_cache;     /* verified tokens (access phase, this worker only); NULL
                                         * when MESHGATE_JWT_CACHE_ENTRIES=0 (benchmark knob) */
    uint32_t rnd;                       /* xorshift state */
    atomic_bool done;                   /* thread finished */
};

/* Reference counting (one worker thread: no atomics); the last unref frees
 * the connection through its operations. */
static inline void mg_conn_ref(struct mg_conn *c)
{
    c->refs++;
}

static inline void mg_conn_unref(struct mg_conn *c)
{
    if (--c->refs == 0)
        c->ops->release(c);
}

static inline void mg_conn_close(struct mg_conn *c)
{
    c->ops->close(c);
}

static inline void mg_conn_close_lingering(struct mg_conn *c)
{
    c->ops->close_lingering(c);
}

/* Cheap per-worker random number (not for cryptography). */
static inline uint32_t mg_worker_rand(struct mg_worker *w)
{
    return mg_rand32(&w->rnd);
}

#endif
