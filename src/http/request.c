/* request.c - the protocol-neutral request and its phases, in the order of
 * README, "Request path". Each phase either lets the request continue (0) or
 * has answered it (non-zero); nothing here blocks or does I/O itself. */
#include "http/http.h"
#include "http/internal.h"
#include <event2/event.h>
#include <openssl/ssl.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include "access/access.h"
#include "egress/egress.h"
#include "log/log.h"
#include "net/types.h"
#include "route/route.h"
#include "snapshot/snapshot.h"
#include "upstream/upstream.h"

/* ---- lifecycle ---- */

static void request_reply(struct mg_request *r, int status, const char *body, const char *reason,
                          bool close);
static void request_resume(struct mg_request *r);
static void request_upstream_failed(struct mg_request *r, int status, const char *flags,
                                    const char *retry_class);

/* What the access phase and the upstream call back (http/types.h). */
static const struct mg_request_cb request_cb = {
    .reply = request_reply,
    .resume = request_resume,
    .upstream_failed = request_upstream_failed,
};

void mg_request_init(struct mg_request *r, struct mg_conn *c, const struct mg_down_ops *ops, void *codec)
{
    memset(r, 0, sizeof(*r));
    r->conn = c;
    r->snap = c->snap;
    r->ops = ops;
    r->cb = &request_cb;
    r->codec = codec;
    r->start_ms = mg_now_ms();
    struct timeval tv;
    gettimeofday(&tv, NULL);
    r->start_wall_us = (int64_t)tv.tv_sec * 1000000 + tv.tv_usec;
    r->flags = "-";
    r->method = "-";
    r->path = "-";
    r->grpc_status = -1;
}

void mg_request_release(struct mg_request *r)
{
    while (r->n_on_release)
        r->on_release[--r->n_on_release](r);
    if (r->timer) {
        event_free(r->timer);
        r->timer = NULL;
    }
    if (r->fault_timer) {
        event_free(r->fault_timer);
        r->fault_timer = NULL;
    }
    mg_arena_free(&r->arena);
}

static void local_header(struct mg_request *r, const char *k, const char *v)
{
    if (r->n_local_h < MG_REQ_MAX_LOCAL_H) {
        r->local_h[r->n_local_h].key = (char *)k;
        r->local_h[r->n_local_h++].value = (char *)v;
    }
}

static void request_reply(struct mg_request *r, int status, const char *body, const char *reason,
                          bool close)
{
    if (reason)
        r->reason = reason;
    for (size_t i = 0; i < r->n_resp_add; i++)      /* CORS: the browser may read the refusal */
        local_header(r, r->resp_add[i].key, r->resp_add[i].value);
    /* A gRPC client reads errors from grpc-status, never from the HTTP
     * status: Envoy answers its requests 200 with the status in a
     * trailers-only response. */
    if (r->grpc && !r->resp_started)
        body = mg_grpc_shape_reply(r, &status, body);
    r->status = status;
    if (!r->resp_start_ms)
        r->resp_start_ms = mg_now_ms();
    r->ops->local_reply(r, status, body, close);
}

void mg_request_finish(struct mg_request *r)
{
    if (r->logged)
        return;
    r->logged = true;
    const struct mg_cluster *cl = r->dest ? r->dest->cluster : NULL;
    struct mg_conn *c = r->conn;
    if (c->principal[0] && !c->principal_label)
        c->principal_label = mg_intern(c->peer_uri);  /* once per connection (a lock) */
    r->grpc_status = mg_grpc_response_status(r);
    struct mg_rq_key k = {
        .code = r->status, .grpc_status = -1, .route = r->route ? r->route->name : NULL,
        .dest = cl ? cl->stat_name : NULL, .reason = r->reason, .principal = c->principal_label,
        .flags = r->flags, .inbound = r->snap->cfg->proxy.mode == MG_MODE_SIDECAR,
        /* a client certificate was verified on this connection */
        .mtls = c->ssl && SSL_get0_peer_certificate(c->ssl),
    };
    if (r->grpc) {                      /* the status the client got: trailers, or a local reply's */
        k.grpc = true;
        k.grpc_status = r->grpc_status;
    }
    int64_t now = mg_now_ms();
    mg_metrics_request(c->w->metrics, &k, (uint64_t)(now > r->start_ms ? now - r->start_ms : 0),
                       r->bytes_received, r->bytes_sent);
    mg_accesslog_write(r, &r->snap->cfg->mesh);
}

