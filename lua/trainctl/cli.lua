-- `trainctl call PROVIDER OPERATION [key=value ...]`: one API call from the
-- shell, its answer on stdout (JSON, JSON lines, a table, TSV or YAML,
-- through --jq if asked); `trainctl wait|status PROVIDER REF` on a job
-- reference a call printed. Operations and their
-- parameters come from the providers' own operation tables, so the help
-- never disagrees with the library.
local errors = require("trainctl.errors")
local exit = require("trainctl.exit")
local format = require("trainctl.format")
local json = require("trainctl.json")
local ops = require("trainctl.api.ops")
local registry = require("trainctl.providers")

local M = {}

-- The providers, from their registry.
M.PROVIDERS = registry.list

local USAGE = [[
usage: trainctl call PROVIDER OPERATION [key=value ...] [options]
       trainctl call PROVIDER --help
       trainctl call PROVIDER OPERATION --help
       trainctl wait PROVIDER REF      wait for a job (REF: the JSON a call printed)
       trainctl status PROVIDER REF    show a job's state once
Makes one API call and prints the answer on stdout.
Values are converted to the parameter's type: integers, true/false,
JSON ([...] or {...}) or comma-separated lists. body={...} and
query={...} add raw fields.
Options (before PROVIDER or anywhere after OPERATION, up to --):
  --all             follow every page of a list and print one list
  --max-items N     stop after N items (implies --all)
  -o, --output FMT  json, jsonl, table, tsv or yaml (default json: pretty
                    on a terminal, compact when piped)
  --columns a,b     the columns of table and tsv
  --jq EXPR         filter the answer with jq's language (as gh --jq)
  --wait            wait for the job an operation starts (progress on a
                    terminal; exit 0 succeeded, 1 failed, 4 --timeout)
  --no-wait         print the job reference at once, without its state
  -y, --yes         delete without asking (needed when stdin is not a
                    terminal)
  --timeout DUR     bound the whole call, transfers included (30s, 5m, 6h);
                    exit 4
The global options (--profile, --log-level, --log-format, --state, --lock,
--timeout) may come anywhere before `--`. Credentials come from the
environment or --profile, never from the command line.]]

local provider = registry.find

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
    :format(p.name, p.title, p.name, require("trainctl.help").list(mod.operations))
end

local function is_job(v)
  return type(v) == "table" and getmetatable(v) ~= nil and getmetatable(v).__name == "trainctl.job"
end

-- The options of call, wait and status: those that take a value, and
-- those that do not.
local VALUED = { ["--max-items"] = "max_items", ["--output"] = "output", ["-o"] = "output",
  ["--columns"] = "columns", ["--jq"] = "jq" }
local SWITCHES = { ["--all"] = "all", ["--wait"] = "wait", ["--no-wait"] = "no_wait",
  ["--yes"] = "yes", ["-y"] = "yes", ["--help"] = "help", ["-h"] = "help" }

