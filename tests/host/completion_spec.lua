-- `trainctl completion bash|zsh|fish`: the bash script is loaded in a
-- real bash and its completion function is called the way bash calls it
-- (COMP_WORDS split at "=" as readline splits them), so these tests see
-- what a user pressing Tab sees.

local H = require "support"

local function have(cmd)
  return os.execute("command -v " .. cmd .. " >/dev/null 2>&1") == true
end

describe("trainctl completion bash", function()
  local dir, script

  setup(function()
    dir = H.tmpdir()
    local r = H.run({ "completion", "bash" })
    assert.are.equal(0, r.code, r.err)
    script = dir .. "/trainctl.bash"
    H.write(script, r.out)
    os.execute("mkdir " .. H.quote(dir .. "/trainctl"))
    H.write(dir .. "/trainctl/credentials", "[sim]\nNCLOUD_ACCESS_KEY = x\n\n[ prod ]\n")
    os.execute("chmod 600 " .. H.quote(dir .. "/trainctl/credentials"))
  end)

  teardown(function() H.rmdir(dir) end)

  -- complete{"trainctl", "call", ""} -> the words bash would offer.
  local function complete(words)
    local q = {}
    for i, w in ipairs(words) do q[i] = H.quote(w) end
    local prog = ("source %s\nCOMP_WORDS=(%s)\nCOMP_CWORD=%d\n_trainctl\nprintf '%%s\\n' \"${COMPREPLY[@]}\"\n")
      :format(H.quote(script), table.concat(q, " "), #words - 1)
    local r = H.sh({ "bash", "-c", prog }, { cwd = dir, env = { XDG_CONFIG_HOME = dir } })
    assert.are.equal(0, r.code, r.err)
    assert.are.equal("", r.err)
    local out = {}
    for line in r.out:gmatch("[^\n]+") do out[#out + 1] = line end
    table.sort(out)
    return out
  end

  it("completes the subcommands", function()
    assert.are.same({ "call", "completion", "config" }, complete({ "trainctl", "c" }))
  end)

  it("completes providers, then every operation of the provider's table", function()
    assert.are.same({ "aitems", "azure_language", "opensearch" }, complete({ "trainctl", "call", "" }))
    for _, name in ipairs({ "aitems", "opensearch", "azure_language" }) do
      local want = {}
      for _, spec in ipairs(require("trainctl." .. name).operations) do want[#want + 1] = spec.name end
      table.sort(want)
      assert.are.same(want, complete({ "trainctl", "call", name, "" }))
    end
    assert.are.same({ "create_schema", "create_service" }, complete({ "trainctl", "call", "aitems", "create_s" }))
  end)

  it("completes an operation's parameters as name=", function()
    assert.are.same({ "description=", "name=", "type=" },
      complete({ "trainctl", "call", "aitems", "create_service", "" }))
    -- Options before the provider (a value included) do not shift the words.
    assert.are.same({ "instance_name=" },
      complete({ "trainctl", "--profile", "sim", "call", "opensearch", "list_function_tasks", "inst" }))
  end)

  it("completes the values a parameter takes, after the = bash splits off", function()
    assert.are.same({ "batch", "interval" },
      complete({ "trainctl", "call", "aitems", "create_service", "type", "=" }))
    assert.are.same({ "interval" },
      complete({ "trainctl", "call", "aitems", "create_service", "type", "=", "in" }))
    assert.are.same({ "false", "true" },
      complete({ "trainctl", "call", "aitems", "list_trains", "is_recent", "=" }))
    assert.are.same({ "CustomEntityRecognition" },
      complete({ "trainctl", "call", "azure", "create_project", "project_kind", "=", "CustomE" }))
  end)

  it("completes the values of call's options, and skips them to find the provider and operation", function()
    local formats = { "json", "jsonl", "table", "tsv", "yaml" }
    assert.are.same(formats, complete({ "trainctl", "call", "aitems", "list_services", "-o", "" }))
    assert.are.same(formats, complete({ "trainctl", "call", "aitems", "list_services", "--output", "" }))
    assert.are.same({}, complete({ "trainctl", "call", "aitems", "list_services", "--columns", "" }))
    assert.are.same({}, complete({ "trainctl", "call", "aitems", "list_services", "--max-items", "" }))
    assert.are.same({ "list_trains" }, complete({ "trainctl", "call", "--output", "table", "aitems", "list_tr" }))
    assert.are.same({ "list_trains" }, complete({ "trainctl", "call", "aitems", "-o", "tsv", "list_tr" }))
    assert.are.same({ "limit=" }, complete({ "trainctl", "call", "aitems", "list_services", "--jq", ".", "lim" }))
  end)

  it("knows every global option of the usage, and skips the values of those that take one", function()
    local usage = H.run({ "--help" }).out
    local offered = {}
    for _, w in ipairs(complete({ "trainctl", "-" })) do offered[w] = true end
    for opt in usage:gmatch("\n  (%-%-?[%w-]+)") do
      if opt ~= "--" then assert.is_true(offered[opt], opt .. " is not completed") end
    end
    assert.are.same({ "list_trains" }, complete({ "trainctl", "--lock-wait", "5s", "call", "aitems", "list_tr" }))
    assert.are.same({ "list_trains" }, complete({ "trainctl", "--lock-ttl", "1m", "call", "aitems", "list_tr" }))
    assert.are.same({ "list_trains" }, complete({ "trainctl", "-l", "mymod", "call", "aitems", "list_tr" }))
  end)

  it("completes profiles from the credentials file, and option values", function()
    assert.are.same({ "prod", "sim" }, complete({ "trainctl", "--profile", "" }))
    assert.are.same({ "debug" }, complete({ "trainctl", "--log-level", "d" }))
    assert.are.same({ "bash", "fish", "zsh" }, complete({ "trainctl", "completion", "" }))
  end)
end)

describe("trainctl completion fish", function()
  -- fish completes a command line on request (complete -C), so the
  -- script is tested as fish uses it; skipped where fish is not installed.
  local run = have("fish") and it or pending

  run("completes subcommands, operations, parameters and their values", function()
    local dir = H.tmpdir()
    local r = H.run({ "completion", "fish" })
    assert.are.equal(0, r.code, r.err)
    H.write(dir .. "/trainctl.fish", r.out)
    local function complete(line)
      local c = H.sh({ "fish", "--no-config", "-c", "source " .. H.quote(dir .. "/trainctl.fish")
        .. "; complete -C " .. H.quote(line) }, { env = { XDG_CONFIG_HOME = dir } })
      assert.are.equal("", c.err)
      local out = {}
      for l in c.out:gmatch("[^\n]+") do out[#out + 1] = l:match("^[^\t]*") end
      table.sort(out)
      return out
    end
    assert.are.same({ "call", "completion", "config" }, complete("trainctl c"))
    assert.are.same({ "create_schema", "create_service" }, complete("trainctl call aitems create_s"))
    assert.are.same({ "list_function_tasks" },
      complete("trainctl --profile sim call opensearch list_function_t"))
    assert.are.same({ "type=", "type=batch", "type=interval" }, complete("trainctl call aitems create_service ty"))
    H.rmdir(dir)
  end)
end)

describe("trainctl completion fish, as written", function()
  it("gives --output and -o their formats, and skips the values of call's options", function()
    local r = H.run({ "completion", "fish" })
    assert.are.equal(0, r.code, r.err)
    assert.truthy(r.out:find("-l output -s o -x -a 'json jsonl table tsv yaml'", 1, true), r.out)
    local skip = r.out:match("string match %-q %-r %-%- '%^%(([^)]*)%)%$'")
    local words = {}
    for w in (skip or ""):gmatch("[^|]+") do words[w] = true end
    for _, w in ipairs({ "-o", "--output", "--columns", "--jq", "--max-items", "--lock-ttl", "--lock-wait",
      "-e", "-l" }) do
      assert.is_true(words[w], w .. " is not skipped")
    end
  end)
end)

describe("trainctl completion zsh", function()
  -- _trainctl is called with zsh's words/CURRENT and compsys's builtins
  -- replaced by functions that print what they were given; skipped where
  -- zsh is not installed.
  local run = have("zsh") and it or pending

  run("offers subcommands, operation names with their summaries, parameters and values", function()
    local dir = H.tmpdir()
    local r = H.run({ "completion", "zsh" })
    assert.are.equal(0, r.code, r.err)
    H.write(dir .. "/_trainctl", r.out)
    local function complete(...)
      local q = {}
      for i, w in ipairs({ ... }) do q[i] = H.quote(w) end
      local prog = table.concat({
        "compdef() { :; }",
        "compadd() { local n=${@[-1]}; print -r -- ${(P)n}; }",
        "_describe() { local n=${@[-1]}; print -rl -- \"${(@P)n}\"; }",
        "_files() { :; }",
        "source " .. H.quote(dir .. "/_trainctl"),
        "words=(" .. table.concat(q, " ") .. "); CURRENT=$#words; _trainctl",
      }, "\n")
      local c = H.sh({ "zsh", "-f", "-c", prog }, { env = { XDG_CONFIG_HOME = dir } })
      assert.are.equal("", c.err)
      return c.out
    end
    assert.matches("^call wait status state config whoami completion\n$", complete("trainctl", "c"))
    local ops = complete("trainctl", "call", "aitems", "")
    assert.matches("\ncreate_service:create a service %(type batch or interval%)\n", "\n" .. ops)
    assert.are.equal("name= description= type=\n", complete("trainctl", "call", "aitems", "create_service", ""))
    assert.are.equal("type=batch type=interval\n",
      complete("trainctl", "call", "aitems", "create_service", "type="))
    H.rmdir(dir)
  end)
end)

describe("trainctl completion", function()
  it("refuses an unknown shell with a usage error", function()
    local r = H.run({ "completion", "ksh" })
    assert.are.equal(2, r.code)
    assert.matches("unknown shell \"ksh\" %(bash, zsh or fish%)", r.err)
    assert.are.equal(1, select(2, r.err:gsub("\n", "")))
    r = H.run({ "completion" })
    assert.are.equal(2, r.code)
  end)

  for _, shell in ipairs({ "zsh", "fish" }) do
    it("prints a " .. shell .. " script naming every operation", function()
      local r = H.run({ "completion", shell })
      assert.are.equal(0, r.code, r.err)
      for _, spec in ipairs(require("trainctl.opensearch").operations) do
        assert.truthy(r.out:find(spec.name, 1, true), spec.name)
      end
      if have(shell) then
        local dir = H.tmpdir()
        H.write(dir .. "/c", r.out)
        local chk = H.sh({ shell, "-n", dir .. "/c" })
        H.rmdir(dir)
        assert.are.equal(0, chk.code, chk.err)
      end
    end)
  end
end)
