/* edge.c - the headers only the proxy may set, removed from client
 * requests before anything reads them (route/route.h). */
#include "route/route.h"
#include <stdio.h>
#include <string.h>
#include "base/base.h"

/* Envoy's connection manager replaces these before any filter runs, so
 * routing, authorization and ext_authz see the proxy's values, never a
 * client's copy: what is authorized is what is forwarded. */
static bool proxy_only(const char *n)
{
    return mg_has_prefix(n, "x-envoy-") || mg_has_prefix(n, "x-meshgate-") ||
           strcmp(n, "x-forwarded-client-cert") == 0 || strcmp(n, "x-forwarded-proto") == 0;
}

/* Envoy's codec drops these (and those the client names in Connection)
 * before the filters, so they can neither satisfy a policy nor remove a
 * header the proxy adds later (JWT claims, ext_authz
 * headersToUpstreamOnAllow). */
static bool hop_by_hop(const char *n)
{
    static const char *const hop[] = { "connection", "keep-alive", "proxy-connection", "te",
                                       "trailer", "transfer-encoding", "upgrade" };
    for (size_t i = 0; i < MG_ARRAY_LEN(hop); i++)
        if (strcmp(n, hop[i]) == 0)
            return true;
    return false;
}

static bool named_in_connection(const struct mg_kv *h, size_t n, const char *name)
{
    size_t nl = strlen(name);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(h[i].key, "connection") != 0)
            continue;
        const char *v = h[i].value;
        while (*v) {
            while (*v == ' ' || *v == '\t' || *v == ',')
                v++;
            const char *e = v;
            while (*e && *e != ',' && *e != ' ' && *e != '\t')
                e++;
            if ((size_t)(e - v) == nl && mg_strncasecmp(v, name, nl) == 0)
                return true;
            v = e;
        }
    }
    return false;
}

bool mg_edge_drops(const struct mg_kv *h, size_t n, const char *name)
{
    return proxy_only(name) || hop_by_hop(name) || named_in_connection(h, n, name);
}

/* Does a TE value name the "trailers" token? */
static bool te_trailers(const char *v)
{
    while (*v) {
        while (*v == ' ' || *v == '\t' || *v == ',')
            v++;
        const char *e = v;
        while (*e && *e != ',' && *e != ';' && *e != ' ' && *e != '\t')
            e++;
        if (e - v == 8 && mg_strncasecmp(v, "trailers", 8) == 0)
            return true;
        while (*e && *e != ',')
            e++;
        v = e;
    }
    return false;
}

size_t mg_edge_sanitize(const struct mg_kv *in, size_t n, const struct mg_edge_own *own,
                        struct mg_kv *out)
{
    size_t o = 0;
    bool te = false;
    for (size_t i = 0; i < n; i++) {
        bool own_name = false;
        for (size_t k = 0; k < own->n_drop && !own_name; k++)
            own_name = own->drop[k] && strcmp(in[i].key, own->drop[k]) == 0;
        /* Of TE only "trailers" goes on, as Envoy keeps it: a gRPC server
         * refuses a request without it. */
        if (strcmp(in[i].key, "te") == 0 && !te && te_trailers(in[i].value)) {
            te = true;
            out[o] = in[i];
            out[o++].value = (char *)"trailers";
            continue;
        }
        if (!own_name && !mg_edge_drops(in, n, in[i].key))
            out[o++] = in[i];
    }
    const char *set[3][2] = {
        { "x-forwarded-proto", own->proto },
        { "x-envoy-external-address", own->external_address },
        { "x-forwarded-client-cert", own->xfcc },
    };
    for (size_t i = 0; i < 3; i++) {
        if (!set[i][1])
            continue;
        memset(&out[o], 0, sizeof(out[o]));
        out[o].key = (char *)set[i][0];
        out[o++].value = (char *)set[i][1];
    }
    return o;
}

size_t mg_edge_xfcc(char *buf, size_t cap, const char *by, const char *hash, const char *uri)
{
    bool h = hash && *hash, u = uri && *uri;
    int n = snprintf(buf, cap, "%s%s%s%s%s%s", by ? "By=" : "", by ? by : "",
                     h ? (by ? ";Hash=" : "Hash=") : "", h ? hash : "",
                     u ? (by || h ? ";URI=" : "URI=") : "", u ? uri : "");
    return n < 0 ? 0 : (size_t)n;
}
