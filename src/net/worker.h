/* worker.h - worker threads: one event_base each, its own listeners,
 * connections, upstream pools and counters. The only cross-thread call is
 * mg_worker_post() (mailbox: new snapshot and listener sockets, or stop). */
#ifndef MG_WORKER_H
#define MG_WORKER_H
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <event2/event.h>
#include <event2/dns.h>
#include "net/types.h"

struct mg_snapshot;
struct mg_conn;
struct mg_wmetrics;
struct mg_jwt_cache;




/* Global connection limit shared by all workers (0 = none). */
extern atomic_ulong mg_cx_active_total;

/* Create n workers (bases, evdns, mailboxes, counters), each holding a
 * reference to the first snapshot. Listener sockets arrive through
 * mg_worker_post(). Does not start threads. Returns the array (aborts on
 * allocation failure, exits if an event_base cannot be made). */
struct mg_worker *mg_workers_new(int n, struct mg_snapshot *snap);
/* Start the threads (signals blocked in them). Returns 0 or -1. */
int mg_workers_start(struct mg_worker *w, int n);
/* Post a new snapshot (a reference is taken per worker) and the worker's
 * listening sockets (copied; sockets the worker already has are ignored). */
void mg_worker_post(struct mg_worker *w, struct mg_snapshot *snap, const struct mg_lfd *fds, size_t n);
/* Ask to stop: close listeners, finish in-flight requests, close idle
 * connections, leave the loop; force-close after drain_ms. */
void mg_worker_stop(struct mg_worker *w, int64_t drain_ms);
/* Join and free every worker. */
void mg_workers_free(struct mg_worker *w, int n);


/* Called by conn.c when a connection ends (a stopping worker may exit). */
void mg_worker_conn_gone(struct mg_worker *w);

#endif
