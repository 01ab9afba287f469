-- Waiting at scale: J training jobs watched at once, each by its own task
-- that sleeps for the interval and then makes a signed GET of the job's
-- status, for D seconds. The first polls are spread over one interval, as
-- the jitter of job:wait spreads them, so the server sees a steady rate.
-- A task stops at the deadline even when it is behind, so a loop that
-- cannot keep up shows as fewer polls than jobs * D / interval and as
-- lateness, not as a run that never ends.
-- LEAD seconds pass before the first polls, so that starting the tasks
-- (100,000 of them take seconds) is not counted as lateness; how long the
-- start took is reported (started_s).
-- GC sets the collector for the figures that show what it does to the
-- memory: a number is its pause (collectgarbage("setpause", GC)),
-- "generational" Lua 5.4's generational mode.
--   BENCH_BASE=http://127.0.0.1:PORT trainctl bench/waiting.lua [J] [D] [interval] [GC] [LEAD]
local lib = dofile((arg[0]:match("^(.*/)") or "./") .. "lib.lua")
local task = require("trainctl.task")

local jobs = lib.num(1, 10000)
local duration = lib.num(2, 30)
local interval = lib.num(3, 1)
if arg[4] == "generational" then
  collectgarbage("generational")
elseif arg[4] and arg[4] ~= "" then
  collectgarbage("setpause", lib.num(4))
end
local lead = lib.num(5, 0)

-- How late each sleep woke, in milliseconds; a histogram keeps the
-- memory of the measurement itself out of the RSS being measured.
local late = {}
for i = 0, 1000 do late[i] = 0 end
local polls, worst = 0, 0

local function note_lateness(s)
  local ms = s * 1000
  if ms > worst then worst = ms end
  local b = math.min(1000, math.max(0, ms // 1))
  late[b] = late[b] + 1
end

local function percentile(p)
  local want, seen = polls * p, 0
  for i = 0, 1000 do
    seen = seen + late[i]
    if seen >= want then return i end
  end
  return 1000
end

local spawned = lib.clock()
local t0 = spawned + lead
local cpu0 = lib.cpu()
local deadline = t0 + duration
local started, started_at = 0, nil

local function watch(i)
  local path = ("/api/v1/services/svc%d/trains/personalRecommend/versions/v%d"):format(i, i)
  local wake = t0 + interval * (i - 1) / jobs
  started = started + 1
  if started == jobs then started_at = lib.clock() end
  while true do
    local d = wake - lib.clock()
    if d > 0 then task.sleep(d) end
    note_lateness(lib.clock() - wake)
    local st = lib.get(path)
    if st.status ~= "learning" then error("unexpected job status " .. tostring(st.status), 0) end
    polls = polls + 1
    wake = wake + interval
    if wake >= deadline or lib.clock() >= deadline then return end
  end
end

local tasks = {}
for i = 1, jobs do tasks[i] = task.spawn(watch, i) end
task.all(tasks)
local seconds = lib.clock() - spawned
local cpu = lib.cpu() - cpu0

lib.report({ jobs = jobs, duration = duration, interval = interval, seconds = seconds,
  polls = polls, expected_polls = jobs * math.ceil(duration / interval), rate = polls / seconds,
  cpu_per_poll_us = cpu / polls * 1e6,
  cpu_share = cpu / seconds, late_p50_ms = percentile(0.5), late_p99_ms = percentile(0.99),
  late_max_ms = worst, lead = lead, started_s = started_at and started_at - spawned })
