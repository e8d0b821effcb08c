#!/bin/bash
# 10-ca.sh - `meshgate ca init|issue`: files, modes, certificate contents
# (checked with the openssl CLI, not with our own code), refusals.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"

command -v openssl >/dev/null || skip_all "openssl CLI is not installed"
[ -x "$MESHGATE" ] || bail_out "no $MESHGATE"

ca() { "$MESHGATE" ca "$@"; }
text() { openssl x509 -in "$1" -noout -text; }
mode() { stat -c %a "$1"; }
# ext FILE NAME: the value line(s) of one X509v3 extension, e.g. "Key Usage".
ext() { text "$1" | sed -n "/X509v3 $2:/{n;s/^ *//;p}"; }
ext_crit() { text "$1" | grep -q "X509v3 $2: critical"; }

D=$(mg_tmpdir ca)/root

# --- init
ok "ca --help exits 0" ca --help
like "$(ca --help)" 'ca init' "help text names init"
ok "ca init" ca init --dir "$D" --trust-domain example.org
for f in root-cert.pem root-key.pem trust-domain; do
    ok "init wrote $f" test -s "$D/$f"
done
is "$(mode "$D/root-key.pem")" 600 "root key is 0600"
is "$(cat "$D/trust-domain")" example.org "trust-domain file"
R=$D/root-cert.pem
rt=$(text "$R")
like "$rt" 'Subject: O ?= ?meshgate, CN ?= ?meshgate root example.org' "root subject O=meshgate, CN=meshgate root <td>"
like "$rt" 'Issuer: O ?= ?meshgate, CN ?= ?meshgate root example.org' "root is self-issued"
ok "root Basic Constraints are critical" ext_crit "$R" "Basic Constraints"
is "$(ext "$R" "Basic Constraints")" "CA:TRUE" "root CA:TRUE"
is "$(ext "$R" "Key Usage")" "Certificate Sign, CRL Sign" "root key usage keyCertSign, cRLSign"
like "$rt" 'ASN1 OID: prime256v1' "root key is P-256 by default"
ok "root verifies against itself" openssl verify -CAfile "$R" "$R"
days=$(( ($(date -d "$(openssl x509 -in "$R" -noout -enddate | cut -d= -f2)" +%s) - $(date +%s)) / 86400 ))
ok "root valid ~3650 days (got $days)" test "$days" -ge 3648 -a "$days" -le 3650
nb=$(date -d "$(openssl x509 -in "$R" -noout -startdate | cut -d= -f2)" +%s)
ok "root notBefore is about an hour back" test $(( $(date +%s) - nb )) -ge 3500 -a $(( $(date +%s) - nb )) -le 3700
serial=$(openssl x509 -in "$R" -noout -serial | cut -d= -f2)
is "${#serial}" 32 "128-bit serial"

sum=$(sha256sum "$R")
fails "init refuses to overwrite an existing root" ca init --dir "$D"
like "$(ca init --dir "$D" 2>&1)" 'already holds a CA.*--force' "the refusal says why and how"
is "$(sha256sum "$R")" "$sum" "the root is unchanged after the refusal"

# --- SPIFFE workload certificate
W=$(mg_tmpdir wl)/sleep
out=$(ca issue --dir "$D" --spiffe ns/default/sa/sleep --out-dir "$W")
is "$?" 0 "issue --spiffe"
like "$out" "$W/cert-chain.pem" "issue prints the paths"
for f in cert-chain.pem key.pem root-cert.pem; do
    ok "issue wrote $f" test -s "$W/$f"
done
is "$(mode "$W/key.pem")" 600 "workload key is 0600"
ok "root-cert.pem is a copy of the root" cmp -s "$W/root-cert.pem" "$R"
is "$(grep -c 'BEGIN CERTIFICATE' "$W/cert-chain.pem")" 1 "cert-chain.pem holds the leaf only (no intermediates)"
ok "workload cert verifies against the root" openssl verify -CAfile "$R" "$W/cert-chain.pem"
ok "it verifies for TLS server use" openssl verify -purpose sslserver -CAfile "$R" "$W/cert-chain.pem"
ok "it verifies for TLS client use" openssl verify -purpose sslclient -CAfile "$R" "$W/cert-chain.pem"
is "$(ext "$W/cert-chain.pem" "Subject Alternative Name")" "URI:spiffe://example.org/ns/default/sa/sleep" \
    "the only SAN is the SPIFFE URI with the CA's trust domain"
ok "SAN is critical (empty subject)" ext_crit "$W/cert-chain.pem" "Subject Alternative Name"
is "$(ext "$W/cert-chain.pem" "Key Usage")" "Digital Signature, Key Encipherment" "workload key usage"
is "$(ext "$W/cert-chain.pem" "Extended Key Usage")" \
    "TLS Web Server Authentication, TLS Web Client Authentication" "workload EKU serverAuth+clientAuth"
