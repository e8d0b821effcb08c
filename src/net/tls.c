/* tls.c - server SSL_CTXs (upstream client contexts: upstream/tls_client.c).
 *
 * OpenSSL 3.0: SSL_set_SSL_CTX() does not carry the verify mode over, so
 * per-SNI mTLS would fail open; use_server() copies verify mode, depth,
 * callback, client CA list, protocol bounds and ciphers. The switch happens
 * in the ClientHello callback, before version and cipher selection.
 * Ticket keys live in one ring outside any SSL_CTX, shared by every context,
 * worker and snapshot: keys inside an SSL_CTX would die with each reload's
 * contexts, and resumption with them. */
#include "net/net.h"
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ocsp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include "base/base.h"
#include "snapshot/snapshot.h"

bool mg_tls_alpn_h2 = true;

static int srv_idx = -1;                /* SSL_CTX ex_data: struct mg_srv * */
static int cfg_idx = -1;                /* SSL_CTX ex_data: const struct mg_config * (ISTIO_MUTUAL) */
static int port_idx = -1;               /* SSL_CTX ex_data: struct mg_port * */
static int sel_idx = -1;                /* SSL ex_data: selected struct mg_srv * */

/* The ticket key ring: keys[0] encrypts, every key decrypts. Either our
 * own random keys (rotated every 12 h, the previous one kept) or the keys
 * of Proxy.spec.tls.sessionTicketKeys, shared by a fleet. */
struct ticket_key {
    unsigned char name[16], aes[32], hmac[32];
    size_t klen;                        /* 16 (AES-128, a 48-byte key) or 32 (AES-256) */
    time_t born;
};
#define TICKET_KEYS_MAX 16
static struct {
    pthread_rwlock_t lock;
    struct ticket_key keys[TICKET_KEYS_MAX];
    size_t n;
    bool from_file;                     /* the operator's keys: never rotated here */
} ring = { .lock = PTHREAD_RWLOCK_INITIALIZER };

static int key_fill(struct ticket_key *k)
{
    if (RAND_bytes(k->name, sizeof(k->name)) != 1 || RAND_bytes(k->aes, sizeof(k->aes)) != 1 ||
        RAND_bytes(k->hmac, sizeof(k->hmac)) != 1)
        return -1;
    k->klen = 32;
    k->born = time(NULL);
    return 0;
}

struct mg_ticket_keys {
    struct ticket_key k[TICKET_KEYS_MAX];
    size_t n;
};

/* One key of the file: 48 or 80 bytes. HAProxy's tls-ticket-keys lines
 * hold name | AES key | HMAC key, nginx's ssl_session_ticket_key files
 * name | HMAC key | AES key. */
static int key_from(struct ticket_key *k, const uint8_t *b, size_t n, bool nginx)
{
    if (n != 48 && n != 80)
        return -1;
    size_t kl = n == 48 ? 16 : 32;
    memset(k, 0, sizeof(*k));
    memcpy(k->name, b, 16);
    memcpy(nginx ? k->hmac : k->aes, b + 16, kl);
    memcpy(nginx ? k->aes : k->hmac, b + 16 + kl, kl);
    k->klen = kl;
    k->born = time(NULL);
    return 0;
}

