/* io.c - a connection's buffered transport (mg_io, base.h): a socket, TLS
 * or plain, with an input and an output evbuffer, driven by one
 * edge-triggered event registered once.
 *
 * Why not libevent's bufferevent: bufferevent_openssl adds the write event
 * when output appears, waits a loop turn for writability, writes, then
 * removes the event again (two epoll_ctl and an extra wakeup per
 * response), sizes TLS records by evbuffer chains and runs its callbacks
 * one deferral later. Here the fd stays registered for read and write,
 * edge-triggered; the layer remembers what the last edge said (readable,
 * writable) until a read or write finds EAGAIN, so an output appended by
 * a callback is written at the end of that callback, and one appended
 * from elsewhere at the end of the loop's current pass (one event_active),
 * never a turn later. TLS records are full 16 KiB where the data allows:
 * a small chain at the head of the output is joined with what follows.
 *
 * Readiness bookkeeping is the one subtle part of edge triggering: a read
 * stopped before EAGAIN (reading disabled, the high watermark, the
 * per-wakeup budget) gets no new edge, so the layer keeps `can_read` and
 * re-activates itself when reading may go on. */
#include "base/base.h"
#include "base/tls13.h"
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <openssl/err.h>

/* One read: a 16 KiB allocation for the chain (evbuffer rounds a chain's
 * size with its header up to a power of two), and what a TLS record
 * holds at most. */
#define IO_CHUNK (16384 - 128)
#define IO_RECORD 16384                 /* the largest TLS record's plaintext */
#define IO_JOIN_MIN 4096                /* a head chain at least this big goes as it is */
/* Bytes per wakeup before yielding to the rest of the loop (checked
 * between reads): a write takes what the socket does (256 KiB at most); a
 * TLS read about one record, as a bufferevent did, so that a client
 * pouring data in is parsed in steps between which the loop polls (its
 * other work, the upstream's answers) instead of in one long run; a plain
 * read 64 KiB (an upstream's body: a 16 KiB one in one wakeup). */
#define IO_READ_BUDGET_TLS 16384
#define IO_READ_BUDGET 65536
#define IO_WRITE_BUDGET (256 * 1024)
/* An idle TLS connection's record buffers go back to the allocator after
 * this long without traffic (a keep-alive client's next request, sent at
 * once, finds them still there; a held connection costs no more). */
#define IO_RELEASE_US 100000

enum io_state {
    IO_OPEN,
    IO_TCP_CONNECTING,                  /* waiting for connect(2) */
    IO_HANDSHAKE,                       /* SSL_do_handshake until done */
    IO_CONNECT_FAILED,                  /* connect(2) refused at once: report from the loop */
};

struct mg_io {
    struct event ev;                    /* the fd: EV_READ|EV_WRITE|EV_PERSIST|EV_ET */
    struct event *timer;                /* read/write timeouts; only while one is set */
    struct event *yield;                /* a zero timeout: go on after the loop polls */
    struct event_base *base;
    struct evbuffer *in, *out;
    SSL *ssl;
    mg_io_data_cb readcb, writecb;
    mg_io_event_cb eventcb;
    void *arg;
    size_t rlow, rhigh, wlow;
    size_t max_read, max_write;
    int64_t rtv, wtv;                   /* timeouts in us, 0 = none */
    int64_t rdl, wdl, armed;            /* deadlines (monotonic us), 0 = none */
    int64_t fdl;                        /* release the SSL's buffers, idle since fdl - IO_RELEASE_US */
    unsigned long ssl_err;
    size_t pend;                        /* a failed SSL_write's length: retried as it was */
    int fd;
    int connect_errno;
    unsigned busy;                      /* nesting of our own dispatch */
    uint8_t state;
    uint8_t enabled;                    /* EV_READ | EV_WRITE */
    bool registered;                    /* ev is added */
    bool can_read, can_write;           /* the last edge's word, until EAGAIN */
    bool read_wants_write;              /* SSL_read needs the socket writable */
    bool write_wants_read;              /* SSL_write needs the socket readable */
    bool eof;                           /* no more reading: EOF or error reported */
    bool rdhup;                         /* the peer's FIN was seen (EV_CLOSED) */
    /* A read found the EOF or an error after data that a callback then
     * paused on (reading disabled, the input full): reported when reading
     * would go on, as a bufferevent that reads once per wakeup sees it. */
    uint8_t rd_end;
    int rd_errno;
    /* The read side of the TLS record layer (rbio, below): bytes read
     * from the socket past what OpenSSL asked for, kept when the run ends
     * before OpenSSL took them; and whether the last read(2) emptied the
     * socket (short), so that the next request for bytes is answered
     * "retry" without a read(2) that would only say EAGAIN. */
    unsigned char *rb;
    uint32_t rb_off, rb_len;
    bool drained;
    bool bio_eof;                       /* read(2) said 0 */
    bool bufs;                          /* the SSL may hold record buffers */
    bool kicked;                        /* an event_active is queued */
    /* A TLS 1.3 client connection past its handshake: its records sealed
     * and opened here (tls13.c), OpenSSL's record layer no longer used.
     * raw: received bytes of a record not yet complete when the last read
     * ended; wp: sealed bytes the socket did not take, which stand for the
     * first wcover bytes of the output (drained once they are sent). */
    struct mg_tls13 *rec;
    unsigned char *raw, *wp;
    uint32_t raw_len, wp_off, wp_len;
    size_t wcover;
    bool freed;                         /* mg_io_free inside a callback: done on return */
};

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void io_cb(evutil_socket_t fd, short what, void *arg);
static void timer_cb(evutil_socket_t fd, short what, void *arg);
static void out_cb(struct evbuffer *b, const struct evbuffer_cb_info *info, void *arg);
static void in_cb(struct evbuffer *b, const struct evbuffer_cb_info *info, void *arg);

static void io_register(struct mg_io *io)
{
    if (io->registered || io->fd < 0 || io->freed)
        return;
    event_assign(&io->ev, io->base, io->fd, EV_READ | EV_WRITE | EV_CLOSED | EV_PERSIST | EV_ET, io_cb,
                 io);
    if (event_add(&io->ev, NULL) == 0)
        io->registered = true;
}

static void io_unregister(struct mg_io *io)
{
    if (!io->registered)
        return;
    event_del(&io->ev);
    io->registered = false;
    io->kicked = false;
}

