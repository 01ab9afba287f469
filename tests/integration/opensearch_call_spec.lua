-- client:call on OpenSearch against cloudsim, which (like the gateway)
-- refuses an ACS3 request without x-acs-action: the action comes from the
-- operation table when the call names none, and a path no operation has
-- is a usage error before anything is sent.
local cloudsim = dofile("tests/integration/cloudsim.lua")
local opensearch = require("trainctl.opensearch")
local log = require("trainctl.log")

describe("opensearch client:call against cloudsim", function()
  local sim, restore
  local P = "/v4/openapi/app-groups/callgrp/functions/ctr"

  setup(function()
    log.set_level("error")
    sim = cloudsim.start({ speed = 0 })
    restore = sim:use()
  end)
  teardown(function()
    restore()
    sim:stop()
  end)

  for _, signature in ipairs({ "v3", "v2" }) do
    it("derives x-acs-action from the method and path (" .. signature .. ")", function()
      sim:reset()
      local c = opensearch.client({ signature = signature })
      local name = "call_" .. signature
      c:call("POST", P .. "/instances", { body = { instanceName = name, modelType = "tf_checkpoint" } })
      local got = c:call("GET", P .. "/instances/" .. name, { query = { output = "detail" } })
      assert.equal(name, got.Result.InstanceName)
      local list = c:call("GET", P .. "/instances")
      assert.equal(1, list.TotalCount)
      c:call("PUT", P .. "/instances/" .. name, { body = { description = "d" } })
      c:call("GET", "/v4/openapi/functions/ctr/current-version", { query = { modelType = "tf_checkpoint" } })
      c:call("DELETE", P .. "/instances/" .. name)
      local ops = {}
      for _, r in ipairs(sim:requests({ provider = "opensearch" })) do
        assert.equal(200, r.status)
        ops[#ops + 1] = r.operation
      end
      assert.same({ "CreateFunctionInstance", "GetFunctionInstance", "ListFunctionInstances",
        "UpdateFunctionInstance", "GetFunctionCurrentVersion", "DeleteFunctionInstance" }, ops)
    end)
  end

  it("sends the action it is given", function()
    sim:reset()
    local c = opensearch.client()
    local ok, err = pcall(c.call, c, "GET", P .. "/default-instance", { action = "GetFunctionDefaultInstance" })
    assert.is_false(ok)
    assert.equal("DefaultInstance.NotExist", err.code)
    assert.equal("GetFunctionDefaultInstance", sim:requests({ provider = "opensearch" })[1].operation)
  end)

  it("refuses a path no operation has, without sending it", function()
    sim:reset()
    local c = opensearch.client()
    local ok, err = pcall(c.call, c, "GET", "/v4/openapi/app-groups/callgrp")
    assert.is_false(ok)
    assert.equal("usage", err.kind)
    assert.matches("no operation is GET /v4/openapi/app%-groups/callgrp; name the API with action=", err.message)
    ok, err = pcall(c.call, c, "POST", P .. "/default-instance")
    assert.is_false(ok)
    assert.equal("usage", err.kind)
    assert.same({}, sim:requests({ provider = "opensearch" }))
  end)

  it("exits 2 with one line when a script calls such a path", function()
    local script = sim.dir .. "/call.lua"
    local f = assert(io.open(script, "w"))
    f:write('require("trainctl.opensearch").client():call("GET", "/v4/openapi/regions")\n')
    f:close()
    local code, out, err = sim:run({ script })
    assert.equal(2, code)
    assert.equal("", out)
    assert.equal("trainctl: usage error: opensearch: no operation is GET /v4/openapi/regions; "
      .. "name the API with action=\n", err)
  end)
end)
