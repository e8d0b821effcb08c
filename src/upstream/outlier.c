/* outlier.c - passive health of a cluster's endpoints (DestinationRule
 * outlierDetection): the consecutive-error state machine, the interval
 * sweep that returns endpoints to service, the hand-over of the state to
 * the next snapshot, and the ejection metrics.
 *
 * The state is per cluster and shared by the workers, as Envoy keeps it
 * per cluster rather than per worker thread: with per-worker counters an
 * endpoint failing every request would need N x threshold errors on an
 * N-worker instance, and each worker would eject on its own. The request
 * path only does relaxed loads (and stores when a counter changes); an
 * ejection is one compare-and-swap on the ejected count and one on the
 * endpoint. */
#include "upstream/upstream.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "base/base.h"

#define OD_MAX_EJECTION_MS 300000       /* Envoy's max_ejection_time default */

#define LOAD(a) atomic_load_explicit(&(a), memory_order_relaxed)
#define STORE(a, v) atomic_store_explicit(&(a), (v), memory_order_relaxed)

struct mg_od *mg_od_new(const struct mg_outlier *cfg, size_t n, int64_t now_ms)
{
    if (!cfg || !cfg->present || n == 0)
        return NULL;
    int c5xx = cfg->consecutive_5xx_errors, cgw = cfg->consecutive_gateway_errors;
    /* The deprecated consecutiveErrors: Istio turns it into the gateway
     * detector and switches the 5xx one off, unless those are given. */
    if (cfg->consecutive_errors > 0) {
        if (!cfg->has_consecutive_gateway_errors)
            cgw = cfg->consecutive_errors;
        if (!cfg->has_consecutive_5xx_errors)
            c5xx = 0;
    }
    int clocal = cfg->split_external_local_origin_errors ?
        (cfg->consecutive_local_origin_failures > 0 ? cfg->consecutive_local_origin_failures : 5) : 0;
    if (c5xx <= 0 && cgw <= 0 && clocal <= 0)
        return NULL;
    struct mg_od *od = mg_xcalloc(1, sizeof(*od));
    od->c5xx = c5xx > 0 ? c5xx : 0;
    od->cgw = cgw > 0 ? cgw : 0;
    od->clocal = clocal;
    od->split = cfg->split_external_local_origin_errors;
    od->interval_ms = cfg->interval_ms > 0 ? cfg->interval_ms : 10000;
    od->base_ms = cfg->base_ejection_time_ms > 0 ? cfg->base_ejection_time_ms : 30000;
    od->max_ms = od->base_ms > OD_MAX_EJECTION_MS ? od->base_ms : OD_MAX_EJECTION_MS;
    /* Istio leaves Envoy's 10% in place when the field is 0 (unset) */
    od->max_eject_pct = cfg->max_ejection_percent > 0 ? cfg->max_ejection_percent : 10;
    od->min_health_pct = cfg->min_health_percent;
    od->n = n;
    od->next_sweep = now_ms + od->interval_ms;
    od->ep = mg_xcalloc(n, sizeof(*od->ep));
    return od;
}

void mg_od_free(struct mg_od *od)
{
    if (!od)
        return;
    free(od->ep);
    free(od);
}

bool mg_od_panic(const struct mg_od *od)
{
    if (od->min_health_pct <= 0)
        return false;
    unsigned ej = LOAD(((struct mg_od *)od)->n_ejected);
    size_t healthy = ej < od->n ? od->n - ej : 0;
    return 100.0 * (double)healthy / (double)od->n < (double)od->min_health_pct;
}

/* Take the ejection of ep if maxEjectionPercent allows it: the share
 * ejected with this one must not exceed it. The slot is reserved first, so
 * two workers ejecting at once cannot both pass the limit. */
static bool try_eject(struct mg_od *od, size_t i, int64_t now)
{
    struct mg_od_ep *e = &od->ep[i];
    if (LOAD(e->ejected_at))
        return false;
    unsigned n = LOAD(od->n_ejected);
    do {
        if (100.0 * (double)(n + 1) / (double)od->n > (double)od->max_eject_pct)
            return false;
    } while (!atomic_compare_exchange_weak_explicit(&od->n_ejected, &n, n + 1,
                                                    memory_order_relaxed, memory_order_relaxed));
    long long zero = 0;
    if (!atomic_compare_exchange_strong_explicit(&e->ejected_at, &zero, now > 0 ? now : 1,
                                                 memory_order_relaxed, memory_order_relaxed)) {
        atomic_fetch_sub_explicit(&od->n_ejected, 1, memory_order_relaxed);
        return false;
    }
    /* the multiplier grows while base x multiplier is below the cap */
    unsigned b = LOAD(e->backoff);
    if ((int64_t)b * od->base_ms < od->max_ms)
        STORE(e->backoff, b + 1);
    return true;
}

