#!/bin/sh
# Micro-benchmark of the policy engine: decisions per second with 10, 1000
# and 10000 AuthorizationPolicies in the workload's namespace and in another
# namespace. Builds an optimized, sanitizer-free copy of the policy module.
# Usage: contrib/bench/authz.sh   (from anywhere; needs cc and libjansson-dev)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
out=${TMPDIR:-/tmp}/meshgate-authz-bench.$$
trap 'rm -f "$out"' EXIT INT TERM
${CC:-cc} -std=c11 -O2 -DNDEBUG -D_GNU_SOURCE -I"$top/src" \
    $(pkg-config --cflags jansson) \
    "$here/authz_bench.c" "$top"/src/policy/*.c \
    "$top/src/base/util.c" "$top/src/base/diag.c" "$top/src/base/arena.c" \
    -o "$out" $(pkg-config --libs jansson) -lpthread
"$out"
