#!/bin/bash
# 12-example-config.sh - the bundled configuration (etc/meshgate) is what the
# README's demo runs: it must load with no error, and every curl line the demo
# prints must give the answer the README promises. Ports are moved to free
# ones so the test can run beside the others.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"

JWT_TOOL=$MG_BUILDDIR/tests/helpers/mg_jwt_tool
T=$(mg_tmpdir example)
cp -r "$MG_SRCDIR/etc/meshgate/." "$T/"
C=$T/certs
mkdir -p "$C"

# A copy without certificates is an error naming the missing files.
out=$("$MESHGATE" check -c "$T" 2>&1); rc=$?
is "$rc" 1 "check without certificate files fails"
like "$out" "10-proxy.yaml:[0-9]+:[0-9]+: error: .*certs/" "the error names the file and its position"

"$MESHGATE" ca init --dir "$T/ca" >/dev/null &&
  "$MESHGATE" ca issue --dir "$T/ca" --spiffe ns/istio-system/sa/ingressgateway --out-dir "$C" >/dev/null &&
  "$MESHGATE" ca issue --dir "$T/ca" --dns app.example.com --out-dir "$C" >/dev/null &&
  "$MESHGATE" ca issue --dir "$T/ca" --dns admin.example.com --out-dir "$C" >/dev/null &&
  "$MESHGATE" ca init --dir "$T/client-ca" --trust-domain clients.example.com >/dev/null &&
  cp "$T/client-ca/root-cert.pem" "$C/client-ca.crt" &&
  "$MESHGATE" ca issue --dir "$T/client-ca" --dns operator.example.com --client --out-dir "$T" --name client >/dev/null ||
  bail_out "cannot make the example PKI"
"$MESHGATE" ca init --dir "$T/rogue-ca" >/dev/null &&
  "$MESHGATE" ca issue --dir "$T/rogue-ca" --dns operator.example.com --client --out-dir "$T" --name rogue >/dev/null ||
  bail_out "cannot make the rogue client certificate"

out=$("$MESHGATE" check -c "$T" 2>&1); rc=$?
is "$rc" 0 "meshgate check on the example configuration: no error"
unlike "$out" ": error: " "no error line printed"
ok "check takes --config as run and authz do" "$MESHGATE" check --config "$T"

# 10-proxy.yaml shows the Proxy fields it leaves off as comments: they are
# valid as written (the OCSP staple, which needs a real response, aside).
U=$(mg_tmpdir uncommented)
cp -r "$T/." "$U/"
openssl rand 80 | base64 -w0 >"$U/ticket.keys"
sed -i -E 's/^  # ((inbound|proxyProtocol|tls|watchConfig|jwt):|- \{port|  (ports|trustedSources|allowWithoutHeader|sessionTicketKeys|requireHttps):)/  \1/' \
    "$U/10-proxy.yaml"
is "$(grep -cE '^  (inbound|proxyProtocol|tls|watchConfig|jwt):' "$U/10-proxy.yaml")" 5 \
    "the five optional Proxy blocks uncommented"
out=$("$MESHGATE" check -c "$U" 2>&1); rc=$?
is "$rc" 0 "and the configuration still checks with no error" || diag "$out"

