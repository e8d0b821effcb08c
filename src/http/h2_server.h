/* h2_server.h - HTTP/2 downstream codec (nghttp2 server session).
 *
 * conn.c hands a connection here when TLS ALPN selected "h2". Each stream
 * becomes one `struct mg_request` run by the same phases as HTTP/1
 * (request.h); responses go back as HEADERS (+ DATA through deferred data
 * providers).
 *
 * Limits, all per connection:
 *   SETTINGS_MAX_CONCURRENT_STREAMS  Proxy limits.maxConcurrentStreams
 *                                    (0 or unset = 100; nghttp2's default
 *                                    would be 2^31-1)
 *   SETTINGS_MAX_HEADER_LIST_SIZE    limits.maxRequestHeadersKb * 1024,
 *                                    enforced here (nghttp2 only announces
 *                                    it): a larger block, or more than
 *                                    MG_H1_MAX_HEADERS fields, is answered
 *                                    431 on that stream only; past twice
 *                                    that the stream is reset and the block
 *                                    no longer decoded into fields (HPACK
 *                                    references to a large table entry
 *                                    decode to megabytes); the 4th block
 *                                    over the limit ends the connection
 *                                    (GOAWAY ENHANCE_YOUR_CALM)
 *   SETTINGS_INITIAL_WINDOW_SIZE     MG_H2_STREAM_WINDOW, connection window
 *                                    MG_H2_CONN_WINDOW; WINDOW_UPDATE is
 *                                    sent only for bytes the upstream took,
 *                                    so buffered request bodies never
 *                                    exceed MG_H2_CONN_WINDOW
 *   SETTINGS_ENABLE_PUSH             0
 *   response bytes buffered          about MG_H2_RESP_WM per stream before
 *                                    the upstream read is paused, plus
 *                                    MG_H2_OUT_WM of encoded frames in the
 *                                    socket buffer before frames wait
 * nghttp2's own protections stay at their defaults: RST_STREAM rate limit
 * (burst 1000, 33/s, then GOAWAY), 8 CONTINUATION frames per header
 * block, 1000 queued PING/SETTINGS acks.
 *
 * Timeouts: Proxy timeouts.idle is the connection's inactivity limit (no
 * byte read, no write progress): with no stream open it sends GOAWAY
 * (NO_ERROR) and closes; with streams open they are stuck (the client
 * stopped reading or the upstream went silent) and end with flag SI, as
 * Envoy's stream idle timeout. timeouts.requestHeaders bounds a header
 * block left unfinished (GOAWAY PROTOCOL_ERROR).
 *
 * Graceful end (drain, SIGTERM): GOAWAY with last stream 2^31-1 first, the
 * final GOAWAY one second later (RFC 9113 6.8); the connection closes once
 * open streams finish and the output is flushed. */
#ifndef MG_H2_SERVER_H
#define MG_H2_SERVER_H


/* Stream window: 256 KiB keeps one stream near line rate on a LAN and at
 * ~20 Mbit/s over 100 ms RTT, while 100 streams cannot pin more than the
 * connection window. */
#define MG_H2_STREAM_WINDOW (256 * 1024)
/* Connection window: the bound on request-body bytes one connection can
 * make the gateway hold (bytes not yet taken by upstreams). */
#define MG_H2_CONN_WINDOW (1024 * 1024)
/* Per-stream response buffer above which the upstream read is paused. */
#define MG_H2_RESP_WM (64 * 1024)
/* Encoded output waiting for the socket above which no frame is produced
 * and no more input is read (the client is not reading). */
#define MG_H2_OUT_WM (128 * 1024)


#endif
