/* forward.c - the forward proxy on Proxy.spec.outbound.bind: CONNECT
 * host:port tunnels, as applications open them with HTTPS_PROXY (a
 * connection whose first request is no CONNECT goes to the HTTP/1 codec,
 * which proxies absolute-form requests through the request path). The
 * destination passes the egress registry (egress/egress.h) and the
 * AuthorizationPolicies of the gateway, and is dialled at the address this
 * gateway finds for it - the ServiceEntry's STATIC endpoints, or the name
 * resolved through the worker's resolver - never at one the client
 * supplied; then the bytes are spliced both ways (splice.c). */
#include "l4/l4.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <event2/buffer.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/util.h>
#include "access/access.h"
#include "egress/egress.h"
#include "http1/http1.h"
#include "log/log.h"
#include "net/types.h"
#include "policy/policy.h"
#include "snapshot/snapshot.h"
#include "upstream/upstream.h"
#include "base/base.h"

/* Istio's default connectTimeout, for destinations no DestinationRule tunes. */
#define FWD_CONNECT_TIMEOUT_MS 10000

struct fwd {
    struct mg_splice s;                 /* first: the splice's callbacks take &f->s */
    char target[300];                   /* the CONNECT authority as asked */
    char host[256];
    uint16_t port;
    uint16_t dial_port;                 /* the port a resolved name is dialled on */
    struct mg_dns_req *dnsreq;
    bool resolving;
    bool answered;                      /* a reply is written: close once it is out */
};

static void count_refusal(struct fwd *f, const char *reason)
{
    mg_metrics_egress_refused(f->s.c->w->metrics, mg_egress_entrance_name(MG_EGRESS_CONNECT), reason);
}

static void reply_written(struct mg_io *io, void *arg)
{
    struct fwd *f = arg;
    if (evbuffer_get_length(mg_io_get_output(io)) != 0)
        return;
    struct mg_conn *c = f->s.c;
    mg_conn_ref(c);
    mg_splice_release(&f->s);
    mg_conn_close_lingering(c);
    mg_conn_unref(c);
}

static void reply_event(struct mg_io *io, short what, void *arg)
{
    (void)io;
    (void)what;
    struct fwd *f = arg;
    mg_conn_ref(f->s.c);
    mg_splice_close(&f->s);
    mg_conn_unref(f->s.c);
}

/* Answer the CONNECT (or the malformed head) and close once it is out. */
static void fwd_reply(struct fwd *f, int status, const char *body, const char *reason)
{
    struct mg_conn *c = f->s.c;
    f->answered = true;
    f->s.status = status;
    if (!f->s.reason)
        f->s.reason = reason;
    char head[256];
    struct mg_h1_out w;
    mg_h1_out_init(&w, head, sizeof(head));
    mg_h1_put_status_line(&w, 1, status);
    mg_h1_put_content_length(&w, strlen(body));
    mg_h1_put_field(&w, "content-type", "text/plain");
    mg_h1_put_field(&w, "connection", "close");
    mg_h1_put_end(&w);
    struct evbuffer *out = mg_io_get_output(c->io);
    if (w.len <= sizeof(head))
        evbuffer_add(out, head, w.len);
    evbuffer_add(out, body, strlen(body));
    f->s.tx += w.len + strlen(body);
    mg_io_disable(c->io, EV_READ);
    mg_io_set_timeouts(c->io, NULL, NULL);
    mg_io_setcb(c->io, NULL, reply_written, reply_event, f);
    mg_io_enable(c->io, EV_WRITE);
}

static void connect_failed(struct mg_splice *s)
{
    struct fwd *f = (struct fwd *)s;
    fwd_reply(f, 503, "upstream connect error\n", "upstream_connect_failure");
}

