-- What the interactive loop needs from Lua: showing results and
-- completing names. Completion only reads tables (raw where it can), so
-- pressing Tab never runs a request.

local pretty = require "trainctl.pretty"

local M = {}

function M.show(...)
  local n = select("#", ...)
  local out = {}
  for i = 1, n do out[i] = pretty.format((select(i, ...))) end
  io.stdout:write(table.concat(out, "\t"), "\n")
  io.stdout:flush()
end

local function fields(t, seen, acc)
  if type(t) ~= "table" or seen[t] then return acc end
  seen[t] = true
  for k in next, t do
    if type(k) == "string" then acc[k] = true end
  end
  local mt = getmetatable(t)
  if type(mt) == "table" then
    local index = rawget(mt, "__index")
    if type(index) == "table" then fields(index, seen, acc) end
  end
  return acc
end

--- complete(word) -> sorted list of completions of word, which may be
--- a dotted path ("string.fo") or a method call ("client:li").
function M.complete(word)
  local path, sep, partial = word:match("^(.-)([%.:])([%w_]*)$")
  local target = _G
  if path then
    for name in path:gmatch("[^%.:]+") do
      if type(target) ~= "table" then return {} end
      target = rawget(target, name)
      if target == nil then
        local mt = getmetatable(target)
        if mt == nil then return {} end
      end
    end
    if type(target) == "string" then target = string end
  else
    partial, path, sep = word, "", ""
  end
  local names = fields(target, {}, {})
  local out = {}
  -- Names that start with "_" are internal (ai:_send, _G): offered only
  -- once the user types the "_".
  local hidden = partial:sub(1, 1) ~= "_"
  for name in pairs(names) do
    if name:sub(1, #partial) == partial and name:match("^[%a_][%w_]*$")
      and not (hidden and name:sub(1, 1) == "_") then
      local v = target[name]
      local suffix = ""
      if type(v) == "function" then suffix = sep == ":" and "(" or "" end
      if sep == ":" and type(v) ~= "function" then goto continue end
      out[#out + 1] = path .. sep .. name .. suffix
    end
    ::continue::
  end
  table.sort(out)
  return out
end

return M
