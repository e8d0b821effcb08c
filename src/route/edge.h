/* edge.h - the headers a client may not send: what the proxy removes from
 * a request and sets itself before server selection, routing and
 * authorization (the README, "Headers").
 *
 * One list, one sanitising function: the data plane (http/request.c) and
 * `meshgate authz` (cmd/authz.c) both call mg_edge_sanitize(), so a policy
 * on these headers decides offline as it does live. Pure: no I/O, no
 * allocation, no libevent. */
#ifndef MG_ROUTE_EDGE_H
#define MG_ROUTE_EDGE_H
#include <stdbool.h>
#include <stddef.h>
#include "config/config.h"             /* struct mg_kv */

/* Does the edge drop the client's header `name` (lower-case)? True for the
 * headers only the proxy may set (x-envoy-*, x-meshgate-*,
 * x-forwarded-client-cert, x-forwarded-proto), the hop-by-hop headers
 * (connection, keep-alive, proxy-connection, te, trailer,
 * transfer-encoding, upgrade) and any header a Connection header among
 * h[0..n) names (comma-separated tokens, case-insensitive). */
bool mg_edge_drops(const struct mg_kv *h, size_t n, const char *name);

/* What the proxy sets in their place; NULL = not set. */
struct mg_edge_own {
    const char *proto;                  /* x-forwarded-proto: "http" / "https" */
    const char *external_address;       /* x-envoy-external-address: the peer IP */
    const char *xfcc;                   /* x-forwarded-client-cert (mg_edge_xfcc) */
};

/* The client's headers in[0..n) as the request continues: every header
 * mg_edge_drops() names removed, the rest in order, then the proxy's own
 * x-forwarded-proto, x-envoy-external-address and x-forwarded-client-cert
 * (those `own` gives). out must not overlap in and has room for n + 3
 * entries; the entries borrow in's strings and own's. Returns the count
 * written to out. */
size_t mg_edge_sanitize(const struct mg_kv *in, size_t n, const struct mg_edge_own *own,
                        struct mg_kv *out);

/* The proxy's x-forwarded-client-cert (Istio's SANITIZE_SET) for a verified
 * client certificate: "By=<by>;Hash=<hash>;URI=<uri>", each element left
 * out when its value is NULL (and Hash and URI also when empty). `by` is
 * the proxy's own SPIFFE ID, `hash` the certificate's hex SHA-256, `uri`
 * its URI SAN (with "spiffe://"). Writes at most cap bytes, NUL terminated
 * when cap > 0, as snprintf; returns the length of the full value. */
size_t mg_edge_xfcc(char *buf, size_t cap, const char *by, const char *hash, const char *uri);

#endif
