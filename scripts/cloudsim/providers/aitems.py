"""NAVER Cloud AiTEMS (recommendation), API Gateway signature v2.

Datasets point at local CSV files instead of Object Storage: osInfo.key (or
bucket/key) is a path under --data-dir. Lifecycles, in simulated seconds:

  dataset   waiting (0-30) -> processing (30-90) -> enable | upload_failed
  training  requesting (0-60) -> learning -> completed at 360 (pop),
            480 (relatedItem), 600 (personalRecommend); learningFailed at the
            same time when an attached dataset's key contains "fail",
            refinedFailed at 120 when the key also contains "refine"
  service   datasetRequired -> learnable -> learning -> learnable
            (interval: scheduled <-> scheduledLearning, a run every term,
            the first one 60 s after schedule start)
"""

import argparse
import collections
import csv
import datetime
import gzip
import io
import os
import re

from .. import signing
from ..common import ApiError, Provider, Response, compile_routes, json_bytes, stable_unit

ALNUM = "abcdefghijklmnopqrstuvwxyz0123456789"
TRAIN_TYPES = ("personalRecommend", "relatedItem", "pop")
DATASET_TYPES = ("user", "item", "interaction")
FIELD_TYPES = ("string", "int", "long", "boolean", "null")
TERMS = {"hour1": 3600, "hour3": 3 * 3600, "hour6": 6 * 3600, "hour12": 12 * 3600}
REQUIRED_FIELDS = {"user": {"USER_ID": "string"}, "item": {"ITEM_ID": "string"},
                   "interaction": {"USER_ID": "string", "ITEM_ID": "string", "TIMESTAMP": "long"}}
HPO_RANGES = {"session_max_timestamp": (10, 86400), "item_top_n": (1000, 500000),
              "min_item_cut": (1, 1000), "min_session_length": (2, 1000),
              "max_user_recommend_top": (1, 1000), "max_relate_recommend_top": (1, 1000)}
DEFAULT_SCHEMAS = {
    "user": [{"name": "USER_ID", "type": ["string"]}, {"name": "AGE", "type": ["int", "null"]},
             {"name": "GENDER", "type": ["string", "null"], "categorical": True}],
    "item": [{"name": "ITEM_ID", "type": ["string"]},
             {"name": "CATEGORY", "type": ["string", "null"], "categorical": True}],
    "interaction": [{"name": "USER_ID", "type": ["string"]}, {"name": "ITEM_ID", "type": ["string"]},
                    {"name": "TIMESTAMP", "type": ["long"]}],
}

IMPORT_WAITING, IMPORT_DONE = 30, 90
REQUESTING = 60
REFINE_FAIL_AT = 120
TRAIN_SECONDS = {"pop": 360, "relatedItem": 480, "personalRecommend": 600}
MAX_BACKLOG_RUNS = 50
TRAINS_KEPT_PER_TYPE = 50
DEFAULT_TOP = 100

# Documented statuses an admin override may set (aitems.md 4.2, 5.1, 5.2):
# the lifecycle here never reaches some of them.
TRAIN_STATUSES = ("ready", "learning", "completed", "waiting", "requesting", "requestFailed", "refinedFailed",
                  "stopping", "learningFailed")
TRAIN_DONE = ("completed", "requestFailed", "refinedFailed", "learningFailed")
DATASET_STATUSES = ("enable", "waiting", "processing", "upload_failed", "disable", "deleting")
SERVICE_STATUSES = ("scheduled", "scheduledLearning", "learnable", "learning", "deleting", "deleted", "disable",
                    "drafted", "requestLearning", "datasetRequired")

# The backend's error codes for an unknown id and a wrong state are
# UNKNOWN (only DUPLICATE_NAME was seen live): the default pair, or a
# named variant.
ERROR_CODES = ("NOT_FOUND", "INVALID_STATUS")
ERROR_CODE_VARIANTS = {"spring": ("Not Found", "Bad Request")}

SERVICE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{2,19}$")
RESOURCE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{2,19}$")
KST = datetime.timezone(datetime.timedelta(hours=9))


def _bad(msg):
    return ApiError(400, "INVALID_PARAMETER", msg)


def _missing(what):
    return ApiError(404, "NOT_FOUND", "[%s] does not exist." % what, cls="NOT_FOUND")


def _state(msg):
    return ApiError(400, "INVALID_STATUS", msg)


def _dup(name):
    return ApiError(400, "DUPLICATE_NAME", "[%s] is a duplicate name." % name)


def _unsupported(msg):
    return ApiError(400, "NOT_SUPPORTED", msg)


def _error_codes(value):
    if value in ERROR_CODE_VARIANTS:
        return ERROR_CODE_VARIANTS[value]
    parts = tuple(p.strip() for p in value.split(","))
    if len(parts) != 2 or not all(parts):
        raise argparse.ArgumentTypeError("expected NOT_FOUND_CODE,BUSY_CODE or one of: "
                                         + ", ".join(ERROR_CODE_VARIANTS))
    return parts


