/* fuzz_jwt.c - JWKS parsing and JWT verification under libFuzzer: any input
 * must parse or fail cleanly, never crash, hang or leak.
 *
 * Each input is tried as a JWKS document, as a token against a fixed key set
 * (an HMAC key, so corpus tokens can reach the claims parser) and, when it
 * parsed as a JWKS, as a token against itself. Without --enable-fuzzing
 * (MG_FUZZ_STANDALONE) it replays the files named on argv, or with no
 * arguments the corpus in $MG_SRCDIR/tests/fuzz/corpus/jwt, printing TAP. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "jwt/jwt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* k = base64url("fuzz-secret-fuzz-secret-fuzz-sec") */
static const char fixed_jwks[] =
    "{\"keys\":[{\"kty\":\"oct\",\"kid\":\"f\",\"k\":\"ZnV6ei1zZWNyZXQtZnV6ei1zZWNyZXQtZnV6ei1zZWM\"}]}";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct mg_jwks *fixed;
    char err[128];
    struct mg_jwt j;
    enum mg_jwt_error e;
    struct mg_jwks *ks;

    if (!fixed)
        fixed = mg_jwks_parse(fixed_jwks, sizeof fixed_jwks - 1, MG_JWKS_ALLOW_OCT, err, sizeof err);
    ks = mg_jwks_parse((const char *)data, size, MG_JWKS_ALLOW_OCT, err, sizeof err);
    if (mg_jwt_verify(fixed, (const char *)data, size, 1700000000, &j, &e) == 0 &&
        (!j.payload || !j.payload_b64))
        abort();                /* success must come with claims */
    mg_jwt_clear(&j);
    if (ks) {
        mg_jwt_verify(ks, (const char *)data, size, 1700000000, &j, &e);
        mg_jwt_clear(&j);
        mg_jwks_unref(ks);
    }
    return 0;
}

#ifdef MG_FUZZ_STANDALONE
static int run(const char *path, int n)
{
    size_t len;
    char *buf = mg_read_file(path, 4u * 1024 * 1024, &len);
    if (!buf) {
        printf("not ok %d - %s unreadable\n", n, path);
        return 1;
    }
    LLVMFuzzerTestOneInput((const uint8_t *)buf, len);
    free(buf);
    printf("ok %d - %s\n", n, path);
    return 0;
}

int main(int argc, char **argv)
{
    int n = 0, fail = 0;
    if (argc > 1) {
        printf("1..%d\n", argc - 1);
        for (int i = 1; i < argc; i++)
            fail |= run(argv[i], ++n);
        return fail;
    }
    const char *src = getenv("MG_SRCDIR");
    char *dir = mg_xasprintf("%s/tests/fuzz/corpus/jwt", src ? src : ".");
    DIR *d = opendir(dir);
    struct dirent *de;
    struct mg_strlist files = {0};
    if (!d) {
        printf("1..0 # SKIP no corpus at %s\n", dir);
        free(dir);
        return 0;
    }
    while ((de = readdir(d)))
        if (de->d_name[0] != '.') {
            char *p = mg_xasprintf("%s/%s", dir, de->d_name);
            mg_strlist_push(&files, p);
            free(p);
        }
    closedir(d);
    printf("1..%zu\n", files.n);
    for (size_t i = 0; i < files.n; i++)
        fail |= run(files.v[i], ++n);
    mg_strlist_free(&files);
    free(dir);
    return fail;
}
#endif
