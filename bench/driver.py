"""Runs trainctl's benchmarks against their peers, prints the table and
writes the results as JSON. bench/run.sh starts nginx and calls this;
docs/performance.md explains the figures.

Each figure runs for several rounds; within a round trainctl and its
peers run one after the other, in alternating order from round to round,
so a disturbance on the machine falls on both. A figure is the median of
its rounds. --smoke runs one short round of every script, checks that
each ran and answered correctly, and applies no thresholds; --tap reports
each script run as a TAP line for `make check`.

Standard library only, like the rest of the project's Python.
"""
import argparse
import json
import math
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
LIST = "/api/v1/services/abc/trains?isRecent=true"
MIB = 1024 * 1024


class StepError(Exception):
    pass


# Linux carries the peak RSS of a process image over exec: a program
# started straight from this (much larger) Python process would report
# Python's peak as its own. Started by a shell that forks it, it reports
# its own.
FORK = ["sh", "-c", '"$@"; exit $?', "sh"]


def run(cmd, env=None, timeout=600, fork=False):
    """Runs cmd (a list) to completion: (wall seconds, stdout, rusage).
    fork=True starts it from a shell, for a true peak RSS in the report
    the program makes of itself (the rusage returned is then the shell's).
    A non-zero exit raises StepError with the end of stderr."""
    with tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        p = subprocess.Popen((FORK if fork else []) + cmd, stdout=subprocess.PIPE, stderr=err,
                             env=env, start_new_session=True)
        timer = threading.Timer(timeout, os.killpg, (p.pid, 9))
        timer.start()
        out = p.stdout.read()
        _, status, usage = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
        timer.cancel()
        p.stdout.close()
        p.returncode = os.waitstatus_to_exitcode(status)
        if p.returncode != 0:
            err.seek(0)
            tail = err.read().decode(errors="replace").strip()[-600:]
            raise StepError("%s exited with %d: %s" % (shlex.join(cmd), p.returncode, tail))
        return wall, out.decode(errors="replace"), usage


