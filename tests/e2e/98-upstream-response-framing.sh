#!/bin/bash
# 98-upstream-response-framing.sh - a misbehaving upstream can never make
# the client see two responses for one request, or another request's
# response: bytes after a Content-Length body, a body on a HEAD or 204
# response, 1xx interim responses, Content-Length with Transfer-Encoding,
# duplicate Content-Length and bad chunks. The upstream here is a small
# Perl server that answers each path with fixed bytes.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/dp_common.sh"

command -v perl >/dev/null || skip_all "perl is not installed"
mg_pki || bail_out "cannot make a PKI"

pf=$MG_TMP/raw.port
perl -MIO::Socket::INET -e '
    $SIG{CHLD} = "IGNORE";
    my %r = (
        "/extra"    => "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nSMUGGLED",
        "/head"     => "HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nSMUGGLED",
        "/204"      => "HTTP/1.1 204 No Content\r\nContent-Length: 8\r\n\r\nSMUGGLED",
        "/304"      => "HTTP/1.1 304 Not Modified\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nSMUGGLED",
        "/interim"  => "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        "/clte"     => "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "/dupcl"    => "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 30\r\n\r\nabc",
        "/badchunk" => "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nSMUGGLED\r\n0\r\n\r\n",
        "/chunkext" => "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\nX-Trailer: 1\r\n\r\n",
        "/normal"   => "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nnormal",
    );
    my $l = IO::Socket::INET->new(LocalAddr => "127.0.0.1", LocalPort => 0, Listen => 64, ReuseAddr => 1) or die;
    open(my $f, ">", $ARGV[0]) or die; print $f $l->sockport, "\n"; close $f;
    while (my $c = $l->accept) {
        next if fork;
        $c->autoflush(1);
        while (defined(my $line = <$c>)) {
            my ($m, $p) = $line =~ /^(\S+) (\S+)/;
            while (defined(my $h = <$c>)) { last if $h eq "\r\n"; }
            $c->print($r{$p} // $r{"/normal"});
        }
        exit 0;
    }' "$pf" >"$MG_TMP/raw.log" 2>&1 &
_mg_track $!
mg_wait_for 5 test -s "$pf" || bail_out "raw upstream did not start"
up=$(cat "$pf")

http=$(mg_free_port)
export MG_ADMIN=127.0.0.1:$(mg_free_port)
cfg=$(mg_tmpdir cfg)
dp_proxy "$cfg" "$MG_ADMIN" JSON
dp_service "$cfg" raw raw.local "$up"
cat >"$cfg/gw.yaml" <<YAML
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers: [{port: {number: $http, name: http, protocol: HTTP}, hosts: ["app.local"]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: app, namespace: istio-system}
spec:
  hosts: ["app.local"]
  gateways: ["gw"]
  http: [{name: main, route: [{destination: {host: raw.local}}]}]
YAML
ok "gateway starts" mg_start_meshgate "$cfg"

# two requests on one keep-alive connection: the first to PATH (METHOD),
# then GET /normal; prints the status lines and bodies the client got
pair() {
    mg_raw "$http" "$1 $2 HTTP/1.1\r\nHost: app.local\r\n\r\nGET /normal HTTP/1.1\r\nHost: app.local\r\nConnection: close\r\n\r\n" 10 |
        tr -d '\r'
}
# every status line in the byte stream (bodies carry no newline at their end)
statuses() { printf '%s\n' "$1" | grep -oE 'HTTP/1\.[01] [0-9]{3}' | awk '{print $2}' | tr '\n' ' '; }

for p in /extra /204 /304; do
    out=$(pair GET $p)
    unlike "$out" SMUGGLED "GET $p: the extra bytes never reach the client"
    like "$out" 'normal$' "GET $p: the next request gets its own response"
done
out=$(pair GET /extra)
is "$(statuses "$out")" "200 200 " "GET /extra: two requests, two responses"
like "$out" '^hello' "GET /extra: the first body is the 5 announced bytes"
out=$(pair HEAD /head)
unlike "$out" SMUGGLED "HEAD with a body from the upstream: the body is not sent"
is "$(statuses "$out")" "200 200 " "HEAD, then GET: two responses"
like "$out" 'normal$' "HEAD, then GET: the GET gets its own response"
out=$(pair GET /interim)
is "$(statuses "$out")" "200 200 " "1xx interim responses are not relayed as answers"
like "$out" '^ok' "the final response after the 1xx reaches the client"
for p in /clte /dupcl; do
    out=$(pair GET $p)
    like "$(statuses "$out")" '^502 ' "GET $p: 502"
    unlike "$out" 'SMUGGLED|abc' "GET $p: nothing of it reaches the client"
done
# the head of a chunked response may already be on its way: the bad chunk
# ends the connection, and no payload of it (nor a second response) follows
out=$(pair GET /badchunk)
like "$(statuses "$out")" '^(502 |200 )?$' "GET /badchunk: at most one status line, then the connection ends"
unlike "$out" 'SMUGGLED|normal' "GET /badchunk: nothing after the bad chunk reaches the client"
out=$(pair GET /chunkext)
like "$out" '^abc' "chunk extensions and trailers: the payload is relayed"
unlike "$out" 'x=y|X-Trailer' "... without the extension or the trailer"
is "$(mg_raw "$http" 'GET /normal HTTP/1.1\r\nHost: app.local\r\nConnection: close\r\n\r\n' 3 | head -n 1 | tr -d '\r')" \
    "HTTP/1.1 200 OK" "the gateway still serves"

done_testing
