/* tls_handshake.c - handshakes per second against a TLS server, one new
 * connection per request, as a browser or curl makes them.
 *
 *   tls_handshake PORT full|resume SECONDS [PATH [CERT KEY]]
 *
 * full: no session offered, a full handshake each time. resume: each
 * connection offers the newest session the client holds, as real clients
 * do; a TLS 1.3 ticket is used once (RFC 8446, C.4), so a server that
 * sends no new ticket after a resumption sees every other connection come
 * back as a full handshake. (openssl s_time -reuse offers the first
 * session over and over and cannot see that.) Each connection sends
 * "GET PATH" with Host app.example.com and reads the answer to the end;
 * PATH "-" sends no request (the handshake alone: close_notify at once).
 * A client certificate when CERT and KEY are given. Prints one line:
 *   connections/s N resumed PCT failed F
 * and exits 1 when a connection failed or (resume) fewer than 99% resumed,
 * so that a server that does not resume cannot pass for a fast one.
 * Build: cc -O2 tls_handshake.c -o tls_handshake -lssl -lcrypto */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static SSL_SESSION *newest;

/* every ticket the server sends replaces the one held */
static int on_session(SSL *ssl, SSL_SESSION *sess)
{
    (void)ssl;
    SSL_SESSION_free(newest);
    newest = sess;
    return 1;                           /* the reference is ours */
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* One connection: 0 done, -1 failed; *reused says whether it resumed. */
static int one(SSL_CTX *ctx, const struct sockaddr_in *a, const char *req, int *reused)
{
    static char buf[65536];
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1, rc = -1;
    if (fd < 0)
        return -1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    SSL *ssl = NULL;
    if (connect(fd, (const struct sockaddr *)a, sizeof(*a)) < 0)
        goto out;
    ssl = SSL_new(ctx);
    if (!ssl || SSL_set_fd(ssl, fd) != 1 || SSL_set_tlsext_host_name(ssl, "app.example.com") != 1)
        goto out;
    if (newest)
        SSL_set_session(ssl, newest);
    if (SSL_connect(ssl) != 1)
        goto out;
    *reused = SSL_session_reused(ssl);
    size_t got = 0;
    int n;
    if (!req) {
        /* the tickets of TLS 1.3 arrive after the handshake: read to the end */
        SSL_shutdown(ssl);
        while ((n = SSL_read(ssl, buf, sizeof(buf))) > 0)
            got += (size_t)n;
        rc = 0;
    } else if (SSL_write(ssl, req, (int)strlen(req)) > 0) {
        char head[16] = "";
        while ((n = SSL_read(ssl, buf, sizeof(buf))) > 0) {
            if (got < 12)
                memcpy(head + got, buf, (size_t)n < 12 - got ? (size_t)n : 12 - got);
            got += (size_t)n;
        }
        rc = got >= 12 && (memcmp(head, "HTTP/1.1 2", 10) == 0 || memcmp(head, "HTTP/1.0 2", 10) == 0)
                 ? 0 : -1;
        SSL_shutdown(ssl);
    }
out:
    ERR_clear_error();
    SSL_free(ssl);
    close(fd);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 4 || (strcmp(argv[2], "full") != 0 && strcmp(argv[2], "resume") != 0)) {
        fprintf(stderr, "usage: %s PORT full|resume SECONDS [PATH [CERT KEY]]\n", argv[0]);
        return 2;
    }
    bool resume = strcmp(argv[2], "resume") == 0;
    double secs = atof(argv[3]);
    const char *path = argc > 4 ? argv[4] : "/";
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx)
        return 2;
    SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
    if (resume) {
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
        SSL_CTX_sess_set_new_cb(ctx, on_session);
    } else {
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
        SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    }
    if (argc > 6 && (SSL_CTX_use_certificate_chain_file(ctx, argv[5]) != 1 ||
                     SSL_CTX_use_PrivateKey_file(ctx, argv[6], SSL_FILETYPE_PEM) != 1)) {
        fprintf(stderr, "cannot load the client certificate %s / %s\n", argv[5], argv[6]);
        return 2;
    }
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[1])),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    char req[512];
    snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: app.example.com\r\nConnection: close\r\n\r\n",
             path);
    long n = 0, reused = 0, failed = 0;
    double t0 = now(), t = t0;
    while (t - t0 < secs) {
        int r = 0;
        if (one(ctx, &a, strcmp(path, "-") == 0 ? NULL : req, &r) < 0)
            failed++;
        else
            n++;
        /* the first connection of a resuming client is a full one */
        reused += r;
        t = now();
    }
    double pct = n > 1 ? 100.0 * (double)reused / (double)(n - 1) : 0;
    printf("connections/s %.0f resumed %.1f failed %ld\n", (double)n / (t - t0), resume ? pct : 0.0,
           failed);
    SSL_SESSION_free(newest);
    SSL_CTX_free(ctx);
    return failed || (resume && pct < 99.0) ? 1 : 0;
}
