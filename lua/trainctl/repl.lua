-- What the interactive loop needs from Lua: showing results and
-- completing names. Completion only reads tables (raw where it can), so
-- pressing Tab never runs a request.

local pretty = require "trainctl.pretty"

local M = {}

-- provider_of(class) -> "aitems" from its __name "trainctl.aitems.client".
local function provider_of(class)
  local name = type(class) == "table" and rawget(class, "__name")
  return type(name) == "string" and name:match("^trainctl%.(.-)%.client$") or "client"
end

-- describe(fn) -> one line for a client's method, or nil.
local function describe(fn)
  local b = require("trainctl.api.ops").bound[fn]
  if not b then return nil end
  return ("function %s.%s: %s (help(f) for its parameters)"):format(provider_of(b.class), b.spec.name,
    b.spec.summary or b.spec.method .. " " .. b.spec.path)
end

local function format(v)
  if type(v) == "function" then
    local d = describe(v)
    if d then return d end
  end
  return pretty.format(v)
end

-- show(...): the results of a line, with the run's secrets taken out (an answer
-- that echoes the request's credentials, a key read from the environment).
function M.show(...)
  local n = select("#", ...)
  local out = {}
  local redact = require("trainctl.log").redact_values
  for i = 1, n do out[i] = format(redact((select(i, ...)))) end
  io.stdout:write(table.concat(out, "\t"), "\n")
  io.stdout:flush()
end

local function fields(t, seen, acc)
  if type(t) ~= "table" or seen[t] then return acc end
  seen[t] = true
  for k in next, t do
    if type(k) == "string" then acc[k] = true end
  end
  local mt = getmetatable(t)
  if type(mt) == "table" then
    local index = rawget(mt, "__index")
    if type(index) == "table" then fields(index, seen, acc) end
  end
  return acc
end

--- complete(word) -> sorted list of completions of word, which may be
--- a dotted path ("string.fo") or a method call ("client:li").
function M.complete(word)
  local path, sep, partial = word:match("^(.-)([%.:])([%w_]*)$")
  local target = _G
  if path then
    for name in path:gmatch("[^%.:]+") do
      if type(target) ~= "table" then return {} end
      target = rawget(target, name)
      if target == nil then
        local mt = getmetatable(target)
        if mt == nil then return {} end
      end
    end
    if type(target) == "string" then target = string end
  else
    partial, path, sep = word, "", ""
  end
  local names = fields(target, {}, {})
  local out = {}
  -- Names that start with "_" are internal (ai:_send, _G): offered only
  -- once the user types the "_".
  local hidden = partial:sub(1, 1) ~= "_"
  for name in pairs(names) do
    if name:sub(1, #partial) == partial and name:match("^[%a_][%w_]*$")
      and not (hidden and name:sub(1, 1) == "_") then
      local v = target[name]
      local suffix = ""
      if type(v) == "function" then suffix = sep == ":" and "(" or "" end
      if sep == ":" and type(v) ~= "function" then goto continue end
      out[#out + 1] = path .. sep .. name .. suffix
    end
    ::continue::
  end
  table.sort(out)
  return out
end

M.HELP = [[
trainctl: Lua 5.4 with the trainctl library. Make a client, then call it:
  ai = require("trainctl.aitems").client()           -- NAVER Cloud AiTEMS
  ali = require("trainctl.opensearch").client{app_group = "...", function_name = "..."}
  az = require("trainctl.azure_language").client()   -- Azure AI Language
  ai:list_services()        a call; its answer is printed
  help(ai)                  a client's operations
  help(ai.train)            one operation and its parameters
  help("train")             the operations of that name, on every provider
Credentials come from the environment or --profile (`trainctl config`
shows which). A training start returns a job: job:wait() shows progress.
Tab completes names; Ctrl-C interrupts a call or a wait; Ctrl-D exits.
More: docs/lua-api.md, trainctl --help.]]

local function operations_of(specs, title)
  return ("%s (help(c.operation) for one; c:operation{...} calls it):\n%s")
    :format(title, require("trainctl.help").list(specs))
end

-- help_text(x) -> what help(x) prints.
function M.help_text(x, ...)
  if select("#", ...) == 0 and x == nil then return M.HELP end
  local ops = require("trainctl.api.ops")
  local help = require("trainctl.help")
  if type(x) == "function" then
    local b = ops.bound[x]
    if not b then return "a function without help (help() for what there is)" end
    local spec = b.spec
    local sig = ops.signature(spec)
    return help.op(spec) .. ("\ncall: %s:%s(%s%s{...})"):format(provider_of(b.class), spec.name, sig,
      sig ~= "" and ", " or "")
  end
  if type(x) == "table" then
    if type(rawget(x, "operations")) == "table" then
      return operations_of(x.operations, "module operations")
    end
    local mt = getmetatable(x)
    local class = type(mt) == "table" and (rawget(mt, "__index") or mt)
    if type(class) == "table" and ops.classes[class] then
      return operations_of(ops.classes[class], provider_of(class) .. " client operations")
    end
    return "a table without help (help() for what there is)"
  end
  if type(x) == "string" then
    local found = {}
    for _, p in ipairs(require("trainctl.cli").PROVIDERS) do
      local spec = ops.find(require(p.module).operations, x)
      if spec then found[#found + 1] = p.name .. ": " .. require("trainctl.help").op(spec) end
    end
    if #found > 0 then return table.concat(found, "\n") end
    return ("no operation %q on any provider (help() for what there is)"):format(x)
  end
  return ("no help for a %s (help() for what there is)"):format(type(x))
end

function M.help(...)
  io.stdout:write(M.help_text(...), "\n")
  io.stdout:flush()
end

-- start(version, lua_release): the banner, and help() as a global unless the user's
-- LUA_INIT or -l already defined one.
function M.start(version, lua_release)
  io.stdout:write(("trainctl %s (%s). help() shows how to begin; Ctrl-D exits.\n")
    :format(version or "?", lua_release or _VERSION))
  io.stdout:flush()
  if rawget(_G, "help") == nil then rawset(_G, "help", M.help) end
end

return M
