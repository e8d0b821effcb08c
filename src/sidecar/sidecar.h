/* sidecar/sidecar.h - sidecar inbound listeners with PeerAuthentication. */
#ifndef MG_SIDECAR_SIDECAR_H
#define MG_SIDECAR_SIDECAR_H
#include <stdbool.h>
#include <stdint.h>
#include <openssl/ssl.h>
#include "config/config.h"
#include "base/base.h"
#include "sidecar/types.h"

/* sidecar inbound listeners (Proxy.spec.inbound)
 * with PeerAuthentication enforcement per workload port (STRICT,
 * PERMISSIVE, DISABLE).
 *
 * Each inbound entry becomes a listening port of the snapshot (its `bind`
 * address and port) carrying one synthetic server (hosts "*") whose single
 * route forwards every request to a synthetic cluster "inbound|PORT||"
 * (the local app at forwardTo, plain HTTP/1.1). No VirtualService routing.
 * The policy port (destination.port, Operation ports, portLevelMtls key)
 * is the entry's `port`, not the bind port.
 *
 * Per connection the mTLS mode is taken from the connection's snapshot:
 *   STRICT      TLS with a client certificate chaining to the Proxy
 *               identity's rootCertificates, with exactly one spiffe:// URI
 *               SAN in the trust domain (or an alias); anything else fails
 *               the handshake and the connection is closed.
 *   PERMISSIVE  the first bytes are peeked (MSG_PEEK, nothing consumed): a
 *               ClientHello with an Istio ALPN token is terminated as STRICT;
 *               everything else, non-Istio TLS included, is plain text.
 *   DISABLE     plain text only.
 * Plain text on an HTTP port is HTTP/2 when it starts with the prior
 * knowledge preface (h2c), else HTTP/1.1; on a TCP port it is spliced.
 * ALPN answer (always one of the client's names, RFC 7301): h2, else
 * istio-h2 (both run HTTP/2), else http/1.1, istio-http/1.1, istio-http/1.0
 * (HTTP/1.1); an offer of only istio / istio-peer-exchange gets no ALPN and
 * HTTP/1.1. */
struct mg_snapshot;
struct mg_conn;

/* Compile s->cfg->proxy.inbound into ports of s (s->ports must have room
 * for n_inbound more entries) and synthetic clusters (appended to
 * s->clusters). In gateway mode the entries are ignored with a warning.
 * Errors (bad bind/forwardTo, a bind port used twice or by a Gateway
 * server, unreadable identity) go to d. Sets s->inbound (possibly NULL
 * when there is nothing to serve). Returns 0, or -1 when an error was added. */
int mg_inbound_build(struct mg_snapshot *s, struct mg_diags *d);

/* Free what mg_inbound_build made (not the clusters: the snapshot owns
 * those). NULL is ignored. */
struct mg_inbound_set;
void mg_inbound_free(struct mg_inbound_set *set);

/* conn.c, for a connection accepted on an inbound port: c is on the worker
 * list without a transport; fd is the accepted socket (ownership passes).
 * Decides the mTLS mode and starts TLS or the plain codec; on any failure
 * the connection is closed. */
void mg_inbound_conn_start(struct mg_conn *c, int fd);

/* Codec entry for a connection (plain or after the mesh handshake) on a
 * protocol TCP inbound port (inbound_tcp.c, called by conn.c's codec
 * switch): authorize once with is_http=false, then splice bytes to
 * forwardTo; a denied connection is closed without a byte. */
void mg_inbound_tcp_start(struct mg_conn *c);

/* The effective mode of an inbound port in snapshot s. */
enum mg_mtls_mode mg_inbound_mode(const struct mg_snapshot *s, const struct mg_inbound_port *ip);

/* JSON member (with a leading comma) for /config_dump:
 * ,"inbound":[{"port":80,"bind":"127.0.0.1:15006","forward_to":...,
 * "protocol":"HTTP","mtls_mode":"STRICT","peer_authentication":{"mesh":...,
 * "namespace":...,"workload":...}}] - nothing when there are no inbound ports. */
void mg_inbound_dump(struct mg_buf *out, const struct mg_snapshot *s);

#endif
