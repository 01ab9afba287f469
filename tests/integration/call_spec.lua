-- `trainctl call`, `wait` and `status` as a user runs them, against
-- cloudsim: every page of every provider's lists, the output formats and
-- --jq, job references that outlive the call, global options after the
-- subcommand, timeouts, deletes that ask first, and usage errors that
-- say what was meant. The emulator's clock stands still (speed 0) unless
-- a test advances it.
local support = require("support")
local cloudsim = require("support.cloudsim")
local json = require("trainctl.json")
local sys = require("trainctl.sys")

local OS = { "app_group_identity=grp", "function_name=ctr" }

local function words(...)
  local out = {}
  for _, list in ipairs({ ... }) do
    for _, w in ipairs(type(list) == "table" and list or { list }) do out[#out + 1] = w end
  end
  return out
end

local function lines(s)
  local out = {}
  for l in s:gmatch("([^\n]*)\n") do out[#out + 1] = l end
  return out
end

describe("trainctl call against cloudsim", function()
  local sim

  -- call(...) -> code, stdout, stderr; asserts no secret was printed.
  local function call(args, opts)
    local code, out, err = sim:run(args, opts)
    assert.same({}, cloudsim.leaks(out .. err))
    return code, out, err
  end

  local function ok(args, opts)
    local code, out, err = call(args, opts)
    assert.equal(0, code, err)
    return out, err
  end

  setup(function()
    sim = cloudsim.start({ poll_interval = "0.2", speed = 0 })
    for _, n in ipairs({ "alpha", "beta", "gamma" }) do
      ok({ "call", "aitems", "create_service", "name=" .. n, "type=batch" })
      ok({ "call", "azure_language", "create_project", "project_name=" .. n, "language=en",
        "project_kind=CustomSingleLabelClassification", "storage_input_container_name=docs" })
    end
    ok(words("call", "opensearch", "create_function_instance", OS, "instance_name=inst",
      "model_type=tf_checkpoint"))
    for _ = 1, 3 do
      ok(words("call", "opensearch", "create_function_task", OS, "instance_name=inst"))
      sim:advance(700)
    end
  end)
  teardown(function() sim:stop() end)

  describe("--all", function()
    it("follows AiTEMS offset/limit to the end and prints one list", function()
      local one = json.decode(ok({ "call", "aitems", "list_services", "limit=1" }))
      assert.equal(1, #one.services)
      local all = json.decode(ok({ "call", "aitems", "list_services", "limit=1", "--all" }))
      local names = {}
      for i, s in ipairs(all) do names[i] = s.name end
      assert.same({ "alpha", "beta", "gamma" }, names)
    end)

    it("follows OpenSearch pageNumber/pageSize until TotalCount", function()
      -- The API's default page size for tasks is 1: one page shows 1 of 3.
      local out, err = ok(words("call", "opensearch", "list_function_tasks", OS, "instance_name=inst"))
      local one = json.decode(out)
      assert.equal(1, #one.Result)
      assert.equal(3, one.TotalCount)
      assert.matches("list_function_tasks: this page has 1 of 3 items; add --all for every page", err, 1, true)
      local all = json.decode(ok(words("call", "opensearch", "list_function_tasks", OS,
        "instance_name=inst", "--all")))
      local gens = {}
      for i, t in ipairs(all) do gens[i] = tostring(t.Generation) end
      assert.same({ "3", "2", "1" }, gens)
    end)

    it("follows Azure nextLink", function()
      local out, err = ok({ "call", "azure_language", "list_projects", "maxpagesize=1" })
      local one = json.decode(out)
      assert.equal(1, #one.value)
      assert.is_string(one.nextLink)
      assert.matches("list_projects: more items on further pages; add --all", err, 1, true)
      local all = json.decode(ok({ "call", "azure_language", "list_projects", "maxpagesize=1", "--all" }))
      local names = {}
      for i, p in ipairs(all) do names[i] = p.projectName end
      assert.same({ "alpha", "beta", "gamma" }, names)
    end)

    it("--max-items N stops after N items (and implies --all)", function()
      local two = json.decode(ok({ "call", "azure_language", "list_projects", "maxpagesize=1",
        "--max-items", "2" }))
      assert.equal(2, #two)
      assert.equal(2, #json.decode(ok({ "call", "aitems", "list_services", "limit=1", "--max-items=2" })))
    end)

    it("is refused, exit 2, on an operation that is not a list", function()
      local code, out, err = call({ "call", "aitems", "get_service", "service_id=x", "--all" })
      assert.equal(2, code)
      assert.equal("", out)
      assert.matches("get_service is not a list operation", err, 1, true)
    end)
  end)

  describe("-o", function()
    it("json is compact when piped", function()
      local out = ok({ "call", "aitems", "list_services", "--all" })
      assert.equal(1, #lines(out))
    end)

    it("jsonl prints one record per line, from a list operation's page too", function()
      for _, extra in ipairs({ {}, { "--all" } }) do
        local out = ok(words("call", "aitems", "list_services", extra, "-o", "jsonl"))
        local names = {}
        for i, l in ipairs(lines(out)) do names[i] = json.decode(l).name end
        assert.same({ "alpha", "beta", "gamma" }, names)
      end
    end)

    it("table shows a header, a rule and the identifying columns first", function()
      local out = ok({ "call", "aitems", "list_services", "-o", "table" })
      local l = lines(out)
      assert.equal(5, #l)
      assert.matches("^serviceId%s+name%s+status", l[1])
      assert.matches("^%-+  %-+  %-+", l[2])
      assert.matches("^%S+%s+alpha%s+datasetRequired", l[3])
    end)

    it("--columns chooses the columns of table and tsv", function()
      local out = ok({ "call", "azure_language", "list_projects", "--all", "-o", "tsv",
        "--columns", "projectName,language" })
      assert.equal("alpha\ten\nbeta\ten\ngamma\ten\n", out)
      out = ok({ "call", "azure_language", "list_projects", "-otable", "--columns=projectName" })
      assert.same({ "projectName", "-----------", "alpha", "beta", "gamma" }, lines(out))
    end)

    it("yaml reads back, in a YAML parser, as the same value as the JSON", function()
      local want = ok(words("call", "opensearch", "list_function_tasks", OS, "instance_name=inst", "--all"))
      local yaml = ok(words("call", "opensearch", "list_function_tasks", OS, "instance_name=inst", "--all",
        "-o", "yaml"))
      local path = sim.dir .. "/answer.yaml"
      local f = assert(io.open(path, "w"))
      f:write(yaml)
      f:close()
      local p = io.popen("python3 -c 'import sys, json, yaml; "
        .. "print(json.dumps(yaml.safe_load(open(sys.argv[1]))))' " .. support.quote(path))
      local got = p:read("a")
      p:close()
      assert.same(json.decode(want), json.decode(got))
    end)

    it("an unknown format is a usage error, exit 2", function()
      local code, _, err = call({ "call", "aitems", "list_services", "-o", "xml" })
      assert.equal(2, code)
      assert.matches("unknown format \"xml\"", err, 1, true)
    end)
  end)

  describe("--jq", function()
    it("filters with jq's language, strings printed bare (as gh --jq), without a jq program", function()
      local out = ok({ "call", "aitems", "list_services", "--jq", ".services[] | select(.name != \"beta\") | .name" },
        { env = { PATH = "/nonexistent" } })
      assert.equal("alpha\ngamma\n", out)
      out = ok({ "call", "azure_language", "list_projects", "maxpagesize=1", "--all",
        "--jq", "map({name: .projectName}) | length" })
      assert.equal("3\n", out)
    end)

    it("combines with -o", function()
      local out = ok({ "call", "azure_language", "list_projects", "--all", "--jq", "map({name: .projectName})",
        "-o", "tsv" })
      assert.equal("alpha\nbeta\ngamma\n", out)
    end)

    it("a filter that does not compile, or fails, is one line and exit 2", function()
      for _, filter in ipairs({ ".services[", ".services | .name" }) do
        local code, out, err = call({ "call", "aitems", "list_services", "--jq", filter })
        assert.equal(2, code)
        assert.equal("", out)
        assert.equal(1, #lines(err), err)
        assert.matches("^trainctl: usage error: %-%-jq: ", err)
      end
    end)
  end)

  describe("job references", function()
    local function start(instance)
      ok(words("call", "opensearch", "create_function_instance", OS, "instance_name=" .. instance,
        "model_type=tf_checkpoint"))
      local out, err = ok(words("call", "opensearch", "create_function_task", OS, "instance_name=" .. instance,
        "--no-wait"))
      return out, err
    end

    it("--no-wait prints the reference at once; status shows it; wait waits for it", function()
      local ref, err = start("later")
      local printed = json.decode(ref)
      assert.equal("opensearch", printed.provider)
      assert.equal("later", printed.job.instance_name)
      assert.is_nil(printed.state)
      assert.matches("trainctl wait opensearch '", err, 1, true)
      local st = json.decode(ok({ "status", "opensearch", ref }))
      assert.equal("running", st.state)
      sim:advance(700)
      st = json.decode(ok({ "wait", "opensearch", ref }))
      assert.equal("succeeded", st.state)
      -- The provider may be left to the reference, which names it; "-"
      -- reads the reference from stdin.
      assert.equal("succeeded", json.decode(ok({ "status", ref })).state)
      assert.equal("succeeded", json.decode(ok({ "wait", "opensearch", "-" }, { stdin = ref })).state)
    end)

    it("works the same for an AiTEMS training", function()
      -- A trainable service, made through the library (the sample data).
      local restore = sim:use()
      local sid = sim:aitems_service(require("trainctl.aitems").client(), "trained_by_call")
      restore()
      local ref = ok({ "call", "aitems", "train", "service_id=" .. sid, "types=pop", "--no-wait" })
      assert.same({ "pop" }, json.decode(ref).job.types)
      assert.equal("pending", json.decode(ok({ "status", "aitems", ref })).state)
      sim:advance(800)
      assert.equal("succeeded", json.decode(ok({ "wait", "aitems", ref })).state)
    end)

    it("works the same for Azure's long-running operations", function()
      ok({ "call", "azure_language", "create_project", "project_name=doomed", "language=en",
        "project_kind=CustomSingleLabelClassification", "storage_input_container_name=docs" })
      local ref = ok({ "call", "azure_language", "delete_project", "project_name=doomed", "--yes", "--no-wait" })
      assert.matches("/deletion%-jobs/", json.decode(ref).job.path)
      sim:advance(60)
      assert.equal("succeeded", json.decode(ok({ "wait", "azure_language", ref })).state)
      assert.equal(1, (call({ "call", "azure_language", "get_project", "project_name=doomed" })))
    end)

    it("wait exits 1 when the job failed, with its state on stdout", function()
      local ref = start("will_fail")
      sim:advance(400)
      local code, out, err = call({ "wait", "opensearch", ref })
      assert.equal(1, code)
      assert.equal("failed", json.decode(out).state)
      assert.matches("failed", err)
    end)

    it("wait --timeout exits 4 with the last state on stdout; --wait too", function()
      local ref = start("slow")
      local t0 = sys.clock()
      local code, out, err = call({ "wait", "opensearch", ref, "--timeout", "3" })
      assert.equal(4, code, err)
      assert.equal("running", json.decode(out).state)
      -- the bound the user gave, not the wait's own (a moment shorter)
      assert.matches("opensearch training slow did not finish within 3s", err, 1, true)
      assert.is_true(sys.clock() - t0 < 10)
      code, out = call(words("call", "opensearch", "create_function_task", OS, "instance_name=slow2",
        "--wait", "--timeout=1.5s"))
      -- no such instance: an API error, not a timeout
      assert.equal(1, code, out)
      ok(words("call", "opensearch", "create_function_instance", OS, "instance_name=slow2",
        "model_type=tf_checkpoint"))
      code, out, err = call(words("call", "opensearch", "create_function_task", OS, "instance_name=slow2",
        "--wait", "--timeout=1.5s"))
      assert.equal(4, code, err)
      assert.equal("running", json.decode(out).state)
      assert.matches("trainctl wait opensearch '", err, 1, true)
    end)

    it("Ctrl-C during --wait exits 130 and the reference is on stderr already", function()
      ok(words("call", "opensearch", "create_function_instance", OS, "instance_name=interrupted",
        "model_type=tf_checkpoint"))
      local proc = sim:spawn(words("call", "opensearch", "create_function_task", OS, "instance_name=interrupted",
        "--wait"))
      finally(function() proc:kill("KILL") end)
      -- Until the reference shows on stderr: the wait is then polling a
      -- training that never ends (the clock stands still).
      local ref = support.poll(function()
        return proc:stderr():match("trainctl wait opensearch '([^']+)'")
      end, 20, "the reference on stderr")
      assert.is_string(ref, proc:stderr())
      proc:kill("INT")
      local code = proc:wait(20)
      assert.equal(130, code)
      sim:advance(700)
      assert.equal("succeeded", json.decode(ok({ "wait", "opensearch", ref })).state)
    end)

    it("a reference of another provider, or none, is a usage error", function()
      local ref = start("mismatch")
      local code, _, err = call({ "wait", "aitems", ref })
      assert.equal(2, code)
      assert.matches("the reference is of opensearch, not aitems", err, 1, true)
      code, _, err = call({ "status", "opensearch", "not json" })
      assert.equal(2, code)
      assert.matches("REF must be the JSON a call printed", err, 1, true)
    end)
  end)

  describe("options", function()
    it("global options are accepted after the subcommand", function()
      local _, err = ok({ "call", "aitems", "list_services", "--log-level", "debug", "--log-format=json" })
      local rec = json.decode(lines(err)[1])
      assert.equal("debug", rec.level)
      local code
      code, _, err = call({ "call", "aitems", "list_services", "--profile", "nosuch" },
        { env = { NCLOUD_ACCESS_KEY = false, NCLOUD_SECRET_KEY = false } })
      assert.equal(2, code)
      assert.matches("nosuch", err, 1, true)
    end)

    it("--timeout bounds the whole call, transfers included, and exits 4; durations as everywhere",
      function()
        sim:faults({ { kind = "slow", delay = 30, match = { provider = "aitems" } } })
        local t0 = sys.clock()
        local code, out, err = call({ "call", "aitems", "list_services", "--timeout", "1s" })
        assert.equal(4, code, err)
        assert.equal("", out)
        assert.matches("timeout", err)
        assert.is_true(sys.clock() - t0 < 10)
        sim:admin("DELETE", "faults")
        ok({ "call", "aitems", "list_services", "--timeout=1m" })
      end)

    it("an unknown option suggests the one meant", function()
      local code, _, err = call({ "call", "aitems", "list_services", "--al" })
      assert.equal(2, code)
      assert.matches("did you mean --all?", err, 1, true)
    end)
  end)

  describe("usage errors say what was meant", function()
    it("a misspelt operation or parameter gets a suggestion", function()
      local code, _, err = call({ "call", "azure_language", "list_projcts" })
      assert.equal(2, code)
      assert.matches("did you mean list_projects?", err, 1, true)
      code, _, err = call({ "call", "aitems", "get_service", "servce_id=x" })
      assert.equal(2, code)
      assert.matches("did you mean service_id?", err, 1, true)
    end)

    it("every missing parameter is named in one message", function()
      local code, out, err = call({ "call", "aitems", "create_dataset", "type=user" })
      assert.equal(2, code)
      assert.equal("", out)
      assert.equal(1, #lines(err))
      assert.matches("missing required parameters name, schema_name, os_info", err, 1, true)
    end)

    it("a merge patch takes only what changes", function()
      local out = ok({ "call", "azure_language", "create_project", "project_name=beta", "description=renamed" })
      local p = json.decode(out)
      assert.equal("renamed", p.description)
      assert.equal("en", p.language)
      -- Creating still needs the fields; the service says which.
      local code, _, err = call({ "call", "azure_language", "create_project", "project_name=new",
        "description=x" })
      assert.equal(1, code)
      assert.matches("required", err)
    end)
  end)

  describe("deletes", function()
    local function exists(id)
      return call({ "call", "aitems", "get_service", "service_id=" .. id }) == 0
    end

    local function service(name)
      return json.decode(ok({ "call", "aitems", "create_service", "name=" .. name, "type=batch" })).serviceId
    end

    it("need --yes when stdin is not a terminal: exit 2, nothing deleted", function()
      local id = service("kept")
      local code, out, err = call({ "call", "aitems", "delete_service", "service_id=" .. id }, { stdin = "y\n" })
      assert.equal(2, code)
      assert.equal("", out)
      assert.matches("add --yes", err, 1, true)
      assert.is_true(exists(id))
      ok({ "call", "aitems", "delete_service", "service_id=" .. id, "--yes" })
      assert.is_false(exists(id))
    end)

    it("ask on a terminal: no keeps it (exit 1), yes deletes it", function()
      local id = service("asked")
      local code, screen = call({ "call", "aitems", "delete_service", "service_id=" .. id },
        { pty = { { "delete\\? \\[y/N\\] ", "n" } } })
      assert.equal(1, code, screen)
      assert.matches("nothing deleted", screen, 1, true)
      assert.is_true(exists(id))
      code, screen = call({ "call", "aitems", "delete_service", "service_id=" .. id },
        { pty = { { "delete\\? \\[y/N\\] ", "y" } } })
      assert.equal(0, code, screen)
      assert.is_false(exists(id))
    end)

    -- Ctrl-D alone, without the Enter that pty_run.py types after an
    -- answer: what the terminal shows is the program's own output.
    local CTRL_D = [[
import os, pty, select, sys, time
pid, fd = pty.fork()
if pid == 0:
    os.execvp(sys.argv[1], sys.argv[1:])
buf, sent, deadline = b"", False, time.monotonic() + 20
while time.monotonic() < deadline:
    if not sent and b"[y/N] " in buf:
        os.write(fd, b"\x04")
        sent = True
    if select.select([fd], [], [], 0.1)[0]:
        try:
            data = os.read(fd, 4096)
        except OSError:
            data = b""
        if not data:
            break
        buf += data
status = os.waitpid(pid, 0)[1]
sys.stdout.write(buf.decode("utf-8", "replace"))
sys.exit(os.waitstatus_to_exitcode(status))
]]

    it("Ctrl-D at the question keeps it (exit 1), the answer on a line of its own", function()
      local id = service("eof")
      local r = support.sh({ "python3", "-c", CTRL_D, "sh", "-c",
        sim:command({ "call", "aitems", "delete_service", "service_id=" .. id }) })
      local code, screen = r.code, r.out
      assert.equal(1, code, screen)
      assert.matches("\ntrainctl: not confirmed; nothing deleted", screen, 1, true)
      assert.is_nil(screen:find("[y/N] trainctl:", 1, true), screen)
      assert.is_true(exists(id))
    end)
  end)

  describe("on a terminal", function()
    it("json is pretty", function()
      local code, screen = call({ "call", "aitems", "list_services", "--all" }, { pty = {} })
      assert.equal(0, code)
      assert.matches('\r?\n  {\r?\n    "', screen)
    end)

    it("wait shows its progress on one rewritten line", function()
      ok(words("call", "opensearch", "create_function_instance", OS, "instance_name=shown",
        "model_type=tf_checkpoint"))
      local ref = ok(words("call", "opensearch", "create_function_task", OS, "instance_name=shown", "--no-wait"))
      local code, screen = call({ "wait", "opensearch", ref, "--timeout", "1s" }, { pty = {} })
      assert.equal(4, code)
      assert.matches("\r\27[K", screen, 1, true)
      assert.matches("opensearch training shown: running", screen, 1, true)
    end)
  end)
end)
