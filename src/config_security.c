/* config_security.c - AuthorizationPolicy, PeerAuthentication and
 * RequestAuthentication (security.istio.io), with Istio's validation rules
 * (istio-semantics.md sections 1-4). */
#include <ctype.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include "config_int.h"

/* ---- AuthorizationPolicy ---- */

enum vkind { V_STR, V_IP, V_PORT, V_PATH, V_SA };

struct lfield {
    const char *name;
    size_t off;
    enum vkind vk;
    bool identity;                      /* forbidden with CUSTOM */
};

#define SRC(n, f, vk, id) { n, offsetof(struct mg_authz_source, f), vk, id }
static const struct lfield source_fields[] = {
    SRC("principals", principals, V_STR, true),
    SRC("notPrincipals", not_principals, V_STR, true),
    SRC("requestPrincipals", request_principals, V_STR, true),
    SRC("notRequestPrincipals", not_request_principals, V_STR, true),
    SRC("namespaces", namespaces, V_STR, true),
    SRC("notNamespaces", not_namespaces, V_STR, true),
    SRC("serviceAccounts", service_accounts, V_SA, true),
    SRC("notServiceAccounts", not_service_accounts, V_SA, true),
    SRC("trustDomains", trust_domains, V_STR, true),
    SRC("notTrustDomains", not_trust_domains, V_STR, true),
    SRC("ipBlocks", ip_blocks, V_IP, false),
    SRC("notIpBlocks", not_ip_blocks, V_IP, false),
    SRC("remoteIpBlocks", remote_ip_blocks, V_IP, false),
    SRC("notRemoteIpBlocks", not_remote_ip_blocks, V_IP, false),
};
#define OP(n, f, vk) { n, offsetof(struct mg_authz_operation, f), vk, false }
static const struct lfield operation_fields[] = {
    OP("hosts", hosts, V_STR), OP("notHosts", not_hosts, V_STR),
    OP("ports", ports, V_PORT), OP("notPorts", not_ports, V_PORT),
    OP("methods", methods, V_STR), OP("notMethods", not_methods, V_STR),
    OP("paths", paths, V_PATH), OP("notPaths", not_paths, V_PATH),
};

static bool pchar(const char *s, size_t i, size_t len)
{
    unsigned char c = (unsigned char)s[i];
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    if (c == '%')
        return i + 2 < len && isxdigit((unsigned char)s[i + 1]) &&
               isxdigit((unsigned char)s[i + 2]);
    return c && strchr("-._~!$&'()+,;=:@", c) != NULL;
}

/* Istio >= 1.22 URI templates (section 1.7); NULL when valid or not one. */
static const char *path_template_error(const char *p)
{
    const char *s = p;
    size_t len = strlen(p);
    bool globstar = false;

    if (!strstr(p, "{*}") && !strstr(p, "{**}"))
        return NULL;
    while (len && *s == '/') {
        s++;
        len--;
    }
    while (len && s[len - 1] == '/')
        len--;
    for (size_t i = 0; i <= len;) {
        size_t j = i;
        while (j < len && s[j] != '/')
            j++;
        size_t sl = j - i;
        const char *seg = s + i;
        if ((sl == 3 && memcmp(seg, "{*}", 3) == 0) || (sl == 4 && memcmp(seg, "{**}", 4) == 0)) {
            if (globstar)
                return "no operator may follow {**}";
            if (sl == 4)
                globstar = true;
        } else {
            for (size_t k = 0; k < sl; k++) {
                if (seg[k] == '*' || seg[k] == '{' || seg[k] == '}')
                    return "a segment with an operator must be exactly {*} or {**}";
                if (!pchar(seg, k, sl))
                    return "literal segments may contain only RFC 3986 path characters";
            }
        }
        i = j + 1;
    }
    return NULL;
}

static void check_value(struct mg_cfg *x, const char *field, const char *v, struct mg_pos pos,
                        enum vkind vk)
{
    struct mg_cidr c;
    uint16_t port;
    const char *err;

