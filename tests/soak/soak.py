#!/usr/bin/env python3
"""Fault-injection soak of the example workflows against cloudsim.

Each workflow (examples/aitems_recommend.lua, opensearch_ctr.lua,
azure_textclass.lua) runs --runs times under random faults (500, 503, 429,
reset, slow, badjson, truncate; before and after the state change), then
--kills times killed with SIGKILL at a random moment and started again.
A killed run is killed again one restart in three. Every run has names of
its own and a fresh state file. A run that exits non-zero is started
again with the same state, as cron would the next night; such reruns are
counted. After a run succeeds it is started once more, which must change
nothing. The three workflows run side by side against one emulator.

Checked after every run, from the emulator's state and request log: exactly
one training was started for the run, one service/dataset/instance/project
exists per name, the result is complete; after every attempt, killed or
not: the state file and every output file present parse completely.
Prints the counts and exits 1 on any duplicate, partial output or failed
run, keeping its work directory (every attempt's stdout and stderr, the
emulator's request log) for a look.

Every run's faults come from a seed of its own (derived from --seed, the
workflow and the run's name, or --fault-seed), given to its provider's
fault RNG in the emulator, and printed: --fault-seed replays one run.

Then the concurrent-instances phase (--instances N per workflow, 0 for
none): instances of each workflow with different arguments (AiTEMS
prefix, OpenSearch instance, Azure project), all with the default state
path and each with a lock file of its own, started together under the
same faults, killed at random and run again until they succeed. Checked
per instance: exactly one training, and outputs equal to the instance's
own results in the emulator (the recommendations its own service gives,
looked up on it; its own training's metrics; its own project's model
evaluation and classifications), never another instance's.

    python3 tests/soak/soak.py [--runs 50] [--kills 20] [--instances 4] [--tap] [--keep]
"""

import argparse
import collections
import csv
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

CREDENTIALS = {
    "NCLOUD_ACCESS_KEY": "cloudsim-ncp-access-key",
    "NCLOUD_SECRET_KEY": "cloudsim-ncp-secret-key",
    "ALIBABA_CLOUD_ACCESS_KEY_ID": "cloudsim-acs-key-id",
    "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "cloudsim-acs-key-secret",
    "AZURE_LANGUAGE_KEY": "cloudsim-azure-language-key",
}

# 20 % of provider requests meet a fault, spread over every kind.
FAULTS = "500:0.03,503:0.03,429:0.03,reset:0.03,slow:0.03,badjson:0.03,truncate:0.02"

# Client timeouts shorter than a slow fault: a slow answer becomes a
# timeout, which for a create is the "did it happen?" case. The first
# retry backoff can be shortened too, for a quick soak.
TIMEOUT_HOOK = """
local http = require("trainctl.http")
http.retry_defaults.base_delay = %g
-- Also the hold job.start puts on a start whose answer was lost.
http.retry_defaults.timeout = %g
local send = http.send
http.send = function(req)
  req.timeout = req.timeout or http.retry_defaults.timeout
  return send(req)
end
"""

# A resumed start looks again after job.settle seconds; a quick soak can
# shorten that to just over its slow faults.
SETTLE_HOOK = 'require("trainctl.job").settle = %g\n'


def parse_jsonl(path, want):
    """Number of records, or raises when a line is not complete JSON."""
    with open(path, "rb") as f:
        text = f.read().decode("utf-8")
    if text and not text.endswith("\n"):
        raise ValueError("no final newline")
    n = 0
    for line in text.splitlines():
        rec = json.loads(line)
        if not isinstance(rec, dict):
            raise ValueError("line is not an object")
        for k in want:
            if k not in rec:
                raise ValueError("record without %s" % k)
        n += 1
    return n


class Workflow:
    """One example: its command line, its names, what it must produce and
    what it made in the emulator."""

    def __init__(self, name, script):
        self.name, self.script = name, script

    def outputs(self, run):
        return []


class Aitems(Workflow):
    def __init__(self):
        super().__init__("aitems_recommend", "examples/aitems_recommend.lua")
        self.train_op = "CreateTrain"

    def setup(self, run):
        # AiTEMS names are at most 20 characters: prefix + "_inter_schema".
        run.names = {"prefix": run.tag}
        run.env["AITEMS_PREFIX"] = run.tag
        run.out = os.path.join(run.dir, "recommendations.jsonl")
        run.args = [self.script, run.out]

    def outputs(self, run):
        return [(run.out, lambda p: parse_jsonl(p, ("user_id", "items")), 30)]

    def check_final(self, run, stdout):
        pass

    def made(self, run, state, log):
        a = state["providers"]["aitems"]
        prefix = run.tag
        services = [s for s in a["services"].values() if s["name"] == prefix + "_service"]
        per_name = {"service": len(services)}
        for short in ("user", "item", "inter"):
            per_name["dataset " + short] = sum(1 for d in a["datasets"].values()
                                               if d["name"] == "%s_%s" % (prefix, short))
        sids = {s["serviceId"] for s in services}
        # One training request makes one train record per type, all with
        # the request's time.
        trainings = len({(t["serviceId"], t["createdAt"]) for t in a["trains"].values()
                         if t["serviceId"] in sids})
        paths = {"/api/v1/services/" + sid for sid in sids}
        reached = [r for r in log if r["path"] in paths]
        return per_name, trainings, reached


