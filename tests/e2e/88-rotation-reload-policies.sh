#!/bin/bash
# 88-rotation-reload-policies.sh - a certificate rotation (the file watch,
# no signal) re-reads certificate material only: a policy edited on disk
# but not signalled stays out of force everywhere until SIGHUP, and the
# SIGHUP that brings it recycles the connections opened before, as any
# policy change does.
# Regression: the watch re-read the whole configuration directory, so an
# unsignalled DENY went live on new connections while open keep-alive
# connections (HTTP/2 sessions, tunnels) kept the old policies for good:
# the rotation kept the policy generation although the policies changed.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/dp_common.sh"

mg_pki || bail_out "cannot make a PKI"
P=$MG_PKI
"$MESHGATE" ca issue --dir "$P" --dns example.com --dns '*.example.com' --dns localhost \
    --ip 127.0.0.1 --name rotated >/dev/null || bail_out "second server certificate"
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
adm="http://$MG_ADMIN"

serial_of() { openssl x509 -noout -serial -in "$1" 2>/dev/null; }
served_serial() {
    echo | timeout 5 openssl s_client -connect "127.0.0.1:$https" -servername app.example.com 2>/dev/null |
        openssl x509 -noout -serial 2>/dev/null
}
old_serial=$(serial_of "$P/server.crt")
new_serial=$(serial_of "$P/rotated.crt")
ok "the two certificates differ ($old_serial, $new_serial)" test -n "$old_serial" -a "$old_serial" != "$new_serial"
is "$(served_serial)" "$old_serial" "generation 1 serves the first certificate"

# read one HTTP/1.1 response from fd 5: prints the status line and the
# lower-cased connection header; fails on EOF
read_resp() {
    local line h len=0 conn=
    read -r -t 5 line <&5 || return 1
    while read -r -t 5 h <&5; do
        h=$(printf '%s' "$h" | tr -d '\r' | tr 'A-Z' 'a-z')
        [ -z "$h" ] && break
        case $h in content-length:*) len=${h#content-length: } ;; connection:*) conn=${h#connection: } ;; esac
    done
    head -c "$len" <&5 >/dev/null
    printf '%s|%s\n' "$(printf '%s' "$line" | tr -d '\r')" "$conn"
}
ka() {  # ka PATH: one request on the keep-alive connection
    printf 'GET %s HTTP/1.1\r\nHost: app.example.com\r\n\r\n' "$1" >&5 2>/dev/null
    read_resp
}
h1() { mg_http_code "http://app.example.com:$http$1"; }
h2() { mg_http_code --http2 --cacert "$P/root-cert.pem" "https://app.example.com:$https$1"; }

# ---- a keep-alive connection opened on generation 1
exec 5<>"/dev/tcp/127.0.0.1/$http"
like "$(ka /secret/a)" '^HTTP/1.1 200 OK\|$' "keep-alive connection, generation 1: /secret allowed, kept open"

# ---- a DENY written to the configuration directory, not signalled
cat >"$cfg/deny.yaml" <<'YAML'
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: no-secret, namespace: istio-system}
spec:
  action: DENY
  rules: [{to: [{operation: {paths: ["/secret*"]}}]}]
YAML

# ---- then the certificate rotates (key first, then the certificate; the
# watch polls every 2 s). Should the watch see the key alone and refuse the
# pair, a second touch makes it look again.
cp "$P/rotated.key" "$P/server.key.new" && mv "$P/server.key.new" "$P/server.key"
cp "$P/rotated.crt" "$P/server.crt.new" && mv "$P/server.crt.new" "$P/server.crt"
got=
for ((i = 0; i < 100; i++)); do
    got=$(served_serial)
    [ "$got" = "$new_serial" ] && break
    [ "$i" = 50 ] && touch "$P/server.key" "$P/server.crt"
    sleep 0.2
done
is "$got" "$new_serial" "the rotated certificate is served on a new handshake"
ok "the watch took it as generation 2" mg_wait_log "$MG_MESHGATE_LOG" "generation 2 active" 10
ok "stderr calls it a certificate rotation" \
    grep -Eq 'certificate rotation.*generation 2|generation 2 active \(certificate rotation' "$MG_MESHGATE_LOG"
dump=$(mg_curl "$adm/config_dump")
is "$(mg_json_field "$dump" generation)" 2 "/config_dump: generation 2"
is "$(mg_json_field "$dump" policy_generation)" 1 "/config_dump: the policies are still those of generation 1"

is "$(h1 /secret/b)" 200 "unsignalled DENY: a new HTTP/1.1 connection still passes /secret"
is "$(h2 /secret/b)" 200 "unsignalled DENY: a new HTTP/2 connection (rotated certificate) still passes /secret"
like "$(ka /secret/c)" '^HTTP/1.1 200 OK\|$' "the keep-alive connection survives the rotation (/secret, kept open)"
like "$(ka /secret/d)" '^HTTP/1.1 200 OK\|$' "... and keeps the same policies"

# ---- a rejected SIGHUP is not applied by a later rotation either
cp "$cfg/deny.yaml" "$MG_TMP/deny.yaml.good"
printf 'apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: broken}\nspec: {action: NOPE}\n' \
    >"$cfg/broken.yaml"
kill -HUP "$pid"
ok "a configuration with errors is rejected" mg_wait_log "$MG_MESHGATE_LOG" "reload rejected" 10
rm -f "$cfg/broken.yaml"
touch "$P/server.crt"
ok "the next rotation is generation 3" mg_wait_log "$MG_MESHGATE_LOG" "generation 3 active" 10
is "$(h1 /secret/e)" 200 "after a rejected reload and a rotation, the DENY is still not in force"
like "$(ka /secret/f)" '^HTTP/1.1 200 OK\|$' "... nor on the keep-alive connection, still open"

# ---- SIGHUP applies the DENY everywhere
kill -HUP "$pid"
ok "SIGHUP reloads: generation 4" mg_wait_log "$MG_MESHGATE_LOG" "generation 4 active" 10
ok "stderr calls it a configuration reload" \
    grep -Eq 'generation 4 active \(configuration reload' "$MG_MESHGATE_LOG"
dump=$(mg_curl "$adm/config_dump")
is "$(mg_json_field "$dump" policy_generation)" 4 "/config_dump: the reload changed the policy generation"
is "$(h1 /secret/g)" 403 "after SIGHUP: a new HTTP/1.1 connection is denied /secret"
is "$(h2 /secret/g)" 403 "after SIGHUP: a new HTTP/2 connection is denied /secret"
is "$(served_serial)" "$new_serial" "the rotated certificate is still served"
like "$(ka /secret/h)" '^HTTP/1.1 200 OK\|close$' \
    "the keep-alive connection's next request is served on its generation with Connection: close"
is "$(ka /secret/i)" "" "... and no further request passes on it"
exec 5<&-
is "$(h1 /open)" 200 "the gateway still serves"

done_testing