    if (!*v) {
        mg_error(x->d, pos, "empty value in %s", field);
        return;
    }
    switch (vk) {
    case V_STR:
        break;
    case V_IP:
        if (mg_cidr_parse(v, &c) < 0)
            mg_error(x->d, pos, "invalid IP address or CIDR \"%s\" in %s", v, field);
        break;
    case V_PORT:
        if (mg_parse_port(v, false, &port) < 0)
            mg_error(x->d, pos, "invalid port \"%s\" in %s (want 1..65535)", v, field);
        break;
    case V_PATH:
        if ((err = path_template_error(v)))
            mg_error(x->d, pos, "invalid path template \"%s\" in %s: %s", v, field, err);
        break;
    case V_SA:
        if (strchr(v, '*'))
            mg_error(x->d, pos, "service account \"%s\" in %s may not contain wildcards", v,
                     field);
        else if (strlen(v) > 320)
            mg_error(x->d, pos, "service account in %s is longer than 320 characters", field);
        else if (strchr(v, '/') && strchr(v, '/') != strrchr(v, '/'))
            mg_error(x->d, pos, "service account \"%s\" in %s must be \"ns/sa\" or \"sa\"", v,
                     field);
        break;
    }
}

static bool read_lfields(struct mg_cfg *x, const struct mg_ynode *m, void *obj,
                         const struct lfield *f, size_t nf)
{
    const struct mg_ynode *k, *v;
    bool any = false;

    for (size_t i = 0; mg_cfg_next(m, &i, &k, &v);) {
        size_t j;
        for (j = 0; j < nf; j++)
            if (strcmp(k->str, f[j].name) == 0)
                break;
        if (j == nf) {
            mg_cfg_unknown(x, k);
            continue;
        }
        struct mg_slist *l = (struct mg_slist *)((char *)obj + f[j].off);
        mg_cfg_slist(x, k->str, v, l);
        for (size_t e = 0; e < l->n; e++) {
            char sub[32];
            snprintf(sub, sizeof(sub), "[%zu]", e);
            char *field = mg_xasprintf("%s%s", mg_cfg_field(x, k->str), sub);
            check_value(x, field, l->v[e], l->pos[e], f[j].vk);
            free(field);
        }
        if (l->n || (!mg_ynode_is_null(v) && (v->type != MG_YSEQ || v->n > 0)))
            any = true;   /* a mistyped field is reported as such, not as "empty" */
    }
    return any;
}

static void read_source(struct mg_cfg *x, const struct mg_ynode *v, struct mg_authz_source *s)
{
    s->pos = v->pos;
    if (!read_lfields(x, v, s, source_fields, MG_ARRAY_LEN(source_fields)))
        mg_error(x->d, v->pos, "%s must not be empty", mg_cfg_field(x, NULL));
    if ((s->service_accounts.n || s->not_service_accounts.n) &&
        (s->principals.n || s->not_principals.n || s->namespaces.n || s->not_namespaces.n))
        mg_error(x->d, v->pos,
                 "%s: serviceAccounts cannot be combined with principals or namespaces",
                 mg_cfg_field(x, NULL));
}

static void read_operation(struct mg_cfg *x, const struct mg_ynode *v,
                           struct mg_authz_operation *o)
{
    o->pos = v->pos;
    if (!read_lfields(x, v, o, operation_fields, MG_ARRAY_LEN(operation_fields)))
        mg_error(x->d, v->pos, "%s must not be empty", mg_cfg_field(x, NULL));
}

/* `from:` / `to:` lists: each entry is a map with exactly the one key. */
static void read_peers(struct mg_cfg *x, const struct mg_ynode *k, const struct mg_ynode *v,
                       struct mg_authz_rule *r, bool from)
{
    const char *inner = from ? "source" : "operation";

