#!/bin/bash
# 65-mesh-chain.sh - the mesh chain on loopback: client -> meshgate gateway
# (SIMPLE TLS, a JWT required for /api/*) -> ISTIO_MUTUAL -> meshgate sidecar (STRICT, AuthorizationPolicy
# by the gateway's principal) -> plain app. The app sees XFCC with the
# gateway's identity; the sidecar sees Envoy's SNI and the Istio ALPN (a
# PERMISSIVE port terminates the connection as mesh mTLS); HTTP/2 upstream
# over ISTIO_MUTUAL; secure naming refuses a server whose SPIFFE ID is not
# the destination's (503 UF, the access log names both identities, a
# metric) and accepts DestinationRule subjectAltNames; a certificate of
# another root is refused by the sidecar; auto mTLS picks ISTIO_MUTUAL for
# a labelled endpoint or WorkloadEntry (ServiceEntry workloadSelector),
# plain text for an unlabelled one, and an explicit DestinationRule
# DISABLE wins over the label. Last, the gateway's identity rotates on disk
# during a request loop: a mismatched pair is refused and the old one kept,
# the new certificate is used by new connections, no request fails.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"

mg_pki || bail_out "cannot make a PKI"
P=$MG_PKI
"$MESHGATE" ca init --dir "$MG_TMP/pki2" >/dev/null &&
    "$MESHGATE" ca issue --dir "$MG_TMP/pki2" --spiffe ns/istio-system/sa/ingressgateway \
        --out-dir "$MG_TMP/pki2/gw" >/dev/null || bail_out "second CA"
JWT_TOOL=${MG_JWT_TOOL:-$MG_BUILDDIR/tests/helpers/mg_jwt_tool}
[ -x "$JWT_TOOL" ] || skip_all "mg_jwt_tool not built"
K=$(mg_tmpdir keys)
"$JWT_TOOL" genkey --type ec256 --kid k1 --out "$K/k1.pem" --jwks-out "$K/jwks.json" >/dev/null &&
    "$JWT_TOOL" genkey --type ec256 --kid k1 --out "$K/evil.pem" >/dev/null || bail_out "JWT keys"
TOKEN=$("$JWT_TOOL" sign --key "$K/k1.pem" --kid k1 \
    --claims '{"iss":"https://issuer.example.com","sub":"alice","exp":4102444800}') || bail_out "token"
BAD=$("$JWT_TOOL" sign --key "$K/evil.pem" --kid k1 \
    --claims '{"iss":"https://issuer.example.com","sub":"alice","exp":4102444800}') || bail_out "token"
mg_start_upstream --name app || bail_out "upstream"
app=$MG_UPSTREAM_PORT
GW_ID=spiffe://cluster.local/ns/istio-system/sa/ingressgateway
SC_ID=spiffe://cluster.local/ns/default/sa/httpbin

# ---- the sidecar in front of the app ----
SB1=$(mg_free_port)
SB2=$(mg_free_port)
SC_ADMIN=127.0.0.1:$(mg_free_port)
SC_LOG=$MG_TMP/sidecar-access.log
sc=$(mg_tmpdir sc)
cat >"$sc/sidecar.yaml" <<YAML
apiVersion: meshgate.io/v1alpha1
kind: Proxy
metadata: {name: httpbin, namespace: default, labels: {app: httpbin}}
spec:
  mode: sidecar
  admin: $SC_ADMIN
  workers: 2
  serviceAccount: httpbin
  identity: {certificateChain: $P/httpbin/cert-chain.pem, privateKey: $P/httpbin/key.pem, rootCertificates: $P/root-cert.pem}
  inbound:
  - {port: 80, bind: 127.0.0.1:$SB1, forwardTo: 127.0.0.1:$app, protocol: HTTP}
  - {port: 9080, bind: 127.0.0.1:$SB2, forwardTo: 127.0.0.1:$app, protocol: HTTP}
