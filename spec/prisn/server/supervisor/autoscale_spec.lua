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
end)
