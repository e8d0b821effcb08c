#!/bin/bash
# 90-tls-session-isolation.sh - regression: TLS sessions resume only on the
# server block they were made on. Tickets are shared by every server of the
# process and the server is chosen from the SNI, so a session made on a SIMPLE
# server once resumed on a MUTUAL server of the same port and stood in for
# the client certificate (TLS 1.3: 200 without a certificate). Also: after the
# trust material of a MUTUAL server changes, its old sessions no longer resume.
# A MUTUAL server sends one TLS 1.3 ticket per connection, a SIMPLE one two.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"

mg_pki || bail_out "cannot make a PKI"
P=$MG_PKI
mg_start_upstream --name up || bail_out "upstream"
up=$MG_UPSTREAM_PORT
port=$(mg_free_port)
export MG_ADMIN=127.0.0.1:$(mg_free_port)
cfg=$(mg_tmpdir cfg)
cp "$P/root-cert.pem" "$cfg/client-ca.pem"
cat >"$cfg/gw.yaml" <<YAML
apiVersion: meshgate.io/v1alpha1
kind: Proxy
metadata: {name: gw, namespace: istio-system, labels: {istio: ingressgateway}}
spec:
  bindAddress: 127.0.0.1
  admin: $MG_ADMIN
  credentials:
    open: {certificate: $P/server.crt, privateKey: $P/server.key}
    locked: {certificate: $P/server.crt, privateKey: $P/server.key, caCertificates: client-ca.pem}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: $port, name: a, protocol: HTTPS}
    hosts: [a.example.com]
    tls: {mode: SIMPLE, credentialName: open}
  - port: {number: $port, name: b, protocol: HTTPS}
    hosts: [b.example.com]
    tls: {mode: MUTUAL, credentialName: locked}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: v, namespace: istio-system}
spec:
  hosts: [a.example.com, b.example.com]
  gateways: [gw]
  http: [{route: [{destination: {host: up.local}}]}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: up, namespace: istio-system}
spec:
  hosts: [up.local]
  ports: [{number: $up, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1}]
YAML
ok "gateway starts" mg_start_meshgate "$cfg" || bail_out "gateway"

# tls VERSION SNI SESSION_OUT SESSION_IN [s_client args]: one GET /echo; prints
# "Reused," or "New," and the HTTP status (s_client mixes its own output into
# the response's lines, so the status is found anywhere on a line).
tls() {
    local v=$1 sni=$2 out=$3 in=$4
    shift 4
    local so=() si=()
    [ -n "$out" ] && so=(-sess_out "$out")
    [ -n "$in" ] && si=(-sess_in "$in")
    printf 'GET /echo HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n' "$sni" |
        timeout 5 openssl s_client "$v" -connect "127.0.0.1:$port" -servername "$sni" \
            -CAfile "$P/root-cert.pem" "${so[@]}" "${si[@]}" -ign_eof "$@" 2>&1 |
        awk '/^(Reused|New),/ && !r {print $1; r=1}
             !h && match($0, /HTTP\/1\.1 [0-9][0-9][0-9]/) {print substr($0, RSTART + 9, 3); h=1}' |
        tr '\n' ' '
}

for v in -tls1_3 -tls1_2; do
    s=$MG_TMP/a$v.pem
    like "$(tls $v a.example.com "$s" "")" "New, 200" "$v: a full handshake on the SIMPLE server"
    like "$(tls $v a.example.com "" "$s")" "Reused, 200" "$v: its session resumes on the same server"
    r=$(tls $v b.example.com "" "$s")
    unlike "$r" "Reused" "$v: the SIMPLE server's session does not resume on the MUTUAL server"
    unlike "$r" "200" "$v: and without a client certificate there is no answer"
    sb=$MG_TMP/b$v.pem
    like "$(tls $v b.example.com "$sb" "" -cert "$P/client.crt" -key "$P/client.key")" "New, 200" \
        "$v: the MUTUAL server with a client certificate"
    like "$(tls $v b.example.com "" "$sb")" "Reused, 200" "$v: its session resumes there (the certificate is in the session)"
    unlike "$(tls $v a.example.com "" "$sb")" "Reused" "$v: but not on the SIMPLE server"
done

# tickets SNI [s_client args]: the TLS 1.3 tickets one connection with a GET brings
tickets() {
    printf 'GET /echo HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n' "$1" |
        timeout 5 openssl s_client -tls1_3 -connect "127.0.0.1:$port" -servername "$1" \
            -CAfile "$P/root-cert.pem" -ign_eof "${@:2}" 2>&1 | grep -c 'New Session Ticket arrived'
}
# A MUTUAL server's session carries the client certificate, which OpenSSL
# encodes and parses again for every ticket: one ticket there, not two (b
# is reached by a context switch from a, the port's first server)
is "$(tickets a.example.com)" 2 "a full handshake on the SIMPLE server brings two tickets"
st=$MG_TMP/b-tickets.pem
is "$(tickets b.example.com -cert "$P/client.crt" -key "$P/client.key" -sess_out "$st")" 1 \
    "a full handshake on the MUTUAL server brings one"
is "$(tickets b.example.com -sess_in "$st")" 1 "... and a resumption there brings the next one"

# Rotate the MUTUAL server's client CA to another root: old sessions must not resume.
"$MESHGATE" ca init --dir "$MG_TMP/other-ca" >/dev/null || bail_out "second CA"
sb=$MG_TMP/b-tls1_3.pem
cp "$MG_TMP/other-ca/root-cert.pem" "$cfg/client-ca.pem.new" && mv "$cfg/client-ca.pem.new" "$cfg/client-ca.pem"
kill -HUP "$MG_MESHGATE_PID"
ok "the reload is taken" mg_wait_log "$MG_MESHGATE_LOG" "generation 2 active"
unlike "$(tls -tls1_3 b.example.com "" "$sb")" "Reused" "after the client CA changed, an old session does not resume"
is "$(tls -tls1_3 b.example.com "" "" -cert "$P/client.crt" -key "$P/client.key")" "New, " \
    "and a certificate from the old CA is refused"
done_testing
