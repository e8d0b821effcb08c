/* jwks.c - JWKS store and fetcher (see control/internal.h). Main-thread state lives in
 * the entry without a lock; what workers touch (the key set pointer, the
 * refetch flag, counters) is behind the entry's mutex or atomic. */
#include <arpa/inet.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include "control/internal.h"

#define DEFAULT_CA "/etc/ssl/certs/ca-certificates.crt"

struct fetch;

struct jwks_entry {
    char *uri;
    bool discovery;
    int64_t timeout_ms;
    struct mg_jwks_store *store;
    pthread_mutex_t mu;         /* ks, refetch_wanted, stats.last_error */
    struct mg_jwks *ks;
    bool refetch_wanted;
    atomic_bool attempted;
    atomic_uint_fast64_t ok, fail, requests, kid_refetch;
    char last_error[160];
    /* main thread only */
    struct event *timer;
    struct fetch *inflight;
    int64_t last_start_ms;      /* monotonic; 0 = never */
    int64_t due_ms;             /* when the timer fires */
    int64_t backoff_cur;
    int64_t last_ok_ms;         /* monotonic time of the last success */
};

struct mg_jwks_store {
    struct event_base *base;
    struct evdns_base *dns;
    SSL_CTX *ctx;
    struct event *wake;
    int64_t refresh_ms, backoff_ms, backoff_max_ms, kid_miss_ms, max_stale_ms;
    size_t max_body;
    int max_redirects;
    bool quiet;
    struct jwks_entry *entries[MG_JWKS_STORE_MAX_URIS];
    atomic_size_t n;
    /* Connections are freed from the loop after their callback returned:
     * libevent 2.1 still uses a connection after calling a failed request's
     * callback, and its free-on-completion covers only success. */
    struct evhttp_connection **dead;
    size_t n_dead;
    struct event *reaper;
};

struct fetch {
    struct jwks_entry *e;
    char *url;
    int redirects;
    bool discovery_stage;       /* fetching the OIDC document, not the JWKS */
    struct evhttp_connection *conn;
    int err_kind;               /* enum evhttp_request_error + 1; 0 = none */
    struct evhttp_request *req; /* pending request, NULL once its callback ran */
    struct event *deadline;     /* whole-request timeout (a slow drip is not progress) */
    SSL *ssl;                   /* our own reference, to read the verify result */
    bool starting, sync_failed; /* done_cb ran inside evhttp_make_request */
};

static int64_t env_ms(const char *name, int64_t opt, int64_t def)
{
    const char *v;
    uint64_t x;
    if (opt > 0)
        return opt;
    if ((v = getenv(name)) && mg_parse_uint(v, 1, (uint64_t)INT64_MAX, &x) == 0)
        return (int64_t)x;
    return def;
}

