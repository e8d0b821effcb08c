#!/bin/bash
# 35-h2-conformance.sh - contrib/h2conformance.py (HTTP/2 conformance: the
# cases of RFC 9113 and RFC 7541 numbered as h2spec numbers them, and what
# RFC 9113 added) against the gateway over TLS with ALPN h2, routing to
# mg_upstream: every case passes, with no known exception. A server that
# completes the preface and then ignores everything must fail the error
# cases (the checker does not pass a silent peer). Skipped when Debian's
# python3-hyperframe and python3-hpack are missing.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/h2lib.sh"

CHECKER=$MG_SRCDIR/contrib/h2conformance.py
# Debian's interpreter first: the modules are Debian packages, and a python3
# earlier on PATH (a virtualenv, pyenv) may not see them
py=
for p in /usr/bin/python3 "$(command -v python3 2>/dev/null)"; do
    [ -x "$p" ] && "$p" -c 'import hyperframe, hpack' 2>/dev/null && { py=$p; break; }
done
[ -n "$py" ] || skip_all "python3-hyperframe / python3-hpack not installed"

h2_setup
h2_start || bail_out "no gateway"

ncases=$("$py" "$CHECKER" --list | wc -l)
out=$MG_TMP/h2conformance.txt
# /echo: a body long enough for the flow-control cases (they read 5 octets)
"$py" "$CHECKER" --host 127.0.0.1 --port "$H2_PORT" --tls --sni app.example.com \
    --cacert "$MG_PKI/root-cert.pem" --path /echo --timeout 2 -j "$MG_TMP/h2conformance.xml" >"$out" 2>&1
rc=$?
summary=$(tail -n 1 "$out")
like "$summary" "^$ncases cases, " "all $ncases cases ran"
is "$rc" 0 "every case passes ($summary)" || grep -A1 '^  [×-] ' "$out" | diag -
unlike "$(cat "$out")" '^  - ' "no case skipped"
like "$(grep -c '^  ✔ ' "$out")" "^$ncases\$" "$ncases lines with a pass mark"
like "$(cat "$MG_TMP/h2conformance.xml")" "<testsuites name=\"h2conformance\" tests=\"$ncases\" failures=\"0\"" \
    "the JUnit report agrees"
is "$(h2_curl -o /dev/null -w '%{http_code}' /echo)" 200 "the gateway still serves"
fails "the gateway's log has no crash or sanitizer report" \
    grep -Eq 'AddressSanitizer|runtime error|LeakSanitizer' "$MG_TMP"/meshgate.*.log

# negative control: an h2c peer that sends its SETTINGS and ACK, then reads
# and ignores everything (one connection at a time, at most 40, 20 s)
silent=$(mg_free_port)
"$py" - "$silent" <<'PY' &
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(8); s.settimeout(20)
end = time.monotonic() + 20
for _ in range(40):
    if time.monotonic() > end:
        break
    try:
        c, _ = s.accept()
    except OSError:
        break
    c.settimeout(5)
    c.sendall(b"\0\0\0\x04\0\0\0\0\0" + b"\0\0\0\x04\x01\0\0\0\0")
    try:
        while c.recv(65536):
            pass
    except OSError:
        pass
    c.close()
PY
_mg_track $!
mg_wait_port 127.0.0.1 "$silent" 5 || bail_out "no silent peer"
neg=$("$py" "$CHECKER" --port "$silent" --timeout 0.3 --case http2/6.5.2 --case http2/5.1.1 2>&1)
like "$neg" '^7 cases, 0 passed, 7 failed' "a peer that ignores everything fails the error cases"
like "$neg" '× http2/5.1.1/2' "... the lower stream id one among them"

done_testing
