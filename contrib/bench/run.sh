#!/bin/bash
# run.sh - meshgate vs nginx vs HAProxy on this machine, same worker count,
# same origin, in interleaved rounds. Not a test (CI never runs it).
#
#   bash contrib/bench/run.sh [ROUNDS] [SECONDS]
#
# Scenarios (TLS 1.3, P-256 certificates unless named otherwise):
#   keepalive  HTTPS keep-alive, small response (wrk -t2 -c64)
#   big        HTTPS keep-alive, 16 KiB response (wrk)
#   h2, h2big  HTTP/2, small and 16 KiB responses (h2load -c32 -m10)
#   newconn    a full handshake per request (wrk, Connection: close)
#   resume     a resumed handshake per request: 2 clients of
#              tls_handshake.c (wrk cannot resume), each connection offering
#              the newest ticket the client holds, as browsers and curl do
#              (openssl s_time -reuse offers its first ticket over and over,
#              which hid a server that sent no new TLS 1.3 ticket after a
#              resumption); `full` is the same tool without tickets, so the
#              two compare like for like. A run where fewer than 99% of the
#              connections resume is reported on stderr.
#   rsa        a full handshake per request against an RSA-2048 certificate
#   mtls_ka    mutual TLS keep-alive (curl -Z, 32 connections: neither wrk
#              nor h2load sends a client certificate)
#   mtls_new   mutual TLS, a full handshake per request (s_time -new -cert)
#   mtls_h2    mutual TLS, HTTP/2 (curl -Z --http2, multiplexed)
#   redirect   HTTP->HTTPS redirect (wrk)
# and, after the rounds, memory: RSS per idle TLS and mTLS connection with
# BENCH_IDLE (default "1000 9000") connections held (hold-conns.pl).
# The origin is one nginx process answering "ok" (or 16 KiB) on
# 127.0.0.1:19090; it is also measured straight (the "origin" column, the
# ceiling for the HTTP lines), and `openssl speed` gives the ceiling for
# handshakes (ECDSA P-256 signatures and X25519 per core). Prints per
# scenario the median requests/s, min and max over the rounds, requests per
# CPU-second of the proxy's own processes, the median p99 latency of the
# wrk lines (ms), and the meshgate/nginx and meshgate/HAProxy ratios. Everything listens on 127.0.0.1 only.
# Knobs (environment): MESHGATE=path of the binary; BENCH_PROXIES (default
# "meshgate nginx haproxy") and BENCH_SCENARIOS narrow a run, e.g. while
# profiling; BENCH_IDLE="" skips the memory lines; BENCH_PERF=FILE records
# the meshgate process with `perf record -g` into FILE for the run;
# MESHGATE_BASE=path of another meshgate binary (a build before a change)
# adds it as the proxy "base" on the 39xxx ports, with the same
# configuration, and prints meshgate/base per scenario (median and range of
# the per-round ratios): a before/after figure from one interleaved run.
set -eu
proxies=${BENCH_PROXIES:-meshgate nginx haproxy}
if [ -n "${MESHGATE_BASE:-}" ]; then proxies="$proxies base"; fi
scenarios=${BENCH_SCENARIOS:-keepalive big h2 h2big newconn full resume rsa mtls_ka mtls_new mtls_h2 redirect}
# 10 000 held connections need more descriptors than this machine's hard
# limit of 20 000 lets HAProxy reserve (2 per connection): 9 000 here
idle_counts=${BENCH_IDLE-1000 9000}
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
chmod 755 "$w"                          # the origin's workers (nobody) read /16k
pids=()
. "$top/contrib/bench/lib.sh"
cleanup() { bench_stop; rm -rf "$w"; }
trap cleanup EXIT

"$bin" ca init --dir "$w/ca" >/dev/null
"$bin" ca issue --dir "$w/ca" --dns app.example.com --out-dir "$w" >/dev/null
"$bin" ca issue --dir "$w/ca" --spiffe ns/bench/sa/gw --out-dir "$w/id" >/dev/null
cat "$w/app.example.com.crt" "$w/app.example.com.key" > "$w/combined.pem"
"$bin" ca issue --dir "$w/ca" --dns client.example.com --client --name client --out-dir "$w" >/dev/null
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=app.example.com \
  -addext subjectAltName=DNS:app.example.com -keyout "$w/rsa.key" -out "$w/rsa.crt" 2>/dev/null
