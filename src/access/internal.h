/* access/internal.h - what only access/ uses: the ext_authz HTTP client. */
#ifndef MG_ACCESS_INTERNAL_H
#define MG_ACCESS_INTERNAL_H
#include <stdbool.h>
#include <stddef.h>
#include "config/config.h"

/* the HTTP ext_authz client (Istio envoyExtAuthzHttp, Envoy's
 * HTTP authorization service) used by AuthorizationPolicy action CUSTOM.
 *
 * One check = one plain HTTP/1.1 connection on the worker's event base to
 * one endpoint of the provider's cluster (a ServiceEntry host; an endpoint
 * given by name is resolved with the worker's evdns base), closed after the
 * answer. The provider timeout covers resolution, connect and the answer. The check request copies the original request the way
 * Envoy does: the same method, path = pathPrefix + the (normalized) path
 * and query, Host = the original authority, Content-Length: 0, the
 * Authorization header, and every header matching
 * includeRequestHeadersInCheck - each value of a repeated header on its own
 * line (CVE-2021-32777). The answer: 200 allows (headers matching
 * headersToUpstreamOnAllow are to be set on the upstream request); a 5xx,
 * a malformed answer, connect failure or the provider timeout is an error
 * (statusOnError unless failOpen); any other status denies with that
 * status, the body and the headers matching headersToDownstreamOnDeny.
 * The answer head is parsed by the strict HTTP/1 parser; the whole answer
 * is bounded to MG_EXTAUTHZ_MAX_RESPONSE bytes (larger = error), and a
 * worker runs at most MG_EXTAUTHZ_MAX_INFLIGHT checks at once (more = error,
 * so statusOnError / failOpen decide). */
#define MG_EXTAUTHZ_MAX_RESPONSE (64 * 1024)
#define MG_EXTAUTHZ_MAX_HEADERS 16       /* headers kept from one answer */
#define MG_EXTAUTHZ_MAX_INFLIGHT 1024    /* checks per worker at once; more fail at once */

struct mg_request;
struct mg_cluster;
struct mg_extauthz_call;

enum mg_extauthz_verdict { MG_EXTAUTHZ_ALLOW = 0, MG_EXTAUTHZ_DENY, MG_EXTAUTHZ_ERROR };

/* The outcome. Strings live in the request's arena. */
struct mg_extauthz_result {
    enum mg_extauthz_verdict verdict;
    int status;                         /* provider status (DENY), 0 otherwise */
    const char *body;                   /* DENY: provider body (NUL terminated) */
    const char *error;                  /* ERROR: short reason for the log */
    struct mg_kv headers[MG_EXTAUTHZ_MAX_HEADERS];   /* ALLOW: to upstream; DENY: to downstream */
    size_t n_headers;
};

/* Completion: called exactly once unless the call was cancelled, from the
 * worker's event loop (never from inside mg_extauthz_start). The call is
 * already detached when it runs (the callback may release r). */
typedef void (*mg_extauthz_done_fn)(struct mg_request *r, const struct mg_extauthz_result *res);

/* Does a header name match one of Istio's patterns ("abc" exact, "abc*"
 * prefix, "*abc" suffix; case-insensitive)? */
bool mg_extauthz_header_listed(const struct mg_slist *patterns, const char *name);

/* Start a check for r against provider p reached through cluster cl (NULL
 * = the provider's service is unknown: completes with ERROR). Returns the
 * call handle (owned by this module until completion or cancel). */
struct mg_extauthz_call *mg_extauthz_start(struct mg_request *r, const struct mg_ext_provider *p,
                                           struct mg_cluster *cl, mg_extauthz_done_fn done);

/* Abandon a call (request released): no callback, resources freed. */
void mg_extauthz_cancel(struct mg_extauthz_call *c);

#endif
