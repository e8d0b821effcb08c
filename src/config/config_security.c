/* config_security.c - AuthorizationPolicy, PeerAuthentication and
 * RequestAuthentication (security.istio.io), with Istio's validation rules
 * (Istio's security API: field names, defaults and validation). */
#include <ctype.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include "config/internal.h"

/* ---- AuthorizationPolicy ---- */

enum vkind { V_STR, V_IP, V_PORT, V_PATH, V_SA, V_ASN };

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
    case V_ASN: {
        /* an AS number (optionally "AS64500") or "*" for any known one */
        const char *d = (v[0] == 'A' || v[0] == 'a') && (v[1] == 'S' || v[1] == 's') ? v + 2 : v;
        uint64_t n = 0;
        bool ok = strcmp(v, "*") == 0 || (*d && strlen(d) <= 10);
        for (const char *q = d; ok && *q && strcmp(v, "*") != 0; q++) {
            ok = *q >= '0' && *q <= '9';
            n = n * 10 + (uint64_t)(*q - '0');
        }
        if (!ok || (strcmp(v, "*") != 0 && (n == 0 || n > UINT32_MAX)))
            mg_error(x->d, pos, "invalid AS number \"%s\" in %s (want 1..4294967295, "
                     "optionally after \"AS\", or \"*\")", v, field);
        break;
    }
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
    /* meshgate's GeoIP keys (MeshConfig geoipDatabase) */
    "source.geo.country", "source.geo.asn", "remote.geo.country", "remote.geo.asn",
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
        if (header && !mg_pseudo_header_possible(seg, n))
            mg_warning(x->d, pos, "when key \"%s\": no request has the pseudo-header \"%s\" "
                       "(only :authority, :path, :method and :scheme): the condition never "
                       "matches", key, seg);
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

