/* config_dest.c - DestinationRule and ServiceEntry (networking.istio.io). */
#include <stdlib.h>
#include <string.h>
#include "config/internal.h"

/* ---- DestinationRule ---- */

/* "system" means the OS bundle in current Istio */
static bool read_client_ca(struct mg_cfg *x, const struct mg_ynode *k, const struct mg_ynode *v,
                           void *obj)
{
    struct mg_client_tls *t = obj;
    if (mg_cfg_scalar(x, k->str, v) && strcmp(v->str, "system") == 0)
        return mg_cfg_str(x, k->str, v, &t->ca_certificates);
    return mg_cfg_file(x, k->str, v, true, &t->ca_certificates);
}

static void check_client_tls(struct mg_cfg *x, const struct mg_cfg_read *r, void *obj)
{
    const struct mg_client_tls *t = obj;

    if (t->mode == MG_CTLS_MUTUAL && !t->credential_name &&
        (!t->client_certificate || !t->private_key))
        mg_error(x->d, r->m->pos, "TLS mode MUTUAL needs clientCertificate and privateKey (or "
                 "credentialName)");
    if (t->mode == MG_CTLS_ISTIO_MUTUAL &&
        (t->client_certificate || t->private_key || t->ca_certificates || t->credential_name))
        mg_error(x->d, r->m->pos, "TLS mode ISTIO_MUTUAL uses the proxy identity; certificate "
                 "fields must be empty");
}

static const char *const client_tls_modes[] = { "DISABLE", "SIMPLE", "MUTUAL", "ISTIO_MUTUAL" };
static const struct mg_cfg_field client_tls_rows[] = {
    MG_CFG_ENUM("mode", struct mg_client_tls, mode, client_tls_modes),
    MG_CFG_FILE("clientCertificate", struct mg_client_tls, client_certificate),
    MG_CFG_FILE("privateKey", struct mg_client_tls, private_key),
    MG_CFG_FN("caCertificates", read_client_ca),
    MG_CFG_FILE("caCrl", struct mg_client_tls, ca_crl),
    MG_CFG_STR("credentialName", struct mg_client_tls, credential_name),
    MG_CFG_SLIST("subjectAltNames", struct mg_client_tls, subject_alt_names),
    MG_CFG_STR("sni", struct mg_client_tls, sni),
    MG_CFG_BOOL("insecureSkipVerify", struct mg_client_tls, insecure_skip_verify),
};
static const struct mg_cfg_table client_tls = {
    MG_CFG_ROWS(client_tls_rows), .present_at = MG_CFG_FLAG_AT(struct mg_client_tls, present),
    .pos_at = MG_CFG_POS_AT(struct mg_client_tls, pos), .check = check_client_tls,
};

static const char *const h2_policies[] = { "DEFAULT", "DO_NOT_UPGRADE", "UPGRADE" };
static const struct mg_cfg_field pool_tcp_rows[] = {
    MG_CFG_U64("maxConnections", struct mg_conn_pool, max_connections),
    MG_CFG_DURATION("connectTimeout", struct mg_conn_pool, connect_timeout_ms),
    MG_CFG_DURATION("idleTimeout", struct mg_conn_pool, tcp_idle_timeout_ms),
    MG_CFG_UNSUPPORTED("tcpKeepalive"),
    MG_CFG_UNSUPPORTED("maxConnectionDuration"),
};
static const struct mg_cfg_field pool_http_rows[] = {
    MG_CFG_U64("http1MaxPendingRequests", struct mg_conn_pool, http1_max_pending_requests),
    MG_CFG_U64("http2MaxRequests", struct mg_conn_pool, http2_max_requests),
    MG_CFG_U64("maxRequestsPerConnection", struct mg_conn_pool, max_requests_per_connection),
    MG_CFG_U64("maxRetries", struct mg_conn_pool, max_retries),
    MG_CFG_DURATION("idleTimeout", struct mg_conn_pool, http_idle_timeout_ms),
    MG_CFG_U64("maxConcurrentStreams", struct mg_conn_pool, max_concurrent_streams),
    MG_CFG_BOOL("useClientProtocol", struct mg_conn_pool, use_client_protocol),
    MG_CFG_ENUM("h2UpgradePolicy", struct mg_conn_pool, h2_upgrade_policy, h2_policies),
    MG_CFG_UNSUPPORTED("http2KeepAlive"),
};
static const struct mg_cfg_table pool_tcp = { MG_CFG_ROWS(pool_tcp_rows) };
static const struct mg_cfg_table pool_http = { MG_CFG_ROWS(pool_http_rows) };
static const struct mg_cfg_field pool_rows[] = {
    MG_CFG_GROUP("tcp", pool_tcp),
    MG_CFG_GROUP("http", pool_http),
};
static const struct mg_cfg_table pool = {
    MG_CFG_ROWS(pool_rows), .present_at = MG_CFG_FLAG_AT(struct mg_conn_pool, present),
    .pos_at = MG_CFG_POS_AT(struct mg_conn_pool, pos),
};

