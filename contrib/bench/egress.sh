#!/bin/bash
# egress.sh - the forward proxy: meshgate vs Squid (and a direct download as
# the ceiling) on this machine, same allow-list, same origin. Not a test (CI
# never runs it).
#
#   bash contrib/bench/egress.sh [ROUNDS] [SECONDS]
#
# Scenarios:
#   tunnel    one 100 MB download through a CONNECT tunnel (MB/s; "direct"
#             is the same download without a proxy)
#   connect   CONNECT setup rate: 400 tunnels, each a new connection, one
#             small request, 8 at a time (tunnels/s; curl's own start-up is
#             in both numbers)
#   absolute  absolute-form GET http://origin.bench:19091/ over keep-alive
#             connections (wrk, requests/s)
# Both proxies allow only origin.bench:19091 (meshgate: REGISTRY_ONLY and one
# ServiceEntry; Squid: an http_access allow-list and a hosts file), run as
# many workers as there are CPUs, and log nothing. Everything listens on
# 127.0.0.1 only. MESHGATE=path of the binary.
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
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -f "$w/squid.pid" ] && kill "$(cat "$w/squid.pid")" 2>/dev/null || true
  sleep 0.5; rm -rf "$w"
}
trap cleanup EXIT

# --- origin: nginx with a 100 MB file ---
mkdir -p "$w/www"
head -c $((100 * 1024 * 1024)) /dev/urandom > "$w/www/big"
echo ok > "$w/www/index.html"
cat > "$w/origin.conf" <<NGX
worker_processes 1; daemon off; pid $w/origin.pid; error_log $w/origin.err;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000; sendfile on;
  server { listen 127.0.0.1:19091 reuseport backlog=4096; root $w/www; } }
NGX
nginx -c "$w/origin.conf" & pids+=($!)

# --- Squid: 127.0.0.1:29128 ---
echo "127.0.0.1 origin.bench" > "$w/hosts"
cat > "$w/squid.conf" <<SQ
http_port 127.0.0.1:29128
workers $workers
acl allowed dstdomain origin.bench
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

# --- meshgate: forward proxy on 127.0.0.1:39128 ---
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
metadata: {name: bench, namespace: bench}
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
  ports: [{number: 19091, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1}]
YAML
"$bin" run -c "$w/mg" >"$w/mg.log" 2>&1 & pids+=($!)

for port in 19091 29128 39128; do
  for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.2; done
done

declare -A port=([meshgate]=39128 [squid]=29128)
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

cat > "$w/abs.lua" <<'LUA'
wrk.path = "http://origin.bench:19091/"
wrk.headers["Host"] = "origin.bench:19091"
LUA
mbps() { curl -s -o /dev/null -w '%{speed_download}' "$@" | awk '{printf "%.0f\n", $1 / 1048576}'; }
tunnels() {   # tunnels/s for 400 CONNECTs, 8 at a time
  local t0 t1
  t0=$(date +%s.%N)
  seq 400 | xargs -P8 -I{} curl -s -o /dev/null -p -x "http://127.0.0.1:$1" http://origin.bench:19091/
  t1=$(date +%s.%N)
  awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.0f\n", 400 / (b - a)}'
}
res="$w/results"
: > "$res"
for r in $(seq "$rounds"); do
  v=$(mbps http://127.0.0.1:19091/big); echo "tunnel direct $v" >> "$res"; echo "round $r tunnel direct $v MB/s" >&2
  for p in meshgate squid; do
    v=$(mbps -p -x "http://127.0.0.1:${port[$p]}" http://origin.bench:19091/big)
    echo "tunnel $p $v" >> "$res"; echo "round $r tunnel $p $v MB/s" >&2
    v=$(tunnels "${port[$p]}")
    echo "connect $p $v" >> "$res"; echo "round $r connect $p $v tunnels/s" >&2
    v=$(wrk -t2 -c64 -d"${secs}s" -s "$w/abs.lua" "http://127.0.0.1:${port[$p]}/" 2>/dev/null |
        awk '/Requests\/sec/ {print $2} /Non-2xx/ {print "egress.sh: error answers: " $0 > "/dev/stderr"}')
    echo "absolute $p ${v:-0}" >> "$res"; echo "round $r absolute $p ${v:-0} req/s" >&2
  done
done

median() { sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
printf '\n%-10s %12s %12s %12s %10s %12s\n' scenario meshgate squid direct mg/squid mg/direct
for s in tunnel connect absolute; do
  m=$(awk -v s=$s '$1==s && $2=="meshgate" {print $3}' "$res" | median)
  q=$(awk -v s=$s '$1==s && $2=="squid" {print $3}' "$res" | median)
  d=$(awk -v s=$s '$1==s && $2=="direct" {print $3}' "$res" | median)
  printf '%-10s %12s %12s %12s %10s %12s\n' "$s" "$m" "$q" "${d:--}" \
    "$(awk -v a="$m" -v b="$q" 'BEGIN {if (b > 0) printf "%.2f", a / b; else print "-"}')" \
    "$(awk -v a="$m" -v b="${d:-0}" 'BEGIN {if (b > 0) printf "%.2f", a / b; else print "-"}')"
done
