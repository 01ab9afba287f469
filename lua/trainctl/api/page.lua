-- Iterators over the three paging schemes: offset/limit (AiTEMS),
-- pageNumber/pageSize (OpenSearch) and nextLink (Azure). Each returns a
-- function for a generic for loop, yielding one item at a time and fetching
-- pages only as they are needed.
local errors = require("trainctl.errors")

local M = {}

M.MAX_PAGES = 100000

-- get(t, key): t[key], else the same key in any letter case (OpenSearch
-- answers in PascalCase or camelCase).
function M.get(t, key)
  if type(t) ~= "table" then return nil end
  local v = rawget(t, key)
  if v ~= nil then return v end
  local lk = key:lower()
  for k, val in pairs(t) do
    if type(k) == "string" and k:lower() == lk then return val end
  end
  return nil
end

local function items_of(resp, key)
  if type(key) == "function" then return key(resp) or {} end
  local list = M.get(resp, key)
  if type(list) ~= "table" then return {} end
  return list
end

-- A generic iterator over pages: next_page(state) -> list, more.
local function iterate(next_page)
  local list, i, more = nil, 0, true
  local pages = 0
  return function()
    while true do
      if list and i < #list then
        i = i + 1
        return list[i]
      end
      if not more then return nil end
      pages = pages + 1
      if pages > M.MAX_PAGES then
        errors.raise({ kind = "api", code = "TooManyPages",
          message = ("listing stopped after %d pages"):format(M.MAX_PAGES) })
      end
      list, more = next_page()
      i = 0
      if not list or #list == 0 then return nil end
    end
  end
end

-- offset(fetch, opts): fetch(offset, limit) -> response. opts.key names the
-- list in the response (or is a function of it); opts.limit (page size,
-- default 100) and opts.offset (start, default 0). The last page is the
-- first shorter than limit.
function M.offset(fetch, opts)
  opts = opts or {}
  local limit = opts.limit or 100
  local offset = opts.offset or 0
  return iterate(function()
    local resp = fetch(offset, limit)
    local list = items_of(resp, opts.key)
    offset = offset + #list
    return list, #list >= limit
  end)
end

-- numbered(fetch, opts): fetch(page_number, page_size) -> response.
-- opts.key (list), opts.total_key (default "TotalCount"), opts.page_size
-- (default 10), opts.page_number (first page, default 1). Stops at the
-- total, or at the first short page when there is no total.
function M.numbered(fetch, opts)
  opts = opts or {}
  local size = opts.page_size or 10
  local number = opts.page_number or 1
  local seen = (number - 1) * size
  return iterate(function()
    local resp = fetch(number, size)
    local list = items_of(resp, opts.key)
    number = number + 1
    seen = seen + #list
    local total = tonumber(M.get(resp, opts.total_key or "TotalCount"))
    if total then return list, seen < total and #list > 0 end
    return list, #list >= size
  end)
end

-- next_link(first, follow, opts): first() -> response, follow(url) ->
-- response. opts.key (default "value"), opts.link_key (default "nextLink").
-- A link seen before is an error: following it would never end.
function M.next_link(first, follow, opts)
  opts = opts or {}
  local key = opts.key or "value"
  local link_key = opts.link_key or "nextLink"
  local seen = {}
  local link
  return iterate(function()
    local resp
    if link == nil then
      resp = first()
    else
      if seen[link] then
        errors.raise({ kind = "api", code = "NextLinkLoop", provider = opts.provider,
          message = "the server returned a nextLink already followed; stopping instead of looping",
          url = link })
      end
      seen[link] = true
      resp = follow(link)
    end
    local list = items_of(resp, key)
    link = M.get(resp, link_key)
    if type(link) ~= "string" or link == "" then return list, false end
    return list, true
  end)
end

-- collect(iter [, max]) -> list of every item (up to max).
function M.collect(iter, max)
  local out = {}
  for item in iter do
    out[#out + 1] = item
    if max and #out >= max then break end
  end
  return out
end

return M