cat "$w/rsa.crt" "$w/rsa.key" > "$w/rsa.pem"
cp "$w/ca/root-cert.pem" "$w/client-ca.pem"
head -c 16384 /dev/urandom > "$w/16k" && chmod 644 "$w/16k"
${CC:-cc} -std=c11 -O2 "$top/contrib/bench/tls_handshake.c" -o "$w/tls_handshake" -lssl -lcrypto

# --- origin (shared by all three) ---
cat > "$w/origin.conf" <<NGX
worker_processes 1; daemon off; pid $w/origin.pid; error_log $w/origin.err;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000;
  server { listen 127.0.0.1:19090 reuseport backlog=4096; location / { return 200 "ok\n"; }
    location = /16k { alias $w/16k; } } }
NGX
nginx -c "$w/origin.conf" & pids+=($!)

# --- nginx proxy: 127.0.0.1:18443 (TLS, h2) and :18080 (redirect) ---
cat > "$w/nginx.conf" <<NGX
worker_processes $workers; daemon off; pid $w/nginx.pid; error_log $w/nginx.err;
events { worker_connections 10000; }
http { access_log off; keepalive_requests 1000000;
  upstream origin { server 127.0.0.1:19090; keepalive 64; }
  server { listen 127.0.0.1:18443 ssl http2 reuseport; server_name app.example.com;
    ssl_certificate $w/app.example.com.crt; ssl_certificate_key $w/app.example.com.key;
    ssl_protocols TLSv1.2 TLSv1.3; ssl_session_tickets on;
    location / { proxy_pass http://origin; proxy_http_version 1.1; proxy_set_header Connection ""; } }
  server { listen 127.0.0.1:18444 ssl reuseport; server_name app.example.com;
    ssl_certificate $w/rsa.crt; ssl_certificate_key $w/rsa.key;
    ssl_protocols TLSv1.2 TLSv1.3; ssl_session_tickets on;
    location / { proxy_pass http://origin; proxy_http_version 1.1; proxy_set_header Connection ""; } }
  server { listen 127.0.0.1:18445 ssl http2 reuseport; server_name app.example.com;
    ssl_certificate $w/app.example.com.crt; ssl_certificate_key $w/app.example.com.key;
    ssl_client_certificate $w/client-ca.pem; ssl_verify_client on;
    ssl_protocols TLSv1.2 TLSv1.3; ssl_session_tickets on;
    location / { proxy_pass http://origin; proxy_http_version 1.1; proxy_set_header Connection ""; } }
  server { listen 127.0.0.1:18080 reuseport; location / { return 301 https://\$host\$request_uri; } } }
NGX
nginx -c "$w/nginx.conf" & pids+=($!)

# --- HAProxy: 127.0.0.1:28443 and :28080 ---
{ hap_head 9500 "tune.ssl.default-dh-param 2048"; cat <<HAP
frontend tls
  bind 127.0.0.1:28443 ssl crt $w/combined.pem alpn h2,http/1.1
  bind 127.0.0.1:28444 ssl crt $w/rsa.pem alpn h2,http/1.1
  bind 127.0.0.1:28445 ssl crt $w/combined.pem ca-file $w/client-ca.pem verify required alpn h2,http/1.1
  default_backend origin
frontend plain
  bind 127.0.0.1:28080
  http-request redirect scheme https code 301
backend origin
  server o1 127.0.0.1:19090
HAP
} > "$w/haproxy.cfg"
haproxy -f "$w/haproxy.cfg" -db & pids+=($!)
hapid=$!

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
    rsa: {certificate: $w/rsa.crt, privateKey: $w/rsa.key}
    mtls: {certificate: $w/app.example.com.crt, privateKey: $w/app.example.com.key, caCertificates: $w/client-ca.pem}
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
  - port: {number: 38444, name: https-rsa, protocol: HTTPS}
    hosts: ["*"]
    tls: {mode: SIMPLE, credentialName: rsa}
  - port: {number: 38445, name: https-mtls, protocol: HTTPS}
    hosts: ["*"]
    tls: {mode: MUTUAL, credentialName: mtls}
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
basepid=
if [ -n "${MESHGATE_BASE:-}" ]; then
  mkdir -p "$w/base"
  sed 's/\b38\([0-9][0-9][0-9]\)\b/39\1/g' "$w/mg/config.yaml" > "$w/base/config.yaml"
  "$MESHGATE_BASE" run -c "$w/base" >"$w/base.log" 2>&1 & pids+=($!)
  basepid=$!
fi

for port in 19090 18443 18444 18445 28443 28444 28445 38443 38444 38445 38080 \
    ${MESHGATE_BASE:+39443 39444 39445 39080}; do
  for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.2; done
done
for admin in 38000 ${MESHGATE_BASE:+39000}; do
  for _ in $(seq 100); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$admin/ready" || true)" = 200 ] && break
    sleep 0.2
  done
done

if [ -n "${BENCH_PERF:-}" ]; then
  perf record -e cpu-clock -g -o "$BENCH_PERF" -p "$mgpid" >/dev/null 2>&1 & perfpid=$!
  sleep 0.5
fi

declare -A port_tls=([meshgate]=38443 [nginx]=18443 [haproxy]=28443 [base]=39443)
declare -A port_rsa=([meshgate]=38444 [nginx]=18444 [haproxy]=28444 [base]=39444)
declare -A port_mtls=([meshgate]=38445 [nginx]=18445 [haproxy]=28445 [base]=39445)
# the processes whose CPU a proxy's run costs (nginx: master and workers)
declare -A ppids=([meshgate]=$mgpid [nginx]="$(cat "$w/nginx.pid" 2>/dev/null)" [haproxy]="$hapid" [base]="$basepid")
declare -A port_plain=([meshgate]=38080 [nginx]=18080 [haproxy]=28080 [base]=39080)
# Every scenario must get the answer it is meant to measure, or its number
# means nothing. (h2load's -H host: adds a Host header next to :authority,
# which a strict server refuses with 400: set :authority itself.)
for p in $proxies; do
  t=${port_tls[$p]} u=${port_plain[$p]}
  c1=$(curl -sk -o /dev/null -w '%{http_code}' -H 'Host: app.example.com' "https://127.0.0.1:$t/" || true)
  c2=$(curl -sk -o /dev/null -w '%{http_code}' -H 'Host: app.example.com' "http://127.0.0.1:$u/x" || true)
  c3=$({ h2load -n20 -c1 -H ':authority: app.example.com' "https://127.0.0.1:$t/" 2>/dev/null || true; } |
       awk '/^status codes:/ {print $3}')
  c4=$(curl -sk -o /dev/null -w '%{http_code}' -H 'Host: app.example.com' "https://127.0.0.1:${port_rsa[$p]}/" || true)
  c5=$(curl -sk -o /dev/null -w '%{http_code}' --cert "$w/client.crt" --key "$w/client.key" \
       -H 'Host: app.example.com' "https://127.0.0.1:${port_mtls[$p]}/" || true)
  c6=$(curl -sk -o /dev/null -w '%{http_code}' -H 'Host: app.example.com' "https://127.0.0.1:${port_mtls[$p]}/" || true)
  c7=$(curl -sk -o /dev/null -w '%{size_download}' -H 'Host: app.example.com' "https://127.0.0.1:$t/16k" || true)
  if [ "$c1 $c2 $c3 $c4 $c5 $c7" != "200 301 20 200 200 16384" ] || [ "$c6" = 200 ]; then
    echo "run.sh: $p answers https=$c1 redirect=$c2 h2-2xx=$c3/20 rsa=$c4 mtls=$c5 mtls-without-cert=$c6" \
         "16k=$c7 bytes (want 200 301 20 200 200, not 200, 16384)" >&2
    case $p in meshgate) tail -n 5 "$w/mg.log" >&2 ;; base) tail -n 5 "$w/base.log" >&2 ;; esac
    exit 1
  fi
done

res="$w/results"
: > "$res"

# a run with error answers (4xx/5xx, failed streams) is reported on stderr
# (wrk's 99th percentile of latency goes to $w/p99, in ms)
wrk_rps() { wrk --latency "$@" 2>/dev/null | awk -v p99="$w/p99" '/Requests\/sec/ {print $2}
  /^ +99%/ {v=$2; if (v ~ /us$/) v=v/1000; else if (v ~ /ms$/) v=v+0; else if (v ~ /s$/) v=v*1000
            printf "%.3f\n", v > p99}
  /Non-2xx or 3xx/ {print "run.sh: error answers: " $0 > "/dev/stderr"}'; }
h2_rps() { h2load "$@" 2>/dev/null | awk '/^finished in/ {gsub(",","",$4); print $4}
  /^requests:/ && $10 != 0 {print "run.sh: failed h2 requests: " $0 > "/dev/stderr"}'; }

hz=$(getconf CLK_TCK)
# s_time_rps PORT FLAGS...: connections/s of two `openssl s_time` clients
s_time_rps() {
  local port=$1 i sp=()
  shift
  for i in 1 2; do
    timeout $((secs + 10)) openssl s_time -connect "127.0.0.1:$port" -www / -time "$secs" "$@" \
      >"$w/stime.$i" 2>/dev/null &
    sp+=($!)
  done
  wait "${sp[@]}" || true          # never a bare wait: the proxies are jobs of this shell too
  cat "$w/stime.1" "$w/stime.2" |
    awk '/connections in [0-9.]+ real seconds/ {t += $1 / $4} END {printf "%.0f\n", t}'
}
# hs_rps PORT full|resume: connections/s of two tls_handshake clients
hs_rps() {
  local i sp=()
  for i in 1 2; do
    "$w/tls_handshake" "$1" "$2" "$secs" / >"$w/hs.$i" 2>&1 &
    sp+=($!)
  done
  for i in 0 1; do
    wait "${sp[$i]}" || echo "run.sh: tls_handshake $1 $2: $(cat "$w/hs.$((i + 1))")" >&2
  done
  cat "$w/hs.1" "$w/hs.2" | awk '/^connections\/s/ {t += $2} END {printf "%.0f\n", t}'
}
# curl_rps ARGS...: requests/s of one curl fetching N URLs over 32 kept-alive
# connections (-Z), client certificate given by the caller
curl_rps() {
  local n=$((secs * 2500)) t0 t1 url=${*: -1} ok
  t0=$(date +%s.%N)
  ok=$(curl -sk -Z --parallel-max 32 -H 'Host: app.example.com' -w '%{http_code}\n' "${@:1:$#-1}" \
         "$url?[1-$n]" -o /dev/null 2>/dev/null | grep -c '^200$' || true)
  t1=$(date +%s.%N)
  [ "$ok" = "$n" ] || echo "run.sh: curl got $ok of $n answers 200 from $url" >&2
  awk -v n="$ok" -v a="$t0" -v b="$t1" 'BEGIN {printf "%.0f\n", n / (b - a)}'
}
MTLS=(--cert "$w/client.crt" --key "$w/client.key")
for r in $(seq "$rounds"); do
  for s in $scenarios; do
    for p in $proxies origin; do
      t=${port_tls[$p]:-} u=${port_plain[$p]:-}
      if [ "$p" = origin ]; then
        case $s in
          keepalive) v=$(wrk_rps -t2 -c64 -d"${secs}s" "http://127.0.0.1:19090/") ;;
          big) v=$(wrk_rps -t2 -c64 -d"${secs}s" "http://127.0.0.1:19090/16k") ;;
          *) continue ;;
        esac
        echo "$s origin ${v:-0} 0" >> "$res"
        continue
      fi
      c0=$(cpu_ticks "${ppids[$p]}")
      rm -f "$w/p99"
      case $s in
        keepalive) v=$(wrk_rps -t2 -c64 -d"${secs}s" -H 'Host: app.example.com' "https://127.0.0.1:$t/") ;;
        big) v=$(wrk_rps -t2 -c64 -d"${secs}s" -H 'Host: app.example.com' "https://127.0.0.1:$t/16k") ;;
        h2) v=$(h2_rps -c32 -m10 -D"$secs" -t2 -H ':authority: app.example.com' "https://127.0.0.1:$t/") ;;
        h2big) v=$(h2_rps -c32 -m10 -D"$secs" -t2 -H ':authority: app.example.com' "https://127.0.0.1:$t/16k") ;;
        newconn) v=$(wrk_rps -t2 -c32 -d"${secs}s" -H 'Host: app.example.com' -H 'Connection: close' "https://127.0.0.1:$t/") ;;
        full) v=$(hs_rps "$t" full) ;;
        resume) v=$(hs_rps "$t" resume) ;;
        rsa) v=$(wrk_rps -t2 -c32 -d"${secs}s" -H 'Host: app.example.com' -H 'Connection: close' "https://127.0.0.1:${port_rsa[$p]}/") ;;
        mtls_ka) v=$(curl_rps "${MTLS[@]}" --http1.1 "https://127.0.0.1:${port_mtls[$p]}/") ;;
        mtls_new) v=$(s_time_rps "${port_mtls[$p]}" -new "${MTLS[@]}") ;;
        mtls_h2) v=$(curl_rps "${MTLS[@]}" --http2 "https://127.0.0.1:${port_mtls[$p]}/") ;;
        redirect) v=$(wrk_rps -t2 -c64 -d"${secs}s" -H 'Host: app.example.com' "http://127.0.0.1:$u/x") ;;
      esac
      c1=$(cpu_ticks "${ppids[$p]}")
      echo "$s $p ${v:-0} $(awk -v d=$((c1 - c0)) -v hz="$hz" 'BEGIN {print d / hz}') $(cat "$w/p99" 2>/dev/null || echo -)" >> "$res"
      echo "round $r $s $p ${v:-0} req/s" >&2
    done
  done
