#!/bin/bash
# 85-expect-continue.sh - `Expect: 100-continue` is answered by the gateway
# and never forwarded, so an upstream cannot answer the expectation early
# and then read the request body as a second request; and an upstream
# HTTP/1 connection that answered before the request was fully written
# never goes back to the pool.
#
# The upstream is a small Perl server with the dangerous, real-world
# shape: on `Expect: 100-continue` it answers at once without reading the
# body and goes on parsing the connection, so the body becomes the next
# request. The body here is `GET /admin ...`, which a policy denies when
# asked directly. Regression: the gateway forwarded Expect, the upstream
# executed /admin, and with one pooled connection (maxConnections: 1) the
# next client received the smuggled /admin response.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/dp_common.sh"

command -v perl >/dev/null || skip_all "perl is not installed"
curl --version | grep -q HTTP2 || skip_all "curl without HTTP/2"
mg_pki || bail_out "cannot make a PKI"

# Every request the upstream executes is logged as
# "conn=PID METHOD PATH expect=0|1". Answers:
#   /upload  with Expect: after 0.5 s (a server checking the upload first)
#            200 "upload-early", body left unread (it becomes the next request);
#            without Expect: reads the Content-Length body, 200 "upload-ok len=N"
#   /early   head and half of the body at once, the rest 1.5 s later, the
#            request body left unread (answered before it was sent)
#   other    after 0.3 s, 200 "ADMIN-SECRET" for /admin..., else "normal PATH"
pf=$MG_TMP/raw.port
ulog=$MG_TMP/raw.requests
: >"$ulog"
perl -MIO::Socket::INET -MTime::HiRes=sleep -e '
    $SIG{CHLD} = "IGNORE";
    my ($pf, $log) = @ARGV;
    my $l = IO::Socket::INET->new(LocalAddr => "127.0.0.1", LocalPort => 0, Listen => 64, ReuseAddr => 1) or die;
    open(my $f, ">", $pf) or die; print $f $l->sockport, "\n"; close $f;
    sub answer { my ($c, $b) = @_; $c->print("HTTP/1.1 200 OK\r\nContent-Length: " . length($b) . "\r\n\r\n$b"); }
    while (my $c = $l->accept) {
        next if fork;
        $c->autoflush(1);
        open(my $lg, ">>", $log) or die; $lg->autoflush(1);
        while (defined(my $line = <$c>)) {
            next if $line eq "\r\n";
            my ($m, $p) = $line =~ /^(\S+) (\S+)/;
            last unless defined $p;
            my ($ex, $cl) = (0, 0);
            while (defined(my $h = <$c>)) {
                last if $h eq "\r\n";
                $ex = 1 if $h =~ /^expect:\s*100-continue/i;
                $cl = $1 if $h =~ /^content-length:\s*(\d+)/i;
            }
            print $lg "conn=$$ $m $p expect=$ex\n";
            if ($p eq "/upload" && $ex) {
                sleep 0.5;
                answer($c, "upload-early");
            } elsif ($p eq "/upload") {
                read($c, my $body, $cl);
                answer($c, "upload-ok len=" . length($body));
            } elsif ($p eq "/early") {
                $c->print("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nearly");
                sleep 1.5;
                $c->print("-done");
            } else {
                sleep 0.3;
                answer($c, $p =~ m{^/admin} ? "ADMIN-SECRET" : "normal $p");
            }
        }
        exit 0;
    }' "$pf" "$ulog" >"$MG_TMP/raw.log" 2>&1 &
_mg_track $!
mg_wait_for 5 test -s "$pf" || bail_out "raw upstream did not start"
up=$(cat "$pf")

http=$(mg_free_port)
https=$(mg_free_port)
export MG_ADMIN=127.0.0.1:$(mg_free_port)
cfg=$(mg_tmpdir cfg)
dp_proxy "$cfg" "$MG_ADMIN" JSON
# one worker: the pooled connection and the queued request meet on it
sed -i 's/^  workers: .*/  workers: 1/' "$cfg/00-proxy.yaml"
dp_service "$cfg" raw raw.local "$up"
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
  http: [{name: main, route: [{destination: {host: raw.local}}]}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: one, namespace: istio-system}
spec:
  host: raw.local
  trafficPolicy:
    connectionPool:
      tcp: {maxConnections: 1}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: no-admin, namespace: istio-system}
spec:
  action: DENY
  rules: [{to: [{operation: {paths: ["/admin*"]}}]}]
YAML
ok "gateway starts" mg_start_meshgate "$cfg"

is "$(mg_http_code "http://app.local:$http/admin")" 403 "/admin asked directly: 403 by policy"