class AiTEMS(Provider):
    name = "aitems"
    prefixes = ("/api/v1/",)
    credentials = {"NCLOUD_ACCESS_KEY": "cloudsim-ncp-access-key",
                   "NCLOUD_SECRET_KEY": "cloudsim-ncp-secret-key"}

    @classmethod
    def options(cls, a):
        a("--aitems-timezone", choices=("kst", "utc"), default="kst",
          help="time zone of AiTEMS dates, which carry no offset")
        a("--aitems-create-status", type=int, choices=(200, 201), default=201,
          help="HTTP status of AiTEMS POST-create operations")
        a("--aitems-error-codes", type=_error_codes, default=ERROR_CODES, metavar="NOT_FOUND,BUSY|spring",
          help="error codes of AiTEMS unknown ids and wrong states (default NOT_FOUND,INVALID_STATUS; "
               "spring: 'Not Found','Bad Request')")
        a("--aitems-busy-status", type=int, choices=(400, 409), default=400,
          help="HTTP status of AiTEMS wrong-state errors (a training already running)")

    routes = compile_routes("/api/v1", [
        ("POST", "/services", "CreateService", "create_service"),
        ("GET", "/services", "ListServices", "list_services"),
        ("GET", "/services/{sid}", "GetService", "get_service"),
        ("PUT", "/services/{sid}", "UpdateService", "update_service"),
        ("DELETE", "/services/{sid}", "DeleteService", "delete_service"),
        ("POST", "/services/{sid}", "CreateTrain", "create_train"),
        ("POST", "/services/{sid}/datasets", "SetServiceDatasets", "set_datasets"),
        ("PUT", "/services/{sid}/interval", "UpdateServiceInterval", "update_interval"),
        ("PUT", "/services/{sid}/schedule", "SetServiceSchedule", "set_schedule"),
        ("POST", "/services/{sid}/datasets/{did}", "UploadIntervalData", "upload_data"),
        ("GET", "/services/{sid}/trains", "ListTrains", "list_trains"),
        ("GET", "/services/{sid}/trains/{ttype}/versions/{version}", "GetTrain", "get_train"),
        ("GET", "/services/{sid}/infers/lookup", "LookupInference", "lookup"),
        ("POST", "/datasets", "CreateDataset", "create_dataset"),
        ("GET", "/datasets", "ListDatasets", "list_datasets"),
        ("GET", "/datasets/{did}", "GetDataset", "get_dataset"),
        ("POST", "/datasets/{did}", "ModifyDataset", "modify_dataset"),
        ("PUT", "/datasets/{did}", "UpdateDatasetDescription", "describe_dataset"),
        ("DELETE", "/datasets/{did}", "DeleteDataset", "delete_dataset"),
        ("POST", "/schemas/validation-check", "ValidateSchema", "validate_schema"),
        ("POST", "/schemas", "CreateSchema", "create_schema"),
        ("GET", "/schemas", "ListSchemas", "list_schemas"),
        ("GET", "/schemas/default", "GetDefaultSchema", "default_schema"),
        ("GET", "/schemas/{name}", "GetSchema", "get_schema"),
        ("PUT", "/schemas/{name}", "UpdateSchemaDescription", "describe_schema"),
        ("DELETE", "/schemas/{name}", "DeleteSchema", "delete_schema"),
    ])

    def __init__(self, app):
        super().__init__(app)
        self.tz = KST if self.cfg.aitems_timezone == "kst" else datetime.timezone.utc
        self._csv_cache = {}

    def empty(self):
        return {"services": {}, "datasets": {}, "schemas": {}, "trains": {}, "uploads": {}, "active": {}}

    # --- wire formats -----------------------------------------------------
    def date(self, ts):
        """yyyy-MM-ddTHH:mm:ss.SSS, no zone."""
        d = datetime.datetime.fromtimestamp(ts, self.tz)
        return d.strftime("%Y-%m-%dT%H:%M:%S.") + "%03d" % (d.microsecond // 1000)

    def new_id(self):
        return self.app.rand_str(ALNUM, 11)

    def gateway_error(self, status, code, message, headers=()):
        return Response(status, json_bytes({"error": {"errorCode": code, "message": message}}),
                        [("Content-Type", "application/json")] + list(headers))

    def render_error(self, err, req):
        if err.code == "GATEWAY":
            return self.gateway_error(err.status, err.extra["gw"], err.message)
        code, status, cls = err.code, err.status, err.extra.get("cls")
        if code == ERROR_CODES[0]:
            code = self.cfg.aitems_error_codes[0]
        elif code == ERROR_CODES[1]:
            code, status = self.cfg.aitems_error_codes[1], self.cfg.aitems_busy_status
            cls = "CONFLICT" if status == 409 else cls
        body = {"timestamp": self.date(self.app.clock.sim()),
                "path": "/api" + req.path[len("/api/v1"):], "status": status,
                "error": code, "requestId": os.urandom(4).hex(),
                "errorCode": cls or ("BAD_REQUEST" if status < 500 else "INTERNAL_SERVER_ERROR"),
                "message": err.message}
        return Response(status, json_bytes(body), [("Content-Type", "application/json")])

    def unknown_route(self, req):
        return ApiError(404, "GATEWAY", "Not Found Exception", gw="300")

    def bad_json(self, err):
        return _bad("JSON parse error: %s" % err)

    def fault_response(self, req, status, retry_after):
        ra = [("Retry-After", "%d" % max(1, round(retry_after)))]
        if status == 429:
            return self.gateway_error(429, "420", "Rate Limited", ra)
        if status == 503:
            return self.gateway_error(503, "500", "Endpoint Error", ra)
        if status == 504:
            return self.gateway_error(504, "510", "Endpoint Timeout")
        if status == 502:
            return self.gateway_error(502, "500", "Endpoint Error")
        if status == 500:
            return self.gateway_error(500, "900", "Unexpected Error")
        if status == 401:
            return self.gateway_error(401, "200", "Authentication Failed")
        if status == 404:
            # A stray 404 (a gateway or proxy in a bad minute), not the
            # backend's word that an id is unknown.
            return self.gateway_error(404, "300", "Not Found Exception")
        return self.render_error(ApiError(status, "INTERNAL_SERVER_ERROR", "injected fault"), req)

    # --- API Gateway authentication ---------------------------------------
    def authenticate(self, req):
        h = req.headers
        ts, ak, sig = (h.get("x-ncp-apigw-timestamp"), h.get("x-ncp-iam-access-key"),
                       h.get("x-ncp-apigw-signature-v2"))
        creds = self.cfg.credentials
        fail = self.gateway_error(401, "200", "Authentication Failed")
        if not (ts and ak and sig) or not ts.isdigit():
            return fail
        if abs(self.app.clock.wall() * 1000 - int(ts)) >= 300000:
            return fail
        if ak != creds["NCLOUD_ACCESS_KEY"]:
            return fail
        # The signature covers the request target exactly as received (the
        # server reads the request line as latin-1; clients sign UTF-8).
        target = req.target if req.target.startswith("/") else req.path + ("?" + req.query if req.query else "")
        target = target.encode("latin-1").decode("utf-8", "replace")
        if not signing.same(signing.ncp_v2(req.method, target, ts, ak, creds["NCLOUD_SECRET_KEY"]), sig):
            return fail
        if req.body and req.method in ("POST", "PUT") and "json" not in h.get("content-type", ""):
            return self.render_error(ApiError(415, "UNSUPPORTED_MEDIA_TYPE",
                                              "Content-Type must be application/json"), req)
        return None

    # --- helpers ----------------------------------------------------------
    def created(self, obj):
        return self.ok(obj, self.cfg.aitems_create_status)

    @staticmethod
    def paging(ctx):
        try:
            offset = int(ctx.q.get("offset") or 0)
            limit = int(ctx.q.get("limit") or 1000)
        except ValueError:
            raise _bad("offset and limit must be integers")
        if offset < 0 or limit < 0:
            raise _bad("offset and limit must not be negative")
        return offset, limit

    def find(self, kind, key):
        """services, datasets or schemas by id (schemas by name), else 404."""
        obj = self.data[kind].get(key)
        if obj is None:
            raise _missing(key)
        return obj

    def name_taken(self, kind, name, but=None):
        return any(o["name"] == name and o is not but for o in self.data[kind].values())

    @staticmethod
    def text(body, field, maximum, required=False):
        v = body.get(field)
        if v is None:
            if required:
                raise _bad("%s is required" % field)
            return ""
        if not isinstance(v, str) or len(v) > maximum:
            raise _bad("%s must be a string of at most %d characters" % (field, maximum))
        return v

    def trains_of(self, sid):
        """The service's trains, oldest first (services index their versions,
        so ticking stays cheap however many trains exist)."""
        trains = self.data["trains"]
        return [trains[v] for v in self.data["services"][sid]["versions"]]

    # --- rendering ----------------------------------------------------------
    def render_service(self, svc):
        out = {"serviceId": svc["serviceId"], "name": svc["name"], "description": svc["description"],
               "status": svc["status"], "datasets": [], "hpConfig": svc["hpConfig"], "infers": [],
               "createdDate": self.date(svc["createdAt"]), "updatedDate": self.date(svc["updatedAt"]),
               "type": svc["type"]}
        if svc["type"] == "interval":
            out["term"] = svc["term"]
        for did in svc["datasetIds"]:
            ds = self.data["datasets"].get(did)
            if ds:
                out["datasets"].append({
                    "datasetId": did, "type": ds["type"], "name": ds["name"], "schemaName": ds["schemaName"],
                    "status": "learnable" if ds["status"] == "enable" else ds["status"],
                    "createdDate": self.date(ds["createdAt"]), "updatedDate": self.date(ds["updatedAt"])})
        for ttype in TRAIN_TYPES:
            inf = svc["infers"].get(ttype)
            if inf:
                out["infers"].append({"dataType": ttype, "trainVersion": inf["version"], "status": "enable",
                                      "rowCount": inf["rowCount"], "createdDate": self.date(inf["createdAt"]),
                                      "updatedDate": self.date(inf["updatedAt"])})
        return out

    def render_train(self, t):
        out = {"serviceId": t["serviceId"], "type": t["type"], "hpConfig": t["hpConfig"],
               "version": t["version"], "description": t["description"], "status": t["status"],
               "createdDate": self.date(t["createdAt"]), "inference": t["inference"]}
        if t.get("nextUpdateAt"):
            out["nextUpdateDate"] = self.date(t["nextUpdateAt"])
        return out

    def render_dataset(self, ds):
        connected = [{"serviceId": s["serviceId"], "name": s["name"]}
                     for s in self.data["services"].values() if ds["datasetId"] in s["datasetIds"]]
        return {"datasetId": ds["datasetId"], "type": ds["type"], "name": ds["name"],
                "description": ds["description"], "schemaName": ds["schemaName"], "status": ds["status"],
                "osInfo": ds["osInfo"], "connectedServices": connected,
                "createdDate": self.date(ds["createdAt"]), "updatedDate": self.date(ds["updatedAt"])}

    def render_schema(self, sc):
        fields = []
        for f in sc["fields"]:
            g = {"name": f["name"], "type": f["type"]}
            if f.get("categorical"):
                g["categorical"] = True
            fields.append(g)
        return {"datasetType": sc["datasetType"], "name": sc["name"], "fields": fields,
                "description": sc["description"], "createdDate": self.date(sc["createdAt"])}

    # --- services -------------------------------------------------------------
    def create_service(self, ctx):
        body = ctx.body_object()
        name = body.get("name")
        if not isinstance(name, str) or not SERVICE_NAME.match(name):
            raise _bad("name must be 3-20 characters of A-Z a-z 0-9 _ -, starting with a letter or _")
        desc = self.text(body, "description", 100)
        stype = body.get("type", "batch")
        if stype not in ("batch", "interval"):
            raise _bad("type must be batch or interval")
        if self.name_taken("services", name):
            raise _dup(name)
        sid = self.new_id()
        svc = {"serviceId": sid, "name": name, "description": desc, "type": stype,
               "status": "datasetRequired", "datasetIds": [], "hpConfig": {"is_enabled": False},
               "infers": {}, "createdAt": ctx.now, "updatedAt": ctx.now, "schedule": None, "versions": []}
        if stype == "interval":
            svc["term"] = "hour1"
        self.data["services"][sid] = svc
        return self.created(self.render_service(svc))

    def list_services(self, ctx):
        offset, limit = self.paging(ctx)
        items = sorted(self.data["services"].values(), key=lambda s: s["createdAt"])
        return self.ok({"services": [
            {"serviceId": s["serviceId"], "name": s["name"], "status": s["status"],
             "createdDate": self.date(s["createdAt"]), "updatedDate": self.date(s["updatedAt"]),
             "actionName": "View/getServiceDetail", "permission": "Allow"}
            for s in items[offset:offset + limit]], "offset": offset, "limit": limit})

    def get_service(self, ctx):
        return self.ok(self.render_service(self.find("services", ctx.p["sid"])))

    def update_service(self, ctx):
        svc = self.find("services", ctx.p["sid"])
        body = ctx.body_object()
        name = body.get("name", svc["name"])
        if not isinstance(name, str) or not SERVICE_NAME.match(name):
            raise _bad("name must be 3-20 characters of A-Z a-z 0-9 _ -, starting with a letter or _")
        if self.name_taken("services", name, but=svc):
            raise _dup(name)
        svc["name"] = name
        if "description" in body:
            svc["description"] = self.text(body, "description", 100)
        svc["updatedAt"] = ctx.now
        return self.ok(self.render_service(svc))

    def delete_service(self, ctx):
        svc = self.find("services", ctx.p["sid"])
        if svc["status"] in ("learning", "scheduledLearning"):
            raise _state("[%s] cannot be deleted while it is %s." % (svc["name"], svc["status"]))
        sid = svc["serviceId"]
        for version in svc["versions"]:
            del self.data["trains"][version]
        del self.data["services"][sid]
        self.data["active"].pop("svc:" + sid, None)
        return self.ok({"result": "ok"})

    def set_datasets(self, ctx):
        svc = self.find("services", ctx.p["sid"])
        if svc["status"] in ("learning", "scheduled", "scheduledLearning"):
            raise _state("datasets cannot be changed while the service is %s." % svc["status"])
        ids = ctx.body_object().get("datasetIds")
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise _bad("datasetIds must be a list of dataset ids")
        by_type = {}
        for did in ids:
            ds = self.find("datasets", did)
            if ds["type"] in by_type:
                raise _bad("only one %s dataset can be set" % ds["type"])
            if ds["status"] in ("upload_failed", "disable", "deleting"):
                raise _state("dataset [%s] is %s." % (ds["name"], ds["status"]))
            by_type[ds["type"]] = did
        if set(by_type) != set(DATASET_TYPES):
            raise _bad("user, item and interaction datasets are all required")
        svc["datasetIds"] = [by_type[t] for t in DATASET_TYPES]
        svc["updatedAt"] = ctx.now
        self.refresh(svc)
        return self.ok(self.render_service(svc))

    def update_interval(self, ctx):
        svc = self.find("services", ctx.p["sid"])
        if svc["type"] != "interval":
            raise _unsupported("the interval can be changed on interval services only")
        term = ctx.body_object().get("term")
        if term not in TERMS:
            raise _bad("term must be one of " + ", ".join(TERMS))
        svc["term"] = term
        svc["updatedAt"] = ctx.now
        return self.ok(self.render_service(svc))

    def hp_config(self, body):
        hp = body.get("hpConfig")
        if not isinstance(hp, dict) or not isinstance(hp.get("is_enabled"), bool):
            raise _bad("hpConfig.is_enabled is required")
        for k, (lo, hi) in HPO_RANGES.items():
            if k in hp and (not isinstance(hp[k], int) or isinstance(hp[k], bool) or not lo <= hp[k] <= hi):
                raise _bad("hpConfig.%s must be an integer from %d to %d" % (k, lo, hi))
        return hp

    @staticmethod
    def types(value, field):
        if (not isinstance(value, list) or not value or len(set(value)) != len(value)
                or not set(value) <= set(TRAIN_TYPES)):
            raise _bad("%s must be a non-empty list of %s" % (field, ", ".join(TRAIN_TYPES)))
        return value

    def ready_datasets(self, svc):
        if not svc["datasetIds"]:
            raise _state("[%s] has no datasets." % svc["name"])
        for did in svc["datasetIds"]:
            ds = self.data["datasets"][did]
            if ds["status"] != "enable":
                raise _state("dataset [%s] is not ready (%s)." % (ds["name"], ds["status"]))

    def create_train(self, ctx):
        svc = self.find("services", ctx.p["sid"])
        if svc["type"] != "batch":
            raise _unsupported("training requests are for batch services; use the schedule")
        body = ctx.body_object()
        types = self.types(body.get("types"), "types")
        hp = self.hp_config(body)
        desc = self.text(body, "description", 100)
        if svc["status"] != "learnable":
            raise _state("[%s] cannot be trained while it is %s." % (svc["name"], svc["status"]))
        self.ready_datasets(svc)
        self.start_run(svc, types, hp, desc, ctx.now, None)
        svc["hpConfig"] = hp
        svc["updatedAt"] = ctx.now
        self.refresh(svc)
        return self.ok(self.render_service(svc))

    def set_schedule(self, ctx):
        svc = self.find("services", ctx.p["sid"])
        if svc["type"] != "interval":
            raise _unsupported("schedules are for interval services only")
        action = ctx.q.get("action")
        if action == "start":
            body = ctx.body_object()
            types = self.types(body.get("trainTypes"), "trainTypes")
            hp = self.hp_config(body)
            desc = self.text(body, "description", 100)
            if svc["status"] != "learnable":
                raise _state("[%s] cannot be scheduled while it is %s." % (svc["name"], svc["status"]))
            self.ready_datasets(svc)
            svc["schedule"] = {"types": types, "hpConfig": hp, "description": desc,
                               "next": ctx.now + REQUESTING}
            svc["hpConfig"] = hp
            self.data["active"]["svc:" + svc["serviceId"]] = True
        elif action == "stop":
            if svc["schedule"] is None:
                raise _state("[%s] is not scheduled." % svc["name"])
            svc["schedule"] = None
        else:
            raise _bad("action must be start or stop")
        svc["updatedAt"] = ctx.now
        self.refresh(svc)
        return self.ok(self.render_service(svc))

    def upload_data(self, ctx):
        svc = self.find("services", ctx.p["sid"])
        if svc["type"] != "interval":
            raise _unsupported("data uploads are for interval services only")
        ds = self.find("datasets", ctx.p["did"])
        if ds["datasetId"] not in svc["datasetIds"]:
            raise _bad("dataset [%s] is not set on [%s]" % (ds["name"], svc["name"]))
        body = ctx.body_object()
        if body.get("type") != ds["type"]:
            raise _bad("type must be %s for dataset [%s]" % (ds["type"], ds["name"]))
        rows = body.get("value")
        if not isinstance(rows, list) or not rows:
            raise _bad("value must be a non-empty list of rows")
        fields = {f["name"]: f for f in self.data["schemas"][ds["schemaName"]]["fields"]}
        for row in rows:
            if not isinstance(row, dict):
                raise _bad("each row must be an object")
            for k, v in row.items():
                if k not in fields:
                    raise _bad("unknown field %s" % k)
                if not _typed_ok(v, fields[k]["type"]):
                    raise _bad("field %s must be %s" % (k, "|".join(fields[k]["type"])))
            for k in REQUIRED_FIELDS[ds["type"]]:
                if row.get(k) in (None, ""):
                    raise _bad("field %s is required" % k)
        self.data["uploads"].setdefault(ds["datasetId"], []).extend(
            {k: str(v) for k, v in row.items() if v is not None} for row in rows)
        return self.ok(True)

    def list_trains(self, ctx):
        svc = self.find("services", ctx.p["sid"])
        offset, limit = self.paging(ctx)
        trains = sorted(self.trains_of(svc["serviceId"]), key=lambda t: t["createdAt"], reverse=True)
        if ctx.q.get("isRecent") == "true":
            seen, recent = set(), []
            for t in trains:
                if t["type"] not in seen:
                    seen.add(t["type"])
                    recent.append(t)
            trains = recent
        return self.ok({"trains": [self.render_train(t) for t in trains[offset:offset + limit]],
                        "offset": offset, "limit": limit})

    def get_train(self, ctx):
        self.find("services", ctx.p["sid"])
        t = self.data["trains"].get(ctx.p["version"])
        if t is None or t["serviceId"] != ctx.p["sid"] or t["type"] != ctx.p["ttype"]:
            raise _missing(ctx.p["version"])
        return self.ok(self.render_train(t))

    def lookup(self, ctx):
        svc = self.find("services", ctx.p["sid"])
        ttype = ctx.q.get("type")
        if ttype not in TRAIN_TYPES:
            raise _bad("type must be one of " + ", ".join(TRAIN_TYPES))
        target = ctx.q.get("targetId", "")
        if ttype != "pop" and not target:
            raise _bad("targetId is required")
        inf = svc["infers"].get(ttype)
        if inf is None:
            raise ApiError(404, "NOT_FOUND", "[%s] has no %s inference result." % (svc["name"], ttype),
                           cls="NOT_FOUND")
        train = self.data["trains"].get(inf["version"], {"hpConfig": {}})
        return self.ok({"field": "ITEM_ID", "values": self.recommend(svc, ttype, inf["version"],
                                                                     train["hpConfig"], target)})

    # --- datasets ---------------------------------------------------------------
    def dataset_body(self, body):
        dtype = body.get("type")
        if dtype not in DATASET_TYPES:
            raise _bad("type must be one of user, item, interaction")
        name = body.get("name")
        if not isinstance(name, str) or not RESOURCE_NAME.match(name):
            raise _bad("name must be 3-20 characters of A-Z a-z 0-9 _ -, starting with a letter")
        desc = self.text(body, "description", 100, required=True)
        sc = self.data["schemas"].get(body.get("schemaName"))
        if sc is None:
            raise _bad("schemaName [%s] does not exist" % body.get("schemaName"))
        if sc["datasetType"] != dtype:
            raise _bad("schema [%s] is for %s data" % (sc["name"], sc["datasetType"]))
        os_info = body.get("osInfo")
        if (not isinstance(os_info, dict)
                or not all(isinstance(os_info.get(k), str) and os_info[k] for k in ("region", "bucket", "key"))):
            raise _bad("osInfo.region, osInfo.bucket and osInfo.key are required")
        return dtype, name, desc, sc["name"], {k: os_info[k] for k in ("region", "bucket", "key")}

    def create_dataset(self, ctx):
        dtype, name, desc, schema, os_info = self.dataset_body(ctx.body_object())
        if self.name_taken("datasets", name):
            raise _dup(name)
        did = self.new_id()
        ds = {"datasetId": did, "type": dtype, "name": name, "description": desc, "schemaName": schema,
              "osInfo": os_info, "status": "waiting", "createdAt": ctx.now, "updatedAt": ctx.now,
              "importAt": ctx.now, "reason": ""}
        self.data["datasets"][did] = ds
        self.data["active"]["ds:" + did] = True
        return self.created(self.render_dataset(ds))

    def list_datasets(self, ctx):
        offset, limit = self.paging(ctx)
        items = sorted(self.data["datasets"].values(), key=lambda d: d["createdAt"])
        return self.ok({"datasets": [
            {"datasetId": d["datasetId"], "type": d["type"], "name": d["name"], "status": d["status"],
             "createdDate": self.date(d["createdAt"]), "actionName": "View/getDatasetDetail",
             "permission": "Allow"} for d in items[offset:offset + limit]], "offset": offset, "limit": limit})

    def get_dataset(self, ctx):
        return self.ok(self.render_dataset(self.find("datasets", ctx.p["did"])))

    def users_of(self, ds):
        return [s for s in self.data["services"].values() if ds["datasetId"] in s["datasetIds"]]

    def modify_dataset(self, ctx):
        ds = self.find("datasets", ctx.p["did"])
        dtype, name, desc, schema, os_info = self.dataset_body(ctx.body_object())
        busy = [s["name"] for s in self.users_of(ds) if s["status"] != "learnable"]
        if busy:
            raise _state("dataset [%s] is used by %s." % (ds["name"], ", ".join(busy)))
        if self.users_of(ds) and dtype != ds["type"]:
            raise _state("the type of a dataset set on a service cannot change")
        if self.name_taken("datasets", name, but=ds):
            raise _dup(name)
        ds.update(type=dtype, name=name, description=desc, schemaName=schema, osInfo=os_info,
                  status="waiting", updatedAt=ctx.now, importAt=ctx.now, reason="")
        self.data["active"]["ds:" + ds["datasetId"]] = True
        return self.ok(self.render_dataset(ds))

    def describe_dataset(self, ctx):
        ds = self.find("datasets", ctx.p["did"])
        ds["description"] = self.text(ctx.body_object(), "content", 100, required=True)
        ds["updatedAt"] = ctx.now
        return self.ok(self.render_dataset(ds))

    def delete_dataset(self, ctx):
        ds = self.find("datasets", ctx.p["did"])
        users = self.users_of(ds)
        if users:
            raise _state("dataset [%s] is set on service [%s]." % (ds["name"], users[0]["name"]))
        del self.data["datasets"][ds["datasetId"]]
        self.data["active"].pop("ds:" + ds["datasetId"], None)
        self.data["uploads"].pop(ds["datasetId"], None)
        return self.ok({"result": "ok"})

    # --- schemas ----------------------------------------------------------------
    def schema_body(self, body, strict):
        dtype = body.get("datasetType")
        if dtype not in DATASET_TYPES:
            raise _bad("datasetType must be one of user, item, interaction")
        name = body.get("name")
        if not isinstance(name, str) or not RESOURCE_NAME.match(name):
            raise _bad("name must be 3-20 characters of A-Z a-z 0-9 _ -, starting with a letter")
        desc = self.text(body, "description", 100, required=strict)
        fields = body.get("fields")
        if not isinstance(fields, list) or not fields:
            raise _bad("fields must be a non-empty list")
        out, names = [], set()
        for f in fields:
            if not isinstance(f, dict) or not isinstance(f.get("name"), str) or not f["name"]:
                raise _bad("every field needs a name")
            ftype = f.get("type")
            if not isinstance(ftype, list) or not ftype or not set(ftype) <= set(FIELD_TYPES) or ftype == ["null"]:
                raise _bad("type of %s must be a list drawn from %s" % (f["name"], "|".join(FIELD_TYPES)))
            if f["name"] in names:
                raise _bad("field %s appears twice" % f["name"])
            if strict and "categorical" not in f:
                raise _bad("categorical of %s is required" % f["name"])
            if not isinstance(f.get("categorical", False), bool):
                raise _bad("categorical of %s must be a boolean" % f["name"])
            names.add(f["name"])
            out.append({"name": f["name"], "type": list(ftype), "categorical": f.get("categorical", False)})
        for req, rtype in REQUIRED_FIELDS[dtype].items():
            f = next((g for g in out if g["name"] == req), None)
            if f is None:
                raise _bad("%s data needs the field %s" % (dtype, req))
            if rtype not in f["type"] or "null" in f["type"]:
                raise _bad("field %s must be %s and not null" % (req, rtype))
        return dtype, name, desc, out

    def create_schema(self, ctx):
        dtype, name, desc, fields = self.schema_body(ctx.body_object(), strict=False)
        if name in self.data["schemas"]:
            raise _dup(name)
        sc = {"datasetType": dtype, "name": name, "description": desc, "fields": fields, "createdAt": ctx.now}
        self.data["schemas"][name] = sc
        return self.created(self.render_schema(sc))

    def validate_schema(self, ctx):
        self.schema_body(ctx.body_object(), strict=True)
        return self.ok({"result": "ok"})

    def list_schemas(self, ctx):
        offset, limit = self.paging(ctx)
        dtype = ctx.q.get("datasetType")
        if dtype and dtype not in DATASET_TYPES:
            raise _bad("datasetType must be one of user, item, interaction")
        items = sorted((s for s in self.data["schemas"].values() if not dtype or s["datasetType"] == dtype),
                       key=lambda s: s["createdAt"])
        return self.ok({"schemas": [
            {"datasetType": s["datasetType"], "name": s["name"], "createdDate": self.date(s["createdAt"]),
             "actionName": "View/getSchemaDetail", "permission": "Allow"}
            for s in items[offset:offset + limit]], "offset": offset, "limit": limit})

    def default_schema(self, ctx):
        dtype = ctx.q.get("datasetType")
        if dtype not in DATASET_TYPES:
            raise _bad("datasetType must be one of user, item, interaction")
        return self.ok({"datasetType": dtype, "name": "default_" + dtype, "fields": DEFAULT_SCHEMAS[dtype],
                        "description": "Default schema for %s data" % dtype})

    def get_schema(self, ctx):
        return self.ok(self.render_schema(self.find("schemas", ctx.p["name"])))

    def describe_schema(self, ctx):
        sc = self.find("schemas", ctx.p["name"])
        sc["description"] = self.text(ctx.body_object(), "content", 100, required=True)
        return self.ok(self.render_schema(sc))

    def delete_schema(self, ctx):
        sc = self.find("schemas", ctx.p["name"])
        users = [d["name"] for d in self.data["datasets"].values() if d["schemaName"] == sc["name"]]
        if users:
            raise _state("schema [%s] is used by dataset [%s]." % (sc["name"], users[0]))
        del self.data["schemas"][sc["name"]]
        return self.ok({"result": "ok"})

    # --- lifecycles ---------------------------------------------------------------
    def start_run(self, svc, types, hp, desc, t0, next_update):
        keys = " ".join(self.data["datasets"][d]["osInfo"]["key"].lower() for d in svc["datasetIds"])
        fail = None
        if "fail" in keys:
            fail = "refinedFailed" if "refine" in keys else "learningFailed"
        for ttype in types:
            version = self.new_id()
            self.data["trains"][version] = {
                "serviceId": svc["serviceId"], "type": ttype, "hpConfig": hp, "version": version,
                "description": desc, "status": "requesting", "createdAt": t0, "inference": False,
                "fail": fail, "done": False, "nextUpdateAt": next_update}
            svc["versions"].append(version)
        self.data["active"]["svc:" + svc["serviceId"]] = True
        self.prune_trains(svc["serviceId"])

    def prune_trains(self, sid):
        by_type = collections.defaultdict(list)
        for t in self.trains_of(sid):
            by_type[t["type"]].append(t)
        for ts in by_type.values():
            done = sorted((t for t in ts if t["done"] and not t["inference"]), key=lambda t: t["createdAt"])
            for t in done[:max(0, len(ts) - TRAINS_KEPT_PER_TYPE)]:
                del self.data["trains"][t["version"]]
                self.data["services"][sid]["versions"].remove(t["version"])

    def refresh(self, svc):
        inflight = any(not t["done"] for t in self.trains_of(svc["serviceId"]))
        if svc.get("pinned"):
            status = svc["pinned"]
        elif not svc["datasetIds"]:
            status = "datasetRequired"
        elif svc["schedule"] is not None:
            status = "scheduledLearning" if inflight else "scheduled"
        else:
            status = "learning" if inflight else "learnable"
        svc["status"] = status
        return inflight

    def tick(self, now):
        active = self.data["active"]
        for key in list(active):
            kind, _, oid = key.partition(":")
            if kind == "ds":
                ds = self.data["datasets"].get(oid)
                if ds is None or ds.get("pinned") or self.tick_dataset(ds, now):
                    del active[key]
            else:
                svc = self.data["services"].get(oid)
                if svc is None or self.tick_service(svc, now):
                    del active[key]

    def tick_dataset(self, ds, now):
        t0 = ds["importAt"]
        if now >= t0 + IMPORT_DONE:
            reason = self.check_dataset_file(ds)
            ds["status"], ds["reason"] = ("upload_failed", reason) if reason else ("enable", "")
            ds["updatedAt"] = t0 + IMPORT_DONE
            return True
        if now >= t0 + IMPORT_WAITING and ds["status"] == "waiting":
            ds["status"] = "processing"
            ds["updatedAt"] = t0 + IMPORT_WAITING
        return False

    def tick_service(self, svc, now):
        sched = svc["schedule"]
        if sched is not None:
            term = TERMS[svc["term"]]
            if now - sched["next"] > MAX_BACKLOG_RUNS * term:
                sched["next"] += ((now - sched["next"]) // term - MAX_BACKLOG_RUNS) * term
            while sched["next"] <= now:
                # Finish what ended before this slot; a run still going skips it.
                self.tick_trains(svc, sched["next"])
                if not any(not t["done"] for t in self.trains_of(svc["serviceId"])):
                    self.start_run(svc, sched["types"], sched["hpConfig"], sched["description"],
                                   sched["next"], sched["next"] + term)
                sched["next"] += term
        self.tick_trains(svc, now)
        inflight = self.refresh(svc)
        return not inflight and sched is None

    def tick_trains(self, svc, now):
        for t in self.trains_of(svc["serviceId"]):
            if t["done"] or t.get("pinned"):
                continue
            t0 = t["createdAt"]
            end = t0 + TRAIN_SECONDS[t["type"]]
            if t["fail"] == "refinedFailed" and now >= t0 + REFINE_FAIL_AT:
                self.finish(svc, t, "refinedFailed", t0 + REFINE_FAIL_AT)
            elif now >= end:
                self.finish(svc, t, t["fail"] or "completed", end)
            elif now >= t0 + REQUESTING:
                t["status"] = "learning"

    def finish(self, svc, t, status, at):
        t["status"] = status
        t["done"] = True
        svc["updatedAt"] = max(svc["updatedAt"], at)
        if status != "completed":
            return
        for other in self.trains_of(svc["serviceId"]):
            if other["type"] == t["type"]:
                other["inference"] = False
        t["inference"] = True
        items, users, inter = self.rows(svc)
        rows = {"personalRecommend": len({u for u, _ in inter}), "relatedItem": len(items),
                "pop": min(DEFAULT_TOP, len(items))}[t["type"]]
        prev = svc["infers"].get(t["type"])
        svc["infers"][t["type"]] = {"version": t["version"], "rowCount": rows,
                                    "createdAt": prev["createdAt"] if prev else at, "updatedAt": at}

    # --- admin: the documented statuses no lifecycle here reaches ---------------
    def admin(self, method, parts, doc):
        """POST /_cloudsim/aitems/{trains|datasets|services}/{id} {"status": S}
        pins an object at documented status S until a {"status": null}
        gives it back to its lifecycle; None for any other path."""
        if method != "POST" or len(parts) != 2 or parts[0] not in ("trains", "datasets", "services"):
            return None
        kind, oid = parts
        allowed = {"trains": TRAIN_STATUSES, "datasets": DATASET_STATUSES, "services": SERVICE_STATUSES}[kind]
        if set(doc) != {"status"} or (doc["status"] is not None and doc["status"] not in allowed):
            raise ValueError('the body must be {"status": S} with S one of %s, or null' % ", ".join(allowed))
        obj = self.data[kind].get(oid)
        if obj is None:
            raise ValueError("no AiTEMS %s %s" % (kind[:-1], oid))
        status = doc["status"]
        if kind == "trains":
            svc = self.data["services"][obj["serviceId"]]
            obj["pinned"] = status is not None
            if status is not None:
                obj["status"], obj["done"] = status, status in TRAIN_DONE
            self.data["active"]["svc:" + svc["serviceId"]] = True
            self.refresh(svc)
            return self.render_train(obj)
        if kind == "datasets":
            obj["pinned"] = status is not None
            if status is not None:
                obj["status"] = status
            elif obj["status"] in ("waiting", "processing"):
                self.data["active"]["ds:" + oid] = True
            return self.render_dataset(obj)
        obj["pinned"] = status
        self.data["active"]["svc:" + oid] = True
        self.refresh(obj)
        return self.render_service(obj)

    # --- data -----------------------------------------------------------------------
    def resolve(self, os_info):
        """The local file a dataset points at: key, else bucket/key, under --data-dir."""
        root = os.path.realpath(self.cfg.data_dir)
        for rel in (os_info["key"], os.path.join(os_info["bucket"], os_info["key"])):
            path = os.path.realpath(os.path.join(root, rel.lstrip("/")))
            if path.startswith(root + os.sep) and os.path.isfile(path):
                return path
        return None

    def read_csv(self, path):
        """(header, rows) of a .csv or .csv.gz file, cached by mtime."""
        st = os.stat(path)
        hit = self._csv_cache.get(path)
        if hit and hit[0] == (st.st_mtime_ns, st.st_size):
            return hit[1]
        raw = open(path, "rb").read()
        if path.endswith(".gz"):
            raw = gzip.decompress(raw)
        reader = csv.reader(io.StringIO(raw.decode("utf-8-sig")))
        header = next(reader, [])
        parsed = (header, [r for r in reader if r])
        self._csv_cache[path] = ((st.st_mtime_ns, st.st_size), parsed)
        return parsed

    def check_dataset_file(self, ds):
        """Why the dataset cannot be imported, or '' when it can."""
        path = self.resolve(ds["osInfo"])
        if path is None:
            return "object %s/%s not found" % (ds["osInfo"]["bucket"], ds["osInfo"]["key"])
        if not path.endswith((".csv", ".csv.gz")):
            return "only csv and csv.gz files can be imported"
        try:
            header, rows = self.read_csv(path)
        except (OSError, ValueError, csv.Error, EOFError) as e:
            return "unreadable: %s" % e
        fields = self.data["schemas"][ds["schemaName"]]["fields"]
        if header != [f["name"] for f in fields]:
            return "CSV header %s does not match schema fields %s" % (header, [f["name"] for f in fields])
        keys = set()
        unique = {"user": "USER_ID", "item": "ITEM_ID"}.get(ds["type"])
        for n, row in enumerate(rows, 2):
            if len(row) != len(fields):
                return "line %d has %d columns, expected %d" % (n, len(row), len(fields))
            for f, v in zip(fields, row):
                if v == "" and (f["name"] in REQUIRED_FIELDS[ds["type"]] or "null" not in f["type"]):
                    return "line %d: %s is required" % (n, f["name"])
                if v != "" and not _typed_ok(v, f["type"], text=True):
                    return "line %d: %s must be %s" % (n, f["name"], "|".join(f["type"]))
            if unique:
                key = row[header.index(unique)]
                if key in keys:
                    return "line %d: duplicate %s %s" % (n, unique, key)
                keys.add(key)
        if not rows:
            return "the file has no rows"
        return ""

    def column(self, did, names):
        ds = self.data["datasets"].get(did)
        out = []
        if ds:
            path = self.resolve(ds["osInfo"])
            if path:
                header, rows = self.read_csv(path)
                if all(n in header for n in names):
                    idx = [header.index(n) for n in names]
                    out = [tuple(r[i] for i in idx) for r in rows if len(r) == len(header)]
            out += [tuple(r.get(n, "") for n in names) for r in self.data["uploads"].get(did, [])]
        return out

    def rows(self, svc):
        """(item ids, user ids, interactions) of a service's datasets and uploads."""
        ids = dict(zip(DATASET_TYPES, svc["datasetIds"]))
        items = list(dict.fromkeys(i for (i,) in self.column(ids.get("item"), ["ITEM_ID"])))
        users = list(dict.fromkeys(u for (u,) in self.column(ids.get("user"), ["USER_ID"])))
        inter = self.column(ids.get("interaction"), ["USER_ID", "ITEM_ID"])
        return items, users, inter

    def recommend(self, svc, ttype, version, hp, target):
        """Item ids ranked by co-occurrence and popularity; ties broken by a
        hash of the seed, so every run with the same seed agrees."""
        items, users, inter = self.rows(svc)
        known = set(items)
        pop = collections.Counter(i for _, i in inter if i in known)
        seed = self.cfg.seed

        def order(scores):
            return sorted((i for i in items if i in scores),
                          key=lambda i: (-scores[i], -pop[i], stable_unit(seed, version, target, i)))

        enabled = hp.get("is_enabled")
        if ttype == "pop":
            return order({i: pop[i] for i in items})[:DEFAULT_TOP]
        history = collections.defaultdict(set)
        for u, i in inter:
            if i in known:
                history[u].add(i)
        if ttype == "personalRecommend":
            top = hp.get("max_user_recommend_top", DEFAULT_TOP) if enabled else DEFAULT_TOP
            if target not in history and target not in set(users):
                return []
            seen = history.get(target, set())
            scores = collections.Counter()
            for other, their in history.items():
                overlap = len(seen & their)
                if other != target and overlap:
                    for i in their - seen:
                        scores[i] += overlap
            for i in items:
                if i not in seen:
                    scores[i] += 0
            return order(scores)[:top]
        top = hp.get("max_relate_recommend_top", DEFAULT_TOP) if enabled else DEFAULT_TOP
        if target not in known:
            return []
        scores = collections.Counter()
        for their in history.values():
            if target in their:
                for i in their:
                    if i != target:
                        scores[i] += 1
        return order(scores)[:top]


def _typed_ok(value, types, text=False):
    """Whether a value (a CSV cell when text) fits a schema type list."""
    if value is None:
        return "null" in types
    for t in types:
        if t == "string" and isinstance(value, str):
            return True
        if t in ("int", "long"):
            if text or isinstance(value, str):
                if re.fullmatch(r"-?\d+", str(value)):
                    return True
            elif isinstance(value, int) and not isinstance(value, bool):
                return True
        if t == "boolean":
            if (text or isinstance(value, str)) and str(value).lower() in ("true", "false"):
                return True
            if isinstance(value, bool):
                return True
    return False
