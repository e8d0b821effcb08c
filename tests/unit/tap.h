/* tap.h - a tiny TAP producer for unit tests (header only).
 *
 * Use: plan with tap_plan(n) or call tap_done() at the end (prints 1..N);
 * ok(cond, fmt, ...) records one test; is_int/is_str compare and show both
 * sides on failure. The exit status of tap_done() is 0 only when every test
 * passed, so a test binary can `return tap_done();`. */
#ifndef MG_TAP_H
#define MG_TAP_H
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int tap_n, tap_fail, tap_planned;

__attribute__((unused)) static void tap_plan(int n) { tap_planned = n; printf("1..%d\n", n); }

__attribute__((format(printf, 2, 3)))
static int ok(int cond, const char *fmt, ...)
{
    va_list ap;
    tap_n++;
    printf("%sok %d - ", cond ? "" : "not ", tap_n);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    if (!cond)
        tap_fail++;
    fflush(stdout);
    return cond;
}

#define is_int(got, want, ...) do { long long g_ = (got), w_ = (want); \
    if (!ok(g_ == w_, __VA_ARGS__)) printf("#   got %lld, want %lld\n", g_, w_); } while (0)
#define is_str(got, want, ...) do { const char *g_ = (got), *w_ = (want); \
    int e_ = (g_ && w_) ? strcmp(g_, w_) == 0 : g_ == w_; \
    if (!ok(e_, __VA_ARGS__)) printf("#   got '%s', want '%s'\n", g_ ? g_ : "(null)", w_ ? w_ : "(null)"); } while (0)

__attribute__((unused)) static void tap_diag(const char *msg) { printf("# %s\n", msg); }

__attribute__((unused)) static int tap_done(void)
{
    if (!tap_planned)
        printf("1..%d\n", tap_n);
    return tap_fail ? 1 : 0;
}
#endif
