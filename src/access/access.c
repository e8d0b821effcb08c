/* access.c - the access phase: request attributes for the policy module,
 * the decision, ext_authz for CUSTOM, and what the refusal looks like.
 *
 * Order (Envoy's filter chain as Istio builds it: jwt_authn, ext_authz,
 * RBAC): request authentication would run first,
 * then CUSTOM (ext_authz) before the RBAC DENY/ALLOW verdict that
 * mg_authz_decide() has already computed as if the provider allowed. So a
 * request that both the provider and a DENY policy refuse gets the
 * provider's answer, as with Envoy's filter chain. */
#include "access/access.h"
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "net/types.h"
#include "access/internal.h"
#include "sidecar/types.h"
#include "policy/policy.h"
#include "http/types.h"
#include "snapshot/snapshot.h"
#include "upstream/upstream.h"

struct mg_access {
    struct mg_policy_set *ps;
    const struct mg_config *cfg;
    struct mg_cluster **prov_cl;        /* [cfg->mesh.n_ext_providers], NULL = unusable */
    size_t n_prov;
    struct mg_reqauthn *ra;             /* RequestAuthentication rules */
    size_t n_ra_rules;
    struct mg_ra_keys keys;             /* remote key sets (the process JWKS store) */
    bool has_keys;
    void (*keys_dump)(void *ctx, struct mg_buf *out);   /* for /config_dump */
    void *keys_dump_ctx;
    bool dry_deny;                      /* the config has a dry-run DENY policy */
};

/* The per-request state of a pending CUSTOM check (request arena). */
struct mg_access_pending {
    struct mg_extauthz_call *call;
    struct mg_authz_result res;
};

/* ---- metrics (process-wide: they outlive snapshots) ---- */

#define AZ_SLOTS 256

struct az_slot {
    _Atomic(const char *) name;         /* interned "ns.name" */
    atomic_ulong n;
};

static struct az_slot az_denied[AZ_SLOTS];
static atomic_ulong az_denied_default, az_denied_overflow, az_allowed;
static atomic_ulong ext_allow, ext_deny, ext_error, ext_fail_open;
static atomic_ulong dr_allow_allowed, dr_allow_denied, dr_deny_allowed, dr_deny_denied;
static atomic_ulong jwt_ok, jwt_none, jwt_401, jwt_403;
/* meshgate_jwt_failures_total{reason}: why a token was refused */
static atomic_ulong jwt_fail[MG_JWKS_FETCH_FAIL + 1];
static const char *const jwt_fail_names[MG_JWKS_FETCH_FAIL + 1] = {
    [MG_JWT_OK] = "ok", [MG_JWT_MISSING] = "missing", [MG_JWT_NOT_YET_VALID] = "not_yet_valid",
    [MG_JWT_EXPIRED] = "expired", [MG_JWT_BAD_FORMAT] = "bad_format",
    [MG_JWT_HEADER_BAD_BASE64] = "header_bad_base64", [MG_JWT_HEADER_BAD_JSON] = "header_bad_json",
    [MG_JWT_HEADER_BAD_ALG] = "header_bad_alg",
    [MG_JWT_HEADER_NOT_IMPLEMENTED_ALG] = "header_not_implemented_alg",
    [MG_JWT_HEADER_BAD_KID] = "header_bad_kid", [MG_JWT_PAYLOAD_BAD_BASE64] = "payload_bad_base64",
    [MG_JWT_PAYLOAD_BAD_JSON] = "payload_bad_json", [MG_JWT_ISS_NOT_STRING] = "iss_not_string",
    [MG_JWT_SUB_NOT_STRING] = "sub_not_string", [MG_JWT_NBF_NOT_INTEGER] = "nbf_not_integer",
    [MG_JWT_EXP_NOT_INTEGER] = "exp_not_integer", [MG_JWT_IAT_NOT_INTEGER] = "iat_not_integer",
    [MG_JWT_IAT_OUT_OF_RANGE] = "iat_out_of_range", [MG_JWT_NBF_OUT_OF_RANGE] = "nbf_out_of_range",
    [MG_JWT_EXP_OUT_OF_RANGE] = "exp_out_of_range", [MG_JWT_JTI_NOT_STRING] = "jti_not_string",
    [MG_JWT_AUD_NOT_STRING] = "aud_not_string", [MG_JWT_SIGNATURE_BAD_BASE64] = "signature_bad_base64",
    [MG_JWT_ED25519_SIG_LENGTH] = "ed25519_signature_length",
    [MG_JWT_UNKNOWN_ISSUER] = "unknown_issuer", [MG_JWT_AUDIENCE_NOT_ALLOWED] = "audience_not_allowed",
    [MG_JWT_VERIFICATION_FAIL] = "verification_failed", [MG_JWT_MULTIPLE_TOKENS] = "multiple_tokens",
    [MG_JWKS_NO_VALID_KEYS] = "jwks_no_valid_keys", [MG_JWKS_KID_ALG_MISMATCH] = "jwks_kid_alg_mismatch",
    [MG_JWKS_FETCH_FAIL] = "jwks_fetch_failed",
};

