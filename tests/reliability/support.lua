-- Support for the reliability specs: cloudsim on a free port (HTTP or
-- HTTPS), its admin API, trainctl run in the foreground or in the
-- background (to be killed), and the searches the specs make in what a
-- run printed. Waiting is polling for an event under a deadline; time in
-- the emulator moves by its clock, never by a sleep in a test.
local json = require("trainctl.json")
local raw = require("trainctl._http")
local sys = require("trainctl.sys")

local M = {}

M.TRAINCTL = os.getenv("TRAINCTL") or "./trainctl"

M.CREDENTIALS = {
  NCLOUD_ACCESS_KEY = "cloudsim-ncp-access-key",
  NCLOUD_SECRET_KEY = "cloudsim-ncp-secret-key",
  ALIBABA_CLOUD_ACCESS_KEY_ID = "cloudsim-acs-key-id",
  ALIBABA_CLOUD_ACCESS_KEY_SECRET = "cloudsim-acs-key-secret",
  AZURE_LANGUAGE_KEY = "cloudsim-azure-language-key",
  AZURE_TENANT_ID = "cloudsim-tenant",
  AZURE_CLIENT_ID = "cloudsim-client-id",
  AZURE_CLIENT_SECRET = "cloudsim-client-secret",
}

-- Never printed in full: the secrets, and the ids of keys (printed with
-- their first four characters only).
M.SECRETS = {
  "cloudsim-ncp-secret-key", "cloudsim-acs-key-secret", "cloudsim-azure-language-key",
  "cloudsim-client-secret", "cloudsim-ncp-access-key", "cloudsim-acs-key-id", "cloudsim-client-id",
}

local function quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end
M.quote = quote

-- matches(s, pattern) -> how many times pattern occurs in s.
function M.matches(s, pattern)
  local n = 0
  for _ in s:gmatch(pattern) do n = n + 1 end
  return n
end