/* ---- phases ---- */

static int phase_normalize(struct mg_request *r)
{
    const char *t = r->target;
    size_t tl = strlen(t);
    if (tl > 7 && (mg_strncasecmp(t, "http://", 7) == 0 || mg_strncasecmp(t, "https://", 8) == 0)) {
        const char *p = strchr(strstr(t, "//") + 2, '/');
        t = p ? p : "/";
        tl = strlen(t);
    }
    char *out = mg_arena_alloc(&r->arena, tl + 2);
    size_t olen = 0, plen = 0;
    if (mg_path_normalize(t, tl, r->snap->cfg->mesh.path_normalization, out, tl + 2, &olen, &plen) != 0) {
        mg_request_reply(r, 400, "Bad Request", "path_normalization", true);
        return -1;
    }
    /* what Envoy's header matchers see as :path: the normalized path with
     * the query, which is also what goes upstream (rewrites aside) */
    r->path_query = mg_arena_strndup(&r->arena, out, olen);
    if (plen < olen && out[plen] == '?')
        r->query = out + plen + 1;
    out[plen] = '\0';
    r->path = out;
    return 0;
}

static bool srv_has_host(const struct mg_srv *sv, const char *host)
{
    size_t hl = strlen(host);
    for (size_t i = 0; i < sv->n_hosts; i++)
        if (mg_host_match(sv->hosts[i], host, hl))
            return true;
    return false;
}

static int phase_server(struct mg_request *r)
{
    struct mg_conn *c = r->conn;
    if (c->ssl) {
        struct mg_srv *sv = c->sni_srv;
        if (sv) {
            /* The server the Host itself selects (exact, then the longest
             * wildcard, as for SNI): unless its TLS is the SNI server's
             * (mode, versions, ciphers, certificate, client-certificate
             * requirements), 421, whatever this handshake negotiated, and
             * also when the SNI's server is a wildcard that covers the Host
             * too (SNI x.example.com on SIMPLE *.example.com must not reach
             * the MUTUAL admin.example.com). */
            struct mg_srv *other = mg_port_host_server(c->port, r->host);
            if (other && other != sv && !mg_srv_same_tls(other, sv)) {
                mg_request_reply(r, 421, "Misdirected Request", "host_sni_mismatch", false);
                return -1;
            }
            if (other && !srv_has_host(sv, r->host))
                sv = other;
        }
        r->srv = sv;
    } else {
        r->srv = mg_port_host_server(c->port, r->host);
    }
    if (!r->srv) {
        r->flags = "NR";
        mg_request_reply(r, 404, "no route", "no_route", false);
        return -1;
    }
    if (r->srv->redirect) {
        /* Istio/Envoy redirect to the default https port; when the Gateway has a
         * single HTTPS port other than 443 we redirect there instead */
        const char *loc;
        if (r->snap->https_port)
            loc = mg_arena_printf(&r->arena, "https://%s:%u%s%s%s", r->host, r->snap->https_port,
                                  r->path, r->query ? "?" : "", r->query ? r->query : "");
        else
            loc = mg_arena_printf(&r->arena, "https://%s%s%s%s", r->host, r->path,
                                  r->query ? "?" : "", r->query ? r->query : "");
        local_header(r, "location", loc);
        mg_request_reply(r, 301, "", "https_redirect", false);
        return -1;
    }
    return 0;
}

