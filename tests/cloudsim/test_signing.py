"""Signatures: the worked examples of the references verify with the test's
own signer and with the emulator's verifier, and a one-character change in
any signed part of a request makes the emulator reject it."""

import email.utils
import hashlib
import os
import sys
import time
import unittest

from .harness import (ACS_AK, ACS_SK, NCP_AK, NCP_SK, EmulatorTest, acs3_canonical, acs3_headers, acs3_sign,
                      ncp_headers, ncp_sign, roa_headers, roa_sign, roa_string)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                                "scripts"))
from cloudsim import signing  # noqa: E402

SECRET2 = "EXAMPLESECRETKEY00000000000000000000001"
NCP_VECTORS = [  # aitems.md 1.2
    ("GET", "/photos/puppy.jpg?query1=&query2", "1700000000000", "ACCESS_KEY_ID", "ncp-secret-example",
     "iPe1hFfjl7BPGhFZJGCY5XZgH6eWMwCWlSdSkKU+SPE="),
    ("POST", "/api/v1/services", "1722306336558", "EXAMPLEACCESSKEY0001", SECRET2,
     "PTi7hR7Fyh9mlEx9zJeLrThCU3gNibFKJPPKCwiwH9o="),
    ("GET", "/api/v1/services/abc123xyz00/trains?offset=0&limit=1000&isRecent=true", "1722306336558",
     "EXAMPLEACCESSKEY0001", SECRET2, "Ry3UnWJZ+QL+gN35FHi8LWoK7cIE/JprFwaevbbtDtk="),
    ("GET", "/api/v1/services/abc123xyz00/infers/lookup?type=personalRecommend&targetId=user1", "1722306336558",
     "EXAMPLEACCESSKEY0001", SECRET2, "gN5uRtpHSJx1ZuKK+N5quAByqSa9PE7XBOEJXrUNE4Y="),
    ("DELETE", "/api/v1/services/abc123xyz00", "1722306336558", "EXAMPLEACCESSKEY0001", SECRET2,
     "Z0K895VyEiDQsE3KCxLQ6kkYp2cuoU7GxO/IwvZLjxc="),
    ("PUT", "/api/v1/services/abc123xyz00/schedule?action=stop", "1722306336558", "EXAMPLEACCESSKEY0001",
     SECRET2, "EmFx7dVgSwZq+7HC2YNwFj1TBuaQ0uvijVZcGDWdAQs="),
]

# opensearch.md 5.4 (b): host, key, nonce and dates shared by the four examples.
OS_HOST = "opensearch.cn-hangzhou.aliyuncs.com"
OS_NONCE = "3156853299f313e23d1673dc12e1703d"
OS_DATE = "Thu, 26 Oct 2023 10:22:32 GMT"
OS_LIST = "/v4/openapi/app-groups/my_app/functions/ctr/instances/ctr_test/tasks"
OS_QUERY = "pageNumber=1&pageSize=10&status=success"
OS_CREATE = "/v4/openapi/app-groups/my_app/functions/ctr/instances"
OS_BODY = b'{"instanceName":"ctr_test","modelType":"tf_checkpoint","functionType":"PAAS"}'
EMPTY = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def roa_vector_headers(action, body=False, md5=False):
    hs = {"accept": "application/json", "date": OS_DATE, "host": OS_HOST, "x-acs-action": action,
          "x-acs-signature-method": "HMAC-SHA1", "x-acs-signature-nonce": OS_NONCE,
          "x-acs-signature-version": "1.0", "x-acs-version": "2017-12-25"}
    if body:
        hs["content-type"] = "application/json; charset=utf-8"
    if md5:
        hs["content-md5"] = "Xsjam0PUGGvnnl5KPyu1IA=="
    return hs


