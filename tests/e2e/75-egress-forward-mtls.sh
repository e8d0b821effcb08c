#!/bin/bash
# 75-egress-forward-mtls.sh - the forward proxy behind TLS
# (Proxy.spec.outbound.tls): under MUTUAL an AuthorizationPolicy lets one
# mTLS identity through to a registered host, by principal or by namespace,
# and refuses another with 403, on CONNECT and on absolute-form requests;
# the client's principal and the SNI it sent are in the access log;
# connection.sni feeds the policy; a client without a certificate, with one
# from another root, or speaking plain text gets no connection; ALPN is
# http/1.1 only; a rotated server certificate is served without a signal;
# SIMPLE needs no client certificate, OPTIONAL_MUTUAL takes one when offered
# (after a reload), ISTIO_MUTUAL presents the Proxy identity and takes only
# mesh identities; `meshgate authz
# --connect --principal` agrees with the gateway.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"

mg_pki || bail_out "cannot make a PKI"
P=$MG_PKI
"$MESHGATE" ca issue --dir "$P" --spiffe ns/payments/sa/billing --out-dir "$P/billing" >/dev/null ||
    bail_out "billing identity"
"$MESHGATE" ca init --dir "$MG_TMP/other" >/dev/null &&
    "$MESHGATE" ca issue --dir "$MG_TMP/other" --spiffe ns/default/sa/sleep --out-dir "$MG_TMP/other/sleep" \
        >/dev/null || bail_out "another root"
"$MESHGATE" ca issue --dir "$P" --dns proxy.example.com --dns '*.example.com' --name proxy2 >/dev/null ||
    bail_out "second proxy certificate"
mg_start_upstream --name api || bail_out "upstream api"
u1=$MG_UPSTREAM_PORT
fwd=$(mg_free_port)
export MG_ADMIN=127.0.0.1:$(mg_free_port)
cfg=$(mg_tmpdir cfg)
log=$(dirname "$cfg")/access.log
# the proxy's server certificate is a copy, replaced in place for the rotation
cp "$P/server.crt" "$MG_TMP/proxy.crt" && cp "$P/server.key" "$MG_TMP/proxy.key" || bail_out "copy"

# registry: api.test:80 (STATIC to the upstream); policies: api.test only for
# sleep (by principal) and for the payments namespace; nothing through a
# connection whose SNI is deny.example.com.
registry() {
    cat <<YAML
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: api, namespace: istio-system}
spec:
  hosts: ["api.test"]
  location: MESH_EXTERNAL
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {http: $u1}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: who-goes-out, namespace: istio-system}
spec:
  action: ALLOW
  rules:
  - from: [{source: {principals: ["cluster.local/ns/default/sa/sleep"]}}]
    to: [{operation: {hosts: ["api.test", "api.test:*"]}}]
  - from: [{source: {namespaces: ["payments"]}}]
    to: [{operation: {hosts: ["api.test", "api.test:*"]}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: not-by-that-name, namespace: istio-system}
spec:
  action: DENY
  rules:
  - when: [{key: connection.sni, values: ["deny.example.com"]}]
YAML
}

cat >"$cfg/gw.yaml" <<YAML
apiVersion: meshgate.io/v1alpha1
kind: Proxy
metadata: {name: egw, namespace: istio-system, labels: {istio: egressgateway}}
spec:
  bindAddress: 127.0.0.1
  admin: $MG_ADMIN
  workers: 2
  outbound:
    bind: 127.0.0.1:$fwd
    tls:
      mode: MUTUAL
      serverCertificate: $MG_TMP/proxy.crt
      privateKey: $MG_TMP/proxy.key
      caCertificates: $P/root-cert.pem
  timeouts: {handshake: 5s, requestHeaders: 5s, idle: 60s, drain: 2s}