    if (!mg_cfg_seq(x, k->str, v))
        return;
    if (from)
        r->has_from = true;
    else
        r->has_to = true;
    if (v->n == 0)
        mg_error(x->d, v->pos, "%s must not be an empty list", mg_cfg_field(x, k->str));
    for (size_t i = 0; i < v->n; i++) {
        const struct mg_ynode *e = v->items[i], *ik, *iv, *body = NULL;
        size_t mark = mg_cfg_push(x, ".%s[%zu]", k->str, i);
        if (mg_ynode_is_null(e) || mg_cfg_map(x, "", e)) {
            for (size_t j = 0; mg_cfg_next(e, &j, &ik, &iv);) {
                if (strcmp(ik->str, inner) == 0)
                    body = iv;
                else
                    mg_cfg_unknown(x, ik);
            }
            if (body && !mg_ynode_is_null(body) && !mg_cfg_map(x, inner, body))
                body = NULL;
            else if (!body || mg_ynode_is_null(body))
                mg_error(x->d, e ? e->pos : v->pos, "%s needs a non-empty %s",
                         mg_cfg_field(x, NULL), inner);
            else {
                size_t m2 = mg_cfg_push(x, ".%s", inner);
                if (from)
                    read_source(x, body, MG_CFG_PUSH(r->from, r->n_from));
                else
                    read_operation(x, body, MG_CFG_PUSH(r->to, r->n_to));
                mg_cfg_pop(x, m2);
            }
        }
        mg_cfg_pop(x, mark);
    }
}

static const char *const plain_when_keys[] = {
    "source.ip", "remote.ip", "source.namespace", "source.principal", "source.serviceAccount",
    "source.trustDomain", "request.auth.principal", "request.auth.audiences",
    "request.auth.presenter", "destination.ip", "destination.port", "connection.sni",
};

/* Parse the bracket segments after `prefix` ("[a]" or "[a][b]..."), strip
 * quotes users copy from blogs (with a warning), and rebuild the key. */
static char *bracket_key(struct mg_cfg *x, const char *key, size_t plen, bool multi,
                         bool header, struct mg_pos pos)
{
    struct mg_buf b = { 0 };
    const char *s = key + plen;
    bool quoted = false;
    int segs = 0;

    mg_buf_add(&b, key, plen);
    while (*s == '[') {
        const char *end = strchr(s + 1, ']');
        if (!end)
            goto bad;
        const char *in = s + 1;
        size_t n = (size_t)(end - in);
        if (n >= 2 && (in[0] == '"' || in[0] == '\'') && in[n - 1] == in[0]) {
            in++;
            n -= 2;
            quoted = true;
        }
        if (n == 0)
            goto bad;
        char *seg = mg_xstrndup(in, n);
        bool okname = !header || mg_cfg_header_name_ok(seg);
        if (!okname) {
            mg_error(x->d, pos, "invalid header name \"%s\" in when key \"%s\"", seg, key);
            free(seg);
            mg_buf_free(&b);
            return NULL;
        }
        mg_buf_printf(&b, "[%s]", seg);
        free(seg);
        segs++;
        s = end + 1;
        if (!multi)
            break;
    }
    if (*s || segs == 0)
        goto bad;
    if (quoted)
        mg_warning(x->d, pos, "quotes inside the brackets of when key \"%s\" are not part of "
                   "the name; read as \"%s\"", key, b.p);
    return b.p;
bad:
    mg_error(x->d, pos, "malformed when key \"%s\"", key);
    mg_buf_free(&b);
    return NULL;
}

