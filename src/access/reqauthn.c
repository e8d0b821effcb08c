/* reqauthn.c - RequestAuthentication: compile the applicable rules, then per
 * request extract tokens, verify them and decide (see access/access.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "access/access.h"

enum loc_kind { LOC_HEADER, LOC_PARAM, LOC_COOKIE };

struct ra_loc {
    enum loc_kind kind;
    const char *name;           /* lower-case header name, param or cookie name */
    const char *prefix;         /* headers only; NULL = none */
};

struct ra_claim_out {
    char *header;               /* lower-cased copy */
    const char *claim;
};

struct ra_rule {
    const char *issuer;         /* NULL when the rule has none: any iss (Envoy) */
    const struct mg_slist *audiences;
    char *uri;                  /* remote JWKS or discovery URL; NULL = inline */
    bool discovery;
    int64_t timeout_ms;
    struct mg_jwks *inline_ks;  /* inline jwks (NULL when remote or invalid) */
    bool inline_bad;
    struct ra_loc *locs;
    size_t n_locs;
    char *payload_header;       /* lower-cased copies */
    struct ra_claim_out *claims;
    size_t n_claims;
    const char **out_headers;
    size_t n_out_headers;
    bool forward;
    const char **sdc;           /* space-delimited claim names */
    size_t n_sdc;
    size_t order;               /* document order, for a stable sort */
};

struct mg_reqauthn {
    struct ra_rule *rules;
    size_t n;
};

/* ---- compile ---- */

static bool labels_subset(const struct mg_kvlist *sel, const struct mg_kvlist *labels)
{
    for (size_t i = 0; i < sel->n; i++) {
        const char *v = NULL;
        for (size_t j = 0; j < labels->n && !v; j++)
            if (!strcmp(labels->v[j].key, sel->v[i].key))
                v = labels->v[j].value;
        if (!v || strcmp(v, sel->v[i].value))
            return false;
    }
    return true;
}

/* Does a targetRef name this workload's Gateway: the Proxy itself or a
 * Gateway resource that selects it? */
static bool target_ref_matches(const struct mg_config *c, const struct mg_target_ref *t,
                               const char *policy_ns)
{
    const char *ns = t->namespace_ ? t->namespace_ : policy_ns;
    if (!t->kind || strcmp(t->kind, "Gateway") || !t->name)
        return false;
    if (c->proxy.present && c->proxy.meta.name && !strcmp(t->name, c->proxy.meta.name) &&
        (!c->proxy.meta.namespace_ || !strcmp(ns, c->proxy.meta.namespace_)))
        return true;
    for (size_t i = 0; i < c->n_gateways; i++) {
        const struct mg_gateway *g = &c->gateways[i];
        if (g->meta.name && !strcmp(g->meta.name, t->name) &&
            (!g->meta.namespace_ || !strcmp(g->meta.namespace_, ns)) &&
            labels_subset(&g->selector, &c->proxy.meta.labels))
            return true;
    }
    return false;
}

static bool applies(const struct mg_config *c, const struct mg_request_authn *r)
{
    const char *root = c->mesh.root_namespace ? c->mesh.root_namespace : "istio-system";
    const char *pns = c->proxy.meta.namespace_ ? c->proxy.meta.namespace_ : "default";
    const char *ns = r->meta.namespace_ ? r->meta.namespace_ : "default";
    if (strcmp(ns, root) && strcmp(ns, pns))
        return false;
    if (r->n_target_refs) {
        for (size_t i = 0; i < r->n_target_refs; i++)
            if (target_ref_matches(c, &r->target_refs[i], ns))
                return true;
        return false;
    }
    if (r->selector.present)
        return labels_subset(&r->selector.match_labels, &c->proxy.meta.labels);
    return true;
}

static void push_loc(struct ra_rule *r, enum loc_kind k, const char *name, const char *prefix)
{
    r->locs = mg_xrealloc(r->locs, (r->n_locs + 1) * sizeof *r->locs);
    r->locs[r->n_locs++] = (struct ra_loc){k, name, prefix};
}

