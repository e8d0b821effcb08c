#!/bin/bash
# run.sh - run every libFuzzer target of a fuzzing build (./configure
# --enable-fuzzing CC=clang, best with --enable-sanitizers) for a bounded
# time each, from a copy of its checked-in corpus, and print TAP: one line
# per target with libFuzzer's figures (executions, coverage "cov", features
# "ft", corpus size) or the crash it found.
#
#   MG_FUZZ_SECONDS   seconds per target (default 10)
#   MG_FUZZ_TARGETS   space-separated subset (default: all)
#   MG_FUZZ_KEEP      a directory to keep the grown corpora and crash inputs in
#
# make check runs it in a fuzzing build; .ci/run runs a short pass; run it
# longer by hand with e.g. MG_FUZZ_SECONDS=600 tests/fuzz/run.sh from the
# build directory.
set -u
src=${MG_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
bin=${MG_BUILDDIR:-.}/tests/fuzz
secs=${MG_FUZZ_SECONDS:-10}
# target:corpus:dictionary (empty corpus: the target's built-in seeds)
all="fuzz_tls_hello:tls_hello: fuzz_http1_libfuzzer:http1:http1.dict fuzz_jwt:jwt: \
fuzz_normalize:normalize: fuzz_proxy_proto:proxy_proto: fuzz_policy:: fuzz_policy_ref:: fuzz_config:: \
fuzz_tls13::"
want=${MG_FUZZ_TARGETS:-}
work=$(mktemp -d "${TMPDIR:-/tmp}/mg-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT
n=0 failed=0
for spec in $all; do
    IFS=: read -r t corpus dict <<<"$spec"
    [ -z "$want" ] || case " $want " in *" $t "*) ;; *) continue ;; esac
    n=$((n + 1))
    if [ ! -x "$bin/$t" ]; then
        echo "not ok $n - $t: not built (make check in a --enable-fuzzing build builds it)"
        failed=$((failed + 1))
        continue
    fi
    c=$work/$t
    mkdir -p "$c" "$work/$t.art"
    [ -n "$corpus" ] && [ -d "$src/tests/fuzz/corpus/$corpus" ] && cp -r "$src/tests/fuzz/corpus/$corpus/." "$c/"
    args=(-max_total_time="$secs" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048
          -artifact_prefix="$work/$t.art/")
    [ -n "$dict" ] && args+=(-dict="$src/tests/fuzz/$dict")
    "$bin/$t" "${args[@]}" "$c" >"$work/$t.log" 2>&1
    rc=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/$t.log" | tail -n 1)
    last=$(grep -E '^#[0-9]+' "$work/$t.log" | tail -n 1)
    cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
    ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
    corp=$(sed -n 's/.* corp: \([0-9]*\).*/\1/p' <<<"$last")
    if [ -n "${MG_FUZZ_KEEP:-}" ]; then
        mkdir -p "$MG_FUZZ_KEEP/$t"
        cp -r "$c/." "$work/$t.art/." "$MG_FUZZ_KEEP/$t/" 2>/dev/null
        cp "$work/$t.log" "$MG_FUZZ_KEEP/$t.log"
    fi
    if [ "$rc" = 0 ] && [ -n "$runs" ]; then
        echo "ok $n - $t: ${runs} executions in ${secs} s, cov ${cov:-?}, ft ${ft:-?}, corpus ${corp:-?}, no finding"
    else
        failed=$((failed + 1))
        echo "not ok $n - $t: exit $rc after ${runs:-?} executions"
        grep -E 'ERROR: |SUMMARY: |property violated|Test unit written to' "$work/$t.log" | head -n 5 | sed 's/^/# /'
        for a in "$work/$t.art"/*; do
            [ -f "$a" ] && echo "# input (base64): $(head -c 2048 "$a" | base64 -w0)"
        done
    fi
done
echo "1..$n"
[ "$failed" = 0 ]
