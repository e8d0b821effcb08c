/* locality.c - Istio's locality-aware load balancing, compiled into a
 * cluster: which localityLbSetting applies (the DestinationRule's, else the
 * MeshConfig's, as long as it is enabled), and from it each endpoint's
 * priority (failover, failoverPriority) or its locality's weight
 * (distribute), computed against the proxy's own locality, network and
 * labels the way istiod writes them into Envoy's ClusterLoadAssignment.
 * The choice among them per request is balance.c's. */
#include <stdlib.h>
#include <string.h>
#include "base/base.h"
#include "upstream/upstream.h"
#include "upstream/internal.h"

#define LABEL_REGION "topology.kubernetes.io/region"
#define LABEL_ZONE "topology.kubernetes.io/zone"
#define LABEL_SUBZONE "topology.istio.io/subzone"
#define LABEL_NETWORK "topology.istio.io/network"

struct loc3 {                           /* a locality split at '/' (absent parts empty) */
    const char *p[3];
    size_t n[3];
};

static struct loc3 split(const char *l)
{
    struct loc3 s = { { "", "", "" }, { 0, 0, 0 } };
    for (int i = 0; l && *l && i < 3; i++) {
        size_t len = i < 2 ? strcspn(l, "/") : strlen(l);
        s.p[i] = l;
        s.n[i] = len;
        l += len;
        if (*l == '/')
            l++;
    }
    return s;
}

static bool part_eq(const struct loc3 *a, const struct loc3 *b, int i)
{
    return a->n[i] == b->n[i] && memcmp(a->p[i], b->p[i], a->n[i]) == 0;
}

/* Istio's LocalityMatch: the rule's region is '*' or equal, its zone and
 * subzone '*', absent or equal. */
static bool loc_match(const struct loc3 *l, const char *rule)
{
    struct loc3 r = split(rule);
    for (int i = 0; i < 3; i++) {
        bool star = r.n[i] == 1 && r.p[i][0] == '*';
        if (!star && (i == 0 || r.n[i]) && !part_eq(l, &r, i))
            return false;
    }
    return true;
}

/* Istio's LbPriority: 0 same region/zone/subzone, 1 same region/zone, 2
 * same region, 3 another region (empty parts compare equal). */
static int lb_priority(const struct loc3 *px, const struct loc3 *ep)
{
    if (!part_eq(px, ep, 0))
        return 3;
    if (!part_eq(px, ep, 1))
        return 2;
    return part_eq(px, ep, 2) ? 0 : 1;
}

/* A workload's label as Istio augments it: the topology labels come from
 * its locality and network when those are set, others from its labels.
 * buf receives a locality part. NULL = no such label. */
static const char *label_of(const struct mg_kvlist *labels, const char *locality,
                            const char *network, const char *key, char *buf, size_t cap)
{
    static const char *const topo[3] = { LABEL_REGION, LABEL_ZONE, LABEL_SUBZONE };
    struct loc3 l = split(locality);
    for (int i = 0; i < 3; i++)
        if (strcmp(key, topo[i]) == 0 && l.n[i]) {
            snprintf(buf, cap, "%.*s", (int)l.n[i], l.p[i]);
            return buf;
        }
    if (strcmp(key, LABEL_NETWORK) == 0 && network && *network)
        return network;
    return labels ? mg_kvlist_get(labels, key) : NULL;
}

/* Renumber the priorities in raw[n] (any values) to 0..k-1 in order,
 * as istiod does (Envoy wants no gaps); returns k, at most
 * MG_LB_MAX_PRIO (lower ones share the last). */
static unsigned renumber(unsigned *raw, size_t n)
{
    unsigned k = 0;
    unsigned *out = mg_xcalloc(n + 1, sizeof(*out));
    for (;;) {
        unsigned lo = UINT32_MAX;
        for (size_t i = 0; i < n; i++)
            if (raw[i] != UINT32_MAX && raw[i] < lo)
                lo = raw[i];
        if (lo == UINT32_MAX)
            break;
        for (size_t i = 0; i < n; i++)
            if (raw[i] == lo) {
                out[i] = k < MG_LB_MAX_PRIO ? k : MG_LB_MAX_PRIO - 1;
                raw[i] = UINT32_MAX;
            }
        k++;
    }
    memcpy(raw, out, n * sizeof(*raw));
    free(out);
    return k < MG_LB_MAX_PRIO ? k : MG_LB_MAX_PRIO;
}

/* Group the endpoints by locality (eps[].loc, n_locs), as istiod groups
 * them into Envoy's LocalityLbEndpoints. */
