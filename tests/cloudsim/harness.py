"""Test harness: starts cloudsim as a subprocess and talks to it over HTTP
with signers written here, independently of the emulator's own code."""

import base64
import datetime
import email.utils
import hashlib
import hmac
import http.client
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.parse

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLOUDSIM = os.path.join(ROOT, "scripts", "cloudsim")

NCP_AK, NCP_SK = "cloudsim-ncp-access-key", "cloudsim-ncp-secret-key"
ACS_AK, ACS_SK = "cloudsim-acs-key-id", "cloudsim-acs-key-secret"
AZURE_KEY = "cloudsim-azure-language-key"
TENANT, CLIENT_ID, CLIENT_SECRET = "cloudsim-tenant", "cloudsim-client-id", "cloudsim-client-secret"
AZ_VERSION = "2023-04-01"

CLEAN_ENV = {k: v for k, v in os.environ.items()
             if not k.startswith(("NCLOUD_", "ALIBABA_CLOUD_", "AZURE_"))}


class Emulator:
    """One cloudsim process; the clock is frozen (--speed 0) unless asked."""

    def __init__(self, *args, env=None, cwd=None):
        cmd = [sys.executable, CLOUDSIM, "--port", "0", "--quiet"]
        if "--speed" not in args:
            cmd += ["--speed", "0"]
        # stderr goes to a file: a pipe nobody reads could fill and stall the server.
        self.stderr = tempfile.TemporaryFile("w+")
        self.proc = subprocess.Popen(cmd + list(args), stdout=subprocess.PIPE, stderr=self.stderr,
                                     env=dict(CLEAN_ENV, **(env or {})), cwd=cwd or ROOT, text=True)
        self.first_line = self.proc.stdout.readline().strip()
        if not self.first_line.startswith("cloudsim listening on "):
            self.proc.kill()
            self.proc.wait()
            self.proc.stdout.close()
            self.stderr.seek(0)
            why = self.stderr.read()
            self.stderr.close()
            raise RuntimeError("cloudsim did not start: %r %s" % (self.first_line, why))
        self.url = self.first_line.rsplit(" ", 1)[1]
        self.port = int(self.url.rsplit(":", 1)[1])
        self.host = "127.0.0.1:%d" % self.port
        self.conn = None
        self.ssl_context = None   # set for an emulator started with --tls-cert

    def stop(self, sig=None):
        if self.conn:
            self.conn.close()
        if self.proc.poll() is None:
            if sig is None:
                self.proc.terminate()
            else:
                self.proc.send_signal(sig)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()
        self.stderr.close()
        return self.proc.returncode

    # --- raw HTTP ----------------------------------------------------------
    def request(self, method, target, headers=None, body=b"", fresh=False):
        """-> (status, {lowercase header: value}, body bytes). Keeps one
        connection alive and opens a new one after a failure."""
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        elif isinstance(body, str):
            body = body.encode()
        for attempt in (0, 1):
            if self.conn is None or fresh:
                if self.conn is not None:
                    self.conn.close()
                if self.ssl_context is not None:
                    self.conn = http.client.HTTPSConnection("127.0.0.1", self.port, timeout=20,
                                                            context=self.ssl_context)
                else:
                    self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=20)
            try:
                self.conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
                hs = dict(headers or {})
                if not any(k.lower() == "host" for k in hs):
                    hs["Host"] = self.host
                for k, v in hs.items():
                    self.conn.putheader(k, v)
                if body or method in ("POST", "PUT", "PATCH"):
                    self.conn.putheader("Content-Length", str(len(body)))
                self.conn.endheaders(body or None)
                resp = self.conn.getresponse()
                data = resp.read()
                return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.conn.close()
                self.conn = None
                if attempt or fresh:
                    raise

    # --- admin ----------------------------------------------------------------
    def admin(self, method, path, body=None):
        status, _, data = self.request(method, "/_cloudsim/" + path, body=body if body is not None else b"")
        doc = json.loads(data)
        if status != 200:
            raise AssertionError("admin %s %s: %s %s" % (method, path, status, doc))
        return doc

    def advance(self, seconds):
        return self.admin("POST", "clock", {"advance": seconds})

    def reset(self):
        self.admin("POST", "reset")

    def log(self, **filters):
        q = urllib.parse.urlencode(filters)
        return self.admin("GET", "requests" + ("?" + q if q else ""))["requests"]

    def faults(self, *faults, **fields):
        return self.admin("POST", "faults", dict(fields, faults=list(faults)))

    # --- signed provider calls ----------------------------------------------------
    def aitems(self, method, path, body=None, query=None, ak=NCP_AK, sk=NCP_SK, ts=None, headers=None):
        target = "/api/v1" + path + ("?" + query if query else "")
        hs = ncp_headers(method, target, ak, sk, ts)
        hs.update(headers or {})
        data = json.dumps(body).encode() if body is not None else b""
        return decode(*self.request(method, target, hs, data))

    def opensearch(self, method, path, body=None, query=None, v2=False, **kw):
        data = json.dumps(body).encode() if body is not None else b""
        target = "/v4/openapi" + path + ("?" + query if query else "")
        sign = roa_headers if v2 else acs3_headers
        hs = sign(method, target, data, self.host, action=kw.pop("action", "Op"), **kw)
        return decode(*self.request(method, target, hs, data))

    def azure(self, method, path, body=None, query="", headers=None, key=AZURE_KEY, token=None):
        sep = "&" if query else ""
        target = "/language" + path + "?" + query + sep + "api-version=" + AZ_VERSION
        hs = {"Authorization": "Bearer " + token} if token else {"Ocp-Apim-Subscription-Key": key}
        if body is not None:
            hs["Content-Type"] = "application/json"
        hs.update(headers or {})
        data = json.dumps(body).encode() if body is not None else b""
        return decode(*self.request(method, target, hs, data))

    def token(self, tenant=TENANT, **form):
        fields = {"grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
                  "scope": "https://cognitiveservices.azure.com/.default"}
        fields.update(form)
        body = urllib.parse.urlencode({k: v for k, v in fields.items() if v is not None})
        return decode(*self.request("POST", "/%s/oauth2/v2.0/token" % tenant,
                                    {"Content-Type": "application/x-www-form-urlencoded"}, body))


