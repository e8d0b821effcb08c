/* ca.c - `meshgate ca init|issue`: a self-signed root and the certificates
 * it signs, built with OpenSSL 3's EVP/X509 APIs (no shelling out).
 *
 * Output layout follows what Istio mounts into a proxy and what
 * Proxy.spec.identity reads: cert-chain.pem (leaf, plus intermediates, of
 * which there are none here), key.pem and root-cert.pem. */
#include "autoconfig.h"
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include "cmd/internal.h"
#include "cmd/cmd.h"
#include "base/base.h"

#define ROOT_DAYS_DEFAULT 3650
#define LEAF_DAYS_DEFAULT 365
#define MAX_DAYS 36500
#define MAX_SANS 64
#define PEM_MAX (1 << 20)       /* a root cert or key file is far smaller */

/* ---------------------------------------------------------------- errors */

static const char *cmd = "ca";  /* "ca init" / "ca issue" once known */

__attribute__((format(printf, 1, 2)))
static int fail(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "meshgate %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return 1;
}

/* OpenSSL keeps its reasons on a thread-local queue; print and clear it so
 * the message says why, not only that it failed. */
static int fail_ssl(const char *what)
{
    unsigned long e = ERR_get_error();
    char buf[256] = "unknown error";
    if (e)
        ERR_error_string_n(e, buf, sizeof buf);
    ERR_clear_error();
    return fail("%s: %s", what, buf);
}

/* ---------------------------------------------------------------- files */

static int mkdir_p(const char *dir, mode_t mode)
{
    char *p = mg_xstrdup(dir);
    for (char *s = p + 1; *s; s++) {
        if (*s != '/')
            continue;
        *s = '\0';
        if (mkdir(p, mode) != 0 && errno != EEXIST) {
            free(p);
            return -1;
        }
        *s = '/';
    }
    int rc = mkdir(p, mode) != 0 && errno != EEXIST ? -1 : 0;
    free(p);
    if (rc == 0) {
        struct stat st;
        if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
            errno = ENOTDIR;
            return -1;
        }
    }
    return rc;
}

/* mkdir_p with the message every command gives when it fails. */
static int make_dir(const char *dir)
{
    if (mkdir_p(dir, 0755) == 0)
        return 0;
    fail("cannot create directory %s: %s", dir, strerror(errno));
    return -1;
}

enum pem_kind { PEM_CERT, PEM_KEY, PEM_TEXT };

/* Write one file atomically (temporary file + rename) because the gateway
 * re-reads identity files when they change and must never see half a file.
 * Keys are created 0600 from the start, never chmod-ed afterwards. */
static int write_file(const char *path, enum pem_kind kind, X509 *const *certs, size_t ncerts,
                      EVP_PKEY *key, const char *text)
{
    char *tmp = mg_xasprintf("%s.tmp.%ld", path, (long)getpid());
    mode_t mode = kind == PEM_KEY ? 0600 : 0644;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0) {
        fail("cannot create %s: %s", tmp, strerror(errno));
        free(tmp);
        return -1;
    }
    if (fchmod(fd, mode) != 0) {        /* the umask may have narrowed it */
        fail("cannot chmod %s: %s", tmp, strerror(errno));
        close(fd);
        unlink(tmp);
        free(tmp);
        return -1;
    }
    FILE *f = fdopen(fd, "w");
    if (!f) {
        close(fd);
        unlink(tmp);
        free(tmp);
        return fail("cannot open %s: %s", path, strerror(errno)), -1;
    }
    int ok = 1;
    if (kind == PEM_CERT)
        for (size_t i = 0; i < ncerts && ok; i++)
            ok = PEM_write_X509(f, certs[i]);
    else if (kind == PEM_KEY)
        ok = PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL);
    else
        ok = fputs(text, f) >= 0;
    if (fflush(f) != 0 || fsync(fileno(f)) != 0)
        ok = 0;
    if (fclose(f) != 0)
        ok = 0;
    if (!ok || rename(tmp, path) != 0) {
        fail("cannot write %s: %s", path, errno ? strerror(errno) : "write error");
        unlink(tmp);
        free(tmp);
        return -1;
    }
    free(tmp);
    return 0;
}

