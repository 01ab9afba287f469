-- Regressions for what fuzzing found; each case failed before its fix.
local crypto = require "trainctl.crypto"
local json = require "trainctl.json"
local ops = require "trainctl.ops"
local sign = require "trainctl.sign"

describe("fuzz regressions", function()
  it("base64 with non-zero pad bits is rejected (one encoding per byte string)", function()
    assert.is_nil((crypto.base64_decode("Zm9=")))
    assert.is_nil((crypto.base64_decode("Zh==")))
    assert.equal("fo", crypto.base64_decode("Zm8="))
    assert.equal("f", crypto.base64_decode("Zg=="))
  end)

  it("a header name that is not a token cannot reach SignedHeaders", function()
    local ok, err = pcall(sign.acs3, { method = "GET", path = "/", query = {},
      headers = { ["x-acs-a,signature"] = "v" }, body = "", access_key = "ak", secret = "sk" })
    assert.is_false(ok)
    assert.matches("invalid header name", err)
    ok = pcall(sign.acs_v2, { method = "GET", path = "/", query = {},
      headers = { ["x-acs-a b"] = "v" }, secret = "sk" })
    assert.is_false(ok)
  end)

  it("an integer beyond 2^53 reaches the wire exactly (path, query, JSON body)", function()
    assert.equal("9007199254740993", ops.text(9007199254740993))
    assert.equal("9223372036854775807", ops.text(math.maxinteger))
    assert.equal("-9223372036854775808", json.number_string(math.mininteger))
    assert.equal('{"id":9007199254740993}', json.encode({ id = 9007199254740993 }))
    assert.equal("9007199254740992", ops.text(2.0 ^ 53))
    assert.equal("1e+20", ops.text(1e20))
  end)
end)
