#!/bin/sh
# istio-config.sh - the Istio configuration conformance corpus
# (tests/conformance/istio-config/MANIFEST.tsv): every document set is put
# to `meshgate check`, which must accept what Istio accepts and refuse what
# it refuses, with Istio's reason. TAP output; the last lines count the
# corpus (accepted, warned, refused) and the disagreements.
MESHGATE=${MESHGATE:-${MG_BUILDDIR:-.}/meshgate}
D=${MG_SRCDIR:-.}/tests/conformance/istio-config
out=$(mktemp /tmp/mg-istio-config.XXXXXX) || exit 1
trap 'rm -f "$out"' EXIT INT TERM
n=0 bad=0 acc=0 warned=0 ref=0
tab=$(printf '\t')
while IFS="$tab" read -r file outcome reason args; do
    case $file in ''|'#'*) continue ;; esac
    n=$((n + 1))
    [ "$args" = - ] && args=
    # shellcheck disable=SC2086  # args are words
    (cd /tmp && "$MESHGATE" check $args -c "$D/$file") >"$out" 2>&1
    rc=$?
    good=1
    case $outcome in
    accepted)
        acc=$((acc + 1))
        [ $rc = 0 ] || good=0 ;;
    warned)
        warned=$((warned + 1))
        [ $rc = 0 ] && grep ': warning: ' "$out" | grep -qF -- "$reason" || good=0 ;;
    refused)
        ref=$((ref + 1))
        [ $rc = 1 ] && grep ': error: ' "$out" | grep -qF -- "$reason" || good=0 ;;
    *)
        good=0 ;;
    esac
    if [ $good = 1 ]; then
        echo "ok $n - $file: $outcome${reason:+ }$([ "$reason" = - ] || echo "($reason)")"
    else
        bad=$((bad + 1))
        echo "not ok $n - $file: want $outcome ($reason), exit $rc"
        sed 's/^/#   /' "$out"
    fi
done <"$D/MANIFEST.tsv"
echo "# corpus: $n documents sets: $acc accepted, $warned accepted with a warning, $ref refused;" \
     "$((n - bad)) agree with Istio, $bad disagree"
echo "1..$n"
[ $bad = 0 ]
