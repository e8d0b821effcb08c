/* http1.c - strict HTTP/1.1 request and response heads (RFC 9112).
 *
 * Every call first finds the end of the head with memchr (vectorised, one
 * pass, bounded by max_head), rejecting bare CR/LF on the way, and only then
 * parses the complete head once. Re-running on a longer buffer therefore
 * costs one linear scan, and nothing is ever parsed from a partial line
 * except the request-line prefix check that rejects non-HTTP input early. */
#include <stddef.h>
#include <string.h>
#include "http1/http1.h"
#include "http1/internal.h"

#define DEF_MAX_HEAD (60u * 1024u)   /* Proxy limits.maxRequestHeadersKb default */
#define DEF_MAX_HEADERS 100u         /* Envoy's max_headers_count default */

/* Generated from the class definitions in http1/internal.h. */
const unsigned char mg_h1_ctab[256] = {
     0,  0,  0,  0,  0,  0,  0,  0,  0,  2,  0,  0,  0,  0,  0,  0,
     0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,
     2, 15,  6,  7, 15, 15, 15, 15, 14, 14, 15, 15, 14, 15, 15,  6,
    31, 31, 31, 31, 31, 31, 31, 31, 31, 31,  6, 14,  6, 14,  6,  6,
     6, 31, 31, 31, 31, 31, 31, 15, 15, 15, 15, 15, 15, 15, 15, 15,
    15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15,  6,  6,  6,  7, 15,
     7, 31, 31, 31, 31, 31, 31, 15, 15, 15, 15, 15, 15, 15, 15, 15,
    15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15,  6,  7,  6, 15,  0,
     2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,
     2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,
     2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,
     2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,
     2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,
     2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,
     2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,
     2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,
};

static inline unsigned char lower(unsigned char c) { return (c >= 'A' && c <= 'Z') ? c | 0x20 : c; }
static inline bool is_digit(unsigned char c) { return c >= '0' && c <= '9'; }
static inline bool is_ows(unsigned char c) { return c == ' ' || c == '\t'; }

bool mg_h1_ieq(const char *a, size_t alen, const char *b, size_t blen)
{
    if (alen != blen)
        return false;
    for (size_t i = 0; i < alen; i++)
        if (lower((unsigned char)a[i]) != lower((unsigned char)b[i]))
            return false;
    return true;
}

#define IEQ_LIT(p, n, lit) mg_h1_ieq((p), (n), lit, sizeof(lit) - 1)

bool mg_h1_valid_name(const char *name, size_t len)
{
    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!mg_h1c((unsigned char)name[i], MG_H1C_TCHAR))
            return false;
    return true;
}

bool mg_h1_valid_value(const char *value, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (!mg_h1c((unsigned char)value[i], MG_H1C_VALUE))
            return false;
    return true;
}

const struct mg_h1_header *mg_h1_find(const struct mg_h1_header *h, size_t n, const char *name)
{
    size_t len = strlen(name);
    for (size_t i = 0; i < n; i++)
        if (mg_h1_ieq(h[i].name, h[i].name_len, name, len))
            return &h[i];
    return NULL;
}

bool mg_h1_is_hop_by_hop(const char *name, size_t len)
{
    static const char *const hop[] = {
        "connection", "keep-alive", "proxy-connection", "te", "trailer",
        "transfer-encoding", "upgrade",
    };
    for (size_t i = 0; i < sizeof(hop) / sizeof(hop[0]); i++)
        if (mg_h1_ieq(name, len, hop[i], strlen(hop[i])))
            return true;
    return false;
}

bool mg_h1_connection_lists(const struct mg_h1_header *h, size_t n, const char *name, size_t len)
{
    for (size_t i = 0; i < n; i++) {
        if (!IEQ_LIT(h[i].name, h[i].name_len, "connection"))
            continue;
        const char *v = h[i].value, *e = v + h[i].value_len;
        while (v < e) {
            const char *comma = memchr(v, ',', (size_t)(e - v));
            const char *te = comma ? comma : e;
            const char *s = v;
            while (s < te && is_ows((unsigned char)*s))
                s++;
            const char *t = te;
            while (t > s && is_ows((unsigned char)t[-1]))
                t--;
            if (t > s && mg_h1_ieq(s, (size_t)(t - s), name, len))
                return true;
            v = comma ? comma + 1 : e;
        }
    }
    return false;
}

