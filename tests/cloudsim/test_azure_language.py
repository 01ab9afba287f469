"""Azure AI Language authoring and runtime, with key and Entra ID auth."""

import os
import re
import shutil
import tempfile
import unittest
import urllib.parse

from .harness import AZ_VERSION, Emulator, EmulatorTest

SPORTS = ["The striker scored a late goal and the team won the football match at the stadium.",
          "Tennis final: the champion served aces and won the tournament trophy.",
          "The coach praised the players after the basketball game went to overtime.",
          "Marathon runners crossed the finish line as the crowd cheered the athletes.",
          "The goalkeeper saved a penalty and the league season ended with a title."]
FINANCE = ["The bank raised interest rates and bond yields climbed on the stock market.",
           "Shares fell after the company reported lower quarterly earnings and revenue.",
           "Investors moved money into funds as inflation and the currency weakened.",
           "The loan agreement sets the interest payment schedule and the credit terms.",
           "Analysts expect profit growth as the market rallies and dividends rise."]
CONTAINER = "docs"


def write_docs(root):
    os.makedirs(os.path.join(root, CONTAINER))
    for label, texts in (("sports", SPORTS), ("finance", FINANCE)):
        for i, text in enumerate(texts):
            with open(os.path.join(root, CONTAINER, "%s_%d.txt" % (label, i)), "w") as f:
                f.write(text)


def classification_project(name, kind="CustomSingleLabelClassification", language="en"):
    docs = []
    for label, texts in (("Sports", SPORTS), ("Finance", FINANCE)):
        for i in range(len(texts)):
            doc = {"location": "%s_%d.txt" % (label.lower(), i), "language": "en", "dataset": "Train"}
            if kind == "CustomSingleLabelClassification":
                doc["class"] = {"category": label}
            else:
                doc["classes"] = [{"category": label}]
            docs.append(doc)
    return {"projectFileVersion": "2022-05-01", "stringIndexType": "Utf16CodeUnit",
            "metadata": {"projectName": name, "projectKind": kind, "language": language,
                         "storageInputContainerName": CONTAINER, "multilingual": False, "description": ""},
            "assets": {"projectKind": kind, "classes": [{"category": "Sports"}, {"category": "Finance"}],
                       "documents": docs}}


DATETIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
DATETIME7 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}Z$")
JOB_ID = re.compile(r"^[0-9a-f-]{36}_\d{18}$")


class AzureTest(EmulatorTest):
    @classmethod
    def setUpClass(cls):
        cls.data = tempfile.mkdtemp()
        write_docs(cls.data)
        cls.args = ("--data-dir", cls.data) + tuple(cls.args)
        super().setUpClass()

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        shutil.rmtree(cls.data)

    P = "/authoring/analyze-text/projects"

    def call(self, method, path, body=None, query="", expect=None, **kw):
        r = self.sim.azure(method, path, body, query, **kw)
        if expect is not None:
            self.assertEqual(r.status, expect, r)
        return r

    def follow(self, url, expect=200):
        """GET an absolute URL the emulator handed out."""
        u = urllib.parse.urlsplit(url)
        self.assertEqual("%s://%s" % (u.scheme, u.netloc), self.sim.url)
        q = urllib.parse.parse_qs(u.query)
        self.assertEqual(q["api-version"], [AZ_VERSION])
        rest = "&".join(p for p in u.query.split("&") if not p.startswith("api-version="))
        r = self.call("GET", u.path[len("/language"):], query=rest, expect=expect)
        return r

    def lro(self, method, path, body=None, query=""):
        r = self.call(method, path, body, query, expect=202)
        self.assertEqual(r.raw, b"")
        return r.headers["operation-location"]

    def imported(self, name="news", kind="CustomSingleLabelClassification"):
        op = self.lro("POST", "%s/%s/:import" % (self.P, name), classification_project(name, kind))
        self.sim.advance(30)
        self.assertEqual(self.follow(op).json["status"], "succeeded")
        return op

    def trained(self, name="news", label="m1", kind="CustomSingleLabelClassification"):
        self.imported(name, kind)
        op = self.lro("POST", "%s/%s/:train" % (self.P, name), {"modelLabel": label, "trainingConfigVersion": "latest"})
        self.sim.advance(560)
        self.assertEqual(self.follow(op).json["status"], "succeeded")
        return op

    def deployed(self, name="news", label="m1", dep="prod", kind="CustomSingleLabelClassification"):
        self.trained(name, label, kind)
        op = self.lro("PUT", "%s/%s/deployments/%s" % (self.P, name, dep), {"trainedModelLabel": label})
        self.sim.advance(60)
        self.assertEqual(self.follow(op).json["status"], "succeeded")


