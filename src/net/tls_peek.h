/* tls_peek.h - read the ALPN offer of a TLS ClientHello without consuming
 * it, for PeerAuthentication PERMISSIVE (istio-semantics 3): a hello whose
 * ALPN carries an Istio token is mesh mTLS, anything else is plain text.
 *
 * Pure and bounded: only the first TLS record is examined (at most 5 +
 * 16384 bytes), every length is checked against what remains, nothing is
 * allocated. */
#ifndef MG_TLS_PEEK_H
#define MG_TLS_PEEK_H
#include <stdbool.h>
#include <stddef.h>

/* Largest prefix worth peeking: one record header plus a maximal fragment. */
#define MG_TLS_PEEK_MAX (5 + 16384)

struct mg_tls_hello {
    bool has_alpn;                      /* the hello carries an ALPN extension */
    bool istio;                         /* istio, istio-peer-exchange, istio-http/1.0|1.1, istio-h2 */
    bool h2;                            /* "h2" or "istio-h2" offered */
    bool http11;                        /* "http/1.1", "istio-http/1.1" or "istio-http/1.0" offered */
};

/* Parse buf[0..len) as the start of a TLS stream. Returns 1 when the first
 * record holds a complete ClientHello (out filled), 0 when more bytes are
 * needed (the prefix is consistent so far; len < MG_TLS_PEEK_MAX), -1 when
 * it is not a TLS handshake record, not a ClientHello, malformed, or the
 * hello does not fit in the first record. out is zeroed on every call. */
int mg_tls_hello_peek(const unsigned char *buf, size_t len, struct mg_tls_hello *out);

/* Is the ALPN protocol name p[0..n) an Istio mesh token? */
bool mg_tls_alpn_is_istio(const unsigned char *p, size_t n);

#endif
