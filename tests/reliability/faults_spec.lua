-- What a run shows, and its exit status, when the server is dead or keeps
-- answering badly, when the state file is damaged, when a training fails,
-- and when credentials are offered where they are refused. Retries are
-- watched in-process with their sleeps recorded, not slept.
local support = require("support")
local cloudsim = require("support.cloudsim")
local errors = require("trainctl.errors")
local wait = require("trainctl.wait")

describe("faults a run reports", function()
  local sim = cloudsim.new({ speed = 1200, use = true, log = "error" })

  setup(function() sim:start() end)
  teardown(function() sim:stop() end)

  -- Retried to the end: five tries, growing pauses, then the last error.
  describe("retried to the end", function()
    local slept, sleep
    before_each(function()
      slept, sleep = {}, wait.sleep
      wait.sleep = function(d) slept[#slept + 1] = d end
    end)
    after_each(function() wait.sleep = sleep end)

    local function exhausted(endpoint, faults)
      sim:faults(faults)
      local ai = require("trainctl.aitems").client({ endpoint = endpoint })
      local ok, err = pcall(ai.list_services, ai)
      assert.is_false(ok)
      assert.equal(5, err.attempts)
      assert.equal(4, #slept)
      for i = 2, 4 do assert.is_true(slept[i] > slept[i - 1] * 0.9, "backoff grows") end
      return err
    end

    it("a dead server is a network error", function()
      local err = exhausted("http://127.0.0.1:9/api/v1")
      assert.is_true(errors.is(err, "network"))
      assert.matches("Couldn't connect to server", err.message)
    end)

    it("a body cut short every time is a network error", function()
      local err = exhausted(nil, { { kind = "truncate", count = 5, match = { operation = "ListServices" } } })
      assert.is_true(errors.is(err, "network"))
      assert.matches("transfer closed with %d+ bytes remaining to read", err.message)
    end)

    it("half a JSON document every time is a decode error", function()
      local err = exhausted(nil, { { kind = "badjson", count = 5, match = { operation = "ListServices" } } })
      assert.is_true(errors.is(err, "decode"))
      assert.matches("^response is not valid JSON", err.message)
    end)

    it("a 503 every time is the provider's error", function()
      local err = exhausted(nil, { { kind = "503", count = 5, match = { operation = "ListServices" } } })
      assert.equal(503, err.status)
      assert.equal("Endpoint Error", err.message)
    end)
  end)

  it("and such an error ends a script with exit 1", function()
    local code, out, err = sim:run({ "-e", [[
      require("trainctl.http").retry_defaults.attempts = 1
      require("trainctl.aitems").client():list_services()]] }, { env = { TRAINCTL_AITEMS_ENDPOINT =
      "http://127.0.0.1:9/api/v1" } })
    assert.equal(1, code)
    assert.equal("", out)
    assert.equal("trainctl: aitems: network error: Failed to connect to 127.0.0.1 port 9 after 0 ms: "
      .. "Couldn't connect to server [GET http://127.0.0.1:9/api/v1/services]\n", err:gsub("after %d+ ms", "after 0 ms"))
  end)

  it("a state file that is not JSON stops the run (exit 1) and is left for the user to fix", function()
    local path = sim.dir .. "/broken.json"
    support.write(path, '{"training": ')
    local code, _, err = sim:run({ "--state", path, "examples/opensearch_ctr.lua", "ctr_broken" })
    assert.equal(1, code)
    assert.matches("^trainctl: io error: state file .*broken%.json is not a JSON object %(json: .*%); "
      .. "fix it, or remove it to forget every record in it\n$", err)
    assert.equal('{"training": ', support.read(path))
    assert.equal(0, #sim:requests({ operation = "CreateFunctionTask" }))
  end)

  it("a failed training ends the run with exit 1; the next run starts a new one", function()
    local state = sim.dir .. "/failing.json"
    for round = 1, 2 do
      local code, out, err = sim:run({ "--state", state, "examples/opensearch_ctr.lua", "ctr_fail" })
      assert.equal(1, code)
      assert.equal("", out)
      assert.matches("trainctl: opensearch: training_failed error %(TrainFailed%): opensearch training ctr_fail failed: ",
        err)
      assert.equal(round, sim:started("CreateFunctionTask"))
    end
  end)

  describe("credentials", function()
    it("are refused on the command line (exit 2)", function()
      local code, _, err = sim:run({ "call", "aitems", "list_services", "secret_key=" .. cloudsim.CREDENTIALS.NCLOUD_SECRET_KEY })
      assert.equal(2, code)
      assert.matches('unknown parameter "secret_key"', err)
      assert.same({}, cloudsim.leaks(err))
      code, _, err = sim:run({ "--secret-key", "x", "-e", "print(1)" })
      assert.equal(2, code)
      assert.matches("unrecognized option '%-%-secret%-key'", err)
    end)

    it("in a file others can read are refused (exit 2), even when the environment has them all", function()
      local dir = sim.dir .. "/config/trainctl"
      os.execute("mkdir -p " .. support.quote(dir))
      support.write(dir .. "/credentials", "[default]\nNCLOUD_SECRET_KEY = from-the-file\n")
      os.execute("chmod 644 " .. support.quote(dir .. "/credentials"))
      local code, _, err = sim:run({ "call", "aitems", "list_services" })
      assert.equal(2, code)
      assert.matches("credentials file .* can be read by group or others %(mode 0644%); run: chmod 600 ", err)
      os.execute("chmod 600 " .. support.quote(dir .. "/credentials"))
      code = sim:run({ "call", "aitems", "list_services" })
      assert.equal(0, code)
      os.remove(dir .. "/credentials")
    end)
  end)
end)
