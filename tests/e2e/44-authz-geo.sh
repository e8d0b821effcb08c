#!/bin/bash
# 44-authz-geo.sh - GeoIP (MeshConfig geoipDatabase) through the real
# gateway, with a database the test writes (tests/helpers/mg_mmdb_write)
# mapping loopback addresses to countries and AS numbers; curl picks the
# source address with --interface 127.0.0.N. A DENY on one country, an
# ALLOW of others with notValues on the AS number, unknown addresses,
# remote.geo.country from X-Forwarded-For only under numTrustedProxies,
# client copies of the geo headers overwritten, the access log fields,
# `meshgate authz` resolving through the same database (every request is
# put to it too), `meshgate check` without a database, and the database
# file replaced (taken) and replaced by a corrupt one (refused, the old one
# keeps serving).
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/az_common.sh"

WRITER=$MG_BUILDDIR/tests/helpers/mg_mmdb_write
[ -x "$WRITER" ] || bail_out "mg_mmdb_write not built"
ip addr show lo 2>/dev/null | grep -q '127.0.0.1/8' || skip_all "loopback is not 127.0.0.0/8"

mg_pki || bail_out "cannot make a PKI"
mg_start_upstream --name v1 || bail_out "upstream"
up=$MG_UPSTREAM_PORT
https=$(mg_free_port)
http=$(mg_free_port)
export MG_ADMIN=127.0.0.1:$(mg_free_port)
AZ_CFG=$(mg_tmpdir cfg)
db=$(mg_tmpdir db)/geo.mmdb
NETS=(127.0.0.1/32=US,64500 127.0.0.2/32=DE,64501 127.0.0.3/32=FR,64666 127.0.0.4/32=FR,64502
      10.9.9.0/24=DE,64601 192.0.2.0/24=JP,64602)
ok "the test database is written" "$WRITER" "$db" "${NETS[@]}"
if command -v mmdblookup >/dev/null; then
    like "$(mmdblookup -f "$db" -i 127.0.0.2 country iso_code 2>&1)" '"DE"' \
        "mmdblookup reads it (127.0.0.2 is DE)"
else
    skip "mmdblookup (mmdb-bin) is not installed"
fi

