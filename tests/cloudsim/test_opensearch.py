"""OpenSearch algorithm functions: instances, tasks, default instance,
versions and resources, with both signature schemes."""

import json
import unittest

from .harness import EmulatorTest

AG = "/app-groups/my_app/functions/ctr"
ENVELOPE = {"Status", "HttpCode", "RequestId", "Code", "Message", "Latency"}


class OpenSearchTest(EmulatorTest):
    def call(self, method, path, body=None, query=None, expect=None, v2=False):
        r = self.sim.opensearch(method, path, body, query, v2=v2)
        if expect is not None:
            self.assertEqual(r.status, expect, r)
        return r

    def instance(self, name="ctr_test", model="tf_checkpoint", fn="ctr"):
        body = {"instanceName": name, "modelType": model, "functionType": "PAAS", "description": "Test instance",
                "createParameters": [{"name": "title_field", "value": "title"}], "cron": ""}
        return self.call("POST", "/app-groups/my_app/functions/%s/instances" % fn, body, expect=200)

    def task(self, name="ctr_test", gen=None):
        path = AG + "/instances/%s/tasks" % name
        if gen is None:
            return self.call("GET", path, query="pageSize=1").json["Result"][0]
        return self.call("GET", "%s/%s" % (path, gen), expect=200).json["Result"]

    def get(self, name="ctr_test", output="normal"):
        return self.call("GET", AG + "/instances/" + name, query="output=" + output, expect=200).json["Result"]


