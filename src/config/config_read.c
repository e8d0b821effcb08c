/* config_read.c - typed readers of YAML values for the kind readers.
 *
 * Messages name the field the way users write it relative to `spec`
 * ("mtls.mode", "rules[0].to[1].operation.ports[2]"), and point at the value. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "config/internal.h"

void *mg_cfg_grow(void *arr, size_t n, size_t elem)
{
    if (n == 0)
        return mg_xrealloc(arr, 4 * elem);
    if (n >= 4 && (n & (n - 1)) == 0)
        return mg_xrealloc(arr, 2 * n * elem);
    return arr;
}

size_t mg_cfg_push(struct mg_cfg *x, const char *fmt, ...)
{
    size_t mark = x->plen;
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(x->path + x->plen, sizeof(x->path) - x->plen, fmt, ap);
    va_end(ap);
    if (n > 0)
        x->plen += (size_t)n < sizeof(x->path) - x->plen ? (size_t)n : sizeof(x->path) - x->plen - 1;
    return mark;
}

void mg_cfg_pop(struct mg_cfg *x, size_t mark)
{
    x->plen = mark;
    x->path[mark] = '\0';
}

const char *mg_cfg_field(struct mg_cfg *x, const char *key)
{
    static _Thread_local char buf[640];
    const char *rel = strchr(x->path, '.');

    rel = rel ? rel + 1 : "";
    if (strcmp(rel, "spec") == 0)
        rel = "";
    else if (mg_has_prefix(rel, "spec."))
        rel += 5;
    if (!key || !*key)
        snprintf(buf, sizeof(buf), "%s", *rel ? rel : x->path);
    else if (key[0] == '[')
        snprintf(buf, sizeof(buf), "%s%s", rel, key);
    else
        snprintf(buf, sizeof(buf), "%s%s%s", rel, *rel ? "." : "", key);
    return buf;
}

bool mg_cfg_next(const struct mg_ynode *m, size_t *i, const struct mg_ynode **k,
                 const struct mg_ynode **v)
{
    if (!m || m->type != MG_YMAP || *i + 1 >= m->n)
        return false;
    *k = m->items[*i];
    *v = m->items[*i + 1];
    *i += 2;
    return true;
}

void mg_cfg_unknown(struct mg_cfg *x, const struct mg_ynode *k)
{
    mg_error(x->d, k->pos, "unknown field \"%s\" in %s", k->str, x->path);
}

void mg_cfg_unsupported(struct mg_cfg *x, const struct mg_ynode *k)
{
    mg_warning(x->d, k->pos, "field \"%s\" in %s is not supported, ignored", k->str, x->path);
}

static bool want(struct mg_cfg *x, const char *key, const struct mg_ynode *v,
                 enum mg_ynode_type t, const char *what)
{
    if (mg_ynode_is_null(v))
        return false;
    if (v->type == t)
        return true;
    mg_error(x->d, v->pos, "expected %s for %s, got %s", what, mg_cfg_field(x, key),
             mg_ynode_kind(v));
    return false;
}

static bool too_many(struct mg_cfg *x, const char *key, const struct mg_ynode *v, size_t n)
{
    if (n <= MG_CFG_MAX_ITEMS)
        return false;
    mg_error(x->d, v->pos, "%s has %zu entries, more than the limit of %u", mg_cfg_field(x, key),
             n, MG_CFG_MAX_ITEMS);
    return true;
}

bool mg_cfg_map(struct mg_cfg *x, const char *key, const struct mg_ynode *v)
{
    return want(x, key, v, MG_YMAP, "a map") && !too_many(x, key, v, v->n / 2);
}

bool mg_cfg_seq(struct mg_cfg *x, const char *key, const struct mg_ynode *v)
{
    return want(x, key, v, MG_YSEQ, "a list") && !too_many(x, key, v, v->n);
}

bool mg_cfg_scalar(struct mg_cfg *x, const char *key, const struct mg_ynode *v)
{
    return want(x, key, v, MG_YSCALAR, "a string");
}

bool mg_cfg_str(struct mg_cfg *x, const char *key, const struct mg_ynode *v, char **out)
{
    if (!mg_cfg_scalar(x, key, v))
        return false;
    free(*out);
    *out = mg_xstrdup(v->str);
    return true;
}

bool mg_cfg_bool(struct mg_cfg *x, const char *key, const struct mg_ynode *v, bool *out)
{
    static const char *const t[] = { "true", "True", "TRUE" }, *const f[] = { "false", "False", "FALSE" };

    if (!mg_cfg_scalar(x, key, v))
        return false;
    for (size_t i = 0; i < 3; i++) {
        if (strcmp(v->str, t[i]) == 0) {
            *out = true;
            return true;
        }
        if (strcmp(v->str, f[i]) == 0) {
            *out = false;
            return true;
        }
    }
    mg_error(x->d, v->pos, "invalid value \"%s\" for %s (want true or false)", v->str,
             mg_cfg_field(x, key));
    return false;
}

bool mg_cfg_int(struct mg_cfg *x, const char *key, const struct mg_ynode *v, int64_t min,
                int64_t max, int64_t *out)
{
    const char *s;
    bool neg;
    uint64_t u;

    if (!mg_cfg_scalar(x, key, v))
        return false;
    s = v->str;
    neg = *s == '-';
    if (neg || *s == '+')
        s++;
    /* protobuf's JSON mapping accepts integers written as strings too */
    if (mg_parse_uint(s, 0, (uint64_t)INT64_MAX, &u) < 0 ||
        (neg ? -(int64_t)u : (int64_t)u) < min || (neg ? -(int64_t)u : (int64_t)u) > max) {
        mg_error(x->d, v->pos, "invalid value \"%s\" for %s (want an integer in %lld..%lld)",
                 v->str, mg_cfg_field(x, key), (long long)min, (long long)max);
        return false;
    }
    *out = neg ? -(int64_t)u : (int64_t)u;
    return true;
}

