-- The etcd pieces in process, against a real cluster: URLs, the lock
-- (create-if-absent under a lease), the state backend (one etcd key per
-- state key, JSON values) and its fence: a write succeeds only while the
-- run's lock key still carries the run's lease.
local etcd_support = require("support.etcd")
local errors = require("trainctl.errors")
local etcd = require("trainctl.etcd")
local etcd_lock = require("trainctl.etcd_lock")
local state_etcd = require("trainctl.state_etcd")

local function raised(fn, ...)
  local ok, e = pcall(fn, ...)
  assert.is_false(ok, "expected an error")
  return e
end

describe("etcd URLs", function()
  it("take one or more members and a key; the port defaults to 2379", function()
    local w = etcd.parse_url("etcd://10.0.0.1:2380,db.example:23,[::1]:4000/trainctl/nightly")
    assert.same({ "10.0.0.1:2380", "db.example:23", "[::1]:4000" }, w.endpoints)
    assert.equal("trainctl/nightly", w.key)
    assert.is_false(w.tls)
    w = etcd.parse_url("etcds://etcd.internal/k")
    assert.same({ "etcd.internal:2379" }, w.endpoints)
    assert.is_true(w.tls)
  end)

  for _, bad in ipairs({ "etcd://", "etcd:///k", "etcd://h:1", "etcd://h:1/", "etcd://h:0/k",
    "etcd://h:99999/k", "etcd://h:1,,h:2/k", "etcd://u:pw@h:1/k", "etcd://h:1/k?x=1", "http://h:1/k",
    "etcd://-h/k", "etcd://h:1/a b" }) do
    it("refuse " .. bad .. " as a usage error that shows no password", function()
      local e = raised(etcd.parse_url, bad)
      assert.is_true(errors.is(e, "usage"))
      assert.is_nil(tostring(e):find("pw", 1, true))
    end)
  end

  it("give the first key after a prefix", function()
    assert.equal("a/c", etcd.prefix_end("a/b"))
    assert.equal("b", etcd.prefix_end("a\255"))
  end)
end)

describe("the etcd lock and state", function()
  if not etcd_support.available() then
    pending("etcd-server is not installed")
    return
  end
  local cluster

  setup(function() cluster = etcd_support.cluster() end)
  teardown(function() if cluster then cluster:stop() end end)

  it("lock: a machine suspended past the TTL wakes knowing it lost it (the lease's clock counts a suspend)", function()
    local sys = require("trainctl.sys")
    local lock = etcd_lock.acquire(cluster:url("s9/lock"), { ttl = 5 })
    assert.is_true(lock:alive())
    -- What a suspend of a minute looks like: the time since boot moves on,
    -- the monotonic clock does not.
    local boottime = sys.boottime
    sys.boottime = function() return boottime() + 60 end
    local alive = lock:alive()
    sys.boottime = boottime
    assert.is_false(alive)
    lock:release()
  end)

  it("state: one etcd key per state key, JSON values, fenced writes", function()
    local lock = etcd_lock.acquire(cluster:url("s1/lock"), { ttl = 5 })
    local st = state_etcd.open(cluster:url("s1/state"))
    assert.equal(cluster:url("s1/state"), st:where())
    assert.is_nil(st:get("job"))
    st:put("job", { id = "t-1", n = 3, tags = { "a", "b" } })
    st:put("other", "x")
    assert.same({ id = "t-1", n = 3, tags = { "a", "b" } }, st:get("job"))
    assert.same({ job = { id = "t-1", n = 3, tags = { "a", "b" } }, other = "x" }, st:list())
    -- stored where an operator finds it with etcdctl
    assert.equal('"x"', cluster:client():get("s1/state/other"))
    st:put("other", nil)
    assert.is_nil(st:get("other"))
    lock:release()
    assert.is_nil(cluster:client():get("s1/lock"))
  end)

  it("a second holder is refused with exit status 3, naming the holder", function()
    local first = etcd_lock.acquire(cluster:url("s2/lock"), { ttl = 5 })
    local e = raised(etcd_lock.acquire, cluster:url("s2/lock"), { ttl = 5 })
    assert.equal(3, e.exit_code)
    assert.matches("is held by another run %(host .+, pid %d+, since ", tostring(e))
    first:release()
    etcd_lock.acquire(cluster:url("s2/lock"), { ttl = 5 }):release()
  end)

  it("a write after the lease is gone is refused by etcd itself (the fence), exit status 1", function()
    local lock = etcd_lock.acquire(cluster:url("s3/lock"), { ttl = 30 })
    local st = state_etcd.open(cluster:url("s3/state"))
    st:put("job", "mine")
    -- revoked behind the run's back: by the local clock the lease is still alive
    local c = cluster:client()
    c:revoke(lock.lease)
    -- and another host took over
    local other = c:grant(5)
    c:put("s3/lock", "another host", other)
    assert.is_true(lock:alive())
    local e = raised(st.put, st, "job", "stale")
    assert.equal(1, e.exit_code)
    assert.matches("state write of job to .* refused: this run no longer holds the lock", tostring(e))
    -- nothing written, and the run now knows it lost the lock
    assert.same("mine", st:get("job"))
    assert.is_false(lock:alive())
    c:revoke(other)
    lock:release()
  end)

  it("a lease revoked behind the run's back is named as such when its renewal finds it gone", function()
    local lock = etcd_lock.acquire(cluster:url("s5/lock"), { ttl = 30 })
    cluster:client():revoke(lock.lease)
    assert.is_false(lock:renew())
    assert.matches("lost the lock .*s5/lock: its lease %(TTL 30s%) expired or was revoked %(etcd no longer "
      .. "knows the lease: it expired there, or someone revoked it%); stopping without starting anything new",
      lock:lost_error().message)
    lock:release()
  end)

  it("state writes without an etcd lock are a usage error; reads work", function()
    local st = state_etcd.open(cluster:url("s4/state"))
    assert.is_nil(st:get("job"))
    local e = raised(st.put, st, "job", 1)
    assert.is_true(errors.is(e, "usage"))
    assert.matches("needs an etcd %-%-lock", e.message)
    -- a command run by hand says so
    state_etcd.open(cluster:url("s4/state"), { unfenced = true }):put("job", 2)
    assert.equal(2, st:get("job"))
  end)

  it("fails over to the next member when one is down", function()
    cluster:kill(1)
    local c = etcd.client(etcd.parse_url(cluster:url("x")))
    c:put("failover", "yes")
    assert.equal("yes", c:get("failover"))
    cluster:start(1)
    cluster:wait_healthy()
  end)
end)
