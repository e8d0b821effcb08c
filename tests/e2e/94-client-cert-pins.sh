#!/bin/bash
# 94-client-cert-pins.sh - ServerTLSSettings verifyCertificateHash,
# verifyCertificateSpki and caCrl restrict which client certificates a
# MUTUAL / OPTIONAL_MUTUAL server accepts (either pin list may match), and a
# Host switch to a pinned server from an unpinned one of the same CA gets
# 421. Regression: the three fields were read and then ignored, so every
# certificate of the CA was accepted (fail open). An ISTIO_MUTUAL server
# takes only peers of the mesh trust domain (or an alias), as sidecar
# inbound does. Regression: a certificate from the mesh root for another
# trust domain was accepted, and `namespaces` rules matched it.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/dp_common.sh"

mg_pki || bail_out "cannot make a PKI"
P=$MG_PKI
mg_start_upstream --name v1 || bail_out "upstream"
up=$MG_UPSTREAM_PORT
port=$(mg_free_port)
export MG_ADMIN=127.0.0.1:$(mg_free_port)
cfg=$(mg_tmpdir cfg)
dp_proxy "$cfg" "$MG_ADMIN" JSON
sed -i "s|^  workers: 2|  workers: 2\n  identity: {certificateChain: $P/gateway/cert-chain.pem, privateKey: $P/gateway/key.pem, rootCertificates: $P/root-cert.pem}|" \
    "$cfg/00-proxy.yaml"
dp_service "$cfg" backend backend.local "$up"
"$MESHGATE" ca issue --dir "$P" --spiffe ns/default/sa/sleep --trust-domain other.domain \
    --out-dir "$P/othertd" >/dev/null || bail_out "foreign trust domain certificate"
"$MESHGATE" ca issue --dir "$P" --spiffe ns/default/sa/sleep --trust-domain alias.domain \
    --out-dir "$P/aliastd" >/dev/null || bail_out "alias trust domain certificate"
printf '  trustDomainAliases: [alias.domain]\n' >>"$cfg/00-proxy.yaml"

leaf() { openssl x509 -in "$1/cert-chain.pem"; }
hash_hex=$(leaf "$P/sleep" | openssl x509 -outform DER | sha256sum | cut -d' ' -f1)
# upper case with colons, as `openssl x509 -fingerprint` prints it
hash_colons=$(leaf "$P/sleep" | openssl x509 -noout -fingerprint -sha256 | cut -d= -f2)
spki_httpbin=$(leaf "$P/httpbin" | openssl x509 -noout -pubkey | openssl pkey -pubin -outform DER |
    openssl dgst -sha256 -binary | base64)
[ -n "$hash_hex" ] && [ -n "$spki_httpbin" ] || bail_out "cannot compute the pins"

# a CRL from the mesh root that revokes httpbin
C=$(mg_tmpdir crl)
: >"$C/index.txt"
echo 01 >"$C/crlnumber"
cat >"$C/ca.cnf" <<CNF
[ca]
default_ca = d
[d]
database = $C/index.txt
crlnumber = $C/crlnumber
default_md = sha256
default_crl_days = 30
CNF
leaf "$P/httpbin" >"$C/httpbin.pem"
openssl ca -batch -config "$C/ca.cnf" -keyfile "$P/root-key.pem" -cert "$P/root-cert.pem" \
    -revoke "$C/httpbin.pem" >/dev/null 2>&1 &&
    openssl ca -batch -config "$C/ca.cnf" -keyfile "$P/root-key.pem" -cert "$P/root-cert.pem" \
        -gencrl -out "$C/crl.pem" >/dev/null 2>&1 || bail_out "cannot make a CRL"

cat >"$cfg/gw.yaml" <<YAML
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: $port, name: open, protocol: HTTPS}
    hosts: ["open.example.com"]
    tls: {mode: MUTUAL, credentialName: app-cert}
  - port: {number: $port, name: hash, protocol: HTTPS}
    hosts: ["hash.example.com"]
    tls: {mode: MUTUAL, credentialName: app-cert, verifyCertificateHash: ["$hash_hex"]}
  - port: {number: $port, name: colons, protocol: HTTPS}
    hosts: ["colons.example.com"]
    tls: {mode: OPTIONAL_MUTUAL, credentialName: app-cert, verifyCertificateHash: ["$hash_colons"]}
  - port: {number: $port, name: spki, protocol: HTTPS}
    hosts: ["spki.example.com"]
    tls: {mode: MUTUAL, credentialName: app-cert, verifyCertificateSpki: ["$spki_httpbin"]}
  - port: {number: $port, name: either, protocol: HTTPS}
    hosts: ["either.example.com"]
    tls: {mode: MUTUAL, credentialName: app-cert, verifyCertificateHash: ["$hash_hex"], verifyCertificateSpki: ["$spki_httpbin"]}
  - port: {number: $port, name: crl, protocol: HTTPS}
    hosts: ["crl.example.com"]
    tls: {mode: MUTUAL, credentialName: app-cert, caCrl: $C/crl.pem}
  - port: {number: $port, name: mesh, protocol: HTTPS}
    hosts: ["mesh.example.com"]
    tls: {mode: ISTIO_MUTUAL}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: app, namespace: istio-system}
