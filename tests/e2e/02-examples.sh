#!/bin/bash
# 02-examples.sh - every configuration under etc/examples/ runs as its
# README.md says: a copy of it gets its certificates from `meshgate ca`, passes
# `meshgate check` without an error, starts, and answers the README's request
# lines with the status codes the README promises. Fixed ports are moved to
# free ones so the test runs beside the others. An example without a function
# here fails the test: a new example comes with its end-to-end check.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"

JWT_TOOL=$MG_BUILDDIR/tests/helpers/mg_jwt_tool
EX=$MG_SRCDIR/etc/examples

# prepare NAME: copy etc/examples/NAME to a fresh $T, admin on a free port,
# the access log into $T/access.log
prepare() {
    T=$(mg_tmpdir "$1")
    cp -r "$EX/$1/." "$T/"
    export MG_ADMIN=127.0.0.1:$(mg_free_port)
    sed -i "s/127\.0\.0\.1:15000/$MG_ADMIN/" "$T"/*.yaml
    sed -i 's|^  accessLogFile: .*|  accessLogFile: access.log|' "$T"/*.yaml
}

# checked NAME: meshgate check has no error on the copy
checked() {
    local out rc
    out=$("$MESHGATE" check -c "$T" 2>&1); rc=$?
    is "$rc" 0 "$1: meshgate check passes" || diag "$out"
    unlike "$out" ": error: " "$1: no error line"
}

# ---------------------------------------------------------------- backend-sidecar
ex_backend_sidecar() {
    local n=backend-sidecar sa sc app jwks k
    prepare $n
    "$MESHGATE" ca init --dir "$T/ca" >/dev/null || bail_out "$n: ca init"
    for sa in production/backend production/frontend production/admin default/intruder; do
        "$MESHGATE" ca issue --dir "$T/ca" --spiffe "ns/${sa%/*}/sa/${sa#*/}" \
            --out-dir "$T/certs/${sa#*/}" >/dev/null || bail_out "$n: ca issue $sa"
    done
    checked $n
    sc=$(mg_free_port) jwks=$(mg_free_port)
    mg_start_upstream --name backend-app || bail_out "$n: app"
    app=$MG_UPSTREAM_PORT
    mkdir -p "$T/jwks"
    "$JWT_TOOL" genkey --type ec256 --kid k1 --out "$T/jwt.pem" --jwks-out "$T/jwks/jwks.json" >/dev/null ||
        bail_out "$n: genkey"
    mg_start_upstream --listen "127.0.0.1:$jwks" --name jwks --serve "$T/jwks" || bail_out "$n: JWKS server"
    sed -i "s/127\.0\.0\.1:15006/127.0.0.1:$sc/; s/127\.0\.0\.1:8080/127.0.0.1:$app/; s/127\.0\.0\.1:9081/127.0.0.1:$jwks/" "$T"/*.yaml
    ok "$n: starts" mg_start_meshgate "$T" || return

    local U=https://127.0.0.1:$sc
    c() { mg_http_code -k --cert "$T/certs/$1/cert-chain.pem" --key "$T/certs/$1/key.pem" "${@:2}"; }
    tok() { "$JWT_TOOL" sign --key "$T/jwt.pem" --alg ES256 --kid k1 --claims "$1"; }

    is "$(mg_http_code "http://127.0.0.1:$sc/health")" 000 "$n: STRICT: plain text is refused"
    is "$(mg_http_code -k "$U/health")" 000 "$n: STRICT: TLS without a client certificate is refused"
    is "$(c frontend -H 'x-api-version: v1' "$U/api/orders")" 200 "$n: frontend GET /api/orders, x-api-version v1: 200"
    is "$(c frontend -H 'x-api-version: v2' -X POST "$U/api/orders")" 200 "$n: frontend POST with v2: 200"
    is "$(c frontend -H 'x-api-version: v2' "$U/health")" 200 "$n: frontend GET /health with v2: 200"
    is "$(c frontend "$U/api/orders")" 403 "$n: frontend without x-api-version: 403 (deny-all)"
    is "$(c frontend -H 'x-api-version: v3' "$U/api/orders")" 403 "$n: frontend with v3: 403"
    is "$(c frontend -H 'x-api-version: v1' -X DELETE "$U/api/orders")" 403 "$n: frontend DELETE: 403"
    is "$(c frontend "$U/api/data")" 200 "$n: backend-rbac: frontend GET /api/data without the header: 200"
    is "$(c admin -X DELETE "$U/api/")" 200 "$n: backend-rbac: admin DELETE /api/: 200"
    is "$(c admin "$U/admin/")" 200 "$n: backend-rbac: admin GET /admin/: 200"
    is "$(c admin "$U/admin/users")" 403 "$n: backend-rbac paths are exact: admin GET /admin/users: 403"
    is "$(c intruder "$U/admin/users")" 403 "$n: a principal of namespace default on /admin/users: 403"

    local good user guest blocked aud old
    good=$(tok '{"iss":"https://auth.example.com","sub":"alice","aud":"api.example.com","role":"admin","exp":+3600}')
    user=$(tok '{"iss":"https://auth.example.com","sub":"bob","aud":"api.example.com","role":"user","exp":+3600}')
    guest=$(tok '{"iss":"https://auth.example.com","sub":"carol","aud":"api.example.com","role":"guest","exp":+3600}')
    blocked=$(tok '{"iss":"https://auth.example.com","sub":"blocked-user","aud":"api.example.com","role":"user","exp":+3600}')
    aud=$(tok '{"iss":"https://auth.example.com","sub":"alice","aud":"other.example.com","role":"admin","exp":+3600}')
    old=$(tok '{"iss":"https://auth.example.com","sub":"alice","aud":"api.example.com","role":"admin","exp":"-600"}')
    S=$U/api/secure/report
    is "$(c frontend "$S")" 403 "$n: jwt-authz: /api/secure/ without a token: 403"
    is "$(c frontend -H "Authorization: Bearer $good" "$S")" 200 "$n: role admin: 200"
    is "$(c frontend -H "Authorization: Bearer $user" -X POST "$S")" 200 "$n: role user, POST: 200"
    is "$(c frontend -H "Authorization: Bearer $guest" "$S")" 403 "$n: role guest: 403"
    is "$(c frontend -H "Authorization: Bearer $blocked" "$S")" 403 "$n: sub blocked-user: 403"
    is "$(c frontend -H "Authorization: Bearer $aud" "$S")" 403 "$n: another audience: 403"
    is "$(c frontend -H "Authorization: Bearer ${good}x" "$S")" 401 "$n: a tampered token: 401"
    is "$(c frontend -H "Authorization: Bearer $old" "$S")" 401 "$n: an expired token: 401"

    "$MESHGATE" authz -c "$T" --url http://backend/admin/users --port 80 \
        --principal cluster.local/ns/default/sa/intruder >"$T/explain.out" 2>&1
    is "$?" 1 "$n: meshgate authz: the intruder on /admin/users is denied"
    like "$(cat "$T/explain.out")" "production.deny-external-to-admin" "$n: ... by deny-external-to-admin"
    sleep 0.3
    like "$(cat "$T/access.log")" 'deny-external-to-admin' "$n: the access log names the DENY policy"
    mg_stop "$MG_MESHGATE_PID"
}

# ---------------------------------------------------------------- ingress-tls
ex_ingress_tls() {
    local n=ingress-tls https http app red
    prepare $n
    "$MESHGATE" ca init --dir "$T/ca" >/dev/null &&
        "$MESHGATE" ca issue --dir "$T/ca" --dns app.example.com --out-dir "$T/certs" >/dev/null ||
        bail_out "$n: PKI"
    checked $n
    https=$(mg_free_port) http=$(mg_free_port)
    mg_start_upstream --name app || bail_out "$n: app"
    app=$MG_UPSTREAM_PORT
    sed -i "s/number: 443\$/number: $https/; s/number: 80\$/number: $http/; s/number: 8080/number: $app/g" "$T"/*.yaml
    ok "$n: starts" mg_start_meshgate "$T" || return

    local ca=(--cacert "$T/ca/root-cert.pem")
    red=$(mg_curl -si "http://app.example.com:$http/hello?x=1" | tr -d '\r')
    like "$red" "^HTTP/1.1 301" "$n: plain HTTP gets 301"
    like "$red" "location: https://app.example.com:$https/hello\?x=1" \
        "$n: to https, same host, path and query (the one HTTPS port is not 443 here: kept)"
    is "$(mg_http_code "${ca[@]}" "https://app.example.com:$https/hello")" 200 \
        "$n: HTTPS with the app-tls-cert certificate, routed to the app: 200"
    like "$(mg_curl "${ca[@]}" "https://app.example.com:$https/hello")" '"upstream":"app"' "$n: the app answered"
    is "$(mg_http_code "${ca[@]}" --resolve "www.example.com:$https:127.0.0.1" "https://www.example.com:$https/")" 000 \
        "$n: a host the Gateway does not serve gets no TLS handshake"
    mg_stop "$MG_MESHGATE_PID"
}

# ---------------------------------------------------------------- egress-registry-only
ex_egress_registry_only() {
    local n=egress-registry-only fwd up
    prepare $n
    checked $n
    fwd=$(mg_free_port)
    mg_start_upstream --name stripe || bail_out "$n: upstream"
    up=$MG_UPSTREAM_PORT
    # port 443 of the registry and the policy becomes the test upstream's, and
    # both registered names resolve to it
    sed -i "s/number: 443\$/number: $up/; s/ports: \[\"443\"\]/ports: [\"$up\"]/; s/127\.0\.0\.1:15001/127.0.0.1:$fwd/" "$T"/*.yaml
    printf '127.0.0.1 api.stripe.com api.github.com\n' >"$T/hosts"
    MESHGATE_HOSTS_FILE=$T/hosts ok "$n: starts" mg_start_meshgate "$T" || return

    cx() { curl -s -o /dev/null --max-time 10 -w '%{http_connect} %{http_code}' -p -x "http://127.0.0.1:$fwd" "$@"; }
    is "$(cx "http://api.stripe.com:$up/echo")" "200 200" "$n: CONNECT api.stripe.com on its port: tunnelled"
    is "$(cx "http://api.github.com:$up/echo")" "403 000" "$n: api.github.com is registered but not allowed: 403"
    is "$(cx "http://example.org:$up/")" "403 000" "$n: an unregistered host: 403"
    is "$(cx "http://api.stripe.com:8443/")" "403 000" "$n: a registered host on another port: 403"
    sleep 0.3
    like "$(cat "$T/access.log")" 'rbac_policy' "$n: the policy's refusal is logged as rbac_policy"
    like "$(cat "$T/access.log")" 'egress_connect' "$n: the registry's refusals as egress_connect_..."
    mg_stop "$MG_MESHGATE_PID"
}

n_ex=0
for d in "$EX"/*/; do
    name=$(basename "$d")
    fn=ex_${name//-/_}
    n_ex=$((n_ex + 1))
    if declare -F "$fn" >/dev/null; then
        ok "$name: has a README.md with its request lines" test -s "$d/README.md"
        "$fn"
    else
        fail "$name: no end-to-end check in 02-examples.sh"
    fi
done
isnt "$n_ex" 0 "etc/examples/ holds examples"
done_testing
