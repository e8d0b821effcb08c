/* config_mesh.c - the project's own kinds (MeshConfig, Proxy) and the
 * kubernetes.io/tls Secret. */
#include <stdlib.h>
#include <string.h>
#include "config_int.h"

/* ---- MeshConfig ---- */

/* Istio meshConfig fields that have no meaning for one appliance: accepted
 * so a real mesh config loads, with a warning. */
static const char *const mesh_ignored[] = {
    "enableTracing", "enableAutoMtls", "ingressClass", "ingressService",
    "ingressControllerMode", "ingressSelector", "defaultServiceExportTo",
    "defaultVirtualServiceExportTo", "defaultDestinationRuleExportTo", "localityLbSetting",
    "dnsRefreshRate", "h2UpgradePolicy", "inboundClusterStatName", "outboundClusterStatName",
    "certificates", "tlsDefaults", "meshMTLS", "serviceSettings", "enablePrometheusMerge",
    "verifyCertificateAtClient", "discoverySelectors", "defaultProviders",
    "protocolDetectionTimeout", "connectTimeout", "tcpKeepalive", "proxyListenPort",
    "proxyInboundListenPort", "proxyHttpPort", "enableEnvoyAccessLogService",
    "disableEnvoyListenerLog", "configSources", "thriftConfig", "inboundTrafficPolicy",
    "accessLogFormatJson", "sdsUdsPath", "mixerCheckServer", "mixerReportServer",
    "policyCheckFailOpen", "trustDomainAliasesEnabled", "serviceScopeConfigs",
};

static void read_ext_authz(struct mg_cfg *x, const struct mg_ynode *m, struct mg_ext_provider *p)
{
    const struct mg_ynode *k, *v;

    for (size_t i = 0; mg_cfg_next(m, &i, &k, &v);) {
        const char *key = k->str;
        if (strcmp(key, "service") == 0)
            mg_cfg_str(x, key, v, &p->service);
        else if (strcmp(key, "port") == 0)
            mg_cfg_port(x, key, v, &p->port);
        else if (strcmp(key, "timeout") == 0)
            mg_cfg_duration(x, key, v, &p->timeout_ms);
        else if (strcmp(key, "pathPrefix") == 0 && p->type == MG_EXT_HTTP)
            mg_cfg_str(x, key, v, &p->path_prefix);
        else if (strcmp(key, "failOpen") == 0)
            mg_cfg_bool(x, key, v, &p->fail_open);
        else if (strcmp(key, "statusOnError") == 0)
            mg_cfg_intv(x, key, v, 100, 599, &p->status_on_error);
        else if (strcmp(key, "includeRequestHeadersInCheck") == 0 && p->type == MG_EXT_HTTP)
            mg_cfg_slist(x, key, v, &p->include_request_headers_in_check);
        else if (strcmp(key, "headersToUpstreamOnAllow") == 0 && p->type == MG_EXT_HTTP)
            mg_cfg_slist(x, key, v, &p->headers_to_upstream_on_allow);
        else if (strcmp(key, "headersToDownstreamOnDeny") == 0 && p->type == MG_EXT_HTTP)
            mg_cfg_slist(x, key, v, &p->headers_to_downstream_on_deny);
        else if (strcmp(key, "includeRequestBodyInCheck") == 0 ||
                 strcmp(key, "includeAdditionalHeadersInCheck") == 0 ||
                 strcmp(key, "includeHeadersInCheck") == 0 ||
                 strcmp(key, "headersToUpstreamOnDeny") == 0 ||
                 strcmp(key, "clearRouteCache") == 0)
            mg_cfg_unsupported(x, k);
        else
            mg_cfg_unknown(x, k);
    }
    if (!p->service)
        mg_error(x->d, m->pos, "%s needs a service", mg_cfg_field(x, NULL));
    if (!p->port)
        mg_error(x->d, m->pos, "%s needs a port", mg_cfg_field(x, NULL));
}

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
        size_t m2 = mg_cfg_push(x, ".%s", type == MG_EXT_HTTP ? "envoyExtAuthzHttp"
                                                              : "envoyExtAuthzGrpc");
        read_ext_authz(x, body, p);
        mg_cfg_pop(x, m2);
        mg_cfg_pop(x, mark);
    }
}

