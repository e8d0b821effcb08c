#!/bin/bash
# 89-tls-hardening.sh - what a TLS scanner sees on the gateway's ports: the
# certificate chain is the configured one (a MUTUAL port's client-verification
# root is not appended), and with cipherSuites unset TLS 1.2 offers Envoy's
# default ECDHE+AEAD list (AES128-GCM first, no CBC suites); an OCSP
# response is stapled when the credential carries one (ocspStaple file,
# watched and re-read on change; a Secret's tls.ocsp-staple).
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/dp_common.sh"

mg_pki || bail_out "cannot make a PKI"
P=$MG_PKI
# ocsp_response STATUS OUT: a DER OCSP response for server.crt signed by the
# root (STATUS V = good, R = revoked), as an OCSP responder would return it
ocsp_response() {
    local d serial subj
    d=$(mg_tmpdir ocsp)
    serial=$(openssl x509 -noout -serial -in "$P/server.crt" | cut -d= -f2)
    subj=$(openssl x509 -noout -subject -nameopt compat -in "$P/server.crt" | sed 's/^subject=//')
    if [ "$1" = R ]; then
        printf 'R\t301231235959Z\t240101000000Z\t%s\tunknown\t%s\n' "$serial" "$subj" >"$d/index.txt"
    else
        printf 'V\t301231235959Z\t\t%s\tunknown\t%s\n' "$serial" "$subj" >"$d/index.txt"
    fi
    openssl ocsp -issuer "$P/root-cert.pem" -cert "$P/server.crt" -no_nonce -reqout "$d/req.der" >/dev/null 2>&1 &&
        openssl ocsp -index "$d/index.txt" -rsigner "$P/root-cert.pem" -rkey "$P/root-key.pem" \
            -CA "$P/root-cert.pem" -reqin "$d/req.der" -respout "$2" -ndays 1 >/dev/null 2>&1
}
ocsp_response V "$MG_TMP/good.der" && ocsp_response R "$MG_TMP/revoked.der" || bail_out "cannot make OCSP responses"
cp "$MG_TMP/good.der" "$MG_TMP/staple.der"
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
  workers: 1
  credentials:
    a-cert: {certificate: $P/server.crt, privateKey: $P/server.key}
    mtls-cert: {certificate: $P/server.crt, privateKey: $P/server.key, caCertificates: $P/root-cert.pem}
    ocsp-cert: {certificate: $P/server.crt, privateKey: $P/server.key, ocspStaple: $MG_TMP/staple.der}
YAML
cat >"$cfg/secret.yaml" <<YAML
apiVersion: v1
kind: Secret
metadata: {name: stapled-secret, namespace: istio-system}
type: kubernetes.io/tls
data:
  tls.crt: $(base64 -w0 "$P/server.crt")
  tls.key: $(base64 -w0 "$P/server.key")
  tls.ocsp-staple: $(base64 -w0 "$MG_TMP/good.der")
YAML
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
  - port: {number: $port, name: mtls, protocol: HTTPS}
    hosts: ["mtls.example.com"]
    tls: {mode: MUTUAL, credentialName: mtls-cert}
  - port: {number: $port, name: opt, protocol: HTTPS}
    hosts: ["opt.example.com"]
    tls: {mode: OPTIONAL_MUTUAL, credentialName: mtls-cert}
  - port: {number: $port, name: ocsp, protocol: HTTPS}
    hosts: ["ocsp.example.com"]
    tls: {mode: SIMPLE, credentialName: ocsp-cert}
  - port: {number: $port, name: sec, protocol: HTTPS}
    hosts: ["sec.example.com"]
    tls: {mode: SIMPLE, credentialName: stapled-secret}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: app, namespace: istio-system}
spec:
  hosts: ["a.example.com", "mtls.example.com", "opt.example.com", "ocsp.example.com", "sec.example.com"]
  gateways: ["gw"]
  http:
  - route:
    - destination: {host: backend.local}
YAML

ok "gateway starts" mg_start_meshgate "$cfg"

configured=$(grep -c 'BEGIN CERTIFICATE' "$P/server.crt")
# certificates the server sends, as s_client -showcerts prints them
sent() { echo | timeout 5 openssl s_client -connect "127.0.0.1:$port" -servername "$1" -showcerts "${@:2}" \
    2>/dev/null | grep -c 'BEGIN CERTIFICATE'; }
