/* test_jwks_fetch.c - the JWKS store against a local HTTPS server that runs
 * on the same event loop (evhttp + bufferevent_openssl on 127.0.0.1, with a
 * certificate generated here). Intervals are tens of milliseconds, times
 * 20 (T() below) under valgrind. */
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <event2/http.h>
#include <event2/thread.h>
#include "control/internal.h"
#include "jwt_sign.h"
#include "tap.h"
#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#endif
#endif
#ifndef RUNNING_ON_VALGRIND
#define RUNNING_ON_VALGRIND 0
#endif

/* Valgrind runs the program 20 to 50 times slower, and more on a loaded
 * machine: a TLS handshake then takes longer than the 2 s request timeouts
 * and the 300 ms kid-miss interval the checks assume. Every timeout, wait and
 * interval goes through T(), so the checks keep their meaning there. */
static int time_scale = 1;
#define T(ms) ((ms) * time_scale)

static struct event_base *base;
static struct evdns_base *dns;
static char ca_good[64], ca_bad[64];

/* ---- certificates ---- */

static void make_cert(const char *cn, EVP_PKEY **key, X509 **crt)
{
    X509V3_CTX v3;
    X509_EXTENSION *ext;
    *key = mg_ts_genkey("ec256");
    *crt = X509_new();
    X509_set_version(*crt, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(*crt), (long)getpid() ^ (long)cn[0]);
    X509_gmtime_adj(X509_getm_notBefore(*crt), -3600);
    X509_gmtime_adj(X509_getm_notAfter(*crt), 3600);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(*crt), "CN", MBSTRING_ASC,
                               (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(*crt, X509_get_subject_name(*crt));
    X509_set_pubkey(*crt, *key);
    X509V3_set_ctx(&v3, *crt, *crt, NULL, NULL, 0);
    ext = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, "IP:127.0.0.1, DNS:localhost");
    X509_add_ext(*crt, ext, -1);
    X509_EXTENSION_free(ext);
    ext = X509V3_EXT_conf_nid(NULL, &v3, NID_basic_constraints, "critical,CA:TRUE");
    X509_add_ext(*crt, ext, -1);
    X509_EXTENSION_free(ext);
    X509_sign(*crt, *key, EVP_sha256());
}

static void write_cert(const char *path, X509 *crt)
{
    FILE *f = fopen(path, "w");
    PEM_write_X509(f, crt);
    fclose(f);
}

/* ---- the test server ---- */

struct srv {
    struct evhttp *http;
    SSL_CTX *ctx;
    int port;
    char *jwks;
    int hits_jwks, hits;
    int status;                 /* status for /jwks (200 normally) */
    struct evhttp_request *slow;
};

static struct bufferevent *srv_bev(struct event_base *b, void *arg)
{
    struct srv *s = arg;
    return bufferevent_openssl_socket_new(b, -1, SSL_new(s->ctx), BUFFEREVENT_SSL_ACCEPTING,
                                          BEV_OPT_CLOSE_ON_FREE);
}

static void reply(struct evhttp_request *req, int code, const char *body, size_t len)
{
    struct evbuffer *b = evbuffer_new();
    evbuffer_add(b, body, len);
    evhttp_send_reply(req, code, code == 200 ? "OK" : "X", b);
    evbuffer_free(b);
}

