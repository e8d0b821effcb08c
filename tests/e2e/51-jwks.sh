#!/bin/bash
# 51-jwks.sh - the JWKS server is down when the gateway starts: /ready
# still comes up (the first fetch failed), tokens get 401 "Jwks remote fetch
# is failed" (never a built-in key, CVE-2026-31837) while tokenless
# requests still reach authorization; once the JWKS server comes up the
# retry picks the keys up and the same token is allowed.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/az_common.sh"

JWT_TOOL=${MG_JWT_TOOL:-$MG_BUILDDIR/tests/helpers/mg_jwt_tool}
[ -x "$JWT_TOOL" ] || skip_all "mg_jwt_tool not built"
mg_pki || bail_out "cannot make a PKI"
K=$(mg_tmpdir keys)
J=$(mg_tmpdir jwks)
"$JWT_TOOL" genkey --type ec256 --kid k1 --out "$K/k1.pem" --jwks-out "$J/jwks.json" >/dev/null ||
    bail_out "key"
mg_start_upstream --name v1 || bail_out "upstream"
up=$MG_UPSTREAM_PORT
jport=$(mg_free_port)
https=$(mg_free_port)
http=$(mg_free_port)
export MG_ADMIN=127.0.0.1:$(mg_free_port)
AZ_CFG=$(mg_tmpdir cfg)
ISS=https://issuer.example.com
az_config "$AZ_CFG" "$MG_ADMIN" "$https" "$http" "$up" "  caCertificates: $MG_PKI/root-cert.pem"
az_policy "$AZ_CFG" ra "apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt, namespace: istio-system}
spec:
  jwtRules:
  - issuer: $ISS
    jwksUri: https://localhost:$jport/file/jwks.json
    timeout: 1s"
az_policy "$AZ_CFG" allow "apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: need-jwt, namespace: istio-system}
spec:
  action: ALLOW
  rules:
  - from: [{source: {requestPrincipals: [\"$ISS/alice\"]}}]
    to: [{operation: {paths: [\"/alice/*\"]}}]
  - to: [{operation: {paths: [\"/open/*\"]}}]"

export MESHGATE_JWKS_BACKOFF_MS=300 MESHGATE_JWKS_BACKOFF_MAX_MS=300
ok "gateway becomes ready although the JWKS server is down" mg_start_meshgate "$AZ_CFG"
B=https://app.example.com:$https
c="{\"iss\":\"$ISS\",\"sub\":\"alice\",\"exp\":\"+3600\"}"
t=$("$JWT_TOOL" sign --key "$K/k1.pem" --kid k1 --claims "$c")
out=$(mg_curl --cacert "$MG_PKI/root-cert.pem" -w '\n%{http_code}' -H "Authorization: Bearer $t" "$B/alice/x")
is "${out##*$'\n'}" 401 "token while no key set was ever fetched: 401"
is "${out%$'\n'*}" "Jwks remote fetch is failed" "Envoy's text for a failed JWKS fetch"
az_req "tokenless request still reaches authorization" 200 "$B/open/x"
az_req "tokenless request to a principal-only path denied" 403 "$B/alice/x"

mg_start_upstream --listen "127.0.0.1:$jport" --name jwks --serve "$J" \
    --tls-cert "$MG_PKI/server.crt" --tls-key "$MG_PKI/server.key" || bail_out "JWKS server"
got=000
for ((i = 0; i < 100; i++)); do
    got=$(mg_http_code --cacert "$MG_PKI/root-cert.pem" -H "Authorization: Bearer $t" "$B/alice/x")
    [ "$got" = 200 ] && break
    sleep 0.1
done
is "$got" 200 "after the JWKS server came up the retry fetched the keys"
az_req "valid token allowed (explainer agrees with the claims)" 200 "$B/alice/x" \
    -H "Authorization: Bearer $t" --claims "$c"
like "$(grep -c 'GET /file/jwks.json' "$MG_UPSTREAM_LOG")" '^[1-9]' "the gateway fetched the JWKS over HTTPS"
dump=$(curl -s "http://$MG_ADMIN/config_dump")
like "$dump" '"jwt_rules":1,"jwks":\[\{"uri":"https://localhost:'"$jport"'/file/jwks.json"' \
    "config_dump lists the JWKS and its state"
like "$dump" '"fetch_fail":[1-9]' "config_dump shows the failed first attempts"
u="https://localhost:$jport/file/jwks.json"
like "$(mg_metric meshgate_jwks_fetches_total "uri=\"$u\",result=\"failure\"")" '^[1-9]' \
    "meshgate_jwks_fetches_total counts the failed fetches"
like "$(mg_metric meshgate_jwks_fetches_total "uri=\"$u\",result=\"success\"")" '^[1-9]' \
    "... and the successful one"

done_testing
