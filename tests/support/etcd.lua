-- Several machines: a real etcd cluster (Debian's etcd-server) on free
-- loopback ports with its data in a temporary directory, members that can
-- be killed, frozen and started again, the leader's name, and the
-- environment of a trainctl "host" against the emulator.
local support = require("support")
local etcd = require("trainctl.etcd")
local raw = require("trainctl._http")
local json = require("trainctl.json")

local M = {}

local quote = support.quote

-- free_ports(n) -> n ports nobody listens on (bound together, then freed).
function M.free_ports(n)
  local p = assert(io.popen(("python3 -c 'import socket\nss=[socket.socket() for _ in range(%d)]\n"
    .. "[s.bind((\"127.0.0.1\", 0)) for s in ss]\nprint(\" \".join(str(s.getsockname()[1]) for s in ss))'")
    :format(n)))
  local line = p:read("l")
  p:close()
  local out = {}
  for port in line:gmatch("%d+") do out[#out + 1] = port end
  return out
end

local Cluster = {}
Cluster.__index = Cluster

-- cluster{size = 3, tls = {cert, key, ca}} -> cluster, started and
-- healthy. Elections are quick (50 ms heartbeats, 500 ms election
-- timeout) so a lost leader is replaced within a second.
function M.cluster(o)
  o = o or {}
  local size = o.size or 3
  -- The members' data in memory where there is a tmpfs: on a busy disk an
  -- fsync of etcd's log can take seconds, longer than the tests' 2 s
  -- leases, and a holder whose renewal or write waits on it loses its lock.
  local shm = os.execute("test -d /dev/shm -a -w /dev/shm") == true and "/dev/shm" or nil
  local self = setmetatable({ dir = (support.tmpdir(shm)), members = {}, tls = o.tls }, Cluster)
  local ports = M.free_ports(2 * size)
  local initial = {}
  for i = 1, size do
    local m = { name = "m" .. i, client = ports[2 * i - 1], peer = ports[2 * i] }
    m.data = ("%s/%s.etcd"):format(self.dir, m.name)
    m.log = ("%s/%s.log"):format(self.dir, m.name)
    self.members[i] = m
    initial[i] = ("%s=http://127.0.0.1:%s"):format(m.name, m.peer)
  end
  self.initial = table.concat(initial, ",")
  if self.tls then self.cert, self.key = M.client_certificate(self.tls) end
  for i = 1, size do self:start(i, "new") end
  local ok, e = pcall(self.wait_healthy, self)
  if not ok then
    self:stop()
    error(e, 0)
  end
  return self
end

function Cluster:scheme() return self.tls and "https" or "http" end

function Cluster:start(i, state)
  local m = self.members[i]
  local tls = ""
  if self.tls then
    tls = ("--cert-file %s --key-file %s --trusted-ca-file %s --client-cert-auth"):format(
      quote(self.tls.cert), quote(self.tls.key), quote(self.tls.ca))
  end
  local cmd = ("etcd --name %s --data-dir %s --listen-client-urls %s://127.0.0.1:%s "
    .. "--advertise-client-urls %s://127.0.0.1:%s --listen-peer-urls http://127.0.0.1:%s "
    .. "--initial-advertise-peer-urls http://127.0.0.1:%s --initial-cluster %s "
    .. "--initial-cluster-state %s --heartbeat-interval 50 --election-timeout 500 %s "
    .. "2>>%s"):format(m.name, quote(m.data), self:scheme(), m.client, self:scheme(),
    m.client, m.peer, m.peer, self.initial, state or "existing", tls, quote(m.log))
  m.proc = support.spawn(cmd)
  m.pid = m.proc.pid
end

-- kill(i [, signal]): stops member i (kill -9 by default).
function Cluster:kill(i, signal)
  local m = self.members[i]
  if m.proc then
    m.proc:kill(signal or "KILL")
    m.proc:wait(30)
  end
  m.proc, m.pid = nil, nil
end

-- freeze(i) / thaw(i): member i stops answering (SIGSTOP), as behind a
-- partition, and comes back.
function Cluster:freeze(i) os.execute("kill -STOP " .. self.members[i].pid) end
function Cluster:thaw(i) os.execute("kill -CONT " .. self.members[i].pid) end

function Cluster:restart(i)
  self:kill(i)
  self:start(i)
end

local function get(self, url)
  local res = raw.request({ url = url, timeout = 1, connect_timeout = 0.5,
    ca_file = self.tls and self.tls.ca, cert_file = self.cert, key_file = self.key })
  return res and res.status == 200 and json.decode(res.body) or nil
end

function Cluster:host(i)
  return (self.tls and "localhost:" or "127.0.0.1:") .. self.members[i].client
end

function Cluster:wait_healthy()
  for i, m in ipairs(self.members) do
    if m.pid then
      support.poll(function()
        local h = get(self, ("%s://%s/health"):format(self:scheme(), self:host(i)))
        return h and h.health == "true"
      end, 30, "etcd member " .. m.name .. " to be healthy (" .. tostring(support.read(m.log)) .. ")")
    end
  end
end

-- url(key [, members]) -> "etcd://host:port,.../key" over the members.
function Cluster:url(key, members)
  local hosts = {}
  for _, i in ipairs(members or { 1, 2, 3 }) do
    if self.members[i] then hosts[#hosts + 1] = self:host(i) end
  end
  return ("%s://%s/%s"):format(self.tls and "etcds" or "etcd", table.concat(hosts, ","), key)
end

-- client() -> a trainctl.etcd client on the whole cluster (the tests'
-- own view of what the runs left in etcd).
function Cluster:client()
  return etcd.client(etcd.parse_url(self:url("x")))
end

-- leader() -> index of the member that leads now.
function Cluster:leader()
  return support.poll(function()
    for i, m in ipairs(self.members) do
      if m.pid then
        local res = raw.request({ method = "POST", body = "{}", timeout = 1,
          url = ("%s://%s/v3/maintenance/status"):format(self:scheme(), self:host(i)) })
        local st = res and res.status == 200 and json.decode(res.body)
        if st and st.leader and st.leader == st.header.member_id then return i end
      end
    end
  end, 10, "an etcd leader")
end

function Cluster:stop()
  for i, m in ipairs(self.members) do
    if m.pid then self:thaw(i) end
    self:kill(i)
  end
  support.rmdir(self.dir)
end

-- available(): etcd-server is installed.
function M.available()
  return os.execute("command -v etcd >/dev/null 2>&1") == true
end

-- A "host": the emulator's environment with XDG and temporary directories
-- of its own, the etcd state prefix and a name.
function M.host_env(sim, name, state_url, extra)
  local dir = sim.dir .. "/host-" .. name
  os.execute("mkdir -p " .. quote(dir .. "/tmp"))
  local env = { XDG_STATE_HOME = dir .. "/state", XDG_CONFIG_HOME = dir .. "/config",
    TMPDIR = dir .. "/tmp", TEST_ETCD_STATE = state_url, TEST_HOST = name,
    -- a source tree stands in for the embedded library in the runs too
    TRAINCTL_LUA_PATH = os.getenv("TRAINCTL_LUA_PATH") or false }
  for k, v in pairs(extra or {}) do env[k] = v end
  return env
end

-- client_certificate(certs) -> cert, key: a client certificate signed by
-- the test CA of support.certificates.
function M.client_certificate(certs)
  local dir = certs.ca:match("^(.*)/[^/]*$")
  local function openssl(args)
    assert(support.exec("openssl " .. args .. " >/dev/null 2>&1") == 0, "openssl " .. args)
  end
  openssl(("req -newkey rsa:2048 -nodes -subj /CN=trainctl-client -keyout %s/client.key "
    .. "-out %s/client.csr"):format(dir, dir))
  openssl(("x509 -req -in %s/client.csr -CA %s/ca.pem -CAkey %s/ca.key -CAcreateserial -days 2 "
    .. "-out %s/client.pem"):format(dir, dir, dir, dir))
  return dir .. "/client.pem", dir .. "/client.key"
end

-- run(args, env) -> exit status, stdout, stderr of trainctl with only env
-- (and PATH) in its environment.
function M.run(args, env)
  local r = support.run(args, { env = env, clear = true })
  return r.code, r.out or "", r.err or ""
end

return M
