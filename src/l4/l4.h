/* l4/l4.h - TCP routes and PASSTHROUGH by SNI: the byte splice and its entry. */
#ifndef MG_L4_L4_H
#define MG_L4_L4_H
#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>

/* a byte splice between a downstream connection and one upstream
 * TCP connection, shared by the gateway's TCP/PASSTHROUGH servers
 * (passthrough.c), sidecar TCP inbound ports (inbound_tcp.c) and the
 * forward proxy's CONNECT tunnels (forward.c): TCP-context authorization once
 * per connection, connect, relay both ways with bounded buffering,
 * half-close handling, the idle timeout, one access log line, and the reload
 * drain. Once connected, two plain sockets are relayed in the kernel
 * (splice(2) through a pipe per direction; each side is shut for writing
 * when the other ended and its pipe drained, the splice closes when both
 * did); a TLS downstream is relayed through the mg_io buffers (256 KiB
 * watermark), closing once one side ended and the other's output drained.
 *
 * The owner embeds a struct mg_splice (passthrough.c as the first member of
 * its own state) and stays the connection's codec; the splice's callbacks
 * take the struct mg_splice as their argument. */
#include <sys/socket.h>
#include <openssl/ssl.h>

struct mg_io;
struct event;
struct mg_conn;
struct mg_cluster;
struct mg_endpoint;
struct mg_wdest;
struct mg_splice_raw;

struct mg_splice {
    struct mg_conn *c;
    struct mg_io *up;
    const struct mg_wdest *dest;
    bool down_eof, up_eof, connected, logged;
    bool no_route;                      /* log flag NR (no route) rather than UF */
    const char *reason;                 /* refusal or no-route reason (access log), NULL = none */
    const char *policy;                 /* the deciding policy, NULL = none */
    char upstream_host[64];
    uint64_t rx, tx;                    /* bytes from the client / to the client */
    int64_t start_ms, start_wall_us;
    /* Set by an owner that speaks HTTP before the splice (the forward
     * proxy's CONNECT); zero for a bare TCP splice. */
    const char *method, *target;        /* access log request line ("-" when NULL) */
    const char *authority;              /* access log authority, NULL = none */
    int status;                         /* access log response code, 0 = none */
    const char *greeting;               /* written to the client once connected */
    /* Connect failure before any byte moved: called instead of closing, so
     * the owner can answer (it must end with mg_splice_close or its own
     * close). NULL: close at once. */
    void (*on_connect_fail)(struct mg_splice *s);
    int64_t idle_ms;                    /* > 0: close when no byte moves for this long */
    struct event *idle;                 /* that timer */
    uint64_t idle_seen;                 /* rx + tx at its last tick */
    /* Both sides plain sockets: the bytes move by splice(2) through one
     * kernel pipe per direction (splice.c), not through the mg_io buffers;
     * NULL on the mg_io path (a TLS downstream). */
    struct mg_splice_raw *raw;
    /* The cluster endpoint dialled (mg_splice_connect): its connect
     * outcome feeds outlier detection. NULL for an address without one. */
    struct mg_cluster *od_cl;
    size_t od_ep;
    /* The cluster's PROXY protocol header (DestinationRule proxyProtocol,
     * upstream.h), sent before the client's first byte; pp_len 0 = none.
     * Set by mg_splice_connect, or by an owner that dials an address of a
     * cluster itself. */
    unsigned char pp_hdr[108];          /* MG_PP_OUT_MAX */
    size_t pp_len;
    /* The upstream side is TLS the gateway originates (the cluster's
     * DestinationRule tls, or ISTIO_MUTUAL): owned by `up`; the splice then
     * stays on the mg_io path. NULL = plain. */
    SSL *up_ssl;
    char up_detail[320];                /* why the upstream was refused (secure naming) */
};

/* Start the clock of a splice for connection c (zeroes nothing else). */
void mg_splice_init(struct mg_splice *s, struct mg_conn *c);

