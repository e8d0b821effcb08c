/* main.c - command line dispatch. Each subcommand lives in its module. */
#include "autoconfig.h"
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include "cmd/cmd.h"
#include "config/config.h"

static void usage(FILE *out)
{
    fputs("usage: meshgate run   [-c PATH] [-n NS]   serve\n"
          "                      [--watch] [--bind-address IP] [--admin IP:PORT]\n"
          "                                          reload on change; override bindAddress, admin\n"
          "       meshgate check [-c PATH] [-n NS]   load and analyse the configuration\n"
          "       meshgate check [-c PATH] --explain-destination HOST[:PORT] [--subset NAME]\n"
          "                                          ... and how HOST:PORT is reached (TLS, identities)\n"
          "       meshgate authz -c PATH [options]   offline authorization decision\n"
          "       meshgate ca init|issue ...         trust root and certificates\n"
          "       meshgate version\n"
          "PATH is a YAML file or a directory of *.yaml/*.yml (default " MG_DEFAULT_CONFIG ").\n"
          "NS is the namespace of documents without metadata.namespace (as kubectl apply -n).\n",
          out);
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);   /* an SSL write to a reset peer raises it */
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "version") == 0 || strcmp(argv[1], "--version") == 0) {
        printf("meshgate %s\n", PACKAGE_VERSION);
        return 0;
    }
    if (strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "run") == 0)
        return mg_cmd_run(argc - 1, argv + 1);
    if (strcmp(argv[1], "check") == 0)
        return mg_cmd_check(argc - 1, argv + 1);
    if (strcmp(argv[1], "authz") == 0)
        return mg_cmd_authz(argc - 1, argv + 1);
    if (strcmp(argv[1], "ca") == 0)
        return mg_cmd_ca(argc - 1, argv + 1);
    fprintf(stderr, "meshgate: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
