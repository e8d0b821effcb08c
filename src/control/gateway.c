/* gateway.c - `meshgate run`: the startup order, signals and reload.
 *
 * Order: threads support -> TLS init -> load config (all errors, exit 1)
 * -> compile the snapshot -> bind every listener (per worker, SO_REUSEPORT)
 * -> workers -> admin -> signals -> READY=1. A reload (SIGHUP) repeats the
 * load and compile; a certificate rotation (the file watch) compiles the
 * configuration model already loaded again; anything failing keeps the old
 * generation serving. */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <openssl/evp.h>
#include "access/access.h"
#include "log/log.h"
#include "control/internal.h"
#include "cmd/cmd.h"
#include "config/config.h"
#include "net/net.h"
#include "base/base.h"
#include "control/control.h"
#include "snapshot/snapshot.h"
#include "upstream/upstream.h"

struct lport {
    uint16_t port;
    int *fds;                           /* one per worker */
};

struct watch {                          /* a file whose change triggers a reload */
    char *path;
    struct stat st;
    bool exists;
};

struct gw {
    const char *path;
    const char *ns;                     /* -n: namespace of documents without one */
    struct event_base *base;
    struct mg_worker *w;
    int n;
    struct mg_snapshot *snap;
    struct lport *ports;
    size_t n_ports;
    struct mg_admin *admin;
    uint64_t generation;
    bool stopping;                      /* accept has stopped, in-flight work drains */
    bool draining;                      /* SIGTERM: /ready 503, still accepting for drainDelay */
    struct event *drain_delay;
    bool watch_flag;                    /* run --watch */
    /* run --bind-address / --admin: what one instance of a fleet sharing
     * a configuration directory needs for itself (the same host, or an
     * address known only at start); win over the Proxy's, on every load */
    const char *bind_override, *admin_override;
    /* The configuration path's fingerprint (watchConfig): the one loaded,
     * and one seen changed and waiting to hold still for a poll. */
    unsigned char cfg_seen[32], cfg_pending[32];
    bool cfg_pending_set;
    struct watch *watch;                /* certificate files of the current snapshot */
    size_t n_watch, cap_watch;
    struct evdns_base *dns;             /* main loop resolver (JWKS fetches) */
    struct mg_jwks_store *jwks;         /* process-wide, outlives every snapshot */
    struct event *od_timer;             /* outlier detection's interval sweeps */
};

/* Run the outlier detection sweeps that are due on the serving snapshot's
 * clusters (ejected endpoints back in service) and wait for the next. */
static void od_arm(struct gw *g)
{
    if (!g->od_timer)
        return;
    int64_t ms = mg_outlier_sweep(g->snap->clusters, g->snap->n_clusters);
    if (ms < 0) {
        evtimer_del(g->od_timer);
        return;
    }
    struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000) };
    evtimer_add(g->od_timer, &tv);
}

static void on_od_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    od_arm(arg);
}

/* /ready also waits for every JWKS's first fetch attempt. */
static bool jwks_ready(void *arg)
{
    struct gw *g = arg;
    return !g->jwks || mg_jwks_store_ready(g->jwks);
}

static void usage(void)
{
    fprintf(stderr, "usage: meshgate run [-c PATH] [-n NAMESPACE] [--watch] [--bind-address IP] [--admin IP:PORT]\n");
}

/* Open sockets for ports of s not bound yet. On failure close what this
 * call opened and return -1. */
static int bind_new_ports(struct gw *g, const struct mg_snapshot *s)
{
    size_t first = g->n_ports;
    const char *addr = s->cfg->proxy.bind_address ? s->cfg->proxy.bind_address : "0.0.0.0";
    for (size_t i = 0; i < s->n_ports; i++) {
        uint16_t port = s->ports[i].number;
        bool have = false;
        for (size_t j = 0; j < g->n_ports; j++)
            if (g->ports[j].port == port)
                have = true;
        if (have)
            continue;
        struct lport lp = { port, mg_xcalloc((size_t)g->n, sizeof(int)) };
        const char *baddr = s->ports[i].bind_ip ? s->ports[i].bind_ip : addr;  /* inbound binds its own */
        for (int k = 0; k < g->n; k++) {
            char err[256];
            lp.fds[k] = mg_listener_open(baddr, port, err, sizeof(err));
            if (lp.fds[k] < 0) {
                fprintf(stderr, "meshgate: %s\n", err);
                for (int m = 0; m < k; m++)
                    close(lp.fds[m]);
                free(lp.fds);
                for (size_t j = first; j < g->n_ports; j++) {
                    for (int m = 0; m < g->n; m++)
                        close(g->ports[j].fds[m]);
                    free(g->ports[j].fds);
                }
                g->n_ports = first;
                return -1;
            }
        }
        g->ports = mg_xrealloc(g->ports, (g->n_ports + 1) * sizeof(*g->ports));
        g->ports[g->n_ports++] = lp;
    }
    return 0;
}

