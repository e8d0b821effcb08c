/* metrics.c - lock-free per-worker counters. A worker claims a label slot
 * with a CAS (only it writes its table, the CAS just publishes the key to
 * the admin reader safely) and bumps relaxed atomics; the admin thread sums
 * every worker's table when /stats/prometheus is asked for. */
#include "log/log.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include "snapshot/snapshot.h"

static atomic_ulong reload_ok, reload_fail;

const char *const mg_pp_result_names[MG_PPR_N] = {
    "accepted", "local", "without_header", "untrusted_source", "missing_header", "malformed",
    "timeout",
};

const char *const mg_tls_fail_names[MG_TLSF_N] = {
    "timeout", "closed", "protocol_version", "no_shared_cipher", "no_client_certificate",
    "client_certificate_invalid", "peer_alert", "http_request", "other",
};

enum mg_tls_fail mg_tls_fail_reason(unsigned long e, bool timeout)
{
    if (timeout)
        return MG_TLSF_TIMEOUT;
    if (!e)
        return MG_TLSF_CLOSED;
    int r = ERR_GET_REASON(e);
    if (r >= SSL_AD_REASON_OFFSET)      /* an alert the client sent */
        return MG_TLSF_PEER_ALERT;
    switch (r) {
    case SSL_R_UNSUPPORTED_PROTOCOL:
    case SSL_R_WRONG_VERSION_NUMBER:
    case SSL_R_UNKNOWN_PROTOCOL:
    case SSL_R_VERSION_TOO_LOW:
    case SSL_R_VERSION_TOO_HIGH:
        return MG_TLSF_PROTOCOL_VERSION;
    case SSL_R_NO_SHARED_CIPHER:
        return MG_TLSF_NO_SHARED_CIPHER;
    case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
        return MG_TLSF_NO_CLIENT_CERT;
    case SSL_R_CERTIFICATE_VERIFY_FAILED:
        return MG_TLSF_CLIENT_CERT_INVALID;
    case SSL_R_HTTP_REQUEST:
    case SSL_R_HTTPS_PROXY_REQUEST:
        return MG_TLSF_HTTP_REQUEST;
    default:
        return MG_TLSF_OTHER;
    }
}

struct mg_wmetrics *mg_metrics_new(void)
{
    struct mg_wmetrics *m = mg_xcalloc(1, sizeof(*m));
    return m;
}

void mg_metrics_free(struct mg_wmetrics *m)
{
    free(m);
}

const double mg_dur_bounds[MG_DUR_BUCKETS] = {
    0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000,
    1800000, 3600000,
};
const double mg_bytes_bounds[MG_BYTES_BUCKETS] = {
    1, 10, 100, 1000, 10000, 100000, 1000000, 10000000,
};

static uint64_t mix(uint64_t h, uint64_t v)
{
    h ^= v * 0x9e3779b97f4a7c15ull;
    return (h << 27 | h >> 37) * 0x94d049bb133111ebull;
}

static uint32_t hash_key(const struct mg_rq_key *k)
{
    uint64_t h = mix(0, (uint64_t)(unsigned)k->code << 16 | (uint64_t)(k->grpc_status & 0xff) << 4 |
                            (uint64_t)k->grpc << 2 | (uint64_t)k->mtls << 1 | (uint64_t)k->inbound);
    h = mix(h, (uint64_t)(uintptr_t)k->route);
    h = mix(h, (uint64_t)(uintptr_t)k->dest);
    h = mix(h, (uint64_t)(uintptr_t)k->reason);
    h = mix(h, (uint64_t)(uintptr_t)k->principal);
    h = mix(h, (uint64_t)(uintptr_t)k->flags);
    return (uint32_t)(h ^ (h >> 29));
}

static bool key_same(const struct mg_rq_key *a, const struct mg_rq_key *b)
{
    return a->code == b->code && a->grpc_status == b->grpc_status && a->grpc == b->grpc &&
           a->mtls == b->mtls && a->inbound == b->inbound && a->route == b->route &&
           a->dest == b->dest && a->reason == b->reason && a->principal == b->principal &&
           a->flags == b->flags;
}

