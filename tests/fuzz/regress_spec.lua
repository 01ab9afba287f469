-- Regressions for what fuzzing found; each case failed before its fix.
local crypto = require "trainctl.crypto"
local errors = require "trainctl.errors"
local json = require "trainctl.json"
local ops = require "trainctl.ops"
local sign = require "trainctl.sign"

describe("fuzz regressions", function()
  it("base64 with non-zero pad bits is rejected (one encoding per byte string)", function()
    assert.is_nil((crypto.base64_decode("Zm9=")))
    assert.is_nil((crypto.base64_decode("Zh==")))
    assert.equal("fo", crypto.base64_decode("Zm8="))
    assert.equal("f", crypto.base64_decode("Zg=="))
  end)

  it("a header name that is not a token cannot reach SignedHeaders", function()
    local ok, err = pcall(sign.acs3, { method = "GET", path = "/", query = {},
      headers = { ["x-acs-a,signature"] = "v" }, body = "", access_key = "ak", secret = "sk" })
    assert.is_false(ok)
    assert.matches("invalid header name", err)
    ok = pcall(sign.acs_v2, { method = "GET", path = "/", query = {},
      headers = { ["x-acs-a b"] = "v" }, secret = "sk" })
    assert.is_false(ok)
  end)

  it("an integer beyond 2^53 reaches the wire exactly (path, query, JSON body)", function()
    assert.equal("9007199254740993", ops.text(9007199254740993))
    assert.equal("9223372036854775807", ops.text(math.maxinteger))
    assert.equal("-9223372036854775808", json.number_string(math.mininteger))
    assert.equal('{"id":9007199254740993}', json.encode({ id = 9007199254740993 }))
    assert.equal("9007199254740992", ops.text(2.0 ^ 53))
    assert.equal("1e+20", ops.text(1e20))
  end)

  describe("an error answer that quotes the request back", function()
    local http = require "trainctl.http"
    local aitems = require "trainctl.aitems"
    local azure = require "trainctl.azure_language"
    local request = http.request
    after_each(function() http.request = request end)

    -- Answers every request with body(request headers).
    local function answer(status, body)
      http.request = function(o) return { status = status, headers = {}, body = body(o.headers) } end
    end

    local function fails(c)
      local ok, err = pcall(c.call, c, "POST", "/x", { body = {}, retry = false, action = "Regress" })
      assert.is_false(ok)
      assert.is_true(errors.is(err))
      return err, tostring(err)
    end

    it("leaves no signature in the code, the request id or the details", function()
      local c = aitems.client({ endpoint = "http://127.0.0.1:9/api/v1", access_key = "regress-ak-1",
        secret_key = "regress-sk-1", retry = false })
      local sig
      answer(401, function(h)
        sig = h["x-ncp-apigw-signature-v2"]
        return json.encode({ error = { errorCode = sig, message = "bad " .. sig,
          details = { sig = sig } } })
      end)
      local err, text = fails(c)
      assert.is_string(sig)
      assert.is_nil(text:find(sig, 1, true))
      assert.is_nil(err.code:find(sig, 1, true))
      assert.is_nil(err.details.sig:find(sig, 1, true))
    end)

    it("leaves no key in Azure's inner error or x-ms-error-code", function()
      local c = azure.client({ endpoint = "http://127.0.0.1:9", key = "regress-azure-key", retry = false })
      answer(400, function()
        return '{"error":{"code":"regress-azure-key","message":"m",'
          .. '"innererror":{"code":"c","message":"key regress-azure-key"}}}'
      end)
      local err, text = fails(c)
      assert.is_nil(text:find("regress-azure-key", 1, true))
      assert.is_nil(err.details.message:find("regress-azure-key", 1, true))
    end)

    it("keeps message, code and request id strings when the server sends other types", function()
      local c = aitems.client({ endpoint = "http://127.0.0.1:9/api/v1", access_key = "regress-ak-1",
        secret_key = "regress-sk-1", retry = false })
      answer(500, function() return '{"error":{"errorCode":null,"message":null}}' end)
      local err = fails(c)
      assert.equal("HTTP 500", err.message)
      assert.is_nil(err.code)
      answer(400, function() return '{"error":"E","errorCode":[1],"message":{"a":1},"requestId":7}' end)
      err = fails(c)
      assert.equal("E", err.code)
      assert.equal("HTTP 400", err.message)
      assert.equal("7", err.request_id)
      local os_client = require("trainctl.opensearch").client({ endpoint = "http://127.0.0.1:9",
        access_key_id = "regress-ak-2", access_key_secret = "regress-sk-2", retry = false })
      answer(400, function() return '{"Code":{"x":1},"Message":"m"}' end)
      assert.is_nil(fails(os_client).code)
      answer(400, function() return '{"Code":404,"Message":"m"}' end)
      assert.equal("404", fails(os_client).code)
      local az = azure.client({ endpoint = "http://127.0.0.1:9", key = "regress-azure-key", retry = false })
      answer(400, function() return '{"error":{"code":null,"message":"m"}}' end)
      assert.is_nil(fails(az).code)
    end)
  end)

  describe("a job status out of the ordinary", function()
    local http = require "trainctl.http"
    local wait = require "trainctl.wait"
    local request = http.request
    after_each(function() http.request = request end)

    local function answer(body)
      http.request = function() return { status = 200, headers = {}, body = body } end
    end

    -- The first poll's status, shown on the progress line as wait does.
    local function first(j)
      local STOP, seen = {}, nil
      local ok, err = pcall(j.wait, j, { on_progress = function(st) seen = st error(STOP, 0) end })
      assert.is_false(ok)
      assert.equal(STOP, err)
      return seen
    end

    it("keeps progress within 0..100 and the progress line printable", function()
      local az = require("trainctl.azure_language").client({ endpoint = "http://127.0.0.1:9",
        key = "regress-azure-key", retry = false })
      local j = az:job({ path = "/language/x/jobs/j?api-version=2023-04-01", kind = "training" })
      answer('{"jobId":"j","status":"running","result":{"trainingStatus":{"percentComplete":1e20},'
        .. '"evaluationStatus":{"percentComplete":1},"estimatedEndDateTime":{"a":1}}}')
      local st = first(j)
      assert.equal(100, st.progress)
      assert.is_nil(st.eta)
      local os_client = require("trainctl.opensearch").client({ endpoint = "http://127.0.0.1:9",
        access_key_id = "regress-ak-2", access_key_secret = "regress-sk-2", retry = false,
        app_group = "a", function_name = "f" })
      answer('{"Status":"OK","Result":{"Generation":"2","Status":"running","Progress":-7}}')
      assert.equal(0, first(os_client:training_job({ instance_name = "i", generation = "2" })).progress)
      assert.equal("596523h14m", wait.duration(1e300))
      assert.equal("0s", wait.duration(0 / 0))
    end)

    it("leaves no key in the error about a status it does not know", function()
      local az = require("trainctl.azure_language").client({ endpoint = "http://127.0.0.1:9",
        key = "regress-azure-key-2", retry = false })
      answer('{"jobId":"j","status":"runningregress-azure-key-2"}')
      local ok, err = pcall(function()
        return az:job({ path = "/language/x/jobs/j?api-version=2023-04-01", kind = "operation" }):status()
      end)
      assert.is_false(ok)
      assert.equal("api", err.kind)
      assert.is_nil(tostring(err):find("regress-azure-key-2", 1, true))
    end)

    it("reads AiTEMS polls that hold something else than objects", function()
      local ai = require("trainctl.aitems").client({ endpoint = "http://127.0.0.1:9/api/v1",
        access_key = "regress-ak-1", secret_key = "regress-sk-1", retry = false })
      answer('{"offset":0,"limit":100,"trains":[null,true,{"version":"v2","type":"pop",'
        .. '"status":"completed"}]}')
      local st = first(ai:training_job({ service_id = "s", types = { "pop" }, before = {} }))
      assert.equal("succeeded", st.state)
      answer("")
      local ok, err = pcall(ai.dataset_job(ai, "d").status, ai:dataset_job("d"))
      assert.is_false(ok)
      assert.equal("decode", err.kind)
      ok, err = pcall(function()
        return ai:training_job({ service_id = "s", types = { "pop" }, before = {} }):status()
      end)
      assert.is_false(ok)
      assert.equal("decode", err.kind)
    end)
  end)
end)
