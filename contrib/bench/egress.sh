#!/bin/bash
# egress.sh - the ways out: meshgate vs Squid and HAProxy (and a direct
# download as the ceiling) on this machine, same allow-list, same origin.
# Not a test (CI never runs it).
#
#   bash contrib/bench/egress.sh [ROUNDS] [SECONDS]
#
# Scenarios:
#   tunnel    one 100 MB download through a CONNECT tunnel (MB/s; "direct"
#             is the same download without a proxy)
#   connect   CONNECT setup rate: 2000 tunnels, each a new connection, one
#             small request, from 8 client processes (connect-rate.pl;
#             tunnels/s)
#   absolute  absolute-form GET http://origin.bench:19091/ over keep-alive
#             connections (wrk, requests/s)
#   wildcard  the same to dyn.origin.bench, a host only a wildcard entry
#             covers (meshgate's dynamic cluster, resolved per request)
#   sni       one 100 MB HTTPS download through an SNI passthrough (MB/s):
#             meshgate's Gateway PASSTHROUGH server vs HAProxy `mode tcp`
#             routing on req.ssl_sni; "direct" is the origin's TLS port
#   snisetup  new TLS connections through the SNI passthrough, one small
#             request each (connect-rate.pl --tls: 1000, 8 clients; conn/s)
# HAProxy cannot end a CONNECT itself (it forwards the method to a server),
# so it runs the absolute-form and SNI lines only; Squid has no SNI
# splice without ssl-bump, so it runs the forward-proxy lines only.
# Every proxy allows only origin.bench:19091 and dyn.origin.bench:19091
# (and origin.bench:19443 by SNI) (meshgate: REGISTRY_ONLY, one ServiceEntry
# and one *.origin.bench entry, names from a hosts file; Squid: an
# http_access allow-list and the same hosts file; HAProxy: ACLs on the Host and the SNI, the address fixed as
# the STATIC endpoint is), runs as many workers as there are CPUs, and logs
# nothing. Everything listens on 127.0.0.1 only. MESHGATE=path of the binary.
set -eu
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
w=$(mktemp -d /tmp/mg-bench-egress.XXXXXX)
chmod 755 "$w"
pids=()
. "$top/contrib/bench/lib.sh"
cleanup() {
  [ -f "$w/squid.pid" ] && kill "$(cat "$w/squid.pid")" 2>/dev/null || true
  bench_stop; rm -rf "$w"
}
trap cleanup EXIT

# --- origin: nginx with a 100 MB file ---
mkdir -p "$w/www"
head -c $((100 * 1024 * 1024)) /dev/urandom > "$w/www/big"
echo ok > "$w/www/index.html"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=origin.bench \
  -addext subjectAltName=DNS:origin.bench -keyout "$w/origin.key" -out "$w/origin.crt" 2>/dev/null
cat > "$w/origin.conf" <<NGX
worker_processes 1; daemon off; pid $w/origin.pid; error_log $w/origin.err;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000; sendfile on;
  server { listen 127.0.0.1:19091 reuseport backlog=4096; root $w/www; }
  server { listen 127.0.0.1:19443 ssl reuseport backlog=4096; root $w/www;
    ssl_certificate $w/origin.crt; ssl_certificate_key $w/origin.key; } }
NGX
nginx -c "$w/origin.conf" & pids+=($!)

# --- Squid: 127.0.0.1:29128 ---
printf '127.0.0.1 origin.bench\n127.0.0.1 dyn.origin.bench\n' > "$w/hosts"
cat > "$w/squid.conf" <<SQ
http_port 127.0.0.1:29128
workers $workers
acl allowed dstdomain origin.bench dyn.origin.bench
acl bench_port port 19091
acl CONNECT method CONNECT
http_access allow CONNECT allowed bench_port
http_access allow allowed bench_port
http_access deny all
hosts_file $w/hosts
cache deny all
cache_mem 0
access_log none
cache_log $w/squid.log
pid_filename $w/squid.pid
coredump_dir $w
SQ
squid -f "$w/squid.conf" -N -d0 >"$w/squid.out" 2>&1 & pids+=($!)

# --- HAProxy: absolute-form on 127.0.0.1:49128, SNI passthrough on :49443 ---
cat > "$w/haproxy.cfg" <<HA
global
  nbthread $workers
  maxconn 4000
defaults
  timeout connect 5s
  timeout client 60s
  timeout server 60s
frontend fwd
  mode http
  option http-keep-alive
  bind 127.0.0.1:49128
  http-request deny if METH_CONNECT
  http-request deny unless { req.hdr(host) -i origin.bench:19091 }
  default_backend origin
backend origin
  mode http
  http-reuse always
  server o 127.0.0.1:19091
