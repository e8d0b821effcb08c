/* fuzz_config.c - the YAML loader under libFuzzer: any input must load or
 * fail with diagnostics, never crash, hang or leak.
 *
 * Built with --enable-fuzzing it is a libFuzzer target; otherwise
 * (MG_FUZZ_STANDALONE) it is a plain program that runs each file named on
 * argv through the same entry point, so corpora replay without clang. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include "config/config.h"
#include "base/base.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct mg_diags d = { 0 };
    struct mg_config *c = mg_config_load_buffer("fuzz.yaml", (const char *)data, size, &d);

    if (c)
        mg_config_analyze(c, &d);
    mg_config_free(c);
    mg_diags_free(&d);
    return 0;
}

#ifdef MG_FUZZ_STANDALONE
#include <glob.h>

static int run_file(int n, const char *path)
{
    size_t len;
    char *buf = mg_read_file(path, 64u * 1024 * 1024, &len);

    if (!buf) {
        printf("not ok %d - %s: cannot read\n", n, path);
        return 1;
    }
    LLVMFuzzerTestOneInput((const uint8_t *)buf, len);
    free(buf);
    printf("ok %d - %s\n", n, path);
    return 0;
}

/* With file arguments: replay them. Without (make check): replay the
 * config test cases under $MG_SRCDIR as a TAP test, so the target always
 * builds and runs under the sanitizers. */
int main(int argc, char **argv)
{
    int fails = 0, n = 0;

    if (argc > 1) {
        for (int i = 1; i < argc; i++)
            fails += run_file(++n, argv[i]);
    } else {
        const char *src = getenv("MG_SRCDIR");
        char *pat = mg_xasprintf("%s/tests/unit/data/config/*/*.y*ml", src ? src : ".");
        glob_t g;
        if (glob(pat, 0, NULL, &g) == 0) {
            for (size_t i = 0; i < g.gl_pathc; i++)
                fails += run_file(++n, g.gl_pathv[i]);
            globfree(&g);
        }
        free(pat);
        if (n == 0)
            printf("not ok 1 - no inputs found (set MG_SRCDIR)\n"), n = 1, fails = 1;
    }
    printf("1..%d\n", n);
    return fails ? 1 : 0;
}
#endif