def acs3_vector_headers(action, payload, body=False):
    hs = {"host": OS_HOST, "x-acs-action": action, "x-acs-content-sha256": payload,
          "x-acs-date": "2023-10-26T10:22:32Z", "x-acs-signature-nonce": OS_NONCE, "x-acs-version": "2017-12-25"}
    if body:
        hs["content-type"] = "application/json; charset=utf-8"
    return hs


class ReferenceVectors(unittest.TestCase):
    """Each worked example checked against both implementations."""

    def test_ncp_examples(self):
        for method, uri, ts, ak, sk, expected in NCP_VECTORS:
            self.assertEqual(ncp_sign(method, uri, ts, ak, sk), expected, uri)
            self.assertEqual(signing.ncp_v2(method, uri, ts, ak, sk), expected, uri)

    def test_ncp_hex_of_first_example(self):
        import base64
        sig = base64.b64decode(ncp_sign(*NCP_VECTORS[0][:5]))
        self.assertEqual(sig.hex(), "88f7b58457e397b04f1a1159246098e576601fa79633009695275290a53e48f1")

    def test_roa_official_vectors(self):
        for sign in (roa_sign, signing.roa_signature):
            self.assertEqual(sign("secret", "stringtosign"), "OmuTAr79tpI6CRoAdmzKRq5lHs0=")
            self.assertEqual(sign("secret", "GET\n\n\n\n\n"), "XGXDWA78AEvx/wmfxKoVCq/afWw=")
        headers = {"accept": "application/json", "content-md5": "md5", "content-type": "application/json",
                   "date": "date", "x-acs-meta": "user"}
        expected = "GET\napplication/json\nmd5\napplication/json\ndate\nx-acs-meta:user\nPathname?ccp=ok&test=tests&test1"
        self.assertEqual(roa_string("GET", headers, "Pathname?ccp=ok&test=tests&test1"), expected)
        pairs = signing.parse_query("test1=&ccp=ok&test=tests")
        res = signing.roa_canonical_resource("Pathname", pairs, empty_equals=False)
        self.assertEqual(signing.roa_string_to_sign("GET", headers, res), expected)
        self.assertTrue(signing.roa_canonical_resource("/", signing.parse_query("key=val%20ue%20with%20space"))
                        .endswith("/?key=val ue with space"))

    def test_opensearch_v2_list(self):
        hs = roa_vector_headers("ListFunctionTasks")
        sts = roa_string("GET", hs, OS_LIST + "?" + OS_QUERY)
        self.assertEqual(sts, "GET\napplication/json\n\n\nThu, 26 Oct 2023 10:22:32 GMT\nx-acs-action:ListFunctionTasks\n"
                         "x-acs-signature-method:HMAC-SHA1\nx-acs-signature-nonce:3156853299f313e23d1673dc12e1703d\n"
                         "x-acs-signature-version:1.0\nx-acs-version:2017-12-25\n" + OS_LIST + "?" + OS_QUERY)
        self.assertEqual(roa_sign("testAccessKeySecret", sts), "NJPC17SOU3nXZt7KEZNHFv+TTfA=")
        ok, emu_sts = signing.check_roa("GET", OS_LIST, OS_QUERY, hs, "NJPC17SOU3nXZt7KEZNHFv+TTfA=",
                                        "testAccessKeySecret")
        self.assertTrue(ok)
        self.assertEqual(emu_sts, sts)

    def test_opensearch_v2_create_with_and_without_md5(self):
        self.assertEqual(signing.parse_query(""), [])
        for md5, expected in ((False, "v5AweoWxA57SX/5AtVlVi64DPN4="), (True, "KUu6BQzeNxbMX7WuiCP6M3R8eDw=")):
            hs = roa_vector_headers("CreateFunctionInstance", body=True, md5=md5)
            self.assertEqual(roa_sign("testAccessKeySecret", roa_string("POST", hs, OS_CREATE)), expected)
            self.assertTrue(signing.check_roa("POST", OS_CREATE, "", hs, expected, "testAccessKeySecret")[0])
        import base64
        self.assertEqual(base64.b64encode(hashlib.md5(OS_BODY).digest()).decode(), "Xsjam0PUGGvnnl5KPyu1IA==")

    def test_opensearch_v3_list(self):
        hs = acs3_vector_headers("ListFunctionTasks", EMPTY)
        query = [tuple(p.split("=")) for p in OS_QUERY.split("&")]
        canonical, names = acs3_canonical("GET", OS_LIST, query, hs, EMPTY)
        self.assertEqual(hashlib.sha256(canonical.encode()).hexdigest(),
                         "af80cbf34ade8713875311917cd271ead88e388494861aa5bb7ff2c8263b9d80")
        expected = "22fe33c2a8798ca1a4471981985e95935c046d6ee904a893cb867226179d86ec"
        self.assertEqual(acs3_sign("testAccessKeySecret", canonical), expected)
        self.assertEqual(names, "host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version")
        ok, emu_canonical = signing.check_acs3("GET", OS_LIST, OS_QUERY, hs, b"", names.split(";"), expected,
                                               "testAccessKeySecret")
        self.assertTrue(ok)
        self.assertEqual(emu_canonical, canonical)

    def test_opensearch_v3_create(self):
        payload = hashlib.sha256(OS_BODY).hexdigest()
        self.assertEqual(payload, "f33912dc12b16debb608f0c6defd7887750dfe852e57cf97db31c666692fca36")
        hs = acs3_vector_headers("CreateFunctionInstance", payload, body=True)
        canonical, names = acs3_canonical("POST", OS_CREATE, [], hs, payload)
        expected = "8d4911c0ee30a070f145f4e7a35f6d48fd3a402590980c3bc69a7d88a192cf6c"
        self.assertEqual(acs3_sign("testAccessKeySecret", canonical), expected)
        auth = signing.acs3_authorization("testAccessKeyId", "testAccessKeySecret", "POST", OS_CREATE, "", hs, payload)
        self.assertEqual(auth, "ACS3-HMAC-SHA256 Credential=testAccessKeyId,SignedHeaders=content-type;host;"
                         "x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version,"
                         "Signature=" + expected)
        self.assertTrue(signing.check_acs3("POST", OS_CREATE, "", hs, OS_BODY, names.split(";"), expected,
                                           "testAccessKeySecret")[0])

    def test_darabonba_v3_vectors(self):
        headers = {"x-acs-test": "http", "x-acs-TEST": "https"}
        query = [("test", "ok"), ("empty", "")]
        payload = "55e12e91650d2fec56ec74e1d3e4ddbfce2ef3a65890c2a19ecf88a307e76a23"
        merged = signing.merge_headers(headers.items())
        emu_query = signing.acs3_canonical_query(signing.parse_query("test=ok&empty="))
        for method, path, expected in (
                ("GET", "/", "d16b30a7699ae9e43875b13195b2f81bcc3ed10c14a9b5eb780e51619aa50be1"),
                ("", "/", "4ab59fffe3c5738ff8a2729f90cc04fe18b02a4b15b2102cbaf92f9ff3df2ea3"),
                ("undefined", "", "0f2d549523cf082c83bb8135b5863614f7fe16ca7c2c7fc537e74d67374eeeac")):
            canonical, names = acs3_canonical(method, path, query, headers, payload)
            self.assertEqual(names, "x-acs-test")
            self.assertEqual(acs3_sign("secret", canonical), expected)
            emu = signing.acs3_canonical_request(method, path, emu_query, merged, ["x-acs-test"], payload)
            self.assertEqual(signing.acs3_signature("secret", emu), expected)

    def test_v3_signature_doc_example(self):
        hs = {"host": "ecs.cn-shanghai.aliyuncs.com", "x-acs-action": "RunInstances", "x-acs-version": "2014-05-26",
              "x-acs-date": "2023-10-26T09:01:01Z", "x-acs-signature-nonce": "d410180a5abf7fe235dd9b74aca91fc0",
              "x-acs-content-sha256": EMPTY}
        raw_query = "ImageId=win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd&RegionId=cn-shanghai"
        canonical, names = acs3_canonical("POST", "/", [tuple(p.split("=")) for p in raw_query.split("&")], hs, EMPTY)
        expected = "e521358f7776c97df52e6b2891a8bc73026794a071b50c3323388c4e0df64804"
        self.assertEqual(acs3_sign("YourAccessKeySecret", canonical), expected)
        self.assertTrue(signing.check_acs3("POST", "/", raw_query, hs, b"", names.split(";"), expected,
                                           "YourAccessKeySecret")[0])