class Lifecycle(OpenSearchTest):
    def test_task_runs_to_success(self):
        r = self.instance()
        # Create, update, delete and task start answer the envelope alone
        # (the SDK models have no Result for them).
        self.assertEqual(set(r.json), ENVELOPE)
        self.assertEqual((r.json["Status"], r.json["HttpCode"], r.json["Code"]), ("OK", 200, ""))
        inst = self.get()
        self.assertEqual((inst["Status"], inst["CreateParameters"]), ("unavailable", [{"Name": "title_field",
                                                                                        "Value": "title"}]))
        self.assertEqual(self.get(output="detail")["Task"]["DagStatus"], "untrained")
        self.call("POST", AG + "/instances/ctr_test/tasks", expect=200)
        t = self.task(gen="1")
        self.assertEqual((t["Status"], t["Progress"], t["EndTime"], t["Generation"]), ("running", 0, 0, "1"))
        self.assertRegex(t["RunId"], r"^trigger__\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d$")
        self.sim.advance(300)
        mid = self.task(gen="1")
        self.assertEqual((mid["Status"], mid["Progress"]), ("running", 50))
        self.assertEqual(self.get(output="detail")["Task"]["DagStatus"], "running")
        again = self.call("POST", AG + "/instances/ctr_test/tasks", expect=409)
        self.assertEqual((again.json["Status"], again.json["Code"], again.json["HttpCode"]),
                         ("FAIL", "Task.IsRunning", 409))
        self.sim.advance(300)
        done = self.task(gen="1")
        self.assertEqual((done["Status"], done["Progress"]), ("success", 100))
        self.assertEqual(done["EndTime"] - done["StartTime"], 600000)
        info = json.loads(done["ExtendInfo"])
        self.assertTrue(0.5 < info["auc"] < 1, info)
        self.assertEqual(info["errors"], [])
        self.assertEqual(self.get()["Status"], "available")
        self.assertEqual(self.get(output="detail")["Task"]["DagStatus"], "success")
        self.call("POST", AG + "/instances/ctr_test/tasks", expect=200)
        self.assertEqual(self.task()["Generation"], "2")

    def test_task_fails_when_the_instance_name_says_so(self):
        self.instance("ctr_fail")
        self.call("POST", AG + "/instances/ctr_fail/tasks", expect=200)
        self.sim.advance(359)
        self.assertEqual(self.task("ctr_fail", "1")["Status"], "running")
        self.sim.advance(1)
        t = self.task("ctr_fail", "1")
        self.assertEqual((t["Status"], t["Progress"]), ("failed", 60))
        self.assertTrue(json.loads(t["ExtendInfo"])["errors"])
        self.assertEqual(self.get("ctr_fail")["Status"], "unavailable")
        self.assertEqual(self.get("ctr_fail", "detail")["Task"]["DagStatus"], "failed")

    def test_metrics_are_deterministic_per_seed(self):
        self.instance("pop_test", "pop", fn="pop")
        self.call("POST", "/app-groups/my_app/functions/pop/instances/pop_test/tasks", expect=200)
        self.sim.advance(600)
        first = self.call("GET", "/app-groups/my_app/functions/pop/instances/pop_test/tasks/1").json["Result"]
        self.sim.reset()
        self.instance("pop_test", "pop", fn="pop")
        self.call("POST", "/app-groups/my_app/functions/pop/instances/pop_test/tasks", expect=200)
        self.sim.advance(600)
        again = self.call("GET", "/app-groups/my_app/functions/pop/instances/pop_test/tasks/1").json["Result"]
        self.assertEqual(json.loads(first["ExtendInfo"]), json.loads(again["ExtendInfo"]))
        self.assertIn("recall", json.loads(first["ExtendInfo"]))

    def test_task_delete_and_instance_delete(self):
        self.instance()
        self.call("POST", AG + "/instances/ctr_test/tasks", expect=200)
        r = self.call("DELETE", AG + "/instances/ctr_test/tasks/1", expect=409)
        self.assertEqual(r.json["Code"], "Task.UnableDelete")
        self.assertEqual(self.call("DELETE", AG + "/instances/ctr_test", expect=409).json["Code"], "Task.IsRunning")
        self.sim.advance(600)
        self.call("DELETE", AG + "/instances/ctr_test/tasks/1", expect=200)
        self.assertEqual(self.call("GET", AG + "/instances/ctr_test/tasks/1", expect=404).json["Code"],
                         "Task.NotExist")
        self.call("DELETE", AG + "/instances/ctr_test", expect=200)
        self.assertEqual(self.call("GET", AG + "/instances/ctr_test", expect=404).json["Code"], "Instance.NotExist")

    def test_update_instance(self):
        self.instance()
        self.call("PUT", AG + "/instances/ctr_test", {"description": "new", "cron": "0 0 ? * 0",
                                                      "usageParameters": [{"name": "allow_dict_id", "value": "1"}]},
                  expect=200)
        inst = self.get()
        self.assertEqual((inst["Description"], inst["Cron"], inst["UsageParameters"]),
                         ("new", "0 0 ? * 0", [{"Name": "allow_dict_id", "Value": "1"}]))


class DefaultInstance(OpenSearchTest):
    def test_default_instance(self):
        path = "/app-groups/my_app/functions/pop/default-instance"
        self.assertEqual(self.call("GET", path, expect=404).json["Code"], "DefaultInstance.NotExist")
        self.instance("pop_test", "pop", fn="pop")
        self.assertEqual(self.call("PUT", path, {"instanceName": "pop_test"}, expect=400).json["Code"],
                         "DefaultInstance.SetFail")
        self.assertEqual(self.call("PUT", path, {"instanceName": "nope"}, expect=404).json["Code"],
                         "Instance.NotExist")
        self.call("POST", "/app-groups/my_app/functions/pop/instances/pop_test/tasks", expect=200)
        self.sim.advance(600)
        self.call("PUT", path, {"instanceName": "pop_test"}, expect=200)
        got = self.call("GET", path, expect=200).json
        self.assertEqual(got["Result"], {"InstanceName": "pop_test"})
        # The SDK model also has the names at the top level.
        self.assertEqual((got["InstanceName"], got["FunctionName"]), ("pop_test", "pop"))
        self.assertEqual(set(got), ENVELOPE | {"Result", "InstanceName", "FunctionName"})
        self.call("PUT", path, {"instanceName": ""}, expect=200)
        self.call("GET", path, expect=404)


