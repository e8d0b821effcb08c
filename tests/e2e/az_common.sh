# az_common.sh - shared setup for the access-phase e2e scripts
# (tests/e2e/4*.sh authorization, 5*.sh JWT). Source after lib.sh.
#
# Every request check goes through az_req, which sends the request through
# the real gateway AND asks `meshgate authz` the same question with the same
# facts, so the offline explainer and the data plane cannot drift apart.

# az_config DIR ADMIN HTTPS_PORT HTTP_PORT UPSTREAM_PORT [MESH_EXTRA_YAML]:
# Proxy (istio-system, identity from $MG_PKI/gateway), MeshConfig (JSON
# access log in DIR/../access.log, plus MESH_EXTRA_YAML lines indented
# under spec), a Gateway with an HTTPS server (*.example.com, SIMPLE), an
# OPTIONAL_MUTUAL server (mtls.example.com, client certs from the mesh
# root) and an ISTIO_MUTUAL server (mesh.example.com) on HTTPS_PORT, a
# plain HTTP server (*.example.com) on HTTP_PORT, and one VirtualService
# to the upstream.
az_config() {
    local dir=$1 admin=$2 https=$3 http=$4 up=$5 extra=${6:-}
    AZ_ACCESS_LOG=$(dirname "$dir")/access.log
    cat >"$dir/00-proxy.yaml" <<YAML
apiVersion: meshgate.io/v1alpha1
kind: Proxy
metadata: {name: gw, namespace: istio-system, labels: {istio: ingressgateway}}
spec:
  bindAddress: 127.0.0.1
  admin: $admin
  workers: 2
  serviceAccount: ingressgateway
  identity: {certificateChain: $MG_PKI/gateway/cert-chain.pem, privateKey: $MG_PKI/gateway/key.pem, rootCertificates: $MG_PKI/root-cert.pem}
  timeouts: {handshake: 5s, requestHeaders: 5s, idle: 60s, drain: 5s}
  credentials:
    app-cert: {certificate: $MG_PKI/server.crt, privateKey: $MG_PKI/server.key}
    mtls-cert: {certificate: $MG_PKI/server.crt, privateKey: $MG_PKI/server.key, caCertificates: $MG_PKI/root-cert.pem}
---
apiVersion: meshgate.io/v1alpha1
kind: MeshConfig
spec:
  accessLogFile: $AZ_ACCESS_LOG
  accessLogEncoding: JSON
$extra
YAML
    cat >"$dir/10-gw.yaml" <<YAML
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: $https, name: https, protocol: HTTPS}
    hosts: ["*.example.com"]
    tls: {mode: SIMPLE, credentialName: app-cert}
  - port: {number: $https, name: mtls, protocol: HTTPS}
    hosts: ["mtls.example.com"]
    tls: {mode: OPTIONAL_MUTUAL, credentialName: mtls-cert}
  - port: {number: $https, name: mesh, protocol: HTTPS}
    hosts: ["mesh.example.com"]
    tls: {mode: ISTIO_MUTUAL}
  - port: {number: $http, name: http, protocol: HTTP}
    hosts: ["*.example.com"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: app, namespace: istio-system}
spec:
  hosts: ["*.example.com"]
  gateways: ["gw"]
  http:
  - name: main
    route:
    - destination: {host: backend.local, port: {number: 80}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: backend, namespace: istio-system}
spec:
  hosts: ["backend.local"]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {http: $up}}]
YAML
}

# az_policy DIR NAME YAML: write an AuthorizationPolicy (or anything) file.
az_policy() {
    printf '%s\n' "$3" >"$1/50-$2.yaml"
}

