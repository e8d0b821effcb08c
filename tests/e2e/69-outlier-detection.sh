#!/bin/bash
# 69-outlier-detection.sh - DestinationRule outlierDetection: an endpoint
# answering 503 is ejected after consecutive5xxErrors and traffic goes on to
# the other with no 5xx reaching the client (retries off, so it is the
# ejection and not a retry); it returns after baseEjectionTime; Envoy's
# maxEjectionPercent rule; consecutiveGatewayErrors on a closed port; every
# endpoint ejected gives 503 UH "no healthy upstream" unless minHealthPercent
# puts the balancer in panic; retries avoid the endpoint already tried; the
# same over HTTP/2 upstreams and TCP routes; an ejection survives a
# certificate rotation and a reload; metrics, log lines, /config_dump; and
# `meshgate check` on bad settings.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"

mg_pki || bail_out "cannot make a PKI"
mg_start_upstream --name good --h2 || bail_out "upstream good"
good=$MG_UPSTREAM_PORT
mg_start_upstream --name bad --h2 --status 503 || bail_out "upstream bad"
bad=$MG_UPSTREAM_PORT
bad_log=$MG_UPSTREAM_LOG
closed=$(mg_free_port)                  # nothing listens here: connect refused

http=$(mg_free_port)
https=$(mg_free_port)
tcp=$(mg_free_port)
certs=$(mg_tmpdir certs)               # the rotation touches these
cp "$MG_PKI/server.crt" "$MG_PKI/server.key" "$certs/"
export MG_ADMIN=127.0.0.1:$(mg_free_port)
cfg=$(mg_tmpdir cfg)
alog=$MG_TMP/access.log

# one ServiceEntry + DestinationRule per case:
# se NAME "ENDPOINTS" "OUTLIER" [LB [PROTOCOL]]
se() {
    cat <<YAML
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: $1, namespace: istio-system}
spec:
  hosts: ["$1.local"]
  ports: [{number: 80, name: http, protocol: ${5:-HTTP}}]
  resolution: STATIC
  endpoints: [$2]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: $1, namespace: istio-system}
spec:
  host: $1.local
  trafficPolicy:
    loadBalancer: {simple: ${4:-ROUND_ROBIN}}
    outlierDetection: $3
YAML
}
GOOD="{address: 127.0.0.1, ports: {http: $good}}"
BAD="{address: 127.0.0.1, ports: {http: $bad}}"
CLOSED="{address: 127.0.0.1, ports: {http: $closed}}"

{
cat <<YAML
apiVersion: meshgate.io/v1alpha1
kind: Proxy
metadata: {name: gw, namespace: istio-system, labels: {istio: ingressgateway}}
spec:
  workers: 2
  bindAddress: 127.0.0.1
  admin: $MG_ADMIN
  credentials:
    app-cert: {certificate: $certs/server.crt, privateKey: $certs/server.key}
---
apiVersion: meshgate.io/v1alpha1
kind: MeshConfig
spec:
  accessLogFile: $alog
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: $http, name: http, protocol: HTTP}
    hosts: ["*"]
  - port: {number: $https, name: https, protocol: HTTPS}
    hosts: ["*"]
    tls: {mode: SIMPLE, credentialName: app-cert}
  - port: {number: $tcp, name: tcp, protocol: TCP}
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: odtcp, namespace: istio-system}
spec:
  hosts: ["*"]
  gateways: ["gw"]
  tcp:
  - match: [{port: $tcp}]
    route: [{destination: {host: odtcp.local, port: {number: 80}}}]
YAML
for h in od odmax odgw odone odpanic odh2; do
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
    retries: {attempts: 0}
YAML
done
cat <<YAML
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: odretry, namespace: istio-system}
spec:
  hosts: ["odretry.example.com"]
  gateways: ["gw"]
  http:
  - route: [{destination: {host: odretry.local, port: {number: 80}}}]
YAML
se od "$GOOD, $BAD" "{consecutive5xxErrors: 3, interval: 1s, baseEjectionTime: 10s, maxEjectionPercent: 50}"
se odmax "$GOOD, $BAD" "{consecutive5xxErrors: 2, interval: 1s, baseEjectionTime: 30s}"
se odgw "$GOOD, $CLOSED" "{consecutive5xxErrors: 0, consecutiveGatewayErrors: 2, interval: 1s, baseEjectionTime: 30s, maxEjectionPercent: 50}"
se odone "$BAD" "{consecutive5xxErrors: 2, interval: 1s, baseEjectionTime: 30s, maxEjectionPercent: 100}"
se odpanic "$BAD" "{consecutive5xxErrors: 2, interval: 1s, baseEjectionTime: 30s, maxEjectionPercent: 100, minHealthPercent: 50}"
se odh2 "$GOOD, $BAD" "{consecutive5xxErrors: 2, interval: 1s, baseEjectionTime: 30s, maxEjectionPercent: 50}" ROUND_ROBIN HTTP2
se odtcp "$GOOD, $CLOSED" "{consecutive5xxErrors: 2, interval: 1s, baseEjectionTime: 30s, maxEjectionPercent: 50}" ROUND_ROBIN TCP
# merged as Istio does: port-level settings, a subset's policy over the rule's
cat <<YAML
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: odmerge, namespace: istio-system}
spec:
  hosts: ["odmerge.local"]
  ports: [{number: 80, name: http, protocol: HTTP}, {number: 81, name: http2, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {http: $good, http2: $good}, labels: {v: "1"}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: odmerge, namespace: istio-system}
spec:
  host: odmerge.local
  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN}
    outlierDetection: {consecutive5xxErrors: 7}
    portLevelSettings:
    - port: {number: 81}
      outlierDetection: {consecutive5xxErrors: 8}
  subsets:
  - name: v1
    labels: {v: "1"}
    trafficPolicy: {outlierDetection: {consecutive5xxErrors: 9}}
  - name: v1b
    labels: {v: "1"}
    trafficPolicy: {loadBalancer: {simple: RANDOM}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: odmerge, namespace: istio-system}
