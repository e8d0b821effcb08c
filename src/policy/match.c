/* match.c - evaluation of compiled matchers and fields against request
 * attributes. Runs per request: no allocation, no recursion on input. */
#include <string.h>
#include "policy/internal.h"

static bool bytes_eq(const char *a, const char *b, size_t n, bool icase)
{
    if (!icase)
        return memcmp(a, b, n) == 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char x = (unsigned char)a[i], y = (unsigned char)b[i];
        if (x >= 'A' && x <= 'Z')
            x = (unsigned char)(x - 'A' + 'a');
        if (y >= 'A' && y <= 'Z')
            y = (unsigned char)(y - 'A' + 'a');
        if (x != y)
            return false;
    }
    return true;
}

/* Templates are deterministic: {*} takes the whole segment (the next token
 * is "/..." or the end) and {**} is last, followed by one literal at most,
 * so a single left-to-right pass decides. */
static bool tpl_match(const struct mg_pm *m, const char *s, size_t n)
{
    size_t i = 0;
    for (size_t t = 0; t < m->n_tpl; t++) {
        const struct mg_tpl_tok *k = &m->tpl[t];
        if (k->kind == MG_TPL_LIT) {
            if (n - i < k->len || memcmp(s + i, k->s, k->len) != 0)
                return false;
            i += k->len;
        } else if (k->kind == MG_TPL_SEG) {
            size_t j = i;
            while (j < n && s[j] != '/')
                j++;
            if (j == i)
                return false;
            i = j;
        } else {
            const struct mg_tpl_tok *lit = t + 1 < m->n_tpl ? &m->tpl[t + 1] : NULL;
            size_t ll = lit ? lit->len : 0;
            if (n - i < ll)
                return false;
            return ll == 0 || memcmp(s + n - ll, lit->s, ll) == 0;
        }
    }
    return i == n;
}

bool mg_pm_match_str(const struct mg_pm *m, const char *s, size_t n)
{
    switch (m->kind) {
    case MG_PM_EXACT:
        return n == m->len && bytes_eq(s, m->s, n, m->icase);
    case MG_PM_PREFIX:
        return n >= m->len && bytes_eq(s, m->s, m->len, m->icase);
    case MG_PM_SUFFIX:
        return n >= m->len && bytes_eq(s + n - m->len, m->s, m->len, m->icase);
    case MG_PM_PRESENT:
        return n > 0;
    case MG_PM_TEMPLATE:
        return tpl_match(m, s, n);
    default:
        return false;
    }
}

/* The peer URI is "spiffe://" + principal; the regex-shaped matchers are
 * defined on the URI, so they read this two-piece string. */
struct vstr {
    const char *b;
    size_t blen;
};
static const char spiffe_scheme[] = "spiffe://";
#define SCHEME_LEN (sizeof(spiffe_scheme) - 1)

static char vat(const struct vstr *v, size_t i)
{
    return i < SCHEME_LEN ? spiffe_scheme[i] : v->b[i - SCHEME_LEN];
}

/* Glob with '*' = ".*" and every other byte literal (namespaces). Classic
 * single-backtrack algorithm: O(n*m) worst case, no recursion. */
static bool glob_uri(const char *p, size_t m, const struct vstr *v)
{
    size_t n = SCHEME_LEN + v->blen, i = 0, j = 0, mark = 0;
    size_t star = (size_t)-1;
    while (i < n) {
        if (j < m && p[j] == '*') {
            star = j++;
            mark = i;
        } else if (j < m && p[j] == vat(v, i)) {
            i++;
            j++;
        } else if (star != (size_t)-1) {
            j = star + 1;
            i = ++mark;
        } else {
            return false;
        }
    }
    while (j < m && p[j] == '*')
        j++;
    return j == m;
}

static bool starts(const char *s, size_t n, const char *p, size_t pl)
{
    return n >= pl && memcmp(s, p, pl) == 0;
}

/* "sa/<sa>" followed by the end or by "/" and at least one byte. */
static bool sa_tail(const char *r, size_t rn, const struct mg_pm *m)
{
    if (!starts(r, rn, "sa/", 3) || !starts(r + 3, rn - 3, m->s2, m->len2))
        return false;
    size_t rest = rn - 3 - m->len2;
    return rest == 0 || (rest >= 2 && r[3 + m->len2] == '/');
}

/* spiffe://.+/ns/<ns>/(.+/|)sa/<sa>(/.+)? with ns and sa literal. The
 * principal P is the URI after "spiffe://": ".+" takes P[0..i) with i >= 1. */
