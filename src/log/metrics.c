/* metrics.c - lock-free per-worker counters. A worker claims a label slot
 * with a CAS (only it writes its table, the CAS just publishes the key to
 * the admin reader safely) and bumps relaxed atomics; the admin thread sums
 * every worker's table when /stats/prometheus is asked for. */
#include "log/log.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static atomic_ulong reload_ok, reload_fail;

const char *const mg_pp_result_names[MG_PPR_N] = {
    "accepted", "local", "without_header", "untrusted_source", "missing_header", "malformed",
    "timeout",
};

struct mg_wmetrics *mg_metrics_new(void)
{
    struct mg_wmetrics *m = mg_xcalloc(1, sizeof(*m));
    return m;
}

void mg_metrics_free(struct mg_wmetrics *m)
{
    free(m);
}

static uint32_t hash_key(int code, const char *a, const char *b, const char *c, const char *d)
{
    uint64_t h = (uint64_t)code * 0x9e3779b97f4a7c15ull;
    h ^= (uint64_t)(uintptr_t)d * 0x94d049bb133111ebull;
    h ^= (uint64_t)(uintptr_t)a * 0xc2b2ae3d27d4eb4full;
    h ^= (uint64_t)(uintptr_t)b * 0x165667b19e3779f9ull;
    h ^= (uint64_t)(uintptr_t)c * 0x27d4eb2f165667c5ull;
    return (uint32_t)(h ^ (h >> 29));
}

void mg_metrics_request(struct mg_wmetrics *m, int code, const char *route, const char *dest,
                        const char *reason, const char *principal, int grpc_status)
{
    static const char unknown[] = "unknown";
    if (!route)
        route = unknown;
    if (!dest)
        dest = unknown;
    if (!reason)
        reason = "";
    if (!principal)
        principal = unknown;
    uint32_t h = hash_key(code * 131 + grpc_status, route, dest, reason, principal);
    for (uint32_t i = 0; i < 16; i++) {
        struct mg_rq_slot *s = &m->slots[(h + i) % MG_METRICS_SLOTS];
        int used = atomic_load_explicit(&s->used, memory_order_acquire);
        if (used == 2 && s->code == code && s->route == route && s->dest == dest &&
            s->reason == reason && s->principal == principal && s->grpc == grpc_status) {
            atomic_fetch_add_explicit(&s->count, 1, memory_order_relaxed);
            return;
        }
        if (used == 0) {
            int zero = 0;
            if (!atomic_compare_exchange_strong(&s->used, &zero, 1))
                continue;
            s->code = code;
            s->route = route;
            s->dest = dest;
            s->reason = reason;
            s->principal = principal;
            s->grpc = grpc_status;
            atomic_store_explicit(&s->count, 1, memory_order_relaxed);
            atomic_store_explicit(&s->used, 2, memory_order_release);
            return;
        }
    }
    atomic_fetch_add_explicit(&m->rq_dropped, 1, memory_order_relaxed);
}

void mg_metrics_egress_refused(struct mg_wmetrics *m, const char *entrance, const char *reason)
{
    if (!m)
        return;
    for (size_t i = 0; i < MG_EGRESS_SLOTS; i++) {
        struct mg_egress_slot *s = &m->egress[i];
        int used = atomic_load_explicit(&s->used, memory_order_acquire);
        if (used == 2 && s->entrance == entrance && s->reason == reason) {
            atomic_fetch_add_explicit(&s->count, 1, memory_order_relaxed);
            return;
        }
        if (used == 0) {
            int zero = 0;
            if (!atomic_compare_exchange_strong(&s->used, &zero, 1))
                continue;
            s->entrance = entrance;
            s->reason = reason;
            atomic_store_explicit(&s->count, 1, memory_order_relaxed);
            atomic_store_explicit(&s->used, 2, memory_order_release);
            return;
        }
    }
    atomic_fetch_add_explicit(&m->rq_dropped, 1, memory_order_relaxed);
}

void mg_metrics_reload(bool ok)
{
    atomic_fetch_add(ok ? &reload_ok : &reload_fail, 1);
}

struct agg {
    int code;
    const char *route, *dest, *reason, *principal;
    int grpc;
    unsigned long count;
};

static void label_esc(struct mg_buf *b, const char *s)
{
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            mg_buf_add(b, "\\", 1);
        if (*s == '\n') {
            mg_buf_adds(b, "\\n");
            continue;
        }
        mg_buf_add(b, s, 1);
    }
}

