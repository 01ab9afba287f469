-- The state backend on etcd (--state etcd://HOST:PORT[,...]/PREFIX): each
-- state key is the etcd key PREFIX/KEY holding the value as JSON.
--
-- Every write is a transaction that succeeds only while the run's etcd
-- --lock still carries this run's lease (fencing): a run that was paused
-- or cut off past its TTL, and replaced by another, can never overwrite
-- its successor's records. Its write is refused, the run stops (exit 1).
-- The lock must live on the same cluster, since a transaction can only
-- compare keys of its own cluster.
local errors = require("trainctl.errors")
local etcd = require("trainctl.etcd")
local etcd_lock = require("trainctl.etcd_lock")
local json = require("trainctl.json")

local M = {}

local Backend = {}
Backend.__index = Backend

-- open(url [, {unfenced = true}]) -> backend. unfenced lets a command run
-- by hand (trainctl state forget) write without holding the lock.
function M.open(url, opts)
  local where = etcd.parse_url(url)
  local prefix = where.key:gsub("/*$", "") .. "/"
  return setmetatable({ url = where.url, prefix = prefix, client = etcd.client(where),
    unfenced = opts and opts.unfenced or false }, Backend)
end

function Backend:where() return self.url end

local function decode(self, key, text)
  local v, err = json.decode(text)
  if v == nil and text ~= "null" then
    errors.raise({ kind = "decode", provider = "etcd", message = ("state %s key %s is not JSON (%s)")
      :format(self.url, key, tostring(err)) }, 3)
  end
  return v
end

-- get(key) -> value | nil
function Backend:get(key)
  local text = self.client:get(self.prefix .. key)
  if text == nil then return nil end
  return decode(self, key, text)
end

-- list() -> {key = value}
function Backend:list()
  local out = {}
  for _, item in ipairs((self.client:range(self.prefix, { prefix = true }))) do
    local key = item.key:sub(#self.prefix + 1)
    out[key] = decode(self, key, item.value)
  end
  return out
end

-- why: how the run knows (its lease may have expired by its own clock, or
-- etcd refused the write).
local function fenced_out(self, key, lock, why)
  local e = errors.new({ kind = "lock", provider = "etcd", exit_code = require("trainctl.exit").ERROR,
    message = ("state write of %s to %s refused: this run no longer holds the lock %s "
      .. "(%s; another run may have taken over); stopping without writing")
      :format(key, self.url, lock and lock.url or "(none)", why) })
  if lock and not lock.lost then lock.lost = e end
  return e
end

-- put(key, value): one key; nil deletes. Raises when fenced out.
function Backend:put(key, value)
  local k = etcd.b64(self.prefix .. key)
  local op
  if value == nil then
    op = { request_delete_range = { key = k } }
  else
    op = { request_put = { key = k, value = etcd.b64(json.encode(value)) } }
  end
  local lock = etcd_lock.current()
  if self.unfenced and not lock then
    self.client:txn({ success = { op } })
    return value
  end
  if not lock then
    errors.usage(("--state %s needs an etcd --lock on the same cluster: its writes are fenced by "
      .. "the lock's lease (trainctl --lock etcd://.../LOCK state forget KEY --state %s)")
      :format(self.url, self.url))
  end
  if not lock:alive() then error(fenced_out(self, key, lock, "its lease expired: " .. lock:why()), 0) end
  local ok, ans = self.client:txn({ compare = { lock:fence() }, success = { op } })
  if lock.client.cluster_id and ans.header and ans.header.cluster_id
    and ans.header.cluster_id ~= lock.client.cluster_id then
    errors.usage(("--state %s and --lock %s are on different etcd clusters: the lock cannot fence "
      .. "the state"):format(self.url, lock.url))
  end
  if not ok then error(fenced_out(self, key, lock, "its lease expired or was revoked"), 0) end
  return value
end

return M
