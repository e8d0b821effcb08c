/* standalone.h - main() of a fuzz target built without libFuzzer
 * (MG_FUZZ_STANDALONE), shared by the targets that include it: replay the
 * files named on argv, or with no arguments every file of
 * $MG_SRCDIR/tests/fuzz/corpus/NAME followed by a deterministic mutation
 * run (byte flips, inserts, deletes, splices of two corpus files) of
 * ITERATIONS inputs. Prints TAP; a property violation aborts. */
#ifndef MG_FUZZ_STANDALONE_H
#define MG_FUZZ_STANDALONE_H
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MG_FUZZ_MAX_FILES 256
#define MG_FUZZ_MAX_LEN 4096

static size_t mg_fuzz_read(const char *path, uint8_t *buf, size_t cap)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return (size_t)-1;
    size_t n = fread(buf, 1, cap, f);
    fclose(f);
    return n;
}

static uint32_t mg_fuzz_rand(uint32_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

/* Replay the files named on argv (at most cap bytes of each, into buf),
 * one TAP line each; an unreadable file is a failure. */
static int mg_fuzz_replay(int argc, char **argv, uint8_t *buf, size_t cap)
{
    for (int i = 1; i < argc; i++) {
        size_t n = mg_fuzz_read(argv[i], buf, cap);
        if (n == (size_t)-1) {
            printf("not ok %d - cannot read %s\n", i, argv[i]);
            return 1;
        }
        LLVMFuzzerTestOneInput(buf, n);
        printf("ok %d - %s\n", i, argv[i]);
    }
    printf("1..%d\n", argc - 1);
    return 0;
}

__attribute__((unused)) static int mg_fuzz_standalone_main(int argc, char **argv, const char *name, long iterations)
{
    static uint8_t files[MG_FUZZ_MAX_FILES][MG_FUZZ_MAX_LEN];
    static size_t lens[MG_FUZZ_MAX_FILES];
    size_t nf = 0;
    if (argc > 1)
        return mg_fuzz_replay(argc, argv, files[0], MG_FUZZ_MAX_LEN);
    const char *src = getenv("MG_SRCDIR");
    char dir[1024], path[2048];
    snprintf(dir, sizeof(dir), "%s/tests/fuzz/corpus/%s", src ? src : ".", name);
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && nf < MG_FUZZ_MAX_FILES && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        size_t n = mg_fuzz_read(path, files[nf], MG_FUZZ_MAX_LEN);
        if (n != (size_t)-1)
            lens[nf++] = n;
    }
    if (d)
        closedir(d);
    if (nf == 0) {
        printf("1..0 # SKIP no corpus in %s (set MG_SRCDIR)\n", dir);
        return 0;
    }
    for (size_t i = 0; i < nf; i++)
        LLVMFuzzerTestOneInput(files[i], lens[i]);
    printf("ok 1 - %zu corpus files of %s\n", nf, name);
    static uint8_t buf[2 * MG_FUZZ_MAX_LEN];
    uint32_t s = 0x9e3779b9u;
    for (long it = 0; it < iterations; it++) {
        size_t a = mg_fuzz_rand(&s) % nf, n = lens[a];
        memcpy(buf, files[a], n);
        int edits = 1 + (int)(mg_fuzz_rand(&s) % 4);
        for (int k = 0; k < edits; k++) {
            uint32_t r = mg_fuzz_rand(&s);
            size_t at = n ? mg_fuzz_rand(&s) % n : 0;
            switch (r % 5) {
            case 0:                                     /* flip a bit */
                if (n)
                    buf[at] ^= (uint8_t)(1u << (r >> 8 & 7));
                break;
            case 1:                                     /* a random byte */
                if (n)
                    buf[at] = (uint8_t)(r >> 8);
                break;
            case 2:                                     /* insert a byte */
                if (n + 1 < sizeof(buf)) {
                    memmove(buf + at + 1, buf + at, n - at);
                    buf[at] = (uint8_t)(r >> 8);
                    n++;
                }
                break;
            case 3:                                     /* delete a byte */
                if (n) {
                    memmove(buf + at, buf + at + 1, n - at - 1);
                    n--;
                }
                break;
            default: {                                  /* splice another file's tail */
                size_t b = mg_fuzz_rand(&s) % nf, from = lens[b] ? mg_fuzz_rand(&s) % lens[b] : 0;
                size_t take = lens[b] - from;
                if (at + take > sizeof(buf))
                    take = sizeof(buf) - at;
                memcpy(buf + at, files[b] + from, take);
                n = at + take;
            }
            }
        }
        LLVMFuzzerTestOneInput(buf, n);
    }
    printf("ok 2 - %ld mutated inputs of %s\n", iterations, name);
    printf("1..2\n");
    return 0;
}
#endif
