/* tls13.h - TLS 1.3 records of an established client connection, sealed
 * and opened by mg_io itself (tls13.c); internal to src/base. */
#ifndef MG_BASE_TLS13_H
#define MG_BASE_TLS13_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <openssl/ssl.h>

#define MG_TLS13_MAX_PLAIN 16384        /* content bytes per record */
#define MG_TLS13_OVERHEAD (5 + 1 + 16)  /* header, inner content type, tag */
#define MG_TLS13_MAX_CIPHER (MG_TLS13_MAX_PLAIN + 256) /* the most a peer may send (RFC 8446 5.2) */

enum { MG_TLS13_ALERT = 21, MG_TLS13_HANDSHAKE = 22, MG_TLS13_DATA = 23 };

struct mg_tls13;

/* Keep the application traffic secrets of the client connections of ctx
 * (in memory, per SSL, until mg_tls13_take or SSL_free), so that their
 * records can be handled here after the handshake. */
void mg_tls13_capture(SSL_CTX *ctx);

/* After a completed client handshake: the record state, or NULL when the
 * connection stays with OpenSSL's record layer (TLS 1.2, a cipher suite
 * not handled here, no secrets captured, bytes OpenSSL already holds).
 * The captured secrets are wiped either way. */
struct mg_tls13 *mg_tls13_take(SSL *ssl);
void mg_tls13_free(struct mg_tls13 *t);
/* The state for a TLS 1.3 suite (0x1301, 0x1302, 0x1303) from the write
 * and read traffic secrets (len bytes each, the suite's hash length);
 * NULL for another suite or length. */
struct mg_tls13 *mg_tls13_new(uint16_t suite, const unsigned char *wsecret, const unsigned char *rsecret,
                              size_t len);

/* Seal a record in place: rec + 5 holds n content bytes (n <=
 * MG_TLS13_MAX_PLAIN) and has room for MG_TLS13_OVERHEAD - 5 more. Writes
 * the header; returns the record's length, 0 on failure. */
size_t mg_tls13_seal(struct mg_tls13 *t, uint8_t type, unsigned char *rec, size_t n);

/* Open a record: hdr is its 5-byte header (already checked by
 * mg_tls13_check_header), ct its len bytes; the inner plaintext goes to out
 * (room for len - 16). On success *type and *n are the content type and
 * length (padding removed) and 0 is returned; otherwise an OpenSSL SSL
 * reason code (SSL_R_...). */
int mg_tls13_open(struct mg_tls13 *t, const unsigned char *hdr, const unsigned char *ct, size_t len,
                  unsigned char *out, uint8_t *type, size_t *n);

/* 0 when the header is an acceptable protected record (its length in
 * *len), else an SSL reason code. */
int mg_tls13_check_header(const unsigned char *hdr, size_t *len);

/* Post-handshake handshake messages: NewSessionTicket ignored (these
 * connections do not resume), KeyUpdate applied; anything else is an
 * error (an SSL reason code; 0 = fine). */
int mg_tls13_handshake(struct mg_tls13 *t, const unsigned char *p, size_t n);

/* The peer asked for a KeyUpdate: mg_tls13_key_update seals ours into
 * rec (room for 5 + 5 + 17 bytes) and moves to the next write key;
 * returns the record's length, 0 on failure. */
bool mg_tls13_update_wanted(const struct mg_tls13 *t);
size_t mg_tls13_key_update(struct mg_tls13 *t, unsigned char *rec);

/* An alert record (level fatal, but close_notify: warning) into rec (room
 * for 5 + 2 + 17 bytes); its length, 0 on failure. */
size_t mg_tls13_alert(struct mg_tls13 *t, uint8_t desc, unsigned char *rec);

/* HKDF-Expand-Label(secret, label, "", outlen) (RFC 8446 7.1). */
bool mg_tls13_expand_label(const EVP_MD *md, const unsigned char *secret, size_t slen, const char *label,
                           unsigned char *out, size_t outlen);

#endif
