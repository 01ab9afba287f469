-- The job every provider's training start returns: one state vocabulary
-- (pending, running, succeeded, failed, cancelled) across clouds, waiting
-- with a progress display, cancelling where the provider can, and a plain
-- reference that a state file can keep so a later run resumes the job.
local errors = require("trainctl.errors")
local log = require("trainctl.log")
local retry = require("trainctl.core.retry")
local wait = require("trainctl.core.wait")

local M = {}

M.STATES = { pending = true, running = true, succeeded = true, failed = true, cancelled = true }
M.TERMINAL = { succeeded = true, failed = true, cancelled = true }

local Job = {}
Job.__index = Job
Job.__name = "trainctl.job"

function Job.__tostring(j)
  return ("job(%s)"):format(j.label)
end

-- new{provider, label, ref, poll, cancel, interval, max_interval}
-- poll(job) -> {state, progress, raw, message, code, eta, retry_after}
-- cancel(job) -> raw answer, or nil when the provider cannot cancel.
-- The fields are set one by one rather than in a constructor, which would
-- size the table for all nine whether given or not: a job waited on keeps
-- its table as long as it runs, and a provider without cancel or an id
-- fits in half the room.
function M.new(def)
  assert(type(def.poll) == "function", "job.new: poll function required")
  local j = setmetatable({}, Job)
  j.provider, j.label, j.ref, j.id = def.provider, def.label or def.provider or "job", def.ref, def.id
  j._poll, j._cancel, j.interval, j.max_interval = def.poll, def.cancel, def.interval, def.max_interval
  return j
end

-- status() -> {state, progress = 0..100|nil, raw, message, eta}
function Job:status()
  local st = self._poll(self)
  if not M.STATES[st.state] then
    errors.raise({ kind = "api", provider = self.provider,
      message = ("%s: unknown job state %q"):format(self.label, tostring(st.state)) })
  end
  -- Progress is 0..100 whatever a server reports (-7, 1e20, a string);
  -- an ETA only a finite time.
  local p = tonumber(st.progress)
  st.progress = p and p == p and math.max(0, math.min(100, p)) or nil
  local eta = tonumber(st.eta)
  st.eta = eta and eta > -math.huge and eta < math.huge and eta or nil
  self.last = st
  return st
end

-- The progress display: a rewritten line on a terminal, a log line per
-- change otherwise (state, every 10 percent, or once a minute).
local Progress = {}
Progress.__index = Progress

-- The display of every quiet wait: it shows nothing and keeps nothing, so
-- thousands of jobs waited on at once (wait_all) share it.
local QUIET = setmetatable({ quiet = true }, Progress)

local function new_progress(label, quiet, provider)
  if quiet then return QUIET end
  return setmetatable({
    label = label, start = wait.clock(), tty = not quiet and log.progress_supported(),
    quiet = quiet, provider = provider,
  }, Progress)
end

-- observed(p, now) -> seconds left at the rate progress has moved since
-- the first poll that showed it, or nil.
function Progress:observed(p, now)
  if not p then return nil end
  if not self.p0 then
    self.p0, self.t0 = p, now
    return nil
  end
  if p > self.p0 and p < 100 then
    return (now - self.t0) * (100 - p) / (p - self.p0)
  end
end

