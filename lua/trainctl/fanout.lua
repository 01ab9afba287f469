-- trainctl.fanout: one call per item on the event loop, at most
-- `concurrency` at once, slowing down together when the server throttles.
--
-- A 429 (or a throttling code) halves the number of calls in flight and
-- pauses every worker for the server's Retry-After (else a backoff); the
-- throttled item is tried again. Steady success raises the limit back one
-- step at a time (additive increase, multiplicative decrease), so a
-- million lookups settle at the rate the service allows.
--
--   local recs = fanout.map(user_ids, function(id) return ai:lookup(...) end,
--     { concurrency = 16 })
local log = require("trainctl.log")
local retry = require("trainctl.core.retry")
local task = require("trainctl.core.task")
local wait = require("trainctl.core.wait")

local M = {}

-- map(list, fn, {concurrency = 8, attempts = 8, errors = "raise"|"collect",
-- on_throttle}) -> results (in list order) [, errors by index]
-- fn(item, index) -> result. With errors = "collect" a failed item leaves
-- its error in the second list instead of stopping the run.
function M.map(list, fn, opts)
  opts = opts or {}
  local max = opts.concurrency or 8
  assert(max >= 1, "fanout.map: concurrency must be at least 1")
  local attempts = opts.attempts or 8
  local collect = opts.errors == "collect"
  local limit, active, streak, pause_until = max, 0, 0, 0
  local results, failed, next_i, first_err = {}, {}, 1, nil
  local stats = { throttled = 0, min_limit = max }

  local function wait_slot()
    while active >= limit or wait.clock() < pause_until do
      wait.sleep(math.max(0.005, pause_until - wait.clock()))
    end
    active = active + 1
  end

  local function slow_down(err, tries)
    stats.throttled = stats.throttled + 1
    streak = 0
    local before = limit
    limit = math.max(1, limit // 2)
    stats.min_limit = math.min(stats.min_limit, limit)
    local delay = retry.pace(err.retry_after) or retry.backoff(tries)
    pause_until = math.max(pause_until, wait.clock() + delay)
    if limit < before then
      log.warn(("throttled by the server: %d calls at once (was %d), pausing %.1fs"):format(
        limit, before, delay), nil, { provider = err.provider, status = err.status, code = err.code,
        concurrency = limit, delay = delay })
    end
    if opts.on_throttle then opts.on_throttle(err, limit) end
  end

  local function one(i)
    local tries = 0
    while true do
      tries = tries + 1
      local ok, r = pcall(fn, list[i], i)
      if ok then
        results[i] = r
        streak = streak + 1
        if limit < max and streak >= 4 * limit then
          limit, streak = limit + 1, 0
        end
        return
      end
      if not (retry.throttled(r) and tries < attempts) then
        if collect then failed[i] = r else first_err = first_err or r end
        return
      end
      slow_down(r, tries)
      active = active - 1
      wait_slot()
    end
  end

  local function worker()
    while next_i <= #list and (collect or first_err == nil) do
      wait_slot()
      if next_i > #list or (first_err ~= nil and not collect) then
        active = active - 1
        return
      end
      local i = next_i
      next_i = i + 1
      one(i)
      active = active - 1
    end
  end

  local workers = {}
  for w = 1, math.min(max, #list) do workers[w] = task.spawn(worker) end
  for _, w in ipairs(workers) do w:join() end
  M.last_stats = stats
  if first_err ~= nil then error(first_err, 0) end
  return results, failed
end

return M
