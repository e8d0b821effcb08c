#!/bin/bash
# 53-jwt-token-extraction.sh - tokens are found where Envoy's jwt_authn
# finds them, every one found is verified, and every place one was found is
# stripped before the upstream (forwardOriginalToken false). Envoy (1.29+)
# looks for the header prefix anywhere in the value, skips characters that
# cannot begin a token after it and takes the rest of the value as the
# token; query parameter names and values are percent-decoded. Regression: with a
# forged token (attacker key, configured issuer) `Bearer  <t>` (two
# spaces), `Basic ..., Bearer <t>`, `Bearer "<t>"`, `XBearer <t>`,
# `?access%5Ftoken=<t>` and `?acc%65ss_token=<t>` (beside a valid header
# token) reached the upstream unchanged with 200. Each request is also put
# to `meshgate authz` (inline JWKS), which must agree.
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
ISS2=https://cookie.example.com
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
    fromCookies: [session-jwt]"
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

tok() { "$JWT_TOOL" sign --key "$K/$1.pem" --kid k1 --claims "{\"iss\":\"$2\",\"sub\":\"$3\",\"exp\":\"+3600\"}"; }
good=$(tok k1 "$ISS" alice)
forged=$(tok evil "$ISS" admin)
good2=$(tok k1 "$ISS2" carol)
forged2=$(tok evil "$ISS2" admin)

# tj NAME WANT_STATUS PATH [-H 'N: v']...: the request through the gateway
# (its body in TJ_BODY) and through the explainer, which must agree (exit 0
# for 2xx, 1 for 403, 3 for 401).
tj() {
    local name=$1 want=$2 path=$3 out code rc want_rc
    shift 3
    local c=(--cacert "$MG_PKI/root-cert.pem") a=(--url "$B$path" --sni app.example.com)
    while [ $# -gt 0 ]; do
        case $1 in
        -H) c+=(-H "$2"); a+=(--header "$2"); shift 2 ;;
        *) echo "tj: unknown option $1" >&2; return 2 ;;
        esac
    done
    out=$(mg_curl -w '\n%{http_code}' "${c[@]}" "$B$path" 2>/dev/null)
    code=${out##*$'\n'}
    TJ_BODY=${out%$'\n'*}
    "$MESHGATE" authz -c "$AZ_CFG" "${a[@]}" >"$MG_TMP/authz.out" 2>&1
    rc=$?
    case $want in
    401) want_rc=3 ;;
    403) want_rc=1 ;;
    *) want_rc=0 ;;
    esac
    is "$code" "$want" "$name"
    if ! is "$rc" "$want_rc" "$name (meshgate authz agrees: exit $want_rc)"; then
        diag - <"$MG_TMP/authz.out"
    fi
}

# the upstream saw neither the token nor the header/parameter/cookie it came in
no_token() {
    local name=$1 t=$2
    shift 2
    unlike "$TJ_BODY" "$t" "$name: the token does not reach the upstream"
    for re in "$@"; do
        unlike "$TJ_BODY" "$re" "$name: upstream has no /$re/"
    done
}

tj "baseline: valid Bearer token" 200 /need/x -H "Authorization: Bearer $good"
no_token "baseline" "$good" '"authorization"'
tj "baseline: forged Bearer token" 401 /need/x -H "Authorization: Bearer $forged"

# header forms: prefix anywhere, non-token characters skipped after it
ba='Basic dXNlcjpwYXNz'
tj "forged 'Bearer  <t>' (two spaces)" 401 /open/x -H "Authorization: Bearer  $forged"
tj "forged 'Basic ..., Bearer <t>'" 401 /open/x -H "Authorization: $ba, Bearer $forged"
tj "forged 'Bearer \"<t>\"'" 401 /open/x -H "Authorization: Bearer \"$forged\""
tj "forged 'XBearer <t>'" 401 /open/x -H "Authorization: XBearer $forged"
tj "'Bearer ' with nothing token-like after it" 401 /open/x -H 'Authorization: Bearer "'
tj "valid 'Bearer  <t>'" 200 /need/x -H "Authorization: Bearer  $good"
no_token "valid 'Bearer  <t>'" "$good" '"authorization"'
tj "valid 'Basic ..., Bearer <t>'" 200 /need/x -H "Authorization: $ba, Bearer $good"
no_token "valid 'Basic ..., Bearer <t>'" "$good" '"authorization"' dXNlcjpwYXNz
# Envoy 1.29+: everything after the prefix is the token, closing quote included
tj "valid 'Bearer \"<t>\"': the quote is part of the token" 401 /need/x -H "Authorization: Bearer \"$good\""
tj "valid 'XBearer <t>'" 200 /need/x -H "Authorization: XBearer $good"
no_token "valid 'XBearer <t>'" "$good" '"authorization"'
tj "a second prefix in one value, forged" 401 /open/x -H "Authorization: Bearer $good, Bearer $forged"
# the prefix is case-sensitive as configured (Envoy): 'bearer ' is no source
tj "'bearer <t>' (lower case) is not a token location" 200 /open/x -H "Authorization: bearer $forged"

# query forms: names and values percent-decoded
tj "forged ?access%5Ftoken=" 401 "/open/x?access%5Ftoken=$forged"
tj "forged ?acc%65ss_token=" 401 "/open/x?acc%65ss_token=$forged"
tj "valid header + forged ?access%5Ftoken=" 401 "/need/x?access%5Ftoken=$forged" \
    -H "Authorization: Bearer $good"
tj "valid header + forged ?acc%65ss_token=" 401 "/need/x?acc%65ss_token=$forged" \
    -H "Authorization: Bearer $good"
tj "forged ?access_token=%22<t>%22 (value decoded, whole)" 401 "/open/x?access_token=%22$forged%22"
tj "valid ?access%5Ftoken=" 200 "/need/x?a=1&access%5Ftoken=$good&b=2"
no_token "valid ?access%5Ftoken=" "$good" 'access%5Ftoken'
is "$(mg_json_field "$TJ_BODY" path)" "/need/x?a=1&b=2" "... the other parameters stay"
tj "valid header + valid ?acc%65ss_token=" 200 "/need/x?acc%65ss_token=$good" \
    -H "Authorization: Bearer $good"
no_token "valid header + valid ?acc%65ss_token=" "$good" 'acc%65ss_token' '"authorization"'
is "$(mg_json_field "$TJ_BODY" path)" "/need/x" "... the query is gone"

# cookies (a rule with fromCookies): verified, and the cookie removed
tj "forged session-jwt cookie" 401 /open/x -H "Cookie: a=1; session-jwt=$forged"
tj "valid session-jwt cookie" 200 /need/x -H "Cookie: a=1; session-jwt=$good2; b=2"
no_token "valid session-jwt cookie" "$good2" 'session-jwt'
ok "... the other cookies stay" mg_json_has_header "$TJ_BODY" cookie 'a=1; b=2'
tj "valid quoted session-jwt cookie, alone" 200 /need/x -H "Cookie: session-jwt=\"$good2\""
no_token "valid quoted session-jwt cookie" "$good2" '"cookie"'
# every token found is verified, also when another rule's token passes
tj "valid header token + forged cookie of the other rule" 401 /need/x \
    -H "Authorization: Bearer $good" -H "Cookie: session-jwt=$forged2"
tj "valid header token + valid cookie of the other rule" 200 /need/x \
    -H "Authorization: Bearer $good" -H "Cookie: session-jwt=$good2"
no_token "two rules' tokens" "$good2" '"authorization"' session-jwt

done_testing