def last_json(text):
    """The JSON object a bench script prints on its last line."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise StepError("no report on stdout")
    return json.loads(lines[-1])


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


class Bench:
    def __init__(self, opts):
        self.o = opts
        self.base = os.environ["BENCH_BASE"]
        self.tc = opts.trainctl
        self.smoke = opts.smoke
        self.rounds = opts.rounds or (1 if opts.smoke else 5)
        self.env = dict(os.environ)
        self.env.update({
            "NCLOUD_ACCESS_KEY": "bench-access-key",
            "NCLOUD_SECRET_KEY": "bench-secret-key",
            "TRAINCTL_AITEMS_ENDPOINT": self.base + "/api/v1",
            "XDG_STATE_HOME": os.path.join(opts.work, "state"),
            "XDG_CONFIG_HOME": os.path.join(opts.work, "config"),
        })
        self.rows = []
        self.failures = 0
        self.tap_n = 0
        # The signature headers of the loop benchmarks, fixed values for
        # the peers that cannot sign (wrk, curl): same request size.
        self.headers = [
            "content-type: application/json",
            "user-agent: trainctl",
            "x-ncp-apigw-timestamp: 1718096400000",
            "x-ncp-iam-access-key: bench-access-key",
            "x-ncp-apigw-signature-v2: 0b4Ltk9K1OQ5BvUhIylcU1aOBw+Di7HCIsSaRQXUaN4=",
        ]

    # -- reporting -----------------------------------------------------
    def log(self, msg):
        if self.o.tap:
            print("# " + msg, flush=True)
        else:
            print(msg, file=sys.stderr, flush=True)

    def tap(self, ok, name, why=""):
        self.tap_n += 1
        if not ok:
            self.failures += 1
        if self.o.tap:
            line = "%s %d - %s" % ("ok" if ok else "not ok", self.tap_n, name)
            print(line, flush=True)
            if why:
                for w in why.splitlines():
                    print("#   " + w, flush=True)
        elif not ok:
            self.log("FAILED %s: %s" % (name, why))

    def step(self, first_round, name, fn, *args, **kw):
        """Runs one bench script; its TAP line is reported once, in the
        first round. Returns its result, or None when it failed."""
        try:
            r = fn(*args, **kw)
        except (StepError, ValueError, KeyError, OSError) as e:
            if first_round:
                self.tap(False, name, str(e))
            else:
                self.failures += 1
                self.log("FAILED %s: %s" % (name, e))
            return None
        if first_round:
            self.tap(True, name)
        return r

    def row(self, fig, name, unit, trainctl, peer_name, peer, ratio, target, samples=None,
            details=None):
        op, limit = target if target else (None, None)
        verdict = None
        if ratio is not None and op and not self.smoke:
            verdict = "pass" if (ratio <= limit if op == "<=" else ratio >= limit) else "miss"
        self.rows.append({
            "figure": fig, "name": name, "unit": unit, "trainctl": trainctl,
            "peer_name": peer_name, "peer": peer, "ratio": ratio,
            "target": ("%s %g" % (op, limit)) if op else None, "result": verdict,
            "samples": samples or {}, "details": details or {},
        })

    # -- peers and tools ----------------------------------------------
    def hyperfine(self, cmds, warmup, runs, env=None):
        """Median seconds of each command (hyperfine, no shell)."""
        with tempfile.NamedTemporaryFile(suffix=".json", dir=self.o.work) as f:
            cmd = ["hyperfine", "-N", "--style", "none", "--warmup", str(warmup),
                   "--runs", str(runs), "--export-json", f.name] + cmds
            run(cmd, env=env or self.env)
            doc = json.load(open(f.name))
        return {r["command"]: r["median"] for r in doc["results"]}

    def wrk(self, conns, seconds):
        cmd = ["wrk", "-t1", "-c%d" % conns, "-d%ds" % seconds]
        for h in self.headers:
            cmd += ["-H", h]
        _, out, _ = run(cmd + [self.base + LIST])
        if "Non-2xx" in out or "Socket errors" in out:
            raise StepError("wrk saw errors:\n" + out)
        m = re.search(r"Requests/sec:\s*([\d.]+)", out)
        if not m:
            raise StepError("no rate in wrk's output:\n" + out)
        return float(m.group(1))

    def floor(self, n, conns):
        _, out, _ = run([self.o.curl_floor, self.base + LIST, str(n), str(conns)])
        return last_json(out)["rate"]

    def trainctl_script(self, name, *args, timeout=600):
        _, out, _ = run([self.tc, os.path.join(HERE, name)] + [str(a) for a in args],
                        env=self.env, timeout=timeout, fork=True)
        return last_json(out)

    # -- figures -------------------------------------------------------
    def startup(self):
        tc = "%s -e ''" % shlex.quote(self.tc)
        lua = "lua5.4 -e ''"
        warmup, runs = (1, 5) if self.smoke else (10, 60)
        t, p = [], []
        for i in range(self.rounds):
            cmds = [tc, lua] if i % 2 == 0 else [lua, tc]
            r = self.step(i == 0, "start-up: hyperfine %s vs %s" % (tc, lua),
                          self.hyperfine, cmds, warmup, runs)
            if r:
                t.append(r[tc])
                p.append(r[lua])
        mt, mp = median(t), median(p)
        self.row("1", "start-up", "ms", ms(mt), "lua5.4", ms(mp), ratio(mt, mp), ("<=", 1.5),
                 {"trainctl_s": t, "lua5.4_s": p})

    def has_call(self):
        try:
            run([self.tc, "call", "aitems", "--help"], env=self.env)
            return True
        except StepError:
            return False

    def oneshot(self):
        url = self.base + "/api/v1/services/abc/trains"
        if self.has_call():
            tc = "%s call aitems list_trains service_id=abc" % shlex.quote(self.tc)
            what = "trainctl call aitems list_trains"
        else:
            tc = "%s %s" % (shlex.quote(self.tc), shlex.quote(os.path.join(HERE, "oneshot.lua")))
            what = "bench/oneshot.lua (no `trainctl call` in this build)"
        curl = "curl -s %s" % url

        def check():
            _, out, _ = run(shlex.split(tc), env=self.env)
            if len(json.loads(out)["trains"]) != 4:
                raise StepError("unexpected answer from " + tc)
            return True

        warmup, runs = (1, 3) if self.smoke else (5, 30)
        t, p = [], []
        if self.step(True, "one-shot: %s answers" % what, check):
            for i in range(self.rounds):
                cmds = [tc, curl] if i % 2 == 0 else [curl, tc]
                r = self.step(i == 0, "one-shot: hyperfine %s vs curl -s" % what,
                              self.hyperfine, cmds, warmup, runs)
                if r:
                    t.append(r[tc])
                    p.append(r[curl])
        else:
            self.tap(False, "one-shot: hyperfine", "skipped: the call failed")
        mt, mp = median(t), median(p)
        self.row("2", "one-shot signed call", "ms", ms(mt), "curl -s", ms(mp), ratio(mt, mp),
                 ("<=", 1.5), {"trainctl_s": t, "curl_s": p}, {"trainctl_command": what})

    def sequential(self):
        n = 200 if self.smoke else 20000
        glob = "%s&n=[1-%d]" % (self.base + LIST, n)
        curl = ["curl", "-s", "-o", "/dev/null"]
        for h in self.headers:
            curl += ["-H", h]

        def curl_rate():
            wall, _, _ = run(curl + [glob])
            return n / wall

        def python_rate():
            _, out, _ = run([sys.executable, os.path.join(HERE, "sequential.py"), str(n)],
                            env=self.env)
            return last_json(out)["rate"]

        tc, wrk, py, cu, fl, cpu = [], [], [], [], [], []
        for i in range(self.rounds):
            first = i == 0
            order = ["tc", "py", "curl", "floor"]
            if i % 2:
                order.reverse()
            secs = None
            for who in order:
                if who == "tc":
                    r = self.step(first, "sequential: bench/sequential.lua %d" % n,
                                  self.trainctl_script, "sequential.lua", n)
                    if r:
                        tc.append(r["rate"])
                        cpu.append(r["cpu_per_request_us"])
                        secs = r["seconds"]
                elif who == "py":
                    py.append(self.step(first, "sequential: bench/sequential.py %d" % n,
                                        python_rate))
                elif who == "curl":
                    cu.append(self.step(first, "sequential: curl, %d URLs on one connection" % n,
                                        curl_rate))
                elif self.o.curl_floor:
                    fl.append(self.step(first, "sequential: bench/curl_floor.c %d" % n,
                                        self.floor, n, 1))
            d = max(1, math.ceil(secs or 1))
            wrk.append(self.step(first, "sequential: wrk -t1 -c1", self.wrk, 1, d))
        mt = median(tc)
        self.row("3", "sequential signed GETs", "req/s", mt, "wrk -c1", median(wrk),
                 ratio(mt, median(wrk)), (">=", 0.75), {"trainctl": tc, "wrk": wrk},
                 {"requests": n, "cpu_per_request_us": median(cpu)})
        self.row("3b", "sequential vs python3", "req/s", mt, "python3", median(py),
                 ratio(mt, median(py)), None, {"python3": py})
        self.row("3c", "sequential vs curl CLI", "req/s", mt, "curl", median(cu),
                 ratio(mt, median(cu)), None, {"curl": cu})
        if self.o.curl_floor:
            self.row("3d", "sequential vs libcurl floor", "req/s", mt, "curl_floor", median(fl),
                     ratio(mt, median(fl)), None, {"curl_floor": fl},
                     {"floor_vs_wrk": ratio(median(fl), median(wrk))})

    def concurrent(self):
        tasks = 64
        n = tasks * (10 if self.smoke else 500)
        tc, wrk, fl, cpu = [], [], [], []
        for i in range(self.rounds):
            first = i == 0
            secs = None
            for who in (["tc", "wrk", "floor"] if i % 2 == 0 else ["floor", "wrk", "tc"]):
                if who == "tc":
                    r = self.step(first, "concurrent: bench/concurrent.lua %d %d" % (tasks, n),
                                  self.trainctl_script, "concurrent.lua", tasks, n)
                    if r:
                        tc.append(r["rate"])
                        cpu.append(r["cpu_per_request_us"])
                        secs = r["seconds"]
                elif who == "floor":
                    if self.o.curl_floor:
                        fl.append(self.step(first, "concurrent: bench/curl_floor.c %d %d" % (n, tasks),
                                            self.floor, n, tasks))
                else:
                    d = max(1, math.ceil(secs or (1 if self.smoke else 4)))
                    wrk.append(self.step(first, "concurrent: wrk -t1 -c%d" % tasks,
                                         self.wrk, tasks, d))
        mt = median(tc)
        self.row("4", "concurrent signed GETs", "req/s", mt, "wrk -c64", median(wrk),
                 ratio(mt, median(wrk)), (">=", 0.5), {"trainctl": tc, "wrk": wrk},
                 {"tasks": tasks, "requests": n, "cpu_per_request_us": median(cpu)})
        if self.o.curl_floor:
            self.row("4b", "concurrent vs libcurl floor", "req/s", mt, "curl_floor", median(fl),
                     ratio(mt, median(fl)), None, {"curl_floor": fl},
                     {"floor_vs_wrk": ratio(median(fl), median(wrk))})

    def waiting(self):
        jobs, secs = (200, 2) if self.smoke else (10000, 30)
        rounds = 1 if self.smoke else max(1, min(self.rounds, 3))

        def watch(interval, first, gcpause=None):
            extra = [gcpause] if gcpause else []
            r = self.step(first, "waiting: bench/waiting.lua %d jobs, every %d s, for %d s%s" %
                          (jobs, interval, secs, ", GC pause %d" % gcpause if gcpause else ""),
                          self.trainctl_script, "waiting.lua", jobs, secs, interval, *extra,
                          timeout=secs * 4 + 60)
            if r and r["polls"] < 0.99 * r["expected_polls"] and not self.smoke:
                self.log("waiting: the loop fell behind: %d of %d polls" %
                         (r["polls"], r["expected_polls"]))
            return r

        rs = [r for r in (watch(1, i == 0) for i in range(rounds)) if r]
        rss = median([r["maxrss_kb"] / 1024 for r in rs])
        self.row("5", "waiting: %d jobs, peak RSS" % jobs, "MiB", rss, None, None, rss,
                 ("<=", 64), {"maxrss_mib": [r["maxrss_kb"] / 1024 for r in rs]},
                 {"runs": rs})
        self.row("5b", "waiting: CPU per poll", "us", median([r["cpu_per_poll_us"] for r in rs]),
                 None, None, None, None, {"cpu_per_poll_us": [r["cpu_per_poll_us"] for r in rs]},
                 {"polls": median([r["polls"] for r in rs]),
                  "expected_polls": median([r["expected_polls"] for r in rs]),
                  "cpu_share": median([r["cpu_share"] for r in rs]),
                  "late_p99_ms": median([r["late_p99_ms"] for r in rs])})
        # The same jobs at a rate one thread sustains here: the memory of
        # waiting at scale when the CPU does not decide it, with Lua's
        # default collector and with a shorter pause.
        for fig, pause in (("5c", None), ("5d", 120)):
            r = watch(5, True, pause)
            if r:
                self.row(fig, "waiting: every 5 s%s, RSS" % (", GC pause %d" % pause if pause else ""),
                         "MiB", r["maxrss_kb"] / 1024, None, None, None, None, {},
                         {"cpu_per_poll_us": r["cpu_per_poll_us"], "run": r})

    def download(self):
        url = self.base + "/files/result.bin"
        out = os.path.join(self.o.out_dir, "download.bin")
        size = os.path.getsize(os.path.join(self.o.work, "www", "result.bin"))

        def curl_o():
            try:
                _, text, _ = run(["curl", "-s", "-o", out, "-w", "%{time_total} %{size_download}",
                                  url])
            finally:
                remove(out)
            t, got = text.split()
            if int(got) != size:
                raise StepError("curl got %s of %d bytes" % (got, size))
            return {"rate": size / float(t)}

        def trainctl_o():
            try:
                r = self.trainctl_script("download.lua", "/files/result.bin", out)
            finally:
                remove(out)
            if r["bytes"] != size:
                raise StepError("trainctl got %d of %d bytes" % (r["bytes"], size))
            return r

        # The first read of the (sparse) file fills the page cache and is
        # several times slower than the next: it is nobody's round.
        self.step(True, "download: warm-up, curl -o /dev/null", run,
                  ["curl", "-s", "-o", "/dev/null", url])
        tc, cu = [], []
        for i in range(self.rounds):
            first = i == 0
            for who in (["tc", "curl"] if i % 2 == 0 else ["curl", "tc"]):
                if who == "tc":
                    tc.append(self.step(first, "download: bench/download.lua (%d MiB)" % (size // MIB),
                                        trainctl_o))
                else:
                    cu.append(self.step(first, "download: curl -o (%d MiB)" % (size // MIB), curl_o))
        tc = [r for r in tc if r]
        cu = [r for r in cu if r]
        mt = median([r["rate"] / MIB for r in tc])
        mc = median([r["rate"] / MIB for r in cu])
        self.row("6", "download %d MiB" % (size // MIB), "MiB/s", mt, "curl -o", mc, ratio(mt, mc),
                 (">=", 0.9), {"trainctl": [r["rate"] / MIB for r in tc],
                               "curl": [r["rate"] / MIB for r in cu]},
                 {"trainctl_rss_growth_kb": median([r["rss_growth_kb"] for r in tc]),
                  "trainctl_maxrss_kb": median([r["maxrss_kb"] for r in tc]),
                  "output_dir_fs": fs_type(self.o.out_dir)})


def ms(seconds):
    return None if seconds is None else seconds * 1000


def ratio(a, b):
    if a is None or not b:
        return None
    return a / b


def remove(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def fs_type(path):
    best, kind = "", "?"
    try:
        with open("/proc/mounts") as f:
            for line in f:
                parts = line.split()
                mnt = parts[1]
                if path.startswith(mnt) and len(mnt) > len(best):
                    best, kind = mnt, parts[2]
    except OSError:
        pass
    return kind


def version(cmd):
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
        text = (p.stdout + p.stderr).strip().splitlines()
        return text[0] if text else "?"
    except OSError:
        return "?"


def machine(trainctl):
    cpu, mem = "?", "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal"):
                    mem = "%.1f GiB" % (int(line.split()[1]) / 1024 / 1024)
    except OSError:
        pass
    return {
        "nproc": len(os.sched_getaffinity(0)), "cpu": cpu, "memory": mem,
        "kernel": platform.release(),
        "trainctl": " / ".join(subprocess.run([trainctl, "-v"], capture_output=True,
                                              text=True).stdout.split("\n")[:4]).strip(" /"),
        "lua5.4": version(["lua5.4", "-v"]), "nginx": version(["nginx", "-v"]),
        "wrk": version(["wrk", "-v"]), "curl": version(["curl", "-V"]),
        "hyperfine": version(["hyperfine", "--version"]),
        "python3": platform.python_version(),
    }


def fmt(v):
    if v is None:
        return "-"
    if v >= 1000:
        return "%.0f" % v
    if v >= 10:
        return "%.1f" % v
    return "%.2f" % v


def table(rows):
    head = ("figure", "unit", "trainctl", "peer", "peer value", "ratio", "target", "result")
    lines = [head]
    for r in rows:
        lines.append(("%s %s" % (r["figure"], r["name"]), r["unit"], fmt(r["trainctl"]),
                      r["peer_name"] or "-", fmt(r["peer"]), fmt(r["ratio"]),
                      r["target"] or "-", r["result"] or "-"))
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    out = []
    for line in lines:
        cells = [line[0].ljust(widths[0]), line[1].ljust(widths[1])]
        cells += [c.rjust(w) for c, w in zip(line[2:], widths[2:])]
        out.append("  ".join(cells))
    out.insert(1, "-" * len(out[0]))
    return "\n".join(out)


FIGURES = ["startup", "oneshot", "sequential", "concurrent", "waiting", "download"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trainctl", required=True)
    ap.add_argument("--work", required=True, help="run.sh's temporary directory")
    ap.add_argument("--out-dir", required=True, help="where downloads are written")
    ap.add_argument("--results", help="write the results here (JSON)")
    ap.add_argument("--curl-floor", help="the built bench/curl_floor.c")
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--tap", action="store_true")
    ap.add_argument("--rounds", type=int)
    ap.add_argument("--only", help="comma-separated figures: " + ",".join(FIGURES))
    o = ap.parse_args()
    only = o.only.split(",") if o.only else FIGURES
    for name in only:
        if name not in FIGURES:
            ap.error("unknown figure %r" % name)

    b = Bench(o)
    started = time.time()
    for name in FIGURES:
        if name in only:
            b.log("%s ..." % name)
            getattr(b, name)()
    if o.tap:
        print("1..%d" % b.tap_n)
    report = table(b.rows)
    if o.tap:
        for line in report.splitlines():
            print("# " + line)
    else:
        print(report)
    if o.results:
        doc = {"mode": "smoke" if o.smoke else "full", "rounds": b.rounds,
               "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
               "seconds": round(time.time() - started, 1), "machine": machine(o.trainctl),
               "figures": b.rows}
        tmp = o.results + ".tmp"
        with open(tmp, "w") as f:
            json.dump(doc, f, indent=2)
            f.write("\n")
        os.replace(tmp, o.results)
    return 1 if b.failures else 0


if __name__ == "__main__":
    sys.exit(main())
