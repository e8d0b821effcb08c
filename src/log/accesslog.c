/* accesslog.c - access log lines, Envoy field names. The fd number never
 * changes once opened (reopen = dup2 onto it), so workers write with no
 * coordination; O_APPEND keeps concurrent lines whole. */
#include "log/log.h"
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include "net/types.h"
#include "http/types.h"
#include "route/types.h"
#include "upstream/types.h"
#include "snapshot/snapshot.h"
#include "geoip/geoip.h"

static atomic_int log_fd = -1;
static _Thread_local struct mg_buf line_buf;
static char *log_path;                  /* main thread only */

static int open_path(const char *path)
{
    if (strcmp(path, "/dev/stdout") == 0)
        return dup(STDOUT_FILENO);
    if (strcmp(path, "/dev/stderr") == 0)
        return dup(STDERR_FILENO);
    return open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
}

int mg_accesslog_open(const char *path)
{
    if (!path || !*path) {
        mg_accesslog_close();
        return 0;
    }
    int nfd = open_path(path);
    if (nfd < 0)
        return -1;
    int cur = atomic_load(&log_fd);
    if (cur >= 0) {
        dup2(nfd, cur);                 /* atomic switch under the workers' feet */
        close(nfd);
    } else {
        atomic_store(&log_fd, nfd);
    }
    if (!log_path || strcmp(log_path, path) != 0) {
        free(log_path);
        log_path = mg_xstrdup(path);
    }
    return 0;
}

int mg_accesslog_reopen(void)
{
    if (!log_path)
        return 0;
    char *p = mg_xstrdup(log_path);
    int rc = mg_accesslog_open(p);
    free(p);
    return rc;
}

void mg_accesslog_close(void)
{
    /* keep the number reserved: point it at /dev/null rather than closing it
     * while a worker may be writing */
    int cur = atomic_load(&log_fd);
    if (cur >= 0) {
        int nfd = open("/dev/null", O_WRONLY | O_CLOEXEC);
        if (nfd >= 0) {
            dup2(nfd, cur);
            close(nfd);
        }
    }
    free(log_path);
    log_path = NULL;
}

/* printf into the line buffer without the heap round trip of mg_buf_printf */
__attribute__((format(printf, 2, 3)))
static void bprintf(struct mg_buf *b, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n < sizeof(tmp)) {
        mg_buf_add(b, tmp, (size_t)n);
        return;
    }
    char *big = mg_xmalloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    mg_buf_add(b, big, (size_t)n);
    free(big);
}

static void json_str(struct mg_buf *b, const char *s)
{
    if (!s) {
        mg_buf_adds(b, "null");
        return;
    }
    mg_buf_add(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') {
            mg_buf_add(b, "\\", 1);
            mg_buf_add(b, p, 1);
        } else if (*p < 0x20 || *p == 0x7f) {
            bprintf(b, "\\u%04x", *p);
        } else {
            mg_buf_add(b, p, 1);
        }
    }
    mg_buf_add(b, "\"", 1);
}

static void text_str(struct mg_buf *b, const char *s)
{
    if (!s || !*s) {
        mg_buf_adds(b, "-");
        return;
    }
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p < 0x20 || *p == 0x7f || *p == '"')
            bprintf(b, "\\x%02x", *p);
        else
            mg_buf_add(b, p, 1);
    }
}

static void start_time(char *out, size_t len, int64_t us)
{
    time_t s = (time_t)(us / 1000000);
    struct tm tm;
    gmtime_r(&s, &tm);
    size_t n = strftime(out, len, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, len - n, ".%03dZ", (int)((us / 1000) % 1000));
}

struct fields {
    char start[40];
    const char *method, *path, *protocol, *flags, *upstream, *xff, *ua, *rid, *authority;
    const char *remote, *direct, *local, *sni, *route, *reason, *cluster;
    const char *geo_country;            /* NULL = unknown or no database */
    char geo_asn[16];                   /* "" = unknown */
    char geo_country_buf[3];
    int code;
    unsigned long long rx, tx, duration;
};

/* The client's country and AS number: what the access phase looked up
 * (the remote.geo.* client); a request refused before that phase (no
 * route, a malformed request) gets its peer's, from the connection's
 * cache. */
