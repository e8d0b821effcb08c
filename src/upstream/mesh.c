/* mesh.c - ISTIO_MUTUAL origination: the client context that presents the
 * Proxy's identity, the ALPN an Istio sidecar classifies as mesh mTLS, and
 * secure naming (is the server's SPIFFE identity one the destination may
 * have?). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/x509v3.h>
#include "upstream/internal.h"
#include "base/base.h"
#include "http/types.h"
#include "net/types.h"
#include "snapshot/snapshot.h"

SSL_CTX *mg_tls_mesh_client_ctx_new(const struct mg_config *c, char *err, size_t errlen)
{
    const struct mg_proxy *px = &c->proxy;
    if (!px->identity_cert_chain || !px->identity_private_key || !px->identity_root_certs) {
        snprintf(err, errlen, "ISTIO_MUTUAL needs Proxy.spec.identity (certificateChain, privateKey, "
                 "rootCertificates)");
        return NULL;
    }
    SSL_CTX *ctx = mg_tls_ctx_common(TLS_client_method(), TLS1_2_VERSION, TLS1_3_VERSION);
    if (!ctx) {
        mg_tls_err(err, errlen, "SSL_CTX_new", NULL);
        return NULL;
    }
    mg_io_tls_own_records(ctx);         /* TLS 1.3 records after the handshake: mg_io's */
    if (SSL_CTX_use_certificate_chain_file(ctx, px->identity_cert_chain) != 1) {
        mg_tls_err(err, errlen, "cannot load the identity certificateChain", px->identity_cert_chain);
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, px->identity_private_key, SSL_FILETYPE_PEM) != 1) {
        mg_tls_err(err, errlen, "cannot load the identity privateKey", px->identity_private_key);
        goto fail;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        mg_tls_err(err, errlen, "the identity privateKey does not match its certificate", NULL);
        goto fail;
    }
    if (mg_tls_load_ca(ctx, px->identity_root_certs, NULL, false, err, errlen) < 0)
        goto fail;
    /* the chain is checked by OpenSSL; the name (a SPIFFE URI, not the SNI)
     * after the handshake, by mg_mesh_peer_refused */
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_verify_depth(ctx, 8);
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

/* Istio's orders (its ALPN override for mesh clusters): the metadata
 * exchange token first, then the protocol's Istio token, the bare "istio",
 * then the plain protocol, so that a PERMISSIVE Envoy sidecar sees mesh
 * mTLS and any server can still pick a protocol it knows. */
void mg_mesh_set_alpn(SSL *ssl, enum mg_up_h2 h2)
{
    static const unsigned char h1[] = "\x13istio-peer-exchange\x0eistio-http/1.1\x05istio\x08http/1.1";
    static const unsigned char h2only[] = "\x13istio-peer-exchange\x08istio-h2\x05istio\x02h2";
    static const unsigned char both[] = "\x13istio-peer-exchange\x08istio-h2\x0eistio-http/1.1"
                                        "\x05istio\x02h2\x08http/1.1";
    if (h2 == MG_UP_H2_REQUIRED)
        SSL_set_alpn_protos(ssl, h2only, sizeof(h2only) - 1);
    else if (h2 == MG_UP_H2_PREFER)
        SSL_set_alpn_protos(ssl, both, sizeof(both) - 1);
    else
        SSL_set_alpn_protos(ssl, h1, sizeof(h1) - 1);
}

bool mg_mesh_alpn_is_h2(const unsigned char *p, unsigned int l)
{
    return (l == 2 && memcmp(p, "h2", 2) == 0) || (l == 8 && memcmp(p, "istio-h2", 8) == 0);
}

static bool td_in(const struct mg_cluster *cl, const char *td, size_t n)
{
    for (size_t i = 0; i < cl->n_mesh_tds; i++)
        if (strlen(cl->mesh_tds[i]) == n && memcmp(cl->mesh_tds[i], td, n) == 0)
            return true;
    return false;
}

/* "spiffe://td/path": the trust domain's length, 0 when not that shape */
static size_t spiffe_td(const char *v, size_t vl)
{
    if (vl <= 9 || memcmp(v, "spiffe://", 9) != 0)
        return 0;
    const char *slash = memchr(v + 9, '/', vl - 9);
    return slash && slash > v + 9 ? (size_t)(slash - (v + 9)) : 0;
}

/* Does the presented URI (one trust domain of the set) name the expected
 * identity? An identity in an alias trust domain is the same identity, as
 * Istio expands its SAN matchers over trustDomainAliases. */
static bool same_identity(const struct mg_cluster *cl, const char *want, const char *got, size_t gl,
                          size_t gtd)
{
    size_t wl = strlen(want);
    if (wl == gl && memcmp(want, got, gl) == 0)
        return true;
    size_t wtd = spiffe_td(want, wl);
    if (!wtd || !td_in(cl, want + 9, wtd))
        return false;
    const char *wp = want + 9 + wtd, *gp = got + 9 + gtd;
    return strlen(wp) == gl - 9 - gtd && memcmp(wp, gp, gl - 9 - gtd) == 0;
}