void mg_metrics_render(struct mg_buf *out, struct mg_wmetrics *const *per_worker, size_t n)
{
    unsigned long cx_total = 0, cx_active = 0, up_rq = 0, up_cx = 0, dropped = 0, naming = 0;
    size_t cap = 64, na = 0;
    struct agg *a = mg_xmalloc(cap * sizeof(*a));
    for (size_t w = 0; w < n; w++) {
        struct mg_wmetrics *m = per_worker[w];
        cx_total += atomic_load_explicit(&m->cx_total, memory_order_relaxed);
        cx_active += atomic_load_explicit(&m->cx_active, memory_order_relaxed);
        up_rq += atomic_load_explicit(&m->upstream_rq_total, memory_order_relaxed);
        up_cx += atomic_load_explicit(&m->upstream_cx_total, memory_order_relaxed);
        naming += atomic_load_explicit(&m->upstream_secure_naming_failed, memory_order_relaxed);
        dropped += atomic_load_explicit(&m->rq_dropped, memory_order_relaxed);
        for (size_t i = 0; i < MG_METRICS_SLOTS; i++) {
            struct mg_rq_slot *s = &m->slots[i];
            if (atomic_load_explicit(&s->used, memory_order_acquire) != 2)
                continue;
            unsigned long c = atomic_load_explicit(&s->count, memory_order_relaxed);
            size_t j;
            for (j = 0; j < na; j++)
                if (a[j].code == s->code && a[j].route == s->route && a[j].dest == s->dest &&
                    a[j].reason == s->reason && a[j].principal == s->principal &&
                    a[j].grpc == s->grpc)
                    break;
            if (j == na) {
                if (na == cap)
                    a = mg_xrealloc(a, (cap *= 2) * sizeof(*a));
                a[na++] = (struct agg){ s->code, s->route, s->dest, s->reason, s->principal, s->grpc, 0 };
            }
            a[j].count += c;
        }
    }
    mg_buf_adds(out, "# TYPE istio_requests_total counter\n");
    for (size_t j = 0; j < na; j++) {
        mg_buf_printf(out, "istio_requests_total{reporter=\"source\",response_code=\"%d\",route_name=\"",
                      a[j].code);
        label_esc(out, a[j].route);
        mg_buf_adds(out, "\",destination_cluster=\"");
        label_esc(out, a[j].dest);
        mg_buf_adds(out, "\",source_principal=\"");
        label_esc(out, a[j].principal);
        mg_buf_adds(out, "\",response_flags_reason=\"");
        label_esc(out, a[j].reason);
        mg_buf_adds(out, "\",grpc_response_status=\"");
        if (a[j].grpc >= 0)
            mg_buf_printf(out, "%d", a[j].grpc);
        mg_buf_printf(out, "\"} %lu\n", a[j].count);
    }
    free(a);
    mg_buf_printf(out, "# TYPE meshgate_downstream_cx_total counter\nmeshgate_downstream_cx_total %lu\n"
                  "# TYPE meshgate_downstream_cx_active gauge\nmeshgate_downstream_cx_active %lu\n"
                  "# TYPE meshgate_upstream_rq_total counter\nmeshgate_upstream_rq_total %lu\n"
                  "# TYPE meshgate_upstream_cx_total counter\nmeshgate_upstream_cx_total %lu\n"
                  "# TYPE meshgate_upstream_secure_naming_failures_total counter\n"
                  "meshgate_upstream_secure_naming_failures_total %lu\n"
                  "# TYPE meshgate_stats_overflow_total counter\nmeshgate_stats_overflow_total %lu\n"
                  "# TYPE meshgate_config_reload_total counter\n"
                  "meshgate_config_reload_total{result=\"success\"} %lu\n"
                  "meshgate_config_reload_total{result=\"failure\"} %lu\n",
                  cx_total, cx_active, up_rq, up_cx, naming, dropped,
                  (unsigned long)atomic_load(&reload_ok), (unsigned long)atomic_load(&reload_fail));
    /* egress refusals, summed over workers by label values */
    struct { const char *en, *reason; unsigned long count; } eg[MG_EGRESS_SLOTS * 4];
    size_t ne = 0;
    for (size_t w = 0; w < n; w++) {
        for (size_t i = 0; i < MG_EGRESS_SLOTS; i++) {
            struct mg_egress_slot *s = &per_worker[w]->egress[i];
            if (atomic_load_explicit(&s->used, memory_order_acquire) != 2)
                continue;
            unsigned long c = atomic_load_explicit(&s->count, memory_order_relaxed);
            size_t j;
            for (j = 0; j < ne; j++)
                if (strcmp(eg[j].en, s->entrance) == 0 && strcmp(eg[j].reason, s->reason) == 0)
                    break;
            if (j == ne) {
                if (ne == sizeof(eg) / sizeof(eg[0]))
                    continue;
                eg[ne].en = s->entrance;
                eg[ne].reason = s->reason;
                eg[ne++].count = 0;
            }
            eg[j].count += c;
        }
    }
    unsigned long ms = 0, md = 0;
    for (size_t i = 0; i < n; i++) {
        ms += atomic_load_explicit(&per_worker[i]->mirror_sent, memory_order_relaxed);
        md += atomic_load_explicit(&per_worker[i]->mirror_dropped, memory_order_relaxed);
    }
    mg_buf_printf(out, "# TYPE meshgate_mirror_requests_total counter\n"
                  "meshgate_mirror_requests_total{result=\"sent\"} %lu\n"
                  "meshgate_mirror_requests_total{result=\"dropped\"} %lu\n", ms, md);
    mg_buf_adds(out, "# TYPE meshgate_proxy_protocol_total counter\n");
    for (int r = 0; r < MG_PPR_N; r++) {
        unsigned long c = 0;
        for (size_t i = 0; i < n; i++)
            c += atomic_load_explicit(&per_worker[i]->proxy_protocol[r], memory_order_relaxed);
        mg_buf_printf(out, "meshgate_proxy_protocol_total{result=\"%s\"} %lu\n", mg_pp_result_names[r], c);
    }
    mg_buf_adds(out, "# TYPE meshgate_egress_refused_total counter\n");
    for (size_t j = 0; j < ne; j++) {
        mg_buf_adds(out, "meshgate_egress_refused_total{entrance=\"");
        label_esc(out, eg[j].en);
        mg_buf_adds(out, "\",reason=\"");
        label_esc(out, eg[j].reason);
        mg_buf_printf(out, "\"} %lu\n", eg[j].count);
    }
}
