#!/bin/bash
# 15-fleet-haproxy.sh - two meshgates behind HAProxy in TCP mode, as the
# README's fleet recipe runs them: send-proxy-v2 to both, health checks on
# /ready, one configuration directory laid out as a Kubernetes ConfigMap
# volume (watchConfig) and one session ticket key file for both. Shows:
# remoteIpBlocks deciding on the client address the PROXY header carries;
# a forged header from an untrusted source refused; a TLS session made
# through one instance resumed on the other; and, under a request loop
# through HAProxy, one instance stopped with SIGTERM (drain) and the
# configuration swapped under the other, then a broken swap refused, with
# no failed request.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/dp_common.sh"

command -v haproxy >/dev/null || skip_all "haproxy not installed (contrib/install-deps.sh test)"
mg_pki || bail_out "cannot make a PKI"
mg_start_upstream --name v1 || bail_out "upstream v1"
u1=$MG_UPSTREAM_PORT
mg_start_upstream --name v2 || bail_out "upstream v2"
u2=$MG_UPSTREAM_PORT
port=$(mg_free_port)
lb=$(mg_free_port)
adm_a=127.0.0.1:$(mg_free_port)
adm_b=127.0.0.2:$(mg_free_port)          # health-checked at the server address
keys=$MG_TMP/ticket.keys
{ openssl rand 80 | base64 -w0; echo; } >"$keys"
vol=$(mg_tmpdir volume)

# version DIR UPSTREAM: one complete configuration, shared by both instances
version() {
    local d=$1
    mkdir -p "$d"
    dp_proxy "$d" 127.0.0.1:1 JSON           # admin and bind address come from the command line
    sed -i -e 's/drain: 10s/drain: 10s, drainDelay: 3s/' \
        -e "/^  workers: 2/a\\  watchConfig: true\\n  tls: {sessionTicketKeys: $keys}\\n  proxyProtocol: {trustedSources: [\"127.0.0.1/32\"]}" \
        "$d/00-proxy.yaml"
    dp_service "$d" backend backend.local "$2"
    cat >"$d/gw.yaml" <<YAML
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: $port, name: https, protocol: HTTPS}
    hosts: ["app.example.com"]
    tls: {mode: SIMPLE, credentialName: app-cert}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: app, namespace: istio-system}
spec:
  hosts: ["app.example.com"]
  gateways: ["gw"]
  http:
  - route: [{destination: {host: backend.local, port: {number: 80}}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: block, namespace: istio-system}
spec:
  action: DENY
  rules: [{from: [{source: {remoteIpBlocks: ["127.0.0.9/32"]}}]}]
YAML
}
flip() { ln -s "$1" "$vol/..data_tmp" && mv -T "$vol/..data_tmp" "$vol/..data"; }

