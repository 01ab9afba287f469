-- trainctl.task: coroutine tasks on one event loop (curl multi + timers).
--
-- Inside a task, http.request and sleep yield to the loop, so many jobs
-- are polled and many results fetched at once on one thread. The main
-- chunk of a script, `trainctl call` and each REPL line run as tasks. Code
-- that is not in a task (a -e chunk) may still spawn tasks: join, all and
-- map then run the loop until what they wait for is done.
--
-- This module alone owns the yield protocol. A task yields one of
--   "http", transfer   a transfer started with trainctl._curl.start, with
--                      the task as its owner: _loop.poll gives it back
--   "slot"             waits for a free transfer slot (max_inflight)
--   "sleep", seconds   a timer on the heap below
--   "join", "yield"    woken by the joined task; run again next turn
-- The natives below never yield: _curl starts and finishes transfers (or
-- blocks, outside tasks), _loop polls the loop and resumes coroutines,
-- _proc starts children and looks at them (os.execute, below).

local loop = require "trainctl._loop"
local curl = require "trainctl._curl"
local native_sleep = require("trainctl._sys").sleep
local proc = require "trainctl._proc"

local M = {}

local Task = {}
Task.__index = Task

local ready = {}         -- FIFO of tasks to resume
local ready_head, ready_tail = 1, 0
-- The timers: a binary heap kept in three arrays (a table per timer
-- would cost a hundred bytes more for each sleeping task), ordered by
-- when they fall due, then by when they were set.
local heap_at, heap_seq, heap_task, ntimers = {}, {}, {}, 0
local timer_seq = 0
local nstale = 0         -- timers of tasks cancelled while sleeping
-- Tasks waiting for a transfer slot (the loop keeps at most
-- loop.max_inflight() requests in flight), first come first served.
local slot_waiters, slot_head, slot_tail = {}, 1, 0
local live = {}          -- task -> true while not finished
local nlive = 0
local current = nil      -- the task running now
local running = false    -- a scheduler is on the stack
local failed_unjoined = {}

local now = require("trainctl._sys").clock

-- How late the loop may wake for a timer when it has nothing else to do:
-- a sleep never ends early, and ends up to SLACK later than the system
-- would wake it, so that timers falling due within SLACK of each other
-- share one wake-up. A thousand jobs polled every second fall due a
-- millisecond apart; waking for each alone costs a context switch per
-- poll, and the wake-up of the server each request then finds asleep
-- (on loopback, paid by the sender).
local SLACK = 0.001

local function push_ready(task)
  ready_tail = ready_tail + 1
  ready[ready_tail] = task
end

local function before(i, j)
  local a, b = heap_at[i], heap_at[j]
  return a < b or (a == b and heap_seq[i] < heap_seq[j])
end

local function swap(i, j)
  heap_at[i], heap_at[j] = heap_at[j], heap_at[i]
  heap_seq[i], heap_seq[j] = heap_seq[j], heap_seq[i]
  heap_task[i], heap_task[j] = heap_task[j], heap_task[i]
end

local function heap_insert(at, seq, task)
  ntimers = ntimers + 1
  local i = ntimers
  heap_at[i], heap_seq[i], heap_task[i] = at, seq, task
  while i > 1 do
    local p = i // 2
    if before(p, i) then break end
    swap(p, i)
    i = p
  end
end

local function timer_push(at, task)
  timer_seq = timer_seq + 1
  heap_insert(at, timer_seq, task)
end

-- timer_pop() -> the task of the timer due first, which leaves the heap.
local function timer_pop()
  local task, n = heap_task[1], ntimers
  swap(1, n)
  heap_at[n], heap_seq[n], heap_task[n] = nil, nil, nil
  n = n - 1
  ntimers = n
  local i = 1
  while true do
    local l, r, m = 2 * i, 2 * i + 1, i
    if l <= n and before(l, m) then m = l end
    if r <= n and before(r, m) then m = r end
    if m == i then break end
    swap(i, m)
    i = m
  end
  return task
