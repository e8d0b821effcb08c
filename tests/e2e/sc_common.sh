# sc_common.sh - shared setup for the sidecar e2e scripts (tests/e2e/6*.sh).
# Source after lib.sh. A sidecar-mode meshgate for workload default/httpbin
# (labels app=httpbin) with two inbound ports in front of one mg_upstream:
# workload port 80 on SC_B1 and workload port 9080 on SC_B2 (127.0.0.1).

# sc_config DIR UPSTREAM_PORT: write the Proxy + MeshConfig, set SC_CFG,
# SC_B1, SC_B2, MG_ADMIN and SC_ACCESS_LOG.
sc_config() {
    local dir=$1 up=$2
    SC_CFG=$dir
    SC_B1=$(mg_free_port)
    SC_B2=$(mg_free_port)
    export MG_ADMIN=127.0.0.1:$(mg_free_port)
    SC_ACCESS_LOG=$(dirname "$dir")/access.log
    cat >"$dir/00-proxy.yaml" <<YAML
apiVersion: meshgate.io/v1alpha1
kind: Proxy
metadata: {name: httpbin, namespace: default, labels: {app: httpbin}}
spec:
  mode: sidecar
  admin: $MG_ADMIN
  workers: 2
  serviceAccount: httpbin
  identity: {certificateChain: $MG_PKI/httpbin/cert-chain.pem, privateKey: $MG_PKI/httpbin/key.pem, rootCertificates: $MG_PKI/root-cert.pem}
  timeouts: {handshake: 3s, requestHeaders: 5s, idle: 60s, drain: 2s}
  inbound:
  - {port: 80, bind: 127.0.0.1:$SC_B1, forwardTo: 127.0.0.1:$up, protocol: HTTP}
  - {port: 9080, bind: 127.0.0.1:$SC_B2, forwardTo: 127.0.0.1:$up, protocol: HTTP}
---
apiVersion: meshgate.io/v1alpha1
kind: MeshConfig
spec:
  accessLogFile: $SC_ACCESS_LOG
  accessLogEncoding: JSON
YAML
}

# sc_pa DIR NAME NAMESPACE MODE [EXTRA_SPEC_YAML]: a PeerAuthentication file
# (MODE "" = no mtls); EXTRA_SPEC_YAML lines are appended under spec.
sc_pa() {
    local dir=$1 name=$2 ns=$3 mode=$4 extra=${5:-}
    {
        printf 'apiVersion: security.istio.io/v1\nkind: PeerAuthentication\n'
        printf 'metadata: {name: %s, namespace: %s, creationTimestamp: "2024-01-01T00:00:00Z"}\nspec:\n' "$name" "$ns"
        [ -n "$mode" ] && printf '  mtls: {mode: %s}\n' "$mode"
        [ -n "$extra" ] && printf '%s\n' "$extra"
    } >"$dir/40-pa-$name.yaml"
}

# sc_plain PORT PATH: status of a plain-text GET (000 = no HTTP answer).
sc_plain() {
    mg_http_code "http://127.0.0.1:$1$2"
}

# sc_tls PORT PATH [CERT_DIR]: status of a TLS GET with curl's own ALPN
# (h2, http/1.1: not an Istio token); the server certificate is the
# workload's SPIFFE certificate, so only the chain is checked (-k would
# skip it; --cacert + no host check is not in curl, so -k it is).
sc_tls() {
    local c=()
    [ -n "${3:-}" ] && c=(--cert "$3/cert-chain.pem" --key "$3/key.pem")
    mg_http_code -k --http1.1 "${c[@]}" "https://127.0.0.1:$1$2"
}

# sc_istio PORT PATH CERT_DIR [ALPN]: a raw HTTP/1.1 GET over TLS offering
# the Istio ALPN (default istio-http/1.1,http/1.1), client cert from
# CERT_DIR; prints the response (empty when refused). Sets SC_STATUS.
sc_istio() {
    local alpn=${4:-istio-http/1.1,http/1.1} c=()
    [ -n "${3:-}" ] && c=(-cert "$3/cert-chain.pem" -key "$3/key.pem")
    SC_OUT=$(mg_raw_tls "$1" httpbin.default \
        "GET $2 HTTP/1.1\r\nHost: httpbin\r\nX-Envoy-Foo: evil\r\nConnection: close\r\n\r\n" \
        -alpn "$alpn" -CAfile "$MG_PKI/root-cert.pem" "${c[@]}" | tr -d '\000')
    SC_STATUS=$(printf '%s' "$SC_OUT" | head -n 1 | awk '{print $2}')
    [ -n "$SC_STATUS" ] || SC_STATUS=000
}

# sc_authz NAME WANT_RC PORT PATH [PRINCIPAL]: `meshgate authz` on the same
# facts (workload port, principal); WANT_RC 0 allow, 1 deny.
sc_authz() {
    local a=(--url "http://httpbin$4" --port "$3" --source-ip 127.0.0.1)
    [ -n "${5:-}" ] && a+=(--principal "$5")
    "$MESHGATE" authz -c "$SC_CFG" "${a[@]}" >"$MG_TMP/authz.out" 2>&1
    if ! is "$?" "$2" "$1 (meshgate authz agrees)"; then
        diag - <"$MG_TMP/authz.out"
    fi
}

# sc_reload GEN: SIGHUP and wait for generation GEN.
sc_reload() {
    local i
    kill -HUP "$MG_MESHGATE_PID"
    for ((i = 0; i < 50; i++)); do
        grep -q "generation $1 active" "$MG_MESHGATE_LOG" && return 0
        sleep 0.1
    done
    tail -n 20 "$MG_MESHGATE_LOG" >&2
    return 1
}
