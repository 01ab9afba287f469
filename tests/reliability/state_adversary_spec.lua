-- Workflow state tried as an adversary would: each test states a promise
-- of docs/reliability.md "Workflow state" in a way a user could break it
-- (a start sent again then killed, a clock stepped forward, a FIFO at a
-- state path, a hand-edited record, an upgrade, an emulator that forgot
-- everything). Nothing here sleeps to make timing work: waits are polls
-- for an event under a deadline.
local support = require("support")
local cloudsim = require("support.cloudsim")
local json = require("trainctl.json")

local quote = support.quote
local TRAINCTL = support.TRAINCTL
if TRAINCTL:sub(1, 1) ~= "/" then TRAINCTL = os.getenv("PWD") .. "/" .. TRAINCTL end


-- A training start with a short request timeout and settle, its record
-- kept in trainctl.state under "held" (what every example does).
local HELD = [[
local job = require("trainctl.job")
job.settle = tonumber(os.getenv("SETTLE"))
local opensearch = require("trainctl.opensearch")
local state = require("trainctl.state")
local c = opensearch.client({ app_group = "held", function_name = "ctr", timeout = tonumber(os.getenv("TIMEOUT")) })
local run = state.get("held") or {}
local j = c:create_function_task({ instance_name = "held", resume = run.training, record = function(ref)
  run.training = ref
  state.set("held", run)
end })
j:wait({ interval = 0.05 })
print("trained")
]]

describe("a start whose fate is unknown, across runs", function()
  local sim = cloudsim.new({ speed = 1200, log = "error" })
  local dir, script
  setup(function() sim:start() end)
  teardown(function() sim:stop() end)
  before_each(function()
    sim:reset()
    sim:no_faults()
    sim:speed(1200)
    dir = support.tmpdir()
    script = dir .. "/held.lua"
    support.write(script, HELD)
    local restore = sim:use()
    local c = require("trainctl.opensearch").client({ app_group = "held", function_name = "ctr" })
    c:create_function_instance({ instance_name = "held", model_type = "tf_checkpoint", function_type = "PAAS" })
    restore()
  end)
  after_each(function() support.rmdir(dir) end)

  local ENV = { TIMEOUT = "0.5", SETTLE = "3" }

  -- The held start has been carried out (it is logged once it has).
  local function held_done()
    return #sim:requests({ operation = "CreateFunctionTask", fault = "slow" }) >= 1
  end

  -- killed_while_held(n, what): a run of the script, killed -9 once it
  -- has said n times that a start may still land (it is looking it up).
  local function killed_while_held(n, what)
    local first = sim:spawn({ "--state", dir .. "/s.json", script }, { env = ENV })
    finally(function() first:kill("KILL") end)
    support.poll(function()
      if support.matches(support.read(first.err) or "", "may still land") >= n then return true end
      assert.is_nil(first:exited(), "the first run ended early: " .. tostring(support.read(first.err)))
    end, 30, what)
    first:kill("KILL")
    first:wait()
  end

  it("a start sent again after a lost answer, then killed, is not sent a third time while it can land", function()
    -- 1st try: connection reset, nothing done. The client looks it up
    -- until timeout + settle (3.5 s) have passed, then sends it again.
    -- 2nd try: the server holds it 2.5 s (less than timeout + settle)
    -- and then carries it out. The run is killed while it waits on it.
    sim:faults({ { kind = "reset", when = "before", match = { operation = "CreateFunctionTask" } },
      { kind = "slow", when = "before", delay = 2.5, match = { operation = "CreateFunctionTask" } } })
    killed_while_held(2, "the second try of the start to time out on the client")
    -- The record holds the second try's own deadline (written before each
    -- send): the next run waits for the held start instead of sending a
    -- third (it used to keep the first try's, long past).
    local code, _, err = sim:run({ "--state", dir .. "/s.json", script }, { env = ENV })
    assert.equal(0, code, err)
    support.poll(held_done, 15, "the held start to be carried out")
    assert.equal(1, sim:opensearch_tasks(), "trainings started (the held one landed after the next run sent another)")
  end)

  it("a run with a shorter request timeout waits out the start the killed run sent with a longer one", function()
    -- The first run's start may land until its own timeout (20 s) has
    -- passed; the server holds it 12 s. The run is killed as soon as the
    -- server has its start (the scripted fault is taken then); the next
    -- run's timeout is 0.5 s (another setting, another host): it must
    -- look up for the first run's time, not its own, or it sends a second
    -- start before the first lands.
    sim:faults({ { kind = "slow", when = "before", delay = 12, match = { operation = "CreateFunctionTask" } } })
    local env = { TIMEOUT = "20", SETTLE = "3" }
    local first = sim:spawn({ "--state", dir .. "/s.json", script }, { env = env })
    finally(function() first:kill("KILL") end)
    support.poll(function() return #sim:admin("GET", "faults").scripted == 0 end, 30, "the start to reach the server")
    first:kill("KILL")
    first:wait()
    local code, _, err = sim:run({ "--state", dir .. "/s.json", script }, { env = ENV })
    assert.equal(0, code, err)
    assert.is_true(held_done())
    assert.equal(1, sim:opensearch_tasks(), "trainings started (the held one landed after the next run sent another)")
  end)

  it("a wall clock set forward between runs does not make a held start be sent again", function()
    -- The run is killed just after its start went out; the server holds
    -- it 2.5 s. The next run's wall clock is a minute ahead (an NTP step
    -- between the runs): pending_until looks long past although the
    -- request can still land.
    local lib = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"
    if not support.read(lib) then
      pending("libfaketime is not installed")
      return
    end
    sim:faults({ { kind = "slow", when = "before", delay = 2.5, match = { operation = "CreateFunctionTask" } } })
    killed_while_held(1, "the start to time out on the client")
    local env = { LD_PRELOAD = lib, FAKETIME = "+60", FAKETIME_DONT_FAKE_MONOTONIC = "1" }
    for k, v in pairs(ENV) do env[k] = v end
    local code, _, err = sim:run({ "--state", dir .. "/s.json", script }, { env = env })
    assert.equal(0, code, err)
    support.poll(held_done, 15, "the held start to be carried out")
    assert.equal(1, sim:opensearch_tasks(), "trainings started (the held one landed after the next run sent another)")
  end)
end)