class Projects(AzureTest):
    def test_create_then_update(self):
        body = {"projectName": "LoanAgreements", "language": "en", "projectKind": "CustomEntityRecognition",
                "description": "d", "multilingual": False, "storageInputContainerName": "loans"}
        merge = {"Content-Type": "application/merge-patch+json"}
        r = self.call("PATCH", self.P + "/LoanAgreements", body, headers=merge, expect=201)
        self.assertEqual(r.json["projectKind"], "CustomEntityRecognition")
        self.assertRegex(r.json["createdDateTime"], DATETIME)
        self.assertNotIn("lastTrainedDateTime", r.json)
        r = self.call("PATCH", self.P + "/LoanAgreements", {"description": "new"}, headers=merge, expect=200)
        self.assertEqual((r.json["description"], r.json["language"]), ("new", "en"))
        self.assertEqual(self.call("GET", self.P + "/LoanAgreements", expect=200).json["description"], "new")
        bad = self.call("PATCH", self.P + "/Other", dict(body, projectName="Other", projectKind="Nope"),
                        headers=merge, expect=400)
        self.assertEqual(bad.json["error"]["code"], "InvalidArgument")
        self.call("PATCH", self.P + "/Other", dict(body, projectName="Other", multilingual="True"), headers=merge,
                  expect=400)
        self.call("PATCH", self.P + "/Other", dict(body, projectName="Mismatch"), headers=merge, expect=400)
        self.call("PATCH", self.P + "/Other", dict(body, projectName="Other"), expect=400)   # not merge-patch
        # Enum values are exact unless --azure-lenient-enums (EnumCase below).
        other_case = self.call("PATCH", self.P + "/Lenient", dict(body, projectName="Lenient",
                                                                  projectKind="customEntityRecognition"),
                               headers=merge, expect=400)
        self.assertEqual((other_case.json["error"]["code"], other_case.json["error"]["target"]),
                         ("InvalidArgument", "projectKind"))
        missing = self.call("GET", self.P + "/nothere", expect=404).json
        self.assertEqual(missing["error"]["code"], "ProjectNotFound")

    def test_import_lifecycle_and_export(self):
        r = self.call("POST", self.P + "/news/:import", classification_project("news"), expect=202)
        self.assertFalse({"location", "retry-after"} & set(r.headers))
        op = r.headers["operation-location"]
        self.assertTrue(op.startswith(self.sim.url + "/language" + self.P + "/news/import/jobs/"), op)
        job = self.follow(op).json
        self.assertRegex(job["jobId"], JOB_ID)
        self.assertEqual(job["status"], "notStarted")
        self.assertEqual(set(job), {"jobId", "createdDateTime", "lastUpdatedDateTime", "expirationDateTime", "status"})
        self.call("GET", self.P + "/news", expect=404)
        self.sim.advance(2)
        self.assertEqual(self.follow(op).json["status"], "running")
        self.sim.advance(28)
        self.assertEqual(self.follow(op).json["status"], "succeeded")
        self.assertEqual(self.call("GET", self.P + "/news", expect=200).json["projectKind"],
                         "CustomSingleLabelClassification")
        exp = self.lro("POST", self.P + "/news/:export", query="stringIndexType=Utf16CodeUnit")
        self.sim.advance(20)
        status = self.follow(exp).json
        self.assertEqual(status["status"], "succeeded")
        result = self.follow(status["resultUrl"]).json
        self.assertEqual(result["assets"], classification_project("news")["assets"])
        self.call("POST", self.P + "/news/:export", expect=400)

    def test_import_with_unsupported_language_fails_the_job(self):
        op = self.lro("POST", self.P + "/xx/:import", classification_project("xx", language="xx-klingon"))
        self.sim.advance(30)
        job = self.follow(op).json
        self.assertEqual(job["status"], "failed")
        self.assertEqual(job["errors"][0]["code"], "InvalidArgument")
        self.call("GET", self.P + "/xx", expect=404)

    def test_delete_project(self):
        self.imported()
        op = self.lro("DELETE", self.P + "/news")
        self.assertIn(self.P + "/global/deletion-jobs/", op)
        self.sim.advance(30)
        self.assertEqual(self.follow(op).json["status"], "succeeded")
        self.call("GET", self.P + "/news", expect=404)

    def test_globals(self):
        langs = self.call("GET", self.P + "/global/languages", query="projectKind=CustomSingleLabelClassification",
                          expect=200).json
        self.assertIn({"languageName": "English", "languageCode": "en"}, langs["value"])
        cfg = self.call("GET", self.P + "/global/training-config-versions", expect=200).json["value"]
        self.assertEqual(cfg[0]["trainingConfigVersion"], "2022-05-01")
        self.assertRegex(cfg[0]["modelExpirationDate"], r"^\d{4}-\d\d-\d\d$")