static size_t bucket(const double *bounds, size_t n, double v)
{
    size_t i = 0;
    while (i < n && v > bounds[i])
        i++;
    return i;                           /* n = +Inf */
}

static void bump(atomic_ulong *c, uint64_t v)
{
    atomic_fetch_add_explicit(c, v, memory_order_relaxed);
}

void mg_metrics_request(struct mg_wmetrics *m, const struct mg_rq_key *key, uint64_t duration_ms,
                        uint64_t request_bytes, uint64_t response_bytes)
{
    static const char unknown[] = "unknown";
    struct mg_rq_key k = *key;
    if (!k.route)
        k.route = unknown;
    if (!k.dest)
        k.dest = unknown;
    if (!k.reason)
        k.reason = "";
    if (!k.principal)
        k.principal = unknown;
    if (!k.flags)
        k.flags = "-";
    uint32_t h = hash_key(&k);
    struct mg_rq_slot *s = NULL;
    for (uint32_t i = 0; i < 16 && !s; i++) {
        struct mg_rq_slot *t = &m->slots[(h + i) % MG_METRICS_SLOTS];
        int used = atomic_load_explicit(&t->used, memory_order_acquire);
        if (used == 2 && key_same(&t->k, &k)) {
            s = t;
        } else if (used == 0) {
            int zero = 0;
            if (!atomic_compare_exchange_strong(&t->used, &zero, 1))
                continue;
            t->k = k;
            atomic_store_explicit(&t->used, 2, memory_order_release);
            s = t;
        }
    }
    if (!s) {
        atomic_fetch_add_explicit(&m->rq_dropped, 1, memory_order_relaxed);
        return;
    }
    bump(&s->count, 1);
    bump(&s->dur[bucket(mg_dur_bounds, MG_DUR_BUCKETS, (double)duration_ms)], 1);
    bump(&s->req_b[bucket(mg_bytes_bounds, MG_BYTES_BUCKETS, (double)request_bytes)], 1);
    bump(&s->resp_b[bucket(mg_bytes_bounds, MG_BYTES_BUCKETS, (double)response_bytes)], 1);
    bump(&s->dur_sum, duration_ms);
    bump(&s->req_sum, request_bytes);
    bump(&s->resp_sum, response_bytes);
}

static struct mg_tcp_slot *tcp_slot(struct mg_wmetrics *m, const char *dest, const char *principal,
                                    bool mtls, bool inbound)
{
    if (!dest)
        dest = "unknown";
    if (!principal)
        principal = "unknown";
    for (size_t i = 0; i < MG_TCP_SLOTS; i++) {
        struct mg_tcp_slot *s = &m->tcp[i];
        int used = atomic_load_explicit(&s->used, memory_order_acquire);
        if (used == 2 && s->dest == dest && s->principal == principal && s->mtls == mtls &&
            s->inbound == inbound)
            return s;
        if (used == 0) {
            int zero = 0;
            if (!atomic_compare_exchange_strong(&s->used, &zero, 1))
                continue;
            s->dest = dest;
            s->principal = principal;
            s->mtls = mtls;
            s->inbound = inbound;
            atomic_store_explicit(&s->used, 2, memory_order_release);
            return s;
        }
    }
    atomic_fetch_add_explicit(&m->rq_dropped, 1, memory_order_relaxed);
    return NULL;
}

void mg_metrics_tcp_open(struct mg_wmetrics *m, const char *dest, const char *principal, bool mtls,
                         bool inbound)
{
    struct mg_tcp_slot *s = m ? tcp_slot(m, dest, principal, mtls, inbound) : NULL;
    if (s)
        bump(&s->opened, 1);
}

void mg_metrics_tcp_close(struct mg_wmetrics *m, const char *dest, const char *principal, bool mtls,
                          bool inbound, uint64_t sent, uint64_t received)
{
    struct mg_tcp_slot *s = m ? tcp_slot(m, dest, principal, mtls, inbound) : NULL;
    if (!s)
        return;
    bump(&s->closed, 1);
    bump(&s->sent, sent);
    bump(&s->received, received);
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
    struct mg_rq_key k;
    unsigned long count, dur[MG_DUR_BUCKETS + 1], req_b[MG_BYTES_BUCKETS + 1],
        resp_b[MG_BYTES_BUCKETS + 1], dur_sum, req_sum, resp_sum;
};

