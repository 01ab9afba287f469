-- luacheck: std +busted
-- The REPL with tasks, in a pseudo-terminal (tests/loop/repl_pty.py):
-- a line that spawns and joins tasks prints the result; Ctrl-C while 100
-- tasks sleep returns to the prompt within a second; the REPL works after.

local S = require "support"

describe("the REPL", function()
  it("runs tasks in a line and comes back from Ctrl-C at once", function()
    local f = assert(io.popen(("timeout -k 5 60 python3 %s %s 2>&1"):format(
      S.quote(S.cwd .. "/tests/loop" .. "/repl_pty.py"), S.quote(S.TRAINCTL))))
    local out = f:read("a")
    local ok, how, code = f:close()
    assert.is_true(ok == true, ("%s\n(%s %s)"):format(out, how, code))
    assert.matches("ok %- Ctrl%-C with 100 tasks", out)
    assert.is_nil(out:find("not ok", 1, true), out)
  end)
end)
