-- Shared by the event loop specs: run trainctl on a script as a child
-- process, start the loopback server, temporary files, deadlines.
-- The binary under test is $TRAINCTL (default ./trainctl); the specs
-- themselves run under it too, so trainctl.task is the real scheduler.

local sys = require "trainctl.sys"
local http = require "trainctl._http"
local cjson = require "cjson"

local S = {}

function S.q(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

local function capture(cmd)
  local f = assert(io.popen(cmd))
  local out = f:read("a")
  f:close()
  return out
end

S.cwd = capture("pwd"):gsub("\n$", "")
local bin = os.getenv("TRAINCTL") or "./trainctl"
S.trainctl = bin:sub(1, 1) == "/" and bin or S.cwd .. "/" .. bin:gsub("^%./", "")
S.here = S.cwd .. "/tests/loop"

function S.read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

function S.write(path, data)
  local f = assert(io.open(path, "wb"))
  f:write(data)
  f:close()
end

function S.tmpdir()
  return (capture("mktemp -d /tmp/trainctl-loop.XXXXXX"):gsub("\n$", ""))
end

function S.rmdir(dir)
  if dir and dir:match("^/tmp/trainctl%-loop%.") then os.execute("rm -rf " .. S.q(dir)) end
end

--- Lines of a file (empty list when it does not exist).
function S.lines(path)
  local out = {}
  for line in (S.read(path) or ""):gmatch("[^\n]+") do out[#out + 1] = line end
  return out
end

local function status_of(ok, how, code)
  if how == "signal" then return 128 + code end
  if ok then return 0 end
  return code
end

--- Polls fn() until it returns a true value or `seconds` pass on the
--- monotonic clock; returns that value, or nil on timeout.
function S.within(seconds, fn)
  local deadline = sys.clock() + seconds
  repeat
    local v = fn()
    if v then return v end
    sys.sleep(0.01)
  until sys.clock() > deadline
  return nil
end

--- Writes `source` to a script in `dir` and starts trainctl on it with
--- `args` before the script (options) and env (name -> value); with
--- `e = true` the source is given with -e instead (not a task). stdout is
--- read line by line; stderr goes to a file. A `limit` (default 30 s)
--- bounds the child's life whatever happens. Returns
--- {line(), wait() -> status, err() -> stderr text, seconds}.
function S.start(dir, source, opts)
  opts = opts or {}
  local script = dir .. "/script.lua"
  S.write(script, source)
  local env = {}
  for k, v in pairs(opts.env or {}) do env[#env + 1] = k .. "=" .. S.q(v) end
  table.sort(env)
  local words = {}
  for _, w in ipairs(opts.wrap or {}) do words[#words + 1] = S.q(w) end
  words[#words + 1] = S.q(S.trainctl)
  for _, a in ipairs(opts.args or {}) do words[#words + 1] = S.q(a) end
  if opts.e then
    words[#words + 1] = "-e " .. S.q(source)
  else
    words[#words + 1] = S.q(script)
  end
  local errfile = dir .. "/stderr"
  local cmd = ("cd %s && exec env %s timeout -k 5 %d %s </dev/null 2>%s"):format(
    S.q(dir), table.concat(env, " "), opts.limit or 30, table.concat(words, " "), S.q(errfile))
  local f = assert(io.popen(cmd))
  local p = { started = sys.clock() }
  function p.line() return f:read("l") end
  function p.wait()
    if f then
      local rest = f:read("a")
      p.out = rest
      p.status = status_of(f:close())
      p.seconds = sys.clock() - p.started
      f = nil
    end
    return p.status
  end
  function p.err() return S.read(errfile) or "" end
  return p
end

--- Runs a script to the end: {code, out, err, seconds}.
function S.run(source, opts)
  local dir = S.tmpdir()
  local p = S.start(dir, source, opts)
  local code = p.wait()
  local r = { code = code, out = p.out, err = p.err(), seconds = p.seconds }
  S.rmdir(dir)
  return r
end

--- Starts tests/loop/server.py: {url, stats(), stop()}.
function S.server()
  local f = assert(io.popen(("echo $$; exec python3 %s"):format(S.q(S.here .. "/server.py"))))
  local pid = assert(tonumber(f:read("l")))
  local port = assert(tonumber(f:read("l")), "the test server did not start")
  local srv = { url = ("http://127.0.0.1:%d"):format(port) }
  function srv.stats()
    local res = assert(http.request { url = srv.url .. "/stats", timeout = 5 })
    return cjson.decode(res.body)
  end
  function srv.stop()
    -- the server exits by itself when its parent (this process) goes away;
    -- stop it now so each spec file leaves nothing behind
    if f then
      os.execute(("kill -TERM %d 2>/dev/null"):format(pid))
      f:close()
      f = nil
    end
  end
  return srv
end

--- Starts the emulator (scripts/cloudsim) on a free port: {url, stop()}.
function S.cloudsim()
  local f = assert(io.popen(("echo $$; exec python3 %s --port 0 --quiet"):format(
    S.q(S.cwd .. "/scripts/cloudsim"))))
  local pid = assert(tonumber(f:read("l")))
  local url = (f:read("l") or ""):match("^cloudsim listening on (http://127%.0%.0%.1:%d+)$")
  assert(url, "cloudsim did not start")
  return {
    url = url,
    stop = function()
      if f then
        os.execute(("kill -TERM %d 2>/dev/null"):format(pid))
        f:close()
        f = nil
      end
    end,
  }
end

--- Open sockets of this process.
function S.sockets()
  local n = 0
  for line in capture("ls -l /proc/" .. sys.getpid() .. "/fd 2>/dev/null"):gmatch("[^\n]+") do
    if line:find("socket:", 1, true) then n = n + 1 end
  end
  return n
end

return S
