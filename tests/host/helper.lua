-- Shared by the host specs: run the binary under test as a subprocess,
-- start the loopback servers, make and remove temporary directories.
-- The binary is $TRAINCTL (default ./trainctl), as the sanitiser build
-- sets it; the specs themselves also run under that binary.

local sys = require "trainctl.sys"

local H = {}

function H.q(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

local function capture(cmd)
  local f = assert(io.popen(cmd))
  local out = f:read("a")
  f:close()
  return out
end

H.cwd = capture("pwd"):gsub("\n$", "")

local function absolute(p)
  if p:sub(1, 1) == "/" then return p end
  return H.cwd .. "/" .. p:gsub("^%./", "")
end

H.trainctl = absolute(os.getenv("TRAINCTL") or "./trainctl")
H.here = H.cwd .. "/tests/host"

function H.read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

function H.write(path, data)
  local f = assert(io.open(path, "wb"))
  f:write(data)
  f:close()
end

local made = {}

function H.tmpdir()
  local dir = capture("mktemp -d"):gsub("\n$", "")
  made[dir] = true
  return dir
end

--- Removes a directory made by H.tmpdir (and only such a directory).
function H.rmdir(dir)
  if made[dir] then
    os.execute("rm -rf " .. H.q(dir))
    made[dir] = nil
  end
end

--- Names in a directory, sorted (dot files included).
function H.ls(dir)
  local names = {}
  for name in capture("ls -A " .. H.q(dir)):gmatch("[^\n]+") do
    names[#names + 1] = name
  end
  table.sort(names)
  return names
end

local function status_of(ok, how, code)
  if how == "signal" then return 128 + code end
  if ok then return 0 end
  return code
end

local function env_prefix(env)
  local parts = {}
  for k, v in pairs(env or {}) do
    if v == false then
      parts[#parts + 1] = "-u " .. k
    else
      parts[#parts + 1] = k .. "=" .. H.q(v)
    end
  end
  table.sort(parts)
  return "env " .. table.concat(parts, " ") .. " "
end

--- Runs a command (a list of words, or a string for sh -c) and returns {code =, out =, err =}. opts: stdin (a string),
--- env (name -> value, false to unset), cwd.
function H.sh(words, opts)
  opts = opts or {}
  local dir = H.tmpdir()
  local cmd
  if type(words) == "table" then
    local q = {}
    for i, w in ipairs(words) do q[i] = H.q(w) end
    cmd = table.concat(q, " ")
  else
    cmd = "sh -c " .. H.q(words)
  end
  H.write(dir .. "/in", opts.stdin or "")
  local line = ("cd %s && exec %s%s <%s >%s 2>%s"):format(
    H.q(opts.cwd or H.cwd), env_prefix(opts.env), cmd,
    H.q(dir .. "/in"), H.q(dir .. "/out"), H.q(dir .. "/err"))
  local r = { code = status_of(os.execute(line)) }
  r.out, r.err = H.read(dir .. "/out"), H.read(dir .. "/err")
  H.rmdir(dir)
  return r
end

--- Runs the binary under test with the given arguments.
function H.run(args, opts)
  local words = { H.trainctl }
  for _, a in ipairs(args) do words[#words + 1] = a end
  return H.sh(words, opts)
end

--- Starts a command in the background with its stdout readable line by
--- line: returns {pid, lines(), kill(sig), wait() -> status}.
function H.spawn(cmd, opts)
  opts = opts or {}
  local f = assert(io.popen(("cd %s && echo $$ && exec %s%s 2>%s"):format(
    H.q(opts.cwd or H.cwd), env_prefix(opts.env), cmd, opts.stderr or "/dev/null")))
  local p = { pid = tonumber(f:read("l")) }
  function p.line() return f:read("l") end
  function p.kill(sig)
    os.execute(("kill -%s %d 2>/dev/null"):format(sig or "TERM", p.pid))
  end
  function p.wait()
    if not f then return p.status end
    p.status = status_of(f:close())
    f = nil
    return p.status
  end
  return p
end

--- Starts tests/host/http_server.py (with TLS when cert and key are
--- given) and returns {url, closed_url, port, stop()}.
function H.server(cert, key)
  local cmd = "python3 " .. H.q(H.here .. "/http_server.py")
  if cert then cmd = cmd .. " --tls " .. H.q(cert) .. " " .. H.q(key) end
  local p = H.spawn(cmd)
  local port, closed = assert(p.line(), "server did not start"):match("(%d+) (%d+)")
  local scheme = cert and "https" or "http"
  return {
    port = tonumber(port),
    url = ("%s://127.0.0.1:%s"):format(scheme, port),
    closed_url = ("%s://127.0.0.1:%s"):format(scheme, closed),
    stop = function() p.kill("KILL") p.wait() end,
  }
end

--- Polls fn() until it returns a true value or `seconds` pass on the
--- monotonic clock; returns that value (nil on timeout).
function H.within(seconds, fn)
  local deadline = sys.clock() + seconds
  repeat
    local v = fn()
    if v then return v end
    sys.sleep(0.01)
  until sys.clock() > deadline
  return nil
end

return H
