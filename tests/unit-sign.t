#!/bin/sh
# C unit tests of trainctl.sign (built by `make unit`).
exec "${TRAINCTL_UNIT_DIR:-build/unit}/test_sign"
