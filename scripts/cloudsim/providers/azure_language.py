"""Azure AI Language: text analysis authoring (custom classification and
custom NER projects) and the analyze-text/jobs runtime. Authenticated by
Ocp-Apim-Subscription-Key or an Entra ID bearer token from entra.py.

Long-running operations answer 202 with an absolute Operation-Location.
Durations, in simulated seconds (notStarted first, then running):

  import 30, export 20, load snapshot 30, deploy 60, delete deployment 30,
  swap 30, delete project 30, analyze-text job 5 (notStarted for 1 s);
  training: notStarted 10 s, training 480 s, evaluation 60 s, succeeded
  at 560 s; it fails half way through training when the project name or
  model label contains "fail". Cancelling takes 20 s.
"""

import argparse
import collections
import math
import os
import re
import uuid
from urllib.parse import quote, urlencode

from .. import textmodel
from ..common import (ApiError, Provider, Response, compile_routes, iso_date, iso_z, iso_z7,
                     json_bytes, stable_unit)

API_VERSIONS = ("2022-05-01", "2022-10-01-preview", "2023-04-01", "2023-04-15-preview",
                "2024-11-15-preview", "2025-05-15-preview")
KINDS = ("CustomSingleLabelClassification", "CustomMultiLabelClassification", "CustomEntityRecognition")
CONFIG_VERSION = "2022-05-01"
CONFIG_VERSIONS = ("2022-05-01",)
LANGUAGES = (("en", "English"), ("en-us", "English (US)"), ("de", "German"), ("es", "Spanish"),
             ("fr", "French"), ("it", "Italian"), ("ja", "Japanese"), ("ko", "Korean"), ("nl", "Dutch"),
             ("pt-br", "Portuguese (Brazil)"), ("pt-pt", "Portuguese (Portugal)"),
             ("zh-hans", "Chinese (Simplified)"), ("zh-hant", "Chinese (Traditional)"))
LANGUAGE_CODES = frozenset(c for c, _ in LANGUAGES)
NAME = re.compile(r"[A-Za-z0-9 _.\-]{1,50}$")

SIMPLE_JOB_SECONDS = {"import": 30, "export": 20, "snapshot": 30, "deploy": 60, "undeploy": 30,
                      "swap": 30, "delete": 30}
NOT_STARTED = 2
TRAIN_QUEUE, TRAIN_SECONDS, EVAL_SECONDS, TRAIN_WRAPUP = 10, 480, 60, 10
CANCEL_SECONDS = 20
RUNTIME_QUEUE, RUNTIME_SECONDS, RUNTIME_CANCEL = 1, 5, 2
JOB_TTL = 7 * 86400
RUNTIME_TTL = 86400
MIN_DOCUMENTS = 10
MAX_MODELS = MAX_DEPLOYMENTS = 10
MAX_PROJECTS = 500
MAX_RUNTIME_DOCS, MAX_RUNTIME_CHARS = 25, 125000
CONFIG_LIFETIME = 400 * 86400
TERMINAL = ("succeeded", "failed", "cancelled", "partiallyCompleted")

STATUS_OF = {"InvalidRequest": 400, "InvalidArgument": 400, "Unauthorized": 401, "Forbidden": 403,
             "QuotaExceeded": 403, "NotFound": 404, "ProjectNotFound": 404, "OperationNotFound": 404,
             "Conflict": 409, "TooManyRequests": 429, "InternalServerError": 500,
             "ServiceUnavailable": 503, "Timeout": 504}

MSG_BAD_KEY = ("Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a "
               "valid key for an active subscription and use a correct regional API endpoint for your resource.")
MSG_NO_KEY = ("Access denied due to missing subscription key. Make sure to include subscription key when "
              "making requests to an API.")
MSG_BAD_TOKEN = ("Access token is missing, invalid, audience is incorrect (https://cognitiveservices.azure.com), "
                 "or have expired.")

AP = "/authoring/analyze-text/projects"


def _err(code, message, inner=None, target=None):
    extra = {}
    if inner:
        extra["inner"] = inner
    if target:
        extra["target"] = target
    return ApiError(STATUS_OF[code], code, message, **extra)


def _arg(message, target=None):
    return _err("InvalidArgument", message, target=target)


def _azure_limits(value):
    limits = {"write": 10, "read": 100, "runtime": 1000}
    if value not in ("", "default"):
        for part in value.split(","):
            k, _, v = part.partition("=")
            if k.strip() not in limits or not v.strip().isdigit():
                raise argparse.ArgumentTypeError("expected write=N,read=N,runtime=N")
            limits[k.strip()] = int(v)
    return limits


def _azure_error_status(value):
    """The HTTP status of error codes, which the spec does not give:
    spec (the table above), all-400 (every client error but 401, 403 and
    429 is a 400), or Code=NNN,... over the table."""
    if value == "spec":
        return {}
    if value == "all-400":
        return {c: 400 for c, st in STATUS_OF.items() if 400 <= st < 500 and st not in (401, 403, 429)}
    out = {}
    for part in value.split(","):
        k, _, v = (x.strip() for x in part.partition("="))
        if k not in STATUS_OF or not v.isdigit() or not 400 <= int(v) <= 599:
            raise argparse.ArgumentTypeError("expected spec, all-400 or Code=NNN,... with codes of: "
                                             + ", ".join(STATUS_OF))
        out[k] = int(v)
    return out


