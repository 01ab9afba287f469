-- The AiTEMS client where the reference says UNKNOWN: the backend's error
-- codes for an unknown id and for a training already running (each form
-- cloudsim can send), and every documented train, dataset and service
-- status, set through the emulator's admin API, mapped to a job state.
local cloudsim = require("support.cloudsim")
local aitems = require("trainctl.aitems")
local errors = require("trainctl.errors")
local state = require("trainctl.state")

-- The forms of the two codes: cloudsim's default, Spring's reason
-- phrases, and codes of any other name with a 409 for the busy one.
local VARIANTS = {
  { name = "NOT_FOUND / INVALID_STATUS (400)", args = "" },
  { name = "Spring's Not Found / Bad Request (400)", args = "--aitems-error-codes spring" },
  { name = "GONE / BUSY (409)", args = "--aitems-error-codes GONE,BUSY --aitems-busy-status 409" },
}

for _, v in ipairs(VARIANTS) do
  describe("aitems with the backend's codes " .. v.name, function()
    local sim, ai, n, pause = nil, nil, 0, nil

    setup(function()
      sim = cloudsim.start({ speed = 0, args = v.args, use = true, log = "error" })
      ai = aitems.client()
      -- The confirmation's pause is the emulator's business, not a sleep here.
      pause, state.CONFIRM.pause = state.CONFIRM.pause, 0
    end)
    teardown(function()
      state.CONFIRM.pause = pause
      sim:stop()
    end)

    local function name()
      n = n + 1
      return ("unk%d"):format(n)
    end

    it("calls a deleted service gone, after the answers agree", function()
      local sid = ai:create_service({ name = name() }).serviceId
      ai:delete_service(sid)
      local found, err = state.still_there(ai.get_service, ai, sid)
      assert.is_nil(found)
      assert.equal(404, err.status)
      assert.is_true(errors.not_found(err))
    end)

    it("does not call a service gone on the gateway's 404 for a route", function()
      local sid = ai:create_service({ name = name() }).serviceId
      sim:faults({ { kind = "404", match = { operation = "GetService" } } })
      assert.equal(sid, state.still_there(ai.get_service, ai, sid).serviceId)
      local ok, err = pcall(ai.call, ai, "GET", "/no/such/route")
      assert.is_false(ok)
      assert.equal(404, err.status)
      assert.is_false(errors.not_found(err))
    end)

    it("adopts the training already running (adopt = true) instead of failing or starting another", function()
      local sid = sim:aitems_service(ai, name())
      ai:train(sid, { types = { "pop" } })
      local ok, err = pcall(ai.train, ai, sid, { types = { "pop" } })
      assert.is_false(ok)
      assert.is_true(err.status == 400 or err.status == 409, tostring(err))
      local j = ai:train(sid, { types = { "pop" }, adopt = true })
      assert.is_true(j.ref.adopted)
      assert.equal("pending", j:status().state)
      local started = 0
      for _, r in ipairs(sim:requests({ operation = "CreateTrain" })) do
        if r.path:find(sid, 1, true) and r.status == 200 then started = started + 1 end
      end
      assert.equal(1, started)
      sim:advance(400)
      assert.equal("succeeded", j:status().state)
    end)

    it("adopts a training the service has taken on (requestLearning) before any record shows", function()
      local sid = sim:aitems_service(ai, name())
      sim:admin("POST", "aitems/services/" .. sid, { status = "requestLearning" })
      local j = ai:train(sid, { types = { "pop" }, adopt = true })
      assert.is_true(j.ref.adopted)
      assert.equal("running", j:status().state)
    end)

    it("does not adopt anything when the refusal is not about a training in progress", function()
      local sid = ai:create_service({ name = name() }).serviceId
      local ok, err = pcall(ai.train, ai, sid, { types = { "pop" }, adopt = true })
      assert.is_false(ok)
      assert.is_true(err.status == 400 or err.status == 409, tostring(err))
    end)
  end)
end

