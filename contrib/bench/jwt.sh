#!/bin/bash
# jwt.sh - what JWT authentication costs meshgate (meshgate only; not a test).
#
#   bash contrib/bench/jwt.sh [ROUNDS] [SECONDS]
#
# One config: a RequestAuthentication with an inline ES256 JWKS and an ALLOW
# policy with two rules, requestPrincipals on /alice/* and an open /open/*.
# Interleaved rounds of wrk over HTTPS keep-alive, three cases:
#   a) no token, on the open path (the JWT filter runs and finds nothing)
#   b) a valid ES256 token on /alice/ (the per-worker verified-token cache on)
#   c) the same token against a second instance started with
#      MESHGATE_JWT_CACHE_ENTRIES=0 (benchmark knob: every request verifies)
# Prints the median requests/s of each case and the ratios b/a and c/a. The
# origin is one nginx answering "ok" on 127.0.0.1:19190. Knobs: MESHGATE,
# MG_JWT_TOOL (paths of the binaries; built into _build/bench otherwise).
set -eu
rounds=${1:-3}
secs=${2:-8}
top=$(cd "$(dirname "$0")/../.." && pwd)
bash "$top/contrib/install-deps.sh" bench
bdir=$top/_build/bench
bin=${MESHGATE:-$bdir/meshgate}
tool=${MG_JWT_TOOL:-$bdir/tests/helpers/mg_jwt_tool}
if [ ! -x "$bin" ] || [ ! -x "$tool" ]; then
  (cd "$top" && { [ -x configure ] || autoreconf -fi >/dev/null; } &&
   mkdir -p "$bdir" && cd "$bdir" && { [ -f Makefile ] || "$top/configure" -q CFLAGS="-O2 -g"; } &&
   make -s -j"$(nproc)" meshgate tests/helpers/mg_jwt_tool >/dev/null)
fi
workers=$(nproc)
ulimit -n 65536 2>/dev/null || ulimit -n 20000 2>/dev/null || true
w=$(mktemp -d /tmp/mg-jwtbench.XXXXXX)
pids=()
. "$top/contrib/bench/lib.sh"
cleanup() { bench_stop; rm -rf "$w"; }
trap cleanup EXIT

"$bin" ca init --dir "$w/ca" >/dev/null
"$bin" ca issue --dir "$w/ca" --dns app.example.com --out-dir "$w" >/dev/null
"$bin" ca issue --dir "$w/ca" --spiffe ns/bench/sa/gw --out-dir "$w/id" >/dev/null
"$tool" genkey --type ec256 --kid es1 --out "$w/es1.pem" --jwks-out "$w/jwks.json" >/dev/null
iss=https://issuer.bench.example
token=$("$tool" sign --key "$w/es1.pem" --alg ES256 --kid es1 \
  --claims "{\"iss\":\"$iss\",\"sub\":\"alice\",\"aud\":\"app\",\"exp\":\"+86400\"}")
jwks=$(tr -d '\n' < "$w/jwks.json")

cat > "$w/origin.conf" <<NGX
worker_processes 1; daemon off; pid $w/origin.pid; error_log $w/origin.err;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000;
  server { listen 127.0.0.1:19190 reuseport backlog=4096; location / { return 200 "ok\n"; } } }
NGX
nginx -c "$w/origin.conf" & pids+=($!)

# mg_config DIR HTTPS_PORT ADMIN_PORT
mg_config() {
  mkdir -p "$1"
  cat > "$1/config.yaml" <<YAML
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
  admin: 127.0.0.1:$3
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
  - port: {number: $2, name: https, protocol: HTTPS}
    hosts: ["*"]
    tls: {mode: SIMPLE, credentialName: app}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: app, namespace: bench}
spec:
  hosts: [app.example.com]
  gateways: [gw]
  http:
  - route: [{destination: {host: origin.local, port: {number: 19190}}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: origin, namespace: bench}
spec:
  hosts: [origin.local]
  ports: [{number: 19190, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1}]
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt, namespace: bench}
spec:
  jwtRules:
  - issuer: $iss
    audiences: [app]
    jwks: '$jwks'
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow, namespace: bench}
spec:
  action: ALLOW
  rules:
  - from: [{source: {requestPrincipals: ["$iss/alice"]}}]
    to: [{operation: {paths: ["/alice/*"]}}]
  - to: [{operation: {paths: ["/open/*"]}}]
YAML
}
mg_config "$w/cached" 39443 39000
mg_config "$w/nocache" 39444 39001
"$bin" check -c "$w/cached" >/dev/null
"$bin" run -c "$w/cached" >"$w/cached.log" 2>&1 & pids+=($!)
MESHGATE_JWT_CACHE_ENTRIES=0 "$bin" run -c "$w/nocache" >"$w/nocache.log" 2>&1 & pids+=($!)

for port in 19190 39443 39444; do
  for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.2; done
done
for admin in 39000 39001; do
  for _ in $(seq 100); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$admin/ready" || true)" = 200 ] && break
    sleep 0.2
  done
done

# the setup must behave as described, or the numbers mean nothing
code() { curl -sk -o /dev/null -w '%{http_code}' -H 'Host: app.example.com' "$@" || true; }
for port in 39443 39444; do
  c1=$(code "https://127.0.0.1:$port/open/x")
  c2=$(code -H "Authorization: Bearer $token" "https://127.0.0.1:$port/alice/x")
  c3=$(code "https://127.0.0.1:$port/alice/x")
  c4=$(code -H "Authorization: Bearer x$token" "https://127.0.0.1:$port/alice/x")
  if [ "$c1$c2$c3$c4" != 200200403401 ]; then
    echo "jwt.sh: port $port answers open=$c1 token=$c2 no-token=$c3 bad-token=$c4 (want 200 200 403 401)" >&2
    exit 1
  fi
done

res="$w/results"
: > "$res"
wrk_rps() { wrk "$@" 2>/dev/null | awk '/Requests\/sec/ {print $2}'; }
for r in $(seq "$rounds"); do
  for s in notoken cached nocache; do
    case $s in
      notoken) v=$(wrk_rps -t2 -c64 -d"${secs}s" -H 'Host: app.example.com' "https://127.0.0.1:39443/open/x") ;;
      cached) v=$(wrk_rps -t2 -c64 -d"${secs}s" -H 'Host: app.example.com' \
                  -H "Authorization: Bearer $token" "https://127.0.0.1:39443/alice/x") ;;
      nocache) v=$(wrk_rps -t2 -c64 -d"${secs}s" -H 'Host: app.example.com' \
                  -H "Authorization: Bearer $token" "https://127.0.0.1:39444/alice/x") ;;
    esac
    echo "$s ${v:-0}" >> "$res"
    echo "round $r $s ${v:-0} req/s" >&2
  done
done

a=$(awk '$1=="notoken" {print $2}' "$res" | median)
b=$(awk '$1=="cached" {print $2}' "$res" | median)
c=$(awk '$1=="nocache" {print $2}' "$res" | median)
printf '\n%-28s %12s %8s\n' case req/s vs_a
awk -v a="$a" -v b="$b" -v c="$c" 'BEGIN {
  printf "%-28s %12.0f %8.2f\n", "a) no token (open path)", a, 1
  printf "%-28s %12.0f %8.2f\n", "b) ES256 token, cache on", b, (a>0?b/a:0)
  printf "%-28s %12.0f %8.2f\n", "c) ES256 token, cache off", c, (a>0?c/a:0) }'
echo "(median of $rounds interleaved rounds of ${secs}s; wrk -t2 -c64 keep-alive; $workers workers; goal: b/a >= 0.90)"
