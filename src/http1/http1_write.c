/* http1_write.c - the HTTP/1 writer: every status line, reason phrase,
 * request and response head and chunk-size line meshgate sends.
 *
 * Hand-rolled instead of snprintf: these run for every response, request
 * and chunk the proxy emits. Output goes into a caller-provided buffer
 * through a cursor that keeps counting past its end, so one sequence of
 * calls both measures a head and writes it. */
#include <string.h>
#include "http1/http1.h"
#include "base/base.h"

/* The phrases meshgate sends; every other status goes out as "Unknown"
 * (the peer's own phrase is never relayed). */
const char *mg_h1_reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 408: return "Request Timeout";
    case 413: return "Payload Too Large";
    case 421: return "Misdirected Request";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
    }
}

void mg_h1_out_init(struct mg_h1_out *w, char *buf, size_t cap)
{
    w->buf = buf;
    w->cap = buf ? cap : 0;
    w->len = 0;
}

/* A piece that does not fit whole is left out and still counted: len only
 * grows, so once one piece is left out no later piece is written either,
 * and the buffer never holds a head with a hole in it. */
static void put(struct mg_h1_out *w, const char *s, size_t n)
{
    if (w->buf && n <= w->cap && w->len <= w->cap - n)
        memcpy(w->buf + w->len, s, n);
    w->len += n;
}

static void put_str(struct mg_h1_out *w, const char *s)
{
    put(w, s, strlen(s));
}

static void put_dec(struct mg_h1_out *w, uint64_t v)
{
    char d[MG_DEC_MAX];
    put(w, d, mg_fmt_u64(d, v));
}

void mg_h1_put_status_line(struct mg_h1_out *w, int minor, int status)
{
    if (status < 100 || status > 599)
        status = 500;
    put(w, minor == 0 ? "HTTP/1.0 " : "HTTP/1.1 ", 9);
    put_dec(w, (uint64_t)status);
    put(w, " ", 1);
    put_str(w, mg_h1_reason(status));
    put(w, "\r\n", 2);
}

void mg_h1_put_request_line(struct mg_h1_out *w, const char *method, const char *prefix,
                            const char *path, const char *query)
{
    put_str(w, method);
    put(w, " ", 1);
    if (prefix)
        put_str(w, prefix);
    put_str(w, path);
    if (query) {
        put(w, "?", 1);
        put_str(w, query);
    }
    put(w, " HTTP/1.1\r\n", 11);
}

void mg_h1_put_field(struct mg_h1_out *w, const char *name, const char *value)
{
    put_str(w, name);
    put(w, ": ", 2);
    put_str(w, value);
    put(w, "\r\n", 2);
}

void mg_h1_put_content_length(struct mg_h1_out *w, uint64_t n)
{
    put(w, "content-length: ", 16);
    put_dec(w, n);
    put(w, "\r\n", 2);
}

void mg_h1_put_end(struct mg_h1_out *w)
{
    put(w, "\r\n", 2);
}

size_t mg_h1_status_line(int status, char *buf, size_t cap)
{
    if (status < 100 || status > 599)
        return 0;
    char line[64];                      /* 9 + 3 + 1 + longest reason (31) + 2 */
    struct mg_h1_out w;
    mg_h1_out_init(&w, line, sizeof(line));
    mg_h1_put_status_line(&w, 1, status);
    if (w.len > w.cap || cap < w.len + 1)
        return 0;
    memcpy(buf, line, w.len);
    buf[w.len] = '\0';
    return w.len;
}

size_t mg_h1_chunk_header(uint64_t n, char *buf)
{
    static const char hex[] = "0123456789abcdef";
    char tmp[16];
    size_t k = 0;
    do {
        tmp[k++] = hex[n & 0xf];
        n >>= 4;
    } while (n);
    for (size_t i = 0; i < k; i++)
        buf[i] = tmp[k - 1 - i];
    buf[k] = '\r';
    buf[k + 1] = '\n';
    return k + 2;
}
