-- Alibaba Cloud OpenSearch algorithm functions (2017-12-25 ROA API): the
-- 18 function operations as a table, ACS3-HMAC-SHA256 signing by default
-- and the ROA "acs" HMAC-SHA1 scheme with signature = "v2", responses read
-- in any key case, ExtendInfo JSON strings decoded.
--
--   local os_ = require("trainctl.providers.opensearch").client{ region = "cn-hangzhou",
--     app_group = "my_app", function_name = "ctr" }
--   local job = os_:create_function_task{ instance_name = "ctr_test" }
--   print(job:wait().raw.ExtendInfo.auc)
local config = require("trainctl.config")
local errors = require("trainctl.errors")
local job = require("trainctl.api.job")
local json = require("trainctl.json")
local log = require("trainctl.log")
local ops = require("trainctl.api.ops")
local page = require("trainctl.api.page")
local provider = require("trainctl.api.provider")
local url = require("trainctl.core.url")

-- The module and the client class, built from the descriptor below.
local M, Client

local API_VERSION = "2017-12-25"
local DEFAULT_REGION = "cn-hangzhou"

local D = ops.define
local with = ops.with
local P = "/v4/openapi/app-groups/{appGroupIdentity}/functions/{functionName}"
local PAGE = { "pageNumber:integer", "pageSize:integer" }

local OPERATIONS = {
  D { "create_function_instance", "POST", P .. "/instances", action = "CreateFunctionInstance",
    body = { "instanceName!", "modelType!", "functionType", "description", "createParameters:array",
      "usageParameters:array", "cron" },
    create = "instance", summary = "create an algorithm instance (modelType tf_checkpoint for CTR)" },
  D { "list_function_instances", "GET", P .. "/instances", action = "ListFunctionInstances",
    query = with(PAGE, "functionType", "modelType", "output", "source"), items = "Result",
    summary = "instances of a function (pageNumber/pageSize)" },
  D { "get_function_instance", "GET", P .. "/instances/{instanceName}", action = "GetFunctionInstance",
    query = { "output" }, summary = "an instance (output=detail adds the last task)" },
  D { "update_function_instance", "PUT", P .. "/instances/{instanceName}",
    action = "UpdateFunctionInstance",
    body = { "createParameters:array", "cron", "description", "usageParameters:array" },
    summary = "change an instance's parameters, cron or description" },
  D { "delete_function_instance", "DELETE", P .. "/instances/{instanceName}",
    action = "DeleteFunctionInstance", summary = "delete an instance" },
  D { "create_function_task", "POST", P .. "/instances/{instanceName}/tasks",
    action = "CreateFunctionTask", returns_job = true, resumable = true,
    summary = "start a training of an instance; returns a job" },
  D { "list_function_tasks", "GET", P .. "/instances/{instanceName}/tasks", action = "ListFunctionTasks",
    query = with(PAGE, "startTime:integer", "endTime:integer", "status"), items = "Result",
    summary = "trainings of an instance, newest first" },
  D { "get_function_task", "GET", P .. "/instances/{instanceName}/tasks/{generation}",
    action = "GetFunctionTask", summary = "one training (status, progress, ExtendInfo)" },
  D { "delete_function_task", "DELETE", P .. "/instances/{instanceName}/tasks/{generation}",
    action = "DeleteFunctionTask", summary = "delete a finished training record" },
  D { "get_function_default_instance", "GET", P .. "/default-instance",
    action = "GetFunctionDefaultInstance", summary = "the function's default instance" },
  D { "update_function_default_instance", "PUT", P .. "/default-instance",
    action = "UpdateFunctionDefaultInstance", body = { "instanceName" },
    summary = "make an instance the default (empty name clears it)" },
  D { "get_function_current_version", "GET", "/v4/openapi/functions/{functionName}/current-version",
    action = "GetFunctionCurrentVersion", query = { "modelType!", "functionType", "domain", "category" },
    summary = "the current version and its parameters" },
  D { "get_function_version", "GET", "/v4/openapi/functions/{functionName}/versions/{versionId}",
    action = "GetFunctionVersion", summary = "one version of a function" },
  D { "create_function_resource", "POST", P .. "/resources", action = "CreateFunctionResource",
    body = { "ResourceName!", "ResourceType!", "Description", "Data:object" }, create = "resource",
    values = { ResourceType = { "feature_generator", "raw_file" } },
    summary = "create a resource (feature_generator or raw_file)" },
  D { "list_function_resources", "GET", P .. "/resources", action = "ListFunctionResources",
    query = with(PAGE, "output", "resourceType"), items = "Result",
    summary = "resources of a function (pageNumber/pageSize)" },
  D { "get_function_resource", "GET", P .. "/resources/{resourceName}", action = "GetFunctionResource",
    query = { "output" }, summary = "one resource" },
  D { "update_function_resource", "PUT", P .. "/resources/{resourceName}",
    action = "UpdateFunctionResource", body = { "Data:object", "Description" },
    summary = "change a resource's data or description" },
  D { "delete_function_resource", "DELETE", P .. "/resources/{resourceName}",
    action = "DeleteFunctionResource", summary = "delete a resource" },
}

