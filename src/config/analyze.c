/* analyze.c - istioctl-analyze style checks on a loaded configuration:
 * things that load fine but do not do what their author most likely meant
 * (the mistakes Istio users commonly make). Warnings, except a credentialName that
 * names no credential, which would fail at run time. */
#include <stdlib.h>
#include <string.h>
#include "config/internal.h"

/* Some checks compare resources pairwise. A hostile configuration (10^5
 * policies in a 16 MiB file) must not make `check` run for hours, so every
 * comparison spends from a budget; once it is gone the remaining pairwise
 * checks are skipped and one warning says so. */
#define MG_ANALYZE_BUDGET 50000000u
static _Thread_local uint64_t work;

static bool over(void)
{
    return ++work > MG_ANALYZE_BUDGET;
}

/* Does a namespaced, selector-scoped resource apply to the Proxy? */
static bool applies(const struct mg_config *c, const struct mg_meta *m, const struct mg_selector *s)
{
    const struct mg_proxy *p = &c->proxy;

    if (!p->present)
        return false;
    if (strcmp(m->namespace_, c->mesh.root_namespace) != 0 &&
        strcmp(m->namespace_, p->meta.namespace_) != 0)
        return false;
    return !s->present || mg_selector_matches(&s->match_labels, &p->meta.labels);
}

static bool older(const struct mg_meta *a, const struct mg_meta *b)
{
    if (a->creation_timestamp && b->creation_timestamp) {
        int r = strcmp(a->creation_timestamp, b->creation_timestamp);
        if (r)
            return r < 0;
    } else if (a->creation_timestamp || b->creation_timestamp) {
        return a->creation_timestamp != NULL;
    }
    return a->doc_index < b->doc_index;
}

/* Section 3: mesh > namespace > workload, oldest wins within a level. */
static enum mg_mtls_mode effective_mtls(const struct mg_config *c)
{
    const struct mg_peer_authn *lvl[3] = { NULL, NULL, NULL };
    const struct mg_proxy *p = &c->proxy;
    enum mg_mtls_mode mode = MG_MTLS_PERMISSIVE;

    for (size_t i = 0; i < c->n_peer_authns; i++) {
        const struct mg_peer_authn *pa = &c->peer_authns[i];
        bool sel = pa->selector.present && pa->selector.match_labels.n;
        bool root = strcmp(pa->meta.namespace_, c->mesh.root_namespace) == 0;
        bool own = strcmp(pa->meta.namespace_, p->meta.namespace_) == 0;
        int l;
        if (root && !sel)
            l = 0;
        else if (own && !sel)
            l = 1;
        else if (own && !root && mg_selector_matches(&pa->selector.match_labels, &p->meta.labels))
            l = 2;
        else
            continue;
        if (!lvl[l] || older(&pa->meta, &lvl[l]->meta))
            lvl[l] = pa;
    }
    for (int l = 0; l < 3; l++)
        if (lvl[l] && lvl[l]->mode != MG_MTLS_UNSET)
            mode = lvl[l]->mode;
    return mode;
}

static bool slist_any(const struct mg_slist *l)
{
    return l->n > 0;
}

/* The first position in a rule that needs a peer identity, or NULL. */
static const struct mg_pos *mtls_field(const struct mg_authz_rule *r, const char **what)
{
    for (size_t j = 0; j < r->n_from; j++) {
        const struct mg_authz_source *s = &r->from[j];
        const struct { const struct mg_slist *l; const char *n; } f[] = {
            { &s->principals, "principals" }, { &s->not_principals, "notPrincipals" },
            { &s->namespaces, "namespaces" }, { &s->not_namespaces, "notNamespaces" },
            { &s->service_accounts, "serviceAccounts" },
            { &s->not_service_accounts, "notServiceAccounts" },
            { &s->trust_domains, "trustDomains" }, { &s->not_trust_domains, "notTrustDomains" },
        };
        for (size_t k = 0; k < MG_ARRAY_LEN(f); k++)
            if (slist_any(f[k].l)) {
                *what = f[k].n;
                return &f[k].l->pos[0];
            }
    }
    for (size_t j = 0; j < r->n_when; j++) {
        const char *k = r->when[j].key;
        if (strcmp(k, "source.principal") == 0 || strcmp(k, "source.namespace") == 0 ||
            strcmp(k, "source.serviceAccount") == 0 || strcmp(k, "source.trustDomain") == 0 ||
            strcmp(k, "connection.sni") == 0) {
            *what = k;
            return &r->when[j].pos;
        }
    }
    return NULL;
}