static uint32_t str_hash(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 16777619u;
    return h;
}

static void count_denied(const char *policy)
{
    if (!policy) {
        atomic_fetch_add_explicit(&az_denied_default, 1, memory_order_relaxed);
        return;
    }
    uint32_t h = str_hash(policy);
    for (uint32_t i = 0; i < 32; i++) {
        struct az_slot *s = &az_denied[(h + i) % AZ_SLOTS];
        const char *cur = atomic_load_explicit(&s->name, memory_order_acquire);
        if (!cur) {
            const char *mine = mg_intern(policy);
            if (atomic_compare_exchange_strong(&s->name, &cur, mine))
                cur = mine;
        }
        if (strcmp(cur, policy) == 0) {
            atomic_fetch_add_explicit(&s->n, 1, memory_order_relaxed);
            return;
        }
    }
    atomic_fetch_add_explicit(&az_denied_overflow, 1, memory_order_relaxed);
}

#define LOAD(x) ((unsigned long)atomic_load_explicit(&(x), memory_order_relaxed))

void mg_access_metrics_render(struct mg_buf *out)
{
    mg_buf_adds(out, "# TYPE meshgate_authz_denied_total counter\n");
    for (size_t i = 0; i < AZ_SLOTS; i++) {
        const char *n = atomic_load_explicit(&az_denied[i].name, memory_order_acquire);
        if (!n)
            continue;
        mg_buf_adds(out, "meshgate_authz_denied_total{policy=\"");
        mg_buf_prom_label(out, n);
        mg_buf_printf(out, "\"} %lu\n", LOAD(az_denied[i].n));
    }
    mg_buf_printf(out, "meshgate_authz_denied_total{policy=\"\"} %lu\n"
                  "# TYPE meshgate_authz_allowed_total counter\nmeshgate_authz_allowed_total %lu\n"
                  "# TYPE meshgate_authz_stats_overflow_total counter\n"
                  "meshgate_authz_stats_overflow_total %lu\n"
                  "# TYPE meshgate_ext_authz_total counter\n"
                  "meshgate_ext_authz_total{result=\"allow\"} %lu\n"
                  "meshgate_ext_authz_total{result=\"deny\"} %lu\n"
                  "meshgate_ext_authz_total{result=\"error\"} %lu\n"
                  "meshgate_ext_authz_total{result=\"fail_open\"} %lu\n"
                  "# TYPE istio_dry_run_allow_shadow_allowed counter\n"
                  "istio_dry_run_allow_shadow_allowed %lu\n"
                  "# TYPE istio_dry_run_allow_shadow_denied counter\n"
                  "istio_dry_run_allow_shadow_denied %lu\n"
                  "# TYPE istio_dry_run_deny_shadow_allowed counter\n"
                  "istio_dry_run_deny_shadow_allowed %lu\n"
                  "# TYPE istio_dry_run_deny_shadow_denied counter\n"
                  "istio_dry_run_deny_shadow_denied %lu\n"
                  "# TYPE meshgate_jwt_total counter\n"
                  "meshgate_jwt_total{result=\"valid\"} %lu\n"
                  "meshgate_jwt_total{result=\"missing\"} %lu\n"
                  "meshgate_jwt_total{result=\"denied_401\"} %lu\n"
                  "meshgate_jwt_total{result=\"denied_403\"} %lu\n",
                  LOAD(az_denied_default), LOAD(az_allowed), LOAD(az_denied_overflow),
                  LOAD(ext_allow), LOAD(ext_deny), LOAD(ext_error), LOAD(ext_fail_open),
                  LOAD(dr_allow_allowed), LOAD(dr_allow_denied), LOAD(dr_deny_allowed),
                  LOAD(dr_deny_denied), LOAD(jwt_ok), LOAD(jwt_none), LOAD(jwt_401), LOAD(jwt_403));
    mg_buf_adds(out, "# TYPE meshgate_jwt_failures_total counter\n");
    for (size_t i = 1; i <= MG_JWKS_FETCH_FAIL; i++)
        if (LOAD(jwt_fail[i]))          /* the reasons seen (30 zero lines say nothing) */
            mg_buf_printf(out, "meshgate_jwt_failures_total{reason=\"%s\"} %lu\n", jwt_fail_names[i],
                          LOAD(jwt_fail[i]));
}

