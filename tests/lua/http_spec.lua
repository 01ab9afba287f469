local support = require("support.doubles")
local http = require("trainctl.http")
local errors = require("trainctl.errors")
local log = require("trainctl.log")

local function send(extra)
  local req = { provider = "test", method = "GET", url = "http://127.0.0.1:9/api/x" }
  for k, v in pairs(extra or {}) do req[k] = v end
  return http.send(req)
end

describe("trainctl.http", function()
  local iso = support.isolate({ log = "error", env = false })
  before_each(iso.before)
  after_each(iso.after)

  it("re-exports the native request function", function()
    assert.equal(require("trainctl._http").request, require("trainctl._http").request)
    assert.is_function(http.request)
  end)

  it("decodes JSON and returns the response", function()
    local rec = support.http({ { status = 200, body = '{"a":1}' } })
    local body, res = send({ query = "x=1" })
    rec.restore()
    assert.same({ a = 1 }, body)
    assert.equal(200, res.status)
    assert.equal("http://127.0.0.1:9/api/x?x=1", rec.requests[1].url)
  end)

  it("signs every attempt afresh and sends the query as built", function()
    local n = 0
    local rec = support.http({ { status = 503 }, { status = 200, body = "{}" } })
    send({ query = "b=2&a=1", sign = function(r)
      n = n + 1
      assert.equal("/api/x", r.path)
      assert.equal("b=2&a=1", r.query)
      assert.equal("127.0.0.1:9", r.host)
      r.headers["x-sig"] = "sig" .. n
    end })
    rec.restore()
    assert.equal("sig1", rec.header(1, "x-sig"))
    assert.equal("sig2", rec.header(2, "x-sig"))
  end)

  describe("retries", function()
    it("retries idempotent requests on 408, 429, 500, 502, 503 and 504", function()
      for _, status in ipairs({ 408, 429, 500, 502, 503, 504 }) do
        local rec = support.http({ { status = status }, { status = 200, body = "{}" } })
        send()
        rec.restore()
        assert.equal(2, #rec.requests)
      end
    end)

    it("does not retry other statuses", function()
      local rec = support.http({ { status = 404, body = "{}" } })
      local ok, err = pcall(send)
      rec.restore()
      assert.is_false(ok)
      assert.equal(1, #rec.requests)
      assert.equal("http", err.kind)
      assert.equal(404, err.status)
    end)

    it("waits the server's Retry-After seconds exactly", function()
      local rec = support.http({ { status = 429, headers = { ["Retry-After"] = "2" } },
        { status = 200, body = "{}" } })
      send()
      rec.restore()
      assert.same({ 2 }, iso.sleeps.list)
    end)

    it("understands Retry-After as an HTTP date", function()
      local sys = require("trainctl.sys")
      local date = sys.format_rfc1123(math.floor(sys.now()) + 30)
      local rec = support.http({ { status = 503, headers = { ["Retry-After"] = date } },
        { status = 200, body = "{}" } })
      send()
      rec.restore()
      assert.is_true(iso.sleeps.list[1] > 25 and iso.sleeps.list[1] <= 31, tostring(iso.sleeps.list[1]))
    end)

    it("understands retry-after-ms and x-acs-retry-after in milliseconds", function()
      local rec = support.http({ { status = 429, headers = { ["retry-after-ms"] = "1500" } },
        { status = 429, headers = { ["x-acs-retry-after"] = "2250" } }, { status = 200, body = "{}" } })
      send()
      rec.restore()
      assert.same({ 1.5, 2.25 }, iso.sleeps.list)
    end)

    it("waits at least 1 s whatever a Retry-After asks (0, 250 ms)", function()
      local rec = support.http({ { status = 429, headers = { ["retry-after"] = "0" } },
        { status = 503, headers = { ["x-acs-retry-after"] = "250" } }, { status = 200, body = "{}" } })
      send()
      rec.restore()
      assert.same({ 1, 1 }, iso.sleeps.list)
    end)

    it("caps a huge Retry-After and warns", function()
      iso.logs.restore()
      iso.logs = support.logs("warn")
      local rec = support.http({ { status = 503, headers = { ["Retry-After"] = "31536000" } },
        { status = 200, body = "{}" } })
      send({ retry = { max_retry_after = 60, max_time = 1000 } })
      rec.restore()
      assert.same({ 60 }, iso.sleeps.list)
      assert.matches("waiting 60s instead", iso.logs.text())
    end)

    it("backs off exponentially with jitter, bounded in attempts", function()
      local rec = support.http({ { status = 500 }, { status = 500 }, { status = 500 }, { status = 500 } })
      local ok, err = pcall(send, { retry = { attempts = 4, base_delay = 1, max_delay = 100 } })
      rec.restore()
      assert.is_false(ok)
      assert.equal(4, #rec.requests)
      assert.equal(4, err.attempts)
      assert.equal(3, #iso.sleeps.list)
      for i, d in ipairs(iso.sleeps.list) do
        local full = 2 ^ (i - 1)
        assert.is_true(d >= full / 2 and d <= full, ("retry %d waited %g"):format(i, d))
      end
    end)

    it("gives up when the total time would be exceeded", function()
      local rec = support.http({ { status = 503, headers = { ["Retry-After"] = "50" } } })
      local ok, err = pcall(send, { retry = { max_time = 10 } })
      rec.restore()
      assert.is_false(ok)
      assert.equal(50, err.retry_after)
      assert.equal(0, #iso.sleeps.list)
    end)

    it("can be turned off", function()
      local rec = support.http({ { status = 503 } })
      assert.is_false(pcall(send, { retry = false }))
      rec.restore()
      assert.equal(1, #rec.requests)
    end)

    it("retries network errors and timeouts of idempotent requests", function()
      local rec = support.http({ { err = { kind = "network", message = "reset", curl_code = 56 } },
        { err = { kind = "timeout", message = "slow", curl_code = 28 } }, { status = 200, body = "[]" } })
      send()
      rec.restore()
      assert.equal(3, #rec.requests)
    end)

    it("never repeats a POST that may have reached the server", function()
      for _, r in ipairs({ { status = 503 }, { err = { kind = "network", message = "reset", curl_code = 56 } },
        { status = 200, body = "{trunc" } }) do
        local rec = support.http({ r })
        local ok, err = pcall(send, { method = "POST", body = { a = 1 } })
        rec.restore()
        assert.is_false(ok)
        assert.equal(1, #rec.requests)
        assert.is_true(err.ambiguous)
      end
    end)

    it("repeats a POST whose connection was refused", function()
      local rec = support.http({ { err = { kind = "network", message = "refused", curl_code = 7 } },
        { status = 201, body = "{}" } })
      send({ method = "POST", body = {} })
      rec.restore()
      assert.equal(2, #rec.requests)
    end)

    it("repeats a POST marked idempotent", function()
      local rec = support.http({ { status = 503 }, { status = 200, body = "{}" } })
      send({ method = "POST", idempotent = true })
      rec.restore()
      assert.equal(2, #rec.requests)
    end)

    it("does not retry an interruption", function()
      local rec = support.http({ { err = { kind = "interrupted", message = "interrupted!" } } })
      local ok, err = pcall(send)
      rec.restore()
      assert.is_false(ok)
      assert.equal("interrupted", err.kind)
      assert.equal(1, #rec.requests)
    end)
  end)

  describe("errors", function()
    it("are objects with the provider's code, message and request id", function()
      local rec = support.http({ { status = 400, headers = { ["x-request-id"] = "rid-1" },
        body = '{"c":"BAD","m":"no good"}' } })
      local ok, err = pcall(send, { classify = function(_, b) return { code = b.c, message = b.m } end })
      rec.restore()
      assert.is_false(ok)
      assert.is_true(errors.is(err, "api"))
      assert.equal("BAD", err.code)
      assert.equal("no good", err.message)
      assert.equal("rid-1", err.request_id)
      assert.equal("test", err.provider)
      assert.equal("GET", err.method)
      assert.equal("http://127.0.0.1:9/api/x", err.url)
      assert.equal("test: api error (HTTP 400, BAD): no good [GET http://127.0.0.1:9/api/x; request id rid-1]",
        tostring(err))
    end)

    it("are auth errors on 401 and 403", function()
      local rec = support.http({ { status = 401, body = "{}" } })
      local ok, err = pcall(send)
      rec.restore()
      assert.is_false(ok)
      assert.equal("auth", err.kind)
    end)

    it("are decode errors when a success is not JSON", function()
      local rec = support.http({ { status = 200, body = "<html>" }, { status = 200, body = "<html>" },
        { status = 200, body = "<html>" } })
      local ok, err = pcall(send, { retry = { attempts = 3 } })
      rec.restore()
      assert.is_false(ok)
      assert.equal("decode", err.kind)
      assert.equal(3, #rec.requests)
    end)

    it("carry no secret the server echoed", function()
      log.add_secret("echoed-secret-key")
      local rec = support.http({ { status = 403, body = '{"m":"key echoed-secret-key is wrong"}' } })
      local ok, err = pcall(send, { classify = function(_, b) return { message = b.m } end,
        sign = function(r) r.secrets[#r.secrets + 1] = "per-request-signature" end })
      rec.restore()
      assert.is_false(ok)
      assert.not_matches("echoed%-secret%-key", tostring(err))
      assert.not_matches("echoed%-secret%-key", err.message)
    end)

    it("name the URL without its query: a SAS signature or a token stays out", function()
      local rec = support.http({ { err = { kind = "network", message = "connection refused", curl_code = 7 } } })
      local ok, err = pcall(send, { query = "sv=2022-11-02&sp=r&sig=AbCdEf0123456789%2BSASsig%3D",
        retry = { attempts = 1 } })
      rec.restore()
      assert.is_false(ok)
      assert.equal("http://127.0.0.1:9/api/x", err.url)
      assert.not_matches("sig=", tostring(err))
      assert.not_matches("AbCdEf", tostring(err))
    end)

    it("name the URL without a user:password", function()
      local rec = support.http({ { status = 404, body = "{}" } })
      local ok, err = pcall(send, { url = "http://bob:hunter2pw@127.0.0.1:9/api/x", sign = function(r)
        assert.equal("127.0.0.1:9", r.host)
      end })
      rec.restore()
      assert.is_false(ok)
      assert.equal("http://127.0.0.1:9/api/x", err.url)
      assert.not_matches("hunter2pw", tostring(err))
    end)

    it("make a URL libcurl cannot parse a usage error, not retried", function()
      local rec = support.http({ { err = { kind = "network", message = "bad URL", curl_code = 3 } } })
      local ok, err = pcall(send, { method = "POST", retry = { attempts = 5 } })
      rec.restore()
      assert.is_false(ok)
      assert.equal("usage", err.kind)
      assert.equal(1, #rec.requests)
      assert.is_falsy(err.ambiguous)
    end)

    it("report a 2xx the provider calls a failure", function()
      local rec = support.http({ { status = 200, body = '{"Status":"FAIL","Code":"X"}' } })
      local ok, err = pcall(send, { classify = function(_, b)
        if b.Status == "FAIL" then return { code = b.Code } end
      end })
      rec.restore()
      assert.is_false(ok)
      assert.equal("X", err.code)
    end)

    it("retry when the provider says so (throttling on a 400)", function()
      local rec = support.http({ { status = 400, body = '{"Code":"Throttling.User"}' }, { status = 200, body = "{}" } })
      send({ classify = function(res, b) if res.status >= 400 then return { code = b.Code, retry = true } end end })
      rec.restore()
      assert.equal(2, #rec.requests)
    end)
  end)

  describe("tracing", function()
    it("logs requests and responses with secrets removed", function()
      iso.logs.restore()
      iso.logs = support.logs("trace")
      local rec = support.http({ { status = 200, body = '{"access_token":"tok-abcdef"}' } })
      send({ method = "POST", body = "client_secret=shh-secret&x=1", headers = { authorization = "Bearer tok-abcdef" },
        sign = function(r)
          r.headers["x-ncp-apigw-signature-v2"] = "SIGVALUE123"
          r.secrets[#r.secrets + 1] = "SIGVALUE123"
        end })
      rec.restore()
      local text = iso.logs.text()
      assert.matches("http request", text)
      assert.matches("http response", text)
      assert.not_matches("tok%-abcdef", text)
      assert.not_matches("shh%-secret", text)
      assert.not_matches("SIGVALUE123", text)
    end)
  end)

  describe("create_once", function()
    it("looks up what an uncertain create made instead of creating again", function()
      local creates, lookups = 0, 0
      local res = http.create_once({
        create = function()
          creates = creates + 1
          errors.raise({ kind = "network", message = "reset", ambiguous = true })
        end,
        lookup = function() lookups = lookups + 1 return { id = "made" } end,
      })
      assert.same({ id = "made" }, res)
      assert.equal(1, creates)
      assert.equal(1, lookups)
    end)

    it("creates again when the lookup finds nothing", function()
      local creates = 0
      local res = http.create_once({
        create = function()
          creates = creates + 1
          if creates == 1 then errors.raise({ kind = "http", status = 503, message = "x", ambiguous = true }) end
          return { id = "second" }
        end,
        lookup = function() return nil end,
      })
      assert.same({ id = "second" }, res)
      assert.equal(2, creates)
    end)

    it("resolves an 'already exists' answer to a repeated create by lookup", function()
      local creates, found = 0, nil
      local res = http.create_once({
        create = function()
          creates = creates + 1
          if creates == 1 then errors.raise({ kind = "timeout", message = "t", ambiguous = true }) end
          found = { id = "late" }
          errors.raise({ kind = "api", code = "DUPLICATE_NAME", message = "dup" })
        end,
        lookup = function() return found end,
        conflict = function(e) return e.code == "DUPLICATE_NAME" end,
      })
      assert.same({ id = "late" }, res)
    end)

    it("lets a definite failure through at once", function()
      local ok, err = pcall(http.create_once, {
        create = function() errors.raise({ kind = "api", status = 400, code = "BAD", message = "bad" }) end,
        lookup = function() error("must not look up") end,
      })
      assert.is_false(ok)
      assert.equal("BAD", err.code)
    end)
  end)

  describe("parse_url", function()
    it("splits scheme, host with port, path and query", function()
      local u = http.parse_url("http://127.0.0.1:8080/api/v1/x?a=1#f")
      assert.same({ scheme = "http", host = "127.0.0.1:8080", path = "/api/v1/x", query = "a=1" }, u)
      assert.equal("/", http.parse_url("https://h").path)
      assert.is_nil(http.parse_url("/relative"))
      assert.equal("https://h.example", http.origin("HTTPS://H.example/x"))
      assert.equal("h:1", http.parse_url("http://u:pw@h:1/x").host)
      assert.equal("http://h:1/x", http.display_url("http://u:pw@h:1/x?sig=abc#f"))
    end)
  end)
end)
