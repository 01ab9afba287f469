-- HTTP for the provider clients: the native request function re-exported
-- unchanged, plus send(), a signed JSON request with retries, tracing and
-- the structured error object; and create_once(), which makes a create
-- safe to repeat by looking up what it would have made.
local raw = require("trainctl._http")
local errors = require("trainctl.errors")
local json = require("trainctl.json")
local log = require("trainctl.log")
local retry = require("trainctl.core.retry")
local wait = require("trainctl.core.wait")

local M = {}

-- The retry policy lives in core/retry.lua; these names stay for scripts.
M.retry_defaults, M.RETRY_STATUS, M.policy = retry.defaults, retry.STATUS, retry.policy
M.merge_retry, M.backoff, M.retry_after = retry.merge, retry.backoff, retry.retry_after
M.throttled, M.transient = retry.throttled, retry.transient
M.create_once, M.look_until = retry.create_once, retry.look_until

-- The native contract: request{method, url, headers, body, timeout, ...}
-- -> res{status, headers, header_list, body} | nil, err.
M.request = raw.request

M.USER_AGENT = raw.USER_AGENT -- the native default: one owner

local IDEMPOTENT = { GET = true, HEAD = true, PUT = true, DELETE = true, OPTIONS = true }

-- curl codes meaning the request never left: proxy or host not resolved,
-- connection refused. Only these make a non-idempotent request safe to
-- repeat without looking first.
local NOT_SENT = { [5] = true, [6] = true, [7] = true }

-- CURLE_URL_MALFORMAT: no server was reached and none ever will be; the
-- URL is the user's to fix, not the network's.
local URL_MALFORMAT = 3

local TRACE_BODY = 4096

-- Origins already warned about: insecure = true says so once per origin.
local warned_insecure = {}

-- parse_url(url) -> {scheme, host, path, query} (host includes any port,
-- never the user information: that is no part of the Host header).
function M.parse_url(url)
  local scheme, rest = url:match("^(%a[%w+.-]*)://(.*)$")
  if not scheme then return nil, "not an absolute URL: " .. tostring(url) end
  local host, path = rest:match("^([^/?#]*)(.*)$")
  host = host:match("^.*@(.*)$") or host
  path = path:gsub("#.*$", "")
  local query
  path, query = path:match("^([^?]*)%??(.*)$")
  if path == "" then path = "/" end
  return { scheme = scheme:lower(), host = host, path = path, query = query }
end

-- display_url(url) -> the URL as errors and logs show it: the origin and
-- the path, as the native layer names them; never the query (a SAS
-- signature, a token) nor a user:password.
function M.display_url(url)
  url = tostring(url):gsub("[?#].*$", "")
  local head, authority, path = url:match("^(%a[%w+.-]*://)([^/]*)(.*)$")
  if not head then return url end
  return head .. (authority:match("^.*@(.*)$") or authority) .. path
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

local function copy(t)
  local out = {}
  for k, v in pairs(t or {}) do out[k] = v end
  return out
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
    retry_after = retry.retry_after(res.headers), provider = req.provider,
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

-- prepare(req) -> what every attempt of send() shares: the policy, the
-- encoded body, the URL, and whether the request may be repeated.
local function prepare(req)
  local c = { p = retry.policy(req.retry), method = req.method:upper(), headers = copy(req.headers),
    body = req.body, query = req.query or "" }
  c.idempotent = req.idempotent
  if c.idempotent == nil then c.idempotent = IDEMPOTENT[c.method] or false end
  if type(c.body) == "table" then
    c.body = json.encode(c.body)
    if not c.headers["content-type"] then c.headers["content-type"] = "application/json" end
  end
  c.url = M.parse_url(req.url)
  if not c.url then errors.usage("bad URL " .. tostring(req.url)) end
  c.full = req.url .. (c.query ~= "" and ("?" .. c.query) or "")
  c.display = M.display_url(req.url)
  -- Verification is off only for the boolean true, never for a string
  -- such as "false" from a configuration file, and never silently.
  c.insecure = req.insecure == true
  if c.insecure and c.url.scheme == "https" and not warned_insecure[M.origin(req.url)] then
    warned_insecure[M.origin(req.url)] = true
    log.warn(("TLS certificate verification is off for %s (insecure = true): anyone on the "
      .. "path can read and change the traffic, credentials included"):format(M.origin(req.url)),
      { provider = req.provider })
  end
  c.start = wait.clock()
  return c
end