describe("odd file types at state and lock paths", function()
  local dir
  before_each(function() dir = support.tmpdir() end)
  after_each(function() support.rmdir(dir) end)

  -- run(args) -> exit status, stderr; a run that hangs is ended after 10 s
  -- (status 124).
  local function run(args)
    local words = {}
    for i, a in ipairs(args) do words[i] = quote(a) end
    local code = support.exec(("cd %s && env -i PATH=%s HOME=%s timeout 10 %s %s </dev/null >out 2>err"):format(
      quote(dir), quote(os.getenv("PATH")), quote(dir), quote(TRAINCTL), table.concat(words, " ")))
    return code, support.read(dir .. "/err") or ""
  end

  it("refuses a --lock path that is a FIFO, at once", function()
    assert.equal(0, support.exec("mkfifo " .. quote(dir .. "/run.lock")))
    local code, err = run({ "--lock", dir .. "/run.lock", "-e", "print(1)" })
    assert.not_equal(124, code, "trainctl hung opening a FIFO as its lock")
    assert.equal(2, code, err)
  end)

  it("refuses a state file that is a FIFO, at once", function()
    assert.equal(0, support.exec("mkfifo " .. quote(dir .. "/s.json")))
    local code, err = run({ "--state", dir .. "/s.json", "-e", "require('trainctl.state').get('k')" })
    assert.not_equal(124, code, "trainctl hung reading a FIFO as its state file")
    assert.equal(1, code, err)
  end)

  it("refuses a state lock that is a FIFO, at once", function()
    support.write(dir .. "/s.json", "{}\n")
    assert.equal(0, support.exec("mkfifo " .. quote(dir .. "/s.json.lock")))
    local code, err = run({ "--state", dir .. "/s.json", "-e", "require('trainctl.state').set('k', 1)" })
    assert.not_equal(124, code, "trainctl hung opening a FIFO as the state lock")
    assert.equal(1, code, err)
  end)
end)