bool mg_cfg_intv(struct mg_cfg *x, const char *key, const struct mg_ynode *v, int min, int max,
                 int *out)
{
    int64_t t;
    if (!mg_cfg_int(x, key, v, min, max, &t))
        return false;
    *out = (int)t;
    return true;
}

bool mg_cfg_u64(struct mg_cfg *x, const char *key, const struct mg_ynode *v, uint64_t *out)
{
    int64_t t;
    if (!mg_cfg_int(x, key, v, 0, INT64_MAX, &t))
        return false;
    *out = (uint64_t)t;
    return true;
}

bool mg_cfg_port(struct mg_cfg *x, const char *key, const struct mg_ynode *v, uint16_t *out)
{
    if (!mg_cfg_scalar(x, key, v))
        return false;
    if (!v->plain) {
        /* the CRD schemas type port numbers as integers: the API server
         * refuses "80" before Istio sees it */
        mg_error(x->d, v->pos, "invalid port \"%s\" for %s: a number, not a string", v->str,
                 mg_cfg_field(x, key));
        return false;
    }
    if (mg_parse_port(v->str, false, out) == 0)
        return true;
    mg_error(x->d, v->pos, "invalid port \"%s\" for %s (want 1..65535)", v->str,
             mg_cfg_field(x, key));
    return false;
}

bool mg_cfg_duration(struct mg_cfg *x, const char *key, const struct mg_ynode *v, int64_t *out)
{
    if (!mg_cfg_scalar(x, key, v))
        return false;
    if (mg_parse_duration_ms(v->str, out) == 0)
        return true;
    mg_error(x->d, v->pos, "invalid duration \"%s\" for %s (want e.g. 10s, 500ms, 1h30m)",
             v->str, mg_cfg_field(x, key));
    return false;
}

bool mg_cfg_enum(struct mg_cfg *x, const char *key, const struct mg_ynode *v,
                 const char *const *names, const int *vals, size_t n, int *out)
{
    struct mg_buf b = { 0 };
    uint64_t u;

    if (!mg_cfg_scalar(x, key, v))
        return false;
    for (size_t i = 0; i < n; i++)
        if (strcmp(v->str, names[i]) == 0) {
            *out = vals ? vals[i] : (int)i;
            return true;
        }
    if (v->plain && mg_parse_uint(v->str, 0, n - 1, &u) == 0) {
        *out = vals ? vals[u] : (int)u;
        return true;
    }
    for (size_t i = 0; i < n; i++)
        mg_buf_printf(&b, "%s%s", i ? ", " : "", names[i]);
    mg_error(x->d, v->pos, "invalid value \"%s\" for %s (want %s)", v->str, mg_cfg_field(x, key),
             b.p);
    mg_buf_free(&b);
    return false;
}