static void resolve_limits(const struct mg_h1_limits *lim, size_t *max_head, size_t *max_headers)
{
    *max_head = (lim && lim->max_head) ? lim->max_head : DEF_MAX_HEAD;
    *max_headers = (lim && lim->max_headers) ? lim->max_headers : DEF_MAX_HEADERS;
    if (*max_headers > MG_H1_MAX_HEADERS)
        *max_headers = MG_H1_MAX_HEADERS;
}

/* Find the end of the head in buf[0..len). Returns the head length, 0 when
 * incomplete (*first_line_len then holds the bytes of the unfinished first
 * line when no line is complete yet, else SIZE_MAX), or -1 with *status.
 * Every line is checked to end in CRLF with no other CR or LF inside it, so
 * the parse pass may split lines on the first CR. */
static ssize_t find_head_end(const char *buf, size_t len, size_t max_head, size_t max_fields,
                             size_t *n_fields, size_t *first_line_len, int *status)
{
    size_t scan = len < max_head ? len : max_head;
    size_t pos = 0, lines = 0;

    *first_line_len = SIZE_MAX;
    if (len == 0)                      /* buf may be NULL: no memchr on it */
        return 0;
    for (;;) {
        const char *nl = memchr(buf + pos, '\n', scan - pos);
        size_t end = nl ? (size_t)(nl - buf) : scan;
        const char *cr = memchr(buf + pos, '\r', end - pos);
        if (!nl) {
            /* A CR may only be the last byte seen so far (its LF to come). */
            if (cr && (size_t)(cr - buf) + 1 < scan) {
                *status = 400;
                return -1;
            }
            if (len > max_head) {
                *status = 431;
                return -1;
            }
            if (lines == 0)
                *first_line_len = (cr ? (size_t)(cr - buf) : scan);
            return 0;
        }
        if (!cr || cr != nl - 1) {     /* bare LF, or a CR not followed by LF */
            *status = 400;
            return -1;
        }
        if (cr == buf + pos) {         /* empty line */
            if (lines == 0) {          /* strict: no empty line before the start line */
                *status = 400;
                return -1;
            }
            *n_fields = lines - 1;
            return (ssize_t)(end + 1);
        }
        if (lines++ > max_fields) {    /* lines - 1 header fields so far */
            *status = 431;
            return -1;
        }
        pos = end + 1;
    }
}

/* Split the field lines in [p, end) (each ends in CRLF, no stray CR/LF) into
 * hdrs. Returns 0 or -1 (malformed field line). */
static int parse_fields(const char *p, const char *end, struct mg_h1_header *hdrs, size_t *n)
{
    size_t count = 0;
    while (p < end) {
        const char *eol = memchr(p, '\r', (size_t)(end - p));
        const char *q = p;
        /* obs-fold, or whitespace before the first field */
        if (is_ows((unsigned char)*q))
            return -1;
        while (q < eol && mg_h1c((unsigned char)*q, MG_H1C_TCHAR))
            q++;
        /* whitespace before the colon, any non-token byte, or no colon */
        if (q == p || q == eol || *q != ':')
            return -1;
        hdrs[count].name = p;
        hdrs[count].name_len = (size_t)(q - p);
        const char *v = q + 1, *ve = eol;
        if (!mg_h1_valid_value(v, (size_t)(ve - v)))
            return -1;
        while (v < ve && is_ows((unsigned char)*v))
            v++;
        while (ve > v && is_ows((unsigned char)ve[-1]))
            ve--;
        hdrs[count].value = v;
        hdrs[count].value_len = (size_t)(ve - v);
        count++;
        p = eol + 2;
    }
    *n = count;
    return 0;
}

