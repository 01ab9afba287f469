#!/bin/sh
# C unit tests of the Lua state's allocator (built by `make unit`).
exec "${TRAINCTL_UNIT_DIR:-build/unit}/test_slab"
