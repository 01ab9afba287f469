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

M.defaults = { interval = 5, max_interval = 60, backoff = 1.5, jitter = 0.1 }

local function opt(opts, name)
  local v = opts[name]
  if v == nil then v = M.defaults[name] end
  return v
end

-- jittered(d, fraction): d spread by +-fraction, never negative.
function M.jittered(d, fraction)
  if not fraction or fraction <= 0 then return d end
  return math.max(0, d * (1 + fraction * (2 * math.random() - 1)))
end

-- poll(fn [, opts]) -> value. fn() returns done, value [, delay]; a delay
-- (e.g. a server's Retry-After) replaces the computed one for that round.
-- opts: timeout (seconds, nil = no limit), interval, max_interval, backoff,
-- jitter, what (named in the timeout message).
-- Raises a "timeout" error when the time is up.
function M.poll(fn, opts)
  opts = opts or {}
  local timeout = opts.timeout
  local interval = opt(opts, "interval")
  local max_interval = opt(opts, "max_interval")
  local backoff = opt(opts, "backoff")
  local jitter = opt(opts, "jitter")
  local start = M.clock()
  local delay = interval
  while true do
    local done, value, hint = fn()
    if done then return value end
    local elapsed = M.clock() - start
    if timeout and elapsed >= timeout then
      errors.raise({
        kind = "timeout",
        message = ("%s did not finish within %s"):format(opts.what or "operation",
          M.duration(timeout)),
        value = value,
      }, 2)
    end
    local d = hint and math.max(0, hint) or M.jittered(delay, jitter)
    if timeout then d = math.min(d, timeout - elapsed) end
    M.sleep(d)
    delay = math.min(delay * backoff, math.max(max_interval, interval))
  end
end

return M
