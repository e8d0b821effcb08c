/* test_authz.c - data-driven AuthorizationPolicy tests.
 *
 * Every .cases file in tests/unit/data/policy holds cases:
 *
 *   @@ case NAME
 *   <YAML documents, loaded with mg_config_load_buffer; a default Proxy
 *    (gw, namespace foo, labels app=gw version=v1) is added when none is given>
 *   @@ requests
 *   EXPECT [key=value ...]      one request per line, '#' starts a comment
 *
 * EXPECT is ALLOW, DENY or BAD (path normalization refuses, 400), optionally
 * followed by @ns.name#rule (the deciding policy and rule) or @- (no deciding
 * policy: default allow / default deny). Request keys: method, host, path
 * (raw target, normalized per the case's MeshConfig as the data plane does),
 * header=name:value (repeatable), src, remote, dst, port, sni, peer (peer
 * principal), iss, sub, aud (repeatable), azp, claims (JSON), sdc (a
 * space-delimited claim name, repeatable), tcp (flag), scc/sasn and
 * rcc/rasn (the GeoIP country and AS number of source and remote). Expectation keys:
 * custom=PROVIDER|-, audit=ns.name#rule|-, dryd=ns.name#rule|- (dry-run
 * deny), drya=1|0|-1 (dry-run allow outcome). Values may be single-quoted.
 * Defaults: GET, host example.com, path /, HTTP. Each request is also run
 * through mg_authz_explain(), which must agree with mg_authz_decide(). */
#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>
#include "config/config.h"
#include "route/route.h"
#include "policy/policy.h"
#include "tap.h"

#ifndef MG_POLICY_DATA
#define MG_POLICY_DATA "tests/unit/data/policy"
#endif

static const char default_proxy[] =
    "---\napiVersion: meshgate.io/v1alpha1\nkind: Proxy\n"
    "metadata:\n  name: gw\n  namespace: foo\n  labels:\n    app: gw\n    version: v1\n"
    "spec:\n  mode: gateway\n";

#define MAXV 16

struct req {
    struct mg_attrs a;
    struct mg_header hdr[MAXV];
    const char *aud[MAXV], *sdc[MAXV];
    char target[512], norm[512];
    json_t *claims;
    /* expectations */
    int want;                   /* 0 allow, 1 deny, 2 bad */
    bool check_by;
    char by[160];               /* "" = no deciding policy */
    int by_rule;
    const char *custom, *audit, *dryd, *drya;
};

/* Split a line into tokens in place; single quotes group. */
static size_t tokenize(char *s, char **tok, size_t max)
{
    size_t n = 0;
    while (*s && n < max) {
        while (*s == ' ' || *s == '\t')
            s++;
        if (!*s || *s == '#')
            break;
        char *o = s, *start = s;
        while (*s && *s != ' ' && *s != '\t') {
            if (*s == '\'') {
                s++;
                while (*s && *s != '\'')
                    *o++ = *s++;
                if (*s)
                    s++;
            } else {
                *o++ = *s++;
            }
        }
        if (*s)
            s++;
        *o = 0;
        tok[n++] = start;
    }
    return n;
}

static int parse_match(const char *v, char *name, size_t cap, int *rule)
{
    const char *h = strrchr(v, '#');
    if (strcmp(v, "-") == 0) {
        name[0] = 0;
        *rule = -1;
        return 0;
    }
    if (!h || (size_t)(h - v) >= cap)
        return -1;
    memcpy(name, v, (size_t)(h - v));
    name[h - v] = 0;
    *rule = atoi(h + 1);
    return 0;
}

static const char *fmt_match(const struct mg_authz_match *m, char *buf, size_t cap)
{
    if (!m->policy)
        return "-";
    snprintf(buf, cap, "%s#%d", m->policy, m->rule);
    return buf;
}

