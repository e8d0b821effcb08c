/* mirror.c - request mirroring (VirtualService mirror, mirrors): a copy of
 * the request, its body included, to another cluster, fire-and-forget as
 * Envoy's request shadowing: the copy's Host carries "-shadow", its
 * response is read and dropped, its failures are nobody's business, and
 * nothing of it can slow or fail the request it copies. A copy lives on
 * its own (the connection it came from held by a reference) and ends with
 * its response, a failure, its timeout, or - when the copied request ends
 * before its whole body was copied - at once. */
#include "upstream/internal.h"
#include <event2/event.h>
#include <stdio.h>
#include <string.h>
#include "http/types.h"
#include "log/log.h"
#include "net/types.h"
#include "route/types.h"

/* Copies in flight per worker, and body bytes a copy may hold while its
 * upstream is slower than the client: past either, copies are dropped. */
#define MIRROR_MAX_INFLIGHT 256
#define MIRROR_MAX_PENDING (1u << 20)
#define MIRROR_TIMEOUT_MS 30000

struct mg_shadow {
    struct mg_request r;                /* the copy; r.codec points back here */
    struct mg_request *main;            /* the copied request, NULL once it ended */
    struct mg_shadow *next;             /* main's list (main->shadows) */
    struct mg_conn *conn;               /* a reference: the copy may outlive main */
    struct evbuffer *pending;           /* body bytes not yet taken by the upstream */
    struct event *timer;
    bool main_body_end;                 /* the whole body is in pending or sent */
    bool body_end_sent;
};

/* `clean`: the exchange completed (the connection may serve again) */
static void shadow_free(struct mg_shadow *sh, bool clean)
{
    struct mg_request *r = &sh->r;
    mg_upstream_detach(r, clean);
    while (r->n_on_release)
        r->on_release[--r->n_on_release](r);
    if (sh->main) {                     /* unlink from the copied request */
        struct mg_shadow **pp = &sh->main->shadows;
        while (*pp && *pp != sh)
            pp = &(*pp)->next;
        if (*pp)
            *pp = sh->next;
    }
    atomic_fetch_sub_explicit(&sh->conn->w->metrics->mirror_active, 1, memory_order_relaxed);
    if (sh->timer)
        event_free(sh->timer);
    evbuffer_free(sh->pending);
    mg_arena_free(&r->arena);
    struct mg_conn *c = sh->conn;
    free(sh);
    mg_conn_unref(c);
}

static void shadow_pump(struct mg_shadow *sh)
{
    struct mg_request *r = &sh->r;
    if (r->body == MG_BODY_NONE)
        return;
    size_t n = evbuffer_get_length(sh->pending);
    if (n && mg_upstream_body_ready(r))
        mg_upstream_body_data(r, sh->pending, n);
    if (sh->main_body_end && !sh->body_end_sent && !evbuffer_get_length(sh->pending) &&
        mg_upstream_body_ready(r)) {
        sh->body_end_sent = true;
        r->body_done = true;
        mg_upstream_body_end(r);
    }
}

/* ---- the copy's "downstream": nobody; the response is dropped ---- */

static void sh_continue(struct mg_request *r)
{
    (void)r;
}

static void sh_head(struct mg_request *r)
{
    (void)r;
}

static void sh_data(struct mg_request *r, struct evbuffer *src, size_t n)
{
    (void)r;
    evbuffer_drain(src, n);
}

static void sh_end(struct mg_request *r)
{
    shadow_free(r->codec, true);
}

static bool sh_full(struct mg_request *r)
{
    (void)r;
    return false;
}

static void sh_body_resume(struct mg_request *r)
{
    shadow_pump(r->codec);
}

static void sh_local_reply(struct mg_request *r, int status, const char *body, bool close)
{
    (void)status;
    (void)body;
    (void)close;
    shadow_free(r->codec, false);
}

static void sh_abort(struct mg_request *r)
{
    shadow_free(r->codec, false);
}

static const struct mg_down_ops shadow_ops = {
    .send_continue = sh_continue, .resp_head = sh_head, .resp_data = sh_data,
    .resp_end = sh_end, .resp_full = sh_full, .body_resume = sh_body_resume,
    .local_reply = sh_local_reply, .abort = sh_abort,
};

static void sh_reply(struct mg_request *r, int status, const char *body, const char *reason,
                     bool close)
{
    (void)reason;
    r->ops->local_reply(r, status, body, close);
}

static void sh_resume(struct mg_request *r)
{
    (void)r;
}

/* no retries for a copy: its failure ends it */
static void sh_failed(struct mg_request *r, int status, const char *flags, const char *retry_class)
{
    (void)status;
    (void)flags;
    (void)retry_class;
    shadow_free(r->codec, false);
}

static const struct mg_request_cb shadow_cb = {
    .reply = sh_reply, .resume = sh_resume, .upstream_failed = sh_failed,
};

static void on_shadow_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    shadow_free(arg, false);
}

/* The copied request ends: a copy still missing body bytes can never be
 * complete, so it ends too; the others go on alone. */
static void main_release(struct mg_request *m)
{
    struct mg_shadow *sh = m->shadows;
    m->shadows = NULL;
    while (sh) {
        struct mg_shadow *next = sh->next;
        sh->main = NULL;
        sh->next = NULL;
        if (sh->r.body != MG_BODY_NONE && !sh->main_body_end)
            shadow_free(sh, false);
        sh = next;
    }
}

static char *dup_in(struct mg_arena *a, const char *s)
{
    return s ? mg_arena_strndup(a, s, strlen(s)) : NULL;
}

