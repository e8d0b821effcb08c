#!/bin/bash
# demo.sh - build meshgate, create a demo PKI and a demo upstream, and run the
# gateway in the foreground on the bundled example configuration (etc/meshgate).
# Everything it creates lives in ./demo (delete it to start over).
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
bash contrib/install-deps.sh test          # curl is used by the lines printed below
[ -x configure ] || autoreconf -fi >/dev/null
mkdir -p _build/demo && cd _build/demo
[ -f Makefile ] || "$top/configure" -q
make -s -j"$(nproc 2>/dev/null || echo 2)" meshgate tests/helpers/mg_upstream tests/helpers/mg_jwt_tool >/dev/null
bin=$PWD/meshgate upstream=$PWD/tests/helpers/mg_upstream jwt=$PWD/tests/helpers/mg_jwt_tool
cd "$top"

demo=$top/demo
mkdir -p "$demo"
rm -rf "$demo/config" && cp -r etc/meshgate "$demo/config"
certs=$demo/config/certs
if [ ! -f "$demo/ca/root-cert.pem" ]; then
  "$bin" ca init --dir "$demo/ca" --trust-domain cluster.local >/dev/null
fi
mkdir -p "$certs"
"$bin" ca issue --dir "$demo/ca" --spiffe ns/istio-system/sa/ingressgateway --out-dir "$certs" >/dev/null
"$bin" ca issue --dir "$demo/ca" --dns app.example.com --out-dir "$certs" >/dev/null
"$bin" ca issue --dir "$demo/ca" --dns admin.example.com --out-dir "$certs" >/dev/null
# A client CA for the MUTUAL admin server, and one client certificate from it.
if [ ! -f "$demo/client-ca/root-cert.pem" ]; then
  "$bin" ca init --dir "$demo/client-ca" --trust-domain clients.example.com >/dev/null
fi
cp "$demo/client-ca/root-cert.pem" "$certs/client-ca.crt"
"$bin" ca issue --dir "$demo/client-ca" --dns operator.example.com --client \
  --out-dir "$demo" --name client >/dev/null
cp "$demo/ca/root-cert.pem" "$demo/root-cert.pem"
# The JWT issuer of 30-policies.yaml: an ES256 key, its JWKS served on
# 127.0.0.1:9081, and a token whose groups claim holds "admin".
if [ ! -f "$demo/jwt-key.pem" ]; then
  mkdir -p "$demo/jwks"
  "$jwt" genkey --type ec256 --kid demo --out "$demo/jwt-key.pem" --jwks-out "$demo/jwks/jwks.json" >/dev/null
fi
"$jwt" sign --key "$demo/jwt-key.pem" --alg ES256 --kid demo \
  --claims '{"iss":"https://auth.example.com","sub":"operator","aud":"meshgate-demo","groups":["admin"],"exp":+86400}' \
  > "$demo/admin.jwt"

"$bin" check -c "$demo/config" >/dev/null || { "$bin" check -c "$demo/config"; exit 1; }

"$upstream" --listen 127.0.0.1:9080 --name demo-upstream >"$demo/upstream.log" 2>&1 &
upid=$!
"$upstream" --listen 127.0.0.1:9081 --name demo-jwks --serve "$demo/jwks" >"$demo/jwks.log" 2>&1 &
jpid=$!
trap 'kill $upid $jpid 2>/dev/null' EXIT

r="--resolve app.example.com:8443:127.0.0.1 --resolve admin.example.com:8443:127.0.0.1"
cat <<TXT

meshgate demo: gateway on 127.0.0.1:8443 (HTTPS, SNI) and :8080 (redirect), admin on
127.0.0.1:15000, demo upstream on 127.0.0.1:9080, JWKS on 127.0.0.1:9081. Try, from another shell in $top:

  # TLS by SNI: app.example.com (SIMPLE) proxied to the demo upstream
  curl --cacert demo/root-cert.pem $r https://app.example.com:8443/echo
  # the same port, SNI admin.example.com (MUTUAL): refused without a client certificate ...
  curl --cacert demo/root-cert.pem $r https://admin.example.com:8443/
  # ... accepted with one, but the gateway-allow policy also wants a JWT whose groups claim has "admin": 403
  curl -si --cacert demo/root-cert.pem --cert demo/client.crt --key demo/client.key $r https://admin.example.com:8443/echo | head -1
  # ... with the token (iss https://auth.example.com, JWKS fetched from 127.0.0.1:9081): 200
  curl --cacert demo/root-cert.pem --cert demo/client.crt --key demo/client.key $r \
       -H "Authorization: Bearer \$(cat demo/admin.jwt)" https://admin.example.com:8443/echo
  # a tampered token: 401 Jwt verification fails
  curl -si --cacert demo/root-cert.pem --cert demo/client.crt --key demo/client.key $r \
       -H "Authorization: Bearer \$(cat demo/admin.jwt)x" https://admin.example.com:8443/echo | head -1
  # HTTP -> HTTPS redirect (301)
  curl -si --resolve app.example.com:8080:127.0.0.1 http://app.example.com:8080/hello | head -3
  # 403 from an AuthorizationPolicy (DENY on /admin paths of app.example.com)
  curl -si --cacert demo/root-cert.pem $r https://app.example.com:8443/admin/users | head -1
  # the offline explainer says the same, and why
  $bin authz -c demo/config --url https://app.example.com:8443/admin/users
  # metrics
  curl -s http://127.0.0.1:15000/stats/prometheus | head

Stop with Ctrl-C.
TXT
"$bin" run -c "$demo/config"