def mutate(s, i=-1):
    """s with one character changed (the last by default)."""
    c = s[i]
    repl = "0" if c != "0" else "1"
    if i == -1:
        return s[:-1] + repl
    return s[:i] + repl + s[i + 1:]


class NcpOverHttp(EmulatorTest):
    TARGET = "/api/v1/services?offset=0&limit=10"

    def send(self, method, target, headers):
        return self.sim.request(method, target, headers)

    def test_signed_request_accepted(self):
        status, _, body = self.send("GET", self.TARGET, ncp_headers("GET", self.TARGET))
        self.assertEqual(status, 200, body)

    def test_one_character_changes_fail(self):
        hs = ncp_headers("GET", self.TARGET)
        cases = {
            "method": ("PUT", self.TARGET, hs),
            "path": ("GET", self.TARGET.replace("services", "servicez"), hs),
            "query": ("GET", mutate(self.TARGET), hs),
            "query order": ("GET", "/api/v1/services?limit=10&offset=0", hs),
            "timestamp": ("GET", self.TARGET, dict(hs, **{"x-ncp-apigw-timestamp": mutate(hs["x-ncp-apigw-timestamp"])})),
            "access key": ("GET", self.TARGET, dict(hs, **{"x-ncp-iam-access-key": mutate(NCP_AK)})),
            "signature": ("GET", self.TARGET, dict(hs, **{"x-ncp-apigw-signature-v2":
                                                         mutate(hs["x-ncp-apigw-signature-v2"], 3)})),
        }
        for name, (method, target, headers) in cases.items():
            status, _, body = self.send(method, target, headers)
            self.assertEqual((status, body), (401, b'{"error":{"errorCode":"200","message":"Authentication Failed"}}'),
                             name)

    def test_wrong_secret_and_missing_headers_fail(self):
        self.assertEqual(self.send("GET", self.TARGET, ncp_headers("GET", self.TARGET, sk=mutate(NCP_SK)))[0], 401)
        hs = ncp_headers("GET", self.TARGET)
        for h in ("x-ncp-apigw-timestamp", "x-ncp-iam-access-key", "x-ncp-apigw-signature-v2"):
            self.assertEqual(self.send("GET", self.TARGET, {k: v for k, v in hs.items() if k != h})[0], 401, h)

    def test_five_minute_window(self):
        now = int(time.time() * 1000)
        inside = ncp_headers("GET", self.TARGET, ts=now - 290000)
        outside = ncp_headers("GET", self.TARGET, ts=now - 301000)
        future = ncp_headers("GET", self.TARGET, ts=now + 301000)
        self.assertEqual(self.send("GET", self.TARGET, inside)[0], 200)
        self.assertEqual(self.send("GET", self.TARGET, outside)[0], 401)
        self.assertEqual(self.send("GET", self.TARGET, future)[0], 401)

    def test_utf8_in_the_target_is_signed_as_utf8(self):
        import socket
        target = "/api/v1/schemas/스키마"
        head = "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n" % (target, self.sim.host)
        head += "".join("%s: %s\r\n" % kv for kv in ncp_headers("GET", target).items()) + "\r\n"
        with socket.create_connection(("127.0.0.1", self.sim.port), timeout=5) as s:
            s.sendall(head.encode("utf-8"))
            status_line = s.makefile("rb").readline()
        self.assertEqual(status_line.split()[1], b"404")   # authenticated; the schema does not exist

    def test_raw_target_is_signed_as_received(self):
        target = "/api/v1/schemas?datasetType=user&offset=0"
        encoded = "/api/v1/schemas?datasetType=%75ser&offset=0"
        self.assertEqual(self.send("GET", encoded, ncp_headers("GET", encoded))[0], 200)
        self.assertEqual(self.send("GET", encoded, ncp_headers("GET", target))[0], 401)


