/* test_explain_token.c - `meshgate authz --token/--jwks`: real signed tokens
 * (tests/helpers/jwt_sign.c, OpenSSL directly) go through the explainer,
 * which must authenticate them as the data plane does (src/access/access.c) before
 * authorization: 401 -> exit 3, audience 403 -> exit 1, CORS preflight
 * bypass, header edits seen by authorization, remote jwksUri keys from
 * files only. The explainer runs in-process with stdout captured. */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "cmd/cmd.h"
#include "jwt_sign.h"
#include "base/base.h"
#include "authz_run.h"
#include "tap.h"

#define NOW 1800000000LL
#define REMOTE_URI "https://remote.example/jwks.json"

static EVP_PKEY *k_idp, *k_remote, *k_other, *k_other_ec;
static char cfg_path[] = "/tmp/mg-explain-cfg.XXXXXX";
static char jwks_remote[] = "/tmp/mg-explain-jwks.XXXXXX";
static char jwks_wrong[] = "/tmp/mg-explain-jwkw.XXXXXX";
static char jwks_bad[] = "/tmp/mg-explain-jwkb.XXXXXX";

static bool has(const char *s)
{
    bool r = strstr(cli_out, s) != NULL;
    if (!r)
        printf("# output lacks '%s':\n# %s\n# stderr: %s\n", s, cli_out, cli_err);
    return r;
}

static void write_file(char *tmpl, const char *text)
{
    int fd = mkstemp(tmpl);
    size_t n = strlen(text);
    if (!ok(fd >= 0 && write(fd, text, n) == (ssize_t)n, "wrote %s", tmpl))
        exit(1);
    close(fd);
}

static char *sign(EVP_PKEY *k, const char *kid, const char *payload)
{
    char *h = mg_ts_header(mg_ts_default_alg(k), kid);
    char *t = mg_ts_sign(k, NULL, 0, mg_ts_default_alg(k), h, payload);
    free(h);
    return t;
}

static char *tok(EVP_PKEY *k, const char *kid, const char *iss, const char *sub, const char *aud,
                 long long exp, const char *extra)
{
    char *p = mg_xasprintf("{\"iss\":\"%s\",\"sub\":\"%s\",\"aud\":\"%s\",\"exp\":%lld%s%s}", iss, sub,
                           aud, exp, extra ? "," : "", extra ? extra : "");
    char *t = sign(k, kid, p);
    free(p);
    return t;
}

static void setup(void)
{
    k_idp = mg_ts_genkey("ec256");
    k_remote = mg_ts_genkey("rsa");
    k_other = mg_ts_genkey("rsa");
    k_other_ec = mg_ts_genkey("ec256");
    char *j1 = mg_ts_jwk(k_idp, "idp-1", NULL), *j2 = mg_ts_jwk(k_remote, "r-1", NULL),
         *j3 = mg_ts_jwk(k_other, "r-1", NULL);
    char *inline_jwks = mg_ts_jwks((const char *[]){j1}, 1);
    char *remote = mg_ts_jwks((const char *[]){j2}, 1), *wrong = mg_ts_jwks((const char *[]){j3}, 1);
    write_file(jwks_remote, remote);
    write_file(jwks_wrong, wrong);
    write_file(jwks_bad, "{\"keys\": [");
    char *yaml = mg_xasprintf(
        "apiVersion: meshgate.io/v1alpha1\nkind: Proxy\n"
        "metadata:\n  name: gw\n  namespace: foo\n  labels:\n    app: gw\nspec:\n  mode: gateway\n"
        "---\napiVersion: security.istio.io/v1\nkind: RequestAuthentication\n"
        "metadata: {name: jwt, namespace: foo}\nspec:\n  jwtRules:\n"
        "  - issuer: https://idp.example\n    audiences: [api]\n    jwks: '%s'\n"
        "    outputClaimToHeaders:\n    - header: x-team\n      claim: team\n"
        "  - issuer: https://remote.example\n    jwksUri: " REMOTE_URI "\n"
        "---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n"
        "metadata: {name: allow, namespace: foo}\nspec:\n  rules:\n"
        "  - from:\n    - source:\n        requestPrincipals: [\"https://idp.example/alice\"]\n"
        "    to:\n    - operation:\n        paths: [\"/p*\"]\n"
        "  - to:\n    - operation:\n        paths: [\"/c*\"]\n"
        "    when:\n    - key: request.auth.claims[team]\n      values: [\"blue\"]\n"
        "  - from:\n    - source:\n        requestPrincipals: [\"https://remote.example/*\"]\n"
        "    to:\n    - operation:\n        paths: [\"/r*\"]\n"
        "  - to:\n    - operation:\n        paths: [\"/public*\"]\n"
        "  - to:\n    - operation:\n        paths: [\"/hdr*\"]\n"
        "    when:\n    - key: request.headers[x-team]\n      values: [\"blue\"]\n"
        "  - to:\n    - operation:\n        paths: [\"/tok*\"]\n"
        "    when:\n    - key: request.headers[authorization]\n      values: [\"*\"]\n",
        inline_jwks);
    write_file(cfg_path, yaml);
    free(yaml);
    free(inline_jwks);
    free(remote);
    free(wrong);
    free(j1);
    free(j2);
    free(j3);
}