static int build(struct req *q, char **tok, size_t n, const struct mg_config *c)
{
    struct mg_attrs *a = &q->a;
    const char *path = "/";
    char *e = tok[0], *at = strchr(e, '@');
    if (at)
        *at++ = 0;
    if (strcmp(e, "ALLOW") == 0)
        q->want = 0;
    else if (strcmp(e, "DENY") == 0)
        q->want = 1;
    else if (strcmp(e, "BAD") == 0)
        q->want = 2;
    else
        return -1;
    if (at) {
        q->check_by = true;
        if (parse_match(at, q->by, sizeof(q->by), &q->by_rule) < 0)
            return -1;
    }
    a->is_http = true;
    a->method = "GET";
    a->host = "example.com";
    for (size_t i = 1; i < n; i++) {
        char *k = tok[i], *v = strchr(k, '=');
        if (strcmp(k, "tcp") == 0) {
            a->is_http = false;
            continue;
        }
        if (!v)
            return -1;
        *v++ = 0;
        if (strcmp(k, "method") == 0) a->method = v;
        else if (strcmp(k, "host") == 0) a->host = v;
        else if (strcmp(k, "path") == 0) path = v;
        else if (strcmp(k, "sni") == 0) a->sni = v;
        else if (strcmp(k, "peer") == 0) a->peer_principal = v;
        else if (strcmp(k, "iss") == 0) a->req_iss = v;
        else if (strcmp(k, "sub") == 0) a->req_sub = v;
        else if (strcmp(k, "azp") == 0) a->presenter = v;
        else if (strcmp(k, "custom") == 0) q->custom = v;
        else if (strcmp(k, "audit") == 0) q->audit = v;
        else if (strcmp(k, "dryd") == 0) q->dryd = v;
        else if (strcmp(k, "drya") == 0) q->drya = v;
        else if (strcmp(k, "aud") == 0 && a->n_audiences < MAXV) q->aud[a->n_audiences++] = v;
        else if (strcmp(k, "sdc") == 0 && a->n_space_delimited_claims < MAXV)
            q->sdc[a->n_space_delimited_claims++] = v;
        else if (strcmp(k, "header") == 0 && a->n_headers < MAXV) {
            char *colon = strchr(v, ':');
            if (!colon)
                return -1;
            *colon = 0;
            q->hdr[a->n_headers++] = (struct mg_header){v, strlen(v), colon + 1, strlen(colon + 1)};
        } else if (strcmp(k, "src") == 0) {
            if (mg_addr_parse_ip(&a->source, v) < 0)
                return -1;
        } else if (strcmp(k, "remote") == 0) {
            if (mg_addr_parse_ip(&a->remote, v) < 0)
                return -1;
        } else if (strcmp(k, "scc") == 0 || strcmp(k, "rcc") == 0) {
            if (strlen(v) > 2)
                return -1;
            memcpy(k[0] == 's' ? a->source_country : a->remote_country, v, strlen(v) + 1);
        } else if (strcmp(k, "sasn") == 0) {
            a->source_asn = (uint32_t)strtoul(v, NULL, 10);
        } else if (strcmp(k, "rasn") == 0) {
            a->remote_asn = (uint32_t)strtoul(v, NULL, 10);
        } else if (strcmp(k, "dst") == 0) {
            uint16_t p = a->dest.port;
            if (mg_addr_parse_ip(&a->dest, v) < 0)
                return -1;
            a->dest.port = p;
        } else if (strcmp(k, "port") == 0) {
            if (mg_parse_port(v, true, &a->dest.port) < 0)
                return -1;
        } else if (strcmp(k, "claims") == 0) {
            json_error_t err;
            q->claims = json_loads(v, 0, &err);
            if (!q->claims)
                return -1;
            a->claims = q->claims;
        } else {
            return -1;
        }
    }
    a->headers = q->hdr;
    a->audiences = q->aud;
    a->space_delimited_claims = q->sdc;
    snprintf(q->target, sizeof(q->target), "%s", path);
    size_t olen, plen;
    if (mg_path_normalize(q->target, strlen(q->target), c->mesh.path_normalization, q->norm,
                          sizeof(q->norm), &olen, &plen) < 0)
        return 1;
    a->path = q->norm;
    a->path_len = plen;
    return 0;
}

