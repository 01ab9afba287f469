-- Concurrent: T tasks, each making signed GETs of the recorded service
-- list one after another and decoding them, N requests in all.
--   BENCH_BASE=http://127.0.0.1:PORT trainctl bench/concurrent.lua [T] [N]
local lib = dofile((arg[0]:match("^(.*/)") or "./") .. "lib.lua")
local task = require("trainctl.task")

local tasks_n = lib.num(1, 64)
local n = lib.num(2, 64000)
local per_task = n // tasks_n

-- Warm up: one connection per task, as wrk opens its connections first.
local warm = {}
for i = 1, tasks_n do warm[i] = task.spawn(lib.get, lib.LIST) end
task.all(warm)

local cpu0, t0 = lib.cpu(), lib.clock()
local tasks = {}
for i = 1, tasks_n do
  tasks[i] = task.spawn(function()
    for _ = 1, per_task do lib.check_list(lib.get(lib.LIST)) end
  end)
end
task.all(tasks)
local seconds = lib.clock() - t0
local cpu = lib.cpu() - cpu0
local done = per_task * tasks_n

lib.report({ tasks = tasks_n, requests = done, seconds = seconds, rate = done / seconds,
  cpu_per_request_us = cpu / done * 1e6 })