/* Envoy's shadow host: "-shadow" after the host name, before any port. */
static char *shadow_host(struct mg_arena *a, const char *auth)
{
    const char *colon = strrchr(auth, ':');
    if (colon && (strchr(auth, ']') ? colon > strchr(auth, ']') : colon == strchr(auth, ':')))
        return mg_arena_printf(a, "%.*s-shadow%s", (int)(colon - auth), auth, colon);
    return mg_arena_printf(a, "%s-shadow", auth);
}

static void shadow_start(struct mg_request *m, const struct mg_wdest *dest)
{
    struct mg_wmetrics *mt = m->conn->w->metrics;
    if (atomic_load_explicit(&mt->mirror_active, memory_order_relaxed) >= MIRROR_MAX_INFLIGHT) {
        atomic_fetch_add_explicit(&mt->mirror_dropped, 1, memory_order_relaxed);
        return;
    }
    struct mg_shadow *sh = mg_xcalloc(1, sizeof(*sh));
    struct mg_request *r = &sh->r;
    sh->main = m;
    sh->conn = m->conn;
    mg_conn_ref(sh->conn);
    sh->pending = evbuffer_new();
    if (!sh->pending)
        abort();
    r->conn = m->conn;
    r->snap = m->snap;
    r->ops = &shadow_ops;
    r->cb = &shadow_cb;
    r->codec = sh;
    r->start_ms = mg_now_ms();
    r->start_wall_us = m->start_wall_us;
    r->grpc_status = -1;
    r->flags = "-";
    /* every string the upstream reads is copied: the copy outlives m */
    r->method = dup_in(&r->arena, m->method);
    r->target = dup_in(&r->arena, m->target);
    r->path = dup_in(&r->arena, m->path);
    r->host = dup_in(&r->arena, m->host);
    r->protocol = m->protocol;
    r->is_head = m->is_head;
    r->body = m->body;
    r->content_length = m->content_length;
    r->route = m->route;                /* the snapshot's: kept alive by the connection's */
    r->dest = dest;
    r->up_path = dup_in(&r->arena, m->up_path);
    const char *auth = m->up_authority ? m->up_authority : m->authority;
    r->authority = r->up_authority = shadow_host(&r->arena, auth ? auth : "");
    r->n_uh = m->n_uh;
    r->uh = mg_arena_alloc(&r->arena, (m->n_uh ? m->n_uh : 1) * sizeof(*r->uh));
    for (size_t i = 0; i < m->n_uh; i++) {
        memset(&r->uh[i], 0, sizeof(r->uh[i]));
        r->uh[i].key = dup_in(&r->arena, m->uh[i].key);
        r->uh[i].value = dup_in(&r->arena, m->uh[i].value);
    }
    snprintf(r->request_id, sizeof(r->request_id), "%s", m->request_id);
    r->body_done = r->body == MG_BODY_NONE;
    sh->main_body_end = r->body_done;
    sh->next = m->shadows;
    m->shadows = sh;
    mg_request_on_release(m, main_release);
    atomic_fetch_add_explicit(&mt->mirror_active, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&mt->mirror_sent, 1, memory_order_relaxed);
    int64_t to = m->route->cfg->timeout_ms > 0 ? m->route->cfg->timeout_ms : MIRROR_TIMEOUT_MS;
    sh->timer = evtimer_new(m->conn->w->base, on_shadow_timeout, sh);
    struct timeval tv = { (time_t)(to / 1000), (suseconds_t)((to % 1000) * 1000) };
    evtimer_add(sh->timer, &tv);
    mg_upstream_start(r);               /* may end the copy at once (no endpoint) */
}

void mg_mirror_start(struct mg_request *r)
{
    const struct mg_route *rt = r->route;
    if (!rt || !rt->n_mirrors || r->upgrade)
        return;                         /* a tunnel is not copied */
    for (size_t i = 0; i < rt->n_mirrors; i++) {
        const struct mg_wdest *d = &rt->mirrors[i];
        double pct = rt->mirror_pct[i];
        if (!d->cluster || d->cluster->n_eps == 0 || pct <= 0)
            continue;
        if (pct < 100 && (double)(mg_worker_rand(r->conn->w) % 1000000u) >= pct * 10000.0)
            continue;
        shadow_start(r, d);
    }
}

void mg_mirror_tee(struct mg_request *m, struct evbuffer *src, size_t n)
{
    struct mg_shadow *sh = m->shadows;
    while (sh) {
        struct mg_shadow *next = sh->next;
        if (evbuffer_get_length(sh->pending) + n > MIRROR_MAX_PENDING) {
            /* the copy's upstream cannot keep up: drop the copy, never wait */
            atomic_fetch_add_explicit(&m->conn->w->metrics->mirror_dropped, 1, memory_order_relaxed);
            shadow_free(sh, false);
        } else {
            struct evbuffer_iovec v[8];
            int k = evbuffer_peek(src, (ev_ssize_t)n, NULL, v, 8);
            if (k > 8) {                /* scattered: copy the slow way */
                char *tmp = mg_xmalloc(n);
                evbuffer_copyout(src, tmp, n);
                evbuffer_add(sh->pending, tmp, n);
                free(tmp);
            } else {
                size_t left = n;
                for (int i = 0; i < k && left; i++) {
                    size_t l = v[i].iov_len < left ? v[i].iov_len : left;
                    evbuffer_add(sh->pending, v[i].iov_base, l);
                    left -= l;
                }
            }
            shadow_pump(sh);
        }
        sh = next;
    }
}

void mg_mirror_body_end(struct mg_request *m)
{
    for (struct mg_shadow *sh = m->shadows, *next; sh; sh = next) {
        next = sh->next;
        sh->main_body_end = true;
        shadow_pump(sh);
    }
}