/* Run the dispatch at the end of the loop's current pass. Inside our own
 * dispatch nothing is needed: it looks at the output before returning. */
static void io_kick(struct mg_io *io)
{
    if (io->busy || io->kicked || !io->registered || io->freed)
        return;
    io->kicked = true;
    /* EV_TIMEOUT never comes from the fd (it has no timeout): it marks a
     * kick, which says nothing about readiness */
    event_active(&io->ev, EV_TIMEOUT, 1);
}

static void yield_cb(evutil_socket_t fd, short what, void *arg);

/* A budget ran out: go on after the loop has polled the other sockets. An
 * event_active would run in this same pass, before any new readiness is
 * seen; a zero timeout runs after the next poll. */
static void io_yield(struct mg_io *io)
{
    if (io->freed)
        return;
    if (!io->yield && !(io->yield = evtimer_new(io->base, yield_cb, io)))
        return;
    static const struct timeval zero = { 0, 0 };
    if (!evtimer_pending(io->yield, NULL))
        evtimer_add(io->yield, &zero);
}

static bool handshaking(const struct mg_io *io)
{
    return io->state != IO_OPEN;
}

static bool reading(const struct mg_io *io)
{
    return (io->enabled & EV_READ) && !io->eof &&
           !(io->rhigh && evbuffer_get_length(io->in) >= io->rhigh);
}

static bool writing(const struct mg_io *io)
{
    return (io->enabled & EV_WRITE) &&
           (evbuffer_get_length(io->out) > 0 || (io->rec && mg_tls13_update_wanted(io->rec)));
}

/* The one timer for both timeouts, armed for the earlier deadline; a
 * deadline that moves later leaves the timer as it is, and its firing
 * early re-arms it (no heap operation per read or write). */
static void timers_update(struct mg_io *io, int64_t now, bool read_progress, bool write_progress)
{
    if (!io->timer)
        return;
    bool hs = handshaking(io);
    if (io->rtv && (hs || reading(io))) {
        if (!io->rdl || read_progress)
            io->rdl = (now ? now : (now = now_us())) + io->rtv;
    } else {
        io->rdl = 0;
    }
    if (io->wtv && (hs || writing(io))) {
        if (!io->wdl || write_progress)
            io->wdl = (now ? now : (now = now_us())) + io->wtv;
    } else {
        io->wdl = 0;
    }
    int64_t next = io->rdl;
    if (io->wdl && (!next || io->wdl < next))
        next = io->wdl;
    if (io->fdl && (!next || io->fdl < next))
        next = io->fdl;
    if (!next) {
        if (io->armed) {
            evtimer_del(io->timer);
            io->armed = 0;
        }
        return;
    }
    if (io->armed && io->armed <= next)
        return;
    if (!now)
        now = now_us();
    int64_t d = next > now ? next - now : 0;
    struct timeval tv = { (time_t)(d / 1000000), (suseconds_t)(d % 1000000) };
    evtimer_add(io->timer, &tv);
    io->armed = next;
}

/* ---- the TLS read BIO ----
 *
 * OpenSSL without read-ahead asks its BIO for a record's 5-byte header,
 * then for the record's body: with a socket BIO that is two read(2) calls
 * per record and one more that finds EAGAIN. This BIO reads the socket
 * once, up to a record and a header past what was asked, into a buffer of
 * the worker thread, and answers the following requests from it; a read
 * that came back short means the socket is empty until its next edge, so
 * the request after the buffer runs dry is "retry" without a syscall. One
 * read(2) per small request instead of three. Read-ahead in OpenSSL would
 * save the same calls, but keeps bytes the loop cannot see: a handshake
 * could then wait on WANT_READ for a flight OpenSSL had already taken.
 * Here what was read and not yet taken is known: it belongs to the one
 * connection that read it (rb_owner), and is copied to that connection's
 * own allocation (rb) when its run ends, or when another connection needs
 * the thread's buffer first. Writes go through a plain socket BIO. */
#define IO_RBUF (IO_RECORD + 2048 + 5)  /* a whole record with its header and the next header */

static _Thread_local unsigned char rbuf[IO_RBUF];
static _Thread_local struct mg_io *rb_owner;
static _Thread_local uint32_t rbuf_off, rbuf_len;
static BIO_METHOD *rbio_method;
static pthread_once_t rbio_once = PTHREAD_ONCE_INIT;

/* What is left in the thread's buffer moves to the owner's allocation. */
static void rb_spill(void)
{
    struct mg_io *o = rb_owner;
    rb_owner = NULL;
    if (!o || rbuf_off == rbuf_len)
        return;
    uint32_t n = rbuf_len - rbuf_off;
    unsigned char *m = malloc(n);
    if (!m) {
        o->bio_eof = true;              /* cannot keep the bytes: end the stream, never skip them */
        rbuf_off = rbuf_len = 0;
        return;
    }
    memcpy(m, rbuf + rbuf_off, n);
    o->rb = m;
    o->rb_off = 0;
    o->rb_len = n;
    rbuf_off = rbuf_len = 0;
}

static int rbio_read(BIO *b, char *out, int outl)
{
    struct mg_io *io = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (outl <= 0)
        return 0;
    size_t want = (size_t)outl;
    if (io->rb) {
        size_t n = io->rb_len - io->rb_off;
        if (n > want)
            n = want;
        memcpy(out, io->rb + io->rb_off, n);
        io->rb_off += (uint32_t)n;
        if (io->rb_off == io->rb_len) {
            free(io->rb);
            io->rb = NULL;
            io->rb_off = io->rb_len = 0;
        }
        return (int)n;
    }
    if (rb_owner == io && rbuf_off < rbuf_len) {
        size_t n = rbuf_len - rbuf_off;
        if (n > want)
            n = want;
        memcpy(out, rbuf + rbuf_off, n);
        rbuf_off += (uint32_t)n;
        return (int)n;
    }
    if (io->bio_eof)
        return 0;
    if (io->drained) {
        BIO_set_retry_read(b);
        errno = EAGAIN;
        return -1;
    }
    if (rb_owner && rb_owner != io)
        rb_spill();
    rb_owner = NULL;
    rbuf_off = rbuf_len = 0;
    ssize_t r;
    if (want >= IO_RBUF) {              /* never without read-ahead; straight in */
        do
            r = read(io->fd, out, want);
        while (r < 0 && errno == EINTR);
        if (r > 0 && (size_t)r < want && !io->rdhup)
            io->drained = true;
    } else {
        do
            r = read(io->fd, rbuf, IO_RBUF);
        while (r < 0 && errno == EINTR);
        if (r > 0) {
            if ((size_t)r < IO_RBUF && !io->rdhup)
                io->drained = true;
            size_t n = (size_t)r < want ? (size_t)r : want;
            memcpy(out, rbuf, n);
            if ((size_t)r > n) {
                rb_owner = io;
                rbuf_off = (uint32_t)n;
                rbuf_len = (uint32_t)r;
            }
            r = (ssize_t)n;
        }
    }
    if (r == 0) {
        io->bio_eof = true;
    } else if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        io->drained = true;
        BIO_set_retry_read(b);
    }
    return (int)r;
}

