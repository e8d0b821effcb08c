/* config.h - the configuration model: every resource kind meshgate reads,
 * as parsed from YAML, with Istio's field names (camelCase -> snake_case).
 *
 * This is the parsed, validated form. It is immutable after mg_config_load()
 * returns and is shared read-only by every thread. Compiled forms (policy
 * sets, routes, SSL_CTXs) are built from it by the modules that own them.
 *
 * Every element that a diagnostic can point at carries `pos` (file, line,
 * column of the YAML node). Optional scalars use `has_*` flags or sentinel
 * values documented per field. Durations are milliseconds (-1 = unset).
 * All strings are owned by the config and NUL terminated; absent optional
 * strings are NULL. Lists are (pointer, count) pairs. */
#ifndef MG_CONFIG_H
#define MG_CONFIG_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "base/base.h"

/* ---- common ---- */

struct mg_kv {                          /* one entry of a string map */
    char *key, *value;
    struct mg_pos pos;
};
struct mg_kvlist {                      /* a string map, in document order */
    struct mg_kv *v;
    size_t n;
};
const char *mg_kvlist_get(const struct mg_kvlist *l, const char *key);

struct mg_meta {
    char *name;
    char *namespace_;                   /* default "default" */
    struct mg_kvlist labels;
    struct mg_kvlist annotations;
    char *creation_timestamp;           /* RFC 3339 or NULL; ordering ties */
    size_t doc_index;                   /* load order (stable tie-breaker) */
    struct mg_pos pos;                  /* the document's start */
};

/* A label selector: `selector.matchLabels` or `workloadSelector.labels`.
 * present=false means no selector (applies namespace-/mesh-wide). */
struct mg_selector {
    bool present;
    struct mg_kvlist match_labels;
    struct mg_pos pos;
};

struct mg_target_ref {                  /* targetRef / targetRefs[] */
    char *group, *kind, *name, *namespace_;
    struct mg_pos pos;
};

/* A string list whose elements keep their positions. */
struct mg_slist {
    char **v;
    struct mg_pos *pos;
    size_t n;
    bool present;                       /* the key was written (even if empty) */
};

/* Istio StringMatch: {exact|prefix|regex}. */
enum mg_smatch_kind { MG_SM_NONE = 0, MG_SM_EXACT, MG_SM_PREFIX, MG_SM_REGEX };
struct mg_smatch {
    enum mg_smatch_kind kind;
    char *value;
    struct mg_pos pos;
};

/* ---- MeshConfig (meshgate.io/v1alpha1) ---- */

enum mg_outbound_mode { MG_OUTBOUND_ALLOW_ANY = 0, MG_OUTBOUND_REGISTRY_ONLY };
enum mg_path_norm {
    MG_NORM_BASE = 0,                   /* DEFAULT is BASE */
    MG_NORM_NONE,
    MG_NORM_MERGE_SLASHES,
    MG_NORM_DECODE_AND_MERGE_SLASHES,
};
enum mg_log_encoding { MG_LOG_TEXT = 0, MG_LOG_JSON };

struct mg_ext_provider {                /* extensionProviders[] */
    char *name;
    enum { MG_EXT_HTTP, MG_EXT_GRPC } type;   /* envoyExtAuthzHttp | envoyExtAuthzGrpc */
    char *service;
    uint16_t port;
    int64_t timeout_ms;                 /* default 600000 as Istio */
    char *path_prefix;
    bool fail_open;
    int status_on_error;                /* default 403 */
    struct mg_slist include_request_headers_in_check;
    struct mg_slist headers_to_upstream_on_allow;
    struct mg_slist headers_to_downstream_on_deny;
    struct mg_pos pos;
};

/* accessLogFormat with accessLogEncoding JSON, as Istio takes it: a JSON
 * object whose values are format strings; one line is that object with
 * each value rendered (document order). */
struct mg_log_json_field {
    char *key;
    char *fmt;
};

/* One Envoy command operator in an access log format: %NAME%,
 * %NAME(ARG)% or %NAME(ARG):MAX%. */
