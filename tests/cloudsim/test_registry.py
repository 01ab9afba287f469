"""The registry of clouds (scripts/cloudsim/providers/__init__.py): a cloud
added to PROVIDERS, and nowhere else, is routed by its prefix, has its
command-line flag and credentials, and takes part in the request log,
scripted faults and the state dump. Each registered cloud answers its own
prefixes."""

import json
import os
import subprocess
import sys
import tempfile
import unittest

from .harness import CLEAN_ENV, ROOT, Emulator

TOY = r'''
import sys
sys.path.insert(0, sys.argv[1])
from cloudsim import providers
from cloudsim.common import ApiError, Provider, compile_routes


class Toy(Provider):
    name = "toy"
    prefixes = ("/toy/",)
    credentials = {"TOY_KEY": "toy-demo-key"}
    routes = compile_routes("/toy", [("GET", "/things/{id}", "GetThing", "get_thing")])

    @classmethod
    def options(cls, a):
        a("--toy-answer", default="none")

    def authenticate(self, req):
        if req.headers.get("x-toy-key") != self.cfg.credentials["TOY_KEY"]:
            return self.render_error(ApiError(401, "Denied", "bad key"), req)
        return None

    def get_thing(self, ctx):
        return self.ok({"id": ctx.p["id"], "answer": self.cfg.toy_answer})


providers.PROVIDERS += (Toy,)
from cloudsim.cli import main
sys.exit(main(sys.argv[2:]))
'''


class ToyEmulator(Emulator):
    """cloudsim with one more cloud registered before it starts."""

    def __init__(self, *args):
        self.script = tempfile.NamedTemporaryFile("w", suffix=".py", delete=False)
        self.script.write(TOY)
        self.script.close()
        self.stderr = tempfile.TemporaryFile("w+")
        cmd = [sys.executable, self.script.name, os.path.join(ROOT, "scripts"), "--port", "0", "--quiet",
               "--speed", "0"] + list(args)
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self.stderr, env=CLEAN_ENV, cwd=ROOT,
                                     text=True)
        self.first_line = self.proc.stdout.readline().strip()
        if not self.first_line.startswith("cloudsim listening on "):
            self.proc.kill()
            self.proc.wait()
            self.stderr.seek(0)
            raise RuntimeError("cloudsim did not start: %r %s" % (self.first_line, self.stderr.read()))
        self.url = self.first_line.rsplit(" ", 1)[1]
        self.port = int(self.url.rsplit(":", 1)[1])
        self.host = "127.0.0.1:%d" % self.port
        self.conn = None
        self.ssl_context = None

    def stop(self, sig=None):
        try:
            return super().stop(sig)
        finally:
            os.unlink(self.script.name)


class Registry(unittest.TestCase):
    def test_a_fourth_cloud_is_one_class_and_one_registry_entry(self):
        sim = ToyEmulator("--toy-answer", "forty-two")
        try:
            status, _, body = sim.request("GET", "/toy/things/7", {"x-toy-key": "toy-demo-key"})
            self.assertEqual((status, json.loads(body)), (200, {"id": "7", "answer": "forty-two"}))
            status, _, body = sim.request("GET", "/toy/things/7", {"x-toy-key": "wrong"})
            self.assertEqual((status, json.loads(body)["code"]), (401, "Denied"))
            self.assertEqual([(e["provider"], e["operation"], e["status"]) for e in sim.log()],
                             [("toy", "GetThing", 200), ("toy", "GetThing", 401)])
            sim.admin("POST", "faults", {"faults": [{"kind": "503", "match": {"provider": "toy"}}]})
            self.assertEqual(sim.request("GET", "/toy/things/7", {"x-toy-key": "toy-demo-key"})[0], 503)
            self.assertIn("toy", sim.admin("GET", "state")["providers"])
            # The other clouds still answer beside it.
            self.assertEqual(sim.request("GET", "/language/authoring/analyze-text/projects")[0], 401)
        finally:
            self.assertEqual(sim.stop(), 0)

    def test_each_registered_cloud_answers_its_prefixes(self):
        sim = Emulator()
        try:
            for path, provider in (("/api/v1/services", "aitems"),
                                   ("/v4/openapi/app-groups/g/functions/f/instances", "opensearch"),
                                   ("/language/authoring/analyze-text/projects", "azure"),
                                   ("/t/oauth2/v2.0/token", "entra"),
                                   ("/t/v2.0/.well-known/openid-configuration", "entra"),
                                   ("/common/discovery/instance", "entra"),
                                   ("/t/discovery/v2.0/keys", "entra")):
                sim.request("GET", path)
                self.assertEqual(sim.log()[-1]["provider"], provider, path)
            status, _, body = sim.request("GET", "/elsewhere")
            self.assertEqual((status, json.loads(body)), (404, {"error": "no provider serves /elsewhere"}))
        finally:
            sim.stop()


if __name__ == "__main__":
    unittest.main()
