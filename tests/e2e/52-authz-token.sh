#!/bin/bash
# 52-authz-token.sh - `meshgate authz --token --jwks` and the real gateway
# agree on real tokens: the gateway fetches the JWKS over HTTPS from
# mg_upstream, the explainer reads the same file with --jwks URI=FILE.
# Each request goes through both; the explainer's exit status must map the
# gateway's answer (2xx 0, 403 1, 401 3) and, for a refusal, its authn line
# must carry the gateway's status and body. Without --jwks the explainer
# answers what the gateway answers before its first fetch.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/az_common.sh"

JWT_TOOL=${MG_JWT_TOOL:-$MG_BUILDDIR/tests/helpers/mg_jwt_tool}
[ -x "$JWT_TOOL" ] || skip_all "mg_jwt_tool not built"
mg_pki || bail_out "cannot make a PKI"
K=$(mg_tmpdir keys)
J=$(mg_tmpdir jwks)
"$JWT_TOOL" genkey --type rsa --kid k1 --out "$K/k1.pem" --jwks-out "$J/jwks.json" >/dev/null &&
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
URI=https://localhost:$jport/file/jwks.json
az_config "$AZ_CFG" "$MG_ADMIN" "$https" "$http" "$up" "  caCertificates: $MG_PKI/root-cert.pem"
az_policy "$AZ_CFG" ra "apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt, namespace: istio-system}
spec:
  jwtRules:
  - issuer: $ISS
    jwksUri: $URI
    audiences: [app]
    outputClaimToHeaders:
    - header: x-jwt-group
      claim: group"
az_policy "$AZ_CFG" allow "apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow, namespace: istio-system}
spec:
  action: ALLOW
  rules:
  - from: [{source: {requestPrincipals: [\"$ISS/alice\"]}}]
    to: [{operation: {paths: [\"/alice/*\"]}}]
  - to: [{operation: {paths: [\"/admins/*\"]}}]
    when:
    - key: request.auth.claims[group]
      values: [admins]
  - to: [{operation: {paths: [\"/hdr/*\"]}}]
    when:
    - key: request.headers[x-jwt-group]
      values: [admins]
  - to: [{operation: {paths: [\"/open/*\"]}}]"

ok "gateway starts (ready after the first JWKS fetch)" mg_start_meshgate "$AZ_CFG"
B=https://app.example.com:$https

tok() { "$JWT_TOOL" sign --key "$K/${2:-k1}.pem" --kid k1 --claims "$1"; }
claims() { printf '{"iss":"%s","sub":"%s","aud":"%s","exp":"%s"%s}' "$ISS" "$1" "${3:-app}" "${4:-+3600}" "${2:-}"; }

# tz NAME WANT_STATUS PATH [-X M] [-H 'N: v'] [--token T] [--nojwks]: the
# request through the gateway and the explainer (--jwks URI=FILE unless
# --nojwks), which must agree.
tz() {
    local name=$1 want=$2 path=$3 out code body rc want_rc jw=1
    shift 3
    local c=(--cacert "$MG_PKI/root-cert.pem") a=(--url "$B$path" --sni app.example.com)
    while [ $# -gt 0 ]; do
        case $1 in
        -X) c+=(-X "$2"); a+=(--method "$2"); shift 2 ;;
        -H) c+=(-H "$2"); a+=(--header "$2"); shift 2 ;;
        --token) c+=(-H "Authorization: Bearer $2"); a+=(--token "$2"); shift 2 ;;
        --nojwks) jw=0; shift ;;
        *) echo "tz: unknown option $1" >&2; return 2 ;;
        esac
    done
    [ "$jw" = 1 ] && a+=(--jwks "$URI=$J/jwks.json")
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
    if ! is "$rc" "$want_rc" "$name (meshgate authz --token agrees: exit $want_rc)"; then
        diag - <"$MG_TMP/authz.out"
    fi
    case $want:$body in
    401:* | "403:Audiences in Jwt are not allowed")     # refused by authentication
        ok "$name (explainer: authn: $want $body)" grep -qxF "authn: $want $body" "$MG_TMP/authz.out" ;;
    esac
}

alice=$(tok "$(claims alice)")
tz "no token, open path" 200 /open/x
tz "no token, principal-only path" 403 /alice/x
tz "valid token: requestPrincipals" 200 /alice/x --token "$alice"
ok "explainer names the principal" grep -qxF "authn: ok principal=$ISS/alice" "$MG_TMP/authz.out"
tz "valid token of another subject" 403 /alice/x --token "$(tok "$(claims bob)")"
tz "claim value matches" 200 /admins/x --token "$(tok "$(claims carol ',"group":"admins"')")"
tz "claim value does not match" 403 /admins/x --token "$(tok "$(claims carol ',"group":"users"')")"
tz "outputClaimToHeaders seen by authorization" 200 /hdr/x --token "$(tok "$(claims carol ',"group":"admins"')")"
tz "a client's output header is dropped" 403 /hdr/x -H 'x-jwt-group: admins'
tz "token in the query" 200 "/alice/x?access_token=$alice"
tz "token in an Authorization --header" 200 /alice/x -H "Authorization: Bearer $alice"
tz "bad signature" 401 /open/x --token "$(tok "$(claims alice)" evil)"
tz "expired" 401 /open/x --token "$(tok "$(claims alice '' app -600)")"
tz "malformed" 401 /open/x --token abc.def
tz "audience not allowed" 403 /open/x --token "$(tok "$(claims alice '' other)")"
tz "CORS preflight, invalid token, principal-only path" 403 /alice/x -X OPTIONS \
    -H 'Origin: https://x.example.com' -H 'Access-Control-Request-Method: GET' --token abc.def
tz "CORS preflight, invalid token, open path" 200 /open/x -X OPTIONS \
    -H 'Origin: https://x.example.com' -H 'Access-Control-Request-Method: GET' --token abc.def

# no --jwks: the explainer has no key set, as the gateway before its first fetch
"$MESHGATE" authz -c "$AZ_CFG" --url "$B/alice/x" --token "$alice" >"$MG_TMP/authz.out" 2>&1
is "$?" 3 "without --jwks a remote jwksUri has no keys: exit 3"
ok "  authn: 401 Jwks remote fetch is failed" grep -qx "authn: 401 Jwks remote fetch is failed" "$MG_TMP/authz.out"
"$MESHGATE" authz -c "$AZ_CFG" --url "$B/open/x" >"$MG_TMP/authz.out" 2>&1
is "$?" 0 "without --jwks a tokenless request still reaches authorization"

done_testing