static void group_localities(struct mg_cluster *cl)
{
    cl->n_locs = 0;
    if (cl->n_eps > UINT16_MAX)
        return;
    for (size_t i = 0; i < cl->n_eps; i++) {
        const char *li = cl->eps[i].locality ? cl->eps[i].locality : "";
        size_t g = cl->n_locs;
        for (size_t j = 0; j < i; j++)
            if (strcmp(cl->eps[j].locality ? cl->eps[j].locality : "", li) == 0) {
                g = cl->eps[j].loc;
                break;
            }
        if (g == cl->n_locs)
            cl->n_locs++;
        cl->eps[i].loc = (uint16_t)g;
    }
}

/* distribute: the first rule whose `from` matches the proxy's locality
 * gives each `to` pattern its weight, split between the localities it
 * matches by their own weight (the sum of their endpoints' weights),
 * rounded up; localities no `to` matches get no traffic. false when no
 * rule is for this proxy. */
static bool distribute(struct mg_cluster *cl, const struct mg_locality_lb *l, const struct loc3 *px)
{
    const struct mg_locality_distribute *d = NULL;
    for (size_t i = 0; i < l->n_distribute && !d; i++)
        if (loc_match(px, l->distribute[i].from))
            d = &l->distribute[i];
    if (!d || !cl->n_locs)
        return false;
    cl->loc_weight = mg_xcalloc(cl->n_locs + 1, sizeof(uint32_t));
    uint64_t *own = mg_xcalloc(cl->n_locs + 1, sizeof(uint64_t));
    size_t *rep = mg_xcalloc(cl->n_locs + 1, sizeof(size_t));   /* an endpoint of each group */
    bool *matched = mg_xcalloc(cl->n_locs + 1, sizeof(bool));
    for (size_t i = 0; i < cl->n_eps; i++) {
        own[cl->eps[i].loc] += cl->eps[i].weight;
        rep[cl->eps[i].loc] = i;
    }
    for (size_t t = 0; t < d->to.n; t++) {
        unsigned long w = strtoul(d->to.v[t].value, NULL, 10);
        uint64_t total = 0;
        bool *mine = mg_xcalloc(cl->n_locs + 1, sizeof(bool));
        for (size_t g = 0; g < cl->n_locs; g++) {
            struct loc3 el = split(cl->eps[rep[g]].locality);
            if (!matched[g] && loc_match(&el, d->to.v[t].key)) {
                mine[g] = matched[g] = true;
                total += own[g];
            }
        }
        for (size_t g = 0; g < cl->n_locs && total; g++)
            if (mine[g])
                cl->loc_weight[g] = (uint32_t)((own[g] * w + total - 1) / total);   /* rounded up */
        free(mine);
    }
    for (size_t i = 0; i < cl->n_eps; i++)
        cl->eps[i].excluded = !matched[cl->eps[i].loc] || !cl->loc_weight[cl->eps[i].loc];
    free(own);
    free(rep);
    free(matched);
    return true;
}

/* failoverPriority: an endpoint's priority is 0 when it has the proxy's
 * value of every label listed, else (listed labels) - (index of the first
 * label that differs): the first label weighs most. "label=value" compares
 * the endpoint with that value instead of the proxy's. */
static void failover_priority(const struct mg_cluster *cl, const struct mg_config *cfg,
                              const struct mg_locality_lb *l,
                              const struct mg_workload_entry *const *wes, unsigned *raw)
{
    const struct mg_proxy *px = &cfg->proxy;
    size_t n = l->failover_priority.n;
    /* a proxy with no labels at all: istiod leaves the priorities alone */
    if (!px->meta.labels.n && !(px->locality && *px->locality) && !(px->network && *px->network))
        return;
    for (size_t i = 0; i < cl->n_eps; i++) {
        raw[i] = 0;
        for (size_t j = 0; j < n; j++) {
            const char *item = l->failover_priority.v[j];
            const char *eq = strchr(item, '=');
            char key[256], b1[128], b2[128];
            snprintf(key, sizeof(key), "%.*s", (int)(eq ? (size_t)(eq - item) : strlen(item)), item);
            const char *want = eq ? eq + 1
                               : label_of(&px->meta.labels, px->locality, px->network, key, b1,
                                          sizeof(b1));
            const char *have = wes[i] ? label_of(&wes[i]->labels, wes[i]->locality, wes[i]->network,
                                                 key, b2, sizeof(b2))
                                      : NULL;
            if (!want || !have || strcmp(want, have) != 0) {
                raw[i] = (unsigned)(n - j);
                break;
            }
        }
    }
}

/* The localityLbSetting that applies: the rule's (first set of the
 * subset's port-level, the subset's, the rule's port-level, the rule's),
 * else the MeshConfig's; NULL when disabled (`enabled: false` in the rule,
 * or in the mesh with no rule setting). */
