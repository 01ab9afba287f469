#!/bin/sh
# Benchmarks of trainctl against real peers on loopback (see
# docs/performance.md). Starts nginx on a free port, serving the recorded
# AiTEMS answers in bench/responses and a large file made here, runs
# bench/driver.py, and stops nginx on exit.
#
#   bench/run.sh                 every figure, several rounds; writes bench/results.json
#   bench/run.sh --smoke         one short round of every script, no thresholds
#   bench/run.sh --smoke --tap   the same as TAP, for make check
#   bench/run.sh --only sequential,concurrent [--rounds N]
#   bench/run.sh --serve         only the server, until Ctrl-C (for profiling)
#
# TRAINCTL names the binary (default ./trainctl); BENCH_OUT_DIR where the
# downloads go (default /dev/shm when it has room, so that the disk does
# not decide the download figure).
set -eu
cd "$(dirname "$0")/.."
PATH="$PATH:/usr/sbin:/sbin"

smoke="" tap="" pass="" serve=""
while [ $# -gt 0 ]; do
	case "$1" in
	--smoke) smoke=--smoke ;;
	--serve) serve=1 ;;
	--tap) tap=--tap ;;
	--only | --rounds) pass="$pass $1 $2"; shift ;;
	*) echo "usage: bench/run.sh [--smoke] [--tap] [--only FIGURES] [--rounds N] | --serve" >&2; exit 2 ;;
	esac
	shift
done

say() { if [ -n "$tap" ]; then echo "# $*"; else echo "bench: $*" >&2; fi; }
die() {
	if [ -n "$tap" ]; then echo "Bail out! $*"; else echo "bench: $*" >&2; fi
	exit 1
}

for tool in nginx wrk hyperfine curl python3 lua5.4; do
	command -v "$tool" >/dev/null 2>&1 || die "$tool is not installed (./scripts/deps.sh --bench)"
done
trainctl=$(realpath "${TRAINCTL:-./trainctl}")
[ -x "$trainctl" ] || die "no $trainctl; run make first"

