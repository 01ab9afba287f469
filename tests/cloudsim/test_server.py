"""The server itself: startup line, port file, HTTP/1.1 keep-alive, TLS,
state files, signals, credentials from the environment, and the admin API."""

import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import unittest

from .harness import CLOUDSIM, Emulator, EmulatorTest, ncp_headers


def read_response(sock_file):
    """(status, headers, body) from a file over a socket; needs Content-Length."""
    status = int(sock_file.readline().split()[1])
    headers = {}
    while True:
        line = sock_file.readline().decode().strip()
        if not line:
            break
        k, _, v = line.partition(":")
        headers[k.lower()] = v.strip()
    return status, headers, sock_file.read(int(headers["content-length"]))


def raw_request(method, target, host, headers=None, body=b"", version="HTTP/1.1"):
    lines = ["%s %s %s" % (method, target, version), "Host: " + host]
    lines += ["%s: %s" % kv for kv in (headers or {}).items()]
    if body:
        lines.append("Content-Length: %d" % len(body))
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class Startup(unittest.TestCase):
    def test_first_line_and_port_file(self):
        tmp = tempfile.mkdtemp()
        try:
            emu = Emulator("--port-file", os.path.join(tmp, "port"))
            try:
                self.assertRegex(emu.first_line, r"^cloudsim listening on http://127\.0\.0\.1:\d+$")
                with open(os.path.join(tmp, "port")) as f:
                    self.assertEqual(int(f.read()), emu.port)
            finally:
                self.assertEqual(emu.stop(), 0)
        finally:
            shutil.rmtree(tmp)

    def test_sigint_exits_cleanly(self):
        emu = Emulator()
        self.assertEqual(emu.stop(signal.SIGINT), 0)

    def test_bad_flags_fail(self):
        for args in (["--faults", "500:2"], ["--faults", "boom:0.1"], ["--tls-cert", "x"]):
            r = subprocess.run([sys.executable, CLOUDSIM] + args, capture_output=True, text=True, timeout=20)
            self.assertEqual(r.returncode, 2, args)

    def test_demo_env_lists_the_defaults(self):
        with open(os.path.join(CLOUDSIM, "demo.env")) as f:
            exported = dict(re.findall(r"^export (\w+)=(\S+)$", f.read(), re.M))
        self.assertEqual(exported, {
            "NCLOUD_ACCESS_KEY": "cloudsim-ncp-access-key", "NCLOUD_SECRET_KEY": "cloudsim-ncp-secret-key",
            "ALIBABA_CLOUD_ACCESS_KEY_ID": "cloudsim-acs-key-id",
            "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "cloudsim-acs-key-secret",
            "AZURE_LANGUAGE_KEY": "cloudsim-azure-language-key", "AZURE_TENANT_ID": "cloudsim-tenant",
            "AZURE_CLIENT_ID": "cloudsim-client-id", "AZURE_CLIENT_SECRET": "cloudsim-client-secret"})

    def test_credentials_come_from_the_environment(self):
        emu = Emulator(env={"NCLOUD_ACCESS_KEY": "mine", "NCLOUD_SECRET_KEY": "my-secret",
                            "AZURE_LANGUAGE_KEY": "az"})
        try:
            self.assertEqual(emu.aitems("GET", "/services").status, 401)
            self.assertEqual(emu.aitems("GET", "/services", ak="mine", sk="my-secret").status, 200)
            self.assertEqual(emu.azure("GET", "/authoring/analyze-text/projects").status, 401)
            self.assertEqual(emu.azure("GET", "/authoring/analyze-text/projects", key="az").status, 200)
        finally:
            emu.stop()


