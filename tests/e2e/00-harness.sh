#!/bin/bash
# 00-harness.sh - the e2e harness itself (lib.sh) and the test upstream
# (tests/helpers/mg_upstream): start, request, stop, nothing left behind.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"

command -v curl >/dev/null || skip_all "curl is not installed"
[ -x "$MG_UPSTREAM_BIN" ] || bail_out "no $MG_UPSTREAM_BIN (make check builds it)"

# --- TAP helpers and ports
is "$(printf 'a\n')" "a" "is compares strings"
like "x-upstream: one" '^x-upstream: [a-z]+$' "like matches an extended regex"
unlike "abc" 'z' "unlike refuses a match"
fails "fails passes on a non-zero exit" false
d1=$(mg_tmpdir) d2=$(mg_tmpdir)
ok "mg_tmpdir makes fresh directories under MG_TMP" \
    test -d "$d1" -a -d "$d2" -a "$d1" != "$d2" -a "${d1#"$MG_TMP"/}" != "$d1"
p1=$(mg_free_port) p2=$(mg_free_port)
ok "mg_free_port gives two different ports" test -n "$p1" -a -n "$p2" -a "$p1" != "$p2"
fails "a free port has no listener" mg_wait_port 127.0.0.1 "$p1" 1

# --- a plain upstream on a port we chose
ok "mg_start_upstream on a chosen port" mg_start_upstream --listen "127.0.0.1:$p1" --name one
pid1=$MG_UPSTREAM_PID log1=$MG_UPSTREAM_LOG
is "$MG_UPSTREAM_PORT" "$p1" "the port file names the chosen port"
ok "mg_wait_port sees it" mg_wait_port 127.0.0.1 "$p1" 2