done

if [ -n "${perfpid:-}" ]; then kill -INT "$perfpid"; wait "$perfpid" || true; fi

col() { awk -v s="$1" -v p="$2" -v c="$3" '$1==s && $2==p {print $c}' "$res"; }
# requests per CPU-second of the proxy: the round's requests over its CPU time
per_cpu() { awk -v s="$1" -v p="$2" -v t="$secs" '$1==s && $2==p && $4 > 0 {print $3 * t / $4}' "$res" | median; }
# median over the rounds of wrk's p99 latency (keep-alive and redirect lines)
p99() { awk -v s="$1" -v p="$2" '$1==s && $2==p && $5 != "-" && $5 != "" {print $5}' "$res" | median; }
printf '\n%-10s %10s %10s %10s %10s %8s %8s  %-23s %-24s %s\n' scenario meshgate nginx haproxy origin \
  mg/ngx mg/hap "meshgate min-max" "req per CPU-s mg/ngx/hap" "p99 ms mg/ngx/hap"
for s in $scenarios; do
  m=$(col "$s" meshgate 3 | median); n=$(col "$s" nginx 3 | median); h=$(col "$s" haproxy 3 | median)
  o=$(col "$s" origin 3 | median)
  lo=$(col "$s" meshgate 3 | sort -n | head -n 1); hi=$(col "$s" meshgate 3 | sort -n | tail -n 1)
  awk -v s="$s" -v m="${m:-0}" -v n="${n:-0}" -v h="${h:-0}" -v o="${o:--}" -v lo="${lo:-0}" -v hi="${hi:-0}" \
      -v cm="$(per_cpu "$s" meshgate)" -v cn="$(per_cpu "$s" nginx)" -v ch="$(per_cpu "$s" haproxy)" \
      -v pm="$(p99 "$s" meshgate)" -v pn="$(p99 "$s" nginx)" -v ph="$(p99 "$s" haproxy)" 'BEGIN {
    printf "%-10s %10.0f %10.0f %10.0f %10s %8.2f %8.2f  %-23s %-24s %s\n", s, m, n, h, o,
      (n>0?m/n:0), (h>0?m/h:0), sprintf("%.0f-%.0f", lo, hi), sprintf("%.0f/%.0f/%.0f", cm, cn, ch),
      (pm == "" ? "-" : pm "/" (pn == "" ? "-" : pn) "/" (ph == "" ? "-" : ph)) }'
