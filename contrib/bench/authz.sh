#!/bin/sh
# Micro-benchmark of the policy engine: decisions per second with 10, 1000
# and 10000 AuthorizationPolicies in the workload's namespace and in another
# namespace, for DENY rules on exact paths and for a mix of hosts, host and
# path prefixes, methods and templates, each through the rule index and by
# the linear scan of every rule beside it (5 interleaved rounds, medians,
# min-max); then 10 policies with and without a GeoIP condition (a test
# database written by tests/helpers/mg_mmdb_write): the decision with the
# peer's lookup from the connection cache, and with a fresh lookup (a new
# connection). Builds an optimized, sanitizer-free copy of the policy and
# geoip modules.
# Usage: contrib/bench/authz.sh   (from anywhere; needs cc, libjansson-dev
# and libmaxminddb-dev)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
out=${TMPDIR:-/tmp}/meshgate-authz-bench.$$
trap 'rm -f "$out" "$out.w" "$out.mmdb"' EXIT INT TERM
${CC:-cc} -std=c11 -O2 -DNDEBUG -D_GNU_SOURCE -I"$top/src" \
    $(pkg-config --cflags jansson libmaxminddb) \
    "$here/authz_bench.c" "$top"/src/policy/*.c "$top/src/geoip/geoip.c" \
    "$top/src/base/util.c" "$top/src/base/diag.c" "$top/src/base/arena.c" \
    -o "$out" $(pkg-config --libs jansson libmaxminddb) -lpthread
${CC:-cc} -std=c11 -O2 -D_GNU_SOURCE "$top/tests/helpers/mg_mmdb_write.c" -o "$out.w"
# a GeoLite2-sized tree is not needed for the per-lookup cost: the depth
# (32 bits of an IPv4 address under 96 zero bits) is what a lookup walks
"$out.w" "$out.mmdb" 127.0.0.1/32=US,64500 127.0.0.2/32=DE,64501 10.0.0.0/8=FR,64502 \
    192.0.2.0/24=JP,64503 2001:db8::/32=NL,64504
"$out" "$out.mmdb"
