#!/bin/bash
# 06-istio-metrics.sh - Istio's standard metrics after a known set of
# requests: istio_requests_total with Istio's labels, the duration and byte
# histograms with Istio's buckets (exact counts per bucket), the istio_tcp_*
# counters of a TCP route, summed over two workers; and the certificate
# expiry gauge.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"

mg_pki || bail_out "cannot make a PKI"
P=$MG_PKI
mg_start_upstream --name v1 || bail_out "upstream"
up=$MG_UPSTREAM_PORT
port=$(mg_free_port)
tcp=$(mg_free_port)
export MG_ADMIN=127.0.0.1:$(mg_free_port)
cfg=$(mg_tmpdir cfg)
cat >"$cfg/gw.yaml" <<YAML
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
  ports: [{number: 80, name: http, protocol: HTTP}, {number: 9000, name: tcp, protocol: TCP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {http: $up, tcp: $up}}]
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
  - port: {number: $tcp, name: tcp, protocol: TCP}
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: app, namespace: istio-system}
spec:
  hosts: ["mtls.example.com"]
  gateways: ["gw"]
  http:
  - name: app
    route:
    - destination: {host: backend.local, port: {number: 80}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: tcp, namespace: istio-system}
spec:
  hosts: ["*"]
  gateways: ["gw"]
  tcp:
  - route: [{destination: {host: backend.local, port: {number: 9000}}}]
YAML

ok "gateway starts" mg_start_meshgate "$cfg"
CL=(--cacert "$P/root-cert.pem" --cert "$P/client.crt" --key "$P/client.key")
# the known set: 3 x 200 with a 500-byte body, 1 x 404, 1 POST of 50 bytes
for _ in 1 2 3; do mg_curl "${CL[@]}" "https://mtls.example.com:$port/bytes/500" >/dev/null; done
mg_curl "${CL[@]}" "https://mtls.example.com:$port/status/404" >/dev/null
mg_curl "${CL[@]}" -X POST --data-binary "$(printf '%050d' 0)" "https://mtls.example.com:$port/status/201" >/dev/null
# one TCP connection: a 38-byte request, the answer read until the upstream closes
req=$'GET /bytes/10 HTTP/1.0\r\nHost: x.y\r\n\r\n'
resp=$(timeout 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$tcp; printf '%s' \"\$1\" >&3; cat <&3" _ "$req" | wc -c)

# two refused handshakes on the MUTUAL port: no client certificate, plain HTTP
curl -s --max-time 5 --cacert "$P/root-cert.pem" --resolve "mtls.example.com:$port:127.0.0.1" \
    "https://mtls.example.com:$port/" >/dev/null 2>&1
curl -s --max-time 5 "http://127.0.0.1:$port/" >/dev/null 2>&1

page=""
for _ in $(seq 1 50); do
    page=$(curl -sS --max-time 5 "http://$MG_ADMIN/stats/prometheus")
    grep -q '^istio_tcp_connections_closed_total{.*} 1$' <<<"$page" && break
    sleep 0.1
