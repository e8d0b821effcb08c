/* test_ca.c - the argument rules of `meshgate ca` (src/cmd/internal.h). File output
 * and certificate contents are checked end to end by tests/e2e/10-ca.sh. */
#include <stdlib.h>
#include "cmd/internal.h"
#include "tap.h"

static void spiffe_ok(const char *path, const char *want_ns, const char *want_sa)
{
    char *ns, *sa;
    const char *why = NULL;
    int rc = mg_ca_parse_spiffe_path(path, &ns, &sa, &why);
    is_int(rc, 0, "spiffe path '%s' accepted%s%s", path, why ? ": " : "", why ? why : "");
    is_str(ns, want_ns, "  namespace of '%s'", path);
    is_str(sa, want_sa, "  service account of '%s'", path);
    free(ns);
    free(sa);
}

static void spiffe_bad(const char *path)
{
    char *ns = (char *)"x", *sa = (char *)"x";
    const char *why = NULL;
    int rc = mg_ca_parse_spiffe_path(path, &ns, &sa, &why);
    ok(rc == -1 && ns == NULL && sa == NULL && why != NULL, "spiffe path '%s' refused (%s)", path,
       why ? why : "no reason");
}

int main(void)
{
    (void)tap_plan;     /* the count is given by tap_done() */
    tap_diag("mg_ca_parse_spiffe_path");
    spiffe_ok("ns/default/sa/sleep", "default", "sleep");
    spiffe_ok("ns/istio-system/sa/ingressgateway", "istio-system", "ingressgateway");
    spiffe_ok("ns/ns1/sa/my.sa", "ns1", "my.sa");
    spiffe_ok("ns/a/sa/b", "a", "b");
    spiffe_bad("");
    spiffe_bad("ns/default/sa/");
    spiffe_bad("ns//sa/sleep");
    spiffe_bad("ns/default/sa/sleep/extra");
    spiffe_bad("ns/default/xx/sleep");
    spiffe_bad("sa/sleep/ns/default");
    spiffe_bad("/ns/default/sa/sleep");
    spiffe_bad("ns/Default/sa/sleep");
    spiffe_bad("ns/-bad/sa/sleep");
    spiffe_bad("ns/bad-/sa/sleep");
    spiffe_bad("ns/has.dot/sa/sleep");
    spiffe_bad("ns/default/sa/.lead");
    spiffe_bad("ns/default/sa/trail.");
    spiffe_bad("ns/default/sa/a..b");
    spiffe_bad("ns/default/sa/a_b");
    spiffe_bad("ns/default/sa/sl eep");
    spiffe_bad("ns/default/sa/sleep,URI:spiffe://evil/ns/x/sa/y");
    spiffe_bad("ns/0123456789012345678901234567890123456789012345678901234567890123/sa/x");
    spiffe_ok("ns/012345678901234567890123456789012345678901234567890123456789012/sa/x",
              "012345678901234567890123456789012345678901234567890123456789012", "x");

    ok(mg_ca_valid_trust_domain("cluster.local"), "trust domain cluster.local");
    ok(mg_ca_valid_trust_domain("example_td-1.org"), "trust domain with _ and -");
    ok(!mg_ca_valid_trust_domain(""), "empty trust domain refused");
    ok(!mg_ca_valid_trust_domain("Cluster.local"), "upper-case trust domain refused");
    ok(!mg_ca_valid_trust_domain("a..b"), "empty label refused");
    ok(!mg_ca_valid_trust_domain(".a"), "leading dot refused");
    ok(!mg_ca_valid_trust_domain("a/b"), "slash refused");
    ok(!mg_ca_valid_trust_domain("a@b"), "'@' refused (the command rewrites it first)");

    ok(mg_ca_valid_dns_name("example.com"), "dns example.com");
    ok(mg_ca_valid_dns_name("*.example.com"), "dns wildcard");
    ok(mg_ca_valid_dns_name("localhost"), "dns single label");
    ok(mg_ca_valid_dns_name("A-b.Example.COM"), "dns mixed case");
    ok(!mg_ca_valid_dns_name(""), "dns empty refused");
    ok(!mg_ca_valid_dns_name("a.*.com"), "dns inner wildcard refused");
    ok(!mg_ca_valid_dns_name("*"), "dns bare star refused");
    ok(!mg_ca_valid_dns_name("*."), "dns star-dot refused");
    ok(!mg_ca_valid_dns_name("example.com."), "dns trailing dot refused");
    ok(!mg_ca_valid_dns_name("-a.com"), "dns leading hyphen refused");
    ok(!mg_ca_valid_dns_name("a..com"), "dns empty label refused");
    ok(!mg_ca_valid_dns_name("a,DNS:evil.com"), "dns comma refused");
    ok(!mg_ca_valid_dns_name("a_b.com"), "dns underscore refused");

    ok(mg_ca_valid_basename("server"), "basename server");
    ok(mg_ca_valid_basename("*.example.com"), "basename wildcard name");
    ok(!mg_ca_valid_basename("../x"), "basename with slash refused");
    ok(!mg_ca_valid_basename(".hidden"), "basename starting with dot refused");
    ok(!mg_ca_valid_basename(""), "empty basename refused");
    return tap_done();
}