class Reply:
    def __init__(self, status, headers, raw):
        self.status, self.headers, self.raw = status, headers, raw
        try:
            self.json = json.loads(raw) if raw else None
        except ValueError:
            self.json = None

    def __repr__(self):
        return "<%d %s>" % (self.status, self.raw[:300])


def decode(status, headers, raw):
    return Reply(status, headers, raw)


# --- signers, written from the API references ------------------------------------

def ncp_sign(method, target, timestamp, ak, sk):
    message = method + " " + target + "\n" + str(timestamp) + "\n" + ak
    mac = hmac.new(sk.encode("utf-8"), message.encode("utf-8"), hashlib.sha256)
    return base64.b64encode(mac.digest()).decode("ascii")


def ncp_headers(method, target, ak=NCP_AK, sk=NCP_SK, ts=None):
    ts = str(int(time.time() * 1000)) if ts is None else str(ts)
    return {"x-ncp-apigw-timestamp": ts, "x-ncp-iam-access-key": ak,
            "x-ncp-apigw-signature-v2": ncp_sign(method, target, ts, ak, sk),
            "Content-Type": "application/json"}


def _enc(s):
    # encodeURIComponent, then the characters it leaves alone but RFC 3986 reserves.
    out = urllib.parse.quote(s, safe="~()*!.'-_")
    for a, b in (("!", "%21"), ("'", "%27"), ("(", "%28"), (")", "%29"), ("*", "%2A")):
        out = out.replace(a, b)
    return out