describe("aitems lookup", function()
  local sim, ai, sid

  setup(function()
    sim = cloudsim.start({ speed = 0, use = true, log = "error" })
    ai = aitems.client()
    sid = sim:aitems_service(ai, "lookups")
    ai:train(sid, { types = { "pop", "relatedItem" } })
    sim:advance(600)
  end)
  teardown(function() sim:stop() end)

  it("asks for the popular items (pop) with no targetId, and with one when given", function()
    local popular = ai:lookup(sid, { type = "pop" })
    assert.equal("ITEM_ID", popular.field)
    assert.is_true(#popular.values > 0)
    local sent = sim:requests({ operation = "LookupInference" })
    assert.is_nil(sent[#sent].query:find("targetId", 1, true), sent[#sent].query)
    assert.is_true(#ai:lookup(sid, { type = "pop", target_id = "u001" }).values > 0)
    sent = sim:requests({ operation = "LookupInference" })
    assert.matches("targetId=u001", sent[#sent].query, 1, true)
  end)

  it("still needs a targetId for personalRecommend and relatedItem, refused before any request", function()
    local before = #sim:requests({ operation = "LookupInference" })
    for _, kind in ipairs({ "personalRecommend", "relatedItem" }) do
      local ok, err = pcall(ai.lookup, ai, sid, { type = kind })
      assert.is_false(ok)
      assert.is_true(errors.is(err, "usage"), tostring(err))
      assert.matches("missing required parameter target_id", err.message, 1, true)
    end
    assert.equal(before, #sim:requests({ operation = "LookupInference" }))
  end)

  it("takes type=pop alone on the command line, and says what relatedItem lacks", function()
    local code, out, err = sim:run({ "call", "aitems", "lookup", "service_id=" .. sid, "type=pop" })
    assert.equal(0, code, err)
    assert.matches("ITEM_ID", out, 1, true)
    code, out, err = sim:run({ "call", "aitems", "lookup", "service_id=" .. sid, "type=relatedItem" })
    assert.equal("", out)
    assert.equal(2, code, err)
    assert.matches("missing required parameter target_id", err, 1, true)
  end)
end)

describe("aitems job states for every documented status", function()
  local sim, ai

  setup(function()
    sim = cloudsim.start({ speed = 0, use = true, log = "error" })
    ai = aitems.client()
  end)
  teardown(function() sim:stop() end)

  it("maps each train status (aitems.md 5.2) to its job state", function()
    local sid = sim:aitems_service(ai, "trainstates")
    local j = ai:train(sid, { types = { "pop" } })
    local version = ai:recent_trains(sid)[1].version
    local WANT = {
      ready = "pending", waiting = "pending", requesting = "pending",
      learning = "running", stopping = "running", completed = "succeeded",
      requestFailed = "failed", refinedFailed = "failed", learningFailed = "failed",
    }
    for status, want in pairs(WANT) do
      sim:admin("POST", "aitems/trains/" .. version, { status = status })
      local st = j:status()
      assert.equal(want, st.state, status)
      if want == "failed" then assert.equal(status, st.code) end
    end
  end)

  it("maps each dataset status (aitems.md 4.2) to its import job's state", function()
    local _, ids = sim:aitems_service(ai, "dsstates")
    local j = ai:dataset_job(ids[1])
    local WANT = {
      waiting = "pending", processing = "running", enable = "succeeded",
      upload_failed = "failed", disable = "failed", deleting = "failed",
    }
    for status, want in pairs(WANT) do
      sim:admin("POST", "aitems/datasets/" .. ids[1], { status = status })
      local st = j:status()
      assert.equal(want, st.state, status)
      if want == "failed" then assert.matches("is " .. status, st.message, 1, true) end
    end
  end)

  it("counts a service asked to train (requestLearning) as running and a draft or disabled one as pending",
    function()
    local sid = sim:aitems_service(ai, "svcstates")
    local j = ai:training_job({ service_id = sid, types = { "pop" }, before = {} })
    local WANT = { requestLearning = "running", learning = "running", scheduledLearning = "running",
      drafted = "pending", disable = "pending", learnable = "pending" }
    for status, want in pairs(WANT) do
      sim:admin("POST", "aitems/services/" .. sid, { status = status })
      assert.equal(want, j:status().state, status)
    end
  end)
end)