struct mg_logop {
    const char *name;
    size_t name_len;
    const char *arg;                    /* inside the parentheses, or NULL */
    size_t arg_len;
    int max_len;                        /* :MAX, -1 = none */
};
/* s points at a '%': the length of the operator there, both '%' included
 * (op filled), or 0 when none is well formed there. */
size_t mg_logop_parse(const char *s, struct mg_logop *op);
/* Whether the access log renders op (names and their arguments). */
bool mg_logop_known(const struct mg_logop *op);

/* localityLbSetting (DestinationRule trafficPolicy.loadBalancer, or
 * MeshConfig for the whole mesh; a rule's replaces the mesh's). Localities
 * are "region/zone/subzone"; a pattern may stop early or end in a '*'
 * part: "us-east" matches every zone of us-east, "*" every locality. */
struct mg_locality_distribute {         /* distribute[]: from -> {to: weight} */
    char *from;
    struct mg_kvlist to;                /* locality pattern -> weight 1..100 (checked) */
    struct mg_pos pos;
};
struct mg_locality_failover {           /* failover[]: region -> region */
    char *from, *to;
    struct mg_pos pos;
};
struct mg_locality_lb {
    bool present;
    bool enabled, has_enabled;          /* `enabled` (a BoolValue: unset = on) */
    struct mg_locality_distribute *distribute;
    size_t n_distribute;
    struct mg_locality_failover *failover;
    size_t n_failover;
    struct mg_slist failover_priority;  /* label names, or "label=value" */
    struct mg_pos pos;
};

struct mg_mesh_config {
    bool present;
    char *trust_domain;                 /* default "cluster.local" ('@' -> '.') */
    struct mg_slist trust_domain_aliases;
    char *root_namespace;               /* default "istio-system" */
    enum mg_outbound_mode outbound_mode;
    enum mg_path_norm path_normalization;
    char *access_log_file;              /* NULL or "" = off */
    enum mg_log_encoding access_log_encoding;
    char *access_log_format;            /* NULL = built-in default */
    struct mg_log_json_field *access_log_json;  /* JSON encoding with a JSON format */
    size_t n_access_log_json;
    bool log_upstream_local;            /* the format uses %UPSTREAM_LOCAL_ADDRESS% */
    char *ca_certificates;              /* default /etc/ssl/certs/ca-certificates.crt */
    char *geoip_database;               /* NULL = off */
    /* geoipHeaders: request headers set to the client's country code / AS
     * number for the upstream (NULL = not sent); a client's copy is
     * always removed. Lower-case names. */
    char *geoip_country_header;
    char *geoip_asn_header;
    struct mg_ext_provider *ext_providers;
    size_t n_ext_providers;
    int num_trusted_proxies;            /* default 0 */
    /* defaultConfig.gatewayTopology.proxyProtocol: {} (Istio: present =
     * every Gateway listener expects a PROXY protocol header) */
    struct { bool present; struct mg_pos pos; } proxy_protocol;
    /* enableAutoMtls (default true): endpoints labelled
     * security.istio.io/tlsMode=istio are reached over ISTIO_MUTUAL when no
     * DestinationRule sets a TLS mode for them */
    bool enable_auto_mtls;
    /* localityLbSetting: the mesh default of DestinationRules that set
     * none (Istio's default mesh has it enabled) */
    struct mg_locality_lb locality_lb;
    struct mg_pos pos;
};

/* ---- Proxy (meshgate.io/v1alpha1) ---- */

enum mg_proxy_mode { MG_MODE_GATEWAY = 0, MG_MODE_SIDECAR };

struct mg_credential {                  /* Proxy.spec.credentials or a TLS Secret */
    char *name;
    /* Either file paths (from Proxy.credentials) ... */
    char *certificate, *private_key, *ca_certificates;
    /* ... or PEM bytes (from a Secret); the other set is NULL. */
    char *cert_pem, *key_pem, *ca_pem;
    /* An OCSP response (DER) stapled to handshakes with this certificate:
     * ocspStaple (a file, read when the snapshot is built and watched) or
     * a Secret's data tls.ocsp-staple (the bytes). NULL/0 = no stapling. */
    char *ocsp_staple;
    uint8_t *ocsp_der;
    size_t ocsp_len;
    char *namespace_;                   /* Secrets only */
    struct mg_pos pos;
};