const char *mg_mesh_peer_refused(const struct mg_cluster *cl, const SSL *ssl, char *buf, size_t len)
{
    X509 *cert = SSL_get0_peer_certificate(ssl);
    if (!cert || SSL_get_verify_result(ssl) != X509_V_OK) {
        snprintf(buf, len, "secure naming: expected %s, presented no verified certificate",
                 cl->mesh_expected);
        return buf;
    }
    GENERAL_NAMES *gens = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
    int nuri = 0;
    char got[512] = "";
    size_t gl = 0;
    for (int i = 0; gens && i < sk_GENERAL_NAME_num(gens); i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
        if (g->type != GEN_URI)
            continue;
        const char *v = (const char *)ASN1_STRING_get0_data(g->d.uniformResourceIdentifier);
        size_t vl = (size_t)ASN1_STRING_length(g->d.uniformResourceIdentifier);
        if (nuri++ == 0 && vl < sizeof(got) && !memchr(v, '\0', vl)) {
            memcpy(got, v, vl);
            got[vl] = '\0';
            gl = vl;
        }
    }
    GENERAL_NAMES_free(gens);
    size_t gtd = gl ? spiffe_td(got, gl) : 0;
    bool ok = nuri == 1 && gtd && td_in(cl, got + 9, gtd);
    if (ok && cl->n_mesh_ids) {
        ok = false;
        for (size_t i = 0; i < cl->n_mesh_ids && !ok; i++)
            ok = same_identity(cl, cl->mesh_ids[i], got, gl, gtd);
        /* a subjectAltNames entry that is no URI (a DNS name) matches the
         * certificate's names as for SIMPLE/MUTUAL */
        if (!ok)
            ok = mg_tls_peer_san_in(ssl, cl->mesh_ids, cl->n_mesh_ids);
    }
    if (ok)
        return NULL;
    const char *presented = nuri == 0 ? "no URI SAN" : nuri > 1 ? "several URI SANs" : got;
    if (nuri > 1)
        snprintf(buf, len, "secure naming: expected %s, presented %s (first %s)", cl->mesh_expected,
                 presented, got[0] ? got : "?");
    else
        snprintf(buf, len, "secure naming: expected %s, presented %s", cl->mesh_expected, presented);
    return buf;
}

void mg_mesh_cluster_setup(struct mg_cluster *cl, const struct mg_config *cfg, char *const *ids, size_t n)
{
    cl->mesh = true;
    const struct mg_mesh_config *m = &cfg->mesh;
    cl->n_mesh_tds = 1 + m->trust_domain_aliases.n;
    cl->mesh_tds = mg_xcalloc(cl->n_mesh_tds, sizeof(char *));
    cl->mesh_tds[0] = mg_xstrdup(m->trust_domain ? m->trust_domain : "cluster.local");
    for (size_t i = 0; i < m->trust_domain_aliases.n; i++)
        cl->mesh_tds[1 + i] = mg_xstrdup(m->trust_domain_aliases.v[i]);
    struct mg_buf b = { 0 };
    cl->n_mesh_ids = n;
    cl->mesh_ids = n ? mg_xcalloc(n, sizeof(char *)) : NULL;
    for (size_t i = 0; i < n; i++) {
        cl->mesh_ids[i] = mg_xstrdup(ids[i]);
        mg_buf_printf(&b, "%s%s", i ? " or " : "", ids[i]);
    }
    if (!n) {
        mg_buf_adds(&b, "an identity of trust domain ");
        for (size_t i = 0; i < cl->n_mesh_tds; i++)
            mg_buf_printf(&b, "%s%s", i ? " or " : "", cl->mesh_tds[i]);
    }
    cl->mesh_expected = b.p;
}

void mg_mesh_cluster_free(struct mg_cluster *cl)
{
    for (size_t i = 0; i < cl->n_mesh_ids; i++)
        free(cl->mesh_ids[i]);
    free(cl->mesh_ids);
    for (size_t i = 0; i < cl->n_mesh_tds; i++)
        free(cl->mesh_tds[i]);
    free(cl->mesh_tds);
    free(cl->mesh_expected);
}

SSL_CTX *mg_mesh_conn_ctx(const struct mg_cluster *cl, size_t ep, const struct mg_worker *w)
{
    if (!cl->tls || cl->eps[ep].plain)
        return NULL;
    if (cl->mesh && w && w->snap && w->snap->mesh_client)
        return w->snap->mesh_client;
    return cl->tls;
}

void mg_upstream_refused_by_name(struct mg_request *r, const char *why)
{
    r->upstream_reason = "upstream_secure_naming";
    r->upstream_detail = mg_arena_strdup(&r->arena, why);
}