describe("the lock beside a state file", function()
  local dir
  before_each(function() dir = support.tmpdir() end)
  after_each(function() support.rmdir(dir) end)

  it("given as the run's own --lock, is not waited for by the run itself", function()
    -- reliability.md names FILE.lock; a user may well pick it for --lock
    local s = dir .. "/s.json"
    local code = support.exec(("env -i PATH=%s HOME=%s timeout 20 %s --lock %s --state %s "
      .. "-e %s >%s 2>&1"):format(quote(os.getenv("PATH")), quote(dir), quote(TRAINCTL), quote(s .. ".lock"),
      quote(s), quote("require('trainctl.state').set('k', 1)"), quote(dir .. "/err")))
    assert.equal(0, code, support.read(dir .. "/err"))
    assert.same({ k = 1 }, json.decode(support.read(s)))
    -- another run, with no --lock, still waits for it (and then writes)
    code = support.exec(("%s --state %s -e %s"):format(quote(TRAINCTL), quote(s),
      quote("require('trainctl.state').set('j', 2)")))
    assert.equal(0, code)
    assert.same({ k = 1, j = 2 }, json.decode(support.read(s)))
  end)

  it("made by root (trainctl state forget with sudo) leaves the owner's runs working", function()
    if support.capture("id -u") ~= "0" or support.exec("command -v setpriv >/dev/null") ~= 0 then
      pending("needs root and setpriv")
      return
    end
    local s = dir .. "/s.json"
    support.write(s, '{"old": {"id": 1}, "k": 1}\n')
    assert.equal(0, support.exec(("chown -R nobody %s && chmod 700 %s && chmod 600 %s"):format(quote(dir),
      quote(dir), quote(s))))
    assert.equal(0, support.exec(("%s state forget old --state %s >/dev/null 2>&1"):format(quote(TRAINCTL), quote(s))))
    local code = support.exec(("setpriv --reuid=nobody --regid=nogroup --clear-groups env -i PATH=%s HOME=%s "
      .. "%s --state %s -e %s >%s 2>&1"):format(quote(os.getenv("PATH")), quote(dir), quote(TRAINCTL), quote(s),
      quote("require('trainctl.state').set('k', 2)"), quote(dir .. "/err")))
    assert.equal(0, code, support.read(dir .. "/err"))
    assert.same({ k = 2 }, json.decode(support.read(s)))
  end)
end)

describe("trainctl state on a terminal", function()
  local dir
  before_each(function() dir = support.tmpdir() end)
  after_each(function() support.rmdir(dir) end)

  it("does not print a key's control characters raw", function()
    if support.exec("command -v script >/dev/null") ~= 0 then
      pending("script(1) is not installed")
      return
    end
    local path = dir .. "/s.json"
    support.write(path, json.encode({ ["k\27[2J\rforged"] = 1 }))
    local cmd = ("%s state list --state %s"):format(quote(TRAINCTL), quote(path))
    assert.equal(0, support.exec(("script -qc %s /dev/null </dev/null >%s 2>&1"):format(quote(cmd),
      quote(dir .. "/tty"))))
    local shown = support.read(dir .. "/tty")
    assert.is_nil(shown:find("\27[2J", 1, true), shown)
  end)

  it("can show and forget a key that starts with a dash", function()
    local path = dir .. "/s.json"
    support.write(path, json.encode({ ["-x"] = 1, keep = 2 }))
    -- As everywhere, what follows -- is words, never options.
    local code = support.exec(("%s state forget --state %s -- -x >/dev/null 2>&1"):format(quote(TRAINCTL),
      quote(path)))
    assert.equal(0, code)
    assert.same({ keep = 2 }, json.decode(support.read(path)))
  end)
end)

