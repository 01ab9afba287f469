-- A small client of etcd's v3 API as its gRPC gateway serves it: JSON
-- over HTTP(S), keys and values in base64, 64-bit numbers as strings.
-- Enough for a lock and a fenced state: range, put, delete, txn, leases,
-- user/password authentication, TLS with a CA and a client certificate,
-- and failover between the members of a cluster.
--
--   local etcd = require("trainctl.etcd")
--   local where = etcd.parse_url("etcd://10.0.0.1:2379,10.0.0.2:2379/nightly")
--   local c = etcd.client(where)
--   local id = c:grant(30)
--
-- Every member answers every call (a follower forwards writes to the
-- leader), and reads are linearizable, so "following the leader" is moving
-- on to the next member when one cannot answer: connection refused or cut,
-- a timeout, "no leader", "leader changed". Calls raise trainctl error
-- objects (provider "etcd").
local config = require("trainctl.config")
local crypto = require("trainctl.crypto")
local errors = require("trainctl.errors")
local http = require("trainctl.core.http")
local json = require("trainctl.json")
local log = require("trainctl.log")
local wait = require("trainctl.core.wait")

local M = {}

M.DEFAULT_PORT = 2379
M.TIMEOUT = 5          -- seconds for one request to one member
M.CONNECT_TIMEOUT = 2
M.MAX_TIME = 10        -- seconds a call keeps trying the members

-- gRPC codes behind which another member (or the same one a moment
-- later) may answer: Unavailable ("no leader"), DeadlineExceeded
-- ("request timed out", "leader changed" while waiting).
local RETRY_CODE = { [4] = true, [14] = true }

local function usage(msg)
  errors.raise({ kind = "usage", message = msg }, 3)
end

-- endpoint("host:port") -> "host:port" checked, the port defaulted.
local function endpoint(spec, url)
  local host, port = spec:match("^(%[[%x:.]+%]):?(%d*)$")
  if not host then host, port = spec:match("^([%w.-]+):?(%d*)$") end
  if not host or host:find("^[.-]") then
    usage(("bad etcd URL %s: %q is not HOST or HOST:PORT"):format(url, spec))
  end
  local n = port == "" and M.DEFAULT_PORT or tonumber(port)
  if n < 1 or n > 65535 then
    usage(("bad etcd URL %s: port %s is out of range"):format(url, port))
  end
  return ("%s:%d"):format(host, n)
end

