#!/bin/sh
# Install the Debian packages trainctl needs to build, test and benchmark.
# Idempotent: prints nothing and touches nothing when all are present.
set -eu

PKGS="build-essential pkg-config liblua5.4-dev lua5.4 lua-cjson-dev
libcurl4-openssl-dev libssl-dev openssl libedit-dev libjq-dev curl ca-certificates
lua-busted lua-check python3 python3-yaml python3-msal perl valgrind faketime etcd-server etcd-client"
[ "${1:-}" = "--bench" ] && PKGS="$PKGS wrk nginx-light hyperfine"
[ "${1:-}" = "--fuzz" ] && PKGS="$PKGS clang libclang-rt-14-dev"
# make deb, and CI's package test: dpkg-buildpackage with debhelper.
[ "${1:-}" = "--deb" ] && PKGS="$PKGS debhelper dpkg-dev"

missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
		missing="$missing $p"
done
[ -z "$missing" ] && exit 0

echo "deps: installing$missing" >&2
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
