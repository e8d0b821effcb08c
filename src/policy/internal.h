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

/* ---- the rule index (index.c) ----
 *
 * A decision needs, for each group below, the first matching rule in
 * evaluation order (policy order, then rule order). The index files every
 * rule under keys a request must have for the rule to match (its exact
 * hosts and host prefixes, exact methods, exact paths and path prefixes,
 * ports), so a decision
 * looks up the request's own keys and tests only those rules plus the ones
 * no key could be derived for ("always"), merged back into evaluation
 * order: the first match found is the first match of a linear scan. */
enum mg_slot {
    MG_SLOT_CUSTOM_OK,      /* CUSTOM with a valid provider */
    MG_SLOT_CUSTOM_BAD,     /* CUSTOM whose provider is missing or ambiguous */
    MG_SLOT_DENY,
    MG_SLOT_ALLOW,
    MG_SLOT_AUDIT,
    MG_SLOT_DRY_DENY,
    MG_SLOT_DRY_ALLOW,
    MG_SLOT_N,
    MG_SLOT_NONE = MG_SLOT_N,   /* dry-run CUSTOM/AUDIT: evaluated for explain only */
};

/* A rule in evaluation order: its index in mg_policy_set.rref is its
 * sequence number, which the index's lists hold in ascending order. */
struct mg_rref {
    uint32_t pol;
    uint32_t rule;
    uint8_t slot;           /* enum mg_slot, never MG_SLOT_NONE */
};

/* One key and the sequence numbers of the rules filed under it (n == 0: a
 * free bucket). */
struct mg_ix_bucket {
    const char *key;        /* hosts lower-case; NULL in the port map */
    size_t len;             /* the port map: the port */
    uint64_t hash;
    const uint32_t *seq;
    size_t n;
};

/* Open addressing, linear probing; cap is a power of two (0 = empty). */
struct mg_ix_map {
    struct mg_ix_bucket *b;
    size_t cap;
};

struct mg_ix {
    const uint32_t *always;             /* rules no key was derived for */
    size_t n_always;
    struct mg_ix_map host, hprefix, method, path, prefix, port;
    const size_t *hprefix_len;          /* distinct key lengths of `hprefix`, ascending */
    size_t n_hprefix_len;
    const size_t *prefix_len;           /* the same for `prefix` */
    size_t n_prefix_len;
    unsigned slots;                     /* bit per enum mg_slot that has a rule */
    /* Some rule was filed under a key. When none was, the always list is
     * every rule that can match and a linear scan is the same, cheaper. */
    bool keyed;
};

/* A sorted run of sequence numbers. */
struct mg_ix_list {
    const uint32_t *v;
    size_t n;
};

/* At most this many lists per decision: always, method, host, port, exact
 * path, and the prefixes of the host and of the path that are keys. A
 * request that would need more (over 59 matching prefixes) is decided by
 * the linear scan. */
#define MG_IX_MAX_LISTS 64

struct mg_policy_set {
    struct mg_arena arena;              /* everything the set owns, freed at once */
    struct mg_cpolicy *pol;             /* applicable policies, sorted */
    size_t n_pol;
    struct mg_rref *rref;               /* rules of slotted policies, evaluation order */
    size_t n_rref;
    struct mg_ix ix[2];                 /* [0] HTTP requests, [1] TCP connections */
    bool has_allow;                     /* a non-dry-run ALLOW policy applies */
    bool has_dry_allow;                 /* a dry-run ALLOW policy applies */
    bool pa_present[3];                 /* mesh, namespace, workload */
    struct mg_cpeer pa[3];
};

/* match.c */
bool mg_pm_match_str(const struct mg_pm *m, const char *s, size_t n);
bool mg_pm_match_principal(const struct mg_pm *m, const char *principal);
bool mg_field_match(const struct mg_field *f, const struct mg_attrs *a);

/* authz.c: the group a policy's first match fills (MG_SLOT_NONE: none). */
enum mg_slot mg_policy_slot(const struct mg_cpolicy *p);

/* authz.c: the decision by a scan of every rule in order, without the index:
 * the reference the indexed decision is tested against. Same contract as
 * mg_authz_decide(). */
void mg_authz_decide_linear(const struct mg_policy_set *s, const struct mg_attrs *a,
                            struct mg_authz_result *r);

/* index.c: build s->rref and s->ix from the compiled, sorted policies (after
 * the CUSTOM providers are resolved). Memory: one bucket per distinct key and
 * one sequence number per (rule, key), in the set's arena. */
void mg_policy_index_build(struct mg_policy_set *s);

/* index.c: the candidate lists for `a` into out[0..max): returns their
 * count, or (size_t)-1 when more than `max` would be needed. */
size_t mg_ix_candidates(const struct mg_ix *ix, const struct mg_attrs *a,
                        struct mg_ix_list *out, size_t max);

/* timestamp.c: RFC 3339 creationTimestamp -> seconds + nanoseconds since the
 * epoch (UTC). Returns 0, or -1 for NULL or a malformed value. */
int mg_policy_parse_time(const char *s, int64_t *sec, int32_t *nsec);

/* peer_authn.c: select the PeerAuthentication of each level for workload
 * namespace `wns` with `labels` (section 3) and store them in s. */
void mg_policy_peer_compile(struct mg_policy_set *s, const struct mg_config *c,
                            const char *wns, const struct mg_kvlist *labels, struct mg_diags *d);

#endif
