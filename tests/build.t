#!/bin/sh
# The first commands on a fresh machine. The packages are not removed
# here: a pkg-config that knows no package until a stand-in for
# scripts/deps.sh has "installed" them plays the fresh machine.
#
# - a plain `make` stops with one line saying to run `make deps`;
# - `make deps all unit` in one make (the file read before deps ran, as on
#   a fresh machine) builds a working binary;
# - every target that installs packages runs deps before it compiles.
cd "$(dirname "$0")/.." || exit 1
unset MAKEFLAGS MFLAGS MAKELEVEL
tmp=$(mktemp -d "${TMPDIR:-/tmp}/trainctl-build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
real_pc=$(command -v pkg-config)

cat >"$tmp/pkg-config" <<EOF
#!/bin/sh
[ -e "$tmp/installed" ] || exit 1
exec "$real_pc" "\$@"
EOF
cat >"$tmp/deps.sh" <<EOF
#!/bin/sh
echo "deps: installing (stand-in) \$*" >&2
touch "$tmp/installed"
EOF
chmod +x "$tmp/pkg-config" "$tmp/deps.sh"

n=0
ok() {
	n=$((n + 1))
	if [ "$1" = 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fi
}
fresh() {
	make --no-print-directory PKG_CONFIG="$tmp/pkg-config" DEPS_SH="$tmp/deps.sh" \
		BUILD="$tmp/build" BIN="$tmp/trainctl" CFLAGS=-O0 "$@"
}

echo "1..8"

fresh all >"$tmp/out" 2>"$tmp/err"
rc=$?
grep -q "build packages missing .*run 'make deps'" "$tmp/err" && [ "$rc" -ne 0 ] &&
	[ "$(wc -l <"$tmp/err")" -eq 1 ] && [ ! -e "$tmp/trainctl" ]
ok $? "make without the packages stops with one line naming 'make deps'"
[ "$rc" -ne 0 ] || cat "$tmp/out" "$tmp/err" | sed 's/^/# /'
sed 's/^/# /' "$tmp/err"

fresh -j2 deps all unit >"$tmp/out" 2>&1
rc=$?
[ "$rc" = 0 ]
ok $? "make deps all unit, read before the packages were there, builds"
[ "$rc" = 0 ] || tail -5 "$tmp/out" | sed 's/^/# /'

"$tmp/trainctl" -e 'assert(#require("trainctl.crypto").sha256("x") == 32) print("built")' \
	>"$tmp/out" 2>&1 && grep -qx built "$tmp/out"
ok $? "the binary built that way runs"

# make -n runs the recursive makes and prints the rest: deps must come
# before the first compile of each target that installs packages.
rm -rf "$tmp/build"
bad=""
for target in check check-asan demo soak valgrind bench fuzz; do
	fresh -n "$target" >"$tmp/plan" 2>&1
	first_deps=$(grep -n "deps.sh" "$tmp/plan" | head -n1 | cut -d: -f1)
	first_cc=$(grep -nE "^(cc|clang|gcc) |^lua5.4 scripts/embed.lua" "$tmp/plan" |
		head -n1 | cut -d: -f1)
	if [ -z "$first_deps" ] || { [ -n "$first_cc" ] && [ "$first_cc" -lt "$first_deps" ]; }; then
		bad="$bad $target"
	fi
done
[ -z "$bad" ]
ok $? "check, check-asan, demo, soak, valgrind, bench and fuzz install packages before compiling${bad:+ (not:$bad)}"

# The README's first block is what a new user types; CI runs exactly it,
# first, on a fresh machine.
readme=$(awk '/^```sh$/ { on = 1; next } on && /^```$/ { exit } on' README.md | sed 's/ *#.*//')
ci=$(.ci/run --print | head -n "$(printf '%s\n' "$readme" | wc -l)")
[ -n "$readme" ] && [ "$readme" = "$ci" ]
ok $? "CI runs the README's first commands first, as written"

printf '%s\n' "$readme" | grep -qx "make demo" && printf '%s\n' "$readme" | grep -qx "make check"
ok $? "the README's first commands are make demo and make check"

# The Debian package builds from what the build needs: every -dev package
# scripts/deps.sh installs is a Build-Depends of debian/control.
devs=$(sed -n '/^PKGS="/,/"$/p' scripts/deps.sh | tr ' "' '\n\n' | grep -- '-dev$' | sort -u)
build_deps=$(sed -n '/^Build-Depends:/,/^[^ ]/p' debian/control | sed 's/^Build-Depends://' |
	tr ',' '\n' | sed 's/^ *//; s/ .*//' | sort -u)
missing=$(printf '%s\n' "$devs" | grep -vxF "$build_deps")
[ -n "$devs" ] && [ -z "$missing" ]
ok $? "debian/control builds with every -dev package of scripts/deps.sh${missing:+ (missing: $(echo $missing))}"

# The layers of docs/architecture.md: nothing in src/core or src/cli
# includes a Lua header, directly or through another header (the
# preprocessor's list of what each file reads, not a grep of its text).
lua_cflags=$("$real_pc" --cflags lua5.4 libcurl openssl libedit)
layered=""
for f in src/core/*.c src/core/*.h src/cli/*.c src/cli/*.h; do
	# shellcheck disable=SC2086
	if ${CC:-cc} -MM -MG -D_GNU_SOURCE -Isrc/core -Isrc/lua -Isrc/cli $lua_cflags "$f" |
		tr ' \\' '\n\n' | grep -qE '(^|/)(lua|lauxlib|lualib|luaconf)\.h$'; then
		layered="$layered $f"
	fi
done
[ -z "$layered" ]
ok $? "src/core and src/cli include no Lua header${layered:+ (do:$layered)}"
