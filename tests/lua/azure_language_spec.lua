local support = require("support.doubles")
local azure = require("trainctl.azure_language")
local errors = require("trainctl.errors")

local EP = "http://127.0.0.1:9"
local KEY = "azure-test-key-000"

local function key_client()
  return azure.client({ endpoint = EP, key = KEY })
end

local function entra_client()
  return azure.client({ endpoint = EP, tenant_id = "t1", client_id = "cid", client_secret = "csecret-123",
    authority = EP })
end

local function token(tok, ttl)
  return { status = 200, body = { token_type = "Bearer", expires_in = ttl or 3599, access_token = tok } }
end

describe("trainctl.azure_language", function()
  local iso = support.isolate({ log = "error" })
  before_each(iso.before)
  after_each(iso.after)

  it("covers the authoring operations and the analyze-text jobs", function()
    assert.equal(32, #azure.operations)
  end)

  it("sends the subscription key and api-version", function()
    local rec = support.http({ { status = 200, body = '{"projectName":"p"}' } })
    key_client():get_project("Loan Agreements")
    rec.restore()
    assert.equal(KEY, rec.header(1, "ocp-apim-subscription-key"))
    assert.equal(EP .. "/language/authoring/analyze-text/projects/Loan%20Agreements?api-version=2023-04-01",
      rec.requests[1].url)
  end)

  it("creates projects with a merge patch carrying the name", function()
    local rec = support.http({ { status = 201, body = '{"projectName":"p"}' } })
    key_client():create_project("p", { language = "en", project_kind = "CustomSingleLabelClassification",
      storage_input_container_name = "c" })
    rec.restore()
    assert.equal("PATCH", rec.requests[1].method)
    assert.equal("application/merge-patch+json", rec.header(1, "content-type"))
    assert.same({ projectName = "p", language = "en", projectKind = "CustomSingleLabelClassification",
      storageInputContainerName = "c" }, support.json(rec.requests[1].body))
  end)

  describe("Entra ID tokens", function()
    it("are fetched once, cached and sent as a bearer", function()
      local rec = support.http({ token("tok-one"), { status = 200, body = "{}" }, { status = 200, body = "{}" } })
      local c = entra_client()
      c:get_project("p")
      c:get_project("p")
      rec.restore()
      assert.equal(3, #rec.requests)
      assert.equal(EP .. "/t1/oauth2/v2.0/token", rec.requests[1].url)
      local form = rec.requests[1].body
      assert.matches("grant_type=client_credentials", form, 1, true)
      assert.matches("client_secret=csecret-123", form, 1, true)
      assert.matches("scope=https%3A%2F%2Fcognitiveservices.azure.com%2F.default", form, 1, true)
      assert.equal("Bearer tok-one", rec.header(2, "authorization"))
      assert.equal("Bearer tok-one", rec.header(3, "authorization"))
    end)

    it("are refreshed once on a 401", function()
      local rec = support.http({ token("tok-one"), { status = 401, body = '{"error":{"code":"Unauthorized"}}' },
        token("tok-two"), { status = 200, body = "{}" } })
      entra_client():get_project("p")
      rec.restore()
      assert.equal("Bearer tok-two", rec.header(4, "authorization"))
    end)

    it("give up after the second 401 with an auth error", function()
      local rec = support.http({ token("tok-one"), { status = 401, body = '{"error":{"code":"Unauthorized",'
        .. '"message":"token expired"}}' }, token("tok-two"), { status = 401, body = '{"error":{"code":"Unauthorized"}}' } })
      local ok, err = pcall(entra_client().get_project, entra_client(), "p")
      rec.restore()
      assert.is_false(ok)
      assert.equal("auth", err.kind)
      assert.equal(401, err.status)
    end)

    it("maps token endpoint errors to auth errors", function()
      local rec = support.http({ { status = 401, body = '{"error":"invalid_client","error_description":'
        .. '"AADSTS7000215: Invalid client secret provided.","correlation_id":"c1"}' } })
      local ok, err = pcall(entra_client().get_project, entra_client(), "p")
      rec.restore()
      assert.is_false(ok)
      assert.equal("auth", err.kind)
      assert.equal("invalid_client", err.code)
      assert.equal("entra", err.provider)
      assert.not_matches("csecret", tostring(err))
    end)
  end)

  describe("long-running operations", function()
    it("train returns a job followed through Operation-Location", function()
      local loc = EP .. "/language/authoring/analyze-text/projects/p/train/jobs/j1?api-version=2023-04-01"
      local rec = support.http({
        { status = 200, body = '{"value":[],"nextLink":null}' },
        { status = 202, headers = { ["Operation-Location"] = loc } },
        { status = 200, body = { jobId = "j1", status = "running", result = { modelLabel = "m",
          trainingStatus = { percentComplete = 50, status = "running" },
          estimatedEndDateTime = "2030-01-01T00:00:00Z" } } },
        { status = 200, body = { jobId = "j1", status = "succeeded", result = { modelLabel = "m",
          trainingStatus = { percentComplete = 100, status = "succeeded" },
          evaluationStatus = { percentComplete = 100, status = "succeeded" } } } },
      })
      local job = key_client():train("p", { model_label = "m" })
      assert.same({ modelLabel = "m", trainingConfigVersion = "latest" }, support.json(rec.requests[2].body))
      local st = job:status()
      assert.equal("running", st.state)
      assert.equal(50, st.progress)
      assert.is_number(st.eta)
      st = job:wait({ interval = 1 })
      rec.restore()
      assert.equal("succeeded", st.state)
      assert.equal(100, st.progress)
      assert.equal(loc, rec.requests[4].url)
    end)

    it("falls back to the Location header", function()
      local rec = support.http({ { status = 202, headers = { Location = EP
        .. "/language/authoring/analyze-text/projects/p/deployments/d/jobs/j2?api-version=2023-04-01" } } })
      local job = key_client():deploy("p", "d", { trained_model_label = "m" })
      rec.restore()
      assert.equal("j2", job.id)
    end)

    it("refuses to send credentials to another host", function()
      local rec = support.http({ { status = 202, headers = { ["Operation-Location"] = "http://evil.example/x/jobs/1" } } })
      local ok, err = pcall(key_client().deploy, key_client(), "p", "d", { trained_model_label = "m" })
      rec.restore()
      assert.is_false(ok)
      assert.equal("ForeignLink", err.code)
    end)

    it("maps every job status, cancelled and partiallyCompleted included", function()
      local c = key_client()
      local job = c:job({ path = "/language/analyze-text/jobs/a1?api-version=2023-04-01", kind = "analyze" })
      local expect = { notStarted = "pending", running = "running", cancelling = "running",
        succeeded = "succeeded", failed = "failed", cancelled = "cancelled", partiallyCompleted = "failed" }
      for status, state in pairs(expect) do
        local rec = support.http({ { status = 200, body = { jobId = "a1", status = status,
          tasks = { total = 2, completed = 1 } } } })
        local st = job:status()
        rec.restore()
        assert.equal(state, st.state, status)
        assert.equal(50, st.progress)
      end
    end)

    it("reports a cancelled training as training_failed with code cancelled", function()
      local job = key_client():job({ path = "/language/authoring/analyze-text/projects/p/train/jobs/j?api-version=x",
        kind = "training" })
      local rec = support.http({ { status = 200, body = { jobId = "j", status = "cancelled" } } })
      local ok, err = pcall(job.wait, job, { interval = 1 })
      rec.restore()
      assert.is_false(ok)
      assert.equal("training_failed", err.kind)
      assert.equal("cancelled", err.code)
    end)

    it("cancels a training through its :cancel operation", function()
      local job = key_client():job({ path = "/language/authoring/analyze-text/projects/p/train/jobs/j?api-version=2023-04-01",
        kind = "training" })
      local rec = support.http({ { status = 202, headers = { ["Operation-Location"] = EP
        .. "/language/authoring/analyze-text/projects/p/train/jobs/j?api-version=2023-04-01" } } })
      job:cancel()
      rec.restore()
      assert.equal("POST", rec.requests[1].method)
      assert.equal(EP .. "/language/authoring/analyze-text/projects/p/train/jobs/j/:cancel?api-version=2023-04-01",
        rec.requests[1].url)
    end)

    it("honours Retry-After on a status poll", function()
      local job = key_client():job({ path = "/language/analyze-text/jobs/a?api-version=x", kind = "analyze" })
      local rec = support.http({ { status = 200, headers = { ["Retry-After"] = "7" }, body = { status = "running" } },
        { status = 200, body = { status = "succeeded" } } })
      job:wait()
      rec.restore()
      assert.same({ 7 }, iso.sleeps.list)
    end)
  end)

  describe("paging", function()
    it("follows nextLink", function()
      local rec = support.http({
        { status = 200, body = { value = { { projectName = "a" } }, nextLink = EP
          .. "/language/authoring/analyze-text/projects?skip=1&api-version=2023-04-01" } },
        { status = 200, body = { value = { { projectName = "b" } } } },
      })
      local names = {}
      for p in key_client():each("list_projects") do names[#names + 1] = p.projectName end
      rec.restore()
      assert.same({ "a", "b" }, names)
      assert.equal(KEY, rec.header(2, "ocp-apim-subscription-key"))
    end)

    it("reports a nextLink loop instead of looping", function()
      local link = EP .. "/language/authoring/analyze-text/projects?skip=1&api-version=2023-04-01"
      local rec = support.http({
        { status = 200, body = { value = { { projectName = "a" } }, nextLink = link } },
        { status = 200, body = { value = { { projectName = "b" } }, nextLink = link } },
      })
      local ok, err = pcall(function()
        for _ in key_client():each("list_projects") do end
      end)
      rec.restore()
      assert.is_false(ok)
      assert.is_true(errors.is(err, "api"))
      assert.equal("NextLinkLoop", err.code)
      assert.equal(2, #rec.requests)
    end)
  end)

  it("maps the error body", function()
    local rec = support.http({ { status = 404, body = '{"error":{"code":"ProjectNotFound","message":"no such project",'
      .. '"innererror":{"code":"InvalidRequest"}}}', headers = { ["apim-request-id"] = "req-9" } } })
    local ok, err = pcall(key_client().get_project, key_client(), "nope")
    rec.restore()
    assert.is_false(ok)
    assert.equal("api", err.kind)
    assert.equal("ProjectNotFound", err.code)
    assert.equal("req-9", err.request_id)
  end)

  describe("configuration", function()
    it("needs an endpoint", function()
      local ok, err = pcall(azure.client, { key = "k" })
      assert.is_false(ok)
      assert.equal("usage", err.kind)
      assert.matches("AZURE_LANGUAGE_ENDPOINT", err.message)
    end)

    it("names the missing credential", function()
      iso.restore_env()
      iso.restore_env = support.env({ AZURE_LANGUAGE_ENDPOINT = EP, AZURE_TENANT_ID = "t", AZURE_CLIENT_ID = "c" })
      local ok, err = pcall(azure.client)
      assert.is_false(ok)
      assert.equal("usage", err.kind)
      assert.matches("AZURE_CLIENT_SECRET", err.message)
    end)

    it("prefers the TRAINCTL_ endpoint override", function()
      iso.restore_env()
      iso.restore_env = support.env({ AZURE_LANGUAGE_ENDPOINT = "https://real.example",
        TRAINCTL_AZURE_LANGUAGE_ENDPOINT = EP .. "/", AZURE_LANGUAGE_KEY = "k-from-env" })
      local c = azure.client()
      assert.equal(EP, c.endpoint)
      assert.equal("key", c.auth)
    end)
  end)
end)