static void read_when(struct mg_cfg *x, const struct mg_ynode *e, struct mg_authz_condition *c)
{
    const struct mg_ynode *k, *v, *keyn = NULL;
    enum vkind vk = V_STR;

    c->pos = e->pos;
    for (size_t i = 0; mg_cfg_next(e, &i, &k, &v);) {
        if (strcmp(k->str, "key") == 0) {
            mg_cfg_str(x, "key", v, &c->key);
            keyn = v;
        } else if (strcmp(k->str, "values") == 0)
            mg_cfg_slist(x, "values", v, &c->values);
        else if (strcmp(k->str, "notValues") == 0)
            mg_cfg_slist(x, "notValues", v, &c->not_values);
        else
            mg_cfg_unknown(x, k);
    }
    if (!c->key) {
        mg_error(x->d, e->pos, "%s needs a key", mg_cfg_field(x, NULL));
        return;
    }
    const char *key = c->key;
    bool known = false;
    for (size_t i = 0; i < MG_ARRAY_LEN(plain_when_keys); i++)
        if (strcmp(key, plain_when_keys[i]) == 0)
            known = true;
    if (known) {
        if (strcmp(key, "source.ip") == 0 || strcmp(key, "remote.ip") == 0 ||
            strcmp(key, "destination.ip") == 0)
            vk = V_IP;
        else if (strcmp(key, "destination.port") == 0)
            vk = V_PORT;
        else if (strcmp(key, "source.serviceAccount") == 0)
            vk = V_SA;
    } else if (mg_has_prefix(key, "request.headers[") ||
               mg_has_prefix(key, "request.auth.claims[")) {
        bool hdr = mg_has_prefix(key, "request.headers[");
        size_t plen = strlen(hdr ? "request.headers" : "request.auth.claims");
        char *nk = bracket_key(x, key, plen, !hdr, hdr, keyn->pos);
        if (!nk)
            return;
        free(c->key);
        c->key = nk;
    } else if (mg_has_prefix(key, "experimental.envoy.filters.")) {
        /* raw filter metadata: no compatibility guarantee, passed through */
    } else if (strcmp(key, "destination.namespace") == 0 ||
               mg_has_prefix(key, "destination.labels[") ||
               strcmp(key, "destination.name") == 0 || strcmp(key, "destination.user") == 0) {
        mg_error(x->d, keyn->pos, "when key \"%s\" is not supported (use the policy's namespace "
                 "and selector instead)", key);
        return;
    } else {
        mg_error(x->d, keyn->pos, "unknown when key \"%s\"", key);
        return;
    }
    if (c->values.n == 0 && c->not_values.n == 0) {
        mg_error(x->d, e->pos, "%s (key \"%s\") needs values or notValues",
                 mg_cfg_field(x, NULL), c->key);
        return;
    }
    for (int neg = 0; neg < 2; neg++) {
        const struct mg_slist *l = neg ? &c->not_values : &c->values;
        for (size_t i = 0; i < l->n; i++) {
            char *field = mg_xasprintf("%s[%zu] of when key %s",
                                       neg ? "notValues" : "values", i, c->key);
            check_value(x, field, l->v[i], l->pos[i], vk);
            free(field);
        }
    }
}

static void read_rule(struct mg_cfg *x, const struct mg_ynode *v, struct mg_authz_rule *r)
{
    const struct mg_ynode *k, *e;

    r->pos = v->pos;
    if (!mg_ynode_is_null(v) && !mg_cfg_map(x, "", v))
        return;
    for (size_t i = 0; mg_cfg_next(v, &i, &k, &e);) {
        if (strcmp(k->str, "from") == 0)
            read_peers(x, k, e, r, true);
        else if (strcmp(k->str, "to") == 0)
            read_peers(x, k, e, r, false);
        else if (strcmp(k->str, "when") == 0) {
            if (!mg_cfg_seq(x, "when", e))
                continue;
            for (size_t j = 0; j < e->n; j++) {
                size_t mark = mg_cfg_push(x, ".when[%zu]", j);
                if (mg_cfg_map(x, "", e->items[j]))
                    read_when(x, e->items[j], MG_CFG_PUSH(r->when, r->n_when));
                else if (mg_ynode_is_null(e->items[j]))
                    mg_error(x->d, e->items[j]->pos, "%s must not be empty", mg_cfg_field(x, NULL));
                mg_cfg_pop(x, mark);
            }
        } else
            mg_cfg_unknown(x, k);
    }
}