# az_req NAME WANT_STATUS URL [OPTIONS...]: one request through the gateway
# (curl --path-as-is, trusting $MG_PKI's root) and the same facts to
# `$MESHGATE authz -c $AZ_CFG`. Records two tests: the status, and that the
# explainer agrees (exit 0 for a 2xx/3xx/404 answer, 1 for 401/403).
# OPTIONS: -X METHOD | -H 'Name: value' (repeatable; repeats are sent as
# separate lines) | --host AUTHORITY (Host header override) | --cert DIR
# (client cert DIR/cert-chain.pem + key.pem) | --principal P (what the
# explainer is told the peer is) | --remote-ip IP (explainer's remote.ip)
# | --source-ip IP (curl --interface, and the explainer's source.ip)
# | --claims JSON (explainer only) | --curl ARG (extra curl argument).
# Sets AZ_BODY to the response body.
az_req() {
    local name=$1 want=$2 url=$3 code rc want_rc host sni src=127.0.0.1
    shift 3
    local c=(--path-as-is --cacert "$MG_PKI/root-cert.pem") a=(--url "$url")
    while [ $# -gt 0 ]; do
        case $1 in
        -X) c+=(-X "$2"); a+=(--method "$2"); shift 2 ;;
        -H) c+=(-H "$2"); a+=(--header "$2"); shift 2 ;;
        --host) c+=(-H "Host: $2"); a+=(--host "$2"); shift 2 ;;
        --cert) c+=(--cert "$2/cert-chain.pem" --key "$2/key.pem"); shift 2 ;;
        --principal) a+=(--principal "$2"); shift 2 ;;
        --remote-ip) a+=(--remote-ip "$2"); shift 2 ;;
        --source-ip) src=$2; c+=(--interface "$2"); shift 2 ;;
        --claims) a+=(--claims "$2"); shift 2 ;;
        --curl) c+=("$2"); shift 2 ;;
        *) echo "az_req: unknown option $1" >&2; return 2 ;;
        esac
    done
    a+=(--source-ip "$src")
    case $url in
    https://*) host=${url#https://}; sni=${host%%[:/]*}; a+=(--sni "$sni") ;;
    esac
    AZ_BODY=$(mg_curl -w '\n%{http_code}' "${c[@]}" "$url" 2>/dev/null)
    code=${AZ_BODY##*$'\n'}
    AZ_BODY=${AZ_BODY%$'\n'*}
    "$MESHGATE" authz -c "$AZ_CFG" "${a[@]}" >"$MG_TMP/authz.out" 2>&1
    rc=$?
    case $want in
    401 | 403) want_rc=1 ;;
    *) want_rc=0 ;;
    esac
    is "$code" "$want" "$name"
    if ! is "$rc" "$want_rc" "$name (meshgate authz agrees)"; then
        diag - <"$MG_TMP/authz.out"
    fi
}

# az_raw NAME WANT_STATUS PORT REQUEST_TARGET HOST [HEADER_LINE]: a raw
# HTTP/1.1 request on the plain port (for what curl rewrites or refuses:
# fragments, odd whitespace), with one optional extra header line sent
# byte for byte; the explainer gets http://HOST:PORT TARGET and the header.
az_raw() {
    local name=$1 want=$2 port=$3 target=$4 host=$5 extra=${6:-} out code rc want_rc
    local a=(--url "http://$host:$port$target" --source-ip 127.0.0.1)
    [ -n "$extra" ] && a+=(--header "$extra")
    out=$( (
        exec 3<>"/dev/tcp/127.0.0.1/$port" || exit 1
        printf 'GET %s HTTP/1.1\r\nHost: %s:%s\r\n' "$target" "$host" "$port" >&3
        [ -n "$extra" ] && printf '%s\r\n' "$extra" >&3
        printf 'Connection: close\r\n\r\n' >&3
        timeout 3 cat <&3
    ) 2>/dev/null)
    code=$(printf '%s' "$out" | head -n 1 | awk '{print $2}')
    "$MESHGATE" authz -c "$AZ_CFG" "${a[@]}" >"$MG_TMP/authz.out" 2>&1
    rc=$?
    case $want in
    401 | 403) want_rc=1 ;;
    *) want_rc=0 ;;
    esac
    is "$code" "$want" "$name"
    if ! is "$rc" "$want_rc" "$name (meshgate authz agrees)"; then
        diag - <"$MG_TMP/authz.out"
    fi
}

# az_log_wait REGEX: wait up to 3 s for an access log line matching REGEX.
az_log_wait() {
    local i
    for ((i = 0; i < 30; i++)); do
        grep -Eq -- "$1" "$AZ_ACCESS_LOG" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "no access log line matches /$1/; last lines:" >&2
    tail -n 5 "$AZ_ACCESS_LOG" >&2
    return 1
}

# az_metric NAME_REGEX: print the summed value of admin metrics lines matching.
az_metric() {
    curl -s --max-time 3 "http://$MG_ADMIN/stats/prometheus" |
        grep -E -- "$1" | awk '{ s += $NF } END { print s + 0 }'
}

# az_reload DIR_LOG GEN: SIGHUP the gateway and wait for generation GEN.
az_reload() {
    local i
    kill -HUP "$MG_MESHGATE_PID"
    for ((i = 0; i < 50; i++)); do
        grep -q "generation $1 active" "$MG_MESHGATE_LOG" && return 0
        sleep 0.1
    done
    echo "reload to generation $1 did not happen" >&2
    tail -n 20 "$MG_MESHGATE_LOG" >&2
    return 1
}
