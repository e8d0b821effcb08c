/* test_authz_index.c - the indexed decision against the linear scan.
 *
 * Random policy sets (every action, dry-run, CUSTOM with a good and a
 * missing provider, hosts/methods/paths/ports and their not* twins with
 * exact, prefix, suffix, presence and template values, several `to` and
 * `from` entries, `when` conditions, rules that never match, creation
 * times that reorder the policies) and random requests (HTTP and TCP,
 * attributes present and absent, hosts in other cases). mg_authz_decide()
 * must give exactly what mg_authz_decide_linear() gives: the verdict, and
 * which policy and rule decided, for every group (CUSTOM, DENY, ALLOW,
 * AUDIT, dry-run). MG_TEST_SEED=N repeats a run. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include "tap.h"
#include "policy/internal.h"

static uint64_t rng_state;

static uint32_t rnd(uint32_t n)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return n ? (uint32_t)(rng_state % n) : 0;
}

static bool chance(uint32_t percent)
{
    return rnd(100) < percent;
}

static struct mg_arena ta;      /* the generated configuration */

static const char *const hosts[] = {
    "a.example.com", "A.Example.com", "b.example.com", "c.test", "a.example.com:8080",
    "a.example.com:*", "*.example.com", "*", "b.*", "c.test:443",
};
static const char *const methods[] = {"GET", "POST", "PUT", "DELETE", "get", "*", "P*", "*T"};
static const char *const paths[] = {
    "/", "/a", "/a/b", "/a/b/c", "/api/v1/items", "/x", "/a*", "/a/*", "/api*", "/*",
    "/api/v1/*", "*/items", "*", "/a/{*}", "/api/{**}", "/{*}/b", "/a/{*}/c", "/a/b*",
    "/api/v1/items*", "/a/{**}", "/bad/{*}.txt",
};
static const char *const ports[] = {"80", "443", "8080", "9090", "notaport"};
static const char *const principals[] = {
    "cluster.local/ns/app/sa/client", "*", "cluster.local/ns/other/*", "*sa/client",
};
static const char *const ips[] = {"127.0.0.1", "10.0.0.0/8", "192.0.2.0/24", "::1", "bad-ip"};
static const char *const users[] = {"alice", "bob", "al*", "*"};

static void pick(struct mg_slist *l, const char *const *from, size_t nfrom, size_t max)
{
    l->n = 1 + rnd((uint32_t)max);
    l->v = mg_arena_zalloc(&ta, l->n * sizeof(*l->v));
    for (size_t i = 0; i < l->n; i++)
        l->v[i] = (char *)from[rnd((uint32_t)nfrom)];
    l->present = true;
}

#define PICK(l, arr, max) pick(l, arr, MG_ARRAY_LEN(arr), max)

/* How often a rule leaves out the keyed fields (so it matches broadly),
 * in percent; and how many numbered hosts and paths a set spreads over (the
 * requests draw from the same numbers, so some of them hit one rule). */
static uint32_t broad, spread;

/* "pre" N "suf" for N below spread; a form is {pre, suf}. */
static void numbered_into(char *buf, size_t cap, const char *const form[2])
{
    snprintf(buf, cap, "%s%u%s", form[0], rnd(spread), form[1]);
}

static char *numbered(const char *const form[2])
{
    char buf[64];
    numbered_into(buf, sizeof(buf), form);
    return mg_arena_strdup(&ta, buf);
}

static void pick_numbered(struct mg_slist *l, const char *const (*forms)[2], size_t nforms)
{
    l->n = 1 + rnd(2);
    l->v = mg_arena_zalloc(&ta, l->n * sizeof(*l->v));
    for (size_t i = 0; i < l->n; i++)
        l->v[i] = numbered(forms[rnd((uint32_t)nforms)]);
    l->present = true;
}

