-- The retry policy, in one place: which failures are worth another try,
-- how long to wait before it (exponential backoff with jitter; a server's
-- Retry-After, x-acs-retry-after or retry-after-ms within a floor and a
-- cap), and how a create is made safe to repeat by looking up what it
-- would have made. core/http.lua, api/job.lua and fanout.lua ask here;
-- every wait goes through core/wait.lua's sleep and clock, which tests
-- replace.
local errors = require("trainctl.errors")
local log = require("trainctl.log")
local wait = require("trainctl.core.wait")

local M = {}

-- Retry policy; a client's retry= and a call's retry= override fields.
-- retry=false turns retries off.
M.defaults = {
  attempts = 5,          -- tries in all, the first included
  max_time = 300,        -- seconds from the first try after which no retry starts
  base_delay = 0.5,      -- first backoff; doubles each retry
  max_delay = 30,        -- cap on one backoff
  -- Cap on a server's Retry-After (warned when exceeded); well below
  -- max_time, so that a capped wait still leads to a retry.
  max_retry_after = 120,
  -- Seconds one request may take, answer included; also how long a
  -- server may still act on a request whose answer was lost.
  timeout = 300,
  -- Floor on a server's Retry-After: "0" is no reason to ask again in a
  -- tight loop.
  min_retry_after = 1,
}

M.STATUS = { [408] = true, [429] = true, [500] = true, [502] = true, [503] = true,
  [504] = true }

local function copy(t)
  local out = {}
  for k, v in pairs(t or {}) do out[k] = v end
  return out
end

-- delta(v) -> a number of a delta-seconds field (digits, perhaps a
-- fraction) or nil: no sign, exponent, hex or "inf" from a server.
local function delta(v)
  local digits = type(v) == "string" and v:match("^%s*(%d+%.?%d*)%s*$")
  return digits and tonumber(digits)
end

-- retry_after(headers) -> seconds | nil, from Retry-After (seconds or an
-- HTTP date), retry-after-ms, x-ms-retry-after-ms or x-acs-retry-after
-- (milliseconds). Values that are neither are ignored (backoff applies).
function M.retry_after(headers)
  for _, name in ipairs({ "retry-after-ms", "x-ms-retry-after-ms", "x-acs-retry-after" }) do
    local ms = delta(headers and headers[name])
    if ms then return ms / 1000 end
  end
  local v = headers and headers["retry-after"]
  if not v then return nil end
  local n = delta(v)
  if n then return n end
  local sys = require("trainctl.sys")
  local t = sys.parse_rfc1123(v)
  if t then return math.max(0, t - sys.now()) end
  return nil
end

function M.policy(...)
  local p = copy(M.defaults)
  for i = 1, select("#", ...) do
    local o = select(i, ...)
    if o == false then
      p.attempts = 1
    elseif type(o) == "table" then
      for k, v in pairs(o) do p[k] = v end
    end
  end
  return p
end

