/* egress.c - the egress registry (ServiceEntry hosts, ports, addresses
 * visible to this Proxy) and mg_egress_check, the one decision every
 * entrance that leads out asks. */
#include "egress/egress.h"
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* One host of one ServiceEntry. A wildcard keeps its suffix with the dot
 * (".example.com"), so that a match needs at least one label before it. */
struct eg_host {
    char *name;                         /* lower-case, no trailing dot */
    size_t len;
    bool wildcard;
    const struct mg_service_entry *se;
};

struct eg_addr {
    struct mg_cidr cidr;
    const struct mg_service_entry *se;
};

struct mg_egress {
    bool registry_only;
    struct eg_host *hosts;
    size_t n_hosts;
    struct eg_addr *addrs;
    size_t n_addrs;
    struct mg_cidr *deny;               /* Proxy.spec.egress.denyResolvedCidrs */
    size_t n_deny;
};

/* The longest name DNS allows (253) plus a trailing dot. */
#define EG_MAX_NAME 254

struct mg_egress *mg_egress_build(const struct mg_config *cfg, struct mg_diags *d)
{
    struct mg_egress *e = mg_xcalloc(1, sizeof(*e));
    e->registry_only = cfg->mesh.outbound_mode == MG_OUTBOUND_REGISTRY_ONLY;
    size_t nh = 0, na = 0;
    for (size_t i = 0; i < cfg->n_service_entries; i++) {
        nh += cfg->service_entries[i].hosts.n;
        na += cfg->service_entries[i].addresses.n;
    }
    const struct mg_slist *dl = &cfg->proxy.egress_deny_cidrs;
    e->deny = dl->n ? mg_xcalloc(dl->n, sizeof(*e->deny)) : NULL;
    for (size_t i = 0; i < dl->n; i++)          /* the loader refused bad ones */
        if (mg_cidr_parse(dl->v[i], &e->deny[e->n_deny]) == 0)
            e->n_deny++;
    e->hosts = nh ? mg_xcalloc(nh, sizeof(*e->hosts)) : NULL;
    e->addrs = na ? mg_xcalloc(na, sizeof(*e->addrs)) : NULL;
    for (size_t i = 0; i < cfg->n_service_entries; i++) {
        const struct mg_service_entry *se = &cfg->service_entries[i];
        if (!mg_service_entry_visible(cfg, se))
            continue;
        for (size_t h = 0; h < se->hosts.n; h++) {
            const char *v = se->hosts.v[h];
            const char *slash = strchr(v, '/');    /* "ns/host" is not a ServiceEntry form */
            if (slash)
                v = slash + 1;
            bool wild = v[0] == '*';
            if (wild && v[1] != '.') {
                /* "*" alone would open every name: Istio refuses it too. */
                mg_warning(d, se->hosts.pos ? se->hosts.pos[h] : se->meta.pos,
                           "ServiceEntry %s: host \"%s\" is not a usable egress host; ignored",
                           se->meta.name ? se->meta.name : "?", se->hosts.v[h]);
                continue;
            }
            struct eg_host *eh = &e->hosts[e->n_hosts++];
            eh->name = mg_xstrdup(wild ? v + 1 : v);
            mg_lower(eh->name);
            eh->len = strlen(eh->name);
            if (eh->len && eh->name[eh->len - 1] == '.')
                eh->name[--eh->len] = '\0';
            eh->wildcard = wild;
            eh->se = se;
        }
        for (size_t a = 0; a < se->addresses.n; a++) {
            struct eg_addr *ea = &e->addrs[e->n_addrs];
            if (mg_cidr_parse(se->addresses.v[a], &ea->cidr) != 0) {
                mg_warning(d, se->addresses.pos ? se->addresses.pos[a] : se->meta.pos,
                           "ServiceEntry %s: address \"%s\" is not an IP or CIDR; ignored",
                           se->meta.name ? se->meta.name : "?", se->addresses.v[a]);
                continue;
            }
            ea->se = se;
            e->n_addrs++;
        }
    }
    return e;
}

void mg_egress_free(struct mg_egress *e)
{
    if (!e)
        return;
    for (size_t i = 0; i < e->n_hosts; i++)
        free(e->hosts[i].name);
    free(e->hosts);
    free(e->addrs);
    free(e->deny);
    free(e);
}

bool mg_egress_visible(const struct mg_config *cfg, const struct mg_service_entry *se)
{
    return mg_service_entry_visible(cfg, se);
}

bool mg_egress_resolved_denied(const struct mg_egress *e, int family, const uint8_t *addr)
{
    for (size_t i = 0; e && i < e->n_deny; i++)
        if (mg_cidr_match(&e->deny[i], family, addr))
            return true;
    return false;
}

bool mg_egress_registry_only(const struct mg_egress *e)
{
    return e && e->registry_only;
}

static const struct mg_se_port *se_port(const struct mg_service_entry *se, uint16_t port)
{
    for (size_t i = 0; i < se->n_ports; i++)
        if (se->ports[i].number == port || (port == 0 && i == 0))
            return &se->ports[i];
    return NULL;
}

static bool ieq(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char x = (unsigned char)a[i], y = (unsigned char)b[i];
        if (x >= 'A' && x <= 'Z')
            x = (unsigned char)(x + 32);
        if (x != y)
            return false;
    }
    return true;
}

/* How well pattern h matches name (len): 0 = not at all, otherwise larger is
 * more specific (an exact host beats every wildcard). */
