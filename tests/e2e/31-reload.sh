#!/bin/bash
# 31-reload.sh - operations through the real binary: admin /ready,
# /config_dump, /stats/prometheus; SIGHUP with a good config (new route
# serves, a request in flight and an open keep-alive connection finish on
# the old generation) and with a broken one (rejected, errors with
# FILE:LINE:COL, old one keeps serving); SIGUSR1 reopens the access log;
# SIGTERM drains an in-flight request and exits 0.
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
cfg=$(mg_tmpdir cfg)
dp_proxy "$cfg" "$MG_ADMIN" JSON
dp_service "$cfg" one one.local "$u1"
dp_service "$cfg" two two.local "$u2"
write_vs() {    # ROUTES_YAML
    cat >"$cfg/gw.yaml" <<YAML
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: $http, name: http, protocol: HTTP}
    hosts: ["app.local"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: app, namespace: istio-system}
spec:
  hosts: ["app.local"]
  gateways: ["gw"]
  http:
$1
YAML
}
write_vs '  - {name: a, match: [{uri: {prefix: /a}}], route: [{destination: {host: one.local}}]}'

# systemd readiness protocol: a datagram socket standing in for systemd
# (OpenBSD nc, package netcat-openbsd, listens on a unix datagram socket)
sdsock=$MG_TMP/notify.sock
have_nc=0
if nc -h 2>&1 | grep -q OpenBSD; then
    have_nc=1
    nc -lkuU "$sdsock" >"$MG_TMP/notify.out" 2>/dev/null &
    _mg_track $!
    for ((i = 0; i < 20; i++)); do [ -S "$sdsock" ] && break; sleep 0.1; done
fi

NOTIFY_SOCKET=$sdsock ok "gateway starts" mg_start_meshgate "$cfg"
pid=$MG_MESHGATE_PID
if [ "$have_nc" = 1 ]; then
    ok "READY=1 sent to NOTIFY_SOCKET" dp_wait_log "$MG_TMP/notify.out" 'READY=1'
else
    skip "OpenBSD nc (netcat-openbsd) not installed"
fi
u="http://app.local:$http"
adm="http://$MG_ADMIN"

is "$(mg_http_code "$adm/ready")" 200 "/ready is 200 once listeners are bound"
dump=$(mg_curl "$adm/config_dump")
is "$(mg_json_field "$dump" generation)" 1 "/config_dump: generation 1"
like "$dump" "\"port\":$http" "/config_dump lists the listener"
like "$dump" '"routes":\["a"\]' "/config_dump lists the routes"
is "$(mg_json_field "$(mg_curl "$u/a")" upstream)" v1 "route a serves"
is "$(mg_http_code "$u/b")" 404 "route b does not exist yet"
stats=$(mg_curl "$adm/stats/prometheus")
like "$stats" 'istio_requests_total\{[^}]*response_code="200",route_name="a",destination_cluster="outbound\|80\|\|one.local"[^}]*\} 1$' \
    "istio_requests_total by code, route and destination"
like "$stats" 'istio_requests_total\{[^}]*response_code="404"[^}]*\} 1$' "404 counted"
like "$stats" '^meshgate_downstream_cx_total [1-9]' "downstream connections counted"
like "$stats" '^meshgate_upstream_rq_total 1$' "upstream requests counted"

