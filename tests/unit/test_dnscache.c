/* test_dnscache.c - the workers' DNS answer cache in base/dns.c: TTLs and
 * their clamps, negative answers, families, eviction, and the resolver's
 * answers that need no query (literals, the hosts table). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "tap.h"
#include "base/base.h"

static struct mg_addr ip(const char *s)
{
    struct mg_addr a;
    mg_addr_parse_ip(&a, s);
    return a;
}

static void ttl(void)
{
    struct mg_dnscache *c = mg_dnscache_new(16);
    struct mg_addr a[2] = {ip("192.0.2.1"), ip("192.0.2.2")}, out[MG_DNS_MAX_ADDRS];
    size_t n = 99;
    is_int(mg_dnscache_lookup(c, "a.test", AF_UNSPEC, 0, out, &n), 0, "an empty cache has nothing");
    mg_dnscache_store(c, "a.test", AF_UNSPEC, a, 2, 30, 1000);
    is_int(mg_dnscache_lookup(c, "A.Test", AF_UNSPEC, 1000 + 29999, out, &n), 1,
           "an answer is there within its TTL (names compare without case)");
    ok(n == 2 && !memcmp(out, a, sizeof(a)), "... with both addresses in order");
    is_int(mg_dnscache_lookup(c, "a.test", AF_INET6, 2000, out, &n), 0, "another family is another key");
    is_int(mg_dnscache_lookup(c, "a.test", AF_UNSPEC, 1000 + 30000, out, &n), 0, "expired at its TTL");
    is_int(mg_dnscache_size(c), 0, "... and dropped");

    mg_dnscache_store(c, "zero.test", AF_UNSPEC, a, 1, 0, 0);
    is_int(mg_dnscache_lookup(c, "zero.test", AF_UNSPEC, 999, out, &n), 1, "a TTL of 0 is kept the minimum (1 s)");
    is_int(mg_dnscache_lookup(c, "zero.test", AF_UNSPEC, 1000, out, &n), 0, "... and no longer");
    mg_dnscache_store(c, "long.test", AF_UNSPEC, a, 1, 86400, 0);
    is_int(mg_dnscache_lookup(c, "long.test", AF_UNSPEC, 299999, out, &n), 1, "a day's TTL is kept ...");
    is_int(mg_dnscache_lookup(c, "long.test", AF_UNSPEC, 300000, out, &n), 0, "... at most 300 s");
    mg_dnscache_store(c, "neg.test", AF_UNSPEC, NULL, 0, 3600, 0);
    is_int(mg_dnscache_lookup(c, "neg.test", AF_UNSPEC, 4999, out, &n), -1, "a negative answer is kept ...");
    is_int((long long)n, 0, "... with no address");
    is_int(mg_dnscache_lookup(c, "neg.test", AF_UNSPEC, 5000, out, &n), 0, "... 5 s whatever its TTL");
    mg_dnscache_store(c, "neg.test", AF_UNSPEC, a, 1, 60, 6000);
    mg_dnscache_store(c, "neg.test", AF_UNSPEC, a + 1, 1, 60, 7000);
    is_int(mg_dnscache_lookup(c, "neg.test", AF_UNSPEC, 7000, out, &n), 1, "a new answer replaces the old");
    ok(n == 1 && !memcmp(out, a + 1, sizeof(*a)), "... its address");
    struct mg_addr many[20];
    for (int i = 0; i < 20; i++)
        many[i] = a[0];
    mg_dnscache_store(c, "many.test", AF_UNSPEC, many, 20, 60, 0);
    mg_dnscache_lookup(c, "many.test", AF_UNSPEC, 0, out, &n);
    is_int((long long)n, MG_DNS_MAX_ADDRS, "at most MG_DNS_MAX_ADDRS addresses are kept");
    mg_dnscache_free(c);
}

static void eviction(void)
{
    struct mg_dnscache *c = mg_dnscache_new(4);
    struct mg_addr a = ip("192.0.2.1"), out[MG_DNS_MAX_ADDRS];
    size_t n;
    char name[32];
    for (int i = 0; i < 4; i++) {
        snprintf(name, sizeof(name), "n%d.test", i);
        mg_dnscache_store(c, name, AF_INET, &a, 1, 100 - i * 10, i);  /* n3 expires first */
    }
    is_int(mg_dnscache_size(c), 4, "four names fill a cache of four");
    mg_dnscache_store(c, "n4.test", AF_INET, &a, 1, 100, 10);
    is_int(mg_dnscache_size(c), 4, "a fifth stays within the bound");
    is_int(mg_dnscache_lookup(c, "n3.test", AF_INET, 10, out, &n), 0, "the soonest-expiring name made room");
    is_int(mg_dnscache_lookup(c, "n0.test", AF_INET, 10, out, &n), 1, "the others stay");
    is_int(mg_dnscache_lookup(c, "n4.test", AF_INET, 10, out, &n), 1, "the new name is there");
    for (int i = 0; i < 1000; i++) {
        snprintf(name, sizeof(name), "x%d.test", i);
        mg_dnscache_store(c, name, AF_INET, &a, 1, 1 + i % 7, i);
    }
    is_int(mg_dnscache_size(c), 4, "a thousand names later the bound holds");
    mg_dnscache_free(c);
}

static int got_err = 7;
static size_t got_n;
static struct mg_addr got[MG_DNS_MAX_ADDRS];

static void cb(int err, const struct mg_addr *addrs, size_t n, void *arg)
{
    (void)arg;
    got_err = err;
    got_n = n;
    memcpy(got, addrs, n * sizeof(*addrs));
}

static void resolver(void)
{
    char path[] = "/tmp/mg_hostsXXXXXX";
    int fd = mkstemp(path);
    FILE *f = fdopen(fd, "w");
    fputs("# comment\n192.0.2.7 seven.test alias.test # trailing\n\nnot-an-ip x.test\n"
          "2001:db8::7 seven.test\n", f);
    fclose(f);
    struct mg_dns *d = mg_dns_new(NULL, 8);
    is_int(mg_dns_load_hosts(d, path), 0, "a hosts file loads");
    is_int(mg_dns_load_hosts(d, "/nonexistent/hosts"), -1, "a missing one is an error");
    unlink(path);
    ok(mg_dns_resolve(d, "198.51.100.1", AF_UNSPEC, cb, NULL) == NULL && got_err == 0 && got_n == 1,
       "an IP literal is answered at once");
    struct mg_addr want = ip("192.0.2.7");
    ok(mg_dns_resolve(d, "ALIAS.test", AF_INET, cb, NULL) == NULL && got_err == 0 && got_n == 1 &&
       !memcmp(&got[0], &want, sizeof(want)), "a hosts name is answered at once (any alias, any case)");
    mg_dns_resolve(d, "seven.test", AF_UNSPEC, cb, NULL);
    is_int((long long)got_n, 2, "... with every family's address for AF_UNSPEC");
    mg_dns_resolve(d, "seven.test", AF_INET6, cb, NULL);
    ok(got_n == 1 && got[0].family == AF_INET6, "... and only IPv6 for AF_INET6");
    ok(mg_dns_resolve(d, "x.test", AF_UNSPEC, cb, NULL) == NULL && got_err == -1 && got_n == 0,
       "a name nothing answers fails at once without a resolver");
    is_int((long long)mg_dns_queries(d), 0, "no query was sent");
    mg_dns_free(d);
}

int main(void)
{
    ttl();
    eviction();
    resolver();
    return tap_done();
}
