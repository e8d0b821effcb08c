/* test_reqauthn.c - RequestAuthentication: scoping, token locations, the
 * multi-issuer requirement, audiences, CORS bypass, header edits. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "access/access.h"
#include "jwt_sign.h"
#include "tap.h"

static int64_t now;
static EVP_PKEY *ka, *kb;
static char *jwks_a, *jwks_b;

/* ---- building configurations by hand (no YAML loader needed) ---- */

static struct mg_config cfg;

static void cfg_reset(void)
{
    static struct mg_kv lbl[] = {{"istio", "ingressgateway", {0}}, {"app", "gw", {0}}};
    memset(&cfg, 0, sizeof cfg);
    cfg.mesh.root_namespace = "istio-system";
    cfg.proxy.present = true;
    cfg.proxy.meta.name = "ingressgateway";
    cfg.proxy.meta.namespace_ = "gw-ns";
    cfg.proxy.meta.labels = (struct mg_kvlist){lbl, 2};
}

static struct mg_request_authn *add_ra(const char *ns)
{
    cfg.request_authns = realloc(cfg.request_authns, (cfg.n_request_authns + 1) * sizeof *cfg.request_authns);
    struct mg_request_authn *r = &cfg.request_authns[cfg.n_request_authns++];
    memset(r, 0, sizeof *r);
    r->meta.namespace_ = (char *)ns;
    r->meta.name = "ra";
    return r;
}

static struct mg_jwt_rule *add_rule(struct mg_request_authn *r, const char *iss, const char *jwks)
{
    r->rules = realloc(r->rules, (r->n_rules + 1) * sizeof *r->rules);
    struct mg_jwt_rule *j = &r->rules[r->n_rules++];
    memset(j, 0, sizeof *j);
    j->issuer = (char *)iss;
    j->jwks = (char *)jwks;
    j->timeout_ms = 5000;
    return j;
}

static void cfg_free(void)
{
    for (size_t i = 0; i < cfg.n_request_authns; i++)
        free(cfg.request_authns[i].rules);
    free(cfg.request_authns);
    cfg.request_authns = NULL;
    cfg.n_request_authns = 0;
}

/* ---- requests ---- */

struct req {
    struct mg_ra_request r;
    struct mg_header h[8];
};

static struct mg_ra_request *mkreq(struct req *q, const char *method, const char *path, ...)
{
    va_list ap;
    const char *n;
    memset(q, 0, sizeof *q);
    q->r.method = method;
    q->r.scheme = "https";
    q->r.authority = "example.com";
    q->r.path = path;
    q->r.path_len = strlen(path);
    q->r.headers = q->h;
    va_start(ap, path);
    while ((n = va_arg(ap, const char *))) {
        const char *v = va_arg(ap, const char *);
        q->h[q->r.n_headers++] = (struct mg_header){n, strlen(n), v, strlen(v)};
    }
    va_end(ap);
    return &q->r;
}

static char *token(EVP_PKEY *k, const char *kid, const char *iss, const char *extra)
{
    char *h = mg_ts_header(mg_ts_default_alg(k), kid);
    char *p = mg_xasprintf("{\"iss\":\"%s\",\"sub\":\"u1\",\"aud\":[\"a1\",\"a2\"],\"exp\":%lld%s%s}",
                           iss, (long long)now + 600, extra ? "," : "", extra ? extra : "");
    char *t = mg_ts_sign(k, NULL, 0, mg_ts_default_alg(k), h, p);
    free(h);
    free(p);
    return t;
}

static const struct mg_ra_edit *find_edit(const struct mg_ra_result *r, enum mg_ra_edit_op op,
                                          const char *name)
{
    for (size_t i = 0; i < r->n_edits; i++)
        if (r->edits[i].op == op && !strcmp(r->edits[i].name, name))
            return &r->edits[i];
    return NULL;
}

static struct mg_ra_result res;
static struct mg_reqauthn *ra;

static void eval(const struct mg_ra_request *q, const struct mg_ra_keys *keys)
{
    mg_ra_result_free(&res);
    mg_reqauthn_eval(ra, q, keys, NULL, now, &res);
}

