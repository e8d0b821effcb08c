/* dns.c - a worker's resolver with an answer cache. libevent's evdns
 * getaddrinfo caches nothing, so every CONNECT to a name would cost a query;
 * here answers are kept for their TTL (clamped), missing names for a short
 * while, and the cache is bounded. The queries go through
 * evdns_base_resolve_ipv4/ipv6 because only their callback carries the TTL. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <ctype.h>
#include <arpa/inet.h>
#include <event2/dns.h>
#include "base/base.h"

struct dns_entry {
    char *name;                 /* NULL: free slot */
    uint32_t hash;
    int family;
    bool negative;
    size_t n;
    struct mg_addr addrs[MG_DNS_MAX_ADDRS];
    int64_t expires_ms;
    int64_t stored_ms;
};

struct mg_dnscache {
    struct dns_entry *e;
    size_t cap;
    size_t used;
};

static uint32_t name_hash(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (uint8_t)tolower((unsigned char)*s)) * 16777619u;
    return h;
}

struct mg_dnscache *mg_dnscache_new(size_t max_entries)
{
    struct mg_dnscache *c = mg_xcalloc(1, sizeof(*c));
    c->cap = max_entries ? max_entries : 1;
    c->e = mg_xcalloc(c->cap, sizeof(*c->e));
    return c;
}

void mg_dnscache_free(struct mg_dnscache *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->cap; i++)
        free(c->e[i].name);
    free(c->e);
    free(c);
}

size_t mg_dnscache_size(const struct mg_dnscache *c)
{
    return c->used;
}

static struct dns_entry *find(struct mg_dnscache *c, const char *name, int family, uint32_t h)
{
    for (size_t i = 0; i < c->cap; i++) {
        struct dns_entry *e = &c->e[i];
        if (e->name && e->hash == h && e->family == family && !strcasecmp(e->name, name))
            return e;
    }
    return NULL;
}

int mg_dnscache_lookup(struct mg_dnscache *c, const char *name, int family, int64_t now_ms,
                       struct mg_addr *out, size_t *n)
{
    struct dns_entry *e = find(c, name, family, name_hash(name));
    if (!e)
        return 0;
    if (now_ms >= e->expires_ms) {      /* stale: drop it, ask again */
        free(e->name);
        e->name = NULL;
        c->used--;
        return 0;
    }
    if (e->negative) {
        *n = 0;
        return -1;
    }
    memcpy(out, e->addrs, e->n * sizeof(*out));
    *n = e->n;
    return 1;
}

void mg_dnscache_store(struct mg_dnscache *c, const char *name, int family,
                       const struct mg_addr *addrs, size_t n, int ttl_s, int64_t now_ms)
{
    if (n > MG_DNS_MAX_ADDRS)
        n = MG_DNS_MAX_ADDRS;
    if (n == 0)
        ttl_s = MG_DNS_NEGATIVE_TTL_S;
    else if (ttl_s < MG_DNS_MIN_TTL_S)
        ttl_s = MG_DNS_MIN_TTL_S;
    else if (ttl_s > MG_DNS_MAX_TTL_S)
        ttl_s = MG_DNS_MAX_TTL_S;
    uint32_t h = name_hash(name);
    struct dns_entry *e = find(c, name, family, h);
    if (!e) {
        /* a free slot, else the expired or soonest-expiring entry (the
         * oldest answer among equals) makes room */
        struct dns_entry *victim = NULL;
        for (size_t i = 0; i < c->cap; i++) {
            struct dns_entry *x = &c->e[i];
            if (!x->name) {
                victim = x;
                break;
            }
            if (!victim || x->expires_ms < victim->expires_ms ||
                (x->expires_ms == victim->expires_ms && x->stored_ms < victim->stored_ms))
                victim = x;
        }
        e = victim;
        if (e->name)
            free(e->name);
        else
            c->used++;
        e->name = mg_xstrdup(name);
        e->hash = h;
        e->family = family;
    }
    e->negative = n == 0;
    e->n = n;
    if (n)
        memcpy(e->addrs, addrs, n * sizeof(*addrs));
    e->stored_ms = now_ms;
    e->expires_ms = now_ms + (int64_t)ttl_s * 1000;
}

/* ---- the resolver ---- */

struct hosts_entry {
    char *name;
    struct mg_addr a;
};

struct mg_dns {
    struct evdns_base *evdns;
    struct mg_dnscache *cache;
    struct hosts_entry *hosts;
    size_t n_hosts;
    uint64_t queries;
};

struct mg_dns_req {
    struct mg_dns *d;
    char *name;
    int family;                 /* as asked: AF_UNSPEC, AF_INET, AF_INET6 */
    int asking;                 /* the family of the query in flight */
    struct evdns_request *rq;
    mg_dns_cb cb;
    void *arg;
    bool cancelled;
};

struct mg_dns *mg_dns_new(struct evdns_base *evdns, size_t max_entries)
{
    struct mg_dns *d = mg_xcalloc(1, sizeof(*d));
    d->evdns = evdns;
    d->cache = mg_dnscache_new(max_entries);
    return d;
}

void mg_dns_free(struct mg_dns *d)
{
    if (!d)
        return;
    mg_dnscache_free(d->cache);
    for (size_t i = 0; i < d->n_hosts; i++)
        free(d->hosts[i].name);
    free(d->hosts);
    free(d);
}

