/* test_dataplane.c - the data plane's pure parts: host patterns, virtual
 * host choice, route matching (first match wins, repeated headers, query,
 * withoutHeaders, regex anchoring), weighted picks; snapshot compilation
 * from YAML (server selection by Host/SNI, route tables, errors with
 * positions); sd_notify to a real datagram socket; access log formats. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include "log/log.h"
#include "net/net.h"
#include "l4/l4.h"
#include "config/config.h"
#include "http/http.h"
#include "route/route.h"
#include "base/base.h"
#include "control/control.h"
#include "snapshot/snapshot.h"
#include "tap.h"
#include "upstream/upstream.h"

static void test_hosts(void)
{
    ok(mg_host_match("*", "x", 1), "* matches anything");
    ok(mg_host_match("*.example.com", "a.example.com", 13), "wildcard matches one label");
    ok(mg_host_match("*.example.com", "a.b.example.com", 15), "wildcard matches deeper names");
    ok(!mg_host_match("*.example.com", "example.com", 11), "wildcard does not match the bare domain");
    ok(mg_host_match("App.Example.COM", "app.example.com", 15), "exact is case-insensitive");
    ok(!mg_host_match("app.example.com", "app.example.co", 14), "exact needs the whole name");
    ok(mg_host_overlap("*.example.com", "a.example.com"), "server wildcard covers a VS host");
    ok(mg_host_overlap("a.example.com", "*.example.com"), "a VS wildcard covers a server host");
    ok(!mg_host_overlap("a.example.com", "b.example.com"), "different names do not overlap");
}

static const char *YAML_CFG =
    "apiVersion: meshgate.io/v1alpha1\n"
    "kind: Proxy\n"
    "metadata: {name: gw, namespace: istio-system, labels: {istio: ingressgateway}}\n"
    "spec: {bindAddress: 127.0.0.1, admin: ''}\n"
    "---\n"
    "apiVersion: networking.istio.io/v1\n"
    "kind: Gateway\n"
    "metadata: {name: gw, namespace: istio-system}\n"
    "spec:\n"
    "  selector: {istio: ingressgateway}\n"
    "  servers:\n"
    "  - port: {number: 8080, name: a, protocol: HTTP}\n"
    "    hosts: [\"a.example.com\", \"*.wild.example.com\"]\n"
    "  - port: {number: 8080, name: b, protocol: HTTP}\n"
    "    hosts: [\"*\"]\n"
    "---\n"
    "apiVersion: networking.istio.io/v1\n"
    "kind: Gateway\n"
    "metadata: {name: unselected, namespace: istio-system}\n"
    "spec:\n"
    "  selector: {istio: other}\n"
    "  servers:\n"
    "  - port: {number: 9999, name: x, protocol: HTTP}\n"
    "    hosts: [\"*\"]\n"
    "---\n"
    "apiVersion: networking.istio.io/v1\n"
    "kind: ServiceEntry\n"
    "metadata: {name: be, namespace: istio-system}\n"
    "spec:\n"
    "  hosts: [be.local]\n"
    "  ports: [{number: 80, name: http, protocol: HTTP}]\n"
    "  resolution: STATIC\n"
    "  endpoints: [{address: 127.0.0.1, ports: {http: 9001}}, {address: '::1'}]\n"
    "---\n"
    "apiVersion: networking.istio.io/v1\n"
    "kind: VirtualService\n"
    "metadata: {name: vs, namespace: istio-system}\n"
    "spec:\n"
    "  hosts: [\"a.example.com\", \"*.wild.example.com\"]\n"
    "  gateways: [gw]\n"
    "  http:\n"
    "  - name: hdr\n"
    "    match: [{headers: {x-v: {exact: two}}}]\n"
    "    route: [{destination: {host: be.local}}]\n"
    "  - name: re\n"
    "    match: [{uri: {regex: \"/r/[0-9]+\"}}, {queryParams: {q: {prefix: ab}}}]\n"
    "    route: [{destination: {host: be.local}, weight: 30}, {destination: {host: nowhere.local, port: {number: 80}}, weight: 70}]\n"
    "  - name: without\n"
    "    match: [{uri: {prefix: /w}, withoutHeaders: {x-no: {}}}]\n"
    "    route: [{destination: {host: be.local}}]\n"
    "  - name: last\n"
    "    route: [{destination: {host: be.local}}]\n";

static struct mg_route_input in_for(const char *path, const char *query, struct mg_kv *h, size_t nh)
{
    struct mg_route_input in = { .method = "GET", .path = path, .query = query,
                                 .authority = "a.example.com", .scheme = "http", .port = 8080,
                                 .headers = h, .n_headers = nh };
    return in;
}

static void test_snapshot_and_routes(void)
{
    struct mg_diags d = { 0 };
    struct mg_config *c = mg_config_load_buffer("t.yaml", YAML_CFG, strlen(YAML_CFG), &d);
    ok(c != NULL, "config loads");
    if (!c) {
        mg_diags_print(&d, stdout);
        mg_diags_free(&d);
        return;
    }
    struct mg_snapshot *s = mg_snapshot_build(c, 2, 7, &d);
    ok(s != NULL, "snapshot builds");
    if (!s) {
        mg_diags_print(&d, stdout);
        mg_diags_free(&d);
        return;
    }
    is_int(s->n_ports, 1, "one port: the unselected Gateway is ignored");
    const struct mg_port *p = mg_snapshot_port(s, 8080);
    ok(p && !p->tls && p->n_srv == 2, "port 8080, plain, two servers");
    if (!p)
        return;
    struct mg_srv *a = mg_port_host_server(p, "a.example.com");
    struct mg_srv *star = mg_port_host_server(p, "zzz.test");
    ok(a && a->cfg->port_name && strcmp(a->cfg->port_name, "a") == 0, "exact host picks server a");
    ok(star && strcmp(star->cfg->port_name, "b") == 0, "unknown host falls to the '*' server");
    ok(mg_port_host_server(p, "x.y.wild.example.com") == a, "wildcard host picks server a");
    ok(mg_port_sni_server(p, NULL) == star, "no SNI: the '*' server");
    ok(mg_router_vhost(&star->routes, "a.example.com") != NULL, "the VS binds to the '*' server too (covered)");
    ok(mg_router_vhost(&star->routes, "zzz.test") == NULL, "no vhost for a host no VS names");
    const struct mg_vhost *vh = mg_router_vhost(&a->routes, "a.example.com");
    ok(vh && vh->n_routes == 4, "vhost a.example.com has the 4 routes");
    if (!vh)
        return;
    ok(mg_router_vhost(&a->routes, "q.wild.example.com") != NULL, "wildcard vhost found");

    struct mg_kv h2[2] = { { .key = "x-v", .value = "one" }, { .key = "x-v", .value = "two" } };
    struct mg_route_input in = in_for("/x", NULL, h2, 2);
    const struct mg_route *r = mg_router_match(vh, &in);
    is_str(r ? r->name : NULL, "hdr", "a repeated header matches on its second value");
    in = in_for("/r/12", NULL, h2, 1);
    r = mg_router_match(vh, &in);
    is_str(r ? r->name : NULL, "re", "regex route");
    in = in_for("/r/12/x", NULL, NULL, 0);
    r = mg_router_match(vh, &in);
    is_str(r ? r->name : NULL, "last", "regex is a full match");
    in = in_for("/other", "z=1&q=abc", NULL, 0);
    r = mg_router_match(vh, &in);
    is_str(r ? r->name : NULL, "re", "second match block (query prefix) of the same route");
    struct mg_kv no[1] = { { .key = "x-no", .value = "" } };
    in = in_for("/w", NULL, NULL, 0);
    r = mg_router_match(vh, &in);
    is_str(r ? r->name : NULL, "without", "withoutHeaders: absent header matches");
    in = in_for("/w", NULL, no, 1);
    r = mg_router_match(vh, &in);
    is_str(r ? r->name : NULL, "last", "withoutHeaders: present header skips the route");

    const struct mg_route *re = vh->routes[1];
    ok(re->n_dests == 2 && re->total_weight == 100, "two weighted destinations");
    ok(re->dests[0].cluster && re->dests[1].cluster == NULL,
       "known host gets a cluster, an unknown one none (503 at run time)");
    int first = 0;
    for (uint32_t i = 0; i < 100; i++)
        if (mg_route_pick(re, i) == &re->dests[0])
            first++;
    is_int(first, 30, "weights 30/70 over the whole range");
    const struct mg_cluster *cl = re->dests[0].cluster;
    is_str(cl->name, "outbound|80||be.local", "cluster name as Envoy's");
    ok(cl->n_eps == 2 && strcmp(cl->eps[0].label, "127.0.0.1:9001") == 0 &&
       strcmp(cl->eps[1].label, "[::1]:80") == 0, "endpoint ports from ports[name] or the service port");
    ok(d.warnings >= 1, "a warning for the destination without ServiceEntry");
    mg_diags_free(&d);

    /* a certificate rotation compiles the same model again: nothing re-read,
     * the policy generation kept, the model alive until its last generation */
    struct mg_diags d2 = { 0 };
    struct mg_snapshot *r2 = mg_snapshot_rotate(s, 8, &d2);
    ok(r2 && r2->cfg == s->cfg && r2->model == s->model, "rotation shares the configuration model");
    ok(r2 && r2->generation == 8 && r2->policy_gen == 7 && !mg_snapshot_recycles(s, r2),
       "rotation: new generation, same policy generation, nothing recycled");
    mg_diags_free(&d2);
    mg_snapshot_unref(s);               /* the older generation goes first */
    const struct mg_port *p2 = r2 ? mg_snapshot_port(r2, 8080) : NULL;
    struct mg_srv *a2 = p2 ? mg_port_host_server(p2, "a.example.com") : NULL;
    ok(a2 && strcmp(a2->cfg->port_name, "a") == 0, "the rotated generation still reads the model");
    mg_snapshot_unref(r2);
}

