/* test_jwt_conformance.c - the JWT vectors of tests/conformance/jwt-vectors.tsv
 * (written after jwt_verify_lib's and Envoy jwt_authn's rules; the file says
 * how) through `meshgate authz --token` in process: each vector names a key
 * set, a signing key, a header, claims, a mutation of the signed token, where
 * the request carries it and the rule's settings, and expects Envoy's
 * outcome: allow, no_token, 401/403 with Envoy's message word for word, or
 * config_error (keys we refuse on purpose). Keys and tokens are made here,
 * fresh each run, with tests/helpers/jwt_sign.c (OpenSSL directly). */
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <jansson.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include "base/base.h"
#include "jwt_sign.h"
#include "tap.h"
#include "authz_run.h"

#ifndef MG_JWT_VECTORS
#error MG_JWT_VECTORS must name the vector file
#endif

#define NOW 1800000000LL
#define ISS "https://idp.example"
#define URI "https://idp.example/jwks.json"

static EVP_PKEY *k_rsa, *k_rsa2, *k_rsa1024, *k_ec256, *k_ec256b, *k_ec384, *k_ec521, *k_ec521s,
    *k_ed;
static const uint8_t secret[] = "a 32-byte HMAC secret for tests!";
static char dir[] = "/tmp/mg-jwtconf.XXXXXX";

__attribute__((format(printf, 1, 2), noreturn)) static void bail(const char *fmt, ...)
{
    va_list ap;
    printf("Bail out! ");
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    exit(1);
}

static int write_file(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    size_t n = strlen(text);
    int rc = fd >= 0 && write(fd, text, n) == (ssize_t)n ? 0 : -1;
    if (fd >= 0)
        close(fd);
    return rc;
}

static EVP_PKEY *key_named(const char *n)
{
    static const struct { const char *name; EVP_PKEY **k; } t[] = {
        {"rsa", &k_rsa}, {"rsa2", &k_rsa2}, {"rsa1024", &k_rsa1024}, {"ec256", &k_ec256},
        {"ec256b", &k_ec256b}, {"ec384", &k_ec384}, {"ec521", &k_ec521}, {"ec521s", &k_ec521s},
        {"ed", &k_ed}};
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        if (!strcmp(n, t[i].name))
            return *t[i].k;
    return NULL;
}

/* A JWK of key `kn` with kid (NULL: none) and extra members, then members
 * removed (comma list in `del`, may be NULL). */
static char *jwk(const char *kn, const char *kid, const char *extra, const char *del)
{
    char *s = mg_ts_jwk(key_named(kn), kid, extra);
    json_t *o = json_loads(s, 0, NULL);
    free(s);
    for (const char *p = del; p && *p;) {
        const char *c = strchr(p, ',');
        char name[16];
        snprintf(name, sizeof name, "%.*s", (int)(c ? c - p : (ptrdiff_t)strlen(p)), p);
        json_object_del(o, name);
        p = c ? c + 1 : "";
    }
    s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return s;
}

/* ec521 key whose x coordinate starts with a zero byte, written one byte
 * short (RFC 7518 wants the full 66 bytes; jwt_verify_lib reads the number). */
static char *jwk_short_x(void)
{
    char *s = mg_ts_jwk(k_ec521s, "k1", "{\"alg\":\"ES512\"}");
    json_t *o = json_loads(s, 0, NULL);
    const char *x = json_string_value(json_object_get(o, "x"));
    /* 66 bytes = 88 base64url chars; a leading zero byte is "AA" + 2 bits */
    uint8_t buf[66];
    size_t n = 0;
    static const char al[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    uint32_t acc = 0;
    int bits = 0;
    for (const char *p = x; *p && n < sizeof buf; p++) {
        acc = acc << 6 | (uint32_t)(strchr(al, *p) - al);
        bits += 6;
        if (bits >= 8)
            bits -= 8, buf[n++] = (uint8_t)(acc >> bits);
    }
    char *shorter = mg_ts_b64u(buf + 1, n - 1);
    json_object_set_new(o, "x", json_string(shorter));
    free(shorter);
    free(s);
    s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return s;
}

/* {"k1": "<PEM certificate of k_rsa>"}: the kid -> certificate map. */
static char *x509_map(void)
{
    X509 *x = X509_new();
    BIO *b = BIO_new(BIO_s_mem());
    char *pem, *out;
    long n;
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, k_rsa);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                               (const unsigned char *)"idp", -1, -1, 0);
    X509_set_issuer_name(x, X509_get_subject_name(x));
    X509_sign(x, k_rsa, EVP_sha256());
    PEM_write_bio_X509(b, x);
    n = BIO_get_mem_data(b, &pem);
    json_t *o = json_object();
    json_object_set_new(o, "k1", json_stringn(pem, (size_t)n));
    out = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    BIO_free(b);
    X509_free(x);
    return out;
}

