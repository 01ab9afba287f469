local support = require("support.doubles")
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
  local iso = support.isolate({ log = "info", env = false })
  before_each(iso.before)
  after_each(iso.after)

  it("waits through the states and returns the final status", function()
    local seen = {}
    local j = scripted({ { state = "pending" }, { state = "running", progress = 40 },
      { state = "succeeded", progress = 100, raw = { x = 1 } } })
    local st = j:wait({ interval = 2, on_progress = function(s) seen[#seen + 1] = s.state end })
    assert.equal("succeeded", st.state)
    assert.same({ x = 1 }, st.raw)
    assert.same({ "pending", "running", "succeeded" }, seen)
    assert.equal(2, #iso.sleeps.list)
  end)

  it("logs a plain line per change when stderr is not a terminal", function()
    local j = scripted({ { state = "running", progress = 10 }, { state = "running", progress = 12 },
      { state = "running", progress = 55 }, { state = "succeeded" } })
    j:wait({ interval = 1 })
    local text = iso.logs.text()
    assert.matches("test job: running 10%% elapsed", text)
    assert.not_matches("12%%", text)
    assert.matches("test job: running 55%%", text)
    assert.matches("test job: succeeded after", text)
  end)

  it("shows the server's ETA while the progress seen agrees with it", function()
    local sys = require("trainctl.sys")
    local eta = sys.now() + 95
    local j = scripted({ { state = "running", progress = 10, eta = eta },
      { state = "running", progress = 20, eta = eta }, { state = "succeeded" } })
    j:wait({ interval = 10, backoff = 1, jitter = 0 })
    assert.matches("test job: running 20%% ETA 1m3[45]s", iso.logs.text())
  end)

  it("derives the ETA from the progress seen when the server's is not credible", function()
    -- A server whose clock runs fast (cloudsim at --speed 60) promises
    -- the end in 106 hours while the progress moves 10% in 10 s.
    local sys = require("trainctl.sys")
    local eta = sys.now() + 106 * 3600
    local j = scripted({ { state = "running", progress = 10, eta = eta },
      { state = "running", progress = 20, eta = eta }, { state = "succeeded" } })
    j:wait({ interval = 10, backoff = 1, jitter = 0 })
    local text = iso.logs.text()
    assert.matches("test job: running 20%% ETA 1m20s", text)
    assert.not_matches("106h", text)
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

  describe("start", function()
    -- A provider double: trainings it holds, starts it was asked for.
    local function provider(existing)
      local p = { trainings = existing or {}, creates = 0, lookups = 0, records = {} }
      local function open(ref)
        return job.new({ provider = "p", ref = ref, poll = function() return { state = "running" } end })
      end
      p.o = {
        what = "the training start",
        prepare = function() return { before = #p.trainings } end,
        open = open,
        create = function(ref)
          p.creates = p.creates + 1
          p.trainings[#p.trainings + 1] = "t"
          return open(ref)
        end,
        lookup = function(ref)
          p.lookups = p.lookups + 1
          if #p.trainings > ref.before then return open(ref) end
        end,
        record = function(ref)
          p.records[#p.records + 1] = { pending = ref.pending, before = ref.before }
        end,
      }
      return p
    end

    it("records the reference as pending before the request, then as confirmed", function()
      local p = provider()
      p.o.create = function(ref)
        assert.same({ { pending = true, before = 0 } }, p.records)
        p.creates = p.creates + 1
        return job.new({ provider = "p", ref = ref, poll = function() end })
      end
      local j = job.start(p.o)
      assert.equal(1, p.creates)
      assert.is_nil(j.ref.pending)
      assert.same({ { pending = true, before = 0 }, { before = 0 } }, p.records)
    end)

    it("opens a confirmed reference without a request", function()
      local p = provider({ "t" })
      p.o.resume = { before = 0 }
      local j = job.start(p.o)
      assert.same({ before = 0 }, j.ref)
      assert.equal(0, p.creates)
      assert.equal(0, p.lookups)
    end)

    it("finds the training a killed run started instead of starting another", function()
      local p = provider({ "t" })
      p.o.resume = { before = 0, pending = true }
      local j = job.start(p.o)
      assert.equal(0, p.creates)
      assert.equal(1, p.lookups)
      assert.is_nil(j.ref.pending)
      assert.same({ { before = 0 } }, p.records)
    end)

    it("starts the training a killed run never got to start", function()
      local p = provider()
      p.o.resume = { before = 0, pending = true }
      job.start(p.o)
      assert.equal(1, p.creates)
      assert.equal(1, #p.trainings)
    end)

    it("looks again before starting when the earlier run's start was recorded moments ago", function()
      local p = provider()
      local sys = require("trainctl.sys")
      p.o.resume = { before = 0, pending = true, pending_at = sys.now() - 1 }
      local lookup = p.o.lookup
      p.o.lookup = function(ref)
        -- The killed run's request lands while this run waits.
        if p.lookups == 1 then p.trainings[1] = "t" end
        return lookup(ref)
      end
      local j = job.start(p.o)
      assert.equal(0, p.creates)
      assert.equal(2, p.lookups)
      assert.equal(1, #iso.sleeps.list)
      -- It looks again within the time the earlier request could still land.
      assert.is_true(iso.sleeps.list[1] > 0 and iso.sleeps.list[1] <= job.settle - 1)
      assert.is_nil(j.ref.pending)
      assert.is_nil(j.ref.pending_at)
    end)

    it("starts at once when the earlier run's start was recorded long ago", function()
      local p = provider()
      p.o.resume = { before = 0, pending = true, pending_at = require("trainctl.sys").now() - 3600 }
      job.start(p.o)
      assert.equal(1, p.creates)
      assert.equal(1, p.lookups)
      assert.same({}, iso.sleeps.list)
    end)

    it("takes a conflict on the first try of a resumed start for the earlier run's training", function()
      local errors = require("trainctl.errors")
      local p = provider()
      p.o.resume = { before = 0, pending = true }
      p.o.create = function()
        p.trainings[1] = "t" -- the earlier request arrived late
        errors.raise({ kind = "api", code = "Busy", status = 409 })
      end
      p.o.conflict = function(e) return e.code == "Busy" end
      local j = job.start(p.o)
      assert.is_nil(j.ref.pending)
      assert.equal(2, p.lookups)
    end)

    it("refuses a resume that is not a reference", function()
      local p = provider()
      p.o.resume = "abc"
      local ok, err = pcall(job.start, p.o)
      assert.is_false(ok)
      assert.equal("usage", err.kind)
    end)
  end)
end)
