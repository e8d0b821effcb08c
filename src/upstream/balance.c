/* balance.c - the choice of an endpoint for a new request or connection
 * (DestinationRule loadBalancer.simple), skipping endpoints that outlier
 * detection ejected and those a retried request already tried, after the
 * choice of a priority and a locality when the cluster has locality-aware
 * balancing (locality.c), as Envoy's priority and locality-weighted
 * balancers do. */
#include "upstream/upstream.h"
#include <stdint.h>
#include <string.h>
#include "net/types.h"

/* Which endpoints a pick may take: not ejected (when health counts), not
 * tried yet (avoid), of priority prio and locality loc (-1 = any), and not
 * excluded by a distribute rule. */
struct sel {
    const struct mg_cluster *cl;
    bool health;
    uint64_t avoid;
    int prio, loc;
};

static bool usable(const struct sel *s, size_t i)
{
    const struct mg_endpoint *ep = &s->cl->eps[i];
    if (ep->excluded || (s->prio >= 0 && ep->prio != s->prio) || (s->loc >= 0 && ep->loc != s->loc))
        return false;
    if (i < 64 && (s->avoid >> i) & 1)
        return false;
    return !s->health || !mg_od_ejected(s->cl->od, i);
}

/* the k-th usable endpoint */
static size_t nth(const struct sel *s, size_t k)
{
    for (size_t i = 0; i < s->cl->n_eps; i++)
        if (usable(s, i) && k-- == 0)
            return i;
    return 0;
}

/* A usable endpoint drawn with probability proportional to its weight. */
static size_t weighted_random(const struct sel *s, struct mg_worker *w)
{
    const struct mg_cluster *cl = s->cl;
    uint64_t total = 0;
    for (size_t i = 0; i < cl->n_eps; i++)
        if (usable(s, i))
            total += cl->eps[i].weight;
    if (!total)
        return nth(s, 0);
    uint64_t r = ((uint64_t)mg_worker_rand(w) << 32 | mg_worker_rand(w)) % total;
    for (size_t i = 0; i < cl->n_eps; i++) {
        if (!usable(s, i))
            continue;
        if (r < cl->eps[i].weight)
            return i;
        r -= cl->eps[i].weight;
    }
    return nth(s, 0);
}

/* Endpoints of different weights (Istio's endpoint and WorkloadEntry
 * weight, Envoy's load_balancing_weight): ROUND_ROBIN is a smooth weighted
 * round robin (each pick raises every usable endpoint by its weight and
 * takes the highest, which then pays the total back: weights 5 and 1 give
 * a a a b a a, not a run of five), RANDOM draws by weight, LEAST_REQUEST
 * draws two by weight and keeps the one with fewer requests per weight. */
static size_t pick_weighted(const struct sel *s, struct mg_cluster_rt *rt, struct mg_worker *w)
{
    const struct mg_cluster *cl = s->cl;
    switch (cl->lb) {
    case MG_LB_ROUND_ROBIN: {
        int64_t total = 0;
        size_t best = SIZE_MAX;
        for (size_t i = 0; i < cl->n_eps; i++) {
            if (!usable(s, i))
                continue;
            rt->cw[i] += cl->eps[i].weight;
            total += cl->eps[i].weight;
            if (best == SIZE_MAX || rt->cw[i] > rt->cw[best])
                best = i;
        }
        if (best == SIZE_MAX)
            return nth(s, 0);
        rt->cw[best] -= total;
        return best;
    }
    case MG_LB_RANDOM:
        return weighted_random(s, w);
    default: {
        size_t a = weighted_random(s, w), b = weighted_random(s, w);
        /* fewer in flight per unit of weight: active[a]/wa vs active[b]/wb */
        return (uint64_t)rt->active[b] * cl->eps[a].weight < (uint64_t)rt->active[a] * cl->eps[b].weight
                   ? b : a;
    }
    }
}

/* Envoy's availability of n healthy of total with the overprovisioning
 * factor 1.4 Istio leaves at its default, in percent: a level (priority or
 * locality) counts as whole while at least 71.4% (1/1.4) of it is
 * healthy. */
static unsigned availability(unsigned healthy, unsigned total)
{
    if (!total)
        return 0;
    unsigned a = 140 * healthy / total;
    return a > 100 ? 100 : a;
}