/* The first PEM object of a file: a private key when `key`, else a
 * certificate (X509 *). NULL when the file or the object cannot be read. */
static void *read_pem(const char *path, bool key)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    void *obj = key ? (void *)PEM_read_PrivateKey(f, NULL, NULL, NULL)
                    : (void *)PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    return obj;
}

/* ---------------------------------------------------------------- X.509 */

static EVP_PKEY *gen_key(bool rsa)
{
    EVP_PKEY *k = rsa ? EVP_RSA_gen(2048) : EVP_EC_gen("P-256");
    if (!k)
        fail_ssl("key generation failed");
    return k;
}

/* A random positive 128-bit serial (RFC 5280 allows up to 20 octets). */
static int set_serial(X509 *x)
{
    unsigned char b[16];
    if (RAND_bytes(b, sizeof b) != 1)
        return -1;
    b[0] &= 0x7f;               /* positive in DER's two's complement */
    b[0] |= 0x40;               /* never zero, always 16 bytes long */
    BIGNUM *bn = BN_bin2bn(b, sizeof b, NULL);
    if (!bn)
        return -1;
    ASN1_INTEGER *ai = BN_to_ASN1_INTEGER(bn, NULL);
    BN_free(bn);
    if (!ai)
        return -1;
    int rc = X509_set_serialNumber(x, ai) == 1 ? 0 : -1;
    ASN1_INTEGER_free(ai);
    return rc;
}

static int add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
    X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    if (!e)
        return -1;
    int rc = X509_add_ext(x, e, -1) == 1 ? 0 : -1;
    X509_EXTENSION_free(e);
    return rc;
}

/* A new certificate with version, serial, validity, subject, issuer and key
 * set; extensions are the caller's. notBefore is an hour back so a peer with
 * a slightly slow clock accepts it at once. */
static X509 *new_cert(EVP_PKEY *key, X509_NAME *subject, X509 *issuer, long days)
{
    X509 *x = X509_new();
    if (!x || X509_set_version(x, 2) != 1 || set_serial(x) != 0 ||
        !X509_gmtime_adj(X509_getm_notBefore(x), -3600) ||
        !X509_time_adj_ex(X509_getm_notAfter(x), (int)days, 0, NULL) ||
        X509_set_subject_name(x, subject) != 1 ||
        X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : subject) != 1 ||
        X509_set_pubkey(x, key) != 1) {
        X509_free(x);
        return NULL;
    }
    /* A leaf must not outlive the root that vouches for it. */
    if (issuer && ASN1_TIME_compare(X509_get0_notAfter(x), X509_get0_notAfter(issuer)) > 0 &&
        X509_set1_notAfter(x, X509_get0_notAfter(issuer)) != 1) {
        X509_free(x);
        return NULL;
    }
    return x;
}

static int name_add(X509_NAME *n, const char *field, const char *value)
{
    return X509_NAME_add_entry_by_txt(n, field, MBSTRING_UTF8, (const unsigned char *)value,
                                      -1, -1, 0) == 1 ? 0 : -1;
}

/* SANs are built as GENERAL_NAMEs, not through the config-string parser,
 * so no argument can inject another name with a comma. */
