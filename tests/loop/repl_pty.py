#!/usr/bin/env python3
"""The REPL of trainctl in a pseudo-terminal, as a person uses it:
a line that spawns tasks and joins them prints the result; Ctrl-C while
100 tasks sleep 30 s each returns to the prompt, none of them woken, and the
REPL works afterwards.

Usage: repl_pty.py TRAINCTL. Prints one line per check; exits 0 when
every check passed, 1 at the first failure (with what the terminal
showed). Every wait has a deadline; nothing sleeps for a fixed time.
"""
import os
import pty
import re
import select
import shutil
import signal
import sys
import tempfile
import termios
import time

PROMPT = re.compile(rb"(^|\n)> $")


class Repl:
    def __init__(self, binary):
        self.home = tempfile.mkdtemp(prefix="trainctl-loop.")
        env = dict(os.environ, HOME=self.home, XDG_STATE_HOME=self.home, TERM="dumb")
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            os.execve(binary, [binary], env)
        self.buf = b""

    def read_until(self, pattern, seconds):
        """Reads until `pattern` matches the output since the last call;
        returns the time it took, or raises with what was seen."""
        start = time.monotonic()
        deadline = start + seconds
        while True:
            m = pattern.search(self.buf)
            if m:
                seen, self.buf = self.buf[:m.end()], self.buf[m.end():]
                self.last = seen
                return time.monotonic() - start
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("waited %.1f s for %r; the terminal showed:\n%s"
                                     % (seconds, pattern.pattern, self.buf.decode(errors="replace")))
            r, _, _ = select.select([self.fd], [], [], left)
            if r:
                try:
                    chunk = os.read(self.fd, 65536)
                except OSError:
                    chunk = b""
                if not chunk:
                    raise AssertionError("the REPL exited; the terminal showed:\n%s"
                                         % self.buf.decode(errors="replace"))
                self.buf += chunk.replace(b"\r\n", b"\n")

    def editing(self, seconds=5):
        """Waits until libedit has the terminal in raw mode. It draws the
        prompt first and switches modes after: a key typed in between
        meets the cooked line discipline, where ^D is an end-of-file that
        libedit then reads as a NUL."""
        deadline = time.monotonic() + seconds
        while termios.tcgetattr(self.fd)[3] & termios.ICANON:
            if time.monotonic() > deadline:
                raise AssertionError("the terminal never left canonical mode")
            select.select([], [], [], 0.005)

    def line(self, text):
        self.editing()
        os.write(self.fd, text.encode() + b"\n")

    def close(self):
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        shutil.rmtree(self.home, ignore_errors=True)


