-- Operation tables: each provider lists its API as data (name, method,
-- path template, parameters); this module turns a table into client
-- methods, builds requests from arguments with every path segment and
-- query value percent-encoded, and renders the help that `trainctl call`
-- prints. One table serves the module, the command line and the docs.
local errors = require("trainctl.errors")
local json = require("trainctl.json")
local url = require("trainctl.core.url")

local M = {}

-- Per-call settings accepted by every method besides its parameters.
M.RESERVED = { body = true, query = true, headers = true, timeout = true,
  retry = true, idempotent = true }

-- And, for training starts (spec.resumable), the settings of job.start:
-- resume (a reference an earlier run recorded), record (a function
-- that saves the reference) and adopt (true: a training already running
-- there is waited for instead of refusing the start).
M.RESUMABLE = { resume = true, record = true, adopt = true }

-- snake("serviceId") -> "service_id"; snake("ResourceName") -> "resource_name"
-- The providers' parameter names are few and come again in operation
-- after operation: each is converted once (a third of loading a provider).
local snaked, nsnaked = {}, 0
function M.snake(s)
  local out = snaked[s]
  if out then return out end
  out = s:gsub("^(%u)", function(c) return c:lower() end)
  out = out:gsub("(%l)(%u)", "%1_%2"):gsub("(%d)(%u)", "%1_%2")
  out = out:gsub("%-", "_"):lower()
  if nsnaked >= 4096 then snaked, nsnaked = {}, 0 end
  snaked[s], nsnaked = out, nsnaked + 1
  return out
end