class AcsOverHttp(EmulatorTest):
    PATH = "/v4/openapi/app-groups/g1/functions/ctr/instances"
    TARGET = PATH + "?pageNumber=1&pageSize=10"
    BODY = b'{"instanceName":"sig_test","modelType":"tf_checkpoint"}'

    def code(self, status, body):
        import json
        doc = json.loads(body)
        return status, doc.get("Code")

    def test_v3_get_and_post_accepted(self):
        hs = acs3_headers("GET", self.TARGET, b"", self.sim.host)
        status, _, body = self.sim.request("GET", self.TARGET, hs)
        self.assertEqual(status, 200, body)
        hs = acs3_headers("POST", self.PATH, self.BODY, self.sim.host)
        status, _, body = self.sim.request("POST", self.PATH, hs, self.BODY)
        self.assertEqual(status, 200, body)

    def test_v3_one_character_changes_fail(self):
        hs = acs3_headers("POST", self.PATH + "?x=1", self.BODY, self.sim.host)
        t = self.PATH + "?x=1"
        cases = {
            "method": ("PUT", t, hs, self.BODY),
            "path": ("POST", t.replace("g1", "g2"), hs, self.BODY),
            "query": ("POST", mutate(t), hs, self.BODY),
            "access key": ("POST", t, dict(hs, Authorization=hs["Authorization"].replace(ACS_AK, mutate(ACS_AK))),
                           self.BODY),
            "signature": ("POST", t, dict(hs, Authorization=mutate(hs["Authorization"])), self.BODY),
        }
        for h in ("host", "x-acs-action", "x-acs-date", "x-acs-signature-nonce", "x-acs-content-sha256",
                  "content-type"):
            cases["header " + h] = ("POST", t, dict(hs, **{h: mutate(hs[h])}), self.BODY)
        for name, (method, target, headers, body) in cases.items():
            status, _, raw = self.sim.request(method, target, headers, body)
            self.assertIn(self.code(status, raw), {
                (400, "SignatureDoesNotMatch"), (404, "InvalidAccessKeyId.NotFound"),
                (400, "InvalidTimeStamp.Format")}, name)
        # The body is signed through x-acs-content-sha256: a body other than
        # the one hashed there is refused even though the signature holds.
        status, _, raw = self.sim.request("POST", t, hs, self.BODY.replace(b"sig_test", b"sig_tesT"))
        self.assertEqual(self.code(status, raw), (400, "ContentSHA256NotMatched"), "body")
        # The untouched request still passes, so each failure above came from its change.
        status, _, raw = self.sim.request("POST", t, hs, self.BODY)
        self.assertEqual(status, 200, raw)

    def test_v3_refuses_requests_without_action_version_or_content_hash(self):
        import json
        cases = {"x-acs-action": "MissingAction", "x-acs-version": "MissingVersion",
                 "x-acs-content-sha256": "IncompleteSignature"}
        for header, code in cases.items():
            for method, target, body in (("GET", self.TARGET, b""), ("POST", self.PATH, self.BODY)):
                # Signed correctly over what is sent: only the header is missing.
                hs = acs3_headers(method, target, body, self.sim.host, omit=(header,))
                status, _, raw = self.sim.request(method, target, hs, body)
                doc = json.loads(raw)
                self.assertEqual((status, doc["Code"]), (400, code), (header, method))
                self.assertIn(header, doc["Message"])
                self.assertEqual(set(doc), {"RequestId", "HostId", "Code", "Message", "Recommend"})
        self.assertEqual([e["executed"] for e in self.sim.log(provider="opensearch")], [False] * 6)
        self.assertEqual(self.sim.request("GET", self.TARGET, acs3_headers("GET", self.TARGET, b"",
                                                                           self.sim.host))[0], 200)

    def test_v3_body_must_have_the_declared_hash(self):
        import hashlib
        import json
        # The client declares (and signs) the hash of another body: the
        # signature holds, the body does not match it.
        other = self.BODY.replace(b"sig_test", b"sig_two")
        hs = acs3_headers("POST", self.PATH, other, self.sim.host)
        status, _, raw = self.sim.request("POST", self.PATH, hs, self.BODY)
        self.assertEqual(self.code(status, raw), (400, "ContentSHA256NotMatched"))
        # A declared hash the signature does not cover is a mismatch of the signature.
        hs = acs3_headers("POST", self.PATH, self.BODY, self.sim.host)
        hs["x-acs-content-sha256"] = hashlib.sha256(other).hexdigest()
        status, _, raw = self.sim.request("POST", self.PATH, hs, self.BODY)
        doc = json.loads(raw)
        self.assertEqual((status, doc["Code"]), (400, "SignatureDoesNotMatch"))
        # The emulator's canonical request ends with the declared hash, not the body's.
        self.assertTrue(doc["Message"].endswith(hashlib.sha256(other).hexdigest()), doc["Message"])
        self.assertEqual([e["executed"] for e in self.sim.log(provider="opensearch")], [False, False])

    def test_v3_errors_use_documented_codes_and_body(self):
        import json
        hs = acs3_headers("GET", self.TARGET, b"", self.sim.host, ak="nobody", sk="x")
        status, _, raw = self.sim.request("GET", self.TARGET, hs)
        doc = json.loads(raw)
        self.assertEqual((status, doc["Code"], doc["Message"]),
                         (404, "InvalidAccessKeyId.NotFound", "Specified access key is not found."))
        self.assertEqual(set(doc), {"RequestId", "HostId", "Code", "Message", "Recommend"})
        self.assertEqual(doc["HostId"], self.sim.host)
        hs = acs3_headers("GET", self.TARGET, b"", self.sim.host, sk="wrong")
        doc = json.loads(self.sim.request("GET", self.TARGET, hs)[2])
        self.assertEqual(doc["Code"], "SignatureDoesNotMatch")
        self.assertTrue(doc["Message"].startswith("Specified signature is not matched with our calculation."))

    def test_v3_fifteen_minute_window(self):
        import datetime
        now = datetime.datetime.now(datetime.timezone.utc)
        for minutes, expected in ((14, 200), (16, 400), (-16, 400)):
            date = (now - datetime.timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ")
            hs = acs3_headers("GET", self.TARGET, b"", self.sim.host, date=date)
            status, _, raw = self.sim.request("GET", self.TARGET, hs)
            self.assertEqual(status, expected, minutes)
            if expected == 400:
                self.assertEqual(self.code(status, raw)[1], "InvalidTimeStamp.Expired")

    def test_nonce_replay_rejected(self):
        for v2 in (False, True):
            sign = roa_headers if v2 else acs3_headers
            hs = sign("GET", self.TARGET, b"", self.sim.host)
            self.assertEqual(self.sim.request("GET", self.TARGET, hs)[0], 200)
            status, _, raw = self.sim.request("GET", self.TARGET, hs)
            self.assertEqual(self.code(status, raw), (400, "SignatureNonceUsed"), "v2" if v2 else "v3")

    def test_nonce_not_burnt_by_bad_signature(self):
        hs = acs3_headers("GET", self.TARGET, b"", self.sim.host)
        bad = dict(hs, Authorization=mutate(hs["Authorization"]))
        self.assertEqual(self.sim.request("GET", self.TARGET, bad)[0], 400)
        self.assertEqual(self.sim.request("GET", self.TARGET, hs)[0], 200)

    def test_unsigned_acs_header_is_incomplete(self):
        hs = acs3_headers("GET", self.TARGET, b"", self.sim.host, unsigned={"x-acs-extra": "1"})
        status, _, raw = self.sim.request("GET", self.TARGET, hs)
        self.assertEqual(self.code(status, raw), (400, "IncompleteSignature"))

    def test_v2_accepted_with_sdk_variants(self):
        empty_q = self.PATH + "?pageNumber=1&source="
        for style in ("=", ""):
            hs = roa_headers("GET", empty_q, b"", self.sim.host, empty_style=style)
            self.assertEqual(self.sim.request("GET", empty_q, hs)[0], 200, "empty value style %r" % style)
        for md5 in (False, True):
            body = self.BODY.replace(b"sig_test", b"md5_%d" % md5)
            hs = roa_headers("POST", self.PATH, body, self.sim.host, md5=md5)
            status, _, raw = self.sim.request("POST", self.PATH, hs, body)
            self.assertEqual(status, 200, raw)
        spaced = self.PATH + "?modelType=a%20b"
        hs = roa_headers("GET", spaced, b"", self.sim.host)
        self.assertEqual(self.sim.request("GET", spaced, hs)[0], 200)

    def test_v2_one_character_changes_fail(self):
        t = self.PATH + "?x=1"
        hs = roa_headers("POST", t, self.BODY, self.sim.host, md5=True)
        cases = {
            "method": ("PUT", t, hs, self.BODY),
            "path": ("POST", t.replace("g1", "g2"), hs, self.BODY),
            "query": ("POST", mutate(t), hs, self.BODY),
            "access key": ("POST", t, dict(hs, Authorization=hs["Authorization"].replace(ACS_AK, mutate(ACS_AK))),
                           self.BODY),
            "signature": ("POST", t, dict(hs, Authorization=hs["Authorization"][:12] + mutate(hs["Authorization"][12:], 0)),
                          self.BODY),
            "body (Content-MD5)": ("POST", t, hs, self.BODY.replace(b"sig_test", b"sig_tesT")),
        }
        for h in ("accept", "content-md5", "content-type", "date", "x-acs-action", "x-acs-signature-nonce",
                  "x-acs-version"):
            cases["header " + h] = ("POST", t, dict(hs, **{h: mutate(hs[h])}), self.BODY)
        for name, (method, target, headers, body) in cases.items():
            status, _, raw = self.sim.request(method, target, headers, body)
            self.assertIn(self.code(status, raw), {
                (400, "SignatureDoesNotMatch"), (404, "InvalidAccessKeyId.NotFound"),
                (400, "ContentMD5NotMatched"), (400, "InvalidTimeStamp.Format"), (400, "InvalidVersion")}, name)
        self.assertEqual(self.sim.request("POST", t, hs, self.BODY)[0], 200)

    def test_v2_date_window(self):
        for minutes, expected in ((14, 200), (16, 400)):
            date = email.utils.formatdate(time.time() - minutes * 60, usegmt=True)
            hs = roa_headers("GET", self.TARGET, b"", self.sim.host, date=date)
            self.assertEqual(self.sim.request("GET", self.TARGET, hs)[0], expected, minutes)


class AcsSignatureStatusFlag(EmulatorTest):
    args = ("--acs-signature-status", "403")

    def test_flag_switches_status(self):
        t = "/v4/openapi/app-groups/g/functions/ctr/instances"
        hs = acs3_headers("GET", t, b"", self.sim.host, sk=ACS_SK + "x")
        self.assertEqual(self.sim.request("GET", t, hs)[0], 403)


if __name__ == "__main__":
    unittest.main()
