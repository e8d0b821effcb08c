/* test_peer_authn.c - PeerAuthentication composition (mesh, namespace, workload, port),
 * the strict SPIFFE parser (8) and remote.ip derivation (1.8). The config
 * structs are built by hand: this test needs only the policy library. */
#include <stdlib.h>
#include <string.h>
#include "policy/policy.h"
#include "tap.h"

#define MAXPA 8
static struct mg_peer_authn pas[MAXPA];
static struct mg_kv kvs[MAXPA][2];
static struct mg_port_mtls ports[MAXPA][4];
static size_t npa;

static struct mg_kv wl_kv[2] = {{"app", "web", {0}}, {"tier", "front", {0}}};
static struct mg_kvlist wl_labels = {wl_kv, 2};

/* Add a PeerAuthentication; sel_app NULL = no selector. */
static struct mg_peer_authn *pa(const char *ns, const char *name, const char *sel_app,
                                enum mg_mtls_mode mode, const char *ts)
{
    struct mg_peer_authn *p = &pas[npa];
    memset(p, 0, sizeof(*p));
    p->meta.namespace_ = (char *)ns;
    p->meta.name = (char *)name;
    p->meta.creation_timestamp = (char *)ts;
    p->meta.doc_index = npa;
    if (sel_app) {
        kvs[npa][0].key = "app";
        kvs[npa][0].value = (char *)sel_app;
        p->selector.present = true;
        p->selector.match_labels.v = kvs[npa];
        p->selector.match_labels.n = 1;
    }
    p->mode = mode;
    npa++;
    return p;
}

static void port(struct mg_peer_authn *p, uint16_t port, enum mg_mtls_mode m)
{
    size_t i = (size_t)(p - pas);
    ports[i][p->n_port_level] = (struct mg_port_mtls){port, m, {0}};
    p->port_level = ports[i];
    p->n_port_level++;
}

static enum mg_mtls_mode mode_for(uint16_t p, const char **ws)
{
    struct mg_config c;
    struct mg_diags d = {0};
    struct mg_workload w = {"gw", "prod", &wl_labels};
    memset(&c, 0, sizeof(c));
    c.mesh.root_namespace = "istio-system";
    c.peer_authns = pas;
    c.n_peer_authns = npa;
    struct mg_policy_set *s = mg_policy_compile(&c, &w, &d);
    enum mg_mtls_mode m = mg_peer_authn_mode(s, p);
    const char *src = NULL;
    mg_peer_authn_sources(s, NULL, NULL, &src);
    static char keep[128];
    snprintf(keep, sizeof(keep), "%s", src ? src : "(none)");
    if (ws)
        *ws = keep;
    mg_policy_set_free(s);
    mg_diags_free(&d);
    return m;
}

#define RESET() (npa = 0)