static long rbio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)num;
    (void)ptr;
    struct mg_io *io = BIO_get_data(b);
    switch (cmd) {
    case BIO_CTRL_EOF:
        return io && io->bio_eof && !io->rb && rb_owner != io;
    case BIO_CTRL_PENDING:
        if (!io)
            return 0;
        return (long)(io->rb ? io->rb_len - io->rb_off : rb_owner == io ? rbuf_len - rbuf_off : 0);
    case BIO_CTRL_FLUSH:
    case BIO_CTRL_PUSH:
    case BIO_CTRL_POP:
        return 1;
    default:
        return 0;
    }
}

static int rbio_write(BIO *b, const char *in, int inl)
{
    (void)b;
    (void)in;
    (void)inl;
    return -1;                          /* the read half only */
}

static void rbio_init(void)
{
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "meshgate socket read");
    if (m && BIO_meth_set_read(m, rbio_read) && BIO_meth_set_write(m, rbio_write) &&
        BIO_meth_set_ctrl(m, rbio_ctrl))
        rbio_method = m;
    else
        BIO_meth_free(m);
}

/* The SSL reads through the BIO above and writes to the socket. */
static bool io_set_bios(struct mg_io *io, int fd)
{
    pthread_once(&rbio_once, rbio_init);
    if (!rbio_method)
        return SSL_set_fd(io->ssl, fd) == 1;   /* the socket BIO both ways */
    BIO *r = BIO_new(rbio_method);
    BIO *w = BIO_new_socket(fd, BIO_NOCLOSE);
    if (!r || !w) {
        BIO_free(r);
        BIO_free(w);
        return false;
    }
    BIO_set_data(r, io);
    BIO_set_init(r, 1);
    SSL_set_bio(io->ssl, r, w);
    return true;
}

