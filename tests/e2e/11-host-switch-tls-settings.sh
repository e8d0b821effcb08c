#!/bin/bash
# 11-host-switch-tls-settings.sh - a request whose Host names another server
# block of the port than the one its SNI chose is served only when the two
# blocks have the same TLS: mode, protocol versions, cipher suites, server
# certificate and client-certificate requirements. Otherwise 421, whatever
# the handshake happened to negotiate (the comparison is of the configured
# settings, as Envoy runs a connection on the one filter chain its SNI chose).
# Regression: a TLS 1.2 handshake to www (TLS 1.2 allowed) with
# Host: pci.example.com (minProtocolVersion TLSV1_3) was served by pci's
# routes, because only the client authentication of the blocks was compared.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"

mg_pki || bail_out "cannot make a PKI"
P=$MG_PKI
for n in www pci; do
    "$MESHGATE" ca issue --dir "$P" --dns "$n.example.com" --name "$n" >/dev/null || bail_out "$n cert"
done
# a second certificate with the same names as server.crt (another key)
"$MESHGATE" ca issue --dir "$P" --dns example.com --dns '*.example.com' --name wild2 >/dev/null ||
    bail_out "wild2 cert"
cp "$P/server.crt" "$P/copy.crt" && cp "$P/server.key" "$P/copy.key" || bail_out "copy"
mg_start_upstream --name up || bail_out "upstream"
up=$MG_UPSTREAM_PORT
port=$(mg_free_port)
export MG_ADMIN=127.0.0.1:$(mg_free_port)
cfg=$(mg_tmpdir cfg)
log=$MG_TMP/access.log
cat >"$cfg/gw.yaml" <<YAML
apiVersion: meshgate.io/v1alpha1
kind: Proxy
metadata: {name: gw, namespace: istio-system, labels: {istio: ingressgateway}}
spec:
  bindAddress: 127.0.0.1
  admin: $MG_ADMIN
  workers: 2
  credentials:
    www: {certificate: $P/www.crt, privateKey: $P/www.key}
    pci: {certificate: $P/pci.crt, privateKey: $P/pci.key}
    wild: {certificate: $P/server.crt, privateKey: $P/server.key}
    wild2: {certificate: $P/wild2.crt, privateKey: $P/wild2.key}
    wildca: {certificate: $P/server.crt, privateKey: $P/server.key, caCertificates: $P/root-cert.pem}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: $port, name: www, protocol: HTTPS}
    hosts: [www.example.com]
    tls: {mode: SIMPLE, credentialName: www}
  - port: {number: $port, name: pci, protocol: HTTPS}
    hosts: [pci.example.com]
    tls: {mode: SIMPLE, credentialName: pci, minProtocolVersion: TLSV1_3}
  - port: {number: $port, name: shop, protocol: HTTPS}
    hosts: [shop.example.com]
    tls: {mode: SIMPLE, credentialName: wild}
  # the same settings and the same certificate (a copy of the files, named
  # directly): one TLS, the Host may switch between shop and cart
  - port: {number: $port, name: cart, protocol: HTTPS}
    hosts: [cart.example.com]
    tls: {mode: SIMPLE, serverCertificate: $P/copy.crt, privateKey: $P/copy.key}
  - port: {number: $port, name: v13, protocol: HTTPS}
    hosts: [v13.example.com]
    tls: {mode: SIMPLE, credentialName: wild, minProtocolVersion: TLSV1_3}
  - port: {number: $port, name: ciph, protocol: HTTPS}
    hosts: [ciph.example.com]
    tls: {mode: SIMPLE, credentialName: wild, cipherSuites: [ECDHE-ECDSA-AES256-GCM-SHA384]}
  - port: {number: $port, name: other, protocol: HTTPS}
    hosts: [other.example.com]
    tls: {mode: SIMPLE, credentialName: wild2}
  - port: {number: $port, name: ma, protocol: HTTPS}
    hosts: [ma.example.com]
    tls: {mode: MUTUAL, credentialName: wildca}
  - port: {number: $port, name: mb, protocol: HTTPS}
    hosts: [mb.example.com]
    tls: {mode: MUTUAL, credentialName: wildca}
  - port: {number: $port, name: msan, protocol: HTTPS}
    hosts: [msan.example.com]
    tls: {mode: MUTUAL, credentialName: wildca, subjectAltNames: [client.example.com]}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: v, namespace: istio-system}
