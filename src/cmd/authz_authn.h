/* explain_authn.h - request authentication for `meshgate authz`
 * (explain.c): key sets from files instead of the network for the access
 * phase's own authentication step (mg_access_authenticate), and its
 * explanation.
 *
 * Internal to the explainer; not part of the policy module's pure API. */
#ifndef MG_POLICY_EXPLAIN_AUTHN_H
#define MG_POLICY_EXPLAIN_AUTHN_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "policy/attrs.h"
#include "access/access.h"
#include "access/reqauthn.h"

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

#endif