static bool rule_is_http_only_without_ports(const struct mg_authz_rule *r)
{
    bool http = false, ports = false;

    for (size_t j = 0; j < r->n_from; j++)
        if (slist_any(&r->from[j].request_principals) ||
            slist_any(&r->from[j].not_request_principals))
            http = true;
    for (size_t j = 0; j < r->n_to; j++) {
        const struct mg_authz_operation *o = &r->to[j];
        if (slist_any(&o->hosts) || slist_any(&o->not_hosts) || slist_any(&o->methods) ||
            slist_any(&o->not_methods) || slist_any(&o->paths) || slist_any(&o->not_paths))
            http = true;
        if (slist_any(&o->ports) || slist_any(&o->not_ports))
            ports = true;
    }
    for (size_t j = 0; j < r->n_when; j++) {
        const char *k = r->when[j].key;
        if (mg_has_prefix(k, "request."))
            http = true;
        if (strcmp(k, "destination.port") == 0)
            ports = true;
    }
    return http && !ports;
}

static void check_hosts(struct mg_diags *d, const struct mg_slist *l, const char *field)
{
    for (size_t i = 0; i < l->n; i++) {
        const char *h = l->v[i];
        /* "prefix*" is a prefix match: it already covers "prefix...:port" */
        if (strcmp(h, "*") == 0 || strchr(h, ':') || (*h && h[strlen(h) - 1] == '*'))
            continue;
        char *want = mg_xasprintf("%s:*", h);
        bool found = false;
        for (size_t j = 0; j < l->n && !found && !over(); j++)
            if (mg_strcasecmp(l->v[j], want) == 0)
                found = true;
        if (work > MG_ANALYZE_BUDGET) {
            free(want);
            return;
        }
        if (!found)
            mg_warning(d, l->pos[i], "%s \"%s\" does not match \"%s\" (Host with a port); add "
                       "\"%s\" as Istio recommends", field, h, want, want);
        free(want);
    }
}

static void analyze_authz(const struct mg_config *c, struct mg_diags *d, enum mg_mtls_mode eff)
{
    for (size_t i = 0; i < c->n_authz_policies; i++) {
        const struct mg_authz_policy *p = &c->authz_policies[i];
        bool app = applies(c, &p->meta, &p->selector);
        if (p->action == MG_ACTION_CUSTOM && p->provider) {
            size_t k;
            for (k = 0; k < c->mesh.n_ext_providers && !over(); k++)
                if (strcmp(c->mesh.ext_providers[k].name, p->provider) == 0)
                    break;
            if (k == c->mesh.n_ext_providers && work <= MG_ANALYZE_BUDGET)
                mg_warning(d, p->meta.pos, "AuthorizationPolicy %s/%s: provider \"%s\" is not in "
                           "MeshConfig extensionProviders, so the requests its rules match are "
                           "denied", p->meta.namespace_, p->meta.name, p->provider);
        }
        if (c->proxy.present && p->selector.present && !app)
            mg_warning(d, p->selector.pos, "AuthorizationPolicy %s/%s: selector matches no Proxy "
                       "(the Proxy is %s/%s)", p->meta.namespace_, p->meta.name,
                       c->proxy.meta.namespace_, c->proxy.meta.name);
        for (size_t r = 0; r < p->n_rules; r++) {
            const struct mg_authz_rule *rule = &p->rules[r];
            const char *what = NULL;
            const struct mg_pos *pos = mtls_field(rule, &what);
            if (pos && app && eff != MG_MTLS_STRICT)
                mg_warning(d, *pos, "AuthorizationPolicy %s/%s uses %s, which needs mTLS, but the "
                           "effective PeerAuthentication mode for the Proxy is %s: plaintext "
                           "requests carry no identity", p->meta.namespace_, p->meta.name, what,
                           mg_mtls_mode_name(eff));
            if (p->action == MG_ACTION_DENY && rule_is_http_only_without_ports(rule))
                mg_warning(d, rule->pos, "DENY rule uses HTTP-only fields without ports: on a TCP "
                           "port it denies every connection (pin it to ports)");
            for (size_t t = 0; t < rule->n_to; t++) {
                check_hosts(d, &rule->to[t].hosts, "hosts");
                check_hosts(d, &rule->to[t].not_hosts, "notHosts");
            }
        }
    }
}