function M.slurp(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

function M.spit(path, data)
  local f = assert(io.open(path, "wb"))
  f:write(data)
  f:close()
end

function M.sh(cmd)
  local ok, _, code = os.execute(cmd)
  return ok and 0 or code
end

function M.tmpdir()
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir -p " .. quote(dir)))
  return dir
end

-- poll(fn, seconds, what) -> fn's first true value. fn is asked again
-- every 10 ms until the deadline, then the test fails saying what it was
-- waiting for.
function M.poll(fn, seconds, what)
  local deadline = sys.clock() + (seconds or 20)
  while true do
    local v = fn()
    if v then return v end
    if sys.clock() > deadline then error("timed out waiting for " .. tostring(what), 2) end
    sys.sleep(0.01)
  end
end

local Sim = {}
Sim.__index = Sim

-- start{speed, seed, data_dir, args, tls = {cert, key, ca}, host} -> sim.
function M.start(opts)
  opts = opts or {}
  local dir = M.tmpdir()
  local tls = opts.tls and ("--tls-cert %s --tls-key %s"):format(quote(opts.tls.cert), quote(opts.tls.key)) or ""
  local cmd = ("python3 scripts/cloudsim --port 0 --speed %s --seed %d --data-dir %s --quiet "
    .. "--port-file %s %s %s >%s 2>&1 & echo $!"):format(opts.speed or 0, opts.seed or 7,
    quote(opts.data_dir or "examples/data"), quote(dir .. "/port"), tls, opts.args or "",
    quote(dir .. "/cloudsim.log"))
  local p = assert(io.popen(cmd))
  local pid = p:read("l")
  p:close()
  local port = M.poll(function()
    local s = M.slurp(dir .. "/port")
    return s and s:match("%d+")
  end, 20, "cloudsim to listen (" .. tostring(M.slurp(dir .. "/cloudsim.log")) .. ")")
  local scheme = opts.tls and "https" or "http"
  local self = setmetatable({ pid = pid, port = port, dir = dir, ca = opts.tls and opts.tls.ca,
    url = ("%s://%s:%s"):format(scheme, opts.host or "127.0.0.1", port), runs = 0, opts = opts,
    cmd = cmd }, Sim)
  self.env = {
    TRAINCTL_AITEMS_ENDPOINT = self.url .. "/api/v1",
    TRAINCTL_OPENSEARCH_ENDPOINT = self.url,
    AZURE_LANGUAGE_ENDPOINT = self.url,
    TRAINCTL_ENTRA_ENDPOINT = self.url,
    XDG_STATE_HOME = dir .. "/state",
    XDG_CONFIG_HOME = dir .. "/config",
    TRAINCTL_POLL_INTERVAL = "0.05",
  }
  for k, v in pairs(M.CREDENTIALS) do self.env[k] = v end
  return self
end

function Sim:stop()
  if self.pid then os.execute("kill " .. self.pid .. " 2>/dev/null") end
  self.pid = nil
  os.execute("rm -rf " .. quote(self.dir))
end

-- halt(): the emulator stops as on SIGTERM (saving its --state file, if
-- any) and is gone when this returns: a client meets a refused connection.
function Sim:halt()
  local pid = assert(self.pid, "cloudsim is not running")
  os.execute("kill " .. pid .. " 2>/dev/null")
  M.poll(function() return M.sh("kill -0 " .. pid .. " 2>/dev/null") ~= 0 end, 20, "cloudsim to exit")
  self.pid = nil
end

-- restart(): the halted emulator again, on the same port with the same
-- flags (so with its --state file: what it knew, it knows again).
function Sim:restart()
  assert(not self.pid, "cloudsim is running")
  os.remove(self.dir .. "/port")
  local cmd = self.cmd:gsub("%-%-port 0 ", "--port " .. self.port .. " ", 1)
  local p = assert(io.popen(cmd))
  self.pid = p:read("l")
  p:close()
  M.poll(function() return M.slurp(self.dir .. "/port") end, 20,
    "cloudsim to listen again (" .. tostring(M.slurp(self.dir .. "/cloudsim.log")) .. ")")
end

-- admin(method, path [, body]) -> decoded answer of /_cloudsim/<path>
function Sim:admin(method, path, body)
  local res, err = raw.request({ method = method, url = self.url .. "/_cloudsim/" .. path,
    headers = { ["content-type"] = "application/json" }, body = body and json.encode(body) or nil,
    ca_file = self.ca })
  assert(res, err and err.message)
  assert(res.status == 200, ("admin %s %s: %d %s"):format(method, path, res.status, res.body))
  return json.decode(res.body)
end

-- faults(list [, fields]): script faults (replacing those queued).
function Sim:faults(list, fields)
  local body = { faults = json.array(list or {}), replace = true }
  for k, v in pairs(fields or {}) do body[k] = v end
  return self:admin("POST", "faults", body)
end
function Sim:no_faults() return self:admin("DELETE", "faults") end
function Sim:advance(seconds) return self:admin("POST", "clock", { advance = seconds }) end
function Sim:speed(n) return self:admin("POST", "clock", { speed = n }) end
function Sim:reset() return self:admin("POST", "reset") end
function Sim:state() return self:admin("GET", "state") end

-- opensearch_tasks() -> how many OpenSearch trainings the emulator holds
-- (a start held by a slow fault is in its state before it is logged).
function Sim:opensearch_tasks()
  local n = 0
  for _ in pairs(self:state().providers.opensearch.tasks) do n = n + 1 end
  return n
end

-- requests{provider=, operation=, method=, since=} -> logged requests
function Sim:requests(filter)
  local q = {}
  for k, v in pairs(filter or {}) do
    q[#q + 1] = k .. "=" .. (type(v) == "number" and ("%d"):format(v) or tostring(v))
  end
  table.sort(q)
  return self:admin("GET", "requests" .. (#q > 0 and ("?" .. table.concat(q, "&")) or "")).requests
end

-- started(operation) -> how many of these requests took effect: reached
-- the provider and either succeeded or met a fault only afterwards.
function Sim:started(operation)
  local n = 0
  for _, r in ipairs(self:requests({ operation = operation })) do
    local ok = type(r.status) == "number" and r.status >= 200 and r.status < 300
    if r.executed and (ok and r.fault == json.null or r.when == "after") then n = n + 1 end
  end
  return n
end

-- use([extra]): in-process clients read the emulator's settings (and only
-- them); returns the function that undoes it.
function Sim:use(extra)
  local config = require("trainctl.config")
  config._reset()
  local env = {}
  for k, v in pairs(self.env) do env[k] = v end
  for k, v in pairs(extra or {}) do env[k] = v ~= false and v or nil end
  config.getenv = function(name) return env[name] end
  return function() config._reset() end
end

-- The command line of trainctl with args, the emulator's environment (plus
-- opts.env; false removes a variable) and nothing else from ours.
function Sim:command(args, opts)
  opts = opts or {}
  local env = { "PATH=" .. quote(os.getenv("PATH") or "/usr/bin:/bin"), "HOME=" .. quote(self.dir) }
  local merged = {}
  for k, v in pairs(self.env) do merged[k] = v end
  for k, v in pairs(opts.env or {}) do merged[k] = v end
  local names = {}
  for k in pairs(merged) do names[#names + 1] = k end
  table.sort(names)
  for _, k in ipairs(names) do
    if merged[k] ~= false then env[#env + 1] = k .. "=" .. quote(merged[k]) end
  end
  local words = {}
  for i, a in ipairs(args) do words[i] = quote(a) end
  -- group: in a process group of its own, to be killed with its children.
  return ("%senv -i %s %s %s"):format(opts.group and "setsid " or "", table.concat(env, " "),
    quote(opts.trainctl or M.TRAINCTL), table.concat(words, " "))
end

-- run(args [, {env}]) -> exit status, stdout, stderr
function Sim:run(args, opts)
  self.runs = self.runs + 1
  local out, errf = ("%s/out.%d"):format(self.dir, self.runs), ("%s/err.%d"):format(self.dir, self.runs)
  local code = M.sh(("%s >%s 2>%s"):format(self:command(args, opts), quote(out), quote(errf)))
  return code, M.slurp(out) or "", M.slurp(errf) or ""
end

local Proc = {}
Proc.__index = Proc

-- spawn(command) -> proc: a shell command running in the background; its
-- pid is the last program's (env execs trainctl, so trainctl's).
local spawned = 0
function M.spawn(command)
  spawned = spawned + 1
  -- The pid keeps two suites running at once apart.
  local base = ("%s/trainctl-reliability-%d-%d-%d"):format(os.getenv("TMPDIR") or "/tmp",
    sys.getpid(), math.floor(sys.clock() * 1000), spawned)
  local proc = setmetatable({ out = base .. ".out", err = base .. ".err", rc = base .. ".rc",
    pidfile = base .. ".pid" }, Proc)
  os.execute(("(%s >%s 2>%s & echo $! >%s; wait $!; echo $? >%s) >/dev/null 2>&1 &"):format(
    command, quote(proc.out), quote(proc.err), quote(proc.pidfile), quote(proc.rc)))
  proc.pid = M.poll(function()
    local s = M.slurp(proc.pidfile)
    return s and s:match("%d+")
  end, 10, "the background run to start")
  return proc
end

-- spawn(args [, {env}]) -> proc: trainctl running in the background.
function Sim:spawn(args, opts)
  return M.spawn(self:command(args, opts))
end

-- exited() -> exit status once the process has ended, else nil.
function Proc:exited()
  if not self.code then
    local s = M.slurp(self.rc)
    self.code = s and tonumber(s:match("%d+"))
  end
  return self.code
end

-- kill(signal): only while it runs (its pid is not anyone else's).
function Proc:kill(signal)
  if self:exited() then return end
  os.execute(("kill -%s %s 2>/dev/null"):format(signal or "KILL", self.pid))
end

-- kill_group(signal): the process and all it started (spawned with group).
function Proc:kill_group(signal)
  if self:exited() then return end
  os.execute(("kill -%s -%s 2>/dev/null"):format(signal or "KILL", self.pid))
end

-- wait([seconds]) -> exit status, stdout, stderr (and the files are gone)
function Proc:wait(seconds)
  local code = M.poll(function() return self:exited() end, seconds or 60, "trainctl to exit")
  local out, err = M.slurp(self.out) or "", M.slurp(self.err) or ""
  for _, f in ipairs({ self.out, self.err, self.rc, self.pidfile }) do os.remove(f) end
  return code, out, err
end

-- leaks(text [, extra]) -> the secrets found in text (none, we hope):
-- the credentials, extra literals (signatures seen on the wire) and any
-- bearer token.
function M.leaks(text, extra)
  local found = {}
  for _, s in ipairs(M.SECRETS) do
    if text:find(s, 1, true) then found[#found + 1] = s end
  end
  for _, s in ipairs(extra or {}) do
    if #s >= 8 and text:find(s, 1, true) then found[#found + 1] = s end
  end
  for token in text:gmatch("[Bb]earer%s+([%w%-%._~%+/]+)") do
    if not token:find("^%[") then found[#found + 1] = "Bearer " .. token end
  end
  return found
end

-- Test certificates: a CA, a server certificate for localhost signed by
-- it, and a second CA that signed nothing.
function M.certificates(dir)
  local function openssl(args)
    assert(M.sh("openssl " .. args .. " >/dev/null 2>&1") == 0, "openssl " .. args)
  end
  for _, ca in ipairs({ "ca", "other_ca" }) do
    openssl(("req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=trainctl-test-%s "
      .. "-keyout %s/%s.key -out %s/%s.pem"):format(ca, dir, ca, dir, ca))
  end
  M.spit(dir .. "/ext.cnf", "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n")
  openssl(("req -newkey rsa:2048 -nodes -subj /CN=localhost -keyout %s/server.key -out %s/server.csr")
    :format(dir, dir))
  openssl(("x509 -req -in %s/server.csr -CA %s/ca.pem -CAkey %s/ca.key -CAcreateserial -days 2 "
    .. "-extfile %s/ext.cnf -out %s/server.pem"):format(dir, dir, dir, dir, dir))
  return { cert = dir .. "/server.pem", key = dir .. "/server.key", ca = dir .. "/ca.pem",
    other_ca = dir .. "/other_ca.pem" }
end

return M