spec:
  hosts: ["odmerge.example.com"]
  gateways: ["gw"]
  http:
  - match: [{uri: {prefix: /p81}}]
    route: [{destination: {host: odmerge.local, port: {number: 81}}}]
  - match: [{uri: {prefix: /v1b}}]
    route: [{destination: {host: odmerge.local, port: {number: 80}, subset: v1b}}]
  - match: [{uri: {prefix: /v1}}]
    route: [{destination: {host: odmerge.local, port: {number: 80}, subset: v1}}]
  - route: [{destination: {host: odmerge.local, port: {number: 80}}}]
YAML
# no outlier detection: the retries alone must avoid the endpoint tried
se odretry "$GOOD, $BAD" "{consecutive5xxErrors: 0}" RANDOM
} >"$cfg/gw.yaml"

ok "meshgate check accepts the configuration" "$MESHGATE" check -c "$cfg"
ok "gateway starts" mg_start_meshgate "$cfg"

# codes HOST N: the status codes of N sequential requests, one per line
codes() {
    local i
    for ((i = 0; i < $2; i++)); do
        mg_http_code "http://$1.example.com:$http/x"; echo
    done
}
count() { printf '%s\n' "$1" | grep -c "^$2\$"; }

# -- ejection after consecutive5xxErrors, no 5xx reaches the client after it --
c=$(codes od 10)
is "$(count "$c" 503)" 3 "od: exactly consecutive5xxErrors (3) 503s reach the client"
is "$(count "$c" 200)" 7 "od: the rest answered by the good endpoint"
ok "od: ejection logged with cluster and endpoint" mg_wait_log "$MG_MESHGATE_LOG" \
    "outlier detection: ejected endpoint 127\.0\.0\.1:$bad of cluster outbound\|80\|\|od\.local \(consecutive 5xx errors"
c=$(codes od 20)
is "$(count "$c" 200)" 20 "od: 20 more requests, all 200 (ejected endpoint skipped)"
is "$(mg_metric meshgate_outlier_ejections_total 'cluster="outbound\|80\|\|od\.local"')" 1 \
    "od: meshgate_outlier_ejections_total counts the ejection"
is "$(mg_metric meshgate_outlier_ejected_endpoints 'cluster="outbound\|80\|\|od\.local"')" 1 \
    "od: ejected endpoints gauge is 1"
dump=$(curl -s --max-time 5 "http://$MG_ADMIN/config_dump")
like "$dump" "\"ejected_endpoints\":\[\"127\.0\.0\.1:$bad\"\]" "od: /config_dump lists the ejected endpoint"
like "$dump" '"outbound\|80\|\|odmerge\.local"[^]]*\],"outlier_detection":\{"consecutive_5xx":7,' \
    "merge: the rule's policy"
like "$dump" '"outbound\|81\|\|odmerge\.local"[^]]*\],"outlier_detection":\{"consecutive_5xx":8,' \
    "merge: port-level settings over it"
like "$dump" '"outbound\|80\|v1\|odmerge\.local"[^]]*\],"outlier_detection":\{"consecutive_5xx":9,' \
    "merge: a subset's policy over both"
like "$dump" '"outbound\|80\|v1b\|odmerge\.local"[^]]*\],"outlier_detection":\{"consecutive_5xx":7,' \
    "merge: a subset policy without outlierDetection keeps the rule's"

# a certificate rotation keeps the ejection (the file watch looks every 2 s)
touch "$certs/server.crt" "$certs/server.key"
ok "rotation done" mg_wait_log "$MG_MESHGATE_LOG" "generation 2 active \(certificate rotation" 10
c=$(codes od 6)
is "$(count "$c" 200)" 6 "od: still ejected after a certificate rotation"
# and so does a reload with the same configuration
kill -HUP "$MG_MESHGATE_PID"
ok "reload done" mg_wait_log "$MG_MESHGATE_LOG" "generation 3 active" 10
c=$(codes od 6)
is "$(count "$c" 200)" 6 "od: still ejected after a reload"

# -- back after baseEjectionTime (10 s, at the next 1 s sweep) --
ok "od: back in service after baseEjectionTime" mg_wait_log "$MG_MESHGATE_LOG" \
    "endpoint 127\.0\.0\.1:$bad of cluster outbound\|80\|\|od\.local back in service" 20
