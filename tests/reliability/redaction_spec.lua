-- No secret is ever printed: not the secret keys, the subscription key,
-- the client secret, a bearer token or any signature that went on the
-- wire, at any log level, in any example, under random faults and when
-- the server quotes the request (credentials included) back in an error.
--
-- Every run loads tests/reliability/lib/trainctl_spy.lua, which notes
-- each signature the signers produce; the bearer tokens are read from the
-- emulator's state. The output is then searched for all of them.
local support = require("support")
local cloudsim = require("support.cloudsim")
local json = require("trainctl.json")

-- 20% of provider requests meet a fault, before or after their effect.
local FAULTS = "500:0.04,502:0.02,503:0.02,504:0.02,429:0.02,reset:0.03,slow:0.02,badjson:0.02,truncate:0.01"

local function wordlist(text)
  local out = {}
  for line in (text or ""):gmatch("[^\n]+") do out[#out + 1] = line end
  return out
end

-- transient(stderr): the run ended on an error that retrying may cure.
local function transient(err)
  return err:find("trainctl: [%w_]+: network error") or err:find("trainctl: [%w_]+: timeout error")
    or err:find("trainctl: [%w_]+: decode error") or err:find("trainctl: [%w_]+: %w+ error %(HTTP 5%d%d")
    or err:find("trainctl: [%w_]+: %w+ error %(HTTP 429") or false
end

describe("redaction", function()
  local sim, spy

  setup(function()
    sim = cloudsim.start({ speed = 1200, args = ("--faults %s --slow-seconds 0.2 --retry-after 1"):format(FAULTS) })
    spy = sim.dir .. "/signatures"
    sim.env.LUA_PATH = "tests/reliability/lib/?.lua;;"
    sim.env.TRAINCTL_SPY_FILE = spy
  end)
  teardown(function() sim:stop() end)

  -- Everything that must not appear: credentials, every signature the
  -- runs made so far, every token the emulator issued.
  local function secrets()
    local list = wordlist(support.read(spy))
    for token in pairs(sim:state().providers.entra.tokens or {}) do list[#list + 1] = token end
    return list
  end

  local function spied(args)
    local out = { "-l", "trainctl_spy", "-l", "trainctl_quick" }
    for _, a in ipairs(args) do out[#out + 1] = a end
    return out
  end

  local EXAMPLES = {
    { name = "aitems_recommend", args = { "examples/aitems_recommend.lua", "rec.jsonl" }, provider = "aitems" },
    { name = "opensearch_ctr", args = { "examples/opensearch_ctr.lua", "ctr_redact" }, provider = "opensearch" },
    { name = "azure_textclass with a key", args = { "examples/azure_textclass.lua",
      "examples/data/textclass_inbox", "cls.jsonl" }, provider = "azure" },
    { name = "azure_textclass with Entra ID", args = { "examples/azure_textclass.lua",
      "examples/data/textclass_inbox", "cls_entra.jsonl" }, provider = "azure",
      env = { AZURE_LANGUAGE_KEY = false, AZURE_PROJECT = "EntraRedact" } },
  }

  it("prints none in any example at --log-level trace with 20% random faults", function()
    local procs, argv = {}, {}
    for i, ex in ipairs(EXAMPLES) do
      local args = { "--log-level", "trace", "--state", ("%s/redact%d.json"):format(sim.dir, i) }
      for _, a in ipairs(ex.args) do args[#args + 1] = a:find("%.jsonl$") and (sim.dir .. "/" .. a) or a end
      argv[i] = spied(args)
      procs[i] = sim:spawn(argv[i], { env = ex.env })
    end
    local printed = {}
    for i, p in ipairs(procs) do
      local code, out, err = p:wait(80)
      printed[i] = out .. err
      -- Five tries of a request all faulted (0.2^5 of requests) end a run
      -- with the last error; the same command then resumes and finishes.
      for _ = 1, 2 do
        if code == 0 then break end
        assert.is_true(transient(err), err:sub(-2000))
        code, out, err = sim:run(argv[i], { env = EXAMPLES[i].env })
        printed[i] = printed[i] .. out .. err
      end
      assert.equal(0, code, EXAMPLES[i].name .. ": " .. err:sub(-2000))
      assert.matches("http request", err)
    end
    local faulted = #sim:requests({ fault = "500" }) + #sim:requests({ fault = "reset" })
    assert.is_true(faulted > 5, "few faults were met")
    local list = secrets()
    assert.is_true(#list > 30, ("the spy saw few signatures (%d)"):format(#list))
    for i, text in ipairs(printed) do
      assert.same({}, cloudsim.leaks(text, list), EXAMPLES[i].name)
    end
  end)

  -- The request each echo answers: one in the middle of each workflow.
  local ECHOES = {
    { example = 1, match = { operation = "CreateService" } },
    { example = 2, match = { operation = "CreateFunctionTask" } },
    { example = 3, match = { operation = "StartTraining" } },
    { example = 4, match = { provider = "entra" } },
  }

  for _, level in ipairs({ "trace", "debug", "info" }) do
    it(("prints none when the server echoes the request back, at --log-level %s"):format(level), function()
      sim:admin("POST", "faults", { rates = "" })
      for i, e in ipairs(ECHOES) do
        local ex = EXAMPLES[e.example]
        sim:faults({ { kind = "echo", when = "before", match = e.match } })
        local args = { "--log-level", level, "--state", ("%s/echo-%s-%d.json"):format(sim.dir, level, i) }
        for _, a in ipairs(ex.args) do args[#args + 1] = a:find("%.jsonl$") and (sim.dir .. "/" .. a) or a end
        local env = { AZURE_PROJECT = "Echo" .. level .. i, AITEMS_PREFIX = ("e%s%d"):format(level:sub(1, 1), i) }
        for k, v in pairs(ex.env or {}) do env[k] = v end
        local code, out, err = sim:run(spied(args), { env = env })
        assert.equal(1, code, err)
        -- The echo came back, credentials and all, and was printed redacted.
        assert.matches("error %(HTTP 400, Echo%)", err)
        assert.matches("[REDACTED]", err, 1, true)
        if level ~= "info" then assert.matches("stack traceback", err) end
        assert.same({}, cloudsim.leaks(out .. err, secrets()), ex.name .. " at " .. level)
      end
    end)
  end

  -- A gateway that names the signature it refused, bare, where OpenSearch
  -- puts its string to sign (which the client logs at debug level, while
  -- the request is in flight), and the other providers quoting their
  -- credential in their message.
  it("prints none when the server quotes the bare signature in a debug line or a message", function()
    sim:admin("POST", "faults", { rates = "" })
    local script = [[
      local function refused(c, fn, ...)
        local ok, err = pcall(fn, c, ...)
        assert(not ok and err.code == "SignatureDoesNotMatch", tostring(err))
        print(tostring(err))
      end
      for _, signature in ipairs({ "v3", "v2" }) do
        local c = require("trainctl.opensearch").client({ signature = signature, retry = false })
        refused(c, c.list_function_instances, { app_group_identity = "a", function_name = "b" })
      end
      local ai = require("trainctl.aitems").client({ retry = false })
      refused(ai, ai.list_services)
      local az = require("trainctl.azure_language").client({ retry = false })
      refused(az, az.list_projects)
    ]]
    sim:faults({ { kind = "echo", count = 4, code = "SignatureDoesNotMatch",
      message = "Specified signature {signature} is not matched with our calculation. "
        .. "server string to sign is:GET\n{signature}" } })
    local code, out, err = sim:run(spied({ "--log-level", "debug", "-e", script }))
    assert.equal(0, code, err)
    assert.equal(0, #sim:admin("GET", "faults").scripted)
    -- The string to sign reached the debug log, the signature in it redacted.
    local sts = {}
    for line in err:gmatch("[^\n]*the server's string to sign[^\n]*") do sts[#sts + 1] = line end
    assert.equal(2, #sts, err)
    for _, line in ipairs(sts) do assert.matches('string_to_sign="GET\\n[REDACTED]"', line, 1, true) end
    local _, quoted = out:gsub("SignatureDoesNotMatch%): Specified signature %[REDACTED%] is not", "")
    assert.equal(4, quoted, out)
    assert.same({}, cloudsim.leaks(out .. err, secrets()))
  end)

  it("prints none in an error object's fields, its string or a traceback", function()
    sim:admin("POST", "faults", { rates = "" })
    local script = [[
      local json = require("trainctl.json")
      for _, signature in ipairs({ "v3", "v2" }) do
        local c = require("trainctl.opensearch").client({ signature = signature })
        local ok, err = pcall(c.list_function_instances, c, { app_group_identity = "a", function_name = "b" })
        assert(not ok and err.code == "Echo", tostring(err))
        local fields = {}
        for k, v in pairs(err) do fields[k] = type(v) == "table" and json.encode(v) or tostring(v) end
        print(json.encode(fields))
        print(tostring(err))
        print(debug.traceback(tostring(err)))
      end
      local ai = require("trainctl.aitems").client()
      local ok, err = pcall(ai.list_services, ai)
      assert(not ok and err.code == "Echo")
      print(json.encode(setmetatable(err, nil)))
      error(err)
    ]]
    sim:faults({ { kind = "echo", when = "before", count = 3 } })
    local code, out, err = sim:run(spied({ "--log-level", "debug", "-e", script }))
    assert.equal(1, code, err)
    local lines = wordlist(out)
    assert.is_true(#lines > 6)
    assert.is_table(json.decode(lines[1]))
    assert.matches("authorization: ACS3%-HMAC%-SHA256", out)
    assert.matches("authorization: acs clou%*%*%*%*:", out)
    assert.matches("x%-ncp%-apigw%-signature%-v2: %[REDACTED%]", out)
    assert.same({}, cloudsim.leaks(out .. err, secrets()))
  end)
end)
