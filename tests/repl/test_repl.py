#!/usr/bin/env python3
"""The REPL as a user meets it: trainctl on a pseudo-terminal, typed at,
its screen read back. Prints TAP.

Every wait is a deadline on the output (the test goes on as soon as the
expected text appears), never a fixed sleep.
"""
import fcntl
import os
import pty
import re
import select
import shutil
import signal
import stat
import struct
import subprocess
import sys
import tempfile
import termios
import time

TRAINCTL = os.path.abspath(os.environ.get("TRAINCTL", "./trainctl"))
HERE = os.path.dirname(os.path.abspath(__file__))
SERVER = os.path.join(HERE, "..", "support", "http_server.py")
PROMPT = rb"(?:^|(?<=\n))> "  # at the start of a line

UP = b"\x1b[A"
CTRL_C = b"\x03"
CTRL_D = b"\x04"

# Deadlines, not delays: a wait ends as soon as its text appears, so a
# long one costs nothing on an idle machine and spares a loaded one.
WAIT = 15.0


class Timeout(Exception):
    pass


class Repl:
    """trainctl with no script, on a terminal of its own."""

    def __init__(self, env):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            try:
                os.execve(TRAINCTL, [TRAINCTL], env)
            finally:
                os._exit(127)
        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 200, 0, 0))
        self.out = b""
        self.mark = 0
        self.status = None

    def _read(self, until):
        r, _, _ = select.select([self.fd], [], [], max(0.0, until - time.monotonic()))
        if not r:
            return False
        try:
            data = os.read(self.fd, 65536)
        except OSError:  # EIO: the child has gone
            data = b""
        if not data:
            raise Timeout("the REPL closed its terminal")
        self.out += data
        return True

    def expect(self, pattern, timeout=WAIT):
        """Waits for `pattern` (a regex) in the output after the last
        match; returns the match."""
        rx = re.compile(pattern, re.S)
        until = time.monotonic() + timeout
        while True:
            m = rx.search(self.out, self.mark)
            if m:
                self.mark = m.end()
                return m
            if time.monotonic() >= until:
                raise Timeout("no %r in %r" % (pattern, self.out[self.mark:][-300:]))
            self._read(until)

    def prompt(self, pattern=PROMPT, timeout=WAIT):
        """Waits for a prompt, then until line editing has the terminal
        (canonical mode off): from then on, what is typed is libedit's."""
        m = self.expect(pattern, timeout)
        until = time.monotonic() + timeout
        while termios.tcgetattr(self.fd)[3] & termios.ICANON:
            if time.monotonic() >= until:
                raise Timeout("the terminal never left canonical mode")
            time.sleep(0.005)
        return m

    def send(self, data):
        os.write(self.fd, data)

    def line(self, text):
        self.send(text.encode() + b"\r")

    def alive(self):
        return os.waitpid(self.pid, os.WNOHANG) == (0, 0)

    def wait(self, timeout=WAIT):
        until = time.monotonic() + timeout
        while time.monotonic() < until:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.status = os.waitstatus_to_exitcode(status)
                return self.status
            try:
                self._read(min(until, time.monotonic() + 0.05))
            except Timeout:
                pass
        raise Timeout("the REPL did not exit; its screen ends %r" % self.out[-200:])

    def close(self):
        if self.status is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
            except OSError:
                pass
        os.close(self.fd)


class Suite:
    def __init__(self):
        self.n = 0
        self.failed = 0
        self.tmp = tempfile.mkdtemp(prefix="trainctl-repl-")

    def env(self, **extra):
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("TRAINCTL_", "LUA_INIT", "XDG_"))
               and not k.lower().endswith("_proxy")}
        env.update(TERM="xterm", HOME=os.path.join(self.tmp, "home"),
                   XDG_STATE_HOME=os.path.join(self.tmp, "state"))
        env.update(extra)
        return {k: v for k, v in env.items() if v is not None}

    def test(self, name):
        def run(fn):
            self.n += 1
            repl = None
            try:
                repl = Repl(self.env())
                repl.prompt()
                fn(self, repl)
                print("ok %d - %s" % (self.n, name))
            except Exception as e:  # a failed check or a timeout
                self.failed += 1
                print("not ok %d - %s" % (self.n, name))
                for line in ("%s: %s" % (type(e).__name__, e)).splitlines():
                    print("#   " + line)
            finally:
                if repl:
                    repl.close()
            sys.stdout.flush()
            return fn
        return run

    def check(self, cond, what):
        if not cond:
            raise AssertionError(what)


