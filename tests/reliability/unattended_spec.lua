-- A workflow run from cron: --lock keeps a second copy out (and a dead
-- holder's lock is free again), SIGTERM and --timeout stop it cleanly with
-- the training recorded so that the next run resumes it, SIGHUP does not
-- stop it. The emulator's clock is frozen, so the training waits as long
-- as the test needs.
local support = require("support")
local cloudsim = require("support.cloudsim")

describe("unattended runs", function()
  local sim = cloudsim.new({ speed = 0 })
  setup(function() sim:start() end)
  teardown(function() sim:stop() end)

  local n = 0
  -- A run of opensearch_ctr in the background, waiting for its training.
  local function waiting(extra)
    n = n + 1
    local instance, state = "unattended" .. n, ("%s/unattended%d.json"):format(sim.dir, n)
    local args = { "--state", state }
    for _, a in ipairs(extra or {}) do args[#args + 1] = a end
    args[#args + 1] = "examples/opensearch_ctr.lua"
    args[#args + 1] = instance
    local proc = sim:spawn(args)
    finally(function() proc:kill("KILL") end)
    local since = #sim:requests()
    support.poll(function()
      assert.is_nil(proc:exited(), "the run ended before waiting")
      return #sim:requests({ operation = "GetFunctionTask", since = since }) >= 2
    end, 20, "the run to wait for its training")
    return proc, args, instance
  end

  -- finish(args, instance): the clock runs, the same command resumes and
  -- succeeds, and the instance saw exactly one training start.
  local function finish(args, instance)
    sim:speed(1200)
    local code, out, err = sim:run(args)
    sim:speed(0)
    assert.equal(0, code, err)
    assert.matches('"instance": "' .. instance .. '"', out)
    assert.matches("resuming the recorded training", err)
    local starts = 0
    for _, r in ipairs(sim:requests({ operation = "CreateFunctionTask" })) do
      if r.path:find("/instances/" .. instance .. "/", 1, true) then starts = starts + 1 end
    end
    assert.equal(1, starts)
  end

  describe("--lock", function()
    it("makes a second run exit 3 at once, running nothing; a killed holder's lock is free", function()
      local lock = sim.dir .. "/nightly.lock"
      local first = waiting({ "--lock", lock })
      local code, out, err = sim:run({ "--lock", lock, "-e", "print('ran')" })
      assert.equal(3, code)
      assert.equal("", out)
      assert.matches("held by another run", err)
      first:kill("KILL")
      first:wait()
      code, out = sim:run({ "--lock", lock, "-e", "print('ran')" })
      assert.equal(0, code)
      assert.equal("ran\n", out)
    end)
  end)

  describe("SIGTERM", function()
    it("while waiting: exit 143, the training recorded; the next run resumes it", function()
      local proc, args, instance = waiting()
      proc:kill("TERM")
      local code, _, err = proc:wait(10)
      assert.equal(143, code)
      assert.matches("terminated %(SIGTERM%)", err)
      assert.not_matches("stack traceback", err)
      finish(args, instance)
    end)

    it("during a request that hangs: exit 143 at once, not when the answer comes", function()
      local proc, args, instance = waiting()
      sim:faults({ { kind = "slow", delay = 600, match = { operation = "GetFunctionTask" } } })
      -- The fault leaves the queue when its request arrives: from then on
      -- the poll hangs.
      support.poll(function() return #sim:admin("GET", "faults").scripted == 0 end, 10, "a hanging poll")
      proc:kill("TERM")
      assert.equal(143, (proc:wait(5)))
      sim:no_faults()
      finish(args, instance)
    end)
  end)

  describe("SIGHUP", function()
    it("is ignored: the run goes on to success", function()
      local proc = waiting()
      proc:kill("HUP")
      sim:speed(1200)
      local code, _, err = proc:wait(30)
      sim:speed(0)
      assert.equal(0, code, err)
    end)
  end)

  describe("--timeout", function()
    it("stops the run with exit 4, the training recorded; the next run resumes it", function()
      local proc, args, instance = waiting({ "--timeout", "3s" })
      local code, _, err = proc:wait(10)
      assert.equal(4, code)
      assert.matches("the %-%-timeout for this run was reached", err)
      local rerun = {}
      for _, a in ipairs(args) do
        if a ~= "--timeout" and a ~= "3s" then rerun[#rerun + 1] = a end
      end
      finish(rerun, instance)
    end)
  end)
end)