bool mg_cfg_slist(struct mg_cfg *x, const char *key, const struct mg_ynode *v,
                  struct mg_slist *out)
{
    if (!mg_cfg_seq(x, key, v))
        return false;
    out->present = true;
    for (size_t i = 0; i < v->n; i++) {
        const struct mg_ynode *e = v->items[i];
        if (e->type != MG_YSCALAR || mg_ynode_is_null(e)) {
            char sub[32];
            snprintf(sub, sizeof(sub), "[%zu]", i);
            mg_error(x->d, e->pos, "expected a string for %s%s, got %s", mg_cfg_field(x, key),
                     sub, mg_ynode_kind(e));
            continue;
        }
        out->v = mg_cfg_grow(out->v, out->n, sizeof(*out->v));
        out->pos = mg_cfg_grow(out->pos, out->n, sizeof(*out->pos));
        out->v[out->n] = mg_xstrdup(e->str);
        out->pos[out->n] = e->pos;
        out->n++;
    }
    return true;
}

bool mg_cfg_kvlist(struct mg_cfg *x, const char *key, const struct mg_ynode *v,
                   struct mg_kvlist *out)
{
    const struct mg_ynode *k, *e;

    if (!mg_cfg_map(x, key, v))
        return false;
    for (size_t i = 0; mg_cfg_next(v, &i, &k, &e);) {
        struct mg_kv *kv;
        if (e->type != MG_YSCALAR) {
            mg_error(x->d, e->pos, "expected a string for %s.%s, got %s", mg_cfg_field(x, key),
                     k->str, mg_ynode_kind(e));
            continue;
        }
        kv = MG_CFG_PUSH(out->v, out->n);
        kv->key = mg_xstrdup(k->str);
        kv->value = mg_xstrdup(mg_ynode_is_null(e) ? "" : e->str);
        kv->pos = k->pos;
    }
    return true;
}

char *mg_cfg_resolve(const struct mg_cfg *x, const char *p)
{
    if (p[0] == '/' || !x->dir || !*x->dir || strcmp(x->dir, ".") == 0)
        return mg_xstrdup(p);
    return mg_xasprintf("%s/%s", x->dir, p);
}

