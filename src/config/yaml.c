/* yaml.c - libyaml event stream -> positioned node tree, with hard limits.
 *
 * The event API is used (not the document API) because it can be stopped at
 * once: the moment a limit is crossed the parser is dropped, so deep nesting
 * never reaches libyaml's quadratic paths. */
#include <stdlib.h>
#include <string.h>
#include <yaml.h>
#include "base/base.h"
#include "config/internal.h"

struct builder {
    const char *file;
    const char *data;
    size_t len;
    /* a cursor for line_start(): scalar events come in file order */
    int cur_line;
    const char *cur_p;
    struct mg_diags *d;
    struct mg_ydocs *out;
    struct mg_ynode *stack[MG_YAML_MAX_DEPTH + 1];
    int depth;
    int flow_depth;
    size_t nodes;
    struct mg_ynode *root;
    bool have_doc;
    struct mg_pos doc_pos;
    /* anchors of the current document: name -> node (NULL while the node
     * is still open, so an alias to it, a cycle, is refused) */
    struct anchor { char *name; struct mg_ynode *node; } *anchors;
    size_t n_anchors;
    size_t alias_nodes;                 /* nodes created by expanding aliases */
    size_t open_anchor[MG_YAML_MAX_DEPTH + 1];  /* 1 + anchor index of stack[i], or 0 */
    /* merge-key values taken out of their maps: anchors may still name
     * them, so they live until the document's anchors go */
    struct mg_ynode **dead;
    size_t n_dead;
};

static struct mg_pos mark_pos(const struct builder *b, yaml_mark_t m)
{
    struct mg_pos p = { b->file, (int)m.line + 1, (int)m.column + 1 };
    return p;
}

static void node_free(struct mg_ynode *n)
{
    if (!n)
        return;
    for (size_t i = 0; i < n->n; i++)
        node_free(n->items[i]);
    free(n->items);
    free(n->str);
    free(n);
}

void mg_yaml_free(struct mg_ydocs *docs)
{
    for (size_t i = 0; i < docs->n; i++)
        node_free(docs->v[i].root);
    free(docs->v);
    docs->v = NULL;
    docs->n = 0;
}

bool mg_ynode_is_null(const struct mg_ynode *n)
{
    if (!n)
        return true;
    if (n->type != MG_YSCALAR || !n->plain)
        return false;
    return n->len == 0 || strcmp(n->str, "~") == 0 || strcmp(n->str, "null") == 0 ||
           strcmp(n->str, "Null") == 0 || strcmp(n->str, "NULL") == 0;
}

const struct mg_ynode *mg_ynode_get(const struct mg_ynode *m, const char *key)
{
    if (!m || m->type != MG_YMAP)
        return NULL;
    for (size_t i = 0; i + 1 < m->n; i += 2)
        if (m->items[i]->type == MG_YSCALAR && strcmp(m->items[i]->str, key) == 0)
            return m->items[i + 1];
    return NULL;
}

struct mg_pos mg_ynode_at(const struct mg_ynode *n, size_t off)
{
    struct mg_pos p = n->text;
    size_t bol = 0;
    if (off > n->len)
        off = n->len;
    for (size_t i = 0; i < off; i++)
        if (n->str[i] == '\n') {
            if (!n->literal)
                return n->pos;
            p.line++;
            bol = i + 1;
        }
    if (p.line == n->text.line)
        p.col += (int)(off - bol);
    else
        p.col = n->text.col + (int)(off - bol);
    return p;
}

const char *mg_ynode_kind(const struct mg_ynode *n)
{
    if (!n)
        return "nothing";
    switch (n->type) {
    case MG_YSCALAR: return mg_ynode_is_null(n) ? "null" : "a string";
    case MG_YSEQ: return "a list";
    case MG_YMAP: return "a map";
    }
    return "?";
}

/* Standard tags only: anything else would change meaning in ways the loader
 * cannot honour, so it is refused rather than silently read as a string. */
static bool tag_ok(const char *tag, bool *is_str)
{
    static const char *const std[] = { "str", "int", "bool", "null", "float", "map",
                                       "seq", "timestamp", "binary" };
    const char *pfx = "tag:yaml.org,2002:";

    *is_str = false;
    if (!tag || strcmp(tag, "!") == 0)
        return true;
    if (!mg_has_prefix(tag, pfx))
        return false;
    for (size_t i = 0; i < MG_ARRAY_LEN(std); i++)
        if (strcmp(tag + strlen(pfx), std[i]) == 0) {
            *is_str = i == 0;
            return true;
        }
    return false;
}

