/* attrs.c - the policy attributes of a request or a TCP connection, built
 * one way for the gateway, the sidecar, TCP/PASSTHROUGH and `meshgate
 * authz` (access.h). Kept apart from access.c, which runs the phase on the
 * worker's event loop, so a static link of the explainer pulls this object
 * and nothing of libevent. */
#include "access/access.h"
#include <stdlib.h>
#include <string.h>
#include "config/config.h"
#include "policy/policy.h"

static bool is_xff(const struct mg_header *h)
{
    return h->name_len == 15 && memcmp(h->name, "x-forwarded-for", 15) == 0;
}

/* remote.ip: the X-Forwarded-For headers joined with ',' (a repeated
 * header is one list) and read as the MeshConfig and the mode say. */
static void remote_from_xff(const struct mg_config *cfg, const struct mg_access_conn *c,
                            const struct mg_access_req *rq, struct mg_addr *out)
{
    size_t len = 0, n = 0;
    for (size_t i = 0; i < rq->n_headers; i++)
        if (is_xff(&rq->headers[i])) {
            len += rq->headers[i].value_len + 1;
            n++;
        }
    char small[512], *xff = NULL;
    if (n) {
        xff = len <= sizeof(small) ? small : mg_xmalloc(len);
        size_t o = 0;
        for (size_t i = 0; i < rq->n_headers; i++) {
            if (!is_xff(&rq->headers[i]))
                continue;
            if (o)
                xff[o++] = ',';
            memcpy(xff + o, rq->headers[i].value, rq->headers[i].value_len);
            o += rq->headers[i].value_len;
        }
        xff[o] = '\0';
    }
    mg_policy_remote_addr(c->client.family ? &c->client : &c->peer, xff, cfg->mesh.num_trusted_proxies,
                          cfg->proxy.mode == MG_MODE_GATEWAY, out);
    if (xff != small)
        free(xff);
}

void mg_access_attrs(const struct mg_config *cfg, const struct mg_access_conn *c,
                     const struct mg_access_req *rq, struct mg_attrs *out)
{
    memset(out, 0, sizeof(*out));
    out->source = c->peer;
    out->dest = c->local;
    out->sni = c->sni;
    out->peer_principal = c->principal;
    if (c->remote)
        out->remote = *c->remote;
    else if (rq)
        remote_from_xff(cfg, c, rq, &out->remote);
    else
        out->remote = c->client.family ? c->client : c->peer;
    if (c->geoip) {
        struct mg_geo gs, gr;
        mg_geoip_lookup_cached(c->geoip, c->geo_cache, &out->source, &out->remote, &gs, &gr);
        memcpy(out->source_country, gs.country, sizeof(out->source_country));
        out->source_asn = gs.asn;
        memcpy(out->remote_country, gr.country, sizeof(out->remote_country));
        out->remote_asn = gr.asn;
    }
    if (!rq)
        return;
    out->is_http = true;
    out->method = rq->method;
    out->host = rq->authority;
    out->path = rq->path;
    out->path_len = rq->path_len;
    out->path_query = rq->path_query;
    out->scheme = rq->scheme;
    out->headers = rq->headers;
    out->n_headers = rq->n_headers;
    if (rq->authn)
        mg_reqauthn_attrs(rq->authn, out);
}
