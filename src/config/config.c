/* config.c - loading: files and directories, documents and `kind: List`,
 * kinds and apiVersions, metadata, duplicates, defaults; plus the small
 * lookups config.h exports. Each kind's spec is read in config_<area>.c. */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "config/internal.h"

enum kind {
    K_AUTHZ, K_PEER, K_REQAUTH, K_GATEWAY, K_VS, K_DR, K_SE, K_WE, K_SECRET, K_MESH, K_OPERATOR, K_PROXY, K_LIST,
};

static const char *const security_v[] = { "security.istio.io/v1", "security.istio.io/v1beta1", NULL };
static const char *const networking_v[] = { "networking.istio.io/v1", "networking.istio.io/v1beta1",
                                            "networking.istio.io/v1alpha3", NULL };
static const char *const core_v[] = { "v1", NULL };
static const char *const own_v[] = { "meshgate.io/v1alpha1", NULL };
static const char *const operator_v[] = { "install.istio.io/v1alpha1", NULL };

static const struct {
    const char *name;
    enum kind k;
    const char *const *versions;
} kinds[] = {
    { "AuthorizationPolicy", K_AUTHZ, security_v },
    { "PeerAuthentication", K_PEER, security_v },
    { "RequestAuthentication", K_REQAUTH, security_v },
    { "Gateway", K_GATEWAY, networking_v },
    { "VirtualService", K_VS, networking_v },
    { "DestinationRule", K_DR, networking_v },
    { "ServiceEntry", K_SE, networking_v },
    { "WorkloadEntry", K_WE, networking_v },
    { "Secret", K_SECRET, core_v },
    { "MeshConfig", K_MESH, own_v },
    { "IstioOperator", K_OPERATOR, operator_v },
    { "Proxy", K_PROXY, own_v },
    { "List", K_LIST, core_v },
};

/* Istio kinds a real mesh export contains that have no place here. */
static const char *const ignored_kinds[] = {
    "Sidecar", "EnvoyFilter", "WorkloadGroup", "Telemetry", "ProxyConfig",
    "WasmPlugin",
};

struct loader {
    struct mg_cfg x;
    size_t doc_index;
    struct mg_pos mesh_pos, proxy_pos;
    bool have_mesh;
    const char *default_ns;             /* -n NAMESPACE, or NULL: "default" */
    size_t n_no_ns;                     /* documents without metadata.namespace */
    struct mg_pos first_no_ns;
};

/* Kubernetes bookkeeping a real export carries; meaningless here. */
static const char *const meta_ignored[] = {
    "uid", "resourceVersion", "generation", "managedFields", "ownerReferences",
    "finalizers", "generateName", "selfLink", "deletionTimestamp",
    "deletionGracePeriodSeconds",
};
static const struct mg_cfg_field meta_rows[] = {
    MG_CFG_STR("name", struct mg_meta, name),
    MG_CFG_STR("namespace", struct mg_meta, namespace_),
    MG_CFG_KVLIST("labels", struct mg_meta, labels),
    MG_CFG_KVLIST("annotations", struct mg_meta, annotations),
    MG_CFG_STR("creationTimestamp", struct mg_meta, creation_timestamp),
    MG_CFG_IGNORED_ANY(meta_ignored),
};
static const struct mg_cfg_table meta_table = { MG_CFG_ROWS(meta_rows) };

static void read_meta(struct loader *L, const struct mg_ynode *m, struct mg_meta *meta,
                      bool need_name, const char *kind)
{
    struct mg_cfg *x = &L->x;
    size_t mark;

    x->plen = 0;
    x->path[0] = '\0';
    mark = mg_cfg_push(x, "%s.metadata", kind);
    if (m && !mg_ynode_is_null(m) && !mg_cfg_map(x, "", m))
        m = NULL;
    mg_cfg_read_fields(x, m, &meta_table, meta);
    mg_cfg_pop(x, mark);
    if (need_name && (!meta->name || !*meta->name))
        mg_error(x->d, meta->pos, "%s has no metadata.name", kind);
    else if (meta->name && *meta->name && !mg_cfg_dns_subdomain_ok(meta->name))
        mg_error(x->d, meta->pos, "metadata.name \"%s\" is not a DNS-1123 subdomain (lower-case "
                 "alphanumerics, '-' and '.')", meta->name);
    else if (meta->name && strcmp(kind, "Gateway") == 0 && strchr(meta->name, '.'))
        mg_error(x->d, meta->pos, "invalid gateway name: \"%s\" (a DNS-1123 label: no dots)",
                 meta->name);

    if (!meta->namespace_ || !*meta->namespace_) {
        /* as kubectl apply: the -n namespace, else "default"; a MeshConfig
         * is cluster-wide */
        free(meta->namespace_);
        meta->namespace_ = mg_xstrdup(L->default_ns ? L->default_ns : "default");
        if (need_name && !L->default_ns && L->n_no_ns++ == 0)
            L->first_no_ns = meta->pos;
    }
}