static void logf_(const struct mg_jwks_store *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void logf_(const struct mg_jwks_store *s, const char *fmt, ...)
{
    va_list ap;
    if (s->quiet)
        return;
    va_start(ap, fmt);
    fputs("meshgate: jwks: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static void wake_cb(evutil_socket_t fd, short what, void *arg);

static void reap_all(struct mg_jwks_store *s)
{
    for (size_t i = 0; i < s->n_dead; i++)
        evhttp_connection_free(s->dead[i]);
    s->n_dead = 0;
}

static void reaper_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    reap_all(arg);
}

static void retire_conn(struct mg_jwks_store *s, struct evhttp_connection *c)
{
    if (!c)
        return;
    s->dead = mg_xrealloc(s->dead, (s->n_dead + 1) * sizeof *s->dead);
    s->dead[s->n_dead++] = c;
    event_active(s->reaper, EV_TIMEOUT, 1);
}

struct mg_jwks_store *mg_jwks_store_new(struct event_base *base, struct evdns_base *dns,
                                        const struct mg_jwks_store_opts *opts,
                                        char *err, size_t errlen)
{
    struct mg_jwks_store_opts o = opts ? *opts : (struct mg_jwks_store_opts){.max_redirects = -1};
    struct mg_jwks_store *s;
    const char *ca = o.ca_file && *o.ca_file ? o.ca_file : DEFAULT_CA;
    SSL_CTX *ctx;

    if (!base || !dns) {
        snprintf(err, errlen, "an event base and an evdns base are required");
        return NULL;
    }
    if (!(ctx = SSL_CTX_new(TLS_client_method())))
        mg_oom();
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);    /* EOF without close_notify is EOF */
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    if (SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1) {
        snprintf(err, errlen, "cannot load CA bundle %s", ca);
        SSL_CTX_free(ctx);
        ERR_clear_error();
        return NULL;
    }
    s = mg_xcalloc(1, sizeof *s);
    s->base = base;
    s->dns = dns;
    s->ctx = ctx;
    s->refresh_ms = env_ms("MESHGATE_JWKS_REFRESH_MS", o.refresh_ms, 20 * 60 * 1000);
    s->backoff_ms = env_ms("MESHGATE_JWKS_BACKOFF_MS", o.backoff_ms, 60 * 1000);
    s->backoff_max_ms = env_ms("MESHGATE_JWKS_BACKOFF_MAX_MS", o.backoff_max_ms, 60 * 60 * 1000);
    s->kid_miss_ms = env_ms("MESHGATE_JWKS_KIDMISS_MS", o.kid_miss_ms, 30 * 1000);
    s->max_stale_ms = env_ms("MESHGATE_JWKS_MAX_STALE_MS", o.max_stale_ms, 7LL * 24 * 3600 * 1000);
    s->max_body = o.max_body ? o.max_body : MG_JWKS_MAX_JSON;
    s->max_redirects = o.max_redirects < 0 ? 3 : o.max_redirects;
    s->quiet = o.quiet;
    if (!(s->wake = event_new(base, -1, 0, wake_cb, s)) ||
        !(s->reaper = event_new(base, -1, 0, reaper_cb, s)))
        mg_oom();
    atomic_init(&s->n, 0);
    return s;
}

static void fetch_free(struct fetch *f)
{
    if (!f)
        return;
    if (f->deadline)
        event_free(f->deadline);
    SSL_free(f->ssl);           /* only our extra reference (SSL_up_ref) */
    free(f->url);
    free(f);
}

void mg_jwks_store_free(struct mg_jwks_store *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < atomic_load(&s->n); i++) {
        struct jwks_entry *e = s->entries[i];
        event_free(e->timer);
        if (e->inflight) {
            if (e->inflight->conn)
                evhttp_connection_free(e->inflight->conn);
            fetch_free(e->inflight);
        }
        mg_jwks_unref(e->ks);
        pthread_mutex_destroy(&e->mu);
        free(e->uri);
        free(e);
    }
    reap_all(s);
    free(s->dead);
    event_free(s->reaper);
    event_free(s->wake);
    SSL_CTX_free(s->ctx);
    free(s);
}

static bool is_loopback_host(const char *h)
{
    return !strcmp(h, "127.0.0.1") || !strcmp(h, "localhost") || !strcmp(h, "::1") ||
           !strcmp(h, "[::1]");
}

/* Is url acceptable to fetch: https://, http:// to loopback, or the
 * configured jwksUri itself (`configured`, NULL for none): Istio accepts
 * http:// to any host, so loading the configuration already decided
 * (Proxy.spec.jwt.requireHttps refuses it there); a redirect or an OIDC
 * document never downgrades to plain http off the host. */
static bool url_allowed(const char *url, const char *configured)
{
    if (configured && strcmp(url, configured) == 0 && mg_strncasecmp(url, "http://", 7) == 0)
        return true;
    struct evhttp_uri *u = evhttp_uri_parse(url);
    const char *scheme, *host;
    bool ok = false;
    if (!u)
        return false;
    scheme = evhttp_uri_get_scheme(u);
    host = evhttp_uri_get_host(u);
    if (scheme && host && *host)
        ok = !mg_strcasecmp(scheme, "https") ||
             (!mg_strcasecmp(scheme, "http") && is_loopback_host(host));
    evhttp_uri_free(u);
    return ok;
}

static void timer_cb(evutil_socket_t fd, short what, void *arg);

static void schedule(struct jwks_entry *e, int64_t delay_ms)
{
    struct timeval tv = {(time_t)(delay_ms / 1000), (suseconds_t)(delay_ms % 1000) * 1000};
    e->due_ms = mg_now_ms() + delay_ms;
    evtimer_add(e->timer, &tv);
}

