# shellcheck shell=bash disable=SC2034  # (variables set here are for the test scripts)
# lib.sh - the end-to-end test harness, sourced by every tests/e2e/NN-name.sh.
#
# Bash only. It prints TAP on stdout (automake's TAP driver reads it), binds
# everything to 127.0.0.1, and kills every process it started when the script
# exits, however it exits. See tests/e2e/README.md for a worked example.
#
# Environment (set by `make check`; defaults allow running a script by hand
# from the build directory):
#   MESHGATE     the meshgate binary            (default $MG_BUILDDIR/meshgate)
#   MG_BUILDDIR  top build directory            (default .)
#   MG_SRCDIR    top source directory           (default: two levels above this file)
#   MG_ADMIN     admin address of the gateway under test, e.g. 127.0.0.1:15000;
#                the test sets it (mg_start_meshgate waits for its /ready)
#   MG_KEEP_TMP=1  keep the temp directory (its path is printed as a diagnostic)
#   MG_READY_TIMEOUT  seconds mg_start_meshgate waits for /ready (default 10)
#   MG_TEST_TIMEOUT   seconds a whole script may run before it is stopped with
#                     "Bail out!" and its processes killed (default 300; 0 = none)
#
# Results are counted in this shell: call the TAP helpers (ok, is, ...) and
# the process starters (mg_start_*) directly, never inside $( ) or a pipe,
# or their counts and pids are lost with the subshell.

set -u

