#!/usr/bin/env trainctl
-- Azure AI Language custom text classification end to end: create a
-- project, import labelled documents, train, print the evaluation, deploy,
-- classify a folder of text files and write the results as JSON Lines.
--
--   trainctl examples/azure_textclass.lua [inbox_dir] [classified.jsonl]
--
-- The labelled documents must be in the resource's storage container
-- AZURE_CONTAINER (default "textclass"); AZURE_LABELS names a local CSV
-- (location,class) describing them (default data/textclass/labels.csv
-- beside this script). AZURE_PROJECT names the project (default
-- "TextClassDemo"). Job ids go to trainctl.state, so a rerun resumes.
local azure = require("trainctl.azure_language")
local csv = require("trainctl.csv")
local errors = require("trainctl.errors")
local json = require("trainctl.json")
local log = require("trainctl.log")
local output = require("trainctl.output")
local state = require("trainctl.state")

local here = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."
local inbox = arg and arg[1] or (here .. "/data/textclass_inbox")
local out_path = arg and arg[2] or "classified.jsonl"
local project = os.getenv("AZURE_PROJECT") or "TextClassDemo"
local container = os.getenv("AZURE_CONTAINER") or "textclass"
local labels_path = os.getenv("AZURE_LABELS") or (here .. "/data/textclass/labels.csv")
local KIND = "CustomSingleLabelClassification"
local MODEL, DEPLOYMENT = "m1", "production"

local az = azure.client()

-- The record's key holds every parameter that names or places what this
-- workflow creates: another project, container, model or endpoint is
-- another record.
local key = state.key("azure_textclass", { endpoint = az.endpoint, project = project, container = container,
  model = MODEL, deployment = DEPLOYMENT })
-- A record of an earlier trainctl (keyed by project, the endpoint
-- inside) is this one's.
state.migrate("azure_textclass/" .. project, key, function(old)
  return type(old) == "table" and old.endpoint == az.endpoint
end)
local run = state.record(key)
local function save() state.set(key, run) end

-- A step recorded as started is resumed from its job reference; one not
-- yet started is started and recorded before waiting. start(resume,
-- record) may record its reference itself, before its request goes out.
local function step(name, start, opts)
  if run[name .. "_done"] then return end
  if run[name] then log.info("resuming " .. name) end
  local function record(ref)
    run[name] = ref
    save()
  end
  local job
  if run[name] and not run[name].pending then
    job = az:job(run[name])
  else
    job = start(run[name], record)
    record(job.ref)
  end
  local ok, st = pcall(state.wait, key, job, opts)
  if not ok then
    if errors.is(st, "training_failed") and st.state == "cancelled" then
      -- Stopped by someone on purpose: it stays recorded, so that a
      -- retry (an hourly timer through the night) does not pay for it
      -- again, until the record is forgotten.
      st.message = ("%s; it stays recorded and is not started again: to start over, forget the record: "
        .. "trainctl state forget %s --state %s"):format(st.message, state.quote(key), state.quote(state.path()))
    elseif errors.is(st, "training_failed") then
      -- A failed step is over: the next run starts it again.
      run[name] = nil
      save()
      st.message = st.message .. "; the next run starts it again"
    end
    error(st, 0)
  end
  run[name .. "_done"] = true
  save()
  return st
end

-- 1. The project (a merge patch: creating it again changes nothing).
local metadata = { projectName = project, language = "en", projectKind = KIND,
  storageInputContainerName = container, multilingual = false,
  description = "support tickets by topic (trainctl example)" }
az:create_project(project, { language = metadata.language, project_kind = KIND,
  storage_input_container_name = container, multilingual = false, description = metadata.description })

-- 2. Labelled data.
step("import", function()
  local labels, err = csv.read(labels_path)
  if not labels then errors.usage("cannot read labels: " .. tostring(err)) end
  local classes, seen, documents = {}, {}, {}
  for _, row in ipairs(labels) do
    if not seen[row.class] then
      seen[row.class] = true
      classes[#classes + 1] = { category = row.class }
    end
    documents[#documents + 1] = { location = row.location, language = "en", dataset = "Train",
      class = { category = row.class } }
  end
  return az:import_project(project, { metadata = metadata,
    assets = { projectKind = KIND, classes = classes, documents = documents } })
end, { timeout = 3600, interval = 2 })

-- 3. Training (80/20 split for evaluation).
step("training", function(resume, record)
  return az:train(project, { model_label = MODEL, training_config_version = "latest",
    evaluation_options = { kind = "percentage", trainingSplitPercentage = 80, testingSplitPercentage = 20 },
    resume = resume, record = record, adopt = true })
end, { timeout = 12 * 3600, interval = 5 })

-- 4. How good is it?
-- A model the service no longer has (deleted, expired) is named with the
-- record to forget, not an error every night.
local summary, gone = state.still_there(az.get_evaluation_summary, az, project, MODEL)
if summary == nil then
  gone.what = ("the trained model %s of project %s"):format(MODEL, project)
  state.stale(key, gone)
end
local eval = summary.customSingleLabelClassificationEvaluation or {}
log.info("evaluation", { micro_f1 = eval.microF1, macro_f1 = eval.macroF1,
  micro_precision = eval.microPrecision, micro_recall = eval.microRecall })
io.stdout:write(json.encode({ project = project, model = MODEL, microF1 = eval.microF1,
  macroF1 = eval.macroF1 }), "\n")

-- 5. Deployment.
step("deployment", function()
  return az:deploy(project, DEPLOYMENT, { trained_model_label = MODEL })
end, { timeout = 3600, interval = 2 })

-- 6. Classify every .txt file of the inbox.
local names = {}
local ls = io.popen('ls -1 "' .. inbox:gsub('"', '\\"') .. '" 2>/dev/null')
for line in ls:lines() do
  if line:find("%.txt$") then names[#names + 1] = line end
end
ls:close()
table.sort(names)
if #names == 0 then errors.usage("no .txt files in " .. inbox) end

local docs = {}
for i, name in ipairs(names) do
  local f = assert(io.open(inbox .. "/" .. name, "rb"))
  docs[i] = { id = tostring(i), text = f:read("a"), language = "en" }
  f:close()
end
-- 25 documents per job (the service's limit), four jobs at a time.
local results = az:analyze_batches(docs, { { kind = KIND, taskName = "classify",
  parameters = { projectName = project, deploymentName = DEPLOYMENT } } },
  { display_name = "trainctl example", concurrency = 4 })
local records = {}
for i, r in ipairs(results) do
  if r.error then
    log.warn("not classified", { file = names[i], error = r.error.message or r.error.code })
  end
  local best = r.classify and (r.classify.class or r.classify.classes or {})[1] or {}
  records[#records + 1] = { file = names[i], class = best.category, confidence = best.confidenceScore }
end
table.sort(records, function(a, b) return a.file < b.file end)
output.jsonl(out_path, records)
log.info(("classified %d files into %s"):format(#records, out_path))