suite = Suite()
t = suite.test


@t("an expression prints its value: 1+1 prints 2")
def _(s, r):
    r.line("1+1")
    r.expect(rb"\r\n2\r\n")
    r.prompt()


@t("all results of an expression list are printed")
def _(s, r):
    r.line("string.rep('ab', 2), 40 + 2")
    r.expect(rb"abab.*\t42\r\n")


@t("a statement runs; its global is visible on the next line")
def _(s, r):
    r.line("x = 6 * 7")
    r.prompt()
    r.line("x")
    r.expect(rb"\r\n42\r\n")


@t("multi-line input: function f() ... end, with the continuation prompt")
def _(s, r):
    r.line("function f()")
    r.prompt(rb">> ")
    r.line("  return 6 * 7")
    r.prompt(rb">> ")
    r.line("end")
    r.prompt()
    r.line("f()")
    r.expect(rb"\r\n42\r\n")


@t("=expr prints the value of expr, as in lua5.4 (also across lines)")
def _(s, r):
    r.line("=1+2")
    r.expect(rb"\r\n3\r\n")
    r.prompt()
    r.line("=math.max(4,")
    r.prompt(rb">> ")
    r.line("5)")
    r.expect(rb"\r\n5\r\n")
    r.prompt()
    s.check(b"syntax error" not in r.out, "no syntax error: %r" % r.out[-200:])


@t("_PROMPT and _PROMPT2 change the prompts")
def _(s, r):
    r.line('_PROMPT = "tc" .. "> "; _PROMPT2 = "tc" .. ">> "')
    r.prompt(rb"\ntc> ")
    r.line("do")
    r.prompt(rb"\ntc>> ")
    r.line("end")
    r.prompt(rb"\ntc> ")


@t("a nested table is pretty-printed with sorted keys, strings quoted")
def _(s, r):
    r.line('{zeta = 1, alpha = {delta = "d", beta = 2}, mid = "m"}')
    out = r.expect(rb"\r\n([^\r\n]*zeta[^\r\n]*)\r\n").group(1)
    order = [out.find(k) for k in (b"alpha", b"mid", b"zeta")]
    s.check(-1 not in order and order == sorted(order), "top-level keys sorted: %r" % out)
    inner = [out.find(k) for k in (b"beta", b"delta")]
    s.check(-1 not in inner and inner == sorted(inner), "nested keys sorted: %r" % out)
    s.check(b'"m"' in out and b'"d"' in out, "strings quoted: %r" % out)


@t("a table that contains itself is printed, cycle marked")
def _(s, r):
    r.line("t = {name = 'loop'}; t.self = t")
    r.prompt()
    r.line("t")
    r.expect(rb"loop.*\r\n")
    r.prompt()
    s.check(r.alive(), "still running")


@t("an error is reported, then the REPL goes on")
def _(s, r):
    r.line('error("bo" .. "om")')
    r.expect(rb"boom")
    r.prompt()
    r.line("1+1")
    r.expect(rb"\r\n2\r\n")


@t("a syntax error is reported, then the REPL goes on")
def _(s, r):
    r.line("1 +* 2")
    r.expect(rb"syntax error|unexpected symbol")
    r.prompt()
    r.line("2+2")
    r.expect(rb"\r\n4\r\n")


@t("Ctrl-C during sys.sleep(30) returns to the prompt within a second")
def _(s, r):
    r.line('print("sleep" .. "ing"); require"trainctl.sys".sleep(30)')
    r.expect(rb"\r\nsleeping\r\n")
    start = time.monotonic()
    r.send(CTRL_C)
    r.prompt(rb"interrupted.*" + PROMPT)
    elapsed = time.monotonic() - start
    s.check(elapsed < 1.0, "back at the prompt after %.2f s" % elapsed)
    s.check(r.alive(), "still running")
    r.line('print("al" .. "ive")')
    r.expect(rb"\r\nalive\r\n")


@t("Ctrl-C during a Lua loop returns to the prompt")
def _(s, r):
    r.line('print("spin" .. "ning"); while true do end')
    r.expect(rb"\r\nspinning\r\n")
    start = time.monotonic()
    r.send(CTRL_C)
    r.prompt(rb"interrupted.*" + PROMPT)
    s.check(time.monotonic() - start < 1.0, "back within a second")
    r.line("3+3")
    r.expect(rb"\r\n6\r\n")


