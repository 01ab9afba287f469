-- The OpenSearch client against cloudsim: both signatures, both key
-- casings, lifecycles to success and failure, paging, errors, throttling.
local support = require("support")
local cloudsim = require("support.cloudsim")
local opensearch = require("trainctl.opensearch")

describe("opensearch against cloudsim", function()
  local sim = cloudsim.new({ poll_interval = "0.2", speed = 0, use = true, log = "error" })

  setup(function() sim:start() end)
  teardown(function() sim:stop() end)

  local function client(extra)
    local o = { app_group = "itest", function_name = "ctr" }
    for k, v in pairs(extra or {}) do o[k] = v end
    return opensearch.client(o)
  end

  local function instance(c, name)
    return c:create_function_instance({ instance_name = name, model_type = "tf_checkpoint" })
  end

  for _, signature in ipairs({ "v3", "v2" }) do
    it("trains to success with signature " .. signature, function()
      local c = client({ signature = signature })
      local name = "ok_" .. signature
      instance(c, name)
      local job = c:create_function_task({ instance_name = name })
      sim:advance(300)
      local st = job:status()
      assert.equal("running", st.state)
      assert.is_true(st.progress > 0 and st.progress < 100)
      sim:advance(400)
      st = job:wait({ timeout = 5, interval = 0.1 })
      assert.equal("succeeded", st.state)
      assert.is_number(st.raw.ExtendInfo.auc)
      local inst = c:get_function_instance({ instance_name = name })
      assert.equal("available", inst.Result.Status)
    end)
  end

  it("reports a failed training with its reason", function()
    local c = client()
    instance(c, "will_fail")
    local job = c:create_function_task({ instance_name = "will_fail" })
    sim:advance(1000)
    local ok, err = pcall(job.wait, job, { timeout = 5, interval = 0.1 })
    assert.is_false(ok)
    assert.equal("training_failed", err.kind)
    assert.matches("will_fail", err.message)
  end)

  it("refuses a second start while one runs (Task.IsRunning)", function()
    local c = client()
    instance(c, "busy")
    c:create_function_task({ instance_name = "busy" })
    local ok, err = pcall(c.create_function_task, c, { instance_name = "busy" })
    assert.is_false(ok)
    assert.equal("api", err.kind)
    assert.equal("Task.IsRunning", err.code)
    sim:advance(1000)
  end)

  it("pages through instances by pageNumber", function()
    local c = client({ app_group = "paging" })
    for i = 1, 5 do instance(c, "p" .. i) end
    local names = {}
    for i in c:each("list_function_instances", { page_size = 2 }) do names[#names + 1] = i.InstanceName end
    table.sort(names)
    assert.same({ "p1", "p2", "p3", "p4", "p5" }, names)
    assert.equal(3, #sim:requests({ operation = "ListFunctionInstances" }))
  end)

  describe("errors", function()
    it("an unknown instance is an api error", function()
      local c = client()
      local ok, err = pcall(c.get_function_instance, c, { instance_name = "nope" })
      assert.is_false(ok)
      assert.equal("api", err.kind)
      assert.equal("Instance.NotExist", err.code)
      assert.is_string(err.request_id)
    end)

    it("a bad signature is an auth error", function()
      local c = client({ access_key_secret = "wrong-secret" })
      local ok, err = pcall(c.get_function_default_instance, c)
      assert.is_false(ok)
      assert.equal("auth", err.kind)
      assert.equal("SignatureDoesNotMatch", err.code)
      assert.not_matches("wrong%-secret", tostring(err))
    end)
  end)

  describe("retries and creates", function()
    it("waits out throttling (Throttling.User with x-acs-retry-after)", function()
      sim:faults({ { kind = "429", retry_after = 1, match = { operation = "GetFunctionDefaultInstance" } } })
      local c = client()
      pcall(c.get_function_default_instance, c)
      local reqs = sim:requests({ operation = "GetFunctionDefaultInstance" })
      local a, b = reqs[#reqs - 1], reqs[#reqs]
      assert.equal("429", a.fault)
      assert.equal(require("trainctl.json").null, b.fault)
      assert.is_true(b.wall - a.wall >= 1)
    end)

    it("does not create an instance twice when the answer is lost", function()
      local c = client()
      sim:faults({ { kind = "503", when = "after", match = { operation = "CreateFunctionInstance" } } })
      instance(c, "lost_answer")
      assert.equal(1, #sim:requests({ operation = "CreateFunctionInstance", status = 503 }))
      assert.equal(0, #sim:requests({ operation = "CreateFunctionInstance", status = 409 }))
    end)

    it("does not start a training twice when the answer is lost", function()
      local c = client()
      instance(c, "lost_start")
      sim:faults({ { kind = "500", when = "after", match = { operation = "CreateFunctionTask" } } })
      local job = c:create_function_task({ instance_name = "lost_start" })
      assert.equal(1, #sim:requests({ operation = "CreateFunctionTask", status = 500 }))
      assert.is_string(job.ref.generation)
      local tasks = c:list_function_tasks({ instance_name = "lost_start" })
      assert.equal(1, tasks.TotalCount)
      sim:advance(1000)
    end)

    -- Found by the soak: a run killed while the server held its start
    -- request; restarted at once, it found nothing and started a second
    -- training, and then the held request landed too.
    it("waits for a start a killed run sent before starting another", function()
      local task = require("trainctl.task")
      local job = require("trainctl.job")
      local c = client()
      instance(c, "held_start")
      sim:faults({ { kind = "slow", when = "before", delay = 1, match = { operation = "CreateFunctionTask" } } })
      local recorded
      local killed = task.spawn(function()
        c:create_function_task({ instance_name = "held_start", record = function(ref) recorded = ref end })
      end)
      support.poll(function() return recorded end, 20, "the start to be recorded")
      -- The emulator holds the start from the moment it takes the fault.
      support.poll(function() return #sim:admin("GET", "faults").scripted == 0 end, 20,
        "the start to reach the emulator")
      killed:cancel()
      local settle = job.settle
      job.settle = 2
      local ok, j = pcall(c.create_function_task, c, { instance_name = "held_start", resume = recorded })
      job.settle = settle
      assert.is_true(ok, tostring(j))
      sim:advance(1000)
      -- The held start is logged once it has been carried out.
      support.poll(function() return #sim:requests({ operation = "CreateFunctionTask", fault = "slow" }) == 1 end,
        20, "the held start to be carried out")
      assert.equal(1, c:list_function_tasks({ instance_name = "held_start" }).TotalCount)
      local starts = 0
      for _, r in ipairs(sim:requests({ operation = "CreateFunctionTask" })) do
        if r.path:find("/held_start/", 1, true) then starts = starts + 1 end
      end
      assert.equal(1, starts)
    end)

    -- libcurl sends a request again, unchanged, when a reused connection
    -- dies before any answer; the server has seen that nonce already.
    it("signs again when a resent request meets SignatureNonceUsed", function()
      local c = client()
      instance(c, "resent")
      c:get_function_instance({ instance_name = "resent" })
      sim:faults({ { kind = "reset", when = "after", match = { operation = "GetFunctionInstance" } } })
      local inst = c:get_function_instance({ instance_name = "resent" })
      assert.equal("resent", inst.Result.InstanceName)
      local reqs = sim:requests({ operation = "GetFunctionInstance" })
      assert.equal("reset", reqs[#reqs - 2].fault)
      assert.equal(400, reqs[#reqs - 1].status)
      assert.equal(200, reqs[#reqs].status)
    end)
  end)

  describe("camelCase answers", function()
    local camel, undo
    setup(function()
      camel = cloudsim.start({ poll_interval = "0.2", speed = 0, args = "--opensearch-keys camel --opensearch-error-status 200" })
      undo = camel:use()
    end)
    teardown(function()
      undo()
      camel:stop()
      sim:use()
    end)

    it("reads the same fields and maps business errors sent with status 200", function()
      local c = client()
      instance(c, "camel_one")
      local job = c:create_function_task({ instance_name = "camel_one" })
      camel:advance(1000)
      local st = job:status()
      assert.equal("succeeded", st.state)
      assert.is_number(st.raw.extendInfo.auc)
      assert.is_number(st.raw.ExtendInfo.auc)
      local ok, err = pcall(c.get_function_instance, c, { instance_name = "nope" })
      assert.is_false(ok)
      assert.equal("Instance.NotExist", err.code)
    end)
  end)
end)
