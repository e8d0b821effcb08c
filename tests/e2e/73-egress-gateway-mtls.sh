#!/bin/bash
# 73-egress-gateway-mtls.sh - Istio's egress gateway pattern: workloads send
# plain HTTP over ISTIO_MUTUAL to the gateway, which originates TLS to the
# external host (DestinationRule SIMPLE, server certificate verified) under
# REGISTRY_ONLY. An AuthorizationPolicy lets one mTLS identity reach the
# host and refuses another; a route to an unregistered host answers 502.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"

mg_pki || bail_out "cannot make a PKI"
P=$MG_PKI
"$MESHGATE" ca issue --dir "$P" --dns ext.example.com --name ext >/dev/null || bail_out "upstream cert"
mg_start_upstream --name external --tls-cert "$P/ext.crt" --tls-key "$P/ext.key" || bail_out "upstream"
u1=$MG_UPSTREAM_PORT
gp=$(mg_free_port)
export MG_ADMIN=127.0.0.1:$(mg_free_port)
cfg=$(mg_tmpdir cfg)
log=$(dirname "$cfg")/access.log
cat >"$cfg/gw.yaml" <<YAML
apiVersion: meshgate.io/v1alpha1
kind: Proxy
metadata: {name: egw, namespace: istio-system, labels: {istio: egressgateway}}
spec:
  bindAddress: 127.0.0.1
  admin: $MG_ADMIN
  workers: 2
  identity: {certificateChain: $P/gateway/cert-chain.pem, privateKey: $P/gateway/key.pem, rootCertificates: $P/root-cert.pem}
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
  location: MESH_EXTERNAL
  ports: [{number: 443, name: https, protocol: HTTPS}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {https: $u1}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ext, namespace: istio-system}
spec:
  host: ext.example.com
  trafficPolicy:
    tls: {mode: SIMPLE, caCertificates: $P/root-cert.pem, sni: ext.example.com}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: egress, namespace: istio-system}
spec:
  selector: {istio: egressgateway}
  servers:
  - port: {number: $gp, name: https, protocol: HTTPS}
    hosts: ["*"]
    tls: {mode: ISTIO_MUTUAL}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ext, namespace: istio-system}
spec:
  hosts: ["ext.example.com"]
  gateways: ["egress"]
  http:
  - route: [{destination: {host: ext.example.com, port: {number: 443}}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: leak, namespace: istio-system}
spec:
  hosts: ["leak.example.com"]
  gateways: ["egress"]
  http:
  - route: [{destination: {host: unknown.example.com, port: {number: 443}}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: who-goes-out, namespace: istio-system}
spec:
  selector: {matchLabels: {istio: egressgateway}}
  action: ALLOW
  rules:
  - from: [{source: {principals: ["cluster.local/ns/default/sa/sleep"]}}]
    # the Host carries the port the client used: Istio matches it as written
    to: [{operation: {hosts: ["ext.example.com", "ext.example.com:*", "leak.example.com:*"]}}]
YAML

ok "gateway starts" mg_start_meshgate "$cfg"
as() {  # as IDENTITY HOST: the status of GET https://HOST:$gp/echo with that mesh identity
    mg_http_code -k --cert "$P/$1/cert-chain.pem" --key "$P/$1/key.pem" "https://$2:$gp/echo"
}
body=$(mg_curl -k --cert "$P/sleep/cert-chain.pem" --key "$P/sleep/key.pem" "https://ext.example.com:$gp/echo")
is "$(mg_json_field "$body" upstream)" external "the allowed identity reaches the external host"
is "$(mg_json_field "$body" tls)" true "... over TLS the gateway originated"
is "$(mg_json_field "$body" sni)" ext.example.com "... with the DestinationRule's SNI"
is "$(as httpbin ext.example.com)" 403 "another mesh identity is refused by the AuthorizationPolicy"
is "$(mg_http_code -k "https://ext.example.com:$gp/echo")" 000 "no mesh certificate: no connection"
is "$(as sleep leak.example.com)" 502 "a route to an unregistered host answers 502"
mg_wait_log "$log" 'egress_route_not_registered' >/dev/null
ok "... logged with the entrance and the reason" grep -q 'egress_route_not_registered' "$log"

done_testing