static int gens_add(GENERAL_NAMES *g, int type, const unsigned char *data, int len)
{
    GENERAL_NAME *gn = GENERAL_NAME_new();
    ASN1_STRING *s = type == GEN_IPADD ? ASN1_OCTET_STRING_new() : ASN1_IA5STRING_new();
    if (!gn || !s || ASN1_STRING_set(s, data, len) != 1) {
        GENERAL_NAME_free(gn);
        ASN1_STRING_free(s);
        return -1;
    }
    GENERAL_NAME_set0_value(gn, type, s);
    if (!sk_GENERAL_NAME_push(g, gn)) {
        GENERAL_NAME_free(gn);
        return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------- options */

struct opts {
    const char *dir, *trust_domain, *spiffe, *out_dir, *name, *parent;
    const char *dns[MAX_SANS];
    size_t ndns;
    const char *ip[MAX_SANS];
    size_t nip;
    bool rsa, force, client, help;
    long days;                  /* 0 = default */
};

/* Accepts "--opt VALUE" and "--opt=VALUE". Returns the value, or NULL when
 * argv[*i] is not opt; sets *missing when the value is absent. */
static const char *opt_value(int argc, char **argv, int *i, const char *opt, bool *missing)
{
    size_t n = strlen(opt);
    const char *a = argv[*i];
    if (strncmp(a, opt, n) != 0)
        return NULL;
    if (a[n] == '=')
        return a + n + 1;
    if (a[n] != '\0')
        return NULL;
    if (*i + 1 >= argc) {
        *missing = true;
        return NULL;
    }
    return argv[++*i];
}

static int parse_opts(int argc, char **argv, bool issue, struct opts *o)
{
    memset(o, 0, sizeof *o);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        bool missing = false;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            o->help = true;
        } else if (strcmp(a, "--rsa") == 0) {
            o->rsa = true;
        } else if (!issue && strcmp(a, "--force") == 0) {
            o->force = true;
        } else if (issue && strcmp(a, "--client") == 0) {
            o->client = true;
        } else if ((v = opt_value(argc, argv, &i, "--dir", &missing))) {
            o->dir = v;
        } else if ((v = opt_value(argc, argv, &i, "--trust-domain", &missing))) {
            o->trust_domain = v;
        } else if (!issue && (v = opt_value(argc, argv, &i, "--parent", &missing))) {
            o->parent = v;
        } else if ((v = opt_value(argc, argv, &i, "--days", &missing))) {
            uint64_t d;
            if (mg_parse_uint(v, 1, MAX_DAYS, &d) != 0)
                return fail("--days must be a whole number from 1 to %d, not '%s'", MAX_DAYS, v);
            o->days = (long)d;
        } else if (issue && (v = opt_value(argc, argv, &i, "--spiffe", &missing))) {
            if (o->spiffe)
                return fail("--spiffe given twice");
            o->spiffe = v;
        } else if (issue && (v = opt_value(argc, argv, &i, "--out-dir", &missing))) {
            o->out_dir = v;
        } else if (issue && (v = opt_value(argc, argv, &i, "--name", &missing))) {
            o->name = v;
        } else if (issue && (v = opt_value(argc, argv, &i, "--dns", &missing))) {
            if (o->ndns == MAX_SANS)
                return fail("at most %d --dns names", MAX_SANS);
            o->dns[o->ndns++] = v;
        } else if (issue && (v = opt_value(argc, argv, &i, "--ip", &missing))) {
            if (o->nip == MAX_SANS)
                return fail("at most %d --ip addresses", MAX_SANS);
            o->ip[o->nip++] = v;
        } else if (missing) {
            return fail("%s needs a value", a);
        } else {
            return fail("unknown argument '%s' (see meshgate ca --help)", a);
        }
        if (missing)
            return fail("%s needs a value", a);
    }
    if (o->help)
        return 0;
    if (!o->dir || !*o->dir)
        return fail("--dir DIR is required");
    return 0;
}

