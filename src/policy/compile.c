/* compile.c - AuthorizationPolicy (config model) -> compiled matchers.
 *
 * Translation follows Istio's (pilot/pkg/security/authz) scoping, matchers,
 * TCP translation and trust-domain aliases: the special identity
 * matchers, trust-domain alias expansion, path templates, and Istio's
 * asymmetry for values that cannot be translated (ALLOW/CUSTOM drop the
 * rule, DENY/AUDIT drop the value so the rule gets broader). */
#include <stdlib.h>
#include <string.h>
#include "policy/internal.h"

/* ---- compile context ---- */

struct ctx {
    struct mg_arena *ar;
    struct mg_diags *d;
    enum mg_authz_action action;
    const char *ns;             /* the policy's namespace */
    const char *id;
    const char *const *td;      /* trust domain, then aliases (deduplicated) */
    size_t n_td;
    bool drop_rule;             /* ALLOW/CUSTOM: an untranslatable value */
    struct mg_pos pos;
};

static bool lenient(const struct ctx *cx)
{
    return cx->action == MG_ACTION_DENY || cx->action == MG_ACTION_AUDIT;
}

/* An untranslatable value: ALLOW/CUSTOM drop the whole rule, DENY/AUDIT the
 * value (1.9, last bullet). */
static void bad_value(struct ctx *cx, struct mg_pos pos, const char *what, const char *v)
{
    if (lenient(cx)) {
        mg_warning(cx->d, pos, "%s: invalid %s '%s' is ignored (the DENY/AUDIT rule gets broader)",
                   cx->id, what, v);
    } else {
        mg_warning(cx->d, pos, "%s: invalid %s '%s': the rule is ignored", cx->id, what, v);
        cx->drop_rule = true;
    }
}

static void pm_str(struct ctx *cx, struct mg_pm *m, const char *v, bool icase)
{
    size_t n = strlen(v);
    m->icase = icase;
    if (n == 1 && v[0] == '*') {
        m->kind = MG_PM_PRESENT;
    } else if (n > 0 && v[0] == '*') {
        m->kind = MG_PM_SUFFIX;
        m->s = mg_arena_strndup(cx->ar, v + 1, n - 1);
        m->len = n - 1;
    } else if (n > 0 && v[n - 1] == '*') {
        m->kind = MG_PM_PREFIX;
        m->s = mg_arena_strndup(cx->ar, v, n - 1);
        m->len = n - 1;
    } else {
        m->kind = MG_PM_EXACT;
        m->s = mg_arena_strdup(cx->ar, v);
        m->len = n;
    }
}

static bool is_pchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           strchr("-._~!$&'()+,;=:@%", c) != NULL;
}

/* Validate and tokenize a path template (1.7). Returns 0 or -1. */
static int pm_template(struct ctx *cx, struct mg_pm *m, const char *v)
{
    size_t n = strlen(v), start = 0, end = n;
    bool seen_any = false;
    while (start < end && v[start] == '/')
        start++;
    while (end > start && v[end - 1] == '/')
        end--;
    /* validity, segment by segment */
    for (size_t i = start; i <= end;) {
        size_t j = i;
        while (j < end && v[j] != '/')
            j++;
        size_t sl = j - i;
        const char *seg = v + i;
        bool op1 = sl == 3 && memcmp(seg, "{*}", 3) == 0;
        bool op2 = sl == 4 && memcmp(seg, "{**}", 4) == 0;
        if (op1 || op2) {
            if (seen_any)
                return -1;
            seen_any = op2;
        } else {
            for (size_t k = 0; k < sl; k++) {
                unsigned char c = (unsigned char)seg[k];
                if (c == '*' || c == '{' || c == '}' || !is_pchar(c))
                    return -1;
            }
        }
        i = j + 1;
    }
    /* tokens: literal runs, {*}, {**} */
    m->kind = MG_PM_TEMPLATE;
    m->tpl = mg_arena_zalloc(cx->ar, (n + 1) * sizeof(*m->tpl));
    size_t lit = 0;
    for (size_t i = 0; i <= n;) {
        bool op1 = i + 3 <= n && memcmp(v + i, "{*}", 3) == 0;
        bool op2 = i + 4 <= n && memcmp(v + i, "{**}", 4) == 0;
        if (i == n || op1 || op2) {
            if (i > lit) {
                struct mg_tpl_tok *t = &m->tpl[m->n_tpl++];
                t->kind = MG_TPL_LIT;
                t->s = mg_arena_strndup(cx->ar, v + lit, i - lit);
                t->len = i - lit;
            }
            if (i == n)
                break;
            m->tpl[m->n_tpl++].kind = op2 ? MG_TPL_ANY : MG_TPL_SEG;
            i += op2 ? 4 : 3;
            lit = i;
        } else {
            i++;
        }
    }
    return 0;
}

