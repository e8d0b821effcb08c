#!/bin/bash
# 95-upstream-crl.sh - DestinationRule tls.caCrl: an upstream whose server
# certificate the CRL revokes is refused (503), one it does not revoke is
# used. Regression: caCrl was read and ignored (a revoked upstream
# certificate was trusted).
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/dp_common.sh"

mg_pki || bail_out "cannot make a PKI"
P=$MG_PKI
"$MESHGATE" ca issue --dir "$P" --dns good.local --name good >/dev/null &&
    "$MESHGATE" ca issue --dir "$P" --dns revoked.local --name revoked >/dev/null || bail_out "upstream certs"
C=$(mg_tmpdir crl)
: >"$C/index.txt"
echo 01 >"$C/crlnumber"
printf '[ca]\ndefault_ca = d\n[d]\ndatabase = %s/index.txt\ncrlnumber = %s/crlnumber\ndefault_md = sha256\ndefault_crl_days = 30\n' \
    "$C" "$C" >"$C/ca.cnf"
openssl ca -batch -config "$C/ca.cnf" -keyfile "$P/root-key.pem" -cert "$P/root-cert.pem" \
    -revoke "$P/revoked.crt" >/dev/null 2>&1 &&
    openssl ca -batch -config "$C/ca.cnf" -keyfile "$P/root-key.pem" -cert "$P/root-cert.pem" \
        -gencrl -out "$C/crl.pem" >/dev/null 2>&1 || bail_out "cannot make a CRL"
mg_start_upstream --name good --tls-cert "$P/good.crt" --tls-key "$P/good.key" || bail_out "good upstream"
ug=$MG_UPSTREAM_PORT
mg_start_upstream --name revoked --tls-cert "$P/revoked.crt" --tls-key "$P/revoked.key" || bail_out "revoked upstream"
ur=$MG_UPSTREAM_PORT
http=$(mg_free_port)
export MG_ADMIN=127.0.0.1:$(mg_free_port)
cfg=$(mg_tmpdir cfg)
dp_proxy "$cfg" "$MG_ADMIN" JSON
dp_service "$cfg" good good.local "$ug"
dp_service "$cfg" revoked revoked.local "$ur"
dp_service "$cfg" nocrl nocrl.local "$ur"
cat >"$cfg/gw.yaml" <<YAML
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: good, namespace: istio-system}
spec:
  host: good.local
  trafficPolicy: {tls: {mode: SIMPLE, caCertificates: $P/root-cert.pem, caCrl: $C/crl.pem}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: revoked, namespace: istio-system}
spec:
  host: revoked.local
  trafficPolicy: {tls: {mode: SIMPLE, caCertificates: $P/root-cert.pem, caCrl: $C/crl.pem}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: nocrl, namespace: istio-system}
spec:
  host: nocrl.local
  trafficPolicy: {tls: {mode: SIMPLE, caCertificates: $P/root-cert.pem, sni: revoked.local}}
---
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
  - {name: good, match: [{uri: {prefix: /good/}}], route: [{destination: {host: good.local}}]}
  - {name: revoked, match: [{uri: {prefix: /revoked/}}], route: [{destination: {host: revoked.local}}]}
  - {name: nocrl, match: [{uri: {prefix: /nocrl/}}], route: [{destination: {host: nocrl.local}}]}
YAML
ok "gateway starts" mg_start_meshgate "$cfg"
u="http://app.local:$http"

is "$(mg_json_field "$(mg_curl "$u/good/echo")" upstream)" good "caCrl: a certificate it does not revoke is used"
is "$(mg_http_code "$u/revoked/echo")" 503 "caCrl: a revoked upstream certificate is refused (503)"
is "$(mg_json_field "$(mg_curl "$u/nocrl/echo")" upstream)" revoked "without caCrl the same upstream is used"

done_testing
