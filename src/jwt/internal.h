/* jwt/internal.h - what only jwt/ uses. */
#ifndef MG_JWT_INTERNAL_H
#define MG_JWT_INTERNAL_H
#include <stdatomic.h>
#include <cjose/cjose.h>
#include <openssl/evp.h>
#include "jwt/jwt.h"

/* the key set layout shared by jwks_parse.c, jwt.c and
 * jwt_cache.c. Not for other modules: use jwt.h. */
enum mg_kty { MG_KTY_RSA, MG_KTY_EC, MG_KTY_OKP, MG_KTY_OCT };

struct mg_jwk {
    char *kid;                  /* NULL = none */
    char *alg;                  /* the JWK's own alg, NULL = any fitting one */
    enum mg_kty kty;
    int crv_bits;               /* EC: 256, 384, 521; OKP: 25519 */
    int bits;                   /* RSA modulus bits */
    cjose_jwk_t *cj;            /* RSA, EC, oct */
    EVP_PKEY *pk;               /* OKP (cjose 0.6.2 has no EdDSA) */
};

struct mg_jwks {
    atomic_long refs;
    uint64_t gen;
    struct mg_jwk *keys;
    size_t n;
    struct mg_strlist warnings;
};

/* Can a key of this type/curve verify `alg`? (alg <-> kty/crv; cjose does not check) */
bool mg_jwk_alg_fits(const char *alg, enum mg_kty kty, int crv_bits);

#endif