---
apiVersion: meshgate.io/v1alpha1
kind: MeshConfig
spec:
  accessLogFile: $SC_LOG
  accessLogEncoding: JSON
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: httpbin, namespace: default}
spec:
  selector: {matchLabels: {app: httpbin}}
  mtls: {mode: STRICT}
  portLevelMtls:
    9080: {mode: PERMISSIVE}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: httpbin, namespace: default}
spec:
  selector: {matchLabels: {app: httpbin}}
  action: ALLOW
  rules:
  - from: [{source: {principals: ["cluster.local/ns/istio-system/sa/ingressgateway"]}}]
    to: [{operation: {methods: ["GET"], paths: ["/echo*", "/api/*", "/slow"]}}]
YAML
export MG_ADMIN=$SC_ADMIN
mg_start_meshgate "$sc" || bail_out "sidecar"
SC_PID=$MG_MESHGATE_PID

# ---- the gateway ----
GWP=$(mg_free_port)
GW_ADMIN=127.0.0.1:$(mg_free_port)
GW_LOG=$MG_TMP/gateway-access.log
gw=$(mg_tmpdir gw)
cat >"$gw/00-gateway.yaml" <<YAML
apiVersion: meshgate.io/v1alpha1
kind: Proxy
metadata: {name: ingressgateway, namespace: istio-system, labels: {istio: ingressgateway}}
spec:
  bindAddress: 127.0.0.1
  admin: $GW_ADMIN
  workers: 2
  serviceAccount: ingressgateway
  identity: {certificateChain: $P/gateway/cert-chain.pem, privateKey: $P/gateway/key.pem, rootCertificates: $P/root-cert.pem}
  credentials:
    app-cert: {certificate: $P/server.crt, privateKey: $P/server.key}
---
apiVersion: meshgate.io/v1alpha1
kind: MeshConfig
spec:
  accessLogFile: $GW_LOG
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: $GWP, name: https, protocol: HTTPS}
    hosts: ["*.example.com"]
    tls: {mode: SIMPLE, credentialName: app-cert}
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt, namespace: istio-system}
spec:
  selector: {matchLabels: {istio: ingressgateway}}
  jwtRules:
  - issuer: https://issuer.example.com
    jwks: '$(cat "$K/jwks.json")'
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: api-needs-jwt, namespace: istio-system}
spec:
  selector: {matchLabels: {istio: ingressgateway}}
  action: DENY
  rules:
  - from: [{source: {notRequestPrincipals: ["*"]}}]
    to: [{operation: {paths: ["/api/*"]}}]
YAML
# dest NAME PROTOCOL ENDPOINT_YAML [DR_TLS_YAML] [PORT]: a ServiceEntry
# NAME.default.svc.cluster.local, optionally a DestinationRule tls, and a
# VirtualService NAME.example.com -> it
dest() {
    local name=$1 proto=$2 ep=$3 tls=${4:-} port=${5:-80}
    {
        cat <<YAML
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: $name, namespace: default}
spec:
  hosts: ["$name.default.svc.cluster.local"]
  location: MESH_INTERNAL
  ports: [{number: $port, name: http, protocol: $proto}]
  resolution: STATIC
  endpoints: [$ep]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: $name, namespace: istio-system}
spec:
  hosts: ["$name.example.com"]
  gateways: ["gw"]
  http:
  - route: [{destination: {host: $name.default.svc.cluster.local, port: {number: $port}}}]
YAML
        if [ -n "$tls" ]; then
            cat <<YAML
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: $name, namespace: default}
spec:
  host: $name.default.svc.cluster.local
  trafficPolicy:
    tls: $tls
YAML
        fi
    } >"$gw/10-$name.yaml"
}
dest httpbin HTTP "{address: 127.0.0.1, ports: {http: $SB1}, serviceAccount: httpbin}" "{mode: ISTIO_MUTUAL}"
dest permissive HTTP "{address: 127.0.0.1, ports: {http: $SB2}, serviceAccount: httpbin}" "{mode: ISTIO_MUTUAL}" 9080
dest grpcish HTTP2 "{address: 127.0.0.1, ports: {http: $SB1}, serviceAccount: httpbin}" "{mode: ISTIO_MUTUAL}"
dest reviews HTTP "{address: 127.0.0.1, ports: {http: $SB1}, serviceAccount: reviews}" "{mode: ISTIO_MUTUAL}"
dest reviewsh2 HTTP2 "{address: 127.0.0.1, ports: {http: $SB1}, serviceAccount: reviews}" "{mode: ISTIO_MUTUAL}"
dest sans HTTP "{address: 127.0.0.1, ports: {http: $SB1}, serviceAccount: reviews}" \
    "{mode: ISTIO_MUTUAL, subjectAltNames: [\"$SC_ID\"]}"
