-- Waiting through outages: a training wait outlives the emulator stopped
-- and started again (with its --state file), while an auth error still
-- ends it at once and the outage budget ends an outage that lasts too long.
-- A server's Retry-After of 0 on a job's status does not make a tight loop.
-- The emulator's clock is frozen: the training waits as long as the test
-- needs, and ends when the test moves the clock.
local support = require("support")
local cloudsim = require("support.cloudsim")

local function count(s, pattern)
  local _, n = s:gsub(pattern, "")
  return n
end

describe("a training wait through an outage", function()
  local sim, restore, state_dir
  local n = 0
  setup(function()
    state_dir = support.tmpdir()
    sim = cloudsim.start({ speed = 0, args = "--state " .. support.quote(state_dir .. "/cloudsim.json") })
    restore = sim:use()
  end)
  teardown(function()
    restore()
    sim:stop()
    support.rmdir(state_dir)
  end)

  local function uniq(prefix)
    n = n + 1
    return ("%s%d"):format(prefix, n)
  end

  -- A batch service whose three datasets are imported.
  local function trainable()
    return (sim:aitems_service(require("trainctl.aitems").client(), uniq("osvc")))
  end

  -- A training start of sid waited on in the background (trainctl call
  -- aitems train --wait, after the options in pre), once its status has
  -- been polled twice.
  local function waiting(sid, env, pre)
    local args = { "call", "aitems", "train", "service_id=" .. sid, "types=pop", "--wait" }
    for i, a in ipairs(pre or {}) do table.insert(args, i, a) end
    local proc = sim:spawn(args, { env = env })
    finally(function() proc:kill("KILL") end)
    support.poll(function()
      assert.is_nil(proc:exited(), "the run ended before waiting: " .. tostring(support.read(proc.err)))
      local polls = 0
      for _, r in ipairs(sim:requests({ operation = "ListTrains" })) do
        if r.path:find(sid, 1, true) then polls = polls + 1 end
      end
      return polls >= 3
    end, 20, "the run to wait for its training")
    return proc
  end

  local function trains(sid)
    local k = 0
    for _, t in pairs(sim:state().providers.aitems.trains) do
      if t.serviceId == sid then k = k + 1 end
    end
    return k
  end

  it("goes on when the emulator is stopped, and ends well once it is back", function()
    local sid = trainable()
    local proc = waiting(sid)
    sim:halt()
    -- Twice the status poll's own five tries gave up; the wait goes on.
    support.poll(function()
      assert.is_nil(proc:exited(), "the wait ended during the outage: " .. tostring(support.read(proc.err)))
      return count(support.read(proc.err) or "", "status unknown for") >= 2
    end, 60, "two polls that found the emulator gone")
    sim:restart()
    sim:advance(700)
    local code, out, err = proc:wait(60)
    assert.equal(0, code, err)
    assert.matches('"state":"succeeded"', out) -- compact JSON when piped
    assert.matches("warn  aitems training " .. sid .. ": status unknown for %d+s %(aitems: network error: "
      .. "[^\n]*Couldn't connect to server %[GET [^\n]*%]%); polling again in %d+%.%d+s\n", err)
    assert.matches("%(attempt 5 of 5%)", err)
    assert.matches("info  aitems training " .. sid .. ": status known again after %d+s", err)
    assert.not_matches("traceback", err)
    assert.equal(1, trains(sid), "one training, however many polls failed")
  end)

  it("says, in --log-format json, which job met the outage, for how long, what it met and the next delay",
    function()
    local sid = trainable()
    local json = require("cjson")
    local proc = waiting(sid, nil, { "--log-format", "json" })
    -- One status poll's five tries meet a 503 each, the next poll answers.
    sim:faults({ { kind = "503", count = 5, match = { operation = "ListTrains" } } })
    support.poll(function()
      assert.is_nil(proc:exited(), "the run ended during the outage: " .. tostring(support.read(proc.err)))
      return (support.read(proc.err) or ""):find("status known again", 1, true)
    end, 60, "the status known again")
    sim:advance(700)
    local code, _, err = proc:wait(60)
    assert.equal(0, code, err)
    local unknown, known = {}, {}
    for line in err:gmatch("[^\n]+") do
      local rec = json.decode(line)
      if rec.msg:find("status unknown for", 1, true) then unknown[#unknown + 1] = rec end
      if rec.msg:find("status known again", 1, true) then known[#known + 1] = rec end
    end
    assert.equal(1, #unknown, err)
    local u = unknown[1]
    assert.equal("warn", u.level)
    assert.equal("aitems training " .. sid, u.job)
    assert.equal("aitems", u.provider)
    assert.equal("api", u.kind)
    assert.equal(503, u.status)
    assert.equal("500", u.code)
    assert.is_number(u.outage)
    -- The five tries waited at least 1 s each (Retry-After: 1).
    assert.is_true(u.outage >= 4, "outage " .. tostring(u.outage))
    assert.is_true(u.delay > 0, "delay " .. tostring(u.delay))
    assert.matches("^aitems training " .. sid .. ": status unknown for %d+s %(aitems: api error %(HTTP 503, "
      .. "500%): Endpoint Error [^\n]*%); polling again in [%d.]+m?s$", u.msg)
    assert.equal(1, #known, err)
    assert.equal("aitems training " .. sid, known[1].job)
    assert.is_true(known[1].outage >= u.outage, "outage " .. tostring(known[1].outage))
    assert.equal(1, trains(sid))
  end)

  it("still ends at once on an auth error (401)", function()
    local sid = trainable()
    local proc = waiting(sid)
    local since = sim:requests()
    since = since[#since].seq
    sim:faults({ { kind = "401", count = 10, match = { operation = "ListTrains" } } })
    local code, _, err = proc:wait(30)
    sim:no_faults()
    assert.equal(1, code)
    assert.matches("trainctl: aitems: auth error %(HTTP 401, 200%): Authentication Failed; check "
      .. "NCLOUD_ACCESS_KEY / NCLOUD_SECRET_KEY %(from the environment%) %[GET ", err)
    assert.not_matches("status unknown", err)
    assert.not_matches("retrying", err)
    assert.equal(1, #sim:requests({ operation = "ListTrains", since = since }), "no poll after the 401")
  end)

  it("still ends at once on an auth error that comes as a 404 (OpenSearch's unknown access key)", function()
    local inst = uniq("authinst")
    for _, args in ipairs({
      { "call", "opensearch", "create_function_instance", "app_group_identity=auth_app", "function_name=ctr",
        "instance_name=" .. inst, "model_type=tf_checkpoint" },
      { "call", "opensearch", "create_function_task", "app_group_identity=auth_app", "function_name=ctr",
        "instance_name=" .. inst, "--no-wait" } }) do
      local code, _, err = sim:run(args)
      assert.equal(0, code, err)
    end
    local since = sim:requests()
    since = since[#since].seq
    local ref = ('{"app_group_identity":"auth_app","function_name":"ctr","instance_name":"%s","generation":"1"}')
      :format(inst)
    local proc = sim:spawn({ "wait", "opensearch", ref }, { env = { ALIBABA_CLOUD_ACCESS_KEY_ID = "revoked-key-id",
      TRAINCTL_OUTAGE_BUDGET = "10m" } })
    finally(function() proc:kill("KILL") end)
    local code, _, err = proc:wait(30)
    assert.equal(1, code, err)
    assert.matches("auth error %(HTTP 404, InvalidAccessKeyId%.NotFound%)", err)
    assert.not_matches("status unknown", err)
    assert.equal(1, #sim:requests({ operation = "GetFunctionTask", since = since }), "no poll after the refusal")
  end)

  it("ends with a clear error when the outage outlasts its budget (TRAINCTL_OUTAGE_BUDGET)", function()
    local sid = trainable()
    local proc = waiting(sid, { TRAINCTL_OUTAGE_BUDGET = "3s" })
    local since = sim:requests()
    since = since[#since].seq
    sim:faults({ { kind = "503", count = 1000, match = { operation = "ListTrains" } } })
    local code, _, err = proc:wait(60)
    sim:no_faults()
    assert.equal(1, code, err)
    assert.matches("\ntrainctl: aitems: api error %(HTTP 503, 500%): aitems training " .. sid
      .. ": status unknown for %d+s, longer than the outage budget %(3s%): Endpoint Error %[GET [^\n]*%]\n$", err)
    assert.not_matches("traceback", err)
    -- One poll of five tries (Retry-After: 1 each) used the budget up.
    assert.equal(5, #sim:requests({ operation = "ListTrains", since = since }))
  end)
end)

describe("a job's status with Retry-After: 0", function()
  local sim = cloudsim.new({ speed = 0, args = "--azure-poll-retry-after 0" })
  setup(function() sim:start() end)
  teardown(function() sim:stop() end)

  it("is polled no sooner than 1 s after the last", function()
    local script = [[
      local az = require("trainctl.azure_language").client()
      az:create_project("Paced", { language = "en", project_kind = "CustomSingleLabelClassification",
        storage_input_container_name = "textclass" })
      local job = az:import_project("Paced", { metadata = { projectName = "Paced", language = "en",
        projectKind = "CustomSingleLabelClassification", storageInputContainerName = "textclass" },
        assets = { projectKind = "CustomSingleLabelClassification", classes = { { category = "a" } },
          documents = { { location = "a1.txt", language = "en", class = { category = "a" } } } } })
      print(job:wait().state)
    ]]
    local proc = sim:spawn({ "-e", script })
    finally(function() proc:kill("KILL") end)
    local polls = support.poll(function()
      local rs = sim:requests({ operation = "GetImportStatus" })
      return #rs >= 4 and rs
    end, 30, "four polls of the import")
    sim:advance(60)
    local code, out, err = proc:wait(30)
    assert.equal(0, code, err)
    assert.equal("succeeded\n", out)
    for i = 2, #polls do
      local gap = polls[i].wall - polls[i - 1].wall
      assert.is_true(gap >= 0.95, ("poll %d came %.3fs after the one before"):format(i, gap))
    end
  end)
end)

-- libfaketime moves the clock of trainctl alone; the emulator keeps the
-- real one and checks signatures against it.
local function faketime_lib()
  local p = io.popen("ls /usr/lib/*/faketime/libfaketime.so.1 /usr/lib/faketime/libfaketime.so.1 2>/dev/null")
  local lib = p:read("l")
  p:close()
  return lib
end

describe("a local clock off by more than the provider allows", function()
  local sim, lib
  setup(function()
    sim = cloudsim.start({ speed = 1200 })
    lib = faketime_lib()
  end)
  teardown(function() sim:stop() end)

  local function skewed(offset, extra)
    local env = { LD_PRELOAD = lib, FAKETIME = offset, FAKETIME_DONT_FAKE_MONOTONIC = "1" }
    for k, v in pairs(extra or {}) do env[k] = v end
    return { env = env }
  end

  local function statuses(operation)
    local out = {}
    for _, r in ipairs(sim:requests({ operation = operation })) do out[#out + 1] = r.status end
    return out
  end

  it("is found from the answer's Date: the request is signed again with the server's time, "
    .. "and so is the rest of the run (AiTEMS, 10 minutes slow)", function()
    if not lib then return pending("libfaketime is not installed (scripts/deps.sh)") end
    sim:admin("DELETE", "requests")
    local code, out, err = sim:run({ "-e", [[
      local ai = require("trainctl.aitems").client()
      ai:list_services()
      ai:list_schemas()
      ai:list_datasets()
      print("done")
    ]] }, skewed("-10m"))
    assert.equal(0, code, err)
    assert.equal("done\n", out)
    assert.matches("warn  aitems: auth error %(HTTP 401, 200%): Authentication Failed; the local clock is "
      .. "%d+m%d+s behind the server's %(Date: [^)]+ GMT%), more than the 5m00s aitems allows %[GET [^\n]*%]; "
      .. "signing with the server's time for the rest of the run and trying again", err)
    assert.equal(1, count(err, "\n"), "one line: " .. err)
    assert.same({ 401, 200 }, statuses("ListServices"))
    assert.same({ 200 }, statuses("ListSchemas"))
    assert.same({ 200 }, statuses("ListDatasets"))
  end)

  it("is named, with the offset, in the error when the signature is refused again", function()
    if not lib then return pending("libfaketime is not installed (scripts/deps.sh)") end
    local code, _, err = sim:run({ "call", "aitems", "list_services" },
      skewed("-10m", { NCLOUD_SECRET_KEY = "not-the-secret" }))
    assert.equal(1, code)
    assert.matches("\ntrainctl: aitems: auth error %(HTTP 401, 200%): Authentication Failed %(refused again "
      .. "when signed with the server's time; the local clock is %d+m%d+s behind the server's %(Date: [^)]+%), "
      .. "more than the 5m00s aitems allows%); check NCLOUD_ACCESS_KEY / NCLOUD_SECRET_KEY %(from the "
      .. "environment%) %[GET [^\n]*%]\n$", err)
    assert.equal(0, #cloudsim.leaks(err))
  end)

  it("lets a whole OpenSearch workflow run 20 minutes ahead (InvalidTimeStamp.Expired)", function()
    if not lib then return pending("libfaketime is not installed (scripts/deps.sh)") end
    sim:admin("DELETE", "requests")
    local code, out, err = sim:run({ "--state", sim.dir .. "/skew.json", "examples/opensearch_ctr.lua", "skewed" },
      skewed("+20m"))
    assert.equal(0, code, err)
    assert.matches('"instance": "skewed"', out)
    assert.matches("warn  opensearch: auth error %(HTTP 400, InvalidTimeStamp.Expired%): Specified time stamp "
      .. "or date value is expired; the local clock is 20m%d+s ahead of the server's", err)
    local refused = 0
    for _, r in ipairs(sim:requests()) do
      if r.status == 400 then refused = refused + 1 end
    end
    assert.equal(1, refused, "only the first request was refused")
  end)
end)
