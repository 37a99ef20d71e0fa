local autoscale = require("prisn.policies.autoscale")

local OPTS = { min = 1, max = 10, target_cpu = 70 }

local function reading(at, current, cpu) return { at = at, current = current, cpu = cpu } end

describe("prisn.policies.autoscale", function()
  it("scales up to ceil(current * avg / target), clamped to max", function()
    local d = autoscale.decide(nil, reading(0, 2, { 140, 140 }), OPTS)
    assert.equal(4, d.desired)
    assert.equal("average CPU 140% (target 70%): scaling up from 2 to 4", d.reason)
    assert.equal(10, autoscale.decide(nil, reading(0, 4, { 300, 300, 300, 300 }), OPTS).desired)
    assert.equal(4, autoscale.decide(nil, reading(0, 3, { 84, 84, 84 }), OPTS).desired) -- 3 * 1.2 = 3.6
  end)

  it("ignores changes within the tolerance", function()
    local d = autoscale.decide(nil, reading(0, 3, { 75, 75, 75 }), OPTS)
    assert.equal(3, d.desired)
    assert.equal("average CPU 75% (target 70%): no change", d.reason)
  end)

  it("brings a count outside [min, max] inside at once", function()
    assert.equal(2, autoscale.decide(nil, reading(0, 0, {}), { min = 2, max = 5, target_cpu = 70 }).desired)
    local d = autoscale.decide(nil, reading(0, 8, { 1 }), { min = 2, max = 5, target_cpu = 70 })
    assert.equal(5, d.desired)
    assert.equal("8 instances is outside min 2, max 5", d.reason)
  end)

  it("does nothing without readings", function()
    local d = autoscale.decide(nil, reading(0, 3, {}), OPTS)
    assert.equal(3, d.desired)
    assert.equal("no CPU readings yet", d.reason)
  end)

  it("waits out the scale-up cooldown after a change", function()
    local d = autoscale.decide(nil, reading(0, 2, { 140, 140 }), OPTS)
    assert.equal(4, d.desired)
    local d2 = autoscale.decide(d.next, reading(10, 4, { 140, 140, 140, 140 }), OPTS)
    assert.equal(4, d2.desired)
    assert.equal("average CPU 140% (target 70%) wants 8, but the last change was 10s ago (cooldown 30s)",
      d2.reason)
    local d3 = autoscale.decide(d2.next, reading(30, 4, { 140, 140, 140, 140 }), OPTS)
    assert.equal(8, d3.desired)
  end)

  it("scales down only to the highest recommendation of the window", function()
    local state
    local function step(at, current, cpu)
      local d = autoscale.decide(state, reading(at, current, cpu), OPTS)
      state = d.next
      return d
    end
    assert.equal(4, step(0, 4, { 70, 70, 70, 70 }).desired)
    -- a quiet spell: recommendations of 1, but 4 was recommended within 5 minutes
    local d = step(60, 4, { 10, 10, 10, 10 })
    assert.equal(4, d.desired)
    assert.equal("average CPU 10% (target 70%) wants 1; holding 4 for the 300s window", d.reason)
    assert.equal(4, step(120, 4, { 10, 10, 10, 10 }).desired)
    -- load returns briefly: recommends 3
    assert.equal(4, step(200, 4, { 50, 50, 50, 50 }).desired)
    -- 300 s after the 4: the highest left is the 3
    local down = step(300, 4, { 10, 10, 10, 10 })
    assert.equal(3, down.desired)
    assert.equal("average CPU 10% (target 70%): scaling down from 4 to 3", down.reason)
    -- 300 s after the 3, only 1s remain
    assert.equal(1, step(500, 3, { 10, 10, 10 }).desired)
    assert.equal(1, step(510, 1, { 5 }).desired) -- never below min
  end)

  it("raises on misuse", function()
    assert.has_error(function() autoscale.decide(nil, reading(0, 1, {}), { min = 5, max = 2 }) end)
    assert.has_error(function() autoscale.decide(nil, reading(0, 1, {}), { target_cpu = "70" }) end)
    assert.has_error(function() autoscale.decide(nil, reading(0, 1, {}), { target_cpu = 0 }) end)
    assert.has_error(function() autoscale.decide(nil, { current = 1 }, OPTS) end)
  end)
end)
