-- What a run prints on stderr holds up unattended: secrets are redacted
-- before any text is cut (trace bodies, error snippets), secrets the run
-- knows of (environment, credentials file, tokens) never appear even in
-- errors a user's script raises and their tracebacks, text from a server
-- cannot forge a line or move the cursor, every line of --log-format json
-- is one JSON object (the final error, retries and progress included),
-- and an authentication error says where the refused credential came from.
--
-- Hostile answers come from tests/reliability/lib/hostile_server.py, the
-- rest from cloudsim.
local support = require("support")
local cloudsim = require("support.cloudsim")
local http = require("trainctl.http")
local json = require("trainctl.json")
local log = require("trainctl.log")

local SECRET = cloudsim.CREDENTIALS.NCLOUD_SECRET_KEY

-- prefixes(s) -> every prefix of s long enough to give most of it away.
local function prefixes(s)
  local out = {}
  for n = 8, #s do out[#out + 1] = s:sub(1, n) end
  return out
end

-- shows(text, s) -> the longest prefix of s (8 bytes or more) found in text.
local function shows(text, s)
  local found
  for _, p in ipairs(prefixes(s)) do
    if text:find(p, 1, true) then found = p end
  end
  return found
end

local function lines(text)
  local out = {}
  for line in text:gmatch("[^\n]+") do out[#out + 1] = line end
  return out
end

-- json_lines(text) -> the decoded lines; fails on a line that is not one
-- JSON object.
local function json_lines(text)
  local out = {}
  for _, line in ipairs(lines(text)) do
    local v = json.decode(line)
    assert(type(v) == "table", "not a JSON object: " .. line)
    out[#out + 1] = v
  end
  return out
end

-- Nothing that moves the cursor, rings, or starts a line: no control
-- character but the newline that ends each line, no C1 control.
local function assert_inert(text)
  local body = text:gsub("\n", "")
  assert.is_nil(body:find("[%z\1-\31\127]"), "a control character in: " .. text)
  assert.is_nil(body:find("\194[\128-\159]"), "a C1 control in: " .. text)
end

describe("logging", function()
  local sim, hostile, hostile_url

  setup(function()
    sim = cloudsim.start({ speed = 1200 })
    hostile = support.server({ script = "tests/reliability/lib/hostile_server.py", args = { SECRET } })
    hostile_url = hostile.url
  end)
  teardown(function()
    hostile.stop()
    sim:stop()
  end)

  -- hostile_run(path, args) -> status, stdout, stderr of trainctl with its
  -- AiTEMS endpoint at path on the hostile server.
  local function hostile_run(path, args)
    return sim:run(args, { env = { TRAINCTL_AITEMS_ENDPOINT = hostile_url .. path } })
  end

  describe("redaction before truncation", function()
    local captured
    before_each(function()
      log._reset()
      captured = {}
      log.set_level("trace")
      log.set_sink(function(s) captured[#captured + 1] = s end)
      log.add_secret(SECRET)
    end)
    after_each(function() log._reset() end)

    it("a trace body cut at 4096 bytes shows no part of a key that straddles the cut", function()
      -- Every position where the key crosses byte 4096 of the body.
      for at = 4097 - #SECRET, 4095 do
        local body = http.send({ provider = "test", method = "GET", retry = false,
          url = ("%s/pad/%d/8192"):format(hostile_url, at) })
        assert.equal(8192 - 10, #body.pad)
      end
      local text = table.concat(captured)
      assert.matches("(8192 bytes)", text, 1, true)
      assert.is_nil(shows(text, SECRET))
      assert.matches("[REDACTED]", text, 1, true)
    end)

    it("the snippet of an error body cut at 200 bytes shows no part of a key that straddles the cut", function()
      for at = 201 - #SECRET, 199 do
        local ok, e = pcall(http.send, { provider = "test", method = "GET", retry = false,
          url = ("%s/html/%d"):format(hostile_url, at) })
        assert.is_false(ok)
        assert.equal(400, e.status)
        assert.is_nil(shows(tostring(e), SECRET), tostring(e))
        assert.is_nil(shows(e.message, SECRET))
      end
    end)

    it("a secret-named value cut short, or longer than the cut, is redacted all the same", function()
      local token = ("t"):rep(10000)
      local clipped = log.clip(('{"access_token":"%s","expires_in":3599}'):format(token), 4096)
      assert.equal('{"access_token":"[REDACTED]","expires_in":3599}', clipped)
      clipped = log.clip(('{"pad":"%s","client_secret":"%s"}'):format(("x"):rep(4000), token), 4096)
      assert.is_nil(clipped:find("tttttttt", 1, true))
      assert.matches('"client_secret":"[REDACTED]', clipped, 1, true)
    end)

    it("trainctl call at --log-level trace prints the padded answer without the key", function()
      local code, _, err = hostile_run(("/pad/%d/8192"):format(4096 - #SECRET // 2),
        { "--log-level", "trace", "call", "aitems", "list_schemas" })
      assert.equal(0, code, err)
      assert.matches("http response", err, 1, true)
      assert.is_nil(shows(err, SECRET))
    end)
  end)

  describe("secrets a run knows of", function()
    it("never appear in an error a user's script raises, nor in its traceback", function()
      local code, _, err = sim:run({ "-e", 'error(os.getenv("NCLOUD_SECRET_KEY"))' })
      assert.equal(1, code)
      assert.matches("^trainctl: %(command line%):1: %[REDACTED%]\nstack traceback:\n", err)
      assert.same({}, cloudsim.leaks(err))
      -- An error object whose __tostring quotes every credential, at
      -- --log-level debug (tracebacks shown) and in JSON.
      local script = [[
        local all = {}
        for _, v in ipairs({ "NCLOUD_SECRET_KEY", "NCLOUD_ACCESS_KEY", "ALIBABA_CLOUD_ACCESS_KEY_ID",
          "ALIBABA_CLOUD_ACCESS_KEY_SECRET", "AZURE_LANGUAGE_KEY", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET" }) do
          all[#all + 1] = os.getenv(v)
        end
        local function deep(n) if n == 0 then error(setmetatable({}, { __tostring = function()
          return table.concat(all, " ") end })) end deep(n - 1) end
        deep(3)
      ]]
      for _, args in ipairs({ { "--log-level", "debug", "-e", script }, { "--log-format", "json", "-e", script } }) do
        code, _, err = sim:run(args)
        assert.equal(1, code)
        assert.same({}, cloudsim.leaks(err))
        -- A key id keeps its first four characters, to tell keys apart.
        assert.matches("clou****", err, 1, true)
      end
    end)

    it("never appear in a user's log line or in a task's error nobody joined", function()
      local script = sim.dir .. "/lost.lua"
      support.write(script, [[
        local log = require("trainctl.log")
        log.warn("my key is " .. os.getenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET"))
        require("trainctl.task").spawn(function() error("lost " .. os.getenv("AZURE_CLIENT_SECRET")) end)
      ]])
      local code, _, err = sim:run({ script })
      assert.equal(1, code)
      assert.matches("my key is [REDACTED]", err, 1, true)
      assert.matches("error in a task nobody joined: ", err, 1, true)
      assert.same({}, cloudsim.leaks(err))
    end)

    it("in the credentials file are covered, used or not", function()
      local dir = sim.dir .. "/config/trainctl"
      assert(os.execute("mkdir -p " .. support.quote(dir)))
      support.write(dir .. "/credentials", "[other]\nNCLOUD_SECRET_KEY = profile-only-secret-value\n")
      assert(os.execute("chmod 600 " .. support.quote(dir .. "/credentials")))
      finally(function() os.remove(dir .. "/credentials") end)
      local code, _, err = sim:run({ "-e", [[
        local f = assert(io.open(os.getenv("XDG_CONFIG_HOME") .. "/trainctl/credentials"))
        error(f:read("a"))
      ]] })
      assert.equal(1, code)
      assert.matches("NCLOUD_SECRET_KEY = [REDACTED]", err, 1, true)
      assert.is_nil(err:find("profile-only-secret-value", 1, true))
    end)

    it("learned at run time (an Entra bearer token) are covered", function()
      local code, _, err = sim:run({ "-e", [[
        local az = require("trainctl.azure_language").client({ auth = "entra" })
        error("token " .. az._tokens.get())
      ]] }, { env = { AZURE_LANGUAGE_KEY = false } })
      assert.equal(1, code)
      assert.matches("token [REDACTED]", err, 1, true)
      local tokens = {}
      for token in pairs(sim:state().providers.entra.tokens or {}) do tokens[#tokens + 1] = token end
      assert.is_true(#tokens > 0)
      assert.same({}, cloudsim.leaks(err, tokens))
    end)
  end)

  describe("text from a server", function()
    it("is escaped in the final error: one line, no forged line, nothing that moves the cursor", function()
      local code, out, err = hostile_run("/forge", { "call", "aitems", "list_schemas" })
      assert.equal(1, code)
      assert.equal("", out)
      assert.equal(1, #lines(err))
      assert_inert(err)
      assert.matches("Bad request\\n2026-01-01T00:00:00Z info  all trainings succeeded\\x1b[2J\\x1b[1A\\r", err, 1, true)
      assert.matches("(HTTP 400, 300\\x1b[31m\\nFORGED)", err, 1, true)
      assert.matches("request id req\\x1b[2Jid", err, 1, true)
      assert.matches("\\u009b31m", err, 1, true)
    end)

    it("is escaped in log lines and their fields", function()
      local code, _, err = hostile_run("/forge", { "--log-level", "debug", "-e", [[
        local log = require("trainctl.log")
        local ok, e = pcall(function() return require("trainctl.aitems").client():list_schemas() end)
        log.warn(tostring(e), { code = e.code, message = e.message })
      ]] })
      assert.equal(0, code, err)
      assert_inert(err)
      for _, line in ipairs(lines(err)) do
        assert.matches("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%dZ %a+ ", line)
      end
      assert.matches('code="300\\x1b[31m\\nFORGED"', err, 1, true)
    end)

    it("keeps its text in JSON lines, escaped by JSON", function()
      local code, _, err = hostile_run("/forge", { "--log-format", "json", "call", "aitems", "list_schemas" })
      assert.equal(1, code)
      assert_inert(err)
      local recs = json_lines(err)
      assert.equal(1, #recs)
      assert.matches("Bad request\n2026-01-01T00:00:00Z info", recs[1].msg, 1, true)
      assert.equal("300\27[31m\nFORGED", recs[1].code)
    end)
  end)

  describe("--log-format json", function()
    it("makes the final error one object with its kind, code, status, provider, request id and exit status", function()
      local code, _, err = sim:run({ "--log-format", "json", "call", "aitems", "get_service", "service_id=nope" })
      assert.equal(1, code)
      local recs = json_lines(err)
      assert.equal(1, #recs)
      local e = recs[1]
      assert.equal("error", e.level)
      assert.equal("api", e.kind)
      assert.equal(404, e.status)
      assert.equal("aitems", e.provider)
      assert.is_string(e.code)
      assert.is_string(e.request_id)
      assert.equal(1, e.exit_status)
      assert.matches("^aitems: api error %(HTTP 404", e.msg)
      assert.is_nil(e.traceback)
    end)

    it("gives retry and progress lines their own fields", function()
      sim:faults({ { kind = "503", count = 1, retry_after = 1.5, match = { provider = "opensearch" } } })
      local code, _, err = sim:run({ "--log-format", "json", "--state", sim.dir .. "/json.json",
        "examples/opensearch_ctr.lua", "jsonlines" })
      assert.equal(0, code, err)
      local retries, running, succeeded = {}, {}, {}
      for _, r in ipairs(json_lines(err)) do
        assert.is_string(r.time)
        assert.is_string(r.level)
        if r.attempt then retries[#retries + 1] = r end
        if r.job and r.state == "running" then running[#running + 1] = r end
        if r.job and r.state == "succeeded" then succeeded[#succeeded + 1] = r end
      end
      assert.equal(1, #retries)
      local r = retries[1]
      assert.same({ "warn", "opensearch", 503, 2, 5 }, { r.level, r.provider, r.status, r.attempt, r.attempts })
      assert.near(1.5, r.delay, 1e-9)
      assert.is_true(#running >= 2)
      for _, p in ipairs(running) do
        assert.equal("opensearch training jsonlines", p.job)
        assert.equal("opensearch", p.provider)
        assert.is_number(p.progress)
        assert.is_number(p.elapsed)
      end
      assert.is_number(running[#running].eta)
      assert.equal(1, #succeeded)
    end)

    it("makes the line of a --timeout one object with exit status 4", function()
      local code, _, err = sim:run({ "--log-format", "json", "--timeout", "0.2", "-e", "while true do end" })
      assert.equal(4, code)
      local recs = json_lines(err)
      assert.equal(1, #recs)
      assert.equal(4, recs[1].exit_status)
      assert.is_nil(recs[1].traceback)
    end)

    it("makes the errors of the command line one object each: a bad option, a lock held", function()
      local code, _, err = sim:run({ "--log-format", "json", "--bogus" })
      assert.equal(2, code)
      local recs = json_lines(err)
      assert.equal(1, #recs)
      assert.same({ "error", "unrecognized option '--bogus'", 2 }, { recs[1].level, recs[1].msg, recs[1].exit_status })
      local path = sim.dir .. "/held.lock"
      local held = assert(require("trainctl.sys").lock(path))
      finally(function() held:unlock() end)
      code, _, err = sim:run({ "--lock", path, "-e", "" }, { env = { TRAINCTL_LOG_FORMAT = "json" } })
      assert.equal(3, code)
      recs = json_lines(err)
      assert.equal(1, #recs)
      assert.same({ "--lock " .. path .. ": held by another run", 3 }, { recs[1].msg, recs[1].exit_status })
    end)

    it("makes the line of a SIGTERM one object with exit status 143", function()
      local ready = sim.dir .. "/ready"
      local proc = sim:spawn({ "--log-format", "json", "-e",
        ("io.open(%q, 'w'):close() while true do end"):format(ready) })
      finally(function() proc:kill("KILL") end)
      support.poll(function() return support.read(ready) end, 20, "the script to start")
      proc:kill("TERM")
      local code, _, err = proc:wait(20)
      assert.equal(143, code)
      local recs = json_lines(err)
      assert.equal(1, #recs)
      assert.equal(143, recs[1].exit_status)
    end)
  end)

  describe("authentication errors", function()
    local function refused(args, env)
      local code, _, err = sim:run(args, { env = env })
      assert.equal(1, code, err)
      assert.equal(1, #lines(err), err)
      assert.matches(" auth error ", err, 1, true)
      return err
    end

    it("name the variables from the environment, never their values", function()
      local err = refused({ "call", "aitems", "list_schemas" }, { NCLOUD_SECRET_KEY = "wrong-ncp-secret-key" })
      assert.matches("; check NCLOUD_ACCESS_KEY / NCLOUD_SECRET_KEY (from the environment)", err, 1, true)
      assert.is_nil(err:find("wrong-ncp-secret-key", 1, true))
      err = refused({ "call", "opensearch", "list_function_instances", "app_group_identity=demo_app",
        "function_name=ctr" }, { ALIBABA_CLOUD_ACCESS_KEY_SECRET = "wrong-acs-secret" })
      assert.matches("; check ALIBABA_CLOUD_ACCESS_KEY_ID / ALIBABA_CLOUD_ACCESS_KEY_SECRET (from the environment)",
        err, 1, true)
      err = refused({ "call", "azure_language", "list_projects" }, { AZURE_LANGUAGE_KEY = "wrong-azure-key" })
      assert.matches("; check AZURE_LANGUAGE_KEY (from the environment)", err, 1, true)
      err = refused({ "call", "azure_language", "list_projects" },
        { AZURE_LANGUAGE_KEY = false, AZURE_CLIENT_SECRET = "wrong-client-secret" })
      assert.matches("; check AZURE_TENANT_ID / AZURE_CLIENT_ID / AZURE_CLIENT_SECRET (from the environment)",
        err, 1, true)
      assert.is_nil(err:find("wrong-client-secret", 1, true))
    end)

    it("name the profile and the file the keys came from", function()
      local dir = sim.dir .. "/config/trainctl"
      assert(os.execute("mkdir -p " .. support.quote(dir)))
      local path = dir .. "/credentials"
      support.write(path, "[nightly]\nNCLOUD_ACCESS_KEY = cloudsim-ncp-access-key\n"
        .. "NCLOUD_SECRET_KEY = wrong-profile-secret\n")
      assert(os.execute("chmod 600 " .. support.quote(path)))
      finally(function() os.remove(path) end)
      local err = refused({ "--profile", "nightly", "call", "aitems", "list_schemas" },
        { NCLOUD_ACCESS_KEY = false, NCLOUD_SECRET_KEY = false })
      assert.matches(("; check NCLOUD_ACCESS_KEY / NCLOUD_SECRET_KEY (from profile 'nightly' in %s)"):format(path),
        err, 1, true)
      assert.is_nil(err:find("wrong-profile-secret", 1, true))
      -- A hostile server's 401 gets the same hint.
      local code, _, herr = hostile_run("/auth", { "call", "aitems", "list_schemas" })
      assert.equal(1, code)
      assert.matches("Authentication Failed; check NCLOUD_ACCESS_KEY / NCLOUD_SECRET_KEY (from the environment)",
        herr, 1, true)
    end)
  end)
end)