static bool is_identity_key(const char *key)
{
    return strcmp(key, "source.namespace") == 0 || strcmp(key, "source.principal") == 0 ||
           strcmp(key, "source.serviceAccount") == 0 || strcmp(key, "source.trustDomain") == 0 ||
           mg_has_prefix(key, "request.auth.");
}

/* CUSTOM chooses *when* to call the provider; identity fields would need
 * the provider's verdict to be combined with mesh identity (section 1.3). */
static void check_custom_identity(struct mg_cfg *x, const struct mg_authz_policy *p)
{
    for (size_t i = 0; i < p->n_rules; i++) {
        const struct mg_authz_rule *r = &p->rules[i];
        for (size_t j = 0; j < r->n_from; j++)
            for (size_t f = 0; f < MG_ARRAY_LEN(source_fields); f++) {
                const struct mg_slist *l =
                    (const struct mg_slist *)((const char *)&r->from[j] + source_fields[f].off);
                if (source_fields[f].identity && l->n)
                    mg_error(x->d, l->pos[0], "CUSTOM policy may not use %s (rules[%zu].from[%zu])",
                             source_fields[f].name, i, j);
            }
        for (size_t j = 0; j < r->n_when; j++)
            if (r->when[j].key && is_identity_key(r->when[j].key))
                mg_error(x->d, r->when[j].pos, "CUSTOM policy may not use when key \"%s\"",
                         r->when[j].key);
    }
}

void mg_cfg_read_authz(struct mg_cfg *x, const struct mg_ynode *spec, struct mg_authz_policy *p)
{
    static const char *const actions[] = { "ALLOW", "DENY", "AUDIT", "CUSTOM" };
    const struct mg_ynode *k, *v, *action_n = NULL, *provider_n = NULL;
    struct mg_pos at = spec ? spec->pos : p->meta.pos;
    int a;

    p->action = MG_ACTION_ALLOW;
    if (spec && !mg_ynode_is_null(spec) && !mg_cfg_map(x, "", spec))
        return;
    for (size_t i = 0; mg_cfg_next(spec, &i, &k, &v);) {
        if (strcmp(k->str, "selector") == 0)
            mg_cfg_read_map(x, k->str, v, &mg_cfg_match_labels, &p->selector);
        else if (strcmp(k->str, "targetRef") == 0 || strcmp(k->str, "targetRefs") == 0)
            mg_cfg_target_refs(x, k->str, v, &p->target_refs, &p->n_target_refs);
        else if (strcmp(k->str, "action") == 0) {
            if (mg_cfg_enum(x, k->str, v, actions, NULL, 4, &a)) {
                p->action = (enum mg_authz_action)a;
                action_n = v;
            }
        } else if (strcmp(k->str, "provider") == 0) {
            const struct mg_ynode *pk, *pv;
            if (!mg_cfg_map(x, k->str, v))
                continue;
            provider_n = v;
            size_t mark = mg_cfg_push(x, ".provider");
            for (size_t j = 0; mg_cfg_next(v, &j, &pk, &pv);) {
                if (strcmp(pk->str, "name") == 0)
                    mg_cfg_str(x, "name", pv, &p->provider);
                else
                    mg_cfg_unknown(x, pk);
            }
            mg_cfg_pop(x, mark);
        } else if (strcmp(k->str, "rules") == 0) {
            if (!mg_cfg_seq(x, k->str, v))
                continue;
            p->has_rules = true;
            for (size_t j = 0; j < v->n; j++) {
                size_t mark = mg_cfg_push(x, ".rules[%zu]", j);
                read_rule(x, v->items[j], MG_CFG_PUSH(p->rules, p->n_rules));
                mg_cfg_pop(x, mark);
            }
        } else
            mg_cfg_unknown(x, k);
    }
    if (action_n)
        at = action_n->pos;
    if (p->selector.present && p->n_target_refs)
        mg_error(x->d, p->selector.pos, "selector and targetRefs cannot be used together");
    if ((p->action == MG_ACTION_DENY || p->action == MG_ACTION_CUSTOM) && p->n_rules == 0)
        mg_error(x->d, at, "%s policy without rules would never trigger (use rules: [{}] to "
                 "match every request)", actions[p->action]);
    if (p->action == MG_ACTION_CUSTOM && !p->provider)
        mg_error(x->d, at, "CUSTOM policy needs provider.name");
    if (p->action != MG_ACTION_CUSTOM && provider_n)
        mg_error(x->d, provider_n->pos, "provider is only allowed with action CUSTOM");
    if (p->action == MG_ACTION_CUSTOM)
        check_custom_identity(x, p);
    const char *dry = mg_kvlist_get(&p->meta.annotations, "istio.io/dry-run");
    p->dry_run = dry && mg_strcasecmp(dry, "true") == 0;
}

