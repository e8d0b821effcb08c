/* test_authz_cli.c - `meshgate authz` (cmd/authz.c), the offline explainer,
 * run in process: exit codes, the first line, the deciding policy and rule,
 * the options that build the request, and configuration errors. The policy
 * engine itself is tested by test_authz on the data-driven cases. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "base/base.h"
#include "cmd/cmd.h"
#include "authz_run.h"
#include "tap.h"

/* The Proxy the data-driven cases use too (test_authz.c). */
static const char default_proxy[] =
    "---\napiVersion: meshgate.io/v1alpha1\nkind: Proxy\n"
    "metadata:\n  name: gw\n  namespace: foo\n  labels:\n    app: gw\n    version: v1\n"
    "spec:\n  mode: gateway\n";

static const char cli_yaml[] =
    "apiVersion: meshgate.io/v1alpha1\nkind: MeshConfig\nspec:\n"
    "  pathNormalization: {normalization: MERGE_SLASHES}\n"
    "  extensionProviders:\n  - name: ext\n    envoyExtAuthzHttp: {service: ext.local, port: 9000}\n"
    "---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n"
    "metadata: {name: deny-admin, namespace: foo}\nspec:\n  action: DENY\n  rules:\n"
    "  - to:\n    - operation: {paths: [\"/admin*\"]}\n"
    "---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n"
    "metadata: {name: allow, namespace: foo}\nspec:\n  rules:\n"
    "  - from:\n    - source: {requestPrincipals: [\"https://idp/*\"]}\n"
    "  - from:\n    - source: {principals: [\"cluster.local/ns/prod/sa/web\"]}\n"
    "    to:\n    - operation: {hosts: [\"api.example.com\"], ports: [\"8443\"]}\n"
    "  - when:\n    - key: request.headers[x-pass]\n      values: [\"yes\"]\n"
    "    - key: remote.ip\n      values: [\"203.0.113.0/24\"]\n"
    "---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n"
    "metadata: {name: ext, namespace: foo}\nspec:\n  action: CUSTOM\n  provider: {name: ext}\n"
    "  rules:\n  - to:\n    - operation: {paths: [\"/ext*\"]}\n";


static void test_cli(void)
{
    char cfg[] = "/tmp/mg-authz-cfg.XXXXXX";
    int fd = mkstemp(cfg);
    struct mg_buf y = {0};
    mg_buf_adds(&y, cli_yaml);
    mg_buf_adds(&y, default_proxy);
    ok(fd >= 0 && write(fd, y.p, y.len) == (ssize_t)y.len, "cli: config written");
    close(fd);
    mg_buf_free(&y);
    const char *c = cfg;

    is_int(run_cli((const char *[]){"-c", c, "--url", "https://api.example.com//admin/x?q=1", NULL}), 1,
           "cli: //admin is denied (MERGE_SLASHES applied) -> exit 1");
    ok(first_line("DENY"), "cli:   first line DENY");
    ok(strstr(cli_out, "decided by: foo.deny-admin (DENY, rule 0)") != NULL, "cli:   names the DENY policy and rule");
    ok(strstr(cli_out, "policy foo.allow ALLOW: no rule matched") != NULL, "cli:   lists every applicable policy");

    is_int(run_cli((const char *[]){"-c", c, "--url", "/x", "--claims", "{\"iss\":\"https://idp\",\"sub\":\"u\"}", NULL}), 0,
           "cli: JWT claims give the request principal -> exit 0");
    ok(first_line("ALLOW"), "cli:   first line ALLOW");
    ok(strstr(cli_out, "decided by: foo.allow (ALLOW, rule 0)") != NULL, "cli:   allowed by rule 0");

    is_int(run_cli((const char *[]){"-c", c, "--url", "https://API.example.com:8443/x", "--namespace", "prod",
                                    "--service-account", "web", NULL}), 1,
           "cli: host with port does not match exact hosts");
    is_int(run_cli((const char *[]){"-c", c, "--url", "https://api.example.com/x", "--port", "8443",
                                    "--principal", "spiffe://cluster.local/ns/prod/sa/web", NULL}), 0,
           "cli: --principal and --port");
    ok(strstr(cli_out, "rule 1 matched") != NULL, "cli:   rule 1");
    is_int(run_cli((const char *[]){"-c", c, "--url", "/x", "--host", "api.example.com", "--port", "8443",
                                    "--namespace", "prod", "--service-account", "web", NULL}), 0,
           "cli: --namespace/--service-account build the principal in the trust domain");

    is_int(run_cli((const char *[]){"-c", c, "--url", "/x", "--header", "X-Pass: yes", "--source-ip", "10.0.0.1",
                                    "--remote-ip", "203.0.113.7", NULL}), 0, "cli: --header and --remote-ip");
    is_int(run_cli((const char *[]){"-c", c, "--url", "/x", "--header", "X-Pass: yes", "--source-ip", "203.0.113.7",
                                    NULL}), 0, "cli: remote ip defaults to the source ip");
    is_int(run_cli((const char *[]){"-c", c, "--url", "/x", "--header", "X-Pass: yes", "--source-ip", "10.0.0.1",
                                    NULL}), 1, "cli:   and another source is denied");

    is_int(run_cli((const char *[]){"-c", c, "--url", "/ext/a", "--claims", "{\"iss\":\"https://idp\",\"sub\":\"u\"}", NULL}), 0,
           "cli: CUSTOM match");
    ok(strstr(cli_out, "provider ext would be consulted") != NULL, "cli:   says the provider would be consulted");

    is_int(run_cli((const char *[]){"-c", c, "--tcp", "--port", "5432", NULL}), 1,
           "cli: --tcp: a DENY with only HTTP fields denies TCP");
    is_int(run_cli((const char *[]){"-c", c, "--url", "/a%00", NULL}), 1, "cli: %%00 is refused");
    ok(strstr(cli_out, "400") != NULL, "cli:   as a 400");
    is_int(run_cli((const char *[]){"-c", c, "--workload-namespace", "bar", "--workload-labels", "app=x,v=1",
                                    "--url", "/admin", NULL}), 0, "cli: another workload: no policy applies");
    ok(strstr(cli_out, "no AuthorizationPolicy applies") != NULL, "cli:   and says so");

    is_int(run_cli((const char *[]){"-c", c, "--bogus", NULL}), 2, "cli: unknown option -> exit 2");
    is_int(run_cli((const char *[]){"-c", c, "--url", "ftp://x/", NULL}), 2, "cli: bad URL -> exit 2");
    is_int(run_cli((const char *[]){"-c", c, "--claims", "[1", NULL}), 2, "cli: bad claims JSON -> exit 2");
    is_int(run_cli((const char *[]){"-c", c, "--workload-labels", "novalue", NULL}), 2, "cli: bad labels -> exit 2");

    fd = open(cfg, O_WRONLY | O_TRUNC);
    static const char bad[] = "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n"
                              "metadata: {name: x}\nspec:\n  action: DENY\n";
    ok(fd >= 0 && write(fd, bad, sizeof(bad) - 1) == (ssize_t)(sizeof(bad) - 1), "cli: bad config written");
    close(fd);
    is_int(run_cli((const char *[]){"-c", c, NULL}), 2, "cli: config error -> exit 2");
    char want[128];
    snprintf(want, sizeof(want), "%s:5:", cfg);
    ok(strstr(cli_err, want) != NULL && strstr(cli_err, "error:") != NULL, "cli:   printed as FILE:LINE:COL");
    unlink(cfg);
}

int main(void)
{
    (void)tap_plan;
    (void)tap_diag;
    test_cli();
    return tap_done();
}
