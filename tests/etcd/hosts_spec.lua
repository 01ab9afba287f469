-- Several machines, one nightly job: "hosts" (trainctl processes with XDG
-- and temporary directories of their own) run the same workflow against a
-- real 3-member etcd cluster, with --lock and the state on etcd. Whatever
-- happens to a holder (killed, paused past its TTL) or to the etcd leader,
-- the emulator sees exactly one training per job.
--
-- The emulator's clock is frozen while a run trains, so that the training
-- cannot finish before the test has done what it is about; the test
-- advances it when the training may end.
local support = require("support")
local cloudsim = require("support.cloudsim")
local etcd_support = require("support.etcd")
local json = require("trainctl.json")

local WORKFLOW = "tests/etcd/ctr_workflow.lua"

-- A client of the members but one (the tests' view while one is frozen).
local function etcd_client_without(cluster, skip)
  local etcd = require("trainctl.etcd")
  local members = {}
  for i in ipairs(cluster.members) do
    if i ~= skip then members[#members + 1] = i end
  end
  return etcd.client(etcd.parse_url(cluster:url("x", members)), { timeout = 1 })
end

local function starts(sim, instance)
  local n = 0
  for _, r in ipairs(sim:requests({ operation = "CreateFunctionTask" })) do
    local ok = type(r.status) == "number" and r.status >= 200 and r.status < 300
    if r.executed and ok and tostring(r.path or r.url or ""):find("/instances/" .. instance .. "/", 1, true) then
      n = n + 1
    end
  end
  return n
end

describe("several hosts on one etcd cluster", function()
  if not etcd_support.available() then
    pending("etcd-server is not installed")
    return
  end
  local sim, cluster

  setup(function()
    cluster = etcd_support.cluster()
    sim = cloudsim.start({ speed = 0 })
  end)

  teardown(function()
    if sim then sim:stop() end
    if cluster then cluster:stop() end
  end)

  -- args(host, instance [, extra options]) -> command line, env of a host
  local function job(host, instance, opts)
    local state = cluster:url("nightly/" .. instance .. "/state")
    local args = { "--lock", cluster:url("nightly/" .. instance .. "/lock"), "--lock-ttl", opts and opts.ttl or "2" }
    for _, a in ipairs(opts and opts.args or {}) do args[#args + 1] = a end
    args[#args + 1] = WORKFLOW
    args[#args + 1] = instance
    return args, { env = etcd_support.host_env(sim, host, state, opts and opts.env) }
  end

  local function state_of(instance)
    local c = cluster:client()
    local value, item = c:get("nightly/" .. instance .. "/state/ctr/" .. instance)
    return value and json.decode(value), item
  end

  it("two hosts started together, 20 times: one trains, the other exits 3", function()
    for round = 1, 20 do
      local instance = "round" .. round
      local a = sim:spawn(job("a", instance))
      local b = sim:spawn(job("b", instance))
      local loser = support.poll(function()
        return (a:exited() and a) or (b:exited() and b)
      end, 30, "one of the two runs to exit")
      local winner = loser == a and b or a
      local code, out, err = loser:wait()
      assert.equal(3, code, err)
      assert.equal("", out)
      assert.matches("is held by another run %(host [^,]+, pid %d+", err)
      -- the winner's training is under way; now it may finish
      support.poll(function() return starts(sim, instance) == 1 end, 30, "the training start")
      sim:advance(3600)
      local wcode, wout, werr = winner:wait()
      assert.equal(0, wcode, werr)
      local doc = json.decode(wout)
      assert.equal(instance, doc.instance)
      assert.equal(winner == a and "a" or "b", doc.host)
      assert.equal(1, starts(sim, instance))
      assert.is_table(state_of(instance).metrics)
    end
  end)

  it("an example with --state etcd://: one host trains; trainctl state list and forget on etcd", function()
    local instance = "example"
    local lock, st = cluster:url("ex/lock"), cluster:url("ex/state")
    local function args(host)
      return { "--lock", lock, "--lock-ttl", "2", "--state", st, "examples/opensearch_ctr.lua", instance },
        { env = etcd_support.host_env(sim, host, st) }
    end
    local a = sim:spawn(args("a"))
    local b = sim:spawn(args("b"))
    local loser = support.poll(function()
      return (a:exited() and a) or (b:exited() and b)
    end, 30, "one of the two runs to exit")
    local winner = loser == a and b or a
    local code, _, err = loser:wait()
    assert.equal(3, code, err)
    support.poll(function() return starts(sim, instance) == 1 end, 30, "the training start")
    sim:advance(3600)
    local wcode, wout, werr = winner:wait()
    assert.equal(0, wcode, werr)
    assert.equal(instance, json.decode(wout).instance)
    assert.equal(1, starts(sim, instance))
    -- the records are etcd keys, listed and cleared with the state command
    local lcode, lout, lerr = sim:run({ "state", "list", "--state", st })
    assert.equal(0, lcode, lerr)
    local key, record = next(json.decode(lout))
    assert.matches("instance=example", key)
    assert.is_table(record.metrics)
    local fcode, _, ferr = sim:run({ "state", "forget", key, "--state", st })
    assert.equal(2, fcode, ferr)
    assert.matches("needs an etcd %-%-lock", ferr)
    fcode, _, ferr = sim:run({ "--lock", lock, "state", "forget", key, "--state", st })
    assert.equal(0, fcode, ferr)
    lcode, lout = sim:run({ "state", "list", "--state", st })
    assert.equal(0, lcode)
    assert.same({}, json.decode(lout))
  end)

  it("holder killed with kill -9 mid-training: the next host takes over after the TTL and resumes", function()
    local instance = "killed"
    local a = sim:spawn(job("a", instance))
    support.poll(function() return starts(sim, instance) == 1 end, 30, "the training start")
    assert.is_table(state_of(instance).training)
    a:kill("KILL")
    a:wait()
    -- the dead holder's lease lives until its TTL: a run now exits 3
    local code, _, err = sim:run(job("b", instance))
    assert.equal(3, code, err)
    -- a run that waits gets the lock once the lease has expired
    local b = sim:spawn(job("b", instance, { args = { "--lock-wait", "30s" } }))
    sim:advance(3600)
    local bcode, out, berr = b:wait()
    assert.equal(0, bcode, berr)
    assert.equal("b", json.decode(out).host)
    assert.equal(1, starts(sim, instance))
    assert.is_table(state_of(instance).metrics)
    -- and a later run starts nothing
    local ccode, _, cerr = sim:run(job("c", instance))
    assert.equal(0, ccode, cerr)
    assert.equal(1, starts(sim, instance))
  end)

  it("examples/nightly.lua on etcd: its host lost mid-night, the next host finishes it, one training per cloud", function()
    local lock, st = cluster:url("nightly/all/lock"), cluster:url("nightly/all/state")
    local function host(name, extra)
      local args = { "--lock", lock, "--lock-ttl", "2", "--state", st }
      for _, a in ipairs(extra or {}) do args[#args + 1] = a end
      args[#args + 1] = "examples/nightly.lua"
      args[#args + 1] = sim.dir .. "/out" -- the same line on every host
      return args, { env = etcd_support.host_env(sim, name, st, { NIGHTLY_DATE = "2030-01-01" }), group = true }
    end
    local counts = { "CreateTrain", "CreateFunctionTask", "StartTraining" }
    local before = {}
    for _, op in ipairs(counts) do before[op] = sim:started(op) end
    local function trained(op) return sim:started(op) - before[op] end
    local a = sim:spawn(host("a"))
    -- Each cloud's training is let finish once it has started, up to
    -- Azure's: the host is lost (every process of it) while that one runs.
    for _, op in ipairs(counts) do
      support.poll(function()
        if trained(op) == 1 or a:exited() then return true end
        sim:advance(600) -- its imports and the trainings before it
      end, 60, op .. " on host a")
      assert.is_nil(a:exited(), a:stderr())
    end
    support.exec("pkill -KILL -s " .. a.pid)
    a:wait()
    local b = sim:spawn(host("b", { "--lock-wait", "60s" }))
    support.poll(function()
      sim:advance(30) -- well within the days a finished Azure job is kept
      return b:exited()
    end, 120, "host b to finish the night")
    local code, _, err = b:wait()
    assert.equal(0, code, err)
    assert.matches("aitems: already done today", err)
    assert.matches("opensearch: already done today", err)
    for _, op in ipairs(counts) do assert.equal(1, trained(op), op) end
    assert.is_truthy(support.read(sim.dir .. "/out/2030-01-01/classified.jsonl"))
  end)

  it("examples/nightly.lua on etcd keeps its lock while a workflow waits longer than the TTL", function()
    -- The OpenSearch workflow (whose output the night keeps) waits for its
    -- training, frozen, for three times the lease's TTL: the night's own
    -- lease is renewed meanwhile, and the night ends with one training.
    local lock, st = cluster:url("nightly/slow/lock"), cluster:url("nightly/slow/state")
    local args = { "--lock", lock, "--lock-ttl", "2", "--state", st, "examples/nightly.lua", sim.dir .. "/slow" }
    local env = etcd_support.host_env(sim, "a", st, { NIGHTLY_DATE = "2030-02-01" })
    local before = sim:started("CreateFunctionTask")
    local a = sim:spawn(args, { env = env, group = true })
    support.poll(function()
      if sim:started("CreateFunctionTask") > before or a:exited() then return true end
      sim:advance(600) -- the AiTEMS workflow before it
    end, 60, "the OpenSearch training on host a")
    assert.is_nil(a:exited(), a:stderr())
    local _, held = cluster:client():get("nightly/slow/lock")
    assert.is_table(held, "the night's lock key")
    local sys = require("trainctl.sys")
    local until_ = sys.clock() + 3 * 2
    support.poll(function()
      assert.is_nil(a:exited(), a:stderr())
      return sys.clock() >= until_
    end, 30, "three TTLs")
    local _, now = cluster:client():get("nightly/slow/lock")
    assert.is_table(now, "the night's lock key, three TTLs later")
    assert.equal(held.lease, now.lease)
    support.poll(function()
      sim:advance(600)
      return a:exited()
    end, 120, "host a to finish the night")
    local code, _, err = a:wait()
    assert.equal(0, code, err)
    assert.equal(1, sim:started("CreateFunctionTask") - before)
    assert.is_truthy(support.read(sim.dir .. "/slow/2030-02-01/ctr_metrics.json"))
  end)

  it("a script that holds its tasks past the TTL (a read from io.popen) is told why it lost the lock", function()
    local dir = support.tmpdir()
    support.write(dir .. "/held.lua", [[
      local state = require("trainctl.state")
      state.set("before", true)
      local p = io.popen("sleep 3")
      p:read("a")
      p:close()
      state.set("after", true)]])
    local st = cluster:url("nightly/held/state")
    local code, _, err = etcd_support.run({ "--lock", cluster:url("nightly/held/lock"), "--lock-ttl", "2",
      "--state", st, dir .. "/held.lua" }, etcd_support.host_env(sim, "held", st))
    assert.equal(1, code, err)
    assert.matches("^trainctl: etcd: lock error: state write of after to .* refused: this run no longer "
      .. "holds the lock .* %(its lease expired: this run's tasks did not run for %d+%.%ds, the one that "
      .. "renews the lease among them: the run was paused, or held by a read from io.popen or a long "
      .. "computation; another run may have taken over%); stopping without writing\n$", err)
    local c = cluster:client()
    assert.equal("true", c:get("nightly/held/state/before"))
    assert.is_nil(c:get("nightly/held/state/after"))
    support.rmdir(dir)
  end)

  it("a script with --state etcd:// and a lock that is not on etcd does nothing at all", function()
    local n = #sim:requests()
    local dir = support.tmpdir()
    local code, out, err = sim:run({ "--lock", dir .. "/run.lock", "--state", cluster:url("nightly/nolock/state"),
      "examples/opensearch_ctr.lua", "nolock" })
    assert.equal(2, code, err)
    assert.equal("", out)
    assert.matches("needs an etcd %-%-lock", err)
    assert.equal(n, #sim:requests())
    -- nor a script read from stdin, nor one given as -l
    local st = cluster:url("nightly/nolock/state")
    for _, args in ipairs({ { "--state", st }, { "--state", st, "-l", "os" } }) do
      local r = support.sh({ support.TRAINCTL, table.unpack(args) }, { stdin = "print('ran')" })
      assert.equal(2, r.code, r.err)
      assert.equal("", r.out)
      assert.matches("needs an etcd %-%-lock", r.err)
    end
    support.rmdir(dir)
  end)

  it("warns when the lock is on etcd and the state in a file of this host", function()
    local dir = support.tmpdir()
    support.write(dir .. "/w.lua", "require('trainctl.state').set('k', 1)\n")
    local code, _, err = sim:run({ "--lock", cluster:url("nightly/warn/lock"), "--state", dir .. "/s.json",
      dir .. "/w.lua" })
    assert.equal(0, code, err)
    assert.matches("warn  the state is in a file on this host while %-%-lock is on etcd", err)
    code, _, err = sim:run({ "--lock", cluster:url("nightly/warn/lock"), "--state", cluster:url("nightly/warn/s"),
      dir .. "/w.lua" })
    assert.equal(0, code, err)
    assert.equal("", err)
    support.rmdir(dir)
  end)

  it("holder paused past its TTL, replaced, then resumed: fenced out, exit 1, nothing written", function()
    local instance = "paused"
    local a = sim:spawn(job("a", instance))
    support.poll(function() return starts(sim, instance) == 1 end, 30, "the training start")
    a:kill("STOP")
    local c = cluster:client()
    support.poll(function() return c:get("nightly/" .. instance .. "/lock") == nil end, 30,
      "the paused holder's lease to expire")
    sim:advance(3600)
    local code, out, err = sim:run(job("b", instance))
    assert.equal(0, code, err)
    assert.equal("b", json.decode(out).host)
    local _, before = state_of(instance)
    a:kill("CONT")
    local acode, aout, aerr = a:wait()
    assert.equal(1, acode, aerr)
    assert.equal("", aout)
    -- stopped by its own lease check, or by the fence in etcd: either way
    -- one clear line
    assert.is_truthy(aerr:find("lost the lock", 1, true) or aerr:find("no longer holds the lock", 1, true), aerr)
    -- by its own check, it can tell that its tasks did not run meanwhile
    if aerr:find("lost the lock", 1, true) or aerr:find("lease expired:", 1, true) then
      assert.matches("this run's tasks did not run for %d+%.%ds, the one that renews the lease among "
        .. "them: the run was paused", aerr)
    end
    assert.is_nil(aerr:find("traceback", 1, true))
    local doc, after = state_of(instance)
    assert.equal(before.mod_revision, after.mod_revision)
    assert.equal("b", doc.host)
    assert.equal(1, starts(sim, instance))
  end)

  it("an etcd member frozen mid-run (a partition): its requests time out, the others answer", function()
    local instance = "frozen"
    local a = sim:spawn(job("a", instance, { ttl = "3" }))
    support.poll(function() return starts(sim, instance) == 1 end, 30, "the training start")
    -- the first member of the URL, the one the run asks first
    cluster:freeze(1)
    local c = etcd_client_without(cluster, 1)
    local _, lock = c:get("nightly/" .. instance .. "/lock")
    local last
    support.poll(function()
      local ans = c:call("/v3/lease/timetolive", { ID = lock.lease })
      local ttl = tonumber(ans.TTL)
      local renewed = last and ttl and ttl > last
      last = ttl
      return renewed
    end, 30, "the lease to be renewed while member 1 is frozen")
    sim:advance(3600)
    local code, out, err = a:wait()
    cluster:thaw(1)
    assert.equal(0, code, err)
    assert.equal("a", json.decode(out).host)
    assert.equal(1, starts(sim, instance))
    cluster:wait_healthy()
  end)

  it("the etcd leader killed mid-run: the run goes on through another member, no duplicate", function()
    local instance = "leaderless"
    local a = sim:spawn(job("a", instance, { ttl = "3" }))
    support.poll(function() return starts(sim, instance) == 1 end, 30, "the training start")
    local c = cluster:client()
    local _, lock = c:get("nightly/" .. instance .. "/lock")
    local leader = cluster:leader()
    cluster:kill(leader)
    -- the holder renews its lease through the members left
    local last
    support.poll(function()
      local ans = c:call("/v3/lease/timetolive", { ID = lock.lease })
      local ttl = tonumber(ans.TTL)
      local renewed = last and ttl and ttl > last
      last = ttl
      return renewed
    end, 30, "the lease to be renewed after the leader died")
    sim:advance(3600)
    local code, out, err = a:wait()
    -- it may fail closed, never train twice
    assert.is_true(code == 0 or code == 1, err)
    if code == 0 then assert.equal("a", json.decode(out).host) end
    cluster:start(leader)
    cluster:wait_healthy()
    local bcode, _, berr = sim:run(job("b", instance))
    assert.equal(0, bcode, berr)
    assert.equal(1, starts(sim, instance))
    assert.is_table(state_of(instance).metrics)
  end)
end)
