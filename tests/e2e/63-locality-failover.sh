#!/bin/bash
# 63-locality-failover.sh - locality-aware balancing as Istio configures it:
# the Proxy is in us-east/z1/s1 on network net1; four endpoints in
# us-east/z1/s1 (local), us-east/z2 (region), eu-west/z1 (failover region)
# and ap-south/z1 on net1 (far). With outlier detection and `failover:
# us-east -> eu-west` every request goes to the local endpoint; when it
# answers 503 it is ejected and the traffic moves to the same region, then
# to eu-west (not ap-south), then to the rest. failoverPriority by network
# prefers the far endpoint on the proxy's network. `distribute` splits by
# locality weight (in turn, within a few requests) and gives unnamed localities
# nothing; without outlier detection the endpoints share the traffic with
# no locality preference. retryRemoteLocalities sends each retry to the
# next priority.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"

mg_pki || bail_out "cannot make a PKI"
declare -A port pid
for n in local region failover far; do
    mg_start_upstream --name "$n" || bail_out "upstream $n"
    port[$n]=$MG_UPSTREAM_PORT
    pid[$n]=$MG_UPSTREAM_PID
done
http=$(mg_free_port)
export MG_ADMIN=127.0.0.1:$(mg_free_port)
cfg=$(mg_tmpdir cfg)

EPS="
  - {address: 127.0.0.1, ports: {http: ${port[local]}}, locality: us-east/z1/s1}
  - {address: 127.0.0.1, ports: {http: ${port[region]}}, locality: us-east/z2}
  - {address: 127.0.0.1, ports: {http: ${port[failover]}}, locality: eu-west/z1}
  - {address: 127.0.0.1, ports: {http: ${port[far]}}, locality: ap-south/z1, network: net1}"
{
cat <<YAML
apiVersion: meshgate.io/v1alpha1
kind: Proxy
metadata: {name: gw, namespace: istio-system, labels: {istio: ingressgateway}}
spec:
  bindAddress: 127.0.0.1
  admin: $MG_ADMIN
  workers: 2
  locality: us-east/z1/s1
  network: net1
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: $http, name: http, protocol: HTTP}
    hosts: ["*"]
YAML
for h in fo dist nood fp rrl same; do
    cat <<YAML
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: $h, namespace: istio-system}
spec:
  hosts: ["$h.example.com"]
  gateways: ["gw"]
  http:
  - route: [{destination: {host: $h.local, port: {number: 80}}}]
    retries: $(case $h in
        rrl) echo "{attempts: 3, retryOn: 5xx, retryRemoteLocalities: true}" ;;
        same) echo "{attempts: 3, retryOn: 5xx}" ;;
        *) echo "{attempts: 0}" ;;
        esac)
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: $h, namespace: istio-system}
spec:
  hosts: ["$h.local"]
  location: MESH_INTERNAL
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: $EPS
YAML
done
cat <<YAML
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: fo, namespace: istio-system}
spec:
  host: fo.local
  trafficPolicy:
    outlierDetection: {consecutive5xxErrors: 1, interval: 1s, baseEjectionTime: 300s, maxEjectionPercent: 100}
    loadBalancer:
      simple: ROUND_ROBIN
      localityLbSetting:
        failover: [{from: us-east, to: eu-west}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: dist, namespace: istio-system}
