#!/usr/bin/env trainctl
-- The nightly batch: retrain on all three clouds and refresh their
-- results, once per day. Meant for cron:
--
--   15 2 * * *  trainctl --lock /tmp/nightly.lock --timeout 6h \
--                 /opt/trainctl/examples/nightly.lua /var/lib/trainctl/out
--
-- Each workflow runs as its own trainctl process with its own state file
-- for the day, so one cloud failing does not stop the others, a run killed
-- halfway resumes the same trainings when started again, and a second run
-- on a day that already succeeded does nothing. NIGHTLY_DATE overrides the
-- day (UTC, YYYY-MM-DD). Exit status 1 when any workflow failed.
local log = require("trainctl.log")
local output = require("trainctl.output")
local state = require("trainctl.state")

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

local night = state.get("nightly")
if type(night) ~= "table" or night.date ~= date then night = { date = date, done = {} } end
local function save() state.set("nightly", night) end

local state_dir = state.path():match("^(.*)/[^/]*$") or "."
assert(os.execute("mkdir -p " .. quote(out_dir)))

local failed = {}
for _, w in ipairs(WORKFLOWS) do
  if night.done[w.name] then
    log.info(w.name .. ": already done today", { date = date })
  else
    local cmd = { interpreter(), "--state", quote(("%s/nightly-%s-%s.json"):format(state_dir, date, w.name)),
      quote(here .. "/" .. w.script) }
    for _, a in ipairs(w.args) do cmd[#cmd + 1] = quote(a) end
    log.info(w.name .. ": starting", { date = date })
    local ok, how, code
    if w.stdout then
      -- What the workflow prints becomes the file only once it succeeded,
      -- and atomically: a run killed halfway leaves no partial file.
      local p = assert(io.popen(table.concat(cmd, " ")))
      local text = p:read("a")
      ok, how, code = p:close()
      if ok then output.write(w.stdout, text) end
    else
      ok, how, code = os.execute(table.concat(cmd, " "))
    end
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
