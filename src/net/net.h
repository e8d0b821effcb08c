/* net/net.h - workers, listeners, connections, TLS by SNI and the ClientHello
 * peek (step 1). */
#ifndef MG_NET_NET_H
#define MG_NET_NET_H
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <event2/event.h>
#include <event2/dns.h>
#include <openssl/ssl.h>
#include "net/types.h"
#include "base/base.h"
#include "config/config.h"

/* worker threads: one event_base each, its own listeners,
 * connections, upstream pools and counters. The only cross-thread call is
 * mg_worker_post() (mailbox: new snapshot and listener sockets, or stop). */
struct mg_snapshot;
struct mg_conn;
struct mg_wmetrics;
struct mg_jwt_cache;

/* Global connection limit shared by all workers (0 = none). */
extern atomic_ulong mg_cx_active_total;

/* Create n workers (bases, evdns, mailboxes, counters), each holding a
 * reference to the first snapshot. Listener sockets arrive through
 * mg_worker_post(). Does not start threads. Returns the array (aborts on
 * allocation failure, exits if an event_base cannot be made). */
struct mg_worker *mg_workers_new(int n, struct mg_snapshot *snap);
/* Start the threads (signals blocked in them). Returns 0 or -1. */
int mg_workers_start(struct mg_worker *w, int n);
/* Post a new snapshot (a reference is taken per worker) and the worker's
 * listening sockets (copied; sockets the worker already has are ignored). */
void mg_worker_post(struct mg_worker *w, struct mg_snapshot *snap, const struct mg_lfd *fds, size_t n);
/* Ask to stop: close listeners, finish in-flight requests, close idle
 * connections, leave the loop; force-close after drain_ms. */
void mg_worker_stop(struct mg_worker *w, int64_t drain_ms);
/* SIGTERM, before accept stops: from now on every response ends its
 * connection, and every open connection is told so (codec_notice). */
void mg_worker_drain_soon(struct mg_worker *w);
/* Join and free every worker. */
void mg_workers_free(struct mg_worker *w, int n);

/* Called by conn.c when a connection ends (a stopping worker may exit). */
void mg_worker_conn_gone(struct mg_worker *w);

/* one downstream connection: TLS handshake (with its timeout),
 * peer identity, the ALPN switch to a codec, idle/header timeouts, and a
 * refcounted life so no callback frees what it still uses. */
struct mg_worker;
struct mg_snapshot;
struct mg_port;
struct mg_srv;

/* Accept fd (already non-blocking) on worker w for port p. Takes ownership
 * of fd (closed on failure). */
void mg_conn_accept(struct mg_worker *w, const struct mg_port *p, int fd,
                    const struct sockaddr *sa, int salen);

/* After the handshake (or at once for plain text): pick the codec by ALPN
 * ("h2" or http/1.1) and hand the connection to it. */
void mg_conn_start_codec(struct mg_conn *c);

/* c->io is a TLS mg_io in the accepting state (c->ssl set): arm the
 * handshake timeout; on success the peer identity is read and the codec
 * started, on failure the connection is closed. */
void mg_conn_start_handshake(struct mg_conn *c);

/* Worker stopping: ask every codec to close once idle. */
void mg_conn_drain_all(struct mg_worker *w);

/* The PROXY protocol header (versions 1 and 2) a load balancer sends
 * before the client's bytes (proxy_proto.c, pure). */
#define MG_PP_MAX 1040                  /* v2 with TLVs: the 16-byte head + 1024 */
enum mg_pp_status {
    MG_PP_DONE = 0,                     /* a complete, valid header of h->len bytes */
    MG_PP_MORE,                         /* valid so far: read more */
    MG_PP_NONE,                         /* the bytes are no PROXY header */
    MG_PP_BAD,                          /* a PROXY header, malformed: h->error says how */
};
struct mg_pp_header {
    int version;                        /* 1 or 2 */
    bool local;                         /* v1 UNKNOWN, v2 LOCAL or UNSPEC: no client
                                         * address; the socket's addresses stand */
    struct mg_addr src, dst;            /* the client, and the address it connected to */
    size_t len;                         /* bytes of the header */
    const char *error;                  /* static text (MG_PP_BAD) */
};
/* Parse the first n bytes of a connection. */
enum mg_pp_status mg_pp_parse(const unsigned char *b, size_t n, struct mg_pp_header *h);
/* How many of the first n bytes belong to a PROXY header (so a reader can
 * take them off the socket without taking any byte behind the header):
 * everything up to the v1 line's end or the v2 length; 0 when the bytes
 * start no header. */
