#!/bin/bash
# 19-watch-config.sh - configuration from a directory laid out as a
# Kubernetes ConfigMap volume writes it (each file a symlink into ..data,
# ..data a symlink to a timestamped directory, swapped atomically):
# Proxy.spec.watchConfig reloads on the swap without a signal, a broken
# swap is refused and the old configuration keeps serving, and a request
# loop running across both sees no failure. `meshgate run --watch` does
# the same for a plain directory, where a file left half-written is
# refused and its completion is then loaded.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/dp_common.sh"

mg_pki || bail_out "cannot make a PKI"
mg_start_upstream --name v1 || bail_out "upstream v1"
u1=$MG_UPSTREAM_PORT
mg_start_upstream --name v2 || bail_out "upstream v2"
u2=$MG_UPSTREAM_PORT
http=$(mg_free_port)
export MG_ADMIN=127.0.0.1:$(mg_free_port)
vol=$(mg_tmpdir volume)

# version DIR UPSTREAM_PORT: one complete configuration
version() {
    local d=$1
    mkdir -p "$d"
    dp_proxy "$d" "$MG_ADMIN" JSON
    sed -i "/^  workers: 2/a\\  watchConfig: true" "$d/00-proxy.yaml"
    dp_service "$d" backend backend.local "$2"
    cat >"$d/gw.yaml" <<YAML
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
  hosts: ["*"]
  gateways: ["gw"]
  http:
  - route: [{destination: {host: backend.local, port: {number: 80}}}]
YAML
}
# flip DIRNAME: point ..data at it atomically (rename over the old link)
flip() {
    ln -s "$1" "$vol/..data_tmp" && mv -T "$vol/..data_tmp" "$vol/..data"
}

version "$vol/..2026_12_06_a" "$u1"
ln -s ..2026_12_06_a "$vol/..data"
for f in "$vol"/..data/*.yaml; do
    ln -s "..data/$(basename "$f")" "$vol/$(basename "$f")"
done
ok "gateway starts on a ConfigMap-style volume" mg_start_meshgate "$vol"
is "$(mg_json_field "$(mg_curl "http://127.0.0.1:$http/echo")" upstream)" v1 "serves the first version"

# a request loop across every swap: count failures
loop_out=$MG_TMP/loop.txt
(
    while [ ! -e "$MG_TMP/stop" ]; do
        c=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://127.0.0.1:$http/echo")
        echo "$c"
    done
) >"$loop_out" &
loop=$!

version "$vol/..2026_12_06_b" "$u2"
flip ..2026_12_06_b
ok "the swap is seen and reloaded without a signal" \
    mg_wait_log "$MG_MESHGATE_LOG" "configuration $vol changed \\(watched\\)" 10
ok "... a new generation is active" mg_wait_log "$MG_MESHGATE_LOG" 'generation 2 active \(configuration reload' 10
got=""
for ((i = 0; i < 50; i++)); do
    got=$(mg_json_field "$(mg_curl "http://127.0.0.1:$http/echo")" upstream)
    [ "$got" = v2 ] && break
    sleep 0.1
done
is "$got" v2 "... and serves the second version"

mkdir -p "$vol/..2026_12_06_c"
cp "$vol/..2026_12_06_b/"*.yaml "$vol/..2026_12_06_c/"
printf 'spec: [unclosed\n' >>"$vol/..2026_12_06_c/gw.yaml"
flip ..2026_12_06_c
ok "a broken swap is refused" mg_wait_log "$MG_MESHGATE_LOG" 'reload rejected; generation 2 keeps serving' 10
like "$(cat "$MG_MESHGATE_LOG")" 'gw.yaml:[0-9]+:[0-9]+: error' "... naming the file, line and column"
is "$(mg_json_field "$(mg_curl "http://127.0.0.1:$http/echo")" upstream)" v2 "... the old configuration keeps serving"
sleep 5
is "$(grep -c 'changed (watched)' "$MG_MESHGATE_LOG")" 2 "... and is not retried while it stays as it is"
is "$(mg_metric meshgate_config_reload_total 'result="failure"')" 1 "... counted as a failed reload"

version "$vol/..2026_12_06_d" "$u1"
flip ..2026_12_06_d
ok "a good swap after it is loaded" mg_wait_log "$MG_MESHGATE_LOG" 'generation 3 active \(configuration reload' 10
touch "$MG_TMP/stop"
wait "$loop"
total=$(wc -l <"$loop_out")
bad=$(grep -vc '^200$' "$loop_out")
ok "the request loop ran across the swaps ($total requests)" test "$total" -ge 20
is "$bad" 0 "... with no failed request"
mg_stop "$MG_MESHGATE_PID"

# a plain directory with run --watch (no watchConfig in the file)
plain=$(mg_tmpdir plain)
version "$plain" "$u1"
sed -i '/watchConfig/d' "$plain/00-proxy.yaml"
ok "gateway starts with --watch on a plain directory" mg_start_meshgate "$plain" --watch
sed "s/$u1/$u2/" "$plain/se-backend.yaml" >"$MG_TMP/backend.full" 2>/dev/null ||
    bail_out "no se-backend.yaml from dp_service"
head -c 40 "$MG_TMP/backend.full" >"$plain/se-backend.yaml"   # half-written, and it stays so
ok "a file left half-written is refused" mg_wait_log "$MG_MESHGATE_LOG" 'reload rejected' 10
is "$(mg_json_field "$(mg_curl "http://127.0.0.1:$http/echo")" upstream)" v1 "... the loaded configuration keeps serving"
cat "$MG_TMP/backend.full" >"$plain/se-backend.yaml"
ok "its completion is loaded" mg_wait_log "$MG_MESHGATE_LOG" 'generation 2 active \(configuration reload' 10
got=""
for ((i = 0; i < 50; i++)); do
    got=$(mg_json_field "$(mg_curl "http://127.0.0.1:$http/echo")" upstream)
    [ "$got" = v2 ] && break
    sleep 0.1
done
is "$got" v2 "... and serves"

done_testing
