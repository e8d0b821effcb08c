/* admin.c - the admin listener on the main thread (plain evhttp; it only
 * reads per-worker counters and the current snapshot, never locks a
 * worker). */
#include "control/internal.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include "access/access.h"
#include "http1/http1.h"
#include "sidecar/sidecar.h"
#include "log/log.h"
#include "snapshot/snapshot.h"
#include "upstream/upstream.h"
#include "base/base.h"
#include "net/net.h"

struct mg_admin {
    struct evhttp *http;
    struct mg_worker *w;
    int n;
    struct mg_snapshot *snap;           /* borrowed */
    bool listeners_ready;
    bool draining;                      /* SIGTERM seen: /ready answers 503 from now on */
    mg_ready_hook hook;
    void *hook_arg;
    mg_metrics_hook metrics_hook;
    void *metrics_arg;
};

static void reply(struct evhttp_request *req, int code, const char *ctype, const char *body, size_t len)
{
    struct evbuffer *b = evbuffer_new();
    evbuffer_add(b, body, len);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", ctype);
    evhttp_send_reply(req, code, mg_h1_reason(code), b);
    evbuffer_free(b);
}

static void json_s(struct mg_buf *b, const char *s)
{
    mg_buf_add(b, "\"", 1);
    for (; s && *s; s++) {
        if (*s == '"' || *s == '\\')
            mg_buf_add(b, "\\", 1);
        if ((unsigned char)*s < 0x20)
            mg_buf_printf(b, "\\u%04x", (unsigned char)*s);
        else
            mg_buf_add(b, s, 1);
    }
    mg_buf_add(b, "\"", 1);
}

static const char *mode_name(const struct mg_srv *sv)
{
    if (!sv->tls)
        return sv->redirect ? "HTTPS_REDIRECT" : "PLAINTEXT";
    switch (sv->cfg->tls.mode) {
    case MG_TLS_SIMPLE: return "SIMPLE";
    case MG_TLS_MUTUAL: return "MUTUAL";
    case MG_TLS_OPTIONAL_MUTUAL: return "OPTIONAL_MUTUAL";
    case MG_TLS_ISTIO_MUTUAL: return "ISTIO_MUTUAL";
    default: return "OTHER";
    }
}


/* A cluster's locality-aware balancing: how it was chosen, each endpoint's
 * locality with its priority or locality weight, and with priorities the
 * share of new requests each takes now (ejections counted). */
