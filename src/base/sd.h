/* sd.h - systemd readiness notification, written by hand (no libsystemd).
 *
 * One datagram per call to $NOTIFY_SOCKET (a path, or an abstract socket
 * when it starts with '@'). Without $NOTIFY_SOCKET every call is a no-op, so
 * the daemon behaves the same outside systemd. */
#ifndef MG_SD_H
#define MG_SD_H

/* Send `state` (e.g. "READY=1", "RELOADING=1\nMONOTONIC_USEC=...").
 * Returns 1 when sent, 0 when there is no notify socket, -1 on error
 * (errno set); errors are never fatal to the caller. */
int mg_sd_notify(const char *state);

/* Send RELOADING=1 with the MONOTONIC_USEC systemd expects for reloads. */
int mg_sd_notify_reloading(void);

#endif