/* 1*DIGIT without sign, spaces or overflow. */
static int parse_content_length(const char *p, size_t n, uint64_t *out)
{
    uint64_t v = 0;
    if (n == 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (!is_digit(c))
            return -1;
        if (v > (UINT64_MAX - (c - '0')) / 10)
            return -1;
        v = v * 10 + (c - '0');
    }
    *out = v;
    return 0;
}

/* uri-host [ ":" port ] (RFC 9110 7.2); the port, when required or present,
 * is 1-5 digits <= 65535. userinfo ('@') is never accepted. */
static bool valid_authority(const char *p, size_t n, bool need_port)
{
    size_t i = 0;
    if (n == 0)
        return false;
    if (p[0] == '[') {
        for (i = 1; i < n && p[i] != ']'; i++)
            if (!mg_h1c((unsigned char)p[i], MG_H1C_HEX) && p[i] != ':' && p[i] != '.')
                return false;
        if (i == n || i == 1)
            return false;
        i++;
    } else {
        while (i < n && p[i] != ':') {
            if (p[i] == '%') {
                if (i + 2 >= n || !mg_h1c((unsigned char)p[i + 1], MG_H1C_HEX) ||
                    !mg_h1c((unsigned char)p[i + 2], MG_H1C_HEX))
                    return false;
                i += 3;
                continue;
            }
            if (!mg_h1c((unsigned char)p[i], MG_H1C_HOST))
                return false;
            i++;
        }
        if (i == 0)
            return false;
    }
    if (i == n)
        return !need_port;
    if (p[i] != ':')
        return false;
    i++;
    if (i == n || n - i > 5)
        return false;
    unsigned port = 0;
    for (; i < n; i++) {
        if (!is_digit((unsigned char)p[i]))
            return false;
        port = port * 10 + (unsigned)(p[i] - '0');
    }
    return port <= 65535;
}

/* Walk a comma-separated token list (Connection). Sets bits: 1 close,
 * 2 keep-alive, 4 upgrade. Returns -1 when an element is not a token. */
static int connection_tokens(const char *p, size_t n, unsigned *bits)
{
    size_t i = 0;
    while (i < n) {
        while (i < n && (is_ows((unsigned char)p[i]) || p[i] == ','))
            i++;
        size_t s = i;
        while (i < n && mg_h1c((unsigned char)p[i], MG_H1C_TCHAR))
            i++;
        size_t e = i;
        while (i < n && is_ows((unsigned char)p[i]))
            i++;
        if (i < n && p[i] != ',')
            return -1;
        if (e == s)
            continue;
        if (IEQ_LIT(p + s, e - s, "close"))
            *bits |= 1;
        else if (IEQ_LIT(p + s, e - s, "keep-alive"))
            *bits |= 2;
        else if (IEQ_LIT(p + s, e - s, "upgrade"))
            *bits |= 4;
    }
    return 0;
}

/* What the framing-relevant fields say, shared by requests and responses. */
struct framing {
    const struct mg_h1_header *cl, *te, *host, *upgrade;
    size_t n_cl, n_te, n_host;
    unsigned conn;               /* connection_tokens bits */
    bool expect_continue;
    uint64_t content_length;
};

static int scan_framing(const struct mg_h1_header *h, size_t n, struct framing *f)
{
    memset(f, 0, sizeof(*f));
    for (size_t i = 0; i < n; i++) {
        const char *nm = h[i].name;
        size_t nl = h[i].name_len;
        if (IEQ_LIT(nm, nl, "content-length")) {
            f->cl = &h[i];
            f->n_cl++;
        } else if (IEQ_LIT(nm, nl, "transfer-encoding")) {
            f->te = &h[i];
            f->n_te++;
        } else if (IEQ_LIT(nm, nl, "host")) {
            f->host = &h[i];
            f->n_host++;
        } else if (IEQ_LIT(nm, nl, "connection")) {
            if (connection_tokens(h[i].value, h[i].value_len, &f->conn) < 0)
                return -1;
        } else if (IEQ_LIT(nm, nl, "upgrade")) {
            if (h[i].value_len > 0)
                f->upgrade = &h[i];
        } else if (IEQ_LIT(nm, nl, "expect")) {
            if (IEQ_LIT(h[i].value, h[i].value_len, "100-continue"))
                f->expect_continue = true;
        }
    }
    /* A repeated Content-Length is refused even with equal values, so no two
     * hops can pick different copies. */
    if (f->n_cl > 1 || f->n_te > 1)
        return -1;
    if (f->cl && parse_content_length(f->cl->value, f->cl->value_len, &f->content_length) < 0)
        return -1;
    return 0;
}

