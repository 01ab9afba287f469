-- NAVER Cloud AiTEMS (personalised recommendation): the operations of the
-- API as a table, the API Gateway v2 signature, the two error envelopes
-- (gateway and backend) and the training status vocabulary.
--
--   local ai = require("trainctl.providers.aitems").client()
--   local job = ai:train(service_id, { types = { "personalRecommend" } })
--   job:wait()
--   print(ai:lookup(service_id, { type = "personalRecommend", target_id = "u1" }).values[1])
local config = require("trainctl.config")
local errors = require("trainctl.errors")
local job = require("trainctl.api.job")
local json = require("trainctl.json")
local ops = require("trainctl.api.ops")
local provider = require("trainctl.api.provider")

-- The module and the client class, built from the descriptor below.
local M, Client

local DEFAULT_ENDPOINT = "https://aitems.apigw.ntruss.com/api/v1"

local D = ops.define
local HP_DEFAULT = { is_enabled = false }

local OPERATIONS = {
  -- services
  D { "create_service", "POST", "/services", body = { "name!", "description", "type" },
    values = { type = { "batch", "interval" } },
    summary = "create a service (type batch or interval)", create = "service" },
  D { "list_services", "GET", "/services", query = { "offset:integer", "limit:integer" },
    items = "services", summary = "list services (offset/limit)" },
  D { "get_service", "GET", "/services/{serviceId}", summary = "a service and its status" },
  D { "update_service", "PUT", "/services/{serviceId}", body = { "name", "description" },
    summary = "rename a service or change its description" },
  D { "delete_service", "DELETE", "/services/{serviceId}", summary = "delete a service" },
  D { "set_service_datasets", "POST", "/services/{serviceId}/datasets", body = { "datasetIds:array!" },
    idempotent = true, summary = "attach the user, item and interaction datasets" },
  D { "update_interval", "PUT", "/services/{serviceId}/interval", body = { "term!" },
    values = { term = { "hour1", "hour3", "hour6", "hour12" } },
    summary = "interval services: hour1, hour3, hour6 or hour12" },
  D { "train", "POST", "/services/{serviceId}", body = { "types:array!", "description", "hpConfig:object" },
    defaults = { hpConfig = HP_DEFAULT, description = "" }, returns_job = true, resumable = true,
    docs = { types = "personalRecommend, relatedItem, pop" },
    values = { types = { "personalRecommend", "relatedItem", "pop" } },
    summary = "request a training (batch services); returns a job" },
  D { "start_schedule", "PUT", "/services/{serviceId}/schedule", fixed_query = { { "action", "start" } },
    body = { "trainTypes:array!", "description", "hpConfig:object" },
    defaults = { hpConfig = HP_DEFAULT }, summary = "interval services: start periodic training" },
  D { "stop_schedule", "PUT", "/services/{serviceId}/schedule", fixed_query = { { "action", "stop" } },
    body = { "trainTypes:array!", "description", "hpConfig:object" },
    defaults = { hpConfig = HP_DEFAULT }, summary = "interval services: stop periodic training" },
  D { "upload_data", "POST", "/services/{serviceId}/datasets/{datasetId}", body = { "type!", "value:array!" },
    summary = "interval services: upload rows of training data" },
  D { "list_trains", "GET", "/services/{serviceId}/trains",
    query = { "offset:integer", "limit:integer", "isRecent:boolean" }, items = "trains",
    summary = "trainings of a service (is_recent: latest per type)" },
  D { "get_train", "GET", "/services/{serviceId}/trains/{trainType}/versions/{version}",
    summary = "one training version" },
  -- targetId is checked by lookup below: required but for pop, where
  -- what it means is unknown (it is sent when given).
  D { "lookup", "GET", "/services/{serviceId}/infers/lookup", query = { "type!", "targetId" },
    values = { type = { "personalRecommend", "relatedItem", "pop" } },
    docs = { targetId = "a USER_ID (personalRecommend) or ITEM_ID (relatedItem); required for those" },
    summary = "recommendations for a user (personalRecommend) or item (relatedItem), or the popular items (pop)" },
  -- datasets
  D { "create_dataset", "POST", "/datasets",
    body = { "type!", "name!", "description", "schemaName!", "osInfo:object!" },
    defaults = { description = "" }, create = "dataset",
    values = { type = { "user", "item", "interaction" } },
    docs = { osInfo = '{"region":"KR","bucket":...,"key":...}' },
    summary = "register a CSV in Object Storage as a dataset" },
  D { "list_datasets", "GET", "/datasets", query = { "offset:integer", "limit:integer" },
    items = "datasets", summary = "list datasets (offset/limit)" },
  D { "get_dataset", "GET", "/datasets/{datasetId}", summary = "a dataset and its status" },
  D { "modify_dataset", "POST", "/datasets/{datasetId}",
    body = { "type!", "name!", "description", "schemaName!", "osInfo:object!" }, idempotent = true,
    summary = "replace a dataset's definition" },
  D { "update_dataset_description", "PUT", "/datasets/{datasetId}", body = { "content!" },
    summary = "change a dataset's description" },
  D { "delete_dataset", "DELETE", "/datasets/{datasetId}", summary = "delete a dataset" },
  -- schemas
  D { "create_schema", "POST", "/schemas",
    body = { "datasetType!", "name!", "fields:array!", "description" }, create = "schema",
    values = { datasetType = { "user", "item", "interaction" } },
    summary = "create a schema (user, item or interaction)" },
  D { "validate_schema", "POST", "/schemas/validation-check",
    body = { "datasetType!", "name!", "fields:array!", "description!" }, idempotent = true,
    summary = "check a schema without creating it" },
  D { "list_schemas", "GET", "/schemas", query = { "datasetType", "offset:integer", "limit:integer" },
    items = "schemas", summary = "list schemas (offset/limit)" },
  D { "get_schema", "GET", "/schemas/{schemaName}", summary = "a schema by name" },
  D { "get_default_schema", "GET", "/schemas/default", query = { "datasetType!" },
    summary = "the default schema of a dataset type" },
  D { "update_schema_description", "PUT", "/schemas/{schemaName}", body = { "content!" },
    summary = "change a schema's description" },
  D { "delete_schema", "DELETE", "/schemas/{schemaName}", summary = "delete a schema" },
}

