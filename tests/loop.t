#!/bin/sh
# The event loop (trainctl.task): busted specs run by trainctl itself, so
# each spec is the main task of a real run; the REPL is driven in a
# pseudo-terminal. 1,000 concurrent connections need more descriptors
# than some environments give by default.
ulimit -n 4096 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null
exec "${TRAINCTL:-./trainctl}" "$(command -v busted)" -o TAP tests/loop