-- Error codes (opensearch.md §6) that mean the request was not let in.
local AUTH_CODES = {
  SignatureDoesNotMatch = true, IncompleteSignature = true, ["InvalidAccessKeyId.NotFound"] = true,
  ["InvalidAccessKeyId.Inactive"] = true, ["InvalidTimeStamp.Expired"] = true,
  ["InvalidTimeStamp.Format"] = true, InvalidSignatureMethod = true,
  Forbidden = true, ["Forbidden.RAM"] = true,
}

-- The answer may be PascalCase or camelCase: tables read either way
-- (r.Result and r.result are the same field); pairs() shows the keys as
-- the server sent them.
local ci_mt = {
  __index = function(t, k)
    if type(k) ~= "string" then return nil end
    local lk = k:lower()
    for key, v in next, t do
      if type(key) == "string" and key:lower() == lk then return v end
    end
  end,
}

-- normalize(v): case-insensitive reading everywhere, and every ExtendInfo
-- that holds a JSON string replaced by the decoded value.
local function normalize(v)
  if type(v) ~= "table" then return v end
  for k, x in pairs(v) do
    if type(k) == "string" and k:lower() == "extendinfo" and type(x) == "string" then
      local decoded = json.decode(x)
      if type(decoded) == "table" then v[k] = decoded end
    end
    normalize(v[k])
  end
  if getmetatable(v) == nil then setmetatable(v, ci_mt) end
  return v
end

local function field(t, k) return page.get(t, k) end

-- short_message(m): a SignatureDoesNotMatch message without the server's
-- string to sign that follows it (ten lines of canonical request that
-- only help with a debugger at hand): that part goes to the debug log.
local function short_message(m)
  if type(m) ~= "string" then return m end
  local head, sts = m:match("^(.-)%s*[Ss]erver [Ss]tring[ %-][Tt]o[ %-][Ss]ign is:%s*(.*)$")
  if not head then return m end
  log.debug("opensearch: the server's string to sign", { string_to_sign = sts })
  return head .. " (the server's string to sign is in the --log-level debug log)"
end

-- classify(res, body): the envelope {Status, Code, Message, RequestId}
-- (any key case). A 2xx whose Status is FAIL is an error too. Throttling
-- codes are retried even when the status is 400, and so is
-- SignatureNonceUsed: libcurl sends a request again, nonce and all, when a
-- reused connection dies before the answer, so the gateway saw this very
-- request before; it may have acted (ambiguous for a create), and a new
-- signature gets through.
local function classify(res, body)
  if type(body) ~= "table" then return nil end
  local status = field(body, "Status")
  local code = field(body, "Code")
  if type(code) == "number" then code = json.number_string(code) end
  if type(code) ~= "string" or code == "" then code = nil end
  local ok_status = res.status >= 200 and res.status < 300
  if ok_status and (status == nil or type(status) ~= "string" or status:upper() ~= "FAIL") then
    return nil
  end
  if ok_status and not code then code = "FAIL" end
  return {
    code = code, message = short_message(field(body, "Message")), request_id = field(body, "RequestId"),
    kind = code and AUTH_CODES[code] and "auth" or nil,
    retry = code and (code:find("Throttling", 1, true) or code == "SignatureNonceUsed") and true
      or nil,
  }