struct mg_io *mg_io_socket_new(struct event_base *base, int fd, SSL *ssl, enum mg_io_start st)
{
    struct mg_io *io = calloc(1, sizeof(*io));
    if (!io)
        return NULL;
    io->in = evbuffer_new();
    io->out = evbuffer_new();
    if (!io->in || !io->out) {
        if (io->in)
            evbuffer_free(io->in);
        if (io->out)
            evbuffer_free(io->out);
        free(io);
        return NULL;
    }
    io->base = base;
    io->fd = fd;
    io->ssl = ssl;
    io->max_read = ssl ? IO_READ_BUDGET_TLS : IO_READ_BUDGET;
    io->max_write = IO_WRITE_BUDGET;
    evbuffer_add_cb(io->out, out_cb, io);
    evbuffer_add_cb(io->in, in_cb, io);
    if (ssl) {
        /* partial writes: a record at a time is progress; a moving buffer:
         * a retried SSL_write may come from a fresh copy of the same bytes.
         * No read-ahead: with it, a handshake could stop on WANT_READ with
         * the peer's next flight already taken off the socket into the
         * SSL's buffer, so no edge ever came for it (a few connections
         * in ten thousand stalled until the handshake timeout, and full
         * handshakes ran at two thirds of the rate they make without it). */
        SSL_set_mode(ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
        if (fd >= 0 && !io_set_bios(io, fd)) {
            evbuffer_free(io->in);
            evbuffer_free(io->out);
            free(io);
            return NULL;
        }
        if (st == MG_IO_ACCEPTING)
            SSL_set_accept_state(ssl);
        else if (st == MG_IO_CONNECTING)
            SSL_set_connect_state(ssl);
    }
    io->state = ssl && st != MG_IO_OPEN ? IO_HANDSHAKE : IO_OPEN;
    if (fd >= 0) {
        evutil_make_socket_nonblocking(fd);
        io->can_write = true;           /* a new socket has room; EAGAIN corrects it */
    }
    return io;
}

int mg_io_connect(struct mg_io *io, const struct sockaddr *sa, int len)
{
    if (io->fd < 0) {
        int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
            return -1;
        io->fd = fd;
        if (io->ssl && !io_set_bios(io, fd))
            return -1;
    }
    io->can_read = io->can_write = false;
    if (connect(io->fd, sa, (socklen_t)len) == 0) {
        io->state = IO_TCP_CONNECTING;  /* connected: CONNECTED (or the handshake) from the loop */
        io->can_write = true;
    } else if (errno == EINPROGRESS || errno == EINTR) {
        io->state = IO_TCP_CONNECTING;
    } else if (errno == ECONNREFUSED || errno == ENETUNREACH || errno == EHOSTUNREACH) {
        io->state = IO_CONNECT_FAILED;  /* reported as an event, as a late refusal is */
        io->connect_errno = errno;
    } else {
        return -1;
    }
    if (io->ssl)
        SSL_set_connect_state(io->ssl);
    io_register(io);
    if (!io->registered)
        return -1;
    if (io->state != IO_TCP_CONNECTING || io->can_write)
        io_kick(io);
    timers_update(io, 0, false, false);
    return 0;
}

struct evbuffer *mg_io_get_input(struct mg_io *io) { return io->in; }
struct evbuffer *mg_io_get_output(struct mg_io *io) { return io->out; }
int mg_io_getfd(const struct mg_io *io) { return io->fd; }
SSL *mg_io_get_ssl(const struct mg_io *io) { return io->ssl; }
short mg_io_get_enabled(const struct mg_io *io) { return io->enabled; }

unsigned long mg_io_get_ssl_error(struct mg_io *io)
{
    unsigned long e = io->ssl_err;
    io->ssl_err = 0;
    return e;
}

int mg_io_write(struct mg_io *io, const void *p, size_t n)
{
    return evbuffer_add(io->out, p, n);
}

void mg_io_setcb(struct mg_io *io, mg_io_data_cb readcb, mg_io_data_cb writecb,
                 mg_io_event_cb eventcb, void *arg)
{
    io->readcb = readcb;
    io->writecb = writecb;
    io->eventcb = eventcb;
    io->arg = arg;
}

void mg_io_enable(struct mg_io *io, short what)
{
    short was = io->enabled;
    io->enabled |= what & (EV_READ | EV_WRITE);
    if (io->fd >= 0 && io->state != IO_TCP_CONNECTING && !io->registered)
        io_register(io);
    /* a read or write left off before EAGAIN gets no new edge */
    if (((what & EV_READ) && !(was & EV_READ) && (io->can_read || io->rd_end)) ||
        ((what & EV_WRITE) && !(was & EV_WRITE) && evbuffer_get_length(io->out)))
        io_kick(io);
    if (io->enabled != was)
        timers_update(io, 0, (what & EV_READ) && !(was & EV_READ), false);
}

void mg_io_disable(struct mg_io *io, short what)
{
    io->enabled &= (uint8_t)~(what & (EV_READ | EV_WRITE));
    /* Both off: the fd leaves the event loop, so that another event may
     * watch it (a splice moving a plain connection to pipes). */
    if (!io->enabled && io->state == IO_OPEN)
        io_unregister(io);
    timers_update(io, 0, false, false);
}

void mg_io_setwatermark(struct mg_io *io, short what, size_t low, size_t high)
{
    if (what & EV_READ) {
        bool was_full = io->rhigh && evbuffer_get_length(io->in) >= io->rhigh;
        io->rlow = low;
        io->rhigh = high;
        if (was_full && !(io->rhigh && evbuffer_get_length(io->in) >= io->rhigh) &&
            (io->can_read || io->rd_end))
            io_kick(io);
    }
    if (what & EV_WRITE)
        io->wlow = low;
}

static int64_t tv_us(const struct timeval *tv)
{
    if (!tv)
        return 0;
    int64_t us = (int64_t)tv->tv_sec * 1000000 + tv->tv_usec;
    return us > 0 ? us : 1;
}

void mg_io_set_timeouts(struct mg_io *io, const struct timeval *rd, const struct timeval *wr)
{
    io->rtv = tv_us(rd);
    io->wtv = tv_us(wr);
    io->rdl = io->wdl = 0;
    if (!io->rtv && !io->wtv && !io->fdl) {
        if (io->timer) {                /* no timeout: no timer at all (idle memory) */
            event_free(io->timer);
            io->timer = NULL;
            io->armed = 0;
        }
        return;
    }
    if (!io->timer) {
        io->timer = evtimer_new(io->base, timer_cb, io);
        if (!io->timer)
            return;
        io->armed = 0;
    }
    /* a timer armed for earlier stays: its firing re-arms it for the new
     * deadlines (set per request on a pooled connection: no heap
     * operation each time) */
    timers_update(io, 0, false, false);
}

void mg_io_set_max_single_read(struct mg_io *io, size_t n)
{
    io->max_read = n ? n : io->ssl ? IO_READ_BUDGET_TLS : IO_READ_BUDGET;
}
void mg_io_set_max_single_write(struct mg_io *io, size_t n) { io->max_write = n ? n : IO_WRITE_BUDGET; }

static void io_destroy(struct mg_io *io)
{
    io_unregister(io);
    if (io->timer)
        event_free(io->timer);
    if (io->yield)
        event_free(io->yield);
    evbuffer_free(io->in);
    evbuffer_free(io->out);
    if (rb_owner == io) {
        rb_owner = NULL;
        rbuf_off = rbuf_len = 0;
    }
    free(io->rb);
    free(io->raw);
    free(io->wp);
    mg_tls13_free(io->rec);
    if (io->ssl)
        SSL_free(io->ssl);
    if (io->fd >= 0)
        close(io->fd);
    free(io);
}

void mg_io_free(struct mg_io *io)
{
    if (!io || io->freed)
        return;
    if (io->busy) {
        /* inside one of its callbacks: quiet now, gone on return */
        io->freed = true;
        io->readcb = io->writecb = NULL;
        io->eventcb = NULL;
        io_unregister(io);
        if (io->timer)
            evtimer_del(io->timer);
        if (io->yield)
            evtimer_del(io->yield);
        return;
    }
    io_destroy(io);
}

/* ---- the buffers' callbacks ---- */

static void out_cb(struct evbuffer *b, const struct evbuffer_cb_info *info, void *arg)
{
    (void)b;
    struct mg_io *io = arg;
    if (info->n_added && (io->enabled & EV_WRITE) && io->state == IO_OPEN) {
        io_kick(io);
        if (!io->busy && !io->wdl && io->wtv)
            timers_update(io, 0, false, false);
    }
}

/* The consumer took input under a full high watermark: reading resumes. */
static void in_cb(struct evbuffer *b, const struct evbuffer_cb_info *info, void *arg)
{
    struct mg_io *io = arg;
    if (!info->n_deleted || !io->rhigh || io->busy)
        return;
    size_t now = evbuffer_get_length(b), before = info->orig_size;
    if (before >= io->rhigh && now < io->rhigh && (io->enabled & EV_READ) &&
        (io->can_read || io->rd_end))
        io_kick(io);
}

/* ---- reading, writing, handshaking ---- */

enum { IO_AGAIN, IO_DONE, IO_FAIL, IO_EOF };

/* SSL_get_error reads the thread's error queue, which must be empty
 * before the call it explains. Clearing it costs some 800 instructions
 * (sixteen slots); looking at it, a few: clear only what is there. */
static inline void err_reset(void)
{
    if (ERR_peek_error())
        ERR_clear_error();
}

static void save_ssl_error(struct mg_io *io)
{
    unsigned long e = ERR_get_error();
    if (e && !io->ssl_err)
        io->ssl_err = e;
    ERR_clear_error();
}

static _Thread_local unsigned char stage_buf[IO_CHUNK];

/* Read until EAGAIN, the high watermark or the budget. *got counts bytes. */
static int do_read_rec(struct mg_io *io, size_t *got);

static int do_read(struct mg_io *io, size_t *got)
{
    if (io->rec)
        return do_read_rec(io, got);
    size_t budget = io->max_read;
    *got = 0;
    io->read_wants_write = false;
    while (*got < budget) {
        size_t len = evbuffer_get_length(io->in);
        size_t want = IO_CHUNK;
        if (io->rhigh) {
            if (len >= io->rhigh)
                return IO_DONE;
            if (io->rhigh - len < want)
                want = io->rhigh - len;
        }
        /* Into an empty input, through the staging buffer: the chain is
         * then sized by what came (a request head: 1 KiB, not 16), and a
         * read that finds nothing leaves no empty chain behind (libevent
         * keeps a reserved chain that got no data, and frees it with the
         * next full drain only). */
        struct evbuffer_iovec v;
        bool staged = len == 0;
        if (staged) {
            v.iov_base = stage_buf;
            v.iov_len = want;
        } else {
            if (evbuffer_reserve_space(io->in, (ev_ssize_t)want, &v, 1) != 1)
                return IO_FAIL;
            if (v.iov_len > want)
                v.iov_len = want;
        }
        size_t n = 0, asked = v.iov_len;
        int rc;
        if (io->ssl) {
            err_reset();
            io->bufs = true;
            rc = SSL_read_ex(io->ssl, v.iov_base, v.iov_len, &n) ? IO_DONE : -1;
            if (rc < 0) {
                int e = SSL_get_error(io->ssl, 0);
                if (e == SSL_ERROR_WANT_READ) {
                    rc = IO_AGAIN;
                    io->can_read = false;
                } else if (e == SSL_ERROR_WANT_WRITE) {
                    rc = IO_AGAIN;       /* a KeyUpdate answer waits for room */
                    io->read_wants_write = true;
                    io->can_write = false;
                } else if (e == SSL_ERROR_ZERO_RETURN) {
                    rc = IO_EOF;        /* close_notify (or an EOF, SSL_OP_IGNORE_UNEXPECTED_EOF) */
                } else if (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0 && errno == 0) {
                    rc = IO_EOF;
                } else {
                    save_ssl_error(io);
                    rc = IO_FAIL;
                }
            }
        } else {
            ssize_t r;
            do
                r = read(io->fd, v.iov_base, v.iov_len);
            while (r < 0 && errno == EINTR);
            if (r > 0) {
                n = (size_t)r;
                rc = IO_DONE;
            } else if (r == 0) {
                rc = IO_EOF;
            } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
                rc = IO_AGAIN;
                io->can_read = false;
            } else {
                rc = IO_FAIL;
            }
        }
        v.iov_len = n;
        int saved = errno;
        if (!staged)
            evbuffer_commit_space(io->in, &v, 1);
        else if (n && evbuffer_add(io->in, stage_buf, n) < 0)
            rc = IO_FAIL;
        errno = saved;
        *got += n;
        if (rc != IO_DONE)
            return rc;
        if (!io->ssl && n < asked && !io->rdhup) {
            /* A short read of a stream socket took all it had: the next
             * arrival is a new edge. Unless the peer's FIN came with this
             * edge (EV_CLOSED): then read on, to the EOF. */
            io->can_read = false;
            return IO_AGAIN;
        }
    }
    return IO_DONE;
}