---
apiVersion: meshgate.io/v1alpha1
kind: MeshConfig
spec:
  accessLogFile: $log
  accessLogEncoding: JSON
  outboundTrafficPolicy: {mode: REGISTRY_ONLY}
$(registry)
YAML

ok "meshgate check accepts outbound.tls" "$MESHGATE" check -c "$cfg"
ok "gateway starts with a MUTUAL forward proxy" mg_start_meshgate "$cfg"
mg_wait_port 127.0.0.1 "$fwd" || bail_out "forward proxy port"

# the proxy is reached as proxy.example.com (SNI) unless PX says otherwise
PX=proxy.example.com
# tls IDENTITY_DIR [CURL ARGS...]: curl through the TLS proxy with that client
# certificate ("-" = none), trusting the mesh root for the proxy.
tls() {
    local id=$1 cert=()
    shift
    case $id in
    -) ;;
    */*) cert=(--proxy-cert "$id/cert-chain.pem" --proxy-key "$id/key.pem") ;;
    *) cert=(--proxy-cert "$P/$id/cert-chain.pem" --proxy-key "$P/$id/key.pem") ;;
    esac
    curl -sS --max-time 10 --resolve "$PX:$fwd:127.0.0.1" --proxy "https://$PX:$fwd" \
        --proxy-cacert "$P/root-cert.pem" "${cert[@]}" "$@"
}
# connect ID HOST:PORT: the status answered to the CONNECT (000: no answer)
connect() {
    tls "$1" -o /dev/null -w '%{http_connect}' -p "http://$2/echo" 2>/dev/null
}
# get ID URL: the status of an absolute-form request (000: no answer)
get() {
    tls "$1" -o /dev/null -w '%{http_code}' "$2" 2>/dev/null
}

dump=$(curl -sS --max-time 5 "http://$MG_ADMIN/config_dump")
like "$dump" "\"port\":$fwd,\"tls\":true,\"forward_proxy\":true,\"servers\":\\[\\{\"name\":\"istio-system/egw/outbound\",\"mode\":\"MUTUAL\"" \
    "/config_dump shows the forward proxy port with its TLS server"

body=$(tls sleep -p "http://api.test:80/echo")
is "$(mg_json_field "$body" upstream)" api "sleep's identity reaches the registered host through a CONNECT"
is "$(connect sleep api.test:80)" 200 "... the CONNECT is answered 200"
is "$(connect httpbin api.test:80)" 403 "another identity's CONNECT is refused with 403"
is "$(connect billing api.test:80)" 200 "an identity of the allowed namespace gets through (source.namespaces)"
is "$(connect sleep evil.test:80)" 403 "the registry still refuses an unregistered host"
body=$(tls sleep "http://api.test/echo")
is "$(mg_json_field "$body" upstream)" api "an absolute-form request with sleep's identity reaches the host"
like "$body" '"x-forwarded-client-cert","By=[^"]*URI=spiffe://cluster.local/ns/default/sa/sleep"' \
    "... with the client's identity in x-forwarded-client-cert"
is "$(get httpbin http://api.test/echo)" 403 "another identity's absolute-form request is refused with 403"
is "$(get billing http://api.test/echo)" 200 "the allowed namespace's absolute-form request passes"
is "$(connect - api.test:80)" 000 "no client certificate: no connection (MUTUAL)"
is "$(get - http://api.test/echo)" 000 "... for absolute-form requests too"
is "$(connect "$MG_TMP/other/sleep" api.test:80)" 000 "a client certificate from another root: no connection"
is "$(curl -s -o /dev/null --max-time 10 -w '%{http_connect}' -p -x "http://127.0.0.1:$fwd" \
    "http://api.test:80/echo")" 000 "a plain-text client on the TLS forward port gets no answer"
is "$(curl -s -o /dev/null --max-time 10 -w '%{http_code}' -x "http://127.0.0.1:$fwd" \
    "http://api.test/echo")" 000 "... nor does a plain-text absolute-form request"
PX=deny.example.com
is "$(connect sleep api.test:80)" 403 "connection.sni is the SNI sent to the proxy (a DENY on it refuses)"
is "$(get sleep http://api.test/echo)" 403 "... for absolute-form requests too"
PX=proxy.example.com

mg_wait_log "$log" '"authority":"api.test:80".*"response_code":403' >/dev/null
line=$(grep '"method":"CONNECT"' "$log" | grep '"response_code":200' | grep '"authority":"api.test:80"' | head -n 1)
like "$line" '"peer_principal":"cluster.local/ns/default/sa/sleep"' "the CONNECT's access log line has the client principal"
like "$line" '"requested_server_name":"proxy.example.com"' "... and the SNI the client sent to the proxy"
line=$(grep '"method":"CONNECT"' "$log" | grep '"response_code":403' | grep 'sa/httpbin' | head -n 1)
like "$line" '"reason":"rbac_policy"' "the refused CONNECT is logged with the identity and the reason"
line=$(grep '"method":"GET"' "$log" | grep '"response_code":200' | grep '"authority":"api.test"' | head -n 1)
like "$line" '"peer_principal":"cluster.local/ns/default/sa/sleep"' "the absolute-form request's line has the principal"

alpn=$(timeout 5 openssl s_client -connect "127.0.0.1:$fwd" -servername proxy.example.com \
    -alpn h2,http/1.1 -cert "$P/sleep/cert-chain.pem" -key "$P/sleep/key.pem" </dev/null 2>/dev/null | grep '^ALPN')
is "$alpn" "ALPN protocol: http/1.1" "ALPN: http/1.1 even when h2 is offered first"

# bulk through a TLS tunnel (the bufferevent path, not splice(2)): 20 MB
# arrive intact; a reader held to 256 KB/s does not make the gateway buffer
# what the origin sends faster (unbounded, the 50 MB the origin can send at
# once would be held; bounded, the growth stays under 1 MiB, or about 13 MiB
# of allocator overhead in a sanitizer build: hence the 24 MiB bound)
n=$((20 * 1024 * 1024))
want=$(yes abcdefghijklmnopqrstuvwxyz | tr -d '\n' | head -c "$n" | sha256sum | cut -d' ' -f1)
got=$(tls sleep --max-time 60 -p "http://api.test:80/bytes/$n" | sha256sum | cut -d' ' -f1)
is "$got" "$want" "20 MB through an mTLS CONNECT tunnel arrive with their checksum intact"
rss() { awk '/^VmRSS:/ { print $2 }' "/proc/$MG_MESHGATE_PID/status"; }
rss0=$(rss)
tls sleep --max-time 6 --limit-rate 256K -o /dev/null -p "http://api.test:80/bytes/$((50 * 1024 * 1024))" \
    2>/dev/null &
slowpid=$!
sleep 1.5
rss1=$(rss)
sleep 3
rss2=$(rss)
wait "$slowpid"
grow=$(( (rss1 > rss2 ? rss1 : rss2) - rss0 ))
ok "a slow reader of a TLS tunnel does not grow the gateway's memory (${grow} KiB, bound 24576)" \
    test "$grow" -lt 24576

# the explainer gives the same answers
out=$("$MESHGATE" authz -c "$cfg" --connect api.test:80 --principal cluster.local/ns/default/sa/sleep)
is "$?" 0 "meshgate authz --connect --principal allows sleep"
like "$out" '^peer: principal cluster.local/ns/default/sa/sleep \(a client certificate verified by outbound.tls MUTUAL\)$' \
    "... and says where the principal comes from"
"$MESHGATE" authz -c "$cfg" --connect api.test:80 --principal cluster.local/ns/default/sa/httpbin >/dev/null
is "$?" 1 "... and denies httpbin"
"$MESHGATE" authz -c "$cfg" --connect api.test:80 --namespace payments --service-account billing >/dev/null
is "$?" 0 "... and allows the payments namespace"
"$MESHGATE" authz -c "$cfg" --connect api.test:80 --principal cluster.local/ns/default/sa/sleep \
    --sni deny.example.com >/dev/null
is "$?" 1 "... and with --sni explains the DENY on connection.sni"

# rotation: a new certificate written over the files is served without a signal
fp() { openssl x509 -noout -fingerprint -sha256 -in "$1" | cut -d= -f2; }
served() {
    timeout 5 openssl s_client -connect "127.0.0.1:$fwd" -servername proxy.example.com \
        -cert "$P/sleep/cert-chain.pem" -key "$P/sleep/key.pem" </dev/null 2>/dev/null |
        openssl x509 -noout -fingerprint -sha256 2>/dev/null | cut -d= -f2
}
is "$(served)" "$(fp "$P/server.crt")" "the configured server certificate is served"
cp "$P/proxy2.key" "$MG_TMP/proxy.key.new" && cp "$P/proxy2.crt" "$MG_TMP/proxy.crt.new" &&
    mv "$MG_TMP/proxy.key.new" "$MG_TMP/proxy.key" && mv "$MG_TMP/proxy.crt.new" "$MG_TMP/proxy.crt"
want=$(fp "$P/proxy2.crt")
now=""
for ((i = 0; i < 50; i++)); do
    now=$(served)
    [ "$now" = "$want" ] && break
    sleep 0.2
done
is "$now" "$want" "a rotated certificate is served without a signal"
is "$(connect sleep api.test:80)" 200 "... and sleep still gets through"

# SIMPLE: a second gateway whose forward proxy asks for no client certificate
cfg2=$(mg_tmpdir cfg2)
log2=$(dirname "$cfg2")/access2.log
fwd2=$(mg_free_port)
adm2=127.0.0.1:$(mg_free_port)
write2() {  # write2 TLS_YAML
    cat >"$cfg2/gw.yaml" <<YAML
apiVersion: meshgate.io/v1alpha1
kind: Proxy
metadata: {name: egw2, namespace: istio-system}
spec:
  bindAddress: 127.0.0.1
  admin: $adm2
  workers: 1
  identity: {certificateChain: $P/gateway/cert-chain.pem, privateKey: $P/gateway/key.pem, rootCertificates: $P/root-cert.pem}
  credentials:
    proxy-cert: {certificate: $P/server.crt, privateKey: $P/server.key}
  outbound:
    bind: 127.0.0.1:$fwd2
    tls: $1
---
apiVersion: meshgate.io/v1alpha1
kind: MeshConfig
spec:
  accessLogFile: $log2
  accessLogEncoding: JSON
  outboundTrafficPolicy: {mode: REGISTRY_ONLY}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: api, namespace: istio-system}
spec:
  hosts: ["api.test"]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {http: $u1}}]
YAML
}
write2 "{mode: SIMPLE, credentialName: proxy-cert}"
MG_ADMIN=$adm2 ok "a second gateway starts with a SIMPLE forward proxy (certificate by credentialName)" \
    mg_start_meshgate "$cfg2"
pid2=$MG_MESHGATE_PID
fwd_save=$fwd
fwd=$fwd2
is "$(connect - api.test:80)" 200 "SIMPLE: a CONNECT without a client certificate is served"
is "$(get - http://api.test/echo)" 200 "SIMPLE: an absolute-form request too"
out=$("$MESHGATE" authz -c "$cfg2" --connect api.test:80 --principal cluster.local/ns/default/sa/sleep)
like "$out" "^peer: no principal: the forward proxy's listener is outbound.tls SIMPLE" \
    "SIMPLE: the explainer drops --principal, as the gateway never sees one"
mg_wait_log "$log2" '"method":"CONNECT"' >/dev/null
line=$(grep '"method":"CONNECT"' "$log2" | head -n 1)
like "$line" '"downstream_tls":true' "SIMPLE: logged as a TLS connection"
unlike "$line" 'peer_principal' "... with no principal"

# reload2 TLS_YAML MODE: rewrite the second gateway's outbound.tls, SIGHUP,
# wait until /config_dump shows MODE on the forward proxy's server
reload2() {
    local i
    write2 "$1"
    kill -HUP "$pid2"
    for ((i = 0; i < 50; i++)); do
        curl -sS --max-time 2 "http://$adm2/config_dump" 2>/dev/null |
            grep -q "\"name\":\"istio-system/egw2/outbound\",\"mode\":\"$2\"" && return 0
        sleep 0.1
    done
    return 1
}

# OPTIONAL_MUTUAL: a certificate is asked for, not required
ok "OPTIONAL_MUTUAL after SIGHUP" reload2 \
    "{mode: OPTIONAL_MUTUAL, serverCertificate: $P/server.crt, privateKey: $P/server.key, caCertificates: $P/root-cert.pem}" \
    OPTIONAL_MUTUAL
is "$(connect - api.test:80)" 200 "OPTIONAL_MUTUAL: a client without a certificate is served"
is "$(connect billing api.test:80)" 200 "OPTIONAL_MUTUAL: a client with one too"
is "$(connect "$MG_TMP/other/sleep" api.test:80)" 000 "OPTIONAL_MUTUAL: one from another root is refused"
mg_wait_log "$log2" 'sa/billing' >/dev/null
like "$(grep '"method":"CONNECT"' "$log2" | tail -n 1)" '"peer_principal":"cluster.local/ns/payments/sa/billing"' \
    "OPTIONAL_MUTUAL: the offered identity is the principal"

# ISTIO_MUTUAL after a reload: the Proxy identity, mesh identities only
ok "ISTIO_MUTUAL after SIGHUP" reload2 "{mode: ISTIO_MUTUAL}" ISTIO_MUTUAL
served2() {
    timeout 5 openssl s_client -connect "127.0.0.1:$fwd2" -cert "$P/sleep/cert-chain.pem" \
        -key "$P/sleep/key.pem" </dev/null 2>/dev/null | openssl x509 -noout -fingerprint -sha256 2>/dev/null | cut -d= -f2
}
want=$(openssl x509 -noout -fingerprint -sha256 -in "$P/gateway/cert-chain.pem" | cut -d= -f2)
now=""
for ((i = 0; i < 50; i++)); do
    now=$(served2)
    [ "$now" = "$want" ] && break
    sleep 0.2
done
is "$now" "$want" "ISTIO_MUTUAL: the Proxy identity is presented"
# the proxy's certificate names no host: trust it by the mesh root, no name check
itls() { tls "$1" --proxy-insecure "${@:2}"; }
is "$(itls sleep -o /dev/null -w '%{http_connect}' -p http://api.test:80/echo 2>/dev/null)" 200 \
    "ISTIO_MUTUAL: a mesh identity's CONNECT is served"
is "$(itls - -o /dev/null -w '%{http_connect}' -p http://api.test:80/echo 2>/dev/null)" 000 \
    "ISTIO_MUTUAL: no client certificate, no connection"
is "$(curl -s -o /dev/null --max-time 10 -w '%{http_connect}' --proxy-insecure --proxy "https://127.0.0.1:$fwd2" \
    --proxy-cert "$P/client.crt" --proxy-key "$P/client.key" -p http://api.test:80/echo)" 000 \
    "ISTIO_MUTUAL: a certificate of the mesh root without a SPIFFE identity, no connection"
mg_wait_log "$log2" 'peer_principal' >/dev/null
line=$(grep '"method":"CONNECT"' "$log2" | grep peer_principal | tail -n 1)
like "$line" '"peer_principal":"cluster.local/ns/default/sa/sleep"' "ISTIO_MUTUAL: the principal is logged"
fwd=$fwd_save

done_testing
