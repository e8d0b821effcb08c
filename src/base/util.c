/* util.c - allocation, strings, and value parsers shared by every module. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "base/base.h"

_Noreturn void mg_oom(void)
{
    static const char msg[] = "meshgate: out of memory\n";
    ssize_t r = write(2, msg, sizeof(msg) - 1);
    (void)r;
    abort();
}

void *mg_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        mg_oom();
    return p;
}

void *mg_xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        mg_oom();
    return p;
}

void *mg_xrealloc(void *p, size_t n)
{
    p = realloc(p, n ? n : 1);
    if (!p)
        mg_oom();
    return p;
}

char *mg_xstrdup(const char *s)
{
    return mg_xstrndup(s, strlen(s));
}

char *mg_xstrndup(const char *s, size_t n)
{
    char *p = mg_xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = 0;
    return p;
}

char *mg_xasprintf(const char *fmt, ...)
{
    va_list ap;
    char *p;
    va_start(ap, fmt);
    if (vasprintf(&p, fmt, ap) < 0)
        mg_oom();
    va_end(ap);
    return p;
}

static pthread_mutex_t intern_lock = PTHREAD_MUTEX_INITIALIZER;
static char **interned;
static size_t ninterned;

const char *mg_intern(const char *s)
{
    const char *r = NULL;
    pthread_mutex_lock(&intern_lock);
    for (size_t i = 0; i < ninterned && !r; i++)
        if (strcmp(interned[i], s) == 0)
            r = interned[i];
    if (!r) {
        interned = mg_xrealloc(interned, (ninterned + 1) * sizeof(char *));
        r = interned[ninterned++] = mg_xstrdup(s);
    }
    pthread_mutex_unlock(&intern_lock);
    return r;
}

void mg_strlist_push(struct mg_strlist *l, const char *s)
{
    l->v = mg_xrealloc(l->v, (l->n + 1) * sizeof(char *));
    l->v[l->n++] = mg_xstrdup(s);
}

void mg_strlist_free(struct mg_strlist *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

bool mg_strlist_contains(const struct mg_strlist *l, const char *s)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->v[i], s) == 0)
            return true;
    return false;
}

void mg_buf_add(struct mg_buf *b, const void *data, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n + 1)
            cap *= 2;
        b->p = mg_xrealloc(b->p, cap);
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
    b->p[b->len] = 0;
}

void mg_buf_adds(struct mg_buf *b, const char *s)
{
    mg_buf_add(b, s, strlen(s));
}

void mg_buf_prom_label(struct mg_buf *b, const char *s)
{
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            mg_buf_add(b, "\\", 1);
        if (*s == '\n')
            mg_buf_adds(b, "\\n");
        else
            mg_buf_add(b, s, 1);
    }
}

void mg_buf_printf(struct mg_buf *b, const char *fmt, ...)
{
    va_list ap;
    char *p;
    int n;
    va_start(ap, fmt);
    n = vasprintf(&p, fmt, ap);
    va_end(ap);
    if (n < 0)
        mg_oom();
    mg_buf_add(b, p, (size_t)n);
    free(p);
}

void mg_buf_free(struct mg_buf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

static int lc(int c)
{
    return (c >= 'A' && c <= 'Z') ? c + 32 : c;
}

int mg_hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int mg_strcasecmp(const char *a, const char *b)
{
    for (;; a++, b++) {
        int d = lc((unsigned char)*a) - lc((unsigned char)*b);
        if (d || !*a)
            return d;
    }
}

int mg_strncasecmp(const char *a, const char *b, size_t n)
{
    for (; n; n--, a++, b++) {
        int d = lc((unsigned char)*a) - lc((unsigned char)*b);
        if (d || !*a)
            return d;
    }
    return 0;
}

bool mg_has_prefix(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

bool mg_has_suffix(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && memcmp(s + a - b, suffix, b) == 0;
}

void mg_lower(char *s)
{
    for (; *s; s++)
        *s = (char)lc((unsigned char)*s);
}

bool mg_pseudo_header(const struct mg_pseudo_headers *p, const char *name, size_t len,
                      const char **value)
{
    if (len == 4 && mg_strncasecmp(name, "host", 4) == 0)
        *value = p->authority;
    else if (len == 10 && mg_strncasecmp(name, ":authority", 10) == 0)
        *value = p->authority;
    else if (len == 5 && mg_strncasecmp(name, ":path", 5) == 0)
        *value = p->path;
    else if (len == 7 && mg_strncasecmp(name, ":method", 7) == 0)
        *value = p->method;
    else if (len == 7 && mg_strncasecmp(name, ":scheme", 7) == 0)
        *value = p->scheme;
    else
        return false;
    return true;
}

bool mg_pseudo_header_possible(const char *name, size_t len)
{
    static const struct mg_pseudo_headers all = { "", "", "", "" };
    const char *v;
    return len == 0 || name[0] != ':' || mg_pseudo_header(&all, name, len, &v);
}

int mg_parse_duration_ms(const char *s, int64_t *ms)
{
    /* Units in nanoseconds; "0" alone is accepted as Go does. */
    static const struct { const char *u; double ns; } units[] = {
        {"ns", 1}, {"us", 1e3}, {"\xc2\xb5s", 1e3}, {"ms", 1e6},
        {"s", 1e9}, {"m", 60e9}, {"h", 3600e9},
    };
    double total = 0;
    const char *p = s;

    if (!s || !*s)
        return -1;
    if (strcmp(s, "0") == 0) {
        *ms = 0;
        return 0;
    }
    while (*p) {
        char *end;
        double v;
        size_t best = 0, bi = 0;
        if (!isdigit((unsigned char)*p) && *p != '.')
            return -1;
        errno = 0;
        v = strtod(p, &end);
        if (end == p || errno)
            return -1;
        p = end;
        for (size_t i = 0; i < MG_ARRAY_LEN(units); i++) {
            size_t l = strlen(units[i].u);
            if (strncmp(p, units[i].u, l) == 0 && l > best) {
                best = l;
                bi = i;
            }
        }
        if (!best)
            return -1;
        total += v * units[bi].ns;
        p += best;
        if (total > 9.2e18)
            return -1;
    }
    *ms = (int64_t)(total / 1e6);
    if (total > 0 && *ms == 0)
        *ms = 1;
    return 0;
}