static int phase_route(struct mg_request *r)
{
    const struct mg_vhost *vh = mg_router_vhost(&r->srv->routes, r->host);
    /* claim routes read the verified token: authenticate first (the token
     * header is then gone for header matches too, as after Envoy's
     * jwt_authn filter) */
    if (vh && mg_vhost_has_claims(vh) && mg_access_authenticate_early(r) < 0)
        return -1;
    if (vh) {
        struct mg_route_input in = {
            .method = r->method, .path = r->path, .query = r->query, .path_query = r->path_query,
            .authority = r->authority,
            .scheme = r->conn->ssl ? "https" : "http", .port = r->conn->port->number,
            .headers = r->h, .n_headers = r->n_h,
            .gw = r->srv->gw, .proxy_labels = &r->snap->cfg->proxy.meta.labels,
            .proxy_ns = r->snap->cfg->proxy.meta.namespace_ ? r->snap->cfg->proxy.meta.namespace_ : "default",
            .claims = mg_access_claims(r),
        };
        r->route = mg_router_match(vh, &in);
    }
    if (!r->route) {
        r->flags = "NR";
        mg_request_reply(r, 404, "no route", "no_route", false);
        return -1;
    }
    return 0;
}

/* The access phase (access.c): request authentication (JWT), then
 * authorization (CUSTOM through ext_authz, DENY, ALLOW, AUDIT, dry-run) on
 * attributes taken from the request and its connection. It answers the
 * refusals itself (401/403/provider status); while an ext_authz check is
 * in flight it returns 1 and access.c calls mg_request_resume() (or
 * replies) when the check completes. */
static int phase_access(struct mg_request *r)
{
    return mg_access_run(r);            /* 0 continue, -1 answered, 1 pending (resumes) */
}

/* Envoy regex_rewrite: every match replaced, \N backreferences expanded. */
static char *regex_rewrite(struct mg_arena *a, const regex_t *re, const char *in, const char *sub)
{
    struct mg_buf b = { 0 };
    regmatch_t m[10];
    const char *p = in;
    int eflags = 0;
    while (*p && regexec(re, p, 10, m, eflags) == 0) {
        mg_buf_add(&b, p, (size_t)m[0].rm_so);
        for (const char *s = sub; *s; s++) {
            if (s[0] == '\\' && s[1] >= '0' && s[1] <= '9') {
                int g = s[1] - '0';
                if (m[g].rm_so >= 0)
                    mg_buf_add(&b, p + m[g].rm_so, (size_t)(m[g].rm_eo - m[g].rm_so));
                s++;
            } else {
                mg_buf_add(&b, s, 1);
            }
        }
        if (m[0].rm_eo == m[0].rm_so) {          /* empty match: move one byte on */
            if (!p[m[0].rm_eo])
                break;
            mg_buf_add(&b, p + m[0].rm_eo, 1);
            p += m[0].rm_eo + 1;
        } else {
            p += m[0].rm_eo;
        }
        eflags = REG_NOTBOL;
    }
    mg_buf_adds(&b, p);
    char *out = mg_arena_strndup(a, b.p ? b.p : "", b.len);
    mg_buf_free(&b);
    return out;
}