static void read_one_key_enum(struct mg_cfg *x, const char *key, const struct mg_ynode *v,
                              const char *inner, const char *const *names, const int *vals,
                              size_t n, int *out)
{
    const struct mg_ynode *k, *e;

    if (!mg_cfg_map(x, key, v))
        return;
    size_t mark = mg_cfg_push(x, ".%s", key);
    for (size_t i = 0; mg_cfg_next(v, &i, &k, &e);) {
        if (strcmp(k->str, inner) == 0)
            mg_cfg_enum(x, inner, e, names, vals, n, out);
        else if (strcmp(k->str, "egressProxy") == 0)
            mg_cfg_unsupported(x, k);
        else
            mg_cfg_unknown(x, k);
    }
    mg_cfg_pop(x, mark);
}

static void read_default_config(struct mg_cfg *x, const struct mg_ynode *v, struct mg_mesh_config *m)
{
    const struct mg_ynode *k, *e, *gk, *gv;

    if (!mg_cfg_map(x, "defaultConfig", v))
        return;
    size_t mark = mg_cfg_push(x, ".defaultConfig");
    for (size_t i = 0; mg_cfg_next(v, &i, &k, &e);) {
        if (strcmp(k->str, "gatewayTopology") != 0) {
            /* ProxyConfig has ~50 Envoy knobs; none applies here */
            mg_cfg_unsupported(x, k);
            continue;
        }
        if (!mg_cfg_map(x, k->str, e))
            continue;
        size_t m2 = mg_cfg_push(x, ".gatewayTopology");
        for (size_t j = 0; mg_cfg_next(e, &j, &gk, &gv);) {
            if (strcmp(gk->str, "numTrustedProxies") == 0)
                mg_cfg_intv(x, gk->str, gv, 0, 64, &m->num_trusted_proxies);
            else
                mg_cfg_unsupported(x, gk);
        }
        mg_cfg_pop(x, m2);
    }
    mg_cfg_pop(x, mark);
}

void mg_cfg_read_mesh(struct mg_cfg *x, const struct mg_ynode *spec, struct mg_mesh_config *m)
{
    static const char *const outbound[] = { "REGISTRY_ONLY", "ALLOW_ANY" };
    static const int outbound_v[] = { MG_OUTBOUND_REGISTRY_ONLY, MG_OUTBOUND_ALLOW_ANY };
    static const char *const norm[] = { "DEFAULT", "NONE", "BASE", "MERGE_SLASHES",
                                        "DECODE_AND_MERGE_SLASHES" };
    static const int norm_v[] = { MG_NORM_BASE, MG_NORM_NONE, MG_NORM_BASE,
                                  MG_NORM_MERGE_SLASHES, MG_NORM_DECODE_AND_MERGE_SLASHES };
    static const char *const enc[] = { "TEXT", "JSON" };
    const struct mg_ynode *k, *v;
    int t;

    if (spec && !mg_ynode_is_null(spec) && !mg_cfg_map(x, "", spec))
        return;
    m->pos = spec ? spec->pos : m->pos;
    for (size_t i = 0; mg_cfg_next(spec, &i, &k, &v);) {
        const char *key = k->str;
        if (strcmp(key, "trustDomain") == 0)
            mg_cfg_str(x, key, v, &m->trust_domain);
        else if (strcmp(key, "trustDomainAliases") == 0)
            mg_cfg_slist(x, key, v, &m->trust_domain_aliases);
        else if (strcmp(key, "rootNamespace") == 0)
            mg_cfg_str(x, key, v, &m->root_namespace);
        else if (strcmp(key, "outboundTrafficPolicy") == 0) {
            t = m->outbound_mode;
            read_one_key_enum(x, key, v, "mode", outbound, outbound_v, 2, &t);
            m->outbound_mode = (enum mg_outbound_mode)t;
        } else if (strcmp(key, "pathNormalization") == 0) {
            t = m->path_normalization;
            read_one_key_enum(x, key, v, "normalization", norm, norm_v, 5, &t);
            m->path_normalization = (enum mg_path_norm)t;
        } else if (strcmp(key, "accessLogFile") == 0) {
            if (mg_cfg_scalar(x, key, v) && mg_has_prefix(v->str, "/dev/"))
                mg_cfg_str(x, key, v, &m->access_log_file);
            else
                mg_cfg_file(x, key, v, false, &m->access_log_file);
        } else if (strcmp(key, "accessLogEncoding") == 0) {
            t = m->access_log_encoding;
            if (mg_cfg_enum(x, key, v, enc, NULL, 2, &t))
                m->access_log_encoding = (enum mg_log_encoding)t;
        } else if (strcmp(key, "accessLogFormat") == 0)
            mg_cfg_str(x, key, v, &m->access_log_format);
        else if (strcmp(key, "caCertificates") == 0)
            mg_cfg_file(x, key, v, true, &m->ca_certificates);
        else if (strcmp(key, "geoipDatabase") == 0)
            mg_cfg_file(x, key, v, true, &m->geoip_database);
        else if (strcmp(key, "extensionProviders") == 0)
            read_ext_providers(x, v, m);
        else if (strcmp(key, "numTrustedProxies") == 0)
            mg_cfg_intv(x, key, v, 0, 64, &m->num_trusted_proxies);
        else if (strcmp(key, "defaultConfig") == 0)
            read_default_config(x, v, m);
        else {
            size_t j;
            for (j = 0; j < MG_ARRAY_LEN(mesh_ignored); j++)
                if (strcmp(key, mesh_ignored[j]) == 0)
                    break;
            if (j < MG_ARRAY_LEN(mesh_ignored))
                mg_cfg_unsupported(x, k);
            else
                mg_cfg_unknown(x, k);
        }
    }
}

