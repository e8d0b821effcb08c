#!/bin/bash
# check.sh - the layering test (TAP): every `#include "folder/..."` in src/
# must follow tests/layering/rules; a folder may also include its own
# headers, and no other folder's internal.h. Each include that breaks the
# rule is reported as FILE:LINE.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
set -u
src=${MG_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
dir=$src/tests/layering
cd "$src" || exit 1

declare -A allow
while read -r line; do
    line=${line%%#*}
    case "$line" in *:*) ;; *) continue ;; esac
    allow[${line%%:*}]=" ${line#*:} "
done < "$dir/rules"

pure="config http1 jwt geoip policy"

n=0; failed=0
while IFS=: read -r file lineno text; do
    rel=${file#src/}
    case "$rel" in */*) from=${rel%%/*} ;; *) from=${rel%.*} ;; esac
    inc=$(printf '%s' "$text" | sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p')
    [ -n "$inc" ] || continue
    case "$inc" in */*) to=${inc%%/*} ;; *) continue ;; esac   # same-folder or generated header
    [ -d "src/$to" ] || continue
    [ "$from" = "$to" ] && continue
    if [ "${inc#*/}" = internal.h ]; then
        n=$((n + 1)); failed=$((failed + 1))
        echo "not ok $n - $file:$lineno: $inc is $to/'s own; use its public header $to/$to.h"
        continue
    fi
    # A folder's types.h (types, constants and static inline accessors, no
    # function of its own: checked below) may be named from any folder but
    # the pure libraries and the shared base/: types flow down the path with
    # the request, calls do not flow back up.
    if [ "${inc#*/}" = types.h ]; then
        case " $pure base " in *" $from "*) ;; *) continue ;; esac
    fi
    rule=${allow[$from]- }
    case "$rule" in *" * "*|*" $to "*) continue ;; esac
    n=$((n + 1)); failed=$((failed + 1))
    echo "not ok $n - $file:$lineno: $from/ may not include $inc (tests/layering/rules)"
done < <(grep -rn --include='*.c' --include='*.h' '^[[:space:]]*#[[:space:]]*include' src | sort -t: -k1,1 -k2,2n)

# a types.h declares no function of its own: every top-level line that
# opens a parameter list is a static inline, a typedef or a macro
while IFS=: read -r file lineno _; do
    n=$((n + 1)); failed=$((failed + 1))
    echo "not ok $n - $file:$lineno: a function declared in a types.h (types and static inline accessors only)"
done < <(grep -rnE '^[A-Za-z_][^=;{]*\(' --include='types.h' src | grep -vE ':[0-9]+:(static inline|typedef|#|struct [a-z_]+ \{|enum)')

# extern prototypes written by hand to get around the rule
while IFS=: read -r file lineno _; do
    n=$((n + 1)); failed=$((failed + 1))
    echo "not ok $n - $file:$lineno: an extern function prototype in a .c file; include the owner's header"
done < <(grep -rnE '^[[:space:]]*extern[[:space:]].*\(' --include='*.c' src)

n=$((n + 1))
echo "ok $n - include rules checked"
echo "1..$n"
[ "$failed" -eq 0 ]
