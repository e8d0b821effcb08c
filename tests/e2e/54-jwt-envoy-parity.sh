#!/bin/bash
# 54-jwt-envoy-parity.sh - a sample of tests/conformance/jwt-vectors.tsv
# through the live gateway: the answers where Envoy's jwt_authn decides
# otherwise than a strict JOSE reading (audience normalisation, a key
# without kid, NumericDates with fractions, exp 0, iat/jti types, the
# check order, 1.29+ header extraction, the kid -> X.509 certificate map),
# status and body word for word, and `meshgate authz` agrees on each.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/az_common.sh"

JWT_TOOL=${MG_JWT_TOOL:-$MG_BUILDDIR/tests/helpers/mg_jwt_tool}
[ -x "$JWT_TOOL" ] || skip_all "mg_jwt_tool not built"
command -v openssl >/dev/null || skip_all "openssl not installed"
mg_pki || bail_out "cannot make a PKI"
K=$(mg_tmpdir keys)
"$JWT_TOOL" genkey --type rsa --kid k1 --out "$K/k1.pem" --jwks-out "$K/jwks.json" >/dev/null &&
    "$JWT_TOOL" genkey --type rsa --out "$K/evil.pem" >/dev/null &&
    "$JWT_TOOL" genkey --type ec256 --out "$K/nokid.pem" --jwks-out "$K/nokid.json" >/dev/null &&
    "$JWT_TOOL" genkey --type rsa --out "$K/x509.pem" >/dev/null || bail_out "keys"
# the kid -> certificate map Google's service-account key URLs serve
openssl req -x509 -new -key "$K/x509.pem" -subj /CN=idp -days 1 -out "$K/x509.crt" 2>/dev/null ||
    bail_out "certificate"