static struct jwks_entry *find(struct mg_jwks_store *s, const char *uri)
{
    size_t n = atomic_load_explicit(&s->n, memory_order_acquire);
    for (size_t i = 0; i < n; i++)
        if (!strcmp(s->entries[i]->uri, uri))
            return s->entries[i];
    return NULL;
}

int mg_jwks_store_add(struct mg_jwks_store *s, const char *uri, bool discovery, int64_t timeout_ms)
{
    struct jwks_entry *e;
    size_t n = atomic_load(&s->n);
    if (!uri || !url_allowed(uri, discovery ? NULL : uri)) {
        logf_(s, "%s: refused (only https://, http:// to localhost, or the configured http:// jwksUri)", uri ? uri : "(null)");
        return -1;
    }
    if (find(s, uri))
        return 0;
    if (n >= MG_JWKS_STORE_MAX_URIS) {
        logf_(s, "%s: refused (more than %d JWKS URIs)", uri, MG_JWKS_STORE_MAX_URIS);
        return -1;
    }
    e = mg_xcalloc(1, sizeof *e);
    e->uri = mg_xstrdup(uri);
    e->discovery = discovery;
    e->timeout_ms = timeout_ms > 0 ? timeout_ms : 5000;
    e->store = s;
    pthread_mutex_init(&e->mu, NULL);
    e->backoff_cur = s->backoff_ms;
    if (!(e->timer = evtimer_new(s->base, timer_cb, e)))
        mg_oom();
    s->entries[n] = e;
    /* Publish after the entry is complete: readers scan [0, n) lock-free. */
    atomic_store_explicit(&s->n, n + 1, memory_order_release);
    schedule(e, 0);
    return 0;
}

int mg_jwks_store_add_rules(struct mg_jwks_store *s, const struct mg_reqauthn *ra)
{
    int refused = 0;
    for (size_t i = 0; i < mg_reqauthn_n_rules(ra); i++) {
        bool disc;
        int64_t tmo;
        const char *uri = mg_reqauthn_rule_uri(ra, i, &disc, &tmo);
        if (uri && mg_jwks_store_add(s, uri, disc, tmo) < 0)
            refused++;
    }
    return refused;
}

struct mg_jwks *mg_jwks_store_get(struct mg_jwks_store *s, const char *uri)
{
    struct jwks_entry *e = s && uri ? find(s, uri) : NULL;
    struct mg_jwks *ks;
    if (!e)
        return NULL;
    pthread_mutex_lock(&e->mu);
    ks = mg_jwks_ref(e->ks);
    pthread_mutex_unlock(&e->mu);
    return ks;
}

void mg_jwks_store_request_refresh(struct mg_jwks_store *s, const char *uri)
{
    struct jwks_entry *e = s && uri ? find(s, uri) : NULL;
    bool was;
    if (!e)
        return;
    pthread_mutex_lock(&e->mu);
    was = e->refetch_wanted;
    e->refetch_wanted = true;
    pthread_mutex_unlock(&e->mu);
    if (!was)
        event_active(s->wake, EV_TIMEOUT, 1);
}

bool mg_jwks_store_ready(struct mg_jwks_store *s)
{
    size_t n = atomic_load_explicit(&s->n, memory_order_acquire);
    for (size_t i = 0; i < n; i++)
        if (!atomic_load(&s->entries[i]->attempted))
            return false;
    return true;
}

static struct mg_jwks *keys_get(void *ctx, const char *uri)
{
    return mg_jwks_store_get(ctx, uri);
}

static void keys_miss(void *ctx, const char *uri)
{
    mg_jwks_store_request_refresh(ctx, uri);
}

struct mg_ra_keys mg_jwks_store_keys(struct mg_jwks_store *s)
{
    return (struct mg_ra_keys){s, keys_get, keys_miss};
}