/* ---- PeerAuthentication ---- */

static const char *const mtls_modes[] = { "UNSET", "DISABLE", "PERMISSIVE", "STRICT" };

static void read_mtls(struct mg_cfg *x, const char *key, const struct mg_ynode *v,
                      enum mg_mtls_mode *mode)
{
    const struct mg_ynode *k, *e;
    int m;

    if (!mg_cfg_map(x, key, v))
        return;
    size_t mark = mg_cfg_push(x, key[0] == '[' ? "%s" : ".%s", key);
    for (size_t i = 0; mg_cfg_next(v, &i, &k, &e);) {
        if (strcmp(k->str, "mode") == 0) {
            if (mg_cfg_enum(x, "mode", e, mtls_modes, NULL, 4, &m))
                *mode = (enum mg_mtls_mode)m;
        } else
            mg_cfg_unknown(x, k);
    }
    mg_cfg_pop(x, mark);
}

void mg_cfg_read_peer_authn(struct mg_cfg *x, const struct mg_ynode *spec, struct mg_peer_authn *p)
{
    const struct mg_ynode *k, *v, *pk, *pv;

    if (spec && !mg_ynode_is_null(spec) && !mg_cfg_map(x, "", spec))
        return;
    for (size_t i = 0; mg_cfg_next(spec, &i, &k, &v);) {
        if (strcmp(k->str, "selector") == 0)
            mg_cfg_read_map(x, k->str, v, &mg_cfg_match_labels, &p->selector);
        else if (strcmp(k->str, "mtls") == 0)
            read_mtls(x, "mtls", v, &p->mode);
        else if (strcmp(k->str, "portLevelMtls") == 0) {
            if (!mg_cfg_map(x, k->str, v))
                continue;
            size_t mark = mg_cfg_push(x, ".portLevelMtls");
            for (size_t j = 0; mg_cfg_next(v, &j, &pk, &pv);) {
                struct mg_port_mtls pm = { 0, MG_MTLS_UNSET, pk->pos };
                if (mg_parse_port(pk->str, false, &pm.port) < 0) {
                    mg_error(x->d, pk->pos, "invalid port \"%s\" in portLevelMtls (want "
                             "1..65535)", pk->str);
                    continue;
                }
                char *sub = mg_xasprintf("[%s]", pk->str);
                read_mtls(x, sub, pv, &pm.mode);
                free(sub);
                *MG_CFG_PUSH(p->port_level, p->n_port_level) = pm;
            }
            mg_cfg_pop(x, mark);
        } else
            mg_cfg_unknown(x, k);
    }
}

/* ---- RequestAuthentication ---- */