frontend sni
  mode tcp
  bind 127.0.0.1:49443
  option splice-auto
  tcp-request inspect-delay 5s
  tcp-request content accept if { req.ssl_hello_type 1 }
  use_backend origin_tls if { req.ssl_sni -i origin.bench }
backend origin_tls
  mode tcp
  option splice-auto
  server o 127.0.0.1:19443
HA
haproxy -f "$w/haproxy.cfg" -db >"$w/haproxy.out" 2>&1 & pids+=($!)

# --- meshgate: forward proxy on 127.0.0.1:39128, PASSTHROUGH on :39443 ---
mkdir -p "$w/mg"
cat > "$w/mg/config.yaml" <<YAML
apiVersion: meshgate.io/v1alpha1
kind: MeshConfig
spec:
  accessLogFile: ""
  outboundTrafficPolicy: {mode: REGISTRY_ONLY}
---
apiVersion: meshgate.io/v1alpha1
kind: Proxy
metadata: {name: bench, namespace: bench, labels: {istio: egressgateway}}
spec:
  workers: $workers
  bindAddress: 127.0.0.1
  admin: 127.0.0.1:39000
  outbound: {bind: 127.0.0.1:39128}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: origin, namespace: bench}
spec:
  hosts: [origin.bench]
  ports: [{number: 19091, name: http, protocol: HTTP}, {number: 19443, name: tls, protocol: TLS}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: wild, namespace: bench}
spec:
  hosts: ["*.origin.bench"]
  ports: [{number: 19091, name: http, protocol: HTTP}]
  resolution: NONE
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: egress, namespace: bench}
spec:
  selector: {istio: egressgateway}
  servers:
  - port: {number: 39443, name: tls, protocol: TLS}
    hosts: [origin.bench]
    tls: {mode: PASSTHROUGH}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: sni, namespace: bench}
spec:
  hosts: [origin.bench]
  gateways: [egress]
  tls:
  - match: [{port: 39443, sniHosts: [origin.bench]}]
    route: [{destination: {host: origin.bench, port: {number: 19443}}}]
YAML
MESHGATE_HOSTS_FILE="$w/hosts" "$bin" run -c "$w/mg" >"$w/mg.log" 2>&1 & pids+=($!)

for port in 19091 19443 29128 39128 39443 49128 49443; do
  for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.2; done
done