static void compile_rule(const struct mg_jwt_rule *j, struct ra_rule *r, struct mg_diags *d)
{
    r->issuer = j->issuer && *j->issuer ? j->issuer : NULL;
    r->audiences = &j->audiences;
    r->timeout_ms = j->timeout_ms > 0 ? j->timeout_ms : 5000;
    r->forward = j->forward_original_token;
    if (j->jwks && *j->jwks) {
        char err[256];
        if (j->jwks_uri && *j->jwks_uri)
            mg_warning(d, j->pos, "jwtRules: both jwks and jwksUri are set; the inline jwks is used");
        r->inline_ks = mg_jwks_parse(j->jwks, strlen(j->jwks), MG_JWKS_ALLOW_OCT, err, sizeof err);
        if (!r->inline_ks) {
            r->inline_bad = true;
            mg_error(d, j->pos, "jwtRules: invalid jwks: %s", err);
        }
        for (size_t i = 0; i < mg_jwks_n_warnings(r->inline_ks); i++)
            mg_warning(d, j->pos, "jwtRules: jwks: %s", mg_jwks_warning(r->inline_ks, i));
    } else if (j->jwks_uri && *j->jwks_uri) {
        r->uri = mg_xstrdup(j->jwks_uri);
    } else if (r->issuer) {
        size_t n = strlen(r->issuer);
        while (n && r->issuer[n - 1] == '/')
            n--;
        r->uri = mg_xasprintf("%.*s/.well-known/openid-configuration", (int)n, r->issuer);
        r->discovery = true;
    } else {
        r->inline_bad = true;
    }
    for (size_t i = 0; i < j->n_from_headers; i++)
        push_loc(r, LOC_HEADER, j->from_headers[i].name, j->from_headers[i].prefix);
    for (size_t i = 0; i < j->from_params.n; i++)
        push_loc(r, LOC_PARAM, j->from_params.v[i], NULL);
    for (size_t i = 0; i < j->from_cookies.n; i++)
        push_loc(r, LOC_COOKIE, j->from_cookies.v[i], NULL);
    if (!r->n_locs) {           /* Envoy's defaults, only when nothing is configured */
        push_loc(r, LOC_HEADER, "authorization", "Bearer ");
        push_loc(r, LOC_PARAM, "access_token", NULL);
    }
    if (j->output_payload_to_header && *j->output_payload_to_header) {
        r->payload_header = mg_xstrdup(j->output_payload_to_header);
        mg_lower(r->payload_header);
    }
    r->out_headers = mg_xcalloc(j->n_output_claim_to_headers + 1, sizeof *r->out_headers);
    if (r->payload_header)
        r->out_headers[r->n_out_headers++] = r->payload_header;
    r->claims = mg_xcalloc(j->n_output_claim_to_headers + 1, sizeof *r->claims);
    for (size_t i = 0; i < j->n_output_claim_to_headers; i++) {
        const struct mg_claim_to_header *o = &j->output_claim_to_headers[i];
        if (!o->header || !o->claim)
            continue;
        r->claims[r->n_claims] = (struct ra_claim_out){mg_xstrdup(o->header), o->claim};
        mg_lower(r->claims[r->n_claims].header);
        r->out_headers[r->n_out_headers++] = r->claims[r->n_claims++].header;
    }
    /* "scope" and "permission" are always split by the policy module. */
    r->sdc = mg_xcalloc(j->space_delimited_claims.n + 1, sizeof *r->sdc);
    for (size_t i = 0; i < j->space_delimited_claims.n; i++) {
        const char *s = j->space_delimited_claims.v[i];
        if (strcmp(s, "scope") && strcmp(s, "permission"))
            r->sdc[r->n_sdc++] = s;
    }
}

static int rule_cmp(const void *a, const void *b)
{
    const struct ra_rule *x = a, *y = b;
    int c = strcmp(x->issuer ? x->issuer : "", y->issuer ? y->issuer : "");
    return c ? c : (x->order > y->order) - (x->order < y->order);
}

struct mg_reqauthn *mg_reqauthn_compile(const struct mg_config *c, struct mg_diags *d)
{
    struct mg_reqauthn *ra = mg_xcalloc(1, sizeof *ra);
    size_t total = 0;
    for (size_t i = 0; i < c->n_request_authns; i++)
        if (applies(c, &c->request_authns[i]))
            total += c->request_authns[i].n_rules;
    ra->rules = mg_xcalloc(total ? total : 1, sizeof *ra->rules);
    for (size_t i = 0; i < c->n_request_authns; i++) {
        const struct mg_request_authn *r = &c->request_authns[i];
        if (!applies(c, r))
            continue;
        for (size_t k = 0; k < r->n_rules; k++) {
            ra->rules[ra->n].order = ra->n;
            compile_rule(&r->rules[k], &ra->rules[ra->n], d);
            ra->n++;
        }
    }
    qsort(ra->rules, ra->n, sizeof *ra->rules, rule_cmp);
    return ra;
}