-- held_headers(r): the values of the headers whose name says they are
-- secret (authorization, a signature, a subscription key...) join the
-- secrets of the request, whichever provider signed it: a server may
-- quote one whole, outside the shapes redaction knows.
local function held_headers(r)
  for name, value in pairs(r.headers) do
    if type(value) == "string" and log.secret_name(name) then r.secrets[#r.secrets + 1] = value end
  end
end

-- attempt(req, c, n) -> r (the request as signed), res | nil, err, the
-- clock when it was sent: one try, signed anew, traced.
local function attempt(req, c, n)
  local r = {
    provider = req.provider, method = c.method, url = req.url, path = c.url.path,
    host = c.url.host, scheme = c.url.scheme, query = c.query, body = c.body,
    headers = copy(c.headers), attempt = n, display_url = c.display, secrets = {},
    now = M.signing_time(req.provider),
  }
  if not r.headers["user-agent"] then r.headers["user-agent"] = M.USER_AGENT end
  -- What the request carries that is derived from the credentials stays
  -- out of every line printed until it is over, whoever writes the line
  -- (a provider's classify logging the server's message among them).
  log.hold(r.secrets)
  if req.sign then req.sign(r) end
  held_headers(r)
  r.display_url = log.redact(c.display, r.secrets)
  trace_request(r)
  local t0 = wait.clock()
  local res, err = M.request({
    method = c.method, url = c.full, headers = r.headers, body = r.body,
    timeout = req.timeout or c.p.timeout, connect_timeout = req.connect_timeout, max_body = req.max_body,
    ca_file = req.ca_file, insecure = c.insecure,
    -- libcurl silently sends a request again when a reused connection
    -- turns out dead; a request that must not repeat gets its own.
    fresh_connect = not c.idempotent or nil,
  })
  r.seconds = math.floor((wait.clock() - t0) * 1000 + 0.5) / 1000
  if res then trace_response(r, res, r.seconds) end
  return r, res, err, t0
end

-- outcome(req, c, r, res, err) -> decoded (success), or nil, the error
-- and whether trying again is safe and may help.
local function outcome(req, c, r, res, err)
  local method, idempotent = c.method, c.idempotent
  if not res then
    err = type(err) == "table" and err or { kind = "network", message = tostring(err) }
    -- The native message starts with the method and URL, which the
    -- error object shows anyway.
    local message = tostring(err.message)
    local prefix = method .. " " .. c.display .. ": "
    if message:sub(1, #prefix) == prefix then message = message:sub(#prefix + 1) end
    local e = errors.new({
      kind = err.kind or "network", message = log.redact(message, r.secrets),
      provider = req.provider, method = method, url = r.display_url, curl_code = err.curl_code,
    })
    if e.kind == "interrupted" then error(e, 0) end
    if err.curl_code == URL_MALFORMAT then
      e.kind = "usage"
      return nil, e, false
    end
    local transient = e.kind == "network" or e.kind == "timeout"
    local not_sent = NOT_SENT[err.curl_code] or false
    e.ambiguous = transient and not idempotent and not not_sent
    log.debug(("%s %s: %s"):format(method, r.display_url, e.message),
      { provider = req.provider, attempt = r.attempt })
    return nil, e, transient and (idempotent or not_sent)
  end
  local decoded, derr = decode_body(res)
  local ok_status = res.status >= 200 and res.status < 300
  local info = req.classify and req.classify(res, decoded) or nil
  log.debug(("%s %s -> %d"):format(method, r.display_url, res.status),
    { provider = req.provider, seconds = r.seconds, attempt = r.attempt })
  if ok_status and not info then
    if not derr then return decoded end
    local e = errors.new({ kind = "decode", status = res.status, provider = req.provider,
      method = method, url = r.display_url, request_id = request_id(res.headers),
      message = "response is not valid JSON (" .. tostring(derr) .. ")" })
    e.ambiguous = not idempotent
    return nil, e, idempotent
  end
  local e = response_error(req, r, res, decoded, info)
  local transient = retry.STATUS[res.status] or (info and info.retry) or false
  -- throttle = false leaves throttling to the caller (fanout.map
  -- slows every worker down instead of one request retrying).
  if c.p.throttle == false and retry.throttled(e) then transient = false end
  e.ambiguous = transient and not idempotent
  return nil, e, transient and idempotent
end

-- resign(req, res, e, skew) -> true when a signature refused for a
-- clock off by more than the provider allows is to be made again, once,
-- with the server's time (skew.note keeps what was found); a second
-- refusal says so in its message.
local function resign(req, res, e, skew)
  local note = res and not skew.note and skewed(req, res, e)
  if note then
    skew.note = note
    e.message = e.message:gsub("%.$", "") .. "; " .. note
    -- The clock, not the keys: no hint about credentials on this line.
    e.hint = nil
    log.warn(("%s; signing with the server's time for the rest of the run and trying again")
      :format(tostring(e)))
    return true
  end
  if skew.note and e.kind == "auth" then
    e.message = ("%s (refused again when signed with the server's time; %s)"):format(
      e.message:gsub("%.$", ""), skew.note)
  end
  return false
end

-- send(req) -> decoded body, response. Raises an error object.
-- req: provider, method, url (no query), query (encoded string, sent and
-- signed as is), headers, body (string, or a table sent as JSON),
-- sign(r) (sets r.headers for each try; may add r.secrets), classify(res,
-- decoded) -> nil | info, idempotent, retry, timeout, connect_timeout,
-- max_body, ca_file, insecure, credentials (where the credentials came
-- from, config.origin, added to an authentication error).
function M.send(req)
  local c = prepare(req)
  local skew = {}
  local n = 0
  while true do
    n = n + 1
    for _, check in ipairs(checks) do check(req) end
    local r, res, err, t0 = attempt(req, c, n)
    -- (outcome raising, the list is let go of with r: held is weak)
    local decoded, e, retryable = outcome(req, c, r, res, err)
    if not e then
      log.release(r.secrets)
      return decoded, res
    end
    -- An answer may quote the request, credentials included: no field
    -- of the error keeps one (message, code, request id, details).
    e = log.redact(e, r.secrets)
    log.release(r.secrets)
    e.attempts = n
    -- A request that may have reached the server may still be carried
    -- out until its own timeout has run from when it was sent.
    if e.ambiguous then e.hold_until = t0 + (req.timeout or c.p.timeout) end
    if not resign(req, res, e, skew) then
      local delay = retryable and retry.delay(e, n, c.p, c.start, req.provider)
      if not delay then error(e, 0) end
      log.warn(("%s; retrying in %.1fs (attempt %d of %d)"):format(tostring(e), delay,
        n + 1, c.p.attempts), nil, { provider = e.provider, kind = e.kind, status = e.status,
        code = e.code, request_id = e.request_id, attempt = n + 1, attempts = c.p.attempts,
        delay = delay })
      wait.sleep(delay)
    end
  end
end

return M
