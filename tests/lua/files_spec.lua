local support = require("support")
local csv = require("trainctl.csv")
local json = require("trainctl.json")
local output = require("trainctl.output")
local state = require("trainctl.state")

local function slurp(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

describe("files", function()
  local dir, cleanup
  before_each(function() dir, cleanup = support.tmpdir() end)
  after_each(function() cleanup() end)

  describe("trainctl.json", function()
    it("sorts keys and writes integral floats as integers", function()
      assert.equal('{"a":1,"b":[1.5,2],"c":"x\\ny"}', json.encode({ c = "x\ny", b = { 1.5, 2.0 }, a = 1.0 }))
      assert.equal("1722306336558", json.encode(1722306336558.0))
      assert.equal("[]", json.encode(json.array({})))
      assert.equal("null", json.encode(json.null))
    end)

    it("refuses cycles", function()
      local t = {}
      t.self = t
      assert.is_false(pcall(json.encode, t))
    end)

    it("decodes with nil, err on bad input", function()
      assert.same({ a = { 1 } }, json.decode('{"a":[1]}'))
      local v, err = json.decode("{bad")
      assert.is_nil(v)
      assert.matches("^json: ", err)
    end)
  end)

  describe("trainctl.csv", function()
    it("parses quotes, commas, newlines and CRLF", function()
      local rows = csv.parse('a,b\r\n"x, y","say ""hi"""\n"multi\nline",2\n')
      assert.same({ { "a", "b" }, { "x, y", 'say "hi"' }, { "multi\nline", "2" } }, rows)
    end)

    it("reads records by header", function()
      local recs, header = csv.records("USER_ID,AGE\nu1,20\nu2,31\n")
      assert.same({ "USER_ID", "AGE" }, header)
      assert.same({ { USER_ID = "u1", AGE = "20" }, { USER_ID = "u2", AGE = "31" } }, recs)
    end)

    it("reports ragged rows", function()
      local recs, err = csv.records("a,b\n1\n")
      assert.is_nil(recs)
      assert.matches("row 2", err)
    end)

    it("round-trips what it encodes", function()
      local records = { { id = "1", text = 'a "quoted", text' }, { id = "2", text = "plain" } }
      local text = csv.encode(records, { "id", "text" })
      assert.same(records, (csv.records(text)))
    end)
  end)

  describe("trainctl.output", function()
    it("writes JSON, JSON Lines and CSV files", function()
      output.json(dir .. "/a.json", { b = 1 })
      output.jsonl(dir .. "/a.jsonl", { { id = 1 }, { id = 2 } })
      output.csv(dir .. "/sub/a.csv", { { id = 1, v = "x" } })
      assert.equal('{\n  "b": 1\n}\n', slurp(dir .. "/a.json"))
      assert.equal('{"id":1}\n{"id":2}\n', slurp(dir .. "/a.jsonl"))
      assert.equal("id,v\r\n1,x\r\n", slurp(dir .. "/sub/a.csv"))
    end)

    it("names the file when it cannot write", function()
      local ok, err = pcall(output.json, "/proc/version/x/y.json", {})
      assert.is_false(ok)
      assert.equal("io", err.kind)
      assert.matches("/proc/version", err.message)
    end)
  end)

  describe("trainctl.state", function()
    it("keeps values across opens", function()
      local path = dir .. "/st/run.json"
      local doc = state.open(path)
      assert.is_nil(doc:get("job"))
      doc:set("job", { id = "j1", types = { "pop" } })
      doc:update("count", function(n) return (n or 0) + 1 end)
      local again = state.open(path)
      assert.same({ id = "j1", types = { "pop" } }, again:get("job"))
      assert.equal(1, again:get("count"))
      again:delete("job")
      assert.is_nil(state.open(path):get("job"))
    end)

    it("refuses a state file that is not a JSON object", function()
      local path = dir .. "/bad.json"
      local f = assert(io.open(path, "w"))
      f:write("[1,2")
      f:close()
      local ok, err = pcall(state.open, path)
      assert.is_false(ok)
      assert.matches("bad.json", err.message)
    end)

    it("defaults to the XDG state directory and the script name", function()
      local opts = require("trainctl.options")
      local saved_state, saved_script = opts.state, opts.script
      opts.state, opts.script = nil, "/x/nightly.lua"
      local path = state.default_path()
      opts.state, opts.script = saved_state, saved_script
      assert.matches("/trainctl/nightly%.json$", path)
    end)
  end)
end)
