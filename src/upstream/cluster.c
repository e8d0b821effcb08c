/* cluster.c - compile a destination (host, port, subset) into a cluster:
 * ServiceEntry endpoints (STATIC addresses, or names resolved with evdns at
 * connect time) and the DestinationRule traffic policy that applies
 * (exact host, else the longest wildcard host; subset policy over the base
 * policy; port-level settings over both). */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include "route/types.h"
#include "base/base.h"
#include "upstream/upstream.h"
#include "upstream/internal.h"

static const struct mg_service_entry *find_se(const struct mg_config *c, const char *host)
{
    const struct mg_service_entry *wild = NULL;
    size_t wl = 0, hl = strlen(host);
    for (size_t i = 0; i < c->n_service_entries; i++) {
        const struct mg_service_entry *se = &c->service_entries[i];
        for (size_t h = 0; h < se->hosts.n; h++) {
            const char *p = se->hosts.v[h];
            if (p[0] == '*') {
                if (strlen(p) > wl && mg_host_match(p, host, hl)) {
                    wild = se;
                    wl = strlen(p);
                }
            } else if (mg_strcasecmp(p, host) == 0) {
                return se;
            }
        }
    }
    return wild;
}

static const struct mg_destination_rule *find_dr(const struct mg_config *c, const char *host)
{
    const struct mg_destination_rule *wild = NULL;
    size_t wl = 0, hl = strlen(host);
    for (size_t i = 0; i < c->n_destination_rules; i++) {
        const struct mg_destination_rule *dr = &c->destination_rules[i];
        if (!dr->host)
            continue;
        if (dr->host[0] == '*') {
            if (strlen(dr->host) > wl && mg_host_match(dr->host, host, hl)) {
                wild = dr;
                wl = strlen(dr->host);
            }
        } else if (mg_strcasecmp(dr->host, host) == 0) {
            return dr;
        }
    }
    return wild;
}

static const struct mg_traffic_policy *port_policy(const struct mg_dr_policy *p, uint16_t port)
{
    for (size_t i = 0; i < p->n_port_level; i++)
        if (p->port_level[i].port == port)
            return &p->port_level[i].policy;
    return p->base.present ? &p->base : NULL;
}

/* outlierDetection as Istio merges it field by field: the subset's
 * port-level settings, the subset's policy, the rule's port-level
 * settings, the rule's policy; the first that sets it wins. */
static const struct mg_outlier *find_outlier(const struct mg_destination_rule *dr,
                                             const struct mg_subset *sub, uint16_t port)
{
    const struct mg_dr_policy *ps[2] = { sub ? &sub->policy : NULL, dr ? &dr->policy : NULL };
    for (int k = 0; k < 2; k++) {
        if (!ps[k])
            continue;
        for (size_t i = 0; i < ps[k]->n_port_level; i++)
            if (ps[k]->port_level[i].port == port && ps[k]->port_level[i].policy.outlier.present)
                return &ps[k]->port_level[i].policy.outlier;
        if (ps[k]->base.outlier.present)
            return &ps[k]->base.outlier;
    }
    return NULL;
}

static bool labels_subset(const struct mg_kvlist *want, const struct mg_kvlist *have)
{
    for (size_t i = 0; i < want->n; i++) {
        const char *v = mg_kvlist_get(have, want->v[i].key);
        if (!v || strcmp(v, want->v[i].value) != 0)
            return false;
    }
    return true;
}

static void ep_set(struct mg_endpoint *ep, const char *addr, uint16_t port)
{
    ep->address = mg_xstrdup(addr);
    ep->port = port;
    ep->weight = 1;
    struct mg_addr a;
    if (mg_addr_parse_ip(&a, addr) == 0) {
        memset(&ep->sa, 0, sizeof(ep->sa));
        if (a.family == AF_INET) {
            struct sockaddr_in *s4 = (struct sockaddr_in *)&ep->sa;
            s4->sin_family = AF_INET;
            s4->sin_port = htons(port);
            memcpy(&s4->sin_addr, a.ip, 4);
            ep->salen = sizeof(*s4);
        } else {
            struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ep->sa;
            s6->sin6_family = AF_INET6;
            s6->sin6_port = htons(port);
            memcpy(&s6->sin6_addr, a.ip, 16);
            ep->salen = sizeof(*s6);
        }
        ep->resolved = true;
    }
    ep->label = a.family == AF_INET6 && ep->resolved ? mg_xasprintf("[%s]:%u", addr, port)
                                                     : mg_xasprintf("%s:%u", addr, port);
}