static void geo(struct fields *f, const struct mg_request *r)
{
    struct mg_geo g = { "", 0 };
    f->geo_country = NULL;
    f->geo_asn[0] = '\0';
    if (r->geo_done) {
        memcpy(g.country, r->geo_country, sizeof(g.country));
        g.asn = r->geo_asn;
    } else if (r->snap && r->snap->geoip) {
        struct mg_geo unused;
        mg_geoip_lookup_cached(r->snap->geoip, &r->conn->geo, &r->conn->client, &r->conn->client,
                               &g, &unused);
    } else {
        return;
    }
    memcpy(f->geo_country_buf, g.country, sizeof(g.country));
    f->geo_country = g.country[0] ? f->geo_country_buf : NULL;
    if (g.asn)
        snprintf(f->geo_asn, sizeof(f->geo_asn), "%u", (unsigned)g.asn);
}

static void collect(struct fields *f, const struct mg_request *r)
{
    start_time(f->start, sizeof(f->start), r->start_wall_us);
    f->method = r->method;
    f->path = r->target ? r->target : r->path;
    f->protocol = r->protocol ? r->protocol : "-";
    f->code = r->status;
    f->flags = r->flags ? r->flags : "-";
    f->rx = r->bytes_received;
    f->tx = r->bytes_sent;
    f->duration = (unsigned long long)(mg_now_ms() - r->start_ms);
    f->upstream = r->upstream_host[0] ? r->upstream_host : NULL;
    f->xff = NULL;                      /* as forwarded (with the peer appended) */
    for (size_t i = 0; i < r->n_uh && !f->xff; i++)
        if (strcmp(r->uh[i].key, "x-forwarded-for") == 0)
            f->xff = r->uh[i].value;
    if (!f->xff)
        f->xff = mg_request_header(r, "x-forwarded-for");
    f->ua = mg_request_header(r, "user-agent");
    f->rid = r->request_id[0] ? r->request_id : mg_request_header(r, "x-request-id");
    f->authority = r->authority;
    f->remote = r->conn->client_str;   /* a PROXY protocol header's client, else the peer */
    f->direct = r->conn->peer_str;
    f->local = r->conn->local_str;
    f->sni = r->conn->sni[0] ? r->conn->sni : NULL;
    f->route = r->route ? r->route->name : NULL;
    f->reason = r->reason;
    f->cluster = r->dest && r->dest->cluster ? r->dest->cluster->name : NULL;
    geo(f, r);
}

/* ---- Envoy command operators (accessLogFormat) ---- */

#define OPEQ(op, lit) ((op)->name_len == sizeof(lit) - 1 && memcmp((op)->name, lit, sizeof(lit) - 1) == 0)

/* "ip:port" without the port (an IPv6 literal keeps no brackets). */
static const char *without_port(const char *a, char *tmp, size_t len)
{
    if (!a)
        return NULL;
    const char *c = strrchr(a, ':');
    if (!c)
        return a;
    size_t n = (size_t)(c - a);
    if (a[0] == '[' && n >= 2 && a[n - 1] == ']') {
        a++;
        n -= 2;
    }
    snprintf(tmp, len, "%.*s", (int)n, a);
    return tmp;
}

/* RFC 2253 form, as Envoy prints %DOWNSTREAM_PEER_SUBJECT% */
static const char *name_str(const X509_NAME *nm, char *tmp, size_t len)
{
    BIO *bio = nm ? BIO_new(BIO_s_mem()) : NULL;
    if (!bio)
        return NULL;
    const char *v = NULL;
    if (X509_NAME_print_ex(bio, nm, 0, XN_FLAG_RFC2253) >= 0) {
        int n = BIO_read(bio, tmp, (int)len - 1);
        if (n > 0) {
            tmp[n] = '\0';
            v = tmp;
        }
    }
    BIO_free(bio);
    return v;
}

static const char *hex(const unsigned char *p, size_t n, char *tmp, size_t len)
{
    if (!n || n * 2 >= len)
        return NULL;
    for (size_t i = 0; i < n; i++)
        snprintf(tmp + 2 * i, 3, "%02x", p[i]);
    return tmp;
}

