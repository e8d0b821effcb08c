/* config_net.c - Gateway and VirtualService (networking.istio.io). */
#include <stdlib.h>
#include <string.h>
#include "config/internal.h"

/* ---- Gateway ---- */

const char *const mg_cfg_server_tls_modes[6] = { "PASSTHROUGH", "SIMPLE", "MUTUAL",
                                                 "AUTO_PASSTHROUGH", "ISTIO_MUTUAL",
                                                 "OPTIONAL_MUTUAL" };
static const char *const tls_versions[] = { "TLS_AUTO", "TLSV1_0", "TLSV1_1", "TLSV1_2",
                                            "TLSV1_3" };

static bool read_server_tls_mode(struct mg_cfg *x, const struct mg_ynode *k,
                                 const struct mg_ynode *v, void *obj)
{
    struct mg_server_tls *t = obj;
    int m;

    if (!mg_cfg_enum(x, k->str, v, mg_cfg_server_tls_modes, NULL,
                     MG_ARRAY_LEN(mg_cfg_server_tls_modes), &m))
        return false;
    t->mode = (enum mg_tls_mode)m;
    t->has_mode = true;
    return true;
}

static void check_server_tls(struct mg_cfg *x, const struct mg_cfg_read *r, void *obj)
{
    struct mg_server_tls *t = obj;
    struct mg_pos at = r->m->pos;

    if (t->credential_name && !*t->credential_name) {
        free(t->credential_name);       /* "" is how YAML templates write "none" */
        t->credential_name = NULL;
    }
    bool files = t->server_certificate || t->private_key;
    bool creds = t->credential_name || t->credential_names.n;
    if (t->mode == MG_TLS_SIMPLE || t->mode == MG_TLS_MUTUAL || t->mode == MG_TLS_OPTIONAL_MUTUAL) {
        if (!creds && !(t->server_certificate && t->private_key))
            mg_error(x->d, at, "TLS mode %s needs credentialName or serverCertificate and "
                     "privateKey", mg_cfg_server_tls_modes[t->mode]);
        if (creds && files)
            mg_error(x->d, at, "credentialName and serverCertificate/privateKey cannot be "
                     "used together");
        if (t->mode != MG_TLS_SIMPLE && !creds && !t->ca_certificates)
            mg_error(x->d, at, "TLS mode %s needs caCertificates (or a credentialName "
                     "holding ca.crt)", mg_cfg_server_tls_modes[t->mode]);
    }
    if (t->mode == MG_TLS_ISTIO_MUTUAL && (files || creds || t->ca_certificates))
        mg_error(x->d, at, "TLS mode ISTIO_MUTUAL uses the proxy identity; "
                 "serverCertificate, privateKey, caCertificates and credentialName must be empty");
}

static const char *const server_tls_unsupported[] = { "caCertCredentialName", "tlsCertificates" };
static const struct mg_cfg_field server_tls_rows[] = {
    MG_CFG_BOOL("httpsRedirect", struct mg_server_tls, https_redirect),
    MG_CFG_FN("mode", read_server_tls_mode),
    MG_CFG_FILE("serverCertificate", struct mg_server_tls, server_certificate),
    MG_CFG_FILE("privateKey", struct mg_server_tls, private_key),
    MG_CFG_FILE("caCertificates", struct mg_server_tls, ca_certificates),
    MG_CFG_FILE("caCrl", struct mg_server_tls, ca_crl),
    MG_CFG_STR("credentialName", struct mg_server_tls, credential_name),
    MG_CFG_SLIST("credentialNames", struct mg_server_tls, credential_names),
    MG_CFG_SLIST("subjectAltNames", struct mg_server_tls, subject_alt_names),
    MG_CFG_SLIST("verifyCertificateSpki", struct mg_server_tls, verify_certificate_spki),
    MG_CFG_SLIST("verifyCertificateHash", struct mg_server_tls, verify_certificate_hash),
    MG_CFG_ENUM("minProtocolVersion", struct mg_server_tls, min_version, tls_versions),
    MG_CFG_ENUM("maxProtocolVersion", struct mg_server_tls, max_version, tls_versions),
    MG_CFG_SLIST("cipherSuites", struct mg_server_tls, cipher_suites),
    MG_CFG_BOOL("insecureSkipVerify", struct mg_server_tls, insecure_skip_verify),
    MG_CFG_UNSUPPORTED_ANY(server_tls_unsupported),
};
const struct mg_cfg_table mg_cfg_server_tls = {
    MG_CFG_ROWS(server_tls_rows), .present_at = MG_CFG_FLAG_AT(struct mg_server_tls, present),
    .pos_at = MG_CFG_POS_AT(struct mg_server_tls, pos), .check = check_server_tls,
};

