#!/bin/bash
# 60-sidecar-inbound.sh - sidecar mode: inbound listeners in front of a local
# app (mg_upstream), under a namespace-wide STRICT PeerAuthentication:
# plain text and cert-less TLS refused, a mesh certificate accepted with the
# XFCC, x-forwarded-proto and x-request-id the app sees, the client's
# x-envoy-* stripped, the workload identity presented, foreign roots and
# foreign trust domains refused, ALPN answers, /config_dump, access log,
# metrics, and the gateway-mode warning of `meshgate check`.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/sc_common.sh"

mg_pki || bail_out "cannot make a PKI"
P=$MG_PKI
"$MESHGATE" ca issue --dir "$P" --spiffe ns/default/sa/sleep --trust-domain other.domain \
    --out-dir "$P/othertd" >/dev/null || bail_out "other-td cert"
"$MESHGATE" ca init --dir "$MG_TMP/pki2" >/dev/null &&
    "$MESHGATE" ca issue --dir "$MG_TMP/pki2" --spiffe ns/default/sa/sleep --out-dir "$MG_TMP/pki2/sleep" \
        >/dev/null || bail_out "second CA"
mg_start_upstream --name app || bail_out "upstream"
up=$MG_UPSTREAM_PORT
sc_config "$(mg_tmpdir cfg)" "$up"
sc_pa "$SC_CFG" ns-strict default STRICT
ok "sidecar starts" mg_start_meshgate "$SC_CFG"

# STRICT refusals
out=$(mg_raw "$SC_B1" 'GET /echo HTTP/1.1\r\nHost: httpbin\r\nConnection: close\r\n\r\n' 2)
is "$out" "" "STRICT: plain text gets no HTTP answer (connection closed)"
is "$(sc_tls "$SC_B1" /echo)" 000 "STRICT: TLS without a client certificate refused"
is "$(sc_tls "$SC_B1" /echo "$MG_TMP/pki2/sleep")" 000 "STRICT: certificate of another root refused"
is "$(sc_tls "$SC_B1" /echo "$P/othertd")" 000 "STRICT: certificate of another trust domain refused"

# accepted mesh peer: what the app sees
body=$(mg_curl -k --http1.1 --cert "$P/sleep/cert-chain.pem" --key "$P/sleep/key.pem" \
    -H 'X-Envoy-Foo: evil' -H 'X-Forwarded-Client-Cert: By=forged' "https://127.0.0.1:$SC_B1/echo" 2>/dev/null)
is "$(mg_json_field "$body" upstream)" app "STRICT: mesh certificate reaches the app"
xfcc=$(printf '%s' "$body" | grep -Eo '\["x-forwarded-client-cert","[^"]*"\]')
like "$xfcc" 'URI=spiffe://cluster.local/ns/default/sa/sleep' "XFCC carries the peer URI"
like "$xfcc" 'By=spiffe://cluster.local/ns/default/sa/httpbin;Hash=[0-9a-f]{64}' "XFCC By= is the workload, with the hash"
unlike "$body" 'By=forged' "the client's XFCC is dropped (SANITIZE_SET)"
unlike "$body" 'x-envoy-foo' "client x-envoy-* stripped"
ok "x-forwarded-proto https" mg_json_has_header "$body" x-forwarded-proto https
like "$body" '"x-request-id","[0-9a-f-]{36}"' "x-request-id set"

# Istio ALPN, raw
sc_istio "$SC_B1" /echo "$P/sleep"
is "$SC_STATUS" 200 "STRICT: Istio ALPN (istio-http/1.1) with a mesh certificate"
sc_istio "$SC_B1" /echo ""
is "$SC_STATUS" 000 "STRICT: Istio ALPN without a client certificate refused"

# what the server presents and answers in ALPN
hs=$(echo | timeout 5 openssl s_client -connect "127.0.0.1:$SC_B1" -alpn istio-h2 \
    -cert "$P/sleep/cert-chain.pem" -key "$P/sleep/key.pem" -CAfile "$P/root-cert.pem" 2>&1)
like "$hs" 'Verify return code: 0 \(ok\)' "server certificate chains to the mesh root"
san=$(printf '%s' "$hs" | openssl x509 -noout -ext subjectAltName 2>/dev/null)
like "$san" 'URI:spiffe://cluster.local/ns/default/sa/httpbin' "server presents the workload identity"
like "$hs" 'ALPN protocol: istio-h2' "istio-h2 alone is answered istio-h2"
sc_istio "$SC_B1" /echo "$P/sleep" istio-h2
ok "istio-h2: the server answers with HTTP/2 frames" test -n "$SC_OUT"
unlike "$SC_OUT" '^HTTP/1' "istio-h2 runs HTTP/2 (an HTTP/1.1 request is not answered as one)"
hs=$(echo | timeout 5 openssl s_client -connect "127.0.0.1:$SC_B1" -alpn istio-http/1.1,h2 \
    -cert "$P/sleep/cert-chain.pem" -key "$P/sleep/key.pem" -CAfile "$P/root-cert.pem" 2>&1)
