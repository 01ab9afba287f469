-- The help of the operations, as `trainctl call PROVIDER --help`,
-- `trainctl call PROVIDER OPERATION --help` and the REPL's help() print
-- it, from the operation tables (api/ops.lua).
local json = require("trainctl.json")

local M = {}

-- list(specs) -> text: one line per operation.
function M.list(specs)
  local width = 0
  for _, s in ipairs(specs) do width = math.max(width, #s.name) end
  local lines = {}
  for _, s in ipairs(specs) do
    lines[#lines + 1] = ("  %-" .. width .. "s  %s"):format(s.name, s.summary or "")
    local names = {}
    for _, p in ipairs(s.params) do
      names[#names + 1] = p.name .. (p.required and "" or "?")
    end
    lines[#lines + 1] = ("  %-" .. width .. "s    %s %s  (%s)"):format("", s.method, s.path,
      table.concat(names, " "))
  end
  return table.concat(lines, "\n")
end

-- op(spec) -> text: the operation and its parameters.
function M.op(spec)
  local lines = { ("%s: %s %s"):format(spec.name, spec.method, spec.path) }
  if spec.summary then lines[#lines + 1] = "  " .. spec.summary end
  if spec.returns_job then lines[#lines + 1] = "  starts a job (add --wait to wait for it)" end
  for _, p in ipairs(spec.params) do
    local flags = p.required and "required" or (p.to_create and "required to create" or "optional")
    if p.default ~= nil then flags = flags .. ", default " .. json.encode(p.default) end
    lines[#lines + 1] = ("  %s=<%s>  (%s, %s %s)%s"):format(p.name, p.type, flags, p.where,
      p.wire, p.doc and ("  " .. p.doc) or "")
  end
  return table.concat(lines, "\n")
end

return M