static void check_server(struct mg_cfg *x, const struct mg_cfg_read *r, void *obj)
{
    const struct mg_server *s = obj;
    const struct mg_ynode *port_n = mg_cfg_seen(r, "port");

    if (!port_n)
        mg_error(x->d, s->pos, "%s needs a port", mg_cfg_field(x, NULL));
    else if (!mg_ynode_get(port_n, "number") || !mg_ynode_get(port_n, "protocol"))
        mg_error(x->d, port_n->pos, "%s.port needs a number and a protocol",
                 mg_cfg_field(x, NULL));
    if (s->hosts.n == 0)
        mg_error(x->d, s->pos, "%s needs at least one host", mg_cfg_field(x, NULL));
    for (size_t i = 0; i < s->hosts.n; i++) {
        const char *h = s->hosts.v[i], *slash = strchr(h, '/');
        if (slash && (slash == h || strchr(slash + 1, '/')))
            mg_error(x->d, s->hosts.pos[i], "invalid host \"%s\" in %s (want [namespace/]host)",
                     h, mg_cfg_field(x, NULL));
        else if (!mg_cfg_host_ok(slash ? slash + 1 : h))
            mg_error(x->d, s->hosts.pos[i], "invalid host \"%s\" in %s (want a DNS name, a "
                     "wildcard only as the leftmost label)", h, mg_cfg_field(x, NULL));
    }
    if (port_n) {
        const struct mg_ynode *name_n = mg_ynode_get(port_n, "name");
        const struct mg_ynode *proto_n = mg_ynode_get(port_n, "protocol");
        if (proto_n && proto_n->type == MG_YSCALAR && proto_n->len == 0)
            /* "" (detect) is a ServiceEntry form; a Gateway port names its protocol */
            mg_error(x->d, proto_n->pos, "invalid protocol \"\" for %s.port.protocol",
                     mg_cfg_field(x, NULL));
        if (!s->port_name || !*s->port_name)
            mg_error(x->d, name_n ? name_n->pos : port_n->pos, "%s: port name must be set",
                     mg_cfg_field(x, NULL));
    }
    if ((s->protocol == MG_PROTO_HTTPS || s->protocol == MG_PROTO_TLS) && !s->tls.present) {
        mg_error(x->d, s->pos, "%s: protocol %s needs tls settings", mg_cfg_field(x, NULL),
                 mg_app_proto_name(s->protocol));
    } else if (s->protocol != MG_PROTO_HTTPS && s->protocol != MG_PROTO_TLS && s->tls.present) {
        /* Istio: a plain-HTTP port may carry only httpsRedirect (a tls block
         * whose mode stays PASSTHROUGH and that names no files); any other
         * port none at all */
        bool http = s->protocol == MG_PROTO_HTTP || s->protocol == MG_PROTO_HTTP2 ||
                    s->protocol == MG_PROTO_GRPC || s->protocol == MG_PROTO_GRPC_WEB;
        const struct mg_server_tls *t = &s->tls;
        if (!http)
            mg_error(x->d, t->pos, "%s: server cannot have TLS settings for non HTTPS/TLS ports",
                     mg_cfg_field(x, NULL));
        else if ((t->mode != MG_TLS_PASSTHROUGH && t->mode != MG_TLS_AUTO_PASSTHROUGH) ||
                 t->ca_certificates || t->private_key || t->server_certificate)
            mg_error(x->d, t->pos, "%s: server cannot have TLS settings for plain text HTTP "
                     "ports (only httpsRedirect)", mg_cfg_field(x, NULL));
    }
}

static const struct mg_cfg_field server_port_rows[] = {
    MG_CFG_PORT("number", struct mg_server, port),
    MG_CFG_PROTO("protocol", struct mg_server, protocol),
    MG_CFG_STR("name", struct mg_server, port_name),
    MG_CFG_UNSUPPORTED("targetPort"),
};
static const struct mg_cfg_table server_port = { MG_CFG_ROWS(server_port_rows) };
static const struct mg_cfg_field server_rows[] = {
    MG_CFG_GROUP("port", server_port),
    MG_CFG_STR("bind", struct mg_server, bind),
    MG_CFG_SLIST("hosts", struct mg_server, hosts),
    MG_CFG_MAP("tls", struct mg_server, tls, mg_cfg_server_tls),
    MG_CFG_STR("name", struct mg_server, name),
    MG_CFG_UNSUPPORTED("defaultEndpoint"),
};
static const struct mg_cfg_table server = {
    MG_CFG_ROWS(server_rows), .pos_at = MG_CFG_POS_AT(struct mg_server, pos), .check = check_server,
};

static void check_gateway(struct mg_cfg *x, const struct mg_cfg_read *r, void *obj)
{
    const struct mg_gateway *g = obj;
    if (g->n_servers == 0)
        mg_error(x->d, r->m ? r->m->pos : g->meta.pos, "gateway must have at least one server");
    for (size_t i = 0; i < g->n_servers; i++)
        for (size_t j = 0; j < i; j++)
            if (g->servers[i].port_name && g->servers[j].port_name &&
                strcmp(g->servers[i].port_name, g->servers[j].port_name) == 0) {
                mg_error(x->d, g->servers[i].pos, "port names in servers must be unique: "
                         "duplicate name %s (servers[%zu] and servers[%zu])",
                         g->servers[i].port_name, j, i);
                break;
            }
}

static const struct mg_cfg_field gateway_rows[] = {
    MG_CFG_KVLIST("selector", struct mg_gateway, selector),
    MG_CFG_LIST("servers", struct mg_gateway, servers, n_servers, server),
};
static const struct mg_cfg_table gateway = {
    MG_CFG_ROWS(gateway_rows), .check = check_gateway,
};

void mg_cfg_read_gateway(struct mg_cfg *x, const struct mg_ynode *spec, struct mg_gateway *g)
{
    mg_cfg_read_spec(x, spec, &gateway, g);
}

/* ---- VirtualService: routes ---- */

static void check_header_ops(struct mg_cfg *x, const struct mg_cfg_read *r, void *obj)
{
    const struct mg_header_ops *ops = obj;

    for (size_t i = 0; i < ops->set.n; i++)
        if (!mg_cfg_header_name_ok(ops->set.v[i].key))
            mg_error(x->d, ops->set.v[i].pos, "invalid header name \"%s\"", ops->set.v[i].key);
    for (size_t i = 0; i < ops->add.n; i++)
        if (!mg_cfg_header_name_ok(ops->add.v[i].key))
            mg_error(x->d, ops->add.v[i].pos, "invalid header name \"%s\"", ops->add.v[i].key);
}

