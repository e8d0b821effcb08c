#!/bin/bash
# 25-http2.sh - HTTP/2 downstream (ALPN h2): requests proxied to an HTTP/1.1
# upstream with headers intact, multi-megabyte bodies both ways (checksummed),
# many concurrent streams on one connection, local replies, access log, and
# GOAWAY on SIGTERM with the in-flight stream finished.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/h2lib.sh"

command -v nghttp >/dev/null || skip_all "nghttp (nghttp2-client) is not installed"
curl --version | grep -q HTTP2 || skip_all "curl without HTTP/2"

h2_setup
h2_start || bail_out "no gateway"

# ---- our SETTINGS and connection window (h2_server.h)
v=$(nghttp -v -n -H ":authority: app.example.com" "https://127.0.0.1:$H2_PORT/echo" 2>&1)
like "$v" 'SETTINGS_MAX_CONCURRENT_STREAMS\(0x03\):100\]' "SETTINGS_MAX_CONCURRENT_STREAMS 100 (default)"
like "$v" 'SETTINGS_INITIAL_WINDOW_SIZE\(0x04\):262144\]' "SETTINGS_INITIAL_WINDOW_SIZE 256 KiB"
like "$v" 'SETTINGS_MAX_HEADER_LIST_SIZE\(0x06\):61440\]' "SETTINGS_MAX_HEADER_LIST_SIZE 60 KiB (default)"
like "$v" 'SETTINGS_ENABLE_PUSH\(0x02\):0\]' "SETTINGS_ENABLE_PUSH 0"
like "$v" 'window_size_increment=983041' "connection window raised to 1 MiB"

# ---- one request: protocol, headers both ways
out=$(h2_curl -w '\n%{http_version}' -H 'x-h2-test: hello' -H 'Cookie: a=1' -H 'Cookie: b=2' \
    '/echo?q=1&resp-header=X-Mixed-Case:v1&resp-header=Keep-Alive:timeout%3D5')
is "$(printf '%s\n' "$out" | tail -n 1)" 2 "curl spoke HTTP/2"
body=$(printf '%s\n' "$out" | head -n 1)
is "$(mg_json_field "$body" method)" GET "method reaches the upstream"
is "$(mg_json_field "$body" path)" '/echo?q=1&resp-header=X-Mixed-Case:v1&resp-header=Keep-Alive:timeout%3D5' \
    ":path with its query reaches the upstream"
is "$(mg_json_field "$body" version)" HTTP/1.1 "upstream request is HTTP/1.1"
ok "custom header forwarded" mg_json_has_header "$body" x-h2-test hello
ok ":authority becomes Host" mg_json_has_header "$body" host "app.example.com:$H2_PORT"
ok "cookie crumbs joined with '; '" mg_json_has_header "$body" cookie "a=1; b=2"
ok "x-forwarded-proto https" mg_json_has_header "$body" x-forwarded-proto https

hdrs=$(h2_curl -D - -o /dev/null '/echo?resp-header=X-Mixed-Case:v1&resp-header=Keep-Alive:timeout%3D5')
like "$hdrs" '^HTTP/2 200' "response status over HTTP/2"
like "$hdrs" '^x-mixed-case: v1' "upstream response header arrives, lower-cased"
like "$hdrs" '^x-upstream: up1' "x-upstream from the upstream"
unlike "$hdrs" '^keep-alive:' "hop-by-hop keep-alive dropped from the response"
like "$hdrs" '^content-length: [0-9]+' "content-length passed on"

# ---- bodies both ways, checksummed
head -c 5000000 /dev/urandom >"$MG_TMP/up.bin"
want=$(sha256sum <"$MG_TMP/up.bin" | cut -d' ' -f1)
body=$(h2_curl --data-binary "@$MG_TMP/up.bin" /echo)
is "$(mg_json_field "$body" body_length)" 5000000 "5 MB upload (content-length): length"
is "$(mg_json_field "$body" body_sha256)" "$want" "5 MB upload (content-length): sha256"
ok "upload with content-length sent with content-length" mg_json_has_header "$body" content-length 5000000