spec:
  hosts: [www.example.com, pci.example.com, shop.example.com, cart.example.com, v13.example.com,
          ciph.example.com, other.example.com, ma.example.com, mb.example.com, msan.example.com]
  gateways: [gw]
  http: [{route: [{destination: {host: up.local}}]}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: up, namespace: istio-system}
spec:
  hosts: [up.local]
  ports: [{number: $up, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1}]
---
apiVersion: meshgate.io/v1alpha1
kind: MeshConfig
spec:
  accessLogFile: $log
  accessLogEncoding: JSON
YAML
ok "gateway starts" mg_start_meshgate "$cfg" || bail_out "gateway"

# code SNI HOST [curl args]: the status of GET /echo with that SNI and Host
# (000: no HTTP answer, e.g. the handshake was refused).
code() {
    local sni=$1 host=$2
    shift 2
    mg_http_code --cacert "$P/root-cert.pem" -H "Host: $host:$port" "$@" "https://$sni:$port/echo"
}
T12=(--tlsv1.2 --tls-max 1.2)
T13=(--tlsv1.3)

# the servers themselves
is "$(code www.example.com www.example.com "${T12[@]}")" 200 "TLS 1.2 to www"
is "$(code pci.example.com pci.example.com "${T13[@]}")" 200 "TLS 1.3 to pci"
is "$(code pci.example.com pci.example.com "${T12[@]}")" 000 "TLS 1.2 to pci is refused (minProtocolVersion)"

# the hole: pci's routes over a TLS 1.2 connection
for v in --http1.1 --http2; do
    is "$(code www.example.com pci.example.com "${T12[@]}" $v)" 421 \
        "$v: TLS 1.2 to www, Host pci (TLS 1.3 only): 421"
    # decided: the settings differ (versions and certificate), so 421 even
    # when this handshake would have met pci's floor
    is "$(code www.example.com pci.example.com "${T13[@]}" $v)" 421 \
        "$v: TLS 1.3 to www, Host pci (other certificate, other versions): 421"
    is "$(code pci.example.com www.example.com "${T13[@]}" $v)" 421 \
        "$v: TLS 1.3 to pci, Host www: 421"
done

# one TLS: identical settings, one wildcard certificate (also when the two
# blocks name the same bytes differently)
for t in T12 T13; do
    declare -n tv=$t
    for v in --http1.1 --http2; do
        is "$(code shop.example.com cart.example.com "${tv[@]}" $v)" 200 \
            "$t $v: SNI shop, Host cart (same settings, same wildcard certificate): 200"
        is "$(code cart.example.com shop.example.com "${tv[@]}" $v)" 200 \
            "$t $v: SNI cart, Host shop: 200"
    done
done

# one setting differs: 421
is "$(code shop.example.com v13.example.com "${T13[@]}")" 421 \
    "SNI shop, Host v13 (only minProtocolVersion differs, TLS 1.3 negotiated): 421"
is "$(code shop.example.com ciph.example.com "${T12[@]}")" 421 \
    "SNI shop, Host ciph (only cipherSuites differ): 421"
is "$(code ciph.example.com shop.example.com "${T12[@]}")" 421 \
    "SNI ciph, Host shop: 421"
is "$(code shop.example.com other.example.com "${T13[@]}")" 421 \
    "SNI shop, Host other (another certificate with the same names): 421"
is "$(code other.example.com shop.example.com "${T12[@]}")" 421 \
    "SNI other, Host shop: 421"
# client-certificate requirements: two MUTUAL blocks alike share the TLS,
# an extra subjectAltNames requirement does not
CC=(--cert "$P/client.crt" --key "$P/client.key")
is "$(code ma.example.com mb.example.com "${CC[@]}")" 200 "MUTUAL alike: SNI ma, Host mb: 200"
is "$(code ma.example.com msan.example.com "${CC[@]}")" 421 \
    "SNI ma, Host msan (only subjectAltNames differ): 421"
is "$(code msan.example.com ma.example.com "${CC[@]}")" 421 "SNI msan, Host ma: 421"
ok "the 421 is logged with its reason" \
    mg_wait_for 5 grep -q '"reason":"host_sni_mismatch".*"response_code":421' "$log"

done_testing
