local support = require("support.doubles")
local wait = require("trainctl.wait")

describe("trainctl.wait", function()
  local sleeps
  before_each(function() sleeps = support.sleeps() end)
  after_each(function() sleeps.restore() end)

  it("polls until done and returns the value", function()
    local n = 0
    local v = wait.poll(function()
      n = n + 1
      return n == 3, "v" .. n
    end, { interval = 1, jitter = 0, backoff = 2 })
    assert.equal("v3", v)
    assert.same({ 1, 2 }, sleeps.list)
  end)

  it("refuses an interval that would hammer the cloud or never poll again, before the first poll", function()
    local errors = require("trainctl.errors")
    for _, bad in ipairs({ { interval = 0 }, { interval = -5 }, { interval = 0 / 0 }, { interval = 1e9 },
      { interval = "abc" }, { max_interval = 0 } }) do
      local polled = false
      local ok, err = pcall(wait.poll, function() polled = true return true end, bad)
      assert.is_false(ok)
      assert.is_true(errors.is(err, "usage"), tostring(err))
      assert.matches("^wait: m?a?x?_?interval must be a number of seconds from 0.05 to 3600", err.message)
      assert.is_false(polled)
    end
  end)

  it("caps the interval at max_interval", function()
    local n = 0
    wait.poll(function()
      n = n + 1
      return n == 5
    end, { interval = 4, backoff = 3, max_interval = 10, jitter = 0 })
    assert.same({ 4, 10, 10, 10 }, sleeps.list)
  end)

  it("uses the delay fn asks for", function()
    local n = 0
    wait.poll(function()
      n = n + 1
      return n == 2, nil, 0.25
    end, { interval = 5 })
    assert.same({ 0.25 }, sleeps.list)
  end)

  it("raises a timeout error and never sleeps past the deadline", function()
    local ok, err = pcall(wait.poll, function() return false end,
      { timeout = 10, interval = 4, backoff = 1, jitter = 0, what = "the thing" })
    assert.is_false(ok)
    assert.equal("timeout", err.kind)
    assert.matches("the thing did not finish within 10s", err.message)
    assert.same({ 4, 4, 2 }, sleeps.list)
  end)

  it("spreads delays with jitter", function()
    for _ = 1, 50 do
      local d = wait.jittered(10, 0.2)
      assert.is_true(d >= 8 and d <= 12)
    end
  end)

  it("formats durations", function()
    assert.equal("42s", wait.duration(42))
    assert.equal("3m05s", wait.duration(185))
    assert.equal("1h02m", wait.duration(3725))
  end)
end)