/* ---- build ---- */

struct mg_access *mg_access_build(const struct mg_snapshot *s, struct mg_diags *d)
{
    const struct mg_config *cfg = s->cfg;
    struct mg_access *a = mg_xcalloc(1, sizeof(*a));
    a->cfg = cfg;
    struct mg_workload w;
    mg_workload_from_proxy(&cfg->proxy, &w);
    a->ps = mg_policy_compile(cfg, &w, d);
    a->ra = mg_reqauthn_compile(cfg, d);
    a->n_ra_rules = mg_reqauthn_n_rules(a->ra);
    for (size_t i = 0; i < cfg->n_authz_policies; i++)
        if (cfg->authz_policies[i].dry_run && cfg->authz_policies[i].action == MG_ACTION_DENY)
            a->dry_deny = true;
    a->n_prov = cfg->mesh.n_ext_providers;
    a->prov_cl = a->n_prov ? mg_xcalloc(a->n_prov, sizeof(*a->prov_cl)) : NULL;
    for (size_t i = 0; i < a->n_prov; i++) {
        const struct mg_ext_provider *p = &cfg->mesh.ext_providers[i];
        if (p->type != MG_EXT_HTTP) {
            mg_warning(d, p->pos, "extension provider '%s': envoyExtAuthzGrpc is not supported by "
                       "this build; CUSTOM rules using it deny (fail closed)", p->name);
            continue;
        }
        if (!p->service || !p->port) {
            mg_warning(d, p->pos, "extension provider '%s': needs service and port; CUSTOM rules "
                       "using it deny", p->name);
            continue;
        }
        /* Istio's service is "[namespace/]host" */
        const char *slash = strchr(p->service, '/');
        struct mg_destination dst = { 0 };
        dst.host = (char *)(slash ? slash + 1 : p->service);
        dst.port = p->port;
        dst.pos = p->pos;
        struct mg_cluster *cl = mg_cluster_build(cfg, &dst, s->n_workers, d);
        if (cl && cl->tls) {
            mg_warning(d, p->pos, "extension provider '%s': TLS to the provider is not supported; "
                       "CUSTOM rules using it deny", p->name);
            mg_cluster_free(cl);
            cl = NULL;
        }
        a->prov_cl[i] = cl;
    }
    return a;
}

void mg_access_free(struct mg_access *a)
{
    if (!a)
        return;
    for (size_t i = 0; i < a->n_prov; i++)
        if (a->prov_cl[i])
            mg_cluster_free(a->prov_cl[i]);
    free(a->prov_cl);
    mg_reqauthn_free(a->ra);
    mg_policy_set_free(a->ps);
    free(a);
}

