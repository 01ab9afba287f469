-- Fuzz targets: each takes one input string, feeds it to a parser of
-- outside input, and raises only when an invariant breaks (a crash or a
-- sanitizer report is a finding too). Run by fuzz_lua.c.

local T = {}

-- Splits input into "k=v" records on newlines: arbitrary maps for the
-- signers (names and values may hold any byte, including '=').
local function records(s)
  local map, list = {}, {}
  for line in (s .. "\n"):gmatch("([^\n]*)\n") do
    local k, v = line:match("^([^=]*)=(.*)$")
    if k then
      map[k] = v
      list[#list + 1] = { k, v }
    end
  end
  return map, list
end

local function check(cond, what, ...)
  if not cond then error(("invariant broken: " .. what):format(...), 2) end
end

-- The signers' canonicalisation over arbitrary query and header maps.
function T.sign_canonical(s)
  local sign = require "trainctl.sign"
  local half = #s // 2
  local query = records(s:sub(1, half))
  local headers = records(s:sub(half + 1))
  local path = "/" .. (s:match("^[^\n]*") or "")
  local ok, auth, creq, sts = pcall(sign.acs3, { method = "GET", path = path, query = query,
    headers = headers, body = s, access_key = "ak", secret = "sk" })
  if not ok then
    -- the one documented refusal: a header name that is not a token
    check(tostring(auth):match("invalid header name"), "acs3 raised %s", tostring(auth))
    for name in pairs(headers) do
      if not name:match("^[%w!#$%%&'*+%-.^_`|~]+$") then return end
    end
    check(false, "acs3 refused valid header names")
  end
  check(auth:match("^ACS3%-HMAC%-SHA256 Credential=ak,SignedHeaders=[^,]*,Signature=%x+$"),
    "acs3 authorization shape: %q", auth)
  check(#auth:match("Signature=(%x+)$") == 64, "acs3 signature length")
  check(creq:sub(1, 4) == "GET\n", "canonical request starts with the method")
  check(sts:match("^ACS3%-HMAC%-SHA256\n%x+$"), "acs3 string to sign: %q", sts)
  -- Canonical query keys are percent-encoded: no raw separators inside.
  local cquery = creq:match("^GET\n[^\n]*\n([^\n]*)\n")
  if cquery then
    for pair in cquery:gmatch("[^&]+") do
      check(pair:match("^[%w%-_.~%%]*=[%w%-_.~%%]*$"), "canonical query pair %q", pair)
    end
  end
  local sig, sts2 = sign.acs_v2{ method = "POST", path = path, query = query,
    headers = headers, secret = "sk" }
  check(#sig == 28 and sig:match("^[%w+/]+=$"), "acs_v2 signature shape %q", sig)
  check(sts2:sub(1, 5) == "POST\n", "acs_v2 string to sign starts with the verb")
  local ncp = sign.ncp_v2{ method = "get", uri = path, timestamp = "1", access_key = "a",
    secret_key = s }
  check(#ncp == 44, "ncp_v2 signature length %d", #ncp)
end

-- ISO 8601 and HTTP dates: parse returns a number or nil, err; what
-- parses formats back to a string that parses to the same second.
function T.dates(s)
  local sys = require "trainctl.sys"
  local t, err = sys.parse_iso8601(s)
  check(t ~= nil or type(err) == "string", "iso8601 result")
  if t and t > -62135596800 and t < 253402300799 then
    local back = sys.parse_iso8601(sys.format_iso8601(t))
    check(back == math.floor(t), "iso8601 round trip of %q: %s vs %s", s, tostring(back), tostring(t))
  end
  local h, herr = sys.parse_rfc1123(s)
  check(h ~= nil or type(herr) == "string", "rfc1123 result")
  if h and h >= 0 and h < 253402300799 then
    check(sys.parse_rfc1123(sys.format_rfc1123(h)) == h, "rfc1123 round trip of %q", s)
  end
end

-- base64 and hex: decode rejects or round-trips; encode always decodes.
function T.codec(s)
  local c = require "trainctl.crypto"
  check(c.base64_decode(c.base64_encode(s)) == s, "base64 round trip")
  check(c.hex_decode(c.hex_encode(s)) == s, "hex round trip")
  local d = c.base64_decode(s)
  if d then check(c.base64_encode(d) == s, "base64 canonical form %q", s) end
  local h = c.hex_decode(s)
  if h then check(c.hex_encode(h) == s:lower(), "hex canonical form") end
end

-- Quiet, fast stand-ins for the outside world: the log goes to a buffer,
-- sleeps are recorded, requests answered by the target.
local captured, slept, answer = {}, {}, nil
local function world()
  local log = require("trainctl.log")
  local http = require("trainctl.http")
  local wait = require("trainctl.wait")
  log.set_sink(function(line) captured[#captured + 1] = line end)
  wait.sleep = function(d) slept[#slept + 1] = d end
  http.request = function(o) return answer(o) end
  return http, log
end

local function fresh()
  for i = #captured, 1, -1 do captured[i] = nil end
  for i = #slept, 1, -1 do slept[i] = nil end
end

local function is_delay(v)
  return type(v) == "number" and v == v and v >= 0
end

-- Retry-After, x-acs-retry-after, retry-after-ms: a parse is nil or a
-- delay >= 0; what a retry or a poll then waits never exceeds
-- max_retry_after, and a longer request is warned about; nor is it below
-- min_retry_after.
function T.retry_after(s)
  local http, log = world()
  local json = require("trainctl.json")
  local _, list = records(s)
  local headers = {}
  for _, kv in ipairs(list) do headers[kv[1]:lower()] = kv[2] end
  local v = http.retry_after(headers)
  check(v == nil or is_delay(v), "retry_after gave %s", tostring(v))
  local cap = http.retry_defaults.max_retry_after
  local floor = http.retry_defaults.min_retry_after
  log.set_level("warn")

  -- A retried request: one 503 with these headers, then a success.
  fresh()
  local n = 0
  answer = function()
    n = n + 1
    if n == 1 then return { status = 503, headers = headers, body = "" } end
    return { status = 200, headers = {}, body = "{}" }
  end
  local ok, err = pcall(http.send, { provider = "fuzz", method = "GET", url = "http://127.0.0.1:9/x",
    retry = { attempts = 2, max_time = math.huge } })
  check(ok, "send failed: %s", tostring(err))
  check(#slept == 1 and is_delay(slept[1]) and slept[1] <= cap, "send slept %s",
    tostring(slept[1]))
  if v and v > cap then
    check(slept[1] == cap and table.concat(captured):find("asked to retry after", 1, true),
      "a Retry-After of %s was not capped with a warning", tostring(v))
  elseif v then
    check(slept[1] == math.max(v, floor), "send slept %s, not the %s asked for (at least %s)",
      tostring(slept[1]), tostring(v), tostring(floor))
  end

  -- A lost create: the lookup finds nothing, the next try succeeds.
  fresh()
  n = 0
  answer = function()
    n = n + 1
    if n == 1 then return { status = 503, headers = headers, body = "" } end
    return { status = 200, headers = {}, body = "{}" }
  end
  ok, err = pcall(http.create_once, {
    create = function() return http.send({ provider = "fuzz", method = "POST",
      url = "http://127.0.0.1:9/x", retry = false }) end,
    lookup = function() return nil end, retry = { attempts = 2 } })
  check(ok, "create_once failed: %s", tostring(err))
  check(#slept == 1 and is_delay(slept[1]) and slept[1] <= cap, "create_once slept %s",
    tostring(slept[1]))

  -- A job status that asks the poller to come back later.
  fresh()
  local azure = require("trainctl.azure_language")
  local c = azure.client({ endpoint = "http://127.0.0.1:9", key = "fuzz-azure-key" })
  n = 0
  answer = function()
    n = n + 1
    local st = n == 1 and "running" or "succeeded"
    return { status = 200, headers = headers, body = json.encode({ status = st, jobId = "j" }) }
  end
  local j = c:job({ path = "/language/x/jobs/j?api-version=1", kind = "operation", label = "fuzz" })
  ok, err = pcall(j.wait, j, { quiet = true })
  check(ok, "job wait failed: %s", tostring(err))
  for _, d in ipairs(slept) do
    check(is_delay(d) and d <= cap and (v == nil or d >= floor), "a poll slept %s for Retry-After %s",
      tostring(d), tostring(v))
  end
end

-- Path segments and query strings built from arbitrary ids: the request
-- target keeps its shape, and the server decodes exactly what was given.
local ROUTE
function T.request_target(s)
  local ops = require("trainctl.ops")
  local http = require("trainctl.http")
  ROUTE = ROUTE or ops.define({ "fuzz_op", "POST", "/services/{serviceId}/trains/{trainVersion}",
    query = { "type!", "limit:integer" } })
  local half = #s // 2
  local a, b = s:sub(1, half), s:sub(half + 1)
  for _, x in ipairs({ a, b, s }) do
    check(ops.decode(ops.encode(x)) == x, "decode(encode(%q))", x)
    check(not ops.encode(x):find("[^%w%-._~%%]"), "encode(%q) left a reserved byte", x)
  end
  if a ~= "" and b ~= "" then
    local req = ops.build(ROUTE, ops.args(ROUTE, a, b, { type = s, query = { [a] = b } }))
    local url = "http://h:1/api" .. req.path .. "?" .. ops.query_string(req.query)
    local u = http.parse_url(url)
    check(u.host == "h:1", "host became %q", u.host)
    local seg = {}
    for x in (u.path .. "/"):gmatch("([^/]*)/") do seg[#seg + 1] = x end
    check(#seg == 6 and seg[1] == "" and seg[2] == "api" and seg[3] == "services"
      and seg[5] == "trains", "path %q lost its shape", u.path)
    for i = 4, 6, 2 do
      check(seg[i] ~= "." and seg[i] ~= ".." and seg[i] ~= "", "segment %q", seg[i])
      check(seg[i]:match("^[%w%-._~%%]+$"), "raw byte in segment %q", seg[i])
    end
    check(ops.decode(seg[4]) == a and ops.decode(seg[6]) == b, "segments do not decode back")
    local q = ops.parse_query(u.query)
    if a ~= "type" then
      check(q.type == s, "query type %q ~= %q", tostring(q.type), s)
      check(q[a] == b, "query %q=%q lost", a, b)
    end
  else
    local ok, err = pcall(ops.segment, "")
    check(not ok and require("trainctl.errors").is(err, "usage"), "an empty segment passed")
  end
  -- Numbers keep their value on the wire.
  local n = tonumber(s)
  if n and n == n and n ~= math.huge and n ~= -math.huge then
    check(tonumber(ops.text(n)) == n, "text(%s) = %q", tostring(n), ops.text(n))
  end
  -- A query given as one string is sent as is (the caller encoded it).
  check(ops.to_query("?" .. a) == a, "to_query of a string")
end

-- Provider answers of any status, header and body, through each client
-- (send, decode, classify, the error object): a result, or one of the
-- documented error objects with string fields, and no secret of the
-- request anywhere in it or in the trace log.
local SECRETS = {
  aitems = { "fuzz-ncp-secret-key-0123", "fuzz-ncp-access-key-0123" },
  opensearch = { "fuzz-acs-key-secret-0123", "fuzz-acs-key-id-0123" },
  azure_language = { "fuzz-azure-language-key-01" },
  entra = { "fuzz-client-secret-0123", "fuzz-client-id-0123" },
}
local MODES = { "aitems", "opensearch", "opensearch_v2", "azure_key", "entra_token", "entra_api" }

local function client_for(mode)
  local endpoint = "http://127.0.0.1:9"
  if mode == "aitems" then
    return require("trainctl.aitems").client({ endpoint = endpoint .. "/api/v1", retry = false,
      access_key = SECRETS.aitems[2], secret_key = SECRETS.aitems[1] }), "/services"
  elseif mode == "opensearch" or mode == "opensearch_v2" then
    return require("trainctl.opensearch").client({ endpoint = endpoint, retry = false,
      app_group = "a", function_name = "f",
      access_key_id = SECRETS.opensearch[2], access_key_secret = SECRETS.opensearch[1],
      signature = mode == "opensearch" and "v3" or "v2" }), "/v4/openapi/app-groups/a/functions/f"
  elseif mode == "azure_key" then
    return require("trainctl.azure_language").client({ endpoint = endpoint, retry = false,
      key = SECRETS.azure_language[1] }), "/language/authoring/analyze-text/projects"
  end
  return require("trainctl.azure_language").client({ endpoint = endpoint, retry = false,
    tenant_id = "t", client_id = SECRETS.entra[2], client_secret = SECRETS.entra[1],
    authority = endpoint }), "/language/authoring/analyze-text/projects"
end

-- Everything a request carried that must stay secret.
local function sent_secrets(o, list)
  local h = o.headers or {}
  for _, name in ipairs({ "x-ncp-apigw-signature-v2", "ocp-apim-subscription-key" }) do
    if h[name] then list[#list + 1] = h[name] end
  end
  local auth = h.authorization or ""
  list[#list + 1] = auth:match("Signature=(%x+)") or auth:match("^acs [^:]+:(.+)$")
end

local function scan(v, list, where, seen)
  seen = seen or {}
  if type(v) == "string" then
    for _, secret in ipairs(list) do
      check(not v:find(secret, 1, true), "secret %q in %s: %q", secret, where, v)
    end
  elseif type(v) == "table" and not seen[v] then
    seen[v] = true
    for k, x in pairs(v) do
      scan(k, list, where, seen)
      scan(x, list, where .. "." .. tostring(k), seen)
    end
  end
end

-- A job of the provider whose status poll reads the answer.
local function job_for(mode, c, b)
  local pick = b // (8 * #MODES) % 2
  if mode == "aitems" then
    if pick == 0 then return c:dataset_job("d1") end
    return c:training_job({ service_id = "s1", types = { "pop", "relatedItem" }, before = { "v0" } })
  elseif mode == "opensearch" or mode == "opensearch_v2" then
    return c:training_job({ instance_name = "i1", generation = pick == 0 and "2" or nil, before = "1" })
  elseif mode == "azure_key" then
    local kinds = { "training", "analyze", "operation" }
    return c:job({ path = "/language/x/jobs/j1?api-version=2023-04-01", label = "fuzz",
      kind = kinds[b // (8 * #MODES) % 3 + 1] })
  end
end

function T.provider_errors(s)
  -- Forget the tokens earlier inputs registered as secrets.
  require("trainctl.log")._reset()
  local _, log = world()
  local errors = require("trainctl.errors")
  fresh()
  local mode = MODES[(s:byte(1) or 0) % #MODES + 1]
  -- A trace log of every request and answer for one input in four (it
  -- costs most of the time of an input).
  log.set_level((s:byte(1) or 0) // (2 * #MODES) % 4 == 0 and "trace" or "debug")
  local status = 100 + ((s:byte(2) or 0) * 256 + (s:byte(3) or 0)) % 500
  local head, body = s:sub(4):match("^(.-)\n\n(.*)$")
  if not head then head, body = "", s:sub(4) end
  local c, path = client_for(mode)
  local provider = mode:match("^[a-z]+")
  local secrets = {}
  for _, x in ipairs(SECRETS[provider == "azure" and "azure_language" or provider]) do
    secrets[#secrets + 1] = x
  end
  if mode == "entra_api" then secrets[#secrets + 1] = "fuzz-issued-token-0123" end
  local function respond(o)
    sent_secrets(o, secrets)
    -- $S, $A and $G stand for the secret, the key id and what the request
    -- was signed with: a server echoing them back.
    local map = { S = secrets[1], A = secrets[2] or secrets[1], G = secrets[#secrets] }
    local function fill(x) return (x:gsub("%$([SAG])", map)) end
    local headers = {}
    for line in (head .. "\n"):gmatch("([^\n]*)\n") do
      local k, v = line:match("^([^:]+):%s*(.*)$")
      if k then headers[k:lower()] = fill(v) end
    end
    return { status = status, headers = headers, body = fill(body) }
  end
  answer = function(o)
    if mode == "entra_api" and o.url:find("/oauth2/", 1, true) then
      return { status = 200, headers = {},
        body = '{"access_token":"fuzz-issued-token-0123","expires_in":3600}' }
    end
    return respond(o)
  end
  local method = (s:byte(1) or 0) // #MODES % 2 == 0 and "POST" or "GET"
  local ok, err = pcall(c.call, c, method, path, { body = { name = "x" }, retry = false })
  if not ok then
    check(errors.is(err), "raised a %s: %s", type(err), tostring(err))
    check(errors.KINDS[err.kind], "kind %s", tostring(err.kind))
    check(type(err.message) == "string", "message is a %s", type(err.message))
    for _, f in ipairs({ "code", "request_id", "provider", "method", "url" }) do
      check(err[f] == nil or type(err[f]) == "string", "%s is a %s", f, type(err[f]))
    end
    for _, f in ipairs({ "code", "request_id", "message" }) do
      check(not (err[f] or ""):find("^%a+: 0x%x+$") and not (err[f] or ""):find("^userdata: "),
        "%s is the name of a Lua value: %s", f, tostring(err[f]))
    end
    check(err.status == nil or math.type(err.status) == "integer", "status %s", tostring(err.status))
    check(err.retry_after == nil or is_delay(err.retry_after), "retry_after %s",
      tostring(err.retry_after))
    scan(tostring(err), secrets, "the error text")
    scan(err, secrets, "the error")
  end
  -- The same answer to a job's status poll: a status in the shared
  -- vocabulary (progress 0..100), shown on the progress line, or an error
  -- object.
  local j = job_for(mode, c, s:byte(1) or 0)
  if j then
    local STOP = {}
    local job = require("trainctl.job")
    -- An answer that may pass (a 5xx, a body cut short) is an outage to
    -- the wait: with a budget of 1 s on a clock that only the sleeps move,
    -- it is polled twice, warned about, then raised.
    local wait = require("trainctl.wait")
    local clock, sleep, now = wait.clock, wait.sleep, 0
    wait.clock = function() return now end
    wait.sleep = function(d)
      now = now + d
      sleep(d)
    end
    ok, err = pcall(j.wait, j, { outage = 1, on_progress = function(st)
      check(job.STATES[st.state], "state %s", tostring(st.state))
      local p = st.progress
      check(p == nil or (type(p) == "number" and p >= 0 and p <= 100), "progress %s", tostring(p))
      check(st.message == nil or type(st.message) == "string", "status message is a %s",
        type(st.message))
      error(STOP, 0)
    end })
    wait.clock, wait.sleep = clock, sleep
    check(not ok and (err == STOP or errors.is(err)), "job status raised %s", tostring(err))
    if err ~= STOP then scan(tostring(err), secrets, "the job error") end
  end
  scan(table.concat(captured), secrets, "the log")
end

return T
