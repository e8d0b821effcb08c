/* fuzz_tls_hello.c - the ClientHello parser (net/tls_peek.c) under
 * libFuzzer: any input must parse or be refused cleanly, never crash or
 * read past the buffer.
 *
 * Beyond that it checks properties a parser bug would break, for every set
 * of rules (none, routing, mesh, both):
 * - the answer is MORE, OK or BAD, and MORE only below MG_TLS_PEEK_MAX;
 * - a decision is final: a prefix of the input answers MORE or the same;
 * - the rules only refuse: whatever the strictest set reads, every looser
 *   set reads too, with the same server name and ALPN offer; whether more
 *   bytes are needed does not depend on the rules;
 * - the server name is lower-case, at most MG_TLS_SNI_MAX bytes; the ALPN
 *   offer lies inside the input, is a well-formed list, and the Istio, h2
 *   and http/1.1 flags say what it holds.
 *
 * Built with --enable-fuzzing it is a libFuzzer target; otherwise
 * (MG_FUZZ_STANDALONE) main() replays the files named on argv, or with no
 * arguments the corpus in $MG_SRCDIR/tests/fuzz/corpus/tls_hello (checking
 * each named file's verdicts against the table below) followed by a short
 * mutation run from it, printing TAP. The corpus: ClientHellos captured
 * from `openssl s_client` (TLS 1.3 and 1.2, with and without SNI, Istio
 * ALPN tokens) and hellos derived from them (server_name lists of two
 * names, two extensions, bad ALPN lists, malformed bodies, a hello split
 * over two records or followed by another record, the largest record,
 * truncations, non-TLS bytes). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "net/net.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond, const char *what)
{
    if (!cond) {
        fprintf(stderr, "fuzz_tls_hello: property violated: %s\n", what);
        abort();
    }
}

static const unsigned rule_sets[] = { 0, MG_TLS_HELLO_ROUTE, MG_TLS_HELLO_MESH,
                                      MG_TLS_HELLO_ROUTE | MG_TLS_HELLO_MESH };
#define N_SETS (sizeof(rule_sets) / sizeof(rule_sets[0]))

static bool name_is(const unsigned char *p, size_t n, const char *s)
{
    return strlen(s) == n && memcmp(p, s, n) == 0;
}

static void check_out(const uint8_t *buf, size_t len, int rc, const struct mg_tls_hello *h)
{
    size_t sl = strnlen(h->sni, sizeof(h->sni));
    check(sl <= MG_TLS_SNI_MAX, "server name terminated within bounds");
    for (size_t i = 0; i < sl; i++)
        check(h->sni[i] < 'A' || h->sni[i] > 'Z', "server name lower-cased");
    if (rc != MG_TLS_HELLO_OK)
        return;
    if (!h->has_alpn) {
        check(!h->alpn && !h->alpn_len && !h->istio && !h->h2 && !h->http11, "no ALPN, no flags");
        return;
    }
    check(h->alpn && h->alpn_len > 0 && h->alpn >= buf && h->alpn + h->alpn_len <= buf + len,
          "ALPN list inside the input");
    bool istio = false, h2 = false, http11 = false;
    for (size_t i = 0; i < h->alpn_len;) {
        size_t n = h->alpn[i];
        check(n > 0 && i + 1 + n <= h->alpn_len, "ALPN list well formed");
        const unsigned char *p = h->alpn + i + 1;
        istio |= mg_tls_alpn_is_istio(p, n);
        h2 |= name_is(p, n, "h2") || name_is(p, n, "istio-h2");
        http11 |= name_is(p, n, "http/1.1") || name_is(p, n, "istio-http/1.1") ||
                  name_is(p, n, "istio-http/1.0");
        i += 1 + n;
    }
    check(istio == h->istio && h2 == h->h2 && http11 == h->http11, "ALPN flags match the list");
}

static bool same_out(const struct mg_tls_hello *a, const struct mg_tls_hello *b)
{
    return !strcmp(a->sni, b->sni) && a->alpn == b->alpn && a->alpn_len == b->alpn_len &&
           a->has_alpn == b->has_alpn && a->istio == b->istio && a->h2 == b->h2 &&
           a->http11 == b->http11;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* an exact-size heap copy, so an overread is caught by ASan */
    uint8_t *buf = malloc(size ? size : 1);
    check(buf != NULL, "malloc");
    memcpy(buf, data, size);

    int rc[N_SETS];
    struct mg_tls_hello h[N_SETS];
    for (size_t s = 0; s < N_SETS; s++) {
        rc[s] = mg_tls_hello_peek(buf, size, rule_sets[s], &h[s]);
        check(rc[s] == MG_TLS_HELLO_BAD || rc[s] == MG_TLS_HELLO_MORE || rc[s] == MG_TLS_HELLO_OK,
              "answer is BAD, MORE or OK");
        check(rc[s] != MG_TLS_HELLO_MORE || size < MG_TLS_PEEK_MAX, "MORE only below the bound");
        check_out(buf, size, rc[s], &h[s]);
        check((rc[s] == MG_TLS_HELLO_MORE) == (rc[0] == MG_TLS_HELLO_MORE),
              "whether more bytes are needed does not depend on the rules");
    }
    /* rules only refuse: the strictest set's OK holds for every set */
    if (rc[N_SETS - 1] == MG_TLS_HELLO_OK)
        for (size_t s = 0; s < N_SETS; s++)
            check(rc[s] == MG_TLS_HELLO_OK && same_out(&h[s], &h[N_SETS - 1]),
                  "a looser set reads what a stricter one reads, alike");
    if (rc[0] == MG_TLS_HELLO_BAD)
        for (size_t s = 0; s < N_SETS; s++)
            check(rc[s] == MG_TLS_HELLO_BAD, "what the framing refuses every set refuses");
    for (size_t s = 1; s + 1 < N_SETS; s++)
        if (rc[s] == MG_TLS_HELLO_OK)
            check(rc[0] == MG_TLS_HELLO_OK && same_out(&h[0], &h[s]), "one rule reads what none reads");

    /* a decision is final: cut points over the header, the record end and
     * the whole input answer MORE or the full input's answer */
    size_t cuts[24], nc = 0;
    for (size_t k = 0; k < 12 && k < size; k++)
        cuts[nc++] = k;
    if (size >= 5) {
        size_t rend = 5 + ((size_t)buf[3] << 8 | buf[4]);
        if (rend - 1 < size)
            cuts[nc++] = rend - 1;
        if (rend < size)
            cuts[nc++] = rend;
    }
    cuts[nc++] = size / 2;
    if (size)
        cuts[nc++] = size - 1;
    for (size_t c = 0; c < nc; c++)
        for (size_t s = 0; s < N_SETS; s++) {
            struct mg_tls_hello p;
            int r = mg_tls_hello_peek(buf, cuts[c], rule_sets[s], &p);
            check(r == MG_TLS_HELLO_MORE || r == rc[s], "a decision on a prefix is final");
            check(r != MG_TLS_HELLO_OK || same_out(&p, &h[s]), "a prefix read as OK reads the same");
        }
    free(buf);
    return 0;
}

