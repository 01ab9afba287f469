-- Writing results: a value as JSON, a list of records as JSON Lines or CSV.
-- Files are replaced atomically (a new file, fsync, rename over), so a
-- reader never sees half a file and a failed write leaves the old one.
-- The path "-" means standard output.
local csv = require("trainctl.csv")
local errors = require("trainctl.errors")
local json = require("trainctl.json")

local M = {}

local function dirname(path)
  return path:match("^(.*)/[^/]*$")
end

-- write(path, data): atomically; raises an "io" error naming the file.
function M.write(path, data)
  if path == "-" then
    local ok, err = io.stdout:write(data)
    if ok then ok, err = io.stdout:flush() end
    if not ok then
      errors.raise({ kind = "io", message = ("cannot write stdout: %s"):format(tostring(err)) })
    end
    return true
  end
  local sys = require("trainctl.sys")
  local dir = dirname(path)
  if dir and dir ~= "" and not sys.stat(dir) then
    local ok, err = sys.mkdir_p(dir, tonumber("755", 8))
    if not ok then
      errors.raise({ kind = "io", message = ("cannot create %s: %s"):format(dir, tostring(err)) })
    end
  end
  local ok, err = sys.write_atomic(path, data)
  if not ok then
    -- "write: PATH: No space left on device" -> "No space left on device"
    local why = tostring(err)
    local prefix = "write: " .. path .. ": "
    if why:sub(1, #prefix) == prefix then why = why:sub(#prefix + 1) end
    errors.raise({ kind = "io", message = ("cannot write %s: %s"):format(path, why) })
  end
  return true
end

-- json(path, value [, {pretty=false}]): pretty-printed unless told otherwise.
function M.json(path, value, opts)
  local pretty = not (opts and opts.pretty == false)
  return M.write(path, json.encode(value, { pretty = pretty }) .. "\n")
end

-- jsonl(path, records): one compact JSON document per line.
function M.jsonl(path, records)
  local lines = {}
  for i, rec in ipairs(records) do lines[i] = json.encode(rec) end
  return M.write(path, #lines > 0 and (table.concat(lines, "\n") .. "\n") or "")
end

-- csv(path, records [, {columns = {...}}])
function M.csv(path, records, opts)
  return M.write(path, csv.encode(records, opts and opts.columns))
end

return M