static void test_snapshot_errors(void)
{
    const char *y =
        "apiVersion: meshgate.io/v1alpha1\nkind: Proxy\n"
        "metadata: {name: gw, namespace: istio-system, labels: {istio: ingressgateway}}\nspec: {}\n"
        "---\napiVersion: networking.istio.io/v1\nkind: Gateway\n"
        "metadata: {name: gw, namespace: istio-system}\nspec:\n  selector: {istio: ingressgateway}\n"
        "  servers:\n"
        "  - port: {number: 8443, name: s, protocol: HTTPS}\n    hosts: [\"a\"]\n"
        "    tls: {mode: SIMPLE, credentialName: missing}\n"
        "  - port: {number: 8443, name: p, protocol: HTTP}\n    hosts: [\"b\"]\n";
    struct mg_diags d = { 0 };
    struct mg_config *c = mg_config_load_buffer("e.yaml", y, strlen(y), &d);
    ok(c != NULL, "error config loads (the problems are semantic)");
    if (!c)
        return;
    struct mg_snapshot *s = mg_snapshot_build(c, 1, 1, &d);
    ok(s == NULL, "snapshot refused");
    bool cred = false, mix = false;
    for (size_t i = 0; i < d.n; i++) {
        if (strstr(d.v[i].msg, "credentialName 'missing'") && d.v[i].pos.line > 0)
            cred = true;
        if (strstr(d.v[i].msg, "mixes TLS and plain-text"))
            mix = true;
    }
    ok(cred, "missing credential reported with a position");
    ok(mix, "TLS and plain text on one port reported");
    mg_diags_free(&d);
}

