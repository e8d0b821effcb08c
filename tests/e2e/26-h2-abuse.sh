#!/bin/bash
# 26-h2-abuse.sh - HTTP/2 protections end to end, against the nghttp2 Debian
# ships: stream limit, header list limit (431 on that stream only, trap 8),
# rapid reset (GOAWAY, trap 9), CONTINUATION flood (GOAWAY), PING flood,
# unfinished header blocks, stalled readers (SI), GOAWAY after the idle
# timeout, flow control bounding memory for slow readers.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/h2lib.sh"

FLOOD=${MG_H2FLOOD_BIN:-$MG_BUILDDIR/tests/helpers/mg_h2flood}
[ -x "$FLOOD" ] || bail_out "no $FLOOD (make check builds it)"
curl --version | grep -q HTTP2 || skip_all "curl without HTTP/2"
command -v nghttp >/dev/null || skip_all "nghttp (nghttp2-client) is not installed"

h2_setup "  timeouts: {idle: 3s, requestHeaders: 2s}
  limits: {maxRequestHeadersKb: 8, maxConcurrentStreams: 50}"
# an ASan build parks freed memory in a quarantine (256 MB by default), which
# would look like growth; keep it small so RSS measures live memory
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=4"
h2_start || bail_out "no gateway"
flood() { "$FLOOD" --port "$H2_PORT" "$@" 2>&1; }

v=$(nghttp -v -n -H ":authority: app.example.com" "https://127.0.0.1:$H2_PORT/echo" 2>&1)
like "$v" 'SETTINGS_MAX_CONCURRENT_STREAMS\(0x03\):50\]' "maxConcurrentStreams 50 announced"
like "$v" 'SETTINGS_MAX_HEADER_LIST_SIZE\(0x06\):8192\]' "maxRequestHeadersKb 8 announced"
# 60 streams at once against a limit of 50: 50 answered, 10 refused
out=$(flood open 60 '/slow?ms=500')
like "$out" '^responses 50$' "60 streams at once: 50 served"
like "$out" '^resets 10$' "60 streams at once: 10 refused with RST_STREAM"

# ---- header list size: counted by us, one stream refused, the others served
out=$(flood headers 5 2 10000)
is "$(printf '%s\n' "$out" | grep -c 'status 200')" 4 "other streams on the connection served"
like "$out" '^stream 2 status 431$' "stream with 10 kB of headers over an 8 kB limit: 431"
out=$(flood headers 3 1 7000)
is "$(printf '%s\n' "$out" | grep -c 'status 200')" 3 "7 kB of headers under the 8 kB limit: served"
sleep 0.2
like "$(grep '"response_code":431' "$MG_MESHGATE_LOG")" '"reason":"headers_too_large"' \
    "431 logged with its reason"
like "$(grep '"response_code":431' "$MG_MESHGATE_LOG")" '"protocol":"HTTP/2"' "431 log line says HTTP/2"

# ---- rapid reset (CVE-2023-44487): nghttp2's limit is a burst of 1000 RSTs
out=$(flood rapid 3000)
like "$out" '^goaway [0-9]+ last' "3000 HEADERS+RST_STREAM: GOAWAY"
like "$out" '^closed$' "rapid reset connection closed"
is "$(h2_curl -o /dev/null -w '%{http_code}' /echo)" 200 "gateway serves others after the reset flood"
out=$(flood rapid 200)
unlike "$out" '^goaway' "200 resets (under the burst): no GOAWAY"
like "$out" '^open$' "200 resets: connection stays open"

# ---- CONTINUATION flood (CVE-2024-28182): at most 8 per header block
out=$(flood continuation 40)
like "$out" '^goaway 11 ' "40 CONTINUATION frames: GOAWAY ENHANCE_YOUR_CALM"
like "$out" '^closed$' "CONTINUATION flood connection closed"
out=$(flood continuation 4)
like "$out" '^responses 1$' "4 CONTINUATION frames: request answered"
is "$(h2_curl -o /dev/null -w '%{http_code}' /echo)" 200 "gateway serves others after the CONTINUATION flood"

