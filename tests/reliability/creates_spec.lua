-- A create whose answer is lost after the server acted (connection reset,
-- client timeout, 500 or 503) is resolved by looking up what it would have
-- made: one service, dataset, schema, instance, resource or project per
-- name, one training per start, on every provider.
local support = require("support")
local cloudsim = require("support.cloudsim")
local aitems = require("trainctl.aitems")
local azure = require("trainctl.azure_language")
local opensearch = require("trainctl.opensearch")

local FAULTS = {
  { name = "the connection is reset after the server acted", fault = { kind = "reset" } },
  -- The server takes 2 s to answer; the client gives up after 0.3 s.
  { name = "the client times out after the server acted", fault = { kind = "slow", delay = 2 }, timeout = 0.3 },
  { name = "the answer is a 500 after the server acted", fault = { kind = "500" } },
  { name = "the answer is a 503 after the server acted", fault = { kind = "503" } },
  { name = "the answer is cut short after the server acted", fault = { kind = "truncate" } },
  { name = "the answer is half a JSON document after the server acted", fault = { kind = "badjson" } },
  -- Nothing happened: the lookup finds nothing and the create is made again.
  { name = "the connection is reset before the server acts", fault = { kind = "reset", when = "before" },
    before = true },
}

-- named(t, name) -> how many records in t carry that name.
local NAME_FIELDS = { "name", "instanceName", "resourceName", "projectName" }
local function named(t, name)
  local n = 0
  for _, rec in pairs(t or {}) do
    for _, f in ipairs(NAME_FIELDS) do
      if rec[f] == name then
        n = n + 1
        break
      end
    end
  end
  return n
end

local function count(t, pred)
  local n = 0
  for _, v in pairs(t or {}) do
    if pred(v) then n = n + 1 end
  end
  return n
end

local AI_FIELDS = cloudsim.AITEMS_FIELDS