static void post_all(struct gw *g, struct mg_snapshot *s)
{
    struct mg_lfd *fds = mg_xcalloc(g->n_ports ? g->n_ports : 1, sizeof(*fds));
    for (int k = 0; k < g->n; k++) {
        for (size_t j = 0; j < g->n_ports; j++) {
            fds[j].port = g->ports[j].port;
            fds[j].fd = g->ports[j].fds[k];
        }
        mg_worker_post(&g->w[k], s, fds, g->n_ports);
    }
    free(fds);
}

/* run --bind-address / --admin win over what the Proxy says. */
static void apply_overrides(const struct gw *g, struct mg_config *cfg)
{
    if (cfg && g->bind_override) {
        free(cfg->proxy.bind_address);
        cfg->proxy.bind_address = mg_xstrdup(g->bind_override);
    }
    if (cfg && g->admin_override) {
        free(cfg->proxy.admin);
        cfg->proxy.admin = mg_xstrdup(g->admin_override);
    }
}

static struct mg_snapshot *load(struct gw *g, int n_workers)
{
    struct mg_diags d = { 0 };
    struct mg_config *cfg = mg_config_load_ns(g->path, g->ns, &d);
    struct mg_snapshot *s = NULL;
    apply_overrides(g, cfg);
    if (cfg)
        s = mg_snapshot_build(cfg, n_workers, g->generation + 1, &d);
    mg_diags_print(&d, stderr);
    mg_diags_free(&d);
    if (s)
        g->generation++;
    return s;
}

/* The serving generation's configuration model with the certificate
 * material as it is on disk now. The configuration files are not read:
 * what they say now was not signalled, and a half-applied edit would give
 * new connections policies the open ones never get. */
static struct mg_snapshot *rotate(struct gw *g)
{
    struct mg_diags d = { 0 };
    struct mg_snapshot *s = mg_snapshot_rotate(g->snap, g->generation + 1, &d);
    mg_diags_print(&d, stderr);
    mg_diags_free(&d);
    if (s)
        g->generation++;
    return s;
}

static void jwks_metrics(void *store, struct mg_buf *out)
{
    mg_jwks_store_metrics(store, out);
}

static void jwks_dump(void *store, struct mg_buf *out)
{
    mg_jwks_store_dump(store, out);
}

/* Before a snapshot is posted: its remote key sets come from the process
 * JWKS store, which fetches every URI its rules name. Returns the number of
 * URIs the store refused (each logged by the store). */
static int use_jwks(struct mg_access *a, struct mg_jwks_store *store)
{
    if (!a || !store)
        return 0;
    mg_access_use_keys(a, mg_jwks_store_keys(store), jwks_dump, store);
    return mg_jwks_store_add_rules(store, mg_access_reqauthn(a));
}

static void watch_add(const char *path, void *arg)
{
    struct gw *g = arg;
    for (size_t i = 0; i < g->n_watch; i++)
        if (strcmp(g->watch[i].path, path) == 0)
            return;
    if (g->n_watch == g->cap_watch) {
        g->cap_watch = g->cap_watch ? g->cap_watch * 2 : 16;
        g->watch = mg_xrealloc(g->watch, g->cap_watch * sizeof(*g->watch));
    }
    struct watch *w = &g->watch[g->n_watch++];
    w->path = mg_xstrdup(path);
    w->exists = stat(path, &w->st) == 0;
}