int mg_jwks_store_stats(struct mg_jwks_store *s, const char *uri, struct mg_jwks_stats *out)
{
    struct jwks_entry *e = s && uri ? find(s, uri) : NULL;
    if (!e)
        return -1;
    memset(out, 0, sizeof *out);
    out->fetch_ok = atomic_load(&e->ok);
    out->fetch_fail = atomic_load(&e->fail);
    out->requests = atomic_load(&e->requests);
    out->kid_refetch = atomic_load(&e->kid_refetch);
    pthread_mutex_lock(&e->mu);
    out->has_keys = e->ks != NULL;
    snprintf(out->last_error, sizeof out->last_error, "%s", e->last_error);
    pthread_mutex_unlock(&e->mu);
    return 0;
}

void mg_jwks_store_dump(struct mg_jwks_store *s, struct mg_buf *out)
{
    size_t n = atomic_load_explicit(&s->n, memory_order_acquire);
    json_t *arr = json_array();
    char *txt;
    for (size_t i = 0; i < n; i++) {
        struct jwks_entry *e = s->entries[i];
        struct mg_jwks_stats st;
        struct mg_jwks *ks = mg_jwks_store_get(s, e->uri);
        json_t *o = json_object();
        mg_jwks_store_stats(s, e->uri, &st);
        json_object_set_new(o, "uri", json_string(e->uri));
        json_object_set_new(o, "discovery", json_boolean(e->discovery));
        json_object_set_new(o, "keys", json_integer((json_int_t)mg_jwks_count(ks)));
        json_object_set_new(o, "generation", json_integer((json_int_t)mg_jwks_generation(ks)));
        json_object_set_new(o, "fetch_ok", json_integer((json_int_t)st.fetch_ok));
        json_object_set_new(o, "fetch_fail", json_integer((json_int_t)st.fetch_fail));
        json_object_set_new(o, "requests", json_integer((json_int_t)st.requests));
        json_object_set_new(o, "kid_refetch", json_integer((json_int_t)st.kid_refetch));
        json_object_set_new(o, "last_error", st.last_error[0] ? json_string(st.last_error) : json_null());
        json_array_append_new(arr, o);
        mg_jwks_unref(ks);
    }
    txt = json_dumps(arr, JSON_COMPACT);
    if (!txt)
        mg_oom();
    mg_buf_adds(out, txt);
    free(txt);
    json_decref(arr);
}

void mg_jwks_store_metrics(struct mg_jwks_store *s, struct mg_buf *out)
{
    size_t n = atomic_load_explicit(&s->n, memory_order_acquire);
    mg_buf_adds(out, "# TYPE meshgate_jwks_fetches_total counter\n");
    for (size_t i = 0; i < n; i++) {
        struct jwks_entry *e = s->entries[i];
        struct mg_jwks_stats st;
        mg_jwks_store_stats(s, e->uri, &st);
        /* a URI is configuration text: keep the label value printable */
        struct mg_buf u = { 0 };
        for (const char *p = e->uri; *p; p++)
            if (*p != '"' && *p != '\\' && (unsigned char)*p >= 0x20)
                mg_buf_add(&u, p, 1);
        mg_buf_add(&u, "", 1);
        mg_buf_printf(out, "meshgate_jwks_fetches_total{uri=\"%s\",result=\"success\"} %llu\n"
                      "meshgate_jwks_fetches_total{uri=\"%s\",result=\"failure\"} %llu\n",
                      u.p, (unsigned long long)st.fetch_ok, u.p, (unsigned long long)st.fetch_fail);
        mg_buf_free(&u);
    }
}

/* ---- one fetch: request, redirects, discovery, completion ---- */

static void finish(struct fetch *f, struct mg_jwks *ks, const char *why)
{
    struct jwks_entry *e = f->e;
    struct mg_jwks_store *s = e->store;
    struct mg_jwks *old = NULL;

    pthread_mutex_lock(&e->mu);
    if (ks) {
        old = e->ks;
        e->ks = ks;
        e->last_error[0] = 0;
        e->last_ok_ms = mg_now_ms();
    } else {
        snprintf(e->last_error, sizeof e->last_error, "%s", why);
        /* Istio keeps a last good set for 7 days, not forever. */
        if (e->ks && mg_now_ms() - e->last_ok_ms > s->max_stale_ms) {
            old = e->ks;
            e->ks = NULL;
        }
    }
    pthread_mutex_unlock(&e->mu);
    mg_jwks_unref(old);         /* workers holding it keep their own reference */
    if (ks) {
        atomic_fetch_add(&e->ok, 1);
        e->backoff_cur = s->backoff_ms;
        schedule(e, s->refresh_ms);
    } else {
        atomic_fetch_add(&e->fail, 1);
        logf_(s, "%s: fetch failed: %s (%s; retry in %lld ms)", e->uri, why,
              e->ks ? "keeping the last good key set" : "no key set yet: tokens get 401",
              (long long)e->backoff_cur);
        schedule(e, e->backoff_cur);
        e->backoff_cur = e->backoff_cur > s->backoff_max_ms / 2 ? s->backoff_max_ms
                                                                 : e->backoff_cur * 2;
    }
    atomic_store(&e->attempted, true);
    e->inflight = NULL;
    fetch_free(f);
}