spec:
  host: dist.local
  trafficPolicy:
    loadBalancer:
      localityLbSetting:
        distribute:
        - from: us-east/z1/*
          to: {"us-east/*": 75, "eu-west/*": 25}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: fp, namespace: istio-system}
spec:
  host: fp.local
  trafficPolicy:
    outlierDetection: {consecutive5xxErrors: 1, maxEjectionPercent: 100}
    loadBalancer:
      localityLbSetting:
        failoverPriority: [topology.istio.io/network]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: rrl, namespace: istio-system}
spec:
  host: rrl.local
  trafficPolicy:
    outlierDetection: {consecutive5xxErrors: 1000}
    loadBalancer:
      localityLbSetting: {failover: [{from: us-east, to: eu-west}]}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: same, namespace: istio-system}
spec:
  host: same.local
  trafficPolicy:
    outlierDetection: {consecutive5xxErrors: 1000}
    loadBalancer:
      localityLbSetting: {failover: [{from: us-east, to: eu-west}]}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: nood, namespace: istio-system}
spec:
  host: nood.local
  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN}
YAML
} >"$cfg/gw.yaml"

out=$("$MESHGATE" check -c "$cfg" --explain-destination fo.local:80 2>&1)
like "$out" "locality balancing: failover \(DestinationRule localityLbSetting, outlierDetection set\), from this proxy's locality us-east/z1/s1" \
    "check --explain-destination names the mode and the proxy's locality"
like "$out" ":${port[local]}  locality us-east/z1/s1  priority 0" "the local endpoint is priority 0"
like "$out" ":${port[region]}  locality us-east/z2  priority 1" "the same region is next (priorities have no gaps)"
like "$out" ":${port[failover]}  locality eu-west/z1  priority 2" "the failover region follows"
like "$out" ":${port[far]}  locality ap-south/z1  priority 3" "the other region comes last"
ok "gateway starts" mg_start_meshgate "$cfg"

# tally HOST N: "name=count ..." of N requests (a new connection each) by
# the upstream's name in a 200 answer, or "code-NNN" for anything else
tally() {
    local i b code name
    declare -A c=()
    for ((i = 0; i < $2; i++)); do
        b=$(curl -s --max-time 5 -w '\n%{http_code}' -H "Host: $1.example.com" "http://127.0.0.1:$http/")
        code=${b##*$'\n'}
        name=$(mg_json_field "${b%$'\n'*}" upstream)
        [ "$code" = 200 ] || name=code-$code
        c[$name]=$((${c[$name]:-0} + 1))
    done
    for name in local region failover far; do
        printf '%s=%s ' "$name" "${c[$name]:-0}"
    done
    for name in "${!c[@]}"; do
        case $name in code-*) printf '%s=%s ' "$name" "${c[$name]}" ;; esac
    done
}
# count TALLY NAME
count() { local v=${1#*"$2"=}; echo "${v%% *}"; }

t=$(tally nood 200)
diag "no outlier detection: $t"
for n in local region failover far; do
    v=$(count "$t" "$n")
    ok "without outlierDetection every locality gets its round-robin share: $n $v of 200 (48..52)" \
        test "$v" -ge 48 -a "$v" -le 52
done

t=$(tally dist 400)
diag "distribute: $t"
l=$(count "$t" local) r=$(count "$t" region) f=$(count "$t" failover) x=$(count "$t" far)
# us-east/* = 75 split over two localities of one endpoint each: 38 and 38
# (rounded up, as istiod does), eu-west 25; taken in turn per worker, so
# 400 requests give 150.5, 150.5 and 99 within a few
ok "distribute: us-east/* takes 75% of 400, split between its localities (got $((l + r)))" \
    test $((l + r)) -ge 295 -a $((l + r)) -le 307
ok "distribute: each us-east locality 38/101 (local $l, region $r: 146..155)" \
    test "$l" -ge 146 -a "$l" -le 155 -a "$r" -ge 146 -a "$r" -le 155
ok "distribute: eu-west 25/101 (got $f: 95..103)" test "$f" -ge 95 -a "$f" -le 103
is "$x" 0 "distribute: ap-south, named by no rule, gets nothing"

t=$(tally fp 20)
is "$t" "local=0 region=0 failover=0 far=20 " \
    "failoverPriority by topology.istio.io/network: the endpoint on the proxy's network (net1) first, wherever it is"

t=$(tally fo 40)
is "$t" "local=40 region=0 failover=0 far=0 " "outlier detection on: all traffic to the local endpoint"

# fail ENDPOINT: restart it answering 503 on its port; send requests
# until the first 503 (it is ejected at once: consecutive5xxErrors 1)
fail() {
    local i code
    mg_stop "${pid[$1]}"
    mg_start_upstream --listen "127.0.0.1:${port[$1]}" --name "$1" --status 503 || return 1
    pid[$1]=$MG_UPSTREAM_PID
    for ((i = 0; i < 20; i++)); do
        code=$(curl -s -o /dev/null --max-time 5 -w '%{http_code}' -H "Host: fo.example.com" \
               "http://127.0.0.1:$http/")
        [ "$code" = 503 ] && return 0
    done
    return 1
}
ok "the local endpoint answers 503 and the client sees it once" fail local
t=$(tally fo 40)
is "$t" "local=0 region=40 failover=0 far=0 " "local ejected: the same region takes everything"
ok "the same-region endpoint answers 503" fail region
t=$(tally fo 40)
is "$t" "local=0 region=0 failover=40 far=0 " "the region ejected: the failover region (eu-west), not ap-south"
ok "the failover region answers 503" fail failover
t=$(tally fo 40)
is "$t" "local=0 region=0 failover=0 far=40 " "then the rest (ap-south)"
# retries with no ejection (consecutive5xxErrors 1000): the three nearest
# answer 503 now
t=$(tally same 10)
is "$t" "local=0 region=0 failover=0 far=0 code-503=10 " \
    "retries stay in the nearest priority by default: the local endpoint's 503 each time"
t=$(tally rrl 10)
is "$t" "local=0 region=0 failover=0 far=10 " \
    "retryRemoteLocalities: each retry leaves the priorities tried, the fourth try reaches ap-south"
is "$(mg_metric meshgate_outlier_ejected_endpoints 'cluster="outbound\|80\|\|fo\.local"')" 3 \
    "the metrics show the three ejected endpoints"
dump=$(curl -s "http://$MG_ADMIN/config_dump")
like "$dump" "\"endpoint\":\"127\.0\.0\.1:${port[local]}\",\"locality\":\"us-east/z1/s1\",\"priority\":0" \
    "/config_dump: each endpoint's locality and priority"
like "$dump" '"priority_load_percent":\[0,0,0,100\]' "/config_dump: the whole load is on the last priority now"
done_testing