/* Istio's validation of outlierDetection: durations of at least 1ms,
 * local-origin failures only with splitExternalLocalOriginErrors, and the
 * deprecated consecutiveErrors warned about. */
static void check_outlier(struct mg_cfg *x, const struct mg_cfg_read *r, void *obj)
{
    struct mg_outlier *o = obj;
    static const char *const durations[] = { "interval", "baseEjectionTime" };
    for (size_t i = 0; i < MG_ARRAY_LEN(durations); i++) {
        const struct mg_ynode *n = mg_cfg_seen(r, durations[i]);
        int64_t v = i == 0 ? o->interval_ms : o->base_ejection_time_ms;
        if (n && v < 1)
            mg_error(x->d, n->pos, "%s: duration must be at least 1ms",
                     mg_cfg_field(x, durations[i]));
    }
    o->has_consecutive_5xx_errors = mg_cfg_seen(r, "consecutive5xxErrors") != NULL;
    o->has_consecutive_gateway_errors = mg_cfg_seen(r, "consecutiveGatewayErrors") != NULL;
    const struct mg_ynode *ce = mg_cfg_seen(r, "consecutiveErrors");
    if (ce)
        mg_warning(x->d, ce->pos, "%s is deprecated, use consecutiveGatewayErrors or "
                   "consecutive5xxErrors instead", mg_cfg_field(x, "consecutiveErrors"));
    const struct mg_ynode *lo = mg_cfg_seen(r, "consecutiveLocalOriginFailures");
    if (lo && o->consecutive_local_origin_failures > 0 && !o->split_external_local_origin_errors)
        mg_error(x->d, lo->pos, "%s is specified, but splitExternalLocalOriginErrors is false",
                 mg_cfg_field(x, "consecutiveLocalOriginFailures"));
}

static const struct mg_cfg_field outlier_rows[] = {
    MG_CFG_INT("consecutive5xxErrors", struct mg_outlier, consecutive_5xx_errors, 0, 1000000),
    MG_CFG_INT("consecutiveErrors", struct mg_outlier, consecutive_errors, 0, 1000000),
    MG_CFG_INT("consecutiveGatewayErrors", struct mg_outlier, consecutive_gateway_errors, 0,
               1000000),
    MG_CFG_BOOL("splitExternalLocalOriginErrors", struct mg_outlier,
                split_external_local_origin_errors),
    MG_CFG_INT("consecutiveLocalOriginFailures", struct mg_outlier,
               consecutive_local_origin_failures, 0, 1000000),
    MG_CFG_DURATION("interval", struct mg_outlier, interval_ms),
    MG_CFG_DURATION("baseEjectionTime", struct mg_outlier, base_ejection_time_ms),
    MG_CFG_INT("maxEjectionPercent", struct mg_outlier, max_ejection_percent, 0, 100),
    MG_CFG_INT("minHealthPercent", struct mg_outlier, min_health_percent, 0, 100),
    MG_CFG_UNSUPPORTED("outlierDetectionHttpErrorCodes"),
};
static const struct mg_cfg_table outlier = {
    MG_CFG_ROWS(outlier_rows), .present_at = MG_CFG_FLAG_AT(struct mg_outlier, present),
    .pos_at = MG_CFG_POS_AT(struct mg_outlier, pos), .check = check_outlier,
};

/* ---- localityLbSetting ---- */

/* A locality pattern split as Istio's validation splits it: at most three
 * parts at the first two '/' (a subzone may hold more); level = parts - 1. */
struct lparts {
    const char *p[3];
    size_t n[3];
    int level;
};

static struct lparts lsplit(const char *l)
{
    struct lparts o = { .level = 0 };
    for (int i = 0;; i++) {
        size_t len = i < 2 ? strcspn(l, "/") : strlen(l);
        o.p[i] = l;
        o.n[i] = len;
        o.level = i;
        if (i == 2 || !l[len])
            break;
        l += len + 1;
    }
    return o;
}

static bool lpart_is(const struct lparts *a, int i, const char *s, size_t n)
{
    return a->n[i] == n && memcmp(a->p[i], s, n) == 0;
}

static bool lpart_eq(const struct lparts *a, const struct lparts *b, int i)
{
    return lpart_is(a, i, b->p[i], b->n[i]);
}

/* Istio's rule for one pattern: at most one '*', only at the end, and no
 * empty part. NULL when fine, else why not. */
static const char *locality_pattern_bad(const char *l)
{
    const char *star = strchr(l, '*');
    if (star && (strchr(star + 1, '*') || star[1]))
        return "wildcard '*' number can not exceed 1 and must be in the end";
    struct lparts o = lsplit(l);
    for (int i = 0; i <= o.level; i++)
        if (!o.n[i])
            return "must not contain empty region/zone/subzone info";
    return NULL;
}