static void done_cb(struct evhttp_request *req, void *arg);

/* Called by libevent before done_cb when a request fails: keep the reason. */
static void error_cb(enum evhttp_request_error kind, void *arg)
{
    struct fetch *f = arg;
    f->err_kind = (int)kind + 1;
}

static bool is_ip_literal(const char *h)
{
    unsigned char buf[16];
    return inet_pton(AF_INET, h, buf) == 1 || inet_pton(AF_INET6, h, buf) == 1;
}

/* Send the request for f->url. Returns NULL, or why it could not start. */
static const char *start_request(struct fetch *f)
{
    struct jwks_entry *e = f->e;
    struct mg_jwks_store *s = e->store;
    struct evhttp_uri *u;
    struct bufferevent *bev;
    struct evhttp_request *req;
    const char *host, *scheme, *path, *query;
    char *target;
    bool tls;
    int port;
    struct timeval tv = {(time_t)(e->timeout_ms / 1000), (suseconds_t)(e->timeout_ms % 1000) * 1000};

    if (!url_allowed(f->url, e->discovery ? NULL : e->uri))
        return "URL refused (only https://, or http:// to localhost)";
    if (!(u = evhttp_uri_parse(f->url)))
        return "malformed URL";
    scheme = evhttp_uri_get_scheme(u);
    host = evhttp_uri_get_host(u);
    tls = !mg_strcasecmp(scheme, "https");
    port = evhttp_uri_get_port(u);
    if (port < 0)
        port = tls ? 443 : 80;
    path = evhttp_uri_get_path(u);
    query = evhttp_uri_get_query(u);
    target = mg_xasprintf("%s%s%s", path && *path ? path : "/", query ? "?" : "", query ? query : "");
    if (tls) {
        SSL *ssl = SSL_new(s->ctx);
        if (!ssl)
            mg_oom();
        if (is_ip_literal(host)) {
            X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host);
        } else {
            SSL_set_tlsext_host_name(ssl, host);
            SSL_set1_host(ssl, host);
        }
        /* The bufferevent owns the SSL from here; we keep a second
         * reference only to read the verification result after a failure. */
        bev = bufferevent_openssl_socket_new(s->base, -1, ssl, BUFFEREVENT_SSL_CONNECTING,
                                             BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
        if (!bev) {
            SSL_free(ssl);
            free(target);
            evhttp_uri_free(u);
            return "cannot create a TLS connection";
        }
        SSL_free(f->ssl);
        SSL_up_ref(ssl);
        f->ssl = ssl;
    } else if (!(bev = bufferevent_socket_new(s->base, -1, BEV_OPT_CLOSE_ON_FREE))) {
        free(target);
        evhttp_uri_free(u);
        return "cannot create a connection";
    }
    f->conn = evhttp_connection_base_bufferevent_new(s->base, s->dns, bev, host, (unsigned short)port);
    if (!f->conn) {
        bufferevent_free(bev);
        free(target);
        evhttp_uri_free(u);
        return "cannot create an HTTP connection";
    }
    evhttp_connection_set_timeout_tv(f->conn, &tv);
    evhttp_connection_set_retries(f->conn, 0);
    evhttp_connection_set_max_body_size(f->conn, (ev_ssize_t)s->max_body);
    req = evhttp_request_new(done_cb, f);
    if (!req)
        mg_oom();
    evhttp_request_set_error_cb(req, error_cb);
    f->err_kind = 0;
    {
        struct evkeyvalq *h = evhttp_request_get_output_headers(req);
        char *hosthdr = (port == (tls ? 443 : 80)) ? mg_xstrdup(host)
                                                   : mg_xasprintf("%s:%d", host, port);
        evhttp_add_header(h, "Host", hosthdr);
        evhttp_add_header(h, "Accept", "application/json");
        evhttp_add_header(h, "User-Agent", "meshgate-jwks");
        evhttp_add_header(h, "Connection", "close");
        free(hosthdr);
    }
    atomic_fetch_add(&e->requests, 1);
    f->req = req;
    f->starting = true;
    int rc = evhttp_make_request(f->conn, req, EVHTTP_REQ_GET, target);
    f->starting = false;
    if (f->sync_failed) {       /* libevent already failed it and freed req */
        f->sync_failed = false;
        free(target);
        evhttp_uri_free(u);
        return "connection failed";
    }
    if (rc != 0) {
        f->req = NULL;
        /* evhttp freed req on failure */
        evhttp_connection_free(f->conn);
        f->conn = NULL;
        free(target);
        evhttp_uri_free(u);
        return "cannot send the request";
    }
    evtimer_add(f->deadline, &tv);
    free(target);
    evhttp_uri_free(u);
    return NULL;
}

