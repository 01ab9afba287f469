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

Then the operator phase (--operator-rounds, 0 to skip): the three
workflows side by side against an emulator that keeps its state in a file;
once every run waits for its training, the emulator is stopped for
--outage seconds (30-120 by default) and started again on the same port
with that file. Every run must succeed without a rerun, with one training.

Then rounds of examples/nightly.lua as cron runs it (--nightly-rounds, 0
to skip), each with names of its own: day 1 under a short --timeout
(--nightly-timeout) while its first training never ends (the emulator's
clock frozen once it exists) must exit 4 within its timeout plus 10 s;
day 2 must adopt that training (its start refused as busy, none started),
and gets SIGTERM at a random moment once the clock runs again: exit 143
within --nightly-term-limit seconds; day 2 again must resume and succeed
through an outage of --nightly-outage seconds while it waits. After
every run no process carrying the run's marker (SOAK_NIGHTLY in the
environment) may be left in /proc; per workflow at most one training start
may take effect per day, none on day 2 for the adopted one.

    python3 tests/soak/soak.py [--runs 50] [--kills 20] [--instances 4]
                               [--operator-rounds 3] [--outage 30-120]
                               [--nightly-rounds 3] [--nightly-outage 30-120]
                               [--tap] [--keep]
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


class Restartable:
    """cloudsim keeping its state in a file, without faults, that can be
    stopped (SIGTERM: it saves its state) and started again on its port.
    Its request log is a file, kept across restarts."""

    def __init__(self, args, workdir):
        self.dir = os.path.join(workdir, "operator")
        os.makedirs(self.dir, exist_ok=True)
        self.args, self.port, self.proc, self.starts = args, 0, None, 0
        self.requests = os.path.join(self.dir, "requests.jsonl")
        self.start()
        self.url = "http://127.0.0.1:%d" % self.port

    def start(self):
        port_file = os.path.join(self.dir, "cloudsim.port")
        if os.path.exists(port_file):
            os.remove(port_file)
        self.starts += 1
        log = open(os.path.join(self.dir, "cloudsim.%d.log" % self.starts), "wb")
        cmd = [sys.executable, os.path.join(ROOT, "scripts", "cloudsim"), "--port", str(self.port),
               "--port-file", port_file, "--speed", str(self.args.operator_speed),
               "--seed", str(self.args.seed), "--data-dir", os.path.join(ROOT, "examples", "data"),
               "--state", os.path.join(self.dir, "cloudsim-state.json"), "--log", self.requests,
               "--quiet"]
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        for _ in range(400):
            if os.path.exists(port_file) or self.proc.poll() is not None:
                break
            time.sleep(0.05)
        with open(port_file) as f:
            self.port = int(f.read())

    def halt(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(30)
        self.proc = None

    def admin(self, path):
        with urllib.request.urlopen(self.url + "/_cloudsim/" + path, timeout=60) as r:
            return json.loads(r.read())

    def admin_post(self, path, doc):
        req = urllib.request.Request(self.url + "/_cloudsim/" + path, data=json.dumps(doc).encode(),
                                     method="POST", headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as r:
            return json.loads(r.read())

    def log(self, operation):
        with open(self.requests, "rb") as f:
            entries = [json.loads(line) for line in f if line.strip()]
        return [e for e in entries if e["operation"] == operation]

    def stop(self):
        if self.proc:
            self.halt()


# What the workflows' waits poll, by the emulator's names.
STATUS_OPERATIONS = {"ListTrains", "GetDataset", "GetFunctionTask", "GetTrainingStatus",
                     "GetImportStatus", "GetDeploymentStatus", "GetAnalyzeTextJob"}

# The order in which examples/nightly.lua runs the workflows.
NIGHTLY_ORDER = ("aitems_recommend", "opensearch_ctr", "azure_textclass")


class Names:
    """What a workflow's made() reads of a run: the names it used."""

    def __init__(self, **kw):
        self.__dict__.update(kw)


class NightlySeries:
    """Two days of examples/nightly.lua with names of their own: the
    environment that names what the workflows make, where the state and
    outputs go, and what went wrong."""

    def __init__(self, workdir, rnd):
        self.tag = "n%03d" % rnd
        self.dir = os.path.join(workdir, "nightly", self.tag)
        os.makedirs(self.dir)
        instance, project = "night_" + self.tag, "night-" + self.tag
        self.env = {"AITEMS_PREFIX": self.tag, "OPENSEARCH_INSTANCE": instance,
                    "AZURE_PROJECT": project}
        self.names = {"aitems_recommend": Names(tag=self.tag),
                      "opensearch_ctr": Names(instance=instance),
                      "azure_textclass": Names(project=project)}
        self.problems, self.duplicates, self.missed, self.starts = [], [], False, {}

    def verify(self, date):
        """The day's outputs are complete and name this series' things."""
        out = os.path.join(self.dir, "out", date)

        def read(name):
            with open(os.path.join(out, name), "rb") as f:
                return f.read().decode("utf-8")
        n = parse_jsonl(os.path.join(out, "recommendations.jsonl"), ("user_id", "items"))
        if n != 30:
            raise ValueError("recommendations.jsonl has %d records, not 30" % n)
        n = parse_jsonl(os.path.join(out, "classified.jsonl"), ("file", "class"))
        if n != 6:
            raise ValueError("classified.jsonl has %d records, not 6" % n)
        WORKFLOWS["opensearch_ctr"].check_final(self.names["opensearch_ctr"], read("ctr_metrics.json"))
        WORKFLOWS["azure_textclass"].check_final(self.names["azure_textclass"], read("evaluation.json"))


def marked_processes(mark):
    """Live processes whose environment has SOAK_NIGHTLY=mark: [(pid, argv)]."""
    needle = b"\0SOAK_NIGHTLY=" + mark.encode() + b"\0"
    found = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/environ" % d, "rb") as f:
                env = b"\0" + f.read()
            if needle not in env:
                continue
            with open("/proc/%s/stat" % d, "rb") as f:
                if f.read().rsplit(b")", 1)[1].split()[0] == b"Z":
                    continue
            with open("/proc/%s/cmdline" % d, "rb") as f:
                argv = f.read().replace(b"\0", b" ").decode("utf-8", "replace").strip()
        except (OSError, IndexError):
            continue
        found.append((int(d), argv[:120]))
    return found


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
    def start(self, run, base_env=None):
        env = dict(base_env or self.base_env)
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

    # the operator phase ----------------------------------------------------------
    def operator(self):
        """Rounds of the three workflows side by side, each round meeting
        one outage of the emulator while every run waits for its training."""
        args = self.args
        lo, hi = args.outage
        self.op_sim = sim = Restartable(args, self.workdir)
        env = dict(self.base_env)
        for k in ("TRAINCTL_AITEMS_ENDPOINT", "TRAINCTL_OPENSEARCH_ENDPOINT",
                  "AZURE_LANGUAGE_ENDPOINT", "TRAINCTL_ENTRA_ENDPOINT"):
            env[k] = env[k].replace(self.sim.url, sim.url)
        self.op_runs, self.op_outages = [], []
        t0 = time.monotonic()
        for rnd in range(1, args.operator_rounds + 1):
            runs = [Run(WORKFLOWS[n], "o%03d" % rnd, self.workdir, False) for n in args.workflows]
            procs = [self.start(run, env)[0] for run in runs]
            training = self.until_training(sim, runs, procs)
            if training:
                time.sleep(self.rng.uniform(0, 2))
                seconds = self.rng.uniform(lo, hi)
                self.say("operator round %d: emulator down for %.0fs" % (rnd, seconds))
                sim.halt()
                time.sleep(seconds)
                sim.start()
                self.op_outages.append(seconds)
            for run, proc in zip(runs, procs):
                self.operator_check(sim, run, proc, training)
        self.op_elapsed = time.monotonic() - t0

    def until_training(self, sim, runs, procs):
        """Waits until every run's training exists (True), or a run ended."""
        deadline = time.monotonic() + self.args.run_timeout
        while time.monotonic() < deadline:
            if any(p.poll() is not None for p in procs):
                return False
            state = sim.admin("state")
            if all(run.wf.made(run, state, [])[1] >= 1 for run in runs):
                return True
            time.sleep(0.1)
        return False

    def operator_check(self, sim, run, proc, training):
        try:
            proc.wait(self.args.run_timeout)
            status = proc.returncode
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            status = "hung"
        with self.lock:
            self.procs.discard(proc)
        err = self.read(run, "stderr", run.attempts)
        run.unknown = err.count("status unknown for")
        run.met_outage = run.unknown > 0
        if not training:
            run.failure = "ended before its training started: exit %s" % status
        elif status != 0:
            lines = [ln for ln in err.splitlines() if ln.strip()]
            run.failure = "exit %s: %s" % (status, lines[-1] if lines else "")
        else:
            self.verify(run, self.read(run, "stdout", run.attempts))
        per_name, trainings, _ = run.wf.made(run, sim.admin("state"), sim.log(run.wf.train_op))
        run.trainings = trainings
        if trainings != 1:
            run.duplicates.append("%d trainings" % trainings)
        for name, n in per_name.items():
            if n != 1:
                run.duplicates.append("%d of %s" % (n, name))
        self.op_runs.append(run)
        bad = run.failure or run.duplicates
        desc = "operator %s %s: %s through the outage, %d status poll(s) found the emulator gone, " \
            "%s training(s)" % (run.wf.name, run.tag, "failed" if run.failure else "succeeded",
                                run.unknown, run.trainings)
        if bad:
            desc += "; " + "; ".join(filter(None, [run.failure] + run.duplicates))
        self.tap(not bad, desc)
        if bad or self.args.verbose:
            self.say(desc, bad)

    def operator_report(self):
        rs = self.op_runs
        dist = collections.Counter(r.trainings for r in rs)
        bad = sum(1 for r in rs if r.failure or r.duplicates)
        out = self.op_outages
        lines = [
            "operator: %d rounds, %d runs, %d succeeded without a rerun, %d failed; trainings %s; "
            "duplicates %d" % (self.args.operator_rounds, len(rs), sum(1 for r in rs if not r.failure),
                               sum(1 for r in rs if r.failure),
                               " ".join("%sx%d" % (k, v) for k, v in sorted(dist.items(), key=str)),
                               sum(len(r.duplicates) for r in rs)),
            "operator: %d outages of the emulator (%s), restarted with --state; %d runs met one, "
            "%d status polls found it gone; elapsed %.0fs, --speed %g" % (
                len(out), ", ".join("%.0fs" % x for x in out) or "none",
                sum(1 for r in rs if r.met_outage), sum(r.unknown for r in rs), self.op_elapsed,
                self.args.operator_speed),
        ]
        prefix = "# " if self.args.tap else ""
        for ln in lines:
            print(prefix + ln, flush=True)
        return bad

    # the operator phase: nightly.lua ---------------------------------------------
    def operator_nightly(self):
        """Rounds of examples/nightly.lua as cron runs it, each with names of
        its own, against the restartable emulator: day 1 under a short
        --timeout while its training never ends (the emulator's clock is
        frozen once the first training exists), day 2 adopting it and
        stopped by SIGTERM at a random moment, day 2 again resuming."""
        args = self.args
        sim = getattr(self, "op_sim", None) or Restartable(args, self.workdir)
        self.op_sim = sim
        self.nt_rounds = []
        t0 = time.monotonic()
        for rnd in range(1, args.nightly_rounds + 1):
            self.nt_rounds.append(self.nightly_round(sim, rnd))
        sim.admin_post("clock", {"speed": args.operator_speed})
        self.nt_elapsed = time.monotonic() - t0

    def nightly_env(self, sim, series):
        env = dict(self.base_env)
        for k in ("TRAINCTL_AITEMS_ENDPOINT", "TRAINCTL_OPENSEARCH_ENDPOINT",
                  "AZURE_LANGUAGE_ENDPOINT", "TRAINCTL_ENTRA_ENDPOINT"):
            env[k] = env[k].replace(self.sim.url, sim.url)
        env.update(series.env)
        return env

    def nightly_start(self, sim, series, step, date, timeout):
        """Starts nightly.lua for date; its processes carry a marker of
        their own in the environment (SOAK_NIGHTLY), found in /proc."""
        env = self.nightly_env(sim, series)
        # Unique beside another soak on the machine: this one's pid.
        mark = "%d-%s-%s" % (os.getpid(), series.tag, step)
        env["SOAK_NIGHTLY"] = mark
        env["NIGHTLY_DATE"] = date
        cmd = [self.trainctl]
        if timeout:
            cmd += ["--timeout", "%gs" % timeout]
        cmd += ["--state", os.path.join(series.dir, "nightly.json"), "examples/nightly.lua",
                os.path.join(series.dir, "out")]
        out = open(os.path.join(series.dir, "stdout.%s" % step), "wb")
        err = open(os.path.join(series.dir, "stderr.%s" % step), "wb")
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=err,
                                stdin=subprocess.DEVNULL)
        out.close()
        err.close()
        with self.lock:
            self.procs.add(proc)
        self.nt_procs = getattr(self, "nt_procs", []) + [proc]
        return proc, mark, time.monotonic(), time.time()

    def nightly_end(self, series, step, proc, mark, limit):
        """Waits for the run (up to limit seconds): (status, stray processes
        of the run alive once it exited, its stderr's last line)."""
        try:
            proc.wait(limit)
            status = proc.returncode
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            status = "hung"
        stray = marked_processes(mark)
        with self.lock:
            self.procs.discard(proc)
        for pid, _ in stray:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        with open(os.path.join(series.dir, "stderr.%s" % step), "rb") as f:
            err = f.read().decode("utf-8", "replace")
        lines = [ln for ln in err.splitlines() if ln.strip()]
        if "traceback" in err:
            series.problems.append("%s: a traceback on stderr" % step)
        return status, stray, lines[-1] if lines else ""

    def nightly_trainings(self, sim, series, since=None, until=None):
        """Per workflow: (training starts that took effect in the emulator
        between the wall times since and until, those refused, trainings
        its state holds, names made more or less than once)."""
        state = sim.admin("state")
        got = {}
        for name in NIGHTLY_ORDER:
            wf = WORKFLOWS[name]
            per_name, trainings, reached = wf.made(series.names[name], state, sim.log(wf.train_op))
            if since is not None:
                reached = [r for r in reached if since <= r["wall"] <= (until or float("inf"))]
            took = sum(1 for r in reached if r["executed"] and (
                r["status"] is None or 200 <= r["status"] < 300))
            refused = sum(1 for r in reached if r["executed"] and (r["status"] or 0) >= 400)
            odd = ["%d of %s" % (n, k) for k, n in per_name.items() if n != 1]
            got[name] = (took, refused, trainings, odd)
        return got

    def nightly_round(self, sim, rnd):
        args = self.args
        series = NightlySeries(self.workdir, rnd)
        speed = args.nightly_speed
        d1, d2 = "2026-01-%02d" % (2 * rnd - 1), "2026-01-%02d" % (2 * rnd)

        # Day 1 under a short --timeout; its first training never ends.
        sim.admin_post("clock", {"speed": speed})
        proc, mark, t0, w0 = self.nightly_start(sim, series, "d1", d1, args.nightly_timeout)
        first = None
        while proc.poll() is None and time.monotonic() - t0 < args.nightly_timeout + 30:
            state = sim.admin("state")
            wf = WORKFLOWS[NIGHTLY_ORDER[0]]
            if wf.made(series.names[wf.name], state, [])[1] >= 1:
                sim.admin_post("clock", {"speed": 0})
                first = time.monotonic() - t0
                break
            time.sleep(0.05)
        status, stray, last = self.nightly_end(series, "d1", proc, mark, args.nightly_timeout + 30)
        wall = time.monotonic() - t0
        series.d1 = (status, wall, stray, last, first)
        w1 = time.time()
        sim.admin_post("clock", {"speed": 0})
        if status != 4:
            series.problems.append("day 1: exit %s, not 4: %s" % (status, last))
        if wall > args.nightly_timeout + 10:
            series.problems.append("day 1: ended %.1fs after its start, --timeout %gs" % (
                wall, args.nightly_timeout))
        if stray:
            series.problems.append("day 1: %d process(es) left: %s" % (len(stray), stray))
        self.tap(not series.problems, "nightly %s day 1 under --timeout %gs: exit %s after %.1fs, "
                 "the first training started after %s, %d process(es) left" % (
                     series.tag, args.nightly_timeout, status, wall,
                     "%.1fs" % first if first is not None else "never", len(stray)))
        before = len(series.problems)

        # Day 2, the clock still frozen: the first workflow's start is
        # refused (a training runs) and it waits for day 1's training.
        proc, mark, t0, w2 = self.nightly_start(sim, series, "d2a", d2, args.nightly_run_timeout)
        wf = WORKFLOWS[NIGHTLY_ORDER[0]]
        adopted = None
        while proc.poll() is None and time.monotonic() - t0 < 60:
            got = self.nightly_trainings(sim, series, w2)[wf.name]
            if got[1] > 0:
                adopted = time.monotonic() - t0
                break
            time.sleep(0.05)
        sim.admin_post("clock", {"speed": speed})
        # Then SIGTERM to the parent at a random moment.
        delay = self.rng.uniform(0, args.nightly_term_max)
        term = None
        try:
            proc.wait(delay)
        except subprocess.TimeoutExpired:
            term = time.monotonic()
            proc.send_signal(signal.SIGTERM)
        status, stray, last = self.nightly_end(series, "d2a", proc, mark, 60)
        ended = time.monotonic()
        # Which workflow the signal met: the last one started.
        with open(os.path.join(series.dir, "stderr.d2a"), "rb") as f:
            started = re.findall(rb" info  (\w+): starting", f.read())
        series.term_in = started[-1].decode() if term and started else None
        took = ended - term if term else None
        series.d2a = (status, adopted, delay, took, stray, last)
        if adopted is None:
            series.problems.append("day 2: no start of %s refused while day 1's training ran" % wf.name)
        if term is None:
            series.missed = True
            if status != 0:
                series.problems.append("day 2 (not stopped): exit %s: %s" % (status, last))
        else:
            if status != 128 + signal.SIGTERM:
                series.problems.append("day 2: exit %s after SIGTERM, not 143: %s" % (status, last))
            if took > args.nightly_term_limit:
                series.problems.append("day 2: exit %.1fs after SIGTERM" % took)
        if stray:
            series.problems.append("day 2: %d process(es) left after SIGTERM: %s" % (len(stray), stray))
        self.tap(len(series.problems) == before,
                 "nightly %s day 2 adopting day 1's training (%s), SIGTERM %s: exit %s%s, "
                 "%d process(es) left" % (
                     series.tag, "after %.1fs" % adopted if adopted is not None else "never",
                     "%.1fs after the clock ran again, in %s" % (delay, series.term_in) if term
                     else "missed (ended first)",
                     status, " %.1fs after it" % took if took is not None else "", len(stray)))
        before = len(series.problems)

        # Day 2 again: resumes and finishes, through an outage of the
        # emulator while it waits (the clock frozen until then).
        lo, hi = args.nightly_outage
        if hi > 0:
            sim.admin_post("clock", {"speed": 0})
        proc, mark, t0, w = self.nightly_start(sim, series, "d2b", d2, args.nightly_run_timeout)
        series.outage = None
        if hi > 0:
            if self.until_polling(sim, proc, w):
                series.outage = self.rng.uniform(lo, hi)
                sim.halt()
                time.sleep(series.outage)
                sim.start()
            sim.admin_post("clock", {"speed": speed})
        status, stray, last = self.nightly_end(series, "d2b", proc, mark, args.run_timeout)
        with open(os.path.join(series.dir, "stderr.d2b"), "rb") as f:
            series.unknown = f.read().count(b"status unknown for")
        wall = time.monotonic() - t0
        w3 = time.time()
        series.d2b = (status, wall, stray, last)
        if status != 0:
            series.problems.append("day 2 again: exit %s: %s" % (status, last))
        else:
            try:
                series.verify(d2)
            except (ValueError, OSError, KeyError, IndexError) as e:
                series.problems.append("day 2 again: wrong result: %s" % e)
        if stray:
            series.problems.append("day 2 again: %d process(es) left: %s" % (len(stray), stray))
        self.tap(len(series.problems) == before, "nightly %s day 2 again: exit %s after %.1fs, %s" % (
            series.tag, status, wall, "the emulator down %.0fs while it waited, %d status poll(s) "
            "found it gone" % (series.outage, series.unknown) if series.outage else "no outage"))
        before = len(series.problems)

        # What the emulator did: one training per workflow and day at most,
        # none on day 2 for the workflow that adopted day 1's.
        day1 = self.nightly_trainings(sim, series, w0, w1)
        day2 = self.nightly_trainings(sim, series, w2, w3)
        total = self.nightly_trainings(sim, series)
        series.starts = {}
        for name in NIGHTLY_ORDER:
            s1, s2, (_, _, n, odd) = day1[name][0], day2[name][0], total[name]
            series.starts[name] = (s1, s2, n)
            if s1 > 1 or s2 > 1:
                series.duplicates.append("%s: %d start(s) on day 1, %d on day 2" % (name, s1, s2))
            if name == wf.name and s2 != 0:
                series.duplicates.append("%s: %d start(s) on day 2 beside day 1's running training" % (
                    name, s2))
            if n != s1 + s2:
                series.duplicates.append("%s: %d training(s), %d start(s)" % (name, n, s1 + s2))
            series.duplicates += ["%s: %s" % (name, o) for o in odd]
        self.tap(not series.duplicates, "nightly %s trainings started (day 1, day 2): %s%s" % (
            series.tag, ", ".join("%s %d+%d" % (k, v[0], v[1]) for k, v in series.starts.items()),
            "; " + "; ".join(series.duplicates) if series.duplicates else ""))
        if series.problems or series.duplicates or self.args.verbose:
            for p in series.problems + series.duplicates:
                self.say("nightly %s: %s" % (series.tag, p), True)
        return series

    def until_polling(self, sim, proc, since):
        """Waits until the run polls one job's status again and again
        (True), or ended (False). Only a wait outlives an outage: a
        lookup or a create meeting one fails after its own retries."""
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            with open(sim.requests, "rb") as f:
                polls = collections.Counter(
                    (e["operation"], e["path"]) for e in map(json.loads, filter(bytes.strip, f))
                    if e["wall"] >= since and e["operation"] in STATUS_OPERATIONS)
            if polls and max(polls.values()) >= 3:
                return True
            time.sleep(0.1)
        return False

    def nightly_report(self):
        rs = self.nt_rounds
        bad = sum(1 for s in rs if s.problems or s.duplicates)
        d1 = [s.d1 for s in rs]
        d2a = [s.d2a for s in rs]
        d2b = [s.d2b for s in rs]
        terms = [x for x in d2a if x[3] is not None]
        lines = [
            "operator nightly: %d rounds (3 runs each, %d in all): %d with a violation" % (
                len(rs), 3 * len(rs), bad),
            "  --timeout %gs on day 1, trainings frozen: exit %s; wall %s (limit %gs + 10s); "
            "processes left %d" % (
                self.args.nightly_timeout, ",".join(str(x[0]) for x in d1),
                ", ".join("%.1fs" % x[1] for x in d1), self.args.nightly_timeout,
                sum(len(x[2]) for x in d1)),
            "  day 2 adopted day 1's unfinished training: %d of %d; SIGTERM at %s after the clock ran "
            "again (%s): exit %s, %s after the signal, %d missed (the run ended first); processes left %d" % (
                sum(1 for x in d2a if x[1] is not None), len(d2a),
                ", ".join("%.1fs" % x[2] for x in terms) or "-",
                ", ".join("%s %d" % (k, v) for k, v in sorted(collections.Counter(
                    s.term_in for s in rs if s.term_in).items())) or "-",
                ",".join(str(x[0]) for x in d2a),
                ", ".join("%.1fs" % x[3] for x in terms) or "-",
                sum(1 for s in rs if s.missed), sum(len(x[4]) for x in d2a)),
            "  day 2 again resumed through outages of the emulator (%s) while waiting, %d status "
            "polls found it gone: exit %s, %s; processes left %d; wrong results %d" % (
                ", ".join("%.0fs" % s.outage for s in rs if s.outage) or "none",
                sum(s.unknown for s in rs),
                ",".join(str(x[0]) for x in d2b), ", ".join("%.1fs" % x[1] for x in d2b),
                sum(len(x[2]) for x in d2b),
                sum(1 for s in rs if any("wrong result" in p for p in s.problems))),
            "  training starts that took effect per workflow (day 1 + day 2): %s; duplicates %d; "
            "elapsed %.0fs, --speed %g" % (
                "; ".join("%s %s" % (w, " ".join("%d+%d" % s.starts[w][:2] for s in rs))
                          for w in NIGHTLY_ORDER),
                sum(len(s.duplicates) for s in rs), self.nt_elapsed, self.args.nightly_speed),
        ]
        prefix = "# " if self.args.tap else ""
        for ln in lines:
            print(prefix + ln, flush=True)
        return bad

    def close(self, keep):
        # A nightly run stopped with SIGTERM ends its workflows too;
        # SIGKILL would leave them running.
        nightly = [p for p in getattr(self, "nt_procs", ()) if p.poll() is None]
        for proc in nightly:
            proc.send_signal(signal.SIGTERM)
        for proc in nightly:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
        with self.lock:
            for proc in self.procs:
                proc.kill()
        self.sim.stop()
        if getattr(self, "op_sim", None):
            self.op_sim.stop()
        if keep:
            print(("# " if self.args.tap else "") + "kept " + self.workdir, flush=True)
        else:
            shutil.rmtree(self.workdir, ignore_errors=True)


def seconds_range(text):
    """"30-120" -> (30.0, 120.0); "45" -> (45.0, 45.0)."""
    parts = [float(x) for x in text.split("-", 1)]
    return (parts[0], parts[-1])


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
    p.add_argument("--operator-rounds", type=int, default=3,
                   help="rounds of the operator phase (emulator outages during waits); 0 skips it")
    p.add_argument("--outage", default="30-120", type=seconds_range,
                   help="seconds the emulator is down in the operator phase, LOW-HIGH")
    p.add_argument("--operator-speed", type=float, default=60,
                   help="cloudsim speed in the operator phase: trainings last seconds, not moments")
    p.add_argument("--nightly-rounds", type=int, default=3,
                   help="rounds of examples/nightly.lua in the operator phase (--timeout, adoption, "
                   "SIGTERM, resume); 0 skips them")
    p.add_argument("--nightly-timeout", type=float, default=8,
                   help="the --timeout of day 1's nightly run, whose training never ends")
    p.add_argument("--nightly-run-timeout", type=float, default=600,
                   help="the --timeout of the other nightly runs (as cron's)")
    p.add_argument("--nightly-outage", default="30-120", type=seconds_range,
                   help="seconds the emulator is down while day 2's second run waits; 0 for none")
    p.add_argument("--nightly-speed", type=float, default=300,
                   help="cloudsim speed while nightly trainings run")
    p.add_argument("--nightly-term-max", type=float, default=8,
                   help="SIGTERM comes 0 to this many seconds into day 2")
    p.add_argument("--nightly-term-limit", type=float, default=5,
                   help="seconds a nightly run may take to exit after SIGTERM")
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
        print("1..%d" % ((args.runs + args.kills + args.operator_rounds + args.instances)
                         * len(args.workflows) + 4 * args.nightly_rounds), flush=True)
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
        if args.operator_rounds > 0:
            soak.operator()
            bad += soak.operator_report()
        if args.nightly_rounds > 0:
            soak.operator_nightly()
            bad += soak.nightly_report()
    except KeyboardInterrupt:
        print("soak: interrupted", file=sys.stderr, flush=True)
        return 130
    finally:
        soak.close(args.keep or bad)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