int mg_parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;
    if (!s || !*s)
        return -1;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        if (v > (UINT64_MAX - 9) / 10)
            return -1;
        v = v * 10 + (uint64_t)(*p - '0');
    }
    if (v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

int mg_parse_port(const char *s, bool allow_zero, uint16_t *out)
{
    uint64_t v;
    if (mg_parse_uint(s, allow_zero ? 0 : 1, 65535, &v) < 0)
        return -1;
    *out = (uint16_t)v;
    return 0;
}

int mg_cidr_parse(const char *s, struct mg_cidr *out)
{
    char buf[64];
    const char *slash = strchr(s, '/');
    size_t alen = slash ? (size_t)(slash - s) : strlen(s);
    int maxp;
    uint64_t prefix;

    if (alen == 0 || alen >= sizeof(buf))
        return -1;
    memcpy(buf, s, alen);
    buf[alen] = 0;
    memset(out, 0, sizeof(*out));
    if (inet_pton(AF_INET, buf, out->addr) == 1) {
        out->family = AF_INET;
        maxp = 32;
    } else if (inet_pton(AF_INET6, buf, out->addr) == 1) {
        out->family = AF_INET6;
        maxp = 128;
    } else {
        return -1;
    }
    if (slash) {
        if (mg_parse_uint(slash + 1, 0, (uint64_t)maxp, &prefix) < 0)
            return -1;
    } else {
        prefix = (uint64_t)maxp;
    }
    out->prefix = (uint8_t)prefix;
    for (int i = 0; i < maxp / 8; i++) {
        int bits = (int)prefix - i * 8;
        uint8_t mask = bits >= 8 ? 0xff : bits <= 0 ? 0 : (uint8_t)(0xff << (8 - bits));
        out->addr[i] &= mask;
    }
    return 0;
}

bool mg_cidr_match(const struct mg_cidr *c, int family, const uint8_t *addr)
{
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    int full, rem;

    if (family == AF_INET6 && c->family == AF_INET && memcmp(addr, mapped, 12) == 0) {
        family = AF_INET;
        addr += 12;
    }
    if (family != c->family)
        return false;
    full = c->prefix / 8;
    rem = c->prefix % 8;
    if (memcmp(addr, c->addr, (size_t)full) != 0)
        return false;
    if (rem) {
        uint8_t mask = (uint8_t)(0xff << (8 - rem));
        if ((addr[full] & mask) != c->addr[full])
            return false;
    }
    return true;
}

socklen_t mg_addr_to_sockaddr(const struct mg_addr *a, uint16_t port, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof(*ss));
    if (a->family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)ss;
        in->sin_family = AF_INET;
        in->sin_port = htons(port);
        memcpy(&in->sin_addr, a->ip, 4);
        return sizeof(*in);
    }
    if (a->family == AF_INET6) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(port);
        memcpy(&in6->sin6_addr, a->ip, 16);
        return sizeof(*in6);
    }
    return 0;
}