static void srv_handler(struct evhttp_request *req, void *arg)
{
    struct srv *s = arg;
    const char *uri = evhttp_request_get_uri(req);
    s->hits++;
    if (!strcmp(uri, "/jwks")) {
        s->hits_jwks++;
        reply(req, s->status, s->jwks, strlen(s->jwks));
    } else if (!strcmp(uri, "/big")) {
        size_t n = MG_JWKS_MAX_JSON + 100;
        char *big = malloc(n);
        memset(big, ' ', n);
        memcpy(big, "{\"keys\":[", 9);
        memcpy(big + n - 2, "]}", 2);
        reply(req, 200, big, n);
        free(big);
    } else if (!strncmp(uri, "/redir/", 7)) {
        int n = atoi(uri + 7);
        char loc[64];
        if (n > 1)
            snprintf(loc, sizeof loc, "/redir/%d", n - 1);
        else
            snprintf(loc, sizeof loc, "https://127.0.0.1:%d/jwks", s->port);
        evhttp_add_header(evhttp_request_get_output_headers(req), "Location", loc);
        reply(req, 302, "", 0);
    } else if (!strcmp(uri, "/downgrade")) {
        char loc[64];
        snprintf(loc, sizeof loc, "http://127.0.0.1:%d/jwks", s->port);
        evhttp_add_header(evhttp_request_get_output_headers(req), "Location", loc);
        reply(req, 302, "", 0);
    } else if (!strcmp(uri, "/slow")) {
        s->slow = req;          /* answered only after the client gave up */
    } else if (!strcmp(uri, "/.well-known/openid-configuration")) {
        char doc[128];
        snprintf(doc, sizeof doc, "{\"issuer\":\"x\",\"jwks_uri\":\"https://127.0.0.1:%d/jwks\"}", s->port);
        reply(req, 200, doc, strlen(doc));
    } else {
        reply(req, 404, "no", 2);
    }
}

static int srv_start(struct srv *s, SSL_CTX *ctx, int port)
{
    struct evhttp_bound_socket *bs;
    struct sockaddr_in sin;
    socklen_t sl = sizeof sin;
    s->ctx = ctx;
    s->http = evhttp_new(base);
    evhttp_set_bevcb(s->http, srv_bev, s);
    evhttp_set_gencb(s->http, srv_handler, s);
    if (!(bs = evhttp_bind_socket_with_handle(s->http, "127.0.0.1", (ev_uint16_t)port))) {
        evhttp_free(s->http);
        s->http = NULL;
        return -1;
    }
    getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&sin, &sl);
    s->port = ntohs(sin.sin_port);
    return 0;
}

static void srv_stop(struct srv *s)
{
    if (s->http)
        evhttp_free(s->http);
    s->http = NULL;
}

/* ---- loop helpers ---- */

static void run_ms(int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    event_base_loopexit(base, &tv);
    event_base_dispatch(base);
}

typedef bool (*cond_fn)(void *);
static bool run_until(cond_fn c, void *arg, int max_ms)
{
    int64_t end = mg_now_ms() + T(max_ms);
    while (!c(arg) && mg_now_ms() < end)
        run_ms(10);
    return c(arg);
}

struct probe {
    struct mg_jwks_store *st;
    const char *uri;
    const char *kid;
    int *counter, want;
};
static bool is_ready(void *a) { return mg_jwks_store_ready(((struct probe *)a)->st); }
static bool has_kid(void *a)
{
    struct probe *p = a;
    struct mg_jwks *ks = mg_jwks_store_get(p->st, p->uri);
    bool r = ks && mg_jwks_has_kid(ks, p->kid);
    mg_jwks_unref(ks);
    return r;
}
static bool counter_reached(void *a) { struct probe *p = a; return *p->counter >= p->want; }

static int64_t opt_max_stale;

static struct mg_jwks_store *store(const char *ca, int64_t refresh, int64_t backoff, int64_t kidmiss)
{
    char err[128];
    struct mg_jwks_store_opts o = {.ca_file = ca, .refresh_ms = T(refresh), .backoff_ms = T(backoff),
                                   .backoff_max_ms = T(backoff) * 4, .kid_miss_ms = T(kidmiss),
                                   .max_stale_ms = opt_max_stale, .max_redirects = -1, .quiet = true};
    struct mg_jwks_store *s = mg_jwks_store_new(base, dns, &o, err, sizeof err);
    if (!s)
        printf("# store: %s\n", err);
    return s;
}

static char *jwks_with(EVP_PKEY *k, const char *kid)
{
    char *j = mg_ts_jwk(k, kid, NULL), *doc = mg_ts_jwks((const char *[]){j}, 1);
    free(j);
    return doc;
}

