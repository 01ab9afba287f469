-- luacheck: std +busted
-- trainctl.task inside one run: order and fairness, join, cancel, all
-- and map. These specs run as the main task of trainctl, so the
-- scheduler under test is the one that runs them.

local S = require "support"
local task = require "trainctl.task"
local sys = require "trainctl.sys"
local http = require "trainctl._http"

local function closer(log, name)
  return setmetatable({}, { __close = function() log[#log + 1] = name end })
end

-- asleep_together(events) -> how many "asleep" came before the first
-- "awake": all of them when the sleeps overlapped, one when they ran in
-- turn.
local function asleep_together(events)
  local n = 0
  for _, e in ipairs(events) do
    if e == "awake" then break end
    n = n + 1
  end
  return n
end

describe("trainctl.task", function()
  local srv

  setup(function() srv = S.server() end)
  teardown(function() srv.stop() end)

  after_each(function()
    -- only the main task (this spec) is left: a spec that left tasks
    -- behind would skew the ones after it
    assert.equal(1, task.count())
  end)

  it("runs the spec itself as the main task", function()
    assert.is_not_nil(task.current())
  end)

  describe("order", function()
    it("starts tasks in the order they were spawned, at the next turn", function()
      local log = {}
      local ts = {}
      for i = 1, 5 do ts[i] = task.spawn(function() log[#log + 1] = i end) end
      assert.same({}, log) -- spawn only queues
      task.all(ts)
      assert.same({ 1, 2, 3, 4, 5 }, log)
    end)

    it("passes spawn's extra arguments to the function", function()
      local t = task.spawn(function(a, b, c) return a + b, c end, 1, 2, "x")
      assert.same({ 3, "x" }, { t:join() })
    end)

    it("lets the other ready tasks run when one yields", function()
      local log = {}
      local function worker(name)
        for i = 1, 3 do
          log[#log + 1] = name .. i
          task.yield()
        end
      end
      task.all { task.spawn(worker, "a"), task.spawn(worker, "b"), task.spawn(worker, "c") }
      assert.same({ "a1", "b1", "c1", "a2", "b2", "c2", "a3", "b3", "c3" }, log)
    end)

    it("wakes sleepers in the order of their deadlines, never early", function()
      local log, late = {}, {}
      local function sleeper(name, s)
        local t0 = sys.clock()
        task.sleep(s)
        if sys.clock() - t0 < s then late[#late + 1] = name end
        log[#log + 1] = name
      end
      task.all {
        task.spawn(sleeper, "d60", 0.06), task.spawn(sleeper, "d0", 0),
        task.spawn(sleeper, "d20", 0.02), task.spawn(sleeper, "d40", 0.04),
      }
      assert.same({ "d0", "d20", "d40", "d60" }, log)
      assert.same({}, late)
    end)

    it("wakes once for sleeps that fall due within a millisecond of each other", function()
      -- The loop idles until the first deadline plus its slack, so the
      -- first sleeper is woken together with the second, after the
      -- second's deadline; woken alone, at its own, it would be up 0.8 ms
      -- before that. (On a loaded machine a wake-up late by more than
      -- 0.8 ms joins the two without the slack too: the test then passes
      -- either way, but it cannot fail with the slack in place.)
      local t0, woke = sys.clock(), {}
      local function sleeper(i, s)
        task.sleep(s)
        woke[i] = sys.clock() - t0
      end
      task.all { task.spawn(sleeper, 1, 0.010), task.spawn(sleeper, 2, 0.0108) }
      assert.is_true(woke[1] >= 0.0108, ("the first sleeper woke alone, at %.4f s"):format(woke[1]))
      assert.is_true(woke[2] >= 0.0108)
    end)

    it("takes sleep(0) for the next turn: the slack of a wake-up is not added to it", function()
      -- With the slack, each of these would wait 1 ms: a second in all.
      local t0 = sys.clock()
      task.all { task.spawn(function() for _ = 1, 1000 do task.sleep(0) end end) }
      local took = sys.clock() - t0
      assert.is_true(took < 0.5, ("1,000 sleep(0) took %.3f s"):format(took))
    end)

    it("runs sleeps concurrently: 50 tasks of 0.2 s all asleep at once, none woken early", function()
      local events, early = {}, 0
      local function sleeper()
        events[#events + 1] = "asleep"
        local t0 = sys.clock()
        task.sleep(0.2)
        if sys.clock() - t0 < 0.2 then early = early + 1 end
        events[#events + 1] = "awake"
      end
      local ts = {}
      for i = 1, 50 do ts[i] = task.spawn(sleeper) end
      task.all(ts)
      assert.equal(50, asleep_together(events))
      assert.equal(0, early)
    end)

    it("does not let a task spinning on task.yield starve a sleeping one", function()
      local flag = false
      local setter = task.spawn(function() task.sleep(0.02) flag = true end)
      local spins = 0
      while not flag and spins < 200000 do
        task.yield()
        spins = spins + 1
      end
      local seen = flag
      setter:join()
      assert.is_true(seen, "the sleeper never ran while the main task yielded")
    end)

    it("does not let a task spinning on task.yield starve a request", function()
      local status
      local getter = task.spawn(function()
        status = assert(http.request { url = srv.url .. "/fast", timeout = 5 }).status
      end)
      local spins = 0
      while not status and spins < 200000 do
        task.yield()
        spins = spins + 1
      end
      local seen = status
      getter:join()
      assert.equal(200, seen)
    end)

    it("sleeps and requests of other tasks progress while one waits", function()
      local log = {}
      local a = task.spawn(function()
        assert(http.request { url = srv.url .. "/slow?s=0.3", timeout = 5 })
        log[#log + 1] = "slow request"
      end)
      local b = task.spawn(function()
        task.sleep(0.05)
        log[#log + 1] = "short sleep"
      end)
      task.all { a, b }
      assert.same({ "short sleep", "slow request" }, log)
    end)
  end)

  describe("join", function()
    it("returns every result of the task, nils included", function()
      local t = task.spawn(function() return 1, nil, 3 end)
      local r = table.pack(t:join())
      assert.equal(3, r.n)
      assert.same({ 1, nil, 3 }, { r[1], r[2], r[3] })
    end)

    it("waits for a task that is sleeping", function()
      local t = task.spawn(function() task.sleep(0.05) return "late" end)
      assert.equal("running", t:status())
      assert.equal("late", t:join())
      assert.equal("succeeded", t:status())
    end)

    it("raises the task's error object itself, with its fields", function()
      local obj = setmetatable({ kind = "api", status = 409, code = "Conflict", message = "exists" },
        { __tostring = function(e) return "api error: " .. e.message end })
      local t = task.spawn(function()
        task.sleep(0.01)
        error(obj)
      end)
      local ok, err = pcall(t.join, t)
      assert.is_false(ok)
      assert.is_true(rawequal(obj, err))
      assert.equal(409, err.status)
      assert.equal("Conflict", err.code)
      assert.equal("failed", t:status())
      -- a second join raises the same object again
      local _, again = pcall(t.join, t)
      assert.is_true(rawequal(obj, again))
    end)

    it("raises a string error with its position", function()
      local t = task.spawn(function() error("boom") end)
      local ok, err = pcall(t.join, t)
      assert.is_false(ok)
      assert.matches("tasks_spec.lua:%d+: boom$", err)
    end)

    it("of a task that raised nil raises nil: the task failed", function()
      local t = task.spawn(function() error(nil) end)
      local ok, err = pcall(t.join, t)
      assert.is_false(ok)
      assert.is_nil(err)
      assert.equal("failed", t:status())
    end)

    it("from several tasks wakes them all", function()
      local t = task.spawn(function() task.sleep(0.02) return 7 end)
      local joiners = {}
      for i = 1, 3 do joiners[i] = task.spawn(function() return t:join() * i end) end
      assert.same({ 7, 14, 21 }, task.all(joiners))
    end)

    it("of itself is an error", function()
      local t
      t = task.spawn(function() return t:join() end)
      local ok, err = pcall(t.join, t)
      assert.is_false(ok)
      assert.matches("cannot join itself", tostring(err))
    end)
  end)

  describe("cancel", function()
    it("stops a sleeping task: join raises 'cancelled', its <close> ran", function()
      local log = {}
      local t = task.spawn(function()
        local _ <close> = closer(log, "closed")
        task.sleep(30)
        log[#log + 1] = "woke"
      end)
      task.sleep(0.01)
      t:cancel()
      assert.same({ "closed" }, log)
      assert.equal("cancelled", t:status())
      local ok, err = pcall(t.join, t)
      assert.is_false(ok)
      assert.equal("cancelled", err.kind)
      assert.equal("task cancelled", tostring(err))
      task.yield()
      assert.same({ "closed" }, log, "the cancelled sleep went on")
      t:cancel() -- again: nothing happens
    end)

    it("stops a task that has not started yet", function()
      local ran = false
      local t = task.spawn(function() ran = true end)
      t:cancel()
      task.yield()
      assert.is_false(ran)
      assert.equal("cancelled", t:status())
    end)

    it("wakes the tasks that were joining it", function()
      local t = task.spawn(task.sleep, 30)
      local j = task.spawn(function() return pcall(t.join, t) end)
      task.sleep(0.01)
      t:cancel()
      local ok, err = j:join()
      assert.is_false(ok)
      assert.equal("cancelled", err.kind)
    end)

    it("aborts a request in flight: the server sees the connection close", function()
      local before = srv.stats().slow_aborted
      local base = S.sockets()
      local log = {}
      local ts = {}
      for i = 1, 20 do
        ts[i] = task.spawn(function()
          local _ <close> = closer(log, i)
          http.request { url = srv.url .. "/slow?s=30", timeout = 60 }
          log[#log + 1] = "answered"
        end)
      end
      assert.is_truthy(S.within(5, function() return srv.stats().slow_started >= 20 end))
      assert.is_true(S.sockets() >= base + 20)
      for _, t in ipairs(ts) do t:cancel() end
      assert.equal(20, #log)
      assert.is_nil(table.concat(log, " "):find("answered"))
      -- no socket of an aborted transfer is left open
      assert.is_true(S.sockets() <= base, ("sockets: %d before, %d after"):format(base, S.sockets()))
      assert.is_truthy(S.within(5, function() return srv.stats().slow_aborted - before == 20 end))
      -- and the loop still makes requests afterwards
      assert.equal(200, http.request { url = srv.url .. "/fast" }.status)
    end)

    it("of many long sleeps gives their memory back before the deadlines", function()
      collectgarbage()
      collectgarbage()
      local before = collectgarbage("count")
      for _ = 1, 10 do
        local ts = {}
        for i = 1, 2000 do ts[i] = task.spawn(task.sleep, 3600) end
        task.yield()
        for _, t in ipairs(ts) do t:cancel() end
      end
      collectgarbage()
      collectgarbage()
      local grew = collectgarbage("count") - before
      -- 20,000 timers held until their deadline would be several MiB
      assert.is_true(grew < 2048, ("grew by %.0f KiB"):format(grew))
    end)

    it("from inside the task itself is an error", function()
      local t
      t = task.spawn(function() t:cancel() end)
      local ok, err = pcall(t.join, t)
      assert.is_false(ok)
      assert.matches("cancel yourself by returning", tostring(err))
    end)
  end)

  describe("all", function()
    it("returns each task's first result in list order, not finishing order", function()
      local ts = {}
      for i = 1, 5 do ts[i] = task.spawn(function() task.sleep((6 - i) * 0.01) return i * 10, "x" end) end
      assert.same({ 10, 20, 30, 40, 50 }, task.all(ts))
    end)

    it("raises the first error in list order once every task has finished", function()
      local finished = 0
      local function job(s, fail)
        task.sleep(s)
        finished = finished + 1
        if fail then error({ kind = "api", message = fail }) end
        return s
      end
      local ts = { task.spawn(job, 0.03), task.spawn(job, 0.02, "second"),
        task.spawn(job, 0.01, "third"), task.spawn(job, 0.05) }
      local ok, err = pcall(task.all, ts)
      assert.is_false(ok)
      assert.equal("second", err.message)
      assert.equal(4, finished)
    end)

    it("of nothing is an empty list", function()
      assert.same({}, task.all {})
    end)
  end)

  describe("map", function()
    it("returns results in list order", function()
      local list = { 5, 1, 4, 2, 3 }
      local out = task.map(list, function(x, i)
        task.sleep(x * 0.005)
        return x * 100 + i
      end, { concurrency = 5 })
      assert.same({ 501, 102, 403, 204, 305 }, out)
    end)

    local function peak(n_items, opts)
      local active, max_active, calls = 0, 0, 0
      local list = {}
      for i = 1, n_items do list[i] = i end
      task.map(list, function()
        calls = calls + 1
        active = active + 1
        if active > max_active then max_active = active end
        task.sleep(0.005)
        active = active - 1
      end, opts)
      return max_active, calls
    end

    it("runs at most `concurrency` calls at once, and that many", function()
      local max_active, calls = peak(30, { concurrency = 3 })
      assert.equal(3, max_active)
      assert.equal(30, calls)
    end)

    it("runs 16 at once by default", function()
      assert.equal(16, (peak(40)))
    end)

    it("with concurrency 1 runs one call at a time, in order", function()
      local seen = {}
      task.map({ "a", "b", "c" }, function(x) seen[#seen + 1] = x task.yield() end, { concurrency = 1 })
      assert.same({ "a", "b", "c" }, seen)
      assert.equal(1, (peak(5, { concurrency = 1 })))
    end)

    it("raises the error of a failing call and starts no new ones", function()
      local started = 0
      local list = {}
      for i = 1, 50 do list[i] = i end
      local ok, err = pcall(task.map, list, function(x)
        started = started + 1
        task.sleep(0.005)
        if x == 5 then error({ kind = "http", status = 500, message = "item 5" }) end
        return x
      end, { concurrency = 4 })
      assert.is_false(ok)
      assert.equal("item 5", err.message)
      assert.equal(500, err.status)
      assert.is_true(started < 50, "map went on starting calls after one failed")
    end)

    it("rejects a concurrency below 1", function()
      assert.has_error(function() task.map({ 1 }, print, { concurrency = 0 }) end)
    end)

    it("of an empty list is an empty list", function()
      assert.same({}, task.map({}, error))
    end)

    it("stops its calls when the task running it is cancelled", function()
      local log = {}
      local list = {}
      for i = 1, 10 do list[i] = i end
      local t = task.spawn(function()
        task.map(list, function(x)
          local _ <close> = closer(log, "closed")
          task.sleep(30)
          log[#log + 1] = x
        end, { concurrency = 4 })
      end)
      task.sleep(0.02)
      t:cancel()
      assert.same({ "closed", "closed", "closed", "closed" }, log)
    end)
  end)

  describe("the collector", function()
    -- The pause the scheduler set after the last cycle (read, then put back).
    local function pause_after_a_cycle()
      collectgarbage("collect")
      task.spawn(task.sleep, 0):join() -- a turn of the loop
      local p = collectgarbage("setpause", 100)
      collectgarbage("setpause", p)
      return p
    end

    it("lets garbage reach a fifth of a large heap, and more of a small one", function()
      local big = {}
      for i = 1, 60000 do big[i] = ("x"):rep(1000) .. i end -- about 60 MiB live
      assert.equal(120, pause_after_a_cycle())
      assert.equal(60000, #big)
      big = nil -- luacheck: ignore 311
      local small = pause_after_a_cycle()
      assert.is_true(small > 130 and small <= 200, "pause " .. small)
    end)

    it("keeps the pause a script sets", function()
      pause_after_a_cycle()
      collectgarbage("setpause", 172)
      local big = {}
      for i = 1, 60000 do big[i] = ("x"):rep(1000) .. i end
      assert.equal(172, pause_after_a_cycle())
      assert.equal(172, pause_after_a_cycle())
      assert.equal(60000, #big)
      collectgarbage("setpause", 200)
    end)
  end)

  describe("what yields", function()
    it("waits for sleep in a nested coroutine by blocking the whole loop", function()
      local other_ran_during = false
      local in_nested = false
      local other = task.spawn(function()
        while true do
          if in_nested then other_ran_during = true end
          task.sleep(0.005)
        end
      end)
      task.sleep(0.01)
      local gen = coroutine.wrap(function()
        in_nested = true
        local t0 = sys.clock()
        task.sleep(0.1) -- not the task's own coroutine: blocks
        in_nested = false
        coroutine.yield(sys.clock() - t0)
      end)
      assert.is_true(gen() >= 0.1)
      other:cancel()
      assert.is_false(other_ran_during)
    end)

    it("makes a request in a nested coroutine, blocking", function()
      local gen = coroutine.wrap(function()
        coroutine.yield(http.request { url = srv.url .. "/fast" }.status)
      end)
      assert.equal(200, gen())
    end)

    it("refuses to sleep where it cannot yield: a table.sort comparator", function()
      local ok, err = pcall(table.sort, { 3, 1, 2 }, function(a, b)
        task.sleep(0.01)
        return a < b
      end)
      assert.is_false(ok)
      -- the message names the caller's line and says why
      assert.matches("^tests/loop/tasks_spec%.lua:%d+: sleep cannot wait here", err)
      assert.matches("table.sort", err, 1, true)
    end)

    it("refuses a request where it cannot yield: a string.gsub callback", function()
      local ok, err = pcall(string.gsub, "x", "x", function()
        return http.request { url = srv.url .. "/fast" }.body
      end)
      assert.is_false(ok)
      assert.matches("http.request cannot wait here", err, 1, true)
    end)

    it("yields inside pcall, so retries wrapped in pcall stay concurrent", function()
      local events = {}
      local function retried()
        events[#events + 1] = "asleep"
        task.sleep(0.1)
        events[#events + 1] = "awake"
      end
      local ts = {}
      for i = 1, 10 do ts[i] = task.spawn(pcall, retried) end
      task.all(ts)
      assert.equal(10, asleep_together(events))
    end)

    it("refuses to join in a coroutine nested inside a task, saying why", function()
      local t = task.spawn(function() return 1 end)
      local ok, err = pcall(coroutine.wrap(function()
        local v = t:join()
        return v
      end))
      assert.equal(1, t:join())
      assert.is_false(ok)
      assert.matches("tasks_spec%.lua:%d+: task: join cannot wait in a coroutine nested inside a task", err)
    end)

    it("task.yield outside a task's own coroutine does nothing", function()
      local gen = coroutine.wrap(function() task.yield() return "no yield" end)
      assert.equal("no yield", gen())
    end)
  end)

  describe("os.execute in a task", function()
    -- A child that waits (5 s at most) for a file another task makes.
    local function wait_for(path)
      return ("i=0; while [ ! -e %s ]; do i=$((i+1)); [ $i -gt 500 ] && exit 1; sleep 0.01; done"):format(S.quote(path))
    end

    it("lets the other tasks run, and their requests finish, while its child runs", function()
      local dir = S.tmpdir()
      local marker = dir .. "/marker"
      local other = task.spawn(function()
        local res, err = http.request { url = srv.url .. "/slow?s=0.2", timeout = 2 }
        S.write(marker, "")
        return res and res.status or err.kind
      end)
      assert.same({ true, "exit", 0 }, { os.execute(wait_for(marker)) })
      assert.equal(200, other:join())
      S.rmdir(dir)
    end)

    it("waits for a free place when the run has as many children as it tracks", function()
      local dir = S.tmpdir()
      local marker = dir .. "/marker"
      local ts = {}
      for i = 1, 300 do
        ts[i] = task.spawn(function() return (os.execute(wait_for(marker))) end)
      end
      -- every place taken by a child that waits: the others wait for one
      S.poll(function() return require("trainctl._proc").full() end, 20, "256 children at once")
      S.write(marker, "")
      local all = task.all(ts)
      assert.equal(300, #all)
      for i = 1, 300 do assert.is_true(all[i], "child " .. i) end
      S.rmdir(dir)
    end)

    it("returns what Lua's does", function()
      assert.same({ true, "exit", 0 }, { os.execute("exit 0") })
      assert.same({ nil, "exit", 3 }, { os.execute("exit 3") })
      assert.same({ nil, "signal", 9 }, { os.execute("kill -9 $$") })
      assert.is_true(os.execute())
      -- in tasks of its own, at once
      local ts = {}
      for i = 1, 8 do ts[i] = task.spawn(function() return select(3, os.execute("exit " .. i)) end) end
      assert.same({ 1, 2, 3, 4, 5, 6, 7, 8 }, task.all(ts))
    end)

    it("ends the child of a task cancelled while it waits for it", function()
      local dir = S.tmpdir()
      local pidfile = dir .. "/pid"
      local seen
      local t = task.spawn(function()
        seen = { os.execute(("echo $$ > %s; exec sleep 30"):format(S.quote(pidfile))) }
      end)
      local pid = S.poll(function()
        local s = S.read(pidfile)
        return s and tonumber(s:match("^(%d+)\n"))
      end, 10, "the child to start")
      t:cancel()
      assert.is_nil(seen)
      -- ended and reaped: no such process any more, not even a zombie
      assert.is_nil(S.read(("/proc/%d/stat"):format(pid)))
      S.rmdir(dir)
    end)

    it("blocks in a coroutine nested in the task, and where the task cannot yield", function()
      local dir = S.tmpdir()
      local marker = dir .. "/marker"
      local other = task.spawn(function() S.write(marker, "") end)
      -- Not yielding, the caller lets no other task run: the marker is
      -- not there yet.
      local check = "[ -e " .. S.quote(marker) .. " ]"
      local gen = coroutine.wrap(function() return select(3, os.execute(check)) end)
      assert.equal(1, gen())
      table.sort({ 2, 1 }, function(a, b)
        assert.equal(1, select(3, os.execute(check)))
        return a < b
      end)
      other:join()
      assert.equal(0, select(3, os.execute(check)))
      S.rmdir(dir)
    end)
  end)

  -- Last: the connections it leaves idle in the pool would change the
  -- socket counts that other specs take.
  describe("slots", function()
    local loop = require("trainctl._loop")

    -- requests(n, s) -> the statuses of n requests of s seconds each,
    -- made at once from a task each, and the most in flight at a time.
    local function requests(n, s)
      local busiest, done = 0, false
      local monitor = task.spawn(function()
        while not done do
          busiest = math.max(busiest, task.max_inflight() - loop.free_slots())
          task.sleep(0.005)
        end
      end)
      local ts = {}
      for i = 1, n do
        ts[i] = task.spawn(function()
          return assert(http.request { url = ("%s/slow?s=%g&i=%d"):format(srv.url, s, i), timeout = 30 }).status
        end)
      end
      local statuses = task.all(ts)
      done = true
      monitor:join()
      return statuses, busiest
    end

    -- with_limit(n, fn): fn run with task.max_inflight(n), then the limit
    -- put back whatever fn did.
    local function with_limit(n, fn)
      local limit = task.max_inflight()
      task.max_inflight(n)
      local ok, err = pcall(fn)
      task.max_inflight(limit)
      assert(ok, err)
    end

    it("keeps at most max_inflight requests in flight; the others wait their turn", function()
      with_limit(4, function()
        local statuses, busiest = requests(24, 0.05)
        assert.equal(24, #statuses)
        for _, st in ipairs(statuses) do assert.equal(200, st) end
        assert.equal(4, busiest)
        assert.equal(4, loop.free_slots())
      end)
    end)

    it("keeps hundreds of requests in flight on their connections: a second round opens none", function()
      local n = 600
      local function connections()
        return tonumber(assert(http.request { url = srv.url .. "/connections" }).body)
      end
      local function round()
        local statuses, busiest = requests(n, 0.5)
        assert.equal(n, #statuses)
        for _, st in ipairs(statuses) do assert.equal(200, st) end
        return busiest
      end
      with_limit(n, function()
        local before = connections()
        assert.is_true(round() > 256)
        local opened = connections() - before
        assert.is_true(opened > 256 and opened <= n, "opened " .. opened)
        local again = connections()
        assert.is_true(round() > 256)
        assert.equal(again, connections())
      end)
    end)
  end)
end)
