-- trainctl._http over TLS, against a loopback HTTPS server whose
-- certificate is signed by a CA made for this run with `openssl req`.

local H = require "support"
local http = require "trainctl._http"

local function openssl(dir, args)
  local r = H.sh("openssl " .. args, { cwd = dir })
  assert(r.code == 0, "openssl " .. args .. ": " .. (r.err or ""))
end

-- A CA, and a server certificate it signs for 127.0.0.1 and localhost.
local function make_pki(dir)
  local ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
  openssl(dir, "req -x509 " .. ec .. " -keyout ca.key -out ca.pem -days 2"
    .. " -subj '/CN=trainctl test CA'")
  openssl(dir, "req " .. ec .. " -keyout server.key -out server.csr -subj '/CN=localhost'")
  H.write(dir .. "/ext.cnf",
    "basicConstraints=CA:FALSE\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n")
  openssl(dir, "x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial"
    .. " -out server.pem -days 2 -extfile ext.cnf")
end

describe("http.request over TLS", function()
  local srv, dir

  setup(function()
    dir = H.tmpdir()
    make_pki(dir)
    srv = H.server({ args = { "--tls", dir .. "/server.pem", dir .. "/server.key" }, https = true })
  end)

  teardown(function()
    srv.stop()
    H.rmdir(dir)
  end)

  it("verifies the server against ca_file", function()
    local res, err = http.request { url = srv.url .. "/status/200", ca_file = dir .. "/ca.pem" }
    assert.is_nil(err)
    assert.equal(200, res.status)
    assert.equal("status 200", res.body)
  end)

  it("verifies the host name too (localhost is in the certificate)", function()
    local url = ("https://localhost:%d/status/201"):format(srv.port)
    local res = assert(http.request { url = url, ca_file = dir .. "/ca.pem" })
    assert.equal(201, res.status)
  end)

  it("fails cleanly with kind 'tls' when the CA is not trusted", function()
    local res, err = http.request { url = srv.url .. "/status/200?sig=hidden" }
    assert.is_nil(res)
    assert.equal("tls", err.kind)
    assert.is_number(err.curl_code)
    assert.matches("127.0.0.1", err.message, 1, true)
    assert.not_matches("hidden", err.message, 1, true)
  end)

  it("fails with kind 'tls' when ca_file cannot be read", function()
    local res, err = http.request { url = srv.url .. "/status/200", ca_file = dir .. "/none.pem" }
    assert.is_nil(res)
    assert.equal("tls", err.kind)
  end)

  it("skips verification only with insecure = true", function()
    local res = assert(http.request { url = srv.url .. "/status/200", insecure = true })
    assert.equal(200, res.status)
    local again, err = http.request { url = srv.url .. "/status/200" }
    assert.is_nil(again)
    assert.equal("tls", err.kind)
  end)

  it("reuses the TLS connection", function()
    local function connections()
      local res = assert(http.request { url = srv.url .. "/connections", ca_file = dir .. "/ca.pem" })
      return tonumber(res.body)
    end
    local before = connections()
    for _ = 1, 20 do
      assert(http.request { url = srv.url .. "/echo", ca_file = dir .. "/ca.pem" })
    end
    assert.equal(before, connections())
  end)
end)