#define NOWS "1800000000"
#define RUN(...) run_cli((const char *[]){"-c", cfg_path, "--now", NOWS, __VA_ARGS__, NULL})

static void test_inline(void)
{
    char *good = tok(k_idp, "idp-1", "https://idp.example", "alice", "api", NOW + 600, "\"team\":\"blue\"");
    char *carol = tok(k_idp, "idp-1", "https://idp.example", "carol", "api", NOW + 600, "\"team\":\"blue\"");
    char *expired = tok(k_idp, "idp-1", "https://idp.example", "alice", "api", NOW - 3600, NULL);
    char *aud = tok(k_idp, "idp-1", "https://idp.example", "alice", "other", NOW + 600, NULL);
    char *forged = tok(k_other_ec, "idp-1", "https://idp.example", "alice", "api", NOW + 600, NULL);

    is_int(RUN("--url", "https://api.example.com/p", "--token", good), 0,
           "valid token: ALLOW by requestPrincipals");
    ok(first_line("ALLOW"), "  first line ALLOW");
    ok(has("\nauthn: ok principal=https://idp.example/alice\n"), "  authn line names the principal");
    ok(has("decided by: foo.allow (ALLOW, rule 0)"), "  decided by rule 0");

    is_int(RUN("--url", "https://api.example.com/p", "--token", carol), 1,
           "valid token of another subject: requestPrincipals does not match -> exit 1");
    ok(has("authn: ok principal=https://idp.example/carol"), "  authenticated as carol");
    is_int(RUN("--url", "https://api.example.com/c", "--token", carol), 0, "valid token: ALLOW by a claim");
    ok(has("decided by: foo.allow (ALLOW, rule 1)"), "  decided by the claim rule");
    is_int(RUN("--url", "/c", "--token", aud), 1, "claim rule needs the claim (audience aside)");

    is_int(RUN("--url", "https://api.example.com/p?x=1", "--token", expired), 3, "expired token: exit 3");
    ok(first_line("DENY"), "  first line DENY");
    ok(has("\nauthn: 401 Jwt is expired\n"), "  authn: 401 Jwt is expired");
    ok(has("authn: www-authenticate: Bearer realm=\"https://api.example.com/p\", error=\"invalid_token\""),
       "  the realm is the request URL without the query");
    ok(has("authorization: not evaluated (request authentication answered 401)"),
       "  authorization is not evaluated");
    ok(strstr(cli_out, "decided by:") == NULL, "  no 'decided by' line after a 401");

    is_int(RUN("--url", "/public", "--token", aud), 1, "wrong audience: exit 1 even where authz would allow");
    ok(has("authn: 403 Audiences in Jwt are not allowed"), "  authn: 403 Audiences in Jwt are not allowed");
    ok(strstr(cli_out, "www-authenticate") == NULL, "  no www-authenticate with a 403");

    is_int(RUN("--url", "/public", "--token", forged), 3, "token signed by another key: 401");
    ok(has("authn: 401 Jwt verification fails"), "  Jwt verification fails");
    is_int(RUN("--url", "/public", "--token", "not-a-jwt"), 3, "garbage token: 401");
    ok(has("authn: 401 Jwt is not in the form of Header.Payload.Signature"), "  Envoy's message");
    ok(strstr(cli_out, "no key set for") == NULL, "  no key-set note when keys were not the reason");

    is_int(RUN("--url", "/public"), 0, "no token: passes authentication");
    ok(has("\nauthn: no token\n"), "  authn: no token");
    is_int(RUN("--url", "/p"), 1, "no token: no principal for requestPrincipals");

    /* --now fixes the clock: a token valid at NOW is expired an hour later */
    is_int(run_cli((const char *[]){"-c", cfg_path, "--now", "1800003600", "--url", "/p", "--token", good, NULL}),
           3, "--now past exp: expired");
    ok(has("Jwt is expired"), "  Jwt is expired");
    long long t0 = (long long)time(NULL);
    char *live = tok(k_idp, "idp-1", "https://idp.example", "alice", "api", t0 + 600, NULL);
    is_int(run_cli((const char *[]){"-c", cfg_path, "--url", "/p", "--token", live, NULL}), 0,
           "without --now the wall clock is used (token valid for 10 more minutes)");
    char later[32];
    snprintf(later, sizeof later, "%lld", t0 + 7200);
    is_int(run_cli((const char *[]){"-c", cfg_path, "--now", later, "--url", "/p", "--token", live, NULL}), 3,
           "  and two hours later it is expired");

    /* the token where the request puts it: a header or the default query parameter */
    char *hdr = mg_xasprintf("Authorization: Bearer %s", good);
    is_int(RUN("--url", "/p", "--header", hdr), 0, "token in --header 'Authorization: Bearer ...'");
    ok(has("authn: ok principal=https://idp.example/alice"), "  verified");
    char *url = mg_xasprintf("https://api.example.com/p?access_token=%s", good);
    is_int(RUN("--url", url), 0, "token in the URL query access_token=");
    ok(has("authn: ok principal=https://idp.example/alice"), "  verified");
    char *eurl = mg_xasprintf("/p?access_token=%s", expired);
    is_int(RUN("--url", eurl), 3, "expired token in the query: 401");

    /* authorization sees the request as edited by authentication */
    is_int(RUN("--url", "/tok", "--header", "Authorization: Basic eDp5"), 0,
           "an Authorization header that is no Bearer token reaches authorization");
    is_int(RUN("--url", "/tok", "--token", good), 1, "a validated token is removed before authorization");
    is_int(RUN("--url", "/hdr", "--token", good), 0, "outputClaimToHeaders is visible to authorization");
    is_int(RUN("--url", "/hdr", "--header", "X-Team: blue"), 1,
           "a client's copy of an output header is dropped (no token)");
    is_int(RUN("--url", "/hdr", "--header", "X-Team: blue", "--token", aud), 1,
           "  (and with an audience failure it is a 403 anyway)");

    /* CORS preflight: JWT skipped, authorization sees no principal */
    is_int(RUN("--method", "OPTIONS", "--url", "/p", "--token", expired, "--header", "Origin: https://app",
               "--header", "Access-Control-Request-Method: GET"), 1,
           "CORS preflight with an expired token: not 401, and no principal for authz");
    ok(has("authn: CORS preflight: JWT not checked (no principal)"), "  authn says CORS preflight");
    ok(has("decided by: ALLOW policies apply and none matched"), "  denied by default (no principal)");
    is_int(RUN("--method", "OPTIONS", "--url", "/public", "--token", "garbage", "--header", "Origin: https://app",
               "--header", "Access-Control-Request-Method: GET"), 0,
           "CORS preflight with an invalid token to a public path: ALLOW");
    is_int(RUN("--method", "OPTIONS", "--url", "/public", "--token", "garbage", "--header", "Origin: https://app"),
           3, "OPTIONS without Access-Control-Request-Method is no preflight: 401");

    /* another workload: the RequestAuthentication in foo does not apply */
    is_int(RUN("--workload-namespace", "bar", "--url", "/p", "--token", expired), 0,
           "--workload-namespace bar: no RequestAuthentication, expired token not checked");
    ok(has("authn: no RequestAuthentication applies to this workload"), "  and says so");
    is_int(RUN("--workload-labels", "app=other", "--url", "/p", "--token", expired), 3,
           "--workload-labels: a namespace-wide RequestAuthentication still applies");

    /* --claims keeps working and excludes --token */
    is_int(RUN("--url", "/p", "--claims", "{\"iss\":\"https://idp.example\",\"sub\":\"alice\"}"), 0,
           "--claims still gives the principal without verification");
    ok(has("authn: --claims taken as verified principal=https://idp.example/alice"), "  and says so");
    is_int(RUN("--url", "/p", "--claims", "{}", "--token", good), 2, "--claims with --token: exit 2");
    is_int(RUN("--url", "/p", "--token", good, "--header", "authorization: Bearer x"), 2,
           "--token with an Authorization header: exit 2");
    is_int(RUN("--tcp", "--token", good), 2, "--token with --tcp: exit 2");
    is_int(RUN("--url", "/p", "--token", "a\nb"), 2, "--token with a newline: exit 2");
    is_int(RUN("--url", "/p", "--token", ""), 2, "empty --token: exit 2");
    is_int(run_cli((const char *[]){"-c", cfg_path, "--now", "-5", "--url", "/p", NULL}), 2, "bad --now: exit 2");
    is_int(run_cli((const char *[]){"-c", cfg_path, "--now", NULL}), 2, "--now without a value: exit 2");

    free(good);
    free(carol);
    free(expired);
    free(aud);
    free(forged);
    free(live);
    free(hdr);
    free(url);
    free(eurl);
}

