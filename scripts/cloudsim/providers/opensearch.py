"""Alibaba Cloud OpenSearch 2017-12-25 algorithm functions (ROA style),
signed with ACS3-HMAC-SHA256 or the legacy ROA "acs" HMAC-SHA1.

Lifecycles, in simulated seconds: a task runs 600 s with Progress rising
from 0 to 100 and ends success; when the instance name contains "fail" it
ends failed at 360 s (60 %). The instance is unavailable until its first
successful task, then available.
"""

import base64
import calendar
import collections
import email.utils
import hashlib
import json
import re
import threading
import time
import uuid

from .. import signing
from ..common import ApiError, Provider, Response, compile_routes, json_bytes, ms, stable_unit

API_VERSION = "2017-12-25"
TASK_SECONDS = 600
FAIL_AT = 360
PENDING_SECONDS = 10
WINDOW = 900
NONCE_LIMIT = 2_000_000

INSTANCE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,29}$")
FUNCTION_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*$")
MODEL_TYPES = ("tf_checkpoint", "pop", "offline_inference", "near_realtime", "text")
RESOURCE_TYPES = ("feature_generator", "raw_file")
GENERATORS = ("lookup", "sequence", "overlap", "raw", "combo", "id")

# The algorithm versions GetFunctionCurrentVersion knows: function -> config.
VERSIONS = {
    "ctr": {"VersionId": 1, "ModelType": "tf_checkpoint", "VersionName": "v1",
            "Create": [("title_field", False), ("feature_resource", False)],
            "Usage": [("allow_dict_id", False)]},
    "pop": {"VersionId": 2, "ModelType": "pop", "VersionName": "v1",
            "Create": [("time_window_days", False)], "Usage": []},
    "rank": {"VersionId": 3, "ModelType": "tf_checkpoint", "VersionName": "v1",
             "Create": [("feature_generator", False)], "Usage": []},
}

P = "/app-groups/{ag}/functions/{fn}"

HTTP_OF = {"Instance.NotExist": 404, "Task.NotExist": 404, "Version.NotExist": 404,
           "DefaultInstance.NotExist": 404, "Resource.NotExist": 404,
           "Instance.AlreadyExist": 409, "Resource.AlreadyExist": 409,
           "Task.IsRunning": 409, "Task.UnableDelete": 409}


def _biz(code, message):
    return ApiError(HTTP_OF.get(code, 400), code, message, biz=True)


def _invalid(message):
    return _biz("InvalidParameter", message)


def _flag(value):
    return "true" if value else "false"


