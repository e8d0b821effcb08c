/* test_locality.c - locality-aware balancing (upstream/locality.c and
 * balance.c): the priorities istiod would give each endpoint for a proxy's
 * locality (failover regions, failoverPriority labels), no priorities
 * without outlier detection or with `enabled: false`, the locality weights
 * of `distribute`, Envoy's priority load with the overprovisioning factor
 * 1.4, and the picks that follow from them when endpoints are ejected. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tap.h"
#include "config/config.h"
#include "net/types.h"
#include "upstream/upstream.h"

#define PROXY(loc, extra) \
    "apiVersion: meshgate.io/v1alpha1\nkind: Proxy\n" \
    "metadata: {name: gw, namespace: istio-system, labels: {istio: ingressgateway}}\n" \
    "spec:\n  bindAddress: 127.0.0.1\n  locality: " loc "\n" extra

#define SE \
    "---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\n" \
    "metadata: {name: svc, namespace: istio-system}\n" \
    "spec:\n  hosts: [svc.local]\n  location: MESH_INTERNAL\n" \
    "  ports: [{number: 80, name: http, protocol: HTTP}]\n  resolution: STATIC\n" \
    "  endpoints:\n" \
    "  - {address: 10.0.0.1, locality: us-east/z1/s1}\n" \
    "  - {address: 10.0.0.2, locality: us-east/z1/s2}\n" \
    "  - {address: 10.0.0.3, locality: us-east/z2}\n" \
    "  - {address: 10.0.0.4, locality: eu-west/z1, network: net2}\n" \
    "  - {address: 10.0.0.5, locality: ap-south/z1, network: net1}\n"

#define DR(policy) \
    "---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\n" \
    "metadata: {name: svc, namespace: istio-system}\n" \
    "spec:\n  host: svc.local\n  trafficPolicy:\n" policy

#define OD "    outlierDetection: {consecutive5xxErrors: 1, maxEjectionPercent: 100}\n"

static struct mg_cluster *build(const char *yaml)
{
    struct mg_diags d = { 0 };
    struct mg_config *c = mg_config_load_buffer("loc.yaml", yaml, strlen(yaml), &d);
    struct mg_cluster *cl = NULL;
    if (c && !d.errors) {
        struct mg_destination dst = { .host = "svc.local", .port = 80 };
        cl = mg_cluster_build(c, &dst, 1, &d);
    }
    if (d.errors)
        mg_diags_print(&d, stderr);
    mg_diags_free(&d);
    mg_config_free(c);
    return cl;
}

static void prios(const struct mg_cluster *cl, char *out, size_t cap)
{
    size_t o = 0;
    out[0] = '\0';
    for (size_t i = 0; cl && i < cl->n_eps && o + 4 < cap; i++)
        o += (size_t)snprintf(out + o, cap - o, "%s%u", i ? " " : "", cl->eps[i].prio);
}

static void eject(struct mg_cluster *cl, size_t i, bool on)
{
    atomic_store(&cl->od->ep[i].ejected_at, on ? 1 : 0);
    if (on)
        atomic_fetch_add(&cl->od->n_ejected, 1);
    else
        atomic_fetch_sub(&cl->od->n_ejected, 1);
}

/* picks[i] of n picks */
static void run(struct mg_cluster *cl, struct mg_worker *w, int n, int *picks)
{
    memset(picks, 0, sizeof(int) * cl->n_eps);
    for (int k = 0; k < n; k++) {
        size_t e = mg_cluster_pick(cl, &cl->rt[0], w, 0);
        if (e < cl->n_eps)
            picks[e]++;
    }
}

