#!/bin/bash
# 46-cors.sh - VirtualService corsPolicy as Envoy's CORS filter applies it:
# a preflight from an allowed origin (exact, prefix, regex) answered by the
# gateway with the configured allow-* and max-age headers and never
# reaching the upstream; actual requests from it relayed with
# access-control-allow-origin, -credentials and -expose-headers; another
# origin gets none of them (its preflight forwarded, or answered bare with
# unmatchedPreflights IGNORE); a preflight to a JWT-protected route is
# answered without a token while a non-preflight OPTIONS and the actual
# request are authorized as usual (403 carrying the CORS headers, so the
# browser can read it); `meshgate check` no longer warns about corsPolicy.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/dp_common.sh"

JWT_TOOL=${MG_JWT_TOOL:-$MG_BUILDDIR/tests/helpers/mg_jwt_tool}
[ -x "$JWT_TOOL" ] || skip_all "mg_jwt_tool not built"
mg_pki || bail_out "cannot make a PKI"
K=$(mg_tmpdir keys)
"$JWT_TOOL" genkey --type rsa --kid k1 --out "$K/k1.pem" --jwks-out "$K/jwks.json" >/dev/null ||
    bail_out "keys"
mg_start_upstream --name up || bail_out "upstream"
up=$MG_UPSTREAM_PORT
UP_LOG=$MG_UPSTREAM_LOG
http=$(mg_free_port)
export MG_ADMIN=127.0.0.1:$(mg_free_port)
cfg=$(mg_tmpdir cfg)
dp_proxy "$cfg" "$MG_ADMIN" JSON
log=$DP_ACCESS_LOG
dp_service "$cfg" app app.svc "$up"
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
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: app, namespace: istio-system}
spec:
  hosts: [app.example.com]
  gateways: [gw]
  http:
  - name: api
    match: [{uri: {prefix: /api}}]
    corsPolicy:
      allowOrigins:
      - exact: https://www.example.com
      - prefix: https://dev.
      - regex: 'https://[a-z]+\.trusted\.org'
      allowMethods: [GET, POST, PUT]
      allowHeaders: [authorization, x-custom]
      exposeHeaders: [x-upstream, x-request-id]
      maxAge: 600s
      allowCredentials: true
    route: [{destination: {host: app.svc}}]
  - name: ign
    match: [{uri: {prefix: /ign}}]
    corsPolicy:
      allowOrigins: [{exact: https://www.example.com}]
      allowMethods: [GET]
      unmatchedPreflights: IGNORE
    route: [{destination: {host: app.svc}}]
  - name: jwt
    match: [{uri: {prefix: /jwt}}]
    corsPolicy:
      allowOrigin: [https://www.example.com]
      allowMethods: [GET]
      allowHeaders: [authorization]
    route: [{destination: {host: app.svc}}]
  - name: plain
    route: [{destination: {host: app.svc}}]
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt, namespace: istio-system}
spec:
  jwtRules:
  - issuer: https://issuer.example.com
    jwks: '$(cat "$K/jwks.json")'
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: need-jwt, namespace: istio-system}
spec:
  selector: {matchLabels: {istio: ingressgateway}}
  action: DENY
  rules: [{from: [{source: {notRequestPrincipals: ["*"]}}], to: [{operation: {paths: ["/jwt/*"]}}]}]
YAML

out=$("$MESHGATE" check -c "$cfg" 2>&1)
is "$?" 0 "meshgate check accepts corsPolicy"
unlike "$out" 'corsPolicy' "... without an 'ignored' warning"
ok "gateway starts" mg_start_meshgate "$cfg"

U=http://app.example.com:$http
hd() { mg_curl -D - -o /dev/null "$@"; }      # response head only
pre() {  # ORIGIN PATH [curl args...]: a preflight
    local o=$1 p=$2
    shift 2
    hd -X OPTIONS -H "Origin: $o" -H 'Access-Control-Request-Method: POST' \
        -H 'Access-Control-Request-Headers: x-custom' "$@" "$U$p"
}

# --- preflights from allowed origins: answered here, never upstream
for o in https://www.example.com https://dev.example.net https://abc.trusted.org; do
    h=$(pre "$o" /api/items)
    like "$h" '^HTTP/1.1 200' "preflight from $o: 200"
    like "$h" "access-control-allow-origin: $o" "... allow-origin echoes the origin"
done
h=$(pre https://www.example.com /api/items)
like "$h" 'access-control-allow-methods: GET,POST,PUT' "... allow-methods as configured"
like "$h" 'access-control-allow-headers: authorization,x-custom' "... allow-headers"
like "$h" 'access-control-max-age: 600' "... max-age in seconds"
like "$h" 'access-control-allow-credentials: true' "... allow-credentials"
unlike "$h" 'access-control-expose-headers' "... no expose-headers on a preflight"
unlike "$(cat "$UP_LOG")" 'OPTIONS /api/items' "... and the upstream saw none of them"

# --- actual requests
h=$(hd -H 'Origin: https://www.example.com' "$U/api/items")
like "$h" '^HTTP/1.1 200' "actual request from an allowed origin: upstream's 200"
like "$h" 'access-control-allow-origin: https://www.example.com' "... allow-origin added"
like "$h" 'access-control-allow-credentials: true' "... allow-credentials added"
like "$h" 'access-control-expose-headers: x-upstream,x-request-id' "... expose-headers added"
like "$h" 'x-upstream: up' "... the upstream's own headers kept"
h=$(hd -X POST -d x -H 'Origin: https://evil.example.com' "$U/api/items")
like "$h" '^HTTP/1.1 200' "actual request from another origin: relayed"
unlike "$h" 'access-control-' "... without any CORS header"
unlike "$(hd -H 'Origin: https://www.example.com.evil' "$U/api/items")" 'access-control-' \
    "an exact origin is matched whole"
unlike "$(hd -H 'Origin: https://x.trusted.org.evil.com' "$U/api/items")" 'access-control-' \
    "a regex origin is matched whole"
unlike "$(hd "$U/api/items")" 'access-control-' "no Origin: not a CORS request"
unlike "$(hd -H 'Origin: https://www.example.com' "$U/other")" 'access-control-' \
    "a route without corsPolicy adds nothing"

# --- unmatched preflights
before=$(grep -c 'OPTIONS /api/items' "$UP_LOG")
h=$(pre https://evil.example.com /api/items)
unlike "$h" 'access-control-' "preflight from another origin: no CORS headers"
like "$h" 'x-upstream: up' "... forwarded to the upstream (unmatchedPreflights default FORWARD)"
is "$(grep -c 'OPTIONS /api/items' "$UP_LOG")" "$((before + 1))" "... which saw it"
h=$(pre https://evil.example.com /ign/x)
like "$h" '^HTTP/1.1 200' "unmatchedPreflights IGNORE: answered 200 here"
unlike "$h" 'access-control-' "... without CORS headers"
unlike "$h" 'x-upstream' "... not forwarded"
like "$(pre https://www.example.com /ign/x)" 'access-control-allow-methods: GET' \
    "... an allowed origin's preflight still answered with them"
h=$(hd -X OPTIONS -H 'Origin: https://www.example.com' "$U/api/items")
like "$h" 'x-upstream: up' "OPTIONS without Access-Control-Request-Method is no preflight: forwarded"
like "$h" 'access-control-allow-origin: https://www.example.com' "... with the actual request's headers"

# --- before authentication and authorization
h=$(pre https://www.example.com /jwt/data)
like "$h" '^HTTP/1.1 200' "preflight to a JWT-protected route answered without a token"
like "$h" 'access-control-allow-origin: https://www.example.com' "... with the CORS headers (allowOrigin)"
h=$(hd -X OPTIONS -H 'Origin: https://www.example.com' "$U/jwt/data")
like "$h" '^HTTP/1.1 403' "a non-preflight OPTIONS is authorized: 403 without a token"
h=$(hd -H 'Origin: https://www.example.com' "$U/jwt/data")
like "$h" '^HTTP/1.1 403' "the actual request without a token: 403"
like "$h" 'access-control-allow-origin: https://www.example.com' "... carrying allow-origin, so the browser can read it"
h=$(hd -H 'Origin: https://www.example.com' -H 'Authorization: Bearer not.a.jwt' "$U/jwt/data")
like "$h" '^HTTP/1.1 401' "a bad token: 401"
like "$h" 'access-control-allow-origin: https://www.example.com' "... carrying allow-origin too"

# --- the access log
ok "access log: the preflight answered by the gateway" \
    dp_wait_log "$log" '"method":"OPTIONS","path":"/jwt/data".*"reason":"cors_preflight".*"response_code":200'

done_testing