static void test_remote(void)
{
    char *bob = tok(k_remote, "r-1", "https://remote.example", "bob", "any", NOW + 600, NULL);
    char *map = mg_xasprintf(REMOTE_URI "=%s", jwks_remote);
    char *wrong = mg_xasprintf(REMOTE_URI "=%s", jwks_wrong);
    char *unknown = mg_xasprintf("https://elsewhere.example/keys=%s", jwks_remote);

    is_int(RUN("--url", "/r", "--token", bob), 3, "jwksUri without --jwks: 401 as before the first fetch");
    ok(has("authn: 401 Jwks remote fetch is failed"), "  Jwks remote fetch is failed");
    ok(has("authn: no key set for " REMOTE_URI), "  names the URI without keys");
    is_int(RUN("--url", "/public"), 0, "jwksUri without --jwks: a tokenless request still passes");

    is_int(RUN("--url", "/r", "--token", bob, "--jwks", map), 0, "--jwks URI=FILE: ALLOW");
    ok(has("authn: ok principal=https://remote.example/bob"), "  remote principal");
    ok(has("decided by: foo.allow (ALLOW, rule 2)"), "  decided by rule 2");
    is_int(RUN("--url", "/r", "--token", bob, "--jwks", jwks_remote), 0, "--jwks FILE for every remote URI");
    is_int(RUN("--url", "/r", "--token", bob, "--jwks", wrong), 3, "--jwks with another key: 401");
    ok(has("authn: 401 Jwt verification fails") || has("authn: 401 Jwks doesn't have key to match kid"),
       "  verification fails");
    is_int(RUN("--url", "/r", "--token", bob, "--jwks", unknown), 3, "--jwks for a URI no rule uses: no keys");
    ok(strstr(cli_err, "no applicable jwtRule fetches this URI") != NULL, "  warned on stderr");
    is_int(RUN("--url", "/r", "--token", bob, "--jwks", unknown, "--jwks", jwks_remote), 0,
           "  a plain FILE still covers the rule's URI");

    /* the gateway takes a body it cannot use as a failed fetch, and so does the explainer */
    is_int(RUN("--url", "/r", "--token", bob, "--jwks", jwks_bad), 3,
           "malformed --jwks file: the gateway's failed fetch, 401");
    ok(has("authn: 401 Jwks remote fetch is failed"), "  authn: 401 Jwks remote fetch is failed");
    ok(strstr(cli_err, jwks_bad) != NULL && strstr(cli_err, "warning") != NULL,
       "  a warning names the file");
    is_int(RUN("--url", "/r", "--jwks", "/nonexistent/jwks.json"), 2, "unreadable --jwks file: exit 2");
    is_int(RUN("--url", "/r", "--jwks", jwks_remote, "--jwks", jwks_remote), 2, "two plain --jwks FILEs: exit 2");
    is_int(RUN("--url", "/r", "--jwks", map, "--jwks", map), 2, "one URI twice: exit 2");
    is_int(RUN("--url", "/r", "--jwks", REMOTE_URI), 2, "URI without =FILE: exit 2");

    /* an inline token of the other issuer passes the P_A branch */
    char *good = tok(k_idp, "idp-1", "https://idp.example", "alice", "api", NOW + 600, NULL);
    is_int(RUN("--url", "/p", "--token", good), 0, "idp token passes although the remote rule has no keys");
    free(good);
    free(bob);
    free(map);
    free(wrong);
    free(unknown);
}

