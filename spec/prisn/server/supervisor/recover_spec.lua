-- Recovery after a server restart (prisn.server.supervisor.recover): an
-- instance whose recorded process is alive and still ours is adopted, one
-- that is gone is started again, the cgroups of adopted ones are kept, and
-- a rollout that was running goes on. Driven with a fake store, loop and pid
-- check; the one real-process case checks the pid rule itself.
local clock = require("prisn.clock")
local process = require("prisn.exec.process")
local fakes = require("prisn.server.supervisor.fakes")
local recover = require("prisn.server.supervisor.recover")

local NS, NAME = "default", "web"

-- A world whose state.db remembers default/web (revision `revision`, state
-- `state`) with the instance rows `rows`; pids in `alive` are ours.
local function remembered(rows, alive, opts)
  opts = opts or {}
  local w = fakes.world({ still_ours = function(pid, started_ms)
    return alive[pid] == started_ms
  end })
  w.store.add({ namespace = NS, name = NAME, revision = opts.revision or 1, replicas = #rows },
    opts.revisions or { [1] = { state = "active" } })
  for _, row in ipairs(rows) do
    row.namespace, row.deployment = NS, NAME
    row.restarts, row.revision = row.restarts or 0, row.revision or 1
    w.store.save_instance(nil, row)
  end
  w.adopted, w.swept = {}, {}
  w.sup.adopt = function(_, _, inst, pid, started_at)
    inst.pid, inst.started_at = pid, started_at
    w.adopted[#w.adopted + 1] = { number = inst.number, pid = pid, started_at = started_at }
  end
  w.sup.remove_leftover_cgroups = function(_, pattern, keep, keep_pids)
    w.swept[#w.swept + 1] = { pattern = pattern, keep = keep, keep_pids = keep_pids }
    return 0
  end
  return w
end

describe("prisn.server.supervisor.recover", function()
  it("adopts instances whose process lives and is ours, and restarts the rest", function()
    local w = remembered({
      { number = 1, pid = 111, started_at = 5000, state = "running", port = 41001 },
      { number = 2, pid = 222, started_at = 6000, state = "running", port = 41002 },
      { number = 3, state = "crash_loop_backoff", port = 41003 },
    }, { [111] = 5000, [222] = 1 }) -- 222 is alive but started at another time: not ours
    w.sup:recover()
    local d = w.sup:get(NS, NAME)
    assert.same({ { number = 1, pid = 111, started_at = 5000 } }, w.adopted)
    local restarted = {}
    for _, inst in ipairs(w.started) do restarted[#restarted + 1] = inst.number end
    assert.same({ 2, 3 }, restarted)
    assert.is_true(d.instances[1].recovering) -- counts as serving until its first health result
    assert.is_false(d.instances[3].recovering)
    assert.is_true(w.sup.used_ports[41001] and w.sup.used_ports[41002] and w.sup.used_ports[41003])
    assert.same({ level = "info", text = "recovery: 1 instance(s) re-adopted, 2 restarted" },
      w.log.lines[#w.log.lines])
    -- No instance is added or lost: the three are the replicas.
    assert.equal(3, #w.store.instances(nil, NS, NAME))
    -- The autoscaler's timer runs, without keeping the loop alive.
    assert.is_true(w.sup.autoscale_timer.unrefed)
  end)

  it("keeps the cgroups (and pids) of adopted instances only", function()
    local w = remembered({
      { number = 1, pid = 111, started_at = 5000, restarts = 4 },
      { number = 2, pid = 222, started_at = 6000 },
    }, { [111] = 5000 })
    w.sup:recover()
    assert.equal(1, #w.swept)
    local tag = require("prisn.server.supervisor.names").home_tag(fakes.HOME)
    assert.same({ ["svc-" .. tag .. "-default.web-1-4"] = true }, w.swept[1].keep)
    assert.same({ [111] = true }, w.swept[1].keep_pids)
  end)

  it("leaves an instance whose revision is unknown as it is", function()
    local w = remembered({ { number = 1, pid = 111, started_at = 5000, revision = 7 } }, { [111] = 5000 })
    w.sup:recover()
    assert.same({}, w.adopted)
    -- Not started again: a new instance of the current revision takes its place.
    assert.equal(1, #w.started)
    assert.same({ 2, 1 }, { w.started[1].number, w.started[1].revision })
  end)

  it("goes on with a rollout that was running", function()
    local w = remembered({
      { number = 1, pid = 111, started_at = 5000, revision = 1, state = "running" },
      { number = 2, pid = 222, started_at = 6000, revision = 2, state = "starting" },
    }, { [111] = 5000, [222] = 6000 }, { revision = 2,
      revisions = { [1] = { state = "active" }, [2] = { state = "rolling_out" } } })
    w.sup:recover()
    local d = w.sup:get(NS, NAME)
    assert.truthy(d.rollout)
    assert.same({ 1 }, d.rollout.from)
    assert.equal(1, d.rollout.previous)
    assert.is_true(d.rollout.timer.active)
    -- The old instance still serves: nothing is drained before the new one does.
    assert.is_nil(d.instances[1].removing)
  end)

  describe("decide", function()
    it("adopts, restarts or keeps", function()
      assert.equal("adopt", recover.decide(true, true))
      assert.equal("restart", recover.decide(false, true))
      assert.equal("keep", recover.decide(true, false))
      assert.equal("keep", recover.decide(false, false))
    end)
  end)

  describe("still_ours", function()
    it("knows a live session leader by its start time, and nothing else", function()
      -- A child in its own session, as an instance's process is.
      local proc = assert(process.start({ file = "/bin/sleep", argv = { "sleep", "30" }, env = {},
        session = true }))
      local pid = proc:pid()
      local started = clock.now_ms()
      finally(function() proc:kill("KILL") end)
      assert.is_true(recover.still_ours(pid, started))
      assert.is_false(recover.still_ours(pid, started - 3600 * 1000))
      assert.is_false(recover.still_ours(pid, nil))
      assert.is_false(recover.still_ours(2 ^ 22 + 1, started))
    end)
  end)
end)
