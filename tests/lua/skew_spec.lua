-- A signature refused because the local clock is off: the answer's Date
-- tells by how much; the error says so, and the request is signed again
-- with the server's time, as is every later one of the run.
local support = require("support.doubles")
local http = require("trainctl.http")
local sys = require("trainctl.sys")

local AITEMS_401 = { status = 401, body = { error = { errorCode = "200", message = "Authentication Failed" } } }

local function date(t) return sys.format_rfc1123(t) end

local function aitems()
  return require("trainctl.aitems").client({ access_key = "ak-0123456789", secret_key = "sk-secret",
    endpoint = "http://sim/api/v1", retry = false })
end

local function stamp(rec, i)
  return tonumber(rec.header(i, "x-ncp-apigw-timestamp")) / 1000
end

local function answer(r, server_time)
  return function()
    local a = {}
    for k, v in pairs(r) do a[k] = v end
    a.headers = { date = date(server_time) }
    return a
  end
end

describe("clock skew", function()
  local logs
  before_each(function() logs = support.logs("warn") end)
  after_each(function()
    logs.restore()
    http.forget_skew()
  end)

  it("signs again with the server's time when AiTEMS refuses a clock 10 minutes slow", function()
    local server = sys.now() + 600
    local rec = support.http({ answer(AITEMS_401, server), answer({ status = 200, body = { services = {} } }, server),
      answer({ status = 200, body = { services = {} } }, server) })
    local c = aitems()
    assert.same({}, c:list_services().services)
    assert.is_true(math.abs(stamp(rec, 1) - (server - 600)) < 5)
    assert.is_true(math.abs(stamp(rec, 2) - server) < 5, "the retry is signed with the server's time")
    -- the rest of the run too, without another refusal
    c:list_services()
    assert.is_true(math.abs(stamp(rec, 3) - server) < 5)
    rec.restore()
    assert.matches("warn  aitems: auth error %(HTTP 401, 200%): Authentication Failed; the local clock is "
      .. "10m0%ds behind the server's %(Date: " .. date(server):gsub("%p", "%%%0")
      .. "%), more than the 5m00s aitems allows %[GET http://sim/api/v1/services%]; signing with the "
      .. "server's time for the rest of the run and trying again", logs.text())
  end)

  it("says so in the error when the signature is refused again", function()
    local server = sys.now() - 1200
    local rec = support.http({ answer(AITEMS_401, server), answer(AITEMS_401, server) })
    local ok, err = pcall(aitems().list_services, aitems())
    rec.restore()
    assert.is_false(ok)
    assert.equal("auth", err.kind)
    assert.equal(2, #rec.requests)
    assert.matches("^Authentication Failed %(refused again when signed with the server's time; the local "
      .. "clock is 20m0%ds ahead of the server's", err.message)
  end)

  it("leaves a refusal alone when the clocks agree within the window", function()
    local rec = support.http({ answer(AITEMS_401, sys.now() + 290) })
    local ok, err = pcall(aitems().list_services, aitems())
    rec.restore()
    assert.is_false(ok)
    assert.equal(1, #rec.requests)
    assert.equal("Authentication Failed", err.message)
  end)

  it("allows OpenSearch its 15 minutes, and signs both schemes with the corrected time", function()
    for _, version in ipairs({ "v3", "v2" }) do
      local server = sys.now() + 1000
      local refused = { status = 400, body = { Code = "InvalidTimeStamp.Expired",
        Message = "Specified time stamp or date value is expired." } }
      local rec = support.http({ answer(refused, server), answer({ status = 200, body = { Result = {} } }, server) })
      local c = require("trainctl.opensearch").client({ access_key_id = "ak-0123456789",
        access_key_secret = "sk-secret", endpoint = "http://sim", signature = version, retry = false })
      c:call("GET", "/v4/openapi/app-groups/a/functions/f/instances")
      rec.restore()
      local signed = version == "v3" and sys.parse_iso8601(rec.header(2, "x-acs-date"))
        or sys.parse_rfc1123(rec.header(2, "date"))
      assert.is_true(math.abs(signed - server) < 5, version)
      assert.matches("Specified time stamp or date value is expired; the local clock is 16m4%ds behind",
        logs.text())
      http.forget_skew()
    end
  end)

  it("is not looked for on a provider without a signing window (Azure)", function()
    local rec = support.http({ answer({ status = 401, body = { error = { code = "401", message = "Access denied" } } },
      sys.now() + 3600) })
    local az = require("trainctl.azure_language").client({ endpoint = "http://sim", key = "k-0123456789" })
    local ok, err = pcall(az.call, az, "GET", "/language/authoring/analyze-text/projects", { retry = false })
    rec.restore()
    assert.is_false(ok)
    assert.equal(1, #rec.requests)
    assert.equal("Access denied", err.message)
  end)
end)
