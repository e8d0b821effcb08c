#!/bin/bash
# 61-peer-authn.sh - PeerAuthentication on sidecar inbound ports
# (istio-semantics 3): PERMISSIVE (plain text without a principal, Istio-ALPN
# mTLS with one, non-Istio TLS handled as plain text), a workload policy's
# portLevelMtls DISABLE next to STRICT, namespace over mesh precedence, a
# root-namespace policy with a selector ignored, and reloads that switch the
# mode for new connections only. AuthorizationPolicy decisions are also put
# to `meshgate authz` with the workload port and the principal.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/sc_common.sh"

mg_pki || bail_out "cannot make a PKI"
P=$MG_PKI
SLEEP=cluster.local/ns/default/sa/sleep
mg_start_upstream --name app || bail_out "upstream"
sc_config "$(mg_tmpdir cfg)" "$MG_UPSTREAM_PORT"
cat >"$SC_CFG/50-authz.yaml" <<'YAML'
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: httpbin, namespace: default}
spec:
  selector: {matchLabels: {app: httpbin}}
  action: ALLOW
  rules:
  - from: [{source: {principals: ["cluster.local/ns/default/sa/sleep"]}}]
    to: [{operation: {paths: ["/p/*"]}}]
  - to: [{operation: {paths: ["/open/*", "/echo"]}}]
  - to: [{operation: {ports: ["9080"], paths: ["/port/*"]}}]
YAML

# ---- PERMISSIVE (no PeerAuthentication at all) ----
ok "sidecar starts (no PeerAuthentication: PERMISSIVE)" mg_start_meshgate "$SC_CFG"
is "$(sc_plain "$SC_B1" /open/x)" 200 "PERMISSIVE: plain text accepted"
code=$(mg_curl --http2-prior-knowledge -o /dev/null -w '%{http_code} %{http_version}' \
    "http://127.0.0.1:$SC_B1/open/x" 2>/dev/null)
is "$code" "200 2" "PERMISSIVE: plain HTTP/2 with prior knowledge (h2c)"
sc_authz "PERMISSIVE: plain /open/x allowed" 0 80 /open/x
is "$(sc_plain "$SC_B1" /p/x)" 403 "PERMISSIVE: plain text has no principal (ALLOW on principals: 403)"
sc_authz "PERMISSIVE: plain /p/x denied" 1 80 /p/x
sc_istio "$SC_B1" /p/x "$P/sleep"
is "$SC_STATUS" 200 "PERMISSIVE: Istio-ALPN mTLS as sleep is allowed"
sc_authz "PERMISSIVE: mTLS /p/x as sleep allowed" 0 80 /p/x "$SLEEP"
sc_istio "$SC_B1" /p/x "$P/httpbin"
is "$SC_STATUS" 403 "PERMISSIVE: Istio-ALPN mTLS as another SA is denied"
sc_authz "PERMISSIVE: mTLS /p/x as httpbin denied" 1 80 /p/x cluster.local/ns/default/sa/httpbin
sc_istio "$SC_B1" /echo "$P/sleep"
like "$SC_OUT" '"x-forwarded-client-cert","By=[^"]*;URI=spiffe://cluster.local/ns/default/sa/sleep"' \
    "PERMISSIVE: the app sees the XFCC of the mesh peer"
sc_istio "$SC_B1" /open/x ""
is "$SC_STATUS" 000 "PERMISSIVE: Istio ALPN without a client certificate refused"
is "$(sc_tls "$SC_B1" /open/x "$P/sleep")" 000 "PERMISSIVE: non-Istio TLS (curl, h2/http1.1 ALPN) is not terminated"
out=$(mg_raw "$SC_B1" '\x16\x03\x01\x00\x05\x01\x00\x00\x01\x00' 2)
like "$out" '^HTTP/1.1 400' "PERMISSIVE: non-Istio TLS bytes are plain text: 400"
# a client that stalls inside the first bytes is closed at the handshake timeout (3 s)
t0=$(date +%s%N)
mg_raw "$SC_B1" '\x16\x03\x01\x02\x00\x01' 8 >/dev/null
ms=$((($(date +%s%N) - t0) / 1000000))
ok "PERMISSIVE: a stalled ClientHello is closed after the handshake timeout ($ms ms)" \
    test "$ms" -ge 2500 -a "$ms" -lt 7000
