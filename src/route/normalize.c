/* normalize.c - Envoy/Istio path normalization (MeshConfig
pathNormalization: NONE, BASE, MERGE_SLASHES, DECODE_AND_MERGE_SLASHES). */
#include <string.h>
#include "route/route.h"

static int is_unreserved(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '.' || c == '_' || c == '~';
}

/* Would the hex digit v, written after out[0..o), complete a new escape
 * with a literal '%' (or '%' and one hex digit) already written? */
static int forms_escape(const char *out, size_t o, int v)
{
    if (mg_hexval((unsigned char)v) < 0)
        return 0;
    return (o >= 1 && out[o - 1] == '%') ||
           (o >= 2 && out[o - 2] == '%' && mg_hexval((unsigned char)out[o - 1]) >= 0);
}

/* One pass over the path writing to out: the slash decoding of
 * DECODE_AND_MERGE_SLASHES and BASE's unreserved decoding, then '\' -> '/'.
 * Each escape is looked at once, so nothing is decoded twice; and an escape
 * whose decoded digit would join a literal '%' before it into a new escape
 * ("%%341" -> "%41") stays encoded, or the upstream, decoding once more,
 * would see a path ("/A") the policies never saw. */
static size_t decode_pass(const char *p, size_t n, char *out, int slashes)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c == '%' && i + 2 < n) {
            int h = mg_hexval((unsigned char)p[i + 1]);
            int l = mg_hexval((unsigned char)p[i + 2]);
            if (h >= 0 && l >= 0) {
                int v = h * 16 + l;
                if ((is_unreserved(v) && !forms_escape(out, o, v)) ||
                    (slashes && (v == '/' || v == '\\'))) {
                    c = (unsigned char)v;
                    i += 2;
                }
            }
        }
        out[o++] = c == '\\' ? '/' : (char)c;
    }
    return o;
}

/* RFC 3986 5.2.4 on a path that starts with '/', in place. The output is
 * a sequence of "/" + segment, so a ".." pops back to the last '/'. */
static size_t remove_dots(char *p, size_t n)
{
    size_t o = 0, i = 1;
    for (;;) {
        size_t s = i, e = i;
        while (e < n && p[e] != '/')
            e++;
        size_t l = e - s;
        int last = e >= n;
        if (l == 1 && p[s] == '.') {
            if (last)
                p[o++] = '/';
        } else if (l == 2 && p[s] == '.' && p[s + 1] == '.') {
            while (o > 0 && p[o - 1] != '/')
                o--;
            if (o > 0)
                o--;
            if (last)
                p[o++] = '/';
        } else {
            p[o++] = '/';
            memmove(p + o, p + s, l);
            o += l;
        }
        if (last)
            break;
        i = e + 1;
    }
    if (o == 0)
        p[o++] = '/';
    return o;
}

static size_t merge_slashes(char *p, size_t n)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++)
        if (!(p[i] == '/' && o > 0 && p[o - 1] == '/'))
            p[o++] = p[i];
    return o;
}

int mg_path_normalize(const char *target, size_t len, enum mg_path_norm mode, char *out,
                      size_t outcap, size_t *outlen, size_t *path_len)
{
    size_t end = len, q;
    if (!target || len == 0)
        return -1;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)target[i];
        if (c <= 0x20 || c >= 0x7f)
            return -1;
    }
    const char *h = memchr(target, '#', len);
    if (h)
        end = (size_t)(h - target);
    if (outcap < end + 1)
        return -2;
    if (end == 1 && target[0] == '*') {
        out[0] = '*';
        out[1] = 0;
        *outlen = *path_len = 1;
        return 0;
    }
    const char *qm = memchr(target, '?', end);
    q = qm ? (size_t)(qm - target) : end;
    if (q == 0 || target[0] != '/')
        return -1;
    for (size_t i = 0; i + 2 < q; i++)
        if (target[i] == '%' && target[i + 1] == '0' && target[i + 2] == '0')
            return -1;

    size_t n;
    if (mode == MG_NORM_NONE) {
        memcpy(out, target, q);
        n = q;
    } else {
        n = decode_pass(target, q, out, mode == MG_NORM_DECODE_AND_MERGE_SLASHES);
        n = remove_dots(out, n);
        if (mode == MG_NORM_MERGE_SLASHES || mode == MG_NORM_DECODE_AND_MERGE_SLASHES)
            n = merge_slashes(out, n);
    }
    *path_len = n;
    memcpy(out + n, target + q, end - q);
    n += end - q;
    out[n] = 0;
    *outlen = n;
    return 0;
}
