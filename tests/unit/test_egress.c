/* test_egress.c - the egress registry: which ServiceEntries this Proxy
 * sees (exportTo), exact and wildcard hosts, ports, addresses for IP
 * literals, and the verdict under REGISTRY_ONLY and ALLOW_ANY. */
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include "tap.h"
#include "egress/egress.h"

#define PROXY \
    "apiVersion: meshgate.io/v1alpha1\nkind: Proxy\n" \
    "metadata: {name: egw, namespace: egress}\nspec: {mode: gateway}\n---\n"
#define MESH(mode) \
    "apiVersion: meshgate.io/v1alpha1\nkind: MeshConfig\nmetadata: {name: mesh}\n" \
    "spec: {outboundTrafficPolicy: {mode: " mode "}}\n---\n"

static const char *entries =
    "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\n"
    "metadata: {name: api, namespace: egress}\n"
    "spec:\n  hosts: [API.Example.com]\n  location: MESH_EXTERNAL\n  resolution: DNS\n"
    "  ports: [{number: 443, name: tls, protocol: TLS}, {number: 80, name: http, protocol: HTTP}]\n"
    "---\n"
    "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\n"
    "metadata: {name: wild, namespace: other}\n"
    "spec:\n  hosts: ['*.wild.test']\n  resolution: NONE\n"
    "  ports: [{number: 443, name: tls, protocol: TLS}]\n"
    "---\n"
    "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\n"
    "metadata: {name: deep, namespace: other}\n"
    "spec:\n  hosts: ['*.a.wild.test']\n  resolution: NONE\n"
    "  ports: [{number: 443, name: tls, protocol: TLS}]\n"
    "---\n"
    "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\n"
    "metadata: {name: hidden, namespace: other}\n"
    "spec:\n  hosts: [hidden.test]\n  exportTo: [.]\n  resolution: DNS\n"
    "  ports: [{number: 443, name: tls, protocol: TLS}]\n"
    "---\n"
    "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\n"
    "metadata: {name: mine, namespace: egress}\n"
    "spec:\n  hosts: [mine.test]\n  exportTo: [.]\n  resolution: DNS\n"
    "  ports: [{number: 443, name: tls, protocol: TLS}]\n"
    "---\n"
    "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\n"
    "metadata: {name: named, namespace: other}\n"
    "spec:\n  hosts: [named.test]\n  exportTo: [egress]\n  resolution: DNS\n"
    "  ports: [{number: 443, name: tls, protocol: TLS}]\n"
    "---\n"
    "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\n"
    "metadata: {name: db, namespace: egress}\n"
    "spec:\n  hosts: [db.internal]\n  addresses: [10.1.0.0/16, '2001:db8::/32']\n"
    "  resolution: STATIC\n  ports: [{number: 5432, name: pg, protocol: TCP}]\n"
    "  endpoints: [{address: 127.0.0.1}]\n";

static struct mg_config *load(const char *mode_doc, struct mg_diags *d)
{
    size_t n = strlen(PROXY) + strlen(mode_doc) + strlen(entries) + 1;
    char *buf = malloc(n);
    snprintf(buf, n, "%s%s%s", PROXY, mode_doc, entries);
    struct mg_config *c = mg_config_load_buffer("egress.yaml", buf, strlen(buf), d);
    free(buf);
    return c;
}

static void expect(const struct mg_egress *e, const char *host, uint16_t port,
                   enum mg_egress_entrance en, bool allow, enum mg_egress_reason reason,
                   const char *se_name, int status)
{
    struct mg_egress_verdict v;
    bool got = mg_egress_check(e, host, port, en, &v);
    ok(got == allow && v.allow == allow, "%s:%u via %s: %s", host ? host : "(null)", port,
       mg_egress_entrance_name(en), allow ? "allowed" : "refused");
    is_str(mg_egress_reason_name(v.reason), mg_egress_reason_name(reason), "%s:%u reason", host ? host : "(null)", port);
    is_str(v.se ? v.se->meta.name : NULL, se_name, "%s:%u entry", host ? host : "(null)", port);
    if (!allow)
        is_int(v.status, status, "%s:%u refusal status", host ? host : "(null)", port);
}