static void test_peer_authn(void)
{
    RESET();
    is_int(mode_for(80, NULL), MG_MTLS_PERMISSIVE, "no policy: PERMISSIVE");

    pa("istio-system", "mesh", NULL, MG_MTLS_STRICT, NULL);
    is_int(mode_for(80, NULL), MG_MTLS_STRICT, "mesh STRICT applies");
    pa("prod", "ns", NULL, MG_MTLS_PERMISSIVE, NULL);
    is_int(mode_for(80, NULL), MG_MTLS_PERMISSIVE, "namespace overrides mesh");
    pa("prod", "wl", "web", MG_MTLS_DISABLE, NULL);
    is_int(mode_for(80, NULL), MG_MTLS_DISABLE, "workload overrides namespace");

    RESET();
    pa("istio-system", "mesh", NULL, MG_MTLS_STRICT, NULL);
    pa("prod", "ns", NULL, MG_MTLS_UNSET, NULL);
    pa("prod", "wl", "web", MG_MTLS_UNSET, NULL);
    is_int(mode_for(80, NULL), MG_MTLS_STRICT, "UNSET at namespace and workload inherits mesh");

    RESET();
    pa("istio-system", "mesh", NULL, MG_MTLS_UNSET, NULL);
    is_int(mode_for(80, NULL), MG_MTLS_PERMISSIVE, "UNSET at the top is PERMISSIVE");

    RESET();
    pa("istio-system", "mesh-sel", "web", MG_MTLS_STRICT, NULL);
    is_int(mode_for(80, NULL), MG_MTLS_PERMISSIVE, "root-namespace selector policy is ignored");

    RESET();
    pa("other", "ns", NULL, MG_MTLS_STRICT, NULL);
    pa("other", "wl", "web", MG_MTLS_STRICT, NULL);
    is_int(mode_for(80, NULL), MG_MTLS_PERMISSIVE, "policies of another namespace do not apply");

    RESET();
    pa("prod", "wl-other", "api", MG_MTLS_STRICT, NULL);
    is_int(mode_for(80, NULL), MG_MTLS_PERMISSIVE, "selector mismatch does not apply");

    /* ties: oldest creationTimestamp wins, then load order */
    const char *src;
    RESET();
    pa("prod", "newer", NULL, MG_MTLS_DISABLE, "2024-05-01T00:00:00Z");
    pa("prod", "older", NULL, MG_MTLS_STRICT, "2024-01-01T00:00:00Z");
    is_int(mode_for(80, NULL), MG_MTLS_STRICT, "namespace tie: the older policy wins");
    RESET();
    pa("prod", "first", NULL, MG_MTLS_STRICT, "2024-01-01T00:00:00Z");
    pa("prod", "second", NULL, MG_MTLS_DISABLE, "2024-01-01T00:00:00Z");
    is_int(mode_for(80, NULL), MG_MTLS_STRICT, "equal timestamps: load order wins");
    RESET();
    pa("prod", "wl-new", "web", MG_MTLS_DISABLE, "2025-01-01T00:00:00.5Z");
    pa("prod", "wl-old", "web", MG_MTLS_STRICT, "2025-01-01T00:00:00.25Z");
    is_int(mode_for(80, &src), MG_MTLS_STRICT, "workload tie by fractional seconds");
    is_str(src, "prod.wl-old", "  the older workload policy is the source");
    RESET();
    pa("prod", "utc", NULL, MG_MTLS_DISABLE, "2024-01-01T01:30:00Z");
    pa("prod", "offset", NULL, MG_MTLS_STRICT, "2024-01-01T02:00:00+01:00");
    is_int(mode_for(80, NULL), MG_MTLS_STRICT, "timestamps with an offset compare in UTC");
    RESET();
    pa("istio-system", "m-new", NULL, MG_MTLS_DISABLE, "2024-03-01T00:00:00Z");
    pa("istio-system", "m-old", NULL, MG_MTLS_STRICT, "2023-03-01T00:00:00Z");
    is_int(mode_for(80, NULL), MG_MTLS_STRICT, "mesh tie: the older policy wins");

    /* port level */
    RESET();
    pa("prod", "ns", NULL, MG_MTLS_STRICT, NULL);
    struct mg_peer_authn *w = pa("prod", "wl", "web", MG_MTLS_UNSET, NULL);
    port(w, 8080, MG_MTLS_DISABLE);
    port(w, 9090, MG_MTLS_UNSET);
    is_int(mode_for(8080, NULL), MG_MTLS_DISABLE, "portLevelMtls of the workload policy");
    is_int(mode_for(9090, NULL), MG_MTLS_STRICT, "port entry UNSET takes the workload's effective mode");
    is_int(mode_for(80, NULL), MG_MTLS_STRICT, "unlisted port uses the workload mode");

    RESET();
    struct mg_peer_authn *n = pa("prod", "ns", NULL, MG_MTLS_STRICT, NULL);
    port(n, 8080, MG_MTLS_DISABLE);
    is_int(mode_for(8080, NULL), MG_MTLS_STRICT, "portLevelMtls without a selector is ignored");

    RESET();
    struct mg_peer_authn *w1 = pa("prod", "wl-old", "web", MG_MTLS_PERMISSIVE, "2020-01-01T00:00:00Z");
    struct mg_peer_authn *w2 = pa("prod", "wl-new", "web", MG_MTLS_PERMISSIVE, "2021-01-01T00:00:00Z");
    port(w1, 8443, MG_MTLS_STRICT);
    port(w2, 8080, MG_MTLS_STRICT);
    is_int(mode_for(8443, NULL), MG_MTLS_STRICT, "port level from the selected (oldest) workload policy");
    is_int(mode_for(8080, NULL), MG_MTLS_PERMISSIVE, "  not from the ignored one");

    RESET();
    struct mg_peer_authn *ws = pa("prod", "wl", "web", MG_MTLS_STRICT, NULL);
    port(ws, 15021, MG_MTLS_PERMISSIVE);
    is_int(mode_for(15021, NULL), MG_MTLS_PERMISSIVE, "STRICT workload with a PERMISSIVE port");
    is_int(mode_for(443, NULL), MG_MTLS_STRICT, "  other ports stay STRICT");
}

