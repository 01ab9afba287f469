-- Test doubles of the unit specs: a scripted HTTP transport, a sleep
-- that only records (on a fake clock the sleeps advance), a captured log
-- and a stand-in environment. No network, no waiting.
local S = {}

-- http(responses) -> recorder. Each response is {status, headers, body},
-- {err = {kind, message, curl_code}} or a function(req) returning either.
-- recorder.requests lists what was sent; recorder.restore() undoes.
function S.http(responses)
  local http = require("trainctl.http")
  local rec = { requests = {} }
  local orig = http.request
  http.request = function(req)
    rec.requests[#rec.requests + 1] = req
    local r = table.remove(responses, 1)
    if r == nil then error("unexpected request " .. req.method .. " " .. req.url, 0) end
    if type(r) == "function" then r = r(req) end
    if r.err then return nil, r.err end
    local headers = {}
    for k, v in pairs(r.headers or {}) do headers[k:lower()] = v end
    local body = r.body
    if type(body) == "table" then body = require("trainctl.json").encode(body) end
    return { status = r.status or 200, headers = headers, body = body or "" }
  end
  function rec.restore() http.request = orig end
  function rec.header(i, name)
    local req = rec.requests[i]
    for k, v in pairs(req.headers or {}) do
      if k:lower() == name:lower() then return v end
    end
  end
  rec.remaining = responses
  return rec
end

-- sleeps() -> recorder of wait.sleep calls, with a fake clock that the
-- sleeps advance. recorder.restore() undoes.
function S.sleeps()
  local wait = require("trainctl.wait")
  local rec = { list = {}, now = 1000 }
  local orig_sleep, orig_clock = wait.sleep, wait.clock
  wait.sleep = function(s)
    rec.list[#rec.list + 1] = s
    rec.now = rec.now + s
  end
  wait.clock = function() return rec.now end
  function rec.restore() wait.sleep, wait.clock = orig_sleep, orig_clock end
  return rec
end

-- logs([level]) -> recorder of log output as one string (rec.text()).
function S.logs(level)
  local log = require("trainctl.log")
  local rec = { lines = {} }
  log.set_sink(function(s) rec.lines[#rec.lines + 1] = s end)
  log.set_level(level or "trace")
  log.set_format("text")
  function rec.text() return table.concat(rec.lines) end
  function rec.restore()
    log.set_sink(nil)
    log.set_level("error")
  end
  return rec
end

-- env(t) -> config reads t instead of the process environment.
function S.env(t)
  local config = require("trainctl.config")
  config._reset()
  config.getenv = function(name) return t[name] end
  return function() config._reset() end
end

function S.json(s)
  return require("trainctl.json").decode(s)
end

-- isolate{log = level, env = {...}} -> the before_each/after_each pair
-- the provider specs share: each test gets its own sleeps (iso.sleeps),
-- log capture (iso.logs, at level, default "error") and environment
-- (env, default empty), undone after it.
--   local iso = support.isolate({ log = "info" })
--   before_each(iso.before) after_each(iso.after)
function S.isolate(opts)
  opts = opts or {}
  local iso = {}
  function iso.before()
    iso.sleeps = S.sleeps()
    iso.logs = S.logs(opts.log or "error")
    iso.restore_env = opts.env ~= false and S.env(opts.env or {}) or nil
  end
  function iso.after()
    iso.sleeps.restore()
    iso.logs.restore()
    if iso.restore_env then iso.restore_env() end
  end
  return iso
end

return S
