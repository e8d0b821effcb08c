#!/bin/bash
# 29-h2-local-reply.sh - HTTP/2 answers that end before the request body:
# a local reply (403 RBAC, 404 no route, 401 bad JWT, ext_authz deny with
# the provider's body) to an upload of 1 KB, 100 KB and 3 MB, 20 times
# each, must reach curl whole. The gateway tells the client to stop with
# RST_STREAM(NO_ERROR) only after a PING round trip: sent together with
# the END_STREAM, curl 7.88 dropped the response it had read but not yet
# delivered ((92) Stream error in the HTTP/2 framing layer, or (18)
# transfer closed with N bytes remaining).
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"

command -v nghttp >/dev/null || skip_all "nghttp (nghttp2-client) is not installed"
curl --version | grep -q HTTP2 || skip_all "curl without HTTP/2"
JWT_TOOL=${MG_JWT_TOOL:-$MG_BUILDDIR/tests/helpers/mg_jwt_tool}
[ -x "$JWT_TOOL" ] || bail_out "no $JWT_TOOL"
ROUNDS=${MG_H2LR_ROUNDS:-20}

mg_pki || bail_out "cannot make a PKI"
mg_start_upstream --name up1 || bail_out "upstream"
up=$MG_UPSTREAM_PORT
mg_start_upstream --name authz || bail_out "authz server"
az=$MG_UPSTREAM_PORT
K=$(mg_tmpdir keys)
"$JWT_TOOL" genkey --type rsa --kid k1 --out "$K/k1.pem" --jwks-out "$K/jwks.json" >/dev/null ||
    bail_out "JWKS"
port=$(mg_free_port)
export MG_ADMIN=127.0.0.1:$(mg_free_port)
CFG=$(mg_tmpdir cfg)
cat >"$CFG/gw.yaml" <<YAML
apiVersion: meshgate.io/v1alpha1
kind: MeshConfig
spec:
  extensionProviders:
  - name: ext
    envoyExtAuthzHttp: {service: authz.local, port: 9000, timeout: 2s}
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
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: $port, name: https, protocol: HTTPS}
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
  - match: [{uri: {prefix: /echo}}, {uri: {prefix: /rbac}}, {uri: {prefix: /status}}, {uri: {prefix: /jwt}}]
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
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: authz, namespace: istio-system}
spec:
  hosts: ["authz.local"]
  ports: [{number: 9000, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {http: $az}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-rbac, namespace: istio-system}
spec:
  action: DENY
  rules:
  - to: [{operation: {paths: ["/rbac/*"]}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: ext-check, namespace: istio-system}
spec:
  action: CUSTOM
  provider: {name: ext}
  rules:
  - to: [{operation: {paths: ["/status/*"]}}]
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt, namespace: istio-system}
spec:
  jwtRules:
  - issuer: https://issuer.example.com
    jwks: '$(cat "$K/jwks.json")'
YAML

ok "gateway starts" mg_start_meshgate "$CFG"
U=https://app.example.com:$port

# lr NAME WANT_CODE PATH FILE [curl args]: ROUNDS uploads of FILE over
# HTTP/2; every one must end with curl's exit 0, WANT_CODE and a body of
# the announced length. Prints the first failure.
lr() {
    local name=$1 want=$2 path=$3 file=$4 i out rc bad=0 first=
    shift 4
    for i in $(seq 1 "$ROUNDS"); do
        out=$(mg_curl --http2 --cacert "$MG_PKI/root-cert.pem" -o "$MG_TMP/lr.body" \
            -D "$MG_TMP/lr.hdrs" -w '%{http_code} %{http_version} %{size_download}' \
            --data-binary "@$file" "$@" "$U$path" 2>&1)
        rc=$?
        cl=$(tr -d '\r' <"$MG_TMP/lr.hdrs" | sed -n 's/^content-length: //Ip' | tail -n 1)
        if [ "$rc/$out" != "0/$want 2 ${cl:-?}" ]; then
            bad=$((bad + 1))
            [ -n "$first" ] || first="round $i: rc $rc, '$out' (content-length ${cl:-none})"
        fi
    done
    is "$bad" 0 "$name: $ROUNDS of $ROUNDS complete" || diag "first failure: $first"
}

head -c 1000 /dev/urandom >"$MG_TMP/1k"
head -c 100000 /dev/urandom >"$MG_TMP/100k"
head -c 3000000 /dev/urandom >"$MG_TMP/3m"

# the control: the same uploads are accepted and arrive intact
want=$(sha256sum <"$MG_TMP/3m" | cut -d' ' -f1)
body=$(mg_curl --http2 --cacert "$MG_PKI/root-cert.pem" --data-binary "@$MG_TMP/3m" "$U/echo")
is "$(mg_json_field "$body" body_sha256)" "$want" "3 MB upload reaches the upstream intact"

for f in 1k 100k 3m; do
    lr "403 RBAC during a $f upload" 403 /rbac/x "$MG_TMP/$f"
    lr "404 no route during a $f upload" 404 /nowhere "$MG_TMP/$f"
    lr "401 bad JWT during a $f upload" 401 /jwt "$MG_TMP/$f" -H 'Authorization: Bearer not.a.jwt'
    lr "ext_authz deny (provider's 403 body) during a $f upload" 403 /status/403 "$MG_TMP/$f"
done
is "$(mg_json_field "$(cat "$MG_TMP/lr.body")" upstream)" authz \
    "the last ext_authz answer carried the provider's body"

# the client is still told to stop: a PING, then RST_STREAM(NO_ERROR)
v=$(nghttp -v -d "$MG_TMP/3m" -H ":authority: app.example.com" "https://127.0.0.1:$port/rbac/x" 2>&1)
frames=$(printf '%s\n' "$v" | grep -A1 -E 'recv (HEADERS|DATA|PING|RST_STREAM) frame' |
    sed -E -n 's/.*recv ([A-Z_]+) frame.*/\1/p; s/.*\((error_code=[A-Z_]+).*/\1/p' | tr '\n' ' ')
like "$frames" 'HEADERS DATA PING RST_STREAM error_code=NO_ERROR' \
    "early response, then a PING, then RST_STREAM(NO_ERROR) ($frames)"
like "$v" 'opaque_data=6d672d7273742d70' "the PING is the gateway's own"

done_testing
