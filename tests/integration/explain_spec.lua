-- What trainctl tells a user about its own settings and about failures,
-- against cloudsim: `trainctl config` (where each setting and credential
-- comes from, never a value), provider defaults from the environment or a
-- profile, and errors that name what to check, in one line.
local support = require("support")
local cloudsim = require("support.cloudsim")
local aitems = require("trainctl.aitems")

local function one_line(s)
  return select(2, s:gsub("\n", "")) == 1 and s:sub(-1) == "\n"
end

describe("trainctl config and errors against cloudsim", function()
  local sim = cloudsim.new({ poll_interval = "0.2", speed = 0, use = true, log = "error" })

  setup(function() sim:start() end)
  teardown(function() sim:stop() end)

  -- A credentials file in the emulator's XDG_CONFIG_HOME.
  local function profile_file(text)
    local dir = sim.env.XDG_CONFIG_HOME .. "/trainctl"
    os.execute("mkdir -p " .. support.quote(dir))
    local f = assert(io.open(dir .. "/credentials", "wb"))
    f:write(text)
    f:close()
    os.execute("chmod 600 " .. support.quote(dir .. "/credentials"))
    return dir .. "/credentials"
  end

  describe("trainctl config", function()
    after_each(function() os.remove(sim.env.XDG_CONFIG_HOME .. "/trainctl/credentials") end)

    it("shows endpoints and where each credential comes from, never a value", function()
      local code, out, err = sim:run({ "config" })
      assert.equal(0, code, err)
      assert.matches("aitems:\n  endpoint: +" .. sim.url:gsub("%p", "%%%0")
        .. "/api/v1 %(TRAINCTL_AITEMS_ENDPOINT from the environment%)", out)
      assert.matches("NCLOUD_SECRET_KEY: +from the environment", out)
      assert.matches("auth: +key %(AZURE_LANGUAGE_KEY is set%)", out)
      assert.matches("region: +cn%-hangzhou %(default%)", out)
      assert.same({}, cloudsim.leaks(out .. err))
    end)

    it("names the profile file a credential was read from; whoami is the same command", function()
      local path = profile_file("[nightly]\nNCLOUD_SECRET_KEY = cloudsim-ncp-secret-key\n"
        .. "OPENSEARCH_APP_GROUP = from_profile\n")
      local code, out, err = sim:run({ "--profile", "nightly", "whoami" }, { env = { NCLOUD_SECRET_KEY = false } })
      assert.equal(0, code, err)
      assert.matches("profile: nightly %(%-%-profile%)", out)
      assert.matches("NCLOUD_SECRET_KEY: +from profile 'nightly' in " .. path:gsub("%p", "%%%0"), out)
      assert.matches("NCLOUD_ACCESS_KEY: +from the environment", out)
      assert.matches("app_group_identity: from_profile %(OPENSEARCH_APP_GROUP from profile 'nightly'", out)
      assert.same({}, cloudsim.leaks(out .. err))
      code, out = sim:run({ "config", "--json" }, { env = { TRAINCTL_PROFILE = "nightly" } })
      assert.equal(0, code)
      assert.matches('"from": "TRAINCTL_PROFILE"', out)
    end)

    it("a profile that does not exist is a usage error (exit 2)", function()
      profile_file("[nightly]\n")
      local code, out, err = sim:run({ "--profile", "nope", "config" })
      assert.equal(2, code)
      assert.equal("", out)
      assert.matches("no profile %[nope%]", err)
      assert.is_true(one_line(err), err)
    end)
  end)

  describe("OpenSearch app group and function name defaults", function()
    after_each(function() os.remove(sim.env.XDG_CONFIG_HOME .. "/trainctl/credentials") end)

    it("come from OPENSEARCH_APP_GROUP and OPENSEARCH_FUNCTION_NAME", function()
      local code, out, err = sim:run({ "call", "opensearch", "list_function_instances" },
        { env = { OPENSEARCH_APP_GROUP = "env_group", OPENSEARCH_FUNCTION_NAME = "ctr" } })
      assert.equal(0, code, err)
      assert.matches('"Result"', out)
      local reqs = sim:requests({ operation = "ListFunctionInstances" })
      assert.matches("/app%-groups/env_group/functions/ctr/instances", reqs[#reqs].path)
    end)

    it("come from the profile, and a parameter given on the command line wins", function()
      profile_file("[nightly]\nopensearch_app_group = prof_group\nopensearch_function_name = ctr\n")
      local code, _, err = sim:run({ "--profile", "nightly", "call", "opensearch", "list_function_instances" })
      assert.equal(0, code, err)
      local reqs = sim:requests({ operation = "ListFunctionInstances" })
      assert.matches("/app%-groups/prof_group/functions/ctr/", reqs[#reqs].path)
      code, _, err = sim:run({ "--profile", "nightly", "call", "opensearch", "list_function_instances",
        "app_group_identity=given" })
      assert.equal(0, code, err)
      reqs = sim:requests({ operation = "ListFunctionInstances" })
      assert.matches("/app%-groups/given/functions/ctr/", reqs[#reqs].path)
    end)

    it("without them, the missing parameter is named", function()
      local code, _, err = sim:run({ "call", "opensearch", "list_function_instances" })
      assert.equal(2, code)
      assert.matches("app_group_identity", err)
    end)
  end)

  describe("errors that say what to check", function()
    it("an endpoint without a scheme says the scheme is missing and where it was set", function()
      local hostport = sim.url:gsub("^http://", "")
      local code, out, err = sim:run({ "call", "aitems", "list_services" },
        { env = { TRAINCTL_AITEMS_ENDPOINT = hostport .. "/api/v1" } })
      assert.equal(2, code)
      assert.equal("", out)
      assert.matches("aitems: bad endpoint " .. hostport:gsub("%p", "%%%0")
        .. "/api/v1 %(from TRAINCTL_AITEMS_ENDPOINT%): the scheme is missing; write http://", err)
      assert.is_true(one_line(err), err)
    end)

    it("an AiTEMS endpoint without /api/v1 says so instead of a 404 from the server", function()
      local before = #sim:requests()
      local code, _, err = sim:run({ "call", "aitems", "list_services" },
        { env = { TRAINCTL_AITEMS_ENDPOINT = sim.url } })
      assert.equal(2, code)
      assert.matches("has no path: the API is under /api/v1; write " .. sim.url:gsub("%p", "%%%0") .. "/api/v1",
        err)
      assert.not_matches("no provider serves", err)
      assert.is_true(one_line(err), err)
      assert.equal(before, #sim:requests())
    end)

    it("an OpenSearch signature mismatch leaves the server's string to sign to the debug log", function()
      local args = { "call", "opensearch", "list_function_instances", "app_group_identity=g", "function_name=f" }
      local env = { ALIBABA_CLOUD_ACCESS_KEY_SECRET = "not-the-secret" }
      local code, out, err = sim:run(args, { env = env })
      assert.equal(1, code)
      assert.equal("", out)
      assert.matches("SignatureDoesNotMatch", err)
      assert.matches("check ALIBABA_CLOUD_ACCESS_KEY_ID / ALIBABA_CLOUD_ACCESS_KEY_SECRET", err)
      assert.not_matches("x%-acs%-", err)
      assert.is_true(one_line(err), err)
      table.insert(args, 1, "--log-level")
      table.insert(args, 2, "debug")
      code, out, err = sim:run(args, { env = env })
      assert.equal("", out)
      assert.equal(1, code)
      assert.matches("string_to_sign=.*x%-acs%-action", err)
    end)

    it("a dataset whose file is refused names the object and what it must be", function()
      local ai = aitems.client()
      ai:create_schema({ dataset_type = "user", name = "explain_users",
        fields = { { name = "USER_ID", type = { "string" } } } })
      local ds = ai:create_dataset({ type = "user", name = "explain_missing", schema_name = "explain_users",
        os_info = { region = "KR", bucket = "b", key = "aitems/no_such_file.csv" } })
      sim:advance(100)
      local ok, err = pcall(function() return ai:dataset_job(ds.datasetId):wait({ timeout = 5, interval = 0.1 }) end)
      assert.is_false(ok)
      assert.equal("training_failed", err.kind)
      assert.matches("dataset explain_missing is upload_failed; check that Object Storage bucket b holds "
        .. "aitems/no_such_file.csv, a %.csv or %.csv%.gz file whose header row is the fields of schema "
        .. "explain_users %(cloudsim reads it under its %-%-data%-dir%)", err.message)
    end)

    it("a failed training states its reason once", function()
      local c = require("trainctl.opensearch").client({ app_group = "explain", function_name = "ctr" })
      c:create_function_instance({ instance_name = "ctr_fail", model_type = "tf_checkpoint" })
      local job = c:create_function_task({ instance_name = "ctr_fail" })
      sim:advance(10000)
      local ok, err = pcall(job.wait, job, { timeout = 5, interval = 0.1 })
      assert.is_false(ok)
      assert.equal("opensearch: training_failed error (TrainFailed): opensearch training ctr_fail failed: "
        .. "the sample data yields no positive examples", tostring(err))
    end)
  end)
end)
