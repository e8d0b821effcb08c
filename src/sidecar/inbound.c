/* inbound.c - sidecar inbound listeners and PeerAuthentication per port.
 *
 * The inbound entry is made to look like a one-server, one-route gateway
 * port so the request path (codecs, access phase, upstream pool, access
 * log, metrics) runs unchanged; only the connection start differs: the
 * mode of the connection's snapshot decides TLS or plain text, and for
 * PERMISSIVE the ClientHello is peeked before any SSL exists. */
#include "sidecar/sidecar.h"
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include "access/access.h"
#include "net/net.h"
#include "http/http.h"
#include "policy/policy.h"
#include "route/route.h"
#include "snapshot/snapshot.h"
#include "upstream/upstream.h"

struct mg_inbound_set {
    size_t n;
    struct mg_inbound_port *ports;
    struct mg_srv *srvs;
    struct mg_server *servers;          /* synthetic Gateway server config per port */
    struct mg_route *routes;
    struct mg_http_route *http;         /* zeroed: no timeout, default retries */
    struct mg_route_dest *rdest;        /* zeroed: no header edits */
    const struct mg_config *cfg;        /* trust domain and aliases for the handshake */
    size_t n_cfg;                       /* entries of srvs/servers/routes (config order) */
};

static int td_idx = -1;                 /* SSL_CTX ex_data: struct mg_inbound_set * */

/* ---- TLS ---- */

static bool td_allowed(const struct mg_config *c, const char *td, size_t n)
{
    const char *own = c->mesh.trust_domain ? c->mesh.trust_domain : "cluster.local";
    if (strlen(own) == n && memcmp(own, td, n) == 0)
        return true;
    for (size_t i = 0; i < c->mesh.trust_domain_aliases.n; i++) {
        const char *a = c->mesh.trust_domain_aliases.v[i];
        if (strlen(a) == n && memcmp(a, td, n) == 0)
            return true;
    }
    return false;
}

/* Mesh peers only: chain to the identity roots (OpenSSL checked that,
 * `ok`), then exactly one URI SAN, spiffe://, in the trust domain set. */
static int mesh_verify_cb(int ok, X509_STORE_CTX *xs)
{
    if (!ok || X509_STORE_CTX_get_error_depth(xs) != 0)
        return ok;
    SSL *ssl = X509_STORE_CTX_get_ex_data(xs, SSL_get_ex_data_X509_STORE_CTX_idx());
    const struct mg_inbound_set *set = ssl ? SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), td_idx) : NULL;
    X509 *cert = X509_STORE_CTX_get_current_cert(xs);
    if (!set || !cert)
        goto refuse;
    GENERAL_NAMES *gens = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
    int nuri = 0;
    bool good = false;
    for (int i = 0; gens && i < sk_GENERAL_NAME_num(gens); i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
        if (g->type != GEN_URI)
            continue;
        nuri++;
        const char *v = (const char *)ASN1_STRING_get0_data(g->d.uniformResourceIdentifier);
        size_t vl = (size_t)ASN1_STRING_length(g->d.uniformResourceIdentifier);
        if (vl > 9 && memcmp(v, "spiffe://", 9) == 0 && !memchr(v, '\0', vl)) {
            const char *td = v + 9, *slash = memchr(td, '/', vl - 9);
            good = slash && slash > td && td_allowed(set->cfg, td, (size_t)(slash - td));
        }
    }
    GENERAL_NAMES_free(gens);
    if (nuri == 1 && good)
        return 1;
refuse:
    X509_STORE_CTX_set_error(xs, X509_V_ERR_APPLICATION_VERIFICATION);
    return 0;
}

/* The answer must be one of the client's names (RFC 7301 3.2), so an
 * Istio-only offer is answered with its own token: istio-h2 runs HTTP/2
 * (conn.c), istio-http/1.x runs HTTP/1.1; only istio/istio-peer-exchange
 * gets no ALPN and HTTP/1.1. */
