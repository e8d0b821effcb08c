#!/bin/bash
# 41-authz-principals.sh - peer identity for AuthorizationPolicy from client
# certificates: principals, namespaces, serviceAccounts, notPrincipals on an
# OPTIONAL_MUTUAL server (no certificate = no principal; a certificate with
# no URI SAN, or with two, = no principal) and on an ISTIO_MUTUAL server.
# Every request is also put to `meshgate authz`, which must agree.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/az_common.sh"

mg_pki || bail_out "cannot make a PKI"
P=$MG_PKI
"$MESHGATE" ca issue --dir "$P" --spiffe ns/dev/sa/my.sa --out-dir "$P/mysa" >/dev/null || bail_out "my.sa cert"
"$MESHGATE" ca issue --dir "$P" --spiffe ns/dev/sa/myxsa --out-dir "$P/myxsa" >/dev/null || bail_out "myxsa cert"
# a client certificate with two URI SANs, signed by the mesh root
mkdir -p "$P/two" && {
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/O=test" \
        -keyout "$P/two/key.pem" -out "$P/two/req.pem" 2>/dev/null &&
        printf 'subjectAltName=URI:spiffe://cluster.local/ns/default/sa/sleep,URI:spiffe://cluster.local/ns/default/sa/other\nextendedKeyUsage=clientAuth\n' >"$P/two/ext" &&
        openssl x509 -req -in "$P/two/req.pem" -CA "$P/root-cert.pem" -CAkey "$P/root-key.pem" \
            -CAcreateserial -days 1 -extfile "$P/two/ext" -out "$P/two/cert-chain.pem" 2>/dev/null
} || bail_out "two-SAN cert"
mg_start_upstream --name v1 || bail_out "upstream"
up=$MG_UPSTREAM_PORT
https=$(mg_free_port)
http=$(mg_free_port)
export MG_ADMIN=127.0.0.1:$(mg_free_port)
AZ_CFG=$(mg_tmpdir cfg)
az_config "$AZ_CFG" "$MG_ADMIN" "$https" "$http" "$up"
# one more server: MUTUAL with insecureSkipVerify (any client certificate
# is accepted, so none may give a principal)
awk -v p="$http" '$0 ~ "number: "p", name: http," {
    print "  - port: {number: '"$https"', name: insecure, protocol: HTTPS}"
    print "    hosts: [\"insecure.example.com\"]"
    print "    tls: {mode: MUTUAL, credentialName: mtls-cert, insecureSkipVerify: true}" } { print }' \
    "$AZ_CFG/10-gw.yaml" >"$AZ_CFG/10-gw.yaml.new" && mv "$AZ_CFG/10-gw.yaml.new" "$AZ_CFG/10-gw.yaml"
az_policy "$AZ_CFG" allow "apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: by-identity, namespace: istio-system}
spec:
  action: ALLOW
  rules:
  - from: [{source: {principals: [\"cluster.local/ns/default/sa/sleep\"]}}]
    to: [{operation: {paths: [\"/p/*\"]}}]
  - from: [{source: {namespaces: [\"default\"]}}]
    to: [{operation: {paths: [\"/ns/*\"]}}]
  - from: [{source: {serviceAccounts: [\"default/httpbin\", \"dev/my.sa\"]}}]
    to: [{operation: {paths: [\"/sa/*\"]}}]
  - from: [{source: {principals: [\"*\"]}}]
    to: [{operation: {paths: [\"/any/*\"]}}]
  - to: [{operation: {paths: [\"/open/*\"]}}]"
az_policy "$AZ_CFG" deny "apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-plain, namespace: istio-system}
spec:
  action: DENY
  rules:
  - from: [{source: {notPrincipals: [\"*\"]}}]
    to: [{operation: {paths: [\"/open/authn/*\"]}}]"
ok "gateway starts" mg_start_meshgate "$AZ_CFG"
M=https://mtls.example.com:$https
SLEEP=cluster.local/ns/default/sa/sleep
HTTPBIN=cluster.local/ns/default/sa/httpbin

az_req "principal allowed (sleep)" 200 "$M/p/x" --cert "$P/sleep" --principal "$SLEEP"
like "$AZ_BODY" '"x-forwarded-client-cert","By=[^"]*URI=spiffe://cluster.local/ns/default/sa/sleep"' \
    "upstream saw the client's URI SAN in XFCC"
az_req "other principal denied (httpbin)" 403 "$M/p/x" --cert "$P/httpbin" --principal "$HTTPBIN"
az_req "no certificate: no principal" 403 "$M/p/x"
az_req "certificate without URI SAN: no principal" 403 "$M/p/x" \
    --curl --cert --curl "$P/client.crt" --curl --key --curl "$P/client.key"
az_req "certificate with two URI SANs: no principal" 403 "$M/p/x" --cert "$P/two"
az_req "namespaces: default allowed (sleep)" 200 "$M/ns/x" --cert "$P/sleep" --principal "$SLEEP"
az_req "namespaces: default allowed (httpbin)" 200 "$M/ns/x" --cert "$P/httpbin" --principal "$HTTPBIN"
az_req "namespaces: other namespace denied" 403 "$M/ns/x" --cert "$P/mysa" \
    --principal cluster.local/ns/dev/sa/my.sa
az_req "serviceAccounts: default/httpbin allowed" 200 "$M/sa/x" --cert "$P/httpbin" --principal "$HTTPBIN"
az_req "serviceAccounts: default/sleep denied" 403 "$M/sa/x" --cert "$P/sleep" --principal "$SLEEP"
az_req "serviceAccounts: dev/my.sa allowed" 200 "$M/sa/x" --cert "$P/mysa" \
    --principal cluster.local/ns/dev/sa/my.sa
az_req "serviceAccounts: '.' is literal (CVE-2026-39350): dev/myxsa denied" 403 "$M/sa/x" \
    --cert "$P/myxsa" --principal cluster.local/ns/dev/sa/myxsa
az_req "principals '*': any verified peer" 200 "$M/any/x" --cert "$P/httpbin" --principal "$HTTPBIN"
az_req "principals '*': plaintext peer denied" 403 "$M/any/x"
az_req "open path without certificate" 200 "$M/open/x"
az_req "notPrincipals '*' DENY: no certificate denied" 403 "$M/open/authn/x"
az_req "notPrincipals '*' DENY: a verified peer passes" 200 "$M/open/authn/x" --cert "$P/sleep" \
    --principal "$SLEEP"
az_req "SIMPLE server: never a principal" 403 "https://app.example.com:$https/p/x"
az_req "plain HTTP: never a principal" 403 "http://app.example.com:$http/p/x"

az_req "insecureSkipVerify server: a valid certificate still gives no principal" 403 \
    "https://insecure.example.com:$https/p/x" --cert "$P/sleep"
az_req "insecureSkipVerify server: open path works" 200 "https://insecure.example.com:$https/open/x" \
    --cert "$P/sleep"

# ISTIO_MUTUAL: the gateway's own mesh certificate (no DNS name: -k), client
# certificate from the mesh root required
I=https://mesh.example.com:$https
az_req "ISTIO_MUTUAL: sleep allowed" 200 "$I/p/x" --curl -k --cert "$P/sleep" --principal "$SLEEP"
az_req "ISTIO_MUTUAL: httpbin denied" 403 "$I/p/x" --curl -k --cert "$P/httpbin" --principal "$HTTPBIN"

done_testing