done
echo "(median of $rounds interleaved rounds of ${secs}s; $workers workers each; origin nginx on 127.0.0.1:19090, 1 worker)"
if [ -n "${MESHGATE_BASE:-}" ]; then
  echo
  echo "meshgate ($bin) against base ($MESHGATE_BASE), ratios per round:"
  printf '%-10s %10s %10s %8s  %-28s %s\n' scenario meshgate base mg/base "min-max of the round ratios" \
    "mg/base per CPU-s"
  for s in $scenarios; do
    read -r rm rlo rhi < <(paste <(col "$s" meshgate 3) <(col "$s" base 3) | ratio_stats) || continue
    # requests per CPU-second, each proxy's: the rounds' requests over its CPU time
    read -r cm _ < <(paste <(col "$s" meshgate 3) <(col "$s" meshgate 4) <(col "$s" base 3) <(col "$s" base 4) |
                     awk '$2 > 0 && $4 > 0 {print $1 / $2, $3 / $4}' | ratio_stats) || cm=0
    printf '%-10s %10.0f %10.0f %8.3f  %-28s %.3f\n' "$s" "$(col "$s" meshgate 3 | median)" \
      "$(col "$s" base 3 | median)" "$rm" "$rlo-$rhi" "$cm"
  done
fi
echo
echo "ceiling for handshakes (openssl speed, one core):"
openssl speed -seconds 2 ecdsap256 ecdhx25519 2>/dev/null | awk '/^ *256 bits ecdsa/ {printf "  ECDSA P-256: %s signs/s, %s verifies/s\n", $(NF-1), $NF}
  /X25519/ && /op\/s/ {print "  " $0} /253 bits ecdh \(X25519\)/ {printf "  X25519: %s ops/s\n", $NF}'

