#!/bin/sh
# Several machines: --lock and the state on a real etcd cluster (Debian's
# etcd-server, started by each spec on free loopback ports), two or three
# trainctl "hosts" against cloudsim; bad etcd URLs, credentials and TLS.
# on loopback: a proxy from the environment must not come between.
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY no_proxy NO_PROXY
TRAINCTL=${TRAINCTL:-./trainctl}
export TRAINCTL
if ! command -v etcd >/dev/null 2>&1; then
	echo "1..0 # SKIP etcd-server is not installed (scripts/deps.sh installs it)"
	exit 0
fi
exec "$TRAINCTL" "$(command -v busted)" -o TAP --pattern=_spec tests/etcd
