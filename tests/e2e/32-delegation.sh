#!/bin/bash
# 32-delegation.sh - VirtualService delegation through the real binary: a
# root (hosts, gateways) hands /productpage/ and /reviews/ to delegates
# without hosts, one in another namespace; the delegate's matches are merged
# with the root's (uri narrowed under the root prefix, the root's header
# condition kept, the delegate's own header added), the root's response
# headers reach a delegate route without its own, a delegate route whose
# match leaves the root's prefix is dropped, a short destination host of a
# delegate names its own namespace, and a missing delegate routes nothing.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/dp_common.sh"

mg_pki || bail_out "cannot make a PKI"
mg_start_upstream --name v1 || bail_out "upstream v1"
u1=$MG_UPSTREAM_PORT
mg_start_upstream --name v2 || bail_out "upstream v2"
u2=$MG_UPSTREAM_PORT
http=$(mg_free_port)
export MG_ADMIN=127.0.0.1:$(mg_free_port)
cfg=$(mg_tmpdir cfg)
dp_proxy "$cfg" "$MG_ADMIN" JSON
dp_service "$cfg" one one.local "$u1"
dp_service "$cfg" two two.local "$u2"
cat >"$cfg/gw.yaml" <<YAML
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: $http, name: http, protocol: HTTP}
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews, namespace: team}
spec:
  hosts: [reviews.team.svc.cluster.local]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {http: $u2}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: root, namespace: istio-system}
spec:
  hosts: ["app.local"]
  gateways: ["istio-system/gw"]
  http:
  - name: pp
    match: [{uri: {prefix: /productpage/}}]
    headers: {response: {set: {x-root: pp}}}
    delegate: {name: productpage}
  - name: rv
    match: [{uri: {prefix: /reviews/}, headers: {x-user: {exact: jason}}}]
    delegate: {name: reviews, namespace: team}
  - name: gone
    match: [{uri: {prefix: /gone/}}]
    delegate: {name: nobody}
  - name: edge
    match: [{uri: {prefix: /edge/}}]
    fault: {abort: {httpStatus: 418, percentage: {value: 100}}}
    corsPolicy: {allowOrigins: [{exact: "https://root.example"}], allowMethods: [GET]}
    delegate: {name: edge}
  - name: default
    route: [{destination: {host: one.local}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: productpage, namespace: istio-system}
spec:
  http:
  - name: v2
    match: [{uri: {prefix: /productpage/v2/}}]
    headers: {response: {set: {x-leaf: v2}}}
    route: [{destination: {host: two.local}}]
  - name: outside
    match: [{uri: {prefix: /other/}}]
    route: [{destination: {host: two.local}}]
  - name: rest
    route: [{destination: {host: one.local}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: edge, namespace: istio-system}
spec:
  http:
  - name: own
    match: [{uri: {prefix: /edge/own/}}]
    fault: {abort: {httpStatus: 429, percentage: {value: 100}}}
    route: [{destination: {host: one.local}}]
  - name: inherit
    route: [{destination: {host: one.local}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: team}
spec:
  http:
  - match: [{headers: {x-canary: {exact: "1"}}}]
    route: [{destination: {host: reviews}}]
YAML

ok "meshgate check accepts the delegates" "$MESHGATE" check -c "$cfg"
out=$("$MESHGATE" check -c "$cfg" 2>&1)
like "$out" 'delegate virtual service istio-system/nobody of istio-system/root not found' \
    "a missing delegate is warned"
like "$out" 'delegate istio-system/productpage http\[1\] conflicts' "a conflicting route is warned"
ok "gateway starts" mg_start_meshgate "$cfg"
u="http://app.local:$http"
up() { mg_json_field "$(mg_curl "$@")" upstream; }

is "$(up "$u/productpage/v2/x")" v2 "delegate route under the root prefix"
out=$(mg_curl -D - -o /dev/null "$u/productpage/v2/x")
like "$out" '^x-leaf: v2' "the delegate route's own response headers"
unlike "$out" '^x-root:' "  replace the root's"
is "$(up "$u/productpage/v1")" v1 "the delegate's catch-all takes the root's prefix"
like "$(mg_curl -D - -o /dev/null "$u/productpage/v1")" '^x-root: pp' \
    "a delegate route without headers takes the root's"
is "$(up "$u/other/x")" v1 "a delegate match outside the root's prefix is dropped"
is "$(up -H 'x-user: jason' -H 'x-canary: 1' "$u/reviews/1")" v2 \
    "cross-namespace delegate: root and delegate conditions both hold"
is "$(up -H 'x-canary: 1' "$u/reviews/1")" v1 "  the root's header condition is kept"
is "$(up -H 'x-user: jason' "$u/reviews/1")" v1 "  the delegate's header condition is kept"
is "$(up "$u/gone/x")" v1 "a missing delegate routes nothing (next route)"
is "$(mg_http_code "$u/edge/x")" 418 "a delegate route without fault takes the root entry's fault (Istio's merge)"
is "$(mg_http_code "$u/edge/own/x")" 429 "... one with its own fault keeps it"
like "$(mg_curl -D - -o /dev/null -X OPTIONS -H 'Origin: https://root.example' \
    -H 'Access-Control-Request-Method: GET' "$u/edge/x")" 'access-control-allow-origin: https://root.example' \
    "... and the root entry's corsPolicy answers the preflight"

done_testing
