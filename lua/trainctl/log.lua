-- Logging on stderr (text or JSON lines), the progress line, and the one
-- redact function that everything printed or raised goes through.
local M = {}

local LEVELS = { error = 1, warn = 2, info = 3, debug = 4, trace = 5 }
M.LEVELS = LEVELS

local REDACTED = "[REDACTED]"
M.REDACTED = REDACTED

local function option(name)
  local ok, opts = pcall(require, "trainctl.options")
  if ok and type(opts) == "table" then return opts[name] end
end

local level, format
local progress_active = false

-- Secret literals registered by config and the providers: every occurrence
-- is replaced, whatever the surrounding text (an error body echoing a key).
local secrets, partial = {}, {}
local ordered

local function sink_default(s) io.stderr:write(s) io.stderr:flush() end
local sink = sink_default

local function valid_level(name)
  if LEVELS[name] then return name end
  local errors = require("trainctl.errors")
  errors.usage(("unknown log level %q (use error, warn, info, debug or trace)")
    :format(tostring(name)))
end

local function current_level()
  if not level then
    level = valid_level(option("log_level") or os.getenv("TRAINCTL_LOG_LEVEL") or "info")
  end
  return level
end

local function current_format()
  if not format then
    format = option("log_format") or os.getenv("TRAINCTL_LOG_FORMAT") or "text"
    if format ~= "json" then format = "text" end
  end
  return format
end

function M.set_level(name) level = valid_level(name) end
function M.level() return current_level() end
function M.set_format(name) format = (name == "json") and "json" or "text" end
function M.format() return current_format() end
function M.enabled(name) return LEVELS[name] <= LEVELS[current_level()] end

-- set_sink(fn): where lines go (tests capture them); nil restores stderr.
function M.set_sink(fn) sink = fn or sink_default end

-- add_secret(s [, {partial=true}]): s is never printed. A partial secret
-- (an access key id) keeps its first four characters, enough to tell keys
-- apart in a log.
function M.add_secret(s, opts)
  if type(s) ~= "string" or #s < 4 then return end
  if opts and opts.partial then
    if not secrets[s] then partial[s] = true end
  else
    secrets[s], partial[s] = true, nil
  end
  ordered = nil
end