static void gen_operation(struct mg_authz_operation *o)
{
    static const char *const npaths[][2] = {
        {"/s/", ""}, {"/s/", ""}, {"/s/", "/*"}, {"/s/", "/{*}"}, {"/s/", "/{**}"}, {"/s/", "*"},
    };
    static const char *const nhosts[][2] = {
        {"h", ".example.com"}, {"H", ".Example.COM"}, {"h", ".*"},
    };
    uint32_t first = chance(100 - broad) ? rnd(broad ? 4 : 2) : 4;
    if (broad < 10 && chance(85)) {
        /* large sets: mostly rules for one numbered path or host, so that
         * DENY does not decide every request and ALLOW winners show too */
        if (chance(60))
            pick_numbered(&o->paths, npaths, MG_ARRAY_LEN(npaths));
        else
            pick_numbered(&o->hosts, nhosts, MG_ARRAY_LEN(nhosts));
        if (chance(10))
            PICK(&o->methods, methods, 2);
        return;
    }
    if (first == 0 || chance(25)) {
        if (chance(50))
            pick_numbered(&o->paths, npaths, MG_ARRAY_LEN(npaths));
        else
            PICK(&o->paths, paths, 3);
    }
    if (first == 1 || chance(20)) {
        if (chance(50))
            pick_numbered(&o->hosts, nhosts, MG_ARRAY_LEN(nhosts));
        else
            PICK(&o->hosts, hosts, 2);
    }
    if (first == 2 || chance(20))
        PICK(&o->methods, methods, 2);
    if (first == 3 || chance(15))
        PICK(&o->ports, ports, 2);
    if (chance(10))
        PICK(&o->not_paths, paths, 2);
    if (chance(8))
        PICK(&o->not_hosts, hosts, 1);
    if (chance(8))
        PICK(&o->not_methods, methods, 1);
    if (chance(5))
        PICK(&o->not_ports, ports, 1);
}

static void gen_source(struct mg_authz_source *s)
{
    if (chance(40))
        PICK(&s->principals, principals, 2);
    if (chance(15))
        PICK(&s->not_principals, principals, 1);
    if (chance(30))
        PICK(&s->ip_blocks, ips, 2);
    if (chance(10))
        PICK(&s->not_ip_blocks, ips, 1);
    if (chance(10)) {
        static const char *const ns[] = {"app", "other"};
        PICK(&s->namespaces, ns, 1);
    }
}

static void gen_condition(struct mg_authz_condition *w)
{
    switch (rnd(6)) {
    case 0: case 1:
        w->key = "request.headers[x-user]";
        break;
    case 2:
        w->key = "destination.port";
        PICK(&w->values, ports, 2);
        return;
    case 3:
        w->key = "source.ip";
        PICK(&w->values, ips, 2);
        return;
    case 4:
        w->key = "request.headers[:method]";
        PICK(&w->values, methods, 2);
        return;
    default:
        w->key = chance(50) ? "no.such.key" : "request.headers[x-user]";
        break;
    }
    if (chance(70))
        PICK(&w->values, users, 2);
    if (chance(40) || !w->values.n)
        PICK(&w->not_values, users, 1);
}

/* A CUSTOM rule with an identity field makes its policy deny (fail closed):
 * rarely, or that one policy would decide most requests. */
static void gen_rule(struct mg_authz_rule *r, enum mg_authz_action action)
{
    if (chance(100 - broad)) {
        r->has_to = true;
        r->n_to = chance(broad / 8) ? 0 : 1 + rnd(3);
        r->to = mg_arena_zalloc(&ta, (r->n_to + 1) * sizeof(*r->to));
        for (size_t i = 0; i < r->n_to; i++)
            gen_operation(&r->to[i]);
    }
    if (chance(action == MG_ACTION_CUSTOM ? broad / 2 : 30)) {
        r->has_from = true;
        r->n_from = 1 + rnd(2);
        r->from = mg_arena_zalloc(&ta, r->n_from * sizeof(*r->from));
        for (size_t i = 0; i < r->n_from; i++)
            gen_source(&r->from[i]);
    }
    if (chance(30)) {
        r->n_when = 1 + rnd(2);
        r->when = mg_arena_zalloc(&ta, r->n_when * sizeof(*r->when));
        for (size_t i = 0; i < r->n_when; i++)
            gen_condition(&r->when[i]);
    }
}