struct mg_ticket_keys *mg_tls_ticket_keys_load(const char *path, char *err, size_t errlen)
{
    size_t len = 0;
    char *buf = mg_read_file(path, 64 * 1024, &len);
    if (!buf) {
        snprintf(err, errlen, "sessionTicketKeys %s: cannot read: %s", path, strerror(errno));
        return NULL;
    }
    struct mg_ticket_keys *ks = mg_xcalloc(1, sizeof(*ks));
    bool text = true;
    for (size_t i = 0; i < len; i++)
        if (!(isalnum((unsigned char)buf[i]) || buf[i] == '+' || buf[i] == '/' || buf[i] == '=' ||
              buf[i] == '\n' || buf[i] == '\r' || buf[i] == ' ' || buf[i] == '\t' || buf[i] == '#'))
            text = false;
    if (!text) {
        /* nginx: the file is one key of raw bytes */
        if (key_from(&ks->k[0], (const uint8_t *)buf, len, true) < 0) {
            snprintf(err, errlen, "sessionTicketKeys %s: %zu bytes of binary; want one key of 48 or 80 "
                     "bytes (nginx) or base64 lines (HAProxy)", path, len);
            goto fail;
        }
        ks->n = 1;
    } else {
        /* HAProxy: one base64 key per line; blank lines and # comments skipped */
        size_t line = 0;
        for (char *p = buf, *nl; p < buf + len; p = nl + 1) {
            nl = strchr(p, '\n');
            if (!nl)
                nl = buf + len;
            line++;
            char *e = nl;
            while (e > p && (e[-1] == '\r' || e[-1] == ' ' || e[-1] == '\t'))
                e--;
            while (p < e && (*p == ' ' || *p == '\t'))
                p++;
            if (p == e || *p == '#')
                continue;
            uint8_t *raw = NULL;
            size_t rl = 0;
            if (mg_base64_decode(p, (size_t)(e - p), false, &raw, &rl) < 0 || (rl != 48 && rl != 80)) {
                snprintf(err, errlen, "sessionTicketKeys %s:%zu: want a base64 key of 48 or 80 bytes", path,
                         line);
                if (raw)
                    OPENSSL_clear_free(raw, rl);
                goto fail;
            }
            if (ks->n == TICKET_KEYS_MAX) {
                OPENSSL_clear_free(raw, rl);
                snprintf(err, errlen, "sessionTicketKeys %s: more than %d keys", path, TICKET_KEYS_MAX);
                goto fail;
            }
            key_from(&ks->k[ks->n++], raw, rl, false);
            OPENSSL_clear_free(raw, rl);
        }
        if (!ks->n) {
            snprintf(err, errlen, "sessionTicketKeys %s: no key", path);
            goto fail;
        }
    }
    for (size_t i = 0; i < ks->n; i++)
        for (size_t j = 0; j < i; j++)
            if (memcmp(ks->k[i].name, ks->k[j].name, 16) == 0) {
                snprintf(err, errlen, "sessionTicketKeys %s: keys %zu and %zu have the same name", path,
                         j + 1, i + 1);
                goto fail;
            }
    OPENSSL_clear_free(buf, len);
    return ks;
fail:
    OPENSSL_clear_free(buf, len);
    mg_tls_ticket_keys_free(ks);
    return NULL;
}

void mg_tls_ticket_keys_free(struct mg_ticket_keys *ks)
{
    if (ks)
        OPENSSL_clear_free(ks, sizeof(*ks));
}

bool mg_tls_ticket_keys_same(const struct mg_ticket_keys *a, const struct mg_ticket_keys *b)
{
    if (!a || !b)
        return a == b;
    if (a->n != b->n)
        return false;
    for (size_t i = 0; i < a->n; i++)
        if (a->k[i].klen != b->k[i].klen || CRYPTO_memcmp(a->k[i].name, b->k[i].name, 16) != 0 ||
            CRYPTO_memcmp(a->k[i].aes, b->k[i].aes, 32) != 0 ||
            CRYPTO_memcmp(a->k[i].hmac, b->k[i].hmac, 32) != 0)
            return false;
    return true;
}

void mg_tls_ticket_keys_install(const struct mg_ticket_keys *ks)
{
    struct ticket_key own;
    bool fresh = !ks && key_fill(&own) == 0;
    pthread_rwlock_wrlock(&ring.lock);
    if (ks) {
        memcpy(ring.keys, ks->k, ks->n * sizeof(ks->k[0]));
        ring.n = ks->n;
        ring.from_file = true;
    } else if (ring.from_file && fresh) {
        /* back to our own keys: tickets under the file's keys stop resuming */
        OPENSSL_cleanse(ring.keys, sizeof(ring.keys));
        ring.keys[0] = own;
        ring.n = 1;
        ring.from_file = false;
    }
    pthread_rwlock_unlock(&ring.lock);
    if (fresh)
        OPENSSL_cleanse(&own, sizeof(own));
}

int mg_tls_init(void)
{
    if (srv_idx < 0) {
        srv_idx = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, NULL);
        cfg_idx = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, NULL);
        port_idx = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, NULL);
        sel_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
    }
    pthread_rwlock_wrlock(&ring.lock);
    int rc = 0;
    if (!ring.n) {
        rc = key_fill(&ring.keys[0]);
        ring.n = rc == 0;
    }
    pthread_rwlock_unlock(&ring.lock);
    return rc;
}

int mg_tls_ticket_rotate(long max_age_s)
{
    struct ticket_key k;
    int rotated = 0;
    if (key_fill(&k) < 0)
        return 0;
    pthread_rwlock_wrlock(&ring.lock);
    if (!ring.from_file && (!ring.n || time(NULL) - ring.keys[0].born >= max_age_s)) {
        if (ring.n)
            ring.keys[1] = ring.keys[0];
        ring.n = ring.n ? 2 : 1;
        ring.keys[0] = k;
        rotated = 1;
    }
    pthread_rwlock_unlock(&ring.lock);
    OPENSSL_cleanse(&k, sizeof(k));
    return rotated;
}

static int mac_init(EVP_MAC_CTX *mctx, const struct ticket_key *k)
{
    OSSL_PARAM params[2];
    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0);
    params[1] = OSSL_PARAM_construct_end();
    return EVP_MAC_init(mctx, k->hmac, k->klen, params);
}

