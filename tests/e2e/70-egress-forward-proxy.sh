#!/bin/bash
# 70-egress-forward-proxy.sh - the forward proxy on Proxy.spec.outbound.bind
# under REGISTRY_ONLY: CONNECT to a ServiceEntry host is tunnelled to the
# entry's STATIC endpoint; an unregistered host, a registered host on a
# port the entry does not list, a wildcard's apex and an IP literal no
# `addresses` cover get 403; an AuthorizationPolicy on hosts refuses a
# registered one; every refusal is logged and counted; a 50 MB download
# through a tunnel keeps its checksum while other clients are answered;
# absolute-form requests (HTTP_PROXY) go through the request path to the
# entry's cluster (a wildcard entry's host to its endpoints), 502 when the
# registry refuses; ALLOW_ANY lets an unregistered CONNECT destination and
# an unregistered absolute-form one (resolved by the gateway) through.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/dp_common.sh"

mg_pki || bail_out "cannot make a PKI"
mg_start_upstream --name api || bail_out "upstream api"
u1=$MG_UPSTREAM_PORT
mg_start_upstream --name wild || bail_out "upstream wild"
u2=$MG_UPSTREAM_PORT
fwd=$(mg_free_port)
export MG_ADMIN=127.0.0.1:$(mg_free_port)
cfg=$(mg_tmpdir cfg)

# write_config MODE: the Proxy (forward proxy on $fwd), the mesh mode, the
# ServiceEntries and a DENY policy for blocked.test.
write_config() {
    DP_ACCESS_LOG=$(dirname "$cfg")/access.log
    cat >"$cfg/00-proxy.yaml" <<YAML
apiVersion: meshgate.io/v1alpha1
kind: Proxy
metadata: {name: egw, namespace: istio-system, labels: {istio: egressgateway}}
spec:
  bindAddress: 127.0.0.1
  admin: $MG_ADMIN
  workers: 2
  outbound: {bind: 127.0.0.1:$fwd}
  timeouts: {handshake: 5s, requestHeaders: 5s, idle: 60s, drain: 2s}
---
apiVersion: meshgate.io/v1alpha1
kind: MeshConfig
spec:
  accessLogFile: $DP_ACCESS_LOG
  accessLogEncoding: JSON
  outboundTrafficPolicy: {mode: $1}
YAML
    cat >"$cfg/10-se.yaml" <<YAML
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: api, namespace: istio-system}
spec:
  hosts: ["api.test", "blocked.test"]
  location: MESH_EXTERNAL
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {http: $u1}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: wild, namespace: istio-system}
spec:
  hosts: ["*.wild.test"]
  location: MESH_EXTERNAL
  ports: [{number: 443, name: tls, protocol: TLS, targetPort: $u2}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: by-address, namespace: istio-system}
spec:
  hosts: ["byaddr.internal"]
  addresses: ["127.0.0.1/32"]
  location: MESH_EXTERNAL
  ports: [{number: $u1, name: tcp, protocol: TCP}]
  resolution: NONE
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: hidden, namespace: other}
spec:
  hosts: ["hidden.test"]
  exportTo: ["."]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {http: $u1}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: no-blocked, namespace: istio-system}
spec:
  action: DENY
  rules: [{to: [{operation: {hosts: ["blocked.test:*"]}}]}]
YAML
}

# code HOST:PORT: the status the proxy answered the CONNECT with.
code() {
    curl -s -o /dev/null --max-time 10 -w '%{http_connect}' -p -x "http://127.0.0.1:$fwd" "http://$1/echo"
}
# via HOST:PORT PATH: the body fetched through a CONNECT tunnel.
via() {
    curl -sS --max-time 20 -p -x "http://127.0.0.1:$fwd" "http://$1$2"
}

write_config REGISTRY_ONLY
ok "gateway starts with the forward proxy" mg_start_meshgate "$cfg"
mg_wait_port 127.0.0.1 "$fwd" || bail_out "forward proxy port"

body=$(via api.test:80 /echo)
is "$(mg_json_field "$body" upstream)" api "CONNECT to a registered host reaches its STATIC endpoint"
is "$(code api.test:80)" 200 "the CONNECT is answered 200"
is "$(code API.Test:80)" 200 "hosts compare without case"
is "$(code evil.test:80)" 403 "an unregistered host is refused with 403"
is "$(code api.test:8080)" 403 "a registered host on a port the entry does not list is refused"
body=$(via a.wild.test:443 /echo)
is "$(mg_json_field "$body" upstream)" wild "a wildcard entry lets a subdomain through (its targetPort)"
is "$(code x.y.wild.test:443)" 200 "deeper subdomains match the wildcard too"
is "$(code wild.test:443)" 403 "the wildcard's apex is refused"
is "$(code hidden.test:80)" 403 "an entry exported only to its own namespace is not seen"
body=$(via "127.0.0.1:$u1" /echo)
is "$(mg_json_field "$body" upstream)" api "an IP literal covered by an entry's addresses is dialled"
is "$(code "127.0.0.2:$u1")" 403 "an IP literal no addresses cover is refused"
is "$(code blocked.test:80)" 403 "an AuthorizationPolicy on hosts refuses a registered host"