static void compile(void)
{
    struct mg_diags d = {0};
    mg_reqauthn_free(ra);
    ra = mg_reqauthn_compile(&cfg, &d);
    mg_diags_free(&d);
}

static void test_scoping(void)
{
    struct mg_request_authn *r;
    static struct mg_kv sel_ok[] = {{"istio", "ingressgateway", {0}}};
    static struct mg_kv sel_no[] = {{"istio", "other", {0}}};
    static struct mg_target_ref tr_ok = {"gateway.networking.k8s.io", "Gateway", "ingressgateway", NULL, {0}};
    static struct mg_target_ref tr_no = {"gateway.networking.k8s.io", "Gateway", "elsewhere", NULL, {0}};

    cfg_reset();
    add_rule(add_ra("istio-system"), "root-nosel", jwks_a);
    add_rule(add_ra("gw-ns"), "ns-nosel", jwks_a);
    add_rule(add_ra("other-ns"), "other-ns", jwks_a);
    r = add_ra("gw-ns");
    r->selector = (struct mg_selector){true, {sel_ok, 1}, {0}};
    add_rule(r, "sel-ok", jwks_a);
    r = add_ra("istio-system");
    r->selector = (struct mg_selector){true, {sel_no, 1}, {0}};
    add_rule(r, "sel-no", jwks_a);
    r = add_ra("gw-ns");
    r->target_refs = &tr_ok;
    r->n_target_refs = 1;
    add_rule(r, "tr-ok", jwks_a);
    r = add_ra("gw-ns");
    r->target_refs = &tr_no;
    r->n_target_refs = 1;
    add_rule(r, "tr-no", jwks_a);
    compile();
    is_int(mg_reqauthn_n_rules(ra), 4, "four of seven resources apply");
    /* sorted by issuer */
    is_str(mg_reqauthn_rule_issuer(ra, 0), "ns-nosel", "rules sorted by issuer (0)");
    is_str(mg_reqauthn_rule_issuer(ra, 1), "root-nosel", "rules sorted by issuer (1)");
    is_str(mg_reqauthn_rule_issuer(ra, 2), "sel-ok", "rules sorted by issuer (2)");
    is_str(mg_reqauthn_rule_issuer(ra, 3), "tr-ok", "rules sorted by issuer (3)");
    cfg_free();
}