/* HAProxy and nginx both use AES-CBC, 128 or 256 bits by the key's size. */
static const EVP_CIPHER *cipher_of(const struct ticket_key *k)
{
    return k->klen == 16 ? EVP_aes_128_cbc() : EVP_aes_256_cbc();
}

/* Decrypting, the answer 1 resumes and 2 resumes and issues a new ticket.
 * A TLS 1.3 client uses a ticket once (RFC 8446, C.4) and OpenSSL sends a
 * ticket after a resumed TLS 1.3 handshake only on 2, so 1 there left the
 * client with no ticket: every other connection of a client was a full
 * handshake again. In TLS 1.2 a client keeps its ticket: 1 while the key
 * still encrypts. */
static int ticket_cb(SSL *ssl, unsigned char *name, unsigned char *iv, EVP_CIPHER_CTX *cctx,
                     EVP_MAC_CTX *mctx, int enc)
{
    int rc = -1;
    pthread_rwlock_rdlock(&ring.lock);
    if (enc) {
        const struct ticket_key *k = &ring.keys[0];
        if (ring.n && RAND_bytes(iv, EVP_MAX_IV_LENGTH) == 1 &&
            EVP_EncryptInit_ex(cctx, cipher_of(k), NULL, k->aes, iv) == 1 && mac_init(mctx, k) == 1) {
            memcpy(name, k->name, 16);
            rc = 1;
        }
    } else {
        const struct ticket_key *k = NULL;
        for (size_t i = 0; !k && i < ring.n; i++)
            if (memcmp(name, ring.keys[i].name, 16) == 0)
                k = &ring.keys[i];
        if (!k)
            rc = 0;                     /* unknown key: full handshake */
        else if (mac_init(mctx, k) == 1 && EVP_DecryptInit_ex(cctx, cipher_of(k), NULL, k->aes, iv) == 1)
            rc = k == &ring.keys[0] && SSL_version(ssl) != TLS1_3_VERSION ? 1 : 2;
    }
    pthread_rwlock_unlock(&ring.lock);
    return rc;
}





static int tls_version(enum mg_tls_version v, int dflt)
{
    switch (v) {
    case MG_TLSV1_2: return TLS1_2_VERSION;
    case MG_TLSV1_3: return TLS1_3_VERSION;
    case MG_TLSV1_0: case MG_TLSV1_1: return TLS1_2_VERSION;   /* floor: TLS 1.2 only */
    default: return dflt;
    }
}

/* Is the trust domain of spiffe://<td>/... (v[0..n)) the mesh's own or
 * one of its aliases? (The mesh root may sign other trust domains.) */
static bool mesh_td_ok(const struct mg_config *c, const char *v, size_t n)
{
    if (!c || n <= 9)
        return false;
    const char *td = v + 9, *slash = memchr(td, '/', n - 9);
    size_t tl = slash ? (size_t)(slash - td) : n - 9;
    const char *own = c->mesh.trust_domain ? c->mesh.trust_domain : "cluster.local";
    if (strlen(own) == tl && memcmp(own, td, tl) == 0)
        return true;
    for (size_t i = 0; i < c->mesh.trust_domain_aliases.n; i++)
        if (strlen(c->mesh.trust_domain_aliases.v[i]) == tl &&
            memcmp(c->mesh.trust_domain_aliases.v[i], td, tl) == 0)
            return true;
    return false;
}

/* Does "AB:cd:..." / "abcd..." (verifyCertificateHash) name the digest? */
static bool hash_pin_eq(const char *pin, const unsigned char *md, unsigned int n)
{
    static const char hex[] = "0123456789abcdef";
    unsigned int k = 0;
    for (const char *p = pin; *p; p++) {
        if (*p == ':')
            continue;
        char c = (char)(*p >= 'A' && *p <= 'F' ? *p + 32 : *p);
        if (k >= 2 * n || c != hex[(k % 2) ? md[k / 2] & 15 : md[k / 2] >> 4])
            return false;
        k++;
    }
    return k == 2 * n;
}

/* verifyCertificateHash (hex SHA-256 of the certificate) and
 * verifyCertificateSpki (base64 SHA-256 of its SubjectPublicKeyInfo): when
 * either list is set, one entry of either list must match (Envoy). */
static bool pins_ok(X509 *cert, const struct mg_server_tls *t)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (t->verify_certificate_hash.n && X509_digest(cert, EVP_sha256(), md, &n) == 1)
        for (size_t i = 0; i < t->verify_certificate_hash.n; i++)
            if (hash_pin_eq(t->verify_certificate_hash.v[i], md, n))
                return true;
    if (!t->verify_certificate_spki.n)
        return false;
    unsigned char *der = NULL;
    int dl = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(cert), &der);
    bool ok = false;
    if (dl > 0 && EVP_Digest(der, (size_t)dl, md, &n, EVP_sha256(), NULL) == 1) {
        char *b64 = mg_base64_encode(md, n, false, true);
        for (size_t i = 0; !ok && i < t->verify_certificate_spki.n; i++)
            ok = strcmp(t->verify_certificate_spki.v[i], b64) == 0;
        free(b64);
    }
    OPENSSL_free(der);
    return ok;
}