spec:
  hosts: ["*.example.com"]
  gateways: ["gw"]
  http: [{name: main, route: [{destination: {host: backend.local}}]}]
YAML
ok "gateway starts" mg_start_meshgate "$cfg"

code() {   # HOST ID [curl args]: status for a client certificate ID (sleep, httpbin, none)
    local host=$1 id=$2 a=(--cacert "$P/root-cert.pem")
    shift 2
    [ "$id" = none ] || a+=(--cert "$P/$id/cert-chain.pem" --key "$P/$id/key.pem")
    mg_http_code "${a[@]}" "$@" "https://$host:$port/echo"
}

is "$(code open.example.com sleep)" 200 "no pins: sleep accepted"
is "$(code open.example.com httpbin)" 200 "no pins: httpbin accepted"
is "$(code hash.example.com sleep)" 200 "verifyCertificateHash: the pinned certificate accepted"
is "$(code hash.example.com httpbin)" 000 "verifyCertificateHash: another certificate of the CA refused"
is "$(code colons.example.com sleep)" 200 "hash with colons, upper case: the pinned certificate accepted"
is "$(code colons.example.com httpbin)" 000 "OPTIONAL_MUTUAL: a presented certificate off the pin refused"
is "$(code colons.example.com none)" 200 "OPTIONAL_MUTUAL: no certificate still fine"
is "$(code spki.example.com httpbin)" 200 "verifyCertificateSpki: the pinned key accepted"
is "$(code spki.example.com sleep)" 000 "verifyCertificateSpki: another key refused"
is "$(code either.example.com sleep)" 200 "both lists: the hash pin matches"
is "$(code either.example.com httpbin)" 200 "both lists: the SPKI pin matches"
is "$(code either.example.com gateway)" 000 \
    "both lists: a certificate matching neither refused"
is "$(code crl.example.com sleep)" 200 "caCrl: a certificate not revoked accepted"
is "$(code crl.example.com httpbin)" 000 "caCrl: the revoked certificate refused"

A=(-k --http1.1)
is "$(code mesh.example.com sleep "${A[@]}")" 200 "ISTIO_MUTUAL: a peer of the mesh trust domain accepted"
is "$(code mesh.example.com othertd "${A[@]}")" 000 "ISTIO_MUTUAL: a peer of another trust domain refused"
is "$(code mesh.example.com aliastd "${A[@]}")" 200 "ISTIO_MUTUAL: a peer of a trustDomainAliases domain accepted"

# the pinned server's policy cannot be reached through the unpinned one
is "$(code open.example.com httpbin -H "Host: hash.example.com:$port")" 421 \
    "SNI open, Host hash (pinned): 421"
is "$(code open.example.com httpbin -H "Host: crl.example.com:$port")" 421 \
    "SNI open, Host crl (with a CRL): 421"
is "$(code open.example.com httpbin -H "Host: open.example.com:$port")" 200 "SNI open, Host open: 200"

# a new CRL (sleep revoked too) applies without a signal, like certificates
leaf "$P/sleep" >"$C/sleep.pem"
openssl ca -batch -config "$C/ca.cnf" -keyfile "$P/root-key.pem" -cert "$P/root-cert.pem" \
    -revoke "$C/sleep.pem" >/dev/null 2>&1 &&
    openssl ca -batch -config "$C/ca.cnf" -keyfile "$P/root-key.pem" -cert "$P/root-cert.pem" \
        -gencrl -out "$C/crl.new" >/dev/null 2>&1 && mv "$C/crl.new" "$C/crl.pem" || bail_out "second CRL"
refused() { [ "$(code "$@")" = 000 ]; }
ok "the rewritten CRL is picked up: sleep refused" mg_wait_for 10 refused crl.example.com sleep
is "$(code hash.example.com sleep)" 200 "... and servers without the CRL still accept sleep"

done_testing
