#!/usr/bin/env python3
"""Runs a command on a pseudo-terminal, as a person at a terminal would,
and answers its prompts.

Usage: pty_run.py [--answer REGEX TEXT]... -- COMMAND [ARGS...]

Each --answer, in order, waits for REGEX in what the terminal showed so
far (after the previous answer) and then types TEXT and Enter. Prints one
JSON object on stdout: {"code": exit status, "output": what the terminal
showed}. Every wait has a deadline (20 s); nothing sleeps a fixed time.
"""
import json
import os
import pty
import re
import select
import sys
import time


def main(argv):
    answers = []
    i = 0
    while i < len(argv) and argv[i] != "--":
        if argv[i] == "--answer":
            answers.append((re.compile(argv[i + 1].encode()), argv[i + 2].encode()))
            i += 3
        else:
            sys.exit("pty_run.py: unknown option " + argv[i])
    cmd = argv[i + 1:]
    pid, fd = pty.fork()
    if pid == 0:
        os.execvp(cmd[0], cmd)
    buf, seen = b"", 0
    deadline = time.monotonic() + 20
    while True:
        if answers and answers[0][0].search(buf, seen):
            os.write(fd, answers[0][1] + b"\r")
            seen = len(buf)
            answers.pop(0)
        left = deadline - time.monotonic()
        if left <= 0:
            os.kill(pid, 9)
            break
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            continue
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            chunk = b""
        if not chunk:
            break
        buf += chunk
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code < 0:
        code = 128 - code
    print(json.dumps({"code": code, "output": buf.decode("utf-8", "replace")}))


if __name__ == "__main__":
    main(sys.argv[1:])
