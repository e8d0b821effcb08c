#!/bin/bash
# 49-websocket.sh - WebSocket through the gateway (HTTP/1.1 Upgrade, and
# HTTP/2 extended CONNECT translated to an HTTP/1.1 upgrade upstream): the
# upgrade request routed, authenticated and authorized like any other (an
# AuthorizationPolicy refusing one path, a JWT required on another); the
# upstream's 101 relayed with its Sec-WebSocket-Accept, then a tunnel
# carrying 10 MiB each way intact (frames echoed by mg_upstream's RFC 6455
# echo, over plain HTTP and TLS) and the close handshake; other upgrades
# refused 501; over HTTP/2 the gateway offers SETTINGS_ENABLE_CONNECT_PROTOCOL,
# makes the RFC 6455 handshake itself (its own Sec-WebSocket-Key, the
# upstream's Sec-WebSocket-Accept checked: a wrong one is 502) and carries
# 10 MiB each way on the stream; an idle tunnel closed after the idle timeout,
# a live one at the drain deadline after a reload; the access log
# line of the upgraded exchange with 101 and the bytes both ways.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/dp_common.sh"

JWT_TOOL=${MG_JWT_TOOL:-$MG_BUILDDIR/tests/helpers/mg_jwt_tool}
[ -x "$JWT_TOOL" ] || skip_all "mg_jwt_tool not built"
command -v python3 >/dev/null || skip_all "python3 not installed"
mg_pki || bail_out "cannot make a PKI"
K=$(mg_tmpdir keys)
"$JWT_TOOL" genkey --type rsa --kid k1 --out "$K/k1.pem" --jwks-out "$K/jwks.json" >/dev/null ||
    bail_out "keys"
tok=$("$JWT_TOOL" sign --key "$K/k1.pem" --kid k1 --alg RS256 \
      --claims "{\"iss\":\"https://issuer.example.com\",\"sub\":\"alice\",\"exp\":$(($(date +%s) + 3600))}") ||
    bail_out "token"
mg_start_upstream --name ws --log-headers || bail_out "upstream"
up=$MG_UPSTREAM_PORT
WS_LOG=$MG_UPSTREAM_LOG
# an upstream that answers every upgrade 101 with a wrong Sec-WebSocket-Accept
bad=$(mg_free_port)
python3 -c '
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(16); s.settimeout(1); keep = []
end = time.time() + 120
while time.time() < end:
    try:
        c = s.accept()[0]; c.recv(65536); keep.append(c)
        c.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  b"Sec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n")
    except socket.timeout: pass
' "$bad" &
_mg_track $!
mg_wait_port 127.0.0.1 "$bad" || bail_out "bad upstream"
http=$(mg_free_port)
https=$(mg_free_port)
export MG_ADMIN=127.0.0.1:$(mg_free_port)
cfg=$(mg_tmpdir cfg)
dp_proxy "$cfg" "$MG_ADMIN" JSON
sed -i 's/idle: 60s/idle: 3s/; s/drain: 10s/drain: 2s/' "$cfg/00-proxy.yaml"
log=$DP_ACCESS_LOG
dp_service "$cfg" app app.svc "$up"
dp_service "$cfg" bad bad.svc "$bad"
cat >"$cfg/se-h2.yaml" <<YAML
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: h2, namespace: istio-system}
spec:
  hosts: [h2.svc]
  ports: [{number: 80, name: http2, protocol: HTTP2}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {http2: $up}}]
YAML
cat >"$cfg/gw.yaml" <<YAML
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: $http, name: http, protocol: HTTP}
    hosts: ["*"]
  - port: {number: $https, name: https, protocol: HTTPS}
    hosts: ["*"]
    tls: {mode: SIMPLE, credentialName: app-cert}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: app, namespace: istio-system}