static _Thread_local unsigned char join_buf[IO_RECORD];

/* Write until EAGAIN or the budget. *put counts bytes. */
static int do_write_rec(struct mg_io *io, size_t *put);

static int do_write(struct mg_io *io, size_t *put)
{
    if (io->rec)
        return do_write_rec(io, put);
    size_t budget = io->max_write;
    *put = 0;
    io->write_wants_read = false;
    while (*put < budget) {
        size_t len = evbuffer_get_length(io->out);
        if (!len)
            return IO_DONE;
        if (!io->ssl) {
            size_t n = budget - *put < len ? budget - *put : len;
            int r;
            do
                r = evbuffer_write_atmost(io->out, io->fd, (ev_ssize_t)n);
            while (r < 0 && errno == EINTR);
            if (r > 0) {
                *put += (size_t)r;
                continue;
            }
            if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                io->can_write = false;
                return IO_AGAIN;
            }
            return IO_FAIL;
        }
        /* One record: straight from the head chain when it is big enough,
         * else the head of the output joined in a copy up to a full
         * record, so headers and small frames do not each make a record. */
        struct evbuffer_iovec v;
        size_t n = io->pend;
        if (!n) {
            evbuffer_peek(io->out, -1, NULL, &v, 1);
            n = len < IO_RECORD ? len : IO_RECORD;
            if (v.iov_len >= IO_JOIN_MIN && v.iov_len < n)
                n = v.iov_len;
        } else {
            evbuffer_peek(io->out, -1, NULL, &v, 1);
        }
        const void *p = v.iov_base;
        if (v.iov_len < n) {
            evbuffer_copyout(io->out, join_buf, n);
            p = join_buf;
        }
        size_t w = 0;
        err_reset();
        io->bufs = true;
        if (SSL_write_ex(io->ssl, p, n, &w)) {
            io->pend = 0;
            evbuffer_drain(io->out, w);
            *put += w;
            continue;
        }
        io->pend = n;                   /* the retry must offer the same bytes */
        int e = SSL_get_error(io->ssl, 0);
        if (e == SSL_ERROR_WANT_WRITE) {
            io->can_write = false;
            return IO_AGAIN;
        }
        if (e == SSL_ERROR_WANT_READ) {
            io->write_wants_read = true;
            io->can_read = false;
            return IO_AGAIN;
        }
        save_ssl_error(io);
        return IO_FAIL;
    }
    return IO_DONE;
}


/* ---- TLS 1.3 records of our own (tls13.c): client connections ----
 *
 * Reads take as much as the socket has, up to two whole records, into a
 * buffer of the thread; each complete record is opened straight into the
 * input (a small one into an empty input through the staging buffer, as
 * plain reads are); a record still incomplete when the run ends is kept
 * in the connection's own allocation (raw). Writes seal up to four
 * records in a buffer of the thread and send them with one write(2); what
 * the socket does not take is kept sealed (wp), and the output keeps the
 * plaintext it stands for until it has gone, so that an empty output
 * still means "all sent". */
#define RAW_CAP (2 * (5 + MG_TLS13_MAX_CIPHER))
#define SEAL_CAP (4 * (MG_TLS13_MAX_PLAIN + MG_TLS13_OVERHEAD))
static _Thread_local unsigned char raw_buf[RAW_CAP];
static _Thread_local unsigned char open_buf[MG_TLS13_MAX_CIPHER];
static _Thread_local unsigned char seal_buf[SEAL_CAP];