struct keyref {
    const struct mg_ynode *key;
    size_t idx;
};

static int keyref_cmp(const void *a, const void *b)
{
    const struct keyref *x = a, *y = b;
    size_t lx = x->key->len, ly = y->key->len;
    int c = memcmp(x->key->str, y->key->str, lx < ly ? lx : ly);
    if (c)
        return c;
    if (lx != ly)
        return lx < ly ? -1 : 1;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* Sorting keeps this O(n log n) even for a hostile mapping with 10^5 keys. */
static void check_dup_keys(struct builder *b, const struct mg_ynode *m)
{
    size_t nk = m->n / 2;
    struct keyref *r;

    if (nk < 2)
        return;
    r = mg_xmalloc(nk * sizeof(*r));
    for (size_t i = 0; i < nk; i++) {
        r[i].key = m->items[2 * i];
        r[i].idx = i;
    }
    qsort(r, nk, sizeof(*r), keyref_cmp);
    for (size_t i = 1; i < nk; i++)
        if (r[i].key->len == r[i - 1].key->len &&
            memcmp(r[i].key->str, r[i - 1].key->str, r[i].key->len) == 0)
            mg_error(b->d, r[i].key->pos, "duplicate key \"%s\" (first at line %d)",
                     r[i].key->str, r[i - 1].key->pos.line);
    free(r);
}

static bool attach(struct builder *b, struct mg_ynode *n)
{
    struct mg_ynode *p;

    if (b->depth == 0) {
        if (b->root) {
            node_free(n);           /* cannot happen with a well-formed stream */
            return false;
        }
        b->root = n;
        return true;
    }
    p = b->stack[b->depth - 1];
    if (p->type == MG_YMAP && p->n % 2 == 0 && n->type != MG_YSCALAR) {
        mg_error(b->d, n->pos, "mapping keys must be plain strings");
        node_free(n);
        return false;
    }
    if ((p->n & (p->n - 1)) == 0)   /* grow at powers of two */
        p->items = mg_xrealloc(p->items, (p->n ? p->n * 2 : 4) * sizeof(*p->items));
    p->items[p->n++] = n;
    return true;
}

static void anchors_clear(struct builder *b)
{
    for (size_t i = 0; i < b->n_anchors; i++)
        free(b->anchors[i].name);
    free(b->anchors);
    b->anchors = NULL;
    b->n_anchors = 0;
    for (size_t i = 0; i < b->n_dead; i++)
        node_free(b->dead[i]);
    free(b->dead);
    b->dead = NULL;
    b->n_dead = 0;
}

static void bury(struct builder *b, struct mg_ynode *n)
{
    b->dead = mg_xrealloc(b->dead, (b->n_dead + 1) * sizeof(*b->dead));
    b->dead[b->n_dead++] = n;
}

static struct anchor *anchor_find(struct builder *b, const char *name)
{
    for (size_t i = b->n_anchors; i-- > 0;)     /* the latest definition wins */
        if (strcmp(b->anchors[i].name, name) == 0)
            return &b->anchors[i];
    return NULL;
}

/* Define (or redefine) anchor `name` for node n (NULL: still open). */
static bool anchor_set(struct builder *b, const char *name, struct mg_ynode *n, struct mg_pos pos)
{
    struct anchor *a = anchor_find(b, name);
    if (a) {
        a->node = n;
        return true;
    }
    if (b->n_anchors >= MG_YAML_MAX_ANCHORS) {
        mg_error(b->d, pos, "more than %d anchors in one document", MG_YAML_MAX_ANCHORS);
        return false;
    }
    b->anchors = mg_xrealloc(b->anchors, (b->n_anchors + 1) * sizeof(*b->anchors));
    b->anchors[b->n_anchors++] = (struct anchor){ mg_xstrdup(name), n };
    return true;
}

static struct mg_ynode *new_node(struct builder *b, enum mg_ynode_type t, struct mg_pos pos);

/* A copy of n for an alias; counts every node against both caps. */
static struct mg_ynode *node_copy(struct builder *b, const struct mg_ynode *n, struct mg_pos pos)
{
    struct mg_ynode *c;

    if (++b->alias_nodes > MG_YAML_MAX_ALIAS_NODES) {
        mg_error(b->d, pos, "aliases expand to more than %u nodes (excessive aliasing)",
                 MG_YAML_MAX_ALIAS_NODES);
        return NULL;
    }
    if (!(c = new_node(b, n->type, n->pos)))
        return NULL;
    if (n->str) {
        c->str = mg_xstrndup(n->str, n->len);
        c->len = n->len;
        c->text = n->text;
        c->literal = n->literal;
    }
    c->plain = n->plain;
    if (n->n) {
        c->items = mg_xcalloc(n->n, sizeof(*c->items));
        for (size_t i = 0; i < n->n; i++) {
            if (!(c->items[i] = node_copy(b, n->items[i], pos))) {
                node_free(c);
                return NULL;
            }
            c->n++;
        }
    }
    return c;
}

static bool check_props(struct builder *b, const char *anchor, const char *tag, struct mg_pos pos,
                        bool *is_str)
{
    (void)b;
    (void)anchor;
    (void)pos;
    if (!tag_ok(tag, is_str)) {
        mg_error(b->d, pos, "unsupported tag \"%s\"", tag);
        return false;
    }
    return true;
}

static struct mg_ynode *new_node(struct builder *b, enum mg_ynode_type t, struct mg_pos pos)
{
    struct mg_ynode *n;

    if (++b->nodes > MG_YAML_MAX_NODES) {
        mg_error(b->d, pos, "too many YAML nodes (limit %u)", MG_YAML_MAX_NODES);
        return NULL;
    }
    n = mg_xcalloc(1, sizeof(*n));
    n->type = t;
    n->pos = pos;
    return n;
}

/* The start of 1-based line `line` (NULL past the end): linear over a
 * whole parse, as lines are asked for in file order. */
static const char *line_start(struct builder *b, int line)
{
    const char *end = b->data + b->len;
    if (line < b->cur_line || !b->cur_p) {
        b->cur_line = 1;
        b->cur_p = b->data;
    }
    while (b->cur_line < line) {
        const char *nl = memchr(b->cur_p, '\n', (size_t)(end - b->cur_p));
        if (!nl)
            return NULL;
        b->cur_p = nl + 1;
        b->cur_line++;
    }
    return b->cur_p;
}

/* Return the text of 1-based line `line` of the input (not NUL terminated). */
static const char *input_line(const struct builder *b, int line, size_t *llen)
{
    const char *p = b->data, *end = b->data + b->len;

    for (int l = 1; l < line && p < end; l++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl)
            return NULL;
        p = nl + 1;
    }
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    *llen = (size_t)((nl ? nl : end) - p);
    return p;
}