spec:
  hosts: [app.example.com]
  gateways: [gw]
  http:
  - match: [{uri: {prefix: /wsbad/}}]
    route: [{destination: {host: bad.svc}}]
  - match: [{uri: {prefix: /wsh2/}}]
    route: [{destination: {host: h2.svc}}]
  - route: [{destination: {host: app.svc}}]
    timeout: 2s
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt, namespace: istio-system}
spec:
  jwtRules:
  - issuer: https://issuer.example.com
    jwks: '$(cat "$K/jwks.json")'
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny, namespace: istio-system}
spec:
  selector: {matchLabels: {istio: ingressgateway}}
  action: DENY
  rules:
  - to: [{operation: {paths: ["/ws/denied"]}}]
  - from: [{source: {notRequestPrincipals: ["*"]}}]
    to: [{operation: {paths: ["/ws/jwt"]}}]
YAML

cat >"$MG_TMP/wsc.py" <<'PY'
# wsc.py PORT PATH [--tls CA] [--bytes N] [--idle S] [--header 'K: V'] [--upgrade P]:
# a WebSocket client (RFC 6455): handshake, Sec-WebSocket-Accept checked,
# N bytes sent in masked binary frames while the echo is read and hashed,
# then the close handshake. One result per line.
import base64, hashlib, os, socket, ssl, struct, sys, time
a = sys.argv[1:]
port, path = int(a[0]), a[1]
opt = {}
hdrs = []
i = 2
while i < len(a):
    if a[i] == "--header":
        hdrs.append(a[i + 1])
    else:
        opt[a[i]] = a[i + 1]
    i += 2
s = socket.create_connection(("127.0.0.1", port), timeout=20)
if "--tls" in opt:
    ctx = ssl.create_default_context(cafile=opt["--tls"])
    s = ctx.wrap_socket(s, server_hostname="app.example.com")
key = base64.b64encode(os.urandom(16)).decode()
req = ("GET %s HTTP/1.1\r\nHost: app.example.com\r\nUpgrade: %s\r\nConnection: Upgrade\r\n"
       "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n" % (path, opt.get("--upgrade", "websocket"), key))
for h in hdrs:
    req += h + "\r\n"
s.sendall((req + "\r\n").encode())
buf = b""
while b"\r\n\r\n" not in buf:
    d = s.recv(65536)
    if not d:
        break
    buf += d
head, _, rest = buf.partition(b"\r\n\r\n")
lines = head.decode("latin-1").split("\r\n")
print("status", lines[0].split(" ")[1] if len(lines[0].split(" ")) > 1 else "none")
if not lines[0].startswith("HTTP/1.1 101"):
    sys.exit(0)
fields = {}
for l in lines[1:]:
    k, _, v = l.partition(":")
    fields[k.strip().lower()] = v.strip()
want = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
print("accept", "ok" if fields.get("sec-websocket-accept") == want else "bad")
print("upgrade", fields.get("upgrade", "-").lower(), fields.get("connection", "-").lower())
if "--idle" in opt:
    s.settimeout(float(opt["--idle"]) + 10)
    t0 = time.time()
    d = s.recv(1)
    print("idle-closed", "yes" if d == b"" else "no", "%.1f" % (time.time() - t0))
    sys.exit(0)
