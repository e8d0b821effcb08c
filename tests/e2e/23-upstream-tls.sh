#!/bin/bash
# 23-upstream-tls.sh - DestinationRule client TLS to upstreams: SIMPLE with
# a CA (SNI = destination host, or `sni`), a wrong CA refused, insecure-
# SkipVerify, subjectAltNames, MUTUAL with a client certificate; and a DNS
# ServiceEntry endpoint resolved asynchronously.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/dp_common.sh"

mg_pki || bail_out "cannot make a PKI"
P=$MG_PKI
"$MESHGATE" ca issue --dir "$P" --dns up.local --dns alt.local --name up >/dev/null || bail_out "upstream cert"
"$MESHGATE" ca init --dir "$MG_TMP/foreign" >/dev/null || bail_out "foreign CA"
mg_start_upstream --name tls --tls-cert "$P/up.crt" --tls-key "$P/up.key" || bail_out "tls upstream"
ut=$MG_UPSTREAM_PORT
mg_start_upstream --name mtls --tls-cert "$P/up.crt" --tls-key "$P/up.key" --client-ca "$P/root-cert.pem" ||
    bail_out "mtls upstream"
um=$MG_UPSTREAM_PORT
mg_start_upstream --name plain || bail_out "plain upstream"
up=$MG_UPSTREAM_PORT
http=$(mg_free_port)
export MG_ADMIN=127.0.0.1:$(mg_free_port)
cfg=$(mg_tmpdir cfg)
dp_proxy "$cfg" "$MG_ADMIN" JSON
for h in up alt wrong skip san nosan; do dp_service "$cfg" "$h" "$h.local" "$ut"; done
dp_service "$cfg" mtls mtls.local "$um"
dp_service "$cfg" nocert nocert.local "$um"
cat >"$cfg/dns.yaml" <<YAML
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: dns, namespace: istio-system}
spec:
  hosts: ["dns.local"]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: DNS
  endpoints: [{address: localhost, ports: {http: $up}}]
YAML
dr() {  # HOST TLS_YAML
    cat >>"$cfg/dr.yaml" <<YAML
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: $1, namespace: istio-system}
spec:
  host: $1.local
  trafficPolicy: {tls: $2}
YAML
}
dr up "{mode: SIMPLE, caCertificates: $P/root-cert.pem}"
dr alt "{mode: SIMPLE, caCertificates: $P/root-cert.pem, sni: alt.local}"
dr wrong "{mode: SIMPLE, caCertificates: $MG_TMP/foreign/root-cert.pem}"
dr skip "{mode: SIMPLE, caCertificates: $MG_TMP/foreign/root-cert.pem, insecureSkipVerify: true}"
dr san "{mode: SIMPLE, caCertificates: $P/root-cert.pem, sni: up.local, subjectAltNames: [alt.local]}"
dr nosan "{mode: SIMPLE, caCertificates: $P/root-cert.pem, sni: up.local, subjectAltNames: [spiffe://x/y]}"
dr mtls "{mode: MUTUAL, caCertificates: $P/root-cert.pem, sni: up.local, clientCertificate: $P/gateway/cert-chain.pem, privateKey: $P/gateway/key.pem}"
dr nocert "{mode: SIMPLE, caCertificates: $P/root-cert.pem, sni: up.local}"
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
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: app, namespace: istio-system}
spec:
  hosts: ["app.local"]
  gateways: ["gw"]
  http:
YAML
    for h in up alt wrong skip san nosan mtls nocert dns; do
        echo "  - {name: $h, match: [{uri: {prefix: /$h/}}], route: [{destination: {host: $h.local}}]}"
    done
} >"$cfg/gw.yaml"

ok "gateway starts" mg_start_meshgate "$cfg"
u="http://app.local:$http"

body=$(mg_curl "$u/up/echo")
is "$(mg_json_field "$body" upstream)" tls "SIMPLE: proxied over TLS"
is "$(mg_json_field "$body" tls)" true "upstream saw TLS"
is "$(mg_json_field "$body" sni)" up.local "SNI defaults to the destination host"
is "$(mg_json_field "$(mg_curl "$u/alt/echo")" sni)" alt.local "DestinationRule sni is sent"
is "$(mg_http_code "$u/wrong/echo")" 503 "server certificate from another CA: 503"
is "$(mg_json_field "$(mg_curl "$u/skip/echo")" upstream)" tls "insecureSkipVerify accepts it"
is "$(mg_json_field "$(mg_curl "$u/san/echo")" upstream)" tls "subjectAltNames match"
is "$(mg_http_code "$u/nosan/echo")" 503 "subjectAltNames mismatch: 503"
body=$(mg_curl "$u/mtls/echo")
is "$(mg_json_field "$body" upstream)" mtls "MUTUAL: client certificate accepted upstream"
is "$(mg_json_field "$body" client_uri_san)" spiffe://cluster.local/ns/istio-system/sa/ingressgateway \
    "upstream saw the gateway's certificate"
is "$(mg_http_code "$u/nocert/echo")" 503 "without a client certificate the mTLS upstream refuses: 503"
is "$(mg_json_field "$(mg_curl "$u/dns/echo")" upstream)" plain "DNS endpoint (localhost) resolved"
# several requests reuse the TLS upstream connection
out=$(mg_curl "$u/up/echo" "$u/up/echo" "$u/up/echo")
like "$(echo "$out" | grep -o '"connection_request":[0-9]*' | tail -1)" '"connection_request":[2-9]' \
    "upstream TLS connection kept alive"

done_testing