static void watch_reset(struct gw *g)
{
    for (size_t i = 0; i < g->n_watch; i++)
        free(g->watch[i].path);
    g->n_watch = 0;
    if (g->snap)
        mg_snapshot_files(g->snap, watch_add, g);
}

/* Certificates, keys, CRLs, CA files and the GeoIP database are re-read
 * when they change: a change rotates them into a new generation with the
 * same configuration model; connections stay up. */
static bool watch_changed(struct gw *g)
{
    for (size_t i = 0; i < g->n_watch; i++) {
        struct stat st;
        bool exists = stat(g->watch[i].path, &st) == 0;
        const struct stat *o = &g->watch[i].st;
        if (exists != g->watch[i].exists ||
            (exists && (st.st_mtim.tv_sec != o->st_mtim.tv_sec || st.st_mtim.tv_nsec != o->st_mtim.tv_nsec ||
                        st.st_size != o->st_size || st.st_ino != o->st_ino)))
            return true;
    }
    return false;
}

static void reload(struct gw *g, bool rotation);

static void fp_stat(EVP_MD_CTX *md, const char *name, const char *path)
{
    struct stat st;
    EVP_DigestUpdate(md, name, strlen(name) + 1);
    if (stat(path, &st) != 0) {
        EVP_DigestUpdate(md, "-", 1);
        return;
    }
    int64_t v[5] = { (int64_t)st.st_ino, (int64_t)st.st_size, (int64_t)st.st_mtim.tv_sec,
                     (int64_t)st.st_mtim.tv_nsec, (int64_t)st.st_dev };
    EVP_DigestUpdate(md, v, sizeof(v));
}

static int fp_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* What the configuration path looks like now: for a directory, every
 * *.yaml / *.yml the loader would read (by stat, so a file that is a
 * symlink into a Kubernetes volume's ..data changes with the flip) and the
 * ..data link itself; for a file, its stat. */
static void config_fingerprint(const char *path, unsigned char out[32])
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    EVP_DigestInit_ex(md, EVP_sha256(), NULL);
    struct stat st;
    DIR *d = stat(path, &st) == 0 && S_ISDIR(st.st_mode) ? opendir(path) : NULL;
    if (!d) {
        fp_stat(md, "", path);
    } else {
        char **names = NULL;
        size_t n = 0, cap = 0;
        struct dirent *e;
        while ((e = readdir(d)) != NULL && n < 4096) {
            if (e->d_name[0] == '.' ||
                !(mg_has_suffix(e->d_name, ".yaml") || mg_has_suffix(e->d_name, ".yml")))
                continue;
            if (n == cap) {
                cap = cap ? cap * 2 : 32;
                names = mg_xrealloc(names, cap * sizeof(*names));
            }
            names[n++] = mg_xstrdup(e->d_name);
        }
        closedir(d);
        qsort(names, n, sizeof(*names), fp_cmp);
        for (size_t i = 0; i < n; i++) {
            char *f = mg_xasprintf("%s/%s", path, names[i]);
            fp_stat(md, names[i], f);
            free(f);
            free(names[i]);
        }
        free(names);
        char *data = mg_xasprintf("%s/..data", path), link[PATH_MAX];
        ssize_t k = readlink(data, link, sizeof(link) - 1);
        free(data);
        if (k > 0)
            EVP_DigestUpdate(md, link, (size_t)k);
    }
    unsigned int len = 32;
    EVP_DigestFinal_ex(md, out, &len);
    EVP_MD_CTX_free(md);
}

static bool watching_config(const struct gw *g)
{
    return g->watch_flag || (g->snap && g->snap->cfg->proxy.watch_config);
}

/* Configuration from a watched path (Proxy.spec.watchConfig, run --watch),
 * as a Kubernetes ConfigMap or Secret volume, git-sync or config
 * management write it: a change is reloaded as SIGHUP would, once the path
 * has held still for one poll (so a file being written, or a series of
 * writes, is read once complete; a volume's ..data flip is atomic). */