/* ---- Proxy ---- */

/* "ip:port" / "[v6]:port" listener addresses. */
static void addr_field(struct mg_cfg *x, const char *key, const struct mg_ynode *v, bool need_port,
                       bool allow_empty, char **out)
{
    char host[256];
    uint16_t port;
    struct mg_addr a;

    mg_cfg_str(x, key, v, out);
    if (!*out || (allow_empty && !**out))
        return;
    if (mg_split_host_port(*out, host, sizeof(host), &port) < 0 || (need_port && !port) ||
        (!need_port && port) || mg_addr_parse_ip(&a, host) < 0) {
        mg_error(x->d, v->pos, "invalid address \"%s\" for %s (want %s)", *out,
                 mg_cfg_field(x, key), need_port ? "IP:port" : "an IP address");
        free(*out);
        *out = NULL;
    }
}

static void read_credentials(struct mg_cfg *x, const struct mg_ynode *v, struct mg_proxy *p)
{
    const struct mg_ynode *k, *e, *fk, *fv;

    if (!mg_cfg_map(x, "credentials", v))
        return;
    for (size_t i = 0; mg_cfg_next(v, &i, &k, &e);) {
        size_t mark = mg_cfg_push(x, ".credentials.%s", k->str);
        if (mg_cfg_map(x, "", e)) {
            struct mg_credential *c = MG_CFG_PUSH(p->credentials, p->n_credentials);
            c->name = mg_xstrdup(k->str);
            c->pos = k->pos;
            for (size_t j = 0; mg_cfg_next(e, &j, &fk, &fv);) {
                if (strcmp(fk->str, "certificate") == 0)
                    mg_cfg_file(x, fk->str, fv, true, &c->certificate);
                else if (strcmp(fk->str, "privateKey") == 0)
                    mg_cfg_file(x, fk->str, fv, true, &c->private_key);
                else if (strcmp(fk->str, "caCertificates") == 0)
                    mg_cfg_file(x, fk->str, fv, true, &c->ca_certificates);
                else
                    mg_cfg_unknown(x, fk);
            }
            if (!c->certificate || !c->private_key)
                mg_error(x->d, k->pos, "credential \"%s\" needs certificate and privateKey",
                         k->str);
        }
        mg_cfg_pop(x, mark);
    }
}

