/* base/base.h - the shared layer every folder uses: allocation, counted
 * strings, parsers of durations, sizes, ports and CIDRs, diagnostics, the
 * arena, OpenSSL helpers, sd_notify. */
#ifndef MG_BASE_BASE_H
#define MG_BASE_BASE_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdarg.h>
#include <openssl/ssl.h>

/* allocation policy, counted strings, and the only parsers of
 * durations, sizes, ports and CIDRs in meshgate.
 *
 * Allocation failure aborts (mg_oom); every size an attacker controls must be
 * checked against a limit by the caller before allocating. */
#define MG_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

_Noreturn void mg_oom(void);
void *mg_xmalloc(size_t n);
void *mg_xcalloc(size_t n, size_t size);
void *mg_xrealloc(void *p, size_t n);
char *mg_xstrdup(const char *s);
char *mg_xstrndup(const char *s, size_t n);
char *mg_xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Intern a string for the whole process lifetime (file names in positions).
 * Thread-safe. Never returns NULL. */
const char *mg_intern(const char *s);

/* A list of owned strings. */
struct mg_strlist {
    char **v;
    size_t n;
};
void mg_strlist_push(struct mg_strlist *l, const char *s);     /* copies s */
void mg_strlist_free(struct mg_strlist *l);
bool mg_strlist_contains(const struct mg_strlist *l, const char *s);

/* A growable byte buffer (NUL terminated for convenience). */
struct mg_buf {
    char *p;
    size_t len, cap;
};
void mg_buf_add(struct mg_buf *b, const void *data, size_t n);
void mg_buf_adds(struct mg_buf *b, const char *s);
void mg_buf_printf(struct mg_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* s as a Prometheus label value: backslash and double quote escaped, a
 * newline written as \n (the text exposition format). */
void mg_buf_prom_label(struct mg_buf *b, const char *s);
void mg_buf_free(struct mg_buf *b);

/* ASCII case-insensitive helpers (locale independent). */
int mg_strcasecmp(const char *a, const char *b);
int mg_strncasecmp(const char *a, const char *b, size_t n);
/* The value of a hex digit (either case), -1 for any other character. */
int mg_hexval(int c);
bool mg_has_prefix(const char *s, const char *prefix);
bool mg_has_suffix(const char *s, const char *suffix);
void mg_lower(char *s);

/* ---- the request pseudo-headers, as Envoy's header map holds them ----
 *
 * Envoy keeps an HTTP/1.1 request's Host as :authority and gives it the
 * same :path, :method and :scheme an HTTP/2 request carries, so a header
 * condition (AuthorizationPolicy `request.headers[...]`) or header match
 * (VirtualService `headers`, `withoutHeaders`) names the same field with
 * the same value whichever protocol the client spoke. Every lookup of a
 * header by name for policy or routing asks mg_pseudo_header first. */
struct mg_pseudo_headers {
    const char *authority;              /* Host / :authority as received, port kept */
    /* :path as Envoy's matchers see it: the path after normalization (dot
     * segments, slash merging, decoding: Envoy's connection manager
     * rewrites :path in place before any filter), the fragment dropped,
     * the query kept byte for byte; i.e. the path and query forwarded
     * upstream, before a route's rewrite (which the router applies to the
     * upstream request only, after authorization). Authorization runs
     * after request authentication, so it sees a token query parameter
     * already removed; routing, before it, still sees it. "*" for OPTIONS *. */
    const char *path;
    const char *method;
    /* "http" or "https" from the downstream connection, also for an HTTP/2
     * client whatever :scheme it sent: the value x-forwarded-proto and a
     * route's `scheme` match use, which a client cannot choose. */
    const char *scheme;
};

/* Is `name` (`len` bytes, any case) held as a pseudo-header: ":authority",
 * "host" (the same field), ":path", ":method" or ":scheme"? Then *value is
 * its value (NULL when p lacks it) and the regular header fields must not be
 * consulted for that name (an HTTP/1.1 Host field is :authority already):
 * true. Otherwise false: look among the regular fields. */
bool mg_pseudo_header(const struct mg_pseudo_headers *p, const char *name, size_t len,
                      const char **value);

/* Can a request carry a header of this name? False for a pseudo-header name
 * (leading ':') other than the four above, which no request has. */
bool mg_pseudo_header_possible(const char *name, size_t len);

/* Parse a protobuf/Go style duration: "10s", "1.5s", "100ms", "2m", "1h",
 * "1h30m", "500us", "0s". Writes milliseconds (sub-ms rounds up unless 0).
 * Returns 0, or -1 on a malformed or negative value or overflow. */
int mg_parse_duration_ms(const char *s, int64_t *ms);

/* Parse a decimal unsigned integer with no sign, no spaces, in [min,max]. */
int mg_parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out);
/* Parse a TCP port 1..65535 (0 allowed when allow_zero). */
int mg_parse_port(const char *s, bool allow_zero, uint16_t *out);

