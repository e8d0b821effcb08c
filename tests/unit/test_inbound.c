/* test_inbound.c - sidecar inbound compile (ports, synthetic server, route
 * and cluster, errors, gateway mode), the effective mTLS mode per workload
 * port, /config_dump, and the ALPN answer and trust-domain check (statics,
 * reached by including the .c). */
#include "../../src/sidecar/inbound.c"
#include "control/control.h"
#include "tap.h"

#define PROXY \
    "apiVersion: meshgate.io/v1alpha1\n" \
    "kind: Proxy\n" \
    "metadata: {name: httpbin, namespace: default, labels: {app: httpbin}}\n" \
    "spec:\n" \
    "  mode: %s\n" \
    "  inbound:\n" \
    "  - {port: 80, bind: 127.0.0.1:15006, forwardTo: 127.0.0.1:8080, protocol: HTTP}\n" \
    "  - {port: 9080, bind: 127.0.0.2:15007, forwardTo: 127.0.0.1:9090}\n" \
    "  - {port: 7000, bind: 127.0.0.1:%s, forwardTo: 127.0.0.1:7070, protocol: TCP}\n" \
    "  - {port: 8443, bind: 127.0.0.1:15009, forwardTo: 127.0.0.1:8443, protocol: TLS}\n" \
    "---\n" \
    "apiVersion: meshgate.io/v1alpha1\n" \
    "kind: MeshConfig\n" \
    "spec: {trustDomain: td.one, trustDomainAliases: [td.old]}\n"

static const char *PA =
    "---\n"
    "apiVersion: security.istio.io/v1\n"
    "kind: PeerAuthentication\n"
    "metadata: {name: wl, namespace: default}\n"
    "spec:\n"
    "  selector: {matchLabels: {app: httpbin}}\n"
    "  mtls: {mode: STRICT}\n"
    "  portLevelMtls:\n"
    "    9080: {mode: DISABLE}\n";

static struct mg_snapshot *build(const char *mode, const char *tcp_bind, bool pa, struct mg_diags *d)
{
    struct mg_buf y = { 0 };
    mg_buf_printf(&y, PROXY, mode, tcp_bind);
    if (pa)
        mg_buf_adds(&y, PA);
    struct mg_config *c = mg_config_load_buffer("i.yaml", y.p, y.len, d);
    mg_buf_free(&y);
    return c ? mg_snapshot_build(c, 2, 1, d) : NULL;
}

static bool diag_has(const struct mg_diags *d, const char *needle)
{
    char *p = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&p, &n);
    mg_diags_print(d, f);
    fclose(f);
    bool hit = p && strstr(p, needle);
    free(p);
    return hit;
}

static const struct mg_cluster *cluster(const struct mg_snapshot *s, const char *name)
{
    for (size_t i = 0; i < s->n_clusters; i++)
        if (s->clusters[i] && strcmp(s->clusters[i]->name, name) == 0)
            return s->clusters[i];
    return NULL;
}

static const char *alpn(const char *offer, size_t len)
{
    static char out[32];
    const unsigned char *o = NULL;
    unsigned char ol = 0;
    if (mesh_alpn_cb(NULL, &o, &ol, (const unsigned char *)offer, (unsigned)len, NULL) != SSL_TLSEXT_ERR_OK)
        return "(none)";
    snprintf(out, sizeof(out), "%.*s", ol, (const char *)o);
    return out;
}

