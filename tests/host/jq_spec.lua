-- trainctl.jq: jq's own language through libjq, loaded only when a
-- filter runs, so that a start-up never pays for it.

local H = require "support"
local jq = require "trainctl.jq"

describe("trainctl.jq", function()
  it("runs a filter and returns every result as compact JSON", function()
    assert.same({ "1", '"two"', '{"a":[3]}' },
      jq.run(".list[]", '{"list":[1,"two",{"a":[3]}]}'))
    assert.same({ "[2,4]" }, jq.run("map(. * 2)", "[1,2]"))
    assert.same({}, jq.run("empty", "null"))
  end)

  it("reports a filter that does not compile in one line", function()
    local r, err = jq.run(".a[", "{}")
    assert.is_nil(r)
    assert.matches("^jq: error: syntax error", err)
    assert.is_nil(err:find("\n"))
  end)

  it("reports an error the filter raises, and input that is not JSON", function()
    local r, err = jq.run(".a.b", "[1]")
    assert.is_nil(r)
    assert.equal('jq: error: Cannot index array with string "a"', err)
    r, err = jq.run('error("custom")', "{}")
    assert.is_nil(r)
    assert.equal("jq: error: custom", err)
    r, err = jq.run(".", "{bad")
    assert.is_nil(r)
    assert.matches("^jq: error: ", err)
  end)

  it("shows a filter no environment variable (credentials live there)", function()
    local r = H.run({ "-e", "print(require('trainctl.jq').run('[env, $ENV]', 'null')[1], "
      .. "os.getenv('NCLOUD_SECRET_KEY'))" }, { env = { NCLOUD_SECRET_KEY = "sk-jq-test" } })
    assert.equal(0, r.code, r.err)
    assert.equal("[{},{}]\tsk-jq-test\n", r.out)
  end)

  it("is not loaded at start-up, only when a filter runs", function()
    local probe = "local function loaded() for l in io.lines('/proc/self/maps') do "
      .. "if l:find('libjq', 1, true) then return true end end return false end "
      .. "io.write(tostring(loaded()), ' ') require('trainctl.jq').run('.', '1') print(loaded())"
    local r = H.run { "-e", probe }
    assert.equal(0, r.code, r.err)
    assert.equal("false true\n", r.out)
  end)
end)
