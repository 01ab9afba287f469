"""Fault injection: every kind, scripted and random, before and after the
state change, proven through the request log and the state."""

import http.client
import json
import socket
import unittest

from .harness import Emulator, EmulatorTest, ncp_headers


def raw_exchange(port, request, timeout=5):
    """Send bytes, read until the server closes. -> (bytes, error or None)"""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(request)
        chunks = []
        while True:
            try:
                data = s.recv(65536)
            except ConnectionResetError as e:
                return b"".join(chunks), e
            if not data:
                return b"".join(chunks), None
            chunks.append(data)
    finally:
        s.close()


def signed_get(host, target):
    hs = ncp_headers("GET", target)
    head = "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n" % (target, host)
    head += "".join("%s: %s\r\n" % kv for kv in hs.items())
    return (head + "\r\n").encode()


class Scripted(EmulatorTest):
    def aitems_get(self):
        return self.sim.aitems("GET", "/services")

    def test_status_faults_carry_provider_bodies_and_retry_hints(self):
        self.sim.faults({"kind": "503", "retry_after": 2}, {"kind": "429", "retry_after": 3}, {"kind": "500"})
        r = self.aitems_get()
        self.assertEqual((r.status, r.headers["retry-after"], r.json),
                         (503, "2", {"error": {"errorCode": "500", "message": "Endpoint Error"}}))
        r = self.aitems_get()
        self.assertEqual((r.status, r.headers["retry-after"], r.json["error"]["errorCode"]), (429, "3", "420"))
        r = self.aitems_get()
        self.assertEqual((r.status, r.json["error"]["errorCode"]), (500, "900"))
        self.assertEqual(self.aitems_get().status, 200)
        self.sim.faults({"kind": "504"}, {"kind": "502"}, {"kind": "418"})
        self.assertEqual([(r.status, r.json["error"]["errorCode"]) for r in (self.aitems_get(), self.aitems_get())],
                         [(504, "510"), (502, "500")])
        r = self.aitems_get()
        self.assertEqual((r.status, r.json["error"]), (418, "INTERNAL_SERVER_ERROR"))

        self.sim.faults({"kind": "429", "retry_after": 2}, {"kind": "503", "retry_after": 1.5})
        r = self.sim.opensearch("GET", "/app-groups/a/functions/ctr/instances")
        self.assertEqual((r.status, r.json["Code"], r.headers["x-acs-retry-after"]), (400, "Throttling.User", "2000"))
        r = self.sim.opensearch("GET", "/app-groups/a/functions/ctr/instances")
        self.assertEqual((r.status, r.json["Code"], r.headers["x-acs-retry-after"]),
                         (503, "ServiceUnavailable", "1500"))

        self.sim.faults({"kind": "429", "retry_after": 4}, {"kind": "500"})
        r = self.sim.azure("GET", "/authoring/analyze-text/projects")
        self.assertEqual((r.status, r.json["error"]["code"], r.headers["retry-after"]), (429, "TooManyRequests", "4"))
        r = self.sim.azure("GET", "/authoring/analyze-text/projects")
        self.assertEqual((r.status, r.json["error"]["code"]), (500, "InternalServerError"))

        self.sim.faults({"kind": "503", "match": {"provider": "entra"}})
        r = self.sim.token()
        self.assertEqual((r.status, r.json["error"], "retry-after" in r.headers), (503, "temporarily_unavailable",
                                                                                  True))
        self.assertEqual(self.sim.token().status, 200)

    def test_reset_sends_rst(self):
        self.sim.faults({"kind": "reset"})
        data, err = raw_exchange(self.sim.port, signed_get(self.sim.host, "/api/v1/services"))
        self.assertEqual(data, b"")
        self.assertIsInstance(err, ConnectionResetError)
        self.assertEqual(self.sim.log()[-1]["fault"], "reset")
        self.assertIsNone(self.sim.log()[-1]["status"])

    def test_truncate_promises_more_than_it_sends(self):
        self.sim.faults({"kind": "truncate"})
        data, err = raw_exchange(self.sim.port, signed_get(self.sim.host, "/api/v1/services"))
        self.assertIsNone(err)
        head, _, body = data.partition(b"\r\n\r\n")
        length = int([h for h in head.split(b"\r\n") if h.lower().startswith(b"content-length:")][0].split(b":")[1])
        self.assertGreater(length, len(body))
        self.sim.faults({"kind": "truncate"})
        with self.assertRaises(http.client.IncompleteRead):
            self.sim.request("GET", "/api/v1/services", ncp_headers("GET", "/api/v1/services"), fresh=True)

    def test_badjson_is_200_with_malformed_json(self):
        self.sim.faults({"kind": "badjson"})
        r = self.aitems_get()
        self.assertEqual(r.status, 200)
        with self.assertRaises(ValueError):
            json.loads(r.raw)

    def test_slow_outlasts_the_client_timeout(self):
        self.assertEqual(self.sim.admin("GET", "faults")["slow_seconds"], 30)
        self.sim.faults({"kind": "slow", "delay": 1.5})
        conn = http.client.HTTPConnection("127.0.0.1", self.sim.port, timeout=0.3)
        conn.request("GET", "/api/v1/services", headers=ncp_headers("GET", "/api/v1/services"))
        with self.assertRaises(socket.timeout):
            conn.getresponse()
        conn.close()
        self.assertEqual(self.aitems_get().status, 200)

    def test_before_leaves_state_alone_after_changes_it(self):
        self.sim.faults({"kind": "500", "when": "before", "match": {"operation": "CreateService"}},
                        {"kind": "reset", "when": "after", "match": {"method": "POST", "path_regex": "/services$"}})
        self.assertEqual(self.sim.aitems("POST", "/services", {"name": "first"}).status, 500)
        with self.assertRaises((ConnectionResetError, http.client.RemoteDisconnected)):
            self.sim.request("POST", "/api/v1/services", ncp_headers("POST", "/api/v1/services"),
                             b'{"name":"second"}', fresh=True)
        names = [s["name"] for s in self.sim.aitems("GET", "/services").json["services"]]
        self.assertEqual(names, ["second"])
        log = self.sim.log(operation="CreateService")
        self.assertEqual([(e["fault"], e["when"], e["executed"]) for e in log],
                         [("500", "before", False), ("reset", "after", True)])

    def test_after_on_a_training_start_really_starts_it(self):
        self.sim.faults({"kind": "503", "when": "after", "match": {"operation": "CreateFunctionTask"}})
        self.sim.opensearch("POST", "/app-groups/a/functions/ctr/instances",
                            {"instanceName": "x", "modelType": "tf_checkpoint"})
        r = self.sim.opensearch("POST", "/app-groups/a/functions/ctr/instances/x/tasks")
        self.assertEqual(r.status, 503)
        tasks = self.sim.opensearch("GET", "/app-groups/a/functions/ctr/instances/x/tasks").json
        self.assertEqual(tasks["TotalCount"], 1)
        starts = self.sim.log(operation="CreateFunctionTask")
        self.assertEqual([(e["status"], e["executed"]) for e in starts], [(503, True)])

    def test_matching_counting_and_clearing(self):
        state = self.sim.faults({"kind": "500", "count": 2, "match": {"operation": "GetService"}})
        self.assertEqual(state["scripted"][0]["count"], 2)
        self.assertEqual(self.aitems_get().status, 200)
        codes = [self.sim.aitems("GET", "/services/abcdefghijk").status for _ in range(3)]
        self.assertEqual(codes, [500, 500, 404])
        self.assertEqual(self.sim.admin("GET", "faults")["scripted"], [])
        self.sim.faults({"kind": "500"})
        self.sim.admin("DELETE", "faults")
        self.assertEqual(self.aitems_get().status, 200)

    def test_rates_can_be_set_at_run_time(self):
        self.sim.admin("POST", "faults", {"rates": "503:1"})
        self.assertEqual(self.aitems_get().status, 503)
        self.assertEqual(self.sim.admin("GET", "health"), {"ok": True})
        self.sim.admin("POST", "faults", {"rates": {}})
        self.assertEqual(self.aitems_get().status, 200)

    def test_bad_fault_scripts_are_refused(self):
        for body in ({"faults": [{"kind": "teapot"}]}, {"faults": [{"kind": "500", "when": "later"}]},
                     {"faults": [{"kind": "500", "match": {"path_regex": "("}}]}, {"rates": "500:2"},
                     {"faults": [{"kind": "500", "bogus": 1}]}):
            status, _, _ = self.sim.request("POST", "/_cloudsim/faults", body=body)
            self.assertEqual(status, 400, body)