int main(void)
{
    struct mg_diags d = { 0 };
    struct mg_config *c = load(MESH("REGISTRY_ONLY"), &d);
    ok(c != NULL, "configuration loads");
    if (!c) {
        mg_diags_print(&d, stdout);
        return tap_done();
    }
    struct mg_egress *e = mg_egress_build(c, &d);
    ok(mg_egress_registry_only(e), "REGISTRY_ONLY is read from MeshConfig");

    const enum mg_egress_entrance C = MG_EGRESS_CONNECT, F = MG_EGRESS_FORWARD_HTTP,
        S = MG_EGRESS_SNI, R = MG_EGRESS_ROUTE;
    /* exact hosts, case-insensitive, trailing dot */
    expect(e, "api.example.com", 443, C, true, MG_EGRESS_REGISTERED, "api", 0);
    expect(e, "API.EXAMPLE.COM.", 80, F, true, MG_EGRESS_REGISTERED, "api", 0);
    expect(e, "api.example.com", 8443, C, false, MG_EGRESS_PORT_NOT_REGISTERED, NULL, 403);
    expect(e, "api.example.com", 8443, F, false, MG_EGRESS_PORT_NOT_REGISTERED, NULL, 502);
    expect(e, "x.api.example.com", 443, C, false, MG_EGRESS_NOT_REGISTERED, NULL, 403);
    expect(e, "example.com", 443, S, false, MG_EGRESS_NOT_REGISTERED, NULL, 0);
    expect(e, "evil.test", 80, R, false, MG_EGRESS_NOT_REGISTERED, NULL, 502);
    /* wildcards: subdomains of any depth, never the apex; the longest wins */
    expect(e, "b.wild.test", 443, S, true, MG_EGRESS_REGISTERED, "wild", 0);
    expect(e, "x.y.wild.test", 443, C, true, MG_EGRESS_REGISTERED, "wild", 0);
    expect(e, "x.a.wild.test", 443, C, true, MG_EGRESS_REGISTERED, "deep", 0);
    expect(e, "a.wild.test", 443, C, true, MG_EGRESS_REGISTERED, "wild", 0);
    expect(e, "wild.test", 443, C, false, MG_EGRESS_NOT_REGISTERED, NULL, 403);
    expect(e, ".wild.test", 443, C, false, MG_EGRESS_BAD_TARGET, NULL, 403);
    expect(e, "b.wild.test", 80, C, false, MG_EGRESS_PORT_NOT_REGISTERED, NULL, 403);
    /* exportTo: "." of another namespace is invisible, "." of ours and our name are seen */
    expect(e, "hidden.test", 443, C, false, MG_EGRESS_NOT_REGISTERED, NULL, 403);
    expect(e, "mine.test", 443, C, true, MG_EGRESS_REGISTERED, "mine", 0);
    expect(e, "named.test", 443, C, true, MG_EGRESS_REGISTERED, "named", 0);
    /* IP literals: only inside some entry's addresses, on its port */
    expect(e, "10.1.2.3", 5432, C, true, MG_EGRESS_REGISTERED, "db", 0);
    expect(e, "10.2.0.1", 5432, C, false, MG_EGRESS_ADDRESS_NOT_REGISTERED, NULL, 403);
    expect(e, "10.1.2.3", 443, C, false, MG_EGRESS_PORT_NOT_REGISTERED, NULL, 403);
    expect(e, "2001:db8::5", 5432, C, true, MG_EGRESS_REGISTERED, "db", 0);
    expect(e, "127.0.0.1", 5432, C, false, MG_EGRESS_ADDRESS_NOT_REGISTERED, NULL, 403);
    expect(e, "db.internal", 5432, C, true, MG_EGRESS_REGISTERED, "db", 0);
    /* names that end in a digit are still names */
    expect(e, "host1", 443, C, false, MG_EGRESS_NOT_REGISTERED, NULL, 403);
    /* bad targets */
    expect(e, "", 443, C, false, MG_EGRESS_BAD_TARGET, NULL, 403);
    expect(e, NULL, 443, C, false, MG_EGRESS_BAD_TARGET, NULL, 403);
    expect(e, "api.example.com", 0, R, true, MG_EGRESS_REGISTERED, "api", 0);
    expect(e, "evil.test", 0, R, false, MG_EGRESS_NOT_REGISTERED, NULL, 502);
    char longname[400];
    memset(longname, 'a', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    expect(e, longname, 443, C, false, MG_EGRESS_BAD_TARGET, NULL, 403);
    expect(NULL, "api.example.com", 443, C, false, MG_EGRESS_BAD_TARGET, NULL, 403);
    mg_egress_free(e);
    mg_config_free(c);
    mg_diags_free(&d);

    /* ALLOW_ANY (the default): everything passes, a match is still named */
    struct mg_diags d2 = { 0 };
    c = load("", &d2);
    ok(c != NULL, "configuration without MeshConfig loads");
    if (c) {
        e = mg_egress_build(c, &d2);
        ok(!mg_egress_registry_only(e), "ALLOW_ANY is the default");
        expect(e, "evil.test", 80, F, true, MG_EGRESS_ALLOW_ANY, NULL, 0);
        expect(e, "10.9.9.9", 443, C, true, MG_EGRESS_ALLOW_ANY, NULL, 0);
        expect(e, "api.example.com", 443, C, true, MG_EGRESS_REGISTERED, "api", 0);
        expect(e, "api.example.com", 22, C, true, MG_EGRESS_ALLOW_ANY, NULL, 0);
        expect(e, "", 443, C, false, MG_EGRESS_BAD_TARGET, NULL, 403);
        mg_egress_free(e);
        mg_config_free(c);
    }
    mg_diags_free(&d2);

    /* denyResolvedCidrs: off by default, then v4 and v6 ranges */
    struct mg_diags d4 = { 0 };
    const char *deny = "apiVersion: meshgate.io/v1alpha1\nkind: Proxy\n"
        "metadata: {name: egw, namespace: egress}\n"
        "spec: {egress: {denyResolvedCidrs: [169.254.0.0/16, '::1', 127.0.0.0/8]}}\n";
    c = mg_config_load_buffer("deny.yaml", deny, strlen(deny), &d4);
    ok(c != NULL, "denyResolvedCidrs loads");
    if (c) {
        e = mg_egress_build(c, &d4);
        const uint8_t meta[4] = { 169, 254, 169, 254 }, lo[4] = { 127, 0, 0, 2 },
            pub[4] = { 93, 184, 216, 34 };
        uint8_t v6lo[16] = { 0 }, v6other[16] = { 0x20, 0x01, 0x0d, 0xb8 };
        v6lo[15] = 1;
        ok(mg_egress_resolved_denied(e, AF_INET, meta), "the metadata address is denied");
        ok(mg_egress_resolved_denied(e, AF_INET, lo), "loopback is denied");
        ok(!mg_egress_resolved_denied(e, AF_INET, pub), "a public address is not");
        ok(mg_egress_resolved_denied(e, AF_INET6, v6lo), "::1 is denied");
        ok(!mg_egress_resolved_denied(e, AF_INET6, v6other), "another v6 address is not");
        is_str(mg_egress_log_reason(MG_EGRESS_CONNECT, MG_EGRESS_RESOLVED_DENIED),
               "egress_connect_resolved_denied", "the log reason names the entrance");
        mg_egress_free(e);
        mg_config_free(c);
    }
    mg_diags_free(&d4);
    ok(!mg_egress_resolved_denied(NULL, AF_INET, (const uint8_t[4]){ 127, 0, 0, 1 }),
       "no registry denies nothing");

    /* unusable entries are skipped with a warning, not an error */
    struct mg_diags d3 = { 0 };
    const char *bad = PROXY MESH("REGISTRY_ONLY")
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\n"
        "metadata: {name: star, namespace: egress}\n"
        "spec:\n  hosts: ['*']\n  resolution: NONE\n"
        "  ports: [{number: 443, name: tls, protocol: TLS}]\n";
    c = mg_config_load_buffer("bad.yaml", bad, strlen(bad), &d3);
    if (c) {
        size_t w0 = d3.warnings;
        e = mg_egress_build(c, &d3);
        ok(d3.warnings > w0 && d3.errors == 0, "a bare \"*\" host is ignored with a warning");
        expect(e, "anything.test", 443, C, false, MG_EGRESS_NOT_REGISTERED, NULL, 403);
        mg_egress_free(e);
        mg_config_free(c);
    } else {
        ok(1, "a bare \"*\" host is refused by the loader");
    }
    mg_diags_free(&d3);
    return tap_done();
}
