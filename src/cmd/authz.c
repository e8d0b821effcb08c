/* explain.c - `meshgate authz`: one offline decision, explained.
 *
 * Runs the data plane's access phase offline, in its order: path
 * normalization (400), request authentication of a real token with the
 * data plane's own step, mg_access_authenticate (401/403; the key sets and
 * the explanation in authz_authn.c), then the struct mg_attrs
 * built by the data plane's own builder, mg_access_attrs() (addresses,
 * headers as edited by authentication, the verified JWT or --claims), goes
 * to mg_authz_explain(), the evaluation behind mg_authz_decide(). Exit 0
 * allow, 1 deny, 2 usage or configuration error, 3 authentication failed
 * (401). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <jansson.h>
#include "cmd/cmd.h"
#include "base/base.h"
#include "config/config.h"
#include "access/access.h"
#include "egress/egress.h"
#include "cmd/internal.h"
#include "route/route.h"
#include "policy/policy.h"
#include "geoip/geoip.h"
#include "control/control.h"
#include "snapshot/snapshot.h"
#include "l4/l4.h"

#define MAX_HEADERS 128
#define MAX_LABELS 64
#define MAX_AUD 64
#define MAX_SDC 64

static void usage(FILE *out)
{
    fputs("usage: meshgate authz -c PATH [options]\n"
          "  --method M              request method (default GET)\n"
          "  --url URL               https://host[:port]/path?q or /path\n"
          "  --host H                authority (default from --url)\n"
          "  --header 'Name: value'  request header (repeatable)\n"
          "  --source-ip IP          direct peer address\n"
          "  --remote-ip IP          original client address (default: source ip)\n"
          "                          (both resolve through MeshConfig geoipDatabase when set)\n"
          "  --dest-ip IP            local destination address\n"
          "  --port N                destination port (default from the URL scheme, or 443)\n"
          "  --sni NAME              TLS SNI; without --url, --host, --method, --header, --token\n"
          "                          and --claims: a connection to the PASSTHROUGH server on --port\n"
          "                          (default 443): its tls route by sniHosts, the egress registry's\n"
          "                          verdict for NAME on the route's destination port, then\n"
          "                          authorization as TCP with connection.sni = NAME; on a TLS\n"
          "                          server terminated there (tcp routes): its tcp route, the\n"
          "                          registry's verdict on the route's destination host and port\n"
          "  --principal td/ns/N/sa/S        peer principal (mTLS)\n"
          "  --namespace N --service-account S   peer principal in the mesh trust domain\n"
          "  --token JWT             verify this token as the gateway does, sent as\n"
          "                          'Authorization: Bearer JWT' (a token in --header or in the\n"
          "                          URL query, e.g. ?access_token=, is verified the same way)\n"
          "  --jwks URI=FILE         key set of a remote jwksUri (or OIDC discovery URI), read from\n"
          "                          FILE (repeatable); no network I/O is done\n"
          "  --jwks FILE             key set for every remote URI without its own --jwks; without\n"
          "                          one, a remote URI has no keys: 401 'Jwks remote fetch is failed'\n"
          "  --now EPOCH             the clock for exp/nbf (seconds; default: now)\n"
          "  --claims JSON           a JWT payload taken as verified, no token checked (iss and\n"
          "                          sub give the request principal); excludes --token\n"
          "  --tcp                   TCP context (no HTTP fields)\n"
          "  --connect HOST:PORT     a CONNECT to the forward proxy: the egress registry's verdict\n"
          "                          (REGISTRY_ONLY, ServiceEntry hosts and ports), then\n"
          "                          authorization with hosts = HOST:PORT and ports = PORT;\n"
          "                          --principal and --sni as the forward proxy's TLS listener\n"
          "                          (Proxy.spec.outbound.tls) gives them, else left out\n"
          "  --workload-namespace NS --workload-labels k=v,...   evaluate for another workload\n"
          "Output: the verdict (ALLOW or DENY), the request, an 'authn:' line (no token, ok\n"
          "principal=ISS/SUB, or the 401/403 and Envoy's message), then the authorization trace.\n"
          "Exit status: 0 allowed; 1 denied (403: AuthorizationPolicy, a JWT audience not allowed,\n"
          "or 400 by path normalization); 2 usage or configuration error; 3 authentication\n"
          "failed (401: invalid, expired or unverifiable JWT).\n",
          out);
}

struct opts {
    const char *config, *method, *url, *host, *source_ip, *remote_ip, *dest_ip, *port, *sni;
    const char *principal, *ns, *sa, *claims, *wns, *wlabels, *token, *now, *connect;
    const char *headers[MAX_HEADERS];
    size_t n_headers;
    const char *jwks[MG_EXPLAIN_MAX_JWKS];
    size_t n_jwks;
    bool tcp;
};

static int parse_args(int argc, char **argv, struct opts *o)
{
    static const struct { const char *name; size_t off; } val[] = {
        {"-c", offsetof(struct opts, config)}, {"--config", offsetof(struct opts, config)},
        {"--method", offsetof(struct opts, method)}, {"--url", offsetof(struct opts, url)},
        {"--host", offsetof(struct opts, host)}, {"--source-ip", offsetof(struct opts, source_ip)},
        {"--remote-ip", offsetof(struct opts, remote_ip)}, {"--dest-ip", offsetof(struct opts, dest_ip)},
        {"--port", offsetof(struct opts, port)}, {"--sni", offsetof(struct opts, sni)},
        {"--principal", offsetof(struct opts, principal)}, {"--namespace", offsetof(struct opts, ns)},
        {"--service-account", offsetof(struct opts, sa)}, {"--claims", offsetof(struct opts, claims)},
        {"--workload-namespace", offsetof(struct opts, wns)},
        {"--workload-labels", offsetof(struct opts, wlabels)},
        {"--token", offsetof(struct opts, token)}, {"--now", offsetof(struct opts, now)},
        {"--connect", offsetof(struct opts, connect)},
    };
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool done = false;
        if (strcmp(a, "--tcp") == 0) {
            o->tcp = true;
            continue;
        }
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return 1;
        }
        if (strcmp(a, "--header") == 0 || strcmp(a, "-H") == 0) {
            if (i + 1 >= argc || o->n_headers >= MAX_HEADERS) {
                fprintf(stderr, "meshgate authz: %s needs a value (at most %d headers)\n", a, MAX_HEADERS);
                return -1;
            }
            o->headers[o->n_headers++] = argv[++i];
            continue;
        }
        if (strcmp(a, "--jwks") == 0) {
            if (i + 1 >= argc || o->n_jwks >= MG_EXPLAIN_MAX_JWKS) {
                fprintf(stderr, "meshgate authz: --jwks needs a value (at most %d)\n", MG_EXPLAIN_MAX_JWKS);
                return -1;
            }
            o->jwks[o->n_jwks++] = argv[++i];
            continue;
        }
        for (size_t k = 0; k < MG_ARRAY_LEN(val) && !done; k++) {
            if (strcmp(a, val[k].name) != 0)
                continue;
            if (i + 1 >= argc) {
                fprintf(stderr, "meshgate authz: %s needs a value\n", a);
                return -1;
            }
            *(const char **)((char *)o + val[k].off) = argv[++i];
            done = true;
        }
        if (!done) {
            fprintf(stderr, "meshgate authz: unknown option '%s'\n", a);
            return -1;
        }
    }
    if (o->token && o->claims) {
        fprintf(stderr, "meshgate authz: --token and --claims exclude each other\n");
        return -1;
    }
    if (o->token && o->tcp) {
        fprintf(stderr, "meshgate authz: --token needs an HTTP request (not --tcp)\n");
        return -1;
    }
    if (o->connect && (o->tcp || o->token || o->url || o->method || o->host)) {
        fprintf(stderr, "meshgate authz: --connect excludes --tcp, --token, --url, --method and --host\n");
        return -1;
    }
    return 0;
}

/* Split a URL into authority, port and target (allocated, "/" when the URL
 * has no path). Returns 0 or -1. */
