-- Loaded with `trainctl -l trainctl_spy`: appends every signature the
-- signers produce to $TRAINCTL_SPY_FILE, one a line, so that a test can
-- look for the exact values that went on the wire in what a run printed.
local sign = require("trainctl.sign")

local path = assert(os.getenv("TRAINCTL_SPY_FILE"), "TRAINCTL_SPY_FILE is not set")

local function note(value)
  local f = assert(io.open(path, "a"))
  f:write(value, "\n")
  f:close()
end

local ncp_v2, acs_v2, acs3 = sign.ncp_v2, sign.acs_v2, sign.acs3

sign.ncp_v2 = function(...)
  local sig = ncp_v2(...)
  note(sig)
  return sig
end

sign.acs_v2 = function(...)
  local sig, sts = acs_v2(...)
  note(sig)
  return sig, sts
end

sign.acs3 = function(...)
  local auth, canonical = acs3(...)
  note(auth:match("Signature=(%x+)"))
  return auth, canonical
end

return true
