/* index.c - the rule index: which rules a request can possibly match,
 * found from the keys every HTTP request (or TCP connection) has.
 *
 * A rule is filed under keys only when every `to` entry of the rule has a
 * positive field (hosts, methods, paths or ports; one per entry) whose every
 * value gives a key: an exact host or a host prefix (`example.com:*`; both
 * case-folded), an exact method, an exact path, a path prefix (`/api*`, or the literal start of a template such as
 * `/api/{*}`), a port. The rule then cannot match a request that has none of
 * those keys, because an entry needs one of its field's values to match and
 * FROM AND TO AND WHEN needs one entry. Any other rule (no `to`, an entry
 * without such a field, a wildcard or suffix value, a template starting with
 * an operator) is on the always list; a DENY rule that can match every
 * request is one of them. Negative fields and `when` conditions never give
 * keys: the rule test still checks them.
 *
 * TCP connections have their own index: there the HTTP-only fields do not
 * exist (an ALLOW/CUSTOM rule using one never matches and is left out; a
 * DENY/AUDIT rule loses them, so only its ports can give keys). */
#include <stdlib.h>
#include <string.h>
#include "policy/internal.h"

enum dim { DIM_HOST, DIM_HPREFIX, DIM_METHOD, DIM_PATH, DIM_PREFIX, DIM_PORT, DIM_N };

/* Host keys compare case-insensitively (hosts match so). */
static bool dim_icase(enum dim d)
{
    return d == DIM_HOST || d == DIM_HPREFIX;
}

#define FNV_OFFSET 0xcbf29ce484222325ULL
#define FNV_PRIME 0x100000001b3ULL

static uint64_t fnv_step(uint64_t h, unsigned char c)
{
    return (h ^ c) * FNV_PRIME;
}

static unsigned char fold(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? (unsigned char)(c - 'A' + 'a') : c;
}

static uint64_t hash_bytes(const char *s, size_t n, bool icase)
{
    uint64_t h = FNV_OFFSET;
    for (size_t i = 0; i < n; i++)
        h = fnv_step(h, icase ? fold((unsigned char)s[i]) : (unsigned char)s[i]);
    return h;
}

static uint64_t hash_port(uint16_t port)
{
    return fnv_step(fnv_step(FNV_OFFSET, (unsigned char)(port >> 8)), (unsigned char)port);
}

/* ---- build ---- */

struct posting {
    enum dim dim;
    const char *key;        /* NULL for ports */
    size_t len;             /* ports: the port */
    uint64_t hash;
    uint32_t seq;
};

struct vec {
    struct posting *p;
    size_t n, cap;
};

static void vec_push(struct vec *v, struct posting p)
{
    if (v->n == v->cap) {
        v->cap = v->cap ? v->cap * 2 : 64;
        v->p = mg_xrealloc(v->p, v->cap * sizeof(*v->p));
    }
    v->p[v->n++] = p;
}

static const struct mg_field *entry_field(const struct mg_entry *e, enum mg_attr_id attr)
{
    for (size_t i = 0; i < e->n; i++)
        if (e->f[i].attr == attr && e->f[i].has_pos)
            return &e->f[i];
    return NULL;
}

static enum mg_attr_id dim_attr(enum dim d)
{
    return d == DIM_HOST || d == DIM_HPREFIX ? MG_A_HOST : d == DIM_METHOD ? MG_A_METHOD :
           d == DIM_PORT ? MG_A_DEST_PORT : MG_A_PATH;
}

/* The key a matcher value requires of the request, if any: *d gets the map
 * (DIM_HOST and DIM_PATH stand for their exact and prefix maps and are
 * refined to DIM_HPREFIX and DIM_PREFIX). */
static bool pm_key(const struct mg_pm *m, enum dim *d, const char **key, size_t *len)
{
    switch (*d) {
    case DIM_HOST:
        /* "example.com:*", the way to allow a host with any port */
        if (m->kind != MG_PM_EXACT && (m->kind != MG_PM_PREFIX || m->len == 0))
            return false;
        *d = m->kind == MG_PM_EXACT ? DIM_HOST : DIM_HPREFIX;
        *key = m->s;
        *len = m->len;
        return true;
    case DIM_METHOD:
        if (m->kind != MG_PM_EXACT)
            return false;
        *key = m->s;
        *len = m->len;
        return true;
    case DIM_PATH:
        if (m->kind == MG_PM_EXACT || m->kind == MG_PM_PREFIX) {
            *d = m->kind == MG_PM_EXACT ? DIM_PATH : DIM_PREFIX;
            *key = m->s;
            *len = m->len;
            return m->len > 0;
        }
        /* a template's leading literal is a prefix every match starts with */
        if (m->kind == MG_PM_TEMPLATE && m->n_tpl > 0 && m->tpl[0].kind == MG_TPL_LIT &&
            m->tpl[0].len > 0) {
            *d = DIM_PREFIX;
            *key = m->tpl[0].s;
            *len = m->tpl[0].len;
            return true;
        }
        return false;
    case DIM_PORT:
        if (m->kind != MG_PM_PORT)
            return false;
        *key = NULL;
        *len = m->port;
        return true;
    default:
        return false;
    }
}

