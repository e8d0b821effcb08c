#!/bin/bash
# 81-reload-stale-connections.sh - a connection accepted before a reload
# does not keep the old generation's policies: its next request is served
# on the old generation and then the connection closes (HTTP/1.1:
# Connection: close; HTTP/2: GOAWAY, later streams refused), as Envoy
# drains the connections of a changed listener.
# Regression: a keep-alive connection (HTTP/1.1 or HTTP/2) opened before a
# DENY policy was added kept passing requests the new policy denies, for as
# long as the client kept it busy within the idle timeout (also a STRICT
# PeerAuthentication, a revoked route...).
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/dp_common.sh"

FLOOD=$MG_BUILDDIR/tests/helpers/mg_h2flood
[ -x "$FLOOD" ] || skip_all "mg_h2flood not built"

mg_pki || bail_out "cannot make a PKI"
mg_start_upstream --name v1 || bail_out "upstream"
up=$MG_UPSTREAM_PORT
http=$(mg_free_port)
https=$(mg_free_port)
export MG_ADMIN=127.0.0.1:$(mg_free_port)
cfg=$(mg_tmpdir cfg)
dp_proxy "$cfg" "$MG_ADMIN" JSON
sed -i 's/^  workers: 2/  workers: 1/' "$cfg/00-proxy.yaml"
dp_service "$cfg" backend backend.local "$up"
cat >"$cfg/gw.yaml" <<YAML
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: $http, name: http, protocol: HTTP}
    hosts: ["app.example.com"]
  - port: {number: $https, name: https, protocol: HTTPS}
    hosts: ["app.example.com"]
    tls: {mode: SIMPLE, credentialName: app-cert}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: app, namespace: istio-system}
spec:
  hosts: ["app.example.com"]
  gateways: ["gw"]
  http: [{name: main, route: [{destination: {host: backend.local}}]}]
YAML
ok "gateway starts" mg_start_meshgate "$cfg"
pid=$MG_MESHGATE_PID
gen=1

add_deny() {  # reload with a DENY policy on /secret
    cat >"$cfg/deny.yaml" <<'YAML'
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: no-secret, namespace: istio-system}
spec:
  action: DENY
  rules: [{to: [{operation: {paths: ["/secret*"]}}]}]
YAML
    gen=$((gen + 1))
    kill -HUP "$pid"
    mg_wait_log "$MG_MESHGATE_LOG" "generation $gen active" 5
}

# read one HTTP/1.1 response from fd 5: prints the status line and the
# lower-cased connection header; fails on EOF
read_resp() {
    local line h len=0 conn=
    read -r -t 3 line <&5 || return 1
    while read -r -t 3 h <&5; do
        h=$(printf '%s' "$h" | tr -d '\r' | tr 'A-Z' 'a-z')
        [ -z "$h" ] && break
        case $h in content-length:*) len=${h#content-length: } ;; connection:*) conn=${h#connection: } ;; esac
    done
    head -c "$len" <&5 >/dev/null
    printf '%s|%s\n' "$(printf '%s' "$line" | tr -d '\r')" "$conn"
}

# ---- HTTP/1.1 keep-alive connection opened on generation 1
exec 5<>"/dev/tcp/127.0.0.1/$http"
printf 'GET /secret/a HTTP/1.1\r\nHost: app.example.com\r\n\r\n' >&5
like "$(read_resp)" '^HTTP/1.1 200 OK\|$' "keep-alive connection, generation 1: /secret allowed, kept open"
ok "reload adds DENY /secret*" add_deny
is "$(mg_http_code "http://app.example.com:$http/secret/a")" 403 "a new connection: /secret denied"
r=$(printf 'GET /secret/b HTTP/1.1\r\nHost: app.example.com\r\n\r\n' >&5; read_resp)
like "$r" '^HTTP/1.1 200 OK\|close$' "the old connection's next request is served on generation 1 with Connection: close"
r=$(printf 'GET /secret/c HTTP/1.1\r\nHost: app.example.com\r\n\r\n' >&5 2>/dev/null; read_resp)
is "$r" "" "... and no further request passes on it"
exec 5<&-
rm -f "$cfg/deny.yaml"
ok "reload removes the policy" sh -c "kill -HUP $pid"
gen=$((gen + 1))
ok "generation $gen active" mg_wait_log "$MG_MESHGATE_LOG" "generation $gen active" 5

# ---- HTTP/2: requests 600 ms apart on one connection, a reload after the first
"$FLOOD" --port "$https" seq 5 600 /secret/x >"$MG_TMP/seq.out" 2>&1 &
flood=$!
sleep 0.3
ok "reload adds DENY /secret* (HTTP/2 part)" add_deny
wait "$flood"
out=$(cat "$MG_TMP/seq.out")
diag "$out"
like "$out" '^request 0 status 200' "h2, generation 1: /secret allowed"
n200=$(grep -c 'status 200' <<<"$out")
ok "h2: at most one stream after the reload passes on the old generation ($((n200 - 1)))" test "$n200" -le 2
unlike "$(sed -n '4,5p' <<<"$out")" 'status 200' "h2: later streams are refused (GOAWAY) or the connection closed"
is "$(mg_http_code --http2 --cacert "$MG_PKI/root-cert.pem" "https://app.example.com:$https/secret/x")" 403 \
    "h2, a new connection: /secret denied"
is "$(mg_http_code "http://app.example.com:$http/open")" 200 "the gateway still serves"

done_testing