class State(unittest.TestCase):
    def test_state_survives_a_restart(self):
        tmp = tempfile.mkdtemp()
        path = os.path.join(tmp, "state.json")
        try:
            emu = Emulator("--state", path)
            sid = emu.aitems("POST", "/services", {"name": "kept"}).json["serviceId"]
            emu.opensearch("POST", "/app-groups/a/functions/ctr/instances",
                           {"instanceName": "inst", "modelType": "tf_checkpoint"})
            emu.opensearch("POST", "/app-groups/a/functions/ctr/instances/inst/tasks")
            emu.advance(300)
            self.assertEqual(emu.stop(), 0)
            with open(path) as f:
                self.assertIn(sid, json.dumps(json.load(f)))
            self.assertEqual([n for n in os.listdir(tmp)], ["state.json"])
            emu = Emulator("--state", path)
            try:
                self.assertEqual(emu.aitems("GET", "/services/" + sid).json["name"], "kept")
                task = emu.opensearch("GET", "/app-groups/a/functions/ctr/instances/inst/tasks/1").json["Result"]
                self.assertEqual((task["Status"], task["Progress"]), ("running", 50))
                emu.advance(300)
                task = emu.opensearch("GET", "/app-groups/a/functions/ctr/instances/inst/tasks/1").json["Result"]
                self.assertEqual(task["Status"], "success")
                again = emu.aitems("POST", "/services", {"name": "next"}).json["serviceId"]
                self.assertNotEqual(again, sid)
            finally:
                emu.stop()
        finally:
            shutil.rmtree(tmp)


class BadState(unittest.TestCase):
    def test_unreadable_state_is_an_error_not_a_traceback(self):
        with tempfile.NamedTemporaryFile("w", suffix=".json") as f:
            f.write("{not json")
            f.flush()
            r = subprocess.run([sys.executable, CLOUDSIM, "--state", f.name], capture_output=True, text=True,
                               timeout=20)
        self.assertEqual(r.returncode, 1)
        self.assertIn("cannot load state", r.stderr)
        self.assertNotIn("Traceback", r.stderr)


class Http(EmulatorTest):
    def test_keep_alive_serves_several_requests_on_one_connection(self):
        s = socket.create_connection(("127.0.0.1", self.sim.port), timeout=5)
        f = s.makefile("rb")
        try:
            for _ in range(3):
                s.sendall(raw_request("GET", "/api/v1/services", self.sim.host, ncp_headers("GET", "/api/v1/services")))
                status, headers, body = read_response(f)
                self.assertEqual(status, 200)
                self.assertNotIn("connection", headers)
        finally:
            f.close()
            s.close()

    def test_http10_without_keep_alive_is_closed(self):
        s = socket.create_connection(("127.0.0.1", self.sim.port), timeout=5)
        f = s.makefile("rb")
        try:
            s.sendall(raw_request("GET", "/_cloudsim/health", self.sim.host, version="HTTP/1.0"))
            status, headers, _ = read_response(f)
            self.assertEqual((status, headers["connection"]), (200, "close"))
            self.assertEqual(f.read(), b"")
        finally:
            f.close()
            s.close()

    def test_expect_continue_and_chunked_bodies(self):
        body = b'{"name":"chunky"}'
        s = socket.create_connection(("127.0.0.1", self.sim.port), timeout=5)
        f = s.makefile("rb")
        try:
            hs = dict(ncp_headers("POST", "/api/v1/services"), Expect="100-continue")
            s.sendall(raw_request("POST", "/api/v1/services", self.sim.host, dict(hs, **{"Content-Length":
                                                                                       str(len(body))})))
            self.assertEqual(f.readline(), b"HTTP/1.1 100 Continue\r\n")
            self.assertEqual(f.readline(), b"\r\n")
            s.sendall(body)
            self.assertEqual(read_response(f)[0], 201)
            hs = dict(ncp_headers("POST", "/api/v1/services"), **{"Transfer-Encoding": "chunked"})
            chunked = b"5\r\n" + b'{"nam' + b"\r\n" + b"%x\r\n" % 14 + b'e":"chunks2"}' + b"\r\n0\r\n\r\n"
            s.sendall(raw_request("POST", "/api/v1/services", self.sim.host, hs) + chunked)
            self.assertEqual(read_response(f)[0], 201)
        finally:
            f.close()
            s.close()
        names = [x["name"] for x in self.sim.aitems("GET", "/services").json["services"]]
        self.assertEqual(names, ["chunky", "chunks2"])

    def test_every_response_has_content_length(self):
        cases = [("GET", "/nowhere", {}), ("GET", "/api/v1/services", {}),
                 ("POST", "/_cloudsim/reset", {})]
        for method, target, hs in cases:
            status, headers, _ = self.sim.request(method, target, hs)
            self.assertIn("content-length", headers, target)
        r = self.sim.azure("DELETE", "/authoring/analyze-text/projects/none")
        self.assertIn("content-length", r.headers)

    def test_unknown_paths(self):
        status, _, body = self.sim.request("GET", "/elsewhere")
        self.assertEqual(status, 404)
        status, _, body = self.sim.request("GET", "/_cloudsim/nothing")
        self.assertEqual(status, 404)