static bool td_member(const struct ctx *cx, const char *td, size_t n)
{
    for (size_t i = 0; i < cx->n_td; i++)
        if (strlen(cx->td[i]) == n && memcmp(cx->td[i], td, n) == 0)
            return true;
    return false;
}

/* principals / source.principal with trust-domain alias expansion (8). */
static size_t pm_principal(struct ctx *cx, struct mg_pm *out, const char *v, struct mg_pos pos)
{
    const char *slash = strchr(v, '/');
    if (v[0] != '*' && slash) {
        size_t tl = (size_t)(slash - v);
        bool local = tl == 13 && memcmp(v, "cluster.local", 13) == 0;
        if (td_member(cx, v, tl) || local) {
            for (size_t i = 0; i < cx->n_td; i++) {
                char *e = mg_xasprintf("%s%s", cx->td[i], slash);
                pm_str(cx, &out[i], e, false);
                free(e);
            }
            return cx->n_td;
        }
        mg_warning(cx->d, pos, "%s: principal '%s' names trust domain '%.*s', which is neither "
                   "the local trust domain nor an alias", cx->id, v, (int)tl, v);
    }
    pm_str(cx, out, v, false);
    return 1;
}

static size_t pm_trust_domain(struct ctx *cx, struct mg_pm *out, const char *v)
{
    const char *star = strchr(v, '*');
    size_t n = strlen(v);
    if (n == 1 && v[0] == '*') {
        out->kind = MG_PM_TD_ANY;
        return 1;
    }
    if (star) {
        out->kind = MG_PM_TD_PARTIAL;
        out->s = mg_arena_strndup(cx->ar, v, (size_t)(star - v));
        out->len = (size_t)(star - v);
        char *suf = mg_xasprintf("%s/", star + 1);
        out->s2 = mg_arena_strdup(cx->ar, suf);
        out->len2 = strlen(suf);
        free(suf);
        return 1;
    }
    const char *const self[1] = {v};
    const char *const *list = td_member(cx, v, n) ? cx->td : self;
    size_t cnt = td_member(cx, v, n) ? cx->n_td : 1;
    for (size_t i = 0; i < cnt; i++) {
        char *p = mg_xasprintf("%s/", list[i]);
        out[i].kind = MG_PM_TD_PREFIX;
        out[i].s = mg_arena_strdup(cx->ar, p);
        out[i].len = strlen(p);
        free(p);
    }
    return cnt;
}

static int pm_service_account(struct ctx *cx, struct mg_pm *m, const char *v)
{
    const char *slash = strchr(v, '/');
    const char *ns = cx->ns, *sa = v;
    size_t nsl = strlen(cx->ns);
    if (slash) {
        ns = v;
        nsl = (size_t)(slash - v);
        sa = slash + 1;
    }
    if (nsl == 0 || !*sa || strchr(sa, '/') || strchr(v, '*'))
        return -1;
    m->kind = MG_PM_SA;
    m->s = mg_arena_strndup(cx->ar, ns, nsl);
    m->len = nsl;
    m->s2 = mg_arena_strdup(cx->ar, sa);
    m->len2 = strlen(sa);
    return 0;
}

