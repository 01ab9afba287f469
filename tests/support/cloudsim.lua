-- The emulator as a fixture: scripts/cloudsim on a free port (HTTP or
-- HTTPS), its admin API (clock, faults, request log, state), clients in
-- this process pointed at it, and trainctl run against it as a user
-- would, in the foreground or in the background. Time in the emulator
-- moves by its clock, never by a sleep in a test.
--
--   local sim = cloudsim.new({ speed = 0, use = true })
--   setup(function() sim:start() end)
--   teardown(function() sim:stop() end)
local json = require("trainctl.json")
local raw = require("trainctl._http")
local support = require("support")

local quote = support.quote

local M = {}

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

-- The AiTEMS datasets of the sample data (examples/data/aitems): their
-- types, the fields of each type's schema, and each type's file.
M.AITEMS_TYPES = { "user", "item", "interaction" }
M.AITEMS_FIELDS = {
  user = { { name = "USER_ID", type = { "string" } }, { name = "AGE", type = { "int", "null" } },
    { name = "GENDER", type = { "string", "null" }, categorical = true } },
  item = { { name = "ITEM_ID", type = { "string" } }, { name = "CATEGORY", type = { "string", "null" } } },
  interaction = { { name = "USER_ID", type = { "string" } }, { name = "ITEM_ID", type = { "string" } },
    { name = "TIMESTAMP", type = { "long" } } },
}
M.AITEMS_FILES = { user = "users.csv", item = "items.csv", interaction = "interactions.csv" }

