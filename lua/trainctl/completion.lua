-- `trainctl completion bash|zsh|fish`: a shell completion script written
-- from the operation tables, so it completes exactly the providers,
-- operations, parameters and parameter values `trainctl call` accepts.
-- Profiles are read from the credentials file when Tab is pressed (they
-- change after the script is installed); nothing else runs trainctl.
local cli = require("trainctl.cli")
local errors = require("trainctl.errors")
local exit = require("trainctl.exit")

local M = {}

M.USAGE = [[
usage: trainctl completion bash|zsh|fish
Prints a completion script for the shell. Load it with
  bash: source <(trainctl completion bash)   (or save it in
        ~/.local/share/bash-completion/completions/trainctl)
  zsh:  trainctl completion zsh > "${fpath[1]}/_trainctl"
  fish: trainctl completion fish > ~/.config/fish/completions/trainctl.fish]]

M.COMMANDS = {
  { "call", "make one API call" },
  { "wait", "wait on a job reference" },
  { "status", "show a job reference once" },
  { "state", "the records of trainctl.state" },
  { "config", "the effective profile, endpoints and credential sources" },
  { "whoami", "same as config" },
  { "completion", "print a shell completion script" },
}

-- Global options (those of src/cli/main.c's usage); those that take a
-- value list its words ("" = any).
M.OPTIONS = {
  { "--profile", "credentials profile", "PROFILE" },
  { "--log-level", "log level", { "error", "warn", "info", "debug", "trace" } },
  { "--log-format", "log line format", { "text", "json" } },
  { "--lock", "exit 3 at once if another run holds FILE", "FILE" },
  { "--lock-ttl", "lease of an etcd lock", "" },
  { "--lock-wait", "wait up to a duration for an etcd lock", "" },
  { "--timeout", "stop the whole run after a duration", "" },
  { "--state", "where trainctl.state keeps progress", "FILE" },
  { "--core-dumps", "allow core dumps" },
  { "--help", "show the help" },
  { "--version", "show versions" },
  { "-e", "run a Lua chunk", "" },
  { "-l", "require a module into a global", "" },
  { "-i", "enter the REPL after the script" },
  { "-v", "show versions" },
  { "-E", "ignore LUA_INIT, LUA_PATH and the like" },
  { "-W", "turn Lua warnings on" },
}

-- The options of `trainctl call` that take a value, and what they take
-- ("" = any word).
M.CALL_VALUED = cli.valued_option_names()
M.CALL_VALUES = { ["-o"] = cli.format_names(), ["--output"] = cli.format_names() }

-- The flags of `trainctl call`, as trainctl.cli reads them, and the
-- global --timeout, which bounds a call.
M.CALL_FLAGS = require("trainctl.cli").option_names()
M.CALL_FLAGS[#M.CALL_FLAGS + 1] = "--timeout"

M.STATE_ACTIONS = { "list", "show", "forget", "path" }
M.SHELLS = { "bash", "zsh", "fish" }

-- model() -> providers with their operations, parameters and values.
function M.model()
  local list = {}
  for _, p in ipairs(cli.PROVIDERS) do
    local mod = require(p.module)
    local opsl = {}
    for _, spec in ipairs(mod.operations) do
      local params = {}
      for _, q in ipairs(spec.params) do
        local values = q.values
        if not values and q.type == "boolean" then values = { "true", "false" } end
        params[#params + 1] = { name = q.name, type = q.type, required = q.required,
          values = values, doc = q.doc }
      end
      opsl[#opsl + 1] = { name = spec.name, summary = spec.summary or "", params = params }
    end
    list[#list + 1] = { name = p.name, title = p.title, ops = opsl }
  end
  return list
end

local function names(t, i)
  local out = {}
  for k, v in ipairs(t) do out[k] = type(v) == "table" and v[i or 1] or v end
  return table.concat(out, " ")
end

-- The credentials file, as the shell finds it at Tab time: the same rule
-- as config.credentials_path(), written once more in shell.
local CRED_SH = '"${XDG_CONFIG_HOME:-$HOME/.config}/trainctl/credentials"'
local PROFILES_SED = [=[sed -n 's/^[[:space:]]*\[[[:space:]]*\([^]]*[^][:space:]]\)[[:space:]]*\][[:space:]]*$/\1/p']=]

local function sh_quote(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

-- Shell functions shared by bash and zsh: one `case` each, answering in
-- the variable _trainctl_r.
local function sh_data(model)
  local o = {}
  local function add(s) o[#o + 1] = s end
  add("_trainctl_ops() {\n  case $1 in")
  for _, p in ipairs(model) do
    add(("    %s) _trainctl_r=%s ;;"):format(p.name, sh_quote(names(p.ops, "name"))))
  end
  add("    *) _trainctl_r= ;;\n  esac\n}")
  add("_trainctl_params() {\n  case \"$1 $2\" in")
  for _, p in ipairs(model) do
    for _, op in ipairs(p.ops) do
      local ps = {}
      for _, q in ipairs(op.params) do ps[#ps + 1] = q.name end
      if #ps > 0 then
        add(("    %s) _trainctl_r=%s ;;"):format(sh_quote(p.name .. " " .. op.name),
          sh_quote(table.concat(ps, " "))))
      end
    end
  end
  add("    *) _trainctl_r= ;;\n  esac\n}")
  add("_trainctl_values() {\n  case \"$1 $2 $3\" in")
  for _, p in ipairs(model) do
    for _, op in ipairs(p.ops) do
      for _, q in ipairs(op.params) do
        if q.values then
          add(("    %s) _trainctl_r=%s ;;"):format(sh_quote(p.name .. " " .. op.name .. " " .. q.name),
            sh_quote(table.concat(q.values, " "))))
        end
      end
    end
  end
  add("    *) _trainctl_r= ;;\n  esac\n}")
  add("_trainctl_profiles() {\n  local f=" .. CRED_SH .. "\n  _trainctl_r=\n"
    .. "  [ -r \"$f\" ] && _trainctl_r=$(" .. PROFILES_SED .. " \"$f\")\n  return 0\n}")
  return table.concat(o, "\n")
end

local function option_values_case()
  local o = {}
  for _, name in ipairs(M.CALL_VALUED) do
    o[#o + 1] = ("    %s) _trainctl_r=%s; return 0 ;;"):format(name,
      sh_quote(table.concat(M.CALL_VALUES[name] or {}, " ")))
  end
  for _, opt in ipairs(M.OPTIONS) do
    local v = opt[3]
    if type(v) == "table" then
      o[#o + 1] = ("    %s) _trainctl_r=%s; return 0 ;;"):format(opt[1], sh_quote(table.concat(v, " ")))
    elseif v == "PROFILE" then
      o[#o + 1] = ("    %s) _trainctl_profiles; return 0 ;;"):format(opt[1])
    elseif v == "FILE" then
      o[#o + 1] = ("    %s) _trainctl_r=; return 2 ;;"):format(opt[1])
    elseif v then
      o[#o + 1] = ("    %s) _trainctl_r=; return 0 ;;"):format(opt[1])
    end
  end
  return table.concat(o, "\n")
end

-- The options whose value is the next word, global and call's alike.
local function takes_value()
  local o = {}
  for _, opt in ipairs(M.OPTIONS) do
    if opt[3] then o[#o + 1] = opt[1] end
  end
  for _, name in ipairs(M.CALL_VALUED) do o[#o + 1] = name end
  return table.concat(o, "|")
end

-- The logic of completion, in shell common to bash and zsh: given the
-- words before the cursor (_tw, 1-based count _tn) and the current word
-- (_tcur), set _trainctl_r to the candidates. Returns 1 when a parameter
-- name is completed (no space after "name="), 2 for file names.
-- alias_case() -> the case arms that turn a provider's other names
-- (the registry's aliases) into its name.
local function alias_case()
  local arms = {}
  for _, p in ipairs(cli.PROVIDERS) do
    if p.aliases then arms[#arms + 1] = ("%s) provider=%s ;;"):format(table.concat(p.aliases, "|"), p.name) end
  end
  return table.concat(arms, " ")
end

local function sh_logic()
  return ([==[
_trainctl_candidates() {
  _trainctl_r=
  local prev=$1 cur=$2; shift 2
  case $prev in
%s
  esac
  local cmd= provider= op= w skip=
  for w in "$@"; do
    if [ -n "$skip" ]; then skip=; continue; fi
    case $w in
      %s) skip=1; continue ;;
      -*) continue ;;
    esac
    if [ -z "$cmd" ]; then cmd=$w
    elif [ -z "$provider" ]; then provider=$w
    elif [ -z "$op" ]; then op=$w
    fi
  done
  case $cur in
    -*)
      _trainctl_r=%s
      [ "$cmd" = call ] && _trainctl_r="$_trainctl_r %s"
      return 0 ;;
  esac
  case $cmd in
    '') _trainctl_r=%s; return 2 ;;
    call|wait|status)
      if [ -z "$provider" ]; then _trainctl_r=%s; return 0; fi
      [ "$cmd" = call ] || return 0
      case $provider in %s esac
      if [ -z "$op" ]; then _trainctl_ops "$provider"; return 0; fi
      case $cur in
        *=*)
          local key=${cur%%%%=*}
          _trainctl_values "$provider" "$op" "$key"
          local v out=
          for v in $_trainctl_r; do out="$out $key=$v"; done
          _trainctl_r=$out
          return 0 ;;
      esac
      _trainctl_params "$provider" "$op"
      local p out=
      for p in $_trainctl_r; do out="$out $p="; done
      _trainctl_r=$out
      return 1 ;;
    completion) [ -z "$provider" ] && _trainctl_r=%s ;;
    state) [ -z "$provider" ] && _trainctl_r=%s ;;
  esac
  return 0
}]==]):format(option_values_case(), takes_value(), sh_quote(names(M.OPTIONS)),
    names(M.CALL_FLAGS), sh_quote(names(M.COMMANDS)),
    sh_quote(names(cli.PROVIDERS, "name")), alias_case(), sh_quote(names(M.SHELLS)),
    sh_quote(names(M.STATE_ACTIONS)))
end

function M.bash(model)
  return table.concat({
    "# bash completion for trainctl; generated by `trainctl completion bash`.",
    sh_data(model),
    sh_logic(),
    [==[
# Bash splits "key=value" at "=" (COMP_WORDBREAKS); the words are joined
# again so the logic sees what the user typed, and the answer is cut back
# to the part after the last "=" that readline replaces.
_trainctl() {
  local i w joined=() n=0 glue=
  for ((i = 1; i <= COMP_CWORD; i++)); do
    w=${COMP_WORDS[i]}
    if [ "$w" = "=" ] && ((n > 0)); then
      joined[n - 1]="${joined[n - 1]}="; glue=1
    elif [ -n "$glue" ] && ((n > 0)); then
      joined[n - 1]="${joined[n - 1]}$w"; glue=
    else
      joined[n]=$w; n=$((n + 1)); glue=
    fi
  done
  local cur= prev=
  ((n > 0)) && cur=${joined[n - 1]}
  ((n > 1)) && prev=${joined[n - 2]}
  _trainctl_candidates "$prev" "$cur" "${joined[@]:0:n-1}"
  local rc=$?
  if [ "$rc" = 2 ] && [ -z "$_trainctl_r" ]; then
    COMPREPLY=($(compgen -f -- "$cur"))
    return 0
  fi
  [ "$rc" = 2 ] && _trainctl_r="$_trainctl_r $(compgen -f -- "$cur")"
  COMPREPLY=($(compgen -W "$_trainctl_r" -- "$cur"))
  if [[ $cur == *=* && $COMP_WORDBREAKS == *=* ]]; then
    local cut=${cur%=*}=
    for i in "${!COMPREPLY[@]}"; do COMPREPLY[i]=${COMPREPLY[i]#"$cut"}; done
  fi
  if [ "$rc" = 1 ] && [ ${#COMPREPLY[@]} -gt 0 ]; then compopt -o nospace 2>/dev/null; fi
  return 0
}
complete -F _trainctl trainctl
]==],
  }, "\n")
end

function M.zsh(model)
  local descr = {}
  for _, p in ipairs(model) do
    local lines = {}
    for _, op in ipairs(p.ops) do
      lines[#lines + 1] = sh_quote(op.name .. ":" .. op.summary:gsub(":", "\\:"))
    end
    descr[#descr + 1] = ("    %s) ops=(%s) ;;"):format(p.name, table.concat(lines, " "))
  end
  return table.concat({
    "#compdef trainctl",
    "# zsh completion for trainctl; generated by `trainctl completion zsh`.",
    sh_data(model),
    sh_logic(),
    ([==[
_trainctl_describe_ops() {
  local -a ops
  case $1 in
%s
  esac
  _describe -t operations 'operation' ops
}
_trainctl() {
  # The shared functions split their answers at spaces, as sh does.
  setopt localoptions shwordsplit
  local _trainctl_r prev=
  ((CURRENT > 2)) && prev=${words[CURRENT-1]}
  _trainctl_candidates "$prev" "${words[CURRENT]}" "${(@)words[2,CURRENT-1]}"
  local rc=$? cmd= provider= op= w
  local -a cands
  cands=(${=_trainctl_r})
  if [[ $rc == 2 ]]; then
    compadd -a cands
    _files
  elif [[ $rc == 1 ]]; then
    compadd -S '' -a cands
  else
    case ${words[CURRENT]} in
      -*|*=*) compadd -a cands ;;
      *)
        for w in ${(@)words[2,CURRENT-1]}; do
          case $w in -*) continue ;; esac
          if [[ -z $cmd ]]; then cmd=$w
          elif [[ -z $provider ]]; then provider=$w
          else op=$w; fi
        done
        if [[ $cmd == call && -n $provider && -z $op ]]; then
          _trainctl_describe_ops $provider
        else
          compadd -a cands
        fi ;;
    esac
  fi
}
if [[ $zsh_eval_context[-1] == loadautofunc ]]; then
  _trainctl "$@"
else
  compdef _trainctl trainctl
fi
]==]):format(table.concat(descr, "\n")),
  }, "\n")
end

local function fish_quote(s)
  return "'" .. s:gsub("\\", "\\\\"):gsub("'", "\\'") .. "'"
end

function M.fish(model)
  local o = {
    "# fish completion for trainctl; generated by `trainctl completion fish`.",
    "complete -c trainctl -f",
    -- The words after `call` that are not options: provider, operation.
    "function __trainctl_args",
    "    set -l out; set -l skip 0",
    "    set -l words (commandline -opc)",
    "    set -e words[1]",
    "    for w in $words",
    "        if test $skip = 1; set skip 0; continue; end",
    "        if string match -q -r -- '^(" .. takes_value() .. ")$' $w; set skip 1; continue; end",
    "        string match -q -- '-*' $w; and continue",
    "        set -a out $w",
    "    end",
    "    for w in $out; echo $w; end",
    "end",
    "function __trainctl_at",
    "    set -l a (__trainctl_args)",
    "    test (count $a) -eq $argv[1]; or return 1",
    "    for i in (seq 2 (count $argv))",
    "        set -l j (math $i - 1)",
    "        test \"$a[$j]\" = \"$argv[$i]\"; or return 1",
    "    end",
    "    return 0",
    "end",
    "function __trainctl_profiles",
    "    set -l f $HOME/.config/trainctl/credentials",
    "    set -q XDG_CONFIG_HOME; and set f $XDG_CONFIG_HOME/trainctl/credentials",
    "    test -r $f; and " .. PROFILES_SED .. " $f",
    "end",
  }
  local function add(s) o[#o + 1] = s end
  for _, c in ipairs(M.COMMANDS) do
    add(("complete -c trainctl -n '__trainctl_at 0' -a %s -d %s"):format(c[1], fish_quote(c[2])))
  end
  for _, opt in ipairs(M.OPTIONS) do
    local flag = opt[1]:find("^%-%-") and ("-l " .. opt[1]:sub(3)) or ("-s " .. opt[1]:sub(2))
    local line = ("complete -c trainctl %s -d %s"):format(flag, fish_quote(opt[2]))
    if type(opt[3]) == "table" then
      line = line .. " -x -a " .. fish_quote(table.concat(opt[3], " "))
    elseif opt[3] == "PROFILE" then
      line = line .. " -x -a '(__trainctl_profiles)'"
    elseif opt[3] == "FILE" then
      line = line .. " -r -F"
    elseif opt[3] then
      line = line .. " -x"
    end
    add(line)
  end
  add("complete -c trainctl -n '__trainctl_at 1 completion' -a " .. fish_quote(names(M.SHELLS)))
  add("complete -c trainctl -n '__trainctl_at 1 state' -a " .. fish_quote(names(M.STATE_ACTIONS)))
  for _, c in ipairs({ "call", "wait", "status" }) do
    for _, p in ipairs(model) do
      add(("complete -c trainctl -n '__trainctl_at 1 %s' -a %s -d %s"):format(c, p.name, fish_quote(p.title)))
    end
  end
  local valued = {}
  for _, name in ipairs(M.CALL_VALUED) do valued[name] = true end
  for _, f in ipairs(M.CALL_FLAGS) do
    local line = ("complete -c trainctl -n '__trainctl_args | string match -q call' -l %s"):format(f:sub(3))
    if f == "--output" then line = line .. " -s o" end
    if M.CALL_VALUES[f] then
      line = line .. " -x -a " .. fish_quote(table.concat(M.CALL_VALUES[f], " "))
    elseif valued[f] then
      line = line .. " -x"
    end
    add(line)
  end
  for _, p in ipairs(model) do
    for _, op in ipairs(p.ops) do
      add(("complete -c trainctl -n '__trainctl_at 2 call %s' -a %s -d %s"):format(p.name, op.name,
        fish_quote(op.summary)))
      for _, q in ipairs(op.params) do
        local cond = ("'__trainctl_args | string join \" \" | string match -q -r \"^call %s %s\\\\b\"'")
          :format(p.name, op.name)
        local words = { q.name .. "=" }
        for i, v in ipairs(q.values or {}) do words[i + 1] = q.name .. "=" .. v end
        add(("complete -c trainctl -n %s -a %s -d %s"):format(cond, fish_quote(table.concat(words, " ")),
          fish_quote(q.type .. (q.required and ", required" or ""))))
      end
    end
  end
  return table.concat(o, "\n") .. "\n"
end

function M.run(argv)
  local shell = argv[1]
  if shell == "--help" or shell == "-h" then
    io.stdout:write(M.USAGE, "\n")
    return exit.OK
  end
  if shell == nil then
    io.stderr:write(M.USAGE, "\n")
    return exit.USAGE
  end
  if not M[shell] or not ({ bash = 1, zsh = 1, fish = 1 })[shell] then
    errors.usage(("trainctl completion: unknown shell %q (bash, zsh or fish)"):format(shell))
  end
  if argv[2] then errors.usage(("trainctl completion takes one word, got %q too"):format(argv[2])) end
  io.stdout:write(M[shell](M.model()))
  return exit.OK
end

return M