class Training(AzureTest):
    def test_training_succeeds_with_progress_and_a_model(self):
        self.imported()
        op = self.lro("POST", self.P + "/news/:train", {"modelLabel": "m1", "trainingConfigVersion": "latest"})
        self.assertIn(self.P + "/news/train/jobs/", op)
        job = self.follow(op).json
        self.assertEqual((job["status"], job["result"]["trainingStatus"]["status"]), ("notStarted", "notStarted"))
        self.assertRegex(job["result"]["estimatedEndDateTime"], DATETIME7)
        self.sim.advance(10)
        job = self.follow(op).json
        self.assertEqual((job["status"], job["result"]["trainingStatus"]["percentComplete"]), ("running", 0))
        self.sim.advance(240)
        job = self.follow(op).json
        self.assertEqual(job["result"]["trainingStatus"], {
            "percentComplete": 50, "startDateTime": job["result"]["trainingStatus"]["startDateTime"],
            "status": "running"})
        self.assertEqual(job["result"]["evaluationStatus"], {"percentComplete": 0, "status": "notStarted"})
        self.sim.advance(270)
        job = self.follow(op).json
        self.assertEqual((job["result"]["trainingStatus"]["status"], job["result"]["evaluationStatus"]["status"]),
                         ("succeeded", "running"))
        self.call("GET", self.P + "/news/models/m1", expect=404)
        self.sim.advance(40)
        job = self.follow(op).json
        self.assertEqual(job["status"], "succeeded")
        self.assertEqual(job["result"]["evaluationStatus"]["percentComplete"], 100)
        model = self.call("GET", self.P + "/news/models/m1", expect=200).json
        self.assertTrue(model["modelId"].startswith("m1-"))
        self.assertEqual(model["modelTrainingConfigVersion"], "2022-05-01")
        self.assertEqual(self.call("GET", self.P + "/news").json["lastTrainedDateTime"], model["lastTrainedDateTime"])
        listed = self.call("GET", self.P + "/news/train/jobs", expect=200).json["value"]
        self.assertEqual([j["jobId"] for j in listed], [job["jobId"]])

    def test_evaluation_summary_and_results(self):
        self.trained()
        s = self.call("GET", self.P + "/news/models/m1/evaluation/summary-result", expect=200).json
        ev = s["customSingleLabelClassificationEvaluation"]
        self.assertEqual(set(ev["classes"]) | set(ev["confusionMatrix"]) , {"Sports", "Finance"})
        self.assertEqual(s["evaluationOptions"], {"kind": "percentage", "trainingSplitPercentage": 80,
                                                  "testingSplitPercentage": 20})
        for k in ("microF1", "microPrecision", "microRecall", "macroF1", "macroPrecision", "macroRecall"):
            self.assertTrue(0 <= ev[k] <= 1, k)
        results = self.call("GET", self.P + "/news/models/m1/evaluation/result",
                            query="stringIndexType=Utf16CodeUnit", expect=200).json["value"]
        self.assertTrue(results)
        tested = sum(c["truePositiveCount"] + c["falseNegativeCount"] for c in ev["classes"].values())
        self.assertEqual(len(results), tested)
        for r in results:
            self.assertIn(r["customSingleLabelClassificationResult"]["expectedClass"], ("Sports", "Finance"))
            self.assertIn(r["customSingleLabelClassificationResult"]["predictedClass"], ("Sports", "Finance"))
        self.call("GET", self.P + "/news/models/m1/evaluation/result", expect=400)

    def test_training_fails_when_the_label_says_so(self):
        self.imported()
        op = self.lro("POST", self.P + "/news/:train", {"modelLabel": "will-fail", "trainingConfigVersion": "latest"})
        self.sim.advance(249)
        self.assertEqual(self.follow(op).json["status"], "running")
        self.sim.advance(1)
        job = self.follow(op).json
        self.assertEqual((job["status"], job["result"]["trainingStatus"]["status"]), ("failed", "failed"))
        self.assertTrue(job["errors"])
        self.call("GET", self.P + "/news/models/will-fail", expect=404)

    def test_cancel(self):
        self.imported()
        op = self.lro("POST", self.P + "/news/:train", {"modelLabel": "m2", "trainingConfigVersion": "latest"})
        self.sim.advance(100)
        job_id = op.split("/jobs/")[1].split("?")[0]
        cancel = self.lro("POST", self.P + "/news/train/jobs/%s/:cancel" % job_id)
        self.assertEqual(cancel, op)
        job = self.follow(op).json
        self.assertEqual((job["status"], job["result"]["trainingStatus"]["status"]), ("cancelling", "cancelling"))
        self.assertEqual(self.call("POST", self.P + "/news/train/jobs/%s/:cancel" % job_id, expect=409).json["error"]
                         ["code"], "Conflict")
        self.sim.advance(20)
        job = self.follow(op).json
        self.assertEqual((job["status"], job["result"]["trainingStatus"]["status"]), ("cancelled", "cancelled"))
        self.sim.advance(1000)
        self.assertEqual(self.follow(op).json["status"], "cancelled")
        self.call("GET", self.P + "/news/models/m2", expect=404)

    def test_training_input_errors(self):
        self.call("POST", self.P + "/none/:train", {"modelLabel": "m", "trainingConfigVersion": "latest"}, expect=404)
        self.imported()
        for body in ({"trainingConfigVersion": "latest"}, {"modelLabel": "m", "trainingConfigVersion": "1999-01-01"},
                     {"modelLabel": "m", "trainingConfigVersion": "latest",
                      "evaluationOptions": {"kind": "percentage", "trainingSplitPercentage": 70,
                                            "testingSplitPercentage": 20}}):
            self.call("POST", self.P + "/news/:train", body, expect=400)
        self.lro("POST", self.P + "/news/:train", {"modelLabel": "a", "trainingConfigVersion": "latest"})
        busy = self.call("POST", self.P + "/news/:train", {"modelLabel": "b", "trainingConfigVersion": "latest"},
                         expect=409)
        self.assertEqual(busy.json["error"]["code"], "Conflict")
        self.call("GET", self.P + "/news/train/jobs/nope", expect=404)

    def test_jobs_expire_after_seven_days(self):
        op = self.trained()
        self.sim.advance(7 * 86400)
        self.assertEqual(self.follow(op, expect=404).json["error"]["code"], "OperationNotFound")


