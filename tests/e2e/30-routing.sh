#!/bin/bash
# 30-routing.sh - VirtualService routing through the real binary: hosts
# (exact, wildcard, case, port ignored, binding by `gateways:`), match on uri
# exact/prefix/regex, headers, method, queryParams, withoutHeaders (first
# match wins), rewrite (+ x-envoy-original-path), authority rewrite,
# directResponse, redirect, header operations, subsets and weights.
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
dp_service "$cfg" backend backend.local "$u1" "$u2"
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
kind: Gateway
metadata: {name: other-gw, namespace: istio-system}
spec:
  selector: {istio: somebody-else}
  servers:
  - port: {number: 1, name: http, protocol: HTTP}
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: backend, namespace: istio-system}
spec:
  host: backend.local
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: app, namespace: istio-system}
spec:
  hosts: ["app.local"]
  gateways: ["istio-system/gw"]
  http:
  - name: exact
    match: [{uri: {exact: /exact}}]
    headers: {response: {set: {x-route: exact}}}
    route: [{destination: {host: two.local}}]
  - name: header
    match: [{uri: {prefix: /api}, headers: {x-version: {exact: v2}}}]
    route: [{destination: {host: two.local}}]
  - name: regex
    match: [{uri: {regex: "/items/[0-9]+"}}]
    route: [{destination: {host: two.local}}]
  - name: method
    match: [{uri: {prefix: /form}, method: {exact: POST}}]
    route: [{destination: {host: two.local}}]
  - name: query
    match: [{uri: {prefix: /q}, queryParams: {debug: {exact: "1"}}}]
    route: [{destination: {host: two.local}}]
  - name: without
    match: [{uri: {prefix: /wo}, withoutHeaders: {x-skip: {}}}]
    route: [{destination: {host: two.local}}]
  - name: rewrite
    match: [{uri: {prefix: /old}}]
    rewrite: {uri: /new, authority: rewritten.local}
    route: [{destination: {host: one.local}}]
  - name: rxrewrite
    match: [{uri: {prefix: /rx/}}]
    rewrite: {uriRegexRewrite: {match: '^/rx/([a-z]+)/(.*)$', rewrite: '/\2/\1'}}
    route: [{destination: {host: one.local}}]
  - name: direct
    match: [{uri: {exact: /direct}}]
    directResponse: {status: 418, body: {string: "short and stout"}}
  - name: redirect
    match: [{uri: {exact: /moved}}]
    redirect: {uri: /new-place, redirectCode: 302}
  - name: hdrops
    match: [{uri: {prefix: /hdr}}]
    headers:
      request: {set: {x-set: "1"}, add: {x-add: a}, remove: [x-remove]}
      response: {set: {x-resp: yes}, remove: [x-upstream]}
    route: [{destination: {host: one.local}}]
  - name: weighted
    match: [{uri: {prefix: /weighted}}]
    route:
    - {destination: {host: backend.local, subset: v1}, weight: 75}
    - {destination: {host: backend.local, subset: v2}, weight: 25}
  - name: subset
    match: [{uri: {prefix: /subset}}]
    route: [{destination: {host: backend.local, subset: v2}}]
  - name: default
    route: [{destination: {host: one.local}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: wild, namespace: istio-system}
spec:
  hosts: ["*.wild.local"]
  gateways: ["gw"]
  http: [{name: wild, route: [{destination: {host: two.local}}]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: unbound, namespace: istio-system}
spec:
  hosts: ["unbound.local"]
  gateways: ["other-gw"]
  http: [{route: [{destination: {host: two.local}}]}]
YAML

ok "gateway starts" mg_start_meshgate "$cfg"
u="http://app.local:$http"
up() { mg_json_field "$(mg_curl "$@")" upstream; }

is "$(up "$u/anything")" v1 "default route"
is "$(up "$u/exact")" v2 "uri exact"
is "$(up "$u/exact/more")" v1 "uri exact does not match a longer path"
like "$(mg_curl -D - -o /dev/null "$u/exact")" '^x-route: exact' "route response header set"
is "$(up -H 'x-version: v2' "$u/api/x")" v2 "prefix + header match"
is "$(up -H 'x-version: v3' "$u/api/x")" v1 "header mismatch falls through"
is "$(up -H 'x-version: v3' -H 'x-version: v2' "$u/api/x")" v2 "a repeated header matches value by value"
is "$(up "$u/items/42")" v2 "uri regex (full match)"
is "$(up "$u/items/42x")" v1 "uri regex is anchored"
is "$(up -X POST -d x "$u/form")" v2 "method match"
is "$(up "$u/form")" v1 "method mismatch falls through"
is "$(up "$u/q?a=b&debug=1")" v2 "queryParams match"
is "$(up "$u/q?debug=2")" v1 "queryParams mismatch"
is "$(up "$u/wo")" v2 "withoutHeaders: header absent matches"
is "$(up -H 'x-skip: 1' "$u/wo")" v1 "withoutHeaders: header present falls through"
is "$(up --path-as-is "$u/a/./b/../../exact")" v2 "dot segments normalized before routing"
is "$(mg_json_field "$(mg_curl --path-as-is "$u/x/../y/%41")" path)" /y/A "the normalized path goes upstream"
is "$(up -H 'Host: APP.LOCAL' "http://127.0.0.1:$http/exact")" v2 "host match is case-insensitive"

body=$(mg_curl "$u/old/thing?x=1")
is "$(mg_json_field "$body" path)" "/new/thing?x=1" "prefix rewrite keeps the rest and the query"
ok "x-envoy-original-path set" mg_json_has_header "$body" x-envoy-original-path /old/thing
ok "authority rewritten" mg_json_has_header "$body" host rewritten.local

is "$(mg_json_field "$(mg_curl "$u/rx/abc/def?z=1")" path)" "/def/abc?z=1" "uriRegexRewrite with backreferences"

out=$(mg_curl -D - "$u/direct")
like "$out" '^HTTP/1.1 418' "directResponse status"
like "$out" 'short and stout$' "directResponse body"
out=$(mg_curl -D - -o /dev/null "$u/moved?k=v")
like "$out" '^HTTP/1.1 302' "redirect code"
like "$out" "^location: http://app.local/new-place\\?k=v" "redirect location"

out=$(mg_curl -D "$MG_TMP/h" -H 'x-remove: gone' -H 'x-set: client' "$u/hdr")
ok "request header set (replaces)" mg_json_has_header "$out" x-set 1
unlike "$out" '"x-set","client"' "client value replaced"
ok "request header added" mg_json_has_header "$out" x-add a
unlike "$out" 'x-remove' "request header removed"
like "$(cat "$MG_TMP/h")" '^x-resp: yes' "response header set"
unlike "$(cat "$MG_TMP/h")" '^x-upstream:' "response header removed"

is "$(up -H 'Host: a.wild.local' "$u/")" v2 "wildcard VirtualService host"
is "$(up -H 'Host: a.b.wild.local' "$u/")" v2 "wildcard covers deeper names"
is "$(mg_http_code -H 'Host: unbound.local' "$u/")" 404 "VirtualService bound to another gateway: 404"
is "$(mg_http_code -H 'Host: nothing.local' "$u/")" 404 "unknown host: 404"

is "$(up "$u/subset")" v2 "subset by endpoint labels"
v1n=0
for ((i = 0; i < 200; i++)); do
    [ "$(up "$u/weighted")" = v1 ] && v1n=$((v1n + 1))
done
ok "weights 75/25 within tolerance ($v1n of 200 to v1)" test "$v1n" -ge 125 -a "$v1n" -le 175

done_testing