static void usage(FILE *out)
{
    fputs("usage: meshgate ca init  --dir DIR [--trust-domain TD] [--parent PDIR] [--rsa] [--days N]\n"
          "                         [--force]\n"
          "       meshgate ca issue --dir DIR --spiffe ns/NS/sa/SA [--trust-domain TD]\n"
          "                         [--out-dir OUT] [--rsa] [--days N]\n"
          "       meshgate ca issue --dir DIR --dns NAME [--dns NAME...] [--ip IP...]\n"
          "                         [--out-dir OUT] [--name BASE] [--client] [--rsa] [--days N]\n"
          "\n"
          "init   writes DIR/root-cert.pem, DIR/root-key.pem (0600) and DIR/trust-domain\n"
          "       (default cluster.local, '@' becomes '.'); refuses to replace a CA unless\n"
          "       --force. With --parent, an intermediate CA signed by the CA in PDIR:\n"
          "       DIR/ca-cert.pem, DIR/ca-key.pem, DIR/ca-chain.pem and DIR/root-cert.pem\n"
          "       (PDIR's root); the trust domain defaults to PDIR's.\n"
          "issue --spiffe  a workload certificate for spiffe://TD/ns/NS/sa/SA (TD from\n"
          "       DIR/trust-domain unless --trust-domain), written as OUT/cert-chain.pem\n"
          "       (leaf and intermediates), OUT/key.pem, OUT/root-cert.pem (default OUT:\n"
          "       DIR/NS-SA), the files Proxy.spec.identity names.\n"
          "issue --dns/--ip  a server certificate (CN = first name, EKU serverAuth, plus\n"
          "       clientAuth with --client), written as OUT/BASE.crt (leaf and\n"
          "       intermediates) and OUT/BASE.key (default OUT: DIR, BASE: the first name).\n"
          "Keys are ECDSA P-256 (RSA 2048 with --rsa). Validity: 3650 days for CAs,\n"
          "365 for leaves, never past the issuer's.\n", out);
}

/* Istio's trust domain rule: '@' becomes '.'; then SPIFFE's characters.
 * Writes the result to td (MG_CA_MAX_TRUST_DOMAIN + 1 bytes). */
static int trust_domain_arg(const char *want, char *td)
{
    if (strlen(want) > MG_CA_MAX_TRUST_DOMAIN)
        return fail("trust domain is longer than %d bytes", MG_CA_MAX_TRUST_DOMAIN);
    snprintf(td, MG_CA_MAX_TRUST_DOMAIN + 1, "%s", want);
    for (char *p = td; *p; p++)
        if (*p == '@')
            *p = '.';
    if (!mg_ca_valid_trust_domain(td))
        return fail("invalid trust domain '%s' (lower-case letters, digits, '.', '-', '_')", want);
    return 0;
}

/* ---------------------------------------------------------------- CA dirs */

/* A CA directory: the root, or an intermediate made by `init --parent`. */
struct ca {
    X509 *cert;                 /* the signer: the root or the intermediate */
    EVP_PKEY *key;              /* its key */
    X509 *root;                 /* the top root (root-cert.pem) */
    STACK_OF(X509) *chain;      /* intermediates from the signer up, excluding the root */
    char td[MG_CA_MAX_TRUST_DOMAIN + 1];
};

static void ca_free(struct ca *ca)
{
    X509_free(ca->cert);
    EVP_PKEY_free(ca->key);
    X509_free(ca->root);
    sk_X509_pop_free(ca->chain, X509_free);
    memset(ca, 0, sizeof *ca);
}

/* Every certificate of a PEM file, in order (at most 16). NULL when the
 * file cannot be read or holds none. */
static STACK_OF(X509) *read_certs(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    STACK_OF(X509) *sk = sk_X509_new_null();
    X509 *x;
    while (sk && sk_X509_num(sk) < 16 && (x = PEM_read_X509(f, NULL, NULL, NULL)))
        if (!sk_X509_push(sk, x)) {
            X509_free(x);
            break;
        }
    fclose(f);
    ERR_clear_error();      /* the read that ended the loop */
    if (sk && sk_X509_num(sk) == 0) {
        sk_X509_free(sk);
        sk = NULL;
    }
    return sk;
}

