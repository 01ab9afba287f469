-- A run's memory: records that say what a workflow made and which
-- training it started, so a workflow killed at any moment finds its jobs
-- again on the next run instead of starting a second training.
--
--   local state = require("trainctl.state")
--   local key = state.key("my_workflow", { endpoint = c.endpoint, name = name })
--   local run = state.get(key) or {}
--   if not run.id then run.id = create() state.set(key, run) end
--
-- Records are kept one key at a time: set() takes the store's lock, reads
-- the current document, changes that one key and writes it back (a new
-- file, fsync, rename over, fsync of the directory), so any number of
-- runs sharing one state file never lose each other's records. Keys name
-- everything that decides what a workflow creates (state.key builds them),
-- so two instances of a workflow with different parameters never read
-- each other's records.
--
-- The module-level functions use the run's store (--state FILE or
-- etcd://..., else $XDG_STATE_HOME/trainctl/<script name>.json);
-- state.open(spec) gives any other.
local errors = require("trainctl.errors")
local json = require("trainctl.json")
local sys = require("trainctl.sys")

local M = {}

-- Seconds a writer waits for another writer's lock on a state file; a
-- writer holds it only while it reads and rewrites the file.
M.lock_wait = 30

local ENOENT = 2

local function config() return require("trainctl.config") end
local function option(name) return config().option(name) end

local function nonempty(v)
  if v ~= nil and v ~= "" then return v end
end

local function fail(message)
  errors.raise({ kind = "io", message = message }, 3)
end

-- default_path() -> the run's state store.
function M.default_path()
  local explicit = nonempty(option("state"))
  if explicit then return explicit end
  local base = nonempty(config().getenv("XDG_STATE_HOME"))
  if not base then base = (nonempty(config().getenv("HOME")) or ".") .. "/.local/state" end
  local script = nonempty(option("script"))
  local name = "trainctl"
  if script and script ~= "-" then
    name = script:match("([^/]+)$"):gsub("%.lua$", "")
  end
  return base .. "/trainctl/" .. name .. ".json"
end

-- The characters that separate a key's parts, written %XX inside them, so
-- that no value can make two parameter sets one key.
local function escape(v)
  return (v:gsub("[%%,={}]", function(c) return ("%%%02X"):format(c:byte()) end))
end

-- Keys this run built with key(): they name their work exactly, and are
-- not scoped to the script's arguments as plain keys are (see scoped).
local built = {}
-- key -> the key an earlier version built for the same parameters, where
-- they differ (a whole number from JSON was written 1.0): see earlier().
local legacy = {}

-- A number as the key writes it: 1 and 1.0 are one parameter, whether it
-- came from tonumber or from a JSON document (lua-cjson decodes every
-- number as a float).
local function number_text(v)
  local i = math.type(v) == "float" and math.tointeger(v)
  return i and ("%d"):format(i) or tostring(v)
end