-- The server's estimate, unless the progress seen so far says otherwise
-- by more than a factor of three (a server whose clock runs at another
-- speed, as cloudsim's does, or an estimate never updated): then the
-- observed rate. The first poll with progress shows none: nothing can
-- confirm the server's figure yet.
local function eta_of(self, st, now)
  local first = tonumber(st.progress) and not self.p0
  local seen = self:observed(tonumber(st.progress), now)
  local left = st.eta and st.eta - require("trainctl.sys").now()
  if left and left <= 0 then left = nil end
  if first then return nil end
  if left and seen and (left > 3 * seen + 60 or seen > 3 * left + 60) then return seen end
  return left or seen
end

-- text(st) -> the line, and its facts as fields (for JSON lines).
function Progress:text(st)
  local now = wait.clock()
  local parts = { self.label .. ":", st.state }
  local p = tonumber(st.progress)
  if p then parts[#parts + 1] = ("%d%%"):format(math.floor(p + 0.5)) end
  local eta = st.state == "running" and eta_of(self, st, now)
  if eta then parts[#parts + 1] = "ETA " .. wait.duration(eta) end
  parts[#parts + 1] = "elapsed " .. wait.duration(now - self.start)
  local elapsed = math.floor((now - self.start) * 1000 + 0.5) / 1000
  return table.concat(parts, " "), { job = self.label, provider = self.provider, state = st.state,
    progress = p, eta = eta and math.floor(eta + 0.5) or nil, elapsed = elapsed }
end

function Progress:update(st)
  if self.quiet then return end
  local text, data = self:text(st)
  if self.tty then
    log.progress(text)
    return
  end
  -- The end is reported once, by wait.
  if M.TERMINAL[st.state] then return end
  local now = wait.clock()
  local bucket = st.progress and math.floor(tonumber(st.progress) / 10) or -1
  if st.state ~= self.last_state or bucket ~= self.last_bucket
    or now - (self.last_log or 0) >= 60 then
    log.info(text, nil, data)
    self.last_state, self.last_bucket, self.last_log = st.state, bucket, now
  end
end

function Progress:finish()
  if self.tty then log.progress_done() end
end

-- own_reason(self, st) -> the provider's reason without what the error
-- already says: the code (shown beside the kind) and a restatement of
-- what failed ("training of ctr_fail failed: why" after the job's label).
local function own_reason(self, st)
  local reason = st.message
  if type(reason) ~= "string" or reason == "" then return "ended " .. st.state end
  local code = st.code and tostring(st.code)
  if code and reason:sub(1, #code + 2) == code .. ": " then reason = reason:sub(#code + 3) end
  local head, rest = reason:match("^(.-)%s" .. st.state .. ":%s*(.+)$")
  if head and self.id and head:find(tostring(self.id), 1, true) then reason = rest end
  return reason
end

local function failure(self, st)
  local reason = own_reason(self, st)
  return errors.new({
    kind = "training_failed", provider = self.provider, code = st.code or st.state,
    message = ("%s %s: %s"):format(self.label, st.state, reason), job = self.ref,
    state = st.state, partial = st.partial,
  })
end

-- outage(v) -> seconds: a wait's outage budget given as seconds or as a
-- duration ("45m"); nil takes TRAINCTL_OUTAGE_BUDGET, else the default.
local function outage(v)
  if v == nil then return require("trainctl.config").outage_budget() end
  local n = tonumber(v)
  if type(v) == "string" and not n then n = require("trainctl.sys").parse_duration(v) end
  if not n or n ~= n or n < 0 then
    errors.usage(("wait: outage must be seconds or a duration such as 30m, not %q"):format(tostring(v)))
  end
  return n
end

-- pace(self, hint, warned) -> delay, warned: a server's Retry-After paces
-- the polls, within the bounds retries have (retry.pace): a status asking
-- for a year is polled again after the cap (said once per wait), one
-- asking for 0 s after the floor.
local function pace(self, hint, warned)
  local delay, capped = retry.pace(hint)
  if capped and not warned then
    log.warn(("%s: the server asked to poll again after %gs; polling after %gs instead")
      :format(self.label, hint, delay), nil, { job = self.label, provider = self.provider,
      retry_after = hint, delay = delay })
    warned = true
  end
  return delay, warned
end

-- poller(self, display, on_progress) -> the function wait.poll calls.
-- Every waiting job holds it (and what it names) while it sleeps: it
-- names only what a poll needs.
local function poller(self, display, on_progress)
  local warned = false
  return function()
    local polled, s = pcall(self.status, self)
    local delay
    if not polled then
      -- A 404 without the provider's own not-found code (a proxy, a
      -- gateway in a bad minute) says nothing of the job: asked again.
      -- Not one the provider calls an auth error (OpenSearch answers an
      -- unknown access key with 404 InvalidAccessKeyId.NotFound): that
      -- one will not pass.
      local stray = errors.is(s) and s.status == 404 and s.kind ~= "auth" and not errors.not_found(s)
      if not (retry.transient(s) or stray) then error(s, 0) end
      delay, warned = pace(self, s.retry_after, warned)
      return nil, s, delay
    end
    display:update(s)
    if on_progress then on_progress(s, self) end
    delay, warned = pace(self, s.retry_after, warned)
    return M.TERMINAL[s.state] or false, s, delay
  end
end

-- wait{timeout, interval, max_interval, on_progress, quiet, outage} ->
-- final status. Raises training_failed when the job fails or is cancelled,
-- timeout when the time is up (the job keeps running: wait again or cancel
-- it). A status poll that fails in a way that may pass (no answer, a 5xx,
-- 408 or 429, a body cut short or unreadable: retry.transient) leaves the
-- state unknown and is tried again, for up to outage seconds in a row
-- (default 30 minutes, TRAINCTL_OUTAGE_BUDGET); an auth error or another
-- 4xx ends the wait at once.
function Job:wait(opts)
  opts = opts or {}
  local display = new_progress(self.label, opts.quiet, self.provider)
  -- TRAINCTL_POLL_INTERVAL overrides every script's polling pace: an
  -- emulator with a fast clock needs no patience.
  local forced = require("trainctl.config").poll_interval()
  -- Only the options given: the table lives as long as the wait.
  local o = { interval = forced or opts.interval or self.interval or 5,
    max_interval = forced or opts.max_interval or self.max_interval or 60,
    what = self.label, outage = outage(opts.outage),
    data = { job = self.label, provider = self.provider } }
  o.timeout, o.backoff, o.jitter = opts.timeout, opts.backoff, opts.jitter
  local ok, st = pcall(wait.poll, poller(self, display, opts.on_progress), o)
  display:finish()
  if not ok then
    if errors.is(st, "timeout") then
      st.provider, st.job = self.provider, self.ref
    end
    error(st, 0)
  end
  if st.state ~= "succeeded" then error(failure(self, st), 0) end
  if not opts.quiet then
    log.info(("%s: succeeded after %s"):format(self.label, wait.duration(wait.clock() - display.start)),
      nil, { job = self.label, provider = self.provider, state = st.state, progress = st.progress,
        elapsed = math.floor((wait.clock() - display.start) * 1000 + 0.5) / 1000 })
  end
  return st
end

-- cancel() -> provider's answer. A usage error where the provider has no
-- way to stop a running training.
function Job:cancel()
  if not self._cancel then
    errors.usage(("%s: %s cannot cancel a running job"):format(self.label,
      self.provider or "this provider"), { provider = self.provider })
  end
  return self._cancel(self)
end

function Job:can_cancel()
  return self._cancel ~= nil
end

-- wait_all(jobs [, opts]) -> final statuses, in order. Every job is
-- waited on at once, each in its own task, so a hundred trainings cost no
-- more wall time than the longest. opts are job:wait's (each job's own
-- progress display is off unless quiet = false) plus errors = "collect":
-- a failed job then leaves {state, error} in its place instead of
-- raising. Otherwise the first failure is raised once every job has
-- ended, with err.statuses holding all outcomes.
function M.wait_all(jobs, opts)
  local task = require("trainctl.core.task")
  opts = opts or {}
  local o = {}
  for k, v in pairs(opts) do o[k] = v end
  if o.quiet == nil then o.quiet = true end
  local tasks, done = {}, 0
  for i, j in ipairs(jobs) do
    tasks[i] = task.spawn(function()
      local ok, st = pcall(j.wait, j, o)
      done = done + 1
      local state = ok and st.state or (type(st) == "table" and st.state or "failed")
      log.info(("%s: %s (%d of %d jobs ended)"):format(j.label, state, done, #jobs), nil,
        { job = j.label, provider = j.provider, state = state, ended = done, jobs = #jobs })
      if not ok then error(st, 0) end
      return st
    end)
  end
  local out, first = {}, nil
  for i, t in ipairs(tasks) do
    local ok, r = pcall(t.join, t)
    if ok then
      out[i] = r
    else
      out[i] = { state = type(r) == "table" and r.state or "failed", error = r }
      if first == nil then first = r end
    end
  end
  if first ~= nil and opts.errors ~= "collect" then
    if type(first) == "table" then first.statuses = out end
    error(first, 0)
  end
  return out
end

-- settle: seconds a start may take from the moment a server carries it
-- out to showing in the provider's lists. A start whose fate is unknown
-- (its answer lost, or its run killed) is looked for until its own
-- timeout and settle have passed since it was sent, before it is made
-- again: a request held by a slow gateway can still land until then.
M.settle = retry.settle

local function boot_id()
  local f = io.open("/proc/sys/kernel/random/boot_id", "r")
  if not f then return nil end
  local id = f:read("l")
  f:close()
  return id
end

-- pending(ref, hold): marks ref as a start about to be sent, to land no
-- later than hold seconds from now: by the wall clock, and by the boot
-- clock of this boot, which no one can set (a clock stepped forward
-- between a kill and the next run must not end the wait early).
local function pending(ref, hold)
  local sys = require("trainctl.sys")
  local now = sys.now()
  ref.pending, ref.pending_at, ref.pending_until = true, now, now + hold
  ref.pending_boot, ref.pending_boot_until = boot_id(), sys.boottime() + hold
  ref.pending_hold = hold
end

-- The longest hold a record is believed for: a request timeout of a day
-- (TRAINCTL_REQUEST_TIMEOUT's bound), and what follows it.
local MAX_HOLD = 86400 + 5 + M.settle

-- landed_by(ref, hold) -> deadline, clock: until when a recorded start
-- may still land, on the clock to read it with. The run that recorded it
-- may have had a longer timeout than this one (another setting, another
-- host): its own hold counts, within MAX_HOLD.
local function landed_by(ref, hold)
  local sys = require("trainctl.sys")
  local recorded = tonumber(ref.pending_hold)
  if recorded and recorded == recorded then hold = math.max(hold, math.min(recorded, MAX_HOLD)) end
  local boot = tonumber(ref.pending_boot_until)
  if boot and ref.pending_boot ~= nil and ref.pending_boot == boot_id() then
    return math.min(boot, sys.boottime() + hold), sys.boottime
  end
  -- Another boot (or a record of an older version): the wall clock, and
  -- a clock set back since must not make the wait endless.
  local deadline = tonumber(ref.pending_until) or ((tonumber(ref.pending_at) or 0) + hold)
  return math.min(deadline, sys.now() + hold), sys.now
end

-- start{prepare, create, lookup, open, running, record, conflict, what,
-- retry, timeout, resume} -> job: a training start that neither a lost
-- answer nor a kill -9 at any moment can turn into two trainings.
--
-- prepare() -> ref: what identifies this start before it is made (the
-- trainings that existed before). record(ref), when given, is called with
-- that ref, marked pending, before the request goes out, and with the
-- job's ref once the start is known to have happened; a script saves it in
-- trainctl.state. resume is a ref an earlier run recorded: a confirmed one
-- is opened (open(ref) -> job) without any request; a pending one is
-- looked up (lookup(ref) -> job | nil), until the request it stands for
-- can no longer land, and started only when the training is not there.
-- create(ref) -> job makes the request; when its answer is lost it is
-- looked up the same way (retry.create_once). With adopt = true, a start
-- refused because a training is already running there (conflict(err))
-- adopts that training when running(ref) finds it (-> job): a workflow
-- that wants the service trained (a cron job finding yesterday's training
-- unfinished) waits for the training in progress instead of failing.
-- timeout is the start request's own (default: the retry policy's).
function M.start(o)
  local ref = o.resume
  if ref ~= nil and type(ref) ~= "table" then
    errors.usage("resume must be a job reference (a table recorded by an earlier run)")
  end
  if ref and not ref.pending then return o.open(ref) end
  -- Its own time to answer, the lock and fsync of its record, and the
  -- time a start takes to show in the lists.
  local hold = (o.timeout or retry.policy(o.retry).timeout) + 5 + M.settle
  local found
  if ref then
    log.info("looking up the training an earlier run may have started (its answer was never recorded)")
    local deadline, clock = landed_by(ref, hold)
    found = retry.look_until(function() return o.lookup(ref) end, deadline, clock, "that start", M.settle)
  else
    ref = o.prepare()
  end
  local j = found or retry.create_once({
    what = o.what, retry = o.retry, conflict = o.conflict, uncertain = o.resume ~= nil, hold = M.settle,
    create = function()
      -- Recorded before each send, the first and any sent again: a run
      -- killed while it looks up a resent start waits for that one.
      pending(ref, hold)
      if o.record then o.record(ref) end
      local ok, made = pcall(o.create, ref)
      if ok then return made end
      if o.adopt and o.running and errors.is(made) and not made.ambiguous and o.conflict and o.conflict(made) then
        local busy = o.running(ref)
        if busy then
          log.info(("%s: a training is already running there; waiting for it instead of starting another")
            :format(busy.label), { error = tostring(made) })
          return busy
        end
      end
      error(made, 0)
    end,
    lookup = function() return o.lookup(ref) end,
  })
  for _, k in ipairs({ "pending", "pending_at", "pending_until", "pending_boot", "pending_boot_until" }) do
    j.ref[k] = nil
  end
  if o.record then o.record(j.ref) end
  return j
end

return M