end


-- not_found(e): the API's own code for a missing object
-- (Instance.NotExist, Task.NotExist, Resource.NotExist...).
local function not_found_code(e)
  return type(e.code) == "string" and e.code:match("%.NotExist$") ~= nil
end

local STATES = { running = "running", success = "succeeded", failed = "failed", pending = "pending" }

local function signer(version, ak, sk)
  local crypto = require("trainctl.crypto")
  local sign = require("trainctl.sign")
  local sys = require("trainctl.sys")
  return function(r)
    local h = r.headers
    local body = r.body or ""
    local query = url.parse_query(r.query)
    h["host"] = r.host
    h["accept"] = "application/json"
    h["x-acs-version"] = API_VERSION
    h["x-acs-signature-nonce"] = crypto.hex_encode(crypto.random_bytes(16))
    if version == "v2" then
      h["date"] = sys.format_rfc1123(r.now or sys.now())
      h["x-acs-signature-method"] = "HMAC-SHA1"
      h["x-acs-signature-version"] = "1.0"
      local sig = sign.acs_v2({ method = r.method, path = r.path, query = query, headers = h,
        secret = sk })
      h["authorization"] = "acs " .. ak .. ":" .. sig
      r.secrets[#r.secrets + 1] = sig
    else
      h["x-acs-date"] = sys.format_iso8601(r.now or sys.now())
      h["x-acs-content-sha256"] = crypto.hex_encode(crypto.sha256(body))
      local auth = sign.acs3({ method = r.method, path = r.path, query = query, headers = h,
        body = body, access_key = ak, secret = sk })
      h["authorization"] = auth
      local sig = auth:match("Signature=(%x+)")
      if sig then r.secrets[#r.secrets + 1] = sig end
    end
  end
end

local function not_found(e)
  return errors.is(e) and (e.status == 404 or (e.code and e.code:find("NotExist", 1, true)))
end

local function get_or_nil(fn, ...)
  local ok, res = pcall(fn, ...)
  if ok then return res end
  if not_found(res) then return nil end
  error(res, 0)
end

local start_task

local function is_conflict(e)
  return e.status == 409 or (e.code and (e.code:find("Exist", 1, true) or e.code:find("Duplicate", 1, true)))
    and not e.code:find("NotExist", 1, true)
end

M, Client = provider.new({
  name = "opensearch",
  operations = OPERATIONS, classify = classify, not_found = not_found_code, states = STATES,
  -- The gateway refuses a date more than 15 minutes from its clock
  -- (InvalidTimeStamp.Expired).
  skew_window = 900,
  pager = { "numbered", size = 10, total_key = "TotalCount" },
  -- client{access_key_id, access_key_secret, region | endpoint, signature =
  -- "v3" | "v2", app_group, function_name, retry, timeout, ca_file,
  -- insecure}. Keys default to ALIBABA_CLOUD_ACCESS_KEY_ID /
  -- ALIBABA_CLOUD_ACCESS_KEY_SECRET; the endpoint to
  -- TRAINCTL_OPENSEARCH_ENDPOINT, else https://opensearch.<region>.aliyuncs.com.
  -- app_group and function_name (default: OPENSEARCH_APP_GROUP and
  -- OPENSEARCH_FUNCTION_NAME, environment or profile) fill those parameters
  -- when a call omits them.
  endpoint = function(o)
    local region = o.region or config.get("ALIBABA_CLOUD_REGION_ID") or DEFAULT_REGION
    return o.endpoint or config.get("TRAINCTL_OPENSEARCH_ENDPOINT")
      or ("https://opensearch.%s.aliyuncs.com"):format(region), config.origin_name("TRAINCTL_OPENSEARCH_ENDPOINT")
  end,
  auth = function(o)
    local ak = config.key_id(o.access_key_id or config.need("ALIBABA_CLOUD_ACCESS_KEY_ID"))
    local sk = config.secret(o.access_key_secret or config.need("ALIBABA_CLOUD_ACCESS_KEY_SECRET"))
    local version = o.signature or "v3"
    if version ~= "v3" and version ~= "v2" then
      errors.usage(("opensearch: signature must be \"v3\" or \"v2\", not %q"):format(tostring(version)))
    end
    return {
      sign = signer(version, ak, sk),
      credentials = config.origin({ "ALIBABA_CLOUD_ACCESS_KEY_ID", "ALIBABA_CLOUD_ACCESS_KEY_SECRET" },
        { ALIBABA_CLOUD_ACCESS_KEY_ID = o.access_key_id ~= nil,
          ALIBABA_CLOUD_ACCESS_KEY_SECRET = o.access_key_secret ~= nil }),
      fields = {
        region = o.region or config.get("ALIBABA_CLOUD_REGION_ID") or DEFAULT_REGION, signature = version,
        defaults = { app_group_identity = o.app_group or config.get("OPENSEARCH_APP_GROUP"),
          function_name = o.function_name or config.get("OPENSEARCH_FUNCTION_NAME") },
      },
    }
  end,
  -- The body goes as JSON; without a content type of our own, a bodyless
  -- POST would go out with libcurl's form type, which the v2 signature
  -- covers and we did not sign. The gateway refuses a request without
  -- x-acs-action: a call that names no action gets the one of the
  -- operation whose method and path template match, else a usage error.
  prepare = function(_, r)
    if type(r.body) == "table" then r.body = json.encode(r.body) end
    if r.body ~= nil or r.method == "POST" or r.method == "PUT" then
      r.headers["content-type"] = "application/json; charset=utf-8"
    end
    local action = r.action or (ops.match(OPERATIONS, r.method, r.path) or {}).action
    if not action then
      errors.usage(("opensearch: no operation is %s %s; name the API with action="):format(r.method, r.path))
    end
    r.headers["x-acs-action"] = action
  end,
  decode = normalize,
  creates = {
    instance = { name = "instance_name", find = function(self, args)
      return get_or_nil(self.get_function_instance, self, { app_group_identity = args.app_group_identity,
        function_name = args.function_name, instance_name = args.instance_name })
    end },
    resource = { name = "resource_name", find = function(self, args)
      return get_or_nil(self.get_function_resource, self, { app_group_identity = args.app_group_identity,
        function_name = args.function_name, resource_name = args.resource_name })
    end },
  },
  conflict = is_conflict,
  -- (start_task is defined below, with the client methods it uses)
  starts = { create_function_task = function(...) return start_task(...) end },
  -- The job a printed reference names: a training of an instance.
  reopen = function(c, ref)
    if ref.instance_name ~= nil then return c:training_job(ref) end
  end,
  -- What `trainctl config` shows.
  view = function(h)
    local region = h.setting({ "ALIBABA_CLOUD_REGION_ID" }, DEFAULT_REGION)
    local default_ep = ("https://opensearch.%s.aliyuncs.com"):format(region.value)
    return {
      settings = {
        { "endpoint", h.setting({ "TRAINCTL_OPENSEARCH_ENDPOINT" }, default_ep, "default, from the region") },
        { "region", region },
        { "app_group_identity", h.setting({ "OPENSEARCH_APP_GROUP" }) },
        { "function_name", h.setting({ "OPENSEARCH_FUNCTION_NAME" }) },
      },
      credentials = { h.credential("ALIBABA_CLOUD_ACCESS_KEY_ID"), h.credential("ALIBABA_CLOUD_ACCESS_KEY_SECRET") },
    }
  end,
})

M.API_VERSION, M.DEFAULT_REGION = API_VERSION, DEFAULT_REGION
M.normalize, M.short_message = normalize, short_message

local function generation(t)
  local g = field(t, "Generation")
  if g == nil then return nil end
  return ops.text(g)
end

local function where(self, ref)
  return {
    app_group_identity = ref.app_group_identity or self.defaults.app_group_identity,
    function_name = ref.function_name or self.defaults.function_name,
    instance_name = ref.instance_name,
  }
end

-- newest_task(ref) -> the latest training of an instance, or nil.
function Client:newest_task(ref)
  local a = where(self, ref)
  a.page_number, a.page_size = 1, 1
  local res = self:list_function_tasks(a)
  local list = field(res, "Result")
  return type(list) == "table" and list[1] or nil
end

-- failure_reason(task) -> message, code from ExtendInfo.errors (a list of
-- strings or of {code, message}, or a map).
local function failure_reason(task)
  local info = field(task, "ExtendInfo")
  local errs = type(info) == "table" and field(info, "errors")
  if type(errs) == "table" and next(errs) ~= nil then
    local parts, code = {}, nil
    for k, v in pairs(errs) do
      if type(v) == "table" then
        local c, m = field(v, "code"), field(v, "message")
        code = code or c
        parts[#parts + 1] = (c or m) and (tostring(c or "error") .. ": " .. tostring(m or "")) or json.encode(v)
      else
        parts[#parts + 1] = type(k) == "number" and tostring(v) or (k .. ": " .. tostring(v))
      end
    end
    table.sort(parts)
    return table.concat(parts, "; "), code
  end
  return "task " .. tostring(generation(task)) .. " failed"
end

-- training_job(ref) -> job. ref = {app_group_identity, function_name,
-- instance_name, before = newest generation before the start,
-- generation = this training's, once known}.
function Client:training_job(ref)
  local label = ("opensearch training %s"):format(ref.instance_name)
  return job.new({
    provider = "opensearch", label = label, ref = ref, id = ref.instance_name,
    interval = 5, max_interval = 60,
    poll = function()
      local task
      if not ref.generation then
        task = self:newest_task(ref)
        local g = task and generation(task)
        if not g or g == ref.before then return { state = "pending", raw = task } end
        ref.generation = g
      else
        local a = where(self, ref)
        a.generation = ref.generation
        task = field(self:get_function_task(a), "Result")
      end
      local status = field(task, "Status")
      local state = M.STATES[status] or "running"
      local st = { state = state, progress = tonumber(field(task, "Progress")), raw = task }
      if state == "failed" then
        local message, code = failure_reason(task)
        st.code, st.message = code or "failed", message
      end
      return st
    end,
  })
end

-- create_function_task{instance_name, ..., resume, record} -> job. The
-- newest training before the start tells this one from older ones; a
-- start whose answer was lost is looked up instead of repeated (see
-- job.start for resume and record).
start_task = function(self, args, spec)
  return self:_start(spec, args, {
    prepare = function()
      local ref = where(self, args)
      local before = self:newest_task(ref)
      ref.before = before and generation(before) or nil
      return ref
    end,
    lookup = function(ref)
      local t = self:newest_task(ref)
      local g = t and generation(t)
      if g and g ~= ref.before then
        ref.generation = g
        return self:training_job(ref)
      end
    end,
    conflict = function(e) return e.code == "Task.IsRunning" end,
    running = function(ref)
      local t = self:newest_task(ref)
      local st = t and M.STATES[field(t, "Status")]
      if st and not job.TERMINAL[st] then
        local r = where(self, ref)
        r.before, r.generation, r.adopted = ref.before, generation(t), true
        return self:training_job(r)
      end
    end,
  })
end

return M