void mg_access_use_keys(struct mg_access *a, struct mg_ra_keys keys,
                        void (*dump)(void *ctx, struct mg_buf *out), void *dump_ctx)
{
    if (!a)
        return;
    a->keys = keys;
    a->has_keys = true;
    a->keys_dump = dump;
    a->keys_dump_ctx = dump_ctx;
}

const struct mg_reqauthn *mg_access_reqauthn(const struct mg_access *a)
{
    return a ? a->ra : NULL;
}

const struct mg_policy_set *mg_access_policies(const struct mg_access *a)
{
    return a->ps;
}

void mg_access_dump(struct mg_buf *out, const struct mg_snapshot *s)
{
    const struct mg_access *a = s->access;
    if (!a) {
        mg_buf_adds(out, "\"authz_policies\":0");   /* keeps the caller's JSON valid */
        return;
    }
    /* sidecar inbound ports enforce it (inbound.c), keyed by the workload port */
    bool sidecar = s->inbound != NULL;
    mg_buf_printf(out, "\"peer_authentication\":{\"enforced\":%s,\"note\":\"%s\",\"ports\":[",
                  sidecar ? "true" : "false",
                  sidecar ? "sidecar inbound ports: PeerAuthentication decides mTLS (see inbound)"
                          : "gateway servers: the server TLS mode decides mTLS");
    for (size_t i = 0; i < s->n_ports; i++) {
        const struct mg_inbound_port *ip = s->ports[i].inbound;
        uint16_t port = ip ? ip->workload_port : s->ports[i].number;
        mg_buf_printf(out, "%s{\"port\":%u,\"mode\":\"%s\"}", i ? "," : "", port,
                      mg_mtls_mode_name(mg_peer_authn_mode(a->ps, port)));
    }
    mg_buf_printf(out, "]},\"authz_policies\":%zu,\"jwt_rules\":%zu", mg_policy_set_count(a->ps),
                  a->n_ra_rules);
    if (a->keys_dump) {
        mg_buf_adds(out, ",\"jwks\":");
        a->keys_dump(a->keys_dump_ctx, out);
    }
}

/* ---- attributes ---- */

/* The request headers in the policy's form (request arena). */
static struct mg_header *policy_headers(struct mg_request *r)
{
    struct mg_header *h = mg_arena_alloc(&r->arena, (r->n_h ? r->n_h : 1) * sizeof(*h));
    for (size_t i = 0; i < r->n_h; i++)
        h[i] = (struct mg_header){ r->h[i].key, strlen(r->h[i].key), r->h[i].value,
                                   strlen(r->h[i].value) };
    return h;
}

/* Built after authentication: authorization sees the headers as edited and
 * the verified token's facts (ra, which must outlive the decision). */
static void build_attrs(struct mg_request *r, const struct mg_access *a,
                        const struct mg_ra_result *ra, struct mg_attrs *at)
{
    struct mg_conn *c = r->conn;
    struct mg_access_conn ac = {
        .peer = c->peer, .client = c->client, .local = c->local, .sni = c->sni[0] ? c->sni : NULL,
        /* computed once per connection by conn.c with mg_tls_peer_principal */
        .principal = c->ssl && c->principal[0] ? c->principal : NULL,
        .geoip = r->snap->geoip, .geo_cache = &c->geo,
    };
    struct mg_access_req rq = {
        .method = r->method, .authority = r->authority,
        .path = r->path, .path_len = strlen(r->path), .path_query = r->path_query,
        .scheme = c->ssl ? "https" : "http",
        .headers = policy_headers(r), .n_headers = r->n_h, .authn = ra,
    };
    mg_access_attrs(a->cfg, &ac, &rq, at);
}

static void set_header(struct mg_request *r, const char *name, const char *value);

/* The client's GeoIP, for the access log and the upstream (MeshConfig
 * geoipHeaders): what remote.geo.* read. The edge removed the client's
 * copies of these headers, so an unknown address forwards none. */
