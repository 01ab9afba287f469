#!/bin/sh
# The Debian package as a user gets it: `make deb`, `apt install
# ./trainctl_*.deb`, then the installed trainctl shows its version, has its
# man page, and runs the installed examples (one workflow per cloud, as
# `make demo` does) against cloudsim. The package is purged afterwards.
# Run by .ci/run after `scripts/deps.sh --deb`; needs root (CI runs as
# root) and dpkg-buildpackage with debhelper, else it skips.
cd "$(dirname "$0")/../.." || exit 1
unset MAKEFLAGS MFLAGS MAKELEVEL

skip() {
	echo "1..0 # SKIP $1"
	exit 0
}
command -v dpkg-buildpackage >/dev/null 2>&1 && command -v dh >/dev/null 2>&1 ||
	skip "dpkg-buildpackage or debhelper missing (scripts/deps.sh --deb installs them)"
[ "$(id -u)" = 0 ] || skip "installing a package needs root"
dpkg-query -W -f='${Status}' trainctl 2>/dev/null | grep -q "ok installed" &&
	skip "a trainctl package is installed already; not replacing it"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/trainctl-deb.XXXXXX")
installed=""
cleanup() {
	[ -n "$installed" ] && apt-get purge -y -qq trainctl >/dev/null 2>&1
	rm -rf "$tmp"
}
trap cleanup EXIT

n=0
ok() {
	n=$((n + 1))
	if [ "$1" = 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fi
}
show() { tail -n "${2:-8}" "$1" | sed 's/^/# /'; }

echo "1..8"

make --no-print-directory deb >"$tmp/build.log" 2>&1
rc=$?
ok $rc "make deb"
[ "$rc" = 0 ] || { show "$tmp/build.log"; exit 1; }
version=$(sed -n 's/^VERSION = //p' Makefile)
deb=$(ls ./trainctl_"$version"_*.deb)

# The libraries loaded with dlopen are dependencies too: each soname
# src/core/lazy.c names is held by a package the .deb depends on.
depends=$(dpkg-deb -f "$deb" Depends | tr ',' '\n' | sed 's/^ *//; s/ .*//')
bad=""
for so in $(grep -o '"lib[A-Za-z0-9_+-]*\.so\.[0-9][0-9.]*"' src/core/lazy.c | tr -d '"'); do
	pkg=$(dpkg -S "*/$so" 2>/dev/null | head -n1 | cut -d: -f1)
	printf '%s\n' "$depends" | grep -qx "${pkg:-none}" || bad="$bad $so(${pkg:-no package})"
done
[ -z "$bad" ]
ok $? "Depends covers the libraries loaded with dlopen: $(dpkg-deb -f "$deb" Depends)${bad:+ (missing:$bad)}"

installed=1
DEBIAN_FRONTEND=noninteractive apt install -y "$deb" >"$tmp/apt.log" 2>&1
rc=$?
ok $rc "apt install $deb"
[ "$rc" = 0 ] || { show "$tmp/apt.log"; exit 1; }

/usr/bin/trainctl --version >"$tmp/version" 2>&1 && grep -q "^trainctl $version" "$tmp/version"
ok $? "trainctl --version: $(head -n1 "$tmp/version")"

[ -f /usr/share/man/man1/trainctl.1.gz ] && [ -f /usr/share/doc/trainctl/lua-api.md.gz ] &&
	[ -x /usr/share/trainctl/examples/aitems_recommend.lua ]
ok $? "man page, docs and examples in place"

# The completions come with the package when the binary has `completion`.
if /usr/bin/trainctl completion bash >/dev/null 2>&1; then
	[ -f /usr/share/bash-completion/completions/trainctl ] &&
		[ -f /usr/share/zsh/vendor-completions/_trainctl ]
	ok $? "bash and zsh completions in place"
else
	n=$((n + 1))
	echo "ok $n - bash and zsh completions # SKIP trainctl has no 'completion' command"
fi

TRAINCTL=/usr/bin/trainctl DEMO_EXAMPLES=/usr/share/trainctl/examples DEMO_OUTPUT="$tmp/out" \
	./scripts/demo.sh >"$tmp/demo.log" 2>&1
rc=$?
[ "$rc" = 0 ] && grep -qx "demo: done; outputs in $tmp/out/:" "$tmp/demo.log" &&
	[ "$(wc -l <"$tmp/out/recommendations.jsonl")" -eq 30 ] &&
	grep -q '"auc"' "$tmp/out/ctr_metrics.json" &&
	[ "$(wc -l <"$tmp/out/classified.jsonl")" -eq 6 ]
ok $? "the installed examples run against cloudsim, one per cloud"
[ "$rc" = 0 ] || show "$tmp/demo.log" 12
grep -A5 "^demo: done" "$tmp/demo.log" | sed 's/^/# /'

apt-get purge -y -qq trainctl >"$tmp/purge.log" 2>&1 && installed="" &&
	[ ! -e /usr/bin/trainctl ] && [ ! -e /usr/share/trainctl ]
ok $? "apt-get purge trainctl removes it"
