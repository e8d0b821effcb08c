/* jwt_sign.h - test-only JWT tooling with OpenSSL directly (independent of
 * the cjose code under test): key generation, public JWKs, token signing.
 * Every returned string is heap allocated; the caller frees it. */
#ifndef MG_JWT_SIGN_H
#define MG_JWT_SIGN_H
#include <stddef.h>
#include <stdint.h>
#include <openssl/evp.h>

/* type: "rsa" (2048), "rsa1024", "rsa4096", "ec256", "ec384", "ec521",
 * "ed25519". NULL on an unknown type. */
EVP_PKEY *mg_ts_genkey(const char *type);
/* The public JWK of k as a JSON object text. kid may be NULL; extra, when
 * not NULL, is a JSON object text whose members are added (e.g. alg, use). */
char *mg_ts_jwk(EVP_PKEY *k, const char *kid, const char *extra);
/* An oct JWK for an HMAC secret. */
char *mg_ts_jwk_oct(const uint8_t *secret, size_t len, const char *kid);
/* {"keys":[jwk0, jwk1, ...]} from JWK object texts. */
char *mg_ts_jwks(const char *const *jwks, size_t n);
/* The default alg for a key: RS256, ES256/384/512, EdDSA. */
const char *mg_ts_default_alg(EVP_PKEY *k);
/* Sign: token = b64u(header).b64u(payload).b64u(sig). header and payload
 * are used byte for byte (not reformatted). For HS* pass secret (k NULL);
 * alg "none" gives an empty signature. NULL on a signing failure. */
char *mg_ts_sign(EVP_PKEY *k, const uint8_t *secret, size_t secretlen, const char *alg,
                 const char *header, const char *payload);
/* A header {"alg":alg,"typ":"JWT"[,"kid":kid]}. */
char *mg_ts_header(const char *alg, const char *kid);
/* base64url without padding. */
char *mg_ts_b64u(const void *p, size_t n);

#endif