static void gen_config(struct mg_config *c, size_t n)
{
    static struct mg_ext_provider ext = {.name = "ext"};
    static const char *const ctimes[] = {
        NULL, "2024-01-01T00:00:00Z", "2024-01-01T00:00:00.5Z", "2023-06-01T12:00:00Z",
    };
    memset(c, 0, sizeof(*c));
    c->mesh.root_namespace = "istio-system";
    c->mesh.trust_domain = "cluster.local";
    c->mesh.ext_providers = &ext;
    c->mesh.n_ext_providers = 1;
    c->n_authz_policies = n;
    c->authz_policies = mg_arena_zalloc(&ta, (n + 1) * sizeof(*c->authz_policies));
    for (size_t i = 0; i < n; i++) {
        struct mg_authz_policy *p = &c->authz_policies[i];
        char name[32];
        snprintf(name, sizeof(name), "p%zu", i);
        p->meta.name = mg_arena_strdup(&ta, name);
        p->meta.namespace_ = chance(85) ? "foo" : chance(50) ? "istio-system" : "bar";
        p->meta.doc_index = i;
        p->meta.creation_timestamp = (char *)ctimes[rnd(MG_ARRAY_LEN(ctimes))];
        uint32_t a = rnd(100);
        p->action = a < 40 ? MG_ACTION_ALLOW : a < 75 ? MG_ACTION_DENY :
                    a < 87 ? MG_ACTION_AUDIT : MG_ACTION_CUSTOM;
        if (p->action == MG_ACTION_CUSTOM)
            p->provider = chance(100 - broad / 2) ? "ext" : "missing";
        p->dry_run = chance(10);
        p->has_rules = chance(95);
        p->n_rules = p->has_rules ? rnd(4) : 0;
        p->rules = mg_arena_zalloc(&ta, (p->n_rules + 1) * sizeof(*p->rules));
        for (size_t r = 0; r < p->n_rules; r++)
            gen_rule(&p->rules[r], p->action);
    }
}

static const char *const req_methods[] = {"GET", "POST", "PUT", "DELETE", "get", "PATCH", NULL};
static const char *const req_hosts[] = {
    "a.example.com", "A.EXAMPLE.COM", "b.example.com", "c.test", "a.example.com:8080",
    "c.test:443", "other.org", "", NULL,
};
static const char *const req_paths[] = {
    "/", "/a", "/a/b", "/a/b/c", "/a/x/c", "/api/v1/items", "/api/v1/items/7", "/x", "/x/b",
    "/a/b/items", "", "/ab", NULL,
};
static const uint16_t req_ports[] = {80, 443, 8080, 9090, 0};

struct req {
    struct mg_attrs a;
    struct mg_header h[2];
    char host[64], path[64];
};

static void gen_request(struct req *q)
{
    memset(q, 0, sizeof(*q));
    struct mg_attrs *a = &q->a;
    a->is_http = chance(85);
    a->method = req_methods[rnd(MG_ARRAY_LEN(req_methods))];
    a->host = req_hosts[rnd(MG_ARRAY_LEN(req_hosts))];
    a->path = req_paths[rnd(MG_ARRAY_LEN(req_paths))];
    if (chance(50)) {
        static const char *const hf[][2] = {
            {"h", ".example.com"}, {"H", ".EXAMPLE.com"}, {"h", ".example.com:80"},
        };
        numbered_into(q->host, sizeof(q->host), hf[rnd(3)]);
        a->host = q->host;
    }
    if (chance(50)) {
        static const char *const pf[][2] = {
            {"/s/", ""}, {"/s/", "/x"}, {"/s/", "/x/y"}, {"/s/", "/"}, {"/s/", "x"},
        };
        numbered_into(q->path, sizeof(q->path), pf[rnd(5)]);
        a->path = q->path;
    }
    a->path_len = a->path ? strlen(a->path) : 0;
    a->path_query = a->path;
    a->scheme = "https";
    if (chance(90))
        mg_addr_parse_ip(&a->dest, "127.0.0.1");
    a->dest.port = req_ports[rnd(MG_ARRAY_LEN(req_ports))];
    if (chance(70))
        a->peer_principal = chance(70) ? "cluster.local/ns/app/sa/client" :
                            "cluster.local/ns/other/sa/x";
    mg_addr_parse_ip(&a->source, chance(50) ? "127.0.0.1" : chance(50) ? "10.1.2.3" : "::1");
    a->remote = a->source;
    size_t nh = 0;
    if (chance(60)) {
        const char *u = chance(50) ? "alice" : "bob";
        q->h[nh++] = (struct mg_header){"x-user", 6, u, strlen(u)};
    }
    if (chance(20))
        q->h[nh++] = (struct mg_header){"x-user", 6, "carol", 5};
    a->headers = q->h;
    a->n_headers = nh;
}