describe("a hand-edited record", function()
  local sim = cloudsim.new({ speed = 1200, log = "error" })
  setup(function() sim:start() end)
  teardown(function() sim:stop() end)

  it("that is not an object is an error, never silently a fresh start (a second training)", function()
    local dir = support.tmpdir()
    finally(function() support.rmdir(dir) end)
    local path = dir .. "/s.json"
    local args = { "--state", path, "examples/opensearch_ctr.lua", "ctr_edit" }
    local code, _, err = sim:run(args)
    assert.equal(0, code, err)
    assert.equal(1, sim:opensearch_tasks())
    local doc = json.decode(support.read(path))
    local key = next(doc)
    doc[key] = "see ticket 42"
    support.write(path, json.encode(doc))
    code = sim:run(args)
    assert.equal(1, sim:opensearch_tasks(), "trainings started")
    assert.equal(1, code)
  end)
end)

describe("records written by the trainctl before keyed records", function()
  local sim = cloudsim.new({ speed = 1200, log = "error" })
  setup(function() sim:start() end)
  teardown(function() sim:stop() end)

  it("are still found: upgrading trainctl does not start a second training", function()
    -- What trainctl wrote before keys named every parameter: the record of
    -- opensearch_ctr.lua ctr_up under "opensearch_ctr/ctr_up", with the
    -- endpoint inside it (the record is otherwise the same).
    local args = { "examples/opensearch_ctr.lua", "ctr_up" }
    local code, _, err = sim:run(args)
    assert.equal(0, code, err)
    assert.equal(1, sim:opensearch_tasks())
    local path = sim.dir .. "/state/trainctl/opensearch_ctr.json"
    local doc = json.decode(support.read(path))
    local _, record = next(doc)
    record.endpoint = sim.url
    support.write(path, json.encode({ ["opensearch_ctr/ctr_up"] = record }))
    code, _, err = sim:run(args)
    assert.equal(0, code, err)
    assert.equal(1, sim:opensearch_tasks(), "trainings started (the record of the earlier version was ignored)")
  end)

  it("of another app group are left to it: neither a second training nor its metrics", function()
    -- The same instance name in two app groups shared the earlier key.
    local args = { "examples/opensearch_ctr.lua", "ctr_shared" }
    local x, y = { env = { OPENSEARCH_APP_GROUP = "grp_x" } }, { env = { OPENSEARCH_APP_GROUP = "grp_y" } }
    local code, out_x, err = sim:run(args, x)
    assert.equal(0, code, err)
    local before = sim:opensearch_tasks()
    local path = sim.dir .. "/state/trainctl/opensearch_ctr.json"
    local doc = json.decode(support.read(path))
    local legacy
    for k, record in pairs(doc) do
      if k:find("grp_x", 1, true) and k:find("ctr_shared", 1, true) then
        record.endpoint = sim.url
        legacy = record
      end
    end
    assert.is_table(legacy)
    support.write(path, json.encode({ ["opensearch_ctr/ctr_shared"] = legacy }))
    -- grp_y trains its own instance, and prints its own metrics
    local out_y
    code, out_y, err = sim:run(args, y)
    assert.equal(0, code, err)
    assert.equal(before + 1, sim:opensearch_tasks())
    -- grp_x finds its record: nothing started, its metrics again
    local again
    code, again, err = sim:run(args, x)
    assert.equal(0, code, err)
    assert.equal(before + 1, sim:opensearch_tasks(), "grp_x trained again: grp_y took its record")
    assert.equal(out_x, again)
    assert.is_nil(out_y == out_x and out_y or nil, "grp_y printed grp_x's metrics")
  end)
end)