static int ca_load(const char *dir, struct ca *ca)
{
    memset(ca, 0, sizeof *ca);
    char *root_path = mg_xasprintf("%s/root-cert.pem", dir);
    char *inter_path = mg_xasprintf("%s/ca-cert.pem", dir);
    char *chain_path = mg_xasprintf("%s/ca-chain.pem", dir);
    char *td_path = mg_xasprintf("%s/trust-domain", dir);
    char *cert_path, *key_path, *td = NULL;
    size_t len;
    int rc = -1;
    struct stat st;
    bool intermediate = stat(inter_path, &st) == 0;

    cert_path = mg_xstrdup(intermediate ? inter_path : root_path);
    key_path = mg_xasprintf("%s/%s", dir, intermediate ? "ca-key.pem" : "root-key.pem");
    if (!(ca->root = read_pem(root_path, false))) {
        fail("cannot read a root certificate from %s (run meshgate ca init --dir %s)",
             root_path, dir);
        goto out;
    }
    if (!(ca->cert = read_pem(cert_path, false))) {
        fail("cannot read the CA certificate %s", cert_path);
        goto out;
    }
    if (!(ca->key = read_pem(key_path, true))) {
        fail("cannot read the CA key from %s", key_path);
        goto out;
    }
    if (X509_check_private_key(ca->cert, ca->key) != 1) {
        fail("%s does not belong to %s", key_path, cert_path);
        goto out;
    }
    ca->chain = intermediate ? read_certs(chain_path) : sk_X509_new_null();
    if (!ca->chain) {
        fail("cannot read the intermediate chain %s", chain_path);
        goto out;
    }
    if (!(td = mg_read_file(td_path, PEM_MAX, &len))) {
        fail("cannot read %s: %s", td_path, strerror(errno));
        goto out;
    }
    while (len > 0 && (td[len - 1] == '\n' || td[len - 1] == '\r' || td[len - 1] == ' '))
        td[--len] = '\0';
    if (len > MG_CA_MAX_TRUST_DOMAIN || !mg_ca_valid_trust_domain(td)) {
        fail("%s does not hold a valid trust domain", td_path);
        goto out;
    }
    memcpy(ca->td, td, len + 1);
    rc = 0;
out:
    ERR_clear_error();
    free(td);
    free(root_path);
    free(inter_path);
    free(chain_path);
    free(td_path);
    free(cert_path);
    free(key_path);
    if (rc != 0)
        ca_free(ca);
    return rc;
}

/* Write the leaf followed by the CA's intermediates (Istio's cert-chain). */
static int write_chain(const char *path, X509 *leaf, struct ca *ca)
{
    int n = sk_X509_num(ca->chain);
    X509 **v = mg_xcalloc((size_t)n + 1, sizeof *v);
    v[0] = leaf;
    for (int i = 0; i < n; i++)
        v[i + 1] = sk_X509_value(ca->chain, i);
    int rc = write_file(path, PEM_CERT, v, (size_t)n + 1, NULL, NULL);
    free(v);
    return rc;
}

/* ---------------------------------------------------------------- init */

/* init: a self-signed root, or with --parent an intermediate signed by the
 * CA in the parent directory. An intermediate directory holds ca-cert.pem,
 * ca-key.pem, ca-chain.pem (itself and the parent's intermediates) and a
 * copy of the top root as root-cert.pem, so `issue` and `openssl verify
 * -CAfile DIR/root-cert.pem` work the same on both. */