/* Per priority: endpoints, those in service, and Envoy's priority load. */
struct prio_state {
    unsigned tot[MG_LB_MAX_PRIO], ok[MG_LB_MAX_PRIO], load[MG_LB_MAX_PRIO];
    unsigned total;                     /* the availabilities' sum, at most 100 */
};

/* Envoy's priority load: each priority takes its availability's share,
 * scaled up when the availabilities add up to less than 100 (so that 100%
 * of the load is placed), nearest first; what the nearest cannot take
 * spills to the next. false when no priority has a healthy endpoint. */
static bool prio_state(const struct mg_cluster *cl, bool health, uint32_t skip,
                       struct prio_state *ps)
{
    unsigned avail[MG_LB_MAX_PRIO], n = cl->n_prio ? cl->n_prio : 1, sum = 0;
    memset(ps, 0, sizeof(*ps));
    for (size_t i = 0; i < cl->n_eps; i++) {
        if (cl->eps[i].excluded || cl->eps[i].prio >= n)
            continue;
        ps->tot[cl->eps[i].prio]++;
        ps->ok[cl->eps[i].prio] += !((skip >> cl->eps[i].prio) & 1) &&
                                   (!health || !mg_od_ejected(cl->od, i));
    }
    for (unsigned p = 0; p < n; p++)
        sum += avail[p] = availability(ps->ok[p], ps->tot[p]);
    if (!sum)
        return false;
    unsigned norm = ps->total = sum > 100 ? 100 : sum, left = 100, first = n;
    for (unsigned p = 0; p < n; p++) {
        unsigned l = avail[p] * 100 / norm;
        ps->load[p] = l < left ? l : left;
        left -= ps->load[p];
        if (first == n && avail[p])
            first = p;
    }
    ps->load[first] += left;            /* rounding */
    return true;
}

bool mg_locality_priority_load(const struct mg_cluster *cl, bool health, unsigned *load)
{
    struct prio_state ps;
    if (!prio_state(cl, health, 0, &ps))
        return false;
    memcpy(load, ps.load, (cl->n_prio ? cl->n_prio : 1) * sizeof(*load));
    return true;
}

/* The priority a new pick draws from, with ejections counted (s->prio;
 * false: none has a healthy endpoint and there is no panic). Panic
 * (minHealthPercent, Envoy's healthy panic threshold) is per priority as
 * in Envoy: only while the priorities together are short of 100%
 * availability, a drawn priority with fewer endpoints in service than the
 * threshold ignores its ejections; with no endpoint in service anywhere,
 * priority 0 does. The priorities in `skip` (a retry's, under
 * retryRemoteLocalities) count as unavailable unless that leaves none.
 * health: ejections count. */
static bool pick_priority(struct sel *s, bool health, uint32_t skip, struct mg_worker *w)
{
    const struct mg_cluster *cl = s->cl;
    int min = cl->od ? cl->od->min_health_pct : 0;
    struct prio_state ps;
    s->health = health;
    if (skip && !prio_state(cl, health, skip, &ps))
        skip = 0;
    if (!prio_state(cl, health, skip, &ps)) {
        if (min <= 0)
            return false;
        s->prio = 0;
        s->health = false;
        return true;
    }
    unsigned r = mg_worker_rand(w) % 100;
    s->prio = 0;
    for (int p = 0; p < cl->n_prio; p++) {
        if (r < ps.load[p]) {
            s->prio = p;
            break;
        }
        r -= ps.load[p];
    }
    if (health && min > 0 && ps.total < 100 &&
        100 * ps.ok[s->prio] < (unsigned)min * ps.tot[s->prio])
        s->health = false;
    return true;
}

/* A locality of priority prio, chosen by its weight times its
 * availability (Envoy's locality-weighted balancing): the weight is
 * distribute's, else the total weight of its endpoints in the priority.
 * Envoy's EDF scheduler is deterministic; here a smooth weighted round
 * robin, so weights 75 and 25 give exactly 3 to 1 per worker while all
 * are in service. -1: none usable. */