declare -A port=([meshgate]=39128 [squid]=29128 [haproxy]=49128)
declare -A sniport=([meshgate]=39443 [haproxy]=49443 [direct]=19443)
want=$(sha256sum < "$w/www/big" | cut -d' ' -f1)
for p in meshgate squid; do
  got=$(curl -s -p -x "http://127.0.0.1:${port[$p]}" http://origin.bench:19091/big | sha256sum | cut -d' ' -f1)
  a=$(curl -s -o /dev/null -w '%{http_code}' -x "http://127.0.0.1:${port[$p]}" http://origin.bench:19091/)
  d=$(curl -s -o /dev/null -w '%{http_connect}' -p -x "http://127.0.0.1:${port[$p]}" http://other.bench:19091/ || true)
  if [ "$got" != "$want" ] || [ "$a" != 200 ] || [ "$d" != 403 ]; then
    echo "egress.sh: $p: tunnel checksum $([ "$got" = "$want" ] && echo ok || echo BAD)," \
         "absolute-form $a (want 200), unlisted CONNECT $d (want 403)" >&2
    exit 1
  fi
done
a=$(curl -s -o /dev/null -w '%{http_code}' -x http://127.0.0.1:49128 http://origin.bench:19091/ || true)
[ "$a" = 200 ] || cat "$w/haproxy.out" >&2
d=$(curl -s -o /dev/null -w '%{http_code}' -x http://127.0.0.1:49128 http://other.bench:19091/ || true)
[ "$a" = 200 ] && [ "$d" = 403 ] ||
  { echo "egress.sh: haproxy: absolute-form $a (want 200), unlisted $d (want 403)" >&2; exit 1; }
for p in meshgate haproxy direct; do
  got=$(curl -s --cacert "$w/origin.crt" --resolve "origin.bench:${sniport[$p]}:127.0.0.1" \
        "https://origin.bench:${sniport[$p]}/big" | sha256sum | cut -d' ' -f1)
  [ "$got" = "$want" ] || { echo "egress.sh: $p: SNI passthrough checksum BAD" >&2; exit 1; }
  [ $p = direct ] && continue
  if curl -s -k --resolve "other.bench:${sniport[$p]}:127.0.0.1" "https://other.bench:${sniport[$p]}/" >/dev/null; then
    echo "egress.sh: $p: an unlisted SNI got through" >&2; exit 1
  fi
done

cat > "$w/abs.lua" <<'LUA'
wrk.path = "http://origin.bench:19091/"
wrk.headers["Host"] = "origin.bench:19091"
LUA
cat > "$w/wild.lua" <<'LUA'
wrk.path = "http://dyn.origin.bench:19091/"
wrk.headers["Host"] = "dyn.origin.bench:19091"
LUA
mbps() { curl -s -o /dev/null -w '%{speed_download}' "$@" | awk '{printf "%.0f\n", $1 / 1048576}'; }
tunnels() {   # tunnels/s: 2000 CONNECTs, 8 clients, each a new connection and one GET
  perl "$top/contrib/bench/connect-rate.pl" "$1" origin.bench:19091 2000 8
}
snis() {   # TLS connections/s through the SNI port $1: 1000, 8 clients, no resumption
  perl "$top/contrib/bench/connect-rate.pl" --tls "$w/origin.crt" "$1" origin.bench:19443 1000 8
}
res="$w/results"
: > "$res"
for r in $(seq "$rounds"); do
  for p in direct meshgate haproxy; do
    v=$(mbps --cacert "$w/origin.crt" --resolve "origin.bench:${sniport[$p]}:127.0.0.1" \
        "https://origin.bench:${sniport[$p]}/big")
    echo "sni $p $v" >> "$res"; echo "round $r sni $p $v MB/s" >&2
    v=$(snis "${sniport[$p]}")
    echo "snisetup $p $v" >> "$res"; echo "round $r snisetup $p $v conn/s" >&2
  done
  v=$(wrk -t2 -c64 -d"${secs}s" -s "$w/abs.lua" "http://127.0.0.1:49128/" 2>/dev/null |
      awk '/Requests\/sec/ {print $2} /Non-2xx/ {print "egress.sh: error answers: " $0 > "/dev/stderr"}')
  echo "absolute haproxy ${v:-0}" >> "$res"; echo "round $r absolute haproxy ${v:-0} req/s" >&2
  v=$(mbps http://127.0.0.1:19091/big); echo "tunnel direct $v" >> "$res"; echo "round $r tunnel direct $v MB/s" >&2
  for p in meshgate squid; do
    v=$(mbps -p -x "http://127.0.0.1:${port[$p]}" http://origin.bench:19091/big)
    echo "tunnel $p $v" >> "$res"; echo "round $r tunnel $p $v MB/s" >&2
    v=$(tunnels "${port[$p]}")
    echo "connect $p $v" >> "$res"; echo "round $r connect $p $v tunnels/s" >&2
    v=$(wrk -t2 -c64 -d"${secs}s" -s "$w/abs.lua" "http://127.0.0.1:${port[$p]}/" 2>/dev/null |
        awk '/Requests\/sec/ {print $2} /Non-2xx/ {print "egress.sh: error answers: " $0 > "/dev/stderr"}')
    echo "absolute $p ${v:-0}" >> "$res"; echo "round $r absolute $p ${v:-0} req/s" >&2
    v=$(wrk -t2 -c64 -d"${secs}s" -s "$w/wild.lua" "http://127.0.0.1:${port[$p]}/" 2>/dev/null |
        awk '/Requests\/sec/ {print $2} /Non-2xx/ {print "egress.sh: error answers: " $0 > "/dev/stderr"}')
    echo "wildcard $p ${v:-0}" >> "$res"; echo "round $r wildcard $p ${v:-0} req/s" >&2
  done
done

ratio() { awk -v a="$1" -v b="${2:-0}" 'BEGIN {if (b > 0) printf "%.2f", a / b; else print "-"}'; }
printf '\n%-10s %10s %10s %10s %10s %9s %9s %9s\n' scenario meshgate squid haproxy direct \
  mg/squid mg/hap mg/direct
for s in tunnel connect absolute wildcard sni snisetup; do
  m=$(awk -v s=$s '$1==s && $2=="meshgate" {print $3}' "$res" | median)
  q=$(awk -v s=$s '$1==s && $2=="squid" {print $3}' "$res" | median)
  h=$(awk -v s=$s '$1==s && $2=="haproxy" {print $3}' "$res" | median)
  d=$(awk -v s=$s '$1==s && $2=="direct" {print $3}' "$res" | median)
  printf '%-10s %10s %10s %10s %10s %9s %9s %9s\n' "$s" "$m" "${q:--}" "${h:--}" "${d:--}" \
    "$(ratio "$m" "$q")" "$(ratio "$m" "$h")" "$(ratio "$m" "$d")"
done
# min and max of every line, so that a noisy round shows
echo
awk '{k=$1" "$2; if (!(k in lo) || $3<lo[k]) lo[k]=$3; if (!(k in hi) || $3>hi[k]) hi[k]=$3}
     END {for (k in lo) printf "%-20s min %10s max %10s\n", k, lo[k], hi[k]}' "$res" | sort