static const struct mg_cfg_field header_ops_rows[] = {
    MG_CFG_KVLIST("set", struct mg_header_ops, set),
    MG_CFG_KVLIST("add", struct mg_header_ops, add),
    MG_CFG_SLIST("remove", struct mg_header_ops, remove),
};
static const struct mg_cfg_table header_ops = {
    MG_CFG_ROWS(header_ops_rows), .check = check_header_ops,
};
/* `headers: {request: ..., response: ...}` of a route destination or a route */
#define HEADERS_ROWS(T) \
    MG_CFG_MAP("request", T, req_headers, header_ops), \
    MG_CFG_MAP("response", T, resp_headers, header_ops)

static void check_destination(struct mg_cfg *x, const struct mg_cfg_read *r, void *obj)
{
    const struct mg_destination *d = obj;
    if (!d->host || !*d->host)
        mg_error(x->d, r->m->pos, "%s needs a host", mg_cfg_field(x, NULL));
}

static const struct mg_cfg_field destination_port_rows[] = {
    MG_CFG_PORT("number", struct mg_destination, port),
};
static const struct mg_cfg_table destination_port = { MG_CFG_ROWS(destination_port_rows) };
static const struct mg_cfg_field destination_rows[] = {
    MG_CFG_STR("host", struct mg_destination, host),
    MG_CFG_STR("subset", struct mg_destination, subset),
    MG_CFG_GROUP("port", destination_port),
};
static const struct mg_cfg_table destination = {
    MG_CFG_ROWS(destination_rows), .pos_at = MG_CFG_POS_AT(struct mg_destination, pos),
    .check = check_destination,
};

static void init_route_dest(void *obj)
{
    ((struct mg_route_dest *)obj)->weight = -1;
}

static void check_route_dest(struct mg_cfg *x, const struct mg_cfg_read *r, void *obj)
{
    const struct mg_route_dest *rd = obj;
    if (!rd->destination.host && !rd->destination.pos.line)
        mg_error(x->d, rd->pos, "%s needs a destination", mg_cfg_field(x, NULL));
}

static const struct mg_cfg_field route_headers_rows[] = { HEADERS_ROWS(struct mg_route_dest) };
static const struct mg_cfg_table route_headers = { MG_CFG_ROWS(route_headers_rows) };
static const struct mg_cfg_field http_route_dest_rows[] = {
    MG_CFG_MAP("destination", struct mg_route_dest, destination, destination),
    /* relative, as Istio's (their sum need not be 100); the bound keeps a
     * route's total within an int */
    MG_CFG_INT("weight", struct mg_route_dest, weight, 0, 500000),
    MG_CFG_GROUP("headers", route_headers),         /* last: l4_route_dest leaves it out */
};
static const struct mg_cfg_table http_route_dest = {
    MG_CFG_ROWS(http_route_dest_rows), .pos_at = MG_CFG_POS_AT(struct mg_route_dest, pos),
    .init = init_route_dest, .check = check_route_dest,
};
/* tls and tcp routes: the same rows but headers */
static const struct mg_cfg_table l4_route_dest = {
    .rows = http_route_dest_rows, .n = MG_ARRAY_LEN(http_route_dest_rows) - 1,
    .pos_at = MG_CFG_POS_AT(struct mg_route_dest, pos), .init = init_route_dest,
    .check = check_route_dest,
};

/* ---- VirtualService: http ---- */

size_t mg_claim_route_split(const char *name, char **out, size_t max)
{
    static const char pfx[] = "@request.auth.claims";
    const size_t pl = sizeof(pfx) - 1;
    const char *s;
    size_t n = 0, len;

    if (mg_strncasecmp(name, pfx, pl) != 0)
        return 0;
    s = name + pl;
    len = strlen(s);
    bool dot = s[0] == '.' && len > 1;
    if (!dot && !(s[0] == '[' && len > 2 && s[len - 1] == ']'))
        return 0;
    /* a.b.c split on "."; [a][b] split on "][" */
    const char *p = s + 1, *end = dot ? s + len : s + len - 1;
    for (;;) {
        const char *sep = dot ? memchr(p, '.', (size_t)(end - p)) : NULL;
        if (!dot)
            for (const char *q = p; q + 1 < end && !sep; q++)
                if (q[0] == ']' && q[1] == '[')
                    sep = q;
        const char *e = sep ? sep : end;
        if (out && n < max)
            out[n] = mg_xstrndup(p, (size_t)(e - p));
        n++;
        if (!sep)
            break;
        p = sep + (dot ? 1 : 2);
    }
    return n;
}

static bool read_header_matches(struct mg_cfg *x, const char *key, const struct mg_ynode *v,
                                struct mg_header_match **out, size_t *n, bool names)
{
    const struct mg_ynode *k, *e;

    if (!mg_cfg_map(x, key, v))
        return false;
    size_t mark = mg_cfg_push(x, ".%s", key);
    for (size_t i = 0; mg_cfg_next(v, &i, &k, &e);) {
        if (names && mg_claim_route_split(k->str, NULL, 0)) {
            /* a JWT claim (case kept): matched against the verified token */
            struct mg_header_match *h = MG_CFG_PUSH(*out, *n);
            h->name = mg_xstrdup(k->str);
            h->match.pos = k->pos;
            if (!mg_ynode_is_null(e))
                mg_cfg_smatch(x, k->str, e, &h->match);
            continue;
        }
        if (names && !mg_cfg_header_name_ok(k->str)) {
            mg_error(x->d, k->pos, "invalid header name \"%s\" in %s", k->str,
                     mg_cfg_field(x, NULL));
            continue;
        }
        if (names && !mg_pseudo_header_possible(k->str, strlen(k->str)))
            mg_warning(x->d, k->pos, "no request has the pseudo-header \"%s\" (only :authority, "
                       ":path, :method and :scheme) in %s: it is never present", k->str,
                       mg_cfg_field(x, NULL));
        struct mg_header_match *h = MG_CFG_PUSH(*out, *n);
        h->name = mg_xstrdup(k->str);
        if (names)
            mg_lower(h->name);
        h->match.pos = k->pos;
        if (!mg_ynode_is_null(e))
            mg_cfg_smatch(x, k->str, e, &h->match);
    }
    mg_cfg_pop(x, mark);
    return true;
}