static int n_requests;

static void check_request(const char *where, const struct mg_policy_set *s, struct req *q, int built)
{
    char b1[200], b2[200];
    n_requests++;
    if (built == 1 || q->want == 2) {
        is_int(built, q->want == 2 ? 1 : 0, "%s: path '%s' %s by normalization", where, q->target,
               q->want == 2 ? "refused" : "accepted");
        return;
    }
    struct mg_authz_result r, r2;
    mg_authz_decide(s, &q->a, &r);
    if (!ok((int)r.decision == q->want, "%s: %s", where, q->want ? "DENY" : "ALLOW"))
        printf("#   got %s by %s\n", r.decision ? "DENY" : "ALLOW", fmt_match(&r.decided_by, b1, sizeof(b1)));
    if (q->check_by) {
        snprintf(b2, sizeof(b2), "%s#%d", q->by, q->by_rule);
        is_str(fmt_match(&r.decided_by, b1, sizeof(b1)), q->by[0] ? b2 : "-", "%s:   decided by", where);
    }
    if (q->custom)
        is_str(r.custom ? r.provider_name : "-", q->custom, "%s:   custom provider", where);
    if (q->audit)
        is_str(fmt_match(&r.audit_match, b1, sizeof(b1)), q->audit, "%s:   audit", where);
    if (q->dryd)
        is_str(fmt_match(&r.dry_run_deny_match, b1, sizeof(b1)), q->dryd, "%s:   dry-run deny", where);
    if (q->drya)
        is_int(r.dry_run_allow, atoi(q->drya), "%s:   dry-run allow", where);

    /* The explainer runs the same evaluation. */
    size_t n = mg_policy_set_count(s);
    struct mg_authz_trace *t = calloc(n + 1, sizeof(*t));
    mg_authz_explain(s, &q->a, &r2, t);
    bool same = r2.decision == r.decision && r2.decided_by.policy == r.decided_by.policy &&
                r2.decided_by.rule == r.decided_by.rule && r2.custom == r.custom &&
                r2.audit == r.audit;
    for (size_t i = 0; i < n && r.decided_by.policy; i++)
        if (t[i].policy == r.decided_by.policy && t[i].rule != r.decided_by.rule)
            same = false;
    if (!same)
        ok(0, "%s:   explain agrees with decide", where);
    free(t);
}

static void free_req(struct req *q)
{
    if (q->claims)
        json_decref(q->claims);
}

static void run_case(const char *file, const char *name, int line, struct mg_buf *yaml,
                     char **reqs, int *req_lines, size_t nreq)
{
    struct mg_diags d = {0};
    char where[300];
    if (!strstr(yaml->p ? yaml->p : "", "kind: Proxy"))
        mg_buf_adds(yaml, default_proxy);
    struct mg_config *c = mg_config_load_buffer(file, yaml->p ? yaml->p : "", yaml->len, &d);
    if (!ok(c != NULL, "%s:%d: case '%s' loads", file, line, name)) {
        mg_diags_print(&d, stdout);
        mg_diags_free(&d);
        return;
    }
    struct mg_policy_set *s = mg_policy_compile(c, NULL, &d);
    for (size_t i = 0; i < nreq; i++) {
        char *tok[64];
        size_t nt = tokenize(reqs[i], tok, 64);
        struct req q;
        if (nt == 0)
            continue;
        memset(&q, 0, sizeof(q));
        snprintf(where, sizeof(where), "%s:%d [%s]", strrchr(file, '/') + 1, req_lines[i], name);
        int b = build(&q, tok, nt, c);
        if (b < 0)
            ok(0, "%s: request line parses", where);
        else
            check_request(where, s, &q, b);
        free_req(&q);
    }
    mg_policy_set_free(s);
    mg_config_free(c);
    mg_diags_free(&d);
}

