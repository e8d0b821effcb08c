/* cli_stubs.c - weak fallbacks for subcommands, so every area can link the
 * binary while the others are being built. A module's real mg_cmd_* (a
 * strong symbol) replaces the fallback at link time. */
#include <stdio.h>
#include "cli.h"

#define MG_CMD_FALLBACK(fn)                                                   \
    __attribute__((weak)) int fn(int argc, char **argv)                       \
    {                                                                         \
        (void)argc;                                                           \
        fprintf(stderr, "meshgate %s: not available in this build\n", argv[0]); \
        return 2;                                                             \
    }

MG_CMD_FALLBACK(mg_cmd_check)
MG_CMD_FALLBACK(mg_cmd_authz)
MG_CMD_FALLBACK(mg_cmd_ca)
MG_CMD_FALLBACK(mg_cmd_run)
