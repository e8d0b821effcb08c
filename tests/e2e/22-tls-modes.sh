#!/bin/bash
# 22-tls-modes.sh - server TLS on one port: SNI picks each server's own
# certificate (exact, wildcard, refused), MUTUAL / OPTIONAL_MUTUAL /
# ISTIO_MUTUAL client certificates, XFCC from the verified certificate, and
# 421 when Host names a server with other TLS settings than the SNI chose.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/dp_common.sh"

mg_pki || bail_out "cannot make a PKI"
P=$MG_PKI
"$MESHGATE" ca issue --dir "$P" --dns b.example.com --name b >/dev/null || bail_out "cert b"
"$MESHGATE" ca issue --dir "$P" --dns '*.wild.example.com' --name wild >/dev/null || bail_out "cert wild"
"$MESHGATE" ca init --dir "$MG_TMP/foreign" >/dev/null &&
    "$MESHGATE" ca issue --dir "$MG_TMP/foreign" --dns client.example.com --client --name client >/dev/null ||
    bail_out "foreign CA"
mg_start_upstream --name v1 || bail_out "upstream"
up=$MG_UPSTREAM_PORT
port=$(mg_free_port)
export MG_ADMIN=127.0.0.1:$(mg_free_port)
cfg=$(mg_tmpdir cfg)
dp_proxy "$cfg" "$MG_ADMIN" JSON
cat >>"$cfg/00-proxy.yaml" <<YAML
---
apiVersion: meshgate.io/v1alpha1
kind: Proxy
metadata: {name: gw, namespace: istio-system, labels: {istio: ingressgateway}}
spec:
  bindAddress: 127.0.0.1
  admin: $MG_ADMIN
  workers: 2
  serviceAccount: ingressgateway
  identity: {certificateChain: $P/gateway/cert-chain.pem, privateKey: $P/gateway/key.pem, rootCertificates: $P/root-cert.pem}
  credentials:
    a-cert: {certificate: $P/server.crt, privateKey: $P/server.key}
    b-cert: {certificate: $P/b.crt, privateKey: $P/b.key}
    wild-cert: {certificate: $P/wild.crt, privateKey: $P/wild.key}
    mtls-cert: {certificate: $P/server.crt, privateKey: $P/server.key, caCertificates: $P/root-cert.pem}
YAML
# keep only the MeshConfig from dp_proxy plus our own Proxy
awk 'BEGIN{RS="---\n"; ORS="---\n"} NR>1' "$cfg/00-proxy.yaml" >"$cfg/01.yaml" && rm "$cfg/00-proxy.yaml"
dp_service "$cfg" backend backend.local "$up"
cat >"$cfg/gw.yaml" <<YAML
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: $port, name: a, protocol: HTTPS}
    hosts: ["a.example.com"]
    tls: {mode: SIMPLE, credentialName: a-cert}
  - port: {number: $port, name: b, protocol: HTTPS}
    hosts: ["b.example.com"]
    tls: {mode: SIMPLE, credentialName: b-cert}
  - port: {number: $port, name: wild, protocol: HTTPS}
    hosts: ["*.wild.example.com"]
    tls: {mode: SIMPLE, credentialName: wild-cert}
  - port: {number: $port, name: mtls, protocol: HTTPS}
    hosts: ["mtls.example.com"]
    tls: {mode: MUTUAL, credentialName: mtls-cert}
  - port: {number: $port, name: opt, protocol: HTTPS}
    hosts: ["opt.example.com"]
    tls: {mode: OPTIONAL_MUTUAL, credentialName: mtls-cert}
  - port: {number: $port, name: san, protocol: HTTPS}
    hosts: ["san.example.com"]
    tls: {mode: MUTUAL, credentialName: mtls-cert, subjectAltNames: ["spiffe://cluster.local/ns/default/sa/sleep"]}
  - port: {number: $port, name: v12, protocol: HTTPS}
    hosts: ["v12.example.com"]
    tls: {mode: SIMPLE, credentialName: a-cert, maxProtocolVersion: TLSV1_2, cipherSuites: [ECDHE-ECDSA-AES256-GCM-SHA384, ECDHE-RSA-AES256-GCM-SHA384]}
  - port: {number: $port, name: mesh, protocol: HTTPS}
    hosts: ["mesh.example.com"]
    tls: {mode: ISTIO_MUTUAL}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: app, namespace: istio-system}
spec:
  hosts: ["a.example.com", "b.example.com", "*.wild.example.com", "mtls.example.com", "opt.example.com", "mesh.example.com", "v12.example.com", "san.example.com"]
  gateways: ["gw"]
  http:
  - name: all
    route:
    - destination: {host: backend.local}
