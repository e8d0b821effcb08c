/* http/types.h - the protocol-neutral request as it flows down the request
 * path: the codec fills it, routing, access, upstream and the access log
 * read and annotate it. Types and static inline accessors only; what a
 * later step hands back (a local answer, "resume", an upstream failure)
 * goes through the callbacks the phase runner sets (struct mg_request_cb),
 * so no later step names http/'s functions. */
#ifndef MG_HTTP_TYPES_H
#define MG_HTTP_TYPES_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <event2/buffer.h>
#include "config/config.h"
#include "base/base.h"

struct mg_conn;
struct mg_request;
struct mg_request_cb;
struct mg_snapshot;
struct mg_srv;
struct mg_route;
struct mg_wdest;
struct mg_uconn;
struct mg_up2_stream;
struct mg_shadow;

enum mg_body_kind { MG_BODY_NONE = 0, MG_BODY_LENGTH, MG_BODY_CHUNKED, MG_BODY_UNTIL_CLOSE };

/* What the codec implements so the upstream and the phase runner can
 * answer. */
struct mg_down_ops {
    void (*send_continue)(struct mg_request *r);           /* 100 Continue */
    void (*resp_head)(struct mg_request *r);               /* r->status, r->resp_h, r->resp_body */
    /* move n bytes of response payload from src (already de-framed) */
    void (*resp_data)(struct mg_request *r, struct evbuffer *src, size_t n);
    void (*resp_end)(struct mg_request *r);                /* response complete */
    bool (*resp_full)(struct mg_request *r);               /* downstream above its watermark */
    void (*body_resume)(struct mg_request *r);             /* upstream took the body bytes */
    /* A local reply (no upstream response head sent yet); `close` ends the
     * connection after it. r->local_h holds extra headers. */
    void (*local_reply)(struct mg_request *r, int status, const char *body, bool close);
    /* A failure after the response head was sent: the codec drops the stream. */
    void (*abort)(struct mg_request *r);
};

#define MG_REQ_MAX_LOCAL_H 12

struct mg_request {
    struct mg_arena arena;              /* base/base.h, default 8 KiB chunks */
    struct mg_conn *conn;
    struct mg_snapshot *snap;           /* the connection's snapshot (borrowed) */
    const struct mg_down_ops *ops;
    const struct mg_request_cb *cb;     /* http/request.c: what later steps call back */
    void *codec;                        /* the codec's own state */
    int64_t start_ms;
    int64_t start_wall_us;
    /* mg_now_ms() of the last request byte and of the response status
     * (upstream's or a local reply's); 0 = not yet. The access log's
     * %REQUEST_DURATION% and %RESPONSE_DURATION%. */
    int64_t req_end_ms, resp_start_ms;

    /* attributes from the codec */
    const char *method;                 /* NUL terminated (arena) */
    const char *target;                 /* as received */
    char *path;                         /* normalized, no query, no fragment */
    char *query;                        /* after '?', NULL = none */
    const char *path_query;             /* path and "?query": :path for header conditions
                                         * and matches (base/base.h mg_pseudo_headers) */
    char *host;                         /* lower-case, port removed */
    const char *authority;              /* Host as received */
    const char *protocol;               /* "HTTP/1.1", "HTTP/1.0", "HTTP/2" */
    struct mg_kv *h;                    /* request headers, names lower-case */
    size_t n_h;
    enum mg_body_kind body;
    uint64_t content_length;
    bool expect_continue;
    bool is_head;
    /* A gRPC request (content-type application/grpc, +proto, ...): local
     * replies are gRPC-shaped (http/request.c) and grpc-timeout bounds the
     * route timeout. */
    bool grpc;
    /* The protocol the client asks to switch to ("websocket", from an
     * HTTP/1.1 Upgrade), NULL = none: the upstream request carries
     * Connection: upgrade and Upgrade, and a 101 makes the exchange a
     * tunnel (upstream.h mg_upstream_tunnel). */
    const char *upgrade;
    /* The upgrade came as an HTTP/2 extended CONNECT (RFC 8441): the
     * upstream gets an HTTP/1.1 upgrade with the Sec-WebSocket-Key the
     * gateway generates (ws_key, arena), its 101 must carry the matching
     * Sec-WebSocket-Accept, and is answered 200 on the stream, whose DATA
     * both ways are the request and response bodies (MG_BODY_UNTIL_CLOSE). */
    bool upgrade_h2;
    const char *ws_key;

    /* decided by the phases */
    struct mg_srv *srv;
    const struct mg_route *route;
    const struct mg_wdest *dest;
    const char *up_path;                /* path+query sent upstream */
    const char *up_authority;
    /* The forward proxy with no fixed cluster for the authority (a dynamic
     * cluster, upstream/types.h): the name or IP literal and the port to
     * dial, chosen as for a CONNECT (the entry's endpoints, else the host
     * asked for). NULL otherwise. */
    const char *dial_host;
    uint16_t dial_port;
    struct mg_kv *uh;                   /* upstream request headers */
    size_t n_uh;
    char request_id[40];
    struct mg_kv local_h[MG_REQ_MAX_LOCAL_H];
    size_t n_local_h;
    /* Headers a step before the upstream sets on whatever response the
     * client gets, the upstream's (after the route's header edits) or a
     * local reply (CORS: access-control-allow-origin, ...); arena or static. */
    struct mg_kv *resp_add;
    size_t n_resp_add;