static void test_spiffe(void)
{
    struct mg_spiffe_id id;
    ok(mg_spiffe_parse("spiffe://cluster.local/ns/default/sa/sleep", &id) == 0, "spiffe: valid ID");
    is_str(id.principal, "cluster.local/ns/default/sa/sleep", "  principal drops the scheme");
    ok(id.trust_domain_len == 13 && memcmp(id.trust_domain, "cluster.local", 13) == 0, "  trust domain");
    ok(id.namespace_len == 7 && memcmp(id.namespace_, "default", 7) == 0, "  namespace");
    ok(id.service_account_len == 5 && memcmp(id.service_account, "sleep", 5) == 0, "  service account");
    static const char *bad[] = {
        "spiffe://cluster.local/ns/default/sa/sleep/extra", "spiffe://cluster.local/ns/default",
        "spiffe://cluster.local/ns//sa/x", "spiffe:///ns/a/sa/b", "spiffe://td/sa/a/ns/b",
        "http://td/ns/a/sa/b", "spiffe://td/ns/a/sa/", "spiffe://td/nsx/a/sa/b", "", "spiffe://",
    };
    for (size_t i = 0; i < MG_ARRAY_LEN(bad); i++)
        is_int(mg_spiffe_parse(bad[i], &id), -1, "spiffe: '%s' is refused", bad[i]);
}

static void test_remote(void)
{
    struct mg_addr peer, out;
    char buf[64];
    mg_addr_parse_ip(&peer, "10.0.0.1");
    is_int(mg_policy_remote_addr(&peer, "1.1.1.1, 2.2.2.2", 0, true, &out), 0, "gateway N=0: peer");
    is_str(mg_addr_ip_str(&out, buf, sizeof(buf)), "10.0.0.1", "  is the direct peer");
    is_int(mg_policy_remote_addr(&peer, "1.1.1.1, 2.2.2.2", 1, true, &out), 1, "gateway N=1: from XFF");
    is_str(mg_addr_ip_str(&out, buf, sizeof(buf)), "2.2.2.2", "  rightmost entry");
    mg_policy_remote_addr(&peer, "1.1.1.1, 2.2.2.2", 2, true, &out);
    is_str(mg_addr_ip_str(&out, buf, sizeof(buf)), "1.1.1.1", "gateway N=2: second from the right");
    is_int(mg_policy_remote_addr(&peer, "1.1.1.1, 2.2.2.2", 3, true, &out), 0, "gateway N=3 with 2 entries");
    is_str(mg_addr_ip_str(&out, buf, sizeof(buf)), "10.0.0.1", "  falls back to the peer");
    is_int(mg_policy_remote_addr(&peer, NULL, 1, true, &out), 0, "no XFF: peer");
    mg_policy_remote_addr(&peer, "bogus", 1, true, &out);
    is_str(mg_addr_ip_str(&out, buf, sizeof(buf)), "10.0.0.1", "non-IP entry: peer");
    mg_policy_remote_addr(&peer, "1.1.1.1,2001:db8::5", 0, false, &out);
    is_str(mg_addr_ip_str(&out, buf, sizeof(buf)), "2001:db8::5", "sidecar: rightmost XFF entry");
    is_int(mg_policy_remote_addr(&peer, NULL, 0, false, &out), 0, "sidecar without XFF: peer");
    is_int(mg_policy_remote_addr(&peer, "", 1, true, &out), 0, "empty XFF: peer");
}

int main(void)
{
    (void)tap_plan;
    (void)tap_diag;
    test_peer_authn();
    test_spiffe();
    test_remote();
    return tap_done();
}
