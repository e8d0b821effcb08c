/* accesslog.h - one line per request, Envoy-like fields, JSON or TEXT
 * (MeshConfig accessLogEncoding) or an Envoy format string
 * (accessLogFormat: %START_TIME%, %REQ(X)%, %RESPONSE_CODE%, ...).
 *
 * The log fd is process-wide and stable: reopening (SIGUSR1, reload with a
 * new path) dup2()s the new file onto it, so workers never synchronise.
 * Each line is one write() with O_APPEND. */
#ifndef MG_ACCESSLOG_H
#define MG_ACCESSLOG_H
#include "config/config.h"
#include "base/util.h"

struct mg_request;

/* Open (or reopen on the same fd) `path`; NULL or "" turns logging off.
 * Main thread. Returns 0 or -1 (errno set; logging stays as it was). */
int mg_accesslog_open(const char *path);
/* Reopen the current path (SIGUSR1). */
int mg_accesslog_reopen(void);
void mg_accesslog_close(void);

/* Format one line for r into out (exposed for tests). */
void mg_accesslog_format(struct mg_buf *out, const struct mg_request *r,
                         const struct mg_mesh_config *mesh);
/* Format and write (worker thread); no-op when logging is off. Formats
 * into a per-thread buffer that mg_accesslog_thread_done() releases (call
 * it when a thread that wrote lines ends). */
void mg_accesslog_write(const struct mg_request *r, const struct mg_mesh_config *mesh);
void mg_accesslog_thread_done(void);

#endif