static void test_default_locations(void)
{
    struct req q;
    char *t = token(ka, "ka", "https://a.example", NULL), *hdr, *path;
    cfg_reset();
    add_rule(add_ra("istio-system"), "https://a.example", jwks_a);
    compile();

    eval(mkreq(&q, "GET", "/p", NULL), NULL);
    is_int(res.status, MG_RA_PASS, "no token: pass without principal");
    ok(res.principal == NULL && res.http_status == 0, "no principal, no status");

    hdr = mg_xasprintf("Bearer %s", t);
    eval(mkreq(&q, "GET", "/p", "authorization", hdr, NULL), NULL);
    is_int(res.status, MG_RA_PASS_PRINCIPAL, "Authorization: Bearer token passes");
    is_str(res.principal, "https://a.example/u1", "principal is iss/sub");
    ok(res.jwt.n_aud == 2 && !strcmp(res.jwt.aud[0], "a1"), "audiences exposed");
    ok(find_edit(&res, MG_RA_REMOVE_HEADER, "authorization") != NULL, "token header removed by default");
    is_int(res.n_space_delimited_claims, 0, "no extra space-delimited claims by default");
    {
        struct mg_attrs a;
        memset(&a, 0, sizeof a);
        mg_reqauthn_attrs(&res, &a);
        ok(a.req_iss && !strcmp(a.req_iss, "https://a.example") && a.req_sub && !strcmp(a.req_sub, "u1") &&
           a.n_audiences == 2 && a.claims == res.jwt.payload, "request.auth attributes for the policy");
    }
    free(hdr);

    hdr = mg_xasprintf("bearer %s", t);
    eval(mkreq(&q, "GET", "/p", "authorization", hdr, NULL), NULL);
    is_int(res.status, MG_RA_PASS, "lower-case 'bearer ' prefix does not match: token missing");
    free(hdr);
    hdr = mg_xasprintf("Bearer %s, trailing", t);
    eval(mkreq(&q, "GET", "/p", "authorization", hdr, NULL), NULL);
    /* Envoy 1.29+: everything after the prefix is the token, not a valid
     * token cut out of a longer value */
    ok(res.status == MG_RA_DENY_401 && res.body &&
           !strcmp(res.body, "Jwt signature is an invalid Base64url encoded"),
       "'Bearer <t>, trailing': the whole rest is the token: 401");
    free(hdr);

    path = mg_xasprintf("/p?x=1&access_token=%s&y=2", t);
    eval(mkreq(&q, "GET", path, NULL), NULL);
    is_int(res.status, MG_RA_PASS_PRINCIPAL, "access_token query parameter passes");
    is_str(res.new_path, "/p?x=1&y=2", "token parameter removed from the path");
    free(path);

    /* Envoy's extractor: the prefix anywhere, non-token characters skipped
     * after it; query names and values percent-decoded */
    {
        static const char *const forms[][2] = { {"Bearer  ", ""}, {"Basic dTpw, Bearer ", ""},
                                                 {"Bearer \"", ""}, {"XBearer ", ""} };
        for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
            hdr = mg_xasprintf("%s%s%s", forms[i][0], t, forms[i][1]);
            eval(mkreq(&q, "GET", "/p", "authorization", hdr, NULL), NULL);
            ok(res.status == MG_RA_PASS_PRINCIPAL &&
               find_edit(&res, MG_RA_REMOVE_HEADER, "authorization") != NULL,
               "'%s<t>%s': token found and the header removed", forms[i][0], forms[i][1]);
            free(hdr);
        }
        hdr = mg_xasprintf("Bearer %s, Bearer x.y.z", t);
        eval(mkreq(&q, "GET", "/p", "authorization", hdr, NULL), NULL);
        is_int(res.status, MG_RA_DENY_401, "a second prefix in the value: its token verified too");
        free(hdr);
        hdr = mg_xasprintf("Bearer \"%s\"", t);
        eval(mkreq(&q, "GET", "/p", "authorization", hdr, NULL), NULL);
        is_int(res.status, MG_RA_DENY_401, "'Bearer \"<t>\"': the closing quote is part of the token: 401");
        free(hdr);
        eval(mkreq(&q, "GET", "/p", "authorization", "Bearer \"\"", NULL), NULL);
        is_int(res.status, MG_RA_DENY_401, "prefix with nothing token-like after it: 401");
        static const char *const qs[] = { "acc%65ss_token", "access%5Ftoken", "access%5ftoken" };
        for (size_t i = 0; i < sizeof qs / sizeof qs[0]; i++) {
            path = mg_xasprintf("/p?%s=%s&y=2", qs[i], t);
            eval(mkreq(&q, "GET", path, NULL), NULL);
            ok(res.status == MG_RA_PASS_PRINCIPAL && res.new_path && !strcmp(res.new_path, "/p?y=2"),
               "?%s=: decoded name, parameter removed", qs[i]);
            free(path);
        }
        eval(mkreq(&q, "GET", "/p?access_token=", NULL), NULL);
        is_int(res.status, MG_RA_DENY_401, "empty access_token: present, 401");
        eval(mkreq(&q, "GET", "/p?access_token", NULL), NULL);
        is_int(res.status, MG_RA_DENY_401, "access_token without a value: present, 401");
        path = mg_xasprintf("/p?access_token=%%22%s%%22", t);
        eval(mkreq(&q, "GET", path, NULL), NULL);
        is_int(res.status, MG_RA_DENY_401, "a decoded value is the whole token (quotes fail)");
        free(path);
    }

    eval(mkreq(&q, "GET", "/p", "authorization", "Bearer not.a.jwt", NULL), NULL);
    is_int(res.status, MG_RA_DENY_401, "garbage token: 401");
    ok(res.body && res.www_authenticate &&
       !strcmp(res.www_authenticate, "Bearer realm=\"https://example.com/p\", error=\"invalid_token\""),
       "www-authenticate with the realm URL (%s)", res.www_authenticate ? res.www_authenticate : "");
    free(t);
    cfg_free();
}

