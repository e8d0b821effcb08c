/* diag.h - configuration diagnostics collected into a list (report all).
 *
 * Every message carries FILE:LINE:COL. Printing gives
 *   FILE:LINE:COL: error: message
 * one per line, in the order they were added. */
#ifndef MG_DIAG_H
#define MG_DIAG_H
#include <stdio.h>
#include <stddef.h>

enum mg_severity { MG_ERROR, MG_WARNING };

/* A position in an input file. `file` comes from mg_intern() (util.h) and
 * lives until the process exits, so positions can be copied freely. */
struct mg_pos {
    const char *file;
    int line, col;              /* 1-based; 0 = unknown */
};

struct mg_diag {
    enum mg_severity sev;
    struct mg_pos pos;
    char *msg;                  /* owned */
};

struct mg_diags {
    struct mg_diag *v;
    size_t n, cap;
    size_t errors, warnings;
};

/* Add a message; formats like printf. Never fails (aborts on OOM). */
void mg_diag_add(struct mg_diags *d, enum mg_severity sev, struct mg_pos pos,
                 const char *fmt, ...) __attribute__((format(printf, 4, 5)));
#define mg_error(d, pos, ...) mg_diag_add((d), MG_ERROR, (pos), __VA_ARGS__)
#define mg_warning(d, pos, ...) mg_diag_add((d), MG_WARNING, (pos), __VA_ARGS__)

/* Print every message as FILE:LINE:COL: error|warning: msg. */
void mg_diags_print(const struct mg_diags *d, FILE *out);
/* Free the messages (not the struct itself). */
void mg_diags_free(struct mg_diags *d);

#endif