static void test_sd_notify(void)
{
    char path[] = "/tmp/mg-sd-test-XXXXXX";
    int tfd = mkstemp(path);
    close(tfd);
    unlink(path);
    int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
    ok(bind(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0, "notify socket bound");
    unsetenv("NOTIFY_SOCKET");
    is_int(mg_sd_notify("READY=1"), 0, "no NOTIFY_SOCKET: no-op");
    setenv("NOTIFY_SOCKET", path, 1);
    is_int(mg_sd_notify("READY=1"), 1, "sent to a path socket");
    char buf[128] = "";
    ssize_t n = recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);
    buf[n > 0 ? n : 0] = '\0';
    is_str(buf, "READY=1", "datagram received");
    is_int(mg_sd_notify_reloading(), 1, "RELOADING sent");
    n = recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);
    buf[n > 0 ? n : 0] = '\0';
    ok(strncmp(buf, "RELOADING=1\nMONOTONIC_USEC=", 27) == 0, "RELOADING=1 with MONOTONIC_USEC");
    close(fd);
    unlink(path);
    /* abstract namespace */
    fd = socket(AF_UNIX, SOCK_DGRAM, 0);
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    const char *abs_name = "mg-sd-abstract-test";
    memcpy(sun.sun_path + 1, abs_name, strlen(abs_name));
    ok(bind(fd, (struct sockaddr *)&sun, (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + strlen(abs_name))) == 0,
       "abstract socket bound");
    setenv("NOTIFY_SOCKET", "@mg-sd-abstract-test", 1);
    is_int(mg_sd_notify("STOPPING=1"), 1, "sent to an abstract socket");
    n = recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);
    buf[n > 0 ? n : 0] = '\0';
    is_str(buf, "STOPPING=1", "abstract datagram received");
    close(fd);
    setenv("NOTIFY_SOCKET", "relative/path", 1);
    is_int(mg_sd_notify("READY=1"), -1, "a relative socket path is refused");
    unsetenv("NOTIFY_SOCKET");
}

