#!/bin/bash
# 62-sidecar-session-context.sh - a TLS session of a sidecar inbound port
# resumes only while the trust it was verified against is unchanged.
# Session tickets are sealed with one process-wide key ring that outlives
# reloads; the session id context is what ties a session to its trust.
# A reload that changes no trust keeps them resuming.
# Regression: every inbound port used one constant session id context, so
# after a reload that dropped a trust-domain alias or rotated the mesh root,
# an old session resumed (200) with no certificate check, while the same
# client certificate on a full handshake was refused.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/sc_common.sh"

mg_pki || bail_out "cannot make a PKI"
P=$MG_PKI
"$MESHGATE" ca issue --dir "$P" --spiffe ns/default/sa/sleep --trust-domain alias.domain \
    --out-dir "$P/aliastd" >/dev/null || bail_out "alias trust domain certificate"
"$MESHGATE" ca init --dir "$MG_TMP/pki2" >/dev/null &&
    "$MESHGATE" ca issue --dir "$MG_TMP/pki2" --spiffe ns/default/sa/sleep --out-dir "$MG_TMP/pki2/sleep" \
        >/dev/null || bail_out "second CA"
root=$MG_TMP/mesh-root.pem
cp "$P/root-cert.pem" "$root" || bail_out "root copy"
mg_start_upstream --name app || bail_out "upstream"
sc_config "$(mg_tmpdir cfg)" "$MG_UPSTREAM_PORT"
sed -i "s|rootCertificates: $P/root-cert.pem|rootCertificates: $root|" "$SC_CFG/00-proxy.yaml"
grep -q "rootCertificates: $root" "$SC_CFG/00-proxy.yaml" || bail_out "root path"
cp "$SC_CFG/00-proxy.yaml" "$MG_TMP/proxy-no-alias.yaml"
printf '  trustDomainAliases: [alias.domain]\n' >>"$SC_CFG/00-proxy.yaml"
sc_pa "$SC_CFG" ns-strict default STRICT
ok "sidecar starts" mg_start_meshgate "$SC_CFG" || bail_out "sidecar"

# tls VERSION SESSION_OUT SESSION_IN [s_client args]: one GET /echo on the
# inbound port; prints "New," or "Reused," and the HTTP status if any.
tls() {
    local v=$1 out=$2 in=$3
    shift 3
    local so=() si=()
    [ -n "$out" ] && so=(-sess_out "$out")
    [ -n "$in" ] && si=(-sess_in "$in")
    printf 'GET /echo HTTP/1.1\r\nHost: httpbin\r\nConnection: close\r\n\r\n' |
        timeout 10 openssl s_client "$v" -connect "127.0.0.1:$SC_B1" -alpn istio-http/1.1 \
            -CAfile "$root" "${so[@]}" "${si[@]}" -ign_eof "$@" 2>&1 |
        awk '/^(Reused|New),/ && !r {print $1; r=1}
             !h && match($0, /HTTP\/1\.1 [0-9][0-9][0-9]/) {print substr($0, RSTART + 9, 3); h=1}' |
        tr '\n' ' '
}
cert() { printf '%s\n' -cert "$1/cert-chain.pem" -key "$1/key.pem"; }
mapfile -t SLEEP < <(cert "$P/sleep")
mapfile -t ALIAS < <(cert "$P/aliastd")
mapfile -t SLEEP2 < <(cert "$MG_TMP/pki2/sleep")

# generation: the newest "generation N active" (or serving) of the log
generation() {
    grep -Eo 'generation [0-9]+' "$MG_MESHGATE_LOG" | awk '{print $2}' | sort -n | tail -n 1
}
# reload: SIGHUP, and wait (up to 20 s) for a newer generation
reload() {
    local g i
    g=$(generation)
    kill -HUP "$MG_MESHGATE_PID"
    for ((i = 0; i < 200; i++)); do
        [ "$(generation)" -gt "$g" ] 2>/dev/null && return 0
        sleep 0.1
    done
    tail -n 20 "$MG_MESHGATE_LOG" >&2
    return 1
}

# 1. a session of a trust-domain alias peer; the alias is then dropped
for v in -tls1_3 -tls1_2; do
    s=$MG_TMP/alias$v.pem
    like "$(tls $v "$s" "" "${ALIAS[@]}")" "New, 200" "$v: a peer of the alias trust domain is accepted"
    like "$(tls $v "" "$s")" "Reused, 200" "$v: its session resumes (no certificate sent)"
done
# a reload that changes no trust keeps the sessions
ok "reload with the same trust" reload
for v in -tls1_3 -tls1_2; do
    like "$(tls $v "" "$MG_TMP/alias$v.pem")" "Reused, 200" "$v: after it, the session still resumes"
done
cp "$MG_TMP/proxy-no-alias.yaml" "$SC_CFG/00-proxy.yaml"
ok "reload without trustDomainAliases" reload
for v in -tls1_3 -tls1_2; do
    s=$MG_TMP/alias$v.pem
    r=$(tls $v "" "$s")
    unlike "$r" "Reused" "$v: after the alias is dropped, its old session does not resume"
    unlike "$r" "200" "$v: ... and without a valid certificate there is no answer"
    unlike "$(tls $v "" "" "${ALIAS[@]}")" "200" "$v: a full handshake of the alias peer is refused"
done

# 2. a session of a mesh peer; the mesh root is then rotated to a root that
# does not sign the peer
for v in -tls1_3 -tls1_2; do
    s=$MG_TMP/sleep$v.pem
    like "$(tls $v "$s" "" "${SLEEP[@]}")" "New, 200" "$v: a mesh peer is accepted"
    like "$(tls $v "" "$s")" "Reused, 200" "$v: its session resumes (no certificate sent)"
done
cp "$MG_TMP/pki2/root-cert.pem" "$root.new" && mv "$root.new" "$root"
ok "reload with the new mesh root" reload
for v in -tls1_3 -tls1_2; do
    s=$MG_TMP/sleep$v.pem
    r=$(tls $v "" "$s")
    unlike "$r" "Reused" "$v: after the root rotation, the old session does not resume"
    unlike "$r" "200" "$v: ... and without a valid certificate there is no answer"
    unlike "$(tls $v "" "" "${SLEEP[@]}")" "200" "$v: a full handshake with the old root's certificate is refused"
    like "$(tls $v "" "" "${SLEEP2[@]}")" "New, 200" "$v: a peer of the new root is accepted"
done

done_testing