static int phase_action(struct mg_request *r)
{
    const struct mg_http_route *h = r->route->cfg;
    const char *qs = r->query ? "?" : "", *q = r->query ? r->query : "";
    if (h->has_redirect) {
        const char *scheme = h->redirect.scheme ? h->redirect.scheme : (r->conn->ssl ? "https" : "http");
        const char *auth = h->redirect.authority ? h->redirect.authority : r->host;
        const char *uri = h->redirect.uri ? h->redirect.uri : r->path;
        char port[8] = "";
        if (h->redirect.port)
            snprintf(port, sizeof(port), ":%u", h->redirect.port);
        local_header(r, "location", mg_arena_printf(&r->arena, "%s://%s%s%s%s%s", scheme, auth,
                                                    port, uri, qs, q));
        mg_request_reply(r, h->redirect.redirect_code ? h->redirect.redirect_code : 301, "",
                         "redirect", false);
        return -1;
    }
    if (h->has_direct_response) {
        r->flags = "DR";
        mg_request_reply(r, h->direct_response.status,
                         h->direct_response.body ? h->direct_response.body : "", "direct_response", false);
        return -1;
    }
    const char *path = r->path;
    r->up_authority = r->authority;
    if (h->has_rewrite) {
        if (h->rewrite.uri) {
            size_t cut = strlen(path);
            for (size_t i = 0; i < r->route->n_matches; i++) {
                const struct mg_csm *u = &r->route->matches[i].uri;
                if (u->kind == MG_SM_PREFIX && mg_has_prefix(path, u->value)) {
                    cut = strlen(u->value);
                    break;
                }
            }
            path = mg_arena_printf(&r->arena, "%s%s", h->rewrite.uri, path + cut);
        } else if (r->route->rewrite_re) {
            path = regex_rewrite(&r->arena, r->route->rewrite_re, path,
                                 h->rewrite.regex_rewrite ? h->rewrite.regex_rewrite : "");
        }
        if (h->rewrite.authority)
            r->up_authority = h->rewrite.authority;
    }
    if (path != r->path)
        local_header(r, "x-envoy-original-path", r->path);   /* carried into r->uh below */
    r->up_path = mg_arena_cat(&r->arena, path, qs, q, (char *)NULL);
    return 0;
}

/* Not copied from the client: the edge's list (route/route.h), and the
 * fields the proxy writes afresh for the upstream (framing, Host from the
 * authority, its own X-Forwarded-For). */
static bool not_forwarded(const struct mg_request *r, const char *n)
{
    return mg_edge_drops(r->h, r->n_h, n) || strcmp(n, "host") == 0 ||
           strcmp(n, "content-length") == 0 || strcmp(n, "x-forwarded-for") == 0;
}

struct hlist {
    struct mg_kv *v;
    size_t n, cap;
};

static void hl_add(struct mg_request *r, struct hlist *l, const char *k, const char *v)
{
    if (l->n == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 32;
        struct mg_kv *nv = mg_arena_alloc(&r->arena, nc * sizeof(*nv));
        if (l->n)
            memcpy(nv, l->v, l->n * sizeof(*nv));
        l->v = nv;
        l->cap = nc;
    }
    memset(&l->v[l->n], 0, sizeof(l->v[0]));
    l->v[l->n].key = (char *)k;
    l->v[l->n++].value = (char *)v;
}

static void hl_remove(struct hlist *l, const char *k)
{
    size_t o = 0;
    for (size_t i = 0; i < l->n; i++)
        if (mg_strcasecmp(l->v[i].key, k) != 0)
            l->v[o++] = l->v[i];
    l->n = o;
}

static void apply_ops(struct mg_request *r, struct hlist *l, const struct mg_header_ops *ops)
{
    for (size_t i = 0; i < ops->remove.n; i++)
        hl_remove(l, ops->remove.v[i]);
    for (size_t i = 0; i < ops->set.n; i++) {
        hl_remove(l, ops->set.v[i].key);
        hl_add(r, l, ops->set.v[i].key, ops->set.v[i].value);
    }
    for (size_t i = 0; i < ops->add.n; i++)
        hl_add(r, l, ops->add.v[i].key, ops->add.v[i].value);
}

static void uuid4(struct mg_request *r, char out[37])
{
    uint32_t w[4];
    for (int i = 0; i < 4; i++)
        w[i] = mg_worker_rand(r->conn->w);
    uint8_t b[16];
    memcpy(b, w, 16);
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
    /* 8-4-4-4-12 by hand: snprintf with 16 conversions showed up per request */
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[o++] = '-';
        out[o++] = hex[b[i] >> 4];
        out[o++] = hex[b[i] & 15];
    }
    out[o] = '\0';
}

/* The proxy's own x-forwarded-client-cert (SANITIZE_SET), NULL without a
 * verified client certificate. */
