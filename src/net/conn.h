/* conn.h - one downstream connection: TLS handshake (with its timeout),
 * peer identity, the ALPN switch to a codec, idle/header timeouts, and a
 * refcounted life so no callback frees what it still uses. */
#ifndef MG_CONN_H
#define MG_CONN_H
#include <stdbool.h>
#include <stdint.h>
#include <openssl/ssl.h>
#include <event2/bufferevent.h>
#include "base/util.h"

struct mg_worker;
struct mg_snapshot;
struct mg_port;
struct mg_srv;

struct mg_conn {
    struct mg_conn *prev, *next;        /* worker list */
    struct mg_worker *w;
    struct mg_snapshot *snap;           /* own reference */
    const struct mg_port *port;
    struct bufferevent *bev;
    SSL *ssl;                           /* owned by bev; NULL for plain text */
    struct mg_addr peer, local;
    char peer_str[64], local_str[64];
    struct mg_srv *sni_srv;             /* server chosen by SNI */
    char sni[256];
    char principal[256];                /* policy peer principal, mg_access_peer_principal ("" = none) */
    char peer_uri[272];                 /* full URI SAN */
    char cert_hash[65];                 /* hex sha256 of the client cert ("" = none) */
    const char *principal_label;        /* interned peer URI for metrics (NULL = none) */
    size_t linger_bytes;
    int refs;
    bool closing;
    bool handshake_done;
    int64_t start_ms;
    void *codec;                        /* h1 state (or h2 later) */
    void (*codec_free)(struct mg_conn *c);
    /* graceful stop: the codec closes when idle; returns true if it closed now */
    bool (*codec_drain)(struct mg_conn *c);
};

/* Accept fd (already non-blocking) on worker w for port p. Takes ownership
 * of fd (closed on failure). */
void mg_conn_accept(struct mg_worker *w, const struct mg_port *p, int fd,
                    const struct sockaddr *sa, int salen);

void mg_conn_ref(struct mg_conn *c);
void mg_conn_unref(struct mg_conn *c);          /* frees at zero */
/* Close now: SSL_shutdown once (trap 5), free the bufferevent, drop the
 * list's reference. Idempotent. */
void mg_conn_close(struct mg_conn *c);
/* Close after an error reply that is already flushed: half-close and drop
 * what the client still sends (bounded, 2 s) so the reply is not lost to a
 * TCP reset. TLS connections are closed at once. */
void mg_conn_close_lingering(struct mg_conn *c);

/* After the handshake (or at once for plain text): pick the codec by ALPN
 * ("h2" or http/1.1) and hand the connection to it. */
void mg_conn_start_codec(struct mg_conn *c);

/* c->bev is a TLS bufferevent in the accepting state (c->ssl set): arm the
 * handshake timeout; on success the peer identity is read and the codec
 * started, on failure the connection is closed. */
void mg_conn_start_handshake(struct mg_conn *c);

/* Worker stopping: ask every codec to close once idle. */
void mg_conn_drain_all(struct mg_worker *w);

/* HTTP/1 codec entry (h1_server.c). */
void mg_h1_server_start(struct mg_conn *c);

#endif