static bool read_match_headers(struct mg_cfg *x, const struct mg_ynode *k,
                               const struct mg_ynode *v, void *obj)
{
    struct mg_http_match *m = obj;
    return read_header_matches(x, k->str, v, &m->headers, &m->n_headers, true);
}

static bool read_match_without_headers(struct mg_cfg *x, const struct mg_ynode *k,
                                       const struct mg_ynode *v, void *obj)
{
    struct mg_http_match *m = obj;
    return read_header_matches(x, k->str, v, &m->without_headers, &m->n_without_headers, true);
}

static bool read_match_query_params(struct mg_cfg *x, const struct mg_ynode *k,
                                    const struct mg_ynode *v, void *obj)
{
    struct mg_http_match *m = obj;
    return read_header_matches(x, k->str, v, &m->query_params, &m->n_query_params, false);
}

static const struct mg_cfg_field http_match_rows[] = {
    MG_CFG_STR("name", struct mg_http_match, name),
    MG_CFG_SMATCH("uri", struct mg_http_match, uri),
    MG_CFG_SMATCH("scheme", struct mg_http_match, scheme),
    MG_CFG_SMATCH("method", struct mg_http_match, method),
    MG_CFG_SMATCH("authority", struct mg_http_match, authority),
    MG_CFG_FN("headers", read_match_headers),
    MG_CFG_FN("withoutHeaders", read_match_without_headers),
    MG_CFG_FN("queryParams", read_match_query_params),
    MG_CFG_PORT("port", struct mg_http_match, port),
    MG_CFG_BOOL("ignoreUriCase", struct mg_http_match, ignore_uri_case),
    MG_CFG_SLIST("gateways", struct mg_http_match, gateways),
    MG_CFG_KVLIST("sourceLabels", struct mg_http_match, source_labels),
    MG_CFG_STR("sourceNamespace", struct mg_http_match, source_namespace),
    MG_CFG_UNSUPPORTED("statPrefix"),
};
static const struct mg_cfg_table http_match = {
    MG_CFG_ROWS(http_match_rows), .pos_at = MG_CFG_POS_AT(struct mg_http_match, pos),
};

static void init_redirect(void *obj)
{
    ((struct mg_http_route *)obj)->redirect.redirect_code = 301;
}

static const struct mg_cfg_field redirect_rows[] = {
    MG_CFG_STR("uri", struct mg_http_route, redirect.uri),
    MG_CFG_STR("authority", struct mg_http_route, redirect.authority),
    MG_CFG_STR("scheme", struct mg_http_route, redirect.scheme),
    MG_CFG_PORT("port", struct mg_http_route, redirect.port),
    MG_CFG_INT("redirectCode", struct mg_http_route, redirect.redirect_code, 300, 399),
    MG_CFG_UNSUPPORTED("derivePort"),
};
static const struct mg_cfg_table redirect = {
    MG_CFG_ROWS(redirect_rows), .present_at = MG_CFG_FLAG_AT(struct mg_http_route, has_redirect),
    .init = init_redirect,
};

static bool read_body_bytes(struct mg_cfg *x, const struct mg_ynode *k, const struct mg_ynode *v,
                            void *obj)
{
    struct mg_http_route *r = obj;
    uint8_t *out;
    size_t n;

    if (!mg_cfg_scalar(x, k->str, v))
        return false;
    if (mg_base64_decode(v->str, v->len, false, &out, &n) < 0) {
        mg_error(x->d, v->pos, "directResponse.body.bytes is not valid base64");
        return false;
    }
    free(r->direct_response.body);
    r->direct_response.body = mg_xstrndup((const char *)out, n);
    free(out);
    return true;
}

static void check_direct_response(struct mg_cfg *x, const struct mg_cfg_read *r, void *obj)
{
    if (!((const struct mg_http_route *)obj)->direct_response.status)
        mg_error(x->d, r->m->pos, "directResponse needs a status");
}

static const struct mg_cfg_field body_rows[] = {
    MG_CFG_STR("string", struct mg_http_route, direct_response.body),
    MG_CFG_FN("bytes", read_body_bytes),
};
static const struct mg_cfg_table body = { MG_CFG_ROWS(body_rows) };
static const struct mg_cfg_field direct_response_rows[] = {
    MG_CFG_INT("status", struct mg_http_route, direct_response.status, 200, 599),
    MG_CFG_GROUP("body", body),
};
static const struct mg_cfg_table direct_response = {
    MG_CFG_ROWS(direct_response_rows),
    .present_at = MG_CFG_FLAG_AT(struct mg_http_route, has_direct_response),
    .check = check_direct_response,
};

static const struct mg_cfg_field uri_regex_rows[] = {
    MG_CFG_STR("match", struct mg_http_route, rewrite.regex_match),
    MG_CFG_STR("rewrite", struct mg_http_route, rewrite.regex_rewrite),
};
static const struct mg_cfg_table uri_regex = { MG_CFG_ROWS(uri_regex_rows) };
static const struct mg_cfg_field rewrite_rows[] = {
    MG_CFG_STR("uri", struct mg_http_route, rewrite.uri),
    MG_CFG_STR("authority", struct mg_http_route, rewrite.authority),
    MG_CFG_GROUP("uriRegexRewrite", uri_regex),
};
static const struct mg_cfg_table rewrite = {
    MG_CFG_ROWS(rewrite_rows), .present_at = MG_CFG_FLAG_AT(struct mg_http_route, has_rewrite),
};

