-- One signed call and its answer printed, on the native primitives: the
-- one-shot figure's stand-in for `trainctl call aitems list_trains` where
-- the AiTEMS client is not available.
--   BENCH_BASE=http://127.0.0.1:PORT trainctl bench/oneshot.lua
local lib = dofile((arg[0]:match("^(.*/)") or "./") .. "lib.lua")
local cjson = require("cjson")

local doc = lib.get("/api/v1/services/abc/trains")
lib.check_list(doc)
io.stdout:write(cjson.encode(doc), "\n")
