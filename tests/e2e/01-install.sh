#!/bin/bash
# 01-install.sh - `make install DESTDIR=...` lays out what an operator needs:
# the binary, the systemd unit naming that binary and the installed
# configuration, the example configuration, the logrotate snippet, both man
# pages, and the sysusers.d/tmpfiles.d snippets of the service's fixed user;
# the pages render without a groff warning, the snippet parses, the unit
# passes `systemd-analyze verify`, and (as root, in a scratch root) the user
# the snippets create reads a key file root:meshgate 0640, where those tools
# are installed.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"

D=$(mg_tmpdir destdir)
# a make of its own: not the jobserver or the TESTS= of the make check running us
out=$(cd "$MG_BUILDDIR" && env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL ${MAKE:-make} -s install DESTDIR="$D" 2>&1)
is "$?" 0 "make install DESTDIR=... succeeds" || diag "$out"

one() {   # one PATTERN: the single installed file whose path matches
    local f
    f=$(cd "$D" && find . -type f -path "$1" | sed 's|^\.||')
    [ "$(printf '%s\n' "$f" | grep -c .)" = 1 ] && printf '%s' "$f"
}
bin=$(one '*/bin/meshgate')
ok "the binary is installed ($bin)" test -x "$D$bin"
like "$("$D$bin" version)" "^meshgate [0-9]" "and runs"

unit=$(one '*/lib/systemd/system/meshgate.service')
ok "the systemd unit is installed ($unit)" test -n "$unit"
cfgdir=$(dirname "$(one '*/meshgate/10-proxy.yaml')")
for f in 00-mesh 10-proxy 20-gateway 30-policies 40-egress; do
    ok "example configuration $f.yaml is installed in $cfgdir" test -f "$D$cfgdir/$f.yaml"
done
like "$(grep '^ExecStart=' "$D$unit")" "^ExecStart=$bin run -c $cfgdir\$" \
    "ExecStart runs the installed binary on the installed configuration"
like "$(grep '^ExecStartPre=' "$D$unit")" "^ExecStartPre=$bin check -c $cfgdir\$" \
    "ExecStartPre checks that configuration first"
like "$(grep '^ExecReload=' "$D$unit")" "kill -HUP" "reload is SIGHUP"

# The service runs as a fixed system user, created by the sysusers.d
# snippet, so that root can make key files readable by its group.
unlike "$(cat "$D$unit")" "^DynamicUser=" "the unit no longer uses DynamicUser"
like "$(grep '^User=' "$D$unit")" "^User=meshgate$" "User=meshgate"
like "$(grep '^Group=' "$D$unit")" "^Group=meshgate$" "Group=meshgate"
like "$(grep '^AmbientCapabilities=' "$D$unit")" "CAP_NET_BIND_SERVICE" \
    "it still binds ports below 1024 (ambient CAP_NET_BIND_SERVICE)"
su=$(one '*/lib/sysusers.d/meshgate.conf')
ok "the sysusers.d snippet is installed ($su)" test -n "$su"
like "$(grep -v '^#' "$D$su")" "^u meshgate " "and declares the system user meshgate"
tf=$(one '*/lib/tmpfiles.d/meshgate.conf')
ok "the tmpfiles.d snippet is installed ($tf)" test -n "$tf"
is "$(grep -v '^#' "$D$tf")" "d $cfgdir 0750 root meshgate -" \
    "it makes the installed configuration directory root:meshgate 0750"

lr=$(one '*/logrotate.d/meshgate')
ok "the logrotate snippet is installed ($lr)" test -n "$lr"
like "$(cat "$D$lr")" "USR1" "and signals USR1 (reopen) after a rotation"

m8=$(one '*/man8/meshgate.8')
m5=$(one '*/man5/meshgate.yaml.5')
ok "meshgate(8) is installed ($m8)" test -n "$m8"
ok "meshgate.yaml(5) is installed ($m5)" test -n "$m5"

# The pages list every command and every field; hold the lists to the code.
for c in run check authz "ca init" "ca issue" version SIGHUP SIGTERM SIGINT SIGUSR1 \
         "EXIT STATUS" FILES; do
    like "$(cat "$D$m8")" "$c" "meshgate(8) covers $c"
done
for f in trustDomain trustDomainAliases rootNamespace outboundTrafficPolicy pathNormalization \
         accessLogFile accessLogEncoding accessLogFormat caCertificates geoipDatabase \
         geoipHeaders extensionProviders numTrustedProxies enableAutoMtls localityLbSetting gatewayTopology \
         spec.mode spec.workers serviceAccount spec.locality spec.network identity.certificateChain credentials \
         bindAddress spec.admin spec.inbound outbound.bind outbound.tls denyResolvedCidrs \
         proxyProtocol.ports trustedSources allowWithoutHeader sessionTicketKeys watchConfig \
         requireHttps timeouts.handshake timeouts.requestHeaders timeouts.idle \
         timeouts.drainDelay timeouts.drain maxConnections maxRequestHeadersKb \
         maxConcurrentStreams ocspStaple; do
    like "$(cat "$D$m5")" "$f" "meshgate.yaml(5) documents $f"