static void dial(struct fwd *f, const struct sockaddr *sa, socklen_t salen)
{
    char ip[64], label[80];
    struct mg_addr a;
    if (mg_addr_from_sockaddr(&a, sa) != 0) {
        fwd_reply(f, 503, "no usable address\n", "dns_resolution_failure");
        return;
    }
    mg_addr_ip_str(&a, ip, sizeof(ip));
    snprintf(label, sizeof(label), a.family == AF_INET6 ? "[%s]:%u" : "%s:%u", ip, a.port);
    f->s.on_connect_fail = connect_failed;
    f->s.greeting = "HTTP/1.1 200 Connection established\r\n\r\n";
    f->s.status = 200;
    f->s.idle_ms = f->s.c->snap->cfg->proxy.timeout_idle_ms;
    mg_splice_connect_addr(&f->s, sa, salen, label, FWD_CONNECT_TIMEOUT_MS);
}

static void dns_cb(int err, const struct mg_addr *addrs, size_t n, void *arg)
{
    struct fwd *f = arg;
    f->dnsreq = NULL;
    f->resolving = false;
    struct mg_conn *c = f->s.c;
    mg_conn_ref(c);
    if (err || n == 0) {
        fwd_reply(f, 503, "name resolution failed\n", "dns_resolution_failure");
    } else if (mg_egress_resolved_denied(c->snap->egress, addrs[0].family, addrs[0].ip)) {
        /* the name points into a denied range (DNS rebinding); checked on
         * every use, cached answers included */
        char ip[64];
        mg_addr_ip_str(&addrs[0], ip, sizeof(ip));
        snprintf(f->s.upstream_host, sizeof(f->s.upstream_host), "%s", ip);
        count_refusal(f, mg_egress_reason_name(MG_EGRESS_RESOLVED_DENIED));
        fwd_reply(f, 403, "egress destination not allowed\n",
                  mg_egress_log_reason(MG_EGRESS_CONNECT, MG_EGRESS_RESOLVED_DENIED));
    } else {
        struct sockaddr_storage ss;
        socklen_t sl;
        sl = mg_addr_to_sockaddr(&addrs[0], f->dial_port, &ss);
        dial(f, (struct sockaddr *)&ss, sl);
    }
    mg_conn_unref(c);
}

/* Resolve `name` on the worker's cached resolver, never blocking it; the
 * answer (or its failure: 503) continues in dns_cb. */
static void resolve(struct fwd *f, const char *name, uint16_t port)
{
    struct mg_conn *c = f->s.c;
    snprintf(f->s.upstream_host, sizeof(f->s.upstream_host), "%s:%u", name, port);
    f->dial_port = port;
    f->resolving = true;
    struct mg_dns_req *rq = mg_dns_resolve(c->w->resolver, name, AF_UNSPEC, dns_cb, f);
    if (f->resolving)                   /* not answered synchronously */
        f->dnsreq = rq;
}

/* Where the tunnel goes: the entry's endpoints when it has any (STATIC
 * addresses, or names resolved here), else the name asked for resolved
 * here, else (an IP literal the registry or ALLOW_ANY let through) that
 * address. */
static void route_tunnel(struct fwd *f, const struct mg_egress_verdict *v)
{
    struct mg_conn *c = f->s.c;
    struct sockaddr_storage ss;
    socklen_t sl;
    struct mg_addr a;
    const struct mg_service_entry *se = v->se;
    /* A destination this gateway reaches over TLS of its own (an in-mesh
     * host over ISTIO_MUTUAL by rule or auto mTLS, or a DestinationRule
     * tls): the tunnel goes through its cluster, and the client's bytes
     * travel inside that TLS, as a sidecar wraps an application's TCP. */
    const struct mg_fwd_route *fr = mg_snapshot_fwd_route(c->snap, f->host, f->port);
    struct mg_cluster *cl = fr && fr->route.n_dests ? fr->route.dests[0].cluster : NULL;
    if (cl && cl->n_eps && (cl->tls || cl->mesh)) {
        struct mg_cluster_rt *rt = &cl->rt[c->w->id < cl->n_workers ? c->w->id : 0];
        size_t ep = mg_cluster_pick(cl, rt, c->w, 0);
        if (ep != SIZE_MAX && cl->eps[ep].resolved) {
            f->s.on_connect_fail = connect_failed;
            f->s.greeting = "HTTP/1.1 200 Connection established\r\n\r\n";
            f->s.status = 200;
            f->s.idle_ms = c->snap->cfg->proxy.timeout_idle_ms;
            mg_splice_connect(&f->s, cl, &cl->eps[ep]);
            return;
        }
    }
    if (se && se->n_endpoints) {
        const struct mg_workload_entry *we = &se->endpoints[mg_worker_rand(c->w) % se->n_endpoints];
        uint16_t port = mg_egress_endpoint_port(we, v->se_port);
        if (we->address && mg_addr_parse_ip(&a, we->address) == 0) {
            sl = mg_addr_to_sockaddr(&a, port, &ss);
            dial(f, (struct sockaddr *)&ss, sl);
        } else if (we->address && strncmp(we->address, "unix://", 7) != 0) {
            resolve(f, we->address, port);
        } else {
            fwd_reply(f, 503, "no usable endpoint\n", "no_healthy_upstream");
        }
        return;
    }
    uint16_t port = v->se_port && v->se_port->target_port ? v->se_port->target_port : f->port;
    if (v->ip_literal && mg_addr_parse_ip(&a, f->host) == 0) {
        sl = mg_addr_to_sockaddr(&a, port, &ss);
        dial(f, (struct sockaddr *)&ss, sl);
        return;
    }
    resolve(f, f->host, port);
}