static bool match_eq(const struct mg_authz_match *x, const struct mg_authz_match *y)
{
    return x->policy == y->policy && x->action == y->action && x->rule == y->rule;
}

static bool result_eq(const struct mg_authz_result *x, const struct mg_authz_result *y)
{
    return x->decision == y->decision && match_eq(&x->decided_by, &y->decided_by) &&
           x->reason == y->reason && x->custom == y->custom &&
           x->provider_name == y->provider_name && x->provider == y->provider &&
           match_eq(&x->custom_match, &y->custom_match) && x->audit == y->audit &&
           match_eq(&x->audit_match, &y->audit_match) && x->dry_run_deny == y->dry_run_deny &&
           match_eq(&x->dry_run_deny_match, &y->dry_run_deny_match) &&
           x->dry_run_allow == y->dry_run_allow &&
           match_eq(&x->dry_run_allow_match, &y->dry_run_allow_match);
}

static void show(const char *what, const struct mg_authz_result *r)
{
    printf("#   %s: %s by %s#%d custom=%s#%d audit=%s#%d dry_deny=%s#%d dry_allow=%d %s#%d\n",
           what, r->decision == MG_AUTHZ_ALLOW ? "ALLOW" : "DENY",
           r->decided_by.policy ? r->decided_by.policy : "-", r->decided_by.rule,
           r->custom_match.policy ? r->custom_match.policy : "-", r->custom_match.rule,
           r->audit_match.policy ? r->audit_match.policy : "-", r->audit_match.rule,
           r->dry_run_deny_match.policy ? r->dry_run_deny_match.policy : "-",
           r->dry_run_deny_match.rule, r->dry_run_allow,
           r->dry_run_allow_match.policy ? r->dry_run_allow_match.policy : "-",
           r->dry_run_allow_match.rule);
}

static size_t n_compared;

/* Compare n_req random requests on set s; returns the mismatches. */
static size_t compare(const struct mg_policy_set *s, size_t n_req, size_t *denied,
                      size_t *by_rule)
{
    size_t bad = 0;
    for (size_t i = 0; i < n_req; i++) {
        struct req q;
        gen_request(&q);
        struct mg_authz_result ri, rl;
        mg_authz_decide(s, &q.a, &ri);
        mg_authz_decide_linear(s, &q.a, &rl);
        n_compared++;
        *denied += ri.decision == MG_AUTHZ_DENY;
        *by_rule += ri.decided_by.policy != NULL;
        if (!result_eq(&ri, &rl) && bad++ < 3) {
            printf("# mismatch: http=%d method=%s host=%s path=%s port=%u\n", q.a.is_http,
                   q.a.method ? q.a.method : "(none)", q.a.host ? q.a.host : "(none)",
                   q.a.path ? q.a.path : "(none)", q.a.dest.port);
            show("indexed", &ri);
            show("linear ", &rl);
        }
    }
    return bad;
}