bool mg_cfg_file(struct mg_cfg *x, const char *key, const struct mg_ynode *v, bool check,
                 char **out)
{
    char *p;
    int fd;

    if (!mg_cfg_scalar(x, key, v))
        return false;
    if (!*v->str) {
        free(*out);
        *out = NULL;
        return true;
    }
    p = mg_cfg_resolve(x, v->str);
    if (check) {
        fd = open(p, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            mg_error(x->d, v->pos, "cannot read %s \"%s\": %s", mg_cfg_field(x, key), p,
                     strerror(errno));
        else
            close(fd);
    }
    free(*out);
    *out = p;
    return true;
}

static const struct mg_cfg_field match_labels_rows[] = {
    MG_CFG_KVLIST("matchLabels", struct mg_selector, match_labels),
    MG_CFG_UNSUPPORTED("matchExpressions"),
};
/* Label values as Kubernetes takes them; Istio refuses a '*' in one
 * (selectors match exactly). */
static void check_selector(struct mg_cfg *x, const struct mg_cfg_read *r, void *obj)
{
    const struct mg_selector *sel = obj;
    for (size_t i = 0; i < sel->match_labels.n; i++) {
        const struct mg_kv *kv = &sel->match_labels.v[i];
        if (strchr(kv->value, '*'))
            mg_error(x->d, kv->pos, "wildcard is not supported in selector: %s: \"%s\"",
                     kv->key, kv->value);
        else if (!mg_cfg_label_value_ok(kv->value))
            mg_error(x->d, kv->pos, "invalid label value \"%s\" for %s (1..63 alphanumerics, "
                     "'-', '_' or '.', alphanumeric at both ends)", kv->value, kv->key);
    }
}
const struct mg_cfg_table mg_cfg_match_labels = {
    MG_CFG_ROWS(match_labels_rows), .present_at = MG_CFG_FLAG_AT(struct mg_selector, present),
    .pos_at = MG_CFG_POS_AT(struct mg_selector, pos), .check = check_selector,
};
static const struct mg_cfg_field labels_rows[] = {
    MG_CFG_KVLIST("labels", struct mg_selector, match_labels),
};
const struct mg_cfg_table mg_cfg_labels = {
    MG_CFG_ROWS(labels_rows), .present_at = MG_CFG_FLAG_AT(struct mg_selector, present),
    .pos_at = MG_CFG_POS_AT(struct mg_selector, pos), .check = check_selector,
};

static void target_ref(struct mg_cfg *x, const struct mg_ynode *v, struct mg_target_ref *r)
{
    const struct mg_ynode *k, *e;

    r->pos = v->pos;
    for (size_t i = 0; mg_cfg_next(v, &i, &k, &e);) {
        if (strcmp(k->str, "group") == 0)
            mg_cfg_str(x, k->str, e, &r->group);
        else if (strcmp(k->str, "kind") == 0)
            mg_cfg_str(x, k->str, e, &r->kind);
        else if (strcmp(k->str, "name") == 0)
            mg_cfg_str(x, k->str, e, &r->name);
        else if (strcmp(k->str, "namespace") == 0)
            mg_cfg_str(x, k->str, e, &r->namespace_);
        else
            mg_cfg_unknown(x, k);
    }
    if (!r->name)
        mg_error(x->d, v->pos, "%s needs a name", mg_cfg_field(x, NULL));
    if (r->namespace_ && *r->namespace_)
        mg_error(x->d, v->pos, "%s: targetRef namespace must not be set; cross namespace "
                 "referencing is not supported", mg_cfg_field(x, NULL));
    /* Istio's list: Service (core, group ""), ServiceEntry, and the
     * Gateway API's Gateway and GatewayClass */
    static const char *const allowed[][2] = {
        { "", "Service" }, { "core", "Service" }, { "networking.istio.io", "ServiceEntry" },
        { "gateway.networking.k8s.io", "Gateway" }, { "gateway.networking.k8s.io", "GatewayClass" },
    };
    bool ok = false;
    for (size_t i = 0; i < MG_ARRAY_LEN(allowed) && !ok; i++)
        ok = strcmp(r->group ? r->group : "", allowed[i][0]) == 0 && r->kind &&
             strcmp(r->kind, allowed[i][1]) == 0;
    if (!ok)
        mg_error(x->d, v->pos, "%s: targetRef must be to a Service, ServiceEntry, Gateway or "
                 "GatewayClass but was %s/%s", mg_cfg_field(x, NULL), r->group ? r->group : "",
                 r->kind ? r->kind : "");
}

void mg_cfg_target_refs(struct mg_cfg *x, const char *key, const struct mg_ynode *v,
                        struct mg_target_ref **refs, size_t *n)
{
    size_t mark;

    if (strcmp(key, "targetRef") == 0) {
        if (!mg_cfg_map(x, key, v))
            return;
        mark = mg_cfg_push(x, ".targetRef");
        target_ref(x, v, MG_CFG_PUSH(*refs, *n));
        mg_cfg_pop(x, mark);
        return;
    }
    if (!mg_cfg_seq(x, key, v))
        return;
    for (size_t i = 0; i < v->n; i++) {
        mark = mg_cfg_push(x, ".%s[%zu]", key, i);
        if (mg_cfg_map(x, "", v->items[i]))
            target_ref(x, v->items[i], MG_CFG_PUSH(*refs, *n));
        mg_cfg_pop(x, mark);
    }
}

bool mg_cfg_smatch(struct mg_cfg *x, const char *key, const struct mg_ynode *v,
                   struct mg_smatch *out)
{
    const struct mg_ynode *k, *e;
    size_t mark;

    if (!mg_cfg_map(x, key, v))
        return false;
    mark = mg_cfg_push(x, ".%s", key);
    for (size_t i = 0; mg_cfg_next(v, &i, &k, &e);) {
        enum mg_smatch_kind kind;
        if (strcmp(k->str, "exact") == 0)
            kind = MG_SM_EXACT;
        else if (strcmp(k->str, "prefix") == 0)
            kind = MG_SM_PREFIX;
        else if (strcmp(k->str, "regex") == 0)
            kind = MG_SM_REGEX;
        else {
            mg_cfg_unknown(x, k);
            continue;
        }
        if (out->kind != MG_SM_NONE) {
            mg_error(x->d, k->pos, "%s may set only one of exact, prefix, regex",
                     mg_cfg_field(x, NULL));
            continue;
        }
        if (!mg_cfg_scalar(x, k->str, e))
            continue;
        if (kind == MG_SM_REGEX) {
            /* Istio refuses a regex that does not compile; compiled here
             * as the router will (anchored, POSIX extended) */
            regex_t re;
            char *anch = mg_xasprintf("^(%s)$", e->str);
            int rc = regcomp(&re, anch, REG_EXTENDED | REG_NOSUB);
            free(anch);
            if (rc != 0) {
                mg_error(x->d, e->pos, "regex '%s' does not compile (POSIX extended syntax) in %s",
                         e->str, mg_cfg_field(x, k->str));
                continue;
            }
            regfree(&re);
        }
        out->kind = kind;
        out->value = mg_xstrdup(e->str);
        out->pos = e->pos;
    }
    mg_cfg_pop(x, mark);
    return true;
}

bool mg_cfg_header(struct mg_cfg *x, const char *key, const struct mg_ynode *v, char **out)
{
    mg_cfg_str(x, key, v, out);
    if (*out && !mg_cfg_header_name_ok(*out)) {
        mg_error(x->d, v->pos, "invalid header name \"%s\" for %s", *out, mg_cfg_field(x, key));
        free(*out);
        *out = NULL;
    }
    if (*out)
        mg_lower(*out);
    return *out != NULL;
}

bool mg_cfg_addr(struct mg_cfg *x, const char *key, const struct mg_ynode *v, bool port_needed,
                 bool empty_ok, char **out)
{
    char host[256];
    uint16_t port;
    struct mg_addr a;

    mg_cfg_str(x, key, v, out);
    if (!*out || (empty_ok && !**out))
        return *out != NULL;
    if (mg_split_host_port(*out, host, sizeof(host), &port) < 0 || (port_needed && !port) ||
        (!port_needed && port) || mg_addr_parse_ip(&a, host) < 0) {
        mg_error(x->d, v->pos, "invalid address \"%s\" for %s (want %s)", *out,
                 mg_cfg_field(x, key), port_needed ? "IP:port" : "an IP address");
        free(*out);
        *out = NULL;
    }
    return *out != NULL;
}

bool mg_cfg_host_ok(const char *h)
{
    if (!*h)
        return false;
    if (strcmp(h, "*") == 0)
        return true;
    if (h[0] == '*') {
        if (h[1] != '.' || !h[2])
            return false;
        h += 2;
    }
    for (; *h; h++)
        if (*h == '*' || *h == '/' || (unsigned char)*h <= ' ' || *h == 0x7f)
            return false;
    return true;
}

bool mg_cfg_dns_label_ok(const char *s, size_t len)
{
    if (len == 0 || len > 63 || s[0] == '-' || s[len - 1] == '-')
        return false;
    for (size_t i = 0; i < len; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
            return false;
    return true;
}

bool mg_cfg_dns_subdomain_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 253)
        return false;
    for (const char *p = s;;) {
        const char *dot = strchr(p, '.');
        size_t l = dot ? (size_t)(dot - p) : strlen(p);
        /* a subdomain's labels are not held to 63 bytes, only the whole */
        if (l == 0 || p[0] == '-' || p[l - 1] == '-')
            return false;
        for (size_t i = 0; i < l; i++)
            if (!((p[i] >= 'a' && p[i] <= 'z') || (p[i] >= '0' && p[i] <= '9') || p[i] == '-'))
                return false;
        if (!dot)
            return true;
        p = dot + 1;
    }
}