static bool sa_match(const struct mg_pm *m, const char *p, size_t n)
{
    for (size_t i = 1; i + 4 + m->len + 1 <= n; i++) {
        if (memcmp(p + i, "/ns/", 4) != 0 || memcmp(p + i + 4, m->s, m->len) != 0 ||
            p[i + 4 + m->len] != '/')
            continue;
        const char *r = p + i + 4 + m->len + 1;
        size_t rn = n - (i + 4 + m->len + 1);
        if (sa_tail(r, rn, m))
            return true;
        for (size_t j = 2; j < rn; j++)
            if (r[j - 1] == '/' && sa_tail(r + j, rn - j, m))
                return true;
    }
    return false;
}

/* spiffe://<pre>[^/]*<suf>/.* : s = pre, s2 = suf + "/". */
static bool td_partial(const struct mg_pm *m, const char *p, size_t n)
{
    if (!starts(p, n, m->s, m->len))
        return false;
    for (size_t e = m->len; e <= n; e++) {
        if (starts(p + e, n - e, m->s2, m->len2))
            return true;
        if (e == n || p[e] == '/')
            break;
    }
    return false;
}

bool mg_pm_match_principal(const struct mg_pm *m, const char *principal)
{
    size_t n = strlen(principal);
    struct vstr v = {principal, n};
    switch (m->kind) {
    case MG_PM_EXACT: case MG_PM_PREFIX: case MG_PM_SUFFIX: case MG_PM_PRESENT:
        return mg_pm_match_str(m, principal, n);
    case MG_PM_NS_GLOB:
        return glob_uri(m->s, m->len, &v);
    case MG_PM_SA:
        return sa_match(m, principal, n);
    case MG_PM_TD_ANY:
        return true;
    case MG_PM_TD_PREFIX:
        return starts(principal, n, m->s, m->len);
    case MG_PM_TD_PARTIAL:
        return td_partial(m, principal, n);
    default:
        return false;
    }
}

static bool any_str(const struct mg_pm *pm, size_t npm, const char *s, size_t n)
{
    for (size_t k = 0; k < npm; k++)
        if (mg_pm_match_str(&pm[k], s, n))
            return true;
    return false;
}

static bool is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static bool any_split(const struct mg_pm *pm, size_t npm, const char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        while (i < n && is_ws(s[i]))
            i++;
        size_t j = i;
        while (j < n && !is_ws(s[j]))
            j++;
        if (j > i && any_str(pm, npm, s + i, j - i))
            return true;
        i = j;
    }
    return false;
}

static bool claim_is_split(const struct mg_field *f, const struct mg_attrs *a)
{
    const char *c = f->claim[0];
    if (f->n_claim != 1)
        return false;       /* Envoy splits top-level claims only */
    if (strcmp(c, "scope") == 0 || strcmp(c, "permission") == 0)
        return true;
    for (size_t i = 0; i < a->n_space_delimited_claims; i++)
        if (a->space_delimited_claims[i] && strcmp(a->space_delimited_claims[i], c) == 0)
            return true;
    return false;
}

static bool any_claim(const struct mg_field *f, const struct mg_attrs *a,
                      const struct mg_pm *pm, size_t npm)
{
    const json_t *v = a->claims;
    if (!v || f->n_claim == 0)
        return false;
    for (size_t i = 0; i < f->n_claim; i++) {
        if (!json_is_object(v))
            return false;
        v = json_object_get(v, f->claim[i]);
        if (!v)
            return false;
    }
    bool split = claim_is_split(f, a);
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        size_t n = json_string_length(v);
        return split ? any_split(pm, npm, s, n) : any_str(pm, npm, s, n);
    }
    if (json_is_array(v)) {
        size_t i;
        const json_t *e;
        json_array_foreach(v, i, e) {
            if (json_is_string(e) && any_str(pm, npm, json_string_value(e), json_string_length(e)))
                return true;
        }
    }
    return false;
}

static bool any_header(const struct mg_field *f, const struct mg_attrs *a,
                       const struct mg_pm *pm, size_t npm)
{
    const struct mg_pseudo_headers ps = { a->host, a->path_query, a->method, a->scheme };
    const char *pv;
    if (mg_pseudo_header(&ps, f->hname, f->hname_len, &pv)) {
        for (size_t k = 0; pv && k < npm; k++)
            if (pm[k].kind == MG_PM_PRESENT || mg_pm_match_str(&pm[k], pv, strlen(pv)))
                return true;
        return false;
    }
    for (size_t i = 0; i < a->n_headers; i++) {
        const struct mg_header *h = &a->headers[i];
        if (h->name_len != f->hname_len || !bytes_eq(h->name, f->hname, h->name_len, true))
            continue;
        for (size_t k = 0; k < npm; k++) {
            if (pm[k].kind == MG_PM_PRESENT)
                return true;    /* Envoy present_match: even an empty value */
            if (mg_pm_match_str(&pm[k], h->value ? h->value : "", h->value ? h->value_len : 0))
                return true;
        }
    }
    return false;
}

