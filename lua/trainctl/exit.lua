-- The exit statuses of trainctl(1) (EXIT STATUS), written once for
-- the Lua library; everything that returns or sets a status reads them
-- here. The host's EXIT_* (src/lua/script.h) are the same numbers for
-- the C. A stop by signal N exits SIGNAL + N.
local M = {
  OK = 0,
  ERROR = 1,
  USAGE = 2,
  LOCKED = 3,
  TIMEOUT = 4,
  SIGNAL = 128,
}

-- of(e) -> the status a trainctl error asks for: its exit_code, else
-- USAGE for a usage error, else ERROR.
function M.of(e)
  if e.exit_code then return e.exit_code end
  if e.kind == "usage" then return M.USAGE end
  return M.ERROR
end

return M
