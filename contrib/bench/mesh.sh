#!/bin/bash
# mesh.sh - what ISTIO_MUTUAL to the upstream costs meshgate (meshgate only;
# not a test).
#
#   bash contrib/bench/mesh.sh [ROUNDS] [SECONDS]
#
# One gateway, one HTTPS front (SIMPLE TLS, keep-alive clients: wrk -t2
# -c64), two upstreams answering "ok" from the same nginx: plain HTTP on
# 127.0.0.1:19190, and mutual TLS on 127.0.0.1:19191 with a workload SPIFFE
# certificate (ssl_verify_client against the mesh root), reached over
# ISTIO_MUTUAL with secure naming. Interleaved rounds, four cases:
#   a) plain upstream, pooled keep-alive connections
#   b) ISTIO_MUTUAL upstream, pooled keep-alive connections
#   c) plain upstream, a new upstream connection per request
#      (DestinationRule maxRequestsPerConnection: 1)
#   d) ISTIO_MUTUAL upstream, a new upstream connection (full mTLS
#      handshake: no client session reuse) per request
# and, as a baseline for d, e) `openssl s_time -new` making the same mutual
# TLS handshakes straight to the origin; and HAProxy in the same places
# (f: its TLS front to the plain origin, g: to the mutual-TLS origin with a
# client certificate, both with http-reuse always), so that what the
# upstream's TLS costs any proxy on this machine is beside ours. Prints the medians, b/a (goal >=
# 0.90), d/c, d/e, and d against what `openssl speed`
# says one core can do for the handshake's signatures on the gateway side
# (one ECDSA P-256 signature for its CertificateVerify, two verifications:
# the server's CertificateVerify and its certificate; the ECDHE and the
# server side, nginx on the same 2 cores, cost on top). Knobs: MESHGATE (the
# binary; built into _build/bench otherwise); MESH_PIN=1: the proxies (one
# worker each) on the last CPU, the nginx origin and the clients on the
# others, so that the proxy is the bottleneck and b/a is what the upstream's
# TLS costs it rather than what it costs the origin beside it.
set -eu
rounds=${1:-3}
secs=${2:-8}
top=$(cd "$(dirname "$0")/../.." && pwd)
bash "$top/contrib/install-deps.sh" bench
bdir=$top/_build/bench
bin=${MESHGATE:-$bdir/meshgate}
if [ ! -x "$bin" ]; then
  (cd "$top" && { [ -x configure ] || autoreconf -fi >/dev/null; } &&
   mkdir -p "$bdir" && cd "$bdir" && { [ -f Makefile ] || "$top/configure" -q CFLAGS="-O2 -g"; } &&
   make -s -j"$(nproc)" meshgate >/dev/null)
fi
workers=$(nproc)
pin_proxy=() pin_rest=()
if [ "${MESH_PIN:-0}" = 1 ] && [ "$workers" -ge 2 ]; then
  last=$((workers - 1))
  pin_proxy=(taskset -c "$last")
  pin_rest=(taskset -c "0-$((last - 1))")
  workers=1
fi
ulimit -n 65536 2>/dev/null || ulimit -n 20000 2>/dev/null || true
w=$(mktemp -d /tmp/mg-meshbench.XXXXXX)
pids=()
. "$top/contrib/bench/lib.sh"
cleanup() { bench_stop; rm -rf "$w"; }
trap cleanup EXIT

"$bin" ca init --dir "$w/ca" >/dev/null
"$bin" ca issue --dir "$w/ca" --dns app.example.com --out-dir "$w" >/dev/null
"$bin" ca issue --dir "$w/ca" --spiffe ns/istio-system/sa/ingressgateway --out-dir "$w/gw" >/dev/null
"$bin" ca issue --dir "$w/ca" --spiffe ns/bench/sa/origin --out-dir "$w/origin" >/dev/null

cat > "$w/origin.conf" <<NGX
worker_processes 1; daemon off; pid $w/origin.pid; error_log $w/origin.err;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000;
  server { listen 127.0.0.1:19190 reuseport backlog=4096; location / { return 200 "ok\n"; } }
  server { listen 127.0.0.1:19191 ssl reuseport backlog=4096;
    ssl_certificate $w/origin/cert-chain.pem; ssl_certificate_key $w/origin/key.pem;
    ssl_client_certificate $w/origin/root-cert.pem; ssl_verify_client on;
    ssl_protocols TLSv1.2 TLSv1.3; ssl_session_cache off; ssl_session_tickets off;
    location / { return 200 "ok\n"; } } }
