/* test_upstream_h2.c - when the upstream speaks HTTP/2: the cluster's mode
 * from the ServiceEntry port protocol and the DestinationRule
 * connectionPool (h2UpgradePolicy, useClientProtocol, http2MaxRequests,
 * maxConcurrentStreams), and the per-request choice (mg_up2_wanted). The
 * wire behaviour is covered end to end by tests/e2e/28-upstream-h2.sh. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "net/net.h"
#include "config/config.h"
#include "http/http.h"
#include "route/route.h"
#include "tap.h"
#include "upstream/upstream.h"
#include "upstream/internal.h"

static const char *YAML_SE =
    "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\n"
    "metadata: {name: se, namespace: default}\n"
    "spec:\n  hosts: [svc.local]\n"
    "  ports:\n"
    "  - {number: 80, name: http, protocol: HTTP}\n"
    "  - {number: 81, name: h2, protocol: HTTP2}\n"
    "  - {number: 82, name: grpc, protocol: GRPC}\n"
    "  - {number: 83, name: web, protocol: GRPC-WEB}\n"
    "  - {number: 84, name: up, protocol: HTTP}\n"
    "  - {number: 85, name: cp, protocol: HTTP}\n"
    "  resolution: STATIC\n"
    "  endpoints: [{address: 10.0.0.1}]\n"
    "---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\n"
    "metadata: {name: dr, namespace: default}\n"
    "spec:\n  host: svc.local\n"
    "  trafficPolicy:\n"
    "    portLevelSettings:\n"
    "    - port: {number: 81}\n"
    "      connectionPool: {http: {http2MaxRequests: 9, maxConcurrentStreams: 5, h2UpgradePolicy: DO_NOT_UPGRADE}}\n"
    "    - port: {number: 84}\n"
    "      connectionPool: {http: {h2UpgradePolicy: UPGRADE}}\n"
    "    - port: {number: 85}\n"
    "      connectionPool: {http: {useClientProtocol: true}}\n";

static struct mg_cluster *build(struct mg_config *c, uint16_t port, struct mg_diags *d)
{
    struct mg_destination dst = { .host = (char *)"svc.local", .port = port };
    return mg_cluster_build(c, &dst, 1, d);
}

/* A request as the codecs leave it, enough for mg_up2_wanted. */
static bool wanted(struct mg_cluster *cl, const char *method, const char *proto, const char *upgrade)
{
    struct mg_worker w;
    memset(&w, 0, sizeof(w));
    struct mg_conn conn;
    memset(&conn, 0, sizeof(conn));
    conn.principal = conn.peer_uri = conn.cert_hash = "";   /* as conn.c starts one */
    conn.w = &w;
    struct mg_wdest wd = { .cluster = cl };
    struct mg_kv h[1] = { { .key = (char *)"upgrade", .value = (char *)upgrade } };
    struct mg_request r;
    memset(&r, 0, sizeof(r));
    r.conn = &conn;
    r.dest = &wd;
    r.method = method;
    r.protocol = proto;
    r.h = h;
    r.n_h = upgrade ? 1 : 0;
    return mg_up2_wanted(&r);
}

int main(void)
{
    struct mg_diags d = { 0 };
    struct mg_config *c = mg_config_load_buffer("h2.yaml", YAML_SE, strlen(YAML_SE), &d);
    ok(c != NULL, "config loads");
    if (!c) {
        mg_diags_print(&d, stdout);
        return tap_done();
    }
    struct mg_cluster *plain = build(c, 80, &d), *h2 = build(c, 81, &d), *grpc = build(c, 82, &d),
                      *web = build(c, 83, &d), *up = build(c, 84, &d), *cp = build(c, 85, &d);
    ok(plain && h2 && grpc && web && up && cp, "clusters built");
    if (plain && h2 && grpc && web && up && cp) {
        is_int(plain->h2, MG_UP_H1, "protocol HTTP: HTTP/1.1");
        is_int(h2->h2, MG_UP_H2_REQUIRED, "protocol HTTP2: HTTP/2 required");
        is_int(grpc->h2, MG_UP_H2_REQUIRED, "protocol GRPC: HTTP/2 required");
        is_int(web->h2, MG_UP_H1, "protocol GRPC-WEB: HTTP/1.1");
        is_int(up->h2, MG_UP_H2_PREFER, "h2UpgradePolicy UPGRADE on an HTTP port: HTTP/2 preferred");
        is_int((long long)h2->max_requests, 9, "http2MaxRequests");
        is_int((long long)h2->max_streams_per_conn, 5, "maxConcurrentStreams");
        ok(cp->use_client_protocol && cp->h2 == MG_UP_H1, "useClientProtocol");

        ok(!wanted(plain, "GET", "HTTP/2", NULL), "HTTP port, HTTP/2 client: HTTP/1.1 upstream");
        ok(wanted(h2, "GET", "HTTP/1.1", NULL), "HTTP2 port, HTTP/1.1 client: HTTP/2 upstream");
        ok(wanted(h2, "GET", "HTTP/1.1", "websocket"), "HTTP2 port: even an upgrade goes HTTP/2");
        ok(wanted(up, "POST", "HTTP/1.0", NULL), "UPGRADE: an HTTP/1.0 client is upgraded");
        ok(!wanted(up, "GET", "HTTP/1.1", "websocket"), "UPGRADE: a websocket upgrade stays HTTP/1.1");
        ok(!wanted(up, "CONNECT", "HTTP/1.1", NULL), "UPGRADE: CONNECT stays HTTP/1.1");
        ok(wanted(cp, "GET", "HTTP/2", NULL), "useClientProtocol: HTTP/2 client -> HTTP/2");
        ok(!wanted(cp, "GET", "HTTP/1.1", NULL), "useClientProtocol: HTTP/1.1 client -> HTTP/1.1");
        up->rt[0].h2_fallback = true;
        ok(!wanted(up, "GET", "HTTP/1.1", NULL), "after an ALPN fallback the worker uses HTTP/1.1");
        h2->rt[0].h2_fallback = true;
        ok(wanted(h2, "GET", "HTTP/1.1", NULL), "no fallback where the port requires HTTP/2");
    }
    mg_cluster_free(plain);
    mg_cluster_free(h2);
    mg_cluster_free(grpc);
    mg_cluster_free(web);
    mg_cluster_free(up);
    mg_cluster_free(cp);
    mg_diags_free(&d);
    mg_config_free(c);
    return tap_done();
}
