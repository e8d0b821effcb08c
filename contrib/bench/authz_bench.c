/* authz_bench.c - mg_authz_decide() evaluations per second with N
 * AuthorizationPolicies in the workload's namespace, and with the same N in
 * another namespace (which the compiler must drop: cost stays flat).
 * Built and run by contrib/bench/authz.sh; not part of make check.
 *
 * Each policy is a DENY on one exact path plus a header condition, and the
 * request matches none of them, so every kept policy is evaluated. One
 * ALLOW policy (rules: [{}]) makes the request pass.
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
#include "policy/policy.h"
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
    memset(&a, 0, sizeof(a));
    a.is_http = true;
    a.method = "GET";
    a.host = "api.example.com";
    a.path = "/api/v1/items";
    a.path_len = strlen(a.path);
    a.headers = h;
    a.n_headers = 3;
    a.peer_principal = "cluster.local/ns/app/sa/client";
    a.dest.port = 443;
    mg_addr_parse_ip(&a.source, "127.0.0.1");
    a.remote = a.source;
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

static double run(size_t n, const char *ns, size_t *kept)
{
    return run_geo(n, ns, kept, NULL, GEO_NONE);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    static const size_t sizes[] = {10, 1000, 10000};
    printf("%-10s %-22s %8s %16s\n", "policies", "namespace", "kept", "decisions/s");
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        size_t kept;
        double own = run(sizes[i], "foo", &kept);
        printf("%-10zu %-22s %8zu %16.0f\n", sizes[i], "workload's (foo)", kept, own);
        double other = run(sizes[i], "bar", &kept);
        printf("%-10zu %-22s %8zu %16.0f\n", sizes[i], "another (bar)", kept, other);
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
    enum { ROUNDS = 7 };
    double v[3][ROUNDS];
    size_t kept;
    for (int r = 0; r < ROUNDS; r++)
        for (int m = 0; m < 3; m++)
            v[m][r] = run_geo(10, "foo", &kept, db, (enum geo_mode)m);
    double med[3];
    for (int m = 0; m < 3; m++) {
        qsort(v[m], ROUNDS, sizeof(double), cmp_double);
        med[m] = v[m][ROUNDS / 2];
    }
    printf("\n%-40s %16s %8s\n", "10 policies, GeoIP (median of 7)", "decisions/s", "ratio");
    printf("%-40s %16.0f %8.2f\n", "no geo condition", med[0], 1.0);
    printf("%-40s %16.0f %8.2f\n", "+ DENY source.geo.country (cached)", med[1], med[1] / med[0]);
    printf("%-40s %16.0f %8.2f\n", "+ DENY source.geo.country (new conn)", med[2], med[2] / med[0]);
    mg_geoip_unref(db);
    return 0;
}