t0=$(date +%s%N)
mg_raw "$SC_B1" 'PRI * HTTP/2' 8 >/dev/null
ms=$((($(date +%s%N) - t0) / 1000000))
ok "PERMISSIVE: a stalled h2 preface is closed after the handshake timeout ($ms ms)" \
    test "$ms" -ge 2500 -a "$ms" -lt 7000
is "$(sc_plain "$SC_B1" /open/x)" 200 "the port still serves after the stalled clients"
# destination.port is the workload port, not the bind port
is "$(sc_plain "$SC_B2" /port/x)" 200 "ports [9080] matches inbound port 9080"
sc_authz "/port/x on 9080 allowed" 0 9080 /port/x
is "$(sc_plain "$SC_B1" /port/x)" 403 "ports [9080] does not match inbound port 80"
sc_authz "/port/x on 80 denied" 1 80 /port/x
# a keep-alive plain-text connection opened now, used again after the switch to STRICT
exec 5<>"/dev/tcp/127.0.0.1/$SC_B1"
printf 'GET /open/a HTTP/1.1\r\nHost: httpbin\r\n\r\n' >&5
ka=$(timeout 1 cat <&5)
like "$ka" '^HTTP/1.1 200' "keep-alive plain connection: first request 200"

# ---- workload STRICT with portLevelMtls 9080: DISABLE ----
sc_pa "$SC_CFG" wl "default" STRICT '  selector: {matchLabels: {app: httpbin}}
  portLevelMtls:
    9080: {mode: DISABLE}'
ok "reload: workload STRICT, port 9080 DISABLE" sc_reload 2
out=$(mg_raw "$SC_B1" 'GET /open/x HTTP/1.1\r\nHost: httpbin\r\nConnection: close\r\n\r\n' 2)
is "$out" "" "port 80 STRICT: new plain-text connection closed"
is "$(sc_tls "$SC_B1" /open/x "$P/sleep")" 200 "port 80 STRICT: mesh mTLS accepted"
printf 'GET /open/b HTTP/1.1\r\nHost: httpbin\r\n\r\n' >&5
ka=$(timeout 1 cat <&5)
like "$ka" '^HTTP/1.1 200' "the keep-alive connection keeps its PERMISSIVE snapshot"
exec 5<&-
is "$(sc_plain "$SC_B2" /open/x)" 200 "port 9080 DISABLE: plain text accepted"
code=$(mg_curl --http2-prior-knowledge -o /dev/null -w '%{http_code} %{http_version}' \
    "http://127.0.0.1:$SC_B2/open/x" 2>/dev/null)
is "$code" "200 2" "port 9080 DISABLE: h2c too"
is "$(sc_tls "$SC_B2" /open/x "$P/sleep")" 000 "port 9080 DISABLE: TLS not terminated"
out=$(mg_raw "$SC_B2" '\x16\x03\x01\x00\x05\x01\x00\x00\x01\x00' 2)
like "$out" '^HTTP/1.1 400' "port 9080 DISABLE: TLS bytes to HTTP: 400"
sc_istio "$SC_B2" /open/x "$P/sleep"
is "$SC_STATUS" 000 "port 9080 DISABLE: even Istio ALPN is not terminated"
dump=$(curl -s --max-time 3 "http://$MG_ADMIN/config_dump")
like "$dump" '"port":80,[^}]*"mtls_mode":"STRICT"' "config_dump: port 80 STRICT"
like "$dump" '"port":9080,[^}]*"mtls_mode":"DISABLE"' "config_dump: port 9080 DISABLE"
like "$dump" '"workload":"default.wl"' "config_dump: the workload policy decided"

# ---- mesh STRICT, namespace PERMISSIVE: PERMISSIVE ----
rm -f "$SC_CFG/40-pa-wl.yaml"
sc_pa "$SC_CFG" mesh istio-system STRICT
sc_pa "$SC_CFG" ns default PERMISSIVE
ok "reload: mesh STRICT, namespace PERMISSIVE" sc_reload 3
is "$(sc_plain "$SC_B1" /open/x)" 200 "namespace PERMISSIVE wins over mesh STRICT"
sc_istio "$SC_B1" /p/x "$P/sleep"
is "$SC_STATUS" 200 "... and Istio mTLS still carries the principal"
dump=$(curl -s --max-time 3 "http://$MG_ADMIN/config_dump")
like "$dump" '"mesh":"istio-system.mesh","namespace":"default.ns"' "config_dump: mesh and namespace sources"