int mg_dns_load_hosts(struct mg_dns *d, const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    char line[1024];
    while (fgets(line, sizeof(line), f)) {
        char *hash = strchr(line, '#');
        if (hash)
            *hash = '\0';
        char *save = NULL;
        char *ip = strtok_r(line, " \t\r\n", &save);
        struct mg_addr a;
        if (!ip || mg_addr_parse_ip(&a, ip) != 0)
            continue;
        for (char *nm; (nm = strtok_r(NULL, " \t\r\n", &save));) {
            d->hosts = mg_xrealloc(d->hosts, (d->n_hosts + 1) * sizeof(*d->hosts));
            d->hosts[d->n_hosts].name = mg_xstrdup(nm);
            d->hosts[d->n_hosts].a = a;
            d->n_hosts++;
        }
    }
    fclose(f);
    return 0;
}

uint64_t mg_dns_queries(const struct mg_dns *d)
{
    return d->queries;
}

/* The hosts table answers first, later lines winning like evdns's own. */
static size_t from_hosts(const struct mg_dns *d, const char *name, int family, struct mg_addr *out)
{
    size_t n = 0;
    for (size_t i = d->n_hosts; i-- > 0 && n < MG_DNS_MAX_ADDRS;) {
        const struct hosts_entry *h = &d->hosts[i];
        if (strcasecmp(h->name, name) || (family != AF_UNSPEC && h->a.family != family))
            continue;
        out[n++] = h->a;
    }
    return n;
}

static bool ask(struct mg_dns_req *r, int family);

static void answer_cb(int result, char type, int count, int ttl, void *addresses, void *arg)
{
    struct mg_dns_req *r = arg;
    r->rq = NULL;
    if (r->cancelled || result == DNS_ERR_CANCEL || result == DNS_ERR_SHUTDOWN) {
        free(r->name);
        free(r);
        return;
    }
    struct mg_addr out[MG_DNS_MAX_ADDRS];
    size_t n = 0;
    if (result == DNS_ERR_NONE && (type == DNS_IPv4_A || type == DNS_IPv6_AAAA)) {
        for (int i = 0; i < count && n < MG_DNS_MAX_ADDRS; i++) {
            struct mg_addr *a = &out[n++];
            memset(a, 0, sizeof(*a));
            if (type == DNS_IPv4_A) {
                a->family = AF_INET;
                memcpy(a->ip, (uint8_t *)addresses + 4 * i, 4);
            } else {
                a->family = AF_INET6;
                memcpy(a->ip, (uint8_t *)addresses + 16 * i, 16);
            }
        }
    }
    /* no IPv4 address for an any-family lookup: try IPv6 before giving up */
    if (n == 0 && r->family == AF_UNSPEC && r->asking == AF_INET && ask(r, AF_INET6))
        return;
    /* a name that does not exist or has no address is remembered briefly;
     * a timeout or a server failure is not an answer and is not kept */
    bool answered = result == DNS_ERR_NONE || result == DNS_ERR_NOTEXIST;
    if (answered)
        mg_dnscache_store(r->d->cache, r->name, r->family, out, n, ttl, mg_now_ms());
    r->cb(n ? 0 : -1, out, n, r->arg);
    free(r->name);
    free(r);
}

/* Sends the query for one family; false when evdns refused it. */
static bool ask(struct mg_dns_req *r, int family)
{
    r->asking = family;
    r->d->queries++;
    r->rq = family == AF_INET6 ? evdns_base_resolve_ipv6(r->d->evdns, r->name, 0, answer_cb, r)
                               : evdns_base_resolve_ipv4(r->d->evdns, r->name, 0, answer_cb, r);
    return r->rq != NULL;
}

struct mg_dns_req *mg_dns_resolve(struct mg_dns *d, const char *name, int family,
                                  mg_dns_cb cb, void *arg)
{
    struct mg_addr out[MG_DNS_MAX_ADDRS];
    size_t n = 0;
    if (!d || !name) {                  /* a worker built without a resolver */
        cb(-1, out, 0, arg);
        return NULL;
    }
    if (mg_addr_parse_ip(&out[0], name) == 0) {
        cb(0, out, 1, arg);
        return NULL;
    }
    if ((n = from_hosts(d, name, family, out)) > 0) {
        cb(0, out, n, arg);
        return NULL;
    }
    int hit = mg_dnscache_lookup(d->cache, name, family, mg_now_ms(), out, &n);
    if (hit) {
        cb(hit > 0 ? 0 : -1, out, n, arg);
        return NULL;
    }
    if (!d->evdns) {
        cb(-1, out, 0, arg);
        return NULL;
    }
    struct mg_dns_req *r = mg_xcalloc(1, sizeof(*r));
    r->d = d;
    r->name = mg_xstrdup(name);
    r->family = family;
    r->cb = cb;
    r->arg = arg;
    if (!ask(r, family == AF_INET6 ? AF_INET6 : AF_INET)) {                       /* evdns refused the query outright */
        free(r->name);
        free(r);
        cb(-1, out, 0, arg);
        return NULL;
    }
    return r;
}

void mg_dns_cancel(struct mg_dns_req *r)
{
    if (!r || r->cancelled)
        return;
    r->cancelled = true;
    /* evdns runs the callback later with DNS_ERR_CANCEL: r is freed there */
    if (r->rq)
        evdns_cancel_request(r->d->evdns, r->rq);
}
