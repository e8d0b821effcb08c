/* geoip.c - MaxMind DB lookups (geoip/geoip.h). */
#include "geoip/geoip.h"
#include <arpa/inet.h>
#include <maxminddb.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* Decoding every data record of a City database at load would take
 * seconds; a sample of the first records reached from the tree catches a
 * damaged data section without that cost. */
#define MG_GEOIP_DECODE_SAMPLE 512

struct mg_geoip {
    atomic_int refs;
    MMDB_s mmdb;
    char *path;
};

static int fail(char *err, size_t errlen, const char *path, const char *what)
{
    snprintf(err, errlen, "geoipDatabase %s: %s", path, what);
    return -1;
}

/* Every record of every node must point at a node, at "no data" or into
 * the data section: libmaxminddb 1.7.1 follows records without bounds
 * checks of its own. The first data records are decoded completely. */
static int check_tree(MMDB_s *db, const char *path, char *err, size_t errlen)
{
    uint32_t n = db->metadata.node_count;
    size_t decoded = 0;
    if (n == 0)
        return fail(err, errlen, path, "the search tree is empty");
    for (uint32_t i = 0; i < n; i++) {
        MMDB_search_node_s node;
        if (MMDB_read_node(db, i, &node) != MMDB_SUCCESS)
            return fail(err, errlen, path, "the search tree cannot be read (truncated or corrupt)");
        uint8_t t[2] = { node.left_record_type, node.right_record_type };
        uint64_t v[2] = { node.left_record, node.right_record };
        MMDB_entry_s *e[2] = { &node.left_record_entry, &node.right_record_entry };
        for (int k = 0; k < 2; k++) {
            /* a data record counts from the end of the 16-byte separator */
            if (t[k] == MMDB_RECORD_TYPE_INVALID ||
                (t[k] == MMDB_RECORD_TYPE_DATA && v[k] < (uint64_t)n + 16))
                return fail(err, errlen, path, "a search tree record points outside the file "
                            "(truncated or corrupt)");
            if (t[k] != MMDB_RECORD_TYPE_DATA || decoded >= MG_GEOIP_DECODE_SAMPLE)
                continue;
            MMDB_entry_data_list_s *list = NULL;
            int rc = MMDB_get_entry_data_list(e[k], &list);
            MMDB_free_entry_data_list(list);
            if (rc != MMDB_SUCCESS)
                return fail(err, errlen, path, "a data record does not decode (corrupt)");
            decoded++;
        }
    }
    return 0;
}

struct mg_geoip *mg_geoip_open(const char *path, char *err, size_t errlen)
{
    struct mg_geoip *g = mg_xcalloc(1, sizeof(*g));
    int rc = MMDB_open(path, MMDB_MODE_MMAP, &g->mmdb);
    if (rc != MMDB_SUCCESS) {
        char what[200];
        if (rc == MMDB_INVALID_METADATA_ERROR || rc == MMDB_UNKNOWN_DATABASE_FORMAT_ERROR)
            snprintf(what, sizeof(what), "not a MaxMind DB file (%s): truncated or corrupt",
                     MMDB_strerror(rc));
        else
            snprintf(what, sizeof(what), "%s", MMDB_strerror(rc));
        fail(err, errlen, path, what);
        free(g);
        return NULL;
    }
    const MMDB_metadata_s *m = &g->mmdb.metadata;
    if ((m->ip_version != 4 && m->ip_version != 6) || m->binary_format_major_version != 2) {
        fail(err, errlen, path, "unsupported MaxMind DB version or IP version");
        goto bad;
    }
    if (check_tree(&g->mmdb, path, err, errlen) < 0)
        goto bad;
    /* the lookup path itself, on an address every layout can hold */
    struct mg_addr probe = { .family = AF_INET, .ip = { 1, 1, 1, 1 } };
    struct mg_geo out;
    mg_geoip_lookup(g, &probe, &out);
    atomic_init(&g->refs, 1);
    g->path = mg_xstrdup(path);
    return g;
bad:
    MMDB_close(&g->mmdb);
    free(g);
    return NULL;
}

struct mg_geoip *mg_geoip_ref(struct mg_geoip *g)
{
    if (g)
        atomic_fetch_add_explicit(&g->refs, 1, memory_order_relaxed);
    return g;
}

void mg_geoip_unref(struct mg_geoip *g)
{
    if (!g || atomic_fetch_sub_explicit(&g->refs, 1, memory_order_acq_rel) != 1)
        return;
    MMDB_close(&g->mmdb);
    free(g->path);
    free(g);
}

