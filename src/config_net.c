/* config_net.c - Gateway and VirtualService (networking.istio.io). */
#include <stdlib.h>
#include <string.h>
#include "config_int.h"

/* ---- Gateway ---- */

static void read_server_tls(struct mg_cfg *x, const struct mg_ynode *v, struct mg_server_tls *t)
{
    static const char *const modes[] = { "PASSTHROUGH", "SIMPLE", "MUTUAL", "AUTO_PASSTHROUGH",
                                         "ISTIO_MUTUAL", "OPTIONAL_MUTUAL" };
    static const char *const versions[] = { "TLS_AUTO", "TLSV1_0", "TLSV1_1", "TLSV1_2",
                                            "TLSV1_3" };
    const struct mg_ynode *k, *e;
    int m;

    if (!mg_cfg_map(x, "tls", v))
        return;
    t->present = true;
    t->pos = v->pos;
    size_t mark = mg_cfg_push(x, ".tls");
    for (size_t i = 0; mg_cfg_next(v, &i, &k, &e);) {
        const char *key = k->str;
        if (strcmp(key, "httpsRedirect") == 0)
            mg_cfg_bool(x, key, e, &t->https_redirect);
        else if (strcmp(key, "mode") == 0) {
            if (mg_cfg_enum(x, key, e, modes, NULL, 6, &m)) {
                t->mode = (enum mg_tls_mode)m;
                t->has_mode = true;
            }
        } else if (strcmp(key, "serverCertificate") == 0)
            mg_cfg_file(x, key, e, true, &t->server_certificate);
        else if (strcmp(key, "privateKey") == 0)
            mg_cfg_file(x, key, e, true, &t->private_key);
        else if (strcmp(key, "caCertificates") == 0)
            mg_cfg_file(x, key, e, true, &t->ca_certificates);
        else if (strcmp(key, "caCrl") == 0)
            mg_cfg_file(x, key, e, true, &t->ca_crl);
        else if (strcmp(key, "credentialName") == 0)
            mg_cfg_str(x, key, e, &t->credential_name);
        else if (strcmp(key, "credentialNames") == 0)
            mg_cfg_slist(x, key, e, &t->credential_names);
        else if (strcmp(key, "subjectAltNames") == 0)
            mg_cfg_slist(x, key, e, &t->subject_alt_names);
        else if (strcmp(key, "verifyCertificateSpki") == 0)
            mg_cfg_slist(x, key, e, &t->verify_certificate_spki);
        else if (strcmp(key, "verifyCertificateHash") == 0)
            mg_cfg_slist(x, key, e, &t->verify_certificate_hash);
        else if (strcmp(key, "minProtocolVersion") == 0) {
            if (mg_cfg_enum(x, key, e, versions, NULL, 5, &m))
                t->min_version = (enum mg_tls_version)m;
        } else if (strcmp(key, "maxProtocolVersion") == 0) {
            if (mg_cfg_enum(x, key, e, versions, NULL, 5, &m))
                t->max_version = (enum mg_tls_version)m;
        } else if (strcmp(key, "cipherSuites") == 0)
            mg_cfg_slist(x, key, e, &t->cipher_suites);
        else if (strcmp(key, "insecureSkipVerify") == 0)
            mg_cfg_bool(x, key, e, &t->insecure_skip_verify);
        else if (strcmp(key, "caCertCredentialName") == 0 || strcmp(key, "tlsCertificates") == 0)
            mg_cfg_unsupported(x, k);
        else
            mg_cfg_unknown(x, k);
    }
    if (t->credential_name && !*t->credential_name) {
        free(t->credential_name);       /* "" is how YAML templates write "none" */
        t->credential_name = NULL;
    }
    bool files = t->server_certificate || t->private_key;
    bool creds = t->credential_name || t->credential_names.n;
    if (t->mode == MG_TLS_SIMPLE || t->mode == MG_TLS_MUTUAL || t->mode == MG_TLS_OPTIONAL_MUTUAL) {
        if (!creds && !(t->server_certificate && t->private_key))
            mg_error(x->d, v->pos, "TLS mode %s needs credentialName or serverCertificate and "
                     "privateKey", modes[t->mode]);
        if (creds && files)
            mg_error(x->d, v->pos, "credentialName and serverCertificate/privateKey cannot be "
                     "used together");
        if (t->mode != MG_TLS_SIMPLE && !creds && !t->ca_certificates)
            mg_error(x->d, v->pos, "TLS mode %s needs caCertificates (or a credentialName "
                     "holding ca.crt)", modes[t->mode]);
    }
    if (t->mode == MG_TLS_ISTIO_MUTUAL && (files || creds || t->ca_certificates))
        mg_error(x->d, v->pos, "TLS mode ISTIO_MUTUAL uses the proxy identity; "
                 "serverCertificate, privateKey, caCertificates and credentialName must be empty");
    mg_cfg_pop(x, mark);
}

