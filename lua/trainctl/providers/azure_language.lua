-- Azure AI Language: text authoring (custom text classification and
-- custom NER projects) and the runtime analyze-text jobs. Operations as a
-- table; a subscription key or a Microsoft Entra ID client-credentials
-- token (cached, refreshed once on a 401); long-running operations
-- followed through Operation-Location (else Location); lists through
-- nextLink.
--
--   local az = require("trainctl.providers.azure_language").client()
--   local job = az:train("Loans", { model_label = "m1" })
--   job:wait()
local config = require("trainctl.config")
local errors = require("trainctl.errors")
local http = require("trainctl.core.http")
local job = require("trainctl.api.job")
local log = require("trainctl.log")
local ops = require("trainctl.api.ops")
local provider = require("trainctl.api.provider")
local retry = require("trainctl.core.retry")
local url = require("trainctl.core.url")

-- The module and the client class, built from the descriptor below.
local M, Client

local API_VERSION = "2023-04-01"
local DEFAULT_AUTHORITY = "https://login.microsoftonline.com"
local SCOPE = "https://cognitiveservices.azure.com/.default"

local D = ops.define
local with = ops.with
local A = "/language/authoring/analyze-text/projects"
local PAGED = { "top:integer", "skip:integer", "maxpagesize:integer" }
local SIT = { stringIndexType = "Utf16CodeUnit" }

local OPERATIONS = {
  D { "list_projects", "GET", A, query = PAGED, items = "value", summary = "projects (nextLink paging)" },
  D { "get_project", "GET", A .. "/{projectName}", summary = "a project's metadata" },
  D { "create_project", "PATCH", A .. "/{projectName}", idempotent = true, path_in_body = { "projectName" },
    body = { "language!", "projectKind!", "storageInputContainerName!", "description",
      "multilingual:boolean", "settings:object" },
    docs = { projectKind = "CustomSingleLabelClassification, CustomMultiLabelClassification, "
      .. "CustomEntityRecognition" },
    values = { projectKind = { "CustomSingleLabelClassification", "CustomMultiLabelClassification",
      "CustomEntityRecognition" } },
    summary = "create or update a project (merge patch)" },
  D { "delete_project", "DELETE", A .. "/{projectName}", lro = "operation",
    summary = "delete a project; returns a job" },
  D { "get_project_deletion_status", "GET", A .. "/global/deletion-jobs/{jobId}",
    summary = "a project deletion job" },
  D { "import_project", "POST", A .. "/{projectName}/:import", lro = "operation", idempotent = true,
    body = { "projectFileVersion!", "stringIndexType", "metadata:object!", "assets:object" },
    defaults = { projectFileVersion = "2022-05-01", stringIndexType = "Utf16CodeUnit" },
    summary = "import labelled data (replaces the project's data); returns a job" },
  D { "get_import_status", "GET", A .. "/{projectName}/import/jobs/{jobId}", summary = "an import job" },
  D { "export_project", "POST", A .. "/{projectName}/:export", lro = "operation", idempotent = true,
    query = { "stringIndexType!", "assetKind", "trainedModelLabel" }, defaults = SIT,
    summary = "export a project; returns a job (its resultUrl holds the export)" },
  D { "get_export_status", "GET", A .. "/{projectName}/export/jobs/{jobId}", summary = "an export job" },
  D { "train", "POST", A .. "/{projectName}/:train", lro = "training", returns_job = true, resumable = true,
    body = { "modelLabel!", "trainingConfigVersion", "evaluationOptions:object" },
    defaults = { trainingConfigVersion = "latest" },
    summary = "train a model; returns a job" },
  D { "list_training_jobs", "GET", A .. "/{projectName}/train/jobs", query = PAGED, items = "value",
    summary = "training jobs that have not expired" },
  D { "get_training_status", "GET", A .. "/{projectName}/train/jobs/{jobId}", summary = "a training job" },
  D { "cancel_training_job", "POST", A .. "/{projectName}/train/jobs/{jobId}/:cancel", lro = "operation",
    idempotent = true, summary = "cancel a training; returns a job" },
  D { "list_models", "GET", A .. "/{projectName}/models", query = PAGED, items = "value",
    summary = "trained models" },
  D { "get_model", "GET", A .. "/{projectName}/models/{trainedModelLabel}", summary = "a trained model" },
  D { "delete_model", "DELETE", A .. "/{projectName}/models/{trainedModelLabel}",
    summary = "delete a trained model" },
  D { "load_snapshot", "POST", A .. "/{projectName}/models/{trainedModelLabel}/:load-snapshot",
    lro = "operation", idempotent = true, summary = "restore a model's training snapshot; returns a job" },
  D { "get_load_snapshot_status", "GET",
    A .. "/{projectName}/models/{trainedModelLabel}/load-snapshot/jobs/{jobId}",
    summary = "a load-snapshot job" },
  D { "get_evaluation_summary", "GET",
    A .. "/{projectName}/models/{trainedModelLabel}/evaluation/summary-result",
    summary = "a model's evaluation (F1, precision, recall, confusion matrix)" },
  D { "list_evaluation_results", "GET", A .. "/{projectName}/models/{trainedModelLabel}/evaluation/result",
    query = with(PAGED, "stringIndexType!"), defaults = SIT, items = "value",
    summary = "per-document evaluation results" },
  D { "list_deployments", "GET", A .. "/{projectName}/deployments", query = PAGED, items = "value",
    summary = "deployments" },
  D { "get_deployment", "GET", A .. "/{projectName}/deployments/{deploymentName}", summary = "a deployment" },
  D { "deploy", "PUT", A .. "/{projectName}/deployments/{deploymentName}", lro = "operation",
    body = { "trainedModelLabel!" }, summary = "deploy a trained model; returns a job" },
  D { "get_deployment_status", "GET", A .. "/{projectName}/deployments/{deploymentName}/jobs/{jobId}",
    summary = "a deployment job" },
  D { "delete_deployment", "DELETE", A .. "/{projectName}/deployments/{deploymentName}", lro = "operation",
    summary = "delete a deployment; returns a job" },
  D { "swap_deployments", "POST", A .. "/{projectName}/deployments/:swap", lro = "operation",
    body = { "firstDeploymentName!", "secondDeploymentName!" },
    summary = "swap two deployments; returns a job" },
  D { "get_swap_status", "GET", A .. "/{projectName}/deployments/swap/jobs/{jobId}",
    summary = "a swap job" },
  D { "list_supported_languages", "GET", A .. "/global/languages", query = with(PAGED, "projectKind"),
    items = "value", summary = "languages a project kind supports" },
  D { "list_training_config_versions", "GET", A .. "/global/training-config-versions",
    query = with(PAGED, "projectKind"), items = "value", summary = "training configuration versions" },
  -- runtime
  D { "analyze_text", "POST", "/language/analyze-text/jobs", lro = "analyze", returns_job = true,
    -- A repeated submission only computes the same results again.
    idempotent = true,
    body = { "displayName", "analysisInput:object!", "tasks:array!" },
    summary = "submit documents to deployed models; returns a job (results in raw.tasks)" },
  D { "get_analyze_text_status", "GET", "/language/analyze-text/jobs/{jobId}",
    query = { "showStats:boolean", "top:integer", "skip:integer" }, summary = "an analyze-text job" },
  D { "cancel_analyze_text", "POST", "/language/analyze-text/jobs/{jobId}:cancel", lro = "operation",
    idempotent = true, summary = "cancel an analyze-text job; returns a job" },
}

