/* upstream_int.h - what the HTTP/1.1 client (upstream.c) and the HTTP/2
 * client (upstream_h2.c) share. Not for use outside the upstream module.
 *
 * The public entry points of upstream.h live in upstream.c; each one hands
 * a request whose `r->up2` is set (an HTTP/2 stream) to the mg_up2_*
 * function of the same name. */
#ifndef MG_UPSTREAM_INT_H
#define MG_UPSTREAM_INT_H
#include <stdbool.h>
#include <stddef.h>
#include <event2/buffer.h>
#include "upstream/upstream.h"

struct mg_request;
struct mg_kv;

/* Send r on an HTTP/1.1 connection of cluster cl (idle one, new one, or
 * queued within the pool limits); r->attempts is not touched. */
void mg_upstream_h1_start(struct mg_request *r, struct mg_cluster *cl);

/* Apply the route's and the destination's response header operations to
 * the arena array h[n] (capacity cap). Returns the new array (arena, may
 * be h) and stores its length in *n. */
struct mg_kv *mg_upstream_resp_ops(struct mg_request *r, struct mg_kv *h, size_t *n, size_t cap);

/* ---- HTTP/2 (upstream_h2.c) ---- */

/* Should r go upstream over HTTP/2 (cluster h2 mode, useClientProtocol,
 * an earlier ALPN fallback on this worker)? */
bool mg_up2_wanted(const struct mg_request *r);
/* Start r on a multiplexed connection of this worker (reused, connecting
 * or new). Outcomes reach r through its down ops and
 * mg_request_upstream_failed(), exactly as for HTTP/1.1. */
void mg_up2_start(struct mg_request *r);
bool mg_up2_body_ready(struct mg_request *r);
void mg_up2_body_data(struct mg_request *r, struct evbuffer *src, size_t n);
void mg_up2_body_end(struct mg_request *r);
void mg_up2_resume(struct mg_request *r);
/* Detach r; its stream is reset (CANCEL) unless the exchange completed. */
void mg_up2_detach(struct mg_request *r, bool clean);
/* Close this worker's HTTP/2 connections of cl that carry no stream, and
 * stop opening streams on the others (they close when their last ends). */
void mg_up2_close_idle(struct mg_cluster *cl, int worker_id);

#endif
