#!/bin/bash
# 14-upstream-proxy-protocol.sh - PROXY protocol toward upstreams
# (DestinationRule trafficPolicy.proxyProtocol, V1 and V2), for backends
# behind a fleet that need the client address: the header goes first on
# each new upstream connection, before TLS (SIMPLE, ISTIO_MUTUAL), and
# names the downstream client (the PROXY protocol client when the gateway
# itself sits behind HAProxy with send-proxy-v2) and the address it
# connected to. HTTP/1.1, HTTP/2, a TCP route and PASSTHROUGH by SNI; a
# subset's setting replaces the rule's; a rule without proxyProtocol sends
# none. A connection that carries one client's header never serves another
# client (Envoy keys its pools so), while connections without a header stay
# shared.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/dp_common.sh"

mg_pki || bail_out "cannot make a PKI"
P=$MG_PKI
# one plain upstream (HTTP/1.1 and h2c) and one TLS upstream, both reading
# an optional PROXY header and echoing it
mg_start_upstream --name plain --h2 --expect-proxy || bail_out "plain upstream"
up=$MG_UPSTREAM_PORT
mg_start_upstream --name tls --h2 --expect-proxy --tls-cert "$P/server.crt" --tls-key "$P/server.key" ||
    bail_out "TLS upstream"
ut=$MG_UPSTREAM_PORT
# a mesh workload (spiffe://cluster.local/ns/default/sa/httpbin), mTLS required
mg_start_upstream --name mesh --expect-proxy --tls-cert "$P/httpbin/cert-chain.pem" \
    --tls-key "$P/httpbin/key.pem" --client-ca "$P/root-cert.pem" || bail_out "mesh upstream"
um=$MG_UPSTREAM_PORT
http=$(mg_free_port)
behind=$(mg_free_port)
tcp=$(mg_free_port)
pt=$(mg_free_port)
lb=$(mg_free_port)
export MG_ADMIN=127.0.0.1:$(mg_free_port)
cfg=$(mg_tmpdir cfg)
dp_proxy "$cfg" "$MG_ADMIN" JSON
# one worker: two downstream connections meet the same upstream pool, so
# "never shared" is a property of the pool, not of the worker they landed on
sed -i 's/^  workers: 2/  workers: 1/' "$cfg/00-proxy.yaml"
sed -i "/^  workers: 1/a\\  proxyProtocol: {ports: [$behind], trustedSources: [\"127.0.0.1/32\"]}" \
    "$cfg/00-proxy.yaml"
sed -i "/^  workers: 1/a\\  identity: {certificateChain: $P/gateway/cert-chain.pem, privateKey: $P/gateway/key.pem, rootCertificates: $P/root-cert.pem}" \
    "$cfg/00-proxy.yaml"
grep -q '^  proxyProtocol: ' "$cfg/00-proxy.yaml" && grep -q '^  identity: ' "$cfg/00-proxy.yaml" ||
    bail_out "could not write the Proxy document"

se() {  # NAME PROTOCOL PORT
    cat <<YAML
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: $1, namespace: istio-system}
spec:
  hosts: ["$1.local"]
  ports: [{number: 80, name: p, protocol: $2}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {p: $3}, labels: {version: v1}}]
YAML
}
dr() {  # NAME TRAFFIC_POLICY [SUBSETS]
    cat <<YAML
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: $1, namespace: istio-system}
spec:
  host: $1.local
  trafficPolicy: $2
YAML
    [ -z "${3:-}" ] || echo "  subsets: $3"
}
{
    se v1 HTTP "$up"
    dr v1 "{proxyProtocol: {}}" "[{name: two, labels: {version: v1}, trafficPolicy: {proxyProtocol: {version: V2}}}]"
    se v2 HTTP "$up"
    dr v2 "{proxyProtocol: {version: V2}}"
    se none HTTP "$up"
    se h2 HTTP2 "$up"
    dr h2 "{proxyProtocol: {version: V2}}"
    se tls HTTP "$ut"
    dr tls "{tls: {mode: SIMPLE, caCertificates: $P/root-cert.pem, sni: localhost}, proxyProtocol: {version: V1}}"
    se tls2 HTTP2 "$ut"
    dr tls2 "{tls: {mode: SIMPLE, caCertificates: $P/root-cert.pem, sni: localhost}, proxyProtocol: {version: V2}}"
    se tcp TCP "$up"
    dr tcp "{proxyProtocol: {version: V2}}"
    se lim HTTP "$up"
    dr lim "{proxyProtocol: {version: V2}, connectionPool: {tcp: {maxConnections: 1}}}"
    se lim2 HTTP2 "$up"
    dr lim2 "{proxyProtocol: {version: V2}, connectionPool: {tcp: {maxConnections: 1}}}"
    cat <<YAML
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: mesh, namespace: istio-system}
spec:
  hosts: ["mesh.local"]
  ports: [{number: 80, name: p, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {p: $um}}]