/* libyaml 0.2.5: `{key: request.auth.claims[iss]}` is a syntax error in
 * flow style; users copy such lines from blogs, so the message says why. */
static bool flow_bracket_hint(const struct builder *b, int line)
{
    size_t llen;
    const char *s = input_line(b, line, &llen);
    bool flow = b->flow_depth > 0;

    if (!s)
        return false;
    for (size_t i = 0; i < llen; i++)
        if (s[i] == '{')
            flow = true;
    if (!flow)
        return false;
    for (size_t i = 1; i < llen; i++)
        if (s[i] == '[' && (s[i - 1] == ']' || s[i - 1] == '_' || s[i - 1] == '.' ||
                            (s[i - 1] >= 'a' && s[i - 1] <= 'z') ||
                            (s[i - 1] >= 'A' && s[i - 1] <= 'Z') ||
                            (s[i - 1] >= '0' && s[i - 1] <= '9')))
            return true;
    return false;
}

static void report_parser_error(struct builder *b, const yaml_parser_t *p)
{
    struct mg_pos pos = mark_pos(b, p->problem_mark);
    const char *problem = p->problem ? p->problem : "invalid YAML";
    bool hint = flow_bracket_hint(b, pos.line) ||
                (p->context && flow_bracket_hint(b, (int)p->context_mark.line + 1));

    if (p->error == YAML_READER_ERROR) {
        /* reader errors have no line/column, only a byte offset */
        pos.line = 1;
        pos.col = 1;
        size_t off = p->problem_offset;
        for (size_t i = 0; i < off && i < b->len; i++) {
            if (b->data[i] == '\n') {
                pos.line++;
                pos.col = 1;
            } else {
                pos.col++;
            }
        }
        mg_error(b->d, pos, "invalid input: %s (byte offset %zu)", problem, off);
        return;
    }
    mg_error(b->d, pos, "YAML syntax error: %s%s%s%s", p->context ? p->context : "",
             p->context ? ": " : "", problem,
             hint ? " (a key such as request.auth.claims[iss] cannot be written inside a "
                    "flow collection {...} or [...]: quote the key or use block style)"
                  : "");
}

