-- The run as a process, against cloudsim: `trainctl call` onto a full disk
-- or into a closed pipe, and nightly.lua (a workflow per child process)
-- under --timeout and SIGTERM: it ends in time, no child is left running,
-- and the next run resumes the same trainings. The emulator's clock is
-- frozen while a run must wait, fast when it must finish.
local support = require("support")
local cloudsim = require("support.cloudsim")
local sys = require("trainctl.sys")

local running = support.running

describe("the run as a process", function()
  local sim = cloudsim.new({ speed = 0 })
  setup(function() sim:start() end)
  teardown(function() sim:stop() end)

  describe("trainctl call", function()
    it("onto a full disk: exit 1, the stream named", function()
      local code = support.exec(sim:command({ "call", "aitems", "list_schemas" })
        .. " >/dev/full 2>" .. support.quote(sim.dir .. "/full.err"))
      assert.equal(1, code)
      assert.equal("trainctl: cannot write stdout: No space left on device\n", support.read(sim.dir .. "/full.err"))
    end)

    it("into a pipe whose reader is gone: 141, nothing on stderr", function()
      -- The read end is closed before trainctl starts: no race with a reader.
      local code = support.exec(("python3 -c %s %s 2>%s"):format(support.quote(
        "import os, subprocess, sys\nr, w = os.pipe()\nos.close(r)\n"
        .. "sys.exit(subprocess.call(['sh', '-c', sys.argv[1]], stdout=w))"),
        support.quote(sim:command({ "call", "aitems", "list_schemas" })), support.quote(sim.dir .. "/pipe.err")))
      assert.equal(141, code)
      assert.equal("", support.read(sim.dir .. "/pipe.err"))
    end)
  end)

  describe("nightly.lua", function()
    local n = 0
    -- A nightly run's command line and environment, with a directory of
    -- its own: its workflows' command lines all hold that directory.
    local function nightly(extra)
      n = n + 1
      local dir = support.tmpdir()
      local args = {}
      for _, a in ipairs(extra or {}) do args[#args + 1] = a end
      for _, a in ipairs({ "--state", dir .. "/nightly.json", "examples/nightly.lua", dir .. "/out" }) do
        args[#args + 1] = a
      end
      return args, { env = { NIGHTLY_DATE = "2030-02-0" .. n } }, dir
    end

    -- The next run (the clock fast) finishes the day with one training
    -- per cloud: nothing was started twice.
    local function resumes(args, opts)
      sim:speed(1200)
      local code, _, err = sim:run(args, opts)
      sim:speed(0)
      assert.equal(0, code, err)
      for _, op in ipairs({ "CreateTrain", "CreateFunctionTask", "StartTraining" }) do
        assert.equal(1, sim:started(op), op)
      end
    end

    it("--timeout: each workflow gets the time left; the run ends in time, no child left", function()
      sim:reset()
      local args, opts, dir = nightly({ "--timeout", "4s" })
      finally(function() support.rmdir(dir) end)
      local t0 = sys.clock()
      local code, _, err = sim:run(args, opts)
      local took = sys.clock() - t0
      assert.equal(4, code, err)
      assert.is_true(took < 4 + 10, ("took %.1fs"):format(took))
      -- The workflow timed out first (it had a second less) and said so.
      assert.matches("trainctl: timeout: the %-%-timeout for this run was reached\n", err)
      assert.matches("aitems: the %-%-timeout for this run was reached", err)
      assert.not_matches("stack traceback", err)
      assert.not_matches("opensearch: starting", err)
      assert.same({}, running(dir))
      resumes({ table.unpack(args, 3) }, opts)
    end)

    it("SIGTERM to nightly alone ends its workflow too: 143 at once, no child left", function()
      sim:reset()
      local args, opts, dir = nightly()
      finally(function() support.rmdir(dir) end)
      local proc = sim:spawn(args, opts)
      finally(function() proc:kill("KILL") end)
      support.poll(function()
        assert.is_nil(proc:exited(), "the run ended before the signal")
        if sim:started("CreateTrain") > 0 and #running(dir .. "/nightly-") > 0 then return true end
        sim:advance(5)
      end, 30, "the AiTEMS training to start")
      local t0 = sys.clock()
      proc:kill("TERM")
      local code, _, err = proc:wait(15)
      local took = sys.clock() - t0
      assert.equal(143, code, err)
      assert.is_true(took < 5, ("took %.1fs"):format(took))
      assert.matches("trainctl: terminated %(SIGTERM%)\n$", err)
      -- Not "aitems: failed (exit 143)", going on to the next cloud.
      assert.not_matches("failed", err)
      assert.not_matches("opensearch: starting", err)
      assert.same({}, running(dir))
      resumes(args, opts)
    end)
  end)
end)