bool mg_cfg_label_value_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0)
        return true;
    if (n > 63 || !isalnum((unsigned char)s[0]) || !isalnum((unsigned char)s[n - 1]))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && !strchr("-_.", s[i]))
            return false;
    return true;
}

bool mg_cfg_header_name_ok(const char *s)
{
    const char *start = s;

    if (!s || !*s)
        return false;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
            continue;
        /* HTTP/2 pseudo headers (":authority") are allowed as Istio does */
        if (c == ':' && s != start)
            return false;
        if (!strchr("!#$%&'*+-.^_`|~:", c))
            return false;
    }
    return true;
}

bool mg_cfg_proto(struct mg_cfg *x, const char *key, const struct mg_ynode *v,
                  enum mg_app_proto *out)
{
    /* Istio's whole list (pkg/config/protocol, case-insensitive). This proxy
     * speaks no MySQL, Redis or UDP of its own: those ports carry bytes as
     * TCP does, and HTTP_PROXY is an HTTP port. "" is Istio's "detect the
     * protocol"; only a ServiceEntry allows it (the Gateway reader refuses
     * it). */
    static const char *const names[] = { "HTTP", "HTTPS", "HTTP2", "GRPC", "GRPC-WEB",
                                         "TCP", "TLS", "MONGO", "REDIS", "MYSQL", "UDP",
                                         "HTTP_PROXY", "" };
    static const enum mg_app_proto vals[] = { MG_PROTO_HTTP, MG_PROTO_HTTPS, MG_PROTO_HTTP2,
                                              MG_PROTO_GRPC, MG_PROTO_GRPC_WEB, MG_PROTO_TCP,
                                              MG_PROTO_TLS, MG_PROTO_MONGO, MG_PROTO_TCP,
                                              MG_PROTO_TCP, MG_PROTO_TCP, MG_PROTO_HTTP,
                                              MG_PROTO_UNSET };

