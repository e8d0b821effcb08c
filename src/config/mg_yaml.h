/* mg_yaml.h - (not yaml.h: that name would shadow libyaml's <yaml.h>)
 * bounded YAML reader: libyaml events -> a node tree where every
 * node carries its FILE:LINE:COL.
 *
 * Only what Kubernetes-style configuration needs is accepted. Anchors and
 * aliases are refused (no billion-laughs), non-standard tags are refused,
 * duplicate mapping keys are an error at the second key (libyaml accepts
 * them silently), and input size, nesting depth, scalar size and node count
 * are capped before anything grows (libyaml 0.2.5 is
 * quadratic in depth, so the parse stops as soon as depth > 64). */
#ifndef MG_YAML_H
#define MG_YAML_H
#include <stdbool.h>
#include <stddef.h>
#include "base/diag.h"

#define MG_YAML_MAX_INPUT   (16u * 1024 * 1024)   /* bytes per file */
#define MG_YAML_MAX_DEPTH   64                    /* nested collections */
#define MG_YAML_MAX_SCALAR  (1024u * 1024)        /* bytes per scalar */
#define MG_YAML_MAX_NODES   1000000u              /* nodes per file */

enum mg_ynode_type { MG_YSCALAR, MG_YSEQ, MG_YMAP };

struct mg_ynode {
    enum mg_ynode_type type;
    struct mg_pos pos;
    /* scalar: the bytes (NUL terminated), length, and whether it was written
     * plain (unquoted); only plain scalars can be null, bool or numbers. */
    char *str;
    size_t len;
    bool plain;
    /* seq: items[0..n); map: items[2i] = key, items[2i+1] = value. */
    struct mg_ynode **items;
    size_t n;
};

struct mg_ydoc {
    struct mg_ynode *root;              /* NULL for an empty document */
    struct mg_pos pos;                  /* where the document starts */
};

struct mg_ydocs {
    struct mg_ydoc *v;
    size_t n;
};

/* Parse `len` bytes of `data` (need not be NUL terminated) as a YAML stream.
 * `file` names the input in positions (interned here). Documents read
 * before a fatal problem are kept in `out`. Every problem goes to `d`.
 * Returns 0 when the whole stream was read without error, -1 otherwise.
 * The caller frees `out` with mg_yaml_free in both cases. */
int mg_yaml_parse(const char *file, const char *data, size_t len, struct mg_diags *d,
                  struct mg_ydocs *out);

void mg_yaml_free(struct mg_ydocs *docs);

/* Helpers for readers of the tree. */
/* A plain `null`, `~`, `Null`, `NULL` or empty plain scalar. */
bool mg_ynode_is_null(const struct mg_ynode *n);
/* Value of key `key` in map `m` (scalar keys only), or NULL. */
const struct mg_ynode *mg_ynode_get(const struct mg_ynode *m, const char *key);
/* "a string", "a list", "a map" (for messages). */
const char *mg_ynode_kind(const struct mg_ynode *n);

#endif