class Deployments(AzureTest):
    def test_deploy_swap_and_delete(self):
        self.deployed()
        d = self.call("GET", self.P + "/news/deployments/prod", expect=200).json
        model = self.call("GET", self.P + "/news/models/m1").json
        self.assertEqual(d["modelId"], model["modelId"])
        r = self.call("DELETE", self.P + "/news/models/m1", expect=409)
        self.assertEqual(r.json["error"]["code"], "Conflict")
        op = self.lro("POST", self.P + "/news/:train", {"modelLabel": "m2", "trainingConfigVersion": "latest"})
        self.sim.advance(560)
        op = self.lro("PUT", self.P + "/news/deployments/staging", {"trainedModelLabel": "m2"})
        self.sim.advance(60)
        swap = self.lro("POST", self.P + "/news/deployments/:swap", {"firstDeploymentName": "prod",
                                                                    "secondDeploymentName": "staging"})
        self.assertIn("/deployments/swap/jobs/", swap)
        self.sim.advance(30)
        self.assertEqual(self.follow(swap).json["status"], "succeeded")
        m2 = self.call("GET", self.P + "/news/models/m2").json
        self.assertEqual(self.call("GET", self.P + "/news/deployments/prod").json["modelId"], m2["modelId"])
        gone = self.lro("DELETE", self.P + "/news/deployments/staging")
        self.sim.advance(30)
        self.assertEqual(self.follow(gone).json["status"], "succeeded")
        self.call("GET", self.P + "/news/deployments/staging", expect=404)
        self.assertEqual(self.call("DELETE", self.P + "/news/models/m1", expect=204).raw, b"")
        self.call("PUT", self.P + "/news/deployments/x", {"trainedModelLabel": "nope"}, expect=404)

    def test_load_snapshot(self):
        self.trained()
        op = self.lro("POST", self.P + "/news/models/m1/:load-snapshot")
        self.assertIn("/models/m1/load-snapshot/jobs/", op)
        self.sim.advance(30)
        self.assertEqual(self.follow(op).json["status"], "succeeded")


