/* internal.h - the compiled policy representation shared by compile.c,
 * match.c, authz.c and peer_authn.c. Not part of the module's API.
 *
 * A compiled rule is FROM AND TO AND WHEN (1.5), each entry an AND of fields,
 * each field "(no positives or one matches) and (no negatives or none
 * matches)". Every string is owned by the set's arena. */
#ifndef MG_POLICY_INTERNAL_H
#define MG_POLICY_INTERNAL_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "base/base.h"
#include "policy/policy.h"

/* ---- matchers ---- */
enum mg_pm_kind {
    MG_PM_EXACT,            /* s */
    MG_PM_PREFIX,           /* s* */
    MG_PM_SUFFIX,           /* *s */
    MG_PM_PRESENT,          /* * : non-empty (headers: present) */
    MG_PM_TEMPLATE,         /* paths with {*} / {**} (1.7) */
    MG_PM_NS_GLOB,          /* namespaces: a glob on the peer URI (s) */
    MG_PM_SA,               /* serviceAccounts: ns s, sa s2 */
    MG_PM_TD_ANY,           /* trustDomains "*" */
    MG_PM_TD_PREFIX,        /* trustDomains exact: peer URI prefix "spiffe://<s>/" */
    MG_PM_TD_PARTIAL,       /* trustDomains pre*suf: s = pre, s2 = suf */
    MG_PM_REQ_PRINCIPAL,    /* requestPrincipals: sub-matchers on iss and sub */
    MG_PM_CIDR,
    MG_PM_PORT,
    MG_PM_ASN,              /* an autonomous system number (num) */
    MG_PM_NEVER,            /* a form that cannot match (requestPrincipals "abc") */
};

/* One token of a path template. */
enum mg_tpl_kind { MG_TPL_LIT, MG_TPL_SEG, MG_TPL_ANY };
struct mg_tpl_tok {
    enum mg_tpl_kind kind;
    const char *s;
    size_t len;
};

struct mg_pm {
    enum mg_pm_kind kind;
    bool icase;             /* hosts */
    const char *s;
    size_t len;
    const char *s2;
    size_t len2;
    struct mg_tpl_tok *tpl;
    size_t n_tpl;
    struct mg_pm *iss, *sub;    /* MG_PM_REQ_PRINCIPAL: NULL = not constrained */
    struct mg_cidr cidr;
    uint16_t port;
    uint32_t num;
};

/* What a field reads. */
enum mg_attr_id {
    MG_A_PRINCIPAL, MG_A_NAMESPACE, MG_A_SERVICE_ACCOUNT, MG_A_TRUST_DOMAIN,
    MG_A_REQ_PRINCIPAL, MG_A_AUDIENCES, MG_A_PRESENTER, MG_A_CLAIM,
    MG_A_SOURCE_IP, MG_A_REMOTE_IP, MG_A_DEST_IP, MG_A_DEST_PORT, MG_A_SNI,
    MG_A_HOST, MG_A_METHOD, MG_A_PATH, MG_A_HEADER,
    MG_A_SOURCE_COUNTRY, MG_A_SOURCE_ASN, MG_A_REMOTE_COUNTRY, MG_A_REMOTE_ASN,
    MG_A_NONE,              /* experimental.*: no metadata in this data plane */
};

struct mg_field {
    enum mg_attr_id attr;
    bool http_only;
    const char *hname;      /* MG_A_HEADER: lower-case name */
    size_t hname_len;
    char **claim;           /* MG_A_CLAIM: path segments */
    size_t n_claim;
    bool has_pos, has_neg;  /* a list with at least one (kept) value */
    struct mg_pm *pos;
    size_t n_pos;
    struct mg_pm *neg;
    size_t n_neg;
};

struct mg_entry {           /* one from[] / to[] entry: AND of fields */
    struct mg_field *f;
    size_t n;
};

struct mg_crule {
    bool never;             /* dropped at compile time (never matches) */
    bool http_only;         /* uses an HTTP-only field (ALLOW/CUSTOM: no TCP match) */
    bool has_from, has_to;
    struct mg_entry *from;
    size_t n_from;
    struct mg_entry *to;
    size_t n_to;
    struct mg_entry when;   /* AND of conditions */
};

struct mg_cpolicy {
    const char *id;         /* "namespace.name" */
    enum mg_authz_action action;
    bool dry_run;
    const char *provider;
    const struct mg_ext_provider *ext;
    bool provider_invalid;
    struct mg_crule *rules;
    size_t n_rules;
    int64_t ctime_s;        /* creationTimestamp (INT64_MIN = none) */
    int32_t ctime_ns;
    size_t doc_index;
};

struct mg_cpeer {           /* a selected PeerAuthentication */
    const char *id;
    enum mg_mtls_mode mode;
    struct mg_port_mtls *ports;
    size_t n_ports;
};

struct mg_policy_set {
    struct mg_arena arena;              /* everything the set owns, freed at once */
    struct mg_cpolicy *pol;             /* applicable policies, sorted */
    size_t n_pol;
    bool has_allow;                     /* a non-dry-run ALLOW policy applies */
    bool has_dry_allow;                 /* a dry-run ALLOW policy applies */
    bool pa_present[3];                 /* mesh, namespace, workload */
    struct mg_cpeer pa[3];
};

/* match.c */
bool mg_pm_match_str(const struct mg_pm *m, const char *s, size_t n);
bool mg_pm_match_principal(const struct mg_pm *m, const char *principal);
bool mg_field_match(const struct mg_field *f, const struct mg_attrs *a);

/* timestamp.c: RFC 3339 creationTimestamp -> seconds + nanoseconds since the
 * epoch (UTC). Returns 0, or -1 for NULL or a malformed value. */
int mg_policy_parse_time(const char *s, int64_t *sec, int32_t *nsec);

/* peer_authn.c: select the PeerAuthentication of each level for workload
 * namespace `wns` with `labels` (section 3) and store them in s. */
void mg_policy_peer_compile(struct mg_policy_set *s, const struct mg_config *c,
                            const char *wns, const struct mg_kvlist *labels, struct mg_diags *d);

#endif