/* The client certificate policy at depth 0: SAN allow-list (MUTUAL),
 * a spiffe:// URI SAN (ISTIO_MUTUAL), certificate / key pins, or accept
 * anything (insecureSkipVerify). Revocation (caCrl) is the store's. */
static int verify_cb(int ok, X509_STORE_CTX *xs)
{
    SSL *ssl = X509_STORE_CTX_get_ex_data(xs, SSL_get_ex_data_X509_STORE_CTX_idx());
    struct mg_srv *sv = ssl ? SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), srv_idx) : NULL;
    if (!sv)
        return ok;
    const struct mg_server_tls *t = &sv->cfg->tls;
    if (t->insecure_skip_verify)
        return 1;
    if (!ok || X509_STORE_CTX_get_error_depth(xs) != 0)
        return ok;
    X509 *cert = X509_STORE_CTX_get_current_cert(xs);
    GENERAL_NAMES *gens = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
    bool spiffe = false, san_ok = t->subject_alt_names.n == 0;
    const struct mg_config *mc = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), cfg_idx);
    int nuri = 0;
    for (int i = 0; gens && i < sk_GENERAL_NAME_num(gens); i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
        const ASN1_IA5STRING *s = NULL;
        if (g->type == GEN_URI)
            s = g->d.uniformResourceIdentifier;
        else if (g->type == GEN_DNS)
            s = g->d.dNSName;
        if (!s)
            continue;
        const char *v = (const char *)ASN1_STRING_get0_data(s);
        size_t vl = (size_t)ASN1_STRING_length(s);
        if (g->type == GEN_URI) {
            nuri++;
            if (vl > 9 && memcmp(v, "spiffe://", 9) == 0)
                spiffe = t->mode != MG_TLS_ISTIO_MUTUAL || mesh_td_ok(mc, v, vl);
        }
        for (size_t k = 0; k < t->subject_alt_names.n; k++)
            if (strlen(t->subject_alt_names.v[k]) == vl && memcmp(t->subject_alt_names.v[k], v, vl) == 0)
                san_ok = true;
    }
    GENERAL_NAMES_free(gens);
    if (t->mode == MG_TLS_ISTIO_MUTUAL && (!spiffe || nuri != 1)) {
        X509_STORE_CTX_set_error(xs, X509_V_ERR_APPLICATION_VERIFICATION);
        return 0;
    }
    if (!san_ok) {
        X509_STORE_CTX_set_error(xs, X509_V_ERR_APPLICATION_VERIFICATION);
        return 0;
    }
    if ((t->verify_certificate_hash.n || t->verify_certificate_spki.n) && !pins_ok(cert, t)) {
        X509_STORE_CTX_set_error(xs, X509_V_ERR_APPLICATION_VERIFICATION);
        return 0;
    }
    return 1;
}


/* The server's own context is the one in force when ALPN is chosen (an SNI
 * switch happened in the ClientHello callback before). */
static int alpn_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                   const unsigned char *in, unsigned int inlen, void *arg)
{
    (void)arg;
    static const unsigned char h2[] = "\x02h2\x08http/1.1";
    static const unsigned char h1[] = "\x08http/1.1";
    const struct mg_srv *sv = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), srv_idx);
    bool offer_h2 = mg_tls_alpn_h2 && !(sv && sv->alpn_http11_only);
    const unsigned char *ours = offer_h2 ? h2 : h1;
    unsigned int ourlen = offer_h2 ? sizeof(h2) - 1 : sizeof(h1) - 1;
    if (SSL_select_next_proto((unsigned char **)out, outlen, ours, ourlen, in, inlen) !=
        OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK;
    return SSL_TLSEXT_ERR_OK;
}

/* Length-prefixed, so that no two different inputs hash alike. */
static void sid_add(EVP_MD_CTX *md, const void *p, size_t n)
{
    unsigned char len[8];
    for (int i = 0; i < 8; i++)
        len[i] = (unsigned char)((uint64_t)n >> (8 * i));
    EVP_DigestUpdate(md, len, sizeof(len));
    if (n)
        EVP_DigestUpdate(md, p, n);
}

static void sid_adds(EVP_MD_CTX *md, const char *s)
{
    sid_add(md, s ? s : "", s ? strlen(s) : 0);
}

static void sid_add_list(EVP_MD_CTX *md, const struct mg_slist *l)
{
    sid_add(md, &l->n, sizeof(l->n));
    for (size_t i = 0; i < l->n; i++)
        sid_adds(md, l->v[i]);
}

