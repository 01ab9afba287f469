-- The nightly job of the several-machines tests: the OpenSearch CTR
-- training of examples/opensearch_ctr.lua, its progress kept in the etcd
-- state backend named by TEST_ETCD_STATE (fenced by the run's --lock).
--
--   trainctl --lock etcd://.../lock tests/etcd/ctr_workflow.lua INSTANCE
local errors = require("trainctl.errors")
local json = require("trainctl.json")
local opensearch = require("trainctl.opensearch")
local state = require("trainctl.state_etcd").open(os.getenv("TEST_ETCD_STATE"))

local instance = assert(arg[1], "instance name expected")
local search = opensearch.client({ app_group = "demo_app", function_name = "ctr" })

local key = "ctr/" .. instance
local run = state:get(key) or {}
local function save() state:put(key, run) end

if not run.created then
  local ok, err = pcall(search.get_function_instance, search, { instance_name = instance })
  if not ok then
    if not (errors.is(err) and (err.status == 404 or err.code == "Instance.NotExist")) then
      error(err, 0)
    end
    search:create_function_instance({ instance_name = instance, model_type = "tf_checkpoint",
      function_type = "PAAS", create_parameters = { { name = "title_field", value = "title" } } })
  end
  run.created = true
  save()
end

if not run.metrics then
  local job = search:create_function_task({ instance_name = instance, resume = run.training,
    record = function(ref)
      run.training = ref
      save()
    end })
  local st = job:wait({ timeout = 600, interval = 0.05 })
  run.metrics = type(st.raw.ExtendInfo) == "table" and st.raw.ExtendInfo or {}
  run.host = os.getenv("TEST_HOST")
  save()
end

io.stdout:write(json.encode({ instance = instance, host = run.host, metrics = run.metrics }), "\n")