static void read_doc(struct loader *L, const struct mg_ynode *doc, bool in_list);

static void read_list(struct loader *L, const struct mg_ynode *doc)
{
    struct mg_cfg *x = &L->x;
    const struct mg_ynode *k, *v;

    for (size_t i = 0; mg_cfg_next(doc, &i, &k, &v);) {
        if (strcmp(k->str, "items") == 0) {
            x->plen = 0;
            mg_cfg_push(x, "List");
            if (mg_ynode_is_null(v))
                continue;
            if (v->type != MG_YSEQ) {
                mg_error(x->d, v->pos, "expected a list for List.items, got %s", mg_ynode_kind(v));
                continue;
            }
            for (size_t j = 0; j < v->n; j++)
                read_doc(L, v->items[j], true);
        } else if (strcmp(k->str, "apiVersion") != 0 && strcmp(k->str, "kind") != 0 &&
                   strcmp(k->str, "metadata") != 0) {
            x->plen = 0;
            mg_cfg_push(x, "List");
            mg_cfg_unknown(x, k);
        }
    }
}

static void read_doc(struct loader *L, const struct mg_ynode *doc, bool in_list)
{
    struct mg_cfg *x = &L->x;
    struct mg_config *c = x->c;
    const struct mg_ynode *kind_n, *api_n, *k, *v, *spec = NULL, *meta_n = NULL;
    size_t ki;

    if (mg_ynode_is_null(doc))
        return;
    if (doc->type != MG_YMAP) {
        mg_error(x->d, doc->pos, "expected a Kubernetes-style resource (a map), got %s",
                 mg_ynode_kind(doc));
        return;
    }
    kind_n = mg_ynode_get(doc, "kind");
    api_n = mg_ynode_get(doc, "apiVersion");
    if (!kind_n || kind_n->type != MG_YSCALAR || mg_ynode_is_null(kind_n)) {
        mg_error(x->d, doc->pos, "resource has no kind");
        return;
    }
    for (ki = 0; ki < MG_ARRAY_LEN(kinds); ki++)
        if (strcmp(kind_n->str, kinds[ki].name) == 0)
            break;
    if (ki == MG_ARRAY_LEN(kinds)) {
        bool istio = false;
        for (size_t j = 0; j < MG_ARRAY_LEN(ignored_kinds); j++)
            if (strcmp(kind_n->str, ignored_kinds[j]) == 0)
                istio = true;
        mg_warning(x->d, kind_n->pos, istio ? "kind \"%s\" is not supported, ignored"
                                            : "unknown kind \"%s\", ignored", kind_n->str);
        return;
    }
    if (!api_n || api_n->type != MG_YSCALAR || mg_ynode_is_null(api_n)) {
        mg_error(x->d, doc->pos, "%s has no apiVersion", kinds[ki].name);
        return;
    }
    /* Kubernetes Gateway API shares the kind name "Gateway" */
    if (mg_has_prefix(api_n->str, "gateway.networking.k8s.io/")) {
        mg_warning(x->d, api_n->pos, "Gateway API resources (%s) are not supported, ignored",
                   api_n->str);
        return;
    }
    bool api_ok = false;
    struct mg_buf want = { 0 };
    for (const char *const *ver = kinds[ki].versions; *ver; ver++) {
        if (strcmp(api_n->str, *ver) == 0)
            api_ok = true;
        mg_buf_printf(&want, "%s%s", ver == kinds[ki].versions ? "" : ", ", *ver);
    }
    if (!api_ok)
        mg_error(x->d, api_n->pos, "apiVersion \"%s\" is not valid for kind %s (want %s)",
                 api_n->str, kinds[ki].name, want.p);
    mg_buf_free(&want);
    if (!api_ok)
        return;
    if (kinds[ki].k == K_LIST) {
        if (in_list)
            mg_error(x->d, doc->pos, "a List inside a List is not supported");
        else
            read_list(L, doc);
        return;
    }
    const char *kname = kinds[ki].name;
    x->plen = 0;
    mg_cfg_push(x, "%s", kname);
    for (size_t i = 0; mg_cfg_next(doc, &i, &k, &v);) {
        const char *key = k->str;
        if (strcmp(key, "spec") == 0)
            spec = v;
        else if (strcmp(key, "metadata") == 0)
            meta_n = v;
        else if (strcmp(key, "apiVersion") == 0 || strcmp(key, "kind") == 0 ||
                 strcmp(key, "status") == 0)
            continue;
        else if (kinds[ki].k == K_SECRET && (strcmp(key, "type") == 0 || strcmp(key, "data") == 0 ||
                                             strcmp(key, "stringData") == 0 ||
                                             strcmp(key, "immutable") == 0))
            continue;
        else
            mg_cfg_unknown(x, k);
    }
    if (kinds[ki].k == K_SECRET && spec)
        mg_error(x->d, spec->pos, "a Secret has no spec (use data)");

    struct mg_meta meta = { 0 };
    meta.pos = doc->pos;
    meta.doc_index = L->doc_index++;
    read_meta(L, meta_n, &meta, kinds[ki].k != K_MESH && kinds[ki].k != K_OPERATOR, kname);
    x->ns = meta.namespace_;
    x->plen = 0;
    mg_cfg_push(x, "%s.spec", kname);

    switch (kinds[ki].k) {
    case K_AUTHZ: {
        struct mg_authz_policy *p = MG_CFG_PUSH(c->authz_policies, c->n_authz_policies);
        p->meta = meta;
        mg_cfg_read_authz(x, spec, p);
        break;
    }
    case K_PEER: {
        struct mg_peer_authn *p = MG_CFG_PUSH(c->peer_authns, c->n_peer_authns);
        p->meta = meta;
        mg_cfg_read_peer_authn(x, spec, p);
        break;
    }
    case K_REQAUTH: {
        struct mg_request_authn *p = MG_CFG_PUSH(c->request_authns, c->n_request_authns);
        p->meta = meta;
        mg_cfg_read_request_authn(x, spec, p);
        break;
    }
    case K_GATEWAY: {
        struct mg_gateway *g = MG_CFG_PUSH(c->gateways, c->n_gateways);
        g->meta = meta;
        mg_cfg_read_gateway(x, spec, g);
        break;
    }
    case K_VS: {
        struct mg_virtual_service *vs = MG_CFG_PUSH(c->virtual_services, c->n_virtual_services);
        vs->meta = meta;
        mg_cfg_read_virtual_service(x, spec, vs);
        break;
    }
    case K_DR: {
        struct mg_destination_rule *dr = MG_CFG_PUSH(c->destination_rules, c->n_destination_rules);
        dr->meta = meta;
        mg_cfg_read_destination_rule(x, spec, dr);
        break;
    }
    case K_SE: {
        struct mg_service_entry *se = MG_CFG_PUSH(c->service_entries, c->n_service_entries);
        se->meta = meta;
        mg_cfg_read_service_entry(x, spec, se);
        break;
    }
    case K_WE: {
        struct mg_workload_entry_res *we = MG_CFG_PUSH(c->workload_entries, c->n_workload_entries);
        we->meta = meta;
        mg_cfg_read_workload_entry(x, spec, &we->spec);
        break;
    }
    case K_SECRET: {
        struct mg_credential cr = { 0 };
        x->plen = 0;
        mg_cfg_push(x, "Secret");
        cr.pos = doc->pos;
        if (mg_cfg_read_secret(x, doc, &cr)) {
            cr.name = meta.name ? mg_xstrdup(meta.name) : NULL;
            cr.namespace_ = mg_xstrdup(meta.namespace_);
            *MG_CFG_PUSH(c->secrets, c->n_secrets) = cr;
        } else {
            mg_cfg_free_credential(&cr);
        }
        /* duplicates of Secrets are found through this throwaway meta */
        mg_cfg_free_meta(&meta);
        break;
    }
    case K_MESH:
    case K_OPERATOR:
        /* an IstioOperator's spec.meshConfig is this gateway's MeshConfig */
        if (L->have_mesh) {
            mg_error(x->d, doc->pos, "more than one MeshConfig (first at %s:%d; an IstioOperator counts as one)",
                     L->mesh_pos.file, L->mesh_pos.line);
            mg_cfg_free_meta(&meta);
            break;
        }
        L->have_mesh = true;
        L->mesh_pos = doc->pos;
        c->mesh.present = true;
        c->mesh.pos = doc->pos;
        mg_cfg_free_meta(&meta);
        if (kinds[ki].k == K_OPERATOR)
            mg_cfg_read_istio_operator(x, spec, &c->mesh);
        else
            mg_cfg_read_mesh(x, spec, &c->mesh);
        break;
    case K_PROXY:
        if (c->proxy.present) {
            mg_error(x->d, doc->pos, "more than one Proxy (first at %s:%d)", L->proxy_pos.file,
                     L->proxy_pos.line);
            mg_cfg_free_meta(&meta);
            break;
        }
        L->proxy_pos = doc->pos;
        c->proxy.present = true;
        c->proxy.meta = meta;
        mg_cfg_read_proxy(x, spec, &c->proxy);
        break;
    case K_LIST:
        break;
    }
    x->ns = NULL;
}

