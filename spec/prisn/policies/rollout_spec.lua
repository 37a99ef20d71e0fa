local rollout = require("prisn.policies.rollout")

local function inst(id, state, started_at) return { id = id, state = state, started_at = started_at } end

describe("prisn.policies.rollout", function()
  it("replaces instances one at a time, never below the desired count", function()
    local r = { desired = 2, old = { inst("a", "healthy"), inst("b", "healthy") }, new = {} }
    assert.same({ start_new = 1 }, rollout.step(r, {}, 0))
    r.new = { inst("x", "starting", 0) }
    assert.same({ wait = true, reason = "waiting for 1 new instance to become healthy" }, rollout.step(r, {}, 5))
    r.new[1].state = "healthy"
    assert.same({ drain_old = "a" }, rollout.step(r, {}, 6))
    r.old[1].state = "draining"
    assert.same({ wait = true, reason = "waiting for 1 old instance to drain" }, rollout.step(r, {}, 7))
    table.remove(r.old, 1)
    assert.same({ start_new = 1 }, rollout.step(r, {}, 8))
    r.new[2] = inst("y", "healthy", 8)
    assert.same({ drain_old = "b" }, rollout.step(r, {}, 9))
    r.old[1].state = "draining"
    assert.equal(true, rollout.step(r, {}, 10).wait)
    r.old = {}
    assert.same({ done = true }, rollout.step(r, {}, 11))
  end)

  it("drains unhealthy old instances first", function()
    local r = { desired = 2, old = { inst("a", "healthy"), inst("b", "unhealthy") }, new = {} }
    assert.same({ drain_old = "b" }, rollout.step(r, {}, 0))
  end)

  it("scales down and up within a rollout", function()
    local down = { desired = 1, old = { inst("a", "healthy"), inst("b", "healthy") }, new = {} }
    assert.same({ drain_old = "a" }, rollout.step(down, {}, 0))
    local zero = { desired = 0, old = { inst("a", "healthy") }, new = {} }
    assert.same({ drain_old = "a" }, rollout.step(zero, {}, 0))
    assert.same({ done = true }, rollout.step({ desired = 0, old = {}, new = {} }, {}, 0))
    local up = { desired = 3, old = { inst("a", "healthy") }, new = { inst("x", "healthy", 0) } }
    assert.same({ start_new = 1 }, rollout.step(up, {}, 1))
  end)

  it("rolls back a revision that never becomes healthy", function()
    local r = { desired = 1, old = { inst("a", "healthy") }, new = { inst("x", "unhealthy", 100) } }
    assert.equal(true, rollout.step(r, {}, 220).wait)
    assert.same({ rollback = true, reason = "new instance x is not healthy 120s after it started" },
      rollout.step(r, {}, 221))
    assert.same({ rollback = true, reason = "new instance x is not healthy 30s after it started" },
      rollout.step(r, { progress_deadline = 30 }, 131))
    r.new[1].state = "failed"
    assert.same({ rollback = true, reason = "new instance x failed and will not be restarted" },
      rollout.step(r, {}, 101))
  end)

  it("honours a larger surge", function()
    local r = { desired = 2, old = { inst("a", "healthy"), inst("b", "healthy") }, new = { inst("x", "starting", 0) } }
    assert.equal(true, rollout.step(r, {}, 1).wait)
    assert.same({ start_new = 1 }, rollout.step(r, { surge = 2 }, 1))
  end)

  it("raises on misuse", function()
    assert.has_error(function() rollout.step({ desired = "2" }, {}, 0) end)
    assert.has_error(function() rollout.step({ desired = 2 }, {}) end)
  end)
end)