@t("Ctrl-C during an HTTP request that gets no answer returns to the prompt")
def _(s, r):
    server = subprocess.Popen([sys.executable, SERVER], stdout=subprocess.PIPE)
    try:
        port = server.stdout.readline().split()[0].decode()
        r.line('print("wait" .. "ing"); require"trainctl._http".request{url = '
               '"http://127.0.0.1:%s/hang"}' % port)
        r.expect(rb"\r\nwaiting\r\n")
        start = time.monotonic()
        r.send(CTRL_C)
        r.prompt()
        s.check(time.monotonic() - start < 1.0, "back within a second")
        r.line("4+4")
        r.expect(rb"\r\n8\r\n")
    finally:
        server.kill()
        server.wait()


@t("Ctrl-C at the prompt drops the line typed so far and prompts again")
def _(s, r):
    r.send(b"error('not run')")
    r.expect(rb"not run'\)")
    r.send(CTRL_C)
    r.prompt()
    r.line("5+5")
    r.expect(rb"\r\n10\r\n")
    s.check(b"trainctl: " not in r.out, "the dropped line did not run")


@t("Ctrl-C in a continuation line drops the unfinished chunk")
def _(s, r):
    r.line("function g()")
    r.prompt(rb">> ")
    r.send(CTRL_C)
    r.prompt()
    r.line("type(g)")
    r.expect(rb'\r\n"nil"\r\n')


@t("a child of os.execute reads the terminal (it stays in the foreground group)")
def _(s, r):
    r.line('print(os.execute("read x; echo got $x"))')
    r.expect(rb"\r\n")
    r.line("hello")
    r.expect(rb"got hello\r\ntrue\texit\t0\r\n")
    r.prompt()


@t("Ctrl-C during os.execute ends the child, says interrupted! and prompts again")
def _(s, r):
    r.line('os.execute("echo started; exec sleep 600.25")')
    r.expect(rb"\r\nstarted\r\n")  # the child's line, not the echo of the typed one
    r.send(CTRL_C)
    r.expect(rb"interrupted!")
    r.prompt()
    ps = subprocess.run(["ps", "-eo", "stat=,args="], capture_output=True, text=True).stdout
    s.check(not [l for l in ps.splitlines() if "sleep 600.25" in l and not l.startswith("Z")],
            "the child still runs")
    r.line("5+5")
    r.expect(rb"\r\n10\r\n")


@t("Tab completes string.fo to string.format")
def _(s, r):
    r.send(b"string.fo\t")
    r.expect(rb"rmat")
    r.line('("%05d", 42)')
    r.expect(rb"00042")


@t("Tab completes a global")
def _(s, r):
    r.line("my_unique_global = 1")
    r.prompt()
    r.send(b"my_uniq\t")
    r.expect(rb"ue_global")
    r.line(" + 1")
    r.expect(rb"\r\n2\r\n")


@t("Tab completes a provider client's methods: ai:list_se -> ai:list_services(")
def _(s, r):
    r.line('ai = require"trainctl.aitems".client{access_key = "k", secret_key = "s"}')
    r.prompt()
    r.send(b"ai:list_se\t")
    r.expect(rb"rvices\(")
    r.send(CTRL_C)  # a request is not wanted; drop the line
    r.prompt()
    s.check(b"trainctl: " not in r.out, "nothing ran: %r" % r.out[-200:])


@t("Ctrl-D at the prompt exits 0")
def _(s, r):
    r.send(CTRL_D)
    s.check(r.wait() == 0, "exit status %s" % r.status)


@t("SIGTERM at the prompt exits 143")
def _(s, r):
    os.kill(r.pid, signal.SIGTERM)
    s.check(r.wait() == 143, "exit status %s" % r.status)


def history_file(env):
    base = env.get("XDG_STATE_HOME") or os.path.join(env["HOME"], ".local", "state")
    return os.path.join(base, "trainctl", "history")


