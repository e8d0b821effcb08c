#!/bin/bash
# 47-fault.sh - VirtualService fault injection as Envoy's fault filter:
# fixedDelay and abort (httpStatus, grpcStatus) for their configured share
# of requests (within a wide statistical tolerance), a delay then an abort
# on the same request, after authorization (a denied request is never
# delayed or aborted), the response flags DI and FI in the access log; an
# unset percentage injects nothing, as in Istio; `meshgate check` accepts
# fault without a warning. Also the route's retry conditions (retryOn) that
# fault-tolerant clients rely on: retriable-4xx, numeric status codes,
# envoy-ratelimited, the gRPC ones on a trailers-only error, and an unknown
# condition refused by `meshgate check`.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/dp_common.sh"

mg_pki || bail_out "cannot make a PKI"
mg_start_upstream --name up || bail_out "upstream"
up=$MG_UPSTREAM_PORT
UP_LOG=$MG_UPSTREAM_LOG
http=$(mg_free_port)
export MG_ADMIN=127.0.0.1:$(mg_free_port)
cfg=$(mg_tmpdir cfg)
dp_proxy "$cfg" "$MG_ADMIN" JSON
log=$DP_ACCESS_LOG
dp_service "$cfg" app app.svc "$up"
route() {  # NAME FAULT_YAML
    echo "  - {name: $1, match: [{uri: {prefix: /$1/}}], fault: $2, route: [{destination: {host: app.svc}}]}"
}
{
    cat <<YAML
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: $http, name: http, protocol: HTTP}
    hosts: ["*"]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny, namespace: istio-system}
spec:
  selector: {matchLabels: {istio: ingressgateway}}
  action: DENY
  rules: [{to: [{operation: {paths: ["/abort/denied", "/delay/denied"]}}]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: app, namespace: istio-system}
spec:
  hosts: [app.example.com]
  gateways: [gw]
  http:
YAML
    route delay "{delay: {fixedDelay: 400ms, percentage: {value: 100}}}"
    route halfdelay "{delay: {fixedDelay: 150ms, percentage: {value: 50}}}"
    route nodelay "{delay: {fixedDelay: 2s}}"
    route abort "{abort: {httpStatus: 418, percentage: {value: 100.0}}}"
    route halfabort "{abort: {httpStatus: 503, percent: 50}}"
    route tenth "{abort: {httpStatus: 503, percentage: {value: 10}}}"
    route grpc "{abort: {grpcStatus: UNAVAILABLE, percentage: {value: 100}}}"
    route both "{delay: {fixedDelay: 300ms, percentage: {value: 100}}, abort: {httpStatus: 503, percentage: {value: 100}}}"
    retry() {  # NAME RETRY_ON
        echo "  - {name: $1, match: [{uri: {prefix: /$1/}}], rewrite: {uri: /}, retries: {attempts: 2, retryOn: '$2', retryRemoteLocalities: true}, route: [{destination: {host: app.svc}}]}"
    }
    retry r4xx retriable-4xx
    retry rcode "5xx,429"
    retry rnone gateway-error
    retry rlim envoy-ratelimited
    retry rgrpc "unavailable,cancelled"
} >"$cfg/gw.yaml"