MG_BUILDDIR=${MG_BUILDDIR:-$PWD}
MG_SRCDIR=${MG_SRCDIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
MESHGATE=${MESHGATE:-$MG_BUILDDIR/meshgate}
MG_UPSTREAM_BIN=${MG_UPSTREAM_BIN:-$MG_BUILDDIR/tests/helpers/mg_upstream}
MG_TEST_NAME=$(basename "$0" .sh)

_mg_n=0         # tests run
_mg_failed=0    # tests failed
_mg_planned=0   # plan given up front (0 = print it at done_testing)
_mg_pids=()     # every background process started by the harness

MG_TMP=$(mktemp -d "${TMPDIR:-/tmp}/mg-e2e-$MG_TEST_NAME.XXXXXX") || {
    echo "Bail out! cannot create a temp directory"
    exit 1
}

# ------------------------------------------------------------------ TAP

# plan N: announce the number of tests (optional; done_testing prints it otherwise).
plan() {
    _mg_planned=$1
    echo "1..$1"
}

# diag MSG...: a TAP diagnostic line per line of MSG (also from stdin with -).
diag() {
    if [ "$#" -eq 1 ] && [ "$1" = - ]; then
        sed 's/^/# /'
    else
        printf '%s\n' "$*" | sed 's/^/# /'
    fi
}

# _mg_result PASSED NAME: print one test line and count it.
_mg_result() {
    _mg_n=$((_mg_n + 1))
    if [ "$1" -eq 1 ]; then
        echo "ok $_mg_n - $2"
    else
        echo "not ok $_mg_n - $2"
        _mg_failed=$((_mg_failed + 1))
    fi
}

# ok NAME CMD [ARGS...]: passes when CMD exits 0. CMD runs in this shell (so a
# function may start processes or set variables); its output is captured and
# shown as diagnostics only on failure.
ok() {
    local name=$1 out rc
    shift
    out=$MG_TMP/.out.$_mg_n
    "$@" >"$out" 2>&1
    rc=$?
    _mg_result $((rc == 0)) "$name"
    if [ "$rc" -ne 0 ]; then
        diag "command failed (exit $rc): $*"
        tail -n 20 "$out" | diag -
    fi
    rm -f "$out"
    return "$rc"
}

# fails NAME CMD [ARGS...]: passes when CMD exits non-zero (any status).
fails() {
    local name=$1 out rc
    shift
    out=$MG_TMP/.out.$_mg_n
    "$@" >"$out" 2>&1
    rc=$?
    _mg_result $((rc != 0)) "$name"
    if [ "$rc" -eq 0 ]; then
        diag "command succeeded but should have failed: $*"
        tail -n 20 "$out" | diag -
    fi
    rm -f "$out"
    [ "$rc" -ne 0 ]
}

# is GOT WANT NAME: string equality.
is() {
    if [ "$1" = "$2" ]; then
        _mg_result 1 "$3"
    else
        _mg_result 0 "$3"
        diag "got:  '$1'"
        diag "want: '$2'"
        return 1
    fi
}

# isnt GOT UNWANTED NAME: string inequality.
isnt() {
    if [ "$1" != "$2" ]; then
        _mg_result 1 "$3"
    else
        _mg_result 0 "$3"
        diag "got '$1', which it must not be"
        return 1
    fi
}

# like GOT REGEX NAME / unlike GOT REGEX NAME: extended regex (grep -E) match
# anywhere in GOT (multi-line GOT is searched line by line).
like() {
    if printf '%s\n' "$1" | grep -Eq -- "$2"; then
        _mg_result 1 "$3"
    else
        _mg_result 0 "$3"
        diag "no match for /$2/ in:"
        printf '%s\n' "$1" | head -n 20 | diag -
        return 1
    fi
}
unlike() {
    if ! printf '%s\n' "$1" | grep -Eq -- "$2"; then
        _mg_result 1 "$3"
    else
        _mg_result 0 "$3"
        diag "unexpected match for /$2/ in:"
        printf '%s\n' "$1" | head -n 20 | diag -
        return 1
    fi
}

# pass NAME / fail NAME: record an outcome decided by the script itself.
pass() { _mg_result 1 "$1"; }
fail() { _mg_result 0 "$1"; return 1; }

# skip REASON [COUNT]: record COUNT (default 1) skipped tests.
skip() {
    local i n=${2:-1}
    for ((i = 0; i < n; i++)); do
        _mg_n=$((_mg_n + 1))
        echo "ok $_mg_n # SKIP $1"
    done
}

# skip_all REASON: the whole script does not apply here (exits).
skip_all() {
    echo "1..0 # SKIP $1"
    _mg_planned=-1
    exit 0
}

# bail_out REASON: stop the whole script (the driver reports an error).
bail_out() {
    echo "Bail out! $*"
    _mg_planned=-1
    exit 1
}

# done_testing: print the plan if none was given and exit 0 only if every
# test passed and the count matches the plan. (`done` is a shell keyword.)
done_testing() {
    if [ "$_mg_planned" -eq 0 ]; then
        echo "1..$_mg_n"
    elif [ "$_mg_planned" -gt 0 ] && [ "$_mg_planned" -ne "$_mg_n" ]; then
        diag "planned $_mg_planned tests but ran $_mg_n"
        exit 1
    fi
    [ "$_mg_failed" -eq 0 ] || diag "$_mg_failed of $_mg_n tests failed"
    [ "$_mg_failed" -eq 0 ]
    exit $?
}

# ------------------------------------------------------------------ files

# mg_tmpdir [NAME]: print the path of a fresh directory under $MG_TMP (which
# is removed at exit). Safe to call in $( ).
mg_tmpdir() {
    mktemp -d "$MG_TMP/${1:-d}.XXXXXX"
}

# mg_pki [DIR]: a complete test PKI (default DIR: $MG_TMP/pki) and sets MG_PKI.
#   $MG_PKI/root-cert.pem root-key.pem trust-domain   the mesh root (cluster.local)
#   $MG_PKI/gateway/{cert-chain,key,root-cert}.pem    spiffe://cluster.local/ns/istio-system/sa/ingressgateway
#   $MG_PKI/sleep/...                                 spiffe://cluster.local/ns/default/sa/sleep
#   $MG_PKI/httpbin/...                               spiffe://cluster.local/ns/default/sa/httpbin
#   $MG_PKI/server.crt/.key   DNS example.com, *.example.com, localhost, IP 127.0.0.1
#   $MG_PKI/client.crt/.key   DNS client.example.com, EKU serverAuth+clientAuth
# Returns non-zero (with the reason on stderr) if any step fails.
mg_pki() {
    local d=${1:-$MG_TMP/pki}
    MG_PKI=$d
    "$MESHGATE" ca init --dir "$d" >/dev/null &&
        "$MESHGATE" ca issue --dir "$d" --spiffe ns/istio-system/sa/ingressgateway \
            --out-dir "$d/gateway" >/dev/null &&
        "$MESHGATE" ca issue --dir "$d" --spiffe ns/default/sa/sleep --out-dir "$d/sleep" >/dev/null &&
        "$MESHGATE" ca issue --dir "$d" --spiffe ns/default/sa/httpbin --out-dir "$d/httpbin" >/dev/null &&
        "$MESHGATE" ca issue --dir "$d" --dns example.com --dns '*.example.com' --dns localhost \
            --ip 127.0.0.1 --name server >/dev/null &&
        "$MESHGATE" ca issue --dir "$d" --dns client.example.com --client --name client >/dev/null
}

# ------------------------------------------------------------------ ports

# _mg_port_busy PORT: is a TCP socket bound to PORT (any address, v4 or v6)?
_mg_port_busy() {
    local hex
    hex=$(printf '%04X' "$1")
    cat /proc/net/tcp /proc/net/tcp6 2>/dev/null |
        awk -v p=":$hex" 'NR > 1 && substr($2, length($2) - 4) == p { f = 1 } END { exit !f }'
}

# mg_free_port: print a TCP port that nothing is bound to. Ports come from
# 20000-32767 (below Linux's ephemeral range, so outgoing connections do not
# take them) and are never handed out twice by one script. Safe in $( ).
mg_free_port() {
    local p i used=$MG_TMP/.ports
    for ((i = 0; i < 200; i++)); do
        p=$((20000 + RANDOM % 12768))
        grep -qx "$p" "$used" 2>/dev/null && continue
        _mg_port_busy "$p" && continue
        echo "$p" >>"$used"
        echo "$p"
        return 0
    done
    echo "mg_free_port: no free port found" >&2
    return 1
}

# mg_wait_for SECONDS CMD [ARGS...]: run CMD every 0.1 s until it succeeds
# (return 0) or SECONDS pass (return 1).
mg_wait_for() {
    local limit=$(($1 * 10)) i
    shift
    for ((i = 0; i < limit; i++)); do
        "$@" && return 0
        sleep 0.1
    done
    return 1
}

# mg_wait_log FILE ERE [SECONDS]: wait (default 5 s) until a line of FILE
# matches ERE, e.g. an access log line that is written after the response.
mg_wait_log() {
    mg_wait_for "${3:-5}" grep -Eq -- "$2" "$1" 2>/dev/null || {
        echo "mg_wait_log: no line matching /$2/ in $1 after ${3:-5} s" >&2
        return 1
    }
}

# mg_wait_port HOST PORT [SECONDS]: wait until a TCP connect succeeds (default 10 s).
mg_wait_port() {
    local host=$1 port=$2 limit=$(((${3:-10}) * 10)) i
    for ((i = 0; i < limit; i++)); do
        if (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    echo "mg_wait_port: nothing accepts on $host:$port after ${3:-10} s" >&2
    return 1
}

# ------------------------------------------------------------------ processes

# _mg_track PID: stop PID when the script exits.
_mg_track() {
    _mg_pids+=("$1")
    echo "$1" >>"$MG_TMP/.pids"     # for the watchdog, which runs in a subshell
}

_mg_tracked() {
    local p
    for p in "${_mg_pids[@]}"; do
        [ "$p" = "$1" ] && return 0
    done
    return 1
}

# wait [ARGS]: the shell builtin, except that a bare `wait` waits only for the
# script's own background jobs, not for the gateway and upstreams the harness
# started (those never exit by themselves, so a bare wait would hang).
wait() {
    if [ "$#" -gt 0 ]; then
        builtin wait "$@"
        return
    fi
    local p
    for p in $(jobs -p); do
        _mg_tracked "$p" || [ "$p" = "${_mg_watchdog_pid:-}" ] || builtin wait "$p"
    done
    return 0
}

# _mg_alive PID: does PID exist and is it not a zombie? (kill -0 succeeds on
# an exited child until it is reaped.)
_mg_alive() {
    local st
    st=$(awk '{ sub(/^.*\) /, ""); print substr($0, 1, 1) }' "/proc/$1/stat" 2>/dev/null) || return 1
    [ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}

# mg_stop PID: SIGTERM, and a second one after 0.5 s (meshgate's first
# starts the load-balancer drain delay, the second skips the rest of it),
# wait up to 3 s, then SIGKILL; reaps it. Returns the process's exit status
# (137 when it had to be killed).
mg_stop() {
    local pid=$1 i rc p keep=()
    if _mg_alive "$pid"; then
        kill -TERM "$pid" 2>/dev/null
        for ((i = 0; i < 30; i++)); do
            _mg_alive "$pid" || break
            [ "$i" = 5 ] && kill -TERM "$pid" 2>/dev/null
            sleep 0.1
        done
        if _mg_alive "$pid"; then
            echo "mg_stop: $pid did not stop in 3 s, killing it" >&2
            kill -KILL "$pid" 2>/dev/null
        fi
    fi
    wait "$pid" 2>/dev/null
    rc=$?
    for p in "${_mg_pids[@]}"; do
        [ "$p" = "$pid" ] || keep+=("$p")
    done
    _mg_pids=("${keep[@]}")
    return "$rc"
}

# mg_stop_all: stop every process the harness started (installed as the
# EXIT trap; a test may call it earlier).
mg_stop_all() {
    local p
    for p in "${_mg_pids[@]}"; do
        mg_stop "$p"
    done
    _mg_pids=()
}

# mg_on_exit CMD...: run CMD when the script exits, before the harness stops
# its processes (use it instead of `trap ... EXIT`, which would replace the
# harness's own trap). Hooks run in the order they were added.
_mg_exit_hooks=()
mg_on_exit() { _mg_exit_hooks+=("$*"); }

_mg_exit() {
    local rc=$? h
    # Only the test script itself cleans up: a subshell ($(...), a pipeline
    # part) that exits must not stop the processes or delete $MG_TMP.
    [ "$BASHPID" = "$$" ] || exit "$rc"
    for h in "${_mg_exit_hooks[@]}"; do
        eval "$h"
    done
    [ -n "${_mg_watchdog_pid:-}" ] && kill "$_mg_watchdog_pid" 2>/dev/null
    mg_stop_all
    if [ "${MG_KEEP_TMP:-0}" = 1 ]; then
        diag "kept $MG_TMP"
    else
        rm -rf "$MG_TMP"
    fi
    exit "$rc"
}
trap _mg_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The watchdog: a hung script (a bare `wait`, a curl without a timeout, a
# gateway that never answers) must not hang `make check`. It polls once a
# second so it ends by itself soon after the script.
_mg_watchdog() {
    local limit=$1 main=$2 n=0 p
    while kill -0 "$main" 2>/dev/null; do
        sleep 1 >/dev/null 2>&1
        n=$((n + 1))
        [ "$n" -lt "$limit" ] && continue
        echo "Bail out! $MG_TEST_NAME ran longer than $limit s (MG_TEST_TIMEOUT)"
        kill -TERM "$main" 2>/dev/null
        sleep 3 >/dev/null 2>&1
        kill -0 "$main" 2>/dev/null || exit 0
        # the script is stuck in a foreground command: kill what it started
        while read -r p; do
            kill -KILL "$p" 2>/dev/null
        done <"$MG_TMP/.pids" 2>/dev/null
        for p in $(cat /proc/"$main"/task/*/children 2>/dev/null); do
            [ "$p" = "$BASHPID" ] || kill -KILL "$p" 2>/dev/null
        done
        for ((n = 0; n < 20; n++)); do     # its TERM trap may run now
            kill -0 "$main" 2>/dev/null || break
            sleep 0.1 >/dev/null 2>&1
        done
        kill -KILL "$main" 2>/dev/null
        rm -rf "$MG_TMP"
        exit 0
    done
}
if [ "${MG_TEST_TIMEOUT:-300}" -gt 0 ] 2>/dev/null; then
    _mg_watchdog "${MG_TEST_TIMEOUT:-300}" "$$" </dev/null &
    _mg_watchdog_pid=$!
fi

# mg_start_upstream [mg_upstream ARGS...]: start tests/helpers/mg_upstream on
# 127.0.0.1 (a free port unless ARGS has --listen) and wait until it listens.
# Sets MG_UPSTREAM_PID, MG_UPSTREAM_PORT and MG_UPSTREAM_LOG. Returns non-zero
# (log tail on stderr) if it does not come up within 5 s.
mg_start_upstream() {
    local n=${#_mg_pids[@]} pf log i listen=1 a
    for a in "$@"; do
        [ "$a" = --listen ] && listen=0
    done
    pf=$MG_TMP/upstream.$n.$RANDOM.port
    log=$MG_TMP/upstream.$n.log
    if [ "$listen" = 1 ]; then
        "$MG_UPSTREAM_BIN" --listen 127.0.0.1:0 --port-file "$pf" "$@" >"$log" 2>&1 &
    else
        "$MG_UPSTREAM_BIN" --port-file "$pf" "$@" >"$log" 2>&1 &
    fi
    MG_UPSTREAM_PID=$!
    MG_UPSTREAM_LOG=$log
    _mg_track "$MG_UPSTREAM_PID"
    for ((i = 0; i < 50; i++)); do
        if [ -s "$pf" ]; then
            MG_UPSTREAM_PORT=$(cat "$pf")
            return 0
        fi
        kill -0 "$MG_UPSTREAM_PID" 2>/dev/null || break
        sleep 0.1
    done
    echo "mg_upstream did not start ($*); log:" >&2
    tail -n 20 "$log" >&2
    return 1
}

# mg_start_meshgate CONFIG_DIR [ARGS...]: run `$MESHGATE run -c CONFIG_DIR ARGS`
# in the background, logging to $MG_TMP, and wait up to MG_READY_TIMEOUT
# seconds until http://$MG_ADMIN/ready answers 200. Sets MG_MESHGATE_PID and
# MG_MESHGATE_LOG. Returns non-zero, with the log tail on stderr, if MG_ADMIN
# is unset, the gateway exits, or it never becomes ready. Wrap it in `ok` (or
# `|| bail_out ...`) so a failure is a test result.
mg_start_meshgate() {
    local dir=$1 i limit code n=${#_mg_pids[@]}
    shift
    if [ -z "${MG_ADMIN:-}" ]; then
        echo "mg_start_meshgate: set MG_ADMIN=127.0.0.1:PORT (the Proxy's spec.admin)" >&2
        return 2
    fi
    MG_MESHGATE_LOG=$MG_TMP/meshgate.$n.log
    "$MESHGATE" run -c "$dir" "$@" >"$MG_MESHGATE_LOG" 2>&1 &
    MG_MESHGATE_PID=$!
    _mg_track "$MG_MESHGATE_PID"
    limit=$((${MG_READY_TIMEOUT:-10} * 10))
    for ((i = 0; i < limit; i++)); do
        if ! kill -0 "$MG_MESHGATE_PID" 2>/dev/null; then
            wait "$MG_MESHGATE_PID"
            echo "meshgate exited (status $?) before it was ready; log:" >&2
            tail -n 30 "$MG_MESHGATE_LOG" >&2
            return 1
        fi
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "http://$MG_ADMIN/ready" 2>/dev/null)
        [ "$code" = 200 ] && return 0
        sleep 0.1
    done
    echo "meshgate not ready after ${MG_READY_TIMEOUT:-10} s (last /ready: $code); log:" >&2
    tail -n 30 "$MG_MESHGATE_LOG" >&2
    return 1
}

# ------------------------------------------------------------------ clients

# mg_curl [CURL ARGS...] URL...: curl -sS --max-time 10, with every http(s)
# URL's host name resolved to 127.0.0.1 on the URL's port (so SNI and Host
# carry the test host name). IP-literal hosts are left alone.
mg_curl() {
    local a rest host port resolve=()
    for a in "$@"; do
        case $a in
        http://* | https://*)
            rest=${a#*://}
            rest=${rest%%/*}
            rest=${rest%%\?*}
            rest=${rest##*@}
            case $rest in
            \[*) continue ;;                           # IPv6 literal
            *:*) host=${rest%%:*} port=${rest##*:} ;;
            *) host=$rest
               if [ "${a%%://*}" = https ]; then port=443; else port=80; fi ;;
            esac
            case $host in
            '' | *[!0-9.]*) resolve+=(--resolve "$host:$port:127.0.0.1") ;;
            esac
            ;;
        esac
    done
    curl -sS --max-time 10 "${resolve[@]}" "$@"
}

# mg_raw PORT DATA [SECONDS]: send DATA (printf %b escapes: \r\n, \x00, ...)
# to 127.0.0.1:PORT over plain TCP and print everything the peer sends until
# it closes or SECONDS (default 3) pass. For requests curl will not send
# (smuggling, bad framing, pipelining).
mg_raw() {
    local port=$1 data=$2 t=${3:-3}
    (
        exec 3<>"/dev/tcp/127.0.0.1/$port" || exit 1
        printf '%b' "$data" >&3
        timeout "$t" cat <&3
        exit 0
    ) 2>/dev/null
}

# mg_raw_tls PORT SNI DATA [s_client ARGS...]: the same over TLS with SNI
# (openssl s_client; add -CAfile/-cert/-key/-alpn as needed). Waits at most
# MG_RAW_TIMEOUT seconds (default 5).
mg_raw_tls() {
    local port=$1 sni=$2 data=$3
    shift 3
    printf '%b' "$data" | timeout "${MG_RAW_TIMEOUT:-5}" openssl s_client -quiet \
        -connect "127.0.0.1:$port" -servername "$sni" "$@" 2>/dev/null
    return 0
}

# mg_http_code [CURL ARGS...] URL: print only the response status (000 when
# no response), as mg_curl sees it.
mg_http_code() {
    mg_curl -o /dev/null -w '%{http_code}' "$@" 2>/dev/null
    return 0
}

# mg_metric NAME [LABELS_ERE]: the sum of the values of metric NAME on
# http://$MG_ADMIN/stats/prometheus over the series whose label set matches
# LABELS_ERE (grep -E inside the braces, e.g. 'response_code="403"'); 0 when
# none matches. Returns 1 when the admin endpoint does not answer.
mg_metric() {
    local page
    page=$(curl -sS --max-time 5 "http://$MG_ADMIN/stats/prometheus") || return 1
    printf '%s\n' "$page" | awk -v name="$1" -v re="${2:-}" '
        $1 !~ /^#/ {
            series = $1; labels = ""
            i = index(series, "{")
            if (i) { labels = substr(series, i + 1); series = substr(series, 1, i - 1) }
            if (series == name && (re == "" || labels ~ re)) sum += $NF
        }
        END { printf "%.17g\n", sum + 0 }'
}

# mg_json_field JSON KEY: print the value of the first "KEY": in JSON, a
# string without its quotes (escapes left as they are) or a number, true,
# false or null as written. Enough for mg_upstream's flat echo fields
# (upstream, method, path, body_length, client_uri_san, ...); no jq needed.
# Returns 1 when KEY is absent.
mg_json_field() {
    local v
    v=$(printf '%s' "$1" | grep -Eo "\"$2\":(\"([^\"\\\\]|\\\\.)*\"|[^,}]*)" | head -n 1) || return 1
    [ -n "$v" ] || return 1
    v=${v#\""$2"\":}
    case $v in
    \"*\") v=${v#\"} v=${v%\"} ;;
    esac
    printf '%s\n' "$v"
}

# mg_json_has_header JSON NAME VALUE: did mg_upstream see header NAME (case
# insensitive) with exactly VALUE? (VALUE as it appears JSON-escaped.)
mg_json_has_header() {
    printf '%s' "$1" | grep -Fqi -- "[\"$2\",\"$3\"]"
}
