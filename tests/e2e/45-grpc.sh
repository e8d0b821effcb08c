#!/bin/bash
# 45-grpc.sh - gRPC through the gateway over HTTP/2: a unary call with its
# trailers (grpc-status, grpc-message) relayed in the HEADERS frame that
# ends the stream and te: trailers reaching the upstream; a bidirectional
# stream echoed chunk by chunk (nothing buffered either way); the
# gateway's own answers to gRPC requests in gRPC's shape (HTTP 200 with
# grpc-status: denied 7, no route 12, dead upstream 14, deadline 4) while
# other clients keep the HTTP status; grpc-timeout bounded by the route
# timeout; istio_requests_total's grpc_response_status and the access log.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/dp_common.sh"

mg_pki || bail_out "cannot make a PKI"
P=$MG_PKI
mg_start_upstream --name grpc --h2 || bail_out "h2c upstream"
up=$MG_UPSTREAM_PORT
dead=$(mg_free_port)
https=$(mg_free_port)
export MG_ADMIN=127.0.0.1:$(mg_free_port)
cfg=$(mg_tmpdir cfg)
dp_proxy "$cfg" "$MG_ADMIN" JSON
log=$DP_ACCESS_LOG
cat >"$cfg/gw.yaml" <<YAML
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: grpc, namespace: istio-system}
spec:
  hosts: [grpc.local]
  ports: [{number: 80, name: grpc, protocol: GRPC}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {grpc: $up}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: dead, namespace: istio-system}
spec:
  hosts: [dead.local]
  ports: [{number: 80, name: grpc, protocol: GRPC}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {grpc: $dead}}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: $https, name: https, protocol: HTTPS}
    hosts: ["*"]
    tls: {mode: SIMPLE, credentialName: app-cert}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: app, namespace: istio-system}
spec:
  hosts: [app.example.com]
  gateways: [gw]
  http:
  - name: slow
    match: [{uri: {prefix: /slow}}]
    timeout: 1s
    route: [{destination: {host: grpc.local}}]
  - name: dead
    match: [{uri: {prefix: /svc.Dead/}}]
    route: [{destination: {host: dead.local}}]
  - name: svc
    match: [{uri: {prefix: /svc.}}, {uri: {prefix: /stream}}]
    route: [{destination: {host: grpc.local}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-denied, namespace: istio-system}
spec:
  selector: {matchLabels: {istio: ingressgateway}}
  action: DENY
  rules: [{to: [{operation: {paths: ["/svc.Denied/*"]}}]}]
YAML

ok "gateway starts" mg_start_meshgate "$cfg"

msg=$(mg_tmpdir msg)/m
printf '\0\0\0\0\5hello' >"$msg"        # one length-prefixed gRPC message
call() {  # PATH [nghttp options...]: a gRPC call, nghttp -v output
    local path=$1
    shift
    nghttp -v -t 10 -H ':authority: app.example.com' -H 'content-type: application/grpc' \
        -H 'te: trailers' -d "$msg" "$@" "https://127.0.0.1:$https$path" 2>&1
}
# the fields of the last HEADERS frame the client received, one per line
# (nghttp prints a frame's fields before the frame's own line)
last_headers() {
    awk '/recv \(stream_id=[0-9]+\)/ { sub(/.*\) /, ""); cur = cur $0 "\n" }
         /recv HEADERS frame/ { blk = cur; cur = "" } END { printf "%s", blk }'
}

# --- unary: trailers relayed, te: trailers kept
out=$(call '/svc.Echo/Unary?trailer=grpc-status:0')
like "$out" 'recv \(stream_id=[0-9]*\) :status: 200' "unary call answered 200"
like "$out" '"body_length":10' "... the message reached the upstream"
like "$out" '\["te","trailers"\]' "... with te: trailers"
like "$out" 'recv \(stream_id=[0-9]*\) grpc-status: 0' "... the upstream's grpc-status trailer relayed"
like "$(echo "$out" | grep -A1 'grpc-status: 0')" 'HEADERS frame <[^>]*flags=0x05' \
    "... in the HEADERS frame that ends the stream"
out=$(call '/svc.Echo/Fail?trailer=grpc-message:not-here')
like "$out" 'recv \(stream_id=[0-9]*\) grpc-message: not-here' "a grpc-message trailer relayed"

# --- the gateway's own answers, gRPC-shaped
out=$(call /svc.Denied/Call)
h=$(echo "$out" | last_headers)
like "$h" ':status: 200' "denied gRPC call: HTTP 200"
like "$h" 'grpc-status: 7' "... grpc-status 7 PERMISSION_DENIED"
like "$h" 'grpc-message: RBAC: access denied' "... grpc-message from the refusal"
like "$h" 'content-type: application/grpc' "... content-type application/grpc"
like "$(echo "$out" | grep -B1 'grpc-status: 7' | head -1)$(echo "$out" | grep 'recv HEADERS frame' | tail -1)" \
    'flags=0x05' "... trailers-only: one HEADERS frame ending the stream"
unlike "$out" 'recv DATA frame' "... and no DATA"
is "$(nghttp -v -H ':authority: app.example.com' "https://127.0.0.1:$https/svc.Denied/Call" 2>&1 |
      grep -o ':status: [0-9]*' | tail -1)" ":status: 403" "the same path without gRPC: 403"