static size_t host_score(const struct eg_host *h, const char *name, size_t len)
{
    if (!h->wildcard)
        return len == h->len && ieq(name, h->name, len) ? EG_MAX_NAME + 1 : 0;
    /* ".example.com" needs a non-empty label before it: never the apex. */
    if (len <= h->len || !ieq(name + len - h->len, h->name, h->len))
        return 0;
    return h->len;
}

static bool refuse(struct mg_egress_verdict *v, enum mg_egress_reason r,
                   enum mg_egress_entrance en)
{
    v->allow = false;
    v->reason = r;
    switch (en) {
    case MG_EGRESS_CONNECT: v->status = 403; break;
    case MG_EGRESS_SNI:
    case MG_EGRESS_TCP:     v->status = 0; break;
    default:                v->status = 502; break;
    }
    return false;
}

static bool decide(const struct mg_egress *e, struct mg_egress_verdict *v, bool found_host,
                   enum mg_egress_reason miss, enum mg_egress_entrance en)
{
    if (v->se) {
        v->allow = true;
        v->reason = MG_EGRESS_REGISTERED;
        return true;
    }
    if (!e->registry_only) {
        v->allow = true;
        v->reason = MG_EGRESS_ALLOW_ANY;
        return true;
    }
    return refuse(v, found_host ? MG_EGRESS_PORT_NOT_REGISTERED : miss, en);
}

bool mg_egress_check(const struct mg_egress *e, const char *host, uint16_t port,
                     enum mg_egress_entrance en, struct mg_egress_verdict *v)
{
    memset(v, 0, sizeof(*v));
    size_t len = host ? strnlen(host, EG_MAX_NAME + 1) : 0;
    if (len && host[len - 1] == '.' && len <= EG_MAX_NAME)
        len--;
    if (!e || len == 0 || len > EG_MAX_NAME - 1 || host[0] == '.')
        return refuse(v, MG_EGRESS_BAD_TARGET, en);

    struct mg_addr ip;
    if (memchr(host, ':', len) || (host[len - 1] >= '0' && host[len - 1] <= '9')) {
        char lit[EG_MAX_NAME + 1];
        memcpy(lit, host, len);
        lit[len] = '\0';
        if (mg_addr_parse_ip(&ip, lit) == 0) {
            v->ip_literal = true;
            bool covered = false;
            for (size_t i = 0; i < e->n_addrs; i++) {
                const struct eg_addr *a = &e->addrs[i];
                if (!mg_cidr_match(&a->cidr, ip.family, ip.ip))
                    continue;
                covered = true;
                const struct mg_se_port *sp = se_port(a->se, port);
                if (sp) {
                    v->se = a->se;
                    v->se_port = sp;
                    break;
                }
            }
            return decide(e, v, covered, MG_EGRESS_ADDRESS_NOT_REGISTERED, en);
        }
        /* A name ending in a digit that is no address ("host1") is a name. */
    }

    size_t best = 0;
    bool found_host = false;
    for (size_t i = 0; i < e->n_hosts; i++) {
        const struct eg_host *h = &e->hosts[i];
        size_t sc = host_score(h, host, len);
        if (!sc)
            continue;
        found_host = true;
        const struct mg_se_port *sp;
        if (sc > best && (sp = se_port(h->se, port)) != NULL) {
            best = sc;
            v->se = h->se;
            v->se_port = sp;
        }
    }
    return decide(e, v, found_host, MG_EGRESS_NOT_REGISTERED, en);
}

const char *mg_egress_entrance_name(enum mg_egress_entrance en)
{
    switch (en) {
    case MG_EGRESS_FORWARD_HTTP: return "forward";
    case MG_EGRESS_CONNECT:      return "connect";
    case MG_EGRESS_SNI:          return "sni";
    case MG_EGRESS_ROUTE:        return "route";
    case MG_EGRESS_TCP:          return "tcp";
    }
    return "?";
}

const char *mg_egress_reason_name(enum mg_egress_reason r)
{
    switch (r) {
    case MG_EGRESS_REGISTERED:             return "registered";
    case MG_EGRESS_ALLOW_ANY:              return "allow_any";
    case MG_EGRESS_NOT_REGISTERED:         return "not_registered";
    case MG_EGRESS_PORT_NOT_REGISTERED:    return "port_not_registered";
    case MG_EGRESS_ADDRESS_NOT_REGISTERED: return "address_not_registered";
    case MG_EGRESS_BAD_TARGET:             return "bad_target";
    case MG_EGRESS_RESOLVED_DENIED:        return "resolved_denied";
    }
    return "?";
}

#define EG_REASONS(en) { "egress_" en "_registered", "egress_" en "_allow_any", \
    "egress_" en "_not_registered", "egress_" en "_port_not_registered", \
    "egress_" en "_address_not_registered", "egress_" en "_bad_target", \
    "egress_" en "_resolved_denied" }

const char *mg_egress_log_reason(enum mg_egress_entrance en, enum mg_egress_reason r)
{
    static const char *const names[5][7] = {
        EG_REASONS("forward"), EG_REASONS("connect"), EG_REASONS("sni"), EG_REASONS("route"),
        EG_REASONS("tcp"),
    };
    if ((unsigned)en >= 5 || (unsigned)r >= 7)
        return "egress_refused";
    return names[en][r];
}

uint16_t mg_egress_endpoint_port(const struct mg_workload_entry *we, const struct mg_se_port *sp)
{
    const char *v = sp->name ? mg_kvlist_get(&we->ports, sp->name) : NULL;
    uint16_t p;
    if (v && mg_parse_port(v, false, &p) == 0)
        return p;
    return sp->target_port ? sp->target_port : sp->number;
}
