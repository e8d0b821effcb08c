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

struct mg_snapshot;
struct mg_conn;
struct mg_wmetrics;
struct mg_jwt_cache;

struct mg_lfd {                         /* a listening socket handed to a worker */
    uint16_t port;
    int fd;
};

struct mg_wlistener {
    uint16_t port;
    int fd;
    struct event *ev;                   /* accept readiness */
    struct event *retry;                /* EMFILE back-off */
    struct mg_worker *w;
};

struct mg_worker {
    int id;
    pthread_t thread;
    struct event_base *base;
    struct evdns_base *dns;
    struct event *mbox;
    pthread_mutex_t mu;                 /* guards the mail fields only */
    struct mg_snapshot *mail_snap;
    struct mg_lfd *mail_fds;
    size_t mail_n;
    bool mail_stop;
    int64_t drain_ms;

    struct mg_snapshot *snap;           /* current generation (own ref) */
    struct mg_wlistener **ls;           /* each allocated alone: events point at them */
    size_t n_ls;
    struct mg_conn *conns;              /* all live downstream connections */
    size_t n_conns;
    bool stopping;
    struct event *drain_timer;
    struct event *stale_timer;          /* drain deadline of connections from older generations */
    struct mg_wmetrics *metrics;
    struct mg_jwt_cache *jwt_cache;     /* verified tokens (access phase, this worker only); NULL
                                         * when MESHGATE_JWT_CACHE_ENTRIES=0 (benchmark knob) */
    uint32_t rnd;                       /* xorshift state */
    atomic_bool done;                   /* thread finished */
};

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

/* Cheap per-worker random number (not for cryptography). */
uint32_t mg_worker_rand(struct mg_worker *w);

/* Called by conn.c when a connection ends (a stopping worker may exit). */
void mg_worker_conn_gone(struct mg_worker *w);

#endif