/* The workloads behind an entry: its endpoints, or with a workloadSelector
 * the WorkloadEntries of its namespace whose labels it selects (caller
 * frees the array, not the entries). */
static const struct mg_workload_entry **candidates(const struct mg_config *c,
                                                   const struct mg_service_entry *se, size_t *n)
{
    if (!se->workload_selector.present) {
        const struct mg_workload_entry **v = mg_xcalloc(se->n_endpoints + 1, sizeof(*v));
        for (size_t i = 0; i < se->n_endpoints; i++)
            v[i] = &se->endpoints[i];
        *n = se->n_endpoints;
        return v;
    }
    const struct mg_workload_entry **v = mg_xcalloc(c->n_workload_entries + 1, sizeof(*v));
    size_t k = 0;
    const char *ns = se->meta.namespace_ ? se->meta.namespace_ : "default";
    for (size_t i = 0; i < c->n_workload_entries; i++) {
        const struct mg_workload_entry_res *we = &c->workload_entries[i];
        if (strcmp(we->meta.namespace_ ? we->meta.namespace_ : "default", ns) == 0 &&
            labels_subset(&se->workload_selector.match_labels, &we->spec.labels))
            v[k++] = &we->spec;
    }
    *n = k;
    return v;
}

static bool tls_mode_istio(const struct mg_workload_entry *we)
{
    const char *v = we ? mg_kvlist_get(&we->labels, "security.istio.io/tlsMode") : NULL;
    return v && strcmp(v, "istio") == 0;
}

/* ISTIO_MUTUAL from the DestinationRule's tls `t` (NULL = none set), or
 * auto mTLS for the endpoints labelled tlsMode=istio when no mode is set
 * (an explicit DISABLE/SIMPLE/MUTUAL wins, as in Istio). Secure naming
 * accepts the entry's subjectAltNames, else the rule's, else the service
 * accounts of the cluster's endpoints, else any identity of the trust
 * domain and its aliases. -1 on an error that rejects the config. */
static int mesh_build(struct mg_cluster *cl, const struct mg_config *cfg,
                      const struct mg_service_entry *se, const struct mg_client_tls *t,
                      const struct mg_workload_entry *const *wes, const struct mg_destination *dst,
                      struct mg_diags *d)
{
    bool explicit = t && t->mode == MG_CTLS_ISTIO_MUTUAL;
    bool autom = false;
    if (!t && cfg->mesh.enable_auto_mtls)
        for (size_t i = 0; i < cl->n_eps && !autom; i++)
            autom = tls_mode_istio(wes[i]);
    if (!explicit && !autom)
        return 0;
    const struct mg_proxy *px = &cfg->proxy;
    if (!px->identity_cert_chain || !px->identity_private_key || !px->identity_root_certs) {
        if (explicit) {
            mg_warning(d, t->pos, "DestinationRule for '%s': ISTIO_MUTUAL needs Proxy.spec.identity; "
                       "requests to it get 503", dst->host);
            return -2;
        }
        mg_warning(d, dst->pos, "'%s' has endpoints labelled security.istio.io/tlsMode=istio, but "
                   "without Proxy.spec.identity auto mTLS cannot reach them: plain text is sent",
                   dst->host);
        return 0;
    }
    char err[256];
    cl->tls = mg_tls_mesh_client_ctx_new(cfg, err, sizeof(err));
    if (!cl->tls) {
        mg_error(d, explicit ? t->pos : px->pos, "ISTIO_MUTUAL to '%s': %s", dst->host, err);
        return -1;
    }
    cl->auto_mtls = autom;
    for (size_t i = 0; autom && i < cl->n_eps; i++)
        cl->eps[i].plain = !tls_mode_istio(wes[i]);
    cl->sni = explicit && t->sni ? mg_xstrdup(t->sni)
              : mg_xasprintf("outbound_.%u_.%s_.%s", cl->port, cl->subset ? cl->subset : "", cl->host);
    const struct mg_slist *sans = se->subject_alt_names.n ? &se->subject_alt_names
                                  : explicit && t->subject_alt_names.n ? &t->subject_alt_names : NULL;
    if (sans) {
        mg_mesh_cluster_setup(cl, cfg, sans->v, sans->n);
        cl->mesh_ids_from = sans == &se->subject_alt_names ? "the ServiceEntry's subjectAltNames"
                                                           : "the DestinationRule's tls.subjectAltNames";
        return 0;
    }
    /* the service accounts of the endpoints this cluster reaches over mTLS */
    char **ids = mg_xcalloc(cl->n_eps + 1, sizeof(char *));
    size_t n = 0;
    const char *td = cfg->mesh.trust_domain ? cfg->mesh.trust_domain : "cluster.local";
    for (size_t i = 0; i < cl->n_eps; i++) {
        if (!wes[i] || !wes[i]->service_account || cl->eps[i].plain)
            continue;
        char *id = mg_xasprintf("spiffe://%s/ns/%s/sa/%s", td,
                                se->meta.namespace_ ? se->meta.namespace_ : "default",
                                wes[i]->service_account);
        bool dup = false;
        for (size_t k = 0; k < n && !dup; k++)
            dup = strcmp(ids[k], id) == 0;
        if (dup)
            free(id);
        else
            ids[n++] = id;
    }
    mg_mesh_cluster_setup(cl, cfg, ids, n);
    cl->mesh_ids_from = n ? "the endpoints' serviceAccount"
                          : "no subjectAltNames or serviceAccount: any identity of the trust domain";
    for (size_t k = 0; k < n; k++)
        free(ids[k]);
    free(ids);
    return 0;
}