/* The key set text a vector names (without the "remote:" prefix). */
static char *keyset(const char *name)
{
    const char *v[2] = {0};
    char *a = NULL, *b = NULL, *r;
    size_t n = 1;
    if (!strcmp(name, "bad"))
        return mg_xstrdup("{\"keys\": [");
    if (!strcmp(name, "x509"))
        return x509_map();
    if (!strcmp(name, "rsa"))
        a = jwk("rsa", "k1", "{\"alg\":\"RS256\",\"use\":\"sig\"}", NULL);
    else if (!strcmp(name, "rsa-noalg"))
        a = jwk("rsa", "k1", NULL, NULL);
    else if (!strcmp(name, "rsa-nokid"))
        a = jwk("rsa", NULL, NULL, NULL);
    else if (!strcmp(name, "rsa-kid-number"))
        a = jwk("rsa", NULL, "{\"kid\":7}", NULL);
    else if (!strcmp(name, "rsa-alg-ps256"))
        a = jwk("rsa", "k1", "{\"alg\":\"PS256\"}", NULL);
    else if (!strcmp(name, "rsa1024"))
        a = jwk("rsa1024", "k1", NULL, NULL);
    else if (!strcmp(name, "two"))
        a = jwk("rsa2", "k1", NULL, NULL), b = jwk("rsa", "k2", NULL, NULL), n = 2;
    else if (!strcmp(name, "ec256"))
        a = jwk("ec256", "k1", "{\"alg\":\"ES256\"}", NULL);
    else if (!strcmp(name, "ec256-noalg"))
        a = jwk("ec256", "k1", NULL, NULL);
    else if (!strcmp(name, "ec256-nocrv-noalg"))
        a = jwk("ec256", "k1", NULL, "crv");
    else if (!strcmp(name, "ec384-nocrv"))
        a = jwk("ec384", "k1", "{\"alg\":\"ES384\"}", "crv");
    else if (!strcmp(name, "ec384-nocrv-noalg"))
        a = jwk("ec384", "k1", NULL, "crv");
    else if (!strcmp(name, "ec521-nocrv"))
        a = jwk("ec521", "k1", "{\"alg\":\"ES512\"}", "crv");
    else if (!strcmp(name, "ec384-alg-es256"))
        a = jwk("ec384", "k1", "{\"alg\":\"ES256\"}", NULL);
    else if (!strcmp(name, "ec384"))
        a = jwk("ec384", "k1", NULL, NULL);
    else if (!strcmp(name, "ec521-short-x"))
        a = jwk_short_x();
    else if (!strcmp(name, "ed"))
        a = jwk("ed", "k1", NULL, NULL);
    else if (!strcmp(name, "hs"))
        a = mg_ts_jwk_oct(secret, sizeof secret - 1, "k1");
    else
        return NULL;
    v[0] = a, v[1] = b;
    r = mg_ts_jwks(v, n);
    free(a);
    free(b);
    return r;
}

/* s with every "ISS" and "NOW", "NOW+N", "NOW-N" replaced. */
static char *expand(const char *s)
{
    struct mg_buf o = {0};
    while (*s) {
        if (!strncmp(s, "ISS", 3)) {
            mg_buf_adds(&o, ISS);
            s += 3;
        } else if (!strncmp(s, "NOW", 3)) {
            char *end;
            long long d = 0;
            s += 3;
            if (*s == '+' || *s == '-') {
                d = strtoll(s, &end, 10);
                s = end;
            }
            mg_buf_printf(&o, "%lld", NOW + d);
        } else {
            mg_buf_add(&o, s, 1);
            s++;
        }
    }
    mg_buf_add(&o, "", 0);
    return o.p;
}

static char *replace_span(const char *t, size_t at, size_t n, const char *with)
{
    return mg_xasprintf("%.*s%s%s", (int)at, t, with, t + at + n);
}

