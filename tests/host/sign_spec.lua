-- sign.ncp_v2 recomputed by another implementation, the openssl command
-- line, for random requests (the vectors are in tests/unit/test_sign.c).

local H = require "support"
local sign = require "trainctl.sign"

local alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
local uri_chars = alnum .. "-._~%/=&?+*,;:@!$'()"

local function random_string(chars, min, max)
  local out = {}
  for i = 1, math.random(min, max) do
    local k = math.random(#chars)
    out[i] = chars:sub(k, k)
  end
  return table.concat(out)
end

local function random_request()
  local methods = { "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD" }
  local uri = "/api/v1/" .. random_string(uri_chars, 0, 60)
  if math.random(3) == 1 then uri = uri .. "/\xea\xb0\x80\xeb\x82\x98" end -- raw UTF-8
  return {
    method = methods[math.random(#methods)],
    uri = uri,
    timestamp = tostring(math.random(1000000000000, 1999999999999)),
    access_key = random_string(alnum, 1, 40),
    secret_key = random_string(alnum .. "-_.+/=", 1, 80),
  }
end

describe("sign.ncp_v2", function()
  it("agrees with openssl dgst -sha256 -hmac for 50 random requests", function()
    local seed = os.time()
    math.randomseed(seed)
    local dir = H.tmpdir()
    local reqs, script = {}, {}
    for i = 1, 50 do
      local r = random_request()
      reqs[i] = r
      H.write(("%s/msg%d"):format(dir, i),
        r.method .. " " .. r.uri .. "\n" .. r.timestamp .. "\n" .. r.access_key)
      script[i] = ("openssl dgst -sha256 -hmac %s -binary < msg%d | base64"):format(H.quote(r.secret_key), i)
    end
    local res = H.sh(table.concat(script, "\n"), { cwd = dir })
    H.rmdir(dir)
    assert.equal(0, res.code, res.err)
    local want = {}
    for line in res.out:gmatch("[^\n]+") do want[#want + 1] = line end
    assert.equal(50, #want)
    for i, r in ipairs(reqs) do
      assert.equal(want[i], sign.ncp_v2(r), ("seed %d: %s %s"):format(seed, r.method, r.uri))
    end
  end)
end)
