/* balance.c - the choice of an endpoint for a new request or connection
 * (DestinationRule loadBalancer.simple), skipping endpoints that outlier
 * detection ejected and those a retried request already tried. */
#include "upstream/upstream.h"
#include <stdint.h>
#include "net/types.h"

static bool usable(const struct mg_cluster *cl, size_t i, bool health, uint64_t avoid)
{
    if (i < 64 && (avoid >> i) & 1)
        return false;
    return !health || !mg_od_ejected(cl->od, i);
}

/* the k-th usable endpoint */
static size_t nth(const struct mg_cluster *cl, bool health, uint64_t avoid, size_t k)
{
    for (size_t i = 0; i < cl->n_eps; i++)
        if (usable(cl, i, health, avoid) && k-- == 0)
            return i;
    return 0;
}

size_t mg_cluster_pick(struct mg_cluster *cl, struct mg_cluster_rt *rt, struct mg_worker *w,
                       uint64_t avoid)
{
    size_t n = cl->n_eps;
    if (n <= 1)
        avoid = 0;
    /* ejections count unless too few endpoints are left (panic) */
    bool health = cl->od && atomic_load_explicit(&cl->od->n_ejected, memory_order_relaxed) &&
                  !mg_od_panic(cl->od);
    size_t cand = 0;
    if (health || avoid) {
        for (size_t i = 0; i < n; i++)
            cand += usable(cl, i, health, avoid);
        if (!cand && avoid) {           /* every endpoint tried: any in service will do */
            avoid = 0;
            for (size_t i = 0; i < n; i++)
                cand += usable(cl, i, health, 0);
        }
        if (!cand)
            return SIZE_MAX;
    }
    if (n <= 1)
        return 0;
    if (!health && !avoid)
        cand = n;
    switch (cl->lb) {
    case MG_LB_ROUND_ROBIN:
        for (size_t k = 0; k < n; k++) {
            size_t i = rt->rr++ % n;
            if (usable(cl, i, health, avoid))
                return i;
        }
        return nth(cl, health, avoid, 0);
    case MG_LB_RANDOM:
        return cand == n ? mg_worker_rand(w) % n : nth(cl, health, avoid, mg_worker_rand(w) % cand);
    default: {                          /* LEAST_REQUEST: power of two choices */
        size_t a, b;
        if (cand == n) {
            a = mg_worker_rand(w) % n;
            b = mg_worker_rand(w) % n;
        } else {
            a = nth(cl, health, avoid, mg_worker_rand(w) % cand);
            b = nth(cl, health, avoid, mg_worker_rand(w) % cand);
        }
        return rt->active[b] < rt->active[a] ? b : a;
    }
    }
}
