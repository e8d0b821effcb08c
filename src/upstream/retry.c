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

/* retry_class: "connect-failure", "reset", "refused-stream", "timeout",
 * "5xx-502".."5xx-599" (a response status). Istio's default policy (no
 * `retries`) is 2 attempts on connect-failure,refused-stream,unavailable,
 * cancelled,retriable-status-codes(503). */
bool mg_upstream_retry_allowed(const struct mg_request *r, const char *cls)
{
    if (r->body_started || r->resp_started)
        return false;
    const struct mg_http_route *h = r->route->cfg;
    int attempts = 2;
    const char *on = "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes";
    if (h->has_retries) {
        attempts = h->retries.attempts;
        if (h->retries.retry_on)
            on = h->retries.retry_on;
    }
    if (r->attempts > attempts)
        return false;
    int status = mg_has_prefix(cls, "5xx-") ? atoi(cls + 4) : 0;
    if (status) {
        return token_in(on, "5xx") ||
               (token_in(on, "gateway-error") && status >= 502 && status <= 504) ||
               (token_in(on, "retriable-status-codes") && status == 503);
    }
    /* connect failures, resets and per-try timeouts end as 503/504: 5xx and
     * gateway-error cover them too, as in Envoy */
    return token_in(on, cls) || token_in(on, "5xx") || token_in(on, "gateway-error");
}
