# dp_common.sh - configuration writers shared by the data plane's e2e
# scripts (tests/e2e/2*.sh, 3*.sh). Source after lib.sh.

# dp_proxy DIR ADMIN [LOG_ENCODING] [EXTRA...]: Proxy + MeshConfig with the
# access log in $DIR/../access.log, credentials for $MG_PKI's server cert.
dp_proxy() {
    local dir=$1 admin=$2 enc=${3:-JSON}
    DP_ACCESS_LOG=$(dirname "$dir")/access.log
    cat >"$dir/00-proxy.yaml" <<YAML
apiVersion: meshgate.io/v1alpha1
kind: Proxy
metadata: {name: gw, namespace: istio-system, labels: {istio: ingressgateway}}
spec:
  bindAddress: 127.0.0.1
  admin: $admin
  workers: 2
  timeouts: {handshake: 5s, requestHeaders: 5s, idle: 60s, drain: 10s}
  credentials:
    app-cert: {certificate: $MG_PKI/server.crt, privateKey: $MG_PKI/server.key, caCertificates: $MG_PKI/root-cert.pem}
---
apiVersion: meshgate.io/v1alpha1
kind: MeshConfig
spec:
  accessLogFile: $DP_ACCESS_LOG
  accessLogEncoding: $enc
YAML
}

# dp_service DIR NAME HOST PORT...: a STATIC ServiceEntry HOST:80 whose
# endpoints are 127.0.0.1:PORT (label version: v1, v2, ... in order).
dp_service() {
    local dir=$1 name=$2 host=$3 i=1 p
    shift 3
    {
        cat <<YAML
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: $name, namespace: istio-system}
spec:
  hosts: ["$host"]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints:
YAML
        for p in "$@"; do
            echo "  - {address: 127.0.0.1, ports: {http: $p}, labels: {version: v$i}}"
            i=$((i + 1))
        done
    } >"$dir/se-$name.yaml"
}

# dp_wait_log FILE REGEX: wait up to 3 s for a line matching REGEX.
dp_wait_log() {
    local i
    for ((i = 0; i < 30; i++)); do
        grep -Eq -- "$2" "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}