#ifdef MG_FUZZ_STANDALONE
#include <dirent.h>
#include "base/base.h"

/* The verdicts of the checked-in corpus: what PASSTHROUGH routing and the
 * sidecar's mesh detection answer, the server name routing is left with
 * (a refused hello keeps the name read before the flaw: the access log
 * shows it), and whether the mesh reader sees an Istio offer. */
static const struct {
    const char *file;
    int route;
    const char *sni;
    int mesh;
    bool istio;
} expect[] = {
    { "openssl-sni-alpn-istio.bin", 1, "reviews.default.svc.cluster.local", 1, true },
    { "openssl-alpn-istio-h2.bin", 1, "ratings.default.svc.cluster.local", 1, true },
    { "openssl-no-sni.bin", 1, "", 1, false },
    { "openssl-tls12-sni-h2.bin", 1, "app.example.com", 1, false },
    { "sni-two-names.bin", -1, "", 1, true },
    { "sni-two-extensions.bin", -1, "reviews.default.svc.cluster.local", 1, true },
    { "sni-other-type-first.bin", -1, "", 1, true },
    { "sni-nul.bin", -1, "", 1, true },
    { "sni-empty-name.bin", -1, "", 1, true },
    { "sni-256-chars.bin", -1, "", 1, true },
    { "alpn-istio-plus-bad-sni.bin", -1, "", 1, true },
    { "alpn-duplicate.bin", 1, "reviews.default.svc.cluster.local", -1, false },
    { "alpn-empty-name.bin", 1, "reviews.default.svc.cluster.local", -1, false },
    { "alpn-name-overrun.bin", 1, "reviews.default.svc.cluster.local", -1, false },
    { "alpn-lookalikes.bin", 1, "reviews.default.svc.cluster.local", 1, false },
    { "alpn-istio-http10.bin", 1, "reviews.default.svc.cluster.local", 1, true },
    { "no-extensions.bin", 1, "", 1, false },
    { "bytes-after-extensions.bin", 1, "reviews.default.svc.cluster.local", -1, false },
    { "empty-ciphers.bin", 1, "reviews.default.svc.cluster.local", -1, false },
    { "empty-compression.bin", 1, "reviews.default.svc.cluster.local", -1, false },
    { "max-record-padding.bin", 1, "reviews.default.svc.cluster.local", 1, true },
    { "record-too-long.bin", -1, "", -1, false },
    { "multi-record-split.bin", -1, "", -1, false },
    { "multi-record-hello-then-ccs.bin", 1, "reviews.default.svc.cluster.local", 1, true },
    { "record-hello-then-more.bin", 1, "reviews.default.svc.cluster.local", 1, true },
    { "record-len-3.bin", -1, "", -1, false },
    { "truncated-half.bin", 0, "", 0, false },
    { "truncated-header.bin", 0, "", 0, false },
    { "truncated-one-short.bin", 0, "", 0, false },
    { "not-tls-http.bin", -1, "", -1, false },
    { "sslv2-hello.bin", -1, "", -1, false },
    { "server-hello.bin", -1, "", -1, false },
};

