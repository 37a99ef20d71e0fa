-- The supervisor's usage sweep (prisn.server.supervisor.usage) with a fake
-- loop and clock: every running instance is sampled once per interval, a
-- slice per tick; the API's read serves the last sample of the current
-- process, and reads once when there is none (a new or restarted process).
local fakes = require("prisn.server.supervisor.fakes")
local usage = require("prisn.server.supervisor.usage")

local NS, NAME = "default", "web"

-- A world with default/web at `replicas` instances, each with a cgroup that
-- counts its reads in w.reads[number] and reports w.cpu[number] µs.
local function world(replicas)
  local w = fakes.world()
  w.store.add({ namespace = NS, name = NAME, revision = 1, replicas = replicas },
    { [1] = { state = "active", spec = { script = "app.py" } } })
  assert(w.sup:apply(NS, NAME))
  local d = w.sup:get(NS, NAME)
  w.reads, w.cpu = {}, {}
  for number, inst in pairs(d.instances) do
    w.reads[number], w.cpu[number] = 0, number * 1000
    inst.limiter = { cgroup = { stats = function()
      w.reads[number] = w.reads[number] + 1
      return { cpu_usage_us = w.cpu[number], memory_current = 4096 }
    end } }
  end
  return w, d
end

local function total(reads)
  local n = 0
  for _, r in pairs(reads) do n = n + r end
  return n
end

describe("prisn.server.supervisor.usage", function()
  it("samples every instance once per sweep, a slice per tick, spread over the interval", function()
    local w = world(20)
    local delay = w.sup:usage_tick(1000)
    -- 20 instances over 1 s in slices of usage.SLICE: ticks 1000 * SLICE / 20 ms apart.
    assert.equal(1000 * usage.SLICE // 20, delay)
    assert.equal(usage.SLICE, total(w.reads))
    for _ = 2, -(-20 // usage.SLICE) do w.sup:usage_tick(1000) end
    for number = 1, 20 do assert.equal(1, w.reads[number]) end
    w.sup:usage_tick(1000) -- a new sweep
    assert.equal(20 + usage.SLICE, total(w.reads))
  end)

  it("never ticks closer than MIN_TICK_MS, and idles at the interval with nothing to sample", function()
    local w = world(2)
    assert.equal(5000, w.sup:usage_tick(5000))
    local empty = fakes.world()
    assert.equal(5000, empty.sup:usage_tick(5000))
    local many = world(200)
    assert.equal(usage.MIN_TICK_MS, many.sup:usage_tick(100))
  end)

  it("serves the sample with its time, and reads once for a process it has not sampled", function()
    local w, d = world(1)
    local inst = d.instances[1]
    local s = usage.sampled(inst, 5)
    assert.same({ pid = inst.pid, at = 5, cpu_usage_us = 1000, memory_current = 4096 }, s)
    assert.equal(1, w.reads[1])
    w.cpu[1] = 9000
    assert.equal(1000, usage.sampled(inst, 6).cpu_usage_us) -- the sample, not a read
    assert.equal(1, w.reads[1])
    w.clock.advance(100)
    w.sup:usage_tick(5000)
    assert.same({ pid = inst.pid, at = w.clock.ms, cpu_usage_us = 9000, memory_current = 4096 },
      usage.sampled(inst, 7))
    inst.pid = inst.pid + 1 -- restarted: the old process's sample is not its
    assert.equal(inst.pid, usage.sampled(inst, 8).pid)
    assert.equal(3, w.reads[1])
    inst.pid = nil
    assert.is_nil(usage.sampled(inst, 9))
  end)

  it("runs on a timer that re-arms itself and stops with the supervisor", function()
    local w = world(usage.SLICE)
    w.sup:start_usage_sampler()
    local timer = w.uv.active()[#w.uv.active()]
    assert.equal(0, timer.timeout)
    assert.is_true(timer.unrefed)
    w.uv.fire(timer)
    assert.equal(usage.SLICE, total(w.reads))
    assert.is_true(timer.active)
    assert.equal(usage.USAGE_INTERVAL_MS, timer.timeout)
    w.sup:stop_usage_sampler()
    assert.is_true(timer.closed)
  end)
end)
