-- A provider is a descriptor: its name, operations (api/ops.lua), signer,
-- error classifier, status vocabulary, pager and the few request details
-- of its own. This module builds the client from it: the class, client()
-- (endpoint checked, credentials bound in a closure), _send, call, run,
-- each, get (a link the service handed out) and the lookup that makes a
-- create safe to repeat. docs/providers.md lists every field.
local config = require("trainctl.config")
local errors = require("trainctl.errors")
local http = require("trainctl.core.http")
local job = require("trainctl.api.job")
local ops = require("trainctl.api.ops")
local page = require("trainctl.api.page")
local retry = require("trainctl.core.retry")
local url = require("trainctl.core.url")

local M = {}

-- The fields a descriptor may have; any other is a mistake.
M.FIELDS = {
  name = true, operations = true, classify = true, not_found = true, states = true,
  skew_window = true, pager = true, endpoint = true, endpoint_base = true, trim = true, auth = true,
  prepare = true, decode = true, creates = true, conflict = true, starts = true, result = true,
  reopen = true, view = true,
}

local function copy(t)
  local out = {}
  for k, v in pairs(t or {}) do out[k] = v end
  return out
end

-- How each kind of list pages: the parameters an iterator sets, from
-- api/page.lua's iterators.
local PAGERS = {
  -- offset/limit (AiTEMS)
  offset = function(self, name, spec, args, o)
    return page.offset(function(offset, limit)
      local a = copy(args)
      a.offset, a.limit = offset, limit
      return (self[name](self, a))
    end, { key = spec.items, limit = args.limit or o.size, offset = args.offset or 0 })
  end,
  -- pageNumber/pageSize until a total count (OpenSearch)
  numbered = function(self, name, spec, args, o)
    return page.numbered(function(number, size)
      local a = copy(args)
      a.page_number, a.page_size = number, size
      return (self[name](self, a))
    end, { key = spec.items, total_key = o.total_key, page_size = args.page_size or o.size,
      page_number = args.page_number or 1 })
  end,
  -- nextLink, followed with get() (Azure)
  next_link = function(self, name, spec, args)
    return page.next_link(function() return (self[name](self, args)) end,
      function(link) return (self:get(link)) end, { key = spec.items, provider = self.provider })
  end,
}

