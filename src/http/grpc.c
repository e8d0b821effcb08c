/* grpc.c - what a gateway owes a gRPC client (RFC-less: the gRPC over
 * HTTP/2 protocol): local answers in gRPC's shape, the status the client
 * saw, and grpc-timeout. */
#include "http/internal.h"
#include <stdio.h>
#include <string.h>

bool mg_grpc_content_type(const char *ct)
{
    /* application/grpc, application/grpc+proto, application/grpc;... -
     * but not application/grpc-web, which is another protocol */
    if (!ct || mg_strncasecmp(ct, "application/grpc", 16) != 0)
        return false;
    return ct[16] == '\0' || ct[16] == '+' || ct[16] == ';';
}

/* Envoy's HTTP -> gRPC mapping for its own answers; an upstream timeout
 * (504) is the deadline the client gave or the route's, so
 * DEADLINE_EXCEEDED. */
int mg_grpc_status_of_http(int status)
{
    switch (status) {
    case 400: return 13;                /* INTERNAL */
    case 401: return 16;                /* UNAUTHENTICATED */
    case 403: return 7;                 /* PERMISSION_DENIED */
    case 404: return 12;                /* UNIMPLEMENTED */
    case 429: case 502: case 503: return 14;   /* UNAVAILABLE */
    case 504: return 4;                 /* DEADLINE_EXCEEDED */
    default: return 2;                  /* UNKNOWN */
    }
}

/* grpc-message is percent-encoded: bytes outside printable ASCII and '%'. */
static const char *percent_encode(struct mg_arena *a, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = strlen(s);
    char *o = mg_arena_alloc(a, n * 3 + 1), *p = o;
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if (*c < 0x20 || *c > 0x7e || *c == '%') {
            *p++ = '%';
            *p++ = hex[*c >> 4];
            *p++ = hex[*c & 15];
        } else {
            *p++ = (char)*c;
        }
    }
    *p = '\0';
    return o;
}

static void add_local(struct mg_request *r, const char *k, const char *v)
{
    if (r->n_local_h < MG_REQ_MAX_LOCAL_H) {
        r->local_h[r->n_local_h].key = (char *)k;
        r->local_h[r->n_local_h++].value = (char *)v;
    }
}

const char *mg_grpc_shape_reply(struct mg_request *r, int *status, const char *body)
{
    /* a status chosen already (a fault abort's grpcStatus) stays */
    int gs = r->grpc_status >= 0 ? r->grpc_status : mg_grpc_status_of_http(*status);
    r->grpc_status = gs;
    /* a trailers-only response: every field in the one HEADERS frame */
    size_t o = 0;
    for (size_t i = 0; i < r->n_local_h; i++)    /* www-authenticate stays; a redirect's */
        if (strcmp(r->local_h[i].key, "location") != 0)      /* location means nothing here */
            r->local_h[o++] = r->local_h[i];
    r->n_local_h = o;
    add_local(r, "content-type", "application/grpc");
    add_local(r, "grpc-status", mg_arena_printf(&r->arena, "%d", gs));
    if (body && *body)
        add_local(r, "grpc-message", percent_encode(&r->arena, body));
    *status = 200;
    return "";
}

static int field_status(const struct mg_kv *h, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (h[i].key && strcmp(h[i].key, "grpc-status") == 0) {
            uint64_t v;
            return mg_parse_uint(h[i].value, 0, 9999, &v) == 0 ? (int)v : -1;
        }
    }
    return -1;
}

int mg_grpc_response_status(const struct mg_request *r)
{
    if (r->grpc_status >= 0)
        return r->grpc_status;
    if (!r->grpc || !r->resp_started)
        return -1;
    int s = field_status(r->resp_trailers, r->n_resp_trailers);
    return s >= 0 ? s : field_status(r->resp_h, r->n_resp_h);
}

int64_t mg_grpc_timeout_ms(const char *v)
{
    if (!v)
        return -1;
    /* TimeoutValue: 1 to 8 ASCII digits, then one unit */
    size_t n = strlen(v);
    if (n < 2 || n > 9)
        return -1;
    int64_t x = 0;
    for (size_t i = 0; i + 1 < n; i++) {
        if (v[i] < '0' || v[i] > '9')
            return -1;
        x = x * 10 + (v[i] - '0');
    }
    int64_t ms;
    switch (v[n - 1]) {
    case 'H': ms = x * 3600000; break;
    case 'M': ms = x * 60000; break;
    case 'S': ms = x * 1000; break;
    case 'm': ms = x; break;
    case 'u': ms = (x + 999) / 1000; break;          /* a deadline is never rounded away */
    case 'n': ms = (x + 999999) / 1000000; break;
    default: return -1;
    }
    return ms > 0 ? ms : -1;            /* 0: no deadline, as Envoy reads it */
}