/* YAML merge keys, as Kubernetes' reader takes them: `<<: *base` or
 * `<<: [*a, *b]` adds the entries of those maps whose keys the map does not
 * write itself (the first map listed wins). */
static bool merge_keys(struct builder *b, struct mg_ynode *m)
{
    size_t at = m->n;

    for (size_t i = 0; i + 1 < m->n; i += 2)
        if (m->items[i]->plain && strcmp(m->items[i]->str, "<<") == 0) {
            at = i;
            break;
        }
    if (at == m->n)
        return true;
    struct mg_ynode *key = m->items[at], *v = m->items[at + 1];
    struct mg_ynode *const *src = &v;
    size_t nsrc = 1;
    if (v->type == MG_YSEQ) {
        src = v->items;
        nsrc = v->n;
    }
    size_t work = 0;
    for (size_t s = 0; s < nsrc; s++) {
        if (src[s]->type != MG_YMAP) {
            mg_error(b->d, src[s]->pos, "a merge key (<<) takes a map or a list of maps");
            return false;
        }
        work += src[s]->n / 2;
    }
    /* each merged key is looked up in the map: keep that quadratic step small */
    if (work && (m->n / 2 + work) > MG_YAML_MAX_ALIAS_NODES / work) {
        mg_error(b->d, key->pos, "merge key (<<) too large");
        return false;
    }
    /* take the pair out, then append what the sources add */
    memmove(&m->items[at], &m->items[at + 2], (m->n - at - 2) * sizeof(*m->items));
    m->n -= 2;
    for (size_t s = 0; s < nsrc; s++)
        for (size_t i = 0; i + 1 < src[s]->n; i += 2) {
            const struct mg_ynode *k = src[s]->items[i];
            if (k->type != MG_YSCALAR || mg_ynode_get(m, k->str))
                continue;
            struct mg_ynode *kc = node_copy(b, k, k->pos), *vc;
            if (!kc)
                goto fail;
            if (!(vc = node_copy(b, src[s]->items[i + 1], k->pos))) {
                node_free(kc);
                goto fail;
            }
            if ((m->n & (m->n - 1)) == 0 || m->n < 4)
                m->items = mg_xrealloc(m->items, (m->n < 4 ? 4 : m->n * 2) * sizeof(*m->items));
            m->items[m->n++] = kc;
            m->items[m->n++] = vc;
        }
    bury(b, key);
    bury(b, v);
    return true;
fail:
    bury(b, key);
    bury(b, v);
    return false;
}

/* Handle one event. Returns 1 to go on, 0 at the end of the stream, -1 to
 * stop on error. */
