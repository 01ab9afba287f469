-- The library lives by layer (trainctl.core.*, trainctl.api.*,
-- trainctl.providers.*), embedded in the binary; the names scripts use
-- (trainctl.aitems, trainctl.http, ...) reach the same modules, from the
-- binary and from a source tree (TRAINCTL_LUA_PATH).

-- The shared helpers: tests/support/ where the suites have it, else this
-- suite's own.
local has_support, H = pcall(require, "support")
if not has_support then
  package.path = "tests/host/?.lua;" .. package.path
  H = require "helper"
end
local sys = require "trainctl.sys"

-- Every public name gives the very table of its module: a test double or
-- a setting put on one is seen through the other.
local same = [[
local aliases = dofile("lua/trainctl/aliases.lua")
local n = 0
for public, real in pairs(aliases) do
  assert(require(public) == require(real), public)
  n = n + 1
end
require("trainctl.http").retry_defaults.attempts = 2
assert(require("trainctl.core.retry").defaults.attempts == 2)
print(n, require("trainctl.providers").find("azure").module)
]]

describe("the embedded library", function()
  it("answers the public names with the modules in their layers", function()
    local r = H.run({ "-e", same })
    assert.equal(0, r.code, r.err)
    assert.equal("9\ttrainctl.providers.azure_language\n", r.out)
  end)

  it("answers them the same from a source tree (TRAINCTL_LUA_PATH)", function()
    local r = H.run({ "-e", same }, { env = { TRAINCTL_LUA_PATH = H.cwd .. "/lua" } })
    assert.equal(0, r.code, r.err)
    assert.equal("9\ttrainctl.providers.azure_language\n", r.out)
  end)

  describe("overridden by a source tree", function()
    local dir
    setup(function()
      dir = H.tmpdir()
      assert(sys.mkdir_p(dir .. "/trainctl/core"))
      H.write(dir .. "/trainctl/core/wait.lua", "return { marker = 'core from the source tree' }\n")
    end)
    teardown(function() H.rmdir(dir) end)

    it("finds a module in a subdirectory, under its own name and its public one", function()
      local r = H.run({ "-e", "print(require('trainctl.core.wait').marker, require('trainctl.wait').marker)" },
        { env = { TRAINCTL_LUA_PATH = dir } })
      assert.equal(0, r.code, r.err)
      assert.equal("core from the source tree\tcore from the source tree\n", r.out)
    end)
  end)
end)