static void watch_config(struct gw *g)
{
    if (!watching_config(g))
        return;
    unsigned char now[32];
    config_fingerprint(g->path, now);
    if (memcmp(now, g->cfg_seen, 32) == 0) {
        g->cfg_pending_set = false;
        return;
    }
    if (!g->cfg_pending_set || memcmp(now, g->cfg_pending, 32) != 0) {
        memcpy(g->cfg_pending, now, 32);   /* still moving: look again next poll */
        g->cfg_pending_set = true;
        return;
    }
    fprintf(stderr, "meshgate: configuration %s changed (watched)\n", g->path);
    g->cfg_pending_set = false;
    memcpy(g->cfg_seen, now, 32);       /* a rejected one is not retried until it changes again */
    reload(g, false);
}

static void on_watch_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct gw *g = arg;
    if (g->stopping)
        return;
    watch_config(g);
    if (!watch_changed(g))
        return;
    fprintf(stderr, "meshgate: certificate or GeoIP database files changed\n");
    reload(g, true);
    watch_reset(g);                     /* also after a rejected reload: do not retry in a loop */
}

/* rotation: the file watch saw certificate material change (no SIGHUP).
 * The new generation compiles the current configuration model again, so
 * it keeps the policy generation and existing connections are not
 * recycled; a SIGHUP loads a new model, whose policies every connection
 * gets (the old ones are drained, worker.c). */
static void reload(struct gw *g, bool rotation)
{
    mg_sd_notify_reloading();
    const char *what = rotation ? "certificate rotation" : "configuration reload";
    if (rotation)
        fprintf(stderr, "meshgate: rotating certificates (configuration of generation %llu kept; "
                "SIGHUP reloads %s)\n", (unsigned long long)g->snap->policy_gen, g->path);
    else
        fprintf(stderr, "meshgate: reloading %s\n", g->path);
    struct mg_snapshot *s = rotation ? rotate(g) : load(g, g->n);
    if (!s || bind_new_ports(g, s) < 0) {
        fprintf(stderr, "meshgate: %s rejected; generation %llu keeps serving\n",
                rotation ? "rotation" : "reload", (unsigned long long)g->snap->generation);
        mg_snapshot_unref(s);
        mg_metrics_reload(false);
        mg_sd_notify("READY=1");
        return;
    }
    if (!rotation && mg_accesslog_open(s->cfg->mesh.access_log_file) < 0)
        fprintf(stderr, "meshgate: cannot open access log %s: %s\n", s->cfg->mesh.access_log_file,
                strerror(errno));
    use_jwks(s->access, g->jwks);
    /* ejected endpoints stay ejected across a rotation or a reload that
     * leaves their cluster as it was */
    mg_outlier_inherit(s->clusters, s->n_clusters, g->snap->clusters, g->snap->n_clusters);
    mg_tls_ticket_keys_install(s->ticket_keys);
    post_all(g, s);
    mg_snapshot_unref(g->snap);
    g->snap = s;
    od_arm(g);
    watch_reset(g);
    if (g->admin)
        mg_admin_update(g->admin, g->w, g->n, s, true);
    mg_metrics_reload(true);
    fprintf(stderr, "meshgate: generation %llu active (%s, policies of generation %llu)\n",
            (unsigned long long)s->generation, what, (unsigned long long)s->policy_gen);
    mg_sd_notify("READY=1");
}

/* Stop accepting, let the workers finish what they hold (timeouts.drain),
 * leave the main loop. */
static void stop_now(struct gw *g)
{
    if (g->stopping)
        return;
    g->stopping = true;
    if (!g->draining)
        mg_sd_notify("STOPPING=1");
    fprintf(stderr, "meshgate: stopping (accept closed, drain up to %lld ms)\n",
            (long long)g->snap->cfg->proxy.timeout_drain_ms);
    for (int k = 0; k < g->n; k++)
        mg_worker_stop(&g->w[k], g->snap->cfg->proxy.timeout_drain_ms);
    event_base_loopexit(g->base, NULL);
}

static void on_drain_delay(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    stop_now(arg);
}

/* SIGTERM as a load balancer needs it (Envoy's drain, Kubernetes' preStop):
 * /ready fails at once so health checks take this instance out, while the
 * listeners keep accepting for timeouts.drainDelay (connections the
 * balancer still sends meanwhile are served, not reset); every response
 * from now on ends its connection. Then accept stops and in-flight work
 * drains. */