NGX
"${pin_rest[@]}" nginx -c "$w/origin.conf" & pids+=($!)
ngx_pid=$!

mkdir -p "$w/cfg"
cat > "$w/cfg/config.yaml" <<YAML
apiVersion: meshgate.io/v1alpha1
kind: MeshConfig
spec: {accessLogFile: ""}
---
apiVersion: meshgate.io/v1alpha1
kind: Proxy
metadata: {name: bench, namespace: istio-system, labels: {istio: ingressgateway}}
spec:
  workers: $workers
  serviceAccount: ingressgateway
  bindAddress: 127.0.0.1
  admin: 127.0.0.1:39002
  identity: {certificateChain: $w/gw/cert-chain.pem, privateKey: $w/gw/key.pem, rootCertificates: $w/gw/root-cert.pem}
  credentials:
    app: {certificate: $w/app.example.com.crt, privateKey: $w/app.example.com.key}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 39445, name: https, protocol: HTTPS}
    hosts: ["*"]
    tls: {mode: SIMPLE, credentialName: app}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: app, namespace: istio-system}
spec:
  hosts: [app.example.com]
  gateways: [gw]
  http:
  - match: [{uri: {prefix: /plain-new/}}]
    route: [{destination: {host: plain-new.bench.svc.cluster.local, port: {number: 80}}}]
  - match: [{uri: {prefix: /mesh-new/}}]
    route: [{destination: {host: mesh-new.bench.svc.cluster.local, port: {number: 80}}}]
  - match: [{uri: {prefix: /plain/}}]
    route: [{destination: {host: plain.bench.svc.cluster.local, port: {number: 80}}}]
  - match: [{uri: {prefix: /mesh/}}]
    route: [{destination: {host: mesh.bench.svc.cluster.local, port: {number: 80}}}]
YAML
# entry NAME UPSTREAM_PORT TLS_MODE MAX_REQUESTS_PER_CONNECTION
entry() {
  cat >> "$w/cfg/config.yaml" <<YAML
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: $1, namespace: bench}
spec:
  hosts: [$1.bench.svc.cluster.local]
  location: MESH_INTERNAL
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {http: $2}, serviceAccount: origin}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: $1, namespace: bench}
spec:
  host: $1.bench.svc.cluster.local
  trafficPolicy:
    tls: {mode: $3}
    connectionPool: {http: {maxRequestsPerConnection: $4}}
YAML
}
entry plain 19190 DISABLE 0
entry mesh 19191 ISTIO_MUTUAL 0
entry plain-new 19190 DISABLE 1
entry mesh-new 19191 ISTIO_MUTUAL 1
cat "$w/gw/cert-chain.pem" "$w/gw/key.pem" > "$w/gw/combined.pem"
cat "$w/app.example.com.crt" "$w/app.example.com.key" > "$w/front.pem"
{ hap_head 4000; cat <<HAP
frontend tls
  bind 127.0.0.1:39446 ssl crt $w/front.pem alpn http/1.1
  use_backend mtls if { path_beg /mesh/ }
  default_backend plain
backend plain
  server o1 127.0.0.1:19190
backend mtls
  server o2 127.0.0.1:19191 ssl verify required ca-file $w/gw/root-cert.pem crt $w/gw/combined.pem
HAP
} > "$w/haproxy.cfg"
"$bin" check -c "$w/cfg" >/dev/null
"${pin_proxy[@]}" "$bin" run -c "$w/cfg" >"$w/gw.log" 2>&1 & pids+=($!)
mg_pid=$!
"${pin_proxy[@]}" haproxy -f "$w/haproxy.cfg" -db >"$w/haproxy.log" 2>&1 & pids+=($!)
hap_pid=$!

for port in 19190 19191 39445 39446; do
  for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.2; done
done
for _ in $(seq 100); do
  [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:39002/ready" || true)" = 200 ] && break
  sleep 0.2
done

# the setup must behave as described, or the numbers mean nothing
code() { curl -sk -o /dev/null -w '%{http_code}' -H 'Host: app.example.com' "$@" || true; }
# expect NAME PORT LOG PATH...: every path answers 200 through that proxy
expect() {
  local name=$1 port=$2 log=$3 p c
  shift 3
  for p in "$@"; do
    c=$(code "https://127.0.0.1:$port/$p/x")
    if [ "$c" != 200 ]; then
      echo "mesh.sh: $name /$p/ answers $c (want 200); its log:" >&2
      tail -n 20 "$log" >&2
      exit 1
    fi
  done
}
expect meshgate 39445 "$w/gw.log" plain mesh plain-new mesh-new
expect HAProxy 39446 "$w/haproxy.log" plain mesh