/* Can every value of the entry's field on dimension d give a key? *weak is
 * set when one of them is a one-byte path prefix (the pattern "/" + "*"),
 * which nearly every request has. */
static bool entry_keyed(const struct mg_entry *e, enum dim d, bool *weak)
{
    const struct mg_field *f = entry_field(e, dim_attr(d));
    *weak = false;
    if (!f)
        return false;
    for (size_t k = 0; k < f->n_pos; k++) {
        enum dim kd = d;
        const char *key;
        size_t len;
        if (!pm_key(&f->pos[k], &kd, &key, &len))
            return false;
        *weak |= kd == DIM_PREFIX && len <= 1;
    }
    return true;
}

/* The most selective dimension a `to` entry can be filed under, DIM_N =
 * none. A path names a handful of requests; a host a service; a method or
 * a port most of a workload's traffic. */
static enum dim choose_dim(const struct mg_entry *e, bool tcp)
{
    bool weak;
    if (tcp)
        return entry_keyed(e, DIM_PORT, &weak) ? DIM_PORT : DIM_N;
    bool path = entry_keyed(e, DIM_PATH, &weak);
    if (path && !weak)
        return DIM_PATH;
    if (entry_keyed(e, DIM_HOST, &weak))
        return DIM_HOST;
    if (path)
        return DIM_PATH;
    if (entry_keyed(e, DIM_METHOD, &weak))
        return DIM_METHOD;
    if (entry_keyed(e, DIM_PORT, &weak))
        return DIM_PORT;
    return DIM_N;
}

/* A rule matches only if one of its `to` entries does, so it is filed under
 * the keys of every entry, each entry on its own dimension; it is on the
 * always list when it has no `to` or one entry gives no key. */
static bool rule_keyed(const struct mg_crule *r, bool tcp)
{
    if (!r->has_to || r->n_to == 0)
        return false;
    for (size_t i = 0; i < r->n_to; i++)
        if (choose_dim(&r->to[i], tcp) == DIM_N)
            return false;
    return true;
}

static void file_rule(struct vec *v, const struct mg_crule *r, bool tcp, uint32_t seq)
{
    for (size_t i = 0; i < r->n_to; i++) {
        enum dim d = choose_dim(&r->to[i], tcp);
        const struct mg_field *f = entry_field(&r->to[i], dim_attr(d));
        for (size_t k = 0; k < f->n_pos; k++) {
            struct posting p = {d, NULL, 0, 0, seq};
            pm_key(&f->pos[k], &p.dim, &p.key, &p.len);
            p.hash = p.dim == DIM_PORT ? hash_port((uint16_t)p.len) :
                     hash_bytes(p.key, p.len, dim_icase(p.dim));
            vec_push(v, p);
        }
    }
}

static int key_cmp(const struct posting *a, const struct posting *b)
{
    if (a->dim != b->dim)
        return a->dim < b->dim ? -1 : 1;
    if (a->hash != b->hash)
        return a->hash < b->hash ? -1 : 1;
    if (a->len != b->len)
        return a->len < b->len ? -1 : 1;
    if (!a->key)
        return 0;
    /* host keys compare folded: "API.example.com" and "api.example.com" are
     * one key (their hashes are already equal) */
    for (size_t i = 0; i < a->len; i++) {
        unsigned char x = (unsigned char)a->key[i], y = (unsigned char)b->key[i];
        if (dim_icase(a->dim)) {
            x = fold(x);
            y = fold(y);
        }
        if (x != y)
            return x < y ? -1 : 1;
    }
    return 0;
}

static int posting_cmp(const void *x, const void *y)
{
    const struct posting *a = x, *b = y;
    int c = key_cmp(a, b);
    if (c)
        return c;
    return a->seq < b->seq ? -1 : a->seq > b->seq;
}

