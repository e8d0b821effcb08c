#!/bin/bash
# 74-egress-dns-cache.sh - the workers' DNS answer cache, against a DNS
# server the test runs on loopback (named to the gateway through
# MESHGATE_RESOLV_CONF) that answers A queries from a file with a chosen TTL
# and logs every query: two CONNECTs within the TTL cost one query; after
# the TTL a new query is made and a changed answer is used; a missing name
# is asked once for a few seconds; a cached answer inside
# denyResolvedCidrs is refused every time, not only the first; the
# upstream pool (absolute-form requests) resolves through the same cache,
# and the forward proxy's dynamic cluster keeps a connection per authority
# and address, checked against denyResolvedCidrs on every reuse.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"

command -v perl >/dev/null && perl -MIO::Socket::INET -e1 2>/dev/null ||
    skip_all "perl with IO::Socket::INET is needed for the DNS stand-in"
mg_pki || bail_out "cannot make a PKI"
mg_start_upstream --name first --h2 || bail_out "upstream"
u1=$MG_UPSTREAM_PORT
mg_start_upstream --name second --h2 --listen "127.0.0.2:$u1" || bail_out "upstream on 127.0.0.2"
fwd=$(mg_free_port)
dnsport=$(mg_free_port)
export MG_ADMIN=127.0.0.1:$(mg_free_port)
cfg=$(mg_tmpdir cfg)
answers=$MG_TMP/answers     # NAME IP TTL, read on every query
queries=$MG_TMP/queries     # one line per query: TYPE NAME
: >"$queries"
cat >"$answers" <<EOT
cache.dns.test 127.0.0.1 2
rebind.dns.test 127.0.0.3 60
web.dns.test 127.0.0.1 60
a.ka.dns.test 127.0.0.1 1
b.ka.dns.test 127.0.0.1 60
EOT

# The DNS stand-in: A answers from $answers, NXDOMAIN for other names, an
# empty NOERROR answer to other query types of a known name.
cat >"$MG_TMP/dns.pl" <<'PERL'
use strict; use warnings; use IO::Socket::INET;
my ($port, $answers, $queries) = @ARGV;
my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $port, Proto => 'udp')
    or die "bind: $!";
$| = 1;
while (1) {
    my $pkt; $s->recv($pkt, 1500) or next;
    next if length($pkt) < 17;
    my $off = 12; my @labels;
    while ($off < length($pkt)) {
        my $l = ord(substr($pkt, $off, 1)); $off++;
        last if $l == 0;
        push @labels, substr($pkt, $off, $l); $off += $l;
    }
    my ($qtype) = unpack('n', substr($pkt, $off, 2));
    my $q = substr($pkt, 12, $off + 4 - 12);
    my $name = lc join('.', @labels);
    open(my $ql, '>>', $queries); print $ql (($qtype == 1 ? 'A' : "T$qtype") . " $name\n"); close $ql;
    my %a;
    if (open(my $af, '<', $answers)) {
        while (<$af>) { my @f = split; $a{lc $f[0]} = [$f[1], $f[2]] if @f == 3; }
        close $af;
    }
    my $id = substr($pkt, 0, 2);
    if (!$a{$name}) {
        $s->send($id . pack('nnnnn', 0x8183, 1, 0, 0, 0) . $q);
    } elsif ($qtype != 1) {
        $s->send($id . pack('nnnnn', 0x8180, 1, 0, 0, 0) . $q);
    } else {
        my ($ip, $ttl) = @{$a{$name}};
        my $rr = pack('nnnNn', 0xC00C, 1, 1, $ttl, 4) . pack('C4', split(/\./, $ip));
        $s->send($id . pack('nnnnn', 0x8180, 1, 1, 0, 0) . $q . $rr);
    }
}
PERL
perl "$MG_TMP/dns.pl" "$dnsport" "$answers" "$queries" 2>"$MG_TMP/dns.err" &
_mg_track $!
printf 'nameserver 127.0.0.1:%s\noptions ndots:1 attempts:1 timeout:2\n' "$dnsport" >"$MG_TMP/resolv.conf"

cat >"$cfg/00-proxy.yaml" <<YAML
apiVersion: meshgate.io/v1alpha1
kind: Proxy
metadata: {name: egw, namespace: istio-system}
spec:
  bindAddress: 127.0.0.1
  admin: $MG_ADMIN
  workers: 1
  outbound: {bind: 127.0.0.1:$fwd}
  egress: {denyResolvedCidrs: ["127.0.0.3/32"]}
  timeouts: {handshake: 5s, requestHeaders: 5s, idle: 5s, drain: 1s}
---
apiVersion: meshgate.io/v1alpha1
kind: MeshConfig
spec:
  outboundTrafficPolicy: {mode: REGISTRY_ONLY}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: dns, namespace: istio-system}
spec:
  hosts: ["cache.dns.test", "rebind.dns.test", "missing.dns.test"]
  location: MESH_EXTERNAL
  ports: [{number: $u1, name: tcp, protocol: TCP}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: http, namespace: istio-system}