static void failover_regions(struct mg_worker *w)
{
    char p[64];
    struct mg_cluster *cl = build(PROXY("us-east/z1/s1", "") SE DR(OD
        "    loadBalancer:\n      simple: ROUND_ROBIN\n"
        "      localityLbSetting: {failover: [{from: us-east, to: ap-south}]}\n"));
    ok(cl != NULL, "a cluster with failover builds");
    if (!cl)
        return;
    prios(cl, p, sizeof(p));
    is_str(p, "0 1 2 4 3", "same subzone 0, same zone 1, same region 2, the failover region 3, "
           "the rest 4");
    is_int(cl->n_prio, 5, "five priorities");
    int picks[5];
    run(cl, w, 100, picks);
    is_int(picks[0], 100, "all in service: every pick goes to the proxy's own subzone");
    eject(cl, 0, true);
    run(cl, w, 100, picks);
    is_int(picks[1], 100, "the local endpoint ejected: the same zone takes everything");
    eject(cl, 1, true);
    eject(cl, 2, true);
    run(cl, w, 100, picks);
    is_int(picks[4], 100, "the whole region ejected: the failover region (ap-south), not eu-west");
    eject(cl, 4, true);
    run(cl, w, 100, picks);
    is_int(picks[3], 100, "the failover region ejected too: the rest");
    eject(cl, 3, true);
    is_int((long long)mg_cluster_pick(cl, &cl->rt[0], w, 0), (long long)SIZE_MAX,
           "everything ejected: no healthy upstream");
    mg_cluster_free(cl);

    cl = build(PROXY("us-east/z1/s1", "") SE DR(OD "    loadBalancer: {simple: ROUND_ROBIN}\n"));
    prios(cl, p, sizeof(p));
    is_str(p, "0 1 2 3 3", "no failover rule: the other regions share the last priority");
    eject(cl, 0, true);
    eject(cl, 1, true);
    eject(cl, 2, true);
    run(cl, w, 100, picks);
    is_int(picks[3] + picks[4], 100, "the mesh default (enabled) fails over to other regions");
    ok(picks[3] > 30 && picks[4] > 30, "and balances between them (%d/%d)", picks[3], picks[4]);
    mg_cluster_free(cl);
}

static void off_cases(struct mg_worker *w)
{
    char p[64];
    int picks[5];
    struct mg_cluster *cl = build(PROXY("us-east/z1/s1", "") SE DR(
        "    loadBalancer:\n      simple: ROUND_ROBIN\n"
        "      localityLbSetting: {failover: [{from: us-east, to: ap-south}]}\n"));
    ok(cl && cl->n_prio <= 1, "no outlierDetection: no priorities, as in Istio");
    if (cl) {
        run(cl, w, 100, picks);
        is_int(picks[0], 20, "round robin over all five endpoints (20 each)");
        is_int(picks[4], 20, "the far one too");
        ok(strstr(cl->locality_mode, "no outlierDetection") != NULL, "the explanation says why");
    }
    mg_cluster_free(cl);
    cl = build(PROXY("us-east/z1/s1", "") SE DR(OD
        "    loadBalancer: {localityLbSetting: {enabled: false}}\n"));
    ok(cl && cl->n_prio <= 1, "DestinationRule enabled: false turns it off");
    mg_cluster_free(cl);
    cl = build(PROXY("us-east/z1/s1", "---\napiVersion: meshgate.io/v1alpha1\nkind: MeshConfig\n"
                     "spec: {localityLbSetting: {enabled: false}}\n") SE DR(OD));
    ok(cl && cl->n_prio <= 1, "MeshConfig enabled: false turns it off");
    mg_cluster_free(cl);
    cl = build(PROXY("us-east/z1/s1", "---\napiVersion: meshgate.io/v1alpha1\nkind: MeshConfig\n"
                     "spec: {localityLbSetting: {enabled: false}}\n") SE DR(OD
        "    loadBalancer: {localityLbSetting: {failover: [{from: us-east, to: eu-west}]}}\n"));
    prios(cl, p, sizeof(p));
    is_str(p, "0 1 2 3 4", "a DestinationRule setting wins over the mesh's enabled: false");
    mg_cluster_free(cl);
    cl = build(PROXY("us-east/z1/s1", "---\napiVersion: meshgate.io/v1alpha1\nkind: MeshConfig\n"
                     "spec: {localityLbSetting: {failover: [{from: us-east, to: eu-west}]}}\n")
               SE DR(OD));
    prios(cl, p, sizeof(p));
    is_str(p, "0 1 2 3 4", "the MeshConfig's failover applies to a rule that sets none");
    mg_cluster_free(cl);
}