# how many of the sent certificates are the root CA (by fingerprint)
root_sent() {
    local d n=0 f root
    d=$(mg_tmpdir chain)
    echo | timeout 5 openssl s_client -connect "127.0.0.1:$port" -servername "$1" -showcerts "${@:2}" 2>/dev/null |
        awk -v d="$d" '/BEGIN CERTIFICATE/ {n++} n && !done[n] {print > (d "/" n ".pem")} /END CERTIFICATE/ {done[n]=1}'
    root=$(openssl x509 -noout -fingerprint -sha256 -in "$P/root-cert.pem")
    for f in "$d"/*.pem; do
        [ -f "$f" ] && [ "$(openssl x509 -noout -fingerprint -sha256 -in "$f")" = "$root" ] && n=$((n + 1))
    done
    echo "$n"
}
is "$(sent a.example.com)" "$configured" "SIMPLE: the configured chain ($configured) is sent"
is "$(sent mtls.example.com -cert "$P/client.crt" -key "$P/client.key")" "$configured" \
    "MUTUAL: only the configured chain, not the client-verification root"
is "$(sent opt.example.com)" "$configured" "OPTIONAL_MUTUAL: only the configured chain"
is "$(root_sent mtls.example.com -cert "$P/client.crt" -key "$P/client.key")" 0 "MUTUAL: the root CA is not in the chain"

# the handshake summary line: "New, TLSv1.2, Cipher is ECDHE-RSA-AES128-GCM-SHA256"
suite() { sleep 1 | timeout 5 openssl s_client -connect "127.0.0.1:$port" -servername "$1" "${@:2}" 2>/dev/null |
    grep -E '^New, ' | head -n 1; }
like "$(suite a.example.com -tls1_2)" 'Cipher is ECDHE-(ECDSA|RSA)-AES128-GCM-SHA256' \
    "TLS 1.2 default: AES128-GCM preferred"
like "$(suite a.example.com -tls1_2 -cipher 'ECDHE-RSA-CHACHA20-POLY1305:ECDHE-ECDSA-CHACHA20-POLY1305')" \
    'Cipher is ECDHE-(ECDSA|RSA)-CHACHA20-POLY1305' "TLS 1.2 default: CHACHA20 accepted"
for c in ECDHE-ECDSA-AES256-SHA384 ECDHE-ECDSA-AES128-SHA256 ECDHE-ECDSA-AES256-SHA ECDHE-ECDSA-AES128-CCM; do
    unlike "$(suite a.example.com -tls1_2 -cipher "$c")" "Cipher is $c" "TLS 1.2 default: $c refused"
done
unlike "$(suite mtls.example.com -tls1_2 -cipher ECDHE-ECDSA-AES256-SHA384 -cert "$P/client.crt" -key "$P/client.key")" \
    'Cipher is ECDHE-ECDSA-AES256-SHA384' "the default list applies on the port's other servers too"
like "$(suite a.example.com)" '^New, TLSv1\.3,' "TLS 1.3 still negotiated by default"
is "$(mg_http_code --http1.1 --cacert "$P/root-cert.pem" "https://a.example.com:$port/echo")" 200 "requests still served"

# s_client -status prints the stapled response ("Cert Status: good") or
# "OCSP response: no response sent"
status() { echo | timeout 5 openssl s_client -connect "127.0.0.1:$port" -servername "$1" -status "${@:2}" 2>/dev/null |
    grep -E 'OCSP response: no response sent|OCSP Response Status|Cert Status' | tr -s ' ' | tr '\n' ';'; }
like "$(status ocsp.example.com)" 'OCSP Response Status: successful.*Cert Status: good' "ocspStaple file: stapled"
like "$(status ocsp.example.com -tls1_2)" 'Cert Status: good' "ocspStaple file: stapled over TLS 1.2 too"
like "$(status sec.example.com)" 'OCSP Response Status: successful.*Cert Status: good' "Secret tls.ocsp-staple: stapled"
like "$(status a.example.com)" 'no response sent' "no staple configured: none sent"
cp "$MG_TMP/revoked.der" "$MG_TMP/staple.der.new" && mv "$MG_TMP/staple.der.new" "$MG_TMP/staple.der"
for ((i = 0; i < 50; i++)); do
    case $(status ocsp.example.com) in *'Cert Status: revoked'*) break ;; esac
    sleep 0.1
done
like "$(status ocsp.example.com)" 'Cert Status: revoked' "a new staple file is re-read without a signal"
like "$(status sec.example.com)" 'Cert Status: good' "the Secret's staple is unchanged"
printf 'not DER' >"$MG_TMP/staple.der.new" && mv "$MG_TMP/staple.der.new" "$MG_TMP/staple.der"
ok "a bad staple file is logged" mg_wait_log "$MG_MESHGATE_LOG" "OCSP staple of credential .ocsp-cert."
like "$(status ocsp.example.com)" 'Cert Status: revoked' "and the last good snapshot keeps serving"

done_testing