# ---- namespace UNSET: the mesh STRICT applies; a root policy with a selector is ignored ----
sc_pa "$SC_CFG" ns default ""
sc_pa "$SC_CFG" rootsel istio-system DISABLE '  selector: {matchLabels: {app: httpbin}}'
ok "reload: namespace mtls unset, root-namespace DISABLE with a selector" sc_reload 4
out=$(mg_raw "$SC_B1" 'GET /open/x HTTP/1.1\r\nHost: httpbin\r\nConnection: close\r\n\r\n' 2)
is "$out" "" "namespace UNSET inherits mesh STRICT (selector policy in the root namespace ignored)"
is "$(sc_tls "$SC_B2" /open/x "$P/sleep")" 200 "mesh STRICT: mTLS on port 9080 too"

# ---- back to PERMISSIVE by reload ----
sc_pa "$SC_CFG" mesh istio-system PERMISSIVE
ok "reload: mesh PERMISSIVE" sc_reload 5
is "$(sc_plain "$SC_B1" /open/x)" 200 "reload back to PERMISSIVE: plain text accepted again"

# ---- protocol TCP inbound port: per-connection authorization, byte splice ----
SC_B3=$(mg_free_port)
printf '  - {port: 7000, bind: 127.0.0.1:%s, forwardTo: 127.0.0.1:%s, protocol: TCP}\n' "$SC_B3" \
    "$MG_UPSTREAM_PORT" >"$MG_TMP/tcp-entry"
sed -i "/port: 9080, bind:/r $MG_TMP/tcp-entry" "$SC_CFG/00-proxy.yaml"
cat >>"$SC_CFG/50-authz.yaml" <<'YAML'
  - from: [{source: {principals: ["cluster.local/ns/default/sa/sleep"]}}]
    to: [{operation: {ports: ["7000"]}}]
YAML
tcp_authz() {   # NAME WANT_RC [PRINCIPAL]
    local a=(--tcp --port 7000 --source-ip 127.0.0.1)
    [ -n "${3:-}" ] && a+=(--principal "$3")
    "$MESHGATE" authz -c "$SC_CFG" "${a[@]}" >"$MG_TMP/authz.out" 2>&1
    is "$?" "$2" "$1 (meshgate authz --tcp agrees)" || diag - <"$MG_TMP/authz.out"
}
ok "reload: TCP inbound port 7000 added" sc_reload 6
out=$(mg_raw "$SC_B3" 'GET /echo HTTP/1.1\r\nHost: httpbin\r\nConnection: close\r\n\r\n' 2)
is "$out" "" "TCP, plain text (no principal): denied, closed without a byte"
tcp_authz "TCP plain denied" 1
sc_istio "$SC_B3" /echo "$P/sleep" istio-peer-exchange,istio
is "$SC_STATUS" 200 "TCP, Istio mTLS as sleep: spliced to the app"
unlike "$SC_OUT" 'x-forwarded-proto' "TCP: bytes spliced as they are (no proxy headers)"
tcp_authz "TCP mTLS as sleep allowed" 0 "$SLEEP"
sc_istio "$SC_B3" /echo "$P/httpbin" istio-peer-exchange,istio
is "$SC_STATUS" 000 "TCP, Istio mTLS as httpbin: denied"
tcp_authz "TCP mTLS as httpbin denied" 1 cluster.local/ns/default/sa/httpbin
cat >"$SC_CFG/51-deny.yaml" <<'YAML'
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-get, namespace: default}
spec:
  action: DENY
  rules:
  - to: [{operation: {ports: ["7000"], methods: ["GET"]}}]
YAML
ok "reload: DENY methods GET on port 7000" sc_reload 7
sc_istio "$SC_B3" /echo "$P/sleep" istio-peer-exchange,istio
is "$SC_STATUS" 000 "TCP: a DENY with an HTTP-only field loses it and denies every connection"
tcp_authz "TCP DENY broadened" 1 "$SLEEP"
is "$(sc_plain "$SC_B1" /open/x)" 200 "the DENY pinned to port 7000 leaves port 80 alone"
for ((i = 0; i < 30; i++)); do grep -q '"TCP"' "$SC_ACCESS_LOG" 2>/dev/null && break; sleep 0.1; done
like "$(grep '"TCP"' "$SC_ACCESS_LOG" | tail -n 1)" 'rbac_policy' "TCP refusal in the access log with its reason"

done_testing
