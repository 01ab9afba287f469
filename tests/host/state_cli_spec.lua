-- `trainctl state list|show|forget` names its store: without --state or
-- --script it asks which one, and a state file that is not there is said
-- to be missing, never listed as an empty store.

local H = require "support"

describe("trainctl state", function()
  local dir

  before_each(function() dir = H.tmpdir() end)
  after_each(function() H.rmdir(dir) end)

  local function run(args)
    return H.run(args, { cwd = dir, clear = true, env = { HOME = dir, XDG_STATE_HOME = dir .. "/state" } })
  end

  it("asks which store when given neither --state nor --script", function()
    for _, args in ipairs({ { "state", "list" }, { "state", "show", "k" }, { "state", "forget", "k" } }) do
      local r = run(args)
      assert.equal(2, r.code, table.concat(args, " "))
      assert.equal("", r.out)
      assert.matches("^trainctl: usage error: trainctl state %a+: which store%? give %-%-state FILE|URL, "
        .. "or %-%-script SCRIPT", r.err)
      assert.equal(1, select(2, r.err:gsub("\n", "")))
    end
  end)

  it("says there is no state file at a path that does not exist", function()
    for _, args in ipairs({
      { "state", "list", "--state", dir .. "/nonexistent/x.json" },
      { "--state", dir .. "/nonexistent/x.json", "state", "show", "k" },
    }) do
      local r = run(args)
      assert.equal(1, r.code, table.concat(args, " "))
      assert.equal("", r.out)
      assert.equal(("trainctl: state error: no state file at %s/nonexistent/x.json (nothing was recorded there)\n")
        :format(dir), r.err)
    end
    local r = run({ "state", "list", "--script", "nightly.lua" })
    assert.equal(1, r.code)
    assert.matches("no state file at " .. dir:gsub("%p", "%%%0") .. "/state/trainctl/nightly%.json", r.err)
  end)

  it("lists a store that exists, and prints the default path without asking", function()
    H.write(dir .. "/s.json", '{"k":1}')
    local r = run({ "state", "list", "--state", dir .. "/s.json" })
    assert.equal(0, r.code, r.err)
    assert.equal('{"k":1}\n', r.out)
    r = run({ "state", "path" })
    assert.equal(0, r.code, r.err)
    assert.equal(dir .. "/state/trainctl/trainctl.json\n", r.out)
  end)
end)