static const char *xfcc_value(struct mg_request *r)
{
    const struct mg_conn *c = r->conn;
    if (!c->cert_hash[0])
        return NULL;
    const char *by = r->snap->spiffe_id ? r->snap->spiffe_id : "";
    size_t n = mg_edge_xfcc(NULL, 0, by, c->cert_hash, c->peer_uri);
    char *v = mg_arena_alloc(&r->arena, n + 1);
    mg_edge_xfcc(v, n + 1, by, c->cert_hash, c->peer_uri);
    return v;
}

/* Before any phase reads the headers, as Envoy's connection manager does:
 * the client's copies of the headers only the proxy may set, hop-by-hop
 * headers and those the client names in Connection are dropped, and the
 * proxy's x-forwarded-proto, x-envoy-external-address and
 * x-forwarded-client-cert set (route/route.h); phase_headers drops them from
 * the upstream request too. */
static void phase_sanitize(struct mg_request *r)
{
    struct mg_kv *nh = mg_arena_alloc(&r->arena, (r->n_h + 3) * sizeof(*nh));
    char ip[64];
    mg_addr_ip_str(&r->conn->client, ip, sizeof(ip));
    const struct mg_mesh_config *m = &r->snap->cfg->mesh;
    const char *const geo[2] = { m->geoip_country_header, m->geoip_asn_header };
    struct mg_edge_own own = {
        .proto = r->conn->ssl ? "https" : "http",
        .external_address = mg_arena_strndup(&r->arena, ip, strlen(ip)),
        .xfcc = xfcc_value(r),
        .drop = geo, .n_drop = 2,       /* the access phase sets them from the database */
    };
    r->n_h = mg_edge_sanitize(r->h, r->n_h, &own, nh);
    r->h = nh;
}

static void phase_headers(struct mg_request *r)
{
    struct hlist l = { 0 };
    struct mg_conn *c = r->conn;
    const char *xff = NULL;
    for (size_t i = 0; i < r->n_h; i++) {
        const char *n = r->h[i].key;
        if (strcmp(n, "x-forwarded-for") == 0)
            xff = xff ? mg_arena_cat(&r->arena, xff, ", ", r->h[i].value, (char *)NULL) : r->h[i].value;
        /* te: trailers (all the edge keeps of TE) tells the upstream the
         * client reads trailers: gRPC servers insist on it. */
        if (strcmp(n, "te") == 0) {
            hl_add(r, &l, n, "trailers");
            continue;
        }
        if (not_forwarded(r, n))
            continue;
        /* The expectation is the gateway's to answer (the codec sends its
         * own 100 when it wants the body, as Envoy does by default): an
         * upstream that saw it could answer before reading the body and
         * then parse the body as a request of its own. */
        if (strcmp(n, "expect") == 0)
            continue;
        hl_add(r, &l, n, r->h[i].value);
    }
    char ip[64];
    mg_addr_ip_str(&c->client, ip, sizeof(ip));   /* a PROXY protocol header's client, else the peer */
    hl_add(r, &l, "x-forwarded-for", xff ? mg_arena_cat(&r->arena, xff, ", ", ip, (char *)NULL)
                                         : mg_arena_strndup(&r->arena, ip, strlen(ip)));
    hl_add(r, &l, "x-forwarded-proto", c->ssl ? "https" : "http");
    const char *rid = mg_request_header(r, "x-request-id");
    if (rid && *rid && strlen(rid) < sizeof(r->request_id)) {
        snprintf(r->request_id, sizeof(r->request_id), "%s", rid);
    } else {
        hl_remove(&l, "x-request-id");
        uuid4(r, r->request_id);
        hl_add(r, &l, "x-request-id", r->request_id);
    }
    hl_add(r, &l, "x-envoy-external-address", mg_arena_strndup(&r->arena, ip, strlen(ip)));
    const char *xfcc = xfcc_value(r);
    if (xfcc)
        hl_add(r, &l, "x-forwarded-client-cert", xfcc);
    for (size_t i = 0; i < r->n_local_h; i++)       /* x-envoy-original-path */
        hl_add(r, &l, r->local_h[i].key, r->local_h[i].value);
    r->n_local_h = 0;
    apply_ops(r, &l, &r->route->cfg->req_headers);
    if (r->dest)
        apply_ops(r, &l, &r->dest->cfg->req_headers);
    r->uh = l.v;
    r->n_uh = l.n;
}

