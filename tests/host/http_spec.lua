-- trainctl._http, the native request{...}, against a real HTTP/1.1 server
-- on loopback (tests/support/http_server.py, started for this file).

local H = require "support"
local http = require "trainctl._http"
local cjson = require "cjson"

describe("http.request", function()
  local srv, dir

  setup(function()
    srv = H.server()
    dir = H.tmpdir()
  end)

  teardown(function()
    srv.stop()
    H.rmdir(dir)
  end)

  local function get(path, opts)
    opts = opts or {}
    opts.url = srv.url .. path
    return http.request(opts)
  end

  local function echo(opts)
    local res, err = get("/echo", opts)
    assert.is_nil(err)
    assert.equal(200, res.status)
    local doc = cjson.decode(res.body)
    doc.header = {}
    for _, kv in ipairs(doc.headers) do doc.header[kv[1]:lower()] = kv[2] end
    return doc, res
  end

  describe("status codes", function()
    for _, code in ipairs { 200, 201, 204, 301, 400, 401, 403, 404, 409, 429, 500, 502, 503 } do
      it("returns " .. code .. " as a response, not an error", function()
        local res, err = get("/status/" .. code)
        assert.is_nil(err)
        assert.equal(code, res.status)
        assert.equal(tostring(code), res.headers["x-status"])
        if code ~= 204 then assert.equal("status " .. code, res.body) end
      end)
    end
  end)

  describe("the request as the server received it", function()
    it("sends GET by default, with the path and query", function()
      local doc = echo {}
      assert.equal("GET", doc.method)
      assert.equal("/echo", doc.path)
      assert.equal("", doc.body)
      local res = get("/echo?a=1&b=two%20words")
      assert.equal("/echo?a=1&b=two%20words", cjson.decode(res.body).path)
    end)

    it("sends the method, headers and body given", function()
      local body = '{"name":"x","n":[1,2,3]}'
      local doc = echo {
        method = "PUT", body = body,
        headers = { ["Content-Type"] = "application/json", ["X-Trace-Id"] = "abc 123" },
      }
      assert.equal("PUT", doc.method)
      assert.equal(body, doc.body)
      assert.equal("application/json", doc.header["content-type"])
      assert.equal("abc 123", doc.header["x-trace-id"])
      assert.equal(tostring(#body), doc.header["content-length"])
    end)

    it("sends a binary body byte for byte", function()
      local body = {}
      for i = 0, 255 do body[#body + 1] = string.char(i) end
      body = table.concat(body):rep(100)
      local doc = echo { method = "POST", body = body }
      local crypto = require "trainctl.crypto"
      assert.equal(crypto.hex_encode(crypto.sha256(body)), doc.body_sha256)
    end)

    it("sends an empty POST with Content-Length: 0 and no Expect", function()
      local doc = echo { method = "POST" }
      assert.equal("POST", doc.method)
      assert.equal("0", doc.header["content-length"])
      assert.is_nil(doc.header["expect"])
    end)

    it("sends DELETE and PATCH as given", function()
      assert.equal("DELETE", echo({ method = "DELETE" }).method)
      local doc = echo { method = "PATCH", body = "p" }
      assert.equal("PATCH", doc.method)
      assert.equal("p", doc.body)
    end)

    it("does not wait for 100-continue before a large body", function()
      local body = ("b"):rep(2 * 1024 * 1024)
      local doc = echo { method = "POST", body = body }
      assert.equal(#body, #doc.body)
      assert.is_nil(doc.header["expect"])
    end)

    it("identifies itself unless told otherwise", function()
      assert.matches("^trainctl/", echo({}).header["user-agent"])
      assert.equal("mine/1", echo({ headers = { ["User-Agent"] = "mine/1" } }).header["user-agent"])
    end)

    it("raises on a header that would split the request", function()
      assert.has_error(function()
        get("/echo", { headers = { ["X-Bad"] = "a\r\nInjected: yes" } })
      end)
    end)

    it("answers HEAD without a body", function()
      local res = assert(get("/bytes?n=100", { method = "HEAD" }))
      assert.equal(200, res.status)
      assert.equal("", res.body)
      assert.equal("100", res.headers["content-length"])
    end)
  end)

  describe("response headers", function()
    it("lower-cases names, joins repeats and keeps the list as received", function()
      local res = assert(get("/headers"))
      assert.equal("Value", res.headers["x-mixed-case"])
      assert.is_nil(res.headers["X-Mixed-Case"])
      assert.equal("a=1, b=2", res.headers["set-cookie"])
      assert.equal("", res.headers["x-empty"])
      local cookies = {}
      for _, kv in ipairs(res.header_list) do
        assert.equal(kv[1]:lower(), kv[1])
        if kv[1] == "set-cookie" then cookies[#cookies + 1] = kv[2] end
      end
      assert.same({ "a=1", "b=2" }, cookies)
    end)
  end)

  describe("bodies", function()
    it("decodes a chunked response", function()
      local res = assert(get("/chunked?n=5"))
      assert.equal("chunked", res.headers["transfer-encoding"])
      local want = {}
      for i = 0, 4 do want[#want + 1] = ("chunk %d\n"):format(i) end
      assert.equal(table.concat(want), res.body)
    end)

    it("reads a large body whole", function()
      local res = assert(get("/bytes?n=3000000&chunked=1"))
      assert.equal(3000000, #res.body)
      assert.equal(("0123456789"):rep(3), res.body:sub(1, 30))
    end)
  end)

  describe("redirects", function()
    it("are returned, not followed, by default", function()
      local res = assert(get("/redirect"))
      assert.equal(302, res.status)
      assert.equal("/echo?from=redirect", res.headers["location"])
      assert.equal("redirecting", res.body)
    end)

    it("are followed with follow_redirects = true", function()
      local res = assert(get("/redirect", { follow_redirects = true }))
      assert.equal(200, res.status)
      assert.equal("/echo?from=redirect", cjson.decode(res.body).path)
    end)
  end)

  describe("failures", function()
    it("times out with kind 'timeout' when no answer comes", function()
      local res, err = get("/hang", { timeout = 0.3 })
      assert.is_nil(res)
      assert.equal("timeout", err.kind)
      assert.is_string(err.message)
    end)

    it("times out in the middle of a body", function()
      local res, err = get("/hang-body", { timeout = 0.3 })
      assert.is_nil(res)
      assert.equal("timeout", err.kind)
    end)

    it("reports a refused connection as kind 'network'", function()
      local res, err = http.request { url = srv.closed_url .. "/x" }
      assert.is_nil(res)
      assert.equal("network", err.kind)
      assert.is_number(err.curl_code)
      assert.matches("127.0.0.1", err.message, 1, true)
    end)

    it("never puts the query string in an error message", function()
      local secret = "Signature=s3cr3tvalue&token=t0k3n"
      local _, refused = http.request { url = srv.closed_url .. "/path?" .. secret }
      local _, slow = get("/hang?" .. secret, { timeout = 0.2 })
      local _, big = get("/bytes?n=5000&" .. secret, { max_body = 10 })
      for _, err in ipairs { refused, slow, big } do
        assert.is_table(err)
        assert.not_matches("s3cr3t", err.message, 1, true)
        assert.not_matches("t0k3n", err.message, 1, true)
        assert.not_matches("Signature", err.message, 1, true)
      end
      assert.matches("/path", refused.message, 1, true)
    end)

    it("never puts the user:password of a URL in an error message", function()
      local url = srv.closed_url:gsub("//", "//alice:pa55word@") .. "/p"
      local _, err = http.request { url = url }
      assert.equal("network", err.kind)
      assert.not_matches("pa55word", err.message, 1, true)
      assert.not_matches("alice", err.message, 1, true)
      assert.matches("127.0.0.1", err.message, 1, true)
    end)

    it("refuses a body over max_body with kind 'too_large'", function()
      local ok = assert(get("/bytes?n=1000", { max_body = 1000 }))
      assert.equal(1000, #ok.body)
      for _, path in ipairs { "/bytes?n=1001", "/bytes?n=100000&chunked=1" } do
        local res, err = get(path, { max_body = 1000 })
        assert.is_nil(res)
        assert.equal("too_large", err.kind)
      end
    end)

    it("still works after a failed request on the same server", function()
      get("/hang", { timeout = 0.1 })
      local res = assert(get("/status/200"))
      assert.equal(200, res.status)
    end)

    it("raises on a negative or NaN timeout, and takes a huge one as no limit", function()
      assert.has_error(function() get("/status/200", { timeout = -1 }) end)
      assert.has_error(function() get("/status/200", { timeout = 0 / 0 }) end)
      assert.has_error(function() get("/status/200", { max_body = -5 }) end)
      assert.equal(200, assert(get("/status/200", { timeout = math.huge, max_body = 1e300 })).status)
    end)

    it("rejects a URL scheme other than http and https", function()
      local res, err = http.request { url = "file:///etc/passwd" }
      assert.is_nil(res)
      assert.is_string(err.kind)
    end)
  end)

  describe("bad options", function()
    it("raise a Lua error, and the run still ends cleanly", function()
      for _, opts in ipairs { "{}", "{url = 12345}", "{url = 'http://x/', method = {}}",
        "{url = 'http://x/', headers = 'h'}", "{url = 'http://x/', timeout = 'soon'}" } do
        local r = H.run { "-e", ("local ok, err = pcall(require('trainctl._http').request, %s) "
          .. "print(ok, type(err)) collectgarbage()"):format(opts) }
        assert.equal(0, r.code, opts .. ": " .. r.err)
        assert.equal("false\tstring\n", r.out, opts)
      end
    end)
  end)

  describe("in a trainctl run", function()
    local function run_request(url, env)
      return H.run({ "-e", ("local res, err = require('trainctl._http').request{url = %q} "
        .. "print(res and res.status, res and res.body or err.kind)"):format(url) }, { env = env })
    end

    it("goes through the proxy of http_proxy, except for no_proxy hosts", function()
      local r = run_request("http://service.invalid/echo?via=proxy", { http_proxy = srv.url })
      assert.equal(0, r.code, r.err)
      local status, body = r.out:match("^(%d+)\t(.*)\n$")
      assert.equal("200", status)
      assert.equal("http://service.invalid/echo?via=proxy", cjson.decode(body).path)
      local direct = run_request("http://service.invalid/echo",
        { http_proxy = srv.url, no_proxy = "service.invalid" })
      assert.matches("^nil\tnetwork", direct.out)
    end)

    it("a request that gets no answer is interrupted by SIGINT: exit 130", function()
      local p = H.spawn(H.quote(H.TRAINCTL) .. " -e " .. H.quote(("print('ready') io.stdout:flush() "
        .. "require('trainctl._http').request{url = %q}"):format(srv.url .. "/hang")))
      assert.equal("ready", p:line())
      local sys = require "trainctl.sys"
      local t0 = sys.clock()
      p:kill("INT")
      assert.equal(130, (p:wait()))
      assert.is_true(sys.clock() - t0 < 5)
    end)
  end)

  describe("output = path", function()
    local function tmp_files()
      local n = 0
      for _, name in ipairs(H.ls(dir)) do
        if name:match("%.trainctl%-tmp%.") then n = n + 1 end
      end
      return n
    end

    it("streams a successful body to the file", function()
      local path = dir .. "/ok.bin"
      local res = assert(get("/bytes?n=200000&chunked=1", { output = path }))
      assert.equal(200, res.status)
      assert.equal(path, res.output)
      assert.equal(200000, res.size)
      assert.equal("", res.body)
      local data = H.read(path)
      assert.equal(200000, #data)
      assert.equal(("0123456789"):rep(10), data:sub(1, 100))
      assert.equal(0, tmp_files())
      -- the mode of any new file (as with curl -o), not mkstemp's 0600
      local sys = require("trainctl.sys")
      local plain = dir .. "/plain"
      assert(io.open(plain, "w")):close()
      assert.equal(sys.stat(plain).mode, sys.stat(path).mode)
    end)

    it("creates no file for an error status, and returns its body", function()
      local path = dir .. "/missing.bin"
      local res = assert(get("/status/404", { output = path }))
      assert.equal(404, res.status)
      assert.equal("status 404", res.body)
      assert.is_nil(res.output)
      assert.is_nil(H.read(path))
      assert.equal(0, tmp_files())
    end)

    it("creates no file and leaves no temporary file on a failure", function()
      local path = dir .. "/failed.bin"
      local res, err = get("/hang-body", { output = path, timeout = 0.3 })
      assert.is_nil(res)
      assert.equal("timeout", err.kind)
      assert.is_nil(H.read(path))
      local _, err2 = get("/bytes?n=5000", { output = path, max_body = 100 })
      assert.equal("too_large", err2.kind)
      assert.is_nil(H.read(path))
      assert.equal(0, tmp_files())
    end)

    it("keeps the previous file when a download fails", function()
      local path = dir .. "/keep.bin"
      H.write(path, "previous")
      get("/hang-body", { output = path, timeout = 0.2 })
      assert.equal("previous", H.read(path))
      assert.equal(0, tmp_files())
    end)

    it("leaves nothing beside the file when killed in the middle of a download", function()
      if not H.tmpfile_works(dir) then
        pending("files without a name (O_TMPFILE) cannot be made here")
        return
      end
      local path = dir .. "/killed.bin"
      H.write(path, "previous")
      local script = ("require('trainctl._http').request({ url = %q, output = %q })"):format(srv.url .. "/hang-body", path)
      local proc = H.spawn(("exec %s -e %s"):format(H.quote(H.TRAINCTL), H.quote(script)))
      H.poll(function() return H.unnamed_open(proc.pid, dir) end, 20, "the download to be written")
      proc:kill("KILL")
      assert.equal(137, (proc:wait()))
      assert.equal("previous", H.read(path))
      assert.equal(0, tmp_files())
    end)

    it("fails with nil, err naming the file when it cannot be created", function()
      local path = dir .. "/no/such/dir/file.bin"
      local res, err = get("/bytes?n=10", { output = path })
      assert.is_nil(res)
      assert.matches(path, err.message, 1, true)
    end)
  end)

  describe("connections", function()
    local function connections()
      return tonumber(assert(get("/connections")).body)
    end

    it("are reused: 100 sequential requests use one", function()
      local before = connections()
      for i = 1, 100 do
        local res = assert(get("/echo?i=" .. i))
        assert.equal(200, res.status)
      end
      assert.equal(before, connections())
    end)

    it("survive the module being loaded again and collected", function()
      local before = connections()
      package.loaded["trainctl._http"] = nil
      local again = require("trainctl._http")
      collectgarbage()
      collectgarbage()
      for i = 1, 10 do
        assert.equal(200, assert(again.request({ url = srv.url .. "/echo?i=" .. i })).status)
      end
      assert.equal(before, connections())
    end)

    it("are reused across methods with bodies", function()
      local before = connections()
      for i = 1, 20 do
        assert(get("/echo", { method = "POST", body = ("x"):rep(i * 100) }))
      end
      assert.equal(before, connections())
    end)

    it("are replaced when the server closes one", function()
      assert.equal("closing", assert(get("/close")).body)
      local res = assert(get("/status/200"))
      assert.equal(200, res.status)
    end)
  end)
end)