static const unsigned char *offered(const unsigned char *in, unsigned int inlen, const char *name)
{
    size_t nl = strlen(name);
    for (unsigned int i = 0; i < inlen;) {
        unsigned int l = in[i];
        if (l == 0 || i + 1 + l > inlen)
            return NULL;
        if (l == nl && memcmp(in + i + 1, name, nl) == 0)
            return in + i + 1;
        i += 1 + l;
    }
    return NULL;
}

static int mesh_alpn_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                        const unsigned char *in, unsigned int inlen, void *arg)
{
    (void)ssl;
    (void)arg;
    static const char *const h2_pref[] = { "h2", "istio-h2", "http/1.1", "istio-http/1.1",
                                           "istio-http/1.0" };
    for (size_t i = mg_tls_alpn_h2 ? 0 : 2; i < MG_ARRAY_LEN(h2_pref); i++) {
        const unsigned char *p = offered(in, inlen, h2_pref[i]);
        if (p) {
            *out = p;
            *outlen = (unsigned char)strlen(h2_pref[i]);
            return SSL_TLSEXT_ERR_OK;
        }
    }
    return SSL_TLSEXT_ERR_NOACK;
}

static SSL_CTX *mesh_ctx(struct mg_inbound_set *set, const struct mg_config *c, const struct mg_server *sc,
                         struct mg_srv *sv, char *err, size_t errlen)
{
    if (td_idx < 0)
        td_idx = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, NULL);
    SSL_CTX *ctx = mg_tls_server_ctx_new(c, sc, sv, err, errlen);
    if (!ctx)
        return NULL;
    SSL_CTX_set_ex_data(ctx, td_idx, set);
    /* Tickets are sealed with the process-wide key ring, so the session id
     * context is what keeps a session where it was verified: the one
     * mg_tls_server_ctx_new set is this port's (its label and bind port)
     * and digests the trust it was verified against (the mesh roots, the
     * trust domain and its aliases). A constant here let a session resume
     * after a reload had changed the roots or dropped an alias, with no
     * certificate check, and it must not be overridden. */
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, mesh_verify_cb);
    /* Istio's sidecar inbound TLS 1.2 defaults (Envoy's cipher list for the mesh listener); TLS 1.3
     * keeps OpenSSL's AEAD-only suites */
    if (SSL_CTX_set_cipher_list(ctx, "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
                                "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
                                "AES256-GCM-SHA384:AES128-GCM-SHA256") != 1) {
        snprintf(err, errlen, "cannot set the mesh cipher list");
        SSL_CTX_free(ctx);
        return NULL;
    }
    SSL_CTX_set_alpn_select_cb(ctx, mesh_alpn_cb, NULL);
    return ctx;
}

/* ---- build ---- */

static int split(const char *s, char *ip, size_t iplen, uint16_t *port)
{
    struct mg_addr a;
    if (!s || mg_split_host_port(s, ip, iplen, port) < 0 || !*port || mg_addr_parse_ip(&a, ip) < 0)
        return -1;
    return 0;
}

static struct mg_cluster *app_cluster(const struct mg_inbound *in, const char *ip, uint16_t port,
                                      int n_workers)
{
    struct mg_addr a;
    mg_addr_parse_ip(&a, ip);
    struct mg_cluster *cl = mg_xcalloc(1, sizeof(*cl));
    cl->name = mg_xasprintf("inbound|%u||", in->port);
    cl->host = mg_xstrdup(ip);
    cl->port = port;
    cl->eps = mg_xcalloc(1, sizeof(*cl->eps));
    struct mg_endpoint *ep = &cl->eps[0];
    cl->n_eps = 1;
    ep->address = mg_xstrdup(ip);
    ep->port = port;
    if (a.family == AF_INET) {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ep->sa;
        s4->sin_family = AF_INET;
        s4->sin_port = htons(port);
        memcpy(&s4->sin_addr, a.ip, 4);
        ep->salen = sizeof(*s4);
        ep->label = mg_xasprintf("%s:%u", ip, port);
    } else {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ep->sa;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons(port);
        memcpy(&s6->sin6_addr, a.ip, 16);
        ep->salen = sizeof(*s6);
        ep->label = mg_xasprintf("[%s]:%u", ip, port);
    }
    ep->resolved = true;
    cl->lb = MG_LB_ROUND_ROBIN;
    cl->connect_timeout_ms = 10000;
    cl->idle_timeout_ms = 3600000;
    cl->n_workers = n_workers;
    cl->rt = mg_xcalloc((size_t)n_workers, sizeof(*cl->rt));
    for (int i = 0; i < n_workers; i++)
        cl->rt[i].active = mg_xcalloc(1, sizeof(uint32_t));
    cl->stat_name = mg_intern(cl->name);
    return cl;
}

