/* http/http.h - the HTTP codecs: where a connection enters HTTP.
 *
 * net/ never names these: the snapshot builder (control/) puts them on each
 * port (struct mg_port codec entries), and net/ calls the one that the port
 * and the ALPN choose. Each codec turns the bytes into protocol-neutral
 * requests (request.h) and runs them through the phases. */
#ifndef MG_HTTP_H
#define MG_HTTP_H

struct mg_conn;

/* Take over connection c (handshake done or plain text) as HTTP/1.1:
 * install the bufferevent callbacks and c->codec / codec_free /
 * codec_drain. */
void mg_h1_server_start(struct mg_conn *c);

/* Take over connection c (handshake done, ALPN h2, or plain text that began
 * with the HTTP/2 preface): create the nghttp2 server session, send our
 * SETTINGS, install the bufferevent callbacks and c->codec / codec_free /
 * codec_drain. Never fails the process: when the session cannot be created
 * the connection is closed. */
void mg_h2_server_start(struct mg_conn *c);

#endif