static bool any_ip(const struct mg_addr *ad, const struct mg_pm *pm, size_t npm)
{
    if (ad->family != AF_INET && ad->family != AF_INET6)
        return false;
    for (size_t k = 0; k < npm; k++)
        if (pm[k].kind == MG_PM_CIDR && mg_cidr_match(&pm[k].cidr, ad->family, ad->ip))
            return true;
    return false;
}

static bool req_principal(const struct mg_pm *m, const struct mg_attrs *a)
{
    if (m->kind != MG_PM_REQ_PRINCIPAL || !a->req_iss || !a->req_sub)
        return false;
    if (m->iss && !mg_pm_match_str(m->iss, a->req_iss, strlen(a->req_iss)))
        return false;
    if (m->sub && !mg_pm_match_str(m->sub, a->req_sub, strlen(a->req_sub)))
        return false;
    return true;
}

/* An absent AS number (0) matches nothing, not even "*". */
static bool any_asn(uint32_t asn, const struct mg_pm *pm, size_t npm)
{
    if (!asn)
        return false;
    for (size_t k = 0; k < npm; k++)
        if (pm[k].kind == MG_PM_PRESENT || (pm[k].kind == MG_PM_ASN && pm[k].num == asn))
            return true;
    return false;
}

static bool cstr_any(const char *s, const struct mg_pm *pm, size_t npm)
{
    return s && any_str(pm, npm, s, strlen(s));
}

/* Does any value of the field's attribute match any of pm[0..npm)? An
 * absent attribute matches nothing. */
static bool attr_any(const struct mg_field *f, const struct mg_attrs *a,
                     const struct mg_pm *pm, size_t npm)
{
    switch (f->attr) {
    case MG_A_PRINCIPAL: case MG_A_NAMESPACE: case MG_A_SERVICE_ACCOUNT: case MG_A_TRUST_DOMAIN:
        if (!a->peer_principal || !a->peer_principal[0])
            return false;
        for (size_t k = 0; k < npm; k++)
            if (mg_pm_match_principal(&pm[k], a->peer_principal))
                return true;
        return false;
    case MG_A_REQ_PRINCIPAL:
        for (size_t k = 0; k < npm; k++)
            if (req_principal(&pm[k], a))
                return true;
        return false;
    case MG_A_AUDIENCES:
        for (size_t i = 0; i < a->n_audiences; i++)
            if (cstr_any(a->audiences[i], pm, npm))
                return true;
        return false;
    case MG_A_PRESENTER:
        return cstr_any(a->presenter, pm, npm);
    case MG_A_CLAIM:
        return any_claim(f, a, pm, npm);
    case MG_A_SOURCE_IP:
        return any_ip(&a->source, pm, npm);
    case MG_A_REMOTE_IP:
        return any_ip(&a->remote, pm, npm);
    case MG_A_DEST_IP:
        return any_ip(&a->dest, pm, npm);
    case MG_A_DEST_PORT:
        if (!a->dest.port && !a->dest.family)
            return false;
        for (size_t k = 0; k < npm; k++)
            if (pm[k].kind == MG_PM_PORT && pm[k].port == a->dest.port)
                return true;
        return false;
    case MG_A_SNI:
        return cstr_any(a->sni, pm, npm);
    case MG_A_HOST:
        return cstr_any(a->host, pm, npm);
    case MG_A_METHOD:
        return cstr_any(a->method, pm, npm);
    case MG_A_PATH:
        return a->path && any_str(pm, npm, a->path, a->path_len);
    case MG_A_HEADER:
        return any_header(f, a, pm, npm);
    case MG_A_SOURCE_COUNTRY:
        return a->source_country[0] && any_str(pm, npm, a->source_country, strlen(a->source_country));
    case MG_A_REMOTE_COUNTRY:
        return a->remote_country[0] && any_str(pm, npm, a->remote_country, strlen(a->remote_country));
    case MG_A_SOURCE_ASN:
        return any_asn(a->source_asn, pm, npm);
    case MG_A_REMOTE_ASN:
        return any_asn(a->remote_asn, pm, npm);
    case MG_A_NONE:
        return false;
    }
    return false;
}

bool mg_field_match(const struct mg_field *f, const struct mg_attrs *a)
{
    if (f->has_pos && !attr_any(f, a, f->pos, f->n_pos))
        return false;
    if (f->has_neg && attr_any(f, a, f->neg, f->n_neg))
        return false;
    return true;
}
