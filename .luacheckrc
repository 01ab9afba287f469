-- luacheck configuration: Lua 5.4 everywhere, busted in the specs (whose
-- literal request and response bodies make longer lines).
std = "lua54"
max_line_length = 120
exclude_files = { "build/**" }
files["tests"] = { std = "+busted", max_line_length = 130 }
