-- The run as a process: --timeout, SIGTERM and SIGINT end it and the
-- children it started (os.execute, io.popen) within seconds, with one line
-- and the documented status; os.execute and io.popen otherwise return what
-- Lua 5.4's do; writes to stdout and stderr are checked; no core dumps.
local H = require "support"
local sys = require "trainctl.sys"

-- Every child of these tests sleeps for a duration of its own: the
-- process table shows whether that child still runs.
local serial = math.floor(sys.now() * 1000) % 100000
local function marker()
  serial = serial + 1
  return ("sleep 7%05d.%d"):format(serial % 100000, serial)
end

-- alive(marker) -> the process table's lines of processes (not zombies)
-- whose command line holds marker.
local alive = H.running

-- run(args) -> status, stdout, stderr, seconds taken.
local function timed(args, opts)
  local t0 = sys.clock()
  local r = H.run(args, opts)
  return r.code, r.out, r.err, sys.clock() - t0
end

-- A run in the background that has printed "ready" (from its child, as
-- the child starts): stop it with `sig`, then its status, stderr and the
-- seconds from the signal to its end.
local function stopped(chunk, sig)
  local dir = H.tmpdir()
  local p = H.spawn(H.quote(H.TRAINCTL) .. " -e " .. H.quote(chunk) .. " </dev/null", { stderr = dir .. "/err" })
  assert.equal("ready", p:line())
  local t0 = sys.clock()
  p:kill(sig)
  local code = (p:wait())
  local err = H.read(dir .. "/err")
  H.rmdir(dir)
  return code, err, sys.clock() - t0
end

local STOP_LINE = "trainctl: timeout: the --timeout for this run was reached\n"

describe("--timeout with a child process", function()
  it("ends os.execute of a longer command: exit 4, one line, the child gone", function()
    local m = marker()
    local code, _, err, took = timed({ "--timeout", "2s", "-e", ("os.execute(%q)"):format(m) })
    assert.equal(4, code)
    assert.equal(STOP_LINE, err)
    assert.is_true(took >= 1.9 and took < 4, ("took %.1fs"):format(took))
    assert.same({}, alive(m))
  end)

  it("ends a read from io.popen", function()
    local m = marker()
    local chunk = ("local p = io.popen(%q) print('read', p:read('a'))"):format(m .. "; echo late")
    local code, out, err, took = timed({ "--timeout", "1s", "-e", chunk })
    assert.equal(4, code)
    assert.equal("", out)
    assert.equal(STOP_LINE, err)
    assert.is_true(took < 3, ("took %.1fs"):format(took))
    assert.same({}, alive(m))
  end)

  it("ends the close of io.popen, which waits for the child", function()
    local m = marker()
    local chunk = ("local p = io.popen(%q, 'w') p:write('x') print('closed', p:close())"):format(m)
    local code, out, err, took = timed({ "--timeout", "1s", "-e", chunk })
    assert.equal(4, code)
    assert.equal("", out)
    assert.equal(STOP_LINE, err)
    assert.is_true(took < 3, ("took %.1fs"):format(took))
    assert.same({}, alive(m))
  end)

  it("ends a script run as a task, its child started inside a task of its own", function()
    local dir = H.tmpdir()
    local m = marker()
    H.write(dir .. "/s.lua", ([[
      local task = require("trainctl.task")
      local t = task.spawn(function() return os.execute(%q) end)
      print("joined", t:join())
    ]]):format(m))
    local code, out, err, took = timed({ "--timeout", "1s", dir .. "/s.lua" })
    H.rmdir(dir)
    assert.equal(4, code)
    assert.equal("", out)
    assert.equal(STOP_LINE, err)
    assert.is_true(took < 3, ("took %.1fs"):format(took))
    assert.same({}, alive(m))
  end)

  it("kills a child that ignores SIGTERM after the grace period (3 s)", function()
    local m = marker()
    local code, _, err, took = timed({ "--timeout", "1s", "-e",
      ("os.execute(%q)"):format("trap '' TERM; " .. m .. "; true") })
    assert.equal(4, code)
    assert.equal(STOP_LINE, err)
    assert.is_true(took >= 3.9 and took < 6, ("took %.1fs"):format(took))
    assert.same({}, alive(m))
  end)

  it("still ends a script that swallows the stop in pcall, 10 s later, and its children", function()
    local m = marker()
    local code, _, err, took = timed({ "--timeout", "0.5s", "-e",
      ("local p = io.popen(%q) while true do pcall(function() while true do end end) end"):format(m) })
    assert.equal(4, code)
    assert.equal("trainctl: the run did not stop within 10 s; ending it\n", err)
    assert.is_true(took >= 10.4 and took < 12, ("took %.1fs"):format(took))
    assert.same({}, alive(m))
  end)
end)