local function secret_list()
  if not ordered then
    ordered = {}
    for s in pairs(secrets) do ordered[#ordered + 1] = s end
    for s in pairs(partial) do ordered[#ordered + 1] = s end
    table.sort(ordered, function(a, b) return #a > #b end)
  end
  return ordered
end

local function replace_plain(s, needle, repl)
  local out, i = {}, 1
  while true do
    local a, b = s:find(needle, i, true)
    if not a then break end
    out[#out + 1] = s:sub(i, a - 1)
    out[#out + 1] = repl
    i = b + 1
  end
  if i == 1 then return s end
  out[#out + 1] = s:sub(i)
  return table.concat(out)
end

-- Names whose values are secret wherever they appear: headers, JSON fields,
-- form fields, table keys.
local SECRET_NAMES = {
  "authorization", "proxy%-authorization", "ocp%-apim%-subscription%-key",
  "x%-ncp%-apigw%-signature%-v[12]", "x%-acs%-security%-token", "cookie",
  "set%-cookie", "client_secret", "access_token", "refresh_token", "id_token",
  "secret_key", "access_key_secret", "secretkey", "accesskeysecret",
  "password", "signature", "subscription_key", "api_key", "apikey", "token",
  "secret",
}

local function secret_name(name)
  local n = tostring(name):lower()
  for _, pat in ipairs(SECRET_NAMES) do
    if n:find("^" .. pat .. "$") then return true end
  end
  return false
end
M.secret_name = secret_name

-- A secret as a server may quote it: as is, with "/" escaped in JSON
-- ("\/"), or percent-encoded (a base64 signature in a form or a URL).
local function forms(secret)
  local list = { secret }
  local json_form = secret:gsub("/", "\\/")
  local url_form = secret:gsub("[^%w%-%._~]", function(c) return ("%%%02X"):format(c:byte()) end)
  if json_form ~= secret then list[#list + 1] = json_form end
  if url_form ~= secret then list[#list + 1] = url_form end
  return list
end

local function replace_secret(s, secret, repl)
  for _, form in ipairs(forms(secret)) do s = replace_plain(s, form, repl) end
  return s
end

local function redact_string(s, extra)
  for _, secret in ipairs(secret_list()) do
    if partial[secret] then
      s = replace_secret(s, secret, secret:sub(1, 4) .. "****")
    else
      s = replace_secret(s, secret, REDACTED)
    end
  end
  if extra then
    for _, secret in ipairs(extra) do
      if type(secret) == "string" and #secret >= 4 then
        s = replace_secret(s, secret, REDACTED)
      end
    end
  end
  -- Credentials that were never registered (a token issued to someone
  -- else, a signature the server computed) still have recognisable shapes.
  s = s:gsub("([Bb]earer%s+)[%w%-%._~%+/]+=*", "%1" .. REDACTED)
  s = s:gsub("(acs%s+[^%s:\"]+:)[%w%+/]+=*", "%1" .. REDACTED)
  s = s:gsub("(ACS3%-HMAC%-SHA256%s+[^\"]-Signature=)%x+", "%1" .. REDACTED)
  s = s:gsub("([Ss]ignature=)%x%x%x%x%x%x%x%x+", "%1" .. REDACTED)
  for _, pat in ipairs(SECRET_NAMES) do
    -- "name":"value" in JSON, name=value in forms and queries, name: value
    -- in header dumps.
    s = s:gsub('("' .. pat .. '"%s*:%s*")([^"]*)(")', function(a, v, c)
      if v == REDACTED then return nil end
      return a .. REDACTED .. c
    end)
    s = s:gsub("([%?&]" .. pat .. "=)[^&%s\"]*", "%1" .. REDACTED)
    s = s:gsub("^(" .. pat .. "=)[^&%s\"]*", "%1" .. REDACTED)
  end
  return s
end

-- redact(v [, extra]): a copy of v (string or table, deeply) with every
-- secret removed; extra is a list of further literals (this request's
-- signature).
function M.redact(v, extra, seen)
  local t = type(v)
  if t == "string" then return redact_string(v, extra) end
  if t ~= "table" then return v end
  seen = seen or {}
  if seen[v] then return seen[v] end
  local out = {}
  seen[v] = out
  for k, val in pairs(v) do
    if type(k) == "string" and secret_name(k) and type(val) ~= "table" then
      out[k] = REDACTED
    else
      out[k] = M.redact(val, extra, seen)
    end
  end
  return setmetatable(out, getmetatable(v))
end

local function json_fields(time, lvl, msg, fields)
  local json = require("trainctl.json")
  local rec = {}
  for k, v in pairs(fields or {}) do rec[k] = v end
  rec.time, rec.level, rec.msg = time, lvl, msg
  return json.encode(rec) .. "\n"
end

local function text_value(v)
  if type(v) == "table" then return require("trainctl.json").encode(v) end
  if type(v) == "number" then return require("trainctl.json").number_string(v) end
  v = tostring(v)
  if v == "" or v:find("[%s\"=]") then return ("%q"):format(v):gsub("\\\n", "\\n") end
  return v
end

local function text_fields(time, lvl, msg, fields)
  local parts = { time, ("%-5s"):format(lvl), msg }
  if fields then
    local keys = {}
    for k in pairs(fields) do keys[#keys + 1] = tostring(k) end
    table.sort(keys)
    for _, k in ipairs(keys) do
      parts[#parts + 1] = k .. "=" .. text_value(fields[k])
    end
  end
  return table.concat(parts, " ") .. "\n"
end

local function now_iso()
  local ok, sys = pcall(require, "trainctl.sys")
  if ok then return sys.format_iso8601(sys.now()) end
  return os.date("!%Y-%m-%dT%H:%M:%SZ")
end

local function clear_progress()
  if progress_active then
    sink("\r\27[K")
    progress_active = false
  end
end

-- log(level, msg [, fields]): one line on stderr if level is enabled.
function M.log(lvl, msg, fields)
  if not M.enabled(lvl) then return end
  msg = redact_string(tostring(msg))
  if fields then fields = M.redact(fields) end
  local line
  if current_format() == "json" then
    line = json_fields(now_iso(), lvl, msg, fields)
  else
    line = text_fields(now_iso(), lvl, msg, fields)
  end
  clear_progress()
  sink(line)
end

for name in pairs(LEVELS) do
  M[name] = function(msg, fields) M.log(name, msg, fields) end
end

-- progress(text): rewrite the one-line progress display. Only used when
-- stderr is a terminal and lines are text; otherwise callers log instead.
function M.progress(text)
  sink("\r\27[K" .. redact_string(text))
  progress_active = true
end

function M.progress_done()
  clear_progress()
end

function M.progress_supported()
  if current_format() ~= "text" or not M.enabled("info") then return false end
  local ok, sys = pcall(require, "trainctl.sys")
  return ok and sys.isatty(2) and true or false
end

-- Tests reset the cached settings between cases.
function M._reset()
  level, format, secrets, partial, ordered = nil, nil, {}, {}, nil
  progress_active = false
  sink = sink_default
end

return M