static bool requires_jwt(const struct mg_authz_policy *p)
{
    for (size_t r = 0; r < p->n_rules; r++) {
        const struct mg_authz_rule *rule = &p->rules[r];
        for (size_t j = 0; j < rule->n_from; j++) {
            if (p->action == MG_ACTION_ALLOW && slist_any(&rule->from[j].request_principals))
                return true;
            if (p->action == MG_ACTION_DENY && slist_any(&rule->from[j].not_request_principals))
                return true;
        }
        for (size_t j = 0; j < rule->n_when; j++)
            if (p->action == MG_ACTION_ALLOW && mg_has_prefix(rule->when[j].key, "request.auth."))
                return true;
    }
    return false;
}

static bool same_scope(const struct mg_config *c, const struct mg_request_authn *ra,
                       const struct mg_authz_policy *p)
{
    if (c->proxy.present && applies(c, &ra->meta, &ra->selector))
        return applies(c, &p->meta, &p->selector);
    if (strcmp(p->meta.namespace_, c->mesh.root_namespace) != 0 &&
        strcmp(p->meta.namespace_, ra->meta.namespace_) != 0)
        return false;
    return !p->selector.present || p->selector.match_labels.n == 0 ||
           mg_selector_matches(&p->selector.match_labels, &ra->selector.match_labels);
}

static void analyze_request_authn(const struct mg_config *c, struct mg_diags *d)
{
    for (size_t i = 0; i < c->n_request_authns; i++) {
        const struct mg_request_authn *ra = &c->request_authns[i];
        bool covered = false;
        if (c->proxy.present && ra->selector.present && !applies(c, &ra->meta, &ra->selector))
            mg_warning(d, ra->selector.pos, "RequestAuthentication %s/%s: selector matches no "
                       "Proxy", ra->meta.namespace_, ra->meta.name);
        for (size_t j = 0; j < ra->n_rules; j++)
            if (ra->rules[j].jwks && (strstr(ra->rules[j].jwks, "\"d\"") ||
                                      strstr(ra->rules[j].jwks, "\"k\"")))
                mg_warning(d, ra->rules[j].pos, "inline jwks of issuer \"%s\" appears to contain "
                           "private or symmetric key material (\"d\" or \"k\")",
                           ra->rules[j].issuer ? ra->rules[j].issuer : "");
        for (size_t j = 0; j < c->n_authz_policies && !covered && !over(); j++)
            if (requires_jwt(&c->authz_policies[j]) && same_scope(c, ra, &c->authz_policies[j]))
                covered = true;
        if (!covered && work <= MG_ANALYZE_BUDGET)
            mg_warning(d, ra->meta.pos, "RequestAuthentication %s/%s: no AuthorizationPolicy "
                       "requires requestPrincipals for these workloads, so requests without a "
                       "token are allowed", ra->meta.namespace_, ra->meta.name);
    }
}

static void analyze_peer_authn(const struct mg_config *c, struct mg_diags *d)
{
    for (size_t i = 0; i < c->n_peer_authns; i++) {
        const struct mg_peer_authn *pa = &c->peer_authns[i];
        bool sel = pa->selector.present && pa->selector.match_labels.n;
        if (pa->mode == MG_MTLS_PERMISSIVE)
            mg_warning(d, pa->meta.pos, "PeerAuthentication %s/%s is PERMISSIVE: plaintext is "
                       "accepted and carries no identity", pa->meta.namespace_, pa->meta.name);
        for (size_t j = 0; j < pa->n_port_level; j++)
            if (pa->port_level[j].mode == MG_MTLS_PERMISSIVE)
                mg_warning(d, pa->port_level[j].pos, "port %u is PERMISSIVE: plaintext is "
                           "accepted", pa->port_level[j].port);
        if (sel && strcmp(pa->meta.namespace_, c->mesh.root_namespace) == 0)
            mg_warning(d, pa->selector.pos, "PeerAuthentication %s/%s has a selector in the root "
                       "namespace: Istio ignores it", pa->meta.namespace_, pa->meta.name);
        else if (c->proxy.present && sel && !applies(c, &pa->meta, &pa->selector))
            mg_warning(d, pa->selector.pos, "PeerAuthentication %s/%s: selector matches no Proxy",
                       pa->meta.namespace_, pa->meta.name);
        if (pa->n_port_level && !sel)
            mg_warning(d, pa->port_level[0].pos, "portLevelMtls without a selector is ignored");
    }
}

