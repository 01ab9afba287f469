-- Where settings come from: the environment first, then a profile in the
-- credentials file. A profile section holds the same names as the
-- environment (case does not matter):
--
--   [prod]
--   NCLOUD_ACCESS_KEY = ...
--   NCLOUD_SECRET_KEY = ...
local errors = require("trainctl.errors")
local log = require("trainctl.log")

local M = {}

-- This module is the library's only reader of the environment and of
-- the options the host parsed from the command line (trainctl.options):
-- the others ask here: config.getenv(name) for a variable of the run
-- itself (TRAINCTL_LOG_LEVEL: no profile), config.get for a setting.
-- Replaceable for tests.
M.getenv = os.getenv

-- option(name) -> what the command line set (log_level, log_format,
-- profile, state, lock, script...), or nil outside the host.
function M.option(name)
  local ok, opts = pcall(require, "trainctl.options")
  if ok and type(opts) == "table" then return opts[name] end
end
local option = M.option

-- set_option(name, value): a subcommand that reads its own flags
-- (`trainctl state --script`) passes one on as if the host had.
function M.set_option(name, value)
  local ok, opts = pcall(require, "trainctl.options")
  if ok and type(opts) == "table" then opts[name] = value end
end

local function nonempty(v)
  if v ~= nil and v ~= "" then return v end
end

function M.credentials_path()
  local base = nonempty(M.getenv("XDG_CONFIG_HOME"))
  if not base then
    local home = nonempty(M.getenv("HOME")) or "."
    base = home .. "/.config"
  end
  return base .. "/trainctl/credentials"
end

-- The profile asked for (--profile, then TRAINCTL_PROFILE), or nil.
function M.profile_name()
  return nonempty(M._profile) or nonempty(option("profile")) or nonempty(M.getenv("TRAINCTL_PROFILE"))
end