static const char *first_uri_san(X509 *x, char *tmp, size_t len)
{
    GENERAL_NAMES *g = x ? X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL) : NULL;
    const char *v = NULL;
    for (int i = 0; g && i < sk_GENERAL_NAME_num(g) && !v; i++) {
        const GENERAL_NAME *n = sk_GENERAL_NAME_value(g, i);
        if (n->type != GEN_URI)
            continue;
        snprintf(tmp, len, "%.*s", ASN1_STRING_length(n->d.uniformResourceIdentifier),
                 (const char *)ASN1_STRING_get0_data(n->d.uniformResourceIdentifier));
        v = tmp;
    }
    GENERAL_NAMES_free(g);
    return v;
}

/* The TLS facts of the downstream connection (NULL without TLS). */
static const char *tls_value(const struct mg_logop *op, SSL *ssl, char *tmp, size_t len)
{
    if (!ssl)
        return NULL;
    if (OPEQ(op, "DOWNSTREAM_TLS_VERSION"))
        return SSL_get_version(ssl);
    if (OPEQ(op, "DOWNSTREAM_TLS_CIPHER")) {
        const SSL_CIPHER *c = SSL_get_current_cipher(ssl);
        return c ? SSL_CIPHER_get_name(c) : NULL;
    }
    if (OPEQ(op, "DOWNSTREAM_TLS_SESSION_ID")) {
        const SSL_SESSION *ss = SSL_get_session(ssl);
        unsigned int n = 0;
        const unsigned char *id = ss ? SSL_SESSION_get_id(ss, &n) : NULL;
        return id ? hex(id, n, tmp, len) : NULL;
    }
    if (OPEQ(op, "DOWNSTREAM_LOCAL_SUBJECT")) {
        X509 *x = SSL_get_certificate(ssl);
        return x ? name_str(X509_get_subject_name(x), tmp, len) : NULL;
    }
    if (OPEQ(op, "DOWNSTREAM_LOCAL_URI_SAN"))
        return first_uri_san(SSL_get_certificate(ssl), tmp, len);
    X509 *peer = SSL_get0_peer_certificate(ssl);
    if (!peer)
        return NULL;
    if (OPEQ(op, "DOWNSTREAM_PEER_SUBJECT"))
        return name_str(X509_get_subject_name(peer), tmp, len);
    if (OPEQ(op, "DOWNSTREAM_PEER_ISSUER"))
        return name_str(X509_get_issuer_name(peer), tmp, len);
    if (OPEQ(op, "DOWNSTREAM_PEER_SERIAL")) {
        BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(peer), NULL);
        char *h = bn ? BN_bn2hex(bn) : NULL;
        const char *v = NULL;
        if (h) {
            snprintf(tmp, len, "%s", h);
            mg_lower(tmp);              /* Envoy prints it in lower case */
            v = tmp;
        }
        OPENSSL_free(h);
        BN_free(bn);
        return v;
    }
    if (OPEQ(op, "DOWNSTREAM_PEER_FINGERPRINT_256")) {
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned int n = 0;
        if (X509_digest(peer, EVP_sha256(), md, &n) != 1)
            return NULL;
        return hex(md, n, tmp, len);
    }
    return NULL;
}

/* A request header; "A?B" is A, else B (Envoy's alternative). */
static const char *req_header(const struct mg_request *r, const struct fields *f, const char *arg,
                              size_t n, bool without_query, char *tmp, size_t len)
{
    char name[128];
    const char *alt = memchr(arg, '?', n);
    size_t first = alt ? (size_t)(alt - arg) : n;
    for (int pass = 0; pass < 2; pass++) {
        const char *a = pass ? alt + 1 : arg;
        size_t an = pass ? n - first - 1 : first;
        if (an >= sizeof(name))
            return NULL;
        memcpy(name, a, an);
        name[an] = '\0';
        mg_lower(name);
        const char *v = strcmp(name, ":path") == 0 ? f->path
                        : strcmp(name, ":method") == 0 ? f->method
                        : strcmp(name, ":authority") == 0 ? f->authority
                        : strcmp(name, ":scheme") == 0 ? (r->conn->ssl ? "https" : "http")
                        : mg_request_header(r, name);
        if (v && without_query && strcmp(name, ":path") == 0) {
            const char *q = strchr(v, '?');
            if (q) {
                snprintf(tmp, len, "%.*s", (int)(q - v), v);
                v = tmp;
            }
        }
        if (v || !alt)
            return v;
    }
    return NULL;
}