describe("signals with a child process", function()
  it("SIGTERM: exit 143, one line, the child and its own children gone", function()
    local m1, m2 = marker(), marker()
    local code, err, took = stopped(("os.execute(%q)"):format(
      ("%s & echo ready; %s; wait"):format(m1, m2)), "TERM")
    assert.equal(143, code)
    assert.equal("trainctl: terminated (SIGTERM)\n", err)
    assert.is_true(took < 2, ("took %.1fs"):format(took))
    assert.same({}, alive(m1))
    assert.same({}, alive(m2))
  end)

  it("SIGINT: exit 130, one line, the child gone", function()
    local m = marker()
    local code, err = stopped(("os.execute(%q)"):format("echo ready; " .. m), "INT")
    assert.equal(130, code)
    assert.equal("trainctl: interrupted!\n", err)
    assert.same({}, alive(m))
  end)

  it("a child ended by the stop is never seen by the script as a failed child", function()
    local m = marker()
    local dir = H.tmpdir()
    local chunk = ("local ok, how, code = os.execute(%q) io.stderr:write('returned ', how, ' ', code, '\\n')")
      :format("echo ready; " .. m)
    local p = H.spawn(H.quote(H.TRAINCTL) .. " -e " .. H.quote(chunk), { stderr = dir .. "/err" })
    assert.equal("ready", p:line())
    p:kill("TERM")
    assert.equal(143, (p:wait()))
    assert.equal("trainctl: terminated (SIGTERM)\n", H.read(dir .. "/err"))
    H.rmdir(dir)
  end)

  it("SIGTERM while the script does something else: an open io.popen's child gone", function()
    local m = marker()
    local code, err = stopped(("local p = io.popen(%q) print('ready') io.stdout:flush() "
      .. "require('trainctl.sys').sleep(600)"):format(m), "TERM")
    assert.equal(143, code)
    assert.equal("trainctl: terminated (SIGTERM)\n", err)
    assert.same({}, alive(m))
  end)

  it("SIGTERM while reading from io.popen: the child gone", function()
    local m = marker()
    local code, err = stopped(("local p = io.popen(%q) print(p:read('l')) io.stdout:flush() print(p:read('a'))")
      :format("echo ready; " .. m), "TERM")
    assert.equal(143, code)
    assert.equal("trainctl: terminated (SIGTERM)\n", err)
    assert.same({}, alive(m))
  end)
end)

describe("a stop during a decoding", function()
  -- cjson.safe runs the decoder under a pcall of its own, and a stop is
  -- raised as the decoder returns, inside that pcall: it came back as
  -- "bad JSON" (a retry, or a false error) while the run went on. Here
  -- the stop comes first and is swallowed by the script's own pcalls, so
  -- that only the decoding can see it, as when it lands in the decoder.
  it("is the run's stop, not a decode error", function()
    local r = H.run_script("local json = require('trainctl.json')\n"
      .. "pcall(function() pcall(function() os.execute('kill -INT $PPID') end) end)\n"
      .. "print(json.decode('{bad'))\n"
      .. "print('went on')\n")
    assert.equal("", r.out)
    assert.equal(130, r.code)
    assert.equal("trainctl: interrupted!\n", r.err)
  end)
end)