static void init_retries(void *obj)
{
    ((struct mg_http_route *)obj)->retries.per_try_timeout_ms = -1;
}

/* retryOn: Envoy's conditions, or HTTP status codes (Istio makes them
 * retriable status codes), as Istio validates it */
static void check_retries(struct mg_cfg *x, const struct mg_cfg_read *r, void *obj)
{
    static const char *const known[] = {
        "5xx", "gateway-error", "reset", "reset-before-request", "connect-failure",
        "envoy-ratelimited", "retriable-4xx", "refused-stream", "retriable-status-codes",
        "retriable-headers", "http3-post-connect-failure", "cancelled", "deadline-exceeded",
        "internal", "resource-exhausted", "unavailable",
    };
    const struct mg_http_route *h = obj;
    const struct mg_ynode *at = mg_cfg_seen(r, "retryOn");
    const char *p = h->retries.retry_on;
    while (at && p && *p) {
        while (*p == ' ' || *p == ',')
            p++;
        const char *e = p;
        while (*e && *e != ',' && *e != ' ')
            e++;
        if (e == p)
            break;
        bool ok = false;
        for (size_t i = 0; i < MG_ARRAY_LEN(known) && !ok; i++)
            ok = strlen(known[i]) == (size_t)(e - p) && strncmp(known[i], p, (size_t)(e - p)) == 0;
        uint64_t code;
        char num[8];
        if (!ok && (size_t)(e - p) < sizeof(num)) {
            memcpy(num, p, (size_t)(e - p));
            num[e - p] = '\0';
            ok = mg_parse_uint(num, 100, 599, &code) == 0;
        }
        if (!ok)
            mg_error(x->d, at->pos, "%s: unknown retryOn condition \"%.*s\"", mg_cfg_field(x, NULL),
                     (int)(e - p), p);
        p = e;
    }
}

static const char *const retries_unsupported[] = { "retryIgnorePreviousHosts", "backoff" };
static const struct mg_cfg_field retries_rows[] = {
    MG_CFG_INT("attempts", struct mg_http_route, retries.attempts, 0, 100),
    MG_CFG_DURATION("perTryTimeout", struct mg_http_route, retries.per_try_timeout_ms),
    MG_CFG_STR("retryOn", struct mg_http_route, retries.retry_on),
    MG_CFG_BOOL("retryRemoteLocalities", struct mg_http_route, retries.retry_remote_localities),
    MG_CFG_UNSUPPORTED_ANY(retries_unsupported),
};
static const struct mg_cfg_table retries = {
    MG_CFG_ROWS(retries_rows), .present_at = MG_CFG_FLAG_AT(struct mg_http_route, has_retries),
    .init = init_retries, .check = check_retries,
};

/* corsPolicy.allowOrigins: a list of StringMatch */
static bool read_cors_origins(struct mg_cfg *x, const struct mg_ynode *k, const struct mg_ynode *v,
                              void *obj)
{
    struct mg_cors *c = obj;
    if (!mg_cfg_seq(x, k->str, v))
        return false;
    size_t mark = mg_cfg_push(x, ".%s", k->str);
    for (size_t i = 0; i < v->n; i++) {
        struct mg_smatch *m = MG_CFG_PUSH(c->allow_origins, c->n_allow_origins);
        m->pos = v->items[i]->pos;
        if (!mg_cfg_smatch(x, k->str, v->items[i], m) || m->kind == MG_SM_NONE) {
            free(m->value);
            c->n_allow_origins--;
        }
    }
    mg_cfg_pop(x, mark);
    return true;
}

/* corsPolicy.allowOrigin (deprecated): exact origins */
static bool read_cors_origin(struct mg_cfg *x, const struct mg_ynode *k, const struct mg_ynode *v,
                             void *obj)
{
    struct mg_cors *c = obj;
    struct mg_slist l = { 0 };
    if (!mg_cfg_slist(x, k->str, v, &l))
        return false;
    for (size_t i = 0; i < l.n; i++) {
        struct mg_smatch *m = MG_CFG_PUSH(c->allow_origins, c->n_allow_origins);
        m->kind = MG_SM_EXACT;
        m->value = mg_xstrdup(l.v[i]);
        m->pos = l.pos[i];
    }
    mg_cfg_free_slist(&l);
    return true;
}

static void init_cors(void *obj)
{
    ((struct mg_cors *)obj)->max_age_ms = -1;
}

static void check_cors(struct mg_cfg *x, const struct mg_cfg_read *r, void *obj)
{
    const struct mg_cors *c = obj;
    const struct mg_slist *names[2] = { &c->allow_headers, &c->expose_headers };
    for (int k = 0; k < 2; k++)
        for (size_t i = 0; i < names[k]->n; i++)
            if (strcmp(names[k]->v[i], "*") != 0 && !mg_cfg_header_name_ok(names[k]->v[i]))
                mg_error(x->d, names[k]->pos[i], "invalid header name \"%s\" in %s",
                         names[k]->v[i], mg_cfg_field(x, NULL));
    (void)r;
}

static const char *const cors_unmatched[] = { "UNSPECIFIED", "FORWARD", "IGNORE" };
static const struct mg_cfg_field cors_rows[] = {
    MG_CFG_FN("allowOrigins", read_cors_origins),
    MG_CFG_FN("allowOrigin", read_cors_origin),
    MG_CFG_SLIST("allowMethods", struct mg_cors, allow_methods),
    MG_CFG_SLIST("allowHeaders", struct mg_cors, allow_headers),
    MG_CFG_SLIST("exposeHeaders", struct mg_cors, expose_headers),
    MG_CFG_DURATION("maxAge", struct mg_cors, max_age_ms),
    MG_CFG_BOOL("allowCredentials", struct mg_cors, allow_credentials),
    MG_CFG_ENUM("unmatchedPreflights", struct mg_cors, unmatched_preflights, cors_unmatched),
};
static const struct mg_cfg_table cors = {
    MG_CFG_ROWS(cors_rows), .present_at = MG_CFG_FLAG_AT(struct mg_cors, present),
    .init = init_cors, .check = check_cors,
};