static void check_jwks_uri(struct mg_cfg *x, const char *u, struct mg_pos pos)
{
    char host[256];
    const char *h, *end;
    size_t n;

    if (mg_has_prefix(u, "https://"))
        return;
    if (!mg_has_prefix(u, "http://")) {
        mg_error(x->d, pos, "jwksUri \"%s\" must be an https:// URL", u);
        return;
    }
    h = u + 7;
    if (*h == '[') {
        end = strchr(h, ']');
        end = end ? end + 1 : h + strlen(h);
    } else {
        end = h + strcspn(h, ":/?#");
    }
    n = (size_t)(end - h);
    if (n >= sizeof(host))
        n = sizeof(host) - 1;
    memcpy(host, h, n);
    host[n] = '\0';
    if (strcmp(host, "127.0.0.1") == 0 || mg_strcasecmp(host, "localhost") == 0 ||
        strcmp(host, "[::1]") == 0)
        mg_warning(x->d, pos, "jwksUri \"%s\" uses plain http (allowed only for a local "
                   "JWKS server)", u);
    else
        mg_error(x->d, pos, "jwksUri \"%s\" must be https:// (http:// only for 127.0.0.1 or "
                 "localhost)", u);
}

static void header_field(struct mg_cfg *x, const char *key, const struct mg_ynode *v, char **out)
{
    mg_cfg_str(x, key, v, out);
    if (*out && !mg_cfg_header_name_ok(*out)) {
        mg_error(x->d, v->pos, "invalid header name \"%s\" for %s", *out, mg_cfg_field(x, key));
        free(*out);
        *out = NULL;
    }
    if (*out)
        mg_lower(*out);
}

static void read_jwt_rule(struct mg_cfg *x, const struct mg_ynode *m, struct mg_jwt_rule *r)
{
    const struct mg_ynode *k, *v, *uri_n = NULL, *jwks_n = NULL, *hk, *hv;

    r->pos = m->pos;
    r->timeout_ms = 5000;
    for (size_t i = 0; mg_cfg_next(m, &i, &k, &v);) {
        const char *key = k->str;
        if (strcmp(key, "issuer") == 0)
            mg_cfg_str(x, key, v, &r->issuer);
        else if (strcmp(key, "audiences") == 0)
            mg_cfg_slist(x, key, v, &r->audiences);
        else if (strcmp(key, "jwksUri") == 0) {
            mg_cfg_str(x, key, v, &r->jwks_uri);
            uri_n = v;
        } else if (strcmp(key, "jwks") == 0) {
            mg_cfg_str(x, key, v, &r->jwks);
            jwks_n = v;
        } else if (strcmp(key, "fromHeaders") == 0) {
            if (!mg_cfg_seq(x, key, v))
                continue;
            for (size_t j = 0; j < v->n; j++) {
                size_t mark = mg_cfg_push(x, ".fromHeaders[%zu]", j);
                if (mg_cfg_map(x, "", v->items[j])) {
                    struct mg_jwt_header *h = MG_CFG_PUSH(r->from_headers, r->n_from_headers);
                    h->pos = v->items[j]->pos;
                    for (size_t q = 0; mg_cfg_next(v->items[j], &q, &hk, &hv);) {
                        if (strcmp(hk->str, "name") == 0)
                            header_field(x, "name", hv, &h->name);
                        else if (strcmp(hk->str, "prefix") == 0)
                            mg_cfg_str(x, "prefix", hv, &h->prefix);
                        else
                            mg_cfg_unknown(x, hk);
                    }
                    if (!mg_ynode_get(v->items[j], "name"))
                        mg_error(x->d, h->pos, "%s needs a name", mg_cfg_field(x, NULL));
                }
                mg_cfg_pop(x, mark);
            }
        } else if (strcmp(key, "fromParams") == 0)
            mg_cfg_slist(x, key, v, &r->from_params);
        else if (strcmp(key, "fromCookies") == 0)
            mg_cfg_slist(x, key, v, &r->from_cookies);
        else if (strcmp(key, "outputPayloadToHeader") == 0)
            header_field(x, key, v, &r->output_payload_to_header);
        else if (strcmp(key, "outputClaimToHeaders") == 0) {
            if (!mg_cfg_seq(x, key, v))
                continue;
            for (size_t j = 0; j < v->n; j++) {
                size_t mark = mg_cfg_push(x, ".outputClaimToHeaders[%zu]", j);
                if (mg_cfg_map(x, "", v->items[j])) {
                    struct mg_claim_to_header *h =
                        MG_CFG_PUSH(r->output_claim_to_headers, r->n_output_claim_to_headers);
                    h->pos = v->items[j]->pos;
                    for (size_t q = 0; mg_cfg_next(v->items[j], &q, &hk, &hv);) {
                        if (strcmp(hk->str, "header") == 0)
                            header_field(x, "header", hv, &h->header);
                        else if (strcmp(hk->str, "claim") == 0)
                            mg_cfg_str(x, "claim", hv, &h->claim);
                        else
                            mg_cfg_unknown(x, hk);
                    }
                    if (!mg_ynode_get(v->items[j], "header") || !mg_ynode_get(v->items[j], "claim"))
                        mg_error(x->d, h->pos, "%s needs a header and a claim",
                                 mg_cfg_field(x, NULL));
                    for (size_t q = 0; h->header && q + 1 < r->n_output_claim_to_headers; q++)
                        if (r->output_claim_to_headers[q].header &&
                            strcmp(r->output_claim_to_headers[q].header, h->header) == 0)
                            mg_error(x->d, h->pos, "duplicate header \"%s\" in "
                                     "outputClaimToHeaders", h->header);
                }
                mg_cfg_pop(x, mark);
            }
        } else if (strcmp(key, "forwardOriginalToken") == 0)
            mg_cfg_bool(x, key, v, &r->forward_original_token);
        else if (strcmp(key, "timeout") == 0)
            mg_cfg_duration(x, key, v, &r->timeout_ms);
        else if (strcmp(key, "spaceDelimitedClaims") == 0)
            mg_cfg_slist(x, key, v, &r->space_delimited_claims);
        else
            mg_cfg_unknown(x, k);
    }
    if (!r->issuer || !*r->issuer)
        mg_error(x->d, m->pos, "%s needs an issuer", mg_cfg_field(x, NULL));
    if (r->jwks && r->jwks_uri)
        mg_error(x->d, jwks_n->pos, "%s: set either jwks or jwksUri, not both",
                 mg_cfg_field(x, NULL));
    else if (r->jwks_uri)
        check_jwks_uri(x, r->jwks_uri, uri_n->pos);
}

