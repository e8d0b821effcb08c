#!/bin/bash
# 20-http-proxy.sh - HTTPS and HTTP/1.1 proxying through the real binary:
# edge headers, streamed multi-megabyte bodies both ways (Content-Length and
# chunked), keep-alive, pipelining, 100-continue, HEAD, HTTP/1.0 re-framing,
# the httpsRedirect, and the JSON access log.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/dp_common.sh"

mg_pki || bail_out "cannot make a PKI"
mg_start_upstream --name v1 || bail_out "upstream v1"
up=$MG_UPSTREAM_PORT
https=$(mg_free_port)
http=$(mg_free_port)
export MG_ADMIN=127.0.0.1:$(mg_free_port)
cfg=$(mg_tmpdir cfg)
dp_proxy "$cfg" "$MG_ADMIN" JSON
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
    hosts: ["app.example.com"]
    tls: {httpsRedirect: true}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: app, namespace: istio-system}
spec:
  hosts: ["app.example.com"]
  gateways: ["gw"]
  http:
  - name: main
    route:
    - destination: {host: backend.local, port: {number: 80}}
YAML

ok "gateway starts" mg_start_meshgate "$cfg"
CA=(--http1.1 --cacert "$MG_PKI/root-cert.pem")
base=https://app.example.com:$https

body=$(mg_curl "${CA[@]}" -H 'x-envoy-debug: 1' -H 'x-meshgate-foo: 1' -H 'X-Forwarded-For: 10.1.2.3' \
    -H 'x-forwarded-client-cert: By=evil' -H 'Connection: x-drop-me' -H 'x-drop-me: 1' -H 'x-keep: yes' \
    "$base/echo?q=1")
is "$(mg_json_field "$body" upstream)" v1 "HTTPS request proxied to the upstream"
is "$(mg_json_field "$body" path)" "/echo?q=1" "path and query forwarded"
ok "x-forwarded-for appends the peer" mg_json_has_header "$body" x-forwarded-for "10.1.2.3, 127.0.0.1"
ok "x-forwarded-proto is https" mg_json_has_header "$body" x-forwarded-proto https
ok "x-envoy-external-address set" mg_json_has_header "$body" x-envoy-external-address 127.0.0.1
like "$body" '"x-request-id","[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"' \
    "x-request-id generated as a UUIDv4"
unlike "$body" 'x-envoy-debug|x-meshgate-foo|By=evil|x-drop-me' "edge-only, XFCC and Connection-named headers stripped"
ok "ordinary headers kept" mg_json_has_header "$body" x-keep yes
body=$(mg_curl "${CA[@]}" -H 'x-request-id: given-id-1' "$base/echo")
ok "a client x-request-id is kept" mg_json_has_header "$body" x-request-id given-id-1

# bodies, streamed both ways
head -c 6000000 /dev/urandom >"$MG_TMP/big"
want=$(sha256sum <"$MG_TMP/big" | cut -d' ' -f1)
body=$(mg_curl "${CA[@]}" --data-binary @"$MG_TMP/big" "$base/echo")
is "$(mg_json_field "$body" body_sha256)" "$want" "6 MB Content-Length upload intact"
body=$(mg_curl "${CA[@]}" -H 'Transfer-Encoding: chunked' --data-binary @"$MG_TMP/big" "$base/echo")
is "$(mg_json_field "$body" body_sha256)" "$want" "6 MB chunked upload intact"
ok "chunked stays chunked upstream" mg_json_has_header "$body" transfer-encoding chunked
body=$(mg_curl "${CA[@]}" -H 'Expect: 100-continue' --data-binary @"$MG_TMP/big" "$base/echo")
is "$(mg_json_field "$body" body_sha256)" "$want" "upload with Expect: 100-continue"
direct=$(curl -sS "http://127.0.0.1:$up/bytes/7000000" | sha256sum | cut -d' ' -f1)
is "$(mg_curl "${CA[@]}" "$base/bytes/7000000" | sha256sum | cut -d' ' -f1)" "$direct" "7 MB download intact"
is "$(mg_curl "${CA[@]}" "$base/bytes/7000000?chunked=1" | sha256sum | cut -d' ' -f1)" "$direct" \
    "7 MB chunked download intact"