is "$(curl -sS --http1.1 -k -o /dev/null -w '%{http_code}' -H 'content-type: application/grpc-web' \
      --resolve "app.example.com:$https:127.0.0.1" "https://app.example.com:$https/svc.Denied/Call")" 403 \
    "grpc-web is not gRPC: 403"
h=$(call /nowhere | last_headers)
like "$h" 'grpc-status: 12' "no route: grpc-status 12 UNIMPLEMENTED"
like "$h" ':status: 200' "... HTTP 200"
h=$(call /svc.Dead/Call | last_headers)
like "$h" 'grpc-status: 14' "dead upstream: grpc-status 14 UNAVAILABLE"
like "$h" 'grpc-message: upstream connect error' "... with Envoy's message"
h=$(curl -sS --http1.1 -k -D - -o /dev/null -H 'content-type: application/grpc+proto' \
      --resolve "app.example.com:$https:127.0.0.1" "https://app.example.com:$https/svc.Denied/Call")
like "$h" 'HTTP/1.1 200' "HTTP/1.1 gRPC-ish client (application/grpc+proto): 200 too"
like "$h" 'grpc-status: 7' "... grpc-status 7"

# --- deadlines: grpc-timeout below the route timeout wins, above it is capped
t0=$(date +%s%N)
h=$(call '/slow?ms=3000' -H 'grpc-timeout: 300m' | last_headers)
t1=$(date +%s%N)
like "$h" 'grpc-status: 4' "grpc-timeout 300m on a slow upstream: grpc-status 4 DEADLINE_EXCEEDED"
ms=$(((t1 - t0) / 1000000))
ok "... after the client's deadline, not the route's 1s ($ms ms)" test "$ms" -lt 900
t0=$(date +%s%N)
h=$(call '/slow?ms=3000' -H 'grpc-timeout: 10S' | last_headers)
t1=$(date +%s%N)
ms=$(((t1 - t0) / 1000000))
like "$h" 'grpc-status: 4' "grpc-timeout 10S: the route timeout (1s) still bounds it"
ok "... at about 1s ($ms ms)" test "$ms" -ge 900 -a "$ms" -lt 2500
h=$(call '/slow?ms=200' -H 'grpc-timeout: 5S' | last_headers)
unlike "$h" 'grpc-status' "a call within its deadline is answered by the upstream"

# --- bidirectional streaming: messages echoed while the request is still
# open. curl blocks reading its stdin between messages and handles what
# arrived only after the next one, so message i is looked for once message
# i+1 is written: a gateway that buffered either direction until the
# request's end would show nothing before the stream ends.
dir=$(mg_tmpdir bidi)
mkfifo "$dir/in"
curl -sS -N --http2 --max-time 20 --cacert "$P/root-cert.pem" -X POST -T - \
    -H 'content-type: application/grpc' -H 'te: trailers' \
    --resolve "app.example.com:$https:127.0.0.1" \
    "https://app.example.com:$https/stream?trailer=grpc-status:0" <"$dir/in" >"$dir/out" 2>"$dir/err" &
cpid=$!
exec 3>"$dir/in"
echoed=0
printf 'ping1;' >&3
for i in 2 3 4 5; do
    sleep 0.2
    printf 'ping%d;' "$i" >&3
    for ((k = 0; k < 50; k++)); do
        grep -q "ping$((i - 1));" "$dir/out" 2>/dev/null && break
        sleep 0.1
    done
    grep -q "ping$((i - 1));" "$dir/out" && echoed=$((echoed + 1))
done
exec 3>&-
wait "$cpid"
rc=$?
is "$echoed" 4 "bidirectional stream: 4 messages echoed back while the request stayed open"
is "$(cat "$dir/out")" "ping1;ping2;ping3;ping4;ping5;" "... all 5, in order, intact"
is "$rc" 0 "... and the stream ended cleanly"
ok "... with the upstream's trailer logged as the status" \
    dp_wait_log "$log" '"path":"/stream[^"]*".*"grpc_status":0'

# --- metrics and the access log
ok "istio_requests_total: grpc_response_status 7 for the denied call" \
    test "$(mg_metric istio_requests_total 'response_code="200".*grpc_response_status="7"')" -ge 1
ok "... 0 from the upstream's trailer" \
    test "$(mg_metric istio_requests_total 'grpc_response_status="0"')" -ge 1
ok "... 4 for the deadlines" \
    test "$(mg_metric istio_requests_total 'response_flags_reason="upstream_timeout",grpc_response_status="4"')" -ge 2
ok "... empty for a plain request" \
    test "$(mg_metric istio_requests_total 'response_code="403".*grpc_response_status=""')" -ge 1
ok "access log: the denied call with its gRPC status" \
    dp_wait_log "$log" '"path":"/svc.Denied/Call".*"grpc_status":7.*"response_code":200'

done_testing