static void test_custom_locations(void)
{
    struct req q;
    char *t = token(ka, "ka", "https://a.example", NULL), *v, *c;
    static struct mg_jwt_header fh = {"x-jwt", "Tok ", {0}};
    static char *cookies[] = {"session"};
    struct mg_jwt_rule *j;

    cfg_reset();
    j = add_rule(add_ra("istio-system"), "https://a.example", jwks_a);
    j->from_headers = &fh;
    j->n_from_headers = 1;
    compile();
    v = mg_xasprintf("Bearer %s", t);
    eval(mkreq(&q, "GET", "/p", "authorization", v, NULL), NULL);
    is_int(res.status, MG_RA_PASS, "custom fromHeaders disables the Authorization default");
    free(v);
    v = mg_xasprintf("/p?access_token=%s", t);
    eval(mkreq(&q, "GET", v, NULL), NULL);
    is_int(res.status, MG_RA_PASS, "custom fromHeaders disables the access_token default");
    free(v);
    eval(mkreq(&q, "GET", "/p", "x-jwt", t, NULL), NULL);
    is_int(res.status, MG_RA_PASS, "header without the exact prefix is not a source");
    v = mg_xasprintf("Tok %s", t);
    eval(mkreq(&q, "GET", "/p", "x-jwt", "Tok", "x-jwt", v, NULL), NULL);
    is_int(res.status, MG_RA_PASS_PRINCIPAL, "second x-jwt value with the prefix passes");
    ok(find_edit(&res, MG_RA_REMOVE_HEADER, "x-jwt") != NULL, "x-jwt removed");
    free(v);
    cfg_free();

    cfg_reset();
    j = add_rule(add_ra("istio-system"), "https://a.example", jwks_a);
    j->from_cookies = (struct mg_slist){cookies, NULL, 1, true};
    compile();
    c = mg_xasprintf("a=b; session=\"%s\"; z=1", t);
    eval(mkreq(&q, "GET", "/p", "cookie", c, NULL), NULL);
    is_int(res.status, MG_RA_PASS_PRINCIPAL, "token from a (quoted) cookie passes");
    {
        const struct mg_ra_edit *e = find_edit(&res, MG_RA_SET_HEADER, "cookie");
        ok(e && !strcmp(e->value, "a=b; z=1"), "cookie token removed, the other cookies kept");
    }
    free(c);
    c = mg_xasprintf("session=%s", t);
    eval(mkreq(&q, "GET", "/p", "cookie", c, NULL), NULL);
    ok(res.status == MG_RA_PASS_PRINCIPAL && find_edit(&res, MG_RA_REMOVE_HEADER, "cookie"),
       "the only cookie: Cookie header removed");
    free(c);
    eval(mkreq(&q, "GET", "/p", "cookie", "session=", NULL), NULL);
    is_int(res.status, MG_RA_DENY_401, "empty session cookie: present, 401");
    c = mg_xasprintf("session=x%s", t);
    eval(mkreq(&q, "GET", "/p", "cookie", c, NULL), NULL);
    is_int(res.status, MG_RA_DENY_401, "cookie value is the whole token");
    free(c);
    c = mg_xasprintf("xsession=%s", t);
    eval(mkreq(&q, "GET", "/p", "cookie", c, NULL), NULL);
    is_int(res.status, MG_RA_PASS, "cookie name must match exactly");
    free(c);
    free(t);
    cfg_free();
}

