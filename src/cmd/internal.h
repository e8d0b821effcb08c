/* cmd/internal.h - what only cmd/ uses: the explainer's key sets and the
 * certificate authority. */
#ifndef MG_CMD_INTERNAL_H
#define MG_CMD_INTERNAL_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "policy/policy.h"
#include "access/access.h"

/* request authentication for `meshgate authz`
 * (explain.c): key sets from files instead of the network for the access
 * phase's own authentication step (mg_access_authenticate), and its
 * explanation.
 *
 * Internal to the explainer; not part of the policy module's pure API. */
#define MG_EXPLAIN_MAX_JWKS 32  /* --jwks options accepted */

/* ---- --jwks: remote key sets read from files ---- */

struct mg_explain_keys;

/* Load the --jwks arguments: "URI=FILE" (URI starts with http:// or
 * https://; split at the last '=') gives the key set of that jwksUri (or
 * discovery URI), a plain "FILE" the key set of every other remote URI (at
 * most one). Each file is parsed as a fetched JWKS is (no oct keys, at most
 * MG_JWKS_MAX_JSON bytes). A URI that no rule of `ra` uses is a warning on
 * `err`. Returns the set (free with mg_explain_keys_free; n == 0 gives an
 * empty set that knows no URI), or NULL after printing the reason on `err`
 * (unreadable file, malformed JWKS, duplicate URI, two plain FILEs). */
struct mg_explain_keys *mg_explain_keys_load(const char *const *args, size_t n,
                                             const struct mg_reqauthn *ra, FILE *err);
void mg_explain_keys_free(struct mg_explain_keys *k);
/* The reqauthn key lookup backed by k (which must outlive its use). A URI
 * without a key set gives NULL, exactly as the JWKS store before its first
 * fetch; such URIs are remembered for mg_explain_authn_print. */
struct mg_ra_keys mg_explain_keys_lookup(struct mg_explain_keys *k);

/* ---- explaining the authentication step ---- */

/* Print the "authn: ..." lines of the explanation for a, the outcome of
 * mg_access_authenticate() (access.h), and, on a denial, which remote URIs
 * of k had no key set (k may be NULL). token_given says whether --token was
 * used (for the no-rule case). */
void mg_explain_authn_print(const struct mg_access_authn *a, const struct mg_explain_keys *k,
                            bool token_given, FILE *out);

/* `meshgate ca`: a trust root, SPIFFE workload certificates and
 * server/client certificates for tests and small deployments.
 *
 * The command itself is mg_cmd_ca() (cmd/cmd.h). The validators below are the
 * rules the command applies to its arguments; they are exported so that unit
 * tests can check them without writing files. None of them allocates except
 * mg_ca_parse_spiffe_path, and none keeps a pointer to its input. */
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
