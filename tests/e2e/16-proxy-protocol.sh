#!/bin/bash
# 16-proxy-protocol.sh - PROXY protocol (v1 and v2) on Gateway listeners, as
# a fleet behind an L4 balancer uses it: HAProxy in TCP mode with
# send-proxy-v2 in front of the HTTPS port, hand-made headers on the plain
# port. The header's client reaches remoteIpBlocks, X-Forwarded-For,
# x-envoy-external-address and the access log; ipBlocks keeps meaning the
# balancer (Istio: direct_remote_ip). Only trustedSources may send one; a
# missing, malformed, untrusted or stalled header closes the connection,
# counted and logged, and never reaches TLS or HTTP; a port outside
# proxyProtocol.ports takes none.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/dp_common.sh"

command -v haproxy >/dev/null || skip_all "haproxy not installed (contrib/install-deps.sh test)"
mg_pki || bail_out "cannot make a PKI"
mg_start_upstream --name v1 || bail_out "upstream"
up=$MG_UPSTREAM_PORT
https=$(mg_free_port)
http=$(mg_free_port)
plain=$(mg_free_port)
lb=$(mg_free_port)
export MG_ADMIN=127.0.0.1:$(mg_free_port)
cfg=$(mg_tmpdir cfg)
dp_proxy "$cfg" "$MG_ADMIN" JSON
sed -i 's/handshake: 5s/handshake: 2s/' "$cfg/00-proxy.yaml"
sed -i "/^  workers: 2/a\\  proxyProtocol: {ports: [$https, $http], trustedSources: [\"127.0.0.1/32\"]}" \
    "$cfg/00-proxy.yaml"