static int cmd_init(struct opts *o)
{
    char td[MG_CA_MAX_TRUST_DOMAIN + 1];
    struct ca parent = {0};
    bool inter = o->parent != NULL;
    if (inter && ca_load(o->parent, &parent) != 0)
        return 1;
    if (trust_domain_arg(o->trust_domain ? o->trust_domain : inter ? parent.td : "cluster.local",
                         td) != 0) {
        ca_free(&parent);
        return 1;
    }
    char *root_path = mg_xasprintf("%s/root-cert.pem", o->dir);
    char *cert_path = mg_xasprintf("%s/%s", o->dir, inter ? "ca-cert.pem" : "root-cert.pem");
    char *key_path = mg_xasprintf("%s/%s", o->dir, inter ? "ca-key.pem" : "root-key.pem");
    char *chain_path = mg_xasprintf("%s/ca-chain.pem", o->dir);
    char *rkey_path = mg_xasprintf("%s/root-key.pem", o->dir);
    char *icert_path = mg_xasprintf("%s/ca-cert.pem", o->dir);
    char *td_path = mg_xasprintf("%s/trust-domain", o->dir);
    char *td_text = mg_xasprintf("%s\n", td);
    char *cn = mg_xasprintf("meshgate %s %s", inter ? "intermediate" : "root", td);
    EVP_PKEY *key = NULL;
    X509 *x = NULL, *issuer = inter ? parent.cert : NULL;
    X509_NAME *name = NULL;
    int rc = 1;
    struct stat st;

    if (!o->force && (stat(root_path, &st) == 0 || stat(rkey_path, &st) == 0 ||
                      stat(icert_path, &st) == 0)) {
        fail("%s already holds a CA; use --force to replace it "
             "(every certificate it signed stops verifying)", o->dir);
        goto out;
    }
    if (make_dir(o->dir) != 0)
        goto out;
    if (!(key = gen_key(o->rsa)))
        goto out;
    name = X509_NAME_new();
    if (!name || name_add(name, "O", "meshgate") != 0 || name_add(name, "CN", cn) != 0) {
        fail_ssl("cannot build the subject");
        goto out;
    }
    x = new_cert(key, name, issuer, o->days ? o->days : ROOT_DAYS_DEFAULT);
    if (!x || add_ext(x, issuer ? issuer : x, NID_basic_constraints, "critical,CA:TRUE") != 0 ||
        add_ext(x, issuer ? issuer : x, NID_key_usage, "critical,keyCertSign,cRLSign") != 0 ||
        add_ext(x, issuer ? issuer : x, NID_subject_key_identifier, "hash") != 0 ||
        add_ext(x, issuer ? issuer : x, NID_authority_key_identifier, "keyid:always") != 0) {
        fail_ssl("cannot build the CA certificate");
        goto out;
    }
    if (X509_sign(x, inter ? parent.key : key, EVP_sha256()) <= 0) {
        fail_ssl("cannot sign the CA certificate");
        goto out;
    }
    /* Key first: a CA certificate without its key would block a retry. */
    if (write_file(key_path, PEM_KEY, NULL, 0, key, NULL) != 0 ||
        (inter && (write_chain(chain_path, x, &parent) != 0 ||
                   write_file(root_path, PEM_CERT, &parent.root, 1, NULL, NULL) != 0)) ||
        write_file(cert_path, PEM_CERT, &x, 1, NULL, NULL) != 0 ||
        write_file(td_path, PEM_TEXT, NULL, 0, NULL, td_text) != 0)
        goto out;
    if (!inter)
        unlink(icert_path);     /* --force over an intermediate: now a root */
    printf("%s\n%s\n%s\n", cert_path, key_path, td_path);
    rc = 0;
out:
    ca_free(&parent);
    X509_NAME_free(name);
    X509_free(x);
    EVP_PKEY_free(key);
    free(root_path);
    free(cert_path);
    free(key_path);
    free(chain_path);
    free(rkey_path);
    free(icert_path);
    free(td_path);
    free(td_text);
    free(cn);
    return rc;
}

/* ---------------------------------------------------------------- leaves */

/* Sign x with the CA after adding the extensions every leaf has. */
static int finish_leaf(X509 *x, struct ca *ca, const char *eku, GENERAL_NAMES *sans,
                       bool san_critical)
{
    if (add_ext(x, ca->cert, NID_basic_constraints, "critical,CA:FALSE") != 0 ||
        add_ext(x, ca->cert, NID_key_usage, "critical,digitalSignature,keyEncipherment") != 0 ||
        add_ext(x, ca->cert, NID_ext_key_usage, eku) != 0 ||
        add_ext(x, ca->cert, NID_subject_key_identifier, "hash") != 0 ||
        add_ext(x, ca->cert, NID_authority_key_identifier, "keyid:always") != 0 ||
        X509_add1_ext_i2d(x, NID_subject_alt_name, sans, san_critical, X509V3_ADD_DEFAULT) != 1)
        return fail_ssl("cannot build the certificate");
    if (X509_sign(x, ca->key, EVP_sha256()) <= 0)
        return fail_ssl("cannot sign the certificate");
    return 0;
}

