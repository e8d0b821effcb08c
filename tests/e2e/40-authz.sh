#!/bin/bash
# 40-authz.sh - AuthorizationPolicy DENY/ALLOW/AUDIT/dry-run through the real
# gateway: paths with normalization bypass attempts (dot segments, %2e%2e,
# fragments, // under MERGE_SLASHES), methods, hosts (case, port), repeated
# headers (CVE-2026-26308), ipBlocks / remoteIpBlocks with X-Forwarded-For
# and numTrustedProxies, ALLOW default-deny, spec: {} deny-all after a
# reload; the 403 body, access log fields and metrics. Every request is
# also put to `meshgate authz`, which must agree.
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
az_config "$AZ_CFG" "$MG_ADMIN" "$https" "$http" "$up" "  numTrustedProxies: 1"
az_policy "$AZ_CFG" deny-admin "apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-admin, namespace: istio-system}
spec:
  action: DENY
  rules:
  - to: [{operation: {paths: [\"/admin*\", \"/user/profile\"]}}]
  - to: [{operation: {methods: [\"DELETE\"]}}]
  - to: [{operation: {hosts: [\"secret.example.com\", \"secret.example.com:*\"]}}]
  - to: [{operation: {hosts: [\"noport.example.com\"]}}]
  - when: [{key: \"request.headers[x-role]\", values: [\"admin\"]}]
  - from: [{source: {remoteIpBlocks: [\"10.9.9.0/24\"]}}]
  - from: [{source: {ipBlocks: [\"127.0.0.2/32\"]}}]"
az_policy "$AZ_CFG" allow-some "apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-some, namespace: istio-system}
spec:
  action: ALLOW
  rules:
  - to: [{operation: {paths: [\"/public*\", \"/admin*\", \"/user/*\", \"/echo\"]}}]"
az_policy "$AZ_CFG" audit "apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: audit-echo, namespace: istio-system}
spec:
  action: AUDIT
  rules:
  - to: [{operation: {paths: [\"/echo\"]}}]"
az_policy "$AZ_CFG" dry "apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: dry-deny
  namespace: istio-system
  annotations: {istio.io/dry-run: \"true\"}
spec:
  action: DENY
  rules:
  - to: [{operation: {paths: [\"/public/dry\"]}}]"

ok "gateway starts" mg_start_meshgate "$AZ_CFG"
B=https://app.example.com:$https

# paths and normalization (CVE-2019-9901, CVE-2021-39156)
az_req "allowed path" 200 "$B/public/x"
az_req "denied prefix path" 403 "$B/admin/panel"
is "$AZ_BODY" "RBAC: access denied" "403 body is Envoy's RBAC text"
hdrs=$(mg_curl --cacert "$MG_PKI/root-cert.pem" -D - -o /dev/null "$B/admin")
like "$hdrs" '^content-type: text/plain' "403 is text/plain"
az_req "dot-dot bypass attempt /public/../admin" 403 "$B/public/../admin"
az_req "dot bypass attempt /./admin" 403 "$B/./admin"
az_req "encoded dot-dot /public/%2e%2e/admin" 403 "$B/public/%2e%2e/admin"
az_req "encoded letters /%61dmin" 403 "$B/%61dmin"
az_req "query ignored by paths /user/profile?x=1" 403 "$B/user/profile?x=1"
az_raw "fragment stripped: /user/profile#section1" 403 "$http" "/user/profile#section1" app.example.com
az_raw "fragment on an allowed path" 200 "$http" "/public/a#frag" app.example.com

# methods
az_req "DELETE denied" 403 "$B/public/x" -X DELETE
az_req "POST allowed" 200 "$B/public/x" -X POST

# hosts: case-insensitive, port not stripped
az_req "host denied" 403 "https://secret.example.com:$https/public/x"
az_req "host case-insensitive (SECRET.EXAMPLE.COM)" 403 "https://secret.example.com:$https/public/x" \
    --host "SECRET.Example.COM:$https"
az_req "exact host without :* does not match host:port (Istio semantics)" 200 \
    "https://noport.example.com:$https/public/x"
az_req "exact host matches when the authority has no port" 403 \
    "https://noport.example.com:$https/public/x" --host noport.example.com

# headers, value by value (CVE-2026-26308)
az_req "header value denied" 403 "$B/public/x" -H 'x-role: admin'
az_req "repeated header: one value matches" 403 "$B/public/x" -H 'x-role: user' -H 'x-role: admin'
az_req "other header value allowed" 200 "$B/public/x" -H 'x-role: user'
az_raw "trailing whitespace trimmed (CVE-2019-18802)" 403 "$http" /public/x app.example.com $'x-role: admin \t'

# remoteIpBlocks with numTrustedProxies 1: the rightmost XFF entry
az_req "remote ip from XFF denied" 403 "$B/public/x" -H 'x-forwarded-for: 10.9.9.5' \
    --remote-ip 10.9.9.5
az_req "only the trusted hop counts" 200 "$B/public/x" -H 'x-forwarded-for: 10.9.9.5, 192.0.2.1' \
    --remote-ip 192.0.2.1
az_req "repeated XFF headers are one list" 200 "$B/public/x" -H 'x-forwarded-for: 10.9.9.5' \
    -H 'x-forwarded-for: 192.0.2.7' --remote-ip 192.0.2.7
# ipBlocks: the direct peer, whatever XFF says
az_req "ipBlocks: peer 127.0.0.2 denied" 403 "$B/public/x" --source-ip 127.0.0.2
az_req "ipBlocks ignore XFF" 200 "$B/public/x" -H 'x-forwarded-for: 127.0.0.2' --remote-ip 127.0.0.2

# HTTP/2 requests go through the same phase
az_req "HTTP/2: denied path" 403 "$B/admin" --curl --http2
az_req "HTTP/2: allowed path" 200 "$B/public/x" --curl --http2
az_req "HTTP/2: repeated header value denied" 403 "$B/public/x" --curl --http2 -H 'x-role: user' \
    -H 'x-role: admin'

# ALLOW policies exist: no match is a deny
az_req "ALLOW with no matching rule denies" 403 "$B/other"
az_req "ALLOW match" 200 "$B/echo"

# the log and the counters
ok "access log: rbac_policy with policy and rule" \
    az_log_wait '"path":"/admin/panel".*"reason":"rbac_policy".*"authz_policy":"istio-system.deny-admin","authz_rule":0'
ok "access log: header rule index" \
    az_log_wait '"reason":"rbac_policy".*"authz_policy":"istio-system.deny-admin","authz_rule":4'
ok "access log: default deny has reason but no policy" \
    az_log_wait '"path":"/other".*"reason":"rbac_policy","response_code":403'
ok "access log: AUDIT policy recorded" az_log_wait '"path":"/echo".*"authz_audit":"istio-system.audit-echo"'
az_req "dry-run DENY is not enforced" 200 "$B/public/dry"
ok "access log: dry-run result recorded" \
    az_log_wait '"path":"/public/dry".*"authz_dry_run":"istio-system.dry-deny","authz_dry_run_result":"deny"'
like "$(az_metric 'meshgate_authz_denied_total\{policy="istio-system.deny-admin"\}')" '^[1-9][0-9]*$' \
    "meshgate_authz_denied_total counts the deny policy"
like "$(az_metric 'istio_requests_total\{.*response_code="403".*rbac_policy')" '^[1-9][0-9]*$' \
    "istio_requests_total has the 403s with reason rbac_policy"
like "$(az_metric '^istio_dry_run_deny_shadow_denied ')" '^[1-9][0-9]*$' "dry-run deny counter"
dump=$(curl -s "http://$MG_ADMIN/config_dump")
like "$dump" "\"peer_authentication\":\\{\"enforced\":false.*\"port\":$https,\"mode\":\"PERMISSIVE\"" \
    "config_dump shows the effective PeerAuthentication mode per port"

# MERGE_SLASHES (CVE-2021-31920) and spec: {} (allow-nothing) after a reload
{
    sed -i 's/^  numTrustedProxies: 1$/  numTrustedProxies: 1\n  pathNormalization: {normalization: MERGE_SLASHES}/' \
        "$AZ_CFG/00-proxy.yaml"
}
ok "reload with MERGE_SLASHES" az_reload 2
az_req "//admin denied under MERGE_SLASHES" 403 "$B//admin"
ok "access log: //admin was denied by the DENY policy (merged to /admin)" \
    az_log_wait '"path":"//admin".*"authz_policy":"istio-system.deny-admin","authz_rule":0'
az_req "/public//x still allowed" 200 "$B/public//x"
az_policy "$AZ_CFG" nothing "apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-nothing, namespace: istio-system}
spec: {}"
rm -f "$AZ_CFG/50-allow-some.yaml"
ok "reload with spec: {}" az_reload 3
az_req "spec: {} denies everything" 403 "$B/public/x"
az_req "spec: {} denies the previously allowed /echo" 403 "$B/echo"

done_testing