describe("creates whose answer is lost", function()
  local sim, n = nil, 0
  local jobs = require("trainctl.job")
  local settle = jobs.settle
  setup(function()
    sim = cloudsim.start({ speed = 0, use = true, log = "error" })
    -- A training start whose fate is unknown is looked up until its own
    -- timeout and job.settle have passed: short ones keep the wait short.
    jobs.settle = 1
  end)
  teardown(function()
    jobs.settle = settle
    sim:stop()
  end)

  local function uniq(prefix)
    n = n + 1
    return ("%s%d"):format(prefix, n)
  end

  -- A batch service whose three datasets are imported.
  local function trainable(ai)
    return (sim:aitems_service(ai, uniq("svc")))
  end

  local function az_project(az)
    local name = uniq("P")
    az:create_project(name, { language = "en", project_kind = "CustomSingleLabelClassification",
      storage_input_container_name = "textclass" })
    local docs = {}
    for i = 1, 12 do
      docs[i] = { location = ("doc%02d_%s.txt"):format(i, i % 2 == 0 and "billing" or "delivery"),
        language = "en", class = { category = i % 2 == 0 and "billing" or "delivery" } }
    end
    local imp = az:import_project(name, { metadata = { projectName = name, language = "en",
      projectKind = "CustomSingleLabelClassification", storageInputContainerName = "textclass" },
      assets = { projectKind = "CustomSingleLabelClassification",
        classes = { { category = "billing" }, { category = "delivery" } }, documents = docs } })
    sim:advance(60)
    assert.equal("succeeded", imp:status().state)
    return name
  end

  -- Each create: the operation the emulator logs, what to prepare, the
  -- create itself, and how many the emulator holds afterwards.
  local CREATES = {
    {
      what = "an AiTEMS schema", op = "CreateSchema",
      run = function(ai)
        local name = uniq("schema")
        assert.equal(name, ai:create_schema({ dataset_type = "item", name = name, fields = AI_FIELDS.item }).name)
        return function(p) return named(p.aitems.schemas, name) end
      end,
    },
    {
      what = "an AiTEMS dataset", op = "CreateDataset",
      prepare = function(ai)
        local schema = uniq("sch")
        ai:create_schema({ dataset_type = "item", name = schema, fields = AI_FIELDS.item })
        return schema
      end,
      run = function(ai, schema)
        local name = uniq("ds")
        local ds = ai:create_dataset({ type = "item", name = name, schema_name = schema,
          os_info = { region = "KR", bucket = "b", key = "aitems/items.csv" } })
        assert.equal(name, ds.name)
        assert.equal("aitems/items.csv", ds.osInfo.key) -- the record, not a list's summary
        return function(p) return named(p.aitems.datasets, name) end
      end,
    },
    {
      what = "an AiTEMS service", op = "CreateService",
      run = function(ai)
        local name = uniq("service")
        local svc = ai:create_service({ name = name })
        assert.equal(name, svc.name)
        assert.equal("batch", svc.type) -- the record, not a list's summary
        return function(p) return named(p.aitems.services, name) end
      end,
    },
    {
      what = "an AiTEMS training", op = "CreateTrain", per_start = 1,
      prepare = trainable,
      run = function(ai, sid)
        local job = ai:train(sid, { types = { "pop" } })
        assert.equal(sid, job.ref.service_id)
        return function(p)
          return count(p.aitems.trains, function(t) return t.serviceId == sid end)
        end
      end,
    },
    {
      what = "an OpenSearch instance", op = "CreateFunctionInstance", client = "opensearch",
      run = function(c)
        local name = uniq("inst")
        c:create_function_instance({ instance_name = name, model_type = "tf_checkpoint" })
        return function(p) return named(p.opensearch.instances, name) end
      end,
    },
    {
      what = "an OpenSearch resource", op = "CreateFunctionResource", client = "opensearch",
      run = function(c)
        local name = uniq("res")
        c:create_function_resource({ resource_name = name, resource_type = "raw_file",
          data = { Content = "x" } })
        return function(p) return named(p.opensearch.resources, name) end
      end,
    },
    {
      what = "an OpenSearch training", op = "CreateFunctionTask", client = "opensearch",
      prepare = function(c)
        local name = uniq("inst")
        c:create_function_instance({ instance_name = name, model_type = "tf_checkpoint" })
        return name
      end,
      run = function(c, name)
        local job = c:create_function_task({ instance_name = name })
        assert.equal(name, job.ref.instance_name)
        return function(p)
          local tasks = 0
          for key in pairs(p.opensearch.tasks) do
            if key:match("^app/ctr/([^/]+)/") == name then tasks = tasks + 1 end
          end
          return tasks
        end
      end,
    },
    {
      -- A merge patch: repeating it is safe, so it is simply retried.
      what = "an Azure project", op = "CreateProject", client = "azure", repeatable = true,
      run = function(az)
        local name = uniq("Proj")
        az:create_project(name, { language = "en", project_kind = "CustomSingleLabelClassification",
          storage_input_container_name = "textclass" })
        -- Projects are kept by name: PATCH is a merge, never a second one.
        return function(p) return p.azure.projects[name] and 1 or 0 end
      end,
    },
    {
      what = "an Azure training", op = "StartTraining", client = "azure",
      prepare = az_project,
      run = function(az, name)
        local job = az:train(name, { model_label = "m1" })
        assert.is_string(job.id)
        return function(p)
          return count(p.azure.jobs, function(j) return j.kind == "train" and j.project == name end)
        end
      end,
    },
  }

  local clients = {
    aitems = function(o) return aitems.client(o) end,
    opensearch = function(o)
      o.app_group, o.function_name = "app", "ctr"
      return opensearch.client(o)
    end,
    azure = function(o) return azure.client(o) end,
  }

  for _, c in ipairs(CREATES) do
    for _, f in ipairs(FAULTS) do
      it(("%s is made once when %s"):format(c.what, f.name), function()
        local client = clients[c.client or "aitems"]({ timeout = f.timeout or 3 })
        local arg = c.prepare and c.prepare(client)
        local before = sim:started(c.op)
        local fault = { when = "after", match = { operation = c.op } }
        for k, v in pairs(f.fault) do fault[k] = v end
        sim:faults({ fault })
        local how_many = c.run(client, arg)
        assert.same({}, sim:admin("GET", "faults").scripted, "the fault was not met")
        assert.equal(1, how_many(sim:state().providers))
        -- The faulted request did it; nothing was created a second time.
        -- (A slow answer is logged once sent, after the test is over.)
        local held = f.fault.kind == "slow"
        if not held then
          local faulted = sim:requests({ operation = c.op, fault = f.fault.kind })
          assert.equal(f.before and "before" or "after", faulted[#faulted].when)
        end
        if not c.repeatable then assert.equal(before + (held and 0 or 1), sim:started(c.op)) end
        -- The held answer is logged when the emulator sends it: wait for
        -- it here, so that it is not counted in the next case.
        if held then
          support.poll(function() return #sim:requests({ operation = c.op, fault = "slow" }) > 0 end, 30,
            "the held answer to be sent")
          sim:admin("DELETE", "requests")
        end
      end)
    end
  end
end)
