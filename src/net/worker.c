/* worker.c - worker threads. Each owns an event_base, an evdns_base, its
 * listeners and connections; the main thread talks to it only through the
 * mailbox (a mutex-guarded slot plus event_active, which libevent makes
 * thread-safe once evthread_use_pthreads() ran). */
#include "net/net.h"
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <event2/thread.h>
#include "log/log.h"
#include "jwt/jwt.h"
#include "snapshot/snapshot.h"
#include "upstream/upstream.h"
#include "base/base.h"

/* Benchmark knob, read once per worker at startup: MESHGATE_JWT_CACHE_ENTRIES
 * sets the size of the verified-token cache; 0 turns the cache off (every
 * token is verified again), which contrib/bench/jwt.sh compares against.
 * Unset, empty or malformed = the default size. */
static struct mg_jwt_cache *jwt_cache_from_env(void)
{
    const char *v = getenv("MESHGATE_JWT_CACHE_ENTRIES");
    char *end = NULL;
    unsigned long long n = v && *v ? strtoull(v, &end, 10) : 0;
    if (!v || !*v || *end || v[0] == '-')
        return mg_jwt_cache_new(0);
    return n ? mg_jwt_cache_new(n > (1u << 20) ? (1u << 20) : (size_t)n) : NULL;
}

static void add_listeners(struct mg_worker *w, const struct mg_lfd *fds, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        bool have = false;
        for (size_t j = 0; j < w->n_ls; j++)
            if (w->ls[j]->fd == fds[i].fd)
                have = true;
        if (have)
            continue;
        struct mg_wlistener *wl = mg_xcalloc(1, sizeof(*wl));
        wl->port = fds[i].port;
        wl->fd = fds[i].fd;
        if (mg_listener_attach(w, wl) < 0) {
            free(wl);
            continue;
        }
        w->ls = mg_xrealloc(w->ls, (w->n_ls + 1) * sizeof(*w->ls));
        w->ls[w->n_ls++] = wl;
    }
}

static void close_listeners(struct mg_worker *w)
{
    for (size_t i = 0; i < w->n_ls; i++) {
        mg_listener_detach(w->ls[i]);
        free(w->ls[i]);
    }
    free(w->ls);
    w->ls = NULL;
    w->n_ls = 0;
}

static void drain_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct mg_worker *w = arg;
    while (w->conns)
        mg_conn_close(w->conns);
    event_base_loopexit(w->base, NULL);
}

void mg_worker_conn_gone(struct mg_worker *w)
{
    if (w->stopping && w->n_conns == 0)
        event_base_loopexit(w->base, NULL);
}

/* The drain deadline after a reload: connections still on an older
 * generation are drained (idle HTTP ones close, busy ones close after
 * their request, HTTP/2 gets GOAWAY, TCP splices close), as Envoy closes
 * the connections of a changed listener at the end of its drain time. An
 * HTTP request that arrives earlier already ends its connection
 * (h1_server.c, h2_server.c); splices have no such point. */
static void stale_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct mg_worker *w = arg;
    struct mg_conn *c = w->conns;
    while (c) {
        struct mg_conn *next = c->next;
        if (mg_snapshot_recycles(c->snap, w->snap) && c->codec_drain) {
            mg_conn_ref(c);             /* draining closes only c itself */
            c->codec_drain(c);
            mg_conn_unref(c);
        }
        c = next;
    }
}

static void arm_stale_drain(struct mg_worker *w)
{
    if (w->stopping || !w->conns)
        return;
    if (!w->stale_timer)
        w->stale_timer = evtimer_new(w->base, stale_timeout_cb, w);
    if (!w->stale_timer || evtimer_pending(w->stale_timer, NULL))
        return;                         /* a reload storm does not push the deadline back */
    int64_t ms = w->snap->cfg->proxy.timeout_drain_ms;
    if (ms <= 0)
        ms = 1;
    struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000) };
    evtimer_add(w->stale_timer, &tv);
}

