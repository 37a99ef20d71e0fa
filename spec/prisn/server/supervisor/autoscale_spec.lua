-- Autoscaling rounds (prisn.server.supervisor.autoscale) with a fake loop,
-- clock, store and autoscale policy: the policy sees each serving instance's
-- CPU use since the last round, and a change of replicas is written,
-- recorded, hooked and reconciled; nothing happens during a rollout or when
-- the policy fails.
local fakes = require("prisn.server.supervisor.fakes")
local autoscale = require("prisn.server.supervisor.autoscale")

local NS, NAME = "default", "web"
local SETTINGS = { min = 1, max = 5, target_cpu = 50 }

-- A world with default/web under --auto (2 serving instances whose cgroups
-- report `usage[number]` µs of CPU) and a policy answering `answer(reading)`.
local function autoscaled(answer, spec)
  local policy = { calls = {} }
  function policy.decide(state, reading, opts)
    policy.calls[#policy.calls + 1] = { state = state, reading = reading, opts = opts }
    return answer(reading)
  end
  local restart = require("prisn.policies.restart")
  local w = fakes.world({ policies = { get = function(_, name)
    if name == "autoscale" then return policy end
    if name == "restart" then return restart end
    return require("prisn.policies.rollout")
  end } })
  w.policy = policy
  w.store.add({ namespace = NS, name = NAME, revision = 1, replicas = 2, autoscale = SETTINGS },
    { [1] = { state = "active", spec = spec or { script = "app.py" } } })
  assert(w.sup:apply(NS, NAME))
  local d = w.sup:get(NS, NAME)
  w.usage = {}
  for number, inst in pairs(d.instances) do
    w.usage[number] = 0
    inst.limiter = { cgroup = { stats = function() return { cpu_usage_us = w.usage[number] } end } }
    w.sup:health_changed(d, inst, "healthy")
  end
  return w, d
end

local function keep(reading) return { desired = reading.current, reason = "steady", next = { n = 1 } } end

describe("prisn.server.supervisor.autoscale", function()
  it("gives the policy each serving instance's CPU use since the last round", function()
    local w, d = autoscaled(keep, { script = "app.py", cpu = 2 })
    w.sup:autoscale()
    assert.same({}, w.policy.calls[1].reading.cpu) -- nothing to compare with yet
    assert.same(SETTINGS, w.policy.calls[1].opts)
    assert.equal(w.clock.ms / 1000, w.policy.calls[1].reading.at)
    w.uv.ns = w.uv.ns + 1e9            -- one second later
    w.usage[1] = 1000000               -- a whole core: half the 2 it may use
    w.usage[2] = 200000
    w.sup:autoscale()
    local cpu = w.policy.calls[2].reading.cpu
    table.sort(cpu)
    assert.same({ 10, 50 }, cpu)
    assert.same({ n = 1 }, w.policy.calls[2].state) -- the last decision's `next`
    assert.equal(2, d.row.replicas)
    assert.same({}, w.messages("deployment.autoscaled"))
  end)

  it("leaves out instances that do not serve", function()
    local w, d = autoscaled(keep)
    d.instances[2].healthy = false
    w.sup:autoscale()
    w.uv.ns = w.uv.ns + 1e9
    w.usage[1], w.usage[2] = 300000, 900000
    w.sup:autoscale()
    assert.same({ 30 }, w.policy.calls[2].reading.cpu)
  end)

  it("scales to what the policy decides: written, recorded and reconciled", function()
    local w, d = autoscaled(function() return { desired = 4, reason = "cpu 90% > 50%", next = {} } end)
    w.sup:autoscale()
    assert.equal(4, d.row.replicas)
    assert.equal(4, w.store.rows[NS .. "/" .. NAME].replicas)
    assert.same({ "cpu 90% > 50%" }, w.messages("deployment.autoscaled"))
    local n = 0
    for _ in pairs(d.instances) do n = n + 1 end
    assert.equal(4, n)
  end)

  it("does nothing during a rollout", function()
    local w, d = autoscaled(function() return { desired = 4, reason = "up", next = {} } end)
    d.rollout = { from = {} }
    w.sup:autoscale()
    assert.same({}, w.policy.calls)
    assert.equal(2, d.row.replicas)
  end)

  it("logs a failing policy and changes nothing", function()
    local w, d = autoscaled(function() error("boom", 0) end)
    w.sup:autoscale()
    assert.equal(2, d.row.replicas)
    assert.same({ level = "error", text = "default/web: autoscale policy: boom" }, w.log.lines[#w.log.lines])
  end)

  it("runs a round on its timer", function()
    local w = autoscaled(keep)
    w.sup:start_autoscaler()
    local timer = w.sup.autoscale_timer
    assert.same({ autoscale.AUTOSCALE_INTERVAL_MS, autoscale.AUTOSCALE_INTERVAL_MS, true },
      { timer.timeout, timer.rep, timer.unrefed })
    w.uv.fire(timer)
    assert.equal(1, #w.policy.calls)
  end)

  describe("a round in steps", function()
    local slice
    before_each(function() slice = autoscale.AUTOSCALE_SLICE end)
    after_each(function() autoscale.AUTOSCALE_SLICE = slice end)

    -- w (autoscaled) with `more` deployments added: every other one under --auto.
    local function many(more)
      local w = autoscaled(keep)
      for i = 1, more do
        w.store.add({ namespace = NS, name = "d" .. i, revision = 1, replicas = 1,
          autoscale = i % 2 == 0 and SETTINGS or nil }, { [1] = { state = "active", spec = { script = "app.py" } } })
        assert(w.sup:apply(NS, "d" .. i))
      end
      return w
    end

    it("looks at AUTOSCALE_SLICE deployments a step, the steps STEP_GAP_MS apart, then waits the interval", function()
      local w = many(5) -- 6 deployments, 3 of them autoscaled
      autoscale.AUTOSCALE_SLICE = 2
      w.sup:start_autoscaler()
      local timer = w.sup.autoscale_timer
      local steps = 0
      repeat
        w.uv.fire(timer)
        steps = steps + 1
      until timer.timeout ~= autoscale.STEP_GAP_MS
      assert.equal(3, steps)
      assert.equal(3, #w.policy.calls)
      assert.same({ autoscale.AUTOSCALE_INTERVAL_MS, autoscale.AUTOSCALE_INTERVAL_MS },
        { timer.timeout, timer.rep })
      repeat w.uv.fire(timer) until timer.timeout ~= autoscale.STEP_GAP_MS -- the next round
      assert.equal(6, #w.policy.calls)
    end)

    it("decides each deployment once a round, whatever is made or removed between steps", function()
      local w = many(7) -- 8 deployments, 4 autoscaled
      local count = {}
      local one = w.sup.autoscale_one
      function w.sup.autoscale_one(self, d)
        count[d.name] = (count[d.name] or 0) + 1
        return one(self, d)
      end
      for _ = 1, 3 do assert.is_false(w.sup:autoscale_step(1)) end
      -- Enough new ones to rebuild the table, and the last one seen removed.
      w.sup.deployments[w.sup.autoscale_walk.key] = nil
      for i = 8, 40 do
        w.store.add({ namespace = NS, name = "d" .. i, revision = 1, replicas = 1, autoscale = SETTINGS },
          { [1] = { state = "active", spec = { script = "app.py" } } })
        assert(w.sup:apply(NS, "d" .. i))
      end
      local steps = 0
      repeat steps = steps + 1 until w.sup:autoscale_step(1) or steps > 200
      assert.is_true(steps <= 200, "the round ends")
      for name, n in pairs(count) do assert.equal(1, n, name .. " decided twice") end
      -- The next round sees every autoscaled one still there, once.
      count = {}
      w.sup:autoscale()
      local autoscaled_now = 0
      for _, d in pairs(w.sup.deployments) do
        if d.row.autoscale then
          autoscaled_now = autoscaled_now + 1
          assert.equal(1, count[d.name], d.name)
        end
      end
      assert.is_true(autoscaled_now >= 36)
    end)
  end)
end)