/* ---- duplicates: one name per kind and namespace ---- */

struct mref {
    const struct mg_meta *m;
};

static int mref_cmp(const void *a, const void *b)
{
    const struct mg_meta *x = ((const struct mref *)a)->m, *y = ((const struct mref *)b)->m;
    int c = strcmp(x->namespace_, y->namespace_);
    if (c)
        return c;
    c = strcmp(x->name ? x->name : "", y->name ? y->name : "");
    if (c)
        return c;
    return x->doc_index < y->doc_index ? -1 : x->doc_index > y->doc_index;
}

static void check_dups(struct mg_diags *d, const char *kind, const void *arr, size_t n,
                       size_t stride)
{
    struct mref *r;

    if (n < 2)
        return;
    r = mg_xmalloc(n * sizeof(*r));
    for (size_t i = 0; i < n; i++)
        r[i].m = (const struct mg_meta *)((const char *)arr + i * stride);   /* meta is first */
    qsort(r, n, sizeof(*r), mref_cmp);
    for (size_t i = 1; i < n; i++) {
        const struct mg_meta *a = r[i - 1].m, *b = r[i].m;
        if (a->name && b->name && strcmp(a->name, b->name) == 0 &&
            strcmp(a->namespace_, b->namespace_) == 0)
            mg_error(d, b->pos, "duplicate %s \"%s/%s\" (first defined at %s:%d)", kind,
                     b->namespace_, b->name, a->pos.file, a->pos.line);
    }
    free(r);
}

