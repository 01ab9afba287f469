-- The concurrent helpers against cloudsim: many jobs waited on at once,
-- lookups that slow down together on 429, analyze-text in parallel batches.
local cloudsim = require("support.cloudsim")
local aitems = require("trainctl.aitems")
local azure = require("trainctl.azure_language")
local csv = require("trainctl.csv")
local fanout = require("trainctl.fanout")
local job = require("trainctl.job")
local opensearch = require("trainctl.opensearch")

local KIND = "CustomSingleLabelClassification"

describe("concurrent helpers against cloudsim", function()
  local sim = cloudsim.new({ poll_interval = "0.2", speed = 600, use = true, log = "error" })

  setup(function() sim:start() end)
  teardown(function() sim:stop() end)

  it("job.wait_all polls every training at once and reports the one that failed", function()
    local c = opensearch.client({ app_group = "fan", function_name = "ctr" })
    local names = { "a_ok", "b_ok", "c_fail" }
    local jobs = {}
    for i, name in ipairs(names) do
      c:create_function_instance({ instance_name = name, model_type = "tf_checkpoint" })
      jobs[i] = c:create_function_task({ instance_name = name })
    end
    local ok, err = pcall(job.wait_all, jobs, { timeout = 60, interval = 0.05 })
    assert.is_false(ok)
    assert.equal("training_failed", err.kind)
    assert.matches("c_fail", err.message)
    assert.same({ "succeeded", "succeeded", "failed" },
      { err.statuses[1].state, err.statuses[2].state, err.statuses[3].state })
    -- Waiting one job after the other would poll a_ok to its end before
    -- touching the others: here every job is polled before any last poll.
    local first, last = {}, {}
    for i, r in ipairs(sim:requests({ provider = "opensearch", method = "GET" })) do
      for _, name in ipairs(names) do
        if r.path:find("/instances/" .. name, 1, true) then
          first[name] = first[name] or i
          last[name] = i
        end
      end
    end
    local earliest_last = math.min(last.a_ok, last.b_ok, last.c_fail)
    for _, name in ipairs(names) do
      assert.is_true(first[name] < earliest_last, name .. " was polled only after another job ended")
    end
  end)

  it("lookup_many answers every user, slowing down together on 429", function()
    local ai = aitems.client()
    local function f(name, ...) return { name = name, type = { ... } } end
    local fields = { user = { f("USER_ID", "string"), f("AGE", "int", "null"), f("GENDER", "string", "null") },
      item = { f("ITEM_ID", "string"), f("CATEGORY", "string", "null") },
      interaction = { f("USER_ID", "string"), f("ITEM_ID", "string"), f("TIMESTAMP", "long") } }
    local ids = {}
    for typ, schema in pairs(fields) do
      ai:create_schema({ dataset_type = typ, name = "fan_" .. typ, fields = schema })
      local ds = ai:create_dataset({ type = typ, name = "fan_" .. typ, schema_name = "fan_" .. typ,
        description = "fan-out test",
        os_info = { region = "KR", bucket = "b", key = "aitems/" .. typ .. "s.csv" } })
      ai:dataset_job(ds.datasetId):wait({ timeout = 60, interval = 0.05, quiet = true })
      ids[#ids + 1] = ds.datasetId
    end
    local svc = ai:create_service({ name = "fan_reco", type = "batch", description = "fan-out test" })
    ai:set_service_datasets(svc.serviceId, { dataset_ids = ids })
    ai:train(svc.serviceId, { types = aitems.TRAIN_TYPES }):wait({ timeout = 60, interval = 0.05, quiet = true })

    local users = {}
    for _, row in ipairs(assert(csv.read("examples/data/aitems/users.csv"))) do users[#users + 1] = row.USER_ID end
    sim:faults({ { kind = "429", retry_after = 1, count = 3, match = { operation = "LookupInference" } } })
    local answers = ai:lookup_many(svc.serviceId, users, { concurrency = 8 })
    assert.equal(#users, #answers)
    for i = 1, #users do
      assert.is_true(#answers[i].values > 0, "user " .. users[i] .. " got recommendations")
    end
    assert.equal(3, fanout.last_stats.throttled)
    assert.is_true(fanout.last_stats.min_limit < 8, "fewer lookups at once after a 429")
    -- each throttled lookup was asked again once: no request-level retries
    assert.equal(#users + 3, #sim:requests({ operation = "LookupInference" }))
  end)

  it("analyze_batches classifies 60 documents in three jobs of 25, 25 and 10", function()
    local az = azure.client()
    az:create_project("Fan", { language = "en", project_kind = KIND, storage_input_container_name = "textclass" })
    az:import_project("Fan", { metadata = { projectName = "Fan", language = "en", projectKind = KIND,
      storageInputContainerName = "textclass" }, assets = cloudsim.azure_assets(KIND) })
      :wait({ timeout = 60, interval = 0.05, quiet = true })
    az:train("Fan", { model_label = "m1" }):wait({ timeout = 60, interval = 0.05, quiet = true })
    az:deploy("Fan", "prod", { trained_model_label = "m1" }):wait({ timeout = 60, interval = 0.05, quiet = true })

    local texts = {}
    for i = 1, 60 do texts[i] = ("Ticket %d: I was charged twice for my subscription."):format(i) end
    local results = az:analyze_batches(texts, { { kind = KIND, taskName = "cls",
      parameters = { projectName = "Fan", deploymentName = "prod" } } }, { language = "en", interval = 0.05 })
    assert.equal(60, #results)
    for i, r in ipairs(results) do
      assert.equal(tostring(i), r.id)
      assert.is_string(r.cls.class[1].category)
    end
    assert.equal(3, #sim:requests({ operation = "SubmitAnalyzeTextJob" }))
  end)
end)