class Runtime(AzureTest):
    def submit(self, texts, project="news", deployment="prod", kind="CustomSingleLabelClassification", extra=()):
        tasks = [{"kind": kind, "taskName": "t1", "parameters": {"projectName": project,
                                                                 "deploymentName": deployment}}] + list(extra)
        return self.lro("POST", "/analyze-text/jobs", {
            "displayName": "Classifying documents",
            "analysisInput": {"documents": [{"id": str(i), "language": "en", "text": t} for i, t in enumerate(texts)]},
            "tasks": tasks})

    def test_classification_results(self):
        self.deployed()
        op = self.submit(["The team won the match with a late goal in the stadium",
                          "The bank cut interest rates and the stock market rallied"])
        self.assertTrue(op.startswith(self.sim.url + "/language/analyze-text/jobs/"))
        job = self.follow(op).json
        self.assertEqual((job["status"], job["tasks"]["inProgress"], job["tasks"]["items"]), ("notStarted", 1, []))
        self.sim.advance(1)
        self.assertEqual(self.follow(op).json["status"], "running")
        self.sim.advance(4)
        job = self.follow(op).json
        self.assertEqual(job["status"], "succeeded")
        self.assertEqual((job["tasks"]["completed"], job["tasks"]["total"]), (1, 1))
        item = job["tasks"]["items"][0]
        self.assertEqual((item["kind"], item["status"], item["taskName"]),
                         ("CustomSingleLabelClassificationLROResults", "succeeded", "t1"))
        docs = item["results"]["documents"]
        self.assertEqual([d["class"][0]["category"] for d in docs], ["Sports", "Finance"])
        for d in docs:
            self.assertTrue(0.5 < d["class"][0]["confidenceScore"] <= 1, d)
        self.assertEqual(self.follow(op).json, job)

    def test_multi_label(self):
        self.deployed(kind="CustomMultiLabelClassification")
        op = self.submit(["goal match stadium team players", "bank interest rates stock market"],
                         kind="CustomMultiLabelClassification")
        self.sim.advance(5)
        docs = self.follow(op).json["tasks"]["items"][0]["results"]["documents"]
        self.assertEqual([[c["category"] for c in d["class"]] for d in docs], [["Sports"], ["Finance"]])

    def test_entity_recognition(self):
        docs = []
        for label, texts in (("sports", SPORTS), ("finance", FINANCE)):
            for i, text in enumerate(texts):
                word = "team" if label == "sports" else "bank"
                labels = [{"category": "Team" if word == "team" else "Bank", "offset": text.index(word),
                           "length": len(word)}] if word in text else []
                docs.append({"location": "%s_%d.txt" % (label, i), "language": "en",
                             "dataset": "Train" if labels or i % 2 else "Test",
                             "entities": [{"regionOffset": 0, "regionLength": len(text), "labels": labels}]})
        project = {"projectFileVersion": "2022-05-01", "stringIndexType": "Utf16CodeUnit",
                   "metadata": {"projectName": "ner", "projectKind": "CustomEntityRecognition", "language": "en",
                                "storageInputContainerName": CONTAINER},
                   "assets": {"projectKind": "CustomEntityRecognition",
                              "entities": [{"category": "Team"}, {"category": "Bank"}], "documents": docs}}
        self.lro("POST", self.P + "/ner/:import", project)
        self.sim.advance(30)
        self.lro("POST", self.P + "/ner/:train", {"modelLabel": "m", "trainingConfigVersion": "latest",
                                                  "evaluationOptions": {"kind": "manual"}})
        self.sim.advance(560)
        summary = self.call("GET", self.P + "/ner/models/m/evaluation/summary-result", expect=200).json
        self.assertIn("entities", summary["customEntityRecognitionEvaluation"])
        self.lro("PUT", self.P + "/ner/deployments/prod", {"trainedModelLabel": "m"})
        self.sim.advance(60)
        text = "Our team met the bank."
        op = self.submit([text], project="ner", kind="CustomEntityRecognition")
        self.sim.advance(5)
        doc = self.follow(op).json["tasks"]["items"][0]["results"]["documents"][0]
        found = {(e["text"], e["category"], e["offset"], e["length"]) for e in doc["entities"]}
        self.assertEqual(found, {("team", "Team", 4, 4), ("bank", "Bank", 17, 4)})

    def test_missing_deployment_fails_the_task(self):
        self.deployed()
        op = self.submit(["text"], deployment="nope")
        self.sim.advance(5)
        job = self.follow(op).json
        self.assertEqual((job["status"], job["tasks"]["failed"]), ("failed", 1))
        self.assertTrue(job["errors"])
        # A failed item keeps results, with every field the spec requires.
        item = job["tasks"]["items"][0]
        self.assertEqual((item["status"], item["kind"]), ("failed", "CustomSingleLabelClassificationLROResults"))
        self.assertEqual(item["results"], {"errors": [], "projectName": "news", "deploymentName": "nope",
                                           "documents": []})
        second = {"kind": "CustomSingleLabelClassification", "taskName": "t2",
                  "parameters": {"projectName": "news", "deploymentName": "missing"}}
        op = self.submit(["text"], extra=[second])
        self.sim.advance(5)
        self.assertEqual(self.follow(op).json["status"], "partiallyCompleted")

    def test_cancel_runtime_job(self):
        self.deployed()
        op = self.submit(["some text"])
        job_id = op.split("/jobs/")[1].split("?")[0]
        self.lro("POST", "/analyze-text/jobs/%s:cancel" % job_id)
        self.assertEqual(self.follow(op).json["status"], "cancelling")
        self.sim.advance(2)
        self.assertEqual(self.follow(op).json["status"], "cancelled")
        self.call("POST", "/analyze-text/jobs/%s:cancel" % job_id, expect=409)

    def test_submit_validation(self):
        for body in ({"analysisInput": {"documents": []}, "tasks": []},
                     {"analysisInput": {"documents": [{"id": "1", "text": "a"}] * 2},
                      "tasks": [{"kind": "CustomSingleLabelClassification",
                                 "parameters": {"projectName": "p", "deploymentName": "d"}}]},
                     {"analysisInput": {"documents": [{"id": str(i), "text": "a"} for i in range(26)]},
                      "tasks": [{"kind": "CustomSingleLabelClassification",
                                 "parameters": {"projectName": "p", "deploymentName": "d"}}]},
                     {"analysisInput": {"documents": [{"id": "1", "text": "a"}]},
                      "tasks": [{"kind": "CustomSingleLabelClassification", "parameters": {}}]}):
            r = self.call("POST", "/analyze-text/jobs", body, expect=400)
            self.assertIn(r.json["error"]["code"], ("InvalidRequest", "InvalidArgument"))


