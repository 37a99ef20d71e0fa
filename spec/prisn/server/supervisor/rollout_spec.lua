-- The revision state machine (prisn.server.supervisor.rollout) driven with a
-- fake loop, clock and store, and the built-in rollout and restart policies:
-- a first deploy turns active when its instances serve, a new revision
-- replaces the old one instance by one, one that never serves is rolled back
-- (or fails when nothing served before), and outcomes are counted.
local fakes = require("prisn.server.supervisor.fakes")
local rollout = require("prisn.server.supervisor.rollout")

local NS, NAME = "default", "web"

local function revisions_of(d)
  local revs = {}
  for _, inst in pairs(d.instances) do revs[#revs + 1] = inst.revision end
  table.sort(revs)
  return revs
end

-- A world with default/web at revision 1 (`state`), `replicas` instances.
local function deployed(replicas, state)
  local w = fakes.world()
  w.store.add({ namespace = NS, name = NAME, revision = 1, replicas = replicas }, { [1] = { state = state } })
  assert(w.sup:apply(NS, NAME))
  return w, w.sup:get(NS, NAME)
end

-- Crashes `inst` as its process would (exit code 1).
local function crash(w, d, inst)
  w.sup:exited(d, inst, { exited = true, code = 1 })
end

describe("prisn.server.supervisor.rollout", function()
  describe("a first deploy", function()
    it("starts the replicas and turns the revision active once all of them serve", function()
      local w, d = deployed(2, "rolling_out")
      assert.same({ 1, 1 }, revisions_of(d))
      w.sup:health_changed(d, d.instances[1], "healthy")
      assert.equal("rolling_out", w.store.rev_state(NS, NAME, 1))
      assert.same({}, w.messages("deployment.rolled_out"))
      w.sup:health_changed(d, d.instances[2], "healthy")
      assert.equal("active", w.store.rev_state(NS, NAME, 1))
      assert.equal("active", d.revision_state)
      assert.same({ "revision 1 is serving" }, w.messages("deployment.rolled_out"))
      -- A first deploy is not a rollout: nothing counted.
      assert.same({}, w.server.metrics.rollouts.counts)
    end)

    it("fails the revision when an instance crashes twice before it ever served", function()
      local w, d = deployed(1, "rolling_out")
      crash(w, d, d.instances[1])
      assert.equal("rolling_out", w.store.rev_state(NS, NAME, 1))
      crash(w, d, d.instances[1])
      assert.equal("failed", w.store.rev_state(NS, NAME, 1))
      assert.same({ "instance web-1 does not start: exited with code 1" }, w.messages("deployment.failed"))
    end)
  end)

  describe("a new revision", function()
    local w, d
    before_each(function()
      w, d = deployed(2, "rolling_out")
      w.settle(d)
      assert.equal("active", w.store.rev_state(NS, NAME, 1))
      w.store.new_revision(NS, NAME, 2)
      assert(w.sup:apply(NS, NAME))
    end)

    it("starts one new instance first, keeping the old ones serving (surge 1)", function()
      assert.truthy(d.rollout)
      assert.same({ 1 }, d.rollout.from)
      assert.equal(1, d.rollout.previous)
      assert.same({ 1, 1, 2 }, revisions_of(d))
      assert.is_nil(d.instances[1].removing)
      assert.is_nil(d.instances[2].removing)
      -- Deadlines pass without events: a timer looks again.
      assert.equal(rollout.ROLLOUT_TICK_MS, d.rollout.timer.timeout)
    end)

    it("drains an old instance only once a new one serves", function()
      w.sup:health_changed(d, d.instances[3], "healthy")
      assert.is_true(d.instances[1].removing)
      assert.is_nil(d.instances[2].removing)
    end)

    it("becomes active when every new instance serves and the old ones are gone", function()
      local timer = d.rollout.timer
      w.settle(d)
      assert.same({ 2, 2 }, revisions_of(d))
      assert.is_nil(d.rollout)
      assert.is_true(timer.closed)
      assert.equal("active", w.store.rev_state(NS, NAME, 2))
      assert.equal("superseded", w.store.rev_state(NS, NAME, 1))
      assert.same({ "revision 1 is serving", "revision 2 is serving" }, w.messages("deployment.rolled_out"))
      assert.same({ rolled_out = 1 }, w.server.metrics.rollouts.counts)
      -- The store no longer knows the old instances.
      local numbers = {}
      for _, row in ipairs(w.store.instances(nil, NS, NAME)) do numbers[#numbers + 1] = row.revision end
      assert.same({ 2, 2 }, numbers)
    end)

    it("is rolled back to the revision that served when its instance never does", function()
      local new = d.instances[3]
      crash(w, d, new) -- restarted at once
      assert.equal("rolling_out", w.store.rev_state(NS, NAME, 2))
      crash(w, d, new) -- the second crash before serving: it does not start
      assert.is_nil(d.rollout)
      assert.equal("rolled_back", w.store.rev_state(NS, NAME, 2))
      assert.equal("active", w.store.rev_state(NS, NAME, 1))
      assert.equal(1, d.row.revision)
      assert.equal(1, w.store.rows[NS .. "/" .. NAME].revision)
      assert.same({ "revision 2 rolled back: new instance 3 failed and will not be restarted, "
        .. "revision 1 serves again" },
        w.messages("deployment.rolled_back"))
      assert.same({ rolled_back = 1 }, w.server.metrics.rollouts.counts)
      assert.is_true(new.removing)
      w.settle(d)
      assert.same({ 1, 1 }, revisions_of(d))
    end)

    it("is rolled back when its instance is not healthy within the progress deadline", function()
      w.clock.advance(121 * 1000)
      w.uv.fire(d.rollout.timer)
      assert.equal("rolled_back", w.store.rev_state(NS, NAME, 2))
      assert.same({ "revision 2 rolled back: new instance 3 is not healthy 120s after it started, "
        .. "revision 1 serves again" }, w.messages("deployment.rolled_back"))
    end)

    it("supersedes itself when a newer revision replaces it before it finished", function()
      w.store.new_revision(NS, NAME, 3)
      assert(w.sup:apply(NS, NAME))
      assert.equal("superseded", w.store.rev_state(NS, NAME, 2))
      w.settle(d)
      assert.same({ 3, 3 }, revisions_of(d))
      assert.equal("active", w.store.rev_state(NS, NAME, 3))
      assert.equal("superseded", w.store.rev_state(NS, NAME, 1))
    end)
  end)

  it("fails a new revision that does not start when nothing ever served", function()
    local w, d = deployed(1, "rolling_out")
    crash(w, d, d.instances[1])
    crash(w, d, d.instances[1])
    assert.equal("failed", w.store.rev_state(NS, NAME, 1))
    w.store.new_revision(NS, NAME, 2)
    assert(w.sup:apply(NS, NAME))
    assert.is_nil(d.rollout.previous)
    local new = d.instances[2]
    crash(w, d, new)
    crash(w, d, new)
    assert.is_nil(d.rollout)
    assert.equal("failed", w.store.rev_state(NS, NAME, 2))
    assert.equal(2, d.row.revision)
    assert.same({ "instance web-1 does not start: exited with code 1",
      "revision 2 does not start: new instance 2 failed and will not be restarted" },
      w.messages("deployment.failed"))
    assert.same({}, w.server.metrics.rollouts.counts)
  end)

  describe("instance_state", function()
    it("names what the rollout policy sees", function()
      assert.equal("draining", rollout.instance_state({ removing = true, healthy = true, restarts = 0 }))
      assert.equal("healthy", rollout.instance_state({ healthy = true, restarts = 0 }))
      assert.equal("healthy", rollout.instance_state({ recovering = true, restarts = 0 }))
      assert.equal("failed", rollout.instance_state({ state = "stopped", restarts = 0 }))
      assert.equal("failed", rollout.instance_state({ restarts = 2 }))
      assert.equal("unhealthy", rollout.instance_state({ ever_healthy = true, restarts = 5 }))
      assert.equal("starting", rollout.instance_state({ restarts = 1 }))
    end)
  end)
end)