enum mg_app_proto {                     /* port protocols (Gateway, ServiceEntry, inbound) */
    MG_PROTO_UNSET = 0, MG_PROTO_HTTP, MG_PROTO_HTTPS, MG_PROTO_HTTP2, MG_PROTO_GRPC,
    MG_PROTO_GRPC_WEB, MG_PROTO_TCP, MG_PROTO_TLS, MG_PROTO_MONGO,
};
const char *mg_app_proto_name(enum mg_app_proto p);

struct mg_inbound {                     /* sidecar mode */
    uint16_t port;                      /* the workload port policies see */
    char *bind;                         /* "ip:port" */
    char *forward_to;                   /* "ip:port" */
    enum mg_app_proto protocol;
    struct mg_pos pos;
};

/* Gateway ServerTLSSettings (also Proxy.spec.outbound.tls, read by the
 * same table: the forward proxy's TLS listener). */
enum mg_tls_mode {                      /* ServerTLSSettings.mode */
    MG_TLS_PASSTHROUGH = 0, MG_TLS_SIMPLE, MG_TLS_MUTUAL, MG_TLS_AUTO_PASSTHROUGH,
    MG_TLS_ISTIO_MUTUAL, MG_TLS_OPTIONAL_MUTUAL,
};
enum mg_tls_version {
    MG_TLSV_AUTO = 0, MG_TLSV1_0, MG_TLSV1_1, MG_TLSV1_2, MG_TLSV1_3,
};

struct mg_server_tls {
    bool present;
    bool https_redirect;
    bool has_mode;
    enum mg_tls_mode mode;              /* proto default PASSTHROUGH (0) when unset */
    char *server_certificate, *private_key, *ca_certificates, *ca_crl;
    char *credential_name;
    struct mg_slist credential_names;
    struct mg_slist subject_alt_names;
    struct mg_slist verify_certificate_spki;
    struct mg_slist verify_certificate_hash;
    enum mg_tls_version min_version, max_version;
    struct mg_slist cipher_suites;
    bool insecure_skip_verify;
    struct mg_pos pos;
};

/* The mode as ServerTLSSettings spells it ("SIMPLE", "ISTIO_MUTUAL", ...). */
const char *mg_tls_mode_name(enum mg_tls_mode m);

struct mg_proxy {
    bool present;
    struct mg_meta meta;
    enum mg_proxy_mode mode;
    int workers;                        /* 0 = one per CPU */
    char *service_account;              /* default "default" */
    /* locality ("region/zone/subzone") and network of this proxy, as an
     * Istio sidecar gets them from its node (ISTIO_META_NETWORK): the
     * origin of locality-aware balancing (NULL = none) */
    char *locality, *network;
    char *identity_cert_chain, *identity_private_key, *identity_root_certs;  /* or NULL */
    struct mg_credential *credentials;
    size_t n_credentials;
    char *bind_address;                 /* default "0.0.0.0" */
    char *admin;                        /* default "127.0.0.1:15000"; "" = off */
    struct mg_inbound *inbound;
    size_t n_inbound;
    char *outbound_bind;                /* NULL = no forward proxy listener */
    /* outbound.tls: the forward proxy terminates TLS first (SIMPLE, MUTUAL,
     * OPTIONAL_MUTUAL, ISTIO_MUTUAL); present false = plain text */
    struct mg_server_tls outbound_tls;
    struct mg_slist egress_deny_cidrs;  /* egress.denyResolvedCidrs: resolved answers refused */
    char *session_ticket_keys;          /* tls.sessionTicketKeys: a fleet's ticket key file */
    bool watch_config;                  /* watchConfig: reload when the configuration path changes */
    /* jwt.requireHttps: a jwksUri must be https:// (or http:// to this
     * host); default false, as Istio, which fetches http:// too */
    bool jwt_require_https;
    struct mg_proxy_protocol {          /* proxyProtocol: PROXY headers on Gateway ports */
        bool present;
        struct mg_slist ports;          /* Gateway port numbers; empty = every Gateway port */
        struct mg_slist trusted_sources;   /* CIDRs that may send one; empty = any peer */
        bool allow_without_header;      /* default false: the header is required */
        struct mg_pos pos;
    } proxy_protocol;
    int64_t timeout_handshake_ms;       /* default 10000 */
    int64_t timeout_request_headers_ms; /* default 30000 */
    int64_t timeout_idle_ms;            /* default 300000 */
    int64_t timeout_drain_ms;           /* default 30000 */
    int64_t timeout_drain_delay_ms;     /* drainDelay, default 5000: SIGTERM to accept stop */
    uint64_t max_connections;           /* 0 = none */
    uint64_t max_request_headers_kb;    /* default 60 */
    uint64_t max_concurrent_streams;    /* default 100 */
    struct mg_pos pos;
};

