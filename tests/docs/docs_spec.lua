-- The man page and the program agree: every option and command that
-- `--help` (and each command's own --help) shows is in docs/trainctl.1 and
-- the other way round; every environment variable the code reads is in the
-- man page's ENVIRONMENT section; and what -E ignores is said the same way
-- in both, and is ignored.
local TRAINCTL = os.getenv("TRAINCTL") or "./trainctl"
local MAN = "docs/trainctl.1"

-- Names the code spells like environment variables that are not read
-- from the environment.
local NOT_ENV = { LUA_NOENV = "a registry field of Lua's package library" }

local function quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

local function slurp(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

local function run(cmd)
  local p = assert(io.popen(cmd .. " 2>&1"))
  local out = p:read("a")
  local ok = p:close()
  return out, ok
end

local function sorted(set)
  local t = {}
  for k in pairs(set) do t[#t + 1] = k end
  table.sort(t)
  return t
end

local function missing(from, into)
  local t = {}
  for k in pairs(from) do
    if not into[k] then t[#t + 1] = k end
  end
  table.sort(t)
  return t
end

-- roff: "\-" is a hyphen, "\fB" and friends change the font.
local function unroff(s)
  return (s:gsub("\\f[BIRP]", ""):gsub("\\%-", "-"):gsub("\\e", "\\"))
end

-- The man page's sections by name, with the tag line of each .TP.
local function man_sections()
  local sections, name = {}, nil
  local lines = {}
  for line in slurp(MAN):gmatch("([^\n]*)\n") do lines[#lines + 1] = line end
  for i, line in ipairs(lines) do
    local sh = line:match("^%.SH%s+(.-)%s*$")
    if sh then
      name = sh:gsub('"', "")
      sections[name] = { text = {}, tags = {} }
    elseif name then
      table.insert(sections[name].text, line)
      if line == ".TP" and lines[i + 1] then table.insert(sections[name].tags, lines[i + 1]) end
    end
  end
  return sections
end

-- The words of a tag line: `.BR A ", " B` -> { "A", "B" }.
local function tag_words(tag)
  local body = tag:gsub("^%.%a+%s*", ""):gsub('"[^"]*"', " ")
  local words = {}
  for w in unroff(body):gmatch("%S+") do words[#words + 1] = w end
  return words
end

local help_texts, commands
local function help()
  if help_texts then return help_texts, commands end
  local top = run(quote(TRAINCTL) .. " --help")
  help_texts, commands = { top }, {}
  for line in top:gmatch("[^\n]+") do
    local cmd = line:match("^usage: %S+ (%l+)") or line:match("^%s+%S+ (%l+)[ |]")
    if cmd and line:find("trainctl " .. cmd, 1, true) then commands[cmd] = true end
  end
  for cmd in pairs(commands) do
    local text, ok = run(quote(TRAINCTL) .. " " .. cmd .. " --help")
    assert(ok, cmd .. " --help failed: " .. text)
    help_texts[#help_texts + 1] = text
  end
  return help_texts, commands
end

-- Options of the help texts: those listed at the start of a line, and any
-- long option named anywhere (a command's usage line).
local function help_options()
  local opts = {}
  for _, text in ipairs(help()) do
    for line in text:gmatch("[^\n]+") do
      local o = line:match("^%s%s(%-%-?%a?[%w%-]*)%f[%s,]")
      if o then opts[o] = true end
      for long in line:gmatch("%f[%w%-](%-%-%a[%w%-]*)") do opts[long] = true end
    end
  end
  return opts
end

-- Options of the man page: each .TP tag that starts with a dash, and any
-- long option named anywhere.
local function man_options()
  local opts = {}
  for _, sec in pairs(man_sections()) do
    for _, tag in ipairs(sec.tags) do
      local w = tag_words(tag)[1]
      if w and w:find("^%-") then opts[w] = true end
    end
  end
  for long in unroff(slurp(MAN)):gmatch("%f[%w%-](%-%-%a[%w%-]*)") do opts[long] = true end
  return opts
end

describe("docs/trainctl.1 and --help", function()
  it("list the same options", function()
    local h, m = help_options(), man_options()
    assert.is_true(h["--help"] and h["-e"] and h["--"] and h["-"], "help options not found")
    assert.same({}, missing(h, m), "in --help, not in the man page")
    assert.same({}, missing(m, h), "in the man page, not in any --help")
  end)

  it("list the same commands", function()
    local _, cmds = help()
    local man = {}
    for line in slurp(MAN):gmatch("[^\n]+") do
      local c = line:match("^%.B trainctl (%l+)")
      if c then man[c] = true end
    end
    assert.is_true(cmds.call and cmds.state, "commands not found in --help")
    assert.same(sorted(cmds), sorted(man))
  end)
end)

-- The variables the code reads: getenv("X") in C and Lua, the config
-- lookups (config.get/need..., environment then profile: any module
-- function called with a NAME_LIKE_THIS), and any string that starts
-- with one of the prefixes of the project's variables.
local PREFIXES = { "TRAINCTL", "NCLOUD", "ALIBABA", "AZURE", "OPENSEARCH", "AITEMS", "XDG", "LUA", "CURL", "SSL" }

local function code_variables()
  local vars = {}
  local files = {}
  local p = assert(io.popen("ls src/*/*.c src/*/*.h lua/trainctl/*.lua lua/trainctl/*/*.lua"))
  for f in p:lines() do files[#files + 1] = f end
  p:close()
  for _, f in ipairs(files) do
    local text = slurp(f)
    for v in text:gmatch('getenv%s*%(%s*"([%w_]+)"') do vars[v] = f end
    -- config.get("X"), config.need("X"), any lookup named otherwise
    for v in text:gmatch('[%.:][%a_]+%(%s*"([A-Z][A-Z0-9]*_[A-Z0-9_]+)"') do vars[v] = f end
    for _, prefix in ipairs(PREFIXES) do
      for v in text:gmatch('"(' .. prefix .. '_[A-Z0-9_]+)"') do vars[v] = f end
    end
  end
  for name in pairs(NOT_ENV) do vars[name] = nil end
  return vars, #files
end

-- The names set in bold in the section: the tag of each entry, and the
-- alternatives an entry names (".BR AZURE_TENANT_ID ...").
local function man_environment()
  local env = {}
  for _, line in ipairs(man_sections().ENVIRONMENT.text) do
    if line:find("^%.BR? ") then
      for _, w in ipairs(tag_words(line)) do
        if w:find("^[%a_][%w_]*$") then env[w] = true end
      end
    end
  end
  return env
end

describe("the ENVIRONMENT section of docs/trainctl.1", function()
  it("documents every variable the code reads", function()
    local vars, nfiles = code_variables()
    assert.is_true(nfiles > 10)
    -- The scan itself finds what it must: one of each kind of reading.
    assert.is_string(vars.TRAINCTL_LUA_PATH)
    assert.is_string(vars.TRAINCTL_POLL_INTERVAL)
    assert.is_string(vars.NCLOUD_SECRET_KEY)
    assert.is_string(vars.HOME)
    assert.same({}, missing(vars, man_environment()))
  end)

  it("names only variables that exist", function()
    local vars = code_variables()
    -- Read by libcurl and by Lua's package library, not by trainctl's own code.
    local outside = { http_proxy = true, https_proxy = true, no_proxy = true, LUA_PATH = true,
      LUA_PATH_5_4 = true, LUA_CPATH = true, LUA_CPATH_5_4 = true }
    local extra = {}
    for _, v in ipairs(missing(man_environment(), vars)) do
      if not outside[v] then extra[#extra + 1] = v end
    end
    assert.same({}, extra)
  end)
end)

describe("-E", function()
  local function variables_named(text)
    local t = {}
    for v in text:gmatch("[A-Z][A-Z0-9]*_[A-Z0-9_]+") do t[v] = true end
    return t
  end

  local function help_line()
    local top = help()[1]
    local text, on = {}, false
    for line in top:gmatch("[^\n]+") do
      if line:match("^%s%s%-E%s") then
        on = true
      elseif on and not line:match("^%s%s%s%s%s") then
        break
      end
      if on then text[#text + 1] = line end
    end
    return table.concat(text, " ")
  end

  local function man_paragraph()
    local lines = man_sections().OPTIONS.text
    for i, line in ipairs(lines) do
      if line == ".B \\-E" then
        local t = {}
        for j = i + 1, #lines do
          if lines[j]:find("^%.") then break end
          t[#t + 1] = lines[j]
        end
        return unroff(table.concat(t, " "))
      end
    end
    error("no .B \\-E in " .. MAN)
  end

  it("names the same variables in --help and the man page", function()
    local h, m = variables_named(help_line()), variables_named(man_paragraph())
    assert.is_true(next(h) ~= nil, "no variable in: " .. help_line())
    assert.same(sorted(h), sorted(m))
  end)

  it("ignores each of them", function()
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. quote(dir .. "/trainctl")))
    local f = assert(io.open(dir .. "/trainctl/json.lua", "w"))
    f:write('return "replaced json"\n')
    f:close()
    -- What each variable does when it is not ignored: the probe prints
    -- `shows` then, and not under -E.
    local path = { value = dir .. "/?.lua;;", code = "print(select(2, pcall(require, 'no_such_mod')))",
      shows = dir .. "/no_such_mod.lua" }
    local cpath = { value = dir .. "/?.so;;", code = path.code, shows = dir .. "/no_such_mod.so" }
    local init = { value = "print('init ran')", code = "", shows = "init ran" }
    local probes = {
      LUA_INIT = init, LUA_INIT_5_4 = init,
      LUA_PATH = path, LUA_PATH_5_4 = path, LUA_CPATH = cpath, LUA_CPATH_5_4 = cpath,
      TRAINCTL_LUA_PATH = { value = dir, code = "print(require('trainctl.json'))", shows = "replaced json" },
      -- The soft limit raised to the hard one first: trainctl lowers it to 0 unless allowed.
      TRAINCTL_CORE_DUMPS = { value = "1", code = "os.execute('ulimit -c')", shows = "unlimited",
        pre = "ulimit -c unlimited 2>/dev/null &&" },
    }
    local named = variables_named(help_line() .. " " .. man_paragraph())
    for var in pairs(named) do
      local probe = probes[var]
      assert.is_table(probe, "no probe for " .. var .. ": add one")
      local function go(flags)
        return run(("%s %s=%s %s %s -e %s"):format(probe.pre or "", var, quote(probe.value), quote(TRAINCTL),
          flags, quote(probe.code)))
      end
      if var ~= "TRAINCTL_CORE_DUMPS" or run("ulimit -c unlimited 2>/dev/null && echo yes"):find("yes") then
        assert.truthy(go(""):find(probe.shows, 1, true), var .. " has no effect even without -E")
        local without = go("-E")
        assert.falsy(without:find(probe.shows, 1, true), var .. " not ignored under -E: " .. without)
      end
    end
    os.execute("rm -rf " .. quote(dir))
  end)
end)
