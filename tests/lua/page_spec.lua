local page = require("trainctl.page")

local function collect(iter)
  local out = {}
  for x in iter do out[#out + 1] = x end
  return out
end

describe("trainctl.page", function()
  it("walks offset/limit lists and stops at a short page", function()
    local calls = {}
    local data = { 1, 2, 3, 4, 5 }
    local items = collect(page.offset(function(offset, limit)
      calls[#calls + 1] = offset
      local list = {}
      for i = offset + 1, math.min(offset + limit, #data) do list[#list + 1] = data[i] end
      return { items = list }
    end, { key = "items", limit = 2 }))
    assert.same(data, items)
    assert.same({ 0, 2, 4 }, calls)
  end)

  it("fetches lazily", function()
    local calls = 0
    local iter = page.offset(function()
      calls = calls + 1
      return { items = { "a", "b" } }
    end, { key = "items", limit = 2 })
    assert.equal("a", iter())
    assert.equal(1, calls)
  end)

  it("walks numbered pages until TotalCount, keys in any case", function()
    local calls = {}
    local items = collect(page.numbered(function(n, size)
      calls[#calls + 1] = n
      local all = { "a", "b", "c", "d", "e" }
      local list = {}
      for i = (n - 1) * size + 1, math.min(n * size, #all) do list[#list + 1] = all[i] end
      return { result = list, totalCount = 5 }
    end, { key = "Result", page_size = 2 }))
    assert.same({ "a", "b", "c", "d", "e" }, items)
    assert.same({ 1, 2, 3 }, calls)
  end)

  it("stops numbered paging on an empty page without a total", function()
    local items = collect(page.numbered(function(n)
      if n == 1 then return { Result = { "x", "y" } } end
      return { Result = {} }
    end, { key = "Result", page_size = 2 }))
    assert.same({ "x", "y" }, items)
  end)

  it("follows nextLink", function()
    local pages = { ["l2"] = { value = { 3 }, nextLink = "l3" }, ["l3"] = { value = { 4 } } }
    local items = collect(page.next_link(function() return { value = { 1, 2 }, nextLink = "l2" } end,
      function(link) return pages[link] end))
    assert.same({ 1, 2, 3, 4 }, items)
  end)

  it("reports a nextLink loop after yielding what it had", function()
    local got = {}
    local ok, err = pcall(function()
      for x in page.next_link(function() return { value = { 1 }, nextLink = "a" } end,
        function(link) return { value = { link }, nextLink = link == "a" and "b" or "a" } end) do
        got[#got + 1] = x
      end
    end)
    assert.is_false(ok)
    assert.equal("NextLinkLoop", err.code)
    assert.same({ 1, "a", "b" }, got)
  end)

  it("reads fields in any case", function()
    assert.equal(1, page.get({ TotalCount = 1 }, "totalcount"))
    assert.is_nil(page.get({}, "x"))
  end)
end)