static int parse_url(const char *url, char **authority, uint16_t *port, char **target)
{
    const char *p = url;
    char host[256];
    uint16_t hp = 0;
    *authority = NULL;
    *port = 0;
    if (url[0] == '/' || strcmp(url, "*") == 0) {
        *target = mg_xstrdup(url);
        return 0;
    }
    if (strncmp(p, "https://", 8) == 0) {
        *port = 443;
        p += 8;
    } else if (strncmp(p, "http://", 7) == 0) {
        *port = 80;
        p += 7;
    } else {
        return -1;
    }
    const char *e = p + strcspn(p, "/?#");
    if (e == p)
        return -1;
    *authority = mg_xstrndup(p, (size_t)(e - p));
    if (mg_split_host_port(*authority, host, sizeof(host), &hp) < 0) {
        free(*authority);
        *authority = NULL;
        return -1;
    }
    if (hp)
        *port = hp;
    *target = *e == '/' ? mg_xstrdup(e) : mg_xasprintf("/%s", e);
    return 0;
}

static int parse_labels(const char *s, struct mg_kv *kv, size_t *n, char **store)
{
    char *copy = mg_xstrdup(s), *save = NULL;
    *store = copy;
    *n = 0;
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(t, '=');
        if (!eq || eq == t || *n >= MAX_LABELS)
            return -1;
        *eq = 0;
        memset(&kv[*n], 0, sizeof(kv[*n]));
        kv[*n].key = t;
        kv[*n].value = eq + 1;
        (*n)++;
    }
    return 0;
}

static const char *action_name(enum mg_authz_action a)
{
    switch (a) {
    case MG_ACTION_ALLOW: return "ALLOW";
    case MG_ACTION_DENY: return "DENY";
    case MG_ACTION_AUDIT: return "AUDIT";
    case MG_ACTION_CUSTOM: return "CUSTOM";
    }
    return "?";
}

/* The request as the options describe it, in the shape the data plane
 * hands to mg_access_attrs(). */
struct request {
    struct mg_access_conn conn;
    struct mg_addr remote;      /* --remote-ip, else the --source-ip */
    const char *method, *host;
    /* the client's headers (owned names and values), then as the edge
     * leaves them (borrowed), then in the policy's form */
    struct mg_kv client[MAX_HEADERS + 1];       /* + the --token header */
    size_t n_client;
    struct mg_kv edge[MAX_HEADERS + 4];         /* + 3 set at the edge */
    struct mg_header hdr[MAX_HEADERS + 4];
    size_t n_hdr;
    char *xfcc;
    char external[64];
    const char *aud[MAX_AUD];
    const char *sdc[MAX_SDC];
    char *authority, *norm, *principal;
    size_t norm_len;            /* normalized path and query */
    size_t path_len;            /* normalized path */
    const char *scheme;
    json_t *claims;
    /* --claims as a verified token: what mg_reqauthn_attrs() reads (borrows
     * from claims, aud and sdc; never given to mg_ra_result_free) */
    struct mg_ra_result claims_res;
};

