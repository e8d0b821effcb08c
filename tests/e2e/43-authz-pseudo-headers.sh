#!/bin/bash
# 43-authz-pseudo-headers.sh - `request.headers[...]` conditions and
# VirtualService header matches see the request as Envoy's header map holds
# it, identically for HTTP/1.1 and HTTP/2: `host` and `:authority` are one
# header (Envoy stores Host as :authority), and :authority, :path, :method
# and :scheme are visible by name. :path is the normalized path with its
# query, as forwarded. Regression: a DENY on request.headers[host] refused
# HTTP/1.1 and let HTTP/2 through (no host field there), and DENYs on
# :authority, :path and :method never matched on either protocol; a
# VirtualService match on `host` routed HTTP/1.1 only. Every request is
# also put to `meshgate authz`, which must agree.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/az_common.sh"

mg_pki || bail_out "cannot make a PKI"
mg_start_upstream --name v1 || bail_out "upstream v1"
up=$MG_UPSTREAM_PORT
mg_start_upstream --name v2 || bail_out "upstream v2"
up2=$MG_UPSTREAM_PORT
https=$(mg_free_port)
http=$(mg_free_port)
export MG_ADMIN=127.0.0.1:$(mg_free_port)
AZ_CFG=$(mg_tmpdir cfg)
az_config "$AZ_CFG" "$MG_ADMIN" "$https" "$http" "$up"
# The quoted form is read without its quotes (with a warning).
az_policy "$AZ_CFG" deny-pseudo 'apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-pseudo, namespace: istio-system}
spec:
  action: DENY
  rules:
  - when: [{key: "request.headers[host]", values: ["deny-host.example.com", "deny-host.example.com:*"]}]
  - when: [{key: "request.headers[\":authority\"]", values: ["deny-auth.example.com*"]}]
  - when: [{key: "request.headers[:path]", values: ["/deny-path*", "*debug=1"]}]
  - when: [{key: "request.headers[:method]", values: ["PATCH"]}]
  - to: [{operation: {paths: ["/tls-only*"]}}]
    when: [{key: "request.headers[:scheme]", notValues: ["https"]}]'
cat >"$AZ_CFG/20-routes.yaml" <<YAML
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: by-header, namespace: istio-system}
spec:
  hosts: ["r1.example.com", "r2.example.com", "r3.example.com"]
  gateways: ["gw"]
  http:
  - name: by-authority
    match: [{headers: {":authority": {prefix: "r1.example.com"}}}]
    route: [{destination: {host: backend2.local, port: {number: 80}}}]
  - name: by-host
    match: [{headers: {host: {prefix: "r2.example.com"}}}]
    route: [{destination: {host: backend2.local, port: {number: 80}}}]
  - name: by-method-path
    match: [{headers: {":method": {exact: "PUT"}, ":path": {regex: "/put[?]q=1"}}}]
    route: [{destination: {host: backend2.local, port: {number: 80}}}]
  - name: rest
    route: [{destination: {host: backend.local, port: {number: 80}}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: backend2, namespace: istio-system}
spec:
  hosts: ["backend2.local"]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {http: $up2}}]
YAML

out=$("$MESHGATE" check -c "$AZ_CFG" 2>&1)
like "$out" '0 errors' "meshgate check accepts the pseudo-header conditions"
unlike "$out" 'never|unknown condition' "... with no warning that they cannot match"

ok "gateway starts" mg_start_meshgate "$AZ_CFG"

H1=(--curl --http1.1)
H2=(--curl --http2)
ver=$(mg_curl --http2 -o /dev/null -w '%{http_version}' --cacert "$MG_PKI/root-cert.pem" \
    "https://app.example.com:$https/echo")
is "$ver" 2 "curl --http2 speaks HTTP/2 to the gateway"

