/* analyze.c - istioctl-analyze style checks on a loaded configuration. */
#include "config_int.h"

void mg_config_analyze(const struct mg_config *c, struct mg_diags *d)
{
    (void)c;
    (void)d;
}