static void by_labels(void)
{
    char p[64];
    struct mg_cluster *cl = build(PROXY("us-east/z1/s1", "  network: net1\n") SE DR(OD
        "    loadBalancer: {localityLbSetting: {failoverPriority: [topology.istio.io/network, "
        "topology.kubernetes.io/region]}}\n"));
    prios(cl, p, sizeof(p));
    /* net1 + us-east: none; net1 only: .5 (0 after renumbering: 1); the
     * others differ in the network (2) */
    is_str(p, "1 1 1 1 0", "failoverPriority: the endpoint on the proxy's network first, the "
           "others after, whatever their region");
    mg_cluster_free(cl);
    cl = build(PROXY("us-east/z1/s1", "  network: net1\n") SE DR(OD
        "    loadBalancer: {localityLbSetting: {failoverPriority: [topology.kubernetes.io/region, "
        "\"topology.istio.io/network=net2\"]}}\n"));
    prios(cl, p, sizeof(p));
    is_str(p, "0 0 0 1 1", "region first, then a network by value (net2): the us-east ones "
           "(none on net2) share the first, the other regions the last, net2 or not");
    mg_cluster_free(cl);
    cl = build(PROXY("us-east/z1/s1", "  network: net1\n") SE DR(OD
        "    loadBalancer: {localityLbSetting: {failoverPriority: [topology.istio.io/network], "
        "failover: [{from: us-east, to: eu-west}]}}\n"));
    prios(cl, p, sizeof(p));
    is_str(p, "1 2 3 4 0", "failoverPriority with failover: the label levels first, the locality "
           "order inside each");
    mg_cluster_free(cl);
}

static void priority_load(void)
{
    struct mg_cluster *cl = build(PROXY("us-east/z1", "") SE DR(OD
        "    loadBalancer: {localityLbSetting: {failover: [{from: us-east, to: eu-west}]}}\n"));
    unsigned load[MG_LB_MAX_PRIO];
    char p[64];
    prios(cl, p, sizeof(p));
    is_str(p, "0 0 1 2 3", "two endpoints share priority 0 (us-east/z1)");
    ok(mg_locality_priority_load(cl, true, load) && load[0] == 100, "all healthy: 100%% to P0");
    eject(cl, 0, true);
    ok(mg_locality_priority_load(cl, true, load), "one of two ejected");
    is_int(load[0], 70, "P0 half healthy: 1.4 x 50%% = 70%% stays");
    is_int(load[1], 30, "the rest spills to P1");
    eject(cl, 2, true);
    mg_locality_priority_load(cl, true, load);
    is_int(load[0] + load[1] + load[2], 100, "P1 ejected too: loads still add up to 100");
    is_int(load[2], 30, "and the spill goes on to P2");
    eject(cl, 1, true);
    eject(cl, 3, true);
    mg_locality_priority_load(cl, true, load);
    is_int(load[3], 100, "only the last priority left: it takes everything");
    eject(cl, 4, true);
    ok(!mg_locality_priority_load(cl, true, load), "nothing healthy: no load");
    mg_cluster_free(cl);
}

/* minHealthPercent with priorities: Envoy's panic is per priority and
 * only while the priorities together lack availability */
static void panic(struct mg_worker *w)
{
    char p[64];
    int picks[5];
    struct mg_cluster *cl = build(PROXY("us-east/z1", "") SE DR(
        "    outlierDetection: {consecutive5xxErrors: 1, maxEjectionPercent: 100, minHealthPercent: 60}\n"
        "    loadBalancer: {simple: ROUND_ROBIN}\n"));
    prios(cl, p, sizeof(p));
    is_str(p, "0 0 1 2 2", "us-east/z1 has no subzone: s1 and s2 share priority 0");
    if (!cl)
        return;
    eject(cl, 0, true);
    eject(cl, 1, true);
    eject(cl, 2, true);
    run(cl, w, 100, picks);
    is_int(picks[3] + picks[4], 100, "40%% of the cluster in service, but priority 2 is whole: "
           "no panic, everything to it");
    eject(cl, 3, true);
    run(cl, w, 100, picks);
    is_int(picks[4], 50, "priority 2 half in service (below 60%%) and 70%% available: it panics "
           "and round robin takes both of its endpoints");
    is_int(picks[3], 50, "the ejected one too");
    is_int(picks[0] + picks[1] + picks[2], 0, "nothing to the nearer priorities, empty");
    eject(cl, 4, true);
    run(cl, w, 100, picks);
    is_int(picks[0] + picks[1], 100, "everything ejected: priority 0 in panic");
    mg_cluster_free(cl);
}