class Paging(AzureTest):
    def test_next_links_walk_the_list(self):
        merge = {"Content-Type": "application/merge-patch+json"}
        names = ["p%d" % i for i in range(7)]
        for n in names:
            self.call("PATCH", self.P + "/" + n, {"projectName": n, "language": "en", "projectKind":
                                                  "CustomSingleLabelClassification",
                                                  "storageInputContainerName": "c"}, headers=merge, expect=201)
        seen, pages = [], []
        r = self.call("GET", self.P, query="maxpagesize=3", expect=200).json
        while True:
            pages.append(len(r["value"]))
            seen += [p["projectName"] for p in r["value"]]
            if not r["nextLink"]:
                break
            self.assertIn("skip=", r["nextLink"])
            r = self.follow(r["nextLink"]).json
        self.assertEqual((seen, pages), (names, [3, 3, 1]))
        r = self.call("GET", self.P, query="top=5&maxpagesize=3").json
        second = self.follow(r["nextLink"]).json
        self.assertEqual([p["projectName"] for p in r["value"] + second["value"]], names[:5])
        self.assertIsNone(second["nextLink"])
        r = self.call("GET", self.P, query="skip=6").json
        self.assertEqual(([p["projectName"] for p in r["value"]], r["nextLink"]), (["p6"], None))
        self.call("GET", self.P, query="maxpagesize=0", expect=400)


class Auth(AzureTest):
    args = ("--token-ttl", "600")

    def test_key_and_token(self):
        self.assertEqual(self.call("GET", self.P).status, 200)
        r = self.call("GET", self.P, key="wrong", expect=401)
        self.assertEqual(r.json["error"]["code"], "401")
        self.assertTrue(r.json["error"]["message"].startswith("Access denied due to invalid subscription key"))
        status, _, raw = self.sim.request("GET", "/language%s?api-version=%s" % (self.P, AZ_VERSION))
        self.assertEqual(status, 401)
        tok = self.sim.token()
        self.assertEqual(tok.status, 200, tok)
        self.assertEqual((tok.json["token_type"], tok.json["expires_in"]), ("Bearer", 600))
        self.assertEqual(self.call("GET", self.P, token=tok.json["access_token"]).status, 200)
        self.assertEqual(self.call("GET", self.P, token=tok.json["access_token"] + "x").status, 401)
        self.sim.advance(599)
        self.assertEqual(self.call("GET", self.P, token=tok.json["access_token"]).status, 200)
        self.sim.advance(1)
        r = self.call("GET", self.P, token=tok.json["access_token"], expect=401)
        self.assertIn("expired", r.json["error"]["message"])

    def test_api_version_required(self):
        status, _, raw = self.sim.request("GET", "/language" + self.P, {"Ocp-Apim-Subscription-Key":
                                                                         "cloudsim-azure-language-key"})
        self.assertEqual(status, 400)
        status, _, raw = self.sim.request("GET", "/language%s?api-version=1999-01-01" % self.P,
                                          {"Ocp-Apim-Subscription-Key": "cloudsim-azure-language-key"})
        self.assertEqual(status, 400)

    def test_token_errors(self):
        cases = [({"client_secret": "nope"}, 401, "invalid_client", 7000215),
                 ({"client_id": "nobody"}, 400, "unauthorized_client", 700016),
                 ({"scope": "https://graph.microsoft.com/.default"}, 400, "invalid_scope", 70011),
                 ({"grant_type": "password"}, 400, "unsupported_grant_type", 70003),
                 ({"scope": None}, 400, "invalid_request", 900144)]
        for form, status, error, code in cases:
            r = self.sim.token(**form)
            self.assertEqual((r.status, r.json["error"], r.json["error_codes"]), (status, error, [code]), form)
            self.assertTrue(r.json["error_description"].startswith("AADSTS%d" % code))
            self.assertIn("\r\nTrace ID: ", r.json["error_description"])
            self.assertEqual(set(r.json) >= {"timestamp", "trace_id", "correlation_id"}, True)
        self.assertEqual(self.sim.token(tenant="other").json["error_codes"], [90002])
        self.assertEqual(self.sim.token(tenant="common").json["error_codes"], [9001023])

    def test_basic_client_credentials(self):
        import base64
        body = urllib.parse.urlencode({"grant_type": "client_credentials",
                                       "scope": "https://cognitiveservices.azure.com/.default"})
        basic = base64.b64encode(b"cloudsim-client-id:cloudsim-client-secret").decode()
        status, _, raw = self.sim.request("POST", "/cloudsim-tenant/oauth2/v2.0/token",
                                          {"Content-Type": "application/x-www-form-urlencoded",
                                           "Authorization": "Basic " + basic}, body)
        self.assertEqual(status, 200, raw)

    def test_every_operation_is_named(self):
        P = self.P + "/p"
        calls = [("GET", self.P), ("GET", self.P + "/global/deletion-jobs/j"), ("GET", self.P + "/global/languages"),
                 ("GET", self.P + "/global/training-config-versions"), ("GET", P), ("PATCH", P), ("DELETE", P),
                 ("POST", P + "/:import"), ("GET", P + "/import/jobs/j"), ("POST", P + "/:export"),
                 ("GET", P + "/export/jobs/j"), ("GET", P + "/export/jobs/j/result"), ("POST", P + "/:train"),
                 ("GET", P + "/train/jobs"), ("GET", P + "/train/jobs/j"), ("POST", P + "/train/jobs/j/:cancel"),
                 ("GET", P + "/models"), ("GET", P + "/models/m"), ("DELETE", P + "/models/m"),
                 ("POST", P + "/models/m/:load-snapshot"), ("GET", P + "/models/m/load-snapshot/jobs/j"),
                 ("GET", P + "/models/m/evaluation/summary-result"), ("GET", P + "/models/m/evaluation/result"),
                 ("GET", P + "/deployments"), ("POST", P + "/deployments/:swap"), ("GET", P + "/deployments/swap/jobs/j"),
                 ("GET", P + "/deployments/d"), ("PUT", P + "/deployments/d"), ("DELETE", P + "/deployments/d"),
                 ("GET", P + "/deployments/d/jobs/j"), ("POST", "/analyze-text/jobs"), ("GET", "/analyze-text/jobs/j"),
                 ("POST", "/analyze-text/jobs/j:cancel")]
        for method, path in calls:
            r = self.call(method, path, {} if method in ("POST", "PUT", "PATCH") else None)
            self.assertLess(r.status, 500, path)
        self.assertEqual([e["operation"] for e in self.sim.log(provider="azure")], [
            "ListProjects", "GetProjectDeletionStatus", "ListSupportedLanguages", "ListTrainingConfigVersions",
            "GetProject", "CreateProject", "DeleteProject", "ImportProject", "GetImportStatus", "ExportProject",
            "GetExportStatus", "GetExportResult", "StartTraining", "ListTrainingJobs", "GetTrainingStatus",
            "CancelTrainingJob", "ListModels", "GetModel", "DeleteModel", "LoadSnapshot", "GetLoadSnapshotStatus",
            "GetModelEvaluationSummary", "ListModelEvaluationResults", "ListDeployments", "SwapDeployments",
            "GetSwapDeploymentsStatus", "GetDeployment", "DeployProject", "DeleteDeployment", "GetDeploymentStatus",
            "SubmitAnalyzeTextJob", "GetAnalyzeTextJob", "CancelAnalyzeTextJob"])