class Paging(OpenSearchTest):
    def test_tasks_page_newest_first_with_default_size_one(self):
        self.instance()
        for _ in range(3):
            self.call("POST", AG + "/instances/ctr_test/tasks", expect=200)
            self.sim.advance(600)
        r = self.call("GET", AG + "/instances/ctr_test/tasks", expect=200).json
        self.assertEqual((r["TotalCount"], [t["Generation"] for t in r["Result"]]), (3, ["3"]))
        r = self.call("GET", AG + "/instances/ctr_test/tasks", query="pageNumber=2&pageSize=2").json
        self.assertEqual([t["Generation"] for t in r["Result"]], ["1"])
        r = self.call("GET", AG + "/instances/ctr_test/tasks", query="pageSize=10").json
        starts = [t["StartTime"] for t in r["Result"]]
        self.assertEqual(starts, sorted(starts, reverse=True))
        after = starts[1]
        r = self.call("GET", AG + "/instances/ctr_test/tasks", query="pageSize=10&startTime=%d" % after).json
        self.assertEqual([t["Generation"] for t in r["Result"]], ["3"])
        r = self.call("GET", AG + "/instances/ctr_test/tasks", query="pageSize=10&status=running").json
        self.assertEqual(r["TotalCount"], 0)
        self.call("GET", AG + "/instances/ctr_test/tasks", query="pageNumber=0", expect=400)

    def test_instances_page_size_ten(self):
        for i in range(12):
            self.instance("ctr_%02d" % i)
            self.sim.advance(1)
        r = self.call("GET", AG + "/instances", expect=200).json
        self.assertEqual((r["TotalCount"], len(r["Result"]), r["Result"][0]["InstanceName"]), (12, 10, "ctr_11"))
        r = self.call("GET", AG + "/instances", query="pageNumber=2&output=simple").json
        self.assertEqual([i["InstanceName"] for i in r["Result"]], ["ctr_01", "ctr_00"])
        self.assertNotIn("CreateParameters", r["Result"][0])
        self.assertEqual(self.call("GET", AG + "/instances", query="source=builtin").json["TotalCount"], 0)
        self.assertEqual(self.call("GET", AG + "/instances", query="modelType=pop").json["TotalCount"], 0)


