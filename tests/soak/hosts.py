#!/usr/bin/env python3
"""Multi-host soak: N hosts run one nightly job against one etcd cluster.

A real 3-member etcd cluster (etcd-server) and cloudsim with random faults
(20 % of provider requests by default). For each of --jobs jobs (an
OpenSearch CTR training, tests/etcd/ctr_workflow.lua, its state on etcd),
--hosts "hosts" (trainctl processes with XDG and temporary directories of
their own) start the job at once, with --lock on etcd, and each starts it
again, like a timer, until it has succeeded once: exit 3 (held) and exit 1
(a cloud error, a lost lease) are tried again. Chaos: a random run is
killed with SIGKILL, or paused with SIGSTOP past its TTL and resumed; once
during the soak an etcd member is killed and restarted.

Checked at the end, from the emulator's request log and etcd: exactly one
training started per job (no duplicate), every job's results in its state
and printed by the run that finished it (none lost). Prints the counts and
exits 1 on a duplicate or a lost result, keeping its work directory.

    python3 tests/soak/hosts.py [--jobs 10] [--hosts 3] [--seed N] [--keep]
"""

import argparse
import base64
import collections
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

CREDENTIALS = {
    "ALIBABA_CLOUD_ACCESS_KEY_ID": "cloudsim-acs-key-id",
    "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "cloudsim-acs-key-secret",
}

FAULTS = "500:0.03,503:0.03,429:0.03,reset:0.03,slow:0.03,badjson:0.03,truncate:0.02"

# Quicker retries and a client timeout under the slow faults, as the main
# soak has them. The timeout is the policy's too: a start whose answer
# was lost holds the job's lock until that timeout (and a margin) has
# passed, and with the default of 300 s the other hosts were turned away
# for minutes by requests that could not take more than half a second.
HOOK = """
local http = require("trainctl.http")
http.retry_defaults.base_delay = 0.1
http.retry_defaults.timeout = %g
local send = http.send
http.send = function(req)
  req.timeout = req.timeout or http.retry_defaults.timeout
  return send(req)
end
"""


def free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def post(url, body, timeout=2):
    req = urllib.request.Request(url, data=json.dumps(body).encode(),
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read())


class Etcd:
    def __init__(self, workdir):
        self.dir = workdir
        # The members' data in memory where there is a tmpfs: on a busy disk
        # an fsync of etcd's log can take seconds, longer than the short
        # leases here, and a holder whose renewal or write waits on it loses its lock.
        shm = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
        self.data = tempfile.mkdtemp(prefix="trainctl-hosts-etcd-", dir=shm or workdir)
        ports = free_ports(6)
        self.members = [{"name": "m%d" % (i + 1), "client": ports[2 * i], "peer": ports[2 * i + 1],
                         "proc": None} for i in range(3)]
        self.initial = ",".join("%s=http://127.0.0.1:%d" % (m["name"], m["peer"]) for m in self.members)
        for i in range(3):
            self.start(i, "new")
        self.wait_healthy()

    def start(self, i, state="existing"):
        m = self.members[i]
        log = open(os.path.join(self.dir, m["name"] + ".log"), "ab")
        m["proc"] = subprocess.Popen(
            ["etcd", "--name", m["name"], "--data-dir", os.path.join(self.data, m["name"] + ".etcd"),
             "--listen-client-urls", "http://127.0.0.1:%d" % m["client"],
             "--advertise-client-urls", "http://127.0.0.1:%d" % m["client"],
             "--listen-peer-urls", "http://127.0.0.1:%d" % m["peer"],
             "--initial-advertise-peer-urls", "http://127.0.0.1:%d" % m["peer"],
             "--initial-cluster", self.initial, "--initial-cluster-state", state,
             "--heartbeat-interval", "50", "--election-timeout", "500"],
            stdout=log, stderr=subprocess.STDOUT)
        log.close()

    def kill(self, i):
        p = self.members[i]["proc"]
        if p and p.poll() is None:
            p.kill()
            p.wait()
        self.members[i]["proc"] = None

    def wait_healthy(self):
        deadline = time.time() + 30
        for m in self.members:
            while True:
                try:
                    with urllib.request.urlopen("http://127.0.0.1:%d/health" % m["client"], timeout=1) as r:
                        if json.loads(r.read()).get("health") == "true":
                            break
                except OSError:
                    pass
                if time.time() > deadline:
                    raise SystemExit("etcd member %s is not healthy" % m["name"])
                time.sleep(0.05)

    def url(self, key):
        return "etcd://%s/%s" % (",".join("127.0.0.1:%d" % m["client"] for m in self.members), key)

    def get(self, key):
        for m in self.members:
            try:
                ans = post("http://127.0.0.1:%d/v3/kv/range" % m["client"],
                           {"key": base64.b64encode(key.encode()).decode()})
            except OSError:
                continue
            kvs = ans.get("kvs") or []
            return base64.b64decode(kvs[0]["value"]).decode() if kvs else None
        raise SystemExit("no etcd member answers")

    def stop(self):
        for i in range(3):
            self.kill(i)
        shutil.rmtree(self.data, ignore_errors=True)


