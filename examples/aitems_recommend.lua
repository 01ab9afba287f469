#!/usr/bin/env trainctl
-- AiTEMS end to end: schemas, datasets from CSV files, a batch service,
-- the three training types, then recommendations for every user of the
-- user dataset (the best AITEMS_TOP, default 10), written as JSON Lines.
--
--   trainctl examples/aitems_recommend.lua [recommendations.jsonl]
--
-- The CSV files must be in Object Storage: bucket AITEMS_BUCKET (default
-- "trainctl-demo"), keys AITEMS_KEY_PREFIX .. "users.csv" etc. (default
-- prefix "aitems/"). A local copy of users.csv (AITEMS_DATA_DIR, default
-- data/aitems beside this script) lists the users to ask about.
-- Every id is kept in trainctl.state: a rerun after a crash resumes the
-- same training instead of starting a second one.
local aitems = require("trainctl.aitems")
local csv = require("trainctl.csv")
local errors = require("trainctl.errors")
local log = require("trainctl.log")
local output = require("trainctl.output")
local state = require("trainctl.state")

local here = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."
local data_dir = os.getenv("AITEMS_DATA_DIR") or (here .. "/data/aitems")
local bucket = os.getenv("AITEMS_BUCKET") or "trainctl-demo"
local key_prefix = os.getenv("AITEMS_KEY_PREFIX") or "aitems/"
local prefix = os.getenv("AITEMS_PREFIX") or "demo"
local out_path = arg and arg[1] or "recommendations.jsonl"
local TOP = tonumber(os.getenv("AITEMS_TOP")) or 10

local TYPES = { "user", "item", "interaction" }
local FILES = { user = "users.csv", item = "items.csv", interaction = "interactions.csv" }
-- Names are at most 20 characters.
local SHORT = { user = "user", item = "item", interaction = "inter" }
local FIELDS = {
  user = { { name = "USER_ID", type = { "string" } }, { name = "AGE", type = { "int", "null" } },
    { name = "GENDER", type = { "string", "null" }, categorical = true } },
  item = { { name = "ITEM_ID", type = { "string" } },
    { name = "CATEGORY", type = { "string", "null" }, categorical = true } },
  interaction = { { name = "USER_ID", type = { "string" } }, { name = "ITEM_ID", type = { "string" } },
    { name = "TIMESTAMP", type = { "long" } } },
}

local ai = aitems.client()

-- What this workflow made. Its key holds every parameter that names or
-- places what it creates, so another prefix, bucket or endpoint is
-- another record, never this one's.
local key = state.key("aitems_recommend", { endpoint = ai.endpoint, prefix = prefix, bucket = bucket,
  key_prefix = key_prefix })
-- A record of an earlier trainctl (keyed by endpoint alone) is this
-- one's when its service carries this prefix.
state.migrate("aitems_recommend", key, function(old)
  if type(old) ~= "table" or old.endpoint ~= ai.endpoint or not old.service_id then return false end
  local ok, svc = pcall(ai.get_service, ai, old.service_id)
  return ok and type(svc) == "table" and svc.name == prefix .. "_service"
end)
local run = state.record(key)
run.datasets = run.datasets or {}
local function save() state.set(key, run) end

-- A service deleted behind our back means the recorded ids are stale:
-- start over, once the service has said so with its own not-found code
-- twice (a stray 404 is asked again, never believed).
if run.service_id and not state.still_there(ai.get_service, ai, run.service_id) then
  log.warn("the recorded service is gone; starting over", { service_id = run.service_id })
  run = { datasets = {}, gone = run.service_id }
  save()
end

-- 1. Schemas, addressed by name.
for _, typ in ipairs(TYPES) do
  local name = ("%s_%s_schema"):format(prefix, SHORT[typ])
  if not ai:find_schema(name) then
    ai:create_schema({ dataset_type = typ, name = name, fields = FIELDS[typ],
      description = typ .. " data of the trainctl example" })
    log.info("schema created", { name = name })
  end
end

-- 2. Datasets, imported from Object Storage.
for _, typ in ipairs(TYPES) do
  if not run.datasets[typ] then
    local name = ("%s_%s"):format(prefix, SHORT[typ])
    local ds = ai:find_dataset(name) or ai:create_dataset({
      type = typ, name = name, description = "trainctl example",
      schema_name = ("%s_%s_schema"):format(prefix, SHORT[typ]),
      os_info = { region = "KR", bucket = bucket, key = key_prefix .. FILES[typ] },
    })
    run.datasets[typ] = ds.datasetId
    save()
  end
end
for _, typ in ipairs(TYPES) do
  ai:dataset_job(run.datasets[typ]):wait({ timeout = 1800, interval = 2 })
end

-- 3. A batch service with the three datasets.
if not run.service_id then
  local name = prefix .. "_service"
  local svc = ai:find_service(name) or ai:create_service({ name = name, type = "batch",
    description = "trainctl example" })
  run.service_id = svc.serviceId
  save()
end
-- The service AiTEMS called gone, listed again under its name: a server
-- that contradicts itself, or one whose ids began again. Whether its
-- training is done is not known: the user decides, never a guess that
-- could start a second training.
if run.gone then
  if run.gone == run.service_id then
    state.stale(key, errors.new({ kind = "api", provider = "aitems", code = "NOT_FOUND", status = 404,
      what = "the service " .. run.service_id, message = "AiTEMS said it did not exist, then listed it "
        .. "again by its name " .. prefix .. "_service" }))
  end
  run.gone = nil
  save()
end
local svc = ai:get_service(run.service_id)
if svc.status == "datasetRequired" then
  ai:set_service_datasets(run.service_id, { dataset_ids = { run.datasets.user, run.datasets.item,
    run.datasets.interaction } })
end

-- 4. Training: resumed when a previous run started it. The reference is
-- recorded before the request goes out, so a run killed while the answer
-- was on its way looks the training up instead of starting another.
if not run.trained then
  if run.training then log.info("resuming the recorded training", { service_id = run.service_id }) end
  -- adopt: a training still running (yesterday's, say) is waited for.
  local job = ai:train(run.service_id, { types = aitems.TRAIN_TYPES, description = "trainctl example",
    adopt = true, resume = run.training, record = function(ref)
      run.training = ref
      save()
    end })
  local ok, err = pcall(state.wait, key, job, { timeout = 4 * 3600, interval = 2 })
  if not ok then
    -- A failed training is over: the next run starts a new one. A timeout
    -- keeps the record, so the next run waits for the same one.
    if errors.is(err, "training_failed") then
      run.training = nil
      save()
    end
    error(err, 0)
  end
  run.trained = true
  save()
end

-- 5. Recommendations for every user.
local users, err = csv.read(data_dir .. "/" .. FILES.user)
if not users then errors.usage("cannot read the user list: " .. tostring(err)) end
-- Eight lookups at a time, each waiting for its answer without blocking
-- the others; a 429 slows them all down.
local ids = {}
for i, u in ipairs(users) do ids[i] = u.USER_ID end
local answers = ai:lookup_many(run.service_id, ids, { type = "personalRecommend", concurrency = 8 })
local records = {}
for i, res in ipairs(answers) do
  records[i] = { user_id = ids[i], items = table.move(res.values or {}, 1, TOP, 1, {}) }
end
output.jsonl(out_path, records)
log.info(("wrote recommendations for %d users to %s"):format(#records, out_path))
