/* config_dest.c - DestinationRule and ServiceEntry (networking.istio.io). */
#include <stdlib.h>
#include <string.h>
#include "config_int.h"

/* ---- DestinationRule ---- */

static void read_client_tls(struct mg_cfg *x, const struct mg_ynode *v, struct mg_client_tls *t)
{
    static const char *const modes[] = { "DISABLE", "SIMPLE", "MUTUAL", "ISTIO_MUTUAL" };
    const struct mg_ynode *k, *e;
    int m;

    if (!mg_cfg_map(x, "tls", v))
        return;
    t->present = true;
    t->pos = v->pos;
    size_t mark = mg_cfg_push(x, ".tls");
    for (size_t i = 0; mg_cfg_next(v, &i, &k, &e);) {
        const char *key = k->str;
        if (strcmp(key, "mode") == 0) {
            if (mg_cfg_enum(x, key, e, modes, NULL, 4, &m))
                t->mode = (enum mg_client_tls_mode)m;
        } else if (strcmp(key, "clientCertificate") == 0)
            mg_cfg_file(x, key, e, true, &t->client_certificate);
        else if (strcmp(key, "privateKey") == 0)
            mg_cfg_file(x, key, e, true, &t->private_key);
        else if (strcmp(key, "caCertificates") == 0) {
            /* "system" means the OS bundle in current Istio */
            if (mg_cfg_scalar(x, key, e) && strcmp(e->str, "system") == 0)
                mg_cfg_str(x, key, e, &t->ca_certificates);
            else
                mg_cfg_file(x, key, e, true, &t->ca_certificates);
        } else if (strcmp(key, "caCrl") == 0)
            mg_cfg_file(x, key, e, true, &t->ca_crl);
        else if (strcmp(key, "credentialName") == 0)
            mg_cfg_str(x, key, e, &t->credential_name);
        else if (strcmp(key, "subjectAltNames") == 0)
            mg_cfg_slist(x, key, e, &t->subject_alt_names);
        else if (strcmp(key, "sni") == 0)
            mg_cfg_str(x, key, e, &t->sni);
        else if (strcmp(key, "insecureSkipVerify") == 0)
            mg_cfg_bool(x, key, e, &t->insecure_skip_verify);
        else
            mg_cfg_unknown(x, k);
    }
    if (t->mode == MG_CTLS_MUTUAL && !t->credential_name &&
        (!t->client_certificate || !t->private_key))
        mg_error(x->d, v->pos, "TLS mode MUTUAL needs clientCertificate and privateKey (or "
                 "credentialName)");
    if (t->mode == MG_CTLS_ISTIO_MUTUAL &&
        (t->client_certificate || t->private_key || t->ca_certificates || t->credential_name))
        mg_error(x->d, v->pos, "TLS mode ISTIO_MUTUAL uses the proxy identity; certificate "
                 "fields must be empty");
    mg_cfg_pop(x, mark);
}

