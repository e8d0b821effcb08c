/* fuzz_config.c - the YAML loader under libFuzzer: any input must load or
 * fail with diagnostics, never crash, hang or leak.
 *
 * Built with --enable-fuzzing it is a libFuzzer target; otherwise
 * (MG_FUZZ_STANDALONE) it is a plain program that runs each file named on
 * argv through the same entry point, so corpora replay without clang. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include "config.h"

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
int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        size_t len;
        char *buf = mg_read_file(argv[i], 64u * 1024 * 1024, &len);
        if (!buf) {
            perror(argv[i]);
            return 1;
        }
        LLVMFuzzerTestOneInput((const uint8_t *)buf, len);
        free(buf);
        printf("ok %d - %s\n", i, argv[i]);
    }
    return 0;
}
#endif
