/* cli_stubs.c - TEMPORARY: subcommands not built yet. Removed as each lands. */
#include <stdio.h>
#include "cli.h"
#define NYI(fn) int fn(int argc, char **argv) { (void)argc; fprintf(stderr, "meshgate %s: not built yet\n", argv[0]); return 2; }
#ifndef MG_HAVE_CHECK
NYI(mg_cmd_check)
#endif
#ifndef MG_HAVE_AUTHZ
NYI(mg_cmd_authz)
#endif
#ifndef MG_HAVE_CA
NYI(mg_cmd_ca)
#endif
#ifndef MG_HAVE_RUN
NYI(mg_cmd_run)
#endif