/* ---- Gateway (networking.istio.io) ---- */

struct mg_server {                      /* Gateway.spec.servers[] */
    uint16_t port;
    enum mg_app_proto protocol;
    char *port_name;
    char *bind;
    struct mg_slist hosts;              /* "[ns/]dnsName" as written */
    struct mg_server_tls tls;
    char *name;
    struct mg_pos pos;
};

struct mg_gateway {
    struct mg_meta meta;
    struct mg_kvlist selector;          /* Gateway.spec.selector (a plain map) */
    struct mg_server *servers;
    size_t n_servers;
};

/* ---- VirtualService ---- */

/* A JWT claim route name, Istio's "@request.auth.claims.a.b" or
 * "@request.auth.claims[a][b]" (the prefix in any case): the number of
 * claim names in the path (0: not a claim route); with out, the first
 * `max` names are stored there, malloc'd, for the caller to free. */
size_t mg_claim_route_split(const char *name, char **out, size_t max);

struct mg_header_match {                /* headers: {name: StringMatch} */
    char *name;                         /* lower-cased; a claim route as written */
    struct mg_smatch match;
};

struct mg_http_match {                  /* HTTPMatchRequest */
    char *name;
    struct mg_smatch uri, scheme, method, authority;
    struct mg_header_match *headers;
    size_t n_headers;
    struct mg_header_match *without_headers;
    size_t n_without_headers;
    struct mg_header_match *query_params;
    size_t n_query_params;
    uint16_t port;                      /* 0 = any */
    bool ignore_uri_case;
    struct mg_slist gateways;
    struct mg_kvlist source_labels;
    char *source_namespace;
    struct mg_pos pos;
};

struct mg_header_ops {                  /* Headers.HeaderOperations */
    struct mg_kvlist set, add;
    struct mg_slist remove;
};

struct mg_destination {
    char *host;
    char *subset;
    uint16_t port;                      /* 0 = unset */
    struct mg_pos pos;
};

struct mg_route_dest {                  /* HTTPRouteDestination / RouteDestination */
    struct mg_destination destination;
    int weight;                         /* -1 = unset */
    struct mg_header_ops req_headers, resp_headers;
    struct mg_pos pos;
};

/* VirtualService.http[].corsPolicy */
enum mg_cors_unmatched { MG_CORS_UNMATCHED_UNSPECIFIED = 0, MG_CORS_UNMATCHED_FORWARD,
                         MG_CORS_UNMATCHED_IGNORE };
struct mg_cors {
    bool present;
    struct mg_smatch *allow_origins;    /* allowOrigins, and the older allowOrigin as exact */
    size_t n_allow_origins;
    struct mg_slist allow_methods, allow_headers, expose_headers;
    int64_t max_age_ms;                 /* -1 = unset */
    bool allow_credentials;
    enum mg_cors_unmatched unmatched_preflights;   /* UNSPECIFIED = FORWARD */
};

/* Percent {value: double} */
struct mg_percent {
    bool present;
    double value;                       /* 0..100 */
};

/* VirtualService.http[].fault */
struct mg_fault {
    bool present;
    struct {
        bool present;
        int64_t fixed_ms;               /* fixedDelay, -1 = unset */
        struct mg_percent percentage;
        int percent;                    /* the older integer percent */
    } delay;
    struct {
        bool present;
        int http_status;                /* 0 = unset */
        int grpc_status;                /* -1 = unset; by name (UNAVAILABLE, ...) */
        struct mg_percent percentage;
        int percent;
    } abort;
};