/* Does pattern v[i] overlap one written before it, by Istio's rule (which
 * depends on the order): "*" before anything; a region-level pattern
 * after any of its region; a zone after its region, "region/ *" or the
 * same zone; a subzone after its region, a "region/ *" zone, its zone, a
 * "region/zone/ *" or the same subzone. (Spaces only keep the comment
 * open.) */
static bool locality_overlaps_earlier(const char *const *v, size_t i)
{
    struct lparts l = lsplit(v[i]);
    for (size_t j = 0; j < i; j++) {
        if (locality_pattern_bad(v[j]))
            continue;
        struct lparts e = lsplit(v[j]);
        if (e.level == 0 && lpart_is(&e, 0, "*", 1))
            return true;
        if (!lpart_eq(&l, &e, 0))
            continue;
        bool region_wide = e.level == 0 || lpart_is(&e, 1, "*", 1);
        bool same_zone = e.level >= 1 && l.level >= 1 && lpart_eq(&l, &e, 1);
        switch (l.level) {
        case 0:
            return true;
        case 1:
            if (region_wide || same_zone)
                return true;
            break;
        default:
            if (region_wide || (same_zone && (e.level == 1 || lpart_is(&e, 2, "*", 1) ||
                                              lpart_eq(&l, &e, 2))))
                return true;
        }
    }
    return false;
}

/* Istio's validateLocalities: every pattern well formed and none
 * overlapping one before it, reported at its own position. */
static void check_localities(struct mg_cfg *x, const char *const *v, const struct mg_pos *pos,
                             size_t n, const char *what)
{
    for (size_t i = 0; i < n; i++) {
        const char *why = locality_pattern_bad(v[i]);
        if (why)
            mg_error(x->d, pos[i], "%s: locality \"%s\" %s", mg_cfg_field(x, what), v[i], why);
        else if (locality_overlaps_earlier(v, i))
            mg_error(x->d, pos[i], "%s: locality \"%s\" overlap with previous specified ones",
                     mg_cfg_field(x, what), v[i]);
    }
}

static void check_distribute(struct mg_cfg *x, const struct mg_cfg_read *r, void *obj)
{
    struct mg_locality_distribute *d = obj;
    const struct mg_ynode *f = mg_cfg_seen(r, "from");
    if (f)
        d->pos = f->pos;
    if (!d->from)
        d->from = mg_xstrdup("");   /* Istio refuses it as an empty locality (the lb check) */
    const struct mg_ynode *tn = mg_cfg_seen(r, "to");
    uint64_t total = 0;
    bool bad = false;
    const char **keys = mg_xcalloc(d->to.n + 1, sizeof(*keys));
    struct mg_pos *pos = mg_xcalloc(d->to.n + 1, sizeof(*pos));
    for (size_t i = 0; i < d->to.n; i++) {
        const struct mg_kv *kv = &d->to.v[i];
        char *end;
        long w = strtol(kv->value, &end, 10);
        keys[i] = kv->key;
        pos[i] = kv->pos;
        if (end == kv->value || *end || w < 1 || w > 100) {
            mg_error(x->d, kv->pos, "%s: locality weight must be in range [1, 100] (\"%s\" for \"%s\")",
                     mg_cfg_field(x, "to"), kv->value, kv->key);
            bad = true;
            continue;
        }
        total += (uint64_t)w;
    }
    if (!d->to.n)
        mg_error(x->d, d->pos, "%s needs `to` (localities and their weights)", mg_cfg_field(x, NULL));
    else if (!bad && total != 100)
        mg_error(x->d, tn ? tn->pos : d->pos, "%s: total locality weight %llu != 100",
                 mg_cfg_field(x, "to"), (unsigned long long)total);
    check_localities(x, keys, pos, d->to.n, "to");
    free(keys);
    free(pos);
}

static const struct mg_cfg_field distribute_rows[] = {
    MG_CFG_STR("from", struct mg_locality_distribute, from),
    MG_CFG_KVLIST("to", struct mg_locality_distribute, to),
};
static const struct mg_cfg_table distribute = {
    MG_CFG_ROWS(distribute_rows), .pos_at = MG_CFG_POS_AT(struct mg_locality_distribute, pos),
    .check = check_distribute,
};