static void set_geo(struct mg_request *r, const struct mg_attrs *at)
{
    const struct mg_mesh_config *m = &r->snap->cfg->mesh;
    r->geo_done = true;
    memcpy(r->geo_country, at->remote_country, sizeof(r->geo_country));
    r->geo_asn = at->remote_asn;
    if (m->geoip_country_header && r->geo_country[0])
        set_header(r, m->geoip_country_header, mg_arena_strndup(&r->arena, r->geo_country, 2));
    if (m->geoip_asn_header && r->geo_asn)
        set_header(r, m->geoip_asn_header, mg_arena_printf(&r->arena, "%u", (unsigned)r->geo_asn));
}

/* ---- decision ---- */

static void note_match(struct mg_request *r, const struct mg_authz_match *m)
{
    r->authz_policy = m->policy;
    r->authz_rule = m->policy ? m->rule : -1;
}

/* The RBAC part (DENY/ALLOW), after CUSTOM allowed or did not apply. */
static enum mg_access_rc rbac_verdict(struct mg_request *r, const struct mg_authz_result *res)
{
    note_match(r, &res->decided_by);
    if (res->decision == MG_AUTHZ_DENY) {
        count_denied(res->decided_by.policy);
        mg_request_reply(r, 403, "RBAC: access denied", "rbac_policy", false);
        return MG_ACCESS_ANSWERED;
    }
    atomic_fetch_add_explicit(&az_allowed, 1, memory_order_relaxed);
    return MG_ACCESS_CONTINUE;
}

/* Set (overwrite) a request header, as Envoy applies ext_authz headers. */
static void set_header(struct mg_request *r, const char *name, const char *value)
{
    struct mg_kv *nh = mg_arena_alloc(&r->arena, (r->n_h + 1) * sizeof(*nh));
    size_t o = 0;
    for (size_t i = 0; i < r->n_h; i++)
        if (strcmp(r->h[i].key, name) != 0)
            nh[o++] = r->h[i];
    memset(&nh[o], 0, sizeof(nh[o]));
    nh[o].key = (char *)name;
    nh[o++].value = (char *)value;
    r->h = nh;
    r->n_h = o;
}

static void check_done(struct mg_request *r, const struct mg_extauthz_result *x);

/* Runs from the ext_authz connection's callback, outside every callback of
 * the downstream connection: hold it so a reply that closes it cannot free
 * it under our feet. */
static void on_check(struct mg_request *r, const struct mg_extauthz_result *x)
{
    struct mg_conn *c = r->conn;
    mg_conn_ref(c);
    check_done(r, x);
    mg_conn_unref(c);
}

static void check_done(struct mg_request *r, const struct mg_extauthz_result *x)
{
    struct mg_access_pending *pd = r->access;
    pd->call = NULL;
    const struct mg_ext_provider *p = pd->res.provider;
    r->authz_policy = pd->res.custom_match.policy;
    r->authz_rule = pd->res.custom_match.rule;
    if (x->verdict == MG_EXTAUTHZ_ERROR) {
        if (!p->fail_open) {
            atomic_fetch_add_explicit(&ext_error, 1, memory_order_relaxed);
            r->authz_detail = x->error;
            mg_request_reply(r, p->status_on_error ? p->status_on_error : 403, "",
                             "ext_authz_error", false);
            return;
        }
        atomic_fetch_add_explicit(&ext_fail_open, 1, memory_order_relaxed);
        r->authz_detail = x->error;
    } else if (x->verdict == MG_EXTAUTHZ_DENY) {
        atomic_fetch_add_explicit(&ext_deny, 1, memory_order_relaxed);
        for (size_t i = 0; i < x->n_headers && r->n_local_h < MG_REQ_MAX_LOCAL_H; i++)
            r->local_h[r->n_local_h++] = x->headers[i];
        mg_request_reply(r, x->status, x->body ? x->body : "", "ext_authz_denied", false);
        return;
    } else {
        atomic_fetch_add_explicit(&ext_allow, 1, memory_order_relaxed);
        for (size_t i = 0; i < x->n_headers; i++)
            set_header(r, x->headers[i].key, x->headers[i].value);
    }
    if (rbac_verdict(r, &pd->res) == MG_ACCESS_CONTINUE)
        mg_request_resume(r);
}

