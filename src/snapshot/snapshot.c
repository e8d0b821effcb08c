/* snapshot.c - the life of a generation (references) and the lookups the
 * workers make in it. Compiling one is control/build.c's work. */
#include "snapshot/snapshot.h"
#include <stdlib.h>
#include <string.h>
#include "base/base.h"

struct mg_snapshot *mg_snapshot_ref(struct mg_snapshot *s)
{
    if (s)
        atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
    return s;
}

void mg_snapshot_unref(struct mg_snapshot *s)
{
    if (!s || atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1)
        return;
    s->destroy(s);
}

const struct mg_port *mg_snapshot_port(const struct mg_snapshot *s, uint16_t number)
{
    for (size_t i = 0; i < s->n_ports; i++)
        if (s->ports[i].number == number)
            return &s->ports[i];
    return NULL;
}

static struct mg_srv *select_server(const struct mg_port *p, const char *name)
{
    size_t nl = name ? strlen(name) : 0;
    struct mg_srv *wild = NULL, *star = NULL;
    size_t wl = 0;
    for (size_t i = 0; i < p->n_srv; i++) {
        struct mg_srv *sv = p->srv[i];
        for (size_t h = 0; h < sv->n_hosts; h++) {
            const char *pat = sv->hosts[h];
            if (strcmp(pat, "*") == 0) {
                if (!star)
                    star = sv;
            } else if (!nl) {
                continue;
            } else if (pat[0] == '*') {
                size_t pl = strlen(pat);
                if (pl > wl && mg_host_match(pat, name, nl)) {
                    wild = sv;
                    wl = pl;
                }
            } else if (mg_host_match(pat, name, nl)) {
                return sv;
            }
        }
    }
    return wild ? wild : star;
}

struct mg_srv *mg_port_sni_server(const struct mg_port *p, const char *sni)
{
    return select_server(p, sni && *sni ? sni : NULL);
}

struct mg_srv *mg_port_host_server(const struct mg_port *p, const char *host)
{
    return select_server(p, host && *host ? host : NULL);
}

const struct mg_fwd_route *mg_snapshot_fwd_route(const struct mg_snapshot *s, const char *host,
                                                 uint16_t port)
{
    for (size_t i = 0; i < s->n_fwd_routes; i++)
        if (s->fwd_routes[i].port == port && strcmp(s->fwd_routes[i].host, host) == 0)
            return &s->fwd_routes[i];
    return NULL;
}