/* A file's bytes: trust material changes with a rotation, not its path, and
 * two servers naming the same bytes by different paths trust alike. */
static void sid_add_file(EVP_MD_CTX *md, const char *path)
{
    size_t n = 0;
    char *data = path ? mg_read_file(path, 16u << 20, &n) : NULL;
    sid_add(md, data, data ? n : 0);
    free(data);
}

static void sid_add_x509(EVP_MD_CTX *md, X509 *x)
{
    unsigned char *der = NULL;
    int n = x ? i2d_X509(x, &der) : 0;
    sid_add(md, der, n > 0 ? (size_t)n : 0);
    OPENSSL_free(der);
}

static EVP_MD_CTX *sid_begin(const char *what)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (!md || !EVP_DigestInit_ex(md, EVP_sha256(), NULL))
        mg_oom();
    sid_adds(md, what);
    return md;
}

static void sid_end(EVP_MD_CTX *md, unsigned char out[32])
{
    unsigned int n = 0;
    if (!EVP_DigestFinal_ex(md, out, &n) || n != 32)
        mg_oom();
    EVP_MD_CTX_free(md);
}

/* Everything of a server's TLS but its certificate: the protocol bounds and
 * cipher list it accepts, and what a client certificate must satisfy (mode,
 * CAs, CRL, SANs, pins, the mesh trust domains for ISTIO_MUTUAL; nothing
 * for SIMPLE, which asks for none). The
 * effective values are hashed, so that spellings of one setting agree. */
static void server_auth(const struct mg_config *c, const struct mg_server_tls *t, SSL_CTX *ctx,
                        const char *caf, const char *ca_pem, unsigned char out[32])
{
    EVP_MD_CTX *md = sid_begin("meshgate server auth v1");
    int v[3] = { (int)t->mode, (int)SSL_CTX_get_min_proto_version(ctx),
                 (int)SSL_CTX_get_max_proto_version(ctx) };
    sid_add(md, v, sizeof(v));
    STACK_OF(SSL_CIPHER) *cs = SSL_CTX_get_ciphers(ctx);
    for (int i = 0; cs && i < sk_SSL_CIPHER_num(cs); i++)
        sid_adds(md, SSL_CIPHER_get_name(sk_SSL_CIPHER_value(cs, i)));
    if (t->mode != MG_TLS_SIMPLE) {
        sid_add(md, &t->insecure_skip_verify, sizeof(t->insecure_skip_verify));
        sid_add_list(md, &t->subject_alt_names);
        sid_add_list(md, &t->verify_certificate_spki);
        sid_add_list(md, &t->verify_certificate_hash);
        if (ca_pem)
            sid_adds(md, ca_pem);
        else
            sid_add_file(md, caf);
        sid_add_file(md, t->ca_crl);
    }
    if (t->mode == MG_TLS_ISTIO_MUTUAL) {
        /* the SPIFFE trust domains a peer may belong to (mesh_td_ok) */
        sid_adds(md, c->mesh.trust_domain ? c->mesh.trust_domain : "cluster.local");
        sid_add_list(md, &c->mesh.trust_domain_aliases);
    }
    sid_end(md, out);
}

/* The session id context of a server. Session tickets are shared by every
 * server of the process and the server is picked from the SNI after the
 * ClientHello, so without a per-server context a session made on a SIMPLE
 * server (no client certificate) would resume on a MUTUAL one and stand in
 * for the certificate. OpenSSL refuses to resume a session whose context
 * differs, so a session only resumes on the server block it was made on,
 * with the same client-authentication settings and trust material. The
 * server certificate is left out: a rotated certificate keeps sessions. */
static void server_sid(const struct mg_srv *srv, const unsigned char auth[32],
                       unsigned char out[32])
{
    EVP_MD_CTX *md = sid_begin("meshgate server session v2");
    sid_adds(md, srv->label);
    sid_add(md, &srv->port->number, sizeof(srv->port->number));
    for (size_t i = 0; i < srv->n_hosts; i++)
        sid_adds(md, srv->hosts[i]);
    sid_add(md, auth, 32);
    sid_end(md, out);
}

/* The TLS a client meets on a server: its settings and the certificate with
 * its chain as loaded (bytes, not file names). Two servers of a port are
 * one TLS for a Host switch only when this is equal (mg_tls_same_settings). */