static void test_bad_inline_jwks(void)
{
    char path[] = "/tmp/mg-explain-bad.XXXXXX";
    write_file(path, "apiVersion: meshgate.io/v1alpha1\nkind: Proxy\n"
                     "metadata: {name: gw, namespace: foo}\nspec: {mode: gateway}\n"
                     "---\napiVersion: security.istio.io/v1\nkind: RequestAuthentication\n"
                     "metadata: {name: jwt, namespace: foo}\nspec:\n  jwtRules:\n"
                     "  - issuer: https://idp.example\n    jwks: '{\"keys\":[]}'\n");
    is_int(run_cli((const char *[]){"-c", path, "--url", "/", NULL}), 2,
           "an inline jwks without a usable key: the gateway refuses it, exit 2");
    ok(strstr(cli_err, "invalid jwks") != NULL, "  the error is printed");
    unlink(path);
}

static void test_help(void)
{
    is_int(run_cli((const char *[]){"--help", NULL}), 0, "--help exits 0");
    ok(has("--token JWT") && has("--jwks URI=FILE") && has("--now EPOCH"), "  lists the new options");
    ok(has("3 authentication") && has("failed (401"), "  documents exit status 3");
}

int main(void)
{
    (void)tap_plan;
    (void)tap_diag;
    setup();
    test_inline();
    test_remote();
    test_bad_inline_jwks();
    test_help();
    unlink(cfg_path);
    unlink(jwks_remote);
    unlink(jwks_wrong);
    unlink(jwks_bad);
    EVP_PKEY_free(k_idp);
    EVP_PKEY_free(k_remote);
    EVP_PKEY_free(k_other);
    EVP_PKEY_free(k_other_ec);
    return tap_done();
}