class AzureLanguage(Provider):
    name = "azure"
    prefixes = ("/language/",)
    credentials = {"AZURE_LANGUAGE_KEY": "cloudsim-azure-language-key"}

    @classmethod
    def options(cls, a):
        a("--azure-rate-limits", nargs="?", const="default", type=_azure_limits,
          help="enforce Azure's per-minute limits: write=10,read=100,runtime=1000 unless given")
        a("--azure-page-size", type=int, default=50, help="Azure list page size when maxpagesize is absent")
        a("--azure-401-style", choices=("apim", "spec"), default="apim",
          help="body of Azure 401s: the API Management form or the spec's ErrorResponse")
        a("--azure-location-header", action="store_true",
          help="send Location beside Operation-Location on Azure 202s")
        a("--azure-poll-retry-after", type=int, default=None,
          help="Retry-After seconds on Azure 202s and on polls of running jobs (default: none; 0 is sent)")
        # Enums are exact by default. Whether the service also takes
        # projectKind and dataset in another letter case is UNKNOWN (the
        # docs show customSingleLabelClassification), hence the switch.
        a("--azure-lenient-enums", action="store_true",
          help="accept projectKind and dataset values in any letter case (default: exactly as in the spec)")
        a("--azure-error-status", type=_azure_error_status, default={}, metavar="spec|all-400|Code=NNN,...",
          help="HTTP status of Azure error codes (default spec: NotFound 404, Conflict 409, ...)")
        a("--azure-strict-enums", action="store_true",
          help="exact enum values: the default; kept so that older command lines still start")

    content_type = "application/json; charset=utf-8"
    routes = compile_routes("/language", [
        ("GET", AP, "ListProjects", "list_projects"),
        ("GET", AP + "/global/deletion-jobs/{job}", "GetProjectDeletionStatus", "get_deletion_job"),
        ("GET", AP + "/global/languages", "ListSupportedLanguages", "list_languages"),
        ("GET", AP + "/global/training-config-versions", "ListTrainingConfigVersions", "list_config_versions"),
        ("GET", AP + "/{p}", "GetProject", "get_project"),
        ("PATCH", AP + "/{p}", "CreateProject", "create_project"),
        ("DELETE", AP + "/{p}", "DeleteProject", "delete_project"),
        ("POST", AP + "/{p}/:import", "ImportProject", "import_project"),
        ("GET", AP + "/{p}/import/jobs/{job}", "GetImportStatus", "get_import_job"),
        ("POST", AP + "/{p}/:export", "ExportProject", "export_project"),
        ("GET", AP + "/{p}/export/jobs/{job}", "GetExportStatus", "get_export_job"),
        ("GET", AP + "/{p}/export/jobs/{job}/result", "GetExportResult", "get_export_result"),
        ("POST", AP + "/{p}/:train", "StartTraining", "train"),
        ("GET", AP + "/{p}/train/jobs", "ListTrainingJobs", "list_training_jobs"),
        ("GET", AP + "/{p}/train/jobs/{job}", "GetTrainingStatus", "get_training_job"),
        ("POST", AP + "/{p}/train/jobs/{job}/:cancel", "CancelTrainingJob", "cancel_training"),
        ("GET", AP + "/{p}/models", "ListModels", "list_models"),
        ("GET", AP + "/{p}/models/{m}", "GetModel", "get_model"),
        ("DELETE", AP + "/{p}/models/{m}", "DeleteModel", "delete_model"),
        ("POST", AP + "/{p}/models/{m}/:load-snapshot", "LoadSnapshot", "load_snapshot"),
        ("GET", AP + "/{p}/models/{m}/load-snapshot/jobs/{job}", "GetLoadSnapshotStatus", "get_snapshot_job"),
        ("GET", AP + "/{p}/models/{m}/evaluation/summary-result", "GetModelEvaluationSummary", "eval_summary"),
        ("GET", AP + "/{p}/models/{m}/evaluation/result", "ListModelEvaluationResults", "eval_results"),
        ("GET", AP + "/{p}/deployments", "ListDeployments", "list_deployments"),
        ("POST", AP + "/{p}/deployments/:swap", "SwapDeployments", "swap"),
        ("GET", AP + "/{p}/deployments/swap/jobs/{job}", "GetSwapDeploymentsStatus", "get_swap_job"),
        ("GET", AP + "/{p}/deployments/{d}", "GetDeployment", "get_deployment"),
        ("PUT", AP + "/{p}/deployments/{d}", "DeployProject", "deploy"),
        ("DELETE", AP + "/{p}/deployments/{d}", "DeleteDeployment", "undeploy"),
        ("GET", AP + "/{p}/deployments/{d}/jobs/{job}", "GetDeploymentStatus", "get_deployment_job"),
        ("POST", "/analyze-text/jobs", "SubmitAnalyzeTextJob", "submit_job"),
        ("GET", "/analyze-text/jobs/{job}", "GetAnalyzeTextJob", "get_runtime_job"),
        ("POST", "/analyze-text/jobs/{job}:cancel", "CancelAnalyzeTextJob", "cancel_runtime_job"),
    ])

    def __init__(self, app):
        super().__init__(app)
        self.windows = {"read": collections.deque(), "write": collections.deque(),
                        "runtime": collections.deque()}
        self.config_expiry = app.clock.sim() + CONFIG_LIFETIME
        self.lenient = self.cfg.azure_lenient_enums and not self.cfg.azure_strict_enums

    def empty(self):
        return {"projects": {}, "jobs": {}, "models": {}, "deployments": {}, "runtime": {}, "active": {}}

    # --- wire ------------------------------------------------------------------
    def render_error(self, err, req):
        error = {"code": err.code, "message": err.message}
        if "target" in err.extra:
            error["target"] = err.extra["target"]
        if "inner" in err.extra:
            error["innererror"] = {"code": err.extra["inner"][0], "message": err.extra["inner"][1]}
        headers = [("Content-Type", self.content_type), ("apim-request-id", self.request_id()),
                   ("x-ms-error-code", err.code)]
        if "retry_after" in err.extra:
            headers.append(("Retry-After", "%d" % err.extra["retry_after"]))
        return Response(self.cfg.azure_error_status.get(err.code, err.status), json_bytes({"error": error}),
                        headers)

    @staticmethod
    def request_id():
        return str(uuid.uuid4())

    def ok(self, obj, status=200, headers=()):
        hs = [("Content-Type", self.content_type), ("apim-request-id", self.request_id())]
        hs.extend(headers)
        return Response(status, json_bytes(obj), hs)

    def unknown_route(self, req):
        return ApiError(404, "404", "Resource not found")

    def bad_json(self, err):
        return _err("InvalidRequest", "Invalid Request.", inner=("InvalidRequestBodyFormat",
                                                                   "Request body is not valid JSON: %s" % err))

    def fault_response(self, req, status, retry_after):
        code = {429: "TooManyRequests", 503: "ServiceUnavailable", 504: "Timeout"}.get(status, "InternalServerError")
        msg = {429: "Rate limit is exceeded. Try again in %d seconds." % max(1, round(retry_after)),
               503: "The service is temporarily unavailable.", 504: "The request timed out."}.get(
            status, "An unexpected error occurred.")
        extra = {"retry_after": max(1, round(retry_after))} if status in (429, 503) else {}
        return self.render_error(ApiError(status, code, msg, **extra), req)

    def unauthorized(self, req, message):
        code = "401" if self.cfg.azure_401_style == "apim" else "Unauthorized"
        return Response(401, json_bytes({"error": {"code": code, "message": message}}),
                        [("Content-Type", self.content_type), ("apim-request-id", self.request_id())])

    # --- authentication, api-version, rate limits ----------------------------------
    def authenticate(self, req):
        key = req.headers.get("ocp-apim-subscription-key")
        auth = req.headers.get("authorization", "")
        if key is not None:
            if key != self.cfg.credentials["AZURE_LANGUAGE_KEY"]:
                return self.unauthorized(req, MSG_BAD_KEY)
        elif auth[:7].lower() == "bearer ":
            if not self.app.provider("entra").valid(auth[7:].strip()):
                return self.unauthorized(req, MSG_BAD_TOKEN)
        else:
            return self.unauthorized(req, MSG_NO_KEY)
        version = req.query_dict().get("api-version")
        if version is None:
            return self.render_error(_err("InvalidRequest", "The api-version query parameter is required."), req)
        if version not in API_VERSIONS:
            return self.render_error(_err("InvalidRequest", "Unsupported api-version '%s'. The supported "
                                          "api-versions are '%s'." % (version, ", ".join(API_VERSIONS))), req)
        if self.cfg.azure_rate_limits:
            return self.throttle(req)
        return None

    def throttle(self, req):
        bucket = ("runtime" if req.path.startswith("/language/analyze-text") else
                  "read" if req.method == "GET" else "write")
        limit = self.cfg.azure_rate_limits[bucket]
        now = self.app.clock.real()
        with self.app.lock:
            q = self.windows[bucket]
            while q and q[0] <= now - 60:
                q.popleft()
            if len(q) >= limit:
                wait = max(1, math.ceil(q[0] + 60 - now))
                return self.render_error(ApiError(
                    429, "TooManyRequests", "Rate limit is exceeded. Try again in %d seconds." % wait,
                    retry_after=wait), req)
            q.append(now)
        return None

    # --- helpers --------------------------------------------------------------------
    def enum(self, value, allowed, field, case_unknown=False):
        """value when it is one of allowed, spelled exactly. case_unknown
        marks the fields whose case-sensitivity the reference leaves
        UNKNOWN (projectKind, dataset): --azure-lenient-enums matches those
        in any case."""
        if value in allowed:
            return value
        if self.lenient and case_unknown and isinstance(value, str):
            for a in allowed:
                if a.lower() == value.lower():
                    return a
        raise _arg("'%s' is not a valid value for %s. Allowed values: %s." % (value, field, ", ".join(allowed)),
                   target=field)

    def project(self, ctx, name=None):
        name = ctx.p["p"] if name is None else name
        proj = self.data["projects"].get(name)
        if proj is None:
            raise _err("ProjectNotFound", "The project with name '%s' was not found." % name)
        return proj

    def api_version(self, ctx):
        return ctx.q["api-version"]

    def url(self, ctx, path, **query):
        q = {"api-version": self.api_version(ctx)}
        q.update(query)
        return "%s/language%s?%s" % (ctx.req.base_url, path, urlencode(q))

    @staticmethod
    def ppath(project):
        return AP + "/" + quote(project, safe="")

    def accepted(self, ctx, path):
        url = self.url(ctx, path)
        headers = [("Operation-Location", url), ("apim-request-id", self.request_id())]
        if self.cfg.azure_location_header:
            headers.append(("Location", url))
        if self.cfg.azure_poll_retry_after is not None:
            headers.append(("Retry-After", "%d" % self.cfg.azure_poll_retry_after))
        return Response(202, b"", headers)

    def status_reply(self, job):
        """A status monitor's answer; Retry-After while the job runs, if asked for."""
        headers = ()
        if self.cfg.azure_poll_retry_after is not None and job["status"] not in TERMINAL:
            headers = [("Retry-After", "%d" % self.cfg.azure_poll_retry_after)]
        return self.ok(job, headers=headers)

    def paged(self, ctx, items):
        q = ctx.q
        try:
            top = int(q["top"]) if "top" in q else None
            skip = int(q.get("skip", 0))
            size = int(q.get("maxpagesize", self.cfg.azure_page_size))
        except ValueError:
            raise _arg("top, skip and maxpagesize must be integers.")
        if skip < 0 or size < 1 or (top is not None and top < 0):
            raise _arg("top and skip must not be negative and maxpagesize must be positive.")
        rest = items[skip:] if top is None else items[skip:skip + top]
        page = rest[:size]
        next_link = None
        if len(rest) > len(page):
            query = {k: v for k, v in q.items() if k not in ("top", "skip", "maxpagesize")}
            if top is not None:
                query["top"] = top - len(page)
            query["skip"] = skip + len(page)
            query["maxpagesize"] = size
            next_link = "%s%s?%s" % (ctx.req.base_url, ctx.req.path, urlencode(query))
        return self.ok({"value": page, "nextLink": next_link})

    def new_job(self, ctx, kind, project, **fields):
        now = ctx.now
        date = int(now // 86400)
        ticks = (719162 + date) * 864000000000   # .NET ticks of 00:00 UTC that day
        job_id = "%s_%d" % (self.app.uuid(), ticks)
        job = {"jobId": job_id, "kind": kind, "project": project, "createdAt": now, "updatedAt": now,
               "expiresAt": now + JOB_TTL, "status": "notStarted", "errors": [], "warnings": []}
        job.update(fields)
        if kind != "train":
            job["endAt"] = now + SIMPLE_JOB_SECONDS[kind]
        self.data["jobs"][job_id] = job
        self.data["active"][job_id] = True
        return job

    def job(self, ctx, kind, project=None, **match):
        job = self.data["jobs"].get(ctx.p["job"])
        if (job is None or job["kind"] != kind or (project is not None and job["project"] != project)
                or any(job.get(k) != v for k, v in match.items()) or ctx.now >= job["expiresAt"]):
            raise _err("OperationNotFound", "The job with id '%s' was not found." % ctx.p["job"])
        return job

    def render_job(self, job):
        out = {"jobId": job["jobId"], "createdDateTime": iso_z(job["createdAt"]),
               "lastUpdatedDateTime": iso_z(job["updatedAt"]),
               "expirationDateTime": iso_z(job["expiresAt"]), "status": job["status"]}
        if job["warnings"]:
            out["warnings"] = job["warnings"]
        if job["errors"]:
            out["errors"] = job["errors"]
        return out

    def read_document(self, container, location):
        root = os.path.realpath(self.cfg.data_dir)
        path = os.path.realpath(os.path.join(root, container, location))
        if path.startswith(root + os.sep) and os.path.isfile(path):
            try:
                with open(path, encoding="utf-8", errors="replace") as f:
                    return f.read(), True
            except OSError:
                pass
        return os.path.splitext(location)[0].replace("_", " ").replace("-", " "), False

    # --- projects ----------------------------------------------------------------------
    def render_project(self, proj):
        m = proj["meta"]
        out = {"createdDateTime": iso_z(proj["createdAt"]), "lastModifiedDateTime": iso_z(proj["modifiedAt"])}
        if proj.get("trainedAt"):
            out["lastTrainedDateTime"] = iso_z(proj["trainedAt"])
        if proj.get("deployedAt"):
            out["lastDeployedDateTime"] = iso_z(proj["deployedAt"])
        for k in ("projectKind", "storageInputContainerName", "settings", "projectName", "multilingual",
                  "description", "language"):
            if k in m:
                out[k] = m[k]
        return out

    def project_options(self, body, name, existing=None, async_language=False):
        """Validated CreateProjectOptions; existing: current metadata for a merge patch."""
        if not isinstance(body, dict):
            raise _arg("The project metadata must be an object.")
        meta = dict(existing or {})
        for k, v in body.items():
            if v is None:
                meta.pop(k, None)
            else:
                meta[k] = v
        for field in ("projectKind", "storageInputContainerName", "projectName", "language"):
            if field not in meta:
                raise _arg("The %s field is required." % field, target=field)
        if meta["projectName"] != name:
            raise _arg("The projectName in the body must match the project name in the URL.", target="projectName")
        meta["projectKind"] = self.enum(meta["projectKind"], KINDS, "projectKind", True)
        if existing and existing["projectKind"] != meta["projectKind"]:
            raise _arg("The projectKind of an existing project cannot change.", target="projectKind")
        for field in ("storageInputContainerName", "language", "description"):
            if field in meta and not isinstance(meta[field], str):
                raise _arg("The %s field must be a string." % field, target=field)
        if "multilingual" in meta and not isinstance(meta["multilingual"], bool):
            raise _arg("The multilingual field must be a boolean.", target="multilingual")
        settings = meta.get("settings")
        if settings is not None:
            th = settings.get("confidenceThreshold") if isinstance(settings, dict) else None
            if not isinstance(settings, dict) or (th is not None and not (
                    isinstance(th, (int, float)) and not isinstance(th, bool) and 0 <= th <= 1)):
                raise _arg("settings.confidenceThreshold must be a number from 0 to 1.", target="settings")
        if not async_language and meta["language"].lower() not in LANGUAGE_CODES:
            raise _arg("Language code '%s' is not supported." % meta["language"], target="language")
        return meta

    def list_projects(self, ctx):
        items = sorted(self.data["projects"].values(), key=lambda p: p["createdAt"])
        return self.paged(ctx, [self.render_project(p) for p in items])

    def get_project(self, ctx):
        return self.ok(self.render_project(self.project(ctx)))

    def create_project(self, ctx):
        name = ctx.p["p"]
        if not NAME.match(name) or name == "global":
            raise _arg("Project names are 1-50 characters of letters, digits, space, _ . and -.",
                       target="projectName")
        if "merge-patch+json" not in ctx.req.headers.get("content-type", ""):
            raise _err("InvalidRequest", "Content-Type must be application/merge-patch+json.")
        proj = self.data["projects"].get(name)
        meta = self.project_options(ctx.body_object(), name, proj["meta"] if proj else None)
        if proj is None:
            if len(self.data["projects"]) >= MAX_PROJECTS:
                raise _err("QuotaExceeded", "The resource already has %d projects." % MAX_PROJECTS)
            proj = {"meta": meta, "assets": None, "createdAt": ctx.now, "modifiedAt": ctx.now}
            self.data["projects"][name] = proj
            return self.ok(self.render_project(proj), 201)
        proj["meta"] = meta
        proj["modifiedAt"] = ctx.now
        return self.ok(self.render_project(proj), 200)

    def delete_project(self, ctx):
        self.project(ctx)
        job = self.new_job(ctx, "delete", ctx.p["p"])
        return self.accepted(ctx, AP + "/global/deletion-jobs/" + job["jobId"])

    def get_deletion_job(self, ctx):
        return self.status_reply(self.render_job(self.job(ctx, "delete")))

    def list_languages(self, ctx):
        kind = ctx.q.get("projectKind")
        if kind is not None:
            self.enum(kind, KINDS, "projectKind", True)
        return self.paged(ctx, [{"languageName": n, "languageCode": c} for c, n in LANGUAGES])

    def list_config_versions(self, ctx):
        kind = ctx.q.get("projectKind")
        if kind is not None:
            self.enum(kind, KINDS, "projectKind", True)
        return self.paged(ctx, [{"trainingConfigVersion": v, "modelExpirationDate": iso_date(self.config_expiry)}
                                for v in CONFIG_VERSIONS])

    # --- import / export ----------------------------------------------------------------
    def assets(self, assets, kind):
        if assets is None:
            return None
        if not isinstance(assets, dict):
            raise _arg("assets must be an object.", target="assets")
        if "projectKind" in assets and self.enum(assets["projectKind"], KINDS, "assets.projectKind", True) != kind:
            raise _arg("assets.projectKind must match metadata.projectKind.", target="assets.projectKind")
        label_key = "entities" if kind == "CustomEntityRecognition" else "classes"
        labels = assets.get(label_key, [])
        if not isinstance(labels, list) or not all(isinstance(c, dict) and isinstance(c.get("category"), str)
                                                   for c in labels):
            raise _arg("assets.%s must be a list of {category}." % label_key, target="assets." + label_key)
        cats = [c["category"] for c in labels]
        known = set(cats)
        docs = []
        for i, d in enumerate(assets.get("documents", [])):
            where = "assets.documents[%d]" % i
            if not isinstance(d, dict) or not isinstance(d.get("location"), str) or not d["location"]:
                raise _arg("%s.location is required." % where, target=where)
            doc = {"location": d["location"], "language": d.get("language"),
                   "dataset": self.enum(d.get("dataset", "Train"), ("Train", "Test"), where + ".dataset", True)}
            if kind == "CustomSingleLabelClassification":
                c = d.get("class")
                if c is not None and (not isinstance(c, dict) or c.get("category") not in known):
                    raise _arg("%s.class must name a declared class." % where, target=where)
                doc["classes"] = [c["category"]] if c else []
            elif kind == "CustomMultiLabelClassification":
                cs = d.get("classes", [])
                if not isinstance(cs, list) or any(not isinstance(c, dict) or c.get("category") not in known
                                                   for c in cs):
                    raise _arg("%s.classes must name declared classes." % where, target=where)
                doc["classes"] = [c["category"] for c in cs]
            else:
                ents = []
                for region in d.get("entities", []):
                    for lab in (region or {}).get("labels", []):
                        if (not isinstance(lab, dict) or lab.get("category") not in known
                                or not isinstance(lab.get("offset"), int) or not isinstance(lab.get("length"), int)):
                            raise _arg("%s.entities labels need a declared category, offset and length." % where,
                                       target=where)
                        ents.append([lab["category"], lab["offset"], lab["length"]])
                doc["entities"] = ents
            docs.append(doc)
        return {"labels": cats, "documents": docs}

    def import_project(self, ctx):
        name = ctx.p["p"]
        if not NAME.match(name) or name == "global":
            raise _arg("Project names are 1-50 characters of letters, digits, space, _ . and -.")
        body = ctx.body_object()
        if not isinstance(body.get("projectFileVersion"), str):
            raise _arg("The projectFileVersion field is required.", target="projectFileVersion")
        if body.get("stringIndexType") != "Utf16CodeUnit":
            raise _arg("stringIndexType must be Utf16CodeUnit.", target="stringIndexType")
        meta = self.project_options(body.get("metadata"), name, async_language=True)
        assets = self.assets(body.get("assets"), meta["projectKind"])
        job = self.new_job(ctx, "import", name, payload={"meta": meta, "assets": assets})
        return self.accepted(ctx, self.ppath(name) + "/import/jobs/" + job["jobId"])

    def get_import_job(self, ctx):
        return self.status_reply(self.render_job(self.job(ctx, "import", ctx.p["p"])))

    def export_project(self, ctx):
        self.project(ctx)
        if ctx.q.get("stringIndexType") != "Utf16CodeUnit":
            raise _arg("The stringIndexType query parameter must be Utf16CodeUnit.", target="stringIndexType")
        label = ctx.q.get("trainedModelLabel")
        if label is not None and label not in self.data["models"].get(ctx.p["p"], {}):
            raise _err("NotFound", "The trained model '%s' was not found." % label)
        job = self.new_job(ctx, "export", ctx.p["p"])
        return self.accepted(ctx, self.ppath(ctx.p["p"]) + "/export/jobs/" + job["jobId"])

    def get_export_job(self, ctx):
        job = self.job(ctx, "export", ctx.p["p"])
        out = self.render_job(job)
        if job["status"] == "succeeded":
            out["resultUrl"] = self.url(ctx, self.ppath(job["project"]) + "/export/jobs/%s/result" % job["jobId"])
        return self.status_reply(out)

    def get_export_result(self, ctx):
        job = self.job(ctx, "export", ctx.p["p"])
        if job["status"] != "succeeded":
            raise _err("NotFound", "The export job has no result yet.")
        return self.ok(job["result"])

    def exported(self, proj):
        meta = proj["meta"]
        kind = meta["projectKind"]
        out = {"projectFileVersion": CONFIG_VERSION, "stringIndexType": "Utf16CodeUnit", "metadata": dict(meta)}
        a = proj["assets"]
        if a is not None:
            label_key = "entities" if kind == "CustomEntityRecognition" else "classes"
            docs = []
            for d in a["documents"]:
                doc = {"location": d["location"], "language": d["language"] or meta["language"],
                       "dataset": d["dataset"]}
                if kind == "CustomSingleLabelClassification" and d["classes"]:
                    doc["class"] = {"category": d["classes"][0]}
                elif kind == "CustomMultiLabelClassification":
                    doc["classes"] = [{"category": c} for c in d["classes"]]
                elif kind == "CustomEntityRecognition":
                    doc["entities"] = [{"regionOffset": 0, "regionLength": max([o + n for _, o, n in d["entities"]],
                                                                               default=0),
                                        "labels": [{"category": c, "offset": o, "length": n}
                                                   for c, o, n in d["entities"]]}]
                docs.append(doc)
            out["assets"] = {"projectKind": kind, label_key: [{"category": c} for c in a["labels"]],
                             "documents": docs}
        return out

    # --- training -------------------------------------------------------------------------
    def train(self, ctx):
        proj = self.project(ctx)
        name = ctx.p["p"]
        body = ctx.body_object()
        label = body.get("modelLabel")
        if not isinstance(label, str) or not NAME.match(label):
            raise _arg("modelLabel is required: 1-50 characters of letters, digits, space, _ . and -.",
                       target="modelLabel")
        config = body.get("trainingConfigVersion")
        if config == "latest":
            config = CONFIG_VERSIONS[-1]
        if config not in CONFIG_VERSIONS:
            raise _arg("trainingConfigVersion '%s' is not supported." % config, target="trainingConfigVersion")
        evaluation = self.evaluation_options(body.get("evaluationOptions"))
        docs = (proj["assets"] or {}).get("documents", [])
        labelled = [d for d in docs if _labelled(d)]
        if len(labelled) < MIN_DOCUMENTS:
            raise _err("InvalidRequest", "The project needs at least %d labeled documents to train; it has %d."
                       % (MIN_DOCUMENTS, len(labelled)))
        if evaluation["kind"] == "manual" and not any(d["dataset"] == "Test" for d in labelled):
            raise _err("InvalidRequest", "Manual evaluation needs documents in the Test dataset.")
        if any(j["kind"] == "train" and j["project"] == name and j["status"] not in TERMINAL
               for j in self.data["jobs"].values()):
            raise _err("Conflict", "A training job is already running for project '%s'." % name)
        models = self.data["models"].get(name, {})
        if label not in models and len(models) >= MAX_MODELS:
            raise _err("QuotaExceeded", "The project already has %d trained models." % MAX_MODELS)
        t0 = ctx.now
        fail = "fail" in name.lower() or "fail" in label.lower()
        job = self.new_job(ctx, "train", name, label=label, config=config, evaluation=evaluation,
                           trainStart=t0 + TRAIN_QUEUE, trainEnd=t0 + TRAIN_QUEUE + TRAIN_SECONDS,
                           evalEnd=t0 + TRAIN_QUEUE + TRAIN_SECONDS + EVAL_SECONDS,
                           endAt=t0 + TRAIN_QUEUE + TRAIN_SECONDS + EVAL_SECONDS + TRAIN_WRAPUP,
                           failAt=t0 + TRAIN_QUEUE + TRAIN_SECONDS / 2 if fail else None, cancelAt=None)
        return self.accepted(ctx, self.ppath(name) + "/train/jobs/" + job["jobId"])

    def evaluation_options(self, ev):
        if ev is None:
            return {"kind": "percentage", "trainingSplitPercentage": 80, "testingSplitPercentage": 20}
        if not isinstance(ev, dict):
            raise _arg("evaluationOptions must be an object.", target="evaluationOptions")
        kind = self.enum(ev.get("kind", "percentage"), ("percentage", "manual"), "evaluationOptions.kind")
        if kind == "manual":
            return {"kind": "manual"}
        tr, te = ev.get("trainingSplitPercentage", 80), ev.get("testingSplitPercentage", 20)
        if not all(isinstance(x, int) and 0 < x < 100 for x in (tr, te)) or tr + te != 100:
            raise _arg("trainingSplitPercentage and testingSplitPercentage must add up to 100.",
                       target="evaluationOptions")
        return {"kind": "percentage", "trainingSplitPercentage": tr, "testingSplitPercentage": te}

    def render_training(self, job, now):
        out = self.render_job(job)
        status = job["status"]
        at = now
        if status in ("cancelling", "cancelled"):
            at = job["cancelAt"]
        elif status == "failed":
            at = job["failAt"]
        at = min(at, job["endAt"])

        def sub(start, end):
            pct = int(max(0, min(1, (at - start) / (end - start))) * 100)
            s = {"percentComplete": pct}
            if at >= start:
                s["startDateTime"] = iso_z7(start)
            if at >= end:
                s["endDateTime"] = iso_z7(end)
                s["status"] = "succeeded"
            elif at < start:
                s["status"] = "notStarted"
            elif status in ("cancelling", "cancelled", "failed"):
                s["status"] = status
                if status != "cancelling":
                    s["endDateTime"] = iso_z7(at)
            else:
                s["status"] = "running"
            return s

        training = sub(job["trainStart"], job["trainEnd"])
        evaluation = sub(job["trainEnd"], job["evalEnd"])
        if status == "failed":
            evaluation = {"percentComplete": 0, "status": "notStarted"}
        out["result"] = {"modelLabel": job["label"], "trainingConfigVersion": job["config"],
                         "estimatedEndDateTime": iso_z7(job["endAt"]), "trainingStatus": training,
                         "evaluationStatus": evaluation}
        return out

    def list_training_jobs(self, ctx):
        self.project(ctx)
        jobs = sorted((j for j in self.data["jobs"].values()
                       if j["kind"] == "train" and j["project"] == ctx.p["p"] and ctx.now < j["expiresAt"]),
                      key=lambda j: j["createdAt"])
        return self.paged(ctx, [self.render_training(j, ctx.now) for j in jobs])

    def get_training_job(self, ctx):
        self.project(ctx)
        return self.status_reply(self.render_training(self.job(ctx, "train", ctx.p["p"]), ctx.now))

    def cancel_training(self, ctx):
        self.project(ctx)
        job = self.job(ctx, "train", ctx.p["p"])
        if job["status"] in TERMINAL or job["status"] == "cancelling":
            raise _err("Conflict", "The training job is %s and cannot be cancelled." % job["status"])
        job["status"] = "cancelling"
        job["cancelAt"] = ctx.now
        job["updatedAt"] = ctx.now
        return self.accepted(ctx, self.ppath(ctx.p["p"]) + "/train/jobs/" + job["jobId"])

    # --- models -------------------------------------------------------------------------------
    def model(self, ctx):
        self.project(ctx)
        m = self.data["models"].get(ctx.p["p"], {}).get(ctx.p["m"])
        if m is None:
            raise _err("NotFound", "The trained model '%s' was not found." % ctx.p["m"])
        return m

    @staticmethod
    def render_model(m):
        return {"label": m["label"], "modelId": m["modelId"], "lastTrainedDateTime": iso_z(m["trainedAt"]),
                "lastTrainingDurationInSeconds": m["duration"], "modelExpirationDate": iso_date(m["expiresAt"]),
                "modelTrainingConfigVersion": m["config"], "hasSnapshot": m["hasSnapshot"]}

    def list_models(self, ctx):
        self.project(ctx)
        models = sorted(self.data["models"].get(ctx.p["p"], {}).values(), key=lambda m: m["trainedAt"])
        return self.paged(ctx, [self.render_model(m) for m in models])

    def get_model(self, ctx):
        return self.ok(self.render_model(self.model(ctx)))

    def delete_model(self, ctx):
        m = self.model(ctx)
        used = [d["name"] for d in self.data["deployments"].get(ctx.p["p"], {}).values() if d["label"] == m["label"]]
        if used:
            raise _err("Conflict", "The model '%s' is assigned to deployment '%s'." % (m["label"], used[0]))
        del self.data["models"][ctx.p["p"]][m["label"]]
        return Response(204, b"", [("apim-request-id", self.request_id())])

    def load_snapshot(self, ctx):
        m = self.model(ctx)
        job = self.new_job(ctx, "snapshot", ctx.p["p"], label=m["label"])
        return self.accepted(ctx, self.ppath(ctx.p["p"]) + "/models/%s/load-snapshot/jobs/%s"
                             % (quote(m["label"], safe=""), job["jobId"]))

    def get_snapshot_job(self, ctx):
        self.project(ctx)
        return self.status_reply(self.render_job(self.job(ctx, "snapshot", ctx.p["p"], label=ctx.p["m"])))

    def eval_summary(self, ctx):
        m = self.model(ctx)
        kind = self.data["projects"][ctx.p["p"]]["meta"]["projectKind"]
        key = kind[0].lower() + kind[1:] + "Evaluation"
        return self.ok({"projectKind": kind, key: m["evaluation"]["summary"],
                        "evaluationOptions": m["evaluation"]["options"]})

    def eval_results(self, ctx):
        m = self.model(ctx)
        if ctx.q.get("stringIndexType") not in ("Utf16CodeUnit", "TextElements_v8", "UnicodeCodePoint"):
            raise _arg("The stringIndexType query parameter is required.", target="stringIndexType")
        return self.paged(ctx, m["evaluation"]["documents"])

    # --- deployments ---------------------------------------------------------------------------
    @staticmethod
    def render_deployment(d):
        return {"deploymentName": d["name"], "modelId": d["modelId"], "lastTrainedDateTime": iso_z(d["trainedAt"]),
                "lastDeployedDateTime": iso_z(d["deployedAt"]), "deploymentExpirationDate": iso_date(d["expiresAt"]),
                "modelTrainingConfigVersion": d["config"]}

    def deployment(self, ctx, name=None):
        self.project(ctx)
        name = ctx.p["d"] if name is None else name
        d = self.data["deployments"].get(ctx.p["p"], {}).get(name)
        if d is None:
            raise _err("NotFound", "The deployment '%s' was not found." % name)
        return d

    def list_deployments(self, ctx):
        self.project(ctx)
        deps = sorted(self.data["deployments"].get(ctx.p["p"], {}).values(), key=lambda d: d["name"])
        return self.paged(ctx, [self.render_deployment(d) for d in deps])

    def get_deployment(self, ctx):
        return self.ok(self.render_deployment(self.deployment(ctx)))

    def deploy(self, ctx):
        self.project(ctx)
        name = ctx.p["d"]
        if not NAME.match(name) or name == "swap":
            raise _arg("Deployment names are 1-50 characters of letters, digits, space, _ . and -.")
        label = ctx.body_object().get("trainedModelLabel")
        if not isinstance(label, str):
            raise _arg("The trainedModelLabel field is required.", target="trainedModelLabel")
        if label not in self.data["models"].get(ctx.p["p"], {}):
            raise _err("NotFound", "The trained model '%s' was not found." % label)
        deps = self.data["deployments"].get(ctx.p["p"], {})
        if name not in deps and len(deps) >= MAX_DEPLOYMENTS:
            raise _err("QuotaExceeded", "The project already has %d deployments." % MAX_DEPLOYMENTS)
        job = self.new_job(ctx, "deploy", ctx.p["p"], deployment=name, label=label)
        return self.accepted(ctx, self.ppath(ctx.p["p"]) + "/deployments/%s/jobs/%s" % (quote(name, safe=""),
                                                                                        job["jobId"]))

    def undeploy(self, ctx):
        d = self.deployment(ctx)
        job = self.new_job(ctx, "undeploy", ctx.p["p"], deployment=d["name"])
        return self.accepted(ctx, self.ppath(ctx.p["p"]) + "/deployments/%s/jobs/%s" % (quote(d["name"], safe=""),
                                                                                        job["jobId"]))

    def get_deployment_job(self, ctx):
        self.project(ctx)
        job = self.data["jobs"].get(ctx.p["job"])
        kind = job["kind"] if job and job["kind"] in ("deploy", "undeploy") else "deploy"
        return self.status_reply(self.render_job(self.job(ctx, kind, ctx.p["p"], deployment=ctx.p["d"])))

    def swap(self, ctx):
        self.project(ctx)
        body = ctx.body_object()
        a, b = body.get("firstDeploymentName"), body.get("secondDeploymentName")
        if not isinstance(a, str) or not isinstance(b, str):
            raise _arg("firstDeploymentName and secondDeploymentName are required.")
        if a == b:
            raise _arg("A deployment cannot be swapped with itself.")
        self.deployment(ctx, a)
        self.deployment(ctx, b)
        job = self.new_job(ctx, "swap", ctx.p["p"], pair=[a, b])
        return self.accepted(ctx, self.ppath(ctx.p["p"]) + "/deployments/swap/jobs/" + job["jobId"])

    def get_swap_job(self, ctx):
        self.project(ctx)
        return self.status_reply(self.render_job(self.job(ctx, "swap", ctx.p["p"])))

    # --- runtime ------------------------------------------------------------------------------------
    def submit_job(self, ctx):
        body = ctx.body_object()
        docs = (body.get("analysisInput") or {}).get("documents") if isinstance(body.get("analysisInput"), dict) else None
        if not isinstance(docs, list) or not docs:
            raise _err("InvalidRequest", "Invalid Request.", inner=("MissingInputDocuments", "Missing input documents."))
        if len(docs) > MAX_RUNTIME_DOCS:
            raise _err("InvalidRequest", "Invalid Request.", inner=(
                "InvalidDocumentBatch", "Batch request contains too many records. Max %d records are permitted."
                % MAX_RUNTIME_DOCS))
        ids = [d.get("id") if isinstance(d, dict) else None for d in docs]
        if any(not isinstance(i, str) or not i for i in ids):
            raise _err("InvalidRequest", "Invalid Request.", inner=("InvalidDocument", "Every document needs an id."))
        if len(set(ids)) != len(ids):
            raise _err("InvalidRequest", "Invalid Request.", inner=(
                "InvalidDocument", "Request contains duplicated Ids. Make sure each document has a unique Id."))
        if sum(len(str(d.get("text", ""))) for d in docs) > MAX_RUNTIME_CHARS:
            raise _err("InvalidRequest", "Invalid Request.", inner=(
                "InvalidDocumentBatch", "Request Payload sent is too large to be processed. Limit request "
                "size to: %d characters." % MAX_RUNTIME_CHARS))
        tasks = body.get("tasks")
        if not isinstance(tasks, list) or not tasks:
            raise _err("InvalidRequest", "Invalid Request.", inner=("InvalidRequest", "Missing tasks."))
        prepared = []
        for i, t in enumerate(tasks):
            where = "#/tasks/%d" % i
            if not isinstance(t, dict) or t.get("kind") not in KINDS:
                raise _arg("Task kind must be one of %s." % ", ".join(KINDS), target=where)
            params = t.get("parameters") or {}
            if not isinstance(params.get("projectName"), str) or not isinstance(params.get("deploymentName"), str):
                raise _arg("Custom tasks need parameters.projectName and parameters.deploymentName.", target=where)
            sit = params.get("stringIndexType", "TextElements_v8")
            if sit not in ("TextElements_v8", "UnicodeCodePoint", "Utf16CodeUnit"):
                raise _arg("Invalid stringIndexType.", target=where)
            prepared.append({"kind": t["kind"], "taskName": t.get("taskName"), "project": params["projectName"],
                             "deployment": params["deploymentName"], "stringIndexType": sit})
        job_id = self.app.uuid()
        now = ctx.now
        self.data["runtime"][job_id] = {
            "jobId": job_id, "displayName": body.get("displayName"), "createdAt": now, "updatedAt": now,
            "expiresAt": now + RUNTIME_TTL, "endAt": now + RUNTIME_SECONDS, "status": "notStarted",
            "documents": [{"id": d["id"], "text": str(d.get("text", "")), "language": d.get("language")}
                          for d in docs], "tasks": prepared, "items": [], "errors": [], "cancelAt": None}
        self.data["active"]["rt:" + job_id] = True
        return self.accepted(ctx, "/analyze-text/jobs/" + job_id)

    def runtime_job(self, ctx):
        job = self.data["runtime"].get(ctx.p["job"])
        if job is None or ctx.now >= job["expiresAt"]:
            raise _err("NotFound", "The job with id '%s' was not found." % ctx.p["job"])
        return job

    def get_runtime_job(self, ctx):
        job = self.runtime_job(ctx)
        show = ctx.q.get("showStats") == "true"
        out = {"jobId": job["jobId"], "createdDateTime": iso_z(job["createdAt"]),
               "lastUpdatedDateTime": iso_z(job["updatedAt"]), "expirationDateTime": iso_z(job["expiresAt"]),
               "status": job["status"], "errors": job["errors"]}
        if job["displayName"] is not None:
            out["displayName"] = job["displayName"]
        items = job["items"]
        done = [i for i in items if i["status"] == "succeeded"]
        failed = [i for i in items if i["status"] == "failed"]
        out["tasks"] = {"completed": len(done), "failed": len(failed),
                        "inProgress": 0 if job["status"] in TERMINAL else len(job["tasks"]),
                        "total": len(job["tasks"]), "items": [self.render_item(i, show) for i in items]}
        if show and job["status"] in TERMINAL:
            valid = sum(1 for d in job["documents"] if d["text"])
            out["statistics"] = {"documentsCount": len(job["documents"]), "validDocumentsCount": valid,
                                 "erroneousDocumentsCount": len(job["documents"]) - valid,
                                 "transactionsCount": sum(max(1, math.ceil(len(d["text"]) / 1000))
                                                          for d in job["documents"] if d["text"])}
        return self.status_reply(out)

    @staticmethod
    def render_item(item, show):
        out = {k: v for k, v in item.items() if k != "results"}
        if "results" in item:
            res = dict(item["results"])
            if not show:
                res["documents"] = [{k: v for k, v in d.items() if k != "statistics"} for d in res["documents"]]
            else:
                res["statistics"] = {"documentsCount": len(res["documents"]) + len(res["errors"]),
                                     "validDocumentsCount": len(res["documents"]),
                                     "erroneousDocumentsCount": len(res["errors"]),
                                     "transactionsCount": len(res["documents"])}
            out["results"] = res
        return out

    def cancel_runtime_job(self, ctx):
        job = self.runtime_job(ctx)
        if job["status"] in TERMINAL or job["status"] == "cancelling":
            raise _err("Conflict", "The job is %s and cannot be cancelled." % job["status"])
        job["status"] = "cancelling"
        job["cancelAt"] = ctx.now
        job["updatedAt"] = ctx.now
        return self.accepted(ctx, "/analyze-text/jobs/" + job["jobId"])

    def run_task(self, task, job, at):
        """One runtime task's LRO result item, computed when the job ends."""
        item = {"kind": task["kind"] + "LROResults", "lastUpdateDateTime": iso_z(at)}
        if task["taskName"] is not None:
            item["taskName"] = task["taskName"]
        proj = self.data["projects"].get(task["project"])
        dep = self.data["deployments"].get(task["project"], {}).get(task["deployment"])
        model = self.data["models"].get(task["project"], {}).get(dep["label"]) if dep else None
        if proj is None or model is None or proj["meta"]["projectKind"] != task["kind"]:
            why = ("Project '%s' was not found." % task["project"] if proj is None else
                   "Deployment '%s' was not found in project '%s'." % (task["deployment"], task["project"])
                   if model is None else "Project '%s' is a %s project." % (task["project"],
                                                                            proj["meta"]["projectKind"]))
            item["status"] = "failed"
            job["errors"].append({"code": "InvalidArgument", "message": why,
                                  "target": "#/tasks/items/%d" % len(job["items"])})
            # The runtime spec requires results on every custom task item,
            # and errors, projectName, deploymentName and documents in it.
            item["results"] = {"errors": [], "projectName": task["project"],
                               "deploymentName": task["deployment"], "documents": []}
            return item
        docs, errors = [], []
        threshold = (proj["meta"].get("settings") or {}).get("confidenceThreshold", 0.5)
        for d in job["documents"]:
            if not d["text"].strip():
                errors.append({"id": d["id"], "error": {"code": "InvalidArgument", "message": "Invalid Document in "
                               "request.", "innererror": {"code": "InvalidDocument",
                                                          "message": "Document text is empty."}}})
                continue
            out = {"id": d["id"], "warnings": [],
                   "statistics": {"charactersCount": len(d["text"]), "transactionsCount": 1}}
            if task["kind"] == "CustomEntityRecognition":
                out["entities"] = [
                    {"text": t, "category": c, "offset": _index(d["text"], o, task["stringIndexType"]),
                     "length": _index(d["text"][o:], n, task["stringIndexType"]), "confidenceScore": p}
                    for t, c, o, n, p in textmodel.find_entities(model["phrases"], d["text"], self.cfg.seed)]
            else:
                multi = task["kind"] == "CustomMultiLabelClassification"
                out["class"] = [{"category": c, "confidenceScore": p} for c, p in textmodel.classify(
                    model["classifier"], d["text"], model["labels"], self.cfg.seed, d["text"], multi, threshold)]
            docs.append(out)
        item["status"] = "succeeded"
        item["results"] = {"errors": errors, "projectName": task["project"], "deploymentName": task["deployment"],
                           "documents": docs}
        return item

    # --- lifecycles -------------------------------------------------------------------------------------
    def tick(self, now):
        active = self.data["active"]
        for key in list(active):
            if key.startswith("rt:"):
                job = self.data["runtime"].get(key[3:])
                if job is None or self.tick_runtime(job, now):
                    del active[key]
                continue
            job = self.data["jobs"].get(key)
            if job is None or self.tick_job(job, now):
                del active[key]

    def tick_runtime(self, job, now):
        if job["status"] == "cancelling":
            if now >= job["cancelAt"] + RUNTIME_CANCEL:
                job["status"], job["updatedAt"] = "cancelled", job["cancelAt"] + RUNTIME_CANCEL
                return True
            return False
        start = job["createdAt"] + RUNTIME_QUEUE
        if now >= job["endAt"]:
            at = job["endAt"]
            job["items"] = [self.run_task(t, job, at) for t in job["tasks"]]
            failed = sum(1 for i in job["items"] if i["status"] == "failed")
            job["status"] = ("succeeded" if not failed else "failed" if failed == len(job["items"])
                             else "partiallyCompleted")
            job["updatedAt"] = at
            return True
        if now >= start and job["status"] == "notStarted":
            job["status"], job["updatedAt"] = "running", start
        return False

    def tick_job(self, job, now):
        if job["status"] == "cancelling":
            if now >= job["cancelAt"] + CANCEL_SECONDS:
                job["status"], job["updatedAt"] = "cancelled", job["cancelAt"] + CANCEL_SECONDS
                return True
            return False
        if job["kind"] == "train" and job["failAt"] is not None and now >= job["failAt"]:
            job["status"], job["updatedAt"] = "failed", job["failAt"]
            job["errors"] = [{"code": "InternalServerError", "message": "Training failed for model '%s': the "
                              "training data could not be processed." % job["label"]}]
            return True
        if now >= job["endAt"]:
            job["updatedAt"] = job["endAt"]
            job["status"] = "succeeded"
            getattr(self, "finish_" + job["kind"])(job, job["endAt"])
            return True
        start = job["createdAt"] + (TRAIN_QUEUE if job["kind"] == "train" else NOT_STARTED)
        if now >= start and job["status"] == "notStarted":
            job["status"], job["updatedAt"] = "running", start
        if job["status"] == "running":
            job["updatedAt"] = now
        return False

    def finish_import(self, job, at):
        meta, assets = job["payload"]["meta"], job["payload"]["assets"]
        job.pop("payload")
        name = job["project"]
        if meta["language"].lower() not in LANGUAGE_CODES:
            job["status"] = "failed"
            job["errors"] = [{"code": "InvalidArgument", "message": "Language code '%s' is not supported."
                              % meta["language"], "target": "metadata.language"}]
            return
        proj = self.data["projects"].get(name)
        if proj is None:
            self.data["projects"][name] = {"meta": meta, "assets": assets, "createdAt": at, "modifiedAt": at}
        else:
            proj.update(meta=meta, assets=assets, modifiedAt=at)

    def finish_export(self, job, at):
        proj = self.data["projects"].get(job["project"])
        if proj is None:
            job["status"] = "failed"
            job["errors"] = [{"code": "ProjectNotFound", "message": "The project was deleted."}]
            return
        job["result"] = self.exported(proj)

    def finish_snapshot(self, job, at):
        m = self.data["models"].get(job["project"], {}).get(job["label"])
        if m is not None:
            m["hasSnapshot"] = True

    def finish_delete(self, job, at):
        name = job["project"]
        self.data["projects"].pop(name, None)
        self.data["models"].pop(name, None)
        self.data["deployments"].pop(name, None)
        for jid in [j for j, v in self.data["jobs"].items() if v["project"] == name and v["kind"] != "delete"]:
            del self.data["jobs"][jid]
            self.data["active"].pop(jid, None)

    def finish_deploy(self, job, at):
        proj = self.data["projects"].get(job["project"])
        m = self.data["models"].get(job["project"], {}).get(job["label"])
        if proj is None or m is None:
            job["status"] = "failed"
            job["errors"] = [{"code": "NotFound", "message": "The trained model '%s' was not found." % job["label"]}]
            return
        self.data["deployments"].setdefault(job["project"], {})[job["deployment"]] = {
            "name": job["deployment"], "label": m["label"], "modelId": m["modelId"], "trainedAt": m["trainedAt"],
            "deployedAt": at, "expiresAt": m["expiresAt"] + 365 * 86400, "config": m["config"]}
        proj["deployedAt"] = at

    def finish_undeploy(self, job, at):
        self.data["deployments"].get(job["project"], {}).pop(job["deployment"], None)

    def finish_swap(self, job, at):
        deps = self.data["deployments"].get(job["project"], {})
        a, b = job["pair"]
        if a in deps and b in deps:
            for k in ("label", "modelId", "trainedAt", "config", "expiresAt"):
                deps[a][k], deps[b][k] = deps[b][k], deps[a][k]
            deps[a]["deployedAt"] = deps[b]["deployedAt"] = at

    def finish_train(self, job, at):
        proj = self.data["projects"].get(job["project"])
        if proj is None:
            job["status"] = "failed"
            job["errors"] = [{"code": "ProjectNotFound", "message": "The project was deleted."}]
            return
        meta, assets = proj["meta"], proj["assets"] or {"labels": [], "documents": []}
        container = meta["storageInputContainerName"]
        seed = self.cfg.seed
        kind = meta["projectKind"]
        ev = job["evaluation"]
        train_docs, test_docs = [], []
        for d in assets["documents"]:
            if not _labelled(d):
                continue
            if ev["kind"] == "manual":
                test = d["dataset"] == "Test"
            else:
                test = stable_unit(seed, job["project"], d["location"]) < ev["testingSplitPercentage"] / 100
            (test_docs if test else train_docs).append(d)
        if not test_docs and len(train_docs) > 1:
            test_docs.append(train_docs.pop())
        texts = {d["location"]: self.read_document(container, d["location"]) for d in train_docs + test_docs}
        classifier = textmodel.train([(texts[d["location"]][0], d.get("classes", [])) for d in train_docs])
        table = textmodel.phrases([(texts[d["location"]][0], [tuple(e) for e in d.get("entities", [])])
                                   for d in train_docs if texts[d["location"]][1]])
        evaluation = self.evaluate(kind, assets["labels"], classifier, table, test_docs, texts, job)
        evaluation["options"] = ev
        label = job["label"]
        models = self.data["models"].setdefault(job["project"], {})
        models[label] = {
            "label": label, "modelId": "%s-%s-%s" % (label, _compact(at), self.app.uuid().replace("-", "")),
            "trainedAt": at, "duration": int(job["endAt"] - job["trainStart"]), "expiresAt": self.config_expiry,
            "config": job["config"], "hasSnapshot": True, "labels": assets["labels"],
            "classifier": classifier, "phrases": table, "evaluation": evaluation}
        proj["trainedAt"] = at

    def evaluate(self, kind, labels, classifier, table, test_docs, texts, job):
        seed = self.cfg.seed
        expected, predicted, docs = [], [], []
        for d in test_docs:
            text, real = texts[d["location"]]
            key = job["jobId"] + d["location"]
            if kind == "CustomEntityRecognition":
                exp = {(c, o, n) for c, o, n in d["entities"]}
                if real:
                    pred = {(c, o, n) for _, c, o, n, _ in textmodel.find_entities(table, text, seed)}
                else:
                    # No document text to read: recognise most labelled spans.
                    pred = {e for e in exp if stable_unit(seed, key, *e) < 0.85}
                expected.append({c for c, _, _ in exp})
                predicted.append({c for c, _, _ in pred})
                docs.append({"projectKind": kind, "location": d["location"], "language": d["language"] or "en",
                             "customEntityRecognitionResult": {"entities": [{
                                 "expectedEntities": [{"category": c, "offset": o, "length": n} for c, o, n in sorted(exp)],
                                 "predictedEntities": [{"category": c, "offset": o, "length": n}
                                                       for c, o, n in sorted(pred)],
                                 "regionOffset": 0, "regionLength": len(text)}]}})
                continue
            multi = kind == "CustomMultiLabelClassification"
            got = [c for c, _ in textmodel.classify(classifier, text, labels, seed, key, multi)]
            expected.append(set(d["classes"]))
            predicted.append(set(got))
            if multi:
                docs.append({"projectKind": kind, "location": d["location"], "language": d["language"] or "en",
                             "customMultiLabelClassificationResult": {"expectedClasses": d["classes"],
                                                                      "predictedClasses": got}})
            else:
                docs.append({"projectKind": kind, "location": d["location"], "language": d["language"] or "en",
                             "customSingleLabelClassificationResult": {"expectedClass": d["classes"][0],
                                                                       "predictedClass": got[0] if got else ""}})
        per, avg = textmodel.scores(expected, predicted, labels)
        summary = {("entities" if kind == "CustomEntityRecognition" else "classes"): per}
        summary.update(avg)
        if kind != "CustomMultiLabelClassification":
            summary["confusionMatrix"] = _confusion(expected, predicted)
        return {"summary": summary, "documents": docs}


def _labelled(doc):
    """A classification document needs a class; an NER document counts as
    labelled even where it holds no entity (that is a label too)."""
    return bool(doc.get("classes")) or "entities" in doc


def _confusion(expected, predicted):
    rows = collections.defaultdict(collections.Counter)
    for e, p in zip(expected, predicted):
        for x in e or {"$none"}:
            for y in p or {"$none"}:
                rows[x][y] += 1
    out = {}
    for x, row in rows.items():
        total = sum(row.values())
        out[x] = {y: {"normalizedValue": round(100.0 * n / total, 6), "rawValue": float(n)} for y, n in row.items()}
    return out


def _compact(ts):
    return iso_z(ts).replace("-", "").replace(":", "").rstrip("Z")


def _index(text, n, kind):
    """Length of text[:n] in the requested string index unit."""
    if kind == "Utf16CodeUnit":
        return len(text[:n].encode("utf-16-le")) // 2
    return n