/* The signed token t changed as the vector asks (a new string). */
static char *mutate(const char *t, const char *m)
{
    const char *d1 = strchr(t, '.'), *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
    size_t s0 = d2 ? (size_t)(d2 + 1 - t) : 0, slen = strlen(t) - s0;
    if (!strcmp(m, "-") || !d2)
        return mg_xstrdup(t);
    if (!strcmp(m, "trailing-dot"))
        return mg_xasprintf("%s.", t);
    if (!strcmp(m, "leading-dot"))
        return mg_xasprintf(".%s", t);
    if (!strcmp(m, "double-dot"))
        return replace_span(t, (size_t)(d1 - t), 1, "..");
    if (!strcmp(m, "four-sections"))
        return mg_xasprintf("%s.AAAA", t);
    if (!strcmp(m, "two-sections"))
        return mg_xstrndup(t, (size_t)(d2 - t));
    if (!strcmp(m, "empty"))
        return mg_xstrdup("");
    if (!strcmp(m, "pad-sig"))
        return mg_xasprintf("%s%s", t, slen % 4 == 2 ? "==" : slen % 4 == 3 ? "=" : "");
    if (!strcmp(m, "bad-pad-sig"))
        return mg_xasprintf("%s%s", t, slen % 4 == 2 ? "=" : slen % 4 == 3 ? "==" : "===");
    if (!strcmp(m, "plus-sig"))
        return replace_span(t, s0, 1, "+");
    if (!strcmp(m, "plus-header"))     /* not first: extraction skips a leading '+' */
        return replace_span(t, 2, 1, "+");
    if (!strcmp(m, "plus-payload"))
        return replace_span(t, (size_t)(d1 + 1 - t), 1, "+");
    if (!strcmp(m, "flip-sig"))
        return replace_span(t, s0 + slen / 2, 1, t[s0 + slen / 2] == 'A' ? "B" : "A");
    if (!strcmp(m, "trunc-sig"))
        return mg_xstrndup(t, strlen(t) - 4);
    if (!strcmp(m, "strip-sig"))
        return mg_xasprintf("%.*s.", (int)(d2 - t), t);
    if (!strcmp(m, "extra-sig-byte")) {
        /* one byte more in the decoded signature: two more characters
         * when the length is a multiple of 4 (ES256: 64 bytes = 86 chars,
         * so re-encode) */
        uint8_t *sig = NULL;
        size_t n = 0;
        if (mg_base64_decode(t + s0, slen, true, &sig, &n) < 0)
            return mg_xstrdup(t);
        sig = mg_xrealloc(sig, n + 1);
        sig[n] = 0;
        char *b = mg_ts_b64u(sig, n + 1), *r = mg_xasprintf("%.*s%s", (int)s0, t, b);
        free(b);
        free(sig);
        return r;
    }
    bail("unknown mutation %s", m);
}