res="$w/results"
: > "$res"
wrk_rps() { "${pin_rest[@]}" wrk "$@" 2>/dev/null | awk '/Requests\/sec/ {print $2}'; }
hz=$(getconf CLK_TCK)
# measured CASE PROXY_PID CMD...: CMD prints a count (req/s, or requests
# done); the line "CASE count proxy-CPU-s origin-CPU-s" (the CPU seconds the
# proxy and the nginx origin spent while CMD ran)
measured() {
  local k=$1 pid=$2 g0 o0 g1 o1 v
  shift 2
  g0=$(cpu_ticks "$pid"); o0=$(cpu_ticks "$ngx_pid")
  v=$("$@")
  g1=$(cpu_ticks "$pid"); o1=$(cpu_ticks "$ngx_pid")
  echo "$k ${v:-0} $(awk -v g=$((g1 - g0)) -v o=$((o1 - o0)) -v hz="$hz" 'BEGIN {print g / hz, o / hz}')" >> "$res"
  echo "${v:-0}"
}
# run CASE PROXY_PID PORT PATH: one wrk run (requests per second)
run() {
  local v
  v=$(measured "$1" "$2" wrk_rps -t2 -c64 -d"${secs}s" -H 'Host: app.example.com' "https://127.0.0.1:$3/$4/x")
  echo "round $r $1 $v req/s" >&2
}
rate=${MESH_RATE:-16000}
# fixed CASE PROXY_PID PORT PATH: h2load at $rate req/s for $secs s (the
# count is requests done, not a rate)
h2_fixed() {
  "${pin_rest[@]}" timeout $((secs * 3 + 10)) h2load --h1 -c64 -t2 --rps=$((rate / 64)) -n $((rate * secs)) \
    -H ':authority: app.example.com' "$1" 2>/dev/null |
    awk '/^requests:/ {print $8; if ($10 != 0) print "mesh.sh: failed requests: " $0 > "/dev/stderr"}'
}
fixed() {
  local v
  v=$(measured "$1" "$2" h2_fixed "https://127.0.0.1:$3/$4/x")
  echo "round $r $1 $v requests at $rate/s" >&2
}
for r in $(seq "$rounds"); do
  for s in plain mesh plain-new mesh-new; do run "$s" "$mg_pid" 39445 "$s"; done
  for s in plain mesh; do run "hap-$s" "$hap_pid" 39446 "$s"; done
  # the same offered load on both upstreams (h2load --rps, HTTP/1.1
  # keep-alive, $rate req/s in all): the proxy's CPU per request at equal
  # load, kernel time included (a proxy driven to saturation batches more
  # per wakeup than one that is not, which biases CPU-per-request taken
  # from the runs above against the slower case)
  for s in plain mesh; do fixed "fix-$s" "$mg_pid" 39445 "$s"; done
  for s in plain mesh; do fixed "fix-hap-$s" "$hap_pid" 39446 "$s"; done
  # the same mutual TLS handshake straight to the origin (one client, no gateway)
  v=$("${pin_rest[@]}" openssl s_time -connect 127.0.0.1:19191 -new -cert "$w/gw/cert-chain.pem" -key "$w/gw/key.pem" \
        -time "$secs" 2>/dev/null | awk '/connections in [0-9]+ real seconds/ {printf "%.1f", $1 / $4}')
  echo "direct ${v:-0}" >> "$res"
  echo "round $r direct mTLS handshakes ${v:-0}/s" >&2
done

a=$(awk '$1=="plain" {print $2}' "$res" | median)
b=$(awk '$1=="mesh" {print $2}' "$res" | median)
c=$(awk '$1=="plain-new" {print $2}' "$res" | median)
d=$(awk '$1=="mesh-new" {print $2}' "$res" | median)
e=$(awk '$1=="direct" {print $2}' "$res" | median)
f=$(awk '$1=="hap-plain" {print $2}' "$res" | median)
g=$(awk '$1=="hap-mesh" {print $2}' "$res" | median)
# the ratio of each round, then their median and range (the rounds swing)
ratios() { paste <(awk -v k="$1" '$1==k {print $2}' "$res") <(awk -v k="$2" '$1==k {print $2}' "$res") |
  ratio_stats | awk '{printf "%.2f (%.2f-%.2f)", $1, $2, $3}'; }