/* endpoint weights still share the choices inside a priority */
static void weights_inside(struct mg_worker *w)
{
    const char *se =
        "---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\n"
        "metadata: {name: svc, namespace: istio-system}\n"
        "spec:\n  hosts: [svc.local]\n  location: MESH_INTERNAL\n"
        "  ports: [{number: 80, name: http, protocol: HTTP}]\n  resolution: STATIC\n"
        "  endpoints:\n"
        "  - {address: 10.0.0.1, locality: us-east/z1, weight: 3}\n"
        "  - {address: 10.0.0.2, locality: us-east/z1, weight: 1}\n"
        "  - {address: 10.0.0.3, locality: eu-west/z1, weight: 5}\n";
    char *y = mg_xasprintf("%s%s%s", PROXY("us-east/z1", ""), se,
                           DR(OD "    loadBalancer: {simple: ROUND_ROBIN}\n"));
    struct mg_cluster *cl = build(y);
    free(y);
    if (!cl)
        return;
    int picks[3];
    run(cl, w, 400, picks);
    is_int(picks[0], 300, "weights 3:1 inside the nearest priority: exactly 300 of 400");
    is_int(picks[1], 100, "and 100");
    is_int(picks[2], 0, "the heavier endpoint of the farther priority gets nothing");
    eject(cl, 0, true);
    run(cl, w, 400, picks);
    ok(picks[1] > 200 && picks[1] < 360 && picks[1] + picks[2] == 400,
       "the heavy one ejected: 70%% stays on the light one (%d), the rest spills (%d)", picks[1],
       picks[2]);
    mg_cluster_free(cl);
}

/* retryRemoteLocalities: a retry leaves the priorities already tried */
static void retry_remote(struct mg_worker *w)
{
    struct mg_cluster *cl = build(PROXY("us-east/z1/s1", "") SE DR(OD
        "    loadBalancer: {localityLbSetting: {failover: [{from: us-east, to: ap-south}]}}\n"));
    if (!cl)
        return;
    uint64_t tried = 1;                 /* endpoint 0 (priority 0) */
    int same = 0, next = 0;
    for (int k = 0; k < 50; k++) {
        size_t e = mg_cluster_pick_retry(cl, &cl->rt[0], w, tried, false);
        same += e == 0;
        e = mg_cluster_pick_retry(cl, &cl->rt[0], w, tried, true);
        next += e == 1;
    }
    is_int(same, 50, "a retry stays in its priority (its only endpoint, tried, again) by default");
    is_int(next, 50, "with retryRemoteLocalities it goes to the next priority");
    tried = 1 | 2 | 4;
    is_int(mg_cluster_pick_retry(cl, &cl->rt[0], w, tried, true), 4,
           "priorities 0..2 tried: the failover region");
    tried = 31;
    size_t e = mg_cluster_pick_retry(cl, &cl->rt[0], w, tried, true);
    is_int(e, 0, "every priority tried: back to the priority load (the nearest)");
    mg_cluster_free(cl);
}

/* Envoy's locality-weighted balancing without distribute: a locality by
 * the total weight of its endpoints, then an endpoint in it */