class Errors(OpenSearchTest):
    def test_business_errors(self):
        self.instance()
        dup = self.call("POST", AG + "/instances", {"instanceName": "ctr_test", "modelType": "tf_checkpoint"},
                        expect=409)
        self.assertEqual(dup.json["Code"], "Instance.AlreadyExist")
        for body in ({"instanceName": "1bad", "modelType": "pop"}, {"instanceName": "x" * 31, "modelType": "pop"},
                     {"instanceName": "ok", "modelType": "nonsense"}, {"modelType": "pop"}):
            r = self.call("POST", AG + "/instances", body, expect=400)
            self.assertEqual((r.json["Status"], r.json["Code"]), ("FAIL", "InvalidParameter"), body)
        r = self.call("POST", AG + "/instances/nope/tasks", expect=404)
        self.assertEqual(set(r.json), ENVELOPE)
        self.assertEqual((r.json["Code"], r.json["Message"]), ("Instance.NotExist", "instance not exist."))
        r = self.call("GET", "/app-groups/my_app/functions/ctr/nothing", expect=404)
        self.assertEqual(r.json["Code"], "InvalidApi.NotFound")

    def test_versions(self):
        r = self.call("GET", "/functions/ctr/current-version", query="modelType=tf_checkpoint", expect=200).json
        self.assertEqual((r["Result"]["VersionId"], r["Result"]["ModelType"]), (1, "tf_checkpoint"))
        # Required is the string "true" or "false" in the SDK model.
        self.assertEqual(r["Result"]["VersionConfig"]["CreateParameters"][0], {"Name": "title_field",
                                                                               "Required": "false"})
        self.call("GET", "/functions/ctr/current-version", expect=400)
        self.assertEqual(self.call("GET", "/functions/ctr/versions/1", expect=200).json["Result"]["VersionName"], "v1")
        self.assertEqual(self.call("GET", "/functions/ctr/versions/9", expect=404).json["Code"], "Version.NotExist")

    def test_resources(self):
        base = "/app-groups/my_app/functions/rank/resources"
        fg = {"ResourceName": "fg_json", "ResourceType": "feature_generator", "Description": "",
              "Data": {"Generators": [{"Generator": "id", "Output": "item_id_feature",
                                       "Input": {"Features": [{"Name": "system_item_id", "Type": "item"}]}}]}}
        self.call("POST", base, fg, expect=200)
        self.assertEqual(self.call("POST", base, fg, expect=409).json["Code"], "Resource.AlreadyExist")
        self.assertEqual(self.call("POST", base, dict(fg, ResourceName="9x"), expect=400).json["Code"],
                         "Resource.InvalidResourceName")
        self.call("POST", base, {"ResourceName": "raw", "ResourceType": "raw_file", "Data": {"Content": "abc"}},
                  expect=200)
        self.call("POST", base, {"ResourceName": "raw2", "ResourceType": "raw_file", "Data": {}}, expect=400)
        r = self.call("GET", base, query="resourceType=raw_file", expect=200).json
        self.assertEqual((r["TotalCount"], r["Result"][0]["ResourceName"]), (1, "raw"))
        self.call("PUT", base + "/raw", {"Data": {"Content": "xyz"}, "Description": "d"}, expect=200)
        got = self.call("GET", base + "/raw", expect=200).json["Result"]
        self.assertEqual((got["Data"], got["Description"], got["FunctionName"]), ({"Content": "xyz"}, "d", "rank"))
        self.call("DELETE", base + "/raw", expect=200)
        self.assertEqual(self.call("GET", base + "/raw", expect=404).json["Code"], "Resource.NotExist")

    def test_every_operation_is_named(self):
        P = AG + "/instances"
        calls = [("POST", P), ("GET", P), ("GET", P + "/i"), ("PUT", P + "/i"), ("DELETE", P + "/i"),
                 ("POST", P + "/i/tasks"), ("GET", P + "/i/tasks"), ("GET", P + "/i/tasks/1"),
                 ("DELETE", P + "/i/tasks/1"), ("GET", AG + "/default-instance"), ("PUT", AG + "/default-instance"),
                 ("GET", "/functions/ctr/current-version"), ("GET", "/functions/ctr/versions/1"),
                 ("POST", AG + "/resources"), ("GET", AG + "/resources"), ("GET", AG + "/resources/r"),
                 ("PUT", AG + "/resources/r"), ("DELETE", AG + "/resources/r")]
        for method, path in calls:
            r = self.call(method, path, {} if method in ("POST", "PUT") else None)
            self.assertLess(r.status, 500, path)
        self.assertEqual([e["operation"] for e in self.sim.log(provider="opensearch")], [
            "CreateFunctionInstance", "ListFunctionInstances", "GetFunctionInstance", "UpdateFunctionInstance",
            "DeleteFunctionInstance", "CreateFunctionTask", "ListFunctionTasks", "GetFunctionTask",
            "DeleteFunctionTask", "GetFunctionDefaultInstance", "UpdateFunctionDefaultInstance",
            "GetFunctionCurrentVersion", "GetFunctionVersion", "CreateFunctionResource", "ListFunctionResources",
            "GetFunctionResource", "UpdateFunctionResource", "DeleteFunctionResource"])

    def test_v2_signed_lifecycle(self):
        body = {"instanceName": "v2_inst", "modelType": "tf_checkpoint"}
        self.call("POST", AG + "/instances", body, expect=200, v2=True)
        self.call("POST", AG + "/instances/v2_inst/tasks", expect=200, v2=True)
        r = self.call("GET", AG + "/instances/v2_inst/tasks", query="pageNumber=1&pageSize=10", v2=True, expect=200)
        self.assertEqual(r.json["TotalCount"], 1)