void mg_reqauthn_free(struct mg_reqauthn *ra)
{
    if (!ra)
        return;
    for (size_t i = 0; i < ra->n; i++) {
        struct ra_rule *r = &ra->rules[i];
        free(r->uri);
        mg_jwks_unref(r->inline_ks);
        free(r->locs);
        free(r->payload_header);
        for (size_t k = 0; k < r->n_claims; k++)
            free(r->claims[k].header);
        free(r->claims);
        free(r->out_headers);
        free(r->sdc);
    }
    free(ra->rules);
    free(ra);
}

size_t mg_reqauthn_n_rules(const struct mg_reqauthn *ra) { return ra ? ra->n : 0; }

const char *mg_reqauthn_rule_issuer(const struct mg_reqauthn *ra, size_t i)
{
    return i < ra->n ? ra->rules[i].issuer : NULL;
}

const char *mg_reqauthn_rule_uri(const struct mg_reqauthn *ra, size_t i, bool *discovery,
                                 int64_t *timeout_ms)
{
    if (i >= ra->n)
        return NULL;
    if (discovery)
        *discovery = ra->rules[i].discovery;
    if (timeout_ms)
        *timeout_ms = ra->rules[i].timeout_ms;
    return ra->rules[i].uri;
}

const char *const *mg_reqauthn_rule_output_headers(const struct mg_reqauthn *ra, size_t i,
                                                   size_t *n)
{
    *n = i < ra->n ? ra->rules[i].n_out_headers : 0;
    return i < ra->n ? ra->rules[i].out_headers : NULL;
}

/* ---- token extraction ---- */

struct found {
    const char *tok;
    size_t len;
    const struct ra_loc *loc;
    char *owned;                /* a percent-decoded copy tok points into, or NULL */
};

/* Every token a rule's locations hold: Envoy verifies them all, so a
 * forged token cannot ride along next to a valid one (a second
 * Authorization header, ?access_token= besides the header). */
#define RA_MAX_TOKENS 8

struct found_list {
    struct found v[RA_MAX_TOKENS];
    size_t n;
    bool over;                  /* more than RA_MAX_TOKENS: refused */
};

static void found_add(struct found_list *fl, const char *tok, size_t len, const struct ra_loc *l,
                      char *owned)
{
    if (fl->n == RA_MAX_TOKENS) {
        fl->over = true;
        free(owned);
        return;
    }
    fl->v[fl->n++] = (struct found){tok, len, l, owned};
}

static void found_free(struct found_list *fl)
{
    for (size_t i = 0; i < fl->n; i++)
        free(fl->v[i].owned);
    fl->n = 0;
}

static bool jwt_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '_' || c == '.';
}

static bool name_is(const struct mg_header *h, const char *name)
{
    size_t n = strlen(name);
    return h->name_len == n && !memcmp(h->name, name, n);
}

static const char *find_bytes(const char *p, const char *end, const char *s, size_t n)
{
    for (; n && (size_t)(end - p) >= n; p++)
        if (*p == *s && !memcmp(p, s, n))
            return p;
    return NULL;
}

/* Envoy's header extraction (1.29 and later): the values of the header
 * are joined with ',' (as Envoy's header map holds a repeated header); with
 * no prefix configured the whole value is the token. Else the prefix
 * (case-sensitive, as configured) is looked for anywhere in the value, so
 * "XBearer t" and "Basic x, Bearer t" hold a token, and no prefix means no
 * token here; after its first occurrence, characters that cannot begin a
 * token are skipped ("Bearer  t", 'Bearer "t"') and everything from there
 * to the end of the value is the token: "Bearer <t>, x" is the token
 * "<t>, x", which fails, rather than a valid token cut out of a longer
 * value. With nothing JWT-like after the prefix the whole value is the
 * token (and fails). A present token is never ignored: it verifies or gets
 * 401, so a second one cannot ride along to a backend that reads it. */