class Cloudsim:
    def __init__(self, args, workdir):
        port_file = os.path.join(workdir, "cloudsim.port")
        self.log = open(os.path.join(workdir, "cloudsim.log"), "wb")
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(ROOT, "scripts", "cloudsim"), "--port", "0",
             "--port-file", port_file, "--speed", str(args.speed), "--seed", str(args.seed),
             "--data-dir", os.path.join(ROOT, "examples", "data"), "--faults", args.faults,
             "--fault-when", "random", "--slow-seconds", "0.8", "--retry-after", "0.1",
             "--log-limit", "2000000", "--quiet"],
            stdout=self.log, stderr=subprocess.STDOUT)
        for _ in range(200):
            if os.path.exists(port_file) or self.proc.poll() is not None:
                break
            time.sleep(0.05)
        time.sleep(0.05)
        with open(port_file) as f:
            self.url = "http://127.0.0.1:%d" % int(f.read())

    def started(self, instance):
        with urllib.request.urlopen(self.url + "/_cloudsim/requests?operation=CreateFunctionTask",
                                    timeout=60) as r:
            reqs = json.loads(r.read())["requests"]
        n = 0
        for q in reqs:
            if "/instances/%s/" % instance not in q.get("path", ""):
                continue
            ok = isinstance(q.get("status"), int) and 200 <= q["status"] < 300
            if q.get("executed") and ((ok and q.get("fault") is None) or q.get("when") == "after"):
                n += 1
        return n

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