static int pick_locality(const struct mg_cluster *cl, struct mg_cluster_rt *rt, bool health,
                         int prio)
{
    uint32_t *tot = rt->loc_count, *ok = tot + cl->n_locs, *wsum = ok + cl->n_locs;
    memset(rt->loc_count, 0, 3 * cl->n_locs * sizeof(uint32_t));
    for (size_t i = 0; i < cl->n_eps; i++) {
        const struct mg_endpoint *ep = &cl->eps[i];
        if (ep->excluded || ep->prio != prio)
            continue;
        tot[ep->loc]++;
        ok[ep->loc] += !health || !mg_od_ejected(cl->od, i);
        wsum[ep->loc] += ep->weight;
    }
    int64_t total = 0;
    int best = -1;
    for (size_t g = 0; g < cl->n_locs; g++) {
        uint32_t weight = cl->loc_weight ? cl->loc_weight[g] : wsum[g];
        int64_t e = (int64_t)weight * availability(ok[g], tot[g]);
        if (!e)
            continue;
        rt->loc_cw[g] += e;
        total += e;
        if (best < 0 || rt->loc_cw[g] > rt->loc_cw[best])
            best = (int)g;
    }
    if (best >= 0)
        rt->loc_cw[best] -= total;
    return best;
}

size_t mg_cluster_pick(struct mg_cluster *cl, struct mg_cluster_rt *rt, struct mg_worker *w,
                       uint64_t avoid)
{
    return mg_cluster_pick_retry(cl, rt, w, avoid, false);
}

size_t mg_cluster_pick_retry(struct mg_cluster *cl, struct mg_cluster_rt *rt, struct mg_worker *w,
                             uint64_t avoid, bool remote)
{
    size_t n = cl->n_eps;
    if (n <= 1)
        avoid = 0;
    /* ejections count unless too few endpoints are left (panic) */
    bool ejections = cl->od && atomic_load_explicit(&cl->od->n_ejected, memory_order_relaxed);
    bool health = ejections && !mg_od_panic(cl->od);
    struct sel s = { .cl = cl, .health = health, .avoid = avoid, .prio = -1, .loc = -1 };
    bool narrowed = cl->n_prio > 1 || cl->n_locs > 1;
    if (narrowed) {
        /* the priority and locality come first, from health alone: a
         * retry's avoided endpoints do not make traffic leave them, except
         * under retryRemoteLocalities, where their priorities are skipped */
        uint32_t skip = 0;
        for (size_t i = 0; remote && i < n && i < 64; i++)
            if ((avoid >> i) & 1)
                skip |= (uint32_t)1 << cl->eps[i].prio;
        s.prio = 0;
        if (cl->n_prio > 1 && (ejections || skip) && !pick_priority(&s, ejections, skip, w))
            return SIZE_MAX;
        if (cl->n_prio > 1 && !ejections)
            s.health = false;           /* all in service: no ejection to skip */
        if (cl->n_locs > 1 && rt->loc_count && (s.loc = pick_locality(cl, rt, s.health, s.prio)) < 0)
            return SIZE_MAX;
        health = s.health;
    }
    size_t cand = 0;
    if (health || avoid || narrowed) {
        for (size_t i = 0; i < n; i++)
            cand += usable(&s, i);
        if (!cand && s.avoid && s.loc >= 0) {
            /* the locality's endpoints all tried: another locality of the
             * priority (Envoy selects again for a retry that drew a host
             * it already tried) */
            s.loc = -1;
            for (size_t i = 0; i < n; i++)
                cand += usable(&s, i);
        }
        if (!cand && s.avoid) {         /* every endpoint tried: any in service will do */
            s.avoid = 0;
            for (size_t i = 0; i < n; i++)
                cand += usable(&s, i);
        }
        if (!cand)
            return SIZE_MAX;
    }
    if (n <= 1)
        return 0;
    if (!health && !avoid && !narrowed)
        cand = n;
    /* by weight, also among a priority's or a locality's endpoints (its
     * state is per endpoint, where a round-robin counter shared by changing
     * subsets would starve some) */
    if ((cl->weighted || narrowed) && rt->cw)
        return pick_weighted(&s, rt, w);
    switch (cl->lb) {
    case MG_LB_ROUND_ROBIN:
        for (size_t k = 0; k < n; k++) {
            size_t i = rt->rr++ % n;
            if (usable(&s, i))
                return i;
        }
        return nth(&s, 0);
    case MG_LB_RANDOM:
        return cand == n ? mg_worker_rand(w) % n : nth(&s, mg_worker_rand(w) % cand);
    default: {                          /* LEAST_REQUEST: power of two choices */
        size_t a, b;
        if (cand == n) {
            a = mg_worker_rand(w) % n;
            b = mg_worker_rand(w) % n;
        } else {
            a = nth(&s, mg_worker_rand(w) % cand);
            b = nth(&s, mg_worker_rand(w) % cand);
        }
        return rt->active[b] < rt->active[a] ? b : a;
    }
    }
}