describe("os.execute and io.popen", function()
  it("return what Lua 5.4's return", function()
    local chunk = [[
      print(os.execute("exit 3"))
      print(os.execute("kill -9 $$"))
      print(os.execute("true"))
      print(os.execute())
      local p = io.popen("echo hi; exit 2")
      print(p:read("a"), p:close())
      local w = io.popen("cat >/dev/null", "w")
      print(w:write("x") == w, w:close())
      print(pcall(io.popen, "true", "rw"))
      print(io.type(io.popen("true")))
    ]]
    local ours = H.run({ "-e", chunk })
    local lua = H.sh({ "lua5.4", "-e", chunk })
    assert.equal(0, ours.code, ours.err)
    assert.equal(lua.out, ours.out)
  end)

  it("run while a child that is not waited for runs on, and wait for it at the end", function()
    local r = H.run({ "-e", [[
      local p = io.popen("sleep 0.2; echo child")
      print(os.execute("exit 0"))
      print(p:read("l"))
    ]] })
    assert.equal(0, r.code, r.err)
    assert.equal("true\texit\t0\nchild\n", r.out)
  end)
end)

describe("writes to stdout and stderr", function()
  local cases = {
    { "print", "print('hello')" },
    { "io.write", "io.write('hello')" },
    { "io.stdout:write", "io.stdout:write('hello')" },
    { "print, then os.exit(0)", "print('hello') os.exit(0)" },
    { "trainctl.output to '-'", "require('trainctl.output').write('-', 'hello')" },
  }
  for _, c in ipairs(cases) do
    it(c[1] .. " onto a full disk: exit 1 naming stdout", function()
      local r = H.sh(("%s -e %s >/dev/full"):format(H.quote(H.TRAINCTL), H.quote(c[2])))
      assert.equal(1, r.code)
      assert.matches("^trainctl: [%w :]*cannot write stdout: No space left on device\n$", r.err)
    end)
  end

  for _, opt in ipairs({ "--help", "--version" }) do
    it(opt .. " onto a full disk: exit 1", function()
      local r = H.sh(("%s %s >/dev/full"):format(H.quote(H.TRAINCTL), opt))
      assert.equal(1, r.code)
      assert.equal("trainctl: cannot write stdout: No space left on device\n", r.err)
    end)
  end

  -- Started with a standard descriptor closed, the run must not let the
  -- first file it opens take that number: what it prints would land in
  -- the file.
  describe("started with a standard descriptor closed", function()
    local function with_file(chunk, redirect)
      local dir = H.tmpdir()
      local path = dir .. "/f.txt"
      local r = H.sh(("%s -e %s %s"):format(H.quote(H.TRAINCTL),
        H.quote(("local path = %q "):format(path) .. chunk), redirect))
      r.file = H.read(path)
      H.rmdir(dir)
      return r
    end

    it("stdout: nothing printed lands in a file it opens; exit 1 naming stdout", function()
      local r = with_file("local f = io.open(path, 'w') print('PRINTED') io.write('WRITTEN') "
        .. "f:write('data\\n') f:close()", ">&-")
      assert.equal("data\n", r.file)
      assert.equal(1, r.code)
      assert.equal("trainctl: cannot write stdout: Bad file descriptor\n", r.err)
    end)

    it("stderr: no message lands in a file it opens; the failed write fails the run", function()
      local r = with_file("local f = io.open(path, 'w') io.stderr:write('ERR\\n') "
        .. "f:write('data\\n') f:close()", "2>&-")
      assert.equal("data\n", r.file)
      assert.equal(1, r.code)
    end)

    it("stdin: a read fails as on the closed descriptor, and does not read a file it opens", function()
      local r = with_file("io.open(path, 'w'):close() local f = io.open(path, 'w') f:write('secret\\n') "
        .. "f:close() f = io.open(path) print(io.read()) f:close()", "<&-")
      assert.equal("nil\tBad file descriptor\t9\n", r.out)
      assert.equal(0, r.code)
    end)

    it("stdin, with the script to come from it: exit 1, not an empty script run", function()
      local r = H.sh(("%s <&-"):format(H.quote(H.TRAINCTL)))
      assert.equal(1, r.code)
      assert.equal("trainctl: cannot read stdin: Bad file descriptor\n", r.err)
    end)

    it("stdout: a program the run starts cannot write there either", function()
      local r = H.sh(("%s -e %s >&-"):format(H.quote(H.TRAINCTL),
        H.quote("io.stderr:write('\\nresult=', tostring(os.execute('echo hi')), '\\n')")))
      assert.matches("\nresult=nil\n$", r.err)
      assert.equal(0, r.code)
    end)
  end)

  it("--log-format json: the line about stdout is a JSON record too", function()
    local r = H.sh(("%s --log-format json -e %s >/dev/full"):format(H.quote(H.TRAINCTL), H.quote("print('x')")))
    assert.equal(1, r.code)
    local rec = require("cjson").decode(r.err)
    assert.equal("cannot write stdout: No space left on device", rec.msg)
    assert.equal(1, rec.exit_status)
  end)

  it("stderr onto a full disk: exit 1", function()
    local r = H.sh(("%s -e %s 2>/dev/full"):format(H.quote(H.TRAINCTL), H.quote("io.stderr:write('x')")))
    assert.equal(1, r.code)
  end)

  -- A pipe whose reader is gone before trainctl starts: every write
  -- meets EPIPE, whatever the timing.
  local function into_closed_pipe(chunk)
    return H.sh(("python3 -c %s %s -e %s"):format(H.quote(
      "import os, subprocess, sys\n"
      .. "r, w = os.pipe()\nos.close(r)\n"
      .. "sys.exit(subprocess.call(sys.argv[1:], stdout=w))"), H.quote(H.TRAINCTL), H.quote(chunk)))
  end

  it("a reader that went away ends the run quietly with 141, as SIGPIPE would", function()
    local r = into_closed_pipe("for i = 1, 1e6 do print(('x'):rep(100)) end io.stderr:write('finished\\n')")
    assert.equal(141, r.code)
    assert.equal("", r.err)
  end)

  it("a reader that went away by the end of the run: 141, quietly", function()
    local r = into_closed_pipe("print('short')")
    assert.equal(141, r.code)
    assert.equal("", r.err)
  end)

  -- A reader that stopped reading (tests/support/stuck_reader.py): the
  -- run's Lua is over (stderr says "done"), its last bytes wait in
  -- stdout's buffer, and the flush at the exit blocks on the full pipe
  -- (/proc says so); then a stop arrives. The output is cut short, so
  -- the run must not end 0, and must end.
  -- stuck(chunk, opts) -> exit status (or "hung"), bytes the pipe got,
  -- stderr. opts: signal, pipe_size, args (before -e), stderr_too.
  local function stuck(chunk, opts)
    local dir = H.tmpdir()
    local words = { "python3", H.cwd .. "/tests/support/stuck_reader.py",
      "--pipe-size", tostring(opts.pipe_size or 65536) }
    if opts.stderr_too then
      words[#words + 1] = "--stderr-too"
    else
      words[#words + 1] = "--stderr"
      words[#words + 1] = dir .. "/err"
    end
    if opts.signal then
      words[#words + 1] = "--signal"
      words[#words + 1] = opts.signal
    end
    words[#words + 1] = "--"
    words[#words + 1] = H.TRAINCTL
    for _, a in ipairs(opts.args or {}) do words[#words + 1] = a end
    words[#words + 1] = "-e"
    words[#words + 1] = chunk
    local r = H.sh(words)
    local err = H.read(dir .. "/err") or ""
    H.rmdir(dir)
    local code, bytes = r.out:match("^(%S+) (%d+)")
    return tonumber(code) or code, tonumber(bytes), err
  end
  -- The pipe full to the byte, the tail left in the buffer: the last
  -- write gets nothing through, and the stop makes it fail (EINTR).
  local FULL = "io.write(('x'):rep(tonumber(os.getenv('FILL')))) io.write('tail\\n') "
    .. "io.stderr:write('done\\n')"

  it("a stop that cuts the last flush short: the stop's status and line, not 0", function()
    local code, bytes, err = stuck(FULL, { signal = "SIGINT" })
    assert.equal(130, code)
    assert.equal(65536, bytes)
    assert.equal("done\ntrainctl: interrupted!\n", err)
    code, bytes, err = stuck(FULL, { signal = "SIGTERM" })
    assert.equal(143, code)
    assert.equal(65536, bytes)
    assert.equal("done\ntrainctl: terminated (SIGTERM)\n", err)
  end)

  it("a stop after part of the last flush went through: the same, at once", function()
    -- 6,000 bytes buffered into a pipe of 4,096: the write moves 4,096
    -- and waits for room; the stop ends it with a short count.
    local code, bytes, err = stuck("io.write(('x'):rep(6000)) io.stderr:write('done\\n')",
      { signal = "SIGINT", pipe_size = 4096 })
    assert.equal(130, code)
    assert.equal(4096, bytes)
    assert.equal("done\ntrainctl: interrupted!\n", err)
  end)

  it("--timeout during the last flush: exit 4 and its line", function()
    local code, bytes, err = stuck(FULL, { args = { "--timeout", "1" } })
    assert.equal(4, code)
    assert.equal(65536, bytes)
    assert.equal("done\ntrainctl: timeout: the --timeout for this run was reached\n", err)
  end)

  it("--timeout with stderr in the same stuck pipe (2>&1): it still ends, exit 4", function()
    -- The stop's line cannot be written: it is left out rather than
    -- waited for, by the run and by the backstop.
    local code, bytes = stuck("io.write(('x'):rep(tonumber(os.getenv('FILL')))) io.write('tail\\n')",
      { args = { "--timeout", "1" }, stderr_too = true })
    assert.equal(4, code)
    assert.equal(65536, bytes)
  end)

  it("a script printing a lot into head: 141", function()
    local r = H.sh({ "bash", "-c", ("%s -e %s | head -c1 >/dev/null; exit ${PIPESTATUS[0]}")
      :format(H.quote(H.TRAINCTL), H.quote("for i = 1, 1e6 do print(('x'):rep(100)) end")) })
    assert.equal(141, r.code)
    assert.equal("", r.err)
  end)
end)

describe("core dumps", function()
  local probe = "print(require('trainctl.sys').dumpable())"
  local function run(opts, env)
    -- The sanitiser build turns core dumps off on its own unless told.
    env = env or {}
    env.ASAN_OPTIONS = (os.getenv("ASAN_OPTIONS") or "") .. ":disable_coredump=0"
    local words = { H.quote(H.TRAINCTL) }
    for _, o in ipairs(opts) do words[#words + 1] = o end
    words[#words + 1] = "-e " .. H.quote(probe)
    return H.sh("ulimit -c unlimited; " .. table.concat(words, " "), { env = env })
  end

  it("are off by default, even where the limit allows them", function()
    local r = run({})
    assert.equal("false\n", r.out)
    local limits = H.sh(("ulimit -c unlimited; %s -e %s"):format(H.quote(H.TRAINCTL),
      H.quote("io.write(io.open('/proc/self/limits'):read('a'))"))).out
    assert.matches("Max core file size%s+0%s", limits)
  end)

  it("are allowed by --core-dumps or TRAINCTL_CORE_DUMPS=1 (not under -E)", function()
    assert.equal("true\n", run({ "--core-dumps" }).out)
    assert.equal("true\n", run({}, { TRAINCTL_CORE_DUMPS = "1" }).out)
    assert.equal("false\n", run({ "-E" }, { TRAINCTL_CORE_DUMPS = "1" }).out)
  end)
end)

describe("sys.deadline", function()
  it("is when the --timeout ends, in sys.now() seconds; nil without one", function()
    local chunk = "local s = require('trainctl.sys') local d = s.deadline() print(d and math.floor(d - s.now() + 0.5))"
    assert.equal("60\n", H.run({ "--timeout", "1m", "-e", chunk }).out)
    assert.equal("nil\n", H.run({ "-e", chunk }).out)
  end)
end)