static void add_client_header(struct request *q, char *name, char *value)
{
    memset(&q->client[q->n_client], 0, sizeof(q->client[0]));
    q->client[q->n_client].key = name;
    q->client[q->n_client++].value = value;
}

static int build_headers(const struct opts *o, struct request *q)
{
    for (size_t i = 0; i < o->n_headers; i++) {
        const char *h = o->headers[i], *colon = strchr(h, ':');
        if (!colon || colon == h) {
            fprintf(stderr, "meshgate authz: --header '%s': expected 'Name: value'\n", h);
            return -1;
        }
        char *name = mg_xstrndup(h, (size_t)(colon - h));
        mg_lower(name);
        const char *v = colon + 1;
        while (*v == ' ' || *v == '\t')
            v++;
        size_t vl = strlen(v);
        while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
            vl--;
        add_client_header(q, name, mg_xstrndup(v, vl));
    }
    if (o->token) {
        for (size_t i = 0; i < q->n_client; i++)
            if (strcmp(q->client[i].key, "authorization") == 0) {
                fprintf(stderr, "meshgate authz: --token and an Authorization --header: give one\n");
                return -1;
            }
        if (!*o->token) {
            fprintf(stderr, "meshgate authz: --token: empty\n");
            return -1;
        }
        for (const char *t = o->token; *t; t++)
            if ((unsigned char)*t < 0x20 || *t == 0x7f) {
                fprintf(stderr, "meshgate authz: --token: control characters are refused (400)\n");
                return -1;
            }
        /* where a client puts it: Envoy's default location */
        add_client_header(q, mg_xstrdup("authorization"), mg_xasprintf("Bearer %s", o->token));
    }
    return 0;
}

/* What the gateway does to a client's headers before routing and
 * authorization (http/request.c phase_sanitize, with the same
 * mg_edge_sanitize): the headers only the proxy may set, hop-by-hop ones
 * and those the client names in Connection are dropped, then
 * x-forwarded-proto, x-envoy-external-address (with --source-ip) and, for a
 * verified peer (--principal), x-forwarded-client-cert are set. Policies on
 * those headers then decide here as they do there. */
static void edge_headers(struct request *q, const char *own_id, const struct mg_mesh_config *m)
{
    const char *const geo[2] = { m->geoip_country_header, m->geoip_asn_header };
    struct mg_edge_own own = { .proto = q->scheme, .drop = geo, .n_drop = 2 };
    if (q->conn.peer.family) {
        mg_addr_ip_str(&q->conn.peer, q->external, sizeof(q->external));
        own.external_address = q->external;
    }
    if (q->principal) {
        char *uri = mg_xasprintf("spiffe://%s", q->principal);
        size_t n = mg_edge_xfcc(NULL, 0, own_id, NULL, uri);
        q->xfcc = mg_xmalloc(n + 1);
        mg_edge_xfcc(q->xfcc, n + 1, own_id, NULL, uri);
        free(uri);
        own.xfcc = q->xfcc;
    }
    size_t n = mg_edge_sanitize(q->client, q->n_client, &own, q->edge);
    for (size_t i = 0; i < n; i++)
        q->hdr[i] = (struct mg_header){q->edge[i].key, strlen(q->edge[i].key), q->edge[i].value,
                                       strlen(q->edge[i].value)};
    q->n_hdr = n;
}

static int build_claims(const struct opts *o, const struct mg_config *c, struct request *q)
{
    json_error_t err;
    if (!o->claims)
        return 0;
    q->claims = json_loads(o->claims, 0, &err);
    if (!q->claims || !json_is_object(q->claims)) {
        fprintf(stderr, "meshgate authz: --claims: not a JSON object (%s)\n",
                q->claims ? "wrong type" : err.text);
        return -1;
    }
    json_t *iss = json_object_get(q->claims, "iss"), *sub = json_object_get(q->claims, "sub");
    json_t *aud = json_object_get(q->claims, "aud"), *azp = json_object_get(q->claims, "azp");
    struct mg_ra_result *r = &q->claims_res;
    r->status = MG_RA_PASS_PRINCIPAL;
    r->jwt.payload = q->claims;
    if (json_is_string(iss) && json_is_string(sub)) {
        r->jwt.iss = json_string_value(iss);
        r->jwt.sub = json_string_value(sub);
    }
    if (json_is_string(azp))
        r->jwt.azp = json_string_value(azp);
    if (json_is_string(aud)) {
        q->aud[r->jwt.n_aud++] = json_string_value(aud);
    } else if (json_is_array(aud)) {
        size_t i;
        json_t *e;
        json_array_foreach(aud, i, e)
            if (json_is_string(e) && r->jwt.n_aud < MAX_AUD)
                q->aud[r->jwt.n_aud++] = json_string_value(e);
    }
    r->jwt.aud = q->aud;
    /* spaceDelimitedClaims of the JWT rules for this issuer, as the data
     * plane passes them. */
    for (size_t i = 0; r->jwt.iss && i < c->n_request_authns; i++)
        for (size_t k = 0; k < c->request_authns[i].n_rules; k++) {
            const struct mg_jwt_rule *jr = &c->request_authns[i].rules[k];
            if (!jr->issuer || strcmp(jr->issuer, r->jwt.iss) != 0)
                continue;
            for (size_t j = 0; j < jr->space_delimited_claims.n && r->n_space_delimited_claims < MAX_SDC; j++)
                q->sdc[r->n_space_delimited_claims++] = jr->space_delimited_claims.v[j];
        }
    r->space_delimited_claims = q->sdc;
    return 0;
}

