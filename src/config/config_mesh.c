/* config_mesh.c - the project's own kinds (MeshConfig, Proxy) and the
 * kubernetes.io/tls Secret. */
#include <ctype.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include "config/internal.h"

/* ---- MeshConfig ---- */

/* ---- accessLogFormat: Envoy command operators ---- */

size_t mg_logop_parse(const char *s, struct mg_logop *op)
{
    const char *p = s + 1;
    memset(op, 0, sizeof(*op));
    op->max_len = -1;
    op->name = p;
    while (isupper((unsigned char)*p) || isdigit((unsigned char)*p) || *p == '_')
        p++;
    op->name_len = (size_t)(p - op->name);
    if (!op->name_len)
        return 0;
    if (*p == '(') {
        /* the argument may hold '%' (START_TIME(%Y-%m-%d)): up to ')' */
        const char *e = strchr(p + 1, ')');
        if (!e)
            return 0;
        op->arg = p + 1;
        op->arg_len = (size_t)(e - p - 1);
        p = e + 1;
        if (*p == ':') {
            char *end;
            long v = strtol(p + 1, &end, 10);
            if (end == p + 1 || v < 0 || v > 65535)
                return 0;
            op->max_len = (int)v;
            p = end;
        }
    }
    if (*p != '%')
        return 0;
    return (size_t)(p + 1 - s);
}

/* Every operator the access log renders; `arg` 1 = needs one, 2 = may have one. */
static const struct {
    const char *name;
    int arg;
} logops[] = {
    { "START_TIME", 2 }, { "REQ", 1 }, { "RESP", 1 }, { "TRAILER", 1 },
    { "REQ_WITHOUT_QUERY", 1 }, { "FILTER_STATE", 1 },
    { "RESPONSE_CODE", 0 }, { "RESPONSE_FLAGS", 0 }, { "RESPONSE_CODE_DETAILS", 0 },
    { "GRPC_STATUS", 0 }, { "GRPC_STATUS_NUMBER", 0 },
    { "CONNECTION_TERMINATION_DETAILS", 0 }, { "BYTES_RECEIVED", 0 }, { "BYTES_SENT", 0 },
    { "DURATION", 0 }, { "REQUEST_DURATION", 0 }, { "RESPONSE_DURATION", 0 },
    { "PROTOCOL", 0 }, { "UPSTREAM_HOST", 0 }, { "UPSTREAM_CLUSTER", 0 },
    { "UPSTREAM_LOCAL_ADDRESS", 0 }, { "UPSTREAM_TRANSPORT_FAILURE_REASON", 0 },
    { "DOWNSTREAM_REMOTE_ADDRESS", 0 }, { "DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT", 0 },
    { "DOWNSTREAM_DIRECT_REMOTE_ADDRESS", 0 },
    { "DOWNSTREAM_DIRECT_REMOTE_ADDRESS_WITHOUT_PORT", 0 },
    { "DOWNSTREAM_LOCAL_ADDRESS", 0 }, { "DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT", 0 },
    { "DOWNSTREAM_LOCAL_PORT", 0 }, { "REQUESTED_SERVER_NAME", 0 }, { "ROUTE_NAME", 0 },
    { "DOWNSTREAM_TLS_VERSION", 0 }, { "DOWNSTREAM_TLS_CIPHER", 0 },
    { "DOWNSTREAM_TLS_SESSION_ID", 0 }, { "DOWNSTREAM_PEER_SUBJECT", 0 },
    { "DOWNSTREAM_PEER_ISSUER", 0 }, { "DOWNSTREAM_PEER_URI_SAN", 0 },
    { "DOWNSTREAM_PEER_SERIAL", 0 }, { "DOWNSTREAM_PEER_FINGERPRINT_256", 0 },
    { "DOWNSTREAM_LOCAL_SUBJECT", 0 }, { "DOWNSTREAM_LOCAL_URI_SAN", 0 }, { "HOSTNAME", 0 },
    { "GEO_COUNTRY", 0 }, { "GEO_ASN", 0 },
};

bool mg_logop_known(const struct mg_logop *op)
{
    for (size_t i = 0; i < MG_ARRAY_LEN(logops); i++) {
        if (strlen(logops[i].name) != op->name_len ||
            memcmp(logops[i].name, op->name, op->name_len) != 0)
            continue;
        if (logops[i].arg == 0)
            return op->arg == NULL;
        if (logops[i].arg == 1)
            return op->arg && op->arg_len > 0;
        return true;
    }
    return false;
}

/* Check the operators of format string `fmt`, found at byte `base` of
 * node n's text (error positions point at the operator). */
