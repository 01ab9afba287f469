-- What a job keeps alive while it waits: thousands of jobs waited on at
-- once (job.wait_all) must not cost more than a few KiB each. Counted in
-- the Lua heap after full collections, which is exact for a given Lua and
-- library: no timing is involved.
local job = require("trainctl.job")
local task = require("trainctl.task")

local function heap()
  collectgarbage("collect")
  collectgarbage("collect")
  return collectgarbage("count") * 1024
end

-- kept(n, body) -> bytes per task while n tasks wait in body(i, ready)
-- (each calls ready() once it is about to wait). The tasks are cancelled.
local function kept(n, body)
  local tasks, ready = {}, 0
  local function note() ready = ready + 1 end
  local before = heap()
  for i = 1, n do tasks[i] = task.spawn(body, i, note) end
  while ready < n do task.yield() end
  local during = heap()
  for i = 1, n do tasks[i]:cancel() end
  return (during - before) / n
end

describe("a waiting job", function()
  it("keeps little more alive than the task it waits in", function()
    assert.truthy(task.current(), "the spec runs as a task")
    local n = 2000
    local sleeping = kept(n, function(_, ready)
      ready()
      task.sleep(3600)
    end)
    local waiting = kept(n, function(i, ready)
      local j = job.new({ provider = "test", label = "job " .. i, ref = { id = i },
        poll = function() return { state = "running" } end })
      j:wait({ quiet = true, interval = 3600, max_interval = 3600, jitter = 0,
        on_progress = function() ready() end })
    end)
    -- The job, its last status and the wait (frames, closure, options),
    -- on top of the task: 2,321 bytes when this was written, 2,832 before
    -- the wait was slimmed (quiet displays shared, fewer closures, smaller
    -- frames and option tables).
    assert.is_true(waiting - sleeping < 2600, ("a waiting job keeps %d bytes over its task's %d")
      :format(math.floor(waiting - sleeping), math.floor(sleeping)))
  end)
end)
