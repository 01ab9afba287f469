#!/bin/sh
# One short round of every benchmark script against nginx on loopback, no
# thresholds: keeps bench/ from rotting. The bench packages (nginx, wrk,
# hyperfine) are installed by `make bench`, not by `make check`.
cd "$(dirname "$0")/.." || exit 1
PATH="$PATH:/usr/sbin:/sbin"
for tool in nginx wrk hyperfine; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		echo "1..0 # SKIP nginx/wrk not installed"
		exit 0
	fi
done
exec bench/run.sh --smoke --tap
