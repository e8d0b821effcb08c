/* test_config.c - the configuration loader and analyser.
 *
 * Part 1 is data driven: every tests/unit/data/config/cases/NAME.yaml is
 * loaded and its diagnostics are compared with NAME.expect, one line each:
 *     error 7:15 invalid value "STRIKT"
 *     warning 3:1 unknown kind
 * (severity, line:col, a substring of the message). Every diagnostic must
 * be expected and every expected line must occur. A line `analyze` runs
 * mg_config_analyze after a successful load; `# ...` lines are comments.
 * Part 2 loads good files and checks that values land in the right fields. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <fcntl.h>
#include "cmd/cmd.h"
#include "config/config.h"
#include "base/base.h"
#include "tap.h"

#ifndef MG_TEST_DATA
#define MG_TEST_DATA "tests/unit/data/config"
#endif

struct expect {
    enum mg_severity sev;
    int line, col;
    char text[400];
    bool seen;
};

static int load_expect(const char *path, struct expect *e, int max, bool *analyze)
{
    FILE *f = fopen(path, "r");
    char line[512];
    int n = 0;

    *analyze = false;
    if (!f)
        return -1;
    while (fgets(line, sizeof(line), f) && n < max) {
        char sev[16];
        int l, c, off = 0;
        line[strcspn(line, "\n")] = '\0';
        if (!line[0] || line[0] == '#')
            continue;
        if (strcmp(line, "analyze") == 0) {
            *analyze = true;
            continue;
        }
        if (sscanf(line, "%15s %d:%d %n", sev, &l, &c, &off) < 3 || !off) {
            printf("# bad expect line in %s: %s\n", path, line);
            fclose(f);
            return -1;
        }
        e[n].sev = strcmp(sev, "warning") == 0 ? MG_WARNING : MG_ERROR;
        e[n].line = l;
        e[n].col = c;
        snprintf(e[n].text, sizeof(e[n].text), "%s", line + off);
        e[n].seen = false;
        n++;
    }
    fclose(f);
    return n;
}

static bool diag_matches(const struct mg_diag *g, const struct expect *e)
{
    return g->sev == e->sev && g->pos.line == e->line && g->pos.col == e->col &&
           strstr(g->msg, e->text) != NULL;
}

static int name_filter(const struct dirent *d)
{
    size_t n = strlen(d->d_name);
    return n > 5 && strcmp(d->d_name + n - 5, ".yaml") == 0;
}

static int name_sort(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

static void run_case(const char *dir, const char *name)
{
    char yaml[1024], exp[1024];
    struct expect e[64];
    bool analyze;
    struct mg_diags d = { 0 };
    int ne;

    snprintf(yaml, sizeof(yaml), "%s/%s", dir, name);
    snprintf(exp, sizeof(exp), "%.*s.expect", (int)(strlen(yaml) - 5), yaml);
    ne = load_expect(exp, e, 64, &analyze);
    if (!ok(ne >= 0, "%s: has an .expect file", name))
        return;
    struct mg_config *c = mg_config_load(yaml, &d);
    if (c && analyze)
        mg_config_analyze(c, &d);
    bool good = true;
    for (size_t i = 0; i < d.n; i++) {
        int j;
        for (j = 0; j < ne; j++)
            if (!e[j].seen && diag_matches(&d.v[i], &e[j])) {
                e[j].seen = true;
                break;
            }
        if (j == ne) {
            good = false;
            printf("# %s: unexpected %s %d:%d %s\n", name,
                   d.v[i].sev == MG_ERROR ? "error" : "warning", d.v[i].pos.line,
                   d.v[i].pos.col, d.v[i].msg);
        }
    }
    for (int j = 0; j < ne; j++)
        if (!e[j].seen) {
            good = false;
            printf("# %s: missing %s %d:%d %s\n", name, e[j].sev == MG_ERROR ? "error" : "warning",
                   e[j].line, e[j].col, e[j].text);
        }
    ok(good, "%s: diagnostics as expected (%zu)", name, d.n);
    bool want_errors = false;
    for (int j = 0; j < ne; j++)
        if (e[j].sev == MG_ERROR)
            want_errors = true;
    ok(analyze ? c != NULL : (c == NULL) == want_errors, "%s: result is %s", name,
       c ? "a config" : "NULL");
    mg_config_free(c);
    mg_diags_free(&d);
}

static void data_driven(void)
{
    char dir[1024];
    struct dirent **list;
    int n;

    snprintf(dir, sizeof(dir), "%s/cases", MG_TEST_DATA);
    n = scandir(dir, &list, name_filter, name_sort);
    ok(n >= 30, "at least 30 case files in %s (%d)", dir, n);
    for (int i = 0; i < n; i++) {
        run_case(dir, list[i]->d_name);
        free(list[i]);
    }
    if (n > 0)
        free(list);
}

static struct mg_config *load_good(const char *rel, struct mg_diags *d)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/good/%s", MG_TEST_DATA, rel);
    return mg_config_load(path, d);
}

static void good_all_kinds(void)
{
    struct mg_diags d = { 0 };
    struct mg_config *c = load_good("all-kinds.yaml", &d);

    if (!ok(c != NULL, "all-kinds.yaml loads")) {
        mg_diags_print(&d, stdout);
        mg_diags_free(&d);
        return;
    }
    is_int(d.errors, 0, "all-kinds: no errors");
    is_int(d.warnings, 2, "all-kinds: two warnings (quoted bracket keys)");
    /* MeshConfig */
    const struct mg_mesh_config *m = &c->mesh;
    ok(m->present, "mesh present");
    is_str(m->trust_domain, "example.corp", "trustDomain '@' -> '.'");
    is_int(m->trust_domain_aliases.n, 1, "one alias");
    is_str(m->root_namespace, "mesh-root", "rootNamespace");
    is_int(m->outbound_mode, MG_OUTBOUND_REGISTRY_ONLY, "REGISTRY_ONLY");
    is_int(m->path_normalization, MG_NORM_DECODE_AND_MERGE_SLASHES, "normalization 4 (numeric)");
    is_str(m->access_log_file, "/dev/stdout", "accessLogFile /dev/stdout kept as is");
    is_int(m->access_log_encoding, MG_LOG_JSON, "JSON encoding");
    is_int(m->num_trusted_proxies, 2, "numTrustedProxies from defaultConfig.gatewayTopology");
    is_str(m->ca_certificates, "/etc/ssl/certs/ca-certificates.crt", "default caCertificates");
    if (ok(m->n_ext_providers == 1, "one extension provider")) {
        const struct mg_ext_provider *e = &m->ext_providers[0];
        is_str(e->name, "ext-authz", "provider name");
        is_int(e->type, MG_EXT_HTTP, "http provider");
        is_str(e->service, "authz.local", "provider service");
        is_int(e->port, 9000, "provider port");
        is_int(e->timeout_ms, 1000, "provider timeout");
        ok(e->fail_open, "failOpen");
        is_int(e->status_on_error, 503, "statusOnError as a string");
        is_int(e->include_request_headers_in_check.n, 1, "includeRequestHeadersInCheck");
    }
    /* Proxy */
    const struct mg_proxy *p = &c->proxy;
    ok(p->present, "proxy present");
    is_str(p->meta.name, "ingressgateway", "proxy name");
    is_str(mg_kvlist_get(&p->meta.labels, "istio"), "ingressgateway", "proxy label");
    is_int(p->mode, MG_MODE_SIDECAR, "sidecar mode");
    is_int(p->workers, 2, "workers");
    is_str(p->service_account, "gw-sa", "serviceAccount");
    is_str(p->bind_address, "0.0.0.0", "default bindAddress");
    is_str(p->admin, "127.0.0.1:15000", "default admin");
    if (ok(p->n_inbound == 1, "one inbound")) {
        is_int(p->inbound[0].port, 80, "inbound port");
        is_str(p->inbound[0].forward_to, "127.0.0.1:8080", "inbound forwardTo");
        is_int(p->inbound[0].protocol, MG_PROTO_HTTP2, "inbound protocol");
    }
    is_str(p->outbound_bind, "127.0.0.1:15001", "outbound bind");
    is_int(p->timeout_handshake_ms, 5000, "handshake timeout");
    is_int(p->timeout_idle_ms, 60000, "idle timeout");
    is_int(p->timeout_request_headers_ms, 30000, "default requestHeaders timeout");
    is_int(p->timeout_drain_ms, 30000, "default drain timeout");
    is_int(p->max_connections, 1000, "maxConnections");
    is_int(p->max_request_headers_kb, 32, "maxRequestHeadersKb");
    is_int(p->max_concurrent_streams, 100, "default maxConcurrentStreams");
    char *id = mg_config_spiffe_id(c);
    is_str(id, "spiffe://example.corp/ns/mesh-root/sa/gw-sa", "SPIFFE id");
    free(id);
    /* Gateway */
    if (ok(c->n_gateways == 1 && c->gateways[0].n_servers == 2, "gateway with two servers")) {
        const struct mg_gateway *g = &c->gateways[0];
        is_str(mg_kvlist_get(&g->selector, "istio"), "ingressgateway", "gateway selector");
        is_int(g->servers[0].port, 8443, "server port");
        is_int(g->servers[0].protocol, MG_PROTO_HTTPS, "server protocol");
        is_str(g->servers[0].hosts.v[0], "app.example.com", "server host");
        is_int(g->servers[0].tls.mode, MG_TLS_SIMPLE, "tls mode");
        is_str(g->servers[0].tls.credential_name, "app-cert", "credentialName");
        is_int(g->servers[0].tls.min_version, MG_TLSV1_3, "minProtocolVersion");
        is_int(g->servers[1].protocol, MG_PROTO_HTTP, "lower-case protocol accepted");
        ok(g->servers[1].tls.https_redirect, "httpsRedirect");
        is_int(g->servers[0].pos.line, 47, "server position line");
        is_int(g->servers[0].pos.col, 5, "server position column");
    }
    /* VirtualService */
    if (ok(c->n_virtual_services == 1 && c->virtual_services[0].n_http == 2, "vs with 2 routes")) {
        const struct mg_http_route *r = &c->virtual_services[0].http[0];
        is_str(r->name, "api", "route name");
        is_int(r->match[0].uri.kind, MG_SM_PREFIX, "uri prefix");
        is_str(r->match[0].uri.value, "/api", "uri value");
        is_str(r->match[0].headers[0].name, "x-version", "header match name lower-cased");
        is_str(r->match[0].headers[0].match.value, "v2", "header match value");
        is_str(r->route[0].destination.host, "app.local", "destination host");
        is_int(r->route[0].destination.port, 9080, "destination port");
        is_str(r->route[0].destination.subset, "v2", "destination subset");
        is_int(r->route[0].weight, 100, "weight");
        is_int(r->timeout_ms, 2000, "timeout");
        is_int(r->retries.attempts, 3, "retries");
        is_int(r->retries.per_try_timeout_ms, 500, "perTryTimeout");
        const struct mg_http_route *r2 = &c->virtual_services[0].http[1];
        ok(r2->has_direct_response, "directResponse");
        is_int(r2->direct_response.status, 418, "directResponse status");
        is_str(r2->direct_response.body, "teapot", "directResponse body");
        is_int(r2->timeout_ms, -1, "unset timeout is -1");
    }
    /* DestinationRule */
    if (ok(c->n_destination_rules == 1, "one destination rule")) {
        const struct mg_destination_rule *dr = &c->destination_rules[0];
        is_str(dr->host, "app.local", "DR host");
        is_int(dr->policy.base.lb, MG_LB_ROUND_ROBIN, "lb");
        is_int(dr->policy.base.pool.max_connections, 10, "maxConnections");
        is_int(dr->policy.base.pool.connect_timeout_ms, 250, "connectTimeout");
        is_int(dr->policy.base.pool.http1_max_pending_requests, 5, "http1MaxPendingRequests");
        is_int(dr->policy.base.pool.http_idle_timeout_ms, -1, "unset http idleTimeout");
        is_int(dr->policy.base.outlier.consecutive_5xx_errors, 7, "consecutive5xxErrors");
        is_int(dr->policy.base.outlier.base_ejection_time_ms, 30000, "default baseEjectionTime");
        is_int(dr->policy.base.tls.mode, MG_CTLS_SIMPLE, "client tls mode");
        is_str(dr->policy.base.tls.sni, "app.local", "sni");
        is_int(dr->n_subsets, 1, "one subset");
    }
    /* ServiceEntry */
    if (ok(c->n_service_entries == 1, "one service entry")) {
        const struct mg_service_entry *se = &c->service_entries[0];
        is_int(se->location, MG_MESH_INTERNAL, "MESH_INTERNAL");
        is_int(se->resolution, MG_RES_STATIC, "STATIC");
        is_int(se->ports[0].number, 9080, "SE port");
        is_int(se->ports[0].protocol, MG_PROTO_HTTP, "SE protocol");
        is_str(se->endpoints[0].address, "127.0.0.1", "endpoint address");
        is_str(mg_kvlist_get(&se->endpoints[0].ports, "http"), "9081", "endpoint port map");
    }
    /* PeerAuthentication, RequestAuthentication */
    ok(c->n_peer_authns == 1 && c->peer_authns[0].mode == MG_MTLS_STRICT, "mode: 3 is STRICT");
    if (ok(c->n_request_authns == 1 && c->request_authns[0].n_rules == 1, "one jwt rule")) {
        const struct mg_jwt_rule *j = &c->request_authns[0].rules[0];
        is_str(j->issuer, "https://issuer.example.com", "issuer");
        is_str(j->jwks, "{\"keys\": []}", "inline jwks");
        is_int(j->timeout_ms, 5000, "default JWKS timeout");
        is_str(j->from_headers[0].name, "x-jwt", "fromHeaders name lower-cased");
        is_str(j->from_headers[0].prefix, "Bearer ", "fromHeaders prefix");
        is_str(j->output_claim_to_headers[0].header, "x-sub", "outputClaimToHeaders header");
    }
    /* AuthorizationPolicy */
    if (ok(c->n_authz_policies == 1 && c->authz_policies[0].n_rules == 1, "one authz rule")) {
        const struct mg_authz_policy *a = &c->authz_policies[0];
        const struct mg_authz_rule *r = &a->rules[0];
        is_int(a->action, MG_ACTION_DENY, "DENY");
        ok(a->dry_run, "dry-run annotation");
        ok(a->has_rules && !r->has_from && r->has_to, "has_rules, has_to, no from");
        is_str(r->to[0].paths.v[0], "/admin/{**}", "path template kept");
        is_str(r->to[0].ports.v[0], "8443", "port string");
        is_int(r->n_when, 2, "two conditions");
        is_str(r->when[0].key, "request.headers[x-api-version]", "quotes stripped from header key");
        is_str(r->when[1].key, "request.auth.claims[role][sub]", "quotes stripped from claim key");
        is_str(r->when[1].not_values.v[0], "admin", "notValues");
    }
    /* Secret and credential lookup */
    const struct mg_credential *cr = mg_config_credential(c, "app-cert");
    if (ok(cr != NULL, "credential from a TLS Secret")) {
        is_str(cr->cert_pem, "CERT", "tls.crt decoded");
        is_str(cr->key_pem, "KEY", "tls.key decoded");
        ok(cr->ca_pem == NULL, "no ca.crt");
        is_str(cr->namespace_, "mesh-root", "secret namespace");
    }
    ok(mg_config_credential(c, "nope") == NULL, "unknown credential is NULL");
    /* doc order and positions */
    is_int(c->authz_policies[0].meta.doc_index, 8, "doc_index counts documents");
    mg_config_free(c);
    mg_diags_free(&d);
}