static const struct mg_gateway *find_gateway(const struct mg_config *c, const char *ref,
                                             const char *own_ns)
{
    const char *slash = strchr(ref, '/');
    size_t nslen = slash ? (size_t)(slash - ref) : strlen(own_ns);
    const char *ns = slash ? ref : own_ns, *name = slash ? slash + 1 : ref;

    for (size_t i = 0; i < c->n_gateways && !over(); i++) {
        const struct mg_gateway *g = &c->gateways[i];
        if (g->meta.name && strcmp(g->meta.name, name) == 0 &&
            strlen(g->meta.namespace_) == nslen && strncmp(g->meta.namespace_, ns, nslen) == 0)
            return g;
    }
    return NULL;
}

static bool host_matches(const char *pattern, const char *host);

/* A server host "[ns/]dnsName" admits VirtualService host h? */
static bool server_host_admits(const char *server_host, const char *h)
{
    const char *slash = strchr(server_host, '/');
    const char *dns = slash ? slash + 1 : server_host;

    if (strcmp(dns, "*") == 0 || host_matches(dns, h))
        return true;
    /* a VirtualService wildcard inside the server's wildcard */
    return h[0] == '*' && dns[0] == '*' && host_matches(dns, h + 1);
}

static void check_gateway_refs(const struct mg_config *c, struct mg_diags *d,
                               const struct mg_virtual_service *vs, const struct mg_slist *l)
{
    for (size_t i = 0; i < l->n; i++) {
        if (strcmp(l->v[i], "mesh") == 0)
            continue;
        const struct mg_gateway *g = find_gateway(c, l->v[i], vs->meta.namespace_);
        if (!g) {
            if (work > MG_ANALYZE_BUDGET)
                return;
            mg_warning(d, l->pos[i], "VirtualService %s/%s is bound to gateway \"%s\", which does "
                       "not exist", vs->meta.namespace_, vs->meta.name, l->v[i]);
            continue;
        }
        for (size_t h = 0; h < vs->hosts.n; h++) {
            bool found = false;
            for (size_t s = 0; s < g->n_servers && !found; s++)
                for (size_t k = 0; k < g->servers[s].hosts.n && !found && !over(); k++)
                    found = server_host_admits(g->servers[s].hosts.v[k], vs->hosts.v[h]);
            if (!found && work <= MG_ANALYZE_BUDGET)
                mg_warning(d, vs->hosts.pos[h], "host \"%s\" of VirtualService %s/%s is not "
                           "served by gateway %s/%s", vs->hosts.v[h], vs->meta.namespace_,
                           vs->meta.name, g->meta.namespace_, g->meta.name);
        }
    }
}

static void check_credential(const struct mg_config *c, struct mg_diags *d,
                             const struct mg_server_tls *t, const char *name, struct mg_pos pos)
{
    const struct mg_credential *cr = mg_config_credential(c, name);

    if (!cr) {
        mg_error(d, pos, "credentialName \"%s\" names no credential (Proxy.spec.credentials or a "
                 "kubernetes.io/tls Secret)", name);
        return;
    }
    if (t->mode == MG_TLS_MUTUAL || t->mode == MG_TLS_OPTIONAL_MUTUAL) {
        char *ca = mg_xasprintf("%s-cacert", name);
        if (!cr->ca_certificates && !cr->ca_pem && !mg_config_credential(c, ca))
            mg_error(d, pos, "credential \"%s\" has no CA certificates, which mode %s needs",
                     name, t->mode == MG_TLS_MUTUAL ? "MUTUAL" : "OPTIONAL_MUTUAL");
        free(ca);
    }
}

static void check_credentials(const struct mg_config *c, struct mg_diags *d,
                              const struct mg_server_tls *t)
{
    if (t->credential_name && *t->credential_name)
        check_credential(c, d, t, t->credential_name, t->pos);
    for (size_t k = 0; k < t->credential_names.n; k++)
        check_credential(c, d, t, t->credential_names.v[k], t->credential_names.pos[k]);
}

static bool refs_gateway(const struct mg_config *c, const struct mg_slist *l, const char *own_ns,
                         const struct mg_gateway *g)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->v[i], "mesh") != 0 && find_gateway(c, l->v[i], own_ns) == g)
            return true;
    return false;
}

/* Is server s of gateway g bound by a VirtualService naming g (in its
 * gateways, or a route match's) with a host one of s's hosts admits? */
