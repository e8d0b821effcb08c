/* fuzz_proxy_proto.c - the PROXY protocol parser (net/proxy_proto.c) under
 * libFuzzer. Whoever may send this header sets the client address every
 * remote.ip policy sees, so beyond "no crash, no overread" it checks:
 * - the verdict does not depend on bytes after a complete header: DONE on
 *   n bytes is DONE with the same length and addresses on the header's
 *   own bytes, and every strict prefix of it answers MORE;
 * - NONE and BAD are final: more bytes never turn them into a header;
 * - mg_pp_wanted() (what the reader takes off the socket) never exceeds
 *   the input, is 0 exactly for NONE, and on DONE is the header length, so
 *   no byte behind the header is consumed;
 * - a header is at most MG_PP_MAX bytes; BAD carries a reason; a header
 *   that is not LOCAL carries an address family.
 *
 * With --enable-fuzzing this is a libFuzzer target; otherwise
 * (MG_FUZZ_STANDALONE) it replays the files named on argv, or with no
 * arguments the corpus in $MG_SRCDIR/tests/fuzz/corpus/proxy_proto followed
 * by a short deterministic mutation run from it, printing TAP. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include "net/net.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond, const char *what)
{
    if (!cond) {
        fprintf(stderr, "fuzz_proxy_proto: property violated: %s\n", what);
        abort();
    }
}

static int same_addr(const struct mg_addr *a, const struct mg_addr *b)
{
    return memcmp(a, b, sizeof(*a)) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 2 * MG_PP_MAX)
        return 0;
    struct mg_pp_header h, h2;
    enum mg_pp_status st = mg_pp_parse(data, size, &h);
    size_t want = mg_pp_wanted(data, size);
    check(st == MG_PP_DONE || st == MG_PP_MORE || st == MG_PP_NONE || st == MG_PP_BAD, "a known verdict");
    check(want <= size, "wanted within the input");
    check((want == 0) == (st == MG_PP_NONE) || size == 0, "wanted is 0 exactly for NONE");
    check(mg_pp_parse(data, size, &h2) == st && memcmp(&h, &h2, sizeof(h)) == 0, "deterministic");
    switch (st) {
    case MG_PP_DONE:
        check(h.len > 0 && h.len <= size && h.len <= MG_PP_MAX, "header length bounded");
        check(h.version == 1 || h.version == 2, "version 1 or 2");
        check(want == h.len, "wanted is the header on DONE");
        check(mg_pp_parse(data, h.len, &h2) == MG_PP_DONE && h2.len == h.len && h2.local == h.local &&
              same_addr(&h.src, &h2.src) && same_addr(&h.dst, &h2.dst),
              "the header alone reads the same");
        for (size_t k = 1; k < h.len; k++)
            check(mg_pp_parse(data, k, &h2) == MG_PP_MORE, "a strict prefix of a header is MORE");
        break;
    case MG_PP_BAD:
    case MG_PP_NONE:
        check(st != MG_PP_BAD || h.error != NULL, "BAD says why");
        for (size_t k = size + 1; k <= size + 4 && k <= 2 * MG_PP_MAX; k++) {
            uint8_t more[2 * MG_PP_MAX + 4];
            memcpy(more, data, size);
            memset(more + size, k & 1 ? '\n' : 0x20, k - size);
            enum mg_pp_status s2 = mg_pp_parse(more, k, &h2);
            check(st == MG_PP_NONE ? s2 == MG_PP_NONE : s2 == MG_PP_BAD || s2 == MG_PP_NONE,
                  "NONE and BAD are final");
        }
        break;
    case MG_PP_MORE:
        check(size < MG_PP_MAX, "MORE only below MG_PP_MAX");
        break;
    }
    return 0;
}

#ifdef MG_FUZZ_STANDALONE
#include "standalone.h"
int main(int argc, char **argv)
{
    return mg_fuzz_standalone_main(argc, argv, "proxy_proto", 20000);
}
#endif