static void good_list_dir_rel(void)
{
    struct mg_diags d = { 0 };
    struct mg_config *c = load_good("list.yaml", &d);

    if (ok(c != NULL && d.n == 0, "kind: List loads without diagnostics")) {
        is_int(c->n_authz_policies, 1, "List item: AuthorizationPolicy");
        is_int(c->n_peer_authns, 1, "List item: PeerAuthentication");
        is_str(c->authz_policies[0].meta.creation_timestamp, "2024-01-01T00:00:00Z",
               "creationTimestamp");
        ok(!c->authz_policies[0].has_rules, "spec: {} has no rules");
        is_str(c->mesh.trust_domain, "cluster.local", "default trust domain without MeshConfig");
        is_str(c->mesh.root_namespace, "istio-system", "default root namespace");
        ok(!c->mesh.present && !c->proxy.present, "no MeshConfig, no Proxy");
    }
    mg_config_free(c);
    mg_diags_free(&d);

    c = load_good("dir", &d);
    if (ok(c != NULL && d.errors == 0 && d.n == 1 &&
           strstr(d.v[0].msg, "4 documents without metadata.namespace land in namespace \"default\""),
           "directory loads (one warning: no namespace)")) {
        const char *want[] = { "a", "a2", "c", "b" };   /* 02-a.yml, 05-c.yaml, 10-b.yaml */
        bool order = c->n_authz_policies == 4;
        for (size_t i = 0; order && i < 4; i++)
            order = strcmp(c->authz_policies[i].meta.name, want[i]) == 0 &&
                    c->authz_policies[i].meta.doc_index == i;
        ok(order, "files read in sorted order, .txt ignored, empty documents skipped");
        is_str(c->authz_policies[0].meta.namespace_, "default", "default namespace");
        ok(strstr(c->authz_policies[2].meta.pos.file, "05-c.yaml") != NULL, "position names file");
    }
    mg_config_free(c);
    mg_diags_free(&d);

    /* -n NAMESPACE, as kubectl apply -n: no warning, every document there */
    char path[1024];
    snprintf(path, sizeof(path), "%s/good/dir", MG_TEST_DATA);
    c = mg_config_load_ns(path, "istio-system", &d);
    if (ok(c != NULL && d.n == 0, "directory loads with a namespace for documents without one")) {
        bool all = c->n_authz_policies == 4;
        for (size_t i = 0; all && i < 4; i++)
            all = strcmp(c->authz_policies[i].meta.namespace_, "istio-system") == 0;
        ok(all, "every document lands in istio-system");
    }
    mg_config_free(c);
    mg_diags_free(&d);
    ok(!mg_config_namespace_ok("Istio_System") && mg_config_namespace_ok("istio-system"),
       "namespace names are DNS-1123 labels");

    c = load_good("rel/proxy.yaml", &d);
    if (ok(c != NULL && d.errors == 0, "relative certificate paths resolve")) {
        const char *chain = c->proxy.identity_cert_chain;
        ok(chain && chain[0] == '/' && mg_has_suffix(chain, "/good/rel/certs/chain.pem"),
           "certificateChain resolved against the YAML file's directory (%s)", chain);
        ok(mg_has_suffix(c->proxy.identity_private_key, "/good/rel/./certs/key.pem"),
           "privateKey resolved");
        is_str(c->proxy.identity_root_certs, "/dev/null", "absolute path kept");
        const struct mg_credential *cr = mg_config_credential(c, "c1");
        ok(cr && mg_has_suffix(cr->certificate, "/good/rel/certs/chain.pem"), "credential path");
    }
    mg_config_free(c);
    mg_diags_free(&d);
}