static void add_cluster(struct mg_snapshot *s, struct mg_cluster *cl)
{
    if (s->n_clusters == s->cap_clusters) {
        s->cap_clusters = s->cap_clusters ? s->cap_clusters * 2 : 8;
        s->clusters = mg_xrealloc(s->clusters, s->cap_clusters * sizeof(*s->clusters));
    }
    s->clusters[s->n_clusters++] = cl;
}

int mg_inbound_build(struct mg_snapshot *s, struct mg_diags *d)
{
    const struct mg_config *c = s->cfg;
    const struct mg_proxy *px = &c->proxy;
    s->inbound = NULL;
    if (px->mode != MG_MODE_SIDECAR || px->n_inbound == 0)
        return 0;                       /* gateway mode: config_mesh.c warned */
    size_t n = px->n_inbound;
    struct mg_inbound_set *set = mg_xcalloc(1, sizeof(*set));
    set->cfg = c;
    set->n_cfg = n;
    set->ports = mg_xcalloc(n, sizeof(*set->ports));
    set->srvs = mg_xcalloc(n, sizeof(*set->srvs));
    set->servers = mg_xcalloc(n, sizeof(*set->servers));
    set->routes = mg_xcalloc(n, sizeof(*set->routes));
    set->http = mg_xcalloc(n, sizeof(*set->http));
    set->rdest = mg_xcalloc(n, sizeof(*set->rdest));
    s->inbound = set;
    bool have_identity = px->identity_cert_chain && px->identity_private_key && px->identity_root_certs;
    if (!have_identity)
        mg_warning(d, px->pos, "sidecar without Proxy.spec.identity: inbound mTLS (STRICT, and Istio "
                   "mTLS under PERMISSIVE) is refused");
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        const struct mg_inbound *in = &px->inbound[i];
        char bip[256], fip[256];
        uint16_t bport = 0, fport = 0;
        if (split(in->bind, bip, sizeof(bip), &bport) < 0 ||
            split(in->forward_to, fip, sizeof(fip), &fport) < 0) {
            mg_error(d, in->pos, "inbound port %u: bind and forwardTo must be IP:port", in->port);
            rc = -1;
            continue;
        }
        if (in->protocol == MG_PROTO_TLS || in->protocol == MG_PROTO_MONGO ||
            in->protocol == MG_PROTO_HTTPS) {
            mg_warning(d, in->pos, "inbound port %u: protocol %s is not served by this build "
                       "(HTTP, HTTP2, GRPC, TCP only); skipped", in->port, mg_app_proto_name(in->protocol));
            continue;
        }
        if (mg_snapshot_port(s, bport)) {
            mg_error(d, in->pos, "inbound port %u: bind port %u is already used by another listener",
                     in->port, bport);
            rc = -1;
            continue;
        }
        struct mg_inbound_port *ip = &set->ports[set->n++];
        ip->cfg = in;
        ip->workload_port = in->port;
        ip->bind_port = bport;
        ip->bind_ip = mg_xstrdup(bip);
        ip->tcp = in->protocol == MG_PROTO_TCP;

        struct mg_server *sc = &set->servers[i];
        sc->port = in->port;
        sc->protocol = in->protocol;
        sc->pos = in->pos;
        sc->tls.present = true;
        sc->tls.mode = MG_TLS_ISTIO_MUTUAL;

        struct mg_route *r = &set->routes[i];
        r->cfg = &set->http[i];
        char rname[32];
        snprintf(rname, sizeof(rname), "inbound|%u||", in->port);
        r->name = mg_intern(rname);
        r->n_dests = 1;
        r->dests = mg_xcalloc(1, sizeof(*r->dests));
        r->dests[0].cfg = &set->rdest[i];
        r->dests[0].weight = 100;
        r->total_weight = 100;
        struct mg_cluster *cl = app_cluster(in, fip, fport, s->n_workers);
        add_cluster(s, cl);
        r->dests[0].cluster = cl;

        struct mg_port *p = &s->ports[s->n_ports++];
        memset(p, 0, sizeof(*p));
        p->number = bport;
        p->bind_ip = ip->bind_ip;
        p->inbound = ip;
        p->srv = mg_xmalloc(sizeof(*p->srv));

        struct mg_srv *sv = &set->srvs[i];
        sv->cfg = sc;
        sv->port = p;
        sv->hosts = mg_xcalloc(1, sizeof(char *));
        sv->hosts[0] = mg_xstrdup("*");
        sv->n_hosts = 1;
        sv->label = mg_xasprintf("inbound|%u", in->port);
        sv->routes.v = mg_xcalloc(1, sizeof(*sv->routes.v));
        sv->routes.n = 1;
        sv->routes.v[0].host = mg_xstrdup("*");
        sv->routes.v[0].routes = mg_xmalloc(sizeof(struct mg_route *));
        sv->routes.v[0].routes[0] = r;
        sv->routes.v[0].n_routes = 1;
        p->srv[0] = sv;
        p->n_srv = 1;

        if (have_identity) {
            char err[256];
            ip->mtls = mesh_ctx(set, c, sc, sv, err, sizeof(err));
            if (!ip->mtls) {
                mg_error(d, px->pos, "inbound port %u: mesh identity: %s", in->port, err);
                rc = -1;
            }
        }
    }
    return rc;
}

