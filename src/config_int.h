/* config_int.h - internals shared by the config_*.c readers (not exported
 * outside the config area).
 *
 * A reader walks one YAML map with the key names Istio uses, and calls the
 * typed helpers below for each value. Every helper reports its own errors
 * (with the value's position and the field path) and leaves the output
 * untouched on error, so readers never stop at the first problem. A null
 * value (`key:` or `key: null`) counts as absent, as in Kubernetes. */
#ifndef MG_CONFIG_INT_H
#define MG_CONFIG_INT_H
#include <stdarg.h>
#include "config.h"
#include "mg_yaml.h"

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

void mg_cfg_str(struct mg_cfg *x, const char *key, const struct mg_ynode *v, char **out);
void mg_cfg_bool(struct mg_cfg *x, const char *key, const struct mg_ynode *v, bool *out);
bool mg_cfg_int(struct mg_cfg *x, const char *key, const struct mg_ynode *v, int64_t min,
                int64_t max, int64_t *out);
void mg_cfg_intv(struct mg_cfg *x, const char *key, const struct mg_ynode *v, int min, int max,
                 int *out);
void mg_cfg_u64(struct mg_cfg *x, const char *key, const struct mg_ynode *v, uint64_t *out);
void mg_cfg_port(struct mg_cfg *x, const char *key, const struct mg_ynode *v, uint16_t *out);
void mg_cfg_duration(struct mg_cfg *x, const char *key, const struct mg_ynode *v, int64_t *out);
/* Enum by Istio name or its numeric value (the index in names[]); vals[i]
 * is the C value for names[i] (NULL = same as the index). */
bool mg_cfg_enum(struct mg_cfg *x, const char *key, const struct mg_ynode *v,
                 const char *const *names, const int *vals, size_t n, int *out);
void mg_cfg_slist(struct mg_cfg *x, const char *key, const struct mg_ynode *v,
                  struct mg_slist *out);
void mg_cfg_kvlist(struct mg_cfg *x, const char *key, const struct mg_ynode *v,
                   struct mg_kvlist *out);
/* A file path: resolved against the YAML file's directory; when `check`,
 * an unreadable file is an error naming it and strerror. */
void mg_cfg_file(struct mg_cfg *x, const char *key, const struct mg_ynode *v, bool check,
                 char **out);
char *mg_cfg_resolve(const struct mg_cfg *x, const char *p);
/* `selector: {matchLabels: ...}` (inner = "matchLabels") or
 * `workloadSelector: {labels: ...}` (inner = "labels"). */
void mg_cfg_selector(struct mg_cfg *x, const char *key, const struct mg_ynode *v,
                     const char *inner, struct mg_selector *out);
void mg_cfg_target_refs(struct mg_cfg *x, const char *key, const struct mg_ynode *v,
                        struct mg_target_ref **refs, size_t *n);
void mg_cfg_smatch(struct mg_cfg *x, const char *key, const struct mg_ynode *v,
                   struct mg_smatch *out);
/* A host name as Istio takes it: "*", "*.suffix" (wildcard only as the
 * leftmost label), or a name without '*', '/', spaces or control bytes. */
bool mg_cfg_host_ok(const char *h);
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

/* Kind readers (spec may be NULL when absent). */
void mg_cfg_read_authz(struct mg_cfg *x, const struct mg_ynode *spec, struct mg_authz_policy *p);
void mg_cfg_read_peer_authn(struct mg_cfg *x, const struct mg_ynode *spec, struct mg_peer_authn *p);
void mg_cfg_read_request_authn(struct mg_cfg *x, const struct mg_ynode *spec,
                               struct mg_request_authn *p);
void mg_cfg_read_mesh(struct mg_cfg *x, const struct mg_ynode *spec, struct mg_mesh_config *m);
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
void mg_cfg_free_gateway(struct mg_gateway *g);
void mg_cfg_free_virtual_service(struct mg_virtual_service *vs);
void mg_cfg_free_destination_rule(struct mg_destination_rule *dr);
void mg_cfg_free_service_entry(struct mg_service_entry *se);

#endif
