/* authz.c - the decision (CUSTOM, DENY, ALLOW, AUDIT; rule logic; the TCP
 * translation). One rule test and one verdict composition serve both
 * mg_authz_decide() (rules found through the index) and mg_authz_explain()
 * (every rule, in order), so the data plane and the offline explainer cannot
 * diverge on what a rule means; that both find the same first match is what
 * tests/unit/test_authz_index checks. */
#include <string.h>
#include "policy/internal.h"

static bool entry_match(const struct mg_entry *e, const struct mg_attrs *a, bool skip_http)
{
    for (size_t i = 0; i < e->n; i++) {
        if (skip_http && e->f[i].http_only)
            continue;       /* DENY/AUDIT on TCP: the HTTP-only field is dropped */
        if (!mg_field_match(&e->f[i], a))
            return false;
    }
    return true;
}

static bool rule_match(const struct mg_cpolicy *p, const struct mg_crule *r,
                       const struct mg_attrs *a)
{
    bool lenient = p->action == MG_ACTION_DENY || p->action == MG_ACTION_AUDIT;
    bool tcp = !a->is_http;
    if (r->never)
        return false;
    if (tcp && r->http_only && !lenient)
        return false;       /* ALLOW/CUSTOM on TCP: the whole rule is dropped */
    bool skip = tcp && lenient;
    if (r->has_from) {
        bool any = false;
        for (size_t i = 0; i < r->n_from && !any; i++)
            any = entry_match(&r->from[i], a, skip);
        if (!any)
            return false;
    }
    if (r->has_to) {
        bool any = false;
        for (size_t i = 0; i < r->n_to && !any; i++)
            any = entry_match(&r->to[i], a, skip);
        if (!any)
            return false;
    }
    return entry_match(&r->when, a, skip);
}

static int first_rule(const struct mg_cpolicy *p, const struct mg_attrs *a)
{
    for (size_t i = 0; i < p->n_rules; i++)
        if (rule_match(p, &p->rules[i], a))
            return (int)i;
    return -1;
}

enum mg_slot mg_policy_slot(const struct mg_cpolicy *p)
{
    if (p->dry_run)
        return p->action == MG_ACTION_DENY ? MG_SLOT_DRY_DENY :
               p->action == MG_ACTION_ALLOW ? MG_SLOT_DRY_ALLOW : MG_SLOT_NONE;
    switch (p->action) {
    case MG_ACTION_CUSTOM:
        return p->provider_invalid ? MG_SLOT_CUSTOM_BAD : MG_SLOT_CUSTOM_OK;
    case MG_ACTION_DENY:
        return MG_SLOT_DENY;
    case MG_ACTION_ALLOW:
        return MG_SLOT_ALLOW;
    default:
        return MG_SLOT_AUDIT;
    }
}

/* The first matching policy of each group and its first matching rule. */
struct hits {
    const struct mg_cpolicy *p[MG_SLOT_N];
    int rule[MG_SLOT_N];
};

static void set_match(struct mg_authz_match *m, const struct mg_cpolicy *p, int rule)
{
    m->policy = p->id;
    m->action = p->action;
    m->rule = rule;
}

static void no_match(struct mg_authz_match *m, enum mg_authz_action act)
{
    m->policy = NULL;
    m->action = act;
    m->rule = -1;
}

/* Every policy in order; the trace (explain) wants each one's first rule. */
static void scan_linear(const struct mg_policy_set *s, const struct mg_attrs *a,
                        struct hits *h, struct mg_authz_trace *trace)
{
    for (size_t i = 0; i < s->n_pol; i++) {
        const struct mg_cpolicy *p = &s->pol[i];
        enum mg_slot slot = mg_policy_slot(p);
        bool open = slot != MG_SLOT_NONE && !h->p[slot];
        /* Inside a group the first match decides; later ones only matter
         * for an explanation. */
        int rule = trace || open ? first_rule(p, a) : -1;
        if (open && rule >= 0) {
            h->p[slot] = p;
            h->rule[slot] = rule;
        }
        if (trace) {
            struct mg_authz_trace *t = &trace[i];
            t->policy = p->id;
            t->action = p->action;
            t->dry_run = p->dry_run;
            t->rule = rule;
            t->provider = p->action == MG_ACTION_CUSTOM ? p->provider : NULL;
            t->provider_invalid = p->action == MG_ACTION_CUSTOM && p->provider_invalid;
        }
    }
}

/* Only the rules the index names for this request, merged into evaluation
 * order (ascending sequence numbers; a rule filed under two of the
 * request's keys is tested once). Within a group the lowest matching
 * sequence number is the first policy with a matching rule and its first
 * matching rule: what scan_linear() finds. Returns false, for a linear scan,
 * when the request needs more lists than the index hands out or when no
 * rule has a key (nothing to narrow). */
