/* base/tls.h - OpenSSL helpers shared by server and client contexts.
 *
 * Errors: the loaders return 0, or -1 with a message in err (the OpenSSL
 * error queue is read into it and cleared). */
#ifndef MG_BASE_TLS_H
#define MG_BASE_TLS_H
#include <stdbool.h>
#include <stddef.h>
#include <openssl/ssl.h>

/* "WHAT ARG: openssl reason" into err; clears the OpenSSL error queue. */
void mg_tls_err(char *err, size_t len, const char *what, const char *arg);

/* A new context with the options every meshgate context has: an EOF without
 * close_notify is a plain EOF (OpenSSL 3 reports it as an error, and
 * libevent 2.1.12 then reports BEV_EVENT_ERROR), no renegotiation, no
 * compression, the server's cipher order; protocol bounds as given
 * (TLS1_2_VERSION...). NULL when OpenSSL fails. */
SSL_CTX *mg_tls_ctx_common(const SSL_METHOD *m, int min_version, int max_version);

/* Leaf and chain from PEM bytes (a credential Secret). */
int mg_tls_load_pem_chain(SSL_CTX *ctx, const char *pem, char *err, size_t len);
/* Private key from PEM bytes. */
int mg_tls_load_pem_key(SSL_CTX *ctx, const char *pem, char *err, size_t len);
/* Trust anchors from `file`, or from `pem` when file is NULL; with
 * client_list also the CA names a server sends in its CertificateRequest. */
int mg_tls_load_ca(SSL_CTX *ctx, const char *file, const char *pem, bool client_list,
                   char *err, size_t len);
/* Every CRL of `file` into the store, and revocation checked for the peer. */
int mg_tls_load_crl(SSL_CTX *ctx, const char *file, char *err, size_t len);

/* Peer certificate helpers. */
/* First URI SAN into buf ("" when none). Returns buf. */
const char *mg_tls_peer_uri(const SSL *ssl, char *buf, size_t len);
/* Lower-case hex SHA-256 of the peer certificate DER (65 bytes incl. NUL);
 * returns false when there is no peer certificate. */
bool mg_tls_peer_hash(const SSL *ssl, char out[65]);
/* Does any DNS or URI SAN of the peer certificate equal one of `names`? */
bool mg_tls_peer_san_in(const SSL *ssl, char *const *names, size_t n);

#endif
