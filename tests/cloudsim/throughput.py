#!/usr/bin/env python3
"""Measures signed requests per second against cloudsim on loopback.

  python3 tests/cloudsim/throughput.py [--seconds 10] [--connections 16]

wrk replays one AiTEMS request signed with a fresh timestamp (the signature
is verified on every request; the gateway has no nonce, so replaying within
its five-minute window is legitimate). A second phase signs every request
anew with ACS3-HMAC-SHA256 and a unique nonce from python worker processes,
which measures the verifier's nonce bookkeeping too but is bounded by the
python client. Bounded in time; loopback only.
"""

import argparse
import multiprocessing
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from tests.cloudsim.harness import Emulator, acs3_headers, ncp_headers  # noqa: E402


def wrk(emu, seconds, connections):
    target = "/api/v1/services?offset=0&limit=10"
    headers = ncp_headers("GET", target)
    script = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)
    script.write("wrk.method = 'GET'\n")
    for k, v in headers.items():
        script.write("wrk.headers[%r] = %r\n" % (k, v))
    script.close()
    try:
        out = subprocess.run(["wrk", "-t2", "-c%d" % connections, "-d%ds" % seconds, "-s", script.name,
                              emu.url + target], capture_output=True, text=True, timeout=seconds + 30).stdout
    finally:
        os.unlink(script.name)
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return rate, int(bad.group(1)) if bad else 0


def _worker(args):
    port, host, seconds = args
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", port)
    path = "/v4/openapi/app-groups/bench/functions/ctr/instances?pageNumber=1&pageSize=10"
    n = bad = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        hs = acs3_headers("GET", path, b"", host, action="ListFunctionInstances")
        conn.request("GET", path, headers=hs)
        r = conn.getresponse()
        r.read()
        n += 1
        bad += r.status != 200
    return n, bad


def python_clients(emu, seconds, procs):
    with multiprocessing.Pool(procs) as pool:
        t0 = time.monotonic()
        results = pool.map(_worker, [(emu.port, emu.host, seconds)] * procs)
        elapsed = time.monotonic() - t0
    return sum(n for n, _ in results) / elapsed, sum(b for _, b in results)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--procs", type=int, default=3)
    a = ap.parse_args()
    emu = Emulator("--speed", "60")
    try:
        if shutil.which("wrk"):
            rate, bad = wrk(emu, a.seconds, a.connections)
            print("wrk, AiTEMS GET signed (NCP v2), %d connections: %.0f requests/s, %d non-2xx"
                  % (a.connections, rate, bad))
        rate, bad = python_clients(emu, a.seconds, a.procs)
        print("python, OpenSearch GET signed anew (ACS3, unique nonces), %d processes: %.0f requests/s, %d non-2xx"
              % (a.procs, rate, bad))
    finally:
        emu.stop()


if __name__ == "__main__":
    main()
