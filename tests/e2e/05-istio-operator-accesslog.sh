#!/bin/bash
# 05-istio-operator-accesslog.sh - the access log block of an Istio
# tutorial, an IstioOperator (install.istio.io/v1alpha1) whose
# spec.meshConfig sets accessLogFile /dev/stdout, accessLogEncoding JSON
# and a JSON accessLogFormat, pasted as is: over a MUTUAL gateway port each
# request is one JSON line with the TLS version and the client certificate's
# subject filled. Then the Envoy operators an Istio format uses, and an
# unknown operator refused by `meshgate check` at its line and column.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"

mg_pki || bail_out "cannot make a PKI"
P=$MG_PKI
mg_start_upstream --name v1 || bail_out "upstream"
up=$MG_UPSTREAM_PORT
port=$(mg_free_port)
export MG_ADMIN=127.0.0.1:$(mg_free_port)
cfg=$(mg_tmpdir cfg)
cat >"$cfg/00-gw.yaml" <<YAML
apiVersion: meshgate.io/v1alpha1
kind: Proxy
metadata: {name: gw, namespace: istio-system, labels: {istio: ingressgateway}}
spec:
  bindAddress: 127.0.0.1
  admin: $MG_ADMIN
  workers: 2
  credentials:
    mtls-cert: {certificate: $P/server.crt, privateKey: $P/server.key, caCertificates: $P/root-cert.pem}
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
kind: Gateway
metadata: {name: gw, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: $port, name: mtls, protocol: HTTPS}
    hosts: ["mtls.example.com"]
    tls: {mode: MUTUAL, credentialName: mtls-cert}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: app, namespace: istio-system}
spec:
  hosts: ["mtls.example.com"]
  gateways: ["gw"]
  http:
  - route:
    - destination: {host: backend.local, port: {number: 80}}
YAML
# The seed's document, exactly as the tutorial prints it.
cat >"$cfg/access-logs-config.yaml" <<'YAML'
apiVersion: install.istio.io/v1alpha1
kind: IstioOperator
metadata:
  name: access-logs
spec:
  meshConfig:
    accessLogFile: /dev/stdout
    accessLogEncoding: JSON
    accessLogFormat: |
      {
        "timestamp": "%START_TIME%",
        "method": "%REQ(:METHOD)%",
        "path": "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%",
        "response_code": "%RESPONSE_CODE%",
        "source_app": "%DOWNSTREAM_LOCAL_ADDRESS%",
        "destination_app": "%UPSTREAM_HOST%",
        "mtls": "%DOWNSTREAM_TLS_VERSION%",
        "principal": "%DOWNSTREAM_PEER_SUBJECT%"
      }
YAML

out=$("$MESHGATE" check -c "$cfg" 2>&1)
ok "meshgate check accepts the pasted IstioOperator" test $? -eq 0
like "$out" "^0 errors" "no error from check"

ok "gateway starts" mg_start_meshgate "$cfg"
CL=(--cacert "$P/root-cert.pem" --cert "$P/client.crt" --key "$P/client.key")
for i in 1 2 3; do
    mg_curl "${CL[@]}" "https://mtls.example.com:$port/echo?n=$i" >/dev/null
done
subject=$(openssl x509 -in "$P/client.crt" -noout -subject -nameopt RFC2253 | sed 's/^subject=//')
# the log goes to the gateway's stdout: its JSON lines are the access log
lines=""
for _ in $(seq 1 50); do
    lines=$(grep -E '^\{"timestamp"' "$MG_MESHGATE_LOG")
    [ "$(printf '%s\n' "$lines" | grep -c .)" -ge 3 ] && break
    sleep 0.1
done
is "$(printf '%s\n' "$lines" | grep -c .)" 3 "three JSON access log lines on stdout"
l=$(printf '%s\n' "$lines" | grep '/echo?n=2')
is "$(mg_json_field "$l" mtls)" "TLSv1.3" "mtls: the TLS version"
isnt "$subject" "" "the client certificate has a subject"
is "$(mg_json_field "$l" principal)" "$subject" "principal: the client certificate's subject (RFC 2253)"
is "$(mg_json_field "$l" method)" GET "method"
is "$(mg_json_field "$l" path)" "/echo?n=2" "path: X-ENVOY-ORIGINAL-PATH absent, so :PATH"
like "$l" '"response_code":200[,}]' "response_code is a JSON number"
is "$(mg_json_field "$l" source_app)" "127.0.0.1:$port" "source_app: the downstream local address"
is "$(mg_json_field "$l" destination_app)" "127.0.0.1:$up" "destination_app: the upstream host"
like "$(mg_json_field "$l" timestamp)" '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z$' "timestamp"
ok "each line is valid JSON" python3 -c 'import json,sys; [json.loads(x) for x in sys.stdin if x.strip()]' <<<"$lines"

# --- Istio's default TEXT format operators, plus the TLS and timing ones
bad=$(mg_tmpdir bad)
cp "$cfg/00-gw.yaml" "$bad/"
cat >"$bad/mesh.yaml" <<'YAML'
apiVersion: install.istio.io/v1alpha1
kind: IstioOperator
metadata: {name: text}
spec:
  profile: default
  meshConfig:
    accessLogFile: /dev/stdout
    enablePrometheusMerge: true
    accessLogFormat: "[%START_TIME%] %DOWNSTREAM_TLS_CIPHER% %DOWNSTREAM_PEER_ISSUER% %RESPONSE_CODE_DETAILS% %CONNECTION_TERMINATION_DETAILS% %UPSTREAM_TRANSPORT_FAILURE_REASON% %UPSTREAM_LOCAL_ADDRESS% %REQUEST_DURATION% %RESPONSE_DURATION% %FILTER_STATE(downstream_peer)% %REQ(USER-AGENT):3% %START_TIME(%Y)%\n"
YAML
out=$("$MESHGATE" check -c "$bad" 2>&1)
ok "check accepts Istio's operators" test $? -eq 0
like "$out" 'spec.profile is not used here' "IstioOperator spec.profile: a warning"
like "$out" 'enablePrometheusMerge' "an Istio meshConfig field not used here: a warning"

sed -i 's/%RESPONSE_DURATION%/%RESPONSE_DURATON%/' "$bad/mesh.yaml"
out=$("$MESHGATE" check -c "$bad" 2>&1)
fails "check refuses an unknown operator" test $? -eq 0
col=$(( $(sed -n 9p "$bad/mesh.yaml" | grep -bo '%RESPONSE_DURATON%' | cut -d: -f1) + 1 ))
like "$out" "mesh.yaml:9:$col: .*unknown command operator %RESPONSE_DURATON%" "at its FILE:LINE:COL"

# in the JSON template, the line of the value inside the block
cp "$cfg/access-logs-config.yaml" "$bad/mesh.yaml"
sed -i 's/%DOWNSTREAM_PEER_SUBJECT%/%DOWNSTREAM_PEER_SUBJ%/' "$bad/mesh.yaml"
out=$("$MESHGATE" check -c "$bad" 2>&1)
like "$out" "mesh.yaml:18:23: .*unknown command operator %DOWNSTREAM_PEER_SUBJ%" "JSON template: the operator's line and column"
sed -i 's/"principal"/"principal" 1/' "$bad/mesh.yaml"
out=$("$MESHGATE" check -c "$bad" 2>&1)
like "$out" "mesh.yaml:18:[0-9]+: .*not a JSON object" "JSON template that does not parse: its line"

done_testing