def _camel(obj):
    if isinstance(obj, dict):
        return {k[:1].lower() + k[1:]: _camel(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_camel(v) for v in obj]
    return obj


class OpenSearch(Provider):
    name = "opensearch"
    prefixes = ("/v4/openapi/",)
    credentials = {"ALIBABA_CLOUD_ACCESS_KEY_ID": "cloudsim-acs-key-id",
                   "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "cloudsim-acs-key-secret"}

    @classmethod
    def options(cls, a):
        a("--opensearch-keys", choices=("pascal", "camel"), default="pascal",
          help="key casing of OpenSearch function responses")
        a("--opensearch-error-status", choices=("4xx", "200"), default="4xx",
          help="HTTP status of OpenSearch business errors: the error's own or 200")
        a("--acs-throttle-status", type=int, choices=(400, 429, 503), default=400,
          help="HTTP status of Alibaba Cloud throttling (code Throttling.User)")
        a("--acs-signature-status", type=int, choices=(400, 403), default=400,
          help="HTTP status of Alibaba Cloud SignatureDoesNotMatch")

    content_type = "application/json;charset=utf-8"
    routes = compile_routes("/v4/openapi", [
        ("POST", P + "/instances", "CreateFunctionInstance", "create_instance"),
        ("GET", P + "/instances", "ListFunctionInstances", "list_instances"),
        ("GET", P + "/instances/{inst}", "GetFunctionInstance", "get_instance"),
        ("PUT", P + "/instances/{inst}", "UpdateFunctionInstance", "update_instance"),
        ("DELETE", P + "/instances/{inst}", "DeleteFunctionInstance", "delete_instance"),
        ("POST", P + "/instances/{inst}/tasks", "CreateFunctionTask", "create_task"),
        ("GET", P + "/instances/{inst}/tasks", "ListFunctionTasks", "list_tasks"),
        ("GET", P + "/instances/{inst}/tasks/{gen}", "GetFunctionTask", "get_task"),
        ("DELETE", P + "/instances/{inst}/tasks/{gen}", "DeleteFunctionTask", "delete_task"),
        ("GET", P + "/default-instance", "GetFunctionDefaultInstance", "get_default"),
        ("PUT", P + "/default-instance", "UpdateFunctionDefaultInstance", "set_default"),
        ("GET", "/functions/{fn}/current-version", "GetFunctionCurrentVersion", "current_version"),
        ("GET", "/functions/{fn}/versions/{vid}", "GetFunctionVersion", "get_version"),
        ("POST", P + "/resources", "CreateFunctionResource", "create_resource"),
        ("GET", P + "/resources", "ListFunctionResources", "list_resources"),
        ("GET", P + "/resources/{res}", "GetFunctionResource", "get_resource"),
        ("PUT", P + "/resources/{res}", "UpdateFunctionResource", "update_resource"),
        ("DELETE", P + "/resources/{res}", "DeleteFunctionResource", "delete_resource"),
    ])

    def __init__(self, app):
        super().__init__(app)
        self.nonces = collections.OrderedDict()
        self.nonce_lock = threading.Lock()
        self.camel = self.cfg.opensearch_keys == "camel"

    def empty(self):
        return {"instances": {}, "tasks": {}, "defaults": {}, "resources": {}, "active": {}}

    # --- wire formats ---------------------------------------------------------
    @staticmethod
    def request_id():
        return str(uuid.uuid4()).upper()

    def envelope(self, result=None, total=None, status=200, code="", message="", ok=True, started=None,
                 extra=None):
        rid = self.request_id()
        body = {"Status": "OK" if ok else "FAIL", "HttpCode": status, "RequestId": rid, "Code": code,
                "Message": message, "Latency": int((time.monotonic() - started) * 1000) if started else 0}
        body.update(extra or {})
        if result is not None:
            body["Result"] = result
        if total is not None:
            body["TotalCount"] = total
        if self.camel:
            body = _camel(body)
        http = status if (ok or self.cfg.opensearch_error_status == "4xx") else 200
        return Response(http, json_bytes(body), [("Content-Type", self.content_type), ("x-acs-request-id", rid)])

    def gateway(self, req, status, code, message, headers=()):
        rid = self.request_id()
        body = {"RequestId": rid, "HostId": req.headers.get("host", ""), "Code": code, "Message": message,
                "Recommend": "https://api.alibabacloud.com/troubleshoot?q=%s&product=OpenSearch&requestId=%s"
                % (code, rid)}
        return Response(status, json_bytes(body),
                        [("Content-Type", self.content_type), ("x-acs-request-id", rid)] + list(headers))

    def render_error(self, err, req):
        if err.extra.get("biz"):
            return self.envelope(status=err.status, code=err.code, message=err.message, ok=False)
        return self.gateway(req, err.status, err.code, err.message)

    def unknown_route(self, req):
        return ApiError(404, "InvalidApi.NotFound", "Specified api is not found, please check your url and method.")

    def bad_json(self, err):
        return _biz("InvalidRequest", "Invalid request. %s" % err)

    def fault_response(self, req, status, retry_after):
        ra = [("x-acs-retry-after", "%d" % int(retry_after * 1000))]
        if status == 429:
            return self.gateway(req, self.cfg.acs_throttle_status, "Throttling.User",
                                "Request was denied due to user flow control.", ra)
        if status == 503:
            return self.gateway(req, 503, "ServiceUnavailable",
                                "The request has failed due to a temporary failure of the server.", ra)
        if status == 504:
            return self.gateway(req, 504, "GatewayTimeout", "The request timed out at the gateway.")
        return self.gateway(req, status, "InternalError", "The request processing has failed due to some "
                            "unknown error, exception or failure.")

    # --- authentication ---------------------------------------------------------
    def authenticate(self, req):
        auth = req.headers.get("authorization", "")
        try:
            if auth.startswith("ACS3-HMAC-SHA256 "):
                self.auth_v3(req, auth)
            elif auth.startswith("acs "):
                self.auth_v2(req, auth)
            else:
                raise ApiError(400, "IncompleteSignature",
                               "The request signature does not conform to Aliyun standards.")
            version = req.headers.get("x-acs-version")
            if version is not None and version != API_VERSION:
                raise ApiError(400, "InvalidVersion", "Specified parameter Version is not valid.")
        except ApiError as e:
            return self.render_error(e, req)
        return None

    def known_key(self, ak):
        if ak != self.cfg.credentials["ALIBABA_CLOUD_ACCESS_KEY_ID"]:
            raise ApiError(404, "InvalidAccessKeyId.NotFound", "Specified access key is not found.")
        return self.cfg.credentials["ALIBABA_CLOUD_ACCESS_KEY_SECRET"]

    def fresh(self, when):
        if when is None:
            raise ApiError(400, "InvalidTimeStamp.Format",
                           "Specified time stamp or date value is not well formatted.")
        if abs(self.app.clock.wall() - when) > WINDOW:
            raise ApiError(400, "InvalidTimeStamp.Expired", "Specified time stamp or date value is expired.")

    def mismatch(self, text):
        return ApiError(self.cfg.acs_signature_status, "SignatureDoesNotMatch",
                        "Specified signature is not matched with our calculation. server string to sign is:"
                        + text)

    def auth_v3(self, req, auth):
        parsed = signing.parse_acs3_authorization(auth)
        if parsed is None:
            raise ApiError(400, "IncompleteSignature", "The request signature does not conform to Aliyun standards.")
        ak, signed, sig = parsed
        headers = signing.merge_headers(req.header_list)
        # The V3 gateway reads the API and its version from these headers
        # (the SDK always sends both): without them there is no API to call.
        if not headers.get("x-acs-action"):
            raise ApiError(400, "MissingAction", "Action is mandatory for this request: the x-acs-action "
                           "header is missing.")
        if not headers.get("x-acs-version"):
            raise ApiError(400, "MissingVersion", "Version is mandatory for this request: the x-acs-version "
                           "header is missing.")
        payload = headers.get("x-acs-content-sha256")
        if not payload:
            raise ApiError(400, "IncompleteSignature", "The request signature does not conform to Aliyun "
                           "standards: the x-acs-content-sha256 header is missing.")
        secret = self.known_key(ak)
        self.fresh(_acs_date(headers.get("x-acs-date")))
        nonce = headers.get("x-acs-signature-nonce")
        unsigned = [h for h in headers if h.startswith("x-acs-") and h not in signed]
        if not nonce or "host" not in signed or unsigned:
            raise ApiError(400, "IncompleteSignature", "The request signature does not conform to Aliyun "
                           "standards: host, x-acs-date, x-acs-signature-nonce and every x-acs-* header "
                           "must be signed.")
        # The canonical request ends with the hash the client declared; the
        # body must then have that hash.
        ok, canonical = signing.check_acs3(req.method, req.path, req.query, headers, req.body, signed, sig,
                                           secret, payload_hash=payload)
        if not ok:
            raise self.mismatch(canonical)
        if not signing.same(payload.lower(), hashlib.sha256(req.body or b"").hexdigest()):
            raise ApiError(400, "ContentSHA256NotMatched", "Specified content sha256 is not matched with your "
                           "request body.")
        self.use_nonce(ak, nonce)

    def auth_v2(self, req, auth):
        parsed = signing.parse_roa_authorization(auth)
        if parsed is None:
            raise ApiError(400, "IncompleteSignature", "The request signature does not conform to Aliyun standards.")
        ak, sig = parsed
        secret = self.known_key(ak)
        headers = req.headers
        self.fresh(_rfc1123(headers.get("date")))
        method = headers.get("x-acs-signature-method")
        if method is not None and method != "HMAC-SHA1":
            raise ApiError(400, "InvalidSignatureMethod", "Specified signature method is not supported.")
        ok, sts = signing.check_roa(req.method, req.path, req.query, headers, sig, secret)
        if not ok:
            raise self.mismatch(sts)
        md5 = headers.get("content-md5")
        if md5 is not None and md5 != base64.b64encode(hashlib.md5(req.body).digest()).decode():
            raise ApiError(400, "ContentMD5NotMatched", "Specified content md5 is not matched with your request body.")
        nonce = headers.get("x-acs-signature-nonce")
        if nonce:
            self.use_nonce(ak, nonce)

    def use_nonce(self, ak, nonce):
        now = self.app.clock.wall()
        key = ak + "\x00" + nonce
        with self.nonce_lock:
            nonces = self.nonces
            while nonces and (next(iter(nonces.values())) < now or len(nonces) > NONCE_LIMIT):
                nonces.popitem(last=False)
            if key in nonces:
                raise ApiError(400, "SignatureNonceUsed", "Specified signature nonce was used already.")
            nonces[key] = now + WINDOW

    # --- helpers ------------------------------------------------------------------
    def ok(self, obj=None, total=None):
        return self.envelope(result=obj, total=total)

    def done(self):
        """The answer of a create, update, delete or task start: the
        envelope alone, as the SDK models have it (no Result)."""
        return self.envelope()

    @staticmethod
    def key(*parts):
        return "/".join(parts)

    def instance(self, ctx):
        fn = ctx.p["fn"]
        inst = self.data["instances"].get(self.key(ctx.p["ag"], fn, ctx.p["inst"]))
        if inst is None:
            raise _biz("Instance.NotExist", "instance not exist.")
        return inst

    @staticmethod
    def paging(ctx, default_size):
        try:
            number = int(ctx.q.get("pageNumber") or 1)
            size = int(ctx.q.get("pageSize") or default_size)
        except ValueError:
            raise _invalid("pageNumber and pageSize must be integers.")
        if number < 1 or size < 1:
            raise _invalid("pageNumber and pageSize must be positive.")
        return (number - 1) * size, size

    @staticmethod
    def params(value, field):
        if value is None:
            return []
        if not isinstance(value, list) or not all(
                isinstance(p, dict) and isinstance(p.get("name"), str) for p in value):
            raise _invalid("%s must be a list of {name, value}." % field)
        return [{"name": p["name"], "value": "" if p.get("value") is None else str(p["value"])} for p in value]

    def tasks_of(self, inst):
        prefix = self.key(inst["appGroup"], inst["functionName"], inst["instanceName"]) + "/"
        return [t for k, t in self.data["tasks"].items() if k.startswith(prefix)]

    def running_task(self, inst):
        return next((t for t in self.tasks_of(inst) if t["status"] == "running"), None)

    # --- rendering ------------------------------------------------------------------
    def render_instance(self, inst, output, now):
        out = {"InstanceName": inst["instanceName"], "FunctionName": inst["functionName"],
               "FunctionType": inst["functionType"], "ModelType": inst["modelType"],
               "Description": inst["description"], "Status": inst["status"], "Source": "user",
               "CreateTime": ms(inst["createdAt"])}
        if output == "simple":
            return out
        out.update({"VersionId": inst["versionId"], "Cron": inst["cron"], "ExtendInfo": inst["extendInfo"],
                    "Belongs": {"Domain": "", "Category": "general", "Language": ""},
                    "CreateParameters": [{"Name": p["name"], "Value": p["value"]} for p in inst["createParameters"]],
                    "UsageParameters": [{"Name": p["name"], "Value": p["value"]} for p in inst["usageParameters"]]})
        if output == "detail":
            # LastRunTime is "the time consumed for the most recent run, in
            # milliseconds" (SDK model): a duration, up to now while it runs.
            last = max(self.tasks_of(inst), key=lambda t: t["startAt"], default=None)
            took = ((last["endAt"] or now) - last["startAt"]) if last else 0
            out["Task"] = {"DagStatus": inst["dagStatus"], "LastRunTime": ms(took),
                           "Progress": last["progress"] if last else 0}
        return out

    @staticmethod
    def render_task(t):
        return {"FunctionName": t["functionName"], "Generation": t["generation"], "Progress": t["progress"],
                "RunId": t["runId"], "StartTime": ms(t["startAt"]), "EndTime": ms(t["endAt"]) if t["endAt"] else 0,
                "Status": t["status"], "ExtendInfo": t["extendInfo"]}

    def render_resource(self, r):
        refs = sorted(i["instanceName"] for i in self.data["instances"].values()
                      if i["appGroup"] == r["appGroup"] and i["functionName"] == r["functionName"]
                      and any(p["value"] == r["name"] for p in i["createParameters"] + i["usageParameters"]))
        return {"ResourceName": r["name"], "ResourceType": r["type"], "FunctionName": r["functionName"],
                "Description": r["description"], "CreateTime": ms(r["createdAt"]), "ModifyTime": ms(r["modifiedAt"]),
                "ReferencedInstances": refs, "Data": r["data"]}

    # --- instances ------------------------------------------------------------------
    def create_instance(self, ctx):
        body = ctx.body_object()
        fn = ctx.p["fn"]
        if not FUNCTION_NAME.match(fn):
            raise _invalid("invalid function name.")
        name = body.get("instanceName")
        if not isinstance(name, str) or not INSTANCE_NAME.match(name):
            raise _invalid("instanceName must be 1-30 letters, digits or _, starting with a letter.")
        model = body.get("modelType")
        if model not in MODEL_TYPES:
            raise _invalid("modelType must be one of %s." % ", ".join(MODEL_TYPES))
        ftype = body.get("functionType", "PAAS")
        if ftype not in ("PAAS", "SAAS"):
            raise _invalid("functionType must be PAAS or SAAS.")
        key = self.key(ctx.p["ag"], fn, name)
        if key in self.data["instances"]:
            raise _biz("Instance.AlreadyExist", "instance already exist.")
        self.check_required(fn, model, body)
        version = VERSIONS.get(fn, {})
        self.data["instances"][key] = {
            "appGroup": ctx.p["ag"], "functionName": fn, "instanceName": name, "modelType": model,
            "functionType": ftype, "description": str(body.get("description") or ""),
            "createParameters": self.params(body.get("createParameters"), "createParameters"),
            "usageParameters": self.params(body.get("usageParameters"), "usageParameters"),
            "cron": str(body.get("cron") or ""), "createdAt": ctx.now, "status": "unavailable",
            "versionId": version.get("VersionId", 1), "dagStatus": "untrained", "generations": 0,
            "extendInfo": json.dumps({"dataReport": {}, "errors": {}}, separators=(",", ":"))}
        return self.done()

    def check_required(self, fn, model, body):
        version = VERSIONS.get(fn)
        if not version or version["ModelType"] != model:
            return
        given = {p.get("name") for p in body.get("createParameters") or [] if isinstance(p, dict)}
        for name, required in version["Create"]:
            if required and name not in given:
                raise _invalid("createParameters needs %s." % name)

    def list_instances(self, ctx):
        offset, size = self.paging(ctx, 10)
        source = ctx.q.get("source") or "user"
        if source not in ("user", "builtin", "all"):
            raise _invalid("source must be user, builtin or all.")
        output = ctx.q.get("output") or "normal"
        if output not in ("simple", "normal", "detail"):
            raise _invalid("output must be simple, normal or detail.")
        items = [i for i in self.data["instances"].values()
                 if i["appGroup"] == ctx.p["ag"] and i["functionName"] == ctx.p["fn"] and source != "builtin"
                 and (ctx.q.get("functionType") or i["functionType"]) == i["functionType"]
                 and (ctx.q.get("modelType") or i["modelType"]) == i["modelType"]]
        items.sort(key=lambda i: i["createdAt"], reverse=True)
        return self.ok([self.render_instance(i, output, ctx.now) for i in items[offset:offset + size]], total=len(items))

    def get_instance(self, ctx):
        output = ctx.q.get("output") or "normal"
        if output not in ("simple", "normal", "detail"):
            raise _invalid("output must be simple, normal or detail.")
        return self.ok(self.render_instance(self.instance(ctx), output, ctx.now))

    def update_instance(self, ctx):
        inst = self.instance(ctx)
        body = ctx.body_object()
        for field in ("createParameters", "usageParameters"):
            if field in body:
                inst[field] = self.params(body[field], field)
        for field in ("cron", "description"):
            if field in body:
                inst[field] = str(body[field] or "")
        return self.done()

    def delete_instance(self, ctx):
        inst = self.instance(ctx)
        if self.running_task(inst):
            raise _biz("Task.IsRunning", "a training task of this instance is running.")
        for t in self.tasks_of(inst):
            del self.data["tasks"][self.key(inst["appGroup"], inst["functionName"], inst["instanceName"],
                                            t["generation"])]
        dkey = self.key(ctx.p["ag"], ctx.p["fn"])
        if self.data["defaults"].get(dkey) == inst["instanceName"]:
            del self.data["defaults"][dkey]
        del self.data["instances"][self.key(ctx.p["ag"], ctx.p["fn"], ctx.p["inst"])]
        return self.done()

    # --- tasks ------------------------------------------------------------------------
    def create_task(self, ctx):
        inst = self.instance(ctx)
        if self.running_task(inst):
            raise _biz("Task.IsRunning", "task is running.")
        inst["generations"] += 1
        gen = str(inst["generations"])
        fail = "fail" in inst["instanceName"].lower()
        run_id = "trigger__" + time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ctx.now))
        key = self.key(ctx.p["ag"], ctx.p["fn"], inst["instanceName"], gen)
        self.data["tasks"][key] = {
            "functionName": inst["functionName"], "generation": gen, "progress": 0, "runId": run_id,
            "startAt": ctx.now, "endAt": 0, "status": "running", "fail": fail,
            "extendInfo": json.dumps({"errors": []}, separators=(",", ":"))}
        inst["dagStatus"] = "pending"
        self.data["active"][key] = True
        return self.done()

    def list_tasks(self, ctx):
        inst = self.instance(ctx)
        offset, size = self.paging(ctx, 1)
        status = ctx.q.get("status")
        if status and status not in ("success", "failed", "running"):
            raise _invalid("status must be success, failed or running.")
        try:
            after = int(ctx.q["startTime"]) if ctx.q.get("startTime") else None
            before = int(ctx.q["endTime"]) if ctx.q.get("endTime") else None
        except ValueError:
            raise _invalid("startTime and endTime are milliseconds.")
        tasks = [t for t in self.tasks_of(inst)
                 if (not status or t["status"] == status)
                 and (after is None or ms(t["startAt"]) > after)
                 and (before is None or (t["endAt"] and ms(t["endAt"]) < before))]
        tasks.sort(key=lambda t: (-t["startAt"], -int(t["generation"])))
        return self.ok([self.render_task(t) for t in tasks[offset:offset + size]], total=len(tasks))

    def task(self, ctx):
        inst = self.instance(ctx)
        t = self.data["tasks"].get(self.key(ctx.p["ag"], ctx.p["fn"], inst["instanceName"], ctx.p["gen"]))
        if t is None:
            raise _biz("Task.NotExist", "task not exist.")
        return t

    def get_task(self, ctx):
        return self.ok(self.render_task(self.task(ctx)))

    def delete_task(self, ctx):
        t = self.task(ctx)
        if t["status"] == "running":
            raise _biz("Task.UnableDelete", "a training record in progress cannot be deleted.")
        del self.data["tasks"][self.key(ctx.p["ag"], ctx.p["fn"], ctx.p["inst"], ctx.p["gen"])]
        return self.done()

    # --- default instance -----------------------------------------------------------------
    def get_default(self, ctx):
        name = self.data["defaults"].get(self.key(ctx.p["ag"], ctx.p["fn"]))
        if name is None:
            raise _biz("DefaultInstance.NotExist", "default instance not set.")
        # The SDK model has the name twice: in Result and, with the
        # function's, at the top level.
        return self.envelope(result={"InstanceName": name}, extra={"InstanceName": name,
                                                                   "FunctionName": ctx.p["fn"]})

    def set_default(self, ctx):
        name = ctx.body_object().get("instanceName")
        dkey = self.key(ctx.p["ag"], ctx.p["fn"])
        if name in (None, ""):
            self.data["defaults"].pop(dkey, None)
            return self.done()
        inst = self.data["instances"].get(self.key(ctx.p["ag"], ctx.p["fn"], str(name)))
        if inst is None:
            raise _biz("Instance.NotExist", "instance not exist.")
        if inst["status"] != "available":
            raise _biz("DefaultInstance.SetFail", "instance %s is not available: train it first." % name)
        self.data["defaults"][dkey] = inst["instanceName"]
        return self.done()

    # --- versions ------------------------------------------------------------------------------
    @staticmethod
    def render_version(fn, v, ftype="PAAS"):
        return {"FunctionName": fn, "FunctionType": ftype, "ModelType": v["ModelType"],
                "VersionId": v["VersionId"], "VersionName": v["VersionName"],
                # Required is a string, "true" or "false", in the SDK model.
                "VersionConfig": {"CreateParameters": [{"Name": n, "Required": _flag(r)} for n, r in v["Create"]],
                                  "UsageParameters": [{"Name": n, "Required": _flag(r)} for n, r in v["Usage"]],
                                  "Depends": []}}

    def current_version(self, ctx):
        model = ctx.q.get("modelType")
        if not model:
            raise _invalid("modelType is mandatory for this action.")
        ftype = ctx.q.get("functionType") or "PAAS"
        v = VERSIONS.get(ctx.p["fn"])
        if v is None or v["ModelType"] != model or ftype not in ("PAAS", "SAAS"):
            raise _biz("Version.NotExist", "version not exist.")
        return self.ok(self.render_version(ctx.p["fn"], v, ftype))

    def get_version(self, ctx):
        v = VERSIONS.get(ctx.p["fn"])
        if v is None or str(v["VersionId"]) != ctx.p["vid"]:
            raise _biz("Version.NotExist", "version not exist.")
        return self.ok(self.render_version(ctx.p["fn"], v))

    # --- resources --------------------------------------------------------------------------------
    def resource_data(self, rtype, data):
        if not isinstance(data, dict):
            raise _invalid("Data must be an object.")
        if rtype == "raw_file" and not isinstance(data.get("Content"), str):
            raise _invalid("Data.Content is required for raw_file resources.")
        if rtype == "feature_generator":
            gens = data.get("Generators")
            if not isinstance(gens, list) or not gens:
                raise _invalid("Data.Generators is required for feature_generator resources.")
            for g in gens:
                if not isinstance(g, dict) or g.get("Generator") not in GENERATORS:
                    raise _invalid("Generator must be one of %s." % ", ".join(GENERATORS))
                feats = (g.get("Input") or {}).get("Features", [])
                if any(not isinstance(f, dict) or f.get("Type") not in ("item", "user") for f in feats):
                    raise _invalid("Features[].Type must be item or user.")
        return data

    def resource(self, ctx):
        r = self.data["resources"].get(self.key(ctx.p["ag"], ctx.p["fn"], ctx.p["res"]))
        if r is None:
            raise _biz("Resource.NotExist", "Resource not exist.")
        return r

    def create_resource(self, ctx):
        body = ctx.body_object()
        name = body.get("ResourceName")
        if not isinstance(name, str) or not INSTANCE_NAME.match(name):
            raise _biz("Resource.InvalidResourceName", "Invalid resource name.")
        rtype = body.get("ResourceType")
        if rtype not in RESOURCE_TYPES:
            raise _invalid("ResourceType must be feature_generator or raw_file.")
        data = self.resource_data(rtype, body.get("Data"))
        key = self.key(ctx.p["ag"], ctx.p["fn"], name)
        if key in self.data["resources"]:
            raise _biz("Resource.AlreadyExist", "Resource already exist.")
        self.data["resources"][key] = {"appGroup": ctx.p["ag"], "functionName": ctx.p["fn"], "name": name,
                                       "type": rtype, "description": str(body.get("Description") or ""),
                                       "data": data, "createdAt": ctx.now, "modifiedAt": ctx.now}
        return self.done()

    def list_resources(self, ctx):
        offset, size = self.paging(ctx, 10)
        rtype = ctx.q.get("resourceType")
        items = [r for r in self.data["resources"].values()
                 if r["appGroup"] == ctx.p["ag"] and r["functionName"] == ctx.p["fn"]
                 and (not rtype or r["type"] == rtype)]
        items.sort(key=lambda r: r["createdAt"], reverse=True)
        return self.ok([self.render_resource(r) for r in items[offset:offset + size]], total=len(items))

    def get_resource(self, ctx):
        return self.ok(self.render_resource(self.resource(ctx)))

    def update_resource(self, ctx):
        r = self.resource(ctx)
        body = ctx.body_object()
        if "Data" in body:
            r["data"] = self.resource_data(r["type"], body["Data"])
        if "Description" in body:
            r["description"] = str(body["Description"] or "")
        r["modifiedAt"] = ctx.now
        return self.done()

    def delete_resource(self, ctx):
        self.resource(ctx)
        del self.data["resources"][self.key(ctx.p["ag"], ctx.p["fn"], ctx.p["res"])]
        return self.done()

    # --- lifecycle -----------------------------------------------------------------------------------
    def tick(self, now):
        active = self.data["active"]
        for key in list(active):
            t = self.data["tasks"].get(key)
            inst = self.data["instances"].get(key.rsplit("/", 1)[0])
            if t is None or inst is None:
                del active[key]
                continue
            elapsed = now - t["startAt"]
            if t["fail"] and elapsed >= FAIL_AT:
                self.end(inst, t, "failed", FAIL_AT, key)
            elif not t["fail"] and elapsed >= TASK_SECONDS:
                self.end(inst, t, "success", TASK_SECONDS, key)
            else:
                t["progress"] = min(99, int(elapsed * 100 // TASK_SECONDS))
                inst["dagStatus"] = "pending" if elapsed < PENDING_SECONDS else "running"

    def end(self, inst, t, status, after, key):
        t["status"] = status
        t["endAt"] = t["startAt"] + after
        t["progress"] = after * 100 // TASK_SECONDS
        inst["dagStatus"] = status
        if status == "success":
            inst["status"] = "available"
            t["extendInfo"] = json.dumps(self.metrics(inst, t), separators=(",", ":"))
        else:
            t["extendInfo"] = json.dumps({"errors": [{
                "code": "TrainFailed", "message": "training of %s failed: the sample data yields no "
                "positive examples" % inst["instanceName"]}]}, separators=(",", ":"))
        del self.data["active"][key]

    def metrics(self, inst, t):
        seed = self.cfg.seed
        name = inst["instanceName"]

        def u(k):
            return stable_unit(seed, inst["appGroup"], name, t["generation"], k)

        out = {}
        if inst["modelType"] == "tf_checkpoint":
            out["auc"] = round(0.68 + 0.14 * u("auc"), 4)
            out["gauc"] = round(out["auc"] - 0.02 - 0.05 * u("gauc"), 4)
        out["recall"] = 60 + int(35 * u("recall"))
        out["errors"] = []
        return out


def _acs_date(value):
    if not value:
        return None
    try:
        return calendar.timegm(time.strptime(value, "%Y-%m-%dT%H:%M:%SZ"))
    except ValueError:
        return None


def _rfc1123(value):
    if not value:
        return None
    try:
        return email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None