static void run_file(const char *path)
{
    size_t len;
    char *data = mg_read_file(path, 1 << 22, &len);
    if (!ok(data != NULL, "read %s", path))
        return;
    struct mg_buf yaml = {0};
    char *reqs[512];
    int req_lines[512];
    size_t nreq = 0;
    char name[200] = "";
    int case_line = 0, lineno = 0, state = 0;     /* 0 none, 1 yaml, 2 requests */
    char *p = data, *end = data + len;
    for (;;) {
        char *l = NULL;
        if (p < end) {
            char *nl = memchr(p, '\n', (size_t)(end - p));
            l = p;
            if (nl) {
                *nl = 0;
                p = nl + 1;
            } else {
                p = end;
            }
            lineno++;
        }
        if (!l || strncmp(l, "@@ case ", 8) == 0) {
            if (state)
                run_case(path, name, case_line, &yaml, reqs, req_lines, nreq);
            mg_buf_free(&yaml);
            memset(&yaml, 0, sizeof(yaml));
            nreq = 0;
            if (!l)
                break;
            snprintf(name, sizeof(name), "%s", l + 8);
            state = 1;
            case_line = lineno;
            continue;
        }
        if (strcmp(l, "@@ requests") == 0) {
            state = 2;
            continue;
        }
        if (state == 1) {
            mg_buf_adds(&yaml, l);
            mg_buf_adds(&yaml, "\n");
        } else if (state == 2 && nreq < MG_ARRAY_LEN(reqs)) {
            req_lines[nreq] = lineno;
            reqs[nreq++] = l;
        }
    }
    free(data);
}

/* Things the YAML loader rejects but the compiler must still handle as Istio's
 * data plane does: an unknown `when` key skips the rule; an untranslatable
 * value drops the ALLOW rule but only the value of a DENY rule (1.4, 1.9).
 * A loaded config is patched in memory to reach them. */
static const char mutate_yaml[] =
    "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n"
    "metadata: {name: allow, namespace: foo}\nspec:\n  rules:\n"
    "  - when:\n    - key: request.headers[x-a]\n      values: [\"1\"]\n"
    "  - to:\n    - operation: {ports: [\"8080\", \"8081\"]}\n"
    "  - to:\n    - operation: {paths: [\"/p\"]}\n"
    "---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n"
    "metadata: {name: deny, namespace: foo}\nspec:\n  action: DENY\n  rules:\n"
    "  - when:\n    - key: request.headers[x-d]\n      values: [\"1\"]\n"
    "  - from:\n    - source: {ipBlocks: [\"10.0.0.0/8\", \"192.168.0.0/16\"]}\n"
    "  - from:\n    - source: {ipBlocks: [\"172.16.0.1\"]}\n    to:\n    - operation: {paths: [\"/x\"]}\n";

static int decide_one(const struct mg_policy_set *s, const char *path, const char *hdr,
                      uint16_t port, const char *src, const char **by, int *rule)
{
    struct mg_attrs a;
    struct mg_header h;
    struct mg_authz_result r;
    memset(&a, 0, sizeof(a));
    a.is_http = true;
    a.method = "GET";
    a.host = "example.com";
    a.path = path;
    a.path_len = strlen(path);
    a.dest.port = port;
    if (src)
        mg_addr_parse_ip(&a.source, src);
    if (hdr) {
        h = (struct mg_header){hdr, 3, "1", 1};
        a.headers = &h;
        a.n_headers = 1;
    }
    mg_authz_decide(s, &a, &r);
    *by = r.decided_by.policy ? r.decided_by.policy : "-";
    *rule = r.decided_by.rule;
    return (int)r.decision;
}

