/* listener.h - listening sockets: one SO_REUSEPORT socket per worker and
 * port, created on the main thread before the workers start and kept across
 * reloads; each worker accepts in its own base (bounded accepts per wakeup;
 * EMFILE disables the listener and retries on a timer). */
#ifndef MG_LISTENER_H
#define MG_LISTENER_H
#include <stdint.h>
#include "net/worker.h"

/* Open a non-blocking SO_REUSEPORT TCP socket bound to addr:port and
 * listening. Returns the fd, or -1 with a message in err. */
int mg_listener_open(const char *addr, uint16_t port, char *err, size_t errlen);

/* Start accepting on a worker for one socket (called in the worker thread). */
int mg_listener_attach(struct mg_worker *w, struct mg_wlistener *wl);
/* Stop accepting and free the accept event (the fd stays open: it is
 * the main thread's). */
void mg_listener_detach(struct mg_wlistener *wl);

#endif
