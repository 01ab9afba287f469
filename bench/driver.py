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


def run(cmd, env=None, timeout=600, fork=False, check=True):
    """Runs cmd (a list) to completion: (wall seconds, stdout, rusage).
    fork=True starts it from a shell, for a true peak RSS in the report
    the program makes of itself (the rusage returned is then the shell's).
    A non-zero exit raises StepError with the end of stderr, unless
    check=False and the program printed a report (its last line)."""
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
        if p.returncode != 0 and (check or not out.strip()):
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

    def floor(self, n, conns, how="perform"):
        _, out, _ = run([self.o.curl_floor, self.base + LIST, str(n), str(conns), how])
        return last_json(out)["rate"]

    def floor_report(self, n, conns, how):
        """The floor's whole report, failures counted rather than raised."""
        _, out, _ = run([self.o.curl_floor, self.base + LIST, str(n), str(conns), how],
                        check=False)
        return last_json(out)

    def accepts(self):
        """Connections nginx has accepted so far (stub_status), less the
        one this question opens."""
        _, out, _ = run(["curl", "-s", self.base + "/nginx_status"])
        m = re.search(r"^\s*(\d+)\s+\d+\s+\d+\s*$", out, re.M)
        if not m:
            raise StepError("no accepts in nginx's stub_status:\n" + out)
        return int(m.group(1)) - 1

    def connects(self, fn, *args, **kw):
        """fn's result and the connections nginx accepted meanwhile."""
        before = self.accepts()
        r = fn(*args, **kw)
        # The second question's own connection is counted by the first
        # answer's difference: one more to take away.
        return r, self.accepts() - before - 1

    def trainctl_script(self, name, *args, timeout=600, check=True):
        _, out, _ = run([self.tc, os.path.join(HERE, name)] + [str(a) for a in args],
                        env=self.env, timeout=timeout, fork=True, check=check)
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
        self.row("1", "start-up", "ms", ms(mt), "lua5.4", ms(mp), ratio(mt, mp), ("<=", 1.0),
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
                 ("<=", 1.2), {"trainctl_s": t, "curl_s": p}, {"trainctl_command": what})

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

        tc, wrk, py, cu, fl, fe, fc, fw, cpu = [], [], [], [], [], [], [], [], []
        for i in range(self.rounds):
            first = i == 0
            order = ["tc", "py", "curl", "floor", "floor_epoll"] + self.work_floors()
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
                elif who == "floor" and self.o.curl_floor:
                    fl.append(self.step(first, "sequential: bench/curl_floor.c %d" % n,
                                        self.floor, n, 1))
                elif who in ("floor_cjson", "floor_work"):
                    how = who[6:]
                    (fc if how == "cjson" else fw).append(
                        self.step(first, "sequential: bench/curl_floor.c %d 1 %s" % (n, how),
                                  self.floor, n, 1, how))
                elif self.o.curl_floor:
                    fe.append(self.step(first, "sequential: bench/curl_floor.c %d 1 epoll" % n,
                                        self.floor, n, 1, "epoll"))
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
                     ratio(mt, median(fl)), (">=", 0.9), {"curl_floor": fl},
                     {"floor_vs_wrk": ratio(median(fl), median(wrk))})
            self.row("3e", "sequential vs libcurl floor, epoll", "req/s", mt, "floor epoll",
                     median(fe), ratio(mt, median(fe)), None, {"curl_floor_epoll": fe},
                     {"floor_vs_wrk": ratio(median(fe), median(wrk))})
        if self.o.floor_cjson:
            self.work_rows("3", mt, fe, fc, fw)

    def concurrent(self):
        tasks = 64
        n = tasks * (10 if self.smoke else 500)
        tc, wrk, fl, fe, fc, fw, cpu = [], [], [], [], [], [], []
        for i in range(self.rounds):
            first = i == 0
            secs = None
            order = ["tc", "wrk", "floor", "floor_epoll"] + self.work_floors()
            for who in (order if i % 2 == 0 else order[::-1]):
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
                elif who == "floor_epoll":
                    if self.o.curl_floor:
                        fe.append(self.step(first, "concurrent: bench/curl_floor.c %d %d epoll" %
                                            (n, tasks), self.floor, n, tasks, "epoll"))
                elif who in ("floor_cjson", "floor_work"):
                    how = who[6:]
                    (fc if how == "cjson" else fw).append(
                        self.step(first, "concurrent: bench/curl_floor.c %d %d %s" % (n, tasks, how),
                                  self.floor, n, tasks, how))
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
                     ratio(mt, median(fl)), (">=", 0.8), {"curl_floor": fl},
                     {"floor_vs_wrk": ratio(median(fl), median(wrk))})
            self.row("4c", "concurrent vs libcurl floor, epoll", "req/s", mt, "floor epoll",
                     median(fe), ratio(mt, median(fe)), None, {"curl_floor_epoll": fe},
                     {"floor_vs_wrk": ratio(median(fe), median(wrk))})
        if self.o.floor_cjson:
            self.work_rows("4", mt, fe, fc, fw)

    def work_floors(self):
        """The floor's ways that do the figures' work, where it has them."""
        return ["floor_cjson", "floor_work"] if self.o.floor_cjson else []

    def work_rows(self, fig, mt, fe, fc, fw):
        """The epoll floor that also decodes every answer with lua-cjson
        ("cjson"), and that signs every request too ("work": what the
        figure asks, in C with nothing else). Against the floor, the most
        any host doing that work with these libraries can reach (the bound
        on figures 3d and 4b); trainctl against "work", what the rest of a
        host costs: the Lua, the scheduler, the request's setup and the
        response handed over."""
        what = "sequential" if fig == "3" else "concurrent"
        self.row(fig + "f", what + ": floor + lua-cjson decoding, vs floor epoll", "req/s",
                 median(fc), "floor epoll", median(fe), ratio(median(fc), median(fe)), None,
                 {"curl_floor_cjson": fc, "curl_floor_epoll": fe})
        self.row(fig + "g", what + ": floor + decoding + signing, vs floor epoll", "req/s",
                 median(fw), "floor epoll", median(fe), ratio(median(fw), median(fe)), None,
                 {"curl_floor_work": fw, "curl_floor_epoll": fe})
        self.row(fig + "h", what + " vs floor + decoding + signing", "req/s", mt, "floor work",
                 median(fw), ratio(mt, median(fw)), None, {"curl_floor_work": fw})

    def waiting(self):
        jobs, secs = (200, 2) if self.smoke else (10000, 30)
        rounds = 1 if self.smoke else max(1, min(self.rounds, 3))

        def watch(interval, first, gc=None, jobs=jobs, secs=secs):
            extra = [gc] if gc else []
            r = self.step(first, "waiting: bench/waiting.lua %d jobs, every %d s, for %d s%s" %
                          (jobs, interval, secs, ", collector %s" % gc if gc else ""),
                          self.trainctl_script, "waiting.lua", jobs, secs, interval, *extra,
                          timeout=secs * 4 + 60)
            if r and r["polls"] < 0.99 * r["expected_polls"] and not self.smoke:
                self.log("waiting: the loop fell behind: %d of %d polls" %
                         (r["polls"], r["expected_polls"]))
            return r

        rs = [r for r in (watch(1, i == 0) for i in range(rounds)) if r]
        rss = median([r["maxrss_kb"] / 1024 for r in rs])
        self.row("5", "waiting: %d jobs, peak RSS" % jobs, "MiB", rss, None, None, rss,
                 ("<=", 48), {"maxrss_mib": [r["maxrss_kb"] / 1024 for r in rs]},
                 {"runs": rs})
        cpu = median([r["cpu_per_poll_us"] for r in rs])
        self.row("5b", "waiting: CPU per poll", "us", cpu, None, None, cpu, ("<=", 60),
                 {"cpu_per_poll_us": [r["cpu_per_poll_us"] for r in rs]},
                 {"polls": median([r["polls"] for r in rs]),
                  "expected_polls": median([r["expected_polls"] for r in rs]),
                  "cpu_share": median([r["cpu_share"] for r in rs]),
                  "late_p99_ms": median([r["late_p99_ms"] for r in rs])})
        # The same jobs at a rate one thread sustains here: the memory of
        # waiting at scale when the CPU does not decide it, with Lua's
        # default collector and with a shorter pause.
        for fig, interval, gc in (("5c", 5, None), ("5d", 5, "120"), ("5e", 1, "generational")):
            r = watch(interval, True, gc)
            if r:
                self.row(fig, "waiting: every %d s%s, RSS" % (interval, ", collector %s" % gc if gc else ""),
                         "MiB", r["maxrss_kb"] / 1024, None, None, None, None, {},
                         {"cpu_per_poll_us": r["cpu_per_poll_us"], "run": r})

    def waiting100k(self):
        """100,000 jobs polled every 60 s for 3 minutes: one round."""
        jobs, secs, interval, lead = (500, 3, 1, 1) if self.smoke else (100000, 180, 60, 10)
        # The first polls begin after a lead of 10 s: starting 100,000
        # tasks is not a poll's lateness (run.started_s says what it took).
        r = self.step(True, "waiting: bench/waiting.lua %d jobs, every %d s, for %d s" %
                      (jobs, interval, secs), self.trainctl_script, "waiting.lua", jobs, secs,
                      interval, "", lead, timeout=secs * 3 + 120)
        if not r:
            return
        if r["polls"] < r["expected_polls"] and not self.smoke:
            self.log("waiting: %d of %d polls made" % (r["polls"], r["expected_polls"]))
        rss = r["maxrss_kb"] / 1024
        self.row("5f", "waiting: %d jobs every %d s, peak RSS" % (jobs, interval), "MiB", rss,
                 None, None, rss, ("<=", 200), {}, {"run": r})
        late = r["late_max_ms"]
        self.row("5g", "waiting: %d jobs every %d s, latest poll" % (jobs, interval), "ms", late,
                 None, None, late, ("<=", 1000), {},
                 {"late_p99_ms": r["late_p99_ms"], "late_p50_ms": r["late_p50_ms"],
                  "polls": r["polls"], "expected_polls": r["expected_polls"],
                  "cpu_per_poll_us": r["cpu_per_poll_us"], "started_s": r.get("started_s")})

    def memory(self):
        """What a waiting job keeps alive in the Lua heap (bench/jobs.lua),
        with each of Lua's collectors."""
        jobs = 200 if self.smoke else 10000
        for fig, mode in (("8", "incremental"), ("8b", "generational")):
            r = self.step(True, "memory: bench/jobs.lua %d %s" % (jobs, mode),
                          self.trainctl_script, "jobs.lua", jobs, mode, timeout=300)
            if r:
                self.row(fig, "memory per waiting job, %s" % mode, "bytes", r["waiting_job_bytes"],
                         None, None, None, None, {}, {"run": r})

    def scaling(self):
        """Throughput, errors and connections with 64 to 16,384 requests in
        flight, trainctl and the libcurl floor (both ways of driving it)."""
        levels = [8, 64] if self.smoke else [64, 512, 4096, 16384]
        nofile = int(os.environ.get("BENCH_NOFILE") or 0)
        if nofile:
            fit = [t for t in levels if t + 256 <= nofile]
            if fit != levels:
                self.log("scaling: %s left out: ulimit -n is %d" %
                         (", ".join(str(t) for t in levels if t not in fit), nofile))
            levels = fit
        rounds = 1 if self.smoke else max(1, min(self.rounds, 3))
        res = {t: {"tc": [], "perform": [], "epoll": []} for t in levels}
        for i in range(rounds):
            first = i == 0
            for t in levels:
                n = 4 * t if self.smoke else max(20000, 2 * t)
                order = ["tc", "perform", "epoll"]
                if i % 2:
                    order.reverse()
                for who in order:
                    if who == "tc":
                        r = self.step(first, "scaling: bench/scaling.lua %d %d" % (t, n),
                                      self.connects, self.trainctl_script, "scaling.lua", t, n,
                                      check=False)
                    elif self.o.curl_floor:
                        r = self.step(first, "scaling: bench/curl_floor.c %d %d %s" % (n, t, who),
                                      self.connects, self.floor_report, n, t, who)
                    else:
                        r = None
                    if r:
                        rep, conns = r
                        rep["accepted"] = conns
                        res[t][who].append(rep)
        rate = {}
        for t in levels:
            runs = res[t]
            tc = [r["rate"] for r in runs["tc"]]
            ep = [r["rate"] for r in runs["epoll"]]
            rate[t] = median(tc)
            errs = max([r.get("errors", 0) for r in runs["tc"]] or [None])
            extra = max([r["accepted"] - t for r in runs["tc"]] or [None])
            self.row("7", "scaling: %d in flight" % t, "req/s", rate[t], "floor epoll", median(ep),
                     ratio(rate[t], median(ep)), None,
                     {"trainctl": tc, "floor_epoll": ep,
                      "floor_perform": [r["rate"] for r in runs["perform"]]},
                     {"errors": errs, "reconnects": extra,
                      "floor_perform": median([r["rate"] for r in runs["perform"]]),
                      "floor_errors": max([r.get("failed", 0) for k in ("perform", "epoll")
                                           for r in runs[k]] or [None]),
                      "floor_reconnects": max([r["accepted"] - t for k in ("perform", "epoll")
                                               for r in runs[k]] or [None]),
                      "runs": runs})
            if not self.smoke and (errs or extra):
                self.log("scaling: %d in flight: %s errors, %s connections beyond one per task" %
                         (t, errs, extra))
        lo, hi = levels[0], (4096 if 4096 in levels else levels[-1])
        self.row("7b", "scaling: %d vs %d in flight" % (hi, lo), "ratio", rate.get(hi), None,
                 rate.get(lo), ratio(rate.get(hi), rate.get(lo)), (">=", 0.8))
        top = levels[-1]
        runs = res[top]["tc"]
        bad = None
        if runs:
            bad = max(r.get("errors", 0) + max(0, r["accepted"] - top) for r in runs)
        self.row("7c", "scaling: %d in flight, errors + reconnects" % top, "count", bad, None,
                 None, bad, ("<=", 0), {}, {"runs": runs})

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


FIGURES = ["startup", "oneshot", "sequential", "concurrent", "scaling", "waiting", "waiting100k",
           "memory", "download"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trainctl", required=True)
    ap.add_argument("--work", required=True, help="run.sh's temporary directory")
    ap.add_argument("--out-dir", required=True, help="where downloads are written")
    ap.add_argument("--results", help="write the results here (JSON)")
    ap.add_argument("--curl-floor", help="the built bench/curl_floor.c")
    ap.add_argument("--floor-cjson", action="store_true",
                    help="the floor was built with its lua-cjson mode")
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
