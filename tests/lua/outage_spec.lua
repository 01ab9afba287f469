-- A job's wait through an outage: a status poll that fails in a way that
-- may pass leaves the state unknown and is asked again, with backoff, until
-- the outage budget; an answer that will not change by waiting ends it.
-- Time is the fake clock of support.sleeps: nothing waits here.
local support = require("support.doubles")
local errors = require("trainctl.errors")
local http = require("trainctl.http")
local job = require("trainctl.job")

local function net()
  return { kind = "network", message = "Failed to connect to 127.0.0.1 port 9: Couldn't connect to server",
    method = "GET", url = "http://127.0.0.1:9/x" }
end

-- scripted(steps): a job whose polls answer each step in turn, the last
-- one for ever; a step with a kind is raised as an error object.
local function scripted(steps)
  local i = 0
  return job.new({
    provider = "test", label = "test job", ref = { id = "j" },
    poll = function()
      i = i + 1
      local s = steps[math.min(i, #steps)]
      if type(s) == "function" then return s() end
      if s.kind then errors.raise(s) end
      return s
    end,
  })
end

describe("a job's wait through an outage", function()
  local iso = support.isolate({ log = "info" })
  before_each(iso.before)
  after_each(iso.after)

  it("polls through network errors, 5xx, 408, 429 and bad answers, and says how long it lasted", function()
    local j = scripted({ { state = "running" }, net(),
      { kind = "api", status = 503, code = "500", message = "Endpoint Error" },
      { kind = "timeout", message = "Operation timed out" },
      { kind = "decode", status = 200, message = "response is not valid JSON" },
      { kind = "http", status = 408, message = "HTTP 408" },
      { kind = "api", status = 400, code = "Throttling.User", message = "flow control" },
      { kind = "network", message = "transfer closed with 59 bytes remaining to read" },
      { state = "running" }, { state = "succeeded" } })
    local st = j:wait({ interval = 2, backoff = 2, max_interval = 8, jitter = 0 })
    assert.equal("succeeded", st.state)
    assert.same({ 2, 4, 8, 8, 8, 8, 8, 8, 8 }, iso.sleeps.list)
    local text = iso.logs.text()
    assert.matches("warn  test job: status unknown for 0s %(network error: Failed to connect", text)
    assert.matches("; polling again in 4%.0s\n", text)
    for _, lasted in ipairs({ "4s", "12s", "20s", "28s", "36s", "44s" }) do
      assert.matches("status unknown for " .. lasted .. " %(", text)
    end
    assert.matches("HTTP 503, 500%): Endpoint Error", text)
    assert.matches("decode error %(HTTP 200%)", text)
    assert.matches("info  test job: status known again after 52s", text)
  end)

  it("ends at once on an auth error, a 404 or any other 4xx", function()
    for _, e in ipairs({
      { kind = "auth", status = 401, code = "200", message = "Authentication Failed" },
      { kind = "auth", status = 400, code = "SignatureDoesNotMatch", message = "not matched" },
      -- The provider's own not-found (a 404 in AiTEMS's backend
      -- envelope, whatever its code): the job is gone.
      { kind = "api", status = 404, code = "NOT_FOUND", message = "gone", provider = "aitems",
        details = { envelope = "backend" } },
      { kind = "api", status = 400, code = "INVALID_PARAMETER", message = "bad" },
      { kind = "api", message = "unknown job state" },
    }) do
      iso.sleeps.list = {}
      local j = scripted({ { state = "running" }, e })
      local ok, err = pcall(j.wait, j, { interval = 1 })
      assert.is_false(ok)
      assert.equal(e.kind, err.kind)
      assert.equal(e.message, err.message)
      assert.equal(1, #iso.sleeps.list, "polled again after " .. e.message)
    end
    assert.not_matches("status unknown", iso.logs.text())
  end)

  it("asks again after a 404 without the provider's own not-found code (a proxy, a gateway)", function()
    iso.sleeps.list = {}
    local j = scripted({ { state = "running" },
      { kind = "http", status = 404, code = "INTERNAL_SERVER_ERROR", message = "stray", provider = "aitems" },
      { state = "succeeded" } })
    assert.equal("succeeded", j:wait({ interval = 1 }).state)
    assert.equal(2, #iso.sleeps.list)
    assert.matches("status unknown", iso.logs.text())
  end)

  it("ends at once on an error that is not the service's (a bug)", function()
    local j = scripted({ function() error("attempt to index a nil value") end })
    local ok, err = pcall(j.wait, j, { interval = 1 })
    assert.is_false(ok)
    assert.matches("attempt to index a nil value", err)
    assert.same({}, iso.sleeps.list)
  end)

  it("gives up when the outage outlasts its budget, naming the last error", function()
    local j = scripted({ { state = "running" }, net() })
    local ok, err = pcall(j.wait, j, { interval = 10, backoff = 1, jitter = 0, outage = 25 })
    assert.is_false(ok)
    assert.equal("network", err.kind)
    assert.equal("test job: status unknown for 25s, longer than the outage budget (25s): "
      .. "Failed to connect to 127.0.0.1 port 9: Couldn't connect to server", err.message)
    assert.matches("network error: test job: status unknown for 25s.*%[GET http://127.0.0.1:9/x%]$",
      tostring(err))
    -- the last poll comes when the budget is used up, not after it
    assert.same({ 10, 10, 10, 5 }, iso.sleeps.list)
  end)

  it("gives up at once with an outage budget of 0 (the old behaviour)", function()
    local j = scripted({ net() })
    local ok, err = pcall(j.wait, j, { outage = 0 })
    assert.is_false(ok)
    assert.matches("longer than the outage budget %(0s%)", err.message)
    assert.same({}, iso.sleeps.list)
  end)

  it("defaults to 30 minutes", function()
    local j = scripted({ net() })
    local ok, err = pcall(j.wait, j, { interval = 60, backoff = 1, jitter = 0 })
    assert.is_false(ok)
    assert.matches("status unknown for 30m00s, longer than the outage budget %(30m00s%)", err.message)
    assert.equal(30, #iso.sleeps.list)
  end)

  it("takes the budget from TRAINCTL_OUTAGE_BUDGET, or as a duration per wait", function()
    iso.restore_env()
    iso.restore_env = support.env({ TRAINCTL_OUTAGE_BUDGET = "2m" })
    local j = scripted({ net() })
    local ok, err = pcall(j.wait, j, { interval = 60, backoff = 1, jitter = 0 })
    assert.is_false(ok)
    assert.matches("outage budget %(2m00s%)", err.message)
    j = scripted({ net() })
    ok, err = pcall(j.wait, j, { interval = 60, backoff = 1, jitter = 0, outage = "3m" })
    assert.is_false(ok)
    assert.matches("outage budget %(3m00s%)", err.message)
  end)

  it("refuses a budget that is not a duration, with a usage error", function()
    iso.restore_env()
    iso.restore_env = support.env({ TRAINCTL_OUTAGE_BUDGET = "soon" })
    local j = scripted({ { state = "succeeded" } })
    local ok, err = pcall(j.wait, j)
    assert.is_false(ok)
    assert.equal("usage", err.kind)
    assert.equal("TRAINCTL_OUTAGE_BUDGET: invalid duration 'soon' (e.g. 90, 30s, 15m, 2h)", err.message)
    ok, err = pcall(j.wait, j, { outage = -1 })
    assert.is_false(ok)
    assert.equal("usage", err.kind)
    assert.matches("outage must be seconds or a duration", err.message)
  end)

  it("ends at the wait's own deadline, saying the status was unknown", function()
    local j = scripted({ { state = "running" }, net() })
    local ok, err = pcall(j.wait, j, { timeout = 30, interval = 10, backoff = 1, jitter = 0 })
    assert.is_false(ok)
    assert.equal("timeout", err.kind)
    assert.same({ id = "j" }, err.job)
    assert.matches("^test job did not finish within 30s %(status unknown for 20s: Failed to connect", err.message)
  end)

  it("waits what a 429 or 503 asks, within the floor and the cap", function()
    local j = scripted({ { kind = "api", status = 429, message = "Rate Limited", retry_after = 0 },
      { kind = "api", status = 503, message = "busy", retry_after = 7 },
      { kind = "api", status = 503, message = "busy", retry_after = 1e9 },
      { state = "succeeded" } })
    j:wait({ interval = 0.05 })
    assert.same({ http.retry_defaults.min_retry_after, 7, http.retry_defaults.max_retry_after }, iso.sleeps.list)
  end)
end)

describe("server pacing of a job's status", function()
  local iso = support.isolate({ log = "info", env = false })
  before_each(iso.before)
  after_each(iso.after)

  it("polls no sooner than 1 s after the last, whatever Retry-After says", function()
    local j = scripted({ { state = "running", retry_after = 0 }, { state = "running", retry_after = 0.2 },
      { state = "running", retry_after = 3 }, { state = "succeeded" } })
    j:wait({ interval = 0.05 })
    assert.same({ 1, 1, 3 }, iso.sleeps.list)
  end)
end)

describe("http.transient", function()
  local function e(f) return errors.new(f) end
  it("is true for what may pass by waiting", function()
    for _, f in ipairs({ { kind = "network" }, { kind = "timeout" }, { kind = "decode", status = 200 },
      { kind = "http", status = 408 }, { kind = "api", status = 429 }, { kind = "api", status = 500 },
      { kind = "api", status = 502 }, { kind = "http", status = 503 }, { kind = "api", status = 504 },
      { kind = "http", status = 599 }, { kind = "api", status = 400, code = "Throttling.User" } }) do
      assert.is_true(http.transient(e(f)), f.kind .. " " .. tostring(f.status))
    end
  end)
  it("is false for what will not", function()
    for _, f in ipairs({ { kind = "auth", status = 401 }, { kind = "auth", status = 503 },
      { kind = "api", status = 400 }, { kind = "api", status = 404 }, { kind = "http", status = 409 },
      { kind = "tls" }, { kind = "too_large" }, { kind = "interrupted" }, { kind = "usage" },
      { kind = "training_failed" }, { kind = "api" } }) do
      assert.is_false(http.transient(e(f)), f.kind .. " " .. tostring(f.status))
    end
    assert.is_false(http.transient("a string"))
    assert.is_false(http.transient(e({ kind = "timeout", exit_code = 4,
      message = "the --timeout for this run was reached" })))
  end)
end)