static bool server_bound(const struct mg_config *c, const struct mg_gateway *g, const struct mg_server *s)
{
    for (size_t i = 0; i < c->n_virtual_services && !over(); i++) {
        const struct mg_virtual_service *vs = &c->virtual_services[i];
        bool named = refs_gateway(c, &vs->gateways, vs->meta.namespace_, g);
        for (size_t j = 0; j < vs->n_http && !named; j++)
            for (size_t k = 0; k < vs->http[j].n_match && !named; k++)
                named = refs_gateway(c, &vs->http[j].match[k].gateways, vs->meta.namespace_, g);
        if (!named)
            continue;
        for (size_t h = 0; h < vs->hosts.n; h++)
            for (size_t k = 0; k < s->hosts.n; k++)
                if (server_host_admits(s->hosts.v[k], vs->hosts.v[h]))
                    return true;
    }
    return false;
}

static void analyze_gateways(const struct mg_config *c, struct mg_diags *d)
{
    for (size_t i = 0; i < c->n_gateways; i++) {
        const struct mg_gateway *g = &c->gateways[i];
        if (c->proxy.present && !mg_selector_matches(&g->selector, &c->proxy.meta.labels))
            mg_warning(d, g->selector.n ? g->selector.v[0].pos : g->meta.pos,
                       "Gateway %s/%s: selector matches no Proxy", g->meta.namespace_,
                       g->meta.name);
        for (size_t j = 0; j < g->n_servers; j++) {
            const struct mg_server *s = &g->servers[j];
            for (size_t k = 0; k < j; k++) {
                const struct mg_server *o = &g->servers[k];
                if (o->port != s->port)
                    continue;
                for (size_t a = 0; a < s->hosts.n; a++)
                    for (size_t b = 0; b < o->hosts.n && !over(); b++)
                        if (mg_strcasecmp(s->hosts.v[a], o->hosts.v[b]) == 0)
                            mg_warning(d, s->hosts.pos[a], "host \"%s\" on port %u is already "
                                       "served by servers[%zu]; Istio ignores the duplicate",
                                       s->hosts.v[a], s->port, k);
            }
            check_credentials(c, d, &s->tls);
            /* a server nothing routes: what a newcomer meets as a 404 (or a
             * closed connection) with no clue why; a redirect-only server
             * needs no route */
            if (!(s->tls.present && s->tls.https_redirect) && !over() && !server_bound(c, g, s))
                mg_warning(d, s->pos, "Gateway %s/%s servers[%zu] (port %u): no VirtualService bound "
                           "to this gateway has a host it serves; every %s", g->meta.namespace_,
                           g->meta.name, j, s->port,
                           s->protocol == MG_PROTO_TCP || s->protocol == MG_PROTO_TLS
                               ? "connection is closed" : "request gets 404 \"no route\"");
        }
    }
    if (c->proxy.outbound_tls.present)  /* the forward proxy's TLS listener */
        check_credentials(c, d, &c->proxy.outbound_tls);
    for (size_t i = 0; i < c->n_virtual_services; i++) {
        const struct mg_virtual_service *vs = &c->virtual_services[i];
        check_gateway_refs(c, d, vs, &vs->gateways);
        for (size_t j = 0; j < vs->n_http; j++)
            for (size_t k = 0; k < vs->http[j].n_match; k++)
                check_gateway_refs(c, d, vs, &vs->http[j].match[k].gateways);
    }
}

static bool host_matches(const char *pattern, const char *host)
{
    if (mg_strcasecmp(pattern, host) == 0)
        return true;
    if (pattern[0] == '*' && pattern[1] == '.') {
        size_t pl = strlen(pattern + 1), hl = strlen(host);
        return hl > pl && mg_strcasecmp(host + hl - pl, pattern + 1) == 0;
    }
    return false;
}

static bool has_service_entry(const struct mg_config *c, const char *host)
{
    for (size_t i = 0; i < c->n_service_entries; i++)
        for (size_t j = 0; j < c->service_entries[i].hosts.n && !over(); j++)
            if (host_matches(c->service_entries[i].hosts.v[j], host))
                return true;
    return false;
}

static bool dr_istio_mutual(const struct mg_dr_policy *p)
{
    if (p->base.tls.present && p->base.tls.mode == MG_CTLS_ISTIO_MUTUAL)
        return true;
    for (size_t i = 0; i < p->n_port_level; i++)
        if (p->port_level[i].policy.tls.present &&
            p->port_level[i].policy.tls.mode == MG_CTLS_ISTIO_MUTUAL)
            return true;
    return false;
}

