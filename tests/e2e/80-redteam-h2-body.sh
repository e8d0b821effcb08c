#!/bin/bash
# 80-redteam-h2-body.sh - an HTTP/2 request body that stops arriving is
# ended after the idle timeout even when the connection itself stays busy
# (PINGs, other streams): the bound is per stream, as Envoy's stream idle
# timeout is; so is a started response the client never lets flow (its
# stream window kept shut). Round 1 (93) fixed HTTP/1 only.
# Regression: the h2 idle timer was per connection and re-armed by every
# byte read, so a client that sent one PING per second kept a stream with a
# stalled body - and the upstream request it had opened - forever.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/h2lib.sh"

FLOOD=$MG_BUILDDIR/tests/helpers/mg_h2flood
[ -x "$FLOOD" ] || skip_all "mg_h2flood not built"

h2_setup "  timeouts: {idle: 2s, requestHeaders: 2s}"
h2_start

# the stalled stream: 3 of 100 bytes, then 8 s of PINGs on the connection;
# 4 s in, the upstream request it opened must be gone already
"$FLOOD" --port "$H2_PORT" slowbody /echo 8 >"$MG_TMP/slow.out" 2>&1 &
flood=$!
sleep 4
is "$(ss -Htn state established "( sport = :$H2_UP_PORT )" | wc -l)" 0 \
    "4 s into the stall no upstream connection is held"
wait "$flood"
out=$(cat "$MG_TMP/slow.out")
diag "$out"
like "$out" '^stream 1 (status 408|reset [0-9]+) after' "a stalled h2 body on a busy connection is ended"
ms=$(printf '%s\n' "$out" | sed -n 's/^stream 1 [a-z]* [0-9]* after \([0-9]*\)$/\1/p')
ok "... after about the 2 s idle timeout (${ms:-never} ms)" test "${ms:-99999}" -ge 1500 -a "${ms:-99999}" -lt 5000
like "$out" '^open$' "... and the connection stays usable (one stream's timeout, not the session)"
ok "logged as a request body timeout" \
    mg_wait_log "$MG_MESHGATE_LOG" '"response_code":408.*request_body_timeout|request_body_timeout.*"response_code":408'

# the response direction: a GET whose stream window the client keeps at 1
# byte, on a connection kept busy with PINGs, must not hold its upstream
"$FLOOD" --port "$H2_PORT" hold /bytes/1000000 8 >"$MG_TMP/hold.out" 2>&1 &
flood=$!
sleep 4.5
is "$(ss -Htn state established "( sport = :$H2_UP_PORT )" | wc -l)" 0 \
    "a response the client never lets flow does not hold the upstream (4.5 s in)"
wait "$flood"
out=$(cat "$MG_TMP/hold.out")
diag "$out"
like "$out" '^stream 1 reset [0-9]+ after' "... its stream is reset after the idle timeout"
ok "... logged with flag SI and reason stream_idle_timeout, as HTTP/1.1 logs it" \
    mg_wait_log "$MG_MESHGATE_LOG" '"response_flags":"SI".*"reason":"stream_idle_timeout"'
like "$out" '^open$' "... and the connection stays usable"

# a slow body whose pieces each arrive within the idle timeout still completes
body=$(for i in 1 2 3 4; do sleep 0.7; printf 'ab'; done | h2_curl --data-binary @- -H 'content-type: text/plain' /echo)
like "$body" '"body_length":8' "a slow but moving h2 body completes"
like "$(h2_curl /echo)" '"upstream":"up1"' "the gateway still serves"

done_testing