def frame(op, payload):
    m = os.urandom(4)
    n = len(payload)
    h = bytes([0x80 | op])
    if n < 126:
        h += bytes([0x80 | n])
    elif n < 65536:
        h += bytes([0x80 | 126]) + struct.pack(">H", n)
    else:
        h += bytes([0x80 | 127]) + struct.pack(">Q", n)
    p = bytes(b ^ m[i & 3] for i, b in enumerate(payload)) if n < 256 else \
        (int.from_bytes(payload, "big") ^ int.from_bytes((m * (n // 4 + 1))[:n], "big")).to_bytes(n, "big")
    return h + m + p
if "--keepalive" in opt:
    # a message every 0.3 s, its echo read back, until the tunnel ends
    t0 = time.time()
    pend = rest
    s.settimeout(2)
    try:
        while time.time() - t0 < float(opt["--keepalive"]):
            s.sendall(frame(2, b"ping"))
            got = b""
            while len(got) < 6:
                d = s.recv(64)
                if not d:
                    raise EOFError
                got += d
            time.sleep(0.3)
        print("keepalive-open")
    except (EOFError, OSError):
        print("keepalive-closed %.1f" % (time.time() - t0))
    sys.exit(0)
total = int(opt.get("--bytes", "0"))
# One thread moves both directions: an SSL object used by two threads at
# once (SSL_write in a sender, SSL_read in the reader) is a data race in
# OpenSSL, which broke one run in many with a spurious error.
import select
s.setblocking(False)
sent, got = hashlib.sha256(), hashlib.sha256()
out, left, n, pend = bytearray(), total, 0, bytearray(rest)
WANT = (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError)
def frames():
    """Complete frames off the head of pend: (opcode byte, payload)."""
    global pend
    r = []
    while len(pend) >= 2:
        ln, off = pend[1] & 0x7f, 2
        if ln == 126:
            if len(pend) < 4:
                break
            ln, off = struct.unpack(">H", pend[2:4])[0], 4
        elif ln == 127:
            if len(pend) < 10:
                break
            ln, off = struct.unpack(">Q", pend[2:10])[0], 10
        if len(pend) < off + ln:
            break
        r.append((pend[0], bytes(pend[off:off + ln])))
        del pend[:off + ln]
    return r
def pump(done):
    """Send what is queued and read until done() or 20 s without progress."""
    global out, left, pend
    last = time.time()
    while not done():
        if not out and left:
            chunk = os.urandom(min(left, 65536))
            sent.update(chunk)
            out += frame(2, chunk)
            left -= len(chunk)
        pending = isinstance(s, ssl.SSLSocket) and s.pending()
        if not pending:
            rd, wr, _ = select.select([s], [s] if out else [], [], 1.0)
            if not rd and not wr:
                if time.time() - last > 20:
                    raise OSError("no progress in 20 s")
                continue
        if out:
            try:
                k = s.send(out[:65536])
                del out[:k]
                last = time.time()
            except WANT:
                pass
        try:
            d = s.recv(1 << 20)
            if not d:
                raise EOFError("the gateway closed the connection")
            pend += d
            last = time.time()
            yield from frames()
        except WANT:
            pass
closed = []
try:
    for op, p in pump(lambda: n >= total):
        got.update(p)
        n += len(p)
    print("echo", n, "intact" if got.digest() == sent.digest() else "corrupt")
    out += frame(8, struct.pack(">H", 1000))
    for op, p in pump(lambda: closed):
        closed.append(op)
    print("close", "ok" if closed[0] == 0x88 else "bad")
except (EOFError, OSError) as e:
    print("echo", n, "broken", e)
PY
wsc() { python3 "$MG_TMP/wsc.py" "$@" 2>&1; }

ok "gateway starts" mg_start_meshgate "$cfg"

out=$(wsc "$http" /ws/echo --bytes 10485760)
like "$out" 'status 101' "upgrade over HTTP/1.1: 101 from the upstream"
like "$out" 'accept ok' "... its Sec-WebSocket-Accept matches the client's key"
like "$out" 'upgrade websocket upgrade' "... with Upgrade: websocket and Connection: upgrade"
like "$out" 'echo 10485760 intact' "... 10 MiB each way, intact"
like "$out" 'close ok' "... and the close handshake"
out=$(wsc "$https" /ws/echo --tls "$MG_PKI/root-cert.pem" --bytes 10485760)
like "$out" 'status 101' "over TLS: 101"
like "$out" 'echo 10485760 intact' "... 10 MiB each way, intact"
like "$out" 'close ok' "... and the close handshake"

like "$(wsc "$http" /ws/denied --bytes 10)" 'status 403' "AuthorizationPolicy refuses the upgrade: 403"
like "$(wsc "$http" /ws/jwt --bytes 10)" 'status 403' "JWT required, none sent: 403"
like "$(wsc "$http" /ws/jwt --bytes 10 --header 'Authorization: Bearer not.a.token')" 'status 401' \
    "a bad token: 401"
out=$(wsc "$http" /ws/jwt --bytes 100000 --header "Authorization: Bearer $tok")
like "$out" 'status 101' "a valid token: 101"
like "$out" 'echo 100000 intact' "... and the echo"
like "$(wsc "$http" /ws/echo --upgrade h2c --bytes 10)" 'status 501' "another upgrade (h2c): 501"
like "$(wsc "$http" /wsh2/x --bytes 10)" 'status 501' "an upgrade to an HTTP2-port upstream: 501, not sent"

# --- HTTP/2 extended CONNECT (TLS, ALPN h2)
h2ws() { "$MG_BUILDDIR/tests/helpers/mg_h2ws" "$https" "$MG_PKI/root-cert.pem" "$@" 2>&1; }
out=$(h2ws /ws/h2 --bytes 10485760)
like "$out" 'connect-protocol 1' "HTTP/2: the gateway offers SETTINGS_ENABLE_CONNECT_PROTOCOL"
like "$out" 'status 200' "... extended CONNECT answered 200 after the upstream's 101"
like "$out" 'echo 10485760 intact' "... 10 MiB each way on the stream, intact"
like "$out" 'close ok' "... and the close handshake"
like "$(grep -A1 'GET /ws/h2 ' "$WS_LOG")" '"sec-websocket-key","[A-Za-z0-9+/]{22}=="' \
    "... the upstream got an HTTP/1.1 upgrade with the gateway's own Sec-WebSocket-Key"
like "$(h2ws /ws/denied --bytes 10)" 'status 403' "HTTP/2: AuthorizationPolicy refuses: 403"
like "$(h2ws /ws/jwt --bytes 10)" 'status 403' "HTTP/2: JWT required, none sent: 403"
out=$(h2ws /ws/jwt --bytes 100000 --header "authorization: Bearer $tok")
like "$out" 'echo 100000 intact' "HTTP/2: a valid token, the echo"
like "$(h2ws /wsbad/x --bytes 10)" 'status 502' \
    "HTTP/2: an upstream whose Sec-WebSocket-Accept does not match: 502"

out=$(wsc "$http" /ws/idle --idle 3)
like "$out" 'idle-closed yes' "an idle tunnel is closed after the idle timeout"
secs=${out##* }
ok "... (3s), not by the route timeout (2s), which ends with the upgrade ($secs s)" \
    awk -v t="$secs" 'BEGIN { exit !(t >= 2.7) }'

# --- a reload drains tunnels as it drains TCP tunnels: closed at the drain deadline (2s)
wsc "$http" /ws/drain --keepalive 12 >"$MG_TMP/drain.out" &
kpid=$!
sleep 1
t0=$(date +%s%N)
kill -HUP "$MG_MESHGATE_PID"
wait "$kpid"
ms=$((($(date +%s%N) - t0) / 1000000))
out=$(cat "$MG_TMP/drain.out")
like "$out" 'keepalive-closed' "a live tunnel is closed after a reload"
ok "... at the drain deadline (2s after the reload), not before ($ms ms)" \
    test "$ms" -ge 1900 -a "$ms" -lt 8000
ok "... logged with reason drain" dp_wait_log "$log" '"path":"/ws/drain".*"reason":"drain".*"response_code":101'

ok "access log: the upgraded exchange, 101 with bytes both ways" \
    dp_wait_log "$log" '"path":"/ws/echo".*"response_code":101,"bytes_received":1[0-9]{7},"bytes_sent":1[0-9]{7}'
ok "access log: the idle one, flagged SI" \
    dp_wait_log "$log" '"path":"/ws/idle".*"response_flags":"SI".*"response_code":101'
ok "gateway still serving" test "$(mg_http_code "http://app.example.com:$http/plain")" = 200

done_testing
