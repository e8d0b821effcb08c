/* fuzz_policy_ref.c - the authorization decision against a slow reference
 * written straight from Istio's AuthorizationPolicy semantics, on policies
 * and requests generated from the fuzz input (so every input is a valid
 * configuration): 1-3 policies, ALLOW or DENY, 1-2 rules each, with
 * source.principals / notPrincipals and operation.methods / notMethods /
 * paths / notPaths drawn from small pools of exact, prefix ("x*"), suffix
 * ("*x") and "*" values, and a request (method, path, peer principal) from
 * pools that hit and miss them.
 *
 * The reference: a DENY policy that matches denies; otherwise, when any
 * ALLOW policy exists, the request is allowed only if one matches; with
 * none, it is allowed. A policy matches when one of its rules does; a rule
 * when every part present matches (from: one source; to: one operation);
 * a source or operation when every field present matches: a positive list
 * when one value matches, a not-list when none does. A value matches
 * exactly, "x*" by prefix, "*x" by suffix, "*" anything non-empty.
 *
 * With --enable-fuzzing this is a libFuzzer target; otherwise
 * (MG_FUZZ_STANDALONE) it replays the files named on argv, or runs a
 * deterministic mutation loop from a few seeds, printing TAP. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "config/config.h"
#include "policy/policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const principal_pool[] = {
    "td/ns/a/sa/x", "td/ns/a/*", "*/sa/x", "*", "td/ns/b/sa/y", "*/y",
};
static const char *const path_pool[] = { "/a", "/a/*", "*/b", "*", "/a/b", "/b", "/a*" };
static const char *const method_pool[] = { "GET", "POST", "G*", "*T" };
static const char *const req_paths[] = { "/a", "/a/b", "/b", "/a/", "/ab", "/b/b", "/c" };
static const char *const req_methods[] = { "GET", "POST", "PUT" };
static const char *const req_principals[] = { "td/ns/a/sa/x", "td/ns/b/sa/y", "td/ns/a/sa/z" };

#define N(a) (sizeof(a) / sizeof((a)[0]))
#define MAXP 3
#define MAXR 2
#define MAXV 3

struct list {
    bool present;
    int n;
    const char *v[MAXV];
};
struct rule {
    bool has_from, has_to;
    struct list principals, not_principals;
    struct list methods, not_methods, paths, not_paths;
};
struct policy {
    bool deny;
    int n_rules;
    struct rule rules[MAXR];
};

struct in {
    const uint8_t *p;
    size_t n;
};
static unsigned take(struct in *in)
{
    if (!in->n)
        return 0;
    in->n--;
    return *in->p++;
}

static void gen_list(struct in *in, struct list *l, const char *const *pool, size_t pn)
{
    l->present = take(in) % 3 == 0;
    if (!l->present)
        return;
    l->n = 1 + (int)(take(in) % MAXV);
    for (int i = 0; i < l->n; i++)
        l->v[i] = pool[take(in) % pn];
}

static bool value_match(const char *pat, const char *s)
{
    size_t pl = strlen(pat), sl = strlen(s);
    if (strcmp(pat, "*") == 0)
        return sl > 0;
    if (pl > 1 && pat[pl - 1] == '*')
        return sl >= pl - 1 && memcmp(s, pat, pl - 1) == 0;
    if (pl > 1 && pat[0] == '*')
        return sl >= pl - 1 && memcmp(s + sl - (pl - 1), pat + 1, pl - 1) == 0;
    return strcmp(pat, s) == 0;
}

static bool list_any(const struct list *l, const char *s)
{
    for (int i = 0; i < l->n; i++)
        if (value_match(l->v[i], s))
            return true;
    return false;
}

/* a present positive list needs a match, a present not-list none */
static bool field_ok(const struct list *pos, const struct list *neg, const char *s)
{
    return (!pos->present || list_any(pos, s)) && (!neg->present || !list_any(neg, s));
}

static bool rule_match(const struct rule *r, const char *method, const char *path, const char *principal)
{
    if (r->has_from && !field_ok(&r->principals, &r->not_principals, principal))
        return false;
    if (r->has_to && !(field_ok(&r->methods, &r->not_methods, method) &&
                       field_ok(&r->paths, &r->not_paths, path)))
        return false;
    return true;
}

static bool reference_allows(const struct policy *ps, int np, const char *m, const char *p, const char *pr)
{
    bool any_allow = false, allow_match = false;
    for (int i = 0; i < np; i++) {
        bool match = false;
        for (int k = 0; k < ps[i].n_rules; k++)
            match = match || rule_match(&ps[i].rules[k], m, p, pr);
        if (ps[i].deny && match)
            return false;
        if (!ps[i].deny) {
            any_allow = true;
            allow_match = allow_match || match;
        }
    }
    return !any_allow || allow_match;
}