struct sref {
    const struct mg_credential *s;
    size_t idx;
};

static int sref_cmp(const void *a, const void *b)
{
    const struct sref *x = a, *y = b;
    int c = strcmp(x->s->namespace_, y->s->namespace_);
    if (c)
        return c;
    c = strcmp(x->s->name ? x->s->name : "", y->s->name ? y->s->name : "");
    if (c)
        return c;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static void check_secret_dups(struct mg_diags *d, const struct mg_config *c)
{
    struct sref *r;

    if (c->n_secrets < 2)
        return;
    r = mg_xmalloc(c->n_secrets * sizeof(*r));
    for (size_t i = 0; i < c->n_secrets; i++) {
        r[i].s = &c->secrets[i];
        r[i].idx = i;
    }
    qsort(r, c->n_secrets, sizeof(*r), sref_cmp);
    for (size_t i = 1; i < c->n_secrets; i++) {
        const struct mg_credential *a = r[i - 1].s, *b = r[i].s;
        if (a->name && b->name && strcmp(a->name, b->name) == 0 &&
            strcmp(a->namespace_, b->namespace_) == 0)
            mg_error(d, b->pos, "duplicate Secret \"%s/%s\" (first defined at %s:%d)",
                     b->namespace_, b->name, a->pos.file, a->pos.line);
    }
    free(r);
}

#define DUPS(d, kind, arr, n) check_dups((d), (kind), (arr), (n), sizeof(*(arr)))

static void finish(struct mg_config *c, struct mg_diags *d)
{
    struct mg_mesh_config *m = &c->mesh;
    struct mg_proxy *p = &c->proxy;

    DUPS(d, "AuthorizationPolicy", c->authz_policies, c->n_authz_policies);
    DUPS(d, "PeerAuthentication", c->peer_authns, c->n_peer_authns);
    DUPS(d, "RequestAuthentication", c->request_authns, c->n_request_authns);
    DUPS(d, "Gateway", c->gateways, c->n_gateways);
    DUPS(d, "VirtualService", c->virtual_services, c->n_virtual_services);
    DUPS(d, "DestinationRule", c->destination_rules, c->n_destination_rules);
    DUPS(d, "ServiceEntry", c->service_entries, c->n_service_entries);
    check_secret_dups(d, c);
    mg_cfg_resolve_delegates(c, d);

    for (size_t i = 0; p->present && p->jwt_require_https && i < c->n_request_authns; i++)
        for (size_t j = 0; j < c->request_authns[i].n_rules; j++) {
            const struct mg_jwt_rule *jr = &c->request_authns[i].rules[j];
            if (jr->jwks_uri && mg_has_prefix(jr->jwks_uri, "http://") &&
                !mg_cfg_jwks_uri_local_http(jr->jwks_uri))
                mg_error(d, jr->pos, "jwksUri \"%s\" must be https:// (Proxy.spec.jwt."
                         "requireHttps; http:// only for 127.0.0.1 or localhost)", jr->jwks_uri);
        }
    if (!m->trust_domain || !*m->trust_domain) {
        free(m->trust_domain);
        m->trust_domain = mg_xstrdup("cluster.local");
    }
    for (char *s = m->trust_domain; *s; s++)
        if (*s == '@')
            *s = '.';
    for (size_t i = 0; i < m->trust_domain_aliases.n; i++)
        for (char *s = m->trust_domain_aliases.v[i]; *s; s++)
            if (*s == '@')
                *s = '.';
    if (!m->root_namespace || !*m->root_namespace) {
        free(m->root_namespace);
        m->root_namespace = mg_xstrdup("istio-system");
    }
    if (!m->ca_certificates)
        m->ca_certificates = mg_xstrdup("/etc/ssl/certs/ca-certificates.crt");
    if (p->present) {
        if (!p->service_account)
            p->service_account = mg_xstrdup("default");
        if (!p->bind_address)
            p->bind_address = mg_xstrdup("0.0.0.0");
        if (!p->admin)
            p->admin = mg_xstrdup("127.0.0.1:15000");
    }
}

static void init_config(struct mg_config *c, const char *source)
{
    struct mg_proxy *p = &c->proxy;

    c->source = mg_xstrdup(source);
    c->mesh.outbound_mode = MG_OUTBOUND_ALLOW_ANY;
    c->mesh.enable_auto_mtls = true;    /* Istio's default */
    c->mesh.path_normalization = MG_NORM_BASE;
    c->mesh.access_log_encoding = MG_LOG_TEXT;
    p->timeout_handshake_ms = 10000;
    p->timeout_request_headers_ms = 30000;
    p->timeout_idle_ms = 300000;
    p->timeout_drain_ms = 30000;
    p->timeout_drain_delay_ms = 5000;   /* Istio's terminationDrainDuration */
    p->max_request_headers_kb = 60;
    p->max_concurrent_streams = 100;
}

static void load_text(struct loader *L, const char *file, const char *data, size_t len)
{
    struct mg_ydocs docs = { 0 };

    mg_yaml_parse(file, data, len, L->x.d, &docs);
    for (size_t i = 0; i < docs.n; i++)
        read_doc(L, docs.v[i].root, false);
    mg_yaml_free(&docs);
}

static struct mg_config *conclude(struct loader *L, size_t errors0)
{
    if (L->n_no_ns)
        mg_warning(L->x.d, L->first_no_ns, "%zu document%s without metadata.namespace land%s in "
                   "namespace \"default\" (as kubectl apply without -n); meshgate check/run "
                   "-n NAMESPACE sets it", L->n_no_ns, L->n_no_ns == 1 ? "" : "s",
                   L->n_no_ns == 1 ? "s" : "");
    finish(L->x.c, L->x.d);
    if (L->x.d->errors > errors0) {
        mg_config_free(L->x.c);
        return NULL;
    }
    return L->x.c;
}

struct mg_config *mg_config_load_buffer(const char *name, const char *data, size_t len,
                                        struct mg_diags *d)
{
    struct loader L;
    size_t errors0 = d->errors;
    char *dir = NULL;
    const char *slash;

    memset(&L, 0, sizeof(L));
    if (!name)
        name = "<buffer>";
    if ((slash = strrchr(name, '/')))
        dir = mg_xstrndup(name, slash == name ? 1 : (size_t)(slash - name));
    L.x.d = d;
    L.x.c = mg_xcalloc(1, sizeof(*L.x.c));
    L.x.dir = dir;
    init_config(L.x.c, name);
    load_text(&L, name, data, len);
    free(dir);
    return conclude(&L, errors0);
}

static int yaml_name(const struct dirent *e)
{
    return e->d_name[0] != '.' && (mg_has_suffix(e->d_name, ".yaml") ||
                                   mg_has_suffix(e->d_name, ".yml"));
}

static int name_sort(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

static void load_file(struct loader *L, const char *path)
{
    struct mg_pos pos = { mg_intern(path), 0, 0 };
    char dirbuf[PATH_MAX], *slash, *data;
    const char *dir = ".";
    size_t len;
    char *tmp = mg_xstrdup(path);

    if ((slash = strrchr(tmp, '/'))) {
        if (slash == tmp)
            slash[1] = '\0';
        else
            *slash = '\0';
        dir = tmp;
    }
    /* absolute, so a later chdir (daemon) cannot change what paths mean */
    L->x.dir = realpath(dir, dirbuf) ? dirbuf : dir;
    data = mg_read_file(path, MG_YAML_MAX_INPUT, &len);
    if (!data) {
        if (errno == EFBIG)
            mg_error(L->x.d, pos, "file is larger than the limit of %u bytes", MG_YAML_MAX_INPUT);
        else
            mg_error(L->x.d, pos, "cannot read configuration: %s", strerror(errno));
    } else {
        load_text(L, path, data, len);
        free(data);
    }
    L->x.dir = NULL;
    free(tmp);
}

bool mg_config_namespace_ok(const char *ns)
{
    return mg_cfg_dns_label_ok(ns, strlen(ns));
}

struct mg_config *mg_config_load(const char *path, struct mg_diags *d)
{
    return mg_config_load_ns(path, NULL, d);
}

struct mg_config *mg_config_load_ns(const char *path, const char *ns, struct mg_diags *d)
{
    struct loader L;
    size_t errors0 = d->errors;
    struct stat st;
    struct mg_pos pos = { mg_intern(path), 0, 0 };

    memset(&L, 0, sizeof(L));
    L.default_ns = ns;
    L.x.d = d;
    L.x.c = mg_xcalloc(1, sizeof(*L.x.c));
    init_config(L.x.c, path);
    if (stat(path, &st) < 0) {
        mg_error(d, pos, "cannot read configuration: %s", strerror(errno));
    } else if (S_ISDIR(st.st_mode)) {
        struct dirent **list;
        int n = scandir(path, &list, yaml_name, name_sort);
        if (n < 0) {
            mg_error(d, pos, "cannot read directory: %s", strerror(errno));
        } else {
            if (n == 0)
                mg_warning(d, pos, "no *.yaml or *.yml files in this directory");
            for (int i = 0; i < n; i++) {
                char *f = mg_xasprintf("%s/%s", path, list[i]->d_name);
                struct stat fst;
                if (stat(f, &fst) == 0 && S_ISREG(fst.st_mode))
                    load_file(&L, f);
                free(f);
                free(list[i]);
            }
            free(list);
        }
    } else {
        load_file(&L, path);
    }
    return conclude(&L, errors0);
}

/* ---- lookups ---- */

const char *mg_kvlist_get(const struct mg_kvlist *l, const char *key)
{
    if (!l)
        return NULL;
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->v[i].key, key) == 0)
            return l->v[i].value;
    return NULL;
}