static struct mg_ix_map *dim_map(struct mg_ix *ix, enum dim d)
{
    switch (d) {
    case DIM_HOST: return &ix->host;
    case DIM_HPREFIX: return &ix->hprefix;
    case DIM_METHOD: return &ix->method;
    case DIM_PATH: return &ix->path;
    case DIM_PREFIX: return &ix->prefix;
    default: return &ix->port;
    }
}

static void map_insert(struct mg_ix_map *m, const struct mg_ix_bucket *b)
{
    size_t i = (size_t)b->hash & (m->cap - 1);
    while (m->b[i].n)
        i = (i + 1) & (m->cap - 1);
    m->b[i] = *b;
}

static int size_cmp(const void *x, const void *y)
{
    size_t a = *(const size_t *)x, b = *(const size_t *)y;
    return (a > b) - (a < b);
}

static void build_one(struct mg_policy_set *s, struct mg_ix *ix, bool tcp)
{
    struct vec v = {0};
    uint32_t *always = mg_arena_alloc(&s->arena, (s->n_rref + 1) * sizeof(*always));
    size_t n_always = 0;
    for (size_t q = 0; q < s->n_rref; q++) {
        const struct mg_rref *rr = &s->rref[q];
        const struct mg_cpolicy *p = &s->pol[rr->pol];
        const struct mg_crule *r = &p->rules[rr->rule];
        bool lenient = p->action == MG_ACTION_DENY || p->action == MG_ACTION_AUDIT;
        if (r->never || (tcp && r->http_only && !lenient))
            continue;       /* cannot match here */
        ix->slots |= 1u << rr->slot;
        if (rule_keyed(r, tcp))
            file_rule(&v, r, tcp, (uint32_t)q);
        else
            always[n_always++] = (uint32_t)q;
    }
    ix->always = always;
    ix->n_always = n_always;
    ix->keyed = v.n > 0;
    if (v.n == 0) {
        free(v.p);
        return;
    }
    qsort(v.p, v.n, sizeof(*v.p), posting_cmp);

    /* buckets per map, then the maps at most half full */
    size_t nb[DIM_N] = {0}, n_len[2] = {0};
    for (size_t i = 0; i < v.n; i++)
        if (i == 0 || key_cmp(&v.p[i - 1], &v.p[i]) != 0)
            nb[v.p[i].dim]++;
    for (int d = 0; d < DIM_N; d++) {
        struct mg_ix_map *m = dim_map(ix, (enum dim)d);
        if (!nb[d])
            continue;
        m->cap = 4;
        while (m->cap < 2 * nb[d])
            m->cap *= 2;
        m->b = mg_arena_zalloc(&s->arena, m->cap * sizeof(*m->b));
    }
    uint32_t *seqs = mg_arena_alloc(&s->arena, v.n * sizeof(*seqs));
    size_t *lens[2] = {
        mg_arena_alloc(&s->arena, (nb[DIM_HPREFIX] + 1) * sizeof(size_t)),
        mg_arena_alloc(&s->arena, (nb[DIM_PREFIX] + 1) * sizeof(size_t)),
    };
    size_t used = 0;
    for (size_t i = 0; i < v.n;) {
        size_t j = i;
        struct mg_ix_bucket b = {0};
        b.seq = seqs + used;
        while (j < v.n && key_cmp(&v.p[i], &v.p[j]) == 0) {
            /* a rule filed twice under one key (two `to` entries) once */
            if (j == i || v.p[j].seq != v.p[j - 1].seq)
                seqs[used++] = v.p[j].seq;
            j++;
        }
        b.n = (size_t)(seqs + used - b.seq);
        b.len = v.p[i].len;
        b.hash = v.p[i].hash;
        if (v.p[i].key) {
            char *k = mg_arena_strndup(&s->arena, v.p[i].key, v.p[i].len);
            if (dim_icase(v.p[i].dim))
                for (size_t c = 0; c < b.len; c++)
                    k[c] = (char)fold((unsigned char)k[c]);
            b.key = k;
        }
        map_insert(dim_map(ix, v.p[i].dim), &b);
        if (v.p[i].dim == DIM_HPREFIX || v.p[i].dim == DIM_PREFIX) {
            int w = v.p[i].dim == DIM_PREFIX;
            lens[w][n_len[w]++] = b.len;
        }
        i = j;
    }
    for (int w = 0; w < 2; w++) {
        qsort(lens[w], n_len[w], sizeof(size_t), size_cmp);
        size_t u = 0;
        for (size_t i = 0; i < n_len[w]; i++)
            if (u == 0 || lens[w][u - 1] != lens[w][i])
                lens[w][u++] = lens[w][i];
        n_len[w] = u;
    }
    ix->hprefix_len = lens[0];
    ix->n_hprefix_len = n_len[0];
    ix->prefix_len = lens[1];
    ix->n_prefix_len = n_len[1];
    free(v.p);
}