is "$(ext "$W/cert-chain.pem" "Basic Constraints")" "CA:FALSE" "workload is not a CA"
km=$(openssl pkey -in "$W/key.pem" -pubout | sha256sum)
is "$(openssl x509 -in "$W/cert-chain.pem" -noout -pubkey | sha256sum)" "$km" "key.pem matches the certificate"
days=$(( ($(date -d "$(openssl x509 -in "$W/cert-chain.pem" -noout -enddate | cut -d= -f2)" +%s) - $(date +%s)) / 86400 ))
ok "leaf valid ~365 days (got $days)" test "$days" -ge 363 -a "$days" -le 365
s1=$(openssl x509 -in "$W/cert-chain.pem" -noout -serial)
ca issue --dir "$D" --spiffe ns/default/sa/sleep --out-dir "$W" >/dev/null
isnt "$(openssl x509 -in "$W/cert-chain.pem" -noout -serial)" "$s1" "re-issuing gives a new random serial"

out=$(cd "$(dirname "$D")" && "$MESHGATE" ca issue --dir root --spiffe ns/istio-system/sa/ingressgateway)
ok "default out dir is DIR/NS-SA" test -s "$D/istio-system-ingressgateway/cert-chain.pem"

# a TLS handshake with the issued material, both ways (s_server/s_client)
if command -v timeout >/dev/null; then
    port=$(mg_free_port)
    openssl s_server -quiet -accept "127.0.0.1:$port" -cert "$W/cert-chain.pem" -key "$W/key.pem" \
        -CAfile "$R" -Verify 1 -verify_return_error -naccept 2 >/dev/null 2>&1 &
    _mg_track $!
    mg_wait_port 127.0.0.1 "$port" 5 >/dev/null   # this probe is the first accept
    hs=$(echo Q | timeout 5 openssl s_client -connect "127.0.0.1:$port" -CAfile "$R" \
        -cert "$D/istio-system-ingressgateway/cert-chain.pem" -key "$D/istio-system-ingressgateway/key.pem" \
        -verify_return_error 2>&1)
    like "$hs" 'Verify return code: 0 \(ok\)' "mTLS handshake between two workload identities"
fi

# --- server and client certificates
S=$(mg_tmpdir srv)
ok "issue --dns --ip" ca issue --dir "$D" --dns app.example.com --dns '*.app.example.com' --ip 127.0.0.1 --ip ::1 --out-dir "$S"
ok "BASENAME defaults to the first DNS name" test -s "$S/app.example.com.crt" -a -s "$S/app.example.com.key"
C=$S/app.example.com.crt
is "$(mode "$S/app.example.com.key")" 600 "server key is 0600"
ok "server cert verifies as a TLS server" openssl verify -purpose sslserver -CAfile "$R" "$C"
fails "server cert without --client is not a TLS client cert" openssl verify -purpose sslclient -CAfile "$R" "$C"
is "$(ext "$C" "Subject Alternative Name")" \
    "DNS:app.example.com, DNS:*.app.example.com, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1" \
    "DNS and IP SANs in order"
like "$(text "$C")" 'Subject: O ?= ?meshgate, CN ?= ?app.example.com' "CN is the first name"
is "$(ext "$C" "Extended Key Usage")" "TLS Web Server Authentication" "EKU serverAuth only"
ok "openssl checks the host name" openssl verify -CAfile "$R" -verify_hostname x.app.example.com "$C"
fails "and refuses another host" openssl verify -CAfile "$R" -verify_hostname other.example.com "$C"
ok "issue --client --name" ca issue --dir "$D" --dns client.example.com --client --name client --out-dir "$S"
ok "client cert verifies as a TLS client" openssl verify -purpose sslclient -CAfile "$R" "$S/client.crt"
is "$(ext "$S/client.crt" "Extended Key Usage")" \
    "TLS Web Server Authentication, TLS Web Client Authentication" "--client adds clientAuth"
ok "issue --ip only" ca issue --dir "$D" --ip 10.1.2.3 --out-dir "$S"
is "$(ext "$S/10.1.2.3.crt" "Subject Alternative Name")" "IP Address:10.1.2.3" "IP-only certificate"

# --- RSA
RD=$(mg_tmpdir rsa)
ok "init --rsa" ca init --dir "$RD" --rsa
like "$(text "$RD/root-cert.pem")" 'Public-Key: \(2048 bit\)' "RSA root is 2048 bit"
like "$(text "$RD/root-cert.pem")" 'Signature Algorithm: sha256WithRSAEncryption' "RSA root signed with SHA-256"
ok "issue --rsa --spiffe" ca issue --dir "$RD" --rsa --spiffe ns/a/sa/b --out-dir "$RD/ab"
like "$(text "$RD/ab/cert-chain.pem")" 'rsaEncryption' "RSA workload key"
is "$(ext "$RD/ab/cert-chain.pem" "Subject Alternative Name")" "URI:spiffe://cluster.local/ns/a/sa/b" \
    "default trust domain cluster.local"