static void read_server(struct mg_cfg *x, const struct mg_ynode *v, struct mg_server *s)
{
    const struct mg_ynode *k, *e, *pk, *pv, *port_n = NULL;

    s->pos = v->pos;
    for (size_t i = 0; mg_cfg_next(v, &i, &k, &e);) {
        const char *key = k->str;
        if (strcmp(key, "port") == 0) {
            if (!mg_cfg_map(x, key, e))
                continue;
            port_n = e;
            size_t mark = mg_cfg_push(x, ".port");
            for (size_t j = 0; mg_cfg_next(e, &j, &pk, &pv);) {
                if (strcmp(pk->str, "number") == 0)
                    mg_cfg_port(x, "number", pv, &s->port);
                else if (strcmp(pk->str, "protocol") == 0)
                    mg_cfg_proto(x, "protocol", pv, &s->protocol);
                else if (strcmp(pk->str, "name") == 0)
                    mg_cfg_str(x, "name", pv, &s->port_name);
                else if (strcmp(pk->str, "targetPort") == 0)
                    mg_cfg_unsupported(x, pk);
                else
                    mg_cfg_unknown(x, pk);
            }
            mg_cfg_pop(x, mark);
        } else if (strcmp(key, "bind") == 0)
            mg_cfg_str(x, key, e, &s->bind);
        else if (strcmp(key, "hosts") == 0)
            mg_cfg_slist(x, key, e, &s->hosts);
        else if (strcmp(key, "tls") == 0)
            read_server_tls(x, e, &s->tls);
        else if (strcmp(key, "name") == 0)
            mg_cfg_str(x, key, e, &s->name);
        else if (strcmp(key, "defaultEndpoint") == 0)
            mg_cfg_unsupported(x, k);
        else
            mg_cfg_unknown(x, k);
    }
    if (!port_n)
        mg_error(x->d, v->pos, "%s needs a port", mg_cfg_field(x, NULL));
    else if (!mg_ynode_get(port_n, "number") || !mg_ynode_get(port_n, "protocol"))
        mg_error(x->d, port_n->pos, "%s.port needs a number and a protocol",
                 mg_cfg_field(x, NULL));
    if (s->hosts.n == 0)
        mg_error(x->d, v->pos, "%s needs at least one host", mg_cfg_field(x, NULL));
    for (size_t i = 0; i < s->hosts.n; i++) {
        const char *h = s->hosts.v[i], *slash = strchr(h, '/');
        if (slash && (slash == h || strchr(slash + 1, '/')))
            mg_error(x->d, s->hosts.pos[i], "invalid host \"%s\" in %s (want [namespace/]host)",
                     h, mg_cfg_field(x, NULL));
        else if (!mg_cfg_host_ok(slash ? slash + 1 : h))
            mg_error(x->d, s->hosts.pos[i], "invalid host \"%s\" in %s (want a DNS name, a "
                     "wildcard only as the leftmost label)", h, mg_cfg_field(x, NULL));
    }
    if ((s->protocol == MG_PROTO_HTTPS || s->protocol == MG_PROTO_TLS) && !s->tls.present)
        mg_error(x->d, v->pos, "%s: protocol %s needs tls settings", mg_cfg_field(x, NULL),
                 mg_app_proto_name(s->protocol));
}

