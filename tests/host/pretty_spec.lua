-- What the REPL shows and completes: trainctl.pretty and trainctl.repl.

local pretty = require "trainctl.pretty"
local repl = require "trainctl.repl"
local json = require "trainctl.json"

-- Reads a rendering back as Lua (for tables without arrays or null).
local function reread(s)
  return assert(load("return " .. s, "=rendering", "t", {}))()
end

describe("pretty.format", function()
  it("renders a map so that Lua reads it back equal, keywords and odd keys quoted", function()
    local t = {
      name = "plain", ["end"] = true, ["with space"] = 1, ["new\nline"] = "a\tb\"c\\",
      nested = { deeper = { x = -7, y = 0.25 } }, [10] = "ten", [2.5] = false,
      ["\0bin\255"] = "\1\2",
    }
    assert.same(t, reread(pretty.format(t)))
  end)

  it("sorts keys, numbers before strings", function()
    local t, keys = {}, {}
    math.randomseed(os.time())
    for i = 1, 40 do
      local k = ("k%05d"):format(math.random(99999))
      t[k] = i
      keys[k] = true
    end
    t[3], t[1] = "three", "one"
    local out = pretty.format(t, { items = 1000 })
    local seen = {}
    for k in out:gmatch("(k%d%d%d%d%d) =") do seen[#seen + 1] = k end
    local want = {}
    for k in pairs(keys) do want[#want + 1] = k end
    table.sort(want)
    assert.same(want, seen)
    assert.is_true(out:find("[1]", 1, true) < out:find("[3]", 1, true))
    assert.is_true(out:find("[3]", 1, true) < out:find("k", 1, true))
  end)

  it("shows a sequence as a list, in order", function()
    local out = pretty.format({ "a", "b", "c" })
    assert.is_true(out:find('"a"') < out:find('"b"') and out:find('"b"') < out:find('"c"'))
    assert.not_matches("=", out)
  end)

  it("marks cycles instead of following them", function()
    local t = { name = "loop" }
    t.self = t
    t.list = { t, { back = t } }
    local out = pretty.format(t)
    assert.matches("<cycle>", out, 1, true)
    assert.matches('"loop"', out, 1, true)
  end)

  it("shows a table met twice (not a cycle) both times", function()
    local shared = { v = "shared" }
    local out = pretty.format({ a = shared, b = shared })
    assert.equal(2, select(2, out:gsub('"shared"', "")))
  end)

  it("bounds depth, length and string size", function()
    local deep = {}
    local cur = deep
    for _ = 1, 50 do cur.next = {} cur = cur.next end
    assert.matches("{...}", pretty.format(deep), 1, true)
    local long = {}
    for i = 1, 10000 do long[i] = i end
    local out = pretty.format(long)
    assert.is_true(#out < 2000)
    assert.matches("more", out, 1, true)
    local s = pretty.format(("x"):rep(100000))
    assert.is_true(#s < 10000)
  end)

  it("quotes strings so that Lua reads them back", function()
    for _, s in ipairs { "", "plain", 'quote " and \\', "line\nbreak", "\0\1\127\255", "tab\t" } do
      assert.equal(s, reread(pretty.format(s)))
    end
  end)

  it("renders a decoded JSON document as JSON reads: [], null, integral numbers", function()
    local doc = json.decode('{"items":[],"meta":{},"next":null,"total":3,"ratio":0.5,"ids":[1,2]}')
    local out = pretty.format(doc)
    assert.matches("items = []", out, 1, true)
    assert.matches("meta = {}", out, 1, true)
    assert.matches("next = null", out, 1, true)
    assert.matches("total = 3[,%s}]", out)
    assert.matches("ratio = 0.5", out, 1, true)
    assert.not_matches("%d%.0[^%d]", out)
  end)

  it("renders floats so that they read back as the same number", function()
    math.randomseed(os.time())
    for _ = 1, 200 do
      local x = (math.random() - 0.5) * 10 ^ math.random(-20, 20)
      assert.equal(x, tonumber(pretty.format(x)))
      assert.equal(x, reread(pretty.format({ v = x })).v)
    end
    assert.equal(0.1 + 0.2, tonumber(pretty.format(0.1 + 0.2)))
  end)

  it("shows a number on its own as Lua does (2.0 is a float)", function()
    assert.equal(tostring(2.0), pretty.format(2.0))
    assert.equal(tostring(42), pretty.format(42))
    assert.equal(tostring(math.mininteger), pretty.format(math.mininteger))
  end)

  it("uses __tostring, and survives a hidden metatable", function()
    local obj = setmetatable({}, { __tostring = function() return "<my object>" end })
    assert.equal("<my object>", pretty.format(obj))
    local hidden = setmetatable({ a = 1 }, { __metatable = false })
    assert.matches("a = 1", pretty.format(hidden), 1, true)
    local locked = setmetatable({ b = 2 }, { __metatable = "locked" })
    assert.matches("b = 2", pretty.format(locked), 1, true)
  end)

  it("does not call __index or __pairs-like metamethods while rendering", function()
    local calls = 0
    local t = setmetatable({ real = 1 }, { __index = function() calls = calls + 1 end })
    pretty.format(t)
    assert.equal(0, calls)
  end)
end)

describe("repl.complete", function()
  after_each(function()
    _G.trainctl_test_obj, _G.trainctl_test_global = nil, nil
  end)

  it("completes fields of a library table", function()
    local c = repl.complete("string.fo")
    assert.same({ "string.format" }, c)
  end)

  it("completes globals, sorted", function()
    _G.trainctl_test_global = 1
    local c = repl.complete("trainctl_test_g")
    assert.same({ "trainctl_test_global" }, c)
    local all = repl.complete("t")
    local sorted = { table.unpack(all) }
    table.sort(sorted)
    assert.same(sorted, all)
    assert.is_true(#all >= 3) -- table, tonumber, tostring, type
  end)

  it("completes methods through the metatable's __index, with '('", function()
    local class = { list_services = function() end, create_service = function() end, name = "x" }
    _G.trainctl_test_obj = setmetatable({ field = 1 }, { __index = class })
    assert.same({ "trainctl_test_obj:list_services(" }, repl.complete("trainctl_test_obj:li"))
    local all = repl.complete("trainctl_test_obj:")
    assert.same({ "trainctl_test_obj:create_service(", "trainctl_test_obj:list_services(" }, all)
    assert.same({ "trainctl_test_obj.field" }, repl.complete("trainctl_test_obj.fi"))
  end)

  it("offers names starting with _ only once _ is typed", function()
    _G.trainctl_test_obj = setmetatable({}, { __index = { _send = function() end, send = function() end } })
    assert.same({ "trainctl_test_obj:send(" }, repl.complete("trainctl_test_obj:"))
    assert.same({ "trainctl_test_obj:_send(" }, repl.complete("trainctl_test_obj:_"))
    for _, name in ipairs(repl.complete("")) do assert.not_equal("_", name:sub(1, 1)) end
    assert.truthy(table.concat(repl.complete("_"), " "):find("_VERSION", 1, true))
  end)

  it("never runs code: an __index function is not called", function()
    local calls = 0
    _G.trainctl_test_obj = setmetatable({}, { __index = function() calls = calls + 1 end })
    repl.complete("trainctl_test_obj.x")
    repl.complete("trainctl_test_obj:x")
    repl.complete("trainctl_test_obj.a.b")
    assert.equal(0, calls)
  end)

  it("completes string methods on a string", function()
    _G.trainctl_test_global = "text"
    assert.same({ "trainctl_test_global:upper(" }, repl.complete("trainctl_test_global:up"))
  end)

  it("returns nothing for an unknown path", function()
    assert.same({}, repl.complete("no_such_global_anywhere.x"))
    assert.same({}, repl.complete("string.zzz"))
  end)
end)
