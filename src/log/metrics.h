/* metrics.h - counters kept per worker without locks (relaxed atomics on
 * memory only that worker writes) and rendered in Prometheus text format by
 * the admin listener, which sums across workers.
 *
 * Label strings passed to mg_metrics_request must live for the process
 * (mg_intern them when the snapshot is built). */
#ifndef MG_METRICS_H
#define MG_METRICS_H
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include "base/util.h"

#define MG_METRICS_SLOTS 512

struct mg_rq_slot {
    atomic_int used;                    /* 0 free, 1 key being written, 2 ready */
    int code;
    const char *route, *dest, *reason, *principal;
    atomic_ulong count;
};

struct mg_wmetrics {
    atomic_ulong cx_total, cx_active, upstream_rq_total, upstream_cx_total;
    atomic_ulong rq_dropped;            /* label set table full */
    struct mg_rq_slot slots[MG_METRICS_SLOTS];
};

struct mg_wmetrics *mg_metrics_new(void);
void mg_metrics_free(struct mg_wmetrics *m);

/* Count one finished request (worker thread only). NULL labels become
 * "unknown" (reason: ""). `principal` is the verified peer's SPIFFE URI. */
void mg_metrics_request(struct mg_wmetrics *m, int code, const char *route, const char *dest,
                        const char *reason, const char *principal);

/* Process-wide reload counters (main thread). */
void mg_metrics_reload(bool ok);

/* Render everything (sums over the n per-worker sets) into out. */
void mg_metrics_render(struct mg_buf *out, struct mg_wmetrics *const *per_worker, size_t n);

#endif