body=$(h2_curl -H 'Transfer-Encoding: chunked' --data-binary "@$MG_TMP/up.bin" /echo)
is "$(mg_json_field "$body" body_sha256)" "$want" "5 MB upload without content-length: sha256"
ok "upload without content-length streamed chunked upstream" \
    mg_json_has_header "$body" transfer-encoding chunked

head -c 300000 /dev/urandom >"$MG_TMP/t.bin"
twant=$(sha256sum <"$MG_TMP/t.bin" | cut -d' ' -f1)
body=$(nghttp -d "$MG_TMP/t.bin" --trailer 'x-trail: 1' -H ":authority: app.example.com" \
    "https://127.0.0.1:$H2_PORT/echo" 2>/dev/null)
is "$(mg_json_field "$body" body_sha256)" "$twant" "upload ended by request trailers: sha256"
fails "request trailers are not merged into the upstream headers" mg_json_has_header "$body" x-trail 1

n=6000000
exp=$(yes abcdefghijklmnopqrstuvwxyz | tr -d '\n' | head -c $n | sha256sum | cut -d' ' -f1)
got=$(h2_curl "/bytes/$n" | sha256sum | cut -d' ' -f1)
is "$got" "$exp" "6 MB download (content-length): sha256"
got=$(h2_curl "/bytes/$n?chunked=1" | sha256sum | cut -d' ' -f1)
is "$got" "$exp" "6 MB download (chunked upstream): sha256"

hdrs=$(h2_curl -I /bytes/1234)
like "$hdrs" '^HTTP/2 200' "HEAD answered"
like "$hdrs" '^content-length: 1234' "HEAD keeps the upstream content-length"

# ---- local replies as HEADERS + DATA
code=$(h2_curl -o "$MG_TMP/nr" -w '%{http_code}' -H 'Host: other.example.com' /x)
is "$code" 404 "unknown host: 404 over HTTP/2"
is "$(cat "$MG_TMP/nr")" "no route" "404 body"

# ---- RFC 9113 request validation (nghttp2's and ours), each followed by a
# good request on the same connection that must still be served
FLOOD=${MG_H2FLOOD_BIN:-$MG_BUILDDIR/tests/helpers/mg_h2flood}
h2req() { "$FLOOD" --port "$H2_PORT" request "$@" 2>&1; }
if [ -x "$FLOOD" ]; then
    out=$(h2req GET /echo te trailers)
    like "$out" '^stream 0 status 200$' "te: trailers accepted"
    for bad in "te gzip" "connection keep-alive" "transfer-encoding chunked" "upgrade h2c" \
        "content-length 5"; do
        # shellcheck disable=SC2086
        out=$(h2req GET /echo $bad)
        like "$out" '^stream 0 (reset [1-9]|status 400)' "refused: $bad"
        like "$out" '^stream 1 status 200$' "connection still serves after: $bad"
    done
    out=$(h2req GET noslash)
    like "$out" '^stream 0 (reset [1-9]|status 400)' "refused: :path not starting with /"
    out=$(h2req GET /echo host evil.example.com)
    like "$out" '^stream 0 status 400$' "Host differing from :authority: 400"
    like "$out" '^stream 1 status 200$' "connection still serves after the 400"
    out=$(h2req GET /echo host app.example.com :authority app.example.com)
    like "$out" '^stream 0 status 200$' "Host equal to :authority accepted"
    out=$(h2req CONNECT '' :authority app.example.com:443)
    like "$out" '^stream 0 status 405$' "CONNECT (no tunnels on the gateway): 405"
else
    skip "no mg_h2flood" 16
fi