is "$(mg_metric meshgate_outlier_ejected_endpoints 'cluster="outbound\|80\|\|od\.local"')" 0 \
    "od: gauge back to 0"
n_bad=$(grep -c ' GET /x ' "$bad_log")
c=$(codes od 6)
like "$(count "$c" 503)" '^[1-3]$' "od: the returned endpoint gets traffic again"
isnt "$(grep -c ' GET /x ' "$bad_log")" "$n_bad" "od: it reached the bad upstream"

# -- maxEjectionPercent: default 10% of 2 endpoints allows no ejection (Envoy) --
c=$(codes odmax 10)
# (round robin is per worker: about half, and more than the 2 an ejection allows)
like "$(count "$c" 503)" '^([3-9]|10)$' "odmax: with the default 10% of 2 endpoints nothing is ejected"
unlike "$(cat "$MG_MESHGATE_LOG")" 'cluster outbound\|80\|\|odmax\.local' "odmax: no ejection logged"

# -- consecutiveGatewayErrors on connect failures (closed port) --
c=$(codes odgw 10)
is "$(count "$c" 503)" 2 "odgw: 2 connect failures (503) reach the client, then ejected"
is "$(count "$c" 200)" 8 "odgw: then the good endpoint answers"
ok "odgw: ejected as consecutive gateway errors" mg_wait_log "$MG_MESHGATE_LOG" \
    "ejected endpoint 127\.0\.0\.1:$closed of cluster outbound\|80\|\|odgw\.local \(consecutive gateway errors"
ok "odgw: connect failures logged with flag UF" grep -q '"GET /x HTTP/1.1" 503 UF ' "$alog"

# -- every endpoint ejected: 503 UH, no healthy upstream --
c=$(codes odone 2)
is "$(count "$c" 503)" 2 "odone: two 503 from the endpoint"
body=$(mg_curl "http://odone.example.com:$http/x")
is "$body" "no healthy upstream" "odone: then 503 'no healthy upstream'"
ok "odone: access log flag UH" mg_wait_log "$alog" '"GET /x HTTP/1.1" 503 UH '

# -- minHealthPercent: below it the balancer ignores ejections (panic) --
c=$(codes odpanic 2)
ok "odpanic: ejected" mg_wait_log "$MG_MESHGATE_LOG" "of cluster outbound\|80\|\|odpanic\.local \("
body=$(mg_curl "http://odpanic.example.com:$http/x")
is "$(mg_json_field "$body" upstream)" bad "odpanic: still routed to the ejected endpoint (panic)"

# -- HTTP/2 upstreams (ServiceEntry protocol HTTP2) --
c=$(codes odh2 10)
is "$(count "$c" 503)" 2 "odh2: 2 x 503 over HTTP/2, then ejected"
is "$(count "$c" 200)" 8 "odh2: the rest from the good endpoint"
ok "odh2: the upstream spoke HTTP/2" grep -q 'h2 stream' "$bad_log"

# -- TCP routes: connect failures eject, later connections go to the other --
tcodes=""
for ((i = 0; i < 10; i++)); do
    tcodes+="$(mg_http_code "http://127.0.0.1:$tcp/echo")"$'\n'
done
is "$(count "$tcodes" 200)" 8 "odtcp: 2 connections fail (closed port), then all spliced to the good one"
ok "odtcp: ejection logged" mg_wait_log "$MG_MESHGATE_LOG" \
    "ejected endpoint 127\.0\.0\.1:$closed of cluster outbound\|80\|\|odtcp\.local"

# -- retries go to another endpoint --
c=$(codes odretry 20)
is "$(count "$c" 200)" 20 "odretry: 20 requests with Istio's default retries, all 200"

# -- meshgate check: Istio's validation of outlierDetection --
bad_cfg=$(mg_tmpdir badcfg)
cat >"$bad_cfg/dr.yaml" <<'YAML'
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: bad, namespace: istio-system}
spec:
  host: bad.local
  trafficPolicy:
    outlierDetection:
      interval: 0s
      baseEjectionTime: 0ms
      maxEjectionPercent: 101
      consecutiveLocalOriginFailures: 3
      consecutiveErrors: 2
YAML
out=$("$MESHGATE" check -c "$bad_cfg" 2>&1)
is "$?" 1 "check: refuses bad outlierDetection"
like "$out" 'dr\.yaml:8:17: error: .*interval: duration must be at least 1ms' "check: interval 0s at its line"
like "$out" 'dr\.yaml:9:25: error: .*baseEjectionTime: duration must be at least 1ms' "check: baseEjectionTime 0ms"
like "$out" 'dr\.yaml:10:27: error: .*maxEjectionPercent' "check: maxEjectionPercent 101"
like "$out" 'dr\.yaml:11:39: error: .*splitExternalLocalOriginErrors is false' \
    "check: consecutiveLocalOriginFailures needs splitExternalLocalOriginErrors"
like "$out" 'dr\.yaml:12:26: warning: .*consecutiveErrors is deprecated' "check: consecutiveErrors deprecated"

done_testing
