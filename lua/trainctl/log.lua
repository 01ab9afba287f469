-- Logging on stderr (text or JSON lines), the progress line, and the one
-- redact function that everything printed or raised goes through.
local M = {}

local LEVELS = { error = 1, warn = 2, info = 3, debug = 4, trace = 5 }
M.LEVELS = LEVELS

local REDACTED = "[REDACTED]"
M.REDACTED = REDACTED

-- Options and environment are read through config, loaded when first
-- needed (config itself logs).
local function config() return require("trainctl.config") end
local function option(name) return config().option(name) end

local level, format
local progress_active = false

-- Secret literals registered by config and the providers: every occurrence
-- is replaced, whatever the surrounding text (an error body echoing a key).
local secrets, partial = {}, {}
local ordered

-- The secrets of the requests in flight (each request's own list, which
-- its signer fills: the signature, the Authorization value...), held from
-- before the request is signed until its answer has been read and its
-- error redacted. Released lists stay redacted a while longer (RECENT of
-- them): a job's status or a retry's warning may quote an answer after
-- its request ended.
-- A held list has a snapshot: the forms (see forms) of the strings it
-- holds, those its signer adds later included (the Held metatable). Every
-- form of every snapshot is counted in `counted`, so that a line is
-- redacted at the same cost with ten thousand requests in flight as with
-- one (see held_in). `held` is weak, so a request abandoned half-way (its
-- task cancelled) lets go of its list all the same, and the snapshot's
-- finaliser uncounts it.
local held = setmetatable({}, { __mode = "k" })
local RECENT = 32
local recent, recent_next = {}, 1
local counted, nforms = {}, 0 -- form -> how many held strings have it
local lengths = {}            -- length -> how many counted forms have it
-- The characters of a secret's forms as held_in looks for them; a form
-- with any other character (a "Bearer ..." value) is looked for whole.
local RUN = "[%w%+/=%%\\%-_%.~]"
local odd = {}                -- counted forms with a character outside RUN

local function sink_default(s) io.stderr:write(s) io.stderr:flush() end
local sink = sink_default

local function valid_level(name, from)
  if LEVELS[name] then return name end
  local errors = require("trainctl.errors")
  errors.usage(("%sunknown log level %q (use error, warn, info, debug or trace)")
    :format(from and (from .. ": ") or "", tostring(name)))
end

-- A wrong setting is said once, in the default level and format (the
-- report of the error itself needs them).
local function current_level()
  if not level then
    local v, from = option("log_level"), nil
    if not v then v, from = config().getenv("TRAINCTL_LOG_LEVEL"), "TRAINCTL_LOG_LEVEL" end
    if v == nil or v == "" then v = "info" end
    level = "info"
    level = valid_level(v, from)
  end
  return level
end

local function current_format()
  if not format then
    local v = option("log_format") or config().getenv("TRAINCTL_LOG_FORMAT")
    if v == nil or v == "" then v = "text" end
    format = "text"
    if v ~= "text" and v ~= "json" then
      require("trainctl.errors").usage(("TRAINCTL_LOG_FORMAT: unknown log format %q (use text or json)")
        :format(v))
    end
    format = v
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
  "secret", "sig",
}

local ANCHORED = {}
for i, pat in ipairs(SECRET_NAMES) do ANCHORED[i] = "^" .. pat .. "$" end

-- In free text the names are matched in any case (Password=, "Token":),
-- as a server or a user writes them.
local ANY_CASE = {}
for i, pat in ipairs(SECRET_NAMES) do
  ANY_CASE[i] = pat:gsub("%a", function(c) return "[" .. c:lower() .. c:upper() .. "]" end)
end