/* Every file of a directory is read and every problem reported, each with
 * its own file name; a duplicate across files names the first file. */
static void bad_directory(void)
{
    char path[1024];
    struct mg_diags d = { 0 };

    snprintf(path, sizeof(path), "%s/baddir", MG_TEST_DATA);
    struct mg_config *c = mg_config_load(path, &d);
    ok(c == NULL && d.errors == 3, "baddir: three errors (%zu)", d.errors);
    if (d.n == 3) {
        ok(mg_has_suffix(d.v[0].pos.file, "/01-a.yaml") && d.v[0].pos.line == 5 &&
           d.v[0].pos.col == 16 && strstr(d.v[0].msg, "STRIKT"), "bad enum in 01-a.yaml");
        ok(mg_has_suffix(d.v[1].pos.file, "/02-b.yaml") && strstr(d.v[1].msg, "YAML syntax error"),
           "syntax error in 02-b.yaml");
        ok(mg_has_suffix(d.v[2].pos.file, "/03-c.yml") && strstr(d.v[2].msg, "duplicate") &&
           strstr(d.v[2].msg, "01-a.yaml:1"), "duplicate in 03-c.yml names 01-a.yaml:1");
    }
    mg_config_free(c);
    mg_diags_free(&d);
}

static void buffer_api(void)
{
    bad_directory();
    struct mg_diags d = { 0 };
    const char *y = "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\n"
                    "metadata: {name: x, namespace: ns1}\nspec:\n  mtls: {mode: DISABLE}\n";
    struct mg_config *c = mg_config_load_buffer("conf/pa.yaml", y, strlen(y), &d);

    ok(c && c->n_peer_authns == 1 && c->peer_authns[0].mode == MG_MTLS_DISABLE,
       "load_buffer reads a document");
    ok(c && strcmp(c->peer_authns[0].meta.pos.file, "conf/pa.yaml") == 0, "buffer name in positions");
    mg_config_free(c);
    c = mg_config_load_buffer("x.yaml", "kind: Proxy\n", 12, &d);
    ok(c == NULL && d.errors == 1 && d.v[0].pos.line == 1, "missing apiVersion is an error");
    mg_config_free(c);
    mg_diags_free(&d);
    c = mg_config_load("/nonexistent/meshgate", &d);
    ok(c == NULL && d.errors == 1 && strstr(d.v[0].msg, "No such file"), "missing path: strerror");
    mg_diags_free(&d);

    /* a list longer than MG_CFG_MAX_ITEMS (4096) is refused, not processed */
    struct mg_buf b = { 0 };
    mg_buf_adds(&b, "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n"
                    "metadata: {name: big}\nspec:\n  rules:\n  - from:\n    - source:\n"
                    "        principals:\n");
    for (int i = 0; i < 4097; i++)
        mg_buf_printf(&b, "        - p%d\n", i);
    c = mg_config_load_buffer("big.yaml", b.p, b.len, &d);
    ok(!c && d.errors == 1 && strstr(d.v[0].msg, "has 4097 entries, more than the limit of 4096"),
       "4097 principals rejected");
    ok(d.n && d.v[0].pos.line == 9, "at the list");
    mg_buf_free(&b);
    mg_diags_free(&d);

    /* many documents load in linear time (array growth is geometric) */
    for (int i = 0; i < 5000; i++)
        mg_buf_printf(&b, "---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n"
                          "metadata: {name: p%d}\nspec: {}\n", i);
    c = mg_config_load_buffer("many.yaml", b.p, b.len, &d);
    ok(c && c->n_authz_policies == 5000 && strcmp(c->authz_policies[4999].meta.name, "p4999") == 0,
       "5000 documents");
    mg_config_free(c);
    mg_buf_free(&b);
    mg_diags_free(&d);

    struct mg_kvlist want = { 0 }, have = { 0 };
    struct mg_kv a[] = { { (char *)"app", (char *)"x", { 0 } }, { (char *)"v", (char *)"1", { 0 } } };
    want.v = a;
    want.n = 1;
    have.v = a;
    have.n = 2;
    ok(mg_selector_matches(&want, &have), "selector subset matches");
    ok(!mg_selector_matches(&have, &want), "selector with extra label does not match");
    ok(mg_selector_matches(NULL, &have), "absent selector matches");
    is_str(mg_app_proto_name(MG_PROTO_GRPC_WEB), "GRPC-WEB", "protocol name");
}