/* Percent: {value: 0..100} (a double) */
static bool read_percent_value(struct mg_cfg *x, const struct mg_ynode *k,
                               const struct mg_ynode *v, void *obj)
{
    struct mg_percent *p = obj;
    if (!mg_cfg_scalar(x, k->str, v))
        return false;
    char *end = NULL;
    double d = v->len ? strtod(v->str, &end) : -1;
    if (!end || *end || !(d >= 0 && d <= 100)) {
        mg_error(x->d, v->pos, "invalid value \"%s\" for %s (want a number in 0..100)", v->str,
                 mg_cfg_field(x, k->str));
        return false;
    }
    p->value = d;
    return true;
}

static const struct mg_cfg_field percent_rows[] = { MG_CFG_FN("value", read_percent_value) };
static const struct mg_cfg_table percent = {
    MG_CFG_ROWS(percent_rows), .present_at = MG_CFG_FLAG_AT(struct mg_percent, present),
};

static void init_fault_delay(void *obj)
{
    ((struct mg_fault *)obj)->delay.fixed_ms = -1;
}

static void check_fault_delay(struct mg_cfg *x, const struct mg_cfg_read *r, void *obj)
{
    if (((struct mg_fault *)obj)->delay.fixed_ms < 0 && !mg_cfg_seen(r, "exponentialDelay"))
        mg_error(x->d, r->m->pos, "%s needs fixedDelay", mg_cfg_field(x, NULL));
}

static const struct mg_cfg_field fault_delay_rows[] = {
    MG_CFG_DURATION("fixedDelay", struct mg_fault, delay.fixed_ms),
    MG_CFG_MAP("percentage", struct mg_fault, delay.percentage, percent),
    MG_CFG_INT("percent", struct mg_fault, delay.percent, 0, 100),
    MG_CFG_UNSUPPORTED("exponentialDelay"),
};
static const struct mg_cfg_table fault_delay = {
    MG_CFG_ROWS(fault_delay_rows), .present_at = MG_CFG_FLAG_AT(struct mg_fault, delay.present),
    .init = init_fault_delay, .check = check_fault_delay,
};

static void init_fault_abort(void *obj)
{
    ((struct mg_fault *)obj)->abort.grpc_status = -1;
}

static void check_fault_abort(struct mg_cfg *x, const struct mg_cfg_read *r, void *obj)
{
    const struct mg_fault *f = obj;
    if (!f->abort.http_status && f->abort.grpc_status < 0 && !mg_cfg_seen(r, "http2Error"))
        mg_error(x->d, r->m->pos, "%s needs httpStatus or grpcStatus", mg_cfg_field(x, NULL));
    else if (f->abort.http_status && f->abort.grpc_status >= 0)
        mg_error(x->d, r->m->pos, "%s: httpStatus and grpcStatus are mutually exclusive",
                 mg_cfg_field(x, NULL));
}

/* gRPC status names, in code order */
static const char *const grpc_codes[] = {
    "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
    "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
    "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
    "UNAUTHENTICATED",
};
static const struct mg_cfg_field fault_abort_rows[] = {
    MG_CFG_INT("httpStatus", struct mg_fault, abort.http_status, 200, 599),
    MG_CFG_ENUM("grpcStatus", struct mg_fault, abort.grpc_status, grpc_codes),
    MG_CFG_MAP("percentage", struct mg_fault, abort.percentage, percent),
    MG_CFG_INT("percent", struct mg_fault, abort.percent, 0, 100),
    MG_CFG_UNSUPPORTED("http2Error"),
};
static const struct mg_cfg_table fault_abort = {
    MG_CFG_ROWS(fault_abort_rows), .present_at = MG_CFG_FLAG_AT(struct mg_fault, abort.present),
    .init = init_fault_abort, .check = check_fault_abort,
};

static const struct mg_cfg_field fault_rows[] = {
    MG_CFG_GROUP("delay", fault_delay),
    MG_CFG_GROUP("abort", fault_abort),
};
static const struct mg_cfg_table fault = {
    MG_CFG_ROWS(fault_rows), .present_at = MG_CFG_FLAG_AT(struct mg_fault, present),
};

static const struct mg_cfg_field mirror_rows[] = {
    MG_CFG_MAP("destination", struct mg_mirror, dest.destination, destination),
    MG_CFG_MAP("percentage", struct mg_mirror, percentage, percent),
};
static void check_mirror(struct mg_cfg *x, const struct mg_cfg_read *r, void *obj)
{
    const struct mg_mirror *m = obj;
    if (!m->dest.destination.host)
        mg_error(x->d, r->m->pos, "%s needs a destination", mg_cfg_field(x, NULL));
}
static const struct mg_cfg_table mirror = {
    MG_CFG_ROWS(mirror_rows), .pos_at = MG_CFG_POS_AT(struct mg_mirror, pos),
    .check = check_mirror,
};

static void init_http_route(void *obj)
{
    ((struct mg_http_route *)obj)->timeout_ms = -1;
    ((struct mg_http_route *)obj)->mirror_percent = -1;
}

