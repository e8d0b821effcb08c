/* test_yaml.c - the bounded YAML reader (config/internal.h): limits, refused
 * constructs, positions, and degenerate inputs. */
#include <stdlib.h>
#include <string.h>
#include "config/internal.h"
#include "config/config.h"
#include "base/base.h"
#include "tap.h"

/* Parse `s` (length n); return the number of errors, keep the docs count. */
static size_t parse(const char *s, size_t n, size_t *ndocs, const char *want_msg)
{
    struct mg_diags d = { 0 };
    struct mg_ydocs docs = { 0 };
    size_t errors;

    mg_yaml_parse("t.yaml", s, n, &d, &docs);
    errors = d.errors;
    if (ndocs)
        *ndocs = docs.n;
    if (want_msg) {
        bool found = false;
        for (size_t i = 0; i < d.n; i++)
            if (strstr(d.v[i].msg, want_msg))
                found = true;
        if (!found) {
            printf("# wanted a message containing \"%s\"; got:\n", want_msg);
            mg_diags_print(&d, stdout);
            errors = 0;     /* make the caller's check fail */
        }
    }
    mg_yaml_free(&docs);
    mg_diags_free(&d);
    return errors;
}

static size_t parses(const char *s, size_t *ndocs, const char *want_msg)
{
    return parse(s, strlen(s), ndocs, want_msg);
}

static char *nested(int depth)
{
    char *s = mg_xmalloc((size_t)depth * 2 + 2);
    for (int i = 0; i < depth; i++) {
        s[i] = '[';
        s[depth + i] = ']';
    }
    s[2 * depth] = '\n';
    s[2 * depth + 1] = '\0';
    return s;
}

static void limits(void)
{
    char *s = nested(64);
    ok(parses(s, NULL, NULL) == 0, "depth 64 accepted");
    free(s);
    s = nested(65);
    ok(parses(s, NULL, "nesting deeper than 64") == 1, "depth 65 rejected");
    free(s);

    /* 10 MB of garbage of several shapes; each must be refused (and fast,
     * since the parse stops at the first limit). */
    size_t big = 10u * 1024 * 1024;
    char *g = mg_xmalloc(big);
    unsigned x = 12345;
    for (size_t i = 0; i < big; i++) {
        x = x * 1103515245u + 12345u;
        g[i] = (char)(x >> 16);
    }
    ok(parse(g, big, NULL, NULL) >= 1, "10 MB of random bytes rejected");
    memset(g, '[', big);
    ok(parse(g, big, NULL, "nesting deeper") == 1, "10 MB of '[' rejected at depth 65");
    memset(g, 'x', big);
    ok(parse(g, big, NULL, "larger than the limit") == 1, "10 MB plain scalar rejected");
    for (size_t i = 0; i + 4 <= big; i += 4)
        memcpy(g + i, "- a\n", 4);
    ok(parse(g, big, NULL, "too many YAML nodes") == 1, "10 MB of list items hits the node cap");
    free(g);

    size_t huge = MG_YAML_MAX_INPUT + 1;
    g = mg_xcalloc(1, huge);
    memset(g, ' ', huge);
    ok(parse(g, huge, NULL, "larger than the limit of") == 1, "input over 16 MiB rejected");
    free(g);

    size_t sl = MG_YAML_MAX_SCALAR + 10;
    g = mg_xmalloc(sl + 8);
    memcpy(g, "k: \"", 4);
    memset(g + 4, 'v', sl);
    memcpy(g + 4 + sl, "\"\n", 3);
    ok(parse(g, sl + 6, NULL, "scalar of") == 1, "scalar over 1 MiB rejected");
    free(g);
}

static void refused(void)
{
    ok(parses("a: *x\n", NULL, "unknown anchor") >= 1, "alias without anchor rejected");
    ok(parses("- &a [ *a ]\n", NULL, "a cycle") == 1, "alias cycle rejected");
    ok(parses("a: &a {b: *a}\n", NULL, "a cycle") == 1, "alias cycle through a map rejected");
    /* billion laughs: 9^6 strings from a few lines */
    ok(parses("a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
              "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
              "e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: [*e,*e,*e,*e,*e,*e,*e,*e,*e]\n", NULL,
              "excessive aliasing") == 1, "billion laughs refused");
    ok(parses("a: &a x\n---\nb: *a\n", NULL, "unknown anchor") == 1,
       "anchors do not cross documents");
    ok(parses("a: {<<: x}\n", NULL, "merge key (<<) takes a map") == 1, "merge of a scalar");
    ok(parses("a: 1\nb: 2\na: 3\n", NULL, "duplicate key \"a\" (first at line 1)") == 1,
       "duplicate key rejected");
    ok(parses("m: {x: 1, y: 2, x: 3}\n", NULL, "duplicate key") == 1, "duplicate flow key");
    ok(parses("a: !custom 1\n", NULL, "unsupported tag") == 1, "custom tag rejected");
    ok(parses("a: !!str 1\nb: !!int 2\nc: !!map {}\n", NULL, NULL) == 0, "standard tags accepted");
    ok(parses("? [a, b]\n: c\n", NULL, "mapping keys must be") == 1, "complex key rejected");
    ok(parse("a: b\0c\n", 7, NULL, NULL) >= 1, "NUL byte rejected");
    ok(parses("a: \"\\0\"\n", NULL, "NUL byte inside") == 1, "escaped NUL rejected");
    ok(parses("a: \xc3\x28\n", NULL, "invalid input") == 1, "invalid UTF-8 rejected");
    ok(parses("a: [b\n", NULL, "YAML syntax error") == 1, "syntax error reported");
    ok(parses("w: {k: request.auth.claims[iss]}\n", NULL, "quote the key or use block style") == 1,
       "flow key with [ gets a hint");
}

