#!/bin/sh
# Fuzzing regressions (busted), and a replay of the seed corpus through the
# libFuzzer targets when clang's fuzzer runtime is installed (make fuzz).
TRAINCTL=${TRAINCTL:-./trainctl}
exec "$TRAINCTL" "$(command -v busted)" -o TAP tests/fuzz/regress_spec.lua