static bool same_ports(const struct mg_service_entry *a, const struct mg_service_entry *b)
{
    for (int pass = 0; pass < 2; pass++) {
        const struct mg_service_entry *x = pass ? b : a, *y = pass ? a : b;
        for (size_t i = 0; i < x->n_ports; i++) {
            size_t j = 0;
            while (j < y->n_ports && y->ports[j].number != x->ports[i].number)
                j++;
            if (j == y->n_ports)
                return false;
        }
    }
    return true;
}

/* The egress registry matches a name against every entry that covers it and
 * takes the most specific one listing the port, so a host under another
 * entry's wildcard is reachable on the ports of both: worth a word when the
 * port lists differ. */
static void warn_wildcard_overlap(const struct mg_config *c, struct mg_diags *d)
{
    for (size_t i = 0; i < c->n_service_entries; i++) {
        const struct mg_service_entry *w = &c->service_entries[i];
        for (size_t h = 0; h < w->hosts.n; h++) {
            const char *wild = w->hosts.v[h];
            if (wild[0] != '*' || wild[1] != '.')
                continue;
            for (size_t j = 0; j < c->n_service_entries; j++) {
                const struct mg_service_entry *o = &c->service_entries[j];
                if (j == i || same_ports(w, o))
                    continue;
                for (size_t k = 0; k < o->hosts.n && !over(); k++) {
                    if (mg_strcasecmp(o->hosts.v[k], wild) == 0 || !host_matches(wild, o->hosts.v[k]))
                        continue;
                    mg_warning(d, o->hosts.pos ? o->hosts.pos[k] : o->meta.pos,
                               "ServiceEntry %s/%s host \"%s\" lies under \"%s\" of ServiceEntry "
                               "%s/%s, which lists other ports: egress allows it on the ports of both",
                               o->meta.namespace_, o->meta.name, o->hosts.v[k], wild,
                               w->meta.namespace_, w->meta.name);
                }
            }
        }
    }
}

static bool http_proto(enum mg_app_proto p)
{
    return p == MG_PROTO_HTTP || p == MG_PROTO_HTTP2 || p == MG_PROTO_GRPC || p == MG_PROTO_GRPC_WEB;
}

/* Does a VirtualService bound to a Gateway route HTTP to a host of se on
 * port (a destination without a port counts)? */
static bool gateway_http_route(const struct mg_config *c, const struct mg_service_entry *se,
                               uint16_t port)
{
    for (size_t i = 0; i < c->n_virtual_services; i++) {
        const struct mg_virtual_service *vs = &c->virtual_services[i];
        bool gw = false;
        for (size_t g = 0; g < vs->gateways.n; g++)
            gw = gw || strcmp(vs->gateways.v[g], "mesh") != 0;
        for (size_t j = 0; gw && j < vs->n_http; j++)
            for (size_t k = 0; k < vs->http[j].n_route; k++) {
                const struct mg_destination *dst = &vs->http[j].route[k].destination;
                if (!dst->host || (dst->port && dst->port != port))
                    continue;
                for (size_t h = 0; h < se->hosts.n && !over(); h++)
                    if (host_matches(se->hosts.v[h], dst->host))
                        return true;
            }
    }
    return false;
}

/* Under REGISTRY_ONLY with the forward proxy configured, an HTTP (HTTP2,
 * GRPC) port of a visible entry that no Gateway route leads to is reached
 * by CONNECT, which tunnels its bytes: the protocol the entry declares is
 * not enforced there, and AuthorizationPolicy paths, methods and headers
 * never apply to it. */
static void warn_http_via_connect(const struct mg_config *c, struct mg_diags *d)
{
    if (!c->proxy.outbound_bind || !*c->proxy.outbound_bind)
        return;
    for (size_t i = 0; i < c->n_service_entries && work <= MG_ANALYZE_BUDGET; i++) {
        const struct mg_service_entry *se = &c->service_entries[i];
        if (!mg_service_entry_visible(c, se))
            continue;
        for (size_t p = 0; p < se->n_ports; p++) {
            const struct mg_se_port *sp = &se->ports[p];
            if (!http_proto(sp->protocol) || gateway_http_route(c, se, sp->number))
                continue;
            mg_warning(d, sp->pos, "ServiceEntry %s/%s port %u is %s, but no Gateway route leads "
                       "to it: through the forward proxy a CONNECT tunnels its bytes, so %s is not "
                       "enforced and AuthorizationPolicy paths, methods and headers do not apply "
                       "(absolute-form requests, HTTP_PROXY, are checked)",
                       se->meta.namespace_, se->meta.name, (unsigned)sp->number,
                       mg_app_proto_name(sp->protocol), mg_app_proto_name(sp->protocol));
        }
    }
}