out=$("$MESHGATE" check -c "$cfg" 2>&1)
is "$?" 0 "meshgate check accepts fault and the retry conditions"
unlike "$out" '"fault".*not supported' "... without an 'ignored' warning"
unlike "$out" 'retryRemoteLocalities' "... retryRemoteLocalities accepted (every endpoint is a candidate)"
bad=$(mg_tmpdir bad)
cp "$cfg"/*.yaml "$bad/"
sed -i 's|{abort: {httpStatus: 418, percentage: {value: 100.0}}}|{abort: {percentage: {value: 170}}}|' "$bad/gw.yaml"
out=$("$MESHGATE" check -c "$bad" 2>&1)
is "$?" 1 "an abort without a status and a percentage over 100 are errors"
like "$out" 'gw.yaml:[0-9]+:[0-9]+: error: .*needs httpStatus or grpcStatus' "... with their position"
like "$out" 'invalid value "170"' "... both of them"
sed -i "s/retryOn: 'retriable-4xx'/retryOn: 'retriable-4xx,sometimes'/" "$bad/gw.yaml"
like "$("$MESHGATE" check -c "$bad" 2>&1)" 'error: .*unknown retryOn condition "sometimes"' \
    "an unknown retryOn condition is an error"
ok "gateway starts" mg_start_meshgate "$cfg"

U=http://app.example.com:$http
t() { mg_curl -o /dev/null -w '%{http_code} %{time_total}' "$U$1"; }
ms() { awk -v s="$1" 'BEGIN { printf "%d", s * 1000 }'; }

# --- delay
read -r code tt <<<"$(t /delay/x)"
is "$code" 200 "fixedDelay 400ms at 100%: the upstream's answer"
ok "... after the delay ($(ms "$tt") ms)" test "$(ms "$tt")" -ge 400
read -r code tt <<<"$(t /nodelay/x)"
ok "a delay without percentage: none injected ($(ms "$tt") ms)" test "$(ms "$tt")" -lt 1000
is "$code" 200 "... 200"
read -r code tt <<<"$(t /delay/denied)"
is "$code" 403 "a denied request: 403"
ok "... not delayed: authorization comes first ($(ms "$tt") ms)" test "$(ms "$tt")" -lt 300

# --- abort
h=$(mg_curl -D - "$U/abort/x")
like "$h" '^HTTP/1.1 418' "abort httpStatus 418 at 100%"
like "$h" 'fault filter abort' "... with Envoy's body"
is "$(mg_http_code "$U/abort/denied")" 403 "a denied request is refused, not aborted"
before=$(grep -c 'GET /abort/' "$UP_LOG")
is "$before" 0 "the upstream never saw the aborted requests"
h=$(mg_curl -D - -o /dev/null "$U/grpc/x")
like "$h" '^HTTP/1.1 200' "abort grpcStatus UNAVAILABLE: HTTP 200"
like "$h" 'grpc-status: 14' "... grpc-status 14"
like "$h" 'content-type: application/grpc' "... a gRPC answer"
read -r code tt <<<"$(t /both/x)"
is "$code" 503 "delay and abort on one request: aborted"
ok "... after the delay ($(ms "$tt") ms)" test "$(ms "$tt")" -ge 300

# --- shares (one curl, every URL's body then its status on a line of its own): 200 requests at 50% and 10% (tolerances > 4 standard deviations)
urls=()
for ((i = 0; i < 200; i++)); do urls+=("$U/halfabort/$i"); done
n=$(mg_curl --max-time 60 -w '\n%{http_code}\n' "${urls[@]}" | grep -c '^503$')
ok "abort percent 50: $n of 200 aborted (want 70..130)" test "$n" -ge 70 -a "$n" -le 130
urls=()
for ((i = 0; i < 200; i++)); do urls+=("$U/tenth/$i"); done
n=$(mg_curl --max-time 60 -w '\n%{http_code}\n' "${urls[@]}" | grep -c '^503$')
ok "abort percentage 10: $n of 200 aborted (want 4..40)" test "$n" -ge 4 -a "$n" -le 40
urls=()
for ((i = 0; i < 40; i++)); do urls+=("$U/halfdelay/$i"); done
n=$(mg_curl --max-time 60 -w '\n@%{time_total}\n' "${urls[@]}" | awk '/^@/ && substr($1, 2) >= 0.15' | wc -l)
ok "delay percentage 50: $n of 40 delayed (want 8..32)" test "$n" -ge 8 -a "$n" -le 32

# --- retry conditions: 1 try + 2 retries reach the upstream when the condition holds
tries() { grep -c "GET $1 " "$UP_LOG"; }
is "$(mg_http_code "$U/r4xx/status/409")" 409 "retriable-4xx: the last 409 relayed"
is "$(tries /status/409)" 3 "... after 2 retries"
is "$(mg_http_code "$U/r4xx/status/429")" 429 "retriable-4xx is 409 only: 429 not retried"
is "$(tries /status/429)" 1 "... one try"
mg_http_code "$U/rcode/status/429" >/dev/null
is "$(tries /status/429)" 4 "a numeric retryOn token (429): retried twice"
mg_http_code "$U/rnone/status/500" >/dev/null
is "$(tries /status/500)" 1 "gateway-error does not cover 500"
mg_http_code "$U/rlim/status/429?resp-header=x-envoy-ratelimited:true" >/dev/null
is "$(grep -c 'GET /status/429?resp-header=x-envoy' "$UP_LOG")" 3 "envoy-ratelimited: retried"
mg_http_code "$U/rgrpc/status/200?resp-header=grpc-status:14" >/dev/null
is "$(grep -c 'grpc-status:14' "$UP_LOG")" 3 "gRPC unavailable (grpc-status 14 on a 200 head): retried"
mg_http_code "$U/rgrpc/status/200?resp-header=grpc-status:5" >/dev/null
is "$(grep -c 'grpc-status:5 ' "$UP_LOG")" 1 "gRPC NOT_FOUND: not retried"

# --- the access log
ok "access log: a delayed request flagged DI" dp_wait_log "$log" '"path":"/delay/x".*"response_flags":"DI"'
ok "access log: an aborted one FI, reason fault_abort" \
    dp_wait_log "$log" '"path":"/abort/x".*"response_flags":"FI".*"reason":"fault_abort".*"response_code":418'
ok "access log: both DI,FI" dp_wait_log "$log" '"path":"/both/x".*"response_flags":"DI,FI"'

done_testing
