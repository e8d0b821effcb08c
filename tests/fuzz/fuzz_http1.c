/* fuzz_http1.c - fuzz target for the HTTP/1 parser and chunked decoder.
 *
 * Built two ways from this one file: with -DMG_LIBFUZZER (clang
 * -fsanitize=fuzzer, ./configure --enable-fuzzing CC=clang) it is a
 * libFuzzer target; otherwise main() replays files (arguments, or the
 * checked-in corpus under $MG_SRCDIR/tests/fuzz/corpus/http1 when run
 * without arguments) and prints TAP, so `make check` exercises it.
 *
 * Beyond "no crash, no leak, no overread", it checks properties a parser
 * bug would break: a complete head is also complete when the bytes after it
 * are cut off; every strict prefix of a valid head is "incomplete", never an
 * error; the chunked decoder gives the same verdict, payload and byte count
 * whether fed in one piece or one byte at a time. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "http1/http1.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond, const char *what)
{
    if (!cond) {
        fprintf(stderr, "fuzz_http1: property violated: %s\n", what);
        abort();
    }
}

/* Parse buf[0..len) from an exact-size heap copy, so ASan sees overreads. */
static ssize_t parse_req_copy(const char *buf, size_t len, const struct mg_h1_limits *lim,
                              struct mg_h1_request *req, int *st)
{
    char *copy = malloc(len ? len : 1);
    check(copy != NULL, "malloc");
    memcpy(copy, buf, len);
    ssize_t r = mg_h1_parse_request(copy, len, lim, req, st);
    free(copy);
    return r;
}

struct chunk_result {
    enum mg_chunk_step last;
    size_t used;
    uint64_t payload_sum;   /* order-sensitive digest of the payload */
};

static void decode(const char *in, size_t len, size_t piece, struct chunk_result *res)
{
    struct mg_h1_chunked c;
    mg_h1_chunked_init(&c);
    memset(res, 0, sizeof(*res));
    res->last = MG_CHUNK_NEED_MORE;
    size_t off = 0;
    while (off < len) {
        size_t avail = len - off < piece ? len - off : piece;
        size_t n;
        enum mg_chunk_step s = mg_h1_chunked_step(&c, in + off, avail, &n);
        check(n <= avail, "step consumed more than given");
        res->last = s;
        if (s == MG_CHUNK_ERROR) {
            res->used = 0;          /* where an error is noticed may differ */
            res->payload_sum = 0;
            return;
        }
        if (s == MG_CHUNK_DONE) {
            res->used = off + n;
            return;
        }
        check(s != MG_CHUNK_NEED_MORE && n > 0, "no progress on non-empty input");
        if (s == MG_CHUNK_DATA)
            for (size_t i = 0; i < n; i++)
                res->payload_sum = res->payload_sum * 131 + (unsigned char)in[off + i] + 1;
        off += n;
    }
    res->used = off;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    static struct mg_h1_request req, req2;
    static struct mg_h1_response resp;
    struct mg_h1_limits lim = {.max_head = 4096, .max_headers = 32};
    int st = 0, st2 = 0;

    ssize_t r = parse_req_copy(buf, size, &lim, &req, &st);
    check(r <= (ssize_t)size, "head longer than input");
    if (r < 0)
        check(st == 400 || st == 431 || st == 501 || st == 505, "unexpected status");
    if (r > 0) {
        check(parse_req_copy(buf, (size_t)r, &lim, &req2, &st2) == r, "head not stable");
        for (size_t cut = (size_t)r - 1; cut > 0; cut = cut > 64 ? cut / 2 : cut - 1)
            check(parse_req_copy(buf, cut, &lim, &req2, &st2) == 0, "prefix of valid head rejected");
        if (req.body == MG_H1_BODY_CHUNKED) {
            struct chunk_result a, b;
            decode(buf + r, size - (size_t)r, SIZE_MAX, &a);
            decode(buf + r, size - (size_t)r, 1, &b);
            check(a.last == b.last && a.used == b.used && a.payload_sum == b.payload_sum,
                  "chunked result depends on split");
        }
    }
    static const char *const methods[] = {"GET", "HEAD", "CONNECT"};
    for (size_t i = 0; i < 3; i++) {
        ssize_t rr = mg_h1_parse_response(buf, size, &lim, methods[i], strlen(methods[i]), &resp);
        check(rr <= (ssize_t)size, "response head longer than input");
    }
    struct chunk_result a, b;
    decode(buf, size, SIZE_MAX, &a);
    decode(buf, size, 1, &b);
    check(a.last == b.last && a.used == b.used && a.payload_sum == b.payload_sum,
          "chunked result depends on split");
    return 0;
}

#ifndef MG_LIBFUZZER
static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    size_t cap = 1 << 20, len;
    char *buf = malloc(cap);
    check(buf != NULL, "malloc");
    len = fread(buf, 1, cap, f);
    fclose(f);
    char *exact = malloc(len ? len : 1);     /* exact size: overreads are caught */
    check(exact != NULL, "malloc");
    memcpy(exact, buf, len);
    free(buf);
    LLVMFuzzerTestOneInput((const uint8_t *)exact, len);
    free(exact);
    return 0;
}

static int not_hidden(const struct dirent *d) { return d->d_name[0] != '.'; }

int main(int argc, char **argv)
{
    int n = 0, fail = 0;
    if (argc > 1) {
        for (int i = 1; i < argc; i++) {
            int rc = run_file(argv[i]);
            printf("%sok %d - %s\n", rc ? "not " : "", ++n, argv[i]);
            fail += rc != 0;
        }
    } else {
        const char *src = getenv("MG_SRCDIR");
        char dir[4096], path[8192];
        snprintf(dir, sizeof(dir), "%s/tests/fuzz/corpus/http1", src ? src : ".");
        struct dirent **ents;
        int k = scandir(dir, &ents, not_hidden, alphasort);
        if (k <= 0) {
            printf("not ok 1 - corpus %s is missing or empty\n1..1\n", dir);
            return 1;
        }
        for (int i = 0; i < k; i++) {
            snprintf(path, sizeof(path), "%s/%s", dir, ents[i]->d_name);
            int rc = run_file(path);
            printf("%sok %d - %s\n", rc ? "not " : "", ++n, ents[i]->d_name);
            fail += rc != 0;
            free(ents[i]);
        }
        free(ents);
    }
    printf("1..%d\n", n);
    return fail ? 1 : 0;
}
#endif
