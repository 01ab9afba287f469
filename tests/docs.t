#!/bin/sh
# The man page agrees with --help and with the environment variables the
# code reads (busted, run by the binary under test).
exec "${TRAINCTL:-./trainctl}" "$(command -v busted)" -o TAP tests/docs
