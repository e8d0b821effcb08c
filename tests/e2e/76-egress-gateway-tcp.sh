#!/bin/bash
# 76-egress-gateway-tcp.sh - Gateway TCP servers under REGISTRY_ONLY: a plain
# TCP server and a TLS server terminated here (ISTIO_MUTUAL, Istio's
# egress-gateway leg where sidecars wrap the app's bytes in mesh mTLS) are
# routed by VirtualService tcp routes, and each connection's route
# destination (host and port) passes the same egress decision as a Gateway
# HTTP route: registered hosts are spliced, an unregistered host or port
# closes the connection, logged as egress_tcp_<why> with the destination as
# authority and counted. A tcp match for the "mesh" gateway never applies on
# the gateway; a DNS ServiceEntry's name is resolved by the gateway (tcp and
# PASSTHROUGH routes), and refused when it resolves into denyResolvedCidrs;
# AuthorizationPolicy runs per connection with the mTLS principal and
# connection.sni.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"

mg_pki || bail_out "cannot make a PKI"
P=$MG_PKI
mg_start_upstream --name external || bail_out "upstream"
u1=$MG_UPSTREAM_PORT
mg_start_upstream --name db || bail_out "upstream db"
u2=$MG_UPSTREAM_PORT
mg_start_upstream --name tlsup --tls-cert "$P/server.crt" --tls-key "$P/server.key" || bail_out "tls upstream"
u3=$MG_UPSTREAM_PORT
g1=$(mg_free_port)      # TLS ISTIO_MUTUAL -> ext.example.com:443
g2=$(mg_free_port)      # TLS ISTIO_MUTUAL -> evil.example.com:443 (not registered)
g3=$(mg_free_port)      # TCP -> db.example.com:5432
g4=$(mg_free_port)      # TCP -> db.example.com:5433 (port not registered)
g5=$(mg_free_port)      # TLS ISTIO_MUTUAL -> api.dns.test:443 (resolution DNS)
g6=$(mg_free_port)      # TLS PASSTHROUGH -> pt.dns.test / rebind.dns.test (resolution DNS)
export MG_ADMIN=127.0.0.1:$(mg_free_port)
cfg=$(mg_tmpdir cfg)
log=$(dirname "$cfg")/access.log
hosts=$MG_TMP/hosts
printf '127.0.0.1 api.dns.test\n127.0.0.1 pt.dns.test\n127.0.0.2 rebind.dns.test\n' >"$hosts"
MESHGATE_HOSTS_FILE=$hosts
export MESHGATE_HOSTS_FILE
cat >"$cfg/gw.yaml" <<YAML
apiVersion: meshgate.io/v1alpha1
kind: Proxy
metadata: {name: egw, namespace: istio-system, labels: {istio: egressgateway}}
spec:
  bindAddress: 127.0.0.1
  admin: $MG_ADMIN
  workers: 2
  identity: {certificateChain: $P/gateway/cert-chain.pem, privateKey: $P/gateway/key.pem, rootCertificates: $P/root-cert.pem}
  egress: {denyResolvedCidrs: ["127.0.0.2/32"]}
---
apiVersion: meshgate.io/v1alpha1
kind: MeshConfig
spec:
  accessLogFile: $log
  accessLogEncoding: JSON
  outboundTrafficPolicy: {mode: REGISTRY_ONLY}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ext, namespace: istio-system}
spec:
  hosts: ["ext.example.com"]
  ports: [{number: 443, name: tls, protocol: TLS}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {tls: $u1}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db, namespace: istio-system}
