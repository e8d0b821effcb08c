/* authz_bench.c - mg_authz_decide() evaluations per second with N
 * AuthorizationPolicies in the workload's namespace, and with the same N in
 * another namespace (which the compiler must drop: cost stays flat); beside
 * each, the linear scan of every rule (mg_authz_decide_linear, what a
 * decision cost before the rule index). Interleaved rounds, medians.
 * Built and run by contrib/bench/authz.sh; not part of make check.
 *
 * "exact paths": each policy is a DENY on one exact path plus a header
 * condition, and the request matches none of them. One ALLOW policy
 * (rules: [{}]) makes the request pass.
 * "mixed": policy i is one of four kinds, k = i / 4: a DENY on host
 * svc-k.example.com for paths /admin*; an ALLOW on hosts
 * ["svc-k.example.com", "svc-k.example.com:*"] for GET and POST; an ALLOW on
 * the path prefix /api/k/ from namespace app; a DENY on DELETE of
 * /api/k/{*} (a template) unless x-user is admin. The request (GET
 * svc-K.example.com /api/K/items, K = N / 8) is a candidate of a few of
 * them, must get past every DENY and is allowed by a policy in the middle
 * of the set.
 *
 * The GeoIP lines (with a database path as the first argument) add one
 * DENY on source.geo.country [DE] to 10 such policies and count whole
 * decisions as the access phase makes them: the peer's lookup (from the
 * connection's cache, as for every request after the first; or afresh, as
 * for the first request of each new connection), then mg_authz_decide. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>
#include "policy/internal.h"
#include "geoip/geoip.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct built {
    struct mg_config c;
    struct mg_authz_policy *p;
    struct mg_authz_rule *rules;
    struct mg_authz_operation *ops;
    struct mg_authz_condition *conds;
    char **paths, **vals;
    size_t n;
    char *geo_val;
    struct mg_authz_condition geo_cond;
};

static char *xs(const char *fmt, size_t i)
{
    char buf[64];
    snprintf(buf, sizeof(buf), fmt, i);
    return mg_xstrdup(buf);
}

static void build(struct built *b, size_t n, const char *ns, bool geo)
{
    memset(b, 0, sizeof(*b));
    b->n = n;
    b->p = mg_xcalloc(n + 2, sizeof(*b->p));
    b->rules = mg_xcalloc(n + 2, sizeof(*b->rules));
    b->ops = mg_xcalloc(n, sizeof(*b->ops));
    b->conds = mg_xcalloc(n, sizeof(*b->conds));
    b->paths = mg_xcalloc(n, sizeof(char *));
    b->vals = mg_xcalloc(n, sizeof(char *));
    for (size_t i = 0; i < n; i++) {
        struct mg_authz_policy *p = &b->p[i];
        p->meta.name = xs("deny-%zu", i);
        p->meta.namespace_ = (char *)ns;
        p->meta.doc_index = i;
        p->action = MG_ACTION_DENY;
        p->has_rules = true;
        p->rules = &b->rules[i];
        p->n_rules = 1;
        b->paths[i] = xs("/deny/%zu", i);
        b->vals[i] = xs("v%zu", i);
        b->ops[i].paths.v = &b->paths[i];
        b->ops[i].paths.n = 1;
        b->rules[i].has_to = true;
        b->rules[i].to = &b->ops[i];
        b->rules[i].n_to = 1;
        b->conds[i].key = "request.headers[x-user]";
        b->conds[i].values.v = &b->vals[i];
        b->conds[i].values.n = 1;
        b->rules[i].when = &b->conds[i];
        b->rules[i].n_when = 1;
    }
    /* ALLOW rules: [{}] in the workload namespace */
    struct mg_authz_policy *a = &b->p[n];
    a->meta.name = "allow-all";
    a->meta.namespace_ = "foo";
    a->meta.doc_index = n;
    a->has_rules = true;
    a->rules = &b->rules[n];
    a->n_rules = 1;
    b->c.authz_policies = b->p;
    b->c.n_authz_policies = n + 1;
    if (geo) {                          /* DENY when source.geo.country in [DE] */
        struct mg_authz_policy *g = &b->p[n + 1];
        g->meta.name = "deny-de";
        g->meta.namespace_ = "foo";
        g->meta.doc_index = n + 1;
        g->action = MG_ACTION_DENY;
        g->has_rules = true;
        g->rules = &b->rules[n + 1];
        g->n_rules = 1;
        b->geo_val = "DE";
        b->geo_cond.key = "source.geo.country";
        b->geo_cond.values.v = &b->geo_val;
        b->geo_cond.values.n = 1;
        b->rules[n + 1].when = &b->geo_cond;
        b->rules[n + 1].n_when = 1;
        b->c.n_authz_policies = n + 2;
    }
    b->c.mesh.root_namespace = "istio-system";
    b->c.mesh.trust_domain = "cluster.local";
}