/* ++counter == threshold, as Envoy fires a detector exactly once per run
 * of errors; the counter starts over whether or not the ejection is taken. */
static bool bump(atomic_uint *c, int threshold)
{
    if (threshold <= 0)
        return false;
    if (atomic_fetch_add_explicit(c, 1, memory_order_relaxed) + 1 != (unsigned)threshold)
        return false;
    STORE(*c, 0);
    return true;
}

static void clear(atomic_uint *c)
{
    if (LOAD(*c))
        STORE(*c, 0);
}

enum mg_od_eject mg_od_report(struct mg_od *od, size_t i, enum mg_od_outcome o, int status,
                              int64_t now_ms)
{
    if (!od || i >= od->n)
        return MG_OD_KEPT;
    struct mg_od_ep *e = &od->ep[i];
    if (o == MG_OD_RESPONSE) {
        if (od->split)                  /* the connection worked */
            clear(&e->clocal);
        if (status < 500 || status > 599) {
            clear(&e->c5xx);
            clear(&e->cgw);
            return MG_OD_KEPT;
        }
    } else if (od->split) {
        return bump(&e->clocal, od->clocal) && try_eject(od, i, now_ms) ? MG_OD_EJECT_LOCAL
                                                                         : MG_OD_KEPT;
    } else {
        /* not split: a local failure is the 503 (504 for a timeout) the
         * client gets */
        status = o == MG_OD_TIMEOUT ? 504 : 503;
    }
    bool gw_fired = false;
    if (status >= 502 && status <= 504)
        gw_fired = bump(&e->cgw, od->cgw);
    else
        clear(&e->cgw);
    bool fx_fired = bump(&e->c5xx, od->c5xx);
    if (!gw_fired && !fx_fired)
        return MG_OD_KEPT;
    if (!try_eject(od, i, now_ms))
        return MG_OD_KEPT;
    return gw_fired ? MG_OD_EJECT_GATEWAY : MG_OD_EJECT_5XX;
}

void mg_od_sweep(struct mg_od *od, int64_t now, void (*back)(void *arg, size_t ep, int64_t ms),
                 void *arg)
{
    for (size_t i = 0; i < od->n; i++) {
        struct mg_od_ep *e = &od->ep[i];
        int64_t at = LOAD(e->ejected_at);
        unsigned b = LOAD(e->backoff);
        if (!at) {
            /* back for at least one base time: the multiplier decays */
            if (e->back_at && b && now - e->back_at >= od->base_ms)
                STORE(e->backoff, b - 1);
            continue;
        }
        int64_t d = (int64_t)(b ? b : 1) * od->base_ms;
        if (d > od->max_ms)
            d = od->max_ms;
        if (now - at < d)
            continue;
        STORE(e->ejected_at, 0);
        atomic_fetch_sub_explicit(&od->n_ejected, 1, memory_order_relaxed);
        e->back_at = now;
        if (back)
            back(arg, i, now - at);
    }
    od->next_sweep = now + od->interval_ms;
}

/* ---- metrics (process-wide: counters outlive snapshots) ---- */

#define OD_SLOTS 256

static struct {
    _Atomic(const char *) name;         /* the cluster's interned stat_name */
    atomic_ulong n;
} ejections[OD_SLOTS];
static atomic_ulong ejections_overflow;

static void count_ejection(const char *name)
{
    uint32_t h = 2166136261u;
    for (const char *s = name; *s; s++)
        h = (h ^ (uint8_t)*s) * 16777619u;
    for (uint32_t k = 0; k < 32; k++) {
        size_t i = (h + k) % OD_SLOTS;
        const char *cur = atomic_load_explicit(&ejections[i].name, memory_order_acquire);
        if (!cur) {
            const char *none = NULL;
            if (atomic_compare_exchange_strong(&ejections[i].name, &none, name))
                cur = name;
            else
                cur = none;
        }
        if (cur == name) {
            atomic_fetch_add_explicit(&ejections[i].n, 1, memory_order_relaxed);
            return;
        }
    }
    atomic_fetch_add_explicit(&ejections_overflow, 1, memory_order_relaxed);
}

void mg_outlier_metrics_render(struct mg_buf *out, struct mg_cluster *const *cls, size_t n)
{
    mg_buf_adds(out, "# TYPE meshgate_outlier_ejections_total counter\n");
    for (size_t i = 0; i < OD_SLOTS; i++) {
        const char *name = atomic_load_explicit(&ejections[i].name, memory_order_acquire);
        if (!name)
            continue;
        mg_buf_adds(out, "meshgate_outlier_ejections_total{cluster=\"");
        mg_buf_prom_label(out, name);
        mg_buf_printf(out, "\"} %lu\n", LOAD(ejections[i].n));
    }
    if (LOAD(ejections_overflow))
        mg_buf_printf(out, "meshgate_outlier_ejections_total{cluster=\"\"} %lu\n",
                      LOAD(ejections_overflow));
    mg_buf_adds(out, "# TYPE meshgate_outlier_ejected_endpoints gauge\n");
    for (size_t i = 0; i < n; i++) {
        if (!cls[i] || !cls[i]->od)
            continue;
        mg_buf_adds(out, "meshgate_outlier_ejected_endpoints{cluster=\"");
        mg_buf_prom_label(out, cls[i]->stat_name);
        mg_buf_printf(out, "\"} %u\n", LOAD(cls[i]->od->n_ejected));
    }
}

