-- Settings and credentials read from the environment and the credentials
-- file: a wrong one is a one-line usage error (exit 2) naming the setting,
-- never its secret, found before anything reaches a cloud; and no secret
-- the run knows of is printed, whoever prints it.
local support = require("support")
local cloudsim = require("support.cloudsim")

-- one_line(err): the whole of stderr is one "trainctl: usage error" line.
local function one_line(err)
  assert.matches("^trainctl: [^\n]*usage error: [^\n]+\n$", err)
  assert.not_matches("traceback", err)
end

describe("settings", function()
  local sim

  setup(function() sim = cloudsim.start() end)
  teardown(function() sim:stop() end)

  describe("the command line", function()
    local key = cloudsim.CREDENTIALS.NCLOUD_SECRET_KEY

    it("names an unknown option without its value", function()
      local code, out, err = sim:run({ "--secret-key=" .. key, "-e", "print(1)" })
      assert.equal(2, code)
      assert.equal("trainctl: unrecognized option '--secret-key'\n", err:match("^[^\n]*\n"))
      assert.not_matches(key, out .. err, 1, true)
    end)

    it("redacts a Lua warning (-W), pieces and all, from any coroutine", function()
      local code, _, err = sim:run({ "-W", "-e", 'warn("k=", os.getenv("NCLOUD_SECRET_KEY"))', "-e",
        'coroutine.wrap(function() warn("in a coroutine " .. os.getenv("NCLOUD_SECRET_KEY")) end)()' })
      assert.equal(0, code)
      assert.equal("Lua warning: k=[REDACTED]\nLua warning: in a coroutine [REDACTED]\n", err)
    end)

    it("redacts a key given as an option's value, in text as in JSON", function()
      for _, fmt in ipairs({ "text", "json" }) do
        local code, out, err = sim:run({ "--log-format", fmt, "--timeout", key, "-e", "print(1)" })
        assert.equal(2, code)
        assert.matches("invalid duration", err)
        assert.not_matches(key, out .. err, 1, true)
      end
    end)
  end)

  describe("a run setting", function()
    local BAD = {
      { "TRAINCTL_OUTAGE_BUDGET", "2hours" }, { "TRAINCTL_POLL_INTERVAL", "0" },
      { "TRAINCTL_POLL_INTERVAL", "-5" }, { "TRAINCTL_POLL_INTERVAL", "nan" },
      { "TRAINCTL_POLL_INTERVAL", "1e9" }, { "TRAINCTL_POLL_INTERVAL", "abc" },
      { "TRAINCTL_LOG_LEVEL", "verbose" }, { "TRAINCTL_LOG_FORMAT", "xml" }, { "TRAINCTL_LOG_FORMAT", "JSON" },
      { "TRAINCTL_REQUEST_TIMEOUT", "0" }, { "TRAINCTL_REQUEST_TIMEOUT", "soon" },
      { "TRAINCTL_REQUEST_TIMEOUT", "25h" },
    }

    it("that is wrong stops the run before the script's first line, naming the variable", function()
      local marker = sim.dir .. "/script-ran"
      for _, bad in ipairs(BAD) do
        local code, out, err = sim:run({ "-e", ("io.open(%q, 'w'):close() print('ran')"):format(marker) },
          { env = { [bad[1]] = bad[2] } })
        assert.equal(2, code, bad[1] .. "=" .. bad[2])
        one_line(err)
        assert.matches(bad[1], err, 1, true)
        assert.equal("", out)
        assert.is_nil(support.read(marker), bad[1] .. "=" .. bad[2])
      end
    end)

    it("that is wrong stops a call before any request: no training started", function()
      local before = #sim:requests()
      for _, bad in ipairs(BAD) do
        local code, _, err = sim:run({ "call", "aitems", "create_service", "name=settings" },
          { env = { [bad[1]] = bad[2] } })
        assert.equal(2, code, err)
        one_line(err)
      end
      assert.equal(before, #sim:requests())
    end)

    it("from the credentials file is checked at start-up too", function()
      local dir = sim.dir .. "/config/trainctl"
      os.execute("mkdir -p " .. support.quote(dir))
      support.write(dir .. "/credentials", "[default]\nTRAINCTL_OUTAGE_BUDGET = soon\n")
      os.execute("chmod 600 " .. support.quote(dir .. "/credentials"))
      finally(function() os.remove(dir .. "/credentials") end)
      local code, out, err = sim:run({ "-e", "print('ran')" })
      assert.equal(2, code)
      assert.equal("", out)
      assert.matches("TRAINCTL_OUTAGE_BUDGET: invalid duration 'soon'", err)
    end)

    it("that is wrong leaves trainctl config, which shows the settings, and completion working", function()
      local env = { env = { TRAINCTL_POLL_INTERVAL = "0" } }
      local code, out, err = sim:run({ "config" }, env)
      assert.equal(0, code, err)
      assert.matches("aitems", out)
      code, out, err = sim:run({ "completion", "bash" }, env)
      assert.equal(0, code, err)
      assert.matches("complete ", out)
      -- and the rest still refuse it
      code = sim:run({ "-e", "print(1)" }, env)
      assert.equal(2, code)
    end)

    it("TRAINCTL_REQUEST_TIMEOUT bounds each request of the clouds' clients, from the environment or the profile",
      function()
        -- The emulator holds the answer 10 s; the default (300 s) would wait for it.
        local function hold()
          sim:faults({ { kind = "slow", when = "before", delay = 10, match = { operation = "ListServices" } } })
        end
        local dir = sim.dir .. "/config/trainctl"
        finally(function()
          sim:no_faults()
          os.remove(dir .. "/credentials")
        end)
        hold()
        local script = "local c = require('trainctl.aitems').client() "
          .. "local ok, e = pcall(c.list_services, c, { retry = false }) print(ok, type(e) == 'table' and e.kind)"
        local code, out, err = sim:run({ "-e", script }, { env = { TRAINCTL_REQUEST_TIMEOUT = "1s" } })
        assert.equal(0, code, err)
        assert.equal("false\ttimeout\n", out)
        os.execute("mkdir -p " .. support.quote(dir))
        support.write(dir .. "/credentials", "[default]\nTRAINCTL_REQUEST_TIMEOUT = 1\n")
        os.execute("chmod 600 " .. support.quote(dir .. "/credentials"))
        hold()
        code, out, err = sim:run({ "-e", script })
        assert.equal(0, code, err)
        assert.equal("false\ttimeout\n", out)
        -- a client's own timeout wins
        hold()
        code, out, err = sim:run({ "-e", (script:gsub("client%(%)", "client({ timeout = 30 })")) })
        assert.equal(0, code, err)
        assert.equal("true\tnil\n", out)
      end)

    it("that is right runs", function()
      local code, out, err = sim:run({ "-e", "print('ran')" }, { env = { TRAINCTL_POLL_INTERVAL = "0.5",
        TRAINCTL_OUTAGE_BUDGET = "2h", TRAINCTL_LOG_LEVEL = "debug", TRAINCTL_LOG_FORMAT = "json" } })
      assert.equal(0, code, err)
      assert.equal("ran\n", out)
    end)
  end)

  describe("an endpoint", function()
    it("with a user:password is refused before any request, the password shown nowhere", function()
      local before = #sim:requests()
      local url = sim.url:gsub("://", "://bob:hunter2pw@") .. "/api/v1"
      local env = { TRAINCTL_AITEMS_ENDPOINT = url }
      local code, out, err = sim:run({ "call", "aitems", "get_service", "service_id=nope" }, { env = env })
      assert.equal(2, code)
      one_line(err)
      assert.not_matches("hunter2pw", out .. err)
      assert.matches("TRAINCTL_AITEMS_ENDPOINT", err)
      assert.equal(before, #sim:requests())
      code, out, err = sim:run({ "config" }, { env = env })
      assert.equal(0, code, err)
      assert.not_matches("hunter2pw", out .. err)
    end)

    it("that libcurl could not use is a usage error, not a network error retried", function()
      local before = #sim:requests()
      for _, url in ipairs({ "http://a b/api/v1", sim.url .. "0000/api/v1", "http://" }) do
        local code, _, err = sim:run({ "call", "aitems", "create_service", "name=x" },
          { env = { TRAINCTL_AITEMS_ENDPOINT = url } })
        assert.equal(2, code, err)
        one_line(err)
        assert.matches("TRAINCTL_AITEMS_ENDPOINT", err)
        assert.not_matches("retrying", err)
        assert.not_matches("ambiguous", err)
      end
      assert.equal(before, #sim:requests())
    end)
  end)
end)