/* VirtualService.http[].mirrors[] (and the single mirror) */
struct mg_mirror {
    struct mg_route_dest dest;          /* destination only: no weight, no headers */
    struct mg_percent percentage;       /* unset = 100 */
    struct mg_pos pos;
};

struct mg_http_route {                  /* VirtualService.http[] */
    char *name;
    struct mg_http_match *match;
    size_t n_match;
    struct mg_route_dest *route;
    size_t n_route;
    bool has_redirect;
    struct {
        char *uri, *authority, *scheme;
        uint16_t port;
        int redirect_code;              /* default 301 */
    } redirect;
    bool has_direct_response;
    struct {
        int status;
        char *body;
    } direct_response;
    bool has_rewrite;
    struct {
        char *uri, *authority;
        char *regex_match, *regex_rewrite;   /* uriRegexRewrite */
    } rewrite;
    int64_t timeout_ms;                 /* -1 = unset (Istio default: none) */
    bool has_retries;
    struct {
        int attempts;
        int64_t per_try_timeout_ms;     /* -1 = unset */
        char *retry_on;                 /* comma list, Envoy names and status codes */
        bool retry_remote_localities;   /* a retry leaves the locality priorities tried */
    } retries;
    struct mg_header_ops req_headers, resp_headers;
    /* delegate: {name, namespace}: the routes of that VirtualService (one
     * without hosts) take this entry's place once loading is done (the
     * loaded model has no entry with delegate.present left) */
    struct {
        bool present;
        char *name, *namespace_;        /* namespace NULL = the VirtualService's */
        struct mg_pos pos;
    } delegate;
    struct mg_cors cors;
    struct mg_fault fault;
    /* mirror + mirrorPercentage (or the older mirrorPercent) and mirrors[],
     * one list: `mirror` becomes its only element */
    struct mg_mirror *mirrors;
    size_t n_mirrors;
    struct mg_mirror mirror;            /* as read; has_mirror */
    bool has_mirror;
    struct mg_percent mirror_percentage;
    int mirror_percent;                 /* -1 = unset */
    struct mg_pos pos;
};

struct mg_tls_match {                   /* TLSMatchAttributes */
    struct mg_slist sni_hosts;
    struct mg_slist destination_subnets;
    uint16_t port;
    struct mg_slist gateways;
    struct mg_pos pos;
};

struct mg_l4_match {                    /* L4MatchAttributes (tcp[].match[]) */
    struct mg_slist destination_subnets;
    uint16_t port;
    struct mg_slist gateways;
    struct mg_pos pos;
};

struct mg_tls_route {                   /* VirtualService.tls[] */
    struct mg_tls_match *match;
    size_t n_match;
    struct mg_route_dest *route;
    size_t n_route;
    struct mg_pos pos;
};

struct mg_tcp_route {                   /* VirtualService.tcp[] */
    struct mg_l4_match *match;
    size_t n_match;
    struct mg_route_dest *route;
    size_t n_route;
    struct mg_pos pos;
};

struct mg_virtual_service {
    struct mg_meta meta;
    struct mg_slist hosts;
    struct mg_slist gateways;           /* "ns/name", "name" or "mesh" */
    struct mg_slist export_to;
    struct mg_http_route *http;
    size_t n_http;
    struct mg_tls_route *tls;
    size_t n_tls;
    struct mg_tcp_route *tcp;
    size_t n_tcp;
};

/* ---- DestinationRule ---- */

enum mg_client_tls_mode { MG_CTLS_DISABLE = 0, MG_CTLS_SIMPLE, MG_CTLS_MUTUAL, MG_CTLS_ISTIO_MUTUAL };
enum mg_lb_simple { MG_LB_UNSPECIFIED = 0, MG_LB_LEAST_REQUEST, MG_LB_RANDOM, MG_LB_PASSTHROUGH,
                    MG_LB_ROUND_ROBIN, MG_LB_LEAST_CONN };

struct mg_client_tls {
    bool present;
    enum mg_client_tls_mode mode;
    char *client_certificate, *private_key, *ca_certificates, *ca_crl, *credential_name;
    struct mg_slist subject_alt_names;
    char *sni;
    bool insecure_skip_verify;
    struct mg_pos pos;
};

