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

return T