/* A leaf in the making: subject and SANs (NULL when out of memory), then
 * its key and certificate. leaf_free releases what is set. */
struct leaf {
    X509_NAME *name;
    GENERAL_NAMES *sans;
    EVP_PKEY *key;
    X509 *x;
};

static void leaf_free(struct leaf *l)
{
    GENERAL_NAMES_free(l->sans);
    X509_NAME_free(l->name);
    X509_free(l->x);
    EVP_PKEY_free(l->key);
}

/* A new key and a certificate for it with l's subject and SANs, signed by the CA. */
static int sign_leaf(const struct opts *o, struct ca *ca, struct leaf *l, const char *eku,
                     bool san_critical)
{
    if (!(l->key = gen_key(o->rsa)))
        return -1;
    l->x = new_cert(l->key, l->name, ca->cert, o->days ? o->days : LEAF_DAYS_DEFAULT);
    if (!l->x)
        return fail_ssl("cannot build the certificate"), -1;
    return finish_leaf(l->x, ca, eku, l->sans, san_critical) != 0 ? -1 : 0;
}

static int issue_spiffe(struct opts *o, struct ca *ca)
{
    char *ns, *sa;
    const char *why;
    if (mg_ca_parse_spiffe_path(o->spiffe, &ns, &sa, &why) != 0)
        return fail("invalid --spiffe '%s': %s", o->spiffe, why);
    char *uri = mg_xasprintf("spiffe://%s/ns/%s/sa/%s", ca->td, ns, sa);
    char *out = o->out_dir ? mg_xstrdup(o->out_dir) : mg_xasprintf("%s/%s-%s", o->dir, ns, sa);
    char *chain_path = mg_xasprintf("%s/cert-chain.pem", out);
    char *key_path = mg_xasprintf("%s/key.pem", out);
    char *root_path = mg_xasprintf("%s/root-cert.pem", out);
    struct leaf l = { X509_NAME_new(), sk_GENERAL_NAME_new_null(), NULL, NULL };
    int rc = 1;

    if (make_dir(out) != 0)
        goto done;
    if (!l.name || !l.sans || gens_add(l.sans, GEN_URI, (const unsigned char *)uri, (int)strlen(uri)) != 0) {
        fail_ssl("out of memory");
        goto done;
    }
    /* Istio's workload certificates have an empty subject, so the SAN is
     * the identity and RFC 5280 requires it to be critical. */
    if (sign_leaf(o, ca, &l, "serverAuth,clientAuth", true) != 0)
        goto done;
    if (write_file(key_path, PEM_KEY, NULL, 0, l.key, NULL) != 0 ||
        write_chain(chain_path, l.x, ca) != 0 ||
        write_file(root_path, PEM_CERT, &ca->root, 1, NULL, NULL) != 0)
        goto done;
    printf("%s\n%s\n%s\n", chain_path, key_path, root_path);
    rc = 0;
done:
    leaf_free(&l);
    free(ns);
    free(sa);
    free(uri);
    free(out);
    free(chain_path);
    free(key_path);
    free(root_path);
    return rc;
}

