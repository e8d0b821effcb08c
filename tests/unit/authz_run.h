/* authz_run.h - run `meshgate authz` in process for a unit test: the
 * arguments after the subcommand word, stdout and stderr captured into
 * cli_out and cli_err (NUL terminated, truncated to their size), the exit
 * status returned. Included by the tests of the explainer. */
#ifndef MG_TEST_AUTHZ_RUN_H
#define MG_TEST_AUTHZ_RUN_H
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "cmd/cmd.h"

static char cli_out[16384], cli_err[8192];

static int run_cli(const char *const *args)
{
    char *argv[48];
    int argc = 0;
    char of[] = "/tmp/mg-authz-out.XXXXXX", ef[] = "/tmp/mg-authz-err.XXXXXX";
    int o = mkstemp(of), e = mkstemp(ef);
    argv[argc++] = "authz";
    for (; *args && argc < 47; args++)
        argv[argc++] = (char *)*args;
    argv[argc] = NULL;
    fflush(stdout);
    fflush(stderr);
    int so = dup(1), se = dup(2);
    dup2(o, 1);
    dup2(e, 2);
    int rc = mg_cmd_authz(argc, argv);
    fflush(stdout);
    fflush(stderr);
    dup2(so, 1);
    dup2(se, 2);
    close(so);
    close(se);
    ssize_t n = pread(o, cli_out, sizeof(cli_out) - 1, 0);
    cli_out[n > 0 ? n : 0] = 0;
    n = pread(e, cli_err, sizeof(cli_err) - 1, 0);
    cli_err[n > 0 ? n : 0] = 0;
    close(o);
    close(e);
    unlink(of);
    unlink(ef);
    return rc;
}

/* Is the first line of the output exactly `want`? */
__attribute__((unused)) static bool first_line(const char *want)
{
    size_t n = strlen(want);
    return strncmp(cli_out, want, n) == 0 && cli_out[n] == '\n';
}

#endif
