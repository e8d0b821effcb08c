/* http1_chunked.c - incremental chunked transfer-coding decoder (RFC 9112 7.1).
 *
 * A byte-at-a-time state machine for the framing (size lines, CRLFs,
 * trailers: all short and bounded), and bulk hand-off for payload, so the
 * cost is linear in the body however the bytes are split, and the caller
 * never has to keep or re-feed a partial size line. */
#include <string.h>
#include "http1/http1.h"
#include "http1/internal.h"

enum {
    CS_SIZE = 0,        /* first hex digit of chunk-size */
    CS_SIZE_HEX,        /* more hex digits */
    CS_SIZE_BWS,        /* BWS after size or ext value: only ';' may follow */
    CS_EXT_PRE_NAME,    /* after ';' */
    CS_EXT_NAME,
    CS_EXT_POST_NAME,   /* BWS after name: '=' or ';' */
    CS_EXT_PRE_VAL,     /* after '=' */
    CS_EXT_TOKEN,
    CS_EXT_QUOTED,
    CS_EXT_QESC,        /* after a backslash inside the quoted-string */
    CS_EXT_POST_VAL,    /* after the closing quote */
    CS_SIZE_LF,         /* CR of the size line seen */
    CS_DATA,
    CS_DATA_CR,         /* payload done: CRLF must follow */
    CS_DATA_LF,
    CS_TR_START,        /* start of a trailer field line, or the final CRLF */
    CS_TR_NAME,
    CS_TR_VALUE,
    CS_TR_LF,
    CS_FINAL_LF,
    CS_DONE,
    CS_ERROR,
};

void mg_h1_chunked_init(struct mg_h1_chunked *c)
{
    memset(c, 0, sizeof(*c));
    c->state = CS_SIZE;
}

static inline bool ows(unsigned char b) { return b == ' ' || b == '\t'; }
static inline bool tchar(unsigned char b) { return mg_h1c(b, MG_H1C_TCHAR); }

static unsigned hexval(unsigned char b)
{
    if (b >= '0' && b <= '9')
        return b - '0';
    return (b | 0x20) - 'a' + 10;
}

/* Size-line states after the digits share this: what may follow an
 * extension element. Returns the next state or CS_ERROR. */
static int after_element(unsigned char b, bool ws_ok)
{
    if (b == ';')
        return CS_EXT_PRE_NAME;
    if (b == '\r')
        return CS_SIZE_LF;
    if (ws_ok && ows(b))
        return CS_SIZE_BWS;
    return CS_ERROR;
}

