/* splice_tls.c - the upstream side of a TCP splice when the cluster
 * originates TLS: a gateway tcp route (or a PASSTHROUGH-less TLS-terminated
 * server's tcp route) whose destination has a DestinationRule tls SIMPLE or
 * MUTUAL, and a forward-proxy CONNECT or tcp route to an in-mesh destination
 * reached over ISTIO_MUTUAL (a rule, or auto mTLS for a labelled endpoint).
 * The client's bytes then travel inside that TLS, as an Istio sidecar wraps
 * an application's TCP in mesh mTLS: SNI as the cluster sets it, Istio's
 * TCP ALPN ("istio-peer-exchange", "istio") for mesh clusters, secure
 * naming checked once the handshake is done, and a PROXY protocol header,
 * when the rule asks for one, under the TLS (before the ClientHello). */
#include "upstream/upstream.h"
#include <stdio.h>
#include <string.h>
#include <openssl/ssl.h>
#include "upstream/internal.h"
#include "net/types.h"

struct mg_io *mg_upstream_splice_io(struct mg_cluster *cl, size_t ep, struct mg_worker *w,
                                           SSL **ssl_out)
{
    *ssl_out = NULL;
    SSL_CTX *ctx = cl && ep < cl->n_eps ? mg_mesh_conn_ctx(cl, ep, w) : NULL;
    if (!ctx)
        return mg_io_socket_new(w->base, -1, NULL, MG_IO_OPEN);
    SSL *ssl = SSL_new(ctx);
    if (!ssl)
        return NULL;
    if (cl->sni)
        SSL_set_tlsext_host_name(ssl, cl->sni);
    if (cl->mesh) {
        /* a mesh TCP connection: Istio's metadata-exchange token and the
         * bare "istio", so a PERMISSIVE sidecar sees mesh mTLS; the peer's
         * name is checked after the handshake (mg_upstream_splice_refused) */
        static const unsigned char tcp[] = "\x13istio-peer-exchange\x05istio";
        SSL_set_alpn_protos(ssl, tcp, sizeof(tcp) - 1);
    } else if (!cl->insecure && cl->n_sans == 0 && cl->sni) {
        SSL_set1_host(ssl, cl->sni);    /* as HTTP upstreams: the SNI is the name checked */
    }
    struct mg_io *io = mg_io_socket_new(w->base, -1, ssl, MG_IO_CONNECTING);
    if (!io) {
        SSL_free(ssl);                  /* not owned by an mg_io yet */
        return NULL;
    }
    *ssl_out = ssl;
    return io;
}

int mg_upstream_splice_pp_tls(const struct mg_cluster *cl, const struct mg_conn *down,
                              struct mg_io *io, SSL *ssl)
{
    struct mg_pp_key k;
    mg_pp_key_set(&k, cl, down);
    return mg_pp_arm(cl, &k, io, ssl);
}

const char *mg_upstream_splice_refused(const struct mg_cluster *cl, const SSL *ssl, char *buf,
                                       size_t len)
{
    if (!cl || !ssl || !cl->mesh)
        return NULL;
    return mg_mesh_peer_refused(cl, ssl, buf, len);
}
