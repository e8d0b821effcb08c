#!/bin/bash
# 71-egress-gateway-registry.sh - REGISTRY_ONLY at the egress gateway's other
# entrances: a PASSTHROUGH server routed by SNI closes a connection whose SNI
# no ServiceEntry registers (even when a wildcard tls route would take it),
# and a Gateway HTTP route whose destination is not registered (host or
# port) answers 502; the registered ones work, an AuthorizationPolicy on
# connection.sni closes a registered SNI, `meshgate authz --sni` explains
# each of these verdicts the same way, a 50 MB download through the SNI
# splice keeps its checksum, and every refusal is logged and counted.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/dp_common.sh"

mg_pki || bail_out "cannot make a PKI"
P=$MG_PKI
"$MESHGATE" ca issue --dir "$P" --dns api.egress.test --dns evil.egress.test --name up >/dev/null ||
    bail_out "upstream cert"
mg_start_upstream --name tlsapi --tls-cert "$P/up.crt" --tls-key "$P/up.key" || bail_out "tls upstream"
u1=$MG_UPSTREAM_PORT
mg_start_upstream --name plain || bail_out "plain upstream"
u2=$MG_UPSTREAM_PORT
pt=$(mg_free_port)
http=$(mg_free_port)
export MG_ADMIN=127.0.0.1:$(mg_free_port)
cfg=$(mg_tmpdir cfg)
dp_proxy "$cfg" "$MG_ADMIN" JSON
cat >>"$cfg/00-proxy.yaml" <<YAML
  outboundTrafficPolicy: {mode: REGISTRY_ONLY}
YAML
cat >"$cfg/se.yaml" <<YAML
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: api, namespace: istio-system}
spec:
  hosts: ["api.egress.test", "blocked.egress.test"]
  location: MESH_EXTERNAL
  ports: [{number: 443, name: tls, protocol: TLS}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {tls: $u1}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: web, namespace: istio-system}