static void read_pool(struct mg_cfg *x, const struct mg_ynode *v, struct mg_conn_pool *p)
{
    static const char *const h2[] = { "DEFAULT", "DO_NOT_UPGRADE", "UPGRADE" };
    const struct mg_ynode *k, *e, *fk, *fv;
    int t;

    if (!mg_cfg_map(x, "connectionPool", v))
        return;
    p->present = true;
    p->pos = v->pos;
    size_t mark = mg_cfg_push(x, ".connectionPool");
    for (size_t i = 0; mg_cfg_next(v, &i, &k, &e);) {
        bool tcp = strcmp(k->str, "tcp") == 0;
        if (!tcp && strcmp(k->str, "http") != 0) {
            mg_cfg_unknown(x, k);
            continue;
        }
        if (!mg_cfg_map(x, k->str, e))
            continue;
        size_t m2 = mg_cfg_push(x, ".%s", k->str);
        for (size_t j = 0; mg_cfg_next(e, &j, &fk, &fv);) {
            const char *f = fk->str;
            if (tcp && strcmp(f, "maxConnections") == 0)
                mg_cfg_u64(x, f, fv, &p->max_connections);
            else if (tcp && strcmp(f, "connectTimeout") == 0)
                mg_cfg_duration(x, f, fv, &p->connect_timeout_ms);
            else if (tcp && strcmp(f, "idleTimeout") == 0)
                mg_cfg_duration(x, f, fv, &p->tcp_idle_timeout_ms);
            else if (tcp && (strcmp(f, "tcpKeepalive") == 0 ||
                             strcmp(f, "maxConnectionDuration") == 0))
                mg_cfg_unsupported(x, fk);
            else if (!tcp && strcmp(f, "http1MaxPendingRequests") == 0)
                mg_cfg_u64(x, f, fv, &p->http1_max_pending_requests);
            else if (!tcp && strcmp(f, "http2MaxRequests") == 0)
                mg_cfg_u64(x, f, fv, &p->http2_max_requests);
            else if (!tcp && strcmp(f, "maxRequestsPerConnection") == 0)
                mg_cfg_u64(x, f, fv, &p->max_requests_per_connection);
            else if (!tcp && strcmp(f, "maxRetries") == 0)
                mg_cfg_u64(x, f, fv, &p->max_retries);
            else if (!tcp && strcmp(f, "idleTimeout") == 0)
                mg_cfg_duration(x, f, fv, &p->http_idle_timeout_ms);
            else if (!tcp && strcmp(f, "maxConcurrentStreams") == 0)
                mg_cfg_u64(x, f, fv, &p->max_concurrent_streams);
            else if (!tcp && strcmp(f, "useClientProtocol") == 0)
                mg_cfg_bool(x, f, fv, &p->use_client_protocol);
            else if (!tcp && strcmp(f, "h2UpgradePolicy") == 0) {
                if (mg_cfg_enum(x, f, fv, h2, NULL, 3, &t))
                    p->h2_upgrade_policy = t;
            } else if (!tcp && strcmp(f, "http2KeepAlive") == 0)
                mg_cfg_unsupported(x, fk);
            else
                mg_cfg_unknown(x, fk);
        }
        mg_cfg_pop(x, m2);
    }
    mg_cfg_pop(x, mark);
}

static void read_outlier(struct mg_cfg *x, const struct mg_ynode *v, struct mg_outlier *o)
{
    const struct mg_ynode *k, *e;

    if (!mg_cfg_map(x, "outlierDetection", v))
        return;
    o->present = true;
    o->pos = v->pos;
    size_t mark = mg_cfg_push(x, ".outlierDetection");
    for (size_t i = 0; mg_cfg_next(v, &i, &k, &e);) {
        const char *f = k->str;
        if (strcmp(f, "consecutive5xxErrors") == 0 || strcmp(f, "consecutiveErrors") == 0)
            mg_cfg_intv(x, f, e, 0, 1000000, &o->consecutive_5xx_errors);
        else if (strcmp(f, "consecutiveGatewayErrors") == 0)
            mg_cfg_intv(x, f, e, 0, 1000000, &o->consecutive_gateway_errors);
        else if (strcmp(f, "interval") == 0)
            mg_cfg_duration(x, f, e, &o->interval_ms);
        else if (strcmp(f, "baseEjectionTime") == 0)
            mg_cfg_duration(x, f, e, &o->base_ejection_time_ms);
        else if (strcmp(f, "maxEjectionPercent") == 0)
            mg_cfg_intv(x, f, e, 0, 100, &o->max_ejection_percent);
        else if (strcmp(f, "minHealthPercent") == 0)
            mg_cfg_intv(x, f, e, 0, 100, &o->min_health_percent);
        else if (strcmp(f, "splitExternalLocalOriginErrors") == 0 ||
                 strcmp(f, "consecutiveLocalOriginFailures") == 0 ||
                 strcmp(f, "outlierDetectionHttpErrorCodes") == 0)
            mg_cfg_unsupported(x, k);
        else
            mg_cfg_unknown(x, k);
    }
    mg_cfg_pop(x, mark);
}