-- azure_assets(kind) -> the labelled documents of the sample data
-- (examples/data/textclass/labels.csv) as the assets of an Azure project
-- of that kind, with their classes.
function M.azure_assets(kind)
  local docs, classes, seen = {}, {}, {}
  for line in io.lines("examples/data/textclass/labels.csv") do
    local loc, cls = line:match("^([^,]+),(.+)$")
    if loc and loc ~= "location" then
      if not seen[cls] then
        seen[cls] = true
        classes[#classes + 1] = { category = cls }
      end
      docs[#docs + 1] = { location = loc, language = "en", dataset = "Train", class = { category = cls } }
    end
  end
  return { projectKind = kind, classes = classes, documents = docs }
end

local Sim = {}
Sim.__index = Sim

-- new{speed, seed, data_dir, args, tls = {cert, key, ca}, host,
-- poll_interval, use, log} -> sim, not started yet. speed defaults to 0
-- (a frozen clock that the tests advance). use: start() also points this
-- process's clients at it (stop() undoes); log: the level set then.
function M.new(opts)
  return setmetatable({ opts = opts or {}, runs = 0 }, Sim)
end

-- start([opts]) -> sim, started: M.start(opts) or sim:start() for one
-- made by new.
function M.start(opts)
  return M.new(opts):start()
end

function Sim:start()
  local opts = self.opts
  local dir = support.tmpdir()
  local tls = opts.tls and ("--tls-cert %s --tls-key %s"):format(quote(opts.tls.cert), quote(opts.tls.key)) or ""
  self.cmd = ("python3 scripts/cloudsim --port 0 --speed %s --seed %d --data-dir %s --quiet "
    .. "--port-file %s %s %s"):format(opts.speed or 0, opts.seed or 7, quote(opts.data_dir or "examples/data"),
    quote(dir .. "/port"), tls, opts.args or "")
  self.dir = dir
  self.log = dir .. "/cloudsim.log"
  self.proc = support.spawn(self.cmd, { stderr = self.log })
  self.pid = self.proc.pid
  self.port = support.poll(function()
    local s = support.read(dir .. "/port")
    return s and s:match("%d+")
  end, 20, "cloudsim to listen (" .. tostring(support.read(self.log)) .. ")")
  self.ca = opts.tls and opts.tls.ca
  self.url = ("%s://%s:%s"):format(opts.tls and "https" or "http", opts.host or "127.0.0.1", self.port)
  self.env = {
    TRAINCTL_AITEMS_ENDPOINT = self.url .. "/api/v1",
    TRAINCTL_OPENSEARCH_ENDPOINT = self.url,
    AZURE_LANGUAGE_ENDPOINT = self.url,
    TRAINCTL_ENTRA_ENDPOINT = self.url,
    XDG_STATE_HOME = dir .. "/state",
    XDG_CONFIG_HOME = dir .. "/config",
    TRAINCTL_POLL_INTERVAL = opts.poll_interval or "0.05",
  }
  for k, v in pairs(M.CREDENTIALS) do self.env[k] = v end
  if opts.log then require("trainctl.log").set_level(opts.log) end
  if opts.use then self.unuse = self:use() end
  return self
end

function Sim:stop()
  if self.unuse then self.unuse() end
  self.unuse = nil
  if self.proc then
    self.proc:kill("TERM")
    self.proc:wait()
  end
  self.proc, self.pid = nil, nil
  support.rmdir(self.dir)
end

-- halt(): the emulator stops as on SIGTERM (saving its --state file, if
-- any) and is gone when this returns: a client meets a refused connection.
function Sim:halt()
  assert(self.proc, "cloudsim is not running")
  self.proc:kill("TERM")
  self.proc:wait(20)
  self.proc, self.pid = nil, nil
end

-- restart(): the halted emulator again, on the same port with the same
-- flags (so with its --state file: what it knew, it knows again).
function Sim:restart()
  assert(not self.proc, "cloudsim is running")
  os.remove(self.dir .. "/port")
  self.proc = support.spawn(self.cmd:gsub("%-%-port 0 ", "--port " .. self.port .. " ", 1), { stderr = self.log })
  self.pid = self.proc.pid
  support.poll(function() return support.read(self.dir .. "/port") end, 20,
    "cloudsim to listen again (" .. tostring(support.read(self.log)) .. ")")
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

-- aitems_service(ai, name [, files]) -> service id, dataset ids: a batch
-- service named name (at most 17 characters) whose three datasets (and
-- their schemas, named after it) are imported from the sample data
-- (files: another file for a type).
function Sim:aitems_service(ai, name, files)
  local ids = {}
  for i, typ in ipairs(M.AITEMS_TYPES) do
    local schema = ("%s_s%d"):format(name, i)
    ai:create_schema({ dataset_type = typ, name = schema, fields = M.AITEMS_FIELDS[typ] })
    local key = "aitems/" .. (files and files[typ] or M.AITEMS_FILES[typ])
    ids[#ids + 1] = ai:create_dataset({ type = typ, name = ("%s_d%d"):format(name, i), schema_name = schema,
      os_info = { region = "KR", bucket = "b", key = key } }).datasetId
  end
  self:advance(100)
  local sid = ai:create_service({ name = name }).serviceId
  ai:set_service_datasets(sid, { dataset_ids = ids })
  return sid, ids
end

-- command(args [, opts]) -> the command line of trainctl with args, the
-- emulator's environment (plus opts.env; false removes a variable) and
-- nothing else from ours (but $TRAINCTL_LUA_PATH: a development run tests
-- the source tree; and the sanitiser settings, support.SANITIZER_VARS).
-- opts.group: in a process group of its own, to be killed with its
-- children; opts.trainctl: another binary.
function Sim:command(args, opts)
  opts = opts or {}
  local merged = support.sanitizer_env({ PATH = os.getenv("PATH") or "/usr/bin:/bin", HOME = self.dir,
    TRAINCTL_LUA_PATH = os.getenv("TRAINCTL_LUA_PATH") or false })
  for k, v in pairs(self.env) do merged[k] = v end
  for k, v in pairs(opts.env or {}) do merged[k] = v end
  local names, env = {}, {}
  for k in pairs(merged) do names[#names + 1] = k end
  table.sort(names)
  for _, k in ipairs(names) do
    if merged[k] ~= false then env[#env + 1] = k .. "=" .. quote(merged[k]) end
  end
  local words = {}
  for i, a in ipairs(args) do words[i] = quote(a) end
  return ("%senv -i %s %s %s"):format(opts.group and "setsid " or "", table.concat(env, " "),
    quote(opts.trainctl or support.TRAINCTL), table.concat(words, " "))
end

-- run(args [, {env, stdin, pty = {answers}}]) -> exit status, stdout,
-- stderr of trainctl run to its end (command's environment). With pty,
-- trainctl runs on a terminal (tests/integration/pty_run.py): stdout is
-- what the terminal showed, each answer {regex, text} is typed once regex
-- shows up.
function Sim:run(args, opts)
  opts = opts or {}
  local cmd = self:command(args, opts)
  if opts.pty then
    local prefix = "python3 tests/integration/pty_run.py"
    for _, a in ipairs(opts.pty) do prefix = prefix .. " --answer " .. quote(a[1]) .. " " .. quote(a[2]) end
    cmd = prefix .. " -- " .. cmd
  end
  local r = support.sh(cmd, { stdin = opts.stdin })
  if opts.pty then
    local t = json.decode(r.out)
    return t.code, t.output, r.err or ""
  end
  return r.code, r.out or "", r.err or ""
end

-- spawn(args [, opts]) -> proc: trainctl running in the background (see
-- support.spawn), with command's environment and opts.
function Sim:spawn(args, opts)
  return support.spawn(self:command(args, opts))
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
    assert(support.exec("openssl " .. args .. " >/dev/null 2>&1") == 0, "openssl " .. args)
  end
  for _, ca in ipairs({ "ca", "other_ca" }) do
    openssl(("req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=trainctl-test-%s "
      .. "-keyout %s/%s.key -out %s/%s.pem"):format(ca, dir, ca, dir, ca))
  end
  support.write(dir .. "/ext.cnf", "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n")
  openssl(("req -newkey rsa:2048 -nodes -subj /CN=localhost -keyout %s/server.key -out %s/server.csr")
    :format(dir, dir))
  openssl(("x509 -req -in %s/server.csr -CA %s/ca.pem -CAkey %s/ca.key -CAcreateserial -days 2 "
    .. "-extfile %s/ext.cnf -out %s/server.pem"):format(dir, dir, dir, dir, dir))
  return { cert = dir .. "/server.pem", key = dir .. "/server.key", ca = dir .. "/ca.pem",
    other_ca = dir .. "/other_ca.pem" }
end

return M