const char *mg_geoip_path(const struct mg_geoip *g)
{
    return g ? g->path : NULL;
}

const char *mg_geoip_type(const struct mg_geoip *g)
{
    return g && g->mmdb.metadata.database_type ? g->mmdb.metadata.database_type : "";
}

/* An ISO code as the database spells it: two ASCII letters, kept in upper
 * case so that policy values compare exactly. */
static bool country_of(MMDB_entry_s *e, const char *container, char out[3])
{
    MMDB_entry_data_s d;
    if (MMDB_get_value(e, &d, container, "iso_code", NULL) != MMDB_SUCCESS || !d.has_data ||
        d.type != MMDB_DATA_TYPE_UTF8_STRING || d.data_size != 2)
        return false;
    char cc[3] = { 0, 0, 0 };
    for (int i = 0; i < 2; i++) {
        char c = d.utf8_string[i];
        if (c >= 'a' && c <= 'z')
            c = (char)(c - 'a' + 'A');
        if (c < 'A' || c > 'Z')
            return false;
        cc[i] = c;
    }
    memcpy(out, cc, 3);
    return true;
}

static uint32_t asn_of(MMDB_entry_s *e)
{
    MMDB_entry_data_s d;
    if (MMDB_get_value(e, &d, "autonomous_system_number", NULL) != MMDB_SUCCESS || !d.has_data)
        return 0;
    switch (d.type) {
    case MMDB_DATA_TYPE_UINT16:
        return d.uint16;
    case MMDB_DATA_TYPE_UINT32:
        return d.uint32;
    case MMDB_DATA_TYPE_UINT64:
        return d.uint64 <= UINT32_MAX ? (uint32_t)d.uint64 : 0;
    case MMDB_DATA_TYPE_INT32:
        return d.int32 > 0 ? (uint32_t)d.int32 : 0;
    default:
        return 0;
    }
}

void mg_geoip_lookup(const struct mg_geoip *g, const struct mg_addr *a, struct mg_geo *out)
{
    memset(out, 0, sizeof(*out));
    if (!g || !a)
        return;
    static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
    struct sockaddr_in s4;
    struct sockaddr_in6 s6;
    const struct sockaddr *sa;
    /* only the two families libmaxminddb 1.7.1 handles safely ever reach it */
    if (a->family == AF_INET ||
        (a->family == AF_INET6 && memcmp(a->ip, mapped, sizeof(mapped)) == 0)) {
        memset(&s4, 0, sizeof(s4));
        s4.sin_family = AF_INET;
        memcpy(&s4.sin_addr, a->family == AF_INET ? a->ip : a->ip + 12, 4);
        sa = (const struct sockaddr *)&s4;
    } else if (a->family == AF_INET6) {
        if (g->mmdb.metadata.ip_version != 6)
            return;
        memset(&s6, 0, sizeof(s6));
        s6.sin6_family = AF_INET6;
        memcpy(&s6.sin6_addr, a->ip, 16);
        sa = (const struct sockaddr *)&s6;
    } else {
        return;
    }
    int rc = MMDB_SUCCESS;
    MMDB_lookup_result_s r = MMDB_lookup_sockaddr(&g->mmdb, sa, &rc);
    if (rc != MMDB_SUCCESS || !r.found_entry)
        return;
    if (!country_of(&r.entry, "country", out->country))
        country_of(&r.entry, "registered_country", out->country);
    out->asn = asn_of(&r.entry);
}

static bool same_addr(const struct mg_addr *a, const struct mg_addr *b)
{
    return a->family == b->family && memcmp(a->ip, b->ip, sizeof(a->ip)) == 0;
}

void mg_geoip_lookup_cached(const struct mg_geoip *g, struct mg_geo_cache *cache,
                            const struct mg_addr *source, const struct mg_addr *remote,
                            struct mg_geo *src_out, struct mg_geo *rem_out)
{
    if (!cache) {
        mg_geoip_lookup(g, source, src_out);
        mg_geoip_lookup(g, remote, rem_out);
        return;
    }
    if (cache->db != g) {
        memset(cache, 0, sizeof(*cache));
        cache->db = g;
    }
    if (!cache->source_done) {
        mg_geoip_lookup(g, source, &cache->source);
        cache->source_done = true;
    }
    *src_out = cache->source;
    if (same_addr(remote, source)) {
        *rem_out = cache->source;
        return;
    }
    if (!cache->remote_done || !same_addr(remote, &cache->remote_addr)) {
        mg_geoip_lookup(g, remote, &cache->remote);
        cache->remote_addr = *remote;
        cache->remote_done = true;
    }
    *rem_out = cache->remote;
}