static void read_lb(struct mg_cfg *x, const struct mg_ynode *v, struct mg_traffic_policy *tp)
{
    static const char *const simple[] = { "UNSPECIFIED", "LEAST_CONN", "RANDOM", "PASSTHROUGH",
                                          "ROUND_ROBIN", "LEAST_REQUEST" };
    static const int simple_v[] = { MG_LB_UNSPECIFIED, MG_LB_LEAST_CONN, MG_LB_RANDOM,
                                    MG_LB_PASSTHROUGH, MG_LB_ROUND_ROBIN, MG_LB_LEAST_REQUEST };
    const struct mg_ynode *k, *e;
    int t;

    if (!mg_cfg_map(x, "loadBalancer", v))
        return;
    size_t mark = mg_cfg_push(x, ".loadBalancer");
    for (size_t i = 0; mg_cfg_next(v, &i, &k, &e);) {
        if (strcmp(k->str, "simple") == 0) {
            if (mg_cfg_enum(x, "simple", e, simple, simple_v, 6, &t))
                tp->lb = (enum mg_lb_simple)t;
        } else if (strcmp(k->str, "consistentHash") == 0 ||
                   strcmp(k->str, "localityLbSetting") == 0 ||
                   strcmp(k->str, "warmupDurationSecs") == 0 || strcmp(k->str, "warmup") == 0)
            mg_cfg_unsupported(x, k);
        else
            mg_cfg_unknown(x, k);
    }
    mg_cfg_pop(x, mark);
}

static void read_tp_field(struct mg_cfg *x, const struct mg_ynode *k, const struct mg_ynode *e,
                          struct mg_traffic_policy *tp, bool *handled)
{
    *handled = true;
    if (strcmp(k->str, "loadBalancer") == 0)
        read_lb(x, e, tp);
    else if (strcmp(k->str, "connectionPool") == 0)
        read_pool(x, e, &tp->pool);
    else if (strcmp(k->str, "outlierDetection") == 0)
        read_outlier(x, e, &tp->outlier);
    else if (strcmp(k->str, "tls") == 0)
        read_client_tls(x, e, &tp->tls);
    else
        *handled = false;
}

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

static void read_dr_policy(struct mg_cfg *x, const char *key, const struct mg_ynode *v,
                           struct mg_dr_policy *p)
{
    const struct mg_ynode *k, *e, *pk, *pv, *qk, *qv;
    bool handled;

    init_tp(&p->base);
    if (!mg_cfg_map(x, key, v))
        return;
    p->base.present = true;
    size_t mark = mg_cfg_push(x, ".%s", key);
    for (size_t i = 0; mg_cfg_next(v, &i, &k, &e);) {
        read_tp_field(x, k, e, &p->base, &handled);
        if (handled)
            continue;
        if (strcmp(k->str, "portLevelSettings") == 0) {
            if (!mg_cfg_seq(x, k->str, e))
                continue;
            for (size_t j = 0; j < e->n; j++) {
                size_t m2 = mg_cfg_push(x, ".portLevelSettings[%zu]", j);
                if (mg_cfg_map(x, "", e->items[j])) {
                    struct mg_port_traffic_policy *pl = MG_CFG_PUSH(p->port_level, p->n_port_level);
                    pl->pos = e->items[j]->pos;
                    init_tp(&pl->policy);
                    pl->policy.present = true;
                    for (size_t q = 0; mg_cfg_next(e->items[j], &q, &pk, &pv);) {
                        if (strcmp(pk->str, "port") == 0) {
                            if (!mg_cfg_map(x, "port", pv))
                                continue;
                            size_t m3 = mg_cfg_push(x, ".port");
                            for (size_t z = 0; mg_cfg_next(pv, &z, &qk, &qv);) {
                                if (strcmp(qk->str, "number") == 0)
                                    mg_cfg_port(x, "number", qv, &pl->port);
                                else
                                    mg_cfg_unknown(x, qk);
                            }
                            mg_cfg_pop(x, m3);
                            continue;
                        }
                        read_tp_field(x, pk, pv, &pl->policy, &handled);
                        if (!handled)
                            mg_cfg_unknown(x, pk);
                    }
                    if (!pl->port)
                        mg_error(x->d, pl->pos, "%s needs port.number", mg_cfg_field(x, NULL));
                }
                mg_cfg_pop(x, m2);
            }
        } else if (strcmp(k->str, "tunnel") == 0 || strcmp(k->str, "proxyProtocol") == 0)
            mg_cfg_unsupported(x, k);
        else
            mg_cfg_unknown(x, k);
    }
    mg_cfg_pop(x, mark);
}