static void check_failover(struct mg_cfg *x, const struct mg_cfg_read *r, void *obj)
{
    const struct mg_locality_failover *f = obj;
    const struct mg_ynode *fn = mg_cfg_seen(r, "from"), *tn = mg_cfg_seen(r, "to");
    struct mg_pos at = tn ? tn->pos : fn ? fn->pos : f->pos;
    if (!f->from || !*f->from || !f->to || !*f->to) {
        mg_error(x->d, f->pos, "%s needs from and to (regions)", mg_cfg_field(x, NULL));
        return;
    }
    if (strcmp(f->from, f->to) == 0)
        mg_error(x->d, at, "%s: locality lb failover settings must specify different regions",
                 mg_cfg_field(x, NULL));
    if (strchr(f->from, '/') || strchr(f->to, '/'))
        mg_error(x->d, strchr(f->from, '/') && fn ? fn->pos : at,
                 "%s: locality lb failover only specify region (no '/')", mg_cfg_field(x, NULL));
    if (strchr(f->from, '*') || strchr(f->to, '*'))
        mg_error(x->d, strchr(f->from, '*') && fn ? fn->pos : at,
                 "%s: locality lb failover region should not contain '*' wildcard",
                 mg_cfg_field(x, NULL));
}

static const struct mg_cfg_field failover_rows[] = {
    MG_CFG_STR("from", struct mg_locality_failover, from),
    MG_CFG_STR("to", struct mg_locality_failover, to),
};
static const struct mg_cfg_table failover = {
    MG_CFG_ROWS(failover_rows), .pos_at = MG_CFG_POS_AT(struct mg_locality_failover, pos),
    .check = check_failover,
};

/* Istio's validateLocalityLbSetting (the outlier detection it asks for is
 * checked where both are known: check_destination_rule). */
static void check_locality_lb(struct mg_cfg *x, const struct mg_cfg_read *r, void *obj)
{
    struct mg_locality_lb *l = obj;
    l->has_enabled = mg_cfg_seen(r, "enabled") != NULL;
    const struct mg_ynode *fo = mg_cfg_seen(r, "failover");
    if (l->n_distribute && l->n_failover) {
        mg_error(x->d, fo ? fo->pos : l->pos, "%s: can not simultaneously specify 'distribute' and "
                 "'failover'", mg_cfg_field(x, NULL));
        return;
    }
    for (size_t i = 0; i < l->failover_priority.n; i++) {
        const char *p = l->failover_priority.v[i];
        if (!*p || *p == '=')
            mg_error(x->d, l->failover_priority.pos[i], "%s: empty label in \"%s\"",
                     mg_cfg_field(x, "failoverPriority"), p);
        else if (l->n_failover && (strcmp(p, "topology.kubernetes.io/region") == 0 ||
                                   strcmp(p, "topology.kubernetes.io/zone") == 0 ||
                                   strcmp(p, "topology.istio.io/subzone") == 0))
            mg_error(x->d, l->failover_priority.pos[i], "%s: can not simultaneously set 'failover' "
                     "and topology label '%s' in 'failoverPriority'",
                     mg_cfg_field(x, "failoverPriority"), p);
    }
    const char **from = mg_xcalloc(l->n_distribute + 1, sizeof(*from));
    struct mg_pos *pos = mg_xcalloc(l->n_distribute + 1, sizeof(*pos));
    for (size_t i = 0; i < l->n_distribute; i++) {
        from[i] = l->distribute[i].from;
        pos[i] = l->distribute[i].pos;
    }
    check_localities(x, from, pos, l->n_distribute, "distribute.from");
    free(from);
    free(pos);
}

static const struct mg_cfg_field locality_lb_rows[] = {
    MG_CFG_BOOL("enabled", struct mg_locality_lb, enabled),
    MG_CFG_LIST("distribute", struct mg_locality_lb, distribute, n_distribute, distribute),
    MG_CFG_LIST("failover", struct mg_locality_lb, failover, n_failover, failover),
    MG_CFG_SLIST("failoverPriority", struct mg_locality_lb, failover_priority),
};
const struct mg_cfg_table mg_cfg_locality_lb = {
    MG_CFG_ROWS(locality_lb_rows), .present_at = MG_CFG_FLAG_AT(struct mg_locality_lb, present),
    .pos_at = MG_CFG_POS_AT(struct mg_locality_lb, pos), .check = check_locality_lb,
};

static const char *const lb_names[] = { "UNSPECIFIED", "LEAST_CONN", "RANDOM", "PASSTHROUGH",
                                        "ROUND_ROBIN", "LEAST_REQUEST" };
static const int lb_values[] = { MG_LB_UNSPECIFIED, MG_LB_LEAST_CONN, MG_LB_RANDOM,
                                 MG_LB_PASSTHROUGH, MG_LB_ROUND_ROBIN, MG_LB_LEAST_REQUEST };
static const char *const lb_unsupported[] = {
    "consistentHash", "warmupDurationSecs",
};

/* A number within [lo, hi] (the CRD's double bounds). */
static void warmup_number(struct mg_cfg *x, const struct mg_ynode *m, const char *key, double lo,
                          double hi)
{
    const struct mg_ynode *v = mg_ynode_get(m, key);
    char *end;
    double d;

    if (!v || mg_ynode_is_null(v) || !mg_cfg_scalar(x, key, v))
        return;
    d = strtod(v->str, &end);
    if (end == v->str || *end || !v->plain || d < lo || d > hi)
        mg_error(x->d, v->pos, "invalid value \"%s\" for %s (want a number in %g..%g)", v->str,
                 mg_cfg_field(x, key), lo, hi);
}