class Opensearch(Workflow):
    def __init__(self):
        super().__init__("opensearch_ctr", "examples/opensearch_ctr.lua")
        self.train_op = "CreateFunctionTask"

    def setup(self, run):
        run.instance = "soak_" + run.tag
        run.args = [self.script, run.instance]
        run.out = None

    def check_final(self, run, stdout):
        doc = json.loads(stdout)
        if doc.get("instance") != run.instance or not isinstance(
                doc.get("metrics", {}).get("auc"), (int, float)):
            raise ValueError("unexpected result %r" % doc)

    def made(self, run, state, log):
        o = state["providers"]["opensearch"]
        key = "/".join(("demo_app", "ctr", run.instance))
        per_name = {"instance": sum(1 for k in o["instances"] if k == key)}
        trainings = sum(1 for k in o["tasks"] if k.rsplit("/", 1)[0] == key)
        suffix = "/instances/%s/tasks" % run.instance
        reached = [r for r in log if r["path"].endswith(suffix)]
        return per_name, trainings, reached


class Azure(Workflow):
    def __init__(self):
        super().__init__("azure_textclass", "examples/azure_textclass.lua")
        self.train_op = "StartTraining"

    def setup(self, run):
        run.project = "soak-" + run.tag
        run.env["AZURE_PROJECT"] = run.project
        run.out = os.path.join(run.dir, "classified.jsonl")
        run.args = [self.script, "examples/data/textclass_inbox", run.out]

    def outputs(self, run):
        return [(run.out, lambda p: parse_jsonl(p, ("file", "class")), 6)]

    def check_final(self, run, stdout):
        doc = json.loads(stdout.splitlines()[-1])
        if doc.get("project") != run.project or not isinstance(doc.get("microF1"), (int, float)):
            raise ValueError("unexpected result %r" % doc)

    def made(self, run, state, log):
        z = state["providers"]["azure"]
        per_name = {"project": sum(1 for k in z["projects"] if k == run.project)}
        trainings = sum(1 for j in z["jobs"].values()
                        if j["kind"] == "train" and j["project"] == run.project)
        suffix = "/projects/%s/:train" % run.project
        reached = [r for r in log if r["path"].endswith(suffix)]
        return per_name, trainings, reached


WORKFLOWS = {w.name: w for w in (Aitems(), Opensearch(), Azure())}