/* An IPv4 or IPv6 network. v4 addresses are kept as v4 (family AF_INET);
 * a v4-mapped v6 address in mg_cidr_match is compared as v4. */
struct mg_cidr {
    int family;                 /* AF_INET or AF_INET6 */
    uint8_t addr[16];           /* network byte order, masked */
    uint8_t prefix;             /* 0..32 or 0..128 */
};
/* Parse "1.2.3.4", "1.2.3.0/24", "::1", "2001:db8::/32". A single address
 * gets a full prefix. Host bits set under the mask are accepted and cleared
 * (as Envoy does). Returns 0 or -1. */
int mg_cidr_parse(const char *s, struct mg_cidr *out);
/* Does the address (family AF_INET: 4 bytes, AF_INET6: 16 bytes) lie in c? */
bool mg_cidr_match(const struct mg_cidr *c, int family, const uint8_t *addr);

/* An address for policy and logs: family + bytes + port. */
struct mg_addr {
    int family;                 /* 0 = none, AF_INET, AF_INET6 */
    uint8_t ip[16];
    uint16_t port;
};
/* Fill from a sockaddr (v4-mapped v6 becomes v4). Returns 0 or -1. */
int mg_addr_from_sockaddr(struct mg_addr *a, const struct sockaddr *sa);
/* Fill ss with a's address and `port`; returns its length (0: no family). */
socklen_t mg_addr_to_sockaddr(const struct mg_addr *a, uint16_t port, struct sockaddr_storage *ss);
/* Parse an IP literal (no port) into a. Returns 0 or -1. */
int mg_addr_parse_ip(struct mg_addr *a, const char *s);
/* Format the IP (no port) into buf (at least 46 bytes). */
const char *mg_addr_ip_str(const struct mg_addr *a, char *buf, size_t len);
/* v in decimal at out (MG_DEC_MAX bytes of room, no NUL); returns the length. */
#define MG_DEC_MAX 20
size_t mg_fmt_u64(char *out, uint64_t v);
/* Split "host:port" / "[v6]:port" / "host" into host (copied) and port.
 * Returns 0 or -1; *port is 0 when absent. */
int mg_split_host_port(const char *s, char *host, size_t hostlen, uint16_t *port);

/* Monotonic clock in milliseconds, and wall clock in seconds. */
int64_t mg_now_ms(void);
int64_t mg_wall_s(void);

/* Read a whole file (at most max bytes; -1 and errno=EFBIG when larger).
 * The result is NUL terminated; *len excludes the NUL. Caller frees. */
char *mg_read_file(const char *path, size_t max, size_t *len);

/* base64 (standard and url alphabets). Decoders ignore no characters and
 * accept missing padding; return -1 on malformed input. Caller frees. */
int mg_base64_decode(const char *in, size_t inlen, bool url, uint8_t **out, size_t *outlen);
char *mg_base64_encode(const uint8_t *in, size_t inlen, bool url, bool pad);

/* Host pattern match, case-insensitive: "*" matches all, "*.example.com"
 * matches any name ending in ".example.com" (deeper names too), otherwise
 * equality. `name` must not carry a port. */
bool mg_host_match(const char *pattern, const char *name, size_t name_len);

/* xorshift32 over a per-thread state (0 is replaced by a fixed seed): cheap
 * load-balancing and sampling randomness, not for cryptography. */
static inline uint32_t mg_rand32(uint32_t *state)
{
    uint32_t x = *state;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    *state = x ? x : 0x9e3779b9u;
    return *state;
}

/* configuration diagnostics collected into a list (report all).
 *
 * Every message carries FILE:LINE:COL. Printing gives
 *   FILE:LINE:COL: error: message
 * one per line, in the order they were added. */
enum mg_severity { MG_ERROR, MG_WARNING };

/* A position in an input file. `file` comes from mg_intern() (base/base.h) and
 * lives until the process exits, so positions can be copied freely. */
struct mg_pos {
    const char *file;
    int line, col;              /* 1-based; 0 = unknown */
};

struct mg_diag {
    enum mg_severity sev;
    struct mg_pos pos;
    char *msg;                  /* owned */
};