static void on_route_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct mg_request *r = arg;
    r->flags = "UT";
    if (r->resp_started) {
        mg_upstream_detach(r, false);
        r->ops->abort(r);
        return;
    }
    mg_upstream_detach(r, false);
    mg_request_reply(r, 504, "upstream request timeout", "upstream_timeout", !r->body_done);
}

/* Under REGISTRY_ONLY a route may lead only to a host and port the
 * registry holds (egress/egress.h); anything else gets Envoy's
 * BlackHoleCluster answer, 502, logged and counted. */
static int phase_egress(struct mg_request *r)
{
    const struct mg_egress *eg = r->snap->egress;
    if (!r->dest || !r->dest->cfg || !mg_egress_registry_only(eg))
        return 0;
    if (r->dest->cluster && r->dest->cluster->dynamic)
        return 0;                       /* the forward proxy checked the authority (phase_forward) */
    const struct mg_destination *d = &r->dest->cfg->destination;
    uint16_t port = d->port ? d->port : r->dest->cluster ? r->dest->cluster->port : 0;
    struct mg_egress_verdict v;
    if (mg_egress_check(eg, d->host, port, MG_EGRESS_ROUTE, &v))
        return 0;
    mg_metrics_egress_refused(r->conn->w->metrics, mg_egress_entrance_name(MG_EGRESS_ROUTE),
                              mg_egress_reason_name(v.reason));
    r->flags = "NR";
    mg_request_reply(r, v.status ? v.status : 502, "egress destination not allowed",
                     mg_egress_log_reason(MG_EGRESS_ROUTE, v.reason), false);
    return -1;
}

/* Where the dynamic cluster dials for an absolute-form request, as a
 * CONNECT tunnel goes: one of the matching entry's endpoints (at random)
 * when it has any, else the host asked for, on the entry port's
 * targetPort or the port asked for. A name is resolved on the worker's
 * resolver when the connection opens (503 when it does not resolve). */
static void forward_dial(struct mg_request *r, const struct mg_egress_verdict *v, uint16_t port)
{
    const struct mg_service_entry *se = v->se;
    if (se && se->n_endpoints && v->se_port) {
        const struct mg_workload_entry *we = &se->endpoints[mg_worker_rand(r->conn->w) % se->n_endpoints];
        if (we->address && strncmp(we->address, "unix://", 7) != 0) {
            r->dial_host = we->address;
            r->dial_port = mg_egress_endpoint_port(we, v->se_port);
        }
        return;                         /* no usable endpoint: dial_host NULL, 503 */
    }
    r->dial_host = r->host;
    r->dial_port = v->se_port && v->se_port->target_port ? v->se_port->target_port : port;
}

/* The forward proxy (Proxy.spec.outbound.bind): an absolute-form request's
 * authority selects the destination - a host and port the egress registry
 * allows (else 502, Envoy's BlackHoleCluster): the route of the visible
 * ServiceEntry that names it exactly (control/build.c), else (a wildcard
 * entry's host, an unregistered host under ALLOW_ANY) the route to the
 * dynamic cluster, which dials where forward_dial says. */
