-- The error object every provider client raises: a table with a kind, the
-- fields of docs/lua-api.md ("Errors") and a __tostring, so the host can
-- print it and pick the exit status (exit_code, else 2 for usage, else 1).
local M = {}

local Error = {}
Error.__index = Error
Error.__name = "trainctl.error"

M.KINDS = {
  network = true, timeout = true, http = true, auth = true, api = true,
  decode = true, training_failed = true, usage = true, tls = true,
  too_large = true, interrupted = true, io = true, state = true,
}

local function where(e)
  local parts = {}
  if e.method and e.url then
    parts[#parts + 1] = e.method .. " " .. e.url
  end
  if e.request_id and e.request_id ~= "" then
    parts[#parts + 1] = "request id " .. tostring(e.request_id)
  end
  if e.retry_after then
    parts[#parts + 1] = ("retry after %gs"):format(e.retry_after)
  end
  if #parts == 0 then return "" end
  return " [" .. table.concat(parts, "; ") .. "]"
end

function Error.__tostring(e)
  local head = e.kind == "usage" and "usage error" or (e.kind .. " error")
  if e.provider then head = e.provider .. ": " .. head end
  local detail = {}
  if e.status then detail[#detail + 1] = "HTTP " .. tostring(e.status) end
  if e.code and e.code ~= "" then detail[#detail + 1] = tostring(e.code) end
  if #detail > 0 then head = head .. " (" .. table.concat(detail, ", ") .. ")" end
  local hint = e.hint and ("; " .. tostring(e.hint)) or ""
  return head .. ": " .. tostring(e.message or "unknown error") .. hint .. where(e)
end

-- new{kind=..., message=..., ...}: copies the fields into a fresh object.
-- Whatever went into them (a server's answer, a job's status), no secret
-- the program knows of stays in it.
function M.new(fields)
  local e = {}
  for k, v in pairs(fields) do e[k] = v end
  e.kind = e.kind or "api"
  e.message = e.message or e.kind
  return setmetatable(require("trainctl.log").redact(e), Error)
end

function M.raise(fields, level)
  error(M.new(fields), level or 2)
end

function M.usage(message, fields)
  local e = M.new(fields or {})
  e.kind, e.message = "usage", message
  error(e, 2)
end

-- not_found(e): e is the provider's own answer that the object asked for
-- does not exist (its not-found code, not merely a 404 that a gateway or
-- a proxy could have sent).
function M.not_found(e)
  if not M.is(e) or type(e.provider) ~= "string" or not e.provider:match("^[%w_]+$") then return false end
  local ok, mod = pcall(require("trainctl.providers").load, e.provider)
  return ok and type(mod) == "table" and type(mod.not_found) == "function" and mod.not_found(e) or false
end

-- is(v [, kind]): v is a trainctl error (of that kind).
function M.is(v, kind)
  return getmetatable(v) == Error and (kind == nil or v.kind == kind)
end

return M