done
printf '%s\n' "$page" | grep -E '^istio_(requests_total|tcp)' | sed 's/^/# /'
ok200='reporter="source",source_workload="unknown",destination_service="backend.local",destination_workload="unknown",request_protocol="http",response_code="200",route_name="app",destination_cluster="outbound|80||backend.local",source_principal="unknown",response_flags="-",response_flags_reason="",grpc_response_status="",connection_security_policy="mutual_tls"'
# series NAME LABELS EXTRA: the value of exactly NAME{LABELSEXTRA}
series() { awk -v p="$1{$2$3} " 'index($0, p) == 1 { print $NF }' <<<"$page"; }
# nseries NAME LABELS: how many series start NAME{LABELS
nseries() { awk -v p="$1{$2" 'index($0, p) == 1 { n++ } END { print n + 0 }' <<<"$page"; }
is "$(series istio_requests_total "$ok200" '')" 3 "istio_requests_total: three 200s with Istio's labels"
l404=${ok200/response_code=\"200\"/response_code=\"404\"}
is "$(series istio_requests_total "$l404" '')" 1 "one 404"
l201=${ok200/response_code=\"200\"/response_code=\"201\"}
is "$(series istio_requests_total "$l201" '')" 1 "one 201"
is "$(printf '%s\n' "$page" | grep -c '^istio_requests_total{')" 3 "three label sets, summed over the workers"

is "$(series istio_request_duration_milliseconds_bucket "$ok200" ',le="10000"')" 3 "duration: all three under 10 s"
is "$(series istio_request_duration_milliseconds_bucket "$ok200" ',le="+Inf"')" 3 "duration: +Inf bucket"
is "$(series istio_request_duration_milliseconds_count "$ok200" '')" 3 "duration: _count"
is "$(nseries istio_request_duration_milliseconds_bucket "$ok200,le=")" 20 \
    "duration: Istio's 19 buckets and +Inf"
for le in 0.5 1 5 10 25 50 100 250 500 1000 2500 5000 10000 30000 60000 300000 600000 1800000 3600000; do
    [ -n "$(series istio_request_duration_milliseconds_bucket "$ok200" ",le=\"$le\"")" ] || { fail "bucket le=$le"; break; }
done
pass "duration buckets are Istio's bounds"

# istio_request_bytes: what was read for the request, head and body (the
# three GETs are the same size); response bytes: the 500-byte bodies
# bucket_of N: the smallest of Istio's byte bounds that holds N
bucket_of() { for b in 1 10 100 1000 10000 100000 1000000 10000000; do [ "$1" -le $b ] && { echo $b; return; }; done; echo +Inf; }
below() { case $1 in 1) echo none ;; 10) echo 1 ;; 100) echo 10 ;; 1000) echo 100 ;; 10000) echo 1000 ;; *) echo x ;; esac; }
gsum=$(series istio_request_bytes_sum "$ok200" '')
ok "request bytes: the three GETs have the same size" test -n "$gsum" -a $((gsum % 3)) -eq 0
gb=$(bucket_of $((gsum / 3)))
is "$(series istio_request_bytes_bucket "$ok200" ",le=\"$gb\"")" 3 "request bytes: the three GETs in le=$gb"
[ "$gb" != 1 ] && is "$(series istio_request_bytes_bucket "$ok200" ",le=\"$(below "$gb")\"")" 0 "request bytes: none below"
psum=$(series istio_request_bytes_sum "$l201" '')
ok "request bytes: the POST counts its 50-byte body ($psum > $((gsum / 3)))" test "${psum:-0}" -ge $((50 + gsum / 3 - 20))
pb=$(bucket_of "$psum")
is "$(series istio_request_bytes_bucket "$l201" ",le=\"$pb\"")" 1 "request bytes: the POST in le=$pb"
is "$(series istio_request_bytes_bucket "$l201" ",le=\"$(below "$pb")\"")" 0 "request bytes: not below"
is "$(series istio_response_bytes_bucket "$ok200" ',le="100"')" 0 "response bytes: none under 100"
is "$(series istio_response_bytes_bucket "$ok200" ',le="1000"')" 3 "response bytes: three in le=1000"
is "$(series istio_response_bytes_sum "$ok200" '')" 1500 "response bytes: _sum is 3 x 500"
is "$(series istio_response_bytes_count "$ok200" '')" 3 "response bytes: _count"
is "$(nseries istio_response_bytes_bucket "$ok200,le=")" 9 \
    "byte buckets: Istio's 8 and +Inf"

tl='reporter="source",source_workload="unknown",source_principal="unknown",destination_service="backend.local",destination_workload="unknown",destination_cluster="outbound|9000||backend.local",request_protocol="tcp",connection_security_policy="none"'
is "$(series istio_tcp_connections_opened_total "$tl" '')" 1 "istio_tcp_connections_opened_total"
is "$(series istio_tcp_connections_closed_total "$tl" '')" 1 "istio_tcp_connections_closed_total"
is "$(series istio_tcp_received_bytes_total "$tl" '')" "${#req}" "istio_tcp_received_bytes_total: the request's bytes"
is "$(series istio_tcp_sent_bytes_total "$tl" '')" "$resp" "istio_tcp_sent_bytes_total: the answer's bytes"

is "$(series meshgate_tls_handshake_failures_total 'reason="no_client_certificate"' '')" 1 \
    "meshgate_tls_handshake_failures_total{reason=no_client_certificate}"
is "$(series meshgate_tls_handshake_failures_total 'reason="http_request"' '')" 1 \
    "meshgate_tls_handshake_failures_total{reason=http_request}"
printf '%s\n' "$page" | grep '^meshgate_tls_handshake' | sed 's/^/# /'

# the certificate expiry gauge: the server certificate's notAfter
na=$(date -d "$(openssl x509 -in "$P/server.crt" -noout -enddate | cut -d= -f2)" +%s)
like "$page" "meshgate_certificate_expiry_seconds\{source=\"server\",name=\"mtls-cert\",subject=\"[^\"]*\"\} $na" \
    "meshgate_certificate_expiry_seconds: the server certificate's notAfter"

done_testing