void mg_cfg_read_destination_rule(struct mg_cfg *x, const struct mg_ynode *spec,
                                  struct mg_destination_rule *dr)
{
    const struct mg_ynode *k, *v, *sk, *sv;

    init_tp(&dr->policy.base);
    if (spec && !mg_ynode_is_null(spec) && !mg_cfg_map(x, "", spec))
        return;
    for (size_t i = 0; mg_cfg_next(spec, &i, &k, &v);) {
        const char *key = k->str;
        if (strcmp(key, "host") == 0)
            mg_cfg_str(x, key, v, &dr->host);
        else if (strcmp(key, "trafficPolicy") == 0)
            read_dr_policy(x, key, v, &dr->policy);
        else if (strcmp(key, "exportTo") == 0)
            mg_cfg_slist(x, key, v, &dr->export_to);
        else if (strcmp(key, "workloadSelector") == 0)
            mg_cfg_selector(x, key, v, "matchLabels", &dr->workload_selector);
        else if (strcmp(key, "subsets") == 0) {
            if (!mg_cfg_seq(x, key, v))
                continue;
            for (size_t j = 0; j < v->n; j++) {
                size_t mark = mg_cfg_push(x, ".subsets[%zu]", j);
                if (mg_cfg_map(x, "", v->items[j])) {
                    struct mg_subset *s = MG_CFG_PUSH(dr->subsets, dr->n_subsets);
                    s->pos = v->items[j]->pos;
                    init_tp(&s->policy.base);
                    for (size_t q = 0; mg_cfg_next(v->items[j], &q, &sk, &sv);) {
                        if (strcmp(sk->str, "name") == 0)
                            mg_cfg_str(x, "name", sv, &s->name);
                        else if (strcmp(sk->str, "labels") == 0)
                            mg_cfg_kvlist(x, "labels", sv, &s->labels);
                        else if (strcmp(sk->str, "trafficPolicy") == 0)
                            read_dr_policy(x, "trafficPolicy", sv, &s->policy);
                        else
                            mg_cfg_unknown(x, sk);
                    }
                    if (!s->name)
                        mg_error(x->d, s->pos, "%s needs a name", mg_cfg_field(x, NULL));
                }
                mg_cfg_pop(x, mark);
            }
        } else
            mg_cfg_unknown(x, k);
    }
    if (!dr->host || !*dr->host)
        mg_error(x->d, spec ? spec->pos : dr->meta.pos, "DestinationRule needs a host");
}

/* ---- ServiceEntry ---- */

static void read_se_port(struct mg_cfg *x, const struct mg_ynode *v, struct mg_se_port *p)
{
    const struct mg_ynode *k, *e;

    p->pos = v->pos;
    for (size_t i = 0; mg_cfg_next(v, &i, &k, &e);) {
        if (strcmp(k->str, "number") == 0)
            mg_cfg_port(x, "number", e, &p->number);
        else if (strcmp(k->str, "protocol") == 0)
            mg_cfg_proto(x, "protocol", e, &p->protocol);
        else if (strcmp(k->str, "name") == 0)
            mg_cfg_str(x, "name", e, &p->name);
        else if (strcmp(k->str, "targetPort") == 0)
            mg_cfg_port(x, "targetPort", e, &p->target_port);
        else
            mg_cfg_unknown(x, k);
    }
    if (!mg_ynode_get(v, "number"))
        mg_error(x->d, v->pos, "%s needs a number", mg_cfg_field(x, NULL));
}

static void read_endpoint(struct mg_cfg *x, const struct mg_ynode *v, struct mg_workload_entry *w)
{
    const struct mg_ynode *k, *e;

    w->pos = v->pos;
    for (size_t i = 0; mg_cfg_next(v, &i, &k, &e);) {
        const char *key = k->str;
        if (strcmp(key, "address") == 0)
            mg_cfg_str(x, key, e, &w->address);
        else if (strcmp(key, "ports") == 0) {
            mg_cfg_kvlist(x, key, e, &w->ports);
            for (size_t j = 0; j < w->ports.n; j++) {
                uint16_t port;
                if (mg_parse_port(w->ports.v[j].value, false, &port) < 0)
                    mg_error(x->d, w->ports.v[j].pos, "invalid port \"%s\" in %s",
                             w->ports.v[j].value, mg_cfg_field(x, key));
            }
        } else if (strcmp(key, "labels") == 0)
            mg_cfg_kvlist(x, key, e, &w->labels);
        else if (strcmp(key, "network") == 0)
            mg_cfg_str(x, key, e, &w->network);
        else if (strcmp(key, "locality") == 0)
            mg_cfg_str(x, key, e, &w->locality);
        else if (strcmp(key, "weight") == 0)
            mg_cfg_intv(x, key, e, 0, 1000000, &w->weight);
        else if (strcmp(key, "serviceAccount") == 0)
            mg_cfg_str(x, key, e, &w->service_account);
        else
            mg_cfg_unknown(x, k);
    }
}

