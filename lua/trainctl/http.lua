-- HTTP for the provider clients: the native request function re-exported
-- unchanged, plus send(), a signed JSON request with retries, tracing and
-- the structured error object; and create_once(), which makes a create
-- safe to repeat by looking up what it would have made.
local raw = require("trainctl._http")
local errors = require("trainctl.errors")
local json = require("trainctl.json")
local log = require("trainctl.log")
local wait = require("trainctl.wait")

local M = {}

-- The native contract: request{method, url, headers, body, timeout, ...}
-- -> res{status, headers, header_list, body} | nil, err.
M.request = raw.request

M.USER_AGENT = raw.USER_AGENT -- the native default: one owner

-- Retry policy; a client's retry= and a call's retry= override fields.
-- retry=false turns retries off.
M.retry_defaults = {
  attempts = 5,          -- tries in all, the first included
  max_time = 300,        -- seconds from the first try after which no retry starts
  base_delay = 0.5,      -- first backoff; doubles each retry
  max_delay = 30,        -- cap on one backoff
  -- Cap on a server's Retry-After (warned when exceeded); well below
  -- max_time, so that a capped wait still leads to a retry.
  max_retry_after = 120,
  -- Seconds one request may take, answer included; also how long a
  -- server may still act on a request whose answer was lost.
  timeout = 300,
  -- Floor on a server's Retry-After: "0" is no reason to ask again in a
  -- tight loop.
  min_retry_after = 1,
}

M.RETRY_STATUS = { [408] = true, [429] = true, [500] = true, [502] = true, [503] = true,
  [504] = true }

local IDEMPOTENT = { GET = true, HEAD = true, PUT = true, DELETE = true, OPTIONS = true }

-- curl codes meaning the request never left: proxy or host not resolved,
-- connection refused. Only these make a non-idempotent request safe to
-- repeat without looking first.
local NOT_SENT = { [5] = true, [6] = true, [7] = true }

local TRACE_BODY = 4096

-- Origins already warned about: insecure = true says so once per origin.
local warned_insecure = {}

-- parse_url(url) -> {scheme, host, path, query} (host includes any port).
function M.parse_url(url)
  local scheme, rest = url:match("^(%a[%w+.-]*)://(.*)$")
  if not scheme then return nil, "not an absolute URL: " .. tostring(url) end
  local host, path = rest:match("^([^/?#]*)(.*)$")
  path = path:gsub("#.*$", "")
  local query
  path, query = path:match("^([^?]*)%??(.*)$")
  if path == "" then path = "/" end
  return { scheme = scheme:lower(), host = host, path = path, query = query }
end

-- origin(url) -> "scheme://host"
function M.origin(url)
  local u = M.parse_url(url)
  return u and (u.scheme .. "://" .. u.host:lower())
end

local function header(headers, name)
  if not headers then return nil end
  return headers[name]
end

-- delta(v) -> a number of a delta-seconds field (digits, perhaps a
-- fraction) or nil: no sign, exponent, hex or "inf" from a server.
local function delta(v)
  local digits = type(v) == "string" and v:match("^%s*(%d+%.?%d*)%s*$")
  return digits and tonumber(digits)
end

-- retry_after(headers) -> seconds | nil, from Retry-After (seconds or an
-- HTTP date), retry-after-ms, x-ms-retry-after-ms or x-acs-retry-after
-- (milliseconds). Values that are neither are ignored (backoff applies).
function M.retry_after(headers)
  for _, name in ipairs({ "retry-after-ms", "x-ms-retry-after-ms", "x-acs-retry-after" }) do
    local ms = delta(header(headers, name))
    if ms then return ms / 1000 end
  end
  local v = header(headers, "retry-after")
  if not v then return nil end
  local n = delta(v)
  if n then return n end
  local sys = require("trainctl.sys")
  local t = sys.parse_rfc1123(v)
  if t then return math.max(0, t - sys.now()) end
  return nil
end

local function copy(t)
  local out = {}
  for k, v in pairs(t or {}) do out[k] = v end
  return out
end

