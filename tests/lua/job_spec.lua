local support = dofile("tests/lua/support.lua")
local job = require("trainctl.job")

local function scripted(states)
  local i = 0
  return job.new({
    provider = "test", label = "test job", ref = { id = "j" },
    poll = function()
      i = i + 1
      return states[math.min(i, #states)]
    end,
  })
end

describe("trainctl.job", function()
  local sleeps, logs
  before_each(function()
    sleeps = support.sleeps()
    logs = support.logs("info")
  end)
  after_each(function()
    sleeps.restore()
    logs.restore()
  end)

  it("waits through the states and returns the final status", function()
    local seen = {}
    local j = scripted({ { state = "pending" }, { state = "running", progress = 40 },
      { state = "succeeded", progress = 100, raw = { x = 1 } } })
    local st = j:wait({ interval = 2, on_progress = function(s) seen[#seen + 1] = s.state end })
    assert.equal("succeeded", st.state)
    assert.same({ x = 1 }, st.raw)
    assert.same({ "pending", "running", "succeeded" }, seen)
    assert.equal(2, #sleeps.list)
  end)

  it("logs a plain line per change when stderr is not a terminal", function()
    local j = scripted({ { state = "running", progress = 10 }, { state = "running", progress = 12 },
      { state = "running", progress = 55 }, { state = "succeeded" } })
    j:wait({ interval = 1 })
    local text = logs.text()
    assert.matches("test job: running 10%% elapsed", text)
    assert.not_matches("12%%", text)
    assert.matches("test job: running 55%%", text)
    assert.matches("test job: succeeded after", text)
  end)

  it("raises training_failed with the provider's reason", function()
    local j = scripted({ { state = "failed", code = "learningFailed", message = "bad data" } })
    local ok, err = pcall(j.wait, j)
    assert.is_false(ok)
    assert.equal("training_failed", err.kind)
    assert.equal("learningFailed", err.code)
    assert.matches("bad data", err.message)
    assert.same({ id = "j" }, err.job)
  end)

  it("raises training_failed for a cancelled job", function()
    local j = scripted({ { state = "cancelled" } })
    local ok, err = pcall(j.wait, j)
    assert.is_false(ok)
    assert.equal("cancelled", err.code)
  end)

  it("raises timeout and leaves the job alone", function()
    local j = scripted({ { state = "running" } })
    local ok, err = pcall(j.wait, j, { timeout = 30, interval = 10, backoff = 1, jitter = 0 })
    assert.is_false(ok)
    assert.equal("timeout", err.kind)
    assert.same({ id = "j" }, err.job)
    assert.equal("running", j.last.state)
  end)

  it("refuses unknown states", function()
    local j = scripted({ { state = "weird" } })
    local ok, err = pcall(j.status, j)
    assert.is_false(ok)
    assert.matches("unknown job state", err.message)
  end)

  it("cancels through the provider or says it cannot", function()
    local cancelled = false
    local j = job.new({ provider = "p", poll = function() return { state = "running" } end,
      cancel = function() cancelled = true return "ok" end })
    assert.equal("ok", j:cancel())
    assert.is_true(cancelled)
    local k = job.new({ provider = "p", poll = function() return { state = "running" } end })
    local ok, err = pcall(k.cancel, k)
    assert.is_false(ok)
    assert.equal("usage", err.kind)
  end)
end)