void mg_cfg_read_service_entry(struct mg_cfg *x, const struct mg_ynode *spec,
                               struct mg_service_entry *se)
{
    static const char *const locs[] = { "MESH_EXTERNAL", "MESH_INTERNAL" };
    static const char *const res[] = { "NONE", "STATIC", "DNS", "DNS_ROUND_ROBIN", "DYNAMIC_DNS" };
    const struct mg_ynode *k, *v;
    int t;

    if (spec && !mg_ynode_is_null(spec) && !mg_cfg_map(x, "", spec))
        return;
    for (size_t i = 0; mg_cfg_next(spec, &i, &k, &v);) {
        const char *key = k->str;
        if (strcmp(key, "hosts") == 0)
            mg_cfg_slist(x, key, v, &se->hosts);
        else if (strcmp(key, "addresses") == 0) {
            mg_cfg_slist(x, key, v, &se->addresses);
            for (size_t j = 0; j < se->addresses.n; j++) {
                struct mg_cidr c;
                if (mg_cidr_parse(se->addresses.v[j], &c) < 0)
                    mg_error(x->d, se->addresses.pos[j], "invalid address \"%s\" in addresses",
                             se->addresses.v[j]);
            }
        } else if (strcmp(key, "ports") == 0) {
            if (!mg_cfg_seq(x, key, v))
                continue;
            for (size_t j = 0; j < v->n; j++) {
                size_t mark = mg_cfg_push(x, ".ports[%zu]", j);
                if (mg_cfg_map(x, "", v->items[j]))
                    read_se_port(x, v->items[j], MG_CFG_PUSH(se->ports, se->n_ports));
                mg_cfg_pop(x, mark);
            }
        } else if (strcmp(key, "location") == 0) {
            if (mg_cfg_enum(x, key, v, locs, NULL, 2, &t))
                se->location = (enum mg_se_location)t;
        } else if (strcmp(key, "resolution") == 0) {
            if (mg_cfg_enum(x, key, v, res, NULL, 5, &t))
                se->resolution = (enum mg_se_resolution)t;
        } else if (strcmp(key, "endpoints") == 0) {
            if (!mg_cfg_seq(x, key, v))
                continue;
            for (size_t j = 0; j < v->n; j++) {
                size_t mark = mg_cfg_push(x, ".endpoints[%zu]", j);
                if (mg_cfg_map(x, "", v->items[j]))
                    read_endpoint(x, v->items[j], MG_CFG_PUSH(se->endpoints, se->n_endpoints));
                mg_cfg_pop(x, mark);
            }
        } else if (strcmp(key, "workloadSelector") == 0)
            mg_cfg_selector(x, key, v, "labels", &se->workload_selector);
        else if (strcmp(key, "exportTo") == 0)
            mg_cfg_slist(x, key, v, &se->export_to);
        else if (strcmp(key, "subjectAltNames") == 0)
            mg_cfg_slist(x, key, v, &se->subject_alt_names);
        else
            mg_cfg_unknown(x, k);
    }
    struct mg_pos at = spec ? spec->pos : se->meta.pos;
    if (se->hosts.n == 0)
        mg_error(x->d, at, "ServiceEntry needs hosts");
    for (size_t i = 0; i < se->hosts.n; i++)
        if (strcmp(se->hosts.v[i], "*") == 0 || !mg_cfg_host_ok(se->hosts.v[i]))
            mg_error(x->d, se->hosts.pos[i], "invalid ServiceEntry host \"%s\"", se->hosts.v[i]);
    if (se->n_ports == 0)
        mg_error(x->d, at, "ServiceEntry needs ports");
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