void mg_inbound_free(struct mg_inbound_set *set)
{
    if (!set)
        return;
    for (size_t i = 0; i < set->n; i++) {
        if (set->ports[i].mtls)
            SSL_CTX_free(set->ports[i].mtls);
        free(set->ports[i].bind_ip);
    }
    /* srvs/routes are indexed by config entry, some possibly unused */
    for (size_t i = 0; i < set->n_cfg; i++) {
        struct mg_srv *sv = &set->srvs[i];
        if (sv->hosts)
            free(sv->hosts[0]);
        free(sv->hosts);
        free(sv->label);
        free(sv->ciphers);
        for (size_t v = 0; v < sv->routes.n; v++) {
            free(sv->routes.v[v].host);
            free(sv->routes.v[v].routes);
        }
        free(sv->routes.v);
        free(set->routes[i].dests);
    }
    free(set->ports);
    free(set->srvs);
    free(set->servers);
    free(set->routes);
    free(set->http);
    free(set->rdest);
    free(set);
}

/* ---- connections ---- */

enum mg_mtls_mode mg_inbound_mode(const struct mg_snapshot *s, const struct mg_inbound_port *ip)
{
    const struct mg_policy_set *ps = s->access ? mg_access_policies(s->access) : NULL;
    enum mg_mtls_mode m = ps ? mg_peer_authn_mode(ps, ip->workload_port) : MG_MTLS_PERMISSIVE;
    return m == MG_MTLS_UNSET ? MG_MTLS_PERMISSIVE : m;
}

struct peek {
    struct event *ev;
    int fd;                             /* owned until handed to an mg_io */
    bool tls_ok;                        /* PERMISSIVE: an Istio hello is terminated */
    bool et;                            /* the backend has edge-triggered events */
};

