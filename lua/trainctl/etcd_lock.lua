-- --lock etcd://HOST:PORT[,HOST:PORT...]/KEY: one run at a time across
-- machines. The lock is a key tied to a lease, created in a transaction
-- only if absent; a background task keeps the lease alive. When the
-- holder dies its lease expires (after the TTL) and the key is gone.
--
-- A run that loses its lease (paused, cut off from etcd past its TTL)
-- stops at once and fails closed: its work task is cancelled, requests
-- through trainctl.http are refused from the moment the lease may have
-- expired by the local clock, and state writes are fenced by the lease in
-- etcd itself (state_etcd.lua), so a run that was replaced can never
-- overwrite its successor's records.
local errors = require("trainctl.errors")
local etcd = require("trainctl.etcd")
local json = require("trainctl.json")
local log = require("trainctl.log")
local sys = require("trainctl.sys")
local task = require("trainctl.core.task")
local wait = require("trainctl.core.wait")

local M = {}

M.DEFAULT_TTL = 30

local Lock = {}
Lock.__index = Lock

local held -- the run's lock, while it holds one

local function option(name) return require("trainctl.config").option(name) end

local function hostname()
  local f = io.open("/proc/sys/kernel/hostname", "r")
  local name = f and f:read("l")
  if f then f:close() end
  return name or require("trainctl.config").getenv("HOSTNAME") or "?"
end

-- holder(value) -> "host H, pid P, since T" from a lock key's value.
local function holder(value)
  local v = json.decode(value or "")
  if type(v) ~= "table" then return "an unknown holder" end
  return ("host %s, pid %s, since %s"):format(tostring(v.host), tostring(v.pid), tostring(v.since))
end

local function lock_error(lock, fields)
  fields.provider = fields.provider or "etcd"
  fields.lock = lock.url
  return errors.new(fields)
end

-- The lease's clock: the time since boot, suspend included. The
-- monotonic clock stops while the machine sleeps, and a laptop or a VM
-- suspended past the TTL would wake believing it still held the lock.
local function lease_clock() return sys.boottime() end

-- The time, by lease_clock, until which the lease is surely alive: a
-- keepalive sent at t0 that answered ttl keeps it at least until t0 + ttl
-- on the leader, whose clock started later.
local function renewed(self, t0, ttl)
  self.valid_until = t0 + ttl
end

-- Tries once. -> true, or false and the holder's description.
function Lock:try()
  local t0 = lease_clock()
  if not self.lease then
    self.lease, self.granted = self.client:grant(self.ttl)
    self.gone = nil
    renewed(self, t0, self.granted or self.ttl)
  end
  local key = etcd.b64(self.key)
  local ok, ans = self.client:txn({
    compare = { { key = key, target = "CREATE", create_revision = "0" } },
    success = { { request_put = { key = key, value = etcd.b64(self.value), lease = self.lease } } },
    failure = { { request_range = { key = key } } },
  })
  if ok then
    self.revision = ans.header and ans.header.revision
    return true
  end
  local r = ans.responses and ans.responses[1] and ans.responses[1].response_range
  local item = r and r.kvs and r.kvs[1]
  -- Our own key: a first try whose answer was lost had been applied.
  if item and item.lease == self.lease then
    self.revision = item.create_revision
    return true
  end
  return false, holder(item and etcd.unb64(item.value))
end

-- acquire(url [, {ttl, wait}]) -> lock. Exits 3 ("held by ...") at once,
-- or after `wait` seconds of trying.
function M.acquire(url, o)
  o = o or {}
  local where = etcd.parse_url(url)
  local ttl = o.ttl or M.DEFAULT_TTL
  if ttl < 2 then errors.usage("--lock-ttl must be at least 2s") end
  -- A request takes at most a third of the TTL: a keepalive that hangs
  -- must leave time for the next.
  local client = etcd.client(where, { timeout = math.min(etcd.TIMEOUT, ttl / 3),
    max_time = math.min(etcd.MAX_TIME, math.max(ttl, 5)) })
  local self = setmetatable({ url = where.url, key = where.key, client = client, ttl = ttl,
    value = json.encode({ host = hostname(), pid = tostring(sys.getpid()),
      since = sys.format_iso8601 and sys.format_iso8601(sys.now()) or sys.now() }) }, Lock)
  local deadline = wait.clock() + (o.wait or 0)
  local delay = 0.1
  while true do
    local ok, who = self:try()
    if ok then break end
    if wait.clock() >= deadline then
      self:release()
      error(lock_error(self, { kind = "lock", exit_code = require("trainctl.exit").LOCKED,
        message = ("%s is held by another run (%s)"):format(self.url, who) }), 0)
    end
    if not self.waiting then
      log.info(("%s is held by another run (%s); waiting"):format(self.url, who))
      self.waiting = true
    end
    -- the lease lives while we wait (or is granted again)
    if not self:renew() then self.lease = nil end
    wait.sleep(math.min(delay, math.max(0, deadline - wait.clock())))
    delay = math.min(delay * 2, ttl / 3, 2)
  end
  log.debug("lock taken", { lock = self.url, lease = self.lease, ttl = self.granted or ttl })
  held = self
  return self
