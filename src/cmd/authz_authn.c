/* explain_authn.c - request authentication for `meshgate authz`.
 *
 * The explainer never touches the network: a rule's inline jwks is used as
 * compiled, and a remote jwksUri gets its key set from a --jwks file or, like
 * the gateway before its first fetch, none at all (401 "Jwks remote fetch is
 * failed"). The step itself is the data plane's, mg_access_authenticate()
 * (access/authn.c); this file explains its outcome. */
#include "cmd/internal.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define MAX_MISSED 16

struct key_file {
    char *uri;                  /* NULL: the plain FILE for every other URI */
    struct mg_jwks *ks;
};

struct mg_explain_keys {
    struct key_file f[MG_EXPLAIN_MAX_JWKS];
    size_t n;
    struct mg_jwks *fallback;   /* the plain FILE's set, or NULL */
    bool given_bad;             /* a plain FILE was given and held no usable key set */
    char *missed[MAX_MISSED];   /* remote URIs asked for without a key set */
    size_t n_missed;
};

/* Terminal-safe output of strings that come from a token or the command line. */
static void put_safe(const char *s, FILE *out)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c < 0x20 || c == 0x7f)
            fprintf(out, "\\x%02x", c);
        else
            fputc(c, out);
    }
}

/* The key set in a file; NULL with *unreadable set when the file cannot be
 * read. A body the gateway could not use (not a key set, no usable key) is
 * what a failed fetch is to the gateway: a warning, and NULL, so tokens get
 * its answer "Jwks remote fetch is failed". */
static struct mg_jwks *load_file(const char *path, FILE *err, bool *unreadable)
{
    size_t len = 0;
    char msg[256];
    char *buf = mg_read_file(path, MG_JWKS_MAX_JSON, &len);
    *unreadable = !buf;
    if (!buf) {
        fprintf(err, "meshgate authz: --jwks %s: %s\n", path,
                errno == EFBIG ? "larger than 1 MiB" : strerror(errno));
        return NULL;
    }
    /* flags 0: a fetched key set never provides oct (HMAC) keys */
    struct mg_jwks *ks = mg_jwks_parse(buf, len, 0, msg, sizeof msg);
    free(buf);
    if (!ks) {
        fprintf(err, "meshgate authz: warning: --jwks %s: %s (the gateway takes such a body as a "
                "failed fetch)\n", path, msg);
        return NULL;
    }
    for (size_t i = 0; i < mg_jwks_n_warnings(ks); i++)
        fprintf(err, "meshgate authz: warning: --jwks %s: %s\n", path, mg_jwks_warning(ks, i));
    return ks;
}

static bool rule_uses(const struct mg_reqauthn *ra, const char *uri)
{
    for (size_t i = 0; i < mg_reqauthn_n_rules(ra); i++) {
        const char *u = mg_reqauthn_rule_uri(ra, i, NULL, NULL);
        if (u && strcmp(u, uri) == 0)
            return true;
    }
    return false;
}

struct mg_explain_keys *mg_explain_keys_load(const char *const *args, size_t n,
                                             const struct mg_reqauthn *ra, FILE *err)
{
    struct mg_explain_keys *k = mg_xcalloc(1, sizeof *k);
    for (size_t i = 0; i < n && i < MG_EXPLAIN_MAX_JWKS; i++) {
        const char *a = args[i], *eq = NULL, *file = a;
        char *uri = NULL;
        if (mg_has_prefix(a, "https://") || mg_has_prefix(a, "http://")) {
            eq = strrchr(a, '=');
            if (!eq || !eq[1]) {
                fprintf(err, "meshgate authz: --jwks '%s': expected URI=FILE or FILE\n", a);
                goto fail;
            }
            uri = mg_xstrndup(a, (size_t)(eq - a));
            file = eq + 1;
        }
        for (size_t j = 0; j < k->n; j++) {
            bool dup = uri ? k->f[j].uri && strcmp(k->f[j].uri, uri) == 0 : !k->f[j].uri;
            if (dup) {
                fprintf(err, "meshgate authz: --jwks '%s': %s given twice\n", a,
                        uri ? "this URI is" : "a key set for every URI is");
                free(uri);
                goto fail;
            }
        }
        bool unreadable;
        struct mg_jwks *ks = load_file(file, err, &unreadable);
        if (unreadable) {
            free(uri);
            goto fail;
        }
        if (uri && !rule_uses(ra, uri))
            fprintf(err, "meshgate authz: warning: --jwks %s: no applicable jwtRule fetches this URI\n",
                    uri);
        k->f[k->n++] = (struct key_file){uri, ks};
        if (!uri)
            k->fallback = ks;
        k->given_bad |= !uri && !ks;
    }
    return k;
fail:
    mg_explain_keys_free(k);
    return NULL;
}