void mg_policy_index_build(struct mg_policy_set *s)
{
    size_t n = 0;
    for (size_t i = 0; i < s->n_pol; i++)
        if (mg_policy_slot(&s->pol[i]) != MG_SLOT_NONE)
            n += s->pol[i].n_rules;
    s->rref = mg_arena_alloc(&s->arena, (n + 1) * sizeof(*s->rref));
    s->n_rref = 0;
    for (size_t i = 0; i < s->n_pol; i++) {
        enum mg_slot slot = mg_policy_slot(&s->pol[i]);
        if (slot == MG_SLOT_NONE)
            continue;
        for (size_t r = 0; r < s->pol[i].n_rules; r++)
            s->rref[s->n_rref++] = (struct mg_rref){(uint32_t)i, (uint32_t)r, (uint8_t)slot};
    }
    build_one(s, &s->ix[0], false);
    build_one(s, &s->ix[1], true);
}

/* ---- lookup (per decision: no allocation) ---- */

static const struct mg_ix_bucket *map_find(const struct mg_ix_map *m, uint64_t h,
                                           const char *key, size_t len, bool icase)
{
    for (size_t i = (size_t)h & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        const struct mg_ix_bucket *b = &m->b[i];
        if (!b->n)
            return NULL;
        if (b->hash != h || b->len != len)
            continue;
        if (!key)
            return b;
        size_t k = 0;
        while (k < len && (icase ? fold((unsigned char)key[k]) : (unsigned char)key[k]) ==
                              (unsigned char)b->key[k])
            k++;
        if (k == len)
            return b;
    }
}

static bool add(struct mg_ix_list *out, size_t *n, size_t max, const struct mg_ix_bucket *b)
{
    if (!b)
        return true;
    if (*n == max)
        return false;
    out[*n].v = b->seq;
    out[(*n)++].n = b->n;
    return true;
}

static const struct mg_ix_bucket *find_str(const struct mg_ix_map *m, const char *s, size_t n,
                                           bool icase)
{
    if (!m->cap || !s)
        return NULL;
    return map_find(m, hash_bytes(s, n, icase), s, n, icase);
}

/* The buckets of every prefix of s that is a key, in one pass over s: the
 * hash of each key length's prefix. */
static bool add_prefixes(struct mg_ix_list *out, size_t *n, size_t max, const struct mg_ix_map *m,
                         const size_t *lens, size_t n_lens, const char *s, size_t len, bool icase)
{
    uint64_t h = FNV_OFFSET;
    size_t i = 0;
    for (size_t k = 0; k < n_lens && lens[k] <= len; k++) {
        for (; i < lens[k]; i++)
            h = fnv_step(h, icase ? fold((unsigned char)s[i]) : (unsigned char)s[i]);
        if (!add(out, n, max, map_find(m, h, s, lens[k], icase)))
            return false;
    }
    return true;
}

size_t mg_ix_candidates(const struct mg_ix *ix, const struct mg_attrs *a,
                        struct mg_ix_list *out, size_t max)
{
    size_t n = 0;
    if (max == 0)
        return (size_t)-1;
    out[n].v = ix->always;
    out[n++].n = ix->n_always;
    /* an absent attribute fails every positive matcher: no candidates */
    if (ix->port.cap && (a->dest.port || a->dest.family) &&
        !add(out, &n, max, map_find(&ix->port, hash_port(a->dest.port), NULL, a->dest.port, false)))
        return (size_t)-1;
    if (!a->is_http)
        return n;
    if ((ix->method.cap && a->method &&
         !add(out, &n, max, find_str(&ix->method, a->method, strlen(a->method), false))) ||
        (ix->host.cap && a->host &&
         !add(out, &n, max, find_str(&ix->host, a->host, strlen(a->host), true))) ||
        !add(out, &n, max, find_str(&ix->path, a->path, a->path_len, false)))
        return (size_t)-1;
    if (ix->hprefix.cap && a->host &&
        !add_prefixes(out, &n, max, &ix->hprefix, ix->hprefix_len, ix->n_hprefix_len, a->host,
                      strlen(a->host), true))
        return (size_t)-1;
    if (ix->prefix.cap && a->path &&
        !add_prefixes(out, &n, max, &ix->prefix, ix->prefix_len, ix->n_prefix_len, a->path,
                      a->path_len, false))
        return (size_t)-1;
    return n;
}
