#!/bin/bash
# 24-passthrough.sh - a PASSTHROUGH server: the gateway reads the SNI from
# the ClientHello without terminating TLS and splices the connection to the
# VirtualService `tls` route; the client's TLS session ends at the upstream.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/dp_common.sh"

mg_pki || bail_out "cannot make a PKI"
P=$MG_PKI
"$MESHGATE" ca issue --dir "$P" --dns up.example.com --dns other.example.com --name up >/dev/null ||
    bail_out "upstream cert"
mg_start_upstream --name tls1 --tls-cert "$P/up.crt" --tls-key "$P/up.key" || bail_out "upstream 1"
u1=$MG_UPSTREAM_PORT
mg_start_upstream --name tls2 --tls-cert "$P/up.crt" --tls-key "$P/up.key" || bail_out "upstream 2"
u2=$MG_UPSTREAM_PORT
mg_start_upstream --name plain || bail_out "plain upstream"
u3=$MG_UPSTREAM_PORT
port=$(mg_free_port)
tcp=$(mg_free_port)
export MG_ADMIN=127.0.0.1:$(mg_free_port)
cfg=$(mg_tmpdir cfg)
dp_proxy "$cfg" "$MG_ADMIN" JSON
cat >"$cfg/se.yaml" <<YAML
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: up1, namespace: istio-system}
spec:
  hosts: ["up1.internal"]
  ports: [{number: 443, name: tls, protocol: TLS}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {tls: $u1}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: up2, namespace: istio-system}
spec:
  hosts: ["up2.internal"]
  ports: [{number: 443, name: tls, protocol: TLS}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {tls: $u2}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: plain, namespace: istio-system}
spec:
  hosts: ["plain.internal"]
  ports: [{number: 9000, name: tcp, protocol: TCP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {tcp: $u3}}]
YAML
cat >"$cfg/gw.yaml" <<YAML
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: $port, name: tls, protocol: TLS}
    hosts: ["*.example.com"]
    tls: {mode: PASSTHROUGH}
  - port: {number: $tcp, name: tcp, protocol: TCP}
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: tcp, namespace: istio-system}
spec:
  hosts: ["*"]
  gateways: ["gw"]
  tcp:
  - match: [{port: $tcp}]
    route: [{destination: {host: plain.internal, port: {number: 9000}}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: pt, namespace: istio-system}
spec:
  hosts: ["*.example.com"]
  gateways: ["gw"]
  tls:
  - match: [{sniHosts: ["up.example.com"]}]
    route: [{destination: {host: up1.internal, port: {number: 443}}}]
  - match: [{sniHosts: ["other.example.com"]}]
    route: [{destination: {host: up2.internal, port: {number: 443}}}]
YAML

ok "gateway starts" mg_start_meshgate "$cfg"
C=(--http1.1 --cacert "$P/root-cert.pem")
body=$(mg_curl "${C[@]}" "https://up.example.com:$port/echo")
is "$(mg_json_field "$body" upstream)" tls1 "SNI up.example.com spliced to upstream 1"
is "$(mg_json_field "$body" tls)" true "TLS terminated at the upstream"
is "$(mg_json_field "$body" sni)" up.example.com "the upstream saw the client's SNI"
is "$(mg_json_field "$(mg_curl "${C[@]}" "https://other.example.com:$port/echo")" upstream)" tls2 \
    "SNI other.example.com to upstream 2"
served=$(echo | timeout 5 openssl s_client -connect "127.0.0.1:$port" -servername up.example.com 2>/dev/null |
    openssl x509 -noout -fingerprint -sha256 | cut -d= -f2)
is "$served" "$(openssl x509 -noout -fingerprint -sha256 -in "$P/up.crt" | cut -d= -f2)" \
    "the certificate is the upstream's own"
# That client ended its side after the handshake and the upstream answered
# with its own FIN: the tunnel is over and both sockets close. (Level-
# triggered splice events once came out edge-triggered, merged in libevent's
# change list with the deleted edge-triggered ones of the same sockets: the
# two ends' FINs went unseen and both sockets stayed in CLOSE-WAIT.)
tunnels_closed() {
    local o
    o=$(mg_metric istio_tcp_connections_opened_total) || return 1
    [ "$o" -ge 3 ] && [ "$(mg_metric istio_tcp_connections_closed_total)" = "$o" ]
}
ok "a tunnel whose two ends closed is closed by the gateway" mg_wait_for 3 tunnels_closed
is "$(mg_http_code "${C[@]}" "https://nomatch.example.com:$port/echo")" 000 "SNI without a tls route: closed"
is "$(mg_http_code "${C[@]}" --resolve "x.test:$port:127.0.0.1" "https://x.test:$port/echo")" 000 \
    "SNI outside the server hosts: closed"
is "$(mg_raw "$port" 'GET / HTTP/1.1\r\nHost: x\r\n\r\n' 2)" "" "plain text on a passthrough port: closed"
head -c 3000000 /dev/urandom >"$MG_TMP/big"
want=$(sha256sum <"$MG_TMP/big" | cut -d' ' -f1)
body=$(mg_curl "${C[@]}" --data-binary @"$MG_TMP/big" "https://up.example.com:$port/echo")
is "$(mg_json_field "$body" body_sha256)" "$want" "3 MB upload through the splice intact"
direct=$(curl -sS -k "https://127.0.0.1:$u1/bytes/5000000" | sha256sum | cut -d' ' -f1)
is "$(mg_curl "${C[@]}" "https://up.example.com:$port/bytes/5000000" | sha256sum | cut -d' ' -f1)" "$direct" \
    "5 MB download through the splice intact"

body=$(mg_curl -H 'Host: anything.test' "http://127.0.0.1:$tcp/echo")
is "$(mg_json_field "$body" upstream)" plain "TCP server spliced to its tcp route"
ok "bytes passed untouched (no proxy headers added)" test -z "$(printf '%s' "$body" | grep -i x-forwarded-for)"
ok "the client's Host arrives as sent" mg_json_has_header "$body" host anything.test

ok "tunnel logged" dp_wait_log "$DP_ACCESS_LOG" "\"protocol\":\"TCP\".*\"upstream_host\":\"127.0.0.1:$u1\""
line=$(grep '"protocol":"TCP"' "$DP_ACCESS_LOG" | grep "127.0.0.1:$u1" | head -1)
is "$(mg_json_field "$line" requested_server_name)" up.example.com "tunnel log: SNI"
like "$(mg_json_field "$line" bytes_received)" '^[1-9][0-9]*$' "tunnel log: bytes counted"
ok "unrouted SNI logged with its reason" dp_wait_log "$DP_ACCESS_LOG" '"response_flags":"NR".*"reason":"no_tls_route"'

done_testing
