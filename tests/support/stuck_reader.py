"""Runs a command with its stdout into a pipe that nobody reads until the
command has ended, as a reader that stopped reading: the command's last
writes block on the full pipe. Prints "STATUS BYTES" (the exit status and
how many bytes the pipe held), or "hung BYTES" when the command did not
end within 30 s of the stop (it is then killed).

  stuck_reader.py [--pipe-size N] [--stderr FILE | --stderr-too]
                  [--signal NAME] -- COMMAND...

--pipe-size   the pipe's capacity (F_SETPIPE_SZ); $FILL in the command's
              environment is the capacity the pipe got
--stderr      the command's stderr goes to FILE (default: inherited)
--stderr-too  stderr goes into the same pipe as stdout (2>&1)
--signal      once the command has written "done" on its stderr (FILE)
              and is blocked writing to stdout (its /proc syscall), send
              this signal; without it, the command stops on its own
              (--timeout)
Linux only (F_SETPIPE_SZ, /proc/PID/syscall). Standard library only.
"""
import argparse
import fcntl
import os
import signal
import subprocess
import sys
import time

# The write system call, by machine: x86-64, then arm64 and the others
# that use the generic table.
WRITE = {"1", "64"}


def blocked_on_stdout(pid):
    try:
        with open("/proc/%d/syscall" % pid) as f:
            words = f.read().split()
    except OSError:
        return False
    return len(words) > 1 and words[0] in WRITE and words[1] == "0x1"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pipe-size", type=int)
    ap.add_argument("--stderr")
    ap.add_argument("--stderr-too", action="store_true")
    ap.add_argument("--signal")
    ap.add_argument("command", nargs=argparse.REMAINDER)
    o = ap.parse_args()
    cmd = o.command[1:] if o.command[:1] == ["--"] else o.command

    r, w = os.pipe()
    if o.pipe_size:
        fcntl.fcntl(w, fcntl.F_SETPIPE_SZ, o.pipe_size)
    size = fcntl.fcntl(w, fcntl.F_GETPIPE_SZ)
    err = w if o.stderr_too else (open(o.stderr, "wb") if o.stderr else None)
    p = subprocess.Popen(cmd, stdout=w, stderr=err, env=dict(os.environ, FILL=str(size)))
    os.close(w)

    if o.signal:
        def ready():
            with open(o.stderr, "rb") as f:
                return f.read().endswith(b"done\n") and blocked_on_stdout(p.pid)
        t0 = time.monotonic()
        while p.poll() is None and not ready() and time.monotonic() - t0 < 20:
            time.sleep(0.005)
        p.send_signal(getattr(signal, o.signal))
    # Nothing is read before the command ends: a reader making room could
    # let the blocked write finish before the stop reaches it.
    try:
        status = p.wait(timeout=30)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        status = "hung"
    n = 0
    while True:
        b = os.read(r, 65536)
        if not b:
            break
        n += len(b)
    print(status, n)


if __name__ == "__main__":
    sys.exit(main())
