#!/bin/sh
# Unit specs of the Lua library (busted, no network).
TRAINCTL=${TRAINCTL:-./trainctl}
exec "$TRAINCTL" "$(command -v busted)" -o TAP tests/lua