static bool scan_indexed(const struct mg_policy_set *s, const struct mg_attrs *a,
                         struct hits *h)
{
    const struct mg_ix *ix = &s->ix[a->is_http ? 0 : 1];
    struct mg_ix_list l[MG_IX_MAX_LISTS];
    size_t nl = mg_ix_candidates(ix, a, l, MG_IX_MAX_LISTS);
    if (nl == (size_t)-1)
        return false;
    unsigned done = 0;
    while (done != ix->slots) {
        uint32_t seq = UINT32_MAX;
        if (nl == 1) {          /* only the always list: nothing to merge */
            if (!l[0].n)
                break;
            seq = *l[0].v++;
            l[0].n--;
        } else {
            for (size_t k = 0; k < nl; k++)
                if (l[k].n && l[k].v[0] < seq)
                    seq = l[k].v[0];
            if (seq == UINT32_MAX)
                break;
            for (size_t k = 0; k < nl; k++) {
                if (l[k].n && l[k].v[0] == seq) {
                    l[k].v++;
                    l[k].n--;
                }
            }
        }
        const struct mg_rref *rr = &s->rref[seq];
        if (done & (1u << rr->slot))
            continue;
        const struct mg_cpolicy *p = &s->pol[rr->pol];
        if (rule_match(p, &p->rules[rr->rule], a)) {
            h->p[rr->slot] = p;
            h->rule[rr->slot] = (int)rr->rule;
            done |= 1u << rr->slot;
        }
    }
    return true;
}

static void finish(const struct mg_policy_set *s, const struct hits *h, struct mg_authz_result *r)
{
    const struct mg_cpolicy *custom_bad = h->p[MG_SLOT_CUSTOM_BAD], *deny = h->p[MG_SLOT_DENY];
    const struct mg_cpolicy *custom_ok = h->p[MG_SLOT_CUSTOM_OK], *allow = h->p[MG_SLOT_ALLOW];
    const struct mg_cpolicy *audit = h->p[MG_SLOT_AUDIT], *dry_deny = h->p[MG_SLOT_DRY_DENY];
    const struct mg_cpolicy *dry_allow = h->p[MG_SLOT_DRY_ALLOW];

    memset(r, 0, sizeof(*r));
    if (custom_bad) {
        /* Istio generates a deny for CUSTOM rules whose provider is missing
         * or ambiguous: fail closed. */
        r->decision = MG_AUTHZ_DENY;
        set_match(&r->decided_by, custom_bad, h->rule[MG_SLOT_CUSTOM_BAD]);
    } else if (deny) {
        r->decision = MG_AUTHZ_DENY;
        set_match(&r->decided_by, deny, h->rule[MG_SLOT_DENY]);
    } else if (!s->has_allow) {
        r->decision = MG_AUTHZ_ALLOW;
        no_match(&r->decided_by, MG_ACTION_ALLOW);
    } else if (allow) {
        r->decision = MG_AUTHZ_ALLOW;
        set_match(&r->decided_by, allow, h->rule[MG_SLOT_ALLOW]);
    } else {
        r->decision = MG_AUTHZ_DENY;
        no_match(&r->decided_by, MG_ACTION_ALLOW);
    }
    r->reason = r->decision == MG_AUTHZ_ALLOW ? "allowed" : "rbac_policy";

    no_match(&r->custom_match, MG_ACTION_CUSTOM);
    if (custom_ok && !custom_bad) {
        r->custom = true;
        r->provider_name = custom_ok->provider;
        r->provider = custom_ok->ext;
        set_match(&r->custom_match, custom_ok, h->rule[MG_SLOT_CUSTOM_OK]);
    }
    no_match(&r->audit_match, MG_ACTION_AUDIT);
    if (audit) {
        r->audit = true;
        set_match(&r->audit_match, audit, h->rule[MG_SLOT_AUDIT]);
    }
    no_match(&r->dry_run_deny_match, MG_ACTION_DENY);
    if (dry_deny) {
        r->dry_run_deny = true;
        set_match(&r->dry_run_deny_match, dry_deny, h->rule[MG_SLOT_DRY_DENY]);
    }
    no_match(&r->dry_run_allow_match, MG_ACTION_ALLOW);
    r->dry_run_allow = s->has_dry_allow ? (dry_allow ? 1 : 0) : -1;
    if (dry_allow)
        set_match(&r->dry_run_allow_match, dry_allow, h->rule[MG_SLOT_DRY_ALLOW]);
}

void mg_authz_decide_linear(const struct mg_policy_set *s, const struct mg_attrs *a,
                            struct mg_authz_result *r)
{
    struct hits h = {0};
    scan_linear(s, a, &h, NULL);
    finish(s, &h, r);
}

void mg_authz_decide(const struct mg_policy_set *s, const struct mg_attrs *a,
                     struct mg_authz_result *r)
{
    if (!s->ix[a->is_http ? 0 : 1].keyed) {
        mg_authz_decide_linear(s, a, r);
        return;
    }
    struct hits h = {0};
    if (!scan_indexed(s, a, &h)) {
        memset(&h, 0, sizeof(h));
        scan_linear(s, a, &h, NULL);
    }
    finish(s, &h, r);
}

/* With a trace every policy is evaluated anyway: the linear scan, whose
 * group winners are the indexed decision's (tests/unit/test_authz_index). */
void mg_authz_explain(const struct mg_policy_set *s, const struct mg_attrs *a,
                      struct mg_authz_result *r, struct mg_authz_trace *trace)
{
    if (!trace) {
        mg_authz_decide(s, a, r);
        return;
    }
    struct hits h = {0};
    scan_linear(s, a, &h, trace);
    finish(s, &h, r);
}