-- new(d) -> module, Client. The module has client(), operations,
-- classify, not_found, STATES, SKEW_WINDOW, reopen (a job from the
-- reference a call printed, for `trainctl wait`) and view (its settings
-- for `trainctl config`); Client is the class, for the provider's own
-- methods.
function M.new(d)
  for k in pairs(d) do
    if not M.FIELDS[k] then error(("provider %s: unknown descriptor field %q"):format(tostring(d.name), k), 2) end
  end
  local pager = d.pager and PAGERS[d.pager[1]]
  assert(pager or not d.pager, "provider: unknown pager")
  local mod = { name = d.name, operations = d.operations, classify = d.classify,
    not_found = d.not_found, STATES = d.states, SKEW_WINDOW = d.skew_window, reopen = d.reopen,
    view = d.view }
  local Client = {}
  Client.__index = Client
  Client.__name = "trainctl." .. d.name .. ".client"
  local by_name = {}
  for _, spec in ipairs(d.operations) do by_name[spec.name] = spec end
  for name in pairs(d.starts or {}) do
    assert(by_name[name], ("provider %s: starts.%s is not an operation"):format(d.name, name))
  end

  -- client(o): the endpoint (d.endpoint(o) -> url, where it came from),
  -- checked; then d.auth(o) -> {sign, credentials, renew, fields}: the
  -- keys live in the signer's closure, not in the client table, so
  -- printing a client shows none.
  function mod.client(o)
    o = o or {}
    local endpoint, from = d.endpoint(o)
    endpoint = endpoint:gsub("/+$", "")
    if d.trim then endpoint = endpoint:gsub(d.trim, "") end
    config.endpoint(d.name, endpoint, o.endpoint and "endpoint=" or from, d.endpoint_base)
    local self = { provider = d.name, endpoint = endpoint, retry = o.retry,
      timeout = o.timeout or config.request_timeout(),
      ca_file = o.ca_file or config.ca_file(), insecure = o.insecure }
    local a = d.auth(o, self)
    self._sign, self._renew, self.credentials = a.sign, a.renew, a.credentials
    for k, v in pairs(a.fields or {}) do self[k] = v end
    return setmetatable(self, Client)
  end

  -- _send{method, path, query, body, headers, action, idempotent, retry,
  -- timeout}: header names lower-cased, the provider's own details added
  -- (d.prepare), signed, retried, decoded (d.decode). A signer that holds
  -- a token (renew) gets a new one on a 401, and the request one more try.
  function Client:_send(r)
    r = copy(r)
    local headers = {}
    for k, v in pairs(r.headers or {}) do headers[k:lower()] = v end
    r.headers, r.query = headers, r.query or ""
    if d.prepare then d.prepare(self, r) end
    local req = {
      provider = d.name, method = r.method, url = self.endpoint .. r.path, query = r.query,
      headers = r.headers, body = r.body, sign = self._sign, classify = d.classify,
      credentials = self.credentials, idempotent = r.idempotent, retry = retry.merge(self.retry, r.retry),
      timeout = r.timeout or self.timeout, ca_file = self.ca_file, insecure = self.insecure,
      skew_window = d.skew_window,
    }
    local ok, body, res = pcall(http.send, req)
    if not ok and self._renew and errors.is(body, "auth") and body.status == 401 and body.provider == d.name then
      self._renew()
      ok, body, res = pcall(http.send, req)
    end
    if not ok then error(body, 0) end
    if d.decode then body = d.decode(body) end
    return body, res
  end

  -- call(method, path [, {query, body, headers, action, idempotent,
  -- retry, timeout}]) -> decoded body, response: any endpoint of the API.
  function Client:call(method, path, opts)
    opts = opts or {}
    return self:_send({ method = method:upper(), path = path, query = url.to_query(opts.query),
      body = opts.body, headers = opts.headers, action = opts.action, idempotent = opts.idempotent,
      retry = opts.retry, timeout = opts.timeout })
  end

  -- run(spec, args) -> decoded body, response: one operation, one request.
  -- A PATCH is a JSON merge patch (RFC 7396), as ops.define reads it.
  function Client:_run(spec, args)
    local req = ops.build(spec, args, self.defaults)
    local body = req.body
    for _, wire in ipairs(spec.path_in_body or {}) do
      body = body or {}
      for _, p in ipairs(spec.path_params) do
        if p.wire == wire then body[wire] = args[p.name] end
      end
    end
    local headers = copy(args.headers)
    if spec.method == "PATCH" then headers["content-type"] = "application/merge-patch+json" end
    local idempotent = args.idempotent
    if idempotent == nil then idempotent = spec.idempotent end
    return self:_send({ method = req.method, path = req.path, query = url.query_string(req.query),
      body = body, headers = headers, action = spec.action, idempotent = idempotent, retry = args.retry,
      timeout = args.timeout })
  end

  -- each(operation, args) -> iterator over every item of a list
  -- operation, page after page.
  function Client:each(name, args)
    local spec = by_name[name]
    if not spec or not spec.items then
      errors.usage(("%s: %s is not a list operation"):format(d.name, tostring(name)))
    end
    return pager(self, name, spec, args or {}, d.pager)
  end

  -- relative(link) -> path and query of a URL the service handed out
  -- (a status link, nextLink), refused when it points at another host:
  -- the credentials go only to the configured endpoint.
  function Client:relative(link)
    local u = http.parse_url(link)
    if not u then
      if link:sub(1, 1) == "/" then
        local path, query = link:match("^([^?]*)%??(.*)$")
        return path, query
      end
      errors.raise({ kind = "api", provider = d.name, message = "bad URL from the service: " .. link })
    end
    if http.origin(link) ~= http.origin(self.endpoint) then
      errors.raise({ kind = "api", provider = d.name, code = "ForeignLink",
        message = ("the service pointed to %s, outside the endpoint %s; not sending credentials there")
          :format(http.origin(link), http.origin(self.endpoint)) })
    end
    return u.path, u.query
  end

  -- get(link) -> decoded, response: GET a link the service returned,
  -- signed like any call.
  function Client:get(link)
    local path, query = self:relative(link)
    return self:_send({ method = "GET", path = path, query = query })
  end

  -- _start(spec, args, o) -> job: a training start made safe to repeat
  -- (api/job.lua's job.start) with the call's resume, record, adopt,
  -- retry and timeout. o has prepare, lookup, conflict, running and what,
  -- and open and create where the job is not self:training_job(ref).
  function Client:_start(spec, args, o)
    return job.start({
      what = o.what or "the training start", resume = args.resume, record = args.record, adopt = args.adopt,
      retry = retry.merge(self.retry, args.retry),
      prepare = o.prepare, lookup = o.lookup, conflict = o.conflict, running = o.running,
      open = o.open or function(ref) return self:training_job(ref) end,
      create = o.create or function(ref)
        self:_run(spec, args)
        return self:training_job(ref)
      end,
      timeout = args.timeout or self.timeout,
    })
  end

  -- An operation's method: a training start (d.starts) is the provider's
  -- own; a create (spec.create) is looked up before it is tried again
  -- (d.creates[kind] = {name = the argument naming it, find(self, args)});
  -- the rest is one request, whose answer d.result may turn into a job.
  -- A method returns the answer alone (the REPL prints what it returns);
  -- client:call and client:get give the response too.
  local function invoke(self, spec, args)
    local start = d.starts and d.starts[spec.name]
    if start then return start(self, args, spec) end
    if spec.create then
      local c = d.creates[spec.create]
      return retry.create_once({
        what = ("creating %s %q"):format(spec.create, tostring(args[c.name])),
        create = function() return (self:_run(spec, args)) end,
        lookup = function() return c.find(self, args) end,
        conflict = d.conflict,
        retry = retry.merge(self.retry, args.retry),
      })
    end
    local body, res = self:_run(spec, args)
    if d.result then return (d.result(self, spec, args, body, res)) end
    return body
  end
  for _, spec in ipairs(d.operations) do
    assert(not spec.create or (d.creates and d.creates[spec.create]),
      ("provider %s: %s creates %s, which creates does not look up"):format(d.name, spec.name,
        tostring(spec.create)))
  end
  ops.bind(Client, d.operations, invoke)
  return mod, Client
end

return M