rb=$(ratios mesh plain)
rg=$(ratios hap-mesh hap-plain)
# requests per CPU-second of the proxy (and of the origin), per round; the
# ratio of the proxy's: what the upstream's TLS costs the proxy itself,
# whatever the client and the origin on the same cores take
eff() { awk -v k="$1" -v c="$2" -v t="$secs" '$1==k && $c > 0 {print $2 * t / $c}' "$res"; }
effr() { paste <(eff "$1" "$3") <(eff "$2" "$3") | ratio_stats | awk '{printf "%.2f (%.2f-%.2f)", $1, $2, $3}'; }
cb=$(effr mesh plain 3)
cg=$(effr hap-mesh hap-plain 3)
for k in plain mesh hap-plain hap-mesh; do
  printf '%s %s %s\n' "$k" "$(eff "$k" 3 | median)" "$(eff "$k" 4 | median)"
done > "$w/eff"
# one core's ECDSA P-256 signs and verifies per second
sp=$(openssl speed -seconds 2 ecdsap256 2>/dev/null | awk '/256 bits ecdsa \(nistp256\)/ {print $(NF-1), $NF}')
sign=${sp% *}
verify=${sp#* }
printf '\n%-44s %12s %8s\n' case req/s ratio
awk -v a="$a" -v b="$b" -v c="$c" -v d="$d" -v e="$e" -v f="${f:-0}" -v g="${g:-0}" -v s="$sign" -v v="$verify" -v n="$workers" 'BEGIN {
  printf "%-44s %12.0f %8.2f\n", "a) plain upstream, keep-alive", a, 1
  printf "%-44s %12.0f %8.2f\n", "b) ISTIO_MUTUAL upstream, keep-alive", b, (a>0?b/a:0)
  printf "%-44s %12.0f %8.2f\n", "c) plain upstream, new connection each", c, (a>0?c/a:0)
  printf "%-44s %12.0f %8.2f\n", "d) ISTIO_MUTUAL, new connection each", d, (c>0?d/c:0)
  printf "%-44s %12.0f %8.2f\n", "e) openssl s_time, mTLS straight to nginx", e, (e>0?d/e:0)
  printf "%-44s %12.0f %8.2f\n", "f) HAProxy, plain upstream, keep-alive", f, (a>0?f/a:0)
  printf "%-44s %12.0f %8.2f\n", "g) HAProxy, mTLS upstream, keep-alive", g, (f>0?g/f:0)
  bound = (s > 0 && v > 0) ? 1 / (1 / s + 2 / v) : 0
  printf "\nopenssl speed (one core): %.0f ECDSA P-256 signs/s, %.0f verifies/s:\n", s, v
  printf "  at most %.0f gateway-side handshakes/s per core (1 sign + 2 verifies), %.0f on %d cores;\n", bound, bound * n, n
  printf "  d) is %.2f of that bound (ECDHE, the TLS front, nginx and wrk share the cores)\n", (bound > 0 ? d / (bound * n) : 0) }'
echo "per-round ratios, median (min-max): meshgate b/a $rb, HAProxy g/f $rg"
printf '\n%-44s %12s %12s\n' "requests per CPU-second" proxy origin
awk '{printf "%-44s %12.0f %12.0f\n", $1, $2, $3}' "$w/eff"
echo "per-round ratios of the proxy's requests per CPU-second (what ISTIO_MUTUAL costs the proxy):"
echo "  meshgate mesh/plain $cb, HAProxy mesh/plain $cg"
# at the fixed rate: CPU microseconds per request, and the ratio of requests per CPU-second
usreq() { awk -v k="$1" '$1==k && $2 > 0 {print $3 * 1e6 / $2}' "$res" | median; }
fr() { paste <(awk -v k="$1" '$1==k && $3 > 0 {print $2 / $3}' "$res") <(awk -v k="$2" '$1==k && $3 > 0 {print $2 / $3}' "$res") |
  ratio_stats | awk '{printf "%.2f (%.2f-%.2f)", $1, $2, $3}'; }
printf '\nat a fixed %s req/s (h2load --rps), proxy CPU per request:\n' "$rate"
printf '  meshgate: plain %.1f us, ISTIO_MUTUAL %.1f us; requests per CPU-second mesh/plain %s\n' \
  "$(usreq fix-plain)" "$(usreq fix-mesh)" "$(fr fix-mesh fix-plain)"
printf '  HAProxy:  plain %.1f us, mTLS %.1f us; requests per CPU-second mesh/plain %s\n' \
  "$(usreq fix-hap-plain)" "$(usreq fix-hap-mesh)" "$(fr fix-hap-mesh fix-hap-plain)"
echo "(median of $rounds interleaved rounds of ${secs}s; wrk -t2 -c64 keep-alive to the front; $workers workers; goal: b/a >= 0.90)"