static void server_tls_id(SSL_CTX *ctx, const unsigned char auth[32], unsigned char out[32])
{
    EVP_MD_CTX *md = sid_begin("meshgate server tls v1");
    STACK_OF(X509) *chain = NULL, *extra = NULL;
    sid_add(md, auth, 32);
    sid_add_x509(md, SSL_CTX_get0_certificate(ctx));
    SSL_CTX_get0_chain_certs(ctx, &chain);
    SSL_CTX_get_extra_chain_certs_only(ctx, &extra);
    for (int i = 0; chain && i < sk_X509_num(chain); i++)
        sid_add_x509(md, sk_X509_value(chain, i));
    sid_adds(md, "extra");
    for (int i = 0; extra && i < sk_X509_num(extra); i++)
        sid_add_x509(md, sk_X509_value(extra, i));
    sid_end(md, out);
}


/* Switch the connection to the chosen server's context. OpenSSL 3.0: the new
 * context's client-certificate policy is not applied by SSL_set_SSL_CTX, so
 * it is copied by hand, with protocol bounds, options, ciphers and the
 * number of tickets. */
static int use_server(SSL *ssl, struct mg_port *p, const char *name, int *alert)
{
    struct mg_srv *sv = mg_port_sni_server(p, name);
    if (!sv || !sv->ctx) {
        *alert = SSL_AD_UNRECOGNIZED_NAME;
        return -1;
    }
    SSL_set_ex_data(ssl, sel_idx, sv);
    /* before OpenSSL looks at the offered session or PSK (server_sid) */
    SSL_set_session_id_context(ssl, sv->sid, sizeof(sv->sid));
    if (SSL_get_SSL_CTX(ssl) != sv->ctx) {
        SSL_CTX *ctx = sv->ctx;
        SSL_set_SSL_CTX(ssl, ctx);
        SSL_set_verify(ssl, SSL_CTX_get_verify_mode(ctx), SSL_CTX_get_verify_callback(ctx));
        SSL_set_verify_depth(ssl, SSL_CTX_get_verify_depth(ctx));
        STACK_OF(X509_NAME) *cas = SSL_CTX_get_client_CA_list(ctx);
        SSL_set_client_CA_list(ssl, cas ? SSL_dup_CA_list(cas) : NULL);
        SSL_set_min_proto_version(ssl, SSL_CTX_get_min_proto_version(ctx));
        SSL_set_max_proto_version(ssl, SSL_CTX_get_max_proto_version(ctx));
        SSL_clear_options(ssl, SSL_get_options(ssl));
        SSL_set_options(ssl, SSL_CTX_get_options(ctx));
        SSL_set_mode(ssl, SSL_CTX_get_mode(ctx));
        SSL_set_num_tickets(ssl, SSL_CTX_get_num_tickets(ctx));
        if (sv->ciphers)
            SSL_set_cipher_list(ssl, sv->ciphers);
    }
    return 0;
}

/* The ClientHello callback runs before protocol version and cipher
 * selection (the servername callback runs after), so a server's
 * min/maxProtocolVersion and cipherSuites can only take effect here. */
static int client_hello_cb(SSL *ssl, int *alert, void *arg)
{
    const unsigned char *d;
    size_t len;
    char name[256];
    const char *sni = NULL;
    if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_server_name, &d, &len)) {
        /* server_name_list: u16 length, then (type u8, u16 length, name) */
        if (len < 5 || (size_t)(d[0] << 8 | d[1]) != len - 2 || d[2] != 0) {
            *alert = SSL_AD_DECODE_ERROR;
            return SSL_CLIENT_HELLO_ERROR;
        }
        size_t nl = (size_t)(d[3] << 8 | d[4]);
        if (nl == 0 || nl > len - 5 || nl >= sizeof(name) || memchr(d + 5, '\0', nl)) {
            *alert = SSL_AD_UNRECOGNIZED_NAME;
            return SSL_CLIENT_HELLO_ERROR;
        }
        memcpy(name, d + 5, nl);
        name[nl] = '\0';
        mg_lower(name);
        sni = name;
    }
    return use_server(ssl, arg, sni, alert) < 0 ? SSL_CLIENT_HELLO_ERROR : SSL_CLIENT_HELLO_SUCCESS;
}

/* Runs after the ClientHello callback; confirms the same choice (and
 * covers a resumed handshake path). */
static int sni_cb(SSL *ssl, int *alert, void *arg)
{
    const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    char low[256];
    if (name) {
        size_t n = strlen(name);
        if (n >= sizeof(low))
            return SSL_TLSEXT_ERR_ALERT_FATAL;
        memcpy(low, name, n + 1);
        mg_lower(low);
    }
    return use_server(ssl, arg, name ? low : NULL, alert) < 0 ? SSL_TLSEXT_ERR_ALERT_FATAL
                                                               : SSL_TLSEXT_ERR_OK;
}

void mg_tls_set_sni(SSL_CTX *ctx, struct mg_port *port)
{
    SSL_CTX_set_ex_data(ctx, port_idx, port);
    SSL_CTX_set_client_hello_cb(ctx, client_hello_cb, port);
    SSL_CTX_set_tlsext_servername_callback(ctx, sni_cb);
    SSL_CTX_set_tlsext_servername_arg(ctx, port);
}

