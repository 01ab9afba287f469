-- luacheck: std +busted
-- A whole run of trainctl with tasks, as a child process: --timeout and
-- SIGTERM in the middle of sleeps and transfers, errors nobody joined,
-- deadlocks, a failing main chunk.

local S = require "support"

-- Spawns SLEEPERS tasks sleeping 30 s and REQUESTS tasks waiting for a
-- 30 s answer from the server; each, and the main chunk, appends a line
-- to MARKER from a to-be-closed variable. Prints "ready PID" once the
-- server has every request, then sleeps.
local CROWD = [[
local task = require "trainctl.task"
local http = require "trainctl._http"
local cjson = require "cjson"
local url, marker = os.getenv("URL"), os.getenv("MARKER")
local nsleep, nhttp = tonumber(os.getenv("SLEEPERS")), tonumber(os.getenv("REQUESTS"))

local function mark(what)
  return setmetatable({}, { __close = function()
    local f = assert(io.open(marker, "a"))
    f:write(what, "\n")
    f:close()
  end })
end

local function started()
  return cjson.decode(assert(http.request { url = url .. "/stats" }).body).slow_started
end

local base = started()
for _ = 1, nsleep do
  task.spawn(function()
    local _ <close> = mark("sleep")
    task.sleep(30)
    error("a sleep was not interrupted")
  end)
end
for _ = 1, nhttp do
  task.spawn(function()
    local _ <close> = mark("http")
    http.request { url = url .. "/slow?s=30", timeout = 60 }
    error("a request was not interrupted")
  end)
end
local _ <close> = mark("main")
while started() - base < nhttp do task.sleep(0.01) end
io.stdout:write("ready ", require("trainctl.sys").getpid(), "\n")
io.stdout:flush()
task.sleep(30)
]]

local function count(lines)
  local n = {}
  for _, l in ipairs(lines) do n[l] = (n[l] or 0) + 1 end
  return n
end