describe("trainctl state usage errors", function()
  it("are readable lines, not the usage text with its newlines escaped", function()
    local dir = support.tmpdir()
    finally(function() support.rmdir(dir) end)
    local code = support.exec(("env -i PATH=%s HOME=%s %s state show >/dev/null 2>%s"):format(
      quote(os.getenv("PATH")), quote(dir), quote(TRAINCTL), quote(dir .. "/err")))
    assert.equal(2, code)
    local err = support.read(dir .. "/err")
    assert.is_nil(err:find("\\n", 1, true), err)
  end)
end)

describe("the default state of a script", function()
  it("is not shared by runs of it with other arguments (issue 14: identity = script and arguments)", function()
    local dir = support.tmpdir()
    finally(function() support.rmdir(dir) end)
    -- A script as lua-api.md showed them before keys: one fixed key.
    support.write(dir .. "/w.lua", "local s = require('trainctl.state')\n"
      .. "local r = s.get('run') or arg[1]\ns.set('run', r)\nprint(r)\n")
    local function run(a)
      local out = dir .. "/out"
      assert.equal(0, support.exec(("env -i PATH=%s HOME=%s %s %s %s >%s 2>&1"):format(quote(os.getenv("PATH")),
        quote(dir), quote(TRAINCTL), quote(dir .. "/w.lua"), a, quote(out))))
      return support.read(out)
    end
    assert.equal("rP\n", run("rP"))
    assert.equal("rQ\n", run("rQ"))
  end)
end)

