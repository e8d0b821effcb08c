/* test_mesh_upstream.c - ISTIO_MUTUAL clusters: which destinations get it
 * (DestinationRule mode, port-level and subset policies, auto mTLS per
 * endpoint, an explicit mode winning), the SNI, the identities secure
 * naming accepts and in which order they are taken, and the check itself
 * on real handshakes in memory (trust domain aliases, another trust
 * domain, another service account, several or no URI SANs, another root),
 * with the ALPN list offered. End to end: tests/e2e/65-mesh-chain.sh. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include "config/config.h"
#include "tap.h"
#include "upstream/upstream.h"
#include "upstream/internal.h"

static char dir[] = "/tmp/mg-test-mesh-XXXXXX";
static long serial = 1;

/* A certificate for key, signed by (issuer, ikey) or self-signed; `sans`
 * in OpenSSL's config syntax ("URI:spiffe://...,DNS:..."), NULL = none. */
static X509 *cert_new(EVP_PKEY *key, X509 *issuer, EVP_PKEY *ikey, const char *cn, const char *sans,
                      bool ca)
{
    X509 *x = X509_new();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
    X509_gmtime_adj(X509_getm_notBefore(x), -60);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, key);
    X509_NAME *n = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : n);
    X509V3_CTX v3;
    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, issuer ? issuer : x, x, NULL, NULL, 0);
    const char *bc = ca ? "critical,CA:TRUE" : "critical,CA:FALSE";
    X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &v3, NID_basic_constraints, bc);
    X509_add_ext(x, e, -1);
    X509_EXTENSION_free(e);
    if (sans) {
        e = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, sans);
        X509_add_ext(x, e, -1);
        X509_EXTENSION_free(e);
    }
    X509_sign(x, ikey ? ikey : key, EVP_sha256());
    return x;
}

static void write_pem(const char *name, X509 *x, EVP_PKEY *k)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f)
        abort();
    if (x)
        PEM_write_X509(f, x);
    if (k)
        PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL);
    fclose(f);
}

static EVP_PKEY *ca_key, *ca2_key;
static X509 *ca, *ca2;

/* A server presenting a leaf with `sans` from (issuer, ikey); the
 * client side is a connection of cl. Returns whether the handshake
 * completed; *refused gets secure naming's verdict (NULL = accepted);
 * *alpn the list the client offered. */
static char offered[128];
static size_t offered_len;

static int record_alpn(SSL *s, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
                       unsigned int inlen, void *arg)
{
    (void)s;
    (void)arg;
    memcpy(offered, in, inlen < sizeof(offered) ? inlen : sizeof(offered));
    offered_len = inlen;
    (void)out;
    (void)outlen;
    return SSL_TLSEXT_ERR_NOACK;
}

static bool handshake(const struct mg_cluster *cl, X509 *issuer, EVP_PKEY *ikey, const char *sans,
                      const char **refused, char *buf, size_t len)
{
    EVP_PKEY *k = EVP_EC_gen("P-256");
    X509 *leaf = cert_new(k, issuer, ikey, "server", sans, false);
    SSL_CTX *sctx = SSL_CTX_new(TLS_server_method());
    SSL_CTX_use_certificate(sctx, leaf);
    SSL_CTX_use_PrivateKey(sctx, k);
    SSL_CTX_add_extra_chain_cert(sctx, X509_dup(issuer));
    SSL_CTX_set_alpn_select_cb(sctx, record_alpn, NULL);
    SSL *c = SSL_new(cl->tls), *s = SSL_new(sctx);
    BIO *b1, *b2;
    BIO_new_bio_pair(&b1, 0, &b2, 0);
    SSL_set_bio(c, b1, b1);
    SSL_set_bio(s, b2, b2);
    SSL_set_connect_state(c);
    SSL_set_accept_state(s);
    SSL_set_tlsext_host_name(c, cl->sni);
    mg_mesh_set_alpn(c, MG_UP_H1);
    int rc = 0, rs = 0;
    for (int i = 0; i < 20 && (rc != 1 || rs != 1); i++) {
        rc = SSL_do_handshake(c);
        rs = SSL_do_handshake(s);
        if ((rc <= 0 && SSL_get_error(c, rc) != SSL_ERROR_WANT_READ) ||
            (rs <= 0 && SSL_get_error(s, rs) != SSL_ERROR_WANT_READ))
            break;
    }
    bool done = rc == 1;
    *refused = done ? mg_mesh_peer_refused(cl, c, buf, len) : NULL;
    SSL_free(c);
    SSL_free(s);
    SSL_CTX_free(sctx);
    X509_free(leaf);
    EVP_PKEY_free(k);
    return done;
}

