-- A run's memory: a JSON document on disk, rewritten atomically on every
-- change, so a workflow killed at any moment finds its job ids again on
-- the next run instead of starting a second training.
--
--   local state = require("trainctl.state")
--   local id = state.get("service_id")
--   if not id then id = create() state.set("service_id", id) end
--
-- The module-level functions use the run's document (--state FILE, else
-- $XDG_STATE_HOME/trainctl/<script name>.json); state.open(path) gives
-- any other.
local errors = require("trainctl.errors")
local json = require("trainctl.json")

local M = {}

local Doc = {}
Doc.__index = Doc

local function option(name)
  local ok, opts = pcall(require, "trainctl.options")
  if ok and type(opts) == "table" then return opts[name] end
end

local function nonempty(v)
  if v ~= nil and v ~= "" then return v end
end

-- default_path() -> the run's state file.
function M.default_path()
  local explicit = nonempty(option("state"))
  if explicit then return explicit end
  local base = nonempty(os.getenv("XDG_STATE_HOME"))
  if not base then base = (nonempty(os.getenv("HOME")) or ".") .. "/.local/state" end
  local script = nonempty(option("script"))
  local name = "trainctl"
  if script and script ~= "-" then
    name = script:match("([^/]+)$"):gsub("%.lua$", "")
  end
  return base .. "/trainctl/" .. name .. ".json"
end

-- open(path) -> document. A missing file is an empty document; a file
-- that is not a JSON object is an error naming it (never silently reset:
-- that would forget a running training).
function M.open(path)
  local data = {}
  local f = io.open(path, "rb")
  if f then
    local text = f:read("a")
    f:close()
    if text:find("%S") then
      local v, err = json.decode(text)
      if type(v) ~= "table" then
        errors.raise({ kind = "io", message = ("state file %s is not a JSON object (%s); "
          .. "fix or remove it"):format(path, tostring(err or "wrong type")) })
      end
      data = v
    end
  end
  return setmetatable({ path = path, data = data }, Doc)
end

function Doc:get(key)
  return self.data[key]
end

-- set(key, value): records and saves at once. A nil value removes the key.
function Doc:set(key, value)
  self.data[key] = value
  self:save()
  return value
end

function Doc:delete(key)
  return self:set(key, nil)
end

-- update(key, fn): value = fn(old value); saved.
function Doc:update(key, fn)
  return self:set(key, fn(self.data[key]))
end

function Doc:all()
  return self.data
end

function Doc:save()
  local sys = require("trainctl.sys")
  local dir = self.path:match("^(.*)/[^/]*$")
  if dir and dir ~= "" and not sys.stat(dir) then
    local ok, err = sys.mkdir_p(dir, tonumber("700", 8))
    if not ok then
      errors.raise({ kind = "io", message = ("cannot create %s: %s"):format(dir, tostring(err)) })
    end
  end
  local ok, err = sys.write_atomic(self.path, json.encode(self.data, { pretty = true }) .. "\n")
  if not ok then
    local why = tostring(err)
    local prefix = "write: " .. self.path .. ": "
    if why:sub(1, #prefix) == prefix then why = why:sub(#prefix + 1) end
    errors.raise({ kind = "io", message = ("cannot write state file %s: %s"):format(self.path, why) })
  end
  return true
end

local default

-- document() -> the run's document, opened on first use.
function M.document()
  if not default then default = M.open(M.default_path()) end
  return default
end

function M.path() return M.document().path end
function M.get(key) return M.document():get(key) end
function M.set(key, value) return M.document():set(key, value) end
function M.delete(key) return M.document():delete(key) end
function M.update(key, fn) return M.document():update(key, fn) end
function M.all() return M.document():all() end
function M.save() return M.document():save() end

-- use(path): switch the run's document (tests, or a script choosing).
function M.use(path)
  default = path and M.open(path) or nil
  return default
end

return M
