"""AiTEMS: services, datasets, schemas, trainings and lookups as the
reference documents them, on a clock the tests advance."""

import os
import re
import shutil
import tempfile
import unittest

from .harness import Emulator, EmulatorTest

USERS = ["u%02d" % i for i in range(12)]
ITEMS = ["i%02d" % i for i in range(30)]


def interactions():
    """Users 0-5 like even items, users 6-11 odd ones; item i00 is the most
    popular overall."""
    rows = []
    for n, u in enumerate(USERS):
        liked = ITEMS[n % 2::2][:6]
        for k, item in enumerate(liked[n // 2 % 3:] + ["i00"]):
            rows.append((u, item, 1700000000 + n * 100 + k))
    return rows


def write_data(root):
    def w(name, header, rows):
        with open(os.path.join(root, name), "w") as f:
            f.write(",".join(header) + "\n")
            f.writelines(",".join(map(str, r)) + "\n" for r in rows)
    w("users.csv", ["USER_ID", "AGE", "GENDER"], [(u, 20 + i, "MF"[i % 2]) for i, u in enumerate(USERS)])
    w("items.csv", ["ITEM_ID", "CATEGORY"], [(i, "c%d" % (n % 3)) for n, i in enumerate(ITEMS)])
    w("interactions.csv", ["USER_ID", "ITEM_ID", "TIMESTAMP"], interactions())
    w("interactions_fail.csv", ["USER_ID", "ITEM_ID", "TIMESTAMP"], interactions())
    w("interactions_refine_fail.csv", ["USER_ID", "ITEM_ID", "TIMESTAMP"], interactions())
    w("bad_header.csv", ["ITEM", "CATEGORY"], [(i, "c") for i in ITEMS])
    w("dup_items.csv", ["ITEM_ID", "CATEGORY"], [("i1", "a"), ("i1", "b")])
    os.mkdir(os.path.join(root, "bucket1"))
    w("bucket1/items2.csv", ["ITEM_ID", "CATEGORY"], [(i, "c") for i in ITEMS])


DATE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}$")
ID = re.compile(r"^[a-z0-9]{11}$")
FIELDS = {
    "user": [{"name": "USER_ID", "type": ["string"]}, {"name": "AGE", "type": ["int", "null"]},
             {"name": "GENDER", "type": ["string", "null"], "categorical": True}],
    "item": [{"name": "ITEM_ID", "type": ["string"]}, {"name": "CATEGORY", "type": ["string"], "categorical": True}],
    "interaction": [{"name": "USER_ID", "type": ["string"]}, {"name": "ITEM_ID", "type": ["string"]},
                    {"name": "TIMESTAMP", "type": ["long"]}],
}


class AiTEMSTest(EmulatorTest):
    @classmethod
    def setUpClass(cls):
        cls.root = tempfile.mkdtemp()
        cls.data = os.path.join(cls.root, "data")
        os.mkdir(cls.data)
        write_data(cls.data)
        with open(os.path.join(cls.root, "outside.csv"), "w") as f:
            f.write("ITEM_ID,CATEGORY\ni1,c\n")
        cls.args = ("--data-dir", cls.data) + tuple(cls.args)
        super().setUpClass()

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        shutil.rmtree(cls.root)

    def call(self, method, path, body=None, query=None, expect=None):
        r = self.sim.aitems(method, path, body, query)
        if expect is not None:
            self.assertEqual(r.status, expect, r)
        return r

    def schemas(self):
        for t, fields in FIELDS.items():
            self.call("POST", "/schemas", {"datasetType": t, "name": t + "_schema", "fields": fields}, expect=201)

    def dataset(self, dtype, key, name=None):
        return self.call("POST", "/datasets", {
            "type": dtype, "name": name or dtype + "_data", "description": "", "schemaName": dtype + "_schema",
            "osInfo": {"region": "KR", "bucket": "bucket1", "key": key}}, expect=201).json

    def ready_service(self, interactions_key="interactions.csv", stype="batch", name="shop"):
        """A service with three enabled datasets attached."""
        self.schemas()
        ids = [self.dataset("user", "users.csv")["datasetId"], self.dataset("item", "items.csv")["datasetId"],
               self.dataset("interaction", interactions_key)["datasetId"]]
        self.sim.advance(90)
        svc = self.call("POST", "/services", {"name": name, "description": "d", "type": stype}, expect=201).json
        self.assertEqual(svc["status"], "datasetRequired")
        got = self.call("POST", "/services/%s/datasets" % svc["serviceId"], {"datasetIds": ids}, expect=200).json
        self.assertEqual(got["status"], "learnable")
        return svc["serviceId"]

    def train(self, sid, types=("pop", "relatedItem", "personalRecommend"), hp=None):
        return self.call("POST", "/services/" + sid, {"types": list(types), "description": "",
                                                      "hpConfig": hp or {"is_enabled": False}}, expect=200).json

    def trains(self, sid, **q):
        query = "&".join("%s=%s" % kv for kv in q.items())
        return {t["type"]: t for t in self.call("GET", "/services/%s/trains" % sid, query=query or None,
                                                expect=200).json["trains"]}


class Lifecycle(AiTEMSTest):
    def test_dataset_waiting_processing_enable(self):
        self.schemas()
        ds = self.dataset("item", "items.csv")
        self.assertRegex(ds["datasetId"], ID)
        self.assertEqual(ds["status"], "waiting")
        self.sim.advance(30)
        self.assertEqual(self.call("GET", "/datasets/" + ds["datasetId"]).json["status"], "processing")
        self.sim.advance(60)
        got = self.call("GET", "/datasets/" + ds["datasetId"], expect=200).json
        self.assertEqual(got["status"], "enable")
        self.assertEqual(set(got), {"datasetId", "type", "name", "description", "schemaName", "status", "osInfo",
                                    "connectedServices", "createdDate", "updatedDate"})
        self.assertRegex(got["createdDate"], DATE)

    def test_dataset_files_are_validated(self):
        self.schemas()
        missing = self.dataset("item", "nowhere.csv", "missing")["datasetId"]
        header = self.dataset("item", "bad_header.csv", "header")["datasetId"]
        dup = self.dataset("item", "dup_items.csv", "dups")["datasetId"]
        in_bucket = self.dataset("item", "items2.csv", "bucketed")["datasetId"]
        escape = self.dataset("item", "../outside.csv", "escape")["datasetId"]
        self.sim.advance(90)
        status = {d: self.call("GET", "/datasets/" + d).json["status"] for d in (missing, header, dup, in_bucket,
                                                                                    escape)}
        self.assertEqual(status, {missing: "upload_failed", header: "upload_failed", dup: "upload_failed",
                                  in_bucket: "enable", escape: "upload_failed"})

    def test_batch_training_to_completed(self):
        sid = self.ready_service()
        svc = self.train(sid)
        self.assertEqual(svc["status"], "learning")
        trains = self.trains(sid)
        self.assertEqual({t["status"] for t in trains.values()}, {"requesting"})
        self.assertTrue(all(ID.match(t["version"]) for t in trains.values()))
        self.sim.advance(60)
        self.assertEqual({t["status"] for t in self.trains(sid).values()}, {"learning"})
        self.sim.advance(300)   # 360 s: pop is done, the others still learn
        states = {k: t["status"] for k, t in self.trains(sid).items()}
        self.assertEqual(states, {"pop": "completed", "relatedItem": "learning", "personalRecommend": "learning"})
        self.assertEqual(self.call("GET", "/services/" + sid).json["status"], "learning")
        self.sim.advance(240)   # 600 s
        trains = self.trains(sid)
        self.assertEqual({t["status"] for t in trains.values()}, {"completed"})
        self.assertTrue(all(t["inference"] for t in trains.values()))
        svc = self.call("GET", "/services/" + sid, expect=200).json
        self.assertEqual(svc["status"], "learnable")
        infers = {i["dataType"]: i for i in svc["infers"]}
        self.assertEqual(set(infers), {"pop", "relatedItem", "personalRecommend"})
        self.assertEqual(infers["personalRecommend"]["trainVersion"], trains["personalRecommend"]["version"])
        self.assertEqual(infers["relatedItem"]["rowCount"], len(ITEMS))
        self.assertEqual({d["status"] for d in svc["datasets"]}, {"learnable"})
        one = trains["pop"]
        got = self.call("GET", "/services/%s/trains/pop/versions/%s" % (sid, one["version"]), expect=200).json
        self.assertEqual(got, one)
        self.assertEqual(set(got), {"serviceId", "type", "hpConfig", "version", "description", "status",
                                    "createdDate", "inference"})

    def test_training_fails_when_the_data_says_so(self):
        sid = self.ready_service("interactions_fail.csv")
        self.train(sid, ["pop"])
        self.sim.advance(359)
        self.assertEqual(self.trains(sid)["pop"]["status"], "learning")
        self.sim.advance(1)
        self.assertEqual(self.trains(sid)["pop"]["status"], "learningFailed")
        svc = self.call("GET", "/services/" + sid).json
        self.assertEqual((svc["status"], svc["infers"]), ("learnable", []))
        self.assertEqual(self.call("GET", "/services/%s/infers/lookup" % sid, query="type=pop").status, 404)

    def test_refinement_failure(self):
        sid = self.ready_service("interactions_refine_fail.csv")
        self.train(sid, ["relatedItem"])
        self.sim.advance(119)
        self.assertEqual(self.trains(sid)["relatedItem"]["status"], "learning")
        self.sim.advance(1)
        self.assertEqual(self.trains(sid)["relatedItem"]["status"], "refinedFailed")
        self.assertEqual(self.call("GET", "/services/" + sid).json["status"], "learnable")

    def test_retraining_moves_inference_to_the_new_version(self):
        sid = self.ready_service()
        self.train(sid, ["pop"])
        self.sim.advance(360)
        self.train(sid, ["pop"])
        self.sim.advance(360)
        listed = self.call("GET", "/services/%s/trains" % sid).json["trains"]
        self.assertEqual([t["inference"] for t in listed], [True, False])   # newest first
        recent = self.call("GET", "/services/%s/trains" % sid, query="isRecent=true").json["trains"]
        self.assertEqual([t["version"] for t in recent], [listed[0]["version"]])
        svc = self.call("GET", "/services/" + sid).json
        self.assertEqual(svc["infers"][0]["trainVersion"], listed[0]["version"])

    def test_interval_schedule(self):
        sid = self.ready_service(stype="interval", name="live")
        svc = self.call("PUT", "/services/%s/interval" % sid, {"term": "hour3"}, expect=200).json
        self.assertEqual(svc["term"], "hour3")
        body = {"trainTypes": ["pop"], "hpConfig": {"is_enabled": False}}
        svc = self.call("PUT", "/services/%s/schedule" % sid, body, query="action=start", expect=200).json
        self.assertEqual(svc["status"], "scheduled")
        self.sim.advance(60)
        self.assertEqual(self.call("GET", "/services/" + sid).json["status"], "scheduledLearning")
        self.sim.advance(360)
        self.assertEqual(self.call("GET", "/services/" + sid).json["status"], "scheduled")
        first = self.call("GET", "/services/%s/trains" % sid).json["trains"]
        self.assertEqual([t["status"] for t in first], ["completed"])
        self.assertRegex(first[0]["nextUpdateDate"], DATE)
        self.sim.advance(3 * 3600)
        runs = self.call("GET", "/services/%s/trains" % sid).json["trains"]
        self.assertEqual([t["status"] for t in runs], ["completed", "completed"])
        self.assertEqual(self.call("PUT", "/services/%s/schedule" % sid, {}, query="action=stop").json["status"],
                         "learnable")
        self.sim.advance(6 * 3600)
        self.assertEqual(len(self.call("GET", "/services/%s/trains" % sid).json["trains"]), 2)

    def test_long_schedules_keep_a_bounded_history(self):
        sid = self.ready_service(stype="interval", name="longrun")
        self.call("PUT", "/services/%s/schedule" % sid, {"trainTypes": ["pop"], "hpConfig": {"is_enabled": False}},
                  query="action=start", expect=200)
        self.sim.advance(100 * 3600)
        trains = self.call("GET", "/services/%s/trains" % sid, expect=200).json["trains"]
        self.assertEqual(len(trains), 50)
        self.assertEqual(sum(t["inference"] for t in trains), 1)
        self.assertEqual(self.call("GET", "/services/" + sid).json["status"], "scheduled")

    def test_interval_upload_feeds_results(self):
        sid = self.ready_service(stype="interval", name="live2")
        svc = self.call("GET", "/services/" + sid).json
        ids = {d["type"]: d["datasetId"] for d in svc["datasets"]}
        ok = self.call("POST", "/services/%s/datasets/%s" % (sid, ids["item"]),
                       {"type": "item", "value": [{"ITEM_ID": "NEW", "CATEGORY": "z"}]}, expect=200)
        self.assertEqual(ok.json, True)
        rows = [{"USER_ID": u, "ITEM_ID": "NEW", "TIMESTAMP": 1800000000 + k} for u in USERS for k in (0, 1)]
        self.call("POST", "/services/%s/datasets/%s" % (sid, ids["interaction"]),
                  {"type": "interaction", "value": rows}, expect=200)
        bad = self.call("POST", "/services/%s/datasets/%s" % (sid, ids["interaction"]),
                        {"type": "interaction", "value": [{"USER_ID": "x", "ITEM_ID": "y", "TIMESTAMP": "soon"}]})
        self.assertEqual(bad.status, 400)
        self.call("PUT", "/services/%s/schedule" % sid, {"trainTypes": ["pop"], "hpConfig": {"is_enabled": False}},
                  query="action=start", expect=200)
        self.sim.advance(60 + 360)
        values = self.call("GET", "/services/%s/infers/lookup" % sid, query="type=pop", expect=200).json["values"]
        self.assertEqual(values[0], "NEW")


class Lookup(AiTEMSTest):
    args = ("--seed", "11")

    def trained(self):
        sid = self.ready_service()
        self.train(sid, hp={"is_enabled": True, "max_user_recommend_top": 5, "max_relate_recommend_top": 4})
        self.sim.advance(600)
        return sid

    def lookup(self, sid, query):
        r = self.call("GET", "/services/%s/infers/lookup" % sid, query=query, expect=200).json
        self.assertEqual(r["field"], "ITEM_ID")
        return r["values"]

    def test_values_come_from_the_item_dataset(self):
        sid = self.trained()
        pop = self.lookup(sid, "type=pop")
        self.assertEqual(pop[0], "i00")
        self.assertEqual(sorted(pop), sorted(ITEMS))
        seen = {i for u, i, _ in interactions() if u == "u03"}
        personal = self.lookup(sid, "type=personalRecommend&targetId=u03")
        self.assertEqual(len(personal), 5)
        self.assertTrue(set(personal) <= set(ITEMS) - seen, personal)
        related = self.lookup(sid, "type=relatedItem&targetId=i04")
        self.assertEqual(len(related), 4)
        self.assertNotIn("i04", related)
        self.assertTrue(all(int(i[1:]) % 2 == 0 for i in related), related)   # co-liked items are even
        self.assertEqual(self.lookup(sid, "type=personalRecommend&targetId=stranger"), [])
        self.assertEqual(self.lookup(sid, "type=personalRecommend&targetId=u03"), personal)

    def test_same_seed_same_ids_and_results(self):
        sid = self.trained()
        first = (sid, self.lookup(sid, "type=personalRecommend&targetId=u07"))
        other = Emulator("--seed", "11", "--data-dir", self.data)
        again = Emulator("--seed", "12", "--data-dir", self.data)
        try:
            results = []
            for emu in (other, again):
                self.sim, saved = emu, self.sim
                try:
                    sid2 = self.trained()
                    results.append((sid2, self.lookup(sid2, "type=personalRecommend&targetId=u07")))
                finally:
                    self.sim = saved
        finally:
            other.stop()
            again.stop()
        self.assertEqual(results[0], first)
        self.assertNotEqual(results[1][0], first[0])

    def test_lookup_errors(self):
        sid = self.ready_service()
        r = self.call("GET", "/services/%s/infers/lookup" % sid, query="type=pop", expect=404)
        self.assertEqual(r.json["error"], "NOT_FOUND")
        self.call("GET", "/services/%s/infers/lookup" % sid, query="type=personalRecommend", expect=400)
        self.call("GET", "/services/%s/infers/lookup" % sid, query="type=nonsense&targetId=u1", expect=400)


class Errors(AiTEMSTest):
    def test_duplicate_name_body_matches_the_live_capture(self):
        self.call("POST", "/services", {"name": "Version3"}, expect=201)
        r = self.call("POST", "/services", {"name": "Version3"}, expect=400)
        self.assertEqual(set(r.json), {"timestamp", "path", "status", "error", "requestId", "errorCode", "message"})
        self.assertEqual((r.json["path"], r.json["status"], r.json["error"], r.json["errorCode"], r.json["message"]),
                         ("/api/services", 400, "DUPLICATE_NAME", "BAD_REQUEST", "[Version3] is a duplicate name."))
        self.assertRegex(r.json["timestamp"], DATE)

    def test_unknown_ids_are_404(self):
        for path in ("/services/zzzzzzzzzzz", "/datasets/zzzzzzzzzzz", "/schemas/nope",
                     "/services/zzzzzzzzzzz/trains"):
            r = self.call("GET", path, expect=404)
            self.assertEqual((r.json["error"], r.json["errorCode"]), ("NOT_FOUND", "NOT_FOUND"), path)

    def test_unknown_route_is_a_gateway_404(self):
        r = self.call("GET", "/nothing/here", expect=404)
        self.assertEqual(r.json, {"error": {"errorCode": "300", "message": "Not Found Exception"}})

    def test_a_404_fault_is_the_gateways_not_the_backends(self):
        self.sim.faults({"kind": "404", "match": {"operation": "ListServices"}})
        r = self.call("GET", "/services", expect=404)
        self.assertEqual(r.json, {"error": {"errorCode": "300", "message": "Not Found Exception"}})

    def test_bad_input(self):
        for body in ({"name": "ab"}, {"name": "1abc"}, {"name": "x" * 21}, {"name": "okname", "type": "weekly"},
                     {"name": "okname", "description": "d" * 101}, ["not", "an", "object"]):
            r = self.call("POST", "/services", body, expect=400)
            self.assertEqual(r.json["error"], "INVALID_PARAMETER", body)
        r = self.sim.aitems("POST", "/services", None, headers={"Content-Type": "application/json"})
        self.assertEqual(r.status, 400)

    def test_wrong_states(self):
        svc = self.call("POST", "/services", {"name": "early"}, expect=201).json
        r = self.call("POST", "/services/" + svc["serviceId"], {"types": ["pop"], "hpConfig": {"is_enabled": False}},
                      expect=400)
        self.assertEqual(r.json["error"], "INVALID_STATUS")
        r = self.call("PUT", "/services/%s/interval" % svc["serviceId"], {"term": "hour1"}, expect=400)
        self.assertEqual(r.json["error"], "NOT_SUPPORTED")
        self.call("PUT", "/services/%s/schedule" % svc["serviceId"], {}, query="action=start", expect=400)

    def test_training_waits_for_datasets_and_rejects_a_second_request(self):
        self.schemas()
        ids = [self.dataset(t, k)["datasetId"] for t, k in (("user", "users.csv"), ("item", "items.csv"),
                                                            ("interaction", "interactions.csv"))]
        sid = self.call("POST", "/services", {"name": "eager"}).json["serviceId"]
        self.call("POST", "/services/%s/datasets" % sid, {"datasetIds": ids[:2]}, expect=400)
        self.call("POST", "/services/%s/datasets" % sid, {"datasetIds": ids}, expect=200)
        body = {"types": ["pop"], "hpConfig": {"is_enabled": False}}
        self.assertEqual(self.call("POST", "/services/" + sid, body, expect=400).json["error"], "INVALID_STATUS")
        self.sim.advance(90)
        self.call("POST", "/services/" + sid, body, expect=200)
        self.assertEqual(self.call("POST", "/services/" + sid, body, expect=400).json["error"], "INVALID_STATUS")
        self.call("POST", "/services/%s/datasets" % sid, {"datasetIds": ids}, expect=400)
        self.call("DELETE", "/services/" + sid, expect=400)
        self.call("POST", "/services/" + sid, {"types": ["pop", "pop"], "hpConfig": {"is_enabled": False}}, expect=400)
        self.call("POST", "/services/" + sid, {"types": ["pop"], "hpConfig": {"is_enabled": True, "min_item_cut": 0}},
                  expect=400)

    def test_dependent_deletes_refused(self):
        sid = self.ready_service()
        ds = self.call("GET", "/services/" + sid).json["datasets"][0]
        self.assertEqual(self.call("DELETE", "/datasets/" + ds["datasetId"], expect=400).json["error"],
                         "INVALID_STATUS")
        self.assertEqual(self.call("DELETE", "/schemas/" + ds["schemaName"], expect=400).json["error"],
                         "INVALID_STATUS")
        self.assertEqual(self.call("DELETE", "/services/" + sid, expect=200).json, {"result": "ok"})
        self.call("GET", "/services/" + sid, expect=404)
        self.assertEqual(self.call("DELETE", "/datasets/" + ds["datasetId"], expect=200).json, {"result": "ok"})
        self.assertEqual(self.call("DELETE", "/schemas/" + ds["schemaName"], expect=200).json, {"result": "ok"})


class Paging(AiTEMSTest):
    def test_offset_and_limit_are_echoed(self):
        names = ["svc%d" % i for i in range(5)]
        for n in names:
            self.call("POST", "/services", {"name": n}, expect=201)
        r = self.call("GET", "/services", expect=200).json
        self.assertEqual((r["offset"], r["limit"]), (0, 1000))
        self.assertEqual([s["name"] for s in r["services"]], names)
        self.assertEqual(set(r["services"][0]), {"serviceId", "name", "status", "createdDate", "updatedDate",
                                                 "actionName", "permission"})
        r = self.call("GET", "/services", query="offset=1&limit=2", expect=200).json
        self.assertEqual((r["offset"], r["limit"], [s["name"] for s in r["services"]]), (1, 2, names[1:3]))
        r = self.call("GET", "/services", query="offset=4&limit=10", expect=200).json
        self.assertEqual([s["name"] for s in r["services"]], names[4:])
        self.call("GET", "/services", query="offset=-1", expect=400)

    def test_schema_and_dataset_lists(self):
        self.schemas()
        r = self.call("GET", "/schemas", query="datasetType=item", expect=200).json
        self.assertEqual([s["name"] for s in r["schemas"]], ["item_schema"])
        self.assertEqual(len(self.call("GET", "/schemas", query="limit=2").json["schemas"]), 2)
        self.dataset("item", "items.csv")
        r = self.call("GET", "/datasets", query="offset=0&limit=5", expect=200).json
        self.assertEqual((r["offset"], r["limit"], len(r["datasets"])), (0, 5, 1))
        self.assertEqual(r["datasets"][0]["actionName"], "View/getDatasetDetail")


class Schemas(AiTEMSTest):
    def test_schema_round_trip(self):
        self.schemas()
        got = self.call("GET", "/schemas/user_schema", expect=200).json
        self.assertEqual(got["fields"], FIELDS["user"])   # categorical omitted when false
        self.assertNotIn("categorical", got["fields"][0])
        self.assertEqual(self.call("PUT", "/schemas/user_schema", {"content": "people"}).json["description"],
                         "people")
        default = self.call("GET", "/schemas/default", query="datasetType=interaction", expect=200).json
        self.assertEqual([f["name"] for f in default["fields"]], ["USER_ID", "ITEM_ID", "TIMESTAMP"])

    def test_validation(self):
        good = {"datasetType": "interaction", "name": "LogInfo", "description": "",
                "fields": [dict(f, categorical=False) for f in FIELDS["interaction"]]}
        self.assertEqual(self.call("POST", "/schemas/validation-check", good, expect=200).json, {"result": "ok"})
        no_ts = dict(good, fields=good["fields"][:2])
        self.call("POST", "/schemas/validation-check", no_ts, expect=400)
        bad_type = dict(good, fields=good["fields"][:2] + [{"name": "TIMESTAMP", "type": ["date"],
                                                           "categorical": False}])
        self.call("POST", "/schemas", bad_type, expect=400)
        self.call("POST", "/schemas", dict(good, name="x"), expect=400)

    def test_dataset_needs_a_matching_schema(self):
        self.schemas()
        body = {"type": "item", "name": "things", "description": "", "schemaName": "user_schema",
                "osInfo": {"region": "KR", "bucket": "b", "key": "items.csv"}}
        self.call("POST", "/datasets", body, expect=400)
        self.call("POST", "/datasets", dict(body, schemaName="item_schema", description=None), expect=400)
        ds = self.call("POST", "/datasets", dict(body, schemaName="item_schema"), expect=201).json
        self.sim.advance(90)
        again = self.call("POST", "/datasets/" + ds["datasetId"], dict(body, schemaName="item_schema",
                                                                       description="v2"), expect=200).json
        self.assertEqual((again["status"], again["description"]), ("waiting", "v2"))
        self.assertEqual(self.call("PUT", "/datasets/" + ds["datasetId"], {"content": "v3"}).json["description"],
                         "v3")


class EveryOperation(AiTEMSTest):
    def test_every_documented_operation_is_routed_and_named(self):
        sid, did = "zzzzzzzzzzz", "yyyyyyyyyyy"
        calls = [("POST", "/services", {"name": "opsvc"}), ("GET", "/services", None),
                 ("GET", "/services/" + sid, None), ("PUT", "/services/" + sid, {}),
                 ("DELETE", "/services/" + sid, None), ("POST", "/services/" + sid, {}),
                 ("POST", "/services/%s/datasets" % sid, {}), ("PUT", "/services/%s/interval" % sid, {}),
                 ("PUT", "/services/%s/schedule?action=stop" % sid, {}),
                 ("POST", "/services/%s/datasets/%s" % (sid, did), {}), ("GET", "/services/%s/trains" % sid, None),
                 ("GET", "/services/%s/trains/pop/versions/v" % sid, None),
                 ("GET", "/services/%s/infers/lookup?type=pop" % sid, None),
                 ("POST", "/datasets", {}), ("GET", "/datasets", None), ("GET", "/datasets/" + did, None),
                 ("POST", "/datasets/" + did, {}), ("PUT", "/datasets/" + did, {}), ("DELETE", "/datasets/" + did, None),
                 ("POST", "/schemas", {}), ("POST", "/schemas/validation-check", {}), ("GET", "/schemas", None),
                 ("GET", "/schemas/default?datasetType=user", None), ("GET", "/schemas/s1", None),
                 ("PUT", "/schemas/s1", {}), ("DELETE", "/schemas/s1", None)]
        for method, path, body in calls:
            p, _, q = path.partition("?")
            r = self.sim.aitems(method, p, body, q or None)
            self.assertNotEqual(r.status, 401, path)
            self.assertLess(r.status, 500, path)
        ops = [e["operation"] for e in self.sim.log(provider="aitems")]
        self.assertEqual(ops, [
            "CreateService", "ListServices", "GetService", "UpdateService", "DeleteService", "CreateTrain",
            "SetServiceDatasets", "UpdateServiceInterval", "SetServiceSchedule", "UploadIntervalData", "ListTrains",
            "GetTrain", "LookupInference", "CreateDataset", "ListDatasets", "GetDataset", "ModifyDataset",
            "UpdateDatasetDescription", "DeleteDataset", "CreateSchema", "ValidateSchema", "ListSchemas",
            "GetDefaultSchema", "GetSchema", "UpdateSchemaDescription", "DeleteSchema"])


class Flags(AiTEMSTest):
    args = ("--aitems-timezone", "utc", "--aitems-create-status", "200", "--start-time", "2024-07-30T02:25:36.558Z")

    def test_timezone_create_status_and_start_time(self):
        r = self.call("POST", "/services", {"name": "flagged"}, expect=200)
        self.assertEqual(r.json["createdDate"], "2024-07-30T02:25:36.558")


class SpringErrorCodes(AiTEMSTest):
    """The codes of unknown ids and wrong states are UNKNOWN: the Spring
    default reason phrases are one plausible form."""
    args = ("--aitems-error-codes", "spring")

    def test_unknown_ids_and_wrong_states_carry_the_variant_codes(self):
        r = self.call("GET", "/services/zzzzzzzzzzz", expect=404)
        self.assertEqual((r.json["error"], r.json["status"], r.json["path"]),
                         ("Not Found", 404, "/api/services/zzzzzzzzzzz"))
        svc = self.call("POST", "/services", {"name": "early"}, expect=201).json
        r = self.call("POST", "/services/" + svc["serviceId"], {"types": ["pop"], "hpConfig": {"is_enabled": False}},
                      expect=400)
        self.assertEqual(r.json["error"], "Bad Request")
        r = self.call("POST", "/services", {"name": "early"}, expect=400)
        self.assertEqual(r.json["error"], "DUPLICATE_NAME")


class NamedErrorCodes(AiTEMSTest):
    args = ("--aitems-error-codes", "GONE,BUSY", "--aitems-busy-status", "409")

    def test_codes_and_busy_status_as_given(self):
        self.assertEqual(self.call("GET", "/datasets/zzzzzzzzzzz", expect=404).json["error"], "GONE")
        svc = self.call("POST", "/services", {"name": "early"}, expect=201).json
        r = self.call("POST", "/services/" + svc["serviceId"], {"types": ["pop"], "hpConfig": {"is_enabled": False}},
                      expect=409)
        self.assertEqual((r.json["error"], r.json["status"], r.json["errorCode"]), ("BUSY", 409, "CONFLICT"))

    def test_a_bad_value_is_refused_at_start(self):
        with self.assertRaises(RuntimeError):
            Emulator("--aitems-error-codes", "ONLY_ONE")


class StatusOverrides(AiTEMSTest):
    """POST /_cloudsim/aitems/{trains,datasets,services}/{id} pins a
    documented status the lifecycle never reaches."""

    def test_every_documented_train_status_is_pinned_until_released(self):
        sid = self.ready_service(name="pinned")
        self.train(sid, types=("pop",))
        version = self.trains(sid)["pop"]["version"]
        for status in ("ready", "waiting", "requesting", "requestFailed", "refinedFailed", "stopping",
                       "learningFailed", "learning", "completed"):
            self.sim.admin("POST", "aitems/trains/" + version, {"status": status})
            self.sim.advance(1000)
            self.assertEqual(self.trains(sid)["pop"]["status"], status)
        self.sim.admin("POST", "aitems/trains/" + version, {"status": "stopping"})
        self.assertEqual(self.call("GET", "/services/" + sid).json["status"], "learning")
        self.sim.admin("POST", "aitems/trains/" + version, {"status": None})
        self.sim.advance(1)
        self.assertEqual(self.trains(sid)["pop"]["status"], "completed")
        self.assertEqual(self.call("GET", "/services/" + sid).json["status"], "learnable")

    def test_dataset_and_service_statuses(self):
        sid = self.ready_service(name="pinned2")
        did = self.call("GET", "/services/" + sid).json["datasets"][0]["datasetId"]
        for status in ("disable", "deleting"):
            self.sim.admin("POST", "aitems/datasets/" + did, {"status": status})
            self.assertEqual(self.call("GET", "/datasets/" + did).json["status"], status)
        self.sim.admin("POST", "aitems/datasets/" + did, {"status": None})
        for status in ("requestLearning", "drafted", "disable"):
            self.sim.admin("POST", "aitems/services/" + sid, {"status": status})
            self.sim.advance(10)
            self.assertEqual(self.call("GET", "/services/" + sid).json["status"], status)
        # A service that is not learnable refuses a training request.
        r = self.call("POST", "/services/" + sid, {"types": ["pop"], "hpConfig": {"is_enabled": False}}, expect=400)
        self.assertEqual(r.json["error"], "INVALID_STATUS")
        self.sim.admin("POST", "aitems/services/" + sid, {"status": None})
        self.assertEqual(self.call("GET", "/services/" + sid).json["status"], "learnable")

    def test_undocumented_statuses_unknown_ids_and_paths_are_refused(self):
        status, _, _ = self.sim.request("POST", "/_cloudsim/aitems/trains/zzzzzzzzzzz", body={"status": "learning"})
        self.assertEqual(status, 400)
        sid = self.ready_service(name="pinned3")
        status, _, _ = self.sim.request("POST", "/_cloudsim/aitems/services/" + sid, body={"status": "paused"})
        self.assertEqual(status, 400)
        status, _, _ = self.sim.request("POST", "/_cloudsim/aitems/things/" + sid, body={"status": "learning"})
        self.assertEqual(status, 404)


class KstDates(AiTEMSTest):
    args = ("--start-time", "2024-07-30T02:25:36.558Z")

    def test_default_dates_are_kst(self):
        r = self.call("POST", "/services", {"name": "seoul"}, expect=201)
        self.assertEqual(r.json["createdDate"], "2024-07-30T11:25:36.558")


if __name__ == "__main__":
    unittest.main()