static int build_request(const struct opts *o, const struct mg_config *c, struct request *q)
{
    const char *target = "/";
    uint16_t port = 443;
    struct mg_access_conn *a = &q->conn;

    q->method = o->method ? o->method : "GET";
    if (o->url) {
        uint16_t up;
        if (parse_url(o->url, &q->authority, &up, &q->norm) < 0) {
            fprintf(stderr, "meshgate authz: --url '%s': expected http(s)://host[:port]/path or /path\n", o->url);
            return -1;
        }
        if (up)
            port = up;
        target = q->norm;
        if (q->authority)
            q->scheme = mg_has_prefix(o->url, "https://") ? "https" : "http";
    }
    q->host = o->host ? o->host : q->authority;
    /* a Host given as --header is the authority too (one field in Envoy's
     * header map), when neither --host nor the URL names one */
    for (size_t i = 0; !q->host && i < o->n_headers; i++)
        if (mg_strncasecmp(o->headers[i], "host:", 5) == 0) {
            const char *v = o->headers[i] + 5;
            while (*v == ' ' || *v == '\t')
                v++;
            q->host = v;
        }
    if (o->port && mg_parse_port(o->port, true, &port) < 0) {
        fprintf(stderr, "meshgate authz: --port '%s': not a port\n", o->port);
        return -1;
    }
    a->local.port = port;
    /* the realm of a 401 names the scheme; without a URL scheme, port 80 is
     * taken as plain text and anything else as TLS (the default port is 443) */
    if (!q->scheme)
        q->scheme = port == 80 ? "http" : "https";
    if (o->dest_ip && mg_addr_parse_ip(&a->local, o->dest_ip) < 0) {
        fprintf(stderr, "meshgate authz: --dest-ip '%s': not an IP\n", o->dest_ip);
        return -1;
    }
    a->local.port = port;
    if (o->source_ip && mg_addr_parse_ip(&a->peer, o->source_ip) < 0) {
        fprintf(stderr, "meshgate authz: --source-ip '%s': not an IP\n", o->source_ip);
        return -1;
    }
    /* the explainer takes the original client from the options, not from
     * X-Forwarded-For */
    q->remote = a->peer;
    a->remote = &q->remote;
    if (o->remote_ip && mg_addr_parse_ip(&q->remote, o->remote_ip) < 0) {
        fprintf(stderr, "meshgate authz: --remote-ip '%s': not an IP\n", o->remote_ip);
        return -1;
    }
    a->sni = o->sni;
    if (o->principal) {
        q->principal = mg_xstrdup(mg_has_prefix(o->principal, "spiffe://") ? o->principal + 9 : o->principal);
    } else if (o->ns || o->sa) {
        if (!o->ns || !o->sa) {
            fprintf(stderr, "meshgate authz: --namespace and --service-account go together\n");
            return -1;
        }
        q->principal = mg_xasprintf("%s/ns/%s/sa/%s",
                                    c->mesh.trust_domain ? c->mesh.trust_domain : "cluster.local",
                                    o->ns, o->sa);
    }
    a->principal = q->principal;
    if (build_headers(o, q) < 0 || build_claims(o, c, q) < 0)
        return -1;
    char *own_id = c->proxy.present ? mg_config_spiffe_id(c) : NULL;
    edge_headers(q, own_id, &c->mesh);
    free(own_id);

    /* Normalize exactly as the data plane does before authorization. */
    size_t tl = strlen(target), outlen, plen;
    char *out = mg_xmalloc(tl + 1);
    int rc = mg_path_normalize(target, tl, c->mesh.path_normalization, out, tl + 1, &outlen, &plen);
    if (rc < 0)
        printf("DENY\nrequest refused with 400 by path normalization: '%s'\n", target);
    free(q->norm);
    q->norm = out;
    if (rc < 0)
        return 1;
    q->path_len = plen;
    q->norm_len = outlen;
    return 0;
}

static void free_request(struct request *q)
{
    for (size_t i = 0; i < q->n_client; i++) {
        free(q->client[i].key);
        free(q->client[i].value);
    }
    free(q->xfcc);
    free(q->authority);
    free(q->norm);
    free(q->principal);
    if (q->claims)
        json_decref(q->claims);
}

static void print_match(const char *label, const struct mg_authz_match *m)
{
    if (m->policy)
        printf("%s: %s (%s, rule %d)\n", label, m->policy, action_name(m->action), m->rule);
}

static void print_request(const struct mg_attrs *a)
{
    if (a->is_http)
        printf("request: %s %.*s host=%s port=%u\n", a->method, (int)a->path_len, a->path,
               a->host ? a->host : "-", (unsigned)a->dest.port);
    else
        printf("request: TCP connection to port %u\n", (unsigned)a->dest.port);
}