static const char *kv_find(const struct mg_kv *h, size_t n, const char *arg, size_t an)
{
    char name[128];
    if (an >= sizeof(name))
        return NULL;
    memcpy(name, arg, an);
    name[an] = '\0';
    mg_lower(name);
    for (size_t i = 0; i < n; i++)
        if (strcmp(h[i].key, name) == 0)
            return h[i].value;
    return NULL;
}

static const char *ms_since(int64_t start, int64_t at, char *tmp, size_t len)
{
    if (!at)
        return NULL;
    snprintf(tmp, len, "%lld", (long long)(at > start ? at - start : 0));
    return tmp;
}

/* %START_TIME(FMT)%: strftime, plus Envoy's %f / %3f / %6f / %9f (fractions
 * of the second) and %s (epoch seconds). */
static const char *start_time_fmt(const char *fmt, size_t n, int64_t us, char *tmp, size_t len)
{
    char f2[256];
    size_t o = 0;
    for (size_t i = 0; i < n && o + 24 < sizeof(f2); i++) {
        if (fmt[i] == '%' && i + 1 < n) {
            char c = fmt[i + 1];
            int digits = 0;
            size_t skip = 1;
            if (c >= '1' && c <= '9' && i + 2 < n && fmt[i + 2] == 'f') {
                digits = c - '0';
                skip = 2;
            } else if (c == 'f') {
                digits = 9;
            }
            if (digits) {
                char frac[16];
                snprintf(frac, sizeof(frac), "%06lld000", (long long)(us % 1000000));
                memcpy(f2 + o, frac, (size_t)digits);
                o += (size_t)digits;
                i += skip;
                continue;
            }
            if (c == 's') {
                o += (size_t)snprintf(f2 + o, sizeof(f2) - o, "%lld", (long long)(us / 1000000));
                i++;
                continue;
            }
        }
        f2[o++] = fmt[i];
    }
    f2[o] = '\0';
    time_t s = (time_t)(us / 1000000);
    struct tm tm;
    gmtime_r(&s, &tm);
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
    size_t w = strftime(tmp, len, f2, &tm);  /* the operator's own format */
#pragma GCC diagnostic pop
    return w ? tmp : NULL;
}

