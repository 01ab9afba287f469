local support = require("support.doubles")
local aitems = require("trainctl.aitems")
local errors = require("trainctl.errors")
local sign = require("trainctl.sign")

local AK, SK = "test-access-key", "test-secret-key-0001"
local BASE = "http://127.0.0.1:9/api/v1"

local function client()
  return aitems.client({ access_key = AK, secret_key = SK, endpoint = BASE })
end

local function path_and_query(url)
  return url:match("^https?://[^/]+(.*)$")
end

describe("trainctl.aitems", function()
  local iso = support.isolate({ log = "error" })
  before_each(iso.before)
  after_each(iso.after)

  it("has every operation of the reference", function()
    assert.equal(27, #aitems.operations)
    local c = client()
    for _, op in ipairs(aitems.operations) do
      assert.is_function(c[op.name], op.name)
      assert.matches("^/", op.path)
    end
  end)

  it("signs the path and query byte for byte as sent", function()
    local rec = support.http({ { status = 200, body = '{"trains":[],"offset":0,"limit":1000}' } })
    client():list_trains("abc123xyz00", { offset = 0, limit = 1000, is_recent = true })
    rec.restore()
    local req = rec.requests[1]
    local uri = path_and_query(req.url)
    assert.equal("/api/v1/services/abc123xyz00/trains?offset=0&limit=1000&isRecent=true", uri)
    local ts = rec.header(1, "x-ncp-apigw-timestamp")
    assert.matches("^%d+$", ts)
    assert.equal(AK, rec.header(1, "x-ncp-iam-access-key"))
    assert.equal(sign.ncp_v2({ method = "GET", uri = uri, timestamp = ts, access_key = AK, secret_key = SK }),
      rec.header(1, "x-ncp-apigw-signature-v2"))
  end)

  it("sends Content-Type application/json on every call", function()
    local rec = support.http({ { status = 200, body = "{}" }, { status = 200, body = '{"result":"ok"}' } })
    local c = client()
    c:get_service("s1")
    c:delete_service("s1")
    rec.restore()
    assert.equal("application/json", rec.header(1, "content-type"))
    assert.equal("application/json", rec.header(2, "content-type"))
    assert.equal("DELETE", rec.requests[2].method)
  end)

  it("keeps ids from changing the request target", function()
    local rec = support.http({ { status = 200, body = "{}" }, { status = 200, body = "{}" } })
    client():get_service("../x")
    client():get_schema("a/b?c")
    rec.restore()
    assert.equal("/api/v1/services/..%2Fx", path_and_query(rec.requests[1].url))
    assert.equal("/api/v1/schemas/a%2Fb%3Fc", path_and_query(rec.requests[2].url))
  end)

  it("sends the training request body the API documents", function()
    local rec = support.http({
      { status = 200, body = '{"trains":[],"offset":0,"limit":100}' },
      { status = 200, body = '{"serviceId":"s1","status":"learning"}' },
    })
    local job = client():train("s1", { types = { "personalRecommend" } })
    rec.restore()
    assert.equal("POST", rec.requests[2].method)
    assert.same({ types = { "personalRecommend" }, description = "", hpConfig = { is_enabled = false } },
      support.json(rec.requests[2].body))
    assert.equal("s1", job.ref.service_id)
  end)

  describe("errors", function()
    it("maps the gateway envelope; codes 200/210/230 are auth", function()
      local rec = support.http({ { status = 401, body = '{"error":{"errorCode":"200","message":"Authentication Failed"}}' } })
      local ok, err = pcall(client().get_service, client(), "s")
      rec.restore()
      assert.is_false(ok)
      assert.equal("auth", err.kind)
      assert.equal("200", err.code)
      assert.equal("Authentication Failed", err.message)
      assert.equal("aitems", err.provider)
    end)

    it("accepts a numeric gateway errorCode", function()
      local rec = support.http({ { status = 404, body = '{"error":{"errorCode":300,"message":"Not Found Exception"}}' } })
      local ok, err = pcall(client().get_service, client(), "s")
      rec.restore()
      assert.is_false(ok)
      assert.equal("300", err.code)
      assert.equal("api", err.kind)
    end)

    it("maps the backend envelope with its request id", function()
      local rec = support.http({ { status = 400, body = '{"timestamp":"2022-04-06T10:13:57.940","path":"/api/services",'
        .. '"status":400,"error":"DUPLICATE_NAME","requestId":"3fd67b58","errorCode":"BAD_REQUEST",'
        .. '"message":"[Version3] is a duplicate name."}' } })
      local ok, err = pcall(client().create_service, client(), { name = "Version3" })
      rec.restore()
      assert.is_false(ok)
      assert.equal("api", err.kind)
      assert.equal("DUPLICATE_NAME", err.code)
      assert.equal("3fd67b58", err.request_id)
      assert.equal("[Version3] is a duplicate name.", err.message)
      assert.equal(400, err.status)
    end)

    it("treats a 2xx carrying the gateway envelope as an error", function()
      local rec = support.http({ { status = 200, body = '{"error":{"errorCode":"210","message":"Permission Denied"}}' } })
      local ok, err = pcall(client().list_services, client())
      rec.restore()
      assert.is_false(ok)
      assert.equal("auth", err.kind)
    end)

    it("names the missing credential", function()
      local ok, err = pcall(aitems.client, { access_key = "a" })
      assert.is_false(ok)
      assert.is_true(errors.is(err, "usage"))
      assert.matches("NCLOUD_SECRET_KEY", err.message)
    end)
  end)

  describe("creates", function()
    it("look up a service whose create answer was lost, not create it twice", function()
      local rec = support.http({
        { err = { kind = "network", message = "connection reset", curl_code = 56 } },
        { status = 200, body = '{"services":[{"serviceId":"s9","name":"shop"}],"offset":0,"limit":100}' },
        { status = 200, body = '{"serviceId":"s9","name":"shop","type":"batch","datasets":[]}' },
      })
      local svc = client():create_service({ name = "shop" })
      rec.restore()
      assert.equal("s9", svc.serviceId)
      assert.equal("batch", svc.type) -- the record, as the create answers, not the list's summary
      assert.equal(3, #rec.requests)
      assert.equal("GET", rec.requests[2].method)
      assert.matches("/services/s9$", rec.requests[3].url)
    end)
  end)

  describe("paging", function()
    it("walks offset/limit pages until a short one", function()
      local function page(ids)
        local items = {}
        for _, id in ipairs(ids) do items[#items + 1] = { datasetId = id } end
        return { status = 200, body = { datasets = items } }
      end
      local rec = support.http({ page({ "a", "b" }), page({ "c", "d" }), page({ "e" }) })
      local ids = {}
      for d in client():each("list_datasets", { limit = 2 }) do ids[#ids + 1] = d.datasetId end
      rec.restore()
      assert.same({ "a", "b", "c", "d", "e" }, ids)
      assert.matches("offset=2&limit=2$", rec.requests[2].url)
      assert.matches("offset=4&limit=2$", rec.requests[3].url)
    end)
  end)

  describe("training jobs", function()
    local function trains(list)
      return { status = 200, body = { trains = list, offset = 0, limit = 100 } }
    end

    it("follow the new trainings of the requested types to success", function()
      local c = client()
      local job = c:training_job({ service_id = "s1", types = { "pop", "relatedItem" }, before = { "old1" } })
      local rec = support.http({
        trains({ { type = "pop", version = "old1", status = "completed" } }),
        { status = 200, body = { serviceId = "s1", status = "learning" } },
        trains({ { type = "pop", version = "v2", status = "learning" } }),
        trains({ { type = "pop", version = "v2", status = "completed" },
          { type = "relatedItem", version = "v3", status = "completed" } }),
      })
      assert.equal("running", job:status().state)
      assert.equal("running", job:status().state)
      local st = job:wait({ interval = 1 })
      rec.restore()
      assert.equal("succeeded", st.state)
      assert.equal("v3", st.raw.trains.relatedItem.version)
    end)

    it("raise training_failed with the failed type", function()
      local job = client():training_job({ service_id = "s1", types = { "pop" }, before = {} })
      local rec = support.http({ trains({ { type = "pop", version = "v2", status = "learningFailed" } }) })
      local ok, err = pcall(job.wait, job, { interval = 1 })
      rec.restore()
      assert.is_false(ok)
      assert.equal("training_failed", err.kind)
      assert.equal("learningFailed", err.code)
      assert.matches("pop learningFailed", err.message)
    end)

    it("cannot be cancelled: AiTEMS has no such call", function()
      local job = client():training_job({ service_id = "s1", types = { "pop" }, before = {} })
      local ok, err = pcall(job.cancel, job)
      assert.is_false(ok)
      assert.equal("usage", err.kind)
    end)
  end)
end)
