-- luacheck: std +busted
-- Many requests at once on one thread: 1,000 signed AiTEMS calls to the
-- emulator from 1,000 tasks, all in flight together.

local cloudsim = require "support.cloudsim"
local task = require "trainctl.task"
local http = require "trainctl._http"
local aitems = require "trainctl.aitems"
local cjson = require "cjson"

describe("1,000 concurrent requests", function()
  local sim

  setup(function() sim = cloudsim.start({ speed = 1 }) end)
  teardown(function() sim:stop() end)

  it("all complete, each answered, all in flight at once", function()
    local client = aitems.client {
      access_key = "cloudsim-ncp-access-key", secret_key = "cloudsim-ncp-secret-key",
      endpoint = sim.url .. "/api/v1",
    }
    local in_flight, peak = 0, 0
    local ts = {}
    for i = 1, 1000 do
      ts[i] = task.spawn(function()
        in_flight = in_flight + 1
        if in_flight > peak then peak = in_flight end
        local res = client:list_services { limit = 1, offset = i }
        in_flight = in_flight - 1
        return res
      end)
    end
    local results = task.all(ts)
    assert.equal(1000, #results)
    for i, res in ipairs(results) do
      assert.equal(i, res.offset)
      assert.equal(1, res.limit)
    end
    -- every task was waiting on its request while the others started
    assert.equal(1000, peak)
    -- and each got its answer back (none left waiting)
    assert.equal(0, in_flight)
    -- and the emulator saw each of them once
    local log = cjson.decode(assert(http.request { url = sim.url .. "/_cloudsim/requests" }).body)
    assert.equal(1000, log.count)
    local offsets = {}
    for _, r in ipairs(log.requests) do
      assert.equal(200, r.status)
      assert.equal("ListServices", r.operation)
      offsets[tonumber(r.query:match("offset=(%d+)"))] = true
    end
    local seen = 0
    for _ in pairs(offsets) do seen = seen + 1 end
    assert.equal(1000, seen)
  end)
end)