/* The value of one operator; *number when it is one (JSON keeps it a number). */
static const char *op_value(const struct mg_logop *op, const struct mg_request *r,
                            const struct fields *f, char *tmp, size_t len, bool *number)
{
    *number = false;
    if (OPEQ(op, "START_TIME"))
        return op->arg ? start_time_fmt(op->arg, op->arg_len, r->start_wall_us, tmp, len) : f->start;
    if (OPEQ(op, "REQ"))
        return req_header(r, f, op->arg, op->arg_len, false, tmp, len);
    if (OPEQ(op, "REQ_WITHOUT_QUERY"))
        return req_header(r, f, op->arg, op->arg_len, true, tmp, len);
    if (OPEQ(op, "RESP"))
        return kv_find(r->resp_h, r->n_resp_h, op->arg, op->arg_len);
    if (OPEQ(op, "TRAILER"))
        return kv_find(r->resp_trailers, r->n_resp_trailers, op->arg, op->arg_len);
    if (OPEQ(op, "FILTER_STATE")) {
        /* the key that maps: the verified peer (Istio's peer metadata
         * filters); others are absent, as Envoy renders an absent key */
        size_t kn = op->arg_len;
        const char *colon = memchr(op->arg, ':', kn);
        if (colon)
            kn = (size_t)(colon - op->arg);
        if ((kn == strlen("downstream_peer") && memcmp(op->arg, "downstream_peer", kn) == 0) ||
            (kn == strlen("io.istio.peer_principal") &&
             memcmp(op->arg, "io.istio.peer_principal", kn) == 0))
            return r->conn->peer_uri[0] ? r->conn->peer_uri : NULL;
        return NULL;
    }
    if (OPEQ(op, "RESPONSE_CODE")) {
        snprintf(tmp, len, "%d", f->code);
        *number = true;
        return tmp;
    }
    if (OPEQ(op, "RESPONSE_FLAGS"))
        return f->flags;
    if (OPEQ(op, "GRPC_STATUS_NUMBER") || OPEQ(op, "GRPC_STATUS")) {
        /* a gRPC request's grpc-status (trailers, or the local reply's):
         * the number, or as Envoy's default CAMEL_STRING */
        static const char *const names[] = {
            "OK", "Canceled", "Unknown", "InvalidArgument", "DeadlineExceeded", "NotFound",
            "AlreadyExists", "PermissionDenied", "ResourceExhausted", "FailedPrecondition",
            "Aborted", "OutOfRange", "Unimplemented", "Internal", "Unavailable", "DataLoss",
            "Unauthenticated",
        };
        if (!r->grpc || r->grpc_status < 0)
            return NULL;
        if (OPEQ(op, "GRPC_STATUS") && r->grpc_status < (int)(sizeof(names) / sizeof(names[0])))
            return names[r->grpc_status];
        snprintf(tmp, len, "%d", r->grpc_status);
        *number = true;
        return tmp;
    }
    if (OPEQ(op, "RESPONSE_CODE_DETAILS"))
        /* Envoy's words where they exist: the refusal reason, else the
         * upstream's answer relayed */
        return r->reason ? r->reason : r->resp_start_ms && f->upstream ? "via_upstream" : NULL;
    if (OPEQ(op, "CONNECTION_TERMINATION_DETAILS"))
        return NULL;                    /* a connection is never ended by a filter here */
    if (OPEQ(op, "UPSTREAM_TRANSPORT_FAILURE_REASON"))
        return r->upstream_detail ? r->upstream_detail : r->upstream_reason;
    if (OPEQ(op, "BYTES_RECEIVED") || OPEQ(op, "BYTES_SENT") || OPEQ(op, "DURATION")) {
        snprintf(tmp, len, "%llu", OPEQ(op, "DURATION") ? f->duration
                                   : OPEQ(op, "BYTES_SENT") ? f->tx : f->rx);
        *number = true;
        return tmp;
    }
    if (OPEQ(op, "REQUEST_DURATION") || OPEQ(op, "RESPONSE_DURATION")) {
        const char *v = ms_since(r->start_ms, OPEQ(op, "REQUEST_DURATION") ? r->req_end_ms
                                                                          : r->resp_start_ms, tmp, len);
        *number = v != NULL;
        return v;
    }
    if (OPEQ(op, "PROTOCOL"))
        return f->protocol;
    if (OPEQ(op, "UPSTREAM_HOST"))
        return f->upstream;
    if (OPEQ(op, "UPSTREAM_CLUSTER"))
        return f->cluster;
    if (OPEQ(op, "UPSTREAM_LOCAL_ADDRESS"))
        return r->upstream_local[0] ? r->upstream_local : NULL;
    if (OPEQ(op, "DOWNSTREAM_REMOTE_ADDRESS"))
        return f->remote;
    if (OPEQ(op, "DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT"))
        return without_port(f->remote, tmp, len);
    if (OPEQ(op, "DOWNSTREAM_DIRECT_REMOTE_ADDRESS"))
        return f->direct;
    if (OPEQ(op, "DOWNSTREAM_DIRECT_REMOTE_ADDRESS_WITHOUT_PORT"))
        return without_port(f->direct, tmp, len);
    if (OPEQ(op, "DOWNSTREAM_LOCAL_ADDRESS"))
        return f->local;
    if (OPEQ(op, "DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT"))
        return without_port(f->local, tmp, len);
    if (OPEQ(op, "DOWNSTREAM_LOCAL_PORT")) {
        const char *c = f->local ? strrchr(f->local, ':') : NULL;
        *number = c != NULL;
        return c ? c + 1 : NULL;
    }
    if (OPEQ(op, "REQUESTED_SERVER_NAME"))
        return f->sni;
    if (OPEQ(op, "ROUTE_NAME"))
        return f->route;
    if (OPEQ(op, "HOSTNAME"))
        return gethostname(tmp, len) == 0 ? tmp : NULL;
    if (OPEQ(op, "GEO_COUNTRY"))
        return f->geo_country;
    if (OPEQ(op, "GEO_ASN"))
        return f->geo_asn[0] ? f->geo_asn : NULL;
    if (OPEQ(op, "DOWNSTREAM_PEER_URI_SAN"))
        return r->conn->peer_uri[0] ? r->conn->peer_uri : NULL;
    return tls_value(op, r->conn->ssl, tmp, len);
}