static void dump_locality(struct mg_buf *b, const struct mg_cluster *c)
{
    mg_buf_adds(b, ",\"locality_lb\":{\"mode\":");
    json_s(b, c->locality_mode);
    mg_buf_adds(b, ",\"endpoints\":[");
    for (size_t e = 0; e < c->n_eps; e++) {
        const struct mg_endpoint *ep = &c->eps[e];
        mg_buf_adds(b, e ? ",{\"endpoint\":" : "{\"endpoint\":");
        json_s(b, ep->label);
        mg_buf_adds(b, ",\"locality\":");
        if (ep->locality)
            json_s(b, ep->locality);
        else
            mg_buf_adds(b, "null");
        if (c->n_prio > 1)
            mg_buf_printf(b, ",\"priority\":%u", ep->prio);
        if (c->loc_weight && ep->excluded)
            mg_buf_adds(b, ",\"excluded\":true");
        else if (c->loc_weight)
            mg_buf_printf(b, ",\"locality_weight\":%u", c->loc_weight[ep->loc]);
        mg_buf_adds(b, "}");
    }
    mg_buf_adds(b, "]");
    unsigned load[MG_LB_MAX_PRIO];
    bool health = c->od && atomic_load_explicit(&c->od->n_ejected, memory_order_relaxed);
    if (c->n_prio > 1 && mg_locality_priority_load(c, health, load)) {
        mg_buf_adds(b, ",\"priority_load_percent\":[");
        for (unsigned p = 0; p < c->n_prio; p++)
            mg_buf_printf(b, "%s%u", p ? "," : "", load[p]);
        mg_buf_adds(b, "]");
    }
    mg_buf_adds(b, "}");
}
static void config_dump(struct mg_buf *b, const struct mg_snapshot *s)
{
    mg_buf_printf(b, "{\"generation\":%llu,\"policy_generation\":%llu,\"source\":",
                  (unsigned long long)s->generation, (unsigned long long)s->policy_gen);
    json_s(b, s->cfg->source);
    if (s->geoip) {                     /* the database this generation opened */
        mg_buf_adds(b, ",\"geoip\":{\"path\":");
        json_s(b, mg_geoip_path(s->geoip));
        mg_buf_adds(b, ",\"database_type\":");
        json_s(b, mg_geoip_type(s->geoip));
        mg_buf_adds(b, "}");
    }
    mg_buf_adds(b, ",\"listeners\":[");
    for (size_t i = 0; i < s->n_ports; i++) {
        const struct mg_port *p = &s->ports[i];
        mg_buf_printf(b, "%s{\"port\":%u,\"tls\":%s,", i ? "," : "", p->number,
                      p->tls ? "true" : "false");
        if (p->forward)                 /* Proxy.spec.outbound: its server is outbound.tls */
            mg_buf_adds(b, "\"forward_proxy\":true,");
        mg_buf_adds(b, "\"servers\":[");
        for (size_t j = 0; j < p->n_srv; j++) {
            const struct mg_srv *sv = p->srv[j];
            mg_buf_printf(b, "%s{\"name\":", j ? "," : "");
            json_s(b, sv->label);
            mg_buf_adds(b, ",\"mode\":");
            json_s(b, mode_name(sv));
            mg_buf_adds(b, ",\"hosts\":[");
            for (size_t h = 0; h < sv->n_hosts; h++) {
                if (h)
                    mg_buf_adds(b, ",");
                json_s(b, sv->hosts[h]);
            }
            mg_buf_adds(b, "],\"virtual_hosts\":[");
            for (size_t v = 0; v < sv->routes.n; v++) {
                mg_buf_printf(b, "%s{\"host\":", v ? "," : "");
                json_s(b, sv->routes.v[v].host);
                mg_buf_adds(b, ",\"routes\":[");
                for (size_t r = 0; r < sv->routes.v[v].n_routes; r++) {
                    if (r)
                        mg_buf_adds(b, ",");
                    json_s(b, sv->routes.v[v].routes[r]->name);
                }
                mg_buf_adds(b, "]}");
            }
            mg_buf_adds(b, "]}");
        }
        mg_buf_adds(b, "]}");
    }
    mg_buf_adds(b, "],\"clusters\":[");
    for (size_t i = 0; i < s->n_clusters; i++) {
        const struct mg_cluster *c = s->clusters[i];
        mg_buf_printf(b, "%s{\"name\":", i ? "," : "");
        json_s(b, c->name);
        mg_buf_printf(b, ",\"tls\":%s,\"endpoints\":[", c->tls ? "true" : "false");
        for (size_t e = 0; e < c->n_eps; e++) {
            if (e)
                mg_buf_adds(b, ",");
            json_s(b, c->eps[e].label);
        }
        mg_buf_adds(b, "]");
        if (c->od) {
            const struct mg_od *od = c->od;
            mg_buf_printf(b, ",\"outlier_detection\":{\"consecutive_5xx\":%d,"
                          "\"consecutive_gateway_failure\":%d,\"consecutive_local_origin_failure\":%d,"
                          "\"split_external_local_origin_errors\":%s,\"interval_ms\":%lld,"
                          "\"base_ejection_time_ms\":%lld,\"max_ejection_percent\":%d,"
                          "\"min_health_percent\":%d,\"ejected_endpoints\":[",
                          od->c5xx, od->cgw, od->clocal, od->split ? "true" : "false",
                          (long long)od->interval_ms, (long long)od->base_ms, od->max_eject_pct,
                          od->min_health_pct);
            bool first = true;
            for (size_t e = 0; e < c->n_eps && e < od->n; e++) {
                if (!mg_od_ejected(od, e))
                    continue;
                mg_buf_adds(b, first ? "" : ",");
                first = false;
                json_s(b, c->eps[e].label);
            }
            mg_buf_adds(b, "]}");
        }
        if (c->locality_mode)
            dump_locality(b, c);
        mg_buf_adds(b, "}");
    }
    mg_buf_adds(b, "],");
    mg_access_dump(b, s);
    mg_inbound_dump(b, s);
    mg_buf_adds(b, "}\n");
}

