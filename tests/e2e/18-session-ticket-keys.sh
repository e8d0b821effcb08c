#!/bin/bash
# 18-session-ticket-keys.sh - Proxy.spec.tls.sessionTicketKeys: two
# meshgates reading the same key file (HAProxy's tls-ticket-keys format, or
# nginx's raw ssl_session_ticket_key) resume each other's TLS sessions, 1.2
# and 1.3; an instance with its own keys does not. The first key encrypts,
# all decrypt: a rotation that puts a new key first keeps old tickets
# resuming; dropping a key ends its tickets; a broken file is refused and
# the keys in use stay. A resumed TLS 1.3 connection brings a new ticket,
# so a client resuming with its newest ticket resumes every time, also
# after a reload.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/dp_common.sh"

mg_pki || bail_out "cannot make a PKI"
mg_start_upstream --name v1 || bail_out "upstream"
up=$MG_UPSTREAM_PORT
keys=$MG_TMP/ticket.keys
key() { openssl rand 80 | base64 -w0; echo; }
{ echo "# fleet ticket keys"; key; key; key; } >"$keys.new" && mv "$keys.new" "$keys"

# instance NAME IP KEYFILE: a config directory of its own (admin), the same
# HTTPS port as every other instance on its own loopback address, as a
# fleet's hosts share the port behind a balancer (the session id context
# names the port, so a session resumes only on the same port)
declare -A ip admin
P443=$(mg_free_port)
instance() {
    local name=$1 kf=$3 dir
    ip[$name]=$2
    admin[$name]=127.0.0.1:$(mg_free_port)
    dir=$(mg_tmpdir "cfg-$name")
    dp_proxy "$dir" "${admin[$name]}" JSON
    sed -i "s/^  bindAddress: 127.0.0.1/  bindAddress: $2/" "$dir/00-proxy.yaml"
    if [ -n "$kf" ]; then
        sed -i "/^  workers: 2/a\\  tls: {sessionTicketKeys: $kf}" "$dir/00-proxy.yaml"
    fi
    dp_service "$dir" backend backend.local "$up"
    cat >"$dir/gw.yaml" <<YAML
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: $P443, name: https, protocol: HTTPS}
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
YAML
    MG_ADMIN=${admin[$name]} mg_start_meshgate "$dir"
}

ok "instance A starts with the key file" instance a 127.0.0.1 "$keys"
pid_a=$MG_MESHGATE_PID
log_a=$MG_MESHGATE_LOG
ok "instance B starts with the same key file" instance b 127.0.0.2 "$keys"
ok "instance C starts with its own keys" instance c 127.0.0.3 ""
pid_c=$MG_MESHGATE_PID
log_c=$MG_MESHGATE_LOG

# ses IP OUT|IN FILE [TLS-FLAG]: one TLS connection with a request;
# prints "Reused" or "New"
ses() {
    local a=$1 mode=$2 f=$3 v=${4:--tls1_3}
    printf 'GET /echo HTTP/1.1\r\nHost: app.example.com\r\nConnection: close\r\n\r\n' |
        timeout 5 openssl s_client -connect "$a:$P443" -servername app.example.com \
            -CAfile "$MG_PKI/root-cert.pem" "$v" -ign_eof "-sess_$mode" "$f" 2>/dev/null |
        grep -E '^(Reused|New),' | grep -v 'Cipher is (NONE)' | grep -Eo '^(Reused|New)' | head -n 1
}

for v in -tls1_3 -tls1_2; do
    s=$MG_TMP/sess$v.pem
    is "$(ses "${ip[a]}" out "$s" "$v")" New "$v: a full handshake on A"
    is "$(ses "${ip[b]}" in "$s" "$v")" Reused "$v: ... its session resumes on B (same key file)"
    is "$(ses "${ip[c]}" in "$s" "$v")" New "$v: ... not on C (own keys)"
done

# hop IP IN OUT [TLS-FLAG]: resume with the session in IN, save the session
# the connection ends with (its new ticket) to OUT; prints Reused or New.
# (s_client writes OUT only when a ticket arrives; a TLS 1.2 client without
# a new ticket keeps the one it had, so IN stands for OUT there.)
hop() {
    local a=$1 in=$2 out=$3 v=${4:--tls1_3}
    rm -f "$out"
    printf 'GET /echo HTTP/1.1\r\nHost: app.example.com\r\nConnection: close\r\n\r\n' |
        timeout 5 openssl s_client -connect "$a:$P443" -servername app.example.com \
            -CAfile "$MG_PKI/root-cert.pem" "$v" -ign_eof -sess_in "$in" -sess_out "$out" 2>/dev/null |
        grep -E '^(Reused|New),' | grep -v 'Cipher is (NONE)' | grep -Eo '^(Reused|New)' | head -n 1
    if [ "$v" = -tls1_2 ] && [ ! -s "$out" ]; then cp "$in" "$out"; fi
}