struct mg_diags {
    struct mg_diag *v;
    size_t n, cap;
    size_t errors, warnings;
};

/* Add a message; formats like printf. Never fails (aborts on OOM). */
void mg_diag_add(struct mg_diags *d, enum mg_severity sev, struct mg_pos pos,
                 const char *fmt, ...) __attribute__((format(printf, 4, 5)));
#define mg_error(d, pos, ...) mg_diag_add((d), MG_ERROR, (pos), __VA_ARGS__)
#define mg_warning(d, pos, ...) mg_diag_add((d), MG_WARNING, (pos), __VA_ARGS__)

/* Print every message as FILE:LINE:COL: error|warning: msg. */
void mg_diags_print(const struct mg_diags *d, FILE *out);
/* Free the messages (not the struct itself). */
void mg_diags_free(struct mg_diags *d);

/* meshgate's one bump allocator: memory that dies all at once.
 *
 * Users: the per-request arena (struct mg_request's `arena`, freed when the
 * request is released) and a compiled policy set (freed with the set).
 *
 * Contract:
 * - A zero-initialised struct mg_arena is an empty arena with chunks of
 *   MG_ARENA_CHUNK bytes; mg_arena_init() chooses another chunk size.
 * - Every allocation returns memory aligned for any type (max_align_t: 16
 *   bytes on the 64-bit targets), never NULL, also for size 0 (a distinct
 *   pointer). Allocation failure aborts the process through mg_oom(), as
 *   mg_xmalloc() does; sizes an attacker controls must be checked against
 *   a limit by the caller before allocating.
 * - Memory is owned by the arena: never free() a pointer it returned. Every
 *   pointer stays valid until mg_arena_free().
 * - Growth is bounded by what the caller asks for: chunks have a fixed size
 *   (no doubling). A request that does not fit in what is left of the
 *   current chunk starts a new chunk, or, when larger than half a chunk,
 *   gets a block of its own and leaves the current chunk in use; so less
 *   than half of any chunk is ever left unused.
 * - Not thread-safe: one arena belongs to one thread at a time (a request
 *   to its worker; a policy set is only read after it is built). */
/* The default chunk: a typical request (its headers, path, the upstream
 * request's edits and the log fields) fits in one. */
#define MG_ARENA_CHUNK 8192

struct mg_arena_chunk;
struct mg_arena {
    struct mg_arena_chunk *head;        /* every chunk and block, newest first */
    char *cur;                          /* free space in the current chunk */
    size_t left;
    size_t chunk;                       /* chunk size; 0 = MG_ARENA_CHUNK */
};

/* Makes *a an empty arena whose chunks are `chunk` bytes (0 = MG_ARENA_CHUNK).
 * Only on an arena that owns nothing (new, zeroed or freed). */
void mg_arena_init(struct mg_arena *a, size_t chunk);