static void from_header(const struct mg_ra_request *req, const struct ra_loc *l, struct found_list *fl)
{
    size_t plen = l->prefix ? strlen(l->prefix) : 0, n = 0;
    const struct mg_header *one = NULL;
    struct mg_buf b = {0};
    const char *v, *end, *p, *t;
    char *owned = NULL;

    for (size_t i = 0; i < req->n_headers; i++) {
        const struct mg_header *h = &req->headers[i];
        if (!name_is(h, l->name))
            continue;
        if (n++ == 0) {
            one = h;
            continue;
        }
        if (n == 2)
            mg_buf_add(&b, one->value, one->value_len);
        mg_buf_add(&b, ",", 1);
        mg_buf_add(&b, h->value, h->value_len);
    }
    if (n == 0)
        return;
    if (n == 1) {
        v = one->value;
        end = v + one->value_len;
    } else {
        owned = b.p;
        v = b.p;
        end = v + b.len;
    }
    if (!plen) {
        found_add(fl, v, (size_t)(end - v), l, owned);
        return;
    }
    if (!(p = find_bytes(v, end, l->prefix, plen))) {
        free(owned);
        return;
    }
    for (t = p + plen; t < end && !jwt_char(*t); t++)
        ;
    if (t == end)
        found_add(fl, v, (size_t)(end - v), l, owned);
    else
        found_add(fl, t, (size_t)(end - t), l, owned);
}

/* Percent-decode s[0..n) into out (room for n bytes), as Envoy decodes
 * query parameter names and values: "%XX" becomes the byte, an invalid
 * escape stays as it is. Returns the decoded length. */
static size_t pct_decode(const char *s, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int hi, lo;
        if (s[i] == '%' && i + 2 < n && (hi = mg_hexval((unsigned char)s[i + 1])) >= 0 &&
            (lo = mg_hexval((unsigned char)s[i + 2])) >= 0) {
            out[o++] = (char)(hi << 4 | lo);
            i += 2;
        } else {
            out[o++] = s[i];
        }
    }
    return o;
}

/* Does the query parameter name s[0..n), percent-decoded, equal name? */
static bool param_name_is(const char *s, size_t n, const char *name)
{
    size_t k = 0, nl = strlen(name);
    for (size_t i = 0; i < n; i++, k++) {
        int hi, lo;
        char c = s[i];
        if (c == '%' && i + 2 < n && (hi = mg_hexval((unsigned char)s[i + 1])) >= 0 &&
            (lo = mg_hexval((unsigned char)s[i + 2])) >= 0) {
            c = (char)(hi << 4 | lo);
            i += 2;
        }
        if (k == nl || c != name[k])
            return false;
    }
    return k == nl;
}

/* Query parameters as Envoy reads them: split on '&', name and value
 * percent-decoded ("acc%65ss_token" is access_token); a name without '='
 * has an empty value. Every occurrence is a token (Envoy takes the first),
 * an empty one too, which then fails. */
static void from_param(const struct mg_ra_request *req, const struct ra_loc *l, struct found_list *fl)
{
    const char *q = memchr(req->path, '?', req->path_len), *end = req->path + req->path_len;
    if (!q)
        return;
    for (const char *p = q + 1; p < end;) {
        const char *amp = memchr(p, '&', (size_t)(end - p)), *e = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(e - p)), *ne = eq ? eq : e;
        if (param_name_is(p, (size_t)(ne - p), l->name)) {
            const char *v = eq ? eq + 1 : e;
            size_t vl = (size_t)(e - v);
            if (memchr(v, '%', vl)) {
                char *d = mg_xmalloc(vl + 1);
                found_add(fl, d, pct_decode(v, vl, d), l, d);
            } else {
                found_add(fl, v, vl, l, NULL);
            }
        }
        p = e + 1;
    }
}

/* Cookies as Envoy parses them: "name=value" pairs split on ';', leading
 * spaces skipped, a value in double quotes unquoted; the whole value is
 * the token (an empty one fails). */
static void from_cookie(const struct mg_ra_request *req, const struct ra_loc *l, struct found_list *fl)
{
    size_t nlen = strlen(l->name);
    for (size_t i = 0; i < req->n_headers; i++) {
        const struct mg_header *h = &req->headers[i];
        const char *p, *end;
        if (!name_is(h, "cookie"))
            continue;
        for (p = h->value, end = h->value + h->value_len; p < end;) {
            const char *semi = memchr(p, ';', (size_t)(end - p)), *e = semi ? semi : end;
            const char *eq;
            while (p < e && (*p == ' ' || *p == '\t'))
                p++;
            eq = memchr(p, '=', (size_t)(e - p));
            if (eq && (size_t)(eq - p) == nlen && !memcmp(p, l->name, nlen)) {
                const char *v = eq + 1, *ve = e;
                while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
                    ve--;
                if (ve - v >= 2 && *v == '"' && ve[-1] == '"')
                    v++, ve--;
                found_add(fl, v, (size_t)(ve - v), l, NULL);
            }
            p = e + 1;
        }
    }
}

/* All tokens of the rule's locations, in Envoy's order: headers, then
 * query parameters, then cookies (the first one gives the principal). */