static void rec_fail(struct mg_io *io, int reason)
{
    if (!io->ssl_err)
        io->ssl_err = ERR_PACK(ERR_LIB_SSL, 0, reason);
    errno = EPROTO;
}

/* An alert to the peer, best effort: one write(2), unless sealed bytes
 * are still waiting (the alert cannot go before them). */
static void rec_alert(struct mg_io *io, uint8_t desc)
{
    unsigned char b[5 + 2 + MG_TLS13_OVERHEAD];
    if (io->wp || io->fd < 0)
        return;
    size_t l = mg_tls13_alert(io->rec, desc, b);
    int saved = errno;
    if (l && write(io->fd, b, l) < 0)
        errno = saved;
}

/* The alert our own refusal of a record sends. */
static uint8_t rec_alert_for(int reason)
{
    switch (reason) {
    case SSL_R_DECRYPTION_FAILED_OR_BAD_RECORD_MAC:
        return SSL_AD_BAD_RECORD_MAC;
    case SSL_R_ENCRYPTED_LENGTH_TOO_LONG:
    case SSL_R_DATA_LENGTH_TOO_LONG:
        return SSL_AD_RECORD_OVERFLOW;
    case SSL_R_BAD_LENGTH:
    case SSL_R_BAD_KEY_UPDATE:
        return SSL_AD_DECODE_ERROR;
    case SSL_R_WRONG_VERSION_NUMBER:
        return SSL_AD_PROTOCOL_VERSION;
    default:
        return SSL_AD_UNEXPECTED_MESSAGE;
    }
}

static int rec_refuse(struct mg_io *io, int reason)
{
    rec_fail(io, reason);               /* errno EPROTO; the alert keeps it */
    rec_alert(io, rec_alert_for(reason));
    return IO_FAIL;
}

/* One record (header at r, len bytes after it): application data into
 * the input (*got counts it), a handshake message or an alert handled. */
static int rec_one(struct mg_io *io, const unsigned char *r, size_t len, size_t *got)
{
    size_t inner = len - 16;
    struct evbuffer_iovec v;
    bool staged = evbuffer_get_length(io->in) == 0 && inner <= IO_JOIN_MIN;
    unsigned char *out = open_buf;
    if (!staged) {
        if (evbuffer_reserve_space(io->in, (ev_ssize_t)inner, &v, 1) != 1 || v.iov_len < inner)
            return IO_FAIL;
        out = v.iov_base;
    }
    uint8_t type = 0;
    size_t n = 0;
    int e = mg_tls13_open(io->rec, r, r + 5, len, out, &type, &n);
    size_t keep = !e && type == MG_TLS13_DATA ? n : 0;
    if (!staged) {
        v.iov_len = keep;
        evbuffer_commit_space(io->in, &v, 1);
    } else if (keep && evbuffer_add(io->in, out, keep) < 0) {
        return IO_FAIL;
    }
    if (e)
        return rec_refuse(io, e);
    *got += keep;
    switch (type) {
    case MG_TLS13_DATA:
        return IO_DONE;
    case MG_TLS13_HANDSHAKE:
        /* a KeyUpdate the peer asked us to answer makes writing() true:
         * the run's next round sends it */
        e = mg_tls13_handshake(io->rec, out, n);
        return e ? rec_refuse(io, e) : IO_DONE;
    case MG_TLS13_ALERT:
        if (n != 2)
            return rec_refuse(io, SSL_R_BAD_LENGTH);
        if (out[1] == SSL_AD_CLOSE_NOTIFY)
            return IO_EOF;
        if (out[1] == SSL_AD_USER_CANCELLED)
            return IO_DONE;             /* a close_notify follows */
        rec_fail(io, SSL_AD_REASON_OFFSET + out[1]);
        return IO_FAIL;
    default:
        return rec_refuse(io, SSL_R_UNEXPECTED_RECORD);
    }
}

/* Reading stops here: the budget is spent or the input is full. */
static bool read_enough(const struct mg_io *io, size_t got, size_t budget)
{
    return got >= budget || (io->rhigh && evbuffer_get_length(io->in) >= io->rhigh);
}

/* do_read for a connection with its own records. */
static int do_read_rec(struct mg_io *io, size_t *got)
{
    size_t budget = io->max_read, len = 0, off = 0;
    bool drained = false;
    int rc;
    *got = 0;
    if (io->raw) {
        memcpy(raw_buf, io->raw, io->raw_len);
        len = io->raw_len;
        free(io->raw);
        io->raw = NULL;
        io->raw_len = 0;
    }
    for (;;) {
        while (len - off >= 5) {
            size_t rl;
            int e = mg_tls13_check_header(raw_buf + off, &rl);
            if (e) {
                rc = rec_refuse(io, e);
                goto out;
            }
            if (len - off < 5 + rl)
                break;
            if (read_enough(io, *got, budget)) {
                rc = IO_DONE;
                goto out;
            }
            rc = rec_one(io, raw_buf + off, rl, got);
            off += 5 + rl;
            if (rc != IO_DONE)
                goto out;
        }
        if (drained) {
            io->can_read = false;       /* a short read took all the socket had */
            rc = IO_AGAIN;
            goto out;
        }
        if (read_enough(io, *got, budget)) {
            rc = IO_DONE;
            goto out;
        }
        if (off) {
            memmove(raw_buf, raw_buf + off, len - off);
            len -= off;
            off = 0;
        }
        size_t asked = RAW_CAP - len;
        ssize_t r;
        do
            r = read(io->fd, raw_buf + len, asked);
        while (r < 0 && errno == EINTR);
        if (r > 0) {
            len += (size_t)r;
            if ((size_t)r < asked && !io->rdhup)
                drained = true;
        } else if (r == 0) {
            rc = IO_EOF;
            goto out;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            io->can_read = false;
            rc = IO_AGAIN;
            goto out;
        } else {
            rc = IO_FAIL;
            goto out;
        }
    }
out:
    if (rc == IO_DONE)
        io->can_read = true;            /* stopped with records left: no edge will say so */
    if (len > off && rc != IO_FAIL && rc != IO_EOF) {
        int saved = errno;
        io->raw = malloc(len - off);
        if (!io->raw)
            return IO_FAIL;
        memcpy(io->raw, raw_buf + off, len - off);
        io->raw_len = (uint32_t)(len - off);
        errno = saved;
    }
    return rc;
}