static void unbuild(struct built *b)
{
    for (size_t i = 0; i < b->n; i++) {
        free(b->p[i].meta.name);
        free(b->paths[i]);
        free(b->vals[i]);
    }
    free(b->p);
    free(b->rules);
    free(b->ops);
    free(b->conds);
    free(b->paths);
    free(b->vals);
}

/* "mixed" (see the top): everything in one arena, freed at once. */
static char *as(struct mg_arena *ar, const char *pre, size_t k, const char *suf)
{
    char buf[96];
    snprintf(buf, sizeof(buf), "%s%zu%s", pre, k, suf);
    return mg_arena_strdup(ar, buf);
}

static void slist(struct mg_arena *ar, struct mg_slist *l, size_t n, char **v)
{
    l->v = mg_arena_memdup(ar, v, n * sizeof(char *));
    l->n = n;
    l->present = true;
}

static void build_mixed(struct mg_config *c, struct mg_arena *ar, size_t n, const char *ns)
{
    memset(c, 0, sizeof(*c));
    c->authz_policies = mg_arena_zalloc(ar, (n + 1) * sizeof(*c->authz_policies));
    c->n_authz_policies = n;
    for (size_t i = 0; i < n; i++) {
        struct mg_authz_policy *p = &c->authz_policies[i];
        struct mg_authz_rule *r = mg_arena_zalloc(ar, sizeof(*r));
        struct mg_authz_operation *o = mg_arena_zalloc(ar, sizeof(*o));
        size_t k = i / 4;
        p->meta.name = as(ar, "mixed-", i, "");
        p->meta.namespace_ = (char *)ns;
        p->meta.doc_index = i;
        p->has_rules = true;
        p->rules = r;
        p->n_rules = 1;
        r->has_to = true;
        r->to = o;
        r->n_to = 1;
        switch (i % 4) {
        case 0:
            p->action = MG_ACTION_DENY;
            slist(ar, &o->hosts, 1, (char *[]){as(ar, "svc-", k, ".example.com")});
            slist(ar, &o->paths, 1, (char *[]){"/admin*"});
            break;
        case 1:
            p->action = MG_ACTION_ALLOW;
            slist(ar, &o->hosts, 2, (char *[]){as(ar, "svc-", k, ".example.com"),
                                             as(ar, "svc-", k, ".example.com:*")});
            slist(ar, &o->methods, 2, (char *[]){"GET", "POST"});
            break;
        case 2: {
            struct mg_authz_source *f = mg_arena_zalloc(ar, sizeof(*f));
            p->action = MG_ACTION_ALLOW;
            slist(ar, &o->paths, 1, (char *[]){as(ar, "/api/", k, "/*")});
            slist(ar, &f->namespaces, 1, (char *[]){"app"});
            r->has_from = true;
            r->from = f;
            r->n_from = 1;
            break;
        }
        default: {
            struct mg_authz_condition *w = mg_arena_zalloc(ar, sizeof(*w));
            p->action = MG_ACTION_DENY;
            slist(ar, &o->methods, 1, (char *[]){"DELETE"});
            slist(ar, &o->paths, 1, (char *[]){as(ar, "/api/", k, "/{*}")});
            w->key = "request.headers[x-user]";
            slist(ar, &w->not_values, 1, (char *[]){"admin"});
            r->when = w;
            r->n_when = 1;
            break;
        }
        }
    }
    c->mesh.root_namespace = "istio-system";
    c->mesh.trust_domain = "cluster.local";
}

/* mixed: the request goes to service k = n / 8 (a policy in the middle of
 * the set) */