/* One framing byte. Returns the new state (CS_ERROR on malformed input). */
static int framing_byte(struct mg_h1_chunked *c, unsigned char b)
{
    int s = c->state;
    if (s <= CS_SIZE_LF && ++c->line_len > MG_H1_CHUNK_LINE_MAX)
        return CS_ERROR;
    if (s >= CS_TR_START && s <= CS_FINAL_LF) {
        size_t max = c->max_trailer ? c->max_trailer : MG_H1_TRAILER_DEFAULT;
        if (++c->trailer_bytes > max)
            return CS_ERROR;
    }
    switch (s) {
    case CS_SIZE:
        if (!mg_h1c(b, MG_H1C_HEX))
            return CS_ERROR;               /* empty size, sign, leading space */
        c->remaining = hexval(b);
        c->digits = 1;
        return CS_SIZE_HEX;
    case CS_SIZE_HEX:
        if (mg_h1c(b, MG_H1C_HEX)) {
            /* 16 hex digits cannot overflow 64 bits; a 17th is refused even
             * when it is a leading zero, so the line stays unambiguous. */
            if (++c->digits > 16)
                return CS_ERROR;
            c->remaining = (c->remaining << 4) | hexval(b);
            return CS_SIZE_HEX;
        }
        return after_element(b, true);
    case CS_SIZE_BWS:
        if (ows(b))
            return CS_SIZE_BWS;
        return b == ';' ? CS_EXT_PRE_NAME : CS_ERROR;
    case CS_EXT_PRE_NAME:
        if (ows(b))
            return CS_EXT_PRE_NAME;
        return tchar(b) ? CS_EXT_NAME : CS_ERROR;
    case CS_EXT_NAME:
        if (tchar(b))
            return CS_EXT_NAME;
        if (b == '=')
            return CS_EXT_PRE_VAL;
        if (ows(b))
            return CS_EXT_POST_NAME;
        return after_element(b, false);
    case CS_EXT_POST_NAME:
        if (ows(b))
            return CS_EXT_POST_NAME;
        if (b == '=')
            return CS_EXT_PRE_VAL;
        return b == ';' ? CS_EXT_PRE_NAME : CS_ERROR;
    case CS_EXT_PRE_VAL:
        if (ows(b))
            return CS_EXT_PRE_VAL;
        if (b == '"')
            return CS_EXT_QUOTED;
        return tchar(b) ? CS_EXT_TOKEN : CS_ERROR;
    case CS_EXT_TOKEN:
        if (tchar(b))
            return CS_EXT_TOKEN;
        return after_element(b, true);
    case CS_EXT_QUOTED:
        if (b == '"')
            return CS_EXT_POST_VAL;
        if (b == '\\')
            return CS_EXT_QESC;
        /* qdtext: HTAB, SP, VCHAR except '"' and '\', obs-text */
        return mg_h1c(b, MG_H1C_VALUE) ? CS_EXT_QUOTED : CS_ERROR;
    case CS_EXT_QESC:
        return mg_h1c(b, MG_H1C_VALUE) ? CS_EXT_QUOTED : CS_ERROR;
    case CS_EXT_POST_VAL:
        return after_element(b, true);
    case CS_SIZE_LF:
        if (b != '\n')
            return CS_ERROR;
        c->line_len = 0;
        c->digits = 0;
        return c->remaining ? CS_DATA : CS_TR_START;
    case CS_DATA_CR:
        return b == '\r' ? CS_DATA_LF : CS_ERROR;
    case CS_DATA_LF:
        return b == '\n' ? CS_SIZE : CS_ERROR;
    case CS_TR_START:
        if (b == '\r')
            return CS_FINAL_LF;
        /* a leading SP/HTAB would be obs-fold */
        return tchar(b) ? CS_TR_NAME : CS_ERROR;
    case CS_TR_NAME:
        if (tchar(b))
            return CS_TR_NAME;
        return b == ':' ? CS_TR_VALUE : CS_ERROR;
    case CS_TR_VALUE:
        if (b == '\r')
            return CS_TR_LF;
        return mg_h1c(b, MG_H1C_VALUE) ? CS_TR_VALUE : CS_ERROR;
    case CS_TR_LF:
        return b == '\n' ? CS_TR_START : CS_ERROR;
    case CS_FINAL_LF:
        return b == '\n' ? CS_DONE : CS_ERROR;
    default:
        return CS_ERROR;
    }
}

enum mg_chunk_step mg_h1_chunked_step(struct mg_h1_chunked *c, const char *in, size_t len,
                                      size_t *n)
{
    *n = 0;
    if (c->state == CS_ERROR)
        return MG_CHUNK_ERROR;
    if (c->state == CS_DONE)
        return MG_CHUNK_DONE;
    if (len == 0)
        return MG_CHUNK_NEED_MORE;
    if (c->state == CS_DATA) {
        uint64_t take = c->remaining < len ? c->remaining : len;
        c->remaining -= take;
        if (c->remaining == 0)
            c->state = CS_DATA_CR;
        *n = (size_t)take;
        return MG_CHUNK_DATA;
    }
    size_t i = 0;
    while (i < len && c->state != CS_DATA) {
        c->state = framing_byte(c, (unsigned char)in[i++]);
        if (c->state == CS_ERROR)
            return MG_CHUNK_ERROR;
        if (c->state == CS_DONE) {
            *n = i;
            return MG_CHUNK_DONE;
        }
    }
    *n = i;
    return MG_CHUNK_FRAMING;
}
