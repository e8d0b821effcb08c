/* mg_jwt_tool - keys, JWKS and signed tokens for end-to-end tests.
 *
 *   mg_jwt_tool genkey --type rsa|rsa1024|ec256|ec384|ec521|ed25519 --out key.pem
 *                      [--kid K] [--jwks-out jwks.json]   (appends to / creates the JWKS)
 *   mg_jwt_tool jwks key1.pem[:kid] ...                    (prints a JWKS)
 *   mg_jwt_tool sign --key key.pem | --secret S  [--alg A] [--kid K]
 *                    [--header JSON] --claims JSON
 *   mg_jwt_tool verify --jwks jwks.json [--inline] TOKEN
 *                    (meshgate's own verifier: prints the claims, or the
 *                    Envoy error text and exits 1; --inline allows oct keys)
 * In --claims, a value +N (or the string "+N" / "-N") of exp, nbf or iat
 * means now+N (now-N). --header replaces the generated header verbatim. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <jansson.h>
#include <openssl/pem.h>
#include "jwt/jwt.h"
#include "jwt_sign.h"

static int usage(void)
{
    fprintf(stderr, "usage: mg_jwt_tool genkey --type T --out F [--kid K] [--jwks-out J]\n"
                    "       mg_jwt_tool jwks KEY.pem[:kid] ...\n"
                    "       mg_jwt_tool sign (--key F | --secret S) [--alg A] [--kid K]"
                    " [--header JSON] --claims JSON\n"
                    "       mg_jwt_tool verify --jwks J [--inline] TOKEN\n");
    return 2;
}

static const char *opt(int argc, char **argv, const char *name)
{
    for (int i = 1; i + 1 < argc; i++)
        if (!strcmp(argv[i], name))
            return argv[i + 1];
    return NULL;
}

static EVP_PKEY *read_key(const char *path)
{
    FILE *f = fopen(path, "r");
    EVP_PKEY *k;
    if (!f) {
        perror(path);
        return NULL;
    }
    k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    if (!k)
        fprintf(stderr, "%s: not a PEM private key\n", path);
    return k;
}

static int cmd_genkey(int argc, char **argv)
{
    const char *type = opt(argc, argv, "--type"), *out = opt(argc, argv, "--out");
    const char *kid = opt(argc, argv, "--kid"), *jout = opt(argc, argv, "--jwks-out");
    EVP_PKEY *k;
    FILE *f;
    if (!type || !out)
        return usage();
    if (!(k = mg_ts_genkey(type))) {
        fprintf(stderr, "unknown key type %s\n", type);
        return 2;
    }
    if (!(f = fopen(out, "w")) || !PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL)) {
        perror(out);
        return 1;
    }
    fclose(f);
    if (jout) {
        json_t *doc = json_load_file(jout, 0, NULL), *keys;
        char *jwk = mg_ts_jwk(k, kid, NULL);
        if (!doc)
            doc = json_pack("{s:[]}", "keys");
        keys = json_object_get(doc, "keys");
        if (!json_is_array(keys)) {
            fprintf(stderr, "%s: not a JWKS\n", jout);
            return 1;
        }
        json_array_append_new(keys, json_loads(jwk, 0, NULL));
        free(jwk);
        if (json_dump_file(doc, jout, JSON_INDENT(1)) < 0) {
            perror(jout);
            return 1;
        }
        json_decref(doc);
    }
    EVP_PKEY_free(k);
    return 0;
}

static int cmd_jwks(int argc, char **argv)
{
    const char **jwks = calloc((size_t)argc, sizeof *jwks);
    size_t n = 0;
    char *out;
    for (int i = 1; i < argc; i++) {
        char *path = strdup(argv[i]), *kid = strrchr(path, ':');
        EVP_PKEY *k;
        if (kid)
            *kid++ = 0;
        if (!(k = read_key(path)))
            return 1;
        jwks[n++] = mg_ts_jwk(k, kid, NULL);
        EVP_PKEY_free(k);
        free(path);
    }
    out = mg_ts_jwks(jwks, n);
    printf("%s\n", out);
    for (size_t i = 0; i < n; i++)
        free((char *)jwks[i]);
    free(jwks);
    free(out);
    return 0;
}

/* "+N" is not JSON; turn every unquoted +digits into now+digits. */
static char *relative_numbers(const char *in, long long now)
{
    size_t cap = strlen(in) * 2 + 64, o = 0;
    char *out = malloc(cap);
    int instr = 0;
    for (const char *p = in; *p; p++) {
        if (o + 32 >= cap)
            out = realloc(out, cap *= 2);
        if (instr) {
            out[o++] = *p;
            if (*p == '\\' && p[1])
                out[o++] = *++p;
            else if (*p == '"')
                instr = 0;
        } else if (*p == '"') {
            instr = 1;
            out[o++] = *p;
        } else if (*p == '+' && p[1] >= '0' && p[1] <= '9') {
            long long v = strtoll(p + 1, (char **)&p, 10);
            o += (size_t)snprintf(out + o, cap - o, "%lld", now + v);
            p--;
        } else {
            out[o++] = *p;
        }
    }
    out[o] = 0;
    return out;
}

