/* request.h - the protocol-neutral request and the phase runner.
 *
 * A downstream codec (h1_server.c today, HTTP/2 later) fills the request
 * attributes from its parser, provides `mg_down_ops` to send things back,
 * and calls mg_request_run(). The phases then run in order:
 *   normalize -> server (SNI/Host, 421, httpsRedirect) -> route ->
 *   access (authn/authz, integrated by the lead) -> redirect / directResponse
 *   / rewrite -> header edits -> upstream.
 * Everything a request allocates lives in its arena and dies with it. */
#ifndef MG_REQUEST_H
#define MG_REQUEST_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <event2/buffer.h>
#include "config/config.h"
#include "base/arena.h"
#include "base/util.h"
#include "http/types.h"


/* Initialise (codec calls before filling attributes) and release. */
void mg_request_init(struct mg_request *r, struct mg_conn *c, const struct mg_down_ops *ops, void *codec);
void mg_request_release(struct mg_request *r);

/* Run the phases once the head is parsed. The request then proceeds
 * asynchronously; the codec learns the outcome through its ops. */
void mg_request_run(struct mg_request *r);

/* The codec calls this once the response is complete (or the request is
 * abandoned): access log line and metrics, exactly once. */
void mg_request_finish(struct mg_request *r);

#endif