#define YAML_FMT \
    "apiVersion: meshgate.io/v1alpha1\nkind: Proxy\nmetadata: {name: gw, namespace: istio-system}\n" \
    "spec:\n  identity: {certificateChain: %s/id.pem, privateKey: %s/id.key, rootCertificates: %s/root.pem}\n" \
    "%s" \
    "---\napiVersion: meshgate.io/v1alpha1\nkind: MeshConfig\n" \
    "spec: {trustDomain: cluster.local, trustDomainAliases: [old.local]%s}\n" \
    "---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\n" \
    "metadata: {name: svc, namespace: shop}\n" \
    "spec:\n  hosts: [svc.shop.svc.cluster.local]\n  location: MESH_INTERNAL\n" \
    "  ports: [{number: 80, name: http, protocol: HTTP}, {number: 81, name: h2, protocol: HTTP2}]\n" \
    "  resolution: STATIC\n" \
    "  endpoints:\n" \
    "  - {address: 10.0.0.1, serviceAccount: cart, labels: {version: v1}}\n" \
    "  - {address: 10.0.0.2, serviceAccount: cart-v2, labels: {version: v2}}\n" \
    "---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\n" \
    "metadata: {name: svc, namespace: shop}\n" \
    "spec:\n  host: svc.shop.svc.cluster.local\n" \
    "  trafficPolicy:\n    tls: {mode: ISTIO_MUTUAL}\n" \
    "    portLevelSettings:\n    - port: {number: 81}\n      tls: {mode: ISTIO_MUTUAL, sni: pinned.example}\n" \
    "  subsets:\n  - name: v1\n    labels: {version: v1}\n" \
    "  - name: v2\n    labels: {version: v2}\n" \
    "    trafficPolicy: {tls: {mode: ISTIO_MUTUAL, subjectAltNames: [\"spiffe://cluster.local/ns/shop/sa/pinned\"]}}\n" \
    "---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\n" \
    "metadata: {name: named, namespace: shop}\n" \
    "spec:\n  hosts: [named.shop.svc.cluster.local]\n  location: MESH_INTERNAL\n" \
    "  ports: [{number: 80, name: http, protocol: HTTP}]\n  resolution: STATIC\n" \
    "  subjectAltNames: [\"spiffe://cluster.local/ns/shop/sa/from-se\"]\n" \
    "  endpoints: [{address: 10.0.0.3, serviceAccount: cart}]\n" \
    "---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\n" \
    "metadata: {name: named, namespace: shop}\n" \
    "spec:\n  host: named.shop.svc.cluster.local\n" \
    "  trafficPolicy: {tls: {mode: ISTIO_MUTUAL, subjectAltNames: [\"spiffe://cluster.local/ns/shop/sa/from-dr\"]}}\n" \
    "---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\n" \
    "metadata: {name: auto, namespace: shop}\n" \
    "spec:\n  hosts: [auto.shop.svc.cluster.local, off.shop.svc.cluster.local, simple.shop.svc.cluster.local]\n" \
    "  location: MESH_INTERNAL\n" \
    "  ports: [{number: 80, name: http, protocol: HTTP}]\n  resolution: STATIC\n" \
    "  endpoints:\n" \
    "  - {address: 10.0.0.4, labels: {security.istio.io/tlsMode: istio}}\n" \
    "  - {address: 10.0.0.5}\n" \
    "---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\n" \
    "metadata: {name: off, namespace: shop}\n" \
    "spec:\n  host: off.shop.svc.cluster.local\n  trafficPolicy: {tls: {mode: DISABLE}}\n" \
    "---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\n" \
    "metadata: {name: simple, namespace: shop}\n" \
    "spec:\n  host: simple.shop.svc.cluster.local\n  trafficPolicy: {tls: {mode: SIMPLE, caCertificates: %s/root.pem}}\n"

static struct mg_config *load(const char *proxy_extra, const char *mesh_extra, bool identity,
                              struct mg_diags *d)
{
    char *y = mg_xasprintf(YAML_FMT, dir, dir, dir, proxy_extra, mesh_extra, dir);
    if (!identity) {                    /* drop the identity line */
        char *p = strstr(y, "  identity:"), *e = p ? strchr(p, '\n') : NULL;
        if (p && e)
            memmove(p, e + 1, strlen(e + 1) + 1);
    }
    struct mg_config *c = mg_config_load_buffer("mesh.yaml", y, strlen(y), d);
    free(y);
    return c;
}

static struct mg_cluster *build(struct mg_config *c, const char *host, uint16_t port, const char *subset,
                                struct mg_diags *d)
{
    struct mg_destination dst = { .host = (char *)host, .port = port, .subset = (char *)subset };
    return mg_cluster_build(c, &dst, 1, d);
}

static bool contains(const char *s, const char *sub)
{
    return s && strstr(s, sub);
}