/* Resolve a Location header against the current URL. */
static char *resolve_location(const char *base, const char *loc)
{
    struct evhttp_uri *u;
    char *out;
    if (!mg_strncasecmp(loc, "https://", 8) || !mg_strncasecmp(loc, "http://", 7))
        return mg_xstrdup(loc);
    if (loc[0] != '/' || loc[1] == '/' || !(u = evhttp_uri_parse(base)))
        return NULL;
    if (evhttp_uri_get_port(u) >= 0)
        out = mg_xasprintf("%s://%s:%d%s", evhttp_uri_get_scheme(u), evhttp_uri_get_host(u),
                           evhttp_uri_get_port(u), loc);
    else
        out = mg_xasprintf("%s://%s%s", evhttp_uri_get_scheme(u), evhttp_uri_get_host(u), loc);
    evhttp_uri_free(u);
    return out;
}

static void next_request(struct fetch *f, char *url)
{
    const char *why;
    free(f->url);
    f->url = url;
    f->conn = NULL;
    SSL_free(f->ssl);
    f->ssl = NULL;
    if ((why = start_request(f)))
        finish(f, NULL, why);
}

static void done_cb(struct evhttp_request *req, void *arg)
{
    struct fetch *f = arg;
    struct mg_jwks_store *s = f->e->store;
    int code = req ? evhttp_request_get_response_code(req) : 0;
    char why[160];
    struct evbuffer *in;
    size_t len;
    char *body;

    retire_conn(s, f->conn);    /* freed from the loop once this callback returned */
    f->conn = NULL;
    f->req = NULL;
    if (f->starting) {          /* failed synchronously: start_request reports it */
        f->sync_failed = true;
        return;
    }
    evtimer_del(f->deadline);
    if (code == 0) {
        unsigned long ssl_err = ERR_peek_last_error();
        const char *what = "connection failed";
        if (f->err_kind == EVREQ_HTTP_TIMEOUT + 1)
            what = "timeout";
        else if (f->err_kind == EVREQ_HTTP_DATA_TOO_LONG + 1)
            what = "response larger than the limit";
        else if (f->err_kind == EVREQ_HTTP_EOF + 1)
            what = "connection closed early";
        if (f->ssl && SSL_get_verify_result(f->ssl) != X509_V_OK) {
            snprintf(why, sizeof why, "server certificate not trusted: %s",
                     X509_verify_cert_error_string(SSL_get_verify_result(f->ssl)));
            ERR_clear_error();
            finish(f, NULL, why);
            return;
        }
        snprintf(why, sizeof why, "%s%s%s", what, ssl_err ? ": " : "",
                 ssl_err ? ERR_reason_error_string(ssl_err) ? ERR_reason_error_string(ssl_err)
                                                            : "TLS error" : "");
        ERR_clear_error();
        finish(f, NULL, why);
        return;
    }
    if (code == 301 || code == 302 || code == 303 || code == 307 || code == 308) {
        const char *loc = evhttp_find_header(evhttp_request_get_input_headers(req), "Location");
        char *next;
        if (!loc) {
            finish(f, NULL, "redirect without Location");
            return;
        }
        if (++f->redirects > s->max_redirects) {
            finish(f, NULL, "too many redirects");
            return;
        }
        if (!(next = resolve_location(f->url, loc))) {
            finish(f, NULL, "redirect to an unusable Location");
            return;
        }
        if (!mg_strncasecmp(f->url, "https:", 6) && mg_strncasecmp(next, "https:", 6)) {
            free(next);
            finish(f, NULL, "redirect from https to http refused");
            return;
        }
        next_request(f, next);
        return;
    }
    if (code != 200) {
        snprintf(why, sizeof why, "HTTP status %d", code);
        finish(f, NULL, why);
        return;
    }
    in = evhttp_request_get_input_buffer(req);
    len = evbuffer_get_length(in);
    if (len > s->max_body) {
        finish(f, NULL, "response larger than the limit");
        return;
    }
    body = mg_xmalloc(len + 1);
    evbuffer_copyout(in, body, len);
    body[len] = 0;
    if (f->discovery_stage) {
        json_t *o = json_loadb(body, len, 0, NULL);
        const char *ju = json_string_value(json_object_get(o, "jwks_uri"));
        char *next = ju ? mg_xstrdup(ju) : NULL;
        json_decref(o);
        free(body);
        if (!next) {
            finish(f, NULL, "OIDC discovery document has no jwks_uri");
            return;
        }
        f->discovery_stage = false;
        f->redirects = 0;
        next_request(f, next);
        return;
    }
    {
        char err[160];
        /* Remote key sets never carry oct (HMAC) keys. */
        struct mg_jwks *ks = mg_jwks_parse(body, len, 0, err, sizeof err);
        free(body);
        if (ks) {
            for (size_t i = 0; i < mg_jwks_n_warnings(ks); i++)
                logf_(s, "%s: %s", f->e->uri, mg_jwks_warning(ks, i));
        }
        finish(f, ks, ks ? NULL : err);
    }
}