# memory per idle connection: hold N TLS (then mTLS) connections open after
# their handshake and one request, and compare the proxy's resident memory
rss_kb() {
  local t=0 pid k
  for pid in $1 $(pgrep -P "${1%% *}" 2>/dev/null); do
    k=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null) || continue
    t=$((t + ${k:-0}))
  done
  echo "$t"
}
if [ -n "$idle_counts" ]; then
  echo
  printf '%-22s' "idle connections"; for p in $proxies; do printf ' %12s' "$p"; done; echo
  for n in $idle_counts; do
    for kind in tls mtls; do
      line=""
      for p in $proxies; do
        if [ "$kind" = tls ]; then port=${port_tls[$p]}; extra=(); else port=${port_mtls[$p]}; extra=(--cert "$w/client.crt" --key "$w/client.key"); fi
        before=$(rss_kb "${ppids[$p]}")
        rm -f "$w/ready.$p" "$w/ready.$p.n"    # never the count of the line before
        t0=$SECONDS
        perl "$top/contrib/bench/hold-conns.pl" "$port" "$n" "$w/ready.$p" "${extra[@]}" &
        hold=$!
        # the client makes some 100 handshakes a second: wait for all of them
        while [ ! -e "$w/ready.$p" ] && [ $((SECONDS - t0)) -lt $((60 + n / 20)) ]; do sleep 0.2; done
        sleep 1
        after=$(rss_kb "${ppids[$p]}")
        kill "$hold" 2>/dev/null; wait "$hold" 2>/dev/null || true
        rm -f "$w/ready.$p"
        held=$(cat "$w/ready.$p.n" 2>/dev/null || echo 0)
        [ "$held" = "$n" ] || echo "run.sh: $p held only $held of $n $kind connections" >&2
        line+=$(awk -v a="$after" -v b="$before" -v n="$held" 'BEGIN {printf " %12s", (n > 0 ? sprintf("%.1f KB", (a - b) / n) : "-")}')
        sleep 2
      done
      printf '%-22s%s\n' "$n $kind" "$line"
    done
  done
fi
