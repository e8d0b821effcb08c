/* admin.h - the admin listener (Proxy.spec.admin) on the main thread:
 * /ready, /stats/prometheus, /config_dump, served with evhttp. */
#ifndef MG_ADMIN_H
#define MG_ADMIN_H
#include <stdbool.h>
#include <event2/event.h>

struct mg_worker;
struct mg_snapshot;

struct mg_admin;

/* Readiness hook (e.g. JWKS first fetch): return false while not ready. */
typedef bool (*mg_ready_hook)(void *arg);
void mg_admin_set_ready_hook(struct mg_admin *a, mg_ready_hook fn, void *arg);

/* Listen on "ip:port". Returns NULL with a message in err on failure. */
struct mg_admin *mg_admin_start(struct event_base *base, const char *addr, char *err, size_t errlen);
/* What the pages show: workers (for counters) and the current snapshot
 * (borrowed; call again after each reload). */
void mg_admin_update(struct mg_admin *a, struct mg_worker *w, int n, struct mg_snapshot *s,
                     bool listeners_ready);
void mg_admin_free(struct mg_admin *a);

#endif