class Cloudsim:
    def __init__(self, args, workdir):
        self.port_file = os.path.join(workdir, "cloudsim.port")
        self.log = open(os.path.join(workdir, "cloudsim.log"), "wb")
        cmd = [sys.executable, os.path.join(ROOT, "scripts", "cloudsim"), "--port", "0",
               "--port-file", self.port_file, "--speed", str(args.speed), "--seed", str(args.seed),
               "--data-dir", os.path.join(ROOT, "examples", "data"), "--faults", args.faults,
               "--fault-when", "random", "--slow-seconds", str(args.slow_seconds),
               "--retry-after", str(args.retry_after),
               "--log-limit", "2000000", "--log", os.path.join(workdir, "requests.jsonl"),
               "--quiet"]
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT)
        for _ in range(200):
            if os.path.exists(self.port_file):
                break
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        with open(self.port_file) as f:
            self.url = "http://127.0.0.1:%d" % int(f.read())

    def admin(self, path):
        with urllib.request.urlopen(self.url + "/_cloudsim/" + path, timeout=60) as r:
            return json.loads(r.read())

    def admin_post(self, path, doc):
        req = urllib.request.Request(self.url + "/_cloudsim/" + path, data=json.dumps(doc).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(req, timeout=60) as r:
            return json.loads(r.read())

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


class Run:
    def __init__(self, wf, tag, workdir, kill):
        self.wf, self.tag, self.kill = wf, tag, kill
        self.dir = os.path.join(workdir, wf.name, tag)
        os.makedirs(self.dir)
        self.state = os.path.join(self.dir, "state.json")
        self.env = {}
        self.attempts = 0
        self.reruns = 0
        self.kills = 0
        self.kill_moments = []
        self.kills_mid_start = 0
        self.partial = []
        self.failure = None
        self.trainings = None
        self.lost_starts = 0
        self.duplicates = []
        self.reasons = []
        wf.setup(self)


class Soak:
    def __init__(self, args):
        self.args = args
        self.rng = random.Random(args.seed)
        self.lock = threading.Lock()
        self.results = []
        self.tap_n = 0
        self.durations = collections.defaultdict(list)
        self.workdir = tempfile.mkdtemp(prefix="trainctl-soak.")
        self.procs = set()
        # A copy of its own: a rebuild during the soak must not mix versions.
        self.trainctl = os.path.join(self.workdir, "trainctl")
        shutil.copy2(args.trainctl, self.trainctl)
        self.sim = Cloudsim(args, self.workdir)
        self.base_env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": self.workdir,
            "XDG_STATE_HOME": os.path.join(self.workdir, "xdg-state"),
            "XDG_CONFIG_HOME": os.path.join(self.workdir, "xdg-config"),
            "TRAINCTL_AITEMS_ENDPOINT": self.sim.url + "/api/v1",
            "TRAINCTL_OPENSEARCH_ENDPOINT": self.sim.url,
            "AZURE_LANGUAGE_ENDPOINT": self.sim.url,
            "TRAINCTL_ENTRA_ENDPOINT": self.sim.url,
            "TRAINCTL_POLL_INTERVAL": str(args.poll_interval),
        }
        self.base_env.update(CREDENTIALS)
        if os.environ.get("TRAINCTL_LUA_PATH"):
            self.base_env["TRAINCTL_LUA_PATH"] = os.environ["TRAINCTL_LUA_PATH"]

    def say(self, text, always=False):
        with self.lock:
            if self.args.tap:
                print("# " + text, flush=True)
            elif self.args.verbose or always:
                print(text, flush=True)

    def tap(self, ok, text):
        with self.lock:
            if self.args.tap:
                self.tap_n += 1
                print("%s %d - %s" % ("ok" if ok else "not ok", self.tap_n, text), flush=True)

    # fault seeds ---------------------------------------------------------------
    def seed_run(self, run):
        """Each run's faults come from a seed of its own, derived from the
        soak's seed, the workflow and the run's name (or --fault-seed), and
        set for its provider alone: the same seed brings the same faults
        whatever the other workflows ask meanwhile."""
        run.seed = self.args.fault_seed or random.Random(
            "%d/%s/%s" % (self.args.seed, run.wf.name, run.tag)).randrange(1, 1 << 30)
        self.sim.admin_post("faults", {"seeds": {PROVIDER[run.wf.name]: run.seed}})

    def seed_lines(self):
        lines = []
        for name in self.args.workflows:
            rs = [r for r in self.results if r.wf.name == name and getattr(r, "seed", None)]
            lines.append("fault seeds %s: %s" % (name, " ".join("%s=%d" % (r.tag, r.seed) for r in rs)))
        lines.append("replay one run: --workflows WORKFLOW --runs 1 --kills 0 --instances 0 --fault-seed SEED "
                     "(a kill run: --runs 0 --kills 1)")
        return lines

    # one attempt -------------------------------------------------------------
    def start(self, run):
        env = dict(self.base_env)
        env.update(run.env)
        hook = TIMEOUT_HOOK % (self.args.backoff, self.args.client_timeout)
        if self.args.settle is not None:
            hook += SETTLE_HOOK % self.args.settle
        cmd = [self.trainctl, "-e", hook] + getattr(run, "options", ["--state", run.state]) + run.args
        run.attempts += 1
        n = run.attempts
        out = open(os.path.join(run.dir, "stdout.%d" % n), "wb")
        err = open(os.path.join(run.dir, "stderr.%d" % n), "wb")
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=err,
                                stdin=subprocess.DEVNULL)
        out.close()
        err.close()
        with self.lock:
            self.procs.add(proc)
        return proc, n

    def read(self, run, what, n):
        with open(os.path.join(run.dir, "%s.%d" % (what, n)), "rb") as f:
            return f.read().decode("utf-8", "replace")

    def check_files(self, run, n):
        """After any attempt: the state file and outputs are whole or absent."""
        files = [(run.state, None, None)] + run.wf.outputs(run)
        for path, parse, _ in files:
            if not os.path.exists(path):
                continue
            try:
                if parse is None:
                    with open(path, "rb") as f:
                        doc = json.loads(f.read())
                    if not isinstance(doc, dict):
                        raise ValueError("not an object")
                else:
                    parse(path)
            except (ValueError, UnicodeDecodeError) as e:
                run.partial.append("%s after attempt %d: %s" % (os.path.basename(path), n, e))
                shutil.copy(path, path + ".partial.%d" % n)

    def pending_start(self, run):
        """The state file holds a start recorded but not yet confirmed:
        the kill came while a training request was on its way."""
        def walk(v):
            if isinstance(v, dict):
                return v.get("pending") is True or any(walk(x) for x in v.values())
            return isinstance(v, list) and any(walk(x) for x in v)
        try:
            with open(run.state, "rb") as f:
                return walk(json.loads(f.read()))
        except (OSError, ValueError):
            return False

    def attempt(self, run, kill_after=None):
        """Runs once; returns (exit status or 'killed', seconds)."""
        proc, n = self.start(run)
        t0 = time.monotonic()
        status = None
        try:
            if kill_after is not None:
                try:
                    proc.wait(kill_after)
                except subprocess.TimeoutExpired:
                    proc.send_signal(signal.SIGKILL)
                    proc.wait()
                    status = "killed"
            if status is None:
                proc.wait(self.args.run_timeout)
                status = proc.returncode
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            status = "hung"
        seconds = time.monotonic() - t0
        with self.lock:
            self.procs.discard(proc)
        self.check_files(run, n)
        if status not in (0, "killed"):
            lines = [ln for ln in self.read(run, "stderr", n).splitlines() if ln.strip()]
            run.reasons.append("attempt %d: exit %s: %s" % (n, status, lines[-1] if lines else ""))
        return status, seconds

    def until_success(self, run):
        while True:
            status, _ = self.attempt(run)
            if status == 0:
                return self.read(run, "stdout", run.attempts)
            if run.attempts >= self.args.max_attempts:
                run.failure = "no success in %d attempts" % run.attempts
                return None
            run.reruns += 1
            time.sleep(self.args.rerun_delay)

    # whole runs ----------------------------------------------------------------
    def kill_delay(self, wf):
        # Up to the time of a quick run: later moments would mostly miss.
        ds = sorted(self.durations[wf.name])
        typical = ds[len(ds) // 4] if ds else 1.0
        return self.rng.uniform(0.02, typical)

    def one(self, wf, tag, kill):
        run = Run(wf, tag, self.workdir, kill)
        self.seed_run(run)
        stdout = None
        if kill:
            # Killed at a random moment; a restart is killed again one time
            # in three. A run that ends before its kill is a miss: it is
            # done again under a new name, so every kill run is killed.
            while True:
                delay = self.kill_delay(wf)
                status, _ = self.attempt(run, delay)
                if status != "killed":
                    if run.kills == 0:
                        run.failure = "missed"
                        return run
                    break
                run.kills += 1
                run.kill_moments.append(delay)
                if self.pending_start(run):
                    run.kills_mid_start += 1
                if self.rng.random() >= 1 / 3:
                    break
            if status != 0:
                if status != "killed":
                    run.reruns += 1
                stdout = self.until_success(run)
            else:
                stdout = self.read(run, "stdout", run.attempts)
        else:
            t0 = time.monotonic()
            stdout = self.until_success(run)
            if run.attempts == 1 and stdout is not None:
                self.durations[wf.name].append(time.monotonic() - t0)
        if stdout is not None:
            self.verify(run, stdout)
            # Started again after success: nothing new may happen.
            if run.failure is None and self.args.again:
                again = self.until_success(run)
                if again is not None:
                    self.verify(run, again)
        self.account(run)
        return run

    def verify(self, run, stdout):
        try:
            run.wf.check_final(run, stdout)
            for path, parse, want in run.wf.outputs(run):
                got = parse(path)
                if got != want:
                    raise ValueError("%s has %d records, not %d" % (os.path.basename(path), got, want))
        except (ValueError, OSError, KeyError, IndexError) as e:
            run.failure = "wrong result: %s" % e

    def account(self, run):
        state = self.sim.admin("state")
        log = self.sim.admin("requests?operation=" + run.wf.train_op)["requests"]
        per_name, trainings, reached = run.wf.made(run, state, log)
        run.trainings = trainings
        # Training starts the provider carried out but whose answer the
        # client never saw: the case a blind retry turns into two.
        run.lost_starts = len([r for r in reached if r["executed"] and r["when"] == "after"])
        if trainings != 1:
            run.duplicates.append("%d trainings" % trainings)
        for name, n in per_name.items():
            if n != 1:
                run.duplicates.append("%d of %s" % (n, name))

    def worker(self, wf):
        plan = [("f%03d" % i, False) for i in range(1, self.args.runs + 1)]
        plan += [("k%03d" % i, True) for i in range(1, self.args.kills + 1)]
        misses = 0
        for base, kill in plan:
            tag, n = base, 0
            while True:
                run = self.one(wf, tag, kill)
                if run.failure != "missed":
                    break
                misses += 1
                n += 1
                tag = "%sm%d" % (base, n)
            with self.lock:
                self.results.append(run)
            bad = run.failure or run.duplicates or run.partial
            desc = "%s %s: %d attempt(s), %d rerun(s), %d kill(s), %s training(s)" % (
                wf.name, tag, run.attempts, run.reruns, run.kills, run.trainings)
            desc += ", fault seed %d" % run.seed
            if bad:
                desc += "; " + "; ".join(filter(None, [run.failure] + run.duplicates + run.partial))
            self.tap(not bad, desc)
            if bad or self.args.verbose:
                self.say(desc, bad)
                for r in run.reasons:
                    self.say("  " + r, bad)
        with self.lock:
            self.misses = getattr(self, "misses", 0) + misses

    def run(self):
        threads = [threading.Thread(target=self.worker, args=(WORKFLOWS[n],), daemon=True)
                   for n in self.args.workflows]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            while t.is_alive():
                t.join(1)
        self.elapsed = time.monotonic() - t0
        log = self.sim.admin("requests")["requests"]
        self.faults = collections.Counter((r["fault"], r["when"]) for r in log if r["fault"])
        self.requests = len(log)

    def report(self):
        rows = []
        bad = 0
        head = ("workflow", "runs", "killed", "kills", "reruns", "trainings", "lost starts",
                "duplicates", "partial", "failures")
        for name in self.args.workflows:
            rs = [r for r in self.results if r.wf.name == name]
            dist = collections.Counter(r.trainings for r in rs)
            row = (name, len(rs), sum(1 for r in rs if r.kill), sum(r.kills for r in rs),
                   sum(r.reruns for r in rs),
                   " ".join("%sx%d" % (k, v) for k, v in sorted(dist.items(), key=str)),
                   sum(r.lost_starts for r in rs),
                   sum(len(r.duplicates) for r in rs), sum(len(r.partial) for r in rs),
                   sum(1 for r in rs if r.failure))
            bad += row[7] + row[8] + row[9]
            rows.append(row)
        tot = ("total",) + tuple(sum(r[i] for r in rows) for i in range(1, 5)) + ("",) + \
            tuple(sum(r[i] for r in rows) for i in range(6, 10))
        rows.append(tot)
        widths = [max(len(str(x[i])) for x in [head] + rows) for i in range(len(head))]
        lines = ["  ".join(str(x[i]).ljust(widths[i]) if i == 0 or i == 5 else
                           str(x[i]).rjust(widths[i]) for i in range(len(head))) for x in [head] + rows]
        faults = ", ".join("%s/%s %d" % (k[0], k[1], v) for k, v in sorted(self.faults.items()))
        nfaults = sum(self.faults.values())
        lines.append("trainings: NxM = M runs made N trainings, all attempts, kills and reruns "
                     "counted; lost starts: training requests carried out whose answer was lost")
        lines.append("requests %d, faults injected %d (%.0f%%): %s" % (
            self.requests, nfaults, 100.0 * nfaults / max(1, self.requests), faults))
        moments = sorted(m for r in self.results for m in r.kill_moments)
        if moments:
            lines.append("kills at %.2f-%.2fs into a run (median %.2fs), %d with a training "
                         "start recorded but unconfirmed; misses (the run ended first, done again "
                         "under a new name): %d" % (
                             moments[0], moments[-1], moments[len(moments) // 2],
                             sum(r.kills_mid_start for r in self.results), self.misses))
        lines.append("elapsed %.0fs; cloudsim --speed %g --slow-seconds %g --retry-after %g; "
                     "client timeout %gs, first backoff %gs, job.settle %s; seed %d" % (
                         self.elapsed, self.args.speed, self.args.slow_seconds,
                         self.args.retry_after, self.args.client_timeout, self.args.backoff,
                         "default" if self.args.settle is None else "%gs" % self.args.settle,
                         self.args.seed))
        lines += self.seed_lines()
        prefix = "# " if self.args.tap else ""
        for ln in lines:
            print(prefix + ln, flush=True)
        return bad

    def close(self, keep):
        with self.lock:
            for proc in self.procs:
                proc.kill()
        self.sim.stop()
        if keep:
            print(("# " if self.args.tap else "") + "kept " + self.workdir, flush=True)
        else:
            shutil.rmtree(self.workdir, ignore_errors=True)


# Which provider each workflow talks to: its runs' faults come from an RNG
# of that provider's own, reseeded per run.
PROVIDER = {"aitems_recommend": "aitems", "opensearch_ctr": "opensearch", "azure_textclass": "azure"}

# concurrent instances -----------------------------------------------------------

# The recommendations an AiTEMS service gives now, asked with no faults:
# what the example must have written for the instance owning the service.
AITEMS_EXPECT = """
local aitems = require("trainctl.aitems")
local csv = require("trainctl.csv")
local json = require("trainctl.json")
local users = assert(csv.read("examples/data/aitems/users.csv"))
local ids = {}
for i, u in ipairs(users) do ids[i] = u.USER_ID end
local answers = aitems.client():lookup_many(arg[1], ids, { type = "personalRecommend", concurrency = 8 })
local out = {}
for i, res in ipairs(answers) do
  out[i] = { user_id = ids[i], items = table.move(res.values or {}, 1, 10, 1, {}) }
end
io.stdout:write(json.encode(out), "\\n")
"""


def read_jsonl(path):
    with open(path, "rb") as f:
        return [json.loads(line) for line in f.read().decode("utf-8").splitlines()]


class InstanceRun(Run):
    """One instance of a workflow in the concurrent phase: arguments of its
    own (names from its tag), the default state path, shared with the other
    instances of its workflow, and a lock file of its own."""

    def __init__(self, wf, tag, workdir, xdg_state):
        super().__init__(wf, tag, workdir, True)
        self.state = os.path.join(xdg_state, "trainctl",
                                  os.path.basename(wf.script)[:-len(".lua")] + ".json")
        self.options = ["--lock", os.path.join(self.dir, "lock")]
        self.stdout = None
        self.own = []


def own_aitems(soak, run, state, log, expect):
    """The recommendations came from this prefix's service: every user was
    looked up on it, and the file holds what that service answers."""
    a = state["providers"]["aitems"]
    sids = [s["serviceId"] for s in a["services"].values() if s["name"] == run.tag + "_service"]
    if len(sids) != 1:
        return ["%d services named %s_service" % (len(sids), run.tag)]
    sid = sids[0]
    users = {r["USER_ID"] for r in csv.DictReader(open(os.path.join(ROOT, "examples/data/aitems/users.csv")))}
    path = "/api/v1/services/%s/infers/lookup" % sid
    asked = {urllib.parse.parse_qs(r["query"] or "").get("targetId", [""])[0]
             for r in log if r["path"] == path and r["status"] == 200 and not r["fault"]}
    bad = []
    if not users <= asked:
        bad.append("%d of %d users never looked up on service %s" % (len(users - asked), len(users), sid))
    want = expect(sid)
    got = read_jsonl(run.out)
    if got != want:
        diff = sum(1 for g, w in zip(got, want) if g != w) + abs(len(got) - len(want))
        bad.append("%d of %d recommendations differ from service %s's" % (diff, len(want), sid))
    run.expected = want
    return bad


def own_opensearch(soak, run, state, log, expect):
    """The metrics printed are this instance's training's, from the emulator."""
    doc = json.loads(run.stdout)
    if doc.get("instance") != run.instance:
        return ["stdout names instance %r" % doc.get("instance")]
    key = "demo_app/ctr/%s/%s" % (run.instance, doc.get("generation"))
    task = state["providers"]["opensearch"]["tasks"].get(key)
    if task is None:
        return ["no training %s in the emulator" % key]
    run.expected = json.loads(task["extendInfo"])
    if doc.get("metrics") != run.expected:
        return ["metrics %r, the instance's training has %r" % (doc.get("metrics"), run.expected)]
    return []


def own_azure(soak, run, state, log, expect):
    """The evaluation printed is this project's model's, and every file's
    class is what this project's deployment answered for its text."""
    z = state["providers"]["azure"]
    doc = json.loads(run.stdout.splitlines()[-1])
    bad = []
    model = z["models"].get(run.project, {}).get("m1")
    if doc.get("project") != run.project or model is None:
        return ["stdout names project %r; model m1 of %s: %s" % (
            doc.get("project"), run.project, "none" if model is None else "present")]
    summary = model["evaluation"]["summary"]
    if (doc.get("microF1"), doc.get("macroF1")) != (summary.get("microF1"), summary.get("macroF1")):
        bad.append("evaluation %r, project %s's model has microF1 %r macroF1 %r" % (
            doc, run.project, summary.get("microF1"), summary.get("macroF1")))
    answers = {}
    for job in sorted(z["runtime"].values(), key=lambda j: j["createdAt"]):
        if job["status"] != "succeeded" or [t["project"] for t in job["tasks"]] != [run.project]:
            continue
        texts = {d["id"]: d["text"] for d in job["documents"]}
        for d in job["items"][0]["results"]["documents"]:
            best = (d.get("class") or [{}])[0]
            answers[texts[d["id"]]] = (best.get("category"), best.get("confidenceScore"))
    inbox = os.path.join(ROOT, "examples/data/textclass_inbox")
    want = []
    for name in sorted(n for n in os.listdir(inbox) if n.endswith(".txt")):
        with open(os.path.join(inbox, name), "rb") as f:
            text = f.read().decode("utf-8")
        if text not in answers:
            bad.append("no analysis of %s by project %s" % (name, run.project))
            continue
        want.append({"file": name, "class": answers[text][0], "confidence": answers[text][1]})
    got = read_jsonl(run.out)
    if not bad and got != want:
        bad.append("classified.jsonl %r, project %s's deployment answered %r" % (got, run.project, want))
    run.expected = [doc.get("microF1"), doc.get("macroF1"), want]
    return bad


OWN = {"aitems_recommend": own_aitems, "opensearch_ctr": own_opensearch, "azure_textclass": own_azure}

# The key parameter that tells an instance's record from the others', and
# the field of a record whose workflow has finished.
RECORD = {"aitems_recommend": ("prefix", lambda r: r.tag, "trained"),
          "opensearch_ctr": ("instance", lambda r: r.instance, "metrics"),
          "azure_textclass": ("project", lambda r: r.project, "deployment_done")}


def own_record(run):
    """The shared default state file holds this instance's record, whole:
    no other instance's write lost it."""
    param, value, done = RECORD[run.wf.name]
    with open(run.state, "rb") as f:
        doc = json.loads(f.read())
    mine = []
    for key, rec in doc.items():
        m = re.fullmatch(r"%s\{(.*)\}" % re.escape(run.wf.name), key)
        if m and dict(p.split("=", 1) for p in m.group(1).split(",")).get(param) == value(run):
            mine.append(rec)
    if len(mine) != 1 or not isinstance(mine[0], dict) or not mine[0].get(done):
        return ["%d record(s) with %s=%s in %s, %s" % (
            len(mine), param, value(run), os.path.basename(run.state),
            "finished" if mine and isinstance(mine[0], dict) and mine[0].get(done) else "not finished")]
    return []


class Instances:
    """The concurrent-instances phase: --instances instances of each
    workflow, started together, with different arguments, the default
    state path and their own lock files, under the same faults, killed at
    random and run again until they succeed, as cron would."""

    def __init__(self, soak):
        self.soak, self.args = soak, soak.args
        self.runs = []
        self.seed = self.args.fault_seed or random.Random(
            "%d/instances" % self.args.seed).randrange(1, 1 << 30)
        self.rng = random.Random(self.seed)

    def lifecycle(self, run, rng, barrier):
        soak = self.soak
        barrier.wait()
        status, p = None, 0.5
        # Killed at a random moment one start in two, a restart one in three.
        while rng.random() < p:
            ds = sorted(soak.durations[run.wf.name])
            delay = rng.uniform(0.02, ds[len(ds) // 4] if ds else 1.0)
            status, _ = soak.attempt(run, delay)
            if status != "killed":
                break
            run.kills += 1
            run.kill_moments.append(delay)
            p = 1 / 3
        if status == 0:
            run.stdout = soak.read(run, "stdout", run.attempts)
        else:
            if status not in (None, "killed"):
                run.reruns += 1
            run.stdout = soak.until_success(run)
        if run.stdout is not None:
            soak.verify(run, run.stdout)
            if run.failure is None and self.args.again:
                again = soak.until_success(run)
                if again is not None:
                    run.stdout = again
                    soak.verify(run, again)

    def run(self):
        soak = self.soak
        soak.sim.admin_post("faults", {"seed": self.seed})
        xdg = soak.base_env["XDG_STATE_HOME"]
        for name in self.args.workflows:
            for i in range(1, self.args.instances + 1):
                self.runs.append(InstanceRun(WORKFLOWS[name], "c%02d" % i, soak.workdir, xdg))
        barrier = threading.Barrier(len(self.runs))
        threads = [threading.Thread(target=self.lifecycle, daemon=True,
                                    args=(r, random.Random(self.rng.random()), barrier)) for r in self.runs]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            while t.is_alive():
                t.join(1)
        self.elapsed = time.monotonic() - t0
        self.check()

    def check(self):
        soak = self.soak
        state = soak.sim.admin("state")
        log = soak.sim.admin("requests?operation=LookupInference")["requests"]
        # The expected results are asked with no faults, after the runs.
        soak.sim.admin_post("faults", {"rates": {}})
        try:
            for run in self.runs:
                soak.account(run)
                run.expected = None
                if run.failure is None:
                    try:
                        run.own = own_record(run) + OWN[run.wf.name](soak, run, state, log, self.aitems_expect)
                    except (ValueError, OSError, KeyError, IndexError, TypeError) as e:
                        run.own = ["cannot compare with the instance's own results: %r" % e]
        finally:
            soak.sim.admin_post("faults", {"rates": self.args.faults})
        for run in self.runs:
            bad = run.failure or run.duplicates or run.partial or run.own
            desc = "instances %s %s: %d attempt(s), %d rerun(s), %d kill(s), %s training(s)" % (
                run.wf.name, run.tag, run.attempts, run.reruns, run.kills, run.trainings)
            if bad:
                desc += "; " + "; ".join(filter(None, [run.failure] + run.duplicates + run.partial + run.own))
            else:
                desc += ", output its own"
            soak.tap(not bad, desc)
            if bad or self.args.verbose:
                soak.say(desc, bad)
                for r in run.reasons:
                    soak.say("  " + r, bad)

    def aitems_expect(self, sid):
        soak = self.soak
        path = os.path.join(soak.workdir, "aitems_expect.lua")
        with open(path, "w") as f:
            f.write(AITEMS_EXPECT)
        proc = subprocess.run([soak.trainctl, "--state", os.path.join(soak.workdir, "expect.json"), path, sid],
                              cwd=ROOT, env=soak.base_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              stdin=subprocess.DEVNULL, timeout=120)
        if proc.returncode != 0:
            raise ValueError("looking up service %s: %s" % (sid, proc.stderr.decode("utf-8", "replace")[-300:]))
        return json.loads(proc.stdout)

    def report(self):
        lines, bad = [], 0
        for name in self.args.workflows:
            rs = [r for r in self.runs if r.wf.name == name]
            n_bad = sum(1 for r in rs if r.failure or r.duplicates or r.partial or r.own)
            bad += n_bad
            # Whether the own-output check could tell the instances apart.
            expected = [json.dumps(r.expected, sort_keys=True) for r in rs if r.expected is not None]
            lines.append("instances %s: trainings per instance %s; kills %d, reruns %d; "
                         "outputs not its own or wrong %d; expected outputs distinct %d of %d" % (
                             name, " ".join("%s=%s" % (r.tag, r.trainings) for r in rs),
                             sum(r.kills for r in rs), sum(r.reruns for r in rs),
                             sum(1 for r in rs if r.own), len(set(expected)), len(expected)))
        lines.append("instances: %d per workflow started together, default state path (%s), "
                     "a lock each; elapsed %.0fs; fault seed %d (--fault-seed %d replays it)" % (
                         self.args.instances, os.path.join("$XDG_STATE_HOME", "trainctl", "<script>.json"),
                         self.elapsed, self.seed, self.seed))
        prefix = "# " if self.args.tap else ""
        for ln in lines:
            print(prefix + ln, flush=True)
        return bad


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=50, help="runs per workflow under faults")
    p.add_argument("--kills", type=int, default=20, help="killed runs per workflow")
    p.add_argument("--workflows", default=",".join(WORKFLOWS),
                   type=lambda s: [w for w in s.split(",") if w])
    p.add_argument("--faults", default=FAULTS)
    p.add_argument("--seed", type=int, default=int(os.environ.get("SOAK_SEED", "0")) or
                   random.SystemRandom().randrange(1, 1 << 30))
    p.add_argument("--speed", type=float, default=1200, help="cloudsim simulated seconds per second")
    p.add_argument("--slow-seconds", type=float, default=2)
    p.add_argument("--client-timeout", type=float, default=1.5)
    p.add_argument("--backoff", type=float, default=0.5,
                   help="the clients' first retry backoff (doubling)")
    p.add_argument("--settle", type=float, help="job.settle of the runs (default: trainctl's)")
    p.add_argument("--retry-after", type=float, default=1,
                   help="Retry-After of the injected 429 and 503")
    p.add_argument("--poll-interval", type=float, default=0.1)
    p.add_argument("--max-attempts", type=int, default=20, help="attempts before a run failed")
    p.add_argument("--rerun-delay", type=float, default=0.5)
    p.add_argument("--run-timeout", type=float, default=300, help="seconds before an attempt hung")
    p.add_argument("--no-again", dest="again", action="store_false",
                   help="skip the extra start after success")
    p.add_argument("--instances", type=int, default=4,
                   help="instances of each workflow in the concurrent phase (0: none)")
    p.add_argument("--fault-seed", type=int, default=0,
                   help="fault seed of every run and of the concurrent phase (default: from --seed)")
    p.add_argument("--trainctl", default=os.environ.get("TRAINCTL", "./trainctl"))
    p.add_argument("--tap", action="store_true", help="TAP output, one test per run")
    p.add_argument("--keep", action="store_true", help="keep the work directory")
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args()
    for w in args.workflows:
        if w not in WORKFLOWS:
            p.error("unknown workflow %s" % w)
    args.trainctl = os.path.abspath(os.path.join(ROOT, args.trainctl)) \
        if not os.path.isabs(args.trainctl) else args.trainctl
    os.chdir(ROOT)
    if args.tap:
        print("1..%d" % ((args.runs + args.kills + args.instances) * len(args.workflows)), flush=True)
    # SIGTERM ends the soak like Ctrl-C: the emulator and the runs stop.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    soak = Soak(args)
    bad = 1
    try:
        soak.run()
        bad = soak.report()
        if args.instances > 0:
            phase = Instances(soak)
            phase.run()
            bad += phase.report()
    except KeyboardInterrupt:
        print("soak: interrupted", file=sys.stderr, flush=True)
        return 130
    finally:
        soak.close(args.keep or bad)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