/* requestPrincipals: split at the last '/' into iss and sub (1.6). */
static void pm_req_principal(struct ctx *cx, struct mg_pm *m, const char *v)
{
    const char *slash = strrchr(v, '/');
    size_t n = strlen(v);
    m->kind = MG_PM_REQ_PRINCIPAL;
    if (n == 1 && v[0] == '*') {
        m->iss = mg_arena_zalloc(cx->ar, sizeof(*m->iss));
        m->sub = mg_arena_zalloc(cx->ar, sizeof(*m->sub));
        m->iss->kind = m->sub->kind = MG_PM_PRESENT;
    } else if (slash) {
        char *iss = mg_xstrndup(v, (size_t)(slash - v));
        m->iss = mg_arena_zalloc(cx->ar, sizeof(*m->iss));
        m->sub = mg_arena_zalloc(cx->ar, sizeof(*m->sub));
        pm_str(cx, m->iss, iss, false);
        pm_str(cx, m->sub, slash + 1, false);
        free(iss);
    } else if (v[0] == '*') {
        m->sub = mg_arena_zalloc(cx->ar, sizeof(*m->sub));
        pm_str(cx, m->sub, v, false);
    } else if (v[n - 1] == '*') {
        m->iss = mg_arena_zalloc(cx->ar, sizeof(*m->iss));
        pm_str(cx, m->iss, v, false);
    } else {
        m->kind = MG_PM_NEVER;      /* "iss/sub" needs a '/' to ever match */
    }
}

static bool attr_http_only(enum mg_attr_id a)
{
    return a == MG_A_REQ_PRINCIPAL || a == MG_A_AUDIENCES || a == MG_A_PRESENTER ||
           a == MG_A_CLAIM || a == MG_A_HOST || a == MG_A_METHOD || a == MG_A_PATH ||
           a == MG_A_HEADER;
}

/* Compile one value into out[] (several when aliases expand). Returns the
 * count, 0 when the value was dropped. */
static size_t compile_value(struct ctx *cx, enum mg_attr_id attr, const char *v,
                            struct mg_pos pos, struct mg_pm *out)
{
    if (!v || !*v) {
        bad_value(cx, pos, "empty value", "");
        return 0;
    }
    switch (attr) {
    case MG_A_PRINCIPAL:
        return pm_principal(cx, out, v, pos);
    case MG_A_NAMESPACE: {
        char *g = mg_xasprintf("*/ns/%s/*", v);
        out->kind = MG_PM_NS_GLOB;
        out->s = mg_arena_strdup(cx->ar, g);
        out->len = strlen(g);
        free(g);
        return 1;
    }
    case MG_A_SERVICE_ACCOUNT:
        if (pm_service_account(cx, out, v) < 0) {
            bad_value(cx, pos, "service account", v);
            return 0;
        }
        return 1;
    case MG_A_TRUST_DOMAIN:
        return pm_trust_domain(cx, out, v);
    case MG_A_REQ_PRINCIPAL:
        pm_req_principal(cx, out, v);
        return 1;
    case MG_A_SOURCE_IP: case MG_A_REMOTE_IP: case MG_A_DEST_IP:
        if (mg_cidr_parse(v, &out->cidr) < 0) {
            bad_value(cx, pos, "IP or CIDR", v);
            return 0;
        }
        out->kind = MG_PM_CIDR;
        return 1;
    case MG_A_DEST_PORT:
        if (mg_parse_port(v, true, &out->port) < 0) {
            bad_value(cx, pos, "port", v);
            return 0;
        }
        out->kind = MG_PM_PORT;
        return 1;
    case MG_A_PATH:
        if (strstr(v, "{*}") || strstr(v, "{**}")) {
            if (pm_template(cx, out, v) < 0) {
                bad_value(cx, pos, "path template", v);
                return 0;
            }
            return 1;
        }
        pm_str(cx, out, v, false);
        return 1;
    case MG_A_HOST:
        pm_str(cx, out, v, true);
        return 1;
    case MG_A_SOURCE_COUNTRY: case MG_A_REMOTE_COUNTRY:
        pm_str(cx, out, v, true);       /* ISO codes: "de" means DE */
        return 1;
    case MG_A_SOURCE_ASN: case MG_A_REMOTE_ASN:
        if (strcmp(v, "*") == 0) {
            out->kind = MG_PM_PRESENT;
            return 1;
        }
        if (mg_policy_parse_asn(v, &out->num) < 0) {
            bad_value(cx, pos, "AS number", v);
            return 0;
        }
        out->kind = MG_PM_ASN;
        return 1;
    case MG_A_NONE:
        out->kind = MG_PM_NEVER;
        return 1;
    default:
        pm_str(cx, out, v, false);
        return 1;
    }
}