    /* response */
    int status;
    struct mg_kv *resp_h;
    size_t n_resp_h;
    enum mg_body_kind resp_body;
    uint64_t resp_cl;
    bool resp_started;                  /* head sent downstream */
    bool resp_close;                    /* upstream asked to close (Connection: close) */
    struct mg_kv *resp_trailers;        /* from an HTTP/2 upstream (arena), set before resp_end;
                                         * the HTTP/2 codec relays them, HTTP/1.1 drops them */
    size_t n_resp_trailers;
    /* The gRPC status the client got (a local reply's, else the upstream's
     * grpc-status trailer or trailers-only header), -1 = none; for the
     * grpc_response_status metric label and the access log. */
    int grpc_status;

    /* upstream progress */
    struct mg_uconn *uc;
    struct mg_up2_stream *up2;          /* HTTP/2 upstream stream (upstream_h2.c), or NULL */
    int attempts;                       /* tries made */
    uint64_t up_tried;                  /* endpoints tried (bit i = endpoint i < 64): retries
                                         * go elsewhere while another is in service */
    bool body_started;                  /* a body byte went upstream: no more retries */
    bool body_done;                     /* downstream body fully read */
    struct event *timer;                /* route timeout */
    struct event *fault_timer;          /* a fault delay (route/fault.c) */
    struct mg_shadow *shadows;          /* copies to mirrors in flight (upstream/mirror.c) */
    void (*fault_cont)(struct mg_request *r);   /* ... and what follows it */

    /* accounting for logs and metrics */
    uint64_t bytes_received, bytes_sent;
    char upstream_host[64];
    char upstream_local[64];            /* the upstream socket's ip:port ("" = not asked for) */
    const char *flags;                  /* Envoy response flags ("-", "UF", "UT", "NR", "UO", "URX", "UC", "DC") */
    const char *reason;                 /* refusal reason, NULL = none */
    /* An upstream connection refused for a reason of its own (secure
     * naming): the access log reason to answer with instead of
     * "upstream_failure" (a static string, a metric label), and the
     * sentence that explains it (arena), logged with the request. */
    const char *upstream_reason;
    const char *upstream_detail;
    bool logged;

    /* access phase (access.c): state of a pending ext_authz check and the
     * decision, for the access log */
    struct mg_access_pending *access;
    /* request authentication run before routing (JWT claim routes,
     * mg_access_authenticate_early): the result the access phase then
     * uses instead of authenticating again; NULL = not run yet */
    struct mg_ra_result *authn;
    /* what later steps registered to let go of their state when the request
     * is released (mg_request_on_release), run latest first */
    void (*on_release[4])(struct mg_request *r);
    unsigned n_on_release;
    const char *authz_policy;           /* deciding policy "ns.name", NULL = none */
    int authz_rule;                     /* its rule index (when authz_policy is set) */
    /* GeoIP of the client address authorization used (remote.geo.*), set by
     * the access phase when the snapshot has a database: country "" and asn
     * 0 = unknown. */
    bool geo_done;
    char geo_country[3];
    uint32_t geo_asn;
    const char *authz_audit;            /* AUDIT policy that matched, or NULL */
    const char *authz_dry_run;          /* dry-run DENY policy that would have denied */
    const char *authz_dry_run_result;   /* "deny" when a dry-run policy would deny */
    const char *authz_detail;           /* ext_authz failure, JWT error, ... */
    const char *authz_principal;        /* request principal (iss/sub) of a valid JWT */
};

/* What later steps (access, upstream) call back when they are done with a
 * request, set by mg_request_init (http/request.c). Called through the
 * inline wrappers below, so no later step names http/'s functions. */
struct mg_request_cb {
    /* Record status, reason and flags, then answer locally through the
     * codec (ops->local_reply); `close` ends the connection after it. */
    void (*reply)(struct mg_request *r, int status, const char *body, const char *reason,
                  bool close);
    /* Continue after an asynchronous access phase (ext_authz, a JWKS
     * fetch) allowed the request: route action, header edits, upstream. */
    void (*resume)(struct mg_request *r);
    /* An upstream failure before any response byte: retry when the route's
     * retry policy allows (mg_upstream_retry_allowed), else answer
     * `status`. */
    void (*upstream_failed)(struct mg_request *r, int status, const char *flags,
                            const char *retry_class);
};

static inline void mg_request_reply(struct mg_request *r, int status, const char *body,
                                    const char *reason, bool close)
{
    r->cb->reply(r, status, body, reason, close);
}

static inline void mg_request_resume(struct mg_request *r)
{
    r->cb->resume(r);
}

static inline void mg_request_upstream_failed(struct mg_request *r, int status, const char *flags,
                                              const char *retry_class)
{
    r->cb->upstream_failed(r, status, flags, retry_class);
}

/* A later step that attaches state to the request (a pending ext_authz call,
 * an upstream connection or a place in a pool's queue) registers how to let
 * go of it; mg_request_release runs the hooks, latest first, so the phase
 * runner names none of those steps' functions. The same hook twice is kept
 * once. */
static inline void mg_request_on_release(struct mg_request *r, void (*fn)(struct mg_request *r))
{
    for (unsigned i = 0; i < r->n_on_release; i++)
        if (r->on_release[i] == fn)
            return;
    if (r->n_on_release < sizeof(r->on_release) / sizeof(r->on_release[0]))
        r->on_release[r->n_on_release++] = fn;
    else
        abort();                        /* more steps than slots: a programming error */
}

/* First value of a (lower-case) header name, or NULL. */
static inline const char *mg_request_header(const struct mg_request *r, const char *name)
{
    for (size_t i = 0; i < r->n_h; i++)
        if (strcmp(r->h[i].key, name) == 0)
            return r->h[i].value;
    return NULL;
}

#endif