end

local function message(err)
  if type(err) == "string" then return err end
  local mt = getmetatable(err)
  return (mt and mt.__tostring) and tostring(err) or ("(error object is a %s value)"):format(type(err))
end

-- caught(co, err) -> {err, trace}: a task's body failed with err. Its
-- coroutine keeps the frames it failed in until it is closed: the trace
-- is taken from them, then its to-be-closed variables are closed (an
-- error in one of them is the task's error from then on).
local function caught(co, err)
  local msg = message(err)
  local trace = msg
  -- A structured error (an API or usage error) says what a user needs;
  -- its Lua frames are shown only at --log-level debug or trace.
  if not (type(err) == "table" and type(err.kind) == "string") or loop.verbose() then
    trace = debug.traceback(co, msg)
  end
  debug.sethook(co) -- an interrupt hook left unfired would fire in a __close
  local ok, cerr = coroutine.close(co)
  if not ok and cerr ~= err then return { err = cerr, trace = message(cerr) } end
  return { err = err, trace = trace }
end

local function finish(task, ok, ...)
  live[task] = nil
  nlive = nlive - 1
  task.done = true
  task.sleep_timer = nil
  if ok then
    task.results = table.pack(...)
  else
    local e = ...
    task.failed = true -- error(nil) fails too: task.error may be nil
    task.error = e.err
    task.trace = e.trace
    -- Reported at the end of the run unless a join delivers the error
    -- by then (a joiner may itself be cancelled before it reads it). A
    -- task that fails while a signal is pending was most likely stopped
    -- by it (the hook raises in whatever task runs): not worth a report.
    if not task.main and loop.interrupted() == 0 then
      failed_unjoined[#failed_unjoined + 1] = task
    end
  end
  for _, j in ipairs(task.joiners or {}) do push_ready(j) end
  task.joiners = nil
end

-- What a task's resume gave: it ended (with its body's results, or
-- failed), or it waits for `kind`.
local function resumed(task, prev, ok, ...)
  current = prev
  if coroutine.status(task.co) == "dead" then
    if ok then
      finish(task, true, ...)
    else
      finish(task, false, caught(task.co, (...)))
    end
    return
  end
  if not ok then return end
  local kind, arg = ...
  if kind == "http" then
    task.transfer = arg
  elseif kind == "slot" then
    slot_tail = slot_tail + 1
    slot_waiters[slot_tail] = task
  elseif kind == "sleep" then
    task.sleep_timer = true
    -- not (arg > 0) also catches NaN, which would never fall due and,
    -- compared false both ways, would break the heap's order
    timer_push(now() + ((tonumber(arg) or 0) > 0 and arg or 0), task)
  elseif kind ~= "join" then
    -- "yield", or a bare coroutine.yield() in a task body: run again soon.
    -- A joiner is woken by the task it joined.
    push_ready(task)
  end
end

local function resume(task)
  local prev = current
  current = task
  local args = task.args
  if args then -- its first run: the arguments of spawn
    task.args = nil
    return resumed(task, prev, loop.resume(task.co, table.unpack(args, 1, args.n)))
  end
  return resumed(task, prev, loop.resume(task.co))
end

--- spawn(fn, ...) -> task. The task starts at the next turn of the loop.
function M.spawn(fn, ...)
  assert(type(fn) == "function" or (getmetatable(fn) or {}).__call,
    "task.spawn: function expected")
  local task = setmetatable({}, Task)
  -- The body is the coroutine itself: a wrapper would cost each waiting
  -- task a closure and frames on its stack.
  if type(fn) ~= "function" then
    local callable = fn
    fn = function(...) return callable(...) end
  end
  task.co = coroutine.create(fn)
  if select("#", ...) > 0 then task.args = table.pack(...) end
  live[task] = true
  nlive = nlive + 1
  push_ready(task)
  return task
end

-- A cancelled sleeper's timer stays on the heap (removing it from the
-- middle would need an index per task): it is dropped when it reaches the
-- top, and the heap is rebuilt when such timers are the majority, so that
-- cancelling many long sleeps neither holds memory until their deadlines
-- nor keeps the loop "busy" with nothing left to wake.
local function drop_stale()
  while ntimers > 0 and heap_task[1].done do
    timer_pop()
    nstale = nstale - 1
  end
