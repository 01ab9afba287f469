-- Files are replaced atomically: a full disk is an error naming the file
-- and leaves the previous file as it was; a kill -9 in the middle of a
-- write leaves the old file or the new one, never a mix. The full disk is
-- a 64 KiB tmpfs (mounting needs root; without it these cases are skipped).
local support = require("support")
local cloudsim = require("support.cloudsim")
local json = require("trainctl.json")

local PREVIOUS = "the previous file\n"

describe("a full disk", function()
  local sim, mnt, mounted

  setup(function()
    sim = cloudsim.start({ speed = 1200 })
    mnt = support.tmpdir()
    mounted = support.exec(("mount -t tmpfs -o size=64k trainctl-test %s 2>/dev/null"):format(support.quote(mnt))) == 0
  end)
  teardown(function()
    if mounted then support.exec("umount " .. support.quote(mnt)) end
    os.execute("rmdir " .. support.quote(mnt))
    sim:stop()
  end)

  -- fill(): the previous file, then a filler taking every block left.
  local function fill(name)
    support.exec(("rm -f %s/*"):format(support.quote(mnt)))
    support.write(mnt .. "/" .. name, PREVIOUS)
    support.exec(("cat /dev/zero > %s/filler 2>/dev/null"):format(support.quote(mnt)))
  end

  local function leftovers()
    local names = {}
    for _, name in ipairs(support.ls(mnt)) do
      if name:find("%.trainctl%-tmp%.") then names[#names + 1] = name end
    end
    return names
  end

  local function need_tmpfs()
    if not mounted then pending("cannot mount a tmpfs here (needs root)") end
    return mounted
  end

  it("stops an example with an error naming its output file; the old output stays", function()
    if not need_tmpfs() then return end
    fill("rec.jsonl")
    local out = mnt .. "/rec.jsonl"
    local code, _, err = sim:run({ "--state", sim.dir .. "/full.json", "examples/aitems_recommend.lua", out })
    assert.equal(1, code)
    assert.matches("trainctl: io error: cannot write " .. out:gsub("%p", "%%%0") .. ": No space left on device\n", err)
    assert.equal(PREVIOUS, support.read(out))
    assert.same({}, leftovers())
  end)

  it("stops a script whose state file cannot be written; the old state stays", function()
    if not need_tmpfs() then return end
    fill("state.json")
    local path = mnt .. "/state.json"
    support.write(path, '{"training": {"id": "kept"}}\n')
    local code, _, err = sim:run({ "--state", path, "-e",
      [[require("trainctl.state").set("big", string.rep("x", 100000))]] })
    assert.equal(1, code)
    assert.matches("trainctl: io error: cannot write state file " .. path:gsub("%p", "%%%0")
      .. ": No space left on device\n", err)
    assert.equal("kept", json.decode(support.read(path)).training.id)
    assert.same({}, leftovers())
  end)

  it("fails a download to a file with an io error naming it; the old file stays", function()
    if not need_tmpfs() then return end
    fill("download.json")
    local path = mnt .. "/download.json"
    local res, err = require("trainctl.http").request({ url = sim.url .. "/_cloudsim/state", output = path })
    assert.is_nil(res)
    assert.equal("io", err.kind)
    assert.matches("writing " .. path:gsub("%p", "%%%0") .. ": No space left on device", err.message)
    assert.equal(PREVIOUS, support.read(path))
    assert.same({}, leftovers())
  end)
end)

describe("kill -9 in the middle of a write", function()
  it("leaves the old file or the new one, whole, and nothing beside it after the next write", function()
    local dir = support.tmpdir()
    local path = dir .. "/out.txt"
    local size = 4 * 1024 * 1024
    local unnamed_here = support.tmpfile_works(dir)
    -- Rewrites the file over and over with As, then Bs, then As...
    local writer = ([[
      local output = require("trainctl.output")
      local a, b = ("A"):rep(%d), ("B"):rep(%d)
      local i = 0
      while true do
        i = i + 1
        output.write(%q, i %% 2 == 0 and a or b)
      end]]):format(size, size, path)
    local whole = { [("A"):rep(size)] = true, [("B"):rep(size)] = true }
    for _ = 1, 5 do
      local proc = support.spawn(("exec %s -e %s"):format(support.quote(support.TRAINCTL), support.quote(writer)))
      -- Kill it while the new file is being written: it is open, and has
      -- no name yet (or, where the file system cannot do that, a
      -- temporary name beside the file).
      local unnamed
      support.poll(function()
        unnamed = support.unnamed_open(proc.pid, dir)
        local busy = unnamed or not unnamed_here and table.concat(support.ls(dir), "\n"):find("out%.txt%.trainctl%-tmp%.")
        return busy and support.read(path)
      end, 20, "a write in progress")
      proc:kill("KILL")
      assert.equal(137, (proc:wait()))
      assert.is_true(whole[support.read(path)])
      if unnamed_here then
        assert.is_true(unnamed)
        -- The new file gets a name of its own only for the instant
        -- between linkat and rename: a kill there leaves it, whole.
        for _, name in ipairs(support.ls(dir)) do
          if name ~= "out.txt" then
            assert.matches("^out%.txt%.trainctl%-tmp%.%w%w%w%w%w%w$", name)
            assert.is_true(whole[support.read(dir .. "/" .. name)])
          end
        end
      end
    end
    -- Whatever the kills left, the next write removes.
    local r = support.run({ "-e", ("require('trainctl.output').write(%q, 'C')"):format(path) })
    assert.equal(0, r.code, r.err)
    assert.equal("C", support.read(path))
    assert.same({ "out.txt" }, support.ls(dir))
    support.rmdir(dir)
  end)
end)
