-- Workflow state a cron user can trust: records kept one key at a time
-- by any number of runs on one file, bad state files refused and left as
-- they were, links never written through by a lock, records keyed by what
-- a workflow creates, a recorded object never "gone" on one stray answer,
-- a start whose answer was lost never sent again while it can still land,
-- a training left running adopted, and a record the cloud forgot named
-- with the command that clears it.
local support = require("support")
local cloudsim = require("support.cloudsim")
local json = require("trainctl.json")

local quote = support.quote
local TRAINCTL = support.TRAINCTL

-- trainctl(args) -> exit status, stdout, stderr (no emulator needed).
local function trainctl(dir, args)
  local words = {}
  for i, a in ipairs(args) do words[i] = quote(a) end
  local out, err = dir .. "/out", dir .. "/err"
  local code = support.exec(("env -i PATH=%s HOME=%s %s %s >%s 2>%s"):format(quote(os.getenv("PATH")),
    quote(dir), quote(TRAINCTL), table.concat(words, " "), quote(out), quote(err)))
  return code, support.read(out) or "", support.read(err) or ""
end

local function count_lines(s) return support.matches(s, "[^\n]+") end

-- forget_command(err) -> the arguments of the `trainctl state forget ...`
-- that ends an error message, as a user would paste it.
local function forget_command(err)
  local cmd = err:match("(trainctl state forget .-)%s*$")
  local words = {}
  for w in cmd:gsub("^trainctl ", ""):gmatch("%S+") do words[#words + 1] = w:gsub("^'(.*)'$", "%1") end
  return words
end

describe("state files", function()
  local dir
  before_each(function() dir = support.tmpdir() end)
  after_each(function() support.rmdir(dir) end)

  it("keeps every record when 12 runs with their own keys write one file at once, round after round", function()
    local path = dir .. "/shared.json"
    for round = 1, 4 do
      local cmds = {}
      for i = 1, 12 do
        local chunk = ("local s = require('trainctl.state') for n = 1, 15 do "
          .. "s.set('r%d-run%d', {n = n, run = %d}) end"):format(round, i, i)
        cmds[#cmds + 1] = ("%s --state %s -e %s &"):format(quote(TRAINCTL), quote(path), quote(chunk))
      end
      assert.equal(0, support.exec(table.concat(cmds, " ") .. " wait"))
      local doc = json.decode(support.read(path))
      for r = 1, round do
        for i = 1, 12 do
          assert.same({ n = 15, run = i }, doc[("r%d-run%d"):format(r, i)], ("round %d run %d"):format(r, i))
        end
      end
    end
  end)

  local BAD = {
    { name = "a JSON array", text = "[]\n" },
    { name = "a number", text = "1\n" },
    { name = "a string", text = '"x"\n' },
    { name = "empty", text = "" },
    { name = "only whitespace", text = " \n\t\n" },
    { name = "half a JSON object", text = '{"a": {"job' },
  }
  for _, case in ipairs(BAD) do
    it(("refuses a state file that is %s, exit 1, and leaves it as it was"):format(case.name), function()
      local path = dir .. "/bad.json"
      support.write(path, case.text)
      local code, _, err = trainctl(dir, { "--state", path, "-e", "require('trainctl.state').set('k', 1)" })
      assert.equal(1, code)
      assert.equal(1, count_lines(err), err)
      assert.matches("state file " .. path:gsub("%p", "%%%0"), err)
      assert.not_matches("traceback", err)
      assert.equal(case.text, support.read(path))
    end)
  end

  it("refuses a state path that is a directory, exit 1, one line", function()
    local code, _, err = trainctl(dir, { "--state", dir, "-e", "require('trainctl.state').set('k', 1)" })
    assert.equal(1, code)
    assert.equal(1, count_lines(err), err)
    assert.matches("is a directory", err)
  end)

  it("refuses a state file it cannot read, exit 1, one line", function()
    support.write(dir .. "/plain", "data")
    local path = dir .. "/plain/state.json"
    local code, _, err = trainctl(dir, { "--state", path, "-e", "require('trainctl.state').get('k')" })
    assert.equal(1, code)
    assert.equal(1, count_lines(err), err)
    assert.matches("cannot read state file", err)
    assert.equal("data", support.read(dir .. "/plain"))
  end)

  it("waits for another writer's lock, and names the lock when it is held past state.lock_wait", function()
    local state, sys = require("trainctl.state"), require("trainctl.sys")
    local path = dir .. "/locked.json"
    support.write(path, '{"kept": 1}\n')
    local saved = state.lock_wait
    finally(function() state.lock_wait = saved end)
    state.lock_wait = 0.3
    local held = assert(sys.lock(path .. ".lock"))
    local doc = state.open(path)
    local ok, err = pcall(doc.set, doc, "mine", 2)
    assert.is_false(ok)
    assert.matches("another process has held .*locked%.json%.lock for 0%.3s", err.message)
    assert.equal('{"kept": 1}\n', support.read(path))
    held:unlock()
    doc:set("mine", 2)
    assert.same({ kept = 1, mine = 2 }, json.decode(support.read(path)))
  end)

  it("writes a symlinked state file through to its target, which keeps its other records", function()
    support.write(dir .. "/real.json", '{"other": 7}\n')
    assert.equal(0, support.exec(("ln -s real.json %s/link.json"):format(quote(dir))))
    local code, _, err = trainctl(dir, { "--state", dir .. "/link.json", "-e",
      "require('trainctl.state').set('mine', 'x')" })
    assert.equal(0, code, err)
    assert.equal(dir .. "/real.json", require("trainctl.sys").readlink(dir .. "/link.json") and
      (dir .. "/" .. require("trainctl.sys").readlink(dir .. "/link.json")))
    assert.same({ other = 7, mine = "x" }, json.decode(support.read(dir .. "/real.json")))
  end)

  it("never takes a lock through a symlink, nor truncates a lock file", function()
    support.write(dir .. "/precious", "precious data\n")
    assert.equal(0, support.exec(("ln -s precious %s/run.lock"):format(quote(dir))))
    local code, _, err = trainctl(dir, { "--lock", dir .. "/run.lock", "-e", "print(1)" })
    assert.equal(2, code)
    assert.matches("symbolic link", err)
    local sys = require("trainctl.sys")
    local l, why = sys.lock(dir .. "/run.lock")
    assert.is_nil(l)
    assert.matches("run.lock", why)
    assert.equal("precious data\n", support.read(dir .. "/precious"))
    -- A lock path naming somebody's data leaves the data as it was.
    l = assert(sys.lock(dir .. "/precious"))
    l:unlock()
    code, _, err = trainctl(dir, { "--lock", dir .. "/precious", "-e", "print(1)" })
    assert.equal(0, code, err)
    assert.equal("precious data\n", support.read(dir .. "/precious"))
  end)
end)

describe("trainctl state", function()
  local dir, path
  before_each(function()
    dir = support.tmpdir()
    path = dir .. "/s.json"
    support.write(path, json.encode({ ["wf{endpoint=http://a,prefix=shop}"] = { training = { id = "t1" } },
      other = 2 }))
  end)
  after_each(function() support.rmdir(dir) end)

  it("lists the records as JSON when piped", function()
    local code, out = trainctl(dir, { "state", "list", "--state", path })
    assert.equal(0, code)
    assert.same({ ["wf{endpoint=http://a,prefix=shop}"] = { training = { id = "t1" } }, other = 2 },
      json.decode(out))
  end)

  it("shows one record, and says which keys exist when the key is not there", function()
    local code, out = trainctl(dir, { "state", "show", "wf{endpoint=http://a,prefix=shop}", "--state", path })
    assert.equal(0, code)
    assert.same({ training = { id = "t1" } }, json.decode(out))
    local err
    code, out, err = trainctl(dir, { "state", "show", "nope", "--state=" .. path })
    assert.equal(1, code)
    assert.equal("", out)
    assert.matches("no record nope in state .*keys: other, wf", err)
  end)

  it("forgets one record and keeps the others", function()
    local code, _, err = trainctl(dir, { "state", "forget", "other", "--state", path })
    assert.equal(0, code, err)
    assert.matches("forgot other", err)
    assert.same({ ["wf{endpoint=http://a,prefix=shop}"] = { training = { id = "t1" } } },
      json.decode(support.read(path)))
    code = trainctl(dir, { "state", "forget", "other", "--state", path })
    assert.equal(1, code)
  end)

  it("prints the path a script's runs use by default", function()
    local code, out = trainctl(dir, { "state", "path", "--script", "examples/opensearch_ctr.lua" })
    assert.equal(0, code)
    assert.equal(dir .. "/.local/state/trainctl/opensearch_ctr.json\n", out)
  end)

  it("refuses a bad state file and a bad command with one line each", function()
    support.write(path, "[]")
    local code, _, err = trainctl(dir, { "state", "list", "--state", path })
    assert.equal(1, code)
    assert.equal(1, count_lines(err))
    code, _, err = trainctl(dir, { "state", "frobnicate", "--state", path })
    assert.equal(2, code)
    assert.matches("unknown state command", err)
  end)
end)

describe("workflow records against cloudsim", function()
  local sim = cloudsim.new({ speed = 1200, log = "error" })
  setup(function() sim:start() end)
  teardown(function() sim:stop() end)
  before_each(function()
    sim:reset()
    sim:no_faults()
    sim:speed(1200)
  end)

  local function service_ids()
    local ids = {}
    for id, s in pairs(sim:state().providers.aitems.services) do ids[s.name] = id end
    return ids
  end

  it("keys AiTEMS records by prefix: another prefix creates and trains its own service", function()
    local dir = support.tmpdir()
    finally(function() support.rmdir(dir) end)
    local code, _, err = sim:run({ "examples/aitems_recommend.lua", dir .. "/shop.jsonl" },
      { env = { AITEMS_PREFIX = "shop" } })
    assert.equal(0, code, err)
    local since = sim:requests()[#sim:requests()].seq
    code, _, err = sim:run({ "examples/aitems_recommend.lua", dir .. "/news.jsonl" },
      { env = { AITEMS_PREFIX = "news" } })
    assert.equal(0, code, err)
    local ids = service_ids()
    assert.is_string(ids.shop_service)
    assert.is_string(ids.news_service)
    -- One training start per service, and news's recommendations came
    -- from news's service only.
    local per = {}
    for _, r in ipairs(sim:requests({ operation = "CreateTrain" })) do
      local sid = r.path:match("/services/([^/?]+)")
      per[sid] = (per[sid] or 0) + 1
    end
    assert.same({ [ids.shop_service] = 1, [ids.news_service] = 1 }, per)
    local lookups = sim:requests({ operation = "LookupInference", since = since })
    assert.is_true(#lookups > 0)
    for _, r in ipairs(lookups) do assert.matches("/services/" .. ids.news_service .. "/", r.path) end
  end)

  it("does not start over on a stray 404 for the recorded service: one training in all", function()
    local dir = support.tmpdir()
    finally(function() support.rmdir(dir) end)
    local args = { "--state", dir .. "/s.json", "examples/aitems_recommend.lua", dir .. "/rec.jsonl" }
    -- Killed while it waits: the next run resumes with the service recorded.
    sim:speed(0)
    local first = sim:spawn(args)
    finally(function() first:kill("KILL") end)
    support.poll(function()
      if #sim:requests({ operation = "ListTrains" }) >= 3 and sim:started("CreateTrain") == 1 then return true end
      assert.is_nil(first:exited(), "the first run ended early")
      sim:advance(5)
    end, 30, "the training wait")
    first:kill("KILL")
    first:wait()
    sim:faults({ { kind = "404", match = { operation = "GetService" } } })
    sim:speed(1200)
    local code, _, err = sim:run(args)
    assert.equal(0, code, err)
    assert.not_matches("starting over", err)
    assert.equal(1, sim:started("CreateTrain"))
    assert.equal(1, sim:started("CreateService"))
  end)

  it("starts over when the service is really gone, confirmed by AiTEMS's own NOT_FOUND", function()
    local dir = support.tmpdir()
    finally(function() support.rmdir(dir) end)
    local args = { "--state", dir .. "/s.json", "examples/aitems_recommend.lua", dir .. "/rec.jsonl" }
    local code, _, err = sim:run(args)
    assert.equal(0, code, err)
    local old = service_ids().demo_service
    -- Gone for real: deleted behind the workflow's back.
    local ai = require("trainctl.aitems")
    local restore = sim:use()
    local c = ai.client()
    c:delete_service(old)
    restore()
    code, _, err = sim:run(args)
    assert.equal(0, code, err)
    assert.matches("recorded service is gone", err)
    assert.not_equal(old, service_ids().demo_service)
    assert.equal(2, sim:started("CreateTrain"))
  end)

  it("names the state file, the key and the command when a recorded Azure job has expired", function()
    local dir = support.tmpdir()
    finally(function() support.rmdir(dir) end)
    local state = dir .. "/s.json"
    local args = { "--state", state, "examples/azure_textclass.lua", "examples/data/textclass_inbox",
      dir .. "/cls.jsonl" }
    sim:speed(0)
    local first = sim:spawn(args)
    finally(function() first:kill("KILL") end)
    support.poll(function()
      if #sim:requests({ operation = "GetTrainingStatus" }) >= 3 then return true end
      assert.is_nil(first:exited(), "the first run ended early")
      sim:advance(1)
    end, 30, "the training wait")
    first:kill("KILL")
    first:wait()
    -- The service keeps a job for 7 days.
    sim:admin("POST", "clock", { advance = 8 * 86400 })
    local code, _, err = sim:run(args)
    assert.equal(1, code)
    assert.equal(1, count_lines(err:gsub("[^\n]*resuming[^\n]*\n", "")), err)
    local key = err:match("under key (azure_textclass{[^}]*})")
    assert.is_string(key, err)
    assert.matches(state:gsub("%p", "%%%0"), err)
    assert.matches("OperationNotFound", err)
    assert.matches("trainctl state forget", err)
    assert.equal(1, sim:started("StartTraining"))
    -- The command it names clears the record; the next run trains anew.
    code, _, err = sim:run(forget_command(err))
    assert.equal(0, code, err)
    sim:speed(1200)
    code, _, err = sim:run(args)
    assert.equal(0, code, err)
    assert.equal(2, sim:started("StartTraining"))
  end)

  it("does not start again an Azure training cancelled by hand, until its record is forgotten", function()
    local dir = support.tmpdir()
    finally(function() support.rmdir(dir) end)
    local state = dir .. "/s.json"
    local args = { "--state", state, "examples/azure_textclass.lua", "examples/data/textclass_inbox",
      dir .. "/cls.jsonl" }
    local before = sim:started("StartTraining")
    sim:speed(0)
    local first = sim:spawn(args)
    finally(function() first:kill("KILL") end)
    -- the training started and its job recorded (the answer read, not only
    -- sent: a kill in between leaves a pending start for the next run)
    local ref
    support.poll(function()
      local doc = sim:started("StartTraining") > before and json.decode(support.read(state) or "{}")
      local _, record = next(doc or {})
      ref = type(record) == "table" and type(record.training) == "table" and record.training.job_id
        and record.training
      if ref then return true end
      assert.is_nil(first:exited(), "the first run ended early")
      sim:advance(1)
    end, 30, "the training start, recorded")
    first:kill("KILL")
    first:wait()
    -- An operator cancels it (and the timer retries the night: twice).
    local code, _, err = sim:run({ "call", "azure_language", "cancel_training_job", "project_name=TextClassDemo",
      "job_id=" .. ref.job_id })
    assert.equal(0, code, err)
    sim:speed(1200)
    for _ = 1, 2 do
      code, _, err = sim:run(args)
      assert.equal(1, code, err)
      assert.matches("cancelled", err)
      assert.matches("is not started again: to start over, forget the record: trainctl state forget", err)
      assert.equal(before + 1, sim:started("StartTraining"))
    end
    -- The command it names clears the record; the next run trains anew.
    code, _, err = sim:run(forget_command(err))
    assert.equal(0, code, err)
    code, _, err = sim:run(args)
    assert.equal(0, code, err)
    assert.equal(before + 2, sim:started("StartTraining"))
  end)

  it("adopts the training a run left running instead of failing or starting another", function()
    local dir = support.tmpdir()
    finally(function() support.rmdir(dir) end)
    sim:speed(0)
    local first = sim:spawn({ "--state", dir .. "/yesterday.json", "examples/opensearch_ctr.lua", "ctr_adopt" })
    finally(function() first:kill("KILL") end)
    support.poll(function()
      if sim:started("CreateFunctionTask") == 1 then return true end
      assert.is_nil(first:exited(), "the first run ended early")
      sim:advance(1)
    end, 30, "the training start")
    first:kill("KILL")
    first:wait()
    -- Today's run has a state of its own (nightly.lua keeps one per day).
    sim:speed(1200)
    local code, out, err = sim:run({ "--state", dir .. "/today.json", "examples/opensearch_ctr.lua", "ctr_adopt" })
    assert.equal(0, code, err)
    assert.matches("already running", err)
    assert.equal("ctr_adopt", json.decode(out).instance)
    assert.equal(2, #sim:requests({ operation = "CreateFunctionTask" }))
    assert.equal(1, sim:opensearch_tasks())
  end)

  it("adopts an Azure training a run left running (409 Conflict) instead of failing or starting another",
    function()
    local dir = support.tmpdir()
    finally(function() support.rmdir(dir) end)
    local env = { env = { AZURE_PROJECT = "adopt-az" } }
    local function args(day)
      return { "--state", dir .. "/" .. day .. ".json", "examples/azure_textclass.lua",
        "examples/data/textclass_inbox", dir .. "/" .. day .. ".jsonl" }
    end
    sim:speed(0)
    local first = sim:spawn(args("yesterday"), env)
    finally(function() first:kill("KILL") end)
    support.poll(function()
      if sim:started("StartTraining") == 1 then return true end
      assert.is_nil(first:exited(), "the first run ended early")
      sim:advance(1)
    end, 60, "the training start")
    first:kill("KILL")
    first:wait()
    sim:speed(1200)
    local code, out, err = sim:run(args("today"), env)
    assert.equal(0, code, err)
    assert.matches("already running", err)
    assert.equal("adopt-az", json.decode(out:match("[^\n]+\n?$")).project)
    local refused = 0
    for _, r in ipairs(sim:requests({ operation = "StartTraining" })) do
      if r.status == 409 then refused = refused + 1 end
    end
    assert.equal(1, refused, "today's start refused as busy")
    assert.equal(1, sim:started("StartTraining"))
    local trainings = 0
    for _, j in pairs(sim:state().providers.azure.jobs) do
      if j.kind == "train" and j.project == "adopt-az" then trainings = trainings + 1 end
    end
    assert.equal(1, trainings)
  end)
end)

describe("a training start whose answer was lost", function()
  local sim = cloudsim.new({ speed = 1200, use = true, log = "error" })
  setup(function() sim:start() end)
  teardown(function() sim:stop() end)

  it("is looked up until the server's hold on it has ended, never sent while it can still land", function()
    local job = require("trainctl.job")
    local settle = job.settle
    job.settle = 2
    finally(function() job.settle = settle end)
    local os_ = require("trainctl.opensearch")
    local c = os_.client({ app_group = "held", function_name = "ctr", timeout = 0.5 })
    c:create_function_instance({ instance_name = "held", model_type = "tf_checkpoint", function_type = "PAAS" })
    -- The server holds the start 1.5 s before carrying it out; the client
    -- gives up after 0.5 s. A lookup at once finds nothing.
    sim:faults({ { kind = "slow", when = "before", delay = 1.5, match = { operation = "CreateFunctionTask" } } })
    local j = c:create_function_task({ instance_name = "held" })
    assert.is_string(j.ref.generation)
    assert.equal(1, #sim:requests({ operation = "CreateFunctionTask" }))
    assert.equal(1, sim:opensearch_tasks())
    assert.equal("succeeded", j:wait({ interval = 0.05 }).state)
  end)
end)
