-- The workflow the README shows is real: it runs against the emulator
-- and prints recommendations learned from the sample data.
local support = require("support")
local cloudsim = require("support.cloudsim")

describe("the README workflow", function()
  local sim = cloudsim.new({ poll_interval = "0.2", speed = 600 })
  setup(function() sim:start() end)
  teardown(function() sim:stop() end)

  it("trains once and prints a user's recommended items", function()
    local readme = support.read("README.md")
    local code = readme:match("## A workflow.-```lua\n(.-)```")
    assert.is_string(code, "README has a Lua code block under 'A workflow'")
    local lines = select(2, code:gsub("\n", ""))
    assert.is_true(lines < 20, "the README workflow is under 20 lines")
    local script = sim.dir .. "/readme_workflow.lua"
    local f = assert(io.open(script, "w"))
    f:write(code)
    f:close()
    local status, out, err = sim:run({ script })
    assert.equal(0, status, err)
    local items = {}
    for id in out:gmatch("i%d%d%d") do items[#items + 1] = id end
    assert.is_true(#items >= 10, "recommendations printed: " .. out)
    assert.equal(1, #sim:requests({ operation = "CreateTrain" }))
  end)
end)