static void check_log_ops(struct mg_cfg *x, const struct mg_ynode *n, const char *fmt, size_t base)
{
    for (const char *p = fmt; (p = strchr(p, '%'));) {
        struct mg_logop op;
        size_t len;
        if (p[1] == '%') {              /* "%%": a literal '%' */
            p += 2;
            continue;
        }
        len = mg_logop_parse(p, &op);
        if (!len) {
            mg_error(x->d, mg_ynode_at(n, base + (size_t)(p - fmt)),
                     "accessLogFormat: malformed command operator at \"%.24s\" (want %%NAME%%, "
                     "%%NAME(ARG)%% or %%NAME(ARG):MAX%%; a literal %% is %%%%)", p);
            return;
        }
        if (op.name_len == 22 && memcmp(op.name, "UPSTREAM_LOCAL_ADDRESS", 22) == 0)
            x->c->mesh.log_upstream_local = true;
        if (!mg_logop_known(&op))
            mg_error(x->d, mg_ynode_at(n, base + (size_t)(p - fmt)),
                     "accessLogFormat: unknown command operator %.*s", (int)len, p);
        p += len;
    }
}

/* Byte offset in n's text of the first occurrence of s (for positions of a
 * JSON template's values), else 0. */
static size_t text_off(const struct mg_ynode *n, const char *s)
{
    const char *f = strstr(n->str, s);
    return f ? (size_t)(f - n->str) : 0;
}

/* accessLogFormat, read after the whole spec: with JSON encoding Istio
 * takes it as a JSON object of format strings. */
static void check_access_log_format(struct mg_cfg *x, const struct mg_ynode *spec,
                                    struct mg_mesh_config *m)
{
    const struct mg_ynode *n = spec && spec->type == MG_YMAP ? mg_ynode_get(spec, "accessLogFormat")
                                                             : NULL;
    if (!n || n->type != MG_YSCALAR || !m->access_log_format || !*m->access_log_format)
        return;
    const char *t = m->access_log_format;
    while (isspace((unsigned char)*t))
        t++;
    if (m->access_log_encoding != MG_LOG_JSON || *t != '{') {
        check_log_ops(x, n, m->access_log_format, 0);
        return;
    }
    json_error_t err;
    json_t *o = json_loads(m->access_log_format, JSON_REJECT_DUPLICATES, &err);
    if (!o || !json_is_object(o)) {
        struct mg_pos pos = mg_ynode_at(n, err.position > 0 ? (size_t)err.position - 1 : 0);
        mg_error(x->d, pos, "accessLogFormat with accessLogEncoding JSON: not a JSON object (%s)",
                 o ? "another JSON value" : err.text);
        json_decref(o);
        return;
    }
    const char *key;
    json_t *val;
    json_object_foreach(o, key, val) {
        if (!json_is_string(val)) {
            mg_error(x->d, mg_ynode_at(n, text_off(n, key)),
                     "accessLogFormat: the value of \"%s\" must be a string (a format with "
                     "command operators); nested objects are not supported", key);
            continue;
        }
        const char *fmt = json_string_value(val);
        check_log_ops(x, n, fmt, text_off(n, fmt));
        struct mg_log_json_field *f = MG_CFG_PUSH(m->access_log_json, m->n_access_log_json);
        f->key = mg_xstrdup(key);
        f->fmt = mg_xstrdup(fmt);
    }
    json_decref(o);
}

/* Istio meshConfig fields that have no meaning for one appliance: accepted
 * so a real mesh config loads, with a warning. */
static const char *const mesh_ignored[] = {
    "enableTracing", "ingressClass", "ingressService",
    "ingressControllerMode", "ingressSelector", "defaultServiceExportTo",
    "defaultVirtualServiceExportTo", "defaultDestinationRuleExportTo",
    "dnsRefreshRate", "h2UpgradePolicy", "inboundClusterStatName", "outboundClusterStatName",
    "certificates", "tlsDefaults", "meshMTLS", "serviceSettings", "enablePrometheusMerge",
    "verifyCertificateAtClient", "discoverySelectors", "defaultProviders",
    "protocolDetectionTimeout", "connectTimeout", "tcpKeepalive", "proxyListenPort",
    "proxyInboundListenPort", "proxyHttpPort", "enableEnvoyAccessLogService",
    "disableEnvoyListenerLog", "configSources", "thriftConfig", "inboundTrafficPolicy",
    "accessLogFormatJson", "sdsUdsPath", "mixerCheckServer", "mixerReportServer",
    "policyCheckFailOpen", "trustDomainAliasesEnabled", "serviceScopeConfigs",
};

static const char *const ext_authz_unsupported[] = {
    "includeRequestBodyInCheck", "includeAdditionalHeadersInCheck", "includeHeadersInCheck",
    "headersToUpstreamOnDeny", "clearRouteCache",
};