/* The GeoIP attributes the decision read (only with a database). */
static void print_geo(const struct mg_geoip *g, const struct mg_attrs *a)
{
    if (!g)
        return;
    const struct { const char *what; const struct mg_addr *ad; const char *cc; uint32_t asn; } v[2] = {
        { "source", &a->source, a->source_country, a->source_asn },
        { "remote", &a->remote, a->remote_country, a->remote_asn },
    };
    for (int i = 0; i < 2; i++) {
        char ip[64] = "-";
        if (v[i].ad->family)
            mg_addr_ip_str(v[i].ad, ip, sizeof(ip));
        printf("geo: %s %s country=%s asn=", v[i].what, ip, v[i].cc[0] ? v[i].cc : "-");
        if (v[i].asn)
            printf("%u\n", (unsigned)v[i].asn);
        else
            printf("-\n");
    }
}

static void print_authn(const struct opts *o, const struct mg_attrs *a,
                        const struct mg_access_authn *an, const struct mg_explain_keys *k)
{
    if (!a->is_http)
        printf("authn: not applicable (TCP)\n");
    else if (o->connect)
        printf("authn: not applicable (a CONNECT to the forward proxy carries no token)\n");
    else if (o->claims && a->req_iss)
        printf("authn: --claims taken as verified principal=%s/%s\n", a->req_iss, a->req_sub);
    else if (o->claims)
        printf("authn: --claims taken as verified (no iss and sub: no principal)\n");
    else
        mg_explain_authn_print(an, k, o->token != NULL, stdout);
}

static void print_peer_authn(const struct mg_config *c, const struct mg_policy_set *s,
                             const struct mg_attrs *a)
{
    /* PeerAuthentication is a sidecar's inbound setting; on a gateway the
     * server's tls mode decides whether a client certificate is asked for */
    if (c->proxy.mode == MG_MODE_GATEWAY)
        printf("peer authentication: not applicable (gateway mode: the Gateway server's tls mode "
               "decides client certificates)\n");
    else
        printf("peer authentication on port %u: %s\n", (unsigned)a->dest.port,
               mg_mtls_mode_name(mg_peer_authn_mode(s, a->dest.port)));
}

/* Everything after the verdict, request and authn lines. */
static void report(const struct mg_config *c, const struct mg_policy_set *s, const struct mg_attrs *a,
                   const struct mg_authz_result *r, const struct mg_authz_trace *t, size_t n)
{
    if (n == 0)
        printf("no AuthorizationPolicy applies to this workload\n");
    for (size_t i = 0; i < n; i++) {
        printf("policy %s %s%s: ", t[i].policy, action_name(t[i].action), t[i].dry_run ? " (dry-run)" : "");
        if (t[i].rule >= 0)
            printf("rule %d matched", t[i].rule);
        else
            printf("no rule matched");
        if (t[i].provider)
            printf(" [provider %s%s]", t[i].provider, t[i].provider_invalid ? ", invalid" : "");
        printf("\n");
    }
    if (r->decided_by.policy)
        printf("decided by: %s (%s, rule %d)\n", r->decided_by.policy,
               action_name(r->decided_by.action), r->decided_by.rule);
    else if (r->decision == MG_AUTHZ_ALLOW)
        printf("decided by: no ALLOW policy applies (allowed by default)\n");
    else
        printf("decided by: ALLOW policies apply and none matched (denied by default)\n");
    if (r->custom)
        printf("custom: provider %s would be consulted (%s, rule %d); the decision above "
               "holds only if it allows\n", r->provider_name, r->custom_match.policy, r->custom_match.rule);
    print_match("audit", &r->audit_match);
    print_match("dry-run deny would deny", &r->dry_run_deny_match);
    if (r->dry_run_allow == 0)
        printf("dry-run allow: no dry-run ALLOW policy matched (would deny)\n");
    print_match("dry-run allow would allow", &r->dry_run_allow_match);
    print_peer_authn(c, s, a);
}

/* The RequestAuthentication rules of the evaluated workload. The reqauthn
 * module scopes by the config's Proxy, so a --workload-* override is put in
 * its place for the compile and the Proxy restored afterwards. */
static struct mg_reqauthn *compile_authn(struct mg_config *c, const struct opts *o,
                                         const struct mg_kvlist *labels, struct mg_diags *d)
{
    struct mg_meta saved = c->proxy.meta;
    if (o->wns)
        c->proxy.meta.namespace_ = (char *)o->wns;
    if (o->wlabels)
        c->proxy.meta.labels = *labels;
    struct mg_reqauthn *ra = mg_reqauthn_compile(c, d);
    c->proxy.meta = saved;
    return ra;
}

/* Authentication, then authorization, as the access phase runs them, on
 * the attributes mg_access_attrs() builds from what authentication left.
 * Returns the exit status. */