static void test_issuers_audiences_cors(void)
{
    struct req q;
    static char *auds[] = {"other"};
    char *ta = token(ka, "ka", "https://a.example", NULL), *tb = token(kb, "kb", "https://b.example", NULL);
    char *tc = token(ka, "ka", "https://c.example", NULL), *texp, *h;
    struct mg_jwt_rule *j;

    cfg_reset();
    add_rule(add_ra("istio-system"), "https://a.example", jwks_a);
    add_rule(add_ra("gw-ns"), "https://b.example", jwks_b);
    compile();
    h = mg_xasprintf("Bearer %s", ta);
    eval(mkreq(&q, "GET", "/", "authorization", h, NULL), NULL);
    ok(res.status == MG_RA_PASS_PRINCIPAL && !strcmp(res.issuer, "https://a.example"),
       "issuer A token passes though invalid for B");
    free(h);
    h = mg_xasprintf("Bearer %s", tb);
    eval(mkreq(&q, "GET", "/", "authorization", h, NULL), NULL);
    ok(res.status == MG_RA_PASS_PRINCIPAL && !strcmp(res.principal, "https://b.example/u1"),
       "issuer B token passes though invalid for A");
    free(h);
    h = mg_xasprintf("Bearer %s", tc);
    eval(mkreq(&q, "GET", "/", "authorization", h, NULL), NULL);
    ok(res.status == MG_RA_DENY_401 && !strcmp(res.body, "Jwt issuer is not configured"),
       "token signed by A's key with an unknown issuer: 401 (%s)", res.body ? res.body : "");
    free(h);
    {
        char *hd = mg_ts_header("ES256", "ka");
        char *p = mg_xasprintf("{\"iss\":\"https://a.example\",\"sub\":\"u\",\"exp\":%lld}", (long long)now - 100);
        texp = mg_ts_sign(ka, NULL, 0, "ES256", hd, p);
        free(hd), free(p);
    }
    h = mg_xasprintf("Bearer %s", texp);
    eval(mkreq(&q, "GET", "/", "authorization", h, NULL), NULL);
    ok(res.status == MG_RA_DENY_401 && !strcmp(res.body, "Jwt is expired"), "expired token: 401 Jwt is expired");
    free(h);

    h = mg_xasprintf("Bearer %s", ta);
    eval(mkreq(&q, "OPTIONS", "/", "authorization", "Bearer garbage", "origin", "https://x",
               "access-control-request-method", "POST", NULL), NULL);
    ok(res.status == MG_RA_PASS && res.cors_bypass && !res.principal,
       "CORS preflight skips JWT even with an invalid token");
    eval(mkreq(&q, "OPTIONS", "/", "authorization", "Bearer garbage", "origin", "https://x", NULL), NULL);
    is_int(res.status, MG_RA_DENY_401, "OPTIONS without Access-Control-Request-Method is checked");
    cfg_free();

    cfg_reset();
    j = add_rule(add_ra("istio-system"), "https://a.example", jwks_a);
    j->audiences = (struct mg_slist){auds, NULL, 1, true};
    compile();
    eval(mkreq(&q, "GET", "/", "authorization", h, NULL), NULL);
    ok(res.status == MG_RA_DENY_403 && res.http_status == 403 &&
       !strcmp(res.body, "Audiences in Jwt are not allowed"), "audience mismatch: 403");
    auds[0] = "a2";
    eval(mkreq(&q, "GET", "/", "authorization", h, NULL), NULL);
    is_int(res.status, MG_RA_PASS_PRINCIPAL, "one matching audience passes");
    auds[0] = "other";
    free(h);
    free(ta), free(tb), free(tc), free(texp);
    cfg_free();
}