static void test_accesslog(void)
{
    struct mg_conn c;
    memset(&c, 0, sizeof(c));
    c.principal = c.peer_uri = c.cert_hash = "";   /* as conn.c starts one */
    snprintf(c.peer_str, sizeof(c.peer_str), "10.0.0.1:1234");
    snprintf(c.local_str, sizeof(c.local_str), "127.0.0.1:443");
    snprintf(c.sni, sizeof(c.sni), "a.example.com");
    struct mg_request r;
    memset(&r, 0, sizeof(r));
    r.conn = &c;
    r.method = "GET";
    r.target = "/p\"q?x=1";
    r.protocol = "HTTP/1.1";
    r.status = 403;
    r.flags = "-";
    r.reason = "rbac_policy";
    r.authority = "a.example.com";
    r.start_wall_us = 1764547200123456LL;      /* 2025-12-01T00:00:00.123Z */
    r.start_ms = mg_now_ms();
    struct mg_kv h[1] = { { .key = "user-agent", .value = "ua\x01" } };
    r.h = h;
    r.n_h = 1;
    struct mg_mesh_config mesh;
    memset(&mesh, 0, sizeof(mesh));
    mesh.access_log_encoding = MG_LOG_JSON;
    struct mg_buf b = { 0 };
    mg_accesslog_format(&b, &r, &mesh);
    ok(b.p && strstr(b.p, "\"start_time\":\"2025-12-01T00:00:00.123Z\""), "JSON: start_time in UTC with ms");
    ok(b.p && strstr(b.p, "\"path\":\"/p\\\"q?x=1\""), "JSON: quotes escaped");
    ok(b.p && strstr(b.p, "\"user_agent\":\"ua\\u0001\""), "JSON: control bytes escaped");
    ok(b.p && strstr(b.p, "\"response_code\":403") && strstr(b.p, "\"reason\":\"rbac_policy\""),
       "JSON: code and reason");
    ok(b.p && strstr(b.p, "\"requested_server_name\":\"a.example.com\""), "JSON: SNI");
    ok(b.p && b.p[b.len - 1] == '\n' && !memchr(b.p, '\n', b.len - 1), "JSON: one line");
    mg_buf_free(&b);
    mesh.access_log_encoding = MG_LOG_TEXT;
    mg_accesslog_format(&b, &r, &mesh);
    ok(b.p && strncmp(b.p, "[2025-12-01T00:00:00.123Z] \"GET /p\\x22q?x=1 HTTP/1.1\" 403 - ", 58) == 0,
       "TEXT: Envoy's default layout");
    ok(b.p && strstr(b.p, " rbac_policy\n"), "TEXT: reason at the end");
    mg_buf_free(&b);
    mesh.access_log_format = (char *)"%REQ(:METHOD)% %RESPONSE_CODE% %REQ(USER-AGENT)% %REQUESTED_SERVER_NAME% %BOGUS% 100%%";
    mg_accesslog_format(&b, &r, &mesh);
    /* `meshgate check` refuses an unknown operator; one that got here anyway is absent */
    is_str(b.p, "GET 403 ua\\x01 a.example.com - 100%\n", "custom format with Envoy operators");
    mg_buf_free(&b);
    mesh.access_log_format = (char *)"%REQ(X-NONE?USER-AGENT):2%|%REQ(X-NONE)%|%DOWNSTREAM_TLS_VERSION%|"
                                     "%START_TIME(%Y/%3f)%|%RESPONSE_DURATION%";
    mg_accesslog_format(&b, &r, &mesh);
    is_str(b.p, "ua|-|-|2025/123|-\n", "alternative header, :MAX, absent TLS, START_TIME(FMT)");
    mg_buf_free(&b);
    struct mg_log_json_field jf[] = {
        { (char *)"code", (char *)"%RESPONSE_CODE%" }, { (char *)"tls", (char *)"%DOWNSTREAM_TLS_VERSION%" },
        { (char *)"mix", (char *)"%REQ(:METHOD)% %DOWNSTREAM_TLS_VERSION%" },
        { (char *)"sni", (char *)"%REQUESTED_SERVER_NAME%" },
    };
    mesh.access_log_json = jf;
    mesh.n_access_log_json = 4;
    mg_accesslog_format(&b, &r, &mesh);
    is_str(b.p, "{\"code\":403,\"tls\":null,\"mix\":\"GET -\",\"sni\":\"a.example.com\"}\n",
           "JSON template: a number, null when absent, a mixed string");
    mg_buf_free(&b);
    mesh.n_access_log_json = 0;
    mesh.access_log_json = NULL;
    struct mg_logop op;
    ok(mg_logop_parse("%REQ(A?B):10%x", &op) == 13 && op.max_len == 10 && op.arg_len == 3 &&
       mg_logop_known(&op), "operator with argument and :MAX");
    ok(mg_logop_parse("%START_TIME(%s)%", &op) == 16 && mg_logop_known(&op), "START_TIME(FMT) holds a percent sign");
    ok(mg_logop_parse("%REQ(A%", &op) == 0, "unclosed argument: malformed");
    ok(mg_logop_parse("%BYTES_SENT%", &op) && mg_logop_known(&op), "BYTES_SENT known");
    ok(mg_logop_parse("%BYTES_SENT(x)%", &op) && !mg_logop_known(&op), "an argument where none is taken");
    ok(mg_logop_parse("%REQ%", &op) && !mg_logop_known(&op), "REQ needs its header");
    ok(mg_logop_parse("%NOPE%", &op) && !mg_logop_known(&op), "unknown name");
}