static void check_ext_authz(struct mg_cfg *x, const struct mg_cfg_read *r, void *obj)
{
    const struct mg_ext_provider *p = obj;

    if (!p->service)
        mg_error(x->d, r->m->pos, "%s needs a service", mg_cfg_field(x, NULL));
    if (!p->port)
        mg_error(x->d, r->m->pos, "%s needs a port", mg_cfg_field(x, NULL));
}

/* envoyExtAuthzGrpc has these; envoyExtAuthzHttp has more */
#define EXT_AUTHZ_ROWS \
    MG_CFG_STR("service", struct mg_ext_provider, service), \
    MG_CFG_PORT("port", struct mg_ext_provider, port), \
    MG_CFG_DURATION("timeout", struct mg_ext_provider, timeout_ms), \
    MG_CFG_BOOL("failOpen", struct mg_ext_provider, fail_open), \
    MG_CFG_INT("statusOnError", struct mg_ext_provider, status_on_error, 100, 599), \
    MG_CFG_UNSUPPORTED_ANY(ext_authz_unsupported)

static const struct mg_cfg_field ext_authz_grpc_rows[] = { EXT_AUTHZ_ROWS };
static const struct mg_cfg_field ext_authz_http_rows[] = {
    EXT_AUTHZ_ROWS,
    MG_CFG_STR("pathPrefix", struct mg_ext_provider, path_prefix),
    MG_CFG_SLIST("includeRequestHeadersInCheck", struct mg_ext_provider,
                 include_request_headers_in_check),
    MG_CFG_SLIST("headersToUpstreamOnAllow", struct mg_ext_provider,
                 headers_to_upstream_on_allow),
    MG_CFG_SLIST("headersToDownstreamOnDeny", struct mg_ext_provider,
                 headers_to_downstream_on_deny),
};
static const struct mg_cfg_table ext_authz_grpc = {
    MG_CFG_ROWS(ext_authz_grpc_rows), .check = check_ext_authz,
};
static const struct mg_cfg_table ext_authz_http = {
    MG_CFG_ROWS(ext_authz_http_rows), .check = check_ext_authz,
};

static void read_ext_providers(struct mg_cfg *x, const struct mg_ynode *v, struct mg_mesh_config *m)
{
    const struct mg_ynode *k, *e;

    if (!mg_cfg_seq(x, "extensionProviders", v))
        return;
    for (size_t i = 0; i < v->n; i++) {
        const struct mg_ynode *it = v->items[i];
        size_t mark = mg_cfg_push(x, ".extensionProviders[%zu]", i);
        if (!mg_cfg_map(x, "", it)) {
            mg_cfg_pop(x, mark);
            continue;
        }
        char *name = NULL;
        const struct mg_ynode *body = NULL;
        int type = -1;
        for (size_t j = 0; mg_cfg_next(it, &j, &k, &e);) {
            if (strcmp(k->str, "name") == 0)
                mg_cfg_str(x, "name", e, &name);
            else if (strcmp(k->str, "envoyExtAuthzHttp") == 0 ||
                     strcmp(k->str, "envoyExtAuthzGrpc") == 0) {
                if (type >= 0)
                    mg_error(x->d, k->pos, "%s has more than one provider type",
                             mg_cfg_field(x, NULL));
                else if (mg_cfg_map(x, k->str, e)) {
                    type = k->str[13] == 'H' ? MG_EXT_HTTP : MG_EXT_GRPC;
                    body = e;
                }
            } else
                mg_cfg_unsupported(x, k);   /* tracing, logging, metrics providers */
        }
        if (!name)
            mg_error(x->d, it->pos, "%s needs a name", mg_cfg_field(x, NULL));
        if (!body || !name) {
            free(name);
            mg_cfg_pop(x, mark);
            continue;
        }
        struct mg_ext_provider *p = MG_CFG_PUSH(m->ext_providers, m->n_ext_providers);
        p->name = name;
        p->type = type;
        p->timeout_ms = 600000;
        p->status_on_error = 403;
        p->pos = it->pos;
        for (size_t j = 0; j + 1 < m->n_ext_providers; j++)
            if (strcmp(m->ext_providers[j].name, name) == 0)
                mg_error(x->d, it->pos, "duplicate extension provider \"%s\"", name);
        if (type == MG_EXT_HTTP)
            mg_cfg_read_map(x, "envoyExtAuthzHttp", body, &ext_authz_http, p);
        else
            mg_cfg_read_map(x, "envoyExtAuthzGrpc", body, &ext_authz_grpc, p);
        mg_cfg_pop(x, mark);
    }
}

/* accessLogFile: a device as it is, any other path relative to the file */
static bool read_access_log_file(struct mg_cfg *x, const struct mg_ynode *k,
                                 const struct mg_ynode *v, void *obj)
{
    struct mg_mesh_config *m = obj;
    if (mg_cfg_scalar(x, k->str, v) && mg_has_prefix(v->str, "/dev/"))
        return mg_cfg_str(x, k->str, v, &m->access_log_file);
    return mg_cfg_file(x, k->str, v, false, &m->access_log_file);
}