# A TLS 1.3 client uses a ticket once (RFC 8446, C.4), so a resumed
# connection must hand out a new ticket, or the client's next connection is
# a full handshake: a chain of resumptions, each with the ticket the one
# before received, across the two instances of a key file and within one
# instance with its own keys (either of its two workers). TLS 1.2 keeps one
# ticket while its key encrypts.
for v in -tls1_3 -tls1_2; do
    c=$MG_TMP/chain$v
    is "$(ses "${ip[a]}" out "$c.0" "$v")" New "$v chain: a full handshake on A"
    for i in 1 2 3 4; do
        at=${ip[a]}
        [ $((i % 2)) = 1 ] && at=${ip[b]}
        is "$(hop "$at" "$c.$((i - 1))" "$c.$i" "$v")" Reused "$v chain: hop $i resumes on $at"
        [ "$v" = -tls1_3 ] && ok "$v chain: ... and it brought a new ticket" test -s "$c.$i"
    done
    is "$(ses "${ip[c]}" out "$c.c0" "$v")" New "$v chain: a full handshake on C (own keys)"
    for i in 1 2 3; do
        is "$(hop "${ip[c]}" "$c.c$((i - 1))" "$c.c$i" "$v")" Reused "$v chain: hop $i resumes on C"
    done
    # a reload builds new contexts; C's own keys live outside them
    n=$(grep -c " active" "$log_c")
    kill -HUP "$pid_c"
    ok "$v chain: C reloads" mg_wait_for 10 eval '[ "$(grep -c " active" "$log_c")" -gt '"$n"' ]'
    is "$(hop "${ip[c]}" "$c.c3" "$c.c4" "$v")" Reused "$v chain: ... and the newest ticket still resumes"
done

# rotation: a new key first, the old ones after it -> old tickets still resume
s=$MG_TMP/sess-old.pem
is "$(ses "${ip[a]}" out "$s")" New "a ticket under the first key"
{ key; cat "$keys"; } >"$keys.new" && mv "$keys.new" "$keys"
ok "A picks up the rotated file without a signal" mg_wait_log "$log_a" 'rotating certificates' 10
sleep 0.5
is "$(ses "${ip[a]}" in "$s")" Reused "after a rotation the previous first key still decrypts"

# the key file loses that key: its tickets stop resuming
n=$(grep -c " active" "$log_a")
{ head -n 1 "$keys"; } >"$keys.new" && mv "$keys.new" "$keys"
ok "A picks up the shorter file" mg_wait_for 10 eval '[ "$(grep -c " active" "$log_a")" -gt '"$n"' ]'
sleep 0.5
is "$(ses "${ip[a]}" in "$s")" New "a ticket whose key left the file no longer resumes"

# a broken file is refused, the keys in use stay
s3=$MG_TMP/sess-3.pem
is "$(ses "${ip[a]}" out "$s3")" New "a ticket under the current key"
n=$(grep -c "rejected" "$log_a")
echo "notbase64" >"$keys.new" && mv "$keys.new" "$keys"
ok "a broken key file is refused" mg_wait_for 10 eval '[ "$(grep -c rejected "$log_a")" -gt '"$n"' ]'
like "$(cat "$log_a")" 'sessionTicketKeys .*:1: want a base64 key of 48 or 80 bytes' "... with the file and line"
is "$(ses "${ip[a]}" in "$s3")" Reused "... and the keys in use stay"

# nginx's format: one key of 80 raw bytes (name | HMAC key | AES key)
raw=$MG_TMP/ticket.raw
openssl rand 80 >"$raw"
ok "instance D starts with an nginx key file" instance d 127.0.0.4 "$raw"
ok "instance E starts with the same nginx key file" instance e 127.0.0.5 "$raw"
s4=$MG_TMP/sess-raw.pem
is "$(ses "${ip[d]}" out "$s4")" New "nginx key: full handshake on D"
is "$(ses "${ip[e]}" in "$s4")" Reused "... resumed on E"
head -c 47 /dev/urandom >"$MG_TMP/short.raw"
dir=$(mg_tmpdir cfg-bad)
dp_proxy "$dir" 127.0.0.1:1 JSON
sed -i "/^  workers: 2/a\\  tls: {sessionTicketKeys: $MG_TMP/short.raw}" "$dir/00-proxy.yaml"
out=$(timeout 10 "$MESHGATE" run -c "$dir" 2>&1)
like "$out" '47 bytes of binary; want one key of 48 or 80' "a 47-byte raw key: meshgate run refuses to start, saying why"

done_testing
