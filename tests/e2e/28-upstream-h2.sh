#!/bin/bash
# 28-upstream-h2.sh - HTTP/2 to upstreams: a ServiceEntry port of protocol
# HTTP2 speaks h2c (prior knowledge) in plain text and ALPN h2 over
# DestinationRule SIMPLE TLS; HTTP/1.1 and HTTP/2 clients; many streams of
# one client multiplexed on few upstream connections; 5 MB up and down
# intact; dead upstream 503, slow 504, RST_STREAM 503 (REFUSED_STREAM
# retried); keep-alive reuse; protocol HTTP ports stay HTTP/1.1;
# h2UpgradePolicy UPGRADE (and its HTTP/1.1 fallback when a TLS server does
# not pick h2); an HTTP2 port whose TLS server has no h2 gets 503; upstream
# trailers relayed to HTTP/2 clients; malformed responses 502;
# http2MaxRequests overflow 503.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/dp_common.sh"

mg_pki || bail_out "cannot make a PKI"
P=$MG_PKI
"$MESHGATE" ca issue --dir "$P" --dns h2tls.local --dns fb.local --dns noalpn.local --name up >/dev/null ||
    bail_out "upstream cert"
mg_start_upstream --name h2c --h2 || bail_out "h2c upstream"
uc=$MG_UPSTREAM_PORT
UC_LOG=$MG_UPSTREAM_LOG
mg_start_upstream --name h2tls --h2 --tls-cert "$P/up.crt" --tls-key "$P/up.key" || bail_out "h2 TLS upstream"
ut=$MG_UPSTREAM_PORT
mg_start_upstream --name h1tls --tls-cert "$P/up.crt" --tls-key "$P/up.key" || bail_out "h1 TLS upstream"
u1=$MG_UPSTREAM_PORT
dead=$(mg_free_port)
https=$(mg_free_port)
export MG_ADMIN=127.0.0.1:$(mg_free_port)
cfg=$(mg_tmpdir cfg)
dp_proxy "$cfg" "$MG_ADMIN" JSON
sed -i 's/^  workers: 2/  workers: 1/' "$cfg/00-proxy.yaml"

se() {  # NAME PROTOCOL ENDPOINT_PORT
    cat >>"$cfg/se.yaml" <<YAML
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: $1, namespace: istio-system}
spec:
  hosts: ["$1.local"]
  ports: [{number: 80, name: p, protocol: $2}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {p: $3}}]
YAML
}
dr() {  # HOST TRAFFIC_POLICY_YAML
    cat >>"$cfg/dr.yaml" <<YAML
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: $1, namespace: istio-system}
spec:
  host: $1.local
  trafficPolicy: $2
YAML
}
se h2c HTTP2 "$uc"
se grpc GRPC "$uc"
se h1 HTTP "$uc"
se upg HTTP "$uc"
se h2tls HTTP2 "$ut"
se fb HTTP "$u1"
se noalpn HTTP2 "$u1"
se dead HTTP2 "$dead"
se lim HTTP2 "$uc"
se mrc HTTP2 "$uc"
se idle HTTP2 "$uc"
dr upg "{connectionPool: {http: {h2UpgradePolicy: UPGRADE}}}"
dr lim "{connectionPool: {http: {http2MaxRequests: 1}}}"
dr mrc "{connectionPool: {http: {maxRequestsPerConnection: 2}}}"
dr idle "{connectionPool: {http: {idleTimeout: 1s}}}"
dr h2tls "{tls: {mode: SIMPLE, caCertificates: $P/root-cert.pem}}"
dr fb "{tls: {mode: SIMPLE, caCertificates: $P/root-cert.pem}, connectionPool: {http: {h2UpgradePolicy: UPGRADE}}}"
dr noalpn "{tls: {mode: SIMPLE, caCertificates: $P/root-cert.pem}}"
{
    cat <<YAML
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: $https, name: https, protocol: HTTPS}
    hosts: ["*"]                # no SNI needed: nghttp connects by address
    tls: {mode: SIMPLE, credentialName: app-cert}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: app, namespace: istio-system}