static int issue_server(struct opts *o, struct ca *ca)
{
    struct mg_addr ips[MAX_SANS];
    for (size_t i = 0; i < o->ndns; i++)
        if (!mg_ca_valid_dns_name(o->dns[i]))
            return fail("invalid --dns name '%s'", o->dns[i]);
    for (size_t i = 0; i < o->nip; i++)
        if (mg_addr_parse_ip(&ips[i], o->ip[i]) != 0)
            return fail("invalid --ip address '%s'", o->ip[i]);
    const char *first = o->ndns ? o->dns[0] : o->ip[0];
    const char *base = o->name ? o->name : first;
    if (!mg_ca_valid_basename(base))
        return fail("invalid --name '%s' (letters, digits, '.', '_', '-', '*')", base);

    const char *out = o->out_dir ? o->out_dir : o->dir;
    char *crt_path = mg_xasprintf("%s/%s.crt", out, base);
    char *key_path = mg_xasprintf("%s/%s.key", out, base);
    struct leaf l = { X509_NAME_new(), sk_GENERAL_NAME_new_null(), NULL, NULL };
    int rc = 1;

    if (make_dir(out) != 0)
        goto done;
    if (!l.name || !l.sans || name_add(l.name, "O", "meshgate") != 0 ||
        name_add(l.name, "CN", first) != 0) {
        fail_ssl("cannot build the subject");
        goto done;
    }
    bool ok = true;
    for (size_t i = 0; ok && i < o->ndns; i++)
        ok = gens_add(l.sans, GEN_DNS, (const unsigned char *)o->dns[i], (int)strlen(o->dns[i])) == 0;
    for (size_t i = 0; ok && i < o->nip; i++)
        ok = gens_add(l.sans, GEN_IPADD, ips[i].ip, ips[i].family == AF_INET ? 4 : 16) == 0;
    if (!ok) {
        fail_ssl("out of memory");
        goto done;
    }
    if (sign_leaf(o, ca, &l, o->client ? "serverAuth,clientAuth" : "serverAuth", false) != 0)
        goto done;
    if (write_file(key_path, PEM_KEY, NULL, 0, l.key, NULL) != 0 ||
        write_chain(crt_path, l.x, ca) != 0)
        goto done;
    printf("%s\n%s\n", crt_path, key_path);
    rc = 0;
done:
    leaf_free(&l);
    free(crt_path);
    free(key_path);
    return rc;
}

static int cmd_issue(struct opts *o)
{
    if (o->spiffe && (o->ndns || o->nip))
        return fail("--spiffe and --dns/--ip make different certificates; give one kind");
    if (!o->spiffe && !o->ndns && !o->nip)
        return fail("give --spiffe ns/NS/sa/SA or at least one --dns/--ip");
    if (o->spiffe && (o->name || o->client))
        return fail("--name and --client apply to --dns/--ip certificates only");
    if (o->trust_domain && !o->spiffe)
        return fail("--trust-domain applies to --spiffe certificates only");
    struct ca ca;
    if (ca_load(o->dir, &ca) != 0)
        return 1;
    /* Another trust domain from the same root: what trustDomainAliases and
     * a migration between trust domains look like. */
    if (o->trust_domain && trust_domain_arg(o->trust_domain, ca.td) != 0) {
        ca_free(&ca);
        return 1;
    }
    int rc = o->spiffe ? issue_spiffe(o, &ca) : issue_server(o, &ca);
    ca_free(&ca);
    return rc;
}

int mg_cmd_ca(int argc, char **argv)
{
    cmd = "ca";
    if (argc < 2) {
        usage(stderr);
        return 1;
    }
    const char *sub = argv[1];
    if (strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0 || strcmp(sub, "help") == 0) {
        usage(stdout);
        return 0;
    }
    bool issue;
    if (strcmp(sub, "init") == 0) {
        cmd = "ca init";
        issue = false;
    } else if (strcmp(sub, "issue") == 0) {
        cmd = "ca issue";
        issue = true;
    } else {
        fail("unknown subcommand '%s' (init or issue)", sub);
        usage(stderr);
        return 1;
    }
    struct opts o;
    if (parse_opts(argc - 1, argv + 1, issue, &o) != 0)
        return 1;
    if (o.help) {
        usage(stdout);
        return 0;
    }
    int rc = issue ? cmd_issue(&o) : cmd_init(&o);
    ERR_clear_error();
    return rc;
}
