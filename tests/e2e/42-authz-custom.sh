#!/bin/bash
# 42-authz-custom.sh - AuthorizationPolicy CUSTOM with an HTTP ext_authz
# provider (mg_upstream as the authorization server: /status/NNN answers
# NNN, everything else 200 with an echo of what the check carried): allow,
# deny with the provider's status/body/headers, 5xx = error, headers to the
# upstream on allow, every value of a repeated header reaches the provider
# (CVE-2021-32777), CUSTOM before DENY, pathPrefix, timeout with
# statusOnError, connect failure fail closed and failOpen. The explainer
# must name the provider exactly when the CUSTOM rule matches.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/az_common.sh"

mg_pki || bail_out "cannot make a PKI"
mg_start_upstream --name v1 || bail_out "upstream"
up=$MG_UPSTREAM_PORT
mg_start_upstream --name authz || bail_out "authz server"
az=$MG_UPSTREAM_PORT
AZLOG=$MG_UPSTREAM_LOG
closed=$(mg_free_port)
https=$(mg_free_port)
http=$(mg_free_port)
export MG_ADMIN=127.0.0.1:$(mg_free_port)
AZ_CFG=$(mg_tmpdir cfg)
az_config "$AZ_CFG" "$MG_ADMIN" "$https" "$http" "$up" "  extensionProviders:
  - name: ext
    envoyExtAuthzHttp:
      service: authz.local
      port: 9000
      timeout: 2s
      includeRequestHeadersInCheck: [\"x-user\", \"x-ext-*\"]
      headersToUpstreamOnAllow: [\"x-ext-user\"]
      headersToDownstreamOnDeny: [\"x-upstream\", \"x-deny-*\"]
  - name: slow
    envoyExtAuthzHttp: {service: authz.local, port: 9000, timeout: 300ms, statusOnError: \"503\"}
  - name: down
    envoyExtAuthzHttp: {service: down.local, port: 9001, timeout: 1s}
  - name: down-open
    envoyExtAuthzHttp: {service: down.local, port: 9001, timeout: 1s, failOpen: true}
  - name: prefixed
    envoyExtAuthzHttp: {service: authz.local, port: 9000, timeout: 2s, pathPrefix: /check}"
cat >"$AZ_CFG/20-se.yaml" <<YAML
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: authz, namespace: istio-system}
spec:
  hosts: ["authz.local"]
  ports: [{number: 9000, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {http: $az}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: down, namespace: istio-system}
spec:
  hosts: ["down.local"]
  ports: [{number: 9001, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {http: $closed}}]
YAML
custom() {
    az_policy "$AZ_CFG" custom "apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: ext-check, namespace: istio-system}
spec:
  action: CUSTOM
  provider: {name: $1}
  rules:
  - to: [{operation: {paths: [\"/status/*\", \"/echo\", \"/slow\", \"/denied-too\"]}}]"
}
custom ext
az_policy "$AZ_CFG" deny "apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-too, namespace: istio-system}
spec:
  action: DENY
  rules:
  - to: [{operation: {paths: [\"/denied-too\"]}}]"

# cz NAME WANT URL PROVIDER|- [az_req options]: the gateway's answer, and the
# explainer: exit 0 naming PROVIDER when the CUSTOM rule matches (its own
# decision holds only if the provider allows), or no provider line for "-".
cz() {
    local name=$1 want=$2 url=$3 prov=$4 code out rc
    shift 4
    local c=(--path-as-is --cacert "$MG_PKI/root-cert.pem") a=(--url "$url" --source-ip 127.0.0.1)
    while [ $# -gt 0 ]; do
        case $1 in
        -H) c+=(-H "$2"); a+=(--header "$2"); shift 2 ;;
        --curl) c+=("$2"); shift 2 ;;
        esac
    done
    AZ_BODY=$(mg_curl -D "$MG_TMP/hdrs" -w '\n%{http_code}' "${c[@]}" "$url" 2>/dev/null)
    code=${AZ_BODY##*$'\n'}
    AZ_BODY=${AZ_BODY%$'\n'*}
    AZ_HDRS=$(tr -d '\r' <"$MG_TMP/hdrs")
    is "$code" "$want" "$name"
    out=$("$MESHGATE" authz -c "$AZ_CFG" "${a[@]}" 2>&1)
    rc=$?
    if [ "$prov" = - ]; then
        if [ "$want" = 403 ]; then want_rc=1; else want_rc=0; fi
        is "$rc/$(printf '%s\n' "$out" | grep -c '^custom:')" "$want_rc/0" \
            "$name (meshgate authz agrees, no provider consulted)"
    else
        if [ "$url" != "${url%/denied-too}" ]; then want_rc=1; else want_rc=0; fi
        is "$rc/$(printf '%s\n' "$out" | grep -c "^custom: provider $prov would be consulted")" "$want_rc/1" \
            "$name (meshgate authz names provider $prov)"
    fi
}

ok "gateway starts" mg_start_meshgate "$AZ_CFG"
B=https://app.example.com:$https

n0=$(grep -c 'GET /public' "$AZLOG")
cz "no CUSTOM match: provider not asked" 200 "$B/public/x" -
is "$(grep -c 'GET /public' "$AZLOG")" "$n0" "the provider saw no check for /public/x"
cz "provider 200 allows" 200 "$B/echo?q=1" ext
is "$(mg_json_field "$AZ_BODY" upstream)" v1 "allowed request reached the upstream"
like "$(cat "$AZLOG")" 'GET /echo\?q=1 ' "check carries the method, path and query"
cz "provider 403 denies" 403 "$B/status/403?resp-header=x-deny-reason:nope&resp-header=x-other:1" ext
is "$(mg_json_field "$AZ_BODY" upstream)" authz "the client gets the provider's body"
like "$AZ_HDRS" '^x-upstream: authz$' "headersToDownstreamOnDeny: exact name forwarded"
like "$AZ_HDRS" '^x-deny-reason: nope$' "headersToDownstreamOnDeny: prefix pattern forwarded"
unlike "$AZ_HDRS" '^x-other:' "unlisted provider header not forwarded"
cz "provider 401 passes through" 401 "$B/status/401" ext
cz "provider 5xx is an error: statusOnError (403)" 403 "$B/status/503" ext
is "$AZ_BODY" "" "error answer has no provider body"
cz "repeated header: both values reach the provider (CVE-2021-32777)" 403 "$B/status/403" ext \
    -H 'x-user: ok' -H 'x-user: evil'
ok "provider saw x-user: ok" mg_json_has_header "$AZ_BODY" x-user ok
ok "provider saw x-user: evil" mg_json_has_header "$AZ_BODY" x-user evil
ok "provider saw the Host" mg_json_has_header "$AZ_BODY" host "app.example.com:$https"
cz "unlisted headers are not sent to the provider" 403 "$B/status/403" ext -H 'x-secret: s' -H 'x-ext-a: 1'
unlike "$AZ_BODY" '"x-secret"' "x-secret not in the check"
ok "prefix pattern x-ext-* sent" mg_json_has_header "$AZ_BODY" x-ext-a 1
cz "allow with a header for the upstream" 200 "$B/echo?resp-header=x-ext-user:alice" ext \
    -H 'x-ext-user: mallory'
ok "headersToUpstreamOnAllow overwrote the client's value" mg_json_has_header "$AZ_BODY" x-ext-user alice
unlike "$AZ_BODY" 'mallory' "the client's x-ext-user is gone"
cz "provider allows, DENY policy still denies" 403 "$B/denied-too" ext
is "$AZ_BODY" "RBAC: access denied" "RBAC body after an allowed check"
# a request body waits while the check is in flight, then streams upstream
head -c 3000000 /dev/urandom >"$MG_TMP/big"
want=$(sha256sum <"$MG_TMP/big" | cut -d' ' -f1)
body=$(mg_curl --cacert "$MG_PKI/root-cert.pem" --data-binary @"$MG_TMP/big" "$B/echo")
is "$(mg_json_field "$body" body_sha256)" "$want" "3 MB upload intact after an allowed check (HTTP/1.1)"
body=$(mg_curl --http2 --cacert "$MG_PKI/root-cert.pem" --data-binary @"$MG_TMP/big" "$B/echo")
is "$(mg_json_field "$body" body_sha256)" "$want" "3 MB upload intact after an allowed check (HTTP/2)"
is "$(mg_http_code --cacert "$MG_PKI/root-cert.pem" --data-binary @"$MG_TMP/big" "$B/status/403")" 403 \
    "upload to a denied path: the provider's 403"

# the client gives up while the check is in flight: the check is cancelled
mg_curl --cacert "$MG_PKI/root-cert.pem" --max-time 0.3 -o /dev/null "$B/slow?ms=1500" 2>/dev/null
sleep 1.6
cz "gateway healthy after a client left during a check" 200 "$B/echo" ext
cz "HTTP/2: provider 403 denies" 403 "$B/status/403" ext --curl --http2
cz "HTTP/2: provider 200 allows" 200 "$B/echo" ext --curl --http2
like "$(az_metric 'meshgate_ext_authz_total\{result="deny"\}')" '^[1-9]' "ext_authz deny counted"
ok "access log names the CUSTOM policy and reason ext_authz_denied" \
    az_log_wait '"path":"/status/403.*"reason":"ext_authz_denied".*"authz_policy":"istio-system.ext-check","authz_rule":0'

custom slow
ok "reload: provider with a 300ms timeout and statusOnError 503" az_reload 2
t0=$(date +%s%N)
cz "provider timeout gives statusOnError" 503 "$B/slow?ms=3000" slow
t1=$(date +%s%N)
ok "timed out in well under the provider's 3 s" test $(((t1 - t0) / 1000000)) -lt 2000

custom down
ok "reload: unreachable provider, fail closed" az_reload 3
cz "connect failure denies (fail closed, 403)" 403 "$B/echo" down
cz "requests the CUSTOM rule does not match are unaffected" 200 "$B/public/x" -
ok "access log: ext_authz_error with the failure" \
    az_log_wait '"reason":"ext_authz_error".*"authz_detail":"ext_authz connection failed"'

custom down-open
ok "reload: unreachable provider with failOpen" az_reload 4
cz "failOpen: connect failure allows" 200 "$B/echo" down-open
is "$(mg_json_field "$AZ_BODY" upstream)" v1 "failOpen request reached the upstream"

custom prefixed
ok "reload: provider with pathPrefix /check" az_reload 5
cz "pathPrefix: /status/201 is checked as /check/status/201 (echo 200: allowed)" 201 "$B/status/201" prefixed
is "$(mg_json_field "$AZ_BODY" upstream)" v1 "the 201 came from the upstream, after the check"
like "$(cat "$AZLOG")" 'GET /check/status/201 ' "the provider saw pathPrefix + path"

done_testing