# Free ports instead of the example's fixed ones.
https=$(mg_free_port) http=$(mg_free_port) admin=$(mg_free_port) app=$(mg_free_port) jwks=$(mg_free_port)
sed -i "s/\b8443\b/$https/g; s/\b8080\b/$http/g; s/127\.0\.0\.1:15000/127.0.0.1:$admin/; s/\b9080\b/$app/g; s/127\.0\.0\.1:9081/127.0.0.1:$jwks/" "$T"/*.yaml
sed -i 's|^  accessLogFile: .*|  accessLogFile: access.log|' "$T/00-mesh.yaml"
export MG_ADMIN=127.0.0.1:$admin

mkdir -p "$T/jwks"
"$JWT_TOOL" genkey --type ec256 --kid demo --out "$T/jwt.pem" --jwks-out "$T/jwks/jwks.json" >/dev/null ||
  bail_out "mg_jwt_tool genkey"
tok=$("$JWT_TOOL" sign --key "$T/jwt.pem" --alg ES256 --kid demo \
  --claims '{"iss":"https://auth.example.com","sub":"operator","aud":"meshgate-demo","groups":["admin"],"exp":+3600}')
tok_user=$("$JWT_TOOL" sign --key "$T/jwt.pem" --alg ES256 --kid demo \
  --claims '{"iss":"https://auth.example.com","sub":"guest","aud":"meshgate-demo","groups":["users"],"exp":+3600}')
tok_aud=$("$JWT_TOOL" sign --key "$T/jwt.pem" --alg ES256 --kid demo \
  --claims '{"iss":"https://auth.example.com","sub":"operator","aud":"elsewhere","groups":["admin"],"exp":+3600}')
tok_old=$("$JWT_TOOL" sign --key "$T/jwt.pem" --alg ES256 --kid demo \
  --claims '{"iss":"https://auth.example.com","sub":"operator","aud":"meshgate-demo","groups":["admin"],"exp":"-600"}')

mg_start_upstream --listen "127.0.0.1:$app" --name demo-upstream || bail_out "demo upstream"
mg_start_upstream --listen "127.0.0.1:$jwks" --name demo-jwks --serve "$T/jwks" || bail_out "JWKS server"
ok "the gateway starts on the example configuration" mg_start_meshgate "$T" || bail_out "gateway did not start"

ca=(--cacert "$T/ca/root-cert.pem")
cl=(--cert "$T/client.crt" --key "$T/client.key")
A=https://app.example.com:$https
M=https://admin.example.com:$https

is "$(mg_http_code "${ca[@]}" "$A/echo")" 200 "app.example.com (SIMPLE) is proxied to the demo upstream"
like "$(mg_curl "${ca[@]}" "$A/echo")" '"upstream":"demo-upstream"' "the upstream answered"
subj=$(echo | openssl s_client -connect "127.0.0.1:$https" -servername admin.example.com \
  -CAfile "$T/ca/root-cert.pem" 2>/dev/null | openssl x509 -noout -subject 2>/dev/null)
like "$subj" "admin.example.com" "SNI admin.example.com gets its own certificate"
subj=$(echo | openssl s_client -connect "127.0.0.1:$https" -servername app.example.com \
  -CAfile "$T/ca/root-cert.pem" 2>/dev/null | openssl x509 -noout -subject 2>/dev/null)
like "$subj" "app.example.com" "SNI app.example.com gets its own certificate"
is "$(mg_http_code "${ca[@]}" "$M/echo")" 000 "admin.example.com (MUTUAL) refuses a client without a certificate"
is "$(mg_http_code "${ca[@]}" --cert "$T/rogue.crt" --key "$T/rogue.key" "$M/echo")" 000 \
  "admin.example.com refuses a client certificate from a foreign CA"
is "$(mg_http_code "${ca[@]}" "${cl[@]}" "$M/echo")" 403 "a client certificate alone is not enough (gateway-allow wants the admin JWT)"
is "$(mg_http_code "${ca[@]}" "${cl[@]}" -H "Authorization: Bearer $tok" "$M/echo")" 200 "client certificate + admin token: 200"
is "$(mg_http_code "${ca[@]}" "${cl[@]}" -H "Authorization: Bearer $tok_user" "$M/echo")" 403 "a token without the admin group: 403"
is "$(mg_http_code "${ca[@]}" "${cl[@]}" -H "Authorization: Bearer ${tok}x" "$M/echo")" 401 "a tampered token: 401"
like "$(mg_curl "${ca[@]}" "${cl[@]}" -H "Authorization: Bearer ${tok}x" "$M/echo")" "Jwt verification fails" "with Envoy's body"
is "$(mg_http_code "${ca[@]}" "${cl[@]}" -H "Authorization: Bearer $tok_old" "$M/echo")" 401 "an expired token: 401"
like "$(mg_curl "${ca[@]}" "${cl[@]}" -H "Authorization: Bearer $tok_old" "$M/echo")" "Jwt is expired" "Jwt is expired"
is "$(mg_http_code "${ca[@]}" "${cl[@]}" -H "Authorization: Bearer $tok_aud" "$M/echo")" 403 "a token for another audience: 403"
echo_out=$(mg_curl "${ca[@]}" "${cl[@]}" -H "Authorization: Bearer $tok" "$M/echo")
unlike "$echo_out" '"authorization"' "the token is removed before the upstream (forwardOriginalToken: false)"
like "$echo_out" '\["x-jwt-sub","operator"\]' "outputClaimToHeaders sets x-jwt-sub"
is "$(mg_http_code "${ca[@]}" -H "Host: admin.example.com" "$A/echo")" 421 \
  "SNI app.example.com with Host admin.example.com: 421 Misdirected Request"

red=$(mg_curl -si "http://app.example.com:$http/hello?x=1" | tr -d '\r')
like "$red" "^HTTP/1.1 301" "plain HTTP gets 301"
like "$red" "location: https://app.example.com(:$https)?/hello\?x=1" "to https with the same host, path and query"

is "$(mg_http_code "${ca[@]}" "$A/admin/users")" 403 "DENY deny-admin-paths: /admin/users is 403"
like "$(mg_curl "${ca[@]}" "$A/admin/users")" "RBAC: access denied" "with body RBAC: access denied"
is "$(mg_http_code "${ca[@]}" "$A/public/../admin")" 403 "dot segments are normalized before authorization"
is "$(mg_http_code "${ca[@]}" "$A/%61dmin")" 403 "an encoded unreserved character too (BASE)"
is "$(mg_http_code "${ca[@]}" -H "Host: APP.example.com:$https" "$A/admin")" 403 "Host case and port do not bypass the DENY"

"$MESHGATE" authz -c "$T" --url "https://app.example.com:$https/admin/users" >"$T/explain.out" 2>&1
is "$?" 1 "meshgate authz agrees: DENY (exit 1)"
like "$(cat "$T/explain.out")" "istio-system.deny-admin-paths" "and names the deciding policy"
like "$(cat "$T/explain.out")" "peer authentication: not applicable \\(gateway mode" \
    "... and says PeerAuthentication does not apply to a gateway server"
"$MESHGATE" authz -c "$T" --url "https://app.example.com:$https/echo" >/dev/null 2>&1
is "$?" 0 "meshgate authz agrees: /echo ALLOW (exit 0)"

sleep 0.3
like "$(cat "$T/access.log")" '"response_code":403.*"reason":"rbac_policy"|"reason":"rbac_policy".*"response_code":403' \
  "the refusal is in the JSON access log with its reason"
like "$(curl -s "http://$MG_ADMIN/stats/prometheus")" 'istio_requests_total\{[^}]*response_code="401"' \
  "metrics count the 401"
done_testing