static void start_drain(struct gw *g)
{
    int64_t ms = g->snap->cfg->proxy.timeout_drain_delay_ms;
    if (ms <= 0) {
        stop_now(g);
        return;
    }
    g->draining = true;
    mg_sd_notify("STOPPING=1");
    mg_admin_set_draining(g->admin);
    for (int k = 0; k < g->n; k++)
        mg_worker_drain_soon(&g->w[k]);
    fprintf(stderr, "meshgate: draining: /ready answers 503, accepting for %lld ms more\n", (long long)ms);
    g->drain_delay = evtimer_new(g->base, on_drain_delay, g);
    struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000) };
    evtimer_add(g->drain_delay, &tv);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    struct gw *g = arg;
    if (sig == SIGHUP) {
        if (!g->stopping) {
            config_fingerprint(g->path, g->cfg_seen);   /* what this reload reads */
            g->cfg_pending_set = false;
            reload(g, false);
        }
    } else if (sig == SIGUSR1) {
        if (mg_accesslog_reopen() < 0)
            fprintf(stderr, "meshgate: cannot reopen the access log: %s\n", strerror(errno));
    } else if (sig == SIGTERM && !g->draining && !g->stopping) {
        start_drain(g);
    } else {
        /* SIGINT, or a second SIGTERM: no delay (in-flight work still drains) */
        stop_now(g);
    }
}

static void on_ticket_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    mg_tls_ticket_rotate(12 * 3600);
}