static void degenerate(void)
{
    size_t n = 99;
    ok(parses("", &n, NULL) == 0 && n == 0, "empty input: no documents");
    ok(parses("# just a comment\n\n# another\n", &n, NULL) == 0 && n == 0, "only comments");
    ok(parses("---\n", &n, NULL) == 0 && n == 1, "a lone --- is one empty document");
    ok(parses("---\n---\na: 1\n...\n", &n, NULL) == 0 && n == 2, "empty document then one");

    struct mg_diags d = { 0 };
    struct mg_config *c = mg_config_load_buffer("e.yaml", "---\n", 4, &d);
    ok(c && d.n == 0, "config from an empty document loads with no diagnostics");
    mg_config_free(c);
    c = mg_config_load_buffer("e.yaml", "", 0, &d);
    ok(c && d.n == 0, "config from an empty file loads");
    mg_config_free(c);
    c = mg_config_load_buffer("e.yaml", "- a\n", 4, &d);
    ok(!c && d.errors == 1, "a list document is an error");
    mg_config_free(c);
    mg_diags_free(&d);
}

static void tree(void)
{
    const char *y = "a: x\nb:\n  - 1\n  - 'two'\nc: ~\n";
    struct mg_diags d = { 0 };
    struct mg_ydocs docs = { 0 };

    ok(mg_yaml_parse("p.yaml", y, strlen(y), &d, &docs) == 0 && docs.n == 1, "tree parses");
    const struct mg_ynode *r = docs.v[0].root;
    const struct mg_ynode *b = mg_ynode_get(r, "b");
    ok(r->type == MG_YMAP && r->n == 6, "root is a map of 3 pairs");
    ok(b && b->type == MG_YSEQ && b->n == 2, "b is a list of 2");
    ok(b && b->items[0]->plain && !b->items[1]->plain, "plain vs quoted");
    ok(b && b->items[1]->pos.line == 4 && b->items[1]->pos.col == 5, "item position 4:5");
    ok(mg_ynode_is_null(mg_ynode_get(r, "c")), "~ is null");
    ok(!mg_ynode_is_null(b->items[1]) && mg_ynode_get(r, "zz") == NULL, "quoted is not null");
    is_str(r->items[0]->pos.file, "p.yaml", "file name in positions");
    mg_yaml_free(&docs);
    mg_diags_free(&d);
}

/* The tree as a compact string: maps {k=v,...}, lists [a,b], scalars. */
static void dump(const struct mg_ynode *n, struct mg_buf *b)
{
    if (n->type == MG_YSCALAR) {
        mg_buf_add(b, n->str, n->len);
        return;
    }
    mg_buf_add(b, n->type == MG_YMAP ? "{" : "[", 1);
    for (size_t i = 0; i < n->n; i++) {
        if (i)
            mg_buf_add(b, n->type == MG_YMAP && i % 2 ? "=" : ",", 1);
        dump(n->items[i], b);
    }
    mg_buf_add(b, n->type == MG_YMAP ? "}" : "]", 1);
}

static bool tree_is(const char *yaml, const char *want, const char *name)
{
    struct mg_diags d = { 0 };
    struct mg_ydocs docs = { 0 };
    struct mg_buf b = { 0 };
    bool good;

    mg_yaml_parse("t.yaml", yaml, strlen(yaml), &d, &docs);
    if (d.errors == 0 && docs.n == 1 && docs.v[0].root)
        dump(docs.v[0].root, &b);
    mg_buf_add(&b, "", 1);
    good = d.errors == 0 && strcmp(b.p, want) == 0;
    if (!good) {
        printf("# %s: got %s, want %s\n", name, b.p, want);
        mg_diags_print(&d, stdout);
    }
    free(b.p);
    mg_yaml_free(&docs);
    mg_diags_free(&d);
    return ok(good, "%s", name);
}

/* Anchors, aliases and merge keys, as Kubernetes' reader expands them. */
static void aliases(void)
{
    tree_is("a: &x [1, 2]\nb: *x\n", "{a=[1,2],b=[1,2]}", "alias of a list");
    tree_is("a: &x v\nb: *x\n", "{a=v,b=v}", "alias of a scalar");
    tree_is("a: &x v\nb: &x w\nc: *x\n", "{a=v,b=w,c=w}", "a redefined anchor: the latest");
    tree_is("base: &b {x: 1, y: 2}\nm: {<<: *b, y: 3}\n", "{base={x=1,y=2},m={y=3,x=1}}",
            "merge key: the map's own keys win");
    tree_is("a: &a {x: 1}\nb: &b {x: 2, y: 2}\nm: {<<: [*a, *b]}\n",
            "{a={x=1},b={x=2,y=2},m={x=1,y=2}}", "merge of a list: the first map wins");
    tree_is("m: {<<: &c {k: v}}\nn: *c\n", "{m={k=v},n={k=v}}",
            "an anchor on a merged map stays usable");
}

/* Plain scalars as go-yaml (Kubernetes) ends them in flow collections. */
static void go_yaml_scalars(void)
{
    tree_is("addresses: [1.2.3.4, 001:db8::]\n", "{addresses=[1.2.3.4,001:db8::]}",
            "an IPv6 address ending in :: inside [...]");
    tree_is("a: [x::, {k: y::}, 'z']\nb: [c::]\n", "{a=[x::,{k=y::},z],b=[c::]}",
            "several such scalars, in lists and maps");
    ok(parses("a: [x::, y\nb: 1\n", NULL, "YAML syntax error") == 1,
       "a real syntax error after one is still reported");
}

int main(void)
{
    limits();
    refused();
    aliases();
    go_yaml_scalars();
    degenerate();
    tree();
    (void)tap_plan;
    (void)tap_diag;
    return tap_done();
}