class RandomRates(unittest.TestCase):
    def run_sequence(self, *args):
        emu = Emulator("--seed", "5", *args)
        try:
            statuses = []
            for _ in range(40):
                try:
                    statuses.append(emu.request("GET", "/api/v1/services", ncp_headers("GET", "/api/v1/services"),
                                                fresh=True)[0])
                except (ConnectionResetError, http.client.RemoteDisconnected):
                    statuses.append("reset")
            return statuses, [e["fault"] for e in emu.log()], emu
        finally:
            emu.stop()

    def test_rates_are_seeded_and_logged(self):
        statuses, faults, _ = self.run_sequence("--faults", "500:0.3,reset:0.2")
        self.assertEqual(statuses.count(500), faults.count("500"))
        self.assertEqual(statuses.count("reset"), faults.count("reset"))
        self.assertTrue(0 < statuses.count(500) < 40 and statuses.count("reset") > 0, statuses)
        again, faults2, _ = self.run_sequence("--faults", "500:0.3,reset:0.2")
        self.assertEqual((again, faults2), (statuses, faults))

    def test_reseeding_at_run_time_replays_and_varies(self):
        emu = Emulator("--seed", "5", "--faults", "500:0.3,503:0.2")
        try:
            def aitems_faults(n, between=None):
                since = emu.log()[-1]["seq"] if emu.log() else 0
                for _ in range(n):
                    emu.aitems("GET", "/services")
                    if between:
                        between()
                return [e["fault"] for e in emu.log(provider="aitems", since=since)]

            first = aitems_faults(40)
            self.assertTrue(0 < len([f for f in first if f]) < 40, first)
            self.assertEqual(emu.admin("POST", "faults", {"seed": 5})["seed"], 5)
            self.assertEqual(aitems_faults(40), first)
            emu.admin("POST", "faults", {"seed": 6})
            other = aitems_faults(40)
            self.assertNotEqual(other, first)
            # A provider seeded alone meets the same faults whatever the
            # other providers ask in between.
            doc = emu.admin("POST", "faults", {"seeds": {"aitems": 5}})
            self.assertEqual((doc["seed"], doc["seeds"]), (6, {"aitems": 5}))
            self.assertEqual(aitems_faults(40), first)
            emu.admin("POST", "faults", {"seeds": {"aitems": 5}})
            self.assertEqual(aitems_faults(40, lambda: emu.opensearch("GET", "/app-groups/a/functions/ctr")),
                             first)
            self.assertTrue(any(e["fault"] for e in emu.log(provider="opensearch")))
            # A new common seed drops the provider's own; reset restores --seed.
            self.assertEqual(emu.admin("POST", "faults", {"seed": 6})["seeds"], {})
            emu.reset()
            self.assertEqual(emu.admin("GET", "faults")["seed"], 5)
            self.assertEqual(aitems_faults(40), first)
            for body in ({"seed": "7"}, {"seed": 1.5}, {"seed": True}, {"seeds": [1]}, {"seeds": {"aitems": "x"}}):
                status, _, _ = emu.request("POST", "/_cloudsim/faults", body=body)
                self.assertEqual(status, 400, body)
        finally:
            emu.stop()

    def test_admin_and_token_requests_are_spared(self):
        emu = Emulator("--faults", "500:1")
        try:
            self.assertEqual(emu.request("GET", "/api/v1/services", ncp_headers("GET", "/api/v1/services"))[0], 500)
            self.assertEqual(emu.admin("GET", "clock")["speed"], 0)
            self.assertEqual(emu.token().status, 200)
        finally:
            emu.stop()

    def test_random_throttling_never_follows_a_state_change(self):
        emu = Emulator("--faults", "429:1", "--fault-when", "after")
        try:
            r = emu.aitems("POST", "/services", {"name": "nope"})
            self.assertEqual(r.status, 429)
            self.assertEqual(emu.log()[-1]["when"], "before")
            self.assertEqual(emu.admin("GET", "state")["providers"]["aitems"]["services"], {})
            emu.admin("POST", "faults", {"rates": "500:1"})
            self.assertEqual(emu.aitems("POST", "/services", {"name": "made"}).status, 500)
            self.assertEqual(len(emu.admin("GET", "state")["providers"]["aitems"]["services"]), 1)
        finally:
            emu.stop()


if __name__ == "__main__":
    unittest.main()
