#!/bin/sh
# C unit tests of loading libcurl and libcrypto on threads (built by `make unit`).
exec "${TRAINCTL_UNIT_DIR:-build/unit}/test_preload"