static void extract(const struct ra_rule *r, const struct mg_ra_request *req, struct found_list *fl)
{
    static const enum loc_kind order[] = {LOC_HEADER, LOC_PARAM, LOC_COOKIE};
    fl->n = 0;
    fl->over = false;
    for (size_t o = 0; o < MG_ARRAY_LEN(order); o++)
        for (size_t i = 0; i < r->n_locs; i++) {
            const struct ra_loc *l = &r->locs[i];
            if (l->kind != order[o])
                continue;
            if (l->kind == LOC_HEADER)
                from_header(req, l, fl);
            else if (l->kind == LOC_PARAM)
                from_param(req, l, fl);
            else
                from_cookie(req, l, fl);
        }
}

/* ---- decision ---- */

static bool has_header(const struct mg_ra_request *req, const char *name)
{
    for (size_t i = 0; i < req->n_headers; i++)
        if (name_is(&req->headers[i], name))
            return true;
    return false;
}

/* How specific an error is about the token (higher wins when all fail). */
static int rank(enum mg_jwt_error e)
{
    switch (e) {
    case MG_JWT_AUDIENCE_NOT_ALLOWED: return 4;
    case MG_JWT_EXPIRED: case MG_JWT_NOT_YET_VALID: case MG_JWT_PAYLOAD_BAD_JSON:
    case MG_JWT_ISS_NOT_STRING: case MG_JWT_SUB_NOT_STRING: case MG_JWT_AUD_NOT_STRING:
    case MG_JWT_EXP_NOT_INTEGER: case MG_JWT_NBF_NOT_INTEGER: case MG_JWT_IAT_NOT_INTEGER:
    case MG_JWT_IAT_OUT_OF_RANGE: case MG_JWT_NBF_OUT_OF_RANGE: case MG_JWT_EXP_OUT_OF_RANGE:
    case MG_JWT_JTI_NOT_STRING:
        return 3;
    case MG_JWT_VERIFICATION_FAIL: case MG_JWKS_FETCH_FAIL: case MG_JWKS_NO_VALID_KEYS:
        return 2;
    case MG_JWT_UNKNOWN_ISSUER: return 1;
    default: return 0;
    }
}

/* Verify tok for rule r in Envoy's order: parse, issuer, time, audiences,
 * then the key set and the signature (so a token with a foreign issuer or
 * audience is told so whatever its signature). On success *j holds the
 * token. */
static enum mg_jwt_error check_rule(const struct ra_rule *r, const struct found *f,
                                    const struct mg_ra_keys *keys, struct mg_jwt_cache *cache,
                                    int64_t now, struct mg_jwt *j, bool *kid_miss)
{
    struct mg_jwks *ks;
    const struct mg_jwt *hit;
    enum mg_jwt_error e = MG_JWT_OK;
    bool cached = false;

    memset(j, 0, sizeof *j);
    ks = r->inline_ks ? mg_jwks_ref(r->inline_ks)
                      : !r->inline_bad && keys && keys->get ? keys->get(keys->ctx, r->uri) : NULL;
    if ((hit = mg_jwt_cache_lookup(cache, ks, f->tok, f->len, now))) {
        mg_jwt_copy(j, hit);
        cached = true;
    } else if (mg_jwt_parse(f->tok, f->len, j, &e) < 0) {
        mg_jwks_unref(ks);
        return e;
    }
    if (r->issuer && (!j->iss || strcmp(j->iss, r->issuer)))
        e = MG_JWT_UNKNOWN_ISSUER;
    else if ((e = mg_jwt_check_time(j, now)) != MG_JWT_OK)
        ;
    else if (!mg_jwt_audience_allowed(j, (const char *const *)r->audiences->v, r->audiences->n))
        e = MG_JWT_AUDIENCE_NOT_ALLOWED;
    else if (cached)
        e = MG_JWT_OK;
    else if (r->inline_bad)
        e = MG_JWKS_NO_VALID_KEYS;  /* Envoy: a provider whose inline jwks has no usable key */
    else if ((e = mg_jwt_check_signature(ks, j)) == MG_JWT_OK)
        mg_jwt_cache_insert(cache, ks, f->tok, f->len, j, now);
    else
        *kid_miss = e == MG_JWKS_KID_ALG_MISMATCH && j->kid && r->uri && ks &&
                    !mg_jwks_has_kid(ks, j->kid);
    mg_jwks_unref(ks);
    if (e != MG_JWT_OK)
        mg_jwt_clear(j);
    return e;
}

