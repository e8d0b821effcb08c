/* authz.c - the decision (CUSTOM, DENY, ALLOW, AUDIT; rule logic; the TCP
 * translation). One evaluation
 * serves both mg_authz_decide() and mg_authz_explain(), so the data plane
 * and the offline explainer cannot diverge. */
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

static void evaluate(const struct mg_policy_set *s, const struct mg_attrs *a,
                     struct mg_authz_result *r, struct mg_authz_trace *trace)
{
    const struct mg_cpolicy *custom_ok = NULL, *custom_bad = NULL, *deny = NULL, *allow = NULL;
    const struct mg_cpolicy *audit = NULL, *dry_deny = NULL, *dry_allow = NULL;
    int custom_ok_r = -1, custom_bad_r = -1, deny_r = -1, allow_r = -1, audit_r = -1;
    int dry_deny_r = -1, dry_allow_r = -1;

    memset(r, 0, sizeof(*r));
    for (size_t i = 0; i < s->n_pol; i++) {
        const struct mg_cpolicy *p = &s->pol[i];
        const struct mg_cpolicy **slot;
        int *slot_r;
        if (p->dry_run) {
            slot = p->action == MG_ACTION_DENY ? &dry_deny :
                   p->action == MG_ACTION_ALLOW ? &dry_allow : NULL;
            slot_r = p->action == MG_ACTION_DENY ? &dry_deny_r : &dry_allow_r;
        } else if (p->action == MG_ACTION_CUSTOM) {
            slot = p->provider_invalid ? &custom_bad : &custom_ok;
            slot_r = p->provider_invalid ? &custom_bad_r : &custom_ok_r;
        } else {
            slot = p->action == MG_ACTION_DENY ? &deny : p->action == MG_ACTION_ALLOW ? &allow : &audit;
            slot_r = p->action == MG_ACTION_DENY ? &deny_r :
                     p->action == MG_ACTION_ALLOW ? &allow_r : &audit_r;
        }
        /* Inside a group the first match decides; later ones only matter
         * for an explanation. */
        bool need = trace || (slot && !*slot);
        int rule = need ? first_rule(p, a) : -1;
        if (slot && !*slot && rule >= 0) {
            *slot = p;
            *slot_r = rule;
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

    if (custom_bad) {
        /* Istio generates a deny for CUSTOM rules whose provider is missing
         * or ambiguous: fail closed. */
        r->decision = MG_AUTHZ_DENY;
        set_match(&r->decided_by, custom_bad, custom_bad_r);
    } else if (deny) {
        r->decision = MG_AUTHZ_DENY;
        set_match(&r->decided_by, deny, deny_r);
    } else if (!s->has_allow) {
        r->decision = MG_AUTHZ_ALLOW;
        no_match(&r->decided_by, MG_ACTION_ALLOW);
    } else if (allow) {
        r->decision = MG_AUTHZ_ALLOW;
        set_match(&r->decided_by, allow, allow_r);
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
        set_match(&r->custom_match, custom_ok, custom_ok_r);
    }
    no_match(&r->audit_match, MG_ACTION_AUDIT);
    if (audit) {
        r->audit = true;
        set_match(&r->audit_match, audit, audit_r);
    }
    no_match(&r->dry_run_deny_match, MG_ACTION_DENY);
    if (dry_deny) {
        r->dry_run_deny = true;
        set_match(&r->dry_run_deny_match, dry_deny, dry_deny_r);
    }
    no_match(&r->dry_run_allow_match, MG_ACTION_ALLOW);
    r->dry_run_allow = s->has_dry_allow ? (dry_allow ? 1 : 0) : -1;
    if (dry_allow)
        set_match(&r->dry_run_allow_match, dry_allow, dry_allow_r);
}

void mg_authz_decide(const struct mg_policy_set *s, const struct mg_attrs *a,
                     struct mg_authz_result *r)
{
    evaluate(s, a, r, NULL);
}

void mg_authz_explain(const struct mg_policy_set *s, const struct mg_attrs *a,
                      struct mg_authz_result *r, struct mg_authz_trace *trace)
{
    evaluate(s, a, r, trace);
}
