#!/bin/bash
# 17-drain-delay.sh - SIGTERM as a load balancer needs it: /ready answers
# 503 at once while the listeners keep accepting for timeouts.drainDelay;
# meanwhile every response ends its connection (HTTP/1.1 Connection: close,
# HTTP/2 GOAWAY, also for a keep-alive connection opened before the
# signal); then accept stops, in-flight work drains and the process exits 0.
# SIGINT, or a second SIGTERM, skips the delay.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/dp_common.sh"

mg_pki || bail_out "cannot make a PKI"
mg_start_upstream --name v1 || bail_out "upstream"
up=$MG_UPSTREAM_PORT
https=$(mg_free_port)
http=$(mg_free_port)
export MG_ADMIN=127.0.0.1:$(mg_free_port)
cfg=$(mg_tmpdir cfg)
dp_proxy "$cfg" "$MG_ADMIN" JSON
sed -i 's/drain: 10s/drain: 10s, drainDelay: 3s/' "$cfg/00-proxy.yaml"
grep -q 'drainDelay: 3s' "$cfg/00-proxy.yaml" || bail_out "could not set drainDelay"
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
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: app, namespace: istio-system}
spec:
  hosts: ["*"]
  gateways: ["gw"]
  http:
  - route: [{destination: {host: backend.local, port: {number: 80}}}]
YAML

ok "gateway starts" mg_start_meshgate "$cfg"
pid=$MG_MESHGATE_PID
is "$(mg_http_code "http://$MG_ADMIN/ready")" 200 "/ready: 200 before the signal"

# a keep-alive connection opened before the signal: one request now, one
# during the delay (perl keeps the socket; bash cannot read a response and
# then write again on /dev/tcp reliably)
mkfifo "$MG_TMP/go"
perl -MIO::Socket::INET -e '
    my ($port, $fifo, $out) = @ARGV;
    my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1", PeerPort => $port) or exit 1;
    $s->autoflush(1);
    open(my $o, ">", $out) or exit 1;
    $o->autoflush(1);
    for my $i (1, 2) {
        if ($i == 2) { open(my $f, "<", $fifo) or exit 1; <$f>; }
        print $s "GET /echo HTTP/1.1\r\nHost: app\r\n\r\n";
        my $head = "";
        while ($head !~ /\r\n\r\n/) { sysread($s, my $b, 1) or last; $head .= $b; }
        my ($len) = $head =~ /content-length:\s*(\d+)/i;
        my $body = "";
        while (length($body) < ($len // 0)) { sysread($s, my $b, $len - length($body)) or last; $body .= $b; }
        print $o "RESPONSE $i\n$head";
    }
    my $n = sysread($s, my $b, 1);
    print $o "EOF AFTER 2: " . (defined $n && $n == 0 ? "yes" : "no") . "\n";' \
    "$http" "$MG_TMP/go" "$MG_TMP/ka.out" &
ka=$!
mg_wait_for 5 grep -qs 'RESPONSE 1' "$MG_TMP/ka.out"
like "$(cat "$MG_TMP/ka.out")" 'RESPONSE 1' "keep-alive connection: first response before the signal"
unlike "$(sed -n '/RESPONSE 1/,/^\r$/p' "$MG_TMP/ka.out")" '[Cc]onnection: close' "... kept alive"

# an HTTP/2 connection that stays open across the signal
nghttp -v -H ":authority: app.example.com" "https://127.0.0.1:$https/slow?ms=2000" >"$MG_TMP/h2.txt" 2>&1 &
h2=$!
sleep 0.5

t0=$(date +%s%N)
kill -TERM "$pid"
mg_wait_for 3 eval '[ "$(mg_http_code "http://$MG_ADMIN/ready")" = 503 ]'
is "$(mg_http_code "http://$MG_ADMIN/ready")" 503 "SIGTERM: /ready answers 503 at once"
like "$(curl -s "http://$MG_ADMIN/ready")" DRAINING "... saying DRAINING"
like "$(cat "$MG_MESHGATE_LOG")" 'draining: /ready answers 503' "... and the log says so"

# during the delay: new connections are served, each told to close
hdr=$(mg_curl -sS -D - -o /dev/null "http://127.0.0.1:$http/echo")
like "$hdr" '^HTTP/1.1 200' "during the delay a new connection is still accepted and served"
like "$hdr" '[Cc]onnection: close' "... with Connection: close"
code=$(mg_http_code --cacert "$MG_PKI/root-cert.pem" "https://app.example.com:$https/echo")
is "$code" 200 "... HTTPS too"
echo go >"$MG_TMP/go"
wait "$ka"
out=$(cat "$MG_TMP/ka.out")
like "$out" 'RESPONSE 2' "the keep-alive connection from before the signal gets its next response"
like "$(sed -n '/RESPONSE 2/,$p' "$MG_TMP/ka.out")" '[Cc]onnection: close' "... with Connection: close"
like "$out" 'EOF AFTER 2: yes' "... and is then closed"
wait "$h2"
h2out=$(cat "$MG_TMP/h2.txt")
like "$h2out" "last_stream_id=2147483647, error_code=NO_ERROR" "HTTP/2 connection open across the signal: shutdown notice GOAWAY"
like "$h2out" ':status: 200' "... its in-flight stream completes"

# after the delay: accept stops, the process exits 0
for ((i = 0; i < 100; i++)); do
    _mg_alive "$pid" || break
    sleep 0.1
done
t1=$(date +%s%N)
ms=$(((t1 - t0) / 1000000))
fails "the gateway has exited after the delay" _mg_alive "$pid"
ok "... not before drainDelay (3 s; took $ms ms)" test "$ms" -ge 2900
ok "... nor long after it" test "$ms" -le 8000
wait "$pid" 2>/dev/null
is "$?" 0 "... with exit status 0"
is "$(mg_http_code "http://127.0.0.1:$http/echo")" 000 "nothing accepts any more"

# SIGINT skips the delay
ok "gateway starts again" mg_start_meshgate "$cfg"
pid=$MG_MESHGATE_PID
t0=$(date +%s%N)
kill -INT "$pid"
for ((i = 0; i < 50; i++)); do
    _mg_alive "$pid" || break
    sleep 0.1
done
ms=$((($(date +%s%N) - t0) / 1000000))
fails "SIGINT: gone" _mg_alive "$pid"
ok "... without the drain delay (took $ms ms)" test "$ms" -lt 2500
wait "$pid" 2>/dev/null
is "$?" 0 "... exit status 0"

# a second SIGTERM skips the rest of it
ok "gateway starts a third time" mg_start_meshgate "$cfg"
pid=$MG_MESHGATE_PID
t0=$(date +%s%N)
kill -TERM "$pid"
sleep 0.3
kill -TERM "$pid"
for ((i = 0; i < 50; i++)); do
    _mg_alive "$pid" || break
    sleep 0.1
done
ms=$((($(date +%s%N) - t0) / 1000000))
fails "a second SIGTERM: gone" _mg_alive "$pid"
ok "... before the delay ran out (took $ms ms)" test "$ms" -lt 2500

done_testing
