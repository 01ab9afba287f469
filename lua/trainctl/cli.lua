-- `trainctl call PROVIDER OPERATION [key=value ...]`: one API call from the
-- shell, its decoded JSON answer on stdout. Operations and their
-- parameters come from the providers' own operation tables, so the help
-- never disagrees with the library.
local errors = require("trainctl.errors")
local json = require("trainctl.json")
local ops = require("trainctl.ops")

local M = {}

M.PROVIDERS = {
  { name = "aitems", module = "trainctl.aitems", title = "NAVER Cloud AiTEMS (recommendation)" },
  { name = "opensearch", module = "trainctl.opensearch",
    title = "Alibaba Cloud OpenSearch algorithm functions" },
  { name = "azure_language", module = "trainctl.azure_language",
    title = "Azure AI Language text authoring and analyze-text" },
}

local ALIASES = { ["azure-language"] = "azure_language", azure = "azure_language" }

local USAGE = [[
usage: trainctl call PROVIDER OPERATION [key=value ...] [--wait]
       trainctl call PROVIDER --help
       trainctl call PROVIDER OPERATION --help
Makes one API call and prints the decoded JSON answer on stdout.
Values are converted to the parameter's type: integers, true/false,
JSON ([...] or {...}) or comma-separated lists. body={...} and
query={...} add raw fields. An operation that starts a job prints the
job's state; --wait waits for it to end.
Credentials come from the environment or --profile, never from the
command line.]]

local function provider(name)
  name = ALIASES[name] or name
  for _, p in ipairs(M.PROVIDERS) do
    if p.name == name then return p end
  end
end

local function out(s) io.stdout:write(s, "\n") end

local function providers_help()
  local lines = { USAGE, "Providers:" }
  for _, p in ipairs(M.PROVIDERS) do
    lines[#lines + 1] = ("  %-15s %s"):format(p.name, p.title)
  end
  return table.concat(lines, "\n")
end

local function operations_help(p, mod)
  return ("%s: %s\nOperations and their parameters (? = optional; "
    .. "trainctl call %s OPERATION --help for types):\n%s")
    :format(p.name, p.title, p.name, ops.help_list(mod.operations))
end

local function is_job(v)
  return type(v) == "table" and getmetatable(v) ~= nil and getmetatable(v).__name == "trainctl.job"
end

-- parse(spec, words) -> args, flags
local function parse(spec, words)
  local args, flags = {}, {}
  local by = {}
  for _, p in ipairs(spec.params) do by[p.name], by[p.wire] = p, p end
  for _, w in ipairs(words) do
    if w == "--wait" or w == "--help" or w == "-h" then
      flags[w:gsub("^%-+", "")] = true
    elseif w:find("^%-%-timeout=") then
      flags.timeout = tonumber(w:match("=(.*)$"))
      if not flags.timeout then errors.usage("--timeout= takes seconds") end
    else
      local k, v = w:match("^([^=]+)=(.*)$")
      if not k then errors.usage(("expected key=value, got %q"):format(w)) end
      local p = by[k]
      if p then
        args[p.name] = ops.coerce(p, v)
      elseif k == "body" or k == "query" then
        args[k] = ops.coerce({ name = k, type = "object" }, v)
      else
        local known = {}
        for _, q in ipairs(spec.params) do known[#known + 1] = q.name end
        errors.usage(("%s: unknown parameter %q (known: %s)"):format(spec.name, k,
          #known > 0 and table.concat(known, ", ") or "none"))
      end
    end
  end
  return args, flags
end

local function job_output(j, st)
  return { job = j.ref, state = st.state, progress = st.progress, message = st.message, raw = st.raw }
end

local function run(argv)
  local pname, opname = argv[1], argv[2]
  if pname == nil then
    io.stderr:write(providers_help(), "\n")
    return 2
  end
  if pname == "--help" or pname == "-h" or pname == "help" then
    out(providers_help())
    return 0
  end
  local p = provider(pname)
  if not p then errors.usage(("unknown provider %q (aitems, opensearch, azure_language)"):format(pname)) end
  local mod = require(p.module)
  if opname == nil or opname == "--help" or opname == "-h" then
    out(operations_help(p, mod))
    return 0
  end
  local spec = ops.find(mod.operations, opname)
  if not spec then
    errors.usage(("%s has no operation %q; see: trainctl call %s --help"):format(p.name, opname, p.name))
  end
  local words = {}
  for i = 3, #argv do words[#words + 1] = argv[i] end
  local args, flags = parse(spec, words)
  if flags.help or flags.h then
    out(ops.help_op(spec))
    return 0
  end
  local client = mod.client()
  local result = client[spec.name](client, args)
  if is_job(result) then
    local st
    if flags.wait then
      local ok, err = pcall(result.wait, result, { timeout = flags.timeout })
      if not ok then
        out(json.encode(job_output(result, result.last or { state = "unknown" }), { pretty = true }))
        error(err, 0)
      end
      st = err
    else
      st = result:status()
    end
    out(json.encode(job_output(result, st), { pretty = true }))
    return 0
  end
  if result == nil then result = json.null end
  out(json.encode(result, { pretty = true }))
  return 0
end

local function exit_code(e)
  if e.exit_code then return e.exit_code end
  if e.kind == "usage" then return 2 end
  return 1
end

-- main(argv [, command]) -> exit status. argv: the words after the
-- command (`call`, or `state`).
function M.main(argv, command)
  local fn = run
  if command == "state" then fn = require("trainctl.state_cli").run end
  if command == "completion" then fn = require("trainctl.completion").run end
  if command == "config" or command == "whoami" then fn = require("trainctl.config_cli").run end
  local ok, res = pcall(fn, argv or {})
  if ok then return res end
  if errors.is(res) then
    local code = exit_code(res)
    require("trainctl.log").report(tostring(res), res, code)
    return code
  end
  error(res, 0)
end

return M