static void mbox_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct mg_worker *w = arg;
    pthread_mutex_lock(&w->mu);
    struct mg_snapshot *snap = w->mail_snap;
    struct mg_lfd *fds = w->mail_fds;
    size_t nfds = w->mail_n;
    bool stop = w->mail_stop;
    bool drain = w->mail_drain;
    w->mail_drain = false;
    w->mail_snap = NULL;
    w->mail_fds = NULL;
    w->mail_n = 0;
    pthread_mutex_unlock(&w->mu);
    if (snap) {
        struct mg_snapshot *old = w->snap;
        /* idle upstream connections belong to the old generation's pools */
        if (old)
            mg_upstream_close_idle(old->clusters, old->n_clusters, w->id);
        w->snap = snap;
        bool recycle = mg_snapshot_recycles(old, snap);
        mg_snapshot_unref(old);
        if (recycle)
            arm_stale_drain(w);
    }
    if (fds && !w->stopping)
        add_listeners(w, fds, nfds);
    free(fds);
    if (drain && !w->stopping) {
        for (struct mg_conn *c = w->conns, *next; c; c = next) {
            next = c->next;
            if (c->codec_notice) {
                mg_conn_ref(c);
                c->codec_notice(c);
                mg_conn_unref(c);
            }
        }
    }
    if (stop && !w->stopping) {
        w->stopping = true;
        close_listeners(w);
        mg_conn_drain_all(w);
        if (w->snap)
            mg_upstream_close_idle(w->snap->clusters, w->snap->n_clusters, w->id);
        if (w->n_conns == 0) {
            event_base_loopexit(w->base, NULL);
        } else {
            w->drain_timer = evtimer_new(w->base, drain_timeout_cb, w);
            struct timeval tv = { (time_t)(w->drain_ms / 1000), (suseconds_t)((w->drain_ms % 1000) * 1000) };
            evtimer_add(w->drain_timer, &tv);
        }
    }
}

/* glibc returns memory at the top of a thread's heap to the kernel as soon
 * as a free leaves more than the trim threshold there; the 16 KiB read
 * chains and per-request arenas of a busy worker hit that on nearly every
 * request (madvise, then page faults to grow again: ~10% of a keep-alive
 * profile). Keep up to 32 MiB per arena instead; MALLOC_TRIM_THRESHOLD_ in
 * the environment still wins. */
#define WORKER_TRIM_THRESHOLD (32 * 1024 * 1024)

struct mg_worker *mg_workers_new(int n, struct mg_snapshot *snap)
{
#ifdef M_TRIM_THRESHOLD
    if (!getenv("MALLOC_TRIM_THRESHOLD_"))
        mallopt(M_TRIM_THRESHOLD, WORKER_TRIM_THRESHOLD);
#endif
    struct mg_worker *ws = mg_xcalloc((size_t)n, sizeof(*ws));
    for (int i = 0; i < n; i++) {
        struct mg_worker *w = &ws[i];
        w->id = i;
        /* epoll without libevent's change list. The change list batches interest
         * changes to once per loop turn, and merges a delete and an add on one fd
         * in the same turn into a single change: an mg_io's edge-triggered event
         * deleted and a splice's level-triggered events added for the same socket
         * (a tunnel moving to pipes) came out as one EPOLL_CTL_MOD that kept
         * EPOLLET, and a splice relying on level-triggered wakeups then stalled
         * with bytes in a socket (or never saw both ends close). The change list
         * saved little here anyway: an mg_io stays registered for read and write
         * (edge-triggered) for its whole life, so only a splice pausing a
         * direction changes interest, once per pipe full. */
        w->base = event_base_new();
        if (!w->base) {
            fprintf(stderr, "meshgate: event_base_new failed\n");
            exit(1);
        }
        /* Tests name their own resolv.conf (a DNS server on loopback)
         * without touching the system's. */
        const char *resolv = getenv("MESHGATE_RESOLV_CONF");
        if (resolv && *resolv) {
            w->dns = evdns_base_new(w->base, EVDNS_BASE_DISABLE_WHEN_INACTIVE);
            if (w->dns && evdns_base_resolv_conf_parse(w->dns, DNS_OPTIONS_ALL, resolv) != 0)
                fprintf(stderr, "meshgate: %s: cannot read\n", resolv);
        } else {
            w->dns = evdns_base_new(w->base, EVDNS_BASE_INITIALIZE_NAMESERVERS |
                                    EVDNS_BASE_DISABLE_WHEN_INACTIVE);
        }
        if (!w->dns)                    /* no resolv.conf: names fail, addresses still work */
            w->dns = evdns_base_new(w->base, 0);
        w->resolver = mg_dns_new(w->dns, MG_DNS_CACHE_ENTRIES);
        mg_dns_load_hosts(w->resolver, "/etc/hosts");
        /* Tests point names at loopback stand-ins without touching the
         * system's resolver: a hosts file read before any lookup. */
        const char *hosts = getenv("MESHGATE_HOSTS_FILE");
        if (w->dns && hosts && *hosts) {
            evdns_base_load_hosts(w->dns, hosts);
            mg_dns_load_hosts(w->resolver, hosts);
        }
        pthread_mutex_init(&w->mu, NULL);
        w->mbox = event_new(w->base, -1, EV_PERSIST, mbox_cb, w);
        event_add(w->mbox, NULL);
        w->snap = mg_snapshot_ref(snap);
        w->metrics = mg_metrics_new();
        w->jwt_cache = jwt_cache_from_env();
        w->rnd = (uint32_t)(mg_now_ms() * 2654435761u) ^ (uint32_t)(i + 1) * 0x85ebca6bu;
        if (!w->rnd)
            w->rnd = 1;
        atomic_init(&w->done, false);
    }
    return ws;
}