out=$(mg_curl -i "http://app.example.com:$p1/echo?q=1" -H 'X-Test: a' -H 'X-Test: b')
like "$out" '^HTTP/1.1 200' "echo answers 200"
like "$out" $'^x-upstream: one\r$' "x-upstream names the upstream"
body=${out##*$'\r\n\r\n'}
is "$(mg_json_field "$body" upstream)" one "JSON upstream name"
is "$(mg_json_field "$body" method)" GET "JSON method"
is "$(mg_json_field "$body" path)" "/echo?q=1" "JSON path keeps the query"
ok "mg_curl resolved the test host (Host header is app.example.com:$p1)" \
    mg_json_has_header "$body" host "app.example.com:$p1"
like "$body" '\["X-Test","a"\],\["X-Test","b"\]' "repeated headers kept in order, one entry each"
is "$(mg_json_field "$body" body_length)" 0 "no body"

# request bodies: length and SHA-256, Content-Length and chunked
head -c 3000000 /dev/urandom >"$MG_TMP/body.bin"
want=$(sha256sum "$MG_TMP/body.bin" | cut -d' ' -f1)
body=$(mg_curl --data-binary @"$MG_TMP/body.bin" "http://127.0.0.1:$p1/upload")
is "$(mg_json_field "$body" body_length)" 3000000 "Content-Length body length"
is "$(mg_json_field "$body" body_sha256)" "$want" "Content-Length body SHA-256"
body=$(mg_curl -H 'Transfer-Encoding: chunked' --data-binary @"$MG_TMP/body.bin" "http://127.0.0.1:$p1/upload")
is "$(mg_json_field "$body" body_sha256)" "$want" "chunked body SHA-256"
is "$(mg_json_field "$body" method)" POST "POST method"

# the other paths
is "$(mg_http_code "http://127.0.0.1:$p1/status/418")" 418 "/status/418"
is "$(mg_http_code "http://127.0.0.1:$p1/status/204")" 204 "/status/204"
is "$(mg_curl "http://127.0.0.1:$p1/bytes/1234567" | wc -c)" 1234567 "/bytes/N with Content-Length"
hdrs=$(mg_curl -s -D - -o "$MG_TMP/chunked.out" "http://127.0.0.1:$p1/bytes/300000?chunked=1")
like "$hdrs" '^transfer-encoding: chunked' "/bytes/N?chunked=1 is chunked"
is "$(wc -c <"$MG_TMP/chunked.out")" 300000 "chunked body has N bytes"
is "$(head -c 5 "$MG_TMP/chunked.out")" abcde "bytes body pattern"
start=$(date +%s%N)
is "$(mg_http_code "http://127.0.0.1:$p1/slow?ms=400")" 200 "/slow answers"
elapsed=$((($(date +%s%N) - start) / 1000000))
ok "/slow?ms=400 took at least 400 ms (took $elapsed)" test "$elapsed" -ge 400
is "$(mg_http_code "http://127.0.0.1:$p1/close")" 000 "/close answers nothing"
two=$(mg_curl "http://127.0.0.1:$p1/a" "http://127.0.0.1:$p1/b")
like "$two" '"connection_request":2' "keep-alive: the second request reuses the connection"
hdrs=$(mg_curl -D - -o /dev/null "http://127.0.0.1:$p1/x?resp-header=set-cookie:a%3Db")
like "$hdrs" '^set-cookie: a=b' "resp-header adds a response header"
out=$(mg_raw "$p1" 'GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\nGET /c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
is "$(printf '%s\n' "$out" | grep -c '^HTTP/1.1 200')" 3 "mg_raw: three pipelined requests, three answers"
like "$out" '"path":"/c".*"connection_request":3' "pipelined answers in order on one connection"
like "$(mg_raw "$p1" 'NONSENSE\r\n\r\n')" '^HTTP/1.1 400' "a malformed request gets 400"
out=$(mg_raw "$p1" 'POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;e=1\r\nhello\r\n0\r\nT: 1\r\n\r\n' 1)
like "$out" '"body_length":5,' "chunked with extension and trailer"
mkdir -p "$MG_TMP/www" && echo '{"keys":[]}' >"$MG_TMP/www/jwks.json"

# --- TLS + client certificate + --serve, on a port it picks
ok "mg_pki makes a PKI" mg_pki
ok "mg_start_upstream with TLS, client CA and --serve" mg_start_upstream --name two \
    --tls-cert "$MG_PKI/server.crt" --tls-key "$MG_PKI/server.key" \
    --client-ca "$MG_PKI/root-cert.pem" --serve "$MG_TMP/www"
pid2=$MG_UPSTREAM_PID p3=$MG_UPSTREAM_PORT
fails "TLS upstream refuses a client without a certificate" \
    mg_curl --cacert "$MG_PKI/root-cert.pem" -o /dev/null "https://app.example.com:$p3/"
body=$(mg_curl --cacert "$MG_PKI/root-cert.pem" --cert "$MG_PKI/sleep/cert-chain.pem" \
    --key "$MG_PKI/sleep/key.pem" "https://app.example.com:$p3/echo")
is "$(mg_json_field "$body" tls)" true "TLS echo says tls"
is "$(mg_json_field "$body" sni)" app.example.com "TLS echo reports the SNI"
is "$(mg_json_field "$body" client_uri_san)" "spiffe://cluster.local/ns/default/sa/sleep" \
    "TLS echo reports the client's SPIFFE ID"
hdrs=$(mg_curl --cacert "$MG_PKI/root-cert.pem" --cert "$MG_PKI/client.crt" --key "$MG_PKI/client.key" \
    -D - -o "$MG_TMP/jwks.out" "https://app.example.com:$p3/file/jwks.json")
like "$hdrs" '^content-type: application/json' "--serve gives .json as application/json"
ok "--serve returns the file" cmp -s "$MG_TMP/jwks.out" "$MG_TMP/www/jwks.json"
is "$(mg_http_code --cacert "$MG_PKI/root-cert.pem" --cert "$MG_PKI/client.crt" --key "$MG_PKI/client.key" \
    "https://app.example.com:$p3/file/../jwks.json" --path-as-is)" 404 "--serve refuses .."

ok "mg_start_upstream with an optional client certificate" mg_start_upstream --name opt \
    --tls-cert "$MG_PKI/server.crt" --tls-key "$MG_PKI/server.key" \
    --client-ca "$MG_PKI/root-cert.pem" --client-cert-optional
p6=$MG_UPSTREAM_PORT
body=$(mg_curl --cacert "$MG_PKI/root-cert.pem" "https://app.example.com:$p6/echo")
is "$(mg_json_field "$body" client_cert)" false "optional mode: no certificate is fine"
is "$(mg_json_field "$body" alpn)" http/1.1 "echo reports the ALPN protocol"
like "$(mg_json_field "$body" tls_version)" '^TLSv1\.[23]$' "echo reports the TLS version"
body=$(mg_curl --cacert "$MG_PKI/root-cert.pem" --cert "$MG_PKI/httpbin/cert-chain.pem" \
    --key "$MG_PKI/httpbin/key.pem" "https://app.example.com:$p6/echo")
is "$(mg_json_field "$body" client_uri_san)" "spiffe://cluster.local/ns/default/sa/httpbin" \
    "optional mode: a certificate is still verified and reported"
mg_ca_other=$(mg_tmpdir other)
"$MESHGATE" ca init --dir "$mg_ca_other" --force >/dev/null
"$MESHGATE" ca issue --dir "$mg_ca_other" --spiffe ns/x/sa/y --out-dir "$mg_ca_other/xy" >/dev/null
fails "optional mode: a certificate from another root is refused" \
    mg_curl --cacert "$MG_PKI/root-cert.pem" --cert "$mg_ca_other/xy/cert-chain.pem" \
    --key "$mg_ca_other/xy/key.pem" -o /dev/null "https://app.example.com:$p6/echo"

# --- HTTP/2 (--h2): ALPN h2 over TLS, prior knowledge in plain text
ok "mg_start_upstream --h2 with TLS" mg_start_upstream --name h2tls --h2 \
    --tls-cert "$MG_PKI/server.crt" --tls-key "$MG_PKI/server.key"
p4=$MG_UPSTREAM_PORT
body=$(mg_curl --http2 --cacert "$MG_PKI/root-cert.pem" -H 'X-Two: 2' "https://app.example.com:$p4/echo?h=2")
is "$(mg_json_field "$body" version)" HTTP/2 "ALPN h2 gives an HTTP/2 echo"
is "$(mg_json_field "$body" alpn)" h2 "the echo's alpn is h2"
ok "HTTP/2 echo lists :authority" mg_json_has_header "$body" :authority "app.example.com:$p4"
ok "HTTP/2 echo lists regular headers" mg_json_has_header "$body" x-two 2
is "$(mg_json_field "$body" path)" "/echo?h=2" "HTTP/2 :path with query"
body=$(mg_curl --http1.1 --cacert "$MG_PKI/root-cert.pem" "https://app.example.com:$p4/echo")
is "$(mg_json_field "$body" version)" HTTP/1.1 "the same port still speaks HTTP/1.1"
body=$(mg_curl --http2 --cacert "$MG_PKI/root-cert.pem" --data-binary @"$MG_TMP/body.bin" "https://app.example.com:$p4/up")
is "$(mg_json_field "$body" body_sha256)" "$want" "HTTP/2 request body SHA-256"
ok "mg_start_upstream --h2 in plain text" mg_start_upstream --name h2c --h2
p5=$MG_UPSTREAM_PORT
body=$(mg_curl --http2-prior-knowledge "http://127.0.0.1:$p5/echo")
is "$(mg_json_field "$body" version)" HTTP/2 "prior-knowledge h2c"
is "$(mg_json_field "$body" upstream)" h2c "h2c echo names the upstream"
h1=$(mg_curl "http://127.0.0.1:$p1/bytes/200000" | sha256sum)
is "$(mg_curl --http2-prior-knowledge "http://127.0.0.1:$p5/bytes/200000" | sha256sum)" "$h1" \
    "/bytes/N is the same over HTTP/1.1 and HTTP/2"
is "$(mg_http_code --http2-prior-knowledge "http://127.0.0.1:$p5/status/503")" 503 "HTTP/2 /status/503"
is "$(mg_http_code --http2-prior-knowledge "http://127.0.0.1:$p5/close")" 000 "HTTP/2 /close drops the connection"
if command -v nghttp >/dev/null; then
    ok "nghttp: 20 concurrent streams on one connection" nghttp -n -m 20 "http://127.0.0.1:$p5/echo"
fi

# --- stopping
ok "mg_stop stops the first upstream (exit 0 on SIGTERM)" mg_stop "$pid1"
fails "the first upstream is gone" kill -0 "$pid1"
fails "its port is closed" mg_wait_port 127.0.0.1 "$p1" 1
like "$(cat "$log1")" 'GET /echo\?q=1' "the upstream logged the requests"
like "$(mg_raw_tls "$p3" app.example.com 'GET /raw HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n' \
    -CAfile "$MG_PKI/root-cert.pem" -cert "$MG_PKI/client.crt" -key "$MG_PKI/client.key")" \
    '"path":"/raw"' "mg_raw_tls speaks TLS with a client certificate"
ok "the TLS upstream stops cleanly (exit 0: no leaks under ASan)" mg_stop "$pid2"
mg_stop_all
fails "the TLS upstream is gone" kill -0 "$pid2"
is "${#_mg_pids[@]}" 0 "no tracked process left"

# --- the EXIT trap cleans up after a script that forgets to
child=$MG_TMP/child.sh
cat >"$child" <<CHILD
. "$MG_SRCDIR/tests/e2e/lib.sh"
mg_start_upstream --name orphan >/dev/null 2>&1 || exit 3
mg_on_exit 'kill -0 \$MG_UPSTREAM_PID && echo "hook ran first" >"$MG_TMP/hook.out"'
echo "\$MG_UPSTREAM_PID \$MG_TMP"
exit 0
CHILD
MG_UPSTREAM_BIN=$MG_UPSTREAM_BIN bash "$child" >"$MG_TMP/child.out" 2>&1
read -r opid otmp <"$MG_TMP/child.out"
ok "a child script started an upstream" test -n "${opid:-}"
fails "its EXIT trap stopped the upstream" kill -0 "${opid:-0}"
fails "its EXIT trap removed its temp directory" test -d "${otmp:-/nonexistent}"
is "$(cat "$MG_TMP/hook.out" 2>/dev/null)" "hook ran first" "mg_on_exit hooks run before the processes are stopped"

# --- a bare `wait` does not wait for harness processes; the watchdog
cat >"$child" <<CHILD
. "$MG_SRCDIR/tests/e2e/lib.sh"
mg_start_upstream --name waiter >/dev/null 2>&1 || exit 3
sleep 0.2 &
wait
echo "waited \$MG_UPSTREAM_PID"
CHILD
MG_UPSTREAM_BIN=$MG_UPSTREAM_BIN MG_TEST_TIMEOUT=20 timeout 30 bash "$child" >"$MG_TMP/child.out" 2>&1
like "$(cat "$MG_TMP/child.out")" '^waited [0-9]+' "a bare wait returns although an upstream runs"
cat >"$child" <<CHILD
. "$MG_SRCDIR/tests/e2e/lib.sh"
mg_start_upstream --name stuck >/dev/null 2>&1 || exit 3
echo "pid \$MG_UPSTREAM_PID \$MG_TMP"
sleep 60
echo "not reached"
CHILD
start=$(date +%s)
MG_UPSTREAM_BIN=$MG_UPSTREAM_BIN MG_TEST_TIMEOUT=2 timeout 30 bash "$child" >"$MG_TMP/child.out" 2>&1
took=$(($(date +%s) - start))
out=$(cat "$MG_TMP/child.out")
like "$out" '^Bail out! .*MG_TEST_TIMEOUT' "the watchdog bails out of a stuck script"
unlike "$out" 'not reached' "the stuck script did not go on"
ok "it took the timeout plus at most the grace period (${took} s)" test "$took" -le 12
read -r _ spid stmp <<<"$(grep '^pid ' "$MG_TMP/child.out")"
mg_wait_for 3 eval '! kill -0 "${spid:-0}" 2>/dev/null'
fails "the stuck script's upstream was killed" kill -0 "${spid:-0}"
mg_wait_for 3 test ! -d "${stmp:-/nonexistent}"
fails "its temp directory was removed" test -d "${stmp:-/nonexistent}"

# --- mg_start_meshgate reports a gateway that cannot start
cfg=$(mg_tmpdir cfg)
echo 'this is not: [valid' >"$cfg/broken.yaml"
MG_ADMIN=127.0.0.1:$(mg_free_port) MG_READY_TIMEOUT=3 fails \
    "mg_start_meshgate fails (does not hang) on a gateway that exits or never gets ready" \
    mg_start_meshgate "$cfg"
mg_stop_all

# --- mg_start_meshgate with a minimal real configuration (admin only)
if "$MESHGATE" run --help 2>&1 | grep -q 'not available in this build'; then
    skip "meshgate run is not in this build" 8
else
    cfg=$(mg_tmpdir cfg)
    export MG_ADMIN=127.0.0.1:$(mg_free_port)
    cat >"$cfg/proxy.yaml" <<YAML
apiVersion: meshgate.io/v1alpha1
kind: Proxy
metadata: {name: gw, namespace: istio-system}
spec:
  bindAddress: 127.0.0.1
  admin: $MG_ADMIN
YAML
    ok "mg_start_meshgate returns once the gateway is ready" mg_start_meshgate "$cfg"
    mpid=${MG_MESHGATE_PID:-0}
    is "$(mg_http_code "http://$MG_ADMIN/ready")" 200 "/ready answers 200 when it returns"
    ok "the gateway log is kept in MG_MESHGATE_LOG" test -f "${MG_MESHGATE_LOG:-/nonexistent}"
    is "$(mg_metric meshgate_config_reload_total 'result="success"')" 0 "mg_metric reads a labelled series"
    kill -HUP "$mpid"
    mg_wait_for 5 eval '[ "$(mg_metric meshgate_config_reload_total "result=\"success\"")" = 1 ]'
    is "$(mg_metric meshgate_config_reload_total 'result="success"')" 1 "mg_metric sees the counter move (SIGHUP reload)"
    is "$(mg_metric meshgate_config_reload_total)" 1 "mg_metric without labels sums every series"
    ok "mg_stop stops it with exit status 0 (SIGTERM drains)" mg_stop "$mpid"
    fails "the gateway is gone" kill -0 "$mpid"
    unset MG_ADMIN
fi
done_testing