smuggle=$'GET /admin HTTP/1.1\r\nHost: app.local\r\n\r\n'
printf '%s' "$smuggle" >"$MG_TMP/body"
blen=${#smuggle}
H1=(-H 'Expect: 100-continue' --data-binary "@$MG_TMP/body")
H2=(--http2 --cacert "$MG_PKI/root-cert.pem" -H 'Expect: 100-continue' --data-binary "@$MG_TMP/body")

# stray bytes (a smuggled answer) reach an idle pooled connection, which
# closes it: each part below then starts on a fresh upstream connection
settle() { sleep 1.5; }

# run_pair NAME CURL_ARGS... URL: the upload (in the background), and 0.2 s
# later a GET /next-NAME that queues behind it for the only upstream
# connection; leaves their bodies in $MG_TMP/NAME.up and NAME.next
run_pair() {
    local name=$1
    shift
    mg_curl "$@" >"$MG_TMP/$name.up" 2>&1 &
    local a=$!
    sleep 0.2
    mg_curl "http://app.local:$http/next-$name" >"$MG_TMP/$name.next" 2>&1
    wait "$a"
    settle
}

# ---- HTTP/1.1 client
run_pair h11 "${H1[@]}" "http://app.local:$http/upload"
is "$(cat "$MG_TMP/h11.up")" "upload-ok len=$blen" "HTTP/1.1 + Expect: the upstream read the body as the body"
is "$(cat "$MG_TMP/h11.next")" "normal /next-h11" "HTTP/1.1 + Expect: the next client gets its own response"
like "$(cat "$ulog")" '^conn=[0-9]+ POST /upload expect=0$' "HTTP/1.1: Expect is not forwarded upstream"

# ---- HTTP/2 client (TLS, ALPN h2)
run_pair h2 "${H2[@]}" "https://app.example.com:$https/upload"
is "$(cat "$MG_TMP/h2.up")" "upload-ok len=$blen" "HTTP/2 + expect: the upstream read the body as the body"
is "$(cat "$MG_TMP/h2.next")" "normal /next-h2" "HTTP/2 + expect: the next client gets its own response"

# ---- HTTP/1.0 client: no 100 for it, and Expect is not forwarded either
out=$(mg_raw "$http" "POST /upload HTTP/1.0\r\nHost: app.local\r\nExpect: 100-continue\r\nContent-Length: $blen\r\n\r\n$smuggle" 5 | tr -d '\r')
unlike "$out" '^HTTP/1\.[01] 100' "HTTP/1.0 + Expect: no 100 Continue sent to it"
like "$out" "^upload-ok len=$blen\$" "HTTP/1.0 + Expect: the upstream read the body as the body"
settle

# the curl uploads asked for a 100 and got one from the gateway
out=$(mg_curl -v "${H1[@]}" "http://app.local:$http/upload" 2>&1 | tr -d '\r')
like "$out" '^< HTTP/1.1 100 Continue' "HTTP/1.1 + Expect: the gateway answers 100 Continue itself"
like "$out" "upload-ok len=$blen" "... and the upload completes"
settle
out=$(mg_curl -v "${H2[@]}" "https://app.example.com:$https/upload" 2>&1 | tr -d '\r')
like "$out" '^< HTTP/2 100' "HTTP/2 + expect: the gateway answers 100 itself"
like "$out" "upload-ok len=$blen" "... and the upload completes"
settle

unlike "$(cat "$ulog")" 'expect=1' "no request reached the upstream with Expect"
unlike "$(cat "$ulog")" ' /admin ' "/admin was never executed upstream"

# ---- second line: the upstream answers before the request body was sent
# (no Expect involved); the body, sent 0.5 s after the head, is again a
# request. The connection that answered early must not serve the request
# queued behind it.
early=$'GET /admin-early HTTP/1.1\r\nHost: app.local\r\n\r\n'
perl -MIO::Socket::INET -MTime::HiRes=sleep -e '
    my ($port, $body) = @ARGV;
    my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1", PeerPort => $port) or die;
    $s->autoflush(1);
    $s->print("POST /early HTTP/1.1\r\nHost: app.local\r\nContent-Length: " . length($body) . "\r\n\r\n");
    sleep 0.5;
    $s->print($body);
    my $t = time + 8; my $out = "";
    while (time < $t) { my $n = sysread($s, my $b, 4096); last unless $n; $out .= $b; }
    print $out;' "$http" "$early" >"$MG_TMP/early.up" 2>&1 &
a=$!
sleep 0.2
mg_curl "http://app.local:$http/next-early" >"$MG_TMP/early.next" 2>&1
wait "$a"
like "$(tr -d '\r' <"$MG_TMP/early.up")" '^early-done' "early answer: the client gets it"
is "$(cat "$MG_TMP/early.next")" "normal /next-early" "early answer: the queued client gets its own response"
econn=$(grep -m1 ' POST /early ' "$ulog" | cut -d' ' -f1)
nconn=$(grep -m1 ' GET /next-early ' "$ulog" | cut -d' ' -f1)
isnt "$nconn" "$econn" "early answer: that upstream connection was not reused"
unlike "$(cat "$MG_TMP/early.next")" 'ADMIN' "early answer: no smuggled response reaches anyone"
settle

is "$(mg_curl "http://app.local:$http/last")" "normal /last" "the gateway still serves"

done_testing
