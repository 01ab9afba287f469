-- The Azure Language client where the reference says UNKNOWN: the HTTP
-- status of each error code (the spec maps none). A missing project or an
-- expired job is gone, and a project's training in progress is adopted,
-- by the code, under the likeliest statuses and with every client error
-- a 400.
local support = require("support")
local cloudsim = require("support.cloudsim")
local azure = require("trainctl.azure_language")
local errors = require("trainctl.errors")
local state = require("trainctl.state")

local KIND = "CustomSingleLabelClassification"

local VARIANTS = {
  { name = "the likeliest statuses (404, 409)", args = "", busy = 409 },
  { name = "every client error a 400", args = "--azure-error-status all-400", busy = 400 },
}

for _, v in ipairs(VARIANTS) do
  describe("azure_language with " .. v.name, function()
    local sim, az, dir, n, pause = nil, nil, nil, 0, nil

    setup(function()
      sim = cloudsim.start({ speed = 0, args = v.args, use = true, log = "error" })
      az = azure.client()
      dir = support.tmpdir()
      -- The confirmation's pause is the emulator's business, not a sleep here.
      pause, state.CONFIRM.pause = state.CONFIRM.pause, 0
    end)
    teardown(function()
      state.CONFIRM.pause = pause
      sim:stop()
      support.rmdir(dir)
    end)

    local function project()
      n = n + 1
      local name = "Unk" .. n
      az:create_project(name, { language = "en", project_kind = KIND, storage_input_container_name = "textclass" })
      local job = az:import_project(name, { metadata = { projectName = name, language = "en", projectKind = KIND,
        storageInputContainerName = "textclass" }, assets = cloudsim.azure_assets(KIND) })
      sim:advance(60)
      assert.equal("succeeded", job:wait({ timeout = 5, interval = 0.1 }).state)
      return name
    end

    it("calls a project that does not exist gone", function()
      local found, err = state.still_there(az.get_project, az, "NoSuchProject")
      assert.is_nil(found)
      assert.equal("ProjectNotFound", err.code)
      assert.is_true(errors.not_found(err))
    end)

    it("names the record of a training job the service has forgotten, with the command that clears it", function()
      local name = project()
      local j = az:train(name, { model_label = "m1" })
      sim:advance(8 * 86400)
      local doc = state.open(dir .. "/s" .. n .. ".json")
      local ok, err = pcall(doc.wait, doc, "nightly", j, { timeout = 5, interval = 0.1 })
      assert.is_false(ok)
      assert.equal("StaleRecord", err.code, tostring(err))
      assert.matches("OperationNotFound", err.message, 1, true)
      assert.matches("trainctl state forget", err.message, 1, true)
    end)

    it("adopts the model's training in progress (adopt = true) instead of failing or starting another", function()
      local name = project()
      local first = az:train(name, { model_label = "m1" })
      local ok, err = pcall(az.train, az, name, { model_label = "m1" })
      assert.is_false(ok)
      assert.equal("Conflict", err.code)
      assert.equal(v.busy, err.status)
      local j = az:train(name, { model_label = "m1", adopt = true })
      assert.equal(first.ref.job_id, j.ref.job_id)
      local started = 0
      for _, r in ipairs(sim:requests({ operation = "StartTraining" })) do
        if r.path:find("/" .. name .. "/", 1, true) and r.status == 202 then started = started + 1 end
      end
      assert.equal(1, started)
    end)
  end)
end