void mg_cfg_read_gateway(struct mg_cfg *x, const struct mg_ynode *spec, struct mg_gateway *g)
{
    const struct mg_ynode *k, *v;

    if (spec && !mg_ynode_is_null(spec) && !mg_cfg_map(x, "", spec))
        return;
    for (size_t i = 0; mg_cfg_next(spec, &i, &k, &v);) {
        if (strcmp(k->str, "selector") == 0)
            mg_cfg_kvlist(x, k->str, v, &g->selector);
        else if (strcmp(k->str, "servers") == 0) {
            if (!mg_cfg_seq(x, k->str, v))
                continue;
            for (size_t j = 0; j < v->n; j++) {
                size_t mark = mg_cfg_push(x, ".servers[%zu]", j);
                if (mg_cfg_map(x, "", v->items[j]))
                    read_server(x, v->items[j], MG_CFG_PUSH(g->servers, g->n_servers));
                mg_cfg_pop(x, mark);
            }
        } else
            mg_cfg_unknown(x, k);
    }
    if (g->n_servers == 0)
        mg_warning(x->d, spec ? spec->pos : g->meta.pos, "Gateway has no servers");
}

/* ---- VirtualService ---- */

static void read_header_ops(struct mg_cfg *x, const char *key, const struct mg_ynode *v,
                            struct mg_header_ops *ops)
{
    const struct mg_ynode *k, *e;

    if (!mg_cfg_map(x, key, v))
        return;
    size_t mark = mg_cfg_push(x, ".%s", key);
    for (size_t i = 0; mg_cfg_next(v, &i, &k, &e);) {
        if (strcmp(k->str, "set") == 0)
            mg_cfg_kvlist(x, "set", e, &ops->set);
        else if (strcmp(k->str, "add") == 0)
            mg_cfg_kvlist(x, "add", e, &ops->add);
        else if (strcmp(k->str, "remove") == 0)
            mg_cfg_slist(x, "remove", e, &ops->remove);
        else
            mg_cfg_unknown(x, k);
    }
    for (size_t i = 0; i < ops->set.n; i++)
        if (!mg_cfg_header_name_ok(ops->set.v[i].key))
            mg_error(x->d, ops->set.v[i].pos, "invalid header name \"%s\"", ops->set.v[i].key);
    for (size_t i = 0; i < ops->add.n; i++)
        if (!mg_cfg_header_name_ok(ops->add.v[i].key))
            mg_error(x->d, ops->add.v[i].pos, "invalid header name \"%s\"", ops->add.v[i].key);
    mg_cfg_pop(x, mark);
}

static void read_headers(struct mg_cfg *x, const struct mg_ynode *v, struct mg_header_ops *req,
                         struct mg_header_ops *resp)
{
    const struct mg_ynode *k, *e;

    if (!mg_cfg_map(x, "headers", v))
        return;
    size_t mark = mg_cfg_push(x, ".headers");
    for (size_t i = 0; mg_cfg_next(v, &i, &k, &e);) {
        if (strcmp(k->str, "request") == 0)
            read_header_ops(x, "request", e, req);
        else if (strcmp(k->str, "response") == 0)
            read_header_ops(x, "response", e, resp);
        else
            mg_cfg_unknown(x, k);
    }
    mg_cfg_pop(x, mark);
}