static void test_outputs(void)
{
    struct req q;
    static struct mg_claim_to_header outs[] = {
        {"X-Sub", "sub", {0}}, {"x-nested", "n.a.b", {0}}, {"x-int", "num", {0}},
        {"x-bool", "flag", {0}}, {"x-obj", "n", {0}}, {"x-missing", "nope", {0}},
        {"x-evil", "evil", {0}},
    };
    char *t = token(ka, "ka", "https://a.example",
                    "\"n\":{\"a\":{\"b\":\"deep\"}},\"num\":42,\"flag\":true,\"evil\":\"a\\r\\nx-admin: 1\"");
    char *h = mg_xasprintf("Bearer %s", t);
    const struct mg_ra_edit *e;
    struct mg_jwt_rule *j;
    size_t n;

    cfg_reset();
    j = add_rule(add_ra("istio-system"), "https://a.example", jwks_a);
    j->output_payload_to_header = "x-jwt-payload";
    j->output_claim_to_headers = outs;
    j->n_output_claim_to_headers = MG_ARRAY_LEN(outs);
    j->forward_original_token = true;
    {
        static char *sdc[] = {"roles", "scope"};
        j->space_delimited_claims = (struct mg_slist){sdc, NULL, 2, true};
    }
    compile();
    mg_reqauthn_rule_output_headers(ra, 0, &n);
    is_int(n, 8, "output header names listed for edge stripping");
    eval(mkreq(&q, "GET", "/", "authorization", h, NULL), NULL);
    is_int(res.status, MG_RA_PASS_PRINCIPAL, "token passes");
    ok(res.n_space_delimited_claims == 1 && !strcmp(res.space_delimited_claims[0], "roles"),
       "the rule's spaceDelimitedClaims (scope is implicit) reach the result");
    ok(!find_edit(&res, MG_RA_REMOVE_HEADER, "authorization"), "forwardOriginalToken keeps the token");
    e = find_edit(&res, MG_RA_SET_HEADER, "x-jwt-payload");
    {
        const char *d1 = strchr(t, '.'), *d2 = strchr(d1 + 1, '.');
        ok(e && strlen(e->value) == (size_t)(d2 - d1 - 1) && !strncmp(e->value, d1 + 1, strlen(e->value)),
           "outputPayloadToHeader carries the payload segment");
    }
    e = find_edit(&res, MG_RA_SET_HEADER, "x-sub");
    ok(e && !strcmp(e->value, "u1"), "string claim to a (lower-cased) header");
    e = find_edit(&res, MG_RA_SET_HEADER, "x-nested");
    ok(e && !strcmp(e->value, "deep"), "nested claim by dots");
    e = find_edit(&res, MG_RA_SET_HEADER, "x-int");
    ok(e && !strcmp(e->value, "42"), "integer claim");
    e = find_edit(&res, MG_RA_SET_HEADER, "x-bool");
    ok(e && !strcmp(e->value, "true"), "boolean claim");
    ok(!find_edit(&res, MG_RA_SET_HEADER, "x-obj"), "object claim gives no header");
    ok(!find_edit(&res, MG_RA_SET_HEADER, "x-missing"), "missing claim gives no header");
    ok(!find_edit(&res, MG_RA_SET_HEADER, "x-evil"), "claim with CR/LF never becomes a header");
    free(h), free(t);
    cfg_free();
}

/* ---- remote key sets through the callback interface ---- */

struct fake_store {
    struct mg_jwks *ks;
    int gets, misses;
    char last_miss[128];
};

static struct mg_jwks *fake_get(void *ctx, const char *uri)
{
    struct fake_store *s = ctx;
    s->gets++;
    return strcmp(uri, "https://keys.example/jwks.json") ? NULL : mg_jwks_ref(s->ks);
}

static void fake_miss(void *ctx, const char *uri)
{
    struct fake_store *s = ctx;
    s->misses++;
    snprintf(s->last_miss, sizeof s->last_miss, "%s", uri);
}