hdrs=$(mg_curl "${CA[@]}" -D - -o /dev/null "$base/bytes/100?chunked=1")
like "$hdrs" '^transfer-encoding: chunked' "a chunked response stays chunked for HTTP/1.1"
hdrs=$(mg_curl "${CA[@]}" --http1.0 -D - -o "$MG_TMP/h10" "$base/bytes/100?chunked=1")
like "$hdrs" '^connection: close' "HTTP/1.0 client: close-delimited body"
is "$(wc -c <"$MG_TMP/h10")" 100 "HTTP/1.0 body complete"
hdrs=$(mg_curl "${CA[@]}" -I "$base/bytes/1234")
like "$hdrs" '^HTTP/1.1 200' "HEAD answered"
like "$hdrs" '^content-length: 1234' "HEAD keeps the upstream content-length"

hdrs=$(mg_curl "${CA[@]}" -D - -o /dev/null \
    "$base/echo?resp-header=Connection:x-secret&resp-header=x-secret:1&resp-header=Keep-Alive:timeout%3D5&resp-header=x-ok:1")
like "$hdrs" '^x-ok: 1' "upstream response headers forwarded"
unlike "$hdrs" '^(x-secret|keep-alive):' "hop-by-hop and Connection-named response headers dropped"

# keep-alive downstream and upstream, pipelining
out=$(mg_curl "${CA[@]}" -w '%{num_connects}\n' -o /dev/null -o /dev/null "$base/echo" "$base/echo")
is "$(echo "$out" | tr -d '\n')" "10" "two requests share one downstream connection"
out=$(MG_RAW_TIMEOUT=3 mg_raw_tls "$https" app.example.com \
    'GET /echo?n=1 HTTP/1.1\r\nHost: app.example.com\r\n\r\nGET /echo?n=2 HTTP/1.1\r\nHost: app.example.com\r\n\r\nGET /echo?n=3 HTTP/1.1\r\nHost: app.example.com\r\nConnection: close\r\n\r\n' \
    -CAfile "$MG_PKI/root-cert.pem")
is "$(echo "$out" | grep -o '"path":"/echo?n=[0-9]"' | tr -d '\n')" \
    '"path":"/echo?n=1""path":"/echo?n=2""path":"/echo?n=3"' "three pipelined requests answered in order"
is "$(echo "$out" | grep -c '^HTTP/1.1 200')" 3 "three 200 responses"
like "$(echo "$out" | grep -o '"connection_request":[0-9]*' | tail -1)" '"connection_request":([2-9]|[1-9][0-9]+)$' \
    "upstream connection reused (keep-alive)"

# plain HTTP server with httpsRedirect
hdrs=$(mg_curl -D - -o /dev/null "http://app.example.com:$http/some/path?x=1")
like "$hdrs" '^HTTP/1.1 301' "httpsRedirect answers 301"
like "$hdrs" "^location: https://app.example.com:$https/some/path\\?x=1" \
    "Location keeps host, path and query (single HTTPS port $https)"
like "$hdrs" '^content-length: 0' "redirect body is empty"

# access log (JSON)
ok "access log written" dp_wait_log "$DP_ACCESS_LOG" '"path":"/echo\?q=1"'
line=$(grep '"path":"/echo?q=1"' "$DP_ACCESS_LOG" | head -1)
is "$(mg_json_field "$line" response_code)" 200 "log: response_code"
is "$(mg_json_field "$line" requested_server_name)" app.example.com "log: SNI"
is "$(mg_json_field "$line" route_name)" main "log: route name"
is "$(mg_json_field "$line" upstream_host)" "127.0.0.1:$up" "log: upstream host"
is "$(mg_json_field "$line" x_forwarded_for)" "10.1.2.3, 127.0.0.1" "log: x-forwarded-for as forwarded"
like "$(mg_json_field "$line" start_time)" '^20[0-9]{2}-[0-9]{2}-[0-9]{2}T' "log: start_time"
line=$(grep '"reason":"https_redirect"' "$DP_ACCESS_LOG" | head -1)
is "$(mg_json_field "$line" response_code)" 301 "log: the redirect, with its reason"

done_testing