/* Shadow counters as Envoy keeps them for shadow (dry-run) rules: only
 * where such rules exist, so a config without them adds nothing. */
static void count_dry_run(const struct mg_access *a, const struct mg_authz_result *res,
                          struct mg_request *r)
{
    if (res->dry_run_deny) {
        atomic_fetch_add_explicit(&dr_deny_denied, 1, memory_order_relaxed);
        r->authz_dry_run = res->dry_run_deny_match.policy;
        r->authz_dry_run_result = "deny";
    } else if (a->dry_deny) {
        atomic_fetch_add_explicit(&dr_deny_allowed, 1, memory_order_relaxed);
    }
    if (res->dry_run_allow == 1) {
        atomic_fetch_add_explicit(&dr_allow_allowed, 1, memory_order_relaxed);
    } else if (res->dry_run_allow == 0) {
        atomic_fetch_add_explicit(&dr_allow_denied, 1, memory_order_relaxed);
        if (!r->authz_dry_run_result)
            r->authz_dry_run_result = "deny";
    }
}

/* Request authentication (RequestAuthentication, as Envoy's jwt_authn), before authorization:
 * mg_access_authenticate() (authn.c, also run by `meshgate authz`) on the
 * request's headers, then what only the live request has: the edited headers
 * become r->h, a refusal is answered, the outcome counted and logged.
 * Returns false when the request was answered (401/403). On success *res
 * keeps the verified token's facts for the attributes (the caller frees it
 * after the decision). */
static bool authenticate(struct mg_request *r, const struct mg_access *a, struct mg_ra_result *res)
{
    struct mg_header *h = policy_headers(r);
    const char *pq = r->path_query;
    struct mg_ra_request q = {
        .method = r->method, .scheme = r->conn->ssl ? "https" : "http",
        .authority = r->authority, .path = pq, .path_len = strlen(pq),
        .headers = h, .n_headers = r->n_h,
    };
    struct mg_access_authn an;
    mg_access_authenticate(a->ra, a->has_keys ? &a->keys : NULL, r->conn->w->jwt_cache,
                           mg_wall_s(), &q, &r->arena, &an);
    *res = an.res;
    if (an.headers != h) {
        /* the client's output headers dropped, the token removed, claims set:
         * what the access log and the upstream see (names and values are
         * r->h's strings, the compiled rules' names or arena copies) */
        struct mg_kv *nh = mg_arena_zalloc(&r->arena, (an.n_headers + 1) * sizeof(*nh));
        for (size_t i = 0; i < an.n_headers; i++) {
            nh[i].key = (char *)an.headers[i].name;
            nh[i].value = (char *)an.headers[i].value;
        }
        r->h = nh;
        r->n_h = an.n_headers;
    }
    if (res->status == MG_RA_DENY_401 || res->status == MG_RA_DENY_403) {
        r->authz_detail = res->body;    /* a static string (mg_jwt_error_str) */
        if (res->status == MG_RA_DENY_401 && res->www_authenticate &&
            r->n_local_h < MG_REQ_MAX_LOCAL_H) {
            r->local_h[r->n_local_h].key = "www-authenticate";
            r->local_h[r->n_local_h++].value =
                mg_arena_strndup(&r->arena, res->www_authenticate, strlen(res->www_authenticate));
        }
        atomic_fetch_add_explicit(res->status == MG_RA_DENY_401 ? &jwt_401 : &jwt_403, 1,
                                  memory_order_relaxed);
        if ((unsigned)res->error <= MG_JWKS_FETCH_FAIL)
            atomic_fetch_add_explicit(&jwt_fail[res->error], 1, memory_order_relaxed);
        mg_request_reply(r, res->http_status, res->body ? res->body : "", "jwt_error", false);
        return false;
    }
    if (res->status != MG_RA_PASS_PRINCIPAL) {
        atomic_fetch_add_explicit(&jwt_none, 1, memory_order_relaxed);
        return true;
    }
    atomic_fetch_add_explicit(&jwt_ok, 1, memory_order_relaxed);
    r->authz_principal = mg_arena_strndup(&r->arena, res->principal, strlen(res->principal));
    if (res->new_path) {
        const char *qm = strchr(res->new_path, '?');
        r->query = qm ? mg_arena_strndup(&r->arena, qm + 1, strlen(qm + 1)) : NULL;
        r->path_query = mg_arena_printf(&r->arena, "%s%s%s", r->path, qm ? "?" : "", qm ? qm + 1 : "");
    }
    return true;
}

