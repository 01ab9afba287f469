#!/bin/sh
# Reliability and security against cloudsim: kill -9 and resume, lost
# answers to creates, full disks, TLS, redaction, bounds on outside input,
# request targets (busted; each spec file starts its own emulator).
TRAINCTL=${TRAINCTL:-./trainctl}
export TRAINCTL
exec "$TRAINCTL" "$(command -v busted)" -o TAP tests/reliability