static bool str_same(const char *a, const char *b)
{
    return a == b || strcmp(a, b) == 0;
}

/* the same label values (string contents: the same literal may have two
 * addresses in two objects) */
static bool agg_same(const struct mg_rq_key *a, const struct mg_rq_key *b)
{
    return a->code == b->code && a->grpc_status == b->grpc_status && a->grpc == b->grpc &&
           a->mtls == b->mtls && a->inbound == b->inbound && str_same(a->route, b->route) &&
           str_same(a->dest, b->dest) && str_same(a->reason, b->reason) &&
           str_same(a->principal, b->principal) && str_same(a->flags, b->flags);
}

static unsigned long load(atomic_ulong *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}

/* destination_service: the host of a cluster stat name "dir|port|subset|host" */
static const char *dest_service(const char *stat)
{
    const char *bar = strrchr(stat, '|');
    return bar ? bar + 1 : stat;
}

/* Istio's standard labels of one request set (the `le` of a bucket after). */
static void rq_labels(struct mg_buf *out, const struct mg_rq_key *k)
{
    mg_buf_printf(out, "reporter=\"%s\",source_workload=\"unknown\",destination_service=\"",
                  k->inbound ? "destination" : "source");
    mg_buf_prom_label(out, dest_service(k->dest));
    mg_buf_adds(out, "\",destination_workload=\"unknown\",request_protocol=\"");
    mg_buf_adds(out, k->grpc ? "grpc" : "http");
    mg_buf_printf(out, "\",response_code=\"%d\",route_name=\"", k->code);
    mg_buf_prom_label(out, k->route);
    mg_buf_adds(out, "\",destination_cluster=\"");
    mg_buf_prom_label(out, k->dest);
    mg_buf_adds(out, "\",source_principal=\"");
    mg_buf_prom_label(out, k->principal);
    mg_buf_adds(out, "\",response_flags=\"");
    mg_buf_prom_label(out, k->flags);
    mg_buf_adds(out, "\",response_flags_reason=\"");
    mg_buf_prom_label(out, k->reason);
    if (k->grpc_status >= 0)
        mg_buf_printf(out, "\",grpc_response_status=\"%d", k->grpc_status);
    else
        mg_buf_adds(out, "\",grpc_response_status=\"");
    mg_buf_printf(out, "\",connection_security_policy=\"%s\"", k->mtls ? "mutual_tls" : "none");
}

static void histogram(struct mg_buf *out, const char *name, const struct agg *a, const double *bounds,
                      size_t nb, const unsigned long *counts, unsigned long sum)
{
    unsigned long cum = 0;
    for (size_t i = 0; i <= nb; i++) {
        cum += counts[i];
        mg_buf_printf(out, "%s_bucket{", name);
        rq_labels(out, &a->k);
        if (i < nb)
            mg_buf_printf(out, ",le=\"%.10g\"} %lu\n", bounds[i], cum);  /* 1800000, not 1.8e+06 */
        else
            mg_buf_printf(out, ",le=\"+Inf\"} %lu\n", cum);
    }
    mg_buf_printf(out, "%s_sum{", name);
    rq_labels(out, &a->k);
    mg_buf_printf(out, "} %lu\n%s_count{", sum, name);
    rq_labels(out, &a->k);
    mg_buf_printf(out, "} %lu\n", cum);
}

