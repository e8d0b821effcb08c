#!/bin/bash
# 83-gateway-tcp-authz.sh - AuthorizationPolicies apply to the gateway's
# PASSTHROUGH and TCP servers once per connection, before any upstream is
# connected (Istio's network RBAC ahead of tcp_proxy): ipBlocks, ports,
# connection.sni, the DENY-drops-HTTP-fields / ALLOW-drops-the-rule
# translation; and a tunnel accepted before a reload that now denies it is
# closed at the drain deadline.
# Regression: gateway tunnels were never authorized - a DENY (or a
# restrictive ALLOW) policy on the gateway let every TCP and PASSTHROUGH
# connection through to its upstream; and a splice lived on after a
# reload for as long as its peers kept it open.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/dp_common.sh"

mg_pki || bail_out "cannot make a PKI"
P=$MG_PKI
mg_start_upstream --name tls1 --tls-cert "$P/server.crt" --tls-key "$P/server.key" || bail_out "tls upstream"
utls=$MG_UPSTREAM_PORT
mg_start_upstream --name plain || bail_out "plain upstream"
uplain=$MG_UPSTREAM_PORT
pt=$(mg_free_port)
tcp1=$(mg_free_port)
tcp2=$(mg_free_port)
tcp3=$(mg_free_port)
export MG_ADMIN=127.0.0.1:$(mg_free_port)
cfg=$(mg_tmpdir cfg)
dp_proxy "$cfg" "$MG_ADMIN" JSON
sed -i 's/^  workers: 2/  workers: 1/; s/drain: 10s/drain: 2s/' "$cfg/00-proxy.yaml"
cat >"$cfg/gw.yaml" <<YAML
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: tls, namespace: istio-system}
spec:
  hosts: ["tls.internal"]
  ports: [{number: 443, name: tls, protocol: TLS}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {tls: $utls}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: plain, namespace: istio-system}
spec:
  hosts: ["plain.internal"]
  ports: [{number: 9000, name: tcp, protocol: TCP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {tcp: $uplain}}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: $pt, name: tls, protocol: TLS}
    hosts: ["*.example.com"]
    tls: {mode: PASSTHROUGH}
  - port: {number: $tcp1, name: tcp1, protocol: TCP}
    hosts: ["*"]
  - port: {number: $tcp2, name: tcp2, protocol: TCP}
    hosts: ["*"]
  - port: {number: $tcp3, name: tcp3, protocol: TCP}
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: pt, namespace: istio-system}
spec:
  hosts: ["*.example.com"]
  gateways: ["gw"]
  tls:
  - match: [{sniHosts: ["*.example.com"]}]
    route: [{destination: {host: tls.internal, port: {number: 443}}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: tcp, namespace: istio-system}
spec:
  hosts: ["*"]
  gateways: ["gw"]
  tcp:
  - match: [{port: $tcp1}]
    route: [{destination: {host: plain.internal, port: {number: 9000}}}]
  - match: [{port: $tcp2}]
    route: [{destination: {host: plain.internal, port: {number: 9000}}}]
  - match: [{port: $tcp3}]
    route: [{destination: {host: plain.internal, port: {number: 9000}}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-sni, namespace: istio-system}
spec:
  action: DENY
  rules:
  - when: [{key: connection.sni, values: ["secret.example.com"]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-port, namespace: istio-system}
spec:
  action: DENY
  rules:
  - to: [{operation: {ports: ["$tcp2"]}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-get-tcp3, namespace: istio-system}
spec:
  action: DENY
  rules:
  - to: [{operation: {methods: ["GET"], ports: ["$tcp3"]}}]
YAML
ok "gateway starts" mg_start_meshgate "$cfg"
pid=$MG_MESHGATE_PID
C=(--http1.1 --cacert "$P/root-cert.pem")

is "$(mg_json_field "$(mg_curl "${C[@]}" "https://app.example.com:$pt/echo")" upstream)" tls1 \
    "PASSTHROUGH, SNI app.example.com: spliced"
is "$(mg_http_code "${C[@]}" "https://secret.example.com:$pt/echo")" 000 \
    "PASSTHROUGH, DENY connection.sni secret.example.com: closed"
is "$(mg_json_field "$(mg_curl "http://127.0.0.1:$tcp1/echo")" upstream)" plain "TCP server, no policy matches: spliced"
is "$(mg_raw "$tcp2" 'GET /echo HTTP/1.1\r\nHost: x\r\n\r\n' 2)" "" "TCP server, DENY ports: closed with no bytes"
is "$(mg_raw "$tcp3" 'POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n' 2)" "" \
    "TCP server, DENY methods GET + ports: the HTTP field is dropped, every connection denied"
ok "denials logged with the deciding policy" \
    dp_wait_log "$DP_ACCESS_LOG" '"protocol":"TCP".*"reason":"rbac_policy","authz_policy":"istio-system.deny-port"'

# ---- a certificate rotation (the file watch reloads) cuts no tunnel
exec 6<>"/dev/tcp/127.0.0.1/$tcp1"
printf 'GET /echo HTTP/1.1\r\nHost: x\r\n\r\n' >&6
read -r -t 3 line <&6
like "$line" '^HTTP/1.1 200' "tunnel on $tcp1 open before a certificate rotation"
timeout 3 cat <&6 >/dev/null 2>&1 &     # drain the rest of that answer
sleep 1.1
touch "$P/server.crt"
ok "the watch reloads for the rotated certificate" mg_wait_log "$MG_MESHGATE_LOG" "generation 2 active" 10
sleep 3                                 # past the 2 s drain deadline
(printf 'GET /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' >&6) 2>/dev/null
rest=$(timeout 3 cat <&6 2>/dev/null | grep -a '^HTTP/1.1 200')
exec 6<&-
like "$rest" '^HTTP/1.1 200' "the tunnel survived the rotation (no recycling without a configuration change)"

# ---- a tunnel opened before a reload that denies it
exec 5<>"/dev/tcp/127.0.0.1/$tcp1"
printf 'GET /echo HTTP/1.1\r\nHost: x\r\n\r\n' >&5
read -r -t 3 line <&5
like "$line" '^HTTP/1.1 200' "tunnel on $tcp1 open, first request through"
cat >"$cfg/deny1.yaml" <<YAML
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-tcp1, namespace: istio-system}
spec:
  action: DENY
  rules:
  - to: [{operation: {ports: ["$tcp1"]}}]
YAML
kill -HUP "$pid"
ok "reload adds DENY ports $tcp1" mg_wait_log "$MG_MESHGATE_LOG" "generation 3 active" 5
is "$(mg_raw "$tcp1" 'GET /echo HTTP/1.1\r\nHost: x\r\n\r\n' 2)" "" "a new tunnel on $tcp1: closed"
sleep 3                                 # the 2 s drain deadline
(printf 'GET /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' >&5) 2>/dev/null   # SIGPIPE hits the subshell only
rest=$(timeout 3 cat <&5 2>/dev/null | grep -a '^HTTP/1.1 200')
exec 5<&-
is "$rest" "" "the old tunnel was closed at the drain deadline"
is "$(mg_json_field "$(mg_curl "${C[@]}" "https://app.example.com:$pt/echo")" upstream)" tls1 "the gateway still serves"

done_testing