/* AuthorizationPolicy on the CONNECT, as an HTTP request: hosts match the
 * CONNECT authority (host:port, as Envoy's :authority for CONNECT), ports
 * the port asked for, principals the client's verified mTLS identity. */
static bool authorize(struct fwd *f)
{
    struct mg_conn *c = f->s.c;
    const struct mg_policy_set *ps = c->snap->access ? mg_access_policies(c->snap->access) : NULL;
    if (!ps)
        return true;
    struct mg_access_conn ac = {
        .peer = c->peer,
        .local = c->local,
        .sni = c->sni[0] ? c->sni : NULL,
        .principal = c->ssl && c->principal[0] ? c->principal : NULL,
    };
    ac.local.port = f->port;
    struct mg_access_req rq = {
        .method = "CONNECT",
        .authority = f->target,
        .path = "",
        .path_query = "",
        .scheme = "http",
    };
    struct mg_attrs at;
    mg_access_attrs(c->snap->cfg, &ac, &rq, &at);
    struct mg_authz_result res;
    mg_authz_decide(ps, &at, &res);
    f->s.policy = res.decided_by.policy;
    if (res.decision == MG_AUTHZ_DENY) {
        f->s.reason = "rbac_policy";
        return false;
    }
    if (res.custom) {
        /* ext_authz has no CONNECT client here: fail closed */
        f->s.policy = res.custom_match.policy;
        f->s.reason = "ext_authz_connect_unsupported";
        return false;
    }
    return true;
}

static void on_connect(struct fwd *f, const struct mg_h1_request *q)
{
    struct mg_conn *c = f->s.c;
    size_t tl = q->target_len < sizeof(f->target) - 1 ? q->target_len : sizeof(f->target) - 1;
    memcpy(f->target, q->target, tl);
    f->target[tl] = '\0';
    f->s.method = "CONNECT";
    f->s.target = f->target;
    f->s.authority = f->target;
    if (q->target_len >= sizeof(f->target) ||
        mg_split_host_port(f->target, f->host, sizeof(f->host), &f->port) != 0 || !f->port) {
        fwd_reply(f, 400, "bad CONNECT target\n", "malformed_request");
        return;
    }
    struct mg_egress_verdict v;
    if (!mg_egress_check(c->snap->egress, f->host, f->port, MG_EGRESS_CONNECT, &v)) {
        count_refusal(f, mg_egress_reason_name(v.reason));
        fwd_reply(f, v.status ? v.status : 403, "egress destination not allowed\n",
                  mg_egress_log_reason(MG_EGRESS_CONNECT, v.reason));
        return;
    }
    if (!authorize(f)) {
        count_refusal(f, f->s.reason);
        fwd_reply(f, 403, "RBAC: access denied", f->s.reason);
        return;
    }
    route_tunnel(f, &v);
}

