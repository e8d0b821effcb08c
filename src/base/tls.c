/* tls.c - OpenSSL helpers shared by the server side (net/tls.c) and the
 * upstream client side (upstream/tls_client.c): loading certificates, keys,
 * trust anchors and CRLs into a context, the options every context gets,
 * and reading the peer certificate. */
#include "base/base.h"
#include <stdio.h>
#include <string.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

void mg_tls_err(char *err, size_t len, const char *what, const char *arg)
{
    unsigned long e = ERR_get_error();
    char buf[160] = "";
    if (e)
        ERR_error_string_n(e, buf, sizeof(buf));
    snprintf(err, len, "%s%s%s%s%s", what, arg ? " " : "", arg ? arg : "", e ? ": " : "", buf);
    ERR_clear_error();
}

int mg_tls_load_pem_chain(SSL_CTX *ctx, const char *pem, char *err, size_t len)
{
    BIO *b = BIO_new_mem_buf(pem, -1);
    X509 *leaf = PEM_read_bio_X509(b, NULL, NULL, NULL);
    int rc = -1;
    if (!leaf || SSL_CTX_use_certificate(ctx, leaf) != 1) {
        mg_tls_err(err, len, "bad certificate PEM", NULL);
        goto out;
    }
    X509 *ca;
    while ((ca = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL)
        if (SSL_CTX_add_extra_chain_cert(ctx, ca) != 1) {
            X509_free(ca);
            break;
        }
    ERR_clear_error();                  /* the loop ends on "no start line" */
    rc = 0;
out:
    X509_free(leaf);
    BIO_free(b);
    return rc;
}

int mg_tls_load_pem_key(SSL_CTX *ctx, const char *pem, char *err, size_t len)
{
    BIO *b = BIO_new_mem_buf(pem, -1);
    EVP_PKEY *k = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
    BIO_free(b);
    int rc = (k && SSL_CTX_use_PrivateKey(ctx, k) == 1) ? 0 : -1;
    EVP_PKEY_free(k);
    if (rc < 0)
        mg_tls_err(err, len, "bad private key PEM", NULL);
    return rc;
}

/* Trust anchors from a file or PEM bytes; for servers also the CA names
 * sent in the CertificateRequest. */
int mg_tls_load_ca(SSL_CTX *ctx, const char *file, const char *pem, bool client_list,
                   char *err, size_t len)
{
    X509_STORE *st = SSL_CTX_get_cert_store(ctx);
    STACK_OF(X509_NAME) *names = client_list ? sk_X509_NAME_new_null() : NULL;
    BIO *b = file ? BIO_new_file(file, "r") : BIO_new_mem_buf(pem, -1);
    if (!b) {
        mg_tls_err(err, len, "cannot read CA certificates", file);
        sk_X509_NAME_free(names);
        return -1;
    }
    int n = 0;
    X509 *x;
    while ((x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL) {
        X509_STORE_add_cert(st, x);
        if (names)
            sk_X509_NAME_push(names, X509_NAME_dup(X509_get_subject_name(x)));
        X509_free(x);
        n++;
    }
    ERR_clear_error();
    BIO_free(b);
    if (n == 0) {
        snprintf(err, len, "no CA certificate in %s", file ? file : "credential");
        sk_X509_NAME_pop_free(names, X509_NAME_free);
        return -1;
    }
    if (names)
        SSL_CTX_set_client_CA_list(ctx, names);
    return 0;
}

/* caCrl: every CRL of the file into the store, and revocation checked for
 * the peer's certificate (a client's, or an upstream server's). */
int mg_tls_load_crl(SSL_CTX *ctx, const char *file, char *err, size_t len)
{
    X509_STORE *st = SSL_CTX_get_cert_store(ctx);
    BIO *b = BIO_new_file(file, "r");
    if (!b) {
        mg_tls_err(err, len, "cannot read caCrl", file);
        return -1;
    }
    int n = 0;
    X509_CRL *crl;
    while ((crl = PEM_read_bio_X509_CRL(b, NULL, NULL, NULL)) != NULL) {
        X509_STORE_add_crl(st, crl);
        X509_CRL_free(crl);
        n++;
    }
    ERR_clear_error();
    BIO_free(b);
    if (n == 0) {
        snprintf(err, len, "no CRL in %s", file);
        return -1;
    }
    X509_STORE_set_flags(st, X509_V_FLAG_CRL_CHECK);
    return 0;
}

SSL_CTX *mg_tls_ctx_common(const SSL_METHOD *m, int min_version, int max_version)
{
    SSL_CTX *ctx = SSL_CTX_new(m);
    if (!ctx)
        return NULL;
    SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_RENEGOTIATION |
                        SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_min_proto_version(ctx, min_version);
    SSL_CTX_set_max_proto_version(ctx, max_version);
    /* TLS 1.3 suites in BoringSSL's order, as Envoy's sidecars and
     * gateways choose and offer them (AES-128-GCM first: AES hardware);
     * OpenSSL's own order puts AES-256-GCM first, 40% more AES rounds */
    SSL_CTX_set_ciphersuites(ctx, "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256");
    /* no SSL_MODE_RELEASE_BUFFERS: it frees and re-allocates the 16 KiB
     * record buffers around every read and write of a busy connection */
    return ctx;
}

const char *mg_tls_peer_uri(const SSL *ssl, char *buf, size_t len)
{
    buf[0] = '\0';
    X509 *cert = ssl ? SSL_get0_peer_certificate(ssl) : NULL;
    if (!cert)
        return buf;
    GENERAL_NAMES *gens = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
    for (int i = 0; gens && i < sk_GENERAL_NAME_num(gens); i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
        if (g->type != GEN_URI)
            continue;
        const ASN1_IA5STRING *s = g->d.uniformResourceIdentifier;
        size_t n = (size_t)ASN1_STRING_length(s);
        const unsigned char *d = ASN1_STRING_get0_data(s);
        if (n < len && !memchr(d, '\0', n)) {
            memcpy(buf, d, n);
            buf[n] = '\0';
        }
        break;
    }
    GENERAL_NAMES_free(gens);
    return buf;
}

bool mg_tls_peer_hash(const SSL *ssl, char out[65])
{
    out[0] = '\0';
    X509 *cert = ssl ? SSL_get0_peer_certificate(ssl) : NULL;
    unsigned char md[32];
    unsigned int n = 0;
    if (!cert || X509_digest(cert, EVP_sha256(), md, &n) != 1 || n != 32)
        return false;
    for (unsigned i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
    return true;
}

bool mg_tls_peer_san_in(const SSL *ssl, char *const *names, size_t n)
{
    X509 *cert = ssl ? SSL_get0_peer_certificate(ssl) : NULL;
    if (!cert)
        return false;
    bool hit = false;
    GENERAL_NAMES *gens = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
    for (int i = 0; gens && !hit && i < sk_GENERAL_NAME_num(gens); i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
        const ASN1_IA5STRING *s = g->type == GEN_URI ? g->d.uniformResourceIdentifier
                                  : g->type == GEN_DNS ? g->d.dNSName : NULL;
        if (!s)
            continue;
        size_t vl = (size_t)ASN1_STRING_length(s);
        for (size_t k = 0; k < n; k++)
            if (strlen(names[k]) == vl && memcmp(names[k], ASN1_STRING_get0_data(s), vl) == 0)
                hit = true;
    }
    GENERAL_NAMES_free(gens);
    return hit;
}

const char *mg_tls_peer_principal(const SSL *ssl, bool insecure_skip_verify, char *buf, size_t len)
{
    buf[0] = '\0';
    if (!ssl || insecure_skip_verify || len == 0)
        return buf;
    X509 *cert = SSL_get0_peer_certificate(ssl);
    if (!cert || SSL_get_verify_result(ssl) != X509_V_OK)
        return buf;
    GENERAL_NAMES *gens = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
    const ASN1_IA5STRING *uri = NULL;
    int n_uri = 0;
    for (int i = 0; gens && i < sk_GENERAL_NAME_num(gens); i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
        if (g->type == GEN_URI) {
            n_uri++;
            uri = g->d.uniformResourceIdentifier;
        }
    }
    if (n_uri == 1) {
        size_t n = (size_t)ASN1_STRING_length(uri);
        const unsigned char *d = ASN1_STRING_get0_data(uri);
        if (n > 9 && n - 9 < len && memcmp(d, "spiffe://", 9) == 0 && !memchr(d, '\0', n)) {
            memcpy(buf, d + 9, n - 9);
            buf[n - 9] = '\0';
        }
    }
    GENERAL_NAMES_free(gens);
    return buf;
}
