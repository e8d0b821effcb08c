/* fault.c - the route's fault injection (VirtualService fault), as
 * Envoy's fault filter: after authorization, before the upstream; a delay
 * first, then an abort, each for its own share of requests. */
#include "route/route.h"
#include <event2/event.h>
#include <string.h>
#include "http/types.h"
#include "net/types.h"

/* Is this request among `pct` percent (0..100, a fraction allowed)? */
static bool chosen(struct mg_request *r, double pct)
{
    if (pct <= 0)
        return false;
    if (pct >= 100)
        return true;
    return (double)(mg_worker_rand(r->conn->w) % 1000000u) < pct * 10000.0;
}

static double share(const struct mg_percent *p, int percent)
{
    return p->present ? p->value : percent;
}

/* 0 continue, -1 answered */
static int fault_abort(struct mg_request *r)
{
    const struct mg_fault *f = &r->route->cfg->fault;
    if (!f->abort.present || !chosen(r, share(&f->abort.percentage, f->abort.percent)))
        return 0;
    r->flags = strcmp(r->flags, "DI") == 0 ? "DI,FI" : "FI";
    if (f->abort.grpc_status >= 0) {
        /* a gRPC status is answered in gRPC's shape whatever the client */
        r->grpc = true;
        r->grpc_status = f->abort.grpc_status;
        mg_request_reply(r, 200, "fault filter abort", "fault_abort", false);
    } else {
        mg_request_reply(r, f->abort.http_status, "fault filter abort", "fault_abort", false);
    }
    return -1;
}

static void on_delay(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct mg_request *r = arg;
    if (fault_abort(r) == 0)
        r->fault_cont(r);
}

int mg_fault_run(struct mg_request *r, void (*cont)(struct mg_request *r))
{
    const struct mg_fault *f = r->route && r->route->cfg ? &r->route->cfg->fault : NULL;
    if (!f || !f->present)
        return 0;
    if (f->delay.present && f->delay.fixed_ms > 0 &&
        chosen(r, share(&f->delay.percentage, f->delay.percent))) {
        r->flags = "DI";
        r->fault_cont = cont;
        if (!r->fault_timer)
            r->fault_timer = evtimer_new(r->conn->w->base, on_delay, r);
        struct timeval tv = { (time_t)(f->delay.fixed_ms / 1000),
                              (suseconds_t)((f->delay.fixed_ms % 1000) * 1000) };
        evtimer_add(r->fault_timer, &tv);
        return 1;
    }
    return fault_abort(r);
}