local function policy(...)
  local p = copy(M.retry_defaults)
  for i = 1, select("#", ...) do
    local o = select(i, ...)
    if o == false then
      p.attempts = 1
    elseif type(o) == "table" then
      for k, v in pairs(o) do p[k] = v end
    end
  end
  return p
end
M.policy = policy

-- merge_retry(client, call) -> the retry setting of one call: false when
-- either turns retries off (the call's word wins), else fields merged.
function M.merge_retry(a, b)
  if b == false then return false end
  if b == nil then return a end
  if a == false or a == nil then return b end
  local out = copy(a)
  for k, v in pairs(b) do out[k] = v end
  return out
end

-- throttled(err) -> whether an error means "slow down": HTTP 429 or a
-- throttling code (Alibaba answers Throttling.User with a 400).
function M.throttled(e)
  if type(e) ~= "table" then return false end
  if e.status == 429 then return true end
  return type(e.code) == "string" and e.code:find("Throttling", 1, true) ~= nil
end

-- transient(err) -> whether an error may pass by itself, so that asking
-- again later makes sense: no answer (network, timeout), an answer cut
-- short or unreadable (decode), 408, 429, any 5xx, or throttling. An auth
-- error or another 4xx will not change by waiting.
function M.transient(e)
  -- An error that decides the exit status (the run's --timeout, a
  -- signal) ends the run whatever its kind.
  if not errors.is(e) or e.kind == "auth" or e.exit_code then return false end
  if e.kind == "network" or e.kind == "timeout" or e.kind == "decode" then return true end
  local status = tonumber(e.status)
  if status and (M.RETRY_STATUS[status] or (status >= 500 and status < 600)) then return true end
  return M.throttled(e)
end

-- Seconds to add to the local clock when signing for a provider, learned
-- from a server that refused a signature and whose Date showed our clock
-- off by more than that provider's window; kept for the rest of the run,
-- as the AWS SDKs do.
local clock_offset = {}

-- signing_time(provider) -> the time to sign a request with.
function M.signing_time(provider)
  return require("trainctl.sys").now() + (clock_offset[provider or ""] or 0)
end

-- forget_skew(): sign with the local clock again (for tests).
function M.forget_skew()
  clock_offset = {}
end

-- skewed(req, res, e) -> a note for the error when the server refused
-- the request and its Date is further than req.skew_window seconds from
-- the time the request was signed with; the provider's offset is then
-- corrected. nil otherwise.
local function skewed(req, res, e)
  if not req.skew_window or e.kind ~= "auth" then return nil end
  local date = header(res.headers, "date")
  local server = date and require("trainctl.sys").parse_rfc1123(date)
  if not server then return nil end
  -- Date is whole seconds, cut: the middle of its second is nearer.
  local off = server + 0.5 - M.signing_time(req.provider)
  if math.abs(off) <= req.skew_window then return nil end
  local key = req.provider or ""
  clock_offset[key] = (clock_offset[key] or 0) + off
  return ("the local clock is %s %s the server's (Date: %s), more than the %s %s allows")
    :format(wait.duration(math.abs(off)), off > 0 and "behind" or "ahead of", date,
      wait.duration(req.skew_window), req.provider or "server")
end

-- backoff(n, p) -> seconds before retry n (1-based): exponential, capped,
-- with jitter so that many clients do not retry in step.
function M.backoff(n, p)
  p = p or M.retry_defaults
  local d = math.min(p.max_delay, p.base_delay * 2 ^ (n - 1))
  return d * (0.5 + 0.5 * math.random())
end

-- A body in a trace: redacted whole, then cut (log.clip).
local function truncate(s, extra)
  return log.clip(s, TRACE_BODY, extra)
end

local function request_id(headers)
  return header(headers, "x-request-id") or header(headers, "apim-request-id")
    or header(headers, "x-ms-request-id") or header(headers, "x-acs-request-id")
end

local function snippet(body, extra)
  if type(body) ~= "string" or body == "" then return nil end
  body = (log.redact_head(body, 200, extra)):gsub("%s+", " ")
  if #body > 200 then body = body:sub(1, 200) .. "..." end
  return body
end

-- text(v): a field of an answer as a string, or nil: a server may send a
-- number, an object or null where a string belongs.
local function text(v)
  if type(v) == "string" then return v end
  if type(v) == "number" then return json.number_string(v) end
end

-- The error for a response that is not a success. info comes from the
-- provider's classify: {code, message, request_id, kind, retry}.
local function response_error(req, r, res, decoded, info)
  info = info or {}
  local status = res.status
  local kind = info.kind
  if not kind then
    if status == 401 or status == 403 then
      kind = "auth"
    elseif info.code then
      kind = "api"
    else
      kind = "http"
    end
  end
  local message = text(info.message)
  if not message or message == "" then
    message = ("HTTP %d"):format(status)
    local s = snippet(res.body, r.secrets)
    if s and not decoded then message = message .. ": " .. s end
  end
  return errors.new({
    kind = kind, status = status, code = text(info.code), message = message,
    -- A refused credential is named by where it came from (never by its
    -- value), so the user knows what to fix.
    hint = kind == "auth" and req.credentials or nil,
    request_id = text(info.request_id) or request_id(res.headers),
    retry_after = M.retry_after(res.headers), provider = req.provider,
    method = r.method, url = r.display_url, details = info.details,
  })
end

local function trace_request(r)
  if not log.enabled("trace") then return end
  log.trace("http request", log.redact({
    provider = r.provider, method = r.method, url = r.display_url, attempt = r.attempt,
    headers = r.headers, body = truncate(r.body, r.secrets),
  }, r.secrets))
end

local function trace_response(r, res, seconds)
  if not log.enabled("trace") then return end
  log.trace("http response", log.redact({
    provider = r.provider, method = r.method, url = r.display_url, status = res.status,
    headers = res.headers, body = truncate(res.body, r.secrets), seconds = seconds,
  }, r.secrets))
end

local function decode_body(res)
  local body = res.body
  if body == nil or body:match("^%s*$") then return nil end
  local v, err = json.decode(body)
  if v == nil then return nil, err end
  return v
end

-- Checks made before each attempt of send(); one that raises stops the
-- request before it leaves. The etcd --lock adds one: a run whose lease
-- may have expired starts nothing new.
local checks = {}
function M.add_check(fn) checks[#checks + 1] = fn end

-- send(req) -> decoded body, response. Raises an error object.
-- req: provider, method, url (no query), query (encoded string, sent and
-- signed as is), headers, body (string, or a table sent as JSON),
-- sign(r) (sets r.headers for each try; may add r.secrets), classify(res,
-- decoded) -> nil | info, idempotent, retry, timeout, connect_timeout,
-- max_body, ca_file, insecure, credentials (where the credentials came
-- from, config.origin, added to an authentication error).
function M.send(req)
  local p = policy(req.retry)
  local method = req.method:upper()
  local idempotent = req.idempotent
  if idempotent == nil then idempotent = IDEMPOTENT[method] or false end
  local body = req.body
  local headers = copy(req.headers)
  if type(body) == "table" then
    body = json.encode(body)
    if not headers["content-type"] then headers["content-type"] = "application/json" end
  end
  local url = M.parse_url(req.url)
  if not url then errors.usage("bad URL " .. tostring(req.url)) end
  local query = req.query or ""
  local full = req.url .. (query ~= "" and ("?" .. query) or "")
  -- Verification is off only for the boolean true, never for a string
  -- such as "false" from a configuration file, and never silently.
  local insecure = req.insecure == true
  if insecure and url.scheme == "https" and not warned_insecure[M.origin(req.url)] then
    warned_insecure[M.origin(req.url)] = true
    log.warn(("TLS certificate verification is off for %s (insecure = true): anyone on the "
      .. "path can read and change the traffic, credentials included"):format(M.origin(req.url)),
      { provider = req.provider })
  end
  local start = wait.clock()
  local attempt = 0
  local skew_note
  while true do
    attempt = attempt + 1
    for _, check in ipairs(checks) do check(req) end
    local r = {
      provider = req.provider, method = method, url = req.url, path = url.path,
      host = url.host, scheme = url.scheme, query = query, body = body,
      headers = copy(headers), attempt = attempt, display_url = full, secrets = {},
      now = M.signing_time(req.provider),
    }
    if not r.headers["user-agent"] then r.headers["user-agent"] = M.USER_AGENT end
    if req.sign then req.sign(r) end
    r.display_url = log.redact(full, r.secrets)
    trace_request(r)
    local t0 = wait.clock()
    local res, err = M.request({
      method = method, url = full, headers = r.headers, body = r.body,
      timeout = req.timeout or p.timeout, connect_timeout = req.connect_timeout, max_body = req.max_body,
      ca_file = req.ca_file, insecure = insecure,
      -- libcurl silently sends a request again when a reused connection
      -- turns out dead; a request that must not repeat gets its own.
      fresh_connect = not idempotent or nil,
    })
    local seconds = math.floor((wait.clock() - t0) * 1000 + 0.5) / 1000
    local e, retryable
    if not res then
      err = type(err) == "table" and err or { kind = "network", message = tostring(err) }
      -- The native message starts with the method and URL, which the
      -- error object shows anyway (with its query).
      local message = tostring(err.message)
      local prefix = method .. " " .. req.url:gsub("%?.*$", "") .. ": "
      if message:sub(1, #prefix) == prefix then message = message:sub(#prefix + 1) end
      e = errors.new({
        kind = err.kind or "network", message = log.redact(message, r.secrets),
        provider = req.provider, method = method, url = r.display_url, curl_code = err.curl_code,
      })
      if e.kind == "interrupted" then error(e, 0) end
      local transient = e.kind == "network" or e.kind == "timeout"
      local not_sent = NOT_SENT[err.curl_code] or false
      retryable = transient and (idempotent or not_sent)
      e.ambiguous = transient and not idempotent and not not_sent
      log.debug(("%s %s: %s"):format(method, r.display_url, e.message),
        { provider = req.provider, attempt = attempt })
    else
      trace_response(r, res, seconds)
      local decoded, derr = decode_body(res)
      local ok_status = res.status >= 200 and res.status < 300
      local info = req.classify and req.classify(res, decoded) or nil
      if ok_status and not info then
        if not derr then
          log.debug(("%s %s -> %d"):format(method, r.display_url, res.status),
            { provider = req.provider, seconds = seconds, attempt = attempt })
          return decoded, res
        end
        e = errors.new({ kind = "decode", status = res.status, provider = req.provider,
          method = method, url = r.display_url, request_id = request_id(res.headers),
          message = "response is not valid JSON (" .. tostring(derr) .. ")" })
        retryable = idempotent
        e.ambiguous = not idempotent
      else
        e = response_error(req, r, res, decoded, info)
        local transient = M.RETRY_STATUS[res.status] or (info and info.retry) or false
        -- throttle = false leaves throttling to the caller (fanout.map
        -- slows every worker down instead of one request retrying).
        if p.throttle == false and M.throttled(e) then transient = false end
        retryable = transient and idempotent
        e.ambiguous = transient and not idempotent
      end
      log.debug(("%s %s -> %d"):format(method, r.display_url, res.status),
        { provider = req.provider, seconds = seconds, attempt = attempt })
    end
    -- An answer may quote the request, credentials included: no field
    -- of the error keeps one (message, code, request id, details).
    e = log.redact(e, r.secrets)
    e.attempts = attempt
    -- A request that may have reached the server may still be carried
    -- out until its own timeout has run from when it was sent.
    if e.ambiguous then e.hold_until = t0 + (req.timeout or p.timeout) end
    -- A signature refused for a clock off by more than the provider
    -- allows is made again, once, with the server's time.
    local note = res and not skew_note and skewed(req, res, e)
    if note then
      skew_note = note
      e.message = e.message:gsub("%.$", "") .. "; " .. note
      -- The clock, not the keys: no hint about credentials on this line.
      e.hint = nil
      log.warn(("%s; signing with the server's time for the rest of the run and trying again")
        :format(tostring(e)))
      goto again
    end
    if skew_note and e.kind == "auth" then
      e.message = ("%s (refused again when signed with the server's time; %s)"):format(
        e.message:gsub("%.$", ""), skew_note)
    end
    local delay
    if retryable and attempt < p.attempts then
      delay = e.retry_after
      if delay and delay > p.max_retry_after then
        log.warn(("%s asked to retry after %gs; waiting %gs instead"):format(
          req.provider or "server", delay, p.max_retry_after), nil,
          { provider = req.provider, retry_after = delay, delay = p.max_retry_after })
        delay = p.max_retry_after
      end
      if delay then delay = math.max(delay, p.min_retry_after) end
      delay = delay or M.backoff(attempt, p)
      if wait.clock() - start + delay > p.max_time then delay = nil end
    end
    if not delay then error(e, 0) end
    log.warn(("%s; retrying in %.1fs (attempt %d of %d)"):format(tostring(e), delay,
      attempt + 1, p.attempts), nil, { provider = e.provider, kind = e.kind, status = e.status,
      code = e.code, request_id = e.request_id, attempt = attempt + 1, attempts = p.attempts,
      delay = delay })
    wait.sleep(delay)
    ::again::
  end
end

-- look_until(lookup, deadline, clock, what) -> lookup's first non-nil
-- answer, asking again every few seconds until clock() passes deadline
-- (and once after it), or nil. For a request that may still land: a
-- lookup made before the server could have acted proves nothing.
function M.look_until(lookup, deadline, clock, what)
  local found = lookup()
  local step = math.max(0.5, math.min(5, require("trainctl.job").settle / 2))
  local told = false
  while found == nil and clock() < deadline do
    local left = deadline - clock()
    if not told then
      log.info(("%s may still land; looking it up for %.1fs before trying again"):format(what, left))
      told = true
    end
    wait.sleep(math.min(step, left))
    found = lookup()
  end
  return found
end

-- create_once{create, lookup [, conflict, attempts, what, retry,
-- uncertain, hold]} -> result. A create whose outcome is uncertain
-- (connection broken or timed out after sending, 5xx, an unreadable
-- answer) is looked up before it is tried again: conflict(err) says an
-- error means "already exists", which after an uncertain first try means
-- the repeated create found the first one, resolved by lookup too;
-- uncertain = true says the first try may follow an earlier run's.
-- hold = true is for creates that nothing on the server refuses twice
-- (a training start): one whose fate is unknown is sent again only once
-- it can no longer land, its own timeout plus job.settle after it was
-- sent, and only if the lookup still finds nothing. A create of a named
-- object needs no wait: the server refuses the name a second time.
function M.create_once(o)
  local p = policy(o.retry)
  local attempts = o.attempts or p.attempts
  local what = o.what or "the create"
  for attempt = 1, attempts do
    local ok, res = pcall(o.create)
    if ok then return res end
    local e = res
    if not errors.is(e) then error(e, 0) end
    local conflict = (attempt > 1 or o.uncertain) and o.conflict and o.conflict(e)
    if not (e.ambiguous or conflict) then error(e, 0) end
    local found
    if o.hold and e.ambiguous then
      local deadline = (e.hold_until or wait.clock()) + require("trainctl.job").settle
      found = M.look_until(o.lookup, deadline, wait.clock, what)
    else
      found = o.lookup()
    end
    if found ~= nil then
      log.info(("%s: %s happened despite the error; using it"):format(e.provider or "client",
        what), { error = tostring(e) })
      return found
    end
    if attempt == attempts then error(e, 0) end
    local delay = math.min(e.retry_after or M.backoff(attempt, p), p.max_retry_after)
    log.warn(("%s; %s did not happen, trying again in %.1fs"):format(tostring(e), what, delay), nil,
      { provider = e.provider, kind = e.kind, status = e.status, code = e.code, attempt = attempt + 1,
        attempts = attempts, delay = delay })
    wait.sleep(delay)
  end
end

return M
