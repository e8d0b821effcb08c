#!/bin/bash
# 13-contrib-examples.sh - the deployment recipes under contrib/ stay valid:
# the Kubernetes ConfigMap's documents (contrib/kubernetes/config) pass
# `meshgate check` with the two Secrets in place as the Deployment mounts
# them, the kustomization names every one of them, and the HAProxy fleet
# configuration passes `haproxy -c`.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"

src=$MG_SRCDIR/contrib/kubernetes
[ -d "$src" ] || bail_out "no $src"
root=$(mg_tmpdir k8s)
# /etc/meshgate/{config,certs,tickets} as the Deployment mounts them
mkdir -p "$root/config" "$root/certs" "$root/tickets"
cp "$src"/config/*.yaml "$root/config/"
"$MESHGATE" ca init --dir "$root/pki" >/dev/null 2>&1 &&
    "$MESHGATE" ca issue --dir "$root/pki" --dns www.example.com --name www >/dev/null 2>&1 ||
    bail_out "cannot make certificates"
cp "$root/pki/www.crt" "$root/certs/tls.crt"
cp "$root/pki/www.key" "$root/certs/tls.key"
{ openssl rand 80 | base64 -w0; echo; } >"$root/tickets/ticket.keys"

out=$("$MESHGATE" check -c "$root/config" 2>&1)
rc=$?
is "$rc" 0 "contrib/kubernetes/config passes meshgate check" || diag "$out"
unlike "$out" 'error:' "... without an error"
for f in "$src"/config/*.yaml; do
    ok "the kustomization's ConfigMap names $(basename "$f")" \
        grep -q "config/$(basename "$f")" "$src/kustomization.yaml"
done
for f in namespace.yaml deployment.yaml service.yaml; do
    ok "the kustomization's resources name $f" grep -q "  - $f" "$src/kustomization.yaml"
done
like "$(cat "$src/deployment.yaml")" 'mountPath: /etc/meshgate/config' "the Deployment mounts the ConfigMap where the paths expect it"
like "$(cat "$src/deployment.yaml")" 'path: /ready' "... and probes /ready"

if command -v haproxy >/dev/null; then
    ok "contrib/fleet/haproxy.cfg passes haproxy -c" haproxy -c -q -f "$MG_SRCDIR/contrib/fleet/haproxy.cfg"
else
    skip "haproxy not installed" 1
fi
done_testing
