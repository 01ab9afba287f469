#!/bin/sh
# The busted specs of tests/host (natives, command line), run by the
# binary under test itself, as a user's script would be. The servers are
# on loopback: a proxy from the environment must not come between.
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY no_proxy NO_PROXY
exec "${TRAINCTL:-./trainctl}" "$(command -v busted)" -o TAP tests/host
