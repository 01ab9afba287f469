-- luacheck: std +busted
-- The REPL with tasks, in a pseudo-terminal (tests/loop/repl_pty.py):
-- a line that spawns and joins tasks prints the result; Ctrl-C while 100
-- tasks sleep returns to the prompt, the sleeps stopped; the REPL works after.

local S = require "support"

describe("the REPL", function()
  it("runs tasks in a line and comes back from Ctrl-C at once", function()
    local r = S.sh({ "timeout", "-k", "5", "60", "python3", S.cwd .. "/tests/loop/repl_pty.py", S.TRAINCTL })
    local out = r.out .. r.err
    assert.is_true(r.code == 0, ("%s\n(exit %s)"):format(out, r.code))
    assert.matches("ok %- Ctrl%-C with 100 tasks", out)
    assert.is_nil(out:find("not ok", 1, true), out)
  end)
end)