    if (!mg_cfg_scalar(x, key, v))
        return false;
    for (size_t i = 0; i < MG_ARRAY_LEN(names); i++)
        if (mg_strcasecmp(v->str, names[i]) == 0) {
            *out = vals[i];
            return true;
        }
    mg_error(x->d, v->pos,
             "unsupported protocol \"%s\" for %s (want HTTP, HTTPS, HTTP2, GRPC, GRPC-WEB, TCP, "
             "TLS, MONGO, REDIS, MYSQL, UDP, HTTP_PROXY)", v->str, mg_cfg_field(x, key));
    return false;
}

/* ---- field tables ---- */

static bool row_is(const struct mg_cfg_field *f, const char *key)
{
    if (f->name)
        return strcmp(f->name, key) == 0;
    for (size_t i = 0; i < f->n; i++)
        if (strcmp(f->names[i], key) == 0)
            return true;
    return false;
}

static const struct mg_cfg_field *find_row(const struct mg_cfg_table *t, const char *key)
{
    for (size_t i = 0; i < t->n; i++)
        if (row_is(&t->rows[i], key))
            return &t->rows[i];
    return NULL;
}

static bool read_list(struct mg_cfg *x, const char *key, const struct mg_ynode *v,
                      const struct mg_cfg_field *f, void *obj);

static bool read_row(struct mg_cfg *x, const struct mg_cfg_field *f, const struct mg_ynode *k,
                     const struct mg_ynode *v, void *obj)
{
    void *p = (char *)obj + f->off;
    const char *key = k->str;
    int t;

    switch (f->type) {
    case MG_F_STR: return mg_cfg_str(x, key, v, p);
    case MG_F_BOOL: return mg_cfg_bool(x, key, v, p);
    case MG_F_INT: return mg_cfg_intv(x, key, v, f->min, f->max, p);
    case MG_F_U64: return mg_cfg_u64(x, key, v, p);
    case MG_F_PORT: return mg_cfg_port(x, key, v, p);
    case MG_F_DURATION: return mg_cfg_duration(x, key, v, p);
    case MG_F_FILE: return mg_cfg_file(x, key, v, true, p);
    case MG_F_SLIST: return mg_cfg_slist(x, key, v, p);
    case MG_F_KVLIST: return mg_cfg_kvlist(x, key, v, p);
    case MG_F_SMATCH: return mg_cfg_smatch(x, key, v, p);
    case MG_F_PROTO: return mg_cfg_proto(x, key, v, p);
    case MG_F_HEADER: return mg_cfg_header(x, key, v, p);
    case MG_F_ADDR: return mg_cfg_addr(x, key, v, f->port_needed, f->empty_ok, p);
    case MG_F_REFS:
        mg_cfg_target_refs(x, key, v, p, (size_t *)((char *)obj + f->count_off));
        return true;
    case MG_F_ENUM:
        if (!mg_cfg_enum(x, key, v, f->names, f->vals, f->n, &t))
            return false;
        memcpy(p, &t, sizeof(t));       /* the row macro checked the size */
        return true;
    case MG_F_MAP: return mg_cfg_read_map(x, key, v, f->sub, p);
    case MG_F_LIST: return read_list(x, key, v, f, obj);
    case MG_F_FN: return f->fn(x, k, v, obj);
    case MG_F_UNSUPPORTED:
        mg_cfg_unsupported(x, k);
        return false;
    case MG_F_IGNORED:
        return false;
    }
    return false;
}

