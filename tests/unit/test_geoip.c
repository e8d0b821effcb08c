/* test_geoip.c - the MaxMind DB lookups (src/geoip) against databases that
 * tests/helpers/mg_mmdb_write builds, and the refusal of damaged files. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include "geoip/geoip.h"
#include "tap.h"

static char dir[] = "/tmp/mg_geoip_XXXXXX";

static void path_of(char *buf, size_t n, const char *name)
{
    snprintf(buf, n, "%s/%s", dir, name);
}

static int run(const char *cmd)
{
    int rc = system(cmd);
    return rc == 0 ? 0 : -1;
}

static struct mg_geo look(const struct mg_geoip *g, const char *ip)
{
    struct mg_addr a;
    struct mg_geo out;
    memset(&a, 0, sizeof(a));
    if (mg_addr_parse_ip(&a, ip) < 0)
        printf("# bad test address %s\n", ip);
    mg_geoip_lookup(g, &a, &out);
    return out;
}

/* Write `len` bytes of file src to dst, then optionally overwrite some. */
static int damage(const char *src, const char *dst, long keep, long at, const char *junk)
{
    FILE *in = fopen(src, "rb"), *out = fopen(dst, "wb");
    if (!in || !out)
        return -1;
    static unsigned char buf[65536];
    size_t n = fread(buf, 1, sizeof(buf), in);
    if (keep >= 0 && (size_t)keep < n)
        n = (size_t)keep;
    if (junk && at >= 0 && (size_t)at + strlen(junk) <= n)
        memcpy(buf + at, junk, strlen(junk));
    fwrite(buf, 1, n, out);
    fclose(in);
    return fclose(out);
}

int main(void)
{
    char db[256], cmd[1024], err[256], bad[256];
    if (!mkdtemp(dir))
        return 1;
    path_of(db, sizeof(db), "test.mmdb");
    snprintf(cmd, sizeof(cmd), "%s %s 127.0.0.0/24=US,0 127.0.0.2/32=DE,64500 "
             "127.0.0.3/32=fr,64501 127.0.0.4/32=-,64502 10.0.0.0/8=X1,0 2001:db8::/32=JP,64999",
             MG_MMDB_WRITE, db);
    ok(run(cmd) == 0, "the test writer builds a database");

    struct mg_geoip *g = mg_geoip_open(db, err, sizeof(err));
    ok(g != NULL, "a sound database opens (%s)", g ? "ok" : err);
    is_str(mg_geoip_type(g), "meshgate-test", "database_type from the metadata");
    is_str(mg_geoip_path(g), db, "the path is kept");

    struct mg_geo r = look(g, "127.0.0.2");
    is_str(r.country, "DE", "a /32 inside a /24: the longer network's country");
    is_int(r.asn, 64500, "and its AS number");
    r = look(g, "127.0.0.3");
    is_str(r.country, "FR", "a lower-case code is read in upper case");
    r = look(g, "127.0.0.4");
    is_str(r.country, "", "a record without country: no country");
    is_int(r.asn, 64502, "but its AS number");
    r = look(g, "127.0.0.9");
    is_str(r.country, "US", "the covering /24");
    is_int(r.asn, 0, "without an AS number");
    r = look(g, "10.1.2.3");
    is_str(r.country, "", "a code that is not two letters is no country");
    r = look(g, "127.0.1.1");
    ok(r.country[0] == 0 && r.asn == 0, "an address the database does not hold: nothing");
    r = look(g, "::ffff:127.0.0.2");
    is_str(r.country, "DE", "a v4-mapped IPv6 address is looked up as IPv4");
    r = look(g, "2001:db8::1");
    is_str(r.country, "JP", "IPv6");
    is_int(r.asn, 64999, "IPv6 AS number");
    r = look(g, "2001:db9::1");
    is_str(r.country, "", "IPv6 not held");
    struct mg_addr none = { 0 };
    mg_geoip_lookup(g, &none, &r);
    ok(r.country[0] == 0 && r.asn == 0, "an absent address (family 0) is not looked up");
    struct mg_addr odd = { .family = AF_UNIX };
    mg_geoip_lookup(g, &odd, &r);
    ok(r.country[0] == 0 && r.asn == 0, "another family is never passed to the library");
    mg_geoip_lookup(NULL, &none, &r);
    ok(r.country[0] == 0, "no database: nothing");

    /* the per-connection cache */
    struct mg_geo_cache c = { 0 };
    struct mg_addr src, rem;
    struct mg_geo gs, gr;
    mg_addr_parse_ip(&src, "127.0.0.2");
    mg_addr_parse_ip(&rem, "127.0.0.3");
    mg_geoip_lookup_cached(g, &c, &src, &rem, &gs, &gr);
    ok(strcmp(gs.country, "DE") == 0 && strcmp(gr.country, "FR") == 0, "cached: source and remote");
    ok(c.source_done && c.remote_done, "both entries are kept");
    mg_addr_parse_ip(&rem, "2001:db8::5");
    mg_geoip_lookup_cached(g, &c, &src, &rem, &gs, &gr);
    ok(strcmp(gs.country, "DE") == 0 && strcmp(gr.country, "JP") == 0,
       "another remote address is looked up again");
    mg_geoip_lookup_cached(g, &c, &src, &src, &gs, &gr);
    ok(strcmp(gr.country, "DE") == 0, "remote = peer reuses the peer's entry");

    /* damaged files are refused with a reason */
    path_of(bad, sizeof(bad), "truncated.mmdb");
    damage(db, bad, 100, -1, NULL);
    struct mg_geoip *b = mg_geoip_open(bad, err, sizeof(err));
    ok(!b && strstr(err, "truncated or corrupt"), "a truncated file is refused: %s", err);
    mg_geoip_unref(b);
    path_of(bad, sizeof(bad), "tree.mmdb");
    damage(db, bad, -1, 6, "\xff\xff\xff");     /* node 1's left record: far outside */
    b = mg_geoip_open(bad, err, sizeof(err));
    ok(!b && strstr(err, "outside the file"), "a tree record out of bounds is refused: %s", err);
    mg_geoip_unref(b);
    path_of(bad, sizeof(bad), "garbage.mmdb");
    FILE *f = fopen(bad, "wb");
    fputs("this is not a database\n", f);
    fclose(f);
    b = mg_geoip_open(bad, err, sizeof(err));
    ok(!b && strstr(err, bad), "a text file is refused and the message names it: %s", err);
    mg_geoip_unref(b);
    path_of(bad, sizeof(bad), "missing.mmdb");
    b = mg_geoip_open(bad, err, sizeof(err));
    ok(!b, "a missing file is refused: %s", err);

    ok(mg_geoip_ref(g) == g, "ref");
    mg_geoip_unref(g);
    mg_geoip_unref(g);
    mg_geoip_unref(NULL);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    run(cmd);
    return tap_done();
}