static bool run_vector(char **f, int lineno)
{
    /* id jwks signer alg header claims mutate request rule expect message */
    const char *id = f[0], *ks = f[1], *signer = f[2], *alg = f[3], *hdr = f[4], *claims = f[5],
               *mut = f[6], *req = f[7], *rule = f[8], *expect = f[9], *msg = f[10];
    bool remote = !strncmp(ks, "remote:", 7), ok_ = true;
    const char *ksname = remote ? ks + 7 : ks;
    char *jwks = strcmp(ksname, "none") ? keyset(ksname) : NULL;
    EVP_PKEY *k = key_named(signer);
    char *h, *p, *raw, *tok, *yaml, *cfg, *jf = NULL, *url, *hv = NULL;
    const char *args[24];
    int na = 0, rc;

    if (strcmp(ksname, "none") && !jwks)
        bail("line %d: unknown key set %s", lineno, ks);
    if (!strcmp(alg, "-"))
        alg = !strcmp(signer, "hs") ? "HS256" : mg_ts_default_alg(k);
    if (!strcmp(hdr, "-"))
        h = mg_ts_header(alg, "k1");
    else if (!strcmp(hdr, "nokid"))
        h = mg_ts_header(alg, NULL);
    else {
        char *e = expand(hdr);
        struct mg_buf b = {0};
        for (const char *s = e; *s; s++)     /* ALG: the alg column */
            if (!strncmp(s, "ALG", 3))
                mg_buf_adds(&b, alg), s += 2;
            else
                mg_buf_add(&b, s, 1);
        mg_buf_add(&b, "", 0);
        free(e);
        h = b.p;
    }
    p = expand(!strcmp(claims, "-") ? "{\"iss\":\"ISS\",\"sub\":\"alice\",\"aud\":\"api\",\"exp\":NOW+3600}"
                                    : claims);
    raw = !strcmp(signer, "hs") ? mg_ts_sign(NULL, secret, sizeof secret - 1, alg, h, p)
                                : mg_ts_sign(k, NULL, 0, alg, h, p);
    if (!raw)
        bail("line %d: cannot sign with %s/%s", lineno, signer, alg);
    tok = mutate(raw, mut);

    /* the rule: issuer ISS, audiences [api] unless `rule` says otherwise */
    struct mg_buf r = {0};
    const char *aud = "[api]";
    char audbuf[256] = "", from[256] = "";
    bool noiss = false;
    for (char *s = strcmp(rule, "-") ? mg_xstrdup(rule) : NULL, *save = NULL, *it = s ? strtok_r(s, ";", &save) : NULL;
         it || (free(s), 0); it = strtok_r(NULL, ";", &save)) {
        if (!strncmp(it, "aud=", 4)) {
            snprintf(audbuf, sizeof audbuf, "[%s]", it + 4);
            aud = audbuf;
        } else if (!strncmp(it, "header=", 7)) {
            char *c = strchr(it + 7, ':');
            snprintf(from, sizeof from, "    fromHeaders: [{name: %.*s, prefix: \"%s\"}]\n",
                     (int)(c ? c - (it + 7) : (ptrdiff_t)strlen(it + 7)), it + 7, c ? c + 1 : "");
        } else if (!strcmp(it, "noiss")) {
            noiss = true;
        } else if (!strncmp(it, "param=", 6)) {
            snprintf(from, sizeof from, "    fromParams: [%s]\n", it + 6);
        } else {
            bail("line %d: unknown rule setting %s", lineno, it);
        }
    }
    if (noiss)
        mg_buf_printf(&r, "  - audiences: %s\n%s", aud, from);
    else
        mg_buf_printf(&r, "  - issuer: %s\n    audiences: %s\n%s", ISS, aud, from);
    if (remote) {
        mg_buf_printf(&r, "    jwksUri: %s\n", URI);
    } else if (jwks) {
        json_t *js = json_string(jwks);     /* a JSON string is a YAML scalar */
        char *q = json_dumps(js, JSON_ENCODE_ANY);
        mg_buf_printf(&r, "    jwks: %s\n", q);
        free(q);
        json_decref(js);
    }
    mg_buf_add(&r, "", 0);
    yaml = mg_xasprintf("apiVersion: meshgate.io/v1alpha1\nkind: Proxy\n"
                        "metadata: {name: gw, namespace: foo, labels: {app: gw}}\nspec: {mode: gateway}\n"
                        "---\napiVersion: security.istio.io/v1\nkind: RequestAuthentication\n"
                        "metadata: {name: jwt, namespace: foo}\nspec:\n  jwtRules:\n%s",
                        r.p);
    free(r.p);
    cfg = mg_xasprintf("%s/cfg.yaml", dir);
    if (write_file(cfg, yaml) < 0)
        bail("cannot write %s", cfg);
    args[na++] = "-c", args[na++] = cfg, args[na++] = "--now", args[na++] = "1800000000";
    if (remote && jwks) {
        char *path = mg_xasprintf("%s/jwks.json", dir);
        if (write_file(path, jwks) < 0)
            bail("cannot write %s", path);
        jf = mg_xasprintf("%s=%s", URI, path);
        free(path);
        args[na++] = "--jwks", args[na++] = jf;
    }
    url = mg_xstrdup("https://app.example.com/x");
    if (!strcmp(req, "-")) {
        args[na++] = "--token", args[na++] = tok;
    } else if (!strncmp(req, "H:", 2) || !strncmp(req, "Q:", 2)) {
        struct mg_buf b = {0};
        for (const char *s = req + 2; *s; s++)      /* {T}: the token */
            if (!strncmp(s, "{T}", 3))
                mg_buf_adds(&b, tok), s += 2;
            else
                mg_buf_add(&b, s, 1);
        mg_buf_add(&b, "", 0);
        if (req[0] == 'H') {
            hv = b.p;
            args[na++] = "--header", args[na++] = hv;
        } else {
            free(url);
            url = mg_xasprintf("https://app.example.com/x?%s", b.p);
            free(b.p);
        }
    } else {
        bail("line %d: unknown request form %s", lineno, req);
    }
    args[na++] = "--url", args[na++] = url;
    args[na] = NULL;
    rc = run_cli(args);

    /* the outcome as the gateway would answer */
    const char *a = strstr(cli_out, "\nauthn: ");
    char got[512] = "?";
    if (rc == 2)
        snprintf(got, sizeof got, "config_error");
    else if (a && !strncmp(a + 8, "ok principal=", 13))
        snprintf(got, sizeof got, "allow");
    else if (a && !strncmp(a + 8, "no token", 8))
        snprintf(got, sizeof got, "no_token");
    else if (a && (!strncmp(a + 8, "401 ", 4) || !strncmp(a + 8, "403 ", 4)))
        snprintf(got, sizeof got, "%.*s", (int)strcspn(a + 8, "\n"), a + 8);
    char *want = strcmp(msg, "-") ? mg_xasprintf("%s %s", expect, msg) : mg_xstrdup(expect);
    ok_ = !strcmp(got, want) && (strcmp(expect, "401") || rc == 3) && (strcmp(expect, "403") || rc == 1) &&
          (strcmp(expect, "allow") || rc == 0);
    if (!ok(ok_, "%s: %s", id, want))
        printf("# line %d: got '%s' (exit %d)\n# token: %s\n# stdout: %s\n# stderr: %s\n", lineno, got,
               rc, tok, cli_out, cli_err);
    free(want);
    free(h), free(p), free(raw), free(tok), free(yaml), free(cfg), free(jf), free(url), free(hv);
    free(jwks);
    return ok_;
}

