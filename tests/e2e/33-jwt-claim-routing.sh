#!/bin/bash
# 33-jwt-claim-routing.sh - JWT claim based routing on a gateway
# (VirtualService headers "@request.auth.claims.<name>", Istio's
# jwt-route task): the token is verified before routing; a string claim, a
# list claim (any element), a nested claim ("[a][b]" form), a prefix match
# and withoutHeaders on a claim pick the route; a request without a token,
# or with a claim that does not match, falls through to the next route; an
# invalid token is refused (401) before any route is chosen, and a
# forged header named like the claim route does not route.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/dp_common.sh"

JWT_TOOL=${MG_JWT_TOOL:-$MG_BUILDDIR/tests/helpers/mg_jwt_tool}
[ -x "$JWT_TOOL" ] || skip_all "mg_jwt_tool not built"
mg_pki || bail_out "cannot make a PKI"
K=$(mg_tmpdir keys)
"$JWT_TOOL" genkey --type rsa --kid k1 --out "$K/k1.pem" --jwks-out "$K/jwks.json" >/dev/null &&
    "$JWT_TOOL" genkey --type rsa --kid k1 --out "$K/evil.pem" >/dev/null || bail_out "keys"
mg_start_upstream --name v1 || bail_out "upstream v1"
u1=$MG_UPSTREAM_PORT
mg_start_upstream --name v2 || bail_out "upstream v2"
u2=$MG_UPSTREAM_PORT
http=$(mg_free_port)
export MG_ADMIN=127.0.0.1:$(mg_free_port)
cfg=$(mg_tmpdir cfg)
ISS=https://issuer.example.com
dp_proxy "$cfg" "$MG_ADMIN" JSON
dp_service "$cfg" one one.local "$u1"
dp_service "$cfg" two two.local "$u2"
cat >"$cfg/gw.yaml" <<YAML
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: $http, name: http, protocol: HTTP}
    hosts: ["*"]
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt, namespace: istio-system}
spec:
  jwtRules:
  - issuer: $ISS
    jwks: '$(tr -d '\n' <"$K/jwks.json")'
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: app, namespace: istio-system}
spec:
  hosts: ["app.local"]
  gateways: ["istio-system/gw"]
  http:
  - name: group
    match: [{uri: {prefix: /g}, headers: {"@request.auth.claims.groups": {exact: group1}}}]
    route: [{destination: {host: two.local}}]
  - name: nested
    match: [{uri: {prefix: /n}, headers: {"@request.auth.claims[org][team]": {prefix: red}}}]
    route: [{destination: {host: two.local}}]
  - name: not-guest
    match: [{uri: {prefix: /w}, withoutHeaders: {"@request.auth.claims.role": {exact: guest}}, headers: {"@request.auth.claims.sub": {regex: ".+"}}}]
    route: [{destination: {host: two.local}}]
  - name: default
    route: [{destination: {host: one.local}}]
YAML

ok "meshgate check accepts claim routes on a gateway" "$MESHGATE" check -c "$cfg"
ok "gateway starts" mg_start_meshgate "$cfg"
u="http://app.local:$http"
up() { mg_json_field "$(mg_curl "$@")" upstream; }
tok() { "$JWT_TOOL" sign --key "$K/${2:-k1}.pem" --kid k1 --claims "$1"; }
claims() { printf '{"iss":"%s","sub":"alice","exp":"+3600"%s}' "$ISS" "${1:-}"; }

is "$(up -H "Authorization: Bearer $(tok "$(claims ',"groups":"group1"')")" "$u/g")" v2 \
    "string claim matches"
is "$(up -H "Authorization: Bearer $(tok "$(claims ',"groups":["x","group1"]')")" "$u/g")" v2 \
    "list claim: one element matches"
is "$(up -H "Authorization: Bearer $(tok "$(claims ',"groups":["x","y"]')")" "$u/g")" v1 \
    "list claim without the value falls through"
is "$(up -H "Authorization: Bearer $(tok "$(claims ',"groups":7')")" "$u/g")" v1 \
    "a number claim never matches"
is "$(up "$u/g")" v1 "no token: the claim route does not match"
is "$(up -H '@request.auth.claims.groups: group1' "$u/g")" v1 \
    "a header named like the claim route does not route"
is "$(up -H "Authorization: Bearer $(tok "$(claims ',"org":{"team":"red-1"}')")" "$u/n")" v2 \
    "nested claim, [a][b] form, prefix match"
is "$(up -H "Authorization: Bearer $(tok "$(claims ',"org":{"team":"blue"}')")" "$u/n")" v1 \
    "nested claim mismatch falls through"
is "$(up -H "Authorization: Bearer $(tok "$(claims ',"role":"admin"')")" "$u/w")" v2 \
    "withoutHeaders on a claim: another value routes"
is "$(up -H "Authorization: Bearer $(tok "$(claims ',"role":"guest"')")" "$u/w")" v1 \
    "withoutHeaders on a claim: the value excluded falls through"
is "$(mg_http_code -H "Authorization: Bearer $(tok "$(claims ',"groups":"group1"')" evil)" "$u/g")" 401 \
    "a token signed by another key: 401 before routing"
body=$(mg_curl -H "Authorization: Bearer $(tok "$(claims ',"groups":"group1"')")" "$u/g")
unlike "$body" '"authorization"' "the token does not reach the upstream"

done_testing