describe("state.key", function()
  it("gives different parameters different keys, whatever characters the values hold", function()
    local state = require("trainctl.state")
    -- lua-api.md: "the same parameters always give the same key and
    -- different ones never do". A value holding ",name=" collides.
    assert.not_equal(state.key("w", { bucket = "b", prefix = "p" }), state.key("w", { bucket = "b,prefix=p" }))
  end)

  it("gives a number one key, whether it came from tonumber or from JSON", function()
    local state = require("trainctl.state")
    local from_json = json.decode('{"n": 1}').n
    assert.equal(state.key("w", { n = 1 }), state.key("w", { n = 1.0 }))
    assert.equal(state.key("w", { n = 1 }), state.key("w", { n = from_json }))
    assert.not_equal(state.key("w", { n = 1 }), state.key("w", { n = 1.5 }))
  end)

  -- The earlier key of a number from JSON (n=1.0) is also today's key of
  -- the string "1.0": whose record it is cannot be told, so it is neither
  -- taken (another run's record) nor ignored (a second training).
  local function run(dir, s, code)
    local rc = support.exec(("env -i PATH=%s HOME=%s %s --state %s -e %s >%s 2>&1"):format(quote(os.getenv("PATH")),
      quote(dir), quote(TRAINCTL), quote(s), quote(code), quote(dir .. "/out")))
    return rc, support.read(dir .. "/out")
  end

  it("stops at a record under the key an earlier version gave a number from JSON, saying how to settle it", function()
    local dir = support.tmpdir()
    finally(function() support.rmdir(dir) end)
    local s = dir .. "/s.json"
    support.write(s, json.encode({ ["w{n=1.0}"] = { training = "t-1" } }))
    local by_number = [[
      local state = require("trainctl.state")
      local key = state.key("w", { n = require("trainctl.json").decode('{"n": 1}').n })
      %s
      local run = state.record(key)
      print(run.training or "started a new training")]]
    local code, out = run(dir, s, by_number:format(""))
    assert.equal(1, code, out)
    assert.matches("no record under w{n=1} in state .* but one under w{n=1%.0}", out)
    assert.matches('state.migrate("w{n=1.0}", key)', out, 1, true)
    assert.matches("trainctl state forget 'w{n=1.0}'", out, 1, true)
    assert.is_nil(out:find("started a new training", 1, true))
    -- the script that takes it, as the message says
    code, out = run(dir, s, by_number:format('state.migrate("w{n=1.0}", key)'))
    assert.equal(0, code, out)
    assert.equal("t-1\n", out)
    assert.same({ ["w{n=1}"] = { training = "t-1" } }, json.decode(support.read(s)))
  end)

  it("never hands a string's record to a number, nor the other way round", function()
    local dir = support.tmpdir()
    finally(function() support.rmdir(dir) end)
    local s = dir .. "/s.json"
    local function work(v)
      return ([[
        local state = require("trainctl.state")
        local key = state.key("w", { n = %s })
        local rec = state.get(key)
        if rec then print("found " .. rec.job) return end
        state.set(key, { job = "job-of-" .. %q })
        print("started job-of-" .. %q)]]):format(v, v, v)
    end
    local code, out = run(dir, s, work('"1.0"'))
    assert.equal(0, code, out)
    assert.equal("started job-of-\"1.0\"\n", out)
    -- the float 1.0 (from JSON), which an earlier trainctl keyed n=1.0
    code, out = run(dir, s, work("1.0"))
    assert.equal(1, code, out) -- not "found job-of-"1.0""
    assert.matches("but one under w{n=1%.0}", out)
    code, out = run(dir, s, work('"1.0"'))
    assert.equal(0, code, out)
    assert.equal("found job-of-\"1.0\"\n", out)
  end)
end)

describe("a stray 404 during a training wait", function()
  local sim = cloudsim.new({ speed = 1200, log = "error" })
  setup(function() sim:start() end)
  teardown(function() sim:stop() end)

  it("is asked again, not the end of the run (one bare 404 on the status poll)", function()
    sim:faults({ { kind = "404", match = { operation = "GetFunctionTask" } } })
    local dir = support.tmpdir()
    finally(function() support.rmdir(dir) end)
    local code, _, err = sim:run({ "--state", dir .. "/s.json", "examples/opensearch_ctr.lua", "ctr_stray" })
    assert.equal(0, code, err)
    assert.equal(1, sim:opensearch_tasks())
  end)
end)

describe("records of objects the emulator forgot (restarted with its seed)", function()
  local sim = cloudsim.new({ speed = 1200, log = "error" })
  setup(function() sim:start() end)
  teardown(function() sim:stop() end)

  -- A workflow whose records no longer match the cloud either does its
  -- work again or stops saying which record to forget; it never fails the
  -- same way on every run with nothing that names the record.
  local function recovers(code, err)
    return code == 0 or (code == 1 and err:find("trainctl state forget", 1, true) ~= nil)
  end

  it("AiTEMS: a new service that got the old one's id is trained, or the record is named", function()
    local dir = support.tmpdir()
    finally(function() support.rmdir(dir) end)
    local args = { "--state", dir .. "/s.json", "examples/aitems_recommend.lua", dir .. "/r.jsonl" }
    local code, _, err = sim:run(args)
    assert.equal(0, code, err)
    sim:reset()
    code, _, err = sim:run(args)
    assert.is_true(recovers(code, err), err)
    code, _, err = sim:run(args)
    assert.is_true(recovers(code, err), err)
  end)

  it("Azure: a project and model gone is trained again, or the record is named", function()
    local dir = support.tmpdir()
    finally(function() support.rmdir(dir) end)
    local args = { "--state", dir .. "/s.json", "examples/azure_textclass.lua", "examples/data/textclass_inbox",
      dir .. "/c.jsonl" }
    local code, _, err = sim:run(args)
    assert.equal(0, code, err)
    sim:reset()
    code, _, err = sim:run(args)
    assert.is_true(recovers(code, err), err)
  end)
end)

describe("an etcd:// state store", function()
  it("that cannot be used is a one-line error, not a Lua traceback", function()
    local dir = support.tmpdir()
    finally(function() support.rmdir(dir) end)
    -- Nothing listens on port 1.
    local code = support.exec(("env -i PATH=%s HOME=%s %s --state etcd://127.0.0.1:1/t -e %s >/dev/null 2>%s"):format(
      quote(os.getenv("PATH")), quote(dir), quote(TRAINCTL), quote("require('trainctl.state').get('k')"),
      quote(dir .. "/err")))
    local err = support.read(dir .. "/err")
    assert.is_true(code == 1 or code == 2, err)
    assert.not_matches("traceback", err)
  end)
end)