static void random_sets(void)
{
    static const size_t sizes[] = {1, 3, 10, 30, 100, 300, 1000, 3000};
    struct mg_workload w = {"gw", "foo", NULL};
    for (size_t k = 0; k < MG_ARRAY_LEN(sizes); k++) {
        size_t bad = 0, denied = 0, by_rule = 0, sets = sizes[k] >= 1000 ? 2 : 12, n_req = 0;
        broad = sizes[k] <= 10 ? 30 : sizes[k] <= 100 ? 6 : sizes[k] <= 300 ? 1 : 0;
        spread = (uint32_t)(sizes[k] / 4 + 4);
        for (size_t t = 0; t < sets; t++) {
            struct mg_config c;
            struct mg_diags d = {0};
            mg_arena_init(&ta, 65536);
            gen_config(&c, sizes[k]);
            struct mg_policy_set *s = mg_policy_compile(&c, &w, &d);
            size_t nr = sizes[k] >= 1000 ? 1500 : 800;
            bad += compare(s, nr, &denied, &by_rule);
            n_req += nr;
            mg_policy_set_free(s);
            /* again with DENY and CUSTOM turned into AUDIT: the ALLOW
             * group's first match then decides and is compared too */
            for (size_t i = 0; i < c.n_authz_policies; i++)
                if (c.authz_policies[i].action != MG_ACTION_ALLOW)
                    c.authz_policies[i].action = MG_ACTION_AUDIT;
            s = mg_policy_compile(&c, &w, &d);
            bad += compare(s, nr, &denied, &by_rule);
            n_req += nr;
            mg_policy_set_free(s);
            mg_diags_free(&d);
            mg_arena_free(&ta);
        }
        ok(bad == 0, "%zu sets of %zu policies, %zu requests (%zu denied, %zu decided by a "
           "rule): indexed == linear", sets, sizes[k], n_req, denied, by_rule);
    }
}

/* One path that more prefix keys match than a decision has lists for: the
 * decision falls back to the linear scan and stays exact. */
static void many_prefixes(void)
{
    struct mg_config c;
    struct mg_diags d = {0};
    struct mg_workload w = {"gw", "foo", NULL};
    char path[160];
    mg_arena_init(&ta, 65536);
    memset(&c, 0, sizeof(c));
    c.n_authz_policies = 100;
    c.authz_policies = mg_arena_zalloc(&ta, 100 * sizeof(*c.authz_policies));
    for (size_t i = 0; i < 100; i++) {
        struct mg_authz_policy *p = &c.authz_policies[i];
        char v[128];
        memset(v, 0, sizeof(v));
        v[0] = '/';
        memset(v + 1, 'a', 100 - i);
        v[101 - i] = '*';
        p->meta.name = mg_arena_strdup(&ta, i == 99 ? "last" : "p");
        p->meta.namespace_ = "foo";
        p->meta.doc_index = i;
        p->action = MG_ACTION_DENY;
        p->has_rules = true;
        p->n_rules = 1;
        p->rules = mg_arena_zalloc(&ta, sizeof(*p->rules));
        p->rules->has_to = true;
        p->rules->n_to = 1;
        p->rules->to = mg_arena_zalloc(&ta, sizeof(*p->rules->to));
        p->rules->to->paths.v = mg_arena_zalloc(&ta, sizeof(char *));
        p->rules->to->paths.v[0] = mg_arena_strdup(&ta, v);
        p->rules->to->paths.n = 1;
        /* the header condition makes all but the last policy miss */
        p->rules->n_when = i == 99 ? 0 : 1;
        p->rules->when = mg_arena_zalloc(&ta, sizeof(*p->rules->when));
        p->rules->when->key = "request.headers[x-never]";
        p->rules->when->values.v = mg_arena_zalloc(&ta, sizeof(char *));
        p->rules->when->values.v[0] = "x";
        p->rules->when->values.n = 1;
    }
    struct mg_policy_set *s = mg_policy_compile(&c, &w, &d);
    memset(path, 'a', sizeof(path));
    path[0] = '/';
    struct mg_attrs a = {.is_http = true, .method = "GET", .host = "h", .path = path,
                         .path_len = sizeof(path)};
    struct mg_ix_list l[MG_IX_MAX_LISTS];
    ok(mg_ix_candidates(&s->ix[0], &a, l, MG_IX_MAX_LISTS) == (size_t)-1,
       "100 matching prefix lengths: more lists than a decision takes");
    struct mg_authz_result ri, rl;
    mg_authz_decide(s, &a, &ri);
    mg_authz_decide_linear(s, &a, &rl);
    ok(result_eq(&ri, &rl) && ri.decision == MG_AUTHZ_DENY && ri.decided_by.rule == 0 &&
       ri.decided_by.policy && strcmp(ri.decided_by.policy, "foo.last") == 0,
       "... decided by the linear scan: DENY by foo.last#0");
    a.path_len = 3;     /* "/aa": two prefix keys */
    ok(mg_ix_candidates(&s->ix[0], &a, l, MG_IX_MAX_LISTS) == 2 + 1,
       "a short path: always + the two prefixes it starts with");
    mg_policy_set_free(s);
    mg_diags_free(&d);
    mg_arena_free(&ta);
}