mg_wait_log "$DP_ACCESS_LOG" '"authority":"evil.test:80"' >/dev/null
line=$(grep '"authority":"evil.test:80"' "$DP_ACCESS_LOG" | tail -n 1)
like "$line" '"response_code":403' "the refusal is in the access log with its status"
like "$line" 'egress_connect_not_registered' "... with the entrance and the reason"
line=$(grep '"authority":"blocked.test:80"' "$DP_ACCESS_LOG" | tail -n 1)
like "$line" 'rbac_policy' "the policy refusal is logged as such"
is "$(mg_metric meshgate_egress_refused_total 'entrance="connect",reason="not_registered"')" 3 \
    "refusals are counted by entrance and reason (evil, the apex, the hidden entry)"
is "$(mg_metric meshgate_egress_refused_total 'reason="port_not_registered"')" 1 "wrong-port refusal counted"

# a 50 MB download through a tunnel while other clients keep being answered
n=$((50 * 1024 * 1024))
want=$(yes abcdefghijklmnopqrstuvwxyz | tr -d '\n' | head -c "$n" | sha256sum | cut -d' ' -f1)
big=$MG_TMP/big.sha
( curl -sS --max-time 120 --limit-rate 25M -p -x "http://127.0.0.1:$fwd" "http://api.test:80/bytes/$n" |
      sha256sum | cut -d' ' -f1 >"$big" ) &
bigpid=$!
small_ok=0
for ((i = 0; i < 10; i++)); do
    [ "$(code api.test:80)" = 200 ] && small_ok=$((small_ok + 1))
    sleep 0.1
done
wait "$bigpid"
is "$small_ok" 10 "small tunnels are answered during the large transfer"
is "$(cat "$big")" "$want" "50 MB through a CONNECT tunnel arrive with their checksum intact"

# A reader that stops: the tunnel stops reading the upstream once its
# per-direction buffer is full, so the gateway's memory stays bounded
# while 50 MB wait at the origin; after the stall every byte still arrives
# and the origin's close reaches the client (half-close, then EOF).
rss() { awk '/^VmRSS:/ { print $2 }' "/proc/$MG_MESHGATE_PID/status"; }
stall=$MG_TMP/stall
perl -MIO::Socket::INET -e '
    my ($port, $n, $mark) = @ARGV;
    my $c = IO::Socket::INET->new(PeerAddr => "127.0.0.1", PeerPort => $port) or die "connect: $!";
    print $c "CONNECT api.test:80 HTTP/1.1\r\nHost: api.test:80\r\n\r\n";
    my ($buf, $b) = ("", "");
    while ($buf !~ /\r\n\r\n/) { defined sysread($c, $b, 4096) && length $b or die "no answer"; $buf .= $b; }
    print $c "GET /bytes/$n HTTP/1.1\r\nHost: api.test\r\nConnection: close\r\n\r\n";
    my $got = 0;
    while ($got < 1048576) { my $r = sysread($c, $b, 65536); last unless $r; $got += $r; }
    open(my $m, ">", $mark) or die; close $m;
    sleep 4;                                    # stalled: nothing read
    my $end = time + 60;
    while (time < $end) { my $r = sysread($c, $b, 262144); last unless $r; $got += $r; }
    print $got;' "$fwd" "$n" "$stall.mark" >"$stall.got" &
stallpid=$!
rss0=$(rss)
mg_wait_for 10 test -f "$stall.mark"
sleep 1
rss1=$(rss)
sleep 2
rss2=$(rss)
wait "$stallpid"
grow=$(( (rss1 > rss2 ? rss1 : rss2) - rss0 ))
ok "a stalled tunnel reader does not grow the gateway's memory (${grow} KiB, bound 8192)" \
    test "$grow" -lt 8192
got=$(cat "$stall.got")
ok "... and after the stall all 50 MB arrive and the tunnel ends ($got bytes with the head)" \
    test "$got" -gt "$n" -a "$got" -lt $((n + 1024))

