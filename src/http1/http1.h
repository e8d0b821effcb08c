/* http1.h - the strict HTTP/1.1 parser and the writer (pure: no I/O, no
 * allocation).
 *
 * Zero-copy: parsed names and values point into the caller's buffer, which
 * must stay unchanged while the result is used. The caller hands in the
 * contiguous bytes received so far; the parser answers "incomplete", "error
 * with this status", or "complete head of N bytes".
 *
 * Strictness: anything ambiguous is an error, even
 * where RFC 9112 allows leniency. Request errors carry the status to send
 * (400, 431, 501, 505) and the connection must then be closed. */
#ifndef MG_HTTP1_H
#define MG_HTTP1_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define MG_H1_MAX_HEADERS 128

struct mg_h1_header {
    const char *name;                   /* as received (compare case-insensitively) */
    size_t name_len;
    const char *value;                  /* leading/trailing SP/HTAB trimmed */
    size_t value_len;
};

enum mg_h1_body {
    MG_H1_BODY_NONE = 0,                /* no body (no CL/TE, or CL: 0) */
    MG_H1_BODY_LENGTH,                  /* content_length bytes follow */
    MG_H1_BODY_CHUNKED,                 /* chunked coding follows */
    MG_H1_BODY_UNTIL_CLOSE,             /* responses only: read until EOF */
};

struct mg_h1_limits {
    size_t max_head;                    /* request line + headers, bytes (431 above) */
    size_t max_headers;                 /* count, <= MG_H1_MAX_HEADERS (431 above) */
};
/* A NULL limits pointer or a 0 field means the default: 60 KiB (the Proxy's
 * maxRequestHeadersKb default) and 100 fields (Envoy's default); a
 * max_headers above MG_H1_MAX_HEADERS is clamped to it. */

struct mg_h1_request {
    const char *method;
    size_t method_len;
    const char *target;                 /* request-target as received */
    size_t target_len;
    int minor;                          /* HTTP/1.<minor>: 0 or 1 */
    struct mg_h1_header headers[MG_H1_MAX_HEADERS];
    size_t n_headers;
    /* Derived from the headers (validated): */
    enum mg_h1_body body;
    uint64_t content_length;
    const char *host;                   /* Host value (or absolute-form authority) */
    size_t host_len;
    bool absolute_form;                 /* target is http(s)://authority/... */
    bool connect;                       /* CONNECT authority-form */
    bool keep_alive;                    /* per version + Connection header */
    bool expect_continue;               /* Expect: 100-continue */
    bool upgrade;                       /* Connection: upgrade + Upgrade header */
};

/* Parse a request head from buf[0..len).
 * Returns the head length (> 0, including the final CRLF CRLF) when complete,
 * 0 when more bytes are needed (len is still within limits), or -1 on error
 * with *status set to 400, 431, 501 or 505. *status is 0 unless -1.
 * Cost is one linear scan of at most max_head bytes, so it may be re-run on
 * the whole buffer each time more bytes arrive; with pipelining, the next
 * request starts at buf + head length + body. A strict prefix of a valid
 * head always gives 0; input that cannot become a request line (e.g. a TLS
 * ClientHello, a lowercase method) gives 400 before the line ends.
 * *req is filled (pointing into buf) only on success; otherwise its fields
 * are unspecified.
 * Statuses: 431 head longer than max_head or more than max_headers fields;
 * 505 a well-formed version other than 1.0/1.1 (HTTP/2.0, HTTP/0.9);
 * 501 a single unknown transfer-coding (Envoy's answer); 400 everything
 * else listed above, and also: an empty line before the request
 * line, a Host value that is not uri-host[:port], userinfo in an absolute
 * target, a scheme other than http/https, '*' with a method other than
 * OPTIONS, CONNECT without authority-form host:port, CONNECT with a
 * Transfer-Encoding or a non-zero Content-Length, a Host on CONNECT or an
 * absolute-form target that differs from the target's authority
 * (case-insensitive; for http/https the default port 80/443 may be left
 * out on either side), an element of Connection that is not a token.
 * host: the target's authority for absolute-form and CONNECT, else the Host
 * value (empty when Host is empty), NULL for HTTP/1.0 without Host.
 * expect_continue: only for HTTP/1.1 (RFC 9110 10.1.1); other Expect values
 * are not errors and are left in the headers (policies see them; no Expect
 * is forwarded upstream, the gateway answers the expectation itself).
 * upgrade: Connection lists "upgrade" and an Upgrade header is present. */
ssize_t mg_h1_parse_request(const char *buf, size_t len, const struct mg_h1_limits *lim,
                            struct mg_h1_request *req, int *status);