class CamelKeys(OpenSearchTest):
    args = ("--opensearch-keys", "camel")

    def test_camel_case_keys(self):
        self.instance()
        r = self.call("GET", AG + "/instances", expect=200).json
        self.assertEqual(set(r), {"status", "httpCode", "requestId", "code", "message", "latency", "result",
                                  "totalCount"})
        self.assertEqual(r["result"][0]["createParameters"], [{"name": "title_field", "value": "title"}])
        err = self.call("GET", AG + "/instances/nope", expect=404).json
        self.assertEqual(err["code"], "Instance.NotExist")


class BusinessErrorsAs200(OpenSearchTest):
    args = ("--opensearch-error-status", "200")

    def test_business_error_with_http_200(self):
        r = self.call("GET", AG + "/instances/nope", expect=200)
        self.assertEqual((r.json["Status"], r.json["HttpCode"], r.json["Code"]), ("FAIL", 404, "Instance.NotExist"))


if __name__ == "__main__":
    unittest.main()


class ModelShapes(OpenSearchTest):
    """Response details as the SDK models (opensearch-20171225) have them."""

    def test_writes_answer_the_envelope_without_result(self):
        base = "/app-groups/my_app/functions/pop"
        answers = [
            self.instance("pop_test", "pop", fn="pop"),
            self.call("PUT", base + "/instances/pop_test", {"description": "d"}, expect=200),
            self.call("POST", base + "/instances/pop_test/tasks", expect=200),
        ]
        self.sim.advance(600)
        answers += [
            self.call("PUT", base + "/default-instance", {"instanceName": "pop_test"}, expect=200),
            self.call("PUT", base + "/default-instance", {"instanceName": ""}, expect=200),
            self.call("DELETE", base + "/instances/pop_test/tasks/1", expect=200),
            self.call("POST", base + "/resources", {"ResourceName": "raw", "ResourceType": "raw_file",
                                                   "Data": {"Content": "abc"}}, expect=200),
            self.call("PUT", base + "/resources/raw", {"Description": "d"}, expect=200),
            self.call("DELETE", base + "/resources/raw", expect=200),
            self.call("DELETE", base + "/instances/pop_test", expect=200),
        ]
        for r in answers:
            self.assertEqual(set(r.json), ENVELOPE, r.json)
            self.assertEqual((r.json["Status"], r.json["HttpCode"]), ("OK", 200))

    def test_required_flags_are_strings(self):
        r = self.call("GET", "/functions/ctr/current-version", query="modelType=tf_checkpoint", expect=200).json
        config = r["Result"]["VersionConfig"]
        flags = [p["Required"] for p in config["CreateParameters"] + config["UsageParameters"]]
        self.assertTrue(flags)
        for flag in flags:
            self.assertIn(flag, ("true", "false"))
        r = self.call("GET", "/functions/ctr/versions/1", expect=200).json
        self.assertEqual(r["Result"]["VersionConfig"]["UsageParameters"], [{"Name": "allow_dict_id",
                                                                            "Required": "false"}])

    def test_last_run_time_is_how_long_the_last_run_took(self):
        self.instance()
        self.assertEqual(self.get(output="detail")["Task"]["LastRunTime"], 0)
        self.call("POST", AG + "/instances/ctr_test/tasks", expect=200)
        self.sim.advance(250)
        self.assertEqual(self.get(output="detail")["Task"]["LastRunTime"], 250000)
        self.sim.advance(1000)
        task = self.get(output="detail")["Task"]
        self.assertEqual((task["DagStatus"], task["LastRunTime"]), ("success", 600000))
        # A second run, 400 s in: its own duration, not an epoch.
        self.call("POST", AG + "/instances/ctr_test/tasks", expect=200)
        self.sim.advance(400)
        listed = self.call("GET", AG + "/instances", query="output=detail", expect=200).json["Result"][0]
        self.assertEqual(listed["Task"]["LastRunTime"], 400000)
