/* fuzz_policy.c - the policy compiler, the decision and path normalization
 * under libFuzzer: any input must compile, decide and normalize without a
 * crash, hang, leak or out-of-bounds read.
 *
 * Input: YAML documents, then a line "@@", then the request: the first line
 * is the raw target, the second the host, the third the peer principal,
 * every further line a header "name:value". The first byte of the request
 * part also selects TCP (odd) or HTTP.
 *
 * With --enable-fuzzing this is a libFuzzer target. Otherwise
 * (MG_FUZZ_STANDALONE) it replays the files named on argv, and with no
 * arguments runs a short deterministic mutation loop over a built-in seed,
 * which make check runs as a smoke test under the sanitizers. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "config/config.h"
#include "route/route.h"
#include "policy/policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAXH 32

static void run_request(const struct mg_policy_set *s, const char *req, size_t len)
{
    struct mg_attrs a;
    struct mg_header h[MAXH];
    const char *line[3 + MAXH];
    size_t ll[3 + MAXH], n = 0;
    char norm[4096];
    size_t olen, plen;

    memset(&a, 0, sizeof(a));
    for (size_t i = 0; i < len && n < MG_ARRAY_LEN(line);) {
        const char *nl = memchr(req + i, '\n', len - i);
        size_t e = nl ? (size_t)(nl - req) : len;
        line[n] = req + i;
        ll[n++] = e - i;
        i = e + 1;
    }
    a.is_http = !(len > 0 && (req[0] & 1));
    a.method = "GET";
    a.scheme = "https";
    a.dest.port = len > 1 ? (uint16_t)(((unsigned char)req[0] << 8) | (unsigned char)req[1]) : 443;
    if (n > 0) {
        for (int m = 0; m < 4; m++) {
            int rc = mg_path_normalize(line[0], ll[0], (enum mg_path_norm)m, norm, sizeof(norm),
                                       &olen, &plen);
            if (rc == 0 && (plen > olen || olen >= sizeof(norm) || norm[olen] != 0))
                abort();
            if (rc == 0) {
                a.path = norm;
                a.path_len = plen;
                a.path_query = norm;    /* request.headers[:path] */
            }
        }
    }
    /* Strings the attrs point at must be NUL terminated: copy them. */
    char *host = n > 1 ? strndup(line[1], ll[1]) : NULL;
    char *peer = n > 2 ? strndup(line[2], ll[2]) : NULL;
    a.host = host;
    a.peer_principal = peer;
    a.req_iss = host;
    a.req_sub = peer;
    for (size_t i = 3; i < n && a.n_headers < MAXH; i++) {
        const char *c = memchr(line[i], ':', ll[i]);
        size_t nl = c ? (size_t)(c - line[i]) : ll[i];
        h[a.n_headers++] = (struct mg_header){line[i], nl, c ? c + 1 : NULL, c ? ll[i] - nl - 1 : 0};
    }
    a.headers = h;
    struct mg_authz_result r, r2;
    mg_authz_decide(s, &a, &r);
    struct mg_authz_trace *t = calloc(mg_policy_set_count(s) + 1, sizeof(*t));
    mg_authz_explain(s, &a, &r2, t);
    /* decide goes through the rule index, explain with a trace scans every
     * rule: the same winner of every group, down to the rule */
    if (r.decision != r2.decision || r.decided_by.policy != r2.decided_by.policy ||
        r.decided_by.rule != r2.decided_by.rule || r.custom_match.policy != r2.custom_match.policy ||
        r.custom_match.rule != r2.custom_match.rule || r.audit_match.policy != r2.audit_match.policy ||
        r.audit_match.rule != r2.audit_match.rule ||
        r.dry_run_deny_match.policy != r2.dry_run_deny_match.policy ||
        r.dry_run_deny_match.rule != r2.dry_run_deny_match.rule ||
        r.dry_run_allow_match.policy != r2.dry_run_allow_match.policy ||
        r.dry_run_allow_match.rule != r2.dry_run_allow_match.rule)
        abort();
    free(t);
    (void)mg_peer_authn_mode(s, a.dest.port);
    free(host);
    free(peer);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data;
    const char *sep = NULL;
    for (size_t i = 0; i + 4 <= size; i++)
        if (memcmp(p + i, "\n@@\n", 4) == 0) {
            sep = p + i;
            break;
        }
    size_t ylen = sep ? (size_t)(sep - p) : size;
    struct mg_diags d = {0};
    struct mg_config *c = mg_config_load_buffer("fuzz.yaml", p, ylen, &d);
    if (c) {
        struct mg_policy_set *s = mg_policy_compile(c, NULL, &d);
        if (sep)
            run_request(s, sep + 4, size - ylen - 4);
        mg_policy_set_free(s);
    } else if (sep) {
        struct mg_config empty;
        memset(&empty, 0, sizeof(empty));
        struct mg_policy_set *s = mg_policy_compile(&empty, NULL, &d);
        run_request(s, sep + 4, size - ylen - 4);
        mg_policy_set_free(s);
    }
    mg_config_free(c);
    mg_diags_free(&d);
    return 0;
}

