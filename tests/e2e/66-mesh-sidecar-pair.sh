#!/bin/bash
# 66-mesh-sidecar-pair.sh - east-west between two meshgate sidecars: app A
# -> sidecar A's forward proxy (Proxy.spec.outbound.bind, absolute-form) ->
# ISTIO_MUTUAL -> sidecar B (STRICT, AuthorizationPolicy naming A's service
# account) -> app B. B's app sees A's identity in XFCC; the per-account
# policies hold through the mesh (frontend may GET /api/*, admin may also
# POST/PUT/DELETE, others 403); a third identity is refused; a destination whose
# endpoint has no tlsMode label is reached in plain text; secure naming
# holds on the forward proxy's clusters too.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"

mg_pki || bail_out "cannot make a PKI"
P=$MG_PKI
for sa in frontend admin reviews; do
    "$MESHGATE" ca issue --dir "$P" --spiffe "ns/default/sa/$sa" --out-dir "$P/$sa" >/dev/null ||
        bail_out "identity $sa"
done
mg_start_upstream --name appB || bail_out "upstream"
appB=$MG_UPSTREAM_PORT
A_ID=spiffe://cluster.local/ns/default/sa/frontend

# ---- sidecar B in front of app B ----
SB=$(mg_free_port)
B_ADMIN=127.0.0.1:$(mg_free_port)
b=$(mg_tmpdir b)
cat >"$b/b.yaml" <<YAML
apiVersion: meshgate.io/v1alpha1
kind: Proxy
metadata: {name: httpbin, namespace: default, labels: {app: httpbin}}
spec:
  mode: sidecar
  admin: $B_ADMIN
  workers: 1
  serviceAccount: httpbin
  identity: {certificateChain: $P/httpbin/cert-chain.pem, privateKey: $P/httpbin/key.pem, rootCertificates: $P/root-cert.pem}
  inbound:
  - {port: 80, bind: 127.0.0.1:$SB, forwardTo: 127.0.0.1:$appB, protocol: HTTP}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: default}
spec:
  mtls: {mode: STRICT}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: httpbin, namespace: default}
spec:
  selector: {matchLabels: {app: httpbin}}
  action: ALLOW
  rules:
  - from: [{source: {principals: ["cluster.local/ns/default/sa/frontend"]}}]
    to: [{operation: {methods: ["GET"], paths: ["/api/*"]}}]
  - from: [{source: {principals: ["cluster.local/ns/default/sa/admin"]}}]
    to: [{operation: {methods: ["GET", "POST", "PUT", "DELETE"], paths: ["/api/*"]}}]
YAML
export MG_ADMIN=$B_ADMIN
mg_start_meshgate "$b" || bail_out "sidecar B"

# outbound_sidecar DIR SA ADMIN PROXY_PORT LOG: a sidecar with only the
# forward proxy, identity SA, and the registry of the mesh services
outbound_sidecar() {
    local dir=$1 sa=$2 admin=$3 port=$4 log=$5
    cat >"$dir/a.yaml" <<YAML
apiVersion: meshgate.io/v1alpha1
kind: Proxy
metadata: {name: $sa, namespace: default, labels: {app: $sa}}
spec:
  mode: sidecar
  admin: $admin
  workers: 1
  serviceAccount: $sa
  identity: {certificateChain: $P/$sa/cert-chain.pem, privateKey: $P/$sa/key.pem, rootCertificates: $P/root-cert.pem}
  outbound: {bind: 127.0.0.1:$port}
---
apiVersion: meshgate.io/v1alpha1
kind: MeshConfig
spec:
  accessLogFile: $log
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: httpbin, namespace: default}
spec:
  hosts: ["httpbin.default.svc.cluster.local"]
  location: MESH_INTERNAL
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints:
  - {address: 127.0.0.1, ports: {http: $SB}, serviceAccount: httpbin, labels: {app: httpbin, security.istio.io/tlsMode: istio}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: pinned, namespace: default}
spec:
  hosts: ["pinned.default.svc.cluster.local"]
  location: MESH_INTERNAL
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {http: $SB}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: pinned, namespace: default}
spec:
  host: pinned.default.svc.cluster.local
  trafficPolicy:
    tls: {mode: ISTIO_MUTUAL, subjectAltNames: ["spiffe://cluster.local/ns/default/sa/details"]}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: legacy, namespace: default}
spec:
  hosts: ["legacy.default.svc.cluster.local"]
  location: MESH_INTERNAL
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {http: $appB}}]
YAML
}

PA=$(mg_free_port)
A_ADMIN=127.0.0.1:$(mg_free_port)
A_LOG=$MG_TMP/a-access.log
a=$(mg_tmpdir a)
outbound_sidecar "$a" frontend "$A_ADMIN" "$PA" "$A_LOG"
export MG_ADMIN=$A_ADMIN
ok "sidecar A (forward proxy, identity frontend) starts" mg_start_meshgate "$a"

