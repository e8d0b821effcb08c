#!/bin/bash
# 96-route-match-scope.sh - HTTPMatchRequest gateways, sourceLabels and
# sourceNamespace limit where a match applies (Istio's sourceMatchHTTP):
# a match naming another gateway, or labels/namespace this proxy does not
# have, never matches here. Regression: the three fields were ignored, so
# a route meant for an internal gateway (/admin to the admin backend)
# answered on the public one too.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/dp_common.sh"

mg_pki || bail_out "cannot make a PKI"
mg_start_upstream --name public || bail_out "public upstream"
upub=$MG_UPSTREAM_PORT
mg_start_upstream --name admin || bail_out "admin upstream"
uadm=$MG_UPSTREAM_PORT
pub=$(mg_free_port)
int=$(mg_free_port)
export MG_ADMIN=127.0.0.1:$(mg_free_port)
cfg=$(mg_tmpdir cfg)
dp_proxy "$cfg" "$MG_ADMIN" JSON
dp_service "$cfg" public public.local "$upub"
dp_service "$cfg" admin admin.local "$uadm"
cat >"$cfg/gw.yaml" <<YAML
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: public, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers: [{port: {number: $pub, name: http, protocol: HTTP}, hosts: ["app.local"]}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: internal, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers: [{port: {number: $int, name: http, protocol: HTTP}, hosts: ["app.local"]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: app, namespace: istio-system}
spec:
  hosts: ["app.local"]
  gateways: ["public", "istio-system/internal"]
  http:
  - name: admin-internal
    match: [{uri: {prefix: /admin/}, gateways: [internal]}]
    route: [{destination: {host: admin.local}}]
  - name: admin-mesh
    match: [{uri: {prefix: /mesh/}, gateways: [mesh]}]
    route: [{destination: {host: admin.local}}]
  - name: other-labels
    match: [{uri: {prefix: /lbl/}, sourceLabels: {app: somebody-else}}]
    route: [{destination: {host: admin.local}}]
  - name: other-namespace
    match: [{uri: {prefix: /ns/}, sourceNamespace: other}]
    route: [{destination: {host: admin.local}}]
  - name: own-labels
    match: [{uri: {prefix: /mine/}, sourceLabels: {istio: ingressgateway}, sourceNamespace: istio-system}]
    route: [{destination: {host: admin.local}}]
  - name: either
    match: [{uri: {prefix: /either/}, gateways: [nowhere]}, {uri: {prefix: /either/}, gateways: [istio-system/public]}]
    route: [{destination: {host: admin.local}}]
  - name: default
    route: [{destination: {host: public.local}}]
YAML
ok "gateway starts" mg_start_meshgate "$cfg"

to() { mg_json_field "$(mg_curl "http://app.local:$1$2")" upstream; }
is "$(to "$pub" /admin/x)" public "match for gateway internal does not apply on public"
is "$(to "$int" /admin/x)" admin "... and applies on internal"
is "$(to "$pub" /mesh/x)" public "match for the mesh gateway does not apply on a gateway"
is "$(to "$pub" /lbl/x)" public "sourceLabels this proxy lacks: no match"
is "$(to "$pub" /ns/x)" public "sourceNamespace of another namespace: no match"
is "$(to "$pub" /mine/x)" admin "sourceLabels and sourceNamespace of this proxy: match"
is "$(to "$pub" /either/x)" admin "one of two matches names this gateway (ns/name): match"
is "$(to "$int" /either/x)" public "neither match names internal: no match"

done_testing
