#!/bin/sh
# test_jwt_tool.sh - mg_jwt_tool (the e2e helper) round trip: keys of every
# type, JWKS output, signing with relative times, checked by meshgate's own
# verifier (mg_jwt_tool verify). TAP output.
T="${MG_BUILDDIR:-.}/tests/helpers/mg_jwt_tool"
dir=$(mktemp -d /tmp/mg-jwt-tool.XXXXXX) || exit 1
trap 'rm -rf "$dir"' EXIT INT TERM
n=0
fail=0
check() {   # check DESCRIPTION COMMAND...
    desc=$1; shift
    n=$((n + 1))
    if "$@" >"$dir/out" 2>"$dir/err"; then echo "ok $n - $desc"
    else echo "not ok $n - $desc"; sed 's/^/#   /' "$dir/out" "$dir/err"; fail=1; fi
}
check_out() {   # check_out DESCRIPTION EXPECTED COMMAND...   (stdout must contain EXPECTED)
    desc=$1; want=$2; shift 2
    n=$((n + 1))
    "$@" >"$dir/out" 2>"$dir/err"
    if grep -qF -- "$want" "$dir/out"; then echo "ok $n - $desc"
    else echo "not ok $n - $desc"; sed 's/^/#   got: /' "$dir/out" "$dir/err"; fail=1; fi
}

for t in rsa ec256 ec384 ec521 ed25519; do
    check "genkey $t" "$T" genkey --type "$t" --kid "k-$t" --out "$dir/$t.pem" --jwks-out "$dir/all.json"
done
check "jwks from PEM files" sh -c "'$T' jwks '$dir/rsa.pem:r' '$dir/ed25519.pem:e' > '$dir/two.json'"
check_out "printed JWKS has both kids" '"kid":"e"' cat "$dir/two.json"
for t in rsa ec256 ec384 ec521 ed25519; do
    tok=$("$T" sign --key "$dir/$t.pem" --kid "k-$t" --claims '{"iss":"https://i","sub":"s-'$t'","exp":+3600}')
    check_out "$t token verifies against the appended JWKS" '"sub":"s-'$t'"' "$T" verify --jwks "$dir/all.json" "$tok"
done
tok=$("$T" sign --key "$dir/rsa.pem" --alg PS384 --kid k-rsa --claims '{"iss":"https://i"}')
check_out "PS384 with the RSA key verifies" '"iss":"https://i"' "$T" verify --jwks "$dir/all.json" "$tok"
tok=$("$T" sign --key "$dir/ec256.pem" --kid k-ec256 --claims '{"iss":"https://i","exp":"-120"}')
check_out "exp -120 is expired" "Jwt is expired" "$T" verify --jwks "$dir/all.json" "$tok"
tok=$("$T" sign --key "$dir/ec256.pem" --kid k-ec256 --claims '{"nbf":+600}')
check_out "nbf +600 is not yet valid" "Jwt not yet valid" "$T" verify --jwks "$dir/all.json" "$tok"
tok=$("$T" sign --key "$dir/ec256.pem" --kid nope --claims '{}')
check_out "unknown kid refused" "Jwks doesn't have key to match kid or alg from Jwt" "$T" verify --jwks "$dir/all.json" "$tok"
tok=$("$T" sign --key "$dir/ec384.pem" --alg ES256 --kid k-ec384 --claims '{}')
check_out "ES256 header on a P-384 key refused" "Jwt verification fails" "$T" verify --jwks "$dir/all.json" "$tok"
tok=$("$T" sign --key "$dir/ec256.pem" --header '{"alg":"none"}' --alg none --claims '{}')
n=$((n + 1))
if "$T" verify --jwks "$dir/all.json" "$tok" >/dev/null 2>&1; then echo "not ok $n - alg none refused"; fail=1
else echo "ok $n - alg none refused"; fi
printf '{"keys":[{"kty":"oct","kid":"h","k":"c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0"}]}' > "$dir/oct.json"
tok=$("$T" sign --secret secret-secret-secret-secret --kid h --claims '{"sub":"hmac"}')
check_out "HS256 with an inline oct key verifies" '"sub":"hmac"' "$T" verify --inline --jwks "$dir/oct.json" "$tok"
n=$((n + 1))
if "$T" verify --jwks "$dir/oct.json" "$tok" >/dev/null 2>&1; then echo "not ok $n - oct key refused outside inline jwks"; fail=1
else echo "ok $n - oct key refused outside inline jwks"; fi
echo "1..$n"
exit $fail