dest automesh HTTP "{address: 127.0.0.1, ports: {http: $SB1}, serviceAccount: httpbin, labels: {security.istio.io/tlsMode: istio}}"
dest autoplain HTTP "{address: 127.0.0.1, ports: {http: $app}}"
dest autodisable HTTP "{address: 127.0.0.1, ports: {http: $SB1}, labels: {security.istio.io/tlsMode: istio}}" "{mode: DISABLE}"
# WorkloadEntries (VMs) selected by ServiceEntries: one labelled for mesh
# mTLS in front of the sidecar, one unlabelled in front of the app
wl() {  # NAME SELECTOR_APP ENTRIES_YAML
    cat >"$gw/20-$1.yaml" <<YAML
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: $1, namespace: default}
spec:
  hosts: ["$1.default.svc.cluster.local"]
  location: MESH_INTERNAL
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  workloadSelector: {labels: {app: $2}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: $1, namespace: istio-system}
spec:
  hosts: ["$1.example.com"]
  gateways: ["gw"]
  http:
  - route: [{destination: {host: $1.default.svc.cluster.local, port: {number: 80}}}]
---
$3
YAML
}
wl vmmesh vm-httpbin "apiVersion: networking.istio.io/v1beta1
kind: WorkloadEntry
metadata: {name: vm-httpbin, namespace: default}
spec:
  address: 127.0.0.1
  ports: {http: $SB1}
  labels: {app: vm-httpbin, security.istio.io/tlsMode: istio}
  serviceAccount: httpbin
  network: vm-net
  locality: eu-west/a
  weight: 2"
wl vmplain vm-app "apiVersion: networking.istio.io/v1alpha3
kind: WorkloadEntry
metadata: {name: vm-app, namespace: default}
spec:
  address: 127.0.0.1
  ports: {http: $app}
  labels: {app: vm-app}"

"$MESHGATE" check -c "$gw" >"$MG_TMP/check.out" 2>&1
is "$?" 0 "meshgate check accepts the gateway's ISTIO_MUTUAL configuration"
unlike "$(cat "$MG_TMP/check.out")" 'not supported' "... with no 'not supported' warning"
# why would this destination get 503: the explainer
ex=$("$MESHGATE" check -c "$gw" --explain-destination reviews.default.svc.cluster.local:80 2>/dev/null)
is "$?" 0 "check --explain-destination: a destination with a cluster"
like "$ex" 'upstream TLS: ISTIO_MUTUAL \(DestinationRule\)' "... ISTIO_MUTUAL by the DestinationRule"
like "$ex" 'SNI: outbound_.80_._.reviews.default.svc.cluster.local' "... its SNI"
like "$ex" "client certificate: .*\\($GW_ID\\)" "... the identity presented"
like "$ex" "expected server identities \\(the endpoints' serviceAccount\\):"$'\n'"    spiffe://cluster.local/ns/default/sa/reviews" \
    "... the identity the server must have, and where it comes from"
ex=$("$MESHGATE" check -c "$gw" --explain-destination sans.default.svc.cluster.local:80 2>/dev/null)
like "$ex" "tls.subjectAltNames\\):"$'\n'"    $SC_ID" "... subjectAltNames named as the source"
ex=$("$MESHGATE" check -c "$gw" --explain-destination automesh.default.svc.cluster.local 2>/dev/null)
like "$ex" 'ISTIO_MUTUAL \(auto mTLS' "... auto mTLS"
like "$ex" "serviceAccount\\):"$'\n'"    $SC_ID" "... the labelled endpoint's account expected"
ex=$("$MESHGATE" check -c "$gw" --explain-destination autoplain.default.svc.cluster.local:80 2>/dev/null)
like "$ex" 'upstream TLS: none \(plain text\)' "... an unlabelled endpoint: plain text"
ex=$("$MESHGATE" check -c "$gw" --explain-destination nowhere.default.svc.cluster.local:80 2>/dev/null)
is "$?" 1 "... an unknown host: exit 1"
like "$ex" 'no cluster: requests to it get 503' "... and why"

