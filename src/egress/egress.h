/* egress.h - the egress registry and its one decision: may this gateway
 * open a connection to (host, port) on behalf of a client?
 *
 * The registry is compiled once per snapshot (control/build.c) from the
 * ServiceEntries visible to this Proxy - those whose exportTo includes the
 * Proxy's namespace: no exportTo or "*" is every namespace, "." the entry's
 * own, any other value names a namespace, as Istio scopes them. It holds
 * their hosts (exact, or "*.example.com" matching any deeper name and never
 * the apex; compared without regard to case or a trailing dot), their ports,
 * and their `addresses` (CIDRs) for IP-literal destinations. It is
 * read-only after the build and shared by every worker without a lock.
 *
 * Every entrance that leads out (the forward proxy's absolute-form requests
 * and CONNECT tunnels, PASSTHROUGH by SNI, Gateway HTTP routes and Gateway
 * TCP servers' tcp routes to an external host) asks mg_egress_check(); under MeshConfig
 * outboundTrafficPolicy REGISTRY_ONLY only registered host and port pairs
 * pass, under ALLOW_ANY (the default) everything does and the verdict still
 * names the ServiceEntry that matched, so the caller dials its endpoints. */
#ifndef MG_EGRESS_H
#define MG_EGRESS_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "config/config.h"
#include "base/base.h"

struct mg_egress;

/* Where the destination was asked for; it decides how a refusal looks. */
enum mg_egress_entrance {
    MG_EGRESS_FORWARD_HTTP = 0,         /* absolute-form request to the forward proxy: 502 */
    MG_EGRESS_CONNECT,                  /* CONNECT host:port to the forward proxy: 403 */
    MG_EGRESS_SNI,                      /* Gateway PASSTHROUGH routed by SNI: connection closed */
    MG_EGRESS_ROUTE,                    /* Gateway HTTP route to an external host: 502 */
    MG_EGRESS_TCP,                      /* Gateway TCP server (plain, or TLS terminated) tcp route: closed */
};

enum mg_egress_reason {
    MG_EGRESS_REGISTERED = 0,           /* allowed: a ServiceEntry has the host and port */
    MG_EGRESS_ALLOW_ANY,                /* allowed: not registered, but ALLOW_ANY */
    MG_EGRESS_NOT_REGISTERED,           /* no visible ServiceEntry has the host */
    MG_EGRESS_PORT_NOT_REGISTERED,      /* the host is registered, not on this port */
    MG_EGRESS_ADDRESS_NOT_REGISTERED,   /* an IP literal no ServiceEntry's addresses cover */
    MG_EGRESS_BAD_TARGET,               /* empty host or a name too long */
    MG_EGRESS_RESOLVED_DENIED,          /* the name resolved into denyResolvedCidrs */
};

struct mg_egress_verdict {
    bool allow;
    enum mg_egress_reason reason;
    /* The ServiceEntry and port that matched (also under ALLOW_ANY), NULL
     * when none did. They point into the snapshot's configuration. */
    const struct mg_service_entry *se;
    const struct mg_se_port *se_port;
    bool ip_literal;                    /* host was an IP address */
    /* When refused: the HTTP status to answer for this entrance (502 or
     * 403), or 0 when the connection is closed without an answer (SNI, TCP). */
    int status;
};

/* Compile the registry of cfg for the Proxy's namespace. Entries that can
 * never match (a bare "*" host, an unparsable address) are skipped with a
 * warning in d. Never NULL; the caller owns it (mg_egress_free). */
struct mg_egress *mg_egress_build(const struct mg_config *cfg, struct mg_diags *d);
void mg_egress_free(struct mg_egress *e);

/* Does the Proxy of cfg see se (exportTo, as the registry does)? */
bool mg_egress_visible(const struct mg_config *cfg, const struct mg_service_entry *se);

/* Is REGISTRY_ONLY in force for this registry? */
bool mg_egress_registry_only(const struct mg_egress *e);

/* Decide whether `host` (a DNS name or an IP literal, no brackets, no port)
 * on `port` may be reached from `entrance`. Port 0 stands for a route
 * destination that names no port: any port of a matching entry will do
 * (the verdict names its first). Fills *v and returns v->allow.
 * A name is matched against exact hosts first, then the longest wildcard
 * whose entry lists the port; an IP literal against the entries whose
 * addresses cover it. No allocation; safe on any worker. */
bool mg_egress_check(const struct mg_egress *e, const char *host, uint16_t port,
                     enum mg_egress_entrance entrance, struct mg_egress_verdict *v);

/* Does Proxy.spec.egress.denyResolvedCidrs cover the address (family
 * AF_INET: 4 bytes, AF_INET6: 16)? A name the gateway resolved to such an
 * address is refused (DNS rebinding toward the metadata service, loopback,
 * the cluster's own ranges). False when the list is empty (the default). */
bool mg_egress_resolved_denied(const struct mg_egress *e, int family, const uint8_t *addr);

/* The port a ServiceEntry endpoint serves the entry's port sp on: its
 * `ports` value for the port's name, else sp's targetPort, else sp's
 * number. */
uint16_t mg_egress_endpoint_port(const struct mg_workload_entry *we, const struct mg_se_port *sp);

/* Names for logs and metrics: "forward", "connect", "sni", "route", "tcp";
 * "registered", "allow_any", "not_registered", "port_not_registered",
 * "address_not_registered", "bad_target", "resolved_denied". */
const char *mg_egress_entrance_name(enum mg_egress_entrance en);
const char *mg_egress_reason_name(enum mg_egress_reason r);
/* The access log's reason for a refusal: "egress_<entrance>_<reason>"
 * (e.g. "egress_connect_not_registered"). Static storage. */
const char *mg_egress_log_reason(enum mg_egress_entrance en, enum mg_egress_reason r);

#endif