static int decide(const struct opts *o, const struct mg_config *c, const struct mg_policy_set *s,
                  const struct mg_reqauthn *ra, struct mg_explain_keys *k, int64_t now,
                  struct request *q, const char *egress_line)
{
    struct mg_access_authn an;
    struct mg_arena arena = {0};        /* the step's allocations, as the request arena */
    struct mg_attrs a;
    int rc;
    memset(&an, 0, sizeof(an));
    struct mg_access_req rq = {
        .method = q->method, .authority = q->host,
        .path = q->norm, .path_len = q->path_len,
        .path_query = q->norm,          /* :path: the normalized path and query */
        .scheme = q->scheme, .headers = q->hdr, .n_headers = q->n_hdr,
        .authn = o->claims ? &q->claims_res : NULL,
    };
    if (!o->tcp && !o->claims && !o->connect) {
        struct mg_ra_request req = {
            .method = q->method, .scheme = q->scheme, .authority = q->host,
            .path = q->norm, .path_len = q->norm_len,
            .headers = q->hdr, .n_headers = q->n_hdr,
        };
        struct mg_ra_keys keys = mg_explain_keys_lookup(k);
        /* the gateway's step; no token cache offline */
        mg_access_authenticate(ra, &keys, NULL, now, &req, &arena, &an);
        rq.headers = an.headers;        /* as edited: token removed, claim headers set */
        rq.n_headers = an.n_headers;
        if (an.res.new_path)            /* a token query parameter removed */
            rq.path_query = an.res.new_path;
        rq.authn = &an.res;
    }
    mg_access_attrs(c, &q->conn, o->tcp ? NULL : &rq, &a);
    if (an.res.status == MG_RA_DENY_401 || an.res.status == MG_RA_DENY_403) {
        printf("DENY\n");
        print_request(&a);
        print_geo(q->conn.geoip, &a);
        print_authn(o, &a, &an, k);
        printf("authorization: not evaluated (request authentication answered %d)\n",
               an.res.http_status);
        print_peer_authn(c, s, &a);
        rc = an.res.status == MG_RA_DENY_401 ? 3 : 1;
    } else {
        size_t n = mg_policy_set_count(s);
        struct mg_authz_trace *t = mg_xcalloc(n + 1, sizeof(*t));
        struct mg_authz_result r;
        mg_authz_explain(s, &a, &r, t);
        printf("%s\n", r.decision == MG_AUTHZ_ALLOW ? "ALLOW" : "DENY");
        if (egress_line)
            printf("%s\n", egress_line);
        print_request(&a);
        print_geo(q->conn.geoip, &a);
        print_authn(o, &a, &an, k);
        report(c, s, &a, &r, t, n);
        rc = r.decision == MG_AUTHZ_ALLOW ? 0 : 1;
        free(t);
    }
    mg_ra_result_free(&an.res);
    mg_arena_free(&arena);
    return rc;
}

/* The client identity a CONNECT carries, as the forward proxy's listener
 * gives it: the verified principal only from a TLS listener that asks for
 * a client certificate (outbound.tls MUTUAL, OPTIONAL_MUTUAL, ISTIO_MUTUAL),
 * the SNI only from a TLS listener. What the listener cannot give is
 * dropped (and said so), so that the answer is the gateway's. Appends the
 * "peer:" lines to line (n bytes). */
static void connect_peer(const struct mg_config *c, struct request *q, char *line, size_t n)
{
    const struct mg_server_tls *t = &c->proxy.outbound_tls;
    bool tls = t->present, mutual = tls && t->mode != MG_TLS_SIMPLE;
    const char *listener = !tls ? "is plain text (no outbound.tls)"
                                : "is outbound.tls SIMPLE, which asks for no client certificate";
    size_t len = strlen(line);
    if (q->conn.principal && len < n) {
        if (mutual)
            snprintf(line + len, n - len, "\npeer: principal %s (a client certificate verified by "
                     "outbound.tls %s)", q->conn.principal, mg_tls_mode_name(t->mode));
        else
            snprintf(line + len, n - len, "\npeer: no principal: the forward proxy's listener %s, "
                     "so %s is not seen", listener, q->conn.principal);
        if (!mutual)
            q->conn.principal = NULL;
        len = strlen(line);
    }
    if (q->conn.sni && !tls && len < n) {
        snprintf(line + len, n - len, "\npeer: no SNI: the forward proxy's listener %s, so "
                 "connection.sni %s is not seen", listener, q->conn.sni);
        q->conn.sni = NULL;
    }
}

/* --connect HOST:PORT: what the forward proxy decides, in its order: the
 * egress registry (l4/forward.c refuses with 403 before any policy), then
 * authorization on the CONNECT as an HTTP request whose authority is
 * HOST:PORT and whose destination port is PORT. */
static int explain_connect(const struct opts *o, const struct mg_config *c,
                           const struct mg_policy_set *s, const struct mg_reqauthn *ra,
                           struct mg_explain_keys *k, int64_t now, struct request *q)
{
    char host[256];
    uint16_t port = 0;
    if (mg_split_host_port(o->connect, host, sizeof(host), &port) != 0 || !port) {
        fprintf(stderr, "meshgate authz: --connect '%s': expected HOST:PORT\n", o->connect);
        return 2;
    }
    struct mg_diags d = {0};
    struct mg_egress *e = mg_egress_build(c, &d);
    mg_diags_free(&d);                  /* its warnings are the loader's and check's business */
    struct mg_egress_verdict v;
    char line[1024];
    int rc;
    if (!mg_egress_check(e, host, port, MG_EGRESS_CONNECT, &v)) {
        printf("DENY\negress: refused with %d under REGISTRY_ONLY (%s)\nrequest: CONNECT %s\n"
               "authorization: not evaluated (the egress registry answered first)\n",
               v.status, mg_egress_reason_name(v.reason), o->connect);
        rc = 1;
    } else {
        if (v.se)
            snprintf(line, sizeof(line), "egress: registered: ServiceEntry %s/%s port %u",
                     v.se->meta.namespace_ ? v.se->meta.namespace_ : "default",
                     v.se->meta.name ? v.se->meta.name : "?", (unsigned)v.se_port->number);
        else
            snprintf(line, sizeof(line), "egress: not registered, allowed by ALLOW_ANY");
        struct opts oc = *o;
        oc.connect = NULL;
        rc = build_request(&oc, c, q);
        if (rc == 0) {
            connect_peer(c, q, line, sizeof(line));
            q->method = "CONNECT";
            q->host = o->connect;
            q->scheme = "http";
            q->conn.local.port = port;
            free(q->norm);
            q->norm = mg_xstrdup("");
            q->path_len = q->norm_len = 0;
            rc = decide(o, c, s, ra, k, now, q, line);
        } else {
            rc = rc > 0 ? 1 : 2;
        }
    }
    mg_egress_free(e);
    return rc;
}

