-- Waiting: the one sleep every module uses, and generic polling with
-- exponential backoff and jitter.
local errors = require("trainctl.errors")

local M = {}

-- The only place that sleeps. Inside a task the event loop makes this
-- yield; everything else (retries, polling) goes through it.
function M.sleep(seconds)
  if seconds > 0 then require("trainctl.sys").sleep(seconds) end
end

function M.clock()
  return require("trainctl.sys").clock()
end

-- duration(s) -> "1h02m", "3m05s", "42s": for messages and the progress line.
function M.duration(s)
  -- Within what %d prints: an ETA from a server's dates can be anything.
  s = tonumber(s) or 0
  if s ~= s then s = 0 end
  s = math.floor(math.max(0, math.min(s, 2 ^ 31)) + 0.5)
  if s >= 3600 then
    return ("%dh%02dm"):format(s // 3600, (s % 3600) // 60)
  elseif s >= 60 then
    return ("%dm%02ds"):format(s // 60, s % 60)
  end
  return ("%ds"):format(s)
end

-- outage: seconds a status may stay unknown (polls failing one after
-- the other) before the wait gives up.
M.defaults = { interval = 5, max_interval = 60, backoff = 1.5, jitter = 0.1, outage = 1800 }

local function opt(opts, name)
  local v = opts[name]
  if v == nil then v = M.defaults[name] end
  return v
end

-- The bounds of a polling interval: below the floor a wait hammers the
-- cloud (0 would poll it thousands of times a second); above the cap, or
-- not a number (nan), it would never poll again.
M.MIN_INTERVAL, M.MAX_INTERVAL = 0.05, 3600

-- check_interval(v) -> seconds, or nil and what is wrong with v.
function M.check_interval(v)
  local n = tonumber(v)
  if not n or n ~= n or n < M.MIN_INTERVAL or n > M.MAX_INTERVAL then
    return nil, ("must be a number of seconds from %g to %g, not %s"):format(M.MIN_INTERVAL,
      M.MAX_INTERVAL, type(v) == "string" and ("%q"):format(v) or tostring(v))
  end
  return n
end

-- interval(opts, name) -> opts[name] (or its default), checked.
local function interval_opt(opts, name)
  local n, err = M.check_interval(opt(opts, name))
  if not n then errors.usage(("wait: %s %s"):format(name, err)) end
  return n
end

-- jittered(d, fraction): d spread by +-fraction, never negative.
function M.jittered(d, fraction)
  if not fraction or fraction <= 0 then return d end
  return math.max(0, d * (1 + fraction * (2 * math.random() - 1)))
end

-- seconds(d) -> "0.4s", "8.0s", "3m05s": a delay for a message.
local function seconds(d)
  if d < 1 then return ("%.2fs"):format(d) end
  if d < 10 then return ("%.1fs"):format(d) end
  return M.duration(d)
end

-- The error that ends an outage longer than the budget: the last failure's
-- kind, status and request, with how long the status stayed unknown.
local function outage_error(what, lasted, budget, last)
  return errors.new({
    kind = last.kind, status = last.status, code = last.code, provider = last.provider,
    request_id = last.request_id, method = last.method, url = last.url,
    message = ("%s: status unknown for %s, longer than the outage budget (%s): %s"):format(
      what, M.duration(lasted), M.duration(budget), tostring(last.message)),
  })
end

-- The JSON fields of an outage line: the caller's (a job's name and
-- provider), how long the status has been unknown, the next delay and
-- what the last poll met (ms precision).
local function outage_data(data, lasted, delay, err)
  local function ms(x) return x and math.floor(x * 1000 + 0.5) / 1000 end
  local d = { outage = ms(lasted), delay = ms(delay) }
  if err then
    d.kind, d.status, d.code, d.request_id = err.kind, err.status, err.code, err.request_id
    d.provider = err.provider
  end
  for k, v in pairs(data or {}) do d[k] = v end
  return d
end

-- The rare turns of poll, out of its loop so that its frame stays small:
-- every waiting task keeps that frame on its stack while it sleeps.

-- The status was unknown since `since` and is known again.
local function known_again(opts, what, since)
  local lasted = M.clock() - since
  require("trainctl.log").info(("%s: status known again after %s"):format(what, M.duration(lasted)),
    nil, outage_data(opts.data, lasted))
end

-- The time is up: a "timeout" error, saying what the last poll met when
-- the status was unknown.
local function time_up(what, timeout, unknown, lasted, value)
  local why = unknown and (" (status unknown for %s: %s)"):format(M.duration(lasted),
    tostring(value.message)) or ""
  errors.raise({
    kind = "timeout",
    message = ("%s did not finish within %s%s"):format(what, M.duration(timeout), why),
    value = not unknown and value or nil,
  }, 3)
end

local function warn_unknown(opts, what, lasted, d, value)
  require("trainctl.log").warn(("%s: status unknown for %s (%s); polling again in %s"):format(
    what, M.duration(lasted), tostring(value), seconds(d)), nil, outage_data(opts.data, lasted, d, value))
end

-- poll(fn [, opts]) -> value. fn() returns done, value [, delay]; a delay
-- (e.g. a server's Retry-After) replaces the computed one for that round.
-- fn returns nil, err (an error object) when it cannot tell this time (the
-- service is unreachable, busy or answered garbage): that is an outage,
-- polled through with the same backoff and logged at warn, until it has
-- lasted opts.outage seconds (then err, with that said, is raised).
-- opts: timeout (seconds, nil = no limit), interval, max_interval, backoff,
-- jitter, outage, what (named in messages), data (fields of the outage
-- lines in --log-format json, besides the failure's own).
-- Raises a "timeout" error when the time is up.
function M.poll(fn, opts)
  opts = opts or {}
  local timeout = opts.timeout
  local interval = interval_opt(opts, "interval")
  local max_interval = math.max(interval_opt(opts, "max_interval"), interval)
  local backoff = opt(opts, "backoff")
  local jitter = opt(opts, "jitter")
  local budget = opt(opts, "outage")
  local what = opts.what or "operation"
  local start = M.clock()
  local delay = interval
  local unknown_since
  while true do
    local asked = M.clock()
    local done, value, hint = fn()
    local unknown = done == nil and errors.is(value)
    if unknown then
      unknown_since = unknown_since or asked
    elseif unknown_since then
      known_again(opts, what, unknown_since)
      unknown_since = nil
    end
    if done then return value end
    local now = M.clock()
    local lasted = unknown and now - unknown_since
    if unknown and lasted >= budget then
      error(outage_error(what, lasted, budget, value), 2)
    end
    if timeout and now - start >= timeout then time_up(what, timeout, unknown, lasted, value) end
    local d = hint and math.max(0, hint) or M.jittered(delay, jitter)
    if timeout then d = math.min(d, timeout - (now - start)) end
    if unknown then
      d = math.min(d, budget - lasted)
      warn_unknown(opts, what, lasted, d, value)
    end
    -- What the poll answered is the caller's (a job keeps it as job.last):
    -- this frame need not hold it through the sleep.
    done, value, hint = nil, nil, nil -- luacheck: ignore 311
    M.sleep(d)
    delay = math.min(delay * backoff, max_interval)
  end
end

return M