int mg_cmd_run(int argc, char **argv)
{
    struct gw g = { .path = MG_DEFAULT_CONFIG };
    for (int i = 1; i < argc; i++) {
        if ((strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) && i + 1 < argc) {
            g.path = argv[++i];
        } else if ((strcmp(argv[i], "-n") == 0 || strcmp(argv[i], "--namespace") == 0) &&
                   i + 1 < argc) {
            if (!mg_config_namespace_ok(argv[i + 1])) {
                fprintf(stderr, "meshgate: -n %s: not a namespace name\n", argv[i + 1]);
                return 2;
            }
            g.ns = argv[++i];
        } else if (strcmp(argv[i], "--watch") == 0) {
            g.watch_flag = true;
        } else if (strcmp(argv[i], "--bind-address") == 0 && i + 1 < argc) {
            struct mg_addr a;
            if (mg_addr_parse_ip(&a, argv[i + 1]) != 0) {
                fprintf(stderr, "meshgate: --bind-address %s: not an IP address\n", argv[i + 1]);
                return 2;
            }
            g.bind_override = argv[++i];
        } else if (strcmp(argv[i], "--admin") == 0 && i + 1 < argc) {
            g.admin_override = argv[++i];
        } else {
            usage();
            return 2;
        }
    }
    signal(SIGPIPE, SIG_IGN);           /* an SSL write to a reset peer raises it */
    config_fingerprint(g.path, g.cfg_seen);   /* before the first load: a change meanwhile is seen */
    if (evthread_use_pthreads() < 0) {
        fprintf(stderr, "meshgate: evthread_use_pthreads failed\n");
        return 1;
    }
    if (mg_tls_init() < 0) {
        fprintf(stderr, "meshgate: TLS init failed\n");
        return 1;
    }
    /* worker count needs the config: peek at it through a first load */
    struct mg_diags d = { 0 };
    struct mg_config *cfg = mg_config_load_ns(g.path, g.ns, &d);
    if (!cfg) {
        mg_diags_print(&d, stderr);
        mg_diags_free(&d);
        fprintf(stderr, "meshgate: %s has errors; not starting\n", g.path);
        return 1;
    }
    apply_overrides(&g, cfg);
    int n = cfg->proxy.workers > 0 ? cfg->proxy.workers : (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1)
        n = 1;
    if (n > 256)
        n = 256;
    g.n = n;
    g.snap = mg_snapshot_build(cfg, n, ++g.generation, &d);
    mg_diags_print(&d, stderr);
    mg_diags_free(&d);
    if (!g.snap) {
        fprintf(stderr, "meshgate: %s has errors; not starting\n", g.path);
        return 1;
    }
    if (bind_new_ports(&g, g.snap) < 0) {
        mg_snapshot_unref(g.snap);
        return 1;
    }
    if (mg_accesslog_open(g.snap->cfg->mesh.access_log_file) < 0) {
        fprintf(stderr, "meshgate: cannot open access log %s: %s\n", g.snap->cfg->mesh.access_log_file,
                strerror(errno));
        return 1;
    }
    g.base = event_base_new();
    g.dns = evdns_base_new(g.base, EVDNS_BASE_INITIALIZE_NAMESERVERS);
    if (!g.dns)                         /* no resolv.conf: names fail, addresses still work */
        g.dns = evdns_base_new(g.base, 0);
    {
        char err[256];
        struct mg_jwks_store_opts jo = { .ca_file = g.snap->cfg->mesh.ca_certificates };
        g.jwks = mg_jwks_store_new(g.base, g.dns, &jo, err, sizeof(err));
        if (!g.jwks)
            fprintf(stderr, "meshgate: JWKS store disabled (%s): remote key sets cannot be "
                    "fetched, their tokens get 401\n", err);
    }
    use_jwks(g.snap->access, g.jwks);
    mg_tls_ticket_keys_install(g.snap->ticket_keys);
    g.w = mg_workers_new(n, g.snap);
    post_all(&g, NULL);
    const char *admin = g.snap->cfg->proxy.admin ? g.snap->cfg->proxy.admin : "127.0.0.1:15000";
    if (*admin) {
        char err[256];
        g.admin = mg_admin_start(g.base, admin, err, sizeof(err));
        if (!g.admin) {
            fprintf(stderr, "meshgate: %s\n", err);
            return 1;
        }
    }
    if (mg_workers_start(g.w, n) < 0) {
        fprintf(stderr, "meshgate: cannot start worker threads\n");
        return 1;
    }
    if (g.admin) {
        mg_admin_set_ready_hook(g.admin, jwks_ready, &g);
        if (g.jwks)
            mg_admin_set_metrics_hook(g.admin, jwks_metrics, g.jwks);
        mg_admin_update(g.admin, g.w, n, g.snap, true);
    }
    int sigs[] = { SIGHUP, SIGTERM, SIGINT, SIGUSR1 };
    struct event *sev[4];
    for (int i = 0; i < 4; i++) {
        sev[i] = evsignal_new(g.base, sigs[i], on_signal, &g);
        evsignal_add(sev[i], NULL);
    }
    struct event *tick = event_new(g.base, -1, EV_PERSIST, on_ticket_timer, NULL);
    struct timeval hour = { 3600, 0 };
    evtimer_add(tick, &hour);
    watch_reset(&g);
    struct event *wtick = event_new(g.base, -1, EV_PERSIST, on_watch_timer, &g);
    struct timeval two = { 2, 0 };
    evtimer_add(wtick, &two);
    g.od_timer = evtimer_new(g.base, on_od_timer, &g);
    od_arm(&g);
    fprintf(stderr, "meshgate: serving %s with %d workers, %zu listeners (generation %llu)\n",
            g.path, n, g.n_ports, (unsigned long long)g.snap->generation);
    mg_sd_notify("READY=1");
    event_base_dispatch(g.base);

    mg_workers_free(g.w, n);
    for (int i = 0; i < n; i++)
        mg_metrics_free(g.w[i].metrics);
    free(g.w);
    mg_admin_free(g.admin);
    for (int i = 0; i < 4; i++)
        event_free(sev[i]);
    event_free(tick);
    event_free(wtick);
    if (g.drain_delay)
        event_free(g.drain_delay);
    event_free(g.od_timer);
    for (size_t i = 0; i < g.n_watch; i++)
        free(g.watch[i].path);
    free(g.watch);
    for (size_t j = 0; j < g.n_ports; j++) {
        for (int k = 0; k < n; k++)
            close(g.ports[j].fds[k]);
        free(g.ports[j].fds);
    }
    free(g.ports);
    mg_snapshot_unref(g.snap);
    mg_jwks_store_free(g.jwks);
    if (g.dns)
        evdns_base_free(g.dns, 0);
    mg_accesslog_close();
    event_base_free(g.base);
    fprintf(stderr, "meshgate: stopped\n");
    return 0;
}
