#!/bin/bash
# 27-limits.sh - Proxy.spec timeouts and limits through the real binary:
# requestHeaders (a slow head gets 408 and is closed), idle keep-alive
# close, handshake timeout, and limits.maxConnections.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/dp_common.sh"

mg_pki || bail_out "cannot make a PKI"
mg_start_upstream --name v1 || bail_out "upstream"
up=$MG_UPSTREAM_PORT
http=$(mg_free_port)
https=$(mg_free_port)
export MG_ADMIN=127.0.0.1:$(mg_free_port)
cfg=$(mg_tmpdir cfg)
dp_proxy "$cfg" "$MG_ADMIN" JSON
sed -i 's/^  timeouts: .*/  timeouts: {handshake: 1s, requestHeaders: 1s, idle: 1s, drain: 5s}\n  limits: {maxConnections: 3}/' \
    "$cfg/00-proxy.yaml"
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
  - port: {number: $https, name: https, protocol: HTTPS}
    hosts: ["app.example.com"]
    tls: {mode: SIMPLE, credentialName: app-cert}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: app, namespace: istio-system}
spec:
  hosts: ["app.local", "app.example.com"]
  gateways: ["gw"]
  http: [{name: main, route: [{destination: {host: backend.local}}]}]
YAML
ok "gateway starts" mg_start_meshgate "$cfg"

# a head that never completes
start=$(date +%s%N)
out=$(mg_raw "$http" 'GET /echo HTTP/1.1\r\nHost: app.local\r\n' 4)
el=$((($(date +%s%N) - start) / 1000000))
like "$(echo "$out" | head -n 1)" '^HTTP/1.1 408' "incomplete head: 408 after requestHeaders"
ok "closed after about 1 s (${el} ms)" test "$el" -ge 900 -a "$el" -lt 3500

# idle keep-alive connection is closed by the gateway
start=$(date +%s%N)
out=$(mg_raw "$http" 'GET /echo HTTP/1.1\r\nHost: app.local\r\n\r\n' 5)
el=$((($(date +%s%N) - start) / 1000000))
like "$out" '^HTTP/1.1 200' "keep-alive request answered"
ok "idle connection closed after about 1 s (${el} ms)" test "$el" -ge 900 -a "$el" -lt 4000

# TLS handshake timeout: connect and send nothing
start=$(date +%s%N)
( exec 3<>"/dev/tcp/127.0.0.1/$https"; timeout 5 cat <&3 >/dev/null ) 2>/dev/null
el=$((($(date +%s%N) - start) / 1000000))
ok "silent TLS client dropped after the handshake timeout (${el} ms)" test "$el" -ge 900 -a "$el" -lt 4000

# maxConnections: 3 held open, the 4th is refused, a slot frees on close
for i in 1 2 3; do
    exec {fd}<>"/dev/tcp/127.0.0.1/$http"
    eval "held$i=$fd"
done
sleep 0.2
is "$(mg_http_code "http://app.local:$http/echo")" 000 "4th connection refused at maxConnections 3"
eval "exec $held1>&-"
sleep 0.3
is "$(mg_http_code "http://app.local:$http/echo")" 200 "a freed slot is usable again"
eval "exec $held2>&- $held3>&-"

# out of descriptors: accepting pauses (no busy loop) and resumes
mg_stop "$MG_MESHGATE_PID"
sed -i 's/maxConnections: 3/maxConnections: 0/; s/requestHeaders: 1s/requestHeaders: 30s/' "$cfg/00-proxy.yaml"
cat >"$MG_TMP/lowfd.sh" <<SH
#!/bin/bash
ulimit -n 64
exec "$MESHGATE" "\$@"
SH
chmod +x "$MG_TMP/lowfd.sh"
MESHGATE=$MG_TMP/lowfd.sh ok "gateway starts with 64 descriptors" mg_start_meshgate "$cfg"
lowpid=$MG_MESHGATE_PID
fds=()
for ((i = 0; i < 80; i++)); do
    exec {fd}<>"/dev/tcp/127.0.0.1/$http" 2>/dev/null || break
    fds+=("$fd")
done
sleep 0.3
t0=$(awk '{print $14 + $15}' "/proc/$lowpid/stat")
sleep 1
t1=$(awk '{print $14 + $15}' "/proc/$lowpid/stat")
ok "no busy loop while out of descriptors ($((t1 - t0)) ticks in 1 s)" test $((t1 - t0)) -lt 30
for fd in "${fds[@]}"; do eval "exec $fd>&-"; done
sleep 0.8
is "$(mg_http_code "http://app.local:$http/echo")" 200 "accepting resumes once descriptors are free"

done_testing