struct mg_cluster *mg_cluster_build(const struct mg_config *cfg, const struct mg_destination *dst,
                                    int n_workers, struct mg_diags *d)
{
    const struct mg_service_entry *se = find_se(cfg, dst->host);
    if (!se) {
        mg_warning(d, dst->pos, "destination host '%s' is not defined by any ServiceEntry; "
                   "requests routed to it get %s", dst->host,
                   cfg->mesh.outbound_mode == MG_OUTBOUND_REGISTRY_ONLY ? "502 (REGISTRY_ONLY)" : "503");
        return NULL;
    }
    const struct mg_se_port *sp = NULL;
    for (size_t i = 0; i < se->n_ports; i++)
        if (se->ports[i].number == dst->port || (!dst->port && se->n_ports == 1))
            sp = &se->ports[i];
    uint16_t svc_port = sp ? sp->number : dst->port;
    if (!svc_port) {
        mg_error(d, dst->pos, "destination '%s' needs a port (its ServiceEntry has %zu ports)",
                 dst->host, se->n_ports);
        return NULL;
    }
    const struct mg_destination_rule *dr = find_dr(cfg, dst->host);
    const struct mg_subset *sub = NULL;
    if (dst->subset) {
        for (size_t i = 0; dr && i < dr->n_subsets; i++)
            if (strcmp(dr->subsets[i].name, dst->subset) == 0)
                sub = &dr->subsets[i];
        if (!sub) {
            mg_error(d, dst->pos, "subset '%s' of '%s' is not defined by a DestinationRule",
                     dst->subset, dst->host);
            return NULL;
        }
    }
    struct mg_cluster *cl = mg_xcalloc(1, sizeof(*cl));
    cl->host = mg_xstrdup(dst->host);
    cl->subset = dst->subset ? mg_xstrdup(dst->subset) : NULL;
    cl->port = svc_port;
    cl->external_dns = se->location == MG_MESH_EXTERNAL &&
                       (se->resolution == MG_RES_DNS || se->resolution == MG_RES_DNS_ROUND_ROBIN);
    cl->name = mg_xasprintf("outbound|%u|%s|%s", svc_port, dst->subset ? dst->subset : "", dst->host);
    size_t n_cands = 0;
    const struct mg_workload_entry **cands = candidates(cfg, se, &n_cands);
    cl->eps = mg_xcalloc(n_cands ? n_cands : 1, sizeof(*cl->eps));
    uint16_t target = sp && sp->target_port ? sp->target_port : svc_port;
    /* DNS without endpoints: the destination's own name is resolved (each
     * host of the entry is its own cluster, as Istio makes them), never
     * the entry's first host for all of them */
    if (n_cands == 0 && !se->workload_selector.present &&
        (se->resolution == MG_RES_DNS || se->resolution == MG_RES_DNS_ROUND_ROBIN)
        && dst->host[0] != '*') {
        ep_set(&cl->eps[cl->n_eps++], dst->host, target);
    }
    /* the entry's endpoint behind each of cl->eps (NULL: the resolved host) */
    const struct mg_workload_entry **wes = mg_xcalloc(n_cands + 1, sizeof(*wes));
    for (size_t i = 0; i < n_cands; i++) {
        const struct mg_workload_entry *we = cands[i];
        if (sub && !labels_subset(&sub->labels, &we->labels))
            continue;
        if (mg_has_prefix(we->address, "unix://"))
            continue;
        uint16_t port = target;
        const char *pv = sp && sp->name ? mg_kvlist_get(&we->ports, sp->name) : NULL;
        if (pv)
            mg_parse_port(pv, false, &port);
        wes[cl->n_eps] = we;
        ep_set(&cl->eps[cl->n_eps], we->address, port);
        /* Istio's weight: the endpoint's share of the load balancer's
         * choices against its siblings (0 = unset = 1) */
        cl->eps[cl->n_eps++].weight = we->weight > 0 ? (uint32_t)we->weight : 1;
    }
    for (size_t i = 1; i < cl->n_eps; i++)
        if (cl->eps[i].weight != cl->eps[0].weight)
            cl->weighted = true;
    free(cands);
    const struct mg_traffic_policy *tp = NULL;
    if (sub)
        tp = port_policy(&sub->policy, svc_port);
    if (!tp && dr)
        tp = port_policy(&dr->policy, svc_port);
    cl->lb = MG_LB_LEAST_REQUEST;
    if (sp && (sp->protocol == MG_PROTO_HTTP2 || sp->protocol == MG_PROTO_GRPC))
        cl->h2 = MG_UP_H2_REQUIRED;
    cl->connect_timeout_ms = 10000;
    cl->idle_timeout_ms = 3600000;
    if (tp) {
        if (tp->lb != MG_LB_UNSPECIFIED)
            cl->lb = tp->lb;
        if (tp->pool.present) {
            cl->max_connections = tp->pool.max_connections;
            cl->max_pending = tp->pool.http1_max_pending_requests;
            cl->max_requests_per_conn = tp->pool.max_requests_per_connection;
            if (tp->pool.connect_timeout_ms > 0)
                cl->connect_timeout_ms = tp->pool.connect_timeout_ms;
            if (tp->pool.http_idle_timeout_ms >= 0)
                cl->idle_timeout_ms = tp->pool.http_idle_timeout_ms;
            cl->max_requests = tp->pool.http2_max_requests;
            cl->max_streams_per_conn = tp->pool.max_concurrent_streams;
            cl->use_client_protocol = tp->pool.use_client_protocol;
            if (tp->pool.h2_upgrade_policy == MG_H2UP_UPGRADE && cl->h2 == MG_UP_H1)
                cl->h2 = MG_UP_H2_PREFER;
        }
        const struct mg_client_tls *t = &tp->tls;
        if (t->present && t->mode != MG_CTLS_DISABLE && t->mode != MG_CTLS_ISTIO_MUTUAL) {
            char err[256];
            cl->tls = mg_tls_client_ctx_new(cfg, t, err, sizeof(err));
            if (!cl->tls) {
                mg_error(d, t->pos, "DestinationRule for '%s': %s", dst->host, err);
                free(wes);
                mg_cluster_free(cl);
                return NULL;
            }
            cl->sni = mg_xstrdup(t->sni ? t->sni : dst->host);
            cl->insecure = t->insecure_skip_verify;
            const struct mg_slist *sans = t->subject_alt_names.n ? &t->subject_alt_names
                                                                 : &se->subject_alt_names;
            cl->n_sans = sans->n;
            cl->sans = sans->n ? mg_xcalloc(sans->n, sizeof(char *)) : NULL;
            for (size_t i = 0; i < sans->n; i++)
                cl->sans[i] = mg_xstrdup(sans->v[i]);
        }
    }
    /* a subset's proxyProtocol replaces the rule's (Istio merges a
     * subset's trafficPolicy field by field); no port-level setting */
    const struct mg_up_proxy_protocol *upp =
        sub && sub->policy.proxy_protocol.present ? &sub->policy.proxy_protocol
        : dr && dr->policy.proxy_protocol.present ? &dr->policy.proxy_protocol : NULL;
    if (upp)
        cl->proxy_protocol = upp->version == MG_UP_PP_V2 ? 2 : 1;
    const struct mg_client_tls *t = tp && tp->tls.present ? &tp->tls : NULL;
    if (mesh_build(cl, cfg, se, t, wes, dst, d) < 0) {
        free(wes);
        mg_cluster_free(cl);
        return NULL;
    }
    const struct mg_outlier *odc = find_outlier(dr, sub, svc_port);
    mg_cluster_locality(cl, cfg, dr, sub, svc_port, odc != NULL, wes);
    free(wes);
    cl->od = mg_od_new(odc, cl->n_eps, mg_now_ms());
    cl->n_workers = n_workers;
    cl->rt = mg_xcalloc((size_t)n_workers, sizeof(*cl->rt));
    for (int i = 0; i < n_workers; i++) {
        cl->rt[i].active = mg_xcalloc(cl->n_eps ? cl->n_eps : 1, sizeof(uint32_t));
        /* smooth weighted round robin state: for different weights, and
         * for picks among a priority's or a locality's endpoints, where a
         * shared round-robin counter would starve some of them */
        if (cl->weighted || cl->n_prio > 1 || cl->n_locs > 1)
            cl->rt[i].cw = mg_xcalloc(cl->n_eps, sizeof(int64_t));
        if (cl->n_locs > 1) {
            cl->rt[i].loc_count = mg_xcalloc(3 * cl->n_locs + 1, sizeof(uint32_t));
            cl->rt[i].loc_cw = mg_xcalloc(cl->n_locs + 1, sizeof(int64_t));
        }
    }
    cl->stat_name = mg_intern(cl->name);
    return cl;
}

