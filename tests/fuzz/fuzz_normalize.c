/* fuzz_normalize.c - request-target normalization (route/normalize.c) under
 * libFuzzer. Beyond "no crash, no overread", the properties routing and
 * authorization rely on, in every mode (the first input byte picks it):
 * - a result is NUL terminated, its path part inside it, and never longer
 *   than the input;
 * - normalizing the result again gives the same bytes (once is enough: a
 *   policy written for the normalized path cannot be bypassed by a second
 *   decoding somewhere downstream);
 * - outside NONE, no "." or ".." segment and no '\' survives in the path;
 * - under MERGE_SLASHES and DECODE_AND_MERGE_SLASHES, no "//".
 *
 * With --enable-fuzzing this is a libFuzzer target; otherwise
 * (MG_FUZZ_STANDALONE) it replays the files named on argv, or with no
 * arguments the corpus in $MG_SRCDIR/tests/fuzz/corpus/normalize followed
 * by a short deterministic mutation run from it, printing TAP. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "config/config.h"
#include "route/route.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_TARGET 8192

static void check(int cond, const char *what, const char *in, size_t len)
{
    if (!cond) {
        fprintf(stderr, "fuzz_normalize: property violated: %s (input %.*s)\n", what, (int)len, in);
        abort();
    }
}

/* Is there a "." or ".." segment in path [p, p+n)? */
static int has_dot_segment(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] != '/')
            continue;
        size_t e = i + 1;
        while (e < n && p[e] != '/')
            e++;
        size_t sl = e - i - 1;
        if ((sl == 1 && p[i + 1] == '.') || (sl == 2 && p[i + 1] == '.' && p[i + 2] == '.'))
            return 1;
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > MAX_TARGET)
        return 0;
    enum mg_path_norm mode = (enum mg_path_norm)(data[0] % 4);
    const char *in = (const char *)data + 1;
    size_t len = size - 1;
    static char out[MAX_TARGET + 1], again[MAX_TARGET + 1];
    size_t olen, plen, olen2, plen2;
    int rc = mg_path_normalize(in, len, mode, out, sizeof(out), &olen, &plen);
    check(rc == 0 || rc == -1, "result is 0 or -1 when the output has room", in, len);
    if (rc != 0)
        return 0;
    check(olen <= len && plen <= olen && out[olen] == '\0', "bounded, NUL terminated", in, len);
    check(memchr(out, '\0', olen) == NULL, "no NUL inside", in, len);
    if (olen == 1 && out[0] == '*')
        return 0;
    check(out[0] == '/', "the path starts with /", in, len);
    int rc2 = mg_path_normalize(out, olen, mode, again, sizeof(again), &olen2, &plen2);
    check(rc2 == 0, "a normalized target is accepted again", in, len);
    check(olen2 == olen && plen2 == plen && memcmp(out, again, olen) == 0,
          "normalizing twice equals normalizing once", in, len);
    if (mode != MG_NORM_NONE) {
        check(!has_dot_segment(out, plen), "no . or .. segment survives", in, len);
        check(memchr(out, '\\', plen) == NULL, "no backslash survives", in, len);
    }
    if (mode == MG_NORM_MERGE_SLASHES || mode == MG_NORM_DECODE_AND_MERGE_SLASHES)
        for (size_t i = 0; i + 1 < plen; i++)
            check(!(out[i] == '/' && out[i + 1] == '/'), "no // under MERGE_SLASHES", in, len);
    return 0;
}

#ifdef MG_FUZZ_STANDALONE
#include "standalone.h"
int main(int argc, char **argv)
{
    return mg_fuzz_standalone_main(argc, argv, "normalize", 20000);
}
#endif