done

if command -v groff >/dev/null; then
    for m in "$m8" "$m5"; do
        w=$(groff -man -Tutf8 -ww -z "$D$m" 2>&1)
        is "$w" "" "groff -ww: no warning for $(basename "$m")"
    done
else
    skip "groff is not installed" 2
fi
if command -v man >/dev/null; then
    for m in "$m8" "$m5"; do
        w=$(MANWIDTH=80 man --warnings -l "$D$m" 2>&1 >/dev/null)
        is "$w" "" "man -l renders $(basename "$m") without a warning"
        like "$(MANWIDTH=80 man -l "$D$m" 2>/dev/null)" "^NAME" "... with its NAME section"
    done
else
    skip "man (man-db) is not installed" 4
fi

if command -v logrotate >/dev/null; then
    # -d: parse and plan only, rotate nothing and run no script
    out=$(logrotate -d -s "$D/logrotate.state" "$D$lr" 2>&1)
    is "$?" 0 "logrotate -d accepts the snippet" || diag "$out"
    unlike "$out" "error:" "with no error line"
else
    skip "logrotate is not installed" 2
fi

if command -v systemd-analyze >/dev/null && [ -x /bin/kill ]; then
    # verify checks that ExecStart's binary exists: point it into DESTDIR
    v=$(mg_tmpdir unit)
    sed "s|$bin|$D$bin|g" "$D$unit" >"$v/meshgate.service"
    out=$(systemd-analyze verify "$v/meshgate.service" 2>&1)
    is "$?:$out" "0:" "systemd-analyze verify: no complaint about the unit"
else
    skip "systemd-analyze is not installed" 1
fi

# The user as the snippets make it, in a scratch root (the host's user
# database is not touched): systemd-sysusers allocates it, systemd-tmpfiles
# gives it the configuration directory, and the user can read a key file
# root:meshgate 0640 but not one root:root 0600 (what DynamicUser= left it).
if command -v systemd-sysusers >/dev/null && command -v systemd-tmpfiles >/dev/null; then
    R=$(mg_tmpdir root)
    mkdir -p "$R/etc"
    out=$(systemd-sysusers --root="$R" "$D$su" 2>&1)
    is "$?" 0 "systemd-sysusers --root accepts the snippet" || diag "$out"
    uid=$(awk -F: '$1 == "meshgate" { print $3 }' "$R/etc/passwd" 2>/dev/null)
    gid=$(awk -F: '$1 == "meshgate" { print $3 }' "$R/etc/group" 2>/dev/null)
    like "$uid:$gid" "^[0-9]+:[0-9]+$" "it creates the user and group meshgate ($uid:$gid)"
    like "$(awk -F: '$1 == "meshgate" { print $7 }' "$R/etc/passwd" 2>/dev/null)" "nologin" \
        "with no login shell"
    if [ "$(id -u)" = 0 ]; then
        out=$(systemd-tmpfiles --root="$R" --create "$D$tf" 2>&1)
        is "$?" 0 "systemd-tmpfiles --root --create applies the tmpfiles snippet" || diag "$out"
        is "$(stat -c '%a %u %g' "$R$cfgdir" 2>/dev/null)" "750 0 $gid" \
            "the configuration directory is root:meshgate 0750"
    else
        skip "creating a root:meshgate directory needs root" 2
    fi
    if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null && [ -n "$uid" ]; then
        # a directory of our own that the service user may enter ($MG_TMP is 0700)
        K=$(mktemp -d /tmp/mg-e2e-keys.XXXXXX)
        mg_on_exit rm -rf "$K"
        chmod 0711 "$K"
        echo key >"$K/shared.key"
        chgrp "$gid" "$K/shared.key" && chmod 0640 "$K/shared.key"
        echo key >"$K/private.key"
        chmod 0600 "$K/private.key"
        as_svc() { setpriv --reuid="$uid" --regid="$gid" --clear-groups -- "$@"; }
        ok "the service user reads a key file root:meshgate 0640" as_svc cat "$K/shared.key"
        fails "but not one root:root 0600" as_svc cat "$K/private.key"
        fails "and another user cannot read the 0640 one" \
            setpriv --reuid=65534 --regid=65534 --clear-groups -- cat "$K/shared.key"
    else
        skip "running as the service user needs root and setpriv" 3
    fi
else
    skip "systemd-sysusers/systemd-tmpfiles are not installed" 6
fi
done_testing