mesh() {    # mesh NUM_TRUSTED_PROXIES [ACCESS_LOG_FORMAT]
    az_config "$AZ_CFG" "$MG_ADMIN" "$https" "$http" "$up" "  numTrustedProxies: $1
  geoipDatabase: $db
  geoipHeaders: {country: x-geo-country, asn: x-geo-asn}${2:+
  accessLogFormat: \"$2\"}"
}
mesh 0
az_policy "$AZ_CFG" deny-de "apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-de, namespace: istio-system}
spec:
  action: DENY
  rules:
  - when: [{key: source.geo.country, values: [\"DE\"]}]
  - when: [{key: remote.geo.country, values: [\"DE\"]}]"
az_policy "$AZ_CFG" allow-geo "apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-geo, namespace: istio-system}
spec:
  action: ALLOW
  rules:
  - when:
    - {key: source.geo.country, values: [\"US\", \"FR\"]}
    - {key: source.geo.asn, notValues: [\"64666\"]}
  - to: [{operation: {paths: [\"/anon\"]}}]
    when: [{key: source.geo.country, notValues: [\"*\"]}]"

ok "gateway starts with the database" mg_start_meshgate "$AZ_CFG"
like "$(curl -s --max-time 3 "http://$MG_ADMIN/config_dump")" \
    '"geoip":\{"path":"[^"]*/geo\.mmdb","database_type":"meshgate-test"\}' "/config_dump names the database"
B=https://app.example.com:$https

az_req "US (127.0.0.1) allowed" 200 "$B/echo"
az_req "DE (127.0.0.2) denied by the country DENY" 403 "$B/echo" --source-ip 127.0.0.2
az_req "FR with AS 64502 (127.0.0.4) allowed" 200 "$B/echo" --source-ip 127.0.0.4
az_req "FR with AS 64666 (127.0.0.3) denied: notValues on the AS number" 403 "$B/echo" \
    --source-ip 127.0.0.3
az_req "an address the database does not hold: values does not match" 403 "$B/echo" \
    --source-ip 127.0.0.5
az_req "an address the database does not hold: notValues [*] matches" 200 "$B/anon" \
    --source-ip 127.0.0.5
az_req "a held address: notValues [*] does not match (FR in AS 64666 matches no rule)" 403 "$B/anon" \
    --source-ip 127.0.0.3
az_req "numTrustedProxies 0: X-Forwarded-For from a DE network is not the client" 200 "$B/echo" \
    -H 'x-forwarded-for: 10.9.9.5'

# upstream headers: the gateway's values, never the client's
body=$(mg_curl --cacert "$MG_PKI/root-cert.pem" -H 'x-geo-country: ZZ' -H 'X-Geo-Asn: 1' \
    -H 'x-geo-country: YY' "$B/echo")
ok "x-geo-country is the database's (US)" mg_json_has_header "$body" x-geo-country US
ok "x-geo-asn is the database's (64500)" mg_json_has_header "$body" x-geo-asn 64500
is "$(grep -o '"x-geo-country"' <<<"${body,,}" | wc -l)" 1 "one x-geo-country reaches the upstream"
unlike "$body" '"(ZZ|YY)"' "the client's spoofed values are gone"
body=$(mg_curl --interface 127.0.0.5 --cacert "$MG_PKI/root-cert.pem" -H 'x-geo-country: ZZ' "$B/anon")
unlike "${body,,}" '"x-geo-country"' "unknown address: no geo header, the client's copy removed"

ok "access log: country and AS number of the client" \
    az_log_wait '"path":"/echo".*"reason":"rbac_policy".*"geo_country":"DE","geo_asn":64501'
ok "access log: allowed request" az_log_wait '"geo_country":"FR","geo_asn":64502'

out=$("$MESHGATE" authz -c "$AZ_CFG" --url "$B/echo" --source-ip 127.0.0.2 --remote-ip 192.0.2.9 2>&1)
like "$out" 'geo: source 127\.0\.0\.2 country=DE asn=64501' "meshgate authz prints the source's geo"
like "$out" 'geo: remote 192\.0\.2\.9 country=JP asn=64602' "and the remote's"
like "$out" 'decided by: istio-system\.deny-de \(DENY, rule 0\)' "and decides on it"

# remote.geo.* from X-Forwarded-For once the hop is trusted; the custom
# access log operators
mesh 1 '%REQ(:PATH)% geo=%GEO_COUNTRY%/%GEO_ASN%'
ok "reload: numTrustedProxies 1, accessLogFormat with %GEO_COUNTRY% %GEO_ASN%" az_reload 2
az_req "numTrustedProxies 1: the XFF client in a DE network is denied" 403 "$B/echo" \
    -H 'x-forwarded-for: 10.9.9.5' --remote-ip 10.9.9.5
az_req "numTrustedProxies 1: the XFF client in JP, peer US: allowed" 200 "$B/echo" \
    -H 'x-forwarded-for: 10.9.9.5, 192.0.2.1' --remote-ip 192.0.2.1
ok "access log operators: the XFF client's country and AS number" \
    az_log_wait '^/echo geo=JP/64602$'
body=$(mg_curl --cacert "$MG_PKI/root-cert.pem" -H 'x-forwarded-for: 192.0.2.44' "$B/echo")
ok "x-geo-country is the XFF client's (JP)" mg_json_has_header "$body" x-geo-country JP
mg_curl --interface 127.0.0.5 --cacert "$MG_PKI/root-cert.pem" -o /dev/null "$B/anon"
ok "access log operators: unknown address gives -" az_log_wait '^/anon geo=-/-$'

# the database file replaced: a complete new file renamed over it is taken
# without a signal; a corrupt one is refused and the old database serves on
new=$(dirname "$db")/new.mmdb
"$WRITER" "$new" 127.0.0.4/32=DE,64502 127.0.0.1/32=US,64500
mv -f "$new" "$db"
code_from() {   # code_from SOURCE_IP WANT: the status of a request from SOURCE_IP is WANT
    [ "$(mg_http_code --interface "$1" --cacert "$MG_PKI/root-cert.pem" "$B/echo")" = "$2" ]
}
ok "a new database is taken (127.0.0.4 is now DE)" mg_wait_for 10 code_from 127.0.0.4 403
az_req "the new database: 127.0.0.4 denied" 403 "$B/echo" --source-ip 127.0.0.4
head -c 200 "$db" >"$new"
mv -f "$new" "$db"
ok "a truncated database is refused with a clear error" \
    mg_wait_log "$MG_MESHGATE_LOG" 'geoipDatabase .*: not a MaxMind DB file.*truncated or corrupt' 10
ok "and the rotation is rejected" mg_wait_log "$MG_MESHGATE_LOG" 'rotation rejected' 5
is "$(mg_http_code --interface 127.0.0.4 --cacert "$MG_PKI/root-cert.pem" "$B/echo")" 403 \
    "the previous database keeps serving (127.0.0.4 still DE)"
is "$(mg_http_code --cacert "$MG_PKI/root-cert.pem" "$B/echo")" 200 "and 127.0.0.1 still US"

# configuration checks
nodb=$(mg_tmpdir nodb)
cat >"$nodb/p.yaml" <<'YAML'
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: geo, namespace: istio-system}
spec:
  action: DENY
  rules:
  - when: [{key: source.geo.country, values: ["DE", "UK"]}]
YAML
out=$("$MESHGATE" check -c "$nodb" 2>&1)
is "$?" 1 "meshgate check: a geo condition without geoipDatabase is an error"
like "$out" "p.yaml:7:.*error: .*needs MeshConfig geoipDatabase" "the error names the condition"
like "$out" "warning: .*'UK' is not an ISO 3166 alpha-2" "a non-ISO code is a warning"
good=$(mg_tmpdir good)
"$WRITER" "$good/bad.mmdb" 127.0.0.1/32=US,1
printf 'not a database\n' >"$good/bad.mmdb"
printf 'apiVersion: meshgate.io/v1alpha1\nkind: MeshConfig\nspec: {geoipDatabase: %s}\n' \
    "$good/bad.mmdb" >"$good/m.yaml"
out=$("$MESHGATE" authz -c "$good" --url http://a.example.com/ --source-ip 127.0.0.1 2>&1)
like "$out" "not a MaxMind DB file" "meshgate authz refuses a corrupt database"
is "$(grep -c 'Sanitizer\|runtime error' "$MG_MESHGATE_LOG")" 0 "no sanitizer report in the gateway log"

done_testing