static void locality_weighted(struct mg_worker *w)
{
    const char *se =
        "---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\n"
        "metadata: {name: svc, namespace: istio-system}\n"
        "spec:\n  hosts: [svc.local]\n  location: MESH_INTERNAL\n"
        "  ports: [{number: 80, name: http, protocol: HTTP}]\n  resolution: STATIC\n"
        "  endpoints:\n"
        "  - {address: 10.0.0.1, locality: a/z1}\n"
        "  - {address: 10.0.0.2, locality: a/z1}\n"
        "  - {address: 10.0.0.3, locality: b/z1}\n"
        "  - {address: 10.0.0.4, locality: b/z1}\n";
    char *y = mg_xasprintf("%s%s%s", PROXY("a/z1", ""), se,
                           DR("    outlierDetection: {consecutive5xxErrors: 1, maxEjectionPercent: 100}\n"
                              "    loadBalancer: {simple: ROUND_ROBIN, localityLbSetting: "
                              "{failover: [{from: a, to: b}]}}\n"));
    struct mg_cluster *cl = build(y);
    free(y);
    if (!cl)
        return;
    is_int(cl->n_locs, 2, "two localities");
    int picks[4];
    run(cl, w, 100, picks);
    is_int(picks[0], 50, "round robin inside the local locality: 50");
    is_int(picks[1], 50, "and 50 (none starved)");
    size_t e = mg_cluster_pick(cl, &cl->rt[0], w, 1 | 2);
    ok(e == 0 || e == 1, "a retry after both local endpoints stays in priority 0 (%zu)", e);
    mg_cluster_free(cl);

    /* same priority, two localities, one partly ejected: Envoy's shares */
    se = "---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\n"
         "metadata: {name: svc, namespace: istio-system}\n"
         "spec:\n  hosts: [svc.local]\n  location: MESH_INTERNAL\n"
         "  ports: [{number: 80, name: http, protocol: HTTP}]\n  resolution: STATIC\n"
         "  endpoints:\n"
         "  - {address: 10.0.0.1, locality: b/z1}\n"
         "  - {address: 10.0.0.2, locality: b/z1}\n"
         "  - {address: 10.0.0.3, locality: c/z1}\n"
         "  - {address: 10.0.0.4, locality: c/z1}\n";
    y = mg_xasprintf("%s%s%s", PROXY("a/z1", ""), se,
                     DR("    outlierDetection: {consecutive5xxErrors: 1, maxEjectionPercent: 100}\n"
                        "    loadBalancer: {simple: ROUND_ROBIN}\n"));
    cl = build(y);
    free(y);
    if (!cl)
        return;
    is_int(cl->n_prio, 1, "both localities in the one remote priority");
    eject(cl, 0, true);
    run(cl, w, 340, picks);
    /* b: weight 2 x 70% = 140, c: 2 x 100% = 200 */
    is_int(picks[1], 140, "b half ejected: its locality weighs 2 x 70%% (140 of 340)");
    is_int(picks[2] + picks[3], 200, "c weighs 2 x 100%% (200 of 340)");
    is_int(picks[2], 100, "round robin inside c");
    mg_cluster_free(cl);
    /* a retry whose locality is all tried goes to another locality */
    y = mg_xasprintf("%s%s%s", PROXY("a/z1", ""), se, DR("    loadBalancer: {simple: ROUND_ROBIN}\n"));
    cl = build(y);
    free(y);
    if (!cl)
        return;
    int other = 0;
    for (int k = 0; k < 20; k++) {
        size_t x = mg_cluster_pick(cl, &cl->rt[0], w, 1 | 2);
        other += x == 2 || x == 3;
    }
    is_int(other, 20, "b's endpoints both tried: every retry goes to c");
    mg_cluster_free(cl);
}

