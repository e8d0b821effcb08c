/* test_access.c - the per-snapshot access state: which ext_authz providers
 * are usable (and the warnings for those that are not), that the policy
 * set and the RequestAuthentication rules are compiled for the Proxy, and
 * the /config_dump members (effective PeerAuthentication mode per port). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "access/access.h"
#include "config/config.h"
#include "policy/policy.h"
#include "snapshot/snapshot.h"
#include "tap.h"

static const char cfg_text[] =
    "apiVersion: meshgate.io/v1alpha1\n"
    "kind: Proxy\n"
    "metadata: {name: gw, namespace: istio-system, labels: {istio: ingressgateway}}\n"
    "spec: {}\n"
    "---\n"
    "apiVersion: meshgate.io/v1alpha1\n"
    "kind: MeshConfig\n"
    "spec:\n"
    "  extensionProviders:\n"
    "  - name: http-ok\n"
    "    envoyExtAuthzHttp: {service: istio-system/authz.local, port: 9000}\n"
    "  - name: http-unknown\n"
    "    envoyExtAuthzHttp: {service: nowhere.local, port: 9000}\n"
    "  - name: grpc\n"
    "    envoyExtAuthzGrpc: {service: authz.local, port: 9001}\n"
    "---\n"
    "apiVersion: networking.istio.io/v1\n"
    "kind: ServiceEntry\n"
    "metadata: {name: authz, namespace: istio-system}\n"
    "spec:\n"
    "  hosts: [authz.local]\n"
    "  ports: [{number: 9000, name: http, protocol: HTTP}]\n"
    "  resolution: STATIC\n"
    "  endpoints: [{address: 127.0.0.1}]\n"
    "---\n"
    "apiVersion: security.istio.io/v1\n"
    "kind: PeerAuthentication\n"
    "metadata: {name: default, namespace: istio-system}\n"
    "spec: {mtls: {mode: STRICT}}\n"
    "---\n"
    "apiVersion: security.istio.io/v1\n"
    "kind: AuthorizationPolicy\n"
    "metadata: {name: a, namespace: istio-system}\n"
    "spec: {action: DENY, rules: [{to: [{operation: {paths: [/x]}}]}]}\n"
    "---\n"
    "apiVersion: security.istio.io/v1\n"
    "kind: AuthorizationPolicy\n"
    "metadata: {name: other-ns, namespace: elsewhere}\n"
    "spec: {}\n";

static bool has_warning(const struct mg_diags *d, const char *needle)
{
    for (size_t i = 0; i < d->n; i++)
        if (d->v[i].sev == MG_WARNING && strstr(d->v[i].msg, needle))
            return true;
    return false;
}

int main(void)
{
    struct mg_diags d = { 0 };
    struct mg_config *cfg = mg_config_load_buffer("test.yaml", cfg_text, strlen(cfg_text), &d);
    ok(cfg != NULL, "config loads");
    if (!cfg) {
        mg_diags_print(&d, stdout);
        return tap_done();
    }
    struct mg_port ports[1] = { { .number = 8443 } };
    struct mg_snapshot s;
    memset(&s, 0, sizeof(s));
    s.cfg = cfg;
    s.n_workers = 2;
    s.ports = ports;
    s.n_ports = 1;
    size_t errors0 = d.errors;
    struct mg_access *a = mg_access_build(&s, &d);
    ok(a != NULL, "built");
    is_int((long long)(d.errors - errors0), 0, "no errors: unusable providers are warnings");
    ok(has_warning(&d, "'grpc': envoyExtAuthzGrpc is not supported"), "gRPC provider warned about");
    ok(!has_warning(&d, "'http-ok'"), "usable provider not warned about");
    ok(has_warning(&d, "nowhere.local"), "provider whose service no ServiceEntry knows warned about");
    is_int((long long)mg_policy_set_count(mg_access_policies(a)), 1,
           "only the policy of the Proxy's namespace applies");
    s.access = a;
    struct mg_buf b = { 0 };
    mg_access_dump(&b, &s);
    ok(b.p && strstr(b.p, "\"ports\":[{\"port\":8443,\"mode\":\"STRICT\"}]"),
       "config_dump: effective PeerAuthentication mode per port");
    ok(b.p && strstr(b.p, "\"authz_policies\":1"), "config_dump: policy count");
    ok(b.p && strstr(b.p, "\"enforced\":false"), "config_dump: gateway servers do not enforce it");
    mg_buf_free(&b);

    struct mg_buf m = { 0 };
    mg_access_metrics_render(&m);
    ok(m.p && strstr(m.p, "# TYPE meshgate_authz_denied_total counter\n"), "metrics render");
    ok(m.p && strstr(m.p, "meshgate_ext_authz_total{result=\"error\"} 0\n"), "counters start at 0");
    mg_buf_free(&m);

    mg_access_free(a);
    mg_access_free(NULL);
    mg_config_free(cfg);
    mg_diags_free(&d);
    return tap_done();
}