static bool is_chunked(const struct mg_h1_header *te)
{
    return IEQ_LIT(te->value, te->value_len, "chunked");
}

/* Check (a prefix of) the request-line p[0..n). With complete == false only
 * errors that no further bytes could repair are reported. Returns 0 or the
 * status. */
static int parse_request_line(const char *p, size_t n, bool complete, struct mg_h1_request *req)
{
    size_t i = 0;
    while (i < n && p[i] != ' ') {
        unsigned char c = (unsigned char)p[i];
        /* Istio answers 400 to a method that is not uppercase. */
        if (!mg_h1c(c, MG_H1C_TCHAR) || (c >= 'a' && c <= 'z'))
            return 400;
        i++;
    }
    if (i == 0 && n > 0)
        return 400;                                    /* empty method */
    if (i == n)
        return complete ? 400 : 0;
    req->method = p;
    req->method_len = i;
    size_t t = ++i;
    while (i < n && p[i] != ' ') {
        if (!mg_h1c((unsigned char)p[i], MG_H1C_VCHAR))
            return 400;
        i++;
    }
    if (i == t && i < n)
        return 400;                                    /* empty target: two spaces */
    if (i == n)
        return complete ? 400 : 0;
    req->target = p + t;
    req->target_len = i - t;
    const char *v = p + i + 1;
    size_t vn = n - i - 1;
    static const char proto[] = "HTTP/";
    if (!complete) {
        if (vn > 8)
            return 400;
        for (size_t k = 0; k < vn; k++) {
            bool good = k < 5 ? v[k] == proto[k] : k == 6 ? v[k] == '.' : is_digit((unsigned char)v[k]);
            if (!good)
                return 400;
        }
        return 0;
    }
    if (vn != 8 || memcmp(v, proto, 5) != 0 || !is_digit((unsigned char)v[5]) || v[6] != '.' ||
        !is_digit((unsigned char)v[7]))
        return 400;
    if (v[5] != '1' || (v[7] != '0' && v[7] != '1'))
        return 505;
    req->minor = v[7] - '0';
    return 0;
}

/* Strip ":port" when it is the scheme's default port. */
static size_t without_port(const char *p, size_t n, const char *dport)
{
    size_t dl = dport ? strlen(dport) : 0;
    if (dl && n > dl + 1 && p[n - dl - 1] == ':' && memcmp(p + n - dl, dport, dl) == 0)
        return n - dl - 1;
    return n;
}

/* Same authority, case-insensitively; http://a and http://a:80 are the same
 * origin (RFC 9110 4.2.3), so the scheme's default port may be left out on
 * either side. */
static bool same_authority(const char *a, size_t an, const char *b, size_t bn, const char *dport)
{
    return mg_h1_ieq(a, without_port(a, an, dport), b, without_port(b, bn, dport));
}

/* Classify the request-target and find its authority (and the default port
 * of its scheme, NULL for CONNECT). Returns 0 or 400. */
