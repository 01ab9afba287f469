-- The library's shape: providers are descriptors built by api/provider.lua
-- and listed once in the registry; a spec or descriptor key that nothing
-- reads is refused; the public module names reach the modules in their
-- layers; one retry policy and one clock serve every wait; config is the
-- only reader of the environment and of the command line's options.
local S = require("support.doubles")
local errors = require("trainctl.errors")
local ops = require("trainctl.ops")
local provider = require("trainctl.api.provider")
local registry = require("trainctl.providers")
local retry = require("trainctl.core.retry")

local function slurp(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

-- The library's source files, relative to the repository.
local function sources()
  local p = assert(io.popen("find lua/trainctl -name '*.lua' | sort"))
  local list = {}
  for line in p:lines() do list[#list + 1] = line end
  p:close()
  assert.is_true(#list > 20)
  return list
end

describe("an operation spec", function()
  it("refuses a key nothing reads, naming it", function()
    local ok, err = pcall(ops.define, { "get_thing", "GET", "/things/{id}", idempotnet = true })
    assert.is_false(ok)
    assert.matches('get_thing: unknown key "idempotnet"', err)
  end)

  it("takes every key docs/providers.md describes, and the doc describes every key it takes", function()
    local doc = slurp("docs/providers.md")
    for key in pairs(ops.SPEC_KEYS) do
      assert.truthy(doc:find("| `" .. key .. "` |", 1, true), key .. " is not in docs/providers.md")
    end
    local spec = ops.define({ "x", "POST", "/x/{a}", query = { "q" }, body = { "b!" }, docs = { b = "d" },
      values = { b = { "v" } }, defaults = { q = "1" }, summary = "s", idempotent = true, create = "x",
      items = "list", lro = "operation", action = "X", returns_job = true, resumable = true,
      fixed_query = { { "k", "v" } }, path_in_body = { "a" } })
    assert.equal("x", spec.name)
  end)
end)

describe("ops.match", function()
  it("finds the operation a method and path are an instance of, and no other", function()
    local specs = require("trainctl.opensearch").operations
    local P = "/v4/openapi/app-groups/g/functions/f"
    assert.equal("GetFunctionInstance", ops.match(specs, "GET", P .. "/instances/i").action)
    assert.equal("ListFunctionInstances", ops.match(specs, "GET", P .. "/instances").action)
    assert.equal("DeleteFunctionInstance", ops.match(specs, "DELETE", P .. "/instances/i").action)
    assert.is_nil(ops.match(specs, "GET", P .. "/instances/i/x"))
    assert.is_nil(ops.match(specs, "POST", "/x"))
  end)
end)

describe("a provider descriptor", function()
  it("refuses a field nothing reads", function()
    local ok, err = pcall(provider.new, { name = "demo", operations = {}, sign = function() end })
    assert.is_false(ok)
    assert.matches('provider demo: unknown descriptor field "sign"', err)
  end)

  it("refuses a create that nothing looks up", function()
    local ok, err = pcall(provider.new, { name = "demo", endpoint = function() end, auth = function() end,
      operations = { ops.define({ "make", "POST", "/things", body = { "name!" }, create = "thing" }) } })
    assert.is_false(ok)
    assert.matches("make creates thing", err)
  end)

  it("is all a provider needs for a client: call, methods, paging, retries and lookups", function()
    local restore = S.env({})
    finally(restore)
    local M = provider.new({
      name = "demo",
      operations = {
        ops.define({ "list_things", "GET", "/things", query = { "offset:integer", "limit:integer" },
          items = "things" }),
        ops.define({ "make_thing", "POST", "/things", body = { "name!" }, create = "thing" }),
      },
      pager = { "offset", size = 2 },
      endpoint = function(o) return o.endpoint, "endpoint=" end,
      auth = function() return { sign = function(r) r.headers["x-demo-sig"] = "s" end, credentials = "c" } end,
      prepare = function(_, r) r.headers["x-demo"] = "1" end,
      creates = { thing = { name = "name", find = function(self, args)
        for t in self:each("list_things") do
          if t.name == args.name then return t end
        end
      end } },
      conflict = function(e) return e.status == 409 end,
    })
    local c = M.client({ endpoint = "https://demo.example/api/" })
    assert.equal("https://demo.example/api", c.endpoint)
    local http = S.http({
      { status = 200, body = { things = { { name = "a" }, { name = "b" } } } },
      { status = 200, body = { things = { { name = "c" } } } },
      -- the create's answer is lost; the lookup finds it
      { err = { kind = "network", message = "connection reset", curl_code = 56 } },
      { status = 200, body = { things = { { name = "n" } } } },
    })
    finally(http.restore)
    local names = {}
    for t in c:each("list_things") do names[#names + 1] = t.name end
    assert.same({ "a", "b", "c" }, names)
    assert.equal("https://demo.example/api/things?offset=0&limit=2", http.requests[1].url)
    assert.equal("1", http.header(1, "x-demo"))
    assert.equal("s", http.header(1, "x-demo-sig"))
    local sleeps, logs = S.sleeps(), S.logs("info")
    finally(function() sleeps.restore() logs.restore() end)
    assert.same({ name = "n" }, c:make_thing({ name = "n" }))
    assert.matches('creating thing "n" happened despite the error', logs.text())
    assert.equal(4, #http.requests)
    assert.equal("POST", http.requests[3].method)
  end)
end)

describe("a client's method", function()
  it("returns the answer alone, as the REPL prints it; client:call gives the response too", function()
    local http = S.http({
      { status = 200, body = { services = {}, offset = 0, limit = 1000 } },
      { status = 200, body = { services = {}, offset = 0, limit = 1000 } },
    })
    finally(http.restore)
    local c = require("trainctl.aitems").client({ access_key = "k", secret_key = "s" })
    local n = select("#", c:list_services())
    assert.equal(1, n)
    local body, res = c:call("GET", "/services")
    assert.same({}, body.services)
    assert.equal(200, res.status)
  end)
end)

describe("a client's method called with a dot", function()
  it("is a usage error naming the colon, and sends nothing", function()
    local http = S.http({})
    finally(http.restore)
    local c = require("trainctl.aitems").client({ access_key = "k", secret_key = "s" })
    for _, call in ipairs({
      function() return c.get_service("x") end,
      function() return c.list_services() end,
      function() return c.train({ service_id = "x" }) end,
    }) do
      local ok, err = pcall(call)
      assert.is_false(ok)
      assert.is_true(errors.is(err, "usage"), tostring(err))
      assert.matches("^[%w_]+: call it as client:[%w_]+%(%.%.%.%) %(with a colon%)$", err.message)
    end
    assert.equal(0, #http.requests)
  end)
end)

describe("the registry", function()
  it("lists every provider module, each built from a descriptor under its own name", function()
    local files = {}
    for _, f in ipairs(sources()) do
      local name = f:match("^lua/trainctl/providers/([%w_]+)%.lua$")
      if name and name ~= "init" then files[name] = true end
    end
    for _, p in ipairs(registry.list) do
      assert.is_true(files[p.name], p.name)
      files[p.name] = nil
      local mod = registry.load(p.name)
      assert.equal(p.name, mod.name)
      assert.is_function(mod.client)
      assert.is_function(mod.reopen)
      assert.is_function(mod.view)
      assert.is_table(mod.operations)
    end
    assert.same({}, files)
    assert.equal(registry.find("azure_language"), registry.find("azure"))
    assert.is_nil(registry.find("nope"))
  end)

  it("is what the docs document: each provider has its section in docs/lua-api.md and its module in the manual",
    function()
      local api, man = slurp("docs/lua-api.md"), slurp("docs/trainctl.1")
      for _, p in ipairs(registry.list) do
        assert.truthy(api:find("\n## `trainctl." .. p.name .. "`\n", 1, true), p.name .. " in docs/lua-api.md")
        assert.truthy(man:find("\\fBtrainctl." .. p.name .. "\\fR", 1, true), p.name .. " in docs/trainctl.1")
      end
    end)

  it("is the only place outside providers/ that names a provider", function()
    for _, f in ipairs(sources()) do
      if not f:find("^lua/trainctl/providers/") and f ~= "lua/trainctl/aliases.lua" then
        local text = slurp(f):gsub("%-%-[^\n]*", "")
        for _, p in ipairs(registry.list) do
          -- the REPL's help shows how to make each client, in prose
          if f ~= "lua/trainctl/repl.lua" then
            assert.is_nil(text:find('"' .. p.name .. '"', 1, true), f .. " names " .. p.name)
          end
        end
      end
    end
  end)
end)

describe("the public module names", function()
  it("give the same table as the modules in their layers", function()
    local aliases = dofile("lua/trainctl/aliases.lua")
    local n = 0
    for public, real in pairs(aliases) do
      assert.equal(require(real), require(public), public)
      n = n + 1
    end
    assert.is_true(n >= 9)
    assert.equal(require("trainctl.http").retry_defaults, retry.defaults)
    assert.equal(require("trainctl.http").create_once, retry.create_once)
  end)
end)

describe("the retry policy", function()
  it("keeps a server's wait between the floor and the cap, written once", function()
    local p = retry.policy()
    assert.same({ p.min_retry_after, false }, { retry.pace(0, p) })
    assert.same({ 7, false }, { retry.pace(7, p) })
    assert.same({ p.max_retry_after, true }, { retry.pace(1e9, p) })
    assert.is_nil(retry.pace(nil, p))
  end)

  it("stops when the tries or the time are spent", function()
    local sleeps = S.sleeps()
    finally(sleeps.restore)
    local p = retry.policy({ attempts = 3, max_time = 10 })
    local e = errors.new({ kind = "http", status = 503, retry_after = 4 })
    assert.equal(4, retry.delay(e, 1, p, sleeps.now))
    assert.is_nil(retry.delay(e, 3, p, sleeps.now))
    assert.is_nil(retry.delay(e, 1, p, sleeps.now - 7))
  end)

  it("paces fanout's throttled workers through the one clock a test replaces", function()
    local sleeps = S.sleeps()
    finally(sleeps.restore)
    local fanout = require("trainctl.fanout")
    local calls = 0
    local res = fanout.map({ "x" }, function(item)
      calls = calls + 1
      if calls == 1 then errors.raise({ kind = "http", status = 429, retry_after = 3 }) end
      return item .. "!"
    end, { concurrency = 1 })
    assert.same({ "x!" }, res)
    assert.same({ 3 }, sleeps.list)
  end)
end)

describe("config", function()
  it("is the library's only reader of the environment and of the command line's options", function()
    for _, f in ipairs(sources()) do
      if f ~= "lua/trainctl/config.lua" then
        local text = slurp(f):gsub("%-%-[^\n]*", "")
        assert.is_nil(text:find("os.getenv", 1, true), f)
        assert.is_nil(text:find("sys.getenv", 1, true), f)
        assert.is_nil(text:find('"trainctl.options"', 1, true), f)
      end
    end
  end)
end)
