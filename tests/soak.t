#!/bin/sh
# A short soak (tests/soak/soak.py): each example workflow three times
# under 20 % faults and twice killed with SIGKILL and started again, with
# quicker faults and retries than `make soak`, which runs the full one;
# then one operator round, the emulator down for 8-12 s while the three
# wait for their trainings (30-120 s, three rounds, in the full one), one
# round of examples/nightly.lua: --timeout, yesterday's training adopted,
# SIGTERM, an outage of 8-12 s (30-120 s, three rounds, in full), and three
# instances of each example, with different arguments, sharing the default
# state file, started together (the concurrent-instances phase).
exec python3 tests/soak/soak.py --tap --runs 3 --kills 2 --slow-seconds 0.8 \
	--client-timeout 0.5 --retry-after 0.1 --backoff 0.1 --rerun-delay 0.1 \
	--settle 1.5 --operator-rounds 1 --outage 8-12 \
	--nightly-rounds 1 --nightly-outage 8-12 --instances 3
