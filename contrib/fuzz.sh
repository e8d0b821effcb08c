#!/bin/bash
# fuzz.sh [SECONDS] - build the libFuzzer targets with clang, ASan and UBSan
# (./configure --enable-fuzzing --enable-sanitizers CC=clang in
# _build/fuzz) and run each for SECONDS (default 8) with tests/fuzz/run.sh,
# which prints one TAP line per target: executions, coverage, findings.
# The grown corpora and any crash input are kept in _build/fuzz/findings.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
b=$top/_build/fuzz
command -v clang >/dev/null || { echo "1..0 # SKIP clang is not installed"; exit 0; }
mkdir -p "$b" && cd "$b" || exit 1
# a build that fails is a failed check (TAP), with the compiler's last words
fail() { echo "1..1"; echo "not ok 1 - $1"; tail -n 20 "$b/build.log" | sed 's/^/# /'; exit 1; }
[ -f Makefile ] || "$top/configure" -q --enable-fuzzing --enable-sanitizers CC=clang >"$b/build.log" 2>&1 ||
  fail "configuring the fuzz build"
targets="tests/fuzz/fuzz_tls_hello tests/fuzz/fuzz_http1_libfuzzer tests/fuzz/fuzz_jwt
  tests/fuzz/fuzz_normalize tests/fuzz/fuzz_proxy_proto tests/fuzz/fuzz_policy tests/fuzz/fuzz_policy_ref
  tests/fuzz/fuzz_config tests/fuzz/fuzz_tls13"
# shellcheck disable=SC2086
make -s -j"$(nproc 2>/dev/null || echo 2)" $targets >"$b/build.log" 2>&1 || fail "building the fuzz targets"
rm -rf findings
MG_SRCDIR=$top MG_BUILDDIR=$b MG_FUZZ_SECONDS=${1:-${MG_FUZZ_SECONDS:-8}} MG_FUZZ_KEEP=$b/findings \
    ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1} bash "$top/tests/fuzz/run.sh"