-- The job states of authoring and runtime jobs, lower-cased; a partial
-- success counts as failed (job:wait raises, with partial = true and the
-- results in raw).
local STATES = {
  notstarted = "pending", running = "running", cancelling = "running", succeeded = "succeeded",
  failed = "failed", cancelled = "cancelled", canceled = "cancelled",
  partiallycompleted = "failed", partiallysucceeded = "failed",
}

local AUTH_CODES = { Unauthorized = true, Forbidden = true }

local NOT_FOUND = { NotFound = true, ProjectNotFound = true, OperationNotFound = true }

-- not_found(e): the service's own error code for a missing project,
-- model, deployment or job, at whatever 4xx status carries it (the spec
-- maps no code to a status).
local function not_found(e)
  return type(e.status) == "number" and e.status >= 400 and e.status < 500 and NOT_FOUND[e.code] == true
end

-- classify(res, body): {"error":{"code","message","innererror":{...}}}.
local function classify(res, body)
  if res.status >= 200 and res.status < 300 then return nil end
  local code = res.headers and res.headers["x-ms-error-code"]
  local message
  local details
  if type(body) == "table" and type(body.error) == "table" then
    if type(body.error.code) == "string" then code = body.error.code end
    message = body.error.message
    local inner = body.error.innererror
    if type(inner) == "table" then details = { innererror = inner.code, message = inner.message } end
  end
  if code == nil and message == nil then return nil end
  return { code = code, message = message, details = details,
    kind = AUTH_CODES[code] and "auth" or nil,
    retry = code == "TooManyRequests" or nil }