/* Render format string fmt. JSON: `json` set; a format that is exactly one
 * operator keeps its type (a number, or null when absent), anything else is
 * one string with "-" for absent values, as Envoy's json_format. */
static void render(struct mg_buf *b, const char *fmt, const struct mg_request *r,
                   const struct fields *f, bool json)
{
    char tmp[1024];
    struct mg_logop op;
    bool number;
    size_t n;

    if (json && fmt[0] == '%' && (n = mg_logop_parse(fmt, &op)) && !fmt[n] && op.max_len < 0) {
        const char *v = op_value(&op, r, f, tmp, sizeof(tmp), &number);
        if (!v || !*v)
            mg_buf_adds(b, "null");
        else if (number)
            mg_buf_adds(b, v);
        else
            json_str(b, v);
        return;
    }
    struct mg_buf s = { 0 };
    for (const char *p = fmt; *p; p++) {
        if (*p != '%') {
            mg_buf_add(&s, p, 1);
            continue;
        }
        if (p[1] == '%') {
            mg_buf_add(&s, "%", 1);
            p++;
            continue;
        }
        n = mg_logop_parse(p, &op);
        if (!n) {                       /* refused by the configuration check */
            mg_buf_add(&s, "%", 1);
            continue;
        }
        const char *v = op_value(&op, r, f, tmp, sizeof(tmp), &number);
        if (!v || !*v)
            v = "-";
        size_t vl = strlen(v);
        if (op.max_len >= 0 && vl > (size_t)op.max_len)
            vl = (size_t)op.max_len;
        if (json) {
            mg_buf_add(&s, v, vl);
        } else {
            char one[2] = { 0 };
            for (size_t i = 0; i < vl; i++) {
                one[0] = v[i];
                if ((unsigned char)v[i] < 0x20 || v[i] == 0x7f || v[i] == '"')
                    bprintf(&s, "\\x%02x", (unsigned char)v[i]);
                else
                    mg_buf_add(&s, one, 1);
            }
        }
        p += n - 1;
    }
    if (json) {
        mg_buf_add(&s, "", 0);
        char *z = mg_xstrndup(s.p ? s.p : "", s.len);
        json_str(b, z);
        free(z);
    } else if (s.len) {
        mg_buf_add(b, s.p, s.len);
    }
    mg_buf_free(&s);
}

static void format_custom(struct mg_buf *b, const char *fmt, const struct mg_request *r,
                          const struct fields *f)
{
    render(b, fmt, r, f, false);
    if (!b->len || b->p[b->len - 1] != '\n')
        mg_buf_add(b, "\n", 1);
}

static void format_json_template(struct mg_buf *b, const struct mg_mesh_config *mesh,
                                 const struct mg_request *r, const struct fields *f)
{
    mg_buf_add(b, "{", 1);
    for (size_t i = 0; i < mesh->n_access_log_json; i++) {
        if (i)
            mg_buf_add(b, ",", 1);
        json_str(b, mesh->access_log_json[i].key);
        mg_buf_add(b, ":", 1);
        render(b, mesh->access_log_json[i].fmt, r, f, true);
    }
    mg_buf_adds(b, "}\n");
}