static void request(struct mg_attrs *a, struct mg_header *h, bool mixed, size_t n,
                    char *host, char *path)
{
    memset(a, 0, sizeof(*a));
    a->is_http = true;
    a->method = "GET";
    a->host = "api.example.com";
    a->path = "/api/v1/items";
    if (mixed) {
        snprintf(host, 64, "svc-%zu.example.com", n / 8);
        snprintf(path, 64, "/api/%zu/items", n / 8);
        a->host = host;
        a->path = path;
    }
    a->path_len = strlen(a->path);
    a->headers = h;
    a->n_headers = 3;
    a->peer_principal = "cluster.local/ns/app/sa/client";
    a->dest.port = 443;
    mg_addr_parse_ip(&a->source, "127.0.0.1");
    a->remote = a->source;
}

/* Decisions per second of one set, growing the count until a run takes at
 * least 0.2 s. */
static double measure(const struct mg_policy_set *s, const struct mg_attrs *a, bool linear)
{
    struct mg_authz_result r;
    size_t iters = 256;
    double t0, el;
    unsigned long allowed;
    for (;;) {
        allowed = 0;
        t0 = now_s();
        for (size_t i = 0; i < iters; i++) {
            if (linear)
                mg_authz_decide_linear(s, a, &r);
            else
                mg_authz_decide(s, a, &r);
            allowed += r.decision == MG_AUTHZ_ALLOW;
        }
        el = now_s() - t0;
        if (el >= 0.2 || iters >= ((size_t)1 << 30))
            break;
        iters *= 4;
    }
    if (allowed != iters)
        fprintf(stderr, "unexpected: the request was denied\n");
    return (double)iters / el;
}

enum geo_mode { GEO_NONE, GEO_CACHED, GEO_LOOKUP };

static double run_geo(size_t n, const char *ns, size_t *kept, const struct mg_geoip *db,
                      enum geo_mode mode)
{
    struct built b;
    struct mg_diags d = {0};
    struct mg_kv lab = {"app", "gw", {0}};
    struct mg_kvlist labels = {&lab, 1};
    struct mg_workload w = {"gw", "foo", &labels};
    build(&b, n, ns, mode != GEO_NONE);
    struct mg_policy_set *s = mg_policy_compile(&b.c, &w, &d);
    *kept = mg_policy_set_count(s);

    struct mg_header h[3] = {{"x-user", 6, "alice", 5}, {"accept", 6, "*/*", 3},
                             {"user-agent", 10, "bench", 5}};
    struct mg_attrs a;
    char host[64], path[64];
    request(&a, h, false, n, host, path);
    struct mg_geo_cache cache;
    memset(&cache, 0, sizeof(cache));

    struct mg_authz_result r;
    size_t iters = 1000;
    double t0, el;
    unsigned long allowed = 0;
    for (;;) {     /* grow until one run takes at least 0.2 s */
        t0 = now_s();
        for (size_t i = 0; i < iters; i++) {
            if (mode != GEO_NONE) {
                struct mg_geo gs, gr;
                if (mode == GEO_LOOKUP)
                    cache.source_done = cache.remote_done = false;   /* a new connection */
                mg_geoip_lookup_cached(db, &cache, &a.source, &a.remote, &gs, &gr);
                memcpy(a.source_country, gs.country, 3);
                a.source_asn = gs.asn;
                memcpy(a.remote_country, gr.country, 3);
                a.remote_asn = gr.asn;
            }
            mg_authz_decide(s, &a, &r);
            allowed += r.decision == MG_AUTHZ_ALLOW;
        }
        el = now_s() - t0;
        if (el >= 0.2 || iters >= ((size_t)1 << 30))
            break;
        iters *= 4;
    }
    if (allowed == 0)
        fprintf(stderr, "unexpected: the request was denied\n");
    mg_policy_set_free(s);
    mg_diags_free(&d);
    unbuild(&b);
    return (double)iters / el;
}

/* One line of the curve: shape, namespace, N -> the compiled set (and its
 * compile time), then indexed and linear rates. */
enum shape { SHAPE_EXACT, SHAPE_MIXED };

