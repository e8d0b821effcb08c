#!/bin/bash
# 87-h1-response-stall.sh - an HTTP/1.1 response that the client stops
# taking is cut after timeouts.idle without progress, on both sides: the
# client connection and the upstream connection are closed (the upstream
# one is not reused), the request is counted and logged with the response
# flag SI (Envoy's stream idle timeout, as the HTTP/2 path logs it). A
# client that reads slowly but keeps reading is not cut.
# Regression: four clients that asked for a large body with a tiny receive
# window and never read it held the four upstream connections allowed by
# connectionPool.tcp.maxConnections, and every other client waited forever.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/dp_common.sh"

command -v perl >/dev/null || skip_all "perl is not installed"
mg_pki || bail_out "cannot make a PKI"
mg_start_upstream --name v1 || bail_out "upstream"
up=$MG_UPSTREAM_PORT
http=$(mg_free_port)
https=$(mg_free_port)
export MG_ADMIN=127.0.0.1:$(mg_free_port)
cfg=$(mg_tmpdir cfg)
dp_proxy "$cfg" "$MG_ADMIN" JSON
sed -i 's/^  timeouts: .*/  timeouts: {handshake: 5s, requestHeaders: 5s, idle: 2s, drain: 5s}/' "$cfg/00-proxy.yaml"
dp_service "$cfg" backend backend.local "$up"
cat >"$cfg/gw.yaml" <<YAML
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: $http, name: http, protocol: HTTP}
    hosts: ["app.local"]
  - port: {number: $https, name: https, protocol: HTTPS}
    hosts: ["app.example.com"]
    tls: {mode: SIMPLE, credentialName: app-cert}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: app, namespace: istio-system}
spec:
  hosts: ["app.local", "app.example.com"]
  gateways: ["gw"]
  http: [{name: main, route: [{destination: {host: backend.local}}]}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: four, namespace: istio-system}
spec:
  host: backend.local
  trafficPolicy:
    connectionPool:
      tcp: {maxConnections: 4}
YAML
ok "gateway starts" mg_start_meshgate "$cfg"

big=/bytes/10000000000
# client TAG PATH HOLD READ PAUSE: a 4 KiB receive buffer; sends GET PATH,
# reads the first bytes ("started" in $MG_TMP/TAG.st), then either holds
# HOLD s without reading and reports whether the connection was cut
# ("cut" or "open"), or (HOLD 0) reads READ bytes every PAUSE s, twelve
# times, and reports the bytes it got ("read N" or "eof N")
client() {
    perl -MSocket -MTime::HiRes=sleep,time -e '
        my ($port, $path, $st, $hold, $read, $pause) = @ARGV;
        socket(my $s, PF_INET, SOCK_STREAM, 0) or die;
        setsockopt($s, SOL_SOCKET, SO_RCVBUF, 4096) or die;
        connect($s, sockaddr_in($port, inet_aton("127.0.0.1"))) or die "connect: $!";
        syswrite($s, "GET $path HTTP/1.1\r\nHost: app.local\r\n\r\n");
        sysread($s, my $b, 64) or die "no response";
        open(my $f, ">", $st) or die; print $f "started\n"; close $f;
        if ($hold > 0) {
            sleep $hold;
            # a cut connection gives what the kernels still hold, then ends
            my ($t, $n) = (time + 10, 0);
            while (time < $t) { my $r = sysread($s, $b, 65536); last unless $r; $n += $r; }
            print time < $t ? "cut\n" : "open\n";
            exit 0;
        }
        my $got = 0;
        for my $i (1 .. 12) {
            sleep $pause;
            my $want = $got + $read;
            while ($got < $want) {
                my $r = sysread($s, $b, $want - $got);
                if (!$r) { print "eof $got\n"; exit 0; }
                $got += $r;
            }
        }
        print "read $got\n";' "$http" "$2" "$MG_TMP/$1.st" "$3" "${4:-0}" "${5:-0}"
}

# ---- four stalled readers: three over plain TCP, one over TLS (its
# openssl client blocks on a pipe nobody reads, so it stops reading too)
for i in 1 2 3; do
    client "s$i" "$big" 16 >"$MG_TMP/s$i.out" 2>&1 &
done
(printf 'GET %s HTTP/1.1\r\nHost: app.example.com\r\n\r\n' "$big"; sleep 16) |
    timeout 18 openssl s_client -quiet -connect "127.0.0.1:$https" -servername app.example.com \
        -CAfile "$MG_PKI/root-cert.pem" 2>/dev/null |
    { head -c 64 >/dev/null; echo started >"$MG_TMP/s4.st"; sleep 17; } &
stalled() { test -s "$MG_TMP/s1.st" -a -s "$MG_TMP/s2.st" -a -s "$MG_TMP/s3.st" -a -s "$MG_TMP/s4.st"; }
ok "four responses started, then their clients stopped reading" mg_wait_for 10 stalled
t0=$(date +%s%N)