ok "RSA workload verifies" openssl verify -CAfile "$RD/root-cert.pem" "$RD/ab/cert-chain.pem"
fails "the RSA leaf does not verify against the other root" openssl verify -CAfile "$R" "$RD/ab/cert-chain.pem"
ok "init --force replaces the root" ca init --dir "$RD" --force
fails "after --force the old leaf no longer verifies" openssl verify -CAfile "$RD/root-cert.pem" "$RD/ab/cert-chain.pem"

# --- --days and the trust domain rewrite
DD=$(mg_tmpdir days)
ok "init --days 30 --trust-domain with @" ca init --dir "$DD" --days 30 --trust-domain td@example.com
is "$(cat "$DD/trust-domain")" td.example.com "'@' becomes '.' as in Istio"
ca issue --dir "$DD" --spiffe ns/x/sa/y --days 365 --out-dir "$DD/xy" >/dev/null
is "$(openssl x509 -in "$DD/xy/cert-chain.pem" -noout -enddate)" "$(openssl x509 -in "$DD/root-cert.pem" -noout -enddate)" \
    "a leaf never outlives its root"
ca issue --dir "$DD" --dns d.example.com --days 2 --out-dir "$DD" >/dev/null
days=$(( ($(date -d "$(openssl x509 -in "$DD/d.example.com.crt" -noout -enddate | cut -d= -f2)" +%s) - $(date +%s)) / 86400 ))
ok "--days 2 gives a 2-day leaf (got $days)" test "$days" -ge 1 -a "$days" -le 2

# --- another trust domain from the same root (trustDomainAliases tests)
ok "issue --spiffe --trust-domain" ca issue --dir "$D" --spiffe ns/default/sa/old --trust-domain old-td.local \
    --out-dir "$W-old"
is "$(ext "$W-old/cert-chain.pem" "Subject Alternative Name")" "URI:spiffe://old-td.local/ns/default/sa/old" \
    "--trust-domain overrides DIR/trust-domain"
ok "and it still chains to the same root" openssl verify -CAfile "$R" "$W-old/cert-chain.pem"
is "$(cat "$D/trust-domain")" example.org "the CA's own trust domain is unchanged"

# --- intermediates: init --parent
I=$(mg_tmpdir inter)
ok "init --parent makes an intermediate" ca init --dir "$I/i1" --parent "$D"
for f in ca-cert.pem ca-key.pem ca-chain.pem root-cert.pem trust-domain; do
    ok "intermediate dir has $f" test -s "$I/i1/$f"
done
is "$(mode "$I/i1/ca-key.pem")" 600 "intermediate key is 0600"
ok "root-cert.pem of the intermediate dir is the top root" cmp -s "$I/i1/root-cert.pem" "$R"
is "$(cat "$I/i1/trust-domain")" example.org "the trust domain is inherited from the parent"
like "$(text "$I/i1/ca-cert.pem")" 'Issuer: O ?= ?meshgate, CN ?= ?meshgate root example.org' "intermediate issued by the root"
is "$(ext "$I/i1/ca-cert.pem" "Basic Constraints")" "CA:TRUE" "intermediate is a CA"
is "$(ext "$I/i1/ca-cert.pem" "Key Usage")" "Certificate Sign, CRL Sign" "intermediate key usage"
ok "intermediate verifies against the root" openssl verify -CAfile "$R" "$I/i1/ca-cert.pem"
ok "a second level below it" ca init --dir "$I/i2" --parent "$I/i1"
is "$(grep -c 'BEGIN CERTIFICATE' "$I/i2/ca-chain.pem")" 2 "second-level ca-chain.pem holds both intermediates"
ok "issue from the second level" ca issue --dir "$I/i2" --spiffe ns/default/sa/deep --out-dir "$I/deep"
is "$(grep -c 'BEGIN CERTIFICATE' "$I/deep/cert-chain.pem")" 3 "cert-chain.pem is leaf + two intermediates"
ok "root-cert.pem next to it is the top root" cmp -s "$I/deep/root-cert.pem" "$R"
ok "the chain verifies to the root" \
    openssl verify -CAfile "$R" -untrusted "$I/deep/cert-chain.pem" "$I/deep/cert-chain.pem"