static void put_list(struct mg_buf *b, const char *key, const struct list *l)
{
    if (!l->present)
        return;
    mg_buf_printf(b, " %s: [", key);
    for (int i = 0; i < l->n; i++)
        mg_buf_printf(b, "%s\"%s\"", i ? ", " : "", l->v[i]);
    mg_buf_printf(b, "],");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct in in = { data, size };
    struct policy ps[MAXP];
    memset(ps, 0, sizeof(ps));
    int np = 1 + (int)(take(&in) % MAXP);
    struct mg_buf y = { 0 };
    mg_buf_printf(&y, "apiVersion: meshgate.io/v1alpha1\nkind: MeshConfig\nspec: {trustDomain: td}\n");
    for (int i = 0; i < np; i++) {
        struct policy *p = &ps[i];
        p->deny = take(&in) & 1;
        p->n_rules = 1 + (int)(take(&in) % MAXR);
        mg_buf_printf(&y, "---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n"
                      "metadata: {name: p%d, namespace: default}\nspec:\n  action: %s\n  rules:\n",
                      i, p->deny ? "DENY" : "ALLOW");
        for (int k = 0; k < p->n_rules; k++) {
            struct rule *r = &p->rules[k];
            gen_list(&in, &r->principals, principal_pool, N(principal_pool));
            gen_list(&in, &r->not_principals, principal_pool, N(principal_pool));
            gen_list(&in, &r->methods, method_pool, N(method_pool));
            gen_list(&in, &r->not_methods, method_pool, N(method_pool));
            gen_list(&in, &r->paths, path_pool, N(path_pool));
            gen_list(&in, &r->not_paths, path_pool, N(path_pool));
            r->has_from = r->principals.present || r->not_principals.present;
            r->has_to = r->methods.present || r->not_methods.present || r->paths.present ||
                        r->not_paths.present;
            mg_buf_printf(&y, "  - {");
            if (r->has_from) {
                mg_buf_printf(&y, "from: [{source: {");
                put_list(&y, "principals", &r->principals);
                put_list(&y, "notPrincipals", &r->not_principals);
                mg_buf_printf(&y, "}}],");
            }
            if (r->has_to) {
                mg_buf_printf(&y, "to: [{operation: {");
                put_list(&y, "methods", &r->methods);
                put_list(&y, "notMethods", &r->not_methods);
                put_list(&y, "paths", &r->paths);
                put_list(&y, "notPaths", &r->not_paths);
                mg_buf_printf(&y, "}}],");
            }
            mg_buf_printf(&y, "}\n");
        }
    }
    struct mg_diags d = { 0 };
    struct mg_config *c = mg_config_load_buffer("ref.yaml", y.p, y.len, &d);
    if (!c) {
        mg_diags_print(&d, stderr);
        fprintf(stderr, "fuzz_policy_ref: a generated configuration was refused:\n%s\n", y.p);
        abort();
    }
    struct mg_policy_set *s = mg_policy_compile(c, NULL, &d);
    for (int q = 0; q < 4; q++) {
        const char *m = req_methods[take(&in) % N(req_methods)];
        const char *p = req_paths[take(&in) % N(req_paths)];
        const char *pr = req_principals[take(&in) % N(req_principals)];
        struct mg_attrs a;
        memset(&a, 0, sizeof(a));
        a.is_http = true;
        a.method = m;
        a.scheme = "https";
        a.host = "h.example";
        a.path = p;
        a.path_len = strlen(p);
        a.path_query = p;
        a.dest.port = 443;
        a.peer_principal = pr;
        struct mg_authz_result r;
        mg_authz_decide(s, &a, &r);
        bool want = reference_allows(ps, np, m, p, pr);
        if (want != (r.decision == MG_AUTHZ_ALLOW)) {
            fprintf(stderr, "fuzz_policy_ref: %s %s from %s: reference %s, engine %s\n%s\n", m, p, pr,
                    want ? "ALLOW" : "DENY", r.decision == MG_AUTHZ_ALLOW ? "ALLOW" : "DENY", y.p);
            abort();
        }
    }
    mg_policy_set_free(s);
    mg_config_free(c);
    mg_diags_free(&d);
    mg_buf_free(&y);
    return 0;
}

#ifdef MG_FUZZ_STANDALONE
#include "standalone.h"

int main(int argc, char **argv)
{
    static uint8_t buf[256];
    if (argc > 1)
        return mg_fuzz_replay(argc, argv, buf, sizeof(buf));
    /* every input is valid, so random bytes are as good as mutations */
    uint32_t st = 0x2545f491u;
    long n = 20000;
    for (long it = 0; it < n; it++) {
        for (size_t i = 0; i < 96; i++) {
            st ^= st << 13;
            st ^= st >> 17;
            st ^= st << 5;
            buf[i] = (uint8_t)st;
        }
        LLVMFuzzerTestOneInput(buf, 96);
    }
    printf("ok 1 - %ld generated policy sets agree with the reference\n1..1\n", n);
    return 0;
}
#endif
