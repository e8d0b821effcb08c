#!/bin/bash
# run.sh - meshgate vs nginx vs HAProxy on this machine, same worker count,
# same origin, in interleaved rounds. Not a test (CI never runs it).
#
#   bash contrib/bench/run.sh [ROUNDS] [SECONDS]
#
# Scenarios: HTTPS keep-alive proxy (wrk), HTTP/2 proxy (h2load), a new TLS
# connection per request (wrk with Connection: close), HTTP->HTTPS redirect
# (wrk). The origin is one nginx process answering "ok" on 127.0.0.1:19090.
# Prints the median requests/s per scenario and the meshgate/nginx and
# meshgate/HAProxy ratios. Everything listens on 127.0.0.1 only.
# Knobs (environment): MESHGATE=path of the binary; BENCH_PROXIES (default
# "meshgate nginx haproxy") and BENCH_SCENARIOS (default "keepalive h2
# newconn redirect") narrow a run, e.g. while profiling; BENCH_PERF=FILE
# records the meshgate process with `perf record -g` into FILE for the run.
set -eu
proxies=${BENCH_PROXIES:-meshgate nginx haproxy}
scenarios=${BENCH_SCENARIOS:-keepalive h2 newconn redirect}
rounds=${1:-3}
secs=${2:-8}
top=$(cd "$(dirname "$0")/../.." && pwd)
bash "$top/contrib/install-deps.sh" bench
bin=${MESHGATE:-$top/_build/bench/meshgate}
if [ ! -x "$bin" ]; then
  (cd "$top" && { [ -x configure ] || autoreconf -fi >/dev/null; } &&
   mkdir -p _build/bench && cd _build/bench && { [ -f Makefile ] || "$top/configure" -q CFLAGS="-O2 -g"; } &&
   make -s -j"$(nproc)" meshgate >/dev/null)
fi
workers=$(nproc)
ulimit -n 65536 2>/dev/null || ulimit -n 20000 2>/dev/null || true
w=$(mktemp -d /tmp/mg-bench.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; sleep 0.3; rm -rf "$w"; }
trap cleanup EXIT

"$bin" ca init --dir "$w/ca" >/dev/null
"$bin" ca issue --dir "$w/ca" --dns app.example.com --out-dir "$w" >/dev/null
"$bin" ca issue --dir "$w/ca" --spiffe ns/bench/sa/gw --out-dir "$w/id" >/dev/null
cat "$w/app.example.com.crt" "$w/app.example.com.key" > "$w/combined.pem"

# --- origin (shared by all three) ---
cat > "$w/origin.conf" <<NGX
worker_processes 1; daemon off; pid $w/origin.pid; error_log $w/origin.err;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000;
  server { listen 127.0.0.1:19090 reuseport backlog=4096; location / { return 200 "ok\n"; } } }
NGX
nginx -c "$w/origin.conf" & pids+=($!)