work=$(mktemp -d "${TMPDIR:-/tmp}/trainctl-bench.XXXXXX")
out_dir="" nginx_pid=""
cleanup() {
	if [ -n "$nginx_pid" ]; then
		kill "$nginx_pid" 2>/dev/null || true
		wait "$nginx_pid" 2>/dev/null || true
	fi
	[ -n "$out_dir" ] && rm -rf "$out_dir"
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# nginx's workers may run as another user: everything they read is made
# readable.
mkdir -p "$work/www" "$work/tmp" "$work/state" "$work/config"
cp bench/responses/*.json "$work/www/"
if [ -n "$smoke" ]; then size=16M; else size=1G; fi
# Sparse: costs neither time nor disk, and nginx reads it like any file.
truncate -s "$size" "$work/www/result.bin"
chmod -R a+rX "$work"

out_dir=$(mktemp -d "${BENCH_OUT_DIR:-/dev/shm}/trainctl-bench-out.XXXXXX" 2>/dev/null) || out_dir=""
if [ -n "$out_dir" ] && [ "$(df -Pk "$out_dir" | awk 'NR==2 {print $4}')" -lt 2621440 ]; then
	rm -rf "$out_dir"
	out_dir=""
fi
[ -n "$out_dir" ] || out_dir=$(mktemp -d "$work/out.XXXXXX")

# The scaling figure holds 16,384 connections at once, and nginx and the
# client one descriptor each per connection: the limit is raised to the
# hard limit where it is lower, and the levels it cannot hold are left
# out (driver.py, BENCH_NOFILE).
# shellcheck disable=SC3045 # dash, bash and busybox sh all have it
if [ "$(ulimit -n)" != unlimited ]; then
	hard=$(ulimit -Hn)
	[ "$hard" = unlimited ] && hard=65536
	[ "$hard" -gt 65536 ] && hard=65536
	[ "$(ulimit -n)" -lt "$hard" ] && ulimit -n "$hard" 2>/dev/null || true
fi
# shellcheck disable=SC3045
nofile=$(ulimit -n)
[ "$nofile" = unlimited ] && nofile=65536
conns=$((nofile - 64))
[ "$conns" -gt 65536 ] && conns=65536
export BENCH_NOFILE="$nofile"

# The libcurl floor (bench/curl_floor.c); the figures that use it are
# left out when it does not build. Its lua-cjson mode is built in where
# Lua and lua-cjson are (as for trainctl), with trainctl's allocator.
floor=""
curl_cflags=$(pkg-config --cflags libcurl 2>/dev/null || true)
curl_libs=$(pkg-config --libs libcurl 2>/dev/null || echo -lcurl)
cjson_lib=""
for f in /usr/lib/*/liblua5.4-cjson.a /usr/lib/liblua5.4-cjson.a /usr/local/lib/liblua5.4-cjson.a; do
	[ -f "$f" ] && cjson_lib=$f && break
done
if [ -n "$cjson_lib" ] && pkg-config --exists lua5.4 libcrypto; then
	curl_cflags="$curl_cflags -DFLOOR_CJSON -Isrc/core $(pkg-config --cflags lua5.4 libcrypto)"
	curl_libs="src/core/slab.c $cjson_lib $curl_libs $(pkg-config --libs lua5.4 libcrypto) -lm"
fi
# shellcheck disable=SC2086 # flags are lists of words
if ${CC:-cc} -std=c11 -O2 -Wall -Wextra $curl_cflags -o "$work/curl_floor" \
	bench/curl_floor.c $curl_libs 2>"$work/cc.log"; then
	floor="--curl-floor $work/curl_floor"
	case $curl_cflags in *-DFLOOR_CJSON*) floor="$floor --floor-cjson" ;; esac
else
	say "bench/curl_floor.c did not build: $(cat "$work/cc.log")"
fi

free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# A free port can be taken between the probe and nginx's bind: try again.
tries=0
while :; do
	port=$(free_port)
	sed -e "s|@DIR@|$work|g" -e "s|@PORT@|$port|g" -e "s|@NOFILE@|$nofile|g" \
		-e "s|@CONNS@|$conns|g" bench/nginx.conf.in >"$work/nginx.conf"
	rm -f "$work/nginx.pid"
	nginx -p "$work" -c "$work/nginx.conf" -g 'daemon off;' >"$work/nginx.out" 2>&1 &
	nginx_pid=$!
	i=0
	while [ $i -lt 50 ] && ! curl -sf -o /dev/null "http://127.0.0.1:$port/api/v1/services/abc/trains"; do
		kill -0 "$nginx_pid" 2>/dev/null || break
		sleep 0.1
		i=$((i + 1))
	done
	if curl -sf -o /dev/null "http://127.0.0.1:$port/api/v1/services/abc/trains"; then
		break
	fi
	kill "$nginx_pid" 2>/dev/null || true
	wait "$nginx_pid" 2>/dev/null || true
	nginx_pid=""
	tries=$((tries + 1))
	[ $tries -lt 5 ] || die "nginx did not start: $(cat "$work/nginx.out" "$work/error.log" 2>/dev/null)"
done
say "nginx on 127.0.0.1:$port; downloads to $out_dir"
if [ -n "$serve" ]; then
	echo "BENCH_BASE=http://127.0.0.1:$port; the 1 GiB file is /files/result.bin; Ctrl-C stops"
	wait "$nginx_pid"
	exit 0
fi

results=""
[ -z "$smoke" ] && results="--results bench/results.json"
export BENCH_BASE="http://127.0.0.1:$port"
# shellcheck disable=SC2086
python3 bench/driver.py --trainctl "$trainctl" --work "$work" --out-dir "$out_dir" \
	$floor $smoke $tap $results $pass