/* n bytes, uninitialised. */
void *mg_arena_alloc(struct mg_arena *a, size_t n);
/* n bytes, zeroed. */
void *mg_arena_zalloc(struct mg_arena *a, size_t n);
/* A copy of n bytes at p (p may be NULL when n is 0). */
void *mg_arena_memdup(struct mg_arena *a, const void *p, size_t n);
/* A NUL-terminated copy of the n bytes at s (s need not be terminated). */
char *mg_arena_strndup(struct mg_arena *a, const char *s, size_t n);
/* A copy of the NUL-terminated s. */
char *mg_arena_strdup(struct mg_arena *a, const char *s);
/* The formatted string, of any length; "" if the format cannot be encoded. */
char *mg_arena_printf(struct mg_arena *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The strings up to the first NULL, joined (per request, where printf's
 * "%s%s%s" cost some 1 000 instructions); and a number in decimal. */
char *mg_arena_cat(struct mg_arena *a, ...) __attribute__((sentinel));
char *mg_arena_u64(struct mg_arena *a, unsigned long long v);
char *mg_arena_vprintf(struct mg_arena *a, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

/* Frees everything the arena returned, at once. The arena is then empty and
 * may be used again, with the same chunk size. */
void mg_arena_free(struct mg_arena *a);

/* OpenSSL helpers shared by server and client contexts.
 *
 * Errors: the loaders return 0, or -1 with a message in err (the OpenSSL
 * error queue is read into it and cleared). */
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
/* The peer principal of a TLS connection for policy: the verified client
 * certificate's single URI SAN without "spiffe://", written to buf (NUL
 * terminated). Empty when there is no certificate, it did not verify, the
 * server accepts unverified certificates (insecure_skip_verify), or the
 * certificate has zero or several URI SANs, or a non-spiffe URI. Returns
 * buf. */
const char *mg_tls_peer_principal(const SSL *ssl, bool insecure_skip_verify, char *buf, size_t len);

/* systemd readiness notification, written by hand (no libsystemd).
 *
 * One datagram per call to $NOTIFY_SOCKET (a path, or an abstract socket
 * when it starts with '@'). Without $NOTIFY_SOCKET every call is a no-op, so
 * the daemon behaves the same outside systemd. */
/* Send `state` (e.g. "READY=1", "RELOADING=1\nMONOTONIC_USEC=...").
 * Returns 1 when sent, 0 when there is no notify socket, -1 on error
 * (errno set); errors are never fatal to the caller. */
int mg_sd_notify(const char *state);

/* Send RELOADING=1 with the MONOTONIC_USEC systemd expects for reloads. */
int mg_sd_notify_reloading(void);

/* ---- DNS: a worker's resolver with an answer cache (dns.c) ----
 * One per worker, used on that worker's thread only. A name is answered,
 * in order, as an IP literal, from the hosts table (mg_dns_load_hosts),
 * from the cache, else by a query on the worker's evdns base (never
 * blocking). Answers are cached by (name, family asked) for their TTL
 * clamped to MIN..MAX; a name that does not exist or has no address is
 * cached NEGATIVE_TTL seconds so a missing name does not hammer the
 * resolver; a timeout or server failure is not cached. The cache holds at
 * most max_entries names: a new one evicts an expired or the
 * soonest-expiring entry. AF_UNSPEC asks for IPv4, then IPv6 when the name
 * has no IPv4 address. */
#define MG_DNS_MAX_ADDRS 8
#define MG_DNS_MIN_TTL_S 1
#define MG_DNS_MAX_TTL_S 300
#define MG_DNS_NEGATIVE_TTL_S 5
#define MG_DNS_CACHE_ENTRIES 1024

struct evdns_base;
struct mg_dns;
struct mg_dns_req;
/* err 0: n >= 1 addresses (port 0); err -1: no address (n 0). */
typedef void (*mg_dns_cb)(int err, const struct mg_addr *addrs, size_t n, void *arg);

/* evdns may be NULL: only literals and the hosts table answer. */
struct mg_dns *mg_dns_new(struct evdns_base *evdns, size_t max_entries);
void mg_dns_free(struct mg_dns *d);
/* Adds an /etc/hosts-style file to the hosts table. Returns 0 or -1. */
int mg_dns_load_hosts(struct mg_dns *d, const char *path);
/* Resolves name (d NULL: fails); cb runs before the return (result NULL) when the answer
 * is at hand, else later on the worker's loop (result: a handle for
 * mg_dns_cancel, valid until cb runs). */
struct mg_dns_req *mg_dns_resolve(struct mg_dns *d, const char *name, int family,
                                  mg_dns_cb cb, void *arg);
/* Cb will not run; only before cb ran. */
void mg_dns_cancel(struct mg_dns_req *r);
/* Queries sent so far (each family's query counts one). */
uint64_t mg_dns_queries(const struct mg_dns *d);

/* The cache alone (exposed for tests). lookup: 1 a positive answer in
 * out[0..*n), -1 a cached negative answer, 0 nothing (an expired entry is
 * dropped). store: n 0 records a negative answer. */
struct mg_dnscache;
struct mg_dnscache *mg_dnscache_new(size_t max_entries);
void mg_dnscache_free(struct mg_dnscache *c);
int mg_dnscache_lookup(struct mg_dnscache *c, const char *name, int family, int64_t now_ms,
                       struct mg_addr *out, size_t *n);
void mg_dnscache_store(struct mg_dnscache *c, const char *name, int family,
                       const struct mg_addr *addrs, size_t n, int ttl_s, int64_t now_ms);
size_t mg_dnscache_size(const struct mg_dnscache *c);

/* ---- mg_io: a connection's buffered transport (io.c) ----
 *
 * A non-blocking socket, TLS (an SSL it owns) or plain, with an input and
 * an output evbuffer, on the caller's event_base. The calls mirror the
 * bufferevent ones the connections used, with these contracts:
 * - Output appended to mg_io_get_output (or mg_io_write) while EV_WRITE is
 *   enabled is written at the end of the running callback of this io, or
 *   at the end of the loop's current pass when appended from elsewhere: a
 *   head and a body appended together leave in one batch. TLS records are
 *   up to 16 KiB, small pieces at the head of the output joined.
 * - Callbacks run from the event loop only, never from inside an mg_io
 *   call. readcb after a batch of reads when the input holds at least the
 *   low watermark; reading pauses while the input is at or above the high
 *   watermark (0 = none) and resumes as the consumer drains it. writecb
 *   after a write that leaves the output at or below the write low
 *   watermark. eventcb with MG_IO_CONNECTED (after connect(2), and after
 *   the TLS handshake when there is an SSL: once), or MG_IO_EOF / ERROR /
 *   TIMEOUT with MG_IO_READING or MG_IO_WRITING; errno holds a socket
 *   error, mg_io_get_ssl_error the first OpenSSL error.
 * - Timeouts as bufferevent's: the read timeout runs while reading is
 *   enabled and not paused, the write timeout while output is pending;
 *   both during connect and handshake; each restarts on progress, and one
 *   that fires disables its direction.
 * - mg_io_free closes the fd and frees the SSL (no close_notify: call
 *   mg_io_shutdown first for one; never SSL_shutdown, which does not know
 *   the records of a TLS 1.3 client connection past its handshake: they
 *   are sealed and opened by mg_io itself, OpenSSL's record layer unused,
 *   when its SSL_CTX went through mg_io_tls_own_records). It is safe from inside the io's own
 *   callbacks (the memory goes when the callback returns).
 * - With both directions disabled the fd leaves the event loop (another
 *   event may then watch it); enabling one brings it back. */
struct mg_io;
struct event_base;
struct evbuffer;
struct timeval;
typedef void (*mg_io_data_cb)(struct mg_io *io, void *arg);
typedef void (*mg_io_event_cb)(struct mg_io *io, short what, void *arg);
#define MG_IO_READING 0x01
#define MG_IO_WRITING 0x02
#define MG_IO_EOF 0x10
#define MG_IO_ERROR 0x20
#define MG_IO_TIMEOUT 0x40
#define MG_IO_CONNECTED 0x80
enum mg_io_start {
    MG_IO_OPEN,                         /* plain, or TLS already established */
    MG_IO_ACCEPTING,                    /* TLS server handshake to run */
    MG_IO_CONNECTING,                   /* TLS client handshake after mg_io_connect */
};
/* fd may be -1 until mg_io_connect; ownership of fd and ssl passes on
 * success only. NULL when out of memory. */
struct mg_io *mg_io_socket_new(struct event_base *base, int fd, SSL *ssl, enum mg_io_start st);
/* Non-blocking connect (a socket is made when fd is -1); a refusal comes
 * as an event. -1 when no socket could be made or the call failed. */
int mg_io_connect(struct mg_io *io, const struct sockaddr *sa, int len);
struct evbuffer *mg_io_get_input(struct mg_io *io);
struct evbuffer *mg_io_get_output(struct mg_io *io);
int mg_io_write(struct mg_io *io, const void *p, size_t n);
void mg_io_enable(struct mg_io *io, short what);     /* EV_READ | EV_WRITE */
void mg_io_disable(struct mg_io *io, short what);
short mg_io_get_enabled(const struct mg_io *io);
void mg_io_setcb(struct mg_io *io, mg_io_data_cb readcb, mg_io_data_cb writecb,
                 mg_io_event_cb eventcb, void *arg);
void mg_io_setwatermark(struct mg_io *io, short what, size_t low, size_t high);
void mg_io_set_timeouts(struct mg_io *io, const struct timeval *rd, const struct timeval *wr);
/* Bytes read (written) per wakeup before yielding to other connections. */
void mg_io_set_max_single_read(struct mg_io *io, size_t n);
void mg_io_set_max_single_write(struct mg_io *io, size_t n);
int mg_io_getfd(const struct mg_io *io);
SSL *mg_io_get_ssl(const struct mg_io *io);
unsigned long mg_io_get_ssl_error(struct mg_io *io);    /* and forgets it */
void mg_io_free(struct mg_io *io);
/* close_notify to the peer, best effort (one write, now): before mg_io_free. */
void mg_io_shutdown(struct mg_io *io);
/* The TLS 1.3 client connections of ctx have their records sealed and
 * opened by mg_io after the handshake (base/tls13.c: cheaper per record
 * than OpenSSL 3.0's record layer). */
void mg_io_tls_own_records(SSL_CTX *ctx);
/* Whether io's records are now sealed and opened by mg_io itself. */
bool mg_io_records_own(const struct mg_io *io);

#endif