static void authn_release(struct mg_request *r)
{
    if (r->authn)
        mg_ra_result_free(r->authn);
    r->authn = NULL;
}

int mg_access_authenticate_early(struct mg_request *r)
{
    const struct mg_access *a = r->snap->access;
    if (!a || !a->n_ra_rules || r->authn)
        return 0;
    /* On the stack until it passes: a refusal answers the request, and an
     * HTTP/1.1 answer ends it at once, arena included */
    struct mg_ra_result own;
    memset(&own, 0, sizeof(own));
    if (!authenticate(r, a, &own)) {
        mg_ra_result_free(&own);
        return -1;
    }
    struct mg_ra_result *ra = mg_arena_zalloc(&r->arena, sizeof(*ra));
    *ra = own;                          /* no pointer into itself: a plain move */
    r->authn = ra;
    mg_request_on_release(r, authn_release);
    return 0;
}

const struct json_t *mg_access_claims(const struct mg_request *r)
{
    return r->authn && r->authn->status == MG_RA_PASS_PRINCIPAL
           ? (const struct json_t *)r->authn->jwt.payload : NULL;
}

enum mg_access_rc mg_access_run(struct mg_request *r)
{
    const struct mg_access *a = r->snap->access;
    if (!a)
        return MG_ACCESS_CONTINUE;
    struct mg_ra_result own, *ra = r->authn ? r->authn : &own;
    memset(&own, 0, sizeof(own));
    if (!r->authn && a->n_ra_rules && !authenticate(r, a, &own)) {
        mg_ra_result_free(&own);
        return MG_ACCESS_ANSWERED;
    }
    struct mg_attrs at;
    build_attrs(r, a, ra, &at);
    if (r->snap->geoip)
        set_geo(r, &at);
    struct mg_authz_result res;
    mg_authz_decide(a->ps, &at, &res);
    mg_ra_result_free(&own);
    if (res.audit)
        r->authz_audit = res.audit_match.policy;
    count_dry_run(a, &res, r);
    if (!res.custom)
        return rbac_verdict(r, &res);
    /* CUSTOM matched: ask the provider first */
    struct mg_cluster *cl = NULL;
    for (size_t i = 0; i < a->n_prov; i++)
        if (&a->cfg->mesh.ext_providers[i] == res.provider)
            cl = a->prov_cl[i];
    if (!res.provider || !cl) {
        /* unusable provider (gRPC, TLS, unknown service): fail closed */
        r->authz_policy = res.custom_match.policy;
        r->authz_rule = res.custom_match.rule;
        atomic_fetch_add_explicit(&ext_error, 1, memory_order_relaxed);
        r->authz_detail = "ext_authz provider unusable";
        int st = res.provider && res.provider->status_on_error ? res.provider->status_on_error : 403;
        mg_request_reply(r, st, "", "ext_authz_error", false);
        return MG_ACCESS_ANSWERED;
    }
    struct mg_access_pending *pd = mg_arena_alloc(&r->arena, sizeof(*pd));
    memset(pd, 0, sizeof(*pd));
    pd->res = res;
    r->access = pd;
    mg_request_on_release(r, mg_access_release);
    pd->call = mg_extauthz_start(r, res.provider, cl, on_check);
    return MG_ACCESS_PENDING;
}

void mg_access_release(struct mg_request *r)
{
    struct mg_access_pending *pd = r->access;
    if (pd && pd->call) {
        mg_extauthz_cancel(pd->call);
        pd->call = NULL;
    }
    r->access = NULL;
}
