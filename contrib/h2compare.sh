#!/bin/bash
# h2compare.sh - contrib/h2conformance.py against meshgate, nginx and HAProxy
# set up alike: each terminates TLS (ALPN h2) with the same certificate and
# proxies to the same origin (the test upstream, tests/helpers/mg_upstream);
# 2 workers each. Prints, per server, the h2spec-numbered cases (generic,
# http2, hpack) and the RFC 9113 additions, strict and --lenient. Not a test
# (make check runs tests/e2e/35-h2-conformance.sh against meshgate only).
#
#   bash contrib/h2compare.sh            (after a build in _build)
# Environment: MESHGATE, MG_UPSTREAM (the binaries); H2COMPARE_KEEP=1 keeps
# the reports. Listens on 127.0.0.1 ports 39440-39444 only.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
mg=${MESHGATE:-$top/_build/meshgate}
up=${MG_UPSTREAM:-$top/_build/tests/helpers/mg_upstream}
for b in "$mg" "$up"; do
    [ -x "$b" ] || { echo "h2compare: no $b (make && make check builds it)" >&2; exit 1; }
done
py=
for cand in /usr/bin/python3 "$(command -v python3 2>/dev/null)"; do
    [ -x "$cand" ] && "$cand" -c 'import hyperframe, hpack' 2>/dev/null && { py=$cand; break; }
done
[ -n "$py" ] || { echo "h2compare: needs python3-hyperframe and python3-hpack" >&2; exit 1; }
w=$(mktemp -d "${TMPDIR:-/tmp}/mg-h2compare.XXXXXX")
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    if [ -n "${H2COMPARE_KEEP:-}" ]; then echo "reports in $w"; else rm -rf "$w"; fi
}
trap cleanup EXIT

"$mg" ca init --dir "$w/ca" >/dev/null &&
    "$mg" ca issue --dir "$w/ca" --dns app.example.com --out-dir "$w" >/dev/null || exit 1
cat "$w/app.example.com.crt" "$w/app.example.com.key" >"$w/combined.pem"
origin=39440 pmg=39441 pngx=39442 phap=39443 admin=127.0.0.1:39444

"$up" --listen "127.0.0.1:$origin" --name origin >"$w/origin.log" 2>&1 & pids+=($!)

mkdir -p "$w/mg"
cat >"$w/mg/gw.yaml" <<YAML
apiVersion: meshgate.io/v1alpha1
kind: MeshConfig
spec: {accessLogFile: ""}
---
apiVersion: meshgate.io/v1alpha1
kind: Proxy
metadata: {name: gw, namespace: istio-system, labels: {istio: ingressgateway}}
spec:
  workers: 2
  bindAddress: 127.0.0.1
  admin: $admin
  credentials:
    app: {certificate: $w/app.example.com.crt, privateKey: $w/app.example.com.key}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: $pmg, name: https, protocol: HTTPS}
    hosts: ["app.example.com"]
    tls: {mode: SIMPLE, credentialName: app}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: app, namespace: istio-system}
spec:
  hosts: ["app.example.com"]
  gateways: ["gw"]
  http:
  - route: [{destination: {host: origin.local, port: {number: $origin}}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: origin, namespace: istio-system}
spec:
  hosts: ["origin.local"]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{number: $origin, name: http, protocol: HTTP}]
  endpoints: [{address: 127.0.0.1}]
YAML
"$mg" run -c "$w/mg" >"$w/meshgate.log" 2>&1 & pids+=($!)

cat >"$w/nginx.conf" <<NGX
worker_processes 2; daemon off; pid $w/nginx.pid; error_log $w/nginx.err;
events { worker_connections 1024; }
http { access_log off;
  upstream origin { server 127.0.0.1:$origin; keepalive 16; }
  server { listen 127.0.0.1:$pngx ssl http2; server_name app.example.com;
    ssl_certificate $w/app.example.com.crt; ssl_certificate_key $w/app.example.com.key;
    ssl_protocols TLSv1.2 TLSv1.3;
    location / { proxy_pass http://origin; proxy_http_version 1.1; proxy_set_header Connection ""; } } }
NGX
command -v nginx >/dev/null && { nginx -c "$w/nginx.conf" & pids+=($!); }

cat >"$w/haproxy.cfg" <<HAP
global
  nbthread 2
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
frontend tls
  bind 127.0.0.1:$phap ssl crt $w/combined.pem alpn h2,http/1.1
  default_backend origin
backend origin
  server o1 127.0.0.1:$origin
HAP
command -v haproxy >/dev/null && { haproxy -f "$w/haproxy.cfg" -db >"$w/haproxy.log" 2>&1 & pids+=($!); }

ready() { curl -sk -o /dev/null --max-time 1 --resolve "app.example.com:$1:127.0.0.1" "https://app.example.com:$1/"; }
for port in $pmg $pngx $phap; do
    for _ in $(seq 200); do ready "$port" && break; sleep 0.1; done
done

# count NAME FILE PREFIX: "passed/run (failed, skipped)" over the cases under PREFIX
count() {
    awk -v pre="$2" '
        $1 == "\xe2\x9c\x94" || $1 == "\xc3\x97" || $1 == "-" {
            id = $2; sub(/:$/, "", id)
            if (index(id, pre) != 1) next
            n++; if ($1 == "\xe2\x9c\x94") p++; else if ($1 == "-") s++; else f++
        }
        END { printf "%d/%d (%d failed, %d skipped)", p, n, f, s }' "$1"
}
printf '%-10s %-16s %-34s %s\n' server mode "h2spec cases (generic, http2, hpack)" "RFC 9113 additions"
for srv in meshgate:$pmg nginx:$pngx haproxy:$phap; do
    name=${srv%%:*} port=${srv##*:}
    ready "$port" || { echo "$name: not running (not installed?)"; continue; }
    for mode in strict lenient; do
        flag=; [ "$mode" = lenient ] && flag=--lenient
        # shellcheck disable=SC2086
        "$py" "$top/contrib/h2conformance.py" --port "$port" --tls --sni app.example.com \
            --cacert "$w/ca/root-cert.pem" --path /echo $flag >"$w/$name-$mode.txt" 2>&1
        if ! tail -n 1 "$w/$name-$mode.txt" | grep -q ' cases, '; then
            printf '%-10s %-16s %s\n' "$name" "$mode" "$(tail -n 1 "$w/$name-$mode.txt")"
            continue
        fi
        h=$( { count "$w/$name-$mode.txt" generic/; echo; count "$w/$name-$mode.txt" http2/; echo;
               count "$w/$name-$mode.txt" hpack/; } | awk -F'[/ (]+' '{p+=$1; n+=$2; f+=$3; s+=$5}
               END { printf "%d/%d (%d failed, %d skipped)", p, n, f, s }')
        printf '%-10s %-16s %-34s %s\n' "$name" "$mode" "$h" "$(count "$w/$name-$mode.txt" rfc9113/)"
    done
    grep -E '^  (×|-) ' "$w/$name-strict.txt" | sed "s/^  /  $name: /"
done
echo "versions: meshgate $("$mg" version 2>/dev/null | head -n 1), $(nginx -v 2>&1), $(haproxy -v 2>/dev/null | head -n 1 | cut -d' ' -f1-3)"