#define N_EXPECT (sizeof(expect) / sizeof(expect[0]))

static int n_test;
static bool seen[N_EXPECT];

static int verdicts(const char *name, const uint8_t *buf, size_t len)
{
    for (size_t i = 0; i < N_EXPECT; i++) {
        if (strcmp(expect[i].file, name))
            continue;
        seen[i] = true;
        struct mg_tls_hello h;
        int route = mg_tls_hello_peek(buf, len, MG_TLS_HELLO_ROUTE, &h);
        bool good = route == expect[i].route && !strcmp(h.sni, expect[i].sni);
        int mesh = mg_tls_hello_peek(buf, len, MG_TLS_HELLO_MESH, &h);
        good = good && mesh == expect[i].mesh && (mesh == 1 && h.istio) == expect[i].istio;
        printf("%s %d - %s: routing %d, mesh %d\n", good ? "ok" : "not ok", ++n_test, name, route, mesh);
        return good ? 0 : 1;
    }
    return 0;
}

static int run(const char *path, const char *name, uint8_t **keep, size_t *keep_len)
{
    size_t len;
    char *buf = mg_read_file(path, 1u << 20, &len);
    if (keep)
        *keep = NULL;
    if (!buf) {
        printf("not ok %d - %s unreadable\n", ++n_test, path);
        return 1;
    }
    LLVMFuzzerTestOneInput((const uint8_t *)buf, len);
    printf("ok %d - %s\n", ++n_test, path);
    int fail = name ? verdicts(name, (const uint8_t *)buf, len) : 0;
    if (keep) {
        *keep = (uint8_t *)buf;
        *keep_len = len;
    } else {
        free(buf);
    }
    return fail;
}

