/* http1/internal.h - what only http1/ uses. */
#ifndef MG_HTTP1_INTERNAL_H
#define MG_HTTP1_INTERNAL_H
#include <stdbool.h>
#include <stddef.h>

/* internals shared by the http1 area's files (not a public API).
 *
 * One byte-class table drives every character test of the parser, the
 * chunked decoder and the validators, so they cannot disagree about what a
 * token or a field value is (a disagreement is what request smuggling
 * exploits). */
#define MG_H1C_TCHAR 1u   /* RFC 9110 tchar (field names, methods, tokens) */
#define MG_H1C_VALUE 2u   /* field-value byte: HTAB, SP, VCHAR, obs-text */
#define MG_H1C_VCHAR 4u   /* visible ASCII 0x21..0x7e (request-target) */
#define MG_H1C_HOST  8u   /* reg-name byte: unreserved, sub-delims, '%' */
#define MG_H1C_HEX   16u  /* hex digit */

extern const unsigned char mg_h1_ctab[256];

static inline bool mg_h1c(unsigned char c, unsigned cls) { return (mg_h1_ctab[c] & cls) != 0; }

/* ASCII case-insensitive equality of two counted strings. */
bool mg_h1_ieq(const char *a, size_t alen, const char *b, size_t blen);

#endif