spec:
  hosts: ["db.example.com"]
  ports: [{number: 5432, name: pg, protocol: TCP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {pg: $u2}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: dns, namespace: istio-system}
spec:
  hosts: ["api.dns.test"]
  ports: [{number: 443, name: tls, protocol: TLS, targetPort: $u1}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: pt, namespace: istio-system}
spec:
  hosts: ["pt.dns.test", "rebind.dns.test"]
  ports: [{number: 443, name: tls, protocol: TLS, targetPort: $u3}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: egress, namespace: istio-system}
spec:
  selector: {istio: egressgateway}
  servers:
  - port: {number: $g1, name: tls1, protocol: TLS}
    hosts: ["ext.example.com"]
    tls: {mode: ISTIO_MUTUAL}
  - port: {number: $g2, name: tls2, protocol: TLS}
    hosts: ["*"]
    tls: {mode: ISTIO_MUTUAL}
  - port: {number: $g3, name: tcp3, protocol: TCP}
    hosts: ["*"]
  - port: {number: $g4, name: tcp4, protocol: TCP}
    hosts: ["*"]
  - port: {number: $g5, name: tls5, protocol: TLS}
    hosts: ["*"]
    tls: {mode: ISTIO_MUTUAL}
  - port: {number: $g6, name: tls6, protocol: TLS}
    hosts: ["*.dns.test"]
    tls: {mode: PASSTHROUGH}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ext, namespace: istio-system}