static size_t compile_list(struct ctx *cx, enum mg_attr_id attr, const struct mg_slist *l,
                           struct mg_pm **out)
{
    size_t cap = l->n * (cx->n_td + 1), n = 0;
    if (l->n == 0) {
        *out = NULL;
        return 0;
    }
    *out = mg_arena_zalloc(cx->ar, cap * sizeof(**out));
    for (size_t i = 0; i < l->n; i++) {
        struct mg_pos p = l->pos ? l->pos[i] : cx->pos;
        n += compile_value(cx, attr, l->v[i], p, *out + n);
    }
    return n;
}

/* Add a field to an entry when either list has values. Returns 1 when a
 * field was added. */
static int add_field(struct ctx *cx, struct mg_entry *e, enum mg_attr_id attr,
                     const struct mg_slist *pos, const struct mg_slist *neg)
{
    static const struct mg_slist none;
    if (!pos)
        pos = &none;
    if (!neg)
        neg = &none;
    if (pos->n == 0 && neg->n == 0)
        return 0;
    struct mg_field *f = &e->f[e->n];
    memset(f, 0, sizeof(*f));
    f->attr = attr;
    f->http_only = attr_http_only(attr);
    f->n_pos = compile_list(cx, attr, pos, &f->pos);
    f->n_neg = compile_list(cx, attr, neg, &f->neg);
    f->has_pos = f->n_pos > 0;
    f->has_neg = f->n_neg > 0;
    if (!f->has_pos && !f->has_neg)
        return 0;       /* every value dropped (DENY): the field is gone */
    e->n++;
    return 1;
}

static bool source_empty(const struct mg_authz_source *s)
{
    return !(s->principals.n || s->not_principals.n || s->request_principals.n ||
             s->not_request_principals.n || s->namespaces.n || s->not_namespaces.n ||
             s->service_accounts.n || s->not_service_accounts.n || s->trust_domains.n ||
             s->not_trust_domains.n || s->ip_blocks.n || s->not_ip_blocks.n ||
             s->remote_ip_blocks.n || s->not_remote_ip_blocks.n);
}

static bool operation_empty(const struct mg_authz_operation *o)
{
    return !(o->hosts.n || o->not_hosts.n || o->ports.n || o->not_ports.n || o->methods.n ||
             o->not_methods.n || o->paths.n || o->not_paths.n);
}

static void compile_source(struct ctx *cx, struct mg_entry *e, const struct mg_authz_source *s)
{
    e->f = mg_arena_zalloc(cx->ar, 7 * sizeof(*e->f));
    add_field(cx, e, MG_A_PRINCIPAL, &s->principals, &s->not_principals);
    add_field(cx, e, MG_A_REQ_PRINCIPAL, &s->request_principals, &s->not_request_principals);
    add_field(cx, e, MG_A_NAMESPACE, &s->namespaces, &s->not_namespaces);
    add_field(cx, e, MG_A_SERVICE_ACCOUNT, &s->service_accounts, &s->not_service_accounts);
    add_field(cx, e, MG_A_TRUST_DOMAIN, &s->trust_domains, &s->not_trust_domains);
    add_field(cx, e, MG_A_SOURCE_IP, &s->ip_blocks, &s->not_ip_blocks);
    add_field(cx, e, MG_A_REMOTE_IP, &s->remote_ip_blocks, &s->not_remote_ip_blocks);
}

static void compile_operation(struct ctx *cx, struct mg_entry *e, const struct mg_authz_operation *o)
{
    e->f = mg_arena_zalloc(cx->ar, 4 * sizeof(*e->f));
    add_field(cx, e, MG_A_HOST, &o->hosts, &o->not_hosts);
    add_field(cx, e, MG_A_DEST_PORT, &o->ports, &o->not_ports);
    add_field(cx, e, MG_A_METHOD, &o->methods, &o->not_methods);
    add_field(cx, e, MG_A_PATH, &o->paths, &o->not_paths);
}