/* warmup is not applied (a new endpoint gets its share at once), but it is
 * checked as Istio's schema does, so a document Istio refuses is refused */
static bool read_warmup(struct mg_cfg *x, const struct mg_ynode *k, const struct mg_ynode *v,
                        void *obj)
{
    const struct mg_ynode *dk, *dv;
    int64_t ms;

    (void)obj;
    if (!mg_cfg_map(x, k->str, v))
        return false;
    size_t mark = mg_cfg_push(x, ".warmup");
    dv = mg_ynode_get(v, "duration");
    if (!dv || mg_ynode_is_null(dv))
        mg_error(x->d, v->pos, "%s: duration is required", mg_cfg_field(x, NULL));
    else if (mg_cfg_duration(x, "duration", dv, &ms) && ms < 1)
        mg_error(x->d, dv->pos, "%s must be a valid duration greater than 1ms",
                 mg_cfg_field(x, "duration"));
    warmup_number(x, v, "minimumPercent", 0, 100);
    warmup_number(x, v, "aggression", 0, 1e300);
    for (size_t i = 0; mg_cfg_next(v, &i, &dk, &dv);)
        if (strcmp(dk->str, "duration") && strcmp(dk->str, "minimumPercent") &&
            strcmp(dk->str, "aggression"))
            mg_cfg_unknown(x, dk);
    mg_cfg_pop(x, mark);
    mg_cfg_unsupported(x, k);
    return true;
}

static const struct mg_cfg_field lb_rows[] = {
    MG_CFG_ENUMV("simple", struct mg_traffic_policy, lb, lb_names, lb_values),
    MG_CFG_FN("warmup", read_warmup),
    MG_CFG_MAP("localityLbSetting", struct mg_traffic_policy, locality_lb, mg_cfg_locality_lb),
    MG_CFG_UNSUPPORTED_ANY(lb_unsupported),
};
static const struct mg_cfg_table lb = { MG_CFG_ROWS(lb_rows) };

/* The keys of a TrafficPolicy, which port-level settings repeat. */
#define TRAFFIC_POLICY_ROWS(T, tp) \
    MG_CFG_MAP("loadBalancer", T, tp, lb), \
    MG_CFG_MAP("connectionPool", T, tp.pool, pool), \
    MG_CFG_MAP("outlierDetection", T, tp.outlier, outlier), \
    MG_CFG_MAP("tls", T, tp.tls, client_tls)

static void init_tp(struct mg_traffic_policy *tp)
{
    tp->pool.connect_timeout_ms = -1;
    tp->pool.tcp_idle_timeout_ms = -1;
    tp->pool.http_idle_timeout_ms = -1;
    tp->outlier.consecutive_5xx_errors = 5;
    tp->outlier.interval_ms = 10000;
    tp->outlier.base_ejection_time_ms = 30000;
    tp->outlier.max_ejection_percent = 10;
}

static void init_port_policy(void *obj)
{
    init_tp(&((struct mg_port_traffic_policy *)obj)->policy);
}

static void check_port_policy(struct mg_cfg *x, const struct mg_cfg_read *r, void *obj)
{
    const struct mg_port_traffic_policy *pl = obj;
    if (!pl->port)
        mg_error(x->d, pl->pos, "%s needs port.number", mg_cfg_field(x, NULL));
}

static const struct mg_cfg_field port_selector_rows[] = {
    MG_CFG_PORT("number", struct mg_port_traffic_policy, port),
};
static const struct mg_cfg_table port_selector = { MG_CFG_ROWS(port_selector_rows) };
static const struct mg_cfg_field port_policy_rows[] = {
    MG_CFG_GROUP("port", port_selector),
    TRAFFIC_POLICY_ROWS(struct mg_port_traffic_policy, policy),
};
static const struct mg_cfg_table port_policy = {
    MG_CFG_ROWS(port_policy_rows), .present_at = MG_CFG_FLAG_AT(struct mg_port_traffic_policy, policy.present),
    .pos_at = MG_CFG_POS_AT(struct mg_port_traffic_policy, pos), .init = init_port_policy,
    .check = check_port_policy,
};

static const char *const pp_versions[] = { "V1", "V2" };
static const struct mg_cfg_field up_pp_rows[] = {
    MG_CFG_ENUM("version", struct mg_up_proxy_protocol, version, pp_versions),
};
static const struct mg_cfg_table up_pp = {
    MG_CFG_ROWS(up_pp_rows), .present_at = MG_CFG_FLAG_AT(struct mg_up_proxy_protocol, present),
    .pos_at = MG_CFG_POS_AT(struct mg_up_proxy_protocol, pos),
};

