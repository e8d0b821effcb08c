/* control/control.h - the main thread: compiling the configuration into a
 * snapshot. */
#ifndef MG_CONTROL_CONTROL_H
#define MG_CONTROL_CONTROL_H
#include "base/base.h"
#include "config/config.h"
#include "snapshot/snapshot.h"

/* compiling the configuration into a snapshot (main
 * thread): a configuration reload and a certificate rotation. */
/* Compile `cfg` (ownership passes to the snapshot on success and on
 * failure). n_workers sizes per-worker pool state. Every problem is added
 * to d; returns NULL when any error was found. */
struct mg_snapshot *mg_snapshot_build(struct mg_config *cfg, int n_workers, uint64_t generation,
                                      struct mg_diags *d);

/* A certificate rotation: compile the configuration model `cur` was built
 * from again (the very same parsed model, not a new read of the
 * configuration files), so only certificate, key, CRL and CA files are read
 * anew and a policy edited on disk but not signalled does not go live. The
 * result keeps cur's policy generation. NULL (errors in d) when a file no
 * longer loads; cur is unchanged either way. */
struct mg_snapshot *mg_snapshot_rotate(const struct mg_snapshot *cur, uint64_t generation,
                                       struct mg_diags *d);

/* Every certificate, key and CA file the snapshot read (Proxy identity and
 * credentials, Gateway server TLS, DestinationRule TLS, MeshConfig CA and
 * geoipDatabase), for
 * the main thread's change watch. Calls fn once per path (duplicates
 * possible). */
void mg_snapshot_files(const struct mg_snapshot *s, void (*fn)(const char *path, void *arg), void *arg);

#endif