def history_survives(s, env):
    path = history_file(env)
    if os.path.exists(path):
        os.unlink(path)
    first = Repl(env)
    try:
        first.prompt()
        first.line('print("hist" .. "ory ok")')
        first.expect(rb"\r\nhistory ok\r\n")
        first.prompt()
        first.send(CTRL_D)
        s.check(first.wait() == 0, "first session exits 0")
    finally:
        first.close()
    s.check(os.path.exists(path), "history file %s exists" % path)
    mode = stat.S_IMODE(os.stat(path).st_mode)
    s.check(mode == 0o600, "history file mode is %o, not 600" % mode)
    second = Repl(env)
    try:
        second.prompt()
        second.send(UP + b"\r")
        second.expect(rb"\r\nhistory ok\r\n")
        second.prompt()
        second.send(CTRL_D)
        s.check(second.wait() == 0, "second session exits 0")
    finally:
        second.close()


@t("history survives a restart, in $XDG_STATE_HOME/trainctl/history, mode 0600")
def _(s, r):
    r.send(CTRL_D)
    r.wait()
    history_survives(s, s.env())


@t("without XDG_STATE_HOME, history is kept under ~/.local/state")
def _(s, r):
    r.send(CTRL_D)
    r.wait()
    history_survives(s, s.env(XDG_STATE_HOME=None))


VERSION = subprocess.run([TRAINCTL, "--version"], capture_output=True, text=True).stdout.split("\n")[0]


@t("the banner names the version and help(); help() says how to begin")
def _(s, r):
    s.check(VERSION.startswith("trainctl ") and r.out.startswith(VERSION.encode() + b" (Lua 5.4"),
            "banner: %r (version %r)" % (r.out[:80], VERSION))
    s.check(b"help()" in r.out.split(b"\n")[0], "the banner names help(): %r" % r.out[:120])
    r.line("help()")
    r.expect(rb'require\("trainctl.aitems"\).client\(\)')
    r.expect(rb"help\(ai.train\)")
    r.prompt()


@t("help(client) lists its operations; help(client.op) and client.op describe one")
def _(s, r):
    r.line('ai = require"trainctl.aitems".client{access_key = "k", secret_key = "s"}')
    r.prompt()
    r.line("help(ai)")
    r.expect(rb"aitems client operations")
    r.expect(rb"list_services +list services \(offset/limit\)")
    r.prompt()
    r.line("help(ai.train)")
    r.expect(rb"train: POST /services/\{serviceId\}")
    r.expect(rb"types=<array>  \(required, body types\)")
    r.expect(rb"call: aitems:train\(service_id, \{\.\.\.\}\)")
    r.prompt()
    r.line("ai.train")
    r.expect(rb"\r\nfunction aitems.train: request a training \(batch services\); returns a job "
             rb"\(help\(f\) for its parameters\)\r\n")
    r.prompt()
    r.line('help("list_projects")')
    r.expect(rb"azure_language: list_projects: GET /language/authoring")
    r.prompt()
    s.check(b"function: 0x" not in r.out, "no bare function address: %r" % r.out[-300:])


class Cloudsim:
    """The emulator on a free port, for the sessions that call a cloud."""

    def __init__(self, tmp):
        self.dir = tempfile.mkdtemp(prefix="sim-", dir=tmp)
        port_file = os.path.join(self.dir, "port")
        root = os.path.join(HERE, "..", "..")
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(root, "scripts", "cloudsim"), "--port", "0", "--speed", "60",
             "--data-dir", os.path.join(root, "examples", "data"), "--port-file", port_file],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        until = time.monotonic() + 10
        while not (os.path.exists(port_file) and open(port_file).read().strip()):
            if time.monotonic() > until:
                raise Timeout("cloudsim did not start")
            time.sleep(0.02)
        self.url = "http://127.0.0.1:" + open(port_file).read().strip()

    def env(self):
        return dict(TRAINCTL_AITEMS_ENDPOINT=self.url + "/api/v1", TRAINCTL_OPENSEARCH_ENDPOINT=self.url,
                    AZURE_LANGUAGE_ENDPOINT=self.url, NCLOUD_ACCESS_KEY="cloudsim-ncp-access-key",
                    NCLOUD_SECRET_KEY="cloudsim-ncp-secret-key",
                    ALIBABA_CLOUD_ACCESS_KEY_ID="cloudsim-acs-key-id",
                    ALIBABA_CLOUD_ACCESS_KEY_SECRET="cloudsim-acs-key-secret",
                    AZURE_LANGUAGE_KEY="cloudsim-azure-language-key", TRAINCTL_POLL_INTERVAL="0.2")

    def stop(self):
        self.proc.kill()
        self.proc.wait()


