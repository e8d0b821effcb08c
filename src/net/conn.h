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
#include "net/types.h"

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

/* c->bev is a TLS bufferevent in the accepting state (c->ssl set): arm the
 * handshake timeout; on success the peer identity is read and the codec
 * started, on failure the connection is closed. */
void mg_conn_start_handshake(struct mg_conn *c);

/* Worker stopping: ask every codec to close once idle. */
void mg_conn_drain_all(struct mg_worker *w);

#endif