static const struct mg_locality_lb *find_setting(const struct mg_config *cfg,
                                                 const struct mg_destination_rule *dr,
                                                 const struct mg_subset *sub, uint16_t port,
                                                 const char **from)
{
    const struct mg_dr_policy *ps[2] = { sub ? &sub->policy : NULL, dr ? &dr->policy : NULL };
    const struct mg_locality_lb *l = NULL;
    for (int k = 0; k < 2 && !l; k++) {
        if (!ps[k])
            continue;
        for (size_t i = 0; i < ps[k]->n_port_level && !l; i++)
            if (ps[k]->port_level[i].port == port && ps[k]->port_level[i].policy.locality_lb.present)
                l = &ps[k]->port_level[i].policy.locality_lb;
        if (!l && ps[k]->base.locality_lb.present)
            l = &ps[k]->base.locality_lb;
    }
    *from = "DestinationRule";
    if (!l) {
        l = &cfg->mesh.locality_lb;
        *from = l->present ? "MeshConfig" : "MeshConfig default";
    }
    return l->has_enabled && !l->enabled ? NULL : l;
}

void mg_cluster_locality(struct mg_cluster *cl, const struct mg_config *cfg,
                         const struct mg_destination_rule *dr, const struct mg_subset *sub,
                         uint16_t port, bool outlier, const struct mg_workload_entry *const *wes)
{
    for (size_t i = 0; i < cl->n_eps; i++)
        if (wes[i] && wes[i]->locality && *wes[i]->locality)
            cl->eps[i].locality = mg_xstrdup(wes[i]->locality);
    const char *from;
    const struct mg_locality_lb *l = find_setting(cfg, dr, sub, port, &from);
    struct loc3 px = split(cfg->proxy.locality);
    const char *me = cfg->proxy.locality ? cfg->proxy.locality : "(none)";
    if (!l) {
        cl->locality_mode = mg_xasprintf("off (%s localityLbSetting enabled: false): every endpoint "
                                         "is a candidate", from);
        return;
    }
    if (cl->dynamic || cl->n_eps == 0)
        return;
    /* istiod turns on Envoy's locality-weighted balancing whenever a
     * setting applies: a locality is chosen first (by its endpoints' total
     * weight, or distribute's), then an endpoint in it */
    group_localities(cl);
    /* one of distribute and failover applies, as istiod writes it */
    if (l->n_distribute) {
        if (distribute(cl, l, &px))
            cl->locality_mode = mg_xasprintf("distribute (%s localityLbSetting), from this proxy's "
                                             "locality %s", from, me);
        else
            cl->locality_mode = mg_xasprintf("distribute (%s localityLbSetting) has no rule `from` "
                                             "this proxy's locality %s: no priorities, localities "
                                             "by their endpoints' weight", from, me);
        return;
    }
    if (!outlier) {
        cl->locality_mode = mg_xasprintf("no locality failover: the destination has no "
                                         "outlierDetection (Istio applies locality priorities only "
                                         "with it); no priorities, localities by their "
                                         "endpoints' weight");
        return;
    }
    unsigned *raw = mg_xcalloc(cl->n_eps + 1, sizeof(*raw));
    bool by_labels = l->failover_priority.n > 0;
    if (by_labels) {
        failover_priority(cl, cfg, l, wes, raw);
        renumber(raw, cl->n_eps);
    }
    /* the locality order (and failover regions), under failoverPriority's
     * levels only when failover is also written, as istiod does */
    if (!by_labels || l->n_failover) {
        for (size_t i = 0; i < cl->n_eps; i++) {
            struct loc3 el = split(cl->eps[i].locality);
            int p = lb_priority(&px, &el);
            for (size_t f = 0; p == 3 && f < l->n_failover; f++) {
                if (strlen(l->failover[f].from) == px.n[0] &&
                    memcmp(l->failover[f].from, px.p[0], px.n[0]) == 0) {
                    if (strlen(l->failover[f].to) != el.n[0] ||
                        memcmp(l->failover[f].to, el.p[0], el.n[0]) != 0)
                        p = 4;
                    break;
                }
            }
            raw[i] = raw[i] * 5 + (unsigned)p;
        }
    }
    unsigned k = renumber(raw, cl->n_eps);
    for (size_t i = 0; i < cl->n_eps; i++)
        cl->eps[i].prio = (uint8_t)raw[i];
    free(raw);
    cl->n_prio = (uint8_t)k;
    cl->locality_mode = mg_xasprintf("failover%s (%s localityLbSetting, outlierDetection set), "
                                     "from this proxy's locality %s%s%s", by_labels
                                     ? " by failoverPriority" : "", from, me,
                                     cfg->proxy.network ? ", network " : "",
                                     cfg->proxy.network ? cfg->proxy.network : "");
}
