-- What is printed on stdout is redacted as the logs are: a server that
-- echoes the request (a proxy, a debugging endpoint) in a 200 answer
-- must not make `trainctl call` or the REPL print the request's
-- credentials. The loopback server's /echo answers with the request's
-- headers; an endpoint ending in "/echo?" sends every operation there.

local H = require "support"
local json = require "trainctl.json"

local CREDENTIALS = {
  NCLOUD_ACCESS_KEY = "answer-test-ncp-access-key",
  NCLOUD_SECRET_KEY = "answer-test-ncp-secret-key",
  AZURE_LANGUAGE_KEY = "answer-test-azure-language-key",
}

-- headers(out) -> name -> value, from the printed echo of the request.
local function headers(out)
  local doc = json.decode(out)
  local map = {}
  for _, pair in ipairs(doc.headers) do map[pair[1]:lower()] = pair[2] end
  return map
end

describe("an answer that echoes the request's credentials", function()
  local srv, env

  setup(function()
    srv = H.server()
    env = { TRAINCTL_AITEMS_ENDPOINT = srv.url .. "/echo?", AZURE_LANGUAGE_ENDPOINT = srv.url .. "/echo?",
      TRAINCTL_CONFIG = "/nonexistent" }
    for k, v in pairs(CREDENTIALS) do env[k] = v end
  end)
  teardown(function() srv.stop() end)

  local function call(args)
    local r = H.run(args, { env = env, clear = true })
    assert.equal(0, r.code, r.err)
    return r
  end

  it("trainctl call prints the AiTEMS signature and access key redacted", function()
    local r = call({ "call", "aitems", "list_services", "-o", "json" })
    local h = headers(r.out)
    assert.equal("[REDACTED]", h["x-ncp-apigw-signature-v2"])
    assert.not_equal(CREDENTIALS.NCLOUD_ACCESS_KEY, h["x-ncp-iam-access-key"])
    assert.is_nil(r.out:find(CREDENTIALS.NCLOUD_ACCESS_KEY, 1, true))
  end)

  it("trainctl call prints the Azure key redacted, in every format", function()
    for _, fmt in ipairs({ "json", "yaml", "jsonl" }) do
      local r = call({ "call", "azure_language", "list_projects", "-o", fmt })
      assert.matches("ocp%-apim%-subscription%-key", r.out)
      assert.is_nil(r.out:find(CREDENTIALS.AZURE_LANGUAGE_KEY, 1, true), fmt .. ": " .. r.out)
    end
  end)

  it("trainctl call --jq prints a selected credential redacted", function()
    local r = call({ "call", "azure_language", "list_projects", "--jq",
      '.headers[] | select(.[0] == "ocp-apim-subscription-key") | .[1]' })
    assert.equal('[REDACTED]\n', r.out)
  end)

  it("trainctl call leaves an answer's own fields as they are, and its JSON valid", function()
    -- A real answer may hold fields named like secrets (a token the
    -- service issued, a signed link it hands out) and escaped quotes:
    -- only the run's own secrets are taken out of what is printed.
    local dir = H.tmpdir()
    local answer = '{"services":[{"name":"svc1","token":"ab\\"cd","sig":"sv=2022&sig=abc%2B=",'
      .. '"signature":"0123456789abcdef","password":"shown","echo":"' .. CREDENTIALS.NCLOUD_SECRET_KEY .. '"}]}'
    H.write(dir .. "/answer.json", answer)
    H.write(dir .. "/serve.py", [[
import http.server, sys
body = open(sys.argv[1], "rb").read()
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a): pass
s = http.server.HTTPServer(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
]])
    local fixed = H.server({ script = dir .. "/serve.py", args = { dir .. "/answer.json" } })
    local r = H.run({ "call", "aitems", "list_services", "-o", "json" }, { clear = true,
      env = { TRAINCTL_AITEMS_ENDPOINT = fixed.url .. "/api/v1", TRAINCTL_CONFIG = "/nonexistent",
        NCLOUD_ACCESS_KEY = CREDENTIALS.NCLOUD_ACCESS_KEY, NCLOUD_SECRET_KEY = CREDENTIALS.NCLOUD_SECRET_KEY } })
    fixed.stop()
    H.rmdir(dir)
    assert.equal(0, r.code, r.err)
    local svc = json.decode(r.out).services[1]
    assert.equal('ab"cd', svc.token)
    assert.equal("sv=2022&sig=abc%2B=", svc.sig)
    assert.equal("0123456789abcdef", svc.signature)
    assert.equal("shown", svc.password)
    assert.equal("[REDACTED]", svc.echo)
  end)

  it("the REPL shows a result redacted", function()
    local r = H.run({ "-e", 'require("trainctl.repl").show(os.getenv("NCLOUD_SECRET_KEY"), 42)' },
      { env = env, clear = true })
    assert.equal(0, r.code, r.err)
    assert.equal('"[REDACTED]"\t42\n', r.out)
  end)
end)
