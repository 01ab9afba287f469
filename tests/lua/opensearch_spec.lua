local support = require("support.doubles")
local opensearch = require("trainctl.opensearch")
local crypto = require("trainctl.crypto")
local ops = require("trainctl.ops")
local sign = require("trainctl.sign")

local AK, SK = "testAccessKeyId", "testAccessKeySecret"

local function client(extra)
  local o = { access_key_id = AK, access_key_secret = SK, endpoint = "http://127.0.0.1:9",
    app_group = "my_app", function_name = "ctr" }
  for k, v in pairs(extra or {}) do o[k] = v end
  return opensearch.client(o)
end

local function split(url)
  local path, query = url:match("^https?://[^/]+([^?]*)%??(.*)$")
  return path, query
end

local function without_auth(headers)
  local h = {}
  for k, v in pairs(headers) do
    if k:lower() ~= "authorization" then h[k] = v end
  end
  return h
end

describe("trainctl.opensearch", function()
  local iso = support.isolate({ log = "error" })
  before_each(iso.before)
  after_each(iso.after)

  it("has the 18 function operations", function()
    assert.equal(18, #opensearch.operations)
    for _, op in ipairs(opensearch.operations) do assert.is_string(op.action) end
  end)

  it("signs with ACS3-HMAC-SHA256 by default", function()
    local rec = support.http({ { status = 200, body = '{"Status":"OK","Result":[],"TotalCount":0}' } })
    client():list_function_tasks({ instance_name = "ctr_test", page_number = 1, page_size = 10, status = "success" })
    rec.restore()
    local req = rec.requests[1]
    local path, query = split(req.url)
    assert.equal("/v4/openapi/app-groups/my_app/functions/ctr/instances/ctr_test/tasks", path)
    assert.equal("pageNumber=1&pageSize=10&status=success", query)
    assert.equal("ListFunctionTasks", rec.header(1, "x-acs-action"))
    assert.equal("2017-12-25", rec.header(1, "x-acs-version"))
    assert.equal("127.0.0.1:9", rec.header(1, "host"))
    assert.equal(crypto.hex_encode(crypto.sha256("")), rec.header(1, "x-acs-content-sha256"))
    assert.matches("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%dZ$", rec.header(1, "x-acs-date"))
    local expect = sign.acs3({ method = "GET", path = path, query = ops.parse_query(query),
      headers = without_auth(req.headers), body = "", access_key = AK, secret = SK })
    assert.equal(expect, rec.header(1, "authorization"))
  end)

  it("signs a JSON body with its hash and content type", function()
    local rec = support.http({ { status = 200, body = '{"Status":"OK","Result":{}}' } })
    client():create_function_instance({ instance_name = "ctr_test", model_type = "tf_checkpoint" })
    rec.restore()
    local body = rec.requests[1].body
    assert.same({ instanceName = "ctr_test", modelType = "tf_checkpoint" }, support.json(body))
    assert.equal("application/json; charset=utf-8", rec.header(1, "content-type"))
    assert.equal(crypto.hex_encode(crypto.sha256(body)), rec.header(1, "x-acs-content-sha256"))
    assert.matches("SignedHeaders=content%-type;host;", rec.header(1, "authorization"))
  end)

  it("signs with the ROA acs scheme when asked for v2", function()
    local rec = support.http({ { status = 200, body = '{"Status":"OK","Result":{}}' } })
    client({ signature = "v2" }):get_function_task({ instance_name = "ctr_test", generation = "3" })
    rec.restore()
    local req = rec.requests[1]
    local path, query = split(req.url)
    assert.equal("HMAC-SHA1", rec.header(1, "x-acs-signature-method"))
    assert.matches("GMT$", rec.header(1, "date"))
    local sig = sign.acs_v2({ method = "GET", path = path, query = ops.parse_query(query),
      headers = without_auth(req.headers), secret = SK })
    assert.equal("acs " .. AK .. ":" .. sig, rec.header(1, "authorization"))
  end)

  it("reads PascalCase and camelCase answers alike and decodes ExtendInfo", function()
    local rec = support.http({
      { status = 200, body = '{"status":"OK","result":{"status":"success","progress":100,'
        .. '"extendInfo":"{\\"auc\\":0.71,\\"errors\\":[]}","generation":"3"}}' },
      { status = 200, body = '{"Status":"OK","Result":{"Status":"success","ExtendInfo":"{\\"auc\\":0.7}"}}' },
    })
    local a = client():get_function_task({ instance_name = "i", generation = "3" })
    local b = client():get_function_task({ instance_name = "i", generation = "3" })
    rec.restore()
    assert.equal("success", a.Result.Status)
    assert.equal("success", a.result.status)
    assert.equal(0.71, a.Result.ExtendInfo.auc)
    assert.equal(0.7, b.result.extendInfo.auc)
    local keys = {}
    for k in pairs(a) do keys[#keys + 1] = k end
    table.sort(keys)
    assert.same({ "result", "status" }, keys)
  end)

  describe("errors", function()
    it("reports Status FAIL on a 200 as an api error", function()
      local rec = support.http({ { status = 200, body = '{"Status":"FAIL","Code":"Instance.NotExist",'
        .. '"Message":"instance not exist.","RequestId":"R1"}' } })
      local ok, err = pcall(client().get_function_instance, client(), { instance_name = "x" })
      rec.restore()
      assert.is_false(ok)
      assert.equal("api", err.kind)
      assert.equal("Instance.NotExist", err.code)
      assert.equal("R1", err.request_id)
    end)

    it("makes signature errors auth errors", function()
      local rec = support.http({ { status = 400, body = '{"RequestId":"R","Code":"SignatureDoesNotMatch",'
        .. '"Message":"Specified signature is not matched with our calculation."}' } })
      local ok, err = pcall(client().get_function_instance, client(), { instance_name = "x" })
      rec.restore()
      assert.is_false(ok)
      assert.equal("auth", err.kind)
      assert.equal("SignatureDoesNotMatch", err.code)
    end)

    it("retries throttling even on a 400, after x-acs-retry-after", function()
      local rec = support.http({
        { status = 400, headers = { ["x-acs-retry-after"] = "1000" },
          body = '{"Code":"Throttling.User","Message":"Request was denied due to user flow control."}' },
        { status = 200, body = '{"Status":"OK","Result":{}}' },
      })
      client():get_function_default_instance()
      rec.restore()
      assert.equal(2, #rec.requests)
      assert.same({ 1 }, iso.sleeps.list)
    end)

    it("signs again with a new nonce after SignatureNonceUsed (a request resent by libcurl)", function()
      local rec = support.http({
        { status = 400, body = '{"Code":"SignatureNonceUsed","Message":"Specified signature nonce was used already."}' },
        { status = 200, body = '{"Status":"OK","Result":{}}' },
      })
      client():get_function_default_instance()
      rec.restore()
      assert.equal(2, #rec.requests)
      local n1 = rec.requests[1].headers["x-acs-signature-nonce"]
      assert.is_string(n1)
      assert.not_equal(n1, rec.requests[2].headers["x-acs-signature-nonce"])
    end)
  end)

  describe("training", function()
    it("finds the new task after the start and follows it", function()
      local rec = support.http({
        { status = 200, body = '{"Status":"OK","Result":[{"Generation":"2","Status":"success"}],"TotalCount":1}' },
        { status = 200, body = '{"Status":"OK","Result":{}}' },
        { status = 200, body = '{"Status":"OK","Result":[{"Generation":"2","Status":"success"}],"TotalCount":1}' },
        { status = 200, body = '{"Status":"OK","Result":[{"Generation":"3","Status":"running","Progress":40}],'
          .. '"TotalCount":2}' },
        { status = 200, body = '{"Status":"OK","Result":{"Generation":"3","Status":"success","Progress":100,'
          .. '"ExtendInfo":"{\\"auc\\":0.8}"}}' },
      })
      local job = client():create_function_task({ instance_name = "ctr_test" })
      assert.equal("2", job.ref.before)
      assert.equal("pending", job:status().state)
      local st = job:status()
      assert.equal("running", st.state)
      assert.equal(40, st.progress)
      st = job:status()
      rec.restore()
      assert.equal("succeeded", st.state)
      assert.equal(0.8, st.raw.ExtendInfo.auc)
      assert.matches("/tasks/3$", rec.requests[5].url)
    end)

    it("reports a failed task with its errors", function()
      local job = client():training_job({ instance_name = "i", generation = "4" })
      local rec = support.http({ { status = 200, body = '{"Status":"OK","Result":{"Generation":"4","Status":"failed",'
        .. '"ExtendInfo":"{\\"errors\\":[\\"sample table empty\\"]}"}}' } })
      local ok, err = pcall(job.wait, job, { interval = 1 })
      rec.restore()
      assert.is_false(ok)
      assert.equal("training_failed", err.kind)
      assert.matches("sample table empty", err.message)
    end)
  end)

  it("pages by pageNumber until TotalCount", function()
    local rec = support.http({
      { status = 200, body = '{"Result":[{"InstanceName":"a"},{"InstanceName":"b"}],"TotalCount":3}' },
      { status = 200, body = '{"Result":[{"InstanceName":"c"}],"TotalCount":3}' },
    })
    local names = {}
    for i in client():each("list_function_instances", { page_size = 2 }) do names[#names + 1] = i.InstanceName end
    rec.restore()
    assert.same({ "a", "b", "c" }, names)
    assert.matches("pageNumber=2&pageSize=2", rec.requests[2].url)
  end)
end)