struct mg_h1_response {
    int minor;
    int status;                         /* 100..599 */
    const char *reason;
    size_t reason_len;
    struct mg_h1_header headers[MG_H1_MAX_HEADERS];
    size_t n_headers;
    enum mg_h1_body body;
    uint64_t content_length;
    bool keep_alive;
};

/* Parse a response head. `request_method` decides bodiless responses (HEAD;
 * 2xx to CONNECT); 1xx, 204 and 304 have no body. Same return convention as
 * requests; on error the caller answers the client 502. request_method may
 * be NULL (treated as neither HEAD nor CONNECT).
 * Errors (-1, *resp unspecified): bare CR/LF, obs-fold and every field-line
 * rule of requests; a status line other than "HTTP/1.0|1.1 DDD[ reason]"
 * (100..599; the SP before an empty reason may be missing); any repeated
 * Content-Length or Transfer-Encoding; Content-Length with
 * Transfer-Encoding; a Transfer-Encoding other than a single chunked (the
 * proxy could not remove another coding) or on HTTP/1.0; a head over the
 * limits. Framing (RFC 9112 6.3): bodiless as above (content_length still
 * reports a valid Content-Length), else chunked, else Content-Length, else
 * MG_H1_BODY_UNTIL_CLOSE with keep_alive false. A 1xx other than 101 is
 * interim: the caller parses the next head after it. A 101, or a 2xx to
 * CONNECT, turns the connection into a tunnel. */
ssize_t mg_h1_parse_response(const char *buf, size_t len, const struct mg_h1_limits *lim,
                             const char *request_method, size_t method_len,
                             struct mg_h1_response *resp);

/* Incremental chunked-body decoder. The caller feeds the bytes it has; each
 * step says how many of them are framing (to drop), payload (to move on) or
 * trailer section (validated; fields naming framing or routing such as
 * content-length, transfer-encoding, host are never merged into headers). */
enum mg_chunk_step {
    MG_CHUNK_NEED_MORE = 0,             /* *n = 0: feed more bytes */
    MG_CHUNK_FRAMING,                   /* drop *n bytes (size line, CRLF) */
    MG_CHUNK_DATA,                      /* *n payload bytes at the front */
    MG_CHUNK_DONE,                      /* *n bytes (last-chunk + trailers + CRLF) end the body */
    MG_CHUNK_ERROR,                     /* malformed: 400 and close */
};

struct mg_h1_chunked {
    int state;
    uint64_t remaining;                 /* payload bytes left in the current chunk */
    size_t trailer_bytes;               /* bound on the trailer section */
    size_t max_trailer;                 /* 0 = default 8 KiB */
    size_t line_len;                    /* bytes of the current chunk-size line (<= 4 KiB) */
    unsigned digits;                    /* hex digits of the current chunk-size (<= 16) */
};

#define MG_H1_CHUNK_LINE_MAX 4096       /* chunk-size line incl. extensions and CRLF */
#define MG_H1_TRAILER_DEFAULT 8192

/* Reset to "before the first chunk-size line". Sets max_trailer to 0 (the
 * default); a caller wanting another bound sets it after init. */
void mg_h1_chunked_init(struct mg_h1_chunked *c);

/* Decode the front of in[0..len). Returns one step for the first *n bytes;
 * the caller drops or forwards them and calls again with the rest (bytes may
 * arrive split anywhere: partial size lines and trailers are consumed as
 * FRAMING and remembered in *c, so nothing needs to be kept or re-fed).
 * NEED_MORE only when len == 0. DONE's *n ends the body; bytes after it
 * belong to the next message. The trailer section is validated like header
 * fields (no obs-fold, token names, no whitespace before ':', no CTL in
 * values) and bounded by max_trailer, then discarded: the proxy never
 * forwards or merges trailers. After DONE every call returns DONE with
 * *n = 0; after ERROR every call returns ERROR. Accepted size line:
 * 1-16 hex digits, then *( BWS ";" BWS name [ BWS "=" BWS (token /
 * quoted-string) ] ), then CRLF; no sign, no leading spaces, no bare LF. */
enum mg_chunk_step mg_h1_chunked_step(struct mg_h1_chunked *c, const char *in, size_t len,
                                      size_t *n);

/* Find a header by name (case-insensitive); returns the first one or NULL. */
const struct mg_h1_header *mg_h1_find(const struct mg_h1_header *h, size_t n, const char *name);

