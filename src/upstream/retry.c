/* retry.c - the route's retry policy (VirtualService `retries`, else
 * Istio's default), consulted when an upstream attempt fails. */
#include "upstream/upstream.h"
#include <stdlib.h>
#include <string.h>
#include "http/types.h"
#include "route/types.h"

static bool token_in(const char *list, const char *tok)
{
    size_t tl = strlen(tok);
    const char *p = list;
    while (p && *p) {
        while (*p == ' ' || *p == ',')
            p++;
        const char *e = p;
        while (*e && *e != ',' && *e != ' ')
            e++;
        if ((size_t)(e - p) == tl && strncmp(p, tok, tl) == 0)
            return true;
        p = e;
    }
    return false;
}

/* Is `code` one of the list's numeric tokens (Istio's way of writing
 * retriable status codes: "retryOn: 5xx,429,409")? */
static bool code_in(const char *list, int code)
{
    const char *p = list;
    while (p && *p) {
        while (*p == ' ' || *p == ',')
            p++;
        char *e;
        long v = strtol(p, &e, 10);
        if (e != p && (*e == ',' || *e == ' ' || *e == '\0') && v == code)
            return true;
        while (*p && *p != ',')
            p++;
    }
    return false;
}

/* gRPC status -> its retryOn name (the retriable ones) */
static const char *grpc_cond(int g)
{
    switch (g) {
    case 1: return "cancelled";
    case 4: return "deadline-exceeded";
    case 8: return "resource-exhausted";
    case 13: return "internal";
    case 14: return "unavailable";
    default: return NULL;
    }
}

/* retry_class: "connect-failure", "reset", "refused-stream", "timeout",
 * "status-NNN" (a response's status; "5xx-NNN" too), "grpc-N" (a gRPC
 * status in the response head), "ratelimited" (x-envoy-ratelimited).
 * Envoy's conditions: 5xx, gateway-error, reset, connect-failure,
 * envoy-ratelimited, retriable-4xx (409), refused-stream,
 * retriable-status-codes (the numeric tokens), and the gRPC ones
 * (cancelled, deadline-exceeded, internal, resource-exhausted,
 * unavailable). Istio's default policy (no `retries`) is 2 attempts on
 * connect-failure,refused-stream,unavailable,cancelled and status 503. */
bool mg_upstream_retry_allowed(const struct mg_request *r, const char *cls)
{
    if (r->body_started || r->resp_started)
        return false;
    const struct mg_http_route *h = r->route->cfg;
    int attempts = 2;
    const char *on = "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes,503";
    if (h->has_retries) {
        attempts = h->retries.attempts;
        if (h->retries.retry_on)
            on = h->retries.retry_on;
    }
    if (r->attempts > attempts)
        return false;
    if (strcmp(cls, "ratelimited") == 0)
        return token_in(on, "envoy-ratelimited");
    if (mg_has_prefix(cls, "grpc-")) {
        const char *c = grpc_cond(atoi(cls + 5));
        return c && token_in(on, c);
    }
    int status = mg_has_prefix(cls, "5xx-") ? atoi(cls + 4)
                 : mg_has_prefix(cls, "status-") ? atoi(cls + 7) : 0;
    if (status) {
        return (token_in(on, "5xx") && status >= 500) ||
               (token_in(on, "gateway-error") && status >= 502 && status <= 504) ||
               (token_in(on, "retriable-4xx") && status == 409) ||
               code_in(on, status);     /* Istio turns numeric tokens into retriable codes */
    }
    /* connect failures, resets and per-try timeouts end as 503/504: 5xx and
     * gateway-error cover them too, as in Envoy */
    return token_in(on, cls) || token_in(on, "5xx") || token_in(on, "gateway-error");
}

/* Istio's retryRemoteLocalities (Envoy's previous_priorities retry
 * priority): a retry leaves the priorities already tried. */
bool mg_upstream_retry_remote(const struct mg_request *r)
{
    const struct mg_http_route *h = r->route ? r->route->cfg : NULL;
    return h && h->has_retries && h->retries.retry_remote_localities;
}