static uint64_t rng = 0x9e3779b97f4a7c15u;

static uint32_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 16);
}

/* A few random edits of a corpus input: flip or set bytes, nudge a
 * big-endian length, cut, insert or delete a run, or graft another input. */
static size_t mutate(uint8_t *b, size_t len, size_t cap, const uint8_t *other, size_t olen)
{
    for (int e = 1 + (int)(next() % 4); e > 0; e--) {
        size_t at = len ? next() % len : 0;
        switch (next() % 7) {
        case 0:
            if (len)
                b[at] ^= (uint8_t)(1u << (next() % 8));
            break;
        case 1:
            if (len)
                b[at] = (uint8_t)next();
            break;
        case 2:
            if (at + 1 < len) {
                unsigned v = ((unsigned)b[at] << 8 | b[at + 1]) + (next() % 5) - 2;
                b[at] = (uint8_t)(v >> 8);
                b[at + 1] = (uint8_t)v;
            }
            break;
        case 3:
            len = at;
            break;
        case 4: {
            size_t n = 1 + next() % 8;
            if (len + n <= cap) {
                memmove(b + at + n, b + at, len - at);
                for (size_t i = 0; i < n; i++)
                    b[at + i] = (uint8_t)next();
                len += n;
            }
            break;
        }
        case 5: {
            size_t n = len - at < 8 ? len - at : 1 + next() % 8;
            memmove(b + at, b + at + n, len - at - n);
            len -= n;
            break;
        }
        default:
            if (olen) {
                size_t from = next() % olen, n = olen - from;
                if (at + n > cap)
                    n = cap - at;
                memcpy(b + at, other + from, n);
                if (at + n > len)
                    len = at + n;
            }
            break;
        }
    }
    return len;
}

int main(int argc, char **argv)
{
    int fail = 0;
    if (argc > 1) {
        for (int i = 1; i < argc; i++)
            fail |= run(argv[i], NULL, NULL, NULL);
        printf("1..%d\n", n_test);
        return fail;
    }
    const char *src = getenv("MG_SRCDIR");
    char *dir = mg_xasprintf("%s/tests/fuzz/corpus/tls_hello", src ? src : ".");
    DIR *d = opendir(dir);
    if (!d) {
        printf("1..0 # SKIP no corpus at %s\n", dir);
        free(dir);
        return 0;
    }
    uint8_t *in[64];
    size_t in_len[64], n_in = 0;
    struct dirent *de;
    while ((de = readdir(d)) && n_in < 64) {
        if (de->d_name[0] == '.')
            continue;
        char *p = mg_xasprintf("%s/%s", dir, de->d_name);
        fail |= run(p, de->d_name, &in[n_in], &in_len[n_in]);
        if (in[n_in])
            n_in++;
        free(p);
    }
    closedir(d);
    free(dir);
    for (size_t i = 0; i < N_EXPECT; i++)
        if (!seen[i]) {
            printf("not ok %d - %s missing from the corpus\n", ++n_test, expect[i].file);
            fail = 1;
        }

    /* the mutation run: a fixed seed, so a failure repeats */
    enum { ROUNDS = 1500 };
    static uint8_t m[MG_TLS_PEEK_MAX + 64];
    size_t runs = 0;
    for (size_t i = 0; i < n_in; i++)
        for (int r = 0; r < ROUNDS; r++) {
            size_t len = in_len[i] < sizeof(m) ? in_len[i] : sizeof(m);
            memcpy(m, in[i], len);
            size_t o = next() % n_in;
            len = mutate(m, len, sizeof(m), in[o], in_len[o]);
            LLVMFuzzerTestOneInput(m, len);
            runs++;
        }
    printf("ok %d - %zu mutated inputs hold every property\n", ++n_test, runs);
    for (size_t i = 0; i < n_in; i++)
        free(in[i]);
    printf("1..%d\n", n_test);
    return fail;
}
#endif