like "$hs" 'ALPN protocol: h2' "istio-http/1.1,h2 is answered h2"
hs=$(echo | timeout 5 openssl s_client -connect "127.0.0.1:$SC_B1" -alpn istio-peer-exchange,istio \
    -cert "$P/sleep/cert-chain.pem" -key "$P/sleep/key.pem" -CAfile "$P/root-cert.pem" 2>&1)
like "$hs" 'No ALPN negotiated' "only istio/istio-peer-exchange: no ALPN"
sc_istio "$SC_B1" /echo "$P/sleep" istio-peer-exchange,istio
is "$SC_STATUS" 200 "... and the connection speaks HTTP/1.1"
code=$(mg_curl -k --http2 --cert "$P/sleep/cert-chain.pem" --key "$P/sleep/key.pem" -o /dev/null \
    -w '%{http_code} %{http_version}' "https://127.0.0.1:$SC_B1/echo" 2>/dev/null)
is "$code" "200 2" "h2 over mesh mTLS works"

# Istio's TLS 1.2 cipher defaults
hs=$(echo | timeout 5 openssl s_client -connect "127.0.0.1:$SC_B1" -tls1_2 -cipher ECDHE-ECDSA-AES128-GCM-SHA256 \
    -cert "$P/sleep/cert-chain.pem" -key "$P/sleep/key.pem" -CAfile "$P/root-cert.pem" 2>&1)
like "$hs" 'Cipher is ECDHE-ECDSA-AES128-GCM-SHA256' "TLS 1.2 with an Istio default cipher"
hs=$(echo | timeout 5 openssl s_client -connect "127.0.0.1:$SC_B1" -tls1_2 -cipher ECDHE-ECDSA-CHACHA20-POLY1305 \
    -cert "$P/sleep/cert-chain.pem" -key "$P/sleep/key.pem" -CAfile "$P/root-cert.pem" 2>&1)
unlike "$hs" 'Cipher is ECDHE-ECDSA-CHACHA20' "TLS 1.2 with a cipher outside Istio's list refused"

# session resumption keeps the peer identity (the ticket carries the verified certificate)
req='GET /echo HTTP/1.1\r\nHost: httpbin\r\nConnection: close\r\n\r\n'
printf '%b' "$req" | timeout 5 openssl s_client -connect "127.0.0.1:$SC_B1" -alpn istio-http/1.1 \
    -cert "$P/sleep/cert-chain.pem" -key "$P/sleep/key.pem" -CAfile "$P/root-cert.pem" \
    -sess_out "$MG_TMP/sess" -ign_eof >/dev/null 2>&1
out=$(printf '%b' "$req" | timeout 5 openssl s_client -connect "127.0.0.1:$SC_B1" -alpn istio-http/1.1 \
    -sess_in "$MG_TMP/sess" -CAfile "$P/root-cert.pem" -ign_eof 2>&1)
like "$out" 'Reused, TLS' "a mesh session resumes"
like "$out" 'URI=spiffe://cluster.local/ns/default/sa/sleep' "... and the resumed connection keeps the principal"

# the second port, the same policy
is "$(sc_tls "$SC_B2" /echo "$P/sleep")" 200 "second inbound port forwards too"

# config_dump, access log, metrics
dump=$(curl -s --max-time 3 "http://$MG_ADMIN/config_dump")
like "$dump" '"inbound":\[\{"port":80,"bind":"127.0.0.1:'"$SC_B1"'"' "config_dump lists inbound port 80"
like "$dump" '"port":80,[^}]*"mtls_mode":"STRICT"' "config_dump: port 80 STRICT"
like "$dump" '"namespace":"default.ns-strict"' "config_dump names the deciding PeerAuthentication"
like "$dump" '"inbound\|80\|\|"' "config_dump lists the inbound cluster"
like "$dump" '"peer_authentication":\{"enforced":true,[^]]*\{"port":80,"mode":"STRICT"\}' \
    "config_dump: peer_authentication enforced, keyed by the workload port"
for ((i = 0; i < 30; i++)); do grep -q 'inbound|80||' "$SC_ACCESS_LOG" 2>/dev/null && break; sleep 0.1; done
like "$(grep 'inbound|80||' "$SC_ACCESS_LOG" | tail -n 1)" '"response_code":200' "access log line for an inbound request"
like "$(grep 'inbound|80||' "$SC_ACCESS_LOG" | tail -n 1)" '"downstream_tls":true,"peer_principal":"cluster.local/ns/default/sa/sleep"' \
    "access log: downstream TLS and the peer principal"
n=$(mg_metric istio_requests_total 'response_code="200"')
ok "istio_requests_total counts inbound requests ($n)" test "${n:-0}" -ge 3

# gateway mode: inbound ignored with a warning
G=$(mg_tmpdir gw)
sed -e 's/mode: sidecar/mode: gateway/' "$SC_CFG/00-proxy.yaml" >"$G/00-proxy.yaml"
chk=$("$MESHGATE" check -c "$G" 2>&1)
like "$chk" 'warning: inbound is for sidecar mode; ignored in gateway mode' "check warns about inbound in gateway mode"

done_testing