static void render_tcp(struct mg_buf *out, struct mg_wmetrics *const *per_worker, size_t n)
{
    struct { const char *dest, *principal; bool mtls, inbound; unsigned long v[4]; }
        t[MG_TCP_SLOTS * 2];
    size_t nt = 0;
    for (size_t w = 0; w < n; w++)
        for (size_t i = 0; i < MG_TCP_SLOTS; i++) {
            struct mg_tcp_slot *s = &per_worker[w]->tcp[i];
            if (atomic_load_explicit(&s->used, memory_order_acquire) != 2)
                continue;
            size_t j;
            for (j = 0; j < nt; j++)
                if (str_same(t[j].dest, s->dest) && str_same(t[j].principal, s->principal) &&
                    t[j].mtls == s->mtls && t[j].inbound == s->inbound)
                    break;
            if (j == nt) {
                if (nt == MG_ARRAY_LEN(t))
                    continue;
                memset(&t[nt], 0, sizeof(t[nt]));
                t[nt].dest = s->dest;
                t[nt].principal = s->principal;
                t[nt].mtls = s->mtls;
                t[nt++].inbound = s->inbound;
            }
            t[j].v[0] += load(&s->sent);
            t[j].v[1] += load(&s->received);
            t[j].v[2] += load(&s->opened);
            t[j].v[3] += load(&s->closed);
        }
    static const char *const names[4] = {
        "istio_tcp_sent_bytes_total", "istio_tcp_received_bytes_total",
        "istio_tcp_connections_opened_total", "istio_tcp_connections_closed_total",
    };
    for (int m = 0; m < 4; m++) {
        mg_buf_printf(out, "# TYPE %s counter\n", names[m]);
        for (size_t j = 0; j < nt; j++) {
            mg_buf_printf(out, "%s{reporter=\"%s\",source_workload=\"unknown\",source_principal=\"",
                          names[m], t[j].inbound ? "destination" : "source");
            mg_buf_prom_label(out, t[j].principal);
            mg_buf_adds(out, "\",destination_service=\"");
            mg_buf_prom_label(out, dest_service(t[j].dest));
            mg_buf_adds(out, "\",destination_workload=\"unknown\",destination_cluster=\"");
            mg_buf_prom_label(out, t[j].dest);
            mg_buf_printf(out, "\",request_protocol=\"tcp\",connection_security_policy=\"%s\"} %lu\n",
                          t[j].mtls ? "mutual_tls" : "none", t[j].v[m]);
        }
    }
}