/* What the index leaves to scan for the benchmark's shape: N DENY rules on
 * exact paths, one ALLOW `rules: [{}]`. */
static void narrows(void)
{
    struct mg_config c;
    struct mg_diags d = {0};
    struct mg_workload w = {"gw", "foo", NULL};
    mg_arena_init(&ta, 65536);
    memset(&c, 0, sizeof(c));
    c.n_authz_policies = 1001;
    c.authz_policies = mg_arena_zalloc(&ta, 1001 * sizeof(*c.authz_policies));
    for (size_t i = 0; i < 1001; i++) {
        struct mg_authz_policy *p = &c.authz_policies[i];
        char v[32];
        snprintf(v, sizeof(v), "/deny/%zu", i);
        p->meta.name = "p";
        p->meta.namespace_ = "foo";
        p->meta.doc_index = i;
        p->action = i < 1000 ? MG_ACTION_DENY : MG_ACTION_ALLOW;
        p->has_rules = true;
        p->n_rules = 1;
        p->rules = mg_arena_zalloc(&ta, sizeof(*p->rules));
        if (i == 1000)
            continue;
        p->rules->has_to = true;
        p->rules->n_to = 1;
        p->rules->to = mg_arena_zalloc(&ta, sizeof(*p->rules->to));
        p->rules->to->paths.v = mg_arena_zalloc(&ta, sizeof(char *));
        p->rules->to->paths.v[0] = mg_arena_strdup(&ta, v);
        p->rules->to->paths.n = 1;
    }
    struct mg_policy_set *s = mg_policy_compile(&c, &w, &d);
    is_int((long long)s->ix[0].n_always, 1, "1 000 exact-path DENY rules: only the ALLOW always");
    is_int((long long)s->ix[1].n_always, 1001, "on TCP the path is dropped: every DENY applies");
    struct mg_attrs a = {.is_http = true, .method = "GET", .host = "h", .path = "/deny/7",
                         .path_len = 7};
    struct mg_authz_result r;
    mg_authz_decide(s, &a, &r);
    ok(r.decision == MG_AUTHZ_DENY && r.decided_by.rule == 0, "/deny/7 is denied");
    a.path = "/deny/77";
    a.path_len = 8;
    mg_authz_decide(s, &a, &r);
    ok(r.decision == MG_AUTHZ_DENY, "/deny/77 is denied");
    a.path = "/other";
    a.path_len = 6;
    mg_authz_decide(s, &a, &r);
    ok(r.decision == MG_AUTHZ_ALLOW, "/other is allowed");
    a.is_http = false;
    mg_authz_decide(s, &a, &r);
    ok(r.decision == MG_AUTHZ_DENY, "a TCP connection is denied (DENY rules lose the path)");
    mg_policy_set_free(s);
    mg_diags_free(&d);
    mg_arena_free(&ta);
}

int main(void)
{
    const char *seed = getenv("MG_TEST_SEED");
    rng_state = seed ? strtoull(seed, NULL, 10) : 0x9e3779b97f4a7c15ULL;
    if (!rng_state)
        rng_state = 1;
    printf("# seed %llu\n", (unsigned long long)rng_state);
    narrows();
    many_prefixes();
    random_sets();
    printf("# %zu decisions compared\n", n_compared);
    return tap_done();
}
