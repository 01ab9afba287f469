#!/bin/sh
# The provider clients, the examples and `trainctl call` against cloudsim
# (busted; each spec file starts its own emulator on a free port).
TRAINCTL=${TRAINCTL:-./trainctl}
export TRAINCTL
exec "$TRAINCTL" "$(command -v busted)" -o TAP --pattern=_spec tests/integration
