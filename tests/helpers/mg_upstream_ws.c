/* mg_upstream_ws.c - a WebSocket echo for the test upstream (RFC 6455):
 * GET /ws... with Upgrade: websocket, Sec-WebSocket-Version 13 and a
 * Sec-WebSocket-Key gets 101 with the matching Sec-WebSocket-Accept (400
 * without a valid key); then each data frame comes back unmasked with its
 * opcode, a ping gets its pong, a close frame is answered and the
 * connection closed. Frames from the client must be masked and at most
 * 16 MiB. While 4 MiB of echo wait to be written, nothing more is read. */
#include "autoconfig.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <openssl/sha.h>
#include "upstream.h"

#define WS_MAX_FRAME (16u << 20)
#define WS_OUT_HIGH (4u << 20)
#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

static void ws_send(struct evbuffer *out, unsigned char b0, const unsigned char *p, uint64_t n)
{
    unsigned char h[10];
    size_t hl = 2;
    h[0] = b0;
    if (n < 126) {
        h[1] = (unsigned char)n;
    } else if (n <= 0xffff) {
        h[1] = 126;
        h[2] = (unsigned char)(n >> 8);
        h[3] = (unsigned char)n;
        hl = 4;
    } else {
        h[1] = 127;
        for (int i = 0; i < 8; i++)
            h[2 + i] = (unsigned char)(n >> (56 - 8 * i));
        hl = 10;
    }
    evbuffer_add(out, h, hl);
    if (n)
        evbuffer_add(out, p, (size_t)n);
}

bool mg_up_ws_accept(struct conn *c)
{
    if (!c->ws_key || strncmp(c->rq.target, "/ws", 3) != 0)
        return false;
    struct evbuffer *out = bufferevent_get_output(c->bev);
    uint8_t *raw = NULL;
    size_t rawn = 0;
    if (mg_base64_decode(c->ws_key, strlen(c->ws_key), false, &raw, &rawn) != 0 || rawn != 16 ||
        !c->ws_v13) {
        free(raw);
        mg_up_bad_request(c, 400, "bad WebSocket handshake");
        return true;
    }
    free(raw);
    char *cat = mg_xasprintf("%s%s", c->ws_key, WS_GUID);
    unsigned char md[SHA_DIGEST_LENGTH];
    SHA1((const unsigned char *)cat, strlen(cat), md);
    free(cat);
    char *acc = mg_base64_encode(md, sizeof md, false, true);
    evbuffer_add_printf(out, "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n"
                        "connection: Upgrade\r\nsec-websocket-accept: %s\r\nx-upstream: %s\r\n\r\n",
                        acc, c->srv->name);
    free(acc);
    c->st = S_WS;
    bufferevent_setwatermark(c->bev, EV_WRITE, WS_OUT_HIGH / 4, 0);
    mg_up_ws_read(c);
    return true;
}

void mg_up_ws_read(struct conn *c)
{
    struct evbuffer *in = bufferevent_get_input(c->bev), *out = bufferevent_get_output(c->bev);
    while (c->st == S_WS) {
        if (evbuffer_get_length(out) >= WS_OUT_HIGH) {
            bufferevent_disable(c->bev, EV_READ);       /* write_cb resumes */
            return;
        }
        size_t avail = evbuffer_get_length(in);
        unsigned char h[14];
        size_t hn = avail < sizeof h ? avail : sizeof h;
        if (hn < 2)
            return;
        evbuffer_copyout(in, h, hn);
        uint64_t len = h[1] & 0x7f;
        size_t off = 2;
        if (len == 126) {
            if (hn < 4)
                return;
            len = (uint64_t)h[2] << 8 | h[3];
            off = 4;
        } else if (len == 127) {
            if (hn < 10)
                return;
            len = 0;
            for (int i = 0; i < 8; i++)
                len = len << 8 | h[2 + i];
            off = 10;
        }
        if (!(h[1] & 0x80) || len > WS_MAX_FRAME) {
            fprintf(stderr, "mg_upstream[%s]: %s: ws: %s\n", c->srv->name, c->peer,
                    (h[1] & 0x80) ? "frame too large" : "unmasked frame");
            mg_up_conn_free(c, true);
            return;
        }
        if (hn < off + 4 || avail < off + 4 + len)
            return;
        unsigned char mask[4];
        memcpy(mask, h + off, 4);
        evbuffer_drain(in, off + 4);
        unsigned char *p = mg_xmalloc(len ? (size_t)len : 1);
        evbuffer_remove(in, p, (size_t)len);
        for (uint64_t i = 0; i < len; i++)
            p[i] ^= mask[i & 3];
        int op = h[0] & 0x0f;
        if (op == 8) {                  /* close: answered, then the end */
            ws_send(out, 0x88, p, len);
            c->st = S_CLOSING;
            bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
        } else if (op == 9) {
            ws_send(out, 0x8a, p, len);
        } else if (op != 10) {
            ws_send(out, h[0] & 0x8f, p, len);
        }
        free(p);
    }
}
