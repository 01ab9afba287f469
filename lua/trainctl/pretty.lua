-- Human-readable rendering of Lua values, for the REPL and for debugging:
-- nested tables with sorted keys, cycles marked, depth and length bounded,
-- strings quoted. A decoded JSON document reads like JSON.

local M = {}

local defaults = { depth = 6, items = 50, width = 78, strlen = 2000 }

local function quote(s, max)
  if #s > max then
    s = s:sub(1, max)
    return ("%q"):format(s):gsub("\\\n", "\\n") .. "..."
  end
  return (("%q"):format(s):gsub("\\\n", "\\n"))
end

local ident = "^[%a_][%w_]*$"

local keywords = {}
for w in ([[and break do else elseif end false for function goto if in
  local nil not or repeat return then true until while]]):gmatch("%a+") do
  keywords[w] = true
end

local function key_repr(k, o)
  if type(k) == "string" and k:match(ident) and not keywords[k] then return k end
  if type(k) == "string" then return "[" .. quote(k, o.strlen) .. "]" end
  return "[" .. tostring(k) .. "]"
end

local order = { number = 1, string = 2, boolean = 3 }

local function key_less(a, b)
  local ta, tb = type(a), type(b)
  if ta ~= tb then return (order[ta] or 9) < (order[tb] or 9) end
  if ta == "number" or ta == "string" then return a < b end
  return tostring(a) < tostring(b)
end

local function is_array(t)
  local n = #t
  local count = 0
  for _ in pairs(t) do count = count + 1 end
  return count == n, n
end

local render

-- A float in the fewest digits (14 at least, as Lua prints it) that read
-- back as the same number.
local function float_repr(v)
  for digits = 14, 16 do
    local s = ("%." .. digits .. "g"):format(v)
    if tonumber(s) == v then return s end
  end
  return ("%.17g"):format(v)
end

-- Inside a table, an integral float is shown without ".0": lua-cjson
-- decodes every JSON number as a float, and a document's 3 should read
-- as 3, as the server sent it.
local function number_repr(v, in_table)
  if math.type(v) == "integer" or v ~= v or v == math.huge or v == -math.huge then
    return tostring(v)
  end
  if v == math.floor(v) and v > -2 ^ 53 and v < 2 ^ 53 then
    return in_table and ("%d"):format(v) or ("%.1f"):format(v)
  end
  return float_repr(v)
end

local function render_table(t, o, depth, seen, indent)
  if seen[t] then return "<cycle>" end
  local mt = getmetatable(t)
  if type(mt) ~= "table" then mt = nil end -- absent, or hidden by __metatable
  if mt and rawget(mt, "__tostring") then return tostring(t) end
  if next(t) == nil then
    -- trainctl.json marks decoded empty arrays; show them as [] like JSON
    if mt and rawget(mt, "__name") == "trainctl.json.array" then return "[]" end
    return "{}"
  end
  if depth >= o.depth then return "{...}" end
  seen[t] = true
  local array, n = is_array(t)
  local parts = {}
  if array then
    for i = 1, math.min(n, o.items) do
      parts[#parts + 1] = render(t[i], o, depth + 1, seen, indent .. "  ")
    end
    if n > o.items then parts[#parts + 1] = ("... (%d more)"):format(n - o.items) end
  else
    local keys = {}
    for k in pairs(t) do keys[#keys + 1] = k end
    table.sort(keys, key_less)
    for i = 1, math.min(#keys, o.items) do
      local k = keys[i]
      parts[#parts + 1] = key_repr(k, o) .. " = " ..
        render(t[k], o, depth + 1, seen, indent .. "  ")
    end
    if #keys > o.items then
      parts[#parts + 1] = ("... (%d more)"):format(#keys - o.items)
    end
  end
  seen[t] = nil
  local open, close = "{", "}"
  if array then open, close = "[", "]" end
  local flat = open .. " " .. table.concat(parts, ", ") .. " " .. close
  if #flat + #indent <= o.width and not flat:find("\n", 1, true) then return flat end
  local inner = indent .. "  "
  return open .. "\n" .. inner .. table.concat(parts, ",\n" .. inner) .. "\n" ..
    indent .. close
end

function render(v, o, depth, seen, indent)
  local tv = type(v)
  if tv == "string" then return quote(v, o.strlen) end
  if tv == "table" then return render_table(v, o, depth, seen, indent) end
  if tv == "number" then return number_repr(v, depth > 0) end
  if v == nil then return "nil" end
  local ok, null = pcall(require, "cjson")
  if ok and v == null.null then return "null" end
  return tostring(v)
end

--- format(value [, opts]) -> string. opts: depth, items, width, strlen.
function M.format(v, opts)
  local o = {}
  for k, d in pairs(defaults) do o[k] = (opts and opts[k]) or d end
  return render(v, o, 0, {}, "")
end

return M
