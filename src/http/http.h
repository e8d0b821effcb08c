/* http/http.h - the HTTP codecs' entry points and the phase runner of the
 * protocol-neutral request. */
#ifndef MG_HTTP_HTTP_H
#define MG_HTTP_HTTP_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <event2/buffer.h>
#include "config/config.h"
#include "base/base.h"
#include "http/types.h"

/* the HTTP codecs: where a connection enters HTTP.
 *
 * net/ never names these: the snapshot builder (control/) puts them on each
 * port (struct mg_port codec entries), and net/ calls the one that the port
 * and the ALPN choose. Each codec turns the bytes into protocol-neutral
 * requests (http/http.h) and runs them through the phases. */
struct mg_conn;

/* Take over connection c (handshake done or plain text) as HTTP/1.1:
 * install the transport callbacks and c->codec / codec_free /
 * codec_drain. */
void mg_h1_server_start(struct mg_conn *c);

/* Take over connection c (handshake done, ALPN h2, or plain text that began
 * with the HTTP/2 preface): create the nghttp2 server session, send our
 * SETTINGS, install the transport callbacks and c->codec / codec_free /
 * codec_drain. Never fails the process: when the session cannot be created
 * the connection is closed. */
void mg_h2_server_start(struct mg_conn *c);

/* the protocol-neutral request and the phase runner.
 *
 * A downstream codec (h1_server.c today, HTTP/2 later) fills the request
 * attributes from its parser, provides `mg_down_ops` to send things back,
 * and calls mg_request_run(). The phases then run in order:
 *   normalize -> server (SNI/Host, 421, httpsRedirect) -> route ->
 *   access (authn/authz, integrated by the lead) -> redirect / directResponse
 *   / rewrite -> header edits -> upstream.
 * Everything a request allocates lives in its arena and dies with it. */
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