static void se_line(char *line, size_t n, const struct mg_egress_verdict *v, const char *what)
{
    if (v->se)
        snprintf(line, n, "egress: %sregistered: ServiceEntry %s/%s port %u", what,
                 v->se->meta.namespace_ ? v->se->meta.namespace_ : "default",
                 v->se->meta.name ? v->se->meta.name : "?", (unsigned)v->se_port->number);
    else
        snprintf(line, n, "egress: %snot registered, allowed by ALLOW_ANY", what);
}

/* --sni NAME (no HTTP request): what a PASSTHROUGH server decides for a
 * ClientHello naming NAME on port --port, from the snapshot the gateway
 * would build: the server and tls route the SNI selects (none: the
 * connection is closed), under REGISTRY_ONLY the egress registry for NAME on
 * each destination's port (l4/passthrough.c closes the connection when it
 * refuses), then authorization as a TCP connection with connection.sni. */
static int explain_sni(const struct opts *o, const struct mg_config *c, const struct mg_policy_set *s,
                       const struct mg_reqauthn *ra, struct mg_explain_keys *k, int64_t now,
                       struct request *q)
{
    uint16_t port = 443;
    if (o->port && mg_parse_port(o->port, true, &port) < 0) {
        fprintf(stderr, "meshgate authz: --port '%s': not a port\n", o->port);
        return 2;
    }
    char sni[256];
    size_t sl = strlen(o->sni);
    if (!sl || sl >= sizeof(sni)) {
        fprintf(stderr, "meshgate authz: --sni '%s': expected a server name\n", o->sni);
        return 2;
    }
    memcpy(sni, o->sni, sl + 1);
    mg_lower(sni);
    struct mg_diags d = {0};
    struct mg_config *sc = mg_config_load(o->config ? o->config : MG_DEFAULT_CONFIG, &d);
    struct mg_snapshot *snap = sc ? mg_snapshot_build(sc, 1, 1, &d) : NULL;
    if (!snap) {
        mg_diags_print(&d, stderr);
        mg_diags_free(&d);
        fprintf(stderr, "meshgate authz: the gateway would refuse this configuration\n");
        return 2;
    }
    mg_diags_free(&d);                  /* warnings: the loader's and check's business */
    const struct mg_port *p = mg_snapshot_port(snap, port);
    const struct mg_tls_route_c *route = NULL;
    int rc = 1;
    /* a TLS server terminated here and routed by tcp routes (the egress
     * gateway's ISTIO_MUTUAL leg): the SNI picks the server, its tcp route
     * the destination, whose host (not the SNI) the registry judges */
    bool tcp = p && p->tcp && p->tls;
    if (!p || (!p->passthrough && !tcp)) {
        printf("DENY\nroute: no PASSTHROUGH or TLS-terminating TCP server on port %u\n", (unsigned)port);
        goto out;
    }
    const struct mg_srv *sv = mg_port_sni_server(p, sni);
    if (sv)
        route = tcp ? mg_tcp_route(p, sv) : mg_passthrough_route(p, sni);
    if (!route) {
        printf("DENY\nroute: no %s route for SNI %s on port %u: the connection is closed\n",
               tcp ? "tcp" : "tls", sni, (unsigned)port);
        goto out;
    }
    enum mg_egress_entrance en = tcp ? MG_EGRESS_TCP : MG_EGRESS_SNI;
    char lines[2048];
    size_t used = 0;
    bool refused = false;
    for (size_t i = 0; i < route->n_dests || (i == 0 && !route->n_dests); i++) {
        const struct mg_wdest *wd = route->n_dests ? &route->dests[i] : NULL;
        struct mg_egress_verdict v;
        char line[512];
        uint16_t dport = mg_passthrough_registry_port(wd);
        const char *eh = tcp ? (wd && wd->cfg ? wd->cfg->destination.host : NULL) : sni;
        if (tcp && !eh) {
            snprintf(line, sizeof(line), "egress: the tcp route has no destination");
        } else if (!mg_egress_registry_only(snap->egress)) {
            mg_egress_check(snap->egress, eh, dport, en, &v);
            se_line(line, sizeof(line), &v, "");
        } else if (mg_egress_check(snap->egress, eh, dport, en, &v)) {
            se_line(line, sizeof(line), &v, "");
        } else if (tcp) {
            snprintf(line, sizeof(line), "egress: refused under REGISTRY_ONLY (%s) for %s:%u: "
                     "the connection is closed", mg_egress_reason_name(v.reason), eh, (unsigned)dport);
            refused = true;
        } else {
            snprintf(line, sizeof(line), "egress: refused under REGISTRY_ONLY (%s) on port %u: "
                     "the connection is closed", mg_egress_reason_name(v.reason), (unsigned)dport);
            refused = true;
        }
        int w = snprintf(lines + used, sizeof(lines) - used, "%s%s", used ? "\n" : "", line);
        if (w > 0 && (size_t)w < sizeof(lines) - used)
            used += (size_t)w;
    }
    const char *vsn = route->vs && route->vs->meta.name ? route->vs->meta.name : "?";
    const char *vsns = route->vs && route->vs->meta.namespace_ ? route->vs->meta.namespace_ : "default";
    int w = snprintf(lines + used, sizeof(lines) - used, "\nroute: %s port %u, %s route of "
                     "VirtualService %s/%s", tcp ? "TLS-terminating TCP" : "PASSTHROUGH",
                     (unsigned)port, tcp ? "tcp" : "tls", vsns, vsn);
    if (w > 0 && (size_t)w < sizeof(lines) - used)
        used += (size_t)w;
    if (refused) {
        printf("DENY\n%s\nrequest: TLS connection to port %u, SNI %s\n"
               "authorization: not evaluated (the egress registry closes the connection either way)\n",
               lines, (unsigned)port, sni);
        goto out;
    }
    struct opts oc = *o;
    oc.tcp = true;
    rc = build_request(&oc, c, q);
    if (rc == 0) {
        q->conn.sni = sni;              /* lower-cased, as the peek leaves it */
        q->conn.local.port = port;
        rc = decide(&oc, c, s, ra, k, now, q, lines);
    } else {
        rc = rc > 0 ? 1 : 2;
    }
out:
    mg_snapshot_unref(snap);
    return rc;
}

