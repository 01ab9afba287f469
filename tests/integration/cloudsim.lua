-- Integration test support: start cloudsim on a free port, talk to its
-- admin API, make clients pointed at it, and run trainctl scripts against
-- it as a user would. Time is cloudsim's simulated clock, never a sleep.
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

-- The values that must never be printed (ids of keys are printed only in
-- part, so their full value must not appear either).
M.SECRETS = {
  "cloudsim-ncp-secret-key", "cloudsim-acs-key-secret", "cloudsim-azure-language-key",
  "cloudsim-client-secret", "cloudsim-ncp-access-key", "cloudsim-acs-key-id", "cloudsim-client-id",
}

local Sim = {}
Sim.__index = Sim

local function quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end
M.quote = quote

local function slurp(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end
M.slurp = slurp

-- start{speed, args} -> sim. Every file starts its own.
function M.start(opts)
  opts = opts or {}
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir -p " .. quote(dir)))
  local cmd = ("python3 scripts/cloudsim --port 0 --speed %s --seed %d --data-dir %s "
    .. "--port-file %s %s >%s 2>&1 & echo $!"):format(opts.speed or 60, opts.seed or 7,
    quote(opts.data_dir or "examples/data"), quote(dir .. "/port"), opts.args or "", quote(dir .. "/log"))
  local p = assert(io.popen(cmd))
  local pid = p:read("l")
  p:close()
  local port
  for _ = 1, 200 do
    port = slurp(dir .. "/port")
    if port and port:match("%d+") then break end
    sys.sleep(0.05)
  end
  port = port and port:match("%d+")
  if not port then
    error("cloudsim did not start: " .. tostring(slurp(dir .. "/log")), 0)
  end
  local self = setmetatable({ pid = pid, port = port, dir = dir,
    url = "http://127.0.0.1:" .. port }, Sim)
  self.env = {
    TRAINCTL_AITEMS_ENDPOINT = self.url .. "/api/v1",
    TRAINCTL_OPENSEARCH_ENDPOINT = self.url,
    AZURE_LANGUAGE_ENDPOINT = self.url,
    TRAINCTL_ENTRA_ENDPOINT = self.url,
    XDG_STATE_HOME = dir .. "/state",
    XDG_CONFIG_HOME = dir .. "/config",
    TRAINCTL_POLL_INTERVAL = "0.2",
  }
  for k, v in pairs(M.CREDENTIALS) do self.env[k] = v end
  return self
end

function Sim:stop()
  if self.pid then os.execute("kill " .. self.pid .. " 2>/dev/null") end
  self.pid = nil
  os.execute("rm -rf " .. quote(self.dir))
end

-- admin(method, path [, body]) -> decoded answer of /_cloudsim/<path>
function Sim:admin(method, path, body)
  local res, err = raw.request({ method = method, url = self.url .. "/_cloudsim/" .. path,
    headers = { ["content-type"] = "application/json" }, body = body and json.encode(body) or nil })
  assert(res, err and err.message)
  assert(res.status == 200, ("admin %s %s: %d %s"):format(method, path, res.status, res.body))
  return json.decode(res.body)
end

function Sim:faults(list) return self:admin("POST", "faults", { faults = list }) end
function Sim:advance(seconds) return self:admin("POST", "clock", { advance = seconds }) end
function Sim:reset() return self:admin("POST", "reset") end

-- requests{provider=, operation=, method=} -> list of logged requests
function Sim:requests(filter)
  local q = {}
  for k, v in pairs(filter or {}) do q[#q + 1] = k .. "=" .. v end
  table.sort(q)
  return self:admin("GET", "requests" .. (#q > 0 and ("?" .. table.concat(q, "&")) or "")).requests
end

-- use(): in-process clients read the emulator's settings (and only them).
function Sim:use(extra)
  local config = require("trainctl.config")
  config._reset()
  local env = {}
  for k, v in pairs(self.env) do env[k] = v end
  for k, v in pairs(extra or {}) do env[k] = v ~= false and v or nil end
  config.getenv = function(name) return env[name] end
  return function() config._reset() end
end

-- run(args [, {env = {...}, stdin, pty = {answers}}]) -> exit status,
-- stdout, stderr of trainctl with these arguments, the emulator's
-- environment and nothing else from ours. With pty, trainctl runs on a
-- terminal (tests/integration/pty_run.py): stdout is what the terminal
-- showed, each answer {regex, text} is typed once regex shows up.
function Sim:run(args, opts)
  opts = opts or {}
  local env = { "PATH=" .. quote(os.getenv("PATH") or "/usr/bin:/bin"), "HOME=" .. quote(self.dir) }
  -- A development run tests the source tree.
  if os.getenv("TRAINCTL_LUA_PATH") then
    env[#env + 1] = "TRAINCTL_LUA_PATH=" .. quote(os.getenv("TRAINCTL_LUA_PATH"))
  end
  local merged = {}
  for k, v in pairs(self.env) do merged[k] = v end
  for k, v in pairs(opts.env or {}) do merged[k] = v end
  for k, v in pairs(merged) do
    if v ~= false then env[#env + 1] = k .. "=" .. quote(v) end
  end
  local words = {}
  for i, a in ipairs(args) do words[i] = quote(a) end
  local out, errf = self.dir .. "/stdout", self.dir .. "/stderr"
  local prefix = ""
  if opts.pty then
    prefix = "python3 tests/integration/pty_run.py"
    for _, a in ipairs(opts.pty) do prefix = prefix .. " --answer " .. quote(a[1]) .. " " .. quote(a[2]) end
    prefix = prefix .. " --"
  end
  local input = opts.pty and "" or " </dev/null"
  if opts.stdin then
    input = " <" .. quote(self.dir .. "/stdin")
    local f = assert(io.open(self.dir .. "/stdin", "wb"))
    f:write(opts.stdin)
    f:close()
  end
  local cmd = ("env -i %s %s %s %s >%s 2>%s%s"):format(table.concat(env, " "), prefix, quote(M.TRAINCTL),
    table.concat(words, " "), quote(out), quote(errf), input)
  local _, _, code = os.execute(cmd)
  if opts.pty then
    local r = json.decode(slurp(out))
    return r.code, r.output, slurp(errf) or ""
  end
  return code, slurp(out) or "", slurp(errf) or ""
end

-- leaks(text) -> the secrets found in text (none, we hope).
function M.leaks(text)
  local found = {}
  for _, s in ipairs(M.SECRETS) do
    if text:find(s, 1, true) then found[#found + 1] = s end
  end
  for token in text:gmatch("[Bb]earer%s+([%w%-%._~%+/]+)") do
    if token ~= "[REDACTED]" and not token:find("^%[") then found[#found + 1] = "Bearer " .. token end
  end
  return found
end

return M