/* A minimal ClientHello with an SNI extension. */
static size_t hello(unsigned char *b, const char *name)
{
    size_t nl = strlen(name), n = 0;
    size_t sni_ext = 2 + 3 + nl;                /* list len + type + len + name */
    size_t exts = 4 + sni_ext;
    size_t body = 2 + 32 + 1 + 2 + 2 + 1 + 1 + 2 + exts;
    b[n++] = 0x16; b[n++] = 3; b[n++] = 1;
    b[n++] = (unsigned char)((body + 4) >> 8); b[n++] = (unsigned char)(body + 4);
    b[n++] = 1; b[n++] = 0; b[n++] = (unsigned char)(body >> 8); b[n++] = (unsigned char)body;
    b[n++] = 3; b[n++] = 3;
    memset(b + n, 0xab, 32); n += 32;
    b[n++] = 0;                                 /* session id */
    b[n++] = 0; b[n++] = 2; b[n++] = 0x13; b[n++] = 0x01;
    b[n++] = 1; b[n++] = 0;                     /* compression */
    b[n++] = (unsigned char)(exts >> 8); b[n++] = (unsigned char)exts;
    b[n++] = 0; b[n++] = 0;                     /* server_name */
    b[n++] = (unsigned char)(sni_ext >> 8); b[n++] = (unsigned char)sni_ext;
    b[n++] = (unsigned char)((sni_ext - 2) >> 8); b[n++] = (unsigned char)(sni_ext - 2);
    b[n++] = 0; b[n++] = (unsigned char)(nl >> 8); b[n++] = (unsigned char)nl;
    memcpy(b + n, name, nl); n += nl;
    return n;
}