end

local function compact_timers()
  local at, seq, tasks, n = heap_at, heap_seq, heap_task, ntimers
  heap_at, heap_seq, heap_task, ntimers, nstale = {}, {}, {}, 0, 0
  for i = 1, n do
    if not tasks[i].done then heap_insert(at[i], seq[i], tasks[i]) end
  end
end

local function pending_work()
  drop_stale()
  return ready_head <= ready_tail or ntimers > 0 or loop.pending() > 0
    or slot_head <= slot_tail
end

-- Closes a task's coroutine, so its to-be-closed variables are closed. A
-- signal that arrived while the task ran may have left the interrupt hook
-- set on it, unfired: it would fire in the first __close handler instead.
-- An error in a __close handler of a cancelled task (a state file that
-- cannot be saved) is reported at the end of the run, as a failure nobody
-- joined is.
local function close(co)
  local status = coroutine.status(co)
  if status == "dead" then
    -- It failed as a stop came, whose hook raised in the scheduler before
    -- the failure was handled: its variables are closed now, and its
    -- error is the stop's doing, not worth a report.
    debug.sethook(co)
    coroutine.close(co)
  elseif status == "suspended" then
    debug.sethook(co)
    local ok, err = coroutine.close(co)
    if not ok then
      err = { error = err, trace = message(err) }
      err.closing = true
      failed_unjoined[#failed_unjoined + 1] = err
    end
  end
end

-- halt(task): its transfer aborted, its coroutine closed (its __close
-- handlers run), and it no longer counted live.
local function halt(task)
  if task.transfer then
    curl.abort(task.transfer)
    task.transfer = nil
  end
  close(task.co)
  live[task] = nil
end

local function cancel_all(reason)
  current = nil
  -- The __close handlers that run here may spawn tasks: a table must not
  -- gain keys while pairs walks it, so work on a copy, until none is left.
  while next(live) do
    local batch = {}
    for task in pairs(live) do batch[#batch + 1] = task end
    for _, task in ipairs(batch) do
      halt(task)
      task.done = true
      if not task.failed then task.failed, task.error = true, reason end
      task.cancelled = true
    end
  end
  nlive, nstale = 0, 0
  ready, ready_head, ready_tail = {}, 1, 0
  heap_at, heap_seq, heap_task, ntimers = {}, {}, {}, 0
  slot_waiters, slot_head, slot_tail = {}, 1, 0
end

-- The collector's pause follows the live heap. Lua's default (200: a
-- cycle starts when the heap has doubled since the last) costs little
-- with a small heap, but with ten thousand jobs waiting it lets garbage
-- grow as large as all the jobs together. After each cycle the pause is
-- set so that garbage may reach a fifth of the heap, but at least
-- GC_ROOM and at most GC_ROOM_MAX (and never more than the heap itself:
-- the default). A pause the script sets itself (collectgarbage
-- ("setpause", n)) is left alone.
local GC_ROOM, GC_ROOM_MAX = 4 * 1024, 16 * 1024 -- KiB
local gc_cycles, gc_seen, gc_set, gc_mine = 0, 0, nil, true
local function gc_sentinel()
  setmetatable({}, { __gc = function()
    gc_cycles = gc_cycles + 1
    gc_sentinel()
  end })
end
gc_sentinel()

local function gc_adjust()
  gc_seen = gc_cycles
  local heap = collectgarbage("count")
  local room = math.max(GC_ROOM, math.min(heap / 5, GC_ROOM_MAX))
  local pause = math.min(200, 100 + math.floor(100 * room / heap))
  pause = pause - pause % 4 -- as Lua keeps it
  local was = collectgarbage("setpause", pause)
  if gc_set and was ~= gc_set then -- the script's own
    collectgarbage("setpause", was)
    gc_mine = false
  end
  gc_set = pause
end

-- One turn: run the tasks that were ready when it began, then look at
-- transfers and timers. A task that becomes ready again during the turn
-- (task.yield) waits for the next one, behind the transfers and timers
-- that fell due meanwhile: a task polling a flag in a yield loop must not
-- starve the sleep or request that would set it. When `done()` becomes
-- true the turn ends before waiting: what the caller waits for is there.
local function turn(done)
  if gc_cycles ~= gc_seen and gc_mine then gc_adjust() end
  local last = ready_tail
  while ready_head <= last do
    local task = ready[ready_head]
    ready[ready_head] = nil
    ready_head = ready_head + 1
    if not task.done then
      task.transfer = nil
      resume(task)
    end
    if loop.interrupted() ~= 0 then return end
  end
  if done() then return end
  local timeout = 0 -- while tasks are ready, only look
  if ready_head > ready_tail then
    drop_stale()
    if ntimers > 0 then
      local left = heap_at[1] - now()
      timeout = left > 0 and left + SLACK or 0 -- sleep(0): the next turn
    elseif loop.pending() > 0 then
      timeout = 1
    end
    if slot_head <= slot_tail and loop.free_slots() > 0 then timeout = 0 end
  end
  -- The tasks whose transfer finished: a cancelled task's was aborted.
  for _, task in ipairs(loop.poll(timeout)) do push_ready(task) end
  -- Each freed slot goes to the task that has waited longest for one.
  local free = loop.free_slots()
  while free > 0 and slot_head <= slot_tail do
    local task = slot_waiters[slot_head]
    slot_waiters[slot_head] = nil
    slot_head = slot_head + 1
    if not task.done then
      push_ready(task)
      free = free - 1
    end
  end
  local t = now()
  while ntimers > 0 and heap_at[1] <= t do
    local task = timer_pop()
    if task.done then
      nstale = nstale - 1
    else
      task.sleep_timer = nil
      push_ready(task)
    end
  end
end

-- Failures nobody joined are printed, and fail the run: a cron job must
-- not exit 0 after losing work in a background task.
local function report_unjoined()
  local first, n, closing = nil, 0, false
  for _, task in ipairs(failed_unjoined) do
    if not task.joined then
      require("trainctl.log").report(task.trace or tostring(task.error), task.error, nil,
        task.closing and "error while closing a cancelled task" or "error in a task nobody joined")
      first = first == nil and task.error or first
      n = n + 1
      closing = closing or task.closing
    end
  end
  failed_unjoined = {}
  return n, first, closing
end

-- The error a signal raises: the host's own words for it.
local interruption = loop.stop_message

-- Runs the loop until `until_fn()` is true or nothing is left to do.
local function run_until(until_fn)
  if running then error("task: the event loop is already running", 2) end
  running = true
  local ok, err = pcall(function()
    while not until_fn() and pending_work() do
      turn(until_fn)
      if loop.interrupted() ~= 0 then error(interruption(), 0) end
    end
  end)
  -- A second signal (Ctrl-C pressed twice) can land in this clean-up; the
  -- hook raises once per signal, so the clean-up is simply run again, and
  -- every step of it can be repeated. Left half done, the loop would stay
  -- "already running" for every later REPL line.
  repeat
  until pcall(function()
    running = false
    if not ok then cancel_all(err) end
  end)
  if not ok then error(err, 0) end
end

-- The loop ran out of work while tasks are still live: each waits to
-- join another, in a cycle.
local function deadlock(n)
  return ("task: deadlock: %d task(s) wait to join each other and can never finish"):format(n)
end

local function current_task()
  -- only the scheduler's own coroutine is a task, not one nested inside it
  if current and coroutine.running() == current.co then return current end
  return nil
end

-- A task can only wait where it can yield: not inside a C function's
-- callback nor a metamethod. Raised at the caller of sleep/request.
local function cannot_wait(what)
  error(what .. " cannot wait here: a task can only wait where it can yield, not inside a C "
    .. "function's callback (table.sort, string.gsub, ...) or a __gc/__close metamethod", 3)
end

--- sleep(seconds): yields to the loop inside a task, blocks outside (as
--- does a coroutine of the user's inside a task: it is not the task).
--- Never ends early; inside a task it ends about SLACK (1 ms) late.
function M.sleep(seconds)
  local s = tonumber(seconds)
  if s == nil then
    error(("bad argument #1 to 'sleep' (number expected, got %s)"):format(type(seconds)), 2)
  end
  if not current_task() then return native_sleep(s) end
  if not coroutine.isyieldable() then cannot_wait("sleep") end
  coroutine.yield("sleep", s > 0 and s or 0) -- NaN would never fall due
end

--- request(opts) -> res | nil, err: trainctl._http's request. Inside a
--- task it waits for a transfer slot, starts the transfer and yields until
--- the loop has finished it; elsewhere it blocks on the native request.
function M.request(opts)
  if not current_task() then return curl.request(opts) end
  if not coroutine.isyieldable() then cannot_wait("http.request") end
  -- Past the limit a task waits holding nothing but its coroutine: ten
  -- thousand jobs polled at once cost ten thousand coroutines, not ten
  -- thousand handles, buffers and connections.
  while loop.free_slots() <= 0 do coroutine.yield("slot") end
  local transfer, started = curl.start(opts, current)
  if started then coroutine.yield("http", transfer) end
  return curl.finish(transfer)
end

-- os.execute inside a task: the other tasks run while its child does.
-- The child is looked at between turns of the loop, first after 1 ms,
-- then each time twice as long, up to CHILD_LOOK_MAX; a stop ends the
-- wait as it ends a sleep. A task cancelled while its child runs ends the
-- child with it (SIGTERM to its group, SIGKILL 3 s later). Outside tasks,
-- and where the task cannot yield, it blocks until the child exits, as
-- in Lua (trainctl._proc.execute).
local CHILD_LOOK_MAX = 0.05
local EAGAIN = 11 -- Linux's: the table of children is full
local function execute(cmd)
  if cmd == nil or not current_task() or not coroutine.isyieldable() then
    return proc.execute(cmd)
  end
  local pid, err, code = proc.spawn(cmd)
  -- The run tracks so many children at once (256): past that, a task
  -- waits for one of the others to end, as it waits for a transfer slot.
  local delay = 0.001
  while not pid and code == EAGAIN and proc.full() do
    coroutine.yield("sleep", delay)
    delay = math.min(delay * 2, CHILD_LOOK_MAX)
    pid, err, code = proc.spawn(cmd)
  end
  if not pid then return pid, err, code end
  local child <close> = setmetatable({}, { __close = function(c)
    if not c.reaped then proc.stop(pid) end
  end })
  delay = 0.001
  while true do
    local done, ok, what, status = proc.poll(pid)
    if done then
      child.reaped = true
      return ok, what, status
    end
    coroutine.yield("sleep", delay)
    delay = math.min(delay * 2, CHILD_LOOK_MAX)
  end
end
os.execute = execute -- luacheck: ignore 122 (the host's own, made task-aware)

--- yield(): lets the other ready tasks run first.
function M.yield()
  if current_task() then coroutine.yield("yield") end
end

local function outcome(task)
  task.joined = true
  if task.failed then error(task.error, 0) end
  return table.unpack(task.results, 1, task.results.n)
end

--- t:join() -> the task's results, or raises its error.
function Task:join()
  if not self.done then
    local me = current_task()
    if me then
      if me == self then error("task: a task cannot join itself", 2) end
      self.joiners = self.joiners or {}
      self.joiners[#self.joiners + 1] = me
      repeat coroutine.yield("join") until self.done
    else
      if running then
        error("task: join cannot wait in a coroutine nested inside a task; join from the task itself", 2)
      end
      run_until(function() return self.done end)
      if not self.done then error(deadlock(nlive), 2) end
    end
  end
  return outcome(self)
end

--- t:cancel([err]): stops the task; joining it then raises "cancelled",
--- or err when given (the reason a main task was stopped, for its exit).
function Task:cancel(reason)
  if self.done then return end
  -- running, or suspended in a coroutine of its own that runs now
  if coroutine.status(self.co) ~= "suspended" then
    error("task: cancel yourself by returning", 2)
  end
  halt(self)
  nlive = nlive - 1
  self.done, self.cancelled = true, true
  if self.sleep_timer then
    self.sleep_timer = nil
    nstale = nstale + 1
    if nstale > 64 and 2 * nstale > ntimers then compact_timers() end
  end
  self.failed = true
  self.error = reason or setmetatable({ kind = "cancelled", message = "task cancelled" },
    { __tostring = function(e) return e.message end })
  if reason ~= nil then self.trace = tostring(reason) end
  for _, j in ipairs(self.joiners or {}) do push_ready(j) end
  self.joiners = nil
end

function Task:status()
  if self.cancelled then return "cancelled" end
  if not self.done then return "running" end
  return self.failed and "failed" or "succeeded"
end

--- all{t1, t2, ...} -> list of each task's first result; raises the
--- first error after every task has finished.
function M.all(tasks)
  local out, first_err = {}, nil
  for i, t in ipairs(tasks) do
    local ok, r = pcall(t.join, t)
    if ok then out[i] = r elseif first_err == nil then first_err = r end
  end
  if first_err ~= nil then error(first_err, 0) end
  return out
end

--- map(list, fn, {concurrency = n}) -> results in list order. At most n
--- calls of fn(item, index) run at once (default 16).
function M.map(list, fn, opts)
  local n = (opts and opts.concurrency) or 16
  assert(n >= 1, "task.map: concurrency must be at least 1")
  local results, next_i, first_err = {}, 1, nil
  local function worker()
    while first_err == nil and next_i <= #list do
      local i = next_i
      next_i = i + 1
      local ok, r = pcall(fn, list[i], i)
      if ok then results[i] = r elseif first_err == nil then first_err = r end
    end
  end
  local workers = {}
  -- Cancelling the task that runs map closes this variable: the calls in
  -- flight are cancelled with it instead of running on for nobody.
  local _ <close> = setmetatable({}, { __close = function()
    for _, w in ipairs(workers) do w:cancel() end
  end })
  for w = 1, math.min(n, #list) do workers[w] = M.spawn(worker) end
  for _, w in ipairs(workers) do w:join() end
  if first_err ~= nil then error(first_err, 0) end
  return results
end

--- max_inflight([n]) -> the most requests the loop keeps in flight at
--- once (default 256); past it a task's request waits for a free slot.
function M.max_inflight(n) return loop.max_inflight(n) end

--- current() -> the running task, or nil outside tasks.
function M.current() return current_task() end

--- count() -> number of live tasks.
function M.count() return nlive end

--- main(fn, ...) -> true, results... | false, err, traceback
--- Runs fn as the main task and the loop until every task has finished.
--- Used by the host for scripts, `trainctl call` and REPL lines.
function M.main(fn, ...)
  local task = M.spawn(fn, ...)
  task.main = true
  local ok, err = pcall(run_until, function()
    -- a failed main task does not wait for the others: they are cancelled
    return task.done and (nlive == 0 or task.failed)
  end)
  local stuck
  if ok and nlive > 0 then
    if not task.failed then stuck = deadlock(nlive) end
    cancel_all(stuck or "task: cancelled: the main task failed")
  end
  local lost, lost_err, closing = report_unjoined()
  if not ok then
    return false, err, tostring(err)
  end
  if stuck then return false, stuck, stuck end
  if task.failed then return false, task.error, task.trace end
  if lost > 0 then
    return false, lost_err, (closing and "%d error(s) in tasks went unhandled (see above)"
      or "%d task(s) failed and nobody joined them (see above)"):format(lost)
  end
  return true, table.unpack(task.results, 1, task.results.n)
end

return M