def proc_state(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            state = f.read().split(")")[-1].split()[0]
        with open("/proc/%d/wchan" % pid) as f:
            return "state %s in %s" % (state, f.read())
    except OSError as e:
        return str(e)


def check(name, fn):
    fn()
    print("ok - " + name, flush=True)


def main():
    repl = Repl(sys.argv[1])
    try:
        check("the REPL prompts", lambda: repl.read_until(PROMPT, 10))
        repl.line('task = require "trainctl.task"')
        repl.read_until(PROMPT, 5)

        def spawn_and_join():
            repl.line('a = task.spawn(function() task.sleep(0.05) return 6 * 7 end)')
            repl.read_until(PROMPT, 5)
            repl.line('b = task.spawn(function() return "x" end) '
                      'c = task.spawn(function() task.sleep(0.01) return "y" end)')
            repl.read_until(PROMPT, 5)
            repl.line('a:join() .. c:join() .. b:join()')
            repl.read_until(re.compile(rb"42yx.*\n> $", re.S), 5)

        check("a line that spawns tasks and joins them prints the result", spawn_and_join)

        def map_in_a_line():
            repl.line('table.concat(task.map({1, 2, 3}, function(x) task.sleep(0.01) '
                      'return x * 11 end), ",")')
            repl.read_until(re.compile(rb"11,22,33.*\n> $", re.S), 5)

        check("task.map in a line prints its results in order", map_in_a_line)

        def ctrl_c():
            repl.line('started = 0 for i = 1, 100 do task.spawn(function() started = started + 1 '
                      'task.sleep(30) woke = true end) end while started < 100 do task.yield() end '
                      'print("sleeping: " .. started)')
            repl.read_until(re.compile(rb"sleeping: 100\n"), 5)
            os.write(repl.fd, b"\x03")
            repl.read_until(PROMPT, 3)
            if b"interrupted" not in repl.last:
                raise AssertionError("no 'interrupted' message:\n%s" % repl.last.decode(errors="replace"))
            # The sleeps were stopped, not waited out: none of them woke.
            repl.line('print(woke)')
            repl.read_until(re.compile(rb"\nnil\n> $"), 5)

        check("Ctrl-C with 100 tasks sleeping 30 s returns to the prompt within a second", ctrl_c)

        def works_after():
            repl.line('task.count()')
            repl.read_until(re.compile(rb"\n1\n> $"), 5)  # the line's own task only
            repl.line('task.spawn(function() task.sleep(0.02) return "after" .. "wards" end):join()')
            repl.read_until(re.compile(rb"afterwards.*\n> $", re.S), 5)
            # ... and it is gone once joined
            repl.line('task.count()')
            repl.read_until(re.compile(rb"\n1\n> $"), 5)
            repl.line('1 + 1')
            repl.read_until(re.compile(rb"\n2\n> $"), 5)

        check("after Ctrl-C no task is left and the REPL still runs tasks", works_after)

        def second_ctrl_c():
            # the first __close handler says when the clean-up has begun;
            # a second Ctrl-C then lands in it
            repl.line('closed, started = 0, 0 for i = 1, 200 do task.spawn(function() '
                      'local _ <close> = setmetatable({}, {__close = function() '
                      'if closed == 0 then io.write("clean-up begins\\n") io.flush() end '
                      'local x = 0 for j = 1, 100000 do x = x + j end closed = closed + 1 end}) '
                      'started = started + 1 task.sleep(30) end) end '
                      'while started < 200 do task.yield() end print("sleeping: " .. started)')
            repl.read_until(re.compile(rb"sleeping: 200\n"), 5)
            os.write(repl.fd, b"\x03")
            repl.read_until(re.compile(rb"clean-up begins\n"), 5)
            os.write(repl.fd, b"\x03")
            repl.read_until(PROMPT, 10)
            repl.line('closed .. " closed, " .. task.count() .. " live"')
            repl.read_until(re.compile(rb"200 closed, 1 live.*\n> $", re.S), 5)
            repl.line('task.spawn(function() task.sleep(0.01) return "still" .. " working" end):join()')
            repl.read_until(re.compile(rb"still working.*\n> $", re.S), 5)

        check("a second Ctrl-C during the clean-up: every task closed, the REPL works",
              second_ctrl_c)

        def unjoined():
            repl.line('task.spawn(function() error("lost " .. "work") end)')
            repl.read_until(re.compile(rb"nobody joined.*lost work.*\n> $", re.S), 5)

        check("an error in a task nobody joined is reported at the end of the line", unjoined)

        def eof():
            repl.editing()
            os.write(repl.fd, b"\x04")
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                pid, status = os.waitpid(repl.pid, os.WNOHANG)
                if pid:
                    if os.waitstatus_to_exitcode(status) != 0:
                        raise AssertionError("exit status %d" % os.waitstatus_to_exitcode(status))
                    return
                r, _, _ = select.select([repl.fd], [], [], 0.05)
                if r:
                    try:
                        repl.buf += os.read(repl.fd, 65536)
                    except OSError:
                        pass
            raise AssertionError("Ctrl-D did not end the REPL (%s); the terminal showed:\n%s"
                                 % (proc_state(repl.pid), repl.buf.decode(errors="replace")))

        check("Ctrl-D ends the REPL with status 0", eof)
    except Exception as e:  # noqa: BLE001 - any failure is reported the same way
        print("not ok - %s: %s" % (type(e).__name__, e), flush=True)
        return 1
    finally:
        repl.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