static void test_sni_peek(void)
{
    unsigned char b[512];
    char sni[256];
    size_t n = hello(b, "Up.Example.COM");
    is_int(mg_tls_sni_peek(b, n, sni, sizeof(sni)), 1, "complete ClientHello");
    is_str(sni, "up.example.com", "SNI found and lower-cased");
    is_int(mg_tls_sni_peek(b, n - 1, sni, sizeof(sni)), 0, "one byte short: need more");
    is_int(mg_tls_sni_peek(b, 3, sni, sizeof(sni)), 0, "partial record header: need more");
    is_int(mg_tls_sni_peek((const unsigned char *)"GET / HTTP/1.1\r\n", 16, sni, sizeof(sni)), -1,
           "plain text is not TLS");
    char small[8];
    is_int(mg_tls_sni_peek(b, n, small, sizeof(small)), -1, "a name longer than the buffer is refused");
    unsigned char bad[512];
    memcpy(bad, b, n);
    bad[n - 15] = 0xff;                          /* name length beyond the extension */
    is_int(mg_tls_sni_peek(bad, n, sni, sizeof(sni)), -1, "inconsistent lengths refused");
    memcpy(bad, b, n);
    bad[5] = 2;                                  /* ServerHello, not ClientHello */
    is_int(mg_tls_sni_peek(bad, n, sni, sizeof(sni)), -1, "not a ClientHello");
}

static void test_clusters(void)
{
    const char *y =
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\n"
        "metadata: {name: se, namespace: default}\n"
        "spec:\n  hosts: [svc.local]\n"
        "  ports: [{number: 8080, name: web, protocol: HTTP, targetPort: 9090}]\n"
        "  resolution: STATIC\n"
        "  endpoints:\n"
        "  - {address: 10.0.0.1, labels: {version: v1}}\n"
        "  - {address: 10.0.0.2, ports: {web: 7070}, labels: {version: v2}}\n"
        "  - {address: host.example, labels: {version: v2}}\n"
        "---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\n"
        "metadata: {name: dr, namespace: default}\n"
        "spec:\n  host: svc.local\n"
        "  trafficPolicy:\n"
        "    loadBalancer: {simple: ROUND_ROBIN}\n"
        "    connectionPool:\n"
        "      tcp: {maxConnections: 7, connectTimeout: 250ms}\n"
        "      http: {http1MaxPendingRequests: 3, maxRequestsPerConnection: 1}\n"
        "  subsets:\n"
        "  - name: v2\n    labels: {version: v2}\n"
        "    trafficPolicy: {loadBalancer: {simple: RANDOM}}\n";
    struct mg_diags d = { 0 };
    struct mg_config *c = mg_config_load_buffer("c.yaml", y, strlen(y), &d);
    ok(c != NULL, "cluster config loads");
    if (!c) {
        mg_diags_print(&d, stdout);
        mg_diags_free(&d);
        return;
    }
    struct mg_destination dst = { .host = (char *)"svc.local", .port = 8080 };
    struct mg_cluster *cl = mg_cluster_build(c, &dst, 2, &d);
    ok(cl != NULL, "cluster built");
    if (cl) {
        is_int(cl->n_eps, 3, "all endpoints without a subset");
        is_str(cl->eps[0].label, "10.0.0.1:9090", "targetPort when the endpoint names no port");
        is_str(cl->eps[1].label, "10.0.0.2:7070", "endpoint ports[name] wins");
        ok(!cl->eps[2].resolved, "a host name is resolved later (evdns)");
        is_int(cl->lb, MG_LB_ROUND_ROBIN, "loadBalancer from the DestinationRule");
        is_int((long long)cl->max_connections, 7, "tcp.maxConnections");
        is_int((long long)cl->max_pending, 3, "http1MaxPendingRequests");
        is_int((long long)cl->max_requests_per_conn, 1, "maxRequestsPerConnection");
        is_int(cl->connect_timeout_ms, 250, "connectTimeout");
        ok(cl->tls == NULL, "no TLS without a tls setting");
        mg_cluster_free(cl);
    }
    dst.subset = (char *)"v2";
    cl = mg_cluster_build(c, &dst, 1, &d);
    ok(cl && cl->n_eps == 2, "subset v2 keeps the endpoints with version=v2");
    ok(cl && cl->lb == MG_LB_RANDOM, "subset traffic policy overrides the base");
    ok(cl && strcmp(cl->name, "outbound|8080|v2|svc.local") == 0, "subset in the cluster name");
    mg_cluster_free(cl);
    dst.subset = (char *)"v9";
    size_t e0 = d.errors;
    ok(mg_cluster_build(c, &dst, 1, &d) == NULL && d.errors == e0 + 1, "unknown subset is an error");
    dst.subset = NULL;
    dst.host = (char *)"other.local";
    size_t w0 = d.warnings;
    ok(mg_cluster_build(c, &dst, 1, &d) == NULL && d.warnings == w0 + 1,
       "host without ServiceEntry: no cluster, a warning");
    mg_diags_free(&d);
    mg_config_free(c);
}