static void add_edit(struct mg_ra_result *out, enum mg_ra_edit_op op, const char *name, char *value)
{
    out->edits = mg_xrealloc(out->edits, (out->n_edits + 1) * sizeof *out->edits);
    out->edits[out->n_edits++] = (struct mg_ra_edit){op, name, value};
}

static bool header_safe(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return false;
    return true;
}

/* A claim as a header value: strings, integers and booleans only; nested
 * claims by dots. NULL when missing, of another type, or unsafe. */
static char *claim_value(json_t *payload, const char *path)
{
    json_t *v = payload;
    const char *p = path;
    while (v && *p) {
        const char *dot = strchr(p, '.');
        size_t n = dot ? (size_t)(dot - p) : strlen(p);
        char key[256];
        if (n >= sizeof key || !json_is_object(v))
            return NULL;
        memcpy(key, p, n);
        key[n] = 0;
        v = json_object_get(v, key);
        p += n + (dot ? 1 : 0);
    }
    if (json_is_string(v))
        return header_safe(json_string_value(v)) ? mg_xstrdup(json_string_value(v)) : NULL;
    if (json_is_integer(v))
        return mg_xasprintf("%lld", (long long)json_integer_value(v));
    if (json_is_boolean(v))
        return mg_xstrdup(json_is_true(v) ? "true" : "false");
    return NULL;
}

/* path[0..len) (path?query) without every parameter whose percent-decoded
 * name is `name` (with or without a value). */
static char *remove_param(const char *path, size_t len, const char *name)
{
    const char *q = memchr(path, '?', len), *end = path + len;
    struct mg_buf b = {0};
    bool first = true;
    if (!q)
        return mg_xstrndup(path, len);
    mg_buf_add(&b, path, (size_t)(q - path));
    for (const char *p = q + 1; p < end;) {
        const char *amp = memchr(p, '&', (size_t)(end - p)), *e = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(e - p)), *ne = eq ? eq : e;
        if (!param_name_is(p, (size_t)(ne - p), name) && e > p) {
            mg_buf_add(&b, first ? "?" : "&", 1);
            mg_buf_add(&b, p, (size_t)(e - p));
            first = false;
        }
        p = e + 1;
    }
    if (!b.p)
        mg_buf_add(&b, "", 0);
    return b.p;
}

/* The Cookie header(s) without the cookies named in names[0..n), joined
 * with "; "; NULL when none is left. */
static char *remove_cookies(const struct mg_ra_request *req, const char *const *names, size_t n)
{
    struct mg_buf b = {0};
    for (size_t i = 0; i < req->n_headers; i++) {
        const struct mg_header *h = &req->headers[i];
        if (!name_is(h, "cookie"))
            continue;
        const char *p = h->value, *end = h->value + h->value_len;
        while (p < end) {
            const char *semi = memchr(p, ';', (size_t)(end - p)), *e = semi ? semi : end;
            const char *eq;
            bool drop = false;
            while (p < e && (*p == ' ' || *p == '\t'))
                p++;
            eq = e > p ? memchr(p, '=', (size_t)(e - p)) : NULL;
            for (size_t k = 0; eq && k < n && !drop; k++)
                drop = strlen(names[k]) == (size_t)(eq - p) && !memcmp(p, names[k], (size_t)(eq - p));
            if (!drop && e > p) {
                if (b.len)
                    mg_buf_adds(&b, "; ");
                mg_buf_add(&b, p, (size_t)(e - p));
            }
            p = e + 1;
        }
    }
    return b.p;
}

static bool same_token(const struct found *a, const struct found *b)
{
    return a->len == b->len && !memcmp(a->tok, b->tok, a->len);
}

static bool in_list(const struct found_list *fl, const struct found *f)
{
    for (size_t i = 0; i < fl->n; i++)
        if (same_token(&fl->v[i], f))
            return true;
    return false;
}

/* Where the tokens were found, to strip before the upstream (names
 * borrowed from the compiled rules, each once). */
struct strip {
    const char **headers, **cookies;
    size_t n_headers, n_cookies;
};

static void strip_name(const char ***v, size_t *n, const char *name)
{
    for (size_t i = 0; i < *n; i++)
        if (!strcmp((*v)[i], name))
            return;
    *v = mg_xrealloc(*v, (*n + 1) * sizeof **v);
    (*v)[(*n)++] = name;
}