void mg_explain_keys_free(struct mg_explain_keys *k)
{
    if (!k)
        return;
    for (size_t i = 0; i < k->n; i++) {
        free(k->f[i].uri);
        mg_jwks_unref(k->f[i].ks);
    }
    for (size_t i = 0; i < k->n_missed; i++)
        free(k->missed[i]);
    free(k);
}

static struct mg_jwks *keys_get(void *ctx, const char *uri)
{
    struct mg_explain_keys *k = ctx;
    for (size_t i = 0; i < k->n; i++)
        if (k->f[i].uri && strcmp(k->f[i].uri, uri) == 0)
            return mg_jwks_ref(k->f[i].ks);     /* NULL: the body was unusable */
    if (k->fallback || k->given_bad)
        return mg_jwks_ref(k->fallback);
    for (size_t i = 0; i < k->n_missed; i++)
        if (strcmp(k->missed[i], uri) == 0)
            return NULL;
    if (k->n_missed < MAX_MISSED)
        k->missed[k->n_missed++] = mg_xstrdup(uri);
    return NULL;
}

struct mg_ra_keys mg_explain_keys_lookup(struct mg_explain_keys *k)
{
    /* no kid_miss: there is nothing to refetch offline */
    return (struct mg_ra_keys){.ctx = k, .get = keys_get, .kid_miss = NULL};
}

/* ---- explaining the authentication step ---- */

void mg_explain_authn_print(const struct mg_access_authn *a, const struct mg_explain_keys *k,
                            bool token_given, FILE *out)
{
    const struct mg_ra_result *r = &a->res;
    if (!a->ran) {
        fprintf(out, "authn: no RequestAuthentication applies to this workload%s\n",
                token_given ? " (a token is not verified and gives no principal)" : "");
        return;
    }
    switch (r->status) {
    case MG_RA_PASS:
        if (r->cors_bypass)
            fputs("authn: CORS preflight: JWT not checked (no principal)\n", out);
        else
            fprintf(out, "authn: no token%s\n",
                    token_given ? " (no rule looks for the --token in 'authorization: Bearer': "
                                  "the rules name other locations; use --header or the URL query)"
                                : "");
        return;
    case MG_RA_PASS_PRINCIPAL:
        fputs("authn: ok principal=", out);
        put_safe(r->principal, out);
        fputc('\n', out);
        return;
    case MG_RA_DENY_401:
    case MG_RA_DENY_403:
        break;
    }
    fprintf(out, "authn: %d %s\n", r->http_status, r->body ? r->body : "");
    if (r->www_authenticate) {
        fputs("authn: www-authenticate: ", out);
        put_safe(r->www_authenticate, out);
        fputc('\n', out);
    }
    /* a key set was asked for even when the token failed for another reason */
    for (size_t i = 0; k && r->error == MG_JWKS_FETCH_FAIL && i < k->n_missed; i++) {
        fputs("authn: no key set for ", out);
        put_safe(k->missed[i], out);
        fputs(" (the gateway's answer before its first fetch; give --jwks URI=FILE or --jwks FILE)\n",
              out);
    }
}