class RateLimits(AzureTest):
    args = ("--azure-rate-limits", "write=2,read=3,runtime=5")

    def test_limits_answer_429_with_retry_after(self):
        for _ in range(3):
            self.call("GET", self.P, expect=200)
        r = self.call("GET", self.P, expect=429)
        self.assertEqual(r.json["error"]["code"], "TooManyRequests")
        self.assertTrue(1 <= int(r.headers["retry-after"]) <= 60)
        for _ in range(2):
            self.call("POST", self.P + "/none/:train", {}, expect=404)
        self.call("POST", self.P + "/none/:train", {}, expect=429)
        self.sim.advance(60)
        self.call("GET", self.P, expect=200)


class LroHeaderFlags(AzureTest):
    args = ("--azure-location-header", "--azure-poll-retry-after", "7")

    def test_location_and_retry_after(self):
        r = self.call("POST", self.P + "/news/:import", classification_project("news"), expect=202)
        self.assertEqual(r.headers["location"], r.headers["operation-location"])
        self.assertEqual(r.headers["retry-after"], "7")
        running = self.follow(r.headers["operation-location"])
        self.assertEqual((running.json["status"], running.headers["retry-after"]), ("notStarted", "7"))
        self.sim.advance(30)
        done = self.follow(r.headers["operation-location"])
        self.assertEqual(done.json["status"], "succeeded")
        self.assertNotIn("retry-after", done.headers)