YAML
    dr mesh "{tls: {mode: ISTIO_MUTUAL}, proxyProtocol: {version: V2}}"
    se pt TLS "$ut"
    dr pt "{proxyProtocol: {version: V1}}"
    # a DNS endpoint: PASSTHROUGH resolves it before the splice connects
    cat <<YAML
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ptdns, namespace: istio-system}
spec:
  hosts: ["ptdns.local"]
  ports: [{number: 80, name: p, protocol: TLS}]
  resolution: DNS
  endpoints: [{address: localhost, ports: {p: $ut}}]
YAML
    dr ptdns "{proxyProtocol: {version: V2}}"
} >"$cfg/services.yaml"
{
    cat <<YAML
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: $http, name: http, protocol: HTTP}
    hosts: ["*"]
  - port: {number: $behind, name: behind, protocol: HTTP}
    hosts: ["*"]
  - port: {number: $tcp, name: tcp, protocol: TCP}
    hosts: ["*"]
  - port: {number: $pt, name: tls, protocol: TLS}
    hosts: ["*.example.com"]
    tls: {mode: PASSTHROUGH}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: pt, namespace: istio-system}
spec:
  hosts: ["*.example.com"]
  gateways: ["gw"]
  tls:
  - match: [{sniHosts: ["pt.example.com"]}]
    route: [{destination: {host: pt.local, port: {number: 80}}}]
  - match: [{sniHosts: ["dns.example.com"]}]
    route: [{destination: {host: ptdns.local, port: {number: 80}}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: tcp, namespace: istio-system}
spec:
  hosts: ["*"]
  gateways: ["gw"]
  tcp:
  - match: [{port: $tcp}]
    route: [{destination: {host: tcp.local, port: {number: 80}}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: app, namespace: istio-system}
spec:
  hosts: ["*"]
  gateways: ["gw"]
  http:
  - {match: [{uri: {prefix: /sub/}}], route: [{destination: {host: v1.local, subset: two}}]}
YAML
    for h in v1 v2 none h2 tls tls2 lim lim2 mesh; do
        echo "  - {match: [{uri: {prefix: /$h/}}], route: [{destination: {host: $h.local}}]}"
    done
} >"$cfg/gw.yaml"

ok "meshgate check accepts trafficPolicy.proxyProtocol" "$MESHGATE" check -c "$cfg"
bad=$(mg_tmpdir bad)
cp "$cfg"/*.yaml "$bad/"
dr v2 "{proxyProtocol: {version: V3}}" >"$bad/v3.yaml"
out=$("$MESHGATE" check -c "$bad" 2>&1)
like "$out" 'v3.yaml:[0-9]+:[0-9]+: .*V3' "an unknown version is refused with its place"
dr v2 "{portLevelSettings: [{port: {number: 80}, proxyProtocol: {}}]}" >"$bad/v3.yaml"
out=$("$MESHGATE" check -c "$bad" 2>&1)
like "$out" 'v3.yaml:[0-9]+:[0-9]+: .*proxyProtocol' "... and so is proxyProtocol in portLevelSettings (Istio has none there)"
ex=$("$MESHGATE" check -c "$cfg" --explain-destination tls.local:80 2>&1)
like "$ex" 'PROXY protocol: v1 header first on each connection, before TLS' \
    "check --explain-destination names the header"
ex=$("$MESHGATE" check -c "$cfg" --explain-destination v1.local:80 --subset two 2>&1)
like "$ex" 'PROXY protocol: v2' "... the subset's version"
ex=$("$MESHGATE" check -c "$cfg" --explain-destination none.local:80 2>&1)
unlike "$ex" 'PROXY protocol' "... and none without the setting"
ok "gateway starts" mg_start_meshgate "$cfg"

# get CLIENT_IP PATH [CURL ARGS]: one request from CLIENT_IP to the plain port
get() { local ip=$1 path=$2; shift 2; mg_curl --interface "$ip" "$@" "http://127.0.0.1:$http$path"; }

body=$(get 127.0.0.2 /v1/a)
is "$(mg_json_field "$body" proxy)" v1 "proxyProtocol: {} sends V1 (Istio's default)"
like "$(mg_json_field "$body" proxy_source)" '^127\.0\.0\.2:[0-9]+$' "... the downstream client as the source"
is "$(mg_json_field "$body" proxy_destination)" "127.0.0.1:$http" "... the address it connected to as the destination"
is "$(mg_json_field "$body" path)" /v1/a "... and the request behind it"

body=$(get 127.0.0.2 /v2/a)
is "$(mg_json_field "$body" proxy)" v2 "version: V2 sends the binary header"
like "$(mg_json_field "$body" proxy_source)" '^127\.0\.0\.2:[0-9]+$' "... with the client as the source"
is "$(mg_json_field "$body" proxy_destination)" "127.0.0.1:$http" "... and the gateway port as the destination"

body=$(get 127.0.0.2 /sub/a)
is "$(mg_json_field "$body" proxy)" v2 "a subset's proxyProtocol replaces the rule's"

body=$(get 127.0.0.2 /none/a)
is "$(mg_json_field "$body" proxy)" null "a DestinationRule without proxyProtocol sends none"

body=$(get 127.0.0.2 /tls/a)
is "$(mg_json_field "$body" proxy)" v1 "TLS upstream: the header comes before the ClientHello"
like "$(mg_json_field "$body" proxy_source)" '^127\.0\.0\.2:' "... carrying the client"
is "$(mg_json_field "$body" sni)" localhost "... and the handshake behind it succeeds (SNI localhost)"

body=$(get 127.0.0.2 /mesh/a)
is "$(mg_json_field "$body" proxy)" v2 "ISTIO_MUTUAL upstream: the header comes before the mesh handshake"
is "$(mg_json_field "$body" client_uri_san)" spiffe://cluster.local/ns/istio-system/sa/ingressgateway \
    "... which presents the gateway's identity behind it"
like "$(mg_json_field "$body" proxy_source)" '^127\.0\.0\.2:' "... carrying the client"

body=$(get 127.0.0.2 /h2/a)
is "$(mg_json_field "$body" version)" HTTP/2 "HTTP/2 upstream (h2c)"
is "$(mg_json_field "$body" proxy)" v2 "... its connection starts with the header"
like "$(mg_json_field "$body" proxy_source)" '^127\.0\.0\.2:' "... carrying the client"

body=$(get 127.0.0.2 /tls2/a)
is "$(mg_json_field "$body" version)" HTTP/2 "HTTP/2 over TLS (ALPN h2)"
is "$(mg_json_field "$body" proxy)" v2 "... with the header before the ClientHello"

body=$(mg_curl --interface 127.0.0.2 "http://127.0.0.1:$tcp/echo")
is "$(mg_json_field "$body" proxy)" v2 "TCP route: the splice sends the header first"
like "$(mg_json_field "$body" proxy_source)" '^127\.0\.0\.2:' "... carrying the client"
is "$(mg_json_field "$body" proxy_destination)" "127.0.0.1:$tcp" "... and the TCP port it connected to"
big=$(mg_curl --interface 127.0.0.2 "http://127.0.0.1:$tcp/bytes/300000" | wc -c)
is "$big" 300000 "... and the bytes behind it move intact (kernel splice path)"

C=(--http1.1 --cacert "$P/root-cert.pem" --interface 127.0.0.2)
body=$(mg_curl "${C[@]}" "https://pt.example.com:$pt/echo")
is "$(mg_json_field "$body" proxy)" v1 "PASSTHROUGH: the header goes before the client's ClientHello"
is "$(mg_json_field "$body" sni)" pt.example.com "... and the client's own TLS session follows it"
like "$(mg_json_field "$body" proxy_source)" '^127\.0\.0\.2:' "... carrying the client"
body=$(mg_curl "${C[@]}" "https://dns.example.com:$pt/echo")
is "$(mg_json_field "$body" proxy)" v2 "PASSTHROUGH to a DNS endpoint (resolved, then spliced) too"

# ---- the gateway behind HAProxy (send-proxy-v2): the header's client goes on
if command -v haproxy >/dev/null; then
    cat >"$cfg/../haproxy.cfg" <<HA
global
  maxconn 200
defaults
  mode tcp
  timeout connect 5s
  timeout client 30s
  timeout server 30s
frontend fe
  bind 127.0.0.1:$lb
  default_backend gw
backend gw
  server mg 127.0.0.1:$behind send-proxy-v2
HA
    haproxy -f "$cfg/../haproxy.cfg" -db >"$cfg/../haproxy.log" 2>&1 &
    _mg_track $!
    mg_wait_port 127.0.0.1 "$lb" || bail_out "haproxy did not start"
    body=$(mg_curl --interface 127.0.0.3 "http://127.0.0.1:$lb/v1/a")
    like "$(mg_json_field "$body" proxy_source)" '^127\.0\.0\.3:[0-9]+$' \
        "behind HAProxy send-proxy-v2: the upstream header names the client HAProxy saw"
    is "$(mg_json_field "$body" proxy_destination)" "127.0.0.1:$lb" \
        "... and the address the client connected to (HAProxy's frontend)"
    body=$(mg_curl --interface 127.0.0.3 "http://127.0.0.1:$lb/tls/a")
    like "$(mg_json_field "$body" proxy_source)" '^127\.0\.0\.3:' "... to a TLS upstream too"
else
    skip "haproxy not installed (contrib/install-deps.sh test)" 3
fi

# ---- pooling: one client's connection never carries another client's requests
# remote = the gateway's side of the upstream connection (one per connection)
two=$(mg_curl --interface 127.0.0.2 "http://127.0.0.1:$http/v1/a" "http://127.0.0.1:$http/v1/b")
r1=$(printf '%s' "$two" | head -n 1)
r2=$(printf '%s' "$two" | tail -n 1)
is "$(mg_json_field "$r2" remote)" "$(mg_json_field "$r1" remote)" \
    "keep-alive: one client's requests share its upstream connection"
is "$(mg_json_field "$r2" connection_request)" 2 "... as its second request"
a=$(get 127.0.0.2 /v1/a)
b=$(get 127.0.0.4 /v1/a)
isnt "$(mg_json_field "$b" remote)" "$(mg_json_field "$a" remote)" \
    "another client gets another upstream connection (the idle one carries the first client's header)"
like "$(mg_json_field "$b" proxy_source)" '^127\.0\.0\.4:' "... with its own header"
a=$(get 127.0.0.2 /h2/a)
b=$(get 127.0.0.4 /h2/a)
isnt "$(mg_json_field "$b" remote)" "$(mg_json_field "$a" remote)" "HTTP/2: no multiplexing across clients"
like "$(mg_json_field "$b" proxy_source)" '^127\.0\.0\.4:' "... each connection carries its own client"
a=$(get 127.0.0.2 /none/a)
b=$(get 127.0.0.4 /none/a)
is "$(mg_json_field "$b" remote)" "$(mg_json_field "$a" remote)" \
    "without proxyProtocol the idle connection serves the next client (the pool check above is real)"

# at maxConnections the idle connection of another client gives its slot up
# (it could never serve this one: waiting for it would wait forever)
a=$(get 127.0.0.2 /lim/a)
b=$(get 127.0.0.4 /lim/a)
like "$(mg_json_field "$b" proxy_source)" '^127\.0\.0\.4:' \
    "maxConnections 1: a second client is served on a new connection with its header"
isnt "$(mg_json_field "$b" remote)" "$(mg_json_field "$a" remote)" "... not on the first client's"
a=$(get 127.0.0.2 /lim2/a)
b=$(get 127.0.0.4 /lim2/a)
like "$(mg_json_field "$b" proxy_source)" '^127\.0\.0\.4:' "... and so over HTTP/2"

# many clients in turn: the idle connections kept per client stay bounded
# (each new curl is a new client port, so a new key; only v2.local's pool grows)
upconns() { ss -Htn state established "( dport = :$up )" 2>/dev/null | wc -l; }
before=$(upconns)
for i in $(seq 1 40); do get 127.0.0.2 /v2/a >/dev/null; done
grown=$(($(upconns) - before))
ok "idle per-client connections are bounded: 40 clients left $grown more (at most 32 per worker)" \
    test "$grown" -le 32 -a "$grown" -ge 16

ok "gateway still serving" test "$(mg_http_code "http://127.0.0.1:$http/v1/a")" = 200
done_testing
