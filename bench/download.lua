-- Download: one large result file through request{output=path}. A small
-- request first sets the baseline of the peak RSS, so the report shows
-- how much the download itself added (it should add nothing: the body
-- goes to the file, not to memory).
--   BENCH_BASE=http://127.0.0.1:PORT trainctl bench/download.lua URL_PATH OUTPUT
local lib = dofile((arg[0]:match("^(.*/)") or "./") .. "lib.lua")
local http = require("trainctl._http")
local sys = require("trainctl.sys")

local path = arg[1] or "/files/result.bin"
local output = arg[2] or error("usage: download.lua URL_PATH OUTPUT", 0)

lib.check_list(lib.get(lib.LIST))
local base_rss = sys.rusage().maxrss_kb

local t0 = lib.clock()
local res, err = http.request({ url = lib.base .. path, output = output })
local seconds = lib.clock() - t0
if not res then error(tostring(err and err.message or err), 0) end
if res.status ~= 200 then error(("GET %s: HTTP %d"):format(path, res.status), 0) end

lib.report({ bytes = res.size, seconds = seconds, rate = res.size / seconds,
  baseline_rss_kb = base_rss, rss_growth_kb = sys.rusage().maxrss_kb - base_rss })