/* Parse "[a][b]..." into segments (literal, '.' and '/' included). */
static int parse_brackets(struct ctx *cx, const char *p, char ***segs, size_t *n)
{
    size_t cnt = 0;
    for (const char *q = p; *q; q++)
        cnt += *q == '[';
    if (cnt == 0 || cnt > 64)
        return -1;
    *segs = mg_arena_zalloc(cx->ar, cnt * sizeof(**segs));
    *n = 0;
    while (*p) {
        const char *close;
        if (*p != '[' || !(close = strchr(p + 1, ']')) || close == p + 1)
            return -1;
        if (memchr(p + 1, '[', (size_t)(close - p - 1)))
            return -1;
        (*segs)[(*n)++] = mg_arena_strndup(cx->ar, p + 1, (size_t)(close - p - 1));
        p = close + 1;
    }
    return 0;
}

int mg_policy_parse_asn(const char *s, uint32_t *out)
{
    if (!s)
        return -1;
    if ((s[0] == 'A' || s[0] == 'a') && (s[1] == 'S' || s[1] == 's'))
        s += 2;
    uint64_t v = 0;
    if (!*s)
        return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        v = v * 10 + (uint64_t)(*s - '0');
        if (v > UINT32_MAX)
            return -1;
    }
    if (v == 0)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

/* Map a `when` key to an attribute (section 2). Returns -1 for an unknown
 * or malformed key. */
static int when_key(struct ctx *cx, const char *k, struct mg_field *f)
{
    static const struct { const char *key; enum mg_attr_id attr; } simple[] = {
        {"source.ip", MG_A_SOURCE_IP}, {"remote.ip", MG_A_REMOTE_IP},
        {"source.namespace", MG_A_NAMESPACE}, {"source.principal", MG_A_PRINCIPAL},
        {"source.serviceAccount", MG_A_SERVICE_ACCOUNT}, {"source.trustDomain", MG_A_TRUST_DOMAIN},
        {"request.auth.principal", MG_A_REQ_PRINCIPAL}, {"request.auth.audiences", MG_A_AUDIENCES},
        {"request.auth.presenter", MG_A_PRESENTER}, {"destination.ip", MG_A_DEST_IP},
        {"destination.port", MG_A_DEST_PORT}, {"connection.sni", MG_A_SNI},
        {"source.geo.country", MG_A_SOURCE_COUNTRY}, {"source.geo.asn", MG_A_SOURCE_ASN},
        {"remote.geo.country", MG_A_REMOTE_COUNTRY}, {"remote.geo.asn", MG_A_REMOTE_ASN},
    };
    if (!k)
        return -1;
    for (size_t i = 0; i < MG_ARRAY_LEN(simple); i++) {
        if (strcmp(k, simple[i].key) == 0) {
            f->attr = simple[i].attr;
            return 0;
        }
    }
    if (mg_has_prefix(k, "request.headers[")) {
        size_t n = strlen(k);
        const char *name = k + 16;
        size_t nl = n - 16 - 1;
        if (n <= 17 || k[n - 1] != ']' || memchr(name, ']', nl) || memchr(name, '[', nl))
            return -1;
        char *h = mg_arena_strndup(cx->ar, name, nl);
        mg_lower(h);
        f->attr = MG_A_HEADER;
        f->hname = h;
        f->hname_len = nl;
        return 0;
    }
    if (mg_has_prefix(k, "request.auth.claims")) {
        if (parse_brackets(cx, k + 19, &f->claim, &f->n_claim) < 0)
            return -1;
        f->attr = MG_A_CLAIM;
        return 0;
    }
    if (mg_has_prefix(k, "experimental.envoy.filters.")) {
        f->attr = MG_A_NONE;
        return 0;
    }
    return -1;
}

static bool field_is_identity(enum mg_attr_id a)
{
    return a == MG_A_PRINCIPAL || a == MG_A_NAMESPACE || a == MG_A_SERVICE_ACCOUNT ||
           a == MG_A_TRUST_DOMAIN || a == MG_A_REQ_PRINCIPAL || a == MG_A_AUDIENCES ||
           a == MG_A_PRESENTER || a == MG_A_CLAIM;
}

