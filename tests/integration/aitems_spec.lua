-- The AiTEMS client against cloudsim: lifecycles to each end state on the
-- emulator's clock, paging, error kinds, retries and safe creates.
local support = require("support")
local cloudsim = require("support.cloudsim")
local aitems = require("trainctl.aitems")
local errors = require("trainctl.errors")

local TYPES, FIELDS, FILES = cloudsim.AITEMS_TYPES, cloudsim.AITEMS_FIELDS, cloudsim.AITEMS_FILES

describe("aitems against cloudsim", function()
  local sim, ai, data, n = nil, nil, nil, 0

  setup(function()
    data = support.tmpdir()
    -- Interaction files whose key says "fail" make the training fail.
    os.execute(("mkdir -p %s/aitems && cp examples/data/aitems/*.csv %s/aitems/ && "
      .. "cp %s/aitems/interactions.csv %s/aitems/interactions_fail.csv && "
      .. "cp %s/aitems/interactions.csv %s/aitems/interactions_refine_fail.csv")
      :format(data, data, data, data, data, data))
    sim = cloudsim.start({ poll_interval = "0.2", speed = 0, data_dir = data, use = true, log = "error" })
    ai = aitems.client()
  end)
  teardown(function()
    sim:stop()
    support.rmdir(data)
  end)

  -- A trainable service whose interaction data comes from interactions_file.
  local function trainable(interactions_file)
    n = n + 1
    local ids = {}
    for _, typ in ipairs(TYPES) do
      local schema = ("s%d_%s"):format(n, typ)
      ai:create_schema({ dataset_type = typ, name = schema, fields = FIELDS[typ] })
      local key = "aitems/" .. (typ == "interaction" and interactions_file or FILES[typ])
      local ds = ai:create_dataset({ type = typ, name = ("d%d_%s"):format(n, typ), schema_name = schema,
        os_info = { region = "KR", bucket = "b", key = key } })
      ids[#ids + 1] = ds.datasetId
    end
    sim:advance(100)
    for _, id in ipairs(ids) do assert.equal("succeeded", ai:dataset_job(id):status().state) end
    local svc = ai:create_service({ name = ("svc%d"):format(n) })
    assert.equal("datasetRequired", svc.status)
    ai:set_service_datasets(svc.serviceId, { dataset_ids = ids })
    return svc.serviceId
  end

  it("trains to success on the emulator's clock and serves recommendations", function()
    local sid = trainable("interactions.csv")
    local job = ai:train(sid, { types = aitems.TRAIN_TYPES })
    assert.equal("pending", job:status().state)
    sim:advance(120)
    assert.equal("running", job:status().state)
    sim:advance(600)
    local st = job:wait({ timeout = 5, interval = 0.1 })
    assert.equal("succeeded", st.state)
    assert.equal("completed", st.raw.trains.personalRecommend.status)
    local rec = ai:lookup(sid, { type = "personalRecommend", target_id = "u001" })
    assert.equal("ITEM_ID", rec.field)
    assert.is_true(#rec.values > 0)
    assert.equal(1, #sim:requests({ operation = "CreateTrain" }))
  end)

  it("reports learningFailed and refinedFailed as training_failed", function()
    for file, code in pairs({ ["interactions_fail.csv"] = "learningFailed",
      ["interactions_refine_fail.csv"] = "refinedFailed" }) do
      local job = ai:train(trainable(file), { types = { "pop" } })
      sim:advance(1000)
      local ok, err = pcall(job.wait, job, { timeout = 5, interval = 0.1 })
      assert.is_false(ok)
      assert.equal("training_failed", err.kind)
      assert.equal(code, err.code)
    end
  end)

  it("resumes a training from its recorded reference", function()
    local sid = trainable("interactions.csv")
    local ref = ai:train(sid, { types = { "pop" } }).ref
    local again = aitems.client():training_job(ref)
    sim:advance(1000)
    assert.equal("succeeded", again:status().state)
  end)

  it("pages through lists with offset and limit", function()
    for i = 1, 5 do ai:create_schema({ dataset_type = "user", name = "page_" .. i, fields = FIELDS.user }) end
    local names = {}
    for s in ai:each("list_schemas", { limit = 2 }) do names[s.name] = true end
    for i = 1, 5 do assert.is_true(names["page_" .. i]) end
    local offsets = {}
    for _, r in ipairs(sim:requests({ operation = "ListSchemas" })) do offsets[#offsets + 1] = r.query end
    assert.is_true(#offsets >= 3)
    assert.matches("offset=2", offsets[2])
  end)

  describe("errors", function()
    it("an unknown id is an api error with the backend's code", function()
      local ok, err = pcall(ai.get_service, ai, "nosuchsvc00")
      assert.is_false(ok)
      assert.is_true(errors.is(err, "api"))
      assert.equal(404, err.status)
      assert.equal("NOT_FOUND", err.code)
      assert.is_string(err.request_id)
    end)

    it("an id cannot change the request target", function()
      local ok, err = pcall(ai.get_service, ai, "../datasets")
      assert.is_false(ok)
      assert.equal(404, err.status)
      assert.equal(0, #sim:requests({ operation = "ListDatasets" }))
    end)

    it("a wrong state is an api error", function()
      local svc = ai:create_service({ name = "wrongstate" })
      local ok, err = pcall(ai.train, ai, svc.serviceId, { types = { "pop" } })
      assert.is_false(ok)
      assert.equal("api", err.kind)
      assert.equal("INVALID_STATUS", err.code)
      assert.equal(400, err.status)
    end)

    it("a bad signature is an auth error (exit 1 from trainctl call)", function()
      local bad = aitems.client({ secret_key = "not-the-secret" })
      local ok, err = pcall(bad.list_services, bad)
      assert.is_false(ok)
      assert.equal("auth", err.kind)
      assert.equal("200", err.code)
      local code, _, stderr = sim:run({ "call", "aitems", "list_services" },
        { env = { NCLOUD_SECRET_KEY = "not-the-secret" } })
      assert.equal(1, code)
      assert.matches("auth error", stderr)
      assert.not_matches("not%-the%-secret", stderr)
    end)

    it("a missing credential is a usage error naming it (exit 2)", function()
      local code, _, stderr = sim:run({ "call", "aitems", "list_services" }, { env = { NCLOUD_SECRET_KEY = false } })
      assert.equal(2, code)
      assert.matches("NCLOUD_SECRET_KEY", stderr)
    end)

    it("trainctl call prints the answer and exits 0", function()
      local code, out = sim:run({ "call", "aitems", "list_services", "limit=1" })
      assert.equal(0, code)
      -- compact JSON when piped (pretty on a terminal: call_spec)
      assert.matches('^{"limit":1,', out)
    end)
  end)

  describe("retries", function()
    it("waits out a scripted 429 with Retry-After: 2", function()
      sim:faults({ { kind = "429", retry_after = 2, match = { operation = "ListServices" } } })
      ai:list_services()
      local reqs = sim:requests({ operation = "ListServices" })
      local a, b = reqs[#reqs - 1], reqs[#reqs]
      assert.equal(429, a.status)
      assert.equal(200, b.status)
      assert.is_true(b.wall - a.wall >= 2, ("gap %g"):format(b.wall - a.wall))
    end)

    it("does not create a service twice when the connection dies after the create", function()
      sim:faults({ { kind = "reset", when = "after", match = { operation = "CreateService" } } })
      local svc = ai:create_service({ name = "resetsvc" })
      assert.equal("resetsvc", svc.name)
      local same = 0
      for s in ai:each("list_services") do
        if s.name == "resetsvc" then same = same + 1 end
      end
      assert.equal(1, same)
    end)

    it("does not start a training twice when the answer to the start is lost", function()
      local sid = trainable("interactions.csv")
      local before = #sim:requests({ operation = "CreateTrain" })
      sim:faults({ { kind = "503", when = "after", match = { operation = "CreateTrain" } } })
      local job = ai:train(sid, { types = { "pop" } })
      assert.equal(1, #sim:requests({ operation = "CreateTrain", status = 503 }))
      assert.equal(before + 1, #sim:requests({ operation = "CreateTrain" }))
      sim:advance(1000)
      assert.equal("succeeded", job:status().state)
    end)
  end)
end)
