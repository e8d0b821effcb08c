/* tls.h - OpenSSL contexts: server SSL_CTXs per Gateway server (SNI
 * selection, client-certificate modes), the shared session-ticket key ring,
 * and the ALPN choice. Upstream client contexts are upstream/tls_client.c.
 *
 * Every SSL_CTX made here has SSL_OP_IGNORE_UNEXPECTED_EOF (OpenSSL 3 reports a
 * peer's missing close_notify as an error, and libevent 2.1.12 passes it on
 * as BEV_EVENT_ERROR), TLS 1.2 as the floor, and the shared ticket callback
 * (keys outside any SSL_CTX, so resumption survives a reload). Contexts are
 * owned by the snapshot that built them (SSL_CTX_free when it dies). */
#ifndef MG_TLS_H
#define MG_TLS_H
#include <stdbool.h>
#include <stddef.h>
#include <openssl/ssl.h>
#include "config/config.h"

struct mg_srv;
struct mg_port;

/* Process-wide init: ex_data indexes and the first ticket key. Call once on
 * the main thread before any context is built. Returns 0 or -1. */
int mg_tls_init(void);
/* Rotate the ticket key ring when the current key is older than max_age_s
 * (the previous key keeps decrypting, tickets it opened are renewed).
 * Thread-safe; called from a main-thread timer. Returns 1 if rotated. */
int mg_tls_ticket_rotate(long max_age_s);

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

/* The peer-certificate helpers (mg_tls_peer_uri, ...) are in base/tls.h. */
#include "base/tls.h"

#endif