static bool read_ext_providers_row(struct mg_cfg *x, const struct mg_ynode *k,
                                   const struct mg_ynode *v, void *obj)
{
    read_ext_providers(x, v, obj);
    return true;
}

static const char *const outbound_names[] = { "REGISTRY_ONLY", "ALLOW_ANY" };
static const int outbound_values[] = { MG_OUTBOUND_REGISTRY_ONLY, MG_OUTBOUND_ALLOW_ANY };
static const char *const norm_names[] = { "DEFAULT", "NONE", "BASE", "MERGE_SLASHES",
                                          "DECODE_AND_MERGE_SLASHES" };
static const int norm_values[] = { MG_NORM_BASE, MG_NORM_NONE, MG_NORM_BASE,
                                   MG_NORM_MERGE_SLASHES, MG_NORM_DECODE_AND_MERGE_SLASHES };
static const char *const log_encodings[] = { "TEXT", "JSON" };

static const struct mg_cfg_field outbound_policy_rows[] = {
    MG_CFG_ENUMV("mode", struct mg_mesh_config, outbound_mode, outbound_names, outbound_values),
    MG_CFG_UNSUPPORTED("egressProxy"),
};
static const struct mg_cfg_table outbound_policy = { MG_CFG_ROWS(outbound_policy_rows) };
static const struct mg_cfg_field path_norm_rows[] = {
    MG_CFG_ENUMV("normalization", struct mg_mesh_config, path_normalization, norm_names,
                 norm_values),
    MG_CFG_UNSUPPORTED("egressProxy"),
};
static const struct mg_cfg_table path_norm = { MG_CFG_ROWS(path_norm_rows) };
/* ProxyConfig has ~50 Envoy knobs; the trusted proxy count and the PROXY
 * protocol switch apply here */
static const struct mg_cfg_table pp_enable = {   /* an empty message in Istio's API */
    .rows = NULL, .n = 0,
    .present_at = MG_CFG_FLAG_AT(struct mg_mesh_config, proxy_protocol.present),
    .pos_at = MG_CFG_POS_AT(struct mg_mesh_config, proxy_protocol.pos),
};
static const struct mg_cfg_field topology_rows[] = {
    MG_CFG_INT("numTrustedProxies", struct mg_mesh_config, num_trusted_proxies, 0, 64),
    MG_CFG_GROUP("proxyProtocol", pp_enable),
};
static const struct mg_cfg_table topology = {
    MG_CFG_ROWS(topology_rows), .others_unsupported = true,
};
static const struct mg_cfg_field geoip_header_rows[] = {
    MG_CFG_HEADER("country", struct mg_mesh_config, geoip_country_header),
    MG_CFG_HEADER("asn", struct mg_mesh_config, geoip_asn_header),
};
static const struct mg_cfg_table geoip_headers = {
    MG_CFG_ROWS(geoip_header_rows),
};
static const struct mg_cfg_field default_config_rows[] = {
    MG_CFG_GROUP("gatewayTopology", topology),
};
static const struct mg_cfg_table default_config = {
    MG_CFG_ROWS(default_config_rows), .others_unsupported = true,
};
static const struct mg_cfg_field mesh_rows[] = {
    MG_CFG_STR("trustDomain", struct mg_mesh_config, trust_domain),
    MG_CFG_SLIST("trustDomainAliases", struct mg_mesh_config, trust_domain_aliases),
    MG_CFG_STR("rootNamespace", struct mg_mesh_config, root_namespace),
    MG_CFG_GROUP("outboundTrafficPolicy", outbound_policy),
    MG_CFG_GROUP("pathNormalization", path_norm),
    MG_CFG_FN("accessLogFile", read_access_log_file),
    MG_CFG_ENUM("accessLogEncoding", struct mg_mesh_config, access_log_encoding, log_encodings),
    MG_CFG_STR("accessLogFormat", struct mg_mesh_config, access_log_format),
    MG_CFG_FILE("caCertificates", struct mg_mesh_config, ca_certificates),
    MG_CFG_FILE("geoipDatabase", struct mg_mesh_config, geoip_database),
    MG_CFG_GROUP("geoipHeaders", geoip_headers),
    MG_CFG_FN("extensionProviders", read_ext_providers_row),
    MG_CFG_INT("numTrustedProxies", struct mg_mesh_config, num_trusted_proxies, 0, 64),
    MG_CFG_BOOL("enableAutoMtls", struct mg_mesh_config, enable_auto_mtls),
    MG_CFG_MAP("localityLbSetting", struct mg_mesh_config, locality_lb, mg_cfg_locality_lb),
    MG_CFG_GROUP("defaultConfig", default_config),
    MG_CFG_UNSUPPORTED_ANY(mesh_ignored),
};
static const struct mg_cfg_table mesh = {
    MG_CFG_ROWS(mesh_rows), .pos_at = MG_CFG_POS_AT(struct mg_mesh_config, pos),
};

