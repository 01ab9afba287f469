-- Outside input is bounded: response bodies (max_body, 64 MiB by
-- default), JSON nesting (256), response headers (256 of them, 256 KiB in
-- all, 100 KiB a line) and Retry-After (capped at max_retry_after, with a
-- warning; values that are not a number of seconds or a date are ignored).
-- Sleeps are recorded, not slept.
local support = require("support")
local cloudsim = require("support.cloudsim")
local errors = require("trainctl.errors")
local http = require("trainctl.http")
local log = require("trainctl.log")
local sys = require("trainctl.sys")
local wait = require("trainctl.wait")

local YEAR = 365 * 86400
local MiB = 1024 * 1024

describe("bounds on outside input", function()
  local server, url, dir

  setup(function()
    dir = support.tmpdir()
    server = support.server({ script = "tests/reliability/lib/bounds_server.py" })
    url = server.url
  end)
  teardown(function()
    server.stop()
    support.rmdir(dir)
  end)

  local function send(path, o)
    o = o or {}
    o.provider, o.method, o.url = "test", "GET", url .. path
    if o.retry == nil then o.retry = false end
    local ok, a, b = pcall(http.send, o)
    if ok then return a, b end
    return nil, a
  end

  describe("response bodies", function()
    it("stop at max_body", function()
      local res, err = http.request({ url = url .. "/big?n=2000", max_body = 1000 })
      assert.is_nil(res)
      assert.equal("too_large", err.kind)
      assert.equal(("GET %s/big: response exceeds the size limit"):format(url), err.message)
    end)

    it("stop at 64 MiB by default, and the error is not retried", function()
      assert.equal(64 * MiB, #assert(http.request({ url = url .. "/big?n=" .. 64 * MiB })).body)
      local _, err = send("/big?n=" .. (64 * MiB + 1), { retry = { attempts = 3 } })
      assert.is_true(errors.is(err, "too_large"))
      assert.equal(1, err.attempts)
    end)
  end)

  describe("JSON nesting", function()
    it("of 256 levels is read", function()
      local v = assert(send("/deep?n=256"))
      assert.is_table(v[1][1])
    end)

    it("deeper is a decode error, also for a script (exit 1)", function()
      local _, err = send("/deep?n=257")
      assert.is_true(errors.is(err, "decode"))
      assert.matches("too many nested data structures %(257%)", err.message)
      local script = ("require('trainctl.http').send{provider='test', method='GET', url=%q, retry=false}")
        :format(url .. "/deep?n=100000")
      local code = support.exec(("%s -e %s >%s/out 2>%s/err"):format(support.quote(support.TRAINCTL),
        support.quote(script), dir, dir))
      assert.equal(1, code)
      assert.equal("", support.read(dir .. "/out"))
      assert.matches("^trainctl: test: decode error %(HTTP 200%): response is not valid JSON",
        support.read(dir .. "/err"))
    end)
  end)

  describe("response headers", function()
    it("up to 256 are read", function()
      local res = assert(http.request({ url = url .. "/headers?n=250" }))
      assert.equal("v", res.headers["x-h-249"])
    end)

    it("more are too_large", function()
      local _, err = http.request({ url = url .. "/headers?n=300" })
      assert.equal("too_large", err.kind)
    end)

    it("a line over 100 KiB is too_large", function()
      local _, err = http.request({ url = url .. "/longheader?n=" .. 200 * 1024 })
      assert.equal("too_large", err.kind)
      assert.matches("response exceeds the size limit", err.message)
    end)

    it("over 256 KiB in all are too_large", function()
      local res = assert(http.request({ url = url .. "/longheader?count=2&n=" .. 90 * 1024 }))
      assert.equal(90 * 1024, #res.headers["x-long-2"])
      local _, err = http.request({ url = url .. "/longheader?count=3&n=" .. 90 * 1024 })
      assert.equal("too_large", err.kind)
    end)
  end)

  describe("Retry-After", function()
    local slept, lines, sleep
    before_each(function()
      slept, lines, sleep = {}, {}, wait.sleep
      wait.sleep = function(d) slept[#slept + 1] = d end
      log.set_level("warn")
      log.set_sink(function(s) lines[#lines + 1] = s end)
    end)
    after_each(function()
      wait.sleep = sleep
      log.set_sink(nil)
      log.set_level("error")
    end)

    local n = 0
    local function retried(name, value)
      n = n + 1
      local v = assert(send(("/retry?case=%d&name=%s&value=%s"):format(n, name, require("trainctl.ops").encode(value)),
        { retry = { attempts = 2 } }))
      assert.same({}, v)
      assert.equal(1, #slept)
      return slept[1], table.concat(lines)
    end

    local cap = http.retry_defaults.max_retry_after
    for _, case in ipairs({
      { "Retry-After", tostring(YEAR), "seconds" },
      { "Retry-After", "HTTP date", "an HTTP date" },
      { "retry-after-ms", tostring(YEAR * 1000), "milliseconds" },
      { "x-acs-retry-after", tostring(YEAR * 1000), "milliseconds (Alibaba Cloud)" },
    }) do
      it(("of a year in %s is capped at %ds with a warning"):format(case[3], cap), function()
        local value = case[2] == "HTTP date" and sys.format_rfc1123(sys.now() + YEAR) or case[2]
        local d, text = retried(case[1], value)
        assert.equal(cap, d)
        assert.matches(("warn  test asked to retry after 3%%.15%%d*e%%+07s; waiting %ds instead"):format(cap), text)
      end)
    end

    for _, value in ipairs({ "-5", "abc", "1e400", "0x10", "inf", "nan", "5, 5", "" }) do
      it(("%q is ignored: the usual backoff applies, without a warning"):format(value), function()
        local d, text = retried("Retry-After", value)
        assert.is_true(d > 0 and d <= http.retry_defaults.base_delay, tostring(d))
        assert.not_matches("asked to retry", text)
      end)
    end

    it("of a year on a provider's 429 is capped, on every provider", function()
      local sim = cloudsim.start({ speed = 0 })
      local restore = sim:use()
      finally(function()
        restore()
        sim:stop()
      end)
      local clients = {
        { op = "ListServices", call = function() return require("trainctl.aitems").client():list_services() end },
        { op = "ListFunctionInstances", call = function()
          local c = require("trainctl.opensearch").client({ app_group = "a", function_name = "f" })
          return c:list_function_instances()
        end },
        { op = "ListProjects", call = function() return require("trainctl.azure_language").client():list_projects() end },
      }
      for _, c in ipairs(clients) do
        slept = {}
        sim:faults({ { kind = "429", retry_after = YEAR, match = { operation = c.op } } })
        assert.is_table(c.call())
        assert.same({ cap }, slept, c.op)
      end
    end)

    it("of a year on a job's status is capped too, with one warning", function()
      local sim = cloudsim.start({ speed = 0, args = "--azure-poll-retry-after " .. YEAR })
      local restore = sim:use()
      finally(function()
        restore()
        sim:stop()
      end)
      local az = require("trainctl.azure_language").client()
      wait.sleep = function(d)
        slept[#slept + 1] = d
        sim:advance(10)
      end
      az:create_project("Polled", { language = "en", project_kind = "CustomSingleLabelClassification",
        storage_input_container_name = "textclass" })
      local job = az:import_project("Polled", { metadata = { projectName = "Polled", language = "en",
        projectKind = "CustomSingleLabelClassification", storageInputContainerName = "textclass" },
        assets = { projectKind = "CustomSingleLabelClassification", classes = { { category = "a" } },
          documents = { { location = "a1.txt", language = "en", class = { category = "a" } } } } })
      assert.equal("succeeded", job:wait({ quiet = true }).state)
      assert.is_true(#slept >= 2)
      for _, d in ipairs(slept) do assert.equal(cap, d) end
      local _, warnings = table.concat(lines):gsub("asked to poll again after", "")
      assert.equal(1, warnings)
    end)
  end)
end)