static void read_destination(struct mg_cfg *x, const struct mg_ynode *v, struct mg_destination *d)
{
    const struct mg_ynode *k, *e, *pk, *pv;

    if (!mg_cfg_map(x, "destination", v))
        return;
    d->pos = v->pos;
    size_t mark = mg_cfg_push(x, ".destination");
    for (size_t i = 0; mg_cfg_next(v, &i, &k, &e);) {
        if (strcmp(k->str, "host") == 0)
            mg_cfg_str(x, "host", e, &d->host);
        else if (strcmp(k->str, "subset") == 0)
            mg_cfg_str(x, "subset", e, &d->subset);
        else if (strcmp(k->str, "port") == 0) {
            if (!mg_cfg_map(x, "port", e))
                continue;
            size_t m2 = mg_cfg_push(x, ".port");
            for (size_t j = 0; mg_cfg_next(e, &j, &pk, &pv);) {
                if (strcmp(pk->str, "number") == 0)
                    mg_cfg_port(x, "number", pv, &d->port);
                else
                    mg_cfg_unknown(x, pk);
            }
            mg_cfg_pop(x, m2);
        } else
            mg_cfg_unknown(x, k);
    }
    if (!d->host || !*d->host)
        mg_error(x->d, v->pos, "%s needs a host", mg_cfg_field(x, NULL));
    mg_cfg_pop(x, mark);
}

static void read_routes(struct mg_cfg *x, const char *key, const struct mg_ynode *v,
                        struct mg_route_dest **routes, size_t *n, bool http)
{
    const struct mg_ynode *k, *e;

    if (!mg_cfg_seq(x, key, v))
        return;
    for (size_t i = 0; i < v->n; i++) {
        size_t mark = mg_cfg_push(x, ".%s[%zu]", key, i);
        if (mg_cfg_map(x, "", v->items[i])) {
            struct mg_route_dest *r = MG_CFG_PUSH(*routes, *n);
            r->pos = v->items[i]->pos;
            r->weight = -1;
            for (size_t j = 0; mg_cfg_next(v->items[i], &j, &k, &e);) {
                if (strcmp(k->str, "destination") == 0)
                    read_destination(x, e, &r->destination);
                else if (strcmp(k->str, "weight") == 0)
                    mg_cfg_intv(x, "weight", e, 0, 100, &r->weight);
                else if (http && strcmp(k->str, "headers") == 0)
                    read_headers(x, e, &r->req_headers, &r->resp_headers);
                else
                    mg_cfg_unknown(x, k);
            }
            if (!r->destination.host && !r->destination.pos.line)
                mg_error(x->d, r->pos, "%s needs a destination", mg_cfg_field(x, NULL));
        }
        mg_cfg_pop(x, mark);
    }
}

static void read_header_matches(struct mg_cfg *x, const char *key, const struct mg_ynode *v,
                                struct mg_header_match **out, size_t *n, bool names)
{
    const struct mg_ynode *k, *e;

    if (!mg_cfg_map(x, key, v))
        return;
    size_t mark = mg_cfg_push(x, ".%s", key);
    for (size_t i = 0; mg_cfg_next(v, &i, &k, &e);) {
        if (names && !mg_cfg_header_name_ok(k->str)) {
            mg_error(x->d, k->pos, "invalid header name \"%s\" in %s", k->str,
                     mg_cfg_field(x, NULL));
            continue;
        }
        struct mg_header_match *h = MG_CFG_PUSH(*out, *n);
        h->name = mg_xstrdup(k->str);
        if (names)
            mg_lower(h->name);
        h->match.pos = k->pos;
        if (!mg_ynode_is_null(e))
            mg_cfg_smatch(x, k->str, e, &h->match);
    }
    mg_cfg_pop(x, mark);
}

