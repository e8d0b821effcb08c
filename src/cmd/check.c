/* check.c - `meshgate check [-c PATH]`: load, analyse, print every
 * diagnostic, exit 0 without errors and 1 with. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include "cmd/cmd.h"
#include "config/config.h"

static int usage(void)
{
    fprintf(stderr, "usage: meshgate check [-c PATH]\n"
                    "  PATH: a YAML file or a directory of *.yaml/*.yml (default %s)\n",
            MG_DEFAULT_CONFIG);
    return 2;
}

int mg_cmd_check(int argc, char **argv)
{
    const char *path = MG_DEFAULT_CONFIG;
    struct mg_diags d = { 0 };
    struct mg_config *c;
    int opt;

    optind = 1;
    while ((opt = getopt(argc, argv, "c:h")) != -1) {
        switch (opt) {
        case 'c':
            path = optarg;
            break;
        default:
            return usage();
        }
    }
    if (optind != argc)
        return usage();
    c = mg_config_load(path, &d);
    if (c) {
        mg_config_analyze(c, &d);
        if (!c->proxy.present) {
            struct mg_pos p = { mg_intern(path), 0, 0 };
            mg_warning(&d, p, "no Proxy resource: this configuration can be checked but not run");
        }
    }
    mg_diags_print(&d, stdout);
    fflush(stdout);
    /* always this exact shape, so scripts can match it */
    fprintf(stderr, "%zu errors, %zu warnings\n", d.errors, d.warnings);
    int rc = d.errors ? 1 : 0;
    mg_config_free(c);
    mg_diags_free(&d);
    return rc;
}