static const struct mg_cfg_field dr_policy_rows[] = {
    TRAFFIC_POLICY_ROWS(struct mg_dr_policy, base),
    MG_CFG_LIST("portLevelSettings", struct mg_dr_policy, port_level, n_port_level, port_policy),
    MG_CFG_UNSUPPORTED("tunnel"),
    MG_CFG_MAP("proxyProtocol", struct mg_dr_policy, proxy_protocol, up_pp),
};
static const struct mg_cfg_table dr_policy = {
    MG_CFG_ROWS(dr_policy_rows), .present_at = MG_CFG_FLAG_AT(struct mg_dr_policy, base.present),
};

/* Defaults apply even when the value turns out not to be a map. */
static bool read_dr_policy(struct mg_cfg *x, const char *key, const struct mg_ynode *v,
                           struct mg_dr_policy *p)
{
    init_tp(&p->base);
    return mg_cfg_read_map(x, key, v, &dr_policy, p);
}

static bool read_subset_policy(struct mg_cfg *x, const struct mg_ynode *k,
                               const struct mg_ynode *v, void *obj)
{
    return read_dr_policy(x, k->str, v, &((struct mg_subset *)obj)->policy);
}

static bool read_rule_policy(struct mg_cfg *x, const struct mg_ynode *k, const struct mg_ynode *v,
                             void *obj)
{
    return read_dr_policy(x, k->str, v, &((struct mg_destination_rule *)obj)->policy);
}

static void init_subset(void *obj)
{
    init_tp(&((struct mg_subset *)obj)->policy.base);
}

static void check_subset(struct mg_cfg *x, const struct mg_cfg_read *r, void *obj)
{
    if (!((const struct mg_subset *)obj)->name)
        mg_error(x->d, r->m->pos, "%s needs a name", mg_cfg_field(x, NULL));
}

static const struct mg_cfg_field subset_rows[] = {
    MG_CFG_STR("name", struct mg_subset, name),
    MG_CFG_KVLIST("labels", struct mg_subset, labels),
    MG_CFG_FN("trafficPolicy", read_subset_policy),
};
static const struct mg_cfg_table subset = {
    MG_CFG_ROWS(subset_rows), .pos_at = MG_CFG_POS_AT(struct mg_subset, pos), .init = init_subset,
    .check = check_subset,
};

/* Istio warns when failover is asked without outlier detection: without
 * it no endpoint is ever unhealthy, so traffic never leaves the nearest
 * priority (and here, as in Istio, no locality priority is applied). */
static void warn_failover_without_outlier(struct mg_cfg *x, const struct mg_traffic_policy *tp,
                                          const struct mg_outlier *od)
{
    const struct mg_locality_lb *l = &tp->locality_lb;
    if (l->present && (l->n_failover || l->failover_priority.n) && !tp->outlier.present &&
        !(od && od->present))
        mg_warning(x->d, l->pos, "localityLbSetting: outlier detection policy must be provided for "
                   "failover (without outlierDetection no locality failover is applied)");
}

static void check_dr_policy_locality(struct mg_cfg *x, const struct mg_dr_policy *p,
                                     const struct mg_outlier *outer)
{
    const struct mg_outlier *base = p->base.outlier.present ? &p->base.outlier : outer;
    warn_failover_without_outlier(x, &p->base, outer);
    for (size_t i = 0; i < p->n_port_level; i++)
        warn_failover_without_outlier(x, &p->port_level[i].policy, base);
}

static void check_destination_rule(struct mg_cfg *x, const struct mg_cfg_read *r, void *obj)
{
    const struct mg_destination_rule *dr = obj;
    if (!dr->host || !*dr->host)
        mg_error(x->d, r->m ? r->m->pos : dr->meta.pos, "DestinationRule needs a host");
    check_dr_policy_locality(x, &dr->policy, NULL);
    const struct mg_outlier *od = dr->policy.base.outlier.present ? &dr->policy.base.outlier : NULL;
    for (size_t i = 0; i < dr->n_subsets; i++)
        check_dr_policy_locality(x, &dr->subsets[i].policy, od);
}

static const struct mg_cfg_field destination_rule_rows[] = {
    MG_CFG_STR("host", struct mg_destination_rule, host),
    MG_CFG_FN("trafficPolicy", read_rule_policy),
    MG_CFG_SLIST("exportTo", struct mg_destination_rule, export_to),
    MG_CFG_MAP("workloadSelector", struct mg_destination_rule, workload_selector,
               mg_cfg_match_labels),
    MG_CFG_LIST("subsets", struct mg_destination_rule, subsets, n_subsets, subset),
};
static const struct mg_cfg_table destination_rule = {
    MG_CFG_ROWS(destination_rule_rows), .check = check_destination_rule,
};