spec:
  hosts: ["ext.example.com"]
  gateways: ["mesh", "egress"]
  tcp:
  # the sidecars' leg: never taken on the gateway itself
  - match: [{gateways: ["mesh"], port: $g1}]
    route: [{destination: {host: db.example.com, port: {number: 5432}}}]
  - match: [{gateways: ["egress"], port: $g1}]
    route: [{destination: {host: ext.example.com, port: {number: 443}}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: others, namespace: istio-system}
spec:
  hosts: ["*"]
  gateways: ["egress"]
  tcp:
  - match: [{port: $g2}]
    route: [{destination: {host: evil.example.com, port: {number: 443}}}]
  - match: [{port: $g3}]
    route: [{destination: {host: db.example.com, port: {number: 5432}}}]
  - match: [{port: $g4}]
    route: [{destination: {host: db.example.com, port: {number: 5433}}}]
  - match: [{port: $g5}]
    route: [{destination: {host: api.dns.test, port: {number: 443}}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: pt, namespace: istio-system}
spec:
  hosts: ["*.dns.test"]
  gateways: ["egress"]
  tls:
  - match: [{sniHosts: ["pt.dns.test"]}]
    route: [{destination: {host: pt.dns.test, port: {number: 443}}}]
  - match: [{sniHosts: ["rebind.dns.test"]}]
    route: [{destination: {host: rebind.dns.test, port: {number: 443}}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: who-goes-out, namespace: istio-system}
spec:
  selector: {matchLabels: {istio: egressgateway}}
  action: ALLOW
  rules:
  - from: [{source: {principals: ["cluster.local/ns/default/sa/sleep"]}}]
    to: [{operation: {ports: ["$g1", "$g2", "$g5"]}}]
  - to: [{operation: {ports: ["$g3", "$g4", "$g6"]}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: no-sni, namespace: istio-system}
spec:
  selector: {matchLabels: {istio: egressgateway}}
  action: DENY
  rules:
  - when: [{key: connection.sni, values: ["blocked.example.com"]}]
YAML

ok "gateway starts" mg_start_meshgate "$cfg"
REQ='GET /echo HTTP/1.1\r\nHost: ext.example.com\r\nConnection: close\r\n\r\n'
as() {  # as IDENTITY PORT SNI: what comes back through the mTLS-wrapped tunnel
    mg_raw_tls "$2" "$3" "$REQ" -cert "$P/$1/cert-chain.pem" -key "$P/$1/key.pem"
}
body=$(as sleep "$g1" ext.example.com)
is "$(mg_json_field "$body" upstream)" external "ISTIO_MUTUAL TLS server, tcp route to a registered host: spliced"
like "$(head -c 16 <<<"$body")" '^HTTP/1.1 200' "... the app's bytes arrive unchanged"
is "$(as httpbin "$g1" ext.example.com)" "" "another mesh identity: closed by the AuthorizationPolicy (principals)"
is "$(mg_raw_tls "$g1" ext.example.com "$REQ")" "" "no mesh certificate: no connection"
mg_wait_log "$log" '"reason":"rbac_policy"' >/dev/null
ok "the denial is logged with the deciding policy" grep -q '"reason":"rbac_policy"' "$log"
is "$(as sleep "$g2" blocked.example.com)" "" "DENY connection.sni on a TLS-terminated TCP server: closed"

before=$(mg_metric meshgate_egress_refused_total 'entrance="tcp"')
is "$(as sleep "$g2" evil.example.com)" "" "tcp route to an unregistered host: closed"
mg_wait_log "$log" 'egress_tcp_not_registered' >/dev/null
ok "... logged with the destination as authority" \
    grep -q '"authority":"evil.example.com:443".*"reason":"egress_tcp_not_registered"' "$log"
is "$(mg_json_field "$(mg_raw "$g3" "$REQ")" upstream)" db "plain TCP server, registered host and port: spliced"
is "$(mg_raw "$g4" "$REQ" 2)" "" "plain TCP server, registered host on a port its entry lacks: closed"
mg_wait_log "$log" 'egress_tcp_port_not_registered' >/dev/null
ok "... logged as egress_tcp_port_not_registered" \
    grep -q '"authority":"db.example.com:5433".*"reason":"egress_tcp_port_not_registered"' "$log"
after=$(mg_metric meshgate_egress_refused_total 'entrance="tcp"')
is "$after" "$((before + 2))" "meshgate_egress_refused_total{entrance=\"tcp\"} counts both"
is "$(mg_metric meshgate_egress_refused_total 'entrance="tcp",reason="port_not_registered"')" 1 \
    "... by reason"
is "$(mg_json_field "$(as sleep "$g5" x.example.com)" upstream)" external \
    "tcp route to a DNS ServiceEntry: the gateway resolves the name and splices"
mg_wait_log "$log" "\"upstream_host\":\"127.0.0.1:$u1\"" >/dev/null
ok "... dialled at the resolved address" grep -q "\"upstream_host\":\"127.0.0.1:$u1\"" "$log"

# denyResolvedCidrs on tcp and PASSTHROUGH routes to MESH_EXTERNAL DNS
# entries (the default location): the resolved address is checked first
is "$(mg_json_field "$(mg_curl -k "https://pt.dns.test:$g6/echo")" upstream)" tlsup \
    "PASSTHROUGH to a DNS ServiceEntry: the gateway resolves the name and splices"
is "$(mg_http_code -k "https://rebind.dns.test:$g6/echo")" 000 \
    "PASSTHROUGH to a name resolving into denyResolvedCidrs: closed"
mg_wait_log "$log" 'egress_sni_resolved_denied' >/dev/null
like "$(grep 'egress_sni_resolved_denied' "$log" | tail -n 1)" '"upstream_host":"127.0.0.2"' \
    "... logged as egress_sni_resolved_denied with the address"
is "$(mg_metric meshgate_egress_refused_total 'entrance="sni",reason="resolved_denied"')" 1 "... and counted"

# the explainer agrees: --sni on a TLS-terminating TCP server takes its tcp
# route and judges the route's destination, then authorizes as TCP
SLEEP=(--principal cluster.local/ns/default/sa/sleep)
out=$("$MESHGATE" authz -c "$cfg" --sni ext.example.com --port "$g1" "${SLEEP[@]}" 2>/dev/null)
is "$?:$(head -n 2 <<<"$out" | tr '\n' ' ')" "0:ALLOW egress: registered: ServiceEntry istio-system/ext port 443 " \
    "authz --sni: the tcp route's registered destination is allowed for the allowed identity"
like "$out" "route: TLS-terminating TCP port $g1, tcp route of VirtualService istio-system/ext" \
    "... through the gateway's own tcp match, not the mesh one"
out=$("$MESHGATE" authz -c "$cfg" --sni ext.example.com --port "$g1" \
    --principal cluster.local/ns/default/sa/httpbin 2>/dev/null)
is "$?" 1 "authz --sni: another identity is refused by the policy"
out=$("$MESHGATE" authz -c "$cfg" --sni evil.example.com --port "$g2" "${SLEEP[@]}" 2>/dev/null)
is "$?:$(head -n 2 <<<"$out" | tr '\n' ' ')" \
    "1:DENY egress: refused under REGISTRY_ONLY (not_registered) for evil.example.com:443: the connection is closed " \
    "authz --sni: an unregistered tcp route destination is refused by the registry"

done_testing