int main(void)
{
    struct mg_diags d = { 0 };
    struct mg_snapshot *s = build("sidecar", "15008", false, &d);
    ok(s != NULL, "sidecar config with inbound ports builds");
    if (!s) {
        mg_diags_print(&d, stdout);
        return tap_done();
    }
    ok(diag_has(&d, "inbound port 8443: protocol TLS is not served"), "TLS inbound skipped with a warning");
    ok(diag_has(&d, "without Proxy.spec.identity"), "missing identity is a warning");
    is_int(s->inbound ? (long long)s->inbound->n : -1, 3, "three inbound ports compiled");
    const struct mg_port *p = mg_snapshot_port(s, 15006);
    ok(p && p->inbound && p->inbound->workload_port == 80, "bind port 15006 serves workload port 80");
    is_str(p ? p->bind_ip : NULL, "127.0.0.1", "bind address kept");
    ok(p && p->n_srv == 1 && strcmp(p->srv[0]->hosts[0], "*") == 0, "one server for every host");
    const struct mg_route *r = p ? p->srv[0]->routes.v[0].routes[0] : NULL;
    is_str(r ? r->name : NULL, "inbound|80||", "route named after the workload port");
    ok(r && r->n_matches == 0 && r->n_dests == 1, "the route matches everything, one destination");
    const struct mg_cluster *cl = cluster(s, "inbound|80||");
    ok(cl && r && r->dests[0].cluster == cl, "the route goes to cluster inbound|80||");
    is_str(cl && cl->n_eps ? cl->eps[0].label : NULL, "127.0.0.1:8080", "cluster endpoint is forwardTo");
    ok(cl && cl->eps[0].resolved && !cl->tls, "endpoint resolved, plain text");
    p = mg_snapshot_port(s, 15007);
    is_str(p ? p->bind_ip : NULL, "127.0.0.2", "second port binds its own address");
    ok(p && p->inbound && !p->inbound->tcp, "protocol defaults to HTTP");
    p = mg_snapshot_port(s, 15008);
    ok(p && p->inbound && p->inbound->tcp, "protocol TCP port marked for the splice");
    ok(!mg_snapshot_port(s, 15009), "skipped TLS entry has no listener");
    ok(p && mg_inbound_mode(s, p->inbound) == MG_MTLS_PERMISSIVE, "no PeerAuthentication: PERMISSIVE");
    struct mg_buf b = { 0 };
    mg_inbound_dump(&b, s);
    ok(b.p && strstr(b.p, ",\"inbound\":[{\"port\":80,\"bind\":\"127.0.0.1:15006\",\"forward_to\":\"127.0.0.1:8080\","
                          "\"protocol\":\"HTTP\",\"mtls_mode\":\"PERMISSIVE\",\"identity\":false"),
       "config_dump member for port 80");
    mg_buf_free(&b);

    /* trust domain and aliases */
    ok(td_allowed(s->cfg, "td.one", 6), "own trust domain allowed");
    ok(td_allowed(s->cfg, "td.old", 6), "alias allowed");
    ok(!td_allowed(s->cfg, "td.on", 5) && !td_allowed(s->cfg, "cluster.local", 13),
       "prefix of the domain and the default domain refused");
    mg_snapshot_unref(s);
    mg_diags_free(&d);

    /* port-level modes from a workload policy */
    memset(&d, 0, sizeof(d));
    s = build("sidecar", "15008", true, &d);
    ok(s != NULL, "with a workload PeerAuthentication");
    if (s) {
        ok(mg_inbound_mode(s, mg_snapshot_port(s, 15006)->inbound) == MG_MTLS_STRICT, "port 80 STRICT");
        ok(mg_inbound_mode(s, mg_snapshot_port(s, 15007)->inbound) == MG_MTLS_DISABLE,
           "port 9080 DISABLE (portLevelMtls keyed by the workload port)");
        ok(mg_inbound_mode(s, mg_snapshot_port(s, 15008)->inbound) == MG_MTLS_STRICT, "port 7000 STRICT");
        b = (struct mg_buf){ 0 };
        mg_inbound_dump(&b, s);
        ok(b.p && strstr(b.p, "\"workload\":\"default.wl\""), "config_dump names the workload policy");
        mg_buf_free(&b);
    }
    mg_snapshot_unref(s);
    mg_diags_free(&d);

    /* a bind address used twice is a config error (meshgate check sees it) */
    memset(&d, 0, sizeof(d));
    s = build("sidecar", "15006", false, &d);
    ok(s == NULL, "bind address used twice: no snapshot");
    ok(diag_has(&d, "i.yaml:9:5: error: inbound bind 127.0.0.1:15006 is used twice"), "... a config error at its line");
    mg_snapshot_unref(s);
    mg_diags_free(&d);
    /* the same port on two addresses: listeners are per port, refused at build */
    memset(&d, 0, sizeof(d));
    s = build("sidecar", "15007", false, &d);
    ok(s == NULL, "bind port used on two addresses: no snapshot");
    ok(diag_has(&d, "bind port 15007 is already used"), "... with the reason");
    mg_snapshot_unref(s);
    mg_diags_free(&d);

    /* gateway mode ignores inbound */
    memset(&d, 0, sizeof(d));
    s = build("gateway", "15008", false, &d);
    ok(s != NULL && s->inbound == NULL && s->n_ports == 0, "gateway mode: no inbound listener");
    ok(diag_has(&d, "inbound is for sidecar mode; ignored in gateway mode"), "gateway mode warns");
    mg_snapshot_unref(s);
    mg_diags_free(&d);

    /* the ALPN answer: one of the client's names */
    is_str(alpn("\x0eistio-http/1.1\x08http/1.1", 24), "http/1.1", "istio-http/1.1,http/1.1 -> http/1.1");
    is_str(alpn("\x0eistio-http/1.1", 15), "istio-http/1.1", "istio-http/1.1 alone -> itself (HTTP/1.1)");
    is_str(alpn("\x08istio-h2", 9), "istio-h2", "istio-h2 alone -> istio-h2 (HTTP/2)");
    is_str(alpn("\x08istio-h2\x02h2\x08http/1.1", 21), "h2", "h2 offered -> h2");
    is_str(alpn("\x13istio-peer-exchange\x05istio", 26), "(none)", "only istio tokens -> no ALPN");
    is_str(alpn("\x09istio-h2", 9), "(none)", "a name running past the list is not read");
    mg_tls_alpn_h2 = false;
    is_str(alpn("\x08istio-h2\x02h2\x08http/1.1", 21), "http/1.1", "h2 disabled -> http/1.1");
    mg_tls_alpn_h2 = true;
    return tap_done();
}