# ---- PING flood from a client that reads none of the acks: nghttp2 caps
# queued acks (1000), we stop reading once our output is full, and the
# connection ends; memory stays flat
r0=$(h2_rss)
out=$(flood --linger 6 ping 2000000)
r1=$(h2_rss)
like "$out" '^closed$' "PING flood without reading: connection closed"
ok "PING flood: RSS grew $(((r1 - r0) / 1024)) MB (< 32 MB)" test $(((r1 - r0) / 1024)) -lt 32
is "$(h2_curl -o /dev/null -w '%{http_code}' /echo)" 200 "gateway serves others after the PING flood"

# ---- a header block that never ends (slowloris): requestHeaders timeout
t0=$(date +%s%N)
out=$(flood --linger 6 stall)
el=$((($(date +%s%N) - t0) / 1000000))
like "$out" '^goaway 1 ' "unfinished header block: GOAWAY PROTOCOL_ERROR"
like "$out" '^closed$' "unfinished header block: connection closed"
ok "closed after the 2 s requestHeaders timeout (${el} ms)" test "$el" -ge 1800 -a "$el" -lt 5000

# ---- idle timeout: GOAWAY (NO_ERROR) and close once no stream is open
out=$(flood --linger 6 rapid 1)
like "$out" '^goaway 0 ' "idle connection gets GOAWAY NO_ERROR after 3 s"
like "$out" '^closed$' "idle connection closed"

# ---- a stream whose client stopped reading (window exhausted) is ended
# after the idle timeout without activity, not held forever
out=$(flood --linger 4 noread /bytes/100000000 5)
like "$out" '^goaway 0 ' "stalled reader: GOAWAY after the idle timeout"
like "$out" '^closed$' "stalled reader: connection closed"
sleep 0.3
like "$(grep '"path":"/bytes/100000000"' "$MG_MESHGATE_LOG")" '"response_flags":"SI"' \
    "stalled stream logged with flag SI"

# ---- flow control bounds memory: slow readers of big bodies. A reader at
# 100 kB/s may let the kernel's send buffer stay full for seconds (Linux
# wakes a writer only once a third of it is free), which a 3 s idle timeout
# would take for a stalled peer: restart with a longer one.
mg_stop "$MG_MESHGATE_PID"
sed -i 's/idle: 3s/idle: 60s/' "$H2_CFG/gw.yaml"
h2_start || bail_out "no gateway after the restart"
base=$(h2_rss)
pids=()
for i in 1 2 3 4; do
    h2_curl --max-time 5 --limit-rate 100k -o /dev/null /bytes/1000000000 2>/dev/null &
    pids+=($!)
    _mg_track "$!"
done
sleep 3
peak=$(h2_rss)
sleep 1.5
p2=$(h2_rss)
[ "$p2" -gt "$peak" ] && peak=$p2
for p in "${pids[@]}"; do
    mg_stop "$p" >/dev/null 2>&1
done
grow=$(((peak - base) / 1024))
diag "RSS before ${base} kB, peak ${peak} kB with 4 slow readers of 1 GB each"
ok "RSS grew ${grow} MB (< 64 MB) with 4 slow readers of 1 GB bodies" test "$grow" -lt 64
up_sent=$(grep -c '/bytes/1000000000' "$H2_UP_LOG")
diag "upstream log lines for the slow downloads: $up_sent"
is "$(h2_curl -o /dev/null -w '%{http_code}' /echo)" 200 "gateway serves after the slow readers"
sleep 0.5
is "$(grep '"path":"/bytes/1000000000"' "$MG_MESHGATE_LOG" | grep -c '"response_flags":"DC"')" 4 \
    "slow readers that gave up are logged as DC" ||
    grep '"path":"/bytes/1000000000"' "$MG_MESHGATE_LOG" | diag -

done_testing