static int parse_target(struct mg_h1_request *req, const char **auth, size_t *auth_len,
                        const char **dport)
{
    const char *t = req->target;
    size_t n = req->target_len;
    *auth = NULL;
    *auth_len = 0;
    *dport = NULL;
    if (IEQ_LIT(req->method, req->method_len, "CONNECT")) {
        /* authority-form only, and the port is mandatory */
        if (!valid_authority(t, n, true))
            return 400;
        req->connect = true;
        *auth = t;
        *auth_len = n;
        return 0;
    }
    if (t[0] == '/')
        return 0;
    if (n == 1 && t[0] == '*')
        return IEQ_LIT(req->method, req->method_len, "OPTIONS") ? 0 : 400;
    size_t skip;
    if (n >= 7 && IEQ_LIT(t, 7, "http://")) {
        skip = 7;
        *dport = "80";
    } else if (n >= 8 && IEQ_LIT(t, 8, "https://")) {
        skip = 8;
        *dport = "443";
    } else {
        return 400;
    }
    size_t e = skip;
    while (e < n && t[e] != '/' && t[e] != '?' && t[e] != '#')
        e++;
    if (!valid_authority(t + skip, e - skip, false))
        return 400;
    req->absolute_form = true;
    *auth = t + skip;
    *auth_len = e - skip;
    return 0;
}

static int request_semantics(struct mg_h1_request *req)
{
    struct framing f;
    const char *auth, *dport;
    size_t auth_len;

    if (scan_framing(req->headers, req->n_headers, &f) < 0)
        return 400;
    if (parse_target(req, &auth, &auth_len, &dport))
        return 400;
    /* RFC 9112 3.2: exactly one Host on 1.1; never two. */
    if (f.n_host > 1 || (req->minor == 1 && f.n_host == 0))
        return 400;
    if (f.host) {
        bool empty_ok = !auth;     /* empty Host only when the target has no authority */
        if (f.host->value_len == 0 ? !empty_ok : !valid_authority(f.host->value, f.host->value_len, false))
            return 400;
        if (auth && !same_authority(auth, auth_len, f.host->value, f.host->value_len, dport))
            return 400;
    }
    if (auth) {
        req->host = auth;
        req->host_len = auth_len;
    } else if (f.host) {
        req->host = f.host->value;
        req->host_len = f.host->value_len;
    }
    if (f.te) {
        if (req->minor == 0 || f.cl || req->connect)
            return 400;
        if (!is_chunked(f.te))
            return mg_h1_valid_name(f.te->value, f.te->value_len) ? 501 : 400;
        req->body = MG_H1_BODY_CHUNKED;
    } else if (f.cl) {
        if (req->connect && f.content_length != 0)
            return 400;
        req->content_length = f.content_length;
        req->body = f.content_length ? MG_H1_BODY_LENGTH : MG_H1_BODY_NONE;
    }
    req->keep_alive = req->minor == 1 ? !(f.conn & 1) : (f.conn & 2) && !(f.conn & 1);
    /* RFC 9110 10.1.1: a 1.0 request's 100-continue is ignored. */
    req->expect_continue = f.expect_continue && req->minor == 1;
    req->upgrade = (f.conn & 4) && f.upgrade;
    return 0;
}

/* Zero everything but the (large) header array, which n_headers guards:
 * the data plane re-runs the parser on every read. */
static void reset_request(struct mg_h1_request *req)
{
    memset(req, 0, offsetof(struct mg_h1_request, headers));
    memset(&req->n_headers, 0, sizeof(*req) - offsetof(struct mg_h1_request, n_headers));
}

ssize_t mg_h1_parse_request(const char *buf, size_t len, const struct mg_h1_limits *lim,
                            struct mg_h1_request *req, int *status)
{
    size_t max_head, max_headers, nf = 0, first;
    int st = 0;

    resolve_limits(lim, &max_head, &max_headers);
    reset_request(req);
    *status = 0;
    ssize_t head = find_head_end(buf, len, max_head, max_headers, &nf, &first, &st);
    if (head < 0) {
        *status = st;
        return -1;
    }
    if (head == 0) {
        /* Only the start of an unfinished line is checked: enough to turn
         * away non-HTTP bytes at once, and re-runs stay a plain memchr. */
        if (first != SIZE_MAX && first > 256)
            first = 256;
        st = first != SIZE_MAX ? parse_request_line(buf, first, false, req) : 0;
        reset_request(req);
        if (st) {
            *status = st;
            return -1;
        }
        return 0;
    }
    const char *eol = memchr(buf, '\r', (size_t)head);
    const char *end = buf + head - 2;
    if ((st = parse_request_line(buf, (size_t)(eol - buf), true, req)) != 0 ||
        (st = parse_fields(eol + 2, end, req->headers, &req->n_headers) ? 400 : 0) != 0 ||
        (st = request_semantics(req)) != 0) {
        *status = st;
        return -1;
    }
    return head;
}

