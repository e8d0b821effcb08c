/* test_arena.c - the bump allocator in base/arena.c. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "tap.h"
#include "base/base.h"

#define ALIGN _Alignof(max_align_t)

static int aligned(const void *p)
{
    return ((uintptr_t)p % ALIGN) == 0;
}

static void sizes(void)
{
    struct mg_arena a = {0};
    static const size_t n[] = {0, 1, 7, 15, 16, 17, 100, 4096, 4097, 8192, 100000};
    int all = 1;
    for (size_t i = 0; i < sizeof(n) / sizeof(n[0]); i++) {
        char *p = mg_arena_alloc(&a, n[i]);
        if (!p || !aligned(p))
            all = 0;
        else
            memset(p, 0xa5, n[i]);
    }
    ok(all, "zeroed arena: every size gives an aligned, writable block");
    void *z1 = mg_arena_alloc(&a, 0), *z2 = mg_arena_alloc(&a, 0);
    ok(z1 && z2 && z1 != z2, "size 0 gives distinct pointers");
    mg_arena_free(&a);
    ok(a.head == NULL && a.cur == NULL && a.left == 0, "free leaves an empty arena");
    char *again = mg_arena_alloc(&a, 10);
    ok(again != NULL, "a freed arena can be used again");
    mg_arena_free(&a);
}

static void chunks(void)
{
    struct mg_arena a = {0};
    /* Small blocks come one after another out of the current chunk. */
    char *p1 = mg_arena_alloc(&a, 10);
    char *p2 = mg_arena_alloc(&a, 10);
    ok(p2 == p1 + ALIGN, "consecutive small blocks share a chunk");
    /* More than half a chunk that does not fit: a block of its own; the
     * chunk stays current. */
    char *p3 = mg_arena_alloc(&a, MG_ARENA_CHUNK / 2);
    char *big = mg_arena_alloc(&a, MG_ARENA_CHUNK / 2 + 1);
    char *p4 = mg_arena_alloc(&a, 10);
    ok(p3 == p2 + ALIGN && big != NULL && p4 == p3 + MG_ARENA_CHUNK / 2,
       "a large block leaves the current chunk in use");
    /* Half a chunk that does not fit starts a new chunk. */
    char *h1 = mg_arena_alloc(&a, MG_ARENA_CHUNK / 2);
    char *h2 = mg_arena_alloc(&a, 10);
    ok(h1 != p4 + ALIGN && h2 == h1 + MG_ARENA_CHUNK / 2, "half a chunk starts a new chunk");
    mg_arena_free(&a);

    /* A larger chunk size (the policy set's) keeps such blocks in chunks. */
    mg_arena_init(&a, 16384);
    char *q1 = mg_arena_alloc(&a, 5000);
    char *q2 = mg_arena_alloc(&a, 16);
    ok(q2 == q1 + (5000 + ALIGN - 1) / ALIGN * ALIGN, "16 KiB chunks hold a 5000-byte block");
    mg_arena_free(&a);
    ok(a.chunk == 16384, "free keeps the chunk size");
    mg_arena_free(&a);

    /* Many blocks over many chunks: each keeps its bytes until the free. */
    char *v[2000];
    for (int i = 0; i < 2000; i++) {
        size_t n = 1 + (size_t)(i * 37) % 3000;
        v[i] = mg_arena_alloc(&a, n);
        memset(v[i], i & 0xff, n);
    }
    int intact = 1;
    for (int i = 0; i < 2000; i++) {
        size_t n = 1 + (size_t)(i * 37) % 3000;
        for (size_t j = 0; j < n; j++)
            if ((unsigned char)v[i][j] != (i & 0xff))
                intact = 0;
    }
    ok(intact, "2000 blocks over many chunks keep their contents");
    mg_arena_free(&a);
}

static void copies(void)
{
    struct mg_arena a;
    mg_arena_init(&a, 0);
    unsigned char *z = mg_arena_zalloc(&a, 300);
    int zero = 1;
    for (int i = 0; i < 300; i++)
        zero &= z[i] == 0;
    ok(zero, "zalloc zeroes");
    is_str(mg_arena_strndup(&a, "hello world", 5), "hello", "strndup copies n bytes and terminates");
    is_str(mg_arena_strndup(&a, "", 0), "", "strndup of nothing");
    is_str(mg_arena_strdup(&a, "abc"), "abc", "strdup");
    const char src[4] = {'a', 0, 'b', 0};
    char *m = mg_arena_memdup(&a, src, sizeof(src));
    ok(memcmp(m, src, sizeof(src)) == 0, "memdup copies embedded NULs");
    ok(mg_arena_memdup(&a, NULL, 0) != NULL, "memdup of nothing");
    mg_arena_free(&a);
}

static void printfs(void)
{
    struct mg_arena a = {0};
    is_str(mg_arena_printf(&a, "%s=%d", "x", 42), "x=42", "printf");
    is_str(mg_arena_printf(&a, "%s", ""), "", "printf of an empty string");
    /* Longer than the stack buffer, and longer than a chunk. */
    static const size_t n[] = {511, 512, 513, 3000, 20000};
    for (size_t i = 0; i < sizeof(n) / sizeof(n[0]); i++) {
        char *want = malloc(n[i] + 1);
        for (size_t j = 0; j < n[i]; j++)
            want[j] = (char)('a' + j % 26);
        want[n[i]] = 0;
        char *got = mg_arena_printf(&a, "%s", want);
        ok(strcmp(got, want) == 0 && aligned(got), "printf of %zu characters", n[i]);
        free(want);
    }
    is_str(mg_arena_printf(&a, "%s://%s%s", "https", "h.example", "/p?q"), "https://h.example/p?q",
           "printf with several arguments");
    mg_arena_free(&a);
}

static void joins(void)
{
    struct mg_arena a = { 0 };
    is_str(mg_arena_cat(&a, "/p", "?", "q=1", (char *)NULL), "/p?q=1", "cat of three");
    is_str(mg_arena_cat(&a, "", "", (char *)NULL), "", "cat of empty strings");
    is_str(mg_arena_cat(&a, (char *)NULL), "", "cat of nothing");
    char big[5000];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = 0;
    char *j = mg_arena_cat(&a, big, ", ", big, (char *)NULL);
    ok(strlen(j) == 2 * 4999 + 2 && j[4999] == ',' && j[5001] == 'x', "cat longer than a chunk");
    const unsigned long long nums[] = { 0, 7, 10, 204, 65535, 4294967296ULL, 18446744073709551615ULL };
    int bad = 0;
    for (size_t i = 0; i < sizeof(nums) / sizeof(nums[0]); i++) {
        char want[32];
        snprintf(want, sizeof(want), "%llu", nums[i]);
        bad += strcmp(mg_arena_u64(&a, nums[i]), want) != 0;
    }
    is_int(bad, 0, "u64 in decimal as printf writes it, 0 to the largest");
    mg_arena_free(&a);
}

int main(void)
{
    joins();
    sizes();
    chunks();
    copies();
    printfs();
    return tap_done();
}
