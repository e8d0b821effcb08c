#!/bin/bash
# 21-http-errors.sh - what a client gets when things go wrong (the README's
# "What a client gets" table): each malformed-request class gives 400/431/505 and a closed
# connection while other connections keep working; no route 404; dead
# upstream 503; slow upstream 504 (route timeout, per-try timeout);
# connection-pool overflow 503 + x-envoy-overloaded; connect failures
# retried on another endpoint; the TEXT access log with reasons.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/dp_common.sh"

mg_pki || bail_out "cannot make a PKI"
mg_start_upstream --name v1 || bail_out "upstream"
up=$MG_UPSTREAM_PORT
dead=$(mg_free_port)
http=$(mg_free_port)
export MG_ADMIN=127.0.0.1:$(mg_free_port)
cfg=$(mg_tmpdir cfg)
dp_proxy "$cfg" "$MG_ADMIN" TEXT
sed -i 's/^  timeouts:/  limits: {maxRequestHeadersKb: 8}\n  timeouts:/' "$cfg/00-proxy.yaml"
dp_service "$cfg" backend backend.local "$up"
dp_service "$cfg" dead dead.local "$dead"
dp_service "$cfg" pool pool.local "$up"
dp_service "$cfg" half half.local "$dead" "$up"
cat >"$cfg/gw.yaml" <<YAML
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: $http, name: http, protocol: HTTP}
    hosts: ["app.local"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: app, namespace: istio-system}
spec:
  hosts: ["app.local"]
  gateways: ["gw"]
  http:
  - name: slow
    match: [{uri: {prefix: /slow}}]
    timeout: 1s
    route: [{destination: {host: backend.local}}]
  - name: pertry
    match: [{uri: {prefix: /pertry}}]
    rewrite: {uri: /slow}
    retries: {attempts: 2, perTryTimeout: 300ms, retryOn: 5xx}
    route: [{destination: {host: backend.local}}]
  - name: dead
    match: [{uri: {prefix: /dead}}]
    route: [{destination: {host: dead.local}}]
  - name: pool
    match: [{uri: {prefix: /pool}}]
    rewrite: {uri: /slow}
    route: [{destination: {host: pool.local}}]
  - name: half
    match: [{uri: {prefix: /half}}]
    rewrite: {uri: /echo}
    route: [{destination: {host: half.local}}]
  - name: retry5xx
    match: [{uri: {prefix: /retry5xx}}]
    rewrite: {uri: /status/503}
    retries: {attempts: 2, retryOn: 5xx}
    route: [{destination: {host: backend.local}}]
  - name: nosvc
    match: [{uri: {prefix: /nosvc}}]
    route: [{destination: {host: missing.local, port: {number: 80}}}]
  - name: main
    route: [{destination: {host: backend.local}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: pool, namespace: istio-system}
spec:
  host: pool.local
  trafficPolicy:
    connectionPool:
      tcp: {maxConnections: 1}
      http: {http1MaxPendingRequests: 1}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: half, namespace: istio-system}
spec:
  host: half.local
  trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}
YAML

ok "gateway starts" mg_start_meshgate "$cfg"
url=http://app.local:$http

# a long request in flight on its own connection while the bad ones arrive
mg_curl -o "$MG_TMP/inflight" -w '%{http_code}' "$url/slow?ms=900" >"$MG_TMP/inflight.code" &
inflight=$!

status_of() { mg_raw "$http" "$1" 3 | head -n 1 | tr -d '\r'; }
check_bad() {   # NAME REQUEST WANT_STATUS
    local out
    out=$(mg_raw "$http" "$2" 3)
    like "$(echo "$out" | head -n 1 | tr -d '\r')" "^HTTP/1.1 $3 " "$1 -> $3"
    like "$out" '^connection: close' "$1: connection closed"
}
check_bad "bare LF line endings" 'GET /echo HTTP/1.1\nHost: app.local\n\n' 400
check_bad "Content-Length with Transfer-Encoding" \
    'POST /echo HTTP/1.1\r\nHost: app.local\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n' 400
check_bad "duplicate Content-Length" \
    'POST /echo HTTP/1.1\r\nHost: app.local\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx' 400
