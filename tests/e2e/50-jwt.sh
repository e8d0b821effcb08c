#!/bin/bash
# 50-jwt.sh - RequestAuthentication through the real gateway, JWKS over
# HTTPS from mg_upstream: each invalid-token class gets 401 with Envoy's
# text and www-authenticate, a wrong audience 403, valid tokens feed
# AuthorizationPolicy requestPrincipals and claims (values / notValues),
# no token passes authentication but fails a policy that needs a
# principal, output headers reach the upstream, the token does not (and a
# client cannot forge the output headers). Requests with a valid token are
# also put to `meshgate authz --claims`, which must agree.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/az_common.sh"

JWT_TOOL=${MG_JWT_TOOL:-$MG_BUILDDIR/tests/helpers/mg_jwt_tool}
[ -x "$JWT_TOOL" ] || skip_all "mg_jwt_tool not built"
mg_pki || bail_out "cannot make a PKI"
K=$(mg_tmpdir keys)
J=$(mg_tmpdir jwks)
"$JWT_TOOL" genkey --type rsa --kid k1 --out "$K/k1.pem" --jwks-out "$J/jwks.json" >/dev/null &&
    "$JWT_TOOL" genkey --type ec256 --kid k2 --out "$K/k2.pem" >/dev/null &&
    "$JWT_TOOL" genkey --type rsa --kid k1 --out "$K/evil.pem" >/dev/null || bail_out "keys"
mg_start_upstream --name jwks --serve "$J" --tls-cert "$MG_PKI/server.crt" --tls-key "$MG_PKI/server.key" ||
    bail_out "JWKS server"
jport=$MG_UPSTREAM_PORT
mg_start_upstream --name v1 || bail_out "upstream"
up=$MG_UPSTREAM_PORT
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
    audiences: [app]
    outputPayloadToHeader: x-jwt-payload
    outputClaimToHeaders: [{header: x-jwt-sub, claim: sub}]"