/* IstioOperator spec.meshConfig: the same rows, but the rest of Istio's
 * MeshConfig is a warning (the document is written for a whole mesh). */
static const struct mg_cfg_table mesh_operator = {
    MG_CFG_ROWS(mesh_rows), .pos_at = MG_CFG_POS_AT(struct mg_mesh_config, pos),
    .others_unsupported = true,
};

void mg_cfg_read_mesh(struct mg_cfg *x, const struct mg_ynode *spec, struct mg_mesh_config *m)
{
    mg_cfg_read_spec(x, spec, &mesh, m);
    check_access_log_format(x, spec, m);
}

void mg_cfg_read_istio_operator(struct mg_cfg *x, const struct mg_ynode *spec,
                                struct mg_mesh_config *m)
{
    const struct mg_ynode *k, *v;

    if (!spec || mg_ynode_is_null(spec) || !mg_cfg_map(x, "", spec))
        return;
    for (size_t i = 0; mg_cfg_next(spec, &i, &k, &v);) {
        if (strcmp(k->str, "meshConfig") != 0) {
            /* profile, components, values, hub, tag: installation only */
            mg_warning(x->d, k->pos, "IstioOperator spec.%s is not used here (only "
                       "spec.meshConfig is read), ignored", k->str);
            continue;
        }
        size_t mark = mg_cfg_push(x, ".meshConfig");
        mg_cfg_read_spec(x, v, &mesh_operator, m);
        check_access_log_format(x, v, m);
        mg_cfg_pop(x, mark);
    }
}

/* ---- Proxy ---- */

static void check_credential(struct mg_cfg *x, const struct mg_cfg_read *r, void *obj)
{
    const struct mg_credential *c = obj;
    if (!c->certificate || !c->private_key)
        mg_error(x->d, c->pos, "credential \"%s\" needs certificate and privateKey", c->name);
}

static const struct mg_cfg_field credential_rows[] = {
    MG_CFG_FILE("certificate", struct mg_credential, certificate),
    MG_CFG_FILE("privateKey", struct mg_credential, private_key),
    MG_CFG_FILE("caCertificates", struct mg_credential, ca_certificates),
    MG_CFG_FILE("ocspStaple", struct mg_credential, ocsp_staple),
};
static const struct mg_cfg_table credential = {
    MG_CFG_ROWS(credential_rows), .check = check_credential,
};

/* `credentials: {NAME: {...}}`: a map of maps, each named by its key. */
static bool read_credentials(struct mg_cfg *x, const struct mg_ynode *k, const struct mg_ynode *v,
                             void *obj)
{
    struct mg_proxy *p = obj;
    const struct mg_ynode *ck, *cv;

    if (!mg_cfg_map(x, k->str, v))
        return false;
    for (size_t i = 0; mg_cfg_next(v, &i, &ck, &cv);) {
        size_t mark = mg_cfg_push(x, ".credentials.%s", ck->str);
        if (mg_cfg_map(x, "", cv)) {
            struct mg_credential *c = MG_CFG_PUSH(p->credentials, p->n_credentials);
            c->name = mg_xstrdup(ck->str);
            c->pos = ck->pos;
            mg_cfg_read_fields(x, cv, &credential, c);
        }
        mg_cfg_pop(x, mark);
    }
    return true;
}

static void init_inbound(void *obj)
{
    ((struct mg_inbound *)obj)->protocol = MG_PROTO_HTTP;
}

static void check_inbound(struct mg_cfg *x, const struct mg_cfg_read *r, void *obj)
{
    if (!mg_ynode_get(r->m, "port") || !mg_ynode_get(r->m, "bind") ||
        !mg_ynode_get(r->m, "forwardTo"))
        mg_error(x->d, r->m->pos, "%s needs port, bind and forwardTo", mg_cfg_field(x, NULL));
}

static const struct mg_cfg_field inbound_rows[] = {
    MG_CFG_PORT("port", struct mg_inbound, port),
    MG_CFG_ADDR("bind", struct mg_inbound, bind, true, false),
    MG_CFG_ADDR("forwardTo", struct mg_inbound, forward_to, true, false),
    MG_CFG_PROTO("protocol", struct mg_inbound, protocol),
};
static const struct mg_cfg_table inbound = {
    MG_CFG_ROWS(inbound_rows), .pos_at = MG_CFG_POS_AT(struct mg_inbound, pos),
    .init = init_inbound, .check = check_inbound,
};

