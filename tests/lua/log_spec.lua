local support = require("support.doubles")
local log = require("trainctl.log")

describe("trainctl.log", function()
  local logs
  before_each(function()
    log._reset()
    logs = support.logs("info")
  end)
  after_each(function()
    logs.restore()
    log._reset()
  end)

  describe("redact", function()
    it("removes a request's secrets while it is held, and for the 32 requests after", function()
      local sig = ("ab12"):rep(16)
      local list = log.hold({})
      list[#list + 1] = sig -- a signer fills the list after the hold
      assert.equal("x [REDACTED] y [REDACTED]", log.redact("x " .. sig .. " y " .. sig:upper()))
      log.release(list)
      assert.equal("x [REDACTED]", log.redact("x " .. sig))
      for i = 1, 31 do log.release(log.hold({ "other-signature-" .. i })) end
      assert.equal("x [REDACTED]", log.redact("x " .. sig))
      log.release(log.hold({ "other-signature-32" }))
      assert.equal("x " .. sig, log.redact("x " .. sig))
    end)

    it("finds every form of a held secret among thousands held, and forgets the lists let go of", function()
      local lists = {}
      for i = 1, 2000 do
        lists[i] = log.hold({ ("%04dsig+/%032x"):format(i, i), "Bearer token-" .. i })
      end
      local sig = lists[1234][1]
      local text = table.concat({ "plain " .. sig, "json " .. sig:gsub("/", "\\/"),
        "query ?s=" .. sig:gsub("[+/]", { ["+"] = "%2B", ["/"] = "%2F" }) .. "&x=1",
        "inside abc" .. sig .. "def", "header Bearer token-1234." }, "\n")
      local redacted = log.redact(text)
      assert.equal(table.concat({ "plain [REDACTED]", "json [REDACTED]", "query ?s=[REDACTED]&x=1",
        "inside abc[REDACTED]def", "header [REDACTED]." }, "\n"), redacted)
      -- Released, then pushed out by 32 later requests: no longer held.
      for i = 1, 2000 do log.release(lists[i]) end
      for i = 1, 32 do log.release(log.hold({ "later-signature-" .. i })) end
      assert.equal("plain " .. sig, log.redact("plain " .. sig))
      -- A list dropped while held (its request abandoned) is let go of too.
      local dropped = ("%064x"):format(99)
      log.hold({ dropped })
      assert.equal("[REDACTED]", log.redact(dropped))
      collectgarbage("collect")
      collectgarbage("collect")
      assert.equal(dropped, log.redact(dropped))
    end)

    it("removes registered secrets wherever they appear", function()
      log.add_secret("s3cr3t-value")
      assert.equal("a [REDACTED] b", log.redact("a s3cr3t-value b"))
      assert.equal('{"message":"bad key [REDACTED]"}', log.redact('{"message":"bad key s3cr3t-value"}'))
    end)

    it("keeps the first characters of an access key id", function()
      log.add_secret("AKIDEXAMPLE123", { partial = true })
      assert.equal("key AKID****", log.redact("key AKIDEXAMPLE123"))
    end)

    it("recognises credentials it was never told about", function()
      assert.equal("Authorization: Bearer [REDACTED]", log.redact("Authorization: Bearer eyJhbGciOi.x-y_z"))
      assert.equal("acs AK:[REDACTED]", log.redact("acs AK:NJPC17SOU3nXZt7KEZNHFv+TTfA="))
      assert.matches("Signature=%[REDACTED%]",
        log.redact("ACS3-HMAC-SHA256 Credential=a,SignedHeaders=host,Signature=22fe33c2a8798ca1"))
      assert.equal('{"client_secret":"[REDACTED]","x":1}', log.redact('{"client_secret":"abc","x":1}'))
      assert.equal("grant_type=client_credentials&client_secret=[REDACTED]&scope=s",
        log.redact("grant_type=client_credentials&client_secret=abc%2F&scope=s"))
      assert.equal('{"access_token":"[REDACTED]"}', log.redact('{"access_token":"eyJ"}'))
    end)

    it("recognises secret names in any case, in free text too, an Azure SAS sig among them", function()
      assert.equal("failed: Token=[REDACTED] x", log.redact("failed: Token=abc123 x"))
      assert.equal("Password=[REDACTED]", log.redact("Password=hunter2"))
      assert.equal("bad Signature=[REDACTED]&x=1", log.redact("bad Signature=AbC+/dE0123==&x=1"))
      assert.equal('{"Password":"[REDACTED]","AccessKeySecret":"[REDACTED]"}',
        log.redact('{"Password":"x","AccessKeySecret":"y"}'))
      assert.equal("GET /c/b.csv?sv=2022-11-02&sig=[REDACTED]&sp=r",
        log.redact("GET /c/b.csv?sv=2022-11-02&sig=AbCdEf0123456789%2BSASsig%3D&sp=r"))
      assert.equal("[REDACTED]", log.redact({ Sig = "abc" }).Sig)
      -- A name inside a longer word is not that name.
      assert.equal("x-token=t1 design=d assign=a", log.redact("x-token=t1 design=d assign=a"))
    end)

    it("redacts tables by key name and deeply", function()
      local t = log.redact({
        headers = { authorization = "x", ["ocp-apim-subscription-key"] = "k",
          ["x-ncp-apigw-signature-v2"] = "sig", accept = "application/json" },
        nested = { { client_secret = "c", name = "n" } },
      })
      assert.equal("[REDACTED]", t.headers.authorization)
      assert.equal("[REDACTED]", t.headers["ocp-apim-subscription-key"])
      assert.equal("[REDACTED]", t.headers["x-ncp-apigw-signature-v2"])
      assert.equal("application/json", t.headers.accept)
      assert.equal("[REDACTED]", t.nested[1].client_secret)
      assert.equal("n", t.nested[1].name)
    end)

    it("takes extra literals for one call", function()
      assert.equal("x [REDACTED]", log.redact("x abcdef", { "abcdef" }))
    end)

    it("removes a secret quoted with / escaped in JSON or percent-encoded", function()
      local sig = "k1/Ab+cD=="
      log.add_secret(sig)
      assert.equal('{"message":"signature [REDACTED] is wrong"}',
        log.redact('{"message":"signature k1\\/Ab+cD== is wrong"}'))
      assert.equal("sig=[REDACTED]&x=1", log.redact("sig=k1%2FAb%2BcD%3D%3D&x=1"))
      assert.equal("x [REDACTED]", log.redact("x a\\/b+c", { "a/b+c" }))
    end)
  end)

  describe("levels and formats", function()
    it("prints only enabled levels", function()
      log.debug("hidden")
      log.info("shown", { n = 1 })
      local text = logs.text()
      assert.not_matches("hidden", text)
      assert.matches("info  shown n=1\n$", text)
      assert.is_true(log.enabled("warn"))
      assert.is_false(log.enabled("trace"))
    end)

    it("writes JSON lines", function()
      log.set_format("json")
      log.warn("careful", { key = "v" })
      local rec = support.json(logs.text())
      assert.equal("warn", rec.level)
      assert.equal("careful", rec.msg)
      assert.equal("v", rec.key)
      assert.matches("^%d%d%d%d%-%d%d%-%d%dT", rec.time)
    end)

    it("never prints a secret, even in fields", function()
      log.add_secret("topsecretvalue")
      log.error("failed with topsecretvalue", { body = '{"m":"topsecretvalue"}', secret = "zzzz" })
      assert.not_matches("topsecretvalue", logs.text())
      assert.not_matches("zzzz", logs.text())
    end)

    it("refuses an unknown level as a usage error", function()
      local ok, err = pcall(log.set_level, "loud")
      assert.is_false(ok)
      assert.equal("usage", err.kind)
    end)
  end)
end)
