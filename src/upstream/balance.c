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

/* A usable endpoint drawn with probability proportional to its weight. */
static size_t weighted_random(const struct mg_cluster *cl, struct mg_worker *w, bool health, uint64_t avoid)
{
    uint64_t total = 0;
    for (size_t i = 0; i < cl->n_eps; i++)
        if (usable(cl, i, health, avoid))
            total += cl->eps[i].weight;
    if (!total)
        return nth(cl, health, avoid, 0);
    uint64_t r = ((uint64_t)mg_worker_rand(w) << 32 | mg_worker_rand(w)) % total;
    for (size_t i = 0; i < cl->n_eps; i++) {
        if (!usable(cl, i, health, avoid))
            continue;
        if (r < cl->eps[i].weight)
            return i;
        r -= cl->eps[i].weight;
    }
    return nth(cl, health, avoid, 0);
}

/* Endpoints of different weights (Istio's endpoint and WorkloadEntry
 * weight, Envoy's load_balancing_weight): ROUND_ROBIN is a smooth weighted
 * round robin (each pick raises every usable endpoint by its weight and
 * takes the highest, which then pays the total back: weights 5 and 1 give
 * a a a b a a, not a run of five), RANDOM draws by weight, LEAST_REQUEST
 * draws two by weight and keeps the one with fewer requests per weight. */
static size_t pick_weighted(struct mg_cluster *cl, struct mg_cluster_rt *rt, struct mg_worker *w,
                            bool health, uint64_t avoid)
{
    switch (cl->lb) {
    case MG_LB_ROUND_ROBIN: {
        int64_t total = 0;
        size_t best = SIZE_MAX;
        for (size_t i = 0; i < cl->n_eps; i++) {
            if (!usable(cl, i, health, avoid))
                continue;
            rt->cw[i] += cl->eps[i].weight;
            total += cl->eps[i].weight;
            if (best == SIZE_MAX || rt->cw[i] > rt->cw[best])
                best = i;
        }
        if (best == SIZE_MAX)
            return nth(cl, health, avoid, 0);
        rt->cw[best] -= total;
        return best;
    }
    case MG_LB_RANDOM:
        return weighted_random(cl, w, health, avoid);
    default: {
        size_t a = weighted_random(cl, w, health, avoid), b = weighted_random(cl, w, health, avoid);
        /* fewer in flight per unit of weight: active[a]/wa vs active[b]/wb */
        return (uint64_t)rt->active[b] * cl->eps[a].weight < (uint64_t)rt->active[a] * cl->eps[b].weight
                   ? b : a;
    }
    }
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
    if (cl->weighted && rt->cw)
        return pick_weighted(cl, rt, w, health, avoid);
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