bool mg_service_entry_visible(const struct mg_config *c, const struct mg_service_entry *se)
{
    if (se->export_to.n == 0)
        return true;
    const char *ns = c->proxy.meta.namespace_ ? c->proxy.meta.namespace_ : "default";
    const char *own = se->meta.namespace_ ? se->meta.namespace_ : "default";
    for (size_t i = 0; i < se->export_to.n; i++) {
        const char *x = se->export_to.v[i];
        if (strcmp(x, "*") == 0 || (strcmp(x, ".") == 0 && strcmp(own, ns) == 0) ||
            strcmp(x, ns) == 0)
            return true;
    }
    return false;
}

bool mg_selector_matches(const struct mg_kvlist *match_labels, const struct mg_kvlist *labels)
{
    if (!match_labels)
        return true;
    for (size_t i = 0; i < match_labels->n; i++) {
        const char *v = mg_kvlist_get(labels, match_labels->v[i].key);
        if (!v || strcmp(v, match_labels->v[i].value) != 0)
            return false;
    }
    return true;
}

const struct mg_credential *mg_config_credential(const struct mg_config *c, const char *name)
{
    const char *ns = c->proxy.present ? c->proxy.meta.namespace_ : NULL;

    if (!name)
        return NULL;
    for (size_t i = 0; i < c->proxy.n_credentials; i++)
        if (strcmp(c->proxy.credentials[i].name, name) == 0)
            return &c->proxy.credentials[i];
    for (int pass = 0; pass < 2; pass++)
        for (size_t i = 0; i < c->n_secrets; i++) {
            const struct mg_credential *s = &c->secrets[i];
            if (s->name && strcmp(s->name, name) == 0 &&
                (pass == 1 || (ns && strcmp(s->namespace_, ns) == 0)))
                return s;
        }
    return NULL;
}

