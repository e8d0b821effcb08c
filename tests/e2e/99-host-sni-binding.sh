#!/bin/bash
# 99-host-sni-binding.sh - the Host (or :authority) of a request on a TLS
# connection must not reach a server block whose client-authentication
# differs from the one the SNI chose (istio-semantics 5, 9.2 envoy#6767):
# 421, also when the SNI's server is a wildcard that covers the Host.
# Regression: SNI app.example.com (SIMPLE *.example.com) with
# Host: mesh.example.com (ISTIO_MUTUAL) or mtls.example.com
# (OPTIONAL_MUTUAL) was served without a client certificate, because the
# wildcard server also "had" the host.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/az_common.sh"

mg_pki || bail_out "cannot make a PKI"
mg_start_upstream --name v1 || bail_out "upstream"
up=$MG_UPSTREAM_PORT
https=$(mg_free_port)
http=$(mg_free_port)
export MG_ADMIN=127.0.0.1:$(mg_free_port)
AZ_CFG=$(mg_tmpdir cfg)
# *.example.com SIMPLE, mtls.example.com OPTIONAL_MUTUAL, mesh.example.com
# ISTIO_MUTUAL on one port (az_common.sh)
az_config "$AZ_CFG" "$MG_ADMIN" "$https" "$http" "$up"
ok "gateway starts" mg_start_meshgate "$AZ_CFG"
C=(--cacert "$MG_PKI/root-cert.pem")
S=(--cert "$MG_PKI/sleep/cert-chain.pem" --key "$MG_PKI/sleep/key.pem")
A=https://app.example.com:$https

for v in --http1.1 --http2; do
    is "$(mg_http_code "${C[@]}" $v -H "Host: mesh.example.com:$https" "$A/echo")" 421 \
        "$v: SNI app (SIMPLE wildcard), Host mesh (ISTIO_MUTUAL): 421"
    is "$(mg_http_code "${C[@]}" $v -H "Host: MTLS.example.com:$https" "$A/echo")" 421 \
        "$v: SNI app (SIMPLE wildcard), Host mtls (OPTIONAL_MUTUAL): 421"
    is "$(mg_http_code "${C[@]}" $v -H "Host: other.example.com:$https" "$A/echo")" 200 \
        "$v: SNI app, Host other.example.com (same wildcard server): 200"
    is "$(mg_http_code "${C[@]}" "${S[@]}" $v -H "Host: app.example.com:$https" \
        --resolve "mtls.example.com:$https:127.0.0.1" "https://mtls.example.com:$https/echo")" 421 \
        "$v: SNI mtls with a certificate, Host app (SIMPLE): 421"
done
# absolute-form on HTTP/1.1 names the authority the same way
out=$(mg_raw_tls "$https" app.example.com \
    "GET https://mesh.example.com:$https/echo HTTP/1.1\r\nHost: mesh.example.com:$https\r\nConnection: close\r\n\r\n" \
    -CAfile "$MG_PKI/root-cert.pem")
like "$(printf '%s\n' "$out" | head -n 1)" '^HTTP/1.1 421' "absolute-form https://mesh... over SNI app: 421"
ok "421 logged with its reason" az_log_wait '"reason":"host_sni_mismatch".*"response_code":421'

done_testing
