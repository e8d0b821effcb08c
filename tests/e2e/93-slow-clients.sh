#!/bin/bash
# 93-slow-clients.sh - slow and stalled HTTP/1 clients are bounded by the
# Proxy timeouts: a head trickled a byte at a time is cut at requestHeaders
# (counted from its first byte, not reset by each byte), and a request body
# that stops arriving is ended after the idle timeout (408, connection and
# upstream request closed), as Envoy's stream idle timeout does.
# Regression: a stalled body held the downstream connection and an
# upstream connection forever.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/dp_common.sh"

mg_pki || bail_out "cannot make a PKI"
mg_start_upstream --name v1 || bail_out "upstream"
up=$MG_UPSTREAM_PORT
http=$(mg_free_port)
export MG_ADMIN=127.0.0.1:$(mg_free_port)
cfg=$(mg_tmpdir cfg)
dp_proxy "$cfg" "$MG_ADMIN" JSON
sed -i 's/^  timeouts: .*/  timeouts: {handshake: 2s, requestHeaders: 2s, idle: 2s, drain: 5s}/' "$cfg/00-proxy.yaml"
dp_service "$cfg" backend backend.local "$up"
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
  http: [{name: main, route: [{destination: {host: backend.local}}]}]
YAML
ok "gateway starts" mg_start_meshgate "$cfg"

# trickle TEXT one byte every DELAY seconds, for at most LIMIT seconds; prints
# what came back and the elapsed ms on the last line
trickle() {
    local text=$1 delay=$2 limit=$3 out=$MG_TMP/trickle.$RANDOM start
    start=$(date +%s%N)
    (
        exec 3<>"/dev/tcp/127.0.0.1/$http" || exit 1
        timeout "$limit" cat <&3 >"$out" &
        for ((i = 0; i < ${#text}; i++)); do
            printf '%s' "${text:i:1}" >&3 2>/dev/null || break
            kill -0 $! 2>/dev/null || break
            sleep "$delay"
        done
        wait $!
    ) 2>/dev/null
    cat "$out"
    echo
    echo $((($(date +%s%N) - start) / 1000000))
}

# slowloris: 60 bytes of head at 0.1 s each would take 6 s
out=$(trickle $'GET /echo HTTP/1.1\r\nHost: app.local\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaa\r\n\r\n' 0.1 10)
el=${out##*$'\n'}
like "$out" '^HTTP/1.1 408' "head trickled a byte at a time: 408"
ok "cut at the 2 s requestHeaders bound, not reset per byte (${el} ms)" test "$el" -ge 1800 -a "$el" -lt 4500

# a Content-Length body that stops after 3 of 100 bytes
start=$(date +%s%N)
out=$(mg_raw "$http" 'POST /echo HTTP/1.1\r\nHost: app.local\r\nContent-Length: 100\r\n\r\nabc' 10)
el=$((($(date +%s%N) - start) / 1000000))
like "$(echo "$out" | head -n 1)" '^HTTP/1.1 408' "stalled Content-Length body: 408"
ok "ended after about the 2 s idle timeout (${el} ms)" test "$el" -ge 1800 -a "$el" -lt 6000

# a chunked body that stops in the middle of a chunk
start=$(date +%s%N)
out=$(mg_raw "$http" 'POST /echo HTTP/1.1\r\nHost: app.local\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nabc' 10)
el=$((($(date +%s%N) - start) / 1000000))
like "$(echo "$out" | head -n 1)" '^HTTP/1.1 408' "stalled chunked body: 408"
ok "ended after about the 2 s idle timeout (${el} ms)" test "$el" -ge 1800 -a "$el" -lt 6000

# a body that keeps coming (slowly, but each piece within the idle timeout) completes
start=$(date +%s%N)
out=$( (
    exec 3<>"/dev/tcp/127.0.0.1/$http" || exit 1
    printf 'POST /echo HTTP/1.1\r\nHost: app.local\r\nContent-Length: 8\r\nConnection: close\r\n\r\n' >&3
    for p in ab cd ef gh; do sleep 0.7; printf '%s' "$p" >&3; done
    timeout 5 cat <&3
) 2>/dev/null)
like "$(echo "$out" | head -n 1)" '^HTTP/1.1 200' "a slow body with no pause over the idle timeout: 200"
like "$out" '"body_length":8' "... all 8 bytes reached the upstream"

ok "stalled bodies logged with their reason" \
    dp_wait_log "$DP_ACCESS_LOG" '"reason":"request_body_timeout".*"response_code":408'
is "$(mg_raw "$http" 'GET /echo HTTP/1.1\r\nHost: app.local\r\nConnection: close\r\n\r\n' 3 | head -n 1 | tr -d '\r')" \
    "HTTP/1.1 200 OK" "the gateway still serves"

done_testing