size_t mg_pp_wanted(const unsigned char *b, size_t n);

/* listening sockets: one SO_REUSEPORT socket per worker and
 * port, created on the main thread before the workers start and kept across
 * reloads; each worker accepts in its own base (bounded accepts per wakeup;
 * EMFILE disables the listener and retries on a timer). */
/* Open a non-blocking SO_REUSEPORT TCP socket bound to addr:port and
 * listening. Returns the fd, or -1 with a message in err. */
int mg_listener_open(const char *addr, uint16_t port, char *err, size_t errlen);

/* Start accepting on a worker for one socket (called in the worker thread). */
int mg_listener_attach(struct mg_worker *w, struct mg_wlistener *wl);
/* Stop accepting and free the accept event (the fd stays open: it is
 * the main thread's). */
void mg_listener_detach(struct mg_wlistener *wl);

/* OpenSSL contexts: server SSL_CTXs per Gateway server (SNI
 * selection, client-certificate modes), the shared session-ticket key ring,
 * and the ALPN choice. Upstream client contexts are upstream/tls_client.c.
 *
 * Every SSL_CTX made here has SSL_OP_IGNORE_UNEXPECTED_EOF (OpenSSL 3 reports a
 * peer's missing close_notify as an error, and libevent 2.1.12 passes it on
 * as MG_IO_ERROR), TLS 1.2 as the floor, and the shared ticket callback
 * (keys outside any SSL_CTX, so resumption survives a reload). Contexts are
 * owned by the snapshot that built them (SSL_CTX_free when it dies). */
struct mg_srv;
struct mg_port;

/* Process-wide init: ex_data indexes and the first ticket key. Call once on
 * the main thread before any context is built. Returns 0 or -1. */
int mg_tls_init(void);
/* Rotate the ticket key ring when the current key is older than max_age_s
 * (the previous key keeps decrypting, tickets it opened are renewed).
 * Thread-safe; called from a main-thread timer. Returns 1 if rotated. */
int mg_tls_ticket_rotate(long max_age_s);
/* Proxy.spec.tls.sessionTicketKeys: the keys of a file shared by a fleet,
 * in HAProxy's tls-ticket-keys format (base64 lines of 48 or 80 bytes;
 * blank lines and # comments skipped) or nginx's ssl_session_ticket_key
 * format (one key of 48 or 80 raw bytes). The first key encrypts, all
 * decrypt. NULL and a message in err when the file is unreadable or any
 * key is malformed. */
struct mg_ticket_keys;
struct mg_ticket_keys *mg_tls_ticket_keys_load(const char *path, char *err, size_t errlen);
void mg_tls_ticket_keys_free(struct mg_ticket_keys *ks);
bool mg_tls_ticket_keys_same(const struct mg_ticket_keys *a, const struct mg_ticket_keys *b);
/* Make ks the process's ring (main thread, once its snapshot is active);
 * NULL = back to our own rotated keys if the file's were in use. The 12 h
 * rotation leaves file keys alone. */
void mg_tls_ticket_keys_install(const struct mg_ticket_keys *ks);

/* Build the SSL_CTX of one Gateway server (SIMPLE, MUTUAL, OPTIONAL_MUTUAL,
 * ISTIO_MUTUAL). `srv` is stored in the context (ex_data) so the verify and
 * SNI callbacks can find their server. Returns NULL and a message in err on
 * any failure (missing/unreadable credential, bad key, CA missing). */
SSL_CTX *mg_tls_server_ctx_new(const struct mg_config *c, const struct mg_server *s,
                               struct mg_srv *srv, char *err, size_t errlen);

/* Attach the SNI selection callback of `port` to ctx (every server context on
 * a TLS port gets it; the first one is the port's initial context). */
void mg_tls_set_sni(SSL_CTX *ctx, struct mg_port *port);

/* The server that SNI chose for this connection (NULL before/without). */
struct mg_srv *mg_tls_selected_server(const SSL *ssl);

/* Offer h2 in ALPN (set by the HTTP/2 module once it exists). */
extern bool mg_tls_alpn_h2;

/* The peer-certificate helpers (mg_tls_peer_uri, ...) are in base/base.h. */

