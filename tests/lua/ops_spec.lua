local ops = require("trainctl.ops")
local errors = require("trainctl.errors")

describe("trainctl.ops", function()
  describe("names", function()
    it("turns wire names into snake_case", function()
      assert.equal("service_id", ops.snake("serviceId"))
      assert.equal("is_recent", ops.snake("isRecent"))
      assert.equal("resource_name", ops.snake("ResourceName"))
      assert.equal("app_group_identity", ops.snake("appGroupIdentity"))
      assert.equal("type", ops.snake("type"))
    end)
  end)

  describe("percent-encoding", function()
    it("keeps only unreserved characters", function()
      assert.equal("a-b_c.d~e", ops.encode("a-b_c.d~e"))
      assert.equal("a%20b%2Fc%3Fd%26e%3Df%23g%25", ops.encode("a b/c?d&e=f#g%"))
      assert.equal("%C3%A9", ops.encode("é"))
    end)

    it("never lets an id change the request target", function()
      assert.equal("..%2Fx", ops.segment("../x"))
      assert.equal("a%2Fb%3Fc", ops.segment("a/b?c"))
      assert.equal("%2E%2E", ops.segment(".."))
      assert.equal("%2E", ops.segment("."))
      local ok, err = pcall(ops.segment, "", "service_id")
      assert.is_false(ok)
      assert.is_true(errors.is(err, "usage"))
      assert.matches("service_id", err.message)
    end)

    it("writes integral numbers without a fraction", function()
      assert.equal("3", ops.text(3.0))
      assert.equal("1722306336558", ops.text(1722306336558.0))
      assert.equal("true", ops.text(true))
      assert.equal("a,b", ops.text({ "a", "b" }))
    end)

    it("builds and parses query strings", function()
      assert.equal("b=2&a=x%20y", ops.to_query({ { "b", 2 }, { "a", "x y" } }))
      assert.equal("a=1&b=2", ops.to_query({ b = 2, a = 1 }))
      assert.equal("raw=1", ops.to_query("?raw=1"))
      assert.same({ a = "x y", ["k&"] = "v=" }, ops.parse_query("a=x%20y&k%26=v%3D"))
    end)
  end)

  local spec = ops.define {
    "list_trains", "GET", "/services/{serviceId}/trains",
    query = { "offset:integer", "limit:integer", "isRecent:boolean" },
  }
  local post = ops.define {
    "train", "POST", "/services/{serviceId}", body = { "types:array!", "hpConfig:object" },
    defaults = { hpConfig = { is_enabled = false } },
  }
  local fixed = ops.define {
    "stop", "PUT", "/s/{id}/schedule", fixed_query = { { "action", "stop" } }, query = { "x" },
  }

  describe("define", function()
    it("reads path parameters from the template and declarations", function()
      assert.equal(4, #spec.params)
      assert.same({ "service_id", "path", true }, { spec.params[1].name, spec.params[1].where,
        spec.params[1].required })
      assert.equal("boolean", spec.params[4].type)
      assert.is_true(post.params[2].required)
      assert.is_true(post.has_body)
    end)
  end)

  describe("args and build", function()
    it("accepts positional path parameters, snake and wire names", function()
      local a = ops.args(spec, "svc1", { is_recent = true, limit = 5 })
      local r = ops.build(spec, a)
      assert.equal("/services/svc1/trains", r.path)
      assert.equal("limit=5&isRecent=true", ops.query_string(r.query))
      local b = ops.build(spec, ops.args(spec, { serviceId = "s", isRecent = false }))
      assert.equal("/services/s/trains", b.path)
      assert.equal("isRecent=false", ops.query_string(b.query))
    end)

    it("encodes path parameters per segment", function()
      local r = ops.build(spec, ops.args(spec, "a/b?c"))
      assert.equal("/services/a%2Fb%3Fc/trains", r.path)
    end)

    it("refuses unknown parameters and too many positionals", function()
      local ok, err = pcall(ops.args, spec, "s", { is_recnt = true })
      assert.is_false(ok)
      assert.is_true(errors.is(err, "usage"))
      assert.matches("is_recnt", err.message)
      assert.matches("is_recent", err.message)
      ok, err = pcall(ops.args, spec, "s", "t")
      assert.is_false(ok)
      assert.is_true(errors.is(err, "usage"))
    end)

    it("requires required parameters and fills defaults", function()
      local ok, err = pcall(ops.build, post, ops.args(post, "s", {}))
      assert.is_false(ok)
      assert.matches("missing required parameter types", err.message)
      local r = ops.build(post, ops.args(post, "s", { types = { "pop" } }))
      assert.same({ types = { "pop" }, hpConfig = { is_enabled = false } }, r.body)
    end)

    it("merges a raw body and extra query", function()
      local r = ops.build(post, ops.args(post, "s", { types = { "pop" }, body = { extra = 1 },
        query = { z = "1" } }))
      assert.equal(1, r.body.extra)
      assert.equal("z=1", ops.query_string(r.query))
    end)

    it("puts fixed query parameters first", function()
      local r = ops.build(fixed, ops.args(fixed, "i", { x = "y" }))
      assert.equal("action=stop&x=y", ops.query_string(r.query))
    end)

    it("takes defaults from the client", function()
      local s = ops.define { "g", "GET", "/a/{appGroupIdentity}/f/{functionName}" }
      local r = ops.build(s, ops.args(s, { function_name = "ctr" }), { app_group_identity = "app" })
      assert.equal("/a/app/f/ctr", r.path)
    end)
  end)

  describe("coerce", function()
    it("converts command-line text to the parameter's type", function()
      assert.equal(5, ops.coerce({ name = "n", type = "integer" }, "5"))
      assert.is_true(ops.coerce({ name = "b", type = "boolean" }, "true"))
      assert.is_false(ops.coerce({ name = "b", type = "boolean" }, "no"))
      assert.same({ "a", "b" }, ops.coerce({ name = "l", type = "array" }, "a,b"))
      assert.same({ "a" }, ops.coerce({ name = "l", type = "array" }, '["a"]'))
      assert.same({ x = 1 }, ops.coerce({ name = "o", type = "object" }, '{"x":1}'))
      assert.equal("s", ops.coerce({ name = "s", type = "string" }, "s"))
      local ok, err = pcall(ops.coerce, { name = "n", type = "integer" }, "x")
      assert.is_false(ok)
      assert.is_true(errors.is(err, "usage"))
    end)
  end)

  describe("find and help", function()
    it("finds operations ignoring case, dashes and underscores", function()
      assert.equal(spec, ops.find({ spec, post }, "list-trains"))
      assert.equal(spec, ops.find({ spec, post }, "ListTrains"))
      assert.is_nil(ops.find({ spec }, "nope"))
    end)

    it("lists parameters with their types", function()
      local h = ops.help_op(spec)
      assert.matches("is_recent=<boolean>", h, 1, true)
      assert.matches("service_id=<string>  %(required", h)
    end)
  end)
end)