static bool labels_within(const struct mg_kvlist *want, const struct mg_kvlist *have)
{
    for (size_t i = 0; i < want->n; i++) {
        const char *v = mg_kvlist_get(have, want->v[i].key);
        if (!v || strcmp(v, want->v[i].value) != 0)
            return false;
    }
    return true;
}

/* A workloadSelector reaches the WorkloadEntries of its own namespace
 * only; one that selects none leaves the entry without endpoints. */
static void analyze_workload_selectors(const struct mg_config *c, struct mg_diags *d)
{
    for (size_t i = 0; i < c->n_service_entries && work <= MG_ANALYZE_BUDGET; i++) {
        const struct mg_service_entry *se = &c->service_entries[i];
        if (!se->workload_selector.present)
            continue;
        bool any = false;
        for (size_t j = 0; j < c->n_workload_entries && !any && !over(); j++) {
            const struct mg_workload_entry_res *we = &c->workload_entries[j];
            any = strcmp(we->meta.namespace_, se->meta.namespace_) == 0 &&
                  labels_within(&se->workload_selector.match_labels, &we->spec.labels);
        }
        if (!any && work <= MG_ANALYZE_BUDGET)
            mg_warning(d, se->workload_selector.pos, "ServiceEntry %s/%s: workloadSelector selects no "
                       "WorkloadEntry of namespace %s; requests to its hosts get 503",
                       se->meta.namespace_, se->meta.name, se->meta.namespace_);
    }
}

static void analyze_egress(const struct mg_config *c, struct mg_diags *d)
{
    warn_wildcard_overlap(c, d);
    analyze_workload_selectors(c, d);
    for (size_t i = 0; i < c->n_destination_rules; i++) {
        const struct mg_destination_rule *dr = &c->destination_rules[i];
        bool im = dr_istio_mutual(&dr->policy);
        for (size_t j = 0; j < dr->n_subsets; j++)
            im = im || dr_istio_mutual(&dr->subsets[j].policy);
        if (im && dr->host && !has_service_entry(c, dr->host) && work <= MG_ANALYZE_BUDGET)
            mg_warning(d, dr->meta.pos, "DestinationRule %s/%s uses ISTIO_MUTUAL for \"%s\", "
                       "but no ServiceEntry defines that host", dr->meta.namespace_,
                       dr->meta.name, dr->host);
    }
    if (c->mesh.outbound_mode != MG_OUTBOUND_REGISTRY_ONLY)
        return;
    if (c->n_service_entries == 0) {
        mg_warning(d, c->mesh.pos, "outboundTrafficPolicy REGISTRY_ONLY without any ServiceEntry "
                   "blocks every outbound destination");
        return;
    }
    size_t visible = 0;
    for (size_t i = 0; i < c->n_service_entries; i++)
        visible += mg_service_entry_visible(c, &c->service_entries[i]);
    if (!visible)
        mg_warning(d, c->mesh.pos, "outboundTrafficPolicy REGISTRY_ONLY, and none of the %zu "
                   "ServiceEntries is visible to namespace \"%s\" of this Proxy (exportTo): every "
                   "outbound destination is blocked", c->n_service_entries,
                   c->proxy.meta.namespace_ ? c->proxy.meta.namespace_ : "default");
    warn_http_via_connect(c, d);
}

/* ---- GeoIP conditions ---- */

/* The officially assigned ISO 3166-1 alpha-2 codes, two letters each. */
static bool iso3166_alpha2(const char *v)
{
    static const char codes[] =
        "ADAEAFAGAIALAMAOAQARASATAUAWAXAZBABBBDBE"
        "BFBGBHBIBJBLBMBNBOBQBRBSBTBVBWBYBZCACCCD"
        "CFCGCHCICKCLCMCNCOCRCUCVCWCXCYCZDEDJDKDM"
        "DODZECEEEGEHERESETFIFJFKFMFOFRGAGBGDGEGF"
        "GGGHGIGLGMGNGPGQGRGSGTGUGWGYHKHMHNHRHTHU"
        "IDIEILIMINIOIQIRISITJEJMJOJPKEKGKHKIKMKN"
        "KPKRKWKYKZLALBLCLILKLRLSLTLULVLYMAMCMDME"
        "MFMGMHMKMLMMMNMOMPMQMRMSMTMUMVMWMXMYMZNA"
        "NCNENFNGNINLNONPNRNUNZOMPAPEPFPGPHPKPLPM"
        "PNPRPSPTPWPYQARERORSRURWSASBSCSDSESGSHSI"
        "SJSKSLSMSNSOSRSSSTSVSXSYSZTCTDTFTGTHTJTK"
        "TLTMTNTOTRTTTVTWTZUAUGUMUSUYUZVAVCVEVGVI"
        "VNVUWFWSYEYTZAZMZW";
    if (strlen(v) != 2)
        return false;
    char u[2] = { (char)(v[0] & ~0x20), (char)(v[1] & ~0x20) };
    for (size_t i = 0; i + 1 < sizeof(codes); i += 2)
        if (codes[i] == u[0] && codes[i + 1] == u[1])
            return true;
    return false;
}