static void head_read(struct mg_io *io, void *arg)
{
    struct fwd *f = arg;
    struct mg_conn *c = f->s.c;
    if (f->answered || f->s.up || f->resolving)
        return;
    mg_conn_ref(c);
    struct evbuffer *in = mg_io_get_input(io);
    size_t max_head = (size_t)c->snap->cfg->proxy.max_request_headers_kb * 1024;
    size_t avail = evbuffer_get_length(in);
    size_t want = avail < max_head + 1 ? avail : max_head + 1;
    const char *p = (const char *)evbuffer_pullup(in, (ev_ssize_t)want);
    struct mg_h1_limits lim = { max_head, MG_H1_MAX_HEADERS };
    struct mg_h1_request q;
    int status = 400;
    ssize_t hl = p ? mg_h1_parse_request(p, want, &lim, &q, &status) : 0;
    if (hl == 0 && want > max_head) {
        hl = -1;
        status = 431;
    }
    if (hl < 0) {
        f->s.rx += want;
        fwd_reply(f, status, "bad request\n", status == 431 ? "headers_too_large" : "malformed_request");
    } else if (hl > 0) {
        f->s.rx += (uint64_t)hl;
        if (q.connect) {
            struct mg_h1_request qc = q;
            char *head = mg_xmalloc((size_t)hl);
            memcpy(head, p, (size_t)hl);
            /* re-point the parsed fields at the copy before draining */
            qc.target = head + (q.target - p);
            evbuffer_drain(in, (size_t)hl);
            mg_io_disable(io, EV_READ); /* tunnel bytes wait for the splice */
            on_connect(f, &qc);
            free(head);
        } else if (c->port->start_http) {
            /* Not a tunnel: the HTTP/1 codec takes the connection over and
             * parses this head again from the input buffer (absolute-form
             * requests run the request path; see mg_request_run). */
            void (*next)(struct mg_conn *) = c->port->start_http;
            f->s.logged = true;
            mg_splice_release(&f->s);
            free(f);
            c->codec = NULL;
            c->codec_free = NULL;
            c->codec_drain = NULL;
            next(c);
        } else {
            f->s.method = "-";
            fwd_reply(f, 501, "only CONNECT is served on this port\n", "forward_method_unsupported");
        }
    }
    mg_conn_unref(c);
}

static void head_event(struct mg_io *io, short what, void *arg)
{
    (void)io;
    (void)what;
    struct fwd *f = arg;
    struct mg_conn *c = f->s.c;
    mg_conn_ref(c);
    if (!f->s.reason)
        f->s.reason = (what & MG_IO_TIMEOUT) ? "request_headers_timeout" : "downstream_closed";
    mg_splice_close(&f->s);
    mg_conn_unref(c);
}

static void fwd_free(struct mg_conn *c)
{
    struct fwd *f = c->codec;
    if (f->dnsreq) {
        mg_dns_cancel(f->dnsreq);       /* its callback does not run */
        f->dnsreq = NULL;
    }
    if (!f->s.method)
        f->s.logged = true;             /* nothing was asked: no log line */
    mg_splice_release(&f->s);
    free(f);
    c->codec = NULL;
}

/* Waiting for a head or a resolver answer: nothing in flight; a tunnel of an
 * older generation at the drain deadline was allowed by configuration that
 * is gone. */
static bool fwd_drain(struct mg_conn *c)
{
    struct fwd *f = c->codec;
    if (f->answered)
        return false;
    if (!f->s.method)
        f->s.logged = true;
    return mg_splice_drain(&f->s);
}

void mg_forward_start(struct mg_conn *c)
{
    struct fwd *f = mg_xcalloc(1, sizeof(*f));
    mg_splice_init(&f->s, c);
    c->codec = f;
    c->codec_free = fwd_free;
    c->codec_drain = fwd_drain;
    int64_t ms = c->snap->cfg->proxy.timeout_request_headers_ms;
    struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000) };
    mg_io_setcb(c->io, head_read, NULL, head_event, f);
    mg_io_set_timeouts(c->io, ms > 0 ? &tv : NULL, NULL);
    mg_io_enable(c->io, EV_READ | EV_WRITE);
}
