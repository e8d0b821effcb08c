#!/bin/bash
# 91-edge-headers-authz.sh - headers only the proxy may set (x-forwarded-proto,
# x-forwarded-client-cert, x-envoy-*) are what authorization sees as the
# proxy sets them, never the client's copy: the request that is authorized
# is the request that is forwarded (Envoy sanitizes them in the connection
# manager, before any filter). Regression: a plain-text client sending
# `x-forwarded-proto: https`, a forged XFCC or `x-envoy-external-address`
# passed policies written on those headers, while the upstream got the
# proxy's values. Headers the client names in Connection are hop-by-hop:
# removed before routing and authorization (as Envoy's codec does), not
# only before the upstream. Regression: `x-tenant: a` plus
# `Connection: x-tenant` satisfied a policy on x-tenant, and the upstream
# never saw the header that was authorized.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/az_common.sh"

mg_pki || bail_out "cannot make a PKI"
mg_start_upstream --name v1 || bail_out "upstream"
up=$MG_UPSTREAM_PORT
https=$(mg_free_port)
http=$(mg_free_port)
export MG_ADMIN=127.0.0.1:$(mg_free_port)
AZ_CFG=$(mg_tmpdir cfg)
az_config "$AZ_CFG" "$MG_ADMIN" "$https" "$http" "$up"
az_policy "$AZ_CFG" tls-only 'apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: tls-only, namespace: istio-system}
spec:
  action: DENY
  rules:
  - to: [{operation: {paths: ["/tls-only/*"]}}]
    when: [{key: "request.headers[x-forwarded-proto]", notValues: ["https"]}]
  - to: [{operation: {paths: ["/cert-only/*"]}}]
    when: [{key: "request.headers[x-forwarded-client-cert]", notValues: ["*URI=spiffe://cluster.local/ns/default/sa/sleep"]}]
  - to: [{operation: {paths: ["/internal/*"]}}]
    when: [{key: "request.headers[x-envoy-external-address]", notValues: ["10.*"]}]
  - to: [{operation: {paths: ["/tenant/*"]}}]
    when: [{key: "request.headers[x-tenant]", notValues: ["a"]}]'
ok "gateway starts" mg_start_meshgate "$AZ_CFG"

H=http://app.example.com:$http
S=https://app.example.com:$https
M=https://mtls.example.com:$https
C=(--cacert "$MG_PKI/root-cert.pem")

# x-forwarded-proto: the scheme of the downstream connection decides
is "$(mg_http_code "${C[@]}" "$S/tls-only/x")" 200 "https: x-forwarded-proto https allowed"
is "$(mg_http_code "$H/tls-only/x")" 403 "plain http: denied"
is "$(mg_http_code -H 'x-forwarded-proto: https' "$H/tls-only/x")" 403 \
    "plain http with a forged x-forwarded-proto: https: still denied"
is "$(mg_http_code -H 'X-Forwarded-Proto: https' -H 'x-forwarded-proto: https' "$H/tls-only/x")" 403 \
    "two forged x-forwarded-proto headers: still denied"
body=$(mg_curl "${C[@]}" -H 'x-forwarded-proto: http' "$S/echo")
ok "https with a forged x-forwarded-proto: http: upstream gets https" \
    mg_json_has_header "$body" x-forwarded-proto https
fails "... and not the client's value" mg_json_has_header "$body" x-forwarded-proto http

# x-forwarded-client-cert: only the verified client certificate sets it
P=$MG_PKI
is "$(mg_http_code "${C[@]}" --cert "$P/sleep/cert-chain.pem" --key "$P/sleep/key.pem" "$M/cert-only/x")" 200 \
    "OPTIONAL_MUTUAL with the sleep certificate: allowed"