int mg_addr_from_sockaddr(struct mg_addr *a, const struct sockaddr *sa)
{
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    memset(a, 0, sizeof(*a));
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
        a->family = AF_INET;
        memcpy(a->ip, &s4->sin_addr, 4);
        a->port = ntohs(s4->sin_port);
        return 0;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
        a->port = ntohs(s6->sin6_port);
        if (memcmp(&s6->sin6_addr, mapped, 12) == 0) {
            a->family = AF_INET;
            memcpy(a->ip, (const uint8_t *)&s6->sin6_addr + 12, 4);
        } else {
            a->family = AF_INET6;
            memcpy(a->ip, &s6->sin6_addr, 16);
        }
        return 0;
    }
    return -1;
}

int mg_addr_parse_ip(struct mg_addr *a, const char *s)
{
    memset(a, 0, sizeof(*a));
    if (inet_pton(AF_INET, s, a->ip) == 1) {
        a->family = AF_INET;
        return 0;
    }
    if (inet_pton(AF_INET6, s, a->ip) == 1) {
        static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        a->family = AF_INET6;
        if (memcmp(a->ip, mapped, 12) == 0) {
            memmove(a->ip, a->ip + 12, 4);
            memset(a->ip + 4, 0, 12);
            a->family = AF_INET;
        }
        return 0;
    }
    return -1;
}