-- with(list, ...) -> a new list: list's entries, then the others (a
-- shared parameter list and an operation's own).
function M.with(list, ...)
  local out = {}
  for _, v in ipairs(list) do out[#out + 1] = v end
  for i = 1, select("#", ...) do out[#out + 1] = select(i, ...) end
  return out
end

-- The URL codec, under the names this module has always offered.
M.encode, M.text, M.segment = url.encode, url.text, url.segment
M.query_string, M.to_query, M.parse_query = url.query_string, url.to_query, url.parse_query
M.decode = url.unescape

local function parse_param(decl, where)
  local required = decl:sub(-1) == "!"
  if required then decl = decl:sub(1, -2) end
  local wire, typ = decl:match("^([^:]+):?(.*)$")
  if typ == "" then typ = "string" end
  return { wire = wire, name = M.snake(wire), where = where, type = typ,
    required = required }
end

-- The keys an operation may have (docs/providers.md says what each
-- means); any other is a mistake, refused when the table is defined.
M.SPEC_KEYS = {
  query = true, body = true, docs = true, values = true, defaults = true, summary = true,
  idempotent = true, create = true, items = true, lro = true, action = true, returns_job = true,
  resumable = true, fixed_query = true, path_in_body = true,
}

-- define{name, method, path, query={...}, body={...}, ...} -> spec.
-- Parameter declarations read "wireName[:type][!]" (! = required); the
-- path template's {names} are required string parameters. values =
-- {wireName = {...}} lists the words a parameter takes, for completion.
function M.define(t)
  for k in pairs(t) do
    if not (k == 1 or k == 2 or k == 3 or M.SPEC_KEYS[k]) then
      error(("ops.define %s: unknown key %q"):format(tostring(t[1]), tostring(k)), 2)
    end
  end
  local spec = {}
  for k, v in pairs(t) do spec[k] = v end
  spec.name, spec.method, spec.path = t[1], t[2], t[3]
  spec[1], spec[2], spec[3] = nil, nil, nil
  spec.params = {}
  spec.path_params = {}
  for wire in spec.path:gmatch("{([^}]+)}") do
    local p = { wire = wire, name = M.snake(wire), where = "path", type = "string",
      required = true, doc = t.docs and t.docs[wire] }
    spec.params[#spec.params + 1] = p
    spec.path_params[#spec.path_params + 1] = p
  end
  for _, where in ipairs({ "query", "body" }) do
    for _, decl in ipairs(t[where] or {}) do
      local p = parse_param(decl, where)
      -- A merge patch (PATCH) sends only what changes: the fields a
      -- create needs are the server's to demand, not ours.
      if where == "body" and spec.method == "PATCH" and p.required then
        p.required, p.to_create = false, true
      end
      p.doc = t.docs and t.docs[p.wire]
      p.values = t.values and t.values[p.wire]
      if t.defaults and t.defaults[p.wire] ~= nil then p.default = t.defaults[p.wire] end
      spec.params[#spec.params + 1] = p
    end
  end
  spec.has_body = t.body ~= nil
  spec.query, spec.body, spec.docs, spec.defaults, spec.values = nil, nil, nil, nil, nil
  return spec
end

-- args(spec, ...) -> table of named arguments. Leading non-table arguments
-- fill the path parameters in order; a final table names the rest, by the
-- snake_case or the wire name.
function M.args(spec, ...)
  local n = select("#", ...)
  local named = {}
  local last = n > 0 and select(n, ...) or nil
  local npos = n
  if type(last) == "table" then
    npos = n - 1
    for k, v in pairs(last) do named[k] = v end
  end
  if npos > #spec.path_params then
    errors.usage(("%s takes %d positional argument(s) (%s), got %d"):format(spec.name,
      #spec.path_params, M.signature(spec), npos))
  end
  for i = 1, npos do
    local v = select(i, ...)
    local p = spec.path_params[i]
    if v ~= nil then named[p.name] = v end
  end
  local out = {}
  local by_name = {}
  for _, p in ipairs(spec.params) do
    by_name[p.name], by_name[p.wire] = p, p
  end
  for k, v in pairs(named) do
    local p = by_name[k]
    if p then
      out[p.name] = v
    elseif M.RESERVED[k] or (spec.resumable and M.RESUMABLE[k]) then
      out[k] = v
    else
      errors.usage(M.unknown_param(spec, tostring(k)))
    end
  end
  return out
end

-- distance(a, b): Levenshtein's, for suggestions.
local function distance(a, b)
  local prev = {}
  for j = 0, #b do prev[j] = j end
  for i = 1, #a do
    local cur = { [0] = i }
    for j = 1, #b do
      local cost = a:byte(i) == b:byte(j) and 0 or 1
      cur[j] = math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
    end
    prev = cur
  end
  return prev[#b]
end

-- closest(word, names) -> the name a misspelt word most likely meant
-- (ignoring case, "-" and "_"), or nil when none is close.
function M.closest(word, names)
  local function norm(s) return (s:lower():gsub("[-_]", "")) end
  local w = norm(word)
  local best, best_d
  for _, name in ipairs(names) do
    local n = norm(name)
    local d = distance(w, n)
    if n:find(w, 1, true) and #w >= 4 then d = math.min(d, 1) end
    if not best_d or d < best_d then best, best_d = name, d end
  end
  if best_d and best_d <= math.max(2, #w // 4) then return best end
end

-- unknown_param(spec, name) -> the message: a suggestion, and the list.
function M.unknown_param(spec, name)
  local known = {}
  for _, q in ipairs(spec.params) do known[#known + 1] = q.name end
  local near = M.closest(name, known)
  return ("%s: unknown parameter %q%s (known: %s)"):format(spec.name, name,
    near and ("; did you mean %s?"):format(near) or "",
    #known > 0 and table.concat(known, ", ") or "none")
end

-- missing(spec, args [, defaults]) -> names of the required parameters
-- that neither args, defaults nor the operation's own defaults fill.
function M.missing(spec, args, defaults)
  local out = {}
  for _, p in ipairs(spec.params) do
    if p.required and args[p.name] == nil and p.default == nil
      and not (defaults and defaults[p.name] ~= nil) then
      out[#out + 1] = p.name
    end
  end
  return out
end

-- check_missing(spec, args [, defaults]): every missing parameter in one
-- usage error.
function M.check_missing(spec, args, defaults)
  local list = M.missing(spec, args, defaults)
  if #list == 1 then
    errors.usage(("%s: missing required parameter %s"):format(spec.name, list[1]))
  elseif #list > 1 then
    errors.usage(("%s: missing required parameters %s"):format(spec.name, table.concat(list, ", ")))
  end
end

-- build(spec, args [, defaults]) -> {method, path, query (list), body}.
-- defaults fills parameters the caller left out (a client's app group).
function M.build(spec, args, defaults)
  M.check_missing(spec, args, defaults)
  local function value(p)
    local v = args[p.name]
    if v == nil and defaults then v = defaults[p.name] end
    if v == nil then v = p.default end
    if v == nil and p.required then
      errors.usage(("%s: missing required parameter %s"):format(spec.name, p.name))
    end
    return v
  end
  local path = spec.path:gsub("{([^}]+)}", function(wire)
    for _, p in ipairs(spec.path_params) do
      if p.wire == wire then return M.segment(value(p), p.name) end
    end
  end)
  local query = {}
  for _, kv in ipairs(spec.fixed_query or {}) do query[#query + 1] = { kv[1], kv[2] } end
  local body
  if spec.has_body then body = {} end
  for _, p in ipairs(spec.params) do
    if p.where ~= "path" then
      local v = value(p)
      if v ~= nil then
        if p.where == "query" then
          query[#query + 1] = { p.wire, M.text(v, p.name) }
        else
          body[p.wire] = v
        end
      end
    end
  end
  if type(args.query) == "table" then
    local keys = {}
    for k in pairs(args.query) do keys[#keys + 1] = k end
    table.sort(keys)
    for _, k in ipairs(keys) do query[#query + 1] = { k, M.text(args.query[k], "query." .. tostring(k)) } end
  end
  if args.body ~= nil then
    if type(args.body) == "table" and type(body) == "table" then
      for k, v in pairs(args.body) do body[k] = v end
    else
      body = args.body
    end
  end
  return { method = spec.method, path = path, query = query, body = body }
end

-- coerce(param, text) -> value: command-line text in the parameter's type.
function M.coerce(p, s)
  local t = p.type
  if t == "integer" then
    local n = math.tointeger(tonumber(s))
    if not n then errors.usage(("%s: %q is not an integer"):format(p.name, s)) end
    return n
  elseif t == "number" then
    local n = tonumber(s)
    if not n then errors.usage(("%s: %q is not a number"):format(p.name, s)) end
    return n
  elseif t == "boolean" then
    local l = s:lower()
    if l == "true" or l == "1" or l == "yes" then return true end
    if l == "false" or l == "0" or l == "no" then return false end
    errors.usage(("%s: %q is not true or false"):format(p.name, s))
  elseif t == "array" or t == "object" or t == "json" then
    if s:find("^%s*[%[{]") or t == "json" then
      local v, err = json.decode(s)
      if v == nil then errors.usage(("%s: invalid JSON: %s"):format(p.name, err)) end
      return v
    end
    if t == "object" then errors.usage(("%s: expects a JSON object"):format(p.name)) end
    local list = {}
    for item in s:gmatch("[^,]+") do list[#list + 1] = item end
    return json.array(list)
  end
  return s
end

-- find(specs, name): by snake_case name, ignoring case, "-" and "_".
function M.find(specs, name)
  local want = name:lower():gsub("[-_]", "")
  for _, spec in ipairs(specs) do
    if spec.name:lower():gsub("[-_]", "") == want then return spec end
    if spec.action and spec.action:lower() == want then return spec end
  end
end

-- match(specs, method, path) -> the operation whose method and path
-- template a request has, or nil.
function M.match(specs, method, path)
  for _, spec in ipairs(specs) do
    local rx = "^" .. spec.path:gsub("[%^%$%(%)%%%.%[%]%*%+%-%?]", "%%%0"):gsub("{[^}]+}", "[^/]+") .. "$"
    if spec.method == method and path:match(rx) then return spec end
  end
end

function M.signature(spec)
  local names = {}
  for _, p in ipairs(spec.path_params) do names[#names + 1] = p.name end
  return table.concat(names, ", ")
end

-- help_list(specs), help_op(spec): the help texts, which live with the
-- command line (trainctl.help); these names stay for scripts.
function M.help_list(specs) return require("trainctl.help").list(specs) end
function M.help_op(spec) return require("trainctl.help").op(spec) end

-- What bind made, for the REPL's help: method -> {spec, class}, and
-- class -> its operation specs.
M.bound = setmetatable({}, { __mode = "k" })
M.classes = setmetatable({}, { __mode = "k" })

-- bind(class, specs, invoke): a method per operation calling
-- invoke(self, spec, args) with its arguments checked and named
-- (api/provider.lua's invoke decides what an operation does).
function M.bind(class, specs, invoke)
  M.classes[class] = specs
  for _, spec in ipairs(specs) do
    local fn
    fn = function(self, ...)
      -- client.train{...} (a dot for the colon) passes the arguments as
      -- self: said plainly, rather than failing deep inside the call.
      if type(self) ~= "table" or (getmetatable(self) ~= class and self[spec.name] ~= fn) then
        errors.usage(("%s: call it as client:%s(...) (with a colon)"):format(spec.name, spec.name))
      end
      return invoke(self, spec, M.args(spec, ...))
    end
    class[spec.name] = fn
    M.bound[fn] = { spec = spec, class = class }
  end
end

return M