static int phase_forward(struct mg_request *r)
{
    const char *t = r->target;
    bool https = mg_strncasecmp(t, "https://", 8) == 0;
    if (!https && mg_strncasecmp(t, "http://", 7) != 0) {
        mg_request_reply(r, 400, "Bad Request", "forward_not_absolute_form", false);
        return -1;
    }
    char host[256];
    uint16_t port = 0;
    if (mg_split_host_port(r->authority, host, sizeof(host), &port) != 0) {
        mg_request_reply(r, 400, "Bad Request", "malformed_request", false);
        return -1;
    }
    if (!port)
        port = https ? 443 : 80;
    struct mg_egress_verdict v;
    if (!mg_egress_check(r->snap->egress, r->host, port, MG_EGRESS_FORWARD_HTTP, &v)) {
        mg_metrics_egress_refused(r->conn->w->metrics, mg_egress_entrance_name(MG_EGRESS_FORWARD_HTTP),
                                  mg_egress_reason_name(v.reason));
        r->flags = "NR";
        mg_request_reply(r, v.status ? v.status : 502, "egress destination not allowed",
                         mg_egress_log_reason(MG_EGRESS_FORWARD_HTTP, v.reason), false);
        return -1;
    }
    const struct mg_fwd_route *fr = mg_snapshot_fwd_route(r->snap, r->host, port);
    if (!fr) {
        /* allowed (a wildcard entry, ALLOW_ANY) but no fixed cluster */
        fr = r->snap->fwd_any;
        if (!fr) {
            r->flags = "NR";
            mg_request_reply(r, 502, "no cluster for this destination", "forward_no_cluster", false);
            return -1;
        }
        forward_dial(r, &v, port);
    }
    r->route = &fr->route;
    return 0;
}

void mg_request_run(struct mg_request *r)
{
    r->grpc = mg_grpc_content_type(mg_request_header(r, "content-type"));
    if (phase_normalize(r))
        return;
    phase_sanitize(r);
    if (r->conn->port->forward) {
        if (phase_forward(r) || phase_access(r))
            return;
    } else if (phase_server(r) || phase_route(r) || mg_cors_run(r) || phase_access(r)) {
        return;
    }
    mg_request_resume(r);
}

static void request_proceed(struct mg_request *r);

static void request_resume(struct mg_request *r)
{
    if (!r->conn->port->forward && mg_fault_run(r, request_proceed))
        return;                         /* answered, or delayed: request_proceed follows */
    request_proceed(r);
}

static void request_proceed(struct mg_request *r)
{
    if (phase_action(r))
        return;
    r->dest = mg_route_pick(r->route, mg_worker_rand(r->conn->w));
    if (phase_egress(r))
        return;
    phase_headers(r);
    if (!r->dest || !r->dest->cluster || r->dest->cluster->n_eps == 0) {
        r->flags = "UH";
        mg_request_reply(r, 503, "no healthy upstream", "no_healthy_upstream", false);
        return;
    }
    int64_t to = r->route->cfg->timeout_ms;
    /* A gRPC client's deadline, bounded by the route's timeout (Istio sets
     * the route timeout as the grpc-timeout maximum); no route timeout
     * leaves the client's. */
    int64_t gto = r->grpc ? mg_grpc_timeout_ms(mg_request_header(r, "grpc-timeout")) : -1;
    if (gto > 0 && (to <= 0 || gto < to))
        to = gto;
    if (to > 0) {
        r->timer = evtimer_new(r->conn->w->base, on_route_timeout, r);
        struct timeval tv = { (time_t)(to / 1000), (suseconds_t)((to % 1000) * 1000) };
        evtimer_add(r->timer, &tv);
    }
    mg_mirror_start(r);
    mg_upstream_start(r);
}

/* ---- retries ---- */


static void request_upstream_failed(struct mg_request *r, int status, const char *flags,
                                    const char *retry_class)
{
    mg_upstream_detach(r, false);
    if (retry_class && mg_upstream_retry_allowed(r, retry_class)) {
        r->flags = "URX";
        mg_upstream_start(r);
        return;
    }
    r->flags = flags;
    if (r->resp_started) {
        r->ops->abort(r);
        return;
    }
    const char *body = status == 504 ? "upstream request timeout"
                       : status == 502 ? "upstream protocol error"
                       : "upstream connect error or disconnect/reset before headers";
    const char *reason = status == 504 ? "upstream_timeout"
                         : r->upstream_reason ? r->upstream_reason : "upstream_failure";
    mg_request_reply(r, status, body, reason, !r->body_done);
}
