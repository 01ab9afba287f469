-- `trainctl config` (or `whoami`): what a call would use, read the way the
-- clients read it: the profile, each provider's endpoint and region, its
-- defaults, and for every credential where it comes from. Values of
-- credentials are never shown, not even in part.
local aitems = require("trainctl.providers.aitems")
local azure = require("trainctl.providers.azure_language")
local config = require("trainctl.config")
local errors = require("trainctl.errors")
local json = require("trainctl.json")
local opensearch = require("trainctl.providers.opensearch")

local M = {}

M.USAGE = [[
usage: trainctl [--profile NAME] config [--json]
       trainctl whoami
Shows the effective profile, each provider's endpoint, region and
defaults, and where each credential comes from (the environment or a
profile in the credentials file), never its value.]]

-- setting(var, default) -> {value, from}: a plain (non-secret) setting.
local function setting(vars, default, default_from)
  for _, var in ipairs(vars) do
    local v = config.get(var)
    if v then return { value = v, from = var .. " from " .. config.origin_of(var) } end
  end
  if default then return { value = default, from = default_from or "default" } end
  return { value = json.null, from = "not set: " .. table.concat(vars, " or ") }
end

local function credential(var)
  local from = config.origin_of(var)
  return { name = var, set = from ~= nil, from = from or "not set" }
end

local function aitems_view()
  return {
    name = "aitems",
    settings = { { "endpoint", setting({ "TRAINCTL_AITEMS_ENDPOINT" }, aitems.DEFAULT_ENDPOINT) } },
    credentials = { credential("NCLOUD_ACCESS_KEY"), credential("NCLOUD_SECRET_KEY") },
  }
end

local function opensearch_view()
  local region = setting({ "ALIBABA_CLOUD_REGION_ID" }, opensearch.DEFAULT_REGION)
  local default_ep = ("https://opensearch.%s.aliyuncs.com"):format(region.value)
  return {
    name = "opensearch",
    settings = {
      { "endpoint", setting({ "TRAINCTL_OPENSEARCH_ENDPOINT" }, default_ep, "default, from the region") },
      { "region", region },
      { "app_group_identity", setting({ "OPENSEARCH_APP_GROUP" }) },
      { "function_name", setting({ "OPENSEARCH_FUNCTION_NAME" }) },
    },
    credentials = { credential("ALIBABA_CLOUD_ACCESS_KEY_ID"), credential("ALIBABA_CLOUD_ACCESS_KEY_SECRET") },
  }
end

local function azure_view()
  local creds = { credential("AZURE_LANGUAGE_KEY") }
  local auth = creds[1].set and "key" or nil
  local entra = { credential("AZURE_TENANT_ID"), credential("AZURE_CLIENT_ID"), credential("AZURE_CLIENT_SECRET") }
  for _, c in ipairs(entra) do creds[#creds + 1] = c end
  if not auth then
    auth = (entra[1].set and entra[2].set and entra[3].set) and "entra" or json.null
  end
  local settings = {
    { "endpoint", setting({ "TRAINCTL_AZURE_LANGUAGE_ENDPOINT", "AZURE_LANGUAGE_ENDPOINT" }) },
    { "auth", { value = auth, from = auth == "key" and "AZURE_LANGUAGE_KEY is set"
      or auth == "entra" and "AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET are set"
      or "neither AZURE_LANGUAGE_KEY nor the three AZURE_* Entra ID settings" } },
  }
  if auth == "entra" then
    settings[#settings + 1] = { "authority", setting({ "TRAINCTL_ENTRA_ENDPOINT" }, azure.DEFAULT_AUTHORITY) }
  end
  return { name = "azure_language", settings = settings, credentials = creds }
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
    providers = { aitems_view(), opensearch_view(), azure_view() },
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
      return 0
    elseif a == "--json" then
      fmt = "json"
    else
      errors.usage(("trainctl config: unknown argument %q (--json, --help)"):format(a))
    end
  end
  local v = M.view()
  io.stdout:write(fmt == "json" and as_json(v) or as_text(v), "\n")
  return 0
end

return M
