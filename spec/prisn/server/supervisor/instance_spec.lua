-- One instance's exits and health (prisn.server.supervisor.instance) with a
-- fake loop, clock and store and the built-in restart policy: the first
-- crash restarts at once, the next ones after a growing delay, "never" stops
-- it, an exit prisn asked for is never restarted, and serving resets it; its
-- output stays attached to the log host until it is forgotten.
local fakes = require("prisn.server.supervisor.fakes")
local names = require("prisn.server.supervisor.names")

local NS, NAME = "default", "web"

-- default/web with one running, healthy instance of a spec `spec`.
local function running(spec)
  local w = fakes.world()
  w.store.add({ namespace = NS, name = NAME, revision = 1, replicas = 1 },
    { [1] = { state = "active", spec = spec or { script = "app.py" } } })
  assert(w.sup:apply(NS, NAME))
  local d = w.sup:get(NS, NAME)
  local inst = d.instances[1]
  w.sup:health_changed(d, inst, "healthy")
  return w, d, inst
end

local function crash(w, d, inst, code)
  w.sup:exited(d, inst, { exited = true, code = code or 1 })
end

describe("prisn.server.supervisor.instance", function()
  describe("a crash", function()
    it("restarts at once the first time, and kills what the process group left", function()
      local w, d, inst = running()
      local pid = inst.pid
      local starts = #w.started
      crash(w, d, inst, 3)
      assert.same({ pid = -pid, signal = "sigkill" }, w.uv.killed[1])
      assert.equal(starts + 1, #w.started)
      assert.equal(1, inst.restarts)
      assert.is_nil(inst.restart_timer)
      assert.is_false(inst.healthy)
      assert.same({ at = w.clock.ms, code = 3, reason = "exited" },
        { at = inst.last_exit.at, code = inst.last_exit.code, reason = inst.last_exit.reason })
      assert.same({ "exited with code 3; restarting now" }, w.messages("instance.exited"))
      assert.same({ exited = 1 }, w.server.metrics.instance_exits.counts)
    end)

    it("waits a growing delay from the second crash in a row (crash_loop_backoff)", function()
      local w, d, inst = running()
      crash(w, d, inst)
      local starts = #w.started
      crash(w, d, inst)
      assert.equal(starts, #w.started) -- not yet
      assert.equal("crash_loop_backoff", inst.state)
      assert.equal("crash_loop_backoff", w.store.instances(nil, NS, NAME)[1].state)
      assert.is_true(inst.crash_loop)
      local first = inst.restart_timer.timeout
      assert.is_true(first >= 900 and first <= 1100, "about 1 s, got " .. first)
      w.uv.fire(inst.restart_timer)
      assert.equal(starts + 1, #w.started)
      assert.is_nil(inst.restart_timer)
      crash(w, d, inst)
      local second = inst.restart_timer.timeout
      assert.is_true(second >= 1800 and second <= 2200, "about 2 s, got " .. second)
      assert.matches("^exited with code 1; restart 3 in a row, waiting ", w.messages("instance.exited")[3])
    end)

    it("starts a new run of failures after the instance served long enough", function()
      local w, d, inst = running()
      crash(w, d, inst)
      w.sup:health_changed(d, inst, "healthy")
      w.clock.advance(61 * 1000)
      crash(w, d, inst)
      assert.is_nil(inst.restart_timer) -- at once again
      assert.is_false(inst.crash_loop)
    end)

    it("stops the instance for good under restart policy never", function()
      local w, d, inst = running({ script = "app.py", restart = "never" })
      local starts = #w.started
      crash(w, d, inst)
      assert.equal(starts, #w.started)
      assert.equal("stopped", inst.state)
      assert.equal("stopped", w.store.instances(nil, NS, NAME)[1].state)
      assert.same({ "exited with code 1; restart policy is never" }, w.messages("instance.exited"))
    end)

    it("says why an instance could not start", function()
      local w, d, inst = running()
      inst.last_exit = { message = "no such runner" }
      w.sup:exited(d, inst, { failed_to_start = true })
      assert.same({ "could not start: no such runner; restarting now" }, w.messages("instance.exited"))
      assert.equal("failed_to_start", inst.last_exit.reason)
    end)
  end)

  describe("an exit prisn asked for", function()
    it("is never restarted, and the instance is forgotten", function()
      local w, d, inst = running()
      local removed = false
      w.store.update(nil, NS, NAME, { replicas = 0 }) -- a scale to zero
      assert(w.sup:apply(NS, NAME))
      assert.is_true(inst.removing)
      w.sup:remove_instance(d, inst, function() removed = true end)
      assert.equal("draining", inst.state)
      w.uv.fire_due(0) -- the drain: no open connection, so SIGTERM at once
      assert.same({ pid = -inst.pid, signal = "sigterm" }, w.uv.killed[1])
      local starts = #w.started
      w.sup:exited(d, inst, { signal = "SIGTERM" })
      assert.is_true(removed)
      assert.equal(starts, #w.started)
      assert.same({ "was killed by signal SIGTERM" }, w.messages("instance.stopped"))
      assert.same({}, w.messages("instance.exited"))
      assert.is_nil(d.instances[1])
      assert.same({}, w.store.instances(nil, NS, NAME))
    end)

    it("kills with SIGKILL after the grace", function()
      local w, d, inst = running({ script = "app.py", grace = 2 })
      w.sup:remove_instance(d, inst)
      w.uv.fire_due(0)
      assert.equal(2000, inst.kill_timer.timeout)
      w.uv.fire(inst.kill_timer)
      assert.same({ pid = -inst.pid, signal = "sigkill" }, w.uv.killed[2])
    end)
  end)

  describe("output", function()
    it("is attached to the log host at a start, stays attached across a crash, and let go of when forgotten",
      function()
      local w, d, inst = running()
      local calls = {}
      w.sup.output_host = {
        attach = function(_, key, spec)
          calls[#calls + 1] = { "attach", key, spec.path, spec.fifos.stdout }
          return true
        end,
        detach = function(_, key) calls[#calls + 1] = { "detach", key } end,
      }
      inst.fifos = { stdout = "/run/default/web-1.out", stderr = "/run/default/web-1.err" }
      w.sup:attach_output(d, inst)
      assert.same({ { "attach", "default/web/1", fakes.HOME .. "/logs/default/deploy/web/1.log",
        "/run/default/web-1.out" } }, calls)
      crash(w, d, inst)
      assert.equal(1, #calls) -- the pump holds the pipes: nothing to redo
      w.sup:remove_instance(d, inst)
      w.uv.fire_due(0)
      w.sup:exited(d, inst, { signal = "SIGTERM" })
      assert.same({ "detach", "default/web/1" }, calls[2])
      assert.equal(2, #calls)
    end)

    it("says so when the log host cannot take it", function()
      local w, d, inst = running()
      w.sup.output_host = { attach = function() return nil, "cannot read /run/x.out: ENOENT" end }
      inst.fifos = { stdout = "/run/x.out", stderr = "/run/x.err" }
      w.sup:attach_output(d, inst)
      assert.same({ level = "error", text = "web-1: cannot keep its output: cannot read /run/x.out: ENOENT" },
        w.log.lines[#w.log.lines])
    end)
  end)

  describe("a child held until its pid is recorded", function()
    local errors = require("prisn.error")
    local writer_mod = require("prisn.store.writer")

    -- w with the server's writer over a fake transaction: state.db is busy
    -- (SQLITE_BUSY: the write waits and is retried) or full (degraded)
    -- while world.db_fails says so.
    local function with_writer()
      local w, d, inst = running()
      w.server.state_writer = writer_mod.new(w.server.db, { new_timer = w.uv.new_timer, events = false,
        transaction = function(fn)
          if w.db_fails then errors.raise(w.db_fails, "state.db: " .. w.db_fails) end
          return fn()
        end })
      return w, d, inst
    end

    local function pending(w, d, inst, pid)
      local released = 0
      local holds = w.sup:spawn_pending(d, inst, pid, function() released = released + 1 end)
      return holds, function() return released end
    end

    it("is released once its pid is written, at once when state.db takes it", function()
      local w, d, inst = with_writer()
      local holds, released = pending(w, d, inst, 4242)
      assert.is_true(holds)
      assert.equal(1, released())
      assert.equal(4242, w.store.insts[NS .. "/" .. NAME][1].pid)
    end)

    it("waits for a busy state.db, also when a later record of the instance replaces the one waiting", function()
      local w, d, inst = with_writer()
      w.db_fails = "SQLITE_BUSY"
      local holds, released = pending(w, d, inst, 4343)
      assert.is_true(holds)
      assert.equal(0, released())
      w.sup:set_state(d, inst, "restarting") -- replaces the waiting record
      assert.equal(0, released())
      w.db_fails = nil
      w.server.state_writer:drain()
      assert.equal(1, released())
      local row = w.store.insts[NS .. "/" .. NAME][1]
      assert.same({ 4343, "restarting" }, { row.pid, row.state })
      -- Its fallback timer no longer fires.
      for _, t in ipairs(w.uv.active()) do
        if t.timeout == 2000 then w.uv.fire(t) end
      end
      assert.equal(1, released())
    end)

    it("is released after RECORD_WAIT_MS when the record still waits, with a warning", function()
      local w, d, inst = with_writer()
      w.db_fails = "SQLITE_BUSY"
      local _, released = pending(w, d, inst, 4444)
      local fallback
      for _, t in ipairs(w.uv.active()) do if t.timeout == 2000 then fallback = t end end
      w.uv.fire(fallback)
      assert.equal(1, released())
      assert.matches("its pid is not recorded after 2000 ms; starting it anyway", w.log.lines[#w.log.lines].text)
      w.db_fails = nil
      w.server.state_writer:drain()
      assert.equal(1, released())
    end)

    it("is not held while state.db cannot be written at all (degraded)", function()
      local w, d, inst = with_writer()
      w.db_fails = "SQLITE_FULL"
      local holds, released = pending(w, d, inst, 4545)
      assert.is_false(holds) -- the caller releases it at once
      assert.equal(0, released())
      w.db_fails = nil
      w.server.state_writer:drain()
      assert.equal(0, released())
    end)
  end)

  describe("health", function()
    it("a failed health check restarts the instance through the restart policy", function()
      local w, d, inst = running()
      w.sup:health_changed(d, inst, "failed", "HTTP 500")
      assert.equal("unhealthy", inst.state)
      assert.same({ pid = -inst.pid, signal = "sigterm" }, w.uv.killed[1])
      assert.same({ "failed its health check: HTTP 500; restarting it" }, w.messages("instance.unhealthy"))
    end)
  end)

  describe("names", function()
    it("names cgroups so no two deployments share one", function()
      local d = { home_tag = "abcd1234", ns = "a", name = "b-c" }
      assert.equal("svc-abcd1234-a.b-c-3-2", names.cgroup_name(d, { number = 3, restarts = 2 }))
      local pattern = names.cgroup_pattern(d)
      assert.truthy(("svc-abcd1234-a.b-c-3-2"):match(pattern))
      assert.falsy(("svc-abcd1234-a-b.c-3-2"):match(pattern))
      assert.equal("b-c-3", names.name(d, { number = 3 }))
    end)
  end)
end)

describe("prisn.server.supervisor on_pool_change", function()
  it("hears when an instance turns ready, exits (no port needed) and when the deployment is deleted", function()
    local w = fakes.world()
    local seen = {}
    w.sup.on_pool_change[#w.sup.on_pool_change + 1] = function(d)
      local ready = 0
      for _, i in pairs(d.instances) do
        if i.healthy and i.pid and not i.removing then ready = ready + 1 end
      end
      seen[#seen + 1] = d.deleted and "deleted" or ready
    end
    w.store.add({ namespace = NS, name = NAME, revision = 1, replicas = 1 },
      { [1] = { state = "active", spec = { script = "app.py" } } })
    assert(w.sup:apply(NS, NAME))
    local d = w.sup:get(NS, NAME)
    w.sup:health_changed(d, d.instances[1], "healthy")
    assert.are.equal(1, seen[#seen])
    seen = {}
    crash(w, d, d.instances[1])
    assert.are.equal(0, seen[1], "the exit is heard before the restart")
    w.sup:delete(NS, NAME, function() end)
    assert.are.equal("deleted", seen[#seen])
  end)
end)
