#!/bin/bash
# conformance.sh [HOST:PORT [SNI]] - conformance tools against the gateway,
# each when installed: contrib/h2conformance.py (HTTP/2, RFC 9113/7541, the
# cases numbered as h2spec numbers them; needs Debian's python3-hyperframe
# and python3-hpack), h2spec (not packaged by Debian: a release binary from
# github.com/summerwind/h2spec on PATH) and testssl.sh (Debian package
# testssl.sh; the command is `testssl`).
#
# Without HOST:PORT it starts a throwaway gateway on 127.0.0.1 (the built
# ./meshgate, or $MESHGATE) with a fresh test PKI: one HTTPS port whose SNI
# app.example.com is SIMPLE and mtls.example.com MUTUAL (so testssl sees
# what a client-certificate port sends), answering 200 from a
# directResponse. Prints each tool's summary; full reports are kept in the
# printed directory.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
out=$(mktemp -d "${TMPDIR:-/tmp}/mg-conformance.XXXXXX")
target=${1:-} sni=${2:-app.example.com} pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; }
trap cleanup EXIT
if [ -z "$target" ]; then
    mg=${MESHGATE:-$(command -v "$top/_build/meshgate" "$top/meshgate" meshgate 2>/dev/null | head -n 1)}
    [ -x "$mg" ] || { echo "conformance: no meshgate binary (build it, or set MESHGATE)" >&2; exit 1; }
    port=${MG_CONFORMANCE_PORT:-18443} admin=127.0.0.1:${MG_CONFORMANCE_ADMIN:-18400}
    p=$out/pki cfg=$out/config
    mkdir -p "$cfg"
    "$mg" ca init --dir "$p" >/dev/null &&
        "$mg" ca issue --dir "$p" --dns app.example.com --dns mtls.example.com --name server >/dev/null ||
        exit 1
    # an OCSP response for the certificate, as a responder would give it,
    # stapled on app.example.com (ocspStaple)
    serial=$(openssl x509 -noout -serial -in "$p/server.crt" | cut -d= -f2)
    subj=$(openssl x509 -noout -subject -nameopt compat -in "$p/server.crt" | sed 's/^subject=//')
    printf 'V\t301231235959Z\t\t%s\tunknown\t%s\n' "$serial" "$subj" >"$p/index.txt"
    openssl ocsp -issuer "$p/root-cert.pem" -cert "$p/server.crt" -no_nonce -reqout "$p/req.der" >/dev/null 2>&1 &&
        openssl ocsp -index "$p/index.txt" -rsigner "$p/root-cert.pem" -rkey "$p/root-key.pem" \
            -CA "$p/root-cert.pem" -reqin "$p/req.der" -respout "$p/ocsp.der" -ndays 7 >/dev/null 2>&1 ||
        exit 1
    cat >"$cfg/gw.yaml" <<YAML
apiVersion: meshgate.io/v1alpha1
kind: Proxy
metadata: {name: gw, namespace: istio-system, labels: {istio: ingressgateway}}
spec:
  bindAddress: 127.0.0.1
  admin: $admin
  credentials:
    app: {certificate: $p/server.crt, privateKey: $p/server.key, ocspStaple: $p/ocsp.der}
    mtls: {certificate: $p/server.crt, privateKey: $p/server.key, caCertificates: $p/root-cert.pem}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: $port, name: https, protocol: HTTPS}
    hosts: ["app.example.com"]
    tls: {mode: SIMPLE, credentialName: app}
  - port: {number: $port, name: mtls, protocol: HTTPS}
    hosts: ["mtls.example.com"]
    tls: {mode: OPTIONAL_MUTUAL, credentialName: mtls}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: app, namespace: istio-system}
spec:
  hosts: ["app.example.com", "mtls.example.com"]
  gateways: ["gw"]
  http:
  # a body of a few dozen octets: the flow-control cases of the HTTP/2
  # checkers read it a window at a time
  - directResponse: {status: 200, body: {string: "ok: the conformance gateway answers every path"}}
YAML
    "$mg" run -c "$cfg" >"$out/meshgate.log" 2>&1 &
    pid=$!
    for _ in $(seq 50); do
        curl -s -o /dev/null --max-time 1 "http://$admin/ready" && break
        sleep 0.1
    done
    target=127.0.0.1:$port
fi
host=${target%:*} tport=${target##*:}
echo "target $target (SNI $sni); reports in $out"

# Debian's interpreter first (the modules are Debian packages; a python3
# earlier on PATH may not see them)
py=
for cand in /usr/bin/python3 "$(command -v python3 2>/dev/null)"; do
    [ -x "$cand" ] && "$cand" -c 'import hyperframe, hpack' 2>/dev/null && { py=$cand; break; }
done
if [ -n "$py" ]; then
    # our own PKI's root when the gateway is ours, else no verification
    verify=--insecure
    [ -z "${1:-}" ] && verify="--cacert $p/root-cert.pem"
    # shellcheck disable=SC2086
    "$py" "$top/contrib/h2conformance.py" --host "$host" --port "$tport" --tls --sni "$sni" $verify \
        -j "$out/h2conformance.xml" >"$out/h2conformance.txt" 2>&1
    echo "h2conformance: $(tail -n 1 "$out/h2conformance.txt")"
    grep -A1 -E '^  (×|-) ' "$out/h2conformance.txt" | head -n 40
else
    echo "h2conformance: python3-hyperframe / python3-hpack not installed (Debian packages)"
fi

if command -v h2spec >/dev/null; then
    h2spec -t -k -h "$host" -p "$tport" -o 5 -j "$out/h2spec.xml" >"$out/h2spec.txt" 2>&1
    echo "h2spec: $(grep -E '^[0-9]+ tests, ' "$out/h2spec.txt" | tail -n 1)"
    grep -E '^ *× ' "$out/h2spec.txt" | head -n 20
else
    echo "h2spec: not installed (github.com/summerwind/h2spec releases; not a Debian package)"
fi

if command -v testssl >/dev/null || command -v testssl.sh >/dev/null; then
    t=$(command -v testssl || command -v testssl.sh)
    for name in "$sni" mtls.example.com; do
        [ "$name" = mtls.example.com ] && [ -n "${1:-}" ] && continue
        # the URI's name is the SNI; --ip connects to the gateway's address
        "$t" --quiet --color 0 --warnings batch --sneaky --ip "$host" \
            --jsonfile "$out/testssl-$name.json" "$name:$tport" >"$out/testssl-$name.txt" 2>&1
        echo "testssl ($name):"
        # a throwaway PKI's root is in no trust store: "Chain of trust NOT ok"
        # is expected there
        grep -E '^ (TLS 1|SSLv)|Obsolete CBC|Strong encryption|TLSv1\.[23]: |# of certificates|OCSP stapling|VULNERABLE|NOT ok|Overall Grade' \
            "$out/testssl-$name.txt" | sed 's/^/  /' | head -n 30
    done
else
    echo "testssl: not installed (Debian: apt-get install testssl.sh)"
fi