az_policy "$AZ_CFG" allow "apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: jwt-allow, namespace: istio-system}
spec:
  action: ALLOW
  rules:
  - from: [{source: {requestPrincipals: [\"$ISS/alice\"]}}]
    to: [{operation: {paths: [\"/alice/*\"]}}]
  - to: [{operation: {paths: [\"/admins/*\"]}}]
    when:
    - key: request.auth.claims[groups]
      values: [admins]
  - from: [{source: {requestPrincipals: [\"*\"]}}]
    to: [{operation: {paths: [\"/staff/*\"]}}]
    when:
    - key: request.auth.claims[role]
      notValues: [guest]
  - from: [{source: {requestPrincipals: [\"*\"]}}]
    to: [{operation: {paths: [\"/any/*\", \"/echo\"]}}]
  - to: [{operation: {paths: [\"/open/*\"]}}]"

export MESHGATE_JWKS_KIDMISS_MS=300
ok "gateway starts (ready after the first JWKS fetch)" mg_start_meshgate "$AZ_CFG"
B=https://app.example.com:$https

tok() { "$JWT_TOOL" sign --key "$K/${2:-k1}.pem" --kid "${3:-k1}" --claims "$1"; }
claims() { printf '{"iss":"%s","sub":"%s","aud":"app","exp":"+3600"%s}' "${3:-$ISS}" "$1" "${2:-}"; }
# jz NAME WANT_STATUS PATH SUB [EXTRA_CLAIMS]: a valid token for SUB through
# the gateway and the same claims to the explainer
jz() {
    local c
    c=$(claims "$4" "${5:-}")
    az_req "$1" "$2" "$B$3" -H "Authorization: Bearer $(tok "$c")" --claims "$c"
}
# bad NAME STATUS BODY TOKEN: an invalid token gets STATUS and Envoy's BODY
bad() {
    local out code hdrs
    out=$(mg_curl --cacert "$MG_PKI/root-cert.pem" -D "$MG_TMP/h" -w '\n%{http_code}' \
        -H "Authorization: Bearer $4" "$B/open/x" 2>/dev/null)
    code=${out##*$'\n'}
    is "$code" "$2" "$1: status $2"
    is "${out%$'\n'*}" "$3" "$1: body"
    hdrs=$(tr -d '\r' <"$MG_TMP/h")
    if [ "$2" = 401 ]; then
        like "$hdrs" '^www-authenticate: Bearer realm="https://app\.example\.com:[0-9]+/open/x", error="invalid_token"$' \
            "$1: www-authenticate"
    fi
}

az_req "no token: authentication passes, open path allowed" 200 "$B/open/x"
az_req "no token: a policy that needs a principal denies" 403 "$B/any/x"
jz "valid token: requestPrincipals match" 200 /alice/x alice
jz "valid token: other principal denied" 403 /alice/x bob
jz "claims list value matches" 200 /admins/x carol ',"groups":["users","admins"]'
jz "claims value does not match" 403 /admins/x carol ',"groups":["users"]'
jz "claims notValues: excluded value denied" 403 /staff/x dave ',"role":"guest"'
jz "claims notValues: other value allowed" 200 /staff/x dave ',"role":"dev"'
jz "claims notValues: absent claim allowed" 200 /staff/x dave

c=$(claims alice)
body=$(mg_curl --cacert "$MG_PKI/root-cert.pem" -H "Authorization: Bearer $(tok "$c")" \
    -H 'x-jwt-sub: forged' "$B/echo")
is "$(mg_json_field "$body" upstream)" v1 "valid token reaches the upstream"
ok "outputClaimToHeaders: x-jwt-sub set from the claim" mg_json_has_header "$body" x-jwt-sub alice
like "$body" '"x-jwt-payload","[A-Za-z0-9_-]+"' "outputPayloadToHeader set"
unlike "$body" 'forged' "a client's x-jwt-sub is replaced"
unlike "$body" '"authorization"' "the token is removed upstream (forwardOriginalToken false)"
body=$(mg_curl --cacert "$MG_PKI/root-cert.pem" -H 'x-jwt-sub: forged' -H 'x-jwt-payload: e30' "$B/open/x")
unlike "$body" 'forged|"x-jwt-payload"' "without a token the client cannot set the output headers"
ok "access log has the request principal" \
    az_log_wait "\"path\":\"/echo\".*\"request_principal\":\"$ISS/alice\""

# the default token locations: Authorization: Bearer, then ?access_token=
body=$(mg_curl --cacert "$MG_PKI/root-cert.pem" "$B/echo?a=1&access_token=$(tok "$c")&b=2")
is "$(mg_json_field "$body" upstream)" v1 "token in the access_token query parameter accepted"
unlike "$(mg_json_field "$body" path)" 'access_token' "the query token is removed upstream"
out=$(mg_curl --cacert "$MG_PKI/root-cert.pem" -w '\n%{http_code}' "$B/open/x?access_token=abc.def" 2>/dev/null)
is "${out##*$'\n'}" 401 "an invalid query token is refused too"
# CORS preflight skips JWT (Istio bypass_cors_preflight): authorization sees no principal
is "$(mg_http_code --cacert "$MG_PKI/root-cert.pem" -X OPTIONS -H 'Origin: https://x.example.com' \
    -H 'Access-Control-Request-Method: GET' -H 'Authorization: Bearer abc.def' "$B/any/x")" 403 \
    "CORS preflight with an invalid token: JWT skipped, no principal, 403 from the policy"
is "$(mg_http_code --cacert "$MG_PKI/root-cert.pem" -X OPTIONS -H 'Origin: https://x.example.com' \
    -H 'Access-Control-Request-Method: GET' -H 'Authorization: Bearer abc.def' "$B/open/x")" 200 \
    "CORS preflight with an invalid token to an open path: 200"
bad "bad signature" 401 "Jwt verification fails" "$(tok "$c" evil k1)"
bad "unknown kid" 401 "Jwks doesn't have key to match kid or alg from Jwt" "$(tok "$c" k2 k2)"
bad "expired" 401 "Jwt is expired" \
    "$(tok "{\"iss\":\"$ISS\",\"sub\":\"alice\",\"aud\":\"app\",\"exp\":\"-600\"}")"
bad "not yet valid" 401 "Jwt not yet valid" \
    "$(tok "{\"iss\":\"$ISS\",\"sub\":\"alice\",\"aud\":\"app\",\"exp\":\"+3600\",\"nbf\":\"+600\"}")"
bad "unknown issuer" 401 "Jwt issuer is not configured" "$(tok "$(claims alice '' https://other.example.com)")"
bad "malformed" 401 "Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections" \
    "abc.def"
none=$(printf '{"alg":"none","typ":"JWT"}' | base64 -w0 | tr '+/' '-_' | tr -d '=').$(printf '%s' "$c" |
    base64 -w0 | tr '+/' '-_' | tr -d '=').c2ln
bad "alg none" 401 "Jwt header [alg] is not supported" "$none"
bad "audience not allowed" 403 "Audiences in Jwt are not allowed" \
    "$(tok "{\"iss\":\"$ISS\",\"sub\":\"alice\",\"aud\":\"other\",\"exp\":\"+3600\"}")"
like "$(az_metric 'meshgate_jwt_total\{result="denied_401"\}')" '^[1-9]' "401s counted"
like "$(az_metric 'meshgate_jwt_failures_total\{reason="expired"\}')" '^[1-9]' "JWT failures by reason: expired"
like "$(az_metric 'meshgate_jwt_failures_total\{reason="verification_failed"\}')" '^[1-9]' \
    "JWT failures by reason: a bad signature"
like "$(az_metric 'meshgate_jwt_failures_total\{reason="unknown_issuer"\}')" '^[1-9]' \
    "JWT failures by reason: unknown issuer"
ok "access log: reason jwt_error with the Envoy text" \
    az_log_wait '"reason":"jwt_error".*"authz_detail":"Jwt is expired"'

# key rotation: a new key appears in the JWKS; the first token with its kid
# is refused from the cached set and triggers the kid-miss refetch
"$JWT_TOOL" genkey --type ec256 --kid k3 --out "$K/k3.pem" >/dev/null &&
    "$JWT_TOOL" jwks "$K/k1.pem:k1" "$K/k3.pem:k3" >"$J/jwks.json.new" &&
    mv "$J/jwks.json.new" "$J/jwks.json" || bail_out "rotated JWKS"
t3=$(tok "$c" k3 k3)
is "$(mg_http_code --cacert "$MG_PKI/root-cert.pem" -H "Authorization: Bearer $t3" "$B/alice/x")" 401 \
    "rotated key: first use is refused from the cached set"
got=000
for ((i = 0; i < 50; i++)); do
    got=$(mg_http_code --cacert "$MG_PKI/root-cert.pem" -H "Authorization: Bearer $t3" "$B/alice/x")
    [ "$got" = 200 ] && break
    sleep 0.1
done
is "$got" 200 "rotated key picked up by the kid-miss refetch"

done_testing