static void strip_loc(struct strip *st, const struct ra_loc *l, const struct mg_ra_request *req,
                      struct mg_ra_result *out)
{
    if (l->kind == LOC_HEADER) {
        strip_name(&st->headers, &st->n_headers, l->name);
    } else if (l->kind == LOC_COOKIE) {
        strip_name(&st->cookies, &st->n_cookies, l->name);
    } else {
        const char *cur = out->new_path ? out->new_path : req->path;
        size_t len = out->new_path ? strlen(out->new_path) : req->path_len;
        char *np = remove_param(cur, len, l->name);
        free(out->new_path);
        out->new_path = np;
    }
}

/* The rule at `win` accepted its tokens (*j), and every token another rule
 * found verified too. Every location a token came from is stripped unless
 * the rule that accepted that token forwards it (forwardOriginalToken). */
static void pass(const struct mg_reqauthn *ra, size_t win, const struct found_list *fls,
                 struct mg_jwt *j, const struct mg_ra_request *req, struct mg_ra_result *out)
{
    const struct ra_rule *r = &ra->rules[win];
    struct strip st = {0};
    out->status = MG_RA_PASS_PRINCIPAL;
    out->jwt = *j;
    memset(j, 0, sizeof *j);
    out->issuer = r->issuer;
    out->principal = mg_xasprintf("%s/%s", out->jwt.iss ? out->jwt.iss : "",
                                  out->jwt.sub ? out->jwt.sub : "");
    out->space_delimited_claims = r->sdc;
    out->n_space_delimited_claims = r->n_sdc;
    for (size_t i = 0; !r->forward && i < fls[win].n; i++)
        strip_loc(&st, fls[win].v[i].loc, req, out);
    for (size_t k = 0; k < ra->n; k++)
        for (size_t i = 0; k != win && !ra->rules[k].forward && i < fls[k].n; i++)
            if (!in_list(&fls[win], &fls[k].v[i]))
                strip_loc(&st, fls[k].v[i].loc, req, out);
    for (size_t i = 0; i < st.n_headers; i++)
        add_edit(out, MG_RA_REMOVE_HEADER, st.headers[i], NULL);
    if (st.n_cookies) {
        char *rest = remove_cookies(req, st.cookies, st.n_cookies);
        add_edit(out, rest ? MG_RA_SET_HEADER : MG_RA_REMOVE_HEADER, "cookie", rest);
    }
    free(st.headers);
    free(st.cookies);
    if (r->payload_header)
        add_edit(out, MG_RA_SET_HEADER, r->payload_header, mg_xstrdup(out->jwt.payload_b64));
    for (size_t i = 0; i < r->n_claims; i++) {
        char *v = claim_value(out->jwt.payload, r->claims[i].claim);
        if (v)
            add_edit(out, MG_RA_SET_HEADER, r->claims[i].header, v);
    }
}

static char *realm(const struct mg_ra_request *req)
{
    struct mg_buf b = {0};
    const char *q = req->path ? memchr(req->path, '?', req->path_len) : NULL;
    size_t plen = q ? (size_t)(q - req->path) : req->path ? req->path_len : 0;
    mg_buf_printf(&b, "Bearer realm=\"%s://", req->scheme ? req->scheme : "http");
    /* Host and path come from the client: keep the quoted string well formed. */
    for (const char *s = req->authority ? req->authority : ""; *s; s++)
        if ((unsigned char)*s >= 0x20 && *s != 0x7f && *s != '"' && *s != '\\')
            mg_buf_add(&b, s, 1);
    for (size_t i = 0; i < plen; i++)
        if ((unsigned char)req->path[i] >= 0x20 && req->path[i] != 0x7f &&
            req->path[i] != '"' && req->path[i] != '\\')
            mg_buf_add(&b, &req->path[i], 1);
    mg_buf_adds(&b, "\", error=\"invalid_token\"");
    return b.p;
}

void mg_reqauthn_eval(const struct mg_reqauthn *ra, const struct mg_ra_request *req,
                      const struct mg_ra_keys *keys, struct mg_jwt_cache *cache, int64_t now,
                      struct mg_ra_result *out)
{
    enum mg_jwt_error best = MG_JWT_OK;
    bool present = false;
    const char *missed[8];      /* URIs whose set lacked the token's kid */
    size_t n_missed = 0;