/* HTTP/2 with prior knowledge (h2c): the client preface of RFC 9113 3.4 */
static const char H2_PREFACE[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
#define H2_PREFACE_LEN (sizeof(H2_PREFACE) - 1)

static void peek_free(struct mg_conn *c)
{
    struct peek *pk = c->codec;
    if (!pk)
        return;
    if (pk->ev)
        event_free(pk->ev);
    if (pk->fd >= 0)
        close(pk->fd);
    free(pk);
    c->codec = NULL;
    c->codec_free = NULL;
    c->codec_drain = NULL;
}

static bool peek_drain(struct mg_conn *c)
{
    mg_conn_close(c);                   /* nothing in flight yet */
    return true;
}

static void start_plain(struct mg_conn *c, int fd, bool h2)
{
    c->io = mg_io_socket_new(c->w->base, fd, NULL, MG_IO_OPEN);
    if (!c->io) {
        close(fd);
        mg_conn_close(c);
        return;
    }
    c->handshake_done = true;
    if (h2)
        mg_h2_server_start(c);
    else
        mg_conn_start_codec(c);
}

static void start_tls(struct mg_conn *c, int fd)
{
    SSL_CTX *ctx = c->port->inbound->mtls;
    SSL *ssl = ctx ? SSL_new(ctx) : NULL;
    if (ssl)
        c->io = mg_io_socket_new(c->w->base, fd, ssl, MG_IO_ACCEPTING);
    if (!c->io) {
        if (ssl)
            SSL_free(ssl);              /* not yet owned by an mg_io */
        close(fd);
        mg_conn_close(c);
        return;
    }
    c->ssl = ssl;
    mg_conn_start_handshake(c);
}

/* Edge-triggered: a hello that is still incomplete does not wake us again
 * until more bytes arrive (MSG_PEEK leaves the socket readable). */
static void peek_cb(evutil_socket_t fd, short what, void *arg)
{
    struct mg_conn *c = arg;
    struct peek *pk = c->codec;
    if (!pk)
        return;
    mg_conn_ref(c);
    if (what & EV_TIMEOUT) {
        /* a silent client: for TCP it may be a server-first protocol, so
         * plain text; an HTTP client always speaks first */
        if (c->port->inbound->tcp) {
            pk->fd = -1;
            peek_free(c);
            start_plain(c, (int)fd, false);
        } else {
            mg_conn_close(c);
        }
        goto out;
    }
    unsigned char buf[MG_TLS_PEEK_MAX];
    ssize_t n = recv(fd, buf, sizeof(buf), MSG_PEEK);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        goto out;
    if (n <= 0) {
        mg_conn_close(c);
        goto out;
    }
    /* without edge triggering a partial prefix would wake us in a loop:
     * decide on what is there (an incomplete hello is then plain text) */
    bool can_wait = pk->et && (size_t)n < sizeof(buf);
    bool tls = false, h2 = false;
    if (pk->tls_ok && buf[0] == 0x16) {
        struct mg_tls_hello h;
        int rc = mg_tls_hello_peek(buf, (size_t)n, MG_TLS_HELLO_MESH, &h);
        if (rc == MG_TLS_HELLO_MORE && can_wait)
            goto out;                   /* wait for the rest of the first record */
        /* a hello without an Istio ALPN token is the workload's own TLS:
         * PERMISSIVE passes it through as plain text, as Istio's inbound
         * filter chain only terminates mTLS offered with those tokens */
        tls = rc == MG_TLS_HELLO_OK && h.istio;
    } else if (!c->port->inbound->tcp && mg_tls_alpn_h2) {
        size_t m = (size_t)n < H2_PREFACE_LEN ? (size_t)n : H2_PREFACE_LEN;
        if (memcmp(buf, H2_PREFACE, m) == 0) {
            if (m < H2_PREFACE_LEN && can_wait)
                goto out;
            h2 = m == H2_PREFACE_LEN;
        }
    }
    pk->fd = -1;                        /* the mg_io takes it */
    peek_free(c);
    if (tls)
        start_tls(c, fd);
    else
        start_plain(c, fd, h2);
out:
    mg_conn_unref(c);
}

void mg_inbound_conn_start(struct mg_conn *c, int fd)
{
    const struct mg_inbound_port *ip = c->port->inbound;
    c->local.port = ip->workload_port;  /* destination.port is the workload port */
    enum mg_mtls_mode m = mg_inbound_mode(c->snap, ip);
    if (m == MG_MTLS_DISABLE && ip->tcp) {
        start_plain(c, fd, false);      /* bytes as they are, server-first protocols too */
        return;
    }
    if (m == MG_MTLS_STRICT) {
        start_tls(c, fd);
        return;
    }
    /* PERMISSIVE: Istio mTLS or plain text; on HTTP ports (DISABLE too)
     * HTTP/2 prior knowledge or HTTP/1 (as Envoy's AUTO codec) */
    struct peek *pk = mg_xcalloc(1, sizeof(*pk));
    pk->fd = fd;
    pk->tls_ok = m == MG_MTLS_PERMISSIVE;
    pk->et = (event_base_get_features(c->w->base) & EV_FEATURE_ET) != 0;
    c->codec = pk;
    c->codec_free = peek_free;
    c->codec_drain = peek_drain;
    pk->ev = event_new(c->w->base, fd, EV_READ | EV_PERSIST | EV_ET, peek_cb, c);
    if (!pk->ev) {
        mg_conn_close(c);
        return;
    }
    int64_t ms = c->snap->cfg->proxy.timeout_handshake_ms;
    struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000) };
    event_add(pk->ev, ms > 0 ? &tv : NULL);
}