describe("a run of trainctl", function()
  local srv, dir

  setup(function() srv = S.server() end)
  teardown(function() srv.stop() end)
  before_each(function() dir = S.tmpdir() end)
  after_each(function() S.rmdir(dir) end)

  local function crowd(opts)
    local before = srv.stats().slow_aborted
    opts.env = { URL = srv.url, MARKER = dir .. "/marker", SLEEPERS = "100", REQUESTS = "10" }
    local p = S.script(dir, CROWD, opts)
    return p, before
  end

  local function assert_cleaned_up(p, before)
    -- every to-be-closed variable was closed: 100 sleepers, 10 requests, main
    assert.same({ sleep = 100, http = 10, main = 1 }, count(S.lines(dir .. "/marker")), p:stderr())
    assert.is_nil(p:stderr():find("nobody joined", 1, true), p:stderr())
    -- the server saw the 10 connections close before their answer
    assert.is_truthy(S.within(5, function() return srv.stats().slow_aborted - before >= 10 end),
      "the transfers were not aborted")
  end

  it("stops at --timeout with tasks in sleeps and transfers: exit 4, all closed", function()
    local p, before = crowd { args = { "--timeout", "1.5s" } }
    assert.matches("^ready %d+$", p:line() or "", nil, false, p:stderr())
    assert.equal(4, (p:wait()), p:stderr())
    assert.matches("timeout", p:stderr())
    -- stopped, not run out: no sleep or transfer came to its end
    assert.is_nil(p:stderr():find("was not interrupted", 1, true), p:stderr())
    assert_cleaned_up(p, before)
  end)

  it("stops on SIGTERM with tasks in sleeps and transfers: exit 143, all closed", function()
    local p, before = crowd {}
    local pid = (p:line() or ""):match("^ready (%d+)$")
    assert.is_not_nil(pid, p:stderr())
    os.execute("kill -TERM " .. pid)
    assert.equal(143, (p:wait()), p:stderr())
    assert.is_nil(p:stderr():find("was not interrupted", 1, true), p:stderr())
    assert.matches("terminated", p:stderr())
    assert_cleaned_up(p, before)
  end)

  it("stops busy tasks at --timeout: every <close> runs, nothing reported as lost", function()
    -- the signal lands in whichever task runs; that one must not be
    -- reported as an error nobody joined, nor skip its clean-up
    local source = [[
      local task = require "trainctl.task"
      local marker = os.getenv("MARKER")
      for _ = 1, 20 do
        task.spawn(function()
          local _ <close> = setmetatable({}, { __close = function()
            local f = assert(io.open(marker, "a")) f:write("spin\n") f:close()
          end })
          local x = 0
          while true do
            for i = 1, 5000 do x = x + i % 7 end
            task.yield()
          end
        end)
      end
      print("spinning") io.stdout:flush()
    ]]
    for _ = 1, 3 do
      local marker = dir .. "/marker"
      os.remove(marker)
      local p = S.script(dir, source, { args = { "--timeout", "0.3s" }, env = { MARKER = marker } })
      assert.equal("spinning", p:line())
      assert.equal(4, (p:wait()), p:stderr())
      assert.equal(20, #S.lines(marker), p:stderr())
      assert.is_nil(p:stderr():find("nobody joined", 1, true), p:stderr())
    end
  end)

  it("closes every task at --timeout even when __close handlers spawn tasks", function()
    local marker = dir .. "/marker"
    local p = S.script(dir, [[
      local task = require "trainctl.task"
      for _ = 1, 200 do
        task.spawn(function()
          local _ <close> = setmetatable({}, { __close = function()
            local f = assert(io.open(os.getenv("MARKER"), "a")) f:write("closed\n") f:close()
            task.spawn(function() end)
          end })
          task.sleep(30)
        end)
      end
      task.sleep(0.01)
      print("sleeping") io.stdout:flush()
      task.sleep(30)
    ]], { args = { "--timeout", "0.5s" }, env = { MARKER = marker } })
    assert.equal("sleeping", p:line(), p:stderr())
    assert.equal(4, (p:wait()), p:stderr())
    assert.equal(200, #S.lines(marker))
  end)

  it("is stopped by --timeout after a join from a coroutine outside any task", function()
    -- the interrupt hook must go back to the main state, not stay on the
    -- (finished) coroutine that ran the loop
    local r = S.run_script([[
      local task = require "trainctl.task"
      coroutine.wrap(function() task.spawn(function() end):join() end)()
      while true do end
    ]], { e = true, args = { "--timeout", "0.5s" }, limit = 10 })
    -- 4 and the message: trainctl's --timeout stopped it, not the limit
    assert.equal(4, r.code, r.err)
    assert.matches("timeout", r.err)
  end)

  it("leaks nothing when stopped in the middle of transfers (valgrind)", function()
    if os.execute("grep -q __asan_init " .. S.quote(S.TRAINCTL)) == true then
      pending("the binary under test is built with AddressSanitizer")
      return
    end
    local log = dir .. "/valgrind.log"
    local p, before = crowd {
      wrap = { "valgrind", "-q", "--leak-check=full", "--error-exitcode=99", "--track-fds=yes",
        "--log-file=" .. log },
      args = { "--timeout", "4s" }, limit = 60,
    }
    assert.matches("^ready %d+$", p:line() or "", nil, false, p:stderr())
    local status = (p:wait())
    local report = S.read(log) or ""
    assert.is_not.equal(127, status, "valgrind is not installed (scripts/deps.sh installs it)")
    assert.equal(4, status, report .. p:stderr())
    assert_cleaned_up(p, before)
    -- no socket that the run opened is left open at exit (those it
    -- inherited from this process do not count)
    local lines = {}
    for line in report:gmatch("[^\n]+") do lines[#lines + 1] = line end
    for i, line in ipairs(lines) do
      if line:find("Open AF_INET", 1, true) then
        assert.matches("inherited from parent", lines[i + 1] or "", 1, true, report)
      end
    end
  end)

  describe("errors", function()
    it("of a task nobody joined are printed on stderr and make the run exit 1", function()
      local r = S.run_script([[
        local task = require "trainctl.task"
        task.spawn(function()
          task.sleep(0.01)
          error(setmetatable({ kind = "api", message = "quota exceeded" },
            { __tostring = function(e) return "api: " .. e.message end }))
        end)
        print("main done")
      ]])
      assert.equal(1, r.code, r.err)
      assert.equal("main done\n", r.out)
      assert.matches("error in a task nobody joined: api: quota exceeded", r.err, 1, true)
      assert.matches("1 task(s) failed and nobody joined them", r.err, 1, true)
    end)

    it("that a join caught are not reported", function()
      local r = S.run_script([[
        local task = require "trainctl.task"
        local t = task.spawn(function() error("handled") end)
        print(pcall(t.join, t))
      ]])
      assert.equal(0, r.code, r.err)
      assert.equal("", r.err)
      assert.matches("^false\t.*handled", r.out)
    end)

    it("are reported when the only task joining it was cancelled", function()
      local r = S.run_script([[
        local task = require "trainctl.task"
        local b = task.spawn(function() task.sleep(0.05) error("b failed") end)
        local a = task.spawn(function() return b:join() end)
        task.sleep(0.01)
        a:cancel()
      ]])
      assert.equal(1, r.code, r.err)
      assert.matches("nobody joined: .*b failed", r.err)
    end)

    it("in the __close handler of a cancelled task are reported, exit 1", function()
      local r = S.run_script([[
        local task = require "trainctl.task"
        local t = task.spawn(function()
          local _ <close> = setmetatable({}, { __close = function() error("could not save state") end })
          task.sleep(30)
        end)
        task.sleep(0.01)
        t:cancel()
        print("main done")
      ]])
      assert.equal(1, r.code, r.err)
      assert.equal("main done\n", r.out)
      assert.matches("error while closing a cancelled task: [^\n]*script%.lua:3: could not save state", r.err)
    end)

    it("of the main chunk cancel the other tasks at once", function()
      local r = S.run_script([[
        local task = require "trainctl.task"
        for _ = 1, 10 do
          task.spawn(function()
            local _ <close> = setmetatable({}, { __close = function() io.write("closed ") end })
            task.sleep(30)
            io.write("woke ")
          end)
        end
        task.sleep(0.01)
        error("main failed")
      ]], { limit = 40 })
      assert.equal(1, r.code, r.err)
      assert.matches("main failed", r.err)
      assert.equal(("closed "):rep(10), r.out)
      assert.is_nil(r.out:find("woke", 1, true), "a sleeper ran to its end")
    end)

    it("tasks that join each other in a cycle: a clear error, exit 1", function()
      local r = S.run_script([[
        local task = require "trainctl.task"
        local a, b
        a = task.spawn(function()
          local _ <close> = setmetatable({}, { __close = function() io.write("a closed\n") end })
          task.yield()
          return b:join()
        end)
        b = task.spawn(function() task.yield() return a:join() end)
        print("main done")
      ]])
      assert.equal(1, r.code, r.err)
      assert.matches("task: deadlock: 2 task(s) wait to join each other", r.err, 1, true)
      assert.equal("main done\na closed\n", r.out)
    end)

    it("a join cycle is found at once even next to a cancelled hour-long sleep", function()
      local r = S.run_script([[
        local task = require "trainctl.task"
        local s = task.spawn(task.sleep, 3600)
        task.yield()
        s:cancel()
        local a, b
        a = task.spawn(function() task.yield() return b:join() end)
        b = task.spawn(function() task.yield() return a:join() end)
      ]], { args = { "--timeout", "5s" }, limit = 10 })
      assert.equal(1, r.code, r.err)
      assert.matches("task: deadlock: 2 task(s)", r.err, 1, true)
      assert.is_nil(r.err:find("timeout", 1, true), "found only when the --timeout stopped the run")
    end)
  end)

  it("does not hand its connections to the programs it starts", function()
    -- a child that outlives the request would keep the connection open
    local r = S.run_script([[
      local http = require "trainctl._http"
      assert(http.request { url = os.getenv("URL") .. "/fast" }) -- stays in the pool
      local tcp = {}
      for _, f in ipairs { "/proc/net/tcp", "/proc/net/tcp6" } do
        for line in io.lines(f) do
          local inode = line:match("^%s*%d+:" .. ("%s+%S+"):rep(8) .. "%s+(%d+)")
          if inode then tcp[inode] = true end
        end
      end
      local mine, child = 0, 0
      for line in io.popen("ls -l /proc/" .. require("trainctl.sys").getpid() .. "/fd"):lines() do
        local inode = line:match("socket:%[(%d+)%]")
        if inode and tcp[inode] then mine = mine + 1 end
      end
      for line in io.popen("ls -l /proc/$$/fd"):lines() do
        local inode = line:match("socket:%[(%d+)%]")
        if inode and tcp[inode] then child = child + 1 end
      end
      print(mine, child)
    ]], { env = { URL = srv.url } })
    assert.equal(0, r.code, r.err)
    assert.equal("1\t0\n", r.out)
  end)

  it("waits for the tasks still running when the main chunk ends", function()
    local r = S.run_script([[
      local task = require "trainctl.task"
      task.spawn(function() task.sleep(0.1) print("background done") end)
      print("main done")
    ]])
    assert.equal(0, r.code, r.err)
    assert.equal("main done\nbackground done\n", r.out)
  end)
end)