/* do_write for a connection with its own records. */
static int do_write_rec(struct mg_io *io, size_t *put)
{
    size_t budget = io->max_write;
    *put = 0;
    while (*put < budget) {
        ssize_t r;
        if (io->wp) {
            do
                r = write(io->fd, io->wp + io->wp_off, io->wp_len - io->wp_off);
            while (r < 0 && errno == EINTR);
            if (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
                return IO_FAIL;
            if (r > 0)
                io->wp_off += (uint32_t)r;
            if (io->wp_off < io->wp_len) {
                io->can_write = false;
                return IO_AGAIN;
            }
            free(io->wp);
            io->wp = NULL;
            io->wp_off = io->wp_len = 0;
            evbuffer_drain(io->out, io->wcover);
            *put += io->wcover;
            io->wcover = 0;
            continue;
        }
        size_t len = evbuffer_get_length(io->out), sl = 0, covered = 0;
        if (mg_tls13_update_wanted(io->rec)) {
            if (!(sl = mg_tls13_key_update(io->rec, seal_buf))) {
                rec_fail(io, SSL_R_BAD_KEY_UPDATE);
                return IO_FAIL;
            }
        }
        if (!len && !sl)
            return IO_DONE;
        struct evbuffer_ptr pos;
        evbuffer_ptr_set(io->out, &pos, 0, EVBUFFER_PTR_SET);
        while (covered < len && sl + MG_TLS13_MAX_PLAIN + MG_TLS13_OVERHEAD <= SEAL_CAP &&
               *put + covered < budget) {
            size_t n = len - covered < MG_TLS13_MAX_PLAIN ? len - covered : MG_TLS13_MAX_PLAIN;
            if (evbuffer_copyout_from(io->out, &pos, seal_buf + sl + 5, n) != (ev_ssize_t)n)
                return IO_FAIL;
            evbuffer_ptr_set(io->out, &pos, n, EVBUFFER_PTR_ADD);
            size_t l = mg_tls13_seal(io->rec, MG_TLS13_DATA, seal_buf + sl, n);
            if (!l) {
                rec_fail(io, ERR_R_INTERNAL_ERROR);
                return IO_FAIL;
            }
            sl += l;
            covered += n;
        }
        do
            r = write(io->fd, seal_buf, sl);
        while (r < 0 && errno == EINTR);
        if (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
            return IO_FAIL;
        size_t w = r > 0 ? (size_t)r : 0;
        if (w == sl) {
            evbuffer_drain(io->out, covered);
            *put += covered;
            continue;
        }
        /* the socket took part: the rest waits as it is (its sequence
         * numbers are spent), the plaintext it stands for in the output */
        if (!(io->wp = malloc(sl - w)))
            return IO_FAIL;
        memcpy(io->wp, seal_buf + w, sl - w);
        io->wp_len = (uint32_t)(sl - w);
        io->wp_off = 0;
        io->wcover = covered;
        io->can_write = false;
        return IO_AGAIN;
    }
    return IO_DONE;
}

/* A client handshake is done: its records move here when tls13.c can
 * take them. Bytes read past the handshake (rbio) are its first records. */
static void rec_take(struct mg_io *io)
{
    if (SSL_is_server(io->ssl))
        return;
    const unsigned char *src = NULL;
    size_t n = 0;
    if (io->rb) {
        src = io->rb + io->rb_off;
        n = io->rb_len - io->rb_off;
    } else if (rb_owner == io) {
        src = rbuf + rbuf_off;
        n = rbuf_len - rbuf_off;
    }
    unsigned char *m = NULL;
    if (n && !(m = malloc(n)))
        return;                         /* stays with OpenSSL */
    struct mg_tls13 *t = mg_tls13_take(io->ssl);
    if (!t) {
        free(m);
        return;
    }
    if (n)
        memcpy(m, src, n);
    free(io->rb);
    io->rb = NULL;
    io->rb_off = io->rb_len = 0;
    if (rb_owner == io) {
        rb_owner = NULL;
        rbuf_off = rbuf_len = 0;
    }
    io->raw = m;
    io->raw_len = (uint32_t)n;
    io->rec = t;
    io->bufs = false;
}

void mg_io_tls_own_records(SSL_CTX *ctx)
{
    mg_tls13_capture(ctx);
}

bool mg_io_records_own(const struct mg_io *io)
{
    return io->rec != NULL;
}

void mg_io_shutdown(struct mg_io *io)
{
    if (!io || !io->ssl || io->freed)
        return;
    if (io->rec)
        rec_alert(io, SSL_AD_CLOSE_NOTIFY);
    else
        SSL_shutdown(io->ssl);
}

/* Returns true when the handshake is over (or the TCP connect, plain). */
static int do_connect_step(struct mg_io *io, short *what)
{
    if (io->state == IO_CONNECT_FAILED) {
        errno = io->connect_errno;
        *what = MG_IO_ERROR;
        return IO_FAIL;
    }
    if (io->state == IO_TCP_CONNECTING) {
        if (!io->can_write && !io->can_read)
            return IO_AGAIN;
        int err = 0;
        socklen_t el = sizeof(err);
        if (getsockopt(io->fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0)
            err = errno;
        if (err == EINPROGRESS || err == EINTR)
            return IO_AGAIN;
        if (err) {
            errno = err;
            *what = MG_IO_ERROR;
            return IO_FAIL;
        }
        io->state = io->ssl ? IO_HANDSHAKE : IO_OPEN;
        io->can_write = true;
        if (!io->ssl)
            return IO_DONE;
    }
    if (io->state == IO_OPEN)
        return IO_DONE;
    err_reset();
    int r = SSL_do_handshake(io->ssl);
    if (r == 1) {
        io->state = IO_OPEN;
        rec_take(io);
        return IO_DONE;
    }
    int e = SSL_get_error(io->ssl, r);
    if (e == SSL_ERROR_WANT_READ) {
        io->can_read = false;
        return IO_AGAIN;
    }
    if (e == SSL_ERROR_WANT_WRITE) {
        io->can_write = false;
        return IO_AGAIN;
    }
    save_ssl_error(io);
    *what = (e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && io->ssl_err == 0 && errno == 0))
                ? MG_IO_EOF | MG_IO_READING
                : MG_IO_ERROR | MG_IO_READING;
    return IO_FAIL;
}

/* ---- the dispatch ---- */

static bool io_gone(struct mg_io *io)
{
    return io->freed;
}

static void run_event(struct mg_io *io, short what)
{
    if (io->eventcb)
        io->eventcb(io, what, io->arg);
}

static bool idle(const struct mg_io *io)
{
    return io->ssl && io->state == IO_OPEN && !io->can_read && !io->pend &&
           evbuffer_get_length(io->out) == 0;
}

static void io_run(struct mg_io *io)
{
    io->busy++;
    int64_t now = 0;
    bool rprog = false, wprog = false;
    if (io->state != IO_OPEN) {
        short what = 0;
        int rc = do_connect_step(io, &what);
        if (rc == IO_AGAIN)
            goto out;
        if (rc == IO_FAIL) {
            io->eof = true;
            io_unregister(io);
            run_event(io, what);
            goto out;
        }
        rprog = wprog = true;
        run_event(io, MG_IO_CONNECTED);
        if (io_gone(io))
            goto out;
    }
    /* Rounds: output that was waiting, then input and its callback, then
     * what that callback wrote (one batch), and its write callback. */
    for (int round = 0; round < 4 && !io_gone(io); round++) {
        bool again = false;
        if (writing(io) && (io->can_write || (io->write_wants_read && io->can_read))) {
            size_t put = 0;
            int rc = do_write(io, &put);
            if (put)
                wprog = true;
            if (rc == IO_FAIL) {
                int saved = errno;
                io->eof = true;
                io_unregister(io);
                errno = saved;
                run_event(io, MG_IO_ERROR | MG_IO_WRITING);
                goto out;
            }
            if (put && evbuffer_get_length(io->out) <= io->wlow && io->writecb) {
                io->writecb(io, io->arg);
                if (io_gone(io))
                    goto out;
                again = writing(io) && io->can_write;
            }
            if (rc == IO_DONE && evbuffer_get_length(io->out) && put >= io->max_write) {
                io_yield(io);           /* the budget, not the socket, stopped it */
                break;
            }
        }
        if (reading(io) && (io->can_read || (io->read_wants_write && io->can_write) || io->rd_end)) {
            size_t got = 0;
            int rc = io->rd_end ? io->rd_end : do_read(io, &got);
            if (rc == IO_EOF || rc == IO_FAIL) {
                io->rd_end = (uint8_t)rc;
                if (rc == IO_FAIL && !io->rd_errno)
                    io->rd_errno = errno;
            }
            if (got)
                rprog = true;
            if (got && evbuffer_get_length(io->in) >= io->rlow && io->readcb) {
                io->readcb(io, io->arg);
                if (io_gone(io))
                    goto out;
            }
            if ((rc == IO_EOF || rc == IO_FAIL) && reading(io)) {
                io->eof = true;
                io->enabled &= (uint8_t)~EV_READ;
                errno = io->rd_errno;
                run_event(io, rc == IO_EOF ? MG_IO_EOF | MG_IO_READING : MG_IO_ERROR | MG_IO_READING);
                if (io_gone(io))
                    goto out;
            } else if (rc == IO_DONE && got >= io->max_read) {
                io_yield(io);           /* the budget, not the socket, stopped it */
                break;
            }
        }
        if (!(again || (writing(io) && io->can_write) ||
              (reading(io) && (io->can_read || io->rd_end))))
            break;
        if (round == 3)
            io_yield(io);               /* more to do: after the others */
    }
out:
    if (--io->busy == 0 && io->freed) {
        io_destroy(io);
        return;
    }
    if (io_gone(io))
        return;
    if (rb_owner == io)
        rb_spill();
    /* Idle (the peer sent all it had, nothing waits to leave): the SSL's
     * record buffers, some 17 KiB each way, go back to the allocator once
     * the connection has stayed so for IO_RELEASE_US. Freeing them at once
     * cost a free and a malloc of each per request on a keep-alive
     * connection (some 2 800 instructions, 6% of a small request);
     * SSL_MODE_RELEASE_BUFFERS would free them after every record. The
     * deadline moves with each idle moment: no timer operation per
     * request (timers_update arms only an earlier deadline). */
    bool release = io->bufs && idle(io);
    if (release) {
        now = now_us();
        io->fdl = now + IO_RELEASE_US;
        if (!io->timer)
            io->timer = evtimer_new(io->base, timer_cb, io);
    }
    if (io->timer && (io->rtv || io->wtv || release)) {
        if (!now)
            now = now_us();
        timers_update(io, now, rprog, wprog);
    }
}

static void io_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    struct mg_io *io = arg;
    if (what & EV_TIMEOUT)
        io->kicked = false;
    if (what & (EV_READ | EV_CLOSED))
        io->drained = false;
    if (what & EV_READ)
        io->can_read = true;
    if (what & EV_WRITE)
        io->can_write = true;
    if (what & EV_CLOSED)
        io->rdhup = io->can_read = true;
    io_run(io);
}

static void yield_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    io_run(arg);
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct mg_io *io = arg;
    io->armed = 0;
    int64_t now = now_us();
    short ev = 0;
    /* within 2 ms counts as due: the loop's clock is coarser than ours */
    if (io->rdl && io->rdl - now < 2000)
        ev |= MG_IO_READING;
    if (io->wdl && io->wdl - now < 2000)
        ev |= MG_IO_WRITING;
    if (io->fdl && io->fdl - now < 2000) {
        io->fdl = 0;
        if (idle(io) && SSL_free_buffers(io->ssl))
            io->bufs = false;
    }
    if (!ev) {
        timers_update(io, now, false, false);
        return;
    }
    /* as a bufferevent: the direction that timed out is disabled */
    if (ev & MG_IO_READING) {
        io->enabled &= (uint8_t)~EV_READ;
        io->rdl = 0;
    }
    if (ev & MG_IO_WRITING) {
        io->enabled &= (uint8_t)~EV_WRITE;
        io->wdl = 0;
    }
    io->busy++;
    run_event(io, (short)(MG_IO_TIMEOUT | ev));
    if (--io->busy == 0 && io->freed) {
        io_destroy(io);
        return;
    }
    if (!io->freed)
        timers_update(io, 0, false, false);
}