void mg_metrics_render(struct mg_buf *out, struct mg_wmetrics *const *per_worker, size_t n)
{
    unsigned long cx_total = 0, cx_active = 0, up_rq = 0, up_cx = 0, dropped = 0, naming = 0;
    size_t cap = 64, na = 0;
    struct agg *a = mg_xmalloc(cap * sizeof(*a));
    for (size_t w = 0; w < n; w++) {
        struct mg_wmetrics *m = per_worker[w];
        cx_total += load(&m->cx_total);
        cx_active += load(&m->cx_active);
        up_rq += load(&m->upstream_rq_total);
        up_cx += load(&m->upstream_cx_total);
        naming += load(&m->upstream_secure_naming_failed);
        dropped += load(&m->rq_dropped);
        for (size_t i = 0; i < MG_METRICS_SLOTS; i++) {
            struct mg_rq_slot *s = &m->slots[i];
            if (atomic_load_explicit(&s->used, memory_order_acquire) != 2)
                continue;
            size_t j;
            for (j = 0; j < na; j++)
                if (agg_same(&a[j].k, &s->k))
                    break;
            if (j == na) {
                if (na == cap)
                    a = mg_xrealloc(a, (cap *= 2) * sizeof(*a));
                memset(&a[na], 0, sizeof(a[na]));
                a[na++].k = s->k;
            }
            a[j].count += load(&s->count);
            for (size_t b = 0; b <= MG_DUR_BUCKETS; b++)
                a[j].dur[b] += load(&s->dur[b]);
            for (size_t b = 0; b <= MG_BYTES_BUCKETS; b++) {
                a[j].req_b[b] += load(&s->req_b[b]);
                a[j].resp_b[b] += load(&s->resp_b[b]);
            }
            a[j].dur_sum += load(&s->dur_sum);
            a[j].req_sum += load(&s->req_sum);
            a[j].resp_sum += load(&s->resp_sum);
        }
    }
    mg_buf_adds(out, "# TYPE istio_requests_total counter\n");
    for (size_t j = 0; j < na; j++) {
        mg_buf_adds(out, "istio_requests_total{");
        rq_labels(out, &a[j].k);
        mg_buf_printf(out, "} %lu\n", a[j].count);
    }
    mg_buf_adds(out, "# TYPE istio_request_duration_milliseconds histogram\n");
    for (size_t j = 0; j < na; j++)
        histogram(out, "istio_request_duration_milliseconds", &a[j], mg_dur_bounds, MG_DUR_BUCKETS,
                  a[j].dur, a[j].dur_sum);
    mg_buf_adds(out, "# TYPE istio_request_bytes histogram\n");
    for (size_t j = 0; j < na; j++)
        histogram(out, "istio_request_bytes", &a[j], mg_bytes_bounds, MG_BYTES_BUCKETS, a[j].req_b,
                  a[j].req_sum);
    mg_buf_adds(out, "# TYPE istio_response_bytes histogram\n");
    for (size_t j = 0; j < na; j++)
        histogram(out, "istio_response_bytes", &a[j], mg_bytes_bounds, MG_BYTES_BUCKETS, a[j].resp_b,
                  a[j].resp_sum);
    free(a);
    render_tcp(out, per_worker, n);
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
    mg_buf_adds(out, "# TYPE meshgate_tls_handshake_failures_total counter\n");
    for (int r = 0; r < MG_TLSF_N; r++) {
        unsigned long c = 0;
        for (size_t i = 0; i < n; i++)
            c += load(&per_worker[i]->tls_fail[r]);
        mg_buf_printf(out, "meshgate_tls_handshake_failures_total{reason=\"%s\"} %lu\n",
                      mg_tls_fail_names[r], c);
    }
    mg_buf_adds(out, "# TYPE meshgate_egress_refused_total counter\n");
    for (size_t j = 0; j < ne; j++) {
        mg_buf_adds(out, "meshgate_egress_refused_total{entrance=\"");
        mg_buf_prom_label(out, eg[j].en);
        mg_buf_adds(out, "\",reason=\"");
        mg_buf_prom_label(out, eg[j].reason);
        mg_buf_printf(out, "\"} %lu\n", eg[j].count);
    }
}

static void cert_line(struct mg_buf *out, const char *source, const char *name, X509 *x)
{
    struct tm tm;
    const ASN1_TIME *na = x ? X509_get0_notAfter(x) : NULL;
    if (!na || ASN1_TIME_to_tm(na, &tm) != 1)
        return;
    char subj[256] = "";
    X509_NAME_oneline(X509_get_subject_name(x), subj, sizeof(subj));
    mg_buf_printf(out, "meshgate_certificate_expiry_seconds{source=\"%s\",name=\"", source);
    mg_buf_prom_label(out, name ? name : "");
    mg_buf_adds(out, "\",subject=\"");
    mg_buf_prom_label(out, subj);
    mg_buf_printf(out, "\"} %lld\n", (long long)timegm(&tm));
}

void mg_metrics_cert_expiry(struct mg_buf *out, const struct mg_snapshot *s)
{
    mg_buf_adds(out, "# TYPE meshgate_certificate_expiry_seconds gauge\n");
    if (!s)
        return;
    for (size_t i = 0; i < s->n_srvs; i++) {
        const struct mg_srv *v = &s->srvs[i];
        if (!v->tls || !v->ctx)
            continue;
        X509 *x = SSL_CTX_get0_certificate(v->ctx);
        bool seen = false;              /* one line per certificate */
        for (size_t j = 0; j < i && !seen; j++)
            seen = s->srvs[j].tls && s->srvs[j].ctx && SSL_CTX_get0_certificate(s->srvs[j].ctx) == x;
        if (x && !seen) {
            const char *cred = v->cfg ? v->cfg->tls.credential_name : NULL;
            cert_line(out, "server", cred ? cred : v->label, x);
        }
    }
    if (s->mesh_client)
        cert_line(out, "identity", s->spiffe_id, SSL_CTX_get0_certificate(s->mesh_client));
}