def acs3_canonical(method, path, query, headers, payload_hash):
    """query: list of (key, value) decoded; headers: {name: value} to sign."""
    q = "&".join("%s=%s" % (_enc(k), _enc(v)) for k, v in sorted(query))
    names = sorted({k.lower() for k in headers})
    merged = {}
    for k, v in headers.items():
        merged.setdefault(k.lower(), []).append(str(v).strip())
    canon_headers = "".join(n + ":" + ",".join(sorted(merged[n])) + "\n" for n in names)
    return (method + "\n" + path + "\n" + q + "\n" + canon_headers + "\n" + ";".join(names) + "\n"
            + payload_hash), ";".join(names)


def acs3_sign(secret, canonical):
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    return hmac.new(secret.encode(), ("ACS3-HMAC-SHA256\n" + digest).encode(), hashlib.sha256).hexdigest()


def acs3_headers(method, target, body, host, action="Op", ak=ACS_AK, sk=ACS_SK, date=None, nonce=None,
                 extra=None, unsigned=None, omit=()):
    """The headers of an ACS3-signed request; omit names headers left out
    (and so not signed either)."""
    path, _, raw_q = target.partition("?")
    query = [tuple(urllib.parse.unquote(x) for x in (p.split("=", 1) + [""])[:2])
             for p in raw_q.split("&") if p]
    payload = hashlib.sha256(body).hexdigest()
    date = date or datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    signed = {"host": host, "x-acs-action": action, "x-acs-version": "2017-12-25", "x-acs-date": date,
              "x-acs-signature-nonce": nonce or secrets.token_hex(16), "x-acs-content-sha256": payload}
    if body:
        signed["content-type"] = "application/json; charset=utf-8"
    signed.update(extra or {})
    for h in omit:
        del signed[h]
    canonical, names = acs3_canonical(method, path, query, signed, payload)
    out = dict(signed)
    out["Authorization"] = "ACS3-HMAC-SHA256 Credential=%s,SignedHeaders=%s,Signature=%s" % (
        ak, names, acs3_sign(sk, canonical))
    out["accept"] = "application/json"
    out.update(unsigned or {})
    return out


def roa_string(method, headers, resource):
    lower = {k.lower(): v for k, v in headers.items()}
    acs = sorted((k, v.strip()) for k, v in lower.items() if k.startswith("x-acs-"))
    parts = [method, lower.get("accept", ""), lower.get("content-md5", ""), lower.get("content-type", ""),
             lower.get("date", "")]
    return "\n".join(parts) + "\n" + "".join("%s:%s\n" % kv for kv in acs) + resource


def roa_sign(secret, sts):
    return base64.b64encode(hmac.new(secret.encode(), sts.encode(), hashlib.sha1).digest()).decode()


def roa_headers(method, target, body, host, action="Op", ak=ACS_AK, sk=ACS_SK, date=None, nonce=None,
                md5=False, empty_style="=", extra=None):
    path, _, raw_q = target.partition("?")
    pairs = sorted(tuple(urllib.parse.unquote(x) for x in (p.split("=", 1) + [""])[:2])
                   for p in raw_q.split("&") if p)
    items = [k if (v == "" and empty_style == "") else k + "=" + v for k, v in pairs]
    resource = path + ("?" + "&".join(items) if items else "")
    hs = {"accept": "application/json", "date": date or email.utils.formatdate(usegmt=True), "host": host,
          "x-acs-signature-nonce": nonce or secrets.token_hex(16), "x-acs-signature-method": "HMAC-SHA1",
          "x-acs-signature-version": "1.0", "x-acs-version": "2017-12-25", "x-acs-action": action}
    if body:
        hs["content-type"] = "application/json; charset=utf-8"
        if md5:
            hs["content-md5"] = base64.b64encode(hashlib.md5(body).digest()).decode()
    hs.update(extra or {})
    hs["Authorization"] = "acs %s:%s" % (ak, roa_sign(sk, roa_string(method, hs, resource)))
    return hs


class EmulatorTest(unittest.TestCase):
    """One emulator per test class, reset before every test."""
    args = ()
    env = None

    @classmethod
    def setUpClass(cls):
        cls.sim = Emulator(*cls.args, env=cls.env)

    @classmethod
    def tearDownClass(cls):
        cls.sim.stop()

    def setUp(self):
        self.sim.reset()
