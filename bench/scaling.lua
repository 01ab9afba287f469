-- Scaling: T tasks, each making signed GETs of the recorded service list
-- one after another and decoding them, N requests in all, with the loop's
-- in-flight limit raised to T so that T requests are in flight at once.
-- Each task first makes one request outside the timing (its connection).
-- A request that fails is counted, not raised: the report says how many.
--   BENCH_BASE=http://127.0.0.1:PORT trainctl bench/scaling.lua [T] [N]
local lib = dofile((arg[0]:match("^(.*/)") or "./") .. "lib.lua")
local task = require("trainctl.task")

local tasks_n = lib.num(1, 64)
local n = lib.num(2, 32000)
local per_task = math.max(1, n // tasks_n)
task.max_inflight(math.max(tasks_n, task.max_inflight()))

local errors, first_error = 0, nil
local function get()
  local ok, doc = pcall(lib.get, lib.LIST)
  if ok then ok = pcall(lib.check_list, doc) end
  if not ok then
    errors = errors + 1
    first_error = first_error or tostring(doc)
  end
end

local warm = {}
for i = 1, tasks_n do warm[i] = task.spawn(get) end
task.all(warm)
warm = nil -- luacheck: ignore 311

local cpu0, t0 = lib.cpu(), lib.clock()
local tasks = {}
for i = 1, tasks_n do
  tasks[i] = task.spawn(function()
    for _ = 1, per_task do get() end
  end)
end
task.all(tasks)
local seconds = lib.clock() - t0
local cpu = lib.cpu() - cpu0
local done = per_task * tasks_n

lib.report({ tasks = tasks_n, requests = done, seconds = seconds, rate = done / seconds,
  errors = errors, first_error = first_error, max_inflight = task.max_inflight(),
  cpu_per_request_us = cpu / done * 1e6 })
