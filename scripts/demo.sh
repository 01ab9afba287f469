#!/bin/sh
# make demo: start cloudsim on a free port with the demo credentials and a
# fast clock, run the AiTEMS recommendation workflow against it, show the
# recommendations it produced, stop cloudsim.
set -eu
cd "$(dirname "$0")/.."

work=$(mktemp -d "${TMPDIR:-/tmp}/trainctl-demo.XXXXXX")
sim_pid=""
cleanup() {
	[ -n "$sim_pid" ] && kill "$sim_pid" 2>/dev/null && wait "$sim_pid" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT INT TERM

# The emulator and the client read the same variables.
. scripts/cloudsim/demo.env

python3 scripts/cloudsim --port 0 --speed 600 --seed 7 \
	--data-dir examples/data --port-file "$work/port" >"$work/cloudsim.log" 2>&1 &
sim_pid=$!
i=0
while [ ! -s "$work/port" ]; do
	i=$((i + 1))
	if [ $i -gt 100 ] || ! kill -0 "$sim_pid" 2>/dev/null; then
		echo "demo: cloudsim did not start:" >&2
		cat "$work/cloudsim.log" >&2
		exit 1
	fi
	sleep 0.1
done
port=$(cat "$work/port")
base="http://127.0.0.1:$port"
echo "demo: cloudsim (AiTEMS, OpenSearch, Azure Language emulator) on $base"

export TRAINCTL_AITEMS_ENDPOINT="$base/api/v1"
export TRAINCTL_OPENSEARCH_ENDPOINT="$base"
export AZURE_LANGUAGE_ENDPOINT="$base"
export TRAINCTL_ENTRA_ENDPOINT="$base"
export XDG_STATE_HOME="$work/state"

out="$work/recommendations.jsonl"
./trainctl --state "$work/state.json" examples/aitems_recommend.lua "$out"

echo
echo "demo: recommendations written to $(basename "$out"), first lines:"
head -n 5 "$out"
echo "demo: $(wc -l <"$out") users got recommendations"
