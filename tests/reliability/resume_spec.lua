-- kill -9 at any moment, then the same command again: each example resumes
-- waiting on the training it started (the emulator saw exactly one
-- training start), and a run after success starts nothing.
--
-- The emulator's clock is frozen; while the first run works towards the
-- moment of the kill the test advances it, so the training cannot finish
-- before the kill. The rerun gets a fast clock.
local support = require("support")
local cloudsim = require("support.cloudsim")
local json = require("trainctl.json")

local function count(t, pred)
  local n = 0
  for _, v in pairs(t or {}) do
    if not pred or pred(v) then n = n + 1 end
  end
  return n
end

local function lines(text)
  local out = {}
  for line in (text or ""):gmatch("[^\n]+") do out[#out + 1] = json.decode(line) end
  return out
end

-- What each example makes, how it starts and watches its training, and
-- how to count what the emulator holds afterwards.
local EXAMPLES = {
  {
    name = "aitems_recommend",
    args = function(dir) return { "examples/aitems_recommend.lua", dir .. "/rec.jsonl" } end,
    first_create = "CreateSchema", start = "CreateTrain", poll = "ListTrains",
    creates = { "CreateSchema", "CreateDataset", "CreateService", "CreateTrain" },
    trainings = function(p) return count(p.aitems.trains) end, per_start = 3,
    resources = function(p)
      return { services = count(p.aitems.services), datasets = count(p.aitems.datasets),
        schemas = count(p.aitems.schemas) }
    end,
    expected = { services = 1, datasets = 3, schemas = 3 },
    check = function(dir)
      local recs = lines(support.read(dir .. "/rec.jsonl"))
      assert.equal(30, #recs)
      assert.is_true(#recs[1].items > 0)
    end,
  },
  {
    name = "opensearch_ctr",
    args = function() return { "examples/opensearch_ctr.lua", "ctr_kill" } end,
    first_create = "CreateFunctionInstance", start = "CreateFunctionTask", poll = "GetFunctionTask",
    creates = { "CreateFunctionInstance", "CreateFunctionTask" },
    trainings = function(p) return count(p.opensearch.tasks) end, per_start = 1,
    resources = function(p) return { instances = count(p.opensearch.instances) } end,
    expected = { instances = 1 },
    check = function(_, stdout)
      local doc = json.decode(stdout)
      assert.equal("ctr_kill", doc.instance)
      assert.is_number(doc.metrics.auc)
    end,
  },
  {
    name = "azure_textclass",
    args = function(dir)
      return { "examples/azure_textclass.lua", "examples/data/textclass_inbox", dir .. "/cls.jsonl" }
    end,
    first_create = "ImportProject", start = "StartTraining", poll = "GetTrainingStatus",
    creates = { "ImportProject", "StartTraining", "DeployProject" },
    trainings = function(p)
      return count(p.azure.jobs, function(j) return j.kind == "train" end)
    end, per_start = 1,
    resources = function(p)
      return { projects = count(p.azure.projects), deployments = count(p.azure.deployments) }
    end,
    expected = { projects = 1, deployments = 1 },
    check = function(dir, stdout)
      assert.is_number(json.decode(stdout).microF1)
      assert.equal(6, #lines(support.read(dir .. "/cls.jsonl")))
    end,
  },
}

-- The moments of the kill: each prepares the emulator and says when the
-- moment has come.
local MOMENTS = {
  {
    name = "right after its first create",
    ready = function(sim, ex) return #sim:requests({ operation = ex.first_create }) > 0 end,
  },
  {
    -- The server has started the training; its answer is still on the way
    -- (and the request not yet in the log, which records it when answered).
    name = "while the answer to the training start is in flight", held = true,
    prepare = function(sim, ex)
      sim:faults({ { kind = "slow", when = "after", delay = 120, match = { operation = ex.start } } })
    end,
    ready = function(sim, ex) return ex.trainings(sim:state().providers) > 0 end,
  },
  {
    name = "right after the training start appears in the request log",
    ready = function(sim, ex) return sim:started(ex.start) > 0 end,
  },
  {
    name = "while it waits for the training",
    ready = function(sim, ex)
      local start = sim:requests({ operation = ex.start })[1]
      return start and #sim:requests({ operation = ex.poll, since = start.seq }) >= 3
    end,
  },
}

describe("kill -9 and run again", function()
  local sim = cloudsim.new({ speed = 0 })
  setup(function()
    sim:start()
    -- A kill that lands after a training start was recorded and before
    -- it reached the emulator (the moment "right after its first create",
    -- on a busy machine) makes the next run wait until that start can no
    -- longer land: its request timeout and 15 s. 20 s rather than 300.
    sim.env.TRAINCTL_REQUEST_TIMEOUT = "20"
  end)
  teardown(function() sim:stop() end)

  local function creates(ex)
    local n = {}
    for _, op in ipairs(ex.creates) do n[op] = sim:started(op) end
    return n
  end

  for _, ex in ipairs(EXAMPLES) do
    for _, moment in ipairs(MOMENTS) do
      it(("%s resumes when killed %s"):format(ex.name, moment.name), function()
        sim:reset()
        sim:speed(0)
        local dir = support.tmpdir()
        local state = dir .. "/state.json"
        local args = { "--state", state }
        for _, a in ipairs(ex.args(dir)) do args[#args + 1] = a end
        if moment.prepare then moment.prepare(sim, ex) end

        local first = sim:spawn(args)
        finally(function()
          first:kill("KILL")
          support.rmdir(dir)
        end)
        support.poll(function()
          if moment.ready(sim, ex) then return true end
          assert.is_nil(first:exited(), "the first run ended before the moment of the kill")
          sim:advance(5)
        end, 30, moment.name)
        first:kill("KILL")
        assert.equal(137, (first:wait()))
        if moment.held then
          -- What lets the rerun look the training up: its reference,
          -- recorded before the request went out.
          assert.matches('"pending": true', support.read(state))
        end
        assert.equal(0, ex.trainings(sim:state().providers) % ex.per_start)
        assert.is_true(ex.trainings(sim:state().providers) <= ex.per_start)

        sim:no_faults()
        sim:speed(1200)
        local code, out, err = sim:run(args)
        assert.equal(0, code, err)
        ex.check(dir, out)
        assert.equal(moment.held and 0 or 1, sim:started(ex.start))
        local providers = sim:state().providers
        assert.equal(ex.per_start, ex.trainings(providers))
        assert.same(ex.expected, ex.resources(providers))

        -- After success: nothing is created or started again.
        local before = creates(ex)
        code, out, err = sim:run(args)
        assert.equal(0, code, err)
        ex.check(dir, out)
        assert.same(before, creates(ex))
        assert.equal(ex.per_start, ex.trainings(sim:state().providers))
      end)
    end
  end

  it("nightly.lua killed with its workflows leaves no partial output, and finishes the day when run again", function()
    sim:reset()
    sim:speed(0)
    local dir = support.tmpdir()
    local args = { "--state", dir .. "/nightly.json", "examples/nightly.lua", dir .. "/out" }
    local env = { NIGHTLY_DATE = "2030-01-02" }
    local metrics = dir .. "/out/2030-01-02/ctr_metrics.json"
    local first = sim:spawn(args, { env = env, group = true })
    finally(function()
      first:kill_group("KILL")
      support.rmdir(dir)
    end)
    support.poll(function()
      if sim:started("CreateFunctionTask") > 0 then return true end
      assert.is_nil(first:exited(), "the run ended before the moment of the kill")
      sim:advance(5)
    end, 30, "the OpenSearch training to start")
    first:kill_group("KILL")
    first:wait()
    -- The OpenSearch workflow prints its metrics: nothing was written yet.
    assert.is_nil(support.read(metrics))
    for _, name in ipairs(support.ls(dir .. "/out/2030-01-02")) do assert.equal("recommendations.jsonl", name) end

    sim:speed(1200)
    local code, _, err = sim:run(args, { env = env })
    assert.equal(0, code, err)
    assert.equal("ctr_demo", json.decode(support.read(metrics)).instance)
    for _, op in ipairs({ "CreateTrain", "CreateFunctionTask", "StartTraining" }) do
      assert.equal(1, sim:started(op), op)
    end
    -- The day is done: a run makes no request at all.
    local before = #sim:requests()
    code, _, err = sim:run(args, { env = env })
    assert.equal(0, code, err)
    assert.matches("azure: already done today", err)
    assert.equal(before, #sim:requests())
  end)
end)
