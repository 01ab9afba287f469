#!/bin/sh
# The busted specs of tests/host (natives, command line), run by the
# binary under test itself, as a user's script would be.
exec "${TRAINCTL:-./trainctl}" "$(command -v busted)" -o TAP tests/host
