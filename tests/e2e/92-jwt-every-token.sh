#!/bin/bash
# 92-jwt-every-token.sh - every token a JWT rule finds must verify, as in
# Envoy's jwt_authn (a header token and a query token, two Authorization
# headers). Regression: only the first token found was verified; a forged
# token next to it (?access_token= after a valid Authorization header, or
# a second Authorization header with forwardOriginalToken) reached the
# upstream, which then saw an unverified token on an authenticated request.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/az_common.sh"

JWT_TOOL=${MG_JWT_TOOL:-$MG_BUILDDIR/tests/helpers/mg_jwt_tool}
[ -x "$JWT_TOOL" ] || skip_all "mg_jwt_tool not built"
mg_pki || bail_out "cannot make a PKI"
K=$(mg_tmpdir keys)
"$JWT_TOOL" genkey --type rsa --kid k1 --out "$K/k1.pem" --jwks-out "$K/jwks.json" >/dev/null &&
    "$JWT_TOOL" genkey --type rsa --kid k1 --out "$K/evil.pem" >/dev/null || bail_out "keys"
mg_start_upstream --name v1 || bail_out "upstream"
up=$MG_UPSTREAM_PORT
https=$(mg_free_port)
http=$(mg_free_port)
export MG_ADMIN=127.0.0.1:$(mg_free_port)
AZ_CFG=$(mg_tmpdir cfg)
ISS=https://issuer.example.com
ISS2=https://fwd.example.com
az_config "$AZ_CFG" "$MG_ADMIN" "$https" "$http" "$up"
jwks=$(sed 's/^/      /' "$K/jwks.json")
az_policy "$AZ_CFG" ra "apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt, namespace: istio-system}
spec:
  jwtRules:
  - issuer: $ISS
    jwks: |
$jwks
  - issuer: $ISS2
    jwks: |
$jwks
    fromHeaders: [{name: x-token, prefix: 'Bearer '}]
    forwardOriginalToken: true"
az_policy "$AZ_CFG" allow "apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: need-jwt, namespace: istio-system}
spec:
  action: ALLOW
  rules:
  - from: [{source: {requestPrincipals: [\"*\"]}}]"
ok "gateway starts" mg_start_meshgate "$AZ_CFG"
B=https://app.example.com:$https
C=(--cacert "$MG_PKI/root-cert.pem")

tok() { "$JWT_TOOL" sign --key "$K/$1.pem" --kid k1 --claims "{\"iss\":\"$2\",\"sub\":\"$3\",\"exp\":\"+3600\"}"; }
good=$(tok k1 "$ISS" alice)
forged=$(tok evil "$ISS" admin)
good2=$(tok k1 "$ISS2" alice)
forged2=$(tok evil "$ISS2" admin)

is "$(mg_http_code "${C[@]}" -H "Authorization: Bearer $good" "$B/echo")" 200 "one valid header token: 200"
is "$(mg_http_code "${C[@]}" "$B/echo?access_token=$good")" 200 "one valid query token: 200"
is "$(mg_http_code "${C[@]}" -H "Authorization: Bearer $forged" "$B/echo")" 401 "one forged token: 401"

out=$(mg_curl "${C[@]}" -w '\n%{http_code}' -H "Authorization: Bearer $good" "$B/echo?access_token=$forged")
is "${out##*$'\n'}" 401 "valid header token plus a forged query token: 401"
unlike "${out%$'\n'*}" "$forged" "... and the forged token does not reach the upstream"
is "$(mg_http_code "${C[@]}" -H "Authorization: Bearer $forged" "$B/echo?access_token=$good")" 401 \
    "forged header token plus a valid query token: 401"
out=$(mg_curl "${C[@]}" -w '\n%{http_code}' -H "Authorization: Bearer $good" "$B/echo?access_token=$good")
is "${out##*$'\n'}" 200 "the same valid token in both places: 200"
unlike "$(mg_json_field "${out%$'\n'*}" path)" access_token "... and the query token is removed upstream"

is "$(mg_http_code "${C[@]}" -H "Authorization: Bearer $good" -H "Authorization: Bearer $forged" "$B/echo")" \
    401 "two Authorization headers, the second forged: 401"
is "$(mg_http_code "${C[@]}" -H "Authorization: Bearer $forged" -H "Authorization: Bearer $good" "$B/echo")" \
    401 "two Authorization headers, the first forged: 401"

# forwardOriginalToken: true keeps the header, so an unverified second copy
# would be handed to the upstream as if it had been checked
out=$(mg_curl "${C[@]}" -w '\n%{http_code}' -H "x-token: Bearer $good2" "$B/echo")
is "${out##*$'\n'}" 200 "forwardOriginalToken rule: one valid token: 200"
ok "... and it is forwarded" mg_json_has_header "${out%$'\n'*}" x-token "Bearer $good2"
out=$(mg_curl "${C[@]}" -w '\n%{http_code}' -H "x-token: Bearer $good2" -H "x-token: Bearer $forged2" "$B/echo")
is "${out##*$'\n'}" 401 "forwardOriginalToken rule: a second, forged x-token: 401"
unlike "${out%$'\n'*}" "$forged2" "... and the forged token does not reach the upstream"

done_testing
