#!/bin/sh
# A short multi-host soak (tests/soak/hosts.py): three hosts, three jobs,
# against a 3-member etcd cluster under 20 % faults, holders killed and
# paused past their TTL, one etcd member restarted; 0 duplicate trainings
# and 0 lost results. `make soak-hosts` runs the longer one.
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY no_proxy NO_PROXY
if ! command -v etcd >/dev/null 2>&1; then
	echo "1..0 # SKIP etcd-server is not installed (scripts/deps.sh installs it)"
	exit 0
fi
echo "1..1"
if out=$(python3 tests/soak/hosts.py --jobs 3 2>&1); then
	echo "$out" | sed 's/^/# /'
	echo "ok 1 - three hosts, three jobs: no duplicate training, no lost result"
else
	echo "$out" | sed 's/^/# /'
	echo "not ok 1 - three hosts, three jobs: no duplicate training, no lost result"
fi
