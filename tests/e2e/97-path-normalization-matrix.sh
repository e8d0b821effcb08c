#!/bin/bash
# 97-path-normalization-matrix.sh - in every pathNormalization mode, the
# path that authorization judges is the path the upstream receives: for a
# DENY on /admin and /admin/*, each bypass spelling (slashes, encoded
# slashes and backslashes, dot segments, double encoding, overlong UTF-8,
# ';' parameters, case, fragments, absolute-form) is either denied, or
# reaches the upstream exactly as authorized (istio-semantics 9.1/9.2).
# A method that is not uppercase gets 400 on HTTP/1.1 and HTTP/2 alike.
# Regression: HTTP/2 let `:method: delete` through, past DENY methods
# ["DELETE"], to backends that upper-case the method.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/az_common.sh"

FLOOD=$MG_BUILDDIR/tests/helpers/mg_h2flood
mg_pki || bail_out "cannot make a PKI"
mg_start_upstream --name v1 || bail_out "upstream"
up=$MG_UPSTREAM_PORT
https=$(mg_free_port)
http=$(mg_free_port)
export MG_ADMIN=127.0.0.1:$(mg_free_port)

# t TARGET WANT_STATUS [WANT_UPSTREAM_PATH]: one raw request on the plain port
t() {
    local out st p
    out=$(mg_raw "$http" "GET $1 HTTP/1.1\r\nHost: app.example.com\r\nConnection: close\r\n\r\n" 3)
    st=$(printf '%s\n' "$out" | head -n 1 | awk '{print $2}')
    if [ "$2" = 200 ]; then
        p=$(mg_json_field "$out" path)
        is "$st $p" "200 $3" "$mode: $1 allowed, upstream path $3"
    else
        is "$st" "$2" "$mode: $1 -> $2"
    fi
}

for mode in NONE BASE MERGE_SLASHES DECODE_AND_MERGE_SLASHES; do
    AZ_CFG=$(mg_tmpdir cfg)
    az_config "$AZ_CFG" "$MG_ADMIN" "$https" "$http" "$up" "  pathNormalization: {normalization: $mode}"
    az_policy "$AZ_CFG" deny 'apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-admin, namespace: istio-system}
spec:
  action: DENY
  rules:
  - to: [{operation: {paths: ["/admin", "/admin/*"]}}]
  - to: [{operation: {methods: ["DELETE"]}}]'
    ok "$mode: gateway starts" mg_start_meshgate "$AZ_CFG"
    # the same in every mode
    t /admin 403
    t '/admin#x' 403
    t '/x#/../admin' 200 /x
    t 'http://app.example.com/admin' 403
    t '/admin%00' 400
    t '/\admin' 400
    t '/admin;x=1' 200 '/admin;x=1'
    t '/ADMIN' 200 /ADMIN
    t '/%252Fadmin' 200 /%252Fadmin
    t '/%2561dmin' 200 /%2561dmin
    t '/%c0%afadmin' 200 /%c0%afadmin
    t '/admin%2500' 200 /admin%2500
    case $mode in
    NONE)
        t //admin 200 //admin
        t '/%61dmin' 200 /%61dmin
        t '/x/%2e%2e/admin' 200 /x/%2e%2e/admin
        t '/x/./../admin/' 200 /x/./../admin/
        t '/%2Fadmin' 200 /%2Fadmin
        ;;
    BASE | MERGE_SLASHES)
        t '/%61dmin' 403
        t '/adm%69n/' 403
        t '/x/%2e%2e/admin' 403
        t '/x/%2E%2e/admin' 403
        t '/.%2e/admin' 403
        t '/x/./../admin/' 403
        t '/%41dmin' 200 /Admin
        t '/%2Fadmin' 200 /%2Fadmin
        t '/%5Cadmin' 200 /%5Cadmin
        t '/x/%2e%2e%2fadmin' 200 /x/..%2fadmin
        t '/x/..%5Cadmin' 200 /x/..%5Cadmin
        if [ $mode = BASE ]; then
            t //admin 200 //admin
            t 'http://app.example.com//admin' 200 //admin
        else
            t //admin 403
            t 'http://app.example.com//admin' 403
            t '/public//x' 200 /public/x
        fi
        ;;
    DECODE_AND_MERGE_SLASHES)
        t //admin 403
        t '/%2Fadmin' 403
        t '/%2fadmin/x' 403
        t '/%5Cadmin' 403
        t '/a/..%2Fadmin' 403
        t '/x/..%5Cadmin' 403
        t '/x/%2e%2e%2fadmin' 403
        t '/public%2Fx' 200 /public/x
        ;;
    esac
    if [ $mode = BASE ]; then
        is "$(mg_raw "$http" 'delete /x HTTP/1.1\r\nHost: app.example.com\r\n\r\n' 3 | head -n 1 | awk '{print $2}')" \
            400 "HTTP/1.1: lower-case method delete: 400"
        if [ -x "$FLOOD" ]; then
            like "$("$FLOOD" --port "$https" request DELETE /x 2>&1)" '^stream 0 status 403$' \
                "HTTP/2: DELETE denied by the policy"
            like "$("$FLOOD" --port "$https" request delete /x 2>&1)" '^stream 0 (status 400|reset [1-9])' \
                "HTTP/2: lower-case method delete refused, not passed on"
            like "$("$FLOOD" --port "$https" request Get /echo 2>&1)" '^stream 0 (status 400|reset [1-9])' \
                "HTTP/2: mixed-case method Get refused"
        else
            skip "no mg_h2flood" 3
        fi
    fi
    mg_stop "$MG_MESHGATE_PID"
done

done_testing
