-- The command line: what lua5.4 accepts behaves as in lua5.4 (checked by
-- running both), plus trainctl's own options, exit statuses and signals.

local H = require "support"
local sys = require "trainctl.sys"

local lua = (io.popen("command -v lua5.4"):read("l"))

describe("lua5.4 compatibility", function()
  local dir

  setup(function()
    dir = H.tmpdir()
    H.write(dir .. "/mymod.lua", "return { v = 42, name = ... }\n")
    H.write(dir .. "/args.lua", [[
local lo, hi = 0, #arg
while arg[lo - 1] do lo = lo - 1 end
for i = lo, hi do print(i, arg[i]) end
print("...", select("#", ...), ...)
]])
    H.write(dir .. "/fail.lua", "local t = nil\nreturn t.field\n")
    H.write(dir .. "/stdin.lua", "io.write((io.read('a'):upper()))\n")
  end)

  teardown(function() H.rmdir(dir) end)

  -- Runs the same command line under lua5.4 and trainctl; the outputs
  -- must agree once the interpreter's own name is taken out.
  local function same_as_lua(args, opts)
    opts = opts or {}
    opts.cwd = dir
    opts.env = opts.env or {}
    opts.env.LUA_PATH = opts.env.LUA_PATH or dir .. "/?.lua;;"
    local function run(bin)
      local words = { bin }
      for _, a in ipairs(args) do words[#words + 1] = a end
      local r = H.sh(words, opts)
      r.out = r.out:gsub(bin:gsub("%p", "%%%0"), "INTERPRETER")
      return r
    end
    local want, got = run(lua), run(H.TRAINCTL)
    assert.equal(want.out, got.out)
    assert.equal(want.code, got.code)
    return got, want
  end

  local cases = {
    { "-e runs a chunk", { "-e", "print(1 + 1)" } },
    { "several -e run in order", { "-e", "x = 1", "-e", "x = x * 10", "-e", "print(x)" } },
    { "-e attached to its chunk", { "-eprint('attached')" } },
    { "-l mod sets the global mod", { "-l", "mymod", "-e", "print(mymod.v, mymod.name)" } },
    { "-l g=mod sets the global g", { "-l", "m=mymod", "-e", "print(m.v, mymod)" } },
    { "-lmod attached", { "-lmymod", "-e", "print(mymod.v)" } },
    { "-e and -l run in command-line order", { "-e", "print(mymod)", "-l", "mymod", "-e", "print(mymod.v)" } },
    { "a script gets arg and ...", { "args.lua", "a", "b c", "" } },
    { "options before the script are negative arg indices", { "-e", "x = 1", "args.lua", "one" } },
    { "-- ends the options", { "--", "args.lua", "-e", "not an option" } },
    { "a script's own options are its arguments", { "args.lua", "-e", "--", "-" } },
    { "an uncaught error in a script exits 1", { "fail.lua" } },
    { "an uncaught error in -e exits 1", { "-e", "error('boom')" } },
    { "a syntax error exits 1", { "-e", "this is not lua" } },
    { "os.exit(n) exits n", { "-e", "os.exit(7)" } },
    { "os.exit(false) exits 1", { "-e", "os.exit(false)" } },
    { "os.exit(true, true) exits 0", { "-e", "io.write('x') os.exit(true, true)" } },
    { "a script reads stdin", { "stdin.lua" }, { stdin = "shout\n" } },
    { "LUA_INIT runs first", { "-e", "print(init)" }, { env = { LUA_INIT = "init = 'yes'" } } },
    { "LUA_INIT_5_4 wins over LUA_INIT", { "-e", "print(init)" },
      { env = { LUA_INIT = "init = 1", LUA_INIT_5_4 = "init = 2" } } },
    { "LUA_INIT=@file runs the file", { "-e", "print(mymod)" },
      { env = { LUA_INIT = "@mymod.lua" } } },
    { "-E ignores LUA_INIT", { "-E", "-e", "print(init)" }, { env = { LUA_INIT = "init = 'yes'" } } },
    { "-E ignores LUA_PATH and LUA_CPATH", { "-E", "-e", "print(package.path == package.path:gsub('XX', ''), "
      .. "package.path:find('XX'), package.cpath:find('XX'))" },
      { env = { LUA_PATH = "/XX/?.lua", LUA_CPATH = "/XX/?.so" } } },
    { "LUA_PATH with ;; keeps the default path", { "-e", "print(require('mymod').v)" } },
    { "package.cpath follows LUA_CPATH", { "-e", "print(package.cpath)" },
      { env = { LUA_CPATH = "/opt/XX/?.so" } } },
    { "-W turns warnings on", { "-W", "-e", "warn('careful')", "-e", "print('after')" } },
  }
  for _, c in ipairs(cases) do
    it(c[1], function() same_as_lua(c[2], c[3]) end)
  end

  it("- runs stdin as the script, with arguments", function()
    local got = same_as_lua({ "-", "x", "y" }, { stdin = "print(#arg, arg[0], arg[1], arg[2], ...)" })
    assert.equal("2\t-\tx\ty\tx\ty\n", got.out)
  end)

  it("with no script and stdin not a terminal, runs stdin", function()
    local got = same_as_lua({}, { stdin = "print('from stdin')" })
    assert.equal("from stdin\n", got.out)
  end)

  it("-e alone does not read stdin", function()
    same_as_lua({ "-e", "print(io.read('a') == 'untouched')" }, { stdin = "untouched" })
  end)

  it("a script's error names its location and has a traceback", function()
    local got = H.run({ "fail.lua" }, { cwd = dir })
    assert.equal(1, got.code)
    assert.matches("^trainctl: fail%.lua:2: ", got.err)
    assert.matches("stack traceback:", got.err, 1, true)
  end)

  it("runs a #!/usr/bin/env trainctl script found on PATH", function()
    local bin = H.tmpdir()
    os.execute(("ln -s %s %s/trainctl"):format(H.quote(H.TRAINCTL), H.quote(bin)))
    H.write(dir .. "/tool", "#!/usr/bin/env trainctl\nprint('shebang', #arg, arg[1], ...)\n")
    os.execute("chmod +x " .. H.quote(dir .. "/tool"))
    local r = H.sh({ "./tool", "first", "second" },
      { cwd = dir, env = { PATH = bin .. ":" .. os.getenv("PATH") } })
    H.rmdir(bin)
    assert.equal(0, r.code, r.err)
    assert.equal("shebang\t2\tfirst\tfirst\tsecond\n", r.out)
  end)
end)

describe("trainctl's own options", function()
  it("--help prints the usage on stdout and exits 0", function()
    local r = H.run { "--help" }
    assert.equal(0, r.code)
    assert.equal("", r.err)
    assert.matches("^usage: trainctl ", r.out)
    for _, opt in ipairs { "-e", "-l", "-v", "--lock", "--timeout", "--version", "--help" } do
      assert.matches("\n%s+" .. opt:gsub("%-", "%%-") .. "[ =]", r.out)
    end
  end)

  it("-l of a module that is nowhere says so in one line, exit 1", function()
    local r = H.run { "-l", "nonexist", "-e", "print('ran')" }
    assert.equal(1, r.code)
    assert.equal("trainctl: module 'nonexist' not found\n", r.err)
    assert.equal("", r.out)
  end)

  it("a script that does not exist, named like a mistyped subcommand, gets a suggestion", function()
    local dir = H.tmpdir()
    for word, sub in pairs({ cal = "call", stat = "state", wiat = "wait" }) do
      local r = H.run({ word, "aitems" }, { cwd = dir })
      assert.equal(1, r.code)
      assert.equal(("trainctl: cannot open %s: No such file or directory; did you mean 'trainctl %s'?\n")
        :format(word, sub), r.err)
    end
    -- a path or a name nothing like one gets none; a file that exists runs
    for _, word in ipairs({ "./cal", "x", "nosuch.lua" }) do
      assert.is_nil(H.run({ word }, { cwd = dir }).err:find("did you mean", 1, true))
    end
    H.write(dir .. "/cal", "print('a script named cal')")
    assert.equal("a script named cal\n", H.run({ "cal" }, { cwd = dir }).out)
    H.rmdir(dir)
  end)

  it("--lock-ttl is from 2s to 1h: a dead holder keeps the lock that long", function()
    for _, v in ipairs({ "1s", "2h", "9000000000", "nan" }) do
      local r = H.run { "--lock", "etcd://127.0.0.1:9/k", "--lock-ttl", v, "-e", "print(1)" }
      assert.equal(2, r.code, v)
      assert.matches("invalid %-%-lock%-ttl", r.err)
    end
  end)

  it("--version prints trainctl, Lua, libcurl and OpenSSL versions on four lines", function()
    local r = H.run { "--version" }
    assert.equal(0, r.code)
    local lines = {}
    for l in r.out:gmatch("([^\n]*)\n") do lines[#lines + 1] = l end
    assert.equal(4, #lines)
    assert.matches("^trainctl %d+%.%d+%.%d+$", lines[1])
    local lua_v = H.sh({ lua, "-v" }).out:match("^(Lua %d+%.%d+%.%d+)")
    assert.equal(lua_v, lines[2])
    local curl_v = H.sh({ "pkg-config", "--modversion", "libcurl" }).out:gsub("%s+$", "")
    assert.equal("libcurl " .. curl_v, lines[3])
    local ssl_v = H.sh({ "pkg-config", "--modversion", "openssl" }).out:gsub("%s+$", "")
    assert.matches("^OpenSSL " .. ssl_v:gsub("%p", "%%%0"), lines[4])
  end)

  -- libcurl and libcrypto are loaded with lazy binding (src/core/lazy.c);
  -- with LD_BIND_NOW every function of theirs and of the libraries they
  -- need is resolved at the load, so a mismatched install shows here.
  it("--version loads libcurl and libcrypto with every function resolved (LD_BIND_NOW=1)", function()
    local r = H.run({ "--version" }, { env = { LD_BIND_NOW = "1" } })
    assert.equal(0, r.code, r.err)
    assert.equal("", r.err)
    assert.matches("\nlibcurl %d", r.out)
    assert.matches("\nOpenSSL %d", r.out)
  end)

  -- An install whose libcurl cannot be loaded (a damaged file here: the
  -- loader finds it first on LD_LIBRARY_PATH) is the environment's
  -- fault: one line naming the library's soname, exit 1, no traceback.
  describe("with a libcurl that cannot be loaded", function()
    local dir
    before_each(function()
      dir = H.tmpdir()
      H.write(dir .. "/libcurl.so.4", "not a library\n")
      H.write(dir .. "/libcurl.so", "not a library\n") -- the fallback name too
    end)
    after_each(function() H.rmdir(dir) end)
    local line = "^trainctl: io error: http%.request: cannot load libcurl%.so%.4: [^\n]*libcurl%.so%.4: [^\n]+\n$"

    it("trainctl call: one line, exit 1", function()
      local r = H.run({ "call", "aitems", "list_trains", "service_id=abc" }, { env = {
        LD_LIBRARY_PATH = dir, NCLOUD_ACCESS_KEY = "ak", NCLOUD_SECRET_KEY = "sk",
        TRAINCTL_AITEMS_ENDPOINT = "http://127.0.0.1:9/api/v1" } })
      assert.equal(1, r.code)
      assert.matches(line, r.err)
    end)

    it("a script's request: one line, exit 1", function()
      local r = H.run({ "-e", "require('trainctl.http').request{ url = 'http://127.0.0.1:9/' }" },
        { env = { LD_LIBRARY_PATH = dir } })
      assert.equal(1, r.code)
      assert.matches(line, r.err)
    end)
  end)

  it("-v prints the versions and still runs what follows", function()
    local r = H.run { "-v", "-e", "print('ran')" }
    assert.equal(0, r.code)
    assert.matches("^trainctl ", r.out)
    assert.matches("\nran\n$", r.out)
  end)

  for _, args in ipairs {
    { "--no-such-option" }, { "-x" }, { "-e" }, { "-l" }, { "--timeout", "soon" },
    { "--timeout", "0" }, { "--timeout", "nan" }, { "--timeout", "inf" }, { "--timeout", "1e305d" },
    { "--timeout", "-5" }, { "--log-level", "loud" }, { "--log-format", "xml" }, { "--lock" },
  } do
    it("exits 2 on a bad command line: " .. table.concat(args, " "), function()
      local r = H.run(args)
      assert.equal(2, r.code)
      assert.equal("", r.out)
      assert.matches("^trainctl: ", r.err)
    end)
  end

  it("prints 'trainctl: <message>' and a traceback for an uncaught error, exit 1", function()
    local r = H.run { "-e", "local function f() error('it broke') end f()" }
    assert.equal(1, r.code)
    assert.matches("^trainctl: %(command line%):1: it broke\n", r.err)
    assert.matches("stack traceback:", r.err, 1, true)
    assert.matches("in local 'f'", r.err, 1, true)
  end)

  it("shows an error object through its __tostring", function()
    local r = H.run { "-e", "error(setmetatable({}, {__tostring = function() return 'custom text' end}))" }
    assert.equal(1, r.code)
    assert.matches("^trainctl: custom text\n", r.err)
  end)

  it("names the type of an error object without __tostring", function()
    local r = H.run { "-e", "error({})" }
    assert.equal(1, r.code)
    assert.matches("^trainctl: %(error object is a table value%)", r.err)
  end)

  local usage = "error(setmetatable({kind = 'usage', message = 'missing credentials'}, "
    .. "{__tostring = function(e) return e.message end}))"

  it("exits 2 for an error object of kind 'usage' (in -e and in a script)", function()
    local r = H.run { "-e", usage }
    assert.equal(2, r.code)
    assert.matches("^trainctl: missing credentials", r.err)
    local dir = H.tmpdir()
    H.write(dir .. "/u.lua", usage)
    assert.equal(2, H.run({ dir .. "/u.lua" }).code)
    H.rmdir(dir)
  end)

  it("exits with an error object's exit_code", function()
    assert.equal(5, H.run({ "-e", "error({exit_code = 5})" }).code)
  end)

  describe("--lock", function()
    local dir

    before_each(function() dir = H.tmpdir() end)
    after_each(function() H.rmdir(dir) end)

    it("runs when the lock is free", function()
      local r = H.run { "--lock", dir .. "/lock", "-e", "print('ran')" }
      assert.equal(0, r.code)
      assert.equal("ran\n", r.out)
    end)

    it("exits 3 at once, running nothing, when another process holds it", function()
      local held = assert(sys.lock(dir .. "/lock"))
      local t0 = sys.clock()
      local r = H.run { "--lock", dir .. "/lock", "-e", "print('ran') require('trainctl.sys').sleep(30)" }
      local elapsed = sys.clock() - t0
      held:unlock()
      assert.equal(3, r.code)
      assert.equal("", r.out)
      assert.matches("lock", r.err)
      assert.is_true(elapsed < 10)
    end)

    it("accepts --lock=FILE", function()
      local held = assert(sys.lock(dir .. "/lock"))
      assert.equal(3, H.run({ "--lock=" .. dir .. "/lock", "-e", "" }).code)
      held:unlock()
    end)

    it("is held while the run lasts", function()
      local p = H.spawn(H.quote(H.TRAINCTL) .. " --lock " .. H.quote(dir .. "/lock") .. " -e "
        .. H.quote("print('holding') io.stdout:flush() require('trainctl.sys').sleep(30)"))
      assert.equal("holding", p:line())
      local l, _, code = sys.lock(dir .. "/lock")
      assert.is_nil(l)
      assert.equal("locked", code)
      p:kill("TERM")
      p:wait()
      assert.is_userdata(sys.lock(dir .. "/lock"))
    end)
  end)

  describe("--timeout", function()
    it("stops an endless loop in -e with exit 4", function()
      local r = H.run { "--timeout", "1", "-e", "while true do end" }
      assert.equal(4, r.code)
      assert.matches("timeout", r.err)
    end)

    it("stops an endless loop in a script with exit 4", function()
      local dir = H.tmpdir()
      H.write(dir .. "/loop.lua", "while true do end")
      local r = H.run { "--timeout", "250ms", dir .. "/loop.lua" }
      H.rmdir(dir)
      assert.equal(4, r.code)
    end)

    it("stops an endless loop inside a coroutine of the user's with exit 4", function()
      for _, chunk in ipairs {
        "coroutine.wrap(function() while true do end end)()",
        "coroutine.resume(coroutine.create(function() while true do end end))",
        "local co = coroutine.wrap(function() coroutine.yield() end) co() while true do end",
      } do
        local r = H.run { "--timeout", "250ms", "-e", chunk }
        assert.equal(4, r.code, chunk)
      end
      local dir = H.tmpdir()
      H.write(dir .. "/spin.lua", "coroutine.wrap(function() while true do end end)()")
      local r = H.run { "--timeout", "250ms", dir .. "/spin.lua" }
      H.rmdir(dir)
      assert.equal(4, r.code)
    end)

    it("stops a sleep with exit 4", function()
      local r = H.run { "--timeout=250ms", "-e", "require('trainctl.sys').sleep(30)" }
      assert.equal(4, r.code)
    end)

    it("does not fire when the run ends first", function()
      local r = H.run { "--timeout", "1h", "-e", "print('quick')" }
      assert.equal(0, r.code)
      assert.equal("quick\n", r.out)
    end)
  end)

  describe("signals", function()
    local function interrupt(cmd, sig, want)
      local p = H.spawn(cmd)
      assert.equal("ready", p:line())
      p:kill(sig)
      assert.equal(want, (p:wait()))
    end

    it("exits 143 on SIGTERM during a Lua loop", function()
      interrupt(H.quote(H.TRAINCTL) .. " -e " .. H.quote("print('ready') io.stdout:flush() while true do end"),
        "TERM", 143)
    end)

    it("exits 143 on SIGTERM in a script", function()
      local dir = H.tmpdir()
      H.write(dir .. "/s.lua", "print('ready') io.stdout:flush() while true do end")
      interrupt(H.quote(H.TRAINCTL) .. " " .. H.quote(dir .. "/s.lua"), "TERM", 143)
      H.rmdir(dir)
    end)

    it("exits 130 on SIGINT", function()
      interrupt(H.quote(H.TRAINCTL) .. " -e " .. H.quote("print('ready') io.stdout:flush() while true do end"),
        "INT", 130)
    end)
  end)

  describe("the embedded library", function()
    local dir

    setup(function()
      dir = H.tmpdir()
      assert(sys.mkdir_p(dir .. "/trainctl"))
      H.write(dir .. "/trainctl/pretty.lua", "return { marker = 'from the source tree' }\n")
    end)
    teardown(function() H.rmdir(dir) end)

    local probe = { "-e", "print(require('trainctl.pretty').marker)" }

    it("is used by default", function()
      assert.equal("nil\n", H.run(probe).out)
    end)

    it("is overridden by TRAINCTL_LUA_PATH (a directory)", function()
      local r = H.run(probe, { env = { TRAINCTL_LUA_PATH = dir } })
      assert.equal("from the source tree\n", r.out)
    end)

    it("is overridden by TRAINCTL_LUA_PATH (a template list)", function()
      local r = H.run(probe, { env = { TRAINCTL_LUA_PATH = "/nonexistent/?.lua;" .. dir .. "/?.lua" } })
      assert.equal("from the source tree\n", r.out)
    end)

    it("is not overridden under -E", function()
      local r = H.run({ "-E", probe[1], probe[2] }, { env = { TRAINCTL_LUA_PATH = dir } })
      assert.equal("nil\n", r.out)
    end)

    it("still serves modules the override does not have", function()
      local r = H.run({ "-e", "print(type(require('trainctl.repl').complete))" },
        { env = { TRAINCTL_LUA_PATH = dir } })
      assert.equal("function\n", r.out)
    end)
  end)

  it("runs busted, an installed Lua program: trainctl $(command -v busted) --version", function()
    local busted = (io.popen("command -v busted"):read("l"))
    local want = H.sh({ busted, "--version" })
    local got = H.run { busted, "--version" }
    assert.equal(0, got.code, got.err)
    assert.equal(want.out, got.out)
    assert.matches("^%d+%.%d+", got.out)
  end)
end)

describe("global options after a subcommand", function()
  it("are checked as before it: a bad value exits 2 before anything runs", function()
    for _, args in ipairs {
      { "call", "aitems", "list_services", "--log-level", "loud" },
      { "call", "aitems", "list_services", "--timeout", "soon" },
      { "wait", "aitems", "{}", "--timeout=0" },
      { "status", "aitems", "{}", "--profile" },
    } do
      local r = H.run(args)
      assert.equal(2, r.code, table.concat(args, " "))
      assert.equal("", r.out)
      assert.matches("^trainctl: ", r.err)
    end
  end)

  it("reach the subcommand's run (--state after `state`), and only before --", function()
    local r = H.run { "state", "path", "--state", "/tmp/elsewhere.json" }
    assert.equal(0, r.code, r.err)
    assert.equal("/tmp/elsewhere.json\n", r.out)
    r = H.run { "call", "aitems", "list_services", "--", "--profile=x" }
    assert.equal(2, r.code)
    assert.matches('unknown parameter "--profile"', r.err, 1, true)
  end)

  it("--log-format json after the subcommand makes its usage errors JSON lines", function()
    local r = H.run { "call", "aitems", "list_services", "--log-format", "json", "--timeout", "soon" }
    assert.equal(2, r.code)
    assert.matches('^{.*"exit_status":2', r.err)
  end)
end)

describe("a subcommand with nothing after it", function()
  for _, cmd in ipairs { "state", "wait", "status", "completion" } do
    it(cmd .. " prints its usage on stderr, one line per line, exit 2", function()
      local r = H.run { cmd }
      assert.equal(2, r.code)
      assert.equal("", r.out)
      assert.matches("^usage: trainctl " .. cmd .. " ", r.err)
      assert.is_nil(r.err:find("\\n", 1, true), r.err)
      assert.is_nil(r.err:find("usage error", 1, true), r.err)
      assert.is_true(select(2, r.err:gsub("\n", "")) > 1, r.err)
    end)
  end
end)

-- `call`, `wait` and `status` load libcurl and libcrypto on threads of
-- their own while the Lua loads (src/core/preload.c). A run that ends
-- before they are in waits for them: exit's handlers (OpenSSL's among
-- them) running beside the loading would crash now and then.
describe("a call that ends while libcurl still loads", function()
  -- tally(out) -> {[status] = how many} of the statuses out lists, one a line.
  local function tally(out)
    local seen = {}
    for code in out:gmatch("(%d+)\n") do seen[tonumber(code)] = (seen[tonumber(code)] or 0) + 1 end
    return seen
  end

  -- statuses(n, env, args) -> the tally of n runs.
  local function statuses(n, env, args)
    local loop = 'n=$1; shift; i=0; while [ "$i" -lt "$n" ]; do "$@" >/dev/null 2>&1; echo $?; i=$((i+1)); done'
    local words = { "sh", "-c", loop, "sh", tostring(n), H.TRAINCTL }
    for _, a in ipairs(args) do words[#words + 1] = a end
    return tally(H.sh(words, { env = env, clear = true }).out)
  end

  it("exits 2 for an unknown operation, every time", function()
    assert.same({ [2] = 100 }, statuses(100, {}, { "call", "aitems", "nosuchop" }))
  end)

  it("ends by SIGTERM sent at any moment of its start, never by a crash", function()
    -- A server that refuses: the call retries until the signal comes.
    local env = { NCLOUD_ACCESS_KEY = "ak-test", NCLOUD_SECRET_KEY = "sk-test",
      TRAINCTL_AITEMS_ENDPOINT = "http://127.0.0.1:1/api/v1" }
    local loop = 'i=0; while [ "$i" -lt 100 ]; do "$@" >/dev/null 2>&1 & pid=$!; ' ..
      'kill -TERM "$pid"; wait "$pid"; echo $?; i=$((i+1)); done'
    local r = H.sh({ "sh", "-c", loop, "sh", H.TRAINCTL, "call", "aitems", "list_services" },
      { env = env, clear = true })
    assert.same({ [143] = 100 }, tally(r.out))
  end)

  it("exits with the status os.exit gives in LUA_INIT, every time", function()
    assert.same({ [5] = 100 }, statuses(100, { LUA_INIT = "os.exit(5)" },
      { "call", "aitems", "list_trains", "service_id=x" }))
  end)
end)