static bool entry_http(const struct mg_entry *e, bool *identity)
{
    bool h = false;
    for (size_t i = 0; i < e->n; i++) {
        h |= e->f[i].http_only;
        *identity |= field_is_identity(e->f[i].attr);
    }
    return h;
}

/* Compile rule `r` of the policy. Returns false when the policy must be
 * treated as having an invalid CUSTOM configuration. */
static bool compile_rule(struct ctx *cx, struct mg_crule *cr, const struct mg_authz_rule *r)
{
    bool ok = true, identity = false;
    cx->drop_rule = false;
    cx->pos = r->pos;
    cr->has_from = r->has_from;
    cr->has_to = r->has_to;
    if (r->has_from && r->n_from == 0) {
        mg_warning(cx->d, r->pos, "%s: empty `from` is invalid; %s", cx->id,
                   lenient(cx) ? "treated as absent" : "the rule is ignored");
        cr->has_from = false;
        cx->drop_rule |= !lenient(cx);
    }
    if (r->has_to && r->n_to == 0) {
        mg_warning(cx->d, r->pos, "%s: empty `to` is invalid; %s", cx->id,
                   lenient(cx) ? "treated as absent" : "the rule is ignored");
        cr->has_to = false;
        cx->drop_rule |= !lenient(cx);
    }
    if (cr->has_from) {
        cr->from = mg_arena_zalloc(cx->ar, r->n_from * sizeof(*cr->from));
        cr->n_from = r->n_from;
        for (size_t i = 0; i < r->n_from; i++) {
            if (source_empty(&r->from[i])) {
                mg_warning(cx->d, r->from[i].pos, "%s: empty `source` is invalid", cx->id);
                cx->drop_rule |= !lenient(cx);
            }
            compile_source(cx, &cr->from[i], &r->from[i]);
            cr->http_only |= entry_http(&cr->from[i], &identity);
        }
    }
    if (cr->has_to) {
        cr->to = mg_arena_zalloc(cx->ar, r->n_to * sizeof(*cr->to));
        cr->n_to = r->n_to;
        for (size_t i = 0; i < r->n_to; i++) {
            if (operation_empty(&r->to[i])) {
                mg_warning(cx->d, r->to[i].pos, "%s: empty `operation` is invalid", cx->id);
                cx->drop_rule |= !lenient(cx);
            }
            compile_operation(cx, &cr->to[i], &r->to[i]);
            cr->http_only |= entry_http(&cr->to[i], &identity);
        }
    }
    cr->when.f = mg_arena_zalloc(cx->ar, (r->n_when + 1) * sizeof(*cr->when.f));
    for (size_t i = 0; i < r->n_when; i++) {
        const struct mg_authz_condition *w = &r->when[i];
        struct mg_field *f = &cr->when.f[cr->when.n];
        memset(f, 0, sizeof(*f));
        if (when_key(cx, w->key, f) < 0) {
            mg_warning(cx->d, w->pos, "%s: unknown condition key '%s': the rule is ignored",
                       cx->id, w->key ? w->key : "");
            cr->never = true;
            continue;
        }
        if (w->values.n == 0 && w->not_values.n == 0) {
            mg_warning(cx->d, w->pos, "%s: condition '%s' has neither values nor notValues: "
                       "the rule is ignored", cx->id, w->key);
            cr->never = true;
            continue;
        }
        f->http_only = attr_http_only(f->attr);
        f->n_pos = compile_list(cx, f->attr, &w->values, &f->pos);
        f->n_neg = compile_list(cx, f->attr, &w->not_values, &f->neg);
        f->has_pos = f->n_pos > 0;
        f->has_neg = f->n_neg > 0;
        if (!f->has_pos && !f->has_neg)
            continue;
        cr->http_only |= f->http_only;
        identity |= field_is_identity(f->attr);
        cr->when.n++;
    }
    if (cx->drop_rule)
        cr->never = true;
    if (cx->action == MG_ACTION_CUSTOM && identity) {
        mg_error(cx->d, r->pos, "%s: a CUSTOM policy cannot use identity fields (principals, "
                 "namespaces, serviceAccounts, trustDomains, requestPrincipals, request.auth.*, "
                 "source identity conditions)", cx->id);
        ok = false;
    }
    return ok;
}