static void check_http_route(struct mg_cfg *x, const struct mg_cfg_read *r, void *obj)
{
    const struct mg_http_route *hr = obj;
    int actions = (hr->n_route > 0) + hr->has_redirect + hr->has_direct_response;

    int total = 0;
    for (size_t i = 0; i < hr->n_route; i++)
        total += hr->route[i].weight > 0 ? hr->route[i].weight : 0;
    if (hr->n_route > 1 && total == 0)
        mg_error(x->d, r->m->pos, "%s: total destination weight = 0", mg_cfg_field(x, NULL));
    if (hr->delegate.present) {
        /* a root route: the delegate's routes bring the action */
        if (!hr->delegate.name || !*hr->delegate.name)
            mg_error(x->d, hr->delegate.pos, "%s.delegate needs a name", mg_cfg_field(x, NULL));
        if (hr->has_redirect)
            mg_error(x->d, r->m->pos, "root HTTP route %s must not specify redirect",
                     mg_cfg_field(x, NULL));
        if (hr->n_route)
            mg_error(x->d, r->m->pos, "root HTTP route %s must not specify route",
                     mg_cfg_field(x, NULL));
    } else if (actions == 0)
        mg_error(x->d, r->m->pos, "%s needs a route, redirect or directResponse",
                 mg_cfg_field(x, NULL));
    else if (actions > 1)
        mg_error(x->d, r->m->pos, "%s: route, redirect and directResponse are mutually exclusive",
                 mg_cfg_field(x, NULL));
    struct mg_http_route *h = obj;
    h->has_mirror = h->mirror.dest.destination.pos.line != 0;
    if (h->has_mirror && h->n_mirrors) {
        mg_error(x->d, h->mirror.dest.destination.pos, "%s: mirror and mirrors are mutually exclusive",
                 mg_cfg_field(x, NULL));
    } else if (h->has_mirror) {
        /* the single mirror is the list's only element from here on */
        struct mg_mirror *m = MG_CFG_PUSH(h->mirrors, h->n_mirrors);
        *m = h->mirror;
        memset(&h->mirror, 0, sizeof(h->mirror));
        if (h->mirror_percentage.present)
            m->percentage = h->mirror_percentage;
        else if (h->mirror_percent >= 0)
            m->percentage = (struct mg_percent){ .present = true, .value = h->mirror_percent };
    } else if (h->mirror_percentage.present || h->mirror_percent >= 0) {
        mg_warning(x->d, r->m->pos, "%s: mirrorPercentage without mirror has no effect",
                   mg_cfg_field(x, NULL));
    }
}

static const struct mg_cfg_field delegate_rows[] = {
    MG_CFG_STR("name", struct mg_http_route, delegate.name),
    MG_CFG_STR("namespace", struct mg_http_route, delegate.namespace_),
};
static const struct mg_cfg_table delegate = {
    MG_CFG_ROWS(delegate_rows), .present_at = MG_CFG_FLAG_AT(struct mg_http_route, delegate.present),
    .pos_at = MG_CFG_POS_AT(struct mg_http_route, delegate.pos),
};
static const struct mg_cfg_field http_headers_rows[] = { HEADERS_ROWS(struct mg_http_route) };
static const struct mg_cfg_table http_headers = { MG_CFG_ROWS(http_headers_rows) };
static const struct mg_cfg_field http_route_rows[] = {
    MG_CFG_STR("name", struct mg_http_route, name),
    MG_CFG_LIST("match", struct mg_http_route, match, n_match, http_match),
    MG_CFG_LIST("route", struct mg_http_route, route, n_route, http_route_dest),
    MG_CFG_GROUP("redirect", redirect),
    MG_CFG_GROUP("directResponse", direct_response),
    MG_CFG_GROUP("rewrite", rewrite),
    MG_CFG_DURATION("timeout", struct mg_http_route, timeout_ms),
    MG_CFG_GROUP("retries", retries),
    MG_CFG_GROUP("headers", http_headers),
    MG_CFG_GROUP("delegate", delegate),
    MG_CFG_MAP("corsPolicy", struct mg_http_route, cors, cors),
    MG_CFG_MAP("fault", struct mg_http_route, fault, fault),
    MG_CFG_MAP("mirror", struct mg_http_route, mirror.dest.destination, destination),
    MG_CFG_LIST("mirrors", struct mg_http_route, mirrors, n_mirrors, mirror),
    MG_CFG_MAP("mirrorPercentage", struct mg_http_route, mirror_percentage, percent),
    MG_CFG_INT("mirrorPercent", struct mg_http_route, mirror_percent, 0, 100),
    MG_CFG_INT("mirror_percent", struct mg_http_route, mirror_percent, 0, 100),
};
static const struct mg_cfg_table http_route = {
    MG_CFG_ROWS(http_route_rows), .pos_at = MG_CFG_POS_AT(struct mg_http_route, pos),
    .init = init_http_route, .check = check_http_route,
};

/* ---- VirtualService: tls and tcp ---- */

static bool read_subnets(struct mg_cfg *x, const char *key, const struct mg_ynode *v,
                         struct mg_slist *subnets)
{
    if (!mg_cfg_slist(x, key, v, subnets))
        return false;
    for (size_t i = 0; i < subnets->n; i++) {
        struct mg_cidr c;
        if (mg_cidr_parse(subnets->v[i], &c) < 0)
            mg_error(x->d, subnets->pos[i], "invalid CIDR \"%s\" in %s", subnets->v[i],
                     mg_cfg_field(x, key));
    }
    return true;
}

static bool read_tls_subnets(struct mg_cfg *x, const struct mg_ynode *k, const struct mg_ynode *v,
                             void *obj)
{
    return read_subnets(x, k->str, v, &((struct mg_tls_match *)obj)->destination_subnets);
}

static bool read_l4_subnets(struct mg_cfg *x, const struct mg_ynode *k, const struct mg_ynode *v,
                            void *obj)
{
    return read_subnets(x, k->str, v, &((struct mg_l4_match *)obj)->destination_subnets);
}

static void check_tls_match(struct mg_cfg *x, const struct mg_cfg_read *r, void *obj)
{
    const struct mg_tls_match *tm = obj;
    if (tm->sni_hosts.n == 0)
        mg_error(x->d, tm->pos, "%s needs sniHosts", mg_cfg_field(x, NULL));
}