void mg_accesslog_format(struct mg_buf *b, const struct mg_request *r, const struct mg_mesh_config *mesh)
{
    struct fields f;
    collect(&f, r);
    if (mesh->n_access_log_json) {
        format_json_template(b, mesh, r, &f);
        return;
    }
    if (mesh->access_log_format && *mesh->access_log_format) {
        format_custom(b, mesh->access_log_format, r, &f);
        return;
    }
    if (mesh->access_log_encoding == MG_LOG_JSON) {
        const char *k[] = { "start_time", "method", "path", "protocol", "response_flags",
                            "upstream_host", "x_forwarded_for", "user_agent", "request_id", "authority",
                            "downstream_remote_address", "downstream_local_address",
                            "requested_server_name", "route_name", "upstream_cluster", "reason" };
        const char *v[] = { f.start, f.method, f.path, f.protocol, f.flags, f.upstream, f.xff, f.ua,
                            f.rid, f.authority, f.remote, f.local, f.sni, f.route, f.cluster, f.reason };
        mg_buf_add(b, "{", 1);
        for (size_t i = 0; i < MG_ARRAY_LEN(k); i++) {
            bprintf(b, "%s\"%s\":", i ? "," : "", k[i]);
            json_str(b, v[i]);
        }
        if (r->conn->proxied) {         /* the balancer, when a PROXY header named the client */
            mg_buf_adds(b, ",\"downstream_direct_remote_address\":");
            json_str(b, f.direct);
        }
        /* access phase decision: only when there is one (keeps lines short) */
        const char *ak[] = { "authz_policy", "authz_audit", "authz_dry_run", "authz_dry_run_result",
                             "authz_detail", "request_principal", "upstream_detail" };
        const char *av[] = { r->authz_policy, r->authz_audit, r->authz_dry_run,
                             r->authz_dry_run_result, r->authz_detail, r->authz_principal,
                             r->upstream_detail };
        for (size_t i = 0; i < MG_ARRAY_LEN(ak); i++) {
            if (!av[i])
                continue;
            bprintf(b, ",\"%s\":", ak[i]);
            json_str(b, av[i]);
        }
        if (r->authz_policy)
            bprintf(b, ",\"authz_rule\":%d", r->authz_rule);
        if (r->grpc && r->grpc_status >= 0)
            bprintf(b, ",\"grpc_status\":%d", r->grpc_status);
        if (f.geo_country) {            /* only with a database and a known client */
            mg_buf_adds(b, ",\"geo_country\":");
            json_str(b, f.geo_country);
        }
        if (f.geo_asn[0])
            bprintf(b, ",\"geo_asn\":%s", f.geo_asn);
        bprintf(b, ",\"response_code\":%d,\"bytes_received\":%llu,\"bytes_sent\":%llu,"
                      "\"duration\":%llu", f.code, f.rx, f.tx, f.duration);
        if (r->conn->ssl) {             /* TLS facts last, only with TLS (short lines) */
            mg_buf_adds(b, ",\"downstream_tls\":true");
            if (r->conn->principal[0]) {
                mg_buf_adds(b, ",\"peer_principal\":");
                json_str(b, r->conn->principal);
            }
        }
        mg_buf_adds(b, "}\n");
        return;
    }
    /* Envoy's default TEXT format, plus the refusal reason */
    bprintf(b, "[%s] \"", f.start);
    text_str(b, f.method);
    mg_buf_add(b, " ", 1);
    text_str(b, f.path);
    mg_buf_add(b, " ", 1);
    text_str(b, f.protocol);
    bprintf(b, "\" %d %s %llu %llu %llu \"", f.code, f.flags, f.rx, f.tx, f.duration);
    const char *q[] = { f.xff, f.ua, f.rid, f.authority, f.upstream };
    for (size_t i = 0; i < MG_ARRAY_LEN(q); i++) {
        text_str(b, q[i]);
        mg_buf_adds(b, i + 1 < MG_ARRAY_LEN(q) ? "\" \"" : "\" ");
    }
    text_str(b, f.cluster);
    mg_buf_add(b, " ", 1);
    text_str(b, f.local);
    mg_buf_add(b, " ", 1);
    text_str(b, f.remote);
    mg_buf_add(b, " ", 1);
    text_str(b, f.sni);
    mg_buf_add(b, " ", 1);
    text_str(b, f.route);
    mg_buf_add(b, " ", 1);
    text_str(b, f.reason);
    if (r->upstream_detail) {           /* only then: the usual line keeps its columns */
        mg_buf_add(b, " \"", 2);
        text_str(b, r->upstream_detail);
        mg_buf_add(b, "\"", 1);
    }
    mg_buf_add(b, "\n", 1);
}

void mg_accesslog_write(const struct mg_request *r, const struct mg_mesh_config *mesh)
{
    int fd = atomic_load_explicit(&log_fd, memory_order_relaxed);
    if (fd < 0 || !mesh->access_log_file || !*mesh->access_log_file)
        return;
    /* one buffer per worker thread, reused: no allocation per line once warm */
    line_buf.len = 0;
    mg_accesslog_format(&line_buf, r, mesh);
    ssize_t n = write(fd, line_buf.p, line_buf.len);
    (void)n;
}

void mg_accesslog_thread_done(void)
{
    mg_buf_free(&line_buf);
    memset(&line_buf, 0, sizeof(line_buf));
}
