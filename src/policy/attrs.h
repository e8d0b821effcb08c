/* attrs.h - everything an authorization decision can read.
 *
 * The data plane fills one struct mg_attrs per HTTP request (or per TCP
 * connection) and hands it to mg_authz_decide() (policy.h). The policy module
 * only reads it: every pointer is borrowed and must stay valid for the call.
 * A NULL pointer (or family 0 for an address) means "attribute absent":
 * positive matchers on an absent attribute are false, negative ones true
 * (NOT of a false match), which is how plaintext requests lose identity. */
#ifndef MG_POLICY_ATTRS_H
#define MG_POLICY_ATTRS_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include "base/util.h"

/* One request header. Names are lower-case. A repeated header is several
 * entries, one per value: matchers test value by value (CVE-2026-26308). The
 * strings need not be NUL terminated. */
struct mg_header {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
};

struct mg_attrs {
    /* false: TCP context (opaque port, TLS passthrough). HTTP-only fields then
     * follow the ALLOW-drops-rule / DENY-drops-field rule (1.9). */
    bool is_http;

    /* HTTP only (ignored when !is_http). */
    const char *method;                 /* as received, e.g. "GET" */
    const char *host;                   /* :authority / Host, port not stripped */
    const char *path;                   /* normalized path, no query, no fragment */
    size_t path_len;                    /* bytes of path (need not be NUL terminated) */
    /* Header conditions also see the pseudo-headers (util.h
     * mg_pseudo_header): :authority (= host) and :method are `host` and
     * `method` above; these two are :path (normalized path plus "?query",
     * NUL terminated) and :scheme ("http"/"https"). NULL = absent. */
    const char *path_query;
    const char *scheme;
    /* The regular header fields. A "host" entry among them is never
     * consulted: request.headers[host] is `host` above. */
    const struct mg_header *headers;
    size_t n_headers;

    /* Addresses. family 0 = absent. dest.port is the local port the
     * connection arrived on (`ports`, destination.port). */
    struct mg_addr source;              /* direct peer (ipBlocks, source.ip) */
    struct mg_addr remote;              /* original client (1.8), see mg_policy_remote_addr */
    struct mg_addr dest;                /* local address and port */

    const char *sni;                    /* downstream TLS SNI or NULL */

    /* Peer identity: the verified peer certificate's URI SAN without
     * "spiffe://" (e.g. "cluster.local/ns/default/sa/sleep"); NULL when the
     * connection is not mTLS or the certificate has no URI SAN. */
    const char *peer_principal;

    /* Request authentication (a JWT that passed validation); all NULL/0 when
     * there is none. */
    const char *req_iss;                /* iss */
    const char *req_sub;                /* sub */
    const char *const *audiences;       /* aud (string or list) */
    size_t n_audiences;
    const char *presenter;              /* azp */
    const json_t *claims;               /* the verified payload (an object) */
    /* Top-level claims, besides "scope" and "permission", whose string value
     * is split on whitespace into a list (JWTRule.spaceDelimitedClaims). */
    const char *const *space_delimited_claims;
    size_t n_space_delimited_claims;
};

#endif
