/* config/internal.h - what only config/ uses: the YAML node tree and the
 * field-table readers. */
#ifndef MG_CONFIG_INTERNAL_H
#define MG_CONFIG_INTERNAL_H
#include <stdbool.h>
#include <stddef.h>
#include <stdarg.h>
#include "base/base.h"
#include "config/config.h"

/* (not yaml.h: that name would shadow libyaml's <yaml.h>)
 * bounded YAML reader: libyaml events -> a node tree where every
 * node carries its FILE:LINE:COL.
 *
 * Only what Kubernetes-style configuration needs is accepted. Anchors,
 * aliases and merge keys (<<) are expanded as Kubernetes' reader does, but
 * an alias to a node that contains it is refused and the nodes aliases
 * create are capped (so a "billion laughs" is refused); non-standard tags
 * are refused,
 * duplicate mapping keys are an error at the second key (libyaml accepts
 * them silently), and input size, nesting depth, scalar size and node count
 * are capped before anything grows (libyaml 0.2.5 is
 * quadratic in depth, so the parse stops as soon as depth > 64). */
#define MG_YAML_MAX_INPUT   (16u * 1024 * 1024)   /* bytes per file */
#define MG_YAML_MAX_DEPTH   64                    /* nested collections */
#define MG_YAML_MAX_SCALAR  (1024u * 1024)        /* bytes per scalar */
#define MG_YAML_MAX_NODES   1000000u              /* nodes per file */
#define MG_YAML_MAX_ANCHORS 1024                  /* anchors per document */
#define MG_YAML_MAX_ALIAS_NODES 100000u           /* nodes aliases create, per file */

enum mg_ynode_type { MG_YSCALAR, MG_YSEQ, MG_YMAP };

struct mg_ynode {
    enum mg_ynode_type type;
    struct mg_pos pos;
    /* scalar: the bytes (NUL terminated), length, and whether it was written
     * plain (unquoted); only plain scalars can be null, bool or numbers. */
    char *str;
    size_t len;
    bool plain;
    /* scalar: where its text starts (a quoted scalar: after the quote; a
     * literal block `|`: its first content line, at the indentation), and
     * whether it is a literal block, whose lines keep their place in the
     * file: byte i of str is then found by counting newlines (mg_ynode_at) */
    struct mg_pos text;
    bool literal;
    /* seq: items[0..n); map: items[2i] = key, items[2i+1] = value. */
    struct mg_ynode **items;
    size_t n;
};

struct mg_ydoc {
    struct mg_ynode *root;              /* NULL for an empty document */
    struct mg_pos pos;                  /* where the document starts */
};

struct mg_ydocs {
    struct mg_ydoc *v;
    size_t n;
};

/* Parse `len` bytes of `data` (need not be NUL terminated) as a YAML stream.
 * `file` names the input in positions (interned here). Documents read
 * before a fatal problem are kept in `out`. Every problem goes to `d`.
 * Returns 0 when the whole stream was read without error, -1 otherwise.
 * The caller frees `out` with mg_yaml_free in both cases. */
int mg_yaml_parse(const char *file, const char *data, size_t len, struct mg_diags *d,
                  struct mg_ydocs *out);

void mg_yaml_free(struct mg_ydocs *docs);

/* Helpers for readers of the tree. */
/* A plain `null`, `~`, `Null`, `NULL` or empty plain scalar. */
bool mg_ynode_is_null(const struct mg_ynode *n);
/* Value of key `key` in map `m` (scalar keys only), or NULL. */
const struct mg_ynode *mg_ynode_get(const struct mg_ynode *m, const char *key);
/* "a string", "a list", "a map" (for messages). */
/* The file position of byte `off` of scalar n's text: exact on a literal
 * block or a single-line scalar, else the scalar's start. */
struct mg_pos mg_ynode_at(const struct mg_ynode *n, size_t off);
const char *mg_ynode_kind(const struct mg_ynode *n);

/* internals shared by the config_*.c readers (not exported
 * outside the config area).
 *
 * A reader walks one YAML map with the key names Istio uses, and calls the
 * typed helpers below for each value; most readers are field tables (see
 * "field tables" below) that one generic reader walks. Every helper reports its own errors
 * (with the value's position and the field path) and leaves the output
 * untouched on error, so readers never stop at the first problem. A null
 * value (`key:` or `key: null`) counts as absent, as in Kubernetes. */
