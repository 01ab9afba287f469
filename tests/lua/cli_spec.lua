local support = require("support.doubles")
local cli = require("trainctl.cli")

-- capture(fn) -> fn's result and what it wrote on stdout; stderr is
-- swallowed (the error messages are checked through exit statuses).
local function capture(fn)
  local out = {}
  local real, real_err = io.stdout, io.stderr
  io.stderr = { write = function(self) return self end, flush = function() end } -- luacheck: ignore 122
  local fake = { write = function(self, ...) for _, s in ipairs({ ... }) do out[#out + 1] = s end return self end,
    flush = function() end }
  io.stdout = fake -- luacheck: ignore 122
  local ok, res = pcall(fn)
  io.stdout, io.stderr = real, real_err -- luacheck: ignore 122
  if not ok then error(res, 0) end
  return res, table.concat(out)
end

describe("trainctl call", function()
  local restore_env, logs
  before_each(function()
    logs = support.logs("error")
    restore_env = support.env({ NCLOUD_ACCESS_KEY = "ak-test", NCLOUD_SECRET_KEY = "sk-test-1234",
      TRAINCTL_AITEMS_ENDPOINT = "http://127.0.0.1:9/api/v1" })
  end)
  after_each(function()
    restore_env()
    logs.restore()
  end)

  -- The word help is taken where --help is, as in `trainctl call help`.
  for _, word in ipairs({ "--help", "help" }) do
    it("lists providers and each provider's operations: " .. word, function()
      local code, text = capture(function() return cli.main({ word }) end)
      assert.equal(0, code)
      assert.matches("azure_language", text)
      code, text = capture(function() return cli.main({ "opensearch", word }) end)
      assert.equal(0, code)
      assert.matches("create_function_task", text)
      code, text = capture(function() return cli.main({ "aitems", "list_trains", word }) end)
      assert.equal(0, code)
      assert.matches("is_recent=<boolean>", text, 1, true)
      for _, cmd in ipairs({ "wait", "status" }) do
        code, text = capture(function() return cli.main({ word }, cmd) end)
        assert.equal(0, code)
        assert.matches("^usage: trainctl " .. cmd .. " PROVIDER REF", text)
      end
    end)
  end

  it("takes help after -- as a word like any other: not key=value", function()
    assert.equal(2, (capture(function() return cli.main({ "aitems", "list_trains", "--", "help" }) end)))
  end)

  it("calls an operation with typed parameters and prints JSON", function()
    local rec = support.http({ { status = 200, body = '{"trains":[],"offset":0,"limit":5}' } })
    local code, text = capture(function()
      return cli.main({ "aitems", "list_trains", "service_id=abc", "is_recent=true", "limit=5" })
    end)
    rec.restore()
    assert.equal(0, code)
    assert.matches("/services/abc/trains%?limit=5&isRecent=true$", rec.requests[1].url)
    assert.same({ trains = {}, offset = 0, limit = 5 }, support.json(text))
  end)

  local function main(argv) return (capture(function() return cli.main(argv) end)) end

  it("exits 2 for usage errors and 1 for API errors", function()
    assert.equal(2, main({ "nosuch" }))
    assert.equal(2, main({ "aitems", "nosuch" }))
    assert.equal(2, main({ "aitems", "list_trains", "bogus=1" }))
    assert.equal(2, main({ "aitems", "list_trains" }))
    local rec = support.http({ { status = 404, body = '{"error":"NOT_FOUND","errorCode":"NOT_FOUND","message":"no"}' } })
    assert.equal(1, main({ "aitems", "get_service", "service_id=x" }))
    rec.restore()
  end)

  it("warns of a --columns no record has, suggesting the field meant, and prints it empty", function()
    -- Not refused: an optional field no record of today's page has is no
    -- typo, and the same cron line must not fail one day and pass the next.
    logs.restore()
    logs = support.logs("warn")
    local rec = support.http({ { status = 200,
      body = '{"services":[{"serviceId":"a","name":"n","status":"ok"}],"offset":0,"limit":5}' } })
    local code, text = capture(function()
      return cli.main({ "aitems", "list_services", "-o", "tsv", "--columns", "serviceId,nme,status" })
    end)
    rec.restore()
    assert.equal(0, code)
    assert.equal("a\t\tok\n", text)
    assert.matches('--columns: no record has "nme"; did you mean name? (fields: name, serviceId, status)',
      logs.text(), 1, true)
  end)

  it("lists a provider's operations with call's options before it", function()
    local code, text = capture(function() return cli.main({ "-o", "table", "aitems" }) end)
    assert.equal(0, code)
    assert.matches("list_services", text, 1, true)
  end)

  it("refuses an object or null as a query value, naming it, and sends nothing", function()
    for _, case in ipairs({
      { 'query={"b":{"c":2}}', "query.b: cannot send an object as a path or query value" },
      { 'query={"d":null}', "query.d: cannot send a null as a path or query value" },
    }) do
      local rec = support.http({})
      local code = capture(function() return cli.main({ "aitems", "list_services", case[1] }) end)
      rec.restore()
      assert.equal(2, code)
      assert.equal(0, #rec.requests)
      assert.matches(case[2], logs.text(), 1, true)
    end
  end)

  it("takes -o=FMT as -oFMT and --output=FMT", function()
    for _, opt in ipairs({ { "-o=tsv" }, { "-otsv" }, { "--output=tsv" }, { "-o", "tsv" } }) do
      local rec = support.http({ { status = 200, body = '{"services":[{"serviceId":"a","name":"n"}]}' } })
      local words = { "aitems", "list_services", "--columns", "serviceId,name" }
      for _, w in ipairs(opt) do words[#words + 1] = w end
      local code, text = capture(function() return cli.main(words) end)
      rec.restore()
      assert.equal(0, code, table.concat(opt, " "))
      assert.equal("a\tn\n", text)
    end
  end)

  it("needs validate_schema's description, as the service does, and says so in its help", function()
    local rec = support.http({})
    local code = capture(function()
      return cli.main({ "aitems", "validate_schema", "dataset_type=user", "name=users",
        'fields=[{"name":"USER_ID","type":["string"],"categorical":false}]' })
    end)
    rec.restore()
    assert.equal(2, code)
    assert.equal(0, #rec.requests)
    assert.matches("validate_schema: missing required parameter description", logs.text(), 1, true)
    local _, help = capture(function() return cli.main({ "aitems", "validate_schema", "--help" }) end)
    assert.matches("description=<string>  (required, body description)", help, 1, true)
  end)

  it("takes call's options before PROVIDER too", function()
    local rec = support.http({ { status = 200, body = '{"services":[{"serviceId":"a","name":"n"}]}' } })
    local code, text = capture(function()
      return cli.main({ "--output", "tsv", "--columns=serviceId,name", "aitems", "list_services", "limit=5" })
    end)
    rec.restore()
    assert.equal(0, code)
    assert.equal("a\tn\n", text)
    assert.matches("limit=5", rec.requests[1].url, 1, true)
    code = capture(function() return cli.main({ "--outptu", "tsv", "aitems", "list_services" }) end)
    assert.equal(2, code)
    assert.matches("unknown option --outptu; did you mean --output?", logs.text(), 1, true)
  end)

  it("documents -y beside --yes in its help", function()
    local _, text = capture(function() return cli.main({ "--help" }) end)
    assert.matches("\n  -y, --yes ", text, 1, true)
  end)

  it("exits 2 when credentials are missing", function()
    restore_env()
    restore_env = support.env({})
    assert.equal(2, main({ "aitems", "list_services" }))
  end)
end)

describe("trainctl call --all on Azure's nextLink", function()
  local restore_env, logs
  before_each(function()
    logs = support.logs("error")
    restore_env = support.env({ AZURE_LANGUAGE_ENDPOINT = "http://127.0.0.1:9", AZURE_LANGUAGE_KEY = "k-test" })
  end)
  after_each(function()
    restore_env()
    logs.restore()
  end)

  it("stops with an error, exit 1, when a nextLink it followed comes back", function()
    local again = '{"value":[{"projectName":"p"}],"nextLink":"http://127.0.0.1:9/language/x?skip=1"}'
    local rec = support.http({ { status = 200, body = again }, { status = 200, body = again },
      { status = 200, body = again } })
    local code, text = capture(function() return cli.main({ "azure_language", "list_projects", "--all" }) end)
    rec.restore()
    assert.equal(1, code)
    assert.equal("", text)
    assert.equal(2, #rec.requests)
  end)
end)

describe("the output formats", function()
  local format = require("trainctl.format")
  local json = require("trainctl.json")

  it("yaml quotes every string a YAML reader would take for something else", function()
    local text = format.yaml({ s = { "true", "no", "123", "1e3", "", "a: b", "#c", "- d", "plain text",
      "trailing ", "line\nbreak", "~", "null" } })
    assert.equal(table.concat({ "s:", '  - "true"', '  - "no"', '  - "123"', '  - "1e3"', '  - ""',
      '  - "a: b"', '  - "#c"', '  - "- d"', "  - plain text", '  - "trailing "', '  - "line\\nbreak"',
      '  - "~"', '  - "null"', "" }, "\n"), text)
  end)

  it("yaml writes nested lists and objects, and empty ones inline", function()
    assert.equal("- a: 1\n  b:\n    - x\n- []\n- {}\n",
      format.yaml({ { a = 1, b = { "x" } }, json.array({}), {} }))
    assert.equal("null\n", format.yaml(json.null))
  end)

  it("tsv escapes tabs, newlines and backslashes inside a value", function()
    assert.equal("a\\tb\tc\\nd\te\\\\f\n",
      format.tsv({ { x = "a\tb", y = "c\nd", z = "e\\f" } }, { "x", "y", "z" }))
  end)

  it("table aligns wide (Hangul, CJK) characters as two columns each", function()
    local text = format.table({ { name = "추천 서비스", status = "ok" }, { name = "recommend", status = "ok" },
      { name = "日本語", status = "ok" } }, { "name", "status" })
    assert.equal(table.concat({ "name         status", "-----------  ------", "추천 서비스  ok",
      "recommend    ok", "日本語       ok", "" }, "\n"), text)
  end)

  it("table shows a server's control characters as escapes, never raw", function()
    local text = format.table({ { name = "a\27[2Jb\rc\nd\te\7", ["x\27]0;t"] = "\194\155" } },
      { "name", "x\27]0;t" })
    assert.is_nil(text:find("[%z\1-\9\11-\31\127]"), text)
    assert.is_nil(text:find("\194[\128-\159]"), text)
    assert.equal(table.concat({ "name                    x\\x1b]0;t", "----------------------  ---------",
      "a\\x1b[2Jb\\rc\\nd\\te\\x07  \\u009b", "" }, "\n"), text)
  end)

  it("table of an empty list is its header only", function()
    assert.equal("value\n-----\n", format.table(json.array({})))
  end)
end)
