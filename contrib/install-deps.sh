#!/bin/bash
# install-deps.sh [build|test|bench] - install the Debian 12 packages meshgate
# needs, and nothing when they are all present already (idempotent, no network
# then). Runs as root; a minbase debootstrap root is enough to start from.
set -eu

build_pkgs="gcc make autoconf automake pkg-config libc6-dev ca-certificates
  libssl-dev libnghttp2-dev libevent-dev libyaml-dev libcjose-dev libjansson-dev
  libmaxminddb-dev openssl"
test_pkgs="curl nghttp2-client procps iproute2 netcat-openbsd mmdb-bin perl haproxy man-db
  valgrind clang libclang-rt-14-dev python3-hyperframe python3-hpack"
bench_pkgs="wrk nghttp2-client nginx haproxy squid libio-socket-ssl-perl"

want="$build_pkgs"
case "${1:-build}" in
  build) ;;
  test) want="$want $test_pkgs" ;;
  bench) want="$want $test_pkgs $bench_pkgs" ;;
  *) echo "usage: $0 [build|test|bench]" >&2; exit 2 ;;
esac

missing=""
for p in $want; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
    missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "install-deps: missing packages:$missing (run as root)" >&2
  exit 1
fi
echo "install-deps: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
