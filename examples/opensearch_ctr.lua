#!/usr/bin/env trainctl
-- OpenSearch CTR model: create the instance, train it with a progress
-- display, print the training metrics from ExtendInfo on stdout, and make
-- the instance the function's default.
--
--   trainctl examples/opensearch_ctr.lua [instance_name]
--
-- OPENSEARCH_APP_GROUP names the application group (default "demo_app");
-- ALIBABA_CLOUD_REGION_ID the region (default cn-hangzhou). The training
-- is recorded in trainctl.state: a rerun resumes it, and a rerun after
-- success only prints the metrics again.
local errors = require("trainctl.errors")
local json = require("trainctl.json")
local log = require("trainctl.log")
local opensearch = require("trainctl.opensearch")
local state = require("trainctl.state")

local instance = arg and arg[1] or os.getenv("OPENSEARCH_INSTANCE") or "ctr_demo"
local app_group = os.getenv("OPENSEARCH_APP_GROUP") or "demo_app"

local search = opensearch.client({ app_group = app_group, function_name = "ctr" })

-- The record's key holds every parameter that names or places what this
-- workflow creates: another instance, app group or endpoint is another
-- record.
local key = state.key("opensearch_ctr", { endpoint = search.endpoint, app_group = app_group,
  function_name = "ctr", instance = instance })
-- A record of an earlier trainctl (keyed by instance, the endpoint
-- inside) is this one's when its training is of this app group: runs for
-- other app groups shared that key. One with no training says nothing of
-- whose it was, and stays for its own run to take.
state.migrate("opensearch_ctr/" .. instance, key, function(old)
  local t = type(old) == "table" and old.training
  return old.endpoint == search.endpoint and type(t) == "table"
    and t.app_group_identity == app_group and (t.function_name or "ctr") == "ctr"
end)
local run = state.record(key)
local function save() state.set(key, run) end

-- 1. The instance, created once: only when OpenSearch says, with its own
-- Instance.NotExist and twice, that it is not there (a stray error is
-- asked again, never taken for "gone").
if not state.still_there(search.get_function_instance, search, { instance_name = instance }) then
  search:create_function_instance({
    instance_name = instance, model_type = "tf_checkpoint", function_type = "PAAS",
    description = "CTR model trained by trainctl",
    create_parameters = { { name = "title_field", value = "title" } },
  })
  log.info("instance created", { instance = instance })
  -- A new instance has none of the recorded trainings.
  run = {}
  save()
end

-- 2. Training, resumed when a previous run started it (recorded before
-- the request goes out: a run killed meanwhile looks it up).
if not run.metrics then
  if run.training then log.info("resuming the recorded training", { instance = instance }) end
  -- adopt: a training still running (yesterday's, say) is waited for.
  local job = search:create_function_task({ instance_name = instance, resume = run.training, adopt = true,
    record = function(ref)
      run.training = ref
      save()
    end })
  local waited, st = pcall(state.wait, key, job, { timeout = 6 * 3600, interval = 2, on_progress = function(_, j)
    if j.ref.generation and not run.training.generation then
      run.training = j.ref
      save()
    end
  end })
  if not waited then
    -- A failed training is over: the next run starts a new one.
    if errors.is(st, "training_failed") then
      run.training = nil
      save()
    end
    error(st, 0)
  end
  local info = st.raw.ExtendInfo
  run.metrics = type(info) == "table" and info or {}
  run.generation = st.raw.Generation
  save()
end

-- 3. The new model serves by default.
search:update_function_default_instance({ instance_name = instance })
local default = search:get_function_default_instance()
log.info("default instance", { instance = default.Result and default.Result.InstanceName })

io.stdout:write(json.encode({ instance = instance, generation = run.generation, metrics = run.metrics },
  { pretty = true }), "\n")