/* ---- the cluster's side ---- */

static const char *const eject_why[] = {
    "", "consecutive 5xx errors", "consecutive gateway errors", "consecutive local origin failures",
};

void mg_cluster_outcome(struct mg_cluster *cl, size_t ep, enum mg_od_outcome o, int status)
{
    struct mg_od *od = cl ? cl->od : NULL;
    if (!od || ep >= od->n)
        return;
    bool failure = o != MG_OD_RESPONSE || status >= 500;
    enum mg_od_eject t = mg_od_report(od, ep, o, status, failure ? mg_now_ms() : 0);
    if (t == MG_OD_KEPT)
        return;
    count_ejection(cl->stat_name);
    unsigned b = LOAD(od->ep[ep].backoff);
    int64_t d = (int64_t)(b ? b : 1) * od->base_ms;
    fprintf(stderr, "meshgate: outlier detection: ejected endpoint %s of cluster %s (%s; "
            "ejection x%u, at least %lld ms; %u of %zu endpoints ejected)\n",
            cl->eps[ep].label, cl->name, eject_why[t], b,
            (long long)(d < od->max_ms ? d : od->max_ms), LOAD(od->n_ejected), od->n);
}

struct back_ctx {
    const struct mg_cluster *cl;
};

static void log_back(void *arg, size_t ep, int64_t ms)
{
    const struct back_ctx *c = arg;
    fprintf(stderr, "meshgate: outlier detection: endpoint %s of cluster %s back in service "
            "(ejected for %lld ms)\n", c->cl->eps[ep].label, c->cl->name, (long long)ms);
}

int64_t mg_outlier_sweep(struct mg_cluster *const *cls, size_t n)
{
    int64_t now = mg_now_ms(), next = -1;
    for (size_t i = 0; i < n; i++) {
        struct mg_cluster *cl = cls[i];
        if (!cl || !cl->od)
            continue;
        if (now >= cl->od->next_sweep) {
            struct back_ctx c = { cl };
            mg_od_sweep(cl->od, now, log_back, &c);
        }
        int64_t in = cl->od->next_sweep - now;
        if (next < 0 || in < next)
            next = in;
    }
    return next;
}

void mg_outlier_inherit(struct mg_cluster *const *to, size_t n, struct mg_cluster *const *from,
                        size_t n_from)
{
    for (size_t i = 0; i < n; i++) {
        struct mg_cluster *nc = to[i];
        if (!nc || !nc->od)
            continue;
        const struct mg_cluster *oc = NULL;
        for (size_t j = 0; j < n_from && !oc; j++)
            if (from[j] && from[j]->od && strcmp(from[j]->name, nc->name) == 0)
                oc = from[j];
        if (!oc)
            continue;
        const struct mg_od *a = oc->od;
        struct mg_od *b = nc->od;
        if (a->c5xx != b->c5xx || a->cgw != b->cgw || a->clocal != b->clocal ||
            a->split != b->split || a->interval_ms != b->interval_ms || a->base_ms != b->base_ms ||
            a->max_eject_pct != b->max_eject_pct || a->min_health_pct != b->min_health_pct)
            continue;                   /* other settings: a fresh start, as Envoy's new cluster */
        unsigned ejected = 0;
        for (size_t k = 0; k < nc->n_eps && k < b->n; k++) {
            for (size_t m = 0; m < oc->n_eps && m < a->n; m++) {
                if (strcmp(nc->eps[k].label, oc->eps[m].label) != 0)
                    continue;
                struct mg_od_ep *d = &b->ep[k];
                struct mg_od_ep *s = (struct mg_od_ep *)&a->ep[m];
                STORE(d->c5xx, LOAD(s->c5xx));
                STORE(d->cgw, LOAD(s->cgw));
                STORE(d->clocal, LOAD(s->clocal));
                STORE(d->backoff, LOAD(s->backoff));
                STORE(d->ejected_at, LOAD(s->ejected_at));
                d->back_at = s->back_at;
                if (LOAD(d->ejected_at))
                    ejected++;
                break;
            }
        }
        STORE(b->n_ejected, ejected);
        b->next_sweep = a->next_sweep;
    }
}