struct mg_conn_pool {                   /* unset numbers are 0 = unlimited / default */
    bool present;
    uint64_t max_connections;           /* tcp.maxConnections */
    int64_t connect_timeout_ms;         /* -1 = default 10s */
    int64_t tcp_idle_timeout_ms;        /* -1 = default 1h */
    uint64_t http1_max_pending_requests;
    uint64_t http2_max_requests;
    uint64_t max_requests_per_connection;
    uint64_t max_retries;
    int64_t http_idle_timeout_ms;       /* -1 = default 1h */
    uint64_t max_concurrent_streams;
    bool use_client_protocol;
    enum { MG_H2UP_DEFAULT = 0, MG_H2UP_DO_NOT_UPGRADE, MG_H2UP_UPGRADE } h2_upgrade_policy;
    struct mg_pos pos;
};

struct mg_outlier {
    bool present;
    int consecutive_5xx_errors;         /* default 5; 0 = off */
    int consecutive_gateway_errors;     /* default 0 = off */
    bool has_consecutive_5xx_errors, has_consecutive_gateway_errors;   /* written in the YAML */
    int consecutive_errors;             /* deprecated: gateway errors, turns 5xx off */
    bool split_external_local_origin_errors;
    int consecutive_local_origin_failures;  /* with split; 0 = Envoy's default 5 */
    int64_t interval_ms;                /* default 10s */
    int64_t base_ejection_time_ms;      /* default 30s */
    int max_ejection_percent;           /* default 10 */
    int min_health_percent;             /* default 0 */
    struct mg_pos pos;
};

struct mg_traffic_policy {
    bool present;
    enum mg_lb_simple lb;
    struct mg_locality_lb locality_lb;  /* loadBalancer.localityLbSetting */
    struct mg_conn_pool pool;
    struct mg_outlier outlier;
    struct mg_client_tls tls;
};

struct mg_port_traffic_policy {
    uint16_t port;
    struct mg_traffic_policy policy;
    struct mg_pos pos;
};

/* trafficPolicy.proxyProtocol: a PROXY protocol header first on every
 * new upstream connection (Istio's API has it on a rule's or a subset's
 * trafficPolicy, not in portLevelSettings; a subset's replaces the
 * rule's). */
enum mg_up_pp_version { MG_UP_PP_V1 = 0, MG_UP_PP_V2 };
struct mg_up_proxy_protocol {
    bool present;
    enum mg_up_pp_version version;      /* default V1, as Istio */
    struct mg_pos pos;
};

struct mg_dr_policy {                   /* trafficPolicy with its portLevelSettings */
    struct mg_traffic_policy base;
    struct mg_port_traffic_policy *port_level;
    size_t n_port_level;
    struct mg_up_proxy_protocol proxy_protocol;
};

struct mg_subset {
    char *name;
    struct mg_kvlist labels;
    struct mg_dr_policy policy;
    struct mg_pos pos;
};

struct mg_destination_rule {
    struct mg_meta meta;
    char *host;
    struct mg_dr_policy policy;
    struct mg_subset *subsets;
    size_t n_subsets;
    struct mg_slist export_to;
    struct mg_selector workload_selector;
};

/* ---- ServiceEntry ---- */

enum mg_se_location { MG_MESH_EXTERNAL = 0, MG_MESH_INTERNAL };
enum mg_se_resolution { MG_RES_NONE = 0, MG_RES_STATIC, MG_RES_DNS, MG_RES_DNS_ROUND_ROBIN,
                        MG_RES_DYNAMIC_DNS };

struct mg_se_port {
    uint16_t number;
    enum mg_app_proto protocol;
    char *name;
    uint16_t target_port;               /* 0 = number */
    struct mg_pos pos;
};

struct mg_workload_entry {              /* ServiceEntry.endpoints[] */
    char *address;                      /* IP, hostname, or unix:// */
    struct mg_kvlist ports;             /* port name -> number (as string) */
    struct mg_kvlist labels;
    char *network, *locality;
    int weight;                         /* 0 = unset */
    char *service_account;
    struct mg_pos pos;
};

