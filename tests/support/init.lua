-- The helpers every suite shares: files and temporary directories, shell
-- quoting, processes (run to the end with their output captured, or in
-- the background with pid-keyed files, to be read, killed and waited
-- for) and polling for an event under a deadline. A spec reaches them
-- with require("support") (.busted puts tests/ on the module path); the
-- emulator is support.cloudsim, the unit test doubles support.doubles.
--
-- The binary under test is $TRAINCTL (default ./trainctl), as the
-- sanitiser build sets it; the specs themselves run under it too.
local sys = require("trainctl.sys")

local M = {}

function M.quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end
local quote = M.quote

-- capture(cmd) -> what cmd printed on stdout, without the last newline.
function M.capture(cmd)
  local f = assert(io.popen(cmd))
  local out = f:read("a")
  f:close()
  return (out:gsub("\n$", ""))
end

M.cwd = M.capture("pwd")

local function absolute(p)
  if p:sub(1, 1) == "/" then return p end
  return M.cwd .. "/" .. p:gsub("^%./", "")
end
M.TRAINCTL = absolute(os.getenv("TRAINCTL") or "./trainctl")

-- files -----------------------------------------------------------------

-- read(path) -> the file's bytes, or nil when it cannot be opened.
function M.read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

function M.write(path, data)
  local f = assert(io.open(path, "wb"))
  f:write(data)
  f:close()
end

