#!/bin/sh
# A short soak (tests/soak/soak.py): each example workflow three times
# under 20 % faults and twice killed with SIGKILL and started again, with
# quicker faults and retries than `make soak`, which runs the full one;
# then three instances of each example, with different arguments, sharing
# the default state file, started together (the concurrent-instances
# phase). The operator and nightly rounds (outages of 30-120 s, nightly.lua
# under --timeout and SIGTERM, yesterday's training adopted) run in
# `make soak`; their cases have specs of their own in tests/reliability
# (outage_spec, process_spec, state_spec), which keeps `make check` short.
exec python3 tests/soak/soak.py --tap --runs 3 --kills 2 --slow-seconds 0.8 \
	--client-timeout 0.5 --retry-after 0.1 --backoff 0.1 --rerun-delay 0.1 \
	--settle 1.5 --operator-rounds 0 --nightly-rounds 0 --instances 3