static void test_remote_and_cache(void)
{
    struct req q;
    struct fake_store st = {0};
    struct mg_ra_keys keys = {&st, fake_get, fake_miss};
    char *t = token(ka, "ka", "https://a.example", NULL), *h = mg_xasprintf("Bearer %s", t);
    char *tu = token(ka, "new-kid", "https://a.example", NULL), *hu = mg_xasprintf("Bearer %s", tu);
    struct mg_jwt_rule *j;
    struct mg_diags d = {0};
    bool disc;
    char err[128];

    cfg_reset();
    j = add_rule(add_ra("istio-system"), "https://a.example", NULL);
    j->jwks_uri = "https://keys.example/jwks.json";
    add_rule(add_ra("istio-system"), "https://oidc.example/", NULL);
    compile();
    is_str(mg_reqauthn_rule_uri(ra, 0, &disc, NULL), "https://keys.example/jwks.json", "jwksUri kept");
    ok(!disc, "jwksUri is not discovery");
    is_str(mg_reqauthn_rule_uri(ra, 1, &disc, NULL), "https://oidc.example/.well-known/openid-configuration",
           "no jwks/jwksUri: OIDC discovery URL");
    ok(disc, "discovery flagged");

    eval(mkreq(&q, "GET", "/", "authorization", h, NULL), &keys);
    ok(res.status == MG_RA_DENY_401 && !strcmp(res.body, "Jwks remote fetch is failed"),
       "no key set fetched yet: 401 Jwks remote fetch is failed");
    eval(mkreq(&q, "GET", "/", NULL), &keys);
    is_int(res.status, MG_RA_PASS, "no key set yet, no token: pass");

    st.ks = mg_jwks_parse(jwks_a, strlen(jwks_a), 0, err, sizeof err);
    eval(mkreq(&q, "GET", "/", "authorization", h, NULL), &keys);
    is_int(res.status, MG_RA_PASS_PRINCIPAL, "key set arrived: token passes");
    eval(mkreq(&q, "GET", "/", "authorization", hu, NULL), &keys);
    ok(res.status == MG_RA_DENY_401 && st.misses == 1 && !strcmp(st.last_miss, "https://keys.example/jwks.json"),
       "unknown kid: 401 and an early refetch requested for the URI");
    cfg_free();
    /* A token that another rule accepts is no reason to refetch. */
    cfg_reset();
    j = add_rule(add_ra("istio-system"), "https://a0.example", NULL);  /* sorted before B */
    j->jwks_uri = "https://keys.example/jwks.json";
    add_rule(add_ra("istio-system"), "https://b.example", jwks_b);
    compile();
    {
        char *tb = token(kb, "kb", "https://b.example", NULL), *hb = mg_xasprintf("Bearer %s", tb);
        st.misses = 0;
        st.gets = 0;
        eval(mkreq(&q, "GET", "/", "authorization", hb, NULL), &keys);
        ok(res.status == MG_RA_PASS_PRINCIPAL && st.gets == 1 && st.misses == 0,
           "token accepted by issuer B: no refetch of the other rule's JWKS");
        free(tb), free(hb);
    }
    cfg_free();
    cfg_reset();
    j = add_rule(add_ra("istio-system"), "https://a.example", NULL);
    j->jwks_uri = "https://keys.example/jwks.json";
    compile();

    {
        struct mg_jwt_cache *c = mg_jwt_cache_new(64);
        mg_ra_result_free(&res);
        mg_reqauthn_eval(ra, mkreq(&q, "GET", "/", "authorization", h, NULL), &keys, c, now, &res);
        is_int(res.status, MG_RA_PASS_PRINCIPAL, "pass with a cache");
        is_int(mg_jwt_cache_count(c), 1, "verified token cached");
        mg_ra_result_free(&res);
        mg_reqauthn_eval(ra, mkreq(&q, "GET", "/", "authorization", h, NULL), &keys, c, now, &res);
        ok(res.status == MG_RA_PASS_PRINCIPAL && !strcmp(res.principal, "https://a.example/u1"),
           "cache hit gives the same principal");
        mg_jwt_cache_free(c);
    }
    mg_jwks_unref(st.ks);
    cfg_free();

    /* A bad inline JWKS is a config error and fails closed. */
    cfg_reset();
    add_rule(add_ra("istio-system"), "https://a.example", "{\"keys\":[]}");
    mg_reqauthn_free(ra);
    ra = mg_reqauthn_compile(&cfg, &d);
    ok(d.errors == 1, "invalid inline jwks reported as an error");
    mg_diags_free(&d);
    eval(mkreq(&q, "GET", "/", "authorization", h, NULL), &keys);
    is_int(res.status, MG_RA_DENY_401, "rule with a bad inline jwks rejects tokens");
    cfg_free();
    free(t), free(h), free(tu), free(hu);
}

int main(void)
{
    now = (int64_t)time(NULL);
    ka = mg_ts_genkey("ec256");
    kb = mg_ts_genkey("ed25519");
    char *ja = mg_ts_jwk(ka, "ka", NULL), *jb = mg_ts_jwk(kb, "kb", NULL);
    jwks_a = mg_ts_jwks((const char *[]){ja}, 1);
    jwks_b = mg_ts_jwks((const char *[]){jb}, 1);
    free(ja), free(jb);

    test_scoping();
    test_default_locations();
    test_custom_locations();
    test_issuers_audiences_cors();
    test_outputs();
    test_remote_and_cache();

    mg_ra_result_free(&res);
    mg_reqauthn_free(ra);
    free(jwks_a), free(jwks_b);
    EVP_PKEY_free(ka);
    EVP_PKEY_free(kb);
    (void)tap_plan;
    (void)tap_diag;
    return tap_done();
}