cert=$(awk '{printf "%s\\n", $0}' "$K/x509.crt")
printf '{"sa-1": "%s"}\n' "$cert" >"$K/x509.json"
mg_start_upstream --name v1 || bail_out "upstream"
up=$MG_UPSTREAM_PORT
https=$(mg_free_port)
http=$(mg_free_port)
export MG_ADMIN=127.0.0.1:$(mg_free_port)
AZ_CFG=$(mg_tmpdir cfg)
ISS=https://issuer.example.com
ISS2=https://nokid.example.com
ISS3=https://sa.example.com
az_config "$AZ_CFG" "$MG_ADMIN" "$https" "$http" "$up"
ind() { sed 's/^/      /' "$1"; }
az_policy "$AZ_CFG" ra "apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt, namespace: istio-system}
spec:
  jwtRules:
  - issuer: $ISS
    audiences: [api, https://svc.example.com/]
    jwks: |
$(ind "$K/jwks.json")
  - issuer: $ISS2
    jwks: |
$(ind "$K/nokid.json")
  - issuer: $ISS3
    jwks: |
$(ind "$K/x509.json")"
az_policy "$AZ_CFG" allow "apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: need-jwt, namespace: istio-system}
spec:
  action: ALLOW
  rules:
  - from: [{source: {requestPrincipals: [\"*\"]}}]
    to: [{operation: {paths: [\"/need/*\"]}}]
  - to: [{operation: {paths: [\"/open/*\"]}}]"
ok "gateway starts" mg_start_meshgate "$AZ_CFG"
B=https://app.example.com:$https

# sign KEY KID CLAIMS: a token (KID '-' = none); exp/nbf/iat "+N" are now+N
sign() {
    local kid=()
    [ "$2" = - ] || kid=(--kid "$2")
    "$JWT_TOOL" sign --key "$K/$1.pem" "${kid[@]}" --claims "$3"
}
now=$(date +%s)

# pe NAME WANT_STATUS WANT_BODY|- PATH [-H 'N: v']...: through the gateway
# (status and, for 401/403, the body word for word) and through the
# explainer, whose exit status must agree (0 for 2xx, 1 for 403, 3 for 401).
pe() {
    local name=$1 want=$2 wbody=$3 path=$4 out code body rc want_rc
    shift 4
    local c=(--cacert "$MG_PKI/root-cert.pem") a=(--url "$B$path" --sni app.example.com)
    while [ $# -gt 0 ]; do
        c+=(-H "$2")
        a+=(--header "$2")
        shift 2
    done
    out=$(mg_curl -w '\n%{http_code}' "${c[@]}" "$B$path" 2>/dev/null)
    code=${out##*$'\n'}
    body=${out%$'\n'*}
    "$MESHGATE" authz -c "$AZ_CFG" "${a[@]}" >"$MG_TMP/authz.out" 2>&1
    rc=$?
    case $want in
    401) want_rc=3 ;;
    403) want_rc=1 ;;
    *) want_rc=0 ;;
    esac
    is "$code" "$want" "$name"
    [ "$wbody" = - ] || is "$body" "$wbody" "$name: body"
    if ! is "$rc" "$want_rc" "$name (meshgate authz agrees: exit $want_rc)"; then
        diag - <"$MG_TMP/authz.out"
    fi
}
bearer() { printf 'Authorization: Bearer %s' "$1"; }

t=$(sign k1 k1 "{\"iss\":\"$ISS\",\"sub\":\"alice\",\"aud\":\"api\",\"exp\":\"+3600\"}")
pe "valid token" 200 - /need/x -H "$(bearer "$t")"

# audiences: http(s):// and one trailing / dropped on both sides
t=$(sign k1 k1 "{\"iss\":\"$ISS\",\"sub\":\"alice\",\"aud\":\"https://api/\",\"exp\":\"+3600\"}")
pe "aud https://api/ matches api" 200 - /need/x -H "$(bearer "$t")"
t=$(sign k1 k1 "{\"iss\":\"$ISS\",\"sub\":\"alice\",\"aud\":\"svc.example.com\",\"exp\":\"+3600\"}")
pe "aud svc.example.com matches https://svc.example.com/" 200 - /need/x -H "$(bearer "$t")"

# NumericDates: fractions and exponents are numbers; exp 0 never expires
t=$(sign k1 k1 "{\"iss\":\"$ISS\",\"sub\":\"alice\",\"aud\":\"api\",\"exp\":$((now + 3600)).5}")
pe "exp with a fraction" 200 - /need/x -H "$(bearer "$t")"
t=$(sign k1 k1 "{\"iss\":\"$ISS\",\"sub\":\"alice\",\"aud\":\"api\",\"exp\":0}")
pe "exp 0 never expires" 200 - /need/x -H "$(bearer "$t")"
t=$(sign k1 k1 "{\"iss\":\"$ISS\",\"sub\":\"alice\",\"aud\":\"api\",\"exp\":-1}")
pe "negative exp" 401 "Jwt payload [exp] field is not a positive 64 bit integer" /open/x -H "$(bearer "$t")"
t=$(sign k1 k1 "{\"iss\":\"$ISS\",\"sub\":\"alice\",\"aud\":\"api\",\"exp\":\"+3600\",\"iat\":\"yesterday\"}")
pe "iat string" 401 "Jwt payload [iat] field is not an integer" /open/x -H "$(bearer "$t")"
t=$(sign k1 k1 "{\"iss\":\"$ISS\",\"sub\":\"alice\",\"aud\":\"api\",\"exp\":\"+3600\",\"jti\":42}")
pe "jti number" 401 "Jwt payload [jti] field is not a string" /open/x -H "$(bearer "$t")"

# the order: issuer, time, audiences, then key and signature
t=$(sign evil k1 "{\"iss\":\"$ISS\",\"sub\":\"alice\",\"aud\":\"other\",\"exp\":\"+3600\"}")
pe "wrong audience, wrong key: audience first" 403 "Audiences in Jwt are not allowed" /open/x -H "$(bearer "$t")"
t=$(sign evil k1 "{\"iss\":\"$ISS\",\"sub\":\"alice\",\"aud\":\"api\",\"exp\":\"+3600\",\"nbf\":\"+600\"}")
pe "future nbf, wrong key: time first" 401 "Jwt not yet valid" /open/x -H "$(bearer "$t")"
t=$(sign evil nope "{\"sub\":\"alice\",\"aud\":\"api\",\"exp\":\"+3600\"}")
pe "no iss, unknown kid: issuer first" 401 "Jwt issuer is not configured" /open/x -H "$(bearer "$t")"

# keys: a JWK without kid serves a token with one; the certificate map
t=$(sign nokid whatever "{\"iss\":\"$ISS2\",\"sub\":\"bob\",\"exp\":\"+3600\"}")
pe "JWK without kid, token with kid" 200 - /need/x -H "$(bearer "$t")"
t=$(sign x509 sa-1 "{\"iss\":\"$ISS3\",\"sub\":\"sa\",\"exp\":\"+3600\"}")
pe "kid -> X.509 certificate map" 200 - /need/x -H "$(bearer "$t")"
t=$(sign evil sa-1 "{\"iss\":\"$ISS3\",\"sub\":\"sa\",\"exp\":\"+3600\"}")
pe "certificate map, other key" 401 "Jwt verification fails" /open/x -H "$(bearer "$t")"

# extraction (Envoy 1.29+): everything after the prefix is the token
t=$(sign k1 k1 "{\"iss\":\"$ISS\",\"sub\":\"alice\",\"aud\":\"api\",\"exp\":\"+3600\"}")
pe "'Bearer <t>, x' is not a cut-off valid token" 401 "Jwt signature is an invalid Base64url encoded" \
    /open/x -H "Authorization: Bearer $t, x"
pe "'Bearer   <t>' (three spaces)" 200 - /need/x -H "Authorization: Bearer   $t"
pe "empty access_token= is a malformed token" 401 \
    "Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections" "/open/x?access_token="
pe "trailing dot: empty sections are dropped" 200 - /need/x -H "$(bearer "$t.")"
done_testing
