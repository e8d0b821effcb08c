/* listener.c - SO_REUSEPORT sockets and the per-worker accept loop. We
 * accept by hand (not evconnlistener) to bound the accepts per wakeup and to
 * back off on EMFILE/ENFILE instead of spinning. */
#include "net/net.h"
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <event2/event.h>
#include "snapshot/snapshot.h"
#include "base/base.h"

#define ACCEPTS_PER_WAKEUP 64

int mg_listener_open(const char *addr, uint16_t port, char *err, size_t errlen)
{
    struct mg_addr a;
    if (mg_addr_parse_ip(&a, addr && *addr ? addr : "0.0.0.0") < 0) {
        snprintf(err, errlen, "bad bind address '%s'", addr);
        return -1;
    }
    struct sockaddr_storage ss;
    socklen_t sl;
    memset(&ss, 0, sizeof(ss));
    if (a.family == AF_INET) {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        s4->sin_family = AF_INET;
        s4->sin_port = htons(port);
        memcpy(&s4->sin_addr, a.ip, 4);
        sl = sizeof(*s4);
    } else {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons(port);
        memcpy(&s6->sin6_addr, a.ip, 16);
        sl = sizeof(*s6);
    }
    int fd = socket(a.family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return -1;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0 ||
        bind(fd, (struct sockaddr *)&ss, sl) < 0 || listen(fd, 1024) < 0) {
        snprintf(err, errlen, "cannot listen on %s:%u: %s", addr, port, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

static void retry_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct mg_wlistener *wl = arg;
    if (wl->ev)
        event_add(wl->ev, NULL);
}

static void accept_cb(evutil_socket_t lfd, short what, void *arg)
{
    (void)what;
    struct mg_wlistener *wl = arg;
    struct mg_worker *w = wl->w;
    for (int i = 0; i < ACCEPTS_PER_WAKEUP && !w->stopping; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        int fd = accept4(lfd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                /* out of descriptors: stop accepting for a moment rather than spin */
                event_del(wl->ev);
                struct timeval tv = { 0, 200000 };
                evtimer_add(wl->retry, &tv);
            }
            return;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        const struct mg_port *p = mg_snapshot_port(w->snap, wl->port);
        if (!p) {                       /* port no longer configured */
            close(fd);
            continue;
        }
        mg_conn_accept(w, p, fd, (struct sockaddr *)&ss, (int)sl);
    }
}

int mg_listener_attach(struct mg_worker *w, struct mg_wlistener *wl)
{
    wl->w = w;
    struct event *ev = event_new(w->base, wl->fd, EV_READ | EV_PERSIST, accept_cb, wl);
    if (!ev)
        return -1;
    wl->ev = ev;
    wl->retry = evtimer_new(w->base, retry_cb, wl);
    event_add(ev, NULL);
    return 0;
}

void mg_listener_detach(struct mg_wlistener *wl)
{
    if (wl->ev) {
        event_free(wl->ev);
        wl->ev = NULL;
    }
    if (wl->retry) {
        event_free(wl->retry);
        wl->retry = NULL;
    }
}
