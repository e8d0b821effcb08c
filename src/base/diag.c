/* diag.c - configuration diagnostics list. */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include "base/base.h"

void mg_diag_add(struct mg_diags *d, enum mg_severity sev, struct mg_pos pos,
                 const char *fmt, ...)
{
    va_list ap;
    char *msg;

    va_start(ap, fmt);
    if (vasprintf(&msg, fmt, ap) < 0)
        mg_oom();
    va_end(ap);
    if (d->n == d->cap) {
        d->cap = d->cap ? d->cap * 2 : 16;
        d->v = mg_xrealloc(d->v, d->cap * sizeof(*d->v));
    }
    d->v[d->n].sev = sev;
    d->v[d->n].pos = pos;
    d->v[d->n].msg = msg;
    d->n++;
    if (sev == MG_ERROR)
        d->errors++;
    else
        d->warnings++;
}

void mg_diags_print(const struct mg_diags *d, FILE *out)
{
    for (size_t i = 0; i < d->n; i++) {
        const struct mg_diag *g = &d->v[i];
        fprintf(out, "%s:%d:%d: %s: %s\n", g->pos.file ? g->pos.file : "<config>",
                g->pos.line, g->pos.col, g->sev == MG_ERROR ? "error" : "warning", g->msg);
    }
}

void mg_diags_free(struct mg_diags *d)
{
    for (size_t i = 0; i < d->n; i++)
        free(d->v[i].msg);
    free(d->v);
    memset(d, 0, sizeof(*d));
}