class Soak:
    def __init__(self, args):
        self.args = args
        self.rng = random.Random(args.seed)
        self.lock = threading.Lock()
        self.workdir = tempfile.mkdtemp(prefix="trainctl-hosts-soak-")
        self.counts = collections.Counter()
        self.results = {}
        self.failures = []

    def env(self, host, job):
        d = os.path.join(self.workdir, "host-%s" % host)
        os.makedirs(os.path.join(d, "tmp"), exist_ok=True)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": d,
               "XDG_STATE_HOME": os.path.join(d, "state"), "XDG_CONFIG_HOME": os.path.join(d, "config"),
               "TMPDIR": os.path.join(d, "tmp"), "TRAINCTL_OPENSEARCH_ENDPOINT": self.sim.url,
               "TRAINCTL_POLL_INTERVAL": "0.1", "TEST_HOST": host,
               "TEST_ETCD_STATE": self.etcd.url("soak/%s/state" % job)}
        env.update(CREDENTIALS)
        return env

    def attempt(self, host, job, n):
        cmd = [self.args.trainctl, "-e", HOOK % 0.5, "--lock", self.etcd.url("soak/%s/lock" % job),
               "--lock-ttl", str(self.args.ttl), os.path.join(ROOT, "tests", "etcd", "ctr_workflow.lua"), job]
        base = os.path.join(self.workdir, "%s.%s.%d" % (job, host, n))
        with open(base + ".out", "wb") as out, open(base + ".err", "wb") as err:
            p = subprocess.Popen(cmd, stdout=out, stderr=err, env=self.env(host, job), cwd=ROOT)
            with self.lock:
                r = self.rng.random()
                chaos = "kill" if r < self.args.kill_rate else "stop" if r < 2 * self.args.kill_rate else None
                delay = self.rng.uniform(0.1, 1.5)
            if chaos:
                try:
                    p.wait(delay)
                except subprocess.TimeoutExpired:
                    if chaos == "kill":
                        p.kill()
                    else:
                        p.send_signal(signal.SIGSTOP)
                        time.sleep(self.args.ttl * self.rng.uniform(1.5, 3))
                        p.send_signal(signal.SIGCONT)
                    with self.lock:
                        self.counts[chaos] += 1
            try:
                code = p.wait(self.args.run_timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                code = p.wait()
                with self.lock:
                    self.counts["hung"] += 1
        with open(base + ".err", "rb") as f:
            text = f.read().decode(errors="replace")
        with self.lock:
            self.counts["runs"] += 1
            self.counts["exit %d" % code] += 1
            if code == 1 and "lost the lock" in text:
                self.counts["fenced out (exit 1)"] += 1
            if "Traceback" in text or "stack traceback" in text:
                self.failures.append("traceback in %s.err" % base)
        if code == 0:
            with open(base + ".out") as f:
                return json.loads(f.read())
        return None

    def host(self, host, job):
        for n in range(1, self.args.max_attempts + 1):
            doc = self.attempt(host, job, n)
            if doc is not None:
                with self.lock:
                    self.results.setdefault(job, []).append(doc)
                return
            time.sleep(self.rng.uniform(0.1, 0.5))
        with self.lock:
            self.failures.append("%s: host %s did not succeed in %d attempts" % (job, host,
                                                                              self.args.max_attempts))

    def run(self):
        a = self.args
        self.etcd = Etcd(self.workdir)
        self.sim = Cloudsim(a, self.workdir)
        try:
            restart_at = max(1, a.jobs // 2)
            for j in range(1, a.jobs + 1):
                job = "h%d" % j
                threads = [threading.Thread(target=self.host, args=("host%d" % h, job))
                           for h in range(1, a.hosts + 1)]
                for t in threads:
                    t.start()
                if j == restart_at:
                    # one member (perhaps the leader) dies mid-job and comes back
                    time.sleep(0.5)
                    i = self.rng.randrange(3)
                    self.etcd.kill(i)
                    time.sleep(1)
                    self.etcd.start(i)
                    self.counts["etcd member restarts"] += 1
                for t in threads:
                    t.join()
                self.check(job)
        finally:
            self.sim.stop()
            self.etcd.stop()

    def check(self, job):
        started = self.sim.started(job)
        state = self.etcd.get("soak/%s/state/ctr/%s" % (job, job))
        doc = json.loads(state) if state else {}
        self.counts["trainings"] += started
        if started > 1:
            self.counts["duplicates"] += started - 1
            self.failures.append("%s: %d trainings started" % (job, started))
        outs = [d for d in self.results.get(job, []) if isinstance(d.get("metrics"), dict)]
        if not isinstance(doc.get("metrics"), dict) or not outs:
            self.counts["lost results"] += 1
            self.failures.append("%s: no results (state %r)" % (job, state))

    def report(self):
        c = self.counts
        print("hosts soak: seed %d, %d jobs x %d hosts, TTL %ss, faults %s" % (
            self.args.seed, self.args.jobs, self.args.hosts, self.args.ttl, self.args.faults))
        for k in sorted(c):
            print("  %-24s %d" % (k, c[k]))
        print("  duplicate trainings      %d" % c["duplicates"])
        print("  lost results             %d" % c["lost results"])
        for f in self.failures:
            print("FAIL " + f)
        return not self.failures


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--jobs", type=int, default=10)
    p.add_argument("--hosts", type=int, default=3)
    p.add_argument("--ttl", type=int, default=2, help="--lock-ttl of the runs, seconds")
    p.add_argument("--kill-rate", type=float, default=0.25,
                   help="share of runs killed with SIGKILL (as many are paused past the TTL)")
    p.add_argument("--faults", default=FAULTS)
    p.add_argument("--speed", type=float, default=600)
    p.add_argument("--seed", type=int, default=int(os.environ.get("SOAK_SEED", "0")) or
                   random.randrange(1, 10**7))
    # A run that finds a start whose answer was lost holds the job's lock
    # while that start may still land (the client's timeout, 5 s and the
    # settling time: about 16 s here); the other hosts, turned away at
    # once, try again every 0.1-0.5 s meanwhile.
    p.add_argument("--max-attempts", type=int, default=400)
    p.add_argument("--run-timeout", type=float, default=120)
    p.add_argument("--trainctl", default=os.environ.get("TRAINCTL", os.path.join(ROOT, "trainctl")))
    p.add_argument("--keep", action="store_true")
    a = p.parse_args()
    a.trainctl = os.path.abspath(a.trainctl)
    soak = Soak(a)
    soak.run()
    ok = soak.report()
    if ok and not a.keep:
        shutil.rmtree(soak.workdir, ignore_errors=True)
    else:
        print("work directory: " + soak.workdir)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
