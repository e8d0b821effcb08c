#!/bin/bash
# test.sh - install what is missing, build, and run the whole test suite
# (unit + end-to-end) twice over: a -Werror build proves the code is warning
# clean, and `make check` runs on an ASan+UBSan build. Prints the automake
# summary; then the unit suite under valgrind memcheck (contrib/valgrind.sh;
# MG_VALGRIND_SKIP leaves programs out) and a short fuzzing pass
# (contrib/fuzz.sh, MG_FUZZ_SECONDS per target). The exit status is 0 only
# when every test passed.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
rm -f _build/valgrind.out _build/fuzz.out  # counted by .ci/run: never a stale one
bash contrib/install-deps.sh test
[ -x configure ] && [ configure -nt configure.ac ] && [ Makefile.in -nt Makefile.am ] ||
  autoreconf -fi >/dev/null
jobs=$(nproc 2>/dev/null || echo 2)

# 1. warnings are errors
mkdir -p _build/werror && cd _build/werror
[ -f Makefile ] || "$top/configure" -q --enable-werror
make -s -j"$jobs" all >/dev/null
cd "$top"

# 2. the suite, under the sanitizers
mkdir -p _build/check && cd _build/check
[ -f Makefile ] || "$top/configure" -q --enable-sanitizers
make -s -j"$jobs" all >/dev/null
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
# one line per test file as it finishes (from automake's .trs files), so a
# run of several minutes is never silent; the summary follows at the end
progress() {
  local seen=" " f name res n bad last=0
  while :; do
    [ -e "$1.done" ] && last=1
    for f in $(find tests -name '*.trs' -newer "$1" 2>/dev/null | sort); do
      case $seen in *" $f "*) continue ;; esac
      grep -q '^:global-test-result:' "$f" 2>/dev/null || continue
      seen="$seen$f "
      name=${f%.trs}
      res=$(sed -n 's/^:global-test-result: *//p' "$f")
      # (grep -c exits 1 on no match: under set -e that would end the loop)
      n=$(grep -c '^:test-result:' "$f" || true)
      bad=$(grep -cE '^:test-result: (FAIL|ERROR|XPASS)' "$f" || true)
      printf '%-6s %s (%s checks%s)\n' "$res" "$name" "$n" "$( [ "$bad" = 0 ] || echo ", $bad failed")"
    done
    [ "$last" = 1 ] && break
    sleep 2
  done
}
echo "running the suite (one line per test file; full output in _build/check/check.out)"
: >check.start
rm -f check.start.done
progress check.start &
prog=$!
rc=0
make -j"$jobs" check >check.out 2>&1 || rc=$?
touch check.start.done
wait "$prog" 2>/dev/null || true
echo
grep -aE '^(PASS|FAIL|XFAIL|XPASS|ERROR|SKIP):' check.out | grep -v '^PASS' || true
sed -n '/^Testsuite summary/,/^=====/p;/^# [A-Z]*:/p' check.out | grep -a '^#' || true
if [ $rc != 0 ]; then
  for f in $(grep -lE '^(not ok|ERROR|FAIL)' $(find tests -name '*.log') 2>/dev/null); do
    echo "---- $f"; tail -n 40 "$f"
  done
fi

# 3. the unit suite under valgrind memcheck (a plain build), and 4. a short
# pass of every fuzz target (clang, libFuzzer, ASan+UBSan); each prints TAP
# and keeps it next to its build for .ci/run to count
cd "$top"
# the four slowest programs under valgrind (RSA key generation and the
# randomized index check: about 4 of its 5.5 minutes) are left out unless
# MG_VALGRIND_SKIP says otherwise ("" = all); ASan runs them above
export MG_VALGRIND_SKIP=${MG_VALGRIND_SKIP-"tests/unit/test_jwt tests/unit/test_jwt_conformance
  tests/unit/test_explain_token tests/unit/test_authz_index"}
echo "valgrind memcheck on the unit suite (_build/valgrind.out)"
vrc=0
bash contrib/valgrind.sh "$top/_build/plain" >_build/valgrind.out 2>&1 || vrc=$?
grep -E '^(not ok|#)' _build/valgrind.out || true
echo "$(grep -c '^ok' _build/valgrind.out) clean, $(grep -c '^not ok' _build/valgrind.out) failed"
echo "fuzzing, ${MG_FUZZ_SECONDS:-8} s per target (_build/fuzz.out)"
frc=0
bash contrib/fuzz.sh >_build/fuzz.out 2>&1 || frc=$?
grep -E '^(ok|not ok|#)' _build/fuzz.out || true
[ $rc = 0 ] && rc=$vrc
[ $rc = 0 ] && rc=$frc
exit $rc