static void *worker_main(void *arg)
{
    struct mg_worker *w = arg;
    event_base_dispatch(w->base);
    mg_accesslog_thread_done();
    atomic_store(&w->done, true);
    return NULL;
}

int mg_workers_start(struct mg_worker *ws, int n)
{
    sigset_t all, old;
    sigfillset(&all);
    /* threads inherit the mask: signals are handled on the main base only */
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int rc = 0;
    for (int i = 0; i < n; i++)
        if (pthread_create(&ws[i].thread, NULL, worker_main, &ws[i]) != 0)
            rc = -1;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc;
}

void mg_worker_post(struct mg_worker *w, struct mg_snapshot *snap, const struct mg_lfd *fds, size_t n)
{
    struct mg_lfd *copy = NULL;
    if (n) {
        copy = mg_xmalloc(n * sizeof(*copy));
        memcpy(copy, fds, n * sizeof(*copy));
    }
    pthread_mutex_lock(&w->mu);
    struct mg_snapshot *old = w->mail_snap;
    struct mg_lfd *oldfds = w->mail_fds;
    if (snap)
        w->mail_snap = mg_snapshot_ref(snap);
    else
        old = NULL;
    if (copy) {
        w->mail_fds = copy;
        w->mail_n = n;
    } else {
        oldfds = NULL;
    }
    pthread_mutex_unlock(&w->mu);
    mg_snapshot_unref(old);             /* never delivered: superseded */
    free(oldfds);
    event_active(w->mbox, EV_READ, 0);
}

void mg_worker_drain_soon(struct mg_worker *w)
{
    atomic_store_explicit(&w->draining, true, memory_order_relaxed);
    pthread_mutex_lock(&w->mu);
    w->mail_drain = true;
    pthread_mutex_unlock(&w->mu);
    event_active(w->mbox, EV_READ, 0);
}

void mg_worker_stop(struct mg_worker *w, int64_t drain_ms)
{
    pthread_mutex_lock(&w->mu);
    w->mail_stop = true;
    w->drain_ms = drain_ms > 0 ? drain_ms : 1;
    pthread_mutex_unlock(&w->mu);
    event_active(w->mbox, EV_READ, 0);
}

void mg_workers_free(struct mg_worker *ws, int n)
{
    for (int i = 0; i < n; i++) {
        struct mg_worker *w = &ws[i];
        if (w->thread)
            pthread_join(w->thread, NULL);
        while (w->conns)
            mg_conn_close(w->conns);
        close_listeners(w);
        if (w->snap)
            mg_upstream_close_idle(w->snap->clusters, w->snap->n_clusters, w->id);
        if (w->drain_timer)
            event_free(w->drain_timer);
        if (w->stale_timer)
            event_free(w->stale_timer);
        event_free(w->mbox);
        /* fail the queries still in flight: their callbacks (DNS_ERR_SHUTDOWN)
         * free what each resolver request holds, and run no caller */
        if (w->dns)
            evdns_base_free(w->dns, 1);
        mg_dns_free(w->resolver);
        mg_jwt_cache_free(w->jwt_cache);
        mg_snapshot_unref(w->mail_snap);
        free(w->mail_fds);
        mg_snapshot_unref(w->snap);
        event_base_free(w->base);
        pthread_mutex_destroy(&w->mu);
    }
    /* metrics are freed by the caller after the admin stops reading them */
}