class Admin(EmulatorTest):
    def test_clock(self):
        before = self.sim.admin("GET", "clock")
        after = self.sim.advance(90)
        self.assertAlmostEqual(after["sim"] - before["sim"], 90, delta=0.5)
        self.assertEqual(after["speed"], 0)
        doc = self.sim.admin("POST", "clock", {"speed": 2})
        self.assertEqual(doc["speed"], 2)
        self.sim.admin("POST", "clock", {"speed": 0})
        status, _, _ = self.sim.request("POST", "/_cloudsim/clock", body={"advance": -1})
        self.assertEqual(status, 400)

    def test_request_log_entries_and_filters(self):
        self.sim.aitems("POST", "/services", {"name": "logged"})
        self.sim.aitems("GET", "/services")
        self.sim.opensearch("GET", "/app-groups/a/functions/ctr/instances", query="pageSize=2")
        log = self.sim.log()
        self.assertEqual([e["operation"] for e in log], ["CreateService", "ListServices", "ListFunctionInstances"])
        e = log[2]
        self.assertEqual(set(e), {"seq", "wall", "sim", "provider", "operation", "method", "path", "query", "status",
                                  "fault", "when", "executed"})
        self.assertEqual((e["provider"], e["method"], e["query"], e["status"], e["fault"]),
                         ("opensearch", "GET", "pageSize=2", 200, None))
        self.assertEqual(len(self.sim.log(provider="aitems")), 2)
        self.assertEqual(len(self.sim.log(operation="CreateService", status=201)), 1)
        self.assertEqual([x["seq"] for x in self.sim.log(since=log[0]["seq"])], [log[1]["seq"], log[2]["seq"]])

    def test_reset_and_state(self):
        self.sim.aitems("POST", "/services", {"name": "gone"})
        state = self.sim.admin("GET", "state")
        self.assertEqual(set(state["providers"]), {"aitems", "opensearch", "azure", "entra"})
        self.assertEqual(len(state["providers"]["aitems"]["services"]), 1)
        self.sim.reset()
        self.assertEqual(self.sim.admin("GET", "state")["providers"]["aitems"]["services"], {})
        self.assertEqual(self.sim.log(), [])


class RequestLogFile(unittest.TestCase):
    def test_log_file_gets_json_lines(self):
        tmp = tempfile.mkdtemp()
        try:
            path = os.path.join(tmp, "requests.log")
            emu = Emulator("--log", path)
            emu.aitems("GET", "/services")
            self.assertEqual(emu.stop(), 0)
            with open(path) as f:
                entries = [json.loads(line) for line in f]
            self.assertEqual([e["operation"] for e in entries], ["ListServices"])
        finally:
            shutil.rmtree(tmp)


@unittest.skipUnless(shutil.which("openssl"), "openssl is needed to make a certificate")
class Tls(unittest.TestCase):
    def test_https(self):
        tmp = tempfile.mkdtemp()
        try:
            cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
            subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                            "/CN=127.0.0.1", "-keyout", key, "-out", cert], check=True, capture_output=True)
            emu = Emulator("--tls-cert", cert, "--tls-key", key)
            try:
                self.assertTrue(emu.url.startswith("https://127.0.0.1:"))
                ctx = ssl.create_default_context(cafile=cert)
                ctx.check_hostname = False
                import http.client
                conn = http.client.HTTPSConnection("127.0.0.1", emu.port, context=ctx, timeout=10)
                path = "/language/authoring/analyze-text/projects?api-version=2023-04-01&maxpagesize=1"
                for _ in range(2):
                    conn.request("GET", path, headers={"Ocp-Apim-Subscription-Key": "cloudsim-azure-language-key"})
                    r = conn.getresponse()
                    self.assertEqual(r.status, 200)
                    r.read()
                conn.close()
            finally:
                self.assertEqual(emu.stop(), 0)
        finally:
            shutil.rmtree(tmp)


if __name__ == "__main__":
    unittest.main()
