/* peer_authn.c - PeerAuthentication composition (mesh, namespace,
 * workload, port; the oldest policy of a level wins), the
 * SPIFFE ID parser (8) and the remote.ip derivation (1.8). */
#include <stdlib.h>
#include <string.h>
#include "policy/internal.h"

static bool has_selector(const struct mg_selector *sel)
{
    return sel->present && sel->match_labels.n > 0;
}

static bool selects(const struct mg_kvlist *sel, const struct mg_kvlist *labels)
{
    for (size_t i = 0; i < sel->n; i++) {
        bool found = false;
        for (size_t j = 0; labels && j < labels->n && !found; j++)
            found = labels->v[j].key && sel->v[i].key && labels->v[j].value && sel->v[i].value &&
                    strcmp(labels->v[j].key, sel->v[i].key) == 0 &&
                    strcmp(labels->v[j].value, sel->v[i].value) == 0;
        if (!found)
            return false;
    }
    return true;
}

/* Strictly older (Istio's CreationTimestamp.Before): a tie keeps the one
 * seen first, i.e. load order. A missing timestamp is Go's zero time. */
static bool older(const struct mg_peer_authn *a, const struct mg_peer_authn *b)
{
    int64_t as = INT64_MIN, bs = INT64_MIN;
    int32_t an = 0, bn = 0;
    if (mg_policy_parse_time(a->meta.creation_timestamp, &as, &an) < 0)
        as = INT64_MIN, an = 0;
    if (mg_policy_parse_time(b->meta.creation_timestamp, &bs, &bn) < 0)
        bs = INT64_MIN, bn = 0;
    return as < bs || (as == bs && an < bn);
}

void mg_policy_peer_compile(struct mg_policy_set *s, const struct mg_config *c,
                            const char *wns, const struct mg_kvlist *labels, struct mg_diags *d)
{
    const char *root = c->mesh.root_namespace ? c->mesh.root_namespace : "istio-system";
    const struct mg_peer_authn *sel[3] = {NULL, NULL, NULL};

    /* Visit in load order so that a tie on creationTimestamp keeps the first. */
    for (size_t i = 0; i < c->n_peer_authns; i++) {
        const struct mg_peer_authn *p = &c->peer_authns[i];
        const char *ns = p->meta.namespace_ ? p->meta.namespace_ : "default";
        int level;
        if (!has_selector(&p->selector)) {
            if (strcmp(ns, root) == 0)
                level = 0;
            else if (strcmp(ns, wns) == 0)
                level = 1;
            else
                continue;
            if (p->n_port_level)
                mg_warning(d, p->meta.pos, "PeerAuthentication %s.%s: portLevelMtls needs a "
                           "selector and is ignored", ns, p->meta.name ? p->meta.name : "");
        } else if (strcmp(ns, root) == 0) {
            mg_warning(d, p->meta.pos, "PeerAuthentication %s.%s: a selector in the root "
                       "namespace is ignored", ns, p->meta.name ? p->meta.name : "");
            continue;
        } else if (strcmp(ns, wns) == 0 && selects(&p->selector.match_labels, labels)) {
            level = 2;
        } else {
            continue;
        }
        if (!sel[level] || older(p, sel[level]))
            sel[level] = p;
    }
    for (int l = 0; l < 3; l++) {
        const struct mg_peer_authn *p = sel[l];
        if (!p)
            continue;
        struct mg_cpeer *cp = &s->pa[l];
        char *id = mg_xasprintf("%s.%s", p->meta.namespace_ ? p->meta.namespace_ : "default",
                                p->meta.name ? p->meta.name : "");
        cp->id = mg_arena_strdup(&s->arena, id);
        free(id);
        cp->mode = p->mode;
        if (l == 2 && p->n_port_level) {
            cp->ports = mg_arena_zalloc(&s->arena, p->n_port_level * sizeof(*cp->ports));
            memcpy(cp->ports, p->port_level, p->n_port_level * sizeof(*cp->ports));
            cp->n_ports = p->n_port_level;
        }
        s->pa_present[l] = true;
    }
}

enum mg_mtls_mode mg_peer_authn_mode(const struct mg_policy_set *s, uint16_t port)
{
    enum mg_mtls_mode m = MG_MTLS_PERMISSIVE;
    for (int l = 0; l < 3; l++)
        if (s->pa_present[l] && s->pa[l].mode != MG_MTLS_UNSET)
            m = s->pa[l].mode;
    if (s->pa_present[2]) {
        for (size_t i = 0; i < s->pa[2].n_ports; i++)
            if (s->pa[2].ports[i].port == port && s->pa[2].ports[i].mode != MG_MTLS_UNSET)
                return s->pa[2].ports[i].mode;
    }
    return m;
}

void mg_peer_authn_sources(const struct mg_policy_set *s, const char **mesh,
                           const char **namespace_, const char **workload)
{
    const char **out[3] = {mesh, namespace_, workload};
    for (int l = 0; l < 3; l++)
        if (out[l])
            *out[l] = s->pa_present[l] ? s->pa[l].id : NULL;
}

int mg_spiffe_parse(const char *uri, struct mg_spiffe_id *out)
{
    const char *part[5];
    size_t len[5];
    if (!uri || strncmp(uri, "spiffe://", 9) != 0)
        return -1;
    const char *p = uri + 9;
    for (int i = 0; i < 5; i++) {
        const char *e = strchr(p, '/');
        if (i < 4 && !e)
            return -1;
        if (i == 4 && e)
            return -1;
        part[i] = p;
        len[i] = e ? (size_t)(e - p) : strlen(p);
        if (len[i] == 0)
            return -1;
        p = e ? e + 1 : p + len[i];
    }
    if (len[1] != 2 || memcmp(part[1], "ns", 2) != 0 || len[3] != 2 || memcmp(part[3], "sa", 2) != 0)
        return -1;
    out->principal = uri + 9;
    out->trust_domain = part[0];
    out->trust_domain_len = len[0];
    out->namespace_ = part[2];
    out->namespace_len = len[2];
    out->service_account = part[4];
    out->service_account_len = len[4];
    return 0;
}

/* Parse XFF entry [b, e) (trimmed) as an IP. */
static int xff_ip(const char *b, const char *e, struct mg_addr *out)
{
    char buf[64];
    while (b < e && (*b == ' ' || *b == '\t'))
        b++;
    while (e > b && (e[-1] == ' ' || e[-1] == '\t'))
        e--;
    if (e <= b || (size_t)(e - b) >= sizeof(buf))
        return -1;
    memcpy(buf, b, (size_t)(e - b));
    buf[e - b] = 0;
    return mg_addr_parse_ip(out, buf);
}

int mg_policy_remote_addr(const struct mg_addr *peer, const char *xff, int num_trusted_proxies,
                          bool is_gateway, struct mg_addr *out)
{
    int want = is_gateway ? num_trusted_proxies : 1;    /* N-th from the right */
    if (xff && want > 0) {
        const char *end = xff + strlen(xff);
        int k = 0;
        while (end > xff || k == 0) {
            const char *b = end;
            while (b > xff && b[-1] != ',')
                b--;
            if (++k == want) {
                struct mg_addr a;
                if (xff_ip(b, end, &a) == 0) {
                    *out = a;
                    return 1;
                }
                break;
            }
            if (b == xff)
                break;
            end = b - 1;
        }
    }
    *out = *peer;
    return 0;
}