void mg_cfg_read_destination_rule(struct mg_cfg *x, const struct mg_ynode *spec,
                                  struct mg_destination_rule *dr)
{
    init_tp(&dr->policy.base);
    mg_cfg_read_spec(x, spec, &destination_rule, dr);
}

/* ---- ServiceEntry ---- */

static void check_se_port(struct mg_cfg *x, const struct mg_cfg_read *r, void *obj)
{
    if (!mg_ynode_get(r->m, "number"))
        mg_error(x->d, r->m->pos, "%s needs a number", mg_cfg_field(x, NULL));
}

static const struct mg_cfg_field se_port_rows[] = {
    MG_CFG_PORT("number", struct mg_se_port, number),
    MG_CFG_PROTO("protocol", struct mg_se_port, protocol),
    MG_CFG_STR("name", struct mg_se_port, name),
    MG_CFG_PORT("targetPort", struct mg_se_port, target_port),
};
static const struct mg_cfg_table se_port = {
    MG_CFG_ROWS(se_port_rows), .pos_at = MG_CFG_POS_AT(struct mg_se_port, pos),
    .check = check_se_port,
};

static bool read_endpoint_ports(struct mg_cfg *x, const struct mg_ynode *k,
                                const struct mg_ynode *v, void *obj)
{
    struct mg_workload_entry *w = obj;

    if (!mg_cfg_kvlist(x, k->str, v, &w->ports))
        return false;
    for (size_t j = 0; j < w->ports.n; j++) {
        uint16_t port;
        if (mg_parse_port(w->ports.v[j].value, false, &port) < 0)
            mg_error(x->d, w->ports.v[j].pos, "invalid port \"%s\" in %s",
                     w->ports.v[j].value, mg_cfg_field(x, k->str));
    }
    return true;
}

static const struct mg_cfg_field endpoint_rows[] = {
    MG_CFG_STR("address", struct mg_workload_entry, address),
    MG_CFG_FN("ports", read_endpoint_ports),
    MG_CFG_KVLIST("labels", struct mg_workload_entry, labels),
    MG_CFG_STR("network", struct mg_workload_entry, network),
    MG_CFG_STR("locality", struct mg_workload_entry, locality),
    MG_CFG_INT("weight", struct mg_workload_entry, weight, 0, 1000000),
    MG_CFG_STR("serviceAccount", struct mg_workload_entry, service_account),
};
static const struct mg_cfg_table endpoint = {
    MG_CFG_ROWS(endpoint_rows), .pos_at = MG_CFG_POS_AT(struct mg_workload_entry, pos),
};

static void check_workload_entry(struct mg_cfg *x, const struct mg_cfg_read *r, void *obj)
{
    const struct mg_workload_entry *w = obj;
    struct mg_pos at = r->m ? r->m->pos : w->pos;
    /* Istio allows an empty address only for a workload reached through
     * a network gateway, which this proxy does not model */
    struct mg_addr a;
    if (!w->address || !*w->address)
        mg_error(x->d, at, "WorkloadEntry needs an address");
    else if (!mg_has_prefix(w->address, "unix://") && mg_addr_parse_ip(&a, w->address) < 0 &&
             !mg_cfg_host_ok(w->address))
        mg_error(x->d, at, "invalid WorkloadEntry address \"%s\" (want an IP or a host name)",
                 w->address);
    else if (mg_has_prefix(w->address, "unix://"))
        mg_warning(x->d, at, "WorkloadEntry address \"%s\": unix sockets are not reached by this "
                   "proxy; the entry is skipped", w->address);
    if (w->service_account && (!*w->service_account || strchr(w->service_account, '/')))
        mg_error(x->d, at, "invalid serviceAccount \"%s\"", w->service_account);
}

static const struct mg_cfg_table workload_entry = {
    MG_CFG_ROWS(endpoint_rows), .pos_at = MG_CFG_POS_AT(struct mg_workload_entry, pos),
    .check = check_workload_entry,
};

void mg_cfg_read_workload_entry(struct mg_cfg *x, const struct mg_ynode *spec,
                                struct mg_workload_entry *we)
{
    mg_cfg_read_spec(x, spec, &workload_entry, we);
}

static bool read_se_addresses(struct mg_cfg *x, const struct mg_ynode *k, const struct mg_ynode *v,
                              void *obj)
{
    struct mg_service_entry *se = obj;

    if (!mg_cfg_slist(x, k->str, v, &se->addresses))
        return false;
    for (size_t j = 0; j < se->addresses.n; j++) {
        struct mg_cidr c;
        if (mg_cidr_parse(se->addresses.v[j], &c) < 0)
            mg_error(x->d, se->addresses.pos[j], "invalid address \"%s\" in addresses",
                     se->addresses.v[j]);
    }
    return true;
}