/* outbound.tls: a Gateway server's TLS settings (checked by that table),
 * for a listener that terminates TLS and then serves HTTP/1.1 proxy
 * requests, so only the terminating modes make sense and it needs the
 * listener itself. */
static void check_outbound_tls(struct mg_cfg *x, const struct mg_proxy *p)
{
    const struct mg_server_tls *t = &p->outbound_tls;
    if (!t->present)
        return;
    if (!p->outbound_bind || !*p->outbound_bind)
        mg_error(x->d, t->pos, "outbound.tls without outbound.bind: there is no forward proxy "
                 "listener to terminate TLS on");
    if (!t->has_mode)
        mg_error(x->d, t->pos, "outbound.tls needs a mode (SIMPLE, MUTUAL, OPTIONAL_MUTUAL or "
                 "ISTIO_MUTUAL)");
    else if (t->mode == MG_TLS_PASSTHROUGH || t->mode == MG_TLS_AUTO_PASSTHROUGH)
        mg_error(x->d, t->pos, "outbound.tls mode %s: the forward proxy reads the requests, so it "
                 "terminates TLS (SIMPLE, MUTUAL, OPTIONAL_MUTUAL or ISTIO_MUTUAL)",
                 mg_cfg_server_tls_modes[t->mode]);
    if (t->https_redirect)
        mg_error(x->d, t->pos, "outbound.tls: httpsRedirect is for plain-text Gateway servers");
    if (t->has_mode && t->mode == MG_TLS_ISTIO_MUTUAL &&
        (!p->identity_cert_chain || !p->identity_private_key || !p->identity_root_certs))
        mg_error(x->d, t->pos, "outbound.tls mode ISTIO_MUTUAL needs Proxy.spec.identity "
                 "(certificateChain, privateKey, rootCertificates)");
}

static void check_proxy(struct mg_cfg *x, const struct mg_cfg_read *r, void *obj)
{
    const struct mg_proxy *p = obj;

    /* an outbound-only sidecar (the app's forward proxy) is a client of the mesh */
    if (p->mode == MG_MODE_SIDECAR && p->n_inbound == 0 && !p->outbound_bind)
        mg_warning(x->d, p->pos, "sidecar mode without inbound ports or outbound.bind receives no traffic");
    if (p->mode == MG_MODE_GATEWAY && p->n_inbound)
        mg_warning(x->d, p->pos, "inbound is for sidecar mode; ignored in gateway mode");
    for (size_t i = 0; i < p->n_inbound; i++)       /* one listener per bind address */
        for (size_t j = 0; j < i; j++)
            if (p->inbound[i].bind && p->inbound[j].bind &&
                strcmp(p->inbound[i].bind, p->inbound[j].bind) == 0)
                mg_error(x->d, p->inbound[i].pos, "inbound bind %s is used twice", p->inbound[i].bind);
    check_outbound_tls(x, p);
    const struct mg_ynode *loc = mg_cfg_seen(r, "locality");
    if (loc && p->locality && (strchr(p->locality, '*') || strstr(p->locality, "//") ||
                               *p->locality == '/'))
        mg_error(x->d, loc->pos, "%s: \"%s\" is not a locality (region/zone/subzone, no '*', "
                 "no empty part before another)", mg_cfg_field(x, "locality"), p->locality);
    for (size_t i = 0; i < p->egress_deny_cidrs.n; i++) {
        struct mg_cidr c;
        if (mg_cidr_parse(p->egress_deny_cidrs.v[i], &c) != 0)
            mg_error(x->d, p->egress_deny_cidrs.pos[i], "egress.denyResolvedCidrs: \"%s\" is not an IP "
                     "or CIDR", p->egress_deny_cidrs.v[i]);
    }
}