#ifdef MG_FUZZ_STANDALONE
static const char seed[] =
    "apiVersion: meshgate.io/v1alpha1\nkind: MeshConfig\nspec:\n  trustDomain: td\n"
    "  trustDomainAliases: [old]\n"
    "---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n"
    "metadata: {name: a, namespace: default}\nspec:\n  action: DENY\n  rules:\n"
    "  - from:\n    - source: {principals: [\"td/ns/x/*\", \"*/sa/y\"], namespaces: [\"n*s\"]}\n"
    "    to:\n    - operation: {paths: [\"/a/{*}/b/{**}\"], hosts: [\"*.ex\"]}\n"
    "    when:\n    - key: request.headers[x-a]\n      values: [\"v*\"]\n"
    "  - from:\n    - source: {serviceAccounts: [\"ns/s.a\"], trustDomains: [\"p*q\"]}\n"
    "---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n"
    "metadata: {name: b, namespace: default}\nspec:\n  rules:\n"
    "  - from:\n    - source: {requestPrincipals: [\"*x/y*\"], ipBlocks: [\"10.0.0.0/8\"]}\n"
    "  - to:\n    - operation: {ports: [\"80\"], notPaths: [\"*.png\"]}\n"
    "\n@@\n/a/%2e%2e/x%2F/./b//c?q#f\nHost.EX\ntd/ns/ns/s.a/sa/s.a/z\nx-a:vv\nx-a:\n";

int main(int argc, char **argv)
{
    if (argc > 1) {
        for (int i = 1; i < argc; i++) {
            size_t len;
            char *buf = mg_read_file(argv[i], 64u * 1024 * 1024, &len);
            if (!buf) {
                perror(argv[i]);
                return 1;
            }
            LLVMFuzzerTestOneInput((const uint8_t *)buf, len);
            free(buf);
            printf("ok %d - %s\n", i, argv[i]);
        }
        return 0;
    }
    /* Deterministic smoke: byte flips, truncations and insertions. */
    static const char alphabet[] = "/%.*{}\\?#:-_2eEfF0\n[]\"' aZ";
    size_t n = sizeof(seed) - 1;
    char *buf = malloc(n + 64);
    uint32_t x = 2463534242u;
    int iters = 20000;
    for (int i = 0; i < iters; i++) {
        memcpy(buf, seed, n);
        size_t len = n;
        for (int k = 0; k < 4; k++) {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            size_t pos = x % len;
            char ch = alphabet[(x >> 8) % (sizeof(alphabet) - 1)];
            switch ((x >> 16) % 8) {
            case 0: case 1: case 2: buf[pos] = ch; break;
            case 3: len = pos + 1; break;
            default:
                if (len < n + 60) {
                    memmove(buf + pos + 1, buf + pos, len - pos);
                    buf[pos] = ch;
                    len++;
                }
            }
        }
        LLVMFuzzerTestOneInput((const uint8_t *)buf, len);
    }
    free(buf);
    printf("1..1\nok 1 - %d mutated inputs compiled, decided and normalized\n", iters);
    return 0;
}
#endif
