#!/bin/bash
# valgrind.sh [BUILDDIR] - the unit suite under valgrind memcheck, next to the
# ASan+UBSan run of contrib/test.sh: builds the unit tests in a plain build
# (no sanitizer: valgrind and ASan do not mix; default _build/plain) and runs
# each tests/unit/test_* under `valgrind --error-exitcode=1
# --leak-check=full`, so an error or a definite/indirect/possible leak fails
# it. Prints TAP, one line per program with its time; the exit status is 0
# only when every program ran clean.
#   MG_VALGRIND_TESTS   space-separated subset (default: every unit test)
#   MG_VALGRIND_TIMEOUT seconds per program (default 300; a hang fails)
#   MG_VALGRIND_SKIP    programs to leave out (.ci/run leaves out the four
#                       slowest under valgrind, about 4 of the 6 minutes)
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
b=${1:-$top/_build/plain}
command -v valgrind >/dev/null || { echo "1..0 # SKIP valgrind is not installed"; exit 0; }
mkdir -p "$b" && cd "$b" || exit 1
[ -f Makefile ] || "$top/configure" -q >/dev/null || exit 1
progs=$(grep -o 'tests_unit_test_[a-z0-9_]*_SOURCES' "$top/tests/include.am" |
    sed 's/_SOURCES$//; s|^tests_unit_|tests/unit/|' | sort -u)
[ -n "${MG_VALGRIND_TESTS:-}" ] && progs=$MG_VALGRIND_TESTS
for s in ${MG_VALGRIND_SKIP:-}; do
    progs=$(printf '%s\n' $progs | grep -vx "$s")
done
# shellcheck disable=SC2086
make -s -j"$(nproc 2>/dev/null || echo 2)" meshgate $progs >/dev/null || exit 1
export MESHGATE=$b/meshgate MG_BUILDDIR=$b MG_SRCDIR=$top
n=0 failed=0
for p in $progs; do
    n=$((n + 1))
    log=$p.valgrind.log
    t0=$SECONDS
    timeout "${MG_VALGRIND_TIMEOUT:-300}" valgrind -q --error-exitcode=99 --leak-check=full --show-leak-kinds=definite,indirect,possible \
        --errors-for-leak-kinds=definite,indirect,possible --log-file="$log" "./$p" >"$p.valgrind.out" 2>&1
    rc=$?
    if [ "$rc" = 0 ] && [ ! -s "$log" ]; then
        echo "ok $n - $p clean under memcheck ($((SECONDS - t0)) s)"
    else
        failed=$((failed + 1))
        echo "not ok $n - $p: exit $rc (99 = memcheck errors or leaks, 124 = over ${MG_VALGRIND_TIMEOUT:-300} s)"
        head -n 30 "$log" | sed 's/^/# /'
        grep -E '^not ok' "$p.valgrind.out" | head -n 5 | sed 's/^/# /'
    fi
done
echo "1..$n"
[ "$failed" = 0 ]