void mg_cfg_read_request_authn(struct mg_cfg *x, const struct mg_ynode *spec,
                               struct mg_request_authn *p)
{
    const struct mg_ynode *k, *v;

    if (spec && !mg_ynode_is_null(spec) && !mg_cfg_map(x, "", spec))
        return;
    for (size_t i = 0; mg_cfg_next(spec, &i, &k, &v);) {
        if (strcmp(k->str, "selector") == 0)
            mg_cfg_read_map(x, k->str, v, &mg_cfg_match_labels, &p->selector);
        else if (strcmp(k->str, "targetRef") == 0 || strcmp(k->str, "targetRefs") == 0)
            mg_cfg_target_refs(x, k->str, v, &p->target_refs, &p->n_target_refs);
        else if (strcmp(k->str, "jwtRules") == 0) {
            if (!mg_cfg_seq(x, k->str, v))
                continue;
            for (size_t j = 0; j < v->n; j++) {
                size_t mark = mg_cfg_push(x, ".jwtRules[%zu]", j);
                if (mg_cfg_map(x, "", v->items[j]))
                    read_jwt_rule(x, v->items[j], MG_CFG_PUSH(p->rules, p->n_rules));
                mg_cfg_pop(x, mark);
            }
        } else
            mg_cfg_unknown(x, k);
    }
    if (p->selector.present && p->n_target_refs)
        mg_error(x->d, p->selector.pos, "selector and targetRefs cannot be used together");
}
