/* explain_authn.h - request authentication for `meshgate authz`
 * (explain.c): key sets from files instead of the network, and the access
 * phase's authentication step (src/access/access.c) run offline.
 *
 * Internal to the explainer; not part of the policy module's pure API. */
#ifndef MG_POLICY_EXPLAIN_AUTHN_H
#define MG_POLICY_EXPLAIN_AUTHN_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "policy/attrs.h"
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

/* ---- the authentication step ---- */

struct mg_explain_authn {
    bool ran;                   /* rules apply and mg_reqauthn_eval ran */
    struct mg_ra_result res;
    /* The request headers as authorization sees them afterwards (owned
     * array; entries borrow from the input headers, `ra` and `res`). */
    struct mg_header *hdr;
    size_t n_hdr;
};

/* What src/access/access.c does before authorization, on req (whose headers are
 * lower-case and trimmed, as the policy attributes carry them): with no
 * rule in ra nothing happens (out->ran false, out->hdr a copy); otherwise
 * every rule's output headers are removed from the client's request, the
 * request is evaluated at `now` with `keys` (no cache), and on success the
 * result's header edits (token removal, outputPayloadToHeader,
 * outputClaimToHeaders) are applied to out->hdr. Fill the policy's
 * request.auth attributes with mg_reqauthn_attrs(&out->res, a). Never fails;
 * release with mg_explain_authn_free. */
void mg_explain_authenticate(const struct mg_reqauthn *ra, const struct mg_ra_keys *keys,
                             const struct mg_ra_request *req, int64_t now,
                             struct mg_explain_authn *out);
void mg_explain_authn_free(struct mg_explain_authn *a);

/* Print the "authn: ..." lines of the explanation for a (and, on a denial,
 * which remote URIs of k had no key set; k may be NULL). token_given says
 * whether --token was used (for the no-rule case). */
void mg_explain_authn_print(const struct mg_explain_authn *a, const struct mg_explain_keys *k,
                            bool token_given, FILE *out);

#endif
