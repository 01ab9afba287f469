-- cloudsim over HTTPS with a certificate for localhost from a CA made for
-- this test: the right CA passes; a wrong CA, a wrong host name or no CA
-- at all is a tls error (exit 1); insecure = true turns verification off
-- only when given as true, and says so in the log.
local support = require("support")
local cloudsim = require("support.cloudsim")
local aitems = require("trainctl.aitems")
local errors = require("trainctl.errors")
local log = require("trainctl.log")

describe("TLS", function()
  local sim, certs, dir, restore

  setup(function()
    dir = support.tmpdir()
    certs = cloudsim.certificates(dir)
    sim = cloudsim.start({ speed = 1200, tls = certs, host = "localhost" })
  end)
  teardown(function()
    if restore then restore() end
    sim:stop()
    support.rmdir(dir)
  end)

  local function run(args, env)
    return sim:run(args, { env = env })
  end

  describe("with the right CA", function()
    it("from TRAINCTL_CA_FILE, every provider answers (Entra ID token included)", function()
      local env = { TRAINCTL_CA_FILE = certs.ca }
      local code, out, err = run({ "call", "aitems", "list_services" }, env)
      assert.equal(0, code, err)
      assert.matches('"services"', out)
      code, out, err = run({ "call", "opensearch", "list_function_instances", "app_group_identity=app",
        "function_name=ctr" }, env)
      assert.equal(0, code, err)
      assert.matches('"TotalCount"', out)
      env.AZURE_LANGUAGE_KEY = false
      code, out, err = run({ "call", "azure_language", "list_projects" }, env)
      assert.equal(0, code, err)
      assert.matches('"value"', out)
      assert.equal(1, #sim:requests({ provider = "entra" }))
    end)

    it("from SSL_CERT_FILE or CURL_CA_BUNDLE, as the curl tool reads them", function()
      for _, var in ipairs({ "SSL_CERT_FILE", "CURL_CA_BUNDLE" }) do
        local code, _, err = run({ "call", "aitems", "list_services" }, { [var] = certs.ca })
        assert.equal(0, code, var .. ": " .. err)
      end
    end)

    it("runs an example end to end", function()
      local code, out, err = run({ "--state", sim.dir .. "/tls.json", "examples/opensearch_ctr.lua", "ctr_tls" },
        { TRAINCTL_CA_FILE = certs.ca })
      assert.equal(0, code, err)
      assert.matches('"auc"', out)
    end)

    it("from the client's ca_file", function()
      restore = sim:use()
      local ai = aitems.client({ ca_file = certs.ca })
      assert.is_table(ai:list_services().services)
    end)
  end)

  describe("fails with a tls error and exit 1", function()
    local function refused(env, endpoint)
      env = env or {}
      env.TRAINCTL_AITEMS_ENDPOINT = endpoint
      local code, out, err = run({ "call", "aitems", "list_services" }, env)
      assert.equal(1, code, err)
      assert.equal("", out)
      assert.matches("^trainctl: aitems: tls error: .* %[GET https://[^%]]*/api/v1/services%]\n$", err)
      return err
    end

    it("when the server's certificate comes from another CA", function()
      local err = refused({ TRAINCTL_CA_FILE = certs.other_ca })
      assert.matches("certificate", err)
    end)

    it("when no CA is given (the system's do not know the test CA)", function()
      refused({})
    end)

    it("when the host name is not the certificate's", function()
      local err = refused({ TRAINCTL_CA_FILE = certs.ca },
        ("https://127.0.0.1:%s/api/v1"):format(sim.port))
      assert.matches("target host name '127%.0%.0%.1'", err)
    end)

    it("when the CA file cannot be read", function()
      refused({ TRAINCTL_CA_FILE = dir .. "/no-such-ca.pem" })
    end)

    it("and the error object says tls, without retrying", function()
      restore = sim:use()
      local before = #sim:requests()
      local ai = aitems.client({ ca_file = certs.other_ca })
      local ok, err = pcall(ai.list_services, ai)
      assert.is_false(ok)
      assert.is_true(errors.is(err, "tls"))
      assert.equal(1, err.attempts)
      assert.equal(before, #sim:requests())
    end)
  end)

  describe("insecure", function()
    local lines
    before_each(function()
      restore = sim:use()
      lines = {}
      log.set_level("info")
      log.set_sink(function(s) lines[#lines + 1] = s end)
    end)
    after_each(function()
      log.set_sink(nil)
      log.set_level("error")
    end)

    it("= true skips verification and warns once per origin", function()
      local ai = aitems.client({ ca_file = certs.other_ca, insecure = true })
      assert.is_table(ai:list_services().services)
      ai:list_services()
      local text = table.concat(lines)
      assert.matches("warn  TLS certificate verification is off for https://localhost:" .. sim.port, text)
      local _, warnings = text:gsub("verification is off", "")
      assert.equal(1, warnings)
    end)

    it("given as anything but true verifies as usual, and says nothing", function()
      for _, v in ipairs({ "true", 1, "false" }) do
        local ai = aitems.client({ ca_file = certs.other_ca, insecure = v })
        local ok, err = pcall(ai.list_services, ai)
        assert.is_false(ok)
        assert.equal("tls", err.kind)
      end
      assert.not_matches("verification is off", table.concat(lines))
    end)
  end)
end)