static int cmd_sign(int argc, char **argv)
{
    const char *keyf = opt(argc, argv, "--key"), *secret = opt(argc, argv, "--secret");
    const char *alg = opt(argc, argv, "--alg"), *kid = opt(argc, argv, "--kid");
    const char *hdr = opt(argc, argv, "--header"), *claims = opt(argc, argv, "--claims");
    long long now = (long long)time(NULL);
    EVP_PKEY *k = NULL;
    char *pl, *h, *tok;
    json_t *o;
    if (!claims || (!keyf && !secret))
        return usage();
    if (keyf && !(k = read_key(keyf)))
        return 1;
    if (!alg)
        alg = k ? mg_ts_default_alg(k) : "HS256";
    pl = relative_numbers(claims, now);
    if ((o = json_loads(pl, JSON_PRESERVE_ORDER, NULL))) {
        static const char *const t[] = {"exp", "nbf", "iat", NULL};
        for (const char *const *n = t; *n; n++) {
            const char *s = json_string_value(json_object_get(o, *n));
            if (s && (s[0] == '+' || s[0] == '-'))
                json_object_set_new(o, *n, json_integer(now + strtoll(s, NULL, 10)));
        }
        free(pl);
        pl = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
        json_decref(o);
    }
    h = hdr ? strdup(hdr) : mg_ts_header(alg, kid);
    tok = mg_ts_sign(k, (const uint8_t *)secret, secret ? strlen(secret) : 0, alg, h, pl);
    free(h);
    free(pl);
    EVP_PKEY_free(k);
    if (!tok) {
        fprintf(stderr, "signing failed (alg %s does not fit the key?)\n", alg);
        return 1;
    }
    printf("%s\n", tok);
    free(tok);
    return 0;
}

static int cmd_verify(int argc, char **argv)
{
    const char *jf = opt(argc, argv, "--jwks"), *tok = argc > 1 ? argv[argc - 1] : NULL;
    bool inl = false;
    size_t len;
    char *doc, err[256], *claims;
    struct mg_jwks *ks;
    struct mg_jwt j;
    enum mg_jwt_error e;
    for (int i = 1; i < argc; i++)
        inl |= !strcmp(argv[i], "--inline");
    if (!jf || !tok || tok == jf)
        return usage();
    if (!(doc = mg_read_file(jf, MG_JWKS_MAX_JSON, &len))) {
        perror(jf);
        return 2;
    }
    ks = mg_jwks_parse(doc, len, inl ? MG_JWKS_ALLOW_OCT : 0, err, sizeof err);
    free(doc);
    if (!ks) {
        fprintf(stderr, "%s: %s\n", jf, err);
        return 2;
    }
    for (size_t i = 0; i < mg_jwks_n_warnings(ks); i++)
        fprintf(stderr, "warning: %s\n", mg_jwks_warning(ks, i));
    if (mg_jwt_verify(ks, tok, strlen(tok), (int64_t)time(NULL), &j, &e) < 0) {
        printf("%s\n", mg_jwt_error_str(e));
        mg_jwt_clear(&j);
        mg_jwks_unref(ks);
        return 1;
    }
    claims = json_dumps(j.payload, JSON_COMPACT | JSON_SORT_KEYS);
    printf("%s\n", claims);
    free(claims);
    mg_jwt_clear(&j);
    mg_jwks_unref(ks);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return usage();
    if (!strcmp(argv[1], "genkey"))
        return cmd_genkey(argc - 1, argv + 1);
    if (!strcmp(argv[1], "jwks"))
        return cmd_jwks(argc - 1, argv + 1);
    if (!strcmp(argv[1], "sign"))
        return cmd_sign(argc - 1, argv + 1);
    if (!strcmp(argv[1], "verify"))
        return cmd_verify(argc - 1, argv + 1);
    return usage();
}