# a fifth client needs one of the four upstream connections
code=$(mg_curl -o /dev/null -w '%{http_code}' --max-time 10 "http://app.local:$http/echo")
t1=$(date +%s%N)
is "$code" 200 "another client is served while the four stall"
wait_ms=$(((t1 - t0) / 1000000))
diag "the fifth client waited $wait_ms ms (timeouts.idle 2 s)"
ok "... once the stalled responses were cut (${wait_ms} ms < 8000)" test "$wait_ms" -lt 8000

four_cut() { [ "$(grep -c '"response_flags":"SI"' "$DP_ACCESS_LOG" 2>/dev/null)" -ge 4 ]; }
ok "all four cut" mg_wait_for 10 four_cut
t2=$(date +%s%N)
cut_ms=$(((t2 - t0) / 1000000))
diag "stall to cut of all four: about $cut_ms ms"
ok "cut after about timeouts.idle (${cut_ms} ms, 1500..8000)" test "$cut_ms" -ge 1500 -a "$cut_ms" -lt 8000
line=$(grep -m1 '"response_flags":"SI"' "$DP_ACCESS_LOG")
like "$line" '"path":"/bytes/10000000000"' "the access line names the stalled request"
like "$line" '"reason":"stream_idle_timeout"' "... with the reason"
like "$line" '"response_code":200' "... and the status that had started"
like "$(grep '"response_flags":"SI"' "$DP_ACCESS_LOG")" '"downstream_tls":true' "the TLS client was cut too"
is "$(mg_metric istio_requests_total 'response_flags_reason="stream_idle_timeout"')" 4 "counted: four stream idle timeouts"

for i in 1 2 3; do
    mg_wait_for 30 test -s "$MG_TMP/s$i.out"
done
is "$(cat "$MG_TMP/s1.out" "$MG_TMP/s2.out" "$MG_TMP/s3.out" | tr '\n' ' ')" "cut cut cut " \
    "the stalled client connections were closed"

# the upstream connections were closed, not pooled: each request now
# opens a connection of its own, and all four slots serve again
pids=()
for i in 1 2 3 4 5; do
    mg_curl -o "$MG_TMP/e$i" "http://app.local:$http/echo" &
    pids+=($!)
done
wait "${pids[@]}"
n=0
for i in 1 2 3 4 5; do
    [ "$(mg_json_field "$(cat "$MG_TMP/e$i")" upstream)" = v1 ] && n=$((n + 1))
done
is "$n" 5 "five clients at once are served afterwards"

# ---- a reader that pauses but keeps taking bytes (1 MiB every 0.5 s, six
# seconds in all) is not cut: progress restarts the timer. (The kernel
# wakes the writer only once a good part of its send buffer is free, so
# progress is seen in steps; a trickle far slower than that is a stall.)
out=$(client slow "$big?slow=1" 0 1048576 0.5)
is "$out" "read 12582912" "a pausing but steady reader gets all it reads (6 s > 2 x timeouts.idle)"
ok "... it is logged when it leaves" dp_wait_log "$DP_ACCESS_LOG" "\"path\":\"$big\\?slow=1\""
line=$(grep -F "\"path\":\"$big?slow=1\"" "$DP_ACCESS_LOG")
unlike "$line" '"response_flags":"SI"' "... and was not cut"

# ---- a last response (Connection: close) the client never reads: once
# the upstream is done the rest waits in the gateway's output, and the
# connection is closed after the idle timeout all the same, whether the
# response had ended upstream or not
for n in 1000000 2000000 2800000 3000000 3200000 3400000 3600000 4000000 6000000; do
    perl -MSocket -e '
        my ($port, $n) = @ARGV;
        socket(my $s, PF_INET, SOCK_STREAM, 0) or die;
        setsockopt($s, SOL_SOCKET, SO_RCVBUF, 4096) or die;
        connect($s, sockaddr_in($port, inet_aton("127.0.0.1"))) or die;
        syswrite($s, "GET /bytes/$n?last=1 HTTP/1.1\r\nHost: app.local\r\nConnection: close\r\n\r\n");
        sleep 12;' "$http" "$n" &
    _mg_track $!
done
sleep 1
idle_cx() { [ "$(mg_metric meshgate_downstream_cx_active)" = 0 ]; }
ok "unread last responses: every client connection closed after the idle timeout" mg_wait_for 8 idle_cx
grep -F '?last=1' "$DP_ACCESS_LOG" | grep -o '"path":"[^"]*"\|"response_flags":"[^"]*"\|"duration":[0-9]*' | paste - - - | diag -

is "$(mg_http_code "http://app.local:$http/echo")" 200 "the gateway still serves"

done_testing