# Half-close: the client sends its request and shuts its side for writing;
# the tunnel passes the end on to the origin and keeps the other direction
# open until the whole answer is through.
got=$(perl -MIO::Socket::INET -e '
    my ($port) = @ARGV;
    my $c = IO::Socket::INET->new(PeerAddr => "127.0.0.1", PeerPort => $port) or die "connect: $!";
    print $c "CONNECT api.test:80 HTTP/1.1\r\nHost: api.test:80\r\n\r\n";
    my ($buf, $b) = ("", "");
    while ($buf !~ /\r\n\r\n/) { defined sysread($c, $b, 4096) && length $b or die "no answer"; $buf .= $b; }
    print $c "GET /bytes/3000000 HTTP/1.1\r\nHost: api.test\r\n\r\n";
    $c->shutdown(1);
    $buf = "";
    my $end = time + 20;
    while (time < $end) { my $r = sysread($c, $b, 262144); last unless $r; $buf .= $b; }
    my $i = index($buf, "\r\n\r\n");
    print $i < 0 ? 0 : length($buf) - $i - 4;' "$fwd")
is "$got" 3000000 "a client that half-closes after its request still gets the whole answer"

# absolute-form requests (HTTP_PROXY): the authority selects the entry
fx() {
    curl -s -o /dev/null --max-time 10 -w '%{http_code}' -x "http://127.0.0.1:$fwd" "$1"
}
body=$(curl -sS --max-time 10 -x "http://127.0.0.1:$fwd" "http://api.test/echo?q=1")
is "$(mg_json_field "$body" upstream)" api "an absolute-form request to a registered host reaches its endpoint"
is "$(mg_json_field "$body" path)" "/echo?q=1" "... with the path and query in origin-form"
ok "... and the Host it asked for" mg_json_has_header "$body" host api.test
is "$(fx http://evil.test/echo)" 502 "an absolute-form request to an unregistered host gets 502"
is "$(fx http://api.test:8080/echo)" 502 "... to a registered host on an unlisted port, 502"
is "$(fx "http://127.0.0.2:$u1/echo")" 502 "... to an IP literal no addresses cover, 502"
mg_wait_log "$DP_ACCESS_LOG" 'egress_forward_not_registered' >/dev/null
like "$(grep '"authority":"evil.test"' "$DP_ACCESS_LOG" | tail -n 1)" 'egress_forward_not_registered' \
    "the absolute-form refusal is logged with the entrance and the reason"
is "$(mg_metric meshgate_egress_refused_total 'entrance="forward"')" 3 "absolute-form refusals are counted"
out=$(mg_raw "$fwd" 'GET http://api.test/echo HTTP/1.1\r\nHost: api.test\r\nConnection: close\r\n\r\n')
like "$out" '"upstream": *"api"' "a raw absolute-form request is proxied"
body=$(curl -sS --max-time 10 -x "http://127.0.0.1:$fwd" "http://a.wild.test:443/echo")
is "$(mg_json_field "$body" upstream)" wild \
    "an absolute-form request to a wildcard entry's host reaches the entry's endpoint (its targetPort)"
ok "... with the Host it asked for" mg_json_has_header "$body" host a.wild.test:443
is "$(fx http://wild.test:443/echo)" 502 "... the wildcard's apex gets 502"
mg_wait_log "$DP_ACCESS_LOG" '"authority":"a.wild.test:443"' >/dev/null
line=$(grep '"authority":"a.wild.test:443"' "$DP_ACCESS_LOG" | tail -n 1)
like "$line" "\"upstream_host\":\"127.0.0.1:$u2\"" "the access log names the address dialled"

# the explainer gives the same answers offline, registry first
out=$("$MESHGATE" authz -c "$cfg" --connect api.test:80 2>/dev/null)
is "$?:$(head -n 2 <<<"$out" | tr '\n' ' ')" "0:ALLOW egress: registered: ServiceEntry istio-system/api port 80 " \
    "authz --connect: a registered host is allowed, with its entry"
out=$("$MESHGATE" authz -c "$cfg" --connect evil.test:80 2>/dev/null)
is "$?:$(head -n 2 <<<"$out" | tr '\n' ' ')" "1:DENY egress: refused with 403 under REGISTRY_ONLY (not_registered) " \
    "authz --connect: an unregistered host is refused by the registry"
out=$("$MESHGATE" authz -c "$cfg" --connect blocked.test:80 2>/dev/null)
is "$?" 1 "authz --connect: the DENY policy on hosts refuses blocked.test"
like "$out" 'decided by: istio-system.no-blocked \(DENY, rule 0\)' "... and names it"

# bad input on the forward port gets an answer, never a crash
like "$(mg_raw "$fwd" '\x16\x03\x01\x00\x05hello')" '^HTTP/1.1 400' "TLS bytes on the forward port: 400"
like "$(mg_raw "$fwd" 'CONNECT api.test HTTP/1.1\r\nHost: api.test\r\n\r\n')" '^HTTP/1.1 400' \
    "a CONNECT without a port: 400"
like "$(mg_raw "$fwd" 'CONNECT [::1:80 HTTP/1.1\r\nHost: x\r\n\r\n')" '^HTTP/1.1 400' "a malformed authority: 400"
is "$(mg_raw "$fwd" 'CONNECT api.te')" "" "a partial head and then the end: closed without an answer"
long=$(head -c 300 /dev/zero | tr '\0' a)
like "$(mg_raw "$fwd" "CONNECT $long.test:80 HTTP/1.1\r\nHost: x\r\n\r\n")" '^HTTP/1.1 (400|403)' \
    "an over-long name is refused"
is "$(code api.test:80)" 200 "the gateway still serves after all that"

# a reload drains an open tunnel at the drain deadline (2 s here), as the
# gateway's other TCP tunnels: it was allowed by configuration that is gone
exec 7<>"/dev/tcp/127.0.0.1/$fwd"
printf 'CONNECT api.test:80 HTTP/1.1\r\nHost: api.test:80\r\n\r\n' >&7
IFS= read -r -t 5 status <&7
like "$status" '^HTTP/1.1 200' "a tunnel is open before the reload"
cp "$cfg/10-se.yaml" "$cfg/20-extra.yaml"
sed -i 's/name: api,/name: api2,/; s/name: wild,/name: wild2,/; s/name: by-address,/name: by-address2,/; s/name: hidden,/name: hidden2,/; s/name: no-blocked,/name: no-blocked2,/' "$cfg/20-extra.yaml"
kill -HUP "$MG_MESHGATE_PID"
ok "the reload takes effect" mg_wait_log "$MG_MESHGATE_LOG" "generation 2 active" 5
start=$(date +%s)
timeout 10 cat <&7 >/dev/null
elapsed=$(($(date +%s) - start))
exec 7<&-
ok "the old tunnel is closed at the drain deadline (${elapsed}s)" test "$elapsed" -le 5
is "$(code api.test:80)" 200 "new tunnels are served by the new generation"
rm -f "$cfg/20-extra.yaml"

mg_stop "$MG_MESHGATE_PID"
write_config ALLOW_ANY
ok "gateway restarts under ALLOW_ANY" mg_start_meshgate "$cfg"
mg_wait_port 127.0.0.1 "$fwd" || bail_out "forward proxy port"
body=$(via "127.0.0.1:$u2" /echo)
is "$(mg_json_field "$body" upstream)" wild "ALLOW_ANY: an IP literal on a port no entry lists is dialled"
body=$(via "localhost:$u2" /echo)
is "$(mg_json_field "$body" upstream)" wild "ALLOW_ANY: an unregistered name is resolved by the gateway and dialled"
is "$(code api.test:80)" 200 "ALLOW_ANY: a registered host still goes to its endpoint"
is "$(code blocked.test:80)" 403 "ALLOW_ANY: the AuthorizationPolicy still applies"

# absolute-form requests to hosts no entry names: the gateway resolves the
# name itself and dials the port asked for
body=$(curl -sS --max-time 10 -x "http://127.0.0.1:$fwd" "http://localhost:$u2/echo?x=1")
is "$(mg_json_field "$body" upstream)" wild "ALLOW_ANY: an absolute-form request to an unregistered name is served"
is "$(mg_json_field "$body" path)" "/echo?x=1" "... in origin-form"
body=$(curl -sS --max-time 10 -x "http://127.0.0.1:$fwd" "http://127.0.0.1:$u2/echo")
is "$(mg_json_field "$body" upstream)" wild "ALLOW_ANY: ... and to an IP literal"
# one client connection, requests to different hosts: each goes where it asked
out=$(curl -sS --max-time 10 -x "http://127.0.0.1:$fwd" "http://localhost:$u2/echo" "http://api.test/echo" \
      "http://localhost:$u1/echo")
is "$(grep -o '"upstream": *"[a-z]*"' <<<"$out" | tr -d ' "' | tr '\n' ' ')" "upstream:wild upstream:api upstream:api " \
    "requests on one keep-alive connection each reach their own host"
mg_wait_log "$DP_ACCESS_LOG" "\"authority\":\"localhost:$u2\"" >/dev/null
line=$(grep "\"authority\":\"localhost:$u2\"" "$DP_ACCESS_LOG" | tail -n 1)
like "$line" "\"upstream_host\":\"localhost:$u2\"" "the access log names the host dialled"
# a closed port: 503 after the connect fails
dead=$(mg_free_port)
is "$(fx "http://127.0.0.1:$dead/echo")" 503 "ALLOW_ANY: a destination that refuses the connection gets 503"
# a name no resolver knows: 503 (skipped where the system resolver hangs)
timeout 3 getent hosts nxdomain.invalid >/dev/null 2>&1
if [ $? = 124 ]; then
    skip "the system resolver does not answer here" 2
else
    start=$(date +%s)
    is "$(fx "http://nxdomain.invalid/echo")" 503 "ALLOW_ANY: a name that does not resolve gets 503"
    ok "... without hanging the client" test $(($(date +%s) - start)) -le 9
fi

done_testing
