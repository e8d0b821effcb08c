#!/bin/bash
# 48-mirror.sh - VirtualService mirror, mirrorPercentage and mirrors[] as
# Envoy's request shadowing: the mirror receives a copy (body included,
# Host suffixed -shadow) while the client gets the primary's answer; a
# mirror that is down or never answers changes nothing for the client; the
# share of mirrored requests follows mirrorPercentage; a copy whose mirror
# falls behind is dropped; copies are not in the access log, and
# meshgate_mirror_requests_total counts them, sent and dropped.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/dp_common.sh"

mg_pki || bail_out "cannot make a PKI"
mg_start_upstream --name main || bail_out "upstream"
up=$MG_UPSTREAM_PORT
MAIN_LOG=$MG_UPSTREAM_LOG
mg_start_upstream --name shadow --log-headers || bail_out "mirror upstream"
sp=$MG_UPSTREAM_PORT
SH_LOG=$MG_UPSTREAM_LOG
dead=$(mg_free_port)
# a mirror that accepts connections and never answers
hang=$(mg_free_port)
python3 -c '
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(64); keep = []
end = time.time() + 120
s.settimeout(1)
while time.time() < end:
    try: keep.append(s.accept()[0])
    except socket.timeout: pass
' "$hang" &
_mg_track $!
mg_wait_port 127.0.0.1 "$hang" || bail_out "hanging mirror"
http=$(mg_free_port)
export MG_ADMIN=127.0.0.1:$(mg_free_port)
cfg=$(mg_tmpdir cfg)
dp_proxy "$cfg" "$MG_ADMIN" JSON
log=$DP_ACCESS_LOG
dp_service "$cfg" main main.svc "$up"
dp_service "$cfg" shadow shadow.svc "$sp"
dp_service "$cfg" dead dead.svc "$dead"
dp_service "$cfg" hang hang.svc "$hang"
cat >"$cfg/gw.yaml" <<YAML
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: $http, name: http, protocol: HTTP}
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: app, namespace: istio-system}
spec:
  hosts: [app.example.com]
  gateways: [gw]
  http:
  - name: m
    match: [{uri: {prefix: /m/}}]
    route: [{destination: {host: main.svc}}]
    mirror: {host: shadow.svc}
  - name: half
    match: [{uri: {prefix: /half/}}]
    route: [{destination: {host: main.svc}}]
    mirror: {host: shadow.svc}
    mirrorPercentage: {value: 50}
  - name: dead
    match: [{uri: {prefix: /dead/}}]
    route: [{destination: {host: main.svc}}]
    mirror: {host: dead.svc}
  - name: hang
    match: [{uri: {prefix: /hang/}}]
    timeout: 2s
    route: [{destination: {host: main.svc}}]
    mirror: {host: hang.svc}
  - name: multi
    match: [{uri: {prefix: /multi/}}]
    route: [{destination: {host: main.svc}}]
    mirrors:
    - {destination: {host: dead.svc}}
    - {destination: {host: shadow.svc}, percentage: {value: 100}}
YAML

out=$("$MESHGATE" check -c "$cfg" 2>&1)
is "$?" 0 "meshgate check accepts mirror and mirrors"
unlike "$out" 'mirror.*not supported' "... without an 'ignored' warning"
ok "gateway starts" mg_start_meshgate "$cfg"

U=http://app.example.com:$http
wait_in() { dp_wait_log "$1" "$2"; }

body=$(mg_curl "$U/m/one")
is "$(mg_json_field "$body" upstream)" main "mirrored route: the client gets the primary's answer"
ok "the mirror received a copy" wait_in "$SH_LOG" 'GET /m/one body=0'
like "$(grep -A1 'GET /m/one' "$SH_LOG")" "\\[\"host\",\"app.example.com-shadow:$http\"\\]" \
    "... with Host suffixed -shadow"
like "$(grep -A1 'GET /m/one' "$SH_LOG")" '"x-request-id"' "... and the request's headers"

head -c 1048576 /dev/urandom >"$MG_TMP/body.bin"
body=$(mg_curl --data-binary @"$MG_TMP/body.bin" "$U/m/upload")
is "$(mg_json_field "$body" body_length)" 1048576 "a 1 MiB upload reaches the primary"
ok "... and the mirror, whole" wait_in "$SH_LOG" 'POST /m/upload body=1048576'
body=$(mg_curl -H 'Transfer-Encoding: chunked' --data-binary @"$MG_TMP/body.bin" "$U/m/chunked")
is "$(mg_json_field "$body" body_length)" 1048576 "a chunked upload reaches the primary"
ok "... and the mirror" wait_in "$SH_LOG" 'POST /m/chunked body=1048576'

# --- a mirror down or silent changes nothing
for p in dead hang; do
    for i in 1 2 3; do
        r=$(mg_curl -o /dev/null -w '%{http_code} %{time_total}' "$U/$p/$i")
        read -r code tt <<<"$r"
        is "$code" 200 "mirror $p, request $i: the primary's 200"
        ok "... without waiting for the mirror (${tt}s)" awk -v t="$tt" 'BEGIN { exit !(t < 0.5) }'
    done
done
is "$(mg_json_field "$(mg_curl --data-binary @"$MG_TMP/body.bin" "$U/hang/upload")" body_length)" 1048576 \
    "an upload while the mirror never reads: the primary gets it all"
head -c 16777216 /dev/zero >"$MG_TMP/big.bin"
is "$(mg_json_field "$(mg_curl --max-time 30 --data-binary @"$MG_TMP/big.bin" "$U/hang/big")" body_length)" \
    16777216 "16 MiB upload while the mirror never reads: the primary gets it all"
ok "... the copy fell 1 MiB behind and was dropped, counted" \
    test "$(mg_metric meshgate_mirror_requests_total 'result="dropped"')" -ge 1
body=$(mg_curl "$U/multi/x")
is "$(mg_json_field "$body" upstream)" main "mirrors[]: one down, one up: the primary's answer"
ok "... the live mirror got its copy" wait_in "$SH_LOG" 'GET /multi/x body=0'

# --- the share
before=$(grep -c 'GET /half/' "$SH_LOG")
urls=()
for ((i = 0; i < 100; i++)); do urls+=("$U/half/$i"); done
mg_curl --max-time 60 -o /dev/null "${urls[@]}" >/dev/null
sleep 0.5
n=$(($(grep -c 'GET /half/' "$SH_LOG") - before))
ok "mirrorPercentage 50: $n of 100 mirrored (want 25..75)" test "$n" -ge 25 -a "$n" -le 75
is "$(grep -c 'GET /half/' "$MAIN_LOG")" 100 "... the primary saw all 100"

# --- logs and metrics
is "$(grep -c '"path":"/m/one"' "$log")" 1 "the access log has the request once, not its copy"
ok "meshgate_mirror_requests_total counts the copies sent" \
    test "$(mg_metric meshgate_mirror_requests_total 'result="sent"')" -ge 30
ok "gateway still serving" test "$(mg_http_code "$U/m/last")" = 200

done_testing
