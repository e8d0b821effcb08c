#!/bin/bash
# 72-egress-dns.sh - names the forward proxy resolves itself: a ServiceEntry
# with resolution DNS is dialled at the address the gateway's resolver
# answers (here from a hosts file the gateway reads only when
# MESHGATE_HOSTS_FILE names one), whatever the client resolved; a name whose
# answer falls in Proxy.spec.egress.denyResolvedCidrs (DNS rebinding) is
# refused with 403, logged and counted; an entry's hostname endpoint is
# resolved the same way; absolute-form requests to a DNS entry and to a
# wildcard entry are refused the same way (403) when their name resolves
# into those ranges, over HTTP/1.1 and HTTP/2 upstreams; Gateway HTTP and
# tcp routes to MESH_EXTERNAL DNS entries are refused the same way, a route
# to a MESH_INTERNAL entry is not (and the connection it pools is never
# lent to the forward proxy); an idle tunnel is closed after timeouts.idle.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"

mg_pki || bail_out "cannot make a PKI"
mg_start_upstream --name dnsup --h2 || bail_out "upstream"
u1=$MG_UPSTREAM_PORT
# what a rebinding name leads to: a server on 127.0.0.2, same port
mg_start_upstream --name meta --h2 --listen "127.0.0.2:$u1" || bail_out "upstream on 127.0.0.2"
fwd=$(mg_free_port)
gw=$(mg_free_port)
gt1=$(mg_free_port)
gt2=$(mg_free_port)
export MG_ADMIN=127.0.0.1:$(mg_free_port)
cfg=$(mg_tmpdir cfg)
log=$(dirname "$cfg")/access.log
hosts=$MG_TMP/hosts
cat >"$hosts" <<EOT
127.0.0.1 api.dns.test
127.0.0.1 backend.dns.test
127.0.0.2 rebind.dns.test
127.0.0.1 ok.wild.dns.test
127.0.0.2 evil.wild.dns.test
127.0.0.1 api2.dns.test
127.0.0.2 rebind2.dns.test
127.0.0.2 meta.internal.test
127.0.0.2 rebind3.dns.test
127.0.0.1 api3.dns.test
EOT
cat >"$cfg/00-proxy.yaml" <<YAML
apiVersion: meshgate.io/v1alpha1
kind: Proxy
metadata: {name: egw, namespace: istio-system, labels: {istio: egressgateway}}
spec:
  bindAddress: 127.0.0.1
  admin: $MG_ADMIN
  workers: 1
  outbound: {bind: 127.0.0.1:$fwd}
  egress: {denyResolvedCidrs: ["127.0.0.2/32", "169.254.0.0/16"]}
  timeouts: {handshake: 5s, requestHeaders: 5s, idle: 2s, drain: 2s}
---
apiVersion: meshgate.io/v1alpha1
kind: MeshConfig
spec:
  accessLogFile: $log
  accessLogEncoding: JSON
  outboundTrafficPolicy: {mode: REGISTRY_ONLY}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: dns, namespace: istio-system}
spec:
  hosts: ["api.dns.test", "rebind.dns.test", "nxdomain.dns.test"]
  location: MESH_EXTERNAL
  ports: [{number: $u1, name: http, protocol: HTTP}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: via-endpoint, namespace: istio-system}
spec:
  hosts: ["front.dns.test"]
  location: MESH_EXTERNAL
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: DNS
  endpoints: [{address: backend.dns.test, ports: {http: $u1}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: wild, namespace: istio-system}
spec:
  hosts: ["*.wild.dns.test"]
  location: MESH_EXTERNAL
  ports: [{number: $u1, name: http, protocol: HTTP}]
  resolution: NONE
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: dns-h2, namespace: istio-system}
spec:
  hosts: ["api2.dns.test", "rebind2.dns.test"]
  location: MESH_EXTERNAL
  ports: [{number: $u1, name: h2, protocol: HTTP2}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: internal, namespace: istio-system}
spec:
  hosts: ["meta.internal.test"]
  location: MESH_INTERNAL
  ports: [{number: $u1, name: http, protocol: HTTP}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: dns-tcp, namespace: istio-system}
