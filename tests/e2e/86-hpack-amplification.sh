#!/bin/bash
# 86-hpack-amplification.sh - HPACK amplification on the HTTP/2 listener:
# one 4 KB field in the dynamic table, then header blocks of 147,456 1-byte
# references to it (600 MB once decoded, per 147 KB block). A block is not
# decoded into fields far past the header list limit (its stream is reset),
# a connection that keeps crossing the limit is ended with GOAWAY
# (ENHANCE_YOUR_CALM), the CPU per abusive block stays small and other
# clients keep their latency while two attackers run.
# Regression: after the limit was crossed the header callback kept
# accepting, so nghttp2 validated and delivered every field: 0.2-0.35 s of
# gateway CPU per block before its 431, and other clients' requests waited
# behind it (50-200x slower).
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/h2lib.sh"

FLOOD=${MG_H2FLOOD_BIN:-$MG_BUILDDIR/tests/helpers/mg_h2flood}
[ -x "$FLOOD" ] || bail_out "no $FLOOD (make check builds it)"
curl --version | grep -q HTTP2 || skip_all "curl without HTTP/2"

# default header list limit (60 KB); one worker, so an attacker and the
# other clients share it and its delay shows
h2_setup "  timeouts: {idle: 10s, requestHeaders: 5s}"
sed -i 's/^  workers: 2/  workers: 1/' "$H2_CFG/gw.yaml"
h2_start || bail_out "no gateway"
cpu_ms() {  # the gateway's user + system CPU time
    awk -v hz="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); print int(($12 + $13) * 1000 / hz) }' \
        "/proc/$MG_MESHGATE_PID/stat"
}
hpack() { "$FLOOD" --port "$H2_PORT" --linger 3 hpack "$1" 2>&1; }

# ---- one attacker connection, 30 abusive blocks
out=$(hpack 30)
diag "$out"
like "$out" '^first 200$' "the 4 KB header that fills the table is served"
like "$out" '^goaway 11 last [0-9]+$' "a connection sending oversized blocks gets GOAWAY ENHANCE_YOUR_CALM"
like "$out" '^closed$' "... and is closed"
last=$(printf '%s\n' "$out" | sed -n 's/^goaway 11 last \([0-9]*\)$/\1/p')
ok "... after at most 4 of its 30 blocks (streams up to ${last:-none})" test "${last:-99}" -le 9
ok "the reset streams are logged (DPE, headers_too_large)" \
    mg_wait_log "$MG_MESHGATE_LOG" '"response_flags":"DPE".*"reason":"headers_too_large","response_code":0,'

# ---- fewer oversized blocks than the budget: each stream is reset, the
# connection stays
out=$("$FLOOD" --port "$H2_PORT" --linger 1 hpack 3 2>&1)
like "$out" '^answered 3$' "3 abusive blocks: each stream answered (reset)"
unlike "$out" '^goaway' "... no GOAWAY under the budget"
like "$out" '^open$' "... the connection stays open"

# ---- CPU per abusive block: 10 connections of 4 blocks (the 4th ends the
# connection), the whole cost (handshakes included) put on the blocks
c0=$(cpu_ms)
blocks=0
for ((i = 0; i < 10; i++)); do
    out=$(hpack 4)
    last=$(printf '%s\n' "$out" | sed -n 's/^goaway 11 last \([0-9]*\)$/\1/p')
    if [ -n "$last" ]; then
        blocks=$((blocks + (last - 1) / 2))
    else
        blocks=$((blocks + $(printf '%s\n' "$out" | sed -n 's/^answered //p')))
    fi
done
c1=$(cpu_ms)
per=$(((c1 - c0) / (blocks > 0 ? blocks : 1)))
diag "gateway CPU: $((c1 - c0)) ms for $blocks abusive blocks on 10 connections"
ok "CPU per abusive block ${per} ms (< 50 ms; it was 200-350 ms)" test "$blocks" -ge 10 -a "$per" -lt 50
is "$blocks" 40 "... and each connection ended at its 4th block"

# ---- other clients' latency while two attackers run (each reconnecting
# after its GOAWAY, until told to stop; bounded either way)
lat() {  # N: N sequential HTTP/2 requests; prints "<seconds> <status>" each
    local i
    for ((i = 0; i < $1; i++)); do
        h2_curl -o /dev/null -w '%{time_total} %{http_code}\n' /echo
    done
}
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
base=$(lat 10)
stop=$MG_TMP/stop-attack
attack() {
    local j
    for ((j = 0; j < 200; j++)); do
        [ -e "$stop" ] && break
        "$FLOOD" --port "$H2_PORT" --linger 1 hpack 30 >/dev/null 2>&1
    done
}
attack & a1=$!
attack & a2=$!
sleep 0.5
during=$(lat 20)
touch "$stop"
wait "$a1" "$a2"
mb=$(printf '%s\n' "$base" | median)
md=$(printf '%s\n' "$during" | median)
diag "median latency: $mb s alone, $md s with two attackers"
diag "during: $(printf '%s\n' "$during" | awk '{ print $1 }' | tr '\n' ' ')"
is "$(printf '%s\n' "$during" | awk '$2 != 200' | wc -l)" 0 "every request during the attack succeeds"
ok "... with a median latency at most 10x the unloaded one + 0.1 s ($md s vs $mb s)" \
    awk -v b="$mb" -v d="$md" 'BEGIN { exit !(d <= 10 * b + 0.1) }'
ok "... and none slower than 2 s" \
    awk '$1 >= 2 { bad = 1 } END { exit bad }' <<<"$during"
is "$(h2_curl -o /dev/null -w '%{http_code}' /echo)" 200 "the gateway still serves after the attack"

done_testing