-- profile_origin() -> name, where: the profile in effect and what chose
-- it ("--profile", "TRAINCTL_PROFILE", or "default" when the credentials
-- file's [default] section applies unasked).
function M.profile_origin()
  if nonempty(M._profile) then return M._profile, "the script" end
  local v = nonempty(option("profile"))
  if v then return v, "--profile" end
  v = nonempty(M.getenv("TRAINCTL_PROFILE"))
  if v then return v, "TRAINCTL_PROFILE" end
  return "default", "default"
end

-- parse_ini(text) -> {section = {lowercase key = value}}
function M.parse_ini(text)
  local sections, current = {}, nil
  local n = 0
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do
    n = n + 1
    line = line:gsub("\r$", ""):match("^%s*(.-)%s*$")
    if line == "" or line:find("^[#;]") then
      goto continue
    end
    local name = line:match("^%[%s*(.-)%s*%]$")
    if name then
      current = sections[name] or {}
      sections[name] = current
      goto continue
    end
    local k, v = line:match("^([^=]-)%s*=%s*(.*)$")
    if not k or k == "" then
      return nil, ("line %d is neither [section] nor key = value"):format(n)
    end
    if not current then
      return nil, ("line %d: key outside any [section]"):format(n)
    end
    v = v:match('^"(.*)"$') or v:match("^'(.*)'$") or v
    current[k:lower()] = v
    ::continue::
  end
  return sections
end

local loaded = {}

local function stat(path)
  local ok, sys = pcall(require, "trainctl.sys")
  if ok and sys.stat then return sys.stat(path) end
  local f = io.open(path, "rb")
  if not f then return nil, path .. ": not found" end
  f:close()
  return { mode = 384, type = "file" }
end

-- profile(name) -> table of settings | nil when no profile applies.
-- A named profile that is missing, or a credentials file that others can
-- read, is a usage error: the user asked for it, so silence would mislead.
function M.profile(name)
  local explicit = name ~= nil
  name = name or "default"
  local path = M.credentials_path()
  local cache = loaded[path]
  if cache == nil then
    local st = stat(path)
    if not st then
      cache = false
    else
      -- A directory cannot be read; a FIFO would wait for a writer forever.
      if st.type ~= "file" then
        errors.usage(("credentials file %s is not a regular file (%s)")
          :format(path, st.type == "dir" and "a directory" or "a device, FIFO or socket"))
      end
      if (st.mode & 63) ~= 0 then
        errors.usage(("credentials file %s can be read by group or others (mode %04o); "
          .. "run: chmod 600 %s"):format(path, st.mode & 4095, path))
      end
      local f, err = io.open(path, "rb")
      if not f then errors.usage("cannot read credentials file: " .. tostring(err)) end
      local text, rerr = f:read("a")
      f:close()
      if not text then errors.usage(("cannot read credentials file %s: %s"):format(path, tostring(rerr))) end
      local sections, perr = M.parse_ini(text)
      if not sections then errors.usage(("credentials file %s: %s"):format(path, perr)) end
      for _, sec in pairs(sections) do
        for k, v in pairs(sec) do
          if k:find("secret") or k:find("password") or k:find("token") or k == "azure_language_key" then
            log.add_secret(v)
          elseif k:find("key") then
            log.add_secret(v, { partial = true })
          end
        end
      end
      cache = sections
    end
    loaded[path] = cache
  end
  if not cache then
    if explicit then
      errors.usage(("profile %q was asked for but %s does not exist"):format(name, path))
    end
    return nil
  end
  local sec = cache[name]
  if not sec and explicit then
    errors.usage(("no profile [%s] in %s"):format(name, path))
  end
  return sec
end

-- Where each setting read so far came from: "env" or "profile".
local sources = {}

-- origin_of(var) -> where the setting var comes from, for `trainctl
-- config`: "the environment", "profile 'p' in FILE", or nil when unset.
-- Never the value.
function M.origin_of(var)
  local _, src = M.get(var)
  if src == "env" then return "the environment" end
  if src == "profile" then
    return ("profile '%s' in %s"):format(M.profile_name() or "default", M.credentials_path())
  end
end

-- clean(var, v, where) -> v; a control character (the \r of a key pasted
-- from Windows) is a usage error naming the setting, never its value:
-- sent in a header, it would fail deep in the request.
local function clean(var, v, where)
  if v:find("[%c\127]") then
    local cr = v:find("\r$") and " (a trailing \\r?)" or ""
    errors.usage(("%s%s contains a control character%s"):format(var, where, cr))
  end
  return v
end

-- get(var) -> value, source: the environment variable var, else the same
-- name in the active profile. source is "env" or "profile".
function M.get(var)
  local v = nonempty(M.getenv(var))
  if v then
    sources[var] = "env"
    return clean(var, v, ""), "env"
  end
  local sec = M.profile(M.profile_name())
  if sec then
    v = nonempty(sec[var:lower()])
    if v then
      sources[var] = "profile"
      return clean(var, v, (" in profile '%s'"):format(M.profile_name() or "default")), "profile"
    end
  end
  return nil
end

-- The credential variables (trainctl(1), ENVIRONMENT): true for a
-- secret, "partial" for the id of a key (shown with its first four
-- characters). The etcd password is one too, read or not: a script may
-- print it.
M.CREDENTIALS = {
  NCLOUD_ACCESS_KEY = "partial", NCLOUD_SECRET_KEY = true,
  ALIBABA_CLOUD_ACCESS_KEY_ID = "partial", ALIBABA_CLOUD_ACCESS_KEY_SECRET = true,
  AZURE_LANGUAGE_KEY = true, AZURE_CLIENT_ID = "partial", AZURE_CLIENT_SECRET = true,
  TRAINCTL_ETCD_PASSWORD = true, ETCD_PASSWORD = true,
}

-- add_secrets(): every credential of the environment and of the
-- credentials file is registered with the logger, used or not.
function M.add_secrets()
  for var, kind in pairs(M.CREDENTIALS) do
    local opts = kind == "partial" and { partial = true } or nil
    log.add_secret(os.getenv(var), opts)
    log.add_secret(M.getenv(var), opts)
  end
  M.profile(nil)
end

-- origin(vars, given) -> "check A / B (from the environment)": where the
-- credentials named in vars came from, never their values, for the
-- message of an authentication error. given[var] says the script passed
-- that one to the client itself.
function M.origin(vars, given)
  local groups, order = {}, {}
  for _, var in ipairs(vars) do
    local src = given and given[var] and "given" or sources[var] or "env"
    if not groups[src] then
      groups[src] = {}
      order[#order + 1] = src
    end
    table.insert(groups[src], var)
  end
  local parts = {}
  for _, src in ipairs(order) do
    local where
    if src == "env" then
      where = "from the environment"
    elseif src == "profile" then
      where = ("from profile '%s' in %s"):format(M.profile_name() or "default", M.credentials_path())
    else
      where = "passed to the client by the script"
    end
    parts[#parts + 1] = ("%s (%s)"):format(table.concat(groups[src], " / "), where)
  end
  return "check " .. table.concat(parts, "; ")
end

-- need(var [, hint]) -> value, or a usage error naming what to set.
function M.need(var, hint)
  local v = M.get(var)
  if v then return v end
  local prof = M.profile_name()
  local msg = ("missing credential: set %s%s"):format(var, hint and (" " .. hint) or "")
  if prof then
    msg = msg .. (" or add it to profile [%s] in %s"):format(prof, M.credentials_path())
  end
  errors.usage(msg)
end

-- ca_file() -> the CA bundle to verify servers with, when not the
-- system's: TRAINCTL_CA_FILE (environment or profile), else the variables
-- the curl tool and OpenSSL read, CURL_CA_BUNDLE and SSL_CERT_FILE (libcurl
-- itself ignores them).
function M.ca_file()
  return M.get("TRAINCTL_CA_FILE") or nonempty(M.getenv("CURL_CA_BUNDLE"))
    or nonempty(M.getenv("SSL_CERT_FILE"))
end

-- origin_name(var, ...) -> "VAR" or "VAR in profile 'p'": the first of
-- the settings named that get() found, or nil when none was set.
function M.origin_name(...)
  for _, var in ipairs({ ... }) do
    if sources[var] == "env" then return var end
    if sources[var] == "profile" then
      return ("%s in profile '%s'"):format(var, M.profile_name() or "default")
    end
  end
end

-- endpoint(provider, url, from [, base]) -> url, or a usage error that
-- says what is wrong with it and where it was set (from: the variable,
-- or "endpoint="). base is the path the provider's API lives under
-- (AiTEMS: /api/v1), required when the URL has no path at all: without
-- it every request would reach the server's root.
-- A URL libcurl cannot use would otherwise fail as a network error,
-- retried and, for a create, left ambiguous: host and port are checked
-- here, where the user can be told which setting to fix.
function M.endpoint(provider, url, from, base)
  local where = from and (" (from " .. from .. ")") or ""
  local function bad(why, shown)
    errors.usage(("%s: bad endpoint %s%s: %s"):format(provider, shown or url, where, why))
  end
  -- Checked first, so that no message below echoes the password.
  local authority = url:match("^%a[%w+.-]*://([^/?#]*)") or url:match("^([^/?#]*)")
  if authority:find("@", 1, true) then
    errors.usage(("%s: bad endpoint%s: user information (user:password@) is not taken from the URL; "
      .. "the credentials come from the environment or the credentials file"):format(provider, where))
  end
  if url:find("^%a[%w+.-]*:/*$") then bad("no host") end
  local scheme, rest = url:match("^(%a[%w+.-]*)://(.*)$")
  if not scheme then
    bad(("the scheme is missing; write http://%s or https://%s"):format(url, url))
  end
  scheme = scheme:lower()
  if scheme ~= "http" and scheme ~= "https" then
    bad(("the scheme must be http or https, not %s"):format(scheme))
  end
  if url:find("[%c ]") then bad("it holds a space or a control character", ("%q"):format(url)) end
  local host, path = rest:match("^([^/?#]*)(.*)$")
  -- An IPv6 address may carry a zone (fe80::1%25eth0), and a port may be
  -- empty (RFC 3986: the scheme's own).
  local name, port = host:match("^(%[[%x:.]+%%?[%w%%._~-]*%])(.*)$")
  if not name then name, port = host:match("^([^:]*)(.*)$") end
  if name == "" then bad("no host") end
  if not name:find("^%[") and (name:find("[^%w.%-_\128-\255]") or name:find("^[.-]")) then
    bad(("%q is not a host name or address"):format(name))
  end
  if port ~= "" and port ~= ":" then
    local n = tonumber(port:match("^:(%d+)$") or "")
    if not n or n < 1 or n > 65535 then bad("the port must be a number from 1 to 65535") end
  end
  if base and (path == "" or path == "/") then
    errors.usage(("%s: endpoint %s%s has no path: the API is under %s; write %s%s")
      :format(provider, url, where, base, url:gsub("/+$", ""), base))
  end
  return url
end

-- outage_budget() -> seconds, or nil when unset: how long a job's wait
-- goes on polling while its status cannot be read (an outage), from
-- TRAINCTL_OUTAGE_BUDGET (environment or profile), a duration such as
-- 30m, 2h or 900.
function M.outage_budget()
  local v = M.get("TRAINCTL_OUTAGE_BUDGET")
  if not v then return nil end
  local seconds, err = require("trainctl.sys").parse_duration(v)
  if not seconds then errors.usage("TRAINCTL_OUTAGE_BUDGET: " .. err) end
  return seconds
end

-- request_timeout() -> seconds, or nil when unset: TRAINCTL_REQUEST_TIMEOUT
-- (environment or profile), the time one request to a cloud may take,
-- its answer included, where the script gives its client none: from 1 s
-- to a day. It is also how long a training start whose answer was lost
-- may still land, which a run killed in the middle of one waits out.
function M.request_timeout()
  local v = M.get("TRAINCTL_REQUEST_TIMEOUT")
  if not v then return nil end
  local seconds, err = require("trainctl.sys").parse_duration(v)
  if seconds and (seconds < 1 or seconds > 86400) then
    err = ("%s is out of range (from 1s to 24h)"):format(v)
  end
  if err then errors.usage("TRAINCTL_REQUEST_TIMEOUT: " .. err) end
  return seconds
end

-- poll_interval() -> seconds, or nil when unset: TRAINCTL_POLL_INTERVAL,
-- the pace of every job's polls, whatever the script asks for.
function M.poll_interval()
  local v = nonempty(M.getenv("TRAINCTL_POLL_INTERVAL"))
  if not v then return nil end
  local seconds, err = require("trainctl.core.wait").check_interval(v)
  if not seconds then errors.usage("TRAINCTL_POLL_INTERVAL " .. err) end
  return seconds
end

-- check(): every setting of the environment that can be wrong, checked
-- before a script, a call or the REPL runs: one found wrong at its first
-- use may be found after a paid training has started. A value from the
-- credentials file is checked when the file can be read; what is wrong
-- with the file itself is said when a credential is needed.
function M.check()
  log.level()
  log.format()
  M.poll_interval()
  -- These two may come from the profile as well.
  local ok, sec = pcall(M.profile, M.profile_name())
  for _, s in ipairs({ { "TRAINCTL_OUTAGE_BUDGET", M.outage_budget },
    { "TRAINCTL_REQUEST_TIMEOUT", M.request_timeout } }) do
    if nonempty(M.getenv(s[1])) or ok and sec and nonempty(sec[s[1]:lower()]) then s[2]() end
  end
end

-- Credentials are registered with the logger as soon as they are read, so
-- no later message can carry them.
function M.secret(value)
  log.add_secret(value)
  return value
end

function M.key_id(value)
  log.add_secret(value, { partial = true })
  return value
end

function M._reset()
  loaded, sources = {}, {}
  M._profile = nil
  M.getenv = os.getenv
end

return M
