/* control/internal.h - what only control/ uses: the JWKS store and fetcher,
 * the admin listener. */
#ifndef MG_CONTROL_INTERNAL_H
#define MG_CONTROL_INTERNAL_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <event2/event.h>
#include <event2/dns.h>
#include "jwt/jwt.h"
#include "access/access.h"

/* the process-wide JWKS store and its asynchronous fetcher.
 *
 * Threads: the store is created, fed (mg_jwks_store_add*) and freed on the
 * main/control thread, and fetches run on that thread's event_base. Workers
 * only call mg_jwks_store_get, mg_jwks_store_request_refresh,
 * mg_jwks_store_ready and mg_jwks_store_keys' callbacks, which are
 * thread-safe (a very short per-URI lock around a refcounted pointer swap;
 * the refetch request wakes the main loop with event_active, so libevent
 * threading must be on: evthread_use_pthreads() before the base is made).
 * The process must ignore SIGPIPE (a peer that resets
 * the connection during an SSL write raises it), as meshgate's main does.
 *
 * Behaviour (Istio's istiod fetcher): fetch each
 * distinct URI over HTTPS (SNI, server certificate checked against the CA
 * bundle with hostname check; plain http only to 127.0.0.1 / localhost / ::1,
 * for tests), at most 3 redirects, body <= 1 MiB, the rule's timeout.
 * Refresh every 20 min; on failure keep the last good set, count and log
 * it, retry after 1 min doubling up to 60 min; a set that could not be
 * refreshed for 7 days is dropped. The whole request (connect, TLS, body)
 * must finish within the rule's timeout. With no set yet a lookup
 * returns NULL (reqauthn answers 401 "Jwks remote fetch is failed"); there is
 * never a built-in key (CVE-2026-31837). A token naming an unknown kid may
 * trigger an early refetch, at most once per 30 s per URI. */
#define MG_JWKS_STORE_MAX_URIS 256

struct mg_jwks_store_opts {
    const char *ca_file;        /* CA bundle (MeshConfig caCertificates); NULL = Debian's */
    /* Intervals in ms; 0 = the default or the environment variable:
     * MESHGATE_JWKS_REFRESH_MS (20 min), MESHGATE_JWKS_BACKOFF_MS (60 s),
     * MESHGATE_JWKS_BACKOFF_MAX_MS (60 min), MESHGATE_JWKS_KIDMISS_MS (30 s). */
    int64_t refresh_ms, backoff_ms, backoff_max_ms, kid_miss_ms;
    /* A last good set older than this is dropped after a failed refresh
     * (MESHGATE_JWKS_MAX_STALE_MS; default 7 days, as Istio). */
    int64_t max_stale_ms;
    size_t max_body;            /* 0 = 1 MiB */
    int max_redirects;          /* <0 = 3 */
    bool quiet;                 /* no log lines on stderr (tests) */
};

struct mg_jwks_store;

/* Create the store on `base` (the main loop) resolving with `dns` (never
 * NULL: a NULL evdns_base makes evhttp 2.1.12 resolve blocking). opts may
 * be NULL. Returns NULL with a message in err when the CA bundle cannot be
 * loaded or dns is NULL. */
struct mg_jwks_store *mg_jwks_store_new(struct event_base *base, struct evdns_base *dns,
                                        const struct mg_jwks_store_opts *opts,
                                        char *err, size_t errlen);
/* Cancel fetches and free everything (main thread, after workers stopped). */
void mg_jwks_store_free(struct mg_jwks_store *s);

/* Register a URI (idempotent; main thread) and schedule its first fetch on
 * the loop at once. discovery: uri is an OIDC discovery document whose
 * `jwks_uri` is then fetched. timeout_ms <= 0 means 5 s. Returns 0, or -1
 * when the URI is not https:// (nor http:// to localhost) or the store is
 * full. URIs are never removed (a reload simply stops asking for them). */
int mg_jwks_store_add(struct mg_jwks_store *s, const char *uri, bool discovery, int64_t timeout_ms);
/* Register every remote URI of the compiled rules. Returns the number refused. */
int mg_jwks_store_add_rules(struct mg_jwks_store *s, const struct mg_reqauthn *ra);

/* Any thread: a new reference to the current key set of uri (release with
 * mg_jwks_unref), or NULL when none was fetched yet or uri is unknown. */
struct mg_jwks *mg_jwks_store_get(struct mg_jwks_store *s, const char *uri);
/* Any thread: ask for an early refetch of uri (unknown kid). Rate-limited
 * per URI; a request inside the interval is deferred to its end. */
void mg_jwks_store_request_refresh(struct mg_jwks_store *s, const char *uri);
/* Any thread: has every registered URI either succeeded or failed its
 * first attempt? (true with no URIs) */
bool mg_jwks_store_ready(struct mg_jwks_store *s);
/* The reqauthn key-lookup interface backed by this store. */
struct mg_ra_keys mg_jwks_store_keys(struct mg_jwks_store *s);

struct mg_jwks_stats {
    uint64_t fetch_ok, fetch_fail;  /* completed attempts */
    uint64_t requests;              /* HTTP requests sent (redirects count) */
    uint64_t kid_refetch;           /* early refetches started for an unknown kid */
    bool has_keys;
    char last_error[160];
};
/* Any thread: counters of uri. Returns 0, or -1 for an unknown uri. */
int mg_jwks_store_stats(struct mg_jwks_store *s, const char *uri, struct mg_jwks_stats *out);

/* Any thread: append a JSON array describing every URI (uri, discovery,
 * keys, kids, fetch_ok, fetch_fail, requests, kid_refetch, last_error) to
 * out, for /config_dump and logs. */
void mg_jwks_store_dump(struct mg_jwks_store *s, struct mg_buf *out);
/* meshgate_jwks_fetches_total{uri,result="success"|"failure"} (Prometheus text). */
void mg_jwks_store_metrics(struct mg_jwks_store *s, struct mg_buf *out);

/* the admin listener (Proxy.spec.admin) on the main thread:
 * /ready, /stats/prometheus, /config_dump, served with evhttp. */
struct mg_worker;
struct mg_snapshot;

struct mg_admin;

/* Readiness hook (e.g. JWKS first fetch): return false while not ready. */
typedef bool (*mg_ready_hook)(void *arg);
void mg_admin_set_ready_hook(struct mg_admin *a, mg_ready_hook fn, void *arg);
/* More Prometheus text appended to /stats/prometheus (main thread's data). */
typedef void (*mg_metrics_hook)(void *arg, struct mg_buf *out);
void mg_admin_set_metrics_hook(struct mg_admin *a, mg_metrics_hook fn, void *arg);
/* SIGTERM: /ready answers 503 "DRAINING" from now on (NULL is ignored). */
void mg_admin_set_draining(struct mg_admin *a);

/* Listen on "ip:port". Returns NULL with a message in err on failure. */
struct mg_admin *mg_admin_start(struct event_base *base, const char *addr, char *err, size_t errlen);
/* What the pages show: workers (for counters) and the current snapshot
 * (borrowed; call again after each reload). */
void mg_admin_update(struct mg_admin *a, struct mg_worker *w, int n, struct mg_snapshot *s,
                     bool listeners_ready);
void mg_admin_free(struct mg_admin *a);

#endif