PD=$(mg_free_port)
D_ADMIN=127.0.0.1:$(mg_free_port)
dd=$(mg_tmpdir d)
outbound_sidecar "$dd" admin "$D_ADMIN" "$PD" "$MG_TMP/d-access.log"
export MG_ADMIN=$D_ADMIN
ok "sidecar D (forward proxy, identity admin) starts" mg_start_meshgate "$dd"

PC=$(mg_free_port)
C_ADMIN=127.0.0.1:$(mg_free_port)
c=$(mg_tmpdir c)
outbound_sidecar "$c" reviews "$C_ADMIN" "$PC" "$MG_TMP/c-access.log"
export MG_ADMIN=$C_ADMIN
ok "sidecar C (forward proxy, identity reviews) starts" mg_start_meshgate "$c"

# via PROXY_PORT URL [CURL ARGS]: an app's request through a sidecar's forward proxy
via() {
    local port=$1 url=$2
    shift 2
    body=$(curl -sS --max-time 10 -x "http://127.0.0.1:$port" -w '\n%{http_code}' "$@" "$url" 2>/dev/null)
    code=${body##*$'\n'}
    body=${body%$'\n'*}
}

via "$PA" http://httpbin.default.svc.cluster.local/api/pair
is "$code" 200 "app A -> sidecar A (absolute-form) -> ISTIO_MUTUAL -> sidecar B -> app B: 200"
is "$(mg_json_field "$body" upstream)" appB "app B answered"
xfcc=$(printf '%s' "$body" | grep -Eo '\["x-forwarded-client-cert","[^"]*"\]')
like "$xfcc" "URI=$A_ID\"" "app B sees A's identity in XFCC"
like "$xfcc" "By=spiffe://cluster.local/ns/default/sa/httpbin;" "... By= is B's identity"
via "$PA" http://httpbin.default.svc.cluster.local/api/second
is "$code" 200 "a second request (pooled mTLS connection)"

# the per-account policies of B, callers coming over ISTIO_MUTUAL
for m in POST PUT DELETE; do
    via "$PA" http://httpbin.default.svc.cluster.local/api/items -X "$m" -d x=1
    is "$code" 403 "frontend may not $m /api/items"
done
via "$PA" http://httpbin.default.svc.cluster.local/other
is "$code" 403 "frontend: a path outside /api/* refused"
for m in GET POST PUT DELETE; do
    via "$PD" http://httpbin.default.svc.cluster.local/api/items -X "$m" -d x=1
    is "$code" 200 "admin may $m /api/items"
done
like "$body" 'URI=spiffe://cluster.local/ns/default/sa/admin' "... app B sees admin's identity"

via "$PC" http://httpbin.default.svc.cluster.local/api/third
is "$code" 403 "a third identity (sa/reviews) is refused by B's policy"
unlike "$body" '"upstream"' "... app B never saw it"

via "$PA" http://legacy.default.svc.cluster.local/echo/legacy
is "$code" 200 "an endpoint without the tlsMode label: plain text (app B directly)"
unlike "$body" 'x-forwarded-client-cert' "... no XFCC"

via "$PA" http://pinned.default.svc.cluster.local/echo/pinned
is "$code" 503 "secure naming on the forward proxy: B is not the pinned sa/details"
mg_wait_for 3 grep -q '/echo/pinned' "$A_LOG"
line=$(grep '/echo/pinned' "$A_LOG" | tail -n 1)
like "$line" ' UF ' "... flag UF"
like "$line" 'expected spiffe://cluster.local/ns/default/sa/details, presented spiffe://cluster.local/ns/default/sa/httpbin' \
    "... the log line names both identities"

# CONNECT through A's forward proxy to a mesh host: the tunnel's bytes
# travel inside ISTIO_MUTUAL, as a sidecar wraps an application's TCP
via "$PA" http://httpbin.default.svc.cluster.local/api/tunnel -p
is "$code" 200 "a CONNECT tunnel through A to a mesh host reaches app B"
like "$body" 'URI=spiffe://cluster.local/ns/default/sa/frontend' "... over ISTIO_MUTUAL: B's app sees A's identity"
via "$PC" http://httpbin.default.svc.cluster.local/api/tunnel -p
is "$code" 403 "... and B's policy refuses a third identity's tunnel too"
code=$(curl -s -o /dev/null --max-time 10 -p -x "http://127.0.0.1:$PA" -w '%{http_connect}' \
    http://pinned.default.svc.cluster.local/echo/pinned-tunnel 2>/dev/null)
is "$code" 503 "secure naming on a CONNECT tunnel: the CONNECT gets 503"
ok "... logged with its reason" mg_wait_for 3 grep -q 'upstream_secure_naming' "$A_LOG"
via "$PA" http://legacy.default.svc.cluster.local/echo/legacy-tunnel -p
is "$code" 200 "a CONNECT to an unlabelled endpoint stays plain text"
unlike "$body" 'x-forwarded-client-cert' "... no XFCC"

done_testing
