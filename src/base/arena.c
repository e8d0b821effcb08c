/* arena.c - the one bump allocator (contract in base/base.h). */
#include "base/base.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct mg_arena_chunk {
    struct mg_arena_chunk *next;
    max_align_t data[];
};

#define ALIGN _Alignof(max_align_t)

void mg_arena_init(struct mg_arena *a, size_t chunk)
{
    memset(a, 0, sizeof(*a));
    a->chunk = chunk;
}

static struct mg_arena_chunk *new_chunk(struct mg_arena *a, size_t size)
{
    struct mg_arena_chunk *c = mg_xmalloc(sizeof(*c) + size);
    c->next = a->head;
    a->head = c;
    return c;
}

void *mg_arena_alloc(struct mg_arena *a, size_t n)
{
    /* A size this close to SIZE_MAX cannot be allocated anyway; failing as
     * mg_xmalloc does beats wrapping round to a small block. */
    if (n > SIZE_MAX / 2)
        mg_oom();
    n = n ? (n + ALIGN - 1) & ~(ALIGN - 1) : ALIGN;
    if (n > a->left) {
        size_t chunk = a->chunk ? a->chunk : MG_ARENA_CHUNK;
        if (n > chunk / 2)              /* a block of its own; the current chunk stays */
            return new_chunk(a, n)->data;
        /* What is left of the old chunk is smaller than n <= chunk / 2. */
        a->cur = (char *)new_chunk(a, chunk)->data;
        a->left = chunk;
    }
    void *p = a->cur;
    a->cur += n;
    a->left -= n;
    return p;
}

void *mg_arena_zalloc(struct mg_arena *a, size_t n)
{
    void *p = mg_arena_alloc(a, n);
    memset(p, 0, n);
    return p;
}

void *mg_arena_memdup(struct mg_arena *a, const void *p, size_t n)
{
    void *d = mg_arena_alloc(a, n);
    if (n)
        memcpy(d, p, n);
    return d;
}

char *mg_arena_strndup(struct mg_arena *a, const char *s, size_t n)
{
    char *p = mg_arena_alloc(a, n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *mg_arena_strdup(struct mg_arena *a, const char *s)
{
    return mg_arena_strndup(a, s, strlen(s));
}

char *mg_arena_cat(struct mg_arena *a, ...)
{
    va_list ap;
    size_t n = 0;
    va_start(ap, a);
    for (const char *s; (s = va_arg(ap, const char *));)
        n += strlen(s);
    va_end(ap);
    char *out = mg_arena_alloc(a, n + 1), *p = out;
    va_start(ap, a);
    for (const char *s; (s = va_arg(ap, const char *));) {
        size_t k = strlen(s);
        memcpy(p, s, k);
        p += k;
    }
    va_end(ap);
    *p = '\0';
    return out;
}

char *mg_arena_u64(struct mg_arena *a, unsigned long long v)
{
    char d[MG_DEC_MAX];
    return mg_arena_strndup(a, d, mg_fmt_u64(d, v));
}

char *mg_arena_vprintf(struct mg_arena *a, const char *fmt, va_list ap)
{
    /* Most strings are short: format once into the stack and copy; only a
     * longer one is formatted a second time, straight into the arena. */
    char tmp[512];
    va_list again;
    va_copy(again, ap);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    char *p;
    if (n < 0) {
        p = mg_arena_alloc(a, 1);
        p[0] = '\0';
    } else if ((size_t)n < sizeof(tmp)) {
        p = mg_arena_memdup(a, tmp, (size_t)n + 1);
    } else {
        p = mg_arena_alloc(a, (size_t)n + 1);
        vsnprintf(p, (size_t)n + 1, fmt, again);
    }
    va_end(again);
    return p;
}

char *mg_arena_printf(struct mg_arena *a, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *p = mg_arena_vprintf(a, fmt, ap);
    va_end(ap);
    return p;
}

void mg_arena_free(struct mg_arena *a)
{
    struct mg_arena_chunk *c = a->head;
    while (c) {
        struct mg_arena_chunk *n = c->next;
        free(c);
        c = n;
    }
    mg_arena_init(a, a->chunk);
}