/* Is this a hop-by-hop header a proxy must not forward (Connection,
 * Keep-Alive, Proxy-Connection, TE, Trailer, Transfer-Encoding, Upgrade,
 * and any listed in the Connection header - the caller checks those)? */
bool mg_h1_is_hop_by_hop(const char *name, size_t len);

/* Does any Connection header in h[0..n) list `name` (case-insensitive)?
 * Such fields are hop-by-hop too (RFC 9110 7.6.1): a proxy removes them
 * together with the fixed list above. */
bool mg_h1_connection_lists(const struct mg_h1_header *h, size_t n, const char *name, size_t len);

/* Is `name` a valid field-name (RFC 9110 token)? Is `value` a valid
 * field-value (no NUL/CR/LF, no other CTL except HTAB)? */
bool mg_h1_valid_name(const char *name, size_t len);
bool mg_h1_valid_value(const char *value, size_t len);

/* ---- Writer (http1_write.c) -------------------------------------------- */

/* Every HTTP/1 head meshgate sends (responses to clients, requests to
 * upstreams and to ext_authz servers) is written with these calls, into a
 * caller-provided buffer: no allocation, no I/O. The caller runs the same
 * calls twice: on a counting cursor (buf NULL) for the exact length, then
 * on a buffer of that length, e.g. space reserved at the end of its output
 * buffer, so that a head is one contiguous piece (one TLS record). Names and
 * values are written as given: the caller passes only validated fields. */
struct mg_h1_out {
    char *buf;                          /* NULL: count only */
    size_t cap;                         /* bytes buf holds */
    size_t len;                         /* bytes the calls so far produce */
};

/* Start a cursor on buf[0..cap); buf NULL counts only (cap is then 0).
 * After any sequence of mg_h1_put_* calls, len is the exact length of the
 * output; when len <= cap, buf[0..len) holds all of it (no NUL is added).
 * When len > cap, a prefix of whole pieces was written and the rest left
 * out: the caller must not send buf, but retry with a buffer of len bytes. */
void mg_h1_out_init(struct mg_h1_out *w, char *buf, size_t cap);

/* "HTTP/1.<minor> DDD Reason" CRLF with the mg_h1_reason phrase; minor 0
 * gives HTTP/1.0, any other value HTTP/1.1. status must be 100..599 (what
 * the parsers and the configuration admit); any other value is written as
 * 500, so that a caller's slip never puts a malformed line on the wire. */
void mg_h1_put_status_line(struct mg_h1_out *w, int minor, int status);

/* method SP [prefix] path ["?" query] SP "HTTP/1.1" CRLF: prefix and query
 * may be NULL (none); prefix, path and query are joined as given. */
void mg_h1_put_request_line(struct mg_h1_out *w, const char *method, const char *prefix,
                            const char *path, const char *query);

/* name ": " value CRLF. */
void mg_h1_put_field(struct mg_h1_out *w, const char *name, const char *value);

/* "content-length: " decimal n CRLF. */
void mg_h1_put_content_length(struct mg_h1_out *w, uint64_t n);

/* The CRLF that ends a head. */
void mg_h1_put_end(struct mg_h1_out *w);

/* Reason phrase sent with a status: the standard phrase (RFC 9110) for the
 * statuses meshgate names (100, 200, 201, 204, 301-304, 307, 308, 400, 401,
 * 403, 404, 408, 413, 421, 431, 500-505), "Unknown" for every other code.
 * Static storage; never NULL. */
const char *mg_h1_reason(int status);

/* Write "HTTP/1.1 DDD Reason\r\n" plus a NUL into buf[0..cap). Returns the
 * line length without the NUL, or 0 (nothing written) when status is not
 * 100..599 or cap is smaller than the length + 1. 64 bytes always suffice. */
size_t mg_h1_status_line(int status, char *buf, size_t cap);

/* Bytes mg_h1_chunk_header may write: 16 hex digits + CRLF. */
#define MG_H1_CHUNK_HEADER_MAX 18

/* Write the chunk-size line for n payload bytes: lowercase hex without
 * leading zeros, then CRLF (no NUL). buf must hold MG_H1_CHUNK_HEADER_MAX
 * bytes. Returns the length written. n = 0 gives the last-chunk "0\r\n";
 * the caller adds the final CRLF (the proxy sends no trailers). */
size_t mg_h1_chunk_header(uint64_t n, char *buf);

/* The CRLF after a chunk's payload, and the whole end of a chunked body
 * the proxy sends: last-chunk, no trailers, CRLF. */
#define MG_H1_CHUNK_END "\r\n"
#define MG_H1_LAST_CHUNK "0\r\n\r\n"

#endif