static const char *const l4_unsupported[] = { "sourceLabels", "sourceNamespace", "sourceSubnet" };
static const struct mg_cfg_field tls_match_rows[] = {
    MG_CFG_SLIST("sniHosts", struct mg_tls_match, sni_hosts),
    MG_CFG_FN("destinationSubnets", read_tls_subnets),
    MG_CFG_PORT("port", struct mg_tls_match, port),
    MG_CFG_SLIST("gateways", struct mg_tls_match, gateways),
    MG_CFG_UNSUPPORTED_ANY(l4_unsupported),
};
static const struct mg_cfg_table tls_match = {
    MG_CFG_ROWS(tls_match_rows), .pos_at = MG_CFG_POS_AT(struct mg_tls_match, pos),
    .check = check_tls_match,
};
static const struct mg_cfg_field l4_match_rows[] = {
    MG_CFG_FN("destinationSubnets", read_l4_subnets),
    MG_CFG_PORT("port", struct mg_l4_match, port),
    MG_CFG_SLIST("gateways", struct mg_l4_match, gateways),
    MG_CFG_UNSUPPORTED_ANY(l4_unsupported),
};
static const struct mg_cfg_table l4_match = {
    MG_CFG_ROWS(l4_match_rows), .pos_at = MG_CFG_POS_AT(struct mg_l4_match, pos),
};

static const struct mg_cfg_field tls_route_rows[] = {
    MG_CFG_LIST("route", struct mg_tls_route, route, n_route, l4_route_dest),
    MG_CFG_LIST("match", struct mg_tls_route, match, n_match, tls_match),
};
static const struct mg_cfg_table tls_route = {
    MG_CFG_ROWS(tls_route_rows), .pos_at = MG_CFG_POS_AT(struct mg_tls_route, pos),
};
static const struct mg_cfg_field tcp_route_rows[] = {
    MG_CFG_LIST("route", struct mg_tcp_route, route, n_route, l4_route_dest),
    MG_CFG_LIST("match", struct mg_tcp_route, match, n_match, l4_match),
};
static const struct mg_cfg_table tcp_route = {
    MG_CFG_ROWS(tcp_route_rows), .pos_at = MG_CFG_POS_AT(struct mg_tcp_route, pos),
};

/* ---- VirtualService ---- */

static void check_virtual_service(struct mg_cfg *x, const struct mg_cfg_read *r, void *obj)
{
    const struct mg_virtual_service *vs = obj;

    for (size_t i = 0; i < vs->hosts.n; i++)
        if (!mg_cfg_host_ok(vs->hosts.v[i]))
            mg_error(x->d, vs->hosts.pos[i], "invalid host \"%s\" in hosts (want a DNS name, "
                     "a wildcard only as the leftmost label)", vs->hosts.v[i]);
    /* JWT claim routes need the token verified before routing: Istio
     * allows them only on gateways (not "mesh") */
    bool on_gw = false;
    for (size_t i = 0; i < vs->gateways.n; i++)
        on_gw |= strcmp(vs->gateways.v[i], "mesh") != 0;
    for (size_t i = 0; !on_gw && i < vs->n_http; i++)
        for (size_t j = 0; j < vs->http[i].n_match; j++) {
            const struct mg_http_match *m = &vs->http[i].match[j];
            for (size_t k = 0; k < m->n_headers + m->n_without_headers; k++) {
                const struct mg_header_match *h = k < m->n_headers
                    ? &m->headers[k] : &m->without_headers[k - m->n_headers];
                if (mg_claim_route_split(h->name, NULL, 0))
                    mg_error(x->d, h->match.pos, "JWT claim based routing (key: %s) is only "
                             "supported for gateway, found no gateways", h->name);
            }
        }
    if (vs->hosts.n == 0) {
        /* without hosts it is a delegate: only http routes, reached
         * through a root's http[].delegate */
        struct mg_pos at = r->m ? r->m->pos : vs->meta.pos;
        if (vs->gateways.n)
            mg_error(x->d, vs->gateways.pos[0], "delegate virtual service must have no gateways "
                     "specified (a VirtualService without hosts is a delegate)");
        if (vs->n_tls)
            mg_error(x->d, vs->tls[0].pos, "delegate virtual service must have no tls route "
                     "specified");
        if (vs->n_tcp)
            mg_error(x->d, vs->tcp[0].pos, "delegate virtual service must have no tcp route "
                     "specified");
        for (size_t i = 0; i < vs->n_http; i++)
            if (vs->http[i].delegate.present)
                mg_error(x->d, vs->http[i].delegate.pos, "delegate HTTP route cannot contain "
                         "delegate");
        if (!vs->n_http)
            mg_warning(x->d, at, "delegate virtual service has no http routes");
    }
}

static const struct mg_cfg_field virtual_service_rows[] = {
    MG_CFG_SLIST("hosts", struct mg_virtual_service, hosts),
    MG_CFG_SLIST("gateways", struct mg_virtual_service, gateways),
    MG_CFG_SLIST("exportTo", struct mg_virtual_service, export_to),
    MG_CFG_LIST("http", struct mg_virtual_service, http, n_http, http_route),
    MG_CFG_LIST("tls", struct mg_virtual_service, tls, n_tls, tls_route),
    MG_CFG_LIST("tcp", struct mg_virtual_service, tcp, n_tcp, tcp_route),
};
static const struct mg_cfg_table virtual_service = {
    MG_CFG_ROWS(virtual_service_rows), .check = check_virtual_service,
};

void mg_cfg_read_virtual_service(struct mg_cfg *x, const struct mg_ynode *spec,
                                 struct mg_virtual_service *vs)
{
    mg_cfg_read_spec(x, spec, &virtual_service, vs);
}