int mg_cmd_authz(int argc, char **argv)
{
    struct opts o;
    struct mg_diags d = {0};
    struct request q;
    struct mg_reqauthn *ra = NULL;
    struct mg_explain_keys *keys = NULL;
    struct mg_policy_set *s = NULL;
    struct mg_geoip *geoip = NULL;
    uint64_t now = (uint64_t)time(NULL);
    int rc = 2;

    memset(&o, 0, sizeof(o));
    memset(&q, 0, sizeof(q));
    int pr = parse_args(argc, argv, &o);
    if (pr != 0)
        return pr > 0 ? 0 : 2;
    if (o.now && mg_parse_uint(o.now, 0, INT64_MAX, &now) < 0) {
        fprintf(stderr, "meshgate authz: --now '%s': expected seconds since the epoch\n", o.now);
        return 2;
    }
    struct mg_config *c = mg_config_load(o.config ? o.config : MG_DEFAULT_CONFIG, &d);
    if (!c) {
        mg_diags_print(&d, stderr);
        mg_diags_free(&d);
        return 2;
    }
    size_t errors0 = d.errors;
    struct mg_workload w;
    struct mg_kvlist labels = {0};
    struct mg_kv kv[MAX_LABELS];
    char *lstore = NULL;
    mg_workload_from_proxy(&c->proxy, &w);
    if (o.wns)
        w.namespace_ = o.wns;
    if (o.wlabels) {
        if (parse_labels(o.wlabels, kv, &labels.n, &lstore) < 0) {
            fprintf(stderr, "meshgate authz: --workload-labels '%s': expected k=v,...\n", o.wlabels);
            goto out;
        }
        labels.v = kv;
        w.labels = &labels;
    }
    s = mg_policy_compile(c, &w, &d);
    ra = compile_authn(c, &o, &labels, &d);
    mg_config_check_geo(c, &d);
    if (c->mesh.geoip_database && *c->mesh.geoip_database) {
        /* the gateway's database: --source-ip and --remote-ip resolve through it */
        char err[512];
        geoip = mg_geoip_open(c->mesh.geoip_database, err, sizeof(err));
        if (!geoip)
            mg_error(&d, c->mesh.pos, "%s", err);
    }
    mg_diags_print(&d, stderr);
    if (d.errors > errors0) {
        /* e.g. an invalid inline jwks: the gateway refuses such a snapshot */
        fprintf(stderr, "meshgate authz: the gateway would refuse this configuration\n");
        goto out;
    }
    keys = mg_explain_keys_load(o.jwks, o.n_jwks, ra, stderr);
    if (!keys)
        goto out;
    if (o.connect) {
        rc = explain_connect(&o, c, s, ra, keys, (int64_t)now, &q);
        goto out;
    }
    if (o.sni && !o.url && !o.host && !o.method && !o.token && !o.claims && !o.n_headers) {
        rc = explain_sni(&o, c, s, ra, keys, (int64_t)now, &q);
        goto out;
    }
    int br = build_request(&o, c, &q);
    q.conn.geoip = geoip;
    if (br == 0)
        rc = decide(&o, c, s, ra, keys, (int64_t)now, &q, NULL);
    else
        rc = br > 0 ? 1 : 2;
out:
    mg_explain_keys_free(keys);
    mg_reqauthn_free(ra);
    mg_policy_set_free(s);
    mg_geoip_unref(geoip);
    free_request(&q);
    free(lstore);
    mg_diags_free(&d);
    mg_config_free(c);
    return rc;
}