YAML

ok "gateway starts" mg_start_meshgate "$cfg"

fp() { openssl x509 -noout -fingerprint -sha256 -in "$1" | cut -d= -f2; }
served_fp() {
    echo | timeout 5 openssl s_client -connect "127.0.0.1:$port" ${1:+-servername "$1"} 2>/dev/null |
        openssl x509 -noout -fingerprint -sha256 2>/dev/null | cut -d= -f2
}
is "$(served_fp a.example.com)" "$(fp "$P/server.crt")" "SNI a.example.com gets its certificate"
is "$(served_fp b.example.com)" "$(fp "$P/b.crt")" "SNI b.example.com gets its own certificate"
is "$(served_fp x.wild.example.com)" "$(fp "$P/wild.crt")" "wildcard server for x.wild.example.com"
is "$(served_fp deep.x.wild.example.com)" "$(fp "$P/wild.crt")" "wildcard also matches deeper names"
is "$(served_fp A.EXAMPLE.COM)" "$(fp "$P/server.crt")" "SNI is case-insensitive"
is "$(served_fp other.test)" "" "unknown SNI: handshake refused"
is "$(served_fp "")" "" "no SNI and no '*' server: handshake refused"

# the handshake summary line: "New, TLSv1.3, Cipher is TLS_AES_128_GCM_SHA256"
proto() { sleep 1 | timeout 5 openssl s_client -connect "127.0.0.1:$port" -servername "$1" "${@:2}" 2>/dev/null |
    grep -E '^New, ' | head -n 1; }
like "$(proto a.example.com)" '^New, TLSv1\.3,' "default maximum is TLS 1.3"
like "$(proto a.example.com)" 'Cipher is TLS_AES_128_GCM_SHA256' \
    "TLS 1.3 suite in Envoy's (BoringSSL's) order: AES-128-GCM, whatever the client lists first"
like "$(proto v12.example.com)" '^New, TLSv1\.2,' "maxProtocolVersion TLSV1_2 applies to its SNI"
like "$(proto v12.example.com)" 'Cipher is ECDHE-(ECDSA|RSA)-AES256-GCM-SHA384' "cipherSuites apply to its SNI"
unlike "$(proto a.example.com -tls1_1)" 'TLSv1\.1, Cipher is [A-Z]' "TLS 1.1 is never accepted"

C=(--http1.1 --cacert "$P/root-cert.pem")
is "$(mg_http_code "${C[@]}" "https://b.example.com:$port/echo")" 200 "SIMPLE server b answers"
is "$(mg_http_code "${C[@]}" "https://mtls.example.com:$port/echo")" 000 "MUTUAL: no client certificate refused"
is "$(mg_http_code "${C[@]}" --cert "$MG_TMP/foreign/client.crt" --key "$MG_TMP/foreign/client.key" \
    "https://mtls.example.com:$port/echo")" 000 "MUTUAL: certificate from a foreign CA refused"
body=$(mg_curl "${C[@]}" --cert "$P/client.crt" --key "$P/client.key" -H 'x-forwarded-client-cert: By=forged' \
    "https://mtls.example.com:$port/echo")
is "$(mg_json_field "$body" upstream)" v1 "MUTUAL: good client certificate accepted"
hash=$(openssl x509 -in "$P/client.crt" -outform DER | sha256sum | cut -d' ' -f1)
like "$body" "\"x-forwarded-client-cert\",\"By=spiffe://cluster.local/ns/istio-system/sa/ingressgateway;Hash=$hash\"" \
    "XFCC set from the verified certificate (client copy dropped)"
unlike "$body" "By=forged" "client XFCC not forwarded"
body=$(mg_curl "${C[@]}" --cert "$P/sleep/cert-chain.pem" --key "$P/sleep/key.pem" "https://mtls.example.com:$port/echo")
like "$body" 'URI=spiffe://cluster.local/ns/default/sa/sleep"' "XFCC carries the client URI SAN"
like "$(mg_curl "http://$MG_ADMIN/stats/prometheus")" \
    'istio_requests_total\{[^}]*response_code="200"[^}]*source_principal="spiffe://cluster.local/ns/default/sa/sleep"' \
    "istio_requests_total carries the source principal"

is "$(mg_http_code "${C[@]}" --cert "$P/sleep/cert-chain.pem" --key "$P/sleep/key.pem" \
    "https://san.example.com:$port/echo")" 200 "MUTUAL subjectAltNames: the listed identity is accepted"
