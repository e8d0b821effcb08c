/* inbound_tcp.c - protocol TCP inbound ports: authorization once per
 * connection in the TCP context (Istio's network RBAC: ALLOW rules with
 * HTTP-only fields are dropped, DENY rules lose those fields), then a plain
 * byte splice to forwardTo. A denied connection is closed with no byte sent
 * to either side. */
#include <stdlib.h>
#include "net/types.h"
#include "sidecar/sidecar.h"
#include "route/route.h"
#include "snapshot/snapshot.h"
#include "l4/l4.h"
#include "upstream/upstream.h"
#include "base/base.h"

static void tcp_free(struct mg_conn *c)
{
    struct mg_splice *t = c->codec;
    mg_splice_release(t);
    free(t);
    c->codec = NULL;
}

/* the reload drain deadline (worker.c): its mTLS mode and authorization
 * came from configuration that is gone */
static bool tcp_drain(struct mg_conn *c)
{
    return mg_splice_drain(c->codec);
}

void mg_inbound_tcp_start(struct mg_conn *c)
{
    struct mg_splice *t = mg_xcalloc(1, sizeof(*t));
    mg_splice_init(t, c);
    c->codec = t;
    c->codec_free = tcp_free;
    c->codec_drain = tcp_drain;
    if (!mg_splice_authorize(t)) {
        mg_splice_close(t);
        return;
    }
    const struct mg_srv *sv = c->port->srv[0];
    const struct mg_route *r = sv->routes.v[0].routes[0];
    t->dest = &r->dests[0];
    struct mg_cluster *cl = t->dest->cluster;
    mg_splice_connect(t, cl, &cl->eps[0]);
}
