#!/bin/bash
# 67-endpoint-weights.sh - endpoint weights (ServiceEntry endpoints[].weight
# and WorkloadEntry weight) share the load balancer's choices: ROUND_ROBIN
# is a smooth weighted round robin (3:1 exactly per worker), RANDOM and
# LEAST_REQUEST draw by weight; equal weights keep the plain balancers.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/dp_common.sh"

mg_pki || bail_out "cannot make a PKI"
mg_start_upstream --name heavy || bail_out "upstream heavy"
uh=$MG_UPSTREAM_PORT
mg_start_upstream --name light || bail_out "upstream light"
ul=$MG_UPSTREAM_PORT
http=$(mg_free_port)
export MG_ADMIN=127.0.0.1:$(mg_free_port)
cfg=$(mg_tmpdir cfg)
dp_proxy "$cfg" "$MG_ADMIN" JSON
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
kind: VirtualService
metadata: {name: app, namespace: istio-system}
spec:
  hosts: ["*"]
  gateways: ["gw"]
  http:
  - match: [{uri: {prefix: /rr}}]
    route: [{destination: {host: rr.local, port: {number: 80}}}]
  - match: [{uri: {prefix: /random}}]
    route: [{destination: {host: random.local, port: {number: 80}}}]
  - match: [{uri: {prefix: /lr}}]
    route: [{destination: {host: lr.local, port: {number: 80}}}]
  - match: [{uri: {prefix: /vm}}]
    route: [{destination: {host: vm.local, port: {number: 80}}}]
YAML
for h in rr random lr; do
    cat >>"$cfg/gw.yaml" <<YAML
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: $h, namespace: istio-system}
spec:
  hosts: ["$h.local"]
  location: MESH_INTERNAL
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints:
  - {address: 127.0.0.1, ports: {http: $uh}, weight: 3}
  - {address: 127.0.0.1, ports: {http: $ul}, weight: 1}
YAML
done
cat >>"$cfg/gw.yaml" <<YAML
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: rr, namespace: istio-system}
spec:
  host: rr.local
  trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: random, namespace: istio-system}
spec:
  host: random.local
  trafficPolicy: {loadBalancer: {simple: RANDOM}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: vm, namespace: istio-system}
spec:
  hosts: ["vm.local"]
  location: MESH_INTERNAL
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  workloadSelector: {labels: {app: vm}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: vm, namespace: istio-system}
spec:
  host: vm.local
  trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: vm-heavy, namespace: istio-system}
spec: {address: 127.0.0.1, ports: {http: $uh}, labels: {app: vm}, weight: 1}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: vm-light, namespace: istio-system}
spec: {address: 127.0.0.1, ports: {http: $ul}, labels: {app: vm}, weight: 4}
YAML
ok "gateway starts" mg_start_meshgate "$cfg"

# count PATH N: how many of N requests (new connection each) reached "heavy"
count() {
    local i n=0 b
    for ((i = 0; i < $2; i++)); do
        b=$(curl -s --max-time 5 "http://127.0.0.1:$http$1")
        [ "$(mg_json_field "$b" upstream)" = heavy ] && n=$((n + 1))
    done
    echo "$n"
}
rr=$(count /rr 200)
ok "ROUND_ROBIN, weights 3:1: 150 of 200 to the heavy endpoint, within 2 (got $rr)" \
    test "$rr" -ge 148 -a "$rr" -le 152
rnd=$(count /random 200)
ok "RANDOM, weights 3:1: about 150 of 200 (got $rnd)" test "$rnd" -ge 125 -a "$rnd" -le 175
lr=$(count /lr 200)
ok "LEAST_REQUEST, weights 3:1: about 150 of 200 (got $lr)" test "$lr" -ge 125 -a "$lr" -le 175
vm=$(count /vm 200)
ok "WorkloadEntry weights 1:4 under ROUND_ROBIN: 40 of 200 to the heavy one, within 2 (got $vm)" \
    test "$vm" -ge 38 -a "$vm" -le 42
done_testing