is "$(mg_http_code "${C[@]}" --cert "$P/httpbin/cert-chain.pem" --key "$P/httpbin/key.pem" \
    "https://san.example.com:$port/echo")" 000 "MUTUAL subjectAltNames: another identity of the same CA is refused"

is "$(mg_http_code "${C[@]}" "https://opt.example.com:$port/echo")" 200 "OPTIONAL_MUTUAL: no certificate is fine"
body=$(mg_curl "${C[@]}" --cert "$P/client.crt" --key "$P/client.key" "https://opt.example.com:$port/echo")
like "$body" "Hash=$hash" "OPTIONAL_MUTUAL: a presented certificate is verified and forwarded"
is "$(mg_http_code "${C[@]}" --cert "$MG_TMP/foreign/client.crt" --key "$MG_TMP/foreign/client.key" \
    "https://opt.example.com:$port/echo")" 000 "OPTIONAL_MUTUAL: an untrusted certificate is refused"

# the gateway's mesh certificate names only its SPIFFE ID, so curl skips the host check (-k)
is "$(mg_http_code -k --http1.1 --cert "$P/sleep/cert-chain.pem" --key "$P/sleep/key.pem" \
    "https://mesh.example.com:$port/echo")" 200 "ISTIO_MUTUAL: mesh workload certificate accepted"
is "$(mg_http_code -k --http1.1 --cert "$P/client.crt" --key "$P/client.key" \
    "https://mesh.example.com:$port/echo")" 000 "ISTIO_MUTUAL: certificate without a SPIFFE URI refused"
is "$(mg_http_code -k --http1.1 "https://mesh.example.com:$port/echo")" 000 "ISTIO_MUTUAL: no certificate refused"
mesh_fp=$(echo | timeout 5 openssl s_client -connect "127.0.0.1:$port" -servername mesh.example.com \
    -cert "$P/sleep/cert-chain.pem" -key "$P/sleep/key.pem" 2>/dev/null | openssl x509 -noout -fingerprint -sha256 | cut -d= -f2)
is "$mesh_fp" "$(fp "$P/gateway/cert-chain.pem")" "ISTIO_MUTUAL presents the Proxy identity certificate"

# Host / SNI consistency
is "$(mg_http_code "${C[@]}" --resolve "a.example.com:$port:127.0.0.1" -H "Host: mtls.example.com" \
    "https://a.example.com:$port/echo")" 421 "SNI of a SIMPLE server, Host of the MUTUAL one: 421"
is "$(mg_http_code "${C[@]}" -H "Host: b.example.com" "https://a.example.com:$port/echo")" 421 \
    "Host of another SIMPLE server with another certificate: 421 (test 11: same TLS is served)"
is "$(mg_http_code "${C[@]}" -H "Host: nowhere.test" "https://a.example.com:$port/echo")" 404 \
    "Host of no server: 404"
ok "421 logged with its reason" dp_wait_log "$DP_ACCESS_LOG" '"reason":"host_sni_mismatch".*"response_code":421'

# resumption with the shared ticket key ring (any worker can resume)
sess=$MG_TMP/sess.pem
echo | timeout 5 openssl s_client -connect "127.0.0.1:$port" -servername a.example.com -tls1_2 \
    -sess_out "$sess" >/dev/null 2>&1
reused=0
for i in 1 2 3 4; do
    echo | timeout 5 openssl s_client -connect "127.0.0.1:$port" -servername a.example.com -tls1_2 \
        -sess_in "$sess" 2>/dev/null | grep -q '^Reused' && reused=$((reused + 1))
done
is "$reused" 4 "TLS session tickets resume on every connection (2 workers)"

# certificate files are re-read when they change, without a signal
cp "$P/b.crt" "$P/server.crt.new" && cp "$P/b.key" "$P/server.key.new" &&
    mv "$P/server.key.new" "$P/server.key" && mv "$P/server.crt.new" "$P/server.crt"
got=""
for ((i = 0; i < 50; i++)); do
    got=$(served_fp a.example.com)
    [ "$got" = "$(fp "$P/b.crt")" ] && break
    sleep 0.2
done
is "$got" "$(fp "$P/b.crt")" "a changed certificate file is picked up"
echo | timeout 5 openssl s_client -connect "127.0.0.1:$port" -servername a.example.com -tls1_2 \
    -sess_in "$sess" 2>/dev/null | grep -q '^Reused'
ok "sessions still resume after the certificate reload (shared ticket keys)" test $? -eq 0

done_testing
