#!/bin/sh
# make demo: start cloudsim on a free port with the demo credentials and a
# fast clock, run one workflow on each cloud against it (AiTEMS
# recommendations, an OpenSearch CTR model, an Azure AI Language text
# classifier), print a short summary of each, stop cloudsim.
#
# The outputs stay in DEMO_OUTPUT (default ./demo-output); the state files
# and the port file are thrown away with the emulator they belong to.
# TRAINCTL and DEMO_EXAMPLES name another binary and examples directory
# (an installed trainctl and its share/trainctl/examples).
set -eu
cd "$(dirname "$0")/.."
TRAINCTL=${TRAINCTL:-./trainctl}
out=${DEMO_OUTPUT:-demo-output}
examples=${DEMO_EXAMPLES:-examples}

mkdir -p "$out"
rm -f "$out/recommendations.jsonl" "$out/ctr_metrics.json" \
	"$out/textclass_evaluation.json" "$out/classified.jsonl"
work=$(mktemp -d "${TMPDIR:-/tmp}/trainctl-demo.XXXXXX")
sim_pid=""
cleanup() {
	[ -n "$sim_pid" ] && kill "$sim_pid" 2>/dev/null && wait "$sim_pid" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

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
base="http://127.0.0.1:$(cat "$work/port")"
echo "demo: cloudsim (AiTEMS, OpenSearch, Azure Language emulator) on $base"

export TRAINCTL_AITEMS_ENDPOINT="$base/api/v1"
export TRAINCTL_OPENSEARCH_ENDPOINT="$base"
export AZURE_LANGUAGE_ENDPOINT="$base"
export TRAINCTL_ENTRA_ENDPOINT="$base"
export XDG_STATE_HOME="$work/state"
# The emulator's clock runs 600 times fast: no need to wait 5 s between polls.
export TRAINCTL_POLL_INTERVAL=0.5

# summary FILE LUA: run LUA with `doc` (FILE as JSON) or `lines` (FILE as
# JSON Lines, decoded) and print what it returns.
summary() {
	DEMO_FILE=$1 DEMO_SUMMARY=$2 "$TRAINCTL" -e '
		local json = require("trainctl.json")
		local f = assert(io.open(os.getenv("DEMO_FILE")))
		local text = f:read("a")
		f:close()
		local doc = json.decode(text)
		local lines = {}
		if doc == nil then
			for l in text:gmatch("[^\n]+") do lines[#lines + 1] = json.decode(l) end
			doc = lines[1]
		end
		print((assert(load(os.getenv("DEMO_SUMMARY"), "summary", "t", setmetatable({ doc = doc, lines = lines },
			{ __index = _G })))()))'
}

echo
echo "demo: 1/3 AiTEMS: schemas, datasets, a batch service, training, recommendations"
"$TRAINCTL" --state "$work/aitems.json" "$examples"/aitems_recommend.lua "$out/recommendations.jsonl"

echo
echo "demo: 2/3 OpenSearch: a CTR model trained and made the function's default"
"$TRAINCTL" --state "$work/opensearch.json" "$examples"/opensearch_ctr.lua ctr_demo >"$out/ctr_metrics.json"

echo
echo "demo: 3/3 Azure AI Language: a text classifier trained, deployed, classifying an inbox"
"$TRAINCTL" --state "$work/azure.json" "$examples"/azure_textclass.lua "$examples"/data/textclass_inbox \
	"$out/classified.jsonl" >"$out/textclass_evaluation.json"

echo
echo "demo: done; outputs in $out/:"
summary "$out/recommendations.jsonl" 'return ("  recommendations.jsonl      %d users; %s: %s"):format(#lines,
	doc.user_id, table.concat(doc.items, " ", 1, math.min(5, #doc.items)) .. " ...")'
summary "$out/ctr_metrics.json" 'local keys = {}
	for k, v in pairs(doc.metrics) do
		if type(v) ~= "table" then keys[#keys + 1] = ("%s=%s"):format(k, v) end
	end
	table.sort(keys)
	return ("  ctr_metrics.json           instance %s: %s"):format(doc.instance, table.concat(keys, " "))'
summary "$out/textclass_evaluation.json" 'return ("  textclass_evaluation.json  project %s, model %s: microF1 %s"):format(
	doc.project, doc.model, doc.microF1)'
summary "$out/classified.jsonl" 'local n, counts, names = #lines, {}, {}
	for _, r in ipairs(lines) do
		if not counts[r.class] then names[#names + 1] = r.class end
		counts[r.class] = (counts[r.class] or 0) + 1
	end
	table.sort(names)
	for i, c in ipairs(names) do names[i] = ("%s %d"):format(c, counts[c]) end
	return ("  classified.jsonl           %d files: %s"):format(n, table.concat(names, ", "))'
