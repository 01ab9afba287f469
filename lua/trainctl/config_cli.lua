-- `trainctl config` (or `whoami`): what a call would use, read the way the
-- clients read it: the profile, each provider's endpoint and region, its
-- defaults, and for every credential where it comes from. Values of
-- credentials are never shown, not even in part.
local config = require("trainctl.config")
local errors = require("trainctl.errors")
local exit = require("trainctl.exit")
local json = require("trainctl.json")
local log = require("trainctl.log")
local registry = require("trainctl.providers")

local M = {}

M.USAGE = [[
usage: trainctl [--profile NAME] config [--json]
       trainctl whoami
Shows the effective profile, each provider's endpoint, region and
defaults, and where each credential comes from (the environment or a
profile in the credentials file), never its value.]]

-- shown(v): a setting as shown; the user:password an endpoint should not
-- hold (the clients refuse it) is not shown either.
local function shown(v)
  return (v:gsub("^(%a[%w+.-]*://)[^/?#]*@", "%1" .. log.REDACTED .. "@"))
end

-- setting(var, default) -> {value, from}: a plain (non-secret) setting.
local function setting(vars, default, default_from)
  for _, var in ipairs(vars) do
    local v = config.get(var)
    if v then return { value = shown(v), from = var .. " from " .. config.origin_of(var) } end
  end
  if default then return { value = default, from = default_from or "default" } end
  return { value = json.null, from = "not set: " .. table.concat(vars, " or ") }
end

local function credential(var)
  local from = config.origin_of(var)
  return { name = var, set = from ~= nil, from = from or "not set" }
end

-- Each provider says what it reads (its descriptor's view), in the
-- registry's order.
local function provider_views()
  local helpers = { setting = setting, credential = credential, null = json.null }
  local list = {}
  for _, p in ipairs(registry.list) do
    local v = require(p.module).view(helpers)
    list[#list + 1] = { name = p.name, settings = v.settings, credentials = v.credentials }
  end
  return list
end

function M.view()
  local name, chosen = config.profile_origin()
  local path = config.credentials_path()
  local explicit = chosen ~= "default"
  local sec = config.profile(explicit and name or nil)
  local from
  if chosen == "default" then
    local f = io.open(path, "rb")
    if f then f:close() end
    from = sec and ("[default] of " .. path)
      or (f and ("none: " .. path .. " has no [default]") or "none: no credentials file")
  else
    from = chosen
  end
  return {
    profile = { name = sec and name or json.null, from = from },
    credentials_file = path,
    providers = provider_views(),
  }
end

local function as_json(v)
  local providers = {}
  for _, p in ipairs(v.providers) do
    local s = {}
    for _, kv in ipairs(p.settings) do s[kv[1]] = kv[2] end
    local c = {}
    for _, cr in ipairs(p.credentials) do c[cr.name] = cr.from end
    providers[p.name] = { settings = s, credentials = c }
  end
  return json.encode({ profile = v.profile, credentials_file = v.credentials_file, providers = providers },
    { pretty = true })
end

local function as_text(v)
  local lines = {
    ("profile: %s (%s)"):format(v.profile.name == json.null and "none" or v.profile.name, v.profile.from),
    "credentials file: " .. v.credentials_file,
  }
  for _, p in ipairs(v.providers) do
    lines[#lines + 1] = p.name .. ":"
    for _, kv in ipairs(p.settings) do
      local val = kv[2].value
      lines[#lines + 1] = ("  %-19s %s (%s)"):format(kv[1] .. ":", val == json.null and "-" or tostring(val),
        kv[2].from)
    end
    for _, c in ipairs(p.credentials) do
      lines[#lines + 1] = ("  %-32s %s"):format(c.name .. ":", c.set and ("from " .. c.from) or c.from)
    end
  end
  return table.concat(lines, "\n")
end

function M.run(argv)
  local fmt = "text"
  for _, a in ipairs(argv) do
    if a == "--help" or a == "-h" then
      io.stdout:write(M.USAGE, "\n")
      return exit.OK
    elseif a == "--json" then
      fmt = "json"
    else
      errors.usage(("trainctl config: unknown argument %q (--json, --help)"):format(a))
    end
  end
  local v = M.view()
  io.stdout:write(fmt == "json" and as_json(v) or as_text(v), "\n")
  return exit.OK
end

return M
