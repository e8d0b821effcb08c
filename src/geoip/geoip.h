/* geoip/geoip.h - country and autonomous system lookups in a MaxMind DB
 * (MeshConfig geoipDatabase) with libmaxminddb.
 *
 * A pure library: no libevent, no sockets, no globals. The database is
 * opened once (memory mapped), checked, and then shared read-only by every
 * thread through a reference count; a reload opens the new file into a new
 * handle and the old one lives until its last user lets go.
 *
 * Trust: Debian 12's libmaxminddb (1.7.1) does not defend against crafted
 * files (later releases fixed out-of-bounds reads in the data decoder and
 * in lookups). mg_geoip_open() therefore refuses a file whose metadata,
 * search tree or sampled data records do not check out, which catches
 * truncated and corrupt files, but the file must still come from a trusted
 * source (MaxMind's geoipupdate or the operator). Replace it by renaming a
 * complete new file over it, never by rewriting it in place: the old
 * handle keeps mapping the old file's pages. */
#ifndef MG_GEOIP_GEOIP_H
#define MG_GEOIP_GEOIP_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "base/base.h"

/* What an address maps to. country: the ISO 3166 alpha-2 code in upper
 * case ("" = unknown; `country.iso_code`, else `registered_country.iso_code`
 * as in GeoLite2/GeoIP2 Country and City); asn: `autonomous_system_number`
 * as in GeoLite2/GeoIP2 ASN (0 = unknown). A database may carry both. */
struct mg_geo {
    char country[3];
    uint32_t asn;
};

struct mg_geoip;

/* Open `path` memory mapped and check it: libmaxminddb's own metadata
 * checks, every search tree record pointing at a node, "no data" or inside
 * the data section, the first data records decoding, and a test lookup.
 * Returns a handle with one reference, or NULL with a one-line reason in
 * err (e.g. "not a MaxMind DB file (invalid metadata): truncated or
 * corrupt"). */
struct mg_geoip *mg_geoip_open(const char *path, char *err, size_t errlen);

/* Reference counting (any thread). NULL is accepted by both. */
struct mg_geoip *mg_geoip_ref(struct mg_geoip *g);
void mg_geoip_unref(struct mg_geoip *g);

/* The file it was opened from and its metadata database_type (borrowed). */
const char *mg_geoip_path(const struct mg_geoip *g);
const char *mg_geoip_type(const struct mg_geoip *g);

/* Look `a` up (AF_INET or AF_INET6; a v4-mapped IPv6 address is looked up
 * as IPv4, since databases written without IPv4 aliases do not hold
 * ::ffff:0:0/96). Any other family, a NULL g, an address the database does
 * not hold or a lookup error give an empty *out. Never allocates; any
 * number of threads at once. */
void mg_geoip_lookup(const struct mg_geoip *g, const struct mg_addr *a, struct mg_geo *out);

/* A per-connection cache: the peer is looked up once, the remote client
 * (X-Forwarded-For) once per distinct address in a row. Zero-initialize;
 * owned by one thread (the connection's worker). */
struct mg_geo_cache {
    const struct mg_geoip *db;          /* the handle the entries came from */
    bool source_done, remote_done;
    struct mg_geo source, remote;
    struct mg_addr remote_addr;
};

/* Look up the peer `source` and the client `remote` through the cache
 * (cache may be NULL: no caching). Absent addresses (family 0) and a NULL g
 * give empty results. */
void mg_geoip_lookup_cached(const struct mg_geoip *g, struct mg_geo_cache *cache,
                            const struct mg_addr *source, const struct mg_addr *remote,
                            struct mg_geo *src_out, struct mg_geo *rem_out);

#endif