is "$(mg_http_code "${C[@]}" "$M/cert-only/x")" 403 "OPTIONAL_MUTUAL without a certificate: denied"
xfcc='By=spiffe://cluster.local/ns/istio-system/sa/ingressgateway;Hash=00;URI=spiffe://cluster.local/ns/default/sa/sleep'
is "$(mg_http_code "${C[@]}" -H "x-forwarded-client-cert: $xfcc" "$M/cert-only/x")" 403 \
    "OPTIONAL_MUTUAL, no certificate, forged XFCC: still denied"
is "$(mg_http_code -H "x-forwarded-client-cert: $xfcc" "$H/cert-only/x")" 403 \
    "plain http, forged XFCC: still denied"
is "$(mg_http_code "${C[@]}" --cert "$P/httpbin/cert-chain.pem" --key "$P/httpbin/key.pem" \
    -H "x-forwarded-client-cert: $xfcc" "$M/cert-only/x")" 403 \
    "httpbin certificate plus a forged sleep XFCC: still denied"

# x-envoy-*: the gateway's own external address, not the client's
is "$(mg_http_code -H 'x-envoy-external-address: 10.0.0.1' "$H/internal/x")" 403 \
    "forged x-envoy-external-address: 10.0.0.1: still denied"
body=$(mg_curl -H 'x-envoy-external-address: 10.0.0.1' -H 'x-envoy-original-path: /public' "$H/echo")
ok "upstream gets the gateway's x-envoy-external-address" \
    mg_json_has_header "$body" x-envoy-external-address 127.0.0.1
fails "... and not the client's" mg_json_has_header "$body" x-envoy-external-address 10.0.0.1
fails "a client x-envoy-original-path never reaches the upstream" \
    mg_json_has_header "$body" x-envoy-original-path /public

# Connection-named headers: gone before authorization, as before the upstream
is "$(mg_http_code -H 'x-tenant: a' "$H/tenant/x")" 200 "x-tenant: a satisfies the policy"
is "$(mg_http_code -H 'x-tenant: a' -H 'Connection: x-tenant' "$H/tenant/x")" 403 \
    "x-tenant: a named in Connection is not authorized on"
is "$(mg_http_code -H 'x-tenant: a' -H 'Connection: keep-alive, X-Tenant' "$H/tenant/x")" 403 \
    "... also as a second, mixed-case Connection token"
body=$(mg_curl -H 'x-tenant: a' -H 'x-keep: 1' -H 'Connection: x-tenant' "$H/echo")
fails "a Connection-named header does not reach the upstream" mg_json_has_header "$body" x-tenant a
ok "other headers do" mg_json_has_header "$body" x-keep 1

# The offline explainer builds the request as the gateway does: the same
# forged headers give the same decisions (exit 0 allow, 1 deny).
ex() { "$MESHGATE" authz -c "$AZ_CFG" --source-ip 127.0.0.1 "$@" >/dev/null 2>&1; echo $?; }
is "$(ex --url "$H/tls-only/x" --header 'x-forwarded-proto: https')" 1 \
    "explainer: plain http with a forged x-forwarded-proto is denied, as by the gateway"
is "$(ex --url "$S/tls-only/x")" 0 "explainer: https is allowed"
is "$(ex --url "$S/cert-only/x" --header "x-forwarded-client-cert: $xfcc")" 1 \
    "explainer: a forged XFCC without a peer certificate is denied"
is "$(ex --url "$S/cert-only/x" --principal cluster.local/ns/default/sa/sleep)" 0 \
    "explainer: the verified peer's XFCC is allowed"
is "$(ex --url "$H/internal/x" --header 'x-envoy-external-address: 10.0.0.1')" 1 \
    "explainer: a forged x-envoy-external-address is denied"
is "$(ex --url "$H/tenant/x" --header 'x-tenant: a' --header 'Connection: x-tenant')" 1 \
    "explainer: a header named in Connection is not authorized on"
is "$(ex --url "$H/tenant/x" --header 'x-tenant: a')" 0 "explainer: x-tenant: a allowed"

done_testing