-- Names asked about (header names, JSON keys) are few: the answers are
-- kept, up to a bound.
local named, nnamed = {}, 0
local function secret_name(name)
  local n = tostring(name):lower()
  local known = named[n]
  if known ~= nil then return known end
  known = false
  for _, pat in ipairs(ANCHORED) do
    if n:find(pat) then
      known = true
      break
    end
  end
  if nnamed >= 1024 then named, nnamed = {}, 0 end
  named[n], nnamed = known, nnamed + 1
  return known
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
  -- A hex digest (an ACS3 signature) quoted in upper case.
  if secret:find("^%x+$") and secret:find("%l") then list[#list + 1] = secret:upper() end
  return list
end

-- The forms of the registered secrets, kept: every line is redacted for
-- each of them.
local forms_kept = {}
local function registered_forms(secret)
  local list = forms_kept[secret]
  if not list then
    list = forms(secret)
    forms_kept[secret] = list
  end
  return list
end

local function replace_secret(s, secret, repl, registered)
  for _, form in ipairs(registered and registered_forms(secret) or forms(secret)) do
    s = replace_plain(s, form, repl)
  end
  return s
end

local function count_form(f, d)
  local n = (counted[f] or 0) + d
  if n > 0 and not counted[f] then
    nforms, lengths[#f] = nforms + 1, (lengths[#f] or 0) + 1
    if f:find("[^" .. RUN:sub(2)) then odd[f] = true end
  elseif n <= 0 and counted[f] then
    nforms, lengths[#f] = nforms - 1, lengths[#f] > 1 and lengths[#f] - 1 or nil
    odd[f] = nil
  end
  counted[f] = n > 0 and n or nil
end

-- A snapshot holds the forms of its list's strings, counted.
local function add_forms(snap, secret)
  for _, f in ipairs(forms(secret)) do
    snap[#snap + 1] = f
    count_form(f, 1)
  end
end

local function uncount(snap)
  if snap.uncounted then return end
  snap.uncounted = true
  for _, f in ipairs(snap) do count_form(f, -1) end
end

local function holdable(v)
  return type(v) == "string" and #v >= 4 and not secrets[v]
end

-- A snapshot that goes unreleased (its list collected) is uncounted.
local Snapshot = { __gc = uncount }

-- A held list counts the strings its signer adds to it after the hold.
local Held = { __newindex = function(list, k, v)
  rawset(list, k, v)
  local snap = held[list]
  if snap and holdable(v) then add_forms(snap, v) end
end }

-- hold(list) -> list: every string list holds (now or later) is redacted
-- everywhere, whatever the text, until release(list): a log line written
-- while the request is in flight (a provider's classify, a hook), an
-- error, a report.
function M.hold(list)
  if type(list) ~= "table" or held[list] then return list end
  local snap = setmetatable({}, Snapshot)
  for _, v in ipairs(list) do
    if holdable(v) then add_forms(snap, v) end
  end
  held[list] = snap
  if getmetatable(list) == nil then setmetatable(list, Held) end
  return list
end

-- release(list): the request is over; its secrets join the recent ones.
function M.release(list)
  local snap = type(list) == "table" and held[list]
  if not snap then return end
  held[list] = nil
  if getmetatable(list) == Held then setmetatable(list, nil) end
  if recent[recent_next] then uncount(recent[recent_next]) end
  recent[recent_next] = snap
  recent_next = recent_next % RECENT + 1
end

-- held_in(s) -> the counted forms found in s, longest first. With few,
-- each is looked for; with many, every stretch of s as long as one of
-- them, inside the runs of characters they are made of, is looked up.
local SCAN = 256
local function held_in(s)
  local found, seen = {}, {}
  local function note(f)
    if not seen[f] then seen[f] = true found[#found + 1] = f end
  end
  if nforms <= SCAN then
    for f in pairs(counted) do
      if s:find(f, 1, true) then note(f) end
    end
  else
    for f in pairs(odd) do
      if s:find(f, 1, true) then note(f) end
    end
    for a, b in s:gmatch("()" .. RUN .. "+()") do
      for len in pairs(lengths) do
        for i = a, b - len do
          local w = s:sub(i, i + len - 1)
          if counted[w] then note(w) end
        end
      end
    end
  end
  if #found > 1 then table.sort(found, function(x, y) return #x > #y end) end
  return found
end

-- The credentials in the environment and the credentials file are
-- registered at the first redaction, whether or not a client has read
-- them yet: a script may print or raise os.getenv("NCLOUD_SECRET_KEY").
local known_added = false
local function add_known()
  if known_added then return end
  known_added = true
  local ok, cfg = pcall(require, "trainctl.config")
  if ok then pcall(cfg.add_secrets) end
end

-- The values s gives the secret name pat, redacted: "name":"value" in
-- JSON, name=value in forms, queries and free text (the name a word of
-- its own: a base64 signature's value included, "x-token=" excepted).
local function redact_named(s, pat)
  s = s:gsub('("' .. pat .. '"%s*:%s*")([^"]*)(")', function(a, v, c)
    if v == REDACTED then return nil end
    return a .. REDACTED .. c
  end)
  -- A value the text ends in (cut short) is a secret all the same.
  s = s:gsub('("' .. pat .. '"%s*:%s*")[^"]+$', "%1" .. REDACTED)
  return (s:gsub("(%f[%w_%-]" .. pat .. "=)[^&%s\"]*", "%1" .. REDACTED))
end

local function redact_string(s, extra)
  add_known()
  for _, secret in ipairs(secret_list()) do
    if partial[secret] then
      s = replace_secret(s, secret, secret:sub(1, 4) .. "****", true)
    else
      s = replace_secret(s, secret, REDACTED, true)
    end
  end
  if extra and not held[extra] then -- a held list's forms are counted
    for _, secret in ipairs(extra) do
      if type(secret) == "string" and #secret >= 4 then
        s = replace_secret(s, secret, REDACTED)
      end
    end
  end
  for _, form in ipairs(held_in(s)) do s = replace_plain(s, form, REDACTED) end
  -- Credentials that were never registered (a token issued to someone
  -- else, a signature the server computed) still have recognisable shapes.
  s = s:gsub("([Bb]earer%s+)[%w%-%._~%+/]+=*", "%1" .. REDACTED)
  s = s:gsub("(acs%s+[^%s:\"]+:)[%w%+/]+=*", "%1" .. REDACTED)
  s = s:gsub("(ACS3%-HMAC%-SHA256%s+[^\"]-Signature=)%x+", "%1" .. REDACTED)
  s = s:gsub("([Ss]ignature=)%x%x%x%x%x%x%x%x+", "%1" .. REDACTED)
  local lower = s:lower()
  for i, pat in ipairs(SECRET_NAMES) do
    if lower:find(pat) then s = redact_named(s, ANY_CASE[i]) end -- needs the name in s
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

-- redact_values(v): a copy of v (a string or a table, deeply) with the
-- registered secrets, and those of requests in flight or just made, taken
-- out, and nothing else. For what a run prints as its answer: a server
-- that echoes the request must not put its keys on stdout, but the
-- answer's own fields (a token it issued, a signed URL it hands out) are
-- the user's to read, and its JSON stays JSON.
local function values_string(s)
  add_known()
  for _, secret in ipairs(secret_list()) do
    s = replace_secret(s, secret, partial[secret] and (secret:sub(1, 4) .. "****") or REDACTED, true)
  end
  for _, form in ipairs(held_in(s)) do s = replace_plain(s, form, REDACTED) end
  return s
end

function M.redact_values(v, seen)
  local t = type(v)
  if t == "string" then return values_string(v) end
  if t ~= "table" then return v end
  seen = seen or {}
  if seen[v] then return seen[v] end
  local out = {}
  seen[v] = out
  for k, val in pairs(v) do out[M.redact_values(k, seen)] = M.redact_values(val, seen) end
  return setmetatable(out, getmetatable(v))
end

-- escape(s): s with every control character shown as an escape (\n, \r,
-- \t, \x1b, and the C1 controls of UTF-8 as \u009b), so that text from a
-- server cannot start a line of its own or move the cursor.
local ESCAPES = { ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t" }
-- With lines = true, newlines and tabs stay (a traceback's own lines).
function M.escape(s, lines)
  s = tostring(s):gsub(lines and "[%z\1-\8\11-\31\127]" or "[%z\1-\31\127]", function(c)
    return ESCAPES[c] or ("\\x%02x"):format(c:byte())
  end)
  return (s:gsub("\194([\128-\159])", function(c) return ("\\u%04x"):format(c:byte()) end))
end

-- redact_head(s, max [, extra]) -> the beginning of s, redacted, at
-- least max bytes of it: what a caller that cuts s at max may show; and
-- whether that is all of s.
-- Redacting after the cut would miss a secret that straddles it (printed
-- less its last bytes); redacting all of a 64 MiB body would take
-- seconds. So the text is taken as far past max as a secret can reach
-- (the longest one registered, in its longest form) and redacted.
function M.redact_head(s, max, extra)
  local reach = 8192
  for _, secret in ipairs(secret_list()) do reach = math.max(reach, 3 * #secret) end
  for _, secret in ipairs(extra or {}) do
    if type(secret) == "string" then reach = math.max(reach, 3 * #secret) end
  end
  for len in pairs(lengths) do reach = math.max(reach, len) end
  return redact_string(s:sub(1, max + reach), extra), #s <= max + reach
end

-- clip(s, max [, extra]) -> s cut to max bytes (its size said after the
-- cut), redacted before it is cut.
function M.clip(s, max, extra)
  if type(s) ~= "string" then return s end
  if #s <= max then return redact_string(s, extra) end
  local head, whole = M.redact_head(s, max, extra)
  if whole and #head <= max then return head end
  return head:sub(1, max) .. ("... (%d bytes)"):format(#s)
end

local function json_fields(time, lvl, msg, fields, data)
  local json = require("trainctl.json")
  local rec = {}
  for k, v in pairs(data or {}) do rec[k] = v end
  for k, v in pairs(fields or {}) do rec[k] = v end
  rec.time, rec.level, rec.msg = time, lvl, msg
  -- cjson leaves DEL and the C1 controls raw; in a JSON text they can
  -- only be inside strings, where \u escapes mean the same.
  local line = json.encode(rec):gsub("\127", "\\u007f")
    :gsub("\194([\128-\159])", function(c) return ("\\u%04x"):format(c:byte()) end)
  return line .. "\n"
end

local function text_value(v)
  if type(v) == "table" then return require("trainctl.json").encode(v) end
  if type(v) == "number" then return require("trainctl.json").number_string(v) end
  v = tostring(v)
  if v == "" or v:find("[%s\"=%z\1-\31\127]") or v:find("\194[\128-\159]") then
    return '"' .. M.escape((v:gsub('[\\"]', "\\%0"))) .. '"'
  end
  return v
end

local function text_fields(time, lvl, msg, fields)
  local parts = { time, ("%-5s"):format(lvl), M.escape(msg) }
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

-- end_progress(): the last progress stays on the screen and what follows
-- (an error, the ^C a terminal echoed) starts a line of its own.
local function end_progress()
  if progress_active then
    sink("\n")
    progress_active = false
  end
end

-- log(level, msg [, fields [, data]]): one line on stderr if level is
-- enabled. fields are shown in both formats; data only in JSON, for what
-- the text of msg already says (a job's state, a retry's delay) and a
-- program reading the lines wants as fields of their own.
function M.log(lvl, msg, fields, data)
  if not M.enabled(lvl) then return end
  msg = redact_string(tostring(msg))
  if fields then fields = M.redact(fields) end
  local line
  if current_format() == "json" then
    line = json_fields(now_iso(), lvl, msg, fields, data and M.redact(data))
  else
    line = text_fields(now_iso(), lvl, msg, fields)
  end
  clear_progress()
  sink(line)
end

for name in pairs(LEVELS) do
  M[name] = function(msg, fields, data) M.log(name, msg, fields, data) end
end

-- What report shows of an error object, besides its text.
local REPORT_FIELDS = { "kind", "code", "status", "provider", "request_id", "method", "url",
  "retry_after", "attempts" }

-- head(err) -> the text of an error as the message handler printed it,
-- before any traceback.
local function head(err)
  if type(err) == "string" then return err end
  local ok, mt = pcall(getmetatable, err)
  if ok and type(mt) == "table" and mt.__tostring then
    local ok2, text = pcall(tostring, err)
    if ok2 and type(text) == "string" then return text end
  end
  return ("(error object is a %s value)"):format(type(err))
end

-- report(message, err, exit_status [, context]): the last words of a run that
-- failed (or of a REPL line): message is what the message handler made of
-- err, perhaps with a traceback. Redacted as a whole, then written in the
-- log format: one escaped line "trainctl: ..." (a traceback below it keeps
-- its lines), or one JSON object with the error's fields. A run ended by
-- --timeout or a signal gets its one line, without Lua frames. context
-- goes before the text ("error in a task nobody joined").
function M.report(message, err, exit_status, context)
  message = redact_string(tostring(message))
  local text = redact_string(head(err))
  local trace
  if message:sub(1, #text) == text then
    trace = message:sub(#text + 1):match("^\n(.+)$")
  else
    text, trace = message:match("^(.-)\n(stack traceback:\n.*)$")
    text = text or message
  end
  local exit = require("trainctl.exit")
  if exit_status == exit.TIMEOUT or (exit_status or 0) > exit.SIGNAL then trace = nil end
  if context then text = context .. ": " .. text end
  local line
  if current_format() == "json" then
    local rec = { exit_status = exit_status, traceback = trace }
    if type(err) == "table" then
      for _, k in ipairs(REPORT_FIELDS) do
        local v = rawget(err, k)
        if type(v) == "string" or type(v) == "number" then rec[k] = v end
      end
      if rawget(err, "job") ~= nil then rec.job = rawget(err, "job") end
    end
    local ok, encoded = pcall(json_fields, now_iso(), "error", text, M.redact(rec))
    line = ok and encoded or json_fields(now_iso(), "error", text, { exit_status = exit_status })
  else
    line = "trainctl: " .. M.escape(text) .. (trace and ("\n" .. M.escape(trace, true)) or "") .. "\n"
  end
  end_progress()
  sink(line)
end

-- progress(text): rewrite the one-line progress display. Only used when
-- stderr is a terminal and lines are text; otherwise callers log instead.
function M.progress(text)
  sink("\r\27[K" .. M.escape(redact_string(text)))
  progress_active = true
end

-- fresh_line(): after a Ctrl-C, whose ^C the terminal echoed where the
-- cursor was (perhaps the end of the progress line), what follows starts
-- a line of its own; the progress shown stays.
function M.fresh_line()
  sink("\n")
  progress_active = false
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
  level, format, secrets, partial, ordered, forms_kept = nil, nil, {}, {}, nil, {}
  known_added = false
  for _, snap in pairs(held) do snap.uncounted = true end
  for _, snap in pairs(recent) do snap.uncounted = true end
  held, recent, recent_next = setmetatable({}, { __mode = "k" }), {}, 1
  counted, nforms, lengths, odd = {}, 0, {}, {}
  progress_active = false
  sink = sink_default
end

return M
