/* sidecar/types.h - what other steps read of a sidecar inbound port (the
 * access phase reports its PeerAuthentication mode by workload port).
 * Types only. */
#ifndef MG_SIDECAR_TYPES_H
#define MG_SIDECAR_TYPES_H
#include <stdbool.h>
#include <stdint.h>
#include <openssl/ssl.h>
#include "config/config.h"

/* One inbound port's compiled state (owned by the snapshot's set). */
struct mg_inbound_port {
    const struct mg_inbound *cfg;
    uint16_t workload_port;             /* cfg->port: what policies see */
    uint16_t bind_port;
    char *bind_ip;
    SSL_CTX *mtls;                      /* mesh identity server context (NULL: no identity) */
    bool tcp;                           /* protocol TCP: per-connection authz + splice */
};

#endif