end

-- Entra ID's token endpoint answers {"error":"invalid_client",
-- "error_description":"AADSTS7000215: ..."}.
local function classify_entra(res, body)
  if res.status >= 200 and res.status < 300 then
    if type(body) ~= "table" or type(body.access_token) ~= "string" then
      return { code = "invalid_token_response", message = "token response has no access_token",
        kind = "auth" }
    end
    return nil
  end
  if type(body) ~= "table" then return nil end
  local code = body.error
  return {
    code = code, message = body.error_description, request_id = body.correlation_id,
    kind = code ~= "temporarily_unavailable" and "auth" or nil,
    retry = code == "temporarily_unavailable" or nil,
  }
end

-- A token provider: get() -> token, fetched when missing or about to
-- expire; reset() forgets it (after a 401).
local function token_source(o)
  local sys = require("trainctl.sys")
  local cached, expires
  local form = table.concat({
    "grant_type=client_credentials",
    "client_id=" .. url.encode(o.client_id),
    "client_secret=" .. url.encode(o.client_secret),
    "scope=" .. url.encode(o.scope or SCOPE),
  }, "&")
  local token_url = o.authority:gsub("/+$", "") .. "/" .. url.segment(o.tenant_id, "tenant_id")
    .. "/oauth2/v2.0/token"
  local src = {}
  function src.get()
    if cached and sys.clock() < expires then return cached end
    local body = http.send({
      provider = "entra", method = "POST", url = token_url,
      headers = { ["content-type"] = "application/x-www-form-urlencoded",
        accept = "application/json" },
      body = form, idempotent = true, classify = classify_entra, retry = o.retry,
      credentials = o.credentials,
      timeout = o.timeout, ca_file = o.ca_file, insecure = o.insecure,
      sign = function(r) r.secrets[#r.secrets + 1] = o.client_secret end,
    })
    cached = body.access_token
    log.add_secret(cached)
    local life = tonumber(body.expires_in) or 3600
    -- Renew well before the end so a long request never carries a token
    -- that expires on the way.
    local margin = life > 600 and 300 or life / 5
    expires = sys.clock() + life - margin
    log.debug("entra: token obtained", { expires_in = life })
    return cached
  end
  function src.reset() cached = nil end
  return src
end

local ENTRA_VARS = { "AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET" }
local GIVEN = { AZURE_LANGUAGE_KEY = true, AZURE_TENANT_ID = true, AZURE_CLIENT_ID = true,
  AZURE_CLIENT_SECRET = true }

-- resolve_auth(o) -> {key | tenant_id, client_id, client_secret,
-- credentials = where they came from (config.origin)}.
local function resolve_auth(o)
  if o.key then
    return { key = config.secret(o.key), credentials = config.origin({ "AZURE_LANGUAGE_KEY" }, GIVEN) }
  end
  if o.tenant_id or o.client_id or o.client_secret then
    if not (o.tenant_id and o.client_id and o.client_secret) then
      errors.usage("azure_language: tenant_id, client_id and client_secret go together")
    end
    return { tenant_id = o.tenant_id, client_id = config.key_id(o.client_id),
      client_secret = config.secret(o.client_secret), credentials = config.origin(ENTRA_VARS, GIVEN) }
  end
  local key = o.auth ~= "entra" and config.get("AZURE_LANGUAGE_KEY")
  if key then
    return { key = config.secret(key), credentials = config.origin({ "AZURE_LANGUAGE_KEY" }) }
  end
  local tenant, client = config.get("AZURE_TENANT_ID"), config.get("AZURE_CLIENT_ID")
  local secret = config.get("AZURE_CLIENT_SECRET")
  if tenant or client or secret or o.auth == "entra" then
    -- Part of a service principal is there: name the part that is missing.
    local hint = "(Entra ID needs AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET)"
    local a = { tenant_id = config.need("AZURE_TENANT_ID", hint),
      client_id = config.key_id(config.need("AZURE_CLIENT_ID", hint)),
      client_secret = config.secret(config.need("AZURE_CLIENT_SECRET", hint)) }
    a.credentials = config.origin(ENTRA_VARS)
    return a
  end
  config.need("AZURE_LANGUAGE_KEY", "(or AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET)")
end

local function has_api_version(query)
  return query:find("^api%-version=") or query:find("&api%-version=")
end

local function label_of(spec, args)
  if spec.lro == "training" then
    return ("azure_language training %s/%s"):format(args.project_name, tostring(args.model_label))
  end
  local what = args.project_name or args.job_id
  if not what then return "azure_language " .. spec.name end
  return ("azure_language %s %s"):format(spec.name, what)
end

local start_train

M, Client = provider.new({
  name = "azure_language",
  operations = OPERATIONS, classify = classify, not_found = not_found, states = STATES,
  pager = { "next_link" },
  -- client{endpoint, key | tenant_id + client_id + client_secret, auth =
  -- "key" | "entra", api_version, authority, scope, retry, timeout, ca_file,
  -- insecure}. The endpoint defaults to TRAINCTL_AZURE_LANGUAGE_ENDPOINT,
  -- then AZURE_LANGUAGE_ENDPOINT; credentials to AZURE_LANGUAGE_KEY, then
  -- AZURE_TENANT_ID / AZURE_CLIENT_ID / AZURE_CLIENT_SECRET (then the
  -- profile); authority to TRAINCTL_ENTRA_ENDPOINT.
  endpoint = function(o)
    local endpoint = o.endpoint or config.get("TRAINCTL_AZURE_LANGUAGE_ENDPOINT")
      or config.get("AZURE_LANGUAGE_ENDPOINT")
    if not endpoint then
      errors.usage("missing setting: set AZURE_LANGUAGE_ENDPOINT (https://<resource>.cognitiveservices.azure.com)")
    end
    return endpoint, config.origin_name("TRAINCTL_AZURE_LANGUAGE_ENDPOINT", "AZURE_LANGUAGE_ENDPOINT")
  end,
  trim = "/language$",
  -- A subscription key, or an Entra ID token fetched when needed and
  -- fetched again (renew) when the service refuses it with a 401.
  auth = function(o, self)
    local auth = resolve_auth(o)
    local fields = { api_version = o.api_version or API_VERSION, auth = auth.key and "key" or "entra" }
    if auth.key then
      local key = auth.key
      return { credentials = auth.credentials, fields = fields,
        sign = function(r) r.headers["ocp-apim-subscription-key"] = key end }
    end
    local tokens = token_source({
      tenant_id = auth.tenant_id, client_id = auth.client_id, client_secret = auth.client_secret,
      authority = o.authority or config.get("TRAINCTL_ENTRA_ENDPOINT") or DEFAULT_AUTHORITY,
      scope = o.scope, retry = o.retry, timeout = self.timeout, ca_file = self.ca_file,
      insecure = o.insecure, credentials = auth.credentials,
    })
    fields._tokens = tokens
    return { credentials = auth.credentials, fields = fields,
      sign = function(r) r.headers["authorization"] = "Bearer " .. tokens.get() end,
      renew = function()
        log.debug("azure_language: 401 with a cached token; fetching a new one")
        tokens.reset()
      end }
  end,
  -- JSON answers, and the api-version on every request that lacks one.
  prepare = function(self, r)
    r.headers["accept"] = r.headers["accept"] or "application/json"
    if not has_api_version(r.query) then
      r.query = (r.query ~= "" and (r.query .. "&") or "") .. "api-version=" .. url.encode(self.api_version)
    end
  end,
  -- A long-running operation answers with where to follow it: a job.
  result = function(self, spec, args, body, res)
    if spec.lro then return self:_job_from(res, spec.lro, label_of(spec, args)) end
    return body, res
  end,
  -- (start_train is defined below, with the client methods it uses)
  starts = { train = function(...) return start_train(...) end },
  -- The job a printed reference names: any long-running operation.
  reopen = function(c, ref)
    if type(ref.path) == "string" and ref.path:find("^/") then return c:job(ref) end
  end,
  -- What `trainctl config` shows: which of the two ways in is set.
  view = function(h)
    local creds = { h.credential("AZURE_LANGUAGE_KEY") }
    local auth = creds[1].set and "key" or nil
    local entra = { h.credential("AZURE_TENANT_ID"), h.credential("AZURE_CLIENT_ID"),
      h.credential("AZURE_CLIENT_SECRET") }
    for _, c in ipairs(entra) do creds[#creds + 1] = c end
    if not auth then
      auth = (entra[1].set and entra[2].set and entra[3].set) and "entra" or h.null
    end
    local settings = {
      { "endpoint", h.setting({ "TRAINCTL_AZURE_LANGUAGE_ENDPOINT", "AZURE_LANGUAGE_ENDPOINT" }) },
      { "auth", { value = auth, from = auth == "key" and "AZURE_LANGUAGE_KEY is set"
        or auth == "entra" and "AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET are set"
        or "neither AZURE_LANGUAGE_KEY nor the three AZURE_* Entra ID settings" } },
    }
    if auth == "entra" then
      settings[#settings + 1] = { "authority", h.setting({ "TRAINCTL_ENTRA_ENDPOINT" }, DEFAULT_AUTHORITY) }
    end
    return { settings = settings, credentials = creds }
  end,
})

M.API_VERSION, M.DEFAULT_AUTHORITY, M.SCOPE = API_VERSION, DEFAULT_AUTHORITY, SCOPE

local function job_id_of(path)
  return path:match("/jobs/([^/?:]+)") or path:match("([^/]+)$")
end

local function errors_text(list)
  if type(list) ~= "table" then return nil end
  local parts = {}
  for _, e in ipairs(list) do
    if type(e) == "table" then
      parts[#parts + 1] = tostring(e.code or "error") .. ": " .. tostring(e.message or "")
    end
  end
  if #parts == 0 then return nil end
  return table.concat(parts, "; ")
end

local function percent(sub)
  return type(sub) == "table" and tonumber(sub.percentComplete) or nil
end

-- status_of(kind, raw) -> the shared status of a JobState.
local function status_of(kind, raw, res)
  local s = type(raw) == "table" and raw.status or nil
  local state = M.STATES[tostring(s):lower()]
  if not state then
    errors.raise({ kind = "api", provider = "azure_language",
      message = ("unknown job status %q"):format(tostring(s)) })
  end
  local st = { state = state, raw = raw, code = state ~= "succeeded" and s or nil,
    partial = tostring(s):lower():find("^partially") and true or nil }
  local result = raw.result
  if kind == "training" and type(result) == "table" then
    local t, e = percent(result.trainingStatus), percent(result.evaluationStatus)
    if t and e then st.progress = (t * 4 + e) / 5 else st.progress = t end
    if type(result.estimatedEndDateTime) == "string" then
      st.eta = require("trainctl.sys").parse_iso8601(result.estimatedEndDateTime)
    end
  elseif kind == "analyze" and type(raw.tasks) == "table" then
    local total = tonumber(raw.tasks.total)
    if total and total > 0 then st.progress = 100 * (tonumber(raw.tasks.completed) or 0) / total end
  end
  if state == "succeeded" and kind == "training" and st.progress == nil then st.progress = 100 end
  st.message = errors_text(raw.errors)
  if state ~= "succeeded" and not st.message and raw.warnings then st.message = errors_text(raw.warnings) end
  if res then st.retry_after = retry.retry_after(res.headers) end
  return st
end

-- job(ref) -> job for a long-running operation. ref = {path = the status
-- URL's path and query, kind = "training" | "analyze" | "operation",
-- label}. Trainings and analyze-text jobs can be cancelled.
function Client:job(ref)
  local path, query = ref.path:match("^([^?]*)%??(.*)$")
  local cancel
  if ref.kind == "training" then
    cancel = function() return self:_operation("POST", path .. "/:cancel") end
  elseif ref.kind == "analyze" then
    cancel = function() return self:_operation("POST", path .. ":cancel") end
  end
  return job.new({
    provider = "azure_language", label = ref.label or ("azure_language job " .. tostring(ref.job_id)),
    ref = ref, id = ref.job_id, interval = ref.kind == "analyze" and 2 or 10, max_interval = 60,
    cancel = cancel,
    poll = function()
      local raw, res = self:_send({ method = "GET", path = path, query = query })
      return status_of(ref.kind, raw, res)
    end,
  })
end

-- The job of a 202 answer: its Operation-Location (else Location) header.
function Client:_job_from(res, kind, label)
  local loc = res.headers["operation-location"] or res.headers["location"]
  if not loc then
    errors.raise({ kind = "api", provider = "azure_language", status = res.status,
      message = "long-running operation answered without Operation-Location or Location" })
  end
  local path, query = self:relative(loc)
  local rel = path .. (query ~= "" and ("?" .. query) or "")
  return self:job({ path = rel, kind = kind, label = label, job_id = job_id_of(path) })
end

function Client:_operation(method, path)
  local _, res = self:_send({ method = method, path = path, idempotent = true })
  return self:_job_from(res, "operation", "azure_language " .. path:match("[^/]+$"))
end


-- train(project_name, {model_label, training_config_version,
-- evaluation_options, resume, record}) -> job. A start whose answer was
-- lost is looked up among the project's training jobs (same model label,
-- not there before) before it is tried again (see job.start for resume
-- and record).
start_train = function(self, args, spec)
  local project = args.project_name
  if project == nil then errors.usage("train: missing required parameter project_name") end
  local label = label_of(spec, args)
  local function training(id)
    return self:job({ kind = "training", label = label, job_id = id,
      path = ("%s/%s/train/jobs/%s?api-version=%s"):format(A, url.segment(project),
        url.segment(id), url.encode(self.api_version)) })
  end
  local function jobs()
    local list = {}
    for j in self:each("list_training_jobs", { project_name = project }) do list[#list + 1] = j end
    return list
  end
  return self:_start(spec, args, {
    prepare = function()
      local before = {}
      for _, t in ipairs(jobs()) do before[#before + 1] = t.jobId end
      return { kind = "training", project = project, model_label = args.model_label, before = before }
    end,
    open = function(ref) return self:job(ref) end,
    create = function()
      local _, res = self:_run(spec, args)
      return self:_job_from(res, "training", label)
    end,
    lookup = function(ref)
      local before = {}
      for _, id in ipairs(ref.before or {}) do before[id] = true end
      for _, t in ipairs(jobs()) do
        local r = type(t.result) == "table" and t.result or {}
        if not before[t.jobId] and r.modelLabel == ref.model_label then return training(t.jobId) end
      end
    end,
    -- One training per project at a time: perhaps this very start. The
    -- status of a Conflict is unknown (the spec maps no code to one).
    conflict = function(e)
      return e.status == 409 or (e.code == "Conflict" and type(e.status) == "number"
        and e.status >= 400 and e.status < 500)
    end,
    -- The same model's training in progress, whoever started it; another
    -- model's leaves the conflict standing.
    running = function(ref)
      for _, t in ipairs(jobs()) do
        local r = type(t.result) == "table" and t.result or {}
        local st = M.STATES[type(t.status) == "string" and t.status:lower() or ""]
        if r.modelLabel == ref.model_label and st and not job.TERMINAL[st] then return training(t.jobId) end
      end
    end,
  })
end

-- analyze_batches(documents, tasks [, {batch_size = 25, concurrency = 4,
-- language, display_name, timeout, interval}]) -> one record per document,
-- in order: {id = ..., [taskName] = that task's result for the document,
-- error = the service's error for it, if any}. The documents (as for
-- documents()) go in batches of batch_size (25 is the service's limit per
-- job), submitted and waited on concurrently; a 429 slows every batch.
function Client:analyze_batches(list, tasks, opts)
  opts = opts or {}
  local fanout = require("trainctl.fanout")
  local docs = M.documents(list, opts.language).documents
  local size = opts.batch_size or 25
  local batches = {}
  for first = 1, #docs, size do
    batches[#batches + 1] = table.move(docs, first, math.min(first + size - 1, #docs), 1, {})
  end
  local statuses = fanout.map(batches, function(batch)
    local j = self:analyze_text({ display_name = opts.display_name or "trainctl",
      analysis_input = { documents = batch }, tasks = tasks, retry = { throttle = false } })
    return j:wait({ timeout = opts.timeout or 600, interval = opts.interval or 1, quiet = true })
  end, { concurrency = opts.concurrency or 4 })
  local by_id = {}
  local function record(id)
    id = tostring(id)
    by_id[id] = by_id[id] or { id = id }
    return by_id[id]
  end
  for _, st in ipairs(statuses) do
    local items = type(st.raw) == "table" and type(st.raw.tasks) == "table" and st.raw.tasks.items or {}
    for _, item in ipairs(items) do
      local results = type(item.results) == "table" and item.results or {}
      for _, d in ipairs(results.documents or {}) do record(d.id)[item.taskName or item.kind] = d end
      for _, e in ipairs(results.errors or {}) do record(e.id).error = e.error or e end
    end
  end
  local out = {}
  for i, d in ipairs(docs) do out[i] = by_id[d.id] or { id = d.id } end
  return out
end

-- documents(list) -> analysisInput: strings or {id, text, language}.
function M.documents(list, language)
  local docs = {}
  for i, d in ipairs(list) do
    if type(d) == "string" then d = { id = tostring(i), text = d } end
    docs[#docs + 1] = { id = tostring(d.id or i), text = d.text, language = d.language or language }
  end
  return { documents = docs }
end

return M