-- option_names() -> the long options of call, sorted (for suggestions
-- and completion).
function M.option_names()
  local names = {}
  for k in pairs(VALUED) do if k:find("^%-%-") then names[#names + 1] = k end end
  for k in pairs(SWITCHES) do if k:find("^%-%-") then names[#names + 1] = k end end
  table.sort(names)
  return names
end

-- valued_option_names() -> the options of call that take a value, short
-- ones included, sorted (completion skips the word after them).
function M.valued_option_names()
  local names = {}
  for k in pairs(VALUED) do names[#names + 1] = k end
  table.sort(names)
  return names
end

-- format_names() -> the output formats, sorted.
function M.format_names()
  local names = {}
  for k in pairs(format.FORMATS) do names[#names + 1] = k end
  table.sort(names)
  return names
end

-- option(words, i, flags) -> next index, when words[i] is an option.
local function option(words, i, flags)
  local w = words[i]
  local name, value = w:match("^(%-%-[%w-]+)=(.*)$")
  if not name then
    name = w
    -- -oyaml and -o=yaml alike, as --output=yaml
    if w:find("^%-o.") then name, value = "-o", w:sub(3):gsub("^=", "", 1) end
  end
  if SWITCHES[name] and value == nil then
    flags[SWITCHES[name]] = true
    return i + 1
  end
  local key = VALUED[name]
  if not key then
    local near = ops.closest(name:gsub("^%-+", ""), M.option_names())
    errors.usage(("unknown option %s%s (see: trainctl call --help)"):format(name,
      near and ("; did you mean %s?"):format(near) or ""))
  end
  if value == nil then
    i = i + 1
    value = words[i]
    if value == nil then errors.usage(("%s needs a value"):format(name)) end
  end
  flags[key] = value
  return i + 1
end

-- check(flags): the values of the options.
local function check(flags)
  if flags.output and not format.FORMATS[flags.output] then
    errors.usage(("-o: unknown format %q (json, jsonl, table, tsv, yaml)"):format(flags.output))
  end
  if flags.max_items then
    local n = math.tointeger(tonumber(flags.max_items))
    if not n or n < 1 then
      errors.usage(("--max-items: %q is not a positive integer"):format(flags.max_items))
    end
    flags.max_items, flags.all = n, true
  end
  if flags.columns then
    local list = {}
    for c in flags.columns:gmatch("[^,]+") do list[#list + 1] = c end
    flags.columns = list
  end
  if flags.wait and flags.no_wait then errors.usage("--wait and --no-wait exclude each other") end
  return flags
end

-- parse(spec, words) -> args, flags. After `--`, only key=value words.
local function parse(spec, words)
  local args, flags = {}, {}
  local by = {}
  for _, p in ipairs(spec.params) do by[p.name], by[p.wire] = p, p end
  local i, rest = 1, false
  while i <= #words do
    local w = words[i]
    if not rest and w == "--" then
      rest, i = true, i + 1
    elseif not rest and w:find("^%-") then
      i = option(words, i, flags)
    elseif not rest and w == "help" then -- as in `trainctl call help`
      flags.help, i = true, i + 1
    else
      local k, v = w:match("^([^=]+)=(.*)$")
      if not k then errors.usage(("expected key=value, got %q"):format(w)) end
      local p = by[k]
      if p then
        args[p.name] = ops.coerce(p, v)
      elseif k == "body" or k == "query" then
        args[k] = ops.coerce({ name = k, type = "object" }, v)
      else
        errors.usage(ops.unknown_param(spec, k))
      end
      i = i + 1
    end
  end
  return args, check(flags)
end

local function job_output(p, j, st)
  return { provider = p.name, job = j.ref, state = st.state, progress = st.progress,
    message = st.message, raw = st.raw }
end

-- print(value, flags [, key]): the answer in the format asked for,
-- redacted: a proxy or a debugging endpoint may echo the request's
-- credentials in its answer, and stdout is kept as clean as the logs.
local function print_answer(value, flags, key)
  local sys = require("trainctl.sys")
  local o = { format = flags.output, pretty = sys.isatty(1), columns = flags.columns, key = key }
  local text
  value = require("trainctl.log").redact_values(value)
  if flags.jq then
    text = format.render_jq(format.jq(flags.jq, value), o)
  else
    text = format.render(value, o)
  end
  io.stdout:write(text)
end

-- announce(p, j): the reference on stderr before any wait, so that an
-- interrupted wait never loses it.
local function announce(p, j)
  local log = require("trainctl.log")
  local ref = json.encode(j.ref)
  local msg = ("%s: started; wait for it with: trainctl wait %s '%s'"):format(j.label, p.name,
    (ref:gsub("'", "'\\''")))
  if log.enabled("info") then
    log.info(msg, nil, { job = j.ref, provider = p.name })
  else
    io.stderr:write("trainctl: ", msg, "\n")
  end
end

-- wait_job(p, j, flags) -> exit status. The run's --timeout bounds the
-- wait: it ends a moment before, with the last state printed and exit 4.
local function wait_job(p, j, flags)
  local sys = require("trainctl.sys")
  local timeout
  local deadline = sys.deadline()
  if deadline then
    local left = deadline - sys.now()
    timeout = math.max(0, left - math.min(1, left * 0.2))
  end
  local ok, st = pcall(j.wait, j, { timeout = timeout })
  if ok then
    print_answer(job_output(p, j, st), flags)
    return exit.OK
  end
  if errors.is(st) then
    print_answer(job_output(p, j, j.last or { state = "unknown" }), flags)
    if errors.is(st, "timeout") then
      st.exit_code = exit.TIMEOUT
      -- The wait ends a moment before the run's --timeout, which is the
      -- bound the user gave: the message names that one.
      local total = require("trainctl.config").option("timeout")
      if deadline and total and type(st.message) == "string" then
        st.message = st.message:gsub("did not finish within %S+",
          "did not finish within " .. require("trainctl.core.wait").duration(total):gsub("%%", "%%%%"), 1)
      end
    end
  end
  error(st, 0)
end

local function run_job(p, j, flags)
  if flags.no_wait then
    announce(p, j)
    print_answer({ provider = p.name, job = j.ref }, flags)
    return exit.OK
  end
  announce(p, j)
  if flags.wait then return wait_job(p, j, flags) end
  print_answer(job_output(p, j, j:status()), flags)
  return exit.OK
end

-- confirm(p, spec, args, flags): a delete asks first on a terminal; off
-- a terminal (cron) it needs --yes, and nothing is deleted without it.
local function confirm(p, spec, args, flags)
  if spec.method ~= "DELETE" or flags.yes then return true end
  local what = {}
  for _, q in ipairs(spec.path_params) do
    if args[q.name] ~= nil then what[#what + 1] = ops.text(args[q.name]) end
  end
  local target = ("%s %s %s"):format(p.name, spec.name, table.concat(what, "/"))
  if not require("trainctl.sys").isatty(0) then
    errors.usage(("%s: not confirmed, nothing deleted; add --yes to delete without asking "
      .. "(stdin is not a terminal)"):format(target))
  end
  io.stderr:write(("%s: delete? [y/N] "):format(target))
  io.stderr:flush()
  local answer = io.stdin:read("l")
  if answer and answer:lower():find("^%s*y") then return true end
  -- Ctrl-D ends the input without ending the prompt's line.
  if answer == nil then io.stderr:write("\n") end
  io.stderr:write("trainctl: not confirmed; nothing deleted\n")
  return false
end

local function find_provider(pname)
  local p = provider(pname)
  if not p then
    local names = registry.names()
    local near = ops.closest(pname, names)
    errors.usage(("unknown provider %q%s (%s)"):format(pname,
      near and ("; did you mean %s?"):format(near) or "", table.concat(names, ", ")))
  end
  return p
end

local function find_operation(p, mod, opname)
  local spec = ops.find(mod.operations, opname)
  if spec then return spec end
  local names = {}
  for _, s in ipairs(mod.operations) do names[#names + 1] = s.name end
  local near = ops.closest(opname, names)
  errors.usage(("%s has no operation %q%s; see: trainctl call %s --help"):format(p.name, opname,
    near and (" (did you mean %s?)"):format(near) or "", p.name))
end

-- more_pages(answer, spec): one page of a longer list says so on stderr,
-- where the answer shows it (a nextLink, a TotalCount beyond this page).
local function more_pages(answer, spec)
  if type(answer) ~= "table" then return end
  local page = require("trainctl.api.page")
  local list = page.get(answer, spec.items)
  local link = page.get(answer, "nextLink")
  local total = tonumber(page.get(answer, "TotalCount"))
  local shown = type(list) == "table" and #list or 0
  if (type(link) == "string" and link ~= "") or (total and total > shown) then
    require("trainctl.log").info(("%s: %s; add --all for every page, or --max-items N"):format(spec.name,
      total and ("this page has %d of %d items"):format(shown, total) or "more items on further pages"))
  end
end

-- options_last(argv) -> argv with the options written before PROVIDER
-- (`call --output table aitems list_services`) moved after OPERATION,
-- where parse reads them; an unknown one is refused here.
local function options_last(argv)
  local lead, i = {}, 1
  while argv[i] and argv[i]:find("^%-.") and argv[i] ~= "--" and argv[i] ~= "--help" and argv[i] ~= "-h" do
    local j = option(argv, i, {})
    for k = i, j - 1 do lead[#lead + 1] = argv[k] end
    i = j
  end
  if #lead == 0 then return argv end
  if argv[i] == nil then return {} end -- options alone: the usage
  if argv[i + 1] == nil then return { argv[i] } end -- PROVIDER alone: its operations
  local words = { argv[i], argv[i + 1] }
  for _, w in ipairs(lead) do words[#words + 1] = w end
  for k = i + 2, #argv do words[#words + 1] = argv[k] end
  return words
end

local function run(argv)
  argv = options_last(argv)
  local pname, opname = argv[1], argv[2]
  if pname == nil then
    io.stderr:write(providers_help(), "\n")
    return exit.USAGE
  end
  if pname == "--help" or pname == "-h" or pname == "help" then
    out(providers_help())
    return exit.OK
  end
  local p = find_provider(pname)
  local mod = require(p.module)
  if opname == nil or opname == "--help" or opname == "-h" or opname == "help" then
    out(operations_help(p, mod))
    return exit.OK
  end
  local spec = find_operation(p, mod, opname)
  local words = {}
  for i = 3, #argv do words[#words + 1] = argv[i] end
  local args, flags = parse(spec, words)
  if flags.help then
    out(require("trainctl.help").op(spec))
    return exit.OK
  end
  if flags.all and not spec.items then
    errors.usage(("--all: %s is not a list operation"):format(spec.name))
  end
  if (flags.wait or flags.no_wait) and not spec.returns_job and not spec.lro then
    errors.usage(("--wait, --no-wait: %s does not start a job"):format(spec.name))
  end
  local client = mod.client()
  ops.check_missing(spec, args, client.defaults)
  if not confirm(p, spec, args, flags) then return exit.ERROR end
  if flags.all then
    local list = require("trainctl.api.page").collect(client:each(spec.name, args), flags.max_items)
    print_answer(json.array(list), flags)
    return exit.OK
  end
  local result = client[spec.name](client, args)
  if is_job(result) then return run_job(p, result, flags) end
  if result == nil then result = json.null end
  print_answer(result, flags, spec.items)
  if spec.items then more_pages(result, spec) end
  return exit.OK
end

-- read_ref(text) -> the job reference in a call's printed answer (or the
-- reference itself); "-" reads it from stdin.
local function read_ref(text)
  if text == "-" then text = io.stdin:read("a") or "" end
  local v = json.decode(text)
  if type(v) ~= "table" then
    errors.usage(("REF must be the JSON a call printed for a job, e.g. '{\"provider\":\"%s\",\"job\":{...}}'")
      :format(registry.list[1].name))
  end
  if type(v.job) == "table" then return v.job, v.provider end
  return v, nil
end

-- wait|status [PROVIDER] REF [-o FMT] [--jq EXPR]
local function run_ref(argv, command)
  local words, flags, i = {}, {}, 1
  while i <= #argv do
    if argv[i]:find("^%-.") then
      i = option(argv, i, flags)
    elseif argv[i] == "help" and #words == 0 then -- not a REF, nor a provider
      flags.help, i = true, i + 1
    else
      words[#words + 1] = argv[i]
      i = i + 1
    end
  end
  check(flags)
  if flags.help or #words == 0 then
    local text = ("usage: trainctl %s PROVIDER REF [-o FMT] [--jq EXPR]\n"
      .. "REF is the JSON `trainctl call` printed for a job (or - to read it from stdin).")
      :format(command)
    if flags.help then out(text) return exit.OK end
    io.stderr:write(text, "\n")
    return exit.USAGE
  end
  local pname, text = words[1], words[2]
  if #words == 1 then pname, text = nil, words[1] end
  if #words > 2 then errors.usage(("%s: unexpected %q"):format(command, words[3])) end
  local ref, named = read_ref(text)
  pname = pname or named
  if not pname then errors.usage(command .. ": which provider? trainctl " .. command .. " PROVIDER REF") end
  local p = find_provider(pname)
  if named and provider(named) and provider(named).name ~= p.name then
    errors.usage(("%s: the reference is of %s, not %s"):format(command, named, p.name))
  end
  local mod = require(p.module)
  local j = mod.reopen(mod.client(), ref)
  if not j then
    errors.usage(("%s: not a job reference of %s: %s"):format(command, p.name, json.encode(ref)))
  end
  if command == "wait" then return wait_job(p, j, flags) end
  print_answer(job_output(p, j, j:status()), flags)
  return exit.OK
end

-- main(argv [, command]) -> exit status. argv: the words after the
-- command (`call`, `wait`, `status` or `state`).
function M.main(argv, command)
  local fn = run
  if command == "state" then fn = require("trainctl.state_cli").run end
  if command == "wait" or command == "status" then
    fn = function(a) return run_ref(a, command) end
  end
  if command == "completion" then fn = require("trainctl.completion").run end
  if command == "config" or command == "whoami" then fn = require("trainctl.config_cli").run end
  local ok, res = pcall(fn, argv or {})
  if ok then return res end
  if errors.is(res) then
    local code = exit.of(res)
    require("trainctl.log").report(tostring(res), res, code)
    return code
  end
  error(res, 0)
end

return M