static void read_inbound(struct mg_cfg *x, const struct mg_ynode *v, struct mg_proxy *p)
{
    const struct mg_ynode *k, *e;

    if (!mg_cfg_seq(x, "inbound", v))
        return;
    for (size_t i = 0; i < v->n; i++) {
        size_t mark = mg_cfg_push(x, ".inbound[%zu]", i);
        if (mg_cfg_map(x, "", v->items[i])) {
            struct mg_inbound *in = MG_CFG_PUSH(p->inbound, p->n_inbound);
            in->pos = v->items[i]->pos;
            in->protocol = MG_PROTO_HTTP;
            for (size_t j = 0; mg_cfg_next(v->items[i], &j, &k, &e);) {
                if (strcmp(k->str, "port") == 0)
                    mg_cfg_port(x, k->str, e, &in->port);
                else if (strcmp(k->str, "bind") == 0)
                    addr_field(x, k->str, e, true, false, &in->bind);
                else if (strcmp(k->str, "forwardTo") == 0)
                    addr_field(x, k->str, e, true, false, &in->forward_to);
                else if (strcmp(k->str, "protocol") == 0)
                    mg_cfg_proto(x, k->str, e, &in->protocol);
                else
                    mg_cfg_unknown(x, k);
            }
            if (!mg_ynode_get(v->items[i], "port") || !mg_ynode_get(v->items[i], "bind") ||
                !mg_ynode_get(v->items[i], "forwardTo"))
                mg_error(x->d, in->pos, "%s needs port, bind and forwardTo",
                         mg_cfg_field(x, NULL));
        }
        mg_cfg_pop(x, mark);
    }
}

void mg_cfg_read_proxy(struct mg_cfg *x, const struct mg_ynode *spec, struct mg_proxy *p)
{
    static const char *const modes[] = { "gateway", "sidecar" };
    const struct mg_ynode *k, *v, *sk, *sv;
    int t;

    if (spec && !mg_ynode_is_null(spec) && !mg_cfg_map(x, "", spec))
        return;
    p->pos = spec ? spec->pos : p->meta.pos;
    for (size_t i = 0; mg_cfg_next(spec, &i, &k, &v);) {
        const char *key = k->str;
        size_t mark;
        if (strcmp(key, "mode") == 0) {
            if (mg_cfg_enum(x, key, v, modes, NULL, 2, &t))
                p->mode = (enum mg_proxy_mode)t;
        } else if (strcmp(key, "workers") == 0)
            mg_cfg_intv(x, key, v, 0, 1024, &p->workers);
        else if (strcmp(key, "serviceAccount") == 0)
            mg_cfg_str(x, key, v, &p->service_account);
        else if (strcmp(key, "identity") == 0) {
            if (!mg_cfg_map(x, key, v))
                continue;
            mark = mg_cfg_push(x, ".identity");
            for (size_t j = 0; mg_cfg_next(v, &j, &sk, &sv);) {
                if (strcmp(sk->str, "certificateChain") == 0)
                    mg_cfg_file(x, sk->str, sv, true, &p->identity_cert_chain);
                else if (strcmp(sk->str, "privateKey") == 0)
                    mg_cfg_file(x, sk->str, sv, true, &p->identity_private_key);
                else if (strcmp(sk->str, "rootCertificates") == 0)
                    mg_cfg_file(x, sk->str, sv, true, &p->identity_root_certs);
                else
                    mg_cfg_unknown(x, sk);
            }
            mg_cfg_pop(x, mark);
        } else if (strcmp(key, "credentials") == 0)
            read_credentials(x, v, p);
        else if (strcmp(key, "bindAddress") == 0)
            addr_field(x, key, v, false, false, &p->bind_address);
        else if (strcmp(key, "admin") == 0)
            addr_field(x, key, v, true, true, &p->admin);
        else if (strcmp(key, "inbound") == 0)
            read_inbound(x, v, p);
        else if (strcmp(key, "outbound") == 0) {
            if (!mg_cfg_map(x, key, v))
                continue;
            mark = mg_cfg_push(x, ".outbound");
            for (size_t j = 0; mg_cfg_next(v, &j, &sk, &sv);) {
                if (strcmp(sk->str, "bind") == 0)
                    addr_field(x, sk->str, sv, true, false, &p->outbound_bind);
                else
                    mg_cfg_unknown(x, sk);
            }
            mg_cfg_pop(x, mark);
        } else if (strcmp(key, "timeouts") == 0) {
            if (!mg_cfg_map(x, key, v))
                continue;
            mark = mg_cfg_push(x, ".timeouts");
            for (size_t j = 0; mg_cfg_next(v, &j, &sk, &sv);) {
                if (strcmp(sk->str, "handshake") == 0)
                    mg_cfg_duration(x, sk->str, sv, &p->timeout_handshake_ms);
                else if (strcmp(sk->str, "requestHeaders") == 0)
                    mg_cfg_duration(x, sk->str, sv, &p->timeout_request_headers_ms);
                else if (strcmp(sk->str, "idle") == 0)
                    mg_cfg_duration(x, sk->str, sv, &p->timeout_idle_ms);
                else if (strcmp(sk->str, "drain") == 0)
                    mg_cfg_duration(x, sk->str, sv, &p->timeout_drain_ms);
                else
                    mg_cfg_unknown(x, sk);
            }
            mg_cfg_pop(x, mark);
        } else if (strcmp(key, "limits") == 0) {
            if (!mg_cfg_map(x, key, v))
                continue;
            mark = mg_cfg_push(x, ".limits");
            for (size_t j = 0; mg_cfg_next(v, &j, &sk, &sv);) {
                if (strcmp(sk->str, "maxConnections") == 0)
                    mg_cfg_u64(x, sk->str, sv, &p->max_connections);
                else if (strcmp(sk->str, "maxRequestHeadersKb") == 0)
                    mg_cfg_u64(x, sk->str, sv, &p->max_request_headers_kb);
                else if (strcmp(sk->str, "maxConcurrentStreams") == 0)
                    mg_cfg_u64(x, sk->str, sv, &p->max_concurrent_streams);
                else
                    mg_cfg_unknown(x, sk);
            }
            mg_cfg_pop(x, mark);
        } else
            mg_cfg_unknown(x, k);
    }
    if (p->mode == MG_MODE_SIDECAR && p->n_inbound == 0)
        mg_warning(x->d, p->pos, "sidecar mode without inbound ports receives no traffic");
    if (p->mode == MG_MODE_GATEWAY && p->n_inbound)
        mg_warning(x->d, p->pos, "inbound is for sidecar mode; ignored in gateway mode");
    for (size_t i = 0; i < p->n_inbound; i++)       /* one listener per bind address */
        for (size_t j = 0; j < i; j++)
            if (p->inbound[i].bind && p->inbound[j].bind &&
                strcmp(p->inbound[i].bind, p->inbound[j].bind) == 0)
                mg_error(x->d, p->inbound[i].pos, "inbound bind %s is used twice", p->inbound[i].bind);
}