spec:
  hosts: ["web.egress.test"]
  location: MESH_EXTERNAL
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {http: $u2}}]
YAML
cat >"$cfg/gw.yaml" <<YAML
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: egress, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: $pt, name: tls, protocol: TLS}
    hosts: ["*.egress.test"]
    tls: {mode: PASSTHROUGH}
  - port: {number: $http, name: http, protocol: HTTP}
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: sni, namespace: istio-system}
spec:
  hosts: ["*.egress.test"]
  gateways: ["egress"]
  tls:
  - match: [{port: $pt, sniHosts: ["*.egress.test"]}]
    route: [{destination: {host: api.egress.test, port: {number: 443}}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web, namespace: istio-system}
spec:
  hosts: ["web.egress.test"]
  gateways: ["egress"]
  http:
  - route: [{destination: {host: web.egress.test, port: {number: 80}}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: leak, namespace: istio-system}
spec:
  hosts: ["leak.test"]
  gateways: ["egress"]
  http:
  - route: [{destination: {host: unregistered.test, port: {number: 80}}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: wrongport, namespace: istio-system}
spec:
  hosts: ["wrongport.test"]
  gateways: ["egress"]
  http:
  - route: [{destination: {host: web.egress.test, port: {number: 8080}}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: no-blocked-sni, namespace: istio-system}
spec:
  action: DENY
  rules: [{when: [{key: connection.sni, values: ["blocked.egress.test"]}]}]
YAML

ok "gateway starts" mg_start_meshgate "$cfg"
C=(--http1.1 --cacert "$P/root-cert.pem")

body=$(mg_curl "${C[@]}" "https://api.egress.test:$pt/echo")
is "$(mg_json_field "$body" upstream)" tlsapi "a registered SNI is spliced to its entry's endpoint"
is "$(mg_json_field "$body" sni)" api.egress.test "... with the client's TLS end to end"
is "$(mg_http_code "${C[@]}" "https://evil.egress.test:$pt/echo")" 000 \
    "an SNI no entry registers is closed, though a wildcard tls route matches it"
ok "the SNI refusal is logged with entrance and reason" \
    dp_wait_log "$DP_ACCESS_LOG" '"reason":"egress_sni_not_registered"'
is "$(mg_metric meshgate_egress_refused_total 'entrance="sni",reason="not_registered"')" 1 \
    "the SNI refusal is counted"

is "$(mg_http_code "${C[@]}" "https://blocked.egress.test:$pt/echo")" 000 \
    "a registered SNI that an AuthorizationPolicy on connection.sni denies is closed"
ok "... logged as a policy refusal" dp_wait_log "$DP_ACCESS_LOG" '"requested_server_name":"blocked.egress.test".*rbac'

# the explainer agrees, in the same order: route, registry, authorization
out=$("$MESHGATE" authz -c "$cfg" --sni api.egress.test --port "$pt" 2>/dev/null)
is "$?:$(head -n 2 <<<"$out" | tr '\n' ' ')" "0:ALLOW egress: registered: ServiceEntry istio-system/api port 443 " \
    "authz --sni: a registered SNI is allowed, with its entry"
like "$out" "route: PASSTHROUGH port $pt, tls route of VirtualService istio-system/sni" "... and the route it takes"
like "$out" 'request: TCP connection' "... authorized as a TCP connection"
out=$("$MESHGATE" authz -c "$cfg" --sni EVIL.egress.test --port "$pt" 2>/dev/null)
is "$?:$(head -n 2 <<<"$out" | tr '\n' ' ')" \
    "1:DENY egress: refused under REGISTRY_ONLY (not_registered) on port 443: the connection is closed " \
    "authz --sni: an unregistered SNI is refused by the registry"
out=$("$MESHGATE" authz -c "$cfg" --sni blocked.egress.test --port "$pt" 2>/dev/null)
is "$?" 1 "authz --sni: the policy on connection.sni refuses blocked.egress.test"
like "$out" 'decided by: istio-system.no-blocked-sni \(DENY, rule 0\)' "... and names it"
out=$("$MESHGATE" authz -c "$cfg" --sni api.other.test --port "$pt" 2>/dev/null)
is "$?:$(head -n 2 <<<"$out" | tr '\n' ' ')" \
    "1:DENY route: no tls route for SNI api.other.test on port $pt: the connection is closed " \
    "authz --sni: an SNI no server takes is closed before the registry"
out=$("$MESHGATE" authz -c "$cfg" --sni api.egress.test --port "$http" 2>/dev/null)
is "$?:$out" "1:DENY
route: no PASSTHROUGH or TLS-terminating TCP server on port $http" "authz --sni: a port without a PASSTHROUGH server"

n=$((50 * 1024 * 1024))
direct=$(curl -sS -k --max-time 60 "https://127.0.0.1:$u1/bytes/$n" | sha256sum | cut -d' ' -f1)
big=$MG_TMP/big.sha
( curl -sS --max-time 120 --limit-rate 25M "${C[@]}" --resolve "api.egress.test:$pt:127.0.0.1" \
      "https://api.egress.test:$pt/bytes/$n" | sha256sum | cut -d' ' -f1 >"$big" ) &
bigpid=$!
small_ok=0
for ((i = 0; i < 10; i++)); do
    [ "$(mg_http_code -H 'Host: web.egress.test' "http://127.0.0.1:$http/echo")" = 200 ] &&
        small_ok=$((small_ok + 1))
    sleep 0.1
done
wait "$bigpid"
is "$small_ok" 10 "other clients are answered during the large transfer"
isnt "$direct" "$(head -c 0 /dev/null | sha256sum | cut -d' ' -f1)" "the direct download has bytes to compare"
is "$(cat "$big")" "$direct" "50 MB through the SNI splice arrive with their checksum intact"

body=$(mg_curl -H 'Host: web.egress.test' "http://127.0.0.1:$http/echo")
is "$(mg_json_field "$body" upstream)" plain "an HTTP route to a registered host is served"
is "$(mg_http_code -H 'Host: leak.test' "http://127.0.0.1:$http/echo")" 502 \
    "an HTTP route to an unregistered host answers 502"
is "$(mg_http_code -H 'Host: wrongport.test' "http://127.0.0.1:$http/echo")" 502 \
    "an HTTP route to a registered host on an unlisted port answers 502"
ok "the route refusal is logged with entrance and reason" \
    dp_wait_log "$DP_ACCESS_LOG" '"reason":"egress_route_not_registered"'
is "$(mg_metric meshgate_egress_refused_total 'entrance="route"')" 2 "route refusals are counted"

done_testing
