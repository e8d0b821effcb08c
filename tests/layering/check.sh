#!/bin/bash
# check.sh - the layering test (TAP): every `#include "folder/..."` in src/
# must follow tests/layering/rules; a folder may also include its own
# headers, and no other folder's internal.h. Each include that breaks the rule is reported as FILE:LINE. The
# includes listed in tests/layering/known (the data-plane knot that is being
# untied) are reported as TODO and do not fail; the list may only shrink: a
# listed include that no longer exists fails too, so the list is kept exact.
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

declare -A known
if [ -f "$dir/known" ]; then
    while read -r k; do
        k=${k%%#*}; k=${k%% *}
        [ -n "$k" ] && known[$k]=1
    done < "$dir/known"
fi

n=0; failed=0
declare -A seen
while IFS=: read -r file lineno text; do
    rel=${file#src/}
    case "$rel" in */*) from=${rel%%/*} ;; *) from=${rel%.*} ;; esac
    inc=$(printf '%s' "$text" | sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p')
    [ -n "$inc" ] || continue
    case "$inc" in */*) to=${inc%%/*} ;; *) continue ;; esac   # same-folder or generated header
    [ -d "src/$to" ] || continue
    [ "$from" = "$to" ] && continue
    # A folder's types.h (types, constants and static inline accessors, no
    # function of its own: checked below) may be named from any folder but
    # the pure libraries and the shared base/: types flow down the path with
    # the request, calls do not flow back up.
    if [ "${inc#*/}" = internal.h ]; then
        n=$((n + 1)); failed=$((failed + 1))
        echo "not ok $n - $file:$lineno: $inc is $to/'s own; use its public header $to/$to.h"
        continue
    fi
    if [ "${inc#*/}" = types.h ]; then
        case " $pure base " in *" $from "*) ;; *) continue ;; esac
    fi
    rule=${allow[$from]- }
    case "$rule" in *" * "*|*" $to "*) continue ;; esac
    key="$file:$inc"
    n=$((n + 1))
    if [ -n "${known[$key]:-}" ]; then
        seen[$key]=1
        echo "not ok $n - $file:$lineno: $from/ includes $inc # TODO known (tests/layering/known), being untied"
    else
        failed=$((failed + 1))
        echo "not ok $n - $file:$lineno: $from/ may not include $inc (tests/layering/rules)"
    fi
done < <(grep -rn --include='*.c' --include='*.h' '^[[:space:]]*#[[:space:]]*include' src | sort -t: -k1,1 -k2,2n)

for k in "${!known[@]}"; do
    if [ -z "${seen[$k]:-}" ]; then
        n=$((n + 1)); failed=$((failed + 1))
        echo "not ok $n - tests/layering/known lists $k, which is gone: remove the line"
    fi
done

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