/* ---- scoping ---- */

static bool labels_subset(const struct mg_kvlist *sel, const struct mg_kvlist *labels)
{
    for (size_t i = 0; i < sel->n; i++) {
        bool found = false;
        for (size_t j = 0; labels && j < labels->n && !found; j++)
            found = labels->v[j].key && sel->v[i].key && strcmp(labels->v[j].key, sel->v[i].key) == 0 &&
                    labels->v[j].value && sel->v[i].value &&
                    strcmp(labels->v[j].value, sel->v[i].value) == 0;
        if (!found)
            return false;
    }
    return true;
}

static const char *ns_of(const struct mg_meta *m)
{
    return m->namespace_ ? m->namespace_ : "default";
}

static bool authz_applies(const struct mg_authz_policy *p, const struct mg_workload *w,
                          const char *wns, const char *root)
{
    const char *ns = ns_of(&p->meta);
    bool own = strcmp(ns, wns) == 0, in_root = strcmp(ns, root) == 0;
    if (!own && !in_root)
        return false;
    if (p->n_target_refs > 0) {
        for (size_t i = 0; i < p->n_target_refs; i++) {
            const struct mg_target_ref *t = &p->target_refs[i];
            if (!t->kind || strcmp(t->kind, "Gateway") != 0 || !t->name || !w->name)
                continue;
            if (t->group && *t->group && strcmp(t->group, "gateway.networking.k8s.io") != 0)
                continue;
            if (own && strcmp(t->name, w->name) == 0 &&
                (!t->namespace_ || strcmp(t->namespace_, ns) == 0))
                return true;
        }
        return false;
    }
    if (p->selector.present && p->selector.match_labels.n > 0)
        return labels_subset(&p->selector.match_labels, w->labels);
    return true;
}

static int cmp_policy(const void *x, const void *y)
{
    const struct mg_cpolicy *a = x, *b = y;
    if (a->ctime_s != b->ctime_s)
        return a->ctime_s < b->ctime_s ? -1 : 1;
    if (a->ctime_ns != b->ctime_ns)
        return a->ctime_ns < b->ctime_ns ? -1 : 1;
    return a->doc_index < b->doc_index ? -1 : a->doc_index > b->doc_index;
}

void mg_workload_from_proxy(const struct mg_proxy *p, struct mg_workload *w)
{
    memset(w, 0, sizeof(*w));
    if (!p || !p->present)
        return;
    w->name = p->meta.name;
    w->namespace_ = p->meta.namespace_;
    w->labels = &p->meta.labels;
}

static const struct mg_ext_provider *find_provider(const struct mg_config *c, const char *name)
{
    for (size_t i = 0; name && i < c->mesh.n_ext_providers; i++)
        if (c->mesh.ext_providers[i].name && strcmp(c->mesh.ext_providers[i].name, name) == 0)
            return &c->mesh.ext_providers[i];
    return NULL;
}

static void check_custom(struct mg_policy_set *s, const struct mg_config *c, struct mg_diags *d)
{
    const char *first = NULL;
    bool several = false;
    for (size_t i = 0; i < s->n_pol; i++) {
        struct mg_cpolicy *p = &s->pol[i];
        if (p->action != MG_ACTION_CUSTOM || p->dry_run)
            continue;
        if (p->provider && first && strcmp(first, p->provider) != 0)
            several = true;
        if (p->provider && !first)
            first = p->provider;
    }
    for (size_t i = 0; i < s->n_pol; i++) {
        struct mg_cpolicy *p = &s->pol[i];
        if (p->action != MG_ACTION_CUSTOM)
            continue;
        p->ext = find_provider(c, p->provider);
        if (!p->ext) {
            p->provider_invalid = true;
            mg_warning(d, (struct mg_pos){0}, "%s: CUSTOM provider '%s' is not in "
                       "MeshConfig.extensionProviders: matching requests are denied",
                       p->id, p->provider ? p->provider : "");
        } else if (several && !p->dry_run) {
            p->provider_invalid = true;
            mg_warning(d, (struct mg_pos){0}, "%s: more than one CUSTOM provider applies to this "
                       "workload: requests matching CUSTOM rules are denied", p->id);
        }
    }
}