#ifndef MG_EXAMPLE_DIR
#define MG_EXAMPLE_DIR "etc/meshgate"
#endif

static int quiet_check(int argc, char **argv)
{
    int saved, devnull, rc;

    fflush(stdout);
    fflush(stderr);
    saved = dup(1);
    int saved2 = dup(2);
    devnull = open("/dev/null", O_WRONLY);
    dup2(devnull, 1);
    dup2(devnull, 2);
    rc = mg_cmd_check(argc, argv);
    fflush(stdout);
    fflush(stderr);
    dup2(saved, 1);
    dup2(saved2, 2);
    close(saved);
    close(saved2);
    close(devnull);
    return rc;
}

/* The bundled example, copied next to placeholder certificate files as the
 * demo does (the loader checks that they are readable; their PEM contents
 * are checked when TLS contexts are built): no error allowed. */
static void example_config(void)
{
    char tmpl[] = "/tmp/mg-example-XXXXXX";
    char *dir = mkdtemp(tmpl);
    static const char *const files[] = { "00-mesh.yaml", "10-proxy.yaml", "20-gateway.yaml",
                                         "30-policies.yaml", "40-egress.yaml" };
    static const char *const certs[] = { "cert-chain.pem", "key.pem", "root-cert.pem",
                                         "app.example.com.crt", "app.example.com.key",
                                         "admin.example.com.crt", "admin.example.com.key",
                                         "client-ca.crt" };
    char path[1024];

    if (!ok(dir != NULL, "temp dir for the example"))
        return;
    for (size_t i = 0; i < MG_ARRAY_LEN(files); i++) {
        size_t len;
        snprintf(path, sizeof(path), "%s/%s", MG_EXAMPLE_DIR, files[i]);
        char *data = mg_read_file(path, 1 << 20, &len);
        ok(data != NULL, "example file %s exists", files[i]);
        snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
        FILE *f = fopen(path, "w");
        if (f && data)
            fwrite(data, 1, len, f);
        if (f)
            fclose(f);
        free(data);
    }
    snprintf(path, sizeof(path), "%s/certs", dir);
    mkdir(path, 0700);
    for (size_t i = 0; i < MG_ARRAY_LEN(certs); i++) {
        snprintf(path, sizeof(path), "%s/certs/%s", dir, certs[i]);
        FILE *f = fopen(path, "w");
        if (f)
            fclose(f);
    }

    struct mg_diags d = { 0 };
    struct mg_config *c = mg_config_load(dir, &d);
    if (c)
        mg_config_analyze(c, &d);
    if (!ok(c != NULL && d.errors == 0, "example configuration: no errors (%zu warnings)",
            d.warnings))
        mg_diags_print(&d, stdout);
    if (c) {
        ok(c->proxy.present && strcmp(c->proxy.meta.name, "ingressgateway") == 0,
           "example Proxy ingressgateway");
        is_int(c->n_gateways, 1, "example Gateway");
        ok(c->n_gateways && c->gateways[0].n_servers == 3, "three servers");
        const struct mg_credential *cr = mg_config_credential(c, "admin-tls-cert");
        ok(cr && cr->ca_certificates && mg_has_suffix(cr->ca_certificates, "/certs/client-ca.crt"),
           "admin credential has a client CA, resolved next to the copy");
        ok(c->mesh.outbound_mode == MG_OUTBOUND_REGISTRY_ONLY, "example is REGISTRY_ONLY");
    }
    mg_config_free(c);
    mg_diags_free(&d);

    char *argv_ok[] = { (char *)"check", (char *)"-c", dir, NULL };
    is_int(quiet_check(3, argv_ok), 0, "meshgate check on the example exits 0");
    snprintf(path, sizeof(path), "%s/certs/client-ca.crt", dir);
    unlink(path);
    is_int(quiet_check(3, argv_ok), 1, "meshgate check exits 1 when a file is missing");
    char *argv_bad[] = { (char *)"check", (char *)"-x", NULL };
    is_int(quiet_check(2, argv_bad), 2, "meshgate check exits 2 on bad usage");
    char *argv_extra[] = { (char *)"check", (char *)"extra", NULL };
    is_int(quiet_check(2, argv_extra), 2, "meshgate check exits 2 on a stray argument");

    for (size_t i = 0; i < MG_ARRAY_LEN(certs); i++) {
        snprintf(path, sizeof(path), "%s/certs/%s", dir, certs[i]);
        unlink(path);
    }
    snprintf(path, sizeof(path), "%s/certs", dir);
    rmdir(path);
    for (size_t i = 0; i < MG_ARRAY_LEN(files); i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
        unlink(path);
    }
    rmdir(dir);
}

static void good_files(void)
{
    example_config();
    good_all_kinds();
    good_list_dir_rel();
    buffer_api();
}

int main(void)
{
    data_driven();
    good_files();
    (void)tap_plan;
    (void)tap_diag;
    return tap_done();
}