static void read_http_match(struct mg_cfg *x, const struct mg_ynode *v, struct mg_http_match *m)
{
    const struct mg_ynode *k, *e;

    m->pos = v->pos;
    for (size_t i = 0; mg_cfg_next(v, &i, &k, &e);) {
        const char *key = k->str;
        if (strcmp(key, "name") == 0)
            mg_cfg_str(x, key, e, &m->name);
        else if (strcmp(key, "uri") == 0)
            mg_cfg_smatch(x, key, e, &m->uri);
        else if (strcmp(key, "scheme") == 0)
            mg_cfg_smatch(x, key, e, &m->scheme);
        else if (strcmp(key, "method") == 0)
            mg_cfg_smatch(x, key, e, &m->method);
        else if (strcmp(key, "authority") == 0)
            mg_cfg_smatch(x, key, e, &m->authority);
        else if (strcmp(key, "headers") == 0)
            read_header_matches(x, key, e, &m->headers, &m->n_headers, true);
        else if (strcmp(key, "withoutHeaders") == 0)
            read_header_matches(x, key, e, &m->without_headers, &m->n_without_headers, true);
        else if (strcmp(key, "queryParams") == 0)
            read_header_matches(x, key, e, &m->query_params, &m->n_query_params, false);
        else if (strcmp(key, "port") == 0)
            mg_cfg_port(x, key, e, &m->port);
        else if (strcmp(key, "ignoreUriCase") == 0)
            mg_cfg_bool(x, key, e, &m->ignore_uri_case);
        else if (strcmp(key, "gateways") == 0)
            mg_cfg_slist(x, key, e, &m->gateways);
        else if (strcmp(key, "sourceLabels") == 0)
            mg_cfg_kvlist(x, key, e, &m->source_labels);
        else if (strcmp(key, "sourceNamespace") == 0)
            mg_cfg_str(x, key, e, &m->source_namespace);
        else if (strcmp(key, "statPrefix") == 0)
            mg_cfg_unsupported(x, k);
        else
            mg_cfg_unknown(x, k);
    }
}

static void read_redirect(struct mg_cfg *x, const struct mg_ynode *v, struct mg_http_route *r)
{
    const struct mg_ynode *k, *e;

    if (!mg_cfg_map(x, "redirect", v))
        return;
    r->has_redirect = true;
    r->redirect.redirect_code = 301;
    size_t mark = mg_cfg_push(x, ".redirect");
    for (size_t i = 0; mg_cfg_next(v, &i, &k, &e);) {
        const char *key = k->str;
        if (strcmp(key, "uri") == 0)
            mg_cfg_str(x, key, e, &r->redirect.uri);
        else if (strcmp(key, "authority") == 0)
            mg_cfg_str(x, key, e, &r->redirect.authority);
        else if (strcmp(key, "scheme") == 0)
            mg_cfg_str(x, key, e, &r->redirect.scheme);
        else if (strcmp(key, "port") == 0)
            mg_cfg_port(x, key, e, &r->redirect.port);
        else if (strcmp(key, "redirectCode") == 0)
            mg_cfg_intv(x, key, e, 300, 399, &r->redirect.redirect_code);
        else if (strcmp(key, "derivePort") == 0)
            mg_cfg_unsupported(x, k);
        else
            mg_cfg_unknown(x, k);
    }
    mg_cfg_pop(x, mark);
}

static void read_direct_response(struct mg_cfg *x, const struct mg_ynode *v, struct mg_http_route *r)
{
    const struct mg_ynode *k, *e, *bk, *bv;

    if (!mg_cfg_map(x, "directResponse", v))
        return;
    r->has_direct_response = true;
    size_t mark = mg_cfg_push(x, ".directResponse");
    for (size_t i = 0; mg_cfg_next(v, &i, &k, &e);) {
        if (strcmp(k->str, "status") == 0)
            mg_cfg_intv(x, "status", e, 200, 599, &r->direct_response.status);
        else if (strcmp(k->str, "body") == 0) {
            if (!mg_cfg_map(x, "body", e))
                continue;
            size_t m2 = mg_cfg_push(x, ".body");
            for (size_t j = 0; mg_cfg_next(e, &j, &bk, &bv);) {
                if (strcmp(bk->str, "string") == 0)
                    mg_cfg_str(x, "string", bv, &r->direct_response.body);
                else if (strcmp(bk->str, "bytes") == 0) {
                    uint8_t *out;
                    size_t n;
                    if (!mg_cfg_scalar(x, "bytes", bv))
                        continue;
                    if (mg_base64_decode(bv->str, bv->len, false, &out, &n) < 0) {
                        mg_error(x->d, bv->pos, "directResponse.body.bytes is not valid base64");
                        continue;
                    }
                    free(r->direct_response.body);
                    r->direct_response.body = mg_xstrndup((const char *)out, n);
                    free(out);
                } else
                    mg_cfg_unknown(x, bk);
            }
            mg_cfg_pop(x, m2);
        } else
            mg_cfg_unknown(x, k);
    }
    if (!r->direct_response.status)
        mg_error(x->d, v->pos, "directResponse needs a status");
    mg_cfg_pop(x, mark);
}

