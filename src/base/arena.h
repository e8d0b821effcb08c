/* arena.h - meshgate's one bump allocator: memory that dies all at once.
 *
 * Users: the per-request arena (struct mg_request's `arena`, freed when the
 * request is released) and a compiled policy set (freed with the set).
 *
 * Contract:
 * - A zero-initialised struct mg_arena is an empty arena with chunks of
 *   MG_ARENA_CHUNK bytes; mg_arena_init() chooses another chunk size.
 * - Every allocation returns memory aligned for any type (max_align_t: 16
 *   bytes on the 64-bit targets), never NULL, also for size 0 (a distinct
 *   pointer). Allocation failure aborts the process through mg_oom(), as
 *   mg_xmalloc() does; sizes an attacker controls must be checked against
 *   a limit by the caller before allocating.
 * - Memory is owned by the arena: never free() a pointer it returned. Every
 *   pointer stays valid until mg_arena_free().
 * - Growth is bounded by what the caller asks for: chunks have a fixed size
 *   (no doubling). A request that does not fit in what is left of the
 *   current chunk starts a new chunk, or, when larger than half a chunk,
 *   gets a block of its own and leaves the current chunk in use; so less
 *   than half of any chunk is ever left unused.
 * - Not thread-safe: one arena belongs to one thread at a time (a request
 *   to its worker; a policy set is only read after it is built). */
#ifndef MG_ARENA_H
#define MG_ARENA_H
#include <stdarg.h>
#include <stddef.h>

/* The default chunk: a typical request (its headers, path, the upstream
 * request's edits and the log fields) fits in one. */
#define MG_ARENA_CHUNK 8192

struct mg_arena_chunk;
struct mg_arena {
    struct mg_arena_chunk *head;        /* every chunk and block, newest first */
    char *cur;                          /* free space in the current chunk */
    size_t left;
    size_t chunk;                       /* chunk size; 0 = MG_ARENA_CHUNK */
};

/* Makes *a an empty arena whose chunks are `chunk` bytes (0 = MG_ARENA_CHUNK).
 * Only on an arena that owns nothing (new, zeroed or freed). */
void mg_arena_init(struct mg_arena *a, size_t chunk);

/* n bytes, uninitialised. */
void *mg_arena_alloc(struct mg_arena *a, size_t n);
/* n bytes, zeroed. */
void *mg_arena_zalloc(struct mg_arena *a, size_t n);
/* A copy of n bytes at p (p may be NULL when n is 0). */
void *mg_arena_memdup(struct mg_arena *a, const void *p, size_t n);
/* A NUL-terminated copy of the n bytes at s (s need not be terminated). */
char *mg_arena_strndup(struct mg_arena *a, const char *s, size_t n);
/* A copy of the NUL-terminated s. */
char *mg_arena_strdup(struct mg_arena *a, const char *s);
/* The formatted string, of any length; "" if the format cannot be encoded. */
char *mg_arena_printf(struct mg_arena *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
char *mg_arena_vprintf(struct mg_arena *a, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

/* Frees everything the arena returned, at once. The arena is then empty and
 * may be used again, with the same chunk size. */
void mg_arena_free(struct mg_arena *a);

#endif