size_t mg_fmt_u64(char *out, uint64_t v)
{
    char d[MG_DEC_MAX];
    size_t i = sizeof(d);
    do {
        d[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    memcpy(out, d + i, sizeof(d) - i);
    return sizeof(d) - i;
}

const char *mg_addr_ip_str(const struct mg_addr *a, char *buf, size_t len)
{
    if (a->family == AF_INET && len >= 16) {
        /* every request formats its client's and upstream's address:
         * glibc's inet_ntop does IPv4 with sprintf, some 1 700
         * instructions; this, a tenth of that */
        char *p = buf;
        for (int i = 0; i < 4; i++) {
            p += mg_fmt_u64(p, a->ip[i]);
            *p++ = i < 3 ? '.' : '\0';
        }
        return buf;
    }
    if (!a->family || !inet_ntop(a->family, a->ip, buf, (socklen_t)len))
        snprintf(buf, len, "-");
    return buf;
}

int mg_split_host_port(const char *s, char *host, size_t hostlen, uint16_t *port)
{
    const char *colon;
    size_t hl;

    *port = 0;
    if (*s == '[') {
        const char *close = strchr(s, ']');
        if (!close)
            return -1;
        hl = (size_t)(close - s - 1);
        if (hl >= hostlen)
            return -1;
        memcpy(host, s + 1, hl);
        host[hl] = 0;
        if (close[1] == 0)
            return 0;
        if (close[1] != ':')
            return -1;
        return mg_parse_port(close + 2, false, port);
    }
    colon = strrchr(s, ':');
    if (colon && strchr(s, ':') != colon)
        colon = NULL;           /* bare IPv6 */
    hl = colon ? (size_t)(colon - s) : strlen(s);
    if (hl >= hostlen)
        return -1;
    memcpy(host, s, hl);
    host[hl] = 0;
    if (colon)
        return mg_parse_port(colon + 1, false, port);
    return 0;
}

int64_t mg_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t mg_wall_s(void)
{
    return (int64_t)time(NULL);
}

char *mg_read_file(const char *path, size_t max, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct mg_buf b = {0};
    char chunk[65536];

    if (fd < 0)
        return NULL;
    for (;;) {
        ssize_t r = read(fd, chunk, sizeof(chunk));
        if (r < 0) {
            if (errno == EINTR)
                continue;
            goto fail;
        }
        if (r == 0)
            break;
        if (b.len + (size_t)r > max) {
            errno = EFBIG;
            goto fail;
        }
        mg_buf_add(&b, chunk, (size_t)r);
    }
    close(fd);
    if (!b.p)
        b.p = mg_xstrdup("");
    if (len)
        *len = b.len;
    return b.p;
fail:
    {
        int e = errno;
        close(fd);
        mg_buf_free(&b);
        errno = e;
    }
    return NULL;
}

static int b64val(int c, bool url)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == (url ? '-' : '+')) return 62;
    if (c == (url ? '_' : '/')) return 63;
    return -1;
}

int mg_base64_decode(const char *in, size_t inlen, bool url, uint8_t **out, size_t *outlen)
{
    uint8_t *o;
    size_t n = 0;
    uint32_t acc = 0;
    int bits = 0;

    while (inlen && in[inlen - 1] == '=')
        inlen--;
    if (inlen % 4 == 1)
        return -1;
    o = mg_xmalloc(inlen * 3 / 4 + 3);
    for (size_t i = 0; i < inlen; i++) {
        int v = b64val((unsigned char)in[i], url);
        if (v < 0) {
            free(o);
            return -1;
        }
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            o[n++] = (uint8_t)(acc >> bits);
        }
    }
    o[n] = 0;
    *out = o;
    *outlen = n;
    return 0;
}

char *mg_base64_encode(const uint8_t *in, size_t inlen, bool url, bool pad)
{
    const char *al = url ? "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
                         : "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *o = mg_xmalloc(inlen * 4 / 3 + 5), *p = o;
    size_t i;
    for (i = 0; i + 2 < inlen; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        *p++ = al[v >> 18];
        *p++ = al[(v >> 12) & 63];
        *p++ = al[(v >> 6) & 63];
        *p++ = al[v & 63];
    }
    if (i < inlen) {
        uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < inlen ? (uint32_t)in[i + 1] << 8 : 0);
        *p++ = al[v >> 18];
        *p++ = al[(v >> 12) & 63];
        if (i + 1 < inlen)
            *p++ = al[(v >> 6) & 63];
        else if (pad)
            *p++ = '=';
        if (pad)
            *p++ = '=';
    }
    *p = 0;
    return o;
}

bool mg_host_match(const char *pattern, const char *name, size_t name_len)
{
    if (strcmp(pattern, "*") == 0)
        return true;
    if (pattern[0] == '*' && pattern[1] == '.') {
        size_t sl = strlen(pattern + 1);           /* ".example.com" */
        return name_len > sl && mg_strncasecmp(name + name_len - sl, pattern + 1, sl) == 0;
    }
    return strlen(pattern) == name_len && mg_strncasecmp(pattern, name, name_len) == 0;
}