struct mg_policy_set *mg_policy_compile(const struct mg_config *c, const struct mg_workload *w,
                                        struct mg_diags *d)
{
    struct mg_policy_set *s = mg_xcalloc(1, sizeof(*s));
    /* A set holds every compiled policy for the life of a snapshot: fewer,
     * larger chunks than a request's. */
    mg_arena_init(&s->arena, 16384);
    struct mg_workload pw;
    if (!w) {
        mg_workload_from_proxy(&c->proxy, &pw);
        w = &pw;
    }
    const char *wns = w->namespace_ ? w->namespace_ : "default";
    const char *root = c->mesh.root_namespace ? c->mesh.root_namespace : "istio-system";

    /* TD = {trustDomain} + aliases, deduplicated, order kept. */
    size_t nal = c->mesh.trust_domain_aliases.n;
    const char **td = mg_arena_zalloc(&s->arena, (nal + 1) * sizeof(*td));
    size_t ntd = 0;
    td[ntd++] = mg_arena_strdup(&s->arena, c->mesh.trust_domain ? c->mesh.trust_domain : "cluster.local");
    for (size_t i = 0; i < nal; i++) {
        const char *a = c->mesh.trust_domain_aliases.v[i];
        bool dup = !a || !*a;
        for (size_t j = 0; j < ntd && !dup; j++)
            dup = strcmp(td[j], a) == 0;
        if (!dup)
            td[ntd++] = mg_arena_strdup(&s->arena, a);
    }

    s->pol = mg_arena_zalloc(&s->arena, (c->n_authz_policies + 1) * sizeof(*s->pol));
    for (size_t i = 0; i < c->n_authz_policies; i++) {
        const struct mg_authz_policy *p = &c->authz_policies[i];
        if (!authz_applies(p, w, wns, root))
            continue;
        struct mg_cpolicy *cp = &s->pol[s->n_pol++];
        char *id = mg_xasprintf("%s.%s", ns_of(&p->meta), p->meta.name ? p->meta.name : "");
        cp->id = mg_arena_strdup(&s->arena, id);
        free(id);
        cp->action = p->action;
        cp->dry_run = p->dry_run;
        cp->provider = p->provider ? mg_arena_strdup(&s->arena, p->provider) : NULL;
        cp->doc_index = p->meta.doc_index;
        if (mg_policy_parse_time(p->meta.creation_timestamp, &cp->ctime_s, &cp->ctime_ns) < 0) {
            cp->ctime_s = INT64_MIN;    /* Go's zero time: older than any */
            cp->ctime_ns = 0;
        }
        struct ctx cx = {&s->arena, d, p->action, ns_of(&p->meta), cp->id, td, ntd, false,
                         p->meta.pos};
        if (p->action != MG_ACTION_ALLOW && (!p->has_rules || p->n_rules == 0))
            mg_warning(d, p->meta.pos, "%s: a %s policy without rules never matches", cp->id,
                       p->action == MG_ACTION_DENY ? "DENY" :
                       p->action == MG_ACTION_CUSTOM ? "CUSTOM" : "AUDIT");
        cp->rules = mg_arena_zalloc(&s->arena, (p->n_rules + 1) * sizeof(*cp->rules));
        cp->n_rules = p->n_rules;
        for (size_t r = 0; r < p->n_rules; r++)
            if (!compile_rule(&cx, &cp->rules[r], &p->rules[r]))
                cp->provider_invalid = true;
        if (p->action == MG_ACTION_ALLOW) {
            if (p->dry_run)
                s->has_dry_allow = true;
            else
                s->has_allow = true;
        }
    }
    qsort(s->pol, s->n_pol, sizeof(*s->pol), cmp_policy);
    check_custom(s, c, d);
    mg_policy_index_build(s);
    mg_policy_peer_compile(s, c, wns, w->labels, d);
    return s;
}

void mg_policy_set_free(struct mg_policy_set *s)
{
    if (!s)
        return;
    mg_arena_free(&s->arena);
    free(s);
}

size_t mg_policy_set_count(const struct mg_policy_set *s)
{
    return s ? s->n_pol : 0;
}
