#!/bin/bash
# 82-passthrough-sni-list.sh - a PASSTHROUGH server routes on the SNI only
# when the ClientHello's server_name is what TLS servers accept: exactly
# one host_name entry, one server_name extension, no NUL, as BoringSSL
# (Envoy's tls_inspector) requires. Anything else is closed before any
# upstream is connected.
# Regression: the SNI reader took the first host_name of the list, so
# "app.example.com" followed by "admin.internal" in the same extension (or
# a second server_name extension) was routed as app.example.com while a
# backend that reads another entry saw a name the gateway never checked.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/dp_common.sh"

command -v perl >/dev/null || skip_all "perl is not installed"
mg_pki || bail_out "cannot make a PKI"
sink=$(mg_free_port)
port=$(mg_free_port)
export MG_ADMIN=127.0.0.1:$(mg_free_port)
cfg=$(mg_tmpdir cfg)
got=$MG_TMP/sink.log
: >"$got"

# the upstream: a TCP sink that logs how many bytes each connection sent first
perl -MIO::Socket::INET -e '
    my $s = IO::Socket::INET->new(LocalAddr => "127.0.0.1", LocalPort => $ARGV[0],
                                  Listen => 16, ReuseAddr => 1) or die "listen: $!";
    while (my $c = $s->accept) {
        my $b = ""; $c->recv($b, 65536);
        open(my $f, ">>", $ARGV[1]); print $f "conn " . length($b) . "\n"; close $f; close $c;
    }' "$sink" "$got" &
_mg_track $!
mg_wait_port 127.0.0.1 "$sink" || bail_out "sink"

dp_proxy "$cfg" "$MG_ADMIN" JSON
cat >"$cfg/gw.yaml" <<YAML
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: sink, namespace: istio-system}
spec:
  hosts: ["sink.internal"]
  ports: [{number: 443, name: tls, protocol: TLS}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {tls: $sink}}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: $port, name: tls, protocol: TLS}
    hosts: ["app.example.com"]
    tls: {mode: PASSTHROUGH}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: pt, namespace: istio-system}
spec:
  hosts: ["app.example.com"]
  gateways: ["gw"]
  tls:
  - match: [{sniHosts: ["app.example.com"]}]
    route: [{destination: {host: sink.internal, port: {number: 443}}}]
YAML
ok "gateway starts" mg_start_meshgate "$cfg"

# hello SPEC: send a ClientHello whose server_name extensions are SPEC
# ("type:name,type:name;..." - ';' separates extensions, ',' list entries;
# \0 in a name is a NUL byte) and wait for the gateway to close
hello() {
    perl -MIO::Socket::INET -e '
        my @ext;
        for my $e (split /;/, $ARGV[1]) {
            my $list = join "", map { my ($t, $n) = split /:/, $_, 2; $n =~ s/\\0/\0/g;
                                       pack("Cn/a*", $t, $n) } split /,/, $e;
            push @ext, pack("nn/a*", 0, pack("n/a*", $list));
        }
        my $body = pack("n", 0x0303) . ("\x01" x 32) . pack("C", 0) . pack("n/a*", pack("n", 0x1301)) .
                   pack("C/a*", "\x00") . pack("n/a*", join("", @ext));
        my $hs = pack("C", 1) . substr(pack("N", length $body), 1) . $body;
        my $c = IO::Socket::INET->new(PeerAddr => "127.0.0.1", PeerPort => $ARGV[0]) or die "connect: $!";
        print $c pack("Cnn", 0x16, 0x0301, length $hs) . $hs;
        $c->shutdown(1);
        my $b; my $end = time + 3;
        while (time < $end) { last unless defined $c->recv($b, 4096) && length $b; }' "$port" "$1"
}
reached() {  # did the sink get a new connection since the last call? (state in a file: runs in $( ))
    local n seen
    sleep 0.3
    n=$(grep -cv '^conn 0$' "$got")    # mg_wait_port's probe sent nothing
    seen=$(cat "$MG_TMP/seen" 2>/dev/null || echo 0)
    echo "$n" >"$MG_TMP/seen"
    if [ "$n" -gt "$seen" ]; then echo yes; else echo no; fi
}

hello '0:app.example.com'
is "$(reached)" yes "one host_name app.example.com: routed to the upstream"
hello '0:app.example.com,0:admin.internal'
is "$(reached)" no "two host_name entries (app.example.com first): closed"
hello '0:admin.internal,0:app.example.com'
is "$(reached)" no "two host_name entries (app.example.com second): closed"
hello '0:app.example.com;0:admin.internal'
is "$(reached)" no "two server_name extensions: closed"
hello '1:junk,0:app.example.com'
is "$(reached)" no "a non-host_name entry first: closed"
hello '0:app.example.com\0.evil'
is "$(reached)" no "a NUL inside the name: closed"
hello '0:app.example.com.'
is "$(reached)" no "a trailing dot is another name (no route): closed"
hello '0:APP.Example.COM'
is "$(reached)" yes "case does not matter: routed"

done_testing