static void read_table(struct mg_cfg *x, const struct mg_ynode *m, const struct mg_cfg_table *t,
                       void *obj, void *parent)
{
    struct mg_cfg_read r = { .t = t, .m = m, .parent = parent };
    const struct mg_ynode *k, *v;

    if (t->n > MG_CFG_MAX_ROWS)
        abort();                        /* a table too long for r.seen: a programming error */
    if (m && t->present_at)
        *(bool *)((char *)obj + t->present_at - 1) = true;
    if (m && t->pos_at)
        *(struct mg_pos *)((char *)obj + t->pos_at - 1) = m->pos;
    if (t->init)
        t->init(obj);
    for (size_t i = 0; mg_cfg_next(m, &i, &k, &v);) {
        const struct mg_cfg_field *f = find_row(t, k->str);
        if (!f && t->others_unsupported)
            mg_cfg_unsupported(x, k);
        else if (!f)
            mg_cfg_unknown(x, k);
        else if (read_row(x, f, k, v, obj))
            r.seen[f - t->rows] = v;
    }
    if (t->check)
        t->check(x, &r, obj);
}

void mg_cfg_read_fields(struct mg_cfg *x, const struct mg_ynode *m, const struct mg_cfg_table *t,
                        void *obj)
{
    read_table(x, m, t, obj, NULL);
}

bool mg_cfg_read_map(struct mg_cfg *x, const char *key, const struct mg_ynode *v,
                     const struct mg_cfg_table *t, void *obj)
{
    if (!mg_cfg_map(x, key, v))
        return false;
    size_t mark = mg_cfg_push(x, key[0] == '[' ? "%s" : ".%s", key);
    read_table(x, v, t, obj, NULL);
    mg_cfg_pop(x, mark);
    return true;
}

void mg_cfg_read_spec(struct mg_cfg *x, const struct mg_ynode *spec, const struct mg_cfg_table *t,
                      void *obj)
{
    if (spec && !mg_ynode_is_null(spec) && !mg_cfg_map(x, "", spec))
        return;
    read_table(x, spec, t, obj, NULL);
}

/* Each map of the list becomes a new zeroed element; other items are
 * reported (null ones are skipped as absent). */
static bool read_list(struct mg_cfg *x, const char *key, const struct mg_ynode *v,
                      const struct mg_cfg_field *f, void *obj)
{
    char *arr;
    size_t *n = (size_t *)((char *)obj + f->count_off);

    if (!mg_cfg_seq(x, key, v))
        return false;
    for (size_t i = 0; i < v->n; i++) {
        size_t mark = mg_cfg_push(x, ".%s[%zu]", key, i);
        if (mg_ynode_is_null(v->items[i]))
            /* the API server refuses it: a list entry must be an object */
            mg_error(x->d, v->items[i]->pos, "%s must be a map, not null",
                     mg_cfg_field(x, NULL));
        else if (mg_cfg_map(x, "", v->items[i])) {
            /* through memcpy: the array is some struct's pointer, not a char * */
            memcpy(&arr, (char *)obj + f->off, sizeof(arr));
            arr = mg_cfg_grow(arr, *n, f->elem_size);
            memcpy((char *)obj + f->off, &arr, sizeof(arr));
            void *e = arr + (*n)++ * f->elem_size;
            memset(e, 0, f->elem_size);
            read_table(x, v->items[i], f->sub, e, obj);
        }
        mg_cfg_pop(x, mark);
    }
    return true;
}

const struct mg_ynode *mg_cfg_seen(const struct mg_cfg_read *r, const char *key)
{
    const struct mg_cfg_field *f = find_row(r->t, key);
    return f ? r->seen[f - r->t->rows] : NULL;
}

const struct mg_ynode *mg_cfg_last(const struct mg_ynode *m, const char *key)
{
    const struct mg_ynode *k, *v, *last = NULL;

    for (size_t i = 0; mg_cfg_next(m, &i, &k, &v);)
        if (strcmp(k->str, key) == 0)
            last = v;
    return last;
}