/* A worker: takes and drops references while the main loop swaps sets. */
struct reader { struct mg_jwks_store *st; const char *uri; atomic_int stop; long gets, with_keys; };
static void *reader_thread(void *a)
{
    struct reader *r = a;
    while (!atomic_load(&r->stop)) {
        struct mg_jwks *ks = mg_jwks_store_get(r->st, r->uri);
        r->gets++;
        if (ks && mg_jwks_count(ks) == 1 && (mg_jwks_has_kid(ks, "k1") || mg_jwks_has_kid(ks, "k2")))
            r->with_keys++;
        mg_jwks_unref(ks);
        /* Valgrind runs one thread at a time and hands its lock over
         * unfairly: three readers that never enter the kernel starve the
         * event loop (which swaps the sets, then sets `stop`): its half
         * second of swaps took 8 s on a busy core, the longer the busier.
         * A yield per read lets it in; natively the readers still run
         * beside the loop. */
        sched_yield();
    }
    return NULL;
}

struct refresher { struct mg_jwks_store *st; const char *uri; };
static void *refresh_thread(void *a)
{
    struct refresher *r = a;
    for (int i = 0; i < 5; i++)
        mg_jwks_store_request_refresh(r->st, r->uri);
    return NULL;
}

int main(void)
{
    EVP_PKEY *kgood, *kbad, *k1, *k2;
    X509 *cgood, *cbad;
    SSL_CTX *sctx;
    struct srv s = {.status = 200};
    char url[128], err[128];
    struct mg_jwks_store *st;
    struct mg_jwks_stats stats;
    struct probe p;

    signal(SIGPIPE, SIG_IGN);   /* a peer's reset during an SSL write raises it */
    if (RUNNING_ON_VALGRIND)
        time_scale = 20;
    evthread_use_pthreads();
    base = event_base_new();
    dns = evdns_base_new(base, 0);
    snprintf(ca_good, sizeof ca_good, "/tmp/mg-jwks-ca-good-%d.pem", (int)getpid());
    snprintf(ca_bad, sizeof ca_bad, "/tmp/mg-jwks-ca-bad-%d.pem", (int)getpid());
    make_cert("127.0.0.1", &kgood, &cgood);
    make_cert("someone-else", &kbad, &cbad);
    write_cert(ca_good, cgood);
    write_cert(ca_bad, cbad);
    sctx = SSL_CTX_new(TLS_server_method());
    SSL_CTX_use_certificate(sctx, cgood);
    SSL_CTX_use_PrivateKey(sctx, kgood);
    SSL_CTX_set_options(sctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
    k1 = mg_ts_genkey("ec256");
    k2 = mg_ts_genkey("ed25519");
    s.jwks = jwks_with(k1, "k1");

    ok(!mg_jwks_store_new(base, NULL, NULL, err, sizeof err), "a NULL evdns_base is refused");
    ok(!mg_jwks_store_new(base, dns, &(struct mg_jwks_store_opts){.ca_file = "/nonexistent"}, err, sizeof err),
       "a missing CA bundle is refused (%s)", err);
    {
        int rc = srv_start(&s, sctx, 0);
        ok(rc == 0, "test HTTPS server on 127.0.0.1:%d", s.port);
    }

    /* 1. fetch works; 2. refresh picks up a rotated key. */
    /* Istio fetches an http:// jwksUri to any host; loading the configuration
     * decides (Proxy.spec.jwt.requireHttps refuses it there), so the store
     * takes the configured URI; an OIDC document over plain http to another
     * host is still refused (and a redirect there, below) */
    st = store(ca_good, 150, 50, 30000);
    ok(mg_jwks_store_add(st, "http://example.com/jwks", false, 0) == 0,
       "a configured plain http jwksUri to a remote host is taken");
    mg_jwks_store_free(st);
    st = store(ca_good, 150, 50, 30000);
    ok(mg_jwks_store_add(st, "http://example.com", true, 0) < 0,
       "OIDC discovery over plain http to a remote host refused");
    ok(mg_jwks_store_add(st, "ftp://127.0.0.1/jwks", false, 0) < 0, "non-http scheme refused");
    ok(mg_jwks_store_ready(st), "ready with no URIs");
    snprintf(url, sizeof url, "https://127.0.0.1:%d/jwks", s.port);
    ok(mg_jwks_store_add(st, url, false, T(2000)) == 0, "https URI registered");
    ok(mg_jwks_store_add(st, url, false, T(2000)) == 0, "registering twice is fine");
    ok(!mg_jwks_store_ready(st), "not ready before the first attempt");
    ok(!mg_jwks_store_get(st, url), "no key set before the first fetch");
    p = (struct probe){st, url, "k1", NULL, 0};
    ok(run_until(is_ready, &p, 3000), "ready after the first fetch");
    mg_jwks_store_stats(st, url, &stats);
    ok(has_kid(&p), "key set fetched over HTTPS%s%s", *stats.last_error ? ": " : "", stats.last_error);
    ok(stats.fetch_ok == 1 && stats.fetch_fail == 0 && stats.has_keys, "one successful fetch counted");
    {
        struct mg_jwks *held = mg_jwks_store_get(st, url);
        free(s.jwks);
        s.jwks = jwks_with(k2, "k2");
        p.kid = "k2";
        ok(run_until(has_kid, &p, 3000), "refresh picked up the rotated key");
        ok(held && mg_jwks_has_kid(held, "k1"), "a reference taken before the swap stays valid");
        mg_jwks_unref(held);
    }
    /* A failing refresh keeps the last good set. */
    s.status = 500;
    mg_jwks_store_stats(st, url, &stats);
    {
        uint64_t fails = stats.fetch_fail;
        int64_t end = mg_now_ms() + T(2000);
        while (mg_now_ms() < end) {
            run_ms(20);
            mg_jwks_store_stats(st, url, &stats);
            if (stats.fetch_fail > fails)
                break;
        }
        ok(stats.fetch_fail > fails && strstr(stats.last_error, "500"), "HTTP 500 counted as a failure (%s)",
           stats.last_error);
        ok(has_kid(&p), "last good key set kept after a failed refresh");
        struct mg_buf b = {0};
        mg_jwks_store_dump(st, &b);
        json_t *d = json_loads(b.p, 0, NULL), *e0 = json_array_get(d, 0);
        ok(json_array_size(d) == 1 && !strcmp(json_string_value(json_object_get(e0, "uri")), url) &&
           json_integer_value(json_object_get(e0, "keys")) == 1 &&
           strstr(json_string_value(json_object_get(e0, "last_error")), "500"),
           "dump shows the URI, its key count and the last error");
        json_decref(d);
        mg_buf_free(&b);
    }
    s.status = 200;
    mg_jwks_store_free(st);

    /* Workers read while the main loop swaps key sets every 20 ms. */
    st = store(ca_good, 20, 20, 30000);
    mg_jwks_store_add(st, url, false, T(2000));
    p = (struct probe){st, url, "k2", NULL, 0};
    run_until(has_kid, &p, 3000);
    {
        struct reader rd[3];
        pthread_t th[3];
        struct mg_jwks_stats before;
        mg_jwks_store_stats(st, url, &before);
        for (int i = 0; i < 3; i++) {
            rd[i] = (struct reader){st, url, 0, 0, 0};
            pthread_create(&th[i], NULL, reader_thread, &rd[i]);
        }
        /* at least 20 changes 25 ms apart, until the store swapped 5 times */
        int64_t end = mg_now_ms() + T(3000);
        for (int i = 0; i < 20 || (stats.fetch_ok < before.fetch_ok + 5 && mg_now_ms() < end); i++) {
            free(s.jwks);
            s.jwks = jwks_with(i % 2 ? k2 : k1, i % 2 ? "k2" : "k1");
            run_ms(25);
            mg_jwks_store_stats(st, url, &stats);
        }
        long gets = 0, good = 0;
        for (int i = 0; i < 3; i++) {
            atomic_store(&rd[i].stop, 1);
            pthread_join(th[i], NULL);
            gets += rd[i].gets;
            good += rd[i].with_keys;
        }
        mg_jwks_store_stats(st, url, &stats);
        ok(stats.fetch_ok >= before.fetch_ok + 5, "key set swapped %llu times under readers",
           (unsigned long long)(stats.fetch_ok - before.fetch_ok));
        ok(gets > 0 && gets == good, "every worker read saw a complete key set (%ld reads)", gets);
    }
    mg_jwks_store_free(st);
    free(s.jwks);
    s.jwks = jwks_with(k2, "k2");

    /* A last good set too old to keep is dropped after a failed refresh. */
    opt_max_stale = 1;
    st = store(ca_good, 60, 60, 30000);
    opt_max_stale = 0;
    mg_jwks_store_add(st, url, false, T(2000));
    p = (struct probe){st, url, "k2", NULL, 0};
    ok(run_until(has_kid, &p, 3000), "fetched (max stale 1 ms)");
    s.status = 500;
    {
        int64_t end = mg_now_ms() + T(2000);
        while (has_kid(&p) && mg_now_ms() < end)
            run_ms(20);
        ok(!has_kid(&p), "stale key set dropped once a refresh failed past the limit");
    }
    s.status = 200;
    mg_jwks_store_free(st);

    /* 3. server down at start, then up: backoff retries find it. */
    {
        struct srv d = {.status = 200, .jwks = s.jwks};
        int port;
        srv_start(&d, sctx, 0);
        port = d.port;
        srv_stop(&d);
        st = store(ca_good, 60000, 40, 0);
        snprintf(url, sizeof url, "https://127.0.0.1:%d/jwks", port);
        mg_jwks_store_add(st, url, false, T(500));
        p = (struct probe){st, url, "k2", NULL, 0};
        ok(run_until(is_ready, &p, 3000), "ready after a failed first attempt");
        ok(!mg_jwks_store_get(st, url), "no key set while the server is down");
        {
            struct mg_ra_keys keys = mg_jwks_store_keys(st);
            ok(keys.get(keys.ctx, url) == NULL, "reqauthn lookup gives no key set (tokens get 401)");
        }
        run_ms(T(100));
        ok(srv_start(&d, sctx, port) == 0, "server comes up on port %d", port);
        ok(run_until(has_kid, &p, 3000), "backoff retry fetched the key set");
        mg_jwks_store_stats(st, url, &stats);
        ok(stats.fetch_fail >= 2 && stats.fetch_ok == 1, "failures then one success counted (%llu failed)",
           (unsigned long long)stats.fetch_fail);
        mg_jwks_store_free(st);
        srv_stop(&d);
    }

    /* 4. oversized; 5. redirects; 6. untrusted certificate; discovery. */
    st = store(ca_good, 60000, 60000, 0);
    {
        char big[128], r3[128], r4[128], disc[128], slow[128], down[128];
        snprintf(big, sizeof big, "https://127.0.0.1:%d/big", s.port);
        snprintf(r3, sizeof r3, "https://127.0.0.1:%d/redir/3", s.port);
        snprintf(r4, sizeof r4, "https://127.0.0.1:%d/redir/4", s.port);
        snprintf(disc, sizeof disc, "https://127.0.0.1:%d/.well-known/openid-configuration", s.port);
        snprintf(slow, sizeof slow, "https://127.0.0.1:%d/slow", s.port);
        mg_jwks_store_add(st, slow, false, T(200));
        snprintf(down, sizeof down, "https://127.0.0.1:%d/downgrade", s.port);
        mg_jwks_store_add(st, down, false, T(2000));
        mg_jwks_store_add(st, big, false, T(2000));
        mg_jwks_store_add(st, r3, false, T(2000));
        mg_jwks_store_add(st, r4, false, T(2000));
        mg_jwks_store_add(st, disc, true, T(2000));
        p = (struct probe){st, NULL, "k2", NULL, 0};
        ok(run_until(is_ready, &p, 5000), "all six URIs attempted");
        mg_jwks_store_stats(st, down, &stats);
        ok(!stats.has_keys && strstr(stats.last_error, "https to http"), "redirect to plain http refused (%s)",
           stats.last_error);
        mg_jwks_store_stats(st, slow, &stats);
        ok(!stats.has_keys && strstr(stats.last_error, "timeout"), "a server that never answers times out (%s)",
           stats.last_error);
        if (s.slow) {           /* libevent frees a request whose client left */
            reply(s.slow, 200, "{}", 2);
            s.slow = NULL;
        }
        mg_jwks_store_stats(st, big, &stats);
        ok(!stats.has_keys && stats.fetch_fail == 1 && strstr(stats.last_error, "larger"),
           "JWKS over 1 MiB refused (%s)", stats.last_error);
        p.uri = r3;
        ok(has_kid(&p), "3 redirects followed");
        mg_jwks_store_stats(st, r4, &stats);
        ok(!stats.has_keys && strstr(stats.last_error, "redirects"), "4 redirects refused (%s)", stats.last_error);
        p.uri = disc;
        ok(has_kid(&p), "OIDC discovery: jwks_uri followed");
    }
    mg_jwks_store_free(st);

    st = store(ca_bad, 60000, 60000, 0);
    snprintf(url, sizeof url, "https://127.0.0.1:%d/jwks", s.port);
    mg_jwks_store_add(st, url, false, T(2000));
    p = (struct probe){st, url, "k2", NULL, 0};
    ok(run_until(is_ready, &p, 3000), "untrusted server attempted");
    mg_jwks_store_stats(st, url, &stats);
    ok(!stats.has_keys && stats.fetch_fail == 1 && strstr(stats.last_error, "not trusted"),
       "server certificate from another CA refused (%s)", stats.last_error);
    mg_jwks_store_free(st);

    /* 7. kid-miss refetch, rate-limited, requested from another thread. */
    st = store(ca_good, 3600000, 60000, 300);
    mg_jwks_store_add(st, url, false, T(2000));
    p = (struct probe){st, url, "k2", &s.hits_jwks, 0};
    run_until(is_ready, &p, 3000);
    {
        int h0 = s.hits_jwks;
        struct refresher r = {st, url};
        pthread_t th;
        pthread_create(&th, NULL, refresh_thread, &r);
        pthread_join(th, NULL);
        run_ms(T(100));
        is_int(s.hits_jwks, h0, "kid-miss refetch inside the interval is deferred");
        p.want = h0 + 1;
        ok(run_until(counter_reached, &p, 2000), "deferred refetch happens at the end of the interval");
        run_ms(T(100));
        is_int(s.hits_jwks, h0 + 1, "five requests gave one refetch");
        run_ms(T(250));
        {
            int64_t t0 = mg_now_ms();
            mg_jwks_store_request_refresh(st, url);
            p.want = h0 + 2;
            bool reached = run_until(counter_reached, &p, 2000);
            int64_t took = mg_now_ms() - t0;
            ok(reached && took < T(250), "after the interval a refetch starts at once (%lld ms)",
               (long long)took);
        }
        mg_jwks_store_stats(st, url, &stats);
        is_int((long long)stats.kid_refetch, 2, "kid refetches counted");
    }
    mg_jwks_store_free(st);

    /* 8. The whole chain: compiled rules -> store -> reqauthn, with a key
     * rotation recovered through the kid-miss refetch. */
    {
        struct mg_config cfg;
        struct mg_request_authn ra;
        struct mg_jwt_rule rule;
        struct mg_diags d = {0};
        struct mg_reqauthn *comp;
        struct mg_ra_keys keys;
        struct mg_ra_result res;
        struct mg_header h;
        struct mg_ra_request rq;
        char *t1, *t2, *auth1, *auth2;
        int64_t now = mg_wall_s();

        memset(&cfg, 0, sizeof cfg);
        memset(&ra, 0, sizeof ra);
        memset(&rule, 0, sizeof rule);
        cfg.mesh.root_namespace = "istio-system";
        cfg.proxy.present = true;
        cfg.proxy.meta.namespace_ = "istio-system";
        ra.meta.namespace_ = "istio-system";
        rule.issuer = "https://issuer.test";
        rule.jwks_uri = url;
        rule.timeout_ms = T(2000);
        ra.rules = &rule;
        ra.n_rules = 1;
        cfg.request_authns = &ra;
        cfg.n_request_authns = 1;
        comp = mg_reqauthn_compile(&cfg, &d);
        st = store(ca_good, 3600000, 60000, 100);
        keys = mg_jwks_store_keys(st);
        ok(mg_jwks_store_add_rules(st, comp) == 0, "rule URIs registered in the store");
        {
            char *h1 = mg_ts_header("ES256", "k1"), *h2 = mg_ts_header("EdDSA", "k2");
            char *pl = mg_xasprintf("{\"iss\":\"https://issuer.test\",\"sub\":\"bob\",\"exp\":%lld}",
                                    (long long)now + 600);
            t1 = mg_ts_sign(k1, NULL, 0, "ES256", h1, pl);
            t2 = mg_ts_sign(k2, NULL, 0, "EdDSA", h2, pl);
            auth1 = mg_xasprintf("Bearer %s", t1);
            auth2 = mg_xasprintf("Bearer %s", t2);
            free(h1), free(h2), free(pl);
        }
        free(s.jwks);
        s.jwks = jwks_with(k1, "k1");
        h = (struct mg_header){"authorization", 13, auth1, strlen(auth1)};
        rq = (struct mg_ra_request){"GET", "https", "gw.test", "/", 1, &h, 1};
        mg_reqauthn_eval(comp, &rq, &keys, NULL, now, &res);
        ok(res.status == MG_RA_DENY_401 && !strcmp(res.body, "Jwks remote fetch is failed"),
           "before the first fetch: 401 Jwks remote fetch is failed");
        mg_ra_result_free(&res);
        p = (struct probe){st, url, "k1", NULL, 0};
        run_until(is_ready, &p, 3000);
        mg_reqauthn_eval(comp, &rq, &keys, NULL, now, &res);
        ok(res.status == MG_RA_PASS_PRINCIPAL && !strcmp(res.principal, "https://issuer.test/bob"),
           "after the fetch the ES256 token passes");
        mg_ra_result_free(&res);
        /* The issuer rotates to an Ed25519 key k2. */
        free(s.jwks);
        s.jwks = jwks_with(k2, "k2");
        h = (struct mg_header){"authorization", 13, auth2, strlen(auth2)};
        mg_reqauthn_eval(comp, &rq, &keys, NULL, now, &res);
        ok(res.status == MG_RA_DENY_401 && res.error == MG_JWKS_KID_ALG_MISMATCH,
           "token with the new kid: 401 until the set is refetched");
        mg_ra_result_free(&res);
        p.kid = "k2";
        ok(run_until(has_kid, &p, 3000), "kid miss triggered the refetch");
        mg_reqauthn_eval(comp, &rq, &keys, NULL, now, &res);
        is_int(res.status, MG_RA_PASS_PRINCIPAL, "the rotated key's token passes");
        mg_ra_result_free(&res);
        mg_jwks_store_free(st);
        mg_reqauthn_free(comp);
        mg_diags_free(&d);
        free(t1), free(t2), free(auth1), free(auth2);
    }

    srv_stop(&s);
    free(s.jwks);
    SSL_CTX_free(sctx);
    X509_free(cgood), X509_free(cbad);
    EVP_PKEY_free(kgood), EVP_PKEY_free(kbad), EVP_PKEY_free(k1), EVP_PKEY_free(k2);
    unlink(ca_good);
    unlink(ca_bad);
    evdns_base_free(dns, 0);
    event_base_free(base);
    (void)tap_plan;
    (void)tap_diag;
    return tap_done();
}