static void deadline_cb(evutil_socket_t fd, short what, void *arg)
{
    struct fetch *f = arg;
    (void)fd;
    (void)what;
    if (!f->req)
        return;
    /* Cancelling runs no request callback; the fetch ends here. */
    evhttp_cancel_request(f->req);
    f->req = NULL;
    retire_conn(f->e->store, f->conn);
    f->conn = NULL;
    finish(f, NULL, "timeout");
}

static void start_fetch(struct jwks_entry *e)
{
    struct fetch *f;
    const char *why;
    if (e->inflight)
        return;
    f = mg_xcalloc(1, sizeof *f);
    f->e = e;
    f->url = mg_xstrdup(e->uri);
    f->discovery_stage = e->discovery;
    if (!(f->deadline = evtimer_new(e->store->base, deadline_cb, f)))
        mg_oom();
    e->inflight = f;
    e->last_start_ms = mg_now_ms();
    evtimer_del(e->timer);
    if ((why = start_request(f)))
        finish(f, NULL, why);
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    start_fetch(arg);
}

static void wake_cb(evutil_socket_t fd, short what, void *arg)
{
    struct mg_jwks_store *s = arg;
    size_t n = atomic_load(&s->n);
    (void)fd;
    (void)what;
    for (size_t i = 0; i < n; i++) {
        struct jwks_entry *e = s->entries[i];
        bool wanted;
        int64_t now = mg_now_ms(), earliest;
        pthread_mutex_lock(&e->mu);
        wanted = e->refetch_wanted;
        e->refetch_wanted = false;
        pthread_mutex_unlock(&e->mu);
        if (!wanted || e->inflight)
            continue;
        earliest = e->last_start_ms ? e->last_start_ms + s->kid_miss_ms : now;
        if (earliest <= now) {
            atomic_fetch_add(&e->kid_refetch, 1);
            start_fetch(e);
        } else if (e->due_ms > earliest) {
            atomic_fetch_add(&e->kid_refetch, 1);
            schedule(e, earliest - now);    /* deferred to the end of the interval */
        }
    }
}
