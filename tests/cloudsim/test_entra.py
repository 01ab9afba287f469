"""Entra ID as Microsoft's own library uses it: MSAL for Python (Debian's
python3-msal, run by tests/cloudsim/msal_client.py) validates the authority, reads the tenant's OpenID
configuration and asks for a client-credentials token, all from the
emulator over HTTPS (MSAL accepts no other scheme); the token then opens
Azure Language."""

import base64
import json
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import unittest
import urllib.parse

from .harness import CLIENT_ID, CLIENT_SECRET, TENANT, Emulator

SCOPE = "https://cognitiveservices.azure.com/.default"
CLIENT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "msal_client.py")


def msal_python():
    """An interpreter that has MSAL: this one, or the system's (where the
    package manager put python3-msal)."""
    for exe in (sys.executable, "/usr/bin/python3"):
        if os.path.exists(exe) and subprocess.run([exe, "-c", "import msal, requests"],
                                                  capture_output=True).returncode == 0:
            return exe
    raise AssertionError("MSAL for Python is needed: install python3-msal (scripts/deps.sh)")


class EntraWithMsal(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp()
        cls.cert, key = os.path.join(cls.tmp, "cert.pem"), os.path.join(cls.tmp, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                        "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", key,
                        "-out", cls.cert], check=True, capture_output=True)
        cls.sim = Emulator("--tls-cert", cls.cert, "--tls-key", key)
        cls.sim.ssl_context = ssl.create_default_context(cafile=cls.cert)
        cls.python = msal_python()

    @classmethod
    def tearDownClass(cls):
        cls.sim.stop()
        shutil.rmtree(cls.tmp)

    def setUp(self):
        self.sim.reset()

    def msal(self, tenant=TENANT, secret=CLIENT_SECRET, scopes=(SCOPE,), **kw):
        """Runs MSAL's client-credentials flow against the emulator."""
        args = dict(base=self.sim.url, cert=self.cert, tenant=tenant, client_id=CLIENT_ID, secret=secret,
                    scopes=list(scopes), **kw)
        p = subprocess.run([self.python, CLIENT, json.dumps(args)], capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        return json.loads(p.stdout)

    def entra_log(self):
        return [(e["operation"], e["method"], e["status"]) for e in self.sim.log(provider="entra")]

    def assert_token_opens_azure(self, result):
        self.assertEqual(result.get("token_type"), "Bearer", result)
        self.assertTrue(0 < result["expires_in"] <= 3599, result)
        r = self.sim.azure("GET", "/authoring/analyze-text/projects", token=result["access_token"])
        self.assertEqual(r.status, 200, r)

    def test_msal_validates_the_authority_and_gets_a_token(self):
        out = self.msal()
        self.assert_token_opens_azure(out["results"][0])
        self.assertEqual(self.entra_log(), [("InstanceDiscovery", "GET", 200), ("OpenIdConfiguration", "GET", 200),
                                            ("Token", "POST", 200)])
        # The discovery MSAL sent to login.microsoftonline.com asked about
        # the emulator's authority.
        method, url, params = out["seen"][0]
        self.assertEqual((method, url), ("GET", self.sim.url + "/common/discovery/instance"))
        # (MSAL names the authority's host without its port.)
        self.assertEqual(params["authorization_endpoint"], "https://127.0.0.1/%s/oauth2/v2.0/authorize" % TENANT)
        # Every later request went where the documents pointed: the emulator.
        self.assertEqual([(m, u) for m, u, _ in out["seen"][1:]], [
            ("GET", "%s/%s/v2.0/.well-known/openid-configuration" % (self.sim.url, TENANT)),
            ("POST", "%s/%s/oauth2/v2.0/token" % (self.sim.url, TENANT))])

    def test_msal_with_a_known_authority(self):
        out = self.msal(validate_authority=False, times=2)
        for result in out["results"]:
            self.assert_token_opens_azure(result)
        # No instance discovery; the configuration read once per application.
        self.assertEqual(self.entra_log(), [("OpenIdConfiguration", "GET", 200), ("Token", "POST", 200),
                                            ("Token", "POST", 200)])

    def test_msal_sees_entra_errors(self):
        result = self.msal(secret="wrong")["results"][0]
        self.assertEqual((result.get("error"), result.get("error_codes")), ("invalid_client", [7000215]))
        self.assertNotIn("access_token", result)
        result = self.msal(scopes=["https://management.azure.com/.default"])["results"][0]
        self.assertEqual((result.get("error"), result.get("error_codes")), ("invalid_scope", [70011]))
        out = self.msal(tenant="no-such-tenant")
        self.assertRegex(out["error"], "^ValueError: Unable to get authority configuration")

    def get(self, url, **query):
        u = urllib.parse.urlsplit(url)
        self.assertEqual("%s://%s" % (u.scheme, u.netloc), self.sim.url)
        target = u.path + ("?" + urllib.parse.urlencode(query) if query else "")
        status, _, raw = self.sim.request("GET", target)
        return status, json.loads(raw)

    def test_discovery_documents_point_at_the_emulator(self):
        base = self.sim.url
        status, doc = self.get("%s/%s/v2.0/.well-known/openid-configuration" % (base, TENANT))
        self.assertEqual(status, 200)
        self.assertEqual((doc["issuer"], doc["token_endpoint"], doc["jwks_uri"], doc["authorization_endpoint"]),
                         ("%s/%s/v2.0" % (base, TENANT), "%s/%s/oauth2/v2.0/token" % (base, TENANT),
                          "%s/%s/discovery/v2.0/keys" % (base, TENANT),
                          "%s/%s/oauth2/v2.0/authorize" % (base, TENANT)))
        self.assertIn("client_secret_post", doc["token_endpoint_auth_methods_supported"])
        self.assertEqual(self.get(base + "/common/v2.0/.well-known/openid-configuration")[1]["issuer"],
                         base + "/{tenantid}/v2.0")
        status, missing = self.get(base + "/nobody/v2.0/.well-known/openid-configuration")
        self.assertEqual((status, missing["error"], missing["error_codes"]), (400, "invalid_tenant", [90002]))
        keys = self.get(doc["jwks_uri"])[1]["keys"]
        self.assertEqual([(k["kty"], k["use"], k["e"]) for k in keys], [("RSA", "sig", "AQAB")])
        self.assertEqual(len(base64.urlsafe_b64decode(keys[0]["n"] + "==")), 256)
        # Tokens name the key the JWKS lists.
        token = self.sim.token().json["access_token"]
        header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
        self.assertEqual((header["alg"], header["kid"]), ("RS256", keys[0]["kid"]))
        status, found = self.get(base + "/common/discovery/instance", **{
            "api-version": "1.1", "authorization_endpoint": "https://example.test/%s/oauth2/v2.0/authorize" % TENANT})
        self.assertEqual(found["tenant_discovery_endpoint"],
                         "%s/%s/v2.0/.well-known/openid-configuration" % (base, TENANT))
        self.assertEqual(found["metadata"][0]["aliases"], ["example.test"])
        status, bad = self.get(base + "/common/discovery/instance", authorization_endpoint="http://x/t/authorize")
        self.assertEqual((status, bad["error"]), (400, "invalid_instance"))

if __name__ == "__main__":
    unittest.main()