/* "HTTP/1.x DDD[ reason]". Returns 0 or -1. */
static int parse_status_line(const char *p, size_t n, struct mg_h1_response *resp)
{
    if (n < 12 || memcmp(p, "HTTP/1.", 7) != 0 || (p[7] != '0' && p[7] != '1') || p[8] != ' ')
        return -1;
    if (!is_digit((unsigned char)p[9]) || !is_digit((unsigned char)p[10]) ||
        !is_digit((unsigned char)p[11]))
        return -1;
    int code = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
    if (code < 100 || code > 599)
        return -1;
    /* The SP before an empty reason is commonly omitted; a fourth digit or
     * any other byte right after the code is not. */
    if (n > 12 && p[12] != ' ')
        return -1;
    const char *r = n > 12 ? p + 13 : p + n;
    size_t rn = (size_t)(p + n - r);
    if (!mg_h1_valid_value(r, rn))
        return -1;
    resp->minor = p[7] - '0';
    resp->status = code;
    resp->reason = r;
    resp->reason_len = rn;
    return 0;
}

static int response_semantics(struct mg_h1_response *resp, const char *method, size_t mlen)
{
    struct framing f;
    if (scan_framing(resp->headers, resp->n_headers, &f) < 0)
        return -1;
    /* CL with TE is a smuggling vector however it is resolved; TE in a
     * 1.0 message is faulty framing (RFC 9112 6.1); only a lone chunked
     * can be removed without leaving another coding unannounced. */
    if (f.te && (f.cl || resp->minor == 0 || !is_chunked(f.te)))
        return -1;
    int s = resp->status;
    bool bodiless = (s >= 100 && s < 200) || s == 204 || s == 304 ||
                    (method && IEQ_LIT(method, mlen, "HEAD")) ||
                    (method && IEQ_LIT(method, mlen, "CONNECT") && s >= 200 && s < 300);
    resp->content_length = f.content_length;
    resp->keep_alive = resp->minor == 1 ? !(f.conn & 1) : (f.conn & 2) && !(f.conn & 1);
    if (bodiless)
        resp->body = MG_H1_BODY_NONE;
    else if (f.te)
        resp->body = MG_H1_BODY_CHUNKED;
    else if (f.cl)
        resp->body = f.content_length ? MG_H1_BODY_LENGTH : MG_H1_BODY_NONE;
    else {
        resp->body = MG_H1_BODY_UNTIL_CLOSE;
        resp->keep_alive = false;
    }
    return 0;
}

ssize_t mg_h1_parse_response(const char *buf, size_t len, const struct mg_h1_limits *lim,
                             const char *request_method, size_t method_len,
                             struct mg_h1_response *resp)
{
    size_t max_head, max_headers, nf = 0, first;
    int st = 0;

    resolve_limits(lim, &max_head, &max_headers);
    memset(resp, 0, offsetof(struct mg_h1_response, headers));
    memset(&resp->n_headers, 0, sizeof(*resp) - offsetof(struct mg_h1_response, n_headers));
    ssize_t head = find_head_end(buf, len, max_head, max_headers, &nf, &first, &st);
    if (head <= 0)
        return head;
    const char *eol = memchr(buf, '\r', (size_t)head);
    if (parse_status_line(buf, (size_t)(eol - buf), resp) < 0 ||
        parse_fields(eol + 2, buf + head - 2, resp->headers, &resp->n_headers) < 0 ||
        response_semantics(resp, request_method, method_len) < 0)
        return -1;
    return head;
}
