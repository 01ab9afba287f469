#!/bin/sh
# Several machines: --lock and the state on a real etcd cluster (Debian's
# etcd-server, started by each spec on free loopback ports), two or three
# trainctl "hosts" against cloudsim; bad etcd URLs, credentials and TLS.
TRAINCTL=${TRAINCTL:-./trainctl}
export TRAINCTL
if ! command -v etcd >/dev/null 2>&1; then
	echo "1..0 # SKIP etcd-server is not installed (scripts/deps.sh installs it)"
	exit 0
fi
exec "$TRAINCTL" "$(command -v busted)" -o TAP --pattern=_spec tests/etcd