-- key(name [, params]) -> "name{k=v,...}": a record's key from the
-- workflow's name and every parameter that names or places what it
-- creates (endpoint, prefix, bucket, instance, project...), sorted, so the
-- same parameters always give the same key and different ones never do.
function M.key(name, params)
  if type(name) ~= "string" or name == "" then
    errors.usage("state.key: a workflow name (string) is required")
  end
  if params == nil then
    built[name] = true
    return name
  end
  local parts, before = {}, {}
  for k, v in pairs(params) do
    if type(v) ~= "string" and type(v) ~= "number" and type(v) ~= "boolean" then
      errors.usage(("state.key: parameter %s must be a string, number or boolean"):format(tostring(k)))
    end
    local text = type(v) == "number" and number_text(v) or tostring(v)
    parts[#parts + 1] = escape(tostring(k)) .. "=" .. escape(text)
    before[#before + 1] = escape(tostring(k)) .. "=" .. escape(tostring(v))
  end
  table.sort(parts)
  table.sort(before)
  local key = name .. "{" .. table.concat(parts, ",") .. "}"
  local old = name .. "{" .. table.concat(before, ",") .. "}"
  if old ~= key then legacy[key] = old end
  built[key] = true
  return key
end

-- The file store.

local File = {}
File.__index = File

local function dirname(path)
  return path:match("^(.*)/[^/]*$") or "."
end

-- resolve(path) -> the file a symlinked state path stands for: records
-- are written through the link to its target, which stays a link.
local function resolve(given)
  local path = given
  for _ = 1, 40 do
    local target = sys.readlink(path)
    if not target then return path end
    if target:sub(1, 1) ~= "/" then target = dirname(path) .. "/" .. target end
    path = target
  end
  fail(("state file %s: too many levels of symbolic links"):format(given))
end

function M.file(path)
  if type(path) ~= "string" or path == "" then errors.usage("state: a file path is required") end
  return setmetatable({ path = path }, File)
end

function File:where() return self.path end

-- read() -> the document's records. A missing file is no records; any
-- other file that is not a JSON object is an error naming it, and is
-- never overwritten (resetting it would forget a running training).
function File:read()
  local path = resolve(self.path)
  local st, err, code = sys.stat(path)
  if not st then
    if code == ENOENT then return {} end
    fail(("cannot read state file %s: %s"):format(self.path, tostring(err):gsub("^stat: .-: ", "")))
  end
  if st.type == "dir" then
    fail(("state file %s is a directory; --state names a file"):format(self.path))
  elseif st.type ~= "file" then
    -- A FIFO would block the run, a device never end.
    fail(("state file %s is not a regular file"):format(self.path))
  end
  local f, ferr = io.open(path, "rb")
  if not f then fail(("cannot read state file %s: %s"):format(self.path, tostring(ferr):gsub("^.-: ", ""))) end
  local text, rerr = f:read("a")
  f:close()
  if not text then fail(("cannot read state file %s: %s"):format(self.path, tostring(rerr))) end
  local hint = "; fix it, or remove it to forget every record in it"
  if not text:find("%S") then fail(("state file %s is empty%s"):format(self.path, hint)) end
  local v, derr
  if text:match("^%s*{") then v, derr = json.decode(text) end
  if type(v) ~= "table" then
    fail(("state file %s is not a JSON object%s%s"):format(self.path,
      derr and (" (" .. tostring(derr) .. ")") or "", hint))
  end
  return v
end

function File:get(key) return self:read()[key] end
function File:list() return self:read() end

-- Whether the run's own --lock is the file `lock`: held already, by this
-- process. flock locks belong to each open of a file, so taking it again
-- would wait for ourselves.
local function run_holds(lock)
  local own = option("lock")
  if type(own) ~= "string" or own:match("^etcds?://") then return false end
  local a, b = sys.stat(own), sys.stat(lock)
  return a ~= nil and b ~= nil and a.dev == b.dev and a.ino == b.ino
end

-- lock() -> held lock on "<file>.lock" beside the file's target, waited
-- for (another writer holds it for one rewrite only); nil when the run's
-- --lock is that file.
function File:lock()
  local path = resolve(self.path)
  if run_holds(path .. ".lock") then return nil, path end
  local dir = dirname(path)
  if not sys.stat(dir) then
    local ok, err = sys.mkdir_p(dir, tonumber("700", 8))
    if not ok then fail(("cannot create %s: %s"):format(dir, tostring(err):gsub("^mkdir: .-: ", ""))) end
  end
  local wait = require("trainctl.core.wait")
  local deadline, pause = wait.clock() + M.lock_wait, 0.002
  while true do
    local l, err, why = sys.lock(path .. ".lock")
    if l then return l, path end
    if why ~= "locked" then
      fail(("cannot lock state file %s: %s"):format(self.path, tostring(err):gsub("^lock: ", "")))
    end
    if wait.clock() > deadline then
      fail(("state file %s: another process has held %s.lock for %gs"):format(self.path, path, M.lock_wait))
    end
    wait.sleep(pause)
    pause = math.min(pause * 2, 0.05)
  end
end

-- put(key, value): value nil removes the record. The rest of the file is
-- what is on disk now, not what this run read earlier.
function File:put(key, value)
  return self:change(key, function() return value end)
end

-- change(key, fn): fn(old value) -> new value, under the lock.
function File:change(key, fn)
  local _ <close>, path = self:lock()
  local data = self:read()
  local value = fn(data[key])
  data[key] = value
  local st = sys.stat(path)
  local mode = st and st.type == "file" and st.mode or tonumber("600", 8)
  local ok, err = sys.write_atomic(path, json.encode(data, { pretty = true }) .. "\n", mode)
  if not ok then
    local why = tostring(err)
    local prefix = "write: " .. path .. ": "
    if why:sub(1, #prefix) == prefix then why = why:sub(#prefix + 1) end
    fail(("cannot write state file %s: %s"):format(self.path, why))
  end
  return value
end

-- A store's document: the functions scripts call.

local Doc = {}
Doc.__index = Doc

-- open(spec) -> document: a file path, or etcd://host:port[,...]/prefix
-- (etcds:// for TLS).
function M.open(spec)
  if type(spec) ~= "string" or spec == "" then errors.usage("state: a file path or etcd:// URL is required") end
  local store
  if spec:match("^etcds?://") then
    store = require("trainctl.state_etcd").open(spec)
  else
    store = M.file(spec)
    -- A file that cannot be a state file is said at once, not at the
    -- first record.
    store:read()
  end
  return setmetatable({ path = store:where(), store = store }, Doc)
end

-- earlier(doc, key): no record under key, but one under the key an
-- earlier version built for the same parameters (a whole number from JSON
-- was written 1.0, where this one writes 1). Whose it is cannot be told:
-- a string "1.0" gives that key today too. Taking it could hand one run
-- another's record, ignoring it could start a second training: the run
-- stops, and says how to settle it.
local function earlier(doc, key)
  local old = legacy[key]
  if old == nil or doc.store:get(old) == nil then return end
  errors.raise({ kind = "state", code = "EarlierKey", key = key, state = doc:where(),
    message = ("no record under %s in state %s, but one under %s, the key an earlier trainctl gave the "
      .. "same parameters when a number came from JSON (or a string \"1.0\" gives today). If it is this "
      .. "work's, take it: state.migrate(%q, key) before reading; if not, pass the number as it was "
      .. "written there, or forget that record: trainctl state forget %s --state %s")
      :format(key, doc:where(), old, old, M.quote(old), M.quote(doc:where())) }, 3)
end

function Doc:get(key)
  local v = self.store:get(key)
  if v == nil then earlier(self, key) end
  return v
end
function Doc:all() return self.store:list() end
function Doc:where() return self.store:where() end

-- set(key, value): recorded at once. A nil value removes the key.
function Doc:set(key, value)
  if type(key) ~= "string" or key == "" then errors.usage("state: keys are non-empty strings") end
  self.store:put(key, value)
  return value
end

function Doc:delete(key) return self:set(key, nil) end

-- update(key, fn): value = fn(current value), read and written under the
-- store's lock.
function Doc:update(key, fn)
  if legacy[key] and self.store:get(key) == nil then earlier(self, key) end
  if self.store.change then return self.store:change(key, fn) end
  return self:set(key, fn(self.store:get(key)))
end

-- save(): kept for scripts of the first version; every change is saved
-- when it is made.
function Doc.save() return true end

-- stale(key, err): the error for a record whose object the provider no
-- longer knows (an expired or deleted job): it names the store, the key
-- and the command that forgets the record.
function Doc:stale(key, err)
  local why = errors.is(err) and ((err.code and err.code ~= "" and err.code or ("HTTP " .. tostring(err.status)))
    .. ": " .. tostring(err.message)) or tostring(err)
  local cmd = ("trainctl state forget %s --state %s"):format(M.quote(key), M.quote(self:where()))
  errors.raise({ kind = "api", provider = errors.is(err) and err.provider or nil, status = err.status,
    code = "StaleRecord", message = ("%s, recorded in state %s under key %s, is gone (%s); "
      .. "to start over, forget the record: %s"):format(tostring(err.what or "the recorded job"),
      self:where(), key, why, cmd), state = self:where(), key = key }, 2)
end

-- CONFIRM: answers that must agree before a recorded object counts as
-- gone, and the pause between them.
M.CONFIRM = { answers = 2, pause = 1 }

-- still_there(fn, ...) -> fn(...)'s answer, or nil, the provider's error
-- once the provider has
-- said, with its own not-found code, CONFIRM.answers times in a row, that
-- the object is gone. A bare 404 (a proxy, a gateway, a fault) is asked
-- again; any other error is raised. A record is never dropped, and its
-- work started over, on a single answer.
function M.still_there(fn, ...)
  local wait = require("trainctl.core.wait")
  local gone, last = 0, nil
  for _ = 1, M.CONFIRM.answers + 2 do
    local ok, v = pcall(fn, ...)
    if ok then return v end
    if not (errors.is(v) and ((v.status == 404 and v.kind ~= "auth") or errors.not_found(v))) then error(v, 0) end
    last = v
    gone = errors.not_found(v) and gone + 1 or 0
    if gone >= M.CONFIRM.answers then return nil, v end
    wait.sleep(M.CONFIRM.pause)
  end
  error(last, 0)
end

-- wait(key, job [, opts]) -> job:wait(opts)'s final status, for a job
-- recorded under key: a job the provider confirms gone (an expired Azure
-- job, a training the instance lost) ends the run with the error that
-- names the record and the command that clears it; a not-found the next
-- answer contradicts is waited through.
function Doc:wait(key, j, opts)
  while true do
    local ok, st = pcall(j.wait, j, opts)
    if ok then return st end
    if not errors.not_found(st) then error(st, 0) end
    local now, gone = M.still_there(j.status, j)
    if now == nil then
      gone.what = gone.what or tostring(j.label)
      self:stale(key, gone)
    end
  end
end

-- migrate(old, new [, accept]) -> the record under new. One that an
-- earlier version kept under old is moved to new first, when accept(it)
-- says it is this work's: upgrading trainctl must not lose a record (and
-- start a second training).
function Doc:migrate(old, new, accept)
  local v = self.store:get(new)
  if v ~= nil then return v end
  local was = self.store:get(old)
  if was == nil or (accept and not accept(was)) then return nil end
  self:set(new, was)
  self:delete(old)
  return was
end

-- quote(s): s as one shell word.
function M.quote(s)
  s = tostring(s)
  if s:match("^[%w@%%+=:,./_-]+$") then return s end
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

-- record(key) -> the record under key, a table; {} when there is none.
-- A record that is not a table (a hand edit, another program) is an
-- error naming it: taking it for "nothing done yet" could start a second
-- training.
function Doc:record(key)
  local v = self:get(key)
  if v == nil then return {} end
  if type(v) ~= "table" then
    local cmd = ("trainctl state forget %s --state %s"):format(M.quote(key), M.quote(self:where()))
    errors.raise({ kind = "state", message = ("record %s in state %s is %s, not an object; fix it, or "
      .. "forget it to start that work over: %s"):format(key, self:where(), json.encode(v), cmd) }, 2)
  end
  return v
end

local default

-- document() -> the run's document, opened on first use.
function M.document()
  if not default then
    default = M.open(M.default_path())
    -- An etcd lock is for runs on several hosts; a state file on one of
    -- them is not seen by the others, whose runs would start over.
    local lock = option("lock")
    if type(lock) == "string" and lock:match("^etcds?://") and not default.path:match("^etcds?://") then
      require("trainctl.log").warn("the state is in a file on this host while --lock is on etcd: a run on "
        .. "another host will not find these records; give --state etcd://... too", { state = default.path })
    end
  end
  return default
end

-- scoped(key) -> the key a module-level function stores: a plain key is
-- kept per script arguments ('run' of `w.lua rP` is 'run ["rP"]'), so
-- runs of one script with other arguments never share a record by
-- accident; a key built by state.key names its work exactly and is kept
-- as it is (an output path among the arguments must not make a run train
-- again).
local function scoped(key)
  if type(key) ~= "string" or built[key] then return key end
  local args = rawget(_G, "arg")
  local script = option("script")
  if type(args) ~= "table" or not script or #args == 0 then return key end
  local list = {}
  for i = 1, #args do list[i] = tostring(args[i]) end
  return key .. " " .. json.encode(json.array(list))
end
M.scoped = scoped

function M.path() return M.document():where() end
function M.get(key) return M.document():get(scoped(key)) end
function M.set(key, value) return M.document():set(scoped(key), value) end
function M.delete(key) return M.document():delete(scoped(key)) end
function M.update(key, fn) return M.document():update(scoped(key), fn) end
function M.record(key) return M.document():record(scoped(key)) end
function M.all() return M.document():all() end
function M.save() return M.document():save() end
function M.stale(key, err) return M.document():stale(scoped(key), err) end
function M.wait(key, j, opts) return M.document():wait(scoped(key), j, opts) end
-- The old key is as an earlier version wrote it: never scoped.
function M.migrate(old, new, accept) return M.document():migrate(old, scoped(new), accept) end

-- use(spec): switch the run's document (tests, or a script choosing).
function M.use(spec)
  default = spec and M.open(spec) or nil
  return default
end

return M
