#!/bin/sh
# C unit tests of trainctl.crypto (built by `make unit`).
exec "${TRAINCTL_UNIT_DIR:-build/unit}/test_crypto"
