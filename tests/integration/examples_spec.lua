-- Every example runs green against the emulator, resumes instead of
-- repeating a training, and prints no credential even at trace level.
local support = require("support")
local cloudsim = require("support.cloudsim")
local json = require("trainctl.json")

describe("examples against cloudsim", function()
  local sim = cloudsim.new({ poll_interval = "0.2", speed = 600 })
  setup(function() sim:start() end)
  teardown(function() sim:stop() end)

  local function count(op)
    return #sim:requests({ operation = op })
  end

  it("aitems_recommend.lua trains once and writes recommendations for every user", function()
    local out = sim.dir .. "/rec.jsonl"
    local state = sim.dir .. "/aitems.json"
    local code, _, err = sim:run({ "--state", state, "examples/aitems_recommend.lua", out })
    assert.equal(0, code, err)
    local lines = {}
    for line in support.read(out):gmatch("[^\n]+") do lines[#lines + 1] = json.decode(line) end
    assert.equal(30, #lines)
    assert.equal("u001", lines[1].user_id)
    assert.is_true(#lines[1].items > 0)
    assert.equal(1, count("CreateTrain"))
    assert.equal(1, count("CreateService"))
    -- A second run finds everything done: no new service, no new training.
    code, _, err = sim:run({ "--state", state, "examples/aitems_recommend.lua", out })
    assert.equal(0, code, err)
    assert.equal(1, count("CreateTrain"))
    assert.equal(1, count("CreateService"))
  end)

  it("opensearch_ctr.lua prints the training metrics and sets the default instance", function()
    local code, out, err = sim:run({ "--state", sim.dir .. "/os.json", "examples/opensearch_ctr.lua", "ctr_example" })
    assert.equal(0, code, err)
    local doc = json.decode(out)
    assert.equal("ctr_example", doc.instance)
    assert.is_number(doc.metrics.auc)
    assert.equal(1, count("CreateFunctionTask"))
    assert.equal(1, count("UpdateFunctionDefaultInstance"))
  end)

  it("azure_textclass.lua trains, deploys and classifies the inbox", function()
    local out = sim.dir .. "/cls.jsonl"
    local code, stdout, err = sim:run({ "--state", sim.dir .. "/az.json", "examples/azure_textclass.lua",
      "examples/data/textclass_inbox", out })
    assert.equal(0, code, err)
    assert.is_number(json.decode(stdout).microF1)
    local n = 0
    for line in support.read(out):gmatch("[^\n]+") do
      local rec = json.decode(line)
      assert.matches("^ticket_%d+%.txt$", rec.file)
      assert.is_string(rec.class)
      n = n + 1
    end
    assert.equal(6, n)
  end)

  it("nightly.lua runs the three once per day", function()
    local outdir = sim.dir .. "/nightly"
    local state = sim.dir .. "/nightly/state.json"
    local env = { NIGHTLY_DATE = "2030-01-02" }
    local trains = count("CreateTrain")
    local code, _, err = sim:run({ "--state", state, "examples/nightly.lua", outdir }, { env = env })
    assert.equal(0, code, err)
    assert.equal(trains + 1, count("CreateTrain"))
    assert.is_string(support.read(outdir .. "/2030-01-02/recommendations.jsonl"))
    assert.is_string(support.read(outdir .. "/2030-01-02/classified.jsonl"))
    code, _, err = sim:run({ "--state", state, "examples/nightly.lua", outdir }, { env = env })
    assert.equal(0, code, err)
    assert.matches("already done today", err)
    assert.equal(trains + 1, count("CreateTrain"))
  end)

  it("prints no credential at --log-level trace, with key or Entra ID auth", function()
    local runs = {
      { args = { "examples/aitems_recommend.lua", sim.dir .. "/t1.jsonl" } },
      { args = { "examples/opensearch_ctr.lua", "ctr_trace" } },
      { args = { "examples/azure_textclass.lua", "examples/data/textclass_inbox", sim.dir .. "/t2.jsonl" } },
      { args = { "examples/azure_textclass.lua", "examples/data/textclass_inbox", sim.dir .. "/t3.jsonl" },
        env = { AZURE_LANGUAGE_KEY = false, AZURE_PROJECT = "EntraTrace" } },
    }
    for i, r in ipairs(runs) do
      local args = { "--log-level", "trace", "--state", sim.dir .. "/trace" .. i .. ".json" }
      for _, a in ipairs(r.args) do args[#args + 1] = a end
      local code, out, err = sim:run(args, { env = r.env })
      assert.equal(0, code, err)
      assert.matches("http request", err)
      assert.same({}, cloudsim.leaks(out .. err), r.args[1])
    end
  end)
end)