static bool geo_key(const char *k, bool *country)
{
    if (!k)
        return false;
    *country = strcmp(k, "source.geo.country") == 0 || strcmp(k, "remote.geo.country") == 0;
    return *country || strcmp(k, "source.geo.asn") == 0 || strcmp(k, "remote.geo.asn") == 0;
}

static void check_codes(struct mg_diags *d, const struct mg_authz_condition *w,
                        const struct mg_slist *l)
{
    for (size_t i = 0; i < l->n; i++) {
        const char *v = l->v[i];
        if (!v || strchr(v, '*') || iso3166_alpha2(v))
            continue;
        mg_warning(d, l->pos ? l->pos[i] : w->pos, "%s: '%s' is not an ISO 3166 alpha-2 country "
                   "code, which is all a GeoIP database returns: it never matches", w->key, v);
    }
}

/* A geoipHeaders name: a lower-case token that names no field the
 * request's framing, routing or client address depends on (the edge
 * removes the client's copy of it). */
static void check_geo_header(const struct mg_config *c, struct mg_diags *d, const char *h,
                             const char *field)
{
    static const char *const reserved[] = { "host", "content-length", "transfer-encoding",
                                            "connection", "x-forwarded-for", "authorization",
                                            "cookie", "te", "upgrade" };
    if (!h)
        return;
    bool ok = *h != '\0';
    for (const char *p = h; *p && ok; p++)
        ok = (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' || *p == '_';
    for (size_t i = 0; i < MG_ARRAY_LEN(reserved) && ok; i++)
        ok = strcmp(h, reserved[i]) != 0;
    if (!ok)
        mg_error(d, c->mesh.pos, "MeshConfig geoipHeaders.%s '%s': not a lower-case header name "
                 "the gateway may own", field, h);
}

void mg_config_check_geo(const struct mg_config *c, struct mg_diags *d)
{
    bool db = c->mesh.geoip_database && *c->mesh.geoip_database;
    check_geo_header(c, d, c->mesh.geoip_country_header, "country");
    check_geo_header(c, d, c->mesh.geoip_asn_header, "asn");
    for (size_t i = 0; i < c->n_authz_policies; i++) {
        const struct mg_authz_policy *p = &c->authz_policies[i];
        for (size_t r = 0; r < p->n_rules; r++) {
            const struct mg_authz_rule *rule = &p->rules[r];
            for (size_t k = 0; k < rule->n_when; k++) {
                const struct mg_authz_condition *w = &rule->when[k];
                bool country;
                if (!geo_key(w->key, &country))
                    continue;
                if (!db)
                    mg_error(d, w->pos, "AuthorizationPolicy %s/%s: condition '%s' needs MeshConfig "
                             "geoipDatabase: without one no address has a %s, so it could never "
                             "match as meant", p->meta.namespace_, p->meta.name, w->key,
                             country ? "country" : "AS number");
                if (country) {
                    check_codes(d, w, &w->values);
                    check_codes(d, w, &w->not_values);
                }
            }
        }
    }
}

void mg_config_analyze(const struct mg_config *c, struct mg_diags *d)
{
    enum mg_mtls_mode eff = c->proxy.present ? effective_mtls(c) : MG_MTLS_PERMISSIVE;
    struct mg_pos pos = { c->source ? mg_intern(c->source) : NULL, 0, 0 };

    work = 0;
    analyze_peer_authn(c, d);
    analyze_authz(c, d, eff);
    mg_config_check_geo(c, d);
    analyze_request_authn(c, d);
    analyze_gateways(c, d);
    analyze_egress(c, d);
    if (work > MG_ANALYZE_BUDGET)
        mg_warning(d, pos, "configuration too large to analyse completely; some pairwise "
                   "checks were skipped");
}
