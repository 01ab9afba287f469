-- Memory per waiting job: J AiTEMS trainings watched at once through the
-- library (aitems training_job, job:wait), each in its own task. Once
-- every job has made its first poll and sleeps, the collector runs a full
-- cycle and the Lua heap is counted: what each waiting job keeps alive.
-- The same is counted for tasks that only sleep (the floor of a task) and
-- for the native poll of bench/waiting.lua (signed GET, decoded answer).
-- MODE "generational" switches Lua's collector to generational mode first.
--   BENCH_BASE=http://127.0.0.1:PORT trainctl bench/jobs.lua [J] [MODE]
local lib = dofile((arg[0]:match("^(.*/)") or "./") .. "lib.lua")
local task = require("trainctl.task")
local sys = require("trainctl.sys")

local jobs = lib.num(1, 10000)
local mode = arg[2] or "incremental"
if mode ~= "incremental" and mode ~= "generational" then
  error("mode: incremental or generational, not " .. mode, 0)
end
collectgarbage(mode)

local function heap()
  collectgarbage("collect")
  collectgarbage("collect")
  return collectgarbage("count") * 1024
end

-- kept(n, body) -> bytes each of n tasks keeps alive once body(i, ready)
-- has called ready() in each and every one waits; the tasks are then
-- cancelled.
local function kept(body)
  local tasks, ready = {}, 0
  local function note() ready = ready + 1 end
  local before = heap()
  for i = 1, jobs do tasks[i] = task.spawn(body, i, note) end
  while ready < jobs do task.sleep(0.05) end
  local during = heap()
  for i = 1, jobs do tasks[i]:cancel() end
  tasks = nil -- luacheck: ignore 311
  return (during - before) / jobs
end

local trains = {}
for _, t in ipairs(lib.get(lib.LIST).trains) do trains[#trains + 1] = t.version end

-- A long interval: every job polls once, then sleeps through the count.
local HOUR = 3600
local client = require("trainctl.aitems").client({ endpoint = lib.base .. "/api/v1" })

local r0 = sys.rusage().maxrss_kb
local sleeping = kept(function(_, ready)
  ready()
  task.sleep(HOUR)
end)
local native = kept(function(i, ready)
  local st = lib.get(("/api/v1/services/svc%d/trains/personalRecommend/versions/v%d"):format(i, i))
  if st.status ~= "learning" then error("unexpected job status " .. tostring(st.status), 0) end
  ready()
  task.sleep(HOUR)
end)
local waiting = kept(function(i, ready)
  -- The recorded trainings all existed before: the job stays pending.
  local j = client:training_job({ service_id = "svc" .. i, types = { "personalRecommend" },
    before = trains })
  j:wait({ quiet = true, interval = HOUR, max_interval = HOUR, jitter = 0,
    on_progress = function() ready() end })
end)

lib.report({ jobs = jobs, mode = mode, sleeping_task_bytes = sleeping,
  native_poll_task_bytes = native, waiting_job_bytes = waiting,
  rss_growth_kb = sys.rusage().maxrss_kb - r0 })
