"""The sequential benchmark's Python peer: the same N signed GETs with the
standard library (http.client on one kept-alive connection, hmac, json),
so the figure compares like with like.

    BENCH_BASE=http://127.0.0.1:PORT python3 bench/sequential.py [N]
"""
import base64
import hashlib
import hmac
import http.client
import json
import os
import sys
import time
import urllib.parse

ACCESS_KEY = os.environ.get("NCLOUD_ACCESS_KEY", "bench-access-key")
SECRET_KEY = os.environ.get("NCLOUD_SECRET_KEY", "bench-secret-key").encode()
LIST = "/api/v1/services/abc/trains?isRecent=true"


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    base = urllib.parse.urlsplit(os.environ["BENCH_BASE"])
    conn = http.client.HTTPConnection(base.hostname, base.port)

    def get(path):
        ts = "%d" % (time.time() * 1000)
        msg = "GET %s\n%s\n%s" % (path, ts, ACCESS_KEY)
        sig = base64.b64encode(hmac.new(SECRET_KEY, msg.encode(), hashlib.sha256).digest()).decode()
        conn.request("GET", path, headers={
            "content-type": "application/json",
            "user-agent": "python",
            "x-ncp-apigw-timestamp": ts,
            "x-ncp-iam-access-key": ACCESS_KEY,
            "x-ncp-apigw-signature-v2": sig,
        })
        res = conn.getresponse()
        body = res.read()
        if res.status != 200:
            raise SystemExit("GET %s: HTTP %d" % (path, res.status))
        doc = json.loads(body)
        if len(doc["trains"]) != 4:
            raise SystemExit("unexpected list_trains answer")
        return doc

    get(LIST)  # connect outside the timed loop
    t0, cpu0 = time.perf_counter(), time.process_time()
    for _ in range(n):
        get(LIST)
    seconds = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    print(json.dumps({"requests": n, "seconds": seconds, "rate": n / seconds,
                      "cpu_per_request_us": cpu / n * 1e6}))


if __name__ == "__main__":
    main()