static void check_when(struct mg_cfg *x, const struct mg_cfg_read *r, void *obj)
{
    struct mg_authz_condition *c = obj;
    const struct mg_ynode *keyn = mg_cfg_last(r->m, "key");
    enum vkind vk = V_STR;

    if (!c->key) {
        mg_error(x->d, r->m->pos, "%s needs a key", mg_cfg_field(x, NULL));
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
        else if (strcmp(key, "source.geo.asn") == 0 || strcmp(key, "remote.geo.asn") == 0)
            vk = V_ASN;
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
        mg_error(x->d, r->m->pos, "%s (key \"%s\") needs values or notValues",
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

static const struct mg_cfg_field when_rows[] = {
    MG_CFG_STR("key", struct mg_authz_condition, key),
    MG_CFG_SLIST("values", struct mg_authz_condition, values),
    MG_CFG_SLIST("notValues", struct mg_authz_condition, not_values),
};
static const struct mg_cfg_table when = {
    MG_CFG_ROWS(when_rows), .pos_at = MG_CFG_POS_AT(struct mg_authz_condition, pos),
    .check = check_when,
};

static bool read_from(struct mg_cfg *x, const struct mg_ynode *k, const struct mg_ynode *v,
                      void *obj)
{
    read_peers(x, k, v, obj, true);
    return true;
}

static bool read_to(struct mg_cfg *x, const struct mg_ynode *k, const struct mg_ynode *v,
                    void *obj)
{
    read_peers(x, k, v, obj, false);
    return true;
}

/* Unlike other lists, a null condition is an error, not absent. */
static bool read_when_list(struct mg_cfg *x, const struct mg_ynode *k, const struct mg_ynode *v,
                           void *obj)
{
    struct mg_authz_rule *r = obj;

    if (!mg_cfg_seq(x, k->str, v))
        return false;
    for (size_t j = 0; j < v->n; j++) {
        size_t mark = mg_cfg_push(x, ".when[%zu]", j);
        if (mg_cfg_map(x, "", v->items[j]))
            mg_cfg_read_fields(x, v->items[j], &when, MG_CFG_PUSH(r->when, r->n_when));
        else if (mg_ynode_is_null(v->items[j]))
            mg_error(x->d, v->items[j]->pos, "%s must not be empty", mg_cfg_field(x, NULL));
        mg_cfg_pop(x, mark);
    }
    return true;
}

static const struct mg_cfg_field rule_rows[] = {
    MG_CFG_FN("from", read_from),
    MG_CFG_FN("to", read_to),
    MG_CFG_FN("when", read_when_list),
};
static const struct mg_cfg_table rule = { MG_CFG_ROWS(rule_rows) };

/* A null rule is kept as an empty one; any other non-map is reported and kept. */
static bool read_rules(struct mg_cfg *x, const struct mg_ynode *k, const struct mg_ynode *v,
                       void *obj)
{
    struct mg_authz_policy *p = obj;

    if (!mg_cfg_seq(x, k->str, v))
        return false;
    p->has_rules = true;
    for (size_t j = 0; j < v->n; j++) {
        const struct mg_ynode *e = v->items[j];
        size_t mark = mg_cfg_push(x, ".rules[%zu]", j);
        struct mg_authz_rule *r = MG_CFG_PUSH(p->rules, p->n_rules);
        r->pos = e->pos;
        if (mg_ynode_is_null(e) || mg_cfg_map(x, "", e))
            mg_cfg_read_fields(x, e, &rule, r);
        mg_cfg_pop(x, mark);
    }
    return true;
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

static const char *const authz_actions[] = { "ALLOW", "DENY", "AUDIT", "CUSTOM" };

static void check_authz(struct mg_cfg *x, const struct mg_cfg_read *r, void *obj)
{
    struct mg_authz_policy *p = obj;
    const struct mg_ynode *action_n = mg_cfg_seen(r, "action");
    const struct mg_ynode *provider_n = mg_cfg_seen(r, "provider");
    struct mg_pos at = action_n ? action_n->pos : r->m ? r->m->pos : p->meta.pos;

    if (p->selector.present && p->n_target_refs)
        mg_error(x->d, p->selector.pos, "selector and targetRefs cannot be used together");
    if ((p->action == MG_ACTION_DENY || p->action == MG_ACTION_CUSTOM) && p->n_rules == 0)
        mg_error(x->d, at, "%s policy without rules would never trigger (use rules: [{}] to "
                 "match every request)", authz_actions[p->action]);
    if (p->action == MG_ACTION_CUSTOM && !p->provider)
        mg_error(x->d, at, "CUSTOM policy needs provider.name");
    if (p->action != MG_ACTION_CUSTOM && provider_n)
        mg_error(x->d, provider_n->pos, "provider is only allowed with action CUSTOM");
    if (p->action == MG_ACTION_CUSTOM)
        check_custom_identity(x, p);
    const char *dry = mg_kvlist_get(&p->meta.annotations, "istio.io/dry-run");
    p->dry_run = dry && mg_strcasecmp(dry, "true") == 0;
}

static const struct mg_cfg_field provider_rows[] = {
    MG_CFG_STR("name", struct mg_authz_policy, provider),
};
static const struct mg_cfg_table provider = { MG_CFG_ROWS(provider_rows) };
static const struct mg_cfg_field authz_rows[] = {
    MG_CFG_MAP("selector", struct mg_authz_policy, selector, mg_cfg_match_labels),
    MG_CFG_REFS("targetRef", struct mg_authz_policy, target_refs, n_target_refs),
    MG_CFG_REFS("targetRefs", struct mg_authz_policy, target_refs, n_target_refs),
    MG_CFG_ENUM("action", struct mg_authz_policy, action, authz_actions),
    MG_CFG_GROUP("provider", provider),
    MG_CFG_FN("rules", read_rules),
};
static const struct mg_cfg_table authz = { MG_CFG_ROWS(authz_rows), .check = check_authz };

void mg_cfg_read_authz(struct mg_cfg *x, const struct mg_ynode *spec, struct mg_authz_policy *p)
{
    p->action = MG_ACTION_ALLOW;
    mg_cfg_read_spec(x, spec, &authz, p);
}

/* ---- PeerAuthentication ---- */

static const char *const mtls_modes[] = { "UNSET", "DISABLE", "PERMISSIVE", "STRICT" };
/* `{mode: ...}`: the table reads one enum mg_mtls_mode */
static const struct mg_cfg_field mtls_rows[] = {
    { MG_CFG_ROW("mode", MG_F_ENUM, 0), .names = mtls_modes, .n = MG_ARRAY_LEN(mtls_modes) },
};
static const struct mg_cfg_table mtls = { MG_CFG_ROWS(mtls_rows) };

static bool read_port_mtls(struct mg_cfg *x, const struct mg_ynode *k, const struct mg_ynode *v,
                           void *obj)
{
    struct mg_peer_authn *p = obj;
    const struct mg_ynode *pk, *pv;

    if (!mg_cfg_map(x, k->str, v))
        return false;
    size_t mark = mg_cfg_push(x, ".portLevelMtls");
    for (size_t j = 0; mg_cfg_next(v, &j, &pk, &pv);) {
        struct mg_port_mtls pm = { 0, MG_MTLS_UNSET, pk->pos };
        if (mg_parse_port(pk->str, false, &pm.port) < 0) {
            mg_error(x->d, pk->pos, "invalid port \"%s\" in portLevelMtls (want "
                     "1..65535)", pk->str);
            continue;
        }
        char *sub = mg_xasprintf("[%s]", pk->str);
        mg_cfg_read_map(x, sub, pv, &mtls, &pm.mode);
        free(sub);
        *MG_CFG_PUSH(p->port_level, p->n_port_level) = pm;
    }
    mg_cfg_pop(x, mark);
    return true;
}

static const struct mg_cfg_field peer_authn_rows[] = {
    MG_CFG_MAP("selector", struct mg_peer_authn, selector, mg_cfg_match_labels),
    MG_CFG_MAP("mtls", struct mg_peer_authn, mode, mtls),
    MG_CFG_FN("portLevelMtls", read_port_mtls),
};
static void check_peer_authn(struct mg_cfg *x, const struct mg_cfg_read *r, void *obj)
{
    const struct mg_peer_authn *p = obj;
    const struct mg_ynode *pl = mg_cfg_seen(r, "portLevelMtls");

    if (!pl)
        return;
    if (!p->selector.present || !p->selector.match_labels.n)
        mg_error(x->d, pl->pos, "mesh/namespace peer authentication cannot have port level "
                 "mTLS (portLevelMtls needs selector.matchLabels)");
    else if (pl->type == MG_YMAP && pl->n == 0)
        mg_error(x->d, pl->pos, "port level mTLS, if defined, must have at least one element");
}
static const struct mg_cfg_table peer_authn = {
    MG_CFG_ROWS(peer_authn_rows), .check = check_peer_authn,
};

void mg_cfg_read_peer_authn(struct mg_cfg *x, const struct mg_ynode *spec, struct mg_peer_authn *p)
{
    mg_cfg_read_spec(x, spec, &peer_authn, p);
}

/* ---- RequestAuthentication ---- */

bool mg_cfg_jwks_uri_local_http(const char *u)
{
    char host[256];
    const char *h, *end;
    size_t n;

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
    return strcmp(host, "127.0.0.1") == 0 || mg_strcasecmp(host, "localhost") == 0 ||
           strcmp(host, "[::1]") == 0;
}

static void check_jwks_uri(struct mg_cfg *x, const char *u, struct mg_pos pos)
{
    if (mg_has_prefix(u, "https://"))
        return;
    if (!mg_has_prefix(u, "http://")) {
        mg_error(x->d, pos, "jwksUri \"%s\" must be an https:// URL", u);
        return;
    }
    /* Istio accepts http:// to any host; a key set fetched in plain text
     * can be replaced on the way, so say so (Proxy.spec.jwt.requireHttps
     * makes it an error, checked once every document is read) */
    if (mg_cfg_jwks_uri_local_http(u))
        mg_warning(x->d, pos, "jwksUri \"%s\" uses plain http (allowed only for a local "
                   "JWKS server)", u);
    else
        mg_warning(x->d, pos, "jwksUri \"%s\" uses plain http to another host: the key set "
                   "can be replaced in transit (Proxy.spec.jwt.requireHttps refuses it)", u);
}

static void check_from_header(struct mg_cfg *x, const struct mg_cfg_read *r, void *obj)
{
    if (!mg_ynode_get(r->m, "name"))
        mg_error(x->d, r->m->pos, "%s needs a name", mg_cfg_field(x, NULL));
}

static void check_claim_header(struct mg_cfg *x, const struct mg_cfg_read *r, void *obj)
{
    const struct mg_claim_to_header *h = obj;
    const struct mg_jwt_rule *jr = r->parent;

    if (!mg_ynode_get(r->m, "header") || !mg_ynode_get(r->m, "claim") ||
        (h->claim && !*h->claim))
        mg_error(x->d, h->pos, "%s: outputClaimToHeaders header and claim value must be "
                 "non-empty string", mg_cfg_field(x, NULL));
    /* the CRD's pattern ^[-_A-Za-z0-9]+$: no pseudo-header, no other token byte */
    for (const char *c = h->header; c && *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '-' || *c == '_')) {
            mg_error(x->d, h->pos, "%s: header \"%s\" does not match ^[-_A-Za-z0-9]+$",
                     mg_cfg_field(x, NULL), h->header);
            break;
        }
    for (size_t q = 0; h->header && q + 1 < jr->n_output_claim_to_headers; q++)
        if (jr->output_claim_to_headers[q].header &&
            strcmp(jr->output_claim_to_headers[q].header, h->header) == 0)
            mg_error(x->d, h->pos, "duplicate header \"%s\" in outputClaimToHeaders", h->header);
}

static void init_jwt_rule(void *obj)
{
    ((struct mg_jwt_rule *)obj)->timeout_ms = 5000;
}

static void check_jwt_rule(struct mg_cfg *x, const struct mg_cfg_read *r, void *obj)
{
    const struct mg_jwt_rule *jr = obj;

    /* Istio: an issuer or a jwksUri; without an issuer Envoy accepts any iss */
    if ((!jr->issuer || !*jr->issuer) && (!jr->jwks_uri || !*jr->jwks_uri))
        mg_error(x->d, r->m->pos, "%s: issuer or jwksUri must be non-empty string",
                 mg_cfg_field(x, NULL));
    for (size_t i = 0; i < jr->audiences.n; i++)
        if (!*jr->audiences.v[i])
            mg_error(x->d, jr->audiences.pos[i], "%s: audience must be non-empty string",
                     mg_cfg_field(x, NULL));
    for (size_t i = 0; i < jr->from_params.n; i++)
        if (!*jr->from_params.v[i])
            mg_error(x->d, jr->from_params.pos[i], "%s: location query must be non-empty string",
                     mg_cfg_field(x, NULL));
    for (size_t i = 0; i < jr->from_cookies.n; i++)
        if (!*jr->from_cookies.v[i])
            mg_error(x->d, jr->from_cookies.pos[i], "%s: cookie name must be non-empty string",
                     mg_cfg_field(x, NULL));
    for (size_t i = 0; i < jr->space_delimited_claims.n; i++)
        if (!*jr->space_delimited_claims.v[i])
            mg_error(x->d, jr->space_delimited_claims.pos[i], "%s: spaceDelimitedClaims[%zu] "
                     "must be non-empty string", mg_cfg_field(x, NULL), i);
    if (jr->jwks && jr->jwks_uri)
        mg_error(x->d, mg_cfg_last(r->m, "jwks")->pos, "%s: set either jwks or jwksUri, not both",
                 mg_cfg_field(x, NULL));
    else if (jr->jwks_uri)
        check_jwks_uri(x, jr->jwks_uri, mg_cfg_seen(r, "jwksUri") ? mg_cfg_seen(r, "jwksUri")->pos
                                                                  : mg_cfg_seen(r, "jwks_uri")->pos);
    if (mg_cfg_seen(r, "jwksUri") && mg_cfg_seen(r, "jwks_uri"))
        mg_error(x->d, mg_cfg_seen(r, "jwks_uri")->pos, "%s: only one of jwks or jwksUri can be "
                 "set (jwks_uri is jwksUri)", mg_cfg_field(x, NULL));
    if (jr->presence == 2)
        mg_warning(x->d, mg_cfg_seen(r, "presence")->pos, "%s: presence REQUIRED is not enforced "
                   "(Istio does not act on it either); require a token with an "
                   "AuthorizationPolicy on requestPrincipals", mg_cfg_field(x, NULL));
}

static const struct mg_cfg_field from_header_rows[] = {
    MG_CFG_HEADER("name", struct mg_jwt_header, name),
    MG_CFG_STR("prefix", struct mg_jwt_header, prefix),
};
static const struct mg_cfg_table from_header = {
    MG_CFG_ROWS(from_header_rows), .pos_at = MG_CFG_POS_AT(struct mg_jwt_header, pos),
    .check = check_from_header,
};
static const struct mg_cfg_field claim_header_rows[] = {
    MG_CFG_HEADER("header", struct mg_claim_to_header, header),
    MG_CFG_STR("claim", struct mg_claim_to_header, claim),
};
static const struct mg_cfg_table claim_header = {
    MG_CFG_ROWS(claim_header_rows), .pos_at = MG_CFG_POS_AT(struct mg_claim_to_header, pos),
    .check = check_claim_header,
};
/* presence (OPTIONAL, REQUIRED): in the API, but Istio's control plane
 * does not act on it yet; a missing token is refused by an
 * AuthorizationPolicy on requestPrincipals, as before */
static const char *const jwt_presence[] = { "PRESENCE_UNSPECIFIED", "OPTIONAL", "REQUIRED" };
static const struct mg_cfg_field jwt_rule_rows[] = {
    MG_CFG_STR("issuer", struct mg_jwt_rule, issuer),
    MG_CFG_SLIST("audiences", struct mg_jwt_rule, audiences),
    MG_CFG_STR("jwksUri", struct mg_jwt_rule, jwks_uri),
    MG_CFG_STR("jwks_uri", struct mg_jwt_rule, jwks_uri),     /* the alias the CRD keeps */
    MG_CFG_ENUM("presence", struct mg_jwt_rule, presence, jwt_presence),
    MG_CFG_STR("jwks", struct mg_jwt_rule, jwks),
    MG_CFG_LIST("fromHeaders", struct mg_jwt_rule, from_headers, n_from_headers, from_header),
    MG_CFG_SLIST("fromParams", struct mg_jwt_rule, from_params),
    MG_CFG_SLIST("fromCookies", struct mg_jwt_rule, from_cookies),
    MG_CFG_HEADER("outputPayloadToHeader", struct mg_jwt_rule, output_payload_to_header),
    MG_CFG_LIST("outputClaimToHeaders", struct mg_jwt_rule, output_claim_to_headers,
                n_output_claim_to_headers, claim_header),
    MG_CFG_BOOL("forwardOriginalToken", struct mg_jwt_rule, forward_original_token),
    MG_CFG_DURATION("timeout", struct mg_jwt_rule, timeout_ms),
    MG_CFG_SLIST("spaceDelimitedClaims", struct mg_jwt_rule, space_delimited_claims),
};
static const struct mg_cfg_table jwt_rule = {
    MG_CFG_ROWS(jwt_rule_rows), .pos_at = MG_CFG_POS_AT(struct mg_jwt_rule, pos),
    .init = init_jwt_rule, .check = check_jwt_rule,
};

static void check_request_authn(struct mg_cfg *x, const struct mg_cfg_read *r, void *obj)
{
    const struct mg_request_authn *p = obj;
    if (p->selector.present && p->n_target_refs)
        mg_error(x->d, p->selector.pos, "selector and targetRefs cannot be used together");
}

static const struct mg_cfg_field request_authn_rows[] = {
    MG_CFG_MAP("selector", struct mg_request_authn, selector, mg_cfg_match_labels),
    MG_CFG_REFS("targetRef", struct mg_request_authn, target_refs, n_target_refs),
    MG_CFG_REFS("targetRefs", struct mg_request_authn, target_refs, n_target_refs),
    MG_CFG_LIST("jwtRules", struct mg_request_authn, rules, n_rules, jwt_rule),
};
static const struct mg_cfg_table request_authn = {
    MG_CFG_ROWS(request_authn_rows), .check = check_request_authn,
};

void mg_cfg_read_request_authn(struct mg_cfg *x, const struct mg_ynode *spec,
                               struct mg_request_authn *p)
{
    mg_cfg_read_spec(x, spec, &request_authn, p);
}