export MG_ADMIN=$GW_ADMIN
ok "gateway starts" mg_start_meshgate "$gw"

# get NAME PATH [CURL ARGS]: a request through the gateway; body in $body, status in $code
get() {
    local name=$1 path=$2
    shift 2
    body=$(mg_curl -k -w '\n%{http_code}' "$@" "https://$name.example.com:$GWP$path" 2>/dev/null)
    code=${body##*$'\n'}
    body=${body%$'\n'*}
}

# ---- ISTIO_MUTUAL to the STRICT sidecar ----
get httpbin /echo/chain
is "$code" 200 "gateway -> ISTIO_MUTUAL -> STRICT sidecar -> app: 200"
is "$(mg_json_field "$body" upstream)" app "the app answered"
xfcc=$(printf '%s' "$body" | grep -Eo '\["x-forwarded-client-cert","[^"]*"\]')
like "$xfcc" "By=$SC_ID;" "XFCC By= is the sidecar's identity"
like "$xfcc" "URI=$GW_ID\"" "XFCC URI= is the gateway's identity"
like "$xfcc" 'Hash=[0-9a-f]{64}' "XFCC carries the gateway certificate's hash"
get httpbin /echo/chain -H "X-Forwarded-Client-Cert: By=spiffe://evil;URI=spiffe://evil"
unlike "$body" 'spiffe://evil' "a client's XFCC does not reach the app"
get httpbin /api/nojwt
is "$code" 403 "the gateway refuses /api/* without a JWT"
get httpbin /api/badjwt -H "Authorization: Bearer $BAD"
is "$code" 401 "... and with one signed by another key"
get httpbin /api/items -H "Authorization: Bearer $TOKEN"
is "$code" 200 "policy by principal: GET /api/* with a JWT allowed by the sidecar"
get httpbin /api/post -X POST -d x=1 -H "Authorization: Bearer $TOKEN"
is "$code" 403 "policy by principal: POST refused by the sidecar (403 back through the gateway)"
mg_wait_for 3 grep -q '"path":"/api/post"' "$SC_LOG"
ok "... the 403 came from the sidecar" grep -q '"path":"/api/post".*"response_code":403' "$SC_LOG"
ok "... the requests without a valid JWT never left the gateway" \
    test "$(grep -c '/api/nojwt\|/api/badjwt' "$SC_LOG")" = 0
get httpbin /private
is "$code" 403 "policy by principal: a path outside the rule refused"

mg_wait_for 3 grep -q '"path":"/echo/chain"' "$SC_LOG"
line=$(grep '"path":"/echo/chain"' "$SC_LOG" | head -n 1)
is "$(mg_json_field "$line" requested_server_name)" "outbound_.80_._.httpbin.default.svc.cluster.local" \
    "SNI as Envoy sets it for ISTIO_MUTUAL"
is "$(mg_json_field "$line" peer_principal)" "cluster.local/ns/istio-system/sa/ingressgateway" \
    "the sidecar saw the gateway's principal"

# a PERMISSIVE port terminates TLS only for the Istio ALPN tokens
get permissive /echo/alpn
is "$code" 200 "PERMISSIVE sidecar port: 200"
like "$body" "URI=$GW_ID" "PERMISSIVE port terminated mesh mTLS (the Istio ALPN was offered)"

# HTTP2 port protocol: HTTP/2 over ISTIO_MUTUAL
get grpcish /echo/h2
is "$code" 200 "HTTP2 port over ISTIO_MUTUAL: 200"
like "$body" "URI=$GW_ID" "... through mesh mTLS"
mg_wait_for 3 grep -q '"path":"/echo/h2"' "$SC_LOG"
is "$(mg_json_field "$(grep '"path":"/echo/h2"' "$SC_LOG" | head -n 1)" protocol)" HTTP/2 \
    "... and HTTP/2 between the gateway and the sidecar"

# ---- secure naming ----
before=$(mg_metric meshgate_upstream_secure_naming_failures_total)
get reviews /echo/wrong
is "$code" 503 "a server presenting another SPIFFE ID than the destination's service account: 503"
mg_wait_for 3 grep -q '/echo/wrong' "$GW_LOG"
line=$(grep '/echo/wrong' "$GW_LOG" | tail -n 1)
like "$line" '" 503 UF ' "access log: response flag UF"
like "$line" 'upstream_secure_naming' "access log: reason upstream_secure_naming"
like "$line" "expected spiffe://cluster.local/ns/default/sa/reviews" "access log names the expected identity"
like "$line" "presented $SC_ID" "access log names the presented identity"
after=$(mg_metric meshgate_upstream_secure_naming_failures_total)
ok "meshgate_upstream_secure_naming_failures_total counts it ($before -> $after)" test "$after" -gt "$before"
ok "the request metric carries the reason" \
    test "$(mg_metric istio_requests_total 'response_flags_reason="upstream_secure_naming"')" -ge 1
get reviewsh2 /echo/wrongh2
is "$code" 503 "secure naming on an HTTP/2 upstream connection: 503"
mg_wait_for 3 grep -q '/echo/wrongh2' "$GW_LOG"
like "$(grep '/echo/wrongh2' "$GW_LOG" | tail -n 1)" \
    "UF .*upstream_secure_naming \"secure naming: expected spiffe://cluster.local/ns/default/sa/reviews, presented $SC_ID\"" \
    "... logged with both identities"
n=$(grep -c '"path":"/echo/wrong' "$SC_LOG")
is "$n" 0 "the refused sidecar never saw the request"
get sans /echo/sans
is "$code" 200 "DestinationRule subjectAltNames name the identity: accepted over the endpoint's service account"

# ---- another root ----
code=$(mg_http_code -k --cert "$MG_TMP/pki2/gw/cert-chain.pem" --key "$MG_TMP/pki2/gw/key.pem" \
    "https://127.0.0.1:$SB1/echo/root")
is "$code" 000 "a client certificate of another root (same SPIFFE ID) is refused by the sidecar"

# ---- auto mTLS ----
get automesh /echo/auto
is "$code" 200 "auto mTLS: an endpoint labelled tlsMode=istio is reached over ISTIO_MUTUAL (STRICT sidecar)"
like "$body" "URI=$GW_ID" "... the app sees the gateway's identity"
get autoplain /echo/plain
is "$code" 200 "auto mTLS: an unlabelled endpoint gets plain text (the app directly)"
unlike "$body" 'x-forwarded-client-cert' "... no XFCC"
get autodisable /echo/disable
is "$code" 503 "an explicit DestinationRule DISABLE wins over the label (STRICT refuses plain text)"

# ---- WorkloadEntry + workloadSelector ----
get vmmesh /echo/vm
is "$code" 200 "a labelled WorkloadEntry (workloadSelector) is reached over ISTIO_MUTUAL by auto mTLS"
like "$body" "URI=$GW_ID" "... through the STRICT sidecar, with the gateway's identity"
get vmplain /echo/vmplain
is "$code" 200 "an unlabelled WorkloadEntry gets plain text"
unlike "$body" 'x-forwarded-client-cert' "... no XFCC"

# ---- identity rotation on disk during a request loop ----
"$MESHGATE" ca issue --dir "$P" --spiffe ns/istio-system/sa/ingressgateway --out-dir "$P/gw2" \
    >/dev/null || bail_out "second gateway certificate"
hash_of() { printf '%s' "$1" | grep -Eo 'Hash=[0-9a-f]{64}' | head -n 1; }
get httpbin /echo/rot0
old_hash=$(hash_of "$body")
# a mismatched pair (another workload's key) is refused and the old one kept
cp "$P/gateway/key.pem" "$MG_TMP/gw-key.keep"
cp "$P/sleep/key.pem" "$P/gateway/key.pem.new" && mv "$P/gateway/key.pem.new" "$P/gateway/key.pem"
ok "a mismatched identity pair is refused (logged)" mg_wait_log "$MG_MESHGATE_LOG" "rotation rejected" 10
like "$(grep -i 'identity' "$MG_MESHGATE_LOG" | tail -n 3)" 'identity privateKey.*(mismatch|does not match)' "... the log names the identity key and why"
get httpbin /echo/mismatch
is "$code" 200 "... requests keep flowing"
is "$(hash_of "$body")" "$old_hash" "... with the old certificate"
cp "$MG_TMP/gw-key.keep" "$P/gateway/key.pem.new" && mv "$P/gateway/key.pem.new" "$P/gateway/key.pem"
slow_out=$MG_TMP/slow.out
mg_curl -k -o "$slow_out" -w '%{http_code}' "https://httpbin.example.com:$GWP/slow?ms=2500" \
    >"$slow_out.code" 2>/dev/null &
slow_pid=$!
# a keep-alive downstream connection across the rotation: four requests on
# one connection, 3 s apart (the idle upstream connections of the old
# generation are closed at the switch, so its later requests open new ones)
ka_out=$MG_TMP/ka.out
mg_curl -k --rate 20/m -w '\nconnects=%{num_connects}\n' \
    "https://httpbin.example.com:$GWP/echo/ka1" "https://httpbin.example.com:$GWP/echo/ka2" \
    "https://httpbin.example.com:$GWP/echo/ka3" "https://httpbin.example.com:$GWP/echo/ka4" \
    >"$ka_out" 2>/dev/null &
ka_pid=$!
fails=0 total=0 new_at=0
for ((i = 1; i <= 120; i++)); do
    get httpbin "/echo/rot$i"
    total=$((total + 1))
    [ "$code" = 200 ] || fails=$((fails + 1))
    h=$(hash_of "$body")
    if [ "$i" = 3 ]; then   # as cert-manager or a Secret volume: atomic renames
        cp "$P/gw2/key.pem" "$P/gateway/key.pem.new" && mv "$P/gateway/key.pem.new" "$P/gateway/key.pem"
        cp "$P/gw2/cert-chain.pem" "$P/gateway/cert-chain.pem.new" &&
            mv "$P/gateway/cert-chain.pem.new" "$P/gateway/cert-chain.pem"
    fi
    if [ "$new_at" = 0 ] && [ -n "$h" ] && [ "$h" != "$old_hash" ]; then new_at=$i; fi
    [ "$new_at" -gt 0 ] && [ "$i" -ge $((new_at + 10)) ] && break
    sleep 0.1
done
wait "$slow_pid"
wait "$ka_pid"
is "$fails" 0 "identity rotated on disk during a loop of $total requests: none failed"
ok "new upstream connections present the new certificate (from request $new_at on)" test "$new_at" -gt 3
is "$(cat "$slow_out.code")" 200 "a request in flight across the rotation completes"
like "$(hash_of "$(cat "$slow_out")")" "$old_hash" "... on its connection with the old certificate"
ka_hashes=$(grep -Eo 'Hash=[0-9a-f]{64}' "$ka_out" | tr '\n' ' ')
is "$(grep -c '^connects=0$' "$ka_out")" 3 "the keep-alive client's four requests went over one downstream connection"
is "$(grep -Eo 'Hash=[0-9a-f]{64}' "$ka_out" | head -n 1)" "$old_hash" "... its first request before the rotation: the old certificate"
new_hash=$(hash_of "$body")
is "$(grep -Eo 'Hash=[0-9a-f]{64}' "$ka_out" | tail -n 1)" "$new_hash" \
    "... its last one, after the rotation, reached the sidecar with the new certificate"
diag "keep-alive client's certificate hashes: $ka_hashes"
diag "rotation: $total requests, $fails failed, new certificate from request $new_at"

done_testing