# --- nginx proxy: 127.0.0.1:18443 (TLS, h2) and :18080 (redirect) ---
cat > "$w/nginx.conf" <<NGX
worker_processes $workers; daemon off; pid $w/nginx.pid; error_log $w/nginx.err;
events { worker_connections 8192; }
http { access_log off; keepalive_requests 1000000;
  upstream origin { server 127.0.0.1:19090; keepalive 64; }
  server { listen 127.0.0.1:18443 ssl http2 reuseport; server_name app.example.com;
    ssl_certificate $w/app.example.com.crt; ssl_certificate_key $w/app.example.com.key;
    ssl_protocols TLSv1.2 TLSv1.3; ssl_session_tickets on;
    location / { proxy_pass http://origin; proxy_http_version 1.1; proxy_set_header Connection ""; } }
  server { listen 127.0.0.1:18080 reuseport; location / { return 301 https://\$host\$request_uri; } } }
NGX
nginx -c "$w/nginx.conf" & pids+=($!)

# --- HAProxy: 127.0.0.1:28443 and :28080 ---
cat > "$w/haproxy.cfg" <<HAP
global
  nbthread $workers
  maxconn 8000
  tune.ssl.default-dh-param 2048
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  http-reuse always
frontend tls
  bind 127.0.0.1:28443 ssl crt $w/combined.pem alpn h2,http/1.1
  default_backend origin
frontend plain
  bind 127.0.0.1:28080
  http-request redirect scheme https code 301
backend origin
  server o1 127.0.0.1:19090
HAP
haproxy -f "$w/haproxy.cfg" -db & pids+=($!)

# --- meshgate: 127.0.0.1:38443 and :38080 ---
mkdir -p "$w/mg"
cat > "$w/mg/config.yaml" <<YAML
apiVersion: meshgate.io/v1alpha1
kind: MeshConfig
spec: {accessLogFile: ""}
---
apiVersion: meshgate.io/v1alpha1
kind: Proxy
metadata: {name: bench, namespace: bench, labels: {istio: ingressgateway}}
spec:
  workers: $workers
  serviceAccount: gw
  bindAddress: 127.0.0.1
  admin: 127.0.0.1:38000
  identity: {certificateChain: $w/id/cert-chain.pem, privateKey: $w/id/key.pem, rootCertificates: $w/id/root-cert.pem}
  credentials:
    app: {certificate: $w/app.example.com.crt, privateKey: $w/app.example.com.key}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: bench}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 38443, name: https, protocol: HTTPS}
    hosts: ["*"]            # wrk and h2load send the IP as SNI; nginx and HAProxy ignore it too
    tls: {mode: SIMPLE, credentialName: app}
  - port: {number: 38080, name: http, protocol: HTTP}
    hosts: [app.example.com]
    tls: {httpsRedirect: true}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: app, namespace: bench}
spec:
  hosts: [app.example.com]
  gateways: [gw]
  http:
  - route: [{destination: {host: origin.local, port: {number: 19090}}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: origin, namespace: bench}
spec:
  hosts: [origin.local]
  ports: [{number: 19090, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1}]
YAML
"$bin" run -c "$w/mg" >"$w/mg.log" 2>&1 & pids+=($!)
mgpid=$!

for port in 19090 18443 28443 38443 38080; do
  for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.2; done
done
for _ in $(seq 100); do
  [ "$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:38000/ready || true)" = 200 ] && break
  sleep 0.2
done

if [ -n "${BENCH_PERF:-}" ]; then
  perf record -e cpu-clock -g -o "$BENCH_PERF" -p "$mgpid" >/dev/null 2>&1 & perfpid=$!
  sleep 0.5
fi

declare -A port_tls=([meshgate]=38443 [nginx]=18443 [haproxy]=28443)
declare -A port_plain=([meshgate]=38080 [nginx]=18080 [haproxy]=28080)
# Every scenario must get the answer it is meant to measure, or its number
# means nothing. (h2load's -H host: adds a Host header next to :authority,
# which a strict server refuses with 400: set :authority itself.)
for p in $proxies; do
  t=${port_tls[$p]} u=${port_plain[$p]}
  c1=$(curl -sk -o /dev/null -w '%{http_code}' -H 'Host: app.example.com' "https://127.0.0.1:$t/" || true)
  c2=$(curl -sk -o /dev/null -w '%{http_code}' -H 'Host: app.example.com' "http://127.0.0.1:$u/x" || true)
  c3=$({ h2load -n20 -c1 -H ':authority: app.example.com' "https://127.0.0.1:$t/" 2>/dev/null || true; } |
       awk '/^status codes:/ {print $3}')
  if [ "$c1 $c2 $c3" != "200 301 20" ]; then
    echo "run.sh: $p answers https=$c1 redirect=$c2 h2-2xx=$c3/20 (want 200 301 20)" >&2
    exit 1
  fi
done

res="$w/results"
: > "$res"

# a run with error answers (4xx/5xx, failed streams) is reported on stderr
wrk_rps() { wrk "$@" 2>/dev/null | awk '/Requests\/sec/ {print $2}
  /Non-2xx or 3xx/ {print "run.sh: error answers: " $0 > "/dev/stderr"}'; }
h2_rps() { h2load "$@" 2>/dev/null | awk '/^finished in/ {gsub(",","",$4); print $4}
  /^requests:/ && $10 != 0 {print "run.sh: failed h2 requests: " $0 > "/dev/stderr"}'; }

for r in $(seq "$rounds"); do
  for s in $scenarios; do
    for p in $proxies; do
      t=${port_tls[$p]} u=${port_plain[$p]}
      case $s in
        keepalive) v=$(wrk_rps -t2 -c64 -d"${secs}s" -H 'Host: app.example.com' "https://127.0.0.1:$t/") ;;
        h2) v=$(h2_rps -c32 -m10 -D"$secs" -t2 -H ':authority: app.example.com' "https://127.0.0.1:$t/") ;;
        newconn) v=$(wrk_rps -t2 -c32 -d"${secs}s" -H 'Host: app.example.com' -H 'Connection: close' "https://127.0.0.1:$t/") ;;
        redirect) v=$(wrk_rps -t2 -c64 -d"${secs}s" -H 'Host: app.example.com' "http://127.0.0.1:$u/x") ;;
      esac
      echo "$s $p ${v:-0}" >> "$res"
      echo "round $r $s $p ${v:-0} req/s" >&2
    done
  done
done

if [ -n "${perfpid:-}" ]; then kill -INT "$perfpid"; wait "$perfpid" || true; fi

median() { sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
printf '\n%-10s %12s %12s %12s %10s %10s\n' scenario meshgate nginx haproxy mg/nginx mg/haproxy
for s in $scenarios; do
  m=$(awk -v s=$s '$1==s && $2=="meshgate" {print $3}' "$res" | median)
  n=$(awk -v s=$s '$1==s && $2=="nginx" {print $3}' "$res" | median)
  h=$(awk -v s=$s '$1==s && $2=="haproxy" {print $3}' "$res" | median)
  awk -v s=$s -v m="$m" -v n="$n" -v h="$h" 'BEGIN {
    printf "%-10s %12.0f %12.0f %12.0f %10.2f %10.2f\n", s, m, n, h, (n>0?m/n:0), (h>0?m/h:0) }'
done
echo "(median of $rounds interleaved rounds of ${secs}s; $workers workers each; origin nginx on 127.0.0.1:19090)"