end

-- renew() -> true, or false once the lease is gone.
function Lock:renew()
  local t0 = lease_clock()
  local left = self.valid_until - t0
  local ok, res = pcall(self.client.keepalive, self.client, self.lease,
    { max_time = math.max(0.5, left) })
  if not ok then
    -- whatever the cause, the lease may still be alive until valid_until;
    -- after that the run stops
    log.warn(("%s: cannot renew the lease: %s"):format(self.url, tostring(res)))
    return lease_clock() < self.valid_until
  end
  if res <= 0 then
    self.gone = true
    return false
  end
  renewed(self, t0, res)
  return true
end

-- alive(): the lease may still be alive by the local clock.
function Lock:alive()
  return not self.lost and lease_clock() < self.valid_until
end

-- check(): raises the "lock lost" error when the lease may have expired.
function Lock:check()
  if self:alive() then return end
  self.lost = self:lost_error()
  error(self.lost, 0)
end

function Lock:lost_error()
  return self.lost or lock_error(self, { kind = "lock", exit_code = require("trainctl.exit").ERROR,
    message = ("lost the lock %s: its lease (TTL %gs) expired or was revoked (%s); stopping "
      .. "without starting anything new"):format(self.url, self.granted or self.ttl, self:why()) })
end

-- why() -> why the lease may have run out, as far as this run can tell:
-- the task that renews it ran again only long after it was due (the run
-- was paused, or something held all its tasks), or its renewals did not
-- get through, or etcd no longer knows it.
function Lock:why()
  -- while the task sleeps, how late it is now; after, how late it woke
  local late = self.due and lease_clock() - self.due or self.late
  if self.gone then
    return "etcd no longer knows the lease: it expired there, or someone revoked it"
  elseif late and late > (self.granted or self.ttl) / 3 then
    return ("this run's tasks did not run for %.1fs, the one that renews the lease among them: "
      .. "the run was paused, or held by a read from io.popen or a long computation"):format(late)
  end
  return "this run could not renew it in time: cut off from etcd, or etcd too slow"
end

-- keep(): the background task's body; returns when the lease is lost.
function Lock:keep()
  while true do
    local now = lease_clock()
    -- renew a third of the way: two more chances before the TTL runs out
    local ttl = self.granted or self.ttl
    local nap = math.max(0, math.min(ttl / 3, self.valid_until - now - ttl / 3))
    self.due = now + nap
    task.sleep(nap)
    self.late, self.due = lease_clock() - self.due, nil
    if not self:alive() or not self:renew() or not self:alive() then
      self.lost = self:lost_error()
      return
    end
  end
end

-- release(): revokes the lease (its key goes with it). Best effort: a
-- lease that cannot be revoked expires after its TTL.
function Lock:release()
  if held == self then held = nil end
  if not self.lease then return end
  local lease = self.lease
  self.lease = nil
  local ok, e = pcall(self.client.revoke, self.client, lease, { max_time = 2 })
  -- NotFound: the lease had expired already
  if not ok and not (errors.is(e) and e.grpc_code == 5) then
    log.warn(("%s: lease not revoked (it expires by itself): %s"):format(self.url, tostring(e)))
  end
end

-- current() -> the run's lock, or nil.
function M.current() return held end

-- fence(key) -> the compare that holds while the run's lease owns its
-- lock key, for a txn; nil when the run holds no etcd lock.
function Lock:fence()
  return { key = etcd.b64(self.key), target = "LEASE", lease = self.lease }
end

-- Before every request of a provider client: none leaves once the lease
-- may have expired.
local function guard()
  if held then held:check() end
end

-- run(fn, ...) -> fn's results: takes the run's --lock (an etcd URL, with
-- --lock-ttl and --lock-wait), keeps its lease alive from a task beside
-- the calling one (the run's main task) while fn runs there, and revokes
-- it when fn ends. Losing the lease cancels the main task with the "lost
-- the lock" error (exit 1).
function M.run(fn, ...)
  local lock = M.acquire(option("lock"), { ttl = tonumber(option("lock_ttl")),
    wait = tonumber(option("lock_wait")) })
  require("trainctl.core.http").add_check(guard)
  local main = task.current()
  local keeper = task.spawn(function()
    lock:keep()
    if held == lock then held = nil end
    if main and not main.done then main:cancel(lock.lost) end
  end)
  local _ <close> = setmetatable({}, { __close = function()
    if lock.lost then return end -- the keeper is ending, the lease gone
    if not keeper.done then keeper:cancel() end
    -- a task cancelled by a signal cannot wait for etcd: its lease
    -- expires after the TTL
    if coroutine.isyieldable() then lock:release() end
  end })
  return fn(...)
end

return M