grep -q '^  proxyProtocol: ' "$cfg/00-proxy.yaml" || bail_out "could not write the Proxy document"
dp_service "$cfg" backend backend.local "$up"
cat >"$cfg/gw.yaml" <<YAML
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: $https, name: https, protocol: HTTPS}
    hosts: ["app.example.com"]
    tls: {mode: SIMPLE, credentialName: app-cert}
  - port: {number: $http, name: http, protocol: HTTP}
    hosts: ["*"]
  - port: {number: $plain, name: plain, protocol: HTTP}
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: app, namespace: istio-system}
spec:
  hosts: ["*"]
  gateways: ["gw"]
  http:
  - route: [{destination: {host: backend.local, port: {number: 80}}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: block-remote, namespace: istio-system}
spec:
  action: DENY
  rules: [{from: [{source: {remoteIpBlocks: ["203.0.113.0/24"]}}]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: block-direct, namespace: istio-system}
spec:
  action: DENY
  rules: [{from: [{source: {ipBlocks: ["198.51.100.0/24"]}}]}]
YAML

ok "meshgate check accepts proxyProtocol" "$MESHGATE" check -c "$cfg"
ok "gateway starts" mg_start_meshgate "$cfg"

# HAProxy: the L4 balancer, TCP mode, PROXY v2 toward the HTTPS port
cat >"$cfg/../haproxy.cfg" <<HA
global
  maxconn 200
defaults
  mode tcp
  timeout connect 5s
  timeout client 30s
  timeout server 30s
frontend fe
  bind 127.0.0.1:$lb
  default_backend gw
backend gw
  server mg 127.0.0.1:$https send-proxy-v2
HA
haproxy -f "$cfg/../haproxy.cfg" -db >"$cfg/../haproxy.log" 2>&1 &
_mg_track $!
mg_wait_port 127.0.0.1 "$lb" || bail_out "haproxy did not start"

CA=(--cacert "$MG_PKI/root-cert.pem")
# the client connects from 127.0.0.3: the balancer (127.0.0.1) names it
body=$(mg_curl "${CA[@]}" --interface 127.0.0.3 --connect-to "app.example.com:443:127.0.0.1:$lb" \
    https://app.example.com/echo)
is "$(mg_json_field "$body" upstream)" v1 "through HAProxy send-proxy-v2, TLS: proxied"
ok "... X-Forwarded-For carries the client from the PROXY header" \
    mg_json_has_header "$body" x-forwarded-for 127.0.0.3
ok "... and so does x-envoy-external-address" mg_json_has_header "$body" x-envoy-external-address 127.0.0.3
ok "... the access log names the client and the balancer" \
    dp_wait_log "$DP_ACCESS_LOG" '"downstream_remote_address":"127.0.0.3:[0-9]+".*"downstream_direct_remote_address":"127.0.0.1:[0-9]+"'
body=$(mg_curl --http2 "${CA[@]}" --interface 127.0.0.3 --connect-to "app.example.com:443:127.0.0.1:$lb" \
    https://app.example.com/echo)
ok "... HTTP/2 too" mg_json_has_header "$body" x-forwarded-for 127.0.0.3

# pp_at_least RESULT N: meshgate_proxy_protocol_total{result} has reached N
pp_at_least() { [ "$(mg_metric meshgate_proxy_protocol_total "result=\"$1\"")" -ge "$2" ]; }
get() { printf 'GET /echo HTTP/1.1\\r\\nHost: app\\r\\nConnection: close\\r\\n\\r\\n'; }
v1() { printf 'PROXY TCP4 %s 127.0.0.1 40000 %s\\r\\n' "$1" "$http"; }
out=$(mg_raw "$http" "$(v1 192.0.2.10)$(get)")
like "$out" '^HTTP/1.1 200' "v1 header on the plain port: served"
like "$out" '"x-forwarded-for","192.0.2.10"' "... its client in X-Forwarded-For"
out=$(mg_raw "$http" "$(v1 203.0.113.7)$(get)")
like "$out" '^HTTP/1.1 403' "remoteIpBlocks decide on the header's client (DENY 203.0.113.0/24)"
out=$(mg_raw "$http" "$(v1 198.51.100.5)$(get)")
like "$out" '^HTTP/1.1 200' "ipBlocks keep meaning the direct peer: a header naming 198.51.100.5 is not the balancer"
out=$(mg_raw "$http" "PROXY TCP6 2001:db8::7 ::1 40000 $http\\r\\n$(get)")
like "$out" '"x-forwarded-for","2001:db8::7"' "v1 TCP6"

# v2 binary: PROXY, TCP4, 192.0.2.44:51234 -> 127.0.0.1:port, one TLV
ph=$(printf '\\x%02x\\x%02x' $((http >> 8)) $((http & 255)))
sig='\x0d\x0a\x0d\x0a\x00\x0d\x0a\x51\x55\x49\x54\x0a'
out=$(mg_raw "$http" "${sig}\\x21\\x11\\x00\\x11\\xc0\\x00\\x02\\x2c\\x7f\\x00\\x00\\x01\\xc8\\x22${ph}\\x04\\x00\\x02ab$(get)")
like "$out" '"x-forwarded-for","192.0.2.44"' "v2 header with a TLV: its client in X-Forwarded-For"
out=$(mg_raw "$http" "${sig}\\x20\\x00\\x00\\x00$(get)")
like "$out" '"x-forwarded-for","127.0.0.1"' "v2 LOCAL (a balancer's health check): the socket's address"

ref0=$(mg_metric meshgate_proxy_protocol_total 'result="missing_header"')
ref0=${ref0%%.*}
out=$(mg_raw "$http" "$(get)")
is "$out" "" "no header from a trusted balancer: closed without an answer"
out=$(mg_curl -o /dev/null -w '%{http_code}' "${CA[@]}" --connect-to "app.example.com:443:127.0.0.1:$https" \
    https://app.example.com/echo 2>/dev/null)
is "$out" 000 "... a TLS client without a header never gets to the handshake"
ok "... counted as missing_header" \
    mg_wait_for 5 pp_at_least missing_header $((ref0 + 2))
ok "... logged with its reason" dp_wait_log "$DP_ACCESS_LOG" '"response_flags":"DPE".*"reason":"proxy_protocol_missing_header"'

out=$(mg_curl --interface 127.0.0.2 --haproxy-protocol -s "http://127.0.0.1:$http/echo" 2>/dev/null)
is "$out" "" "a header from a peer outside trustedSources: closed"
ok "... counted as untrusted_source" \
    mg_wait_for 5 pp_at_least untrusted_source 1
out=$(mg_curl --haproxy-protocol "http://127.0.0.1:$http/echo")
like "$out" '"x-forwarded-for","127.0.0.1"' "curl --haproxy-protocol from the trusted balancer address: served"

for bad in 'PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n' 'PROXY TCP4 1.2.3.4 5.6.7.8 1 99999\r\n' \
           'PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n' 'PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n' \
           "${sig}"'\x21\x12\x00\x0c\x01\x02\x03\x04\x05\x06\x07\x08\x00\x01\x00\x02'; do
    out=$(mg_raw "$http" "${bad}$(get)")
    is "$out" "" "malformed header refused before HTTP: $(printf '%s' "$bad" | cut -c1-40)"
done
ok "... counted as malformed" \
    mg_wait_for 5 pp_at_least malformed 5

t0=$(date +%s)
out=$(mg_raw "$http" 'PROXY TCP4 1.2.3.4' 8)
t1=$(date +%s)
is "$out" "" "a header that stalls half-way is cut"
ok "... within the handshake timeout (2 s; took $((t1 - t0)) s)" test $((t1 - t0)) -le 5
ok "... counted as timeout" \
    mg_wait_for 5 pp_at_least timeout 1

# a header that trickles in a byte at a time is still read (edge-triggered peeks)
out=$(perl -MIO::Socket::INET -e '
    my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1", PeerPort => $ARGV[0]) or exit 1;
    $s->autoflush(1);
    for my $c (split //, "PROXY TCP4 192.0.2.99 127.0.0.1 1 2\r\n") { print $s $c; select(undef, undef, undef, 0.01); }
    print $s "GET /echo HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n";
    local $/; print <$s>;' "$http")
like "$out" '"x-forwarded-for","192.0.2.99"' "a header sent one byte at a time is read whole"

body=$(mg_curl "http://127.0.0.1:$plain/echo")
is "$(mg_json_field "$body" upstream)" v1 "a port outside proxyProtocol.ports takes no header"
is "$(mg_http_code --haproxy-protocol "http://127.0.0.1:$http/echo")" 200 "the gateway still serves"
ok "accepted headers are counted" \
    mg_wait_for 5 pp_at_least accepted 6

done_testing