static const char *const proxy_modes[] = { "gateway", "sidecar" };
static const struct mg_cfg_field identity_rows[] = {
    MG_CFG_FILE("certificateChain", struct mg_proxy, identity_cert_chain),
    MG_CFG_FILE("privateKey", struct mg_proxy, identity_private_key),
    MG_CFG_FILE("rootCertificates", struct mg_proxy, identity_root_certs),
};
static const struct mg_cfg_table identity = { MG_CFG_ROWS(identity_rows) };
static const struct mg_cfg_field outbound_rows[] = {
    MG_CFG_ADDR("bind", struct mg_proxy, outbound_bind, true, false),
    MG_CFG_MAP("tls", struct mg_proxy, outbound_tls, mg_cfg_server_tls),
};
static const struct mg_cfg_table outbound = { MG_CFG_ROWS(outbound_rows) };
static const struct mg_cfg_field egress_rows[] = {
    MG_CFG_SLIST("denyResolvedCidrs", struct mg_proxy, egress_deny_cidrs),
};
static const struct mg_cfg_table egress = { MG_CFG_ROWS(egress_rows) };
static void check_proxy_protocol(struct mg_cfg *x, const struct mg_cfg_read *r, void *obj)
{
    (void)r;
    const struct mg_proxy *p = obj;
    const struct mg_proxy_protocol *pp = &p->proxy_protocol;
    for (size_t i = 0; i < pp->trusted_sources.n; i++) {
        struct mg_cidr c;
        if (mg_cidr_parse(pp->trusted_sources.v[i], &c) != 0)
            mg_error(x->d, pp->trusted_sources.pos[i], "proxyProtocol.trustedSources: \"%s\" is not "
                     "an IP or CIDR", pp->trusted_sources.v[i]);
    }
    for (size_t i = 0; i < pp->ports.n; i++) {
        uint16_t port;
        if (mg_parse_port(pp->ports.v[i], false, &port) != 0)
            mg_error(x->d, pp->ports.pos[i], "proxyProtocol.ports: \"%s\" is not a port number",
                     pp->ports.v[i]);
    }
}
static const struct mg_cfg_field pp_rows[] = {
    MG_CFG_SLIST("ports", struct mg_proxy, proxy_protocol.ports),
    MG_CFG_SLIST("trustedSources", struct mg_proxy, proxy_protocol.trusted_sources),
    MG_CFG_BOOL("allowWithoutHeader", struct mg_proxy, proxy_protocol.allow_without_header),
};
static const struct mg_cfg_table proxy_protocol = {
    MG_CFG_ROWS(pp_rows), .check = check_proxy_protocol,
    .present_at = MG_CFG_FLAG_AT(struct mg_proxy, proxy_protocol.present),
    .pos_at = MG_CFG_POS_AT(struct mg_proxy, proxy_protocol.pos),
};
static const struct mg_cfg_field proxy_tls_rows[] = {
    MG_CFG_FILE("sessionTicketKeys", struct mg_proxy, session_ticket_keys),
};
static const struct mg_cfg_table proxy_tls = { MG_CFG_ROWS(proxy_tls_rows) };
static const struct mg_cfg_field timeouts_rows[] = {
    MG_CFG_DURATION("handshake", struct mg_proxy, timeout_handshake_ms),
    MG_CFG_DURATION("requestHeaders", struct mg_proxy, timeout_request_headers_ms),
    MG_CFG_DURATION("idle", struct mg_proxy, timeout_idle_ms),
    MG_CFG_DURATION("drain", struct mg_proxy, timeout_drain_ms),
    MG_CFG_DURATION("drainDelay", struct mg_proxy, timeout_drain_delay_ms),
};
static const struct mg_cfg_table timeouts = { MG_CFG_ROWS(timeouts_rows) };
static const struct mg_cfg_field limits_rows[] = {
    MG_CFG_U64("maxConnections", struct mg_proxy, max_connections),
    MG_CFG_U64("maxRequestHeadersKb", struct mg_proxy, max_request_headers_kb),
    MG_CFG_U64("maxConcurrentStreams", struct mg_proxy, max_concurrent_streams),
};
static const struct mg_cfg_table limits = { MG_CFG_ROWS(limits_rows) };
static const struct mg_cfg_field proxy_jwt_rows[] = {
    MG_CFG_BOOL("requireHttps", struct mg_proxy, jwt_require_https),
};
static const struct mg_cfg_table proxy_jwt = { MG_CFG_ROWS(proxy_jwt_rows) };
static const struct mg_cfg_field proxy_rows[] = {
    MG_CFG_ENUM("mode", struct mg_proxy, mode, proxy_modes),
    MG_CFG_INT("workers", struct mg_proxy, workers, 0, 1024),
    MG_CFG_STR("serviceAccount", struct mg_proxy, service_account),
    MG_CFG_STR("locality", struct mg_proxy, locality),
    MG_CFG_STR("network", struct mg_proxy, network),
    MG_CFG_GROUP("identity", identity),
    MG_CFG_FN("credentials", read_credentials),
    MG_CFG_ADDR("bindAddress", struct mg_proxy, bind_address, false, false),
    MG_CFG_ADDR("admin", struct mg_proxy, admin, true, true),
    MG_CFG_LIST("inbound", struct mg_proxy, inbound, n_inbound, inbound),
    MG_CFG_GROUP("outbound", outbound),
    MG_CFG_GROUP("egress", egress),
    MG_CFG_GROUP("proxyProtocol", proxy_protocol),
    MG_CFG_GROUP("tls", proxy_tls),
    MG_CFG_BOOL("watchConfig", struct mg_proxy, watch_config),
    MG_CFG_GROUP("jwt", proxy_jwt),
    MG_CFG_GROUP("timeouts", timeouts),
    MG_CFG_GROUP("limits", limits),
};
static const struct mg_cfg_table proxy = {
    MG_CFG_ROWS(proxy_rows), .pos_at = MG_CFG_POS_AT(struct mg_proxy, pos), .check = check_proxy,
};