/* the one ClientHello parser: reads the server name and the
 * ALPN offer of a TLS ClientHello without consuming it. Two readers use it:
 * PASSTHROUGH servers route on the server name (l4/passthrough.c), and a
 * sidecar inbound port in PERMISSIVE mode takes a hello whose ALPN carries
 * an Istio token as mesh mTLS and anything else as plain text
 * (sidecar/inbound.c).
 *
 * Pure and bounded: only the first TLS record is examined (at most 5 +
 * 16384 bytes), every length is checked against what remains, nothing is
 * allocated, buf is only read. */
/* Largest prefix worth peeking: one record header plus a maximal fragment. */
#define MG_TLS_PEEK_MAX (5 + 16384)

/* Longest server name reported (a DNS name is at most 253 characters). */
#define MG_TLS_SNI_MAX 255

/* mg_tls_hello_peek's answer. */
enum mg_tls_hello_rc {
    MG_TLS_HELLO_BAD = -1,              /* not a TLS handshake record, not a ClientHello, or malformed */
    MG_TLS_HELLO_MORE = 0,              /* consistent so far: more bytes are needed */
    MG_TLS_HELLO_OK = 1,                /* the first record holds a complete ClientHello */
};

/* Rules a reader adds to the record and handshake framing every reader
 * shares. A rule names what the reader decides on: it refuses the hello
 * when that part is not exactly what TLS servers accept, where a reader
 * that does not look at the part only gets no value for it. */
enum mg_tls_hello_rules {
    /* server_name: one extension holding exactly one host_name entry,
     * non-empty, without NUL, at most MG_TLS_SNI_MAX bytes, as BoringSSL
     * (Envoy's tls_inspector) and OpenSSL take it. A list with more names,
     * another name type or a second extension is refused rather than read
     * for one of its names: the backend may read a different entry than
     * the one routed on. */
    MG_TLS_HELLO_SNI_RULE = 1u << 0,
    /* application_layer_protocol_negotiation: at most one extension, a
     * non-empty list of non-empty names filling it exactly. */
    MG_TLS_HELLO_ALPN_RULE = 1u << 1,
    /* the hello body: a non-empty, even cipher_suites list, a non-empty
     * compression_methods list, and nothing after the extensions block. */
    MG_TLS_HELLO_BODY_RULE = 1u << 2,
};

/* What each reader needs: routing decides on the server name; the mesh
 * detection on the ALPN offer of a well-formed hello. */
#define MG_TLS_HELLO_ROUTE (MG_TLS_HELLO_SNI_RULE)
#define MG_TLS_HELLO_MESH (MG_TLS_HELLO_ALPN_RULE | MG_TLS_HELLO_BODY_RULE)

struct mg_tls_hello {
    /* the host_name of the one well-formed server_name extension,
     * lower-cased; "" when there is none (or, without the SNI rule, when
     * the extension is repeated or malformed) */
    char sni[MG_TLS_SNI_MAX + 1];
    /* the ALPN protocol_name_list as offered (each name behind its one-byte
     * length), pointing into buf; NULL when there is no single well-formed
     * ALPN extension */
    const unsigned char *alpn;
    size_t alpn_len;
    bool has_alpn;                      /* alpn is set */
    bool istio;                         /* istio, istio-peer-exchange, istio-http/1.0|1.1, istio-h2 */
    bool h2;                            /* "h2" or "istio-h2" offered */
    bool http11;                        /* "http/1.1", "istio-http/1.1" or "istio-http/1.0" offered */
};

/* Parse buf[0..len) as the start of a TLS stream under `rules` (a set of
 * enum mg_tls_hello_rules). Returns MG_TLS_HELLO_OK when the first record
 * holds a complete ClientHello (out filled), MG_TLS_HELLO_MORE when more
 * bytes are needed (only while len < MG_TLS_PEEK_MAX), MG_TLS_HELLO_BAD as
 * soon as the bytes present can no longer begin a ClientHello that fits
 * in the first record. A decision other than MORE is final: more bytes
 * never change it.
 *
 * out is cleared first and filled as the walk goes, one extension at a
 * time; after MG_TLS_HELLO_BAD it holds what was read before the flaw (a
 * refused PASSTHROUGH connection is logged with that server name) and
 * must not be acted on. */
int mg_tls_hello_peek(const unsigned char *buf, size_t len, unsigned rules, struct mg_tls_hello *out);

/* Is the ALPN protocol name p[0..n) an Istio mesh token? */
bool mg_tls_alpn_is_istio(const unsigned char *p, size_t n);

#endif