struct mg_srv *mg_tls_selected_server(const SSL *ssl)
{
    return ssl ? SSL_get_ex_data(ssl, sel_idx) : NULL;
}


/* status_request: staple the chosen server's OCSP response. Every server
 * context carries this callback, so it answers for whichever server the
 * ClientHello selected; OpenSSL frees the copy it is given. */
static int ocsp_status_cb(SSL *ssl, void *arg)
{
    (void)arg;
    const struct mg_srv *sv = mg_tls_selected_server(ssl);
    if (!sv || !sv->ocsp)
        return SSL_TLSEXT_ERR_NOACK;
    unsigned char *copy = OPENSSL_memdup(sv->ocsp, sv->ocsp_len);
    if (!copy || SSL_set_tlsext_status_ocsp_resp(ssl, copy, (long)sv->ocsp_len) != 1) {
        OPENSSL_free(copy);
        return SSL_TLSEXT_ERR_NOACK;
    }
    return SSL_TLSEXT_ERR_OK;
}

/* The credential's OCSP staple (file or Secret bytes) into srv->ocsp. It
 * must be a DER OCSPResponse with status "successful": anything else would
 * be stapled to every handshake and refused by every checking client. */
static int load_ocsp(const struct mg_credential *cr, struct mg_srv *srv, char *err, size_t errlen)
{
    size_t n = cr->ocsp_len;
    unsigned char *der = NULL;
    if (cr->ocsp_staple) {
        der = (unsigned char *)mg_read_file(cr->ocsp_staple, 1 << 20, &n);
        if (!der) {
            snprintf(err, errlen, "cannot read ocspStaple %s: %s", cr->ocsp_staple, strerror(errno));
            return -1;
        }
    } else if (cr->ocsp_der) {
        der = mg_xmalloc(n);
        memcpy(der, cr->ocsp_der, n);
    } else {
        return 0;
    }
    const unsigned char *p = der;
    OCSP_RESPONSE *r = d2i_OCSP_RESPONSE(NULL, &p, (long)n);
    int st = r ? OCSP_response_status(r) : -1;
    OCSP_RESPONSE_free(r);
    if (!r || p != der + n || st != OCSP_RESPONSE_STATUS_SUCCESSFUL) {
        ERR_clear_error();
        snprintf(err, errlen, "OCSP staple of credential '%s' is not a successful DER OCSP response",
                 cr->name ? cr->name : "?");
        free(der);
        return -1;
    }
    srv->ocsp = der;
    srv->ocsp_len = n;
    return 0;
}

/* The TLS 1.2 suites when cipherSuites is unset: Envoy's server default
 * (ECDHE only, AEAD only: AES128-GCM and CHACHA20 first, no CBC suites),
 * so a client sees the same list from the gateway as from an Istio
 * ingress. OpenSSL's DEFAULT would also offer CBC-SHA256/SHA384 suites.
 * TLS 1.3 suites are not affected by this list. */
static const char default_tls12_ciphers[] =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305:"
    "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-CHACHA20-POLY1305:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384";