/* Most items in one list or map. Istio's own limits are lower (512 rules);
 * this keeps every pairwise check in the readers cheap. `kind: List`
 * items are bounded only by the YAML node cap. */
#define MG_CFG_MAX_ITEMS 4096

struct mg_cfg {
    struct mg_diags *d;
    struct mg_config *c;
    const char *dir;                    /* directory of the file being read */
    const char *ns;                     /* namespace of the current document */
    char path[512];                     /* "Kind.spec.rules[0]" for messages */
    size_t plen;
};

/* Field path stack: push returns a mark to pop back to. */
size_t mg_cfg_push(struct mg_cfg *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void mg_cfg_pop(struct mg_cfg *x, size_t mark);
/* "mtls.mode" style name of field `key` at the current path (static buffer). */
const char *mg_cfg_field(struct mg_cfg *x, const char *key);

/* Map iteration: for (size_t i = 0; mg_cfg_next(m, &i, &k, &v); ) */
bool mg_cfg_next(const struct mg_ynode *m, size_t *i, const struct mg_ynode **k,
                 const struct mg_ynode **v);
void mg_cfg_unknown(struct mg_cfg *x, const struct mg_ynode *k);
void mg_cfg_unsupported(struct mg_cfg *x, const struct mg_ynode *k);

/* Type checks: false (with an error unless null) when v is not that type. */
bool mg_cfg_map(struct mg_cfg *x, const char *key, const struct mg_ynode *v);
bool mg_cfg_seq(struct mg_cfg *x, const char *key, const struct mg_ynode *v);
bool mg_cfg_scalar(struct mg_cfg *x, const char *key, const struct mg_ynode *v);

/* The value readers below return true when they stored a value. */
bool mg_cfg_str(struct mg_cfg *x, const char *key, const struct mg_ynode *v, char **out);
bool mg_cfg_bool(struct mg_cfg *x, const char *key, const struct mg_ynode *v, bool *out);
bool mg_cfg_int(struct mg_cfg *x, const char *key, const struct mg_ynode *v, int64_t min,
                int64_t max, int64_t *out);
bool mg_cfg_intv(struct mg_cfg *x, const char *key, const struct mg_ynode *v, int min, int max,
                 int *out);
bool mg_cfg_u64(struct mg_cfg *x, const char *key, const struct mg_ynode *v, uint64_t *out);
bool mg_cfg_port(struct mg_cfg *x, const char *key, const struct mg_ynode *v, uint16_t *out);
bool mg_cfg_duration(struct mg_cfg *x, const char *key, const struct mg_ynode *v, int64_t *out);
/* Enum by Istio name or its numeric value (the index in names[]); vals[i]
 * is the C value for names[i] (NULL = same as the index). */
bool mg_cfg_enum(struct mg_cfg *x, const char *key, const struct mg_ynode *v,
                 const char *const *names, const int *vals, size_t n, int *out);
bool mg_cfg_slist(struct mg_cfg *x, const char *key, const struct mg_ynode *v,
                  struct mg_slist *out);
bool mg_cfg_kvlist(struct mg_cfg *x, const char *key, const struct mg_ynode *v,
                   struct mg_kvlist *out);
/* A file path: resolved against the YAML file's directory; when `check`,
 * an unreadable file is an error naming it and strerror. */
bool mg_cfg_file(struct mg_cfg *x, const char *key, const struct mg_ynode *v, bool check,
                 char **out);
char *mg_cfg_resolve(const struct mg_cfg *x, const char *p);
void mg_cfg_target_refs(struct mg_cfg *x, const char *key, const struct mg_ynode *v,
                        struct mg_target_ref **refs, size_t *n);
bool mg_cfg_smatch(struct mg_cfg *x, const char *key, const struct mg_ynode *v,
                   struct mg_smatch *out);
/* An HTTP header name: invalid ones are an error and leave *out NULL. */
bool mg_cfg_header(struct mg_cfg *x, const char *key, const struct mg_ynode *v, char **out);
/* A listener address "ip:port" / "[v6]:port" (port_needed) or a bare IP;
 * "" stays "" when empty_ok. An invalid one is an error and leaves *out NULL. */
bool mg_cfg_addr(struct mg_cfg *x, const char *key, const struct mg_ynode *v, bool port_needed,
                 bool empty_ok, char **out);
/* A host name as Istio takes it: "*", "*.suffix" (wildcard only as the
 * leftmost label), or a name without '*', '/', spaces or control bytes. */
bool mg_cfg_host_ok(const char *h);
/* Kubernetes name rules: a DNS-1123 label (lower-case alphanumerics and
 * '-', 1..63, alphanumeric at both ends; `len` bytes of s), a DNS-1123
 * subdomain (such labels, of any length, joined by '.', at most 253), and a label value
 * (empty, or 1..63 alphanumerics, '-', '_', '.', alphanumeric at both
 * ends). */
bool mg_cfg_dns_label_ok(const char *s, size_t len);
bool mg_cfg_dns_subdomain_ok(const char *s);
bool mg_cfg_label_value_ok(const char *s);
/* An HTTP header name (RFC 9110 token). */
bool mg_cfg_header_name_ok(const char *s);

/* Make room for element n of an array that holds n elements and only ever
 * grows through here: capacity doubles at powers of two (4, 8, 16, ...), so
 * 10^5 documents cost O(n) copying, not O(n^2). */
void *mg_cfg_grow(void *arr, size_t n, size_t elem);

/* Grow an array by one zeroed element and return it. */
#define MG_CFG_PUSH(arr, n) \
    ((arr) = mg_cfg_grow((arr), (n), sizeof(*(arr))), \
     memset(&(arr)[(n)], 0, sizeof(*(arr))), &(arr)[(n)++])

/* ---- field tables ----
 * A struct's YAML map is described once, as a table with one row per key:
 * how the value is read and where in the struct it is stored. The one
 * reader below walks the map, reads each key through its row (with the
 * typed readers above, so every message and limit is theirs), warns about
 * rows marked unsupported, and reports every other key as unknown at the
 * key's position. Rules across fields go in the table's check. */

enum mg_cfg_ftype {
    MG_F_STR, MG_F_BOOL, MG_F_INT, MG_F_U64, MG_F_PORT, MG_F_DURATION,
    MG_F_FILE,                          /* a path that must be readable */
    MG_F_SLIST, MG_F_KVLIST, MG_F_SMATCH, MG_F_PROTO,
    MG_F_HEADER,                        /* an HTTP header name, lower-cased */
    MG_F_ADDR,                          /* "ip:port" or "ip" (port_needed), "" if empty_ok */
    MG_F_REFS,                          /* targetRef(s): array at off, count at count_off */
    MG_F_ENUM,                          /* an int-sized enum, by names[] (vals[]) */
    MG_F_MAP,                           /* a nested map: the struct at off, table sub */
    MG_F_LIST,                          /* a list of maps: array at off, count at count_off */
    MG_F_FN,                            /* a reader of its own: fn */
    MG_F_UNSUPPORTED,                   /* accepted with a warning */
    MG_F_IGNORED,                       /* accepted silently */
};

struct mg_cfg_table;
struct mg_cfg_read;

struct mg_cfg_field {
    const char *name;                   /* NULL: any of names[n] */
    enum mg_cfg_ftype type;
    size_t off;                         /* of the value in the struct the table reads */
    int min, max;                       /* MG_F_INT bounds */
    const char *const *names;           /* MG_F_ENUM names, C values vals (NULL = index) */
    const int *vals;
    size_t n;
    const struct mg_cfg_table *sub;     /* MG_F_MAP, MG_F_LIST: how to read the map(s) */
    size_t count_off, elem_size;        /* MG_F_LIST (count_off also MG_F_REFS) */
    bool port_needed, empty_ok;         /* MG_F_ADDR */
    /* MG_F_FN: obj is the struct the table reads; true when a value was taken */
    bool (*fn)(struct mg_cfg *x, const struct mg_ynode *k, const struct mg_ynode *v, void *obj);
};

struct mg_cfg_table {
    const struct mg_cfg_field *rows;
    size_t n;
    /* 1 + the offset of a bool set to true and of the struct mg_pos set to
     * the map's position when a map is read (0 = none): MG_CFG_FLAG_AT,
     * MG_CFG_POS_AT */
    size_t present_at, pos_at;
    /* Defaults, once the value is known to be a map (for mg_cfg_read_fields
     * and mg_cfg_read_spec: always, even when there is nothing to read). */
    void (*init)(void *obj);
    /* Cross-field rules, at the map's own path; obj as for rows. */
    void (*check)(struct mg_cfg *x, const struct mg_cfg_read *r, void *obj);
    bool others_unsupported;            /* keys without a row: a warning, not an error */
};

#define MG_CFG_MAX_ROWS 64

/* What a check sees of the map just read. */
struct mg_cfg_read {
    const struct mg_cfg_table *t;
    const struct mg_ynode *m;           /* the map (NULL or a null node for an absent spec) */
    void *parent;                       /* MG_F_LIST: the struct holding the array, else NULL */
    /* per row: the last value its reader took (the typed reader returned
     * true: for a map or an enum, only a valid one) */
    const struct mg_ynode *seen[MG_CFG_MAX_ROWS];
};

/* Read map m (may be NULL or a null node: nothing to read, check still
 * runs) with table t into obj; no type check and no path change. */
void mg_cfg_read_fields(struct mg_cfg *x, const struct mg_ynode *m, const struct mg_cfg_table *t,
                        void *obj);
/* The same for the value v of key `key`: false (with an error unless null)
 * when v is not a map; the path gains ".key" ("key" when it starts with
 * '[') while it is read. */
bool mg_cfg_read_map(struct mg_cfg *x, const char *key, const struct mg_ynode *v,
                     const struct mg_cfg_table *t, void *obj);
/* A spec: absent or null reads nothing but runs the check; any other
 * non-map is an error and nothing more is done. */
void mg_cfg_read_spec(struct mg_cfg *x, const struct mg_ynode *spec, const struct mg_cfg_table *t,
                      void *obj);
/* The value node that the row for `key` last took, or NULL. */
const struct mg_ynode *mg_cfg_seen(const struct mg_cfg_read *r, const char *key);
/* The value of the last `key` in map m (taken or not), or NULL. */
const struct mg_ynode *mg_cfg_last(const struct mg_ynode *m, const char *key);

/* Rows. Each checks at compile time that T.f has the type its reader writes. */
#define MG_CFG_OFF(T, f, type) _Generic(&((T *)0)->f, type *: offsetof(T, f))
/* enums: any int-sized type (a compile error otherwise) */
#define MG_CFG_ENUM_OFF(T, f) \
    (offsetof(T, f) + 0 * sizeof(char[sizeof(((T *)0)->f) == sizeof(int) ? 1 : -1]))
/* present_at and pos_at of a table: 1 + the offset of a bool / struct mg_pos */
#define MG_CFG_FLAG_AT(T, f) (MG_CFG_OFF(T, f, bool) + 1)
#define MG_CFG_POS_AT(T, f) (MG_CFG_OFF(T, f, struct mg_pos) + 1)
#define MG_CFG_ROWS(rows_) .rows = (rows_), .n = MG_ARRAY_LEN(rows_)

#define MG_CFG_ROW(k, t, o) .name = (k), .type = (t), .off = (o)
#define MG_CFG_STR(k, T, f) { MG_CFG_ROW(k, MG_F_STR, MG_CFG_OFF(T, f, char *)) }
#define MG_CFG_FILE(k, T, f) { MG_CFG_ROW(k, MG_F_FILE, MG_CFG_OFF(T, f, char *)) }
#define MG_CFG_BOOL(k, T, f) { MG_CFG_ROW(k, MG_F_BOOL, MG_CFG_OFF(T, f, bool)) }
#define MG_CFG_INT(k, T, f, lo, hi) \
    { MG_CFG_ROW(k, MG_F_INT, MG_CFG_OFF(T, f, int)), .min = (lo), .max = (hi) }
#define MG_CFG_U64(k, T, f) { MG_CFG_ROW(k, MG_F_U64, MG_CFG_OFF(T, f, uint64_t)) }
#define MG_CFG_PORT(k, T, f) { MG_CFG_ROW(k, MG_F_PORT, MG_CFG_OFF(T, f, uint16_t)) }
#define MG_CFG_DURATION(k, T, f) { MG_CFG_ROW(k, MG_F_DURATION, MG_CFG_OFF(T, f, int64_t)) }
#define MG_CFG_SLIST(k, T, f) { MG_CFG_ROW(k, MG_F_SLIST, MG_CFG_OFF(T, f, struct mg_slist)) }
#define MG_CFG_KVLIST(k, T, f) { MG_CFG_ROW(k, MG_F_KVLIST, MG_CFG_OFF(T, f, struct mg_kvlist)) }
#define MG_CFG_SMATCH(k, T, f) { MG_CFG_ROW(k, MG_F_SMATCH, MG_CFG_OFF(T, f, struct mg_smatch)) }
#define MG_CFG_PROTO(k, T, f) \
    { MG_CFG_ROW(k, MG_F_PROTO, MG_CFG_OFF(T, f, enum mg_app_proto)) }
#define MG_CFG_HEADER(k, T, f) { MG_CFG_ROW(k, MG_F_HEADER, MG_CFG_OFF(T, f, char *)) }
#define MG_CFG_ADDR(k, T, f, port, empty) \
    { MG_CFG_ROW(k, MG_F_ADDR, MG_CFG_OFF(T, f, char *)), .port_needed = (port), \
      .empty_ok = (empty) }
#define MG_CFG_REFS(k, T, refs, count) \
    { MG_CFG_ROW(k, MG_F_REFS, MG_CFG_OFF(T, refs, struct mg_target_ref *)), \
      .count_off = MG_CFG_OFF(T, count, size_t) }
#define MG_CFG_ENUM(k, T, f, names_) \
    { MG_CFG_ROW(k, MG_F_ENUM, MG_CFG_ENUM_OFF(T, f)), .names = (names_), \
      .n = MG_ARRAY_LEN(names_) }
#define MG_CFG_ENUMV(k, T, f, names_, vals_) \
    { MG_CFG_ROW(k, MG_F_ENUM, MG_CFG_ENUM_OFF(T, f)), .names = (names_), .vals = (vals_), \
      .n = MG_ARRAY_LEN(names_) }
/* a nested map read into the struct member T.f */
#define MG_CFG_MAP(k, T, f, table) { MG_CFG_ROW(k, MG_F_MAP, offsetof(T, f)), .sub = &(table) }
/* a nested map that only groups more fields of the same struct */
#define MG_CFG_GROUP(k, table) { MG_CFG_ROW(k, MG_F_MAP, 0), .sub = &(table) }
#define MG_CFG_LIST(k, T, arr, count, table) \
    { MG_CFG_ROW(k, MG_F_LIST, offsetof(T, arr)), .sub = &(table), \
      .count_off = MG_CFG_OFF(T, count, size_t), .elem_size = sizeof(*((T *)0)->arr) }
#define MG_CFG_FN(k, fn_) { MG_CFG_ROW(k, MG_F_FN, 0), .fn = (fn_) }
#define MG_CFG_UNSUPPORTED(k) { MG_CFG_ROW(k, MG_F_UNSUPPORTED, 0) }
#define MG_CFG_UNSUPPORTED_ANY(list) \
    { MG_CFG_ROW(NULL, MG_F_UNSUPPORTED, 0), .names = (list), .n = MG_ARRAY_LEN(list) }
#define MG_CFG_IGNORED_ANY(list) \
    { MG_CFG_ROW(NULL, MG_F_IGNORED, 0), .names = (list), .n = MG_ARRAY_LEN(list) }

/* Tables of `selector: {matchLabels: ...}` and `workloadSelector: {labels: ...}`
 * (struct mg_selector). */
extern const struct mg_cfg_table mg_cfg_match_labels, mg_cfg_labels;
/* localityLbSetting (struct mg_locality_lb, config_dest.c), validated as
 * Istio's validateLocalityLbSetting; read for DestinationRules and the
 * MeshConfig. */
extern const struct mg_cfg_table mg_cfg_locality_lb;

/* A Gateway server's `tls` (struct mg_server_tls, config_net.c), also read
 * for Proxy.spec.outbound.tls. Its check is what every server's TLS gets
 * (credentials xor files, CAs for the mutual modes, nothing but the proxy
 * identity for ISTIO_MUTUAL); the reader's own rules come after. */
extern const struct mg_cfg_table mg_cfg_server_tls;
/* ServerTLSSettings.mode names, indexed by enum mg_tls_mode. */
extern const char *const mg_cfg_server_tls_modes[6];

/* Kind readers (spec may be NULL when absent). */
void mg_cfg_read_authz(struct mg_cfg *x, const struct mg_ynode *spec, struct mg_authz_policy *p);
void mg_cfg_read_peer_authn(struct mg_cfg *x, const struct mg_ynode *spec, struct mg_peer_authn *p);
void mg_cfg_read_request_authn(struct mg_cfg *x, const struct mg_ynode *spec,
                               struct mg_request_authn *p);
void mg_cfg_read_mesh(struct mg_cfg *x, const struct mg_ynode *spec, struct mg_mesh_config *m);
/* IstioOperator (install.istio.io/v1alpha1): spec.meshConfig as a MeshConfig,
 * its unknown fields and the rest of spec warnings. */
void mg_cfg_read_istio_operator(struct mg_cfg *x, const struct mg_ynode *spec,
                                struct mg_mesh_config *m);
void mg_cfg_read_proxy(struct mg_cfg *x, const struct mg_ynode *spec, struct mg_proxy *p);
void mg_cfg_read_gateway(struct mg_cfg *x, const struct mg_ynode *spec, struct mg_gateway *g);
void mg_cfg_read_virtual_service(struct mg_cfg *x, const struct mg_ynode *spec,
                                 struct mg_virtual_service *vs);
void mg_cfg_read_destination_rule(struct mg_cfg *x, const struct mg_ynode *spec,
                                  struct mg_destination_rule *dr);
void mg_cfg_read_service_entry(struct mg_cfg *x, const struct mg_ynode *spec,
                               struct mg_service_entry *se);
/* Secret document (whole document map). Returns true when kept. */
bool mg_cfg_read_secret(struct mg_cfg *x, const struct mg_ynode *doc, struct mg_credential *cr);
/* Parse a Gateway/ServiceEntry port protocol name (case-insensitive). */
bool mg_cfg_proto(struct mg_cfg *x, const char *key, const struct mg_ynode *v,
                  enum mg_app_proto *out);

/* An http:// jwksUri whose host is 127.0.0.1, [::1] or localhost. */
bool mg_cfg_jwks_uri_local_http(const char *u);

/* Freeing (config_free.c). */
void mg_cfg_free_meta(struct mg_meta *m);
void mg_cfg_free_slist(struct mg_slist *l);
void mg_cfg_free_kvlist(struct mg_kvlist *l);
void mg_cfg_free_selector(struct mg_selector *s);
void mg_cfg_free_mesh(struct mg_mesh_config *m);
void mg_cfg_free_proxy(struct mg_proxy *p);
void mg_cfg_free_credential(struct mg_credential *c);
void mg_cfg_free_authz(struct mg_authz_policy *p);
void mg_cfg_free_peer_authn(struct mg_peer_authn *p);
void mg_cfg_free_request_authn(struct mg_request_authn *p);
void mg_cfg_free_server_tls(struct mg_server_tls *t);
void mg_cfg_free_gateway(struct mg_gateway *g);
void mg_cfg_free_virtual_service(struct mg_virtual_service *vs);
void mg_cfg_free_http_route(struct mg_http_route *r);
/* VirtualService delegation (config_delegate.c), once every document is
 * read: each root's http[].delegate is replaced by the delegate's routes
 * merged with it as Istio merges them; the delegates (no hosts) keep no
 * routes of their own. */
void mg_cfg_resolve_delegates(struct mg_config *c, struct mg_diags *d);
void mg_cfg_free_destination_rule(struct mg_destination_rule *dr);
void mg_cfg_free_service_entry(struct mg_service_entry *se);
void mg_cfg_read_workload_entry(struct mg_cfg *x, const struct mg_ynode *spec,
                                struct mg_workload_entry *we);
void mg_cfg_free_workload_entry(struct mg_workload_entry *we);

#endif