int main(void)
{
    if (!mkdtemp(dir))
        return 1;
    ca_key = EVP_EC_gen("P-256");
    ca = cert_new(ca_key, NULL, NULL, "mesh root", NULL, true);
    ca2_key = EVP_EC_gen("P-256");
    ca2 = cert_new(ca2_key, NULL, NULL, "other root", NULL, true);
    EVP_PKEY *idk = EVP_EC_gen("P-256");
    X509 *id = cert_new(idk, ca, ca_key, "gw", "URI:spiffe://cluster.local/ns/istio-system/sa/ingressgateway", false);
    write_pem("root.pem", ca, NULL);
    write_pem("id.pem", id, NULL);
    write_pem("id.key", NULL, idk);

    struct mg_diags d = { 0 };
    struct mg_config *c = load("", "", true, &d);
    if (!ok(c != NULL, "config loads")) {
        mg_diags_print(&d, stdout);
        return tap_done();
    }
    const char *H = "svc.shop.svc.cluster.local";
    struct mg_cluster *base = build(c, H, 80, NULL, &d), *v1 = build(c, H, 80, "v1", &d),
                      *v2 = build(c, H, 80, "v2", &d), *pl = build(c, H, 81, NULL, &d),
                      *named = build(c, "named.shop.svc.cluster.local", 80, NULL, &d),
                      *au = build(c, "auto.shop.svc.cluster.local", 80, NULL, &d),
                      *off = build(c, "off.shop.svc.cluster.local", 80, NULL, &d),
                      *simple = build(c, "simple.shop.svc.cluster.local", 80, NULL, &d);
    if (!ok(base && v1 && v2 && pl && named && au && off && simple, "clusters built")) {
        mg_diags_print(&d, stdout);
        return tap_done();
    }
    ok(base->mesh && base->tls && !base->auto_mtls, "DestinationRule ISTIO_MUTUAL: a mesh cluster");
    is_str(base->sni, "outbound_.80_._.svc.shop.svc.cluster.local", "SNI outbound_.<port>_.<subset>_.<host>");
    is_str(v1->sni, "outbound_.80_.v1_.svc.shop.svc.cluster.local", "subset in the SNI");
    is_str(pl->sni, "pinned.example", "a port-level tls.sni wins");
    ok(pl->mesh && pl->h2 == MG_UP_H2_REQUIRED, "port-level ISTIO_MUTUAL on an HTTP2 port: HTTP/2 over mesh mTLS");
    is_int(base->n_mesh_ids, 2, "no SANs: the endpoints' service accounts");
    is_str(base->mesh_ids[0], "spiffe://cluster.local/ns/shop/sa/cart", "... in the entry's namespace");
    is_str(base->mesh_ids[1], "spiffe://cluster.local/ns/shop/sa/cart-v2", "... each once");
    is_int(v1->n_mesh_ids, 1, "a subset: its endpoints' accounts only");
    is_str(v1->mesh_ids[0], "spiffe://cluster.local/ns/shop/sa/cart", "... cart");
    ok(v2->n_mesh_ids == 1 && strcmp(v2->mesh_ids[0], "spiffe://cluster.local/ns/shop/sa/pinned") == 0,
       "a subset policy's subjectAltNames win over the accounts");
    ok(named->n_mesh_ids == 1 && strcmp(named->mesh_ids[0], "spiffe://cluster.local/ns/shop/sa/from-se") == 0,
       "the ServiceEntry's subjectAltNames come first");
    ok(au->mesh && au->auto_mtls && au->n_eps == 2 && !au->eps[0].plain && au->eps[1].plain,
       "auto mTLS: the labelled endpoint over ISTIO_MUTUAL, the other in plain text");
    is_int(au->n_mesh_ids, 0, "auto mTLS without accounts: any identity of the trust domain");
    ok(contains(au->mesh_expected, "cluster.local or old.local"), "... and of its aliases (%s)",
       au->mesh_expected);
    ok(!off->tls && !off->mesh, "an explicit DISABLE wins over the label");
    ok(simple->tls && !simple->mesh, "an explicit SIMPLE wins over the label");

    /* secure naming on handshakes */
    char buf[768];
    const char *why;
    bool done = handshake(base, ca, ca_key, "URI:spiffe://cluster.local/ns/shop/sa/cart", &why, buf, sizeof(buf));
    ok(done && !why, "the endpoint's account: accepted");
    static const char h1_alpn[] = "\x13istio-peer-exchange\x0eistio-http/1.1\x05istio\x08http/1.1";
    ok(offered_len == sizeof(h1_alpn) - 1 && memcmp(offered, h1_alpn, offered_len) == 0,
       "ALPN offered in Istio's order: istio-peer-exchange, istio-http/1.1, istio, http/1.1");
    done = handshake(base, ca, ca_key, "URI:spiffe://old.local/ns/shop/sa/cart-v2", &why, buf, sizeof(buf));
    ok(done && !why, "the same account in an alias trust domain: accepted");
    done = handshake(base, ca, ca_key, "URI:spiffe://other.domain/ns/shop/sa/cart", &why, buf, sizeof(buf));
    ok(done && contains(why, "presented spiffe://other.domain/ns/shop/sa/cart"), "another trust domain: refused (%s)",
       why ? why : "accepted");
    done = handshake(base, ca, ca_key, "URI:spiffe://cluster.local/ns/shop/sa/reviews", &why, buf, sizeof(buf));
    ok(done && contains(why, "expected spiffe://cluster.local/ns/shop/sa/cart or spiffe://cluster.local/ns/shop/sa/cart-v2, "
                             "presented spiffe://cluster.local/ns/shop/sa/reviews"),
       "another account: refused, both named (%s)", why ? why : "accepted");
    done = handshake(base, ca, ca_key, "URI:spiffe://cluster.local/ns/shop/sa/cart,URI:spiffe://cluster.local/ns/x/sa/y",
                     &why, buf, sizeof(buf));
    ok(done && contains(why, "several URI SANs"), "two URI SANs: refused");
    done = handshake(base, ca, ca_key, "DNS:svc.shop.svc.cluster.local", &why, buf, sizeof(buf));
    ok(done && contains(why, "presented no URI SAN"), "no URI SAN: refused");
    done = handshake(base, ca2, ca2_key, "URI:spiffe://cluster.local/ns/shop/sa/cart", &why, buf, sizeof(buf));
    ok(!done, "a server certificate of another root: the handshake fails");
    done = handshake(au, ca, ca_key, "URI:spiffe://old.local/ns/any/sa/thing", &why, buf, sizeof(buf));
    ok(done && !why, "no expected accounts: any identity of an alias trust domain");
    done = handshake(v2, ca, ca_key, "URI:spiffe://cluster.local/ns/shop/sa/cart-v2", &why, buf, sizeof(buf));
    ok(done && why, "the subset's subjectAltNames, not the account, decide");

    mg_cluster_free(base);
    mg_cluster_free(v1);
    mg_cluster_free(v2);
    mg_cluster_free(pl);
    mg_cluster_free(named);
    mg_cluster_free(au);
    mg_cluster_free(off);
    mg_cluster_free(simple);
    mg_config_free(c);
    mg_diags_free(&d);

    /* enableAutoMtls: false */
    struct mg_diags d2 = { 0 };
    c = load("", ", enableAutoMtls: false", true, &d2);
    struct mg_cluster *cl = c ? build(c, "auto.shop.svc.cluster.local", 80, NULL, &d2) : NULL;
    ok(cl && !cl->tls && !cl->mesh, "enableAutoMtls false: the labelled endpoint gets plain text");
    mg_cluster_free(cl);
    mg_config_free(c);
    mg_diags_free(&d2);

    /* no Proxy.spec.identity */
    struct mg_diags d3 = { 0 };
    c = load("", "", false, &d3);
    size_t w0 = d3.warnings;
    cl = c ? build(c, H, 80, NULL, &d3) : NULL;
    ok(c && !cl && d3.errors == 0 && d3.warnings == w0 + 1,
       "ISTIO_MUTUAL without an identity: no cluster (503), a warning");
    cl = c ? build(c, "auto.shop.svc.cluster.local", 80, NULL, &d3) : NULL;
    ok(cl && !cl->tls && d3.warnings == w0 + 2, "auto mTLS without an identity: plain text, a warning");
    mg_cluster_free(cl);
    mg_config_free(c);
    mg_diags_free(&d3);

    /* an identity key that is not the certificate's: an error */
    EVP_PKEY *other = EVP_EC_gen("P-256");
    write_pem("id.key", NULL, other);
    struct mg_diags d4 = { 0 };
    c = load("", "", true, &d4);
    cl = c ? build(c, H, 80, NULL, &d4) : NULL;
    ok(c && !cl && d4.errors == 1, "a mismatched identity pair: an error");
    mg_cluster_free(cl);
    mg_config_free(c);
    mg_diags_free(&d4);
    EVP_PKEY_free(other);

    char path[256];
    const char *files[] = { "root.pem", "id.pem", "id.key" };
    for (size_t i = 0; i < 3; i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
        unlink(path);
    }
    rmdir(dir);
    X509_free(id);
    EVP_PKEY_free(idk);
    X509_free(ca);
    X509_free(ca2);
    EVP_PKEY_free(ca_key);
    EVP_PKEY_free(ca2_key);
    return tap_done();
}
