/* cmd/cmd.h - the entry points of the meshgate subcommands. */
#ifndef MG_CMD_CMD_H
#define MG_CMD_CMD_H

/* entry points of the meshgate subcommands.
 *
 * main.c only dispatches: each function takes the arguments after the
 * subcommand word (argv[0] is the subcommand name) and returns the process
 * exit status. Each lives in the module that owns the feature. */
int mg_cmd_check(int argc, char **argv);   /* config.c: load + analyse */
int mg_cmd_authz(int argc, char **argv);   /* policy/explain.c: offline decision */
int mg_cmd_ca(int argc, char **argv);      /* ca.c: trust root and certificates */
int mg_cmd_run(int argc, char **argv);     /* gateway.c: serve */

/* The default configuration path: $(sysconfdir)/meshgate. */
#define MG_DEFAULT_CONFIG SYSCONFDIR "/meshgate"

#endif
