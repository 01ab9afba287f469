-- The Azure Language client against cloudsim: key and Entra ID auth
-- (with an expiring token), every job end state, nextLink paging, errors.
local support = require("support")
local cloudsim = require("support.cloudsim")
local azure = require("trainctl.azure_language")
local errors = require("trainctl.errors")

local KIND = "CustomSingleLabelClassification"

local function labelled_assets()
  return cloudsim.azure_assets(KIND)
end

describe("azure_language against cloudsim", function()
  local sim, az

  setup(function()
    sim = cloudsim.start({ poll_interval = "0.2", speed = 0, args = "--token-ttl 600", use = true, log = "error" })
    az = azure.client()
  end)
  teardown(function()
    sim:stop()
  end)

  local function project(name)
    az:create_project(name, { language = "en", project_kind = KIND, storage_input_container_name = "textclass" })
    local job = az:import_project(name, { metadata = { projectName = name, language = "en", projectKind = KIND,
      storageInputContainerName = "textclass" }, assets = labelled_assets() })
    sim:advance(60)
    assert.equal("succeeded", job:wait({ timeout = 5, interval = 0.1 }).state)
  end

  it("trains, evaluates, deploys and classifies", function()
    project("Full")
    local job = az:train("Full", { model_label = "m1" })
    assert.equal("pending", job:status().state)
    sim:advance(200)
    local st = job:status()
    assert.equal("running", st.state)
    assert.is_true(st.progress > 0 and st.progress < 100)
    assert.is_number(st.eta)
    sim:advance(400)
    assert.equal("succeeded", job:wait({ timeout = 5, interval = 0.1 }).state)
    local summary = az:get_evaluation_summary("Full", "m1")
    assert.is_number(summary.customSingleLabelClassificationEvaluation.microF1)
    local deploy = az:deploy("Full", "prod", { trained_model_label = "m1" })
    sim:advance(100)
    assert.equal("succeeded", deploy:wait({ timeout = 5, interval = 0.1 }).state)
    local run = az:analyze_text({ analysis_input = azure.documents({ "I was charged twice this month." }, "en"),
      tasks = { { kind = KIND, parameters = { projectName = "Full", deploymentName = "prod" } } } })
    sim:advance(10)
    st = run:wait({ timeout = 5, interval = 0.1 })
    local doc = st.raw.tasks.items[1].results.documents[1]
    assert.is_string(doc.class[1].category)
    -- One task of two failing (no such deployment): partiallyCompleted,
    -- reported as a failure that keeps the results.
    local partial = az:analyze_text({ analysis_input = azure.documents({ "The app crashes." }, "en"),
      tasks = { { kind = KIND, taskName = "good", parameters = { projectName = "Full", deploymentName = "prod" } },
        { kind = KIND, taskName = "bad", parameters = { projectName = "Full", deploymentName = "nope" } } } })
    sim:advance(10)
    local ok, err = pcall(partial.wait, partial, { timeout = 5, interval = 0.1 })
    assert.is_false(ok)
    assert.equal("training_failed", err.kind)
    assert.is_true(err.partial)
    assert.equal("partiallyCompleted", err.code)
    assert.equal("failed", partial.last.state)
    assert.equal(2, #partial.last.raw.tasks.items)
  end)

  it("reports a failed training", function()
    project("Failing")
    local job = az:train("Failing", { model_label = "fail1" })
    sim:advance(600)
    local ok, err = pcall(job.wait, job, { timeout = 5, interval = 0.1 })
    assert.is_false(ok)
    assert.equal("training_failed", err.kind)
    assert.equal("failed", err.code)
  end)

  it("cancels a training", function()
    project("Cancel")
    local job = az:train("Cancel", { model_label = "m1" })
    sim:advance(100)
    job:cancel()
    assert.equal("running", job:status().state)
    sim:advance(60)
    local ok, err = pcall(job.wait, job, { timeout = 5, interval = 0.1 })
    assert.is_false(ok)
    assert.equal("cancelled", err.code)
    assert.equal("cancelled", job.last.state)
  end)

  it("does not start a training twice when the answer is lost", function()
    project("Lost")
    sim:faults({ { kind = "503", when = "after", match = { operation = "StartTraining" } } })
    local job = az:train("Lost", { model_label = "m1" })
    assert.is_string(job.id)
    assert.equal(1, #sim:requests({ operation = "StartTraining", status = 503 }))
    local n = 0
    for _ in az:each("list_training_jobs", { project_name = "Lost" }) do n = n + 1 end
    assert.equal(1, n)
  end)

  it("follows nextLink across pages", function()
    for i = 1, 5 do
      az:create_project("Page" .. i, { language = "en", project_kind = KIND, storage_input_container_name = "c" })
    end
    local names = {}
    for p in az:each("list_projects", { maxpagesize = 2 }) do names[p.projectName] = true end
    for i = 1, 5 do assert.is_true(names["Page" .. i]) end
    assert.is_true(#sim:requests({ operation = "ListProjects" }) >= 3)
  end)

  describe("Entra ID", function()
    it("gets a token, and a new one when the service says it expired", function()
      local undo = sim:use({ AZURE_LANGUAGE_KEY = false })
      local c = azure.client()
      assert.equal("entra", c.auth)
      c:list_projects()
      local tokens = #sim:requests({ provider = "entra" })
      -- Past the token's lifetime on the emulator's clock (the client's own
      -- clock still believes it valid): 401, new token, success.
      sim:advance(700)
      c:list_projects()
      assert.equal(tokens + 1, #sim:requests({ provider = "entra" }))
      undo()
      sim:use()
    end)

    it("a wrong client secret is an auth error without the secret", function()
      local undo = sim:use({ AZURE_LANGUAGE_KEY = false, AZURE_CLIENT_SECRET = "wrong-client-secret" })
      local ok, err = pcall(function() azure.client():list_projects() end)
      undo()
      sim:use()
      assert.is_false(ok)
      assert.equal("auth", err.kind)
      assert.equal("entra", err.provider)
      assert.not_matches("wrong%-client%-secret", tostring(err))
    end)
  end)

  describe("errors", function()
    it("an unknown project is an api error", function()
      local ok, err = pcall(az.get_project, az, "NoSuchProject")
      assert.is_false(ok)
      assert.is_true(errors.is(err, "api"))
      assert.equal(404, err.status)
      assert.equal("ProjectNotFound", err.code)
    end)

    it("a wrong key is an auth error (exit 1 from trainctl call)", function()
      local code, _, stderr = sim:run({ "call", "azure_language", "list_projects" },
        { env = { AZURE_LANGUAGE_KEY = "wrong-key-value" } })
      assert.equal(1, code)
      assert.matches("auth error", stderr)
      assert.not_matches("wrong%-key%-value", stderr)
    end)

    it("a missing endpoint is a usage error (exit 2)", function()
      local code, _, stderr = sim:run({ "call", "azure_language", "list_projects" },
        { env = { AZURE_LANGUAGE_ENDPOINT = false } })
      assert.equal(2, code)
      assert.matches("AZURE_LANGUAGE_ENDPOINT", stderr)
    end)

    it("waits out a 429 with Retry-After", function()
      sim:faults({ { kind = "429", retry_after = 1, match = { operation = "ListProjects" } } })
      az:list_projects()
      local reqs = sim:requests({ operation = "ListProjects" })
      assert.is_true(reqs[#reqs].wall - reqs[#reqs - 1].wall >= 1)
    end)
  end)

  it("reports a nextLink loop instead of following it forever", function()
    -- cloudsim pages correctly; the test server's /nextlink/ pages, whose
    -- nextLink is always the same, play the misbehaving service.
    local srv = support.server()
    finally(srv.stop)
    local c = azure.client({ endpoint = srv.url .. "/nextlink", key = "k-loop-test" })
    local seen = 0
    local ok, err = pcall(function()
      for _ in c:each("list_projects") do seen = seen + 1 end
    end)
    assert.is_false(ok)
    assert.equal("NextLinkLoop", err.code)
    assert.equal(2, seen)
  end)
end)
