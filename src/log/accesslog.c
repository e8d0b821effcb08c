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

/* Envoy command operators for accessLogFormat. */
static void format_custom(struct mg_buf *b, const char *fmt, const struct mg_request *r,
                          const struct fields *f)
{
    for (const char *p = fmt; *p; p++) {
        if (*p != '%') {
            mg_buf_add(b, p, 1);
            continue;
        }
        const char *e = strchr(p + 1, '%');
        if (!e) {
            mg_buf_adds(b, p);
            break;
        }
        size_t n = (size_t)(e - p - 1);
        char op[128];
        if (n >= sizeof(op)) {
            mg_buf_add(b, p, n + 2);
            p = e;
            continue;
        }
        memcpy(op, p + 1, n);
        op[n] = '\0';
        p = e;
        const char *v = NULL;
        char num[32];
        if (n == 0) {
            mg_buf_add(b, "%", 1);
            continue;
        } else if (strcmp(op, "START_TIME") == 0) {
            v = f->start;
        } else if (strncmp(op, "REQ(", 4) == 0 && n > 5 && op[n - 1] == ')') {
            op[n - 1] = '\0';
            char *name = op + 4;
            mg_lower(name);
            v = strcmp(name, ":path") == 0 ? f->path : strcmp(name, ":method") == 0 ? f->method
                : strcmp(name, ":authority") == 0 ? f->authority : mg_request_header(r, name);
        } else if (strncmp(op, "RESP(", 5) == 0 && n > 6 && op[n - 1] == ')') {
            op[n - 1] = '\0';
            char *name = op + 5;
            mg_lower(name);
            for (size_t i = 0; i < r->n_resp_h && !v; i++)
                if (strcmp(r->resp_h[i].key, name) == 0)
                    v = r->resp_h[i].value;
        } else if (strcmp(op, "RESPONSE_CODE") == 0) {
            snprintf(num, sizeof(num), "%d", f->code);
            v = num;
        } else if (strcmp(op, "RESPONSE_FLAGS") == 0) {
            v = f->flags;
        } else if (strcmp(op, "GRPC_STATUS_NUMBER") == 0) {
            if (r->grpc && r->grpc_status >= 0) {
                snprintf(num, sizeof(num), "%d", r->grpc_status);
                v = num;
            }
        } else if (strcmp(op, "BYTES_RECEIVED") == 0) {
            snprintf(num, sizeof(num), "%llu", f->rx);
            v = num;
        } else if (strcmp(op, "BYTES_SENT") == 0) {
            snprintf(num, sizeof(num), "%llu", f->tx);
            v = num;
        } else if (strcmp(op, "DURATION") == 0) {
            snprintf(num, sizeof(num), "%llu", f->duration);
            v = num;
        } else if (strcmp(op, "PROTOCOL") == 0) {
            v = f->protocol;
        } else if (strcmp(op, "UPSTREAM_HOST") == 0) {
            v = f->upstream;
        } else if (strcmp(op, "UPSTREAM_CLUSTER") == 0) {
            v = f->cluster;
        } else if (strcmp(op, "DOWNSTREAM_REMOTE_ADDRESS") == 0) {
            v = f->remote;
        } else if (strcmp(op, "DOWNSTREAM_DIRECT_REMOTE_ADDRESS") == 0) {
            v = f->direct;
        } else if (strcmp(op, "DOWNSTREAM_LOCAL_ADDRESS") == 0) {
            v = f->local;
        } else if (strcmp(op, "REQUESTED_SERVER_NAME") == 0) {
            v = f->sni;
        } else if (strcmp(op, "ROUTE_NAME") == 0) {
            v = f->route;
        } else if (strcmp(op, "GEO_COUNTRY") == 0) {
            v = f->geo_country;
        } else if (strcmp(op, "GEO_ASN") == 0) {
            v = f->geo_asn[0] ? f->geo_asn : NULL;
        } else if (strcmp(op, "DOWNSTREAM_PEER_URI_SAN") == 0) {
            v = r->conn->peer_uri[0] ? r->conn->peer_uri : NULL;
        } else {
            bprintf(b, "%%%s%%", op);
            continue;
        }
        text_str(b, v);
    }
    if (!b->len || b->p[b->len - 1] != '\n')
        mg_buf_add(b, "\n", 1);
}

void mg_accesslog_format(struct mg_buf *b, const struct mg_request *r, const struct mg_mesh_config *mesh)
{
    struct fields f;
    collect(&f, r);
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