static void test_mutated(void)
{
    struct mg_diags d = {0};
    struct mg_buf y = {0};
    const char *by;
    int rule;
    mg_buf_adds(&y, mutate_yaml);
    mg_buf_adds(&y, default_proxy);
    struct mg_config *c = mg_config_load_buffer("mutate.yaml", y.p, y.len, &d);
    mg_buf_free(&y);
    if (!ok(c && c->n_authz_policies == 2, "mutation config loads")) {
        mg_diags_print(&d, stdout);
        mg_diags_free(&d);
        mg_config_free(c);
        return;
    }
    struct mg_authz_policy *allow = &c->authz_policies[0], *deny = &c->authz_policies[1];
    char *k0 = allow->rules[0].when[0].key, *k1 = deny->rules[0].when[0].key;
    char *port = allow->rules[1].to[0].ports.v[1], *ip = deny->rules[1].from[0].ip_blocks.v[1];
    char *ip2 = deny->rules[2].from[0].ip_blocks.v[0];
    allow->rules[0].when[0].key = "destination.labels[app]";
    deny->rules[0].when[0].key = "request.unknown";
    allow->rules[1].to[0].ports.v[1] = "http";
    deny->rules[1].from[0].ip_blocks.v[1] = "not-a-cidr";
    deny->rules[2].from[0].ip_blocks.v[0] = "bogus";
    struct mg_policy_set *s = mg_policy_compile(c, NULL, &d);
    ok(d.warnings >= 5, "compiler warns about each skipped rule or dropped value (%zu)", d.warnings);

    is_int(decide_one(s, "/q", "x-a", 80, NULL, &by, &rule), 1, "ALLOW rule with an unknown when key is skipped");
    is_int(decide_one(s, "/p", "x-a", 80, NULL, &by, &rule), 0, "  the other rules still allow");
    is_str(by, "foo.allow", "  by the same policy");
    is_int(rule, 2, "  rule 2");
    is_int(decide_one(s, "/p", "x-d", 80, NULL, &by, &rule), 0, "DENY rule with an unknown when key is skipped");
    is_int(decide_one(s, "/q", NULL, 8080, NULL, &by, &rule), 1, "ALLOW rule with an invalid port is dropped");
    is_int(decide_one(s, "/p", NULL, 80, "10.1.2.3", &by, &rule), 1, "DENY keeps the valid CIDR of a list");
    is_str(by, "foo.deny", "  denied by the DENY policy");
    is_int(decide_one(s, "/p", NULL, 80, "192.168.1.1", &by, &rule), 0, "  the invalid CIDR is dropped");
    is_int(decide_one(s, "/x", NULL, 80, "8.8.8.8", &by, &rule), 1, "DENY field with only invalid values is dropped (broader)");
    is_int(rule, 2, "  by rule 2");
    is_int(decide_one(s, "/p", NULL, 80, "8.8.8.8", &by, &rule), 0, "  other paths still pass");

    mg_policy_set_free(s);
    allow->rules[0].when[0].key = k0;
    deny->rules[0].when[0].key = k1;
    allow->rules[1].to[0].ports.v[1] = port;
    deny->rules[1].from[0].ip_blocks.v[1] = ip;
    deny->rules[2].from[0].ip_blocks.v[0] = ip2;
    mg_config_free(c);
    mg_diags_free(&d);
}

/* ---- meshgate authz (explain.c), run in-process with stdout captured ---- */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(int argc, char **argv)
{
    (void)tap_plan;
    (void)tap_diag;
    const char *dir = argc > 1 ? argv[1] : MG_POLICY_DATA;
    DIR *dp = opendir(dir);
    char *names[256];
    size_t n = 0;
    struct dirent *de;
    if (!ok(dp != NULL, "open %s", dir))
        return tap_done();
    while ((de = readdir(dp)) && n < MG_ARRAY_LEN(names))
        if (mg_has_suffix(de->d_name, ".cases"))
            names[n++] = mg_xasprintf("%s/%s", dir, de->d_name);
    closedir(dp);
    qsort(names, n, sizeof(*names), cmp_str);
    for (size_t i = 0; i < n; i++) {
        run_file(names[i]);
        free(names[i]);
    }
    test_mutated();
    printf("# %d requests checked\n", n_requests);
    ok(n_requests >= 150, "at least 150 request cases (%d)", n_requests);
    return tap_done();
}