static int on_event(struct builder *b, const yaml_event_t *ev)
{
    struct mg_pos pos = mark_pos(b, ev->start_mark);
    struct mg_ynode *n;
    bool is_str;

    switch (ev->type) {
    case YAML_STREAM_END_EVENT:
        return 0;
    case YAML_DOCUMENT_START_EVENT:
        anchors_clear(b);
        b->root = NULL;
        b->have_doc = true;
        b->doc_pos = pos;
        return 1;
    case YAML_DOCUMENT_END_EVENT:
        if (b->out->n >= 4 ? (b->out->n & (b->out->n - 1)) == 0 : b->out->n == 0)
            b->out->v = mg_xrealloc(b->out->v, (b->out->n ? b->out->n * 2 : 4) * sizeof(*b->out->v));
        b->out->v[b->out->n].root = b->root;
        b->out->v[b->out->n].pos = b->doc_pos;
        b->out->n++;
        b->root = NULL;
        b->have_doc = false;
        return 1;
    case YAML_ALIAS_EVENT: {
        /* Kubernetes' reader expands aliases; so does this one, within
         * MG_YAML_MAX_ALIAS_NODES, so a "billion laughs" stays refused */
        const char *name = (const char *)ev->data.alias.anchor;
        struct anchor *a = anchor_find(b, name);
        if (!a) {
            mg_error(b->d, pos, "unknown anchor (alias *%s)", name);
            return -1;
        }
        if (!a->node) {
            mg_error(b->d, pos, "alias *%s refers to a node that contains it (a cycle)", name);
            return -1;
        }
        if (!(n = node_copy(b, a->node, pos)))
            return -1;
        return attach(b, n) ? 1 : -1;
    }
    case YAML_SCALAR_EVENT:
        if (!check_props(b, (const char *)ev->data.scalar.anchor,
                         (const char *)ev->data.scalar.tag, pos, &is_str))
            return -1;
        if (ev->data.scalar.length > MG_YAML_MAX_SCALAR) {
            mg_error(b->d, pos, "scalar of %zu bytes is larger than the limit of %u",
                     ev->data.scalar.length, MG_YAML_MAX_SCALAR);
            return -1;
        }
        if (memchr(ev->data.scalar.value, '\0', ev->data.scalar.length)) {
            mg_error(b->d, pos, "NUL byte inside a scalar");
            return -1;
        }
        if (!(n = new_node(b, MG_YSCALAR, pos)))
            return -1;
        n->str = mg_xstrndup((const char *)ev->data.scalar.value, ev->data.scalar.length);
        n->len = ev->data.scalar.length;
        n->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && !is_str;
        n->text = pos;
        if (ev->data.scalar.style == YAML_SINGLE_QUOTED_SCALAR_STYLE ||
            ev->data.scalar.style == YAML_DOUBLE_QUOTED_SCALAR_STYLE) {
            n->text.col++;
        } else if (ev->data.scalar.style == YAML_LITERAL_SCALAR_STYLE) {
            /* the content starts on the first non-blank line after `|` */
            const char *p = line_start(b, pos.line), *end = b->data + b->len;
            int line = pos.line;
            while (p && p < end && *p != '\n')
                p++;
            while (p && p < end && line < pos.line + 64) {
                const char *t = ++p;    /* past the newline */
                line++;
                while (p < end && *p == ' ')
                    p++;
                if (p < end && *p != '\n' && *p != '\r') {
                    n->text.line = line;
                    n->text.col = (int)(p - t) + 1;
                    n->literal = true;
                    break;
                }
                while (p < end && *p != '\n')
                    p++;
            }
        }
        if (ev->data.scalar.anchor && !anchor_set(b, (const char *)ev->data.scalar.anchor, n, pos)) {
            node_free(n);
            return -1;
        }
        return attach(b, n) ? 1 : -1;
    case YAML_SEQUENCE_START_EVENT:
    case YAML_MAPPING_START_EVENT: {
        bool seq = ev->type == YAML_SEQUENCE_START_EVENT;
        const char *anchor = (const char *)(seq ? ev->data.sequence_start.anchor
                                                : ev->data.mapping_start.anchor);
        const char *tag = (const char *)(seq ? ev->data.sequence_start.tag
                                             : ev->data.mapping_start.tag);
        bool flow = seq ? ev->data.sequence_start.style == YAML_FLOW_SEQUENCE_STYLE
                        : ev->data.mapping_start.style == YAML_FLOW_MAPPING_STYLE;
        if (!check_props(b, anchor, tag, pos, &is_str))
            return -1;
        if (b->depth >= MG_YAML_MAX_DEPTH) {
            mg_error(b->d, pos, "nesting deeper than %d levels", MG_YAML_MAX_DEPTH);
            return -1;
        }
        if (!(n = new_node(b, seq ? MG_YSEQ : MG_YMAP, pos)))
            return -1;
        if (!attach(b, n))
            return -1;
        b->stack[b->depth++] = n;
        if (flow)
            b->flow_depth++;
        if (anchor && !anchor_set(b, anchor, NULL, pos))
            return -1;
        b->open_anchor[b->depth - 1] = anchor ? anchor_find(b, anchor) - b->anchors + 1 : 0;
        return 1;
    }
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT:
        if (b->depth == 0)
            return -1;
        n = b->stack[--b->depth];
        if (b->flow_depth > 0 && b->flow_depth > b->depth)
            b->flow_depth = b->depth;
        if (n->type == MG_YMAP && !merge_keys(b, n))
            return -1;
        if (n->type == MG_YMAP)
            check_dup_keys(b, n);
        if (b->open_anchor[b->depth])
            b->anchors[b->open_anchor[b->depth] - 1].node = n;
        return 1;
    default:
        return 1;
    }
}