void mg_cfg_read_proxy(struct mg_cfg *x, const struct mg_ynode *spec, struct mg_proxy *p)
{
    if (!spec)
        p->pos = p->meta.pos;
    mg_cfg_read_spec(x, spec, &proxy, p);
}

/* ---- Secret (v1) ---- */

/* The base64 bytes of a Secret's data value (folded or wrapped base64 is
 * common in hand-written Secrets: whitespace is dropped). */
static uint8_t *b64_bytes(struct mg_cfg *x, const char *key, const struct mg_ynode *v, size_t *n)
{
    uint8_t *out;

    if (!mg_cfg_scalar(x, key, v))
        return NULL;
    char *clean = mg_xmalloc(v->len + 1);
    size_t cl = 0;
    for (size_t i = 0; i < v->len; i++)
        if (!strchr(" \t\r\n", v->str[i]))
            clean[cl++] = v->str[i];
    clean[cl] = '\0';
    int rc = mg_base64_decode(clean, cl, false, &out, n);
    free(clean);
    if (rc < 0) {
        mg_error(x->d, v->pos, "data.%s of the Secret is not valid base64", key);
        return NULL;
    }
    return out;
}

static char *b64_field(struct mg_cfg *x, const char *key, const struct mg_ynode *v)
{
    size_t n;
    uint8_t *out = b64_bytes(x, key, v, &n);
    if (!out)
        return NULL;
    char *s = mg_xstrndup((const char *)out, n);
    if (strlen(s) != n) {
        mg_error(x->d, v->pos, "data.%s of the Secret contains a NUL byte (want PEM)", key);
        free(s);
        s = NULL;
    }
    free(out);
    return s;
}

static char **secret_slot(struct mg_credential *cr, const char *key)
{
    return strcmp(key, "tls.crt") == 0 ? &cr->cert_pem
         : strcmp(key, "tls.key") == 0 ? &cr->key_pem
         : strcmp(key, "ca.crt") == 0 ? &cr->ca_pem : NULL;
}

bool mg_cfg_read_secret(struct mg_cfg *x, const struct mg_ynode *doc, struct mg_credential *cr)
{
    const struct mg_ynode *type = mg_ynode_get(doc, "type"), *data = mg_ynode_get(doc, "data");
    const struct mg_ynode *sdata = mg_ynode_get(doc, "stringData"), *k, *v;

    if (!type || type->type != MG_YSCALAR || strcmp(type->str, "kubernetes.io/tls") != 0) {
        mg_warning(x->d, doc->pos, "Secret of type \"%s\" ignored (only kubernetes.io/tls is "
                   "used)", type && type->type == MG_YSCALAR ? type->str : "Opaque");
        return false;
    }
    size_t mark = mg_cfg_push(x, ".data");
    if (data && mg_cfg_map(x, "data", data)) {
        for (size_t i = 0; mg_cfg_next(data, &i, &k, &v);) {
            if (strcmp(k->str, "tls.ocsp-staple") == 0) {   /* DER bytes, as Istio reads it */
                size_t n;
                uint8_t *der = b64_bytes(x, k->str, v, &n);
                if (der && n) {
                    free(cr->ocsp_der);
                    cr->ocsp_der = der;
                    cr->ocsp_len = n;
                } else {
                    free(der);
                }
                continue;
            }
            char **slot = secret_slot(cr, k->str);
            if (!slot) {
                mg_warning(x->d, k->pos, "Secret key \"%s\" is not used", k->str);
                continue;
            }
            char *s = b64_field(x, k->str, v);
            if (s) {
                free(*slot);
                *slot = s;
            }
        }
    }
    if (sdata && mg_cfg_map(x, "stringData", sdata)) {
        for (size_t i = 0; mg_cfg_next(sdata, &i, &k, &v);) {
            char **slot = secret_slot(cr, k->str);
            if (slot)
                mg_cfg_str(x, k->str, v, slot);
            else if (strcmp(k->str, "tls.ocsp-staple") == 0)
                mg_warning(x->d, k->pos, "tls.ocsp-staple is DER (binary): put it base64 in data, "
                           "not stringData; not stapled");
            else
                mg_warning(x->d, k->pos, "Secret key \"%s\" is not used", k->str);
        }
    }
    mg_cfg_pop(x, mark);
    bool has_crt = (data && mg_ynode_get(data, "tls.crt")) || (sdata && mg_ynode_get(sdata, "tls.crt"));
    bool has_key = (data && mg_ynode_get(data, "tls.key")) || (sdata && mg_ynode_get(sdata, "tls.key"));
    if (!has_crt || !has_key)
        mg_error(x->d, doc->pos, "TLS Secret needs data tls.crt and tls.key");
    return true;
}