int main(void)
{
    FILE *fp = fopen(MG_JWT_VECTORS, "r");
    char line[4096];
    int lineno = 0, n = 0;
    if (!fp)
        bail("cannot open %s", MG_JWT_VECTORS);
    if (!mkdtemp(dir))
        bail("mkdtemp");
    k_rsa = mg_ts_genkey("rsa"), k_rsa2 = mg_ts_genkey("rsa"), k_rsa1024 = mg_ts_genkey("rsa1024");
    k_ec256 = mg_ts_genkey("ec256"), k_ec256b = mg_ts_genkey("ec256"), k_ec384 = mg_ts_genkey("ec384");
    k_ec521 = mg_ts_genkey("ec521"), k_ed = mg_ts_genkey("ed25519");
    /* a P-521 key whose x has a leading zero byte (about every other key) */
    for (int i = 0; i < 200 && !k_ec521s; i++) {
        EVP_PKEY *c = mg_ts_genkey("ec521");
        BIGNUM *x = NULL;
        if (EVP_PKEY_get_bn_param(c, "qx", &x) && BN_num_bytes(x) < 66)
            k_ec521s = c;
        else
            EVP_PKEY_free(c);
        BN_free(x);
    }
    if (!k_ec521s)
        bail("no P-521 key with a short x in 200 tries");
    while (fgets(line, sizeof line, fp)) {
        char *f[11], *s = line;
        int nf = 0;
        lineno++;
        line[strcspn(line, "\n")] = 0;
        if (!line[0] || line[0] == '#')
            continue;
        for (char *tab; nf < 11; s = tab + 1) {
            f[nf++] = s;
            if (!(tab = strchr(s, '\t')))
                break;
            *tab = 0;
        }
        if (nf != 11)
            bail("line %d: %d fields, want 11", lineno, nf);
        run_vector(f, lineno);
        n++;
    }
    fclose(fp);
    ok(n >= 60, "%d vectors read", n);
    char *c = mg_xasprintf("%s/cfg.yaml", dir), *j = mg_xasprintf("%s/jwks.json", dir);
    unlink(c), unlink(j), rmdir(dir);
    free(c), free(j);
    EVP_PKEY *all[] = {k_rsa, k_rsa2, k_rsa1024, k_ec256, k_ec256b, k_ec384, k_ec521, k_ec521s, k_ed};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        EVP_PKEY_free(all[i]);
    return tap_done();
}
