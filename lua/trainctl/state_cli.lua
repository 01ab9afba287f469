-- `trainctl state list|show KEY|forget KEY|path`: the records a workflow
-- keeps in trainctl.state, seen and cleared without editing JSON. JSON
-- on stdout when it is not a terminal, so scripts can read it.
local errors = require("trainctl.errors")
local exit = require("trainctl.exit")
local json = require("trainctl.json")
local state = require("trainctl.state")
local sys = require("trainctl.sys")
local utf8 = require("utf8")

local M = {}

M.USAGE = [[
usage: trainctl state list   --state FILE|URL | --script SCRIPT
       trainctl state show   KEY --state ... | --script ...
       trainctl state forget KEY --state ... | --script ...
       trainctl state path   [--state ... | --script ...]
The records a workflow keeps in trainctl.state: which objects it made and
which training it started, so that a rerun resumes instead of starting a
second one. The store is --state (a file or etcd:// URL), or the one a
run of SCRIPT uses by default ($XDG_STATE_HOME/trainctl/<name>.json).
Forgetting a record makes the next run start that work over: a training
still running is waited for (examples start trainings with adopt = true);
one that ended is not known any more, and a new one is started.]]

local function out(s)
  io.stdout:write(s, "\n")
end

-- parse(argv) -> action, key, store spec.
local TRY = "; try 'trainctl state --help'"

local function parse(argv)
  local words, spec, script = {}, nil, nil
  local i, options = 1, true
  while i <= #argv do
    local a = argv[i]
    local name, value = a:match("^(%-%-[%w-]+)=(.*)$")
    name = name or a
    if not options then
      words[#words + 1] = a
    elseif a == "--" then
      options = false
    elseif name == "--state" or name == "--script" then
      if not value then
        i = i + 1
        value = argv[i]
      end
      if value == nil or value == "" then errors.usage(name .. " needs a value" .. TRY) end
      if name == "--state" then spec = value else script = value end
    elseif a == "--help" or a == "-h" then
      return "help"
    elseif a:sub(1, 1) == "-" and #a > 1 then
      errors.usage(("unknown option %s for trainctl state (a key that starts with '-' goes after --)%s")
        :format(a, TRY))
    else
      words[#words + 1] = a
    end
    i = i + 1
  end
  -- --state may also have been taken as the global option it is.
  local config = require("trainctl.config")
  if script and (spec or config.option("state")) then
    errors.usage("give --state or --script, not both")
  end
  if script then config.set_option("script", script) end
  return words[1], words, spec
end

-- summary(v) -> one line describing a record for the terminal listing.
local function summary(v)
  local s = json.encode(v)
  if #s > 60 then
    -- Cut on a character, not inside one.
    local cut = utf8.offset(s, 58) or 58
    s = s:sub(1, cut - 1) .. "..."
  end
  return s
end

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys)
  return keys
end

local function need_key(action, words, n)
  if #words ~= n then
    errors.usage(("trainctl state %s takes %s%s"):format(action, n == 2 and "one KEY" or "no other word", TRY))
  end
  return words[2]
end

local function missing(doc, key, records)
  local keys = sorted_keys(records)
  errors.raise({ kind = "state", message = ("no record %s in state %s (%s)"):format(key, doc:where(),
    #keys == 0 and "it holds none" or ("keys: " .. table.concat(keys, ", "))) })
end

-- run(argv) -> exit status.
function M.run(argv)
  local action, words, spec = parse(argv)
  if action == "help" then
    out(M.USAGE)
    return exit.OK
  elseif action == nil then
    io.stderr:write(M.USAGE, "\n")
    return exit.USAGE
  end
  local ACTIONS = { path = true, list = true, show = true, forget = true }
  if not ACTIONS[action] then errors.usage(("unknown state command %q%s"):format(action, TRY)) end
  local tty = sys.isatty(1)
  local config = require("trainctl.config")
  -- Without --state or --script the store would be the one of `-e` runs,
  -- rarely the one meant: an empty listing would look like an answer.
  if action ~= "path" and not spec and not config.option("state") and not config.option("script") then
    errors.usage(("trainctl state %s: which store? give --state FILE|URL, or --script SCRIPT for the one "
      .. "a run of SCRIPT uses%s"):format(action, TRY))
  end
  local where = spec or state.default_path()
  if action ~= "path" and not where:find("^etcds?://") and not sys.stat(where) then
    errors.raise({ kind = "state", message = ("no state file at %s (nothing was recorded there)"):format(where) })
  end
  local doc = state.open(where)
  if action == "path" then
    need_key(action, words, 1)
    out(doc:where())
  elseif action == "list" then
    need_key(action, words, 1)
    local records = doc:all()
    if not tty then
      out(json.encode(records))
      return exit.OK
    end
    local keys = sorted_keys(records)
    if #keys == 0 then
      io.stderr:write(("no records in state %s\n"):format(doc:where()))
      return exit.OK
    end
    -- Keys and values are anybody's text: shown escaped on a terminal.
    local log = require("trainctl.log")
    for _, k in ipairs(keys) do out(log.escape(k) .. "  " .. log.escape(summary(records[k]))) end
  elseif action == "show" then
    local key = need_key(action, words, 2)
    local records = doc:all()
    if records[key] == nil then missing(doc, key, records) end
    out(json.encode(records[key], { pretty = tty }))
  elseif action == "forget" then
    local key = need_key(action, words, 2)
    local records = doc:all()
    if records[key] == nil then missing(doc, key, records) end
    doc:delete(key)
    io.stderr:write(("forgot %s (state %s)\n"):format(key, doc:where()))
  end
  return exit.OK
end

return M