static void handle(struct evhttp_request *req, void *arg)
{
    struct mg_admin *a = arg;
    const char *uri = evhttp_request_get_uri(req);
    size_t ul = strcspn(uri, "?");
    struct mg_buf b = { 0 };
    if (ul == 6 && strncmp(uri, "/ready", 6) == 0) {
        bool ready = a->listeners_ready && !a->draining && (!a->hook || a->hook(a->hook_arg));
        if (a->draining)
            reply(req, 503, "text/plain", "DRAINING\n", 9);
        else
            reply(req, ready ? 200 : 503, "text/plain", ready ? "LIVE\n" : "NOT READY\n", ready ? 5 : 10);
    } else if (ul == 17 && strncmp(uri, "/stats/prometheus", 17) == 0) {
        struct mg_wmetrics **m = mg_xcalloc((size_t)(a->n ? a->n : 1), sizeof(*m));
        for (int i = 0; i < a->n; i++)
            m[i] = a->w[i].metrics;
        mg_metrics_render(&b, m, (size_t)a->n);
        mg_access_metrics_render(&b);
        if (a->snap)
            mg_outlier_metrics_render(&b, a->snap->clusters, a->snap->n_clusters);
        mg_metrics_cert_expiry(&b, a->snap);
        if (a->metrics_hook)
            a->metrics_hook(a->metrics_arg, &b);
        free(m);
        reply(req, 200, "text/plain; version=0.0.4", b.p ? b.p : "", b.len);
    } else if (ul == 12 && strncmp(uri, "/config_dump", 12) == 0 && a->snap) {
        config_dump(&b, a->snap);
        reply(req, 200, "application/json", b.p, b.len);
    } else {
        reply(req, 404, "text/plain", "not found\n", 10);
    }
    mg_buf_free(&b);
}

struct mg_admin *mg_admin_start(struct event_base *base, const char *addr, char *err, size_t errlen)
{
    char host[128];
    uint16_t port = 0;
    if (mg_split_host_port(addr, host, sizeof(host), &port) < 0 || !port) {
        snprintf(err, errlen, "bad admin address '%s' (want ip:port)", addr);
        return NULL;
    }
    struct mg_admin *a = mg_xcalloc(1, sizeof(*a));
    a->http = evhttp_new(base);
    if (!a->http || evhttp_bind_socket(a->http, host, port) != 0) {
        snprintf(err, errlen, "cannot listen on admin address %s", addr);
        if (a->http)
            evhttp_free(a->http);
        free(a);
        return NULL;
    }
    evhttp_set_allowed_methods(a->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
    evhttp_set_gencb(a->http, handle, a);
    return a;
}

void mg_admin_set_draining(struct mg_admin *a)
{
    if (a)
        a->draining = true;
}

void mg_admin_set_ready_hook(struct mg_admin *a, mg_ready_hook fn, void *arg)
{
    a->hook = fn;
    a->hook_arg = arg;
}

void mg_admin_update(struct mg_admin *a, struct mg_worker *w, int n, struct mg_snapshot *s,
                     bool listeners_ready)
{
    a->w = w;
    a->n = n;
    a->snap = s;
    a->listeners_ready = listeners_ready;
}

void mg_admin_free(struct mg_admin *a)
{
    if (!a)
        return;
    evhttp_free(a->http);
    free(a);
}

void mg_admin_set_metrics_hook(struct mg_admin *a, mg_metrics_hook fn, void *arg)
{
    if (!a)
        return;
    a->metrics_hook = fn;
    a->metrics_arg = arg;
}