spec:
  hosts: ["app.example.com"]
  gateways: ["gw"]
  http:
  - name: slow
    match: [{uri: {prefix: /slow/}}]
    rewrite: {uri: /}
    timeout: 1s
    route: [{destination: {host: h2c.local}}]
YAML
    for h in h2c grpc h1 upg h2tls fb noalpn dead lim mrc idle; do
        echo "  - {name: $h, match: [{uri: {prefix: /$h/}}], rewrite: {uri: /}, route: [{destination: {host: $h.local}}]}"
    done
} >"$cfg/gw.yaml"

ok "gateway starts" mg_start_meshgate "$cfg"

cu() {  # curl to the gateway: [curl options...] PATH
    local path=${*: -1}
    set -- "${@:1:$#-1}"
    curl -sS --max-time 20 --cacert "$P/root-cert.pem" \
        --resolve "app.example.com:$https:127.0.0.1" "$@" "https://app.example.com:$https$path"
}
code() { cu -o /dev/null -w '%{http_code}' "$@"; }

# --- protocol choice
for v in --http1.1 --http2; do
    body=$(cu $v /h2c/echo)
    is "$(mg_json_field "$body" version)" HTTP/2 "client $v, port protocol HTTP2: h2c upstream"
    is "$(mg_json_field "$body" upstream)" h2c "... reached the h2c upstream"
    body=$(cu $v /h2tls/echo)
    is "$(mg_json_field "$body" version)" HTTP/2 "client $v, HTTP2 over SIMPLE TLS: ALPN h2"
    is "$(mg_json_field "$body" tls)" true "... and the upstream saw TLS"
    is "$(mg_json_field "$(cu $v /h1/echo)" version)" HTTP/1.1 "client $v, port protocol HTTP: HTTP/1.1"
done
is "$(mg_json_field "$(cu /grpc/echo)" version)" HTTP/2 "port protocol GRPC: HTTP/2"
is "$(mg_json_field "$(cu /upg/echo)" version)" HTTP/2 "h2UpgradePolicy UPGRADE on a plain port: HTTP/2"
is "$(mg_json_field "$(cu /fb/echo)" version)" HTTP/1.1 "UPGRADE over TLS to a server without h2: HTTP/1.1"
is "$(mg_json_field "$(cu /fb/echo)" version)" HTTP/1.1 "... and again (fallback kept)"
is "$(code /noalpn/echo)" 503 "port protocol HTTP2, TLS server without h2: 503"
body=$(cu -H 'x-test: one' /h2c/echo?q=1)
ok "request headers reach the h2 upstream" mg_json_has_header "$body" x-test one
is "$(mg_json_field "$body" path)" "/echo?q=1" "path and query as rewritten"
hdrs=$(cu --http1.1 -D - -o /dev/null '/h2c/status/201?resp-header=X-Up:yes')
like "$hdrs" 'HTTP/1.1 201' "HTTP/2 response status to an HTTP/1.1 client"
like "$hdrs" 'x-up: yes' "response header relayed (lower case)"
# trailers (gRPC status) reach an HTTP/2 client; an HTTP/1.1 client gets the body without them
tr=$(nghttp -v -H ':authority: app.example.com' "https://127.0.0.1:$https/h2c/bytes/10?trailer=grpc-status:7" 2>&1)
like "$tr" 'recv \(stream_id=[0-9]*\) grpc-status: 7' "HTTP/2 client: the upstream's trailer relayed"
like "$(echo "$tr" | grep -A1 'grpc-status: 7')" 'HEADERS frame <[^>]*flags=0x05' "... in the HEADERS frame that ends the stream"
is "$(cu --http1.1 '/h2c/bytes/10?trailer=grpc-status:7')" abcdefghij "HTTP/1.1 client: body intact, trailer dropped"
# a gRPC request (content-type application/grpc) is counted with its grpc-status trailer
nghttp -H ':authority: app.example.com' -H 'content-type: application/grpc' \
    "https://127.0.0.1:$https/h2c/bytes/10?trailer=grpc-status:7" >/dev/null 2>&1
is "$(mg_metric istio_requests_total 'request_protocol="grpc",response_code="200".*grpc_response_status="7"')" 1 \
    "istio_requests_total: request_protocol grpc with grpc_response_status from the trailer"
