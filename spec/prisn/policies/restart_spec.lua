local restart = require("prisn.policies.restart")

local function mid() return 0.5 end -- no jitter: the factor is exactly 1

local function crash(at, code) return { type = "exit", at = at, code = code or 1 } end

describe("prisn.policies.restart", function()
  it("restarts the first crash at once, then backs off exponentially to 5 minutes", function()
    local state, delays = nil, {}
    for i = 1, 12 do
      local d = restart.decide(state, crash(i), {}, mid)
      assert.is_true(d.restart)
      delays[i] = d.delay_s
      state = d.next
    end
    assert.same({ 0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300 }, delays)
    assert.equal(12, state.failures)
  end)

  it("shows crash_loop_backoff once delays grow", function()
    local d1 = restart.decide(nil, crash(0), {}, mid)
    assert.equal("restarting", d1.status)
    assert.is_false(d1.crash_loop)
    local d2 = restart.decide(d1.next, crash(1), {}, mid)
    assert.equal("crash_loop_backoff", d2.status)
    assert.is_true(d2.crash_loop)
    assert.equal("exited with code 1; restart 2 in a row, waiting 1s", d2.reason)
  end)

  it("spreads delays by the jitter, never past the maximum", function()
    local state = { failures = 2 } -- the next is failure 3: base 2 s
    assert.equal(1.8, restart.decide(state, crash(0), {}, function() return 0 end).delay_s)
    assert.near(2.2, restart.decide(state, crash(0), {}, function() return 0.999999 end).delay_s, 1e-5)
    local long = { failures = 20 }
    assert.equal(300, restart.decide(long, crash(0), {}, function() return 0.99 end).delay_s)
    assert.equal(270, restart.decide(long, crash(0), {}, function() return 0 end).delay_s)
  end)

  it("resets the count after 60 s of health", function()
    local state = { failures = 6 }
    state = restart.decide(state, { type = "healthy", at = 100 }).next
    assert.equal(100, state.healthy_since)
    -- a second healthy report keeps the first time
    state = restart.decide(state, { type = "healthy", at = 130 }).next
    assert.equal(100, state.healthy_since)
    local early = restart.decide(state, crash(159), {}, mid)
    assert.equal(7, early.next.failures)
    local late = restart.decide(state, crash(160), {}, mid)
    assert.equal(0, late.delay_s)
    assert.equal(1, late.next.failures)
    assert.is_nil(late.next.healthy_since)
  end)

  it("forgets health when the instance turns unhealthy", function()
    local state = restart.decide({ failures = 3, healthy_since = 10 }, { type = "unhealthy", at = 50 }).next
    assert.is_nil(state.healthy_since)
    assert.equal(4, restart.decide(state, crash(200), {}, mid).next.failures)
  end)

  it("follows the restart policy", function()
    local clean = { type = "exit", at = 0, code = 0 }
    assert.is_true(restart.decide(nil, clean, { restart_policy = "always" }, mid).restart)
    local d = restart.decide(nil, clean, { restart_policy = "on-failure" }, mid)
    assert.is_false(d.restart)
    assert.equal("stopped", d.status)
    assert.equal("exited with code 0; restart policy is on-failure", d.reason)
    assert.is_true(restart.decide(nil, crash(0), { restart_policy = "on-failure" }, mid).restart)
    assert.is_true(restart.decide(nil, { type = "exit", at = 0, signal = "SIGSEGV" },
      { restart_policy = "on-failure" }, mid).restart)
    local oom = restart.decide(nil, { type = "exit", at = 0, code = 137, oom_killed = true },
      { restart_policy = "on-failure" }, mid)
    assert.equal("killed for running out of memory; restarting now", oom.reason)
    assert.is_false(restart.decide(nil, crash(0), { restart_policy = "never" }, mid).restart)
  end)

  it("never restarts what prisn stopped", function()
    local d = restart.decide(nil, { type = "exit", at = 0, signal = "SIGTERM", requested = true }, {}, mid)
    assert.is_false(d.restart)
    assert.equal("killed by signal SIGTERM; stopped by prisn", d.reason)
  end)

  it("takes its numbers from the options", function()
    local opts = { initial_delay = 0.5, multiplier = 3, max_delay = 10, jitter = 0 }
    local state, delays = nil, {}
    for i = 1, 5 do
      local d = restart.decide(state, crash(i), opts)
      delays[i], state = d.delay_s, d.next
    end
    assert.same({ 0, 0.5, 1.5, 4.5, 10 }, delays)
  end)

  it("counts an exit whose status was lost as a failure, also for on-failure", function()
    local d = restart.decide(nil, { type = "exit", at = 1, status_unknown = true }, { restart_policy = "on-failure" })
    assert.is_true(d.restart)
    assert.equal("ended (its exit status was lost with a server restart); restarting now", d.reason)
  end)

  it("counts a process that could not start as a failure, with growing delays", function()
    local state, delays = nil, {}
    for i = 1, 3 do
      local d = restart.decide(state, { type = "exit", at = i, failed_to_start = true },
        { restart_policy = "on-failure", jitter = 0 })
      assert.is_true(d.restart)
      delays[i], state = d.delay_s, d.next
    end
    assert.same({ 0, 1, 2 }, delays)
    assert.equal("could not start; restarting now",
      restart.decide(nil, { type = "exit", at = 1, failed_to_start = true }).reason)
  end)

  it("raises on misuse", function()
    assert.has_error(function() restart.decide(nil, crash(0), { restart_policy = "sometimes" }) end,
      'restart policy: "sometimes" is not one of always, on-failure, never')
    assert.has_error(function() restart.decide(nil, { type = "exit" }) end)
    assert.has_error(function() restart.decide(nil, { type = "born", at = 1 }) end)
    assert.has_error(function() restart.decide({ failures = 1 }, crash(0), { max_delay = "5m" }) end)
  end)
end)
