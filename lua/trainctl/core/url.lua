-- The URL codec: RFC 3986 percent-encoding of path segments and query
-- values, query strings built in order, and their decoding (what a server
-- sees). api/ops.lua builds requests with it; signers parse with it.
local errors = require("trainctl.errors")
local json = require("trainctl.json")

local M = {}

-- encode(s): RFC 3986 percent-encoding of everything but the unreserved
-- characters, so a value can never add a "/", "?", "#" or "&".
function M.encode(s)
  return (s:gsub("[^%w%-%._~]", function(c)
    return ("%%%02X"):format(c:byte())
  end))
end

-- text(v [, name]): the wire form of a scalar (integers without ".0"),
-- or of a list of them (comma-separated). An object or null has none: it
-- is refused, naming the parameter, rather than sent as an empty value.
function M.text(v, name)
  local t = type(v)
  if t == "string" then return v end
  if t == "number" then return json.number_string(v) end
  if t == "boolean" then return tostring(v) end
  local what = v == json.null and "null" or t
  if t == "table" then
    local n = 0
    for _ in pairs(v) do n = n + 1 end
    if n == #v then
      local parts = {}
      for i, x in ipairs(v) do parts[i] = M.text(x, name) end
      return table.concat(parts, ",")
    end
    what = "an object"
  end
  errors.usage(("%scannot send %s as a path or query value (a string, number, boolean or list of them)")
    :format(name and (name .. ": ") or "", what == "an object" and what or ("a " .. what)))
end

-- segment(v): one path segment. "." and ".." are encoded too, and an empty
-- value is refused, so no id can make the request address another resource.
function M.segment(v, name)
  local s = M.text(v, name)
  if s == "" then errors.usage(("empty value for %s"):format(name or "a path parameter")) end
  local e = M.encode(s)
  if e == "." or e == ".." then e = e:gsub("%.", "%%2E") end
  return e
end

-- query_string(list) -> "k=v&k2=v2" from {{k, v}, ...}, in that order.
function M.query_string(list)
  local parts = {}
  for i, kv in ipairs(list) do
    parts[i] = M.encode(kv[1]) .. "=" .. M.encode(kv[2])
  end
  return table.concat(parts, "&")
end

-- to_query(q) -> query string from a string (sent as is), a list of
-- {k, v} pairs (in order) or a table k -> v (keys sorted).
function M.to_query(q)
  if q == nil then return "" end
  if type(q) == "string" then return (q:gsub("^%?", "")) end
  local list = {}
  if q[1] ~= nil then
    for _, kv in ipairs(q) do list[#list + 1] = { kv[1], M.text(kv[2]) } end
  else
    local keys = {}
    for k in pairs(q) do keys[#keys + 1] = k end
    table.sort(keys)
    for _, k in ipairs(keys) do list[#list + 1] = { k, M.text(q[k]) } end
  end
  return M.query_string(list)
end

-- unescape(s): percent-decoding of a query component ("+" is a space).
function M.unescape(s)
  return (s:gsub("%+", " "):gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

-- parse_query(s) -> table k -> v, percent-decoded (what a server sees).
function M.parse_query(s)
  local out = {}
  for pair in (s or ""):gmatch("[^&]+") do
    local k, v = pair:match("^([^=]*)=?(.*)$")
    out[M.unescape(k)] = M.unescape(v)
  end
  return out
end

return M