def with_cloudsim(name):
    """A test whose REPL has cloudsim's endpoints and credentials."""
    def wrap(fn):
        def run(s, r):
            r.send(CTRL_D)
            r.wait()
            sim = Cloudsim(s.tmp)
            repl = Repl(s.env(**sim.env()))
            try:
                repl.prompt()
                fn(s, repl)
            finally:
                repl.close()
                sim.stop()
        return t(name)(run)
    return wrap


@with_cloudsim("a session that shadows os, string, table, io and math still uses a client")
def _(s, r):
    r.line('ai = require"trainctl.aitems".client()')
    r.prompt()
    r.line("os = nil string = nil table = nil io = nil math = nil utf8 = nil coroutine = nil")
    r.prompt()
    r.line('print(type(ai:list_services().services))')
    r.expect(rb"\r\ntable\r\n")
    r.prompt()
    r.line('ali = require"trainctl.opensearch".client{app_group = "g", function_name = "f"}')
    r.prompt()
    r.line('ali:create_function_instance{instance_name = "repl", model_type = "tf_checkpoint"} '
           'print(ali:create_function_task{instance_name = "repl"}:wait().state)')
    r.expect(rb"\r\nsucceeded\r\n", timeout=30)
    r.prompt()
    s.check(b"attempt to" not in r.out, "no error: %r" % r.out[-400:])


@with_cloudsim("a client call prints its answer alone, not the HTTP response beside it")
def _(s, r):
    r.line('ai = require"trainctl.aitems".client()')
    r.prompt()
    r.line("ai:list_services()")
    shown = r.expect(rb"\r\n([^\r\n]*services[^\r\n]*)\r\n").group(1)
    r.prompt()
    s.check(b"\t" not in shown and b"header_list" not in shown, "one value: %r" % shown)
    s.check(shown.startswith(b"{") and b"offset" in shown, "the answer: %r" % shown)


@with_cloudsim("Ctrl-C during a wait keeps the progress line; interrupted! starts a fresh line")
def _(s, r):
    r.line('ali = require"trainctl.opensearch".client{app_group = "g", function_name = "f"}')
    r.prompt()
    r.line('ali:create_function_instance{instance_name = "slow", model_type = "tf_checkpoint"} '
           'j = ali:create_function_task{instance_name = "slow"}')
    r.prompt()
    r.line("j:wait()")
    r.expect(rb"opensearch training slow: running \d+%", timeout=10)
    r.send(CTRL_C)
    r.expect(rb"interrupted!")
    before, line = r.out[:r.out.rindex(b"interrupted!")].rsplit(b"\n", 1)
    shown = before.rsplit(b"\n", 1)[-1].split(b"\r")  # what the terminal shows of that line
    s.check(b"opensearch training slow: running" in [x for x in shown if x.strip()][-1],
            "the last progress stays on its line: %r" % shown)
    s.check(line == b"trainctl: ", "the message starts its own line: %r" % line)
    r.prompt()
    r.line("1+1")
    r.expect(rb"\r\n2\r\n")


@with_cloudsim("a training that fails during a wait: its error is a line of its own, from column 0")
def _(s, r):
    r.line('ali = require"trainctl.opensearch".client{app_group = "g", function_name = "f"}')
    r.prompt()
    r.line('ali:create_function_instance{instance_name = "will_fail", model_type = "tf_checkpoint"} '
           'j = ali:create_function_task{instance_name = "will_fail"}')
    r.prompt()
    r.line("j:wait()")
    r.expect(rb"opensearch training will_fail: running \d+%", timeout=10)
    r.expect(rb"training_failed[^\n]*\r\n", timeout=30)
    # What the terminal shows of the error's line: the text after the last
    # carriage return, once the erase-line that ended the progress is done.
    line = r.out[:r.mark].rstrip(b"\r\n").rsplit(b"\n", 1)[-1].split(b"\r")[-1]
    line = line.replace(b"\x1b[K", b"")
    s.check(line.startswith(b"trainctl: opensearch: training_failed error (TrainFailed): "
                            b"opensearch training will_fail failed: "),
            "the error alone on its line: %r" % line)
    r.prompt()


print("1..%d" % suite.n)
shutil.rmtree(suite.tmp, ignore_errors=True)
sys.exit(1 if suite.failed else 0)
