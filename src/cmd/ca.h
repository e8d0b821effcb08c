/* ca.h - `meshgate ca`: a trust root, SPIFFE workload certificates and
 * server/client certificates for tests and small deployments.
 *
 * The command itself is mg_cmd_ca() (cli.h). The validators below are the
 * rules the command applies to its arguments; they are exported so that unit
 * tests can check them without writing files. None of them allocates except
 * mg_ca_parse_spiffe_path, and none keeps a pointer to its input. */
#ifndef MG_CA_H
#define MG_CA_H
#include <stdbool.h>
#include <stddef.h>

/* Limits on argument lengths (bytes, without the NUL). */
#define MG_CA_MAX_TRUST_DOMAIN 255
#define MG_CA_MAX_NS 63          /* a Kubernetes namespace is a DNS label */
#define MG_CA_MAX_SA 253         /* a service account is a DNS subdomain */
#define MG_CA_MAX_DNS 253

/* A trust domain as SPIFFE allows it: 1..255 bytes of [a-z0-9._-], not
 * starting or ending with '.' and with no empty label. The caller applies
 * Istio's '@' -> '.' rewrite before asking. */
bool mg_ca_valid_trust_domain(const char *td);

/* Parse "ns/<ns>/sa/<sa>": exactly four '/'-separated parts, <ns> a DNS label
 * ([a-z0-9-], 1..63, alphanumeric at both ends) and <sa> a DNS subdomain
 * ([a-z0-9.-], 1..253, alphanumeric at both ends of each label).
 * On success returns 0 and sets *ns and *sa to new strings the caller frees;
 * on failure returns -1, leaves both NULL and writes a reason (a static
 * string) to *why when why is not NULL. */
int mg_ca_parse_spiffe_path(const char *path, char **ns, char **sa, const char **why);

/* A DNS name for a server certificate SAN: labels of [A-Za-z0-9-] (1..63,
 * no '-' at either end), total 1..253 bytes, an optional leading "*." for a
 * wildcard certificate, no trailing dot. */
bool mg_ca_valid_dns_name(const char *name);

/* A file base name for --name: 1..100 bytes of [A-Za-z0-9._*-], not starting
 * with '.', so it cannot climb out of the output directory. */
bool mg_ca_valid_basename(const char *name);

#endif