static void check_service_entry(struct mg_cfg *x, const struct mg_cfg_read *r, void *obj)
{
    const struct mg_service_entry *se = obj;
    struct mg_pos at = r->m ? r->m->pos : se->meta.pos;

    if (se->hosts.n == 0)
        mg_error(x->d, at, "ServiceEntry needs hosts");
    for (size_t i = 0; i < se->hosts.n; i++) {
        const char *h = se->hosts.v[i];
        if (strcmp(h, "*") == 0)
            mg_error(x->d, se->hosts.pos[i], "invalid ServiceEntry host \"%s\"", h);
        else if (h[0] == '*' && h[1] != '.' && h[1] && mg_cfg_host_ok(h + 1))
            /* "*x.example.com": Istio's label rules allow it and only warn;
             * no proxy matches such a partial wildcard */
            mg_warning(x->d, se->hosts.pos[i], "partial wildcard \"%s\" not allowed: only a "
                       "leading \"*.\" matches; this host matches nothing", h);
        else if (!mg_cfg_host_ok(h))
            mg_error(x->d, se->hosts.pos[i], "invalid ServiceEntry host \"%s\"", h);
    }
    /* no ports is valid (Istio: an entry that only names hosts or selects
     * workloads); such an entry serves no port here */
    for (size_t i = 0; i < se->n_ports; i++)
        if (se->ports[i].name && !mg_cfg_dns_label_ok(se->ports[i].name,
                                                      strlen(se->ports[i].name)))
            mg_error(x->d, se->ports[i].pos, "invalid port name: %s (want a DNS-1123 label)",
                     se->ports[i].name);
    bool cidr = false;
    for (size_t i = 0; i < se->addresses.n; i++)
        cidr |= strchr(se->addresses.v[i], '/') != NULL;
    if (cidr && se->resolution != MG_RES_NONE && se->resolution != MG_RES_STATIC)
        mg_error(x->d, at, "CIDR addresses are allowed only for NONE/STATIC resolution types");
    if (se->resolution == MG_RES_DNS_ROUND_ROBIN && se->n_endpoints > 1)
        mg_error(x->d, at, "there must only be 0 or 1 endpoint for resolution mode "
                 "DNS_ROUND_ROBIN");
    for (size_t i = 0; i < se->n_ports; i++)
        for (size_t j = 0; j < i; j++)
            if (se->ports[i].number && se->ports[i].number == se->ports[j].number)
                mg_error(x->d, se->ports[i].pos, "duplicate port %u in ServiceEntry",
                         se->ports[i].number);
            else if (se->ports[i].name && se->ports[j].name &&
                     strcmp(se->ports[i].name, se->ports[j].name) == 0)
                mg_error(x->d, se->ports[i].pos, "duplicate port name \"%s\" in ServiceEntry",
                         se->ports[i].name);
    if (se->resolution == MG_RES_STATIC && se->n_endpoints == 0 && !se->workload_selector.present)
        mg_error(x->d, at, "resolution STATIC needs endpoints");
    if (se->resolution == MG_RES_NONE && se->n_endpoints)
        mg_error(x->d, at, "resolution NONE does not allow endpoints");
    if (se->n_endpoints && se->workload_selector.present)
        mg_error(x->d, at, "endpoints and workloadSelector cannot be used together");
    for (size_t i = 0; i < se->n_endpoints; i++)
        if (!se->endpoints[i].address && !se->workload_selector.present)
            mg_error(x->d, se->endpoints[i].pos, "endpoint needs an address");
}

static const char *const se_locations[] = { "MESH_EXTERNAL", "MESH_INTERNAL" };
static const char *const se_resolutions[] = { "NONE", "STATIC", "DNS", "DNS_ROUND_ROBIN",
                                              "DYNAMIC_DNS" };
static const struct mg_cfg_field service_entry_rows[] = {
    MG_CFG_SLIST("hosts", struct mg_service_entry, hosts),
    MG_CFG_FN("addresses", read_se_addresses),
    MG_CFG_LIST("ports", struct mg_service_entry, ports, n_ports, se_port),
    MG_CFG_ENUM("location", struct mg_service_entry, location, se_locations),
    MG_CFG_ENUM("resolution", struct mg_service_entry, resolution, se_resolutions),
    MG_CFG_LIST("endpoints", struct mg_service_entry, endpoints, n_endpoints, endpoint),
    MG_CFG_MAP("workloadSelector", struct mg_service_entry, workload_selector, mg_cfg_labels),
    MG_CFG_SLIST("exportTo", struct mg_service_entry, export_to),
    MG_CFG_SLIST("subjectAltNames", struct mg_service_entry, subject_alt_names),
};
static const struct mg_cfg_table service_entry = {
    MG_CFG_ROWS(service_entry_rows), .check = check_service_entry,
};

void mg_cfg_read_service_entry(struct mg_cfg *x, const struct mg_ynode *spec,
                               struct mg_service_entry *se)
{
    mg_cfg_read_spec(x, spec, &service_entry, se);
}