spec:
  hosts: ["api3.dns.test", "rebind3.dns.test"]
  ports: [{number: $u1, name: tcp, protocol: TCP}]
  resolution: DNS_ROUND_ROBIN
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: egress, namespace: istio-system}
spec:
  selector: {istio: egressgateway}
  servers:
  - port: {number: $gw, name: http, protocol: HTTP}
    hosts: ["*"]
  - port: {number: $gt1, name: tcp1, protocol: TCP}
    hosts: ["*"]
  - port: {number: $gt2, name: tcp2, protocol: TCP}
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: to-rebind, namespace: istio-system}
spec:
  hosts: ["rebind-route.test"]
  gateways: ["egress"]
  http:
  - route: [{destination: {host: rebind.dns.test, port: {number: $u1}}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: to-rebind2, namespace: istio-system}
spec:
  hosts: ["rebind2-route.test"]
  gateways: ["egress"]
  http:
  - route: [{destination: {host: rebind2.dns.test, port: {number: $u1}}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: to-api, namespace: istio-system}
spec:
  hosts: ["api-route.test"]
  gateways: ["egress"]
  http:
  - route: [{destination: {host: api.dns.test, port: {number: $u1}}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: to-internal, namespace: istio-system}
spec:
  hosts: ["internal-route.test"]
  gateways: ["egress"]
  http:
  - route: [{destination: {host: meta.internal.test, port: {number: $u1}}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: tcp, namespace: istio-system}
spec:
  hosts: ["*"]
  gateways: ["egress"]
  tcp:
  - match: [{port: $gt1}]
    route: [{destination: {host: api3.dns.test, port: {number: $u1}}}]
  - match: [{port: $gt2}]
    route: [{destination: {host: rebind3.dns.test, port: {number: $u1}}}]
YAML

MESHGATE_HOSTS_FILE=$hosts
export MESHGATE_HOSTS_FILE
ok "gateway starts" mg_start_meshgate "$cfg"
mg_wait_port 127.0.0.1 "$fwd" || bail_out "forward proxy port"

code() {
    curl -s -o /dev/null --max-time 10 -w '%{http_connect}' -p -x "http://127.0.0.1:$fwd" "http://$1/echo"
}
body=$(curl -sS --max-time 10 -p -x "http://127.0.0.1:$fwd" "http://api.dns.test:$u1/echo")
is "$(mg_json_field "$body" upstream)" dnsup "a DNS entry is dialled at the address the gateway resolved"
# the client's own idea of the address (here 127.0.0.9) never reaches the
# proxy: a CONNECT carries only the name, which the gateway resolves itself
body=$(curl -sS --max-time 10 --resolve "api.dns.test:$u1:127.0.0.9" -p -x "http://127.0.0.1:$fwd" \
    "http://api.dns.test:$u1/echo")
is "$(mg_json_field "$body" upstream)" dnsup "a client-side resolution does not change where the tunnel goes"
mg_wait_log "$log" "\"upstream_host\":\"127.0.0.1:$u1\"" >/dev/null
like "$(grep '"authority":"api.dns.test:' "$log" | tail -n 1)" "\"upstream_host\":\"127.0.0.1:$u1\"" \
    "the access log shows the resolved address"
body=$(curl -sS --max-time 10 -p -x "http://127.0.0.1:$fwd" "http://front.dns.test:80/echo")
is "$(mg_json_field "$body" upstream)" dnsup "a hostname endpoint is resolved by the gateway (its named port)"
is "$(code "rebind.dns.test:$u1")" 403 "a name resolving into denyResolvedCidrs is refused"
mg_wait_log "$log" 'egress_connect_resolved_denied' >/dev/null
like "$(grep '"authority":"rebind.dns.test:' "$log" | tail -n 1)" 'egress_connect_resolved_denied' \
    "the rebinding refusal is logged"
is "$(mg_metric meshgate_egress_refused_total 'reason="resolved_denied"')" 1 "... and counted"
# absolute-form requests: the names their clusters resolve are checked too
fx() {
    curl -s -o /dev/null --max-time 10 -w '%{http_code}' -x "http://127.0.0.1:$fwd" "$1"
}
is "$(fx "http://api.dns.test:$u1/echo")" 200 "absolute-form: a DNS entry's name resolving outside the ranges is served"
is "$(fx "http://rebind.dns.test:$u1/echo")" 403 \
    "absolute-form: a DNS entry's name resolving into denyResolvedCidrs is refused with 403"
is "$(fx "http://ok.wild.dns.test:$u1/echo")" 200 "absolute-form: a wildcard entry's name is resolved and served"
is "$(fx "http://evil.wild.dns.test:$u1/echo")" 403 \
    "absolute-form: a wildcard entry's name resolving into denyResolvedCidrs is refused"
mg_wait_log "$log" 'egress_forward_resolved_denied' >/dev/null
line=$(grep '"authority":"evil.wild.dns.test:' "$log" | tail -n 1)
like "$line" 'egress_forward_resolved_denied' "the refusal is logged with the entrance and the reason"
like "$line" '"upstream_host":"127.0.0.2"' "... and the address the name resolved to"
is "$(mg_metric meshgate_egress_refused_total 'entrance="forward",reason="resolved_denied"')" 2 \
    "absolute-form rebinding refusals are counted"

# Gateway routes: the names of MESH_EXTERNAL DNS entries are checked as the
# forward proxy checks them (HTTP/1.1 and HTTP/2 pools, tcp routes); a
# MESH_INTERNAL entry is a mesh member a route may lead to on purpose, even
# in those ranges. The keep-alive connection such a route leaves is never
# lent to the forward proxy, whose absolute-form request is refused.
gx() {
    curl -s -o /dev/null --max-time 10 -w '%{http_code}' -H "Host: $1" "http://127.0.0.1:$gw/echo"
}
is "$(gx api-route.test)" 200 "Gateway route to a MESH_EXTERNAL DNS name resolving outside the ranges: served"
is "$(gx rebind-route.test)" 403 \
    "Gateway route to a MESH_EXTERNAL DNS name resolving into denyResolvedCidrs: 403"
mg_wait_log "$log" 'egress_route_resolved_denied' >/dev/null
line=$(grep '"authority":"rebind-route.test"' "$log" | tail -n 1)
like "$line" '"reason":"egress_route_resolved_denied"' "... logged with the entrance and the reason"
like "$line" '"upstream_host":"127.0.0.2"' "... and the address the name resolved to"
is "$(gx rebind2-route.test)" 403 "... the same over the HTTP/2 upstream pool of an HTTP2 entry"
is "$(mg_metric meshgate_egress_refused_total 'entrance="route",reason="resolved_denied"')" 2 \
    "route rebinding refusals are counted under entrance=\"route\""
body=$(curl -sS --max-time 10 -H 'Host: internal-route.test' "http://127.0.0.1:$gw/echo")
is "$(mg_json_field "$body" upstream)" meta "a route to a MESH_INTERNAL DNS name in those ranges is served (not checked)"
is "$(fx "http://meta.internal.test:$u1/echo")" 403 \
    "absolute-form to that name: refused after the route left a connection to that address in its pool"
is "$(mg_json_field "$(mg_raw "$gt1" 'GET /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')" upstream)" \
    dnsup "tcp route to a MESH_EXTERNAL DNS_ROUND_ROBIN name resolving outside the ranges: spliced"
is "$(mg_raw "$gt2" 'GET /echo HTTP/1.1\r\nHost: x\r\n\r\n' 2)" "" \
    "tcp route to a name resolving into denyResolvedCidrs: closed"
mg_wait_log "$log" 'egress_tcp_resolved_denied' >/dev/null
like "$(grep 'egress_tcp_resolved_denied' "$log" | tail -n 1)" '"upstream_host":"127.0.0.2"' \
    "... logged as egress_tcp_resolved_denied with the address"
is "$(mg_metric meshgate_egress_refused_total 'entrance="tcp",reason="resolved_denied"')" 1 "... and counted"
# an HTTP2 entry port: the HTTP/2 upstream connection checks the address too
is "$(fx "http://api2.dns.test:$u1/echo")" 200 "absolute-form over an HTTP/2 upstream is served"
mg_wait_log "$log" '"authority":"api2.dns.test:' >/dev/null
like "$(grep '"authority":"api2.dns.test:' "$log" | tail -n 1)" '"upstream_host":"api2.dns.test:' \
    "... through the entry's DNS cluster"
is "$(fx "http://rebind2.dns.test:$u1/echo")" 403 \
    "absolute-form over an HTTP/2 upstream: a name resolving into the ranges is refused"
is "$(mg_metric meshgate_egress_refused_total 'entrance="forward",reason="resolved_denied"')" 4 \
    "every absolute-form rebinding refusal is counted"

# a name no resolver knows: 503, as soon as the system's resolver says so
# (skipped where its nameservers do not answer within a few seconds)
timeout 3 getent hosts nxdomain.dns.test >/dev/null 2>&1
if [ $? = 124 ]; then
    skip "the system resolver does not answer here" 2
else
    start=$(date +%s)
    is "$(code "nxdomain.dns.test:$u1")" 503 "a registered name that does not resolve gets 503"
    ok "... without hanging the client" test $(($(date +%s) - start)) -le 9
fi

# an idle tunnel ends after timeouts.idle (2 s here) with no byte either way
exec 7<>"/dev/tcp/127.0.0.1/$fwd"
printf 'CONNECT api.dns.test:%s HTTP/1.1\r\nHost: api.dns.test:%s\r\n\r\n' "$u1" "$u1" >&7
IFS= read -r -t 5 status <&7
like "$status" '^HTTP/1.1 200' "a tunnel opens"
start=$(date +%s)
rest=$(timeout 10 cat <&7)
elapsed=$(($(date +%s) - start))
exec 7<&-
ok "the idle tunnel is closed by the gateway after about 2 s (${elapsed}s)" test "$elapsed" -ge 1 -a "$elapsed" -le 6
mg_wait_log "$log" '"reason":"idle_timeout"' >/dev/null
ok "the idle close is logged" grep -q '"reason":"idle_timeout"' "$log"

done_testing