char *mg_config_spiffe_id(const struct mg_config *c)
{
    const char *td = c->mesh.trust_domain ? c->mesh.trust_domain : "cluster.local";
    const char *ns = c->proxy.present && c->proxy.meta.namespace_ ? c->proxy.meta.namespace_
                                                                  : "default";
    const char *sa = c->proxy.service_account ? c->proxy.service_account : "default";
    return mg_xasprintf("spiffe://%s/ns/%s/sa/%s", td, ns, sa);
}

const char *mg_mtls_mode_name(enum mg_mtls_mode m)
{
    switch (m) {
    case MG_MTLS_UNSET: return "UNSET";
    case MG_MTLS_DISABLE: return "DISABLE";
    case MG_MTLS_PERMISSIVE: return "PERMISSIVE";
    case MG_MTLS_STRICT: return "STRICT";
    }
    return "UNSET";
}

const char *mg_tls_mode_name(enum mg_tls_mode m)
{
    return (unsigned)m < MG_ARRAY_LEN(mg_cfg_server_tls_modes) ? mg_cfg_server_tls_modes[m] : "?";
}

const char *mg_app_proto_name(enum mg_app_proto p)
{
    switch (p) {
    case MG_PROTO_UNSET: return "UNSET";
    case MG_PROTO_HTTP: return "HTTP";
    case MG_PROTO_HTTPS: return "HTTPS";
    case MG_PROTO_HTTP2: return "HTTP2";
    case MG_PROTO_GRPC: return "GRPC";
    case MG_PROTO_GRPC_WEB: return "GRPC-WEB";
    case MG_PROTO_TCP: return "TCP";
    case MG_PROTO_TLS: return "TLS";
    case MG_PROTO_MONGO: return "MONGO";
    }
    return "UNSET";
}