spec:
  hosts: ["web.dns.test", "gone.dns.test"]
  location: MESH_EXTERNAL
  ports: [{number: $u1, name: http, protocol: HTTP}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: wild, namespace: istio-system}
spec:
  hosts: ["*.ka.dns.test"]
  location: MESH_EXTERNAL
  ports: [{number: $u1, name: http, protocol: HTTP}]
  resolution: NONE
YAML

MESHGATE_RESOLV_CONF=$MG_TMP/resolv.conf
export MESHGATE_RESOLV_CONF
ok "gateway starts" mg_start_meshgate "$cfg"
mg_wait_port 127.0.0.1 "$fwd" || bail_out "forward proxy port"

via() {     # the upstream that answered a request tunnelled to NAME
    mg_json_field "$(curl -sS --max-time 10 -p -x "http://127.0.0.1:$fwd" "http://$1:$u1/echo")" upstream
}
code() {
    curl -s -o /dev/null --max-time 10 -w '%{http_connect}' -p -x "http://127.0.0.1:$fwd" "http://$1:$u1/echo"
}
asked() { grep -cx "A $1" "$queries"; }

is "$(via cache.dns.test)" first "a name is dialled at the address the DNS server answered"
is "$(via cache.dns.test)" first "... again"
is "$(asked cache.dns.test)" 1 "two CONNECTs within the TTL cost one query"
sleep 2.3
# the answer changes; the cached one (TTL 2 s) has just expired
sed -i 's/^cache.dns.test .*/cache.dns.test 127.0.0.2 2/' "$answers"
is "$(via cache.dns.test)" second "after the TTL a changed answer is used"
is "$(asked cache.dns.test)" 2 "... from a new query"
sed -i 's/^cache.dns.test .*/cache.dns.test 127.0.0.1 2/' "$answers"
is "$(via cache.dns.test)" second "within the new TTL the cached answer still holds"
is "$(asked cache.dns.test)" 2 "... without a query"

is "$(code missing.dns.test)" 503 "a missing name gets 503"
is "$(code missing.dns.test)" 503 "... again"
is "$(asked missing.dns.test)" 1 "the missing name is asked once (negative answers are cached)"

is "$(code rebind.dns.test)" 403 "a name resolving into denyResolvedCidrs is refused"
is "$(code rebind.dns.test)" 403 "... also from the cache"
is "$(asked rebind.dns.test)" 1 "... which answered the second time"
is "$(mg_metric meshgate_egress_refused_total 'reason="resolved_denied"')" 2 "both refusals are counted"

# absolute-form requests go through the upstream pool's resolution: the
# same cache (a failed name is not pooled, so each request resolves)
fx() {
    curl -s -o /dev/null --max-time 10 -w '%{http_code}' -x "http://127.0.0.1:$fwd" "http://$1:$u1/echo"
}
is "$(fx web.dns.test)" 200 "absolute-form: a resolved name is served"
is "$(fx gone.dns.test)" 503 "absolute-form: a missing name gets 503"
is "$(fx gone.dns.test)" 503 "... again"
is "$(asked gone.dns.test)" 1 "... asked once"

# the dynamic cluster (a wildcard entry's hosts) keeps its connections per
# authority and address: mg_upstream reports the gateway's side of the
# connection ("remote") and how many requests it has carried
dyn() {     # the upstream's view of an absolute-form request: NAME remote connection_request
    local b
    b=$(curl -sS --max-time 10 -x "http://127.0.0.1:$fwd" "http://$1:$u1/echo")
    echo "$(mg_json_field "$b" upstream) $(mg_json_field "$b" remote) $(mg_json_field "$b" connection_request)"
}
set -- $(dyn a.ka.dns.test)
is "$1 $3" "first 1" "dynamic cluster: a first request opens a connection"
a_remote=$2
set -- $(dyn a.ka.dns.test)
is "$2 $3" "$a_remote 2" "a second request to the same host reuses it"
set -- $(dyn b.ka.dns.test)
is "$1 $3" "first 1" "another host at the same address gets its own connection"
isnt "$2" "$a_remote" "... never the first host's"
b_remote=$2
set -- $(dyn b.ka.dns.test)
is "$2 $3" "$b_remote 2" "... which it reuses in turn"
# a.ka's answer (TTL 1 s) now points into denyResolvedCidrs: its idle
# connection is not lent, the request is refused on the fresh answer
sed -i 's/^a.ka.dns.test .*/a.ka.dns.test 127.0.0.3 1/' "$answers"
sleep 1.3
is "$(fx a.ka.dns.test)" 403 "a kept host whose answer moved into denyResolvedCidrs: refused, not served on the kept connection"
sed -i 's/^a.ka.dns.test .*/a.ka.dns.test 127.0.0.2 60/' "$answers"
sleep 1.3
set -- $(dyn a.ka.dns.test)
is "$1 $3" "second 1" "its answer moved elsewhere: dialled there on a new connection"

done_testing