static void test_host_namespaces(void)
{
    const char *y =
        "apiVersion: meshgate.io/v1alpha1\nkind: Proxy\n"
        "metadata: {name: gw, namespace: istio-system, labels: {istio: ingressgateway}}\nspec: {admin: ''}\n"
        "---\napiVersion: networking.istio.io/v1\nkind: Gateway\n"
        "metadata: {name: gw, namespace: istio-system}\nspec:\n  selector: {istio: ingressgateway}\n"
        "  servers:\n  - port: {number: 8080, name: h, protocol: HTTP}\n"
        "    hosts: [\"team-a/a.example.com\", \"./b.example.com\", \"*/c.example.com\"]\n"
        "---\napiVersion: networking.istio.io/v1\nkind: VirtualService\n"
        "metadata: {name: in-a, namespace: team-a}\n"
        "spec: {hosts: [a.example.com, c.example.com], gateways: [istio-system/gw], http: [{name: ra, directResponse: {status: 200}}]}\n"
        "---\napiVersion: networking.istio.io/v1\nkind: VirtualService\n"
        "metadata: {name: in-b, namespace: team-b}\n"
        "spec: {hosts: [a.example.com, b.example.com], gateways: [istio-system/gw], http: [{name: rb, directResponse: {status: 200}}]}\n"
        "---\napiVersion: networking.istio.io/v1\nkind: VirtualService\n"
        "metadata: {name: in-gw, namespace: istio-system}\n"
        "spec: {hosts: [b.example.com], gateways: [gw], http: [{name: rg, directResponse: {status: 200}}]}\n";
    struct mg_diags d = { 0 };
    struct mg_config *c = mg_config_load_buffer("ns.yaml", y, strlen(y), &d);
    struct mg_snapshot *s = c ? mg_snapshot_build(c, 1, 1, &d) : NULL;
    ok(s != NULL, "namespace-scoped hosts config builds");
    if (!s) {
        mg_diags_print(&d, stdout);
        mg_diags_free(&d);
        return;
    }
    const struct mg_srv *sv = s->ports[0].srv[0];
    const struct mg_vhost *a = mg_router_vhost(&sv->routes, "a.example.com");
    const struct mg_vhost *b = mg_router_vhost(&sv->routes, "b.example.com");
    const struct mg_vhost *cc = mg_router_vhost(&sv->routes, "c.example.com");
    ok(a && a->n_routes == 1 && strcmp(a->routes[0]->name, "ra") == 0,
       "team-a/ host: only the VirtualService in team-a binds");
    ok(b && b->n_routes == 1 && strcmp(b->routes[0]->name, "rg") == 0,
       "./ host: only the Gateway's namespace binds");
    ok(cc && cc->n_routes == 1, "*/ host: any namespace binds");
    mg_diags_free(&d);
    mg_snapshot_unref(s);
}

int main(void)
{
    test_host_namespaces();
    test_sni_peek();
    test_clusters();
    test_hosts();
    test_snapshot_and_routes();
    test_snapshot_errors();
    test_sd_notify();
    test_accesslog();
    return tap_done();
}
