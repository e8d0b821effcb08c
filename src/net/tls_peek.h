/* tls_peek.h - the one ClientHello parser: reads the server name and the
 * ALPN offer of a TLS ClientHello without consuming it. Two readers use it:
 * PASSTHROUGH servers route on the server name (l4/passthrough.c), and a
 * sidecar inbound port in PERMISSIVE mode takes a hello whose ALPN carries
 * an Istio token as mesh mTLS and anything else as plain text
 * (sidecar/inbound.c).
 *
 * Pure and bounded: only the first TLS record is examined (at most 5 +
 * 16384 bytes), every length is checked against what remains, nothing is
 * allocated, buf is only read. */
#ifndef MG_TLS_PEEK_H
#define MG_TLS_PEEK_H
#include <stdbool.h>
#include <stddef.h>

/* Largest prefix worth peeking: one record header plus a maximal fragment. */
#define MG_TLS_PEEK_MAX (5 + 16384)

/* Longest server name reported (a DNS name is at most 253 characters). */
#define MG_TLS_SNI_MAX 255

/* mg_tls_hello_peek's answer. */
enum mg_tls_hello_rc {
    MG_TLS_HELLO_BAD = -1,              /* not a TLS handshake record, not a ClientHello, or malformed */
    MG_TLS_HELLO_MORE = 0,              /* consistent so far: more bytes are needed */
    MG_TLS_HELLO_OK = 1,                /* the first record holds a complete ClientHello */
};

/* Rules a reader adds to the record and handshake framing every reader
 * shares. A rule names what the reader decides on: it refuses the hello
 * when that part is not exactly what TLS servers accept, where a reader
 * that does not look at the part only gets no value for it. */
enum mg_tls_hello_rules {
    /* server_name: one extension holding exactly one host_name entry,
     * non-empty, without NUL, at most MG_TLS_SNI_MAX bytes, as BoringSSL
     * (Envoy's tls_inspector) and OpenSSL take it. A list with more names,
     * another name type or a second extension is refused rather than read
     * for one of its names: the backend may read a different entry than
     * the one routed on. */
    MG_TLS_HELLO_SNI_RULE = 1u << 0,
    /* application_layer_protocol_negotiation: at most one extension, a
     * non-empty list of non-empty names filling it exactly. */
    MG_TLS_HELLO_ALPN_RULE = 1u << 1,
    /* the hello body: a non-empty, even cipher_suites list, a non-empty
     * compression_methods list, and nothing after the extensions block. */
    MG_TLS_HELLO_BODY_RULE = 1u << 2,
};

/* What each reader needs: routing decides on the server name; the mesh
 * detection on the ALPN offer of a well-formed hello. */
#define MG_TLS_HELLO_ROUTE (MG_TLS_HELLO_SNI_RULE)
#define MG_TLS_HELLO_MESH (MG_TLS_HELLO_ALPN_RULE | MG_TLS_HELLO_BODY_RULE)

struct mg_tls_hello {
    /* the host_name of the one well-formed server_name extension,
     * lower-cased; "" when there is none (or, without the SNI rule, when
     * the extension is repeated or malformed) */
    char sni[MG_TLS_SNI_MAX + 1];
    /* the ALPN protocol_name_list as offered (each name behind its one-byte
     * length), pointing into buf; NULL when there is no single well-formed
     * ALPN extension */
    const unsigned char *alpn;
    size_t alpn_len;
    bool has_alpn;                      /* alpn is set */
    bool istio;                         /* istio, istio-peer-exchange, istio-http/1.0|1.1, istio-h2 */
    bool h2;                            /* "h2" or "istio-h2" offered */
    bool http11;                        /* "http/1.1", "istio-http/1.1" or "istio-http/1.0" offered */
};

/* Parse buf[0..len) as the start of a TLS stream under `rules` (a set of
 * enum mg_tls_hello_rules). Returns MG_TLS_HELLO_OK when the first record
 * holds a complete ClientHello (out filled), MG_TLS_HELLO_MORE when more
 * bytes are needed (only while len < MG_TLS_PEEK_MAX), MG_TLS_HELLO_BAD as
 * soon as the bytes present can no longer begin a ClientHello that fits
 * in the first record. A decision other than MORE is final: more bytes
 * never change it.
 *
 * out is cleared first and filled as the walk goes, one extension at a
 * time; after MG_TLS_HELLO_BAD it holds what was read before the flaw (a
 * refused PASSTHROUGH connection is logged with that server name) and
 * must not be acted on. */
int mg_tls_hello_peek(const unsigned char *buf, size_t len, unsigned rules, struct mg_tls_hello *out);

/* Is the ALPN protocol name p[0..n) an Istio mesh token? */
bool mg_tls_alpn_is_istio(const unsigned char *p, size_t n);

#endif