-- lines(path) -> the file's non-empty lines (none when it is missing).
function M.lines(path)
  local out = {}
  for line in (M.read(path) or ""):gmatch("[^\n]+") do out[#out + 1] = line end
  return out
end

-- ls(dir) -> names in dir, sorted, dot files included.
function M.ls(dir)
  local names = {}
  for name in M.capture("ls -A " .. quote(dir)):gmatch("[^\n]+") do names[#names + 1] = name end
  table.sort(names)
  return names
end

-- unnamed_open(pid, dir) -> whether process pid has a file open in dir
-- that has no name (O_TMPFILE: /proc shows "dir/#INODE (deleted)"), as a
-- file being written for fs_pending (src/core/fs.h) has until it is placed.
function M.unnamed_open(pid, dir)
  local fds = ("/proc/%d/fd"):format(pid)
  for _, fd in ipairs(M.ls(fds)) do
    local target = sys.readlink(fds .. "/" .. fd)
    if target and target:sub(1, #dir + 2) == dir .. "/#" and target:find(" (deleted)", 1, true) then
      return true
    end
  end
  return false
end

-- tmpfile_works(dir) -> whether files without a name (O_TMPFILE) can be
-- made in dir: whether fs_pending makes them there.
function M.tmpfile_works(dir)
  return M.exec(("python3 -c 'import os, sys; os.close(os.open(sys.argv[1], os.O_TMPFILE | os.O_RDWR))' %s 2>/dev/null")
    :format(quote(dir))) == 0
end

local made, live = {}, {}

-- What a spec file leaves behind (its directories, the processes it
-- started and did not wait for) goes with this module, at the end of the
-- file or of the run: a test that fails, or whose finally busted replaced
-- with a later one (it keeps only the last), leaves nothing.
M.janitor = setmetatable({}, { __gc = function()
  for proc in pairs(live) do
    proc:kill("KILL")
    for _, f in ipairs({ proc.out, proc.rc, proc.pidfile, not proc.err_given and proc.err or nil }) do
      os.remove(f)
    end
  end
  for dir in pairs(made) do os.execute("rm -rf " .. M.quote(dir)) end
end })

-- tmpdir([base]) -> dir, remove: a fresh directory under base ($TMPDIR by
-- default) and the function that removes it (rmdir(dir) does the same).
function M.tmpdir(base)
  base = base or os.getenv("TMPDIR") or "/tmp"
  local dir = M.capture(("mktemp -d %s"):format(quote(base .. "/trainctl-test.XXXXXX")))
  assert(dir ~= "", "mktemp -d failed")
  made[dir] = true
  return dir, function() M.rmdir(dir) end
end

-- rmdir(dir): removes a directory made by tmpdir, and only such a one.
function M.rmdir(dir)
  if dir and made[dir] then
    os.execute("rm -rf " .. quote(dir))
    made[dir] = nil
  end
end

-- matches(s, pattern) -> how many times pattern occurs in s.
function M.matches(s, pattern)
  local n = 0
  for _ in s:gmatch(pattern) do n = n + 1 end
  return n
end

-- polling -----------------------------------------------------------------

-- within(seconds, fn) -> fn's first true value, asked every 10 ms on the
-- monotonic clock, or nil once the seconds have passed.
function M.within(seconds, fn)
  local deadline = sys.clock() + seconds
  while true do
    local v = fn()
    if v then return v end
    if sys.clock() > deadline then return nil end
    sys.sleep(0.01)
  end
end

-- poll(fn, seconds, what) -> as within (20 s by default), but past the
-- deadline the test fails saying what it was waiting for.
function M.poll(fn, seconds, what)
  local v = M.within(seconds or 20, fn)
  if v == nil then error("timed out waiting for " .. tostring(what), 2) end
  return v
end

-- processes -----------------------------------------------------------------

-- status(ok, how, code) of os.execute or a close -> the exit status as a
-- shell gives it (128 + N for signal N).
local function status(ok, how, code)
  if how == "signal" then return 128 + code end
  if ok then return 0 end
  return code
end
M.status = status

-- exec(cmd) -> exit status of a shell command.
function M.exec(cmd)
  return status(os.execute(cmd))
end

-- The sanitiser settings a clean environment keeps: `make check-asan`
-- sets ASAN_OPTIONS with verify_asan_link_order=0, without which the
-- sanitised binary refuses to start under LD_PRELOAD=libfaketime (its
-- runtime no longer first among the libraries). Unset in a plain run.
M.SANITIZER_VARS = { "ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS" }

-- sanitizer_env(vars) -> vars with each of SANITIZER_VARS that is set in
-- our environment added (vars itself, or a new table).
function M.sanitizer_env(vars)
  vars = vars or {}
  for _, k in ipairs(M.SANITIZER_VARS) do
    local v = os.getenv(k)
    if v then vars[k] = v end
  end
  return vars
end

-- env_words({name = value or false}, clear) -> "env -u A B='b' " (sorted);
-- with clear, "env -i ..." with only these, $PATH and $TRAINCTL_LUA_PATH
-- (a development run tests the source tree) and the sanitiser settings.
local function env_words(env, clear)
  local vars = {}
  if clear then
    vars.PATH, vars.TRAINCTL_LUA_PATH = os.getenv("PATH"), os.getenv("TRAINCTL_LUA_PATH")
    M.sanitizer_env(vars)
  end
  for k, v in pairs(env or {}) do vars[k] = v end
  local parts = {}
  for k, v in pairs(vars) do
    if v ~= false then
      parts[#parts + 1] = k .. "=" .. quote(v)
    elseif not clear then
      parts[#parts + 1] = "-u " .. k
    end
  end
  table.sort(parts)
  if clear then table.insert(parts, 1, "-i") end
  return #parts > 0 and ("env " .. table.concat(parts, " ") .. " ") or ""
end

local function command_line(words)
  if type(words) == "string" then return "sh -c " .. quote(words) end
  local q = {}
  for i, w in ipairs(words) do q[i] = quote(w) end
  return table.concat(q, " ")
end

-- sh(words, opts) -> {code, out, err}: a command (a list of words, or a
-- string for sh -c) run to its end. opts: stdin (a string), env (name ->
-- value, false to unset), clear (env -i: only env, $PATH,
-- $TRAINCTL_LUA_PATH and the sanitiser settings), cwd.
function M.sh(words, opts)
  opts = opts or {}
  local dir = M.tmpdir()
  M.write(dir .. "/in", opts.stdin or "")
  local line = ("cd %s && exec %s%s <%s >%s 2>%s"):format(quote(opts.cwd or M.cwd), env_words(opts.env, opts.clear),
    command_line(words), quote(dir .. "/in"), quote(dir .. "/out"), quote(dir .. "/err"))
  local r = { code = M.exec(line) }
  r.out, r.err = M.read(dir .. "/out"), M.read(dir .. "/err")
  M.rmdir(dir)
  return r
end

-- run(args, opts) -> {code, out, err}: the binary under test with args.
function M.run(args, opts)
  local words = { M.TRAINCTL }
  for _, a in ipairs(args) do words[#words + 1] = a end
  return M.sh(words, opts)
end

local Proc = {}
Proc.__index = Proc

-- spawn(cmd, opts) -> proc: a shell command running in the background,
-- its stdout and stderr in files keyed by this process's pid (which keeps
-- two suites running at once apart). The command is exec'd, so a simple
-- command (env ..., setsid env ..., timeout ...) has proc.pid as its own.
-- opts: cwd, env (as sh), stdin (a path, default /dev/null), stderr (a
-- path to send stderr to instead, left in place).
local spawned = 0
function M.spawn(cmd, opts)
  opts = opts or {}
  spawned = spawned + 1
  local base = ("%s/trainctl-test-%d-%d-%d"):format(os.getenv("TMPDIR") or "/tmp", sys.getpid(),
    math.floor(sys.clock() * 1000), spawned)
  local proc = setmetatable({ out = base .. ".out", err = opts.stderr or (base .. ".err"), rc = base .. ".rc",
    pidfile = base .. ".pid", err_given = opts.stderr ~= nil, read_at = 0 }, Proc)
  local line = ("cd %s && exec %s%s"):format(quote(opts.cwd or M.cwd), env_words(opts.env), cmd:gsub("^exec ", ""))
  os.execute(("(sh -c %s <%s >%s 2>%s & echo $! >%s; wait $!; echo $? >%s) >/dev/null 2>&1 &"):format(
    quote(line), quote(opts.stdin or "/dev/null"), quote(proc.out), quote(proc.err), quote(proc.pidfile),
    quote(proc.rc)))
  proc.pid = tonumber(M.poll(function()
    local s = M.read(proc.pidfile)
    return s and s:match("%d+")
  end, 10, "the background command to start"))
  live[proc] = true
  return proc
end

-- exited() -> exit status once the process has ended, else nil.
function Proc:exited()
  if not self.code then
    local s = M.read(self.rc)
    self.code = s and tonumber(s:match("%d+"))
  end
  return self.code
end

-- line([seconds]) -> the next line of stdout (without its newline), once
-- it is written in full; nil once the process has ended without one.
function Proc:line(seconds)
  local got = M.poll(function()
    local s = (M.read(self.out) or ""):sub(self.read_at + 1)
    local line = s:match("^([^\n]*)\n")
    if line then
      self.read_at = self.read_at + #line + 1
      return { line }
    end
    if self:exited() then
      s = (M.read(self.out) or ""):sub(self.read_at + 1)
      self.read_at = self.read_at + #s
      return { s ~= "" and s or nil }
    end
  end, seconds or 60, "a line from the background command")
  return got[1]
end

-- stdout() / stderr() -> what the process printed so far.
function Proc:stdout() return self.final_out or M.read(self.out) or "" end
function Proc:stderr() return self.final_err or M.read(self.err) or "" end

-- kill(signal): only while it runs (its pid is not anyone else's).
function Proc:kill(signal)
  if self:exited() then return end
  os.execute(("kill -%s %d 2>/dev/null"):format(signal or "TERM", self.pid))
end

-- kill_group(signal): the process and all it started (run under setsid).
function Proc:kill_group(signal)
  if self:exited() then return end
  os.execute(("kill -%s -%d 2>/dev/null"):format(signal or "TERM", self.pid))
end

-- wait([seconds]) -> exit status, stdout, stderr, and the stdout not yet
-- read by line(); its own files are gone after (stdout() and stderr()
-- still answer).
function Proc:wait(seconds)
  local code = M.poll(function() return self:exited() end, seconds or 60, "the background command to exit")
  local out, err = self:stdout(), self:stderr()
  self.final_out, self.final_err = out, err
  live[self] = nil
  for _, f in ipairs({ self.out, self.rc, self.pidfile }) do os.remove(f) end
  if not self.err_given then os.remove(self.err) end
  return code, out, err, out:sub(self.read_at + 1)
end

-- script(dir, source, opts) -> proc: trainctl on source, written to
-- dir/script.lua, started in dir. opts: args (before the script), env,
-- e (give the source with -e instead: not a task), wrap (words before
-- trainctl), limit (seconds the child may live at most, default 30).
function M.script(dir, source, opts)
  opts = opts or {}
  local script = dir .. "/script.lua"
  M.write(script, source)
  local words = {}
  for _, w in ipairs(opts.wrap or {}) do words[#words + 1] = quote(w) end
  words[#words + 1] = quote(M.TRAINCTL)
  for _, a in ipairs(opts.args or {}) do words[#words + 1] = quote(a) end
  words[#words + 1] = opts.e and ("-e " .. quote(source)) or quote(script)
  return M.spawn(("timeout -k 5 %d %s"):format(opts.limit or 30, table.concat(words, " ")),
    { cwd = dir, env = opts.env })
end

-- run_script(source, opts) -> {code, out, err}: script, run to its end in
-- a directory of its own.
function M.run_script(source, opts)
  local dir = M.tmpdir()
  local code, out, err = M.script(dir, source, opts):wait((opts and opts.limit or 30) + 10)
  M.rmdir(dir)
  return { code = code, out = out, err = err }
end

-- server{script, args, https} -> {url, port, closed_url, stats(), stop()}:
-- a loopback test server (python3 script args; by default
-- tests/support/http_server.py) that prints its port on its first line,
-- and maybe after it a port nobody listens on (closed_url). stats() is
-- the default server's /stats document.
function M.server(opts)
  opts = opts or {}
  local words = { "python3", opts.script or (M.cwd .. "/tests/support/http_server.py") }
  for _, a in ipairs(opts.args or {}) do words[#words + 1] = a end
  local p = M.spawn("exec " .. command_line(words))
  local port, closed = (p:line(20) or ""):match("^(%d+) ?(%d*)$")
  assert(port, "the test server did not start: " .. p:stderr())
  local scheme = opts.https and "https" or "http"
  local srv = { port = tonumber(port), url = ("%s://127.0.0.1:%s"):format(scheme, port),
    closed_url = closed ~= "" and ("%s://127.0.0.1:%s"):format(scheme, closed) or nil }
  function srv.stats()
    local res = assert(require("trainctl._http").request({ url = srv.url .. "/stats", timeout = 5 }))
    return require("trainctl.json").decode(res.body)
  end
  function srv.stop()
    p:kill("KILL")
    p:wait()
  end
  return srv
end

-- running(text) -> the process table's lines of live processes (not
-- zombies) whose command line holds text.
function M.running(text)
  local found = {}
  for line in M.capture("ps -eo stat=,args="):gmatch("[^\n]+") do
    if line:find(text, 1, true) and not line:find("^Z") and not line:find("ps -eo", 1, true) then
      found[#found + 1] = line
    end
  end
  return found
end

-- sockets() -> how many sockets this process has open.
function M.sockets()
  local n = 0
  for line in M.capture("ls -l /proc/" .. sys.getpid() .. "/fd 2>/dev/null"):gmatch("[^\n]+") do
    if line:find("socket:", 1, true) then n = n + 1 end
  end
  return n
end

return M