for proto in h1 h2; do
    if [ "$proto" = h1 ]; then P=("${H1[@]}"); else P=("${H2[@]}"); fi
    S=https://app.example.com:$https
    az_req "$proto: an ordinary request passes" 200 "$S/echo" "${P[@]}"
    az_req "$proto: DENY request.headers[host]" 403 "https://deny-host.example.com:$https/x" "${P[@]}"
    az_req "$proto: DENY request.headers[:authority]" 403 "https://deny-auth.example.com:$https/x" "${P[@]}"
    az_req "$proto: DENY request.headers[:path]" 403 "$S/deny-path/x" "${P[@]}"
    az_req "$proto: :path is normalized (/a/../deny-path)" 403 "$S/a/../deny-path" "${P[@]}"
    az_req "$proto: :path carries the query" 403 "$S/x?a=2&debug=1" "${P[@]}"
    az_req "$proto: ... and another query passes" 200 "$S/x?debug=0" "${P[@]}"
    az_req "$proto: DENY request.headers[:method]" 403 "$S/x" -X PATCH "${P[@]}"
    az_req "$proto: GET is not PATCH" 200 "$S/x" -X GET "${P[@]}"
    az_req "$proto: :scheme https over TLS" 200 "$S/tls-only" "${P[@]}"

    # VirtualService header matches: the same route on both protocols
    for r in r1 r2; do
        body=$(mg_curl "${P[1]}" --cacert "$MG_PKI/root-cert.pem" "https://$r.example.com:$https/echo")
        is "$(mg_json_field "$body" upstream)" v2 "$proto: $r routed by its header match"
    done
    body=$(mg_curl "${P[1]}" --cacert "$MG_PKI/root-cert.pem" "https://r3.example.com:$https/echo")
    is "$(mg_json_field "$body" upstream)" v1 "$proto: r3 takes the default route"
    body=$(mg_curl "${P[1]}" --cacert "$MG_PKI/root-cert.pem" -X PUT "https://r3.example.com:$https/put?q=1")
    is "$(mg_json_field "$body" upstream)" v2 "$proto: :method and :path (with query) route"
    body=$(mg_curl "${P[1]}" --cacert "$MG_PKI/root-cert.pem" -X PUT "https://r3.example.com:$https/put?q=2")
    is "$(mg_json_field "$body" upstream)" v1 "$proto: ... another query does not"
done

# plain-text HTTP/1.1: the same header map
H=http://app.example.com:$http
az_req "h1 plain: DENY request.headers[host]" 403 "http://deny-host.example.com:$http/x"
az_req "h1 plain: DENY request.headers[:authority]" 403 "http://deny-auth.example.com:$http/x"
az_req "h1 plain: DENY request.headers[:path]" 403 "$H/deny-path"
az_req "h1 plain: DENY request.headers[:method]" 403 "$H/x" -X PATCH
az_req "h1 plain: :scheme http denied on /tls-only" 403 "$H/tls-only"
az_req "h1 plain: absolute-form target, :authority from it" 403 "http://deny-auth.example.com:$http/x" \
    --curl --proxy --curl "http://127.0.0.1:$http"
body=$(mg_curl "http://r1.example.com:$http/echo")
is "$(mg_json_field "$body" upstream)" v2 "h1 plain: r1 routed by :authority"
# pseudo-headers are the gateway's view: none reaches the upstream as a field
body=$(mg_curl --http2 --cacert "$MG_PKI/root-cert.pem" "https://app.example.com:$https/echo")
unlike "$body" '\[":' "no pseudo-header goes upstream as a header field"

# An unknown pseudo-header can never be present: `meshgate check` says so.
chk=$(mg_tmpdir chk)
cp "$AZ_CFG"/*.yaml "$chk/"
az_policy "$chk" bogus 'apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: bogus, namespace: istio-system}
spec:
  action: DENY
  rules:
  - when: [{key: "request.headers[:status]", values: ["200"]}]'
out=$("$MESHGATE" check -c "$chk" 2>&1)
like "$out" 'request.headers\[:status\].*never' "meshgate check warns on an unknown pseudo-header"

done_testing