/* ---- Secret (v1) ---- */

static char *b64_field(struct mg_cfg *x, const char *key, const struct mg_ynode *v)
{
    uint8_t *out;
    size_t n;

    if (!mg_cfg_scalar(x, key, v))
        return NULL;
    /* folded or wrapped base64 is common in hand-written Secrets */
    char *clean = mg_xmalloc(v->len + 1);
    size_t cl = 0;
    for (size_t i = 0; i < v->len; i++)
        if (!strchr(" \t\r\n", v->str[i]))
            clean[cl++] = v->str[i];
    clean[cl] = '\0';
    int rc = mg_base64_decode(clean, cl, false, &out, &n);
    free(clean);
    if (rc < 0) {
        mg_error(x->d, v->pos, "data.%s of the Secret is not valid base64", key);
        return NULL;
    }
    char *s = mg_xstrndup((const char *)out, n);
    if (strlen(s) != n) {
        mg_error(x->d, v->pos, "data.%s of the Secret contains a NUL byte (want PEM)", key);
        free(s);
        s = NULL;
    }
    free(out);
    return s;
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
            char **slot = strcmp(k->str, "tls.crt") == 0 ? &cr->cert_pem
                        : strcmp(k->str, "tls.key") == 0 ? &cr->key_pem
                        : strcmp(k->str, "ca.crt") == 0 ? &cr->ca_pem : NULL;
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
            char **slot = strcmp(k->str, "tls.crt") == 0 ? &cr->cert_pem
                        : strcmp(k->str, "tls.key") == 0 ? &cr->key_pem
                        : strcmp(k->str, "ca.crt") == 0 ? &cr->ca_pem : NULL;
            if (slot)
                mg_cfg_str(x, k->str, v, slot);
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