hdrs=$(cu --http2 -D - -o /dev/null -I /h2c/echo)
like "$hdrs" 'HTTP/2 200' "HEAD over h2 answered"

# --- keep-alive reuse: one client connection (one worker), the same
# upstream connection serves the later requests
out=$(cu --http1.1 "https://app.example.com:$https/h2c/echo" /h2c/echo)
rem=$(echo "$out" | grep -o '"remote":"[^"]*"' | sort -u | wc -l)
is "$rem" 1 "sequential requests reuse the upstream connection"
r1=$(echo "$out" | grep -o '"connection_request":[0-9]*' | cut -d: -f2 | head -1)
r2=$(echo "$out" | grep -o '"connection_request":[0-9]*' | cut -d: -f2 | tail -1)
ok "... with a growing stream count ($r1, $r2)" test "$r2" -gt "$r1"

# maxRequestsPerConnection counts streams: 2 per upstream connection
u="https://app.example.com:$https"
out=$(cu "$u/mrc/echo" "$u/mrc/echo" "$u/mrc/echo" "$u/mrc/echo" /mrc/echo)
is "$(echo "$out" | grep -o '"remote":"[^"]*"' | sort -u | wc -l)" 3 "maxRequestsPerConnection 2: 5 requests on 3 connections"
# http.idleTimeout closes an idle HTTP/2 connection (one worker: every
# client connection shares the worker's pool)
a=$(cu /idle/echo)
b=$(cu /idle/echo)
is "$(mg_json_field "$b" connection_request)" 2 "idleTimeout 1s: a request soon after reuses the connection"
sleep 1.6
c=$(cu /idle/echo)
is "$(mg_json_field "$c" connection_request)" 1 "... one after 1.6 s idle gets a new connection"

# GOAWAY from the upstream: the stream it names as last is answered, the
# next request opens a new connection
g=$(cu /h2c/goaway)
is "$(mg_json_field "$g" path)" /goaway "GOAWAY: the open stream finishes (200)"
n1=$(mg_json_field "$(cu /h2c/echo)" connection_request)
is "$n1" 1 "... and the next request goes on a new connection"

# --- multiplexing: 50 concurrent streams from one HTTP/2 client
# (each response to its own file: curl --parallel interleaves the
# transfers' chunks on one stdout, which splits bodies mid-line)
urls=()
for ((i = 0; i < 50; i++)); do
    urls+=(-o "$MG_TMP/par.$i" "https://app.example.com:$https/h2tls/slow?ms=300")
done
rm -f "$MG_TMP"/par.*
curl -sS --max-time 30 --http2 --parallel --parallel-max 50 \
    --cacert "$P/root-cert.pem" --resolve "app.example.com:$https:127.0.0.1" "${urls[@]}" 2>/dev/null
out=$(for f in "$MG_TMP"/par.*; do cat "$f"; echo; done)
n=$(echo "$out" | grep -o '"version":"HTTP/2"' | wc -l)
is "$n" 50 "50 concurrent requests answered over HTTP/2" || echo "$out" | grep -v '"version":"HTTP/2"' | head -5 | sed 's/^/# /'

conns=$(echo "$out" | grep -o '"remote":"[^"]*"' | sort -u | wc -l)
ok "... on few upstream connections ($conns)" test "$conns" -ge 1 -a "$conns" -le 2
maxreq=$(echo "$out" | grep -o '"connection_request":[0-9]*' | cut -d: -f2 | sort -n | tail -1)
ok "... one connection carried many streams ($maxreq)" test "${maxreq:-0}" -ge 25

# --- 5 MB both ways, both client protocols
head -c 5000000 /dev/urandom >"$MG_TMP/up.bin"
want=$(sha256sum "$MG_TMP/up.bin" | cut -d' ' -f1)
yes abcdefghijklmnopqrstuvwxyz | tr -d '\n' | head -c 5000000 >"$MG_TMP/pattern.bin"
wantdl=$(sha256sum "$MG_TMP/pattern.bin" | cut -d' ' -f1)
for v in --http1.1 --http2; do
    body=$(cu $v --data-binary @"$MG_TMP/up.bin" /h2c/echo)
    is "$(mg_json_field "$body" body_sha256)" "$want" "client $v: 5 MB upload intact over h2c"
    is "$(mg_json_field "$body" body_length)" 5000000 "... all bytes"
    got=$(cu $v /h2c/bytes/5000000 | sha256sum | cut -d' ' -f1)
    is "$got" "$wantdl" "client $v: 5 MB download intact over h2c"
    got=$(cu $v /h2tls/bytes/5000000 | sha256sum | cut -d' ' -f1)
    is "$got" "$wantdl" "client $v: 5 MB download intact over h2 TLS"
done
body=$(cu --http1.1 -H 'transfer-encoding: chunked' --data-binary @"$MG_TMP/up.bin" /h2tls/echo)
is "$(mg_json_field "$body" body_sha256)" "$want" "chunked 5 MB upload intact over h2 TLS"
# a slow reader: the download pauses (flow control) and still arrives intact
got=$(cu --http2 --limit-rate 2M /h2c/bytes/3000000 | sha256sum | cut -d' ' -f1)
is "$got" "$(head -c 3000000 "$MG_TMP/pattern.bin" | sha256sum | cut -d' ' -f1)" "rate-limited client: 3 MB intact"

# --- failures
is "$(code /dead/echo)" 503 "dead h2 upstream: 503"
is "$(code --http2 /dead/echo)" 503 "... also for an HTTP/2 client"
t0=$(date +%s%N)
is "$(code /slow/slow?ms=3000)" 504 "slow h2 upstream beyond the route timeout: 504"
el=$((($(date +%s%N) - t0) / 1000000))
ok "504 after about the 1 s timeout (${el} ms)" test "$el" -ge 900 -a "$el" -lt 2500
is "$(code /h2c/reset)" 503 "RST_STREAM before headers: 503"
before=$(grep -c 'h2 stream [0-9]* GET /reset?code=7' "$UC_LOG")
is "$(code /h2c/reset?code=7)" 503 "REFUSED_STREAM every time: 503"
after=$(grep -c 'h2 stream [0-9]* GET /reset?code=7' "$UC_LOG")
ok "... refused-stream was retried ($((after - before)) tries)" test $((after - before)) -ge 2
is "$(code --http2 /h2c/status/503)" 503 "upstream 503 relayed"
is "$(code '/h2c/echo?resp-header=Connection:close')" 502 "malformed h2 response (connection header): 502"
# http2MaxRequests: 1 concurrent request; a second one overflows (503 UO)
cu /lim/slow?ms=800 >/dev/null &
slowpid=$!
sleep 0.3
hdrs=$(cu -D - -o /dev/null /lim/echo)
like "$hdrs" ' 503' "http2MaxRequests reached: 503"
like "$hdrs" 'x-envoy-overloaded: true' "... with x-envoy-overloaded"
wait "$slowpid"
is "$(code /lim/echo)" 200 "... and served again once the first one ended"
is "$(mg_json_field "$(cu /h2c/echo)" version)" HTTP/2 "the h2c upstream still serves after the failures"
# /close drops the upstream connection without GOAWAY: 503, and the next request opens a new one
is "$(code /h2c/close)" 503 "upstream connection dropped before headers: 503"
is "$(mg_json_field "$(cu /h2c/echo)" version)" HTTP/2 "... and a new connection serves the next request"

# --- access log: upstream host and flags
ok "access log names the h2 upstream host" dp_wait_log "$DP_ACCESS_LOG" "\"upstream_host\":\"127.0.0.1:$uc\""
ok "access log: the reset has flag UR" dp_wait_log "$DP_ACCESS_LOG" '"path":"/h2c/reset".*"response_flags":"UR"|"response_flags":"UR".*"path":"/h2c/reset"'
ok "access log: the dead upstream has flag UF" dp_wait_log "$DP_ACCESS_LOG" '"response_flags":"UF"'
ok "gateway still alive" kill -0 "$MG_MESHGATE_PID"
mg_stop "$MG_MESHGATE_PID"
is "$?" 0 "gateway stops with status 0"
is "$(grep -c 'Sanitizer\|runtime error' "$MG_MESHGATE_LOG")" 0 "no sanitizer report in the gateway log"

done_testing