SSL_CTX *mg_tls_server_ctx_new(const struct mg_config *c, const struct mg_server *s,
                               struct mg_srv *srv, char *err, size_t errlen)
{
    const struct mg_server_tls *t = &s->tls;
    if (!t->present) {
        snprintf(err, errlen, "HTTPS server without tls settings");
        return NULL;
    }
    SSL_CTX *ctx = mg_tls_ctx_common(TLS_server_method(), tls_version(t->min_version, TLS1_2_VERSION),
                                     tls_version(t->max_version, TLS1_3_VERSION));
    if (!ctx) {
        mg_tls_err(err, errlen, "SSL_CTX_new", NULL);
        return NULL;
    }
    SSL_CTX_set_ex_data(ctx, srv_idx, srv);
    SSL_CTX_set_ex_data(ctx, cfg_idx, (void *)c);   /* the snapshot owns both */
    /* Send the chain as configured, nothing more: without this OpenSSL
     * completes a chain that lacks intermediates from the certificate
     * store, which on MUTUAL ports holds the client-verification roots,
     * so the root CA went out with every handshake. */
    SSL_CTX_set_mode(ctx, SSL_MODE_NO_AUTO_CHAIN);
    const char *certf = t->server_certificate, *keyf = t->private_key, *caf = t->ca_certificates;
    const char *cert_pem = NULL, *key_pem = NULL, *ca_pem = NULL;
    const char *cred_name = t->credential_name ? t->credential_name
                            : (t->credential_names.n ? t->credential_names.v[0] : NULL);
    if (t->mode == MG_TLS_ISTIO_MUTUAL) {
        certf = c->proxy.identity_cert_chain;
        keyf = c->proxy.identity_private_key;
        caf = c->proxy.identity_root_certs;
        if (!certf || !keyf || !caf) {
            snprintf(err, errlen, "ISTIO_MUTUAL needs Proxy.spec.identity (certificateChain, privateKey, rootCertificates)");
            goto fail;
        }
    } else if (cred_name) {
        const struct mg_credential *cr = mg_config_credential(c, cred_name);
        if (!cr) {
            snprintf(err, errlen, "credentialName '%s' not found (Proxy.spec.credentials or a TLS Secret)", cred_name);
            goto fail;
        }
        certf = cr->certificate;
        keyf = cr->private_key;
        cert_pem = cr->cert_pem;
        key_pem = cr->key_pem;
        if (!caf) {
            caf = cr->ca_certificates;
            ca_pem = cr->ca_pem;
        }
        if (load_ocsp(cr, srv, err, errlen) < 0)
            goto fail;
    }
    if (cert_pem ? mg_tls_load_pem_chain(ctx, cert_pem, err, errlen) < 0
                 : (!certf || SSL_CTX_use_certificate_chain_file(ctx, certf) != 1)) {
        if (!cert_pem)
            mg_tls_err(err, errlen, certf ? "cannot load server certificate" : "no server certificate configured", certf);
        goto fail;
    }
    if (key_pem ? mg_tls_load_pem_key(ctx, key_pem, err, errlen) < 0
                : (!keyf || SSL_CTX_use_PrivateKey_file(ctx, keyf, SSL_FILETYPE_PEM) != 1)) {
        if (!key_pem)
            mg_tls_err(err, errlen, keyf ? "cannot load private key" : "no private key configured", keyf);
        goto fail;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        mg_tls_err(err, errlen, "private key does not match the certificate", NULL);
        goto fail;
    }
    bool mutual = t->mode == MG_TLS_MUTUAL || t->mode == MG_TLS_OPTIONAL_MUTUAL ||
                  t->mode == MG_TLS_ISTIO_MUTUAL;
    if (mutual) {
        if (!caf && !ca_pem) {
            snprintf(err, errlen, "mode %s needs caCertificates",
                     t->mode == MG_TLS_OPTIONAL_MUTUAL ? "OPTIONAL_MUTUAL" : "MUTUAL");
            goto fail;
        }
        if (mg_tls_load_ca(ctx, caf, ca_pem, true, err, errlen) < 0)
            goto fail;
        if (t->ca_crl && mg_tls_load_crl(ctx, t->ca_crl, err, errlen) < 0)
            goto fail;
        int mode = SSL_VERIFY_PEER;
        if (t->mode != MG_TLS_OPTIONAL_MUTUAL)
            mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
        SSL_CTX_set_verify(ctx, mode, verify_cb);
        SSL_CTX_set_verify_depth(ctx, 8);
        /* One TLS 1.3 ticket after a full handshake, not OpenSSL's two: a
         * session here carries the client certificate, and OpenSSL 3.0
         * encodes, re-parses (certificate and public key decoders: about
         * an eighth of a mutual handshake's CPU) and encodes it again for
         * every ticket. A client still gets a new ticket from every
         * connection, full or resumed (ticket_cb), which is what it needs
         * to resume each next one. */
        SSL_CTX_set_num_tickets(ctx, 1);
    } else {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    }
    if (t->cipher_suites.n) {
        struct mg_buf b = { 0 };
        for (size_t i = 0; i < t->cipher_suites.n; i++)
            mg_buf_printf(&b, "%s%s", i ? ":" : "", t->cipher_suites.v[i]);
        if (SSL_CTX_set_cipher_list(ctx, b.p) != 1) {
            mg_tls_err(err, errlen, "no usable cipher in cipherSuites", NULL);
            mg_buf_free(&b);
            goto fail;
        }
        srv->ciphers = b.p;
    } else {
        if (SSL_CTX_set_cipher_list(ctx, default_tls12_ciphers) != 1) {
            mg_tls_err(err, errlen, "cannot set the default TLS 1.2 cipher list", NULL);
            goto fail;
        }
        srv->ciphers = mg_xstrdup(default_tls12_ciphers);
    }
    unsigned char auth[32];
    server_auth(c, t, ctx, caf, ca_pem, auth);
    server_sid(srv, auth, srv->sid);
    server_tls_id(ctx, auth, srv->tls_id);
    SSL_CTX_set_session_id_context(ctx, srv->sid, sizeof(srv->sid));
    SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, ticket_cb);
    SSL_CTX_set_tlsext_status_cb(ctx, ocsp_status_cb);
    if (!srv->tcp)                      /* a TCP server's bytes are no HTTP: no ALPN answer */
        SSL_CTX_set_alpn_select_cb(ctx, alpn_cb, NULL);
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}