-- API Gateway error codes (aitems.md §2.1) that mean the caller is not
-- allowed in.
local AUTH_CODES = { ["200"] = true, ["210"] = true, ["230"] = true }

-- code_text(v): errorCode as a string (the docs show both "210" and 210);
-- null, an object or a list is no code.
local function code_text(v)
  if type(v) == "number" then return json.number_string(v) end
  if type(v) == "string" then return v end
end

-- classify(res, body): the gateway envelope {"error":{"errorCode","message"}}
-- or the backend's {"error":"DUPLICATE_NAME","errorCode":"BAD_REQUEST",
-- "message","requestId"}; a 2xx carrying the gateway envelope is an error.
local function classify(res, body)
  if type(body) ~= "table" then return nil end
  local g = body.error
  if type(g) == "table" and (g.errorCode ~= nil or g.message ~= nil) then
    local code = code_text(g.errorCode)
    return { code = code, message = g.message, kind = AUTH_CODES[code] and "auth" or nil,
      details = g.details }
  end
  local ok_status = res.status >= 200 and res.status < 300
  if ok_status then return nil end
  if type(g) == "string" or body.errorCode ~= nil then
    -- The backend's own envelope: a string error beside the request's
    -- status, path or id (Spring's), as a gateway or a proxy never sends.
    local backend = type(g) == "string" and (body.status ~= nil or body.path ~= nil or body.requestId ~= nil)
    return { code = type(g) == "string" and g or code_text(body.errorCode),
      message = body.message, request_id = body.requestId,
      details = { errorCode = body.errorCode, path = body.path, envelope = backend and "backend" or nil } }
  end
end

-- not_found(e): the backend's answer for an unknown id: a 404 in its own
-- envelope, whatever the code (only DUPLICATE_NAME is known; NOT_FOUND
-- and Spring's "Not Found" are as likely). The gateway's 404 "Not Found
-- Exception" is about a route, not an object, and a proxy's has no
-- envelope at all.
local function not_found(e)
  return e.status == 404 and type(e.details) == "table" and e.details.envelope == "backend"
end

-- STATES maps a train record's status to the shared vocabulary.
local STATES = {
  ready = "pending", waiting = "pending", requesting = "pending",
  learning = "running", stopping = "running",
  completed = "succeeded",
  requestFailed = "failed", refinedFailed = "failed", learningFailed = "failed",
}

local SERVICE_BUSY = { learning = true, requestLearning = true, scheduledLearning = true }

local function signer(access_key, secret_key)
  local sign = require("trainctl.sign")
  local sys = require("trainctl.sys")
  return function(r)
    local ts = ("%d"):format(math.floor((r.now or sys.now()) * 1000))
    local uri = r.path .. (r.query ~= "" and ("?" .. r.query) or "")
    local sig = sign.ncp_v2({ method = r.method, uri = uri, timestamp = ts,
      access_key = access_key, secret_key = secret_key })
    r.headers["x-ncp-apigw-timestamp"] = ts
    r.headers["x-ncp-iam-access-key"] = access_key
    r.headers["x-ncp-apigw-signature-v2"] = sig
    r.secrets[#r.secrets + 1] = sig
  end
end

local function is_conflict(e)
  return e.code == "DUPLICATE_NAME" or e.status == 409
end

local start_train

M, Client = provider.new({
  name = "aitems",
  operations = OPERATIONS, classify = classify, not_found = not_found, states = STATES,
  -- The API Gateway refuses a timestamp 5 minutes or more from its clock.
  skew_window = 300,
  pager = { "offset", size = 100 },
  -- client{access_key, secret_key, endpoint, retry, timeout, ca_file,
  -- insecure}. Keys default to NCLOUD_ACCESS_KEY / NCLOUD_SECRET_KEY
  -- (then the profile); the endpoint to TRAINCTL_AITEMS_ENDPOINT.
  endpoint = function(o)
    return o.endpoint or config.get("TRAINCTL_AITEMS_ENDPOINT") or DEFAULT_ENDPOINT,
      config.origin_name("TRAINCTL_AITEMS_ENDPOINT")
  end,
  endpoint_base = "/api/v1",
  auth = function(o)
    local ak = config.key_id(o.access_key or config.need("NCLOUD_ACCESS_KEY"))
    local sk = config.secret(o.secret_key or config.need("NCLOUD_SECRET_KEY"))
    return { sign = signer(ak, sk),
      credentials = config.origin({ "NCLOUD_ACCESS_KEY", "NCLOUD_SECRET_KEY" },
        { NCLOUD_ACCESS_KEY = o.access_key ~= nil, NCLOUD_SECRET_KEY = o.secret_key ~= nil }) }
  end,
  -- The API asks for a JSON content type on every call, GET and DELETE
  -- included.
  prepare = function(_, r) r.headers["content-type"] = "application/json" end,
  -- Creates look up what they would have made before trying again, and
  -- answer as the create would have: the full record, not a list's summary.
  creates = {
    service = { name = "name", find = function(self, args)
      local s = self:find_service(args.name)
      return s and self:get_service(s.serviceId)
    end },
    dataset = { name = "name", find = function(self, args)
      local d = self:find_dataset(args.name)
      return d and self:get_dataset(d.datasetId)
    end },
    schema = { name = "name", find = function(self, args) return self:find_schema(args.name) end },
  },
  conflict = is_conflict,
  -- (start_train is defined below, with the client methods it uses)
  starts = { train = function(...) return start_train(...) end,
    lookup = function(self, args, spec)
      if args.type ~= nil and args.type ~= "pop" and args.target_id == nil then
        errors.usage(("lookup: missing required parameter target_id (for type %s)"):format(tostring(args.type)))
      end
      return (self:_run(spec, args))
    end },
  -- The job a printed reference names: a dataset's import or a training.
  reopen = function(c, ref)
    if ref.dataset_id ~= nil then return c:dataset_job(ops.text(ref.dataset_id)) end
    if ref.service_id ~= nil and type(ref.types) == "table" then return c:training_job(ref) end
  end,
  -- What `trainctl config` shows.
  view = function(h)
    return { settings = { { "endpoint", h.setting({ "TRAINCTL_AITEMS_ENDPOINT" }, DEFAULT_ENDPOINT) } },
      credentials = { h.credential("NCLOUD_ACCESS_KEY"), h.credential("NCLOUD_SECRET_KEY") } }
  end,
})

M.DEFAULT_ENDPOINT = DEFAULT_ENDPOINT
M.TRAIN_TYPES = { "personalRecommend", "relatedItem", "pop" }

local function find_by_name(self, list_op, name, id_field)
  for item in self:each(list_op) do
    if item.name == name then return item, item[id_field] end
  end
end

-- find_service(name), find_dataset(name) -> list item | nil
-- lookup_many(service_id, target_ids [, {type, concurrency = 8,
-- errors = "collect", ...}]) -> answers in target_ids order [, errors].
-- The lookups run concurrently on the event loop; a 429 slows all of them
-- down (trainctl.fanout) instead of each retrying on its own.
function Client:lookup_many(service_id, target_ids, opts)
  opts = opts or {}
  local fanout = require("trainctl.fanout")
  local kind = opts.type or "personalRecommend"
  return fanout.map(target_ids, function(id)
    return self:lookup(service_id, { type = kind, target_id = id, retry = { throttle = false } })
  end, opts)
end

function Client:find_service(name) return (find_by_name(self, "list_services", name, "serviceId")) end
function Client:find_dataset(name) return (find_by_name(self, "list_datasets", name, "datasetId")) end

-- find_schema(name) -> schema | nil
function Client:find_schema(name)
  local ok, res = pcall(self.get_schema, self, name)
  if ok then return res end
  if errors.is(res) and res.status == 404 then return nil end
  error(res, 0)
end

-- recent_versions(service_id) -> {version = train} of the latest trainings.
function Client:recent_trains(service_id)
  local out = {}
  for t in self:each("list_trains", { service_id = service_id, is_recent = true }) do
    out[#out + 1] = t
  end
  return out
end

-- object(v, what) -> v when it is a JSON object; a decode error when the
-- server answered something else (null, a list, a number, nothing).
local function object(v, what)
  if type(v) ~= "table" then
    errors.raise({ kind = "decode", provider = "aitems",
      message = what .. ": the answer is not a JSON object" })
  end
  return v
end

-- DATASET_STATES: a dataset's import, in the shared vocabulary.
M.DATASET_STATES = {
  waiting = "pending", processing = "running", enable = "succeeded", learnable = "succeeded",
  upload_failed = "failed", disable = "failed", deleting = "failed",
}

-- upload_hint(ds) -> what to check when a dataset's file was refused:
-- AiTEMS does not say why, so the message names the object and the
-- rules it must meet (and, on a loopback endpoint, where cloudsim
-- looks for it).
function Client:upload_hint(ds)
  local os_info = type(ds.osInfo) == "table" and ds.osInfo or {}
  local hint = ("check that Object Storage bucket %s holds %s, a .csv or .csv.gz file whose header "
    .. "row is the fields of schema %s"):format(tostring(os_info.bucket or "?"), tostring(os_info.key or "?"),
    tostring(ds.schemaName or "?"))
  local host = self.endpoint:match("^%a+://([^/]*)")
  if host and (host:find("^127%.") or host:find("^localhost") or host:find("^%[::1%]")) then
    hint = hint .. " (cloudsim reads it under its --data-dir)"
  end
  return hint
end

-- dataset_job(dataset_id) -> job that ends when the dataset's file is
-- imported (enable) or refused (upload_failed).
function Client:dataset_job(dataset_id)
  return job.new({
    provider = "aitems", label = ("aitems dataset %s"):format(dataset_id),
    ref = { dataset_id = dataset_id }, id = dataset_id, interval = 5, max_interval = 30,
    poll = function()
      local ds = object(self:get_dataset(dataset_id), "dataset " .. dataset_id)
      local state = M.DATASET_STATES[ds.status] or "running"
      local why = ds.reason or ds.message
      why = (type(why) == "string" and why ~= "") and (": " .. why) or ""
      if ds.status == "upload_failed" then why = why .. "; " .. self:upload_hint(ds) end
      return { state = state, raw = ds, code = state == "failed" and ds.status or nil,
        message = state == "failed"
          and ("dataset %s is %s%s"):format(ds.name or dataset_id, ds.status, why) or nil }
    end,
  })
end

local function as_list(v)
  if type(v) == "string" then return { v } end
  return v
end

-- training_job(ref) -> job. ref = {service_id, types, before = {versions
-- that existed before the request}}; the job is made of the newer
-- trainings of those types.
function Client:training_job(ref)
  return job.new({
    provider = "aitems", label = ("aitems training %s"):format(ref.service_id), ref = ref,
    id = ref.service_id, interval = 10, max_interval = 60,
    poll = function()
      -- Made at each poll rather than kept: a job waited on holds only its ref.
      local wanted = {}
      for _, t in ipairs(ref.types) do wanted[t] = true end
      local before = {}
      for _, v in ipairs(ref.before or {}) do before[v] = true end
      local mine, n = {}, 0
      for _, t in ipairs(self:recent_trains(ref.service_id)) do
        if type(t) == "table" and wanted[t.type] and not before[t.version] and not mine[t.type] then
          mine[t.type] = t
          n = n + 1
        end
      end
      local raw = { trains = mine, found = n }
      local states, failed, code = {}, {}, nil
      for _, typ in ipairs(ref.types) do
        local t = mine[typ]
        local st = t and (M.STATES[t.status] or "running") or "pending"
        states[st] = (states[st] or 0) + 1
        if st == "failed" then
          failed[#failed + 1] = ("%s %s"):format(typ, t.status)
          code = code or t.status
        end
      end
      if #failed > 0 then
        return { state = "failed", raw = raw, code = code, message = table.concat(failed, ", ") }
      end
      if states.succeeded == #ref.types then return { state = "succeeded", raw = raw } end
      if states.running or states.succeeded then return { state = "running", raw = raw } end
      if n == 0 then
        local svc = object(self:get_service(ref.service_id), "service " .. ref.service_id)
        raw.service = svc
        if SERVICE_BUSY[svc.status] then return { state = "running", raw = raw } end
      end
      return { state = "pending", raw = raw }
    end,
  })
end

-- train(service_id, {types, description, hp_config, resume, record}) ->
-- job. The versions present before the request tell this training's
-- records from older ones; a request whose answer was lost is looked up,
-- never repeated blindly (see job.start for resume and record).
start_train = function(self, args, spec)
  args.types = as_list(args.types)
  local sid = args.service_id
  if sid == nil then errors.usage("train: missing required parameter service_id") end
  return self:_start(spec, args, {
    what = "the training request",
    prepare = function()
      local before = {}
      for _, t in ipairs(self:recent_trains(sid)) do before[#before + 1] = t.version end
      return { service_id = sid, types = args.types, before = before }
    end,
    lookup = function(ref)
      -- Any new training record, in whatever state, means it happened.
      local j = self:training_job(ref)
      local st = j:status()
      if st.raw.found > 0 or st.state ~= "pending" then return j end
    end,
    -- "cannot be trained while it is learning", perhaps by this very
    -- start: the code of that refusal is unknown, so any 400 or 409 may
    -- be it, and running() (or the lookup) tells.
    conflict = function(e) return e.status == 400 or e.status == 409 end,
    -- The training in progress, if any: the latest record of each type,
    -- whichever run started it; else a service busy with one that has
    -- no record yet (requestLearning), whose records are waited for.
    running = function(ref)
      local svc = object(self:get_service(sid), "service " .. sid)
      -- An interval service refuses every training request: nothing to adopt.
      if svc.type == "interval" then return nil end
      for _, t in ipairs(self:recent_trains(sid)) do
        if type(t) == "table" and not job.TERMINAL[M.STATES[t.status] or "running"] then
          return self:training_job({ service_id = sid, types = args.types, before = {}, adopted = true })
        end
      end
      if SERVICE_BUSY[svc.status] then
        return self:training_job({ service_id = sid, types = args.types, before = ref.before, adopted = true })
      end
    end,
  })
end
return M