/* The AuthorizationPolicies of the connection's snapshot in the TCP context
 * (Istio's network RBAC): source/remote = the peer, destination = the local
 * address, connection.sni, the verified mTLS principal if any. CUSTOM has no
 * TCP client here, so a matching CUSTOM rule fails closed. Returns true when
 * allowed; otherwise sets reason and policy. */
bool mg_splice_authorize(struct mg_splice *s);

/* Connect to endpoint e of cluster cl (its connect timeout) and relay once
 * connected; the client's bytes wait in the input buffer meanwhile. On any
 * failure the connection is closed (mg_splice_close). */
void mg_splice_connect(struct mg_splice *s, struct mg_cluster *cl, const struct mg_endpoint *e);

/* Connect to the address sa (salen bytes), label for the log, giving up
 * after timeout_ms; otherwise as mg_splice_connect. */
void mg_splice_connect_addr(struct mg_splice *s, const struct sockaddr *sa, socklen_t salen,
                            const char *label, int64_t timeout_ms);

/* The access log line (once), the upstream freed, the connection closed. */
void mg_splice_close(struct mg_splice *s);

/* For the owner's codec_free: the log line (once) and the upstream freed;
 * the connection is being freed by its owner. */
void mg_splice_release(struct mg_splice *s);

/* For the owner's codec_drain: a splice that has no upstream yet, or one
 * accepted under configuration that a reload replaced (worker.c's drain
 * deadline), is closed (returns true); otherwise it ends when its peers end
 * it (false). */
bool mg_splice_drain(struct mg_splice *s);

/* TLS PASSTHROUGH servers: read the ClientHello's SNI
 * without terminating TLS, pick the VirtualService `tls` route, and splice
 * the bytes to its destination both ways (with flow control). TCP servers
 * use the same splice with the VirtualService `tcp` route. */
struct mg_conn;
struct mg_port;
struct mg_tls_route_c;

/* The server name a PASSTHROUGH server routes on, read by the ClientHello
 * parser (net/net.h) under its server_name rule: one extension holding
 * exactly one host_name. Returns 1 when the first record holds a complete
 * ClientHello (sni gets the lower-cased name, "" without the extension), 0
 * when more bytes are needed, -1 when it is not a TLS ClientHello, is
 * malformed, or the name does not fit in snilen; sni then holds the name
 * read before the flaw, if any, which the access log shows. Only the first
 * record is read (a ClientHello over 16 KiB is refused). */
int mg_tls_sni_peek(const unsigned char *buf, size_t len, char *sni, size_t snilen);

/* The first tls route of port p whose match accepts sni (sniHosts; port;
 * the match's gateways name the gateway of the server the SNI selects). */
const struct mg_tls_route_c *mg_passthrough_route(const struct mg_port *p, const char *sni);

/* The tcp route of a TCP port (plain, or TLS terminated) for server sv
 * (the one the SNI chose, else the port's first): the first bound to sv's
 * gateway whose match (port, gateways) fits, or that has none. */
struct mg_srv;
const struct mg_tls_route_c *mg_tcp_route(const struct mg_port *p, const struct mg_srv *sv);

/* The port a PASSTHROUGH destination is checked on in the egress registry:
 * the destination's port, else its cluster's, else 0 (any port of the
 * entry). NULL wd gives 0. */
uint16_t mg_passthrough_registry_port(const struct mg_wdest *wd);

/* Codec entry for connections on a passthrough or TCP port (conn.c's
 * switch). A TCP port has no SNI: its first tcp route takes every
 * connection. */
void mg_passthrough_start(struct mg_conn *c);

/* Codec entry for connections on the forward proxy port
 * (Proxy.spec.outbound.bind, forward.c): a first request that is a CONNECT
 * host:port is checked against the egress registry and the authorization
 * policies, then spliced to the address the gateway resolves (403 refused,
 * 503 unresolvable or unreachable, 200 then the tunnel); any other first
 * request hands the connection to the port's start_http codec. */
void mg_forward_start(struct mg_conn *c);

#endif