static void read_rewrite(struct mg_cfg *x, const struct mg_ynode *v, struct mg_http_route *r)
{
    const struct mg_ynode *k, *e, *rk, *rv;

    if (!mg_cfg_map(x, "rewrite", v))
        return;
    r->has_rewrite = true;
    size_t mark = mg_cfg_push(x, ".rewrite");
    for (size_t i = 0; mg_cfg_next(v, &i, &k, &e);) {
        if (strcmp(k->str, "uri") == 0)
            mg_cfg_str(x, "uri", e, &r->rewrite.uri);
        else if (strcmp(k->str, "authority") == 0)
            mg_cfg_str(x, "authority", e, &r->rewrite.authority);
        else if (strcmp(k->str, "uriRegexRewrite") == 0) {
            if (!mg_cfg_map(x, k->str, e))
                continue;
            size_t m2 = mg_cfg_push(x, ".uriRegexRewrite");
            for (size_t j = 0; mg_cfg_next(e, &j, &rk, &rv);) {
                if (strcmp(rk->str, "match") == 0)
                    mg_cfg_str(x, "match", rv, &r->rewrite.regex_match);
                else if (strcmp(rk->str, "rewrite") == 0)
                    mg_cfg_str(x, "rewrite", rv, &r->rewrite.regex_rewrite);
                else
                    mg_cfg_unknown(x, rk);
            }
            mg_cfg_pop(x, m2);
        } else
            mg_cfg_unknown(x, k);
    }
    mg_cfg_pop(x, mark);
}

static void read_retries(struct mg_cfg *x, const struct mg_ynode *v, struct mg_http_route *r)
{
    const struct mg_ynode *k, *e;

    if (!mg_cfg_map(x, "retries", v))
        return;
    r->has_retries = true;
    r->retries.per_try_timeout_ms = -1;
    size_t mark = mg_cfg_push(x, ".retries");
    for (size_t i = 0; mg_cfg_next(v, &i, &k, &e);) {
        if (strcmp(k->str, "attempts") == 0)
            mg_cfg_intv(x, "attempts", e, 0, 100, &r->retries.attempts);
        else if (strcmp(k->str, "perTryTimeout") == 0)
            mg_cfg_duration(x, "perTryTimeout", e, &r->retries.per_try_timeout_ms);
        else if (strcmp(k->str, "retryOn") == 0)
            mg_cfg_str(x, "retryOn", e, &r->retries.retry_on);
        else if (strcmp(k->str, "retryRemoteLocalities") == 0 ||
                 strcmp(k->str, "retryIgnorePreviousHosts") == 0 || strcmp(k->str, "backoff") == 0)
            mg_cfg_unsupported(x, k);
        else
            mg_cfg_unknown(x, k);
    }
    mg_cfg_pop(x, mark);
}

