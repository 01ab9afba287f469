-- trainctl.sys: clocks, environment, atomic files, locks, dates: the
-- native functions of trainctl._sys (src/lua/lsys.c), except sleep, which
-- is trainctl.task's: it yields inside a task and blocks elsewhere.
local native = require "trainctl._sys"

local M = {}
for k, v in pairs(native) do M[k] = v end

function M.sleep(seconds)
  return require("trainctl.core.task").sleep(seconds) -- a tail call: errors name the caller
end

return M