-- merge(client, call) -> the retry setting of one call: false when
-- either turns retries off (the call's word wins), else fields merged.
function M.merge(a, b)
  if b == false then return false end
  if b == nil then return a end
  if a == false or a == nil then return b end
  local out = copy(a)
  for k, v in pairs(b) do out[k] = v end
  return out
end

-- throttled(err) -> whether an error means "slow down": HTTP 429 or a
-- throttling code (Alibaba answers Throttling.User with a 400).
function M.throttled(e)
  if type(e) ~= "table" then return false end
  if e.status == 429 then return true end
  return type(e.code) == "string" and e.code:find("Throttling", 1, true) ~= nil
end

-- transient(err) -> whether an error may pass by itself, so that asking
-- again later makes sense: no answer (network, timeout), an answer cut
-- short or unreadable (decode), 408, 429, any 5xx, or throttling. An auth
-- error or another 4xx will not change by waiting.
function M.transient(e)
  -- An error that decides the exit status (the run's --timeout, a
  -- signal) ends the run whatever its kind.
  if not errors.is(e) or e.kind == "auth" or e.exit_code then return false end
  if e.kind == "network" or e.kind == "timeout" or e.kind == "decode" then return true end
  local status = tonumber(e.status)
  if status and (M.STATUS[status] or (status >= 500 and status < 600)) then return true end
  return M.throttled(e)
end

-- backoff(n, p) -> seconds before retry n (1-based): exponential, capped,
-- with jitter so that many clients do not retry in step.
function M.backoff(n, p)
  p = p or M.defaults
  local d = math.min(p.max_delay, p.base_delay * 2 ^ (n - 1))
  return d * (0.5 + 0.5 * math.random())
end

-- pace(seconds, p) -> a server's asked-for wait within the policy's
-- floor (min_retry_after) and cap (max_retry_after), and true when the
-- cap cut it (the caller says so in its own words); nil for nil.
function M.pace(seconds, p)
  if not seconds then return nil end
  p = p or M.defaults
  if seconds > p.max_retry_after then return p.max_retry_after, true end
  return math.max(seconds, p.min_retry_after), false
end

-- delay(e, n, p, started [, who]) -> seconds to wait before try n + 1
-- of a request that failed with e, or nil when no try is left (attempts
-- spent, or max_time from started would pass): the server's wait within
-- the floor and cap (a cut one is warned about), else the backoff.
function M.delay(e, n, p, started, who)
  if n >= p.attempts then return nil end
  local d, capped = M.pace(e.retry_after, p)
  if capped then
    log.warn(("%s asked to retry after %gs; waiting %gs instead"):format(who or "server", e.retry_after, d),
      nil, { provider = who, retry_after = e.retry_after, delay = d })
  end
  d = d or M.backoff(n, p)
  if wait.clock() - started + d > p.max_time then return nil end
  return d
end

-- Seconds after its own timeout that a training start whose answer was
-- lost may still show in the lists (api/job.lua's job.settle is this
-- setting, for a start's lookups).
M.settle = 10

-- look_until(lookup, deadline, clock, what [, settle]) -> lookup's first
-- non-nil answer, asking again every few seconds (settle / 2, within 0.5
-- to 5 s) until clock() passes deadline (and once after it), or nil. For a request that may still land: a
-- lookup made before the server could have acted proves nothing.
function M.look_until(lookup, deadline, clock, what)
  local found = lookup()
  local step = math.max(0.5, math.min(5, require("trainctl.api.job").settle / 2))
  local told = false
  while found == nil and clock() < deadline do
    local left = deadline - clock()
    if not told then
      log.info(("%s may still land; looking it up for %.1fs before trying again"):format(what, left))
      told = true
    end
    wait.sleep(math.min(step, left))
    found = lookup()
  end
  return found
end

-- create_once{create, lookup [, conflict, attempts, what, retry,
-- uncertain, hold]} -> result. A create whose outcome is uncertain
-- (connection broken or timed out after sending, 5xx, an unreadable
-- answer) is looked up before it is tried again: conflict(err) says an
-- error means "already exists", which after an uncertain first try means
-- the repeated create found the first one, resolved by lookup too;
-- uncertain = true says the first try may follow an earlier run's.
-- hold = settle seconds (true: M.settle) is for creates that nothing on the server refuses twice
-- (a training start): one whose fate is unknown is sent again only once
-- it can no longer land, its own timeout plus settle after it was
-- sent, and only if the lookup still finds nothing. A create of a named
-- object needs no wait: the server refuses the name a second time.
function M.create_once(o)
  local p = M.policy(o.retry)
  local attempts = o.attempts or p.attempts
  local what = o.what or "the create"
  for attempt = 1, attempts do
    local ok, res = pcall(o.create)
    if ok then return res end
    local e = res
    if not errors.is(e) then error(e, 0) end
    local conflict = (attempt > 1 or o.uncertain) and o.conflict and o.conflict(e)
    if not (e.ambiguous or conflict) then error(e, 0) end
    local found
    if o.hold and e.ambiguous then
      local deadline = (e.hold_until or wait.clock()) + require("trainctl.api.job").settle
      found = M.look_until(o.lookup, deadline, wait.clock, what)
    else
      found = o.lookup()
    end
    if found ~= nil then
      log.info(("%s: %s happened despite the error; using it"):format(e.provider or "client",
        what), { error = tostring(e) })
      return found
    end
    if attempt == attempts then error(e, 0) end
    local delay = M.pace(e.retry_after, p) or M.backoff(attempt, p)
    log.warn(("%s; %s did not happen, trying again in %.1fs"):format(tostring(e), what, delay), nil,
      { provider = e.provider, kind = e.kind, status = e.status, code = e.code, attempt = attempt + 1,
        attempts = attempts, delay = delay })
    wait.sleep(delay)
  end
end

return M