/* ---- /config_dump ---- */

static const char *mode_str(enum mg_mtls_mode m)
{
    switch (m) {
    case MG_MTLS_DISABLE: return "DISABLE";
    case MG_MTLS_STRICT: return "STRICT";
    case MG_MTLS_PERMISSIVE: return "PERMISSIVE";
    default: return "UNSET";
    }
}

static void jstr(struct mg_buf *b, const char *s)
{
    if (!s) {
        mg_buf_adds(b, "null");
        return;
    }
    mg_buf_add(b, "\"", 1);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            mg_buf_add(b, "\\", 1);
        if ((unsigned char)*s < 0x20)
            mg_buf_printf(b, "\\u%04x", (unsigned char)*s);
        else
            mg_buf_add(b, s, 1);
    }
    mg_buf_add(b, "\"", 1);
}

void mg_inbound_dump(struct mg_buf *out, const struct mg_snapshot *s)
{
    const struct mg_inbound_set *set = s->inbound;
    if (!set || !set->n)
        return;
    const struct mg_policy_set *ps = s->access ? mg_access_policies(s->access) : NULL;
    const char *mesh = NULL, *ns = NULL, *wl = NULL;
    if (ps)
        mg_peer_authn_sources(ps, &mesh, &ns, &wl);
    mg_buf_adds(out, ",\"inbound\":[");
    for (size_t i = 0; i < set->n; i++) {
        const struct mg_inbound_port *ip = &set->ports[i];
        mg_buf_printf(out, "%s{\"port\":%u,\"bind\":", i ? "," : "", ip->workload_port);
        jstr(out, ip->cfg->bind);
        mg_buf_adds(out, ",\"forward_to\":");
        jstr(out, ip->cfg->forward_to);
        mg_buf_printf(out, ",\"protocol\":\"%s\",\"mtls_mode\":\"%s\",\"identity\":%s,"
                      "\"peer_authentication\":{\"mesh\":", mg_app_proto_name(ip->cfg->protocol),
                      mode_str(mg_inbound_mode(s, ip)), ip->mtls ? "true" : "false");
        jstr(out, mesh);
        mg_buf_adds(out, ",\"namespace\":");
        jstr(out, ns);
        mg_buf_adds(out, ",\"workload\":");
        jstr(out, wl);
        mg_buf_adds(out, "}}");
    }
    mg_buf_adds(out, "]");
}