/* Kubernetes reads YAML with go-yaml, which ends a plain scalar in a flow
 * collection at a flow indicator even right after a ':' (`[1.2.3.4,
 * 001:db8::]` is two strings); libyaml stops with "found unexpected ':'".
 * For that error, find the scalar go-yaml would read from `start` and
 * return its end (0: not such a case). */
static size_t go_yaml_flow_scalar_end(const char *s, size_t len, size_t start)
{
    size_t i = start, end;

    while (i < len && s[i] != '\n' && s[i] != '\r' && !strchr(",[]{}?", s[i]) &&
           !(s[i] == ':' && (i + 1 == len || strchr(" \t\r\n", s[i + 1]))) &&
           !(s[i] == '#' && i > start && (s[i - 1] == ' ' || s[i - 1] == '\t')))
        i++;
    end = i;
    while (end > start && (s[end - 1] == ' ' || s[end - 1] == '\t'))
        end--;
    if (end == start || memchr(s + start, '\'', end - start))
        return 0;
    return end;
}

/* One pass over data; on the go-yaml case above, *fix_start and *fix_end (when
 * fix_start is not NULL) name the scalar to quote and 2 is returned. */
static int parse_once(struct builder *b, const char *data, size_t len, size_t *fix_start,
                      size_t *fix_end)
{
    yaml_parser_t parser;
    int rc = 1;

    b->data = data;
    b->len = len;
    b->cur_line = 1;
    b->cur_p = data;
    if (!yaml_parser_initialize(&parser))
        mg_oom();
    yaml_parser_set_input_string(&parser, (const unsigned char *)data, len);
    while (rc > 0) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&parser, &ev)) {
            size_t end;
            if (fix_start && parser.error == YAML_SCANNER_ERROR && parser.problem &&
                strcmp(parser.problem, "found unexpected ':'") == 0 && parser.context &&
                strcmp(parser.context, "while scanning a plain scalar") == 0 &&
                (end = go_yaml_flow_scalar_end(data, len, parser.context_mark.index)) >
                    parser.problem_mark.index) {
                *fix_start = parser.context_mark.index;
                *fix_end = end;
                rc = 2;
                break;
            }
            report_parser_error(b, &parser);
            rc = -1;
            break;
        }
        rc = on_event(b, &ev);
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&parser);
    /* A document cut short by an error is dropped: its tree is incomplete. */
    if (b->have_doc)
        node_free(b->root);
    anchors_clear(b);
    return rc;
}

int mg_yaml_parse(const char *file, const char *data, size_t len, struct mg_diags *d,
                  struct mg_ydocs *out)
{
    struct builder b;
    size_t errors0 = d->errors;
    char *patched = NULL;
    int rc;

    if (len > MG_YAML_MAX_INPUT) {
        struct mg_pos p = { mg_intern(file ? file : "<input>"), 1, 1 };
        mg_error(d, p, "input of %zu bytes is larger than the limit of %u bytes", len,
                 MG_YAML_MAX_INPUT);
        return -1;
    }
    /* A pass that meets the go-yaml case is thrown away (its diagnostics
     * too) and the input read again with that scalar quoted; columns after
     * it on its line move by the quotes. */
    for (int attempt = 0;; attempt++) {
        struct mg_diags tmp = { 0 };
        size_t fs = 0, fe = 0;

        memset(&b, 0, sizeof(b));
        b.file = mg_intern(file ? file : "<input>");
        b.d = &tmp;
        b.out = out;
        rc = parse_once(&b, patched ? patched : data, len, attempt < 16 ? &fs : NULL, &fe);
        if (rc == 2) {
            const char *cur = patched ? patched : data;
            char *next = mg_xmalloc(len + 2);
            memcpy(next, cur, fs);
            next[fs] = '\'';
            memcpy(next + fs + 1, cur + fs, fe - fs);
            next[fe + 1] = '\'';
            memcpy(next + fe + 2, cur + fe, len - fe);
            free(patched);
            patched = next;
            len += 2;
            mg_yaml_free(out);
            mg_diags_free(&tmp);
            continue;
        }
        for (size_t i = 0; i < tmp.n; i++)
            mg_diag_add(d, tmp.v[i].sev, tmp.v[i].pos, "%s", tmp.v[i].msg);
        mg_diags_free(&tmp);
        break;
    }
    free(patched);
    return rc < 0 || d->errors > errors0 ? -1 : 0;
}