/* A WorkloadEntry resource (networking.istio.io): one workload outside
 * Kubernetes (a VM), selected by a ServiceEntry's workloadSelector in the
 * same namespace through spec.labels. */
struct mg_workload_entry_res {
    struct mg_meta meta;
    struct mg_workload_entry spec;
};

struct mg_service_entry {
    struct mg_meta meta;
    struct mg_slist hosts;
    struct mg_slist addresses;
    struct mg_se_port *ports;
    size_t n_ports;
    enum mg_se_location location;
    enum mg_se_resolution resolution;
    struct mg_workload_entry *endpoints;
    size_t n_endpoints;
    struct mg_slist export_to;
    struct mg_slist subject_alt_names;
    struct mg_selector workload_selector;
};

/* ---- PeerAuthentication ---- */

enum mg_mtls_mode { MG_MTLS_UNSET = 0, MG_MTLS_DISABLE, MG_MTLS_PERMISSIVE, MG_MTLS_STRICT };
/* The mode as PeerAuthentication spells it ("STRICT", ...; "UNSET"). */
const char *mg_mtls_mode_name(enum mg_mtls_mode m);

struct mg_port_mtls {
    uint16_t port;
    enum mg_mtls_mode mode;
    struct mg_pos pos;
};

struct mg_peer_authn {
    struct mg_meta meta;
    struct mg_selector selector;
    enum mg_mtls_mode mode;             /* UNSET when mtls is absent or {} */
    struct mg_port_mtls *port_level;
    size_t n_port_level;
};

/* ---- RequestAuthentication ---- */

struct mg_jwt_header {                  /* fromHeaders[] */
    char *name;                         /* lower-cased */
    char *prefix;                       /* NULL = none */
    struct mg_pos pos;
};

struct mg_claim_to_header {             /* outputClaimToHeaders[] */
    char *header, *claim;
    struct mg_pos pos;
};

struct mg_jwt_rule {
    char *issuer;
    struct mg_slist audiences;
    char *jwks_uri;
    char *jwks;                         /* inline JWKS JSON */
    struct mg_jwt_header *from_headers;
    size_t n_from_headers;
    struct mg_slist from_params;
    struct mg_slist from_cookies;
    char *output_payload_to_header;
    struct mg_claim_to_header *output_claim_to_headers;
    size_t n_output_claim_to_headers;
    bool forward_original_token;
    int64_t timeout_ms;                 /* default 5000 */
    struct mg_slist space_delimited_claims;
    int presence;                       /* 0 unset, 1 OPTIONAL, 2 REQUIRED (not enforced) */
    struct mg_pos pos;
};

struct mg_request_authn {
    struct mg_meta meta;
    struct mg_selector selector;
    struct mg_target_ref *target_refs;
    size_t n_target_refs;
    struct mg_jwt_rule *rules;
    size_t n_rules;
};

/* ---- AuthorizationPolicy ---- */

enum mg_authz_action { MG_ACTION_ALLOW = 0, MG_ACTION_DENY, MG_ACTION_AUDIT, MG_ACTION_CUSTOM };

struct mg_authz_source {                /* Source; absent lists have present=false */
    struct mg_slist principals, not_principals;
    struct mg_slist request_principals, not_request_principals;
    struct mg_slist namespaces, not_namespaces;
    struct mg_slist service_accounts, not_service_accounts;
    struct mg_slist trust_domains, not_trust_domains;
    struct mg_slist ip_blocks, not_ip_blocks;
    struct mg_slist remote_ip_blocks, not_remote_ip_blocks;
    struct mg_pos pos;
};

struct mg_authz_operation {             /* Operation */
    struct mg_slist hosts, not_hosts;
    struct mg_slist ports, not_ports;
    struct mg_slist methods, not_methods;
    struct mg_slist paths, not_paths;
    struct mg_pos pos;
};

struct mg_authz_condition {             /* when[] */
    char *key;                          /* as written, e.g. request.headers[x-a] */
    struct mg_slist values, not_values;
    struct mg_pos pos;
};

struct mg_authz_rule {
    bool has_from, has_to;              /* key present (absent = matches all) */
    struct mg_authz_source *from;
    size_t n_from;
    struct mg_authz_operation *to;
    size_t n_to;
    struct mg_authz_condition *when;
    size_t n_when;
    struct mg_pos pos;
};