static void read_http_route(struct mg_cfg *x, const struct mg_ynode *v, struct mg_http_route *r)
{
    static const char *const ignored[] = { "fault", "mirror", "mirrors", "mirrorPercentage",
                                           "mirrorPercent", "mirror_percent", "corsPolicy",
                                           "delegate" };
    const struct mg_ynode *k, *e;

    r->pos = v->pos;
    r->timeout_ms = -1;
    for (size_t i = 0; mg_cfg_next(v, &i, &k, &e);) {
        const char *key = k->str;
        if (strcmp(key, "name") == 0)
            mg_cfg_str(x, key, e, &r->name);
        else if (strcmp(key, "match") == 0) {
            if (!mg_cfg_seq(x, key, e))
                continue;
            for (size_t j = 0; j < e->n; j++) {
                size_t mark = mg_cfg_push(x, ".match[%zu]", j);
                if (mg_cfg_map(x, "", e->items[j]))
                    read_http_match(x, e->items[j], MG_CFG_PUSH(r->match, r->n_match));
                mg_cfg_pop(x, mark);
            }
        } else if (strcmp(key, "route") == 0)
            read_routes(x, key, e, &r->route, &r->n_route, true);
        else if (strcmp(key, "redirect") == 0)
            read_redirect(x, e, r);
        else if (strcmp(key, "directResponse") == 0)
            read_direct_response(x, e, r);
        else if (strcmp(key, "rewrite") == 0)
            read_rewrite(x, e, r);
        else if (strcmp(key, "timeout") == 0)
            mg_cfg_duration(x, key, e, &r->timeout_ms);
        else if (strcmp(key, "retries") == 0)
            read_retries(x, e, r);
        else if (strcmp(key, "headers") == 0)
            read_headers(x, e, &r->req_headers, &r->resp_headers);
        else {
            size_t j;
            for (j = 0; j < MG_ARRAY_LEN(ignored); j++)
                if (strcmp(key, ignored[j]) == 0)
                    break;
            if (j < MG_ARRAY_LEN(ignored))
                mg_cfg_unsupported(x, k);
            else
                mg_cfg_unknown(x, k);
        }
    }
    int actions = (r->n_route > 0) + r->has_redirect + r->has_direct_response;
    if (actions == 0 && mg_ynode_get(v, "delegate"))
        ;   /* delegation is ignored with a warning above */
    else if (actions == 0)
        mg_error(x->d, v->pos, "%s needs a route, redirect or directResponse",
                 mg_cfg_field(x, NULL));
    else if (actions > 1)
        mg_error(x->d, v->pos, "%s: route, redirect and directResponse are mutually exclusive",
                 mg_cfg_field(x, NULL));
}

static void read_l4_common(struct mg_cfg *x, const struct mg_ynode *k, const struct mg_ynode *e,
                           struct mg_slist *subnets, uint16_t *port, struct mg_slist *gateways,
                           bool *handled)
{
    *handled = true;
    if (strcmp(k->str, "destinationSubnets") == 0) {
        mg_cfg_slist(x, k->str, e, subnets);
        for (size_t i = 0; i < subnets->n; i++) {
            struct mg_cidr c;
            if (mg_cidr_parse(subnets->v[i], &c) < 0)
                mg_error(x->d, subnets->pos[i], "invalid CIDR \"%s\" in %s", subnets->v[i],
                         mg_cfg_field(x, k->str));
        }
    } else if (strcmp(k->str, "port") == 0)
        mg_cfg_port(x, k->str, e, port);
    else if (strcmp(k->str, "gateways") == 0)
        mg_cfg_slist(x, k->str, e, gateways);
    else if (strcmp(k->str, "sourceLabels") == 0 || strcmp(k->str, "sourceNamespace") == 0 ||
             strcmp(k->str, "sourceSubnet") == 0)
        mg_cfg_unsupported(x, k);
    else
        *handled = false;
}

static void read_tls_or_tcp(struct mg_cfg *x, const char *key, const struct mg_ynode *v,
                            struct mg_virtual_service *vs, bool tls)
{
    const struct mg_ynode *k, *e, *mk, *mv;
    bool handled;

