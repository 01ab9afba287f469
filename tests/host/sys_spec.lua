-- trainctl.sys: atomic writes, locks between processes, the two date
-- formats of the clouds, clocks and interruptible sleep.

local H = require "support"
local sys = require "trainctl.sys"

-- Code run by another trainctl process (a script on its stdin, so the
-- arguments are in arg).
local function in_other_process(code, ...)
  return H.run({ "-", ... }, { stdin = "local sys = require 'trainctl.sys' " .. code })
end

-- hidden_proc() -> a function that wraps a shell command so that it runs
-- without /proc (hidden in a mount namespace of its own), or nil and why
-- that cannot be done here.
local function hidden_proc()
  if os.getenv("ASAN_OPTIONS") then
    -- A sanitised build reads its options and its threads from /proc;
    -- without it LeakSanitizer fails the run. The plain build runs this.
    return nil, "a sanitised build needs /proc"
  end
  local function wrap(cmd)
    return "unshare --mount sh -c " .. H.quote("mount -t tmpfs none /proc && " .. cmd)
  end
  if H.exec(wrap("true") .. " 2>/dev/null") ~= 0 then
    return nil, "cannot hide /proc here (unshare and mount need root)"
  end
  return wrap
end

describe("sys.write_atomic", function()
  local dir

  before_each(function() dir = H.tmpdir() end)
  after_each(function()
    os.execute("chmod -R u+w " .. H.quote(dir))
    H.rmdir(dir)
  end)

  it("writes the whole content and leaves no temporary file", function()
    local path = dir .. "/state.json"
    local data = ('{"k":"v"}\n'):rep(10000) .. "\0binary\255"
    assert.is_true(sys.write_atomic(path, data))
    assert.equal(data, H.read(path))
    assert.same({ "state.json" }, H.ls(dir))
  end)

  it("replaces an existing file", function()
    local path = dir .. "/f"
    H.write(path, "old content that is longer")
    assert.is_true(sys.write_atomic(path, "new"))
    assert.equal("new", H.read(path))
    assert.same({ "f" }, H.ls(dir))
  end)

  it("sets the mode given", function()
    for _, mode in ipairs { tonumber("600", 8), tonumber("640", 8), tonumber("755", 8) } do
      local path = dir .. "/m" .. mode
      assert.is_true(sys.write_atomic(path, "x", mode))
      assert.equal(mode, sys.stat(path).mode)
    end
  end)

  it("applies the umask when no mode is given", function()
    local path = dir .. "/umask"
    local r = H.sh("umask 027 && exec " .. H.quote(H.TRAINCTL) .. " - " .. H.quote(path),
      { stdin = "assert(require'trainctl.sys'.write_atomic(arg[1], 'x'))" })
    assert.equal(0, r.code, r.err)
    assert.equal(tonumber("640", 8), sys.stat(path).mode)
  end)

  it("returns nil, an error naming the file, and errno in a missing directory", function()
    local path = dir .. "/no/such/dir/f.json"
    local ok, err, code = sys.write_atomic(path, "x")
    assert.is_nil(ok)
    assert.matches(path, err, 1, true)
    assert.is_number(code)
  end)

  it("returns nil and an error naming the file in an unwritable directory", function()
    local ro = dir .. "/ro"
    assert(sys.mkdir_p(ro))
    os.execute("chmod 555 " .. H.quote(ro))
    -- Permissions do not stop root; a proc directory stops everyone.
    if sys.write_atomic(ro .. "/probe", "x") then ro = "/proc/self" end
    local path = ro .. "/f.json"
    local ok, err = sys.write_atomic(path, "x")
    assert.is_nil(ok)
    assert.matches(path, err, 1, true)
  end)

  it("keeps the old file and no temporary when the disk fills up", function()
    -- A file size limit makes write() fail with EFBIG, as a full disk
    -- fails it with ENOSPC.
    local path = dir .. "/big"
    H.write(path, "old")
    local r = H.sh("trap '' XFSZ; ulimit -f 8; exec " .. H.quote(H.TRAINCTL) .. " - " .. H.quote(path),
      { stdin = "print(require'trainctl.sys'.write_atomic(arg[1], ('x'):rep(1000000)))" })
    assert.equal(0, r.code, r.err)
    assert.matches("^nil\t", r.out)
    assert.matches(path, r.out, 1, true)
    assert.equal("old", H.read(path))
    assert.same({ "big" }, H.ls(dir))
  end)

  it("writes through a temporary name where a file cannot be written without one, and sweeps those left", function()
    -- Without /proc, an unnamed file (O_TMPFILE) could not be given a
    -- name: the write goes through NAME.trainctl-tmp.XXXXXX instead, as on
    -- file systems without O_TMPFILE. /proc is hidden in a mount namespace.
    local hide, why = hidden_proc()
    if not hide then
      pending(why)
      return
    end
    local path = dir .. "/state.json"
    H.write(path, "old")
    H.write(path .. ".trainctl-tmp.Left01", "what a killed write left")
    local r = H.sh(hide("umask 027 && exec " .. H.quote(H.TRAINCTL) .. " - " .. H.quote(path)), { stdin = [[
        local sys = require 'trainctl.sys'
        assert(not sys.stat('/proc/self/fd'), '/proc is still there')
        assert(sys.write_atomic(arg[1], ('x'):rep(100000)))]] })
    assert.equal(0, r.code, r.err)
    assert.equal(("x"):rep(100000), H.read(path))
    assert.equal(tonumber("640", 8), sys.stat(path).mode)
    assert.same({ "state.json" }, H.ls(dir))
  end)

  it("removes the temporaries that writers which died left beside the file, and only those", function()
    -- A kill between linkat and rename, or during a write through a
    -- temporary name, leaves a NAME.trainctl-tmp.XXXXXX; the next write
    -- sweeps it. A file of the user's named otherwise stays, however close.
    local path = dir .. "/state.json"
    local left = { "state.json.trainctl-tmp.AbC123", "state.json.trainctl-tmp.zz9ZZ9" }
    local others = { "other.json.trainctl-tmp.AbC123", "state.json.trainctl-tmp.AbC12",
      "state.json.trainctl-tmp.AbC1234", "state.json.trainctl-tmp.AbC-23", "state.jsonXtrainctl-tmp.AbC123",
      "xstate.json.trainctl-tmp.AbC123", "state.json.tmp.backup", "state.json.tmp.AbC123" }
    for _, name in ipairs(left) do H.write(dir .. "/" .. name, "whole") end
    for _, name in ipairs(others) do H.write(dir .. "/" .. name, "theirs") end
    assert.is_true(sys.write_atomic(path, "new"))
    table.insert(others, "state.json")
    table.sort(others)
    assert.same(others, H.ls(dir))
    for _, name in ipairs(others) do
      if name ~= "state.json" then assert.equal("theirs", H.read(dir .. "/" .. name)) end
    end
  end)

  it("leaves the temporary of a writer that is still at work", function()
    -- Its writer holds a lock on it until it is placed.
    local path = dir .. "/state.json"
    local busy = dir .. "/state.json.trainctl-tmp.Busy01"
    H.write(busy, "half")
    local held = assert(sys.lock(busy))
    assert.is_true(sys.write_atomic(path, "new"))
    assert.same({ "state.json", "state.json.trainctl-tmp.Busy01" }, H.ls(dir))
    assert.equal("half", H.read(busy))
    held:unlock()
    assert.is_true(sys.write_atomic(path, "newer"))
    assert.same({ "state.json" }, H.ls(dir))
  end)

  it("lets writers at work side by side all succeed, and leaves nothing beside the file", function()
    -- Each one's sweep meets the others' temporaries while they are
    -- written (and, without /proc, named before they are locked).
    local path = dir .. "/state.json"
    local hide = hidden_proc()
    for _, without_proc in ipairs(hide and { false, true } or { false }) do
      local procs = {}
      for i = 1, 4 do
        local script = ("local sys = require 'trainctl.sys' for n = 1, 300 do "
          .. "assert(sys.write_atomic(%q, ('%d'):rep(1000 * n))) end"):format(path, i)
        local cmd = ("exec %s -e %s"):format(H.quote(H.TRAINCTL), H.quote(script))
        if without_proc then cmd = "exec " .. hide(cmd) end
        procs[i] = H.spawn(cmd)
      end
      for i = 1, 4 do
        local code, _, err = procs[i]:wait()
        assert.equal(0, code, err)
      end
      local data = H.read(path)
      assert.is_truthy(data:match("^[1-4]") and data == data:sub(1, 1):rep(#data), "a file written by one writer")
      assert.same({ "state.json" }, H.ls(dir))
    end
  end)

  it("does not follow a symlink named like a temporary", function()
    local path = dir .. "/state.json"
    H.write(dir .. "/target", "kept")
    assert(os.execute("ln -s target " .. H.quote(dir .. "/state.json.trainctl-tmp.Link01")))
    assert.is_true(sys.write_atomic(path, "new"))
    assert.equal("kept", H.read(dir .. "/target"))
    assert.same({ "state.json", "state.json.trainctl-tmp.Link01", "target" }, H.ls(dir))
  end)

  it("raises on arguments of the wrong type", function()
    assert.has_error(function() sys.write_atomic(dir .. "/x", {}) end)
    assert.has_error(function() sys.write_atomic(nil, "x") end)
  end)
end)

describe("sys.lock", function()
  local dir, path

  before_each(function()
    dir = H.tmpdir()
    path = dir .. "/run.lock"
  end)
  after_each(function() H.rmdir(dir) end)

  local probe = "local l, msg, code = sys.lock(arg[1]) print(type(l), msg, code)"

  it("excludes another process: nil, message, 'locked'", function()
    local held = assert(sys.lock(path))
    local r = in_other_process(probe, path)
    assert.equal(0, r.code, r.err)
    local kind, msg, code = r.out:match("^(%S+)\t(.-)\t(%S+)\n$")
    assert.equal("nil", kind)
    assert.equal("locked", code)
    assert.matches(path, msg, 1, true)
    held:unlock()
  end)

  it("is free again after unlock", function()
    local held = assert(sys.lock(path))
    held:unlock()
    local r = in_other_process(probe, path)
    assert.matches("^userdata\t", r.out)
  end)

  it("is released by a to-be-closed variable", function()
    do
      local held <close> = assert(sys.lock(path))
      assert.is_userdata(held)
      assert.matches("^nil\t", in_other_process(probe, path).out)
    end
    assert.matches("^userdata\t", in_other_process(probe, path).out)
  end)

  it("is released when the holding process exits", function()
    local r = in_other_process("assert(sys.lock(arg[1])) os.exit(0)", path)
    assert.equal(0, r.code)
    local mine = assert(sys.lock(path))
    mine:unlock()
  end)

  it("fails with errno, not 'locked', when the file cannot be opened", function()
    local l, msg, code = sys.lock(dir .. "/missing/dir/lock")
    assert.is_nil(l)
    assert.matches("missing/dir/lock", msg, 1, true)
    assert.is_number(code)
  end)
end)

describe("time formats", function()
  -- GNU date computes the expected values, independently of our code.
  local function gnu_date(fmt, times)
    local dir = H.tmpdir()
    local lines = {}
    for i, t in ipairs(times) do lines[i] = "@" .. t end
    H.write(dir .. "/in", table.concat(lines, "\n") .. "\n")
    local r = H.sh({ "date", "-u", "-f", dir .. "/in", fmt }, { env = { LC_ALL = "C" } })
    H.rmdir(dir)
    assert.equal(0, r.code, r.err)
    local out = {}
    for line in r.out:gmatch("[^\n]+") do out[#out + 1] = line end
    return out
  end

  local times = { 0, 1, -1, 951782400, 1709164800, 1722306336, 2147483647, 2147483648,
    4102444800, -2208988800 }
  math.randomseed(os.time())
  for _ = 1, 40 do times[#times + 1] = math.random(-2208988800, 4102444800) end

  it("format_iso8601 agrees with date(1)", function()
    local want = gnu_date("+%Y-%m-%dT%H:%M:%SZ", times)
    for i, t in ipairs(times) do assert.equal(want[i], sys.format_iso8601(t)) end
  end)

  it("format_rfc1123 agrees with date(1) in the C locale", function()
    local want = gnu_date("+%a, %d %b %Y %H:%M:%S GMT", times)
    for i, t in ipairs(times) do assert.equal(want[i], sys.format_rfc1123(t)) end
  end)

  it("round-trips both formats", function()
    for _, t in ipairs(times) do
      assert.equal(t, sys.parse_iso8601(sys.format_iso8601(t)))
      assert.equal(t, sys.parse_rfc1123(sys.format_rfc1123(t)))
    end
  end)

  it("keeps milliseconds when asked", function()
    local s = sys.format_iso8601(1722306336.25, true)
    assert.matches("%.250Z$", s)
    assert.near(1722306336.25, sys.parse_iso8601(s), 1e-6)
    assert.matches("%.500Z$", sys.format_iso8601(-0.5, true))
    assert.equal(-0.5, sys.parse_iso8601(sys.format_iso8601(-0.5, true)))
  end)

  it("formats the current time when none is given", function()
    -- On the clock format_iso8601 reads: os.time() reads a coarser one,
    -- which may still be in the last second when this one is not.
    local before = math.floor(sys.now())
    local t = sys.parse_iso8601(sys.format_iso8601())
    assert.is_true(t >= before and t <= sys.now())
  end)

  it("parses the ISO 8601 forms the clouds send", function()
    local t = sys.parse_iso8601("2024-01-01T00:00:00Z")
    assert.equal(gnu_date("+%s", { 1704067200 })[1], tostring(t))
    assert.equal(t, sys.parse_iso8601("2024-01-01"))
    assert.equal(t, sys.parse_iso8601("2024-01-01 00:00:00"))
    assert.equal(t, sys.parse_iso8601("2024-01-01t00:00:00z"))
    assert.equal(t, sys.parse_iso8601("2024-01-01T00:00"))
    assert.equal(t, sys.parse_iso8601("2024-01-01T09:00:00+09:00"))
    assert.equal(t, sys.parse_iso8601("2024-01-01T09:30:00+0930"))
    assert.equal(t, sys.parse_iso8601("2023-12-31T19:00:00-05:00"))
    assert.equal(t + 0.123, sys.parse_iso8601("2024-01-01T00:00:00.123Z"))
    assert.equal(t, sys.parse_iso8601("2024-01-01T00:00:00.000Z"))
    assert.equal(math.type(t), "integer")
    assert.equal(sys.parse_iso8601("2024-02-29"), sys.parse_iso8601("2024-03-01") - 86400)
  end)

  it("rejects what is not an ISO 8601 time with nil, err", function()
    for _, s in ipairs { "", "2024", "2024-1-1", "2024-13-01", "2024-00-10", "2024-01-32",
      "2024-02-30", "2023-02-29", "2024-04-31", "2024-01-01T24:00:00Z", "2024-01-01T00:60:00Z",
      "2024-01-01T00:00:61Z", "2024-01-01T00:00:00Zjunk", "2024-01-01T00:00:00.Z",
      "2024-01-01T00:00:00+9", "2024-01-01T", "yesterday", "2024-01-01T00:00:00 " } do
      local t, err = sys.parse_iso8601(s)
      assert.is_nil(t, s)
      assert.matches(s, err, 1, true)
    end
  end)

  it("parses the three HTTP date forms (RFC 9110 5.6.7)", function()
    local t = 784111777
    assert.equal(t, sys.parse_rfc1123("Sun, 06 Nov 1994 08:49:37 GMT"))
    assert.equal(t, sys.parse_rfc1123("Sunday, 06-Nov-94 08:49:37 GMT"))
    assert.equal(t, sys.parse_rfc1123("Sun Nov  6 08:49:37 1994"))
    assert.equal(gnu_date("+%a, %d %b %Y %H:%M:%S GMT", { t })[1], sys.format_rfc1123(t))
  end)

  it("rejects what is not an HTTP date with nil, err", function()
    for _, s in ipairs { "", "garbage", "Sun, 06 Nov" } do
      local t, err = sys.parse_rfc1123(s)
      assert.is_nil(t, s)
      assert.is_string(err)
    end
  end)

  it("raises on times no calendar format can hold", function()
    assert.has_error(function() sys.format_iso8601(1e300) end)
    assert.has_error(function() sys.format_rfc1123(0 / 0) end)
  end)
end)

describe("clocks and sleep", function()
  it("now() is the wall clock in seconds", function()
    assert.is_true(math.abs(sys.now() - os.time()) <= 1)
  end)

  it("sleep waits at least as long as asked, on the monotonic clock", function()
    local t0 = sys.clock()
    sys.sleep(0.05)
    assert.is_true(sys.clock() - t0 >= 0.05)
  end)

  it("sleep returns at once for zero, negative and NaN", function()
    local t0 = sys.clock()
    sys.sleep(0)
    sys.sleep(-5)
    sys.sleep(0 / 0)
    assert.is_true(sys.clock() - t0 < 1)
  end)

  for _, sig in ipairs { { "INT", 130 }, { "TERM", 143 } } do
    it("sleep(30) is interrupted by SIG" .. sig[1] .. " and the run exits " .. sig[2], function()
      local p = H.spawn(H.quote(H.TRAINCTL) .. " -e " .. H.quote(
        "local sys = require 'trainctl.sys' print('sleeping') io.stdout:flush() sys.sleep(30)"))
      assert.equal("sleeping", p:line())
      local t0 = sys.clock()
      p:kill(sig[1])
      assert.equal(sig[2], (p:wait()))
      assert.is_true(sys.clock() - t0 < 5)
    end)
  end

  it("sleep inside a script (a task) is interrupted too", function()
    local dir = H.tmpdir()
    H.write(dir .. "/s.lua", "print('sleeping') io.stdout:flush() require('trainctl.sys').sleep(30)")
    local p = H.spawn(H.quote(H.TRAINCTL) .. " " .. H.quote(dir .. "/s.lua"))
    assert.equal("sleeping", p:line())
    local t0 = sys.clock()
    p:kill("INT")
    assert.equal(130, (p:wait()))
    assert.is_true(sys.clock() - t0 < 5)
    H.rmdir(dir)
  end)
end)

describe("process and files", function()
  it("getpid is the process id", function()
    local p = H.spawn(H.quote(H.TRAINCTL) .. " -e " .. H.quote("print(require'trainctl.sys'.getpid())"))
    assert.equal(p.pid, tonumber(p:line()))
    p:wait()
  end)

  it("getenv reads the environment", function()
    local r = H.run({ "-e", "print(require'trainctl.sys'.getenv('TRAINCTL_TEST_VAR'))" },
      { env = { TRAINCTL_TEST_VAR = "v a l" } })
    assert.equal("v a l\n", r.out)
    assert.is_nil(sys.getenv("TRAINCTL_SURELY_UNSET_VARIABLE"))
  end)

  it("isatty is false for a file", function()
    local r = H.run({ "-e", "print(require'trainctl.sys'.isatty(0), require'trainctl.sys'.isatty(1))" })
    assert.equal("false\tfalse\n", r.out)
  end)

  it("mkdir_p makes every missing level, and again is no error", function()
    local dir = H.tmpdir()
    local deep = dir .. "/a/b/c"
    assert.is_true(sys.mkdir_p(deep))
    assert.equal("dir", sys.stat(deep).type)
    assert.is_true(sys.mkdir_p(deep))
    H.write(dir .. "/file", "x")
    local ok, err = sys.mkdir_p(dir .. "/file/sub")
    assert.is_nil(ok)
    assert.matches("file", err, 1, true)
    H.rmdir(dir)
  end)

  it("stat reports size, mode, type; nil, err for a missing file", function()
    local dir = H.tmpdir()
    assert(sys.write_atomic(dir .. "/f", "12345", tonumber("644", 8)))
    local st = sys.stat(dir .. "/f")
    assert.equal(5, st.size)
    assert.equal(tonumber("644", 8), st.mode)
    assert.equal("file", st.type)
    assert.is_true(math.abs(st.mtime - os.time()) <= 2)
    local none, err = sys.stat(dir .. "/none")
    assert.is_nil(none)
    assert.matches("none", err)
    H.rmdir(dir)
  end)
end)