class EnumCases:
    """Enums are exact; --azure-lenient-enums relaxes only projectKind and
    dataset, whose case-sensitivity the reference marks UNKNOWN."""
    MERGE = {"Content-Type": "application/merge-patch+json"}
    BODY = {"projectName": "e", "language": "en", "projectKind": "customSingleLabelClassification",
            "storageInputContainerName": CONTAINER}

    def refused(self, r, target):
        self.assertEqual(r.status, 400, r)
        self.assertEqual((r.json["error"]["code"], r.json["error"]["target"]), ("InvalidArgument", target))

    def other_case_project(self):
        doc = classification_project("e")
        doc["metadata"]["projectKind"] = doc["assets"]["projectKind"] = "customSingleLabelClassification"
        for d in doc["assets"]["documents"]:
            d["dataset"] = "train"
        return doc

    def common_exact_fields(self):
        self.imported("news")
        body = {"modelLabel": "m", "trainingConfigVersion": "latest",
                "evaluationOptions": {"kind": "Percentage", "trainingSplitPercentage": 80,
                                      "testingSplitPercentage": 20}}
        self.refused(self.call("POST", self.P + "/news/:train", body), "evaluationOptions.kind")
        r = self.call("POST", "/analyze-text/jobs", {
            "analysisInput": {"documents": [{"id": "1", "text": "a"}]},
            "tasks": [{"kind": "customSingleLabelClassification",
                       "parameters": {"projectName": "news", "deploymentName": "d"}}]})
        self.refused(r, "#/tasks/0")


class EnumCase(EnumCases, AzureTest):
    def test_exact_by_default(self):
        self.refused(self.call("PATCH", self.P + "/e", self.BODY, headers=self.MERGE), "projectKind")
        self.refused(self.call("GET", self.P + "/global/languages", query="projectKind=customEntityRecognition"),
                     "projectKind")
        doc = self.other_case_project()
        self.refused(self.call("POST", self.P + "/e/:import", doc), "projectKind")
        doc["metadata"]["projectKind"] = doc["assets"]["projectKind"] = "CustomSingleLabelClassification"
        self.refused(self.call("POST", self.P + "/e/:import", doc), "assets.documents[0].dataset")
        self.common_exact_fields()


class EnumCaseLenient(EnumCases, AzureTest):
    args = ("--azure-lenient-enums",)

    def test_lenient_for_the_unknown_fields_only(self):
        r = self.call("PATCH", self.P + "/e", self.BODY, headers=self.MERGE, expect=201)
        self.assertEqual(r.json["projectKind"], "CustomSingleLabelClassification")
        self.call("GET", self.P + "/global/languages", query="projectKind=customEntityRecognition", expect=200)
        op = self.lro("POST", self.P + "/e/:import", self.other_case_project())
        self.sim.advance(30)
        self.assertEqual(self.follow(op).json["status"], "succeeded")
        self.common_exact_fields()


class ErrorStatusAll400(AzureTest):
    """The spec maps no error code to a status: with all-400, not-found and
    conflict codes come as 400, auth and throttling keep theirs."""
    args = ("--azure-error-status", "all-400")

    def test_codes_keep_their_names_under_another_status(self):
        r = self.call("GET", self.P + "/none", expect=400)
        self.assertEqual((r.json["error"]["code"], r.headers["x-ms-error-code"]),
                         ("ProjectNotFound", "ProjectNotFound"))
        self.imported()
        self.assertEqual(self.call("GET", self.P + "/news/train/jobs/nope", expect=400).json["error"]["code"],
                         "OperationNotFound")
        self.lro("POST", self.P + "/news/:train", {"modelLabel": "a", "trainingConfigVersion": "latest"})
        busy = self.call("POST", self.P + "/news/:train", {"modelLabel": "b", "trainingConfigVersion": "latest"},
                         expect=400)
        self.assertEqual(busy.json["error"]["code"], "Conflict")
        self.call("GET", self.P, key="bad", expect=401)
        self.call("GET", "/nothing/here", expect=404)


class ErrorStatusOverride(AzureTest):
    args = ("--azure-error-status", "Conflict=412,ProjectNotFound=410")

    def test_each_code_named_takes_its_status(self):
        self.assertEqual(self.call("GET", self.P + "/none", expect=410).json["error"]["code"], "ProjectNotFound")
        self.imported()
        self.call("GET", self.P + "/news/train/jobs/nope", expect=404)
        self.lro("POST", self.P + "/news/:train", {"modelLabel": "a", "trainingConfigVersion": "latest"})
        self.call("POST", self.P + "/news/:train", {"modelLabel": "b", "trainingConfigVersion": "latest"}, expect=412)

    def test_an_unknown_code_is_refused_at_start(self):
        with self.assertRaises(RuntimeError):
            Emulator("--azure-error-status", "Nope=400")


class SpecStyle401(AzureTest):
    args = ("--azure-401-style", "spec", "--azure-strict-enums")

    def test_spec_style_and_strict_enums(self):
        r = self.call("GET", self.P, key="bad", expect=401)
        self.assertEqual(r.json["error"]["code"], "Unauthorized")
        merge = {"Content-Type": "application/merge-patch+json"}
        body = {"projectName": "s", "language": "en", "projectKind": "customSingleLabelClassification",
                "storageInputContainerName": "c"}
        self.call("PATCH", self.P + "/s", body, headers=merge, expect=400)
        self.call("PATCH", self.P + "/s", dict(body, projectKind="CustomSingleLabelClassification"), headers=merge,
                  expect=201)


if __name__ == "__main__":
    unittest.main()