-- is_url(s): s names etcd (etcd:// or etcds://).
function M.is_url(s)
  return type(s) == "string" and (s:find("^etcds?://") ~= nil)
end

-- parse_url("etcd[s]://host:port[,host:port...]/key") -> {scheme, tls,
-- endpoints, key, url}. The key is the path without its first slash; an
-- empty key, user information or a query is a usage error: a password
-- belongs in the environment or the credentials file, not in a command
-- line that ps shows.
function M.parse_url(url)
  if type(url) ~= "string" then usage("etcd URL expected, got " .. type(url)) end
  local scheme, hosts, path = url:match("^(etcds?)://([^/]*)(.*)$")
  if not scheme then
    usage(("bad etcd URL %s: expected etcd://HOST:PORT[,HOST:PORT...]/KEY (or etcds://)"):format(url))
  end
  if hosts:find("@", 1, true) then
    usage(("bad etcd URL: user information is not taken from the URL; set TRAINCTL_ETCD_USERNAME "
      .. "and TRAINCTL_ETCD_PASSWORD (environment or credentials file)"))
  end
  if path:find("[?#]") or path:find("[%c ]") then
    usage(("bad etcd URL %s: the key may not hold '?', '#', spaces or control characters"):format(url))
  end
  local key = path:match("^/(.+)$")
  if not key then usage(("bad etcd URL %s: no key after the hosts (etcd://HOST:PORT/KEY)"):format(url)) end
  local list = {}
  for spec in (hosts .. ","):gmatch("([^,]*),") do
    if spec == "" then usage(("bad etcd URL %s: empty host"):format(url)) end
    list[#list + 1] = endpoint(spec, url)
  end
  return { scheme = scheme, tls = scheme == "etcds", endpoints = list, key = key,
    url = ("%s://%s/%s"):format(scheme, table.concat(list, ","), key) }
end

local function b64(s) return crypto.base64_encode(s) end
local function unb64(s) return s and crypto.base64_decode(s) or nil end
M.b64, M.unb64 = b64, unb64

-- prefix_end(key): the first key after every key that starts with key.
function M.prefix_end(key)
  local i = #key
  while i > 0 and key:byte(i) == 255 do i = i - 1 end
  if i == 0 then return "\0" end
  return key:sub(1, i - 1) .. string.char(key:byte(i) + 1)
end

local function readable(path, what)
  local f = io.open(path, "rb")
  if not f then usage(("%s %s cannot be read"):format(what, path)) end
  f:close()
  return path
end

local Client = {}
Client.__index = Client

-- client(where [, opts]) -> client. where is parse_url's answer. Settings
-- (environment, else the --profile in the credentials file):
-- TRAINCTL_ETCD_USERNAME and TRAINCTL_ETCD_PASSWORD (or ETCD_USERNAME and
-- ETCD_PASSWORD), TRAINCTL_ETCD_CA_FILE (else TRAINCTL_CA_FILE...),
-- TRAINCTL_ETCD_CERT_FILE and TRAINCTL_ETCD_KEY_FILE. opts: timeout,
-- max_time.
function M.client(where, opts)
  opts = opts or {}
  local self = setmetatable({ endpoints = where.endpoints, tls = where.tls, url = where.url,
    current = 1, timeout = opts.timeout or M.TIMEOUT, max_time = opts.max_time or M.MAX_TIME }, Client)
  self.username = config.get("TRAINCTL_ETCD_USERNAME") or config.get("ETCD_USERNAME")
  local password = config.get("TRAINCTL_ETCD_PASSWORD") or config.get("ETCD_PASSWORD")
  if password then self.password = config.secret(password) end
  if self.password and not self.username then
    usage("an etcd password is set but no user: set TRAINCTL_ETCD_USERNAME")
  end
  if self.username and not self.password then
    usage("an etcd user is set but no password: set TRAINCTL_ETCD_PASSWORD")
  end
  if self.tls then
    local ca = config.get("TRAINCTL_ETCD_CA_FILE") or config.ca_file()
    self.ca_file = ca and readable(ca, "etcd CA file")
    local cert, key = config.get("TRAINCTL_ETCD_CERT_FILE"), config.get("TRAINCTL_ETCD_KEY_FILE")
    if (cert == nil) ~= (key == nil) then
      usage("an etcd client certificate needs both TRAINCTL_ETCD_CERT_FILE and TRAINCTL_ETCD_KEY_FILE")
    end
    self.cert_file = cert and readable(cert, "etcd client certificate")
    self.key_file = key and readable(key, "etcd client key")
  elseif config.get("TRAINCTL_ETCD_CERT_FILE") then
    usage(("a client certificate is set but %s is not TLS: use etcds://"):format(where.url))
  end
  return self
end

local function err(self, fields)
  fields.provider = "etcd"
  fields.etcd = self.url
  return errors.new(fields)
end

-- One POST to one member -> decoded answer | nil, error object, retry.
-- retry says another member (or a second try) may do better.
function Client:post1(ep, path, body, trace_body)
  local url = ("%s://%s%s"):format(self.tls and "https" or "http", ep, path)
  local headers = { ["content-type"] = "application/json", ["user-agent"] = http.USER_AGENT }
  if self.token then headers.authorization = self.token end
  local text = json.encode(body)
  if log.enabled("trace") then
    log.trace("etcd request", { url = url, headers = headers,
      body = trace_body ~= false and text or "(not shown)" })
  end
  local res, e = http.request({ method = "POST", url = url, headers = headers, body = text,
    timeout = self.timeout, connect_timeout = math.min(M.CONNECT_TIMEOUT, self.timeout),
    ca_file = self.ca_file, cert_file = self.cert_file, key_file = self.key_file })
  if not res then
    e = type(e) == "table" and e or { kind = "network", message = tostring(e) }
    if e.kind == "interrupted" then error(e, 0) end
    local message = tostring(e.message):gsub("^POST " .. url:gsub("%p", "%%%0") .. ": ", "")
    local kind = e.kind or "network"
    -- the server's refusal of our certificate (or of its absence) comes
    -- as an alert after the handshake: as final as a wrong CA
    if message:find("alert bad certificate", 1, true) or message:find("certificate required", 1, true) then
      kind = "tls"
      message = message .. (self.cert_file and " (etcd refused TRAINCTL_ETCD_CERT_FILE)" or
        " (etcd wants a client certificate: set TRAINCTL_ETCD_CERT_FILE and TRAINCTL_ETCD_KEY_FILE)")
    end
    return nil, err(self, { kind = kind, message = message, method = "POST", url = url,
      curl_code = e.curl_code }), kind ~= "tls"
  end
  if log.enabled("trace") then
    log.trace("etcd response", { url = url, status = res.status, body = res.body })
  end
  local decoded = json.decode(res.body or "")
  if res.status == 200 and type(decoded) == "table" then return decoded end
  local info = type(decoded) == "table" and decoded or {}
  local code = tonumber(info.code)
  local message = type(info.message) == "string" and info.message
    or type(info.error) == "string" and info.error or ("HTTP %d: %s"):format(res.status,
      tostring(res.body):sub(1, 200))
  local kind = "api"
  -- Unauthenticated (an expired token), PermissionDenied, or a request
  -- without a user where etcd wants one.
  if code == 16 or code == 7 or res.status == 401 or message:find("auth", 1, true)
    or message:find("user name is empty", 1, true) then
    kind = "auth"
  end
  return nil, err(self, { kind = kind, status = res.status, code = code and ("grpc %d"):format(code),
    message = message, method = "POST", url = url, grpc_code = code }),
    RETRY_CODE[code] or res.status == 503 or res.status == 502 or false
end

-- authenticate(): a token for user and password, on the current member.
function Client:authenticate(ep)
  self.token = nil
  local ans, e = self:post1(ep, "/v3/auth/authenticate",
    { name = self.username, password = self.password }, false)
  if not ans then
    if e.kind == "auth" or e.grpc_code == 3 or e.grpc_code == 9 then
      e.kind = "usage"
      e.message = ("etcd refused the user %q: %s (check TRAINCTL_ETCD_USERNAME and TRAINCTL_ETCD_PASSWORD)")
        :format(self.username, e.message)
      e.exit_code = require("trainctl.exit").USAGE
      error(e, 0)
    end
    return nil, e, true
  end
  if type(ans.token) ~= "string" then
    return nil, err(self, { kind = "decode", message = "authenticate: no token in the answer" }), true
  end
  log.add_secret(ans.token)
  self.token = ans.token
  return true
end

-- call(path, body [, opts]) -> decoded answer. Tries the members in turn,
-- from the one that answered last, until one answers or max_time passes
-- (opts.max_time: a keepalive has no more time than its lease). A call
-- whose answer was lost may have been applied: every call made here is
-- safe to repeat (puts of the same value, fenced or create-if-absent
-- transactions checked by their caller, keepalives, grants whose extra
-- lease expires on its own).
function Client:call(path, body, opts)
  local deadline = wait.clock() + ((opts and opts.max_time) or self.max_time)
  local n, last = #self.endpoints, nil
  local round, reauth = 0, false
  while true do
    for _ = 1, n do
      local ep = self.endpoints[self.current]
      local ok, e, retry = true, nil, nil
      if self.username and not self.token then ok, e, retry = self:authenticate(ep) end
      local ans
      if ok then ans, e, retry = self:post1(ep, path, body) end
      if ans then
        if type(ans.header) == "table" then self.cluster_id = ans.header.cluster_id end
        return ans
      end
      if e.kind == "auth" and self.username and not reauth then
        -- a token expires (etcd's --auth-token-ttl): one more, once
        self.token, reauth = nil, true
        ans, e, retry = self:authenticate(ep)
        if ans then ans, e, retry = self:post1(ep, path, body) end
        if ans then return ans end
      end
      if not retry then
        if e.kind == "auth" then
          -- a configuration to fix, not a failure to retry tomorrow
          e.exit_code = require("trainctl.exit").USAGE
          e.message = e.message .. (self.username and (" (user %q)"):format(self.username) or
            " (etcd wants a user: set TRAINCTL_ETCD_USERNAME and TRAINCTL_ETCD_PASSWORD)")
        end
        error(e, 0)
      end
      last = e
      log.debug(("etcd %s: %s; trying the next member"):format(ep, e.message))
      self.current = self.current % n + 1
      if wait.clock() >= deadline then break end
    end
    round = round + 1
    if wait.clock() >= deadline then break end
    wait.sleep(math.min(0.2 * round, 1, math.max(0, deadline - wait.clock())))
  end
  last.message = ("no member of %s answered (%s, last: %s)"):format(self.url,
    table.concat(self.endpoints, ", "), last.message)
  error(last, 0)
end

local function kv(item)
  return { key = unb64(item.key), value = unb64(item.value) or "",
    create_revision = item.create_revision, mod_revision = item.mod_revision,
    version = item.version, lease = item.lease }
end
M.kv = kv

-- range(key [, {prefix = true}]) -> list of {key, value, create_revision,
-- mod_revision, lease}, revision.
function Client:range(key, o)
  local body = { key = b64(key) }
  if o and o.prefix then body.range_end = b64(M.prefix_end(key)) end
  local ans = self:call("/v3/kv/range", body)
  local out = {}
  for i, item in ipairs(ans.kvs or {}) do out[i] = kv(item) end
  return out, ans.header and ans.header.revision
end

-- get(key) -> value | nil, kv
function Client:get(key)
  local list = self:range(key)
  if list[1] then return list[1].value, list[1] end
  return nil
end

function Client:put(key, value, lease)
  return self:call("/v3/kv/put", { key = b64(key), value = b64(value), lease = lease })
end

function Client:delete(key, o)
  local body = { key = b64(key) }
  if o and o.prefix then body.range_end = b64(M.prefix_end(key)) end
  return self:call("/v3/kv/deleterange", body)
end

-- txn{compare, success, failure} (already in the gateway's shape) ->
-- succeeded, answer.
function Client:txn(t, opts)
  local ans = self:call("/v3/kv/txn", { compare = json.array(t.compare or {}),
    success = json.array(t.success or {}), failure = json.array(t.failure or {}) }, opts)
  return ans.succeeded == true, ans
end

-- grant(ttl) -> lease id (a string), ttl granted.
function Client:grant(ttl)
  local ans = self:call("/v3/lease/grant", { TTL = math.ceil(ttl) })
  if type(ans.ID) ~= "string" then
    errors.raise({ kind = "decode", provider = "etcd", message = "lease grant: no ID in the answer" })
  end
  return ans.ID, tonumber(ans.TTL)
end

-- keepalive(id [, opts]) -> seconds left (0 when the lease is gone).
function Client:keepalive(id, opts)
  local ans = self:call("/v3/lease/keepalive", { ID = id }, opts)
  local r = type(ans.result) == "table" and ans.result or ans
  return tonumber(r.TTL) or 0
end

function Client:revoke(id, opts)
  return self:call("/v3/lease/revoke", { ID = id }, opts)
end

return M
