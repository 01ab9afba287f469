-- JSON for people and files: keys sorted, integral numbers without ".0"
-- (lua-cjson decodes every number as a float), optional indentation.
-- Decoding is lua-cjson's.
local cjson = require("cjson")
local loop = require("trainctl._loop")

local M = {}

M.null = cjson.null

-- How deep documents may nest, decoded or encoded. Outside input is
-- bounded: a server's answer nested deeper is a decode error, not a deep
-- recursion. The decoder is an instance of its own, so that this limit is
-- not changed for (or by) a script using cjson.safe directly.
M.MAX_DEPTH = 256
local safe = require("cjson.safe").new()
safe.decode_max_depth(M.MAX_DEPTH)

-- array(t): mark t as a JSON array even when it is empty.
local array_mt = { __name = "trainctl.json.array" }
function M.array(t) return setmetatable(t or {}, array_mt) end

local ESC = {
  ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f",
  ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t",
}

local function encode_string(s)
  return '"' .. s:gsub('[%c"\\]', function(c)
    return ESC[c] or ("\\u%04x"):format(c:byte())
  end) .. '"'
end

function M.number_string(n)
  -- A Lua integer is exact at any size; only a float may need rounding
  -- to the shortest form that reads back.
  if math.type(n) == "integer" then return ("%d"):format(n) end
  if n ~= n or n == math.huge or n == -math.huge then return "null" end
  local i = math.tointeger(n)
  if i and math.abs(n) < 2 ^ 53 then return ("%d"):format(i) end
  local s = ("%.14g"):format(n)
  if tonumber(s) ~= n then s = ("%.17g"):format(n) end
  return s
end

local function is_array(t)
  if getmetatable(t) == array_mt then return true end
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  if n == 0 then return false end
  for i = 1, n do
    if t[i] == nil then return false end
  end
  return true
end

local function key_order(a, b)
  local ta, tb = type(a), type(b)
  if ta ~= tb then return ta < tb end
  return a < b
end

local encode

local function encode_table(t, indent, depth, seen)
  if seen[t] then error("json: cannot encode a table that contains itself", 0) end
  if depth >= M.MAX_DEPTH then error(("json: nesting deeper than %d"):format(M.MAX_DEPTH), 0) end
  seen[t] = true
  local nl, pad, pad_in, sep = "", "", "", ":"
  if indent then
    nl = "\n"
    pad = ("  "):rep(depth)
    pad_in = ("  "):rep(depth + 1)
    sep = ": "
  end
  local parts = {}
  local open, close
  if is_array(t) then
    open, close = "[", "]"
    for i = 1, #t do
      parts[#parts + 1] = pad_in .. encode(t[i], indent, depth + 1, seen)
    end
  else
    open, close = "{", "}"
    local keys = {}
    for k in pairs(t) do
      local tk = type(k)
      if tk == "string" or tk == "number" then keys[#keys + 1] = k end
    end
    table.sort(keys, key_order)
    for _, k in ipairs(keys) do
      local ks = type(k) == "number" and M.number_string(k) or k
      parts[#parts + 1] = pad_in .. encode_string(ks) .. sep
        .. encode(t[k], indent, depth + 1, seen)
    end
  end
  seen[t] = nil
  if #parts == 0 then return open .. close end
  return open .. nl .. table.concat(parts, "," .. nl) .. nl .. pad .. close
end

encode = function(v, indent, depth, seen)
  local t = type(v)
  if t == "string" then return encode_string(v) end
  if t == "number" then return M.number_string(v) end
  if t == "boolean" then return tostring(v) end
  if v == nil or v == cjson.null then return "null" end
  if t == "table" then return encode_table(v, indent, depth, seen) end
  error("json: cannot encode a " .. t, 0)
end

-- encode(v [, {pretty=true}]) -> string. Raises on cycles and functions.
function M.encode(v, opts)
  return encode(v, opts and opts.pretty or nil, 0, {})
end

-- lua-cjson decodes [] and {} alike; empty arrays are found in the text
-- (outside strings) and replaced by a marker, then by json.array({}), so
-- that what is printed again reads as the server sent it.
local MARK = "\\u0000trainctl-empty-array\\u0000"
local MARK_VALUE = "\0trainctl-empty-array\0"

local function mark_empty_arrays(s)
  if not s:find("%[%s*%]") then return s, false end
  local out, i, n, found = {}, 1, #s, false
  local start = 1
  while i <= n do
    local j = s:find('["%[]', i)
    if not j then break end
    if s:sub(j, j) == '"' then
      local k = j + 1
      while true do
        local q = s:find('["\\]', k)
        if not q then return s, false end
        if s:sub(q, q) == "\\" then k = q + 2 else k = q break end
      end
      i = k + 1
    else
      local e = s:match("^%[%s*%]()", j)
      if e then
        out[#out + 1] = s:sub(start, j - 1)
        out[#out + 1] = '"' .. MARK .. '"'
        start, found = e, true
        i = e
      else
        i = j + 1
      end
    end
  end
  out[#out + 1] = s:sub(start)
  return table.concat(out), found
end

local function unmark(v)
  if type(v) ~= "table" then return v end
  for k, x in pairs(v) do
    if x == MARK_VALUE then
      v[k] = M.array({})
    elseif type(x) == "table" then
      unmark(x)
    end
  end
  return v
end

-- decode(s) -> value | nil, err
function M.decode(s)
  if type(s) ~= "string" then return nil, "json: expected a string" end
  local text, marked = mark_empty_arrays(s)
  local v, err = safe.decode(text)
  if err then
    -- A stop (Ctrl-C, SIGTERM, --timeout) that came during the decoding
    -- was raised inside cjson.safe's own pcall, which caught it: it is
    -- the run's stop, not bad JSON.
    if loop.interrupted() ~= 0 then error(loop.stop_message(), 0) end
    return nil, "json: " .. tostring(err)
  end
  if marked then
    if v == MARK_VALUE then return M.array({}) end
    unmark(v)
  end
  return v
end

return M
