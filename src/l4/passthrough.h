/* passthrough.h - TLS PASSTHROUGH servers: read the ClientHello's SNI
 * without terminating TLS, pick the VirtualService `tls` route, and splice
 * the bytes to its destination both ways (with flow control). TCP servers
 * use the same splice with the VirtualService `tcp` route. */
#ifndef MG_PASSTHROUGH_H
#define MG_PASSTHROUGH_H
#include <stddef.h>

struct mg_conn;
struct mg_port;
struct mg_tls_route_c;

/* The server name a PASSTHROUGH server routes on, read by the ClientHello
 * parser (net/tls_peek.h) under its server_name rule: one extension holding
 * exactly one host_name. Returns 1 when the first record holds a complete
 * ClientHello (sni gets the lower-cased name, "" without the extension), 0
 * when more bytes are needed, -1 when it is not a TLS ClientHello, is
 * malformed, or the name does not fit in snilen; sni then holds the name
 * read before the flaw, if any, which the access log shows. Only the first
 * record is read (a ClientHello over 16 KiB is refused). */
int mg_tls_sni_peek(const unsigned char *buf, size_t len, char *sni, size_t snilen);

/* The first tls route of port p whose match accepts sni (sniHosts; port). */
const struct mg_tls_route_c *mg_passthrough_route(const struct mg_port *p, const char *sni);

/* Codec entry for connections on a passthrough or TCP port (conn.c's
 * switch). A TCP port has no SNI: its first tcp route takes every
 * connection. */
void mg_passthrough_start(struct mg_conn *c);

#endif