    if (!mg_cfg_seq(x, key, v))
        return;
    for (size_t i = 0; i < v->n; i++) {
        const struct mg_ynode *it = v->items[i];
        size_t mark = mg_cfg_push(x, ".%s[%zu]", key, i);
        if (!mg_cfg_map(x, "", it)) {
            mg_cfg_pop(x, mark);
            continue;
        }
        struct mg_tls_route *tr = tls ? MG_CFG_PUSH(vs->tls, vs->n_tls) : NULL;
        struct mg_tcp_route *cr = tls ? NULL : MG_CFG_PUSH(vs->tcp, vs->n_tcp);
        if (tr)
            tr->pos = it->pos;
        else
            cr->pos = it->pos;
        for (size_t j = 0; mg_cfg_next(it, &j, &k, &e);) {
            if (strcmp(k->str, "route") == 0) {
                if (tr)
                    read_routes(x, "route", e, &tr->route, &tr->n_route, false);
                else
                    read_routes(x, "route", e, &cr->route, &cr->n_route, false);
            } else if (strcmp(k->str, "match") == 0) {
                if (!mg_cfg_seq(x, "match", e))
                    continue;
                for (size_t q = 0; q < e->n; q++) {
                    size_t m2 = mg_cfg_push(x, ".match[%zu]", q);
                    if (mg_cfg_map(x, "", e->items[q])) {
                        struct mg_tls_match *tm = tr ? MG_CFG_PUSH(tr->match, tr->n_match) : NULL;
                        struct mg_l4_match *lm = tr ? NULL : MG_CFG_PUSH(cr->match, cr->n_match);
                        for (size_t z = 0; mg_cfg_next(e->items[q], &z, &mk, &mv);) {
                            if (tm && strcmp(mk->str, "sniHosts") == 0) {
                                mg_cfg_slist(x, mk->str, mv, &tm->sni_hosts);
                                continue;
                            }
                            if (tm)
                                read_l4_common(x, mk, mv, &tm->destination_subnets, &tm->port,
                                               &tm->gateways, &handled);
                            else
                                read_l4_common(x, mk, mv, &lm->destination_subnets, &lm->port,
                                               &lm->gateways, &handled);
                            if (!handled)
                                mg_cfg_unknown(x, mk);
                        }
                        if (tm) {
                            tm->pos = e->items[q]->pos;
                            if (tm->sni_hosts.n == 0)
                                mg_error(x->d, tm->pos, "%s needs sniHosts",
                                         mg_cfg_field(x, NULL));
                        } else
                            lm->pos = e->items[q]->pos;
                    }
                    mg_cfg_pop(x, m2);
                }
            } else
                mg_cfg_unknown(x, k);
        }
        mg_cfg_pop(x, mark);
    }
}

void mg_cfg_read_virtual_service(struct mg_cfg *x, const struct mg_ynode *spec,
                                 struct mg_virtual_service *vs)
{
    const struct mg_ynode *k, *v;

    if (spec && !mg_ynode_is_null(spec) && !mg_cfg_map(x, "", spec))
        return;
    for (size_t i = 0; mg_cfg_next(spec, &i, &k, &v);) {
        const char *key = k->str;
        if (strcmp(key, "hosts") == 0)
            mg_cfg_slist(x, key, v, &vs->hosts);
        else if (strcmp(key, "gateways") == 0)
            mg_cfg_slist(x, key, v, &vs->gateways);
        else if (strcmp(key, "exportTo") == 0)
            mg_cfg_slist(x, key, v, &vs->export_to);
        else if (strcmp(key, "http") == 0) {
            if (!mg_cfg_seq(x, key, v))
                continue;
            for (size_t j = 0; j < v->n; j++) {
                size_t mark = mg_cfg_push(x, ".http[%zu]", j);
                if (mg_cfg_map(x, "", v->items[j]))
                    read_http_route(x, v->items[j], MG_CFG_PUSH(vs->http, vs->n_http));
                mg_cfg_pop(x, mark);
            }
        } else if (strcmp(key, "tls") == 0)
            read_tls_or_tcp(x, key, v, vs, true);
        else if (strcmp(key, "tcp") == 0)
            read_tls_or_tcp(x, key, v, vs, false);
        else
            mg_cfg_unknown(x, k);
    }
    for (size_t i = 0; i < vs->hosts.n; i++)
        if (!mg_cfg_host_ok(vs->hosts.v[i]))
            mg_error(x->d, vs->hosts.pos[i], "invalid host \"%s\" in hosts (want a DNS name, "
                     "a wildcard only as the leftmost label)", vs->hosts.v[i]);
    if (vs->hosts.n == 0)
        mg_error(x->d, spec ? spec->pos : vs->meta.pos, "VirtualService needs hosts");
}