check_bad "obs-fold" 'GET /echo HTTP/1.1\r\nHost: app.local\r\nX-A: a\r\n b\r\n\r\n' 400
check_bad "no Host on HTTP/1.1" 'GET /echo HTTP/1.1\r\nUser-Agent: x\r\n\r\n' 400
check_bad "two Host headers" 'GET /echo HTTP/1.1\r\nHost: app.local\r\nHost: other\r\n\r\n' 400
check_bad "space before colon" 'GET /echo HTTP/1.1\r\nHost : app.local\r\n\r\n' 400
check_bad "%00 in the path" 'GET /echo%00x HTTP/1.1\r\nHost: app.local\r\n\r\n' 400
check_bad "bad chunk size" \
    'POST /echo HTTP/1.1\r\nHost: app.local\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n' 400
check_bad "HTTP/2.0 on the HTTP/1 parser" 'GET /echo HTTP/2.0\r\nHost: app.local\r\n\r\n' 505
big=$(head -c 9000 /dev/zero | tr '\0' a)
check_bad "headers over maxRequestHeadersKb" "GET /echo HTTP/1.1\r\nHost: app.local\r\nX-Big: $big\r\n\r\n" 431

wait "$inflight"
is "$(cat "$MG_TMP/inflight.code")" 200 "the request in flight meanwhile completed"
is "$(mg_http_code "$url/echo")" 200 "new connections keep working"

# routing and upstream failures
out=$(mg_curl -H 'Host: nowhere.local' -D - "$url/echo")
like "$out" '^HTTP/1.1 404' "unknown host: 404"
like "$out" 'no route$' "404 body is 'no route'"
is "$(mg_http_code "$url/dead/x")" 503 "dead upstream: 503"
is "$(mg_http_code "$url/nosvc")" 503 "destination without a ServiceEntry: 503"
start=$(date +%s%N)
is "$(mg_http_code "$url/slow?ms=3000")" 504 "slow upstream beyond the route timeout: 504"
el=$((($(date +%s%N) - start) / 1000000))
ok "504 after about the 1 s route timeout (${el} ms)" test "$el" -ge 900 -a "$el" -lt 2500
start=$(date +%s%N)
is "$(mg_http_code "$url/pertry?ms=1000")" 504 "every try over perTryTimeout: 504"
el=$((($(date +%s%N) - start) / 1000000))
ok "three tries of 300 ms (${el} ms)" test "$el" -ge 850 -a "$el" -lt 2000

is "$(mg_http_code "$url/retry5xx")" 503 "5xx after every retry: the last answer"
is "$(grep -c '/status/503' "$MG_UPSTREAM_LOG")" 3 "retryOn 5xx: 1 try + 2 retries reached the upstream"

codes=""
for i in 1 2 3 4 5 6; do codes="$codes$(mg_http_code "$url/half")"; done
is "$codes" "200200200200200200" "connect failures retried on the other endpoint (default retry policy)"

# pool: 1 connection + 1 pending; the third concurrent request overflows
pids=()
for i in 1 2 3; do
    mg_curl -D "$MG_TMP/pool$i.h" -o /dev/null "$url/pool?ms=800" &
    pids+=($!)
    sleep 0.1
done
wait "${pids[@]}"
ov=$(cat "$MG_TMP"/pool*.h)
is "$(echo "$ov" | grep -c '^HTTP/1.1 200')" 2 "pool: two requests served (one queued)"
is "$(echo "$ov" | grep -c '^HTTP/1.1 503')" 1 "pool: the overflow gets 503"
like "$ov" '^x-envoy-overloaded: true' "overflow carries x-envoy-overloaded: true"

# access log in TEXT
ok "text log line for a proxied request" dp_wait_log "$DP_ACCESS_LOG" '"GET /echo HTTP/1.1" 200 - '
ok "refusals logged with their reason" dp_wait_log "$DP_ACCESS_LOG" '" 431 .* headers_too_large$'
ok "upstream failures logged with flags" dp_wait_log "$DP_ACCESS_LOG" '"GET /dead/x HTTP/1.1" 503 UF '
ok "timeouts logged with UT" dp_wait_log "$DP_ACCESS_LOG" '" 504 UT .* upstream_timeout$'

done_testing