    memset(out, 0, sizeof *out);
    if (!ra || ra->n == 0)
        return;
    if (req->method && !strcmp(req->method, "OPTIONS") && has_header(req, "origin") &&
        has_header(req, "access-control-request-method")) {
        out->cors_bypass = true;
        return;
    }
    struct found_list *fls = mg_xcalloc(ra->n, sizeof *fls);
    for (size_t i = 0; i < ra->n; i++)
        extract(&ra->rules[i], req, &fls[i]);
    for (size_t i = 0; i < ra->n; i++) {
        const struct ra_rule *r = &ra->rules[i];
        const struct found_list *fl = &fls[i];
        struct mg_jwt j;
        enum mg_jwt_error e = MG_JWT_OK;
        if (fl->n == 0)
            continue;           /* missing for this rule: allowed */
        present = true;
        bool miss = false;
        if (fl->over) {
            e = MG_JWT_MULTIPLE_TOKENS;
        } else {
            /* the first token gives the principal; every other one must
             * verify too */
            e = check_rule(r, &fl->v[0], keys, cache, now, &j, &miss);
            for (size_t k = 1; e == MG_JWT_OK && k < fl->n; k++) {
                struct mg_jwt other;
                if (same_token(&fl->v[k], &fl->v[0]))
                    continue;   /* the same token twice */
                e = check_rule(r, &fl->v[k], keys, cache, now, &other, &miss);
                mg_jwt_clear(&other);
                if (e != MG_JWT_OK)
                    mg_jwt_clear(&j);
            }
        }
        /* A token another rule found must verify too, unless it is one this
         * rule accepted (several issuers sharing Authorization): else a
         * forged token in that rule's place (a cookie, another header)
         * would reach the upstream on an authenticated request. */
        for (size_t k = 0; e == MG_JWT_OK && k < ra->n; k++) {
            if (k == i || fls[k].n == 0)
                continue;
            if (fls[k].over)
                e = MG_JWT_MULTIPLE_TOKENS;
            for (size_t t = 0; e == MG_JWT_OK && t < fls[k].n; t++) {
                struct mg_jwt other;
                bool m2 = false;
                if (in_list(fl, &fls[k].v[t]))
                    continue;
                e = check_rule(&ra->rules[k], &fls[k].v[t], keys, cache, now, &other, &m2);
                mg_jwt_clear(&other);
            }
            if (e != MG_JWT_OK)
                mg_jwt_clear(&j);
        }
        if (e == MG_JWT_OK) {
            pass(ra, i, fls, &j, req, out);
            break;              /* another issuer's token: no refetch for the misses */
        }
        if (miss && n_missed < MG_ARRAY_LEN(missed))
            missed[n_missed++] = r->uri;
        if (best == MG_JWT_OK || rank(e) > rank(best))
            best = e;
    }
    for (size_t i = 0; i < ra->n; i++)
        found_free(&fls[i]);
    free(fls);
    if (out->status == MG_RA_PASS_PRINCIPAL)
        return;
    if (!present)
        return;
    /* Nobody accepted the token and a key set lacked its kid: the keys may
     * have rotated, so ask for an early refetch (the store rate-limits). */
    for (size_t i = 0; keys && keys->kid_miss && i < n_missed; i++) {
        bool dup = false;
        for (size_t k = 0; k < i && !dup; k++)
            dup = !strcmp(missed[k], missed[i]);
        if (!dup)
            keys->kid_miss(keys->ctx, missed[i]);
    }
    out->error = best;
    out->body = mg_jwt_error_str(best);
    if (best == MG_JWT_AUDIENCE_NOT_ALLOWED) {
        out->status = MG_RA_DENY_403;
        out->http_status = 403;
    } else {
        out->status = MG_RA_DENY_401;
        out->http_status = 401;
        out->www_authenticate = realm(req);
    }
}

void mg_ra_result_free(struct mg_ra_result *r)
{
    if (!r)
        return;
    free(r->www_authenticate);
    free(r->principal);
    mg_jwt_clear(&r->jwt);
    for (size_t i = 0; i < r->n_edits; i++)
        free(r->edits[i].value);
    free(r->edits);
    free(r->new_path);
    memset(r, 0, sizeof *r);
}

void mg_reqauthn_attrs(const struct mg_ra_result *r, struct mg_attrs *a)
{
    bool ok = r->status == MG_RA_PASS_PRINCIPAL;
    a->req_iss = ok ? r->jwt.iss : NULL;
    a->req_sub = ok ? r->jwt.sub : NULL;
    a->audiences = ok ? r->jwt.aud : NULL;
    a->n_audiences = ok ? r->jwt.n_aud : 0;
    a->presenter = ok ? r->jwt.azp : NULL;
    a->claims = ok ? r->jwt.payload : NULL;
    a->space_delimited_claims = ok ? r->space_delimited_claims : NULL;
    a->n_space_delimited_claims = ok ? r->n_space_delimited_claims : 0;
}