version "$vol/..v1" "$u1"
ln -s ..v1 "$vol/..data"
for f in "$vol"/..data/*.yaml; do ln -s "..data/$(basename "$f")" "$vol/$(basename "$f")"; done
ok "meshgate check accepts the shared configuration" "$MESHGATE" check -c "$vol"

MG_ADMIN=$adm_a mg_start_meshgate "$vol" --bind-address 127.0.0.1 --admin "$adm_a" ||
    bail_out "instance A did not start"
pid_a=$MG_MESHGATE_PID
log_a=$MG_MESHGATE_LOG
MG_ADMIN=$adm_b mg_start_meshgate "$vol" --bind-address 127.0.0.2 --admin "$adm_b" ||
    bail_out "instance B did not start"
pid_b=$MG_MESHGATE_PID
log_b=$MG_MESHGATE_LOG
pass "two instances serve one configuration directory on 127.0.0.1 and 127.0.0.2, port $port"

cat >"$MG_TMP/haproxy.cfg" <<HA
global
  maxconn 500
defaults
  mode tcp
  timeout connect 2s
  timeout client 30s
  timeout server 30s
  retries 3
  option redispatch
frontend fe
  bind 127.0.0.1:$lb
  default_backend fleet
backend fleet
  balance roundrobin
  option httpchk GET /ready
  http-check expect status 200
  server a 127.0.0.1:$port send-proxy-v2 check port ${adm_a##*:} inter 300ms fall 2 rise 2
  server b 127.0.0.2:$port send-proxy-v2 check port ${adm_b##*:} inter 300ms fall 2 rise 2
HA
haproxy -f "$MG_TMP/haproxy.cfg" -db >"$MG_TMP/haproxy.log" 2>&1 &
_mg_track $!
mg_wait_port 127.0.0.1 "$lb" || bail_out "haproxy did not start"
sleep 1.5                               # both servers seen up (rise 2 x 300 ms)

CA=(--cacert "$MG_PKI/root-cert.pem" --connect-to "app.example.com:443:127.0.0.1:$lb")
codes=""
for i in 1 2 3 4 5 6; do
    codes+="$(mg_http_code "${CA[@]}" --interface 127.0.0.3 https://app.example.com/echo) "
done
is "$codes" "200 200 200 200 200 200 " "requests through HAProxy are served"
ok "... by instance A" grep -q '"downstream_local_address":"127.0.0.1:'"$port"'"' "$DP_ACCESS_LOG"
ok "... and by instance B" grep -q '"downstream_local_address":"127.0.0.2:'"$port"'"' "$DP_ACCESS_LOG"
body=$(mg_curl "${CA[@]}" --interface 127.0.0.3 https://app.example.com/echo)
ok "the client address from the PROXY header reaches X-Forwarded-For" \
    mg_json_has_header "$body" x-forwarded-for 127.0.0.3
codes=""
for i in 1 2; do
    codes+="$(mg_http_code "${CA[@]}" --interface 127.0.0.9 https://app.example.com/echo) "
done
is "$codes" "403 403 " "remoteIpBlocks decide on that address, on both instances"

out=$(mg_http_code --cacert "$MG_PKI/root-cert.pem" --interface 127.0.0.3 --haproxy-protocol \
    --connect-to "app.example.com:443:127.0.0.1:$port" https://app.example.com/echo)
is "$out" 000 "a forged PROXY header from a source outside trustedSources is refused"

# a TLS session made through one instance resumes on the other
ses() {
    printf 'GET /echo HTTP/1.1\r\nHost: app.example.com\r\nConnection: close\r\n\r\n' |
        timeout 5 openssl s_client -connect "$1" -servername app.example.com \
            -CAfile "$MG_PKI/root-cert.pem" -ign_eof "$2" "$3" 2>/dev/null |
        grep -E '^(Reused|New),' | grep -v 'Cipher is (NONE)' | grep -Eo '^(Reused|New)' | head -n 1
}
is "$(ses "127.0.0.1:$port" -sess_out "$MG_TMP/s.pem")" "" "TLS straight to A without a PROXY header: refused"
# sessions through HAProxy: roundrobin alternates the instances
is "$(ses "127.0.0.1:$lb" -sess_out "$MG_TMP/s.pem")" New "a full handshake through HAProxy"
r=""
for i in 1 2 3 4; do r+="$(ses "127.0.0.1:$lb" -sess_in "$MG_TMP/s.pem") "; done
is "$r" "Reused Reused Reused Reused " "... resumed on every later connection, whichever instance it reaches"

# the loop: new HTTPS connections through HAProxy all along what follows
(
    while [ ! -e "$MG_TMP/stop" ]; do
        curl -s -o /dev/null -w '%{http_code}\n' --max-time 5 "${CA[@]}" --interface 127.0.0.3 \
            https://app.example.com/echo
    done
) >"$MG_TMP/loop.txt" &
loop=$!
sleep 1

kill -TERM "$pid_a"
ok "SIGTERM: A's /ready answers 503" \
    mg_wait_for 3 eval '[ "$(mg_http_code "http://$adm_a/ready")" = 503 ]'
ok "... HAProxy marks A down" mg_wait_for 5 grep -q 'Server fleet/a is DOWN' "$MG_TMP/haproxy.log"
for ((i = 0; i < 150; i++)); do
    _mg_alive "$pid_a" || break
    sleep 0.1
done
fails "... and A exits after its drain" _mg_alive "$pid_a"

version "$vol/..v2" "$u2"
flip ..v2
ok "B reloads the swapped volume" mg_wait_log "$log_b" 'generation 2 active \(configuration reload' 10
got=""
for ((i = 0; i < 50; i++)); do
    got=$(mg_json_field "$(mg_curl "${CA[@]}" https://app.example.com/echo)" upstream)
    [ "$got" = v2 ] && break
    sleep 0.1
done
is "$got" v2 "... and serves the new configuration through HAProxy"

mkdir -p "$vol/..v3"
cp "$vol/..v2/"*.yaml "$vol/..v3/"
printf 'kind: [broken\n' >>"$vol/..v3/gw.yaml"
flip ..v3
ok "a broken swap is refused by B" mg_wait_log "$log_b" 'reload rejected; generation 2 keeps serving' 10
sleep 1
touch "$MG_TMP/stop"
wait "$loop"
total=$(wc -l <"$MG_TMP/loop.txt")
bad=$(grep -vc '^200$' "$MG_TMP/loop.txt")
ok "the request loop through HAProxy ran throughout ($total requests)" test "$total" -ge 20
is "$bad" 0 "... and not one failed (SIGTERM drain, a swap, a broken swap)"
echo "# fleet loop: $total requests, $bad failed" >&2
mg_stop "$pid_b"

done_testing