# a local reply while the client is still uploading: the body is dropped
# (window given back), the stream ends, and the connection goes on
head -c 3000000 /dev/zero >"$MG_TMP/zero.bin"
nout=$(nghttp -n -s -d "$MG_TMP/zero.bin" -H ":authority: app.example.com" \
    "https://127.0.0.1:$H2_PORT/local" "https://127.0.0.1:$H2_PORT/local2" \
    "https://127.0.0.1:$H2_PORT/echo" 2>&1)
is "$(printf '%s\n' "$nout" | grep -cE ' 403 +[0-9]+ +/local')" 2 "uploads answered locally (403) on one connection"
like "$nout" ' 200 +[0-9]+ +/echo' "the same connection then uploads 3 MB to the upstream"

# ---- many concurrent streams on one connection
nout=$(nghttp -n -s -m 50 -H ":authority: app.example.com" "https://127.0.0.1:$H2_PORT/slow?ms=200" 2>&1)
is "$(printf '%s\n' "$nout" | grep -cE ' 200 +[0-9]')" 50 "50 concurrent streams all 200"
# 50 streams of 200 ms each in well under 50 x 200 ms: they ran in parallel
last=$(printf '%s\n' "$nout" | grep -E ' 200 ' | awk '{ v = $2; sub(/^\+/, "", v); sub(/ms$/, "", v); if (v + 0 > m) m = v + 0 } END { print int(m) }')
ok "streams were multiplexed (slowest ended after ${last} ms)" test "${last:-99999}" -lt 3000

nout=$(nghttp -n -s -m 20 -H ":authority: app.example.com" "https://127.0.0.1:$H2_PORT/bytes/1000000" 2>&1)
is "$(printf '%s\n' "$nout" | grep -cE ' 200 +976K')" 20 "20 concurrent 1 MB downloads complete"

if command -v h2load >/dev/null; then
    hout=$(h2load -n 2000 -c 2 -m 50 --connect-to="127.0.0.1:$H2_PORT" \
        "https://app.example.com:$H2_PORT/echo" 2>&1)
    like "$hout" 'requests: 2000 total, 2000 started, 2000 done, 2000 succeeded' \
        "h2load: 2000 requests over 2 connections x 50 streams all succeed"
    like "$hout" 'status codes: 2000 2xx' "h2load: all 2xx"
else
    skip "h2load not installed" 2
fi

# ---- access log
sleep 0.3
like "$(grep '"path":"/echo?q=1' "$MG_MESHGATE_LOG")" '"protocol":"HTTP/2"' "access log says HTTP/2"
is "$(grep -c '"path":"/slow?ms=200"' "$MG_MESHGATE_LOG")" 50 "one access log line per stream"
like "$(curl -s "http://$MG_ADMIN/stats/prometheus")" 'istio_requests_total\{[^}]*response_code="404"' \
    "local reply counted in metrics"

# ---- graceful stop: GOAWAY, the in-flight stream still completes
nghttp -v -H ":authority: app.example.com" "https://127.0.0.1:$H2_PORT/slow?ms=1500" \
    >"$MG_TMP/drain.txt" 2>&1 &
np=$!
_mg_track "$np"
sleep 0.5
kill -TERM "$MG_MESHGATE_PID"
wait "$np"
drain=$(cat "$MG_TMP/drain.txt")
like "$drain" 'last_stream_id=2147483647, error_code=NO_ERROR' "SIGTERM: shutdown notice GOAWAY first"
like "$drain" 'last_stream_id=13, error_code=NO_ERROR' "then the final GOAWAY naming the last stream"
like "$drain" ':status: 200' "in-flight stream completed after GOAWAY"
for ((i = 0; i < 50; i++)); do
    _mg_alive "$MG_MESHGATE_PID" || break
    sleep 0.1
done
mg_stop "$MG_MESHGATE_PID"
is "$?" 0 "gateway exited 0 after draining" || tail -n 5 "$MG_MESHGATE_LOG" | diag -

done_testing