fails "the leaf alone does not verify (the intermediates are needed)" openssl verify -CAfile "$R" "$I/deep/cert-chain.pem"
is "$(ext "$I/deep/cert-chain.pem" "Subject Alternative Name")" "URI:spiffe://example.org/ns/default/sa/deep" \
    "SPIFFE URI under an intermediate"
ok "server cert from an intermediate" ca issue --dir "$I/i1" --dns app.example.com --name app --out-dir "$I"
is "$(grep -c 'BEGIN CERTIFICATE' "$I/app.crt")" 2 "BASENAME.crt is leaf + intermediate"
if [ -x "$MG_UPSTREAM_BIN" ]; then
    mg_start_upstream --name chain --tls-cert "$I/app.crt" --tls-key "$I/app.key" >/dev/null 2>&1
    is "$(mg_http_code --cacert "$R" "https://app.example.com:$MG_UPSTREAM_PORT/")" 200 \
        "a TLS server sends the chain and a client trusting only the root accepts it"
    mg_stop "$MG_UPSTREAM_PID"
fi
fails "init --parent refuses to overwrite" ca init --dir "$I/i1" --parent "$D"
bad_parent=$(ca init --dir "$I/x" --parent "$I/none" 2>&1)
like "$bad_parent" 'cannot read a root certificate' "init --parent with a missing parent says so"

# --- bad arguments: exit 1 with a message, no files
E=$(mg_tmpdir err)
bad() {   # bad NAME REGEX ARGS...: exit status 1 and stderr matching REGEX
    local name=$1 re=$2 err rc
    shift 2
    err=$("$MESHGATE" ca "$@" 2>&1 >/dev/null)
    rc=$?
    if [ "$rc" -eq 1 ] && printf '%s' "$err" | grep -Eq -- "$re"; then
        pass "$name"
    else
        fail "$name"
        diag "exit $rc, stderr: $err"
    fi
}
bad "no subcommand" 'usage' 
bad "unknown subcommand" "unknown subcommand" frobnicate
bad "init without --dir" '--dir' init
bad "unknown option" "unknown argument '--bogus'" init --dir "$E/x" --bogus
bad "option without value" '--dir needs a value' init --dir
bad "bad trust domain" 'invalid trust domain' init --dir "$E/x" --trust-domain 'Bad/TD'
bad "--days 0" '--days' init --dir "$E/x" --days 0
bad "--days not a number" '--days' init --dir "$E/x" --days 1y
ok "failed inits left no files" test ! -e "$E/x"
bad "issue from a missing CA dir" 'cannot read a root certificate' issue --dir "$E/none" --spiffe ns/a/sa/b
bad "issue without --spiffe or --dns" 'give --spiffe' issue --dir "$D"
bad "--spiffe with --dns" 'one kind' issue --dir "$D" --spiffe ns/a/sa/b --dns a.com
for p in "" "ns/a/sa/" "ns//sa/b" "ns/a/sa/b/c" "sa/b/ns/a" "ns/A/sa/b" "ns/a/sa/b,URI:x" "ns/a/xx/b"; do
    bad "invalid SPIFFE path '$p'" 'invalid --spiffe' issue --dir "$D" --spiffe "$p" --out-dir "$E/s"
done
bad "invalid DNS name" "invalid --dns name" issue --dir "$D" --dns 'a..b' --out-dir "$E/s"
bad "DNS name with a comma" "invalid --dns name" issue --dir "$D" --dns 'a.com,DNS:evil.com' --out-dir "$E/s"
bad "invalid IP" "invalid --ip" issue --dir "$D" --ip 300.1.1.1 --out-dir "$E/s"
bad "--name with a slash" "invalid --name" issue --dir "$D" --dns a.com --name ../a --out-dir "$E/s"
bad "--client with --spiffe" "apply to --dns" issue --dir "$D" --spiffe ns/a/sa/b --client
bad "--trust-domain with --dns" "applies to --spiffe" issue --dir "$D" --dns a.com --trust-domain x.org
bad "invalid --trust-domain on issue" "invalid trust domain" issue --dir "$D" --spiffe ns/a/sa/b --trust-domain 'A B' --out-dir "$E/s"
ok "failed issues left no files" test ! -e "$E/s"
cp "$R" "$E/root-cert.pem" && cp "$RD/root-key.pem" "$E/root-key.pem" && echo cluster.local >"$E/trust-domain"
bad "a key that does not match the root" 'does not belong' issue --dir "$E" --spiffe ns/a/sa/b --out-dir "$E/m"
mkdir -p "$E/bt" && cp "$R" "$D/root-key.pem" "$E/bt/" && echo 'Not/Valid' >"$E/bt/trust-domain"
bad "a corrupt trust-domain file" 'valid trust domain' issue --dir "$E/bt" --spiffe ns/a/sa/b --out-dir "$E/m"

done_testing
