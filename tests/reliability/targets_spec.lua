-- Path and query values are percent-encoded per segment: an id such as
-- "../x" or "a/b?c" cannot change the request target. The proof is the
-- emulator's request log, which records the path and query exactly as
-- they arrived (the emulator decodes them only afterwards, to route).
local cloudsim = require("support.cloudsim")

local HOSTILE = {
  { id = "../x", path = "..%2Fx" },
  { id = "a/b?c", path = "a%2Fb%3Fc" },
  { id = "..", path = "%2E%2E" },
  { id = ".", path = "%2E" },
  { id = "x#frag", path = "x%23frag" },
  { id = "a b&c=d", path = "a%20b%26c%3Dd" },
  { id = "%2F", path = "%252F" },
  { id = "ü/..", path = "%C3%BC%2F.." },
}

describe("request targets", function()
  local sim = cloudsim.new({ speed = 0, use = true, log = "error" })

  setup(function() sim:start() end)
  teardown(function() sim:stop() end)

  -- last(provider) -> the newest logged request of that provider.
  local function last(provider)
    local list = sim:requests({ provider = provider })
    return list[#list]
  end

  local CLIENTS = {
    {
      provider = "aitems",
      make = function() return require("trainctl.aitems").client() end,
      call = function(c, id) return c:get_service(id) end,
      prefix = "/api/v1/services/",
    },
    {
      provider = "opensearch",
      make = function() return require("trainctl.opensearch").client({ app_group = "g", function_name = "f" }) end,
      call = function(c, id) return c:get_function_instance({ instance_name = id }) end,
      prefix = "/v4/openapi/app-groups/g/functions/f/instances/",
    },
    {
      provider = "azure",
      make = function() return require("trainctl.azure_language").client() end,
      call = function(c, id) return c:get_project(id) end,
      prefix = "/language/authoring/analyze-text/projects/",
      query = "api-version=2023-04-01",
    },
  }

  for _, c in ipairs(CLIENTS) do
    for _, h in ipairs(HOSTILE) do
      it(("%s: the id %q stays one path segment (%s)"):format(c.provider, h.id, h.path), function()
        local client = c.make()
        pcall(c.call, client, h.id)
        local r = last(c.provider)
        assert.equal(c.prefix .. h.path, r.path)
        assert.equal(c.query or "", r.query)
      end)
    end
  end

  it("an id in a parent segment cannot address another parent (OpenSearch app group)", function()
    local c = require("trainctl.opensearch").client()
    pcall(c.get_function_instance, c, { app_group_identity = "../../x", function_name = "f/../g",
      instance_name = "i" })
    assert.equal("/v4/openapi/app-groups/..%2F..%2Fx/functions/f%2F..%2Fg/instances/i", last("opensearch").path)
  end)

  it("query values cannot add parameters (AiTEMS lookup, Azure list)", function()
    local ai = require("trainctl.aitems").client()
    pcall(ai.lookup, ai, "svc00000000", { type = "pop&limit=1", target_id = "u1#x?y=z" })
    local r = last("aitems")
    assert.equal("/api/v1/services/svc00000000/infers/lookup", r.path)
    assert.equal("type=pop%26limit%3D1&targetId=u1%23x%3Fy%3Dz", r.query)
    local az = require("trainctl.azure_language").client()
    pcall(az.list_training_jobs, az, "P", { top = 1, query = { ["api-version"] = "x&y" } })
    local q = last("azure").query
    assert.is_truthy(q:find("api-version=x%26y", 1, true), q)
    assert.is_falsy(q:find("&y", 1, true), q)
  end)

  it("the Entra tenant id is one segment too", function()
    local az = require("trainctl.azure_language").client({ key = false, tenant_id = "../common",
      client_id = "c", client_secret = "s" })
    pcall(az.list_projects, az)
    local list = sim:requests({ method = "POST" })
    assert.equal("/..%2Fcommon/oauth2/v2.0/token", list[#list].path)
  end)

  it("trainctl call encodes the same way (exit 1, the target unchanged)", function()
    local code, _, err = sim:run({ "call", "aitems", "get_service", "service_id=../datasets" })
    assert.equal(1, code)
    assert.matches("api error %(HTTP 404", err)
    assert.equal("/api/v1/services/..%2Fdatasets", last("aitems").path)
    assert.equal(0, #sim:requests({ operation = "ListDatasets" }))
  end)
end)