# a keep-alive connection opened on generation 1
exec 5<>"/dev/tcp/127.0.0.1/$http"
printf 'GET /a HTTP/1.1\r\nHost: app.local\r\n\r\n' >&5
read -r -t 3 line <&5
is "$(echo "$line" | tr -d '\r')" "HTTP/1.1 200 OK" "keep-alive connection: first request"
# drain the rest of that response (its length is in the header)
len=0
while read -r -t 3 h <&5; do
    h=$(echo "$h" | tr -d '\r')
    [ -z "$h" ] && break
    case $h in content-length:*) len=${h#content-length: } ;; esac
done
head -c "$len" <&5 >/dev/null

mg_curl -o "$MG_TMP/slow1" -w '%{http_code}' "$u/a/slow?ms=1500" >"$MG_TMP/slow1.code" &
slow1=$!
sleep 0.3
write_vs '  - {name: a, match: [{uri: {prefix: /a}}], route: [{destination: {host: one.local}}]}
  - {name: b, match: [{uri: {prefix: /b}}], route: [{destination: {host: two.local}}]}'
kill -HUP "$pid"
ok "reload reported" dp_wait_log "$MG_MESHGATE_LOG" 'generation 2 active'
is "$(mg_json_field "$(mg_curl "$adm/config_dump")" generation)" 2 "/config_dump: generation 2"
is "$(mg_json_field "$(mg_curl "$u/b")" upstream)" v2 "new route b serves after SIGHUP"
wait "$slow1"
is "$(cat "$MG_TMP/slow1.code")" 200 "request in flight during the reload completed"
printf 'GET /b HTTP/1.1\r\nHost: app.local\r\nConnection: close\r\n\r\n' >&5
old=$(timeout 3 cat <&5)
exec 5<&-
like "$old" '^HTTP/1.1 404' "the old keep-alive connection still sees generation 1"

# broken config
cat >"$cfg/zz-broken.yaml" <<'YAML'
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: broken, namespace: istio-system}
spec:
  hosts: ["x.local"]
  bogusField: 1
YAML
kill -HUP "$pid"
ok "broken reload rejected" dp_wait_log "$MG_MESHGATE_LOG" 'reload rejected'
like "$(cat "$MG_MESHGATE_LOG")" 'zz-broken.yaml:[0-9]+:[0-9]+: error' "errors printed as FILE:LINE:COL"
is "$(mg_json_field "$(mg_curl "$u/b")" upstream)" v2 "old generation keeps serving"
is "$(mg_json_field "$(mg_curl "$adm/config_dump")" generation)" 2 "generation unchanged"
stats=$(mg_curl "$adm/stats/prometheus")
like "$stats" '^meshgate_config_reload_total\{result="success"\} 1$' "reload success counted"
like "$stats" '^meshgate_config_reload_total\{result="failure"\} 1$' "reload failure counted"
rm -f "$cfg/zz-broken.yaml"

# SIGUSR1 reopens the access log
mv "$DP_ACCESS_LOG" "$DP_ACCESS_LOG.1"
kill -USR1 "$pid"
sleep 0.3
mg_curl -o /dev/null "$u/a/after-rotate"
ok "SIGUSR1: the new log file gets new lines" dp_wait_log "$DP_ACCESS_LOG" '/a/after-rotate'
unlike "$(cat "$DP_ACCESS_LOG.1")" 'after-rotate' "the rotated file is left alone"

# SIGTERM drains
mg_curl -o "$MG_TMP/slow2" -w '%{http_code}' "$u/a/slow?ms=1200" >"$MG_TMP/slow2.code" &
slow2=$!
sleep 0.3
mg_stop "$pid"
rc=$?
wait "$slow2"
is "$rc" 0 "SIGTERM: exit status 0"
if [ "$have_nc" = 1 ]; then
    like "$(tr '\n' ' ' <"$MG_TMP/notify.out")" 'RELOADING=1 MONOTONIC_USEC=[0-9]+READY=1' \
        "RELOADING=1 then READY=1 around a reload"
    like "$(cat "$MG_TMP/notify.out")" 'STOPPING=1' "STOPPING=1 on SIGTERM"
else
    skip "OpenBSD nc (netcat-openbsd) not installed" 2
fi
is "$(cat "$MG_TMP/slow2.code")" 200 "SIGTERM: the in-flight request completed"
is "$(mg_http_code "$u/a")" 000 "nothing accepts after the stop"
like "$(cat "$MG_MESHGATE_LOG")" 'stopped' "clean shutdown logged"

done_testing