struct mg_cluster *mg_cluster_build_dynamic(int n_workers)
{
    struct mg_cluster *cl = mg_xcalloc(1, sizeof(*cl));
    cl->host = mg_xstrdup("*");
    cl->name = mg_xstrdup("forward|dynamic");
    cl->eps = mg_xcalloc(1, sizeof(*cl->eps));
    cl->eps[0].address = mg_xstrdup("-");
    cl->eps[0].label = mg_xstrdup("-");
    cl->n_eps = 1;
    cl->dynamic = true;
    cl->lb = MG_LB_ROUND_ROBIN;
    cl->connect_timeout_ms = 10000;
    cl->idle_timeout_ms = 3600000;
    cl->n_workers = n_workers;
    cl->rt = mg_xcalloc((size_t)n_workers, sizeof(*cl->rt));
    for (int i = 0; i < n_workers; i++)
        cl->rt[i].active = mg_xcalloc(1, sizeof(uint32_t));
    cl->stat_name = mg_intern(cl->name);
    return cl;
}

void mg_cluster_free(struct mg_cluster *cl)
{
    if (!cl)
        return;
    for (size_t i = 0; i < cl->n_eps; i++) {
        free(cl->eps[i].address);
        free(cl->eps[i].label);
        free(cl->eps[i].locality);
    }
    free(cl->eps);
    free(cl->loc_weight);
    free(cl->locality_mode);
    for (int i = 0; cl->rt && i < cl->n_workers; i++) {
        free(cl->rt[i].active);
        free(cl->rt[i].cw);
        free(cl->rt[i].loc_count);
        free(cl->rt[i].loc_cw);
        free(cl->rt[i].pending);
    }
    free(cl->rt);
    mg_od_free(cl->od);
    if (cl->tls)
        SSL_CTX_free(cl->tls);
    mg_mesh_cluster_free(cl);
    for (size_t i = 0; i < cl->n_sans; i++)
        free(cl->sans[i]);
    free(cl->sans);
    free(cl->sni);
    free(cl->name);
    free(cl->host);
    free(cl->subset);
    free(cl);
}
