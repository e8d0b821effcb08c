/* tls_client.c - the client SSL_CTX of a DestinationRule's tls (upstream
 * TLS origination). */
#include "upstream/upstream.h"
#include "upstream/internal.h"
#include <stdio.h>
#include <string.h>
#include "base/base.h"

SSL_CTX *mg_tls_client_ctx_new(const struct mg_config *c, const struct mg_client_tls *t,
                               char *err, size_t errlen)
{
    if (t->mode == MG_CTLS_ISTIO_MUTUAL)
        return mg_tls_mesh_client_ctx_new(c, err, errlen);
    SSL_CTX *ctx = mg_tls_ctx_common(TLS_client_method(), TLS1_2_VERSION, TLS1_3_VERSION);
    if (!ctx) {
        mg_tls_err(err, errlen, "SSL_CTX_new", NULL);
        return NULL;
    }
    mg_io_tls_own_records(ctx);         /* TLS 1.3 records after the handshake: mg_io's */
    const char *certf = t->client_certificate, *keyf = t->private_key, *caf = t->ca_certificates;
    const char *cert_pem = NULL, *key_pem = NULL, *ca_pem = NULL;
    if (t->credential_name) {
        const struct mg_credential *cr = mg_config_credential(c, t->credential_name);
        if (!cr) {
            snprintf(err, errlen, "credentialName '%s' not found", t->credential_name);
            goto fail;
        }
        certf = cr->certificate;
        keyf = cr->private_key;
        cert_pem = cr->cert_pem;
        key_pem = cr->key_pem;
        if (!caf) {
            caf = cr->ca_certificates;
            ca_pem = cr->ca_pem;
        }
    }
    if (t->mode == MG_CTLS_MUTUAL) {
        if (cert_pem ? mg_tls_load_pem_chain(ctx, cert_pem, err, errlen) < 0
                     : (!certf || SSL_CTX_use_certificate_chain_file(ctx, certf) != 1)) {
            if (!cert_pem)
                mg_tls_err(err, errlen, "MUTUAL needs a loadable clientCertificate", certf);
            goto fail;
        }
        if (key_pem ? mg_tls_load_pem_key(ctx, key_pem, err, errlen) < 0
                    : (!keyf || SSL_CTX_use_PrivateKey_file(ctx, keyf, SSL_FILETYPE_PEM) != 1)) {
            if (!key_pem)
                mg_tls_err(err, errlen, "MUTUAL needs a loadable privateKey", keyf);
            goto fail;
        }
    }
    if (t->insecure_skip_verify) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    } else {
        if (!caf && !ca_pem)
            caf = c->mesh.ca_certificates ? c->mesh.ca_certificates
                                          : "/etc/ssl/certs/ca-certificates.crt";
        if (mg_tls_load_ca(ctx, caf, ca_pem, false, err, errlen) < 0)
            goto fail;
        if (t->ca_crl && mg_tls_load_crl(ctx, t->ca_crl, err, errlen) < 0)
            goto fail;
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    }
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}
