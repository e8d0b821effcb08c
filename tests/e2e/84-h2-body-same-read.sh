#!/bin/bash
# 84-h2-body-same-read.sh - an HTTP/2 request body reaches the upstream
# whole, however its HEADERS, DATA and END_STREAM frames are cut into reads:
# all in one write, HEADERS then the rest, one write per frame, one write
# per byte; without content-length (as gRPC clients send), with one, with
# trailers, with empty DATA frames; towards an HTTP/1.1 and an HTTP/2
# (h2c) upstream.
# Regression: a stream whose END_STREAM had already arrived when its
# header block was turned into a request (same read, no content-length)
# was taken for a request without a body; the buffered DATA never went
# upstream (a 1000-byte POST arrived as 0 bytes).
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/dp_common.sh"

FLOOD=${MG_H2FLOOD_BIN:-$MG_BUILDDIR/tests/helpers/mg_h2flood}
[ -x "$FLOOD" ] || bail_out "no $FLOOD (make check builds it)"

mg_pki || bail_out "cannot make a PKI"
mg_start_upstream --name h1 || bail_out "HTTP/1.1 upstream"
u1=$MG_UPSTREAM_PORT
mg_start_upstream --name h2c --h2 || bail_out "h2c upstream"
u2=$MG_UPSTREAM_PORT
https=$(mg_free_port)
export MG_ADMIN=127.0.0.1:$(mg_free_port)
cfg=$(mg_tmpdir cfg)
dp_proxy "$cfg" "$MG_ADMIN" JSON
cat >"$cfg/gw.yaml" <<YAML
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: h1, namespace: istio-system}
spec:
  hosts: ["h1.local"]
  ports: [{number: 80, name: p, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {p: $u1}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: h2c, namespace: istio-system}
spec:
  hosts: ["h2c.local"]
  ports: [{number: 80, name: p, protocol: HTTP2}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {p: $u2}}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: $https, name: https, protocol: HTTPS}
    hosts: ["app.example.com"]
    tls: {mode: SIMPLE, credentialName: app-cert}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: app, namespace: istio-system}
spec:
  hosts: ["app.example.com"]
  gateways: ["gw"]
  http:
  - {name: h1, match: [{uri: {prefix: /h1/}}], route: [{destination: {host: h1.local}}]}
  - {name: h2, match: [{uri: {prefix: /h2/}}], route: [{destination: {host: h2c.local}}]}
YAML
ok "gateway starts" mg_start_meshgate "$cfg" || bail_out "no gateway"

# body UP SPLIT SPEC EXPECTED_LENGTH: the request, its status and the body
# length the upstream saw
body() {
    local out
    out=$("$FLOOD" --port "$https" body "$2" "/$1/echo" "$3" 2>&1)
    is "$(printf '%s\n' "$out" | grep -E '^(status|reset|none)' | tr '\n' ' ')$(printf '%s\n' "$out" | sed -n 's/^body_length //p')" \
        "status 200 $4" "$1 upstream, $2, $3: the upstream got $4 bytes"
}

for up in h1 h2; do
    for split in one two last frames bytes; do
        body $up $split h,D1000 1000               # the gRPC way: no content-length
        body $up $split h,d600,d400,D0 1000        # an empty DATA frame ends it
        body $up $split h,d1000,T 1000             # trailers end it
    done
    for split in one two; do
        body $up $split H 0                        # no body at all
        body $up $split h,D0 0                     # an empty body ended by DATA
        body $up $split h,d0,d16384,d16384,D300 33068
        body $up $split l1000,D1000 1000           # with content-length
        body $up $split l0,D0 0
    done
done

# nothing was left pending on either upstream
like "$("$FLOOD" --port "$https" body one /h1/echo l5,D5 2>&1)" 'body_length 5' "h1 upstream still serves"
like "$("$FLOOD" --port "$https" body one /h2/echo l5,D5 2>&1)" 'body_length 5' "h2 upstream still serves"

done_testing
