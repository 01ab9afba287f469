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
  -- "bad JSON" (a retry, or a false error) while the run went on. The
  -- document takes a third of a second to build and look over, and more
  -- than a second to decode, so the --timeout falls in the decoding.
  -- Wherever it falls, the run must end as stopped.
  it("is the run's stop, not a decode error", function()
    local r = H.run_script("local json = require('trainctl.json')\n"
      .. "local doc = '[' .. ('{\"a\":[1,2,3],\"b\":\"xyz\"},'):rep(1000000) .. '{}]'\n"
      .. "local v, err = json.decode(doc)\n"
      .. "if not v then print('swallowed: ' .. tostring(err)) end\n"
      .. "print('went on')\n", { args = { "--timeout", "1" } })
    assert.equal("", r.out)
    assert.equal(4, r.code)
    assert.equal("trainctl: timeout: the --timeout for this run was reached\n", r.err)
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

    it("stderr: no message lands in a file it opens", function()
      local r = with_file("local f = io.open(path, 'w') io.stderr:write('ERR\\n') "
        .. "f:write('data\\n') f:close() error('boom')", "2>&-")
      assert.equal("data\n", r.file)
      assert.equal(1, r.code)
    end)

    it("stdin: a read sees the end of input, not a file it opens", function()
      local r = with_file("io.open(path, 'w'):close() local f = io.open(path, 'w') f:write('secret\\n') "
        .. "f:close() f = io.open(path) print(io.read()) f:close()", "<&-")
      assert.equal("nil\n", r.out)
      assert.equal(0, r.code)
    end)
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

  -- A reader that stops reading: the run's Lua is over (stderr says
  -- "done"), its last bytes wait in stdout's buffer, and the flush at the
  -- exit blocks on the full pipe (/proc says so); then a stop arrives.
  -- The output is cut short, so the run must not end 0.
  local function stopped_in_last_flush(sig)
    local dir = H.tmpdir()
    local r = H.sh(("python3 -c %s %s %s %s -e %s"):format(H.quote(
      "import fcntl, os, signal, subprocess, sys, time\n"
      .. "errf, sig = sys.argv[1], getattr(signal, sys.argv[2])\n"
      .. "r, w = os.pipe()\n"
      .. "size = fcntl.fcntl(w, fcntl.F_GETPIPE_SZ)\n"
      .. "p = subprocess.Popen(sys.argv[3:], stdout=w, stderr=open(errf, 'wb'),\n"
      .. "    env=dict(os.environ, FILL=str(size)))\n"
      .. "os.close(w)\n"
      .. "def blocked():\n"
      .. "    if not open(errf, 'rb').read().endswith(b'done\\n'): return False\n"
      .. "    try: return open('/proc/%d/syscall' % p.pid).read().startswith('1 0x1 ')\n"
      .. "    except OSError: return False\n"
      .. "t0 = time.monotonic()\n"
      .. "while not blocked() and p.poll() is None and time.monotonic() - t0 < 20: time.sleep(0.005)\n"
      -- Nothing is read before the run ends: a reader making room
      -- could let the blocked write finish before the stop reaches it.
      .. "p.send_signal(sig)\n"
      .. "rc = p.wait(timeout=30)\n"
      .. "n = 0\n"
      .. "while True:\n"
      .. "    b = os.read(r, 65536)\n"
      .. "    if not b: break\n"
      .. "    n += len(b)\n"
      .. "print(rc, n)\n"), H.quote(dir .. "/err"), sig, H.quote(H.TRAINCTL),
      H.quote("io.write(('x'):rep(tonumber(os.getenv('FILL')))) io.write('tail\\n') io.stderr:write('done\\n')")))
    local err = H.read(dir .. "/err")
    H.rmdir(dir)
    local code, bytes = r.out:match("^(%-?%d+) (%d+)")
    return tonumber(code), tonumber(bytes), err
  end

  it("a stop that cuts the last flush short: the stop's status and line, not 0", function()
    local code, bytes, err = stopped_in_last_flush("SIGINT")
    assert.is_true(bytes > 0, "the reader got the first part")
    assert.equal(130, code)
    assert.equal("done\ntrainctl: interrupted!\n", err)
    local code2, _, err2 = stopped_in_last_flush("SIGTERM")
    assert.equal(143, code2)
    assert.equal("done\ntrainctl: terminated (SIGTERM)\n", err2)
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
