-- Shared by the trainctl benchmark scripts: the signed AiTEMS GET that
-- every loop benchmark makes, built on the native primitives (signing,
-- request, cjson) so that the figures measure the host, and the one-line
-- JSON report that driver.py reads.
local cjson = require("cjson")
local http = require("trainctl._http")
local sign = require("trainctl.sign")
local sys = require("trainctl.sys")

local M = {}

-- Dummy credentials: nginx does not check signatures, but the work of
-- making them is the same.
local ACCESS_KEY = os.getenv("NCLOUD_ACCESS_KEY") or "bench-access-key"
local SECRET_KEY = os.getenv("NCLOUD_SECRET_KEY") or "bench-secret-key"

M.base = os.getenv("BENCH_BASE") or error("BENCH_BASE is not set (run bench/run.sh)")

-- get(path) -> decoded body. path starts at the host ("/api/v1/...") and
-- is what the signature covers, as trainctl.aitems signs it. The headers
-- are the ones the AiTEMS client sends.
function M.get(path)
  local ts = ("%d"):format(sys.now() * 1000 // 1)
  local sig = sign.ncp_v2({ method = "GET", uri = path, timestamp = ts,
    access_key = ACCESS_KEY, secret_key = SECRET_KEY })
  local res, err = http.request({ method = "GET", url = M.base .. path, headers = {
    ["content-type"] = "application/json",
    ["user-agent"] = "trainctl",
    ["x-ncp-apigw-timestamp"] = ts,
    ["x-ncp-iam-access-key"] = ACCESS_KEY,
    ["x-ncp-apigw-signature-v2"] = sig,
  } })
  if not res then error(("GET %s: %s"):format(path, tostring(err and err.message or err)), 0) end
  if res.status ~= 200 then error(("GET %s: HTTP %d"):format(path, res.status), 0) end
  return cjson.decode(res.body)
end

-- The list every sequential and concurrent request fetches.
M.LIST = "/api/v1/services/abc/trains?isRecent=true"

-- check_list(doc): the answer is the recorded one, decoded.
function M.check_list(doc)
  if type(doc.trains) ~= "table" or #doc.trains ~= 4 then
    error("unexpected list_trains answer", 0)
  end
end

function M.cpu()
  local r = sys.rusage()
  return r.utime + r.stime
end

M.clock = sys.clock

-- report(fields): one JSON line on stdout, with the process's CPU time and
-- peak RSS added.
function M.report(fields)
  local r = sys.rusage()
  fields.cpu_seconds = r.utime + r.stime
  fields.maxrss_kb = r.maxrss_kb
  io.stdout:write(cjson.encode(fields), "\n")
end

-- Positional arguments as numbers: n = M.num(1, default).
function M.num(i, default)
  local v = arg[i]
  if v == nil then return default end
  return tonumber(v) or error(("argument %d: number expected, got %q"):format(i, v), 0)
end

return M
