#!/usr/bin/env trainctl
-- The nightly batch: retrain on all three clouds and refresh their
-- results, once per day. Meant for cron:
--
--   15 2 * * *  trainctl --lock /tmp/nightly.lock --timeout 6h \
--                 /opt/trainctl/examples/nightly.lua /var/lib/trainctl/out
--
-- or, on each of a team's hosts, with the lock and the state on etcd
-- (docs/several-machines.md):
--
--   15 2 * * *  trainctl --lock etcd://etcd1:2379/trainctl/nightly/lock \
--                 --state etcd://etcd1:2379/trainctl/nightly/state \
--                 --timeout 6h \
--                 /opt/trainctl/examples/nightly.lua /var/lib/trainctl/out
--
-- Each workflow runs as its own trainctl process with its own state file
-- for the day, so one cloud failing does not stop the others, a run killed
-- halfway resumes the same trainings when started again, and a second run
-- on a day that already succeeded does nothing. NIGHTLY_DATE overrides the
-- day (UTC, YYYY-MM-DD). Exit status 1 when any workflow failed.
--
-- Each workflow gets the time this run has left of its --timeout (less a
-- second, so that it stops first and records where it was); a workflow
-- that runs out of time ends the night with exit 4. A signal to this
-- process, or its own --timeout, ends the running workflow too: trainctl
-- runs it in a process group of its own and stops that group first.
local errors = require("trainctl.errors")
local log = require("trainctl.log")
local output = require("trainctl.output")
local state = require("trainctl.state")
local sys = require("trainctl.sys")

local here = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."
local date = os.getenv("NIGHTLY_DATE") or os.date("!%Y-%m-%d")
local out_dir = (arg and arg[1] or "nightly") .. "/" .. date
local WORKFLOWS = {
  { name = "aitems", script = "aitems_recommend.lua", args = { out_dir .. "/recommendations.jsonl" } },
  { name = "opensearch", script = "opensearch_ctr.lua", args = {}, stdout = out_dir .. "/ctr_metrics.json" },
  { name = "azure", script = "azure_textclass.lua",
    args = { here .. "/data/textclass_inbox", out_dir .. "/classified.jsonl" },
    stdout = out_dir .. "/evaluation.json" },
}

local function quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

-- The interpreter this script runs under, and the options to pass on.
local function interpreter()
  local i = -1
  while arg and arg[i - 1] do i = i - 1 end
  local cmd = { quote(arg and arg[i] or "trainctl") }
  local opts = require("trainctl.options")
  for _, o in ipairs({ "profile", "log_level", "log_format" }) do
    if opts[o] then cmd[#cmd + 1] = "--" .. o:gsub("_", "-") .. " " .. quote(opts[o]) end
  end
  return table.concat(cmd, " ")
end

local function out_of_time(name)
  errors.raise({ kind = "timeout", exit_code = 4,
    message = name .. ": the --timeout for this run was reached" })
end

-- "--timeout 12.345s" with the time this run has left, or "" without one.
local function time_left(name)
  local deadline = sys.deadline()
  if not deadline then return "" end
  local left = deadline - sys.now() - 1
  if left <= 0 then out_of_time(name) end
  return ("--timeout %.3fs"):format(left)
end

local night = state.get("nightly")
if type(night) ~= "table" or night.date ~= date then night = { date = date, done = {} } end
local function save() state.set("nightly", night) end

-- Each workflow's state for the day, beside this run's own. On etcd (a
-- team's hosts taking turns), a prefix under this run's, and a lock of
-- the workflow's own under this run's lock (which this run holds). The
-- workflow of a host that died holds its lock until the lease's TTL runs
-- out, a little after this run's own, so it is waited for (twice the TTL
-- at least), then its records resumed: never a second training.
local opts = require("trainctl.options")
local on_etcd = state.path():match("^etcds?://") ~= nil
local state_dir = state.path():match("^(.*)/[^/]*$") or "."
local function workflow_state(name)
  local base = ("nightly-%s-%s"):format(date, name)
  if not on_etcd then return { "--state", quote(("%s/%s.json"):format(state_dir, base)) } end
  local ttl = opts.lock_ttl or require("trainctl.etcd_lock").DEFAULT_TTL
  return { "--state", quote(state.path() .. "/" .. base), "--lock", quote(opts.lock .. "/" .. name),
    ("--lock-ttl %.3fs --lock-wait %.3fs"):format(ttl, math.max(opts.lock_wait or 0, 2 * ttl + 5)) }
end
assert(os.execute("mkdir -p " .. quote(out_dir)))

local failed = {}
for _, w in ipairs(WORKFLOWS) do
  if night.done[w.name] then
    log.info(w.name .. ": already done today", { date = date })
  else
    local cmd = { interpreter(), time_left(w.name) }
    for _, word in ipairs(workflow_state(w.name)) do cmd[#cmd + 1] = word end
    cmd[#cmd + 1] = quote(here .. "/" .. w.script)
    for _, a in ipairs(w.args) do cmd[#cmd + 1] = quote(a) end
    -- What the workflow prints goes to a file of its own, and becomes
    -- w.stdout only once it succeeded, atomically: a run killed halfway
    -- leaves no partial file. Not io.popen: reading its pipe would hold
    -- this run's other tasks for as long as the workflow runs, the one
    -- that keeps an etcd lock's lease alive among them.
    local printed <close> = w.stdout and setmetatable({ path = os.tmpname() },
      { __close = function(t) os.remove(t.path) end })
    if printed then cmd[#cmd + 1] = "> " .. quote(printed.path) end
    log.info(w.name .. ": starting", { date = date })
    local ok, how, code = os.execute(table.concat(cmd, " "))
    if ok and printed then
      local f <close> = assert(io.open(printed.path, "rb"))
      output.write(w.stdout, f:read("a"))
    end
    if how == "exit" and code == 4 then out_of_time(w.name) end
    if ok then
      night.done[w.name] = true
      save()
      log.info(w.name .. ": done", { date = date })
    else
      failed[#failed + 1] = w.name
      log.error(("%s: failed (%s %s)"):format(w.name, how, tostring(code)), { date = date })
    end
  end
end

if #failed > 0 then
  log.error(("nightly %s: %s failed"):format(date, table.concat(failed, ", ")), { date = date },
    { failed = failed })
  os.exit(1)
end
log.info("nightly: all done", { date = date, output = out_dir })