static void distribute(struct mg_worker *w)
{
    struct mg_cluster *cl = build(PROXY("us-east/z1/s1", "") SE DR(OD
        "    loadBalancer:\n      localityLbSetting:\n        distribute:\n"
        "        - {from: eu-west/*, to: {\"eu-west/*\": 100}}\n"
        "        - {from: us-east/z1/*, to: {\"us-east/z1/*\": 80, \"ap-south/*\": 20}}\n"));
    ok(cl && cl->loc_weight, "distribute: locality weights");
    if (!cl)
        return;
    is_int(cl->loc_weight[cl->eps[0].loc], 40, "us-east/z1/* = 80 split between its two localities");
    is_int(cl->loc_weight[cl->eps[4].loc], 20, "ap-south 20");
    ok(cl->eps[2].excluded && cl->eps[3].excluded, "localities no `to` names get nothing");
    int picks[5];
    run(cl, w, 1000, picks);
    is_int(picks[0], 400, "localities in turn by weight (smooth round robin): s1 exactly 40%%");
    is_int(picks[1], 400, "s2 40%%");
    is_int(picks[4], 200, "ap-south 20%%");
    is_int(picks[2] + picks[3], 0, "none to the excluded");
    eject(cl, 0, true);
    run(cl, w, 1000, picks);
    is_int(picks[0], 0, "s1's only endpoint ejected: its locality has no availability");
    is_int(picks[1], 667, "the others share by weight: s2 40/60");
    is_int(picks[4], 333, "ap-south 20/60");
    mg_cluster_free(cl);
    cl = build(PROXY("ap-south/z9", "") SE DR(
        "    loadBalancer:\n      localityLbSetting:\n        distribute:\n"
        "        - {from: us-east/z1/*, to: {\"us-east/z1/*\": 100}}\n"));
    ok(cl && !cl->loc_weight && cl->n_prio <= 1, "no rule from this proxy's locality: plain balancing");
    mg_cluster_free(cl);
}

static void validation(void)
{
    static const struct {
        const char *policy, *want;
    } cases[] = {
        { "    loadBalancer: {localityLbSetting: {distribute: [{from: a, to: {a: 50, b: 40}}]}}\n",
          "total locality weight 90 != 100" },
        { "    loadBalancer: {localityLbSetting: {distribute: [{from: a, to: {a: 100, b: 0}}]}}\n",
          "must be in range [1, 100]" },
        { "    loadBalancer: {localityLbSetting: {distribute: [{from: a, to: {a: 100}}], "
          "failover: [{from: a, to: b}]}}\n", "can not simultaneously specify 'distribute' and 'failover'" },
        { "    loadBalancer: {localityLbSetting: {failover: [{from: a, to: a}]}}\n",
          "must specify different regions" },
        { "    loadBalancer: {localityLbSetting: {failover: [{from: a/z, to: b}]}}\n",
          "only specify region" },
        { "    loadBalancer: {localityLbSetting: {distribute: [{from: \"a*/z\", to: {a: 100}}]}}\n",
          "must be in the end" },
        { "    loadBalancer: {localityLbSetting: {distribute: [{from: a, to: {\"a\": 50, \"a/z\": 50}}]}}\n",
          "overlap with previous specified ones" },
        { "    loadBalancer: {localityLbSetting: {failover: [{from: a, to: b}], "
          "failoverPriority: [topology.kubernetes.io/region]}}\n", "can not simultaneously set 'failover'" },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *full = mg_xasprintf("%s%s", DR(""), cases[i].policy);
        struct mg_diags d = { 0 };
        struct mg_config *c = mg_config_load_buffer("v.yaml", full, strlen(full), &d);
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);
        mg_diags_print(&d, f);
        fclose(f);
        ok(d.errors > 0 && strstr(buf, cases[i].want) && strstr(buf, "v.yaml:"),
           "check refuses: %s", cases[i].want);
        free(buf);
        mg_diags_free(&d);
        mg_config_free(c);
        free(full);
    }
    const char *warn = DR("    loadBalancer: {localityLbSetting: {failover: [{from: a, to: b}]}}\n");
    struct mg_diags d = { 0 };
    struct mg_config *c = mg_config_load_buffer("v.yaml", warn, strlen(warn), &d);
    ok(d.errors == 0 && d.warnings == 1, "failover without outlierDetection: a warning");
    mg_diags_free(&d);
    mg_config_free(c);
}

int main(void)
{
    struct mg_worker w;
    memset(&w, 0, sizeof(w));
    w.rnd = 12345;
    failover_regions(&w);
    off_cases(&w);
    by_labels();
    priority_load();
    panic(&w);
    retry_remote(&w);
    weights_inside(&w);
    locality_weighted(&w);
    distribute(&w);
    validation();
    return tap_done();
}