static void run_line(enum shape shape, size_t n, const char *ns, bool linear_first, size_t *kept,
                     double *ms, double *indexed, double *linear)
{
    struct mg_diags d = {0};
    struct mg_kv lab = {"app", "gw", {0}};
    struct mg_kvlist labels = {&lab, 1};
    struct mg_workload w = {"gw", "foo", &labels};
    struct mg_header h[3] = {{"x-user", 6, "alice", 5}, {"accept", 6, "*/*", 3},
                             {"user-agent", 10, "bench", 5}};
    struct mg_attrs a;
    struct built b;
    struct mg_arena ar;
    struct mg_config *c;
    mg_arena_init(&ar, 65536);
    if (shape == SHAPE_EXACT) {
        build(&b, n, ns, false);
        c = &b.c;
    } else {
        c = mg_arena_zalloc(&ar, sizeof(*c));
        build_mixed(c, &ar, n, ns);
    }
    double t0 = now_s();
    struct mg_policy_set *s = mg_policy_compile(c, &w, &d);
    *ms = (now_s() - t0) * 1e3;
    *kept = mg_policy_set_count(s);
    char host[64], path[64];
    request(&a, h, shape == SHAPE_MIXED, n, host, path);
    if (linear_first)       /* alternate, so that neither gets the warmer caches */
        *linear = measure(s, &a, true);
    *indexed = measure(s, &a, false);
    if (!linear_first)
        *linear = measure(s, &a, true);
    mg_policy_set_free(s);
    mg_diags_free(&d);
    if (shape == SHAPE_EXACT)
        unbuild(&b);
    mg_arena_free(&ar);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(double), cmp_double);
    return v[n / 2];
}

int main(int argc, char **argv)
{
    static const size_t sizes[] = {10, 1000, 10000};
    static const struct { enum shape shape; const char *ns, *label; } lines[] = {
        {SHAPE_EXACT, "foo", "exact paths, workload's (foo)"},
        {SHAPE_EXACT, "bar", "exact paths, another (bar)"},
        {SHAPE_MIXED, "foo", "mixed, workload's (foo)"},
    };
    enum { NS = 3, NL = 3, ROUNDS = 5 };
    double idx[NL][NS][ROUNDS], lin[NL][NS][ROUNDS], ms[NL][NS][ROUNDS];
    size_t kept[NL][NS];
    /* interleaved rounds: a busy machine slows every line alike */
    for (int r = 0; r < ROUNDS; r++)
        for (int l = 0; l < NL; l++)
            for (int i = 0; i < NS; i++)
                run_line(lines[l].shape, sizes[i], lines[l].ns, r % 2, &kept[l][i], &ms[l][i][r],
                         &idx[l][i][r], &lin[l][i][r]);
    printf("decisions/s, median of %d interleaved rounds (min-max); linear = every rule "
           "tested in order\n", ROUNDS);
    printf("%-8s %-31s %6s %10s %26s %14s %8s\n", "policies", "shape, namespace", "kept",
           "compile ms", "indexed (min-max)", "linear", "speedup");
    for (int l = 0; l < NL; l++) {
        for (int i = 0; i < NS; i++) {
            double mi = median(idx[l][i], ROUNDS), ml = median(lin[l][i], ROUNDS);
            char range[64];
            snprintf(range, sizeof(range), "%.0f (%.0f-%.0f)", mi, idx[l][i][0],
                     idx[l][i][ROUNDS - 1]);
            printf("%-8zu %-31s %6zu %10.1f %26s %14.0f %7.1fx\n", sizes[i], lines[l].label,
                   kept[l][i], median(ms[l][i], ROUNDS), range, ml, mi / ml);
        }
    }
    if (argc < 2)
        return 0;
    char err[512];
    struct mg_geoip *db = mg_geoip_open(argv[1], err, sizeof(err));
    if (!db) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    /* interleaved rounds, medians: a busy machine slows all three alike */
    enum { GROUNDS = 7 };
    double v[3][GROUNDS];
    size_t k;
    for (int r = 0; r < GROUNDS; r++)
        for (int m = 0; m < 3; m++)
            v[m][r] = run_geo(10, "foo", &k, db, (enum geo_mode)m);
    double med[3];
    for (int m = 0; m < 3; m++)
        med[m] = median(v[m], GROUNDS);
    printf("\n%-40s %16s %8s\n", "10 policies, GeoIP (median of 7)", "decisions/s", "ratio");
    printf("%-40s %16.0f %8.2f\n", "no geo condition", med[0], 1.0);
    printf("%-40s %16.0f %8.2f\n", "+ DENY source.geo.country (cached)", med[1], med[1] / med[0]);
    printf("%-40s %16.0f %8.2f\n", "+ DENY source.geo.country (new conn)", med[2], med[2] / med[0]);
    mg_geoip_unref(db);
    return 0;
}