struct mg_authz_policy {
    struct mg_meta meta;
    struct mg_selector selector;
    struct mg_target_ref *target_refs;  /* targetRef and targetRefs, merged */
    size_t n_target_refs;
    enum mg_authz_action action;
    char *provider;                     /* provider.name (CUSTOM) */
    bool has_rules;                     /* `rules` key present */
    struct mg_authz_rule *rules;
    size_t n_rules;
    bool dry_run;                       /* annotation istio.io/dry-run: "true" */
};

/* ---- the whole configuration ---- */

struct mg_config {
    char *source;                       /* the PATH it was loaded from */
    struct mg_mesh_config mesh;         /* defaults filled when absent */
    struct mg_proxy proxy;              /* present=false if none */
    struct mg_credential *secrets;      /* kubernetes.io/tls Secrets */
    size_t n_secrets;
    struct mg_gateway *gateways;
    size_t n_gateways;
    struct mg_virtual_service *virtual_services;
    size_t n_virtual_services;
    struct mg_destination_rule *destination_rules;
    size_t n_destination_rules;
    struct mg_service_entry *service_entries;
    size_t n_service_entries;
    struct mg_workload_entry_res *workload_entries;
    size_t n_workload_entries;
    struct mg_peer_authn *peer_authns;
    size_t n_peer_authns;
    struct mg_request_authn *request_authns;
    size_t n_request_authns;
    struct mg_authz_policy *authz_policies;
    size_t n_authz_policies;
};

/* Load PATH (a YAML file, or a directory whose *.yaml / *.yml files are read
 * in sorted order). Every problem is added to `d` (all of them, not the
 * first). Returns a config when there were no errors (warnings allowed),
 * NULL otherwise. The caller owns the result (mg_config_free). */
struct mg_config *mg_config_load(const char *path, struct mg_diags *d);
/* The same, with `ns` (NULL: none) as the namespace of documents without
 * metadata.namespace, as `kubectl apply -n` does; without it they land in
 * "default" and one warning says how many did. */
struct mg_config *mg_config_load_ns(const char *path, const char *ns, struct mg_diags *d);
/* Is ns a namespace name (a DNS-1123 label)? */
bool mg_config_namespace_ok(const char *ns);

/* Load from a memory buffer (tests, fuzzing). `name` is the file name used in
 * positions. Same result rules as mg_config_load. */
struct mg_config *mg_config_load_buffer(const char *name, const char *data, size_t len,
                                        struct mg_diags *d);

/* istioctl-analyze style checks (warnings and errors) on a loaded config. */
void mg_config_analyze(const struct mg_config *c, struct mg_diags *d);

/* The GeoIP conditions (source.geo.*, remote.geo.* `when` keys): an error
 * for each when MeshConfig geoipDatabase is not set (no address would ever
 * have a value, so the condition cannot do what was meant), a warning for
 * each country value that is not an ISO 3166 alpha-2 code. Part of
 * mg_config_analyze; `meshgate run` calls it too. */
void mg_config_check_geo(const struct mg_config *c, struct mg_diags *d);

void mg_config_free(struct mg_config *c);

/* Does `sel` (matchLabels) select a workload with `labels`? A selector that
 * is absent or empty selects every workload. */
bool mg_selector_matches(const struct mg_kvlist *match_labels, const struct mg_kvlist *labels);

/* Does the Proxy of c see ServiceEntry se? Its exportTo as Istio scopes
 * it: none or "*" is every namespace, "." the entry's own, any other value
 * (so "~") names a namespace; the Proxy's namespace is "default" when unset. */
bool mg_service_entry_visible(const struct mg_config *c, const struct mg_service_entry *se);

/* Look up a credential by name: Proxy.spec.credentials first, then TLS
 * Secrets (in the Proxy's namespace, then any). NULL when missing. */
const struct mg_credential *mg_config_credential(const struct mg_config *c, const char *name);

/* The Proxy's own SPIFFE identity "spiffe://<td>/ns/<ns>/sa/<sa>" (caller frees). */
char *mg_config_spiffe_id(const struct mg_config *c);

#endif
