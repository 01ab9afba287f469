-- Sequential: N signed GETs of the recorded service list, one after
-- another on one kept-alive connection, each answer decoded.
--   BENCH_BASE=http://127.0.0.1:PORT trainctl bench/sequential.lua [N]
local lib = dofile((arg[0]:match("^(.*/)") or "./") .. "lib.lua")

local n = lib.num(1, 20000)

lib.check_list(lib.get(lib.LIST)) -- connect outside the timed loop
local cpu0, t0 = lib.cpu(), lib.clock()
for _ = 1, n do
  lib.check_list(lib.get(lib.LIST))
end
local seconds = lib.clock() - t0
local cpu = lib.cpu() - cpu0

lib.report({ requests = n, seconds = seconds, rate = n / seconds,
  cpu_per_request_us = cpu / n * 1e6 })
