# h2lib.sh - shared setup of the HTTP/2 end-to-end tests (25-http2.sh,
# 26-h2-abuse.sh), sourced after lib.sh: a PKI, one mg_upstream, and a
# gateway with one HTTPS server (ALPN h2) routing app.example.com to it.
#
# h2_setup [PROXY_SPEC_EXTRA_YAML]: sets H2_PORT (gateway HTTPS port),
# H2_UP_PORT, H2_CFG (config directory), MG_ADMIN; bails out on failure.
# h2_start: starts meshgate on H2_CFG (a test result).
h2_setup() {
    local extra=${1:-}
    mg_pki || bail_out "cannot make a PKI"
    mg_start_upstream --name up1 || bail_out "upstream"
    H2_UP_PORT=$MG_UPSTREAM_PORT
    H2_UP_LOG=$MG_UPSTREAM_LOG
    H2_PORT=$(mg_free_port)
    export MG_ADMIN=127.0.0.1:$(mg_free_port)
    H2_CFG=$(mg_tmpdir cfg)
    cat >"$H2_CFG/gw.yaml" <<YAML
apiVersion: meshgate.io/v1alpha1
kind: MeshConfig
spec:
  accessLogFile: /dev/stdout
  accessLogEncoding: JSON
---
apiVersion: meshgate.io/v1alpha1
kind: Proxy
metadata: {name: gw, namespace: istio-system, labels: {istio: ingressgateway}}
spec:
  workers: 2
  bindAddress: 127.0.0.1
  admin: $MG_ADMIN
  credentials:
    app-cert: {certificate: $MG_PKI/server.crt, privateKey: $MG_PKI/server.key}
$extra
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: $H2_PORT, name: https, protocol: HTTPS}
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
  - match: [{uri: {prefix: /local}}]
    directResponse: {status: 403, body: {string: "local answer"}}
  - route:
    - destination: {host: up.local, port: {number: $H2_UP_PORT}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: up, namespace: istio-system}
spec:
  hosts: ["up.local"]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{number: $H2_UP_PORT, name: http, protocol: HTTP}]
  endpoints: [{address: 127.0.0.1}]
YAML
}

h2_start() {
    ok "gateway starts" mg_start_meshgate "$H2_CFG"
}

# h2_curl ARGS... PATH: curl over HTTP/2 (TLS, ALPN h2) to the gateway.
h2_curl() {
    local path=${*: -1}
    set -- "${@:1:$#-1}"
    curl -sS --max-time 20 --http2 --cacert "$MG_PKI/root-cert.pem" \
        --resolve "app.example.com:$H2_PORT:127.0.0.1" "$@" "https://app.example.com:$H2_PORT$path"
}

# h2_rss: the gateway's resident set size in kB.
h2_rss() {
    awk '/^VmRSS:/ { print $2 }' "/proc/$MG_MESHGATE_PID/status"
}
