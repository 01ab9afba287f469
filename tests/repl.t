#!/bin/sh
# The REPL on a pseudo-terminal (python3 pty), honouring $TRAINCTL.
exec python3 tests/repl/test_repl.py
